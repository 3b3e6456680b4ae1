/* libferry internals: route data, latency fault table, queue selection, UNIQ_KEY. */
#ifndef FERRY_CLIENT_INT_H
#define FERRY_CLIENT_INT_H

#include "common/err.h"
#include "ferry/ferry.h"
#include "remoting/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_NAME_MAX      128
#define CLIENT_ADDR_MAX      128
#define ROUTE_REFRESH_MS     30000
#define DEFAULT_TOPIC        "TBW102"
#define DEFAULT_TOPIC_QUEUES 4
#define ROUTE_HANDLERS_MAX   8

/* One writable queue of a topic. */
struct mq {
    char broker[CLIENT_NAME_MAX];
    int qid;
};

/* One broker of a route: its master address (empty when the route lists no master) and the
 * address of its slave with the lowest brokerId (empty when none). */
struct route_broker {
    char name[CLIENT_NAME_MAX];
    char addr[CLIENT_ADDR_MAX];
    char slave[CLIENT_ADDR_MAX];
};

/* What the clients need from a TopicRouteData: writable queues (sorted by broker name, then
 * queue id) of brokers that have a master, readable queues of brokers that have a master or a
 * slave. */
struct route {
    struct mq *mqs; /* writable */
    int nmq;
    struct mq *rmqs; /* readable (consumers), same order */
    int nrmq;
    struct route_broker *brokers;
    int nbrokers;
};

/* Parse a TopicRouteData body (fastjson unquoted integer keys or standard JSON). Returns 0,
 * FERRY_EPROTO. Free with route_clear(). @max_queues > 0 caps writeQueueNums per broker (the
 * TBW102 fallback). */
int route_parse(const char *json, size_t len, int max_queues, struct route *out);
void route_clear(struct route *r);
/* The master address of @broker, or NULL (also when only a slave is listed: producers never
 * send to slaves). */
const char *route_addr(const struct route *r, const char *broker);
/* The slave address of @broker, or NULL. */
const char *route_slave_addr(const struct route *r, const char *broker);
/* Is @broker listed at all (master or slave)? */
int route_has_broker(const struct route *r, const char *broker);

/* Latency fault tolerance (Java MQFaultStrategy + LatencyFaultToleranceImpl). */
struct fault_item {
    char broker[CLIENT_NAME_MAX];
    int64_t latency;
    int64_t until; /* monotonic ms when it is available again */
};
struct fault_table {
    struct fault_item *items;
    int n, cap;
};
/* The not-available duration for a send that took @latency_ms. */
int64_t fault_duration(int64_t latency_ms);
/* Record a send to @broker: @isolation counts it as 30 s of latency (a failure). */
void fault_update(struct fault_table *ft, const char *broker, int64_t latency_ms, int isolation,
                  int64_t now);
int fault_available(const struct fault_table *ft, const char *broker, int64_t now);
void fault_clear(struct fault_table *ft);

/* Pick a queue index of @r round-robin from *@counter. With @ft (fault avoidance on), skip
 * unavailable brokers when an available one exists; prefer brokers other than @last (may be
 * NULL). -1 when @r has no queue. */
int mq_select(const struct route *r, const struct fault_table *ft, const char *last,
              uint32_t *counter, int64_t now);

/* A new UNIQ_KEY: 32 upper-hex characters + NUL (REMOTING.md §3.6). Thread-safe. */
void uniq_key_new(char out[33]);

/* The first non-loopback IPv4 address of this host (host order), else 127.0.0.1. */
uint32_t client_local_ipv4(void);

/* A topic name RocketMQ accepts: 1..127 characters of [%|a-zA-Z0-9_-] (producer.c). */
int client_topic_ok(const char *t);

/* Java String.hashCode() over the bytes of @s. */
int32_t java_hash(const char *s);

/* ---- route cache and connections (route.c) ---- */

struct conn_slot {
    char addr[CLIENT_ADDR_MAX];
    remoting_client_t *cli;
    pthread_mutex_t lock; /* serializes (re)connects */
};

/* A read-only copy of a route shared by the senders that borrowed it (route_cache_borrow):
 * made once per fetched route instead of once per send. */
struct route_snap {
    atomic_int refs;
    struct route r;
};

struct route_entry {
    char topic[CLIENT_NAME_MAX * 2];
    struct route r;
    int64_t fetched;         /* monotonic ms; 0: stale */
    struct route_snap *snap; /* route_cache only: @r shared, made on first borrow; or NULL */
};

struct route_cache {
    pthread_mutex_t lock; /* guards everything below (not held across I/O) */
    char **ns;            /* name server addresses */
    int nns;
    int ns_next;
    struct conn_slot **conns; /* name servers and brokers, by address */
    int nconns;
    struct route_entry *routes;
    int nroutes;
    int closed;
    struct {
        int32_t code;
        remoting_handler_fn fn;
        void *arg;
    } handlers[ROUTE_HANDLERS_MAX]; /* registered on every new connection */
    int nhandlers;
    int shared_io;        /* broker connections on the shared I/O threads (set before the first) */
    atomic_uint connects; /* successful (re)connects, name servers included */
    /* ACL account every connection signs with (set before the first; "": unsigned). */
    char access_key[256], secret_key[256];
    tls_ctx_t *tls; /* TLS context of every connection (route_cache_tls); NULL: plain */
};

int route_cache_init(struct route_cache *rc, const char *namesrv);
/* TLS for every connection of @rc from the useTLS and tls* fields of a producer or consumer
 * config @cfg (and the environment: tls_client_config_env()). Before the first connection.
 * Returns 0 or FERRY_ECONFIG (logged). */
#define ROUTE_CACHE_TLS(rc, cfg)                                                                   \
    route_cache_tls((rc), (cfg)->useTLS, (cfg)->tlsAuthServer, (cfg)->tlsTrustCertPath,            \
                    (cfg)->tlsCertPath, (cfg)->tlsKeyPath, sizeof(cfg)->tlsKeyPath,                \
                    (cfg)->tlsKeyPassword, sizeof(cfg)->tlsKeyPassword)
int route_cache_tls(struct route_cache *rc, int use, int auth_server, const char *trust,
                    const char *cert, const char *key, size_t path_cap, const char *password,
                    size_t password_cap);
/* Close every connection (pending requests fail). */
void route_cache_close(struct route_cache *rc);
void route_cache_destroy(struct route_cache *rc);
/* A copy of the route of @topic (fetched when missing or older than 30 s; on TOPIC_NOT_EXIST
 * the TBW102 route with at most 4 queues per broker). Returns 0, FERRY_ENOROUTE, -errno. */
int route_cache_get(struct route_cache *rc, const char *topic, int timeout_ms, struct route *out);
/* As route_cache_get(), but *@out is a shared snapshot instead of a copy: read it freely (it
 * never changes; a refresh makes a new one) and give it back with route_snap_release(), from
 * any thread. @now is clock_mono_ms() (the caller's, to save a clock read). Returns 0 (then
 * *@out is set), FERRY_ENOROUTE, -errno. */
int route_cache_borrow(struct route_cache *rc, const char *topic, int timeout_ms, int64_t now,
                       struct route_snap **out);
void route_snap_release(struct route_snap *s);
/* Make @fresh (taken over, also on error) the route of @topic as if just fetched: what a
 * successful fetch does (for tests). Returns 0 or FERRY_EINVAL (topic too long). */
int route_cache_install(struct route_cache *rc, const char *topic, struct route *fresh);
/* Fetch @topic's route now (no cache, no TBW102 fallback): 0, FERRY_ENOROUTE, -errno. */
int route_cache_fetch(struct route_cache *rc, const char *topic, int timeout_ms, struct route *out);
/* Handle requests with @code that brokers send on connections opened from now on. Before the
 * first connection. */
void route_cache_on(struct route_cache *rc, int32_t code, remoting_handler_fn fn, void *arg);
/* The addresses of every broker connection (not name servers) ever opened: an array of *@n
 * strings, each and the array freed with ferry_free(). */
char **route_cache_addrs(struct route_cache *rc, int *n);
/* Send @req to every broker connection in turn (sync); returns how many answered SUCCESS. */
int route_cache_broadcast(struct route_cache *rc, const struct rcmd *req, int timeout_ms);
/* Refetch every cached route now (a failed fetch keeps the old one). */
void route_cache_refresh_all(struct route_cache *rc, int timeout_ms);
/* Refetch @topic's route on next use. */
void route_cache_stale(struct route_cache *rc, const char *topic);
/* A connected client for @addr (connects/reconnects within @timeout_ms). */
int route_cache_conn(struct route_cache *rc, const char *addr, int timeout_ms,
                     remoting_client_t **out);
int route_copy(struct route *dst, const struct route *src);

/* ---- producer internals for the transaction producer (producer.c) ---- */

struct route_cache *producer_route_cache(ferry_producer_t *p);
const char *producer_group(const ferry_producer_t *p);
void producer_tx_check(ferry_producer_t *p, ferry_tx_check *fn, void **arg);
/* Before start: FERRY_EINVAL after. */
int producer_set_tx_check(ferry_producer_t *p, ferry_tx_check fn, void *arg);

#endif
