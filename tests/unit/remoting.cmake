# Remoting tests: frame codec and server/client over loopback sockets. The frame fuzzer
# (fuzz_frame, fuzz_frame_replay) is in tests/fuzz/CMakeLists.txt.
ferry_unit_test(test_remoting_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_remoting_frame.c
                LIBS ferry_remoting ferry_testlib)
ferry_unit_test(test_remoting_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_remoting_server.c
                LIBS ferry_remoting ferry_testlib)
