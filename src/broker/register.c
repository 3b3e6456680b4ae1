/* Registration with the name servers (Java BrokerController.registerBrokerAll and
 * BrokerOuterAPI): REGISTER_BROKER with every topic to each address of namesrvAddr at start,
 * every registerNameServerPeriod, and soon after every topic change; UNREGISTER_BROKER at
 * clean shutdown.
 *
 * Runs on its own thread because connecting to a dead name server can block for the connect
 * timeout; the I/O threads only set a flag (broker_reg_trigger) or queue an answer
 * (broker_reg_answer_after: UPDATE_AND_CREATE_TOPIC is answered after the topics file is written
 * and a registration round that started after the change has ended, as Java does).
 *
 * Failure modes: a name server that is down or refuses is retried at the next round; its
 * state (registered / failing) is logged once per change, not once per round. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/conf.h"
#include "common/crc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS  3000
#define SHUTDOWN_TIMEOUT_MS 1000

struct addr_ctx {
    broker_t *b;
    char *err;
    size_t errlen;
};

static int add_link(const char *a, size_t n, void *arg)
{
    struct addr_ctx *ac = arg;
    struct reg *r = &ac->b->reg;
    if (n >= sizeof r->links[0].addr) {
        snprintf(ac->err, ac->errlen, "namesrvAddr: address \"%.*s\" is too long", (int)n, a);
        return FERRY_ECONFIG;
    }
    r->links = ferry_realloc(r->links, (size_t)(r->n_links + 1) * sizeof *r->links);
    struct ns_link *l = &r->links[r->n_links++];
    memset(l, 0, sizeof *l);
    memcpy(l->addr, a, n);
    l->addr[n] = 0;
    l->state = -1;
    return 0;
}

int broker_reg_init(broker_t *b, char *err, size_t errlen)
{
    struct reg *r = &b->reg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);

    struct addr_ctx ac = {b, err, errlen};
    return conf_addr_list(b->cfg.namesrvAddr, add_link, &ac);
}

static void set_state(struct ns_link *l, int state, const char *why)
{
    if (l->state == state)
        return;
    if (state)
        log_info(LOG_BROKER, "registered with name server %s", l->addr);
    else
        log_warn(LOG_BROKER,
                 "cannot register with name server %s: %s (retrying every round; logged once)",
                 l->addr, why);
    l->state = state;
}

static int link_connect(broker_t *b, struct ns_link *l, int timeout_ms, char *why, size_t cap)
{
    if (!l->cli) {
        struct remoting_client_config cc;
        remoting_client_config_init(&cc);
        cc.tls = b->tls_client; /* tlsEnable (docs/TLS.md), else plain */
        cc.tls_no_default = 1;
        int rc = remoting_client_new(&cc, &l->cli);
        if (rc) {
            snprintf(why, cap, "client: %s", ferry_strerror(rc));
            return rc;
        }
    }
    if (remoting_client_is_connected(l->cli))
        return 0;
    char msg[256] = "";
    int rc = remoting_client_connect(l->cli, l->addr, timeout_ms, msg, sizeof msg);
    if (rc == -EISCONN)
        rc = 0;
    if (rc)
        snprintf(why, cap, "connect: %s", msg[0] ? msg : ferry_strerror(rc));
    (void)b;
    return rc;
}

static void add_ids(broker_t *b, struct rcmd *req)
{
    rcmd_ext_add(req, "brokerName", b->cfg.brokerName);
    rcmd_ext_add(req, "brokerAddr", b->addr);
    rcmd_ext_add(req, "clusterName", b->cfg.brokerClusterName);
    /* A master registers as id 0 (also one the controller elected), a slave with its own. */
    rcmd_ext_add_i64(req, "brokerId", broker_role(b) == BROKER_SLAVE ? b->cfg.brokerId : 0);
}

/* The master as this answer names it (Java BrokerController: a slave takes masterAddr and
 * haServerAddr from RegisterBrokerResult). An answer without them (the master is not
 * registered on that name server) clears what an earlier one said, as Java does. */
static pthread_mutex_t master_mu = PTHREAD_MUTEX_INITIALIZER;
static struct master_rec {
    const broker_t *b;
    char addr[128], ha[128];
} master_recs[8];

static struct master_rec *master_rec_of(const broker_t *b, int create)
{
    struct master_rec *free_rec = NULL;
    for (size_t i = 0; i < sizeof master_recs / sizeof master_recs[0]; i++) {
        if (master_recs[i].b == b)
            return &master_recs[i];
        if (!master_recs[i].b && !free_rec)
            free_rec = &master_recs[i];
    }
    if (create && free_rec) {
        memset(free_rec, 0, sizeof *free_rec);
        free_rec->b = b;
    }
    return create ? free_rec : NULL;
}

static void copy_ext(const struct rcmd *resp, const char *key, char *out, size_t cap)
{
    const struct rstr *v = rcmd_ext_get(resp, key);
    out[0] = 0;
    if (v && v->len > 0 && v->len < cap) {
        memcpy(out, v->p, v->len);
        out[v->len] = 0;
    }
}

static void record_master(broker_t *b, const struct rcmd *resp)
{
    char addr[128], ha[128];
    copy_ext(resp, "masterAddr", addr, sizeof addr);
    copy_ext(resp, "haServerAddr", ha, sizeof ha);
    pthread_mutex_lock(&master_mu);
    struct master_rec *m = master_rec_of(b, 1);
    if (m && (strcmp(m->addr, addr) != 0 || strcmp(m->ha, ha) != 0)) {
        if (addr[0])
            log_info(LOG_BROKER, "master of %s: %s (HA %s)", b->cfg.brokerName, addr,
                     ha[0] ? ha : "none");
        else
            log_warn(LOG_BROKER, "master of %s: not registered on the name server",
                     b->cfg.brokerName);
        memcpy(m->addr, addr, sizeof addr);
        memcpy(m->ha, ha, sizeof ha);
    }
    pthread_mutex_unlock(&master_mu);
}

static void master_forget(const broker_t *b);

static void register_one(broker_t *b, struct ns_link *l, const struct sbuf *body)
{
    char why[400];
    struct rcmd req, *resp = NULL;
    int timeout = b->cfg.registerBrokerTimeoutMills;

    if (link_connect(b, l, timeout < CONNECT_TIMEOUT_MS ? timeout : CONNECT_TIMEOUT_MS, why,
                     sizeof why) != 0) {
        set_state(l, 0, why);
        return;
    }
    rcmd_init_request(&req, REQ_REGISTER_BROKER);
    add_ids(b, &req);
    rcmd_ext_add(&req, "haServerAddr", b->ha_addr);
    rcmd_ext_add(&req, "compressed", "false");
    rcmd_ext_add_i64(&req, "bodyCrc32", crc32_masked(body->p, body->len));
    req.body = (const uint8_t *)body->p;
    req.body_len = body->len;
    int rc = remoting_client_invoke_sync(l->cli, &req, timeout, &resp);
    if (rc) {
        snprintf(why, sizeof why, "REGISTER_BROKER: %s", ferry_strerror(rc));
        set_state(l, 0, why);
        return;
    }
    if (resp->code != RESP_SUCCESS) {
        snprintf(why, sizeof why, "REGISTER_BROKER answered %d: %.*s", resp->code,
                 (int)resp->remark.len, resp->remark.p ? resp->remark.p : "");
        set_state(l, 0, why);
    } else {
        set_state(l, 1, NULL);
        if (broker_role(b) == BROKER_SLAVE)
            record_master(b, resp);
    }
    rcmd_free(resp);
}

/* One round: persist what changed, register everywhere. Returns the persist result. */
static int reg_round(broker_t *b)
{
    int rc = topics_persist(b);
    int rc2 = groups_persist(b);
    if (b->reg.n_links) {
        struct sbuf body;
        int32_t bp = b->cfg.brokerPermission;
        bsb_init(&body);
        bsb_str(&body, "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":");
        /* A broker that is not both readable and writable advertises its own perm for every
         * topic, as Java does. */
        topics_encode(b, &body,
                      (bp & (PERM_READ | PERM_WRITE)) == (PERM_READ | PERM_WRITE) ? 0 : bp);
        bsb_str(&body, "}");
        for (int i = 0; i < b->reg.n_links; i++)
            register_one(b, &b->reg.links[i], &body);
        bsb_free(&body);
    }
    return rc ? rc : rc2;
}

/* Answer the waiters queued before round @round started. @locks reg.mu (dropped inside) */
static void answer_waiters(broker_t *b, uint64_t round, int persist_rc)
{
    struct reg_waiter **pp = &b->reg.waiters, *done = NULL;
    while (*pp) {
        struct reg_waiter *w = *pp;
        if (w->round < round) {
            *pp = w->next;
            w->next = done;
            done = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&b->reg.mu);
    while (done) {
        struct reg_waiter *w = done;
        done = w->next;
        struct rcmd resp;
        char remark[200];
        if (persist_rc) {
            snprintf(remark, sizeof remark,
                     "the change is in memory but writing the metadata file failed: %s",
                     ferry_strerror(persist_rc));
            broker_reply_init_resp(&w->rt, &resp, RESP_SYSTEM_ERROR, remark);
        } else {
            broker_reply_init_resp(&w->rt, &resp, RESP_SUCCESS, NULL);
        }
        remoting_respond(w->rt.conn, &resp);
        broker_reply_done(&w->rt);
        ferry_free(w);
    }
    pthread_mutex_lock(&b->reg.mu);
}

void *broker_reg_main(void *arg)
{
    broker_t *b = arg;
    struct reg *r = &b->reg;
    int64_t next_due = clock_mono_ms() + b->cfg.registerNameServerPeriod;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && !r->want && clock_mono_ms() < next_due) {
            struct timespec ts = {next_due / 1000, (next_due % 1000) * 1000000};
            pthread_cond_timedwait(&r->cond, &r->mu, &ts);
        }
        if (r->stop)
            break;
        r->want = 0;
        uint64_t round = ++r->round_started;
        pthread_mutex_unlock(&r->mu);
        int prc = reg_round(b);
        pthread_mutex_lock(&r->mu);
        answer_waiters(b, round, prc);
        next_due = clock_mono_ms() + b->cfg.registerNameServerPeriod;
    }
    /* Shutdown: whoever still waits gets the final state after the last persist. */
    pthread_mutex_unlock(&r->mu);
    int prc = topics_persist(b);
    pthread_mutex_lock(&r->mu);
    answer_waiters(b, UINT64_MAX, prc);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int broker_reg_start(broker_t *b)
{
    /* The first round runs on the caller's thread, so that a broker is registered once
     * broker_start() returns (Java registers synchronously in start()). */
    reg_round(b);
    int rc = pthread_create(&b->reg.thread, NULL, broker_reg_main, b);
    if (rc)
        return -rc;
    b->reg.started = 1;
    return 0;
}

void broker_reg_trigger(broker_t *b)
{
    pthread_mutex_lock(&b->reg.mu);
    b->reg.want = 1;
    pthread_cond_signal(&b->reg.cond);
    pthread_mutex_unlock(&b->reg.mu);
}

void broker_reg_answer_after(broker_t *b, conn_t *conn, const struct rcmd *req)
{
    struct reg_waiter *w = ferry_calloc(1, sizeof *w);
    broker_reply_init(&w->rt, conn, req);
    pthread_mutex_lock(&b->reg.mu);
    w->round = b->reg.round_started;
    w->next = b->reg.waiters;
    b->reg.waiters = w;
    b->reg.want = 1;
    pthread_cond_signal(&b->reg.cond);
    pthread_mutex_unlock(&b->reg.mu);
}

void broker_reg_stop(broker_t *b)
{
    struct reg *r = &b->reg;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        r->started = 0;
    }
    for (int i = 0; i < r->n_links; i++) {
        struct ns_link *l = &r->links[i];
        char why[300];
        if (l->state >= 0 && link_connect(b, l, SHUTDOWN_TIMEOUT_MS, why, sizeof why) == 0) {
            struct rcmd req, *resp = NULL;
            rcmd_init_request(&req, REQ_UNREGISTER_BROKER);
            add_ids(b, &req);
            int rc = remoting_client_invoke_sync(l->cli, &req, SHUTDOWN_TIMEOUT_MS * 3, &resp);
            if (rc == 0 && resp->code == RESP_SUCCESS)
                log_info(LOG_BROKER, "unregistered from name server %s", l->addr);
            else
                log_warn(LOG_BROKER, "unregister from name server %s: %s", l->addr,
                         rc ? ferry_strerror(rc) : "refused");
            rcmd_free(resp);
        }
        remoting_client_free(l->cli);
        l->cli = NULL;
    }
}

void broker_reg_close(broker_t *b)
{
    struct reg *r = &b->reg;
    while (r->waiters) {
        struct reg_waiter *w = r->waiters;
        r->waiters = w->next;
        broker_reply_done(&w->rt);
        ferry_free(w);
    }
    ferry_free(r->links);
    r->links = NULL;
    r->n_links = 0;
    master_forget(b);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

int broker_master_addrs(broker_t *b, char *addr, size_t addr_cap, char *ha_addr, size_t ha_cap)
{
    int known = 0;
    pthread_mutex_lock(&master_mu);
    const struct master_rec *m = master_rec_of(b, 0);
    if (addr_cap)
        snprintf(addr, addr_cap, "%s", m ? m->addr : "");
    if (ha_cap)
        snprintf(ha_addr, ha_cap, "%s", m ? m->ha : "");
    known = m && m->addr[0] && m->ha[0];
    pthread_mutex_unlock(&master_mu);
    return known ? 0 : FERRY_ENOROUTE;
}

/* Forget what was recorded for @b (broker_reg_close). */
static void master_forget(const broker_t *b)
{
    pthread_mutex_lock(&master_mu);
    struct master_rec *m = master_rec_of(b, 0);
    if (m)
        memset(m, 0, sizeof *m);
    pthread_mutex_unlock(&master_mu);
}
