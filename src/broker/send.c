/* The send processors: SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320),
 * as Java 4.9.8's SendMessageProcessor (REMOTING.md §2.4.1, §3.7, §4).
 *
 * Happy path (on the connection's I/O thread): decode the V1 or V2 header, check the topic
 * (name rules, not-allowed set, lookup or auto-creation from the default topic), pick the queue,
 * apply the %RETRY% -> %DLQ% rule, build the stored properties (client's minus WAIT, plus
 * CLUSTER), decode a batch body into several messages, then store_put_async(). With
 * ASYNC_FLUSH the result is final at once; with SYNC_FLUSH the answer is sent from the store's
 * callback thread after the group-commit fsync (remoting_respond works from any thread), so an
 * I/O thread never waits for the disk.
 *
 * Failure modes: every refusal is an answer with Java's code and a readable remark; nothing is
 * acknowledged SEND_OK unless the store returned 0 for it (FLUSH_DISK_TIMEOUT when stored but
 * not yet durable, SERVICE_NOT_AVAILABLE for a full disk or a fenced store). A half message
 * (TRAN_MSG=true) goes to the half topic (transaction.c, with END_TRANSACTION); a message with
 * DELAY or a timer property goes to the schedule or timer topic (schedule.c);
 * CONSUMER_SEND_MSG_BACK is in sendback.c. */
#include "broker/broker_int.h"
#include "broker/ha.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOPIC_BUF 1024

struct send_hdr {
    char group[NAME_MAX_LEN + 1];
    char topic[TOPIC_BUF];
    char default_topic[TOPIC_BUF];
    int32_t default_qnums;
    int32_t qid;
    int32_t sys_flag;
    int64_t born_ts;
    int32_t flag;
    struct rstr props;
    int32_t reconsume;
    int has_max_reconsume;
    int32_t max_reconsume;
    int unit_mode;
    int batch;
};

/* The state of one send until its answer (freed after answering). */
struct send_ctx {
    broker_t *b;
    struct reply_to rt;
    int32_t qid;
    int n;
    int is_batch;
    int wait;        /* WAIT is not "false": a SYNC_MASTER reports SLAVE_NOT_AVAILABLE */
    int sync_master; /* the broker was a SYNC_MASTER when it took the request */
    /* The topic's traffic counters (metrics.c); clock_mono_ns() when the request was taken. */
    struct topic_stats *ts;
    int64_t t0_ns;
    struct put_result *res;
    /* Owned buffers referenced by the store_msg array until store_put*() returned. */
    char *props_buf;
    struct put_result one;
    /* A plain send waiting in its I/O thread's batch: the message, with copies of what
     * pointed into the request (the read buffer moves once the handler returns). */
    struct store_msg msg;
    char topic[MSG_MAX_TOPIC_LEN + 1];
    uint8_t body[]; /* the request body's bytes (allocated for plain sends only) */
};

static int parse_header(const struct rcmd *req, struct send_hdr *h, char *remark, size_t cap)
{
    struct hdrs p;
    int v2 = req->code != REQ_SEND_MESSAGE;
    bhdrs_init(&p, req);
    bhdrs_str(&p, v2 ? "a" : "producerGroup", h->group, sizeof h->group, 1);
    bhdrs_str(&p, v2 ? "b" : "topic", h->topic, sizeof h->topic, 1);
    bhdrs_str(&p, v2 ? "c" : "defaultTopic", h->default_topic, sizeof h->default_topic, 1);
    bhdrs_i32(&p, v2 ? "d" : "defaultTopicQueueNums", &h->default_qnums, 4, 1);
    bhdrs_i32(&p, v2 ? "e" : "queueId", &h->qid, -1, 1);
    bhdrs_i32(&p, v2 ? "f" : "sysFlag", &h->sys_flag, 0, 1);
    bhdrs_i64(&p, v2 ? "g" : "bornTimestamp", &h->born_ts, 0, 1);
    bhdrs_i32(&p, v2 ? "h" : "flag", &h->flag, 0, 1);
    bhdrs_i32(&p, v2 ? "j" : "reconsumeTimes", &h->reconsume, 0, 0);
    int64_t mr;
    h->has_max_reconsume = bhdr_i64(req, v2 ? "l" : "maxReconsumeTimes", &mr) == HDR_OK;
    h->max_reconsume =
        h->has_max_reconsume && mr >= INT32_MIN && mr <= INT32_MAX ? (int32_t)mr : 16;
    bhdrs_bool(&p, v2 ? "k" : "unitMode", &h->unit_mode, 0);
    bhdrs_bool(&p, v2 ? "m" : "batch", &h->batch, 0);
    const struct rstr *pr = rcmd_ext_get(req, v2 ? "i" : "properties");
    h->props = pr ? *pr : (struct rstr){0};
    if (p.bad)
        snprintf(remark, cap, "%s", p.remark);
    return p.bad ? -1 : 0;
}

/* Append the pairs of @p (a properties string) to @sb, dropping empty names or values, the
 * keys the broker sets itself (CLUSTER, the record CRC) and WAIT when @strip_wait. */
static void add_props(struct sbuf *sb, const char *p, size_t n, int strip_wait)
{
    if (n == 0)
        return; /* @p may be NULL (no properties): NULL + 0 is undefined */
    const char *end = p + n;
    while (p < end) {
        const char *pe = memchr(p, PROP_PAIR_SEP, (size_t)(end - p));
        if (!pe)
            pe = end;
        const char *ns = memchr(p, PROP_NAME_SEP, (size_t)(pe - p));
        if (ns && ns > p && ns + 1 < pe) {
            size_t nl = (size_t)(ns - p);
            int skip = (nl == 7 && memcmp(p, "CLUSTER", 7) == 0) ||
                       (nl == strlen(MSG_CRC_PROP) && memcmp(p, MSG_CRC_PROP, nl) == 0) ||
                       (strip_wait && nl == 4 && memcmp(p, "WAIT", 4) == 0);
            if (!skip) {
                bsb_add(sb, p, (size_t)(pe - p));
                char sep = PROP_PAIR_SEP;
                bsb_add(sb, &sep, 1);
            }
        }
        p = pe + 1;
    }
}

static void add_cluster(struct sbuf *sb, const char *cluster)
{
    char sep = PROP_NAME_SEP;
    bsb_str(sb, "CLUSTER");
    bsb_add(sb, &sep, 1);
    bsb_str(sb, cluster);
}

static void msg_id(char *out, const struct msg_host *h, int64_t phys)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t raw[28];
    size_t alen = h->v6 ? 16 : 4, n = 0;
    memcpy(raw, h->addr, alen);
    be32_put(raw + alen, h->port);
    be64_put(raw + alen + 4, (uint64_t)phys);
    n = alen + 12;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = 0;
}

/* broker_host_parse() of @s, remembered per thread and @slot (0: a connection's peer, 1: the
 * store host) for the last string seen: both repeat from one send to the next, and parsing
 * them (inet_pton, strtol) for every message was a visible cost. */
static int host_parse_cached(const char *s, struct msg_host *h, int slot)
{
    static _Thread_local struct {
        int valid, rc;
        char s[80];
        struct msg_host h;
    } cache[2];
    size_t n = strlen(s);
    if (cache[slot].valid && n < sizeof cache[slot].s && memcmp(cache[slot].s, s, n + 1) == 0) {
        *h = cache[slot].h;
        return cache[slot].rc;
    }
    int rc = broker_host_parse(s, h);
    if (n < sizeof cache[slot].s) {
        memcpy(cache[slot].s, s, n + 1);
        cache[slot].h = *h;
        cache[slot].rc = rc;
        cache[slot].valid = 1;
    }
    return rc;
}

static void ctx_free(struct send_ctx *ctx)
{
    broker_reply_done(&ctx->rt);
    if (ctx->res != &ctx->one)
        ferry_free(ctx->res);
    ferry_free(ctx->props_buf);
    ferry_free(ctx);
}

/* Answer a finished store call: @rc is the store's result. Any thread. */
static void send_finish(struct send_ctx *ctx, int rc)
{
    broker_t *b = ctx->b;
    struct rcmd resp;
    int32_t code;
    char remark[320];
    const char *rm = NULL;

    switch (rc) {
    case 0:
        code = RESP_SUCCESS;
        break;
    case HA_ENOSLAVE:
        /* As RocketMQ: stored on the master, not replicated (docs/REPLICATION.md). */
        code = RESP_SLAVE_NOT_AVAILABLE;
        rm = "stored on the master only: no in-sync slave (replication not confirmed)";
        break;
    case HA_ETIMEDOUT:
        code = RESP_FLUSH_SLAVE_TIMEOUT;
        rm = "stored on the master; no slave confirmed it within syncFlushTimeout (replication "
             "not confirmed)";
        break;
    case FERRY_ETIMEDOUT:
        code = RESP_FLUSH_DISK_TIMEOUT;
        break;
    case FERRY_ETOOBIG:
    case FERRY_EINVAL:
        code = RESP_MESSAGE_ILLEGAL;
        snprintf(remark, sizeof remark,
                 "the message is illegal, maybe msg body or properties length not matched. msg "
                 "body length limit %dB, msg properties length limit 32KB.",
                 b->cfg.store.maxMessageSize);
        rm = remark;
        break;
    case FERRY_EDISKFULL:
        code = RESP_SERVICE_NOT_AVAILABLE;
        rm = "service not available now: the broker's disk is full (over "
             "diskSpaceWarningLevelRatio, or no room for the next CommitLog file); nothing was "
             "stored";
        break;
    case FERRY_EFENCED:
        code = RESP_SERVICE_NOT_AVAILABLE;
        rm = "service not available now: the message store is fenced after an I/O error and "
             "refuses writes until the broker is restarted; the message was not acknowledged";
        break;
    case FERRY_ECLOSED:
        code = RESP_SERVICE_NOT_AVAILABLE;
        rm = "service not available now: the message store has been shut down";
        break;
    default:
        code = RESP_SYSTEM_ERROR;
        snprintf(remark, sizeof remark, "store error: %s", ferry_strerror(rc));
        rm = remark;
        break;
    }
    broker_reply_init_resp(&ctx->rt, &resp, code, rm);
    rcmd_ext_add(&resp, "MSG_REGION", b->cfg.regionId);
    rcmd_ext_add(&resp, "TRACE_ON", b->cfg.traceOn ? "true" : "false");
    char *ids = NULL, ids_small[2 * 58 + 1]; /* a plain send's id without an allocation */
    if (rc == 0 || rc == FERRY_ETIMEDOUT || rc == HA_ENOSLAVE || rc == HA_ETIMEDOUT) {
        struct msg_host sh;
        if (host_parse_cached(b->cfg.store.storeHost, &sh, 1) != 0)
            memset(&sh, 0, sizeof sh);
        ids = ctx->n <= 2 ? ids_small : ferry_malloc((size_t)ctx->n * 58 + 1);
        char *p = ids;
        int64_t bytes = 0;
        for (int i = 0; i < ctx->n; i++) {
            if (i)
                *p++ = ',';
            msg_id(p, &sh, ctx->res[i].phys_offset);
            p += strlen(p);
            bytes += ctx->res[i].size;
        }
        rcmd_ext_add(&resp, "msgId", ids);
        rcmd_ext_add_i64(&resp, "queueId", ctx->qid);
        rcmd_ext_add_i64(&resp, "queueOffset", ctx->res[0].queue_offset);
        atomic_fetch_add(&b->stats.put_total, ctx->n);
        bmetrics_sent(b, ctx->ts, ctx->n, bytes, ctx->sync_master && ctx->wait, ctx->t0_ns);
    } else {
        log_debug(LOG_BROKER, "send to queue %d refused by the store: %s", ctx->qid,
                  ferry_strerror(rc));
    }
    remoting_respond(ctx->rt.conn, &resp);
    if (ids != ids_small)
        ferry_free(ids);
    ctx_free(ctx);
}

static void on_replicated(void *arg, int rc)
{
    send_finish(arg, rc);
}

/* A SYNC_MASTER answers a stored message (that asked to WAIT) only once inSyncReplicas slaves
 * have it durably (ha.c). */
static int wants_replica(const broker_t *b, const struct send_ctx *ctx)
{
    /* The role when the request was taken, not now: a master demoted (controller mode) after
     * the store must still wait, and then answers SLAVE_NOT_AVAILABLE, never SEND_OK. */
    (void)b;
    return ctx->sync_master && ctx->wait;
}

/* The store is done with @ctx (@rc): wait for the slaves if needed, then answer. */
static void send_complete(struct send_ctx *ctx, int rc)
{
    if (rc == 0 && wants_replica(ctx->b, ctx)) {
        const struct put_result *last = &ctx->res[ctx->n - 1];
        rc = ha_wait(ctx->b->ha, last->phys_offset + last->size, on_replicated, ctx);
        if (rc == 1)
            return;
    }
    send_finish(ctx, rc);
}

static void on_stored(void *arg, int rc)
{
    send_complete(arg, rc);
}

/* ---- the sends of one I/O loop turn, appended together ---------------------------------
 *
 * A plain send is not stored at once: it joins its I/O thread's batch, and at the end of the
 * loop turn (remoting_defer), after every frame read in that turn was handled, the whole batch
 * goes to the store in one store_put_multi_async(): one append-lock hold, one write and, under
 * SYNC_FLUSH, one group-commit waiter for all of them. The flush thread's completion then
 * posts the batch back to this I/O thread once (one wake-up, not one per message), which
 * answers every send and writes the answers with one writev per connection. Each message
 * keeps its own result: a refusal of one (too big, bad queue) answers only that one. */

#define SEND_BATCH_MAX   256
#define SEND_BATCH_BYTES (1u << 20)

struct send_batch {
    broker_t *b;
    conn_t *conn; /* referenced: its I/O thread answers the batch */
    int n, rc;
    int ha_rc; /* SYNC_MASTER: the replication result of the batch */
    size_t bytes;
    struct send_ctx *ctx[SEND_BATCH_MAX];
    struct store_msg msgs[SEND_BATCH_MAX];
    struct put_result res[SEND_BATCH_MAX];
    int rcs[SEND_BATCH_MAX];
};

/* The batch being filled on this I/O thread. @thread the I/O thread */
static _Thread_local struct send_batch *t_batch;

static void send_finish(struct send_ctx *ctx, int rc);

/* Answer every send of @arg (a batch). @thread the batch's I/O thread, or any at shutdown */
static void batch_answer(void *arg)
{
    struct send_batch *sb = arg;
    for (int i = 0; i < sb->n; i++) {
        struct send_ctx *ctx = sb->ctx[i];
        ctx->one = sb->res[i];
        ctx->res = &ctx->one;
        int rc = sb->rcs[i] ? sb->rcs[i] : sb->rc;
        if (rc == 0 && wants_replica(sb->b, ctx))
            rc = sb->ha_rc;
        send_finish(ctx, rc);
    }
    remoting_conn_unref(sb->conn);
    ferry_free(sb);
}

static void batch_post(struct send_batch *sb)
{
    if (remoting_conn_post(sb->conn, batch_answer, sb) != 0)
        batch_answer(sb); /* the I/O thread is gone: the answers fail, the memory is freed */
}

/* The slaves have the batch (or not). @thread HA */
static void on_batch_replicated(void *arg, int rc)
{
    struct send_batch *sb = arg;
    sb->ha_rc = rc;
    batch_post(sb);
}

/* SYNC_MASTER: one replication wait for the whole batch, up to its last stored record.
 * Returns 1 when on_batch_replicated() will finish it, else 0 (sb->ha_rc set). */
static int batch_replicate(struct send_batch *sb)
{
    int64_t end = -1;
    int any = 0;
    sb->ha_rc = 0;
    if (sb->rc != 0)
        return 0;
    for (int i = 0; i < sb->n; i++) {
        if (sb->rcs[i] != 0 || !wants_replica(sb->b, sb->ctx[i]))
            continue;
        any = 1;
        int64_t e = sb->res[i].phys_offset + sb->res[i].size;
        if (e > end)
            end = e;
    }
    if (!any)
        return 0;
    int rc = ha_wait(sb->b->ha, end, on_batch_replicated, sb);
    if (rc == 1)
        return 1;
    sb->ha_rc = rc;
    return 0;
}

/* The group commit covered the batch (or failed, or timed out). @thread store flush/service */
static void on_batch_stored(void *arg, int rc)
{
    struct send_batch *sb = arg;
    sb->rc = rc;
    if (batch_replicate(sb))
        return;
    batch_post(sb);
}

static void batch_store(struct send_batch *sb)
{
    if (t_batch == sb)
        t_batch = NULL;
    int rc =
        store_put_multi_async(sb->b->store, sb->msgs, sb->n, sb->rcs, sb->res, on_batch_stored, sb);
    if (rc == 1)
        return;
    sb->rc = rc;
    if (batch_replicate(sb))
        return;
    batch_answer(sb);
}

/* End of the loop turn: store what this thread gathered. @thread the I/O thread */
static void batch_turn_end(void *arg)
{
    (void)arg;
    if (t_batch)
        batch_store(t_batch);
}

/* Add a plain send (@ctx, its message @m) to this I/O thread's batch. Returns 0 (the batch
 * answers it), or -1 when it cannot be batched (the caller stores it itself). */
static int batch_add(broker_t *b, conn_t *conn, struct send_ctx *ctx, const struct store_msg *m,
                     const struct rcmd *req)
{
    size_t tl = m->topic ? strlen(m->topic) : 0;
    if (tl == 0 || tl > MSG_MAX_TOPIC_LEN || m->body != req->body)
        return -1;
    struct send_batch *sb = t_batch;
    if (sb && sb->b != b) {
        batch_store(sb);
        sb = NULL;
    }
    if (!sb) {
        sb = ferry_malloc(sizeof *sb);
        sb->b = b;
        sb->conn = conn;
        sb->n = 0;
        sb->rc = 0;
        sb->ha_rc = 0;
        sb->bytes = 0;
        if (remoting_defer(conn, batch_turn_end, NULL) != 0) {
            ferry_free(sb);
            return -1; /* not on an I/O thread */
        }
        remoting_conn_ref(conn);
        t_batch = sb;
    }
    ctx->msg = *m;
    memcpy(ctx->topic, m->topic, tl + 1);
    ctx->msg.topic = ctx->topic;
    if (m->body_len)
        memcpy(ctx->body, m->body, m->body_len);
    ctx->msg.body = ctx->body;
    ctx->res = &ctx->one;
    sb->ctx[sb->n] = ctx;
    sb->msgs[sb->n] = ctx->msg;
    sb->rcs[sb->n] = 0;
    sb->n++;
    sb->bytes += m->body_len + m->props_len + tl + 128;
    if (sb->n == SEND_BATCH_MAX || sb->bytes >= SEND_BATCH_BYTES)
        batch_store(sb);
    return 0;
}

/* Decode a batch body (§3.7) into @msgs; each entry's properties get the batch-level ones and
 * CLUSTER appended. Returns the count, or -1 with @remark. */
int broker_batch_decode(const uint8_t *body_in, size_t body_len, struct rstr batch_props,
                        const char *cluster, const struct store_msg *tmpl, struct store_msg **out,
                        char **props_out, char *remark, size_t cap)
{
    /* An empty body may be NULL, and NULL + 0 is undefined. */
    const uint8_t *p = body_in, *end = body_len ? body_in + body_len : body_in;
    struct sbuf props;
    struct store_msg *msgs = NULL;
    size_t *offs = NULL, *lens = NULL;
    int n = 0, cap_n = 0;

    bsb_init(&props);
    while (p < end) {
        if (end - p < 20) {
            snprintf(remark, cap, "the batch body is malformed: entry %d is truncated", n);
            goto fail;
        }
        int32_t flag = (int32_t)be32_get(p + 12);
        uint32_t blen = be32_get(p + 16);
        if (blen > (uint32_t)(end - p - 20) || (size_t)(end - p - 20) - blen < 2) {
            snprintf(remark, cap, "the batch body is malformed: entry %d body length %u", n, blen);
            goto fail;
        }
        const uint8_t *body = p + 20;
        uint16_t plen = be16_get(body + blen);
        const uint8_t *pp = body + blen + 2;
        if (plen > end - pp) {
            snprintf(remark, cap, "the batch body is malformed: entry %d properties length %u", n,
                     plen);
            goto fail;
        }
        if (n == cap_n) {
            cap_n = cap_n ? cap_n * 2 : 16;
            msgs = ferry_realloc(msgs, (size_t)cap_n * sizeof *msgs);
            offs = ferry_realloc(offs, (size_t)cap_n * sizeof *offs);
            lens = ferry_realloc(lens, (size_t)cap_n * sizeof *lens);
        }
        msgs[n] = *tmpl;
        msgs[n].flag = flag;
        msgs[n].body = body;
        msgs[n].body_len = blen;
        offs[n] = props.len;
        add_props(&props, (const char *)pp, plen, 0);
        add_props(&props, batch_props.p, batch_props.len, 0);
        add_cluster(&props, cluster);
        lens[n] = props.len - offs[n];
        n++;
        p = pp + plen;
    }
    if (n == 0) {
        snprintf(remark, cap, "the batch body is empty");
        goto fail;
    }
    if (!props.p)
        bsb_add(&props, "", 0);
    for (int i = 0; i < n; i++) {
        msgs[i].props = props.p + offs[i];
        msgs[i].props_len = (uint32_t)lens[i];
    }
    ferry_free(offs);
    ferry_free(lens);
    *out = msgs;
    *props_out = props.p;
    return n;
fail:
    ferry_free(msgs);
    ferry_free(offs);
    ferry_free(lens);
    bsb_free(&props);
    return -1;
}

/* Java msgCheck + handleRetryAndDLQ: the topic config to store into, @topic/@qid possibly
 * rewritten (DLQ). Returns 0 or answers and returns -1. */
static int check_topic(broker_t *b, conn_t *conn, const struct rcmd *req, struct send_hdr *h,
                       struct rcmd *resp, struct topic_config *tc)
{
    char remark[320];
    int created = 0;

    if (topics_name_check(h->topic, remark, sizeof remark) != 0)
        goto sys_error;
    if (topics_not_allowed_send(h->topic)) {
        resp->code = RESP_NO_PERMISSION;
        snprintf(remark, sizeof remark, "Sending message to topic[%s] is forbidden.", h->topic);
        goto answer;
    }
    if (topics_get(b, h->topic, tc) != 0) {
        int32_t tsf = h->unit_mode ? (strncmp(h->topic, RETRY_PREFIX, 7) == 0 ? 2 : 1) : 0;
        int rc = topics_create_for_send(b, h->topic, h->default_topic, h->default_qnums, tsf, tc,
                                        &created);
        if (rc != 0 && strncmp(h->topic, RETRY_PREFIX, 7) == 0) {
            topics_create_if_missing(b, h->topic, 1, PERM_READ | PERM_WRITE, tsf, tc, &created);
            rc = 0;
        }
        if (rc != 0) {
            resp->code = RESP_TOPIC_NOT_EXIST;
            snprintf(remark, sizeof remark, "topic[%s] not exist, apply first please!", h->topic);
            goto answer;
        }
        if (created)
            broker_reg_trigger(b);
    }
    int32_t valid = tc->write_queues > tc->read_queues ? tc->write_queues : tc->read_queues;
    if (h->qid >= valid) {
        snprintf(remark, sizeof remark,
                 "request queueId[%d] is illegal, topic[%s] readQueueNums=%d writeQueueNums=%d "
                 "Producer: %s",
                 h->qid, h->topic, tc->read_queues, tc->write_queues, remoting_conn_peer(conn));
        goto sys_error;
    }
    if (h->qid < 0) {
        if (tc->write_queues <= 0) {
            snprintf(remark, sizeof remark, "topic[%s] has no writable queue", h->topic);
            goto sys_error;
        }
        h->qid = (int32_t)((unsigned)rand() % (unsigned)tc->write_queues);
    }
    if (strncmp(h->topic, RETRY_PREFIX, 7) == 0) {
        const char *group = h->topic + 7;
        struct group_config gc;
        if (groups_find(b, group, &gc) != 0) {
            resp->code = RESP_SUBSCRIPTION_GROUP_NOT_EXIST;
            snprintf(remark, sizeof remark, "subscription group not exist, %s", group);
            goto answer;
        }
        int32_t max = gc.retry_max_times;
        if (req->version >= 121 && h->has_max_reconsume)
            max = h->max_reconsume;
        if (h->reconsume >= max) {
            char dlq[TOPIC_BUF];
            snprintf(dlq, sizeof dlq, "%s%s", DLQ_PREFIX, group);
            if (topics_name_check(dlq, remark, sizeof remark) != 0)
                goto sys_error;
            topics_create_if_missing(b, dlq, 1, PERM_READ | PERM_WRITE, 0, tc, &created);
            if (created)
                broker_reg_trigger(b);
            snprintf(h->topic, sizeof h->topic, "%s", dlq);
            h->qid = 0;
        }
    }
    return 0;
sys_error:
    resp->code = RESP_SYSTEM_ERROR;
answer:
    resp->remark = (struct rstr){remark, strlen(remark)};
    remoting_respond(conn, resp);
    return -1;
}

void broker_on_send(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct send_hdr h;
    struct topic_config tc;
    struct rcmd resp;
    char remark[320];
    struct store_msg one, *msgs = &one;
    struct send_ctx *ctx = NULL;
    int n = 1;

    if (!broker_ready(b, conn, req))
        return;
    int64_t t0_ns = clock_mono_ns();
    rcmd_init_response(&resp, req, RESP_SYSTEM_ERROR, NULL);
    rcmd_ext_add(&resp, "MSG_REGION", b->cfg.regionId);
    rcmd_ext_add(&resp, "TRACE_ON", b->cfg.traceOn ? "true" : "false");
    if (parse_header(req, &h, remark, sizeof remark) != 0)
        goto answer;
    if (req->code == REQ_SEND_BATCH_MESSAGE && rcmd_ext_get(req, "m") == NULL)
        h.batch = 1; /* the batch code without the flag: its body is a batch all the same */
    int role = broker_role(b);
    if (role == BROKER_SLAVE || !(b->cfg.brokerPermission & PERM_WRITE)) {
        resp.code = role == BROKER_SLAVE ? RESP_SERVICE_NOT_AVAILABLE : RESP_NO_PERMISSION;
        snprintf(remark, sizeof remark, "the broker[%s] sending message is forbidden%s", b->ip,
                 role == BROKER_SLAVE ? ": it is a slave" : "");
        goto answer;
    }
    if (check_topic(b, conn, req, &h, &resp, &tc) != 0)
        return;
    size_t dlen;
    int half = tx_is_half(h.props.p, h.props.len); /* TRAN_MSG=true (transaction.c) */
    int tx = h.sys_flag & SYSFLAG_TX_MASK;
    if ((!half && (tx == SYSFLAG_TX_PREPARED || tx == SYSFLAG_TX_ROLLBACK)) || (half && h.batch)) {
        resp.code = RESP_MESSAGE_ILLEGAL;
        snprintf(remark, sizeof remark, "%s",
                 half ? "a batch cannot be a transactional half message"
                      : "a prepared or rolled-back transaction sysFlag needs TRAN_MSG=true");
        goto answer;
    }
    if (req->body_len > (size_t)b->cfg.store.maxMessageSize) {
        resp.code = RESP_MESSAGE_ILLEGAL;
        snprintf(remark, sizeof remark,
                 "the message body size %zu bytes is over the limit maxMessageSize=%d bytes",
                 req->body_len, b->cfg.store.maxMessageSize);
        goto answer;
    }

    ctx = ferry_malloc(sizeof *ctx + (h.batch ? 0 : req->body_len));
    memset(ctx, 0, sizeof *ctx);
    ctx->b = b;
    ctx->qid = h.qid;
    const char *wait = msg_prop_get(h.props.p ? h.props.p : "", h.props.len, "WAIT", &dlen);
    ctx->wait = !(wait && dlen == 5 && strncasecmp(wait, "false", 5) == 0);
    ctx->sync_master = role == BROKER_SYNC_MASTER;
    ctx->t0_ns = t0_ns;
    ctx->ts = bmetrics_topic(b, h.topic);
    memset(&one, 0, sizeof one);
    one.topic = h.topic;
    one.queue_id = h.qid;
    one.flag = h.flag;
    one.sys_flag = h.sys_flag & ~(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6);
    if (tc.filter_type == FILTER_MULTI_TAG)
        one.sys_flag |= SYSFLAG_MULTI_TAGS;
    one.born_ts = h.born_ts;
    if (host_parse_cached(remoting_conn_peer(conn), &one.born_host, 0) != 0)
        memset(&one.born_host, 0, sizeof one.born_host);
    one.reconsume_times = h.reconsume;
    if (h.batch) {
        ctx->is_batch = 1;
        n = broker_batch_decode(req->body, req->body_len, h.props, b->cfg.brokerClusterName, &one,
                                &msgs, &ctx->props_buf, remark, sizeof remark);
        if (n < 0) {
            resp.code = RESP_MESSAGE_ILLEGAL;
            goto answer;
        }
        ctx->res = ferry_calloc((size_t)n, sizeof *ctx->res);
    } else {
        struct sbuf props;
        bsb_init(&props);
        add_props(&props, h.props.p, h.props.len, 1);
        add_cluster(&props, b->cfg.brokerClusterName);
        one.props = props.p;
        one.props_len = (uint32_t)props.len;
        one.body = req->body;
        one.body_len = (uint32_t)req->body_len;
        /* a half message goes to the half topic (transaction.c); DELAY / timer properties to
         * the schedule or timer topic (schedule.c) */
        int prc = 0;
        if (half)
            tx_prepare_half(b, &one, &props);
        else
            prc = sched_prepare(b, &one, &props, remark, sizeof remark);
        ctx->props_buf = props.p;
        ctx->res = &ctx->one;
        if (prc) {
            resp.code = RESP_MESSAGE_ILLEGAL;
            goto answer;
        }
    }
    ctx->n = n;
    broker_reply_init(&ctx->rt, conn, req);
    if (!h.batch && batch_add(b, conn, ctx, &one, req) == 0)
        return; /* stored and answered at the end of this loop turn */
    /* From here on the context belongs to the store call: the callback may run (on a store
     * thread) before store_put_async() returns, so nothing below touches @ctx after a 1. */
    int rc = store_put_async(b->store, msgs, n, ctx->res, on_stored, ctx);
    if (msgs != &one)
        ferry_free(msgs);
    if (rc != 1)
        send_complete(ctx, rc);
    return;

answer:
    if (ctx) {
        if (msgs != &one)
            ferry_free(msgs);
        ctx_free(ctx);
    }
    resp.remark = (struct rstr){remark, strlen(remark)};
    remoting_respond(conn, &resp);
}
