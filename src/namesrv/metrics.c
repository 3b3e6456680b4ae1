/* The name server's Prometheus endpoint (docs/METRICS.md): GET /metrics on metricsPort (-1, the
 * default, keeps the port closed). The text (format 0.0.4, common/prom.h) shows the route tables'
 * sizes, the requests handled by code, the connections and the process. The HTTP server has its
 * own threads (src/http); the handler reads the route table under its read lock and everything
 * else from atomics, and the server stops first in namesrv_free(). */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "http/http.h"
#include "remoting/codes.h"
#include "remoting/frame.h"
#include "common/prom.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* RocketMQ's name of a request code the name server handles. */
static const char *code_name(int32_t code)
{
    switch (code) {
    case REQ_PUT_KV_CONFIG:
        return "PUT_KV_CONFIG";
    case REQ_GET_KV_CONFIG:
        return "GET_KV_CONFIG";
    case REQ_DELETE_KV_CONFIG:
        return "DELETE_KV_CONFIG";
    case REQ_GET_KVLIST_BY_NAMESPACE:
        return "GET_KVLIST_BY_NAMESPACE";
    case REQ_REGISTER_BROKER:
        return "REGISTER_BROKER";
    case REQ_UNREGISTER_BROKER:
        return "UNREGISTER_BROKER";
    case REQ_QUERY_DATA_VERSION:
        return "QUERY_DATA_VERSION";
    case REQ_GET_ROUTEINFO_BY_TOPIC:
        return "GET_ROUTEINFO_BY_TOPIC";
    case REQ_GET_BROKER_CLUSTER_INFO:
        return "GET_BROKER_CLUSTER_INFO";
    case REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER:
        return "GET_ALL_TOPIC_LIST_FROM_NAMESERVER";
    case REQ_GET_TOPICS_BY_CLUSTER:
        return "GET_TOPICS_BY_CLUSTER";
    case REQ_GET_SYSTEM_TOPIC_LIST_FROM_NS:
        return "GET_SYSTEM_TOPIC_LIST_FROM_NS";
    case REQ_GET_UNIT_TOPIC_LIST:
        return "GET_UNIT_TOPIC_LIST";
    case REQ_GET_HAS_UNIT_SUB_TOPIC_LIST:
        return "GET_HAS_UNIT_SUB_TOPIC_LIST";
    case REQ_GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST:
        return "GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST";
    case REQ_WIPE_WRITE_PERM_OF_BROKER:
        return "WIPE_WRITE_PERM_OF_BROKER";
    case REQ_ADD_WRITE_PERM_OF_BROKER:
        return "ADD_WRITE_PERM_OF_BROKER";
    case REQ_DELETE_TOPIC_IN_NAMESRV:
        return "DELETE_TOPIC_IN_NAMESRV";
    case REQ_GET_NAMESRV_CONFIG:
        return "GET_NAMESRV_CONFIG";
    default:
        return "OTHER";
    }
}

struct text {
    char *p;
    size_t len, cap;
};

static void text_write(void *arg, const char *p, size_t n)
{
    struct text *t = arg;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->p = ferry_realloc(t->p, cap);
        t->cap = cap;
    }
    memcpy(t->p + t->len, p, n);
    t->len += n;
    t->p[t->len] = 0;
}

static void write_metrics(namesrv_t *ns, const struct prom_out *o)
{
    char proto[16];
    snprintf(proto, sizeof proto, "%d", REMOTING_VERSION);
    prom_family(o, "ferrymq_namesrv_info", "gauge",
                "Always 1; the labels name the RocketMQ protocol the name server speaks.");
    prom_sample_i64(o, "ferrymq_namesrv_info",
                    (const char *[]){"version", "V4_9_8", "protocol", proto, NULL}, 1);
    prom_one(o, "ferrymq_namesrv_uptime_seconds", "gauge", "Time since the name server started.",
             (double)(clock_wall_ms() - ns->start_ms) / 1000.0);

    struct route_counts rc;
    route_counts(ns->rt, &rc);
    prom_one(o, "ferrymq_namesrv_brokers", "gauge",
             "Broker addresses registered and live (masters and slaves).", (double)rc.brokers);
    prom_one(o, "ferrymq_namesrv_broker_names", "gauge",
             "Broker sets (brokerName) with at least one live broker.", (double)rc.broker_names);
    prom_one(o, "ferrymq_namesrv_clusters", "gauge", "Clusters with at least one broker set.",
             (double)rc.clusters);
    prom_one(o, "ferrymq_namesrv_topics", "gauge", "Topics with queue data on a registered broker.",
             (double)rc.topics);
    prom_one(o, "ferrymq_namesrv_brokers_expired_total", "counter",
             "Brokers dropped for not registering within brokerChannelExpiredTime.",
             (double)atomic_load_explicit(&ns->brokers_expired, memory_order_relaxed));

    prom_family(o, "ferrymq_namesrv_requests_total", "counter",
                "Requests handled, by request code (codes without a handler are not counted).");
    for (int i = 0; i < ns->nreqs; i++) {
        char code[16];
        snprintf(code, sizeof code, "%d", ns->reqs[i].code);
        prom_sample_i64(
            o, "ferrymq_namesrv_requests_total",
            (const char *[]){"code", code, "request", code_name(ns->reqs[i].code), NULL},
            (int64_t)atomic_load_explicit(&ns->reqs[i].n, memory_order_relaxed));
    }

    struct remoting_server_stats st = {0};
    if (ns->srv)
        remoting_server_stats(ns->srv, &st);
    prom_one(o, "ferrymq_namesrv_connections", "gauge",
             "Connections open now (brokers, clients, admin tools).", (double)st.open);
    prom_one(o, "ferrymq_namesrv_connections_accepted_total", "counter", "Connections accepted.",
             (double)st.accepted);
    prom_process(o, ns->start_ms);
}

static void on_request(void *arg, const struct http_request *req, struct http_exchange *x)
{
    namesrv_t *ns = arg;
    static const char plain[] = "text/plain; charset=utf-8";
    if (strcmp(req->path, "/metrics") != 0) {
        static const char msg[] = "not found: the name server serves GET /metrics only\n";
        http_reply(x, 404, plain, msg, sizeof msg - 1, HTTP_STATIC);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        static const char msg[] = "method not allowed: GET /metrics\n";
        http_add_header(x, "Allow", "GET, HEAD");
        http_reply(x, 405, plain, msg, sizeof msg - 1, HTTP_STATIC);
        return;
    }
    struct text t = {0};
    struct prom_out o = {text_write, &t};
    write_metrics(ns, &o);
    http_reply(x, 200, "text/plain; version=0.0.4; charset=utf-8", t.p, t.len, HTTP_TAKE);
}

int namesrv_web_start(namesrv_t *ns, char *err, size_t errlen)
{
    if (ns->cfg.metricsPort < 0)
        return 0;
    int rc = http_start(ns->cfg.listenAddress, ns->cfg.metricsPort, on_request, ns, &ns->web, err,
                        errlen);
    if (rc != 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (metricsPort; -1 turns the HTTP port off)");
        return rc;
    }
    int v6 = strchr(ns->cfg.listenAddress, ':') != NULL;
    log_info(LOG_NAMESRV, "HTTP port (metrics) at http://%s%s%s:%d/metrics", v6 ? "[" : "",
             ns->cfg.listenAddress, v6 ? "]" : "", http_port(ns->web));
    return 0;
}

void namesrv_web_stop(namesrv_t *ns)
{
    http_stop(ns->web);
    ns->web = NULL;
}

int namesrv_web_port(const namesrv_t *ns)
{
    return ns->web ? http_port(ns->web) : -1;
}
