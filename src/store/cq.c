/* ConsumeQueue files (format in cq.h). One writer appends entries into mapped, fallocated
 * files and publishes the new count with a release store; readers copy entries under the
 * queue mutex, which also guards the file list against the service thread's flush/delete.
 * Failure modes: a file that cannot be created (disk full) makes cq_put fail so the
 * dispatcher retries later; damaged entries are cut by cq_recover and rebuilt by the caller. */
#include "store/cq.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "store/mfile.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cq {
    char topic[128];
    int32_t qid;
    char dir[FERRY_PATH_MAX];
    int64_t file_size;    /* bytes, a multiple of CQ_UNIT */
    int64_t per_file;     /* entries per file */
    pthread_mutex_t mu;   /* guards files/nfiles */
    struct mfile **files; /* ascending; files[i]->start = byte offset of its first entry */
    int nfiles, cap;
    atomic_int_least64_t min_index; /* first real entry */
    atomic_int_least64_t max_index; /* one past the last entry */
    int64_t last_phys_end;          /* @thread writer */
    int64_t flushed_index;          /* @locks mu */
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_name(const char *name, int64_t *out)
{
    if (strlen(name) != 20)
        return -1;
    for (int i = 0; i < 20; i++)
        if (name[i] < '0' || name[i] > '9')
            return -1;
    *out = strtoll(name, NULL, 10);
    return 0;
}

int cq_open(const char *root, const char *topic, int32_t qid, int64_t file_size, cq_t **out)
{
    cq_t *q = ferry_calloc(1, sizeof *q);
    snprintf(q->topic, sizeof q->topic, "%s", topic);
    q->qid = qid;
    snprintf(q->dir, sizeof q->dir, "%s/%s/%d", root, topic, qid);
    q->per_file = file_size / CQ_UNIT > 0 ? file_size / CQ_UNIT : 1;
    q->file_size = q->per_file * CQ_UNIT;
    pthread_mutex_init(&q->mu, NULL);
    q->last_phys_end = -1;

    DIR *d = opendir(q->dir);
    int rc = 0;
    if (d) {
        int64_t *starts = NULL;
        int n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int64_t start;
            if (strstr(e->d_name, ".tmp")) {
                char p[FERRY_PATH_MAX];
                snprintf(p, sizeof p, "%s/%s", q->dir, e->d_name);
                unlink(p);
                continue;
            }
            if (parse_name(e->d_name, &start) != 0)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                starts = ferry_realloc(starts, (size_t)cap * sizeof *starts);
            }
            starts[n++] = start;
        }
        closedir(d);
        if (n > 1)
            qsort(starts, (size_t)n, sizeof *starts, cmp_i64);
        for (int i = 0; i < n && rc == 0; i++) {
            char name[21], path[FERRY_PATH_MAX];
            mfile_name(starts[i], name);
            snprintf(path, sizeof path, "%s/%s", q->dir, name);
            struct mfile *mf;
            if (starts[i] % q->file_size != 0 ||
                (q->nfiles && starts[i] != q->files[q->nfiles - 1]->start + q->file_size)) {
                /* Out of line with its neighbours: entries from here on are rebuilt. */
                log_warn(LOG_STORE,
                         "%s: not contiguous with the queue; dropping it and later files", path);
                for (int j = i; j < n; j++) {
                    mfile_name(starts[j], name);
                    snprintf(path, sizeof path, "%s/%s", q->dir, name);
                    unlink(path);
                }
                break;
            }
            rc = mfile_open(path, starts[i], q->file_size, &mf);
            if (rc == FERRY_ECORRUPT) {
                log_warn(LOG_STORE, "%s: wrong size; dropping it and later files", path);
                for (int j = i; j < n; j++) {
                    mfile_name(starts[j], name);
                    snprintf(path, sizeof path, "%s/%s", q->dir, name);
                    unlink(path);
                }
                rc = 0;
                break;
            }
            if (rc == 0) {
                if (q->nfiles == q->cap) {
                    q->cap = q->cap ? q->cap * 2 : 8;
                    q->files = ferry_realloc(q->files, (size_t)q->cap * sizeof *q->files);
                }
                q->files[q->nfiles++] = mf;
            }
        }
        ferry_free(starts);
    }
    if (rc != 0) {
        cq_close(q);
        return rc;
    }
    int64_t first = q->nfiles ? q->files[0]->start / CQ_UNIT : 0;
    atomic_init(&q->min_index, first);
    atomic_init(&q->max_index, first);
    q->flushed_index = first;
    *out = q;
    return 0;
}

void cq_close(cq_t *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->nfiles; i++)
        mfile_unref(q->files[i]);
    ferry_free(q->files);
    pthread_mutex_destroy(&q->mu);
    ferry_free(q);
}

const char *cq_topic(const cq_t *q)
{
    return q->topic;
}

int32_t cq_qid(const cq_t *q)
{
    return q->qid;
}

int64_t cq_min_index(cq_t *q)
{
    return atomic_load_explicit(&q->min_index, memory_order_acquire);
}

int64_t cq_max_index(cq_t *q)
{
    return atomic_load_explicit(&q->max_index, memory_order_acquire);
}

int64_t cq_last_phys_end(cq_t *q)
{
    return q->last_phys_end;
}

/* The mapped bytes of entry @index, or NULL when no file holds it. @locks mu */
static uint8_t *entry_ptr(cq_t *q, int64_t index)
{
    if (q->nfiles == 0 || index < 0 || index > INT64_MAX / CQ_UNIT)
        return NULL;
    int64_t byte = index * CQ_UNIT;
    int64_t first = q->files[0]->start;
    if (byte < first)
        return NULL;
    int64_t i = (byte - first) / q->file_size;
    if (i >= q->nfiles)
        return NULL;
    struct mfile *mf = q->files[i];
    return mf->base + (byte - mf->start);
}

static void get_entry(const uint8_t *p, struct cq_entry *e)
{
    e->phys = (int64_t)be64_get(p);
    e->size = (int32_t)be32_get(p + 8);
    e->tags_code = (int64_t)be64_get(p + 12);
}

static int is_filler(const struct cq_entry *e)
{
    return e->phys == 0 && e->size == CQ_HOLE_SIZE && e->tags_code == 0;
}

/* Drop files from index @i on. @locks mu */
static void drop_files_from(cq_t *q, int i)
{
    while (q->nfiles > i)
        mfile_retire(q->files[--q->nfiles]);
}

/* Zero entries [from, file end) of the file holding @from, up to its last non-zero byte. */
static void zero_tail(cq_t *q, int64_t from)
{
    uint8_t *p = entry_ptr(q, from);
    if (!p)
        return;
    int64_t byte = from * CQ_UNIT;
    int64_t i = (byte - q->files[0]->start) / q->file_size;
    struct mfile *mf = q->files[i];
    uint8_t *end = mf->base + mf->size;
    while (end > p && end[-1] == 0)
        end--;
    if (end > p)
        memset(p, 0, (size_t)(end - p));
}

int64_t cq_recover(cq_t *q, int64_t cl_end, int32_t max_size)
{
    pthread_mutex_lock(&q->mu);
    int64_t min = q->nfiles ? q->files[0]->start / CQ_UNIT : 0;
    int64_t limit = q->nfiles ? (q->files[q->nfiles - 1]->start + q->file_size) / CQ_UNIT : 0;
    int64_t idx = min, first_real = -1, prev_end = -1;
    while (idx < limit) {
        struct cq_entry e;
        get_entry(entry_ptr(q, idx), &e);
        if (is_filler(&e) && first_real < 0) {
            idx++;
            continue;
        }
        if (first_real >= 0 && cq_entry_is_hole(&e) && e.tags_code == 0 && e.phys >= prev_end &&
            e.phys <= cl_end) {
            prev_end = e.phys;
            idx++;
            continue;
        }
        if (e.size <= 0 || e.size > max_size || e.phys < 0 || e.phys + e.size > cl_end ||
            e.phys < prev_end)
            break;
        if (first_real < 0)
            first_real = idx;
        prev_end = e.phys + e.size;
        idx++;
    }
    /* Count what lies beyond the cut, then zero it and drop later files. */
    int64_t dropped = 0;
    for (int64_t j = idx; j < limit; j++) {
        const uint8_t *p = entry_ptr(q, j);
        static const uint8_t zero[CQ_UNIT];
        if (memcmp(p, zero, CQ_UNIT) != 0)
            dropped++;
    }
    if (idx < limit) {
        zero_tail(q, idx);
        int64_t keep = (idx * CQ_UNIT - q->files[0]->start) / q->file_size + 1;
        if (idx * CQ_UNIT == q->files[0]->start + (keep - 1) * q->file_size && idx > min)
            keep--; /* the cut is exactly at a file start: that file holds nothing */
        drop_files_from(q, (int)keep);
    }
    if (first_real < 0)
        first_real = idx;
    atomic_store(&q->min_index, first_real);
    atomic_store(&q->max_index, idx);
    q->last_phys_end = prev_end;
    q->flushed_index = idx;
    pthread_mutex_unlock(&q->mu);
    if (dropped)
        log_warn(LOG_STORE,
                 "consumequeue %s/%d: cut at entry %" PRId64 ", %" PRId64
                 " invalid entries dropped",
                 q->topic, q->qid, idx, dropped);
    return dropped;
}

static int ensure_file(cq_t *q, int64_t index)
{
    int64_t byte = index * CQ_UNIT;
    int64_t start = byte - byte % q->file_size;
    pthread_mutex_lock(&q->mu); /* the service thread may be dropping old files */
    int have = q->nfiles && start < q->files[q->nfiles - 1]->start + q->file_size;
    pthread_mutex_unlock(&q->mu);
    if (have)
        return 0;
    int rc = fs_mkdirs(q->dir);
    if (rc)
        return rc;
    struct mfile *mf;
    rc = mfile_create(q->dir, start, q->file_size, MFILE_FALLOCATE, &mf);
    if (rc)
        return rc;
    pthread_mutex_lock(&q->mu);
    if (q->nfiles == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        q->files = ferry_realloc(q->files, (size_t)q->cap * sizeof *q->files);
    }
    q->files[q->nfiles++] = mf;
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void put_entry(uint8_t *p, int64_t phys, int32_t size, int64_t tags)
{
    be64_put(p, (uint64_t)phys);
    be32_put(p + 8, (uint32_t)size);
    be64_put(p + 12, (uint64_t)tags);
}

int cq_put(cq_t *q, int64_t index, int64_t phys, int32_t size, int64_t tags_code)
{
    int64_t max = cq_max_index(q);
    int rc;
    if (index < max) {
        struct cq_entry e;
        if (cq_read(q, index, 1, &e) != 1)
            return FERRY_ECORRUPT;
        return (e.phys == phys && e.size == size && e.tags_code == tags_code) ? 0 : FERRY_ECORRUPT;
    }
    if (index > max) {
        if (max != cq_min_index(q) || q->last_phys_end >= 0)
            return FERRY_EINVAL; /* a gap in a queue that already has entries */
        /* An empty queue starting late: its first file begins with fillers. Files it had
         * hold nothing, so they go and the new file is placed where @index lives. */
        pthread_mutex_lock(&q->mu);
        drop_files_from(q, 0);
        pthread_mutex_unlock(&q->mu);
        if ((rc = ensure_file(q, index)) != 0)
            return rc;
        pthread_mutex_lock(&q->mu);
        int64_t first = q->files[0]->start / CQ_UNIT;
        for (int64_t j = first; j < index; j++)
            put_entry(entry_ptr(q, j), 0, CQ_HOLE_SIZE, 0);
        q->flushed_index = first;
        pthread_mutex_unlock(&q->mu);
        atomic_store_explicit(&q->min_index, index, memory_order_release);
    }
    if ((rc = ensure_file(q, index)) != 0)
        return rc;
    pthread_mutex_lock(&q->mu);
    put_entry(entry_ptr(q, index), phys, size, tags_code);
    pthread_mutex_unlock(&q->mu);
    q->last_phys_end = phys + size;
    atomic_store_explicit(&q->max_index, index + 1, memory_order_release);
    return 0;
}

int cq_put_holes(cq_t *q, int64_t index, int64_t phys)
{
    int64_t max = cq_max_index(q);
    if (index <= max)
        return 0;
    if (max == cq_min_index(q) || phys < q->last_phys_end)
        return FERRY_EINVAL;
    for (int64_t j = max; j < index; j++) {
        int rc = ensure_file(q, j);
        if (rc)
            return rc;
        pthread_mutex_lock(&q->mu);
        put_entry(entry_ptr(q, j), phys, CQ_HOLE_SIZE, 0);
        pthread_mutex_unlock(&q->mu);
        atomic_store_explicit(&q->max_index, j + 1, memory_order_release);
    }
    q->last_phys_end = phys;
    return 0;
}

int cq_read(cq_t *q, int64_t index, int n, struct cq_entry *out)
{
    int64_t max = cq_max_index(q);
    int got = 0;
    pthread_mutex_lock(&q->mu);
    while (got < n && index + got < max) {
        const uint8_t *p = entry_ptr(q, index + got);
        if (!p)
            break;
        get_entry(p, &out[got]);
        got++;
    }
    pthread_mutex_unlock(&q->mu);
    return got;
}

int cq_truncate(cq_t *q, int64_t index)
{
    pthread_mutex_lock(&q->mu);
    int64_t max = cq_max_index(q), min = cq_min_index(q);
    if (index >= max) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    if (index < min)
        index = min;
    zero_tail(q, index);
    int64_t first = q->nfiles ? q->files[0]->start : 0;
    int keep = (int)((index * CQ_UNIT - first) / q->file_size) + 1;
    if (index * CQ_UNIT == first + (keep - 1) * q->file_size && keep > 1)
        keep--;
    drop_files_from(q, keep);
    atomic_store_explicit(&q->max_index, index, memory_order_release);
    if (q->flushed_index > index)
        q->flushed_index = index;
    q->last_phys_end = -1;
    if (index > min) {
        struct cq_entry e;
        get_entry(entry_ptr(q, index - 1), &e);
        q->last_phys_end = cq_entry_end(&e);
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int64_t cq_index_of_phys(cq_t *q, int64_t phys)
{
    int64_t lo = cq_min_index(q), hi = cq_max_index(q);
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        struct cq_entry e;
        if (cq_read(q, mid, 1, &e) != 1)
            break;
        if (e.phys < phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int cq_flush(cq_t *q, int64_t least_entries)
{
    int64_t max = cq_max_index(q);
    pthread_mutex_lock(&q->mu);
    int64_t from = q->flushed_index;
    if (max <= from || (least_entries > 0 && max - from < least_entries) || q->nfiles == 0) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    /* Reference the files to sync so the lock is not held across fdatasync. */
    struct mfile *todo[8];
    int n = 0;
    int64_t first = q->files[0]->start;
    int64_t i0 = (from * CQ_UNIT - first) / q->file_size;
    if (i0 < 0)
        i0 = 0;
    for (int64_t i = i0; i < q->nfiles && n < 8; i++) {
        if (q->files[i]->start >= max * CQ_UNIT)
            break;
        mfile_ref(q->files[i]);
        todo[n++] = q->files[i];
    }
    pthread_mutex_unlock(&q->mu);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = mfile_sync(todo[i]);
        mfile_unref(todo[i]);
    }
    if (rc == 0) {
        pthread_mutex_lock(&q->mu);
        int64_t done = n == 8 ? (todo[7]->start + q->file_size) / CQ_UNIT : max;
        if (done > max)
            done = max;
        if (done > q->flushed_index)
            q->flushed_index = done;
        pthread_mutex_unlock(&q->mu);
    }
    return rc;
}

int cq_delete_below(cq_t *q, int64_t min_phys)
{
    int deleted = 0;
    pthread_mutex_lock(&q->mu);
    while (q->nfiles > 1) {
        struct mfile *mf = q->files[0];
        /* The file's last entry decides: all entries point below min_phys. */
        struct cq_entry e;
        get_entry(mf->base + mf->size - CQ_UNIT, &e);
        if (e.size <= 0 || is_filler(&e) || cq_entry_end(&e) > min_phys)
            break;
        memmove(q->files, q->files + 1, (size_t)(q->nfiles - 1) * sizeof *q->files);
        q->nfiles--;
        mfile_retire(mf);
        deleted++;
    }
    /* Raise the min to the first entry still pointing at live data. */
    int64_t min = cq_min_index(q), max = cq_max_index(q);
    if (q->nfiles && min * CQ_UNIT < q->files[0]->start)
        min = q->files[0]->start / CQ_UNIT;
    while (min < max) {
        struct cq_entry e;
        const uint8_t *p = entry_ptr(q, min);
        if (!p)
            break;
        get_entry(p, &e);
        if (!is_filler(&e) && e.phys >= min_phys)
            break;
        min++;
    }
    atomic_store_explicit(&q->min_index, min, memory_order_release);
    pthread_mutex_unlock(&q->mu);
    return deleted;
}
