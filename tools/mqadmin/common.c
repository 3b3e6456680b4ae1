/* mqadmin's shared helpers: failure messages, connections and requests (one short-lived
 * connection per request, or one kept per broker by struct bconn), the name server lookups
 * several subcommands need, JSON helpers, and stored records (as returned by pulls,
 * QUERY_MESSAGE and VIEW_MESSAGE_BY_ID) decoded into JSON objects and printed. */
#include "mqadmin.h"

#include "common/bytes.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int adm_fail(const struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(c->err, "mqadmin: %s: ", c->cmd);
    va_start(ap, fmt);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fputc('\n', c->err);
    return 1;
}

const char *adm_code_name(int32_t code)
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
const char *adm_resp_err(const struct rcmd *resp, const char *addr, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s (%d) from %s", adm_code_name(resp->code), (int)resp->code, addr);
    if (resp->remark.p && resp->remark.len && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ": %.*s", (int)resp->remark.len, resp->remark.p);
    return buf;
}

void adm_bconn_close(struct bconn *bc)
{
    remoting_client_free(bc->cli);
    bc->cli = NULL;
    bc->addr[0] = 0;
}

/* adm_set_addr_filter(): which addresses this thread's commands may connect to. */
static _Thread_local int (*addr_filter)(void *arg, const char *addr);
static _Thread_local void *addr_filter_arg;

void adm_set_addr_filter(int (*fn)(void *arg, const char *addr), void *arg)
{
    addr_filter = fn;
    addr_filter_arg = arg;
}

static int addr_allowed(const char *addr)
{
    return !addr_filter || addr_filter(addr_filter_arg, addr);
}

/* One request to @addr over @bc. Returns 0 (*@resp set; any response code) or nonzero with
 * @err filled (the connection is then closed). */
int adm_bcall(struct bconn *bc, const char *addr, const struct rcmd *req, struct rcmd **resp,
              char *err, size_t errlen)
{
    struct remoting_client_config cfg;
    char cerr[256] = "";
    int rc;
    if (bc->cli && strcmp(bc->addr, addr) != 0)
        adm_bconn_close(bc);
    if (!bc->cli && !addr_allowed(addr)) {
        snprintf(err, errlen,
                 "%s is not a name server or a broker of this cluster (the dashboard connects "
                 "to those only)",
                 addr);
        return FERRY_EINVAL;
    }
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
            adm_bconn_close(bc);
            return rc;
        }
        snprintf(bc->addr, sizeof bc->addr, "%s", addr);
    }
    if ((rc = remoting_client_invoke_sync(bc->cli, req, TIMEOUT_MS, resp)) != 0) {
        snprintf(err, errlen, "request %d to %s: %s", (int)req->code, addr, ferry_strerror(rc));
        adm_bconn_close(bc);
    }
    return rc;
}

/* One request to @addr on a new connection. Returns 0 (*@resp set; any response code) or
 * nonzero with @err filled. */
int adm_call(const char *addr, const struct rcmd *req, struct rcmd **resp, char *err, size_t errlen)
{
    struct bconn bc = {.cli = NULL};
    int rc = adm_bcall(&bc, addr, req, resp, err, errlen);
    adm_bconn_close(&bc);
    return rc;
}

/* Send @req to the first name server that answers; its address goes to @used. */
int adm_ns_call(const struct ctx *c, const struct rcmd *req, struct rcmd **resp, char *used,
                size_t usedlen, char *err, size_t errlen)
{
    char list[1024];
    char *save = NULL;
    int rc = -1;
    snprintf(list, sizeof list, "%s", c->ns);
    snprintf(err, errlen, "no name server address");
    for (char *a = strtok_r(list, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
        if ((rc = adm_call(a, req, resp, err, errlen)) == 0) {
            snprintf(used, usedlen, "%s", a);
            return 0;
        }
    }
    return rc ? rc : -1;
}

/* ---- JSON ---- */

/* The body of a SUCCESS response parsed as JSON; NULL (message printed) otherwise. */
cJSON *adm_json_body(const struct ctx *c, const struct rcmd *resp, const char *addr,
                     const char *what)
{
    char eb[ERR_MAX];
    cJSON *j;
    if (resp->code != RESP_SUCCESS) {
        adm_fail(c, "%s failed (%s)", what, adm_resp_err(resp, addr, eb, sizeof eb));
        return NULL;
    }
    j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
    if (!j)
        adm_fail(c, "%s: malformed JSON answer from %s", what, addr);
    return j;
}

void adm_print_json(const struct ctx *c, cJSON *j)
{
    char *s = cJSON_Print(j);
    fputs(s ? s : "null", c->out);
    fputc('\n', c->out);
    free(s);
}

const char *adm_jstr(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : "";
}

long long adm_jnum(const cJSON *o, const char *key)
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
cJSON *adm_get_route_or(const struct ctx *c, const char *topic, int *missing)
{
    struct rcmd req, *resp = NULL;
    char addr[256], eb[ERR_MAX];
    cJSON *j = NULL;
    rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "acceptStandardJsonOnly", "true");
    if (adm_ns_call(c, &req, &resp, addr, sizeof addr, eb, sizeof eb) != 0) {
        adm_fail(c, "route of topic %s: %s", topic, eb);
        return NULL;
    }
    if (resp->code == RESP_TOPIC_NOT_EXIST && missing)
        *missing = 1;
    else if (resp->code == RESP_TOPIC_NOT_EXIST)
        adm_fail(c, "no route for topic %s (TOPIC_NOT_EXIST from %s)", topic, addr);
    else
        j = adm_json_body(c, resp, addr, "route lookup");
    rcmd_free(resp);
    return j;
}

cJSON *adm_get_route(const struct ctx *c, const char *topic)
{
    return adm_get_route_or(c, topic, NULL);
}

/* The master address of @broker in a route, or "". */
const char *adm_route_master(const cJSON *route, const char *broker)
{
    const cJSON *bd;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(route, "brokerDatas"))
    {
        if (strcmp(adm_jstr(bd, "brokerName"), broker) == 0)
            return adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
    }
    return "";
}

cJSON *adm_get_cluster(const struct ctx *c)
{
    struct rcmd req, *resp = NULL;
    char addr[256], eb[ERR_MAX];
    cJSON *j;
    rcmd_init_request(&req, REQ_GET_BROKER_CLUSTER_INFO);
    rcmd_ext_add(&req, "acceptStandardJsonOnly", "true");
    if (adm_ns_call(c, &req, &resp, addr, sizeof addr, eb, sizeof eb) != 0) {
        adm_fail(c, "cluster info: %s", eb);
        return NULL;
    }
    j = adm_json_body(c, resp, addr, "cluster info");
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
        return adm_fail(c, "cluster %s not found", cluster);
    *out = calloc((size_t)cJSON_GetArraySize(names) + 1, sizeof **out);
    cJSON_ArrayForEach(n, names)
    {
        const cJSON *bd = cJSON_GetObjectItemCaseSensitive(bt, cJSON_GetStringValue(n));
        const char *a = adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        if (a[0])
            (*out)[k++] = a;
    }
    if (k == 0) {
        free(*out);
        return adm_fail(c, "cluster %s has no master broker", cluster);
    }
    return 0;
}

/* The target brokers: -b, or every master of -c. *@ci keeps the strings alive; on 0 the
 * caller frees *@addrs (free()) and deletes *@ci (may be NULL). */
int adm_targets(const struct ctx *c, const char *broker, const char *cluster, cJSON **ci,
                const char ***addrs)
{
    *ci = NULL;
    if (broker) {
        *addrs = calloc(2, sizeof **addrs);
        (*addrs)[0] = broker;
        return 0;
    }
    if (!(*ci = adm_get_cluster(c)))
        return 1;
    return cluster_masters(c, *ci, cluster, addrs);
}

/* The map @field of a body whose keys are MessageQueue objects, as fastjson writes them (not
 * JSON: GET_TOPIC_STATS_INFO, GET_CONSUME_STATS, ResetOffsetBody): parsed key by key with cJSON,
 * calling @fn with each key and value. 0, or -1 when the body is malformed. */
int adm_parse_mq_map(const uint8_t *raw, size_t len, const char *field,
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

void adm_fmt_time(long long ms, char *buf, size_t cap)
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

/* ---- stored records ---- */

static void host_str(const uint8_t *p, int v6, char *buf, size_t cap)
{
    char ip[64];
    inet_ntop(v6 ? AF_INET6 : AF_INET, p, ip, sizeof ip);
    snprintf(buf, cap, "%s:%u", ip, (unsigned)be32_get(p + (v6 ? 16 : 4)));
}

void adm_prop_str(const struct msg_view *v, const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    const char *s = msg_prop_get(v->props, v->props_len, name, &n);
    snprintf(buf, cap, "%.*s", s ? (int)n : 0, s ? s : "");
}

/* Whether @len bytes at @p are text: valid UTF-8 without NUL or control bytes other than
 * tab, CR and LF. */
int adm_is_text(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t ch = p[i];
        size_t n = 0; /* the length of the UTF-8 sequence */
        if (ch < 0x80)
            n = 1;
        else if ((ch & 0xE0) == 0xC0)
            n = 2;
        else if ((ch & 0xF0) == 0xE0)
            n = 3;
        else if ((ch & 0xF8) == 0xF0)
            n = 4;
        if (n == 0 || i + n > len || (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') ||
            ch == 0x7f || (n == 2 && ch < 0xC2))
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}

#define HEX_MAX 4096 /* bodyHex: at most this many bytes of a binary body */

static void add_hex(cJSON *o, const char *name, const uint8_t *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = malloc(2 * len + 1);
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 15];
    }
    hex[2 * len] = 0;
    cJSON_AddStringToObject(o, name, hex);
    free(hex);
}

/* Every property of a record as {"name": "value"}. */
static cJSON *record_props(const struct msg_view *v)
{
    cJSON *props = cJSON_CreateObject();
    const char *p = v->props, *end = v->props + v->props_len;
    while (p < end) {
        const char *pe = memchr(p, PROP_PAIR_SEP, (size_t)(end - p));
        const char *ns;
        if (!pe)
            pe = end;
        ns = memchr(p, PROP_NAME_SEP, (size_t)(pe - p));
        if (ns && ns > p) {
            char name[256], *val = strndup(ns + 1, (size_t)(pe - ns - 1));
            snprintf(name, sizeof name, "%.*s", (int)(ns - p), p);
            cJSON_AddStringToObject(props, name, val ? val : "");
            free(val);
        }
        p = pe + 1;
    }
    return props;
}

/* One stored record as a JSON object: its fields, "body" (unless compressed; with "bodyHex",
 * the first HEX_MAX bytes in hex, when it is not text) and every property. */
/* adm_set_body_max(): bodies longer are cut in the JSON of this thread's records. */
static _Thread_local size_t body_max = SIZE_MAX;

void adm_set_body_max(size_t max)
{
    body_max = max ? max : SIZE_MAX;
}

cJSON *adm_record_json(const struct msg_view *v)
{
    char buf[1024], host[80];
    int born6 = (v->sys_flag & SYSFLAG_BORNHOST_V6) != 0;
    int store6 = (v->sys_flag & SYSFLAG_STOREHOST_V6) != 0;
    const uint8_t *store = v->rec + v->store_ts_off + 8;
    cJSON *o = cJSON_CreateObject();
    snprintf(buf, sizeof buf, "%.*s", (int)v->topic_len, v->topic);
    cJSON_AddStringToObject(o, "topic", buf);
    adm_prop_str(v, "UNIQ_KEY", buf, sizeof buf);
    cJSON_AddStringToObject(o, "msgId", buf);
    /* The offset msgId (§3.5, IPv4 store hosts). */
    if (!store6) {
        snprintf(buf, sizeof buf, "%02X%02X%02X%02X%08X%016" PRIX64, store[0], store[1], store[2],
                 store[3], (unsigned)be32_get(store + 4), (uint64_t)v->phys_offset);
        cJSON_AddStringToObject(o, "offsetMsgId", buf);
    }
    adm_prop_str(v, "TAGS", buf, sizeof buf);
    cJSON_AddStringToObject(o, "tags", buf);
    adm_prop_str(v, "KEYS", buf, sizeof buf);
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
        size_t len = v->body_len < body_max ? v->body_len : body_max;
        char *body = strndup((const char *)v->body, len);
        cJSON_AddStringToObject(o, "body", body);
        free(body);
        if (len < v->body_len)
            cJSON_AddBoolToObject(o, "bodyTruncated", 1);
        if (!adm_is_text(v->body, len))
            add_hex(o, "bodyHex", v->body, len < HEX_MAX ? len : HEX_MAX);
    }
    cJSON_AddItemToObject(o, "properties", record_props(v));
    return o;
}

/* Append the records of @body to @arr (keeping those whose topic is @topic and that carry @key
 * in KEYS or UNIQ_KEY, when given). */
int adm_add_records(const uint8_t *body, size_t len, const char *topic, const char *key, cJSON *arr)
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
            adm_prop_str(&v, "UNIQ_KEY", uniq, sizeof uniq);
            adm_prop_str(&v, "KEYS", keys, sizeof keys);
            hit = strcmp(uniq, key) == 0;
            for (char *k = strtok_r(keys, " ", &save); k && !hit; k = strtok_r(NULL, " ", &save))
                hit = strcmp(k, key) == 0;
            if (!hit)
                continue;
        }
        cJSON_AddItemToArray(arr, adm_record_json(&v));
    }
    return 0;
}

void adm_print_record(const struct ctx *c, const cJSON *o)
{
    static const char *const keys[] = {
        "topic",          "msgId",         "offsetMsgId",    "tags",
        "keys",           "queueId",       "queueOffset",    "commitLogOffset",
        "reconsumeTimes", "bornTimestamp", "storeTimestamp", "bornHost",
        "storeHost",      "sysFlag",       "bodyLength",     "body"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (cJSON_IsString(f))
            fprintf(c->out, "%-20s %s\n", keys[i], f->valuestring);
        else if (cJSON_IsNumber(f))
            fprintf(c->out, "%-20s %.0f\n", keys[i], f->valuedouble);
    }
}

int adm_decode_offset_id(const char *id, char *addr, size_t cap, int64_t *phys)
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

/* ---- queues ---- */

/* A request answered with an "offset" field (GET_MIN/MAX_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP;
 * @ts only for the search). 0, or 1 with a message printed. */
int adm_queue_offset(const struct ctx *c, struct bconn *bc, const char *addr, int32_t code,
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
    if (adm_bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "queue %s/%d: %s", topic, qid, eb);
    if (resp->code != RESP_SUCCESS || rcmd_ext_get_i64(resp, "offset", out) != 0)
        rc = adm_fail(c, "offset request %d for queue %s/%d failed (%s)", (int)code, topic, qid,
                      adm_resp_err(resp, addr, eb, sizeof eb));
    rcmd_free(resp);
    return rc;
}

/* PULL_MESSAGE as RocketMQ's tools pull: subscription "*" in the request, no commit, no
 * suspend. The caller frees *@resp. 0, or 1 with a message printed. */
int adm_pull(const struct ctx *c, struct bconn *bc, const char *addr, const char *group,
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
    if (adm_bcall(bc, addr, &req, resp, eb, sizeof eb) != 0)
        return adm_fail(c, "pull %s/%d at %lld: %s", topic, qid, (long long)offset, eb);
    return 0;
}

int64_t adm_ext_i64(const struct rcmd *resp, const char *key, int64_t def)
{
    int64_t v;
    return rcmd_ext_get_i64(resp, key, &v) == 0 ? v : def;
}

/* Order of RocketMQ's MessageQueue.compareTo: topic, broker name, queue id. */
int adm_cmp_mq(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int r = strcmp(adm_jstr(x, "topic"), adm_jstr(y, "topic"));
    if (!r)
        r = strcmp(adm_jstr(x, "brokerName"), adm_jstr(y, "brokerName"));
    return r ? r
             : (adm_jnum(x, "queueId") > adm_jnum(y, "queueId")) -
                   (adm_jnum(x, "queueId") < adm_jnum(y, "queueId"));
}

/* Sort the objects of @arr in place with @cmp. */
void adm_sort_array(cJSON *arr, int (*cmp)(const void *, const void *))
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
void adm_addr_add(const char **addrs, int cap, const char *addr)
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

void adm_route_masters(const cJSON *route, const char **addrs, int cap)
{
    const cJSON *bd;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(route, "brokerDatas"))
    {
        adm_addr_add(addrs, cap,
                     adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0"));
    }
}

/* The records of a FOUND pull answer as JSON objects (with "brokerName") in @arr. */
int adm_pulled_records(const struct rcmd *resp, const char *broker, cJSON *arr)
{
    cJSON *tmp = cJSON_CreateArray(), *e;
    int rc = adm_add_records(resp->body, resp->body_len, NULL, NULL, tmp);
    while (rc == 0 && (e = cJSON_DetachItemFromArray(tmp, 0)) != NULL) {
        cJSON_AddStringToObject(e, "brokerName", broker);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_Delete(tmp);
    return rc;
}
