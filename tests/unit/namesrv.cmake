# Name server tests: the library in-process over loopback sockets (test_namesrv), and the
# mqnamesrv binary as a child process for config, -p and signal handling (test_namesrv_cli).
ferry_unit_test(test_namesrv SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_namesrv.c
                LIBS ferry_namesrv ferry_testlib)
ferry_unit_test(test_namesrv_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_namesrv_cli.c
                LIBS ferry_remoting ferry_testlib)
target_compile_definitions(test_namesrv_cli PRIVATE MQNAMESRV_PATH="$<TARGET_FILE:mqnamesrv>")
add_dependencies(test_namesrv_cli mqnamesrv)
# docs/NAMESRV.md carries the key table that `mqnamesrv --doc-config` prints; fail when stale.
add_test(NAME namesrv_config_doc
         COMMAND sh -c "grep '^| ' '${CMAKE_SOURCE_DIR}/docs/NAMESRV.md' | grep -A1000 '^| key | default' > '${CMAKE_CURRENT_BINARY_DIR}/namesrv_doc_table.md' && '$<TARGET_FILE:mqnamesrv>' --doc-config | diff -u '${CMAKE_CURRENT_BINARY_DIR}/namesrv_doc_table.md' -")
set_tests_properties(namesrv_config_doc PROPERTIES LABELS "unit")
