/* Controller mode (enableControllerMode, docs/CONTROLLER.md): the broker's side of the
 * controller group. One thread, every brokerHeartbeatInterval:
 *
 *  1. BROKER_HEARTBEAT (904) to every controller, with this broker's CommitLog end and epoch;
 *     a master that has not reached a majority of them for half the lease
 *     (controllerHeartBeatTimeoutMills) fences itself: it stops accepting messages, because by
 *     then the controllers may elect another master.
 *  2. Until registered: APPLY_BROKER_ID (1013) for the configured brokerId, then REGISTER_BROKER
 *     (1003); afterwards GET_REPLICA_INFO (1004). Requests that change state go to the leader
 *     (a follower's NOT_LEADER answer names it).
 *  3. The answer's master decides the role: named master with a new epoch -> promote (the
 *     store takes its queue offsets from what it replicated, the epoch file gets (epoch, end),
 *     the HA port opens, the name server learns id 0); another master -> follow it as a slave
 *     (the HA handshake cuts what the new master's epochs do not share); none -> a master
 *     fences itself.
 *  4. A master keeps the sync state set (ALTER_SYNC_STATE_SET, 1001) every
 *     checkSyncStateSetPeriod: a slave that fell behind (more than haMaxGapNotInSync bytes, or
 *     silent while behind) leaves, then stops being waited for; a slave that caught up is first
 *     waited for, then joins once it has everything acknowledged so far. A SYNC_MASTER send is
 *     acknowledged when every slave of the set (at least inSyncReplicas) has it durably, so
 *     any member the controller may elect holds every acknowledged message.
 *
 * The role switches run on this thread only; other threads read the role (broker_role) and
 * the required-acks mask lock-free, and the master address and epochs under mu. */
#include "broker/broker_int.h"
#include "broker/epoch.h"
#include "controller/codes.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_CTL      9
#define MAX_SLAVES   16
#define CONNECT_MS   500
#define REQUEST_MS   1000
#define IDLE_WAIT_MS 5000 /* demotion: wait for the schedule/transaction services to idle */
#define PROMOTE_MS   10000
#define MAX_ID       63 /* ids are bits of a 64-bit mask */

struct ctl_peer {
    char addr[128];
    remoting_client_t *cli;
};

struct ctl_link {
    broker_t *b;
    struct ctl_peer peers[MAX_CTL];
    int n, leader;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                 /* @locks mu */
    char master_addr[128];    /* @locks mu */
    struct epoch_list epochs; /* @locks mu */
    char epoch_path[4096];
    atomic_uint_fast64_t required; /* slaves whose acks SYNC_MASTER sends wait for */
    /* link thread only */
    int registered;
    int64_t my_epoch; /* the epoch this broker is master of (0: not master) */
    int fenced;
    int64_t last_majority_ms, next_ss_check_ms;
    uint64_t ss_mask; /* the controller's sync state set, slaves only */
    int64_t ss_epoch;
    uint64_t joining;
    int64_t join_end[MAX_ID + 1];
};

/* ---- requests ------------------------------------------------------------------------- */

static int invoke(struct ctl_link *l, int i, const struct rcmd *req, struct rcmd **resp)
{
    struct ctl_peer *p = &l->peers[i];
    if (!p->cli) {
        struct remoting_client_config cc;
        remoting_client_config_init(&cc);
        cc.tls = l->b->tls_client; /* tlsEnable (docs/TLS.md), else plain */
        cc.tls_no_default = 1;
        int rc = remoting_client_new(&cc, &p->cli);
        if (rc)
            return rc;
    }
    if (!remoting_client_is_connected(p->cli)) {
        char msg[256];
        int rc = remoting_client_connect(p->cli, p->addr, CONNECT_MS, msg, sizeof msg);
        if (rc && rc != -EISCONN)
            return rc;
    }
    int64_t t = l->b->cfg.brokerHeartbeatInterval;
    return remoting_client_invoke_sync(p->cli, req, t < REQUEST_MS ? REQUEST_MS : (int)t, resp);
}

static int peer_of(const struct ctl_link *l, const struct rstr *addr)
{
    for (int i = 0; addr && i < l->n; i++)
        if (strlen(l->peers[i].addr) == addr->len &&
            memcmp(l->peers[i].addr, addr->p, addr->len) == 0)
            return i;
    return -1;
}

/* Send @req to the controller leader: the one known, else each in turn; a NOT_LEADER answer
 * that names the leader is followed. Returns 0 with *@resp (any other code), or an error. */
static int leader_invoke(struct ctl_link *l, const struct rcmd *req, struct rcmd **resp)
{
    int tried = 0, rc = FERRY_ENOROUTE;
    for (int round = 0; round < l->n + 1; round++) {
        int i = l->leader;
        if (i < 0 || (tried >> i & 1))
            for (i = 0; i < l->n && (tried >> i & 1); i++)
                ;
        if (i >= l->n)
            break;
        tried |= 1 << i;
        struct rcmd *r = NULL;
        if ((rc = invoke(l, i, req, &r)) != 0) {
            if (l->leader == i)
                l->leader = -1;
            continue;
        }
        if (r->code == CTL_RESP_NOT_LEADER) {
            int j = peer_of(l, rcmd_ext_get(r, "controllerLeaderAddress"));
            l->leader = (j >= 0 && !(tried >> j & 1)) ? j : -1;
            rcmd_free(r);
            rc = FERRY_ENOROUTE;
            continue;
        }
        l->leader = i;
        *resp = r;
        return 0;
    }
    return rc;
}

static void add_names(broker_t *b, struct rcmd *req)
{
    rcmd_ext_add(req, "clusterName", b->cfg.brokerClusterName);
    rcmd_ext_add(req, "brokerName", b->cfg.brokerName);
}

/* Heartbeats to every controller; 1 when a majority answered. */
static int heartbeat_all(struct ctl_link *l)
{
    broker_t *b = l->b;
    struct rcmd req;
    rcmd_init_request(&req, CTL_REQ_BROKER_HEARTBEAT);
    add_names(b, &req);
    rcmd_ext_add_i64(&req, "brokerId", b->cfg.brokerId);
    rcmd_ext_add(&req, "brokerAddr", b->addr);
    rcmd_ext_add_i64(&req, "maxOffset", store_max_phys(b->store));
    pthread_mutex_lock(&l->mu);
    rcmd_ext_add_i64(&req, "epoch", epoch_last(&l->epochs));
    pthread_mutex_unlock(&l->mu);
    int ok = 0;
    for (int i = 0; i < l->n; i++) {
        struct rcmd *r = NULL;
        if (invoke(l, i, &req, &r) == 0) {
            ok += r->code == CTL_RESP_SUCCESS;
            rcmd_free(r);
        }
    }
    return ok * 2 > l->n;
}

/* The master fields of a REGISTER / GET_REPLICA_INFO answer. */
struct replica_info {
    int64_t master_id, master_epoch, ss_epoch;
    char master_addr[128];
    uint64_t ss_mask; /* slaves and master */
};

static int parse_info(const struct rcmd *r, struct replica_info *ri)
{
    memset(ri, 0, sizeof *ri);
    if (rcmd_ext_get_i64(r, "masterBrokerId", &ri->master_id))
        ri->master_id = 0;
    const struct rstr *a = rcmd_ext_get(r, "masterAddress");
    if (a && a->len < sizeof ri->master_addr) {
        memcpy(ri->master_addr, a->p, a->len);
        ri->master_addr[a->len] = 0;
    }
    if (rcmd_ext_get_i64(r, "masterEpoch", &ri->master_epoch) ||
        rcmd_ext_get_i64(r, "syncStateSetEpoch", &ri->ss_epoch))
        return FERRY_EINVAL;
    cJSON *body = r->body_len ? cJSON_ParseWithLength((const char *)r->body, r->body_len) : NULL;
    cJSON *set = cJSON_GetObjectItemCaseSensitive(body, "syncStateSet");
    cJSON *id;
    cJSON_ArrayForEach(id, set)
    {
        if (cJSON_IsNumber(id) && id->valuedouble >= 1 && id->valuedouble <= MAX_ID)
            ri->ss_mask |= 1ULL << (int)id->valuedouble;
    }
    cJSON_Delete(body);
    return 0;
}

static int register_broker(struct ctl_link *l, struct replica_info *ri)
{
    broker_t *b = l->b;
    struct rcmd req, *r = NULL;
    char code[192];
    snprintf(code, sizeof code, "%s;%" PRId64, b->addr, clock_wall_ms());
    rcmd_init_request(&req, CTL_REQ_APPLY_BROKER_ID);
    add_names(b, &req);
    rcmd_ext_add_i64(&req, "appliedBrokerId", b->cfg.brokerId);
    rcmd_ext_add(&req, "registerCheckCode", code);
    int rc = leader_invoke(l, &req, &r);
    if (rc)
        return rc;
    if (r->code != CTL_RESP_SUCCESS) {
        log_error(LOG_BROKER,
                  "controller refused brokerId %" PRId64 " for %s (code %d: %.*s); is another "
                  "broker of the set using it?",
                  b->cfg.brokerId, b->cfg.brokerName, r->code, (int)r->remark.len,
                  r->remark.p ? r->remark.p : "");
        rcmd_free(r);
        return FERRY_EINVAL;
    }
    rcmd_free(r);
    rcmd_init_request(&req, CTL_REQ_REGISTER_BROKER);
    add_names(b, &req);
    rcmd_ext_add_i64(&req, "brokerId", b->cfg.brokerId);
    rcmd_ext_add(&req, "brokerAddress", b->addr);
    if ((rc = leader_invoke(l, &req, &r)) != 0)
        return rc;
    rc = r->code == CTL_RESP_SUCCESS ? parse_info(r, ri) : FERRY_EINVAL;
    if (r->code != CTL_RESP_SUCCESS)
        log_warn(LOG_BROKER, "controller: REGISTER_BROKER answered %d: %.*s", r->code,
                 (int)r->remark.len, r->remark.p ? r->remark.p : "");
    rcmd_free(r);
    return rc;
}

static int replica_info(struct ctl_link *l, struct replica_info *ri)
{
    struct rcmd req, *r = NULL;
    rcmd_init_request(&req, CTL_REQ_GET_REPLICA_INFO);
    rcmd_ext_add(&req, "brokerName", l->b->cfg.brokerName);
    int rc = leader_invoke(l, &req, &r);
    if (rc)
        return rc;
    rc = r->code == CTL_RESP_SUCCESS ? parse_info(r, ri) : FERRY_ENOTFOUND;
    rcmd_free(r);
    return rc;
}

/* ---- roles ---------------------------------------------------------------------------- */

static int master_flavour(const broker_t *b)
{
    return b->cfg.brokerRole == BROKER_SLAVE ? BROKER_SYNC_MASTER : b->cfg.brokerRole;
}

static void restart_ha(broker_t *b)
{
    char err[256] = "";
    ha_stop(b);
    if (ha_start(b, err, sizeof err) != 0)
        log_error(LOG_BROKER, "controller mode: HA restart failed: %s", err);
}

static void become_master(struct ctl_link *l, int64_t epoch)
{
    broker_t *b = l->b;
    atomic_store(&b->role, BROKER_SLAVE);
    ha_stop(b); /* stop replicating: nothing more arrives */
    /* Its whole log is the new master's history: a limit left from an earlier term (or from
     * before its demotion) would keep the promotion from ever seeing it all dispatched. */
    store_set_repl_limit(b->store, -1);
    if (store_promote(b->store, PROMOTE_MS) != 0) {
        log_error(LOG_BROKER,
                  "controller mode: the store did not finish dispatching within %d ms; "
                  "promotion retried next round",
                  PROMOTE_MS);
        restart_ha(b);
        return;
    }
    int64_t end = store_max_phys(b->store);
    pthread_mutex_lock(&l->mu);
    if (epoch_last(&l->epochs) != epoch) {
        epoch_cut(&l->epochs, end);
        epoch_append(&l->epochs, epoch, end);
    }
    int rc = epoch_save(l->epoch_path, &l->epochs);
    snprintf(l->master_addr, sizeof l->master_addr, "%s", b->addr);
    pthread_mutex_unlock(&l->mu);
    if (rc) {
        log_error(LOG_BROKER, "controller mode: cannot write %s (%s); not taking the master role",
                  l->epoch_path, ferry_strerror(rc));
        restart_ha(b);
        return;
    }
    l->my_epoch = epoch;
    l->fenced = 0;
    l->ss_mask = 0;
    l->joining = 0;
    atomic_store(&l->required, 0);
    l->next_ss_check_ms = 0;
    /* A SYNC_MASTER shows consumers only what its sync state set has (raised by ha.c). */
    if (master_flavour(b) == BROKER_SYNC_MASTER)
        store_set_repl_limit(b->store, end);
    atomic_store(&b->role, master_flavour(b));
    restart_ha(b);
    broker_reg_trigger(b);
    log_info(LOG_BROKER,
             "controller mode: this broker is now the master of %s (epoch %" PRId64
             ", CommitLog from %" PRId64 ")",
             b->cfg.brokerName, epoch, end);
}

static void become_slave(struct ctl_link *l, const char *master)
{
    broker_t *b = l->b;
    int was_master = broker_role(b) != BROKER_SLAVE || l->my_epoch;
    atomic_store(&b->role, BROKER_SLAVE);
    l->my_epoch = 0;
    l->fenced = 0;
    atomic_store(&l->required, 0);
    /* A demoted master keeps its replication limit until the HA handshake has cut what the new
     * master does not have (ha.c lifts it): its unreplicated tail is never served. */
    pthread_mutex_lock(&l->mu);
    snprintf(l->master_addr, sizeof l->master_addr, "%s", master);
    pthread_mutex_unlock(&l->mu);
    /* The schedule and transaction services append on their own while master: let a delivery
     * or resolution in flight end before replication (its handshake may cut the log) starts. */
    if (sched_wait_idle(b, IDLE_WAIT_MS) != 0 || tx_wait_idle(b, IDLE_WAIT_MS) != 0)
        log_warn(LOG_BROKER,
                 "controller mode: a delayed delivery or transaction check did not "
                 "finish within %d ms; following the master anyway",
                 IDLE_WAIT_MS);
    restart_ha(b);
    broker_reg_trigger(b);
    slave_sync_kick(b);
    log_info(LOG_BROKER, "controller mode: %s; following the master %s",
             was_master ? "no longer the master" : "a slave", master);
}

static void fence(struct ctl_link *l, const char *why)
{
    if (l->fenced || broker_role(l->b) == BROKER_SLAVE)
        return;
    l->fenced = 1;
    atomic_store(&l->b->role, BROKER_SLAVE);
    log_warn(LOG_BROKER, "controller mode: fenced, sends refused: %s", why);
}

static void apply_info(struct ctl_link *l, const struct replica_info *ri, int majority)
{
    broker_t *b = l->b;
    int64_t me = b->cfg.brokerId;
    if (ri->master_id == me) {
        if (l->my_epoch != ri->master_epoch) {
            become_master(l, ri->master_epoch);
        } else if (l->fenced && majority) {
            l->fenced = 0;
            atomic_store(&b->role, master_flavour(b));
            log_info(LOG_BROKER,
                     "controller mode: the controllers are back; master again "
                     "(epoch %" PRId64 ")",
                     l->my_epoch);
        }
        if (l->my_epoch == ri->master_epoch && ri->ss_epoch >= l->ss_epoch) {
            l->ss_mask = ri->ss_mask & ~(1ULL << me);
            l->ss_epoch = ri->ss_epoch;
        }
        return;
    }
    if (ri->master_id > 0 && ri->master_addr[0]) {
        char cur[128];
        ctl_link_master(b, cur, sizeof cur);
        if (l->my_epoch || broker_role(b) != BROKER_SLAVE || strcmp(cur, ri->master_addr) != 0)
            become_slave(l, ri->master_addr);
        return;
    }
    if (l->my_epoch) {
        fence(l, "the controllers name no master (this one's lease ran out)");
        l->my_epoch = 0;
    }
}

/* ---- the sync state set --------------------------------------------------------------- */

static int alter_set(struct ctl_link *l, uint64_t slaves)
{
    broker_t *b = l->b;
    struct rcmd req, *r = NULL;
    rcmd_init_request(&req, CTL_REQ_ALTER_SYNC_STATE_SET);
    rcmd_ext_add(&req, "brokerName", b->cfg.brokerName);
    rcmd_ext_add_i64(&req, "masterBrokerId", b->cfg.brokerId);
    rcmd_ext_add_i64(&req, "masterEpoch", l->my_epoch);
    char body[1024];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"syncStateSet\":[%" PRId64, b->cfg.brokerId);
    for (int id = 1; id <= MAX_ID; id++)
        if (slaves >> id & 1)
            n += (size_t)snprintf(body + n, sizeof body - n, ",%d", id);
    n += (size_t)snprintf(body + n, sizeof body - n, "],\"syncStateSetEpoch\":%" PRId64 "}",
                          l->ss_epoch);
    req.body = (const uint8_t *)body;
    req.body_len = n;
    int rc = leader_invoke(l, &req, &r);
    if (rc)
        return rc;
    if (r->code == CTL_RESP_SUCCESS) {
        struct replica_info ri;
        int64_t e;
        if (rcmd_ext_get_i64(r, "newSyncStateSetEpoch", &e) == 0)
            l->ss_epoch = e;
        parse_info(r, &ri);
        l->ss_mask = slaves;
        rc = 0;
    } else {
        log_warn(LOG_BROKER, "controller: ALTER_SYNC_STATE_SET answered %d: %.*s", r->code,
                 (int)r->remark.len, r->remark.p ? r->remark.p : "");
        if (r->code == CTL_RESP_FENCED_MASTER_EPOCH)
            fence(l, "the controllers have a newer master epoch");
        rc = FERRY_EINVAL;
    }
    rcmd_free(r);
    return rc;
}

static void check_sync_set(struct ctl_link *l)
{
    broker_t *b = l->b;
    struct ha_slave sl[MAX_SLAVES];
    int n = ha_slaves(b, sl, MAX_SLAVES);
    int64_t max = store_max_phys(b->store);
    int64_t quiet = 2LL * b->cfg.haSendHeartbeatInterval + 1000;
    uint64_t healthy = 0, caught_up = 0, have = 0;
    for (int i = 0; i < n; i++) {
        int64_t id = sl[i].broker_id;
        if (id <= 0 || id > MAX_ID || id == b->cfg.brokerId)
            continue;
        have |= 1ULL << id;
        int ok = sl[i].acked >= 0 && max - sl[i].acked <= b->cfg.haMaxGapNotInSync &&
                 (sl[i].acked >= max || sl[i].idle_ms <= quiet);
        if (ok)
            healthy |= 1ULL << id;
        if (ok && sl[i].acked >= l->join_end[id])
            caught_up |= 1ULL << id;
    }
    /* Joining: first waited for (required), then in the set once it has everything
     * acknowledged before it was waited for. */
    for (int id = 1; id <= MAX_ID; id++) {
        uint64_t bit = 1ULL << id;
        if (!(healthy & bit) || (l->ss_mask & bit))
            l->joining &= ~bit;
        else if (!(l->joining & bit)) {
            l->joining |= bit;
            l->join_end[id] = max;
            caught_up &= ~bit;
        }
    }
    uint64_t want = (l->ss_mask & healthy) | (l->joining & caught_up);
    atomic_store(&l->required, l->ss_mask | l->joining);
    if (want != l->ss_mask && alter_set(l, want) == 0) {
        l->joining &= ~want;
        log_info(LOG_BROKER,
                 "controller mode: sync state set of %s now %#" PRIx64
                 " (slave bits; epoch %" PRId64 ")",
                 b->cfg.brokerName, want, l->ss_epoch);
    }
    atomic_store(&l->required, l->ss_mask | l->joining);
    (void)have;
}

/* ---- the thread ----------------------------------------------------------------------- */

static void *link_main(void *arg)
{
    struct ctl_link *l = arg;
    broker_t *b = l->b;
    l->last_majority_ms = clock_mono_ms();
    for (;;) {
        pthread_mutex_lock(&l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        pthread_mutex_unlock(&l->mu);
        int64_t now = clock_mono_ms();
        int majority = heartbeat_all(l);
        if (majority)
            l->last_majority_ms = now;
        else if (now - l->last_majority_ms > b->cfg.controllerHeartBeatTimeoutMills / 2)
            fence(l, "no majority of the controllers answers heartbeats");
        struct replica_info ri;
        int rc;
        if (!l->registered) {
            rc = register_broker(l, &ri);
            if (rc == 0) {
                l->registered = 1;
                log_info(LOG_BROKER,
                         "controller mode: registered %s id %" PRId64 " (master %" PRId64
                         ", epoch %" PRId64 ")",
                         b->cfg.brokerName, b->cfg.brokerId, ri.master_id, ri.master_epoch);
            }
        } else {
            rc = replica_info(l, &ri);
        }
        if (rc == 0)
            apply_info(l, &ri, majority);
        if (l->my_epoch && !l->fenced && clock_mono_ms() >= l->next_ss_check_ms) {
            check_sync_set(l);
            l->next_ss_check_ms = clock_mono_ms() + b->cfg.checkSyncStateSetPeriod;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (b->cfg.brokerHeartbeatInterval % 1000) * 1000000;
        ts.tv_sec += b->cfg.brokerHeartbeatInterval / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_mutex_lock(&l->mu);
        if (!l->stop)
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

static int add_peer(const char *a, size_t n, void *arg)
{
    struct ctl_link *l = arg;
    if (l->n == MAX_CTL || n >= sizeof l->peers[0].addr)
        return FERRY_ECONFIG;
    memcpy(l->peers[l->n].addr, a, n);
    l->peers[l->n++].addr[n] = 0;
    return 0;
}

int ctl_link_start(broker_t *b, char *err, size_t errlen)
{
    struct ctl_link *l = ferry_calloc(1, sizeof *l);
    l->b = b;
    l->leader = -1;
    if (conf_addr_list(b->cfg.controllerAddr, add_peer, l) != 0) {
        snprintf(err, errlen, "controllerAddr: at most %d addresses of < 128 bytes", MAX_CTL);
        ferry_free(l);
        return FERRY_ECONFIG;
    }
    if (l->n == 0) {
        snprintf(err, errlen, "controllerAddr: no address");
        ferry_free(l);
        return FERRY_ECONFIG;
    }
    snprintf(l->epoch_path, sizeof l->epoch_path, "%s/epochFileCheckpoint",
             b->cfg.store.storePathRootDir);
    int rc = epoch_load(l->epoch_path, &l->epochs, err, errlen);
    if (rc) {
        ferry_free(l);
        return rc;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&l->required, 0);
    b->ctl = l;
    if ((rc = pthread_create(&l->thread, NULL, link_main, l)) != 0) {
        snprintf(err, errlen, "start the controller link thread: %s", strerror(rc));
        return -rc;
    }
    l->started = 1;
    log_info(LOG_BROKER,
             "controller mode: %d controller(s), epoch file %s (last epoch %" PRId64 ")", l->n,
             l->epoch_path, epoch_last(&l->epochs));
    return 0;
}

void ctl_link_stop(broker_t *b)
{
    struct ctl_link *l = b->ctl;
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        l->started = 0;
    }
}

void ctl_link_free(broker_t *b)
{
    struct ctl_link *l = b->ctl;
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        remoting_client_free(l->peers[i].cli);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    b->ctl = NULL;
    ferry_free(l);
}

void ctl_link_master(broker_t *b, char *addr, size_t cap)
{
    struct ctl_link *l = b->ctl;
    if (!l) {
        snprintf(addr, cap, "%s", "");
        return;
    }
    pthread_mutex_lock(&l->mu);
    snprintf(addr, cap, "%s", l->master_addr);
    pthread_mutex_unlock(&l->mu);
}

void ctl_link_epochs(broker_t *b, struct epoch_list *out)
{
    struct ctl_link *l = b->ctl;
    out->n = 0;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    *out = l->epochs;
    pthread_mutex_unlock(&l->mu);
}

void ctl_link_adopt_epochs(broker_t *b, const struct epoch_list *master, int64_t end)
{
    struct ctl_link *l = b->ctl;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->epochs = *master;
    (void)end;
    int rc = epoch_save(l->epoch_path, &l->epochs);
    pthread_mutex_unlock(&l->mu);
    if (rc)
        log_error(LOG_BROKER, "controller mode: cannot write %s: %s", l->epoch_path,
                  ferry_strerror(rc));
}

uint64_t ctl_link_required_mask(broker_t *b)
{
    struct ctl_link *l = b->ctl;
    return l ? atomic_load(&l->required) : 0;
}
