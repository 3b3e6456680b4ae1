/* Name server internals: a string-keyed hash map, a JSON text builder, the route tables
 * (RouteInfoManager), the KV config table (KVConfigManager), the RegisterBrokerBody decoder and
 * the request processors. */
#ifndef FERRY_NAMESRV_INT_H
#define FERRY_NAMESRV_INT_H

#include "common/fsutil.h"
#include "namesrv/namesrv.h"
#include "remoting/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- smap: NUL-terminated string key -> pointer, chained, grows by doubling ---------------- */

struct smap_ent {
    char *key; /* owned copy */
    void *val;
    uint32_t hash;
    struct smap_ent *next;
};

struct smap {
    struct smap_ent **b;
    size_t nb; /* buckets: 0 or a power of two */
    size_t n;  /* entries */
};

void smap_init(struct smap *m);
/* Free the entries; @free_val (may be NULL) is called on each value. */
void smap_clear(struct smap *m, void (*free_val)(void *));
void *smap_get(const struct smap *m, const char *key);
/* Insert or replace; returns the previous value (or NULL). The key is copied. */
void *smap_put(struct smap *m, const char *key, void *val);
/* Remove; returns the value (or NULL). Never shrinks, so iteration with smap_next() saved
 * before the removal of the current entry stays valid. */
void *smap_del(struct smap *m, const char *key);
/* Iteration in bucket order: for (e = smap_first(m); e; e = smap_next(m, e)). */
struct smap_ent *smap_first(const struct smap *m);
struct smap_ent *smap_next(const struct smap *m, const struct smap_ent *e);
/* The entries sorted by key (strcmp), in a new array of m->n pointers (ferry_free it); NULL
 * when the map is empty. */
struct smap_ent **smap_sorted(const struct smap *m);

/* ---- jbuf: JSON text written by hand (fastjson's output forms, REMOTING.md §2.3.3) ------- */

struct jbuf {
    char *p;
    size_t len, cap;
};

void jb_init(struct jbuf *b);
void jb_free(struct jbuf *b);
void jb_putc(struct jbuf *b, char c);
void jb_raw(struct jbuf *b, const char *s);
void jb_i64(struct jbuf *b, int64_t v);
/* A quoted JSON string. @browser selects fastjson's BrowserCompatible escaping (every
 * character >= 127 as \uXXXX, '/' as "\/"); otherwise UTF-8 is written as is and only '"',
 * '\\' and control characters are escaped. Invalid UTF-8 becomes U+FFFD. */
void jb_str(struct jbuf *b, const char *s, int browser);
/* jb_str(key) followed by ':'. */
void jb_key(struct jbuf *b, const char *key, int browser);

/* ---- route tables (route.c); every function takes the table's rwlock itself ------------- */

typedef struct route route_t;

struct data_version {
    int64_t counter;
    int64_t timestamp;
};

/* One topic as a broker registers it (TopicConfig). */
struct topic_conf {
    char *name;
    int32_t read_queues, write_queues, perm, sysflag;
};

/* A decoded RegisterBrokerBody (or a bare TopicConfigSerializeWrapper). */
struct reg_body {
    struct data_version dv;
    struct topic_conf *topics;
    size_t n, cap;
};

struct broker_id {
    const char *cluster, *name, *addr;
    int64_t id;
};

/* Slave registration result: the master's address and HA address (owned, may be NULL). */
struct reg_result {
    char *master_addr;
    char *ha_addr;
};

route_t *route_new(void);
/* Frees the tables and drops the connection references they hold. */
void route_free(route_t *rt);
/* REGISTER_BROKER: @conn is the connection it came on (referenced while the broker is live).
 * @now_ms is monotonic. The result strings are owned by the caller (reg_result_clear()). */
void route_register(route_t *rt, const struct broker_id *b, const char *ha_addr,
                    const struct reg_body *body, conn_t *conn, int64_t now_ms,
                    struct reg_result *res);
void reg_result_clear(struct reg_result *res);
/* UNREGISTER_BROKER. */
void route_unregister(route_t *rt, const struct broker_id *b);
/* The connection closed: drop every broker that registered on it. */
void route_conn_closed(route_t *rt, conn_t *conn);
/* Drop brokers silent for more than @expire_ms (closing their connections). Returns the count. */
int route_scan(route_t *rt, int64_t now_ms, int64_t expire_ms);
/* GET_ROUTEINFO_BY_TOPIC body. @order_conf (may be NULL) becomes orderTopicConf. @standard:
 * quoted integer keys, sorted maps and BrowserCompatible strings. Returns 0 or FERRY_ENOTFOUND
 * (no queue data, or none of its brokers registered). */
int route_topic_json(route_t *rt, const char *topic, const char *order_conf, int standard,
                     struct jbuf *out);
/* GET_BROKER_CLUSTER_INFO body (ClusterInfo). */
void route_cluster_json(route_t *rt, int standard, struct jbuf *out);
/* TopicList bodies: every topic (206), the topics of @cluster (224), the cluster and broker
 * names with one broker address (304), and the unit-flag lists (311/312/313: @which 0/1/2). */
void route_topics_json(route_t *rt, struct jbuf *out);
void route_cluster_topics_json(route_t *rt, const char *cluster, struct jbuf *out);
void route_system_topics_json(route_t *rt, struct jbuf *out);
void route_unit_topics_json(route_t *rt, int which, struct jbuf *out);
/* WIPE_WRITE_PERM_OF_BROKER (@add 0) / ADD_WRITE_PERM_OF_BROKER (@add 1). Returns the number
 * of topics changed. */
int route_write_perm(route_t *rt, const char *broker_name, int add);
/* DELETE_TOPIC_IN_NAMESRV; @cluster NULL: from every broker. */
void route_delete_topic(route_t *rt, const char *topic, const char *cluster);
/* QUERY_DATA_VERSION: *@changed unless @dv equals the stored one (then liveness is refreshed).
 * Returns 1 with the stored version in *@stored, or 0 when the broker is not registered. */
int route_query_version(route_t *rt, const char *addr, const struct data_version *dv,
                        int64_t now_ms, int *changed, struct data_version *stored);

/* ---- RegisterBrokerBody decoding (register_body.c) --------------------------------------- */

#define REG_BODY_INFLATE_MAX (64u * 1024 * 1024) /* cap on a compressed body's plaintext */

/* Decode @len bytes: the JSON RegisterBrokerBody (or the bare TopicConfigSerializeWrapper that
 * brokers older than V3_0_11 send), or the zlib form when @compressed. Returns 0 or
 * FERRY_EPROTO with the reason in @err. Free with reg_body_clear(). */
int reg_body_decode(const uint8_t *p, size_t len, int compressed, struct reg_body *body, char *err,
                    size_t errlen);
void reg_body_clear(struct reg_body *body);
/* DataVersion JSON ({"counter":N,"timestamp":T}). Returns 0 or FERRY_EPROTO. */
int data_version_decode(const uint8_t *p, size_t len, struct data_version *dv, char *err,
                        size_t errlen);
void data_version_json(const struct data_version *dv, struct jbuf *out);

/* ---- KV config (kv.c) -------------------------------------------------------------------- */

typedef struct kv kv_t;

/* Load @path (missing: empty; corrupt: its .bak, else an error). */
int kv_new(const char *path, kv_t **out, char *err, size_t errlen);
/* Start the writer thread. */
int kv_start(kv_t *kv, char *err, size_t errlen);
/* Persist and answer what is pending, stop the writer, free. NULL is a no-op. */
void kv_free(kv_t *kv);
/* The value (a new string, ferry_free it) or NULL. */
char *kv_get(kv_t *kv, const char *ns, const char *key);
/* KVTable JSON of @ns ({"table":{...}}); returns 0, or FERRY_ENOTFOUND when @ns is unknown. */
int kv_list_json(kv_t *kv, const char *ns, struct jbuf *out);
/* PUT (@val != NULL) or DELETE (@val NULL) in memory, then queue the persist; the writer
 * thread answers @req on @conn afterwards (SUCCESS, or SYSTEM_ERROR when the file could not be
 * written). */
void kv_write(kv_t *kv, const char *ns, const char *key, const char *val, conn_t *conn,
              const struct rcmd *req);

/* The sizes of the route tables (metrics). */
struct route_counts {
    size_t topics;       /* topics with queue data */
    size_t broker_names; /* broker sets (BrokerData) */
    size_t clusters;
    size_t brokers; /* live broker addresses */
};
void route_counts(route_t *rt, struct route_counts *out);

/* ---- the name server (namesrv.c, processor.c, metrics.c) --------------------------------- */

#define NS_REQ_MAX 32

/* A registered request handler and how often it ran (processor.c counts, metrics.c shows). */
struct ns_req {
    namesrv_t *ns;
    int32_t code;
    remoting_handler_fn fn;
    atomic_ullong n;
};

struct http_server;

struct namesrv {
    struct namesrv_config cfg;
    char kv_path[FERRY_PATH_MAX];
    route_t *rt;
    kv_t *kv;
    remoting_server_t *srv;
    int port;
    pthread_t scanner;
    int scanner_started;
    pthread_mutex_t mu; /* guards stop, with cond: wakes the scanner */
    pthread_cond_t cond;
    int stop;
    int64_t start_ms;               /* wall clock at namesrv_start */
    struct http_server *web;        /* metricsPort (metrics.c); NULL when off */
    atomic_ullong brokers_expired;  /* dropped by the scanner for silence */
    struct ns_req reqs[NS_REQ_MAX]; /* the handlers, counted */
    int nreqs;
};

/* Start the HTTP port of /metrics when metricsPort >= 0 (logs its address); stop it (first at
 * shutdown). metrics.c. */
int namesrv_web_start(namesrv_t *ns, char *err, size_t errlen);
void namesrv_web_stop(namesrv_t *ns);

/* Register every handler on @srv. */
int namesrv_register_processors(namesrv_t *ns, remoting_server_t *srv);
/* The remoting server's on_close hook. */
void namesrv_on_close(conn_t *conn, void *arg);

#endif
