/* mqadmin: FerryMQ's admin command line (the subcommands and option letters of RocketMQ
 * 4.9.8's mqadmin). Every subcommand opens its own short-lived connections: one request to a
 * name server, then requests to the brokers it names (protocol/REMOTING.md §2.3, §2.4).
 * Tables by default, --json for scripts. Exit 0 on success, 1 on a failure (a message on
 * stderr), 2 on a usage error. */
#include "client/client_int.h"

#include "common/bytes.h"
#include "remoting/codes.h"
#include "remoting/frame.h"
#include "store/msg.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS 5000
#define ERR_MAX    512

struct ctx {
    const char *cmd;
    const char *ns; /* "host:port;host:port" */
    int json;
};

static int fail(const struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mqadmin: %s: ", c->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static const char *code_name(int32_t code)
{
    static const struct {
        int32_t code;
        const char *name;
    } names[] = {
        {RESP_SUCCESS, "SUCCESS"},
        {RESP_SYSTEM_ERROR, "SYSTEM_ERROR"},
        {RESP_SYSTEM_BUSY, "SYSTEM_BUSY"},
        {RESP_REQUEST_CODE_NOT_SUPPORTED, "REQUEST_CODE_NOT_SUPPORTED"},
        {RESP_SERVICE_NOT_AVAILABLE, "SERVICE_NOT_AVAILABLE"},
        {RESP_NO_PERMISSION, "NO_PERMISSION"},
        {RESP_TOPIC_NOT_EXIST, "TOPIC_NOT_EXIST"},
        {RESP_QUERY_NOT_FOUND, "QUERY_NOT_FOUND"},
        {RESP_CONSUMER_NOT_ONLINE, "CONSUMER_NOT_ONLINE"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code)
            return names[i].name;
    return "error";
}

/* "CODE from addr: remark" for an error response. */
static const char *resp_err(const struct rcmd *resp, const char *addr, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s (%d) from %s", code_name(resp->code), (int)resp->code, addr);
    if (resp->remark.p && resp->remark.len && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ": %.*s", (int)resp->remark.len, resp->remark.p);
    return buf;
}

/* One request to @addr on a new connection. Returns 0 (*@resp set; any response code) or
 * nonzero with @err filled. */
static int call(const char *addr, const struct rcmd *req, struct rcmd **resp, char *err,
                size_t errlen)
{
    struct remoting_client_config cfg;
    remoting_client_t *cli;
    char cerr[256] = "";
    int rc;
    remoting_client_config_init(&cfg);
    rc = remoting_client_new(&cfg, &cli);
    if (rc != 0) {
        snprintf(err, errlen, "client: %s", ferry_strerror(rc));
        return rc;
    }
    rc = remoting_client_connect(cli, addr, TIMEOUT_MS, cerr, sizeof cerr);
    if (rc != 0)
        snprintf(err, errlen, "connect to %s: %s", addr, cerr[0] ? cerr : ferry_strerror(rc));
    else if ((rc = remoting_client_invoke_sync(cli, req, TIMEOUT_MS, resp)) != 0)
        snprintf(err, errlen, "request %d to %s: %s", (int)req->code, addr, ferry_strerror(rc));
    remoting_client_free(cli);
    return rc;
}

/* Send @req to the first name server that answers; its address goes to @used. */
static int ns_call(const struct ctx *c, const struct rcmd *req, struct rcmd **resp, char *used,
                   size_t usedlen, char *err, size_t errlen)
{
    char list[1024];
    char *save = NULL;
    int rc = -1;
    snprintf(list, sizeof list, "%s", c->ns);
    snprintf(err, errlen, "no name server address");
    for (char *a = strtok_r(list, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
        if ((rc = call(a, req, resp, err, errlen)) == 0) {
            snprintf(used, usedlen, "%s", a);
            return 0;
        }
    }
    return rc ? rc : -1;
}

/* The body of a SUCCESS response parsed as JSON; NULL (message printed) otherwise. */
static cJSON *json_body(const struct ctx *c, const struct rcmd *resp, const char *addr,
                        const char *what)
{
    char eb[ERR_MAX];
    cJSON *j;
    if (resp->code != RESP_SUCCESS) {
        fail(c, "%s failed (%s)", what, resp_err(resp, addr, eb, sizeof eb));
        return NULL;
    }
    j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
    if (!j)
        fail(c, "%s: malformed JSON answer from %s", what, addr);
    return j;
}

static void print_json(cJSON *j)
{
    char *s = cJSON_Print(j);
    puts(s ? s : "null");
    free(s);
}

static const char *jstr(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : "";
}

static long long jnum(const cJSON *o, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(n))
        return strtoll(n->valuestring, NULL, 10);
    return cJSON_IsNumber(n) ? (long long)n->valuedouble : 0;
}

/* ---- name server lookups shared by several subcommands ---- */

/* The route of @topic (standard JSON requested). NULL with a message printed. */
static cJSON *get_route(const struct ctx *c, const char *topic)
{
    struct rcmd req, *resp = NULL;
    char addr[256], eb[ERR_MAX];
    cJSON *j = NULL;
    rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "acceptStandardJsonOnly", "true");
    if (ns_call(c, &req, &resp, addr, sizeof addr, eb, sizeof eb) != 0) {
        fail(c, "route of topic %s: %s", topic, eb);
        return NULL;
    }
    if (resp->code == RESP_TOPIC_NOT_EXIST)
        fail(c, "no route for topic %s (TOPIC_NOT_EXIST from %s)", topic, addr);
    else
        j = json_body(c, resp, addr, "route lookup");
    rcmd_free(resp);
    return j;
}

static cJSON *get_cluster(const struct ctx *c)
{
    struct rcmd req, *resp = NULL;
    char addr[256], eb[ERR_MAX];
    cJSON *j;
    rcmd_init_request(&req, REQ_GET_BROKER_CLUSTER_INFO);
    rcmd_ext_add(&req, "acceptStandardJsonOnly", "true");
    if (ns_call(c, &req, &resp, addr, sizeof addr, eb, sizeof eb) != 0) {
        fail(c, "cluster info: %s", eb);
        return NULL;
    }
    j = json_body(c, resp, addr, "cluster info");
    rcmd_free(resp);
    return j;
}

/* Master addresses of @cluster's brokers (a NULL-ended array of borrowed strings). */
static int cluster_masters(const struct ctx *c, cJSON *ci, const char *cluster, const char ***out)
{
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ci, "clusterAddrTable"), cluster);
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"), *n;
    int k = 0;
    if (!cJSON_IsArray(names))
        return fail(c, "cluster %s not found", cluster);
    *out = calloc((size_t)cJSON_GetArraySize(names) + 1, sizeof **out);
    cJSON_ArrayForEach(n, names)
    {
        const cJSON *bd = cJSON_GetObjectItemCaseSensitive(bt, cJSON_GetStringValue(n));
        const char *a = jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        if (a[0])
            (*out)[k++] = a;
    }
    if (k == 0) {
        free(*out);
        return fail(c, "cluster %s has no master broker", cluster);
    }
    return 0;
}

/* ---- topicList ---- */

static int cmd_topic_list(const struct ctx *c)
{
    struct rcmd req, *resp = NULL;
    char addr[256], eb[ERR_MAX];
    const cJSON *t;
    cJSON *j;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
    if (ns_call(c, &req, &resp, addr, sizeof addr, eb, sizeof eb) != 0)
        return fail(c, "%s", eb);
    j = json_body(c, resp, addr, "topic list");
    rcmd_free(resp);
    if (!j)
        return 1;
    if (c->json)
        print_json(j);
    else
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "topicList"))
            puts(cJSON_GetStringValue(t) ? cJSON_GetStringValue(t) : "");
    cJSON_Delete(j);
    return 0;
}

/* ---- topicRoute ---- */

static int cmd_topic_route(const struct ctx *c, const char *topic)
{
    cJSON *r = get_route(c, topic);
    const cJSON *q, *bd;
    if (!r)
        return 1;
    if (c->json) {
        print_json(r);
        cJSON_Delete(r);
        return 0;
    }
    printf("%-24s %-20s %-22s %-6s %-6s %s\n", "#Broker Name", "#Cluster", "#Master Addr", "#Read",
           "#Write", "#Perm");
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *name = jstr(q, "brokerName"), *cluster = "", *master = "";
        cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
        {
            if (strcmp(jstr(bd, "brokerName"), name) == 0) {
                cluster = jstr(bd, "cluster");
                master = jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
            }
        }
        printf("%-24s %-20s %-22s %-6lld %-6lld %lld\n", name, cluster, master[0] ? master : "-",
               jnum(q, "readQueueNums"), jnum(q, "writeQueueNums"), jnum(q, "perm"));
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
    if (call(addr, &req, &resp, err, errlen) != 0)
        return NULL;
    if (resp->code != RESP_SUCCESS)
        resp_err(resp, addr, err, errlen);
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
    snprintf(buf, cap, "%s", jstr(t, key));
    buf[strcspn(buf, " ")] = 0;
    return buf;
}

static int cmd_cluster_list(const struct ctx *c)
{
    cJSON *ci = get_cluster(c);
    const cJSON *cl, *n, *a;
    if (!ci)
        return 1;
    if (c->json) {
        print_json(ci);
        cJSON_Delete(ci);
        return 0;
    }
    printf("%-20s %-24s %-4s %-22s %-10s %-10s %-10s %s\n", "#Cluster Name", "#Broker Name", "#BID",
           "#Addr", "#Version", "#InTPS", "#OutTPS", "#InTotalToday");
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
                printf("%-20s %-24s %-4s %-22s %-10s %-10s %-10s %s\n", cl->string,
                       jstr(bd, "brokerName"), a->string, cJSON_GetStringValue(a),
                       t ? jstr(t, "brokerVersionDesc") : "-", tps(t, "putTps", in, sizeof in),
                       tps(t, "getTransferedTps", out, sizeof out),
                       t ? jstr(t, "msgPutTotalTodayNow") : "-");
                cJSON_Delete(rt);
            }
        }
    }
    cJSON_Delete(ci);
    return 0;
}

/* ---- updateTopic / deleteTopic ---- */

struct topic_opts {
    const char *topic, *cluster, *broker;
    int rq, wq, perm, order;
};

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
    if (call(addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "topic %s: %s", o->topic, eb);
    rc = resp->code;
    if (rc != RESP_SUCCESS)
        fail(c, "create topic %s failed (%s)", o->topic, resp_err(resp, addr, eb, sizeof eb));
    else if (!c->json)
        printf("create topic %s on %s success.\n", o->topic, addr);
    rcmd_free(resp);
    return rc != RESP_SUCCESS;
}

/* The target brokers: -b, or every master of -c. *@ci keeps the strings alive. */
static int targets(const struct ctx *c, const char *broker, const char *cluster, cJSON **ci,
                   const char ***addrs)
{
    static const char *one[2];
    *ci = NULL;
    if (broker) {
        one[0] = broker;
        *addrs = one;
        return 0;
    }
    if (!(*ci = get_cluster(c)))
        return 1;
    return cluster_masters(c, *ci, cluster, addrs);
}

static void print_json_result(const char *topic, const char **addrs)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "brokers");
    cJSON_AddStringToObject(o, "topic", topic);
    for (int i = 0; addrs[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(addrs[i]));
    print_json(o);
    cJSON_Delete(o);
}

static int cmd_update_topic(const struct ctx *c, const struct topic_opts *o)
{
    cJSON *ci;
    const char **addrs;
    int rc = 0;
    if (targets(c, o->broker, o->cluster, &ci, &addrs) != 0) {
        cJSON_Delete(ci);
        return 1;
    }
    for (int i = 0; addrs[i] && rc == 0; i++)
        rc = update_on(c, addrs[i], o);
    if (rc == 0 && c->json)
        print_json_result(o->topic, addrs);
    if (ci)
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
        rc = ns_call(c, &req, &resp, used, sizeof used, eb, sizeof eb);
        addr = used;
    } else {
        rc = call(addr, &req, &resp, eb, sizeof eb);
    }
    if (rc != 0)
        return fail(c, "topic %s: %s", o->topic, eb);
    rc = resp->code;
    if (rc != RESP_SUCCESS)
        fail(c, "delete topic %s failed (%s)", o->topic, resp_err(resp, addr, eb, sizeof eb));
    else if (!c->json)
        printf("delete topic %s from %s %s success.\n", o->topic, ns ? "name server" : "broker",
               addr);
    rcmd_free(resp);
    return rc != RESP_SUCCESS;
}

static int cmd_delete_topic(const struct ctx *c, const struct topic_opts *o)
{
    cJSON *ci;
    const char **addrs;
    int rc = 0;
    if (targets(c, NULL, o->cluster, &ci, &addrs) != 0) {
        cJSON_Delete(ci);
        return 1;
    }
    for (int i = 0; addrs[i] && rc == 0; i++)
        rc = delete_req(c, addrs[i], 0, o);
    if (rc == 0)
        rc = delete_req(c, NULL, 1, o);
    if (rc == 0 && c->json)
        print_json_result(o->topic, addrs);
    free(addrs);
    cJSON_Delete(ci);
    return rc;
}

/* ---- topicStatus ---- */

/* GET_TOPIC_STATS_INFO's offsetTable has MessageQueue objects as keys (not JSON): read it
 * key by key with cJSON and append {"brokerName","queueId","minOffset",...} to @arr. */
static int parse_stats(const char *body, cJSON *arr)
{
    const char *p = strstr(body, "\"offsetTable\"");
    if (!p || !(p = strchr(p, '{')))
        return -1;
    p++;
    for (;;) {
        const char *end = NULL;
        cJSON *k, *v;
        while (*p == ' ' || *p == ',' || *p == '\n')
            p++;
        if (*p == '}')
            return 0;
        if (!(k = cJSON_ParseWithOpts(p, &end, 0)))
            return -1;
        p = end;
        while (*p == ' ')
            p++;
        if (*p++ != ':' || !(v = cJSON_ParseWithOpts(p, &end, 0))) {
            cJSON_Delete(k);
            return -1;
        }
        p = end;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "brokerName", jstr(k, "brokerName"));
        cJSON_AddNumberToObject(e, "queueId", (double)jnum(k, "queueId"));
        cJSON_AddNumberToObject(e, "minOffset", (double)jnum(v, "minOffset"));
        cJSON_AddNumberToObject(e, "maxOffset", (double)jnum(v, "maxOffset"));
        cJSON_AddNumberToObject(e, "lastUpdateTimestamp", (double)jnum(v, "lastUpdateTimestamp"));
        cJSON_AddItemToArray(arr, e);
        cJSON_Delete(k);
        cJSON_Delete(v);
    }
}

static void fmt_time(long long ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !localtime_r(&s, &tm)) {
        snprintf(buf, cap, "-");
        return;
    }
    size_t n = strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ",%03lld", ms % 1000);
}

static int topic_stats_on(const struct ctx *c, const char *topic, const char *addr, cJSON *arr)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX], *body;
    int rc = 0;
    rcmd_init_request(&req, REQ_GET_TOPIC_STATS_INFO);
    rcmd_ext_add(&req, "topic", topic);
    if (call(addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "topic %s: %s", topic, eb);
    if (resp->code != RESP_SUCCESS) {
        resp_err(resp, addr, eb, sizeof eb);
        rcmd_free(resp);
        return fail(c, "stats of topic %s failed (%s)", topic, eb);
    }
    body = strndup((const char *)resp->body, resp->body_len);
    if (parse_stats(body, arr) != 0)
        rc = fail(c, "malformed topic stats from %s", addr);
    free(body);
    rcmd_free(resp);
    return rc;
}

static int cmd_topic_status(const struct ctx *c, const char *topic)
{
    cJSON *r = get_route(c, topic), *arr = cJSON_CreateArray();
    const cJSON *bd, *e;
    int rc = r ? 0 : 1;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
    {
        const char *a = jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        if (a[0] && rc == 0)
            rc = topic_stats_on(c, topic, a, arr);
    }
    if (rc == 0 && c->json) {
        print_json(arr);
    } else if (rc == 0) {
        printf("%-24s %-5s %-14s %-14s %s\n", "#Broker Name", "#QID", "#Min Offset", "#Max Offset",
               "#Last Updated");
        cJSON_ArrayForEach(e, arr)
        {
            char tb[64];
            fmt_time(jnum(e, "lastUpdateTimestamp"), tb, sizeof tb);
            printf("%-24s %-5lld %-14lld %-14lld %s\n", jstr(e, "brokerName"), jnum(e, "queueId"),
                   jnum(e, "minOffset"), jnum(e, "maxOffset"), tb);
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

static int cmd_broker_status(const struct ctx *c, const char *addr)
{
    char eb[ERR_MAX];
    const cJSON *t = NULL, *kv;
    cJSON *rt = runtime_info(addr, &t, eb, sizeof eb);
    const char **keys;
    int n = 0;
    if (!t) {
        cJSON_Delete(rt);
        return fail(c, "runtime info failed (%s)", eb);
    }
    if (c->json) {
        print_json((cJSON *)t);
        cJSON_Delete(rt);
        return 0;
    }
    keys = calloc((size_t)cJSON_GetArraySize(t) + 1, sizeof *keys);
    cJSON_ArrayForEach(kv, t) keys[n++] = kv->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    for (int i = 0; i < n; i++)
        printf("%-40s: %s\n", keys[i], jstr(t, keys[i]));
    free(keys);
    cJSON_Delete(rt);
    return 0;
}

/* ---- consumerConnection ---- */

static int cmd_consumer_connection(const struct ctx *c, const char *group, const char *broker)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX], retry[CLIENT_NAME_MAX * 2], addr[CLIENT_ADDR_MAX] = "";
    const cJSON *e;
    cJSON *j;
    if (broker) {
        snprintf(addr, sizeof addr, "%s", broker);
    } else {
        /* Java asks a broker of the group's retry topic. */
        cJSON *r;
        snprintf(retry, sizeof retry, "%%RETRY%%%s", group);
        if (!(r = get_route(c, retry)))
            return fail(c, "consumer group %s: no broker knows it", group);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
        {
            const char *a = jstr(cJSON_GetObjectItemCaseSensitive(e, "brokerAddrs"), "0");
            if (a[0] && !addr[0])
                snprintf(addr, sizeof addr, "%s", a);
        }
        cJSON_Delete(r);
        if (!addr[0])
            return fail(c, "consumer group %s: no master broker", group);
    }
    rcmd_init_request(&req, REQ_GET_CONSUMER_CONNECTION_LIST);
    rcmd_ext_add(&req, "consumerGroup", group);
    if (call(addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "consumer group %s: %s", group, eb);
    j = json_body(c, resp, addr, "consumer connection list");
    rcmd_free(resp);
    if (!j)
        return 1;
    if (c->json) {
        print_json(j);
        cJSON_Delete(j);
        return 0;
    }
    printf("%-4s %-48s %-24s %-10s %s\n", "#", "#ClientId", "#ClientAddr", "#Language", "#Version");
    int i = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "connectionSet"))
    {
        printf("%-4d %-48s %-24s %-10s %lld\n", ++i, jstr(e, "clientId"), jstr(e, "clientAddr"),
               jstr(e, "language"), jnum(e, "version"));
    }
    printf("\nBelow is subscription:\n");
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "subscriptionTable"))
    {
        printf("%-48s %s\n", e->string, jstr(e, "subString"));
    }
    printf("\nConsumeType: %s\nMessageModel: %s\nConsumeFromWhere: %s\n", jstr(j, "consumeType"),
           jstr(j, "messageModel"), jstr(j, "consumeFromWhere"));
    cJSON_Delete(j);
    return 0;
}

/* ---- queryMsgById / queryMsgByKey ---- */

static void host_str(const uint8_t *p, int v6, char *buf, size_t cap)
{
    char ip[64];
    inet_ntop(v6 ? AF_INET6 : AF_INET, p, ip, sizeof ip);
    snprintf(buf, cap, "%s:%u", ip, (unsigned)be32_get(p + (v6 ? 16 : 4)));
}

static void prop_str(const struct msg_view *v, const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    const char *s = msg_prop_get(v->props, v->props_len, name, &n);
    snprintf(buf, cap, "%.*s", s ? (int)n : 0, s ? s : "");
}

/* One stored record as a JSON object. */
static cJSON *record_json(const struct msg_view *v)
{
    char buf[1024], host[80];
    int born6 = (v->sys_flag & SYSFLAG_BORNHOST_V6) != 0;
    int store6 = (v->sys_flag & SYSFLAG_STOREHOST_V6) != 0;
    const uint8_t *store = v->rec + v->store_ts_off + 8;
    cJSON *o = cJSON_CreateObject();
    snprintf(buf, sizeof buf, "%.*s", (int)v->topic_len, v->topic);
    cJSON_AddStringToObject(o, "topic", buf);
    prop_str(v, "UNIQ_KEY", buf, sizeof buf);
    cJSON_AddStringToObject(o, "msgId", buf);
    /* The offset msgId (§3.5, IPv4 store hosts). */
    if (!store6) {
        snprintf(buf, sizeof buf, "%02X%02X%02X%02X%08X%016" PRIX64, store[0], store[1], store[2],
                 store[3], (unsigned)be32_get(store + 4), (uint64_t)v->phys_offset);
        cJSON_AddStringToObject(o, "offsetMsgId", buf);
    }
    prop_str(v, "TAGS", buf, sizeof buf);
    cJSON_AddStringToObject(o, "tags", buf);
    prop_str(v, "KEYS", buf, sizeof buf);
    cJSON_AddStringToObject(o, "keys", buf);
    cJSON_AddNumberToObject(o, "queueId", v->queue_id);
    cJSON_AddNumberToObject(o, "queueOffset", (double)v->queue_offset);
    cJSON_AddNumberToObject(o, "commitLogOffset", (double)v->phys_offset);
    cJSON_AddNumberToObject(o, "reconsumeTimes", v->reconsume_times);
    cJSON_AddNumberToObject(o, "bornTimestamp", (double)v->born_ts);
    cJSON_AddNumberToObject(o, "storeTimestamp", (double)v->store_ts);
    host_str(v->rec + MSG_OFF_BORNTS + 8, born6, host, sizeof host);
    cJSON_AddStringToObject(o, "bornHost", host);
    host_str(store, store6, host, sizeof host);
    cJSON_AddStringToObject(o, "storeHost", host);
    cJSON_AddNumberToObject(o, "sysFlag", v->sys_flag);
    cJSON_AddNumberToObject(o, "bodyLength", v->body_len);
    if (!(v->sys_flag & SYSFLAG_COMPRESSED)) {
        char *body = strndup((const char *)v->body, v->body_len);
        cJSON_AddStringToObject(o, "body", body);
        free(body);
    }
    return o;
}

/* Append the records of @body to @arr (keeping those whose topic is @topic and that carry @key
 * in KEYS or UNIQ_KEY, when given). */
static int add_records(const uint8_t *body, size_t len, const char *topic, const char *key,
                       cJSON *arr)
{
    size_t off = 0;
    while (off < len) {
        struct msg_view v;
        if (msg_parse(body + off, len - off, &v) != 0)
            return -1;
        off += v.total_size;
        if (key) {
            char keys[1024], uniq[64], *save = NULL;
            int hit = 0;
            if (strlen(topic) != v.topic_len || memcmp(topic, v.topic, v.topic_len) != 0)
                continue;
            prop_str(&v, "UNIQ_KEY", uniq, sizeof uniq);
            prop_str(&v, "KEYS", keys, sizeof keys);
            hit = strcmp(uniq, key) == 0;
            for (char *k = strtok_r(keys, " ", &save); k && !hit; k = strtok_r(NULL, " ", &save))
                hit = strcmp(k, key) == 0;
            if (!hit)
                continue;
        }
        cJSON_AddItemToArray(arr, record_json(&v));
    }
    return 0;
}

static void print_record(const cJSON *o)
{
    static const char *const keys[] = {
        "topic",          "msgId",         "offsetMsgId",    "tags",
        "keys",           "queueId",       "queueOffset",    "commitLogOffset",
        "reconsumeTimes", "bornTimestamp", "storeTimestamp", "bornHost",
        "storeHost",      "sysFlag",       "bodyLength",     "body"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (cJSON_IsString(f))
            printf("%-20s %s\n", keys[i], f->valuestring);
        else if (cJSON_IsNumber(f))
            printf("%-20s %.0f\n", keys[i], f->valuedouble);
    }
}

static int decode_offset_id(const char *id, char *addr, size_t cap, int64_t *phys)
{
    uint8_t raw[16];
    char ip[INET_ADDRSTRLEN];
    if (strlen(id) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(id + 2 * i, "%2X", &v) != 1)
            return -1;
        raw[i] = (uint8_t)v;
    }
    inet_ntop(AF_INET, raw, ip, sizeof ip);
    snprintf(addr, cap, "%s:%u", ip, (unsigned)be32_get(raw + 4));
    *phys = (int64_t)be64_get(raw + 8);
    return 0;
}

static int cmd_query_by_id(const struct ctx *c, const char *id)
{
    struct rcmd req, *resp = NULL;
    char addr[64], eb[ERR_MAX];
    int64_t phys;
    cJSON *arr;
    int rc = 0;
    if (decode_offset_id(id, addr, sizeof addr, &phys) != 0)
        return fail(c,
                    "%s is not an offset message id (32 hex digits: IPv4 store host, port, "
                    "commit-log offset)",
                    id);
    rcmd_init_request(&req, REQ_VIEW_MESSAGE_BY_ID);
    rcmd_ext_add_i64(&req, "offset", phys);
    if (call(addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "message %s: %s", id, eb);
    if (resp->code != RESP_SUCCESS) {
        resp_err(resp, addr, eb, sizeof eb);
        rcmd_free(resp);
        return fail(c, "message %s not found (%s)", id, eb);
    }
    arr = cJSON_CreateArray();
    if (add_records(resp->body, resp->body_len, NULL, NULL, arr) != 0 ||
        cJSON_GetArraySize(arr) != 1)
        rc = fail(c, "malformed message record from %s", addr);
    else if (c->json)
        print_json(cJSON_GetArrayItem(arr, 0));
    else
        print_record(cJSON_GetArrayItem(arr, 0));
    cJSON_Delete(arr);
    rcmd_free(resp);
    return rc;
}

static int query_key_on(const struct ctx *c, const char *addr, const char *topic, const char *key,
                        cJSON *arr)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, REQ_QUERY_MESSAGE);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "key", key);
    rcmd_ext_add_i64(&req, "maxNum", 64);
    rcmd_ext_add_i64(&req, "beginTimestamp", 0);
    rcmd_ext_add_i64(&req, "endTimestamp", INT64_MAX);
    rcmd_ext_add(&req, "_UNIQUE_KEY_QUERY", "false");
    if (call(addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "key %s: %s", key, eb);
    if (resp->code == RESP_SUCCESS) {
        if (add_records(resp->body, resp->body_len, topic, key, arr) != 0)
            rc = fail(c, "malformed message records from %s", addr);
    } else if (resp->code != RESP_QUERY_NOT_FOUND) {
        rc = fail(c, "query of key %s failed (%s)", key, resp_err(resp, addr, eb, sizeof eb));
    }
    rcmd_free(resp);
    return rc;
}

static int cmd_query_by_key(const struct ctx *c, const char *topic, const char *key)
{
    cJSON *r = get_route(c, topic), *arr = cJSON_CreateArray();
    const cJSON *bd, *e;
    int rc = r ? 0 : 1;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
    {
        const char *a = jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        if (a[0] && rc == 0)
            rc = query_key_on(c, a, topic, key, arr);
    }
    if (rc == 0 && cJSON_GetArraySize(arr) == 0)
        rc = fail(c, "no message with key %s in topic %s", key, topic);
    if (rc == 0 && c->json) {
        print_json(arr);
    } else if (rc == 0) {
        printf("%-34s %-34s %-5s %-12s %s\n", "#Message ID", "#Offset Message ID", "#QID",
               "#Offset", "#Keys");
        cJSON_ArrayForEach(e, arr)
        {
            printf("%-34s %-34s %-5lld %-12lld %s\n", jstr(e, "msgId"), jstr(e, "offsetMsgId"),
                   jnum(e, "queueId"), jnum(e, "queueOffset"), jstr(e, "keys"));
        }
    }
    cJSON_Delete(arr);
    cJSON_Delete(r);
    return rc;
}

/* ---- sendMessage ---- */

static int cmd_send(const struct ctx *c, const struct ferry_message *m)
{
    struct ferry_producer_config cfg;
    struct ferry_send_result res;
    ferry_producer_t *p = NULL;
    int rc;
    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "PID_MQADMIN");
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", c->ns);
    if ((rc = ferry_producer_new(&cfg, &p)) != 0 || (rc = ferry_producer_start(p)) != 0) {
        ferry_producer_free(p);
        return fail(c, "producer: %s", ferry_strerror(rc));
    }
    rc = ferry_send_sync(p, m, &res);
    ferry_producer_free(p);
    if (rc == FERRY_ENOTSTORED)
        return fail(c, "send to topic %s failed: %s (%d): %s", m->topic, code_name(res.broker_code),
                    (int)res.broker_code, res.remark);
    if (rc != 0)
        return fail(c, "send to topic %s failed: %s", m->topic, ferry_strerror(rc));
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "brokerName", res.broker_name);
        cJSON_AddNumberToObject(o, "queueId", res.queue_id);
        cJSON_AddNumberToObject(o, "queueOffset", (double)res.queue_offset);
        cJSON_AddStringToObject(o, "sendStatus",
                                res.status == FERRY_SEND_OK ? "SEND_OK" : "STORED");
        cJSON_AddStringToObject(o, "msgId", res.msg_id);
        cJSON_AddStringToObject(o, "offsetMsgId", res.offset_msg_id);
        print_json(o);
        cJSON_Delete(o);
    } else {
        printf("%-24s %-5s %-12s %-34s %s\n", "#Broker Name", "#QID", "#Send Result", "#MsgId",
               "#OffsetMsgId");
        printf("%-24s %-5d %-12s %-34s %s\n", res.broker_name, res.queue_id,
               res.status == FERRY_SEND_OK ? "SEND_OK" : "STORED", res.msg_id, res.offset_msg_id);
    }
    return 0;
}

/* ---- command table and option parsing ---- */

struct cmd {
    const char *name, *opts, *usage, *desc;
    const char *required; /* option letters that must be given */
};

static const struct cmd cmds[] = {
    {"topicList", "n:", "[-n namesrv]", "list all topics", ""},
    {"topicRoute", "n:t:", "-t topic [-n namesrv]", "show a topic's route", "t"},
    {"clusterList", "n:", "[-n namesrv]", "list clusters and brokers", ""},
    {"updateTopic", "n:t:r:w:p:o:c:b:",
     "-t topic (-c cluster | -b brokerAddr) [-r readQueueNums] [-w writeQueueNums] [-p perm] "
     "[-o true|false] [-n namesrv]",
     "create or update a topic", "t"},
    {"deleteTopic", "n:t:c:", "-t topic -c cluster [-n namesrv]", "delete a topic", "tc"},
    {"topicStatus", "n:t:", "-t topic [-n namesrv]", "min/max offset of each queue", "t"},
    {"brokerStatus", "n:b:", "-b brokerAddr", "a broker's runtime info", "b"},
    {"consumerConnection", "n:g:b:", "-g group [-b brokerAddr] [-n namesrv]",
     "a consumer group's connections", "g"},
    {"queryMsgById", "n:i:", "-i offsetMsgId", "view a message by its offset message id", "i"},
    {"queryMsgByKey", "n:t:k:", "-t topic -k key [-n namesrv]", "find messages by key", "tk"},
    {"sendMessage", "n:t:p:k:c:", "-t topic -p body [-k keys] [-c tags] [-n namesrv]",
     "send one message", "tp"},
};

static int usage_all(FILE *f)
{
    fprintf(f, "usage: mqadmin <command> [options] [--json]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-20s %s\n", cmds[i].name, cmds[i].desc);
    fprintf(f, "\nThe name server is -n host:port[;host:port] or $NAMESRV_ADDR.\n");
    return 2;
}

static int usage(const struct cmd *cmd, const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "mqadmin: %s: ", cmd->name);
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
    fprintf(stderr, "usage: mqadmin %s %s [--json]\n", cmd->name, cmd->usage);
    return 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const struct cmd *cmd = NULL;
    const char *val[128] = {0};
    struct ctx c = {0};
    char optstr[64];
    int ch;

    if (argc < 2)
        return usage_all(stderr);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_all(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            cmd = &cmds[i];
    if (!cmd) {
        fprintf(stderr, "mqadmin: unknown command %s\n", argv[1]);
        return usage_all(stderr);
    }
    c.cmd = cmd->name;
    snprintf(optstr, sizeof optstr, ":%sh", cmd->opts);
    opterr = 0;
    while ((ch = getopt_long(argc - 1, argv + 1, optstr, longopts, NULL)) != -1) {
        if (ch == 'J')
            c.json = 1;
        else if (ch == 'h')
            return usage(cmd, NULL, NULL), 0;
        else if (ch == ':')
            return usage(cmd, "option -%s needs a value", (char[]){(char)optopt, 0});
        else if (ch == '?')
            return optopt ? usage(cmd, "unknown option -%s", (char[]){(char)optopt, 0})
                          : usage(cmd, "unknown option %s", argv[optind]);
        else
            val[ch] = optarg;
    }
    if (optind < argc - 1)
        return usage(cmd, "unexpected argument %s", argv[optind + 1]);
    for (const char *r = cmd->required; *r; r++)
        if (!val[(unsigned char)*r])
            return usage(cmd, "option -%s is required", (char[]){*r, 0});
    c.ns = val['n'] ? val['n'] : getenv("NAMESRV_ADDR");
    if (!c.ns || !c.ns[0]) {
        if (strcmp(cmd->name, "brokerStatus") != 0 && strcmp(cmd->name, "queryMsgById") != 0 &&
            !(strcmp(cmd->name, "consumerConnection") == 0 && val['b']))
            return usage(cmd, "%s", "no name server: give -n host:port or set NAMESRV_ADDR");
        c.ns = "";
    }

    if (strcmp(cmd->name, "topicList") == 0)
        return cmd_topic_list(&c);
    if (strcmp(cmd->name, "topicRoute") == 0)
        return cmd_topic_route(&c, val['t']);
    if (strcmp(cmd->name, "clusterList") == 0)
        return cmd_cluster_list(&c);
    if (strcmp(cmd->name, "updateTopic") == 0 || strcmp(cmd->name, "deleteTopic") == 0) {
        struct topic_opts o = {val['t'], val['c'], val['b'], 8, 8, 6, 0};
        if (cmd->name[0] == 'd')
            return cmd_delete_topic(&c, &o);
        if (!o.cluster == !o.broker)
            return usage(cmd, "%s", "give exactly one of -c cluster and -b brokerAddr");
        if ((val['r'] && parse_int(val['r'], 1, 1024, &o.rq) != 0) ||
            (val['w'] && parse_int(val['w'], 1, 1024, &o.wq) != 0) ||
            (val['p'] && parse_int(val['p'], 0, 7, &o.perm) != 0))
            return usage(cmd, "%s", "-r and -w must be 1..1024, -p 0..7");
        if (val['o'] && strcmp(val['o'], "true") != 0 && strcmp(val['o'], "false") != 0)
            return usage(cmd, "%s", "-o must be true or false");
        o.order = val['o'] && strcmp(val['o'], "true") == 0;
        return cmd_update_topic(&c, &o);
    }
    if (strcmp(cmd->name, "topicStatus") == 0)
        return cmd_topic_status(&c, val['t']);
    if (strcmp(cmd->name, "brokerStatus") == 0)
        return cmd_broker_status(&c, val['b']);
    if (strcmp(cmd->name, "consumerConnection") == 0)
        return cmd_consumer_connection(&c, val['g'], val['b']);
    if (strcmp(cmd->name, "queryMsgById") == 0)
        return cmd_query_by_id(&c, val['i']);
    if (strcmp(cmd->name, "queryMsgByKey") == 0)
        return cmd_query_by_key(&c, val['t'], val['k']);
    struct ferry_message m = {.topic = val['t'],
                              .tags = val['c'],
                              .keys = val['k'],
                              .body = val['p'],
                              .body_len = strlen(val['p'])};
    if (m.body_len == 0)
        return usage(cmd, "%s", "-p body must not be empty");
    return cmd_send(&c, &m);
}
