# Remoting tests: frame codec and server/client over loopback sockets, the frame fuzzer's corpus
# replay (any compiler), and with clang the libFuzzer build of the same entry point.
#
# Run the fuzzer for a bounded time (new inputs go to the first directory, so give it a scratch
# one to keep the committed seeds small; merge interesting finds by hand):
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-14 &&
#   cmake --build build-fuzz --target fuzz_frame &&
#   mkdir -p /tmp/fuzz_frame_corpus &&
#   ./build-fuzz/fuzz_frame -max_total_time=60 /tmp/fuzz_frame_corpus tests/fuzz/corpus/frame
# (or simply `./build-fuzz/fuzz_frame -max_total_time=60 tests/fuzz/corpus/frame`, which adds
# what it finds to the seed directory). A crash leaves crash-<sha1> in the working directory;
# replay it with `./build/fuzz_frame_replay crash-<sha1>`.
set(FERRY_REMOTING_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR}/../fuzz)

ferry_unit_test(test_remoting_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_remoting_frame.c
                LIBS ferry_remoting ferry_testlib)
ferry_unit_test(test_remoting_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_remoting_server.c
                LIBS ferry_remoting ferry_testlib)

add_executable(fuzz_frame_replay ${FERRY_REMOTING_FUZZ_DIR}/fuzz_frame.c
                                 ${FERRY_REMOTING_FUZZ_DIR}/replay_main.c)
target_link_libraries(fuzz_frame_replay PRIVATE ferry_remoting)
add_test(NAME fuzz_frame_replay
         COMMAND fuzz_frame_replay ${FERRY_REMOTING_FUZZ_DIR}/corpus/frame)
set_tests_properties(fuzz_frame_replay PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)

if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  # The codec is compiled into the target itself so that libFuzzer's coverage sees it.
  add_executable(fuzz_frame ${FERRY_REMOTING_FUZZ_DIR}/fuzz_frame.c
                            ${CMAKE_CURRENT_LIST_DIR}/../../src/remoting/frame.c)
  target_compile_options(fuzz_frame PRIVATE -fsanitize=fuzzer,address,undefined
                                            -fno-omit-frame-pointer)
  target_link_options(fuzz_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_frame PRIVATE ferry_common)
endif()
