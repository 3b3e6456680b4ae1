/* Private declarations of the broker: the broker object and its managers (topics, subscription
 * groups, consumer offsets, clients, queue locks, long-polling holds, name-server
 * registration), and small helpers shared by the processors. */
#ifndef FERRY_BROKER_INT_H
#define FERRY_BROKER_INT_H

#include "broker/broker.h"
#include "remoting/client.h"
#include "remoting/codes.h"
#include "remoting/server.h"
#include "store/msg.h"
#include "store/store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#define PERM_PRIORITY 0x8
#define PERM_READ     0x4
#define PERM_WRITE    0x2
#define PERM_INHERIT  0x1

#define TOPIC_TBW102        "TBW102"
#define TOPIC_SCHEDULE      "SCHEDULE_TOPIC_XXXX"
#define TOPIC_BENCHMARK     "BenchmarkTest"
#define TOPIC_TRANS_HALF    "RMQ_SYS_TRANS_HALF_TOPIC"
#define TOPIC_TRANS_OP_HALF "RMQ_SYS_TRANS_OP_HALF_TOPIC"
#define TOPIC_TRANS_CHECK   "TRANS_CHECK_MAX_TIME_TOPIC"
#define TOPIC_SELF_TEST     "SELF_TEST_TOPIC"
#define TOPIC_OFFSET_MOVED  "OFFSET_MOVED_EVENT"
#define RETRY_PREFIX        "%RETRY%"
#define DLQ_PREFIX          "%DLQ%"

#define NAME_MAX_LEN   255 /* group names (topics are capped at 127 by the record format) */
#define MAX_HOLD_MS    3600000
#define NOTIFY_VERSION 28 /* V3_0_7_SNAPSHOT: oldest client version that gets broker requests */

/* ---- helpers (util.c) ----------------------------------------------------------------- */

/* A growable byte string (JSON bodies, files). Never fails (allocation aborts). */
struct sbuf {
    char *p;
    size_t len, cap;
};
void bsb_init(struct sbuf *sb);
void bsb_free(struct sbuf *sb);
void bsb_add(struct sbuf *sb, const void *s, size_t n);
void bsb_str(struct sbuf *sb, const char *s);
void bsb_fmt(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* @s (n bytes of UTF-8) as a quoted JSON string. */
void bsb_json(struct sbuf *sb, const char *s, size_t n);
void bsb_jstr(struct sbuf *sb, const char *s);
/* Drop a trailing comma (after the last member of an object/array was written). */
void bsb_trim_comma(struct sbuf *sb);

/* A map from NUL-terminated strings to pointers. Not thread-safe. */
struct bmap_ent {
    struct bmap_ent *next;
    uint32_t hash;
    char *key;
    void *val;
};
struct bmap {
    struct bmap_ent **tab;
    uint32_t cap, n;
};
void bmap_init(struct bmap *m);
/* Free every entry (and its value with @free_val when not NULL). */
void bmap_clear(struct bmap *m, void (*free_val)(void *));
void *bmap_get(const struct bmap *m, const char *key);
/* Insert or replace; returns the replaced value or NULL. */
void *bmap_put(struct bmap *m, const char *key, void *val);
/* Remove; returns the value or NULL. */
void *bmap_del(struct bmap *m, const char *key);
/* The keys in byte order, in a new array of m->n pointers into the map (free the array). */
const char **bmap_sorted_keys(const struct bmap *m);

/* The text of an extFields value as a NUL-terminated copy in @buf. */
enum {
    HDR_OK = 0,
    HDR_MISSING = 1, /* absent or empty */
    HDR_BAD = 2,     /* not a number / too long */
};
int bhdr_str(const struct rcmd *req, const char *key, char *buf, size_t cap);
int bhdr_i64(const struct rcmd *req, const char *key, int64_t *out);
int bhdr_bool(const struct rcmd *req, const char *key, int *out);

/* Request-parsing context: the first problem found, as a remark for SYSTEM_ERROR. */
struct hdrs {
    const struct rcmd *req;
    int bad;
    char remark[256];
};
void bhdrs_init(struct hdrs *h, const struct rcmd *req);
/* Required and optional fields; on a problem the first remark is kept and the target is
 * left at its default (empty string / @def). */
void bhdrs_str(struct hdrs *h, const char *key, char *buf, size_t cap, int required);
void bhdrs_i64(struct hdrs *h, const char *key, int64_t *out, int64_t def, int required);
void bhdrs_i32(struct hdrs *h, const char *key, int32_t *out, int32_t def, int required);
void bhdrs_bool(struct hdrs *h, const char *key, int *out, int def);

/* A response to @req with @code and a formatted remark; sent, and the send result returned. */
/* SUCCESS with @sb as the body; frees @sb. */
void broker_respond_sb(conn_t *conn, const struct rcmd *req, struct sbuf *sb);
int broker_respond(conn_t *conn, const struct rcmd *req, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* What a deferred response needs of its request (the request itself is gone by then). */
struct reply_to {
    conn_t *conn; /* referenced */
    int32_t opaque;
    int32_t flag;
    enum rcmd_ser ser;
};
void broker_reply_init(struct reply_to *rt, conn_t *conn, const struct rcmd *req);
void broker_reply_init_resp(const struct reply_to *rt, struct rcmd *resp, int32_t code,
                            const char *remark);
/* Drop the connection reference. */
void broker_reply_done(struct reply_to *rt);

/* Topic names: 0 when valid, else SYSTEM_ERROR's remark in @remark (as Java's
 * TopicValidator.validateTopic). */
int topics_name_check(const char *topic, char *remark, size_t cap);
int broker_name_ok(const char *s);
int topics_is_system(const struct broker *b, const char *topic);
int topics_not_allowed_send(const char *topic);

/* "ip:port" / "[v6]:port" -> record host (v4-mapped v6 becomes v4). 0 or FERRY_EINVAL. */
int broker_host_parse(const char *s, struct msg_host *h);

/* Stored records copied into new messages (schedule, send-back, transactions; util.c). */
/* @m with the record's queue id, flag, sysFlag (host bits cleared), born time and host,
 * reconsume times, prepared offset and body; topic and properties left to the caller. */
void brec_to_msg(const struct msg_view *v, struct store_msg *m);
/* Append the properties @p (@n bytes) to @sb without the CRC property, the names in @drop
 * (NULL-terminated, may be NULL) and, with @drop_timer, the timer properties. */
void brec_props_copy(struct sbuf *sb, const char *p, size_t n, const char *const *drop,
                     int drop_timer);
void brec_prop_add(struct sbuf *sb, const char *name, size_t nlen, const char *val, size_t vlen);
/* REAL_TOPIC / REAL_QID of @v: 0 or FERRY_EINVAL. */
int brec_real_target(const struct msg_view *v, char *topic, size_t cap, int32_t *qid);

/* The TAG subscription filter: all, or a set of tag hash codes. */
struct tag_filter {
    int all;
    int n;
    int64_t *codes; /* ferry_malloc'd; NULL when all */
};
/* Build from a subscription expression ("*", "", "a || b"), as Java FilterAPI. */
void bfilter_build(struct tag_filter *f, const char *expr);
void bfilter_free(struct tag_filter *f);
void bfilter_copy(struct tag_filter *dst, const struct tag_filter *src);

/* Physical memory, bytes (for accessMessageInMemoryMaxRatio). */
int64_t broker_phys_mem(void);

/* Replace fastjson's unquoted integer map keys ({0:1}) by quoted ones; new buffer. */
char *bjson_quote_int_keys(const char *in, size_t len);

#define META_FILE_MAX (256u * 1024 * 1024)
typedef struct cJSON cJSON;
/* Load a metadata file (falling back to its .bak when missing, empty or not JSON). Returns 0
 * with *@out NULL when there is no file at all, 0 with a document, or FERRY_ECORRUPT / -errno
 * with @err naming the file. */
int bmeta_load_json(const char *path, cJSON **out, char *err, size_t errlen);
/* fs_replace(); logs a failure. 0 or -errno. Callers hold persist_mu. */
int bmeta_write(broker_t *b, const char *path, const struct sbuf *sb);
/* Lenient accessors (numbers may come as strings, booleans as strings or numbers). */
int64_t bjson_i64(const cJSON *obj, const char *key, int64_t def);
int bjson_bool(const cJSON *obj, const char *key, int def);
const char *bjson_str(const cJSON *obj, const char *key);

/* ---- topics (topic.c) ----------------------------------------------------------------- */

enum topic_filter { FILTER_SINGLE_TAG, FILTER_MULTI_TAG };

struct topic_config {
    char name[MSG_MAX_TOPIC_LEN + 1];
    int32_t read_queues, write_queues;
    int32_t perm;
    int32_t sys_flag;
    int filter_type;
    int order;
};

struct data_version {
    int64_t counter;
    int64_t timestamp;
};

struct topics {
    pthread_rwlock_t lock;
    struct bmap map;    /* name -> struct topic_config *, @locks lock */
    struct bmap system; /* names of system topics (values unused), @locks lock */
    struct data_version dv;
    atomic_int dirty; /* the file lags the table */
    char path[4096];
};

void topics_config_init(struct topic_config *tc, const char *name);
int topics_init(broker_t *b, char *err, size_t errlen);
void topics_close(broker_t *b);
/* Copy of the config of @name: 0 or FERRY_ENOTFOUND. */
int topics_get(broker_t *b, const char *name, struct topic_config *out);
/* Create or replace (admin); marks the table dirty. */
void topics_put(broker_t *b, const struct topic_config *tc);
int topics_delete(broker_t *b, const char *name);
/* Java createTopicInSendMessageMethod: from @default_topic's config when it inherits.
 * Returns 0 (created or already there, *@out filled), FERRY_ENOTFOUND. @created set when new. */
int topics_create_for_send(broker_t *b, const char *topic, const char *default_topic,
                           int32_t queue_nums, int32_t sys_flag, struct topic_config *out,
                           int *created);
/* Java createTopicInSendMessageBackMethod: create with @queues/@perm when missing. */
void topics_create_if_missing(broker_t *b, const char *topic, int32_t queues, int32_t perm,
                              int32_t sys_flag, struct topic_config *out, int *created);
/* {"dataVersion":{...},"topicConfigTable":{...}} with perms masked by @perm_override (0: none). */
void topics_encode(broker_t *b, struct sbuf *sb, int32_t perm_override);
/* Write the file if dirty. 0 or -errno. */
int topics_persist(broker_t *b);
void topics_config_json(struct sbuf *sb, const struct topic_config *tc, int32_t perm);

/* ---- subscription groups (group.c) ---------------------------------------------------- */

struct group_config {
    char name[NAME_MAX_LEN + 1];
    int consume_enable;
    int consume_from_min_enable;
    int consume_broadcast_enable;
    int32_t retry_queue_nums;
    int32_t retry_max_times;
    int64_t broker_id;
    int64_t which_broker_when_slow;
    int notify_enable;
};

struct groups {
    pthread_mutex_t mu;
    struct bmap map; /* name -> struct group_config *, @locks mu */
    struct data_version dv;
    atomic_int dirty;
    char path[4096];
};

int groups_init(broker_t *b, char *err, size_t errlen);
void groups_close(broker_t *b);
/* Java findSubscriptionGroupConfig: auto-created when allowed. 0 or FERRY_ENOTFOUND. */
int groups_find(broker_t *b, const char *name, struct group_config *out);
void groups_put(broker_t *b, const struct group_config *gc);
int groups_delete(broker_t *b, const char *name);
void groups_encode(broker_t *b, struct sbuf *sb);
/* Parse a SubscriptionGroupConfig JSON body (admin code 200). 0 or FERRY_EINVAL. */
int groups_config_parse(const char *json, size_t len, struct group_config *gc);
int groups_persist(broker_t *b);

/* ---- consumer offsets (offset.c) ------------------------------------------------------ */

struct reg_waiter;

/* The offsets table and the metadata writer thread, which writes consumerOffset.json every
 * flushConsumerOffsetInterval (and topics.json / subscriptionGroup.json within a second of a
 * change), and answers UPDATE_CONSUMER_OFFSET only once the offset is on disk. */
struct offsets {
    pthread_mutex_t mu;
    struct bmap map; /* "topic@group" -> struct qoffs *, @locks mu */
    atomic_int dirty;
    char path[4096];
    pthread_mutex_t wmu; /* guards the writer state below */
    pthread_cond_t wcond;
    struct reg_waiter *waiters; /* answered after the next write, @locks wmu */
    int stop;                   /* @locks wmu */
    pthread_t thread;
    int started;
};

int offsets_init(broker_t *b, char *err, size_t errlen);
void offsets_close(broker_t *b);
/* Store @offset for (group, topic, qid); negative offsets are ignored. */
void offsets_commit(broker_t *b, const char *group, const char *topic, int32_t qid, int64_t offset);
/* The committed offset, or -1. */
int64_t offsets_query(broker_t *b, const char *group, const char *topic, int32_t qid);
int offsets_persist(broker_t *b);
/* Start / stop the metadata writer thread (stop writes what is dirty and answers waiters). */
int offsets_start(broker_t *b);
void offsets_stop(broker_t *b);
/* Answer @req SUCCESS once the offsets committed so far are on disk (SYSTEM_ERROR if the
 * write fails). */
void offsets_answer_after(broker_t *b, conn_t *conn, const struct rcmd *req);
/* The same with @body as the SUCCESS answer's body; takes ownership of @body (emptied). */
void offsets_answer_after_body(broker_t *b, conn_t *conn, const struct rcmd *req,
                               struct sbuf *body);
/* The topics @group has offsets for (or just @only when given), as new strings in a new array
 * (free each and the array). */
char **offsets_topics_of(broker_t *b, const char *group, const char *only, int *n);

/* ---- clients: consumer and producer groups, queue locks (client.c) -------------------- */

struct chan {
    conn_t *conn; /* referenced */
    char *client_id;
    int language;
    int32_t version;
    int64_t last_update_ms; /* monotonic */
};

struct sub {
    char *topic;
    char *sub_string;
    char *expr_type; /* "TAG" or what the client sent */
    int is_tag;
    struct tag_filter filter;
    char **tags;
    int n_tags;
    int64_t sub_version;
};

struct cgroup {
    char *name;
    int consume_type;  /* 0 CONSUME_ACTIVELY, 1 CONSUME_PASSIVELY */
    int message_model; /* 0 BROADCASTING, 1 CLUSTERING */
    int from_where;    /* ConsumeFromWhere ordinal */
    struct chan *chans;
    int n_chans, cap_chans;
    struct sub *subs;
    int n_subs;
};

struct pgroup {
    struct chan *chans;
    int n_chans, cap_chans;
};

struct clients {
    pthread_mutex_t mu;
    struct bmap consumers; /* group -> struct cgroup *, @locks mu */
    struct bmap producers; /* group -> struct pgroup *, @locks mu */
    struct bmap locks;     /* "group\1topic\1broker\1qid" -> struct qlock *, @locks mu */
};

void clients_init(broker_t *b);
void clients_close(broker_t *b);
void clients_on_close(conn_t *conn, void *arg);
/* Drop channels silent for longer than channelExpiredTimeout (and close them). */
void clients_scan_expired(broker_t *b);
/* The subscription of @group for @topic as received in heartbeats: 0 (filled; free the filter
 * with tag_filter_free), RESP_* error code with @remark. */
int clients_find_sub(broker_t *b, const char *group, const char *topic, int64_t sub_version,
                     int broadcast_enable, struct tag_filter *out, char *remark, size_t cap);

void broker_on_heartbeat(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_unregister_client(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_consumer_list(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_consumer_connection_list(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_producer_connection_list(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_consumer_running_info(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_lock_batch(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_unlock_batch(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_check_client_config(conn_t *conn, const struct rcmd *req, void *arg);

/* ---- processors (send.c, pull.c, admin.c) --------------------------------------------- */

void broker_on_send(conn_t *conn, const struct rcmd *req, void *arg);
/* Decode a SEND_BATCH_MESSAGE body (@body_len bytes, untrusted) into *@out (ferry_free), each
 * entry a copy of @tmpl with its flag, body (pointing into @body) and properties: its own,
 * then @batch_props', then CLUSTER=@cluster, in one buffer *@props_out (ferry_free). Returns
 * the entry count, or -1 with @remark set (send.c). */
int broker_batch_decode(const uint8_t *body, size_t body_len, struct rstr batch_props,
                        const char *cluster, const struct store_msg *tmpl, struct store_msg **out,
                        char **props_out, char *remark, size_t cap);
void broker_on_send_back(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_end_transaction(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_pull(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_query_consumer_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_update_consumer_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_get_max_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_get_min_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_search_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_earliest_time(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_view_message(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_query_message(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_create_topic(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_delete_topic(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_all_topic_config(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_topic_stats(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_runtime_info(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_broker_config(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_create_group(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_all_group_config(conn_t *conn, const struct rcmd *req, void *arg);
/* GET_ALL_CONSUMER_OFFSET (43), GET_ALL_DELAY_OFFSET (45): what a slave copies (admin.c). */
void broker_on_all_consumer_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_all_delay_offset(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_delete_group(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_consume_stats(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_reset_offset(conn_t *conn, const struct rcmd *req, void *arg);
/* RocketMQ 5's GET_BROKER_HA_STATUS (907: HARuntimeInfo) and GET_BROKER_EPOCH_CACHE (1007:
 * EpochEntryCache), for mqadmin haStatus / getBrokerEpoch (ha_admin.c). */
void broker_on_ha_status(conn_t *conn, const struct rcmd *req, void *arg);
void broker_on_epoch_cache(conn_t *conn, const struct rcmd *req, void *arg);

/* ---- long polling (pull.c) ------------------------------------------------------------ */

struct held;
struct hold_q;

struct holds {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct hold_q **tab; /* by (topic, qid), @locks mu */
    uint32_t cap, nq;
    struct hold_q *pending; /* queues with new messages, @locks mu */
    int64_t next_deadline;  /* monotonic ms of the earliest held request, @locks mu */
    int n_held;
    int stop;
};

void holds_init(broker_t *b);
void holds_close(broker_t *b);
/* The store's arrive callback (dispatch thread). */
void holds_on_arrive(void *arg, const char *topic, int32_t qid, int64_t max_offset);
/* Wake held pulls of (topic, qid) now: the service thread re-runs them. */
void holds_kick(broker_t *b, const char *topic, int32_t qid, int64_t max_offset);
/* The service thread: holds, client expiry, periodic persistence, statistics. */
void *broker_svc_main(void *arg);
/* Answer and drop every held request (shutdown). */
void holds_drain(broker_t *b);

/* ---- name-server registration (register.c) -------------------------------------------- */

struct ns_link {
    char addr[256];
    remoting_client_t *cli;
    int state; /* -1 unknown, 0 failing, 1 registered */
};

struct reg_waiter {
    struct reg_waiter *next;
    struct reply_to rt;
    uint64_t round;   /* answered after a round > this one started */
    struct sbuf body; /* offsets waiters: the SUCCESS answer's body (may be empty) */
};

struct reg {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct ns_link *links;
    int n_links;
    int want;                   /* a registration was asked for, @locks mu */
    int stop;                   /* @locks mu */
    uint64_t round_started;     /* @locks mu */
    struct reg_waiter *waiters; /* @locks mu */
    pthread_t thread;
    int started;
};

int broker_reg_init(broker_t *b, char *err, size_t errlen);
/* Ask for a registration round soon (after a topic change). Any thread. */
void broker_reg_trigger(broker_t *b);
/* Answer @req SUCCESS after the topics file is written and the next registration round ended
 * (UPDATE_AND_CREATE_TOPIC). The connection is referenced until then. */
void broker_reg_answer_after(broker_t *b, conn_t *conn, const struct rcmd *req);
/* Run the first registration round on the calling thread, then start the thread. */
int broker_reg_start(broker_t *b);
/* Stop the thread, then unregister from every name server and close the links. */
void broker_reg_stop(broker_t *b);
/* Free what is left (after broker_reg_stop). */
void broker_reg_close(broker_t *b);

/* ---- the broker ----------------------------------------------------------------------- */

/* The statistics ring: the put and get totals of the last STATS_HIST seconds, one a second, so
 * STATS_HIST - 1 per-second rates (GET_BROKER_THROUGHPUT answers at most that many). */
#define STATS_HIST             601
#define THROUGHPUT_MAX_SECONDS (STATS_HIST - 1)

struct stats {
    atomic_llong put_total;
    atomic_llong get_total;
    int64_t put_hist[STATS_HIST], get_hist[STATS_HIST]; /* totals per second, ring; written by
                                                         * svc, @locks mu */
    int hist_pos, hist_n;                               /* @locks mu */
    int64_t put_today_morning, get_today_morning;
    int64_t put_yesterday_morning, get_yesterday_morning;
    int yday;           /* day of year of *_today_morning */
    pthread_mutex_t mu; /* guards the snapshot fields below for readers */
    double put_tps[3], get_tps[3];
};

/* ---- metrics (metrics.c, docs/METRICS.md) ---- */

/* One topic's traffic, counted on the message path with relaxed atomics. An entry is made once
 * per topic (under bmetrics.mu), published with a release store and never freed before the
 * broker: the send and pull paths find it without a lock. */
struct topic_stats {
    struct topic_stats *next; /* hash chain, set before the entry is published */
    uint32_t hash;
    atomic_llong msgs_in, bytes_in, msgs_out, bytes_out;
    char name[MSG_MAX_TOPIC_LEN + 1];
};

#define BMETRICS_BUCKETS 4096 /* power of two */

struct bmetrics {
    struct topic_stats *_Atomic tab[BMETRICS_BUCKETS];
    pthread_mutex_t mu;          /* inserts */
    int n;                       /* entries, @locks mu */
    struct prom_hist send_us[2]; /* send latency, us: [1] the answer waited for slaves */
};

/* The stats entry of @topic, made when missing. Any thread; lock-free when it exists. */
struct topic_stats *bmetrics_topic(broker_t *b, const char *topic);
/* @n messages of @bytes (record bytes) stored for @ts; @waited_slaves: the answer waited for
 * SYNC_MASTER replication; @t0_ns: clock_mono_ns() when the request was taken. */
void bmetrics_sent(broker_t *b, struct topic_stats *ts, int n, int64_t bytes, int waited_slaves,
                   int64_t t0_ns);
/* @n records of @bytes sent to a consumer from @topic. */
void bmetrics_pulled(broker_t *b, const char *topic, int n, int64_t bytes);
/* The Prometheus text exposition (GET /metrics and GET_BROKER_METRICS), appended to @sb. */
void broker_metrics_write(broker_t *b, struct sbuf *sb);
/* GET_BROKER_METRICS (FerryMQ, 10101): the same text as the body (mqadmin brokerMetrics). */
void broker_on_metrics(conn_t *conn, const struct rcmd *req, void *arg);
/* GET_BROKER_THROUGHPUT (FerryMQ, 10102): the puts and gets per second of the statistics ring
 * (struct stats), oldest first, as JSON (mqadmin brokerThroughput, the dashboard's charts).
 * extFields "seconds": how many seconds at most (1.., default and cap THROUGHPUT_MAX_SECONDS). */
void broker_on_throughput(conn_t *conn, const struct rcmd *req, void *arg);
void bmetrics_init(broker_t *b);
void bmetrics_free(broker_t *b);

struct broker {
    struct broker_config cfg;
    atomic_int role;         /* enum broker_role now: cfg.brokerRole, or the controller's word */
    struct ctl_link *ctl;    /* controller mode (ctl_link.c); NULL otherwise */
    struct ha *_Atomic ha;   /* replication (ha.c); NULL when not running */
    struct ha *ha_retired;   /* stopped by role switches, freed by ha_release() */
    struct http_server *web; /* the HTTP port (web.c); NULL when off */
    struct login *login;     /* aclEnable and the HTTP port: the dashboard's sessions */
    struct slave_sync *slave_sync; /* a slave's metadata sync from its master (slave_sync.c) */
    tls_ctx_t *tls_server;         /* tlsMode on: client and HA ports (docs/TLS.md) */
    tls_ctx_t *tls_client;         /* tlsEnable: outbound connections, HA included */
    struct acl *acl;               /* aclEnable: the rules (acl.c); NULL when off */
    struct acl_gate *acl_gates;    /* aclEnable: one per handler, checks then calls it */
    char addr[128];                /* brokerIP1:port */
    char ha_addr[128];             /* brokerIP1:port+1 */
    char ip[64];
    int port;
    int64_t mem_budget; /* accessMessageInMemoryMaxRatio of RAM, bytes */
    int64_t start_ms;   /* wall clock at start */
    remoting_server_t *srv, *fast_srv;
    store_t *store;
    atomic_int ready;    /* store open and metadata loaded */
    atomic_int stopping; /* broker_free started */
    struct topics topics;
    struct groups groups;
    struct offsets offsets;
    struct clients clients;
    struct holds holds;
    struct reg reg;
    struct stats stats;
    struct bmetrics metrics;
    struct sched *sched;
    struct tx *tx;
    pthread_mutex_t persist_mu; /* one writer of the metadata files at a time */
    pthread_t svc_thread;
    int svc_started;
    char config_dir[4096];
};

/* The broker's role now (any thread). */
static inline int broker_role(const broker_t *b)
{
    return atomic_load_explicit(&b->role, memory_order_acquire);
}

/* ---- the HTTP port: metricsPort (web.c, metrics.c, dashboard.c) ---- */

struct http_request;
struct http_exchange;
/* Start the HTTP server when metricsPort >= 0 (after the broker is ready); stop it (first at
 * shutdown, before the tables its handlers read go away). */
int broker_web_start(broker_t *b, char *err, size_t errlen);
void broker_web_stop(broker_t *b);
/* GET /metrics: the Prometheus text exposition (metrics.c). */
void broker_metrics_http(broker_t *b, const struct http_request *req, struct http_exchange *x);
/* /api/...: the dashboard's JSON API (dashboard.c). */
void broker_dashboard_api(broker_t *b, const struct http_request *req, struct http_exchange *x);
/* Everything else: the dashboard's pages and assets (dashboard.c). */
void broker_dashboard_asset(broker_t *b, const struct http_request *req, struct http_exchange *x);

/* ---- controller mode (ctl_link.c) ---- */

/* Start the link to the controllers (enableControllerMode): register, heartbeat, follow the
 * controller's choice of master (role switches, epoch file, HA restarts), keep the sync state
 * set, fence a master cut off from the controllers. The broker starts as a slave with no
 * master (refusing sends) until the controller names one. */
int ctl_link_start(broker_t *b, char *err, size_t errlen);
/* Stop the thread (no more role switches); ctl_link_free() after ha_stop(), which reads the
 * master address and epochs. */
void ctl_link_stop(broker_t *b);
void ctl_link_free(broker_t *b);
/* Controller mode, slave: the current master's remoting address ("" when none). */
void ctl_link_master(broker_t *b, char *addr, size_t cap);
/* The epoch list (copy) and its path, for the HA handshake. */
struct epoch_list;
void ctl_link_epochs(broker_t *b, struct epoch_list *out);
/* A slave took its master's epoch list after cutting its CommitLog at @end if needed. */
void ctl_link_adopt_epochs(broker_t *b, const struct epoch_list *master, int64_t end);
/* Master: bit i set when slave i's acknowledgement is required for a SYNC_MASTER send (the
 * sync state set, and slaves about to join it). Any thread, lock-free. */
uint64_t ctl_link_required_mask(broker_t *b);

/* ---- delayed and timed messages (schedule.c) ---- */

#define SCHEDULE_TOPIC   "SCHEDULE_TOPIC_XXXX"
#define TIMER_TOPIC      "rmq_sys_wheel_timer"
#define SCHED_MAX_LEVELS 32

/* Parse messageDelayLevel ("1s 5s 10s 30s 1m ... 2h"; units s, m, h, d) into @ms. 0 or
 * FERRY_ECONFIG with @err. */
int sched_parse_levels(const char *s, int64_t *ms, int *n, char *err, size_t errlen);
/* Load config/delayOffset.json, create the schedule and timer topics, start the delivery
 * thread (which delivers only while the broker is a master; schedule.c). */
int sched_start(broker_t *b, char *err, size_t errlen);
/* Stop the thread and write the offsets when what was delivered is on disk. */
void sched_stop(broker_t *b);
/* After store_close(): write the offsets when @store_flushed (a clean close put every delivered
 * copy on disk), then free. */
void sched_free(broker_t *b, int store_flushed);
/* For a message about to be stored (props in @props, which m->props points into): DELAY -> the
 * schedule topic's level queue; a future TIMER_DELIVER_MS / __STARTDELIVERTIME / TIMER_DELAY_SEC
 * / TIMER_DELAY_MS -> the timer topic. Rewrites m->topic and m->queue_id and appends REAL_TOPIC,
 * REAL_QID (and the absolute TIMER_DELIVER_MS) to @props. 0, or FERRY_EINVAL with @remark (a
 * time beyond timerMaxDelaySec). */
int sched_prepare(broker_t *b, struct store_msg *m, struct sbuf *props, char *remark, size_t cap);
/* The delay of @level (clamped to the highest), ms. */
int64_t sched_level_delay(broker_t *b, int level);
/* Wait up to @timeout_ms until the schedule service, seeing the broker's role is now SLAVE, has
 * stopped delivering (no append of its own in flight). 0, or FERRY_ETIMEDOUT. */
int sched_wait_idle(broker_t *b, int timeout_ms);
/* For a service thread that follows the broker's role (schedule.c, transaction.c): wake it on
 * @cond and wait up to @timeout_ms until *@active (or *@stop) says it idles, all under @mu.
 * 0, or FERRY_ETIMEDOUT. */
int bwait_inactive(pthread_mutex_t *mu, pthread_cond_t *cond, const int *active, const int *stop,
                   int timeout_ms);
/* Delivery progress of a running schedule service (a master's): the next SCHEDULE_TOPIC_XXXX
 * offset of each level (queue id = level - 1) into @level_off (at most @cap) and the first timer
 * offset not delivered into *@timer_off. Returns the levels written; 0 when the service does not
 * run (a slave). Any thread. */
int sched_progress(broker_t *b, int64_t *level_off, int cap, int64_t *timer_off);

/* ---- transactional messages (transaction.c) ---- */

#define TRANS_HALF_TOPIC    "RMQ_SYS_TRANS_HALF_TOPIC"
#define TRANS_OP_TOPIC      "RMQ_SYS_TRANS_OP_HALF_TOPIC"
#define TRANS_DISCARD_TOPIC "TRANS_CHECK_MAX_TIME_TOPIC"

/* 1 when the properties say TRAN_MSG=true (a half message). */
int tx_is_half(const char *props, size_t len);
/* A half message about to be stored: to the half topic with REAL_TOPIC/REAL_QID appended to
 * @props (which m->props then points into). */
void tx_prepare_half(broker_t *b, struct store_msg *m, struct sbuf *props);
/* Load config/transaction.json, read the unresolved halves, start the check thread. */
int tx_start(broker_t *b, char *err, size_t errlen);
void tx_stop(broker_t *b);
/* Wait up to @timeout_ms until the transaction check thread, seeing the broker's role is now
 * SLAVE, has stopped (no check round or resolution in flight). 0, or FERRY_ETIMEDOUT. */
int tx_wait_idle(broker_t *b, int timeout_ms);

/* ---- replication (ha.c) ---- */

/* Start replication for the broker's role: a master opens its HA port (haListenPort, when
 * haSecret is set) and streams its CommitLog to slaves; a slave follows its master. 0, or an
 * error with @err. */
int ha_start(broker_t *b, char *err, size_t errlen);
/* Stop replication (role switches, shutdown). The object stays allocated until ha_release()
 * (broker_free, when no request handler runs): a send may still hold it. */
void ha_stop(broker_t *b);
void ha_release(broker_t *b);
/* Master: the slaves streaming now (id, durable end reported, ms since it was last heard,
 * the connection's remote address). Any thread. */
struct ha_slave {
    int64_t broker_id, acked, idle_ms;
    char addr[64];
};
int ha_slaves(broker_t *b, struct ha_slave *out, int max);
/* The HA side now (GET_BROKER_HA_STATUS). Any thread. */
struct ha_info {
    int running;           /* an HA thread runs (haSecret set) */
    int master;            /* it serves slaves; else it follows a master */
    int connected;         /* following: authenticated and streaming from the master */
    char master_addr[128]; /* following: the master's HA address tried last ("" if none) */
};
void ha_info(broker_t *b, struct ha_info *out);

/* The master of this broker's set as the name server answered the last REGISTER_BROKER
 * (masterAddr, haServerAddr; register.c): each copied into its buffer, "" when unknown. 0 when
 * both are known, else FERRY_ENOROUTE. Safe from any thread. */
int broker_master_addrs(broker_t *b, char *addr, size_t addr_cap, char *ha_addr, size_t ha_cap);

/* ---- a slave's metadata sync (slave_sync.c) ---- */

/* Replace the topic table / the subscription groups with a master's GET_ALL_TOPIC_CONFIG /
 * GET_ALL_SUBSCRIPTIONGROUP_CONFIG body (topic.c, group.c); merge a GET_ALL_CONSUMER_OFFSET
 * body over the offsets (offset.c). 0 or FERRY_EPROTO. */
int topics_replace_json(broker_t *b, const char *json, size_t len);
int groups_replace_json(broker_t *b, const char *json, size_t len);
int offsets_merge_json(broker_t *b, const char *json, size_t len);
/* The offset table as ConsumerOffsetSerializeWrapper JSON (offset.c). */
void offsets_encode(broker_t *b, struct sbuf *sb);
/* Copy the master's metadata now (a slave that starts following a new master). */
void slave_sync_kick(broker_t *b);
/* On a slave: whether the last metadata sync reached the master. */
int slave_sync_master_ok(broker_t *b);

/* On a slave: copy topics, subscription groups, consumer offsets and delay offsets from the
 * master periodically. A no-op on a master. */
int slave_sync_start(broker_t *b, char *err, size_t errlen);
void slave_sync_stop(broker_t *b);
/* After store_close(): write the progress when @store_flushed, then free. */
void tx_free(broker_t *b, int store_flushed);
/* Unresolved halves, and the store time of the oldest. */
int tx_pending(broker_t *b, int64_t *oldest_store_ts);
/* Up to @max unresolved halves as "halfOffset@storeTs@group@topic@transactionId" joined by ';'. */
void tx_pending_sample(broker_t *b, struct sbuf *sb, int max);
void broker_on_end_transaction(conn_t *conn, const struct rcmd *req, void *arg);

/* Is the broker serving? If not, answers SYSTEM_ERROR and returns 0. */
int broker_ready(broker_t *b, conn_t *conn, const struct rcmd *req);
/* Persist what is dirty (offsets only when @offsets is set). */
void broker_persist(broker_t *b, int offsets);

#endif
