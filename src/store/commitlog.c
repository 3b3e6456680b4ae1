/* The CommitLog: append, segment pre-allocation and flush (group commit).
 *
 * Append: records are encoded and their CRC pieces computed outside the lock; under put_lock
 * we only assign queue offsets, the physical offset and the store time, seal the 24 patched
 * bytes and memcpy into the mapping. A record that does not fit ends the segment with the
 * 8-byte blank marker and goes to the next segment, which the allocation thread has already
 * created and zero-filled, so appends never wait for file creation (except when appends
 * outrun it, or the disk is full: then the append is refused and nothing is written).
 *
 * Flush: SYNC_FLUSH waiters join a FIFO; the flush thread syncs once for everything appended
 * so far and completes every waiter it covers (group commit). ASYNC_FLUSH syncs every
 * flushIntervalCommitLog when flushCommitLogLeastPages are dirty, or after
 * flushCommitLogThoroughInterval. A failed sync fences the store: no waiter is ever told its
 * data is durable after that, and every later append fails. */
#include "store/store_int.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

/* ---- encode buffer, one per thread --------------------------------------------------- */

struct encbuf {
    uint8_t *p;
    size_t cap;
};
static pthread_key_t enc_key;
static pthread_once_t enc_once = PTHREAD_ONCE_INIT;

static void encbuf_free(void *v)
{
    struct encbuf *b = v;
    ferry_free(b->p);
    ferry_free(b);
}

static void enc_key_init(void)
{
    pthread_key_create(&enc_key, encbuf_free);
}

static uint8_t *encbuf_get(size_t need)
{
    pthread_once(&enc_once, enc_key_init);
    struct encbuf *b = pthread_getspecific(enc_key);
    if (!b) {
        b = ferry_calloc(1, sizeof *b);
        pthread_setspecific(enc_key, b);
    }
    if (b->cap < need) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        b->p = ferry_realloc(b->p, cap);
        b->cap = cap;
    }
    return b->p;
}

/* ---- segments ------------------------------------------------------------------------- */

static int cmp_seg(const void *a, const void *b)
{
    int64_t x = (*(struct mfile *const *)a)->start, y = (*(struct mfile *const *)b)->start;
    return x < y ? -1 : x > y;
}

static void segs_push(store_t *st, struct mfile *mf)
{
    if (st->nsegs == st->segs_cap) {
        st->segs_cap = st->segs_cap ? st->segs_cap * 2 : 16;
        st->segs = ferry_realloc(st->segs, (size_t)st->segs_cap * sizeof *st->segs);
    }
    st->segs[st->nsegs++] = mf;
}

int commitlog_load(store_t *st, char *err, size_t errlen)
{
    int rc = fs_mkdirs(st->cl_dir);
    if (rc) {
        snprintf(err, errlen, "create %s: %s", st->cl_dir, ferry_strerror(rc));
        return rc;
    }
    DIR *d = opendir(st->cl_dir);
    if (!d) {
        rc = -errno;
        snprintf(err, errlen, "open %s: %s", st->cl_dir, ferry_strerror(rc));
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && rc == 0) {
        char path[FERRY_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", st->cl_dir, e->d_name);
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) {
            unlink(path); /* an allocation interrupted by a crash */
            continue;
        }
        if (e->d_name[0] == '.')
            continue;
        int digits = len == 20;
        for (size_t i = 0; digits && i < len; i++)
            digits = e->d_name[i] >= '0' && e->d_name[i] <= '9';
        if (!digits) {
            log_warn(LOG_STORE, "%s: not a CommitLog segment name; ignored", path);
            continue;
        }
        int64_t start = strtoll(e->d_name, NULL, 10);
        struct mfile *mf;
        rc = mfile_open(path, start, st->seg_size, &mf);
        if (rc) {
            snprintf(
                err, errlen,
                "CommitLog segment %s: %s (every segment must be mappedFileSizeCommitLog=%" PRId64
                " bytes)",
                path, ferry_strerror(rc), st->seg_size);
            break;
        }
        segs_push(st, mf);
    }
    closedir(d);
    if (rc)
        return rc;
    if (st->nsegs > 1)
        qsort(st->segs, (size_t)st->nsegs, sizeof *st->segs, cmp_seg);
    for (int i = 0; i < st->nsegs; i++) {
        if (st->segs[i]->start % st->seg_size != 0 ||
            (i > 0 && st->segs[i]->start != st->segs[i - 1]->start + st->seg_size)) {
            snprintf(err, errlen,
                     "CommitLog segment %s does not follow the previous one (segment size %" PRId64
                     "); refusing to start rather than guess",
                     st->segs[i]->path, st->seg_size);
            return FERRY_ECORRUPT;
        }
    }
    return 0;
}

void commitlog_unload(store_t *st)
{
    for (int i = 0; i < st->nsegs; i++)
        mfile_unref(st->segs[i]);
    ferry_free(st->segs);
    st->segs = NULL;
    st->nsegs = 0;
    if (st->next_seg) {
        mfile_unref(st->next_seg);
        st->next_seg = NULL;
    }
}

struct mfile *commitlog_seg_ref(store_t *st, int64_t phys)
{
    struct mfile *mf = NULL;
    pthread_rwlock_rdlock(&st->segs_lock);
    if (st->nsegs > 0 && phys >= st->segs[0]->start) {
        int64_t i = (phys - st->segs[0]->start) / st->seg_size;
        if (i < st->nsegs) {
            mf = st->segs[i];
            mfile_ref(mf);
        }
    }
    pthread_rwlock_unlock(&st->segs_lock);
    return mf;
}

/* ---- pre-allocation ------------------------------------------------------------------- */

static int appends_by_copy(const store_t *st)
{
    int mode = st->cfg.writeWithoutMmap;
    return mode == WRITE_MMAP || (mode == WRITE_AUTO && !st->sync);
}

/* How a new segment gets its blocks. Appends by pwrite(2) want zero-filled blocks: the
 * group-commit fdatasync then has no unwritten extents to convert. Appends by copy into the
 * mapping fault fresh pages in either way, so zero-filling would only add a copy of the whole
 * segment and its writeback (18% of the broker's CPU in the async 128 B bench): fallocated
 * blocks are prefaulted here instead (the kernel zeroes the pages, nothing is written back) and
 * converted from unwritten extents by the flush thread. */
static enum mfile_alloc seg_alloc(const store_t *st)
{
    return appends_by_copy(st) ? MFILE_FALLOCATE : MFILE_ZERO_FILL;
}

static void *alloc_main(void *arg)
{
    store_t *st = arg;
    pthread_mutex_lock(&st->alloc_mu);
    while (!atomic_load(&st->stopping)) {
        if (st->next_seg || st->alloc_start < 0) {
            pthread_cond_wait(&st->alloc_cv, &st->alloc_mu);
            continue;
        }
        int64_t start = st->alloc_start;
        pthread_mutex_unlock(&st->alloc_mu);
        struct mfile *mf = NULL;
        int64_t t0 = clock_mono_ms();
        /* Do not fill the disk to find out it is full: that would starve the queue, index
         * and checkpoint writes each time we retry. */
        uint64_t free_b = 0, total_b = 0;
        int rc = fs_space(st->cl_dir, &free_b, &total_b);
        if (rc == 0 && free_b < (uint64_t)st->seg_size + (uint64_t)st->seg_size / 8 + (4u << 20))
            rc = -ENOSPC;
        else
            rc = mfile_create(st->cl_dir, start, st->seg_size, seg_alloc(st), &mf);
        if (rc == 0 && appends_by_copy(st))
            mfile_prefault(mf);
        pthread_mutex_lock(&st->alloc_mu);
        if (rc == 0) {
            if (st->alloc_err)
                log_info(LOG_STORE, "CommitLog segment allocation works again");
            st->next_seg = mf;
            st->alloc_err = 0;
            log_debug(LOG_STORE, "pre-allocated segment %" PRId64 " in %" PRId64 " ms", start,
                      clock_mono_ms() - t0);
            pthread_cond_broadcast(&st->alloc_cv);
        } else {
            if (st->alloc_err != rc)
                log_error(LOG_STORE,
                          "cannot create CommitLog segment %" PRId64 ": %s; appends "
                          "that need it are refused until it can be created",
                          start, ferry_strerror(rc));
            st->alloc_err = rc;
            pthread_cond_broadcast(&st->alloc_cv);
            /* Retry after a second (space may come back); wake early on shutdown. */
            struct timespec ts = clock_deadline_ts(1000);
            pthread_cond_timedwait(&st->alloc_cv, &st->alloc_mu, &ts);
        }
    }
    pthread_mutex_unlock(&st->alloc_mu);
    return NULL;
}

/* Ask for the segment after the last one. @locks put_lock */
static void want_next_segment(store_t *st)
{
    int64_t next = st->nsegs ? st->segs[st->nsegs - 1]->start + st->seg_size : 0;
    pthread_mutex_lock(&st->alloc_mu);
    if (st->alloc_start != next && !st->next_seg) {
        st->alloc_start = next;
        pthread_cond_broadcast(&st->alloc_cv);
    }
    pthread_mutex_unlock(&st->alloc_mu);
}

/* Take the pre-allocated next segment into the list; waits while it is being created.
 * Returns 0, or the allocation error (nothing changed). @locks put_lock */
static int take_next_segment(store_t *st)
{
    int64_t next = st->nsegs ? st->segs[st->nsegs - 1]->start + st->seg_size : 0;
    pthread_mutex_lock(&st->alloc_mu);
    if (st->alloc_start != next && !st->next_seg) {
        st->alloc_start = next;
        st->alloc_err = 0;
        pthread_cond_broadcast(&st->alloc_cv);
    }
    while (!st->next_seg && !st->alloc_err && !atomic_load(&st->stopping))
        pthread_cond_wait(&st->alloc_cv, &st->alloc_mu);
    int rc = st->next_seg ? 0 : st->alloc_err ? st->alloc_err : FERRY_ECLOSED;
    struct mfile *mf = st->next_seg;
    if (mf && mf->start != next) { /* stale (after a truncation): discard */
        mfile_retire(mf);
        mf = NULL;
        rc = -EAGAIN;
    }
    st->next_seg = NULL;
    if (mf) {
        st->alloc_start = next + st->seg_size;
        pthread_cond_broadcast(&st->alloc_cv);
    }
    pthread_mutex_unlock(&st->alloc_mu);
    if (mf) {
        pthread_rwlock_wrlock(&st->segs_lock);
        segs_push(st, mf);
        pthread_rwlock_unlock(&st->segs_lock);
    }
    return rc;
}

/* ---- append --------------------------------------------------------------------------- */

struct enc {
    struct qstate *qs;
    size_t off, len, ts_off;
    struct msg_crc_parts crc;
};

/* Put bytes into a segment: a copy into the mapping, or a pwrite(2) (readers still read the
 * mapping, which shares the page cache). A dirtied shared mapping is written back page by
 * page with write-protect faults, which makes each group-commit fdatasync several times
 * slower than after pwrite (bench-store, SYNC 64 threads: 0.17-0.38 vs 0.57-0.67 of the raw
 * write+fdatasync rate); under ASYNC_FLUSH the syscall under the lock costs more than it saves.
 * @locks put_lock */
static int write_at(store_t *st, struct mfile *seg, int64_t pos, const void *buf, size_t len)
{
    if (appends_by_copy(st)) {
        memcpy(seg->base + pos, buf, len);
        return 0;
    }
    return fs_pwrite_all(seg->fd, buf, len, (off_t)pos);
}

/* Count @n appended records for the metrics; before max_phys moves, so that a flush that sees
 * the new end also sees them. @locks put_lock (the only writer) */
static void count_appended(store_t *st, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&st->appended, memory_order_relaxed);
    atomic_store_explicit(&st->appended, v + n, memory_order_relaxed);
}

/* Add @w at the tail of the durable waiters' FIFO. @locks flush_mu */
static void waiter_join(store_t *st, struct waiter *w)
{
    w->next = &st->wait_head;
    w->prev = st->wait_head.prev;
    st->wait_head.prev->next = w;
    st->wait_head.prev = w;
    atomic_fetch_add_explicit(&st->commit_waiters, 1, memory_order_relaxed);
}

static int check_msg(store_t *st, const struct store_msg *m)
{
    size_t tl = m->topic ? strlen(m->topic) : 0;
    if (tl == 0 || tl > MSG_MAX_TOPIC_LEN || m->queue_id < 0 || (m->props_len && !m->props) ||
        (m->body_len && !m->body))
        return FERRY_EINVAL;
    if ((int64_t)m->body_len > st->cfg.maxMessageSize)
        return FERRY_ETOOBIG;
    return 0;
}

int commitlog_put(store_t *st, const struct store_msg *msgs, int n, struct put_result *res,
                  struct waiter *w)
{
    struct enc stack_enc[8];
    struct enc *enc = n <= 8 ? stack_enc : ferry_malloc((size_t)n * sizeof *enc);
    size_t total = 0;
    int rc = 0, crc = st->cfg.enabledAppendPropCRC;

    for (int i = 0; i < n && rc == 0; i++) {
        if ((rc = check_msg(st, &msgs[i])) != 0)
            break;
        enc[i].len = msg_record_size(&msgs[i], &st->store_host, crc);
        if (enc[i].len == 0)
            rc = FERRY_EINVAL;
        enc[i].off = total;
        total += enc[i].len;
    }
    if (rc == 0 && (int64_t)total + MSG_BLANK_LEN > st->seg_size)
        rc = FERRY_ETOOBIG;
    for (int i = 0; i < n && rc == 0; i++) {
        const struct store_msg *m = &msgs[i];
        enc[i].qs = store_queue(st, m->topic, strlen(m->topic), m->queue_id, 1);
        if (!enc[i].qs)
            rc = FERRY_EINVAL; /* its ConsumeQueue cannot be opened (logged) */
    }
    if (rc) {
        if (enc != stack_enc)
            ferry_free(enc);
        return rc;
    }
    uint8_t *buf = encbuf_get(total);
    for (int i = 0; i < n; i++) {
        uint8_t *rec = buf + enc[i].off;
        enc[i].ts_off =
            msg_encode(&msgs[i], &st->store_host, crc, rec, enc[i].len, crc ? &enc[i].crc : NULL);
    }

    pthread_mutex_lock(&st->put_lock);
    if (atomic_load(&st->stopping))
        rc = FERRY_ECLOSED;
    else if (atomic_load(&st->fenced))
        rc = FERRY_EFENCED;
    else if (atomic_load(&st->disk_full))
        rc = FERRY_EDISKFULL;
    struct mfile *seg = st->nsegs ? st->segs[st->nsegs - 1] : NULL;
    int64_t pos = seg ? st->write_pos - seg->start : 0;
    if (rc == 0 && (!seg || pos + (int64_t)total + MSG_BLANK_LEN > st->seg_size)) {
        /* The current segment cannot take it: get the next one first, then close this one
         * with the blank marker (so a refused append leaves the log unchanged). */
        int tries = 0;
        do
            rc = take_next_segment(st);
        while (rc == -EAGAIN && ++tries < 3);
        if (rc == 0 && seg) {
            uint8_t blank[MSG_BLANK_LEN];
            be32_put(blank, (uint32_t)(st->seg_size - pos));
            be32_put(blank + 4, MSG_MAGIC_BLANK);
            rc = write_at(st, seg, pos, blank, sizeof blank);
        }
        if (rc == -ENOSPC || rc == -EDQUOT)
            rc = FERRY_EDISKFULL;
        if (rc == 0) {
            seg = st->segs[st->nsegs - 1];
            st->write_pos = seg->start;
            pos = 0;
        }
    }
    if (rc != 0) {
        pthread_mutex_unlock(&st->put_lock);
        if (enc != stack_enc)
            ferry_free(enc);
        return rc;
    }
    int64_t now = clock_wall_ms();
    int64_t ts = now > st->last_store_ts ? now : st->last_store_ts;
    st->last_store_ts = ts;
    for (int i = 0; i < n; i++) {
        uint8_t *rec = buf + enc[i].off;
        int64_t qoff = enc[i].qs->next_offset++;
        int64_t phys = st->write_pos + (int64_t)enc[i].off;
        msg_seal(rec, enc[i].len, enc[i].ts_off, qoff, phys, ts, crc ? &enc[i].crc : NULL);
        res[i].phys_offset = phys;
        res[i].queue_offset = qoff;
        res[i].size = (int32_t)enc[i].len;
        res[i].store_ts = ts;
    }
    if ((rc = write_at(st, seg, pos, buf, total)) != 0) {
        pthread_mutex_unlock(&st->put_lock);
        if (enc != stack_enc)
            ferry_free(enc);
        commitlog_fence(st, rc, "CommitLog write");
        return FERRY_EFENCED;
    }
    st->write_pos += (int64_t)total;
    count_appended(st, (uint64_t)n);
    if (w) {
        /* Join the waiters before the flusher can see the new end: a flush that covered it
         * before we joined would never complete us (the next one finds nothing to sync). */
        w->end = st->write_pos;
        pthread_mutex_lock(&st->flush_mu);
        waiter_join(st, w);
        pthread_mutex_unlock(&st->flush_mu);
    }
    atomic_store(&st->max_phys, st->write_pos); /* seq_cst: pairs with flusher_idle */
    /* Under the lock, so that store_set_repl_cbs(NULL) is final once it returns. */
    if (st->append_cb)
        st->append_cb(st->repl_arg);
    pthread_mutex_unlock(&st->put_lock);
    if (enc != stack_enc)
        ferry_free(enc);

    if (st->sync && atomic_load(&st->flusher_idle)) {
        pthread_mutex_lock(&st->flush_mu);
        pthread_cond_signal(&st->flush_cv);
        pthread_mutex_unlock(&st->flush_mu);
    }
    if (!st->sync)
        dispatch_kick(st);
    return 0;
}

/* Close the current segment with the blank marker and continue in the pre-allocated next one
 * (*@seg, *@pos follow). Returns 0, or the error (nothing changed; a failed marker write is
 * an I/O error: the caller fences). @locks put_lock */
static int roll_segment(store_t *st, struct mfile **seg, int64_t *pos, int *write_failed)
{
    int tries = 0, rc;
    *write_failed = 0;
    do
        rc = take_next_segment(st);
    while (rc == -EAGAIN && ++tries < 3);
    if (rc == 0 && *seg) {
        uint8_t blank[MSG_BLANK_LEN];
        be32_put(blank, (uint32_t)(st->seg_size - *pos));
        be32_put(blank + 4, MSG_MAGIC_BLANK);
        rc = write_at(st, *seg, *pos, blank, sizeof blank);
        *write_failed = rc != 0 && rc != -ENOSPC && rc != -EDQUOT;
    }
    if (rc == -ENOSPC || rc == -EDQUOT)
        rc = FERRY_EDISKFULL;
    if (rc == 0) {
        *seg = st->segs[st->nsegs - 1];
        st->write_pos = (*seg)->start;
        *pos = 0;
    }
    return rc;
}

/* Validate, size and encode the messages of a multi-append; a refused one gets its code in
 * @rcs and enc[i].len = 0. Returns the bytes of the accepted ones. */
static size_t multi_prepare(store_t *st, const struct store_msg *msgs, int n, int *rcs,
                            struct enc *enc, uint8_t **bufp)
{
    int crc = st->cfg.enabledAppendPropCRC;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const struct store_msg *m = &msgs[i];
        int rc = check_msg(st, m);
        enc[i].len = 0;
        if (rc == 0 && ((enc[i].len = msg_record_size(m, &st->store_host, crc)) == 0))
            rc = FERRY_EINVAL;
        if (rc == 0 && (int64_t)enc[i].len + MSG_BLANK_LEN > st->seg_size)
            rc = FERRY_ETOOBIG;
        if (rc == 0 && !(enc[i].qs = store_queue(st, m->topic, strlen(m->topic), m->queue_id, 1)))
            rc = FERRY_EINVAL; /* its ConsumeQueue cannot be opened (logged) */
        rcs[i] = rc;
        if (rc) {
            enc[i].len = 0;
            continue;
        }
        enc[i].off = total;
        total += enc[i].len;
    }
    uint8_t *buf = encbuf_get(total ? total : 1);
    for (int i = 0; i < n; i++)
        if (enc[i].len)
            enc[i].ts_off = msg_encode(&msgs[i], &st->store_host, crc, buf + enc[i].off, enc[i].len,
                                       crc ? &enc[i].crc : NULL);
    *bufp = buf;
    return total;
}

/* Set every still-accepted result of [@from, @n) to @rc. */
static void multi_refuse(const struct enc *enc, int *rcs, int from, int n, int rc)
{
    for (int i = from; i < n; i++)
        if (enc[i].len && rcs[i] == 0)
            rcs[i] = rc;
}

int commitlog_put_multi(store_t *st, const struct store_msg *msgs, int n, int *rcs,
                        struct put_result *res, struct waiter *w)
{
    struct enc stack_enc[16];
    struct enc *enc = n <= 16 ? stack_enc : ferry_malloc((size_t)n * sizeof *enc);
    int crc = st->cfg.enabledAppendPropCRC, stored = 0, rc = 0;
    uint8_t *buf;
    size_t total = multi_prepare(st, msgs, n, rcs, enc, &buf);

    if (total == 0)
        goto out;
    pthread_mutex_lock(&st->put_lock);
    if (atomic_load(&st->stopping))
        rc = FERRY_ECLOSED;
    else if (atomic_load(&st->fenced))
        rc = FERRY_EFENCED;
    else if (atomic_load(&st->disk_full))
        rc = FERRY_EDISKFULL;
    if (rc) {
        pthread_mutex_unlock(&st->put_lock);
        multi_refuse(enc, rcs, 0, n, rc);
        goto out;
    }
    int64_t now = clock_wall_ms();
    int64_t ts = now > st->last_store_ts ? now : st->last_store_ts;
    st->last_store_ts = ts;
    struct mfile *seg = st->nsegs ? st->segs[st->nsegs - 1] : NULL;
    int64_t pos = seg ? st->write_pos - seg->start : 0;
    int i = 0;
    while (i < n) {
        if (!enc[i].len) {
            i++;
            continue;
        }
        /* The run of accepted records from i that fits in the current segment: one write,
         * as the encode buffer holds only the accepted records, back to back. */
        int j = i;
        size_t run = 0;
        while (seg && j < n) {
            if (enc[j].len) {
                if (pos + (int64_t)(run + enc[j].len) + MSG_BLANK_LEN > st->seg_size)
                    break;
                run += enc[j].len;
            }
            j++;
        }
        if (run == 0) {
            int write_failed;
            if ((rc = roll_segment(st, &seg, &pos, &write_failed)) == 0)
                continue;
            if (write_failed) {
                pthread_mutex_unlock(&st->put_lock);
                commitlog_fence(st, rc, "CommitLog write");
                rc = FERRY_EFENCED;
                goto fenced;
            }
            multi_refuse(enc, rcs, i, n, rc); /* no room for the rest */
            break;
        }
        for (int k = i; k < j; k++) {
            if (!enc[k].len)
                continue;
            int64_t phys = st->write_pos + (int64_t)(enc[k].off - enc[i].off);
            int64_t qoff = enc[k].qs->next_offset++;
            msg_seal(buf + enc[k].off, enc[k].len, enc[k].ts_off, qoff, phys, ts,
                     crc ? &enc[k].crc : NULL);
            res[k] = (struct put_result){phys, qoff, (int32_t)enc[k].len, ts};
        }
        if ((rc = write_at(st, seg, pos, buf + enc[i].off, run)) != 0) {
            pthread_mutex_unlock(&st->put_lock);
            commitlog_fence(st, rc, "CommitLog write");
            rc = FERRY_EFENCED;
            goto fenced;
        }
        st->write_pos += (int64_t)run;
        pos += (int64_t)run;
        for (int k = i; k < j; k++)
            stored += enc[k].len != 0;
        i = j;
    }
    count_appended(st, (uint64_t)stored);
    if (stored && w) {
        /* As in commitlog_put: join the waiters before the flusher can see the new end. */
        w->end = st->write_pos;
        pthread_mutex_lock(&st->flush_mu);
        waiter_join(st, w);
        pthread_mutex_unlock(&st->flush_mu);
    }
    atomic_store(&st->max_phys, st->write_pos); /* seq_cst: pairs with flusher_idle */
    /* Under the lock, so that store_set_repl_cbs(NULL) is final once it returns. */
    if (st->append_cb)
        st->append_cb(st->repl_arg);
    pthread_mutex_unlock(&st->put_lock);
    if (stored && st->sync && atomic_load(&st->flusher_idle)) {
        pthread_mutex_lock(&st->flush_mu);
        pthread_cond_signal(&st->flush_cv);
        pthread_mutex_unlock(&st->flush_mu);
    }
    if (stored && !st->sync)
        dispatch_kick(st);
    goto out;
fenced:
    /* A failed write: nothing of this call is ever acknowledged, also what an earlier run of
     * it wrote (never made durable: the store is fenced). */
    multi_refuse(enc, rcs, 0, n, rc);
    stored = 0;
out:
    if (enc != stack_enc)
        ferry_free(enc);
    return stored;
}

/* ---- flush ---------------------------------------------------------------------------- */

int64_t commitlog_confirm(store_t *st)
{
    return st->sync ? atomic_load_explicit(&st->flushed, memory_order_acquire)
                    : atomic_load_explicit(&st->max_phys, memory_order_acquire);
}

/* Remove @w from the FIFO and finish it. @locks flush_mu */
static void waiter_finish(store_t *st, struct waiter *w, int rc)
{
    atomic_fetch_sub_explicit(&st->commit_waiters, 1, memory_order_relaxed);
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->next = w->prev = w;
    w->rc = rc;
    w->done = 1;
}

/* Complete waiters covered by @upto, or all with @rc_all, or (@only_expired) the callback
 * waiters past their deadline; blocked store_put() callers time themselves out. Completed
 * waiters leave the FIFO under flush_mu and are woken (semaphore) or called back after it is
 * dropped. A blocked waiter is posted exactly once; it waits for that post before its stack
 * frame goes, so nothing here touches a waiter after posting it. */
static void complete_waiters(store_t *st, int64_t upto, int rc_all, int only_expired)
{
    struct waiter *done = NULL, **tail = &done;
    int64_t now = only_expired ? clock_mono_ms() : 0;
    pthread_mutex_lock(&st->flush_mu);
    struct waiter *w = st->wait_head.next;
    while (w != &st->wait_head) {
        struct waiter *next = w->next;
        int rc;
        if (only_expired) {
            if (w->deadline_ms > now)
                break; /* deadlines follow FIFO order */
            if (!w->cb) {
                w = next;
                continue;
            }
            rc = FERRY_ETIMEDOUT;
        } else if (rc_all) {
            rc = rc_all;
        } else if (w->end <= upto) {
            rc = 0;
        } else {
            break;
        }
        waiter_finish(st, w, rc);
        w->done_next = NULL;
        *tail = w;
        tail = &w->done_next;
        w = next;
    }
    pthread_mutex_unlock(&st->flush_mu);
    while (done) {
        struct waiter *next = done->done_next;
        if (done->cb) {
            store_put_cb cb = done->cb;
            void *arg = done->arg;
            int rc = done->rc;
            ferry_free(done);
            cb(arg, rc);
        } else {
            sem_post(&done->sem); /* may return and free @done at once */
        }
        done = next;
    }
}

void commitlog_expire_waiters(store_t *st)
{
    complete_waiters(st, 0, 0, 1);
}

void commitlog_fence(store_t *st, int err, const char *what)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&st->fenced, &expected, err ? err : -EIO))
        log_error(LOG_STORE,
                  "%s failed: %s; the store is fenced: reads go on, every write is refused "
                  "until a restart recovers it",
                  what, ferry_strerror(err));
    complete_waiters(st, 0, FERRY_EFENCED, 0);
}

/* Sync every segment holding bytes in [from, to). 0 or -errno. */
static int sync_range(store_t *st, int64_t from, int64_t to)
{
    while (from < to) {
        struct mfile *mf = commitlog_seg_ref(st, from);
        if (!mf) {
            int64_t min = atomic_load(&st->min_phys);
            if (from < min) { /* expired meanwhile: nothing there to make durable */
                from = min;
                continue;
            }
            return 0;
        }
        if (st->cfg.debugSyncDelayMs > 0) {
            struct timespec d = {st->cfg.debugSyncDelayMs / 1000,
                                 (long)(st->cfg.debugSyncDelayMs % 1000) * 1000000};
            nanosleep(&d, NULL);
        }
        int rc = mfile_sync(mf);
        if (st->cfg.debugSyncFailAfter > 0 &&
            atomic_fetch_add(&st->debug_syncs, 1) >= st->cfg.debugSyncFailAfter)
            rc = -EIO; /* injected: behave exactly as a real failed fdatasync */
        int64_t end = mf->start + mf->size;
        mfile_unref(mf);
        if (rc)
            return rc;
        from = end;
    }
    return 0;
}

int commitlog_sync_all(store_t *st)
{
    if (atomic_load(&st->fenced))
        return FERRY_EFENCED;
    int64_t target = atomic_load_explicit(&st->max_phys, memory_order_acquire);
    int64_t flushed = atomic_load(&st->flushed);
    if (target <= flushed)
        return 0;
    uint64_t appended = atomic_load_explicit(&st->appended, memory_order_relaxed);
    int64_t t0 = clock_mono_ns();
    int rc = sync_range(st, flushed, target);
    if (rc) {
        commitlog_fence(st, rc, "CommitLog fdatasync");
        return FERRY_EFENCED;
    }
    prom_hist_observe(&st->flush_us, (clock_mono_ns() - t0) / 1000);
    prom_hist_observe(&st->flush_bytes, target - flushed);
    prom_hist_observe(&st->flush_msgs, (int64_t)(appended - st->appended_at_sync));
    st->appended_at_sync = appended;
    atomic_store_explicit(&st->flushed, target, memory_order_release);
    atomic_store(&st->flushed_ts, clock_wall_ms());
    complete_waiters(st, target, 0, 0);
    dispatch_kick(st);
    pthread_mutex_lock(&st->flush_mu); /* see store_set_repl_cbs */
    if (st->flush_cb)
        st->flush_cb(st->repl_arg, target);
    pthread_mutex_unlock(&st->flush_mu);
    return 0;
}

static void *flush_main(void *arg)
{
    store_t *st = arg;

    int64_t last_thorough = clock_mono_ms();
    while (!atomic_load(&st->stopping)) {
        pthread_mutex_lock(&st->flush_mu);
        if (st->sync) {
            if (atomic_load(&st->max_phys) == atomic_load(&st->flushed) &&
                !atomic_load(&st->stopping)) {
                atomic_store(&st->flusher_idle, 1);
                /* Re-check after announcing we sleep: an append may have slipped in. */
                if (atomic_load(&st->max_phys) == atomic_load(&st->flushed)) {
                    struct timespec ts = clock_deadline_ts(10);
                    pthread_cond_timedwait(&st->flush_cv, &st->flush_mu, &ts);
                }
                atomic_store(&st->flusher_idle, 0);
            }
        } else {
            struct timespec ts = clock_deadline_ts(st->cfg.flushIntervalCommitLog);
            pthread_cond_timedwait(&st->flush_cv, &st->flush_mu, &ts);
        }
        pthread_mutex_unlock(&st->flush_mu);
        if (atomic_load(&st->fenced))
            continue;
        if (!st->sync) {
            int64_t target = atomic_load(&st->max_phys), flushed = atomic_load(&st->flushed);
            int64_t now = clock_mono_ms();
            int thorough = now - last_thorough >= st->cfg.flushCommitLogThoroughInterval;
            if (target / PAGE - flushed / PAGE < st->cfg.flushCommitLogLeastPages && !thorough)
                continue;
            if (thorough)
                last_thorough = now;
        }
        commitlog_sync_all(st);
    }
    return NULL;
}

int commitlog_start(store_t *st)
{
    st->wait_head.next = st->wait_head.prev = &st->wait_head;
    /* Recovery may have kept an empty pre-allocated segment for us. */
    st->alloc_start = st->next_seg ? st->next_seg->start : -1;
    if (pthread_create(&st->alloc_thread, NULL, alloc_main, st) != 0)
        return -errno;
    if (pthread_create(&st->flush_thread, NULL, flush_main, st) != 0)
        return -errno;
    pthread_mutex_lock(&st->put_lock);
    want_next_segment(st);
    pthread_mutex_unlock(&st->put_lock);
    return 0;
}

void commitlog_stop(store_t *st)
{
    pthread_mutex_lock(&st->alloc_mu);
    pthread_cond_broadcast(&st->alloc_cv);
    pthread_mutex_unlock(&st->alloc_mu);
    pthread_mutex_lock(&st->flush_mu);
    pthread_cond_broadcast(&st->flush_cv);
    pthread_mutex_unlock(&st->flush_mu);
    pthread_join(st->alloc_thread, NULL);
    pthread_join(st->flush_thread, NULL);
    /* Final flush, then fail anyone still waiting (only possible after a fence). */
    commitlog_sync_all(st);
    complete_waiters(st, 0, FERRY_ECLOSED, 0);
}

int commitlog_wait(store_t *st, struct waiter *w)
{
    struct timespec ts = clock_deadline_ts(st->cfg.syncFlushTimeout);
    int r;
    while ((r = sem_timedwait(&w->sem, &ts)) != 0 && errno == EINTR)
        ;
    if (r != 0) {
        pthread_mutex_lock(&st->flush_mu);
        int mine = !w->done;
        if (mine)
            waiter_finish(st, w, FERRY_ETIMEDOUT);
        pthread_mutex_unlock(&st->flush_mu);
        /* Completed meanwhile: its post is on the way and must land before we return. */
        if (!mine)
            while (sem_wait(&w->sem) != 0 && errno == EINTR)
                ;
    }
    sem_destroy(&w->sem);
    return w->rc;
}

/* ---- replication ---------------------------------------------------------------------- */

int64_t store_read_raw(store_t *st, int64_t phys, int64_t max, struct store_slice *out)
{
    memset(out, 0, sizeof *out);
    int64_t end = atomic_load_explicit(&st->max_phys, memory_order_acquire);
    if (phys >= end || max <= 0)
        return 0;
    if (phys < atomic_load(&st->min_phys))
        return FERRY_ENOTFOUND;
    struct mfile *mf = commitlog_seg_ref(st, phys);
    if (!mf)
        return FERRY_ENOTFOUND;
    int64_t seg_end = mf->start + mf->size;
    int64_t n = (end < seg_end ? end : seg_end) - phys;
    if (n > max)
        n = max;
    out->data = mf->base + (phys - mf->start);
    out->len = (uint32_t)n;
    out->phys_offset = phys;
    out->queue_offset = -1;
    out->ref = mf;
    return n;
}

int64_t store_received_phys(store_t *st)
{
    int64_t r = atomic_load(&st->recv_pos), m = atomic_load(&st->max_phys);
    return r > m ? r : m;
}

int64_t store_seg_size(store_t *st)
{
    return st->seg_size;
}

void store_set_repl_cbs(store_t *st, void (*on_append)(void *arg),
                        void (*on_flush)(void *arg, int64_t flushed), void *arg)
{
    pthread_mutex_lock(&st->put_lock);
    pthread_mutex_lock(&st->flush_mu);
    st->append_cb = on_append;
    st->flush_cb = on_flush;
    st->repl_arg = arg;
    pthread_mutex_unlock(&st->flush_mu);
    pthread_mutex_unlock(&st->put_lock);
}

/* Advance the written end over the whole records in [max_phys, write_pos). Returns 0, or
 * FERRY_ECORRUPT for bytes that cannot be a record at their place. @locks put_lock */
static int replica_scan(store_t *st)
{
    int64_t pos = atomic_load(&st->max_phys), end = st->write_pos;
    int rc = 0;
    while (pos < end) {
        struct mfile *mf = commitlog_seg_ref(st, pos);
        if (!mf)
            break;
        int64_t off = pos - mf->start, seg_end = mf->start + mf->size;
        int64_t avail = (end < seg_end ? end : seg_end) - pos;
        const uint8_t *p = mf->base + off;
        if (avail < 8) {
            mfile_unref(mf);
            break;
        }
        uint32_t total = be32_get(p), magic = be32_get(p + 4);
        if (magic == MSG_MAGIC_BLANK) {
            mfile_unref(mf);
            if ((int64_t)total != mf->size - off) {
                rc = FERRY_ECORRUPT;
                break;
            }
            if (end < seg_end)
                break; /* the rest of the segment (zeros) is still on its way */
            pos = seg_end;
            continue;
        }
        if (total < 8 || (int64_t)total > mf->size - off) {
            mfile_unref(mf);
            rc = FERRY_ECORRUPT;
            break;
        }
        if ((int64_t)total > avail) {
            mfile_unref(mf);
            break;
        }
        struct msg_view v;
        int prc = msg_parse(p, (size_t)total, &v);
        mfile_unref(mf);
        if (prc != 0 || v.phys_offset != pos || v.total_size != total) {
            rc = FERRY_ECORRUPT;
            break;
        }
        pos += total;
        count_appended(st, 1);
    }
    atomic_store(&st->max_phys, pos);
    return rc;
}

int store_append_replica(store_t *st, int64_t phys, const void *data, size_t len)
{
    const uint8_t *p = data;
    int rc = 0;
    pthread_mutex_lock(&st->put_lock);
    if (atomic_load(&st->stopping))
        rc = FERRY_ECLOSED;
    else if (atomic_load(&st->fenced))
        rc = FERRY_EFENCED;
    else if (phys < atomic_load(&st->max_phys) || phys > st->write_pos)
        rc = FERRY_EINVAL;
    else
        st->write_pos = phys; /* a reconnect resends the partial record after the last whole one */
    while (rc == 0 && len > 0) {
        struct mfile *seg = st->nsegs ? st->segs[st->nsegs - 1] : NULL;
        if (!seg || st->write_pos >= seg->start + seg->size) {
            int tries = 0;
            do
                rc = take_next_segment(st);
            while (rc == -EAGAIN && ++tries < 3);
            if (rc == -ENOSPC || rc == -EDQUOT)
                rc = FERRY_EDISKFULL;
            if (rc)
                break;
            seg = st->segs[st->nsegs - 1];
            if (seg->start != st->write_pos) {
                rc = FERRY_ECORRUPT;
                break;
            }
        }
        int64_t pos = st->write_pos - seg->start;
        size_t n = (size_t)(seg->size - pos) < len ? (size_t)(seg->size - pos) : len;
        if ((rc = write_at(st, seg, pos, p, n)) != 0) {
            pthread_mutex_unlock(&st->put_lock);
            commitlog_fence(st, rc, "CommitLog write (replica)");
            return FERRY_EFENCED;
        }
        st->write_pos += (int64_t)n;
        p += n;
        len -= n;
    }
    atomic_store(&st->recv_pos, st->write_pos);
    int64_t before = atomic_load(&st->max_phys);
    int src = replica_scan(st);
    if (rc == 0)
        rc = src;
    int advanced = atomic_load(&st->max_phys) > before;
    if (rc == FERRY_ECORRUPT) {
        /* Keep nothing past the last whole record: the next append starts there. */
        st->write_pos = atomic_load(&st->max_phys);
        atomic_store(&st->recv_pos, st->write_pos);
    }
    if (advanced && st->nsegs)
        want_next_segment(st);
    pthread_mutex_unlock(&st->put_lock);
    if (advanced) {
        if (st->sync && atomic_load(&st->flusher_idle)) {
            pthread_mutex_lock(&st->flush_mu);
            pthread_cond_signal(&st->flush_cv);
            pthread_mutex_unlock(&st->flush_mu);
        }
        if (!st->sync)
            dispatch_kick(st);
    }
    return rc;
}

int store_compare_raw(store_t *st, int64_t phys, const void *data, size_t len)
{
    if (phys < atomic_load(&st->min_phys) || phys + (int64_t)len > atomic_load(&st->max_phys))
        return 0;
    const uint8_t *p = data;
    while (len > 0) {
        struct mfile *mf = commitlog_seg_ref(st, phys);
        if (!mf)
            return 0;
        int64_t off = phys - mf->start;
        size_t n = (size_t)(mf->size - off) < len ? (size_t)(mf->size - off) : len;
        int eq = memcmp(mf->base + off, p, n) == 0;
        mfile_unref(mf);
        if (!eq)
            return 0;
        phys += (int64_t)n;
        p += n;
        len -= n;
    }
    return 1;
}

int64_t store_record_start_before(store_t *st, int64_t end)
{
    int64_t min = atomic_load(&st->min_phys);
    if (end <= min)
        return end == min ? end : -1;
    if (end > atomic_load(&st->max_phys))
        return -1;
    struct mfile *mf = commitlog_seg_ref(st, end - 1);
    if (!mf)
        return -1;
    int64_t pos = mf->start, found = -1;
    while (pos < end) {
        const uint8_t *p = mf->base + (pos - mf->start);
        uint32_t total = be32_get(p);
        if (total < 8 || pos + (int64_t)total > mf->start + mf->size)
            break;
        if (pos + (int64_t)total == end) {
            found = pos;
            break;
        }
        if (be32_get(p + 4) == MSG_MAGIC_BLANK)
            break;
        pos += total;
    }
    mfile_unref(mf);
    return found;
}

/* Cut the CommitLog at @end (a record boundary): zero the rest of its segment, retire the
 * segments after it, sync, and move every end back. @locks put_lock */
int commitlog_truncate(store_t *st, int64_t end)
{
    struct mfile *retired[64];
    int nret = 0, rc = 0;
    pthread_rwlock_wrlock(&st->segs_lock);
    while (st->nsegs > 0 && st->segs[st->nsegs - 1]->start >= end && nret < 64 &&
           !(st->nsegs == 1 && st->segs[0]->start == end))
        retired[nret++] = st->segs[--st->nsegs];
    pthread_rwlock_unlock(&st->segs_lock);
    for (int i = 0; i < nret; i++)
        mfile_retire(retired[i]);
    struct mfile *seg = st->nsegs ? st->segs[st->nsegs - 1] : NULL;
    if (seg && end >= seg->start && end < seg->start + seg->size) {
        int64_t off = end - seg->start;
        memset(seg->base + off, 0, (size_t)(seg->size - off));
        rc = mfile_sync(seg);
    }
    if (rc == 0 && nret > 0)
        rc = fs_fsync_dir(st->cl_dir);
    st->write_pos = end;
    atomic_store(&st->recv_pos, end);
    atomic_store(&st->max_phys, end);
    if (atomic_load(&st->flushed) > end)
        atomic_store(&st->flushed, end);
    return rc;
}
