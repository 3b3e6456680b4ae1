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
        {RESP_PULL_NOT_FOUND, "PULL_NOT_FOUND"},
        {RESP_PULL_RETRY_IMMEDIATELY, "PULL_RETRY_IMMEDIATELY"},
        {RESP_PULL_OFFSET_MOVED, "PULL_OFFSET_MOVED"},
        {RESP_SUBSCRIPTION_GROUP_NOT_EXIST, "SUBSCRIPTION_GROUP_NOT_EXIST"},
        {RESP_SUBSCRIPTION_NOT_EXIST, "SUBSCRIPTION_NOT_EXIST"},
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

/* A connection kept open across requests to the same broker (the per-queue loops of
 * consumeMessage and the offset resets); reconnects when the address changes. */
struct bconn {
    char addr[CLIENT_ADDR_MAX];
    remoting_client_t *cli;
};

static void bconn_close(struct bconn *bc)
{
    remoting_client_free(bc->cli);
    bc->cli = NULL;
    bc->addr[0] = 0;
}

/* One request to @addr over @bc. Returns 0 (*@resp set; any response code) or nonzero with
 * @err filled (the connection is then closed). */
static int bcall(struct bconn *bc, const char *addr, const struct rcmd *req, struct rcmd **resp,
                 char *err, size_t errlen)
{
    struct remoting_client_config cfg;
    char cerr[256] = "";
    int rc;
    if (bc->cli && strcmp(bc->addr, addr) != 0)
        bconn_close(bc);
    if (!bc->cli) {
        remoting_client_config_init(&cfg);
        if ((rc = remoting_client_new(&cfg, &bc->cli)) != 0) {
            bc->cli = NULL;
            snprintf(err, errlen, "client: %s", ferry_strerror(rc));
            return rc;
        }
        if ((rc = remoting_client_connect(bc->cli, addr, TIMEOUT_MS, cerr, sizeof cerr)) != 0) {
            if (cerr[0]) /* the remoting client's message names the address already */
                snprintf(err, errlen, "%s", cerr);
            else
                snprintf(err, errlen, "connect to %s: %s", addr, ferry_strerror(rc));
            bconn_close(bc);
            return rc;
        }
        snprintf(bc->addr, sizeof bc->addr, "%s", addr);
    }
    if ((rc = remoting_client_invoke_sync(bc->cli, req, TIMEOUT_MS, resp)) != 0) {
        snprintf(err, errlen, "request %d to %s: %s", (int)req->code, addr, ferry_strerror(rc));
        bconn_close(bc);
    }
    return rc;
}

/* One request to @addr on a new connection. Returns 0 (*@resp set; any response code) or
 * nonzero with @err filled. */
static int call(const char *addr, const struct rcmd *req, struct rcmd **resp, char *err,
                size_t errlen)
{
    struct bconn bc = {.cli = NULL};
    int rc = bcall(&bc, addr, req, resp, err, errlen);
    bconn_close(&bc);
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

/* The route of @topic (standard JSON requested). NULL with a message printed, or with
 * *@missing set and nothing printed when the name server does not know the topic and
 * @missing is not NULL. */
static cJSON *get_route_or(const struct ctx *c, const char *topic, int *missing)
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
    if (resp->code == RESP_TOPIC_NOT_EXIST && missing)
        *missing = 1;
    else if (resp->code == RESP_TOPIC_NOT_EXIST)
        fail(c, "no route for topic %s (TOPIC_NOT_EXIST from %s)", topic, addr);
    else
        j = json_body(c, resp, addr, "route lookup");
    rcmd_free(resp);
    return j;
}

static cJSON *get_route(const struct ctx *c, const char *topic)
{
    return get_route_or(c, topic, NULL);
}

/* The master address of @broker in a route, or "". */
static const char *route_master(const cJSON *route, const char *broker)
{
    const cJSON *bd;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(route, "brokerDatas"))
    {
        if (strcmp(jstr(bd, "brokerName"), broker) == 0)
            return jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
    }
    return "";
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

/* The map @field of a body whose keys are MessageQueue objects, as fastjson writes them (not
 * JSON: GET_TOPIC_STATS_INFO, GET_CONSUME_STATS, ResetOffsetBody): parsed key by key with cJSON,
 * calling @fn with each key and value. 0, or -1 when the body is malformed. */
static int parse_mq_map(const uint8_t *raw, size_t len, const char *field,
                        void (*fn)(const cJSON *mq, const cJSON *v, void *arg), void *arg)
{
    char *body = strndup((const char *)raw, len), pat[64];
    const char *p;
    int rc = -1;
    snprintf(pat, sizeof pat, "\"%s\"", field);
    if (!body || !(p = strstr(body, pat)) || !(p = strchr(p, '{'))) {
        free(body);
        return -1;
    }
    p++;
    for (;;) {
        const char *end = NULL;
        cJSON *k, *v;
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        if (*p == '}') {
            rc = 0;
            break;
        }
        if (!(k = cJSON_ParseWithOpts(p, &end, 0)))
            break;
        p = end;
        while (*p == ' ')
            p++;
        if (*p++ != ':' || !(v = cJSON_ParseWithOpts(p, &end, 0))) {
            cJSON_Delete(k);
            break;
        }
        p = end;
        fn(k, v, arg);
        cJSON_Delete(k);
        cJSON_Delete(v);
    }
    free(body);
    return rc;
}

static void stats_entry(const cJSON *k, const cJSON *v, void *arg)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "brokerName", jstr(k, "brokerName"));
    cJSON_AddNumberToObject(e, "queueId", (double)jnum(k, "queueId"));
    cJSON_AddNumberToObject(e, "minOffset", (double)jnum(v, "minOffset"));
    cJSON_AddNumberToObject(e, "maxOffset", (double)jnum(v, "maxOffset"));
    cJSON_AddNumberToObject(e, "lastUpdateTimestamp", (double)jnum(v, "lastUpdateTimestamp"));
    cJSON_AddItemToArray(arg, e);
}

/* GET_TOPIC_STATS_INFO's offsetTable as {"brokerName","queueId","minOffset",...} in @arr. */
static int parse_stats(const struct rcmd *resp, cJSON *arr)
{
    return parse_mq_map(resp->body, resp->body_len, "offsetTable", stats_entry, arr);
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
    char eb[ERR_MAX];
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
    if (parse_stats(resp, arr) != 0)
        rc = fail(c, "malformed topic stats from %s", addr);
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

/* ---- helpers of the consumer-offset subcommands ---- */

#define TOOLS_GROUP "TOOLS_CONSUMER"
#define PULL_MAX    32 /* the broker's maxTransferCountOnMessageInMemory default */
#define SYSFLAG_SUB 0x4

/* "now" (-1, only when @now_ok; so is "-1"), milliseconds since the epoch, or RocketMQ's
 * yyyy-MM-dd#HH:mm:ss:SSS in local time. 0 or -1. */
static int parse_ts(const char *s, int now_ok, int64_t *out)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    char *end;
    long long v;
    if (now_ok && strcmp(s, "now") == 0) {
        *out = -1;
        return 0;
    }
    v = strtoll(s, &end, 10);
    if (*s && !*end) {
        if (v < (now_ok ? -1 : 0))
            return -1;
        *out = v;
        return 0;
    }
    if (sscanf(s, "%4d-%2d-%2d#%2d:%2d:%2d:%3d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
        s[n] || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0 || ms < 0 || tm.tm_year < 1970)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A request answered with an "offset" field (GET_MIN/MAX_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP;
 * @ts only for the search). 0, or 1 with a message printed. */
static int queue_offset(const struct ctx *c, struct bconn *bc, const char *addr, int32_t code,
                        const char *topic, int qid, int64_t ts, int64_t *out)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, code);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", qid);
    if (code == REQ_SEARCH_OFFSET_BY_TIMESTAMP)
        rcmd_ext_add_i64(&req, "timestamp", ts);
    if (bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "queue %s/%d: %s", topic, qid, eb);
    if (resp->code != RESP_SUCCESS || rcmd_ext_get_i64(resp, "offset", out) != 0)
        rc = fail(c, "offset request %d for queue %s/%d failed (%s)", (int)code, topic, qid,
                  resp_err(resp, addr, eb, sizeof eb));
    rcmd_free(resp);
    return rc;
}

/* PULL_MESSAGE as RocketMQ's tools pull: subscription "*" in the request, no commit, no
 * suspend. The caller frees *@resp. 0, or 1 with a message printed. */
static int pull(const struct ctx *c, struct bconn *bc, const char *addr, const char *group,
                const char *topic, int qid, int64_t offset, int max, struct rcmd **resp)
{
    struct rcmd req;
    char eb[ERR_MAX];
    rcmd_init_request(&req, REQ_PULL_MESSAGE);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", qid);
    rcmd_ext_add_i64(&req, "queueOffset", offset);
    rcmd_ext_add_i64(&req, "maxMsgNums", max);
    rcmd_ext_add_i64(&req, "sysFlag", SYSFLAG_SUB);
    rcmd_ext_add_i64(&req, "commitOffset", 0);
    rcmd_ext_add_i64(&req, "suspendTimeoutMillis", 0);
    rcmd_ext_add(&req, "subscription", "*");
    rcmd_ext_add_i64(&req, "subVersion", 0);
    rcmd_ext_add(&req, "expressionType", "TAG");
    if (bcall(bc, addr, &req, resp, eb, sizeof eb) != 0)
        return fail(c, "pull %s/%d at %lld: %s", topic, qid, (long long)offset, eb);
    return 0;
}

static int64_t ext_i64(const struct rcmd *resp, const char *key, int64_t def)
{
    int64_t v;
    return rcmd_ext_get_i64(resp, key, &v) == 0 ? v : def;
}

/* Order of RocketMQ's MessageQueue.compareTo: topic, broker name, queue id. */
static int cmp_mq(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int r = strcmp(jstr(x, "topic"), jstr(y, "topic"));
    if (!r)
        r = strcmp(jstr(x, "brokerName"), jstr(y, "brokerName"));
    return r ? r
             : (jnum(x, "queueId") > jnum(y, "queueId")) -
                   (jnum(x, "queueId") < jnum(y, "queueId"));
}

/* Sort the objects of @arr in place with @cmp. */
static void sort_array(cJSON *arr, int (*cmp)(const void *, const void *))
{
    int n = cJSON_GetArraySize(arr);
    cJSON **items = calloc((size_t)n + 1, sizeof *items);
    for (int i = n - 1; i >= 0; i--)
        items[i] = cJSON_DetachItemFromArray(arr, i);
    qsort(items, (size_t)n, sizeof *items, cmp);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, items[i]);
    free(items);
}

/* Add @addr to the NULL-ended list @addrs (capacity @cap) unless it is there or empty. */
static void addr_add(const char **addrs, int cap, const char *addr)
{
    int i = 0;
    if (!addr || !addr[0])
        return;
    for (; addrs[i]; i++)
        if (strcmp(addrs[i], addr) == 0)
            return;
    if (i < cap - 1)
        addrs[i] = addr;
}

static void route_masters(const cJSON *route, const char **addrs, int cap)
{
    const cJSON *bd;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(route, "brokerDatas"))
        addr_add(addrs, cap, jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0"));
}

/* ---- consumerProgress ---- */

struct cstats {
    cJSON *arr;
    const char *only_topic;
};

static void cstats_entry(const cJSON *k, const cJSON *v, void *arg)
{
    struct cstats *cs = arg;
    const char *topic = jstr(k, "topic");
    cJSON *e, *it;
    if (cs->only_topic && strcmp(cs->only_topic, topic) != 0)
        return;
    /* The same queue from two answers (a broker listed twice) is shown once. */
    cJSON_ArrayForEach(it, cs->arr)
    {
        if (strcmp(jstr(it, "topic"), topic) == 0 &&
            strcmp(jstr(it, "brokerName"), jstr(k, "brokerName")) == 0 &&
            jnum(it, "queueId") == jnum(k, "queueId"))
            return;
    }
    e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "topic", topic);
    cJSON_AddStringToObject(e, "brokerName", jstr(k, "brokerName"));
    cJSON_AddNumberToObject(e, "queueId", (double)jnum(k, "queueId"));
    cJSON_AddNumberToObject(e, "brokerOffset", (double)jnum(v, "brokerOffset"));
    cJSON_AddNumberToObject(e, "consumerOffset", (double)jnum(v, "consumerOffset"));
    cJSON_AddNumberToObject(e, "diff",
                            (double)(jnum(v, "brokerOffset") - jnum(v, "consumerOffset")));
    cJSON_AddNumberToObject(e, "lastTimestamp", (double)jnum(v, "lastTimestamp"));
    cJSON_AddItemToArray(cs->arr, e);
}

/* GET_CONSUME_STATS of @group (@topic may be NULL: every topic the group has offsets for) at
 * @addr, appended to @arr; entries of other topics than @only are skipped (when given).
 * *@tps gets the consumeTps added. 0, or 1 with a message printed. */
static int consume_stats_on(const struct ctx *c, struct bconn *bc, const char *addr,
                            const char *group, const char *topic, const char *only, cJSON *arr,
                            double *tps)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    struct cstats cs = {arr, only};
    int rc = 0;
    rcmd_init_request(&req, REQ_GET_CONSUME_STATS);
    rcmd_ext_add(&req, "consumerGroup", group);
    if (topic)
        rcmd_ext_add(&req, "topic", topic);
    if (bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "consumer group %s: %s", group, eb);
    if (resp->code != RESP_SUCCESS) {
        rc = fail(c, "consume stats of group %s failed (%s)", group,
                  resp_err(resp, addr, eb, sizeof eb));
    } else if (parse_mq_map(resp->body, resp->body_len, "offsetTable", cstats_entry, &cs) != 0) {
        rc = fail(c, "malformed consume stats from %s", addr);
    } else if (tps) {
        /* Not parsed with cJSON: the body as a whole is not JSON (fastjson's object keys). */
        char *body = strndup((const char *)resp->body, resp->body_len);
        const char *t = body ? strstr(body, "\"consumeTps\":") : NULL;
        *tps += t ? strtod(t + 13, NULL) : 0;
        free(body);
    }
    rcmd_free(resp);
    return rc;
}

static int cmd_consumer_progress(const struct ctx *c, const char *group, const char *topic)
{
    char retry[CLIENT_NAME_MAX * 2];
    const char *addrs[64] = {0};
    cJSON *rr, *tr = NULL, *ci = NULL, *arr;
    struct bconn bc = {.cli = NULL};
    double tps = 0;
    long long total = 0;
    int missing = 0, rc = 0;
    const cJSON *e;

    /* Java asks the brokers of the group's retry topic; with -t the topic's brokers too, and
     * when neither has a route (a group that only committed offsets) every master. */
    snprintf(retry, sizeof retry, "%%RETRY%%%s", group);
    if (!(rr = get_route_or(c, retry, &missing)) && !missing)
        return 1;
    route_masters(rr, addrs, 64);
    if (topic) {
        if (!(tr = get_route(c, topic))) {
            cJSON_Delete(rr);
            return 1;
        }
        route_masters(tr, addrs, 64);
    }
    if (!addrs[0]) {
        const cJSON *bd;
        if (!(ci = get_cluster(c))) {
            cJSON_Delete(rr);
            return 1;
        }
        cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"))
            addr_add(addrs, 64, jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0"));
    }
    arr = cJSON_CreateArray();
    for (int i = 0; addrs[i] && rc == 0; i++)
        rc = consume_stats_on(c, &bc, addrs[i], group, topic, topic, arr, &tps);
    bconn_close(&bc);
    if (rc == 0 && cJSON_GetArraySize(arr) == 0)
        rc = fail(c,
                  "consumer group %s has no consume stats%s%s: it has committed no offset on any "
                  "broker",
                  group, topic ? " for topic " : "", topic ? topic : "");
    if (rc == 0) {
        sort_array(arr, cmp_mq);
        cJSON_ArrayForEach(e, arr) total += jnum(e, "diff");
    }
    if (rc == 0 && c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "group", group);
        cJSON_AddNumberToObject(o, "consumeTps", tps);
        cJSON_AddNumberToObject(o, "diffTotal", (double)total);
        cJSON_AddItemToObject(o, "offsetTable", arr);
        arr = NULL;
        print_json(o);
        cJSON_Delete(o);
    } else if (rc == 0) {
        printf("%-32s  %-24s  %-4s  %-16s  %-16s  %-10s  %s\n", "#Topic", "#Broker Name", "#QID",
               "#Broker Offset", "#Consumer Offset", "#Diff", "#LastTime");
        cJSON_ArrayForEach(e, arr)
        {
            char tb[64] = "N/A";
            time_t s = (time_t)(jnum(e, "lastTimestamp") / 1000);
            struct tm tm;
            if (jnum(e, "lastTimestamp") > 0 && localtime_r(&s, &tm))
                strftime(tb, sizeof tb, "%Y-%m-%d %H:%M:%S", &tm);
            printf("%-32s  %-24s  %-4lld  %-16lld  %-16lld  %-10lld  %s\n", jstr(e, "topic"),
                   jstr(e, "brokerName"), jnum(e, "queueId"), jnum(e, "brokerOffset"),
                   jnum(e, "consumerOffset"), jnum(e, "diff"), tb);
        }
        printf("\nConsume TPS: %.2f\nDiff Total: %lld\n", tps, total);
    }
    cJSON_Delete(arr);
    cJSON_Delete(ci);
    cJSON_Delete(tr);
    cJSON_Delete(rr);
    return rc;
}

/* ---- queryMsgByOffset / consumeMessage ---- */

/* The records of a FOUND pull answer as JSON objects (with "brokerName") in @arr. */
static int pulled_records(const struct rcmd *resp, const char *broker, cJSON *arr)
{
    cJSON *tmp = cJSON_CreateArray(), *e;
    int rc = add_records(resp->body, resp->body_len, NULL, NULL, tmp);
    while (rc == 0 && (e = cJSON_DetachItemFromArray(tmp, 0)) != NULL) {
        cJSON_AddStringToObject(e, "brokerName", broker);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_Delete(tmp);
    return rc;
}

static int cmd_query_by_offset(const struct ctx *c, const char *topic, const char *broker, int qid,
                               int64_t offset)
{
    cJSON *r = get_route(c, topic), *arr;
    struct bconn bc = {.cli = NULL};
    struct rcmd *resp = NULL;
    char eb[ERR_MAX], addr[CLIENT_ADDR_MAX];
    int rc;
    if (!r)
        return 1;
    snprintf(addr, sizeof addr, "%s", route_master(r, broker));
    cJSON_Delete(r);
    if (!addr[0])
        return fail(c, "broker %s has no master in the route of topic %s", broker, topic);
    if ((rc = pull(c, &bc, addr, TOOLS_GROUP, topic, qid, offset, 1, &resp)) != 0) {
        bconn_close(&bc);
        return rc;
    }
    bconn_close(&bc);
    if (resp->code != RESP_SUCCESS) {
        rc = fail(c, "no message at offset %lld of %s/%s/%d (%s; queue offsets %lld..%lld)",
                  (long long)offset, topic, broker, qid, resp_err(resp, addr, eb, sizeof eb),
                  (long long)ext_i64(resp, "minOffset", 0),
                  (long long)ext_i64(resp, "maxOffset", 0));
        rcmd_free(resp);
        return rc;
    }
    arr = cJSON_CreateArray();
    if (pulled_records(resp, broker, arr) != 0 || cJSON_GetArraySize(arr) < 1)
        rc = fail(c, "malformed message record from %s", addr);
    else if (c->json)
        print_json(cJSON_GetArrayItem(arr, 0));
    else
        print_record(cJSON_GetArrayItem(arr, 0));
    cJSON_Delete(arr);
    rcmd_free(resp);
    return rc;
}

struct consume_opts {
    const char *topic, *broker, *group;
    int qid;                   /* -1: every queue */
    int64_t offset;            /* -1: from the queue's min offset (or -s) */
    int64_t count, begin, end; /* begin/end 0: unbounded */
};

/* Read [@from, @to) of one queue, keeping the records stored in [begin, end]; at most *@left. */
static int consume_queue(const struct ctx *c, struct bconn *bc, const char *addr,
                         const struct consume_opts *o, const char *broker, int qid, int64_t from,
                         int64_t to, int64_t *left, cJSON *out)
{
    char eb[ERR_MAX];
    int64_t off = from;
    while (off<to && * left> 0) {
        struct rcmd *resp = NULL;
        int64_t want = to - off < PULL_MAX ? to - off : PULL_MAX, next;
        cJSON *recs, *e;
        if (pull(c, bc, addr, o->group, o->topic, qid, off, (int)want, &resp) != 0)
            return 1;
        next = ext_i64(resp, "nextBeginOffset", off);
        if (resp->code == RESP_PULL_NOT_FOUND ||
            ((resp->code == RESP_PULL_OFFSET_MOVED || resp->code == RESP_PULL_RETRY_IMMEDIATELY) &&
             next <= off)) {
            rcmd_free(resp);
            break; /* the end of the queue */
        }
        if (resp->code != RESP_SUCCESS && resp->code != RESP_PULL_OFFSET_MOVED &&
            resp->code != RESP_PULL_RETRY_IMMEDIATELY) {
            int rc = fail(c, "pull %s/%s/%d at %lld failed (%s)", o->topic, broker, qid,
                          (long long)off, resp_err(resp, addr, eb, sizeof eb));
            rcmd_free(resp);
            return rc;
        }
        recs = cJSON_CreateArray();
        if (resp->code == RESP_SUCCESS && pulled_records(resp, broker, recs) != 0) {
            cJSON_Delete(recs);
            rcmd_free(resp);
            return fail(c, "malformed message records from %s", addr);
        }
        while ((e = cJSON_DetachItemFromArray(recs, 0)) != NULL) {
            long long qo = jnum(e, "queueOffset"), st = jnum(e, "storeTimestamp");
            if (qo >= to || *left <= 0 || (o->begin > 0 && st < o->begin) ||
                (o->end > 0 && st > o->end)) {
                cJSON_Delete(e);
                continue;
            }
            cJSON_AddItemToArray(out, e);
            (*left)--;
        }
        cJSON_Delete(recs);
        rcmd_free(resp);
        if (next <= off)
            break;
        off = next;
    }
    return 0;
}

static int consume_on(const struct ctx *c, struct bconn *bc, const char *addr,
                      const struct consume_opts *o, const char *broker, int qid, int64_t *left,
                      cJSON *out)
{
    int64_t min, max, from, to;
    if (queue_offset(c, bc, addr, REQ_GET_MIN_OFFSET, o->topic, qid, 0, &min) != 0 ||
        queue_offset(c, bc, addr, REQ_GET_MAX_OFFSET, o->topic, qid, 0, &max) != 0)
        return 1;
    from = min;
    to = max;
    if (o->begin > 0 &&
        queue_offset(c, bc, addr, REQ_SEARCH_OFFSET_BY_TIMESTAMP, o->topic, qid, o->begin, &from))
        return 1;
    if (o->end > 0) {
        if (queue_offset(c, bc, addr, REQ_SEARCH_OFFSET_BY_TIMESTAMP, o->topic, qid, o->end, &to))
            return 1;
        to = to + 1 < max ? to + 1 : max; /* the nearest entry; later ones are filtered out */
    }
    if (o->offset >= 0 && o->offset > from)
        from = o->offset;
    return consume_queue(c, bc, addr, o, broker, qid, from, to, left, out);
}

static int cmd_consume_message(const struct ctx *c, const struct consume_opts *o)
{
    cJSON *r = get_route(c, o->topic), *out;
    struct bconn bc = {.cli = NULL};
    const cJSON *qd, *e;
    int64_t left = o->count;
    int rc = 0, queues = 0;
    if (!r)
        return 1;
    if (o->broker && !route_master(r, o->broker)[0]) {
        cJSON_Delete(r);
        return fail(c, "broker %s has no master in the route of topic %s", o->broker, o->topic);
    }
    out = cJSON_CreateArray();
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *broker = jstr(qd, "brokerName"), *addr = route_master(r, broker);
        int n = (int)jnum(qd, "readQueueNums");
        if ((o->broker && strcmp(o->broker, broker) != 0) || !addr[0] || !(jnum(qd, "perm") & 4))
            continue;
        for (int q = 0; q < n && rc == 0 && left > 0; q++) {
            if (o->qid >= 0 && q != o->qid)
                continue;
            queues++;
            rc = consume_on(c, &bc, addr, o, broker, q, &left, out);
        }
    }
    bconn_close(&bc);
    cJSON_Delete(r);
    if (rc == 0 && o->qid >= 0 && queues == 0)
        rc = fail(c, "topic %s has no readable queue %d on broker %s", o->topic, o->qid, o->broker);
    if (rc == 0 && c->json) {
        print_json(out);
    } else if (rc == 0) {
        printf("%-24s %-5s %-10s %-34s %-24s %-16s %s\n", "#Broker Name", "#QID", "#Offset",
               "#MsgId", "#StoreTime", "#Tags", "#Body");
        cJSON_ArrayForEach(e, out)
        {
            char tb[64];
            fmt_time(jnum(e, "storeTimestamp"), tb, sizeof tb);
            printf("%-24s %-5lld %-10lld %-34s %-24s %-16s %s\n", jstr(e, "brokerName"),
                   jnum(e, "queueId"), jnum(e, "queueOffset"), jstr(e, "msgId"), tb,
                   jstr(e, "tags"),
                   cJSON_GetObjectItemCaseSensitive(e, "body") ? jstr(e, "body") : "(compressed)");
        }
        printf("\n%d messages\n", cJSON_GetArraySize(out));
    }
    cJSON_Delete(out);
    return rc;
}

/* ---- resetOffsetByTime / resetOffsetByTimeOld ---- */

struct reset_opts {
    const char *group, *topic, *ts_str;
    int64_t ts; /* -1: the max offset ("now") */
    int force, cplus;
};

static void reset_entry(const cJSON *k, const cJSON *v, void *arg)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "topic", jstr(k, "topic"));
    cJSON_AddStringToObject(e, "brokerName", jstr(k, "brokerName"));
    cJSON_AddNumberToObject(e, "queueId", (double)jnum(k, "queueId"));
    cJSON_AddNumberToObject(e, "offset", cJSON_IsNumber(v) ? v->valuedouble : 0);
    cJSON_AddItemToArray(arg, e);
}

/* RocketMQ's resetOffsetByTimestampOld on one broker: the offsets of the group's queues of the
 * topic (GET_CONSUME_STATS, or when it has none the topic's min/max offsets), the offset of
 * the timestamp per queue (SEARCH_OFFSET_BY_TIMESTAMP, GET_MAX_OFFSET for -1), written with
 * UPDATE_CONSUMER_OFFSET when forced or when it moves the offset back. */
static int reset_old_on(const struct ctx *c, struct bconn *bc, const char *addr, const char *broker,
                        int read_queues, const struct reset_opts *o, cJSON *rows)
{
    cJSON *st = cJSON_CreateArray(), *e;
    char eb[ERR_MAX];
    int rc = consume_stats_on(c, bc, addr, o->group, NULL, o->topic, st, NULL);
    if (rc == 0 && cJSON_GetArraySize(st) == 0) {
        cJSON *ts = cJSON_CreateArray();
        if ((rc = topic_stats_on(c, o->topic, addr, ts)) == 0) {
            cJSON_ArrayForEach(e, ts)
            {
                cJSON *x;
                if (jnum(e, "queueId") >= read_queues)
                    continue;
                x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "topic", o->topic);
                cJSON_AddStringToObject(x, "brokerName", broker);
                cJSON_AddNumberToObject(x, "queueId", (double)jnum(e, "queueId"));
                cJSON_AddNumberToObject(x, "brokerOffset", (double)jnum(e, "maxOffset"));
                cJSON_AddNumberToObject(x, "consumerOffset", (double)jnum(e, "minOffset"));
                cJSON_AddItemToArray(st, x);
            }
        }
        cJSON_Delete(ts);
    }
    cJSON_ArrayForEach(e, st)
    {
        int qid = (int)jnum(e, "queueId");
        long long cur = jnum(e, "consumerOffset");
        int64_t to;
        cJSON *row;
        if (rc != 0)
            break;
        if ((rc = o->ts == -1 ? queue_offset(c, bc, addr, REQ_GET_MAX_OFFSET, o->topic, qid, 0, &to)
                              : queue_offset(c, bc, addr, REQ_SEARCH_OFFSET_BY_TIMESTAMP, o->topic,
                                             qid, o->ts, &to)) != 0)
            break;
        row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "topic", o->topic);
        cJSON_AddStringToObject(row, "brokerName", jstr(e, "brokerName"));
        cJSON_AddNumberToObject(row, "queueId", qid);
        cJSON_AddNumberToObject(row, "brokerOffset", (double)jnum(e, "brokerOffset"));
        cJSON_AddNumberToObject(row, "consumerOffset", (double)cur);
        cJSON_AddNumberToObject(row, "timestampOffset", (double)to);
        cJSON_AddNumberToObject(row, "offset", (double)(o->force || to <= cur ? to : cur));
        cJSON_AddItemToArray(rows, row);
        if (o->force || to <= cur) {
            struct rcmd req, *resp = NULL;
            rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
            rcmd_ext_add(&req, "consumerGroup", o->group);
            rcmd_ext_add(&req, "topic", o->topic);
            rcmd_ext_add_i64(&req, "queueId", qid);
            rcmd_ext_add_i64(&req, "commitOffset", to);
            if (bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0) {
                rc = fail(c, "update offset of %s/%d: %s", o->topic, qid, eb);
                break;
            }
            if (resp->code != RESP_SUCCESS)
                rc = fail(c, "update offset of group %s on %s/%d failed (%s)", o->group, o->topic,
                          qid, resp_err(resp, addr, eb, sizeof eb));
            rcmd_free(resp);
        }
    }
    cJSON_Delete(st);
    return rc;
}

/* INVOKE_BROKER_TO_RESET_OFFSET at @addr; CONSUMER_NOT_ONLINE falls back to reset_old_on(). */
static int reset_on(const struct ctx *c, struct bconn *bc, const char *addr, const char *broker,
                    int read_queues, const struct reset_opts *o, cJSON *rows)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, REQ_INVOKE_BROKER_TO_RESET_OFFSET);
    if (o->cplus)
        req.language = RCMD_LANG_CPP; /* the broker then sends the C++ body to the consumers */
    rcmd_ext_add(&req, "topic", o->topic);
    rcmd_ext_add(&req, "group", o->group);
    rcmd_ext_add_i64(&req, "timestamp", o->ts);
    rcmd_ext_add(&req, "isForce", o->force ? "true" : "false");
    if (bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0)
        return fail(c, "reset offset of group %s: %s", o->group, eb);
    if (resp->code == RESP_CONSUMER_NOT_ONLINE) {
        rcmd_free(resp);
        if (!c->json)
            printf("broker %s: consumer group %s is not online, resetting its offsets with "
                   "UPDATE_CONSUMER_OFFSET\n",
                   addr, o->group);
        return reset_old_on(c, bc, addr, broker, read_queues, o, rows);
    }
    if (resp->code != RESP_SUCCESS)
        rc = fail(c, "reset offset of group %s on topic %s failed (%s)", o->group, o->topic,
                  resp_err(resp, addr, eb, sizeof eb));
    else if (parse_mq_map(resp->body, resp->body_len, "offsetTable", reset_entry, rows) != 0)
        rc = fail(c, "malformed reset offset answer from %s", addr);
    rcmd_free(resp);
    return rc;
}

static int cmd_reset_offset(const struct ctx *c, const struct reset_opts *o, int old)
{
    cJSON *r = get_route(c, o->topic), *rows;
    struct bconn bc = {.cli = NULL};
    const cJSON *qd, *e;
    int rc = 0;
    if (!r)
        return 1;
    rows = cJSON_CreateArray();
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *broker = jstr(qd, "brokerName"), *addr = route_master(r, broker);
        int rq = (int)jnum(qd, "readQueueNums");
        if (!addr[0] || rc != 0)
            continue;
        rc = old ? reset_old_on(c, &bc, addr, broker, rq, o, rows)
                 : reset_on(c, &bc, addr, broker, rq, o, rows);
    }
    bconn_close(&bc);
    cJSON_Delete(r);
    if (rc == 0)
        sort_array(rows, cmp_mq);
    if (rc == 0 && c->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "group", o->group);
        cJSON_AddStringToObject(j, "topic", o->topic);
        cJSON_AddBoolToObject(j, "force", o->force);
        cJSON_AddNumberToObject(j, "timestamp", (double)o->ts);
        cJSON_AddItemToObject(j, "offsetTable", rows);
        rows = NULL;
        print_json(j);
        cJSON_Delete(j);
    } else if (rc == 0) {
        printf("rollback consumer offset by specified group[%s], topic[%s], force[%s], "
               "timestamp(string)[%s], timestamp(long)[%lld]\n",
               o->group, o->topic, o->force ? "true" : "false", o->ts_str, (long long)o->ts);
        if (old)
            printf("%-24s  %-8s  %-16s  %-16s  %-16s  %s\n", "#brokerName", "#queueId",
                   "#brokerOffset", "#consumerOffset", "#timestampOffset", "#rollbackOffset");
        else
            printf("%-24s  %-8s  %s\n", "#brokerName", "#queueId", "#offset");
        cJSON_ArrayForEach(e, rows)
        {
            if (old)
                printf("%-24s  %-8lld  %-16lld  %-16lld  %-16lld  %lld\n", jstr(e, "brokerName"),
                       jnum(e, "queueId"), jnum(e, "brokerOffset"), jnum(e, "consumerOffset"),
                       jnum(e, "timestampOffset"), jnum(e, "offset"));
            else
                printf("%-24s  %-8lld  %lld\n", jstr(e, "brokerName"), jnum(e, "queueId"),
                       jnum(e, "offset"));
        }
    }
    cJSON_Delete(rows);
    return rc;
}

/* ---- updateSubGroup ---- */

/* RocketMQ's SubscriptionGroupConfig (fastjson writes the keys sorted); the command's defaults
 * are Java's UpdateSubGroupSubCommand's (broadcast and from-min off). */
struct group_opts {
    const char *group, *broker, *cluster;
    int consume_enable, from_min, broadcast, notify;
    int retry_queues, retry_max;
    int64_t broker_id, slow_broker;
};

static int cmd_update_sub_group(const struct ctx *c, const struct group_opts *o)
{
    cJSON *ci, *body = cJSON_CreateObject();
    const char **addrs;
    char *text, eb[ERR_MAX];
    int rc = 0;
    cJSON_AddNumberToObject(body, "brokerId", (double)o->broker_id);
    cJSON_AddBoolToObject(body, "consumeBroadcastEnable", o->broadcast);
    cJSON_AddBoolToObject(body, "consumeEnable", o->consume_enable);
    cJSON_AddBoolToObject(body, "consumeFromMinEnable", o->from_min);
    cJSON_AddStringToObject(body, "groupName", o->group);
    cJSON_AddBoolToObject(body, "notifyConsumerIdsChangedEnable", o->notify);
    cJSON_AddNumberToObject(body, "retryMaxTimes", o->retry_max);
    cJSON_AddNumberToObject(body, "retryQueueNums", o->retry_queues);
    cJSON_AddNumberToObject(body, "whichBrokerWhenConsumeSlowly", (double)o->slow_broker);
    if (targets(c, o->broker, o->cluster, &ci, &addrs) != 0) {
        cJSON_Delete(ci);
        cJSON_Delete(body);
        return 1;
    }
    text = cJSON_PrintUnformatted(body);
    for (int i = 0; addrs[i] && rc == 0; i++) {
        struct rcmd req, *resp = NULL;
        rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP);
        req.body = (const uint8_t *)text;
        req.body_len = strlen(text);
        if (call(addrs[i], &req, &resp, eb, sizeof eb) != 0) {
            rc = fail(c, "subscription group %s: %s", o->group, eb);
            break;
        }
        if (resp->code != RESP_SUCCESS)
            rc = fail(c, "create subscription group %s failed (%s)", o->group,
                      resp_err(resp, addrs[i], eb, sizeof eb));
        else if (!c->json)
            printf("create subscription group to %s success.\n", addrs[i]);
        rcmd_free(resp);
    }
    if (rc == 0 && c->json) {
        cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "brokers");
        for (int i = 0; addrs[i]; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(addrs[i]));
        cJSON_AddItemToObject(j, "subscriptionGroupConfig", body);
        body = NULL;
        print_json(j);
        cJSON_Delete(j);
    } else if (rc == 0) {
        printf("%s\n", text);
    }
    free(text);
    if (ci)
        free(addrs);
    cJSON_Delete(ci);
    cJSON_Delete(body);
    return rc;
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
    {"consumerProgress", "n:g:t:", "-g group [-t topic] [-n namesrv]",
     "a consumer group's offsets and lag per queue", "g"},
    {"queryMsgByOffset", "n:t:b:i:o:", "-t topic -b brokerName -i queueId -o offset [-n namesrv]",
     "view the message at a queue offset", "tbio"},
    {"resetOffsetByTime", "n:g:t:s:f:c",
     "-g group -t topic -s now|<ms>|yyyy-MM-dd#HH:mm:ss:SSS [-f true|false] [-c] [-n namesrv]",
     "reset a consumer group's offsets to a time (consumers online or not)", "gts"},
    {"resetOffsetByTimeOld",
     "n:g:t:s:f:", "-g group -t topic -s <ms>|yyyy-MM-dd#HH:mm:ss:SSS [-f true|false] [-n namesrv]",
     "reset offsets with UPDATE_CONSUMER_OFFSET only (running consumers must restart)", "gts"},
    {"consumeMessage", "n:t:b:i:o:c:s:e:g:",
     "-t topic [-b brokerName [-i queueId [-o offset]]] [-c count] [-s beginTimestamp] "
     "[-e endTimestamp] [-g group] [-n namesrv]",
     "print a topic's messages (pulled, no offset commit)", "t"},
    {"updateSubGroup", "n:g:b:c:s:m:d:q:r:i:w:a:",
     "-g group (-b brokerAddr | -c cluster) [-s consumeEnable] [-m consumeFromMinEnable] "
     "[-d consumeBroadcastEnable] [-q retryQueueNums] [-r retryMaxTimes] [-i brokerId] "
     "[-w whichBrokerWhenConsumeSlowly] [-a notifyConsumerIdsChangedEnable] [-n namesrv]",
     "create or update a subscription group", "g"},
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

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* An optional true|false option @letter into *@out (left alone when absent). */
static int parse_bool(const char *const *val, int letter, int *out)
{
    const char *s = val[letter];
    if (!s)
        return 0;
    if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
        return -1;
    *out = strcmp(s, "true") == 0;
    return 0;
}

static int main_reset(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    int old = strcmp(cmd->name, "resetOffsetByTimeOld") == 0;
    struct reset_opts o = {val['g'], val['t'], val['s'], 0, 1, val['c'] != NULL};
    if (parse_ts(o.ts_str, !old, &o.ts) != 0)
        return usage(cmd,
                     "bad timestamp %s: expected now, milliseconds since the epoch or "
                     "yyyy-MM-dd#HH:mm:ss:SSS",
                     o.ts_str);
    if (parse_bool(val, 'f', &o.force) != 0)
        return usage(cmd, "%s", "-f must be true or false");
    return cmd_reset_offset(c, &o, old);
}

static int main_consume(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    struct consume_opts o = {val['t'], val['b'], val['g'] ? val['g'] : TOOLS_GROUP, -1, -1, 128,
                             0,        0};
    int64_t now = now_ms();
    if (val['i'] && !val['b'])
        return usage(cmd, "%s", "-i queueId needs -b brokerName");
    if (val['o'] && !val['i'])
        return usage(cmd, "%s", "-o offset needs -i queueId");
    if ((val['i'] && parse_int(val['i'], 0, 65535, &o.qid) != 0) ||
        (val['o'] && parse_i64(val['o'], 0, INT64_MAX, &o.offset) != 0) ||
        (val['c'] && parse_i64(val['c'], 1, INT64_MAX, &o.count) != 0))
        return usage(cmd, "%s", "-i must be a queue id, -o an offset, -c a positive count");
    if ((val['s'] && parse_ts(val['s'], 0, &o.begin) != 0) ||
        (val['e'] && parse_ts(val['e'], 0, &o.end) != 0))
        return usage(cmd, "%s",
                     "-s and -e must be milliseconds since the epoch or yyyy-MM-dd#HH:mm:ss:SSS");
    if (o.begin > now || o.end > now)
        return usage(cmd, "%s", "-s and -e must not be in the future");
    if (val['e'] && o.begin > o.end)
        return usage(cmd, "%s", "-s beginTimestamp must not be after -e endTimestamp");
    return cmd_consume_message(c, &o);
}

static int main_sub_group(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    struct group_opts o = {val['g'], val['b'], val['c'], 1, 0, 0, 1, 1, 16, 0, 1};
    if (!o.cluster == !o.broker)
        return usage(cmd, "%s", "give exactly one of -c cluster and -b brokerAddr");
    if (parse_bool(val, 's', &o.consume_enable) != 0 || parse_bool(val, 'm', &o.from_min) != 0 ||
        parse_bool(val, 'd', &o.broadcast) != 0 || parse_bool(val, 'a', &o.notify) != 0)
        return usage(cmd, "%s", "-s, -m, -d and -a must be true or false");
    if ((val['q'] && parse_int(val['q'], 0, 1024, &o.retry_queues) != 0) ||
        (val['r'] && parse_int(val['r'], -1, INT32_MAX, &o.retry_max) != 0) ||
        (val['i'] && parse_i64(val['i'], 0, INT32_MAX, &o.broker_id) != 0) ||
        (val['w'] && parse_i64(val['w'], 0, INT32_MAX, &o.slow_broker) != 0))
        return usage(cmd, "%s", "-q must be 0..1024, -r -1.., -i and -w broker ids (0..)");
    return cmd_update_sub_group(c, &o);
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
            val[ch] = optarg ? optarg : "true"; /* a flag (resetOffsetByTime -c) */
    }
    if (optind < argc - 1)
        return usage(cmd, "unexpected argument %s", argv[optind + 1]);
    for (const char *r = cmd->required; *r; r++)
        if (!val[(unsigned char)*r])
            return usage(cmd, "option -%s is required", (char[]){*r, 0});
    c.ns = val['n'] ? val['n'] : getenv("NAMESRV_ADDR");
    if (!c.ns || !c.ns[0]) {
        if (strcmp(cmd->name, "brokerStatus") != 0 && strcmp(cmd->name, "queryMsgById") != 0 &&
            !((strcmp(cmd->name, "consumerConnection") == 0 ||
               strcmp(cmd->name, "updateSubGroup") == 0) &&
              val['b']))
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
    if (strcmp(cmd->name, "consumerProgress") == 0)
        return cmd_consumer_progress(&c, val['g'], val['t']);
    if (strcmp(cmd->name, "queryMsgByOffset") == 0) {
        int qid;
        int64_t off;
        if (parse_int(val['i'], 0, 65535, &qid) != 0 || parse_i64(val['o'], 0, INT64_MAX, &off))
            return usage(cmd, "%s", "-i must be a queue id and -o an offset (numbers >= 0)");
        return cmd_query_by_offset(&c, val['t'], val['b'], qid, off);
    }
    if (strncmp(cmd->name, "resetOffsetByTime", 17) == 0)
        return main_reset(cmd, &c, val);
    if (strcmp(cmd->name, "consumeMessage") == 0)
        return main_consume(cmd, &c, val);
    if (strcmp(cmd->name, "updateSubGroup") == 0)
        return main_sub_group(cmd, &c, val);
    struct ferry_message m = {.topic = val['t'],
                              .tags = val['c'],
                              .keys = val['k'],
                              .body = val['p'],
                              .body_len = strlen(val['p'])};
    if (m.body_len == 0)
        return usage(cmd, "%s", "-p body must not be empty");
    return cmd_send(&c, &m);
}
