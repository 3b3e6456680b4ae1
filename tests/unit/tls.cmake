# TLS (src/remoting/tls.c, docs/TLS.md): first-byte detection, the memory-BIO pump between two
# sessions, SSL on a socket pair (the HA port's helpers), tls.properties, and remoting servers
# in each tlsMode with plain and TLS clients over 127.0.0.1.
ferry_unit_test(test_tls SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tls.c LIBS ferry_remoting ferry_testlib)
