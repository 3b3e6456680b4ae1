# The embedded HTTP server (src/http) over loopback sockets.
if(TARGET ferry_http)
  ferry_unit_test(test_http SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_http.c LIBS ferry_http ferry_testlib)
endif()
