/* The push consumer (Java 4.9.8 DefaultMQPushConsumerImpl, RebalancePushImpl,
 * ConsumeMessageConcurrentlyService, ConsumeMessageOrderlyService): rebalancing of the
 * group's queues, a pool of listener threads, concurrent and orderly consumption, send-back of
 * failed messages, broker-side queue locks for orderly consumption. Pulling, offsets and the
 * service thread are the core's (consumer.c). */
#include "client/consumer_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPC_TIMEOUT_MS       3000
#define LOCAL_RETRY_MS       5000  /* a message the broker did not take back */
#define LOCK_EXPIRE_MS       30000 /* REBALANCE_LOCK_MAX_LIVE_TIME */
#define ORDERLY_SLICE_MS     60000 /* MAX_TIME_CONSUME_CONTINUOUSLY */
#define ORDERLY_DROP_WAIT_MS 1000
#define RETRY_PREFIX         "%RETRY%"

struct ferry_push_consumer {
    struct consumer c; /* first: the core's callbacks get &p->c */
    ferry_listener fn;
    void *arg;
    pthread_mutex_t plock; /* the pool: everything below */
    pthread_cond_t pcond;
    struct task *head, *tail; /* ready */
    struct task *delayed;     /* local retries and suspended orderly queues */
    pthread_t *threads;
    int nthreads, idle;
    atomic_int pool_stop;
    int shut;
};

static struct ferry_push_consumer *of(struct consumer *c)
{
    return (struct ferry_push_consumer *)c;
}

/* ---- the pool ---- */

static void task_release(struct task *t)
{
    struct pqueue *q = t->q;
    if (t->b) {
        msgdec_unref(t->b, 1);
        pqueue_unref(q);
    } else { /* orderly: the queue's own task */
        pthread_mutex_lock(&q->lock);
        q->consuming = 0;
        pthread_mutex_unlock(&q->lock);
        pqueue_unref(q);
    }
}

static void *worker_main(void *arg);

/* Queue @t (due now or at t->due). Releases it when the pool is stopping. */
static void submit(struct ferry_push_consumer *p, struct task *t, int delayed)
{
    pthread_mutex_lock(&p->plock);
    if (p->pool_stop) {
        pthread_mutex_unlock(&p->plock);
        task_release(t);
        return;
    }
    t->next = NULL;
    if (delayed) {
        t->next = p->delayed;
        p->delayed = t;
    } else {
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        if (p->idle == 0 && p->nthreads < p->c.cfg.consumeThreadMax &&
            pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) == 0)
            p->nthreads++;
    }
    pthread_cond_signal(&p->pcond);
    pthread_mutex_unlock(&p->plock);
}

/* Queue the @n ready tasks @head..@tail with one lock and as few wake-ups as needed. */
static void submit_many(struct ferry_push_consumer *p, struct task *head, struct task *tail, int n)
{
    pthread_mutex_lock(&p->plock);
    if (p->pool_stop) {
        pthread_mutex_unlock(&p->plock);
        for (struct task *t = head, *next; t; t = next) {
            next = t->next;
            task_release(t);
        }
        return;
    }
    if (p->tail)
        p->tail->next = head;
    else
        p->head = head;
    p->tail = tail;
    if (p->idle < n && p->nthreads < p->c.cfg.consumeThreadMax &&
        pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) == 0)
        p->nthreads++;
    if (n >= p->idle)
        pthread_cond_broadcast(&p->pcond);
    else
        for (int i = 0; i < n; i++)
            pthread_cond_signal(&p->pcond);
    pthread_mutex_unlock(&p->plock);
}

static void submit_orderly(struct ferry_push_consumer *p, struct pqueue *q)
{
    pthread_mutex_lock(&q->lock);
    int go = !q->consuming && !q->dropped;
    if (go) {
        q->consuming = 1;
        memset(&q->otask, 0, sizeof q->otask);
        q->otask.q = q;
    }
    pthread_mutex_unlock(&q->lock);
    if (go) {
        pqueue_ref(q);
        submit(p, &q->otask, 0);
    }
}

static void on_messages(struct consumer *c, struct pqueue *q, struct msg_batch *b)
{
    struct ferry_push_consumer *p = of(c);
    if (c->cfg.orderly) {
        submit_orderly(p, q);
        return;
    }
    uint32_t step = (uint32_t)c->cfg.consumeMessageBatchMaxSize;
    struct task *head = NULL, *tail = NULL;
    int n = 0;
    for (uint32_t i = 0, k = 0; i < b->n; i += step, k++) {
        struct task *t = &b->tasks[k];
        memset(t, 0, sizeof *t);
        t->q = q;
        t->b = b;
        t->start = i;
        t->n = (uint32_t)(b->n - i < step ? b->n - i : step);
        if (tail)
            tail->next = t;
        else
            head = t;
        tail = t;
        n++;
    }
    if (!n)
        return;
    msgdec_ref(b, n);
    for (int i = 0; i < n; i++)
        pqueue_ref(q);
    submit_many(p, head, tail, n);
}

static int pull_paused(struct consumer *c, struct pqueue *q)
{
    if (procq_count(&q->pq) > (size_t)c->cfg.pullThresholdForQueue ||
        q->pq.bytes > (size_t)c->cfg.pullThresholdSizeForQueue * 1024 * 1024)
        return 1;
    if (!c->cfg.orderly && procq_span(&q->pq) > c->cfg.consumeConcurrentlyMaxSpan)
        return 1;
    return 0;
}

/* ---- concurrent consumption ---- */

/* CONSUMER_SEND_MSG_BACK: the broker stores @m in %RETRY%<group> for a later redelivery. */
static int send_back(struct consumer *c, const struct ferry_message_ext *m)
{
    struct rcmd req, *resp = NULL;
    rcmd_init_request(&req, REQ_CONSUMER_SEND_MSG_BACK);
    rcmd_ext_add_i64(&req, "offset", m->commitlog_offset);
    rcmd_ext_add(&req, "group", c->cfg.group);
    rcmd_ext_add_i64(&req, "delayLevel", 0);
    rcmd_ext_add(&req, "originMsgId", m->msg_id);
    rcmd_ext_add(&req, "originTopic", m->topic);
    rcmd_ext_add(&req, "unitMode", "false");
    rcmd_ext_add_i64(&req, "maxReconsumeTimes",
                     c->cfg.maxReconsumeTimes < 0 ? 16 : c->cfg.maxReconsumeTimes);
    int rc = consumer_invoke(c, m->broker_name, &req, RPC_TIMEOUT_MS, &resp);
    if (rc == 0) {
        if (resp->code != RESP_SUCCESS) {
            log_warn(LOG_CLIENT, "send back %s: code %d %.*s", m->msg_id, resp->code,
                     (int)resp->remark.len, resp->remark.p ? resp->remark.p : "");
            rc = FERRY_ENOTSTORED;
        }
        rcmd_free(resp);
    }
    return rc;
}

static void settle(struct consumer *c, struct pqueue *q, const struct ferry_message_ext *msgs,
                   uint32_t n)
{
    pthread_mutex_lock(&q->lock);
    for (uint32_t i = 0; i < n; i++)
        procq_done(&q->pq, msgs[i].queue_offset);
    int64_t commit = procq_commit_offset(&q->pq);
    int dropped = q->dropped;
    pthread_mutex_unlock(&q->lock);
    if (!dropped && commit >= 0)
        consumer_update_offset(c, &q->mq, commit, 0);
}

static void run_concurrent(struct ferry_push_consumer *p, struct task *t)
{
    struct consumer *c = &p->c;
    struct pqueue *q = t->q;
    struct ferry_message_ext *msgs = &t->b->msgs[t->start];
    pthread_mutex_lock(&q->lock);
    int dropped = q->dropped;
    pthread_mutex_unlock(&q->lock);
    if (dropped) { /* the queue moved to another consumer, which reads from the offset */
        task_release(t);
        return;
    }
    enum ferry_consume_status st = p->fn(msgs, t->n, p->arg);
    if (st == FERRY_CONSUME_SUCCESS) {
        settle(c, q, msgs, t->n);
        task_release(t);
        return;
    }
    /* RECONSUME_LATER: back to the broker; what it does not take is consumed again here */
    uint32_t ok = 0;
    while (ok < t->n && send_back(c, &msgs[ok]) == 0)
        ok++;
    settle(c, q, msgs, ok);
    if (ok == t->n) {
        task_release(t);
        return;
    }
    t->start += ok;
    t->n -= ok;
    for (uint32_t i = 0; i < t->n; i++)
        t->b->msgs[t->start + i].reconsume_times++;
    t->due = clock_mono_ms() + LOCAL_RETRY_MS;
    submit(p, t, 1);
}

/* ---- orderly consumption ---- */

static void run_orderly(struct ferry_push_consumer *p, struct task *t)
{
    struct consumer *c = &p->c;
    struct pqueue *q = t->q;
    size_t max = (size_t)c->cfg.consumeMessageBatchMaxSize;
    struct pq_entry **ents = ferry_calloc(max, sizeof *ents);
    struct ferry_message_ext *msgs = ferry_calloc(max, sizeof *msgs);
    int64_t start = clock_mono_ms();
    for (;;) {
        int64_t now = clock_mono_ms();
        pthread_mutex_lock(&q->lock);
        int clustering = c->cfg.messageModel == FERRY_CLUSTERING;
        /* shutting down: what is cached is delivered again later, as the header promises */
        if (q->dropped || atomic_load(&p->pool_stop) ||
            (clustering && (!q->locked || now - q->lock_ms > LOCK_EXPIRE_MS))) {
            /* resubmitted by the lock renewal */
            pthread_mutex_unlock(&q->lock);
            task_release(t);
            break;
        }
        if (now < q->suspend_until || now - start > ORDERLY_SLICE_MS) {
            t->due = now < q->suspend_until ? q->suspend_until : now;
            pthread_mutex_unlock(&q->lock);
            submit(p, t, 1);
            break;
        }
        size_t k = procq_take(&q->pq, max, ents);
        for (size_t i = 0; i < k; i++)
            msgs[i] = *ents[i]->m;
        if (k == 0) {
            q->consuming = 0;
            pthread_mutex_unlock(&q->lock);
            pqueue_unref(q);
            break;
        }
        pthread_mutex_unlock(&q->lock);
        enum ferry_consume_status st = p->fn(msgs, k, p->arg);
        pthread_mutex_lock(&q->lock);
        if (st == FERRY_CONSUME_SUCCESS) {
            for (size_t i = 0; i < k; i++)
                procq_done(&q->pq, msgs[i].queue_offset);
        } else {
            procq_untake(&q->pq);
            q->suspend_until = clock_mono_ms() + c->cfg.suspendCurrentQueueTimeMillis;
        }
        int64_t commit = procq_commit_offset(&q->pq);
        int dropped = q->dropped;
        pthread_mutex_unlock(&q->lock);
        if (st == FERRY_CONSUME_SUCCESS && !dropped && commit >= 0)
            consumer_update_offset(c, &q->mq, commit, 0);
    }
    ferry_free(ents);
    ferry_free(msgs);
}

static void *worker_main(void *arg)
{
    struct ferry_push_consumer *p = arg;
    pthread_mutex_lock(&p->plock);
    while (!p->pool_stop) {
        int64_t now = clock_mono_ms(), wake = now + 1000;
        /* due delayed tasks become ready */
        for (struct task **pp = &p->delayed; *pp;) {
            struct task *t = *pp;
            if (t->due <= now) {
                *pp = t->next;
                t->next = NULL;
                if (p->tail)
                    p->tail->next = t;
                else
                    p->head = t;
                p->tail = t;
            } else {
                if (t->due < wake)
                    wake = t->due;
                pp = &t->next;
            }
        }
        struct task *t = p->head;
        if (!t) {
            struct timespec ts = clock_deadline_ts(wake - now);
            p->idle++;
            pthread_cond_timedwait(&p->pcond, &p->plock, &ts);
            p->idle--;
            continue;
        }
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->plock);
        if (t->b)
            run_concurrent(p, t);
        else
            run_orderly(p, t);
        pthread_mutex_lock(&p->plock);
    }
    pthread_mutex_unlock(&p->plock);
    return NULL;
}

/* ---- queue locks (orderly, clustering) ---- */

static void mqs_json(cJSON *arr, const struct ferry_mq *mqs, int n)
{
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", mqs[i].topic);
        cJSON_AddStringToObject(o, "brokerName", mqs[i].broker);
        cJSON_AddNumberToObject(o, "queueId", mqs[i].queue_id);
        cJSON_AddItemToArray(arr, o);
    }
}

/* LOCK_BATCH_MQ (or UNLOCK when @unlock) for @n queues of one broker; *@ok (lock only) gets a
 * flag per queue. */
static int lock_batch(struct consumer *c, const struct ferry_mq *mqs, int n, int unlock, int *ok)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "consumerGroup", c->cfg.group);
    cJSON_AddStringToObject(doc, "clientId", c->client_id);
    mqs_json(cJSON_AddArrayToObject(doc, "mqSet"), mqs, n);
    char *body = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    struct rcmd req, *resp = NULL;
    rcmd_init_request(&req, unlock ? REQ_UNLOCK_BATCH_MQ : REQ_LOCK_BATCH_MQ);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    int rc = consumer_invoke(c, mqs[0].broker, &req, RPC_TIMEOUT_MS, &resp);
    cJSON_free(body);
    if (rc)
        return rc;
    if (resp->code != RESP_SUCCESS) {
        rcmd_free(resp);
        return FERRY_ENOTSTORED;
    }
    if (!unlock) {
        cJSON *r = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
        const cJSON *set = r ? cJSON_GetObjectItemCaseSensitive(r, "lockOKMQSet") : NULL, *it;
        for (int i = 0; i < n; i++)
            ok[i] = 0;
        cJSON_ArrayForEach(it, set)
        {
            const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "topic"));
            const char *b =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "brokerName"));
            const cJSON *q = cJSON_GetObjectItemCaseSensitive(it, "queueId");
            for (int i = 0; t && b && cJSON_IsNumber(q) && i < n; i++)
                if (mqs[i].queue_id == q->valueint && strcmp(mqs[i].topic, t) == 0 &&
                    strcmp(mqs[i].broker, b) == 0)
                    ok[i] = 1;
        }
        cJSON_Delete(r);
    }
    rcmd_free(resp);
    return 0;
}

/* Renew (or drop) the locks of every held queue, one request per broker (lockAll). */
static void lock_all(struct ferry_push_consumer *p, int unlock)
{
    struct consumer *c = &p->c;
    pthread_mutex_lock(&c->lock);
    int n = c->nqs;
    struct pqueue **qs = ferry_calloc((size_t)n + 1, sizeof *qs);
    for (int i = 0; i < n; i++) {
        qs[i] = c->qs[i];
        pqueue_ref(qs[i]);
    }
    pthread_mutex_unlock(&c->lock);
    struct ferry_mq *mqs = ferry_calloc((size_t)n + 1, sizeof *mqs);
    int *ok = ferry_calloc((size_t)n + 1, sizeof *ok);
    int *used = ferry_calloc((size_t)n + 1, sizeof *used);
    for (int i = 0; i < n; i++) {
        if (used[i])
            continue;
        int k = 0;
        struct pqueue **grp = ferry_calloc((size_t)n + 1, sizeof *grp);
        for (int j = i; j < n; j++)
            if (!used[j] && strcmp(qs[j]->mq.broker, qs[i]->mq.broker) == 0) {
                used[j] = 1;
                grp[k] = qs[j];
                mqs[k++] = qs[j]->mq;
            }
        int rc = lock_batch(c, mqs, k, unlock, ok);
        for (int j = 0; j < k && !unlock; j++) {
            pthread_mutex_lock(&grp[j]->lock);
            int was = grp[j]->locked;
            if (rc == 0) {
                grp[j]->locked = ok[j];
                if (ok[j])
                    grp[j]->lock_ms = clock_mono_ms();
            }
            int has = procq_count(&grp[j]->pq) > 0;
            pthread_mutex_unlock(&grp[j]->lock);
            if (rc == 0 && !ok[j] && was)
                log_warn(LOG_CLIENT, "group %s: lost the lock of %s/%s/%d", c->cfg.group,
                         mqs[j].broker, mqs[j].topic, mqs[j].queue_id);
            if (rc == 0 && ok[j] && has)
                submit_orderly(p, grp[j]);
        }
        ferry_free(grp);
    }
    for (int i = 0; i < n; i++)
        pqueue_unref(qs[i]);
    ferry_free(qs);
    ferry_free(mqs);
    ferry_free(ok);
    ferry_free(used);
}

/* ---- rebalancing ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The client ids of the group, sorted, from a broker of @r. */
/* The group's members as every broker of @r knows them, merged (sorted, unique). Each broker
 * knows the consumers that heartbeat to it; one that just restarted knows only those that have
 * done so since, so a single broker's answer (RocketMQ's choice) can leave members out and make
 * two consumers take the same queues for up to a heartbeat period. */
static int group_members(struct consumer *c, const char *topic, const struct route *r, char ***out,
                         int *n)
{
    *out = NULL;
    *n = 0;
    for (int i = 0; i < r->nbrokers; i++) {
        struct rcmd req, *resp = NULL;
        rcmd_init_request(&req, REQ_GET_CONSUMER_LIST_BY_GROUP);
        rcmd_ext_add(&req, "consumerGroup", c->cfg.group);
        rcmd_ext_add(&req, "topic", topic);
        if (consumer_invoke(c, r->brokers[i].name, &req, RPC_TIMEOUT_MS, &resp) != 0)
            continue;
        cJSON *doc = resp->code == RESP_SUCCESS
                         ? cJSON_ParseWithLength((const char *)resp->body, resp->body_len)
                         : NULL;
        rcmd_free(resp);
        const cJSON *ids = doc ? cJSON_GetObjectItemCaseSensitive(doc, "consumerIdList") : NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, ids)
        {
            if (!cJSON_IsString(it))
                continue;
            *out = ferry_realloc(*out, (size_t)(*n + 1) * sizeof **out);
            (*out)[(*n)++] = ferry_strdup(it->valuestring);
        }
        cJSON_Delete(doc);
    }
    if (!*n)
        return FERRY_ENOTFOUND;
    qsort(*out, (size_t)*n, sizeof **out, cmp_str);
    int k = 0;
    for (int i = 0; i < *n; i++) {
        if (k && strcmp((*out)[k - 1], (*out)[i]) == 0)
            ferry_free((*out)[i]);
        else
            (*out)[k++] = (*out)[i];
    }
    *n = k;
    return 0;
}

static void rebalance_topic(struct ferry_push_consumer *p, const char *topic)
{
    struct consumer *c = &p->c;
    struct route r;
    int orderly_locks = c->cfg.orderly && c->cfg.messageModel == FERRY_CLUSTERING;
    if (consumer_route(c, topic, &r) != 0) {
        pthread_mutex_lock(&c->lock);
        c->rebalance_soon = 1; /* e.g. %RETRY% not routed yet, or the broker restarting */
        pthread_mutex_unlock(&c->lock);
        return;
    }
    int first = 0, count = r.nrmq;
    if (c->cfg.messageModel == FERRY_CLUSTERING) {
        char **ids;
        int nids, me = -1;
        if (group_members(c, topic, &r, &ids, &nids) != 0) {
            route_clear(&r);
            pthread_mutex_lock(&c->lock);
            c->rebalance_soon = 1;
            pthread_mutex_unlock(&c->lock);
            return;
        }
        for (int i = 0; i < nids; i++) {
            if (strcmp(ids[i], c->client_id) == 0)
                me = i;
            ferry_free(ids[i]);
        }
        ferry_free(ids);
        if (me < 0) { /* our heartbeat has not arrived yet: keep what we have */
            route_clear(&r);
            return;
        }
        allocate_average(r.nrmq, nids, me, &first, &count);
    }
    struct ferry_mq *mine = ferry_calloc((size_t)count + 1, sizeof *mine);
    for (int i = 0; i < count; i++) {
        snprintf(mine[i].topic, sizeof mine[i].topic, "%s", topic);
        snprintf(mine[i].broker, sizeof mine[i].broker, "%s", r.rmqs[first + i].broker);
        mine[i].queue_id = r.rmqs[first + i].qid;
    }
    route_clear(&r);

    /* release the queues that are no longer ours */
    pthread_mutex_lock(&c->lock);
    int ngone = 0;
    struct pqueue **gone = ferry_calloc((size_t)c->nqs + 1, sizeof *gone);
    for (int i = 0; i < c->nqs; i++) {
        struct pqueue *q = c->qs[i];
        int keep = strcmp(q->mq.topic, topic) != 0;
        for (int k = 0; k < count && !keep; k++)
            keep = q->mq.queue_id == mine[k].queue_id && strcmp(q->mq.broker, mine[k].broker) == 0;
        if (!keep) {
            pqueue_ref(q);
            gone[ngone++] = q;
        }
    }
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < ngone; i++) {
        struct pqueue *q = gone[i];
        consumer_remove_queue(c, q, 1);
        if (orderly_locks) {
            /* let a running listener call finish before another consumer may lock it */
            int64_t until = clock_mono_ms() + ORDERLY_DROP_WAIT_MS;
            for (;;) {
                pthread_mutex_lock(&q->lock);
                int busy = q->consuming;
                pthread_mutex_unlock(&q->lock);
                if (!busy || clock_mono_ms() > until)
                    break;
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
            }
            lock_batch(c, &q->mq, 1, 1, NULL);
        }
        pqueue_unref(q);
    }
    ferry_free(gone);

    /* take the new ones */
    for (int k = 0; k < count; k++) {
        pthread_mutex_lock(&c->lock);
        int have = consumer_find_queue(c, &mine[k]) != NULL;
        int stop = c->stopping;
        pthread_mutex_unlock(&c->lock);
        if (have || stop)
            continue;
        int ok = 1;
        if (orderly_locks && (lock_batch(c, &mine[k], 1, 0, &ok) != 0 || !ok))
            continue; /* another consumer still holds it: next round */
        int64_t off;
        int rc = consumer_start_offset(c, &mine[k], &off);
        if (rc) {
            log_warn(LOG_CLIENT, "group %s: no start offset for %s/%s/%d: %s", c->cfg.group,
                     mine[k].broker, mine[k].topic, mine[k].queue_id, ferry_strerror(rc));
            continue;
        }
        consumer_add_queue(c, &mine[k], off, orderly_locks);
    }
    ferry_free(mine);
}

static void rebalance(struct consumer *c)
{
    struct ferry_push_consumer *p = of(c);
    pthread_mutex_lock(&c->lock);
    int n = c->nsubs;
    char(*topics)[256] = ferry_calloc((size_t)n + 1, sizeof *topics);
    for (int i = 0; i < n; i++)
        memcpy(topics[i], c->subs[i].topic, sizeof topics[i]);
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < n; i++)
        rebalance_topic(p, topics[i]);
    ferry_free(topics);
    if (c->cfg.orderly && c->cfg.messageModel == FERRY_CLUSTERING)
        lock_all(p, 0);
}

static const struct consumer_ops push_ops = {
    .on_messages = on_messages,
    .rebalance = rebalance,
    .pull_paused = pull_paused,
};

/* ---- API ---- */

int ferry_push_consumer_new(const struct ferry_consumer_config *cfg, ferry_listener fn, void *arg,
                            ferry_push_consumer_t **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (!fn)
        return FERRY_EINVAL;
    struct ferry_push_consumer *p = ferry_calloc(1, sizeof *p);
    int rc = consumer_init(&p->c, cfg, CONSUMER_PUSH, &push_ops);
    if (rc) {
        ferry_free(p);
        return rc;
    }
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_init(&p->plock, NULL);
    pthread_cond_init(&p->pcond, NULL);
    p->threads = ferry_calloc((size_t)p->c.cfg.consumeThreadMax, sizeof *p->threads);
    *out = p;
    return 0;
}

int ferry_push_consumer_subscribe(ferry_push_consumer_t *p, const char *topic, const char *expr)
{
    if (!p)
        return FERRY_EINVAL;
    pthread_mutex_lock(&p->c.lock);
    int started = p->c.started || p->c.stopping;
    pthread_mutex_unlock(&p->c.lock);
    if (started)
        return FERRY_EINVAL;
    return consumer_subscribe(&p->c, topic, expr);
}

int ferry_push_consumer_start(ferry_push_consumer_t *p)
{
    if (!p)
        return FERRY_EINVAL;
    pthread_mutex_lock(&p->c.lock);
    int nsubs = p->c.nsubs, shut = p->shut, started = p->c.started;
    pthread_mutex_unlock(&p->c.lock);
    if (shut)
        return FERRY_ESHUTDOWN;
    if (started)
        return 0;
    if (nsubs == 0)
        return FERRY_EINVAL;
    if (p->c.cfg.messageModel == FERRY_CLUSTERING) {
        char retry[256];
        snprintf(retry, sizeof retry, "%%RETRY%%%s", p->c.cfg.group);
        if (strlen(retry) <= 127)
            consumer_subscribe(&p->c, retry, "*");
    }
    pthread_mutex_lock(&p->plock);
    for (; p->nthreads < p->c.cfg.consumeThreadMin; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) != 0)
            break;
    int nthreads = p->nthreads;
    pthread_mutex_unlock(&p->plock);
    if (nthreads == 0)
        return -EAGAIN;
    return consumer_start(&p->c);
}

void ferry_push_consumer_shutdown(ferry_push_consumer_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->c.lock);
    int shut = p->shut;
    p->shut = 1;
    pthread_mutex_unlock(&p->c.lock);
    if (shut)
        return;
    consumer_stop(&p->c); /* no more pulls or rebalancing */
    pthread_mutex_lock(&p->plock);
    p->pool_stop = 1;
    pthread_cond_broadcast(&p->pcond);
    pthread_mutex_unlock(&p->plock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL); /* running listener calls finish */
    p->nthreads = 0;
    for (struct task *t = p->head, *next; t; t = next) {
        next = t->next;
        task_release(t);
    }
    for (struct task *t = p->delayed, *next; t; t = next) {
        next = t->next;
        task_release(t);
    }
    p->head = p->tail = p->delayed = NULL;
    if (p->c.cfg.orderly && p->c.cfg.messageModel == FERRY_CLUSTERING && p->c.started)
        lock_all(p, 1);
    consumer_finish(&p->c);
}

void ferry_push_consumer_free(ferry_push_consumer_t *p)
{
    if (!p)
        return;
    ferry_push_consumer_shutdown(p);
    consumer_destroy(&p->c);
    pthread_mutex_destroy(&p->plock);
    pthread_cond_destroy(&p->pcond);
    ferry_free(p->threads);
    ferry_free(p);
}
