/* The store's front: open/close, the topic-queue table, reads, and the service thread
 * (queue flush, checkpoint, expiry, disk space, async flush timeouts). */
#include "store/store_int.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- topic-queue table ----------------------------------------------------------------- */

static uint32_t qhash(const char *topic, size_t len, int32_t qid)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 16777619u;
    return (h ^ (uint32_t)qid) * 16777619u;
}

static struct qstate *qfind(store_t *st, const char *topic, size_t len, int32_t qid, uint32_t h)
{
    if (!st->qt_size)
        return NULL;
    for (struct qstate *qs = st->qt[h & (st->qt_size - 1)]; qs; qs = qs->next)
        if (qs->hash == h && qs->qid == qid && qs->topic_len == len &&
            memcmp(qs->topic, topic, len) == 0)
            return qs;
    return NULL;
}

static void qgrow(store_t *st)
{
    uint32_t n = st->qt_size ? st->qt_size * 2 : 64;
    struct qstate **t = ferry_calloc(n, sizeof *t);
    for (uint32_t i = 0; i < st->qt_size; i++) {
        struct qstate *qs = st->qt[i];
        while (qs) {
            struct qstate *next = qs->next;
            qs->next = t[qs->hash & (n - 1)];
            t[qs->hash & (n - 1)] = qs;
            qs = next;
        }
    }
    ferry_free(st->qt);
    st->qt = t;
    st->qt_size = n;
}

struct qstate *store_queue(store_t *st, const char *topic, size_t len, int32_t qid, int create)
{
    if (len == 0 || len > MSG_MAX_TOPIC_LEN || qid < 0)
        return NULL;
    uint32_t h = qhash(topic, len, qid);
    pthread_rwlock_rdlock(&st->qt_lock);
    struct qstate *qs = qfind(st, topic, len, qid, h);
    pthread_rwlock_unlock(&st->qt_lock);
    if (qs || !create)
        return qs;

    char name[MSG_MAX_TOPIC_LEN + 1];
    memcpy(name, topic, len);
    name[len] = 0;
    cq_t *cq;
    int rc = cq_open(st->cq_dir, name, qid, st->cfg.mappedFileSizeConsumeQueue, &cq);
    if (rc) {
        log_error(LOG_STORE, "open consumequeue %s/%d: %s", name, qid, ferry_strerror(rc));
        return NULL;
    }
    pthread_rwlock_wrlock(&st->qt_lock);
    qs = qfind(st, topic, len, qid, h);
    if (qs) {
        pthread_rwlock_unlock(&st->qt_lock);
        cq_close(cq);
        return qs;
    }
    if (st->qt_count + 1 > st->qt_size)
        qgrow(st);
    qs = ferry_calloc(1, sizeof *qs);
    qs->hash = h;
    qs->cq = cq;
    qs->qid = qid;
    qs->topic_len = (uint8_t)len;
    qs->rebuild_from = -1;
    memcpy(qs->topic, name, len + 1);
    qs->next_offset = cq_max_index(cq);
    qs->next = st->qt[h & (st->qt_size - 1)];
    st->qt[h & (st->qt_size - 1)] = qs;
    st->qt_count++;
    pthread_rwlock_unlock(&st->qt_lock);
    atomic_store(&st->qt_changed, 1);
    return qs;
}

void store_foreach_queue(store_t *st, void (*fn)(struct qstate *qs, void *arg), void *arg)
{
    pthread_rwlock_rdlock(&st->qt_lock);
    for (uint32_t i = 0; i < st->qt_size; i++)
        for (struct qstate *qs = st->qt[i]; qs; qs = qs->next)
            fn(qs, arg);
    pthread_rwlock_unlock(&st->qt_lock);
}

static void qtable_free(store_t *st)
{
    for (uint32_t i = 0; i < st->qt_size; i++) {
        struct qstate *qs = st->qt[i];
        while (qs) {
            struct qstate *next = qs->next;
            cq_close(qs->cq);
            ferry_free(qs);
            qs = next;
        }
    }
    ferry_free(st->qt);
}

/* ---- service thread ------------------------------------------------------------------- */

static void flush_queue(struct qstate *qs, void *arg)
{
    int64_t least = *(int64_t *)arg;
    int rc = cq_flush(qs->cq, least);
    if (rc)
        log_error(LOG_STORE, "flush consumequeue %s/%d: %s", qs->topic, qs->qid,
                  ferry_strerror(rc));
}

/* Flush every queue and the index, then record how far dispatch is durable. */
static int write_checkpoint_locked(store_t *st);

/* The service thread and a replica truncation both write checkpoints: one at a time. */
static int write_checkpoint(store_t *st)
{
    static pthread_mutex_t ckpt_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&ckpt_mu);
    int rc = write_checkpoint_locked(st);
    pthread_mutex_unlock(&ckpt_mu);
    return rc;
}

static int write_checkpoint_locked(store_t *st)
{
    struct checkpoint ck = {0};
    ck.dispatched = atomic_load(&st->dispatched);
    ck.logics_ts = atomic_load(&st->dispatched_ts);
    ck.index_ts = ck.logics_ts;
    ck.phys_ts = atomic_load(&st->flushed_ts);
    ck.confirm = commitlog_confirm(st);
    int64_t least = 0;
    store_foreach_queue(st, flush_queue, &least);
    int rc = st->index ? index_flush(st->index) : 0;
    if (rc == 0)
        rc = qtable_write(st);
    if (rc == 0)
        rc = checkpoint_write(st->ckpt_path, &ck);
    if (rc)
        log_error(LOG_STORE, "checkpoint: %s", ferry_strerror(rc));
    return rc;
}

static void *service_main(void *arg)
{
    store_t *st = arg;
    int64_t last_ckpt_dispatched = atomic_load(&st->dispatched);
    pthread_mutex_lock(&st->svc_mu);
    while (!atomic_load(&st->stopping)) {
        struct timespec ts = clock_deadline_ts(50);
        pthread_cond_timedwait(&st->svc_cv, &st->svc_mu, &ts);
        if (atomic_load(&st->stopping))
            break;
        pthread_mutex_unlock(&st->svc_mu);
        int64_t now = clock_mono_ms();
        commitlog_expire_waiters(st);
        if (now - st->last_disk_ms >= 1000) {
            st->last_disk_ms = now;
            expiry_check_disk(st);
        }
        if (now - st->last_cq_thorough_ms >= st->cfg.flushConsumeQueueThoroughInterval) {
            st->last_cq_thorough_ms = st->last_cq_flush_ms = now;
            int64_t d = atomic_load(&st->dispatched);
            if (d != last_ckpt_dispatched && write_checkpoint(st) == 0)
                last_ckpt_dispatched = d;
        } else if (now - st->last_cq_flush_ms >= st->cfg.flushIntervalConsumeQueue) {
            st->last_cq_flush_ms = now;
            int64_t least = (int64_t)st->cfg.flushConsumeQueueLeastPages * 4096 / CQ_UNIT;
            store_foreach_queue(st, flush_queue, &least);
        }
        if (now - st->last_clean_ms >= st->cfg.cleanResourceInterval) {
            st->last_clean_ms = now;
            expiry_run(st, 0);
        }
        pthread_mutex_lock(&st->svc_mu);
    }
    pthread_mutex_unlock(&st->svc_mu);
    return NULL;
}

/* ---- open / close --------------------------------------------------------------------- */

static int parse_host(const char *s, struct msg_host *h)
{
    char ip[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof ip)
        return FERRY_ECONFIG;
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return FERRY_ECONFIG;
    memset(h, 0, sizeof *h);
    h->port = (uint32_t)port;
    if (inet_pton(AF_INET, ip, h->addr) == 1)
        return 0;
    if (inet_pton(AF_INET6, ip, h->addr) == 1) {
        h->v6 = 1;
        return 0;
    }
    return FERRY_ECONFIG;
}

static void store_free(store_t *st)
{
    commitlog_unload(st);
    index_close(st->index);
    qtable_free(st);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    pthread_rwlock_destroy(&st->segs_lock);
    pthread_rwlock_destroy(&st->qt_lock);
    pthread_mutex_destroy(&st->put_lock);
    pthread_mutex_destroy(&st->alloc_mu);
    pthread_cond_destroy(&st->alloc_cv);
    pthread_mutex_destroy(&st->flush_mu);
    pthread_cond_destroy(&st->flush_cv);
    pthread_mutex_destroy(&st->disp_mu);
    pthread_cond_destroy(&st->disp_cv);
    pthread_mutex_destroy(&st->svc_mu);
    pthread_cond_destroy(&st->svc_cv);
    ferry_free(st);
}

/* Histogram bounds (docs/METRICS.md): flush latency in us (so the int64 sum cannot wrap in
 * practice; see send_us_bounds in broker/metrics.c), bytes and records per flush. */
static const int64_t flush_us_bounds[] = {50,     100,     250,     500,    1000,   2500,
                                          5000,   10000,   25000,   50000,  100000, 250000,
                                          500000, 1000000, 2500000, 5000000};
static const int64_t flush_bytes_bounds[] = {512,     4096,    16384,    65536,    262144,
                                             1048576, 4194304, 16777216, 67108864, 268435456};
static const int64_t flush_msgs_bounds[] = {1,   2,   4,   8,    16,   32,   64,
                                            128, 256, 512, 1024, 4096, 16384};

#define NBOUNDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

int store_open(const struct store_config *cfg, store_t **out, char *err, size_t errlen)
{
    store_t *st = ferry_calloc(1, sizeof *st);
    atomic_init(&st->repl_limit, -1);
    prom_hist_init(&st->flush_us, flush_us_bounds, NBOUNDS(flush_us_bounds));
    prom_hist_init(&st->flush_bytes, flush_bytes_bounds, NBOUNDS(flush_bytes_bounds));
    prom_hist_init(&st->flush_msgs, flush_msgs_bounds, NBOUNDS(flush_msgs_bounds));
    int rc = 0;
    st->cfg = *cfg;
    st->lock_fd = -1;
    st->sync = cfg->flushDiskType == SYNC_FLUSH;
    st->seg_size = cfg->mappedFileSizeCommitLog;
    st->cfg.mappedFileSizeConsumeQueue =
        (cfg->mappedFileSizeConsumeQueue + CQ_UNIT - 1) / CQ_UNIT * CQ_UNIT;
    pthread_rwlock_init(&st->segs_lock, NULL);
    pthread_rwlock_init(&st->qt_lock, NULL);
    pthread_mutex_init(&st->put_lock, NULL);
    pthread_mutex_init(&st->alloc_mu, NULL);
    pthread_cond_init(&st->alloc_cv, NULL);
    pthread_mutex_init(&st->flush_mu, NULL);
    pthread_cond_init(&st->flush_cv, NULL);
    pthread_mutex_init(&st->disp_mu, NULL);
    pthread_cond_init(&st->disp_cv, NULL);
    pthread_mutex_init(&st->svc_mu, NULL);
    pthread_cond_init(&st->svc_cv, NULL);
    st->wait_head.next = st->wait_head.prev = &st->wait_head;

    const char *root = cfg->storePathRootDir;
    if (cfg->storePathCommitLog[0])
        snprintf(st->cl_dir, sizeof st->cl_dir, "%s", cfg->storePathCommitLog);
    else
        snprintf(st->cl_dir, sizeof st->cl_dir, "%s/commitlog", root);
    snprintf(st->cq_dir, sizeof st->cq_dir, "%s/consumequeue", root);
    snprintf(st->index_dir, sizeof st->index_dir, "%s/index", root);
    snprintf(st->ckpt_path, sizeof st->ckpt_path, "%s/checkpoint", root);
    snprintf(st->abort_path, sizeof st->abort_path, "%s/abort", root);
    snprintf(st->qtable_path, sizeof st->qtable_path, "%s/queues", root);

    if (cfg->maxMessageSize + 65536 + MSG_BLANK_LEN > st->seg_size) {
        snprintf(err, errlen, "maxMessageSize=%d does not fit in mappedFileSizeCommitLog=%" PRId64,
                 cfg->maxMessageSize, st->seg_size);
        rc = FERRY_ECONFIG;
        goto fail;
    }
    if (parse_host(cfg->storeHost, &st->store_host) != 0) {
        snprintf(err, errlen, "storeHost=%s: expected ip:port", cfg->storeHost);
        rc = FERRY_ECONFIG;
        goto fail;
    }
    if ((rc = fs_mkdirs(root)) != 0 || (rc = fs_mkdirs(st->cq_dir)) != 0) {
        snprintf(err, errlen, "create %s: %s", root, ferry_strerror(rc));
        goto fail;
    }
    char lock_path[FERRY_PATH_MAX];
    snprintf(lock_path, sizeof lock_path, "%s/lock", root);
    st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = st->lock_fd < 0 ? -errno : FERRY_ELOCKED;
        snprintf(err, errlen, "%s: %s", lock_path, ferry_strerror(rc));
        goto fail;
    }
    if ((rc = commitlog_load(st, err, errlen)) != 0)
        goto fail;
    if (cfg->messageIndexEnable &&
        (rc = index_open(st->index_dir, cfg->maxHashSlotNum, cfg->maxIndexNum, &st->index)) != 0) {
        snprintf(err, errlen, "open index %s: %s", st->index_dir, ferry_strerror(rc));
        goto fail;
    }
    if ((rc = recovery_run(st, err, errlen)) != 0)
        goto fail;
    /* A full file system must not keep the store from opening (reads go on, and space may
     * come back): what recovery kept is synced already, the previous checkpoint stays valid
     * (the next start scans from there), and an empty abort file needs no data block. */
    if ((rc = write_checkpoint(st)) != 0) {
        if (rc != -ENOSPC && rc != -EDQUOT) {
            snprintf(err, errlen, "write checkpoint: %s", ferry_strerror(rc));
            goto fail;
        }
        log_warn(LOG_STORE, "the file system is full: checkpoint not rewritten at open");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if ((rc = fs_replace(st->abort_path, pid, (size_t)n)) == -ENOSPC || rc == -EDQUOT) {
        int fd = open(st->abort_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        rc = fd < 0 ? -errno : (close(fd), fs_fsync_dir(root));
    }
    if (rc != 0) {
        snprintf(err, errlen, "create %s: %s", st->abort_path, ferry_strerror(rc));
        goto fail;
    }
    st->last_cq_flush_ms = st->last_cq_thorough_ms = st->last_clean_ms = clock_mono_ms();
    expiry_check_disk(st);
    if ((rc = commitlog_start(st)) != 0 || (rc = dispatch_start(st)) != 0 ||
        (rc = pthread_create(&st->service_thread, NULL, service_main, st) ? -rc : 0) != 0) {
        snprintf(err, errlen, "start store threads: %s", ferry_strerror(rc));
        atomic_store(&st->stopping, 1);
        goto fail; /* unreachable in practice; threads started so far are leaked */
    }
    st->threads_started = 1;
    *out = st;
    return 0;
fail:
    store_free(st);
    return rc;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    atomic_store(&st->stopping, 1);
    /* Wait for appends in flight: they hold put_lock. */
    pthread_mutex_lock(&st->put_lock);
    pthread_mutex_unlock(&st->put_lock);
    commitlog_stop(st);
    dispatch_stop(st);
    pthread_mutex_lock(&st->svc_mu);
    pthread_cond_broadcast(&st->svc_cv);
    pthread_mutex_unlock(&st->svc_mu);
    pthread_join(st->service_thread, NULL);
    int clean = !atomic_load(&st->fenced) && atomic_load(&st->dispatched) == commitlog_confirm(st);
    if (write_checkpoint(st) != 0)
        clean = 0;
    if (clean) {
        unlink(st->abort_path);
        fs_fsync_dir(st->cfg.storePathRootDir);
        log_info(LOG_STORE, "store closed cleanly at CommitLog offset %" PRId64,
                 atomic_load(&st->max_phys));
    } else {
        log_warn(LOG_STORE, "store closed after an error; the next open recovers");
    }
    store_free(st);
}

/* ---- appends -------------------------------------------------------------------------- */

int store_put(store_t *st, const struct store_msg *msgs, int n, struct put_result *res)
{
    if (n <= 0)
        return FERRY_EINVAL;
    if (!st->sync)
        return commitlog_put(st, msgs, n, res, NULL);
    struct waiter w = {0};
    w.deadline_ms = clock_mono_ms() + st->cfg.syncFlushTimeout;
    sem_init(&w.sem, 0, 0);
    int rc = commitlog_put(st, msgs, n, res, &w);
    if (rc) {
        sem_destroy(&w.sem);
        return rc;
    }
    return commitlog_wait(st, &w);
}

int store_put_async(store_t *st, const struct store_msg *msgs, int n, struct put_result *res,
                    store_put_cb cb, void *arg)
{
    if (n <= 0 || !cb)
        return FERRY_EINVAL;
    if (!st->sync)
        return commitlog_put(st, msgs, n, res, NULL);
    struct waiter *w = ferry_calloc(1, sizeof *w);
    w->deadline_ms = clock_mono_ms() + st->cfg.syncFlushTimeout;
    w->cb = cb;
    w->arg = arg;
    int rc = commitlog_put(st, msgs, n, res, w);
    if (rc) {
        ferry_free(w);
        return rc;
    }
    return 1;
}

int store_put_multi_async(store_t *st, const struct store_msg *msgs, int n, int *rcs,
                          struct put_result *res, store_put_cb cb, void *arg)
{
    if (n <= 0 || !cb || !rcs || !res || !msgs)
        return FERRY_EINVAL;
    if (!st->sync) {
        commitlog_put_multi(st, msgs, n, rcs, res, NULL);
        return 0;
    }
    struct waiter *w = ferry_calloc(1, sizeof *w);
    w->deadline_ms = clock_mono_ms() + st->cfg.syncFlushTimeout;
    w->cb = cb;
    w->arg = arg;
    if (commitlog_put_multi(st, msgs, n, rcs, res, w) <= 0) {
        ferry_free(w);
        return 0;
    }
    return 1;
}

/* ---- reads ---------------------------------------------------------------------------- */

void store_release(struct store_slice *slices, int n)
{
    for (int i = 0; i < n; i++) {
        mfile_unref(slices[i].ref);
        slices[i].ref = NULL;
    }
}

/* Map the record at @phys of @size bytes (0: any) into @out, parsed into @v. */
static int load_record(store_t *st, int64_t phys, int32_t size, struct store_slice *out,
                       struct msg_view *v)
{
    if (phys < atomic_load(&st->min_phys) || phys >= commitlog_confirm(st))
        return FERRY_ENOTFOUND;
    struct mfile *mf = commitlog_seg_ref(st, phys);
    if (!mf)
        return FERRY_ENOTFOUND;
    int64_t off = phys - mf->start;
    int rc = msg_parse(mf->base + off, (size_t)(mf->size - off), v);
    if (rc == 0 && (v->phys_offset != phys || (size && (int32_t)v->total_size != size)))
        rc = FERRY_ECORRUPT;
    if (rc) {
        mfile_unref(mf);
        return rc == FERRY_ENOTFOUND ? FERRY_ECORRUPT : rc;
    }
    out->data = mf->base + off;
    out->len = v->total_size;
    out->phys_offset = phys;
    out->queue_offset = v->queue_offset;
    out->ref = mf;
    return 0;
}

static int tag_ok(const struct get_request *req, int64_t code)
{
    if (!req->tags)
        return 1;
    for (int i = 0; i < req->n_tags; i++)
        if (req->tags[i] == code)
            return 1;
    return 0;
}

#define GET_BATCH       32
#define GET_MAX_SCANNED 16000

int store_get(store_t *st, const struct get_request *req, struct get_result *res)
{
    res->n = 0;
    res->min_offset = res->max_offset = 0;
    struct qstate *qs =
        req->topic ? store_queue(st, req->topic, strlen(req->topic), req->queue_id, 0) : NULL;
    if (!qs) {
        res->status = GET_NO_MATCHED_LOGIC_QUEUE;
        res->next_offset = 0;
        return 0;
    }
    int64_t min = cq_min_index(qs->cq), max = cq_max_index(qs->cq);
    res->min_offset = min;
    res->max_offset = max;
    int64_t off = req->offset;
    if (off >= max && atomic_load(&qs->repairing)) {
        /* The queue is cut while it is rebuilt: its end is not known yet. */
        res->status = GET_NO_MATCHED_MESSAGE;
        res->next_offset = off;
        return FERRY_ECORRUPT;
    }
    if (max == min) {
        res->status = GET_NO_MESSAGE_IN_QUEUE;
        res->next_offset = max;
        return 0;
    }
    if (off < min) {
        res->status = GET_OFFSET_TOO_SMALL;
        res->next_offset = min;
        return 0;
    }
    if (off == max) {
        res->status = GET_OFFSET_OVERFLOW_ONE;
        res->next_offset = off;
        return 0;
    }
    if (off > max) {
        res->status = GET_OFFSET_OVERFLOW_BADLY;
        res->next_offset = max;
        return 0;
    }
    int max_msgs = req->max_msgs < 1 ? 1 : req->max_msgs > 1024 ? 1024 : req->max_msgs;
    int64_t bytes = 0, scanned = 0;
    int rc = 0, removed = 0;
    struct cq_entry ents[GET_BATCH];
    while (res->n < max_msgs && off < max && scanned < GET_MAX_SCANNED && rc == 0) {
        int got = cq_read(qs->cq, off, GET_BATCH, ents);
        if (got == 0)
            break;
        for (int i = 0; i < got && res->n < max_msgs; i++, off++, scanned++) {
            const struct cq_entry *e = &ents[i];
            if (cq_entry_is_hole(e))
                continue; /* a filler, or a record lost to damage */
            if (!tag_ok(req, e->tags_code))
                continue;
            if (res->n > 0 && bytes + e->size > req->max_bytes)
                goto done;
            struct store_slice *s = &res->msgs[res->n];
            struct msg_view v;
            int lr = load_record(st, e->phys, e->size, s, &v);
            if (lr == FERRY_ENOTFOUND && e->phys < atomic_load(&st->min_phys)) {
                removed = 1;
                continue;
            }
            if (lr == 0 &&
                (v.queue_offset != off || v.queue_id != qs->qid || v.topic_len != qs->topic_len ||
                 memcmp(v.topic, qs->topic, qs->topic_len) != 0)) {
                mfile_unref(s->ref);
                lr = FERRY_ECORRUPT;
            }
            if (lr) {
                log_error(LOG_STORE,
                          "consumequeue %s/%d entry %" PRId64 " does not match the "
                          "CommitLog at %" PRId64 "; queue scheduled for rebuild",
                          qs->topic, qs->qid, off, e->phys);
                dispatch_request_rebuild(st, qs, off);
                rc = FERRY_ECORRUPT;
                goto done;
            }
            /* Never serve a damaged record (bit rot in a segment recovery did not scan): it
             * is left out, as the queue entry matched, and the read goes on after it. */
            if (msg_verify(&v, st->cfg.enabledAppendPropCRC) != 0) {
                log_error(LOG_STORE,
                          "consumequeue %s/%d entry %" PRId64 ": the record at CommitLog offset "
                          "%" PRId64 " fails its CRC; not served",
                          qs->topic, qs->qid, off, e->phys);
                mfile_unref(s->ref);
                s->ref = NULL;
                continue;
            }
            bytes += e->size;
            res->n++;
        }
    }
done:
    res->next_offset = off;
    if (res->n > 0)
        res->status = GET_FOUND;
    else if (removed)
        res->status = GET_MESSAGE_WAS_REMOVING;
    else
        res->status = GET_NO_MATCHED_MESSAGE;
    return res->n > 0 ? 0 : rc;
}

int store_read_at(store_t *st, int64_t phys, struct store_slice *out)
{
    struct msg_view v;
    int rc = load_record(st, phys, 0, out, &v);
    if (rc)
        return rc;
    if (msg_verify(&v, 0) != 0) {
        log_error(LOG_STORE, "record at CommitLog offset %" PRId64 " fails its CRC", phys);
        mfile_unref(out->ref);
        out->ref = NULL;
        return FERRY_ECORRUPT;
    }
    return 0;
}

static int has_key(const struct msg_view *v, const char *key, size_t klen)
{
    size_t len;
    const char *u = msg_prop_get(v->props, v->props_len, "UNIQ_KEY", &len);
    if (u && len == klen && memcmp(u, key, klen) == 0)
        return 1;
    const char *keys = msg_prop_get(v->props, v->props_len, "KEYS", &len);
    for (size_t i = 0; keys && i < len;) {
        size_t j = i;
        while (j < len && keys[j] != ' ')
            j++;
        if (j - i == klen && memcmp(keys + i, key, klen) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

int store_query_by_key(store_t *st, const char *topic, const char *key, int64_t begin_ts,
                       int64_t end_ts, struct store_slice *out, int cap)
{
    if (!st->index || cap <= 0)
        return 0;
    int64_t phys[64];
    size_t klen = strlen(key), tlen = strlen(topic);
    int n = index_query(st->index, topic, key, klen, begin_ts, end_ts, 64, phys);
    int got = 0;
    for (int i = 0; i < n && got < cap; i++) {
        struct msg_view v;
        if (load_record(st, phys[i], 0, &out[got], &v) != 0)
            continue;
        if (v.topic_len == tlen && memcmp(v.topic, topic, tlen) == 0 && has_key(&v, key, klen) &&
            msg_verify(&v, 0) == 0)
            got++;
        else
            mfile_unref(out[got].ref);
    }
    return got;
}

int64_t store_min_offset(store_t *st, const char *topic, int32_t qid)
{
    struct qstate *qs = store_queue(st, topic, strlen(topic), qid, 0);
    return qs ? cq_min_index(qs->cq) : 0;
}

int64_t store_max_offset(store_t *st, const char *topic, int32_t qid)
{
    struct qstate *qs = store_queue(st, topic, strlen(topic), qid, 0);
    return qs ? cq_max_index(qs->cq) : 0;
}

static int64_t time_of(store_t *st, struct qstate *qs, int64_t index)
{
    struct cq_entry e;
    if (cq_read(qs->cq, index, 1, &e) != 1)
        return -1;
    struct store_slice s;
    struct msg_view v;
    if (load_record(st, e.phys, e.size, &s, &v) != 0)
        return -1;
    mfile_unref(s.ref);
    return v.store_ts;
}

int64_t store_time_at(store_t *st, const char *topic, int32_t qid, int64_t offset)
{
    struct qstate *qs = store_queue(st, topic, strlen(topic), qid, 0);
    return qs ? time_of(st, qs, offset) : -1;
}

int64_t store_offset_by_time(store_t *st, const char *topic, int32_t qid, int64_t ts)
{
    struct qstate *qs = store_queue(st, topic, strlen(topic), qid, 0);
    if (!qs)
        return 0;
    int64_t lo = cq_min_index(qs->cq), hi = cq_max_index(qs->cq);
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t t = time_of(st, qs, mid);
        if (t >= 0 && t < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void cut_queue(struct qstate *qs, void *arg)
{
    int64_t end = *(int64_t *)arg;
    int64_t idx = cq_max_index(qs->cq), min = cq_min_index(qs->cq);
    struct cq_entry e;
    while (idx > min && cq_read(qs->cq, idx - 1, 1, &e) == 1 && cq_entry_end(&e) > end)
        idx--;
    if (idx < cq_max_index(qs->cq)) {
        log_warn(LOG_STORE,
                 "consumequeue %s/%d cut at entry %" PRId64 " (CommitLog cut at %" PRId64 ")",
                 qs->topic, qs->qid, idx, end);
        cq_truncate(qs->cq, idx);
    }
    qs->next_offset = cq_max_index(qs->cq);
}

int store_truncate_replica(store_t *st, int64_t end)
{
    if (end < atomic_load(&st->min_phys) || end > atomic_load(&st->max_phys) ||
        store_record_start_before(st, end) < 0)
        return FERRY_EINVAL;
    pthread_mutex_lock(&st->put_lock);
    /* Let dispatch finish what it has, then lower the ends so that it stays idle while the
     * queues and the index are cut (it is their only other writer). */
    int rc = store_wait_dispatched(st, 30000);
    int64_t old = atomic_load(&st->max_phys);
    if (rc == 0)
        rc = commitlog_truncate(st, end);
    if (rc == 0) {
        store_foreach_queue(st, cut_queue, &end);
        if (st->index)
            rc = index_truncate_after(st->index, end, 0);
        if (atomic_load(&st->dispatched) > end)
            atomic_store(&st->dispatched, end);
    }
    if (rc == 0)
        rc = write_checkpoint(st);
    pthread_mutex_unlock(&st->put_lock);
    if (rc)
        commitlog_fence(st, rc, "CommitLog truncation");
    else
        log_warn(LOG_STORE, "CommitLog truncated from %" PRId64 " to %" PRId64, old, end);
    return rc;
}

void store_set_repl_limit(store_t *st, int64_t limit)
{
    int64_t cur = atomic_load(&st->repl_limit);
    while (limit < 0 || cur < 0 || limit > cur) {
        if (cur < 0 && limit < 0)
            return;
        if (atomic_compare_exchange_weak(&st->repl_limit, &cur, limit)) {
            dispatch_kick(st);
            return;
        }
    }
}

static void take_next_offset(struct qstate *qs, void *arg)
{
    (void)arg;
    qs->next_offset = cq_max_index(qs->cq);
}

int store_promote(store_t *st, int timeout_ms)
{
    pthread_mutex_lock(&st->put_lock);
    int64_t deadline = clock_mono_ms() + timeout_ms, end = atomic_load(&st->max_phys);
    int rc = 0;
    while (atomic_load(&st->dispatched) < end) {
        if (clock_mono_ms() > deadline) {
            rc = FERRY_ETIMEDOUT;
            break;
        }
        dispatch_kick(st);
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    if (rc == 0)
        store_foreach_queue(st, take_next_offset, NULL);
    pthread_mutex_unlock(&st->put_lock);
    return rc;
}

int64_t store_min_phys(store_t *st)
{
    return atomic_load(&st->min_phys);
}

int64_t store_max_phys(store_t *st)
{
    return atomic_load(&st->max_phys);
}

int64_t store_confirm_phys(store_t *st)
{
    return commitlog_confirm(st);
}

int64_t store_flushed_phys(store_t *st)
{
    return atomic_load(&st->flushed);
}

int64_t store_dispatch_phys(store_t *st)
{
    return atomic_load(&st->dispatched);
}

void store_set_arrive_cb(store_t *st, store_arrive_cb cb, void *arg)
{
    pthread_mutex_lock(&st->disp_mu);
    st->arrive_cb = cb;
    st->arrive_arg = arg;
    pthread_mutex_unlock(&st->disp_mu);
}

int store_write_state(store_t *st)
{
    if (atomic_load(&st->fenced))
        return FERRY_EFENCED;
    if (atomic_load(&st->disk_full))
        return FERRY_EDISKFULL;
    /* Under diskSpaceWarningLevelRatio the disk can still be too full for the next segment;
     * every append that needs it is refused with FERRY_EDISKFULL (commitlog_put). */
    pthread_mutex_lock(&st->alloc_mu);
    int alloc_err = st->alloc_err;
    pthread_mutex_unlock(&st->alloc_mu);
    if (alloc_err == -ENOSPC || alloc_err == -EDQUOT)
        return FERRY_EDISKFULL;
    return 0;
}

int store_clean_expired_now(store_t *st)
{
    return expiry_run(st, 1);
}

int64_t store_recovery_ms(store_t *st, int *abnormal)
{
    if (abnormal)
        *abnormal = st->abnormal;
    return st->recovery_ms;
}

int store_wait_dispatched(store_t *st, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (atomic_load(&st->dispatched) < dispatch_target(st)) {
        if (clock_mono_ms() > deadline)
            return FERRY_ETIMEDOUT;
        dispatch_kick(st);
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    return 0;
}

/* ---- metrics -------------------------------------------------------------------------- */

void store_metrics(store_t *st, struct store_metrics *out)
{
    memset(out, 0, sizeof *out);
    out->sync_flush = st->sync;
    out->min_phys = atomic_load(&st->min_phys);
    out->max_phys = atomic_load(&st->max_phys);
    out->confirm_phys = commitlog_confirm(st);
    out->flushed_phys = atomic_load(&st->flushed);
    out->dispatched_phys = atomic_load(&st->dispatched);
    out->commit_waiters = atomic_load_explicit(&st->commit_waiters, memory_order_relaxed);
    out->appended = atomic_load_explicit(&st->appended, memory_order_relaxed);
    pthread_rwlock_rdlock(&st->segs_lock);
    out->segments = st->nsegs;
    pthread_rwlock_unlock(&st->segs_lock);
    out->segment_bytes = (int64_t)out->segments * st->seg_size;
    pthread_rwlock_rdlock(&st->qt_lock);
    out->queues = (int)st->qt_count;
    pthread_rwlock_unlock(&st->qt_lock);
    out->disk_total = atomic_load_explicit(&st->disk_total, memory_order_relaxed);
    out->disk_free = atomic_load_explicit(&st->disk_free, memory_order_relaxed);
    out->disk_warning_ratio = st->cfg.diskSpaceWarningLevelRatio;
    out->write_state = store_write_state(st);
    prom_hist_read(&st->flush_us, &out->flush_us);
    prom_hist_read(&st->flush_bytes, &out->flush_bytes);
    prom_hist_read(&st->flush_msgs, &out->flush_msgs);
}

void store_queue_offsets(store_t *st,
                         void (*fn)(void *arg, const char *topic, int32_t qid, int64_t min,
                                    int64_t max),
                         void *arg)
{
    pthread_rwlock_rdlock(&st->qt_lock);
    for (uint32_t i = 0; i < st->qt_size; i++)
        for (struct qstate *qs = st->qt[i]; qs; qs = qs->next)
            fn(arg, qs->topic, qs->qid, cq_min_index(qs->cq), cq_max_index(qs->cq));
    pthread_rwlock_unlock(&st->qt_lock);
}
