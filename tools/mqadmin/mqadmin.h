/* mqadmin's private declarations: the per-run context, the connection and request helpers,
 * JSON and record helpers (common.c), the option structs filled by main.c, and the
 * subcommands (topic.c, consumer.c, message.c, dlq.c, ha.c, metrics.c). Every helper that can
 * fail prints its message (adm_fail()) and returns 1; 0 is success.
 *
 * The command code is also a library (ferry_admin) that the broker's dashboard runs in-process
 * (src/broker/dashboard.c): every result goes to ctx->out and every message to ctx->err (stdout
 * and stderr for the command line, memory streams for a dashboard request), nothing calls
 * exit() or keeps mutable state outside its ctx and stack, so several commands may run at once
 * on different threads. Never printf()/puts() in command code: fprintf(c->out, ...). */
#ifndef FERRY_TOOLS_MQADMIN_H
#define FERRY_TOOLS_MQADMIN_H

#include "client/client_int.h"
#include "common/clock.h"

#include "remoting/codes.h"
#include "remoting/frame.h"
#include "store/msg.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TIMEOUT_MS 5000
#define ERR_MAX    512

#define TOOLS_GROUP "TOOLS_CONSUMER"
#define PULL_MAX    32 /* the broker's maxTransferCountOnMessageInMemory default */
#define SYSFLAG_SUB 0x4

struct ctx {
    const char *cmd;
    const char *ns; /* "host:port;host:port" */
    int json;
    FILE *out; /* results (tables, --json): stdout, or a memory stream */
    FILE *err; /* failure messages (adm_fail): stderr, or a memory stream */
};

/* A connection kept open across requests to the same broker (the per-queue loops of
 * consumeMessage and the offset resets); reconnects when the address changes. */
struct bconn {
    char addr[CLIENT_ADDR_MAX];
    remoting_client_t *cli;
};

/* ---- common.c: messages, connections, requests ---- */

/* "mqadmin: <cmd>: <message>" and a newline on c->err; returns 1 (the exit code of a failure). */
int adm_fail(const struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *adm_code_name(int32_t code);
/* "CODE (n) from addr: remark" for an error response, in @buf. */
const char *adm_resp_err(const struct rcmd *resp, const char *addr, char *buf, size_t cap);
void adm_bconn_close(struct bconn *bc);
int adm_bcall(struct bconn *bc, const char *addr, const struct rcmd *req, struct rcmd **resp,
              char *err, size_t errlen);
int adm_call(const char *addr, const struct rcmd *req, struct rcmd **resp, char *err,
             size_t errlen);
int adm_ns_call(const struct ctx *c, const struct rcmd *req, struct rcmd **resp, char *used,
                size_t usedlen, char *err, size_t errlen);

/* ---- common.c: JSON ---- */

cJSON *adm_json_body(const struct ctx *c, const struct rcmd *resp, const char *addr,
                     const char *what);
/* @j as indented JSON and a newline on c->out. */
void adm_print_json(const struct ctx *c, cJSON *j);
const char *adm_jstr(const cJSON *o, const char *key);
long long adm_jnum(const cJSON *o, const char *key);
int adm_parse_mq_map(const uint8_t *raw, size_t len, const char *field,
                     void (*fn)(const cJSON *mq, const cJSON *v, void *arg), void *arg);
void adm_fmt_time(long long ms, char *buf, size_t cap);
int adm_cmp_mq(const void *a, const void *b);
void adm_sort_array(cJSON *arr, int (*cmp)(const void *, const void *));

/* ---- common.c: name server lookups ---- */

cJSON *adm_get_route_or(const struct ctx *c, const char *topic, int *missing);
cJSON *adm_get_route(const struct ctx *c, const char *topic);
const char *adm_route_master(const cJSON *route, const char *broker);
cJSON *adm_get_cluster(const struct ctx *c);
int adm_targets(const struct ctx *c, const char *broker, const char *cluster, cJSON **ci,
                const char ***addrs);
void adm_addr_add(const char **addrs, int cap, const char *addr);
void adm_route_masters(const cJSON *route, const char **addrs, int cap);

/* ---- common.c: queues and stored records ---- */

int adm_queue_offset(const struct ctx *c, struct bconn *bc, const char *addr, int32_t code,
                     const char *topic, int qid, int64_t ts, int64_t *out);
int adm_pull(const struct ctx *c, struct bconn *bc, const char *addr, const char *group,
             const char *topic, int qid, int64_t offset, int max, struct rcmd **resp);
int64_t adm_ext_i64(const struct rcmd *resp, const char *key, int64_t def);
void adm_prop_str(const struct msg_view *v, const char *name, char *buf, size_t cap);
/* Whether a body is text (valid UTF-8, no control bytes but tab, CR, LF). */
int adm_is_text(const uint8_t *p, size_t len);
/* Cut message bodies in the JSON of adm_record_json() on this thread to @max bytes (0: no
 * limit, the default), marked "bodyTruncated": true; "bodyLength" stays the whole length. The
 * dashboard's API sets it, so that one request cannot make the broker copy gigabytes. */
void adm_set_body_max(size_t max);
/* Let this thread's commands connect only to the addresses for which @fn(@arg, addr) returns
 * nonzero (@fn is called before each new connection, on this thread; NULL, the default: any
 * address). The dashboard's API allows the name servers and the cluster's brokers, so a
 * parameter (b=host:port, an offset message id) cannot make the broker connect elsewhere. */
void adm_set_addr_filter(int (*fn)(void *arg, const char *addr), void *arg);
/* A stored record as JSON: fields, body (and bodyHex when binary), "properties". */
cJSON *adm_record_json(const struct msg_view *v);
int adm_add_records(const uint8_t *body, size_t len, const char *topic, const char *key,
                    cJSON *arr);
int adm_pulled_records(const struct rcmd *resp, const char *broker, cJSON *arr);
void adm_print_record(const struct ctx *c, const cJSON *o);
int adm_decode_offset_id(const char *id, char *addr, size_t cap, int64_t *phys);

/* ---- topic.c ---- */

struct topic_opts {
    const char *topic, *cluster, *broker;
    int rq, wq, perm, order;
};

int adm_topic_stats_on(const struct ctx *c, const char *topic, const char *addr, cJSON *arr);
int cmd_topic_list(const struct ctx *c);
int cmd_topic_route(const struct ctx *c, const char *topic);
int cmd_cluster_list(const struct ctx *c);
int cmd_update_topic(const struct ctx *c, const struct topic_opts *o);
int cmd_delete_topic(const struct ctx *c, const struct topic_opts *o);
int cmd_topic_status(const struct ctx *c, const char *topic);
int cmd_broker_status(const struct ctx *c, const char *addr);
/* Unresolved transactional half messages of one broker (@addr) or every master. */
int cmd_tx_status(const struct ctx *c, const char *addr);

/* ---- consumer.c ---- */

struct reset_opts {
    const char *group, *topic, *ts_str;
    int64_t ts; /* -1: the max offset ("now", "latest"); 0: the min offset ("earliest") */
    int force, cplus;
};

/* RocketMQ's SubscriptionGroupConfig (fastjson writes the keys sorted); the command's defaults
 * are Java's UpdateSubGroupSubCommand's (broadcast and from-min off). */
struct group_opts {
    const char *group, *broker, *cluster;
    int consume_enable, from_min, broadcast, notify;
    int retry_queues, retry_max;
    int64_t broker_id, slow_broker;
};

int cmd_consumer_connection(const struct ctx *c, const char *group, const char *broker);
int cmd_consumer_progress(const struct ctx *c, const char *group, const char *topic);
int cmd_reset_offset(const struct ctx *c, const struct reset_opts *o, int old);
int cmd_update_sub_group(const struct ctx *c, const struct group_opts *o);
/* groupList (FerryMQ's): every consumer group the masters (of @cluster, or all) know, from
 * their subscription groups and committed offsets, with the topics it has offsets for. */
int cmd_group_list(const struct ctx *c, const char *cluster);

/* ---- message.c ---- */

struct consume_opts {
    const char *topic, *broker, *group;
    int qid;                   /* -1: every queue */
    int64_t offset;            /* -1: from the queue's min offset (or -s) */
    int64_t count, begin, end; /* begin/end 0: unbounded */
};

/* queryMsgById: the record and its message track (for each group with a committed offset on
 * the message's topic at its broker: CONSUMED or NOT_CONSUME_YET, as Java's MessageTrack). */
int cmd_query_by_id(const struct ctx *c, const char *id);
int cmd_query_by_key(const struct ctx *c, const char *topic, const char *key);
int cmd_send(const struct ctx *c, const struct ferry_message *m);
int cmd_query_by_offset(const struct ctx *c, const char *topic, const char *broker, int qid,
                        int64_t offset);
int cmd_consume_message(const struct ctx *c, const struct consume_opts *o);

/* ---- dlq.c ---- */

struct dlq_opts {
    const char *group, *id, *topic, *broker; /* -g, -i, -t, -b */
    int64_t count;                           /* dlqList -c */
    int all;                                 /* dlqResend --all */
};

int cmd_dlq_list(const struct ctx *c, const struct dlq_opts *o);
int cmd_dlq_view(const struct ctx *c, const struct dlq_opts *o);
int cmd_dlq_resend(const struct ctx *c, const struct dlq_opts *o);

/* ---- ha.c: replication and the controllers ---- */

/* Every broker (master and slaves) of @cluster, or of the set named @name, from the name
 * server's cluster info: a new array of {"brokerName","brokerId","addr"} sorted by name, id;
 * NULL with a message when the cluster or set is unknown or has no broker. */
cJSON *adm_members(const struct ctx *c, const char *cluster, const char *name);
/* [{"addr": @addr}] when @addr is given, else adm_members(@cluster): the targets of a command
 * taking -b addr or -c cluster. */
cJSON *adm_addr_or_members(const struct ctx *c, const char *addr, const char *cluster);

/* haStatus: one broker (@addr) or every broker of @cluster. */
int cmd_ha_status(const struct ctx *c, const char *addr, const char *cluster);
/* getBrokerEpoch: every broker of the set @broker or of @cluster. */
int cmd_broker_epoch(const struct ctx *c, const char *broker, const char *cluster);
/* getSyncStateSet from the controllers @ctl ("a;b"): the set @broker, every set of @cluster,
 * or (both NULL) every set the controller knows. */
int cmd_sync_state_set(const struct ctx *c, const char *ctl, const char *broker,
                       const char *cluster);
int cmd_controller_meta(const struct ctx *c, const char *ctl);
/* electMaster: broker @id of @broker becomes master (the controller leader decides). */
int cmd_elect_master(const struct ctx *c, const char *ctl, const char *cluster, const char *broker,
                     int64_t id);

/* ---- metrics.c ---- */

/* brokerMetrics: the broker's Prometheus metrics (GET_BROKER_METRICS), as a table or JSON. */
int cmd_broker_metrics(const struct ctx *c, const char *addr);
/* Parse Prometheus text (format 0.0.4) into @samples, one {"name", "type", "labels": {...},
 * "value"} object per sample line (value a number, or "+Inf" / "-Inf" / "NaN"). 0, or -1 with
 * the line and the reason in @err. */
int adm_metrics_parse(const char *text, size_t len, cJSON *samples, char *err, size_t errlen);
/* brokerThroughput: puts and gets per second of the last @seconds (1..600) of the broker @addr,
 * or of every broker (masters and slaves) of @cluster (GET_BROKER_THROUGHPUT), as a table or a
 * JSON array of the brokers' answers; a broker that does not answer is in the array as
 * {"brokerName", "brokerId", "brokerAddr", "error"} (and makes the exit code 1). */
int cmd_broker_throughput(const struct ctx *c, const char *addr, const char *cluster, int seconds);
/* The mean of the last @span numbers of the array @rates (all of them when fewer); 0 when it
 * is empty. */
double adm_rate_mean(const cJSON *rates, int span);

#endif
