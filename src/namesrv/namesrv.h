/* The FerryMQ name server: the routing registry of RocketMQ 4.x (protocol/REMOTING.md §2.3),
 * as Java 4.9.8's NamesrvController, RouteInfoManager and DefaultRequestProcessor.
 *
 * Brokers register (REGISTER_BROKER, every 30 s) with their topics; clients ask for a topic's
 * route (GET_ROUTEINFO_BY_TOPIC) and for the cluster layout. A broker not heard from for
 * brokerChannelExpiredTime ms, or whose registering connection closes, is dropped. A small
 * namespace/key/value table (KV config) is kept in kvConfigPath. Several name servers run side
 * by side with no shared state: brokers register with each of them.
 *
 * Threads: the remoting server's I/O threads run the request handlers (the route tables are
 * guarded by a rwlock); one scanner thread expires silent brokers; one writer thread persists
 * the KV table (fsync never runs on an I/O thread) and answers the KV writes after it.
 *
 * Embedding: namesrv_new() -> namesrv_start() -> ... -> namesrv_free(). Every function here
 * may be called from any thread, but not concurrently on the same namesrv_t. */
#ifndef FERRY_NAMESRV_NAMESRV_H
#define FERRY_NAMESRV_NAMESRV_H

#include "common/conf.h"
#include "remoting/tls.h"

#include <stddef.h>
#include <stdint.h>

typedef struct namesrv namesrv_t;

/* Configuration; the fields are named as the config keys (namesrv_conf_defs, docs/NAMESRV.md). */
struct namesrv_config {
    char rocketmqHome[1024];                 /* empty: the working directory */
    char kvConfigPath[1024];                 /* empty: <rocketmqHome>/namesrv/kvConfig.json */
    int orderMessageEnable;                  /* add orderTopicConf to routes */
    char listenAddress[64];                  /* IPv4/IPv6 literal to bind */
    int32_t listenPort;                      /* 0: any free port (namesrv_port()) */
    int32_t serverSelectorThreads;           /* I/O threads; they also run the handlers */
    int32_t serverChannelMaxIdleTimeSeconds; /* close idle connections; 0: never */
    int64_t scanNotActiveBrokerInterval;     /* ms between expiry scans */
    int64_t brokerChannelExpiredTime;        /* ms of silence before a broker is dropped */
    int routeJsonAlwaysStandard;             /* quoted integer keys for every client */
    struct tls_config tls;                   /* tlsMode, ...: TLS on the port (docs/TLS.md) */
    int32_t metricsPort; /* HTTP port of /metrics (docs/METRICS.md); -1 off, 0 any free port */
};

/* The key table (NULL-key terminated), for conf_load_file()/conf_set()/conf_print(). */
extern const struct conf_def namesrv_conf_defs[];

/* Every field to its default. */
void namesrv_config_defaults(struct namesrv_config *cfg);

/* A name server with a copy of @cfg: validates it and loads the KV table from kvConfigPath (a
 * missing file is an empty table; an unreadable or corrupt one, with no usable .bak, is an
 * error). Every number must be within namesrv_conf_defs' bounds and listenAddress a literal
 * address. Nothing is bound and no thread runs yet. On failure *@out is NULL.
 * Returns 0, FERRY_ECONFIG, FERRY_ECORRUPT or a -errno, with a message in @err. */
int namesrv_new(const struct namesrv_config *cfg, namesrv_t **out, char *err, size_t errlen);

/* Bind listenAddress:listenPort, start the I/O threads, the scanner and the KV writer, and log
 * one line with the listening address. Returns 0, or a -errno (e.g. -EADDRINUSE) with a message
 * in @err; the name server can then only be freed. */
int namesrv_start(namesrv_t *ns, char *err, size_t errlen);

/* The bound port (the one picked when listenPort is 0); 0 before a successful start. */
int namesrv_port(const namesrv_t *ns);
/* The HTTP port of /metrics (metricsPort; the one picked when it is 0), or -1 when off. */
int namesrv_web_port(const namesrv_t *ns);

/* Stop accepting, close every connection, stop the threads (pending KV writes are persisted
 * and answered first) and free everything. Not from a request handler. NULL is a no-op. */
void namesrv_free(namesrv_t *ns);

#endif
