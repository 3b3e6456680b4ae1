/* Store behaviour on real files: round trips, rollover, tag filtering, offsets by time, lookup
 * by key, clean restarts, size limits, flush timeouts, async completion and expiry. */
#include "common/clock.h"
#include "common/err.h"
#include "store/msg.h"
#include "store/store.h"

#include "../lib/testlib.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

struct fx {
    char dir[512];
    struct store_config cfg;
    store_t *st;
};

static void cfg_small(struct fx *f, int sync)
{
    store_config_defaults(&f->cfg);
    snprintf(f->cfg.storePathRootDir, sizeof f->cfg.storePathRootDir, "%s", f->dir);
    f->cfg.mappedFileSizeCommitLog = 256 * 1024;
    f->cfg.maxMessageSize = 16 * 1024;
    f->cfg.mappedFileSizeConsumeQueue = 20 * 100;
    f->cfg.maxHashSlotNum = 256;
    f->cfg.maxIndexNum = 1000;
    f->cfg.flushDiskType = sync ? SYNC_FLUSH : ASYNC_FLUSH;
    f->cfg.flushConsumeQueueThoroughInterval = 100;
}

static void reopen(struct fx *f)
{
    char err[512] = "";
    if (f->st)
        store_close(f->st);
    f->st = NULL;
    int rc = store_open(&f->cfg, &f->st, err, sizeof err);
    if (rc)
        fail_msg("store_open: %s (%s)", err, ferry_strerror(rc));
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    test_tmpdir(f->dir, sizeof f->dir, "store");
    cfg_small(f, 1);
    reopen(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->st);
    test_rmdir(f->dir);
    free(f);
    return 0;
}

/* A message whose body encodes (topic, seq) so reads can be checked byte for byte. */
static void make_body(char *buf, size_t len, int seq)
{
    int n = snprintf(buf, len, "seq=%d;", seq);
    for (size_t i = (size_t)n; i < len; i++)
        buf[i] = (char)('a' + (seq + i) % 26);
}

static int put(store_t *st, const char *topic, int qid, int seq, size_t body_len, const char *tag,
               const char *keys, struct put_result *res)
{
    char body[20000], props[256];
    make_body(body, body_len, seq);
    int pl = 0;
    if (tag)
        pl += snprintf(props + pl, sizeof props - (size_t)pl, "TAGS\001%s\002", tag);
    if (keys)
        pl += snprintf(props + pl, sizeof props - (size_t)pl, "KEYS\001%s\002", keys);
    struct store_msg m = {0};
    m.topic = topic;
    m.queue_id = qid;
    m.born_ts = clock_wall_ms();
    m.born_host.addr[0] = 127;
    m.born_host.addr[3] = 1;
    m.born_host.port = 1234;
    m.body = body;
    m.body_len = (uint32_t)body_len;
    m.props = props;
    m.props_len = (uint32_t)pl;
    struct put_result r;
    int rc = store_put(st, &m, 1, res ? res : &r);
    return rc;
}

static void check_body(const struct store_slice *s, int seq, size_t body_len)
{
    struct msg_view v;
    assert_int_equal(msg_parse(s->data, s->len, &v), 0);
    assert_int_equal(msg_verify(&v, 1), 0);
    char want[20000];
    make_body(want, body_len, seq);
    assert_int_equal(v.body_len, body_len);
    assert_memory_equal(v.body, want, body_len);
}

static int get(store_t *st, const char *topic, int qid, int64_t off, int max, const int64_t *tags,
               int ntags, struct store_slice *out, struct get_result *res)
{
    struct get_request req = {topic, qid, off, max, 1 << 20, tags, ntags};
    res->msgs = out;
    return store_get(st, &req, res);
}

static void roundtrip_and_rollover(void **state)
{
    struct fx *f = *state;
    /* ~600 KiB over 256 KiB segments: at least two rollovers with blank markers. */
    for (int i = 0; i < 500; i++) {
        struct put_result r;
        assert_int_equal(put(f->st, "T1", i % 2, i, 1000 + (size_t)(i % 700), "A", NULL, &r), 0);
        assert_int_equal(r.queue_offset, i / 2);
    }
    assert_true(store_max_phys(f->st) > 2 * 256 * 1024);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    for (int q = 0; q < 2; q++) {
        assert_int_equal(store_max_offset(f->st, "T1", q), 250);
        int64_t off = 0;
        while (off < 250) {
            struct store_slice s[32];
            struct get_result res;
            assert_int_equal(get(f->st, "T1", q, off, 32, NULL, 0, s, &res), 0);
            assert_int_equal(res.status, GET_FOUND);
            for (int i = 0; i < res.n; i++) {
                int seq = (int)(off + i) * 2 + q;
                assert_int_equal(s[i].queue_offset, off + i);
                check_body(&s[i], seq, 1000 + (size_t)(seq % 700));
            }
            off += res.n;
            assert_int_equal(res.next_offset, off);
            store_release(s, res.n);
        }
    }
    struct store_slice s[1];
    struct get_result res;
    get(f->st, "T1", 0, 250, 1, NULL, 0, s, &res);
    assert_int_equal(res.status, GET_OFFSET_OVERFLOW_ONE);
    get(f->st, "T1", 0, 999, 1, NULL, 0, s, &res);
    assert_int_equal(res.status, GET_OFFSET_OVERFLOW_BADLY);
    assert_int_equal(res.next_offset, 250);
    get(f->st, "Nope", 0, 0, 1, NULL, 0, s, &res);
    assert_int_equal(res.status, GET_NO_MATCHED_LOGIC_QUEUE);

    /* Everything survives a clean restart, and appends continue the queue offsets. */
    reopen(f);
    assert_int_equal(store_max_offset(f->st, "T1", 1), 250);
    struct put_result r;
    assert_int_equal(put(f->st, "T1", 1, 1000, 100, "A", NULL, &r), 0);
    assert_int_equal(r.queue_offset, 250);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    struct store_slice two[2];
    get(f->st, "T1", 1, 249, 2, NULL, 0, two, &res);
    assert_int_equal(res.n, 2);
    check_body(&two[0], 499, 1000 + 499 % 700);
    check_body(&two[1], 1000, 100);
    store_release(two, res.n);
}

static void tag_filter(void **state)
{
    struct fx *f = *state;
    const char *tags[] = {"TagA", "TagB", "TagC"};
    for (int i = 0; i < 90; i++)
        assert_int_equal(put(f->st, "TT", 0, i, 200, tags[i % 3], NULL, NULL), 0);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    int64_t want = java_string_hash("TagB", 4);
    int64_t off = 0, seen = 0;
    while (off < 90) {
        struct store_slice s[8];
        struct get_result res;
        get(f->st, "TT", 0, off, 8, &want, 1, s, &res);
        for (int i = 0; i < res.n; i++) {
            assert_int_equal(s[i].queue_offset % 3, 1);
            check_body(&s[i], (int)s[i].queue_offset, 200);
            seen++;
        }
        store_release(s, res.n);
        assert_true(res.next_offset > off);
        off = res.next_offset;
    }
    assert_int_equal(seen, 30);
}

static void offset_by_time_and_key(void **state)
{
    struct fx *f = *state;
    int64_t t_mid = 0;
    for (int i = 0; i < 40; i++) {
        if (i == 20) {
            /* Make sure the second half is stored at a later millisecond. */
            int64_t t = clock_wall_ms();
            while (clock_wall_ms() <= t + 2)
                ;
            t_mid = clock_wall_ms();
        }
        char keys[64];
        snprintf(keys, sizeof keys, "order-%d shared", i);
        assert_int_equal(put(f->st, "TK", 0, i, 300, "X", keys, NULL), 0);
    }
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    assert_int_equal(store_offset_by_time(f->st, "TK", 0, t_mid), 20);
    assert_int_equal(store_offset_by_time(f->st, "TK", 0, 0), 0);
    assert_int_equal(store_offset_by_time(f->st, "TK", 0, clock_wall_ms() + 100000), 40);
    assert_true(store_time_at(f->st, "TK", 0, 20) >= t_mid);

    struct store_slice s[64];
    int n = store_query_by_key(f->st, "TK", "order-7", 0, INT64_MAX, s, 64);
    assert_int_equal(n, 1);
    check_body(&s[0], 7, 300);
    store_release(s, n);
    n = store_query_by_key(f->st, "TK", "shared", 0, INT64_MAX, s, 64);
    assert_int_equal(n, 40);
    store_release(s, n);
    assert_int_equal(store_query_by_key(f->st, "Other", "order-7", 0, INT64_MAX, s, 64), 0);

    /* The offset message id lookup: a record by its CommitLog offset, CRC-checked. */
    struct put_result r;
    assert_int_equal(put(f->st, "TK", 1, 99, 300, NULL, NULL, &r), 0);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    assert_int_equal(store_read_at(f->st, r.phys_offset, &s[0]), 0);
    check_body(&s[0], 99, 300);
    store_release(s, 1);
    assert_int_not_equal(store_read_at(f->st, r.phys_offset + 1, &s[0]), 0);
}

static void limits_and_bad_input(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f->st, "TL", 0, 1, 16 * 1024 + 1, NULL, NULL, NULL), FERRY_ETOOBIG);
    assert_int_equal(put(f->st, "TL", 0, 1, 16 * 1024, NULL, NULL, NULL), 0);
    char topic[200];
    memset(topic, 'x', sizeof topic - 1);
    topic[sizeof topic - 1] = 0;
    assert_int_equal(put(f->st, topic, 0, 1, 10, NULL, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(put(f->st, "", 0, 1, 10, NULL, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(put(f->st, "TL", -1, 1, 10, NULL, NULL, NULL), FERRY_EINVAL);
    /* Nothing refused took a queue offset. */
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    assert_int_equal(store_max_offset(f->st, "TL", 0), 1);

    /* A config that cannot hold maxMessageSize is refused with a reason. */
    struct store_config bad = f->cfg;
    bad.maxMessageSize = 1 << 20;
    store_t *st2 = NULL;
    char err[512] = "";
    assert_int_equal(store_open(&bad, &st2, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "maxMessageSize"));
    /* A second store on the same directory is refused (lock file). */
    assert_int_equal(store_open(&f->cfg, &st2, err, sizeof err), FERRY_ELOCKED);
}

static void flush_timeout(void **state)
{
    struct fx *f = *state;
    f->cfg.debugSyncDelayMs = 400;
    f->cfg.syncFlushTimeout = 100;
    reopen(f);
    struct put_result r;
    /* Stored, but not durable in time: FLUSH_DISK_TIMEOUT, with the result filled in. */
    assert_int_equal(put(f->st, "TF", 0, 1, 100, NULL, NULL, &r), FERRY_ETIMEDOUT);
    assert_int_equal(r.queue_offset, 0);
    /* Once the sync lands it becomes visible. */
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    int64_t deadline = clock_mono_ms() + 5000;
    while (store_max_offset(f->st, "TF", 0) < 1 && clock_mono_ms() < deadline)
        store_wait_dispatched(f->st, 100);
    assert_int_equal(store_max_offset(f->st, "TF", 0), 1);
    f->cfg.debugSyncDelayMs = 0;
    f->cfg.syncFlushTimeout = 5000;
}

struct async_ctx {
    pthread_mutex_t mu;
    int calls, rc;
};

static void on_put(void *arg, int rc)
{
    struct async_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->rc = rc;
    pthread_mutex_unlock(&c->mu);
}

static void async_put(void **state)
{
    struct fx *f = *state;
    struct async_ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    struct store_msg m = {0};
    m.topic = "TA";
    m.body = "x";
    m.body_len = 1;
    struct put_result r;
    int rc = store_put_async(f->st, &m, 1, &r, on_put, &c);
    assert_true(rc == 1 || rc == 0);
    int64_t deadline = clock_mono_ms() + 5000;
    int calls = 0;
    while (rc == 1 && clock_mono_ms() < deadline) {
        pthread_mutex_lock(&c.mu);
        calls = c.calls;
        pthread_mutex_unlock(&c.mu);
        if (calls)
            break;
    }
    if (rc == 1) {
        assert_int_equal(calls, 1);
        assert_int_equal(c.rc, 0);
    }
    assert_int_equal(r.queue_offset, 0);
}

static void batch_put(void **state)
{
    struct fx *f = *state;
    struct store_msg m[5];
    struct put_result r[5];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 5; i++) {
        m[i].topic = "TB";
        m[i].queue_id = 2;
        m[i].body = "batch";
        m[i].body_len = 5;
    }
    assert_int_equal(store_put(f->st, m, 5, r), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].queue_offset, i);
        if (i)
            assert_int_equal(r[i].phys_offset, r[i - 1].phys_offset + r[i - 1].size);
    }
}

/* store_put_multi_async: wait for its callback (1) and return the final code. */
static int multi_wait(int rc, struct async_ctx *c)
{
    int64_t deadline = clock_mono_ms() + 5000;
    while (rc == 1 && clock_mono_ms() < deadline) {
        pthread_mutex_lock(&c->mu);
        int calls = c->calls;
        pthread_mutex_unlock(&c->mu);
        if (calls) {
            assert_int_equal(calls, 1);
            return c->rc;
        }
        sched_yield();
    }
    assert_int_equal(rc, 0);
    return 0;
}

/* Independent messages in one multi-append: each is stored or refused on its own, stored ones
 * get consecutive queue offsets per queue and contiguous CommitLog offsets, both CRCs hold,
 * and one callback completes them all after the sync. */
static void multi_put_independent(void **state)
{
    struct fx *f = *state;
    enum { N = 9 };
    static char big[20000];
    char bodies[N][64];
    struct store_msg m[N];
    struct put_result r[N];
    int rcs[N];
    memset(m, 0, sizeof m);
    for (int i = 0; i < N; i++) {
        make_body(bodies[i], 64, i);
        m[i].topic = i % 2 ? "MB" : "MA";
        m[i].queue_id = i % 3 == 0 ? 1 : 0;
        m[i].born_ts = clock_wall_ms();
        m[i].body = bodies[i];
        m[i].body_len = 64;
        m[i].props = "TAGS\001t\002";
        m[i].props_len = 7;
    }
    m[4].body = big; /* over maxMessageSize (16 KiB) */
    m[4].body_len = sizeof big;
    m[7].topic = ""; /* no topic */
    struct async_ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    int rc = store_put_multi_async(f->st, m, N, rcs, r, on_put, &c);
    assert_int_equal(rc, 1);
    assert_int_equal(multi_wait(rc, &c), 0);
    assert_int_equal(rcs[4], FERRY_ETOOBIG);
    assert_int_equal(rcs[7], FERRY_EINVAL);
    int64_t next_q[2][2] = {{0, 0}, {0, 0}}, phys = 0;
    for (int i = 0; i < N; i++) {
        if (i == 4 || i == 7)
            continue;
        assert_int_equal(rcs[i], 0);
        int t = i % 2, q = m[i].queue_id;
        assert_int_equal(r[i].queue_offset, next_q[t][q]++);
        assert_int_equal(r[i].phys_offset, phys);
        phys += r[i].size;
    }
    assert_int_equal(store_max_phys(f->st), phys);
    /* Everything reads back with valid CRCs, also after a restart. */
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
        for (int i = 0; i < N; i++) {
            if (i == 4 || i == 7)
                continue;
            struct store_slice s;
            assert_int_equal(store_read_at(f->st, r[i].phys_offset, &s), 0);
            check_body(&s, i, 64);
            store_release(&s, 1);
        }
        assert_int_equal(store_max_offset(f->st, "MA", 0), next_q[0][0]);
        assert_int_equal(store_max_offset(f->st, "MB", 1), next_q[1][1]);
        reopen(f);
    }
    /* Nothing accepted: final at once, no callback. */
    struct async_ctx c2 = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    assert_int_equal(store_put_multi_async(f->st, &m[7], 1, rcs, r, on_put, &c2), 0);
    assert_int_equal(rcs[0], FERRY_EINVAL);
    assert_int_equal(c2.calls, 0);
}

/* A multi-append larger than what is left of the segment continues in the next one (blank
 * marker in between); ASYNC_FLUSH completes it at once. After a crash that tore its last
 * record, recovery keeps every record before it. */
static void multi_put_rollover_and_torn_tail(void **state)
{
    struct fx *f = *state;
    cfg_small(f, 0);
    reopen(f);
    enum { N = 40 };
    static char bodies[N][8000];
    struct store_msg m[N];
    struct put_result r[N];
    int rcs[N];
    memset(m, 0, sizeof m);
    for (int i = 0; i < N; i++) {
        make_body(bodies[i], sizeof bodies[i], i);
        m[i].topic = "MR";
        m[i].body = bodies[i];
        m[i].body_len = sizeof bodies[i];
    }
    struct async_ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    assert_int_equal(store_put_multi_async(f->st, m, N, rcs, r, on_put, &c), 0);
    int rolled = -1;
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs[i], 0);
        assert_int_equal(r[i].queue_offset, i);
        if (i && r[i].phys_offset != r[i - 1].phys_offset + r[i - 1].size) {
            assert_int_equal(rolled, -1);
            rolled = i;
            assert_int_equal(r[i].phys_offset, 256 * 1024);
        }
    }
    assert_true(rolled > 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    struct store_slice s[N];
    struct get_result res;
    get(f->st, "MR", 0, 0, N, NULL, 0, s, &res);
    assert_int_equal(res.n, N);
    for (int i = 0; i < N; i++)
        check_body(&s[i], i, sizeof bodies[i]);
    store_release(s, res.n);
    /* Tear the last record (a crash in the middle of the batch's write) and recover. */
    store_close(f->st);
    f->st = NULL;
    char path[700], abort_path[700];
    snprintf(path, sizeof path, "%s/commitlog/%020d", f->dir, 256 * 1024);
    snprintf(abort_path, sizeof abort_path, "%s/abort", f->dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    int64_t off = r[N - 1].phys_offset - 256 * 1024 + r[N - 1].size - 100;
    assert_int_equal(pwrite(fd, "torn", 4, off), 4);
    close(fd);
    fd = open(abort_path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    reopen(f);
    assert_int_equal(store_max_offset(f->st, "MR", 0), N - 1);
    assert_int_equal(store_max_phys(f->st), r[N - 1].phys_offset);
    get(f->st, "MR", 0, 0, N, NULL, 0, s, &res);
    assert_int_equal(res.n, N - 1);
    for (int i = 0; i < N - 1; i++)
        check_body(&s[i], i, sizeof bodies[i]);
    store_release(s, res.n);
}

/* A failed sync fails every message of the multi-append (one waiter for all). */
static void multi_put_failed_sync(void **state)
{
    struct fx *f = *state;
    f->cfg.debugSyncFailAfter = 1;
    reopen(f);
    struct store_msg m[3];
    struct put_result r[3];
    int rcs[3];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 3; i++) {
        m[i].topic = "MF";
        m[i].queue_id = i;
        m[i].body = "x";
        m[i].body_len = 1;
    }
    struct async_ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    int rc = store_put_multi_async(f->st, m, 3, rcs, r, on_put, &c);
    if (rc == 1 && multi_wait(rc, &c) == 0) { /* the open's own sync may have used the one */
        c = (struct async_ctx){PTHREAD_MUTEX_INITIALIZER, 0, -1};
        rc = store_put_multi_async(f->st, m, 3, rcs, r, on_put, &c);
    }
    assert_int_equal(rc, 1);
    assert_int_equal(multi_wait(rc, &c), FERRY_EFENCED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs[i], 0); /* accepted; the callback's code is their result */
    /* Later multi-appends are refused message by message. */
    assert_int_equal(store_put_multi_async(f->st, m, 3, rcs, r, on_put, &c), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs[i], FERRY_EFENCED);
    f->cfg.debugSyncFailAfter = 0;
    reopen(f);
}

static void expiry_deletes_old_segments(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 400; i++)
        assert_int_equal(put(f->st, "TE", 0, i, 2000, NULL, NULL, NULL), 0);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    /* Nothing is old enough: a manual round deletes nothing. */
    assert_int_equal(store_clean_expired_now(f->st), 0);
    assert_int_equal(store_min_phys(f->st), 0);
    /* Age every segment by 100 hours (fileReservedTime is 72). */
    char cl[600];
    snprintf(cl, sizeof cl, "%s/commitlog", f->dir);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "touch -d '100 hours ago' %s/0*", cl);
    assert_int_equal(system(cmd), 0);
    int deleted = store_clean_expired_now(f->st);
    assert_true(deleted >= 2);
    assert_true(store_min_phys(f->st) > 0);
    /* The queue's min offset moved past the deleted data; what is left reads fine. */
    int64_t min = store_min_offset(f->st, "TE", 0);
    assert_true(min > 0);
    struct store_slice s[4];
    struct get_result res;
    get(f->st, "TE", 0, 0, 4, NULL, 0, s, &res);
    assert_int_equal(res.status, GET_OFFSET_TOO_SMALL);
    assert_int_equal(res.next_offset, min);
    get(f->st, "TE", 0, min, 4, NULL, 0, s, &res);
    assert_int_equal(res.status, GET_FOUND);
    check_body(&s[0], (int)min, 2000);
    store_release(s, res.n);
    /* And a restart agrees. */
    reopen(f);
    assert_int_equal(store_min_offset(f->st, "TE", 0), min);
    assert_int_equal(store_max_offset(f->st, "TE", 0), 400);
}

static void deleted_queue_rebuilt_after_clean_stop(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 50; i++)
        assert_int_equal(put(f->st, "TR", 1, i, 500, NULL, NULL, NULL), 0);
    store_close(f->st);
    f->st = NULL;
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf %s/consumequeue/TR", f->dir);
    assert_int_equal(system(cmd), 0);
    reopen(f);
    assert_int_equal(store_max_offset(f->st, "TR", 1), 50);
    struct store_slice s[50];
    struct get_result res;
    get(f->st, "TR", 1, 0, 50, NULL, 0, s, &res);
    assert_int_equal(res.n, 50);
    for (int i = 0; i < 50; i++)
        check_body(&s[i], i, 500);
    store_release(s, res.n);
}

/* Serve queue @qid of @topic from 0 to @max (waiting out a rebuild, 5 s at most) and mark the
 * seq of each record served in @seen; returns how many were served. */
static int drain(struct fx *f, const char *topic, int qid, int64_t max, char *seen)
{
    struct store_slice s[64];
    struct get_result res;
    int64_t off = 0, deadline = clock_mono_ms() + 5000 * test_time_mult();
    int n = 0;
    while (off < max) {
        int rc = get(f->st, topic, qid, off, 64, NULL, 0, s, &res);
        if (rc == 0 && res.status == GET_FOUND) {
            for (int i = 0; i < res.n; i++) {
                struct msg_view v;
                assert_int_equal(msg_parse(s[i].data, s[i].len, &v), 0);
                int seq = atoi((const char *)v.body + 4);
                check_body(&s[i], seq, 2000);
                assert_false(seen[seq]);
                seen[seq] = 1;
                n++;
            }
            store_release(s, res.n);
        }
        if (rc == 0 && res.next_offset > off && res.next_offset <= max) {
            off = res.next_offset;
            continue;
        }
        /* The read found a damaged entry (or the queue is cut while it is rebuilt). */
        if (clock_mono_ms() > deadline)
            fail_msg("%s/%d stuck at %" PRId64 " (status %d, rc %d, max %" PRId64 ")", topic, qid,
                     off, res.status, rc, store_max_offset(f->st, topic, qid));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return n;
}

static void flip_record_byte(struct fx *f, int64_t phys, int field)
{
    int64_t seg = phys - phys % f->cfg.mappedFileSizeCommitLog;
    char path[700];
    snprintf(path, sizeof path, "%s/commitlog/%020" PRId64, f->dir, seg);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, phys - seg + field), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, phys - seg + field), 1);
    close(fd);
}

/* Bit rot in two records of a middle segment after a clean stop, where recovery does not scan:
 * one in the queue offset field (the record still parses), one in the size field (it does
 * not). Reads find the mismatches; each queue is rebuilt around its lost record, which becomes
 * a hole; every other record, and new ones, are served, also after another restart. This
 * used to leave the queue cut at the damaged entry and stop dispatch for the whole store. */
static void damaged_middle_records_become_holes(void **state)
{
    struct fx *f = *state;
    enum { N = 300 };
    struct put_result pr[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(put(f->st, "TH", i % 2, i, 2000, NULL, NULL, &pr[i]), 0);
    int64_t seg = f->cfg.mappedFileSizeCommitLog;
    assert_true(pr[N - 1].phys_offset > 2 * seg); /* three segments: the damage is in the middle */
    int va = -1, vb = -1;
    for (int i = 0; i < N && (va < 0 || vb < 0); i++) {
        if (pr[i].phys_offset < seg + 20000)
            continue;
        if (i % 2 == 0 && va < 0)
            va = i;
        if (i % 2 == 1 && vb < 0)
            vb = i;
    }
    store_close(f->st);
    f->st = NULL;
    flip_record_byte(f, pr[va].phys_offset, MSG_OFF_QUEUEOFFSET + 7);
    flip_record_byte(f, pr[vb].phys_offset, 1);
    for (int restart = 0; restart < 2; restart++) {
        reopen(f);
        char seen[N + 2] = {0};
        assert_int_equal(drain(f, "TH", 0, N / 2 + restart, seen), N / 2 - 1 + restart);
        assert_int_equal(drain(f, "TH", 1, N / 2, seen), N / 2 - 1);
        for (int i = 0; i < N; i++)
            assert_int_equal(seen[i], i != va && i != vb);
        if (restart)
            assert_true(seen[N]);
        /* The store still takes and serves messages in the damaged queue. */
        struct put_result r;
        assert_int_equal(put(f->st, "TH", 0, N + restart, 2000, NULL, NULL, &r), 0);
        assert_int_equal(r.queue_offset, N / 2 + restart);
        assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
        struct store_slice s[1];
        struct get_result res;
        assert_int_equal(get(f->st, "TH", 0, r.queue_offset, 1, NULL, 0, s, &res), 0);
        assert_int_equal(res.status, GET_FOUND);
        check_body(&s[0], N + restart, 2000);
        store_release(s, res.n);
    }
}

static void failed_sync_fences(void **state)
{
    struct fx *f = *state;
    f->cfg.debugSyncFailAfter = 5;
    reopen(f);
    int ok = 0, rc = 0;
    struct put_result r;
    while (ok < 100 && (rc = put(f->st, "TS", 0, ok, 100, NULL, NULL, &r)) == 0)
        ok++;
    /* The failed sync is never acknowledged, and every later append is refused. */
    assert_int_equal(rc, FERRY_EFENCED);
    assert_true(ok <= 5);
    assert_int_equal(store_write_state(f->st), FERRY_EFENCED);
    assert_int_equal(put(f->st, "TS", 0, 999, 100, NULL, NULL, &r), FERRY_EFENCED);
    /* Reads of what was acknowledged go on; nothing after the failed sync became visible. */
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    assert_int_equal(store_max_offset(f->st, "TS", 0), ok);
    /* A restart recovers, keeps every acknowledged record and accepts appends again. */
    f->cfg.debugSyncFailAfter = 0;
    reopen(f);
    assert_true(store_max_offset(f->st, "TS", 0) >= ok);
    struct store_slice s[8];
    struct get_result res;
    get(f->st, "TS", 0, 0, 8, NULL, 0, s, &res);
    assert_true(res.n >= ok);
    for (int i = 0; i < ok; i++)
        check_body(&s[i], i, 100);
    store_release(s, res.n);
    assert_int_equal(put(f->st, "TS", 0, 1000, 100, NULL, NULL, &r), 0);
}

/* The allocator's empty next segment survives a restart instead of being deleted and
 * zero-filled again (1 GiB of writes per restart with the default segment size). */
static void preallocated_segment_kept(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f->st, "TP", 0, 1, 100, NULL, NULL, NULL), 0);
    char next[700];
    snprintf(next, sizeof next, "%s/commitlog/%020d", f->dir, 256 * 1024);
    struct stat before, after;
    int64_t deadline = clock_mono_ms() + 10000;
    while (stat(next, &before) != 0 && clock_mono_ms() < deadline)
        store_wait_dispatched(f->st, 10);
    assert_int_equal(stat(next, &before), 0);
    reopen(f);
    assert_int_equal(stat(next, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(store_max_offset(f->st, "TP", 0), 1);
    /* And it is used when the first segment fills up. */
    for (int i = 0; i < 200; i++)
        assert_int_equal(put(f->st, "TP", 0, i, 2000, NULL, NULL, NULL), 0);
    assert_int_equal(stat(next, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_true(store_max_phys(f->st) > 256 * 1024);
}

static void async_flush_mode(void **state)
{
    struct fx *f = *state;
    cfg_small(f, 0);
    reopen(f);
    for (int i = 0; i < 100; i++)
        assert_int_equal(put(f->st, "TX", 0, i, 700, NULL, NULL, NULL), 0);
    assert_int_equal(store_wait_dispatched(f->st, 5000), 0);
    reopen(f);
    assert_int_equal(store_max_offset(f->st, "TX", 0), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(roundtrip_and_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(tag_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(offset_by_time_and_key, setup, teardown),
        cmocka_unit_test_setup_teardown(limits_and_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(flush_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(async_put, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_put, setup, teardown),
        cmocka_unit_test_setup_teardown(multi_put_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(multi_put_rollover_and_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(multi_put_failed_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(expiry_deletes_old_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(deleted_queue_rebuilt_after_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_middle_records_become_holes, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_sync_fences, setup, teardown),
        cmocka_unit_test_setup_teardown(preallocated_segment_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(async_flush_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
