# mqbench: the benchmark CLI on libferry (tools/mqbench.c; used by bench/bench_e2e.sh).
if(TARGET ferry_client)
  add_executable(mqbench ${CMAKE_CURRENT_LIST_DIR}/mqbench.c)
  target_link_libraries(mqbench PRIVATE ferry_client Threads::Threads)
endif()
