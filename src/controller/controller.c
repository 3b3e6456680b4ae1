/* The controller (controller.h): config, request handlers, broker liveness and the lease scan
 * that triggers elections. The replicated state lives in state.c; Raft in consensus.c. */
#include "controller/controller.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "controller/codes.h"
#include "controller/state.h"
#include "remoting/server.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_STRUCT struct controller_config
const struct conf_def controller_conf_defs[] = {
    CONF_ROW_STR(controllerGroup, "DefaultControllerGroup", "name of the controller group"),
    CONF_ROW_STR(controllerPeers, "",
                 "the controller group: n0-ip:port;n1-ip:port;... (Raft transport addresses, "
                 "RocketMQ's controllerDLegerPeers style)"),
    CONF_ROW_STR(controllerSelfId, "", "this controller's name in controllerPeers (n0)"),
    CONF_ROW_STR(controllerStorePath, "", "directory of the Raft log and snapshots"),
    CONF_ROW_INT(listenPort, "9878", 1, 65535, "remoting port for brokers and admin tools"),
    CONF_ROW_LONG(scanNotActiveBrokerInterval, "5000", 10, 3600000,
                  "ms between scans for brokers whose lease expired (leader only)"),
    CONF_ROW_LONG(controllerHeartBeatTimeoutMills, "10000", 100, 3600000,
                  "broker lease: ms without a heartbeat before a broker is not active"),
    CONF_ROW_BOOL(enableElectUncleanMaster, "false",
                  "elect a master outside the sync state set when no member is alive "
                  "(may lose acknowledged messages)"),
    CONF_ROW_INT(raftElectionTimeoutMs, "1000", 50, 60000, "Raft election timeout (ms)"),
    CONF_ROW_INT(raftHeartbeatTimeoutMs, "100", 10, 10000, "Raft heartbeat period (ms)"),
    CONF_ROW_INT(raftSnapshotThreshold, "1024", 16, 1 << 30,
                 "Raft entries between two snapshots of the state"),
    TLS_CONF_SERVER_ROWS(struct controller_config, tls),
    CONF_ROW_END,
};

void controller_config_defaults(struct controller_config *cfg)
{
    conf_defaults(controller_conf_defs, cfg);
}

int controller_parse_peers(const struct controller_config *cfg, struct consensus_peer *peers,
                           char names[][32], int *n, int *self_index, char *err, size_t errlen)
{
    char buf[sizeof cfg->controllerPeers];
    snprintf(buf, sizeof buf, "%s", cfg->controllerPeers);
    *n = 0;
    *self_index = -1;
    if (!buf[0]) {
        snprintf(err, errlen, "controllerPeers is not set (n0-127.0.0.1:9878;n1-...;n2-...)");
        return FERRY_ECONFIG;
    }
    char *save = NULL;
    for (char *e = strtok_r(buf, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
        while (*e == ' ')
            e++;
        if (!*e)
            continue;
        char *dash = strchr(e, '-');
        char *colon = dash ? strrchr(dash, ':') : NULL;
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (!dash || dash == e || (size_t)(dash - e) >= 32 || !colon || colon == dash + 1 ||
            port <= 0 || port > 65535 || strlen(dash + 1) >= sizeof peers[0].addr) {
            snprintf(err, errlen,
                     "controllerPeers: bad entry '%s' (expected name-ip:port, e.g. "
                     "n0-127.0.0.1:9878)",
                     e);
            return FERRY_ECONFIG;
        }
        if (*n == CONSENSUS_PEERS_MAX) {
            snprintf(err, errlen, "controllerPeers: more than %d peers", CONSENSUS_PEERS_MAX);
            return FERRY_ECONFIG;
        }
        snprintf(names[*n], 32, "%.*s", (int)(dash - e), e);
        for (int i = 0; i < *n; i++)
            if (!strcmp(names[i], names[*n]) || !strcmp(peers[i].addr, dash + 1)) {
                snprintf(err, errlen, "controllerPeers: '%s' is listed twice", e);
                return FERRY_ECONFIG;
            }
        peers[*n].id = (uint64_t)*n + 1;
        snprintf(peers[*n].addr, sizeof peers[*n].addr, "%s", dash + 1);
        if (!strcmp(names[*n], cfg->controllerSelfId))
            *self_index = *n;
        (*n)++;
    }
    if (*n == 0) {
        snprintf(err, errlen, "controllerPeers lists no peer");
        return FERRY_ECONFIG;
    }
    if (*self_index < 0) {
        snprintf(err, errlen, "controllerSelfId '%s' is not one of the names in controllerPeers",
                 cfg->controllerSelfId);
        return FERRY_ECONFIG;
    }
    return 0;
}

/* ---- the controller ---- */

struct hb {
    char name[CTL_NAME_MAX];
    int64_t id;
    int64_t last_ms;
    int64_t max_offset;
    int32_t epoch;
};

struct controller {
    struct controller_config cfg;
    struct consensus_peer peers[CONSENSUS_PEERS_MAX];
    char names[CONSENSUS_PEERS_MAX][32];
    int n_peers, self;
    char self_remoting[CTL_ADDR_MAX];
    consensus_t *cs;
    remoting_server_t *srv;

    pthread_mutex_t mu; /* guards st and hb */
    struct ctl_state st;
    struct hb *hb;
    int n_hb, cap_hb;

    /* consensus thread only */
    int64_t start_ms;
    int64_t leader_since; /* read under mu by handlers */
    int was_leader;
    int64_t last_scan;
    int node_inflight;
};

enum kind { K_APPLY, K_REG, K_ALTER, K_ELECT };

struct pending {
    struct controller *ctl;
    conn_t *conn;
    struct rcmd *req;
    enum kind kind;
    char name[CTL_NAME_MAX];
};

/* Called with mu held. */
static struct hb *hb_find(struct controller *ctl, const char *name, int64_t id, int create)
{
    for (int i = 0; i < ctl->n_hb; i++)
        if (ctl->hb[i].id == id && !strcmp(ctl->hb[i].name, name))
            return &ctl->hb[i];
    if (!create)
        return NULL;
    if (ctl->n_hb == ctl->cap_hb) {
        ctl->cap_hb = ctl->cap_hb ? ctl->cap_hb * 2 : 16;
        ctl->hb = ferry_realloc(ctl->hb, (size_t)ctl->cap_hb * sizeof *ctl->hb);
    }
    struct hb *h = &ctl->hb[ctl->n_hb++];
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    h->id = id;
    return h;
}

/* A broker is alive while its lease runs: since its last heartbeat, or since this controller
 * started (or became leader) when it has not heard from it since. Called with mu held. */
static int is_alive(struct controller *ctl, const char *name, int64_t id, int64_t now)
{
    struct hb *h = hb_find(ctl, name, id, 0);
    int64_t base = ctl->start_ms;
    if (ctl->leader_since > base)
        base = ctl->leader_since;
    if (h && h->last_ms > base)
        base = h->last_ms;
    return now - base <= ctl->cfg.controllerHeartBeatTimeoutMills;
}

/* The ELECT command for @s with the liveness this controller sees. Called with mu held. */
static int build_elect(struct controller *ctl, const struct ctl_set *s, int64_t designated,
                       char *buf, size_t cap)
{
    int64_t now = clock_mono_ms();
    size_t n = (size_t)snprintf(buf, cap, "ELECT %s %lld %d %d", s->name, (long long)designated,
                                ctl->cfg.enableElectUncleanMaster ? 1 : 0, s->n_rep);
    for (int i = 0; i < s->n_rep && n < cap; i++) {
        const struct ctl_replica *r = &s->rep[i];
        struct hb *h = hb_find(ctl, s->name, r->id, 0);
        n += (size_t)snprintf(buf + n, cap - n, " %lld %d %lld %d", (long long)r->id,
                              is_alive(ctl, s->name, r->id, now),
                              (long long)(h ? h->max_offset : r->max_offset),
                              h ? h->epoch : r->epoch);
    }
    return n < cap ? (int)n : -1;
}

/* ---- responses ---- */

static char *sync_state_json(const struct ctl_set *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "syncStateSet");
    for (int i = 0; i < s->n_ss; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)s->ss[i]));
    cJSON_AddNumberToObject(o, "syncStateSetEpoch", s->ss_epoch);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

/* Header fields of a set's master and the SyncStateSet body; returns the body to free. */
static char *add_replica_fields(struct rcmd *resp, const struct ctl_set *s, char *addr_buf,
                                size_t cap)
{
    if (s->master_id) {
        rcmd_ext_add_i64(resp, "masterBrokerId", s->master_id);
        const struct ctl_replica *m = ctl_set_replica(s, s->master_id);
        snprintf(addr_buf, cap, "%s", m ? m->addr : "");
        rcmd_ext_add(resp, "masterAddress", addr_buf);
    }
    rcmd_ext_add_i64(resp, "masterEpoch", s->master_epoch);
    rcmd_ext_add_i64(resp, "syncStateSetEpoch", s->ss_epoch);
    char *body = sync_state_json(s);
    resp->body = (const uint8_t *)body;
    resp->body_len = strlen(body);
    return body;
}

static void respond_code(conn_t *conn, const struct rcmd *req, int code, const char *remark)
{
    struct rcmd resp;
    rcmd_init_response(&resp, req, code, remark);
    remoting_respond(conn, &resp);
}

static void leader_info(struct controller *ctl, char *name, size_t ncap, char *addr, size_t acap)
{
    uint64_t id = consensus_leader(ctl->cs, NULL, 0);
    name[0] = addr[0] = 0;
    if (id == 0 || id > (uint64_t)ctl->n_peers)
        return;
    snprintf(name, ncap, "%s", ctl->names[id - 1]);
    pthread_mutex_lock(&ctl->mu);
    snprintf(addr, acap, "%s", ctl->st.node_addr[id - 1]);
    pthread_mutex_unlock(&ctl->mu);
}

static void respond_not_leader(struct controller *ctl, conn_t *conn, const struct rcmd *req,
                               const char *why)
{
    char name[32], addr[CTL_ADDR_MAX], remark[256];
    leader_info(ctl, name, sizeof name, addr, sizeof addr);
    if (name[0])
        snprintf(remark, sizeof remark, "%s: the controller leader is %s at %s", why, name,
                 addr[0] ? addr : "(address not known yet)");
    else
        snprintf(remark, sizeof remark, "%s: no controller leader is elected", why);
    struct rcmd resp;
    rcmd_init_response(&resp, req, CTL_RESP_NOT_LEADER, remark);
    if (name[0])
        rcmd_ext_add(&resp, "controllerLeaderId", name);
    if (addr[0])
        rcmd_ext_add(&resp, "controllerLeaderAddress", addr);
    remoting_respond(conn, &resp);
}

static void proposal_done(int status, void *result, void *arg)
{
    struct pending *p = arg;
    struct controller *ctl = p->ctl;
    if (status != 0) {
        if (status == CONSENSUS_NOT_LEADER)
            respond_not_leader(ctl, p->conn, p->req, "not committed (leadership lost)");
        else
            respond_code(p->conn, p->req, CTL_RESP_SYSTEM_ERROR,
                         status == CONSENSUS_SHUTDOWN ? "controller shutting down"
                                                      : "the proposal failed");
    } else {
        const struct ctl_result *r = result;
        struct rcmd resp;
        rcmd_init_response(&resp, p->req, r->code, r->remark);
        char *body = NULL, addr[CTL_ADDR_MAX];
        pthread_mutex_lock(&ctl->mu);
        const struct ctl_set *s = ctl_state_find(&ctl->st, p->name);
        struct ctl_set copy;
        if (s)
            copy = *s;
        pthread_mutex_unlock(&ctl->mu);
        if (s && p->kind != K_APPLY) {
            if (p->kind == K_REG) {
                rcmd_ext_add(&resp, "clusterName", copy.cluster);
                rcmd_ext_add(&resp, "brokerName", copy.name);
            }
            if (p->kind == K_ALTER)
                rcmd_ext_add_i64(&resp, "newSyncStateSetEpoch", copy.ss_epoch);
            body = add_replica_fields(&resp, &copy, addr, sizeof addr);
        }
        if (p->kind == K_ELECT || p->kind == K_ALTER)
            log_info(LOG_MAIN, "%s of %s: code %d, %s", p->kind == K_ELECT ? "elect" : "alter",
                     p->name, r->code, r->remark);
        remoting_respond(p->conn, &resp);
        cJSON_free(body);
    }
    remoting_conn_unref(p->conn);
    rcmd_free(p->req);
    ferry_free(p);
}

static void propose_for(struct controller *ctl, conn_t *conn, const struct rcmd *req,
                        enum kind kind, const char *name, const char *cmd)
{
    struct pending *p = ferry_calloc(1, sizeof *p);
    p->ctl = ctl;
    p->conn = conn;
    p->req = rcmd_dup(req);
    p->kind = kind;
    snprintf(p->name, sizeof p->name, "%s", name);
    remoting_conn_ref(conn);
    consensus_propose(ctl->cs, cmd, strlen(cmd), proposal_done, p);
}

/* A header field as a token; 0 or -1 (absent or not a usable token). */
static int get_tok(const struct rcmd *req, const char *key, char *out, size_t cap)
{
    const struct rstr *v = rcmd_ext_get(req, key);
    if (!v || !v->p || v->len == 0 || v->len >= cap)
        return -1;
    memcpy(out, v->p, v->len);
    out[v->len] = 0;
    return ctl_token_ok(out, cap) ? 0 : -1;
}

static int bad_field(conn_t *conn, const struct rcmd *req, const char *key)
{
    char remark[160];
    snprintf(remark, sizeof remark, "the header field %s is missing or invalid", key);
    respond_code(conn, req, CTL_RESP_INVALID_REQUEST, remark);
    return -1;
}

/* ---- handlers ---- */

static void on_heartbeat(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char name[CTL_NAME_MAX];
    int64_t id, off = 0, epoch = 0;
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    if (rcmd_ext_get_i64(req, "brokerId", &id) || id <= 0)
        return (void)bad_field(conn, req, "brokerId");
    rcmd_ext_get_i64(req, "maxOffset", &off);
    rcmd_ext_get_i64(req, "epoch", &epoch);
    pthread_mutex_lock(&ctl->mu);
    struct hb *h = hb_find(ctl, name, id, 1);
    h->last_ms = clock_mono_ms();
    h->max_offset = off;
    h->epoch = (int32_t)epoch;
    pthread_mutex_unlock(&ctl->mu);
    respond_code(conn, req, CTL_RESP_SUCCESS, NULL);
}

static void on_apply_id(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char cluster[CTL_NAME_MAX], name[CTL_NAME_MAX], code[CTL_ADDR_MAX + 32], cmd[512];
    int64_t id;
    if (!consensus_is_leader(ctl->cs))
        return respond_not_leader(ctl, conn, req, "not the controller leader");
    if (get_tok(req, "clusterName", cluster, sizeof cluster))
        return (void)bad_field(conn, req, "clusterName");
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    if (rcmd_ext_get_i64(req, "appliedBrokerId", &id))
        return (void)bad_field(conn, req, "appliedBrokerId");
    /* registerCheckCode: "<brokerAddress>;<timestamp>" */
    if (get_tok(req, "registerCheckCode", code, sizeof code))
        return (void)bad_field(conn, req, "registerCheckCode");
    char *semi = strchr(code, ';');
    if (semi)
        *semi = 0;
    if (!ctl_token_ok(code, CTL_ADDR_MAX))
        return (void)bad_field(conn, req, "registerCheckCode");
    snprintf(cmd, sizeof cmd, "APPLY %s %s %lld %s", cluster, name, (long long)id, code);
    propose_for(ctl, conn, req, K_APPLY, name, cmd);
}

static void on_register(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char cluster[CTL_NAME_MAX], name[CTL_NAME_MAX], addr[CTL_ADDR_MAX], cmd[512];
    int64_t id;
    if (!consensus_is_leader(ctl->cs))
        return respond_not_leader(ctl, conn, req, "not the controller leader");
    if (get_tok(req, "clusterName", cluster, sizeof cluster))
        return (void)bad_field(conn, req, "clusterName");
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    if (rcmd_ext_get_i64(req, "brokerId", &id) || id <= 0)
        return (void)bad_field(conn, req, "brokerId");
    if (get_tok(req, "brokerAddress", addr, sizeof addr))
        return (void)bad_field(conn, req, "brokerAddress");
    pthread_mutex_lock(&ctl->mu);
    hb_find(ctl, name, id, 1)->last_ms = clock_mono_ms(); /* registering counts as alive */
    pthread_mutex_unlock(&ctl->mu);
    snprintf(cmd, sizeof cmd, "REG %s %s %lld %s", cluster, name, (long long)id, addr);
    propose_for(ctl, conn, req, K_REG, name, cmd);
}

static void on_alter(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char name[CTL_NAME_MAX], cmd[1024];
    int64_t master, mepoch;
    if (!consensus_is_leader(ctl->cs))
        return respond_not_leader(ctl, conn, req, "not the controller leader");
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    if (rcmd_ext_get_i64(req, "masterBrokerId", &master))
        return (void)bad_field(conn, req, "masterBrokerId");
    if (rcmd_ext_get_i64(req, "masterEpoch", &mepoch))
        return (void)bad_field(conn, req, "masterEpoch");
    cJSON *body =
        req->body_len ? cJSON_ParseWithLength((const char *)req->body, req->body_len) : NULL;
    cJSON *set = cJSON_GetObjectItemCaseSensitive(body, "syncStateSet");
    cJSON *ep = cJSON_GetObjectItemCaseSensitive(body, "syncStateSetEpoch");
    int64_t ids[CTL_REPLICAS_MAX];
    int n = 0, ok = cJSON_IsArray(set) && cJSON_IsNumber(ep);
    const cJSON *it;
    cJSON_ArrayForEach(it, set)
    {
        if (!ok || !cJSON_IsNumber(it) || n == CTL_REPLICAS_MAX) {
            ok = 0;
            break;
        }
        ids[n++] = (int64_t)it->valuedouble;
    }
    int64_t ssepoch = ok ? (int64_t)ep->valuedouble : 0;
    cJSON_Delete(body);
    if (!ok) {
        respond_code(conn, req, CTL_RESP_INVALID_REQUEST,
                     "the body must be a SyncStateSet: {\"syncStateSet\":[ids],"
                     "\"syncStateSetEpoch\":n}");
        return;
    }
    /* A broker joins the set only while it is alive (liveness is the leader's view, so it is
     * checked here, before the proposal). */
    int64_t now = clock_mono_ms(), dead = 0;
    pthread_mutex_lock(&ctl->mu);
    const struct ctl_set *s = ctl_state_find(&ctl->st, name);
    /* Only for the current master: a stale one is refused by the state machine's fencing. */
    if (s && (s->master_epoch != mepoch || s->master_id != master))
        s = NULL;
    for (int i = 0; s && i < n && !dead; i++)
        if (!ctl_set_in_sync(s, ids[i]) && !is_alive(ctl, name, ids[i], now))
            dead = ids[i];
    pthread_mutex_unlock(&ctl->mu);
    if (dead) {
        char remark[160];
        snprintf(remark, sizeof remark, "broker %lld of %s is not alive: it cannot join",
                 (long long)dead, name);
        respond_code(conn, req, CTL_RESP_BROKER_NOT_ALIVE, remark);
        return;
    }
    size_t len = (size_t)snprintf(cmd, sizeof cmd, "ALTER %s %lld %lld %lld %d", name,
                                  (long long)master, (long long)mepoch, (long long)ssepoch, n);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %lld", (long long)ids[i]);
    propose_for(ctl, conn, req, K_ALTER, name, cmd);
}

static void on_elect(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char name[CTL_NAME_MAX], cmd[2048];
    int64_t designated = 0;
    if (!consensus_is_leader(ctl->cs))
        return respond_not_leader(ctl, conn, req, "not the controller leader");
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    const struct rstr *de = rcmd_ext_get(req, "designateElect");
    if (de && de->len == 4 && !memcmp(de->p, "true", 4) &&
        (rcmd_ext_get_i64(req, "brokerId", &designated) || designated <= 0))
        return (void)bad_field(conn, req, "brokerId");
    pthread_mutex_lock(&ctl->mu);
    const struct ctl_set *s = ctl_state_find(&ctl->st, name);
    int rc = s ? build_elect(ctl, s, designated, cmd, sizeof cmd) : -1;
    pthread_mutex_unlock(&ctl->mu);
    if (!s) {
        respond_code(conn, req, CTL_RESP_BROKER_METADATA_NOT_EXIST, "unknown broker set");
        return;
    }
    if (rc < 0) {
        respond_code(conn, req, CTL_RESP_SYSTEM_ERROR, "election command too long");
        return;
    }
    propose_for(ctl, conn, req, K_ELECT, name, cmd);
}

static void on_replica_info(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char name[CTL_NAME_MAX], addr[CTL_ADDR_MAX];
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    pthread_mutex_lock(&ctl->mu);
    const struct ctl_set *s = ctl_state_find(&ctl->st, name);
    struct ctl_set copy;
    if (s)
        copy = *s;
    pthread_mutex_unlock(&ctl->mu);
    if (!s) {
        respond_code(conn, req, CTL_RESP_BROKER_METADATA_NOT_EXIST, "unknown broker set");
        return;
    }
    struct rcmd resp;
    rcmd_init_response(&resp, req, CTL_RESP_SUCCESS, NULL);
    char *body = add_replica_fields(&resp, &copy, addr, sizeof addr);
    remoting_respond(conn, &resp);
    cJSON_free(body);
}

static void add_set_json(struct controller *ctl, cJSON *table, const struct ctl_set *s, int64_t now)
{
    cJSON *o = cJSON_AddObjectToObject(table, s->name);
    if (s->master_id) {
        cJSON_AddNumberToObject(o, "masterBrokerId", (double)s->master_id);
        const struct ctl_replica *m = ctl_set_replica(s, s->master_id);
        cJSON_AddStringToObject(o, "masterAddress", m ? m->addr : "");
    }
    cJSON_AddNumberToObject(o, "masterEpoch", s->master_epoch);
    cJSON_AddNumberToObject(o, "syncStateSetEpoch", s->ss_epoch);
    cJSON *in = cJSON_AddArrayToObject(o, "inSyncReplicas");
    cJSON *out = cJSON_AddArrayToObject(o, "notInSyncReplicas");
    for (int i = 0; i < s->n_rep; i++) {
        const struct ctl_replica *r = &s->rep[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "brokerId", (double)r->id);
        cJSON_AddStringToObject(e, "brokerAddress", r->addr);
        cJSON_AddBoolToObject(e, "alive", is_alive(ctl, s->name, r->id, now));
        cJSON_AddItemToArray(ctl_set_in_sync(s, r->id) ? in : out, e);
    }
}

static void on_sync_state_data(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    cJSON *names =
        req->body_len ? cJSON_ParseWithLength((const char *)req->body, req->body_len) : NULL;
    if (req->body_len && !cJSON_IsArray(names)) {
        cJSON_Delete(names);
        respond_code(conn, req, CTL_RESP_INVALID_REQUEST,
                     "the body must be a JSON list of broker names");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *table = cJSON_AddObjectToObject(o, "replicasInfoTable");
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&ctl->mu);
    for (int i = 0; i < ctl->st.n_sets; i++) {
        const struct ctl_set *s = &ctl->st.sets[i];
        int want = !names;
        const cJSON *it;
        cJSON_ArrayForEach(it, names)
        {
            if (cJSON_IsString(it) && !strcmp(it->valuestring, s->name))
                want = 1;
        }
        if (want)
            add_set_json(ctl, table, s, now);
    }
    pthread_mutex_unlock(&ctl->mu);
    cJSON_Delete(names);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct rcmd resp;
    rcmd_init_response(&resp, req, CTL_RESP_SUCCESS, NULL);
    resp.body = (const uint8_t *)txt;
    resp.body_len = strlen(txt);
    remoting_respond(conn, &resp);
    cJSON_free(txt);
}

static void on_metadata(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char name[32], addr[CTL_ADDR_MAX];
    leader_info(ctl, name, sizeof name, addr, sizeof addr);
    struct rcmd resp;
    rcmd_init_response(&resp, req, CTL_RESP_SUCCESS, NULL);
    rcmd_ext_add(&resp, "group", ctl->cfg.controllerGroup);
    if (name[0])
        rcmd_ext_add(&resp, "controllerLeaderId", name);
    if (addr[0])
        rcmd_ext_add(&resp, "controllerLeaderAddress", addr);
    rcmd_ext_add(&resp, "isLeader", consensus_is_leader(ctl->cs) ? "true" : "false");
    rcmd_ext_add(&resp, "peers", ctl->cfg.controllerPeers);
    rcmd_ext_add(&resp, "controllerSelfId", ctl->cfg.controllerSelfId);
    remoting_respond(conn, &resp);
}

static void on_next_id(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct controller *ctl = arg;
    char name[CTL_NAME_MAX];
    if (get_tok(req, "brokerName", name, sizeof name))
        return (void)bad_field(conn, req, "brokerName");
    int64_t next = 1;
    pthread_mutex_lock(&ctl->mu);
    const struct ctl_set *s = ctl_state_find(&ctl->st, name);
    for (int i = 0; s && i < s->n_rep; i++)
        if (s->rep[i].id >= next)
            next = s->rep[i].id + 1;
    pthread_mutex_unlock(&ctl->mu);
    struct rcmd resp;
    rcmd_init_response(&resp, req, CTL_RESP_SUCCESS, NULL);
    rcmd_ext_add(&resp, "brokerName", name);
    rcmd_ext_add_i64(&resp, "nextBrokerId", next);
    remoting_respond(conn, &resp);
}

/* ---- consensus callbacks (consensus thread) ---- */

static void *fsm_apply(void *arg, const void *data, size_t len)
{
    struct controller *ctl = arg;
    pthread_mutex_lock(&ctl->mu);
    const struct ctl_result *r = ctl_state_apply(&ctl->st, data, len);
    pthread_mutex_unlock(&ctl->mu);
    if (r->code != CTL_RESP_SUCCESS)
        log_debug(LOG_MAIN, "apply %.*s: code %d %s", (int)(len > 200 ? 200 : len),
                  (const char *)data, r->code, r->remark);
    return (void *)r;
}

static int fsm_snapshot(void *arg, void **data, size_t *len)
{
    struct controller *ctl = arg;
    pthread_mutex_lock(&ctl->mu);
    *data = ctl_state_dump(&ctl->st, len);
    pthread_mutex_unlock(&ctl->mu);
    return 0;
}

static int fsm_restore(void *arg, const void *data, size_t len)
{
    struct controller *ctl = arg;
    pthread_mutex_lock(&ctl->mu);
    int rc = ctl_state_restore(&ctl->st, data, len);
    pthread_mutex_unlock(&ctl->mu);
    if (rc)
        log_error(LOG_MAIN, "controller snapshot is corrupt");
    return rc;
}

static void node_done(int status, void *result, void *arg)
{
    struct controller *ctl = arg;
    ctl->node_inflight = 0;
}

static void elect_done(int status, void *result, void *arg)
{
    struct pending *p = arg;
    struct controller *ctl = p->ctl;
    pthread_mutex_lock(&ctl->mu);
    struct ctl_set *s = ctl_state_find(&ctl->st, p->name);
    if (s)
        s->elect_inflight = 0;
    pthread_mutex_unlock(&ctl->mu);
    if (status == 0) {
        const struct ctl_result *r = result;
        log_info(LOG_MAIN, "lease scan: election in %s: code %d, %s (masterEpoch %d)", p->name,
                 r->code, r->remark, r->master_epoch);
    } else {
        log_warn(LOG_MAIN, "lease scan: election in %s not committed (status %d)", p->name, status);
    }
    ferry_free(p);
}

/* The leader's lease scan: a set whose master is not active (or that has no master while a
 * member of its sync state set is active) gets an ELECT proposal. */
static void scan(struct controller *ctl, consensus_t *cs)
{
    int64_t now = clock_mono_ms();
    char cmds[8][2048];
    char names[8][CTL_NAME_MAX];
    int n = 0;
    pthread_mutex_lock(&ctl->mu);
    for (int i = 0; i < ctl->st.n_sets && n < 8; i++) {
        struct ctl_set *s = &ctl->st.sets[i];
        if (s->elect_inflight)
            continue;
        int need = 0;
        if (s->master_id) {
            need = !is_alive(ctl, s->name, s->master_id, now);
            if (need)
                log_info(LOG_MAIN, "lease scan: master %lld of %s is not active: electing",
                         (long long)s->master_id, s->name);
        } else {
            for (int j = 0; j < s->n_rep && !need; j++)
                if ((ctl->cfg.enableElectUncleanMaster || ctl_set_in_sync(s, s->rep[j].id)) &&
                    is_alive(ctl, s->name, s->rep[j].id, now))
                    need = 1;
        }
        if (need && build_elect(ctl, s, 0, cmds[n], sizeof cmds[n]) > 0) {
            s->elect_inflight = 1;
            snprintf(names[n], sizeof names[n], "%s", s->name);
            n++;
        }
    }
    pthread_mutex_unlock(&ctl->mu);
    for (int i = 0; i < n; i++) {
        struct pending *p = ferry_calloc(1, sizeof *p);
        p->ctl = ctl;
        snprintf(p->name, sizeof p->name, "%s", names[i]);
        consensus_propose(cs, cmds[i], strlen(cmds[i]), elect_done, p);
    }
}

static void tick(consensus_t *cs, void *arg)
{
    struct controller *ctl = arg;
    int leader = consensus_is_leader(cs);
    int64_t now = clock_mono_ms();
    if (leader && !ctl->was_leader) {
        pthread_mutex_lock(&ctl->mu);
        ctl->leader_since = now; /* every broker gets a full lease from the new leader */
        pthread_mutex_unlock(&ctl->mu);
        ctl->last_scan = now;
    }
    ctl->was_leader = leader;
    if (!leader)
        return;
    pthread_mutex_lock(&ctl->mu);
    int need_node = strcmp(ctl->st.node_addr[ctl->self], ctl->self_remoting) != 0;
    pthread_mutex_unlock(&ctl->mu);
    if (need_node && !ctl->node_inflight) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "NODE %d %s", ctl->self, ctl->self_remoting);
        ctl->node_inflight = 1;
        consensus_propose(cs, cmd, strlen(cmd), node_done, ctl);
    }
    if (now - ctl->last_scan >= ctl->cfg.scanNotActiveBrokerInterval) {
        ctl->last_scan = now;
        scan(ctl, cs);
    }
}

/* ---- life cycle ---- */

int controller_start(const struct controller_config *cfg, controller_t **out, char *err,
                     size_t errlen)
{
    struct controller *ctl = ferry_calloc(1, sizeof *ctl);
    ctl->cfg = *cfg;
    if (controller_parse_peers(cfg, ctl->peers, ctl->names, &ctl->n_peers, &ctl->self, err,
                               errlen)) {
        ferry_free(ctl);
        return FERRY_ECONFIG;
    }
    if (!cfg->controllerStorePath[0]) {
        snprintf(err, errlen, "controllerStorePath is not set (the Raft log directory)");
        ferry_free(ctl);
        return FERRY_ECONFIG;
    }
    pthread_mutex_init(&ctl->mu, NULL);
    ctl_state_init(&ctl->st);
    ctl->start_ms = clock_mono_ms();

    /* Raft first (the handlers use the consensus node), then the remoting port. */
    const char *paddr = ctl->peers[ctl->self].addr;
    snprintf(ctl->self_remoting, sizeof ctl->self_remoting, "%.*s:%d",
             (int)(strrchr(paddr, ':') - paddr), paddr, cfg->listenPort);
    struct consensus_config cc = {
        .peers = ctl->peers,
        .n_peers = ctl->n_peers,
        .self_id = ctl->peers[ctl->self].id,
        .dir = cfg->controllerStorePath,
        .election_timeout_ms = (unsigned)cfg->raftElectionTimeoutMs,
        .heartbeat_timeout_ms = (unsigned)cfg->raftHeartbeatTimeoutMs,
        .snapshot_threshold = (unsigned)cfg->raftSnapshotThreshold,
        .tick_ms = 50,
        .apply = fsm_apply,
        .snapshot = fsm_snapshot,
        .restore = fsm_restore,
        .tick = tick,
        .arg = ctl,
    };
    char e2[256];
    int rv;
    if (consensus_start(&cc, &ctl->cs, e2, sizeof e2) != 0) {
        snprintf(err, errlen, "raft (controllerStorePath %s, peer %s): %s",
                 cfg->controllerStorePath, paddr, e2);
        rv = -1;
        goto fail;
    }
    struct remoting_server_config rc;
    remoting_server_config_init(&rc);
    rc.port = cfg->listenPort;
    rc.io_threads = 2;
    /* TLS on the remoting port only: the Raft peers' transport stays plain (docs/TLS.md). */
    struct tls_config tc = cfg->tls;
    if ((rv = tls_config_load_file(&tc, err, errlen)) != 0 ||
        (rv = tls_server_ctx_new(&tc, &rc.tls, err, errlen)) != 0)
        goto fail;
    rc.tls_mode = tc.tlsMode;
    rv = remoting_server_new(&rc, &ctl->srv);
    tls_ctx_unref(rc.tls); /* the server holds its own reference */
    if (rv != 0) {
        snprintf(err, errlen, "remoting server: %s", ferry_strerror(rv));
        goto fail;
    }
    remoting_server_register(ctl->srv, CTL_REQ_BROKER_HEARTBEAT, on_heartbeat, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_APPLY_BROKER_ID, on_apply_id, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_REGISTER_BROKER, on_register, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_ALTER_SYNC_STATE_SET, on_alter, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_ELECT_MASTER, on_elect, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_GET_REPLICA_INFO, on_replica_info, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_GET_SYNC_STATE_DATA, on_sync_state_data, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_GET_METADATA_INFO, on_metadata, ctl);
    remoting_server_register(ctl->srv, CTL_REQ_GET_NEXT_BROKER_ID, on_next_id, ctl);
    if ((rv = remoting_server_start(ctl->srv, e2, sizeof e2)) != 0) {
        snprintf(err, errlen, "listenPort %d: %s", cfg->listenPort, e2);
        goto fail;
    }
    log_info(LOG_MAIN, "controller %s started: raft %s, remoting %s, %d peers",
             cfg->controllerSelfId, paddr, ctl->self_remoting, ctl->n_peers);
    *out = ctl;
    return 0;
fail:
    remoting_server_free(ctl->srv);
    consensus_stop(ctl->cs);
    ctl_state_free(&ctl->st);
    pthread_mutex_destroy(&ctl->mu);
    ferry_free(ctl);
    return rv ? rv : -1;
}

int controller_port(const controller_t *ctl)
{
    return remoting_server_port(ctl->srv);
}

void controller_stop(controller_t *ctl)
{
    if (!ctl)
        return;
    remoting_server_free(ctl->srv);
    consensus_stop(ctl->cs);
    ctl_state_free(&ctl->st);
    ferry_free(ctl->hb);
    pthread_mutex_destroy(&ctl->mu);
    ferry_free(ctl);
}
