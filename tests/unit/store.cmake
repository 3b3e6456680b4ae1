ferry_unit_test(test_store SOURCES test_store.c LIBS ferry_store ferry_testlib)
