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

#endif
