# ferry_node_test(name file [LABELS ...] [FIXTURES ...] [NODE_PATH dir] [TIMEOUT s] [ENV k=v ...])
# Registers `node --test <file>` as a CTest test with the server binaries in the environment
# (FERRY_BIN_DIR, FERRY_MQNAMESRV_BIN, FERRY_MQBROKER_BIN), plus the ENV entries (generator
# expressions allowed: FERRY_EXAMPLES_DIR=$<TARGET_FILE_DIR:example_send_many>). Tests that
# start servers share the RESOURCE_LOCK ferry_servers so that two of them never compete for the
# machine's two cores.
if(NOT DEFINED FERRY_NODE_TEST_ARGS)
  execute_process(COMMAND ${FERRY_NODE} --version OUTPUT_VARIABLE _ferry_node_version
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REGEX REPLACE "^v" "" _ferry_node_version "${_ferry_node_version}")
  set(FERRY_NODE_TEST_ARGS --test --test-reporter=spec)
  # --test-force-exit (Node >= 20.14): do not wait for ali-ons' background timers after the
  # tests closed their clients.
  if(_ferry_node_version VERSION_GREATER_EQUAL 20.14)
    list(APPEND FERRY_NODE_TEST_ARGS --test-force-exit)
  endif()
  if(_ferry_node_version VERSION_LESS 18.0)
    message(WARNING "node ${_ferry_node_version} is older than 18: the node tests may not run")
  endif()
endif()

function(ferry_node_test name file)
  cmake_parse_arguments(T "" "NODE_PATH;TIMEOUT" "LABELS;FIXTURES;ENV" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${FERRY_NODE} ${FERRY_NODE_TEST_ARGS} ${file})
  set(env "FERRY_BIN_DIR=$<TARGET_FILE_DIR:mqbroker>" "FERRY_MQBROKER_BIN=$<TARGET_FILE:mqbroker>"
          "FERRY_MQNAMESRV_BIN=$<TARGET_FILE:mqnamesrv>")
  if(T_NODE_PATH)
    list(APPEND env "NODE_PATH=${T_NODE_PATH}")
  endif()
  if(T_ENV)
    list(APPEND env ${T_ENV})
  endif()
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${env}" LABELS "${T_LABELS}"
                       TIMEOUT ${T_TIMEOUT} RESOURCE_LOCK ferry_servers)
  if(T_FIXTURES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES}")
  endif()
endfunction()
