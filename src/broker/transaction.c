/* Transactional messages (Java 4.9.8 TransactionalMessageServiceImpl, EndTransactionProcessor,
 * TransactionalMessageCheckService), with FerryMQ's bookkeeping:
 *
 *   - A send with TRAN_MSG=true is a half message: stored in RMQ_SYS_TRANS_HALF_TOPIC (queue 0)
 *     with REAL_TOPIC / REAL_QID, invisible to consumers (tx_prepare_half()).
 *   - END_TRANSACTION commit stores the message in its real topic (sysFlag COMMIT, TRAN_MSG
 *     removed) and then an op marker in RMQ_SYS_TRANS_OP_HALF_TOPIC (body: the half's queue
 *     offset, tag "d"); rollback writes only the marker. A half that is already resolved is
 *     answered SUCCESS without a second delivery.
 *   - The check thread keeps the unresolved halves in memory (a ring in half-queue order, read
 *     from the half queue and matched against the op queue, both rebuilt at start from
 *     config/transaction.json), and every transactionCheckInterval sends CHECK_TRANSACTION_STATE
 *     to a live producer of the half's group for each half older than transactionTimeOut; after
 *     transactionCheckMax checks the half is stored in TRANS_CHECK_MAX_TIME_TOPIC, logged and
 *     resolved.
 *   - Crash between a commit's copy and its marker: before checking a half that was stored
 *     before this start, the index is asked for a committed copy with the same UNIQ_KEY in the
 *     real topic; if there is one the half is resolved without a check (no second delivery).
 *
 * Roles: only a master checks back and resolves (both append to the store, which a slave must
 * never do on its own). The thread runs on every broker and follows the role: idle on a slave
 * and from the moment a master is demoted (tx_wait_idle() lets the demotion wait for a round in
 * flight); when the broker becomes master (controller mode) it forgets what it knew and reads
 * the half and op queues again from their oldest offsets, since its own progress file may
 * describe a log tail the HA handshake cut. Until then END_TRANSACTION is refused like on a
 * slave (the producer's check-back answer resolves the half later).
 *
 * Locking: tx->mu guards the ring and the counters; never held across store or network I/O. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_BATCH  32
#define OP_TAG      "d"
#define CHECK_BATCH 256 /* checks sent per round at most */

enum { TX_OPEN = 0, TX_RESOLVING, TX_DONE };

struct hentry {
    int64_t phys;
    int64_t store_ts;
    int64_t next_check; /* wall ms */
    int64_t op_off;     /* op-queue offset of the marker that resolved it, -1 */
    int state;
    int checks;
};

struct tx {
    broker_t *b;
    pthread_t thr;
    int running, stop;
    int active; /* checking and resolving (the broker is a master); written by the thread */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct hentry *ring; /* half offsets [base, base + n) */
    size_t head, n, cap;
    int64_t base;            /* every half below is resolved */
    int64_t op_scanned;      /* next op-queue offset to read */
    int64_t op_start;        /* op-queue offset the start-up scan began at */
    int64_t start_ms;        /* wall clock at start: older halves may predate a crash */
    int64_t need_phys;       /* end of the latest copy or marker written (persist after it) */
    pthread_mutex_t scan_mu; /* one scan at a time */
    int dirty;
    int64_t next_persist, next_check;
    char path[4200];
};

/* ---- the send side ---- */

int tx_is_half(const char *props, size_t len)
{
    size_t vl;
    const char *v = msg_prop_get(props ? props : "", len, "TRAN_MSG", &vl);
    return v && vl == 4 && strncasecmp(v, "true", 4) == 0;
}

void tx_prepare_half(broker_t *b, struct store_msg *m, struct sbuf *props)
{
    char qid[16];
    (void)b;
    snprintf(qid, sizeof qid, "%d", m->queue_id);
    brec_prop_add(props, "REAL_TOPIC", 10, m->topic, strlen(m->topic));
    brec_prop_add(props, "REAL_QID", 8, qid, strlen(qid));
    m->topic = TRANS_HALF_TOPIC;
    m->queue_id = 0;
    m->sys_flag &= ~SYSFLAG_TX_MASK; /* stored as a plain message of the half topic */
    m->props = props->p;
    m->props_len = (uint32_t)props->len;
}

/* ---- the ring of halves ---- */

static struct hentry *at(struct tx *t, int64_t off)
{
    if (off < t->base || off >= t->base + (int64_t)t->n)
        return NULL;
    return &t->ring[(t->head + (size_t)(off - t->base)) % t->cap];
}

static void ring_push(struct tx *t, const struct hentry *e)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        struct hentry *r = ferry_malloc(cap * sizeof *r);
        for (size_t i = 0; i < t->n; i++)
            r[i] = t->ring[(t->head + i) % t->cap];
        ferry_free(t->ring);
        t->ring = r;
        t->cap = cap;
        t->head = 0;
    }
    t->ring[(t->head + t->n++) % t->cap] = *e;
}

static void pop_done(struct tx *t)
{
    while (t->n && t->ring[t->head].state == TX_DONE) {
        t->head = (t->head + 1) % t->cap;
        t->n--;
        t->base++;
        t->dirty = 1;
    }
}

/* Read new halves and new op markers. @locks nothing (takes t->mu) */
static void scan(struct tx *t)
{
    store_t *st = t->b->store;
    struct store_slice sl[READ_BATCH];
    pthread_mutex_lock(&t->scan_mu);
    for (;;) { /* halves */
        pthread_mutex_lock(&t->mu);
        int64_t next = t->base + (int64_t)t->n;
        pthread_mutex_unlock(&t->mu);
        struct get_request rq = {.topic = TRANS_HALF_TOPIC,
                                 .queue_id = 0,
                                 .offset = next,
                                 .max_msgs = READ_BATCH,
                                 .max_bytes = 4 << 20};
        struct get_result gr = {.msgs = sl};
        if (store_get(st, &rq, &gr) != 0)
            break;
        if (gr.status == GET_OFFSET_TOO_SMALL) { /* expired halves: nothing to resolve */
            pthread_mutex_lock(&t->mu);
            if (t->n == 0 && gr.next_offset > t->base) {
                t->base = gr.next_offset;
                t->dirty = 1;
            }
            pthread_mutex_unlock(&t->mu);
            if (gr.n)
                store_release(sl, gr.n);
            if (gr.next_offset > next && t->n == 0)
                continue;
            break;
        }
        if (gr.status != GET_FOUND || gr.n == 0) {
            if (gr.n)
                store_release(sl, gr.n);
            break;
        }
        pthread_mutex_lock(&t->mu);
        for (int k = 0; k < gr.n; k++) {
            struct msg_view v;
            struct hentry e = {.phys = sl[k].phys_offset, .op_off = -1};
            if (sl[k].queue_offset != t->base + (int64_t)t->n)
                break;
            if (msg_parse(sl[k].data, sl[k].len, &v) == 0)
                e.store_ts = v.store_ts;
            e.next_check = e.store_ts + t->b->cfg.transactionTimeOut;
            ring_push(t, &e);
        }
        pthread_mutex_unlock(&t->mu);
        store_release(sl, gr.n);
    }
    for (;;) { /* op markers */
        struct get_request rq = {.topic = TRANS_OP_TOPIC,
                                 .queue_id = 0,
                                 .offset = t->op_scanned,
                                 .max_msgs = READ_BATCH,
                                 .max_bytes = 4 << 20};
        struct get_result gr = {.msgs = sl};
        if (store_get(st, &rq, &gr) != 0)
            break;
        if (gr.status == GET_OFFSET_TOO_SMALL) {
            t->op_scanned = gr.next_offset;
            if (gr.n)
                store_release(sl, gr.n);
            continue;
        }
        if (gr.status != GET_FOUND || gr.n == 0) {
            if (gr.n)
                store_release(sl, gr.n);
            break;
        }
        int behind = 0;
        pthread_mutex_lock(&t->mu);
        for (int k = 0; k < gr.n && !behind; k++) {
            struct msg_view v;
            char num[24];
            if (msg_parse(sl[k].data, sl[k].len, &v) == 0 && v.body_len < sizeof num) {
                memcpy(num, v.body, v.body_len);
                num[v.body_len] = 0;
                int64_t half = strtoll(num, NULL, 10);
                struct hentry *e = at(t, half);
                if (!e && half >= t->base + (int64_t)t->n) {
                    behind = 1; /* its half is not read yet: read the marker again later */
                    break;
                }
                if (e) {
                    e->state = TX_DONE;
                    e->op_off = sl[k].queue_offset;
                }
            }
            t->op_scanned = sl[k].queue_offset + 1;
        }
        pop_done(t);
        pthread_mutex_unlock(&t->mu);
        store_release(sl, gr.n);
        if (behind)
            break;
    }
    pthread_mutex_unlock(&t->scan_mu);
}

/* ---- resolving ---- */

static void wrote(struct tx *t, const struct put_result *res)
{
    pthread_mutex_lock(&t->mu);
    if (res->phys_offset + res->size > t->need_phys)
        t->need_phys = res->phys_offset + res->size;
    pthread_mutex_unlock(&t->mu);
}

/* Store the op marker of half @off. */
static int write_marker(struct tx *t, int64_t off)
{
    broker_t *b = t->b;
    char body[24], props[64];
    struct store_msg m;
    struct put_result res;
    memset(&m, 0, sizeof m);
    snprintf(body, sizeof body, "%" PRId64, off);
    snprintf(props, sizeof props, "TAGS%c" OP_TAG, PROP_NAME_SEP);
    m.topic = TRANS_OP_TOPIC;
    m.body = body;
    m.body_len = (uint32_t)strlen(body);
    m.props = props;
    m.props_len = (uint32_t)strlen(props);
    m.born_ts = clock_wall_ms();
    broker_host_parse(b->addr, &m.born_host);
    int rc = store_put(b->store, &m, 1, &res);
    if (rc == 0 || rc == FERRY_ETIMEDOUT)
        wrote(t, &res);
    return rc == FERRY_ETIMEDOUT ? 0 : rc;
}

/* The copy for @topic (REAL_TOPIC or the discard topic): properties without TRAN_MSG, REAL_*
 * and the CRC; sysFlag @tx. */
static void build_copy(const struct msg_view *v, struct store_msg *d, const char *topic,
                       int32_t qid, int32_t tx, struct sbuf *props)
{
    static const char *const drop[] = {"TRAN_MSG", "REAL_TOPIC", "REAL_QID", NULL};
    brec_to_msg(v, d);
    d->topic = topic;
    d->queue_id = qid;
    d->sys_flag = (d->sys_flag & ~SYSFLAG_TX_MASK) | tx;
    d->prepared_tx_offset = 0;
    props->len = 0;
    brec_props_copy(props, v->props, v->props_len, drop, 0);
    d->props = props->p;
    d->props_len = (uint32_t)props->len;
}

/* Take half @off for resolving: 1 when it was open (now RESOLVING), 0 when already resolved or
 * being resolved. Halves not scanned yet are taken too (returns 1 with no entry). */
static int claim(struct tx *t, int64_t off)
{
    int ok;
    pthread_mutex_lock(&t->mu);
    int unseen = off >= t->base + (int64_t)t->n;
    pthread_mutex_unlock(&t->mu);
    if (unseen)
        scan(t); /* the half was just stored: read it so that it can be claimed */
    pthread_mutex_lock(&t->mu);
    struct hentry *e = at(t, off);
    if (off < t->base)
        ok = 0;
    else if (!e)
        ok = 1;
    else if ((ok = e->state == TX_OPEN) != 0)
        e->state = TX_RESOLVING;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void settle(struct tx *t, int64_t off, int done)
{
    pthread_mutex_lock(&t->mu);
    struct hentry *e = at(t, off);
    if (e && e->state == TX_RESOLVING)
        e->state = done ? TX_DONE : TX_OPEN;
    pop_done(t);
    pthread_mutex_unlock(&t->mu);
}

/* Commit (store the real copy, then the marker) or roll back (marker) half @v at @off.
 * 0 or a store error (the half stays open). */
static int resolve(struct tx *t, const struct msg_view *v, int64_t off, int commit,
                   const char *discard_topic)
{
    broker_t *b = t->b;
    int rc = 0;
    if (commit || discard_topic) {
        char topic[256];
        int32_t qid = 0;
        struct store_msg d;
        struct put_result res;
        struct sbuf props;
        if (discard_topic)
            snprintf(topic, sizeof topic, "%s", discard_topic);
        else if (brec_real_target(v, topic, sizeof topic, &qid) != 0)
            return FERRY_EINVAL;
        bsb_init(&props);
        build_copy(v, &d, topic, qid, discard_topic ? SYSFLAG_TX_NOT : SYSFLAG_TX_COMMIT, &props);
        rc = store_put(b->store, &d, 1, &res);
        bsb_free(&props);
        if (rc == FERRY_ETIMEDOUT)
            rc = 0;
        if (rc == 0)
            wrote(t, &res);
    }
    if (rc == 0)
        rc = write_marker(t, off);
    return rc;
}

/* ---- END_TRANSACTION ---- */

/* Whether the check thread has taken up the master role (its state describes this log). */
static int tx_active(struct tx *t)
{
    pthread_mutex_lock(&t->mu);
    int active = t->active;
    pthread_mutex_unlock(&t->mu);
    return active;
}

void broker_on_end_transaction(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct tx *t = b->tx;
    struct hdrs h;
    char group[NAME_MAX_LEN + 1];
    int64_t off, phys;
    int32_t type;
    int from_check;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&h, req);
    bhdrs_str(&h, "producerGroup", group, sizeof group, 1);
    bhdrs_i64(&h, "tranStateTableOffset", &off, 0, 1);
    bhdrs_i64(&h, "commitLogOffset", &phys, 0, 1);
    bhdrs_i32(&h, "commitOrRollback", &type, 0, 1);
    bhdrs_bool(&h, "fromTransactionCheck", &from_check, 0);
    if (h.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", h.remark);
        return;
    }
    if (broker_role(b) == BROKER_SLAVE || !tx_active(t)) {
        broker_respond(conn, req, RESP_SLAVE_NOT_AVAILABLE,
                       "Message store is slave mode, so end transaction is forbidden. ");
        return;
    }
    if (type != SYSFLAG_TX_COMMIT && type != SYSFLAG_TX_ROLLBACK) {
        /* TRANSACTION_NOT_TYPE: the producer does not know yet; Java answers nothing */
        broker_respond(conn, req, RESP_SUCCESS, NULL);
        return;
    }
    struct store_slice sl;
    struct msg_view v;
    if (store_read_at(b->store, phys, &sl) != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "Find prepared transaction message failed");
        return;
    }
    size_t gl;
    const char *pg = msg_parse(sl.data, sl.len, &v) == 0
                         ? msg_prop_get(v.props, v.props_len, "PGROUP", &gl)
                         : NULL;
    if (!pg || v.topic_len != strlen(TRANS_HALF_TOPIC) ||
        memcmp(v.topic, TRANS_HALF_TOPIC, v.topic_len) != 0 || v.queue_offset != off) {
        store_release(&sl, 1);
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "the message at commitLogOffset %" PRId64
                       " is not the prepared message of tranStateTableOffset %" PRId64,
                       phys, off);
        return;
    }
    if (gl != strlen(group) || memcmp(pg, group, gl) != 0) {
        store_release(&sl, 1);
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "The producer group wrong: the prepared message belongs to another group");
        return;
    }
    if (!claim(t, off)) {
        store_release(&sl, 1);
        log_info(LOG_BROKER, "END_TRANSACTION %s for half %" PRId64 " of %s: already resolved",
                 type == SYSFLAG_TX_COMMIT ? "commit" : "rollback", off, group);
        broker_respond(conn, req, RESP_SUCCESS, NULL);
        return;
    }
    /* Synchronous store calls: END_TRANSACTION is rare next to sends, and the answer must follow
     * the durable copy. */
    int rc = resolve(t, &v, off, type == SYSFLAG_TX_COMMIT, NULL);
    store_release(&sl, 1);
    settle(t, off, rc == 0);
    if (rc) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "end transaction: store error: %s",
                       ferry_strerror(rc));
        return;
    }
    log_debug(LOG_BROKER, "transaction %" PRId64 " of %s %s%s", off, group,
              type == SYSFLAG_TX_COMMIT ? "committed" : "rolled back",
              from_check ? " (check)" : "");
    broker_respond(conn, req, RESP_SUCCESS, NULL);
}

/* ---- check-back ---- */

/* A live producer connection of @group (referenced), or NULL. */
static conn_t *producer_conn(broker_t *b, const char *group, uint32_t pick)
{
    conn_t *c = NULL;
    pthread_mutex_lock(&b->clients.mu);
    const struct pgroup *g = bmap_get(&b->clients.producers, group);
    for (int i = 0; g && i < g->n_chans && !c; i++) {
        conn_t *x = g->chans[(pick + (uint32_t)i) % (uint32_t)g->n_chans].conn;
        if (remoting_conn_is_open(x)) {
            c = x;
            remoting_conn_ref(c);
        }
    }
    pthread_mutex_unlock(&b->clients.mu);
    return c;
}

/* A committed copy of half @v already in its real topic (a commit cut short by a crash)? */
static int committed_copy(broker_t *b, const struct msg_view *v)
{
    char topic[256];
    int32_t qid;
    size_t kl;
    char key[64];
    const char *uk = msg_prop_get(v->props, v->props_len, "UNIQ_KEY", &kl);
    if (!uk || kl >= sizeof key || brec_real_target(v, topic, sizeof topic, &qid) != 0)
        return 0;
    memcpy(key, uk, kl);
    key[kl] = 0;
    struct store_slice sl[4];
    /* the index keeps store times in whole seconds from its file's first entry: start a
     * little before the half; the body CRC and born time below reject other messages */
    int n = store_query_by_key(b->store, topic, key, v->store_ts - 2000, INT64_MAX, sl, 4);
    int found = 0;
    for (int i = 0; i < n; i++) {
        struct msg_view c;
        if (msg_parse(sl[i].data, sl[i].len, &c) == 0 &&
            (c.sys_flag & SYSFLAG_TX_MASK) == SYSFLAG_TX_COMMIT && c.body_crc == v->body_crc &&
            c.born_ts == v->born_ts)
            found = 1; /* same id, same body, same birth: this half's commit */
    }
    if (n > 0)
        store_release(sl, n);
    return found;
}

/* CHECK_TRANSACTION_STATE to @conn: the half as the real message (record form, as Java's
 * MessageDecoder.encode of the restored message). */
static int send_check(broker_t *b, conn_t *conn, const struct msg_view *v, int64_t off)
{
    char topic[256], oid[64], uk[64] = "";
    int32_t qid;
    size_t kl;
    if (brec_real_target(v, topic, sizeof topic, &qid) != 0)
        return FERRY_EINVAL;
    struct store_msg m;
    struct sbuf props;
    bsb_init(&props);
    build_copy(v, &m, topic, qid, SYSFLAG_TX_PREPARED, &props);
    /* keep TRAN_MSG: clients look at it */
    char pair = PROP_PAIR_SEP, sep = PROP_NAME_SEP;
    if (props.len)
        bsb_add(&props, &pair, 1);
    bsb_str(&props, "TRAN_MSG");
    bsb_add(&props, &sep, 1);
    bsb_str(&props, "true");
    m.props = props.p;
    m.props_len = (uint32_t)props.len;
    struct msg_host sh;
    broker_host_parse(b->addr, &sh);
    size_t len = msg_record_size(&m, &sh, 0);
    if (!len) {
        bsb_free(&props);
        return FERRY_EINVAL;
    }
    uint8_t *rec = ferry_malloc(len);
    size_t ts_off = msg_encode(&m, &sh, 0, rec, len, NULL);
    msg_seal(rec, len, ts_off, v->queue_offset, v->phys_offset, v->store_ts, NULL);
    bsb_free(&props);
    const char *u = msg_prop_get(v->props, v->props_len, "UNIQ_KEY", &kl);
    if (u && kl < sizeof uk) {
        memcpy(uk, u, kl);
        uk[kl] = 0;
    }
    msg_offset_id(v, oid);
    struct rcmd req;
    rcmd_init_request(&req, REQ_CHECK_TRANSACTION_STATE);
    rcmd_ext_add_i64(&req, "tranStateTableOffset", off);
    rcmd_ext_add_i64(&req, "commitLogOffset", v->phys_offset);
    rcmd_ext_add(&req, "msgId", uk[0] ? uk : oid);
    rcmd_ext_add(&req, "transactionId", uk[0] ? uk : oid);
    rcmd_ext_add(&req, "offsetMsgId", oid);
    req.body = rec;
    req.body_len = len;
    int rc = remoting_conn_oneway(conn, &req);
    ferry_free(rec);
    return rc;
}

/* One round: every open half older than transactionTimeOut and due gets a check. */
static void check_round(struct tx *t, int64_t now)
{
    broker_t *b = t->b;
    int64_t offs[CHECK_BATCH];
    int n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n && n < CHECK_BATCH; i++) {
        struct hentry *e = &t->ring[(t->head + i) % t->cap];
        if (e->state == TX_OPEN && e->next_check <= now &&
            now - e->store_ts >= b->cfg.transactionTimeOut)
            offs[n++] = t->base + (int64_t)i;
    }
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < n; i++) {
        int64_t off = offs[i];
        pthread_mutex_lock(&t->mu);
        struct hentry *e = at(t, off);
        int open = e && e->state == TX_OPEN;
        int64_t phys = open ? e->phys : 0;
        int checks = open ? e->checks : 0;
        if (open)
            e->next_check = now + b->cfg.transactionCheckInterval;
        pthread_mutex_unlock(&t->mu);
        if (!open)
            continue;
        struct store_slice sl;
        struct msg_view v;
        if (store_read_at(b->store, phys, &sl) != 0) { /* expired: nothing left to resolve */
            if (claim(t, off))
                settle(t, off, 1);
            continue;
        }
        if (msg_parse(sl.data, sl.len, &v) != 0) {
            if (claim(t, off))
                settle(t, off, 1);
        } else if (v.store_ts < t->start_ms && committed_copy(b, &v)) {
            if (claim(t, off)) /* the commit happened; its marker was lost in a crash */
                settle(t, off, write_marker(t, off) == 0);
        } else if (checks >= b->cfg.transactionCheckMax) {
            if (claim(t, off)) {
                log_error(LOG_BROKER,
                          "transaction half %" PRId64 " (CommitLog %" PRId64
                          ") unresolved after %d checks: kept in " TRANS_DISCARD_TOPIC,
                          off, phys, checks);
                settle(t, off, resolve(t, &v, off, 0, TRANS_DISCARD_TOPIC) == 0);
            }
        } else {
            size_t gl;
            char group[NAME_MAX_LEN + 1] = "";
            const char *g = msg_prop_get(v.props, v.props_len, "PGROUP", &gl);
            if (g && gl < sizeof group) {
                memcpy(group, g, gl);
                group[gl] = 0;
            }
            conn_t *c = group[0] ? producer_conn(b, group, (uint32_t)(off + checks)) : NULL;
            if (c) {
                if (send_check(b, c, &v, off) == 0) {
                    pthread_mutex_lock(&t->mu);
                    if ((e = at(t, off)) != NULL)
                        e->checks++;
                    pthread_mutex_unlock(&t->mu);
                }
                remoting_conn_unref(c);
            } else {
                log_debug(LOG_BROKER, "transaction half %" PRId64 ": no producer of %s online", off,
                          group);
            }
        }
        store_release(&sl, 1);
    }
}

/* ---- progress ---- */

/* Write the progress when it moved and (@check) every copy and marker below it is on disk. */
static void persist(struct tx *t, int check)
{
    pthread_mutex_lock(&t->mu);
    if (!t->dirty || (check && store_flushed_phys(t->b->store) < t->need_phys)) {
        pthread_mutex_unlock(&t->mu); /* a copy or marker is not on disk yet: keep the old */
        return;
    }
    /* the op scan must restart at the first marker that resolved a half still in the ring */
    int64_t op_from = t->op_scanned;
    for (size_t i = 0; i < t->n; i++) {
        const struct hentry *e = &t->ring[(t->head + i) % t->cap];
        if (e->op_off >= 0 && e->op_off < op_from)
            op_from = e->op_off;
    }
    int64_t base = t->base;
    t->dirty = 0;
    pthread_mutex_unlock(&t->mu);
    struct sbuf sb;
    bsb_init(&sb);
    bsb_fmt(&sb, "{\"halfOffset\":%" PRId64 ",\"opOffset\":%" PRId64 "}", base, op_from);
    pthread_mutex_lock(&t->b->persist_mu);
    int rc = bmeta_write(t->b, t->path, &sb);
    pthread_mutex_unlock(&t->b->persist_mu);
    bsb_free(&sb);
    if (rc) {
        pthread_mutex_lock(&t->mu);
        t->dirty = 1;
        pthread_mutex_unlock(&t->mu);
    }
}

/* Follow the broker's role (see the file comment). Returns whether to check now. Thread only. */
static int follow_role(struct tx *t)
{
    int master = broker_role(t->b) != BROKER_SLAVE;
    pthread_mutex_lock(&t->mu);
    int active = t->active;
    pthread_mutex_unlock(&t->mu);
    if (master == active)
        return master;
    if (master) {
        store_t *st = t->b->store;
        pthread_mutex_lock(&t->scan_mu);
        pthread_mutex_lock(&t->mu);
        t->head = t->n = 0;
        t->base = store_min_offset(st, TRANS_HALF_TOPIC, 0);
        t->op_scanned = t->op_start = store_min_offset(st, TRANS_OP_TOPIC, 0);
        t->start_ms = clock_wall_ms(); /* every half: look for a committed copy first */
        t->dirty = 1;
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_unlock(&t->scan_mu);
        scan(t);
        log_info(LOG_BROKER,
                 "transactions: this broker is master; %d half messages unresolved, checking "
                 "back",
                 tx_pending(t->b, NULL));
    } else {
        persist(t, 1);
        log_info(LOG_BROKER, "transactions: this broker is a slave; not checking back");
    }
    pthread_mutex_lock(&t->mu);
    t->active = master;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    return master;
}

static void *tx_main(void *arg)
{
    struct tx *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        pthread_mutex_unlock(&t->mu);
        int64_t now = clock_wall_ms();
        if (follow_role(t)) {
            scan(t);
            if (now >= t->next_check) {
                check_round(t, now);
                t->next_check = now + t->b->cfg.transactionCheckInterval;
            }
            if (clock_mono_ms() >= t->next_persist) {
                persist(t, 1);
                t->next_persist = clock_mono_ms() + t->b->cfg.flushDelayOffsetInterval;
            }
        }
        pthread_mutex_lock(&t->mu);
        if (!t->stop) {
            struct timespec ts = clock_deadline_ts(200);
            pthread_cond_timedwait(&t->cond, &t->mu, &ts);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int tx_start(broker_t *b, char *err, size_t errlen)
{
    struct tx *t = ferry_calloc(1, sizeof *t);
    cJSON *doc = NULL;
    t->b = b;
    snprintf(t->path, sizeof t->path, "%s/transaction.json", b->config_dir);
    int rc = bmeta_load_json(t->path, &doc, err, errlen);
    if (rc) {
        ferry_free(t);
        return rc;
    }
    if (doc) {
        t->base = bjson_i64(doc, "halfOffset", 0);
        t->op_scanned = t->op_start = bjson_i64(doc, "opOffset", 0);
        cJSON_Delete(doc);
    }
    t->start_ms = clock_wall_ms();
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->scan_mu, NULL);
    pthread_cond_init(&t->cond, NULL);
    struct topic_config tc;
    int created;
    topics_create_if_missing(b, TRANS_HALF_TOPIC, 1, PERM_READ | PERM_WRITE, 0, &tc, &created);
    topics_create_if_missing(b, TRANS_OP_TOPIC, 1, PERM_READ | PERM_WRITE, 0, &tc, &created);
    b->tx = t;
    t->active = broker_role(b) != BROKER_SLAVE; /* a slave's thread waits to become master */
    if (t->active)
        scan(t); /* the state before the first END_TRANSACTION is answered */
    if ((rc = pthread_create(&t->thr, NULL, tx_main, t)) != 0) {
        snprintf(err, errlen, "start the transaction check thread: %s", strerror(rc));
        return -rc;
    }
    t->running = 1;
    return 0;
}

int tx_wait_idle(broker_t *b, int timeout_ms)
{
    struct tx *t = b->tx;
    if (!t || !t->running)
        return 0;
    return bwait_inactive(&t->mu, &t->cond, &t->active, &t->stop, timeout_ms);
}

void tx_stop(broker_t *b)
{
    struct tx *t = b->tx;
    if (!t || !t->running)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thr, NULL);
    t->running = 0;
    persist(t, 1);
}

void tx_free(broker_t *b, int store_flushed)
{
    struct tx *t = b->tx;
    if (!t)
        return;
    tx_stop(b);
    if (store_flushed) /* closed cleanly: every copy and marker is on disk */
        persist(t, 0);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->scan_mu);
    pthread_cond_destroy(&t->cond);
    ferry_free(t->ring);
    ferry_free(t);
    b->tx = NULL;
}

int tx_pending(broker_t *b, int64_t *oldest_store_ts)
{
    struct tx *t = b->tx;
    int n = 0;
    if (oldest_store_ts)
        *oldest_store_ts = 0;
    if (!t)
        return 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        const struct hentry *e = &t->ring[(t->head + i) % t->cap];
        if (e->state != TX_DONE) {
            if (oldest_store_ts && !n)
                *oldest_store_ts = e->store_ts;
            n++;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

void tx_pending_sample(broker_t *b, struct sbuf *sb, int max)
{
    struct tx *t = b->tx;
    int64_t offs[64], phys[64];
    int n = 0;
    if (!t)
        return;
    if (max > 64)
        max = 64;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n && n < max; i++) {
        const struct hentry *e = &t->ring[(t->head + i) % t->cap];
        if (e->state != TX_DONE) {
            offs[n] = t->base + (int64_t)i;
            phys[n++] = e->phys;
        }
    }
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < n; i++) {
        struct store_slice sl;
        struct msg_view v;
        char topic[256] = "?";
        int32_t qid;
        size_t gl = 0, kl = 0;
        const char *g = NULL, *k = NULL;
        if (store_read_at(b->store, phys[i], &sl) != 0)
            continue;
        if (msg_parse(sl.data, sl.len, &v) == 0) {
            brec_real_target(&v, topic, sizeof topic, &qid);
            g = msg_prop_get(v.props, v.props_len, "PGROUP", &gl);
            k = msg_prop_get(v.props, v.props_len, "UNIQ_KEY", &kl);
            bsb_fmt(sb, "%s%" PRId64 "@%" PRId64 "@%.*s@%s@%.*s", i ? ";" : "", offs[i], v.store_ts,
                    (int)gl, g ? g : "", topic, (int)kl, k ? k : "");
        }
        store_release(&sl, 1);
    }
}
