# mqnamesrv: the name server on its own (tools/mqnamesrv.c).
add_executable(mqnamesrv ${CMAKE_CURRENT_LIST_DIR}/mqnamesrv.c ${CMAKE_CURRENT_LIST_DIR}/server_cli.c)
target_link_libraries(mqnamesrv PRIVATE ferry_namesrv PkgConfig::SYSTEMD)
