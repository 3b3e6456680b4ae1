/* mqadmin's topic, cluster and broker subcommands: topicList, topicRoute, clusterList,
 * updateTopic, deleteTopic, topicStatus, brokerStatus. */
#include "mqadmin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- topicList ---- */

int cmd_topic_list(const struct ctx *c)
{
    struct rcmd req, *resp = NULL;
    char addr[256], eb[ERR_MAX];
    const cJSON *t;
    cJSON *j;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
    if (adm_ns_call(c, &req, &resp, addr, sizeof addr, eb, sizeof eb) != 0)
        return adm_fail(c, "%s", eb);
    j = adm_json_body(c, resp, addr, "topic list");
    rcmd_free(resp);
    if (!j)
        return 1;
    if (c->json)
        adm_print_json(c, j);
    else
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "topicList"))
            fprintf(c->out, "%s\n", cJSON_GetStringValue(t) ? cJSON_GetStringValue(t) : "");
    cJSON_Delete(j);
    return 0;
}

/* ---- topicRoute ---- */

int cmd_topic_route(const struct ctx *c, const char *topic)
{
    cJSON *r = adm_get_route(c, topic);
    const cJSON *q, *bd;
    if (!r)
        return 1;
    if (c->json) {
        adm_print_json(c, r);
        cJSON_Delete(r);
        return 0;
    }
    fprintf(c->out, "%-24s %-20s %-22s %-6s %-6s %s\n", "#Broker Name", "#Cluster", "#Master Addr",
            "#Read", "#Write", "#Perm");
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *name = adm_jstr(q, "brokerName"), *cluster = "", *master = "";
        cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
        {
            if (strcmp(adm_jstr(bd, "brokerName"), name) == 0) {
                cluster = adm_jstr(bd, "cluster");
                master = adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
            }
        }
        fprintf(c->out, "%-24s %-20s %-22s %-6lld %-6lld %lld\n", name, cluster,
                master[0] ? master : "-", adm_jnum(q, "readQueueNums"),
                adm_jnum(q, "writeQueueNums"), adm_jnum(q, "perm"));
    }
    cJSON_Delete(r);
    return 0;
}

/* ---- clusterList ---- */

/* GET_BROKER_RUNTIME_INFO of @addr: the "table" object (caller deletes the returned root). */
static cJSON *runtime_info(const char *addr, const cJSON **table, char *err, size_t errlen)
{
    struct rcmd req, *resp = NULL;
    cJSON *j = NULL;
    rcmd_init_request(&req, REQ_GET_BROKER_RUNTIME_INFO);
    if (adm_call(addr, &req, &resp, err, errlen) != 0)
        return NULL;
    if (resp->code != RESP_SUCCESS)
        adm_resp_err(resp, addr, err, errlen);
    else if (!(j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len)))
        snprintf(err, errlen, "malformed runtime info from %s", addr);
    rcmd_free(resp);
    *table = cJSON_GetObjectItemCaseSensitive(j, "table");
    return j;
}

/* The first number of a "tps10s tps1m tps10m" runtime value. */
static const char *tps(const cJSON *t, const char *key, char *buf, size_t cap)
{
    if (!t)
        return "-";
    snprintf(buf, cap, "%s", adm_jstr(t, key));
    buf[strcspn(buf, " ")] = 0;
    return buf;
}

int cmd_cluster_list(const struct ctx *c)
{
    cJSON *ci = adm_get_cluster(c);
    const cJSON *cl, *n, *a;
    if (!ci)
        return 1;
    if (c->json) {
        adm_print_json(c, ci);
        cJSON_Delete(ci);
        return 0;
    }
    fprintf(c->out, "%-20s %-24s %-4s %-22s %-10s %-10s %-10s %s\n", "#Cluster Name",
            "#Broker Name", "#BID", "#Addr", "#Version", "#InTPS", "#OutTPS", "#InTotalToday");
    cJSON_ArrayForEach(cl, cJSON_GetObjectItemCaseSensitive(ci, "clusterAddrTable"))
    {
        cJSON_ArrayForEach(n, cl)
        {
            const cJSON *bd = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"), cJSON_GetStringValue(n));
            cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"))
            {
                char eb[ERR_MAX], in[64], out[64];
                const cJSON *t = NULL;
                cJSON *rt = runtime_info(cJSON_GetStringValue(a), &t, eb, sizeof eb);
                fprintf(c->out, "%-20s %-24s %-4s %-22s %-10s %-10s %-10s %s\n", cl->string,
                        adm_jstr(bd, "brokerName"), a->string, cJSON_GetStringValue(a),
                        t ? adm_jstr(t, "brokerVersionDesc") : "-", tps(t, "putTps", in, sizeof in),
                        tps(t, "getTransferedTps", out, sizeof out),
                        t ? adm_jstr(t, "msgPutTotalTodayNow") : "-");
                cJSON_Delete(rt);
            }
        }
    }
    cJSON_Delete(ci);
    return 0;
}

/* ---- updateTopic / deleteTopic ---- */

static int update_on(const struct ctx *c, const char *addr, const struct topic_opts *o)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc;
    rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_TOPIC);
    rcmd_ext_add(&req, "topic", o->topic);
    rcmd_ext_add(&req, "defaultTopic", DEFAULT_TOPIC);
    rcmd_ext_add_i64(&req, "readQueueNums", o->rq);
    rcmd_ext_add_i64(&req, "writeQueueNums", o->wq);
    rcmd_ext_add_i64(&req, "perm", o->perm);
    rcmd_ext_add(&req, "topicFilterType", "SINGLE_TAG");
    rcmd_ext_add_i64(&req, "topicSysFlag", 0);
    rcmd_ext_add(&req, "order", o->order ? "true" : "false");
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "topic %s: %s", o->topic, eb);
    rc = resp->code;
    if (rc != RESP_SUCCESS)
        adm_fail(c, "create topic %s failed (%s)", o->topic,
                 adm_resp_err(resp, addr, eb, sizeof eb));
    else if (!c->json)
        fprintf(c->out, "create topic %s on %s success.\n", o->topic, addr);
    rcmd_free(resp);
    return rc != RESP_SUCCESS;
}

static void print_json_result(const struct ctx *c, const char *topic, const char **addrs)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "brokers");
    cJSON_AddStringToObject(o, "topic", topic);
    for (int i = 0; addrs[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(addrs[i]));
    adm_print_json(c, o);
    cJSON_Delete(o);
}

int cmd_update_topic(const struct ctx *c, const struct topic_opts *o)
{
    cJSON *ci;
    const char **addrs;
    int rc = 0;
    if (adm_targets(c, o->broker, o->cluster, &ci, &addrs) != 0) {
        cJSON_Delete(ci);
        return 1;
    }
    for (int i = 0; addrs[i] && rc == 0; i++)
        rc = update_on(c, addrs[i], o);
    if (rc == 0 && c->json)
        print_json_result(c, o->topic, addrs);
    free(addrs);
    cJSON_Delete(ci);
    return rc;
}

static int delete_req(const struct ctx *c, const char *addr, int ns, const struct topic_opts *o)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX], used[256];
    int rc;
    rcmd_init_request(&req, ns ? REQ_DELETE_TOPIC_IN_NAMESRV : REQ_DELETE_TOPIC_IN_BROKER);
    rcmd_ext_add(&req, "topic", o->topic);
    if (ns) {
        rcmd_ext_add(&req, "clusterName", o->cluster);
        rc = adm_ns_call(c, &req, &resp, used, sizeof used, eb, sizeof eb);
        addr = used;
    } else {
        rc = adm_call(addr, &req, &resp, eb, sizeof eb);
    }
    if (rc != 0)
        return adm_fail(c, "topic %s: %s", o->topic, eb);
    rc = resp->code;
    if (rc != RESP_SUCCESS)
        adm_fail(c, "delete topic %s failed (%s)", o->topic,
                 adm_resp_err(resp, addr, eb, sizeof eb));
    else if (!c->json)
        fprintf(c->out, "delete topic %s from %s %s success.\n", o->topic,
                ns ? "name server" : "broker", addr);
    rcmd_free(resp);
    return rc != RESP_SUCCESS;
}

int cmd_delete_topic(const struct ctx *c, const struct topic_opts *o)
{
    cJSON *ci;
    const char **addrs;
    int rc = 0;
    if (adm_targets(c, NULL, o->cluster, &ci, &addrs) != 0) {
        cJSON_Delete(ci);
        return 1;
    }
    for (int i = 0; addrs[i] && rc == 0; i++)
        rc = delete_req(c, addrs[i], 0, o);
    if (rc == 0)
        rc = delete_req(c, NULL, 1, o);
    if (rc == 0 && c->json)
        print_json_result(c, o->topic, addrs);
    free(addrs);
    cJSON_Delete(ci);
    return rc;
}

/* ---- topicStatus ---- */

static void stats_entry(const cJSON *k, const cJSON *v, void *arg)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "brokerName", adm_jstr(k, "brokerName"));
    cJSON_AddNumberToObject(e, "queueId", (double)adm_jnum(k, "queueId"));
    cJSON_AddNumberToObject(e, "minOffset", (double)adm_jnum(v, "minOffset"));
    cJSON_AddNumberToObject(e, "maxOffset", (double)adm_jnum(v, "maxOffset"));
    cJSON_AddNumberToObject(e, "lastUpdateTimestamp", (double)adm_jnum(v, "lastUpdateTimestamp"));
    cJSON_AddItemToArray(arg, e);
}

/* GET_TOPIC_STATS_INFO's offsetTable as {"brokerName","queueId","minOffset",...} in @arr. */
static int parse_stats(const struct rcmd *resp, cJSON *arr)
{
    return adm_parse_mq_map(resp->body, resp->body_len, "offsetTable", stats_entry, arr);
}

int adm_topic_stats_on(const struct ctx *c, const char *topic, const char *addr, cJSON *arr)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, REQ_GET_TOPIC_STATS_INFO);
    rcmd_ext_add(&req, "topic", topic);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "topic %s: %s", topic, eb);
    if (resp->code != RESP_SUCCESS) {
        adm_resp_err(resp, addr, eb, sizeof eb);
        rcmd_free(resp);
        return adm_fail(c, "stats of topic %s failed (%s)", topic, eb);
    }
    if (parse_stats(resp, arr) != 0)
        rc = adm_fail(c, "malformed topic stats from %s", addr);
    rcmd_free(resp);
    return rc;
}

int cmd_topic_status(const struct ctx *c, const char *topic)
{
    cJSON *r = adm_get_route(c, topic), *arr = cJSON_CreateArray();
    const cJSON *bd, *e;
    int rc = r ? 0 : 1;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
    {
        const char *a = adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        if (a[0] && rc == 0)
            rc = adm_topic_stats_on(c, topic, a, arr);
    }
    if (rc == 0 && c->json) {
        adm_print_json(c, arr);
    } else if (rc == 0) {
        fprintf(c->out, "%-24s %-5s %-14s %-14s %s\n", "#Broker Name", "#QID", "#Min Offset",
                "#Max Offset", "#Last Updated");
        cJSON_ArrayForEach(e, arr)
        {
            char tb[64];
            adm_fmt_time(adm_jnum(e, "lastUpdateTimestamp"), tb, sizeof tb);
            fprintf(c->out, "%-24s %-5lld %-14lld %-14lld %s\n", adm_jstr(e, "brokerName"),
                    adm_jnum(e, "queueId"), adm_jnum(e, "minOffset"), adm_jnum(e, "maxOffset"), tb);
        }
    }
    cJSON_Delete(arr);
    cJSON_Delete(r);
    return rc;
}

/* ---- brokerStatus ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_broker_status(const struct ctx *c, const char *addr)
{
    char eb[ERR_MAX];
    const cJSON *t = NULL, *kv;
    cJSON *rt = runtime_info(addr, &t, eb, sizeof eb);
    const char **keys;
    int n = 0;
    if (!t) {
        cJSON_Delete(rt);
        return adm_fail(c, "runtime info failed (%s)", eb);
    }
    if (c->json) {
        adm_print_json(c, (cJSON *)t);
        cJSON_Delete(rt);
        return 0;
    }
    keys = calloc((size_t)cJSON_GetArraySize(t) + 1, sizeof *keys);
    cJSON_ArrayForEach(kv, t) keys[n++] = kv->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    for (int i = 0; i < n; i++)
        fprintf(c->out, "%-40s: %s\n", keys[i], adm_jstr(t, keys[i]));
    free(keys);
    cJSON_Delete(rt);
    return 0;
}

/* ---- txStatus: unresolved transactional half messages ---- */

/* One broker's pending halves from its runtime info. */
static void tx_status_one(const struct ctx *c, const char *name, const char *addr, const cJSON *t,
                          cJSON *out, int64_t now)
{
    const char *count = adm_jstr(t, "transactionPendingCount");
    int64_t oldest = strtoll(adm_jstr(t, "transactionOldestPendingTimeStamp"), NULL, 10);
    char sample[8192];
    snprintf(sample, sizeof sample, "%s", adm_jstr(t, "transactionPendingSample"));
    cJSON *b = out ? cJSON_CreateObject() : NULL;
    if (b) {
        cJSON_AddStringToObject(b, "brokerName", name);
        cJSON_AddStringToObject(b, "brokerAddr", addr);
        cJSON_AddNumberToObject(b, "pending", atof(count));
        cJSON_AddNumberToObject(b, "oldestPendingTimeStamp", (double)oldest);
    } else {
        fprintf(c->out, "%-20s %-22s pending %s%s", name, addr, count, oldest ? "" : "\n");
        if (oldest)
            fprintf(c->out, ", oldest %.1f s ago\n", (double)(now - oldest) / 1000);
    }
    cJSON *list = b ? cJSON_AddArrayToObject(b, "sample") : NULL;
    for (char *save = NULL, *e = strtok_r(sample, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
        char *f[5] = {0};
        int k = 0;
        for (char *s2 = NULL, *x = strtok_r(e, "@", &s2); x && k < 5; x = strtok_r(NULL, "@", &s2))
            f[k++] = x;
        if (k < 4)
            continue;
        int64_t ts = strtoll(f[1], NULL, 10);
        if (list) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "halfOffset", atof(f[0]));
            cJSON_AddNumberToObject(o, "storeTimestamp", (double)ts);
            cJSON_AddStringToObject(o, "producerGroup", f[2]);
            cJSON_AddStringToObject(o, "topic", f[3]);
            cJSON_AddStringToObject(o, "transactionId", f[4] ? f[4] : "");
            cJSON_AddItemToArray(list, o);
        } else {
            fprintf(c->out, "    %-10s %-8.1f %-24s %-24s %s\n", f[0], (double)(now - ts) / 1000,
                    f[2], f[3], f[4] ? f[4] : "");
        }
    }
    if (b)
        cJSON_AddItemToArray(out, b);
}

int cmd_tx_status(const struct ctx *c, const char *addr)
{
    int64_t now = clock_wall_ms();
    cJSON *out = c->json ? cJSON_CreateArray() : NULL;
    char eb[ERR_MAX];
    int rc = 0, seen = 0;
    if (!out)
        fprintf(c->out, "unresolved transactional half messages (sample: #HalfOffset #Age(s) "
                        "#ProducerGroup #Topic #TransactionId)\n");
    if (addr) {
        const cJSON *t = NULL;
        cJSON *rt = runtime_info(addr, &t, eb, sizeof eb);
        if (!t) {
            cJSON_Delete(rt);
            cJSON_Delete(out);
            return adm_fail(c, "runtime info failed (%s)", eb);
        }
        tx_status_one(c, adm_jstr(t, "brokerName")[0] ? adm_jstr(t, "brokerName") : "-", addr, t,
                      out, now);
        cJSON_Delete(rt);
        seen = 1;
    } else {
        cJSON *ci = adm_get_cluster(c);
        const cJSON *bd, *a;
        if (!ci) {
            cJSON_Delete(out);
            return 1;
        }
        cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"))
        {
            a = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
            if (!cJSON_IsString(a))
                continue;
            const cJSON *t = NULL;
            cJSON *rt = runtime_info(a->valuestring, &t, eb, sizeof eb);
            if (t) {
                tx_status_one(c, adm_jstr(bd, "brokerName"), a->valuestring, t, out, now);
                seen++;
            } else {
                rc = adm_fail(c, "runtime info of %s failed (%s)", a->valuestring, eb);
            }
            cJSON_Delete(rt);
        }
        cJSON_Delete(ci);
    }
    if (out) {
        adm_print_json(c, out);
        cJSON_Delete(out);
    }
    if (!seen && !rc)
        rc = adm_fail(c, "%s", "no master broker found");
    return rc;
}
