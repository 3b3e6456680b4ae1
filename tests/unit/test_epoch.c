/* The epoch file (src/broker/epoch.h): what a returning replica keeps of its CommitLog is
 * decided here, so every case of the consistent point is spelled out. */
#include "broker/epoch.h"
#include "common/err.h"
#include "../lib/testlib.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct epoch_list list_of(int n, const int64_t (*pairs)[2])
{
    struct epoch_list l = {.n = 0};
    for (int i = 0; i < n; i++)
        assert_int_equal(epoch_append(&l, pairs[i][0], pairs[i][1]), 0);
    return l;
}

static void consistent_point(void **state)
{
    (void)state;
    static const int64_t old_master[][2] = {{1, 0}};
    static const int64_t new_master[][2] = {{1, 0}, {2, 800}};
    static const int64_t newer[][2] = {{1, 0}, {2, 800}, {3, 1500}};
    struct epoch_list a = list_of(1, old_master), b = list_of(2, new_master), c = list_of(3, newer),
                      empty = {.n = 0};
    /* The old master wrote 200 bytes under epoch 1 that the new master never got. */
    assert_int_equal(epoch_consistent_point(&a, 1000, &b, 1500), 800);
    /* A slave behind: nothing to cut (the point is its own end). */
    assert_int_equal(epoch_consistent_point(&a, 500, &b, 1500), 500);
    /* Same history, a replica ahead of the other: the shorter end. */
    assert_int_equal(epoch_consistent_point(&b, 1200, &b, 1100), 1100);
    /* Two failovers later: the shared epoch is 2, ending where epoch 3 starts. */
    assert_int_equal(epoch_consistent_point(&b, 1700, &c, 2000), 1500);
    /* No shared epoch, or no epochs at all: unknown. */
    static const int64_t other[][2] = {{5, 0}};
    struct epoch_list d = list_of(1, other);
    assert_int_equal(epoch_consistent_point(&a, 100, &d, 100), -1);
    assert_int_equal(epoch_consistent_point(&empty, 100, &b, 100), -1);
    assert_int_equal(epoch_consistent_point(&b, 100, &empty, 100), -1);
    /* The same epoch number with another start is not the same history: an older one is. */
    static const int64_t forked[][2] = {{1, 0}, {2, 900}};
    struct epoch_list e = list_of(2, forked);
    assert_int_equal(epoch_consistent_point(&e, 1000, &b, 1500), 800);
}

static void append_cut_and_order(void **state)
{
    (void)state;
    struct epoch_list l = {.n = 0};
    assert_int_equal(epoch_last(&l), 0);
    assert_int_equal(epoch_append(&l, 1, 0), 0);
    assert_int_equal(epoch_append(&l, 1, 10), FERRY_EINVAL); /* not above the last */
    assert_int_equal(epoch_append(&l, 2, -1), FERRY_EINVAL); /* before the last start */
    assert_int_equal(epoch_append(&l, 3, 100), 0);
    assert_int_equal(epoch_append(&l, 4, 100), 0); /* a master that wrote nothing */
    epoch_cut(&l, 100);
    assert_int_equal(l.n, 1);
    assert_int_equal(epoch_last(&l), 1);
    for (int i = 0; i < EPOCH_MAX + 5; i++)
        assert_int_equal(epoch_append(&l, 10 + i, 1000 + i), 0);
    assert_int_equal(l.n, EPOCH_MAX); /* the oldest go */
    assert_int_equal(epoch_last(&l), 10 + EPOCH_MAX + 4);
}

static void file_round_trip_and_damage(void **state)
{
    (void)state;
    char dir[512], path[600], err[256];
    test_tmpdir(dir, sizeof dir, "epoch");
    snprintf(path, sizeof path, "%s/epochFileCheckpoint", dir);
    struct epoch_list l, r;
    assert_int_equal(epoch_load(path, &l, err, sizeof err), 0); /* missing: empty */
    assert_int_equal(l.n, 0);
    static const int64_t pairs[][2] = {{1, 0}, {2, 4096}, {7, 9000}};
    l = list_of(3, pairs);
    assert_int_equal(epoch_save(path, &l), 0);
    assert_int_equal(epoch_load(path, &r, err, sizeof err), 0);
    assert_int_equal(r.n, 3);
    assert_memory_equal(r.e, l.e, sizeof l.e[0] * 3);
    static const char *const bad[] = {"1 0\n2 x\n", "2 0\n1 10\n", "1 100\n2 50\n", "0 0\n",
                                      "1 0 9\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        char bak[700];
        snprintf(bak, sizeof bak, "%s.bak", path);
        remove(bak);
        err[0] = 0;
        assert_int_equal(epoch_load(path, &r, err, sizeof err), FERRY_ECORRUPT);
        assert_non_null(strstr(err, "epochFileCheckpoint"));
    }
    test_rmdir(dir);
}

static void handshake_encoding(void **state)
{
    (void)state;
    static const int64_t pairs[][2] = {{1, 0}, {2, 4096}, {3, 5000}};
    struct epoch_list l = list_of(3, pairs), r;
    uint8_t buf[2 + 16 * 3];
    size_t n = epoch_encode(&l, buf);
    assert_int_equal(n, sizeof buf);
    assert_int_equal(epoch_decode(buf, n, &r), (int)n);
    assert_int_equal(r.n, 3);
    assert_memory_equal(r.e, l.e, sizeof l.e[0] * 3);
    assert_int_equal(epoch_decode(buf, n - 1, &r), -1); /* short */
    buf[2 + 16 + 7] = 0;                                /* epoch 2 -> 0: out of order */
    assert_int_equal(epoch_decode(buf, n, &r), -1);
    uint8_t many[2] = {0xff, 0xff};
    assert_int_equal(epoch_decode(many, sizeof many, &r), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(consistent_point),
        cmocka_unit_test(append_cut_and_order),
        cmocka_unit_test(file_round_trip_and_damage),
        cmocka_unit_test(handshake_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
