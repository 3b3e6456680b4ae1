/* Recovery at open: find the true end of the CommitLog, cut everything after it, and bring
 * the ConsumeQueues and the index in line with it.
 *
 * 1. Scan from the start of the segment holding the checkpoint's dispatched offset (every
 *    record before it already has durable queue entries), checking each record's structure,
 *    PHYSICALOFFSET == its position, the body CRC and the whole-record CRC property. The
 *    first record that fails, or all-zero bytes, is the end.
 * 2. Zero every byte after the end in that segment (so a stale record can never pass the
 *    checks later) and delete later segments; sync.
 * 3. Cut each ConsumeQueue at its first invalid entry or the first entry past the end;
 *    rebuild queues that are shorter than the saved queue table says; cut the index.
 * 4. Re-dispatch every record from the scan start (idempotent), so entries lost with the
 *    crash are rebuilt and damaged ones replaced.
 * The same steps run after a clean shutdown; they are cheap then. A scan longer than a
 * second logs its progress every second. */
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
#include <sys/mman.h>
#include <unistd.h>

struct scan {
    int64_t start, limit, records, t0, last_log;
};

static void progress(struct scan *sc, int64_t pos)
{
    int64_t now = clock_mono_ms();
    if (now - sc->last_log < 1000)
        return;
    sc->last_log = now;
    double done = (double)(pos - sc->start), todo = (double)(sc->limit - sc->start);
    double secs = (double)(now - sc->t0) / 1000.0;
    double rate = secs > 0 ? done / secs / 1e6 : 0;
    double left = rate > 0 ? (todo - done) / 1e6 / rate : 0;
    log_info(LOG_STORE,
             "recovery: scanned %.0f of at most %.0f MB (%.0f%%), %.0f MB/s, at most %.0f s left",
             done / 1e6, todo / 1e6, todo > 0 ? 100.0 * done / todo : 100.0, rate, left);
}

/* The end of the valid log from @start. */
static int64_t scan_end(store_t *st, int64_t start, struct scan *sc)
{
    int64_t pos = start;
    int require_crc = st->cfg.enabledAppendPropCRC;
    for (;;) {
        struct mfile *seg = commitlog_seg_ref(st, pos);
        if (!seg)
            return pos;
        int64_t off = pos - seg->start;
        const uint8_t *p = seg->base + off;
        int64_t left = seg->size - off;
        if (left < 8) {
            mfile_unref(seg);
            log_warn(LOG_STORE, "recovery: %" PRId64 " stray bytes at the end of segment %s", left,
                     seg->path);
            return pos;
        }
        if (be32_get(p) == 0 && be32_get(p + 4) == 0) {
            mfile_unref(seg);
            return pos; /* zero-filled: the end */
        }
        struct msg_view v;
        int rc = msg_parse(p, (size_t)left, &v);
        if (rc == FERRY_ENOTFOUND) {
            int64_t next = seg->start + seg->size;
            mfile_unref(seg);
            if (v.total_size != (uint32_t)left) {
                log_warn(LOG_STORE, "recovery: bad end-of-segment marker at %" PRId64, pos);
                return pos;
            }
            pos = next;
            continue;
        }
        const char *why = NULL;
        if (rc != 0)
            why = "bad structure";
        else if (v.phys_offset != pos)
            why = "physical offset field differs from its position (stale record)";
        else if (st->cfg.checkCRCOnRecover && msg_verify(&v, require_crc) != 0)
            why = "CRC mismatch";
        mfile_unref(seg);
        if (why) {
            log_warn(LOG_STORE,
                     "recovery: record at CommitLog offset %" PRId64 ": %s; the log "
                     "ends here",
                     pos, why);
            return pos;
        }
        pos += v.total_size;
        sc->records++;
        if ((sc->records & 1023) == 0)
            progress(sc, pos);
    }
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* One past the last non-zero byte of [from, end), or @from when it is all zero. Reads
 * forward, so readahead works on a cold file. */
static uint8_t *last_nonzero(uint8_t *from, uint8_t *end)
{
    uintptr_t page = (uintptr_t)from & ~(uintptr_t)4095;
    size_t span = (size_t)((uintptr_t)end - page);
    madvise((void *)page, span, MADV_SEQUENTIAL);
    uint8_t *last = from;
    for (uint8_t *p = from; p < end; p += 65536) {
        size_t n = (size_t)(end - p) < 65536 ? (size_t)(end - p) : 65536;
        if (!all_zero(p, n))
            last = p + n;
    }
    while (last > from && last[-1] == 0)
        last--;
    madvise((void *)page, span, MADV_NORMAL);
    return last;
}

/* Delete segments that start after @end, and zero [@end, last non-zero byte) of the segment
 * holding @end, so nothing after the end can ever be read as a record.
 * @clean: the last run shut down cleanly and the log ends exactly where its checkpoint says,
 * so no byte after the end was written since the last recovery zeroed it: the read of the
 * tail (up to a segment) is skipped, and the empty segment after it (the allocator's
 * pre-allocated one) is kept instead of being deleted and written again. After a crash that
 * segment would have to be read whole to prove it empty; letting the allocator write a new
 * one in the background is cheaper. */
static int cut_log(store_t *st, int64_t end, int clean)
{
    int64_t dropped = 0;
    int rc = 0;
    pthread_rwlock_wrlock(&st->segs_lock);
    while (st->nsegs > 1 && st->segs[st->nsegs - 1]->start > end) {
        struct mfile *mf = st->segs[--st->nsegs];
        int next = st->segs[st->nsegs - 1]->start + st->seg_size == mf->start &&
                   st->segs[st->nsegs - 1]->start <= end;
        if (next && !st->next_seg && clean) {
            st->next_seg = mf;
            continue;
        }
        if (be64_get(mf->base) != 0)
            log_warn(LOG_STORE, "recovery: deleting segment %s, which lies after the end",
                     mf->path);
        mfile_retire(mf);
    }
    struct mfile *mf = st->nsegs ? st->segs[st->nsegs - 1] : NULL;
    if (mf && end < mf->start + mf->size && !clean) {
        uint8_t *from = mf->base + (end > mf->start ? end - mf->start : 0);
        uint8_t *last = last_nonzero(from, mf->base + mf->size);
        if (last > from) {
            dropped = last - from;
            memset(from, 0, (size_t)dropped);
            rc = mfile_sync(mf);
        }
    }
    pthread_rwlock_unlock(&st->segs_lock);
    if (dropped)
        log_warn(LOG_STORE,
                 "recovery: cut the CommitLog at %" PRId64 ": %" PRId64
                 " bytes after it were zeroed",
                 end, dropped);
    return rc;
}

static void load_queue_dirs(store_t *st)
{
    DIR *d = opendir(st->cq_dir);
    if (!d)
        return;
    struct dirent *t;
    while ((t = readdir(d)) != NULL) {
        if (t->d_name[0] == '.' || strlen(t->d_name) > MSG_MAX_TOPIC_LEN)
            continue;
        char path[FERRY_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", st->cq_dir, t->d_name);
        DIR *qd = opendir(path);
        if (!qd)
            continue;
        struct dirent *q;
        while ((q = readdir(qd)) != NULL) {
            char *endp;
            long qid = strtol(q->d_name, &endp, 10);
            if (q->d_name[0] == '.' || *endp || qid < 0 || qid > INT32_MAX)
                continue;
            store_queue(st, t->d_name, strlen(t->d_name), (int32_t)qid, 1);
        }
        closedir(qd);
    }
    closedir(d);
}

struct qfix {
    int64_t end, max_size;
};

static void recover_queue(struct qstate *qs, void *arg)
{
    struct qfix *f = arg;
    cq_recover(qs->cq, f->end, (int32_t)f->max_size);
}

struct qcheck {
    int64_t scan_start;
    int rebuilt;
};

static void check_queue_len(store_t *st, const char *topic, int32_t qid, int64_t entries, void *arg)
{
    struct qcheck *qc = arg;
    struct qstate *qs = store_queue(st, topic, strlen(topic), qid, 1);
    if (!qs || cq_max_index(qs->cq) >= entries)
        return;
    int64_t from = dispatch_rebuild_point(st, qs);
    log_warn(LOG_STORE,
             "consumequeue %s/%d has %" PRId64 " entries, %" PRId64 " expected; "
             "rebuilding it from CommitLog offset %" PRId64,
             topic, qid, cq_max_index(qs->cq), entries, from);
    if (from < qc->scan_start)
        dispatch_rebuild_queue(st, qs, from, qc->scan_start);
    qc->rebuilt++;
}

struct qhead {
    store_t *st;
    int64_t scan_start;
    int rc;
};

/* No CommitLog segment was ever deleted (the log starts at 0), yet the queue's first entry is
 * past 0: its first files are missing (deleted or lost), not expired. Its remaining files are
 * dropped and the whole queue rebuilt from the CommitLog (the re-dispatch does the rest). */
static void check_queue_head(struct qstate *qs, void *arg)
{
    struct qhead *h = arg;
    int64_t min = cq_min_index(qs->cq);
    if (min == 0 || h->rc)
        return;
    log_warn(LOG_STORE,
             "consumequeue %s/%d starts at entry %" PRId64 " but no CommitLog segment was "
             "ever deleted: its first files are missing; rebuilding it from the CommitLog",
             qs->topic, qs->qid, min);
    char dir[FERRY_PATH_MAX], path[FERRY_PATH_MAX + 300];
    snprintf(dir, sizeof dir, "%s/%s/%d", h->st->cq_dir, qs->topic, qs->qid);
    cq_close(qs->cq);
    qs->cq = NULL;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT && !h->rc)
            h->rc = -errno;
    }
    if (d)
        closedir(d);
    int rc = h->rc ? h->rc
                   : cq_open(h->st->cq_dir, qs->topic, qs->qid,
                             h->st->cfg.mappedFileSizeConsumeQueue, &qs->cq);
    if (rc == 0 && h->scan_start > 0)
        rc = dispatch_rebuild_queue(h->st, qs, 0, h->scan_start);
    if (rc && !h->rc)
        h->rc = rc;
}

static void set_next_offset(struct qstate *qs, void *arg)
{
    (void)arg;
    qs->next_offset = cq_max_index(qs->cq);
}

struct qmin {
    int64_t min_phys;
};

static void raise_min(struct qstate *qs, void *arg)
{
    cq_delete_below(qs->cq, ((struct qmin *)arg)->min_phys);
}

static void sync_queue(struct qstate *qs, void *arg)
{
    int *rc = arg;
    int r = cq_flush(qs->cq, 0);
    if (r && !*rc)
        *rc = r;
}

int recovery_run(store_t *st, char *err, size_t errlen)
{
    int64_t t0 = clock_mono_ms();
    st->abnormal = access(st->abort_path, F_OK) == 0;
    struct checkpoint ck;
    int rc = checkpoint_read(st->ckpt_path, &ck);
    int ck_ok = rc == 0;
    if (rc && rc != -ENOENT)
        log_warn(LOG_STORE, "checkpoint %s unreadable (%s); scanning the whole CommitLog",
                 st->ckpt_path, ferry_strerror(rc));
    if (rc)
        ck.dispatched = 0;

    int64_t min_phys = st->nsegs ? st->segs[0]->start : 0;
    int64_t seg_end = st->nsegs ? st->segs[st->nsegs - 1]->start + st->seg_size : 0;
    atomic_store(&st->min_phys, min_phys);
    int64_t from = ck.dispatched;
    if (from < min_phys || from > seg_end) {
        if (from > seg_end)
            log_warn(LOG_STORE,
                     "checkpoint offset %" PRId64 " is past the CommitLog end %" PRId64
                     "; scanning it all",
                     from, seg_end);
        from = min_phys;
    }
    int64_t scan_start = from - (from - min_phys) % st->seg_size;
    if (scan_start == seg_end && st->nsegs)
        scan_start -= st->seg_size;
    if (st->abnormal)
        log_warn(LOG_STORE,
                 "the last run did not shut down cleanly; recovering from CommitLog "
                 "offset %" PRId64,
                 scan_start);

    struct scan sc = {scan_start, seg_end, 0, t0, t0};
    int64_t end = st->nsegs ? scan_end(st, scan_start, &sc) : 0;
    int64_t t_scan = clock_mono_ms();
    int clean = !st->abnormal && ck_ok && ck.confirm == end;
    if ((rc = cut_log(st, end, clean)) != 0) {
        snprintf(err, errlen, "recovery: cannot zero the CommitLog tail: %s", ferry_strerror(rc));
        return rc;
    }
    /* Whatever we keep becomes durable now, before anything depends on it. */
    for (int i = 0; i < st->nsegs && rc == 0; i++)
        if (st->segs[i]->start + st->seg_size > scan_start)
            rc = mfile_sync(st->segs[i]);
    if (rc) {
        snprintf(err, errlen, "recovery: sync CommitLog: %s", ferry_strerror(rc));
        return rc;
    }
    st->write_pos = end;
    atomic_store(&st->recv_pos, end);
    atomic_store(&st->max_phys, end);
    atomic_store(&st->flushed, end);
    int64_t t_cut = clock_mono_ms();

    load_queue_dirs(st);
    struct qfix qf = {end, st->seg_size};
    store_foreach_queue(st, recover_queue, &qf);
    if (min_phys == 0) {
        struct qhead qh = {st, scan_start, 0};
        store_foreach_queue(st, check_queue_head, &qh);
        if (qh.rc) {
            snprintf(err, errlen, "recovery: rebuild a ConsumeQueue with missing files: %s",
                     ferry_strerror(qh.rc));
            return qh.rc;
        }
    }
    /* The index is durable only up to the checkpoint (write_checkpoint flushes it first): a
     * newer index file's header can be on disk while its predecessor's last entries are not.
     * Rebuild it from the checkpoint, keeping only the entries below it. */
    if (st->index)
        index_truncate_after(st->index, from < end ? from : end, st->abnormal);
    struct qcheck qc = {scan_start, 0};
    if ((rc = qtable_read(st, check_queue_len, &qc)) != 0)
        log_warn(LOG_STORE, "queue table unreadable (%s); skipping the queue length check",
                 ferry_strerror(rc));
    int64_t t_queues = clock_mono_ms();
    if ((rc = dispatch_replay(st, scan_start, end)) != 0) {
        snprintf(err, errlen, "recovery: re-dispatch from %" PRId64 " failed: %s", scan_start,
                 ferry_strerror(rc));
        return rc;
    }
    atomic_store(&st->dispatched, end);
    if (min_phys > 0) {
        struct qmin qm = {min_phys};
        store_foreach_queue(st, raise_min, &qm);
    }
    store_foreach_queue(st, set_next_offset, NULL);
    store_foreach_queue(st, sync_queue, &rc);
    if (rc == 0 && st->index)
        rc = index_flush(st->index);
    if (rc) {
        snprintf(err, errlen, "recovery: sync queues: %s", ferry_strerror(rc));
        return rc;
    }
    int64_t t_end = clock_mono_ms();
    st->recovery_ms = t_end - t0;
    log_info(LOG_STORE,
             "recovery %s: CommitLog [%" PRId64 ", %" PRId64 "), scanned %" PRId64
             " records from %" PRId64 " in %" PRId64 " ms (scan %" PRId64 ", cut %" PRId64
             ", queues %" PRId64 ", re-dispatch and sync %" PRId64 ")",
             st->abnormal ? "(abnormal)" : "(clean)", min_phys, end, sc.records, scan_start,
             st->recovery_ms, t_scan - t0, t_cut - t_scan, t_queues - t_cut, t_end - t_queues);
    return 0;
}
