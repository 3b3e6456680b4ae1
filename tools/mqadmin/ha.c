/* mqadmin's views of replication and of the controllers (RocketMQ 5's subcommands; FerryMQ's
 * docs/CONTROLLER.md "Operating: mqadmin"):
 *   haStatus              GET_BROKER_HA_STATUS (907) of a broker, or of every broker of a cluster
 *   getBrokerEpoch        GET_BROKER_EPOCH_CACHE (1007) of every broker of a set or a cluster
 *   getSyncStateSet       CONTROLLER_GET_SYNC_STATE_DATA (1006) from a controller
 *   getControllerMetaData CONTROLLER_GET_METADATA_INFO (1005) from a controller
 *   electMaster           CONTROLLER_ELECT_MASTER (1002) with designateElect=true, sent to the
 *                         controller leader (a NOT_LEADER answer is followed)
 * Controllers are given as -a host:port[;host:port...]: reads are answered by the first that
 * answers (every member answers from its own applied state). */
#include "mqadmin.h"

#include "common/conf.h"

#include "controller/codes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CTLS 16

/* ---- helpers ---- */

static const char *ctl_code_name(int32_t code)
{
    static const struct {
        int32_t code;
        const char *name;
    } names[] = {
        {CTL_RESP_FENCED_MASTER_EPOCH, "CONTROLLER_FENCED_MASTER_EPOCH"},
        {CTL_RESP_FENCED_SYNC_STATE_SET_EPOCH, "CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH"},
        {CTL_RESP_INVALID_MASTER, "CONTROLLER_INVALID_MASTER"},
        {CTL_RESP_INVALID_REPLICAS, "CONTROLLER_INVALID_REPLICAS"},
        {CTL_RESP_MASTER_NOT_AVAILABLE, "CONTROLLER_MASTER_NOT_AVAILABLE"},
        {CTL_RESP_INVALID_REQUEST, "CONTROLLER_INVALID_REQUEST"},
        {CTL_RESP_BROKER_NOT_ALIVE, "CONTROLLER_BROKER_NOT_ALIVE"},
        {CTL_RESP_NOT_LEADER, "CONTROLLER_NOT_LEADER"},
        {CTL_RESP_BROKER_METADATA_NOT_EXIST, "CONTROLLER_BROKER_METADATA_NOT_EXIST"},
        {CTL_RESP_BROKER_NEED_TO_BE_REGISTERED, "CONTROLLER_BROKER_NEED_TO_BE_REGISTERED"},
        {CTL_RESP_MASTER_STILL_EXIST, "CONTROLLER_MASTER_STILL_EXIST"},
        {CTL_RESP_ELECT_MASTER_FAILED, "CONTROLLER_ELECT_MASTER_FAILED"},
        {CTL_RESP_BROKER_ID_INVALID, "CONTROLLER_BROKER_ID_INVALID"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code)
            return names[i].name;
    return adm_code_name(code);
}

/* "NAME (code) from addr: remark" for a controller's error answer. */
static const char *ctl_resp_err(const struct rcmd *resp, const char *addr, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s (%d) from %s", ctl_code_name(resp->code), (int)resp->code, addr);
    if (resp->remark.p && resp->remark.len && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ": %.*s", (int)resp->remark.len, resp->remark.p);
    return buf;
}

/* An extFields value as a NUL-terminated string in @buf ("" when absent). */
static const char *ext_str(const struct rcmd *r, const char *key, char *buf, size_t cap)
{
    const struct rstr *v = rcmd_ext_get(r, key);
    snprintf(buf, cap, "%.*s", v && v->p ? (int)v->len : 0, v && v->p ? v->p : "");
    return buf;
}

struct split {
    char (*store)[CLIENT_ADDR_MAX];
    int n;
};

static int split_one(const char *a, size_t len, void *arg)
{
    struct split *sp = arg;
    if (sp->n < MAX_CTLS && len < CLIENT_ADDR_MAX) {
        memcpy(sp->store[sp->n], a, len);
        sp->store[sp->n++][len] = 0;
    }
    return 0;
}

/* Split "a;b;c" into at most MAX_CTLS trimmed addresses in @store; returns the count. */
static int split_addrs(const char *list, char store[][CLIENT_ADDR_MAX])
{
    struct split sp = {store, 0};
    conf_addr_list(list, split_one, &sp);
    return sp.n;
}

/* Send @req to the controllers of @list. A read (@leader 0) takes the first answer; with
 * @leader, a NOT_LEADER answer is followed to the leader it names (also one not in @list),
 * else the next controller is tried. 0 with *@resp (any other code) and the answering
 * address in @used, or 1 with a message printed. */
static int ctl_call(const struct ctx *c, const char *list, const struct rcmd *req, int leader,
                    struct rcmd **resp, char *used, size_t usedlen)
{
    char addrs[MAX_CTLS + 1][CLIENT_ADDR_MAX], err[ERR_MAX] = "", eb[ERR_MAX];
    int n = split_addrs(list, addrs), tried[MAX_CTLS + 1] = {0};
    if (n == 0)
        return adm_fail(c, "no controller address in -a '%s'", list);
    for (int hop = 0, i = 0; hop < 2 * n + 2; hop++) {
        if (i < 0 || tried[i]) {
            for (i = 0; i < n && tried[i]; i++)
                ;
            if (i == n)
                break;
        }
        tried[i] = 1;
        struct rcmd *r = NULL;
        if (adm_call(addrs[i], req, &r, eb, sizeof eb) != 0) {
            snprintf(err, sizeof err, "%s", eb);
            i = -1;
            continue;
        }
        if (leader && r->code == CTL_RESP_NOT_LEADER) {
            char la[CLIENT_ADDR_MAX];
            ext_str(r, "controllerLeaderAddress", la, sizeof la);
            snprintf(err, sizeof err, "%s", ctl_resp_err(r, addrs[i], eb, sizeof eb));
            rcmd_free(r);
            i = -1;
            for (int k = 0; la[0] && k < n; k++)
                if (strcmp(addrs[k], la) == 0)
                    i = k;
            if (la[0] && i < 0 && n <= MAX_CTLS) { /* a leader not in the list */
                snprintf(addrs[n], CLIENT_ADDR_MAX, "%s", la);
                i = n++;
            }
            continue;
        }
        snprintf(used, usedlen, "%s", addrs[i]);
        *resp = r;
        return 0;
    }
    return adm_fail(c, "%s %s (last: %s)",
                    leader ? "no controller leader answered among" : "no controller answered among",
                    list, err);
}

static int cmp_member(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int r = strcmp(adm_jstr(x, "brokerName"), adm_jstr(y, "brokerName"));
    return r ? r
             : (adm_jnum(x, "brokerId") > adm_jnum(y, "brokerId")) -
                   (adm_jnum(x, "brokerId") < adm_jnum(y, "brokerId"));
}

static void add_members(const cJSON *bd, const char *name, cJSON *out)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"))
    {
        if (!cJSON_IsString(a) || !a->string)
            continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "brokerName", name);
        cJSON_AddNumberToObject(m, "brokerId", atof(a->string));
        cJSON_AddStringToObject(m, "addr", a->valuestring);
        cJSON_AddItemToArray(out, m);
    }
}

cJSON *adm_addr_or_members(const struct ctx *c, const char *addr, const char *cluster)
{
    if (!addr)
        return adm_members(c, cluster, NULL);
    cJSON *targets = cJSON_CreateArray(), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "addr", addr);
    cJSON_AddItemToArray(targets, m);
    return targets;
}

cJSON *adm_members(const struct ctx *c, const char *cluster, const char *name)
{
    cJSON *ci = adm_get_cluster(c), *out;
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"), *n;
    if (!ci)
        return NULL;
    out = cJSON_CreateArray();
    if (name) {
        const cJSON *bd = cJSON_GetObjectItemCaseSensitive(bt, name);
        if (!bd) {
            adm_fail(c, "broker %s is not registered on the name server", name);
            cJSON_Delete(ci);
            cJSON_Delete(out);
            return NULL;
        }
        add_members(bd, name, out);
    } else {
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ci, "clusterAddrTable"), cluster);
        if (!cJSON_IsArray(names)) {
            adm_fail(c, "cluster %s not found on the name server", cluster);
            cJSON_Delete(ci);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_ArrayForEach(n, names)
        {
            if (cJSON_IsString(n))
                add_members(cJSON_GetObjectItemCaseSensitive(bt, n->valuestring), n->valuestring,
                            out);
        }
    }
    cJSON_Delete(ci);
    adm_sort_array(out, cmp_member);
    if (cJSON_GetArraySize(out) == 0) {
        adm_fail(c, "%s %s has no registered broker", name ? "broker" : "cluster",
                 name ? name : cluster);
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* A broker request without header fields whose SUCCESS body is JSON. NULL with a message. */
static cJSON *broker_json(const struct ctx *c, const char *addr, int32_t code, const char *what)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    rcmd_init_request(&req, code);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0) {
        adm_fail(c, "%s: %s", what, eb);
        return NULL;
    }
    cJSON *j = NULL;
    if (resp->code == RESP_REQUEST_CODE_NOT_SUPPORTED)
        adm_fail(c, "%s: the broker at %s does not support request %d", what, addr, (int)code);
    else
        j = adm_json_body(c, resp, addr, what);
    rcmd_free(resp);
    return j;
}

static const char *yes(int v)
{
    return v ? "true" : "false";
}

/* ---- haStatus ---- */

static void print_ha(const struct ctx *c, const cJSON *h)
{
    const cJSON *conns = cJSON_GetObjectItemCaseSensitive(h, "haConnectionInfo"), *x;
    int master = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "master"));
    int cm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "controllerMode"));
    fprintf(c->out, "#Broker\t%s id %lld at %s\n", adm_jstr(h, "brokerName"),
            adm_jnum(h, "brokerId"), adm_jstr(h, "brokerAddr"));
    fprintf(c->out, "#Role\t%s%s%s%s\n", adm_jstr(h, "role"), master ? " (master)" : "",
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "fenced")) ? " (fenced: sends refused)"
                                                                        : "",
            cm ? " (controller mode)" : "");
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "haRunning")))
        fprintf(c->out, "#HA\tnot running (haSecret empty)\n");
    if (master) {
        fprintf(c->out, "#MasterCommitLogMaxOffset\t%lld\n#SlaveNum\t%d\n#InSyncSlaveNum\t%lld\n",
                adm_jnum(h, "masterCommitLogMaxOffset"), cJSON_GetArraySize(conns),
                adm_jnum(h, "inSyncSlaveNums"));
        if (cm) {
            char ids[256] = "";
            size_t n = 0;
            cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(h, "requiredSlaveIds"))
            {
                if (n < sizeof ids)
                    n += (size_t)snprintf(ids + n, sizeof ids - n, "%s%.0f", n ? "," : "",
                                          x->valuedouble);
            }
            fprintf(c->out, "#AckRequiredSlaves\t%s\n", n ? ids : "-");
        }
        fprintf(c->out, "%-24s %-9s %-16s %-12s %-12s %-12s %s\n", "#SlaveAddr", "#BrokerId",
                "#SlaveAckOffset", "#Diff", "#Status", "#AckRequired", "#LastReport(ms)");
        cJSON_ArrayForEach(x, conns)
        {
            fprintf(c->out, "%-24s %-9lld %-16lld %-12lld %-12s %-12s %lld\n", adm_jstr(x, "addr"),
                    adm_jnum(x, "brokerId"), adm_jnum(x, "slaveAckOffset"), adm_jnum(x, "diff"),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "inSync")) ? "OK"
                                                                                : "Fall Behind",
                    yes(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "ackRequired"))),
                    adm_jnum(x, "lastReportMs"));
        }
    } else {
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(h, "haClientRuntimeInfo");
        const char *ma = adm_jstr(cl, "masterAddr"), *ha = adm_jstr(cl, "masterHaAddr");
        fprintf(c->out, "#MasterAddr\t%s\n#MasterHaAddr\t%s\n#Connected\t%s\n", ma[0] ? ma : "-",
                ha[0] ? ha : "-",
                yes(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "connected"))));
        fprintf(c->out, "#CommitLogMaxOffset\t%lld\n#ReceivedOffset\t%lld\n#DurableOffset\t%lld\n",
                adm_jnum(cl, "maxOffset"), adm_jnum(cl, "receivedOffset"),
                adm_jnum(cl, "durableOffset"));
    }
}

int cmd_ha_status(const struct ctx *c, const char *addr, const char *cluster)
{
    cJSON *targets = NULL, *out = cJSON_CreateArray(), *t;
    int rc = 0, seen = 0;
    if (!(targets = adm_addr_or_members(c, addr, cluster))) {
        cJSON_Delete(out);
        return 1;
    }
    cJSON_ArrayForEach(t, targets)
    {
        const char *a = adm_jstr(t, "addr");
        char what[CLIENT_ADDR_MAX + 32];
        snprintf(what, sizeof what, "HA status of %s", a);
        cJSON *h = broker_json(c, a, REQ_GET_BROKER_HA_STATUS, what);
        if (!h) {
            rc = 1;
            continue;
        }
        if (!c->json) {
            if (seen)
                fputc('\n', c->out);
            print_ha(c, h);
        }
        seen++;
        cJSON_AddItemToArray(out, h);
    }
    if (c->json && seen)
        adm_print_json(c, out);
    cJSON_Delete(out);
    cJSON_Delete(targets);
    return rc;
}

/* ---- getBrokerEpoch ---- */

int cmd_broker_epoch(const struct ctx *c, const char *broker, const char *cluster)
{
    cJSON *targets = adm_members(c, cluster, broker), *out, *t;
    int rc = 0, seen = 0;
    if (!targets)
        return 1;
    out = cJSON_CreateArray();
    cJSON_ArrayForEach(t, targets)
    {
        const char *a = adm_jstr(t, "addr");
        char what[CLIENT_ADDR_MAX + 32];
        snprintf(what, sizeof what, "epochs of %s", a);
        cJSON *e = broker_json(c, a, REQ_GET_BROKER_EPOCH_CACHE, what), *x;
        if (!e) {
            rc = 1;
            continue;
        }
        if (!c->json) {
            fprintf(c->out,
                    "%s#clusterName\t%s\n#brokerName\t%s\n#brokerAddr\t%s\n#brokerId\t%lld\n",
                    seen ? "\n" : "", adm_jstr(e, "clusterName"), adm_jstr(e, "brokerName"), a,
                    adm_jnum(e, "brokerId"));
            fprintf(c->out, "#maxOffset\t%lld\n", adm_jnum(e, "maxOffset"));
            const cJSON *list = cJSON_GetObjectItemCaseSensitive(e, "epochList");
            if (cJSON_GetArraySize(list) == 0)
                fprintf(c->out, "#Epoch\tnone (not in controller mode, or never had a master)\n");
            else
                fprintf(c->out, "%-8s %-20s %s\n", "#Epoch", "#StartOffset", "#EndOffset");
            cJSON_ArrayForEach(x, list)
            {
                fprintf(c->out, "%-8lld %-20lld %lld\n", adm_jnum(x, "epoch"),
                        adm_jnum(x, "startOffset"), adm_jnum(x, "endOffset"));
            }
        }
        seen++;
        cJSON_AddItemToArray(out, e);
    }
    if (c->json && seen)
        adm_print_json(c, out);
    cJSON_Delete(out);
    cJSON_Delete(targets);
    return rc;
}

/* ---- getSyncStateSet ---- */

static void print_replicas(const struct ctx *c, const char *label, const cJSON *list)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, list)
    {
        fprintf(c->out, " %s\tid %lld\t%s\t%s\n", label, adm_jnum(x, "brokerId"),
                adm_jstr(x, "brokerAddress"),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive")) ? "online" : "offline");
    }
}

int cmd_sync_state_set(const struct ctx *c, const char *ctl, const char *broker,
                       const char *cluster)
{
    struct rcmd req, *resp = NULL;
    char used[CLIENT_ADDR_MAX], eb[ERR_MAX];
    cJSON *names = cJSON_CreateArray(), *body, *set;
    if (broker) {
        cJSON_AddItemToArray(names, cJSON_CreateString(broker));
    } else if (cluster) {
        cJSON *m = adm_members(c, cluster, NULL), *x;
        if (!m) {
            cJSON_Delete(names);
            return 1;
        }
        const char *last = "";
        cJSON_ArrayForEach(x, m)
        { /* sorted by name: one entry per set */
            if (strcmp(last, adm_jstr(x, "brokerName")) != 0)
                cJSON_AddItemToArray(names, cJSON_CreateString(adm_jstr(x, "brokerName")));
            last = adm_jstr(x, "brokerName");
        }
        cJSON_Delete(m);
    }
    char *txt = cJSON_PrintUnformatted(names);
    rcmd_init_request(&req, CTL_REQ_GET_SYNC_STATE_DATA);
    if (broker || cluster) { /* no body: every set the controller knows */
        req.body = (const uint8_t *)txt;
        req.body_len = strlen(txt);
    }
    int rc = ctl_call(c, ctl, &req, 0, &resp, used, sizeof used);
    free(txt);
    if (rc) {
        cJSON_Delete(names);
        return rc;
    }
    if (resp->code != CTL_RESP_SUCCESS) {
        rc = adm_fail(c, "sync state data failed (%s)", ctl_resp_err(resp, used, eb, sizeof eb));
        rcmd_free(resp);
        cJSON_Delete(names);
        return rc;
    }
    body = adm_json_body(c, resp, used, "sync state data");
    rcmd_free(resp);
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(body, "replicasInfoTable"), *n;
    if (!body || !cJSON_IsObject(table)) {
        if (body)
            adm_fail(c, "no replicasInfoTable in the answer of %s", used);
        cJSON_Delete(body);
        cJSON_Delete(names);
        return 1;
    }
    cJSON_ArrayForEach(n, names)
    {
        if (!cJSON_GetObjectItemCaseSensitive(table, n->valuestring))
            rc = adm_fail(c, "broker set %s is unknown to the controller at %s", n->valuestring,
                          used);
    }
    if (c->json) {
        adm_print_json(c, body);
    } else {
        int first = 1;
        cJSON_ArrayForEach(set, table)
        {
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(set, "inSyncReplicas");
            const char *ma = adm_jstr(set, "masterAddress");
            fprintf(
                c->out,
                "%s#brokerName\t%s\n#MasterAddr\t%s\n#MasterBrokerId\t%lld\n#MasterEpoch\t%lld\n"
                "#SyncStateSetEpoch\t%lld\n#SyncStateSetNums\t%d\n",
                first ? "" : "\n", set->string, ma[0] ? ma : "-", adm_jnum(set, "masterBrokerId"),
                adm_jnum(set, "masterEpoch"), adm_jnum(set, "syncStateSetEpoch"),
                cJSON_GetArraySize(in));
            print_replicas(c, "InSyncReplica:", in);
            print_replicas(
                c, "NotInSyncReplica:", cJSON_GetObjectItemCaseSensitive(set, "notInSyncReplicas"));
            first = 0;
        }
        if (first)
            fprintf(c->out, "no broker set is known to the controller at %s\n", used);
    }
    cJSON_Delete(body);
    cJSON_Delete(names);
    return rc;
}

/* ---- getControllerMetaData ---- */

int cmd_controller_meta(const struct ctx *c, const char *ctl)
{
    struct rcmd req, *resp = NULL;
    char used[CLIENT_ADDR_MAX], eb[ERR_MAX], v[1024];
    rcmd_init_request(&req, CTL_REQ_GET_METADATA_INFO);
    if (ctl_call(c, ctl, &req, 0, &resp, used, sizeof used) != 0)
        return 1;
    if (resp->code != CTL_RESP_SUCCESS) {
        int rc =
            adm_fail(c, "controller metadata failed (%s)", ctl_resp_err(resp, used, eb, sizeof eb));
        rcmd_free(resp);
        return rc;
    }
    cJSON *o = cJSON_CreateObject(), *peers;
    cJSON_AddStringToObject(o, "controllerAddress", used);
    static const char *const keys[] = {"group", "controllerLeaderId", "controllerLeaderAddress",
                                       "controllerSelfId"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cJSON_AddStringToObject(o, keys[i], ext_str(resp, keys[i], v, sizeof v));
    cJSON_AddBoolToObject(o, "isLeader",
                          strcmp(ext_str(resp, "isLeader", v, sizeof v), "true") == 0);
    peers = cJSON_AddArrayToObject(o, "peers");
    ext_str(resp, "peers", v, sizeof v);
    char *save = NULL;
    for (char *p = strtok_r(v, ";", &save); p; p = strtok_r(NULL, ";", &save))
        cJSON_AddItemToArray(peers, cJSON_CreateString(p));
    rcmd_free(resp);
    if (c->json) {
        adm_print_json(c, o);
    } else {
        const char *la = adm_jstr(o, "controllerLeaderAddress");
        const cJSON *p;
        fprintf(c->out,
                "#ControllerAddress\t%s\n#ControllerGroup\t%s\n#ControllerSelfId\t%s\n"
                "#IsLeader\t%s\n#ControllerLeaderId\t%s\n#ControllerLeaderAddress\t%s\n",
                used, adm_jstr(o, "group"), adm_jstr(o, "controllerSelfId"),
                yes(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "isLeader"))),
                adm_jstr(o, "controllerLeaderId")[0] ? adm_jstr(o, "controllerLeaderId")
                                                     : "- (no leader elected)",
                la[0] ? la : "-");
        cJSON_ArrayForEach(p, peers) fprintf(c->out, "#Peer:\t%s\n", p->valuestring);
    }
    cJSON_Delete(o);
    return 0;
}

/* ---- electMaster ---- */

int cmd_elect_master(const struct ctx *c, const char *ctl, const char *cluster, const char *broker,
                     int64_t id)
{
    struct rcmd req, *resp = NULL;
    char used[CLIENT_ADDR_MAX], eb[ERR_MAX], v[CLIENT_ADDR_MAX];
    int rc = 0;
    rcmd_init_request(&req, CTL_REQ_ELECT_MASTER);
    rcmd_ext_add(&req, "clusterName", cluster);
    rcmd_ext_add(&req, "brokerName", broker);
    rcmd_ext_add_i64(&req, "brokerId", id);
    rcmd_ext_add(&req, "designateElect", "true");
    if (ctl_call(c, ctl, &req, 1, &resp, used, sizeof used) != 0)
        return 1;
    if (resp->code != CTL_RESP_SUCCESS) {
        rc = adm_fail(c, "electing broker %lld of %s failed (%s)", (long long)id, broker,
                      ctl_resp_err(resp, used, eb, sizeof eb));
        rcmd_free(resp);
        return rc;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *body =
        resp->body_len ? cJSON_ParseWithLength((const char *)resp->body, resp->body_len) : NULL;
    cJSON_AddStringToObject(o, "controllerAddress", used);
    cJSON_AddStringToObject(o, "clusterName", cluster);
    cJSON_AddStringToObject(o, "brokerName", broker);
    cJSON_AddNumberToObject(o, "masterBrokerId", (double)adm_ext_i64(resp, "masterBrokerId", 0));
    cJSON_AddStringToObject(o, "masterAddress", ext_str(resp, "masterAddress", v, sizeof v));
    cJSON_AddNumberToObject(o, "masterEpoch", (double)adm_ext_i64(resp, "masterEpoch", 0));
    cJSON_AddNumberToObject(o, "syncStateSetEpoch",
                            (double)adm_ext_i64(resp, "syncStateSetEpoch", 0));
    cJSON *set = cJSON_DetachItemFromObjectCaseSensitive(body, "syncStateSet");
    cJSON_AddItemToObject(o, "syncStateSet", set ? set : cJSON_CreateArray());
    cJSON_Delete(body);
    rcmd_free(resp);
    if (c->json) {
        adm_print_json(c, o);
    } else {
        const cJSON *x;
        fprintf(c->out,
                "#ClusterName\t%s\n#BrokerName\t%s\n#BrokerMasterAddr\t%s\n#MasterBrokerId\t%lld\n"
                "#MasterEpoch\t%lld\n#SyncStateSetEpoch\t%lld\n#SyncStateSet\t",
                cluster, broker, adm_jstr(o, "masterAddress"), adm_jnum(o, "masterBrokerId"),
                adm_jnum(o, "masterEpoch"), adm_jnum(o, "syncStateSetEpoch"));
        int first = 1;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "syncStateSet"))
        {
            fprintf(c->out, "%s%.0f", first ? "" : ",", x->valuedouble);
            first = 0;
        }
        fprintf(c->out, "\n");
    }
    cJSON_Delete(o);
    return rc;
}
