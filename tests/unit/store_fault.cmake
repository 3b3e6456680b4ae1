# Fault tests of the store: kill -9 during SYNC_FLUSH appends, hand-damaged files, a full
# tmpfs and a failing disk (ext4 on a loop device). Real processes and files; the last two need
# root (mount, loop devices) and skip otherwise.
ferry_unit_test(test_store_fault SOURCES test_store_fault.c LIBS ferry_store ferry_testlib
                LABELS fault TIMEOUT 600)
