/* The name server's request handlers (Java DefaultRequestProcessor, REMOTING.md §2.3): one
 * function per request code, each reading its extFields, calling the route or KV table and
 * answering at once (KV writes are answered by the KV writer after the file is written).
 *
 * Errors follow Java 4.9.8: a missing required field is SYSTEM_ERROR "the custom field <x> is
 * null"; a register body with a bad CRC is SYSTEM_ERROR "crc32 not match"; an undecodable body
 * is SYSTEM_ERROR with the reason; an unknown topic is TOPIC_NOT_EXIST; a missing KV item is
 * QUERY_NOT_FOUND. Codes without a handler get REQUEST_CODE_NOT_SUPPORTED from the remoting
 * layer (Java's name server would not answer at all, §1.7).
 *
 * @thread the connection's I/O thread. */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/crc.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define V4_9_4 401 /* MQVersion ordinal (REMOTING.md §1.8) */

#define NS_ORDER_TOPIC_CONFIG "ORDER_TOPIC_CONFIG"
#define TOPIC_NOT_EXIST_TIP   "\nSee http://rocketmq.apache.org/docs/faq/ for further details."

/* ---- answering -------------------------------------------------------------------------- */

static void respond(conn_t *conn, const struct rcmd *req, int32_t code, const char *remark)
{
    struct rcmd resp;
    rcmd_init_response(&resp, req, code, remark);
    remoting_respond(conn, &resp);
}

/* Hand the body of @b (if any) to @resp; @b is left empty. */
static void give_body(struct rcmd *resp, struct jbuf *b)
{
    if (b->len == 0) {
        jb_free(b);
        return;
    }
    resp->body = (const uint8_t *)b->p;
    resp->body_len = b->len;
    resp->body_release = ferry_free;
    resp->body_ctx = b->p;
    jb_init(b);
}

static void respond_body(conn_t *conn, const struct rcmd *req, struct jbuf *b)
{
    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    give_body(&resp, b);
    remoting_respond(conn, &resp);
}

/* ---- reading extFields ------------------------------------------------------------------ */

/* The value of @key as a new string; NULL when absent or empty (REMOTING.md §1.4 rule 5). */
static char *ext_dup(const struct rcmd *req, const char *key)
{
    const struct rstr *v = rcmd_ext_get(req, key);
    if (!v || v->len == 0)
        return NULL;
    char *s = ferry_malloc(v->len + 1);
    memcpy(s, v->p, v->len);
    s[v->len] = 0;
    return s;
}

/* A required string field: 0, or -1 after answering SYSTEM_ERROR. */
static int need_str(conn_t *conn, const struct rcmd *req, const char *key, char **out)
{
    char remark[128];
    *out = ext_dup(req, key);
    if (*out)
        return 0;
    snprintf(remark, sizeof remark, "the custom field <%s> is null", key);
    respond(conn, req, RESP_SYSTEM_ERROR, remark);
    return -1;
}

/* A required integer field: 0, or -1 after answering SYSTEM_ERROR. */
static int need_long(conn_t *conn, const struct rcmd *req, const char *key, int64_t *out)
{
    char remark[128];
    int rc = rcmd_ext_get_i64(req, key, out);
    if (rc == 0)
        return 0;
    snprintf(remark, sizeof remark,
             rc == FERRY_ENOTFOUND ? "the custom field <%s> is null"
                                   : "the custom field <%s> is not an integer",
             key);
    respond(conn, req, RESP_SYSTEM_ERROR, remark);
    return -1;
}

static int ext_true(const struct rcmd *req, const char *key)
{
    const struct rstr *v = rcmd_ext_get(req, key);
    return v && v->len == 4 && strncasecmp(v->p, "true", 4) == 0;
}

/* brokerName, brokerAddr, clusterName, brokerId: all required. */
struct broker_args {
    char *name, *addr, *cluster;
    struct broker_id id;
};

static void broker_args_free(struct broker_args *a)
{
    ferry_free(a->name);
    ferry_free(a->addr);
    ferry_free(a->cluster);
}

static int need_broker(conn_t *conn, const struct rcmd *req, struct broker_args *a)
{
    memset(a, 0, sizeof *a);
    if (need_str(conn, req, "brokerName", &a->name) ||
        need_str(conn, req, "brokerAddr", &a->addr) ||
        need_str(conn, req, "clusterName", &a->cluster) ||
        need_long(conn, req, "brokerId", &a->id.id)) {
        broker_args_free(a);
        return -1;
    }
    a->id.name = a->name;
    a->id.addr = a->addr;
    a->id.cluster = a->cluster;
    return 0;
}

/* ---- KV config: 100, 101, 102, 219 ------------------------------------------------------ */

static void put_kv_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *n = NULL, *k = NULL, *v = NULL;
    if (!need_str(conn, req, "namespace", &n) && !need_str(conn, req, "key", &k) &&
        !need_str(conn, req, "value", &v))
        kv_write(ns->kv, n, k, v, conn, req);
    ferry_free(n);
    ferry_free(k);
    ferry_free(v);
}

static void get_kv_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *n = NULL, *k = NULL, *v;
    if (need_str(conn, req, "namespace", &n) || need_str(conn, req, "key", &k))
        goto out;
    if ((v = kv_get(ns->kv, n, k)) != NULL) {
        struct rcmd resp;
        rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
        rcmd_ext_add(&resp, "value", v);
        remoting_respond(conn, &resp);
        ferry_free(v);
    } else {
        char *remark = ferry_malloc(strlen(n) + strlen(k) + 64);
        sprintf(remark, "No config item, Namespace: %s Key: %s", n, k);
        respond(conn, req, RESP_QUERY_NOT_FOUND, remark);
        ferry_free(remark);
    }
out:
    ferry_free(n);
    ferry_free(k);
}

static void delete_kv_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *n = NULL, *k = NULL;
    if (!need_str(conn, req, "namespace", &n) && !need_str(conn, req, "key", &k))
        kv_write(ns->kv, n, k, NULL, conn, req);
    ferry_free(n);
    ferry_free(k);
}

static void get_kv_list(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *n;
    struct jbuf b;
    if (need_str(conn, req, "namespace", &n))
        return;
    jb_init(&b);
    if (kv_list_json(ns->kv, n, &b) == 0) {
        respond_body(conn, req, &b);
    } else {
        char *remark = ferry_malloc(strlen(n) + 64);
        sprintf(remark, "No config item, Namespace: %s", n);
        respond(conn, req, RESP_QUERY_NOT_FOUND, remark);
        ferry_free(remark);
    }
    jb_free(&b);
    ferry_free(n);
}

/* ---- brokers: 103, 104, 322 ------------------------------------------------------------- */

static void register_broker(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct broker_args a;
    struct reg_body body;
    struct reg_result res = {0};
    struct jbuf b;
    char *ha = NULL, err[256], remark[320];
    int64_t crc = 0;

    memset(&body, 0, sizeof body);
    jb_init(&b);
    if (need_broker(conn, req, &a))
        return;
    /* Required as in Java, but "" is a value there (a broker without HA), not null. */
    if (rcmd_ext_get(req, "haServerAddr") == NULL) {
        respond(conn, req, RESP_SYSTEM_ERROR, "the custom field <haServerAddr> is null");
        goto out;
    }
    if ((ha = ext_dup(req, "haServerAddr")) == NULL)
        ha = ferry_strdup("");
    if (rcmd_ext_get_i64(req, "bodyCrc32", &crc) == FERRY_EINVAL) {
        respond(conn, req, RESP_SYSTEM_ERROR, "the custom field <bodyCrc32> is not an integer");
        goto out;
    }
    /* The masked CRC is never negative; compare as Java's int does. */
    if ((int32_t)crc != 0 && (int32_t)crc32_masked(req->body, req->body_len) != (int32_t)crc) {
        log_warn(LOG_NAMESRV, "register broker %s from %s: crc32 not match", a.addr,
                 remoting_conn_peer(conn));
        respond(conn, req, RESP_SYSTEM_ERROR, "crc32 not match");
        goto out;
    }
    if (req->body_len == 0) {
        body.dv.counter = body.dv.timestamp = 0;
    } else if (reg_body_decode(req->body, req->body_len, ext_true(req, "compressed"), &body, err,
                               sizeof err) != 0) {
        snprintf(remark, sizeof remark, "Failed to decode RegisterBrokerBody: %s", err);
        log_warn(LOG_NAMESRV, "register broker %s from %s: %s", a.addr, remoting_conn_peer(conn),
                 remark);
        respond(conn, req, RESP_SYSTEM_ERROR, remark);
        goto out;
    }
    route_register(ns->rt, &a.id, ha, &body, conn, clock_mono_ms(), &res);

    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    if (res.ha_addr)
        rcmd_ext_add(&resp, "haServerAddr", res.ha_addr);
    if (res.master_addr)
        rcmd_ext_add(&resp, "masterAddr", res.master_addr);
    if (kv_list_json(ns->kv, NS_ORDER_TOPIC_CONFIG, &b) == 0)
        give_body(&resp, &b);
    remoting_respond(conn, &resp);
out:
    reg_result_clear(&res);
    reg_body_clear(&body);
    jb_free(&b);
    ferry_free(ha);
    broker_args_free(&a);
}

static void unregister_broker(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct broker_args a;
    if (need_broker(conn, req, &a))
        return;
    route_unregister(ns->rt, &a.id);
    respond(conn, req, RESP_SUCCESS, NULL);
    broker_args_free(&a);
}

static void query_data_version(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct broker_args a;
    struct data_version dv, stored;
    struct jbuf b;
    char err[256], remark[320];
    int changed;

    if (need_broker(conn, req, &a))
        return;
    if (req->body_len == 0 || data_version_decode(req->body, req->body_len, &dv, err, sizeof err)) {
        snprintf(remark, sizeof remark, "QUERY_DATA_VERSION needs the broker's DataVersion: %s",
                 req->body_len == 0 ? "no body" : err);
        respond(conn, req, RESP_SYSTEM_ERROR, remark);
        broker_args_free(&a);
        return;
    }
    jb_init(&b);
    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    if (route_query_version(ns->rt, a.addr, &dv, clock_mono_ms(), &changed, &stored)) {
        data_version_json(&stored, &b);
        give_body(&resp, &b);
    }
    rcmd_ext_add(&resp, "changed", changed ? "true" : "false");
    remoting_respond(conn, &resp);
    broker_args_free(&a);
}

/* ---- routes and lists: 105, 106, 206, 224, 304, 311-313 --------------------------------- */

static void get_route(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *topic, *order = NULL;
    struct jbuf b;
    if (need_str(conn, req, "topic", &topic))
        return;
    int standard = req->version >= V4_9_4 || ext_true(req, "acceptStandardJsonOnly") ||
                   ns->cfg.routeJsonAlwaysStandard;
    if (ns->cfg.orderMessageEnable)
        order = kv_get(ns->kv, NS_ORDER_TOPIC_CONFIG, topic);
    jb_init(&b);
    if (route_topic_json(ns->rt, topic, order, standard, &b) == 0) {
        respond_body(conn, req, &b);
    } else {
        char *remark = ferry_malloc(strlen(topic) + 128);
        sprintf(remark, "No topic route info in name server for the topic: %s" TOPIC_NOT_EXIST_TIP,
                topic);
        respond(conn, req, RESP_TOPIC_NOT_EXIST, remark);
        ferry_free(remark);
    }
    jb_free(&b);
    ferry_free(order);
    ferry_free(topic);
}

static void get_cluster_info(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct jbuf b;
    jb_init(&b);
    /* Java always writes the fastjson form here; a client may opt in to standard JSON with the
     * same field it uses for routes (no Java client sends it, so nothing changes for them). */
    route_cluster_json(
        ns->rt, ns->cfg.routeJsonAlwaysStandard || ext_true(req, "acceptStandardJsonOnly"), &b);
    respond_body(conn, req, &b);
}

static void get_all_topics(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct jbuf b;
    jb_init(&b);
    route_topics_json(ns->rt, &b);
    respond_body(conn, req, &b);
}

static void get_topics_by_cluster(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *cluster;
    struct jbuf b;
    if (need_str(conn, req, "cluster", &cluster))
        return;
    jb_init(&b);
    route_cluster_topics_json(ns->rt, cluster, &b);
    respond_body(conn, req, &b);
    ferry_free(cluster);
}

static void get_system_topics(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct jbuf b;
    jb_init(&b);
    route_system_topics_json(ns->rt, &b);
    respond_body(conn, req, &b);
}

static void get_unit_topics(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct jbuf b;
    jb_init(&b);
    route_unit_topics_json(ns->rt, req->code - REQ_GET_UNIT_TOPIC_LIST, &b);
    respond_body(conn, req, &b);
}

/* ---- admin: 205, 327, 216, 319 ---------------------------------------------------------- */

static void write_perm(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    int add = req->code == REQ_ADD_WRITE_PERM_OF_BROKER;
    char *name;
    if (need_str(conn, req, "brokerName", &name))
        return;
    int n = route_write_perm(ns->rt, name, add);
    log_info(LOG_NAMESRV, "%s write perm of broker %s, client %s: %d topics", add ? "add" : "wipe",
             name, remoting_conn_peer(conn), n);
    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    rcmd_ext_add_i64(&resp, add ? "addTopicCount" : "wipeTopicCount", n);
    remoting_respond(conn, &resp);
    ferry_free(name);
}

static void delete_topic(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    char *topic, *cluster;
    if (need_str(conn, req, "topic", &topic))
        return;
    cluster = ext_dup(req, "clusterName");
    route_delete_topic(ns->rt, topic, cluster);
    log_info(LOG_NAMESRV, "topic %s deleted%s%s by %s", topic, cluster ? " from cluster " : "",
             cluster ? cluster : "", remoting_conn_peer(conn));
    respond(conn, req, RESP_SUCCESS, NULL);
    ferry_free(cluster);
    ferry_free(topic);
}

static void get_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    namesrv_t *ns = arg;
    struct jbuf b;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        respond(conn, req, RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    /* A copy with the secrets masked: whoever asks must not learn the TLS key's password. */
    struct namesrv_config *c = malloc(sizeof *c);
    if (!c) {
        fclose(f);
        free(text);
        respond(conn, req, RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    *c = ns->cfg;
    tls_config_mask(&c->tls);
    conf_print(namesrv_conf_defs, c, f);
    free(c);
    fclose(f);
    jb_init(&b);
    jb_raw(&b, text);
    free(text); /* open_memstream's buffer comes from malloc */
    respond_body(conn, req, &b);
}

/* ---- wiring ----------------------------------------------------------------------------- */

void namesrv_on_close(conn_t *conn, void *arg)
{
    namesrv_t *ns = arg;
    route_conn_closed(ns->rt, conn);
}

/* Every handler runs behind this: count the request (metrics.c), then handle it. */
static void counted(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct ns_req *r = arg;
    atomic_fetch_add_explicit(&r->n, 1, memory_order_relaxed);
    r->fn(conn, req, r->ns);
}

int namesrv_register_processors(namesrv_t *ns, remoting_server_t *srv)
{
    static const struct {
        int32_t code;
        remoting_handler_fn fn;
    } table[] = {
        {REQ_PUT_KV_CONFIG, put_kv_config},
        {REQ_GET_KV_CONFIG, get_kv_config},
        {REQ_DELETE_KV_CONFIG, delete_kv_config},
        {REQ_GET_KVLIST_BY_NAMESPACE, get_kv_list},
        {REQ_REGISTER_BROKER, register_broker},
        {REQ_UNREGISTER_BROKER, unregister_broker},
        {REQ_QUERY_DATA_VERSION, query_data_version},
        {REQ_GET_ROUTEINFO_BY_TOPIC, get_route},
        {REQ_GET_BROKER_CLUSTER_INFO, get_cluster_info},
        {REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, get_all_topics},
        {REQ_GET_TOPICS_BY_CLUSTER, get_topics_by_cluster},
        {REQ_GET_SYSTEM_TOPIC_LIST_FROM_NS, get_system_topics},
        {REQ_GET_UNIT_TOPIC_LIST, get_unit_topics},
        {REQ_GET_HAS_UNIT_SUB_TOPIC_LIST, get_unit_topics},
        {REQ_GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, get_unit_topics},
        {REQ_WIPE_WRITE_PERM_OF_BROKER, write_perm},
        {REQ_ADD_WRITE_PERM_OF_BROKER, write_perm},
        {REQ_DELETE_TOPIC_IN_NAMESRV, delete_topic},
        {REQ_GET_NAMESRV_CONFIG, get_config},
    };
    _Static_assert(sizeof table / sizeof table[0] <= NS_REQ_MAX, "NS_REQ_MAX too small");
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        struct ns_req *r = &ns->reqs[i];
        r->ns = ns;
        r->code = table[i].code;
        r->fn = table[i].fn;
        atomic_init(&r->n, 0);
        ns->nreqs = (int)i + 1;
        int rc = remoting_server_register(srv, table[i].code, counted, r);
        if (rc != 0)
            return rc;
    }
    return 0;
}
