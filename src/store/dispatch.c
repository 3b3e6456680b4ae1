/* Dispatch ("reput"): follows the CommitLog up to the confirmed offset (the durable end under
 * SYNC_FLUSH, the written end under ASYNC_FLUSH) and adds each record to its ConsumeQueue and
 * to the index, then tells the arrive callback (long polling) about it.
 *
 * Each record carries its own queue offset, so dispatch is idempotent: an entry that is
 * already there is skipped, a different one is replaced (the queue was damaged), and a gap
 * (a queue that lost entries, or was deleted) is filled by re-scanning the CommitLog for that
 * queue alone. A queue file that cannot be written (disk full) stops dispatch, which retries;
 * nothing is skipped.
 *
 * A re-scan may cross records that recovery never checked (bit rot in an older segment). Such
 * a record is lost, but it must not stop the queue: the re-scan steps over it to the next
 * record that parses, sits at its own offset and passes its CRC, and the queue entries that
 * only the lost record could fill become holes, which readers skip. */
#include "store/store_int.h"

#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <string.h>

void dispatch_kick(store_t *st)
{
    if (!atomic_load(&st->dispatcher_idle))
        return;
    pthread_mutex_lock(&st->disp_mu);
    pthread_cond_signal(&st->disp_cv);
    pthread_mutex_unlock(&st->disp_mu);
}

static void index_record(store_t *st, const struct msg_view *v)
{
    char topic[MSG_MAX_TOPIC_LEN + 1];
    memcpy(topic, v->topic, v->topic_len);
    topic[v->topic_len] = 0;
    size_t len;
    const char *uniq = msg_prop_get(v->props, v->props_len, "UNIQ_KEY", &len);
    int rc = 0;
    if (uniq)
        rc = index_put(st->index, topic, uniq, len, v->phys_offset, v->store_ts);
    const char *keys = msg_prop_get(v->props, v->props_len, "KEYS", &len);
    for (size_t i = 0; keys && i < len && rc == 0;) {
        size_t j = i;
        while (j < len && keys[j] != ' ')
            j++;
        if (j > i)
            rc = index_put(st->index, topic, keys + i, j - i, v->phys_offset, v->store_ts);
        i = j + 1;
    }
    if (rc)
        log_warn(LOG_STORE, "index put at %" PRId64 ": %s (lookups by key may miss it)",
                 v->phys_offset, ferry_strerror(rc));
}

/* Does entry @index of @qs point at its own record: a record of this queue with this queue
 * offset, starting at e->phys and e->size bytes long? */
static int entry_matches(store_t *st, struct qstate *qs, int64_t index, const struct cq_entry *e)
{
    if (e->size <= 0 || e->phys < 0)
        return 0;
    struct mfile *mf = commitlog_seg_ref(st, e->phys);
    if (!mf)
        return 0;
    int64_t off = e->phys - mf->start;
    struct msg_view v;
    int ok = off + e->size <= mf->size &&
             msg_parse(mf->base + off, (size_t)(mf->size - off), &v) == 0 &&
             v.phys_offset == e->phys && (int64_t)v.total_size == e->size &&
             v.queue_offset == index && v.queue_id == qs->qid && v.topic_len == qs->topic_len &&
             memcmp(v.topic, qs->topic, qs->topic_len) == 0;
    mfile_unref(mf);
    return ok;
}

int64_t dispatch_rebuild_point(store_t *st, struct qstate *qs)
{
    /* A damaged last entry (an offset or size off by a flipped bit, still in bounds) would
     * start the rescan in the middle of a record; a rescan must start at a record boundary. */
    for (int64_t max = cq_max_index(qs->cq); max > cq_min_index(qs->cq); max--) {
        struct cq_entry e;
        if (cq_read(qs->cq, max - 1, 1, &e) != 1)
            break;
        if (cq_entry_is_hole(&e) || e.phys + e.size <= atomic_load(&st->min_phys) ||
            entry_matches(st, qs, max - 1, &e))
            return cq_entry_end(&e); /* expired records cannot be checked: trusted as before */
        log_warn(LOG_STORE,
                 "consumequeue %s/%d entry %" PRId64 " (CommitLog %" PRId64 ", %d bytes) does "
                 "not match its record; dropping it",
                 qs->topic, qs->qid, max - 1, e.phys, e.size);
        cq_truncate(qs->cq, max - 1);
    }
    return atomic_load(&st->min_phys);
}

/* Entries [max, v's queue offset) of @qs have no record left: make them holes so that @v's
 * entry can follow. */
static int put_holes_before(struct qstate *qs, const struct msg_view *v)
{
    int64_t from = cq_max_index(qs->cq);
    int64_t at = cq_last_phys_end(qs->cq);
    log_error(LOG_STORE,
              "consumequeue %s/%d: entries %" PRId64 "..%" PRId64 " have no readable record in "
              "the CommitLog (damaged); they are skipped",
              qs->topic, qs->qid, from, v->queue_offset - 1);
    return cq_put_holes(qs->cq, v->queue_offset, at < 0 ? v->phys_offset : at);
}

int dispatch_record(store_t *st, const struct msg_view *v, struct qstate *only)
{
    int tx = v->sys_flag & SYSFLAG_TX_MASK;
    if (tx == SYSFLAG_TX_ROLLBACK)
        return 0;
    if (tx != SYSFLAG_TX_PREPARED) {
        struct qstate *qs = store_queue(st, v->topic, v->topic_len, v->queue_id, 1);
        if (only && qs != only)
            return 0;
        int64_t tags = msg_tags_code(v->props, v->props_len);
        int rc = cq_put(qs->cq, v->queue_offset, v->phys_offset, (int32_t)v->total_size, tags);
        if (rc == FERRY_ECORRUPT) {
            log_warn(LOG_STORE,
                     "consumequeue %s/%d entry %" PRId64 " disagrees with the CommitLog;"
                     " rewriting the queue from there",
                     qs->topic, qs->qid, v->queue_offset);
            cq_truncate(qs->cq, v->queue_offset);
            rc = cq_put(qs->cq, v->queue_offset, v->phys_offset, (int32_t)v->total_size, tags);
        }
        if (rc == FERRY_EINVAL && !only) {
            int64_t from = dispatch_rebuild_point(st, qs);
            log_warn(LOG_STORE,
                     "consumequeue %s/%d misses entries %" PRId64 "..%" PRId64
                     "; rebuilding them from CommitLog offset %" PRId64,
                     qs->topic, qs->qid, cq_max_index(qs->cq), v->queue_offset - 1, from);
            rc = dispatch_rebuild_queue(st, qs, from, v->phys_offset);
            if (rc == 0)
                rc = cq_put(qs->cq, v->queue_offset, v->phys_offset, (int32_t)v->total_size, tags);
        }
        if (rc == FERRY_EINVAL && v->queue_offset > cq_max_index(qs->cq)) {
            /* The re-scan found nothing for the gap: those records are lost, this one is not. */
            rc = put_holes_before(qs, v);
            if (rc == 0)
                rc = cq_put(qs->cq, v->queue_offset, v->phys_offset, (int32_t)v->total_size, tags);
        }
        if (rc == FERRY_EINVAL) {
            log_error(LOG_STORE,
                      "consumequeue %s/%d: record at %" PRId64 " has queue offset %" PRId64
                      " but the queue ends at %" PRId64 "; not added",
                      qs->topic, qs->qid, v->phys_offset, v->queue_offset, cq_max_index(qs->cq));
            return 0;
        }
        if (rc)
            return rc;
        if (only)
            return 0;
        if (st->arrive_cb)
            st->arrive_cb(st->arrive_arg, qs->topic, qs->qid, v->queue_offset + 1);
    } else if (only) {
        return 0;
    }
    if (st->index)
        index_record(st, v);
    return 0;
}

/* Is there a sound record at offset @at of @seg: it parses, names @at as its own offset and
 * passes its CRC? A blank end-of-segment marker counts when it reaches the segment's end. */
static int sound_record_at(store_t *st, const struct mfile *seg, int64_t at)
{
    int64_t off = at - seg->start;
    const uint8_t *p = seg->base + off;
    if (seg->size - off < 8)
        return 0;
    uint32_t magic = be32_get(p + 4);
    if (magic != MSG_MAGIC_V1 && magic != MSG_MAGIC_BLANK)
        return 0;
    struct msg_view v;
    int prc = msg_parse(p, (size_t)(seg->size - off), &v);
    if (prc == FERRY_ENOTFOUND)
        return off + v.total_size == seg->size;
    return prc == 0 && v.phys_offset == at && msg_verify(&v, st->cfg.enabledAppendPropCRC) == 0;
}

/* The first sound record after the damaged one at @at, within @to; the segment's end if none
 * is left in it. */
static int64_t resync(store_t *st, const struct mfile *seg, int64_t at, int64_t to)
{
    int64_t end = seg->start + seg->size < to ? seg->start + seg->size : to;
    for (int64_t p = at + 1; p < end; p++)
        if (sound_record_at(st, seg, p))
            return p;
    return end;
}

/* Dispatch records in [*pos, to). Advances *pos past each record done. */
static int dispatch_range(store_t *st, int64_t *pos, int64_t to, struct qstate *only)
{
    struct mfile *seg = NULL;
    int rc = 0;
    while (*pos < to && rc == 0) {
        if (!seg || *pos >= seg->start + seg->size) {
            mfile_unref(seg);
            seg = commitlog_seg_ref(st, *pos);
            if (!seg) {
                int64_t min = atomic_load(&st->min_phys);
                if (*pos < min) { /* expired under us: skip ahead */
                    *pos = min;
                    continue;
                }
                rc = FERRY_ECORRUPT;
                break;
            }
        }
        int64_t off = *pos - seg->start;
        struct msg_view v;
        int prc = msg_parse(seg->base + off, (size_t)(seg->size - off), &v);
        if (prc == FERRY_ENOTFOUND) {
            *pos = seg->start + seg->size;
            continue;
        }
        /* A rebuild reads records recovery may not have scanned: a damaged one must not reach
         * a queue (its queue offset could be anything). The live dispatch reads what was just
         * appended, and the recovery replay what the scan checked. */
        if (prc == 0 && only && msg_verify(&v, st->cfg.enabledAppendPropCRC) != 0)
            prc = FERRY_ECORRUPT;
        if ((prc != 0 || v.phys_offset != *pos) && only) {
            int64_t next = resync(st, seg, *pos, to);
            log_error(LOG_STORE,
                      "CommitLog bytes %" PRId64 "..%" PRId64 " are damaged; the rebuild of "
                      "%s/%d steps over them (the records there are lost)",
                      *pos, next - 1, only->topic, only->qid);
            *pos = next;
            continue;
        }
        if (prc == 0 && v.phys_offset == *pos && !only && *pos + v.total_size > to)
            break; /* the record is not wholly below the limit yet */
        if (prc != 0 || v.phys_offset != *pos) {
            log_error(LOG_STORE,
                      "unreadable record at CommitLog offset %" PRId64
                      " below the confirmed end %" PRId64,
                      *pos, to);
            rc = FERRY_ECORRUPT;
            break;
        }
        rc = dispatch_record(st, &v, only);
        if (rc == 0) {
            *pos += v.total_size;
            if (!only)
                atomic_store(&st->dispatched_ts, v.store_ts);
        }
    }
    mfile_unref(seg);
    return rc;
}

int dispatch_rebuild_queue(store_t *st, struct qstate *qs, int64_t phys, int64_t until)
{
    int64_t pos = phys;
    return dispatch_range(st, &pos, until, qs);
}

int dispatch_replay(store_t *st, int64_t from, int64_t to)
{
    int64_t pos = from;
    return dispatch_range(st, &pos, to, NULL);
}

void dispatch_request_rebuild(store_t *st, struct qstate *qs, int64_t index)
{
    pthread_mutex_lock(&st->disp_mu);
    atomic_store(&qs->repairing, 1);
    if (qs->rebuild_from < 0 || index < qs->rebuild_from) {
        if (qs->rebuild_from < 0) {
            qs->rebuild_next = st->rebuild_list;
            st->rebuild_list = qs;
        }
        qs->rebuild_from = index;
    }
    pthread_cond_signal(&st->disp_cv);
    pthread_mutex_unlock(&st->disp_mu);
}

static int rebuild_pending(store_t *st)
{
    pthread_mutex_lock(&st->disp_mu);
    int pending = st->rebuild_list != NULL;
    pthread_mutex_unlock(&st->disp_mu);
    return pending;
}

/* Rebuild queues whose entries a reader found not to match the CommitLog. @thread dispatch */
static void run_rebuilds(store_t *st)
{
    for (;;) {
        pthread_mutex_lock(&st->disp_mu);
        struct qstate *qs = st->rebuild_list;
        int64_t index = -1;
        if (qs) {
            st->rebuild_list = qs->rebuild_next;
            index = qs->rebuild_from;
            qs->rebuild_from = -1;
        }
        pthread_mutex_unlock(&st->disp_mu);
        if (!qs)
            return;
        cq_truncate(qs->cq, index);
        int64_t from = dispatch_rebuild_point(st, qs);
        int64_t until = atomic_load(&st->dispatched);
        log_warn(LOG_STORE,
                 "consumequeue %s/%d: rebuilding from entry %" PRId64 " (CommitLog %" PRId64
                 "..%" PRId64 ")",
                 qs->topic, qs->qid, index, from, until);
        int rc = dispatch_rebuild_queue(st, qs, from, until);
        if (rc)
            log_error(LOG_STORE, "rebuild of %s/%d failed: %s", qs->topic, qs->qid,
                      ferry_strerror(rc));
        pthread_mutex_lock(&st->disp_mu);
        if (qs->rebuild_from < 0) /* no new request for it meanwhile */
            atomic_store(&qs->repairing, 0);
        pthread_mutex_unlock(&st->disp_mu);
    }
}

int64_t dispatch_target(store_t *st)
{
    int64_t confirm = commitlog_confirm(st), limit = atomic_load(&st->repl_limit);
    return limit >= 0 && limit < confirm ? limit : confirm;
}

static void *dispatch_main(void *arg)
{
    store_t *st = arg;
    int64_t last_err_log = 0;
    for (;;) {
        if (rebuild_pending(st))
            run_rebuilds(st);
        int64_t confirm = dispatch_target(st);
        int64_t pos = atomic_load(&st->dispatched), before = pos;
        if (pos < confirm) {
            int rc = dispatch_range(st, &pos, confirm, NULL);
            atomic_store(&st->dispatched, pos);
            if (rc == 0 && pos > before)
                continue;
            if (rc == 0) { /* the replication limit splits the next record: wait for more */
                if (atomic_load(&st->stopping))
                    break;
                pthread_mutex_lock(&st->disp_mu);
                struct timespec ts = clock_deadline_ts(10);
                pthread_cond_timedwait(&st->disp_cv, &st->disp_mu, &ts);
                pthread_mutex_unlock(&st->disp_mu);
                continue;
            }
            if (rc == FERRY_ECORRUPT) {
                commitlog_fence(st, rc, "dispatch");
                if (atomic_load(&st->stopping))
                    break;
            } else if (clock_mono_ms() - last_err_log > 5000) {
                last_err_log = clock_mono_ms();
                log_error(LOG_STORE, "dispatch stalled at %" PRId64 ": %s; retrying", pos,
                          ferry_strerror(rc));
            }
            pthread_mutex_lock(&st->disp_mu);
            struct timespec ts = clock_deadline_ts(100);
            pthread_cond_timedwait(&st->disp_cv, &st->disp_mu, &ts);
            pthread_mutex_unlock(&st->disp_mu);
            continue;
        }
        if (atomic_load(&st->stopping))
            break;
        pthread_mutex_lock(&st->disp_mu);
        atomic_store(&st->dispatcher_idle, 1);
        if (dispatch_target(st) == atomic_load(&st->dispatched) && !st->rebuild_list &&
            !atomic_load(&st->stopping)) {
            struct timespec ts = clock_deadline_ts(100);
            pthread_cond_timedwait(&st->disp_cv, &st->disp_mu, &ts);
        }
        atomic_store(&st->dispatcher_idle, 0);
        pthread_cond_broadcast(&st->disp_cv); /* store_wait_dispatched() */
        pthread_mutex_unlock(&st->disp_mu);
    }
    return NULL;
}

int dispatch_start(store_t *st)
{
    return pthread_create(&st->dispatch_thread, NULL, dispatch_main, st) == 0 ? 0 : FERRY_EINVAL;
}

void dispatch_stop(store_t *st)
{
    pthread_mutex_lock(&st->disp_mu);
    pthread_cond_broadcast(&st->disp_cv);
    pthread_mutex_unlock(&st->disp_mu);
    pthread_join(st->dispatch_thread, NULL);
}
