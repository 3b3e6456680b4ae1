/* The consumer core shared by the push and the lite pull consumer (Java 4.9.8
 * MQClientInstance + RebalanceImpl's offset part + PullAPIWrapper + OffsetStore):
 *   - routes of the subscribed topics, refreshed every pollNameServerInterval;
 *   - the offset store: the broker (clustering: QUERY/UPDATE_CONSUMER_OFFSET, also piggy-backed
 *     on pulls) or a local JSON file replaced atomically (broadcasting);
 *   - pulling: one long-polling PULL_MESSAGE in flight per queue, issued again from the
 *     response callback (on the connection's I/O thread) or, after an error or when paused,
 *     by the service thread from its timer list;
 *   - the service thread: timers, route refresh, heartbeats, offset persistence, rebalancing,
 *     and offset resets sent by the broker;
 *   - requests from brokers: NOTIFY_CONSUMER_IDS_CHANGED, RESET_CONSUMER_CLIENT_OFFSET,
 *     GET_CONSUMER_RUNNING_INFO.
 * Locking: c->lock, then q->lock; neither is held across network I/O. */
#include "client/consumer_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PULL_COMMIT_OFFSET 0x1
#define PULL_SUSPEND       0x2
#define PULL_SUBSCRIPTION  0x4
#define RPC_TIMEOUT_MS     3000
#define PULL_DELAY_ERR_MS  3000
#define RETRY_PREFIX       "%RETRY%"
#define OFFSETS_FILE       "offsets.json"

static atomic_uint instance_seq;

void ferry_consumer_config_init(struct ferry_consumer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->messageModel = FERRY_CLUSTERING;
    cfg->consumeFromWhere = FERRY_CONSUME_FROM_LAST_OFFSET;
    cfg->consumeThreadMin = 20;
    cfg->consumeThreadMax = 20;
    cfg->consumeMessageBatchMaxSize = 1;
    cfg->pullBatchSize = 32;
    cfg->pullThresholdForQueue = 1000;
    cfg->pullThresholdSizeForQueue = 100;
    cfg->consumeConcurrentlyMaxSpan = 2000;
    cfg->maxReconsumeTimes = -1;
    cfg->suspendCurrentQueueTimeMillis = 1000;
    cfg->heartbeatBrokerInterval = 30000;
    cfg->persistConsumerOffsetInterval = 5000;
    cfg->rebalanceInterval = 20000;
    cfg->pollNameServerInterval = 30000;
    cfg->brokerSuspendMaxTimeMillis = 15000;
    cfg->autoCommit = 1;
}

static int cfg_valid(const struct ferry_consumer_config *g)
{
    return g->group[0] && memchr(g->group, 0, sizeof g->group) &&
           memchr(g->namesrvAddr, 0, sizeof g->namesrvAddr) &&
           memchr(g->instanceName, 0, sizeof g->instanceName) &&
           memchr(g->offsetStoreDir, 0, sizeof g->offsetStoreDir) &&
           memchr(g->accessKey, 0, sizeof g->accessKey) &&
           memchr(g->secretKey, 0, sizeof g->secretKey) && !g->accessKey[0] == !g->secretKey[0] &&
           (g->messageModel == FERRY_CLUSTERING || g->messageModel == FERRY_BROADCASTING) &&
           g->consumeFromWhere >= FERRY_CONSUME_FROM_LAST_OFFSET &&
           g->consumeFromWhere <= FERRY_CONSUME_FROM_TIMESTAMP && g->consumeThreadMin >= 1 &&
           g->consumeThreadMin <= 1000 && g->consumeThreadMax >= g->consumeThreadMin &&
           g->consumeThreadMax <= 1000 && g->consumeMessageBatchMaxSize >= 1 &&
           g->consumeMessageBatchMaxSize <= 1024 && g->pullBatchSize >= 1 &&
           g->pullBatchSize <= 1024 && g->pullThresholdForQueue >= 1 &&
           g->pullThresholdForQueue <= 65535 && g->pullThresholdSizeForQueue >= 1 &&
           g->pullThresholdSizeForQueue <= 1024 && g->consumeConcurrentlyMaxSpan >= 1 &&
           g->consumeConcurrentlyMaxSpan <= 65535 && g->maxReconsumeTimes >= -1 &&
           g->suspendCurrentQueueTimeMillis >= 10 && g->suspendCurrentQueueTimeMillis <= 30000 &&
           g->heartbeatBrokerInterval >= 100 && g->persistConsumerOffsetInterval >= 100 &&
           g->rebalanceInterval >= 100 && g->pollNameServerInterval >= 100 &&
           g->brokerSuspendMaxTimeMillis >= 0 && g->brokerSuspendMaxTimeMillis <= 60000;
}

/* ---- life cycle ---- */

static void on_notify(conn_t *conn, const struct rcmd *req, void *arg);
static void on_reset(conn_t *conn, const struct rcmd *req, void *arg);
static void on_running_info(conn_t *conn, const struct rcmd *req, void *arg);
static int load_local_offsets(struct consumer *c);

int consumer_init(struct consumer *c, const struct ferry_consumer_config *cfg,
                  enum consumer_kind kind, const struct consumer_ops *ops)
{
    const char *env;
    memset(c, 0, sizeof *c);
    if (!cfg || !cfg_valid(cfg))
        return FERRY_ECONFIG;
    c->cfg = *cfg;
    c->kind = kind;
    c->ops = ops;
    if (!c->cfg.namesrvAddr[0] && (env = getenv("NAMESRV_ADDR")) != NULL)
        snprintf(c->cfg.namesrvAddr, sizeof c->cfg.namesrvAddr, "%s", env);
    if (!c->cfg.consumeTimestamp)
        c->cfg.consumeTimestamp = clock_wall_ms() - 30 * 60 * 1000;
    if (!c->cfg.instanceName[0]) {
        /* Java keeps "DEFAULT" for broadcasting (a stable offset file path) and uses the pid
         * otherwise; the sequence number keeps two consumers of one process apart. */
        if (cfg->messageModel == FERRY_BROADCASTING)
            snprintf(c->cfg.instanceName, sizeof c->cfg.instanceName, "DEFAULT");
        else
            snprintf(c->cfg.instanceName, sizeof c->cfg.instanceName, "%d#%u", (int)getpid(),
                     atomic_fetch_add(&instance_seq, 1));
    }
    if (!c->cfg.offsetStoreDir[0]) {
        env = getenv("HOME");
        snprintf(c->cfg.offsetStoreDir, sizeof c->cfg.offsetStoreDir, "%s/.rocketmq_offsets",
                 env && *env ? env : "/tmp");
    }
    struct in_addr ia = {.s_addr = htonl(client_local_ipv4())};
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ia, ip, sizeof ip);
    snprintf(c->client_id, sizeof c->client_id, "%s@%s", ip, c->cfg.instanceName);
    if (route_cache_init(&c->rc, c->cfg.namesrvAddr) != 0 ||
        ROUTE_CACHE_TLS(&c->rc, &c->cfg) != 0) {
        route_cache_destroy(&c->rc);
        return FERRY_ECONFIG;
    }
    memcpy(c->rc.access_key, c->cfg.accessKey, sizeof c->rc.access_key); /* ACL signing */
    memcpy(c->rc.secret_key, c->cfg.secretKey, sizeof c->rc.secret_key);
    route_cache_on(&c->rc, REQ_NOTIFY_CONSUMER_IDS_CHANGED, on_notify, c);
    route_cache_on(&c->rc, REQ_RESET_CONSUMER_CLIENT_OFFSET, on_reset, c);
    route_cache_on(&c->rc, REQ_GET_CONSUMER_RUNNING_INFO, on_running_info, c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_cond_init(&c->lite_cond, NULL);
    if (c->cfg.messageModel == FERRY_BROADCASTING && load_local_offsets(c) != 0) {
        consumer_destroy(c);
        return FERRY_ECONFIG;
    }
    return 0;
}

static void *service_main(void *arg);

int consumer_start(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->stopping || c->started) {
        int rc = c->stopping ? FERRY_ESHUTDOWN : 0;
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    c->started = 1;
    int64_t now = clock_mono_ms();
    c->next_heartbeat = now;
    c->next_rebalance = now;
    c->next_routes = now + c->cfg.pollNameServerInterval;
    c->next_persist = now + c->cfg.persistConsumerOffsetInterval;
    pthread_mutex_unlock(&c->lock);
    if (pthread_create(&c->service, NULL, service_main, c) != 0)
        return -errno;
    c->service_running = 1;
    return 0;
}

void consumer_stop(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_cond_broadcast(&c->lite_cond);
    pthread_mutex_unlock(&c->lock);
    if (c->service_running) {
        pthread_join(c->service, NULL);
        c->service_running = 0;
    }
    /* Pending timers hold queue references. */
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->ntimers; i++)
        pqueue_unref(c->timers[i].q);
    c->ntimers = 0;
    pthread_mutex_unlock(&c->lock);
}

static void unregister_client(struct consumer *c);

void consumer_finish(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    int was_started = c->started && !c->stopped;
    c->stopped = 1;
    pthread_mutex_unlock(&c->lock);
    if (was_started) {
        int rc = consumer_persist_offsets(c);
        if (rc)
            log_warn(LOG_CLIENT, "group %s: offsets not persisted at shutdown: %s", c->cfg.group,
                     ferry_strerror(rc));
        unregister_client(c);
    }
    route_cache_close(&c->rc); /* pending pulls complete (cancelled) here */
}

void consumer_destroy(struct consumer *c)
{
    route_cache_destroy(&c->rc);
    for (int i = 0; i < c->nqs; i++) {
        c->qs[i]->dropped = 1;
        pqueue_unref(c->qs[i]);
    }
    for (int i = 0; i < c->ntimers; i++)
        pqueue_unref(c->timers[i].q);
    for (int i = 0; i < c->nsubs; i++) {
        for (int k = 0; k < c->subs[i].ntags; k++)
            ferry_free(c->subs[i].tags[k]);
        ferry_free(c->subs[i].tags);
    }
    for (int i = 0; i < c->nroutes; i++)
        route_clear(&c->routes[i].r);
    for (int i = 0; i < c->npending_reset; i++)
        ferry_free(c->pending_reset[i]);
    ferry_free(c->pending_reset);
    ferry_free(c->routes);
    ferry_free(c->known);
    ferry_free(c->down);
    ferry_free(c->subs);
    ferry_free(c->qs);
    ferry_free(c->timers);
    ferry_free(c->offs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    pthread_cond_destroy(&c->lite_cond);
}

/* ---- subscriptions ---- */

int consumer_subscribe(struct consumer *c, const char *topic, const char *expr)
{
    if (!topic || !client_topic_ok(topic) || (expr && strlen(expr) >= sizeof c->subs[0].expr))
        return FERRY_EINVAL;
    if (!expr || !*expr)
        expr = "*";
    char **tags = NULL;
    int ntags = 0;
    /* "a || b": split on '|', trim blanks; "*" alone means every tag */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", expr);
    int all = 0;
    for (char *save = NULL, *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        char *e = t + strlen(t);
        while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        if (!*t)
            continue;
        if (strcmp(t, "*") == 0)
            all = 1;
        tags = ferry_realloc(tags, (size_t)(ntags + 1) * sizeof *tags);
        tags[ntags++] = ferry_strdup(t);
    }
    if (all || ntags == 0) {
        for (int i = 0; i < ntags; i++)
            ferry_free(tags[i]);
        ferry_free(tags);
        tags = NULL;
        ntags = 0;
        expr = "*";
    }
    pthread_mutex_lock(&c->lock);
    struct sub *s = NULL;
    for (int i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i].topic, topic) == 0)
            s = &c->subs[i];
    if (!s) {
        c->subs = ferry_realloc(c->subs, (size_t)(c->nsubs + 1) * sizeof *c->subs);
        s = &c->subs[c->nsubs++];
        memset(s, 0, sizeof *s);
        snprintf(s->topic, sizeof s->topic, "%s", topic);
    } else {
        for (int k = 0; k < s->ntags; k++)
            ferry_free(s->tags[k]);
        ferry_free(s->tags);
    }
    snprintf(s->expr, sizeof s->expr, "%s", expr);
    s->tags = tags;
    s->ntags = ntags;
    s->version = clock_wall_ms();
    c->rebalance_now = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static const struct sub *sub_find(const struct consumer *c, const char *topic)
{
    for (int i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i].topic, topic) == 0)
            return &c->subs[i];
    return NULL;
}

int consumer_tag_match(const struct consumer *c, const char *topic, const char *tags)
{
    const struct sub *s = sub_find(c, topic);
    if (!s || !s->tags)
        return 1;
    for (int i = 0; i < s->ntags; i++)
        if (tags && strcmp(s->tags[i], tags) == 0)
            return 1;
    return 0;
}

/* ---- routes ---- */

static struct route_entry *route_find(struct consumer *c, const char *topic)
{
    for (int i = 0; i < c->nroutes; i++)
        if (strcmp(c->routes[i].topic, topic) == 0)
            return &c->routes[i];
    return NULL;
}

static void route_store(struct consumer *c, const char *topic, struct route *r)
{
    struct route_entry *e = route_find(c, topic);
    if (!e) {
        c->routes = ferry_realloc(c->routes, (size_t)(c->nroutes + 1) * sizeof *c->routes);
        e = &c->routes[c->nroutes++];
        memset(e, 0, sizeof *e);
        snprintf(e->topic, sizeof e->topic, "%s", topic);
    }
    route_clear(&e->r);
    e->r = *r;
    e->fetched = clock_mono_ms();
    for (int i = 0; i < r->nbrokers; i++) {
        const struct route_broker *b = &r->brokers[i];
        int k = 0;
        while (k < c->nknown && strcmp(c->known[k].name, b->name) != 0)
            k++;
        if (k == c->nknown) {
            c->known = ferry_realloc(c->known, (size_t)++c->nknown * sizeof *c->known);
            memset(&c->known[k], 0, sizeof c->known[k]);
            snprintf(c->known[k].name, sizeof c->known[k].name, "%s", b->name);
        }
        /* A route that lists only the slave (the master is down) keeps the master known. */
        if (b->addr[0])
            memcpy(c->known[k].addr, b->addr, sizeof b->addr);
        if (b->slave[0])
            memcpy(c->known[k].slave, b->slave, sizeof b->slave);
    }
}

int consumer_route(struct consumer *c, const char *topic, struct route *out)
{
    pthread_mutex_lock(&c->lock);
    struct route_entry *e = route_find(c, topic);
    if (e) {
        route_copy(out, &e->r);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);
    struct route r;
    int rc = route_cache_fetch(&c->rc, topic, RPC_TIMEOUT_MS, &r);
    if (rc)
        return rc;
    route_copy(out, &r);
    pthread_mutex_lock(&c->lock);
    route_store(c, topic, &r);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void refresh_routes(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->nsubs;
    char(*topics)[256] = ferry_calloc((size_t)n + 1, sizeof *topics);
    for (int i = 0; i < n; i++)
        memcpy(topics[i], c->subs[i].topic, sizeof topics[i]);
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < n; i++) {
        struct route r;
        if (route_cache_fetch(&c->rc, topics[i], RPC_TIMEOUT_MS, &r) == 0) {
            pthread_mutex_lock(&c->lock);
            route_store(c, topics[i], &r);
            pthread_mutex_unlock(&c->lock);
        }
    }
    ferry_free(topics);
}

#define MASTER_RETRY_MS 5000 /* a master that refused a connection is tried again after */

/* Master and slave addresses of @broker ("" when unknown): from the topic's route, else any
 * route that lists it, else the brokers seen before. *@master_ok: the master may be used first
 * (a route that lists the broker without its master says it is gone). @locks c->lock */
static void addrs_locked(struct consumer *c, const char *topic, const char *broker, char *master,
                         char *slave, int *master_ok)
{
    const struct route *r = NULL;
    struct route_entry *e = topic ? route_find(c, topic) : NULL;
    if (e && route_has_broker(&e->r, broker))
        r = &e->r;
    for (int i = 0; !r && i < c->nroutes; i++)
        if (route_has_broker(&c->routes[i].r, broker))
            r = &c->routes[i].r;
    const char *m = r ? route_addr(r, broker) : NULL, *sl = r ? route_slave_addr(r, broker) : NULL;
    *master_ok = !r || m != NULL;
    for (int i = 0; i < c->nknown; i++) {
        if (strcmp(c->known[i].name, broker) != 0)
            continue;
        if (!m && c->known[i].addr[0])
            m = c->known[i].addr;
        if (!sl && !r && c->known[i].slave[0])
            sl = c->known[i].slave;
    }
    snprintf(master, CLIENT_ADDR_MAX, "%s", m ? m : "");
    snprintf(slave, CLIENT_ADDR_MAX, "%s", sl ? sl : "");
}

/* @locks c->lock */
static int down_locked(struct consumer *c, const char *addr, int64_t now)
{
    for (int i = 0; i < c->ndown; i++)
        if (strcmp(c->down[i].addr, addr) == 0)
            return now < c->down[i].until;
    return 0;
}

void consumer_master_down(struct consumer *c, const char *addr)
{
    int64_t until = clock_mono_ms() + MASTER_RETRY_MS;
    pthread_mutex_lock(&c->lock);
    int i = 0;
    while (i < c->ndown && strcmp(c->down[i].addr, addr) != 0)
        i++;
    if (i == c->ndown) {
        c->down = ferry_realloc(c->down, (size_t)(c->ndown + 1) * sizeof *c->down);
        snprintf(c->down[c->ndown++].addr, sizeof c->down[0].addr, "%s", addr);
    }
    c->down[i].until = until;
    pthread_mutex_unlock(&c->lock);
}

static int pick_locked(struct consumer *c, const char *topic, const char *broker, int want_slave,
                       char *addr, size_t cap, char *alt, size_t alt_cap, int *is_master)
{
    char m[CLIENT_ADDR_MAX], sl[CLIENT_ADDR_MAX];
    int master_ok;
    addrs_locked(c, topic, broker, m, sl, &master_ok);
    int use_master;
    if (!m[0] && !sl[0])
        return FERRY_ENOROUTE;
    if (!sl[0])
        use_master = 1;
    else if (!m[0])
        use_master = 0;
    else
        use_master = !want_slave && master_ok && !down_locked(c, m, clock_mono_ms());
    snprintf(addr, cap, "%s", use_master ? m : sl);
    if (alt_cap)
        snprintf(alt, alt_cap, "%s", use_master ? sl : m);
    if (is_master)
        *is_master = use_master;
    return 0;
}

int consumer_pick_addr(struct consumer *c, const char *topic, const char *broker, int want_slave,
                       char *addr, size_t cap, char *alt, size_t alt_cap, int *is_master)
{
    pthread_mutex_lock(&c->lock);
    int rc = pick_locked(c, topic, broker, want_slave, addr, cap, alt, alt_cap, is_master);
    pthread_mutex_unlock(&c->lock);
    if (rc == 0 || !topic)
        return rc;
    struct route r;
    if ((rc = consumer_route(c, topic, &r)) != 0)
        return rc;
    route_clear(&r); /* now stored: pick again */
    pthread_mutex_lock(&c->lock);
    rc = pick_locked(c, topic, broker, want_slave, addr, cap, alt, alt_cap, is_master);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int consumer_broker_addr(struct consumer *c, const char *topic, const char *broker, char *addr,
                         size_t cap)
{
    return consumer_pick_addr(c, topic, broker, 0, addr, cap, NULL, 0, NULL);
}

/* A connection for reading @broker: the pick, or the other address when the pick refuses (a
 * master that refuses is marked down). */
static int read_conn(struct consumer *c, const char *topic, const char *broker, int want_slave,
                     int timeout_ms, remoting_client_t **cli)
{
    char addr[CLIENT_ADDR_MAX], alt[CLIENT_ADDR_MAX];
    int is_master;
    int rc = consumer_pick_addr(c, topic, broker, want_slave, addr, sizeof addr, alt, sizeof alt,
                                &is_master);
    if (rc)
        return rc;
    if ((rc = route_cache_conn(&c->rc, addr, timeout_ms, cli)) == 0 || !alt[0])
        return rc;
    if (is_master) {
        log_warn(LOG_CLIENT, "broker %s: master %s unreachable (%s); using slave %s", broker, addr,
                 ferry_strerror(rc), alt);
        consumer_master_down(c, addr);
    }
    return route_cache_conn(&c->rc, alt, timeout_ms, cli);
}

int consumer_invoke(struct consumer *c, const char *broker, struct rcmd *req, int timeout_ms,
                    struct rcmd **resp)
{
    remoting_client_t *cli;
    const struct rstr *t = rcmd_ext_get(req, "topic");
    char topic[256] = "";
    if (t && t->len < sizeof topic) {
        memcpy(topic, t->p, t->len);
        topic[t->len] = 0;
    }
    int rc = read_conn(c, topic[0] ? topic : NULL, broker, 0, timeout_ms, &cli);
    if (rc)
        return rc;
    return remoting_client_invoke_sync(cli, req, timeout_ms, resp);
}

/* ---- offsets ---- */

void mq_to_json(char *buf, size_t cap, const struct ferry_mq *mq)
{
    snprintf(buf, cap, "{\"brokerName\":\"%s\",\"queueId\":%d,\"topic\":\"%s\"}", mq->broker,
             mq->queue_id, mq->topic);
}

static int mq_eq(const struct ferry_mq *a, const struct ferry_mq *b)
{
    return a->queue_id == b->queue_id && strcmp(a->broker, b->broker) == 0 &&
           strcmp(a->topic, b->topic) == 0;
}

static struct off_entry *off_find(struct consumer *c, const struct ferry_mq *mq)
{
    for (int i = 0; i < c->noffs; i++)
        if (mq_eq(&c->offs[i].mq, mq))
            return &c->offs[i];
    return NULL;
}

static struct off_entry *off_get(struct consumer *c, const struct ferry_mq *mq)
{
    struct off_entry *e = off_find(c, mq);
    if (!e) {
        c->offs = ferry_realloc(c->offs, (size_t)(c->noffs + 1) * sizeof *c->offs);
        e = &c->offs[c->noffs++];
        memset(e, 0, sizeof *e);
        e->mq = *mq;
        e->offset = -1;
    }
    return e;
}

void consumer_update_offset(struct consumer *c, const struct ferry_mq *mq, int64_t offset,
                            int force)
{
    if (offset < 0)
        return;
    pthread_mutex_lock(&c->lock);
    struct off_entry *e = off_get(c, mq);
    if (force || offset > e->offset) {
        e->offset = offset;
        e->dirty = 1;
    }
    pthread_mutex_unlock(&c->lock);
}

static void local_path(const struct consumer *c, char *buf, size_t cap, int file)
{
    snprintf(buf, cap, "%s/%s/%s%s", c->cfg.offsetStoreDir, c->client_id, c->cfg.group,
             file ? "/" OFFSETS_FILE : "");
}

static int load_local_offsets(struct consumer *c)
{
    char path[2048];
    char *text;
    size_t len;
    local_path(c, path, sizeof path, 1);
    int rc = fs_read_file(path, 1, &text, &len, 64u << 20);
    if (rc == -ENOENT)
        return 0;
    if (rc) {
        log_error(LOG_CLIENT, "%s: %s", path, ferry_strerror(rc));
        return rc;
    }
    cJSON *doc = cJSON_ParseWithLength(text, len);
    ferry_free(text);
    const cJSON *arr = doc ? cJSON_GetObjectItemCaseSensitive(doc, "offsetTable") : NULL;
    if (!cJSON_IsArray(arr)) {
        log_error(LOG_CLIENT, "%s: not a FerryMQ offset file", path);
        cJSON_Delete(doc);
        return FERRY_ECORRUPT;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "topic"));
        const char *b = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "brokerName"));
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(it, "queueId");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "offset");
        struct ferry_mq mq;
        if (!t || !b || !cJSON_IsNumber(q) || !cJSON_IsNumber(o) || strlen(t) >= sizeof mq.topic ||
            strlen(b) >= sizeof mq.broker)
            continue;
        memset(&mq, 0, sizeof mq);
        strcpy(mq.topic, t);
        strcpy(mq.broker, b);
        mq.queue_id = q->valueint;
        off_get(c, &mq)->offset = (int64_t)o->valuedouble;
    }
    cJSON_Delete(doc);
    return 0;
}

int consumer_read_offset(struct consumer *c, const struct ferry_mq *mq, int64_t *offset)
{
    *offset = -1;
    if (c->cfg.messageModel == FERRY_BROADCASTING) {
        pthread_mutex_lock(&c->lock);
        struct off_entry *e = off_find(c, mq);
        if (e)
            *offset = e->offset;
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    struct rcmd req, *resp = NULL;
    rcmd_init_request(&req, REQ_QUERY_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", c->cfg.group);
    rcmd_ext_add(&req, "topic", mq->topic);
    rcmd_ext_add_i64(&req, "queueId", mq->queue_id);
    int rc = consumer_invoke(c, mq->broker, &req, RPC_TIMEOUT_MS, &resp);
    if (rc)
        return rc;
    if (resp->code == RESP_SUCCESS) {
        if (rcmd_ext_get_i64(resp, "offset", offset) != 0)
            rc = FERRY_EPROTO;
    } else if (resp->code != RESP_QUERY_NOT_FOUND) {
        log_warn(LOG_CLIENT, "QUERY_CONSUMER_OFFSET %s/%s/%d: code %d", mq->broker, mq->topic,
                 mq->queue_id, resp->code);
        rc = FERRY_ENOTSTORED;
    }
    rcmd_free(resp);
    if (rc == 0 && *offset >= 0)
        consumer_update_offset(c, mq, *offset, 1);
    return rc;
}

static int64_t queue_rpc_offset(struct consumer *c, const struct ferry_mq *mq, int32_t code,
                                int64_t ts, int *err)
{
    struct rcmd req, *resp = NULL;
    int64_t off = -1;
    rcmd_init_request(&req, code);
    rcmd_ext_add(&req, "topic", mq->topic);
    rcmd_ext_add_i64(&req, "queueId", mq->queue_id);
    if (code == REQ_SEARCH_OFFSET_BY_TIMESTAMP)
        rcmd_ext_add_i64(&req, "timestamp", ts);
    *err = consumer_invoke(c, mq->broker, &req, RPC_TIMEOUT_MS, &resp);
    if (*err)
        return -1;
    if (resp->code != RESP_SUCCESS || rcmd_ext_get_i64(resp, "offset", &off) != 0)
        *err = resp->code != RESP_SUCCESS ? FERRY_ENOTSTORED : FERRY_EPROTO;
    rcmd_free(resp);
    return off;
}

int consumer_queue_offset(struct consumer *c, const struct ferry_mq *mq, int which, int64_t ts,
                          int64_t *out)
{
    int err;
    int32_t code = which == 0   ? REQ_GET_MIN_OFFSET
                   : which == 1 ? REQ_GET_MAX_OFFSET
                                : REQ_SEARCH_OFFSET_BY_TIMESTAMP;
    *out = queue_rpc_offset(c, mq, code, ts, &err);
    return err;
}

int consumer_start_offset(struct consumer *c, const struct ferry_mq *mq, int64_t *offset)
{
    int64_t last;
    int rc = consumer_read_offset(c, mq, &last);
    int retry = strncmp(mq->topic, RETRY_PREFIX, strlen(RETRY_PREFIX)) == 0;
    if (rc)
        return rc;
    if (last >= 0) {
        *offset = last;
        return 0;
    }
    switch (c->cfg.consumeFromWhere) {
    case FERRY_CONSUME_FROM_FIRST_OFFSET:
        *offset = 0;
        return 0;
    case FERRY_CONSUME_FROM_TIMESTAMP:
        return consumer_queue_offset(c, mq, retry ? 1 : 2, c->cfg.consumeTimestamp, offset);
    default:
        if (retry) {
            *offset = 0;
            return 0;
        }
        return consumer_queue_offset(c, mq, 1, 0, offset);
    }
}

static int write_local_offsets(struct consumer *c)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "offsetTable");
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->noffs; i++) {
        if (c->offs[i].offset < 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", c->offs[i].mq.topic);
        cJSON_AddStringToObject(o, "brokerName", c->offs[i].mq.broker);
        cJSON_AddNumberToObject(o, "queueId", c->offs[i].mq.queue_id);
        cJSON_AddNumberToObject(o, "offset", (double)c->offs[i].offset);
        cJSON_AddItemToArray(arr, o);
        c->offs[i].dirty = 0;
    }
    pthread_mutex_unlock(&c->lock);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    char dir[2048], path[2048];
    local_path(c, dir, sizeof dir, 0);
    local_path(c, path, sizeof path, 1);
    int rc = fs_mkdirs(dir);
    if (rc == 0)
        rc = fs_replace(path, text, strlen(text));
    if (rc)
        log_error(LOG_CLIENT, "writing %s: %s", path, ferry_strerror(rc));
    cJSON_free(text);
    return rc;
}

static int commit_remote(struct consumer *c, const struct ferry_mq *mq, int64_t offset)
{
    struct rcmd req, *resp = NULL;
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", c->cfg.group);
    rcmd_ext_add(&req, "topic", mq->topic);
    rcmd_ext_add_i64(&req, "queueId", mq->queue_id);
    rcmd_ext_add_i64(&req, "commitOffset", offset);
    int rc = consumer_invoke(c, mq->broker, &req, RPC_TIMEOUT_MS, &resp);
    if (rc == 0) {
        if (resp->code != RESP_SUCCESS) {
            log_warn(LOG_CLIENT, "UPDATE_CONSUMER_OFFSET %s/%s/%d=%" PRId64 ": code %d %.*s",
                     mq->broker, mq->topic, mq->queue_id, offset, resp->code, (int)resp->remark.len,
                     resp->remark.p ? resp->remark.p : "");
            rc = FERRY_ENOTSTORED;
        }
        rcmd_free(resp);
    }
    return rc;
}

int consumer_persist_offsets(struct consumer *c)
{
    if (c->cfg.messageModel == FERRY_BROADCASTING)
        return write_local_offsets(c);
    pthread_mutex_lock(&c->lock);
    int n = 0;
    struct off_entry *snap = ferry_calloc((size_t)c->noffs + 1, sizeof *snap);
    for (int i = 0; i < c->noffs; i++)
        if (c->offs[i].dirty && c->offs[i].offset >= 0)
            snap[n++] = c->offs[i];
    pthread_mutex_unlock(&c->lock);
    int first = 0;
    for (int i = 0; i < n; i++) {
        int rc = commit_remote(c, &snap[i].mq, snap[i].offset);
        if (rc) {
            if (!first)
                first = rc;
            log_warn(LOG_CLIENT, "commit offset %s/%s/%d=%" PRId64 ": %s", snap[i].mq.broker,
                     snap[i].mq.topic, snap[i].mq.queue_id, snap[i].offset, ferry_strerror(rc));
            continue;
        }
        pthread_mutex_lock(&c->lock);
        struct off_entry *e = off_find(c, &snap[i].mq);
        if (e && e->offset == snap[i].offset)
            e->dirty = 0;
        pthread_mutex_unlock(&c->lock);
    }
    ferry_free(snap);
    return first;
}

/* ---- the queue table ---- */

void pqueue_ref(struct pqueue *q)
{
    atomic_fetch_add(&q->refs, 1);
}

void pqueue_unref(struct pqueue *q)
{
    if (atomic_fetch_sub(&q->refs, 1) == 1) {
        procq_destroy(&q->pq);
        pthread_mutex_destroy(&q->lock);
        ferry_free(q);
    }
}

struct pqueue *consumer_find_queue(struct consumer *c, const struct ferry_mq *mq)
{
    for (int i = 0; i < c->nqs; i++)
        if (mq_eq(&c->qs[i]->mq, mq))
            return c->qs[i];
    return NULL;
}

struct pqueue *consumer_add_queue(struct consumer *c, const struct ferry_mq *mq, int64_t offset,
                                  int locked)
{
    struct pqueue *q = ferry_calloc(1, sizeof *q);
    q->mq = *mq;
    q->c = c;
    atomic_init(&q->refs, 1);
    pthread_mutex_init(&q->lock, NULL);
    procq_init(&q->pq);
    q->next_offset = q->start_offset = q->lite_pos = offset;
    q->committed = -1;
    q->pull_busy = 1;
    q->locked = locked;
    q->lock_ms = clock_mono_ms();
    pthread_mutex_lock(&c->lock);
    c->qs = ferry_realloc(c->qs, (size_t)(c->nqs + 1) * sizeof *c->qs);
    c->qs[c->nqs++] = q;
    pthread_mutex_unlock(&c->lock);
    log_info(LOG_CLIENT, "group %s: consuming %s/%s/%d from offset %" PRId64, c->cfg.group,
             mq->broker, mq->topic, mq->queue_id, offset);
    consumer_pull_later(c, q, 0);
    return q;
}

void consumer_remove_queue(struct consumer *c, struct pqueue *q, int persist)
{
    int found = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->nqs; i++)
        if (c->qs[i] == q) {
            c->qs[i] = c->qs[--c->nqs];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&c->lock);
    if (!found)
        return;
    pthread_mutex_lock(&q->lock);
    q->dropped = 1;
    pthread_mutex_unlock(&q->lock);
    if (persist && c->cfg.messageModel == FERRY_CLUSTERING) {
        pthread_mutex_lock(&c->lock);
        struct off_entry *e = off_find(c, &q->mq);
        int64_t off = e ? e->offset : -1;
        int dirty = e ? e->dirty : 0;
        pthread_mutex_unlock(&c->lock);
        if (dirty && off >= 0 && commit_remote(c, &q->mq, off) != 0)
            log_warn(LOG_CLIENT, "commit offset of released queue %s/%s/%d failed", q->mq.broker,
                     q->mq.topic, q->mq.queue_id);
        pthread_mutex_lock(&c->lock);
        if ((e = off_find(c, &q->mq)) != NULL)
            *e = c->offs[--c->noffs];
        pthread_mutex_unlock(&c->lock);
    }
    log_info(LOG_CLIENT, "group %s: released %s/%s/%d", c->cfg.group, q->mq.broker, q->mq.topic,
             q->mq.queue_id);
    pqueue_unref(q);
}

/* ---- pulling ---- */

void consumer_pull_later(struct consumer *c, struct pqueue *q, int64_t delay_ms)
{
    pqueue_ref(q);
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_lock(&q->lock);
        q->pull_busy = 0;
        pthread_mutex_unlock(&q->lock);
        pqueue_unref(q);
        return;
    }
    c->timers = ferry_realloc(c->timers, (size_t)(c->ntimers + 1) * sizeof *c->timers);
    pthread_mutex_lock(&q->lock);
    c->timers[c->ntimers].gen = q->gen;
    pthread_mutex_unlock(&q->lock);
    c->timers[c->ntimers].q = q;
    c->timers[c->ntimers++].due = clock_mono_ms() + delay_ms;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void consumer_kick(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    c->rebalance_now = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static int keep_tag(const struct ferry_message_ext *m, void *arg)
{
    struct consumer *c = arg;
    return consumer_tag_match(c, m->topic, m->tags) ||
           /* retries carry the original topic; match them against it */
           strncmp(m->topic, RETRY_PREFIX, strlen(RETRY_PREFIX)) == 0;
}

static void pull_send(struct consumer *c, struct pqueue *q, int may_connect);

static void pull_next(struct consumer *c, struct pqueue *q)
{
    pthread_mutex_lock(&q->lock);
    int paused = c->ops->pull_paused && c->ops->pull_paused(c, q);
    pthread_mutex_unlock(&q->lock);
    if (paused)
        consumer_pull_later(c, q, 50);
    else
        pull_send(c, q, 0);
}

/* One pull in flight: the generation it was sent in (a seek starts a new one at once and the
 * older pull's answer is dropped). */
struct pull_ctx {
    struct pqueue *q;
    uint32_t gen;
};

static void on_pull(int status, const struct rcmd *resp, void *arg)
{
    struct pull_ctx *pc = arg;
    struct pqueue *q = pc->q;
    struct consumer *c = q->c;
    uint32_t gen = pc->gen;
    int64_t next = -1;
    ferry_free(pc);
    pthread_mutex_lock(&q->lock);
    int dead = q->dropped;
    int stale = q->gen != gen;
    pthread_mutex_unlock(&q->lock);
    if (stale) { /* seek: the pull of the new position carries on */
        pqueue_unref(q);
        return;
    }
    pthread_mutex_lock(&c->lock);
    dead |= c->stopping;
    pthread_mutex_unlock(&c->lock);
    if (dead) {
        pthread_mutex_lock(&q->lock);
        q->pull_busy = 0;
        pthread_mutex_unlock(&q->lock);
        pqueue_unref(q);
        return;
    }
    if (status != 0) {
        log_warn(LOG_CLIENT, "pull %s/%s/%d: %s", q->mq.broker, q->mq.topic, q->mq.queue_id,
                 ferry_strerror(status));
        pthread_mutex_lock(&c->lock);
        c->heartbeat_soon = 1;
        pthread_mutex_unlock(&c->lock);
        consumer_pull_later(c, q, PULL_DELAY_ERR_MS);
        pqueue_unref(q);
        return;
    }
    if (rcmd_ext_get_i64(resp, "nextBeginOffset", &next) != 0)
        next = -1;
    int64_t suggest = 0;
    if (rcmd_ext_get_i64(resp, "suggestWhichBrokerId", &suggest) == 0) {
        pthread_mutex_lock(&q->lock);
        q->from_slave = suggest != 0; /* Java pullFromWhichNodeTable */
        pthread_mutex_unlock(&q->lock);
    }
    switch (resp->code) {
    case RESP_SUCCESS: {
        struct msg_batch *b = NULL;
        if (next < 0 || msgdec_batch(resp->body, resp->body_len, q->mq.broker, &b) != 0) {
            log_warn(LOG_CLIENT, "pull %s/%s/%d: malformed answer", q->mq.broker, q->mq.topic,
                     q->mq.queue_id);
            consumer_pull_later(c, q, PULL_DELAY_ERR_MS);
            break;
        }
        msgdec_filter(b, keep_tag, c);
        pthread_mutex_lock(&q->lock);
        int moved = q->gen != gen, dropped = q->dropped;
        if (!moved && !dropped) {
            procq_add(&q->pq, b, b->msgs, b->n);
            q->next_offset = next;
        }
        if (dropped)
            q->pull_busy = 0;
        pthread_mutex_unlock(&q->lock);
        if (!moved && !dropped && b->n)
            c->ops->on_messages(c, q, b);
        msgdec_unref(b, 1);
        if (!moved && !dropped)
            pull_next(c, q);
        break;
    }
    case RESP_PULL_NOT_FOUND:
    case RESP_PULL_RETRY_IMMEDIATELY:
    case RESP_PULL_OFFSET_MOVED:
        if (next >= 0) {
            pthread_mutex_lock(&q->lock);
            if (q->gen == gen) {
                if (resp->code == RESP_PULL_OFFSET_MOVED)
                    log_warn(LOG_CLIENT, "pull %s/%s/%d: offset %" PRId64 " moved to %" PRId64,
                             q->mq.broker, q->mq.topic, q->mq.queue_id, q->next_offset, next);
                q->next_offset = next;
            }
            int empty = procq_count(&q->pq) == 0;
            pthread_mutex_unlock(&q->lock);
            /* nothing held: the queue is consumed up to @next */
            if (empty && c->kind == CONSUMER_PUSH)
                consumer_update_offset(c, &q->mq, next, resp->code == RESP_PULL_OFFSET_MOVED);
        }
        pull_next(c, q);
        break;
    default:
        log_warn(LOG_CLIENT, "pull %s/%s/%d: code %d %.*s", q->mq.broker, q->mq.topic,
                 q->mq.queue_id, resp->code, (int)resp->remark.len,
                 resp->remark.p ? resp->remark.p : "");
        consumer_pull_later(c, q, PULL_DELAY_ERR_MS);
        break;
    }
    pqueue_unref(q);
}

/* Send the next pull of @q (q->pull_busy is set by the caller's path). */
static void pull_send(struct consumer *c, struct pqueue *q, int may_connect)
{
    char addr[CLIENT_ADDR_MAX], expr[1024] = "*";
    int64_t sub_version = 0, commit = -1;
    remoting_client_t *cli = NULL;
    pthread_mutex_lock(&c->lock);
    int stop = c->stopping;
    const struct sub *s = sub_find(c, q->mq.topic);
    if (s) {
        snprintf(expr, sizeof expr, "%s", s->expr);
        sub_version = s->version;
    }
    struct off_entry *e = off_find(c, &q->mq);
    if (e && c->cfg.messageModel == FERRY_CLUSTERING && c->kind == CONSUMER_PUSH)
        commit = e->offset;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&q->lock);
    stop |= q->dropped;
    int64_t offset = q->next_offset;
    uint32_t gen = q->gen;
    int want_slave = q->from_slave;
    if (stop)
        q->pull_busy = 0;
    pthread_mutex_unlock(&q->lock);
    if (stop)
        return;
    int rc = may_connect ? 0
                         : consumer_pick_addr(c, q->mq.topic, q->mq.broker, want_slave, addr,
                                              sizeof addr, NULL, 0, NULL);
    if (rc == 0) {
        if (may_connect) {
            rc = read_conn(c, q->mq.topic, q->mq.broker, want_slave, RPC_TIMEOUT_MS, &cli);
        } else if (route_cache_conn(&c->rc, addr, 0, &cli) != 0 || !cli ||
                   !remoting_client_is_connected(cli)) {
            consumer_pull_later(c, q, 0); /* connecting blocks: the service thread does it */
            return;
        }
    }
    if (rc == 0) {
        struct rcmd req;
        int32_t flag = PULL_SUSPEND | PULL_SUBSCRIPTION | (commit > 0 ? PULL_COMMIT_OFFSET : 0);
        rcmd_init_request(&req, REQ_PULL_MESSAGE);
        rcmd_ext_add(&req, "consumerGroup", c->cfg.group);
        rcmd_ext_add(&req, "topic", q->mq.topic);
        rcmd_ext_add_i64(&req, "queueId", q->mq.queue_id);
        rcmd_ext_add_i64(&req, "queueOffset", offset);
        rcmd_ext_add_i64(&req, "maxMsgNums", c->cfg.pullBatchSize);
        rcmd_ext_add_i64(&req, "sysFlag", flag);
        rcmd_ext_add_i64(&req, "commitOffset", commit > 0 ? commit : 0);
        rcmd_ext_add_i64(&req, "suspendTimeoutMillis", c->cfg.brokerSuspendMaxTimeMillis);
        rcmd_ext_add(&req, "subscription", expr);
        rcmd_ext_add_i64(&req, "subVersion", sub_version);
        rcmd_ext_add(&req, "expressionType", "TAG");
        struct pull_ctx *pc = ferry_malloc(sizeof *pc);
        pc->q = q;
        pc->gen = gen;
        pqueue_ref(q);
        rc = remoting_client_invoke_async(cli, &req, c->cfg.brokerSuspendMaxTimeMillis + 15000,
                                          on_pull, pc);
        if (rc == 0)
            return;
        ferry_free(pc);
        pqueue_unref(q);
    }
    log_warn(LOG_CLIENT, "pull %s/%s/%d: %s", q->mq.broker, q->mq.topic, q->mq.queue_id,
             ferry_strerror(rc));
    consumer_pull_later(c, q, PULL_DELAY_ERR_MS);
}

/* ---- heartbeats ---- */

static char **broker_addrs(struct consumer *c, int *n)
{
    char **v = NULL;
    int k = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->nroutes; i++)
        for (int j = 0; j < 2 * c->routes[i].r.nbrokers; j++) {
            const struct route_broker *rb = &c->routes[i].r.brokers[j / 2];
            const char *a = j % 2 ? rb->slave : rb->addr; /* slaves serve reads too */
            if (!a[0])
                continue;
            int dup = 0;
            for (int x = 0; x < k && !dup; x++)
                dup = strcmp(v[x], a) == 0;
            if (!dup) {
                v = ferry_realloc(v, (size_t)(k + 1) * sizeof *v);
                v[k++] = ferry_strdup(a);
            }
        }
    pthread_mutex_unlock(&c->lock);
    *n = k;
    return v;
}

static void free_strv(char **v, int n)
{
    for (int i = 0; i < n; i++)
        ferry_free(v[i]);
    ferry_free(v);
}

static const char *const from_names[] = {"CONSUME_FROM_LAST_OFFSET", "CONSUME_FROM_FIRST_OFFSET",
                                         "CONSUME_FROM_TIMESTAMP"};

static void subs_json(struct consumer *c, cJSON *arr)
{
    for (int i = 0; i < c->nsubs; i++) {
        const struct sub *s = &c->subs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "classFilterMode", 0);
        cJSON_AddStringToObject(o, "topic", s->topic);
        cJSON_AddStringToObject(o, "subString", s->expr);
        cJSON *tags = cJSON_AddArrayToObject(o, "tagsSet");
        cJSON *codes = cJSON_AddArrayToObject(o, "codeSet");
        for (int k = 0; k < s->ntags; k++) {
            cJSON_AddItemToArray(tags, cJSON_CreateString(s->tags[k]));
            cJSON_AddItemToArray(codes, cJSON_CreateNumber(java_hash(s->tags[k])));
        }
        cJSON_AddNumberToObject(o, "subVersion", (double)s->version);
        cJSON_AddStringToObject(o, "expressionType", "TAG");
        cJSON_AddItemToArray(arr, o);
    }
}

static void heartbeat(struct consumer *c)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "clientID", c->client_id);
    cJSON *cds = cJSON_AddArrayToObject(doc, "consumerDataSet");
    cJSON_AddArrayToObject(doc, "producerDataSet");
    cJSON *cd = cJSON_CreateObject();
    cJSON_AddStringToObject(cd, "groupName", c->cfg.group);
    cJSON_AddStringToObject(cd, "consumeType",
                            c->kind == CONSUMER_PUSH ? "CONSUME_PASSIVELY" : "CONSUME_ACTIVELY");
    cJSON_AddStringToObject(cd, "messageModel",
                            c->cfg.messageModel == FERRY_BROADCASTING ? "BROADCASTING"
                                                                      : "CLUSTERING");
    cJSON_AddStringToObject(cd, "consumeFromWhere", from_names[c->cfg.consumeFromWhere]);
    pthread_mutex_lock(&c->lock);
    subs_json(c, cJSON_AddArrayToObject(cd, "subscriptionDataSet"));
    pthread_mutex_unlock(&c->lock);
    cJSON_AddBoolToObject(cd, "unitMode", 0);
    cJSON_AddItemToArray(cds, cd);
    char *body = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    int n;
    char **addrs = broker_addrs(c, &n);
    for (int i = 0; i < n; i++) {
        remoting_client_t *cli;
        struct rcmd req, *resp = NULL;
        if (route_cache_conn(&c->rc, addrs[i], RPC_TIMEOUT_MS, &cli) != 0)
            continue;
        rcmd_init_request(&req, REQ_HEART_BEAT);
        req.body = (const uint8_t *)body;
        req.body_len = strlen(body);
        int rc = remoting_client_invoke_sync(cli, &req, RPC_TIMEOUT_MS, &resp);
        if (rc || resp->code != RESP_SUCCESS)
            log_warn(LOG_CLIENT, "heartbeat to %s: %s", addrs[i],
                     rc ? ferry_strerror(rc) : "refused");
        rcmd_free(resp);
    }
    free_strv(addrs, n);
    cJSON_free(body);
}

static void unregister_client(struct consumer *c)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_UNREGISTER_CLIENT);
    rcmd_ext_add(&req, "clientID", c->client_id);
    rcmd_ext_add(&req, "consumerGroup", c->cfg.group);
    route_cache_broadcast(&c->rc, &req, RPC_TIMEOUT_MS);
}

/* ---- requests from brokers ---- */

static void on_notify(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct consumer *c = arg;
    struct rcmd resp;
    log_info(LOG_CLIENT, "group %s: consumers changed (%s), rebalancing", c->cfg.group,
             remoting_conn_peer(conn));
    consumer_kick(c);
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    remoting_respond(conn, &resp);
}

static void on_reset(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct consumer *c = arg;
    struct rcmd resp;
    if (req->body_len) {
        char *copy = ferry_malloc(req->body_len + 1);
        memcpy(copy, req->body, req->body_len);
        copy[req->body_len] = 0;
        pthread_mutex_lock(&c->lock);
        c->pending_reset =
            ferry_realloc(c->pending_reset, (size_t)(c->npending_reset + 1) * sizeof(char *));
        c->pending_reset[c->npending_reset++] = copy;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
    }
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    remoting_respond(conn, &resp);
}

static void on_running_info(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct consumer *c = arg;
    struct rcmd resp;
    cJSON *doc = cJSON_CreateObject();
    cJSON *props = cJSON_AddObjectToObject(doc, "properties");
    char num[32];
    cJSON_AddStringToObject(props, "PROP_CONSUME_TYPE",
                            c->kind == CONSUMER_PUSH ? "CONSUME_PASSIVELY" : "CONSUME_ACTIVELY");
    cJSON_AddStringToObject(props, "PROP_CONSUMEORDERLY", c->cfg.orderly ? "true" : "false");
    snprintf(num, sizeof num, "%d", c->cfg.consumeThreadMin);
    cJSON_AddStringToObject(props, "PROP_THREADPOOL_CORE_SIZE", num);
    cJSON_AddStringToObject(props, "PROP_CLIENT_VERSION", "V4_9_8");
    cJSON_AddStringToObject(props, "PROP_NAMESERVER_ADDR", c->cfg.namesrvAddr);
    pthread_mutex_lock(&c->lock);
    subs_json(c, cJSON_AddArrayToObject(doc, "subscriptionSet"));
    int nq = c->nqs;
    pthread_mutex_unlock(&c->lock);
    cJSON_AddObjectToObject(doc, "statusTable");
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    /* mqTable: MessageQueue objects as keys, as fastjson writes them */
    size_t cap = strlen(text) + 64 + (size_t)nq * 700;
    char *out = ferry_malloc(cap);
    size_t len = strlen(text) - 1; /* without the final '}' */
    memcpy(out, text, len);
    len += (size_t)snprintf(out + len, cap - len, ",\"mqTable\":{");
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->nqs && i < nq; i++) {
        struct pqueue *q = c->qs[i];
        char key[600];
        mq_to_json(key, sizeof key, &q->mq);
        pthread_mutex_lock(&q->lock);
        len += (size_t)snprintf(out + len, cap - len,
                                "%s%s:{\"cachedMsgCount\":%zu,\"commitOffset\":%" PRId64
                                ",\"locked\":%s,\"droped\":false}",
                                i ? "," : "", key, procq_count(&q->pq), procq_commit_offset(&q->pq),
                                q->locked ? "true" : "false");
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_unlock(&c->lock);
    len += (size_t)snprintf(out + len, cap - len, "}}");
    cJSON_free(text);
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    resp.body = (const uint8_t *)out;
    resp.body_len = len;
    remoting_respond(conn, &resp);
    ferry_free(out);
}

/* Apply a ResetOffsetBody: {"offsetTable":{{"brokerName":..,"queueId":..,"topic":..}:offset,..}}
 * (fastjson: objects as keys). The queues are released and taken again from the new offsets. */
static void apply_reset(struct consumer *c, const char *body)
{
    const char *p = strstr(body, "\"offsetTable\"");
    p = p ? strchr(p, '{') : NULL;
    if (!p)
        return;
    p++;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\n')
            p++;
        if (*p != '{')
            break;
        const char *end = NULL;
        cJSON *k = cJSON_ParseWithOpts(p, &end, 0);
        if (!k || !end)
            break;
        p = end;
        while (*p == ' ')
            p++;
        if (*p != ':') {
            cJSON_Delete(k);
            break;
        }
        char *num_end;
        int64_t off = strtoll(p + 1, &num_end, 10);
        p = num_end;
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "topic"));
        const char *b = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "brokerName"));
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(k, "queueId");
        struct ferry_mq mq;
        memset(&mq, 0, sizeof mq);
        if (t && b && cJSON_IsNumber(qid) && strlen(t) < sizeof mq.topic &&
            strlen(b) < sizeof mq.broker) {
            strcpy(mq.topic, t);
            strcpy(mq.broker, b);
            mq.queue_id = qid->valueint;
            pthread_mutex_lock(&c->lock);
            struct pqueue *q = consumer_find_queue(c, &mq);
            if (q)
                pqueue_ref(q);
            pthread_mutex_unlock(&c->lock);
            if (q) {
                consumer_remove_queue(c, q, 0);
                pqueue_unref(q);
            }
            consumer_update_offset(c, &mq, off, 1);
            log_info(LOG_CLIENT, "group %s: offset of %s/%s/%d reset to %" PRId64, c->cfg.group,
                     mq.broker, mq.topic, mq.queue_id, off);
        }
        cJSON_Delete(k);
    }
    consumer_persist_offsets(c);
}

/* ---- the service thread ---- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void *service_main(void *arg)
{
    struct consumer *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        int64_t now = clock_mono_ms();
        /* due pulls */
        struct timer *due = NULL;
        int ndue = 0;
        for (int i = 0; i < c->ntimers;) {
            if (c->timers[i].due <= now) {
                due = ferry_realloc(due, (size_t)(ndue + 1) * sizeof *due);
                due[ndue++] = c->timers[i];
                c->timers[i] = c->timers[--c->ntimers];
            } else {
                i++;
            }
        }
        if (ndue) {
            pthread_mutex_unlock(&c->lock);
            for (int i = 0; i < ndue; i++) {
                pthread_mutex_lock(&due[i].q->lock);
                int current = due[i].q->gen == due[i].gen;
                pthread_mutex_unlock(&due[i].q->lock);
                if (current) /* else a seek started a new chain of pulls */
                    pull_send(c, due[i].q, 1);
                pqueue_unref(due[i].q);
            }
            ferry_free(due);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (c->npending_reset) {
            char *body = c->pending_reset[--c->npending_reset];
            pthread_mutex_unlock(&c->lock);
            apply_reset(c, body);
            ferry_free(body);
            pthread_mutex_lock(&c->lock);
            c->rebalance_now = 1;
            continue;
        }
        if (now >= c->next_routes) {
            c->next_routes = now + c->cfg.pollNameServerInterval;
            pthread_mutex_unlock(&c->lock);
            refresh_routes(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (c->rebalance_now || now >= c->next_rebalance) {
            int first = c->next_heartbeat <= now;
            c->rebalance_now = 0;
            c->next_rebalance = now + c->cfg.rebalanceInterval;
            pthread_mutex_unlock(&c->lock);
            if (first) { /* routes first, then tell the brokers who we are, then share out */
                refresh_routes(c);
                heartbeat(c);
                pthread_mutex_lock(&c->lock);
                c->next_heartbeat = clock_mono_ms() + c->cfg.heartbeatBrokerInterval;
                pthread_mutex_unlock(&c->lock);
            }
            if (c->ops->rebalance)
                c->ops->rebalance(c);
            pthread_mutex_lock(&c->lock);
            if (c->rebalance_soon) { /* a topic is not routable yet: try again shortly */
                c->rebalance_soon = 0;
                int64_t soon = clock_mono_ms() + 1000;
                if (soon < c->next_rebalance)
                    c->next_rebalance = soon;
            }
            continue;
        }
        if (c->heartbeat_soon && c->next_heartbeat > now + 1000) {
            /* after a lost connection: tell the (maybe restarted) broker who we are within a
             * second (its consumer table starts empty; its notification then rebalances) */
            c->heartbeat_soon = 0;
            c->next_heartbeat = now + 1000;
        }
        if (now >= c->next_heartbeat) {
            c->next_heartbeat = now + c->cfg.heartbeatBrokerInterval;
            pthread_mutex_unlock(&c->lock);
            heartbeat(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (now >= c->next_persist) {
            c->next_persist = now + c->cfg.persistConsumerOffsetInterval;
            pthread_mutex_unlock(&c->lock);
            if (c->kind == CONSUMER_PUSH || c->cfg.autoCommit)
                consumer_persist_offsets(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        int64_t wake = min64(min64(c->next_routes, c->next_rebalance),
                             min64(c->next_heartbeat, c->next_persist));
        for (int i = 0; i < c->ntimers; i++)
            wake = min64(wake, c->timers[i].due);
        if (wake > now) {
            struct timespec ts = clock_deadline_ts(wake - now);
            pthread_cond_timedwait(&c->cond, &c->lock, &ts);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}
