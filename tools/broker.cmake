# mqbroker (the broker on its own) and ferrymq (name server + broker in one process: the
# standalone launcher that `make run` starts). Without the name server library ferrymq is built
# as a broker-only launcher.
add_executable(mqbroker ${CMAKE_CURRENT_LIST_DIR}/mqbroker.c ${CMAKE_CURRENT_LIST_DIR}/server_cli.c)
target_link_libraries(mqbroker PRIVATE ferry_broker PkgConfig::SYSTEMD)

add_executable(ferrymq ${CMAKE_CURRENT_LIST_DIR}/ferrymq.c ${CMAKE_CURRENT_LIST_DIR}/server_cli.c)
target_link_libraries(ferrymq PRIVATE ferry_broker PkgConfig::SYSTEMD)
if(TARGET ferry_namesrv)
  target_link_libraries(ferrymq PRIVATE ferry_namesrv)
  target_compile_definitions(ferrymq PRIVATE FERRY_HAVE_NAMESRV=1)
endif()
