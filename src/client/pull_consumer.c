/* The lite pull consumer (Java 4.9.8 DefaultLitePullConsumer in assign mode): the application
 * assigns queues and polls; the core pulls each assigned queue in the background into its
 * process queue (at most pullThresholdForQueue messages), poll() hands them out in queue order,
 * seek() moves a queue's position, commit() writes the positions as consumer offsets. */
#include "client/consumer_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ferry_pull_consumer {
    struct consumer c; /* first */
    struct ferry_message_ext *out;
    size_t out_cap;
    struct msg_batch **held; /* batches the last poll's messages point into */
    size_t nheld, held_cap;
    int rr;
    int shut;
};

static void on_messages(struct consumer *c, struct pqueue *q, struct msg_batch *b)
{
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->lite_cond);
    pthread_mutex_unlock(&c->lock);
}

static int pull_paused(struct consumer *c, struct pqueue *q)
{
    return procq_count(&q->pq) >= (size_t)c->cfg.pullThresholdForQueue;
}

static const struct consumer_ops lite_ops = {
    .on_messages = on_messages,
    .rebalance = NULL,
    .pull_paused = pull_paused,
};

int ferry_pull_consumer_new(const struct ferry_consumer_config *cfg, ferry_pull_consumer_t **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    struct ferry_pull_consumer *p = ferry_calloc(1, sizeof *p);
    int rc = consumer_init(&p->c, cfg, CONSUMER_LITE, &lite_ops);
    if (rc) {
        ferry_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int ferry_pull_consumer_start(ferry_pull_consumer_t *p)
{
    if (!p)
        return FERRY_EINVAL;
    return p->shut ? FERRY_ESHUTDOWN : consumer_start(&p->c);
}

static int usable(ferry_pull_consumer_t *p)
{
    pthread_mutex_lock(&p->c.lock);
    int ok = p->c.started && !p->c.stopping;
    pthread_mutex_unlock(&p->c.lock);
    return ok;
}

int ferry_pull_consumer_fetch_queues(ferry_pull_consumer_t *p, const char *topic,
                                     struct ferry_mq **out, size_t *n)
{
    struct route r;
    if (!p || !topic || !out || !n || strlen(topic) >= sizeof(*out)->topic)
        return FERRY_EINVAL;
    *out = NULL;
    *n = 0;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    int rc = route_cache_fetch(&p->c.rc, topic, 3000, &r);
    if (rc)
        return rc;
    struct ferry_mq *v = calloc((size_t)r.nrmq + 1, sizeof *v);
    if (!v) {
        route_clear(&r);
        return -ENOMEM;
    }
    for (int i = 0; i < r.nrmq; i++) {
        snprintf(v[i].topic, sizeof v[i].topic, "%s", topic);
        snprintf(v[i].broker, sizeof v[i].broker, "%s", r.rmqs[i].broker);
        v[i].queue_id = r.rmqs[i].qid;
    }
    *n = (size_t)r.nrmq;
    *out = v;
    route_clear(&r);
    return 0;
}

static struct pqueue *find_ref(ferry_pull_consumer_t *p, const struct ferry_mq *mq)
{
    pthread_mutex_lock(&p->c.lock);
    struct pqueue *q = consumer_find_queue(&p->c, mq);
    if (q)
        pqueue_ref(q);
    pthread_mutex_unlock(&p->c.lock);
    return q;
}

int ferry_pull_consumer_assign(ferry_pull_consumer_t *p, const struct ferry_mq *mqs, size_t n)
{
    struct consumer *c = &p->c;
    if (!p || (n && !mqs))
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    /* drop the queues not in the new set */
    pthread_mutex_lock(&c->lock);
    int ngone = 0;
    struct pqueue **gone = ferry_calloc((size_t)c->nqs + 1, sizeof *gone);
    for (int i = 0; i < c->nqs; i++) {
        int keep = 0;
        for (size_t k = 0; k < n && !keep; k++)
            keep = c->qs[i]->mq.queue_id == mqs[k].queue_id &&
                   strcmp(c->qs[i]->mq.broker, mqs[k].broker) == 0 &&
                   strcmp(c->qs[i]->mq.topic, mqs[k].topic) == 0;
        if (!keep) {
            pqueue_ref(c->qs[i]);
            gone[ngone++] = c->qs[i];
        }
    }
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < ngone; i++) {
        consumer_remove_queue(c, gone[i], 0);
        pqueue_unref(gone[i]);
    }
    ferry_free(gone);
    for (size_t k = 0; k < n; k++) {
        struct pqueue *q = find_ref(p, &mqs[k]);
        if (q) {
            pqueue_unref(q);
            continue;
        }
        int64_t off;
        int rc = consumer_start_offset(c, &mqs[k], &off);
        if (rc)
            return rc;
        consumer_add_queue(c, &mqs[k], off, 0);
    }
    return 0;
}

int ferry_pull_consumer_seek(ferry_pull_consumer_t *p, const struct ferry_mq *mq, int64_t offset)
{
    if (!p || !mq || offset < 0)
        return FERRY_EINVAL;
    struct pqueue *q = find_ref(p, mq);
    if (!q)
        return FERRY_EINVAL;
    pthread_mutex_lock(&q->lock);
    q->gen++;
    procq_destroy(&q->pq);
    q->next_offset = q->lite_pos = offset;
    q->pull_busy = 1; /* a pull in flight (maybe held for long polling) is left to expire */
    pthread_mutex_unlock(&q->lock);
    consumer_pull_later(&p->c, q, 0);
    pqueue_unref(q);
    return 0;
}

int ferry_pull_consumer_seek_to_begin(ferry_pull_consumer_t *p, const struct ferry_mq *mq)
{
    int64_t off;
    if (!p || !mq)
        return FERRY_EINVAL;
    int rc = consumer_queue_offset(&p->c, mq, 0, 0, &off);
    return rc ? rc : ferry_pull_consumer_seek(p, mq, off);
}

int ferry_pull_consumer_seek_to_end(ferry_pull_consumer_t *p, const struct ferry_mq *mq)
{
    int64_t off;
    if (!p || !mq)
        return FERRY_EINVAL;
    int rc = consumer_queue_offset(&p->c, mq, 1, 0, &off);
    return rc ? rc : ferry_pull_consumer_seek(p, mq, off);
}

int ferry_pull_consumer_offset_for_timestamp(ferry_pull_consumer_t *p, const struct ferry_mq *mq,
                                             int64_t timestamp_ms, int64_t *offset)
{
    if (!p || !mq || !offset)
        return FERRY_EINVAL;
    return consumer_queue_offset(&p->c, mq, 2, timestamp_ms, offset);
}

int ferry_pull_consumer_committed(ferry_pull_consumer_t *p, const struct ferry_mq *mq,
                                  int64_t *offset)
{
    if (!p || !mq || !offset)
        return FERRY_EINVAL;
    return consumer_read_offset(&p->c, mq, offset);
}

static void release_held(ferry_pull_consumer_t *p)
{
    for (size_t i = 0; i < p->nheld; i++)
        msgdec_unref(p->held[i], 1);
    p->nheld = 0;
}

/* Report every queue's position to the offset store. */
static void positions_to_store(ferry_pull_consumer_t *p)
{
    struct consumer *c = &p->c;
    pthread_mutex_lock(&c->lock);
    int n = c->nqs;
    struct ferry_mq *mqs = ferry_calloc((size_t)n + 1, sizeof *mqs);
    int64_t *pos = ferry_calloc((size_t)n + 1, sizeof *pos);
    for (int i = 0; i < n; i++) {
        struct pqueue *q = c->qs[i];
        mqs[i] = q->mq;
        pthread_mutex_lock(&q->lock);
        pos[i] = q->lite_pos;
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < n; i++)
        consumer_update_offset(c, &mqs[i], pos[i], 1);
    ferry_free(mqs);
    ferry_free(pos);
}

int ferry_pull_consumer_poll(ferry_pull_consumer_t *p, int timeout_ms,
                             const struct ferry_message_ext **msgs, size_t *n)
{
    struct consumer *c = &p->c;
    if (!p || !msgs || !n || timeout_ms < 0)
        return FERRY_EINVAL;
    *msgs = NULL;
    *n = 0;
    release_held(p);
    size_t max = (size_t)c->cfg.pullBatchSize, got = 0;
    if (p->out_cap < max) {
        p->out = ferry_realloc(p->out, max * sizeof *p->out);
        p->out_cap = max;
    }
    struct timespec deadline = clock_deadline_ts(timeout_ms);
    struct pq_entry **ents = ferry_calloc(max, sizeof *ents);
    if (c->cfg.autoCommit) /* polling again: what the last poll returned is consumed */
        positions_to_store(p);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (!c->started || c->stopping) {
            pthread_mutex_unlock(&c->lock);
            ferry_free(ents);
            return FERRY_ESHUTDOWN;
        }
        for (int i = 0; i < c->nqs && got < max; i++) {
            struct pqueue *q = c->qs[(p->rr + i) % c->nqs];
            pthread_mutex_lock(&q->lock);
            size_t k = procq_take(&q->pq, max - got, ents);
            for (size_t j = 0; j < k; j++) {
                p->out[got + j] = *ents[j]->m;
                struct msg_batch *b = ents[j]->b;
                if (!p->nheld || p->held[p->nheld - 1] != b) {
                    if (p->nheld == p->held_cap) {
                        p->held_cap = p->held_cap ? p->held_cap * 2 : 16;
                        p->held = ferry_realloc(p->held, p->held_cap * sizeof *p->held);
                    }
                    msgdec_ref(b, 1);
                    p->held[p->nheld++] = b;
                }
            }
            for (size_t j = 0; j < k; j++)
                procq_done(&q->pq, p->out[got + j].queue_offset);
            got += k;
            if (k) {
                int64_t pos = procq_commit_offset(&q->pq);
                q->lite_pos = procq_count(&q->pq) ? pos : q->next_offset;
            }
            int resume = k && !q->pull_busy;
            if (resume)
                q->pull_busy = 1;
            pthread_mutex_unlock(&q->lock);
            if (resume) { /* it was paused by flow control */
                pthread_mutex_unlock(&c->lock);
                consumer_pull_later(c, q, 0);
                pthread_mutex_lock(&c->lock);
            }
        }
        if (c->nqs)
            p->rr = (p->rr + 1) % c->nqs;
        if (got)
            break;
        if (pthread_cond_timedwait(&c->lite_cond, &c->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&c->lock);
    ferry_free(ents);
    *msgs = p->out;
    *n = got;
    return 0;
}

int ferry_pull_consumer_commit(ferry_pull_consumer_t *p)
{
    if (!p)
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    positions_to_store(p);
    return consumer_persist_offsets(&p->c);
}

void ferry_pull_consumer_shutdown(ferry_pull_consumer_t *p)
{
    if (!p || p->shut)
        return;
    p->shut = 1;
    pthread_mutex_lock(&p->c.lock);
    int started = p->c.started;
    pthread_mutex_unlock(&p->c.lock);
    if (started && p->c.cfg.autoCommit)
        positions_to_store(p);
    consumer_stop(&p->c);
    consumer_finish(&p->c);
}

void ferry_pull_consumer_free(ferry_pull_consumer_t *p)
{
    if (!p)
        return;
    ferry_pull_consumer_shutdown(p);
    release_held(p);
    consumer_destroy(&p->c);
    ferry_free(p->held);
    ferry_free(p->out);
    ferry_free(p);
}
