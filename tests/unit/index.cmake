ferry_unit_test(test_index SOURCES test_index.c LIBS ferry_store ferry_testlib)
