# The example programs beyond examples/producer.c (included at the end of src/client/CMakeLists.txt).
# Each documents its command line at the top; tests/integration drives them as real processes
# (FERRY_EXAMPLES_DIR).
#
#   example_send_many      send N numbered messages, print SENT lines (examples/send_many.c)
#   example_consumer       push consumer, print MSG lines (examples/consumer.c)
#   example_pull_consumer  lite pull consumer, print MSG lines, commit (examples/pull_consumer.c)
foreach(name send_many consumer pull_consumer)
  add_executable(example_${name} ${CMAKE_SOURCE_DIR}/examples/${name}.c)
  target_link_libraries(example_${name} PRIVATE ferry_client)
endforeach()

# example_tx_producer: transaction producer, TX/CHECK lines, crash after the half (examples/tx_producer.c)
add_executable(example_tx_producer ${CMAKE_SOURCE_DIR}/examples/tx_producer.c)
target_link_libraries(example_tx_producer PRIVATE ferry_client)
