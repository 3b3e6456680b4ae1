# Replication (docs/REPLICATION.md): a SYNC_MASTER and its slave as two in-process brokers on
# loopback ports; the HA port's authentication probed with raw sockets.
ferry_unit_test(test_ha SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ha.c
                ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c LIBS ferry_broker ferry_testlib)
# The epoch file of controller mode: parsing, order checks, the consistent point of two
# histories and the handshake encoding.
ferry_unit_test(test_epoch SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_epoch.c
                LIBS ferry_broker ferry_testlib)
