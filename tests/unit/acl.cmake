# Access control (src/broker/acl.c, docs/ACL.md): signatures (RFC 2202, OpenSSL and ali-ons
# vectors), whitelist patterns, plain_acl.yml parsing and reloads, the decision per request code,
# and a broker with aclEnable driven by raw requests, libferry and the mqadmin binary.
ferry_unit_test(test_acl SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_acl.c
                ${CMAKE_CURRENT_LIST_DIR}/test_broker_harness.c
                LIBS ferry_client ferry_broker ferry_namesrv ferry_testlib)
set_tests_properties(test_acl PROPERTIES ENVIRONMENT "MQADMIN=$<TARGET_FILE:mqadmin>")
add_dependencies(test_acl mqadmin)
# The dashboard's login state (src/broker/login.c): sessions, timeouts with an injected clock,
# eviction, the lockout after failed logins.
ferry_unit_test(test_login SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_login.c LIBS ferry_broker)
