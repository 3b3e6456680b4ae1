# mqcontroller: the Raft-replicated controller of master/slave broker sets (src/controller,
# docs/CONTROLLER.md).
add_executable(mqcontroller ${CMAKE_CURRENT_LIST_DIR}/mqcontroller.c
               ${CMAKE_CURRENT_LIST_DIR}/server_cli.c)
target_link_libraries(mqcontroller PRIVATE ferry_controller PkgConfig::SYSTEMD)
