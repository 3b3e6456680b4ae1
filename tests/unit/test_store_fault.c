/* Fault tests for the store, with real processes and real files:
 *
 *  - crash: a child appending under SYNC_FLUSH from several threads is killed with SIGKILL at
 *    random moments (some aimed at segment rollover, some during open), many times on the
 *    same directory; it reports each acknowledged append through a pipe;
 *  - corruption: copies of a store (closed cleanly, or left by a killed process) are damaged
 *    by hand: zeroed CommitLog tail, flipped bits, short segment, damaged or deleted
 *    ConsumeQueues, deleted or garbage checkpoint;
 *  - disk full: a small tmpfs filled by a ballast file (root only);
 *  - failing fsync: ext4 on a loop device that is cut short under the mounted file system, so
 *    writeback of the CommitLog pages fails for real with EIO (root only).
 *
 * After each, the store is reopened and held to store.h: every acknowledged record is there,
 * byte for byte, at its queue offset; queues have no holes; nothing that was never written or
 * that was damaged is served; a damaged store recovers or refuses to open with a clear error.
 *
 * Records are deterministic: the body starts with "r<round>-t<thread>-s<seq>-" and the rest of
 * the body, the topic, the queue and the KEYS property follow from that triple, so any record
 * read back can be checked on its own. The root-only tests run in a child process with its own
 * mount namespace, so even a crash cannot leave a mount behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "store/msg.h"
#include "store/store.h"
#include "../lib/testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/loop.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef FS_IOC_FIEMAP
#define FS_IOC_FIEMAP _IOWR('f', 11, struct fiemap)
#endif

#define KiB 1024
#define MiB (1024 * 1024)

#define NTOPICS       2
#define NQUEUES       4
#define BODY_MIN      50
#define BODY_MAX      3000
#define MAX_ROUNDS    64
#define CRASH_THREADS 4
#define CRASH_SEG     (256 * KiB) /* small: the children roll segments often */
#define SEG           (1 * MiB)

static const char *const topic_names[NTOPICS] = {"FaultTopicA", "FaultTopicB"};

/* ---- failure reporting shared by the test process and forked children ------------------ */

static char g_why[2048];

/* Record why a check failed; returns -1 so helpers can `return failf(...)`. */
static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_why, sizeof g_why, fmt, ap);
    va_end(ap);
    return -1;
}

/* In the cmocka process. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            fail_msg("%s", g_why);                                                                 \
    } while (0)

/* In a forked child: report, undo mounts, exit 1. */
static char g_mounts[4][FERRY_PATH_MAX];
static int g_nmounts;

static void child_exit(int code)
{
    while (g_nmounts > 0)
        umount2(g_mounts[--g_nmounts], MNT_DETACH);
    fflush(stderr);
    _exit(code);
}

#define CK(cond, ...)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            child_exit(1);                                                                         \
        }                                                                                          \
    } while (0)
#define PUT_OK(expr)                                                                               \
    do {                                                                                           \
        int put_rc_ = (expr);                                                                      \
        CK(put_rc_ == 0, "store_put: %s", ferry_strerror(put_rc_));                                \
    } while (0)

static void nap_ms(int ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

/* ---- deterministic records ------------------------------------------------------------- */

struct rid {
    uint32_t round, tid, seq;
};

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t rid_hash(struct rid r)
{
    return mix64(((uint64_t)r.round << 40) ^ ((uint64_t)r.tid << 32) ^ r.seq);
}

static int rid_topic(struct rid r)
{
    return (int)((rid_hash(r) >> 8) % NTOPICS);
}

static int32_t rid_qid(struct rid r)
{
    return (int32_t)((rid_hash(r) >> 16) % NQUEUES);
}

struct msgbuf {
    struct store_msg m;
    char props[64];
    uint8_t body[BODY_MAX];
};

static void make_msg(struct rid r, struct msgbuf *b)
{
    uint64_t h = rid_hash(r);
    uint32_t len = BODY_MIN + (uint32_t)((h >> 24) % (BODY_MAX - BODY_MIN + 1));
    int n = snprintf((char *)b->body, sizeof b->body, "r%u-t%u-s%u-", r.round, r.tid, r.seq);
    for (uint32_t i = (uint32_t)n; i < len; i++)
        b->body[i] = (uint8_t)((h >> (i % 8 * 8)) ^ (i * 131u));
    int pl = snprintf(b->props, sizeof b->props, "KEYS%ck%u.%u.%u%c", PROP_NAME_SEP, r.round, r.tid,
                      r.seq, PROP_PAIR_SEP);
    memset(&b->m, 0, sizeof b->m);
    b->m.topic = topic_names[rid_topic(r)];
    b->m.queue_id = rid_qid(r);
    b->m.born_ts = 1700000000000LL + r.seq;
    b->m.born_host.addr[0] = 127;
    b->m.born_host.addr[3] = 1;
    b->m.born_host.port = 40000 + r.tid;
    b->m.body = b->body;
    b->m.body_len = len;
    b->m.props = b->props;
    b->m.props_len = (uint32_t)pl;
}

/* Check that @data is exactly a record this test writes: structure, body CRC and record CRC,
 * and the topic, queue, body and KEYS of the triple its body names. */
static int decode_record(const uint8_t *data, uint32_t len, struct rid *out)
{
    struct msg_view v;
    if (msg_parse(data, len, &v) != 0 || v.total_size != len)
        return failf("a record of %u bytes does not parse", len);
    if (msg_verify(&v, 1) != 0)
        return failf("the record at CommitLog %" PRId64 " (queue offset %" PRId64 ") fails its CRC",
                     v.phys_offset, v.queue_offset);
    char head[48];
    size_t hl = v.body_len < sizeof head - 1 ? v.body_len : sizeof head - 1;
    memcpy(head, v.body, hl);
    head[hl] = 0;
    unsigned r, t, s;
    int used = 0;
    if (sscanf(head, "r%u-t%u-s%u-%n", &r, &t, &s, &used) != 3 || used == 0)
        return failf("the record at CommitLog %" PRId64 " has a body this test never wrote",
                     v.phys_offset);
    struct rid id = {r, t, s};
    struct msgbuf mb;
    make_msg(id, &mb);
    size_t tl = strlen(mb.m.topic);
    if (v.body_len != mb.m.body_len || memcmp(v.body, mb.body, v.body_len) != 0)
        return failf("record r%u-t%u-s%u at CommitLog %" PRId64 ": body differs from what was "
                     "written",
                     r, t, s, v.phys_offset);
    if (v.topic_len != tl || memcmp(v.topic, mb.m.topic, tl) != 0 || v.queue_id != mb.m.queue_id)
        return failf("record r%u-t%u-s%u at CommitLog %" PRId64 ": topic or queue differs", r, t, s,
                     v.phys_offset);
    if (v.props_len < mb.m.props_len || memcmp(v.props, mb.props, mb.m.props_len) != 0)
        return failf("record r%u-t%u-s%u at CommitLog %" PRId64 ": properties differ", r, t, s,
                     v.phys_offset);
    *out = id;
    return 0;
}

/* ---- acknowledgements and what was read back ------------------------------------------- */

enum { REC_ACK = 1, REC_READY, REC_ERR };

/* One acknowledged append (also the pipe record of the crash test: 48 bytes, one write). */
struct ack {
    uint32_t kind, round, tid, seq;
    int32_t topic, qid, size, rc;
    int64_t qoff, phys;
};

struct acklist {
    struct ack *a;
    size_t n, cap;
};

static void acks_push(struct acklist *l, const struct ack *k)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->a = realloc(l->a, l->cap * sizeof *l->a);
        if (!l->a)
            abort();
    }
    l->a[l->n++] = *k;
}

static struct ack ack_of(struct rid r, const struct put_result *pr)
{
    struct ack k = {REC_ACK,          r.round,        r.tid,    r.seq,
                    rid_topic(r),     rid_qid(r),     pr->size, 0,
                    pr->queue_offset, pr->phys_offset};
    return k;
}

static uint64_t rid_key(uint32_t round, uint32_t tid, uint32_t seq)
{
    return ((uint64_t)(round + 1) << 40) | ((uint64_t)(tid & 0xff) << 32) | seq;
}

/* Records read back, by (round, tid, seq): open addressing, key 0 = empty. */
struct seen_ent {
    uint64_t key;
    int64_t qoff, phys;
    int32_t size;
};

struct seen {
    struct seen_ent *e;
    size_t cap, n;
};

static void seen_init(struct seen *s, size_t expect)
{
    s->cap = 64;
    while (s->cap < expect * 2 + 16)
        s->cap *= 2;
    s->e = calloc(s->cap, sizeof *s->e);
    s->n = 0;
    if (!s->e)
        abort();
}

static void seen_free(struct seen *s)
{
    free(s->e);
    s->e = NULL;
}

static struct seen_ent *seen_slot(const struct seen *s, uint64_t key)
{
    size_t i = mix64(key) & (s->cap - 1);
    while (s->e[i].key && s->e[i].key != key)
        i = (i + 1) & (s->cap - 1);
    return &s->e[i];
}

static int seen_add(struct seen *s, uint64_t key, int64_t qoff, int64_t phys, int32_t size)
{
    if ((s->n + 1) * 2 > s->cap) {
        struct seen old = *s;
        s->cap *= 2;
        s->e = calloc(s->cap, sizeof *s->e);
        if (!s->e)
            abort();
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].key)
                *seen_slot(s, old.e[i].key) = old.e[i];
        free(old.e);
    }
    struct seen_ent *e = seen_slot(s, key);
    if (e->key == key)
        return -1;
    e->key = key;
    e->qoff = qoff;
    e->phys = phys;
    e->size = size;
    s->n++;
    return 0;
}

static const struct seen_ent *seen_get(const struct seen *s, uint64_t key)
{
    const struct seen_ent *e = seen_slot(s, key);
    return e->key == key ? e : NULL;
}

/* ---- reading the store back ------------------------------------------------------------ */

struct scan_opts {
    int heal;              /* retry FERRY_ECORRUPT while the store rebuilds a damaged queue */
    const int64_t *expect; /* heal: [t * NQUEUES + q] length to wait for (a rebuild cuts the
                              queue first and then refills it) */
    const uint8_t *golden; /* CommitLog bytes as first written, for records of golden_round */
    int64_t golden_len;
    uint32_t golden_round;
};

/* Read queue @t/@q from offset 0 to its max: every offset must return a record that decodes,
 * sits at exactly that offset in this queue, and was not seen before. */
static int scan_queue(store_t *st, int t, int32_t q, const struct scan_opts *o, struct seen *seen,
                      int64_t *count)
{
    const char *topic = topic_names[t];
    struct store_slice sl[32];
    int64_t deadline = clock_mono_ms() + 20000LL * test_time_mult();
    int64_t off = 0;
    int64_t min = store_min_offset(st, topic, q);
    if (min != 0)
        return failf("%s/%d: min offset %" PRId64 ", expected 0 (nothing expires here)", topic, q,
                     min);
    for (;;) {
        struct get_request req = {topic, q, off, 32, 1 << 30, NULL, 0};
        struct get_result res = {.msgs = sl};
        int rc = store_get(st, &req, &res);
        int at_end = rc == 0 && (res.status == GET_OFFSET_OVERFLOW_ONE ||
                                 (off == 0 && (res.status == GET_NO_MATCHED_LOGIC_QUEUE ||
                                               res.status == GET_NO_MESSAGE_IN_QUEUE)));
        if (at_end && o->heal && o->expect && off < o->expect[t * NQUEUES + q] &&
            clock_mono_ms() < deadline) {
            nap_ms(2);
            continue;
        }
        if (at_end && o->heal && store_max_offset(st, topic, q) > off && clock_mono_ms() < deadline)
            continue; /* refilled meanwhile */
        if (at_end)
            break;
        if (rc != 0 || res.status != GET_FOUND) {
            if (o->heal && clock_mono_ms() < deadline) {
                nap_ms(2);
                continue;
            }
            return failf("%s/%d: store_get at offset %" PRId64 ": %s, status %d (min %" PRId64
                         ", max %" PRId64 ")",
                         topic, q, off, rc ? ferry_strerror(rc) : "0", (int)res.status,
                         res.min_offset, res.max_offset);
        }
        int bad = 0;
        for (int i = 0; i < res.n && !bad; i++) {
            const struct store_slice *s = &sl[i];
            struct rid id;
            if (s->queue_offset != off + i) {
                bad = failf("%s/%d: offset %" PRId64 " returned a record of queue offset %" PRId64
                            " (a hole)",
                            topic, q, off + i, s->queue_offset);
            } else if (decode_record(s->data, s->len, &id) != 0) {
                bad = -1;
            } else if (rid_topic(id) != t || rid_qid(id) != q) {
                bad =
                    failf("record r%u-t%u-s%u found in %s/%d", id.round, id.tid, id.seq, topic, q);
            } else if (o->golden && id.round == o->golden_round &&
                       (s->phys_offset + s->len > o->golden_len ||
                        memcmp(o->golden + s->phys_offset, s->data, s->len) != 0)) {
                bad = failf("record r%u-t%u-s%u at CommitLog %" PRId64
                            " differs from the bytes first written there",
                            id.round, id.tid, id.seq, s->phys_offset);
            } else if (seen_add(seen, rid_key(id.round, id.tid, id.seq), s->queue_offset,
                                s->phys_offset, (int32_t)s->len) != 0) {
                bad = failf("record r%u-t%u-s%u is in the store twice (again at %s/%d offset "
                            "%" PRId64 ")",
                            id.round, id.tid, id.seq, topic, q, s->queue_offset);
            }
        }
        store_release(sl, res.n);
        if (bad)
            return -1;
        if (res.next_offset != off + res.n)
            return failf("%s/%d: read %d records from %" PRId64 " but the next offset is %" PRId64
                         " (skipped entries)",
                         topic, q, res.n, off, res.next_offset);
        off = res.next_offset;
    }
    int64_t max = store_max_offset(st, topic, q);
    if (max != off)
        return failf("%s/%d: read up to %" PRId64 " but the max offset is %" PRId64, topic, q, off,
                     max);
    *count = off;
    return 0;
}

static int scan_all(store_t *st, const struct scan_opts *o, struct seen *seen, int64_t *total)
{
    *total = 0;
    for (int t = 0; t < NTOPICS; t++)
        for (int32_t q = 0; q < NQUEUES; q++) {
            int64_t n;
            if (scan_queue(st, t, q, o, seen, &n) != 0)
                return -1;
            *total += n;
        }
    if ((int64_t)seen->n != *total)
        return failf("%zu distinct records in queues holding %" PRId64, seen->n, *total);
    return 0;
}

/* Every acknowledged append was read back at its queue offset and CommitLog offset. */
static int check_acks(const struct seen *seen, const struct ack *acks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct ack *k = &acks[i];
        const struct seen_ent *e = seen_get(seen, rid_key(k->round, k->tid, k->seq));
        if (!e)
            return failf("acknowledged record r%u-t%u-s%u (%s/%d offset %" PRId64
                         ", CommitLog %" PRId64 ") is missing",
                         k->round, k->tid, k->seq, topic_names[k->topic], k->qid, k->qoff, k->phys);
        if (e->qoff != k->qoff || e->phys != k->phys || e->size != k->size)
            return failf("acknowledged record r%u-t%u-s%u was at offset %" PRId64 ", CommitLog "
                         "%" PRId64 " (%d bytes); now at %" PRId64 ", %" PRId64 " (%d bytes)",
                         k->round, k->tid, k->seq, k->qoff, k->phys, k->size, e->qoff, e->phys,
                         e->size);
    }
    return 0;
}

/* One acknowledged record through store_get at its offset and store_read_at (CRC checked). */
static int read_one(store_t *st, const struct ack *k)
{
    struct store_slice s;
    struct get_request req = {topic_names[k->topic], k->qid, k->qoff, 1, 1 << 30, NULL, 0};
    struct get_result res = {.msgs = &s};
    int rc = store_get(st, &req, &res);
    if (rc != 0 || res.status != GET_FOUND || res.n != 1)
        return failf("store_get r%u-t%u-s%u at %s/%d offset %" PRId64 ": %s, status %d", k->round,
                     k->tid, k->seq, topic_names[k->topic], k->qid, k->qoff,
                     rc ? ferry_strerror(rc) : "0", (int)res.status);
    struct rid id;
    int bad = decode_record(s.data, s.len, &id);
    if (!bad &&
        (id.round != k->round || id.tid != k->tid || id.seq != k->seq || s.phys_offset != k->phys))
        bad = failf("store_get at %s/%d offset %" PRId64 " returned r%u-t%u-s%u at %" PRId64
                    ", not r%u-t%u-s%u at %" PRId64,
                    topic_names[k->topic], k->qid, k->qoff, id.round, id.tid, id.seq, s.phys_offset,
                    k->round, k->tid, k->seq, k->phys);
    store_release(&s, 1);
    if (bad)
        return -1;
    rc = store_read_at(st, k->phys, &s);
    if (rc != 0)
        return failf("store_read_at(%" PRId64 ") of r%u-t%u-s%u: %s", k->phys, k->round, k->tid,
                     k->seq, ferry_strerror(rc));
    bad = decode_record(s.data, s.len, &id);
    if (!bad && (id.round != k->round || id.tid != k->tid || id.seq != k->seq))
        bad = failf("store_read_at(%" PRId64 ") returned r%u-t%u-s%u", k->phys, id.round, id.tid,
                    id.seq);
    store_release(&s, 1);
    return bad;
}

/* The index finds an acknowledged record by its KEYS. */
static int find_by_key(store_t *st, const struct ack *k)
{
    char key[64];
    snprintf(key, sizeof key, "k%u.%u.%u", k->round, k->tid, k->seq);
    struct store_slice out[8];
    int n = store_query_by_key(st, topic_names[k->topic], key, 0, INT64_MAX, out, 8);
    int found = 0;
    for (int i = 0; i < n; i++)
        found |= out[i].phys_offset == k->phys;
    store_release(out, n);
    return found
               ? 0
               : failf("query by key %s: %d results, none at CommitLog %" PRId64, key, n, k->phys);
}

/* Wait for dispatch, then read everything back and check @acks. */
static int verify_acks(store_t *st, const struct ack *acks, size_t n, int64_t *records)
{
    int rc = store_wait_dispatched(st, 10000 * test_time_mult());
    if (rc != 0)
        return failf("store_wait_dispatched: %s", ferry_strerror(rc));
    struct seen seen;
    seen_init(&seen, n);
    struct scan_opts o = {0};
    int64_t total;
    int bad = scan_all(st, &o, &seen, &total) || check_acks(&seen, acks, n);
    seen_free(&seen);
    if (records)
        *records = total;
    return bad ? -1 : 0;
}

/* ---- configuration and files ----------------------------------------------------------- */

static void cfg_init(struct store_config *cfg, const char *dir, int flush, int64_t seg)
{
    store_config_defaults(cfg);
    snprintf(cfg->storePathRootDir, sizeof cfg->storePathRootDir, "%s", dir);
    cfg->mappedFileSizeCommitLog = seg;
    cfg->maxMessageSize = 64 * KiB;
    cfg->mappedFileSizeConsumeQueue = 20 * 1000;
    cfg->maxHashSlotNum = 1000;
    cfg->maxIndexNum = 4000;
    cfg->flushDiskType = flush;
    cfg->flushIntervalCommitLog = 20;
    cfg->flushIntervalConsumeQueue = 50;
    cfg->flushConsumeQueueThoroughInterval = 200;
}

static void path_join(char *out, size_t cap, const char *a, const char *b)
{
    if (snprintf(out, cap, "%s/%s", a, b) >= (int)cap)
        abort();
}

static void seg_path(char *out, size_t cap, const char *root, int64_t start)
{
    if (snprintf(out, cap, "%s/commitlog/%020" PRId64, root, start) >= (int)cap)
        abort();
}

static int read_file_at(const char *path, void *buf, size_t len, off_t off)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return failf("open %s: %s", path, strerror(errno));
    int rc = fs_pread_all(fd, buf, len, off);
    close(fd);
    return rc ? failf("read %s: %s", path, ferry_strerror(rc)) : 0;
}

static int64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(5); /* only children write pipes; the parent sees the exit */
        c += w;
        n -= (size_t)w;
    }
}

static void copy_tree(const char *src, const char *dst)
{
    struct stat sb;
    assert_int_equal(lstat(src, &sb), 0);
    if (S_ISDIR(sb.st_mode)) {
        if (mkdir(dst, 0755) != 0)
            assert_int_equal(errno, EEXIST);
        DIR *d = opendir(src);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char s[FERRY_PATH_MAX], t[FERRY_PATH_MAX];
            path_join(s, sizeof s, src, e->d_name);
            path_join(t, sizeof t, dst, e->d_name);
            copy_tree(s, t);
        }
        closedir(d);
        return;
    }
    if (!S_ISREG(sb.st_mode))
        return;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(in >= 0 && out >= 0);
    static uint8_t buf[1 << 16];
    ssize_t n;
    off_t off = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        assert_int_equal(fs_pwrite_all(out, buf, (size_t)n, off), 0);
        off += n;
    }
    assert_int_equal(n, 0);
    close(in);
    close(out);
}

/* ---- 1. crash: kill -9 during SYNC_FLUSH appends ---------------------------------------- */

struct appender {
    store_t *st;
    int fd;
    pthread_mutex_t *mu;
    uint32_t round, tid;
};

static void *appender_main(void *arg)
{
    struct appender *a = arg;
    struct msgbuf *mb = malloc(sizeof *mb);
    if (!mb)
        abort();
    for (uint32_t seq = 0;; seq++) {
        struct rid r = {a->round, a->tid, seq};
        make_msg(r, mb);
        struct put_result pr = {0};
        int rc = store_put(a->st, &mb->m, 1, &pr);
        struct ack k = ack_of(r, &pr);
        if (rc != 0) {
            k.kind = REC_ERR;
            k.rc = rc;
        }
        pthread_mutex_lock(a->mu);
        write_all(a->fd, &k, sizeof k);
        pthread_mutex_unlock(a->mu);
        if (rc != 0)
            return NULL;
    }
}

/* The child: open the store (recovering the last round's crash), say READY, then append from
 * CRASH_THREADS threads until killed. Never returns. */
static void crash_child(const char *dir, int fd, uint32_t round)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(120); /* the parent kills us long before; this only bounds a lost child */
    struct store_config cfg;
    cfg_init(&cfg, dir, SYNC_FLUSH, CRASH_SEG);
    store_t *st;
    char err[512] = "";
    struct ack k = {REC_READY, round, 0, 0, 0, 0, 0, 0, 0, 0};
    int rc = store_open(&cfg, &st, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "crash child: store_open: %s (%s)\n", err, ferry_strerror(rc));
        k.kind = REC_ERR;
        k.rc = rc;
        write_all(fd, &k, sizeof k);
        _exit(2);
    }
    write_all(fd, &k, sizeof k);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct appender a[CRASH_THREADS];
    pthread_t th[CRASH_THREADS];
    for (uint32_t i = 0; i < CRASH_THREADS; i++) {
        a[i] = (struct appender){st, fd, &mu, round, i};
        if (pthread_create(&th[i], NULL, appender_main, &a[i]) != 0)
            _exit(4);
    }
    for (int i = 0; i < CRASH_THREADS; i++)
        pthread_join(th[i], NULL);
    _exit(3); /* every appender failed */
}

enum kill_mode { KILL_RANDOM, KILL_IN_OPEN, KILL_BEFORE_ROLL, KILL_AFTER_ROLL };

struct crash_stats {
    int rounds, killed_in_open, at_boundary, during_alloc, targeted_roll;
    int64_t checked;
    size_t index_checked;
};

struct crash_log {
    struct acklist all;
    int64_t last_seq[MAX_ROUNDS + 1][CRASH_THREADS]; /* -1: none acknowledged */
    int ready[MAX_ROUNDS + 1];
};

static int has_tmp_segment(const char *dir)
{
    char cl[FERRY_PATH_MAX];
    path_join(cl, sizeof cl, dir, "commitlog");
    DIR *d = opendir(cl);
    int found = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        found |= strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return found;
}

/* Take one pipe record from the child. Returns the kill deadline to use from now on. */
static int64_t crash_record(struct crash_log *log, const struct ack *k, uint32_t round,
                            enum kill_mode mode, uint64_t *rng, int64_t deadline, int *err,
                            int64_t *round_acks)
{
    int64_t now = clock_mono_ms();
    if (k->kind == REC_READY) {
        log->ready[round] = 1;
        if (mode == KILL_RANDOM)
            return now + 20 + (int64_t)(test_rand(rng) % 281);
        if (mode == KILL_BEFORE_ROLL || mode == KILL_AFTER_ROLL)
            return now + 1500; /* if no roll shows up by then, kill anyway */
        return deadline;
    }
    if (k->kind == REC_ERR) {
        if (!*err)
            *err = k->rc;
        return now;
    }
    assert_int_equal(k->kind, REC_ACK);
    assert_int_equal(k->round, round);
    assert_true(k->tid < CRASH_THREADS);
    /* Each thread appends in order and reports in order. */
    assert_int_equal((int64_t)k->seq, log->last_seq[round][k->tid] + 1);
    log->last_seq[round][k->tid] = k->seq;
    acks_push(&log->all, k);
    (*round_acks)++;
    int64_t in_seg = k->phys % CRASH_SEG;
    if (*round_acks > 32 && mode == KILL_BEFORE_ROLL && in_seg + k->size > CRASH_SEG - 6 * KiB &&
        deadline > now)
        return now;
    if (*round_acks > 32 && mode == KILL_AFTER_ROLL && in_seg == 0 && deadline > now)
        return now + (int64_t)(test_rand(rng) % 3);
    return deadline;
}

static void crash_round(const char *dir, uint32_t round, enum kill_mode mode, uint64_t *rng,
                        struct crash_log *log, struct crash_stats *cs)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(dir, p[1], round);
    }
    close(p[1]);
    int64_t start = clock_mono_ms();
    int64_t deadline = mode == KILL_IN_OPEN ? start + (int64_t)(test_rand(rng) % 10) : INT64_MAX;
    int64_t ready_by = start + 30000LL * test_time_mult();
    uint8_t buf[48 * 1024];
    size_t have = 0;
    int err = 0, eof = 0;
    int64_t round_acks = 0;
    while (!eof) {
        int64_t now = clock_mono_ms();
        if (now >= deadline)
            break;
        if (!log->ready[round] && now >= ready_by) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(p[0]);
            fail_msg("round %u: the child did not open the store within %d s", round,
                     30 * test_time_mult());
        }
        int64_t until = deadline < ready_by ? deadline : ready_by;
        struct pollfd pfd = {p[0], POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(until - now));
        if (pr < 0 && errno == EINTR)
            continue;
        assert_true(pr >= 0);
        if (pr == 0)
            continue;
        ssize_t n = read(p[0], buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            eof = 1;
        have += (size_t)n;
        size_t used = 0;
        for (; have - used >= sizeof(struct ack); used += sizeof(struct ack)) {
            struct ack k;
            memcpy(&k, buf + used, sizeof k);
            deadline = crash_record(log, &k, round, mode, rng, deadline, &err, &round_acks);
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* Everything the child wrote before it died is still in the pipe. */
    for (;;) {
        ssize_t n = read(p[0], buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            break;
        have += (size_t)n;
        size_t used = 0;
        for (; have - used >= sizeof(struct ack); used += sizeof(struct ack)) {
            struct ack k;
            memcpy(&k, buf + used, sizeof k);
            crash_record(log, &k, round, mode, rng, 0, &err, &round_acks);
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    close(p[0]);
    assert_int_equal(have, 0);
    if (err)
        fail_msg("round %u: the child's store failed: %s", round, ferry_strerror(err));
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("round %u: the child ended on its own (status 0x%x)", round, status);

    cs->killed_in_open += !log->ready[round];
    cs->targeted_roll += mode == KILL_BEFORE_ROLL || mode == KILL_AFTER_ROLL;
    cs->during_alloc += has_tmp_segment(dir);
    int64_t front = -1;
    for (size_t i = log->all.n - (size_t)round_acks; i < log->all.n; i++)
        if (log->all.a[i].phys + log->all.a[i].size > front)
            front = log->all.a[i].phys + log->all.a[i].size;
    if (front >= 0 && (front % CRASH_SEG < 8 * KiB || front % CRASH_SEG > CRASH_SEG - 8 * KiB))
        cs->at_boundary++;
}

static void crash_verify(const char *dir, uint32_t round, struct crash_log *log, uint64_t *rng,
                         struct crash_stats *cs)
{
    struct store_config cfg;
    cfg_init(&cfg, dir, SYNC_FLUSH, CRASH_SEG);
    store_t *st = NULL;
    char err[512] = "";
    int rc = store_open(&cfg, &st, err, sizeof err);
    if (rc != 0)
        fail_msg("round %u: reopen after kill -9: %s (%s)", round, err, ferry_strerror(rc));
    int abnormal = 0;
    store_recovery_ms(st, &abnormal);
    if (log->ready[round])
        assert_int_equal(abnormal, 1);
    assert_int_equal(store_wait_dispatched(st, 10000 * test_time_mult()), 0);

    struct seen seen;
    seen_init(&seen, log->all.n + 64);
    struct scan_opts o = {0};
    int64_t total;
    CHECK_OK(scan_all(st, &o, &seen, &total));
    CHECK_OK(check_acks(&seen, log->all.a, log->all.n));

    /* Per thread and round the records present are seqs 0..m with no gap, where m is the last
     * acknowledged one or the one after it (stored, killed before it was reported). */
    static int64_t count[MAX_ROUNDS + 1][CRASH_THREADS], maxseq[MAX_ROUNDS + 1][CRASH_THREADS];
    for (uint32_t r = 0; r <= round; r++)
        for (int t = 0; t < CRASH_THREADS; t++)
            count[r][t] = 0, maxseq[r][t] = -1;
    for (size_t i = 0; i < seen.cap; i++) {
        uint64_t key = seen.e[i].key;
        if (!key)
            continue;
        uint32_t r = (uint32_t)(key >> 40) - 1, t = (uint32_t)(key >> 32) & 0xff, s = (uint32_t)key;
        if (r < 1 || r > round || t >= CRASH_THREADS)
            fail_msg("round %u: record r%u-t%u-s%u was never written", round, r, t, s);
        count[r][t]++;
        if ((int64_t)s > maxseq[r][t])
            maxseq[r][t] = s;
    }
    for (uint32_t r = 1; r <= round; r++)
        for (int t = 0; t < CRASH_THREADS; t++) {
            int64_t last = log->last_seq[r][t];
            if (count[r][t] != maxseq[r][t] + 1)
                fail_msg("round %u: thread %d of round %u has %" PRId64
                         " records up to seq %" PRId64 ": a hole",
                         round, t, r, count[r][t], maxseq[r][t]);
            if (maxseq[r][t] < last || maxseq[r][t] > last + 1)
                fail_msg("round %u: thread %d of round %u: records up to seq %" PRId64
                         ", last acknowledged %" PRId64,
                         round, t, r, maxseq[r][t], last);
        }

    /* Max offsets cover every acknowledgement; the new ones read back one by one. */
    int64_t need[NTOPICS][NQUEUES] = {{0}};
    for (size_t i = 0; i < log->all.n; i++) {
        const struct ack *k = &log->all.a[i];
        if (k->qoff + 1 > need[k->topic][k->qid])
            need[k->topic][k->qid] = k->qoff + 1;
        if (k->round == round)
            CHECK_OK(read_one(st, k));
    }
    for (int t = 0; t < NTOPICS; t++)
        for (int q = 0; q < NQUEUES; q++)
            assert_true(store_max_offset(st, topic_names[t], q) >= need[t][q]);
    for (int i = 0; i < 16 && log->all.n > 0; i++) {
        CHECK_OK(find_by_key(st, &log->all.a[test_rand(rng) % log->all.n]));
        cs->index_checked++;
    }
    cs->checked += total;
    seen_free(&seen);
    store_close(st);
}

static void test_crash_kill9_during_sync_appends(void **state)
{
    const char *dir = *state;
    int mult = test_time_mult();
    int rounds = mult > 1 ? 12 : 40;
    int64_t budget = 40000; /* rounds stop here, at least 5 done */
    uint64_t rng = test_seed();
    struct crash_log *log = calloc(1, sizeof *log);
    assert_non_null(log);
    for (int r = 0; r <= MAX_ROUNDS; r++)
        for (int t = 0; t < CRASH_THREADS; t++)
            log->last_seq[r][t] = -1;
    struct crash_stats cs = {0};
    int64_t t0 = clock_mono_ms();
    for (uint32_t r = 1; r <= (uint32_t)rounds; r++) {
        if (r > 5 && clock_mono_ms() - t0 > budget)
            break;
        static const enum kill_mode modes[5] = {KILL_RANDOM, KILL_BEFORE_ROLL, KILL_RANDOM,
                                                KILL_AFTER_ROLL, KILL_IN_OPEN};
        enum kill_mode mode = r == 1 ? KILL_RANDOM : modes[r % 5];
        crash_round(dir, r, mode, &rng, log, &cs);
        crash_verify(dir, r, log, &rng, &cs);
        cs.rounds++;
    }
    char cl[FERRY_PATH_MAX];
    path_join(cl, sizeof cl, dir, "commitlog");
    int segs = 0;
    DIR *d = opendir(cl);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        segs += e->d_name[0] != '.';
    if (d)
        closedir(d);
    print_message("crash: %d rounds (%d killed during open, %d aimed at a segment roll, %d ended "
                  "within 8 KiB of a segment boundary, %d during segment allocation), %zu acked, "
                  "%" PRId64 " records checked, %zu index lookups, %d segments, %.1f s\n",
                  cs.rounds, cs.killed_in_open, cs.targeted_roll, cs.at_boundary, cs.during_alloc,
                  log->all.n, cs.checked, cs.index_checked, segs,
                  (double)(clock_mono_ms() - t0) / 1000.0);
    assert_true(log->all.n > 0);
    free(log->all.a);
    free(log);
}

/* ---- 2. corruption: damaged copies of a store ------------------------------------------- */

#define BASE_RECORDS 2000
#define MAX_BASES    6

/* A store to damage copies of: built once per seed and variant. */
struct base {
    char dir[FERRY_PATH_MAX];
    int crashed; /* left by a killed process (abort file, stale checkpoint and queues) */
    uint64_t seed;
    struct ack *orig; /* every record, in CommitLog order */
    size_t n;
    uint8_t *golden; /* CommitLog bytes [0, end) as written */
    int64_t end;
};

static struct base g_bases[MAX_BASES];
static int g_nbases;
static char g_case_dir[FERRY_PATH_MAX]; /* the damaged copy in use, removed even on failure */

static int nseeds(void)
{
    return test_time_mult() > 1 ? 2 : 3;
}

static void build_base_records(store_t *st, struct ack *out, size_t n)
{
    struct msgbuf *mb = malloc(sizeof *mb);
    assert_non_null(mb);
    for (size_t i = 0; i < n; i++) {
        struct rid r = {0, 0, (uint32_t)i};
        make_msg(r, mb);
        struct put_result pr;
        int rc = store_put(st, &mb->m, 1, &pr);
        if (rc != 0)
            _exit(6); /* only reached in a child; the parent checks the exit */
        out[i] = ack_of(r, &pr);
    }
    free(mb);
}

static void build_base(struct base *b, uint64_t seed, int crashed)
{
    test_tmpdir(b->dir, sizeof b->dir, crashed ? "sfbase-crash" : "sfbase-clean");
    b->crashed = crashed;
    b->seed = seed;
    b->n = BASE_RECORDS;
    size_t bytes = b->n * sizeof(struct ack);
    struct ack *shared =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Both variants are written by a child, so the test process never holds the base. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct store_config cfg;
        cfg_init(&cfg, b->dir, ASYNC_FLUSH, SEG);
        cfg.mappedFileSizeConsumeQueue = 20 * 200; /* a few files per queue */
        store_t *st;
        char err[512];
        if (store_open(&cfg, &st, err, sizeof err) != 0) {
            fprintf(stderr, "base: %s\n", err);
            _exit(7);
        }
        build_base_records(st, shared, b->n);
        if (crashed)
            kill(getpid(), SIGKILL);
        store_close(st);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (crashed)
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    else
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    b->orig = malloc(bytes);
    assert_non_null(b->orig);
    memcpy(b->orig, shared, bytes);
    munmap(shared, bytes);
    b->end = 0;
    for (size_t i = 0; i < b->n; i++) {
        assert_int_equal(b->orig[i].kind, REC_ACK);
        assert_true(i == 0 || b->orig[i].phys > b->orig[i - 1].phys);
        b->end = b->orig[i].phys + b->orig[i].size;
    }
    b->golden = malloc((size_t)b->end);
    assert_non_null(b->golden);
    for (int64_t off = 0; off < b->end; off += SEG) {
        char p[FERRY_PATH_MAX];
        seg_path(p, sizeof p, b->dir, off);
        size_t len = (size_t)(b->end - off < SEG ? b->end - off : SEG);
        CHECK_OK(read_file_at(p, b->golden + off, len, 0));
    }
}

static const struct base *get_base(int i)
{
    while (g_nbases <= i) {
        static uint64_t seed0;
        if (!seed0)
            seed0 = test_seed();
        int k = g_nbases;
        build_base(&g_bases[k], mix64(seed0 + (uint64_t)(k / 2)), k % 2);
        g_nbases++;
    }
    return &g_bases[i];
}

static int group_teardown(void **state)
{
    for (int i = 0; i < g_nbases; i++) {
        test_rmdir(g_bases[i].dir);
        free(g_bases[i].orig);
        free(g_bases[i].golden);
    }
    g_nbases = 0;
    if (g_case_dir[0])
        test_rmdir(g_case_dir);
    g_case_dir[0] = 0;
    return 0;
}

enum damage_kind {
    D_CL_ZERO_TAIL,
    D_CL_BITFLIP,
    D_CQ_TRUNCATE,
    D_CQ_BITFLIP,
    D_CQ_ZERO,
    D_CQ_DIR,
    D_CKPT_DELETE,
    D_CKPT_DELETE_ALL,
    D_CKPT_GARBAGE,
    D_COMBINED,
    D_CQ_PHYS_RAISED, /* one bit of an entry's offset set: still in order, points mid-log */
    D_CQ_SIZE_RAISED, /* one bit of an entry's size set: still under the limit */
};

struct damage {
    int64_t cut; /* first damaged CommitLog byte, INT64_MAX if none */
    char desc[768];
};

static void describe(struct damage *dm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void describe(struct damage *dm, const char *fmt, ...)
{
    size_t len = strlen(dm->desc);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dm->desc + len, sizeof dm->desc - len, fmt, ap);
    va_end(ap);
}

static void flip_bit(const char *path, int64_t off, int bit)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(fs_pread_all(fd, &c, 1, off), 0);
    c ^= (uint8_t)(1u << bit);
    assert_int_equal(fs_pwrite_all(fd, &c, 1, off), 0);
    close(fd);
}

static void zero_range(const char *path, int64_t from, int64_t to)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    static const uint8_t zeros[4096];
    for (int64_t off = from; off < to; off += (int64_t)sizeof zeros) {
        size_t n = (size_t)(to - off < (int64_t)sizeof zeros ? to - off : (int64_t)sizeof zeros);
        assert_int_equal(fs_pwrite_all(fd, zeros, n, off), 0);
    }
    close(fd);
}

static void damage_cl_zero_tail(const char *dir, const struct base *b, uint64_t *rng,
                                struct damage *dm)
{
    int64_t seg = (b->end - 1) / SEG * SEG;
    int64_t from;
    switch (test_rand(rng) % 6) {
    case 0:
    case 1: { /* at a record boundary */
        size_t first = 0;
        while (b->orig[first].phys < seg)
            first++;
        from = b->orig[first + test_rand(rng) % (b->n - first)].phys;
        break;
    }
    case 2:
    case 3: /* inside the used part */
        from = seg + (int64_t)(test_rand(rng) % (uint64_t)(b->end - seg));
        break;
    case 4: /* the whole segment */
        from = seg;
        break;
    default: /* past the end: nothing is lost */
        from = b->end + (int64_t)(test_rand(rng) % (uint64_t)(seg + SEG - b->end));
        break;
    }
    char p[FERRY_PATH_MAX];
    seg_path(p, sizeof p, dir, seg);
    zero_range(p, from - seg, SEG);
    if (from < dm->cut)
        dm->cut = from;
    describe(dm, "[CommitLog zeroed from %" PRId64 " to the end of segment %" PRId64 "] ", from,
             seg);
}

static void damage_cl_bitflip(const char *dir, const struct base *b, uint64_t *rng,
                              struct damage *dm)
{
    int64_t seg = (b->end - 1) / SEG * SEG;
    char p[FERRY_PATH_MAX];
    seg_path(p, sizeof p, dir, seg);
    int flips = 1 + (int)(test_rand(rng) % 3);
    describe(dm, "[CommitLog bits flipped in segment %" PRId64 ":", seg);
    for (int i = 0; i < flips; i++) {
        int64_t at = seg + (int64_t)(test_rand(rng) % (uint64_t)(b->end - seg));
        int bit = (int)(test_rand(rng) % 8);
        flip_bit(p, at - seg, bit);
        if (at < dm->cut)
            dm->cut = at;
        describe(dm, " %" PRId64 ".%d", at, bit);
    }
    describe(dm, "] ");
}

/* A queue with at least one file; its directory and sorted file starts. */
static int pick_queue(const char *dir, uint64_t *rng, char *qdir, size_t cap, int64_t *starts,
                      int *nstarts)
{
    int first = (int)(test_rand(rng) % (NTOPICS * NQUEUES));
    for (int k = 0; k < NTOPICS * NQUEUES; k++) {
        int i = (first + k) % (NTOPICS * NQUEUES);
        snprintf(qdir, cap, "%s/consumequeue/%s/%d", dir, topic_names[i / NQUEUES], i % NQUEUES);
        DIR *d = opendir(qdir);
        if (!d)
            continue;
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && n < 64)
            if (strlen(e->d_name) == 20 && strspn(e->d_name, "0123456789") == 20)
                starts[n++] = strtoll(e->d_name, NULL, 10);
        closedir(d);
        for (int a = 1; a < n; a++) /* insertion sort */
            for (int c = a; c > 0 && starts[c - 1] > starts[c]; c--) {
                int64_t tmp = starts[c];
                starts[c] = starts[c - 1];
                starts[c - 1] = tmp;
            }
        if (n > 0) {
            *nstarts = n;
            return i;
        }
    }
    return -1;
}

/* Bytes of @path up to its last non-zero byte, rounded up to whole 20-byte entries. */
static int64_t used_bytes(const char *path)
{
    int64_t size = file_size(path);
    if (size <= 0)
        return 0;
    uint8_t *buf = malloc((size_t)size);
    assert_non_null(buf);
    CHECK_OK(read_file_at(path, buf, (size_t)size, 0));
    int64_t used = size;
    while (used > 0 && buf[used - 1] == 0)
        used--;
    free(buf);
    return (used + 19) / 20 * 20;
}

static void damage_cq(const char *dir, enum damage_kind kind, uint64_t *rng, struct damage *dm)
{
    char qdir[FERRY_PATH_MAX], p[FERRY_PATH_MAX];
    int64_t starts[64];
    int n = 0;
    int qi = pick_queue(dir, rng, qdir, sizeof qdir, starts, &n);
    if (qi < 0) {
        describe(dm, "[no ConsumeQueue file to damage] ");
        return;
    }
    if (kind == D_CQ_DIR) {
        assert_int_equal(fs_remove_tree(qdir), 0);
        describe(dm, "[deleted %s] ", qdir);
        if (test_rand(rng) % 3 == 0 && pick_queue(dir, rng, qdir, sizeof qdir, starts, &n) >= 0) {
            assert_int_equal(fs_remove_tree(qdir), 0);
            describe(dm, "[deleted %s] ", qdir);
        }
        return;
    }
    int f = (int)(test_rand(rng) % (uint64_t)n);
    snprintf(p, sizeof p, "%s/%020" PRId64, qdir, starts[f]);
    int64_t size = file_size(p);
    if (size <= 0) {
        describe(dm, "[%s is empty] ", p);
        return;
    }
    if (kind == D_CQ_TRUNCATE) {
        int64_t to = (int64_t)(test_rand(rng) % (uint64_t)size);
        assert_int_equal(truncate(p, to), 0);
        describe(dm, "[truncated %s (file %d of %d) to %" PRId64 " bytes] ", p, f + 1, n, to);
        return;
    }
    int64_t used = used_bytes(p);
    if (used == 0)
        used = 20;
    if (kind == D_CQ_BITFLIP) {
        int flips = 1 + (int)(test_rand(rng) % 3);
        describe(dm, "[bits flipped in %s (file %d of %d, %" PRId64 " bytes used):", p, f + 1, n,
                 used);
        for (int i = 0; i < flips; i++) {
            int64_t at = (int64_t)(test_rand(rng) % (uint64_t)used);
            int bit = (int)(test_rand(rng) % 8);
            flip_bit(p, at, bit);
            describe(dm, " %" PRId64 ".%d (entry %" PRId64 ")", at, bit, starts[f] / 20 + at / 20);
        }
        describe(dm, "] ");
        return;
    }
    /* D_CQ_ZERO: a range inside the used part, or from there to the end. */
    int64_t from = (int64_t)(test_rand(rng) % (uint64_t)used);
    if (test_rand(rng) % 2)
        from -= from % 20;
    int64_t to = test_rand(rng) % 2 ? size : from + 1 + (int64_t)(test_rand(rng) % 100);
    if (to > size)
        to = size;
    zero_range(p, from, to);
    describe(dm, "[zeroed %s bytes %" PRId64 "..%" PRId64 " (file %d of %d)] ", p, from, to, f + 1,
             n);
}

static uint64_t be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Set one bit of the offset (or size) of an entry whose record lies before the last segment,
 * so that the entry still looks sane (ordered, inside the log) but overlaps the next one. */
static void damage_cq_raise(const char *dir, const struct base *b, enum damage_kind kind,
                            uint64_t *rng, struct damage *dm)
{
    char qdir[FERRY_PATH_MAX], p[FERRY_PATH_MAX];
    int64_t starts[64];
    int n = 0;
    for (int attempt = 0; attempt < 32; attempt++) {
        int qi = pick_queue(dir, rng, qdir, sizeof qdir, starts, &n);
        if (qi < 0)
            break;
        snprintf(p, sizeof p, "%s/%020" PRId64, qdir, starts[0]);
        int64_t size = file_size(p);
        if (size < 3 * 20)
            continue;
        uint8_t *buf = malloc((size_t)size);
        assert_non_null(buf);
        CHECK_OK(read_file_at(p, buf, (size_t)size, 0));
        int64_t entries = size / 20;
        int64_t i = 1 + (int64_t)(test_rand(rng) % (uint64_t)(entries - 2));
        const uint8_t *e = buf + i * 20;
        int64_t phys = (int64_t)be_get(e, 8), len = (int64_t)be_get(e + 8, 4);
        int64_t next = (int64_t)be_get(e + 20, 8);
        free(buf);
        if (len == 0 || next == 0 || phys + len > (b->end - 1) / SEG * SEG)
            continue;
        for (int bit = 13; bit < 20; bit++) {
            int64_t v = kind == D_CQ_PHYS_RAISED ? phys : len;
            if (v & ((int64_t)1 << bit))
                continue;
            int64_t np = kind == D_CQ_PHYS_RAISED ? phys + ((int64_t)1 << bit) : phys;
            int64_t nl = kind == D_CQ_PHYS_RAISED ? len : len + ((int64_t)1 << bit);
            if (np + nl <= next || np + nl > b->end || nl > SEG)
                continue;
            int byte = kind == D_CQ_PHYS_RAISED ? 7 - bit / 8 : 8 + 3 - bit / 8;
            flip_bit(p, i * 20 + byte, bit % 8);
            describe(dm, "[%s: entry %" PRId64 " %s %" PRId64 " -> %" PRId64 "] ", p,
                     starts[0] / 20 + i, kind == D_CQ_PHYS_RAISED ? "offset" : "size",
                     kind == D_CQ_PHYS_RAISED ? phys : len, kind == D_CQ_PHYS_RAISED ? np : nl);
            return;
        }
    }
    describe(dm, "[no ConsumeQueue entry to raise] ");
}

static void damage_ckpt(const char *dir, enum damage_kind kind, uint64_t *rng, struct damage *dm)
{
    char p[FERRY_PATH_MAX], bak[FERRY_PATH_MAX];
    path_join(p, sizeof p, dir, "checkpoint");
    path_join(bak, sizeof bak, dir, "checkpoint.bak");
    if (kind == D_CKPT_DELETE || kind == D_CKPT_DELETE_ALL) {
        unlink(p);
        if (kind == D_CKPT_DELETE_ALL)
            unlink(bak);
        describe(dm, kind == D_CKPT_DELETE ? "[checkpoint deleted] "
                                           : "[checkpoint and checkpoint.bak deleted] ");
        return;
    }
    size_t len = (size_t)(test_rand(rng) % 2 ? 4096 : test_rand(rng) % 8192);
    uint8_t *junk = malloc(len + 1);
    assert_non_null(junk);
    for (size_t i = 0; i < len; i++)
        junk[i] = (uint8_t)test_rand(rng);
    int both = (int)(test_rand(rng) % 2);
    for (int i = 0; i <= both; i++) {
        int fd = open(i ? bak : p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(fs_pwrite_all(fd, junk, len, 0), 0);
        close(fd);
    }
    free(junk);
    describe(dm, "[%zu bytes of garbage in checkpoint%s] ", len, both ? " and checkpoint.bak" : "");
}

static void apply_damage(const char *dir, const struct base *b, enum damage_kind kind,
                         uint64_t *rng, struct damage *dm)
{
    switch (kind) {
    case D_CL_ZERO_TAIL:
        damage_cl_zero_tail(dir, b, rng, dm);
        break;
    case D_CL_BITFLIP:
        damage_cl_bitflip(dir, b, rng, dm);
        break;
    case D_CQ_TRUNCATE:
    case D_CQ_BITFLIP:
    case D_CQ_ZERO:
    case D_CQ_DIR:
        damage_cq(dir, kind, rng, dm);
        break;
    case D_CKPT_DELETE:
    case D_CKPT_DELETE_ALL:
    case D_CKPT_GARBAGE:
        damage_ckpt(dir, kind, rng, dm);
        break;
    case D_CQ_PHYS_RAISED:
    case D_CQ_SIZE_RAISED:
        damage_cq_raise(dir, b, kind, rng, dm);
        break;
    case D_COMBINED:
        if (test_rand(rng) % 2)
            damage_cl_zero_tail(dir, b, rng, dm);
        else
            damage_cl_bitflip(dir, b, rng, dm);
        damage_cq(dir, (enum damage_kind)(D_CQ_TRUNCATE + test_rand(rng) % 4), rng, dm);
        damage_cq(dir, (enum damage_kind)(D_CQ_TRUNCATE + test_rand(rng) % 4), rng, dm);
        damage_ckpt(dir, (enum damage_kind)(D_CKPT_DELETE + test_rand(rng) % 3), rng, dm);
        break;
    }
}

/* Exactly the originals that end before @cut, each byte-identical at its queue offset, plus
 * @extra (appended after recovery), and nothing else. */
static int verify_exact(store_t *st, const struct base *b, int64_t cut, const struct ack *extra,
                        size_t nextra)
{
    struct seen seen;
    seen_init(&seen, b->n + nextra);
    int64_t expect[NTOPICS * NQUEUES] = {0};
    for (size_t i = 0; i < b->n; i++)
        if (b->orig[i].phys + b->orig[i].size <= cut)
            expect[b->orig[i].topic * NQUEUES + b->orig[i].qid] = b->orig[i].qoff + 1;
    for (size_t i = 0; i < nextra; i++)
        if (extra[i].qoff + 1 > expect[extra[i].topic * NQUEUES + extra[i].qid])
            expect[extra[i].topic * NQUEUES + extra[i].qid] = extra[i].qoff + 1;
    struct scan_opts o = {1, expect, b->golden, b->end, 0};
    int64_t total;
    int bad = scan_all(st, &o, &seen, &total);
    size_t expected = 0;
    for (size_t i = 0; i < b->n && !bad; i++) {
        const struct ack *k = &b->orig[i];
        int keep = k->phys + k->size <= cut;
        const struct seen_ent *e = seen_get(&seen, rid_key(k->round, k->tid, k->seq));
        expected += (size_t)keep;
        if (keep && !e)
            bad = failf("record r0-t0-s%u (%s/%d offset %" PRId64 ", CommitLog %" PRId64
                        "..%" PRId64 ") lies before the damage at %" PRId64 " but is gone",
                        k->seq, topic_names[k->topic], k->qid, k->qoff, k->phys, k->phys + k->size,
                        cut);
        else if (!keep && e)
            bad = failf("record r0-t0-s%u (CommitLog %" PRId64 "..%" PRId64
                        ") lies after the damage at %" PRId64 " but is still served",
                        k->seq, k->phys, k->phys + k->size, cut);
        else if (e && (e->qoff != k->qoff || e->phys != k->phys || e->size != k->size))
            bad = failf("record r0-t0-s%u moved: offset %" PRId64 " -> %" PRId64
                        ", CommitLog %" PRId64 " -> %" PRId64,
                        k->seq, k->qoff, e->qoff, k->phys, e->phys);
    }
    if (!bad)
        bad = check_acks(&seen, extra, nextra);
    if (!bad && seen.n != expected + nextra)
        bad = failf("%zu records served, %zu expected", seen.n, expected + nextra);
    seen_free(&seen);
    return bad;
}

/* After recovery the CommitLog ends at @end and every byte after it is zero. */
static int check_zero_after(const char *dir, int64_t end)
{
    char cl[FERRY_PATH_MAX];
    path_join(cl, sizeof cl, dir, "commitlog");
    DIR *d = opendir(cl);
    if (!d)
        return failf("open %s", cl);
    uint8_t *buf = malloc(SEG);
    assert_non_null(buf);
    int bad = 0;
    struct dirent *e;
    while (!bad && (e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != 20 || strspn(e->d_name, "0123456789") != 20)
            continue;
        int64_t start = strtoll(e->d_name, NULL, 10);
        if (start + SEG <= end)
            continue;
        char p[FERRY_PATH_MAX];
        path_join(p, sizeof p, cl, e->d_name);
        if (read_file_at(p, buf, SEG, 0) != 0) {
            bad = -1;
            break;
        }
        for (int64_t i = end > start ? end - start : 0; i < SEG && !bad; i++)
            if (buf[i] != 0)
                bad = failf("CommitLog byte %" PRId64 " after the recovered end %" PRId64
                            " is not zero",
                            start + i, end);
    }
    closedir(d);
    free(buf);
    return bad;
}

static void open_or_fail(struct store_config *cfg, store_t **st, const char *what)
{
    char err[512] = "";
    int rc = store_open(cfg, st, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: store_open: %s (%s)", what, err, ferry_strerror(rc));
}

static void run_case(const struct base *b, enum damage_kind kind, int caseno, uint64_t *rng)
{
    char *dir = g_case_dir;
    if (dir[0])
        test_rmdir(dir); /* left by a failed case */
    test_tmpdir(dir, sizeof g_case_dir, "sfcase");
    copy_tree(b->dir, dir);
    struct damage dm = {INT64_MAX, ""};
    apply_damage(dir, b, kind, rng, &dm);
    char what[1024];
    snprintf(what, sizeof what, "seed %" PRIu64 ", %s base, case %d: %s", b->seed,
             b->crashed ? "crashed" : "clean", caseno, dm.desc);

    /* The log must end where the first damaged record began. */
    int64_t end = b->end;
    int64_t next[NTOPICS][NQUEUES] = {{0}};
    for (size_t i = 0; i < b->n; i++) {
        if (b->orig[i].phys + b->orig[i].size > dm.cut) {
            end = b->orig[i].phys;
            break;
        }
        next[b->orig[i].topic][b->orig[i].qid] = b->orig[i].qoff + 1;
    }
    struct store_config cfg;
    cfg_init(&cfg, dir, ASYNC_FLUSH, SEG);
    cfg.mappedFileSizeConsumeQueue = 20 * 200;
    store_t *st = NULL;
    open_or_fail(&cfg, &st, what);
    if (verify_exact(st, b, dm.cut, NULL, 0) != 0)
        fail_msg("%s: %s", what, g_why);
    if (store_max_phys(st) != end)
        fail_msg("%s: the CommitLog ends at %" PRId64 ", expected %" PRId64, what,
                 store_max_phys(st), end);
    if (check_zero_after(dir, end) != 0)
        fail_msg("%s: %s", what, g_why);

    /* Appends go on from where each queue was cut, without reusing an offset. */
    struct ack extra[24];
    struct msgbuf *mb = malloc(sizeof *mb);
    assert_non_null(mb);
    for (uint32_t i = 0; i < 24; i++) {
        struct rid r = {100 + (uint32_t)caseno, 1, i};
        make_msg(r, mb);
        struct put_result pr;
        assert_int_equal(store_put(st, &mb->m, 1, &pr), 0);
        extra[i] = ack_of(r, &pr);
        if (pr.queue_offset != next[extra[i].topic][extra[i].qid])
            fail_msg("%s: a new record in %s/%d got offset %" PRId64 ", expected %" PRId64, what,
                     topic_names[extra[i].topic], extra[i].qid, pr.queue_offset,
                     next[extra[i].topic][extra[i].qid]);
        next[extra[i].topic][extra[i].qid]++;
    }
    free(mb);
    assert_int_equal(store_wait_dispatched(st, 10000 * test_time_mult()), 0);
    if (verify_exact(st, b, dm.cut, extra, 24) != 0)
        fail_msg("%s, after appending: %s", what, g_why);
    store_close(st);
    open_or_fail(&cfg, &st, what);
    if (verify_exact(st, b, dm.cut, extra, 24) != 0)
        fail_msg("%s, after appending and reopening: %s", what, g_why);
    store_close(st);
    test_rmdir(dir);
    dir[0] = 0;
}

#define CASES_PER_BASE 3

static void run_damage(enum damage_kind kind)
{
    int64_t t0 = clock_mono_ms();
    int cases = 0;
    for (int i = 0; i < nseeds() * 2; i++) {
        const struct base *b = get_base(i);
        uint64_t rng = mix64(b->seed ^ ((uint64_t)kind << 32) ^ (uint64_t)b->crashed);
        for (int c = 0; c < CASES_PER_BASE; c++, cases++)
            run_case(b, kind, c, &rng);
    }
    print_message("%d damaged copies recovered (%.1f s)\n", cases,
                  (double)(clock_mono_ms() - t0) / 1000.0);
}

static void test_corrupt_commitlog_tail_zeroed(void **state)
{
    run_damage(D_CL_ZERO_TAIL);
}

static void test_corrupt_commitlog_bits_flipped(void **state)
{
    run_damage(D_CL_BITFLIP);
}

static void test_corrupt_consumequeue_truncated(void **state)
{
    run_damage(D_CQ_TRUNCATE);
}

static void test_corrupt_consumequeue_bits_flipped(void **state)
{
    run_damage(D_CQ_BITFLIP);
    run_damage(D_CQ_PHYS_RAISED);
    run_damage(D_CQ_SIZE_RAISED);
}

static void test_corrupt_consumequeue_zeroed(void **state)
{
    run_damage(D_CQ_ZERO);
}

static void test_corrupt_consumequeue_dir_deleted(void **state)
{
    run_damage(D_CQ_DIR);
}

static void test_corrupt_checkpoint_deleted(void **state)
{
    run_damage(D_CKPT_DELETE);
    run_damage(D_CKPT_DELETE_ALL);
}

static void test_corrupt_checkpoint_garbage(void **state)
{
    run_damage(D_CKPT_GARBAGE);
}

static void test_corrupt_combined(void **state)
{
    run_damage(D_COMBINED);
}

/* A segment shorter than mappedFileSizeCommitLog: the store refuses to open, names the file
 * and changes nothing; zero-extended back to its size (a zeroed tail), it recovers. */
static void test_corrupt_commitlog_segment_short_refused(void **state)
{
    for (int i = 0; i < nseeds() * 2; i++) {
        const struct base *b = get_base(i);
        uint64_t rng = mix64(b->seed ^ 0x5e9);
        char *dir = g_case_dir;
        if (dir[0])
            test_rmdir(dir);
        test_tmpdir(dir, sizeof g_case_dir, "sfshort");
        copy_tree(b->dir, dir);
        int64_t last = (b->end - 1) / SEG * SEG;
        int64_t seg = test_rand(&rng) % 3 == 0 ? 0 : last;
        int64_t to = (int64_t)(test_rand(&rng) % SEG);
        char p[FERRY_PATH_MAX];
        seg_path(p, sizeof p, dir, seg);
        assert_int_equal(truncate(p, to), 0);
        struct store_config cfg;
        cfg_init(&cfg, dir, ASYNC_FLUSH, SEG);
        cfg.mappedFileSizeConsumeQueue = 20 * 200;
        for (int attempt = 0; attempt < 2; attempt++) {
            store_t *st = NULL;
            char err[1024] = "";
            int rc = store_open(&cfg, &st, err, sizeof err);
            if (rc == 0)
                fail_msg("segment %s cut to %" PRId64 " bytes: store_open succeeded", p, to);
            assert_int_equal(rc, FERRY_ECORRUPT);
            if (!strstr(err, p))
                fail_msg("segment %s cut to %" PRId64 " bytes: the error does not name it: %s", p,
                         to, err);
            assert_int_equal(file_size(p), to);
            if (attempt == 0)
                print_message("refused as expected: %s\n", err);
        }
        if (seg == last) {
            assert_int_equal(truncate(p, SEG), 0);
            int64_t cut = seg + to;
            int64_t end = b->end;
            for (size_t k = 0; k < b->n; k++)
                if (b->orig[k].phys + b->orig[k].size > cut) {
                    end = b->orig[k].phys;
                    break;
                }
            store_t *st = NULL;
            open_or_fail(&cfg, &st, "zero-extended segment");
            CHECK_OK(verify_exact(st, b, cut, NULL, 0));
            assert_int_equal(store_max_phys(st), end);
            store_close(st);
        }
        test_rmdir(dir);
        dir[0] = 0;
    }
}

/* ---- a lone SYNC_FLUSH producer --------------------------------------------------------- */

/* One thread appending under SYNC_FLUSH, on a RAM file system where a flush takes
 * microseconds: each put must be acknowledged by the flush that covers it, never left to time
 * out because the flusher finished just before the put joined the waiters (no other append
 * comes along to trigger the next flush). */
static void test_sync_put_lone_producer_never_times_out(void **state)
{
    char dir[FERRY_PATH_MAX];
    snprintf(dir, sizeof dir, "/dev/shm/ferry-sfsync-XXXXXX");
    if (access("/dev/shm", W_OK) != 0 || !mkdtemp(dir))
        test_tmpdir(dir, sizeof dir, "sfsync"); /* no RAM file system: still a valid test */
    struct store_config cfg;
    cfg_init(&cfg, dir, SYNC_FLUSH, SEG);
    cfg.syncFlushTimeout = 1000;
    cfg.messageIndexEnable = 0;
    store_t *st = NULL;
    open_or_fail(&cfg, &st, dir);
    struct store_msg m = {0};
    char body[32];
    m.topic = topic_names[0];
    m.body = body;
    int64_t t0 = clock_mono_ms(), budget = 3000, slowest = 0;
    int n = 0, timeouts = 0;
    for (; n < 200000 && clock_mono_ms() - t0 < budget; n++) {
        m.queue_id = n % NQUEUES;
        m.body_len = (uint32_t)snprintf(body, sizeof body, "lone-%d", n);
        struct put_result pr;
        int64_t t = clock_mono_ms();
        int rc = store_put(st, &m, 1, &pr);
        t = clock_mono_ms() - t;
        if (t > slowest)
            slowest = t;
        if (rc == FERRY_ETIMEDOUT)
            timeouts++;
        else if (rc != 0)
            fail_msg("put %d: %s", n, ferry_strerror(rc));
    }
    store_close(st);
    test_rmdir(dir);
    print_message("%d SYNC_FLUSH puts from one thread in %.1f s, slowest %" PRId64 " ms, %d timed "
                  "out\n",
                  n, (double)(clock_mono_ms() - t0) / 1000.0, slowest, timeouts);
    assert_int_equal(timeouts, 0);
}

/* ---- root-only tests in a child with its own mount namespace ---------------------------- */

#define EXIT_SKIP 77

static void run_root_child(const char *dir, const char *name, void (*body)(const char *dir),
                           int timeout_s)
{
    if (geteuid() != 0) {
        print_message("%s: needs root to mount file systems; skipped\n", name);
        skip();
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
            fprintf(stderr, "%s: no private mount namespace: %s\n", name, strerror(errno));
            _exit(EXIT_SKIP);
        }
        body(dir);
        child_exit(0);
    }
    int64_t deadline = clock_mono_ms() + (int64_t)timeout_s * 1000 * test_time_mult();
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        assert_int_equal(w, 0);
        if (clock_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s: no result within %d s", name, timeout_s * test_time_mult());
        }
        nap_ms(10);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
        print_message("%s: skipped (see above)\n", name);
        skip();
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s: child failed (status 0x%x; its report is above)", name, status);
}

static int mount_tmpfs(const char *path, const char *opts)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -errno;
    if (mount("tmpfs", path, "tmpfs", 0, opts) != 0)
        return -errno;
    snprintf(g_mounts[g_nmounts++], FERRY_PATH_MAX, "%s", path);
    return 0;
}

static void child_umount(const char *path)
{
    CK(g_nmounts > 0 && strcmp(g_mounts[g_nmounts - 1], path) == 0, "unmount order");
    CK(umount2(path, 0) == 0, "umount %s: %s", path, strerror(errno));
    g_nmounts--;
}

static void child_open(struct store_config *cfg, store_t **st)
{
    char err[512] = "";
    int rc = store_open(cfg, st, err, sizeof err);
    CK(rc == 0, "store_open %s: %s (%s)", cfg->storePathRootDir, err, ferry_strerror(rc));
}

/* Append record (round, 0, *seq); on success add it to @l. Returns store_put's code. */
static int child_put(store_t *st, uint32_t round, uint32_t *seq, struct acklist *l)
{
    static struct msgbuf mb;
    struct rid r = {round, 0, *seq};
    make_msg(r, &mb);
    struct put_result pr;
    int rc = store_put(st, &mb.m, 1, &pr);
    if (rc == 0) {
        struct ack k = ack_of(r, &pr);
        acks_push(l, &k);
        (*seq)++;
    }
    return rc;
}

/* Every acknowledged record is served, and at most @max_extra others (appends whose outcome
 * was an error). */
static void child_verify(store_t *st, const struct acklist *l, const char *when, int max_extra)
{
    int64_t n = 0;
    if (verify_acks(st, l->a, l->n, &n) != 0)
        CK(0, "%s: %s", when, g_why);
    CK(n >= (int64_t)l->n && n <= (int64_t)l->n + max_extra,
       "%s: %" PRId64 " records served, %zu acknowledged", when, n, l->n);
    for (size_t i = 0; i < l->n; i++)
        if (read_one(st, &l->a[i]) != 0)
            CK(0, "%s: %s", when, g_why);
    fprintf(stderr, "  %s: %zu acknowledged records read back\n", when, l->n);
}

static int wait_write_state(store_t *st, int want, int ms)
{
    int64_t deadline = clock_mono_ms() + (int64_t)ms * test_time_mult();
    while (store_write_state(st) != want && clock_mono_ms() < deadline)
        nap_ms(5);
    return store_write_state(st);
}

/* Write @len bytes to @path, or (@len < 0) fill the file system until ENOSPC. */
static void fill_file(const char *path, int64_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CK(fd >= 0, "create %s: %s", path, strerror(errno));
    static uint8_t chunk[1 << 16];
    memset(chunk, 0xb5, sizeof chunk);
    int64_t off = 0;
    size_t step = sizeof chunk;
    while (len < 0 || off < len) {
        size_t n = len >= 0 && len - off < (int64_t)step ? (size_t)(len - off) : step;
        ssize_t w = pwrite(fd, chunk, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w > 0) {
            off += w;
            continue;
        }
        CK(len < 0 && errno == ENOSPC, "write %s at %" PRId64 ": %s", path, off, strerror(errno));
        if (step == 4096)
            break;
        step = 4096; /* the last pages */
    }
    CK(fsync(fd) == 0, "fsync %s: %s", path, strerror(errno));
    close(fd);
}

static void fs_usage(const char *path, int64_t *total, int64_t *used, int64_t *avail)
{
    struct statvfs sv;
    CK(statvfs(path, &sv) == 0, "statvfs %s: %s", path, strerror(errno));
    *total = (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
    *used = (int64_t)(sv.f_blocks - sv.f_bfree) * (int64_t)sv.f_frsize;
    *avail = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/* Append until a put fails; returns its code. A put refused up front (disk full, or the store
 * already fenced) stores nothing; the put whose own fdatasync fails was written but is never
 * confirmed to readers. */
static int append_until_refused(store_t *st, uint32_t round, uint32_t *seq, struct acklist *l,
                                int max_puts)
{
    for (int i = 0; i < max_puts; i++) {
        int64_t before = store_max_phys(st), confirmed = store_confirm_phys(st);
        int fenced = store_write_state(st) == FERRY_EFENCED;
        int rc = child_put(st, round, seq, l);
        if (rc == 0)
            continue;
        if (rc == FERRY_EDISKFULL || fenced)
            CK(store_max_phys(st) == before,
               "a refused put (%s) moved the CommitLog end from %" PRId64 " to %" PRId64,
               ferry_strerror(rc), before, store_max_phys(st));
        CK(store_confirm_phys(st) == confirmed,
           "a refused put (%s) moved the confirmed end from %" PRId64 " to %" PRId64,
           ferry_strerror(rc), confirmed, store_confirm_phys(st));
        return rc;
    }
    return 0;
}

/* ---- 3. disk full ----------------------------------------------------------------------- */

static void disk_full_body(const char *dir)
{
    char mnt[FERRY_PATH_MAX], root[FERRY_PATH_MAX], ballast[FERRY_PATH_MAX];
    path_join(mnt, sizeof mnt, dir, "mnt");
    path_join(root, sizeof root, mnt, "store");
    path_join(ballast, sizeof ballast, mnt, "ballast");
    int rc = mount_tmpfs(mnt, "size=24m");
    if (rc != 0) {
        fprintf(stderr, "disk full: mount tmpfs: %s\n", strerror(-rc));
        _exit(EXIT_SKIP);
    }
    struct store_config cfg;
    cfg_init(&cfg, root, SYNC_FLUSH, SEG);
    cfg.diskSpaceWarningLevelRatio = 90;
    struct acklist l = {0};
    uint32_t seq = 0;
    store_t *st;
    child_open(&cfg, &st);
    for (int i = 0; i < 300; i++)
        PUT_OK(child_put(st, 1, &seq, &l));

    /* Soft limit: the ballast takes the file system past diskSpaceWarningLevelRatio. */
    int64_t total, used, avail;
    fs_usage(mnt, &total, &used, &avail);
    int64_t target = total * 92 / 100 - used;
    CK(target > 0, "tmpfs already %" PRId64 "%% used", used * 100 / total);
    fill_file(ballast, target / 4096 * 4096);
    fs_usage(mnt, &total, &used, &avail);
    fprintf(stderr, "  ballast %" PRId64 " KiB: %" PRId64 "%% used, %" PRId64 " KiB free\n",
            target / 1024, used * 100 / total, avail / 1024);
    rc = wait_write_state(st, FERRY_EDISKFULL, 5000);
    CK(rc == FERRY_EDISKFULL, "at %" PRId64 "%% used store_write_state says %s", used * 100 / total,
       rc ? ferry_strerror(rc) : "0");
    for (int i = 0; i < 5; i++) {
        rc = append_until_refused(st, 1, &seq, &l, 1);
        CK(rc == FERRY_EDISKFULL, "put over the warning level: %s", rc ? ferry_strerror(rc) : "0");
    }
    child_verify(st, &l, "full (warning level)", 0);
    store_close(st);
    /* Recovery drops the empty pre-allocated segment and the store creates it again, so the
     * use may dip under the level for a moment. */
    child_open(&cfg, &st);
    rc = wait_write_state(st, FERRY_EDISKFULL, 5000);
    CK(rc == FERRY_EDISKFULL, "reopened full: store_write_state says %s",
       rc ? ferry_strerror(rc) : "0");
    rc = append_until_refused(st, 1, &seq, &l, 1);
    CK(rc == FERRY_EDISKFULL, "put after reopening full: %s", rc ? ferry_strerror(rc) : "0");
    child_verify(st, &l, "reopened while full", 0);
    store_close(st);

    /* Hard limit: with the warning level at 99%, appends go on until a new segment cannot be
     * created (ENOSPC). */
    cfg.diskSpaceWarningLevelRatio = 99;
    child_open(&cfg, &st);
    size_t before = l.n;
    rc = append_until_refused(st, 1, &seq, &l, 100000);
    fs_usage(mnt, &total, &used, &avail);
    fprintf(stderr, "  %zu more appends until %s at %" PRId64 "%% used, %" PRId64 " KiB free\n",
            l.n - before, rc ? ferry_strerror(rc) : "none refused", used * 100 / total,
            avail / 1024);
    CK(rc == FERRY_EDISKFULL, "put on a full file system: %s", rc ? ferry_strerror(rc) : "0");
    for (int i = 0; i < 5; i++) {
        rc = append_until_refused(st, 1, &seq, &l, 1);
        CK(rc == FERRY_EDISKFULL, "put on a full file system: %s", rc ? ferry_strerror(rc) : "0");
    }
    /* While full, every append is refused and store_write_state says why, all the time (the
     * store retries the segment every second, which must not make the state flicker). */
    rc = wait_write_state(st, FERRY_EDISKFULL, 3000);
    CK(rc == FERRY_EDISKFULL,
       "every append is refused with FERRY_EDISKFULL but store_write_state says %s",
       rc ? ferry_strerror(rc) : "0");
    for (int64_t until = clock_mono_ms() + 2500; clock_mono_ms() < until;) {
        rc = append_until_refused(st, 1, &seq, &l, 1);
        CK(rc == FERRY_EDISKFULL, "put on a full file system: %s", rc ? ferry_strerror(rc) : "0");
        rc = store_write_state(st);
        CK(rc == FERRY_EDISKFULL, "appends are refused but store_write_state says %s",
           rc ? ferry_strerror(rc) : "0");
        nap_ms(10);
    }
    child_verify(st, &l, "full (no space for a segment)", 0);
    store_close(st);
    child_open(&cfg, &st);
    child_verify(st, &l, "reopened with no space for a segment", 0);

    /* Space comes back: appends work again within a bounded time, across segment rolls. */
    CK(unlink(ballast) == 0, "unlink %s: %s", ballast, strerror(errno));
    int64_t t0 = clock_mono_ms(), deadline = t0 + 10000LL * test_time_mult();
    while ((rc = child_put(st, 1, &seq, &l)) != 0) {
        CK(rc == FERRY_EDISKFULL, "put while space returns: %s", ferry_strerror(rc));
        CK(clock_mono_ms() < deadline, "appends still refused %d s after the space came back",
           10 * test_time_mult());
        nap_ms(20);
    }
    fprintf(stderr, "  appends accepted %" PRId64 " ms after the ballast was deleted\n",
            clock_mono_ms() - t0);
    rc = wait_write_state(st, 0, 5000);
    CK(rc == 0, "space is back but store_write_state says %s", ferry_strerror(rc));
    int64_t from = store_max_phys(st);
    while (store_max_phys(st) < from + 2 * SEG)
        PUT_OK(child_put(st, 1, &seq, &l));
    child_verify(st, &l, "space back", 0);
    store_close(st);
    child_open(&cfg, &st);
    child_verify(st, &l, "reopened with space", 0);
    store_close(st);
    free(l.a);
    child_umount(mnt);
}

static void test_disk_full_tmpfs(void **state)
{
    run_root_child(*state, "disk full", disk_full_body, 120);
}

/* ---- 4. a real fdatasync failure -------------------------------------------------------- */

/* The store runs on ext4 on a loop device; the fault is a real block-layer write error: the
 * loop device's size limit is lowered under the mounted file system to just after the CommitLog
 * write position, so writeback of every later page fails with EIO (bio past the end of the
 * device). (A loop device over a full tmpfs does not do: there, failed writeback of mmap-dirtied
 * pages is dropped silently and fdatasync returns 0, which no store can detect.) */

struct loopdev {
    int fd;
    char dev[64];
};

/* Attach @img to a free loop device that detaches itself once unmounted and closed. */
static int loop_attach(const char *img, struct loopdev *ld)
{
    int rc = -EBUSY;
    for (int attempt = 0; attempt < 8 && rc == -EBUSY; attempt++) {
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
            return -errno;
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        rc = n < 0 ? -errno : 0;
        close(ctl);
        if (rc)
            return rc;
        snprintf(ld->dev, sizeof ld->dev, "/dev/loop%d", n);
        ld->fd = open(ld->dev, O_RDWR | O_CLOEXEC);
        if (ld->fd < 0)
            return -errno;
        int ifd = open(img, O_RDWR | O_CLOEXEC);
        if (ifd < 0) {
            rc = -errno;
            close(ld->fd);
            return rc;
        }
        struct loop_config lc;
        memset(&lc, 0, sizeof lc);
        lc.fd = (uint32_t)ifd;
        lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        rc = ioctl(ld->fd, LOOP_CONFIGURE, &lc) == 0 ? 0 : -errno;
        close(ifd);
        if (rc)
            close(ld->fd); /* EBUSY: another process took it; try the next free one */
    }
    return rc;
}

static void loop_set_limit(const struct loopdev *ld, uint64_t limit)
{
    struct loop_info64 li;
    CK(ioctl(ld->fd, LOOP_GET_STATUS64, &li) == 0, "LOOP_GET_STATUS64: %s", strerror(errno));
    li.lo_sizelimit = limit;
    CK(ioctl(ld->fd, LOOP_SET_STATUS64, &li) == 0, "LOOP_SET_STATUS64: %s", strerror(errno));
}

static void ext4_mount(const char *img, const char *mnt, struct loopdev *ld)
{
    int rc = loop_attach(img, ld);
    if (rc != 0) {
        fprintf(stderr, "fsync failure: no loop device: %s\n", strerror(-rc));
        child_exit(EXIT_SKIP);
    }
    CK(mount(ld->dev, mnt, "ext4", 0, "errors=continue") == 0, "mount %s on %s: %s", ld->dev, mnt,
       strerror(errno));
    snprintf(g_mounts[g_nmounts++], FERRY_PATH_MAX, "%s", mnt);
}

static void ext4_umount(const char *mnt, struct loopdev *ld)
{
    child_umount(mnt);
    close(ld->fd); /* the loop device detaches itself now */
    ld->fd = -1;
}

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
    char cmd[3 * FERRY_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd) == 0 ? 0 : -1;
}

/* Device offset of byte @off of @path. */
static int64_t phys_of(const char *path, int64_t off)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CK(fd >= 0, "open %s: %s", path, strerror(errno));
    size_t sz = sizeof(struct fiemap) + 64 * sizeof(struct fiemap_extent);
    struct fiemap *fm = calloc(1, sz);
    CK(fm != NULL, "oom");
    fm->fm_start = 0;
    fm->fm_length = ~0ULL;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = 64;
    CK(ioctl(fd, FS_IOC_FIEMAP, fm) == 0, "FIEMAP %s: %s", path, strerror(errno));
    int64_t phys = -1;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
        const struct fiemap_extent *e = &fm->fm_extents[i];
        if (off >= (int64_t)e->fe_logical && off < (int64_t)(e->fe_logical + e->fe_length))
            phys = (int64_t)e->fe_physical + (off - (int64_t)e->fe_logical);
    }
    free(fm);
    close(fd);
    CK(phys >= 0, "%s: byte %" PRId64 " has no block", path, off);
    return phys;
}

static void fsync_failure_body(const char *dir)
{
    char back[FERRY_PATH_MAX], img[FERRY_PATH_MAX], mnt[FERRY_PATH_MAX], root[FERRY_PATH_MAX];
    path_join(back, sizeof back, dir, "back");
    path_join(img, sizeof img, back, "img");
    path_join(mnt, sizeof mnt, dir, "mnt");
    path_join(root, sizeof root, mnt, "store");
    int rc = mount_tmpfs(back, "size=128m");
    if (rc != 0) {
        fprintf(stderr, "fsync failure: mount tmpfs: %s\n", strerror(-rc));
        child_exit(EXIT_SKIP);
    }
    int img_fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CK(img_fd >= 0 && ftruncate(img_fd, 96 * MiB) == 0, "create %s: %s", img, strerror(errno));
    close(img_fd);
    /* One block group, no journal: the metadata sits before the store's data. */
    if (run_cmd("mkfs.ext4 -q -F -b 4096 -O ^has_journal -E lazy_itable_init=0,nodiscard %s "
                ">/dev/null 2>&1",
                img) != 0) {
        fprintf(stderr, "fsync failure: mkfs.ext4 unavailable or failed\n");
        child_exit(EXIT_SKIP);
    }
    CK(mkdir(mnt, 0755) == 0 || errno == EEXIST, "mkdir %s", mnt);
    struct loopdev ld;
    ext4_mount(img, mnt, &ld);

    struct store_config cfg;
    cfg_init(&cfg, root, SYNC_FLUSH, SEG);
    cfg.diskSpaceWarningLevelRatio = 99;
    struct acklist l = {0};
    uint32_t seq = 0;
    store_t *st;
    child_open(&cfg, &st);
    for (int i = 0; i < 150; i++)
        PUT_OK(child_put(st, 2, &seq, &l));
    CK(store_wait_dispatched(st, 5000) == 0, "dispatch did not catch up");

    /* Cut the device just after the page holding the write position. The next segment must
     * exist first: its creation failing is a different path (an allocation error). */
    int64_t pos = store_max_phys(st), seg = pos / SEG * SEG;
    char p[FERRY_PATH_MAX];
    seg_path(p, sizeof p, root, seg + SEG);
    int64_t deadline = clock_mono_ms() + 5000LL * test_time_mult();
    while (file_size(p) != SEG) {
        CK(clock_mono_ms() < deadline, "segment %s was not pre-allocated", p);
        nap_ms(5);
    }
    seg_path(p, sizeof p, root, seg);
    int64_t from = (pos - seg + 4095) / 4096 * 4096;
    int64_t cut = phys_of(p, from < SEG ? from : SEG - 4096);
    loop_set_limit(&ld, (uint64_t)cut);
    fprintf(stderr, "  device cut at byte %" PRId64 " (CommitLog %" PRId64 ")\n", cut, seg + from);

    size_t before = l.n;
    rc = append_until_refused(st, 2, &seq, &l, 2 * SEG / BODY_MIN);
    fprintf(stderr, "  %zu appends acknowledged before the refusal: %s\n", l.n - before,
            rc ? ferry_strerror(rc) : "none");
    CK(rc == FERRY_EFENCED, "after a failed fdatasync a put returned %s, not FERRY_EFENCED",
       rc ? ferry_strerror(rc) : "0 (acknowledged)");
    CK(store_write_state(st) == FERRY_EFENCED, "write state %d", store_write_state(st));
    for (size_t i = before; i < l.n; i++)
        CK(l.a[i].phys + l.a[i].size <= seg + from,
           "r2-t0-s%u was acknowledged although it ends at %" PRId64 ", past the device cut",
           l.a[i].seq, l.a[i].phys + l.a[i].size);
    /* Readers see exactly the acknowledged records: not the one whose sync failed. */
    child_verify(st, &l, "fenced", 0);

    /* The device works again; the store must stay fenced (a second fdatasync would now
     * succeed without the lost pages: fsyncgate). */
    loop_set_limit(&ld, 0);
    for (int i = 0; i < 20; i++) {
        rc = append_until_refused(st, 2, &seq, &l, 1);
        CK(rc == FERRY_EFENCED, "a fenced store accepted a put once the disk came back: %s",
           rc ? ferry_strerror(rc) : "0");
    }
    CK(store_write_state(st) == FERRY_EFENCED, "write state %d", store_write_state(st));
    store_close(st);
    ext4_umount(mnt, &ld);
    ext4_mount(img, mnt, &ld);

    child_open(&cfg, &st);
    int abnormal = 0;
    store_recovery_ms(st, &abnormal);
    CK(abnormal == 1, "a fenced store closed cleanly");
    CK(store_write_state(st) == 0, "still refusing writes after a restart: %d",
       store_write_state(st));
    child_verify(st, &l, "restarted after the failed fdatasync", 1);
    for (int i = 0; i < 50; i++)
        PUT_OK(child_put(st, 3, &seq, &l));
    child_verify(st, &l, "appending again", 1);
    store_close(st);
    free(l.a);
    ext4_umount(mnt, &ld);
    child_umount(back);
}

static void test_fsync_failure_fences_store(void **state)
{
    run_root_child(*state, "fsync failure", fsync_failure_body, 120);
}

/* ---- main ------------------------------------------------------------------------------ */

static int setup_dir(void **state)
{
    char *dir = malloc(FERRY_PATH_MAX);
    test_tmpdir(dir, FERRY_PATH_MAX, "sfault");
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    test_rmdir(*state);
    free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_kill9_during_sync_appends, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(test_corrupt_commitlog_tail_zeroed),
        cmocka_unit_test(test_corrupt_commitlog_bits_flipped),
        cmocka_unit_test(test_corrupt_commitlog_segment_short_refused),
        cmocka_unit_test(test_corrupt_consumequeue_truncated),
        cmocka_unit_test(test_corrupt_consumequeue_bits_flipped),
        cmocka_unit_test(test_corrupt_consumequeue_zeroed),
        cmocka_unit_test(test_corrupt_consumequeue_dir_deleted),
        cmocka_unit_test(test_corrupt_checkpoint_deleted),
        cmocka_unit_test(test_corrupt_checkpoint_garbage),
        cmocka_unit_test(test_corrupt_combined),
        cmocka_unit_test(test_sync_put_lone_producer_never_times_out),
        cmocka_unit_test_setup_teardown(test_disk_full_tmpfs, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fsync_failure_fences_store, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
