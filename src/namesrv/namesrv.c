/* The name server's life cycle (Java NamesrvController): configuration keys, the remoting
 * server with the handlers of processor.c, the expiry scanner thread and the KV table.
 *
 * Start: namesrv_new() validates the config and loads the KV file; namesrv_start() starts the
 * KV writer, binds and starts the I/O threads, then the scanner, and logs the address. Stop:
 * namesrv_free() stops the scanner, then the server (no handler runs after it; every
 * connection's on_close has run), then the KV writer (which writes and answers what is still
 * queued), then frees the tables. */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define F(k)        offsetof(struct namesrv_config, k)
#define CONF_STRUCT struct namesrv_config
#define STR         CONF_ROW_STR
#define INT         CONF_ROW_INT
#define LONG        CONF_ROW_LONG
#define BOOL        CONF_ROW_BOOL

const struct conf_def namesrv_conf_defs[] = {
    STR(rocketmqHome, "", "base directory for kvConfigPath (empty: the working directory)"),
    STR(kvConfigPath, "",
        "KV config file (empty: $rocketmqHome/namesrv/kvConfig.json; Java: "
        "~/namesrv/kvConfig.json)"),
    BOOL(orderMessageEnable, "false",
         "add orderTopicConf (KV namespace ORDER_TOPIC_CONFIG) to topic routes"),
    STR(listenAddress, "0.0.0.0", "address to bind (IPv4 or IPv6 literal)"),
    INT(listenPort, "9876", 0, 65535, "port to listen on (0: any free port)"),
    INT(serverSelectorThreads, "3", 1, 64, "I/O threads; they also run the request handlers"),
    INT(serverChannelMaxIdleTimeSeconds, "120", 0, 86400,
        "close a connection idle this long, seconds (0: never)"),
    LONG(scanNotActiveBrokerInterval, "10000", 10, 3600000,
         "ms between scans for silent brokers (Java 4.9.8: fixed 10 s)"),
    LONG(brokerChannelExpiredTime, "120000", 100, 86400000,
         "ms without REGISTER_BROKER before a broker is dropped (Java: fixed 120 s)"),
    BOOL(routeJsonAlwaysStandard, "false",
         "send standard JSON (quoted integer keys) in routes and cluster info to every client, "
         "not only to clients >= 4.9.4 or asking with acceptStandardJsonOnly"),
    TLS_CONF_SERVER_ROWS(struct namesrv_config, tls),
    INT(metricsPort, "-1", -1, 65535,
        "FerryMQ: HTTP port of the Prometheus endpoint /metrics, on listenAddress (-1: off; 0: "
        "any free port, logged; in the standalone ferrymq: namesrv.metricsPort)"),
    CONF_ROW_END,
};

void namesrv_config_defaults(struct namesrv_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    conf_defaults(namesrv_conf_defs, cfg);
}

/* The numbers within the table's bounds: conf_set() checks what comes from a file, this
 * checks a struct filled in by an embedding program. */
static int check_bounds(const struct namesrv_config *cfg, char *err, size_t errlen)
{
    for (const struct conf_def *d = namesrv_conf_defs; d->key; d++) {
        const char *field = (const char *)cfg + d->off;
        int64_t v;
        if (d->type == CONF_INT)
            v = *(const int32_t *)field;
        else if (d->type == CONF_LONG)
            v = *(const int64_t *)field;
        else
            continue;
        if (v < d->min || v > d->max) {
            snprintf(err, errlen,
                     "%s=%" PRId64 ": expected an integer in [%" PRId64 ", %" PRId64 "]", d->key, v,
                     d->min, d->max);
            return FERRY_ECONFIG;
        }
    }
    return 0;
}

static int check_config(const struct namesrv_config *cfg, char *path, size_t cap, char *err,
                        size_t errlen)
{
    unsigned char a[sizeof(struct in6_addr)];
    int rc = check_bounds(cfg, err, errlen);
    if (rc != 0)
        return rc;
    if (inet_pton(AF_INET, cfg->listenAddress, a) != 1 &&
        inet_pton(AF_INET6, cfg->listenAddress, a) != 1) {
        snprintf(err, errlen, "listenAddress=%s: expected an IPv4 or IPv6 address",
                 cfg->listenAddress);
        return FERRY_ECONFIG;
    }
    int n;
    if (cfg->kvConfigPath[0])
        n = snprintf(path, cap, "%s", cfg->kvConfigPath);
    else
        n = snprintf(path, cap, "%s/namesrv/kvConfig.json",
                     cfg->rocketmqHome[0] ? cfg->rocketmqHome : ".");
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "kvConfigPath: path too long");
        return FERRY_ECONFIG;
    }
    return 0;
}

int namesrv_new(const struct namesrv_config *cfg, namesrv_t **out, char *err, size_t errlen)
{
    namesrv_t *ns = ferry_calloc(1, sizeof *ns);
    pthread_condattr_t ca;
    int rc;
    *out = NULL;
    ns->cfg = *cfg;
    pthread_mutex_init(&ns->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* a wall-clock step moves no scan */
    pthread_cond_init(&ns->cond, &ca);
    pthread_condattr_destroy(&ca);
    ns->rt = route_new();
    if ((rc = check_config(cfg, ns->kv_path, sizeof ns->kv_path, err, errlen)) != 0 ||
        (rc = kv_new(ns->kv_path, &ns->kv, err, errlen)) != 0) {
        namesrv_free(ns);
        return rc;
    }
    *out = ns;
    return 0;
}

/* Expire silent brokers every scanNotActiveBrokerInterval ms. @thread scanner */
static void *scanner_main(void *arg)
{
    namesrv_t *ns = arg;
    pthread_mutex_lock(&ns->mu);
    while (!ns->stop) {
        int64_t at = clock_mono_ns() + ns->cfg.scanNotActiveBrokerInterval * 1000000;
        struct timespec dl = {at / 1000000000, at % 1000000000};
        while (!ns->stop && pthread_cond_timedwait(&ns->cond, &ns->mu, &dl) != ETIMEDOUT)
            ;
        if (ns->stop)
            break;
        pthread_mutex_unlock(&ns->mu);
        int expired = route_scan(ns->rt, clock_mono_ms(), ns->cfg.brokerChannelExpiredTime);
        atomic_fetch_add_explicit(&ns->brokers_expired, (unsigned long long)expired,
                                  memory_order_relaxed);
        pthread_mutex_lock(&ns->mu);
    }
    pthread_mutex_unlock(&ns->mu);
    return NULL;
}

int namesrv_start(namesrv_t *ns, char *err, size_t errlen)
{
    struct remoting_server_config sc;
    int rc;

    ns->start_ms = clock_wall_ms();
    remoting_server_config_init(&sc);
    sc.bind_addr = ns->cfg.listenAddress;
    sc.port = ns->cfg.listenPort;
    sc.io_threads = ns->cfg.serverSelectorThreads;
    sc.idle_close_seconds = ns->cfg.serverChannelMaxIdleTimeSeconds;
    sc.on_close = namesrv_on_close;
    sc.hook_arg = ns;
    /* TLS (docs/TLS.md): the server keeps its own reference to the context. */
    if ((rc = tls_config_load_file(&ns->cfg.tls, err, errlen)) != 0 ||
        (rc = tls_server_ctx_new(&ns->cfg.tls, &sc.tls, err, errlen)) != 0)
        return rc;
    sc.tls_mode = ns->cfg.tls.tlsMode; /* after tlsConfigFile, which may set it */
    if ((rc = kv_start(ns->kv, err, errlen)) != 0) {
        tls_ctx_unref(sc.tls);
        return rc;
    }
    rc = remoting_server_new(&sc, &ns->srv);
    tls_ctx_unref(sc.tls);
    if (rc != 0) {
        snprintf(err, errlen, "remoting server: %s", ferry_strerror(rc));
        return rc;
    }
    if ((rc = namesrv_register_processors(ns, ns->srv)) != 0) {
        snprintf(err, errlen, "registering handlers: %s", ferry_strerror(rc));
        return rc;
    }
    if ((rc = remoting_server_start(ns->srv, err, errlen)) != 0)
        return rc;
    if ((rc = pthread_create(&ns->scanner, NULL, scanner_main, ns)) != 0) {
        snprintf(err, errlen, "cannot start the scanner thread: %s", strerror(rc));
        return -rc;
    }
    ns->scanner_started = 1;
    ns->port = remoting_server_port(ns->srv);
    if ((rc = namesrv_web_start(ns, err, errlen)) != 0)
        return rc;
    log_info(LOG_NAMESRV, "name server ready on %s%s%s:%d (KV config %s)",
             strchr(ns->cfg.listenAddress, ':') ? "[" : "", ns->cfg.listenAddress,
             strchr(ns->cfg.listenAddress, ':') ? "]" : "", ns->port, ns->kv_path);
    return 0;
}

int namesrv_port(const namesrv_t *ns)
{
    return ns->port;
}

void namesrv_free(namesrv_t *ns)
{
    if (!ns)
        return;
    /* The HTTP port first: its handler reads the tables freed below. Then the scanner, so that
     * it closes no connection during the stop. */
    namesrv_web_stop(ns);
    if (ns->scanner_started) {
        pthread_mutex_lock(&ns->mu);
        ns->stop = 1;
        pthread_cond_signal(&ns->cond);
        pthread_mutex_unlock(&ns->mu);
        pthread_join(ns->scanner, NULL);
    }
    remoting_server_free(ns->srv); /* every on_close has run; no handler runs after this */
    kv_free(ns->kv);
    route_free(ns->rt);
    pthread_cond_destroy(&ns->cond);
    pthread_mutex_destroy(&ns->mu);
    ferry_free(ns);
}
