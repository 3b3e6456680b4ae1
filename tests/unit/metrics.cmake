# Metrics (issue 9, docs/METRICS.md): the Prometheus helpers (src/common/prom.c), mqadmin's parser
# of the text, the store's figures, and the broker's exposition with real sends and pulls.
if(TARGET ferry_broker AND TARGET ferry_admin)
  ferry_unit_test(test_metrics SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c
                  ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c LIBS ferry_broker ferry_testlib)
endif()
