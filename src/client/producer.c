/* The producer (protocol/REMOTING.md §2.4.1, §4, §6.2; behaviour of Java 4.9.8
 * DefaultMQProducerImpl): validate, set UNIQ_KEY, compress, pick a queue (round-robin with
 * latency fault avoidance), send SEND_MESSAGE_V2, retry on another broker. */
#include "client/client_int.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <isa-l/igzip_lib.h>

#define SYSFLAG_COMPRESSED 0x1
#define SYSFLAG_ZLIB       0x300 /* compression type bits, as Java >= 4.9.4 */

struct ferry_producer {
    struct ferry_producer_config cfg;
    char client_id[192];
    struct route_cache rc;
    pthread_mutex_t lock; /* ft, counter, state */
    pthread_cond_t cond;  /* wakes the service thread at shutdown */
    struct fault_table ft;
    uint32_t counter;
    int started, shut;
    atomic_int live; /* started && !shut, read without the lock on every send */
    pthread_t service;
    int service_running;
    ferry_tx_check tx_check; /* transactions (tx_producer.c) */
    void *tx_check_arg;
};

#define HEARTBEAT_MS    30000 /* heartbeatBrokerInterval */
#define ROUTE_POLL_MS   30000 /* pollNameServerInterval */
#define SERVICE_TICK_MS 1000
#define SERVICE_RPC_MS  3000

static atomic_uint producer_seq;

/* A request ready to send: the header points into this. */
struct out_msg {
    struct rcmd req;
    char uniq[33];
    char qid[16]; /* header e of the current attempt */
    char *props;  /* props_small, or allocated when longer */
    char props_small[160];
    uint8_t *zbody;
};

void ferry_producer_config_init(struct ferry_producer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sendMsgTimeout = 3000;
    cfg->retryTimesWhenSendFailed = 2;
    cfg->retryTimesWhenSendAsyncFailed = 2;
    cfg->retryAnotherBrokerWhenNotStoreOK = 0;
    cfg->compressMsgBodyOverHowmuch = 4096;
    cfg->maxMessageSize = 4 * 1024 * 1024;
    cfg->sendLatencyFaultEnable = 1;
}

int ferry_producer_new(const struct ferry_producer_config *cfg, ferry_producer_t **out)
{
    ferry_producer_t *p;
    const char *env;
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (!cfg || !cfg->group[0] || !memchr(cfg->group, 0, sizeof cfg->group) ||
        !memchr(cfg->namesrvAddr, 0, sizeof cfg->namesrvAddr) || cfg->sendMsgTimeout <= 0 ||
        cfg->retryTimesWhenSendFailed < 0 || cfg->retryTimesWhenSendAsyncFailed < 0 ||
        cfg->compressMsgBodyOverHowmuch < 0 || cfg->maxMessageSize <= 0 ||
        !memchr(cfg->accessKey, 0, sizeof cfg->accessKey) ||
        !memchr(cfg->secretKey, 0, sizeof cfg->secretKey) ||
        !cfg->accessKey[0] != !cfg->secretKey[0])
        return FERRY_ECONFIG;
    p = ferry_calloc(1, sizeof *p);
    p->cfg = *cfg;
    if (!p->cfg.namesrvAddr[0] && (env = getenv("NAMESRV_ADDR")) != NULL)
        snprintf(p->cfg.namesrvAddr, sizeof p->cfg.namesrvAddr, "%s", env);
    if (route_cache_init(&p->rc, p->cfg.namesrvAddr) != 0 ||
        ROUTE_CACHE_TLS(&p->rc, &p->cfg) != 0) {
        route_cache_destroy(&p->rc);
        ferry_free(p);
        return FERRY_ECONFIG;
    }
    /* Broker connections share libferry's few I/O threads: with many producers (or brokers)
     * that saves most context switches. A send callback may still send (async) and fetch a
     * route (the name server connections keep their own threads). */
    p->rc.shared_io = 1;
    memcpy(p->rc.access_key, p->cfg.accessKey, sizeof p->rc.access_key); /* ACL signing */
    memcpy(p->rc.secret_key, p->cfg.secretKey, sizeof p->rc.secret_key);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    struct in_addr ia = {.s_addr = htonl(client_local_ipv4())};
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ia, ip, sizeof ip);
    snprintf(p->client_id, sizeof p->client_id, "%s@%d#p%u", ip, (int)getpid(),
             atomic_fetch_add(&producer_seq, 1));
    *out = p;
    return 0;
}

/* HEART_BEAT with the producer group to every broker connected to, so that brokers list the
 * producer (mqadmin producerConnection) and can reach it (transaction check-back). */
static void heartbeat(ferry_producer_t *p)
{
    char body[512];
    struct rcmd req;
    snprintf(body, sizeof body,
             "{\"clientID\":\"%s\",\"consumerDataSet\":[],\"producerDataSet\":[{"
             "\"groupName\":\"%s\"}]}",
             p->client_id, p->cfg.group);
    rcmd_init_request(&req, REQ_HEART_BEAT);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    route_cache_broadcast(&p->rc, &req, SERVICE_RPC_MS);
}

/* The background service: routes of the topics in use refreshed every 30 s, a heartbeat every
 * 30 s and as soon as a new broker is connected. */
static void *service_main(void *arg)
{
    ferry_producer_t *p = arg;
    int64_t next_hb = 0, next_routes = clock_mono_ms() + ROUTE_POLL_MS;
    int known = 0;
    unsigned connects = 0;
    pthread_mutex_lock(&p->lock);
    while (!p->shut) {
        struct timespec ts = clock_deadline_ts(SERVICE_TICK_MS);
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        if (p->shut)
            break;
        pthread_mutex_unlock(&p->lock);
        int64_t now = clock_mono_ms();
        int n;
        char **addrs = route_cache_addrs(&p->rc, &n);
        for (int i = 0; i < n; i++)
            ferry_free(addrs[i]);
        ferry_free(addrs);
        if (now >= next_routes) {
            route_cache_refresh_all(&p->rc, SERVICE_RPC_MS);
            next_routes = clock_mono_ms() + ROUTE_POLL_MS;
        }
        /* at once for a new broker or a reconnection (a restarted broker forgot us: it could
         * not check back transactions until our next heartbeat), else every 30 s */
        unsigned cn = atomic_load(&p->rc.connects);
        if (n > 0 && (n > known || cn != connects || now >= next_hb)) {
            connects = cn;
            heartbeat(p);
            known = n;
            next_hb = clock_mono_ms() + HEARTBEAT_MS;
        }
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int ferry_producer_start(ferry_producer_t *p)
{
    int rc = 0;
    if (!p)
        return FERRY_EINVAL;
    pthread_mutex_lock(&p->lock);
    if (p->shut) {
        rc = FERRY_ESHUTDOWN;
    } else if (!p->started) {
        p->started = 1;
        atomic_store(&p->live, 1);
        if (pthread_create(&p->service, NULL, service_main, p) == 0)
            p->service_running = 1;
        else
            rc = -EAGAIN;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void ferry_producer_shutdown(ferry_producer_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    int was = p->shut;
    p->shut = 1;
    atomic_store(&p->live, 0);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (was)
        return;
    if (p->service_running) {
        pthread_join(p->service, NULL);
        p->service_running = 0;
        struct rcmd req; /* as Java's unregisterClient: the brokers forget us now */
        rcmd_init_request(&req, REQ_UNREGISTER_CLIENT);
        rcmd_ext_add(&req, "clientID", p->client_id);
        rcmd_ext_add(&req, "producerGroup", p->cfg.group);
        route_cache_broadcast(&p->rc, &req, SERVICE_RPC_MS);
    }
    route_cache_close(&p->rc); /* pending async sends complete here */
}

void ferry_producer_free(ferry_producer_t *p)
{
    if (!p)
        return;
    ferry_producer_shutdown(p);
    route_cache_destroy(&p->rc);
    fault_clear(&p->ft);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    ferry_free(p);
}

static int usable(ferry_producer_t *p)
{
    return atomic_load_explicit(&p->live, memory_order_acquire);
}

/* ---- building the request ---- */

static int bad_prop(const char *s)
{
    return !s || !*s || strpbrk(s, "\001\002") != NULL;
}

static int check_msg(ferry_producer_t *p, const struct ferry_message *m)
{
    if (!m || !m->topic || !client_topic_ok(m->topic) || !m->body || !m->body_len ||
        (m->nprops && !m->props) || m->delay_level < 0)
        return FERRY_EINVAL;
    for (size_t i = 0; i < m->nprops; i++)
        if (bad_prop(m->props[i].name) || bad_prop(m->props[i].value))
            return FERRY_EINVAL;
    if ((m->tags && strpbrk(m->tags, "\001\002")) || (m->keys && strpbrk(m->keys, "\001\002")))
        return FERRY_EINVAL;
    if (m->body_len > (size_t)p->cfg.maxMessageSize) {
        log_warn(LOG_CLIENT, "message body %zu bytes > maxMessageSize %d", m->body_len,
                 p->cfg.maxMessageSize);
        return FERRY_ETOOBIG;
    }
    return 0;
}

/* Append the pair @name=@value to @buf, which has room for it (prop_room()). */
static void prop_put(char *buf, size_t *len, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    if (*len)
        buf[(*len)++] = '\002';
    memcpy(buf + *len, name, n);
    *len += n;
    buf[(*len)++] = '\001';
    memcpy(buf + *len, value, v);
    *len += v;
    buf[*len] = 0;
}

static size_t prop_room(const char *name, const char *value)
{
    return strlen(name) + strlen(value) + 2;
}

/* The properties of @m with UNIQ_KEY @uniq (§3.2), and WAIT=true when @wait, in @small (@cap
 * bytes; may be NULL) when they fit, else in a new buffer sized once; *@len their length. */
static char *msg_props(const struct ferry_message *m, const char *uniq, int wait, size_t *len,
                       char *small, size_t small_cap)
{
    char delay[16] = "";
    size_t cap = 1 + prop_room("UNIQ_KEY", uniq) + (wait ? prop_room("WAIT", "true") : 0);
    for (size_t i = 0; i < m->nprops; i++)
        cap += prop_room(m->props[i].name, m->props[i].value);
    if (m->tags && *m->tags)
        cap += prop_room("TAGS", m->tags);
    if (m->keys && *m->keys)
        cap += prop_room("KEYS", m->keys);
    if (m->delay_level > 0) {
        snprintf(delay, sizeof delay, "%d", m->delay_level);
        cap += prop_room("DELAY", delay);
    }
    char *buf = small && cap <= small_cap ? small : ferry_malloc(cap);
    *len = 0;
    for (size_t i = 0; i < m->nprops; i++)
        prop_put(buf, len, m->props[i].name, m->props[i].value);
    if (m->tags && *m->tags)
        prop_put(buf, len, "TAGS", m->tags);
    if (m->keys && *m->keys)
        prop_put(buf, len, "KEYS", m->keys);
    if (delay[0])
        prop_put(buf, len, "DELAY", delay);
    prop_put(buf, len, "UNIQ_KEY", uniq);
    if (wait)
        prop_put(buf, len, "WAIT", "true");
    return buf;
}

/* The header fields of every send but e, n (per attempt) and f, i, m; on a fresh request, so
 * that the string fields are appended without looking for an earlier value. */
static int common_hdr(ferry_producer_t *p, const char *topic, int32_t flag, struct out_msg *o)
{
    struct rcmd *r = &o->req;
    return RCMD_EXT_APPEND_LIT(r, "a", p->cfg.group, strlen(p->cfg.group)) ||
           RCMD_EXT_APPEND_LIT(r, "b", topic, strlen(topic)) ||
           RCMD_EXT_APPEND_LIT(r, "c", DEFAULT_TOPIC, sizeof DEFAULT_TOPIC - 1) ||
           rcmd_ext_append_i64(r, "d", 1, DEFAULT_TOPIC_QUEUES) ||
           rcmd_ext_append_i64(r, "g", 1, clock_wall_ms()) ||
           rcmd_ext_append_i64(r, "h", 1, flag) || RCMD_EXT_APPEND_LIT(r, "j", "0", 1) ||
           RCMD_EXT_APPEND_LIT(r, "k", "false", 5);
}

/* @in (@n bytes) in zlib format (what Java's Inflater and every RocketMQ consumer read) into
 * @out, which holds @n - 1 bytes: the compressed length, or 0 when it would not be smaller
 * (the body then goes as it is). ISA-L's level 0 deflate: zlib's level 5 (Java's) spent most
 * of a 4 KiB send's CPU, and on an incompressible body all of it for nothing. */
static size_t deflate_zlib(const void *in, size_t n, uint8_t *out)
{
    struct isal_zstream s;
    if (n < 2 || n > UINT32_MAX)
        return 0;
    isal_deflate_stateless_init(&s);
    s.next_in = (uint8_t *)(uintptr_t)in;
    s.avail_in = (uint32_t)n;
    s.next_out = out;
    s.avail_out = (uint32_t)(n - 1);
    s.level = 0;
    s.gzip_flag = IGZIP_ZLIB;
    s.end_of_stream = 1;
    s.flush = NO_FLUSH;
    return isal_deflate_stateless(&s) == COMP_OK ? s.total_out : 0;
}

/* Fill @o from @m (validated): properties, UNIQ_KEY, compression, header a..m. */
static int build(ferry_producer_t *p, const struct ferry_message *m, struct out_msg *o)
{
    size_t plen;
    int sysflag = 0;
    /* Not a memset of *@o: its command is 3 KiB, and rcmd_init_request() sets what counts. */
    o->zbody = NULL;
    o->qid[0] = 0;
    uniq_key_new(o->uniq);
    o->props = msg_props(m, o->uniq, 1, &plen, o->props_small, sizeof o->props_small);
    rcmd_init_request(&o->req, REQ_SEND_MESSAGE_V2);
    /* RocketMQ's binary header (every 4.x broker decodes it and answers in kind): much cheaper
     * to write and to read on both sides than JSON with its escaped property separators. */
    o->req.ser = RCMD_SER_ROCKETMQ;
    o->req.body = m->body;
    o->req.body_len = m->body_len;
    if (m->body_len >= (size_t)p->cfg.compressMsgBodyOverHowmuch) {
        o->zbody = ferry_malloc(m->body_len);
        size_t zlen = deflate_zlib(m->body, m->body_len, o->zbody);
        if (zlen) {
            o->req.body = o->zbody;
            o->req.body_len = zlen;
            sysflag = SYSFLAG_COMPRESSED | SYSFLAG_ZLIB;
        }
    }
    int rc = common_hdr(p, m->topic, m->flag, o) || rcmd_ext_append_i64(&o->req, "f", 1, sysflag) ||
             RCMD_EXT_APPEND_LIT(&o->req, "i", o->props, strlen(o->props)) ||
             RCMD_EXT_APPEND_LIT(&o->req, "m", "false", 5);
    return rc ? FERRY_EINVAL : 0;
}

/* @src into @dst (@cap bytes), cut to fit, NUL-terminated: snprintf("%s") without the
 * format machinery, which was a visible share of an async send's cost. */
static void str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void out_free(struct out_msg *o)
{
    if (o->props != o->props_small)
        ferry_free(o->props);
    ferry_free(o->zbody);
}

/* Point the request at queue @q (overwriting the previous attempt's e and n). */
static void target(struct out_msg *o, const struct mq *q)
{
    char t[12];
    size_t n = 0, k = 0;
    unsigned v = q->qid < 0 ? 0u - (unsigned)q->qid : (unsigned)q->qid;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (q->qid < 0)
        o->qid[k++] = '-';
    while (n)
        o->qid[k++] = t[--n];
    o->qid[k] = 0;
    rcmd_ext_add(&o->req, "e", o->qid);
    rcmd_ext_add(&o->req, "n", q->broker);
}

/* ---- answers ---- */

static void copy_ext(const struct rcmd *resp, const char *key, char *dst, size_t cap)
{
    const struct rstr *v = rcmd_ext_get(resp, key);
    size_t n = v && v->p ? v->len : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, n ? v->p : "", n);
    dst[n] = 0;
}

/* 1: retry on another broker for this code (Java sendDefaultImpl's list). */
static int retryable(int32_t code)
{
    return code == RESP_TOPIC_NOT_EXIST || code == RESP_SERVICE_NOT_AVAILABLE ||
           code == RESP_SYSTEM_ERROR || code == RESP_NO_PERMISSION || code == RESP_NO_BUYER_ID ||
           code == RESP_NOT_IN_CURRENT_UNIT;
}

/* Turn a response into a result: 0 (stored) or FERRY_ENOTSTORED. */
static int answer(const struct rcmd *resp, const char *uniq, const char *broker,
                  struct ferry_send_result *res)
{
    int64_t v;
    memset(res, 0, sizeof *res);
    str_copy(res->msg_id, sizeof res->msg_id, uniq);
    str_copy(res->broker_name, sizeof res->broker_name, broker);
    switch (resp->code) {
    case RESP_SUCCESS:
        res->status = FERRY_SEND_OK;
        break;
    case RESP_FLUSH_DISK_TIMEOUT:
        res->status = FERRY_FLUSH_DISK_TIMEOUT;
        break;
    case RESP_FLUSH_SLAVE_TIMEOUT:
        res->status = FERRY_FLUSH_SLAVE_TIMEOUT;
        break;
    case RESP_SLAVE_NOT_AVAILABLE:
        res->status = FERRY_SLAVE_NOT_AVAILABLE;
        break;
    default:
        res->broker_code = resp->code;
        snprintf(res->remark, sizeof res->remark, "%.*s", (int)resp->remark.len,
                 resp->remark.p ? resp->remark.p : "");
        return FERRY_ENOTSTORED;
    }
    copy_ext(resp, "msgId", res->offset_msg_id, sizeof res->offset_msg_id);
    res->queue_id = rcmd_ext_get_i64(resp, "queueId", &v) == 0 ? (int)v : -1;
    res->queue_offset = rcmd_ext_get_i64(resp, "queueOffset", &v) == 0 ? v : -1;
    return 0;
}

/* As fault_note(), at monotonic time @now (read by the caller). */
static void fault_note_at(ferry_producer_t *p, const char *broker, int64_t latency, int isolation,
                          int64_t now)
{
    if (!p->cfg.sendLatencyFaultEnable)
        return;
    pthread_mutex_lock(&p->lock);
    fault_update(&p->ft, broker, latency, isolation, now);
    pthread_mutex_unlock(&p->lock);
}

static void fault_note(ferry_producer_t *p, const char *broker, int64_t latency, int isolation)
{
    if (p->cfg.sendLatencyFaultEnable)
        fault_note_at(p, broker, latency, isolation, clock_mono_ms());
}

static int choose_at(ferry_producer_t *p, const struct route *r, const char *last, int64_t now)
{
    pthread_mutex_lock(&p->lock);
    int idx = mq_select(r, p->cfg.sendLatencyFaultEnable ? &p->ft : NULL, last, &p->counter, now);
    pthread_mutex_unlock(&p->lock);
    return idx;
}

static int choose(ferry_producer_t *p, const struct route *r, const char *last)
{
    return choose_at(p, r, last, clock_mono_ms());
}

/* ---- sync ---- */

struct attempt {
    int sent_unknown; /* some attempt was sent without an answer */
    int last_rc;
};

/* One attempt to queue @q. Returns 0 (stored, *res), FERRY_ENOTSTORED, FERRY_EUNKNOWN, or a
 * not-sent error; *@retry says whether another broker may be tried. */
static int attempt_sync(ferry_producer_t *p, struct out_msg *o, const struct route *r,
                        const struct mq *q, const char *topic, int left,
                        struct ferry_send_result *res, int *retry)
{
    const char *addr = route_addr(r, q->broker);
    remoting_client_t *cli;
    struct rcmd *resp = NULL;
    int64_t t0 = clock_mono_ms();
    int rc;
    *retry = 1;
    if ((rc = route_cache_conn(&p->rc, addr, left, &cli)) != 0) {
        fault_note(p, q->broker, 0, 1);
        route_cache_stale(&p->rc, topic);
        *retry = rc != FERRY_ESHUTDOWN;
        return rc;
    }
    target(o, q);
    rc = remoting_client_invoke_sync(cli, &o->req, left, &resp);
    if (rc) {
        fault_note(p, q->broker, clock_mono_ms() - t0, 1);
        route_cache_stale(&p->rc, topic);
        return rc == -ENOTCONN || rc == FERRY_EINVAL ? rc : FERRY_EUNKNOWN;
    }
    fault_note(p, q->broker, clock_mono_ms() - t0, 0);
    rc = answer(resp, o->uniq, q->broker, res);
    if (rc == FERRY_ENOTSTORED) {
        *retry = retryable(resp->code);
        if (*retry)
            fault_note(p, q->broker, 0, 1);
        route_cache_stale(&p->rc, topic);
    } else {
        *retry = res->status != FERRY_SEND_OK && p->cfg.retryAnotherBrokerWhenNotStoreOK;
    }
    rcmd_free(resp);
    return rc;
}

static int send_sync(ferry_producer_t *p, const char *topic, struct out_msg *o,
                     struct ferry_send_result *res)
{
    int64_t deadline = clock_mono_ms() + p->cfg.sendMsgTimeout;
    struct ferry_send_result cur, stored;
    struct route r;
    char last[CLIENT_NAME_MAX] = "";
    int times = 1 + p->cfg.retryTimesWhenSendFailed, unknown = 0, have_stored = 0, rc;
    if ((rc = route_cache_get(&p->rc, topic, p->cfg.sendMsgTimeout, &r)) != 0)
        return rc;
    for (int i = 0; i < times; i++) {
        int left = (int)(deadline - clock_mono_ms()), retry;
        if (left <= 0) {
            rc = rc ? rc : -ETIMEDOUT;
            break;
        }
        if (i > 0) { /* a refreshed route, if the name servers answer */
            struct route r2;
            if (route_cache_get(&p->rc, topic, left, &r2) == 0) {
                route_clear(&r);
                r = r2;
            }
            left = (int)(deadline - clock_mono_ms());
            if (left <= 0)
                break;
        }
        const struct mq *q = &r.mqs[choose(p, &r, last[0] ? last : NULL)];
        rc = attempt_sync(p, o, &r, q, topic, left, &cur, &retry);
        snprintf(last, sizeof last, "%s", q->broker);
        if (rc == FERRY_EUNKNOWN)
            unknown = 1;
        if (rc == 0) {
            stored = cur;
            have_stored = 1;
        }
        if (rc == FERRY_ENOTSTORED && res)
            *res = cur;
        if (!retry)
            break;
    }
    route_clear(&r);
    if (have_stored) {
        if (res)
            *res = stored;
        return 0;
    }
    return unknown ? FERRY_EUNKNOWN : rc;
}

int ferry_send_sync(ferry_producer_t *p, const struct ferry_message *msg,
                    struct ferry_send_result *res)
{
    struct out_msg o;
    int rc;
    if (!p)
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    if ((rc = check_msg(p, msg)) != 0 || (rc = build(p, msg, &o)) != 0)
        return rc;
    rc = send_sync(p, msg->topic, &o, res);
    out_free(&o);
    return rc;
}

/* ---- batch (§3.7) ---- */

#define BATCH_MAX 10000

static int check_batch(ferry_producer_t *p, const struct ferry_message *msgs, size_t n)
{
    size_t total = 0;
    int rc;
    if (!msgs || n == 0 || n > BATCH_MAX)
        return FERRY_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_msg(p, &msgs[i])) != 0)
            return rc;
        if (msgs[i].delay_level > 0 || strcmp(msgs[i].topic, msgs[0].topic) != 0 ||
            strncmp(msgs[i].topic, "%RETRY%", 7) == 0)
            return FERRY_EINVAL;
        total += msgs[i].body_len;
    }
    if (total > (size_t)p->cfg.maxMessageSize) {
        log_warn(LOG_CLIENT, "batch bodies %zu bytes > maxMessageSize %d", total,
                 p->cfg.maxMessageSize);
        return FERRY_ETOOBIG;
    }
    return 0;
}

/* The batch body in o->zbody (never compressed); each entry gets a UNIQ_KEY, copied to @ids. */
static int build_batch(ferry_producer_t *p, const struct ferry_message *msgs, size_t n,
                       char (*ids)[FERRY_UNIQ_KEY_LEN], struct out_msg *o)
{
    size_t len = 0, cap = 0;
    int rc = 0;
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char uniq[33];
        size_t plen;
        uniq_key_new(uniq);
        if (i == 0)
            memcpy(o->uniq, uniq, sizeof uniq);
        if (ids)
            memcpy(ids[i], uniq, sizeof uniq);
        char *props = msg_props(&msgs[i], uniq, 0, &plen, NULL, 0);
        size_t need = 22 + msgs[i].body_len + plen;
        if (plen > 32767) {
            rc = FERRY_EINVAL;
        } else {
            if (len + need > cap) {
                cap = 2 * (len + need);
                o->zbody = ferry_realloc(o->zbody, cap);
            }
            uint8_t *e = o->zbody + len;
            be32_put(e, (uint32_t)need);
            be32_put(e + 4, 0); /* MAGICCODE: not checked */
            be32_put(e + 8, 0); /* BODYCRC: the broker computes it */
            be32_put(e + 12, (uint32_t)msgs[i].flag);
            be32_put(e + 16, (uint32_t)msgs[i].body_len);
            memcpy(e + 20, msgs[i].body, msgs[i].body_len);
            be16_put(e + 20 + msgs[i].body_len, (uint16_t)plen);
            memcpy(e + 22 + msgs[i].body_len, props, plen);
            len += need;
        }
        ferry_free(props);
    }
    if (rc)
        return rc;
    rcmd_init_request(&o->req, REQ_SEND_BATCH_MESSAGE);
    o->req.ser = RCMD_SER_ROCKETMQ;
    o->req.body = o->zbody;
    o->req.body_len = len;
    if (common_hdr(p, msgs[0].topic, 0, o) || rcmd_ext_add(&o->req, "f", "0") ||
        rcmd_ext_add(&o->req, "i", "WAIT\001true") || rcmd_ext_add(&o->req, "m", "true"))
        return FERRY_EINVAL;
    return 0;
}

int ferry_send_batch(ferry_producer_t *p, const struct ferry_message *msgs, size_t n,
                     char (*ids)[FERRY_UNIQ_KEY_LEN], struct ferry_send_result *res)
{
    struct out_msg o;
    int rc;
    if (!p)
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    if ((rc = check_batch(p, msgs, n)) != 0)
        return rc;
    if ((rc = build_batch(p, msgs, n, ids, &o)) == 0)
        rc = send_sync(p, msgs[0].topic, &o, res);
    out_free(&o);
    if (rc == 0 && res) /* the first entry's offset id only */
        res->offset_msg_id[strcspn(res->offset_msg_id, ",")] = 0;
    return rc;
}

/* ---- to a chosen queue ---- */

int ferry_select_by_hash(int nqueues, const struct ferry_message *msg, void *arg)
{
    (void)msg;
    if (nqueues <= 0 || !arg)
        return 0;
    int v = java_hash((const char *)arg) % nqueues;
    return v < 0 ? -v : v;
}

int ferry_send_to_queue(ferry_producer_t *p, const struct ferry_message *msg,
                        ferry_queue_selector sel, void *arg, int queue_index,
                        struct ferry_send_result *res)
{
    struct ferry_send_result cur;
    struct out_msg o;
    struct route r;
    int rc, retry;
    if (!p)
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    if ((rc = check_msg(p, msg)) != 0)
        return rc;
    int64_t deadline = clock_mono_ms() + p->cfg.sendMsgTimeout;
    if ((rc = route_cache_get(&p->rc, msg->topic, p->cfg.sendMsgTimeout, &r)) != 0)
        return rc;
    int idx = sel ? sel(r.nmq, msg, arg) : queue_index;
    int left = (int)(deadline - clock_mono_ms());
    if (idx < 0 || idx >= r.nmq)
        rc = FERRY_EINVAL;
    else if (left <= 0)
        rc = -ETIMEDOUT;
    else if ((rc = build(p, msg, &o)) == 0) {
        rc = attempt_sync(p, &o, &r, &r.mqs[idx], msg->topic, left, &cur, &retry);
        if ((rc == 0 || rc == FERRY_ENOTSTORED) && res)
            *res = cur;
        out_free(&o);
    }
    route_clear(&r);
    return rc;
}

/* ---- async and oneway ---- */

/* Monotonic milliseconds from the coarse clock (no TSC read; a few ms behind at most): what
 * an async send needs for its deadline, the route's age and the fault table's latency, whose
 * smallest step is 50 ms. */
static int64_t coarse_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct async_ctx {
    ferry_producer_t *p;
    ferry_send_cb cb;
    void *arg;
    int64_t t0;
    char uniq[33];
    char broker[CLIENT_NAME_MAX];
    char topic[CLIENT_NAME_MAX * 2];
};

/* @thread the broker connection's I/O thread */
static void on_async(int status, const struct rcmd *resp, void *arg)
{
    struct async_ctx *a = arg;
    struct ferry_send_result res;
    int64_t now = coarse_mono_ms();
    int rc;
    memset(&res, 0, sizeof res);
    str_copy(res.msg_id, sizeof res.msg_id, a->uniq);
    if (status != 0) {
        rc = FERRY_EUNKNOWN;
        fault_note_at(a->p, a->broker, now - a->t0, 1, now);
        route_cache_stale(&a->p->rc, a->topic);
    } else {
        rc = answer(resp, a->uniq, a->broker, &res);
        fault_note_at(a->p, a->broker, now - a->t0, rc == FERRY_ENOTSTORED && retryable(resp->code),
                      now);
    }
    a->cb(rc, &res, a->arg);
    ferry_free(a);
}

/* Pick a queue and connect, trying up to @times brokers, from monotonic time @now. 0 and *@cli,
 * *@q (pointing into *@rs); or the error. *@rs is a borrowed route (or NULL) either way: the
 * caller releases it. The route is borrowed, not copied: an async send is a hot path. */
static int connect_any(ferry_producer_t *p, const struct ferry_message *m, int times, int64_t now,
                       struct route_snap **rs, const struct mq **q, remoting_client_t **cli)
{
    int64_t deadline = now + p->cfg.sendMsgTimeout;
    char last[CLIENT_NAME_MAX] = "";
    int rc;
    *rs = NULL;
    if ((rc = route_cache_borrow(&p->rc, m->topic, p->cfg.sendMsgTimeout, now, rs)) != 0)
        return rc;
    const struct route *r = &(*rs)->r;
    for (int i = 0; i < times; i++) {
        if (i > 0)
            now = clock_mono_ms();
        int left = (int)(deadline - now);
        if (left <= 0)
            return rc ? rc : -ETIMEDOUT;
        *q = &r->mqs[choose_at(p, r, last[0] ? last : NULL, now)];
        if ((rc = route_cache_conn(&p->rc, route_addr(r, (*q)->broker), left, cli)) == 0)
            return 0;
        str_copy(last, sizeof last, (*q)->broker);
        fault_note(p, (*q)->broker, 0, 1);
        if (rc == FERRY_ESHUTDOWN)
            return rc;
    }
    route_cache_stale(&p->rc, m->topic);
    return rc;
}

int ferry_send_async(ferry_producer_t *p, const struct ferry_message *msg, ferry_send_cb cb,
                     void *arg)
{
    const struct mq *q;
    remoting_client_t *cli;
    struct out_msg o;
    struct route_snap *rs;
    int rc;
    if (!p || !cb)
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    if ((rc = check_msg(p, msg)) != 0)
        return rc;
    int64_t now = coarse_mono_ms();
    rc = connect_any(p, msg, 1 + p->cfg.retryTimesWhenSendAsyncFailed, now, &rs, &q, &cli);
    if (rc == 0) {
        struct async_ctx *a = ferry_malloc(sizeof *a);
        a->p = p;
        a->cb = cb;
        a->arg = arg;
        str_copy(a->broker, sizeof a->broker, q->broker);
        str_copy(a->topic, sizeof a->topic, msg->topic);
        if ((rc = build(p, msg, &o)) == 0) {
            memcpy(a->uniq, o.uniq, sizeof a->uniq);
            target(&o, q);
            a->t0 = now; /* ms resolution: the few microseconds since do not count */
            rc = remoting_client_invoke_async(cli, &o.req, p->cfg.sendMsgTimeout, on_async, a);
            out_free(&o);
        }
        if (rc)
            ferry_free(a);
    }
    route_snap_release(rs);
    return rc;
}

int ferry_send_oneway(ferry_producer_t *p, const struct ferry_message *msg)
{
    const struct mq *q;
    remoting_client_t *cli;
    struct out_msg o;
    struct route_snap *rs;
    int rc;
    if (!p)
        return FERRY_EINVAL;
    if (!usable(p))
        return FERRY_ESHUTDOWN;
    if ((rc = check_msg(p, msg)) != 0)
        return rc;
    rc = connect_any(p, msg, 1, clock_mono_ms(), &rs, &q, &cli);
    if (rc == 0 && (rc = build(p, msg, &o)) == 0) {
        target(&o, q);
        rc = remoting_client_invoke_oneway(cli, &o.req);
        out_free(&o);
    }
    route_snap_release(rs);
    return rc;
}

/* ---- for tx_producer.c ---- */

struct route_cache *producer_route_cache(ferry_producer_t *p)
{
    return &p->rc;
}

const char *producer_group(const ferry_producer_t *p)
{
    return p->cfg.group;
}

void producer_tx_check(ferry_producer_t *p, ferry_tx_check *fn, void **arg)
{
    pthread_mutex_lock(&p->lock);
    *fn = p->tx_check;
    *arg = p->tx_check_arg;
    pthread_mutex_unlock(&p->lock);
}

int producer_set_tx_check(ferry_producer_t *p, ferry_tx_check fn, void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->started || p->shut) {
        rc = FERRY_EINVAL;
    } else {
        p->tx_check = fn;
        p->tx_check_arg = arg;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int client_topic_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 127)
        return 0;
    for (; *t; t++)
        if (!(*t == '%' || *t == '|' || *t == '_' || *t == '-' || (*t >= '0' && *t <= '9') ||
              (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z')))
            return 0;
    return 1;
}
