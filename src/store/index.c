/* IndexFile service: owns <store>/index/, the list of mapped index files in it (oldest first) and
 * the bytes inside them. Format and thread contract are in index.h.
 *
 * Happy path: index_put() hashes topic#key, writes a 20-byte entry at indexCount of the newest
 * file, points the bucket's slot at it and updates the header; when the file is full a new one is
 * created (name = local time yyyyMMddHHmmssSSS, made as <name>.tmp, allocated, header written,
 * synced, renamed, directory synced, then mapped). index_query() walks the files newest to
 * oldest and follows each bucket chain. index_flush() fdatasyncs files written since their last
 * flush, without holding the lock across the syscall.
 *
 * Failure modes: creating a file can fail (-ENOSPC, -EIO, ...): index_put() returns it and the
 * caller decides. At open, a file with the wrong size or an inconsistent header is logged and
 * deleted, and *.tmp leftovers of an interrupted creation are deleted. File bytes are untrusted:
 * every slot and entry number is bounds-checked, a chain ends at a prev that does not point to an
 * older entry, and garbage can only give wrong offsets (callers compare the real key anyway).
 *
 * Locking: @mu protects the file list and every write into a mapping. The writer thread (put,
 * truncate, delete) is the only one that changes either, so it reads them without the lock;
 * other threads (query, flush, end_phys) read under @mu. Files are refcounted so that a query or
 * a flush can use a file while the writer deletes it: the name is unlinked at once, the mapping
 * goes with the last reference. */
#include "store/index.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "store/msg.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HDR_SIZE   40
#define SLOT_SIZE  4
#define ENTRY_SIZE 20
#define NAME_LEN   17 /* yyyyMMddHHmmssSSS */
#define MAX_QUERY  64 /* RocketMQ's maxMsgsNumBatch */
#define KEY_STACK  512

/* Header field offsets. */
enum {
    H_BEGIN_TS = 0,
    H_END_TS = 8,
    H_BEGIN_PHYS = 16,
    H_END_PHYS = 24,
    H_SLOTS_USED = 32,
    H_COUNT = 36,
};

/* Entry field offsets. */
enum { E_HASH = 0, E_PHYS = 4, E_TDIFF = 12, E_PREV = 16 };

struct ixfile {
    char name[NAME_LEN + 1];
    int fd;
    uint8_t *base;
    size_t size;
    atomic_int refs;  /* the list holds one; query and flush take their own */
    atomic_int dirty; /* written since the last flush */
};

struct index_svc {
    char dir[FERRY_PATH_MAX];
    int32_t slots;
    int32_t max_entries;
    int64_t file_size;
    pthread_mutex_t mu;
    struct ixfile **files; /* oldest first. @locks mu to change; @thread writer reads freely */
    int nfiles;
    int cap;
};

/* ---- bytes in a mapping ---- */

static int64_t hdr64(const struct ixfile *f, size_t off)
{
    return (int64_t)be64_get(f->base + off);
}

static int32_t hdr32(const struct ixfile *f, size_t off)
{
    return (int32_t)be32_get(f->base + off);
}

static uint8_t *slot_at(const index_svc_t *ix, const struct ixfile *f, int32_t hash)
{
    uint32_t bucket = (uint32_t)hash % (uint32_t)ix->slots;
    return f->base + HDR_SIZE + (size_t)bucket * SLOT_SIZE;
}

/* Caller checked 0 <= @n < max_entries. */
static uint8_t *entry_at(const index_svc_t *ix, const struct ixfile *f, int32_t n)
{
    return f->base + HDR_SIZE + (size_t)ix->slots * SLOT_SIZE + (size_t)n * ENTRY_SIZE;
}

/* Seconds from @begin to @ts, clamped to [0, INT32_MAX]; 0 while the file has no begin. */
static int32_t time_diff(int64_t begin, int64_t ts)
{
    if (begin <= 0 || ts <= begin)
        return 0;
    uint64_t d = ((uint64_t)ts - (uint64_t)begin) / 1000;
    return d > INT32_MAX ? INT32_MAX : (int32_t)d;
}

/* The store time of an entry; 0 if garbage makes it overflow. */
static int entry_time(int64_t begin, int32_t diff, int64_t *t)
{
    int64_t ms;
    if (__builtin_mul_overflow((int64_t)diff, (int64_t)1000, &ms) ||
        __builtin_add_overflow(begin, ms, t))
        return 0;
    return 1;
}

/* abs(Java hashCode(topic + "#" + key)), 0 when abs overflows. */
static int32_t key_hash(const char *topic, const char *key, size_t key_len)
{
    char stack[KEY_STACK];
    size_t tlen = strlen(topic), len = tlen + 1 + key_len;
    char *buf = len <= sizeof stack ? stack : ferry_malloc(len);

    memcpy(buf, topic, tlen);
    buf[tlen] = '#';
    if (key_len)
        memcpy(buf + tlen + 1, key, key_len);
    int32_t h = java_string_hash(buf, len);
    if (buf != stack)
        ferry_free(buf);
    if (h == INT32_MIN)
        return 0;
    return h < 0 ? -h : h;
}

/* ---- file lifetime ---- */

static void file_path(const index_svc_t *ix, const char *name, const char *suffix, char *out)
{
    /* index_open() checked that dir + "/" + name + ".tmp" fits. */
    int n = snprintf(out, FERRY_PATH_MAX, "%s/%s%s", ix->dir, name, suffix);
    FERRY_ASSERT(n > 0 && n < FERRY_PATH_MAX);
}

static int file_map(int fd, const char *name, size_t size, struct ixfile **out)
{
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    struct ixfile *f = ferry_calloc(1, sizeof *f);
    memcpy(f->name, name, NAME_LEN + 1);
    f->fd = fd;
    f->base = base;
    f->size = size;
    atomic_init(&f->refs, 1);
    atomic_init(&f->dirty, 0);
    *out = f;
    return 0;
}

static void file_ref(struct ixfile *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

static void file_unref(struct ixfile *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    munmap(f->base, f->size);
    close(f->fd);
    ferry_free(f);
}

/* @locks mu */
static void list_push(index_svc_t *ix, struct ixfile *f)
{
    if (ix->nfiles == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 8;
        ix->files = ferry_realloc(ix->files, (size_t)ix->cap * sizeof *ix->files);
    }
    ix->files[ix->nfiles++] = f;
}

/* Unlink file @i and drop the list's reference; readers keep their mapping. The caller syncs
 * the directory. @thread writer */
static int file_delete(index_svc_t *ix, int i)
{
    char path[FERRY_PATH_MAX];
    struct ixfile *f = ix->files[i];
    int rc = 0;

    pthread_mutex_lock(&ix->mu);
    memmove(ix->files + i, ix->files + i + 1, (size_t)(ix->nfiles - i - 1) * sizeof *ix->files);
    ix->nfiles--;
    pthread_mutex_unlock(&ix->mu);

    file_path(ix, f->name, "", path);
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = -errno;
        log_warn(LOG_STORE, "unlink %s: %s", path, ferry_strerror(rc));
    }
    file_unref(f);
    return rc;
}

/* Format @ms as local yyyyMMddHHmmssSSS. -1 if it does not give 17 digits. */
static int time_name(int64_t ms, char out[NAME_LEN + 1])
{
    char buf[64];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || !localtime_r(&s, &tm))
        return -1;
    int n = snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d%03d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    if (n != NAME_LEN)
        return -1;
    memcpy(out, buf, NAME_LEN + 1);
    return 0;
}

/* Add one to a 17-digit name, i.e. one millisecond. -1 on overflow. */
static int name_incr(char name[NAME_LEN + 1])
{
    for (int i = NAME_LEN - 1; i >= 0; i--) {
        if (name[i] != '9') {
            name[i]++;
            return 0;
        }
        name[i] = '0';
    }
    return -1;
}

/* A free name for a new file that sorts after the newest one: the current local time, bumped
 * by a millisecond while taken (two files in one ms) or not newer (the clock went back). */
static int pick_name(const index_svc_t *ix, char name[NAME_LEN + 1])
{
    const char *newest = ix->nfiles ? ix->files[ix->nfiles - 1]->name : NULL;
    char path[FERRY_PATH_MAX];

    if (time_name(clock_wall_ms(), name) != 0) {
        memset(name, '0', NAME_LEN);
        name[NAME_LEN] = '\0';
    }
    if (newest && strcmp(name, newest) <= 0) {
        memcpy(name, newest, NAME_LEN + 1);
        if (name_incr(name) != 0)
            return -EEXIST;
    }
    for (int tries = 0; tries < 100000; tries++) {
        file_path(ix, name, "", path);
        if (access(path, F_OK) != 0)
            return errno == ENOENT ? 0 : -errno;
        if (name_incr(name) != 0)
            break;
    }
    return -EEXIST;
}

/* Create a new file whose header continues from @prev (NULL: all zero) and map it. The named
 * file always has its full size and a valid header. @thread writer */
static int file_create(index_svc_t *ix, const struct ixfile *prev, struct ixfile **out)
{
    char name[NAME_LEN + 1], path[FERRY_PATH_MAX], tmp[FERRY_PATH_MAX];
    uint8_t hdr[HDR_SIZE] = {0};
    int fd = -1, renamed = 0;
    int rc;

    if ((rc = pick_name(ix, name)) != 0) {
        log_warn(LOG_STORE, "index: no free file name in %s: %s", ix->dir, ferry_strerror(rc));
        return rc;
    }
    file_path(ix, name, "", path);
    file_path(ix, name, ".tmp", tmp);
    if (prev) {
        be64_put(hdr + H_BEGIN_TS, (uint64_t)hdr64(prev, H_END_TS));
        be64_put(hdr + H_END_TS, (uint64_t)hdr64(prev, H_END_TS));
        be64_put(hdr + H_BEGIN_PHYS, (uint64_t)hdr64(prev, H_END_PHYS));
        be64_put(hdr + H_END_PHYS, (uint64_t)hdr64(prev, H_END_PHYS));
    }
    be32_put(hdr + H_COUNT, 1);

    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = -posix_fallocate(fd, 0, (off_t)ix->file_size)) != 0 ||
        (rc = fs_pwrite_all(fd, hdr, sizeof hdr, 0)) != 0)
        goto out;
    if (fdatasync(fd) != 0 || rename(tmp, path) != 0) {
        rc = -errno;
        goto out;
    }
    renamed = 1;
    if ((rc = fs_fsync_dir(ix->dir)) != 0)
        goto out;
    rc = file_map(fd, name, (size_t)ix->file_size, out);
out:
    if (rc != 0) {
        log_warn(LOG_STORE, "index: create %s: %s", path, ferry_strerror(rc));
        if (fd >= 0)
            close(fd);
        unlink(renamed ? path : tmp); /* best effort */
    }
    return rc;
}

/* Map one existing file, or log and delete it when its size or header is wrong. */
static int file_load(index_svc_t *ix, const char *name, int *removed)
{
    char path[FERRY_PATH_MAX], why[128];
    uint8_t hdr[HDR_SIZE];
    struct stat st;
    struct ixfile *f;
    int rc;

    file_path(ix, name, "", path);
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rc = -errno;
        if (rc == -EISDIR || rc == -ELOOP) {
            log_warn(LOG_STORE, "index: %s is not a regular file; ignoring it", path);
            return 0;
        }
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    why[0] = '\0';
    if (!S_ISREG(st.st_mode)) {
        log_warn(LOG_STORE, "index: %s is not a regular file; ignoring it", path);
        close(fd);
        return 0;
    }
    if (st.st_size != ix->file_size) {
        snprintf(why, sizeof why, "size %lld, expected %lld", (long long)st.st_size,
                 (long long)ix->file_size);
    } else {
        if ((rc = fs_pread_all(fd, hdr, sizeof hdr, 0)) != 0)
            goto fail;
        int32_t count = (int32_t)be32_get(hdr + H_COUNT);
        int32_t used = (int32_t)be32_get(hdr + H_SLOTS_USED);
        if (count < 1 || count > ix->max_entries || used < 0 || used > ix->slots)
            snprintf(why, sizeof why, "indexCount %d, hashSlotCount %d (slots %d, max %d)", count,
                     used, ix->slots, ix->max_entries);
    }
    if (why[0]) {
        log_warn(LOG_STORE, "index: %s: %s; deleting it", path, why);
        close(fd);
        if (unlink(path) != 0 && errno != ENOENT)
            return -errno;
        *removed = 1;
        return 0;
    }
    if ((rc = file_map(fd, name, (size_t)ix->file_size, &f)) != 0)
        goto fail;
    pthread_mutex_lock(&ix->mu);
    list_push(ix, f);
    pthread_mutex_unlock(&ix->mu);
    return 0;
fail:
    log_warn(LOG_STORE, "index: open %s: %s", path, ferry_strerror(rc));
    close(fd);
    return rc;
}

static int is_index_name(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (i >= NAME_LEN || s[i] < '0' || s[i] > '9')
            return 0;
    return i == NAME_LEN;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* List the directory, drop *.tmp leftovers and map the files in name (= creation) order. */
static int load_dir(index_svc_t *ix)
{
    char(*names)[NAME_LEN + 1] = NULL;
    char path[FERRY_PATH_MAX];
    size_t n = 0, cap = 0;
    int removed = 0, rc = 0;
    struct dirent *de;

    DIR *d = opendir(ix->dir);
    if (!d)
        return -errno;
    while ((errno = 0, de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
            if (snprintf(path, sizeof path, "%s/%s", ix->dir, de->d_name) < (int)sizeof path &&
                unlink(path) == 0) {
                log_info(LOG_STORE, "index: removed leftover %s", path);
                removed = 1;
            }
            continue;
        }
        if (!is_index_name(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = ferry_realloc(names, cap * sizeof *names);
        }
        memcpy(names[n++], de->d_name, NAME_LEN + 1);
    }
    if (errno != 0)
        rc = -errno;
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = file_load(ix, names[i], &removed);
    ferry_free(names);
    if (rc == 0 && removed)
        rc = fs_fsync_dir(ix->dir);
    return rc;
}

/* ---- API ---- */

int index_open(const char *dir, int32_t slots, int32_t max_entries, index_svc_t **out)
{
    int rc;

    if (slots < 1 || max_entries < 2 || strlen(dir) + 1 + NAME_LEN + 4 >= FERRY_PATH_MAX)
        return FERRY_EINVAL;
    int64_t size = HDR_SIZE + (int64_t)slots * SLOT_SIZE + (int64_t)max_entries * ENTRY_SIZE;
    if ((uint64_t)size != (size_t)size)
        return FERRY_EINVAL;
    if ((rc = fs_mkdirs(dir)) != 0)
        return rc;

    index_svc_t *ix = ferry_calloc(1, sizeof *ix);
    snprintf(ix->dir, sizeof ix->dir, "%s", dir);
    ix->slots = slots;
    ix->max_entries = max_entries;
    ix->file_size = size;
    pthread_mutex_init(&ix->mu, NULL);
    if ((rc = load_dir(ix)) != 0) {
        log_warn(LOG_STORE, "index: open %s: %s", dir, ferry_strerror(rc));
        index_close(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

void index_close(index_svc_t *ix)
{
    if (!ix)
        return;
    for (int i = 0; i < ix->nfiles; i++)
        file_unref(ix->files[i]);
    ferry_free(ix->files);
    pthread_mutex_destroy(&ix->mu);
    ferry_free(ix);
}

/* @thread writer */
int index_put(index_svc_t *ix, const char *topic, const char *key, size_t key_len, int64_t phys,
              int64_t store_ts)
{
    int32_t count = 0;
    int rc;

    pthread_mutex_lock(&ix->mu); /* expiry may be editing the list */
    struct ixfile *f = ix->nfiles ? ix->files[ix->nfiles - 1] : NULL;
    pthread_mutex_unlock(&ix->mu);

    if (f && phys < hdr64(f, H_END_PHYS))
        return 0;
    if (f)
        count = hdr32(f, H_COUNT);
    if (!f || count < 1 || count >= ix->max_entries) {
        if ((rc = file_create(ix, f, &f)) != 0)
            return rc;
        pthread_mutex_lock(&ix->mu);
        list_push(ix, f);
        pthread_mutex_unlock(&ix->mu);
        count = 1;
    }

    int32_t hash = key_hash(topic, key, key_len);
    uint8_t *slot = slot_at(ix, f, hash);
    uint8_t *e = entry_at(ix, f, count);

    pthread_mutex_lock(&ix->mu);
    int32_t prev = (int32_t)be32_get(slot);
    if (prev < 1 || prev >= count)
        prev = 0;
    int64_t begin = hdr64(f, H_BEGIN_TS);
    be32_put(e + E_HASH, (uint32_t)hash);
    be64_put(e + E_PHYS, (uint64_t)phys);
    be32_put(e + E_TDIFF, (uint32_t)time_diff(begin, store_ts));
    be32_put(e + E_PREV, (uint32_t)prev);
    be32_put(slot, (uint32_t)count);
    if (begin <= 0) {
        be64_put(f->base + H_BEGIN_TS, (uint64_t)store_ts);
        be64_put(f->base + H_BEGIN_PHYS, (uint64_t)phys);
    }
    be64_put(f->base + H_END_PHYS, (uint64_t)phys);
    be64_put(f->base + H_END_TS, (uint64_t)store_ts);
    int32_t used = hdr32(f, H_SLOTS_USED);
    if (prev == 0 && used >= 0 && used < ix->slots)
        be32_put(f->base + H_SLOTS_USED, (uint32_t)(used + 1));
    be32_put(f->base + H_COUNT, (uint32_t)(count + 1));
    atomic_store(&f->dirty, 1);
    pthread_mutex_unlock(&ix->mu);
    return 0;
}

/* Referenced copies of the file list (only the dirty ones, whose flag is cleared, when
 * @dirty_only). Returns the count; release with release_files(). */
static int snapshot(index_svc_t *ix, int dirty_only, struct ixfile ***out)
{
    struct ixfile **v = NULL;
    int n = 0;

    pthread_mutex_lock(&ix->mu);
    if (ix->nfiles)
        v = ferry_malloc((size_t)ix->nfiles * sizeof *v);
    for (int i = 0; i < ix->nfiles; i++) {
        struct ixfile *f = ix->files[i];
        if (dirty_only && !atomic_exchange(&f->dirty, 0))
            continue;
        file_ref(f);
        v[n++] = f;
    }
    pthread_mutex_unlock(&ix->mu);
    *out = v;
    return n;
}

static void release_files(struct ixfile **v, int n)
{
    for (int i = 0; i < n; i++)
        file_unref(v[i]);
    ferry_free(v);
}

static int has_offset(const int64_t *v, int n, int64_t phys)
{
    for (int i = 0; i < n; i++)
        if (v[i] == phys)
            return 1;
    return 0;
}

/* Follow @hash's bucket chain in @f, appending matches to @out[found..max). Every number read
 * from the file is checked; the chain only moves to strictly older entries, so it ends.
 * @locks mu */
static int scan_file(const index_svc_t *ix, const struct ixfile *f, int32_t hash, int64_t begin_ts,
                     int64_t end_ts, int max, int64_t *out, int found)
{
    int64_t fbegin = hdr64(f, H_BEGIN_TS);
    int32_t count = hdr32(f, H_COUNT);

    if (fbegin > end_ts || hdr64(f, H_END_TS) < begin_ts)
        return found;
    if (count > ix->max_entries)
        count = ix->max_entries;
    int32_t cur = (int32_t)be32_get(slot_at(ix, f, hash));
    while (cur >= 1 && cur < count && found < max) {
        const uint8_t *e = entry_at(ix, f, cur);
        int64_t phys = (int64_t)be64_get(e + E_PHYS), t;
        int32_t prev = (int32_t)be32_get(e + E_PREV);
        if ((int32_t)be32_get(e + E_HASH) == hash &&
            entry_time(fbegin, (int32_t)be32_get(e + E_TDIFF), &t) && t >= begin_ts &&
            t <= end_ts && !has_offset(out, found, phys))
            out[found++] = phys;
        if (prev >= cur)
            break;
        cur = prev;
    }
    return found;
}

int index_query(index_svc_t *ix, const char *topic, const char *key, size_t key_len,
                int64_t begin_ts, int64_t end_ts, int max, int64_t *phys_out)
{
    struct ixfile **v;
    int found = 0;

    if (max <= 0 || begin_ts > end_ts)
        return 0;
    if (max > MAX_QUERY)
        max = MAX_QUERY;
    int32_t hash = key_hash(topic, key, key_len);
    int n = snapshot(ix, 0, &v);
    for (int i = n - 1; i >= 0 && found < max; i--) {
        pthread_mutex_lock(&ix->mu);
        found = scan_file(ix, v[i], hash, begin_ts, end_ts, max, phys_out, found);
        pthread_mutex_unlock(&ix->mu);
    }
    release_files(v, n);
    return found;
}

int index_flush(index_svc_t *ix)
{
    struct ixfile **v;
    int rc = 0;
    int n = snapshot(ix, 1, &v);

    for (int i = 0; i < n; i++) {
        if (fdatasync(v[i]->fd) != 0) {
            if (rc == 0)
                rc = -errno;
            atomic_store(&v[i]->dirty, 1);
        }
    }
    release_files(v, n);
    return rc;
}

/* @thread writer */
static int entry_zero(const uint8_t *e)
{
    static const uint8_t zero[ENTRY_SIZE];
    return memcmp(e, zero, ENTRY_SIZE) == 0;
}

/* After a crash, the newest file may hold entries written after the durable point @cut, and its
 * slot table and header may be torn (slots are rewritten in place; the header page can be older
 * than a slot page), so a slot can point at an entry that is gone and cut its bucket's chain. The
 * entries below @cut were made durable by the checkpoint and are never written again, so they are
 * intact: keep exactly those (entries are appended in CommitLog order) and recompute every slot
 * from them. @locks mu */
static void rebuild_tail(index_svc_t *ix, struct ixfile *f, int64_t cut)
{
    int32_t limit = hdr32(f, H_COUNT);
    if (limit < 1 || limit > ix->max_entries)
        limit = ix->max_entries;
    int32_t n = 1, used = 0;
    int64_t last = -1;
    for (; n < limit; n++) {
        const uint8_t *e = entry_at(ix, f, n);
        int64_t phys = (int64_t)be64_get(e + E_PHYS);
        int32_t prev = (int32_t)be32_get(e + E_PREV);
        if (entry_zero(e) || phys < last || phys >= cut || prev < 0 || prev >= n)
            break;
        last = phys;
    }
    memset(f->base + HDR_SIZE, 0, (size_t)ix->slots * SLOT_SIZE);
    for (int32_t i = 1; i < n; i++) {
        uint8_t *slot = slot_at(ix, f, (int32_t)be32_get(entry_at(ix, f, i) + E_HASH));
        used += be32_get(slot) == 0;
        be32_put(slot, (uint32_t)i);
    }
    be32_put(f->base + H_SLOTS_USED, (uint32_t)used);
    be32_put(f->base + H_COUNT, (uint32_t)n);
    if (n == 1) { /* nothing durable: the first put sets the beginning again */
        be64_put(f->base + H_BEGIN_TS, 0);
        be64_put(f->base + H_BEGIN_PHYS, 0);
    }
    log_info(LOG_STORE, "index file %s: kept %d entries below CommitLog offset %" PRId64, f->name,
             n - 1, cut);
}

int index_truncate_after(index_svc_t *ix, int64_t cut, int torn)
{
    int rc = 0, removed = 0;

    for (int i = ix->nfiles - 1; i >= 0; i--) {
        if (hdr64(ix->files[i], H_BEGIN_PHYS) < cut)
            continue;
        int r = file_delete(ix, i);
        if (rc == 0)
            rc = r;
        removed = 1;
    }
    if (ix->nfiles) {
        struct ixfile *f = ix->files[ix->nfiles - 1];
        pthread_mutex_lock(&ix->mu);
        int past = hdr64(f, H_END_PHYS) >= cut;
        if (past || torn) {
            rebuild_tail(ix, f, cut);
            if (past)
                be64_put(f->base + H_END_PHYS, (uint64_t)cut);
            atomic_store(&f->dirty, 1);
        }
        pthread_mutex_unlock(&ix->mu);
    }
    if (removed) {
        int r = fs_fsync_dir(ix->dir);
        if (rc == 0)
            rc = r;
    }
    return rc;
}

/* Called by the store's service thread (expiry) while the dispatch thread may be in
 * index_put: the files to drop are taken out of the list under the lock, then unlinked. */
int index_delete_below(index_svc_t *ix, int64_t min_phys)
{
    struct ixfile *gone[64];
    int n = 0, rc = 0;

    pthread_mutex_lock(&ix->mu);
    for (int i = 0; i < ix->nfiles - 1 && n < 64;) {
        if (hdr64(ix->files[i], H_END_PHYS) >= min_phys) {
            i++;
            continue;
        }
        gone[n++] = ix->files[i];
        memmove(ix->files + i, ix->files + i + 1, (size_t)(ix->nfiles - i - 1) * sizeof *ix->files);
        ix->nfiles--;
    }
    pthread_mutex_unlock(&ix->mu);
    for (int i = 0; i < n; i++) {
        char path[FERRY_PATH_MAX];
        file_path(ix, gone[i]->name, "", path);
        if (unlink(path) != 0 && errno != ENOENT && rc == 0) {
            rc = -errno;
            log_warn(LOG_STORE, "unlink %s: %s", path, ferry_strerror(rc));
        }
        file_unref(gone[i]);
    }
    if (n) {
        int r = fs_fsync_dir(ix->dir);
        if (rc == 0)
            rc = r;
    }
    return rc;
}

int64_t index_end_phys(index_svc_t *ix)
{
    int64_t end = 0;

    pthread_mutex_lock(&ix->mu);
    if (ix->nfiles)
        end = hdr64(ix->files[ix->nfiles - 1], H_END_PHYS);
    pthread_mutex_unlock(&ix->mu);
    return end;
}
