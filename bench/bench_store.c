/* FerryMQ storage benchmark: appends (ASYNC_FLUSH and SYNC_FLUSH), read-back and crash
 * recovery of the store, each next to a raw-I/O baseline measured in the same run on the same
 * disk. It asserts nothing; bench/bench_store.sh (make bench-store) runs it several times and
 * prints the medians.
 *
 * Usage: bench_store <work dir>     (created; must be on a real disk, not tmpfs; the benchmark
 *                                    removes what it writes there, not the directory itself)
 * Environment:
 *   FERRY_BENCH_QUICK=1      tiny sizes, a smoke run of a few seconds
 *   FERRY_BENCH_BIG=1        also a 10 GiB recovery (when the disk has room)
 *   FERRY_BENCH_SYNC_SECS=s  seconds per SYNC_FLUSH case and per its baseline (default 5)
 *   FERRY_BENCH_ONLY=list    run only these phases: async,sync,recovery (for development)
 *   FERRY_LOG_QUIET=1        silence the store's info logs (warnings still go to stderr)
 *
 * Output: human-readable lines, and for each result exactly one line
 *   RESULT bench=<name> value=<n> unit=<u> baseline=<n> ratio=<r>
 * (ratio = value / baseline), followed by "DETAIL bench=<name> key=value ..." with its
 * secondary numbers (latency percentiles, group-commit batch size, ...).
 * MB/s means 10^6 bytes per second of CommitLog record bytes (put_result.size). */
#include "common/err.h"
#include "common/fsutil.h"
#include "store/msg.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((int64_t)1 << 10)
#define MiB ((int64_t)1 << 20)
#define GiB ((int64_t)1 << 30)

#define TOPIC     "BenchTopic"
#define NQUEUES   8
#define MAX_THR   64
#define GET_MSGS  32
#define GET_BYTES (256 * KiB)

static const uint32_t body_sizes[] = {128, 1024, 4096};
static const char *const body_names[] = {"128", "1k", "4k"};
static const int thread_counts[] = {1, 16, 64};
#define N_BODIES  3
#define N_THREADS 3

/* Targets from the issue: printed next to the results, never asserted. */
#define TARGET_ASYNC_RATIO 0.70
#define TARGET_SYNC_RATIO  0.60
#define TARGET_RECOVERY_MB 500.0

/* ---- small helpers --------------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec d = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "bench_store: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static double mb(int64_t bytes)
{
    return (double)bytes / 1e6;
}

static double secs_of(int64_t ns)
{
    return (double)ns / 1e9;
}

static void result(const char *name, double value, const char *unit, double baseline)
{
    double ratio = baseline > 0 ? value / baseline : 0;
    printf("RESULT bench=%s value=%.1f unit=%s baseline=%.1f ratio=%.3f\n", name, value, unit,
           baseline, ratio);
}

/* Secondary numbers of a result, "DETAIL bench=<name> key=value ...", which bench_store.sh
 * also summarizes as medians. */
static void detail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void detail(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("DETAIL bench=%s ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void target_ratio(double value, double baseline, double want, const char *what)
{
    double ratio = baseline > 0 ? value / baseline : 0;
    printf("  target (not asserted): %s >= %.2f x baseline: %.3f, %s\n", what, want, ratio,
           ratio >= want ? "met" : "MISSED");
}

static void write_all(int fd, const void *buf, size_t len, const char *what)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write %s: %s", what, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void remove_tree(const char *path)
{
    int rc = fs_remove_tree(path);
    if (rc)
        fprintf(stderr, "bench_store: remove %s: %s\n", path, ferry_strerror(rc));
}

static int64_t free_bytes(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        die("statvfs %s: %s", path, strerror(errno));
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/* Flush everything dirty on the file system of @path, so the next case starts on a quiet
 * disk. Not part of any measurement. */
static void quiesce(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

static int can_drop_caches;

/* Write back and drop the page cache (root only) for cold-cache measurements. */
static int drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ok = write(fd, "3", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

/* ---- counting the store's fdatasync calls ------------------------------------------------
 * Linked with -Wl,--wrap=fdatasync (bench/CMakeLists.txt): the store's calls land here. A call
 * counts as a CommitLog sync when the file is a segment under .../commitlog/ (segment creation
 * syncs a *.tmp file, which is not counted). The readlink costs a few microseconds per sync. */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

static atomic_llong cl_syncs, cl_sync_ns;

int __wrap_fdatasync(int fd)
{
    char link[64], path[FERRY_PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    int64_t t0 = now_ns();
    int rc = __real_fdatasync(fd);
    int saved = errno;
    if (n > 4) {
        path[n] = 0;
        if (strstr(path, "/commitlog/") && strcmp(path + n - 4, ".tmp") != 0) {
            atomic_fetch_add(&cl_syncs, 1);
            atomic_fetch_add(&cl_sync_ns, now_ns() - t0);
        }
    }
    errno = saved;
    return rc;
}

/* ---- profile: how much data, sized to the disk --------------------------------------------- */

struct profile {
    const char *name;
    int64_t seg;         /* mappedFileSizeCommitLog */
    int64_t async_bytes; /* record bytes per ASYNC_FLUSH case */
    double sync_secs;    /* per SYNC_FLUSH case, and per write+fdatasync baseline */
    int64_t prefill;     /* pre-written file for the write+fdatasync baseline (wraps around) */
    int64_t rec_bytes;   /* record bytes in the recovery CommitLog */
    const char *rec_label;
    int32_t hash_slots, index_num;
};

static const struct profile prof_full = {.name = "full",
                                         .seg = 1 * GiB,
                                         .async_bytes = 256 * MiB,
                                         .sync_secs = 5.0,
                                         .prefill = 256 * MiB,
                                         .rec_bytes = 1 * GiB + 256 * MiB,
                                         .rec_label = "1g",
                                         .hash_slots = 500000,
                                         .index_num = 2000000};
/* When the disk is short: 256 MiB segments, still a 1 GiB+ recovery. */
static const struct profile prof_small_disk = {.name = "reduced-disk",
                                               .seg = 256 * MiB,
                                               .async_bytes = 64 * MiB,
                                               .sync_secs = 5.0,
                                               .prefill = 64 * MiB,
                                               .rec_bytes = 1 * GiB + 64 * MiB,
                                               .rec_label = "1g",
                                               .hash_slots = 500000,
                                               .index_num = 2000000};
/* FERRY_BENCH_QUICK=1, or a disk too small for the above: a smoke run. */
static const struct profile prof_quick = {.name = "quick",
                                          .seg = 64 * MiB,
                                          .async_bytes = 8 * MiB,
                                          .sync_secs = 0.5,
                                          .prefill = 16 * MiB,
                                          .rec_bytes = 96 * MiB,
                                          .rec_label = "96m",
                                          .hash_slots = 20000,
                                          .index_num = 80000};

static int64_t index_file_bytes(const struct profile *p)
{
    return 40 + (int64_t)p->hash_slots * 4 + (int64_t)p->index_num * 20;
}

/* Peak disk use of the default phases (each phase removes its files before the next). */
static int64_t disk_need(const struct profile *p)
{
    int64_t ix = index_file_bytes(p), meta = 64 * MiB;
    int64_t async = 2 * p->seg + p->async_bytes + 3 * ix + meta;
    int64_t sync = 3 * p->seg + p->prefill + ix + meta;
    int64_t rec = (p->rec_bytes / p->seg + 3) * p->seg + 2 * ix + meta;
    int64_t need = async > sync ? async : sync;
    need = need > rec ? need : rec;
    return need + 1 * GiB; /* margin for a shared disk */
}

static int64_t big_need(const struct profile *p)
{
    return (10 * GiB / p->seg + 3) * p->seg + 6 * index_file_bytes(p) + 2 * GiB;
}

static const struct profile *P;
static const char *only_phases; /* FERRY_BENCH_ONLY: comma-separated phase names, NULL = all */

static int phase_on(const char *name)
{
    if (!only_phases || !*only_phases)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only_phases; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only_phases || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

static char work_dir[2048];

/* ---- store helpers ------------------------------------------------------------------------ */

static void bench_config(struct store_config *cfg, const char *root, int flush)
{
    store_config_defaults(cfg);
    snprintf(cfg->storePathRootDir, sizeof cfg->storePathRootDir, "%s", root);
    cfg->flushDiskType = flush;
    /* Development switch to compare the two append paths. */
    if (getenv("FERRY_BENCH_PWRITE"))
        cfg->writeWithoutMmap = atoi(getenv("FERRY_BENCH_PWRITE"));
    cfg->mappedFileSizeCommitLog = P->seg;
    cfg->messageIndexEnable = 1; /* realistic, with smaller index files than the default */
    cfg->maxHashSlotNum = P->hash_slots;
    cfg->maxIndexNum = P->index_num;
    /* The disk is shared with other work: do not let its fill level (not ours) refuse appends.
     * This only changes behaviour near a full disk, never the speed of an append. */
    cfg->diskSpaceWarningLevelRatio = 99;
}

static store_t *open_store(const char *root, int flush, int64_t *open_ns)
{
    struct store_config cfg;
    bench_config(&cfg, root, flush);
    char err[512] = "";
    store_t *st;
    int64_t t0 = now_ns();
    int rc = store_open(&cfg, &st, err, sizeof err);
    if (rc)
        die("store_open %s: %s (%s)", root, ferry_strerror(rc), err);
    if (open_ns)
        *open_ns = now_ns() - t0;
    return st;
}

static void seg_path(const char *root, int64_t start, char *out, size_t len)
{
    snprintf(out, len, "%s/commitlog/%020lld", root, (long long)start);
}

/* Wait until the store's allocation thread has created (zero-filled, synced, renamed) the
 * segment after the one holding the write position, so no measurement pays for it. */
static void wait_prealloc(store_t *st, const char *root)
{
    int64_t next = (store_max_phys(st) / P->seg + 1) * P->seg;
    char path[FERRY_PATH_MAX];
    seg_path(root, next, path, sizeof path);
    int64_t deadline = now_ns() + 600 * (int64_t)1000000000;
    struct stat sb;
    while (stat(path, &sb) != 0 || sb.st_size != P->seg) {
        if (now_ns() > deadline)
            die("segment %s was not pre-allocated within 600 s", path);
        sleep_ms(10);
    }
}

static void wait_dispatch(store_t *st, int64_t *ms)
{
    int64_t t0 = now_ns();
    int rc = store_wait_dispatched(st, 600000);
    if (rc)
        die("dispatch did not catch up: %s", ferry_strerror(rc));
    if (ms)
        *ms = (now_ns() - t0) / 1000000;
}

/* ---- messages ----------------------------------------------------------------------------- */

static uint8_t body_buf[4096];

/* Properties "TAGS\1TagA\2KEYS\1kTT-SSSSSSSSSS\2": fixed width, so every record of a body size
 * has the same size; KEYS is unique per message (one index entry each). */
#define PROPS_TEMPLATE "TAGS\001TagA\002KEYS\001k00-0000000000\002"
#define PROPS_KEY_OFF  16 /* "TT-SSSSSSSSSS" starts after "TAGS\1TagA\2KEYS\1k" */

_Static_assert(sizeof PROPS_TEMPLATE - 1 == PROPS_KEY_OFF + 14, "KEYS value is last");

struct msgbuf {
    struct store_msg m;
    char props[sizeof PROPS_TEMPLATE];
};

static void put_digits(char *end, int n, uint64_t v)
{
    for (int i = 0; i < n; i++) {
        *--end = (char)('0' + v % 10);
        v /= 10;
    }
}

static void msg_init(struct msgbuf *b, int tid, uint32_t body_len)
{
    memset(b, 0, sizeof *b);
    memcpy(b->props, PROPS_TEMPLATE, sizeof PROPS_TEMPLATE);
    b->m.topic = TOPIC;
    b->m.queue_id = tid % NQUEUES;
    b->m.born_host.addr[0] = 127;
    b->m.born_host.addr[3] = 1;
    b->m.born_host.port = 40000 + (uint32_t)tid;
    b->m.body = body_buf;
    b->m.body_len = body_len;
    b->m.props = b->props;
    b->m.props_len = (uint32_t)strlen(PROPS_TEMPLATE);
    put_digits(b->props + PROPS_KEY_OFF + 2, 2, (uint64_t)tid);
}

static void msg_seq(struct msgbuf *b, int64_t seq)
{
    put_digits(b->props + PROPS_KEY_OFF + 13, 10, (uint64_t)seq);
    b->m.born_ts = wall_ms();
}

static int64_t record_size(uint32_t body_len)
{
    struct msgbuf b;
    msg_init(&b, 0, body_len);
    struct msg_host sh = {{127, 0, 0, 1}, 0, 10911}; /* the store's default storeHost */
    return (int64_t)msg_record_size(&b.m, &sh, 1);
}

/* One message per queue, so queue files exist and the first segment is taken. */
static void warm_up(store_t *st)
{
    for (int q = 0; q < NQUEUES; q++) {
        struct msgbuf b;
        struct put_result res;
        msg_init(&b, q, 1024);
        msg_seq(&b, 0);
        int rc = store_put(st, &b.m, 1, &res);
        if (rc)
            die("warm-up store_put: %s", ferry_strerror(rc));
    }
}

/* ---- append cases ------------------------------------------------------------------------- */

struct run {
    store_t *st;
    uint32_t body_len;
    int nthreads;
    int64_t per_thread; /* > 0: messages per thread; 0: until the deadline */
    int64_t deadline;   /* now_ns() at which a timed case ends */
    int latency;        /* record per-append latency */
    pthread_barrier_t start;
};

struct worker {
    struct run *r;
    int tid;
    pthread_t th;
    int64_t msgs, bytes, errors, late;
    int first_err;
    int64_t *lat;
    size_t nlat, cap;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->r;
    struct msgbuf b;
    struct put_result res;
    msg_init(&b, w->tid, r->body_len);
    if (r->latency) {
        w->cap = 1 << 14;
        w->lat = malloc(w->cap * sizeof *w->lat);
        if (!w->lat)
            die("out of memory");
    }
    pthread_barrier_wait(&r->start);
    for (int64_t i = 0;; i++) {
        int64_t t0 = now_ns();
        if (r->per_thread ? i >= r->per_thread : t0 >= r->deadline)
            break;
        msg_seq(&b, i);
        int rc = store_put(r->st, &b.m, 1, &res);
        int64_t t1 = r->per_thread ? 0 : now_ns();
        if (rc == 0 && !r->per_thread && t1 > r->deadline) {
            w->late++; /* returned after the window closed: not counted */
            continue;
        }
        if (rc == 0) {
            w->msgs++;
            w->bytes += res.size;
            if (r->latency) {
                if (w->nlat == w->cap) {
                    w->cap *= 2;
                    w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
                    if (!w->lat)
                        die("out of memory");
                }
                w->lat[w->nlat++] = t1 - t0;
            }
            continue;
        }
        w->errors++;
        if (!w->first_err)
            w->first_err = rc;
        if (rc != FERRY_ETIMEDOUT) /* stored but not durable in time: keep going */
            break;
    }
    return NULL;
}

struct outcome {
    int64_t msgs, bytes, errors, late, ns, syncs, sync_ns, tail_ms;
    int first_err;
    double p50_ms, p99_ms;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    double x = p * (double)n;
    size_t k = (size_t)x;
    k += (double)k < x; /* nearest rank: ceil(p * n) */
    k = k < 1 ? 1 : k > n ? n : k;
    return (double)v[k - 1] / 1e6;
}

/* Run one case: @nthreads threads each appending one message at a time, either
 * @per_thread messages each (the window ends when the last one returns), or for @secs
 * seconds (appends that return after the window are not counted; the fdatasync count is
 * taken when the window closes). */
static struct outcome run_case(store_t *st, uint32_t body_len, int nthreads, int64_t per_thread,
                               double secs, int latency)
{
    static struct worker ws[MAX_THR];
    struct run r = {.st = st,
                    .body_len = body_len,
                    .nthreads = nthreads,
                    .per_thread = per_thread,
                    .latency = latency};
    pthread_barrier_init(&r.start, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        ws[i] = (struct worker){.r = &r, .tid = i};
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0)
            die("pthread_create: %s", strerror(errno));
    }
    struct outcome o = {0};
    int64_t s0 = atomic_load(&cl_syncs), sn0 = atomic_load(&cl_sync_ns);
    int64_t t0 = now_ns();
    r.deadline = t0 + (int64_t)(secs * 1e9);
    pthread_barrier_wait(&r.start);
    if (!per_thread) {
        int64_t left = r.deadline - now_ns();
        if (left > 0)
            sleep_ms(left / 1000000);
        while (now_ns() < r.deadline)
            ;
        o.syncs = atomic_load(&cl_syncs) - s0;
        o.sync_ns = atomic_load(&cl_sync_ns) - sn0;
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(ws[i].th, NULL);
    int64_t t1 = now_ns();
    if (per_thread) {
        o.ns = t1 - t0;
        o.syncs = atomic_load(&cl_syncs) - s0;
        o.sync_ns = atomic_load(&cl_sync_ns) - sn0;
    } else {
        o.ns = r.deadline - t0;
        o.tail_ms = (t1 - r.deadline) / 1000000;
    }
    pthread_barrier_destroy(&r.start);

    size_t nlat = 0;
    for (int i = 0; i < nthreads; i++) {
        o.msgs += ws[i].msgs;
        o.bytes += ws[i].bytes;
        o.errors += ws[i].errors;
        o.late += ws[i].late;
        if (!o.first_err)
            o.first_err = ws[i].first_err;
        nlat += ws[i].nlat;
    }
    if (latency && nlat) {
        int64_t *all = malloc(nlat * sizeof *all);
        if (!all)
            die("out of memory");
        size_t k = 0;
        for (int i = 0; i < nthreads; i++) {
            memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
            k += ws[i].nlat;
        }
        qsort(all, nlat, sizeof *all, cmp_i64);
        o.p50_ms = percentile_ms(all, nlat, 0.50);
        o.p99_ms = percentile_ms(all, nlat, 0.99);
        free(all);
    }
    for (int i = 0; i < nthreads; i++)
        free(ws[i].lat);
    if (o.errors)
        printf("  NOTE: %lld appends failed, first error: %s\n", (long long)o.errors,
               ferry_strerror(o.first_err));
    if (o.tail_ms >= 100)
        printf("  NOTE: the last store_put returned %lld ms after the window closed (a SYNC "
               "append waits up to syncFlushTimeout=5000 ms for its group commit)\n",
               (long long)o.tail_ms);
    return o;
}

/* ---- raw baselines ----------------------------------------------------------------------- */

/* (a) A plain write() loop of @total bytes in @chunk-byte writes into a fresh file. */
static double raw_seq_write(int64_t total, int64_t chunk)
{
    char path[FERRY_PATH_MAX];
    snprintf(path, sizeof path, "%s/raw_write", work_dir);
    uint8_t *buf = malloc((size_t)chunk);
    if (!buf)
        die("out of memory");
    for (int64_t i = 0; i < chunk; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    int64_t t0 = now_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    for (int64_t done = 0; done < total; done += chunk)
        write_all(fd, buf, (size_t)chunk, path);
    int64_t ns = now_ns() - t0;
    close(fd);
    unlink(path); /* its dirty pages are dropped, not written back behind later cases */
    free(buf);
    return mb(total) / secs_of(ns);
}

/* A file of @size bytes written with zeros and synced: what a CommitLog segment is. */
static int prefill_file(const char *path, int64_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    static uint8_t zeros[1 << 20];
    for (int64_t off = 0; off < size; off += (int64_t)sizeof zeros)
        write_all(fd, zeros, sizeof zeros, path);
    if (__real_fdatasync(fd) != 0)
        die("fdatasync %s: %s", path, strerror(errno));
    return fd;
}

struct sync_base {
    double syncs_per_s, mb_per_s;
};

/* (b) Sequential pwrite() of @batch bytes then fdatasync(), for @secs seconds, into the
 * pre-filled file @fd of @size bytes (wrapping around at its end). */
static struct sync_base raw_write_sync(int fd, int64_t size, int64_t batch, double secs)
{
    uint8_t *buf = malloc((size_t)batch);
    if (!buf)
        die("out of memory");
    for (int64_t i = 0; i < batch; i++)
        buf[i] = (uint8_t)(i * 29 + 1);
    int64_t pos = 0, n = 0, t0 = now_ns(), end = t0 + (int64_t)(secs * 1e9), t;
    do {
        if (pos + batch > size)
            pos = 0;
        for (int64_t done = 0; done < batch;) {
            ssize_t w = pwrite(fd, buf + done, (size_t)(batch - done), (off_t)(pos + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                die("pwrite: %s", strerror(errno));
            done += w;
        }
        if (__real_fdatasync(fd) != 0)
            die("fdatasync: %s", strerror(errno));
        pos += batch;
        n++;
        t = now_ns();
    } while (t < end);
    free(buf);
    struct sync_base b;
    b.syncs_per_s = (double)n / secs_of(t - t0);
    b.mb_per_s = mb(n * batch) / secs_of(t - t0);
    return b;
}

/* read() the CommitLog bytes [0, @end) of the store in @root into a @chunk-byte buffer. */
static double raw_read_log(const char *root, int64_t end, int64_t chunk)
{
    uint8_t *buf = malloc((size_t)chunk);
    if (!buf)
        die("out of memory");
    int64_t t0 = now_ns(), total = 0;
    for (int64_t start = 0; start < end; start += P->seg) {
        char path[FERRY_PATH_MAX];
        seg_path(root, start, path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open %s: %s", path, strerror(errno));
        int64_t want = end - start < P->seg ? end - start : P->seg;
        while (want > 0) {
            ssize_t n = read(fd, buf, (size_t)(want < chunk ? want : chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                die("read %s: %s", path, n ? strerror(errno) : "short file");
            want -= n;
            total += n;
        }
        close(fd);
    }
    int64_t ns = now_ns() - t0;
    free(buf);
    return mb(total) / secs_of(ns);
}

/* ---- read-back ---------------------------------------------------------------------------- */

/* Read every record of every queue through store_get() (32 messages / 256 KiB per call),
 * copying each slice into a buffer as a pull response would. */
static void readback(store_t *st, const char *root, int64_t expect_msgs)
{
    static uint8_t out[2 * GET_BYTES];
    struct store_slice slices[GET_MSGS];
    int64_t msgs = 0, bytes = 0, calls = 0, t0 = now_ns();
    for (int q = 0; q < NQUEUES; q++) {
        int64_t off = store_min_offset(st, TOPIC, q), max = store_max_offset(st, TOPIC, q);
        while (off < max) {
            struct get_request req = {TOPIC, q, off, GET_MSGS, GET_BYTES, NULL, 0};
            struct get_result res = {.msgs = slices};
            int rc = store_get(st, &req, &res);
            calls++;
            if (rc || res.status != GET_FOUND)
                die("store_get %s/%d at %lld: rc %s status %d", TOPIC, q, (long long)off,
                    ferry_strerror(rc), (int)res.status);
            size_t pos = 0;
            for (int i = 0; i < res.n; i++) {
                if (pos + slices[i].len > sizeof out)
                    pos = 0;
                memcpy(out + pos, slices[i].data, slices[i].len);
                pos += slices[i].len;
                bytes += slices[i].len;
            }
            msgs += res.n;
            store_release(slices, res.n);
            off = res.next_offset;
        }
    }
    int64_t ns = now_ns() - t0;
    if (msgs != expect_msgs)
        printf("  NOTE: read %lld records, %lld were appended\n", (long long)msgs,
               (long long)expect_msgs);
    double rate = mb(bytes) / secs_of(ns);
    double base = raw_read_log(root, store_max_phys(st), GET_BYTES);
    printf("read-back (store_get, %d msgs / %lld KiB per call, queue by queue, warm cache): "
           "%lld records, %.1f MB in %.2f s (%lld calls): %.0f msgs/s, %.1f MB/s\n",
           GET_MSGS, (long long)(GET_BYTES / KiB), (long long)msgs, mb(bytes), secs_of(ns),
           (long long)calls, (double)msgs / secs_of(ns), rate);
    printf("  baseline: read() of the same CommitLog files into a %lld KiB buffer (warm): "
           "%.1f MB/s\n",
           (long long)(GET_BYTES / KiB), base);
    result("read_1k", rate, "MB/s", base);
    detail("read_1k", "msgs_per_s=%.0f", (double)msgs / secs_of(ns));
}

/* ---- phases --------------------------------------------------------------------------------- */

static void phase_async(void)
{
    printf("\n== ASYNC_FLUSH appends: %lld MiB of records per case; threads append one message "
           "at a time to %s, queue = thread %% %d\n",
           (long long)(P->async_bytes / MiB), TOPIC, NQUEUES);
    printf("   (one store per body size, the cases run one after another in it; the timed window "
           "ends when the last store_put returns; the pre-allocated next segment is created "
           "before it)\n");
    for (int b = 0; b < N_BODIES; b++) {
        uint32_t body = body_sizes[b];
        int64_t rec = record_size(body);
        char root[FERRY_PATH_MAX];
        snprintf(root, sizeof root, "%s/async_%s", work_dir, body_names[b]);
        printf("-- body %u B, record %lld B\n", body, (long long)rec);
        int64_t raw_total = P->async_bytes / rec * rec;
        double raw = raw_seq_write(raw_total, rec);
        printf("  baseline: write() of %lld MiB in %lld B chunks to a fresh file: %.1f MB/s\n",
               (long long)(raw_total / MiB), (long long)rec, raw);

        store_t *st = open_store(root, ASYNC_FLUSH, NULL);
        warm_up(st);
        wait_prealloc(st, root);
        wait_dispatch(st, NULL);
        quiesce(root);
        int64_t appended = NQUEUES;
        for (int t = 0; t < N_THREADS; t++) {
            int n = thread_counts[t];
            int64_t per = (P->async_bytes / rec + n - 1) / n;
            int64_t seg_before = store_max_phys(st) / P->seg;
            struct outcome o = run_case(st, body, n, per, 0, 0);
            appended += o.msgs;
            int64_t catchup_ms;
            wait_dispatch(st, &catchup_ms);
            double rate = mb(o.bytes) / secs_of(o.ns);
            char name[64];
            snprintf(name, sizeof name, "append_async_%s_t%d", body_names[b], n);
            printf("%s: %lld msgs in %.2f s: %.0f msgs/s, %.1f MB/s; dispatch caught up %lld ms "
                   "after the last append%s\n",
                   name, (long long)o.msgs, secs_of(o.ns), (double)o.msgs / secs_of(o.ns), rate,
                   (long long)catchup_ms,
                   store_max_phys(st) / P->seg != seg_before
                       ? " (crossed into a new segment: includes a segment switch)"
                       : "");
            result(name, rate, "MB/s", raw);
            detail(name, "msgs_per_s=%.0f dispatch_lag_ms=%lld", (double)o.msgs / secs_of(o.ns),
                   (long long)catchup_ms);
            target_ratio(rate, raw, TARGET_ASYNC_RATIO, "ASYNC append MB/s vs raw write()");
            quiesce(root);
        }
        if (body == 1024)
            readback(st, root, appended);
        store_close(st);
        remove_tree(root);
    }
}

static void phase_sync(void)
{
    printf("\n== SYNC_FLUSH appends: %.1f s per case; store_put returns after the group commit's "
           "fdatasync\n",
           P->sync_secs);
    printf("   batch = appends / CommitLog fdatasync calls, counted in-process by a link-time "
           "wrapper around the store's own fdatasync() (-Wl,--wrap=fdatasync)\n");
    printf("   baseline: pwrite() of batch x record bytes + fdatasync(), sequential, into a "
           "pre-written (zero-filled, synced) %lld MiB file, for the same time;\n"
           "   its appends/s = syncs/s x batch\n",
           (long long)(P->prefill / MiB));
    char pre[FERRY_PATH_MAX];
    snprintf(pre, sizeof pre, "%s/raw_prefilled", work_dir);
    int pfd = prefill_file(pre, P->prefill);
    for (int b = 0; b < N_BODIES; b++) {
        uint32_t body = body_sizes[b];
        int64_t rec = record_size(body);
        char root[FERRY_PATH_MAX];
        snprintf(root, sizeof root, "%s/sync_%s", work_dir, body_names[b]);
        printf("-- body %u B, record %lld B\n", body, (long long)rec);
        store_t *st = open_store(root, SYNC_FLUSH, NULL);
        warm_up(st);
        for (int t = 0; t < N_THREADS; t++) {
            int n = thread_counts[t];
            wait_prealloc(st, root);
            wait_dispatch(st, NULL);
            quiesce(root);
            int64_t seg_before = store_max_phys(st) / P->seg;
            struct outcome o = run_case(st, body, n, 0, P->sync_secs, 1);
            double secs = secs_of(o.ns);
            double rate = (double)o.msgs / secs;
            char name[64];
            snprintf(name, sizeof name, "append_sync_%s_t%d", body_names[b], n);
            printf("%s: %lld msgs in %.2f s: %.0f msgs/s, %.2f MB/s, latency p50 %.3f ms p99 "
                   "%.3f ms%s\n",
                   name, (long long)o.msgs, secs, rate, mb(o.bytes) / secs, o.p50_ms, o.p99_ms,
                   store_max_phys(st) / P->seg != seg_before
                       ? " (crossed into a new segment: includes a segment switch)"
                       : "");
            if (o.syncs <= 0 || o.msgs <= 0) {
                printf("  group commit: batch n/a (no CommitLog fdatasync was counted); baseline "
                       "n/a\n");
                result(name, rate, "msgs/s", 0);
                detail(name, "p50_ms=%.3f p99_ms=%.3f", o.p50_ms, o.p99_ms);
                continue;
            }
            double batch = (double)o.msgs / (double)o.syncs;
            int64_t batch_bytes = (int64_t)(batch * (double)rec + 0.5);
            double busy = (double)o.sync_ns / (double)o.ns;
            printf("  group commit: %lld CommitLog fdatasync (%.0f/s, mean %.3f ms each, the "
                   "flusher is in fdatasync %.0f%% of the time), batch %.2f appends = %lld B\n",
                   (long long)o.syncs, (double)o.syncs / secs,
                   (double)o.sync_ns / (double)o.syncs / 1e6, 100 * busy, batch,
                   (long long)batch_bytes);
            quiesce(work_dir);
            struct sync_base base = raw_write_sync(pfd, P->prefill, batch_bytes, P->sync_secs);
            double base_rate = base.syncs_per_s * batch;
            printf("  baseline: write+fdatasync of %lld B: %.0f syncs/s, %.2f MB/s = %.0f "
                   "appends/s\n",
                   (long long)batch_bytes, base.syncs_per_s, base.mb_per_s, base_rate);
            result(name, rate, "msgs/s", base_rate);
            detail(name,
                   "p50_ms=%.3f p99_ms=%.3f batch=%.2f syncs_per_s=%.0f sync_busy=%.2f "
                   "raw_syncs_per_s=%.0f",
                   o.p50_ms, o.p99_ms, batch, (double)o.syncs / secs, busy, base.syncs_per_s);
            if (n == 64)
                target_ratio(rate, base_rate, TARGET_SYNC_RATIO,
                             "SYNC 64-thread msgs/s vs raw write+fdatasync appends/s");
        }
        store_close(st);
        remove_tree(root);
    }
    close(pfd);
    unlink(pre);
}

/* A killed broker: a child process appends @bytes of 1 KiB-body records with 2 threads
 * (ASYNC_FLUSH), waits until dispatch caught up (so every recovery below does the same work)
 * and the next segment is pre-allocated, and SIGKILLs itself.
 *
 * The store is first opened, given its queues and closed once, as a broker that ran before: a
 * store killed before its first periodic checkpoint (60 s) has an empty "queues" table and no
 * queues.bak, and reopening such a store crashed in fs_read_file() (a double free) when this
 * benchmark was written. */
static void build_crashed_log(const char *root, int64_t bytes)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive an interrupted benchmark */
        store_t *st = open_store(root, ASYNC_FLUSH, NULL);
        warm_up(st);
        store_close(st);
        st = open_store(root, ASYNC_FLUSH, NULL);
        int64_t rec = record_size(1024);
        struct outcome o = run_case(st, 1024, 2, (bytes / rec + 1) / 2 + 1, 0, 0);
        if (o.errors)
            _exit(2);
        if (store_wait_dispatched(st, 600000) != 0)
            _exit(3);
        wait_prealloc(st, root); /* a running broker nearly always has its next segment */
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        die("the crash child did not die by SIGKILL (status %#x)", status);
}

/* Turn the store into the state a crash leaves: the abort marker present, and no checkpoint,
 * so recovery scans the whole CommitLog. The store falls back to checkpoint.bak when the
 * checkpoint is missing, so that goes too. */
static void make_crash_state(const char *root)
{
    char path[FERRY_PATH_MAX];
    snprintf(path, sizeof path, "%s/checkpoint", root);
    unlink(path);
    snprintf(path, sizeof path, "%s/checkpoint.bak", root);
    unlink(path);
    snprintf(path, sizeof path, "%s/abort", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("create %s: %s", path, strerror(errno));
    write_all(fd, "0\n", 2, path);
    close(fd);
}

struct recovery {
    double mb_s, open_s;
    int64_t ms, end;
    int abnormal;
};

static struct recovery recover_once(const char *root)
{
    struct recovery r;
    int64_t open_ns;
    store_t *st = open_store(root, ASYNC_FLUSH, &open_ns);
    r.ms = store_recovery_ms(st, &r.abnormal);
    r.end = store_max_phys(st);
    r.open_s = secs_of(open_ns);
    r.mb_s = mb(r.end) / ((double)(r.ms > 0 ? r.ms : 1) / 1000.0);
    store_close(st); /* waits for the segment the allocation thread started meanwhile */
    return r;
}

static void print_recovery(const char *name, const char *cache, struct recovery r, double base)
{
    printf("%s: store_open recovery%s %lld ms for %.1f MB of CommitLog [0, %lld) scanned from 0: "
           "%.1f MB/s (store_open took %.3f s)\n",
           name, r.abnormal ? " (abnormal)" : " (NOT flagged abnormal)", (long long)r.ms, mb(r.end),
           (long long)r.end, r.mb_s, r.open_s);
    printf("  baseline: read() of the same CommitLog bytes in 1 MiB chunks (%s cache): %.1f "
           "MB/s\n",
           cache, base);
    result(name, r.mb_s, "MB/s", base);
    detail(name, "recovery_ms=%lld open_s=%.3f abnormal=%d", (long long)r.ms, r.open_s, r.abnormal);
    printf("  target (not asserted): recovery >= %.0f MB/s: %s\n", TARGET_RECOVERY_MB,
           r.mb_s >= TARGET_RECOVERY_MB ? "met" : "MISSED");
}

static void phase_recovery(const char *label, int64_t bytes)
{
    char root[FERRY_PATH_MAX];
    snprintf(root, sizeof root, "%s/recovery_%s", work_dir, label);
    printf("\n== Recovery of a %.2f GiB CommitLog (1 KiB bodies, %lld MiB segments)\n",
           (double)bytes / (double)GiB, (long long)(P->seg / MiB));
    printf("   crash: a child process appended and was SIGKILLed; before each timed open the "
           "checkpoint is removed and the abort marker is present, so recovery scans from "
           "offset 0, checks every record's CRCs and re-dispatches it (idempotently)\n");
    int64_t t0 = now_ns();
    build_crashed_log(root, bytes);
    printf("   (built in %.1f s)\n", secs_of(now_ns() - t0));
    /* Cold: nothing of the store in the page cache. Warm: right after, everything the cold
     * open touched (CommitLog, queues, index) is cached. The read() baselines come after both
     * so they do not change what the store finds in the cache. */
    struct recovery cold = {0}, warm;
    if (can_drop_caches) {
        make_crash_state(root);
        drop_caches();
        cold = recover_once(root);
    }
    make_crash_state(root); /* without root: cached since the crash child wrote it */
    warm = recover_once(root);
    char name[64];
    if (can_drop_caches) {
        drop_caches();
        double base = raw_read_log(root, cold.end, MiB);
        int64_t tail = P->seg - cold.end % P->seg;
        snprintf(name, sizeof name, "recovery_%s_cold", label);
        print_recovery(name, "cold", cold, base);
        printf("  (recovery also reads the %.1f MB of zeros after the end of the last segment, "
               "looking for its last non-zero byte; not counted as scanned)\n",
               mb(tail));
    } else {
        printf("NOTE: cold-cache recovery not measured: cannot write /proc/sys/vm/drop_caches "
               "(needs root)\n");
    }
    double base = raw_read_log(root, warm.end, MiB);
    snprintf(name, sizeof name, "recovery_%s_warm", label);
    print_recovery(name, "warm", warm, base);

    struct recovery clean = recover_once(root);
    printf("clean reopen (checkpoint present, no abort marker): recovery %lld ms%s, "
           "store_open %.3f s\n",
           (long long)clean.ms, clean.abnormal ? " (flagged abnormal!)" : "", clean.open_s);
    remove_tree(root);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <work dir>\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(work_dir, sizeof work_dir, "%s", argv[1]);
    int rc = fs_mkdirs(work_dir);
    if (rc)
        die("create %s: %s", work_dir, ferry_strerror(rc));
    struct statfs sfs;
    if (statfs(work_dir, &sfs) == 0 && ((unsigned long)sfs.f_type == 0x01021994UL /* tmpfs */ ||
                                        (unsigned long)sfs.f_type == 0x858458f6UL /* ramfs */))
        die("%s is on tmpfs/ramfs: the benchmark must run on a real disk", work_dir);
    for (size_t i = 0; i < sizeof body_buf; i++)
        body_buf[i] = (uint8_t)(i * 2654435761u >> 13);

    const char *quick = getenv("FERRY_BENCH_QUICK");
    const char *big = getenv("FERRY_BENCH_BIG");
    int64_t avail = free_bytes(work_dir);
    P = &prof_full;
    if (quick && *quick == '1') {
        P = &prof_quick;
    } else if (avail < disk_need(&prof_full)) {
        P = avail >= disk_need(&prof_small_disk) ? &prof_small_disk : &prof_quick;
        printf("NOTE: only %.1f GiB free, the full profile needs %.1f GiB: scaled down to the "
               "'%s' profile\n",
               (double)avail / (double)GiB, (double)disk_need(&prof_full) / (double)GiB, P->name);
    }
    if (avail < disk_need(P))
        die("only %.1f GiB free in %s, need %.1f GiB", (double)avail / (double)GiB, work_dir,
            (double)disk_need(P) / (double)GiB);
    struct profile custom = *P;
    const char *ss = getenv("FERRY_BENCH_SYNC_SECS");
    if (ss && atof(ss) > 0) {
        custom.sync_secs = atof(ss);
        P = &custom;
    }
    can_drop_caches = access("/proc/sys/vm/drop_caches", W_OK) == 0;

    printf("FerryMQ store benchmark: profile %s (segment %lld MiB, ASYNC %lld MiB/case, SYNC "
           "%.1f s/case, recovery %.2f GiB), work dir %s (%.1f GiB free), cold caches: %s\n",
           P->name, (long long)(P->seg / MiB), (long long)(P->async_bytes / MiB), P->sync_secs,
           (double)P->rec_bytes / (double)GiB, work_dir, (double)avail / (double)GiB,
           can_drop_caches ? "yes (drop_caches)" : "no (not root)");
    printf("index: maxHashSlotNum=%d maxIndexNum=%d; MB/s = 10^6 record bytes/s\n", P->hash_slots,
           P->index_num);

    only_phases = getenv("FERRY_BENCH_ONLY");
    if (phase_on("async"))
        phase_async();
    if (phase_on("sync"))
        phase_sync();
    if (phase_on("recovery"))
        phase_recovery(P->rec_label, P->rec_bytes);
    if (big && *big == '1') {
        avail = free_bytes(work_dir);
        if (P != &prof_quick && avail >= big_need(P))
            phase_recovery("10g", 10 * GiB);
        else
            printf("\nNOTE: FERRY_BENCH_BIG=1 but the 10 GiB recovery was skipped (%s)\n",
                   P == &prof_quick ? "quick profile"
                                    : "not enough free disk for it and its segments");
    }
    printf("\ndone\n");
    return 0;
}
