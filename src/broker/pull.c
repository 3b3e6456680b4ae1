/* PULL_MESSAGE (11) with long polling (Java PullMessageProcessor + PullRequestHoldService),
 * and the broker's service thread.
 *
 * Happy path: the I/O thread checks the group, topic, queue and subscription, reads from the
 * store with the TAG filter (tag hash codes), and answers FOUND with the stored records as the
 * body: the store's slices are written straight from the CommitLog mapping (a multi-slice
 * zero-copy body, released when the write is done). When nothing is there and the request may
 * be suspended, it is parked under (topic, queue) until the store's arrive callback reports a
 * newer message (dispatch thread -> holds_kick -> service thread), or until its deadline; the
 * service thread then re-runs the read and answers with whatever it returns.
 *
 * Status mapping is 4.9.8's: FOUND -> SUCCESS; NO_MATCHED_MESSAGE, MESSAGE_WAS_REMOVING ->
 * PULL_RETRY_IMMEDIATELY; an empty queue -> PULL_NOT_FOUND at offset 0, else PULL_OFFSET_MOVED
 * (next 0); OFFSET_TOO_SMALL -> PULL_OFFSET_MOVED (next min); OFFSET_OVERFLOW_ONE ->
 * PULL_NOT_FOUND (next = offset); OFFSET_OVERFLOW_BADLY -> PULL_OFFSET_MOVED (next max).
 *
 * A missed wake-up is impossible: a parked request re-checks the queue's max offset after it
 * was linked in, and every arrival after that finds it in the table. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PULL_COMMIT_OFFSET 0x1
#define PULL_SUSPEND       0x2
#define PULL_SUBSCRIPTION  0x4

#define TICK_MS        1000
#define CLIENT_SCAN_MS 10000
#define SUB_EXPR_MAX   4096

struct pull_params {
    char group[NAME_MAX_LEN + 1];
    char topic[MSG_MAX_TOPIC_LEN + 1];
    int32_t qid;
    int64_t offset;
    int32_t max_msgs;
    struct tag_filter filter;
    int64_t group_broker_id; /* the group's brokerId and whichBrokerWhenConsumeSlowly */
    int64_t group_slow_id;
};

struct held {
    struct held *next;
    struct reply_to rt;
    struct pull_params pp;
    int64_t deadline; /* monotonic ms */
    int expired;
};

struct hold_q {
    struct hold_q *next; /* hash chain */
    struct hold_q *pend_next;
    uint32_t hash;
    int32_t qid;
    int pending;
    int64_t notified_max;
    struct held *list;
    char topic[MSG_MAX_TOPIC_LEN + 1];
};

/* The records of one FOUND answer, kept mapped until the write is done. */
struct pull_body {
    int n;
    struct store_slice *s;
    struct iovec *iov;
};

static void pull_body_release(void *arg)
{
    struct pull_body *pb = arg;
    store_release(pb->s, pb->n);
    ferry_free(pb);
}

static const char *status_name(enum get_status st)
{
    switch (st) {
    case GET_FOUND:
        return "FOUND";
    case GET_NO_MATCHED_MESSAGE:
        return "NO_MATCHED_MESSAGE";
    case GET_MESSAGE_WAS_REMOVING:
        return "MESSAGE_WAS_REMOVING";
    case GET_OFFSET_FOUND_NULL:
        return "OFFSET_FOUND_NULL";
    case GET_OFFSET_OVERFLOW_BADLY:
        return "OFFSET_OVERFLOW_BADLY";
    case GET_OFFSET_OVERFLOW_ONE:
        return "OFFSET_OVERFLOW_ONE";
    case GET_OFFSET_TOO_SMALL:
        return "OFFSET_TOO_SMALL";
    case GET_NO_MATCHED_LOGIC_QUEUE:
    case GET_NO_MESSAGE_IN_QUEUE:
        return "NO_MESSAGE_IN_QUEUE";
    }
    return "UNKNOWN";
}

/* suggestWhichBrokerId (Java PullMessageProcessor with slaveReadEnable): a master suggests the
 * group's whichBrokerWhenConsumeSlowly (1) when what was read lies farther behind the end of
 * the CommitLog than accessMessageInMemoryMaxRatio of RAM, else the group's brokerId (0); without
 * slaveReadEnable always the master. A slave suggests the master once its metadata sync reaches
 * it again, itself (1) while the master is gone. */
static int64_t suggest_broker(broker_t *b, const struct pull_params *pp, int64_t last_phys)
{
    if (broker_role(b) == BROKER_SLAVE)
        return slave_sync_master_ok(b) ? 0 : (b->cfg.brokerId > 0 ? b->cfg.brokerId : 1);
    if (!b->cfg.slaveReadEnable)
        return 0;
    if (last_phys >= 0 && store_max_phys(b->store) - last_phys > b->mem_budget)
        return pp->group_slow_id;
    return pp->group_broker_id;
}

/* Read from the store for @pp and fill @resp (code, remark, fields, body). Returns the code. */
static int32_t pull_read(broker_t *b, const struct pull_params *pp, struct rcmd *resp)
{
    int32_t max = pp->max_msgs;
    if (max > b->cfg.maxTransferCountOnMessageInMemory)
        max = b->cfg.maxTransferCountOnMessageInMemory;
    if (max < 1)
        max = 1;
    if (max > 1024)
        max = 1024;
    struct pull_body *pb =
        ferry_calloc(1, sizeof *pb + (size_t)max * (sizeof *pb->s + sizeof *pb->iov));
    pb->s = (struct store_slice *)(pb + 1);
    pb->iov = (struct iovec *)(pb->s + max);
    struct get_request gr = {pp->topic,
                             pp->qid,
                             pp->offset,
                             max,
                             b->cfg.maxTransferBytesOnMessageInMemory,
                             pp->filter.all ? NULL : pp->filter.codes,
                             pp->filter.all ? 0 : pp->filter.n};
    struct get_result res = {.msgs = pb->s};
    int rc = store_get(b->store, &gr, &res);
    if (rc != 0 && res.n == 0) {
        ferry_free(pb);
        resp->code = RESP_SYSTEM_ERROR;
        static const char msg[] = "the store could not read the queue (it is being "
                                  "repaired); pull again later";
        resp->remark = (struct rstr){msg, sizeof msg - 1};
        log_warn(LOG_BROKER, "pull %s/%d at %" PRId64 ": %s", pp->topic, pp->qid, pp->offset,
                 ferry_strerror(rc));
        return resp->code;
    }
    enum get_status st = res.status;
    int64_t next = res.next_offset;
    if (st == GET_NO_MESSAGE_IN_QUEUE || st == GET_NO_MATCHED_LOGIC_QUEUE) {
        /* Java: only max == 0 means "no message in queue"; a queue emptied by expiry
         * (min == max > 0) answers like any other position. */
        if (res.max_offset == 0) {
            st = GET_NO_MESSAGE_IN_QUEUE;
            next = 0;
        } else if (pp->offset < res.min_offset) {
            st = GET_OFFSET_TOO_SMALL;
            next = res.min_offset;
        } else if (pp->offset == res.max_offset) {
            st = GET_OFFSET_OVERFLOW_ONE;
            next = pp->offset;
        } else {
            st = GET_OFFSET_OVERFLOW_BADLY;
            next = res.max_offset;
        }
    }
    switch (st) {
    case GET_FOUND:
        resp->code = RESP_SUCCESS;
        break;
    case GET_MESSAGE_WAS_REMOVING:
    case GET_NO_MATCHED_MESSAGE:
        resp->code = RESP_PULL_RETRY_IMMEDIATELY;
        break;
    case GET_NO_MATCHED_LOGIC_QUEUE:
    case GET_NO_MESSAGE_IN_QUEUE:
        resp->code = pp->offset != 0 ? RESP_PULL_OFFSET_MOVED : RESP_PULL_NOT_FOUND;
        break;
    case GET_OFFSET_FOUND_NULL:
    case GET_OFFSET_OVERFLOW_ONE:
        resp->code = RESP_PULL_NOT_FOUND;
        break;
    case GET_OFFSET_OVERFLOW_BADLY:
    case GET_OFFSET_TOO_SMALL:
        resp->code = RESP_PULL_OFFSET_MOVED;
        break;
    }
    if (resp->code == RESP_PULL_OFFSET_MOVED && broker_role(b) == BROKER_SLAVE &&
        pp->offset > res.max_offset) {
        /* A slave may lag its master (Java offsetCheckInSlave=false): an offset beyond its
         * end is not "moved" but not there yet; the consumer keeps it and waits. */
        resp->code = RESP_PULL_NOT_FOUND;
        next = pp->offset;
    }
    const char *name = status_name(st);
    resp->remark = (struct rstr){name, strlen(name)};
    rcmd_ext_add_i64(resp, "suggestWhichBrokerId",
                     suggest_broker(b, pp, res.n > 0 ? pb->s[res.n - 1].phys_offset : -1));
    rcmd_ext_add_i64(resp, "nextBeginOffset", next);
    rcmd_ext_add_i64(resp, "minOffset", res.min_offset);
    rcmd_ext_add_i64(resp, "maxOffset", res.max_offset);
    if (res.n > 0 && resp->code == RESP_SUCCESS) {
        size_t total = 0;
        for (int i = 0; i < res.n; i++) {
            pb->iov[i].iov_base = (void *)pb->s[i].data;
            pb->iov[i].iov_len = pb->s[i].len;
            total += pb->s[i].len;
        }
        pb->n = res.n;
        resp->body_iov = pb->iov;
        resp->body_iovcnt = res.n;
        resp->body_len = total;
        resp->body_release = pull_body_release;
        resp->body_ctx = pb;
        atomic_fetch_add(&b->stats.get_total, res.n);
        bmetrics_pulled(b, pp->topic, res.n, (int64_t)total);
    } else {
        store_release(pb->s, res.n);
        ferry_free(pb);
    }
    return resp->code;
}

/* ---- the hold table ------------------------------------------------------------------- */

static uint32_t q_hash(const char *topic, int32_t qid)
{
    uint32_t h = 2166136261u;
    for (; *topic; topic++)
        h = (h ^ (uint8_t)*topic) * 16777619u;
    return (h ^ (uint32_t)qid) * 16777619u;
}

/* @locks holds.mu */
static struct hold_q *q_find(struct holds *hs, const char *topic, int32_t qid, uint32_t h)
{
    if (!hs->cap)
        return NULL;
    for (struct hold_q *q = hs->tab[h & (hs->cap - 1)]; q; q = q->next)
        if (q->hash == h && q->qid == qid && strcmp(q->topic, topic) == 0)
            return q;
    return NULL;
}

/* @locks holds.mu */
static struct hold_q *q_get(struct holds *hs, const char *topic, int32_t qid)
{
    uint32_t h = q_hash(topic, qid);
    struct hold_q *q = q_find(hs, topic, qid, h);
    if (q)
        return q;
    if (hs->nq + 1 > hs->cap) {
        uint32_t cap = hs->cap ? hs->cap * 2 : 64;
        struct hold_q **tab = ferry_calloc(cap, sizeof *tab);
        for (uint32_t i = 0; i < hs->cap; i++) {
            while (hs->tab[i]) {
                struct hold_q *x = hs->tab[i];
                hs->tab[i] = x->next;
                x->next = tab[x->hash & (cap - 1)];
                tab[x->hash & (cap - 1)] = x;
            }
        }
        ferry_free(hs->tab);
        hs->tab = tab;
        hs->cap = cap;
    }
    q = ferry_calloc(1, sizeof *q);
    q->hash = h;
    q->qid = qid;
    q->notified_max = -1;
    snprintf(q->topic, sizeof q->topic, "%s", topic);
    q->next = hs->tab[h & (hs->cap - 1)];
    hs->tab[h & (hs->cap - 1)] = q;
    hs->nq++;
    return q;
}

void holds_init(broker_t *b)
{
    struct holds *hs = &b->holds;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->cond, &ca);
    pthread_condattr_destroy(&ca);
    hs->next_deadline = INT64_MAX;
}

static void held_free(struct held *h)
{
    broker_reply_done(&h->rt);
    bfilter_free(&h->pp.filter);
    ferry_free(h);
}

void holds_drain(broker_t *b)
{
    struct holds *hs = &b->holds;
    pthread_mutex_lock(&hs->mu);
    for (uint32_t i = 0; i < hs->cap; i++) {
        for (struct hold_q *q = hs->tab[i]; q; q = q->next) {
            while (q->list) {
                struct held *h = q->list;
                q->list = h->next;
                held_free(h); /* the connections are closed by now: nothing to answer */
            }
        }
    }
    hs->n_held = 0;
    hs->pending = NULL;
    pthread_mutex_unlock(&hs->mu);
}

void holds_close(broker_t *b)
{
    struct holds *hs = &b->holds;
    holds_drain(b);
    for (uint32_t i = 0; i < hs->cap; i++) {
        while (hs->tab[i]) {
            struct hold_q *q = hs->tab[i];
            hs->tab[i] = q->next;
            ferry_free(q);
        }
    }
    ferry_free(hs->tab);
    hs->tab = NULL;
    hs->cap = hs->nq = 0;
    pthread_cond_destroy(&hs->cond);
    pthread_mutex_destroy(&hs->mu);
}

void holds_kick(broker_t *b, const char *topic, int32_t qid, int64_t max_offset)
{
    struct holds *hs = &b->holds;
    pthread_mutex_lock(&hs->mu);
    struct hold_q *q = hs->n_held ? q_find(hs, topic, qid, q_hash(topic, qid)) : NULL;
    if (q && q->list) {
        if (max_offset > q->notified_max)
            q->notified_max = max_offset;
        if (!q->pending) {
            q->pending = 1;
            q->pend_next = hs->pending;
            hs->pending = q;
            pthread_cond_signal(&hs->cond);
        }
    }
    pthread_mutex_unlock(&hs->mu);
}

void holds_on_arrive(void *arg, const char *topic, int32_t qid, int64_t max_offset)
{
    holds_kick(arg, topic, qid, max_offset);
}

/* Park @h (taken over). */
static void hold_add(broker_t *b, struct held *h)
{
    struct holds *hs = &b->holds;
    pthread_mutex_lock(&hs->mu);
    if (hs->stop) {
        pthread_mutex_unlock(&hs->mu);
        held_free(h);
        return;
    }
    struct hold_q *q = q_get(hs, h->pp.topic, h->pp.qid);
    h->next = q->list;
    q->list = h;
    hs->n_held++;
    if (h->deadline < hs->next_deadline) {
        hs->next_deadline = h->deadline;
        pthread_cond_signal(&hs->cond);
    }
    pthread_mutex_unlock(&hs->mu);
}

static void hold_request(broker_t *b, conn_t *conn, const struct rcmd *req, struct pull_params *pp,
                         int64_t timeout_ms)
{
    struct held *h = ferry_calloc(1, sizeof *h);
    broker_reply_init(&h->rt, conn, req);
    h->pp = *pp;
    pp->filter.codes = NULL; /* moved */
    h->deadline = clock_mono_ms() + timeout_ms;
    char topic[MSG_MAX_TOPIC_LEN + 1];
    int32_t qid = h->pp.qid;
    int64_t offset = h->pp.offset;
    snprintf(topic, sizeof topic, "%s", h->pp.topic);
    hold_add(b, h);
    /* A message stored between the read and the hold would not wake us: look once more. */
    int64_t max = store_max_offset(b->store, topic, qid);
    if (max > offset)
        holds_kick(b, topic, qid, max);
}

/* Re-run a woken request and answer it, or park it again. @thread svc */
static void run_woken(broker_t *b, struct held *h)
{
    struct rcmd resp;
    broker_reply_init_resp(&h->rt, &resp, RESP_SYSTEM_ERROR, NULL);
    int32_t code = pull_read(b, &h->pp, &resp);
    if (code == RESP_PULL_NOT_FOUND && !h->expired && clock_mono_ms() < h->deadline) {
        /* Woken by a message that is not readable yet at our offset: keep waiting. */
        h->next = NULL;
        hold_add(b, h);
        return;
    }
    remoting_respond(h->rt.conn, &resp);
    held_free(h);
}

/* Unlink the woken and expired requests. @locks holds.mu */
static struct held *collect(struct holds *hs, int64_t now)
{
    struct held *out = NULL;
    while (hs->pending) {
        struct hold_q *q = hs->pending;
        hs->pending = q->pend_next;
        q->pending = 0;
        for (struct held **pp = &q->list; *pp;) {
            struct held *h = *pp;
            if (h->pp.offset < q->notified_max) {
                *pp = h->next;
                h->next = out;
                out = h;
                hs->n_held--;
            } else {
                pp = &h->next;
            }
        }
        q->notified_max = -1;
    }
    if (now >= hs->next_deadline) {
        int64_t next = INT64_MAX;
        for (uint32_t i = 0; i < hs->cap; i++) {
            for (struct hold_q *q = hs->tab[i]; q; q = q->next) {
                for (struct held **pp = &q->list; *pp;) {
                    struct held *h = *pp;
                    if (h->deadline <= now) {
                        *pp = h->next;
                        h->expired = 1;
                        h->next = out;
                        out = h;
                        hs->n_held--;
                    } else {
                        if (h->deadline < next)
                            next = h->deadline;
                        pp = &h->next;
                    }
                }
            }
        }
        hs->next_deadline = next;
    }
    return out;
}

/* Drop parked pulls whose connection is gone (nobody to answer). @thread svc */
static void sweep_closed(broker_t *b)
{
    struct holds *hs = &b->holds;
    struct held *dead = NULL;
    pthread_mutex_lock(&hs->mu);
    for (uint32_t i = 0; i < hs->cap; i++) {
        for (struct hold_q *q = hs->tab[i]; q; q = q->next) {
            for (struct held **pp = &q->list; *pp;) {
                struct held *h = *pp;
                if (!remoting_conn_is_open(h->rt.conn)) {
                    *pp = h->next;
                    h->next = dead;
                    dead = h;
                    hs->n_held--;
                } else {
                    pp = &h->next;
                }
            }
        }
    }
    pthread_mutex_unlock(&hs->mu);
    while (dead) {
        struct held *h = dead;
        dead = h->next;
        held_free(h);
    }
}

/* ---- the service thread: holds, client expiry, statistics (no disk I/O) ------------------- */

static void stats_tick(broker_t *b)
{
    struct stats *s = &b->stats;
    int64_t put = atomic_load(&s->put_total), get = atomic_load(&s->get_total);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    pthread_mutex_lock(&s->mu); /* GET_BROKER_THROUGHPUT reads the history under it too */
    s->hist_pos = (s->hist_pos + 1) % STATS_HIST;
    s->put_hist[s->hist_pos] = put;
    s->get_hist[s->hist_pos] = get;
    if (s->hist_n < STATS_HIST)
        s->hist_n++;
    static const int spans[3] = {10, 60, 600};
    for (int i = 0; i < 3; i++) {
        int span = spans[i] < s->hist_n - 1 ? spans[i] : s->hist_n - 1;
        int old = (s->hist_pos - span + STATS_HIST) % STATS_HIST;
        s->put_tps[i] = span > 0 ? (double)(put - s->put_hist[old]) / span : 0;
        s->get_tps[i] = span > 0 ? (double)(get - s->get_hist[old]) / span : 0;
    }
    if (tm.tm_yday != s->yday) {
        s->put_yesterday_morning = s->put_today_morning;
        s->get_yesterday_morning = s->get_today_morning;
        s->put_today_morning = put;
        s->get_today_morning = get;
        s->yday = tm.tm_yday;
    }
    pthread_mutex_unlock(&s->mu);
}

void *broker_svc_main(void *arg)
{
    broker_t *b = arg;
    struct holds *hs = &b->holds;
    int64_t now = clock_mono_ms();
    int64_t next_tick = now + TICK_MS;
    int64_t next_scan = now + CLIENT_SCAN_MS;

    pthread_mutex_lock(&hs->mu);
    while (!hs->stop) {
        now = clock_mono_ms();
        int64_t wake = hs->next_deadline < next_tick ? hs->next_deadline : next_tick;
        if (!hs->pending && now < wake) {
            struct timespec ts = {wake / 1000, (wake % 1000) * 1000000};
            pthread_cond_timedwait(&hs->cond, &hs->mu, &ts);
            continue;
        }
        struct held *woken = collect(hs, now);
        pthread_mutex_unlock(&hs->mu);
        while (woken) {
            struct held *h = woken;
            woken = h->next;
            run_woken(b, h);
        }
        if (now >= next_tick) {
            next_tick = now + TICK_MS;
            stats_tick(b);
            if (now >= next_scan) {
                next_scan = now + CLIENT_SCAN_MS;
                clients_scan_expired(b);
                sweep_closed(b);
            }
        }
        pthread_mutex_lock(&hs->mu);
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

/* ---- the processor -------------------------------------------------------------------- */

void broker_on_pull(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct pull_params pp;
    struct hdrs p;
    struct rcmd resp;
    struct topic_config tc;
    struct group_config gc;
    char sub[SUB_EXPR_MAX], expr_type[64];
    int32_t sys_flag;
    int64_t commit_offset, suspend_ms, sub_version;
    char remark[400];

    if (!broker_ready(b, conn, req))
        return;
    memset(&pp, 0, sizeof pp);
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", pp.group, sizeof pp.group, 1);
    bhdrs_str(&p, "topic", pp.topic, sizeof pp.topic, 1);
    bhdrs_i32(&p, "queueId", &pp.qid, 0, 1);
    bhdrs_i64(&p, "queueOffset", &pp.offset, 0, 1);
    bhdrs_i32(&p, "maxMsgNums", &pp.max_msgs, 32, 1);
    bhdrs_i32(&p, "sysFlag", &sys_flag, 0, 1);
    bhdrs_i64(&p, "commitOffset", &commit_offset, -1, 0);
    bhdrs_i64(&p, "suspendTimeoutMillis", &suspend_ms, 15000, 0);
    bhdrs_str(&p, "subscription", sub, sizeof sub, 0);
    bhdrs_i64(&p, "subVersion", &sub_version, 0, 0);
    bhdrs_str(&p, "expressionType", expr_type, sizeof expr_type, 0);
    if (p.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p.remark);
        return;
    }
    if (!(b->cfg.brokerPermission & PERM_READ)) {
        broker_respond(conn, req, RESP_NO_PERMISSION, "the broker[%s] pulling message is forbidden",
                       b->ip);
        return;
    }
    if (groups_find(b, pp.group, &gc) != 0) {
        broker_respond(conn, req, RESP_SUBSCRIPTION_GROUP_NOT_EXIST,
                       "subscription group [%s] does not exist", pp.group);
        return;
    }
    pp.group_broker_id = gc.broker_id;
    pp.group_slow_id = gc.which_broker_when_slow;
    if (!gc.consume_enable) {
        broker_respond(conn, req, RESP_NO_PERMISSION, "subscription group no permission, %s",
                       pp.group);
        return;
    }
    if (topics_get(b, pp.topic, &tc) != 0) {
        broker_respond(conn, req, RESP_TOPIC_NOT_EXIST, "topic[%s] not exist, apply first please!",
                       pp.topic);
        return;
    }
    if (!(tc.perm & PERM_READ)) {
        broker_respond(conn, req, RESP_NO_PERMISSION, "the topic[%s] pulling message is forbidden",
                       pp.topic);
        return;
    }
    if (pp.qid < 0 || pp.qid >= tc.read_queues) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "queueId[%d] is illegal, topic:[%s] topicConfig.readQueueNums:[%d] "
                       "consumer:[%s]",
                       pp.qid, pp.topic, tc.read_queues, remoting_conn_peer(conn));
        return;
    }
    if (sys_flag & PULL_SUBSCRIPTION) {
        if (expr_type[0] && strcmp(expr_type, "TAG") != 0) {
            broker_respond(conn, req, RESP_SYSTEM_ERROR,
                           "The broker does not support consumer to filter message by %s",
                           expr_type);
            return;
        }
        bfilter_build(&pp.filter, sub);
    } else {
        int rc = clients_find_sub(b, pp.group, pp.topic, sub_version, gc.consume_broadcast_enable,
                                  &pp.filter, remark, sizeof remark);
        if (rc != 0) {
            broker_respond(conn, req, rc, "%s", remark);
            return;
        }
    }

    rcmd_init_response(&resp, req, RESP_SYSTEM_ERROR, NULL);
    int32_t code = pull_read(b, &pp, &resp);
    if ((sys_flag & PULL_COMMIT_OFFSET) && broker_role(b) != BROKER_SLAVE)
        offsets_commit(b, pp.group, pp.topic, pp.qid, commit_offset);
    if (code == RESP_PULL_NOT_FOUND && (sys_flag & PULL_SUSPEND)) {
        int64_t hold_ms = b->cfg.longPollingEnable ? suspend_ms : b->cfg.shortPollingTimeMills;
        if (hold_ms < 0)
            hold_ms = 0;
        if (hold_ms > MAX_HOLD_MS)
            hold_ms = MAX_HOLD_MS;
        hold_request(b, conn, req, &pp, hold_ms);
        return;
    }
    remoting_respond(conn, &resp);
    bfilter_free(&pp.filter);
}
