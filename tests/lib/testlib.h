/* Test helpers: temporary directories, time budgets scaled for sanitizer builds. */
#ifndef FERRY_TESTLIB_H
#define FERRY_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

/* Create a fresh temporary directory (under $TMPDIR or /tmp) and return its path in @out. */
void test_tmpdir(char *out, size_t cap, const char *tag);
/* Remove it again. */
void test_rmdir(const char *path);
/* FERRY_TEST_TIMEOUT_MULTIPLIER (default 1). */
int test_time_mult(void);
/* A deterministic PRNG for tests (xorshift64*). Seed from FERRY_TEST_SEED or the time,
 * printed so a failure can be replayed. */
uint64_t test_seed(void);
uint64_t test_rand(uint64_t *state);

#define TEST_RUN_OUT_MAX (256 * 1024)

/* What a program printed and how it ended (test_run_program). */
struct test_run {
    int status;                                        /* exit code, or -1 when a signal ended it */
    char out[TEST_RUN_OUT_MAX], err[TEST_RUN_OUT_MAX]; /* NUL-terminated, cut to fit */
};

/* Run @bin with @argv (NULL-ended, argv[0] included) to its end, its stdout and stderr going
 * to files in @dir (read back into @r); @unset: NULL-ended names removed from the child's
 * environment (NULL: none). 0, or -errno when it could not be run or waited for. */
int test_run_program(const char *bin, const char *const *argv, const char *dir,
                     const char *const *unset, struct test_run *r);

#endif
