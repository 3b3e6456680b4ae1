# test_server_cli: tools/server_cli.c, the launchers' sd_notify messages (received as systemd
# does) and their -p check mode.
ferry_unit_test(test_server_cli
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_server_cli.c ${CMAKE_SOURCE_DIR}/tools/server_cli.c
                LIBS ferry_common ferry_testlib PkgConfig::SYSTEMD)
