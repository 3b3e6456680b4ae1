/* IndexFile service: real files in a temp dir, small slot and entry counts so that buckets
 * collide and files fill and roll over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "store/index.h"
#include "store/msg.h"
#include "../lib/testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0    1700000000000LL /* a store timestamp (ms) */
#define ALL   0, INT64_MAX    /* every time */
#define TOPIC "TopicTest"

struct ctx {
    char dir[FERRY_PATH_MAX];
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    test_tmpdir(c->dir, sizeof c->dir, "index");
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    test_rmdir(c->dir);
    free(c);
    return 0;
}

static index_svc_t *open_ix(const char *dir, int32_t slots, int32_t max_entries)
{
    index_svc_t *ix = NULL;
    assert_int_equal(index_open(dir, slots, max_entries, &ix), 0);
    assert_non_null(ix);
    return ix;
}

static int64_t file_size(int32_t slots, int32_t max_entries)
{
    return 40 + (int64_t)slots * 4 + (int64_t)max_entries * 20;
}

static void put(index_svc_t *ix, const char *key, int64_t phys, int64_t ts)
{
    assert_int_equal(index_put(ix, TOPIC, key, strlen(key), phys, ts), 0);
}

static int query(index_svc_t *ix, const char *key, int64_t begin, int64_t end, int max,
                 int64_t *out)
{
    int n = index_query(ix, TOPIC, key, strlen(key), begin, end, max, out);
    assert_true(n >= 0 && n <= max && n <= 64);
    return n;
}

/* @dir/@name into @out. */
static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static int is_name17(const char *s)
{
    if (strlen(s) != 17)
        return 0;
    for (int i = 0; i < 17; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Number of index files (17-digit names) in @dir; fails on a *.tmp leftover. */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        assert_false(len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0);
        n += is_name17(de->d_name);
    }
    closedir(d);
    return n;
}

/* The single index file in @dir (its name in @path). */
static void only_file(const char *dir, char *path, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (is_name17(de->d_name)) {
            path_in(path, cap, dir, de->d_name);
            n++;
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Paths of the index files in @dir in name order (at most @max; malloc'd). */
static int list_files(const char *dir, char **out, int max)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!is_name17(de->d_name))
            continue;
        assert_true(n < max);
        out[n] = malloc(FERRY_PATH_MAX);
        path_in(out[n++], FERRY_PATH_MAX, dir, de->d_name);
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_str);
    return n;
}

static void write_file(const char *path, const void *buf, size_t len, int64_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    if (len)
        assert_int_equal(fs_pwrite_all(fd, buf, len, 0), 0);
    close(fd);
}

static void pwrite_at(const char *path, const void *buf, size_t len, int64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(fs_pwrite_all(fd, buf, len, off), 0);
    close(fd);
}

static void pread_at(const char *path, void *buf, size_t len, int64_t off)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fs_pread_all(fd, buf, len, off), 0);
    close(fd);
}

/* Java's String.hashCode() as its definition reads: s[0]*31^(n-1) + ... + s[n-1], int wrap. */
static int32_t java_hash_ref(const uint16_t *u, size_t n)
{
    uint32_t h = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t pow = 1;
        for (size_t j = i + 1; j < n; j++)
            pow *= 31;
        h += (uint32_t)u[i] * pow;
    }
    return (int32_t)h;
}

static void test_java_hash_known(void **state)
{
    const char *s = "TopicTest#key1";
    uint16_t u[32];
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++)
        u[i] = (uint16_t)s[i];
    assert_int_equal(java_hash_ref(u, n), -1655984460); /* "TopicTest#key1".hashCode() */
    assert_int_equal(java_string_hash(s, n), java_hash_ref(u, n));

    /* "é😀x": 2-byte and 4-byte UTF-8 (a surrogate pair in UTF-16). */
    const uint16_t u2[] = {0x00E9, 0xD83D, 0xDE00, 'x'};
    const char *s2 = "\xc3\xa9\xf0\x9f\x98\x80x";
    assert_int_equal(java_hash_ref(u2, 4), 61901292);
    assert_int_equal(java_string_hash(s2, strlen(s2)), java_hash_ref(u2, 4));

    /* The classic equal-hash pair, used by test_hash_collisions. */
    assert_int_equal(java_string_hash("T#Aa", 4), java_string_hash("T#BB", 4));
}

static void test_put_query_roundtrip(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 64, 100);
    int64_t out[64];
    char key[32];

    assert_int_equal(index_end_phys(ix), 0);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "key%d", i);
        put(ix, key, 1000 + i * 100, T0 + i * 1000);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(query(ix, key, ALL, 64, out), 1);
        assert_int_equal(out[0], 1000 + i * 100);
    }
    assert_int_equal(query(ix, "nokey", ALL, 64, out), 0);
    assert_int_equal(index_query(ix, "OtherTopic", "key1", 4, ALL, 64, out), 0);

    put(ix, "dup", 5000, T0 + 30000);
    put(ix, "dup", 5100, T0 + 31000);
    put(ix, "dup", 5200, T0 + 32000);
    assert_int_equal(query(ix, "dup", ALL, 64, out), 3);
    assert_int_equal(out[0], 5200);
    assert_int_equal(out[1], 5100);
    assert_int_equal(out[2], 5000);
    assert_int_equal(index_end_phys(ix), 5200);
    assert_int_equal(count_files(c->dir), 1);
    assert_int_equal(index_flush(ix), 0);
    assert_int_equal(index_flush(ix), 0); /* nothing dirty */
    index_close(ix);
}

static void test_long_and_empty_keys(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 64, 100);
    int64_t out[64];
    size_t len = 3000;
    char *key = malloc(len + 1);

    memset(key, 'x', len);
    key[len] = '\0';
    put(ix, key, 100, T0);
    put(ix, "", 200, T0);
    key[len - 1] = 'y';
    put(ix, key, 300, T0);
    assert_int_equal(query(ix, key, ALL, 64, out), 1);
    assert_int_equal(out[0], 300);
    key[len - 1] = 'x';
    assert_int_equal(query(ix, key, ALL, 64, out), 1);
    assert_int_equal(out[0], 100);
    assert_int_equal(query(ix, "", ALL, 64, out), 1);
    assert_int_equal(out[0], 200);
    free(key);
    index_close(ix);
}

static void test_bucket_collisions(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 1, 200); /* one bucket: every entry on one chain */
    int64_t out[64];
    char key[32];

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 50; i++) {
            snprintf(key, sizeof key, "k%d", i);
            put(ix, key, (round * 50 + i) * 10, T0 + round * 1000);
        }
    }
    /* Only entries with the key's hash come back, though all share the bucket. */
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(query(ix, key, ALL, 64, out), 2);
        assert_int_equal(out[0], (50 + i) * 10);
        assert_int_equal(out[1], i * 10);
    }
    index_close(ix);
}

static void test_hash_collisions(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 64, 100);
    int64_t out[64];

    /* TopicTest#Aa and TopicTest#BB have the same hashCode: only the hash is stored, so a
     * query returns both and the caller compares the real key. */
    put(ix, "Aa", 100, T0);
    put(ix, "BB", 200, T0 + 1000);
    put(ix, "Ab", 300, T0 + 2000);
    assert_int_equal(query(ix, "Aa", ALL, 64, out), 2);
    assert_int_equal(out[0], 200);
    assert_int_equal(out[1], 100);
    assert_int_equal(query(ix, "BB", ALL, 64, out), 2);
    assert_int_equal(query(ix, "Ab", ALL, 64, out), 1);
    assert_int_equal(out[0], 300);
    index_close(ix);
}

static void test_time_range(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 64, 100);
    int64_t out[64];

    for (int i = 0; i < 20; i++)
        put(ix, "k", i * 10, T0 + i * 1000);
    assert_int_equal(query(ix, "k", T0 + 5000, T0 + 10000, 64, out), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(out[i], (10 - i) * 10);
    assert_int_equal(query(ix, "k", T0 + 5500, T0 + 5900, 64, out), 0);
    assert_int_equal(query(ix, "k", T0 - 10000, T0 - 1, 64, out), 0);
    assert_int_equal(query(ix, "k", T0 + 20000, T0 + 90000, 64, out), 0);
    assert_int_equal(query(ix, "k", T0 + 19000, INT64_MAX, 64, out), 1);
    assert_int_equal(out[0], 190);
    assert_int_equal(query(ix, "k", T0 + 10000, T0 + 5000, 64, out), 0); /* end < begin */
    index_close(ix);
}

static void test_max_limit_newest_first(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 64, 100);
    int64_t out[64];

    for (int i = 0; i < 80; i++)
        put(ix, "k", i * 10, T0 + i * 1000);
    assert_int_equal(query(ix, "k", ALL, 10, out), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(out[i], (79 - i) * 10);
    assert_int_equal(index_query(ix, TOPIC, "k", 1, ALL, 1000, out), 64); /* capped at 64 */
    for (int i = 0; i < 64; i++)
        assert_int_equal(out[i], (79 - i) * 10);
    assert_int_equal(query(ix, "k", ALL, 0, out), 0);
    assert_int_equal(index_query(ix, TOPIC, "k", 1, ALL, -1, out), 0);
    index_close(ix);
}

/* 100 records, 9 per file: 12 files. */
static void fill_rolling(index_svc_t *ix, int n)
{
    char key[16];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%d", i % 5);
        put(ix, key, i * 100, T0 + i * 1000);
    }
}

static void test_rollover_spans_files(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 8, 10);
    int64_t out[64];

    fill_rolling(ix, 100);
    assert_int_equal(count_files(c->dir), 12);
    assert_int_equal(index_end_phys(ix), 9900);
    assert_int_equal(query(ix, "k0", ALL, 64, out), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(out[i], (95 - i * 5) * 100);
    assert_int_equal(query(ix, "k0", T0 + 40000, T0 + 60000, 64, out), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], (60 - i * 5) * 100);
    assert_int_equal(query(ix, "k3", T0 + 3000, T0 + 3000, 64, out), 1);
    assert_int_equal(out[0], 300);

    /* The first file starts at its first record; each next one where the previous ended. */
    char *files[16];
    uint8_t hdr[40];
    assert_int_equal(list_files(c->dir, files, 16), 12);
    pread_at(files[0], hdr, sizeof hdr, 0);
    assert_int_equal(be64_get(hdr + 0), T0);
    assert_int_equal(be64_get(hdr + 8), T0 + 8000);
    assert_int_equal(be64_get(hdr + 16), 0);
    assert_int_equal(be64_get(hdr + 24), 800);
    assert_int_equal(be32_get(hdr + 36), 10);
    pread_at(files[1], hdr, sizeof hdr, 0);
    assert_int_equal(be64_get(hdr + 0), T0 + 8000);
    assert_int_equal(be64_get(hdr + 8), T0 + 17000);
    assert_int_equal(be64_get(hdr + 16), 800);
    assert_int_equal(be64_get(hdr + 24), 1700);
    assert_int_equal(be32_get(hdr + 32), 5); /* 5 keys, 8 slots: at most 5 buckets used */
    assert_int_equal(be32_get(hdr + 36), 10);
    pread_at(files[11], hdr, sizeof hdr, 0);
    assert_int_equal(be64_get(hdr + 24), 9900);
    assert_int_equal(be32_get(hdr + 36), 2);
    for (int i = 0; i < 12; i++)
        free(files[i]);
    assert_int_equal(index_flush(ix), 0);
    index_close(ix);
}

static void test_same_ms_names(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 4, 2); /* one entry per file: many files per ms */
    int64_t out[64];

    for (int i = 0; i < 30; i++)
        put(ix, "k", i * 100, T0 + i * 1000);
    assert_int_equal(count_files(c->dir), 30);
    index_close(ix);

    /* Names sort in creation order, so after a reopen the chain order is intact. */
    ix = open_ix(c->dir, 4, 2);
    assert_int_equal(index_end_phys(ix), 2900);
    assert_int_equal(query(ix, "k", ALL, 64, out), 30);
    for (int i = 0; i < 30; i++)
        assert_int_equal(out[i], (29 - i) * 100);
    put(ix, "k", 3000, T0 + 30000);
    assert_int_equal(count_files(c->dir), 31);
    assert_int_equal(query(ix, "k", ALL, 1, out), 1);
    assert_int_equal(out[0], 3000);
    index_close(ix);
}

static void test_reopen_and_idempotent_skip(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 8, 10);
    int64_t out[64];

    fill_rolling(ix, 30);
    assert_int_equal(index_flush(ix), 0);
    index_close(ix);

    ix = open_ix(c->dir, 8, 10);
    assert_int_equal(count_files(c->dir), 4);
    assert_int_equal(index_end_phys(ix), 2900);
    assert_int_equal(query(ix, "k2", ALL, 64, out), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(out[i], (27 - i * 5) * 100);

    put(ix, "late", 1000, T0 + 50000); /* below endPhyOffset: a re-dispatch, skipped */
    assert_int_equal(query(ix, "late", ALL, 64, out), 0);
    put(ix, "k4", 2900, T0 + 29000); /* == endPhyOffset: indexed again, one offset back */
    assert_int_equal(query(ix, "k4", T0 + 29000, T0 + 29000, 64, out), 1);
    assert_int_equal(out[0], 2900);
    put(ix, "late", 3000, T0 + 50000);
    assert_int_equal(query(ix, "late", ALL, 64, out), 1);
    assert_int_equal(out[0], 3000);
    index_close(ix);

    /* Opening with other parameters makes every file the wrong size: all are dropped. */
    ix = open_ix(c->dir, 16, 10);
    assert_int_equal(count_files(c->dir), 0);
    assert_int_equal(index_end_phys(ix), 0);
    index_close(ix);
}

/* Records r0..r29 at phys i*100, 9 per file:
 * file 1 r0..r8 (begin 0, end 800), file 2 r9..r17 (begin 800), file 3 r18..r26 (begin 1700),
 * file 4 r27..r29 (begin 2600, end 2900). */
static void fill_unique(index_svc_t *ix, int from, int to)
{
    char key[16];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof key, "r%d", i);
        put(ix, key, i * 100, T0 + i * 1000);
    }
}

static int query_r(index_svc_t *ix, int i, int64_t *out)
{
    char key[16];
    snprintf(key, sizeof key, "r%d", i);
    return query(ix, key, ALL, 64, out);
}

static void test_truncate_after_reindexes(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 8, 10);
    int64_t out[64];

    fill_unique(ix, 0, 30);
    assert_int_equal(count_files(c->dir), 4);
    assert_int_equal(index_truncate_after(ix, 1500, 0), 0);
    assert_int_equal(count_files(c->dir), 2); /* files 3 and 4 began at or after the cut */
    assert_int_equal(index_end_phys(ix), 1500);
    assert_int_equal(query_r(ix, 20, out), 0);
    assert_int_equal(query_r(ix, 10, out), 1);

    fill_unique(ix, 15, 30); /* re-dispatch from the cut */
    assert_int_equal(index_end_phys(ix), 2900);
    assert_int_equal(query_r(ix, 15, out), 1); /* the old and the new entry: one offset */
    assert_int_equal(out[0], 1500);
    assert_int_equal(query_r(ix, 20, out), 1);
    assert_int_equal(out[0], 2000);
    assert_int_equal(query_r(ix, 29, out), 1);

    /* A cut at or before every file's begin drops them all and indexing starts over. */
    assert_int_equal(index_truncate_after(ix, 0, 0), 0);
    assert_int_equal(count_files(c->dir), 0);
    assert_int_equal(index_end_phys(ix), 0);
    assert_int_equal(query_r(ix, 29, out), 0);
    fill_unique(ix, 0, 3);
    assert_int_equal(query_r(ix, 2, out), 1);
    assert_int_equal(count_files(c->dir), 1);

    /* A cut past the end changes nothing. */
    assert_int_equal(index_truncate_after(ix, 100000, 0), 0);
    assert_int_equal(index_end_phys(ix), 200);
    index_close(ix);
}

/* A power cut tears the newest file: every slot was last rewritten after the durable point (it
 * points at entry 15, past the cut) and the entries after the cut never reached the disk. The
 * entries below the cut are intact; after the truncation every one of them is found again. */
static void test_truncate_after_torn_slots(void **state)
{
    struct ctx *c = *state;
    const int32_t slots = 8, entries = 100;
    index_svc_t *ix = open_ix(c->dir, slots, entries);
    char path[FERRY_PATH_MAX];
    int64_t out[64];
    uint8_t b[4];

    fill_unique(ix, 0, 20); /* entry n holds r(n-1) at phys (n-1) * 100 */
    only_file(c->dir, path, sizeof path);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    be32_put(b, 15);
    for (int32_t i = 0; i < slots; i++)
        assert_int_equal(pwrite(fd, b, 4, 40 + i * 4), 4);
    uint8_t zero[10 * 20] = {0};
    assert_int_equal(pwrite(fd, zero, sizeof zero, 40 + slots * 4 + 11 * 20), (ssize_t)sizeof zero);
    close(fd);
    assert_int_equal(query_r(ix, 3, out), 0); /* the tear hides old entries */

    assert_int_equal(index_truncate_after(ix, 1000, 0), 0);
    assert_int_equal(index_end_phys(ix), 1000);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(query_r(ix, i, out), 1);
        assert_int_equal(out[0], i * 100);
    }
    assert_int_equal(query_r(ix, 12, out), 0);
    fill_unique(ix, 10, 20); /* re-dispatch from the cut */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(query_r(ix, i, out), 1);
        assert_int_equal(out[0], i * 100);
    }

    /* The header page can be older than a slot page: it still ends below the cut while the
     * slots point past its count. Only a crash (@torn) tells that the file needs rebuilding. */
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    be32_put(b, 30);
    for (int32_t i = 0; i < slots; i++)
        assert_int_equal(pwrite(fd, b, 4, 40 + i * 4), 4);
    close(fd);
    assert_int_equal(index_truncate_after(ix, 5000, 0), 0);
    assert_int_equal(query_r(ix, 3, out), 0);
    assert_int_equal(index_truncate_after(ix, 5000, 1), 0);
    assert_int_equal(index_end_phys(ix), 1900);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(query_r(ix, i, out), 1);
        assert_int_equal(out[0], i * 100);
    }
    index_close(ix);
}

static void test_delete_below_keeps_newest(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 8, 10);
    int64_t out[64];

    fill_unique(ix, 0, 30);
    assert_int_equal(index_delete_below(ix, 800), 0); /* file 1 ends at 800: kept */
    assert_int_equal(count_files(c->dir), 4);
    assert_int_equal(index_delete_below(ix, 1000), 0);
    assert_int_equal(count_files(c->dir), 3);
    assert_int_equal(query_r(ix, 0, out), 0);
    assert_int_equal(query_r(ix, 9, out), 1);
    assert_int_equal(out[0], 900);

    assert_int_equal(index_delete_below(ix, INT64_MAX), 0);
    assert_int_equal(count_files(c->dir), 1);
    assert_int_equal(query_r(ix, 26, out), 0);
    assert_int_equal(query_r(ix, 29, out), 1);
    assert_int_equal(index_end_phys(ix), 2900);
    fill_unique(ix, 30, 40);
    assert_int_equal(query_r(ix, 39, out), 1);
    index_close(ix);

    ix = open_ix(c->dir, 8, 10);
    assert_int_equal(query_r(ix, 0, out), 0);
    assert_int_equal(query_r(ix, 39, out), 1);
    index_close(ix);
}

static void test_corrupt_files_deleted_at_open(void **state)
{
    struct ctx *c = *state;
    const int32_t slots = 8, max = 10;
    int64_t size = file_size(slots, max);
    index_svc_t *ix = open_ix(c->dir, slots, max);
    int64_t out[64];
    uint8_t hdr[40];
    char path[FERRY_PATH_MAX];

    fill_unique(ix, 0, 5);
    index_close(ix);

    /* Names older than the valid file, so that it stays the newest. */
    path_in(path, sizeof path, c->dir, "20000101000000000");
    write_file(path, NULL, 0, 100); /* wrong size */
    memset(hdr, 0, sizeof hdr);     /* indexCount 0 */
    path_in(path, sizeof path, c->dir, "20000101000000001");
    write_file(path, hdr, sizeof hdr, size);
    be32_put(hdr + 36, (uint32_t)max + 5); /* indexCount > max */
    path_in(path, sizeof path, c->dir, "20000101000000002");
    write_file(path, hdr, sizeof hdr, size);
    be32_put(hdr + 36, 3);
    be32_put(hdr + 32, (uint32_t)slots + 1); /* hashSlotCount > slots */
    path_in(path, sizeof path, c->dir, "20000101000000003");
    write_file(path, hdr, sizeof hdr, size);
    be32_put(hdr + 32, 0xFFFFFFFFu); /* negative hashSlotCount */
    path_in(path, sizeof path, c->dir, "20000101000000004");
    write_file(path, hdr, sizeof hdr, size);
    path_in(path, sizeof path, c->dir, "20000101000000005.tmp"); /* interrupted create */
    write_file(path, NULL, 0, size);
    path_in(path, sizeof path, c->dir, "README"); /* not ours: left alone */
    write_file(path, "hi", 2, 2);
    path_in(path, sizeof path, c->dir, "123");
    write_file(path, NULL, 0, size);

    ix = open_ix(c->dir, slots, max);
    assert_int_equal(count_files(c->dir), 1);
    path_in(path, sizeof path, c->dir, "README");
    assert_int_equal(access(path, F_OK), 0);
    path_in(path, sizeof path, c->dir, "123");
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(index_end_phys(ix), 400);
    assert_int_equal(query_r(ix, 3, out), 1);
    assert_int_equal(out[0], 300);
    index_close(ix);
}

static void test_garbage_never_crashes(void **state)
{
    struct ctx *c = *state;
    const int32_t slots = 16, max = 50;
    int64_t size = file_size(slots, max);
    index_svc_t *ix = open_ix(c->dir, slots, max);
    uint64_t rnd = test_seed();
    char path[FERRY_PATH_MAX], key[16];
    int64_t out[64];
    uint8_t *junk = malloc((size_t)size);

    fill_unique(ix, 0, 45);
    only_file(c->dir, path, sizeof path);

    /* Garbage in the slots and entries while the file is mapped. */
    for (int round = 0; round < 20; round++) {
        for (int64_t i = 0; i < size; i++)
            junk[i] = (uint8_t)test_rand(&rnd);
        pwrite_at(path, junk + 40, (size_t)(size - 40), 40);
        for (int q = 0; q < 200; q++) {
            snprintf(key, sizeof key, "r%d", (int)(test_rand(&rnd) % 60));
            int64_t b = (int64_t)(test_rand(&rnd) >> 1), e = (int64_t)(test_rand(&rnd) >> 1);
            query(ix, key, ALL, 64, out);
            query(ix, key, b < e ? b : e, b < e ? e : b, 64, out);
        }
        if (round % 5 == 4) { /* and in the header too */
            pwrite_at(path, junk, 40, 0);
            for (int q = 0; q < 50; q++) {
                snprintf(key, sizeof key, "r%d", q);
                query(ix, key, ALL, 64, out);
            }
            assert_int_equal(index_flush(ix), 0);
        }
    }
    /* Puts into a garbage file must not crash either (they may be skipped or roll over). */
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "r%d", i);
        int rc = index_put(ix, TOPIC, key, strlen(key), 100000 + i, T0);
        assert_int_equal(rc, 0);
    }
    index_close(ix);

    /* Reopen: the garbage file is either dropped (bad header) or kept; both must work. */
    ix = open_ix(c->dir, slots, max);
    for (int i = 0; i < 60; i++)
        query_r(ix, i, out);
    index_close(ix);
    free(junk);
}

/* A hand-made chain that loops (5 -> 7 -> 5) and one that points at itself. */
static void test_chain_loop_guard(void **state)
{
    struct ctx *c = *state;
    const int32_t slots = 4, max = 20;
    index_svc_t *ix = open_ix(c->dir, slots, max);
    char path[FERRY_PATH_MAX];
    uint8_t hdr[40], slot[4], e[20];
    int64_t out[64];

    put(ix, "seed", 1, T0); /* creates the file */
    only_file(c->dir, path, sizeof path);
    int32_t h = java_string_hash(TOPIC "#k", strlen(TOPIC "#k"));
    h = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    int64_t slot_off = 40 + (int64_t)((uint32_t)h % (uint32_t)slots) * 4;
    int64_t ent0 = 40 + (int64_t)slots * 4;

    memset(hdr, 0, sizeof hdr);
    be64_put(hdr + 0, (uint64_t)T0);
    be64_put(hdr + 8, (uint64_t)T0 + 100000);
    be32_put(hdr + 32, 1);
    be32_put(hdr + 36, 10);
    pwrite_at(path, hdr, sizeof hdr, 0);
    be32_put(slot, 5);
    pwrite_at(path, slot, 4, slot_off);
    be32_put(e + 0, (uint32_t)h);
    be64_put(e + 4, 500);
    be32_put(e + 12, 0);
    be32_put(e + 16, 7); /* prev newer than itself */
    pwrite_at(path, e, 20, ent0 + 5 * 20);
    be64_put(e + 4, 700);
    be32_put(e + 16, 5);
    pwrite_at(path, e, 20, ent0 + 7 * 20);
    assert_int_equal(query(ix, "k", ALL, 64, out), 1);
    assert_int_equal(out[0], 500);

    be32_put(e + 16, 5); /* entry 5 points at itself */
    be64_put(e + 4, 500);
    pwrite_at(path, e, 20, ent0 + 5 * 20);
    assert_int_equal(query(ix, "k", ALL, 64, out), 1);

    be32_put(slot, 10); /* slot == indexCount: not written yet, empty */
    pwrite_at(path, slot, 4, slot_off);
    assert_int_equal(query(ix, "k", ALL, 64, out), 0);

    /* A put into that bucket must not chain to the bogus slot value. */
    put(ix, "k", 800, T0 + 5000);
    pread_at(path, e, 20, ent0 + 10 * 20);
    assert_int_equal(be32_get(e + 0), (uint32_t)h);
    assert_int_equal(be64_get(e + 4), 800);
    assert_int_equal(be32_get(e + 12), 5);
    assert_int_equal(be32_get(e + 16), 0);
    pread_at(path, slot, 4, slot_off);
    assert_int_equal(be32_get(slot), 10);
    pread_at(path, hdr, sizeof hdr, 0);
    assert_int_equal(be32_get(hdr + 32), 2);        /* hashSlotCount */
    assert_int_equal(be32_get(hdr + 36), 11);       /* indexCount */
    assert_int_equal(be64_get(hdr + 24), 800);      /* endPhyOffset */
    assert_int_equal(be64_get(hdr + 8), T0 + 5000); /* endTimestamp */
    assert_int_equal(query(ix, "k", ALL, 64, out), 1);
    assert_int_equal(out[0], 800);

    be32_put(slot, 0x80000000u); /* negative */
    pwrite_at(path, slot, 4, slot_off);
    assert_int_equal(query(ix, "k", ALL, 64, out), 0);

    /* Huge timeDiff and beginTimestamp must not overflow. */
    be32_put(slot, 5);
    pwrite_at(path, slot, 4, slot_off);
    be32_put(e + 12, 0x7FFFFFFF);
    be32_put(e + 16, 0);
    pwrite_at(path, e, 20, ent0 + 5 * 20);
    be64_put(hdr + 0, (uint64_t)INT64_MAX - 5);
    be64_put(hdr + 8, (uint64_t)INT64_MAX);
    pwrite_at(path, hdr, sizeof hdr, 0);
    assert_int_equal(query(ix, "k", ALL, 64, out), 0);
    index_close(ix);
}

static void test_put_fails_when_dir_removed(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = open_ix(c->dir, 4, 2);
    int64_t out[64];

    put(ix, "k", 100, T0); /* the file is now full */
    test_rmdir(c->dir);
    int rc = index_put(ix, TOPIC, "k", 1, 200, T0 + 1000);
    assert_true(rc < 0);
    assert_int_equal(index_end_phys(ix), 100);
    assert_int_equal(query(ix, "k", ALL, 64, out), 1); /* the mapping outlives the name */
    assert_int_equal(out[0], 100);
    assert_int_equal(index_flush(ix), 0);
    index_close(ix);
}

static void test_open_invalid(void **state)
{
    struct ctx *c = *state;
    index_svc_t *ix = NULL;
    char path[FERRY_PATH_MAX];

    assert_int_equal(index_open(c->dir, 0, 10, &ix), FERRY_EINVAL);
    assert_int_equal(index_open(c->dir, 8, 1, &ix), FERRY_EINVAL);
    assert_int_equal(index_open(c->dir, -1, 10, &ix), FERRY_EINVAL);
    path_in(path, sizeof path, c->dir, "afile");
    write_file(path, "x", 1, 1);
    assert_true(index_open(path, 8, 10, &ix) < 0);
    assert_null(ix);
    index_close(NULL);

    path_in(path, sizeof path, c->dir, "sub/index"); /* created with parents */
    ix = open_ix(path, 8, 10);
    put(ix, "k", 1, T0);
    assert_int_equal(count_files(path), 1);
    index_close(ix);
}

struct reader {
    index_svc_t *ix;
    atomic_int stop;
    long queries;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    int64_t out[64];

    while (!atomic_load(&r->stop)) {
        int n = index_query(r->ix, TOPIC, "k1", 2, ALL, 64, out);
        if (n < 0 || n > 64)
            abort();
        for (int i = 1; i < n; i++)
            if (out[i] >= out[i - 1])
                abort(); /* newest first */
        if (index_flush(r->ix) != 0)
            abort();
        (void)index_end_phys(r->ix);
        r->queries++;
    }
    return NULL;
}

static void test_concurrent_query_flush(void **state)
{
    struct ctx *c = *state;
    struct reader r = {.ix = open_ix(c->dir, 16, 50)};
    pthread_t th;
    char key[16];
    int64_t out[64];

    atomic_init(&r.stop, 0);
    assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i % 4);
        put(r.ix, key, i * 10, T0 + i * 1000);
        if (i % 200 == 199)
            assert_int_equal(index_delete_below(r.ix, (i - 300) * 10), 0);
    }
    atomic_store(&r.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(r.queries > 0);
    assert_int_equal(query(r.ix, "k1", ALL, 64, out), 64);
    assert_int_equal(out[0], 1997 * 10);
    index_close(r.ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_java_hash_known),
        cmocka_unit_test_setup_teardown(test_put_query_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_and_empty_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_collisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_collisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_limit_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollover_spans_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_ms_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_idempotent_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_after_reindexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_below_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files_deleted_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_never_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_loop_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_fails_when_dir_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_query_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_after_torn_slots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
