# Broker tests: the request processors over loopback sockets (test_broker), restarts and
# name-server registration (test_broker_restart; with the real name server library when it is
# built), the mqbroker/ferrymq binaries as child processes (test_broker_cli), and the remoting
# layer's multi-slice zero-copy bodies the broker relies on (test_broker_iov).
set(FERRY_BROKER_TEST_HARNESS ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c)

ferry_unit_test(test_broker SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_broker.c
                ${FERRY_BROKER_TEST_HARNESS} LIBS ferry_broker ferry_testlib)
ferry_unit_test(test_broker_restart SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_broker_restart.c
                ${FERRY_BROKER_TEST_HARNESS} LIBS ferry_broker ferry_testlib)
if(TARGET ferry_namesrv)
  target_link_libraries(test_broker_restart PRIVATE ferry_namesrv)
  target_compile_definitions(test_broker_restart PRIVATE FERRY_HAVE_NAMESRV=1)
endif()
ferry_unit_test(test_broker_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_broker_cli.c
                ${FERRY_BROKER_TEST_HARNESS} LIBS ferry_broker ferry_testlib)
target_compile_definitions(test_broker_cli PRIVATE MQBROKER_PATH="$<TARGET_FILE:mqbroker>"
                           FERRYMQ_PATH="$<TARGET_FILE:ferrymq>")
if(TARGET ferry_namesrv)
  target_compile_definitions(test_broker_cli PRIVATE FERRY_HAVE_NAMESRV=1)
endif()
add_dependencies(test_broker_cli mqbroker ferrymq)
ferry_unit_test(test_broker_iov SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_broker_iov.c
                LIBS ferry_remoting ferry_testlib)
# Delayed and timed messages, send-back, retries and dead letters (issue 5).
ferry_unit_test(test_broker_schedule SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_broker_schedule.c
                ${FERRY_BROKER_TEST_HARNESS} LIBS ferry_broker ferry_testlib)
# Transactional messages: half messages, END_TRANSACTION, check-back (issue 6).
ferry_unit_test(test_broker_tx SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_broker_tx.c
                ${FERRY_BROKER_TEST_HARNESS} LIBS ferry_broker ferry_testlib)
# The dashboard's embedded pages (src/broker/dashboard.c, cmake/embed.cmake) served over HTTP.
ferry_unit_test(test_dashboard SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dashboard.c
                LIBS ferry_broker ferry_testlib)
