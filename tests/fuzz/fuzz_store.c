/* libFuzzer entry point for store recovery on a damaged directory (src/store/recovery.c and
 * the open path of store.c, cq.c, index.c, checkpoint.c, mfile.c).
 *
 * Once per process a small store is built and closed cleanly in a temporary directory (under
 * /dev/shm when writable, so that fsync costs nothing): 72 KiB CommitLog segments (about the
 * smallest allowed with maxMessageSize 4096; the records span three), ConsumeQueue files of 8
 * entries, a tiny IndexFile; 2 topics x 2 queues, 128 deterministic records. Each input then
 * damages a fresh copy of it and the store is opened and every queue read:
 *
 *   byte 0      flags: bit 0 keep the clean shutdown (no abort file; else one is created, as
 *               after a crash), bit 1 SYNC_FLUSH (else ASYNC_FLUSH), bit 2 pwrite appends
 *   then ops    [sel 1][offset 3, big-endian][len 1][len bytes] ...  (at most 32)
 *               sel & 63 picks a file (modulo the sorted list of the store's files), sel >> 6:
 *               0, 1 write the bytes at offset (modulo size + 1, may extend the file),
 *               2 truncate the file to offset (modulo size + 1), 3 delete it (len bytes unused).
 *
 * Properties: store_open() succeeds or fails with a message; no crash, no sanitizer report;
 * every record store_get() serves parses, passes its CRCs (body and whole-record), is the
 * record of the queue and offset it was served for, and is byte for byte the record written
 * there (its body and keys follow from topic, queue and offset); store_read_at() of its
 * offset gives the same bytes. One execution takes a few milliseconds. */
#include "common/alloc.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "store/msg.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_SANITIZED 1
#endif
#endif
#ifdef FUZZ_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NTOPICS   2
#define NQUEUES   2
#define PER_QUEUE 32
#define SEG_SIZE  73728
#define MAX_FILES 256
#define MAX_OPS   32

static const char *const g_topics[NTOPICS] = {"FuzzTopicA", "FuzzTopicB"};

static char g_root[FERRY_PATH_MAX];  /* the process's temporary directory */
static char g_base[FERRY_PATH_MAX];  /* the pristine store */
static char g_files[MAX_FILES][256]; /* its files, relative, sorted */
static int g_nfiles;

static void cleanup(void);
static char g_ctx[160]; /* what is being checked, for the failure message */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_store: %s%s\n", what, g_ctx);
    if (getenv("FUZZ_STORE_KEEP"))
        fprintf(stderr, "fuzz_store: the damaged store is kept in %s/run\n", g_root);
    else
        cleanup(); /* abort() skips atexit */
    abort();
}

/* ---- deterministic records ------------------------------------------------------------ */

static size_t body_of(int t, int q, int64_t off, uint8_t *out, size_t cap)
{
    int n = snprintf((char *)out, cap, "t%d-q%d-o%" PRId64 "-", t, q, off);
    size_t len = 300 + (size_t)((off * 7919 + t * 131 + q * 17) % 2400);
    if (len > cap)
        len = cap;
    for (size_t i = (size_t)n; i < len; i++)
        out[i] = (uint8_t)('a' + (i * 31 + (size_t)off) % 26);
    return len;
}

static void fill_config(struct store_config *cfg, const char *dir, uint8_t flags)
{
    store_config_defaults(cfg);
    snprintf(cfg->storePathRootDir, sizeof cfg->storePathRootDir, "%s", dir);
    cfg->mappedFileSizeCommitLog = SEG_SIZE;
    cfg->mappedFileSizeConsumeQueue = 8 * 20;
    cfg->maxHashSlotNum = 16;
    cfg->maxIndexNum = 64;
    cfg->maxMessageSize = 4096; /* the smallest segment is maxMessageSize + 64 KiB + 8 */
    cfg->flushDiskType = (flags & 2) ? SYNC_FLUSH : ASYNC_FLUSH;
    cfg->writeWithoutMmap = (flags & 4) ? WRITE_PWRITE : WRITE_MMAP;
    cfg->diskMaxUsedSpaceRatio = 95;
    cfg->diskSpaceWarningLevelRatio = 99;
    cfg->fileReservedTime = 1 << 20; /* nothing expires during a run */
}

/* ---- files ---------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void list_files(const char *root, const char *rel)
{
    char path[FERRY_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    DIR *d = opendir(path);
    if (!d)
        die("opendir");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[256], full[FERRY_PATH_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            die("stat");
        if (S_ISDIR(st.st_mode))
            list_files(root, sub);
        else if (g_nfiles < MAX_FILES)
            snprintf(g_files[g_nfiles++], sizeof g_files[0], "%s", sub);
    }
    closedir(d);
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0)
        die("copy: open");
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            die("copy: write");
    if (n < 0)
        die("copy: read");
    close(in);
    close(out);
}

static void copy_tree(const char *from, const char *to)
{
    if (mkdir(to, 0755) != 0 && errno != EEXIST)
        die("mkdir");
    DIR *d = opendir(from);
    if (!d)
        die("opendir");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char a[FERRY_PATH_MAX], b[FERRY_PATH_MAX];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat st;
        if (stat(a, &st) != 0)
            die("stat");
        if (S_ISDIR(st.st_mode))
            copy_tree(a, b);
        else
            copy_file(a, b);
    }
    closedir(d);
}

static void cleanup(void)
{
    if (g_root[0])
        fs_remove_tree(g_root);
}

/* Remove what a crashed earlier run left behind (fuzz_store.<pid> of a process now gone):
 * a crash or a sanitizer report ends the process without atexit handlers. */
static void remove_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end;
        if (strncmp(e->d_name, "fuzz_store.", 11) != 0)
            continue;
        long pid = strtol(e->d_name + 11, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[FERRY_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        fs_remove_tree(path);
    }
    if (d)
        closedir(d);
}

static void build_base(void)
{
    const char *tmp = getenv("FUZZ_STORE_TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale(tmp);
    snprintf(g_root, sizeof g_root, "%s/fuzz_store.%ld", tmp, (long)getpid());
    fs_remove_tree(g_root);
    if (mkdir(g_root, 0700) != 0)
        die("mkdir");
    atexit(cleanup);
#ifdef FUZZ_SANITIZED
    if (!getenv("FUZZ_STORE_KEEP"))
        __sanitizer_set_death_callback(cleanup); /* a sanitizer report skips atexit too */
#endif
    snprintf(g_base, sizeof g_base, "%s/base", g_root);

    struct store_config cfg;
    fill_config(&cfg, g_base, 2);
    store_t *st;
    char err[256];
    if (store_open(&cfg, &st, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_store: %s\n", err);
        die("cannot create the base store");
    }
    static uint8_t body[4096];
    for (int64_t off = 0; off < PER_QUEUE; off++)
        for (int t = 0; t < NTOPICS; t++)
            for (int q = 0; q < NQUEUES; q++) {
                char props[128];
                int pl = snprintf(props, sizeof props, "KEYS%ck-%d-%d-%" PRId64 "%cTAGS%ctag%d",
                                  PROP_NAME_SEP, t, q, off, PROP_PAIR_SEP, PROP_NAME_SEP,
                                  (int)(off % 3));
                struct store_msg m = {
                    .topic = g_topics[t],
                    .queue_id = q,
                    .born_ts = 1700000000000 + off,
                    .born_host = {{127, 0, 0, 1}, 0, 40000},
                    .body = body,
                    .body_len = (uint32_t)body_of(t, q, off, body, sizeof body),
                    .props = props,
                    .props_len = (uint32_t)pl,
                };
                struct put_result res;
                if (store_put(st, &m, 1, &res) != 0 || res.queue_offset != off)
                    die("base store: append failed");
            }
    if (store_max_phys(st) <= 2 * SEG_SIZE)
        die("base store: expected records in three CommitLog segments");
    store_wait_dispatched(st, 10000);
    store_close(st);
    list_files(g_base, "");
    qsort(g_files, (size_t)g_nfiles, sizeof g_files[0], cmp_str);
    if (getenv("FUZZ_STORE_LIST"))
        for (int i = 0; i < g_nfiles; i++)
            fprintf(stderr, "fuzz_store: file %d: %s\n", i, g_files[i]);
}

/* ---- one execution -------------------------------------------------------------------- */

static void apply_ops(const char *dir, const uint8_t *p, size_t n)
{
    int ops = 0;
    while (n >= 5 && ops++ < MAX_OPS) {
        unsigned sel = p[0], kind = sel >> 6;
        uint32_t off = (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        size_t len = p[4];
        p += 5;
        n -= 5;
        if (len > n)
            len = n;
        char path[FERRY_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, g_files[(sel & 63) % (unsigned)g_nfiles]);
        struct stat st;
        if (stat(path, &st) != 0) {
            if (kind != 3) {
                p += len;
                n -= len;
            }
            continue; /* deleted by an earlier op */
        }
        off %= (uint32_t)st.st_size + 1;
        if (kind <= 1) {
            int fd = open(path, O_WRONLY);
            if (fd < 0 || fs_pwrite_all(fd, p, len, (off_t)off) != 0)
                die("write");
            close(fd);
            p += len;
            n -= len;
        } else if (kind == 2) {
            if (truncate(path, (off_t)off) != 0)
                die("truncate");
        } else {
            unlink(path);
        }
    }
}

static void check_record(store_t *st, const struct store_slice *s, int t, int q, int64_t off)
{
    snprintf(g_ctx, sizeof g_ctx, " (%s/%d offset %" PRId64 ", CommitLog offset %" PRId64 ")",
             g_topics[t], q, off, s->phys_offset);
    struct msg_view v;
    if (msg_parse(s->data, s->len, &v) != 0 || v.total_size != s->len)
        die("a served record does not parse");
    if (msg_verify(&v, 1) != 0)
        die("a served record fails its CRC");
    if (v.topic_len != strlen(g_topics[t]) || memcmp(v.topic, g_topics[t], v.topic_len) != 0 ||
        v.queue_id != q || v.queue_offset != off || s->queue_offset != off ||
        v.phys_offset != s->phys_offset)
        die("a served record belongs to another queue or offset");
    static uint8_t want[4096];
    size_t wl = body_of(t, q, off, want, sizeof want);
    if (v.body_len != wl || memcmp(v.body, want, wl) != 0)
        die("a served record is not the one written at its queue offset");
    char key[64];
    snprintf(key, sizeof key, "k-%d-%d-%" PRId64, t, q, off);
    size_t kl;
    const char *k = msg_prop_get(v.props, v.props_len, "KEYS", &kl);
    if (!k || kl != strlen(key) || memcmp(k, key, kl) != 0)
        die("a served record has other properties");
    struct store_slice again;
    if (store_read_at(st, s->phys_offset, &again) != 0)
        die("store_read_at refuses a record store_get served");
    if (again.len != s->len || memcmp(again.data, s->data, s->len) != 0)
        die("store_read_at gives other bytes");
    store_release(&again, 1);
    g_ctx[0] = 0;
}

static void read_queue(store_t *st, int t, int q)
{
    struct store_slice slices[16];
    int64_t off = store_min_offset(st, g_topics[t], q);
    for (int rounds = 0; rounds < 4 * PER_QUEUE; rounds++) {
        struct get_request req = {.topic = g_topics[t],
                                  .queue_id = q,
                                  .offset = off,
                                  .max_msgs = 16,
                                  .max_bytes = 1 << 20};
        struct get_result res = {.msgs = slices};
        int rc = store_get(st, &req, &res);
        if (rc != 0 && res.n == 0)
            return; /* a damaged queue entry: refused (and a rebuild scheduled) */
        for (int i = 0; i < res.n; i++)
            check_record(st, &slices[i], t, q, slices[i].queue_offset);
        store_release(slices, res.n);
        if (res.status != GET_FOUND && res.status != GET_OFFSET_TOO_SMALL &&
            res.status != GET_MESSAGE_WAS_REMOVING && res.status != GET_NO_MATCHED_MESSAGE)
            return;
        if (res.next_offset <= off)
            return;
        off = res.next_offset;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (!getenv("FUZZ_STORE_LOG"))
        log_min_level = LOG_LEVEL_ERROR + 1; /* recovery warns about every damage */
    if (!g_base[0])
        build_base();
    uint8_t flags = size ? data[0] : 0;

    char dir[FERRY_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/run", g_root);
    copy_tree(g_base, dir);
    char abort_path[FERRY_PATH_MAX];
    snprintf(abort_path, sizeof abort_path, "%s/abort", dir);
    if (!(flags & 1)) {
        int fd = open(abort_path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            die("abort file");
        close(fd);
    }
    if (size > 1)
        apply_ops(dir, data + 1, size - 1);

    struct store_config cfg;
    fill_config(&cfg, dir, flags);
    store_t *st = NULL;
    char err[512] = "";
    int rc = store_open(&cfg, &st, err, sizeof err);
    if (rc != 0) {
        if (!err[0])
            die("store_open failed without a message");
    } else {
        store_wait_dispatched(st, 2000);
        for (int t = 0; t < NTOPICS; t++)
            for (int q = 0; q < NQUEUES; q++)
                read_queue(st, t, q);
        store_close(st);
    }
    if (fs_remove_tree(dir) != 0)
        die("cannot remove the run directory");
    return 0;
}
