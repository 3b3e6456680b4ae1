# The controller's state machine rules (src/controller/state.c) and its config parser.
if(TARGET ferry_controller)
  ferry_unit_test(test_controller_state SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_controller_state.c
                  LIBS ferry_controller ferry_testlib)
endif()
# The consensus wrapper over canonical raft: three nodes in-process on loopback TCP.
if(TARGET ferry_controller)
  ferry_unit_test(test_controller_raft SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_controller_raft.c
                  LIBS ferry_controller ferry_testlib TIMEOUT 120)
endif()
