# libferry tests: the pieces without a network (test_client_unit), and the producer against an
# in-process name server and brokers on free loopback ports (test_client_producer).
ferry_unit_test(test_client_unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client_unit.c
                ${CMAKE_CURRENT_LIST_DIR}/test_client_abi.c
                LIBS ferry_client ferry_testlib)
ferry_unit_test(test_client_producer SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client_producer.c
                ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c
                LIBS ferry_client ferry_broker ferry_namesrv ferry_testlib)
ferry_unit_test(test_mqadmin SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mqadmin.c
                ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c
                LIBS ferry_client ferry_broker ferry_namesrv ferry_testlib)
set_tests_properties(test_mqadmin PROPERTIES ENVIRONMENT "MQADMIN=$<TARGET_FILE:mqadmin>")
add_dependencies(test_mqadmin mqadmin)
ferry_unit_test(test_client_consumer SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client_consumer.c
                ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c
                LIBS ferry_client ferry_broker ferry_namesrv ferry_testlib TIMEOUT 300)
ferry_unit_test(test_client_tx SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client_tx.c
                ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c
                LIBS ferry_client ferry_broker ferry_namesrv ferry_testlib)
