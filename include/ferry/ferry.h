/* libferry: the FerryMQ C client (RocketMQ 4.x remoting protocol). This header is the manual.
 *
 * Producer life cycle:
 *
 *     struct ferry_producer_config cfg;
 *     ferry_producer_config_init(&cfg);          // Java DefaultMQProducer defaults
 *     snprintf(cfg.group, sizeof cfg.group, "PID_demo");
 *     ferry_producer_t *p;
 *     ferry_producer_new(&cfg, &p);              // validates, copies cfg
 *     ferry_producer_start(p);                   // nothing is connected until the first send
 *     ferry_send_sync(p, &msg, &res);            // any number of threads at once
 *     ferry_producer_free(p);                    // shuts down if needed, then frees
 *
 * Outcomes. Every send ends in exactly one of three outcomes, and an unknown outcome is never
 * reported as a failure:
 *   - persisted: 0. The broker stored the message. res.status says whether durability was
 *     confirmed (FERRY_SEND_OK) or not (flush/slave timeouts: stored, durability unconfirmed).
 *   - not persisted: FERRY_ENOTSTORED (a broker answered with an error: res.broker_code and
 *     res.remark say which), FERRY_ETOOBIG (over maxMessageSize, never sent), FERRY_ENOROUTE,
 *     FERRY_EINVAL, FERRY_ESHUTDOWN, or a -errno from connecting (nothing was sent).
 *   - unknown: FERRY_EUNKNOWN. A request was sent and no answer came (timeout, connection lost
 *     after writing): the message may or may not be stored.
 *
 * Threads: a producer may be used from any number of threads at once, except that
 * ferry_producer_shutdown() and ferry_producer_free() must not run concurrently with a send.
 * A producer has one connection per name server and per broker address. Its broker
 * connections are served by I/O threads shared by every producer of the process (one per CPU,
 * at most 4); asynchronous callbacks and transaction checks run on them and must not block for
 * long (a blocked callback stalls other producers' answers) nor call a synchronous send.
 *
 * Routes: a topic's route is fetched from the name servers (tried in turn) on its first send,
 * and again, on the sending thread, once it is older than 30 s or after a send error; when the
 * name servers do not know the topic, the route of TBW102 (4 queues per broker) is used so that
 * the broker can auto-create it. A lost connection is reopened by the next send that needs it.
 *
 * Arguments are borrowed for the duration of the call; nothing is retained after it returns. */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative). The library's internal table (src/common/err.h) defines the same
 * names with the same values; a system error is a negative errno. */
#ifndef FERRY_COMMON_ERR_H
enum ferry_err {
    FERRY_ETOOBIG = -10003,    /* message body over maxMessageSize; not sent */
    FERRY_EINVAL = -10006,     /* invalid argument */
    FERRY_ECONFIG = -10007,    /* invalid configuration */
    FERRY_ENOTFOUND = -10008,  /* not found */
    FERRY_EPROTO = -10010,     /* malformed answer */
    FERRY_EUNKNOWN = -10012,   /* sent, no answer: the message may be stored */
    FERRY_ENOTSTORED = -10013, /* a broker answered with an error: not stored */
    FERRY_ENOROUTE = -10014,   /* no name server knows the topic (and no TBW102 fallback) */
    FERRY_ESHUTDOWN = -10015,  /* producer not started, or shut down */
};
/* A static text for @rc (a FERRY_E* code or a negative errno). */
const char *ferry_strerror(int rc);
#endif

/* ---- producer configuration ---- */

struct ferry_producer_config {
    char group[256];                      /* producer group; required */
    char namesrvAddr[1024];               /* "host:port;host:port"; empty: env NAMESRV_ADDR */
    int sendMsgTimeout;                   /* ms for a whole send incl. retries; default 3000 */
    int retryTimesWhenSendFailed;         /* sync sends: extra attempts on another broker; 2 */
    int retryTimesWhenSendAsyncFailed;    /* async sends: extra attempts before the request is
                                           * written (connect failures); 2 */
    int retryAnotherBrokerWhenNotStoreOK; /* retry when stored with a flush/slave timeout; 0 */
    int compressMsgBodyOverHowmuch;       /* compress bodies of at least this size (zlib
                                           * format, ISA-L's fastest level; sent as they are
                                           * when that is not smaller); 4096 */
    int maxMessageSize;                   /* largest body accepted (before compression); 4 MiB */
    int sendLatencyFaultEnable;           /* avoid slow/failed brokers for a while; 1 */
    /* ACL account (brokers with aclEnable, docs/ACL.md): with both set, every request is signed
     * as RocketMQ's AclClientRPCHook does (AccessKey and Signature, HMAC-SHA1). Empty (the
     * default): unsigned. Each at most 255 bytes; giving only one is FERRY_ECONFIG. */
    char accessKey[256];
    char secretKey[256];
    /* TLS (docs/TLS.md): connect to name servers and brokers with TLS, as Java's useTLS
     * (tls.enable). 0 (the default): plain, unless the environment has FERRY_TLS_ENABLE=true.
     * FERRY_TLS_CONFIG_FILE may name a tls.properties whose tls.client.* keys fill the fields
     * below that are left empty. A file that cannot be loaded is FERRY_ECONFIG (logged). */
    int useTLS;
    int tlsAuthServer;           /* verify the server's certificate and that it names the
                                  * address connected to (tls.client.authServer); 0 */
    char tlsTrustCertPath[1024]; /* PEM CA certificates for tlsAuthServer; empty: the system's */
    char tlsCertPath[1024];      /* client certificate (PEM) for servers that require one */
    char tlsKeyPath[1024];       /* its private key (PEM) */
    char tlsKeyPassword[256];    /* of an encrypted tlsKeyPath; empty: not encrypted */
};

/* Set every field to its default (group empty). */
void ferry_producer_config_init(struct ferry_producer_config *cfg);

/* ---- messages ---- */

/* A user property (name and value non-empty, without the bytes 0x01 and 0x02). */
struct ferry_property {
    const char *name;
    const char *value;
};

struct ferry_message {
    const char *topic; /* required */
    const char *tags;  /* may be NULL */
    const char *keys;  /* space-separated keys, may be NULL */
    const void *body;  /* body_len bytes; body_len > 0 required */
    size_t body_len;
    const struct ferry_property *props; /* nprops user properties, may be NULL */
    size_t nprops;
    int delay_level; /* 0: none; 1..18: the broker's delay levels */
    int32_t flag;    /* stored as is */
};

/* ---- send results ---- */

#define FERRY_UNIQ_KEY_LEN 33 /* a UNIQ_KEY message id and its NUL */

enum ferry_send_status {
    FERRY_SEND_OK = 0,
    FERRY_FLUSH_DISK_TIMEOUT = 1,  /* stored, flush to disk not confirmed in time */
    FERRY_FLUSH_SLAVE_TIMEOUT = 2, /* stored, replication not confirmed in time */
    FERRY_SLAVE_NOT_AVAILABLE = 3, /* stored, no slave to replicate to */
};

struct ferry_send_result {
    enum ferry_send_status status; /* meaningful when the send returned 0 */
    char msg_id[64];               /* the client's UNIQ_KEY (32 upper-hex characters) */
    char offset_msg_id[128];       /* the broker's offset message id */
    char broker_name[128];         /* the queue used */
    int queue_id;
    int64_t queue_offset;
    int32_t broker_code; /* FERRY_ENOTSTORED: the broker's response code, else 0 */
    char remark[256];    /* FERRY_ENOTSTORED: the broker's remark */
};

/* ---- producer ---- */

typedef struct ferry_producer ferry_producer_t;

/* A producer with a copy of @cfg. Fails with FERRY_ECONFIG when group is empty, namesrvAddr
 * (after the NAMESRV_ADDR fallback) is empty or malformed, or a number is out of range.
 * On 0, *@out is the producer (not started); otherwise *@out is NULL. */
int ferry_producer_new(const struct ferry_producer_config *cfg, ferry_producer_t **out);

/* Allow sends. Connections are opened lazily. Returns 0 or FERRY_ESHUTDOWN after shutdown. */
int ferry_producer_start(ferry_producer_t *p);

/* Close every connection. Pending asynchronous sends complete (with FERRY_EUNKNOWN) before
 * this returns. Later sends return FERRY_ESHUTDOWN. Idempotent. Not from a send callback. */
void ferry_producer_shutdown(ferry_producer_t *p);

/* Shut down if needed and free. NULL is a no-op. Not from a send callback. */
void ferry_producer_free(ferry_producer_t *p);

/* Send @msg and wait. Picks a writable queue round-robin, skipping brokers that recently failed
 * or were slow (sendLatencyFaultEnable), and retries on another broker up to
 * retryTimesWhenSendFailed times within sendMsgTimeout. Returns 0 (res filled), or an error as
 * described at the top. @res may be NULL. */
int ferry_send_sync(ferry_producer_t *p, const struct ferry_message *msg,
                    struct ferry_send_result *res);

/* Completion of an asynchronous send: @rc is 0 (persisted, @res filled), FERRY_EUNKNOWN, or a
 * not-persisted error. @res is valid only during the call. */
typedef void (*ferry_send_cb)(int rc, const struct ferry_send_result *res, void *arg);

/* Send @msg without waiting. When this returns 0, @cb is called exactly once, from a library
 * thread, never before this returns. When this returns an error (not persisted, as for
 * ferry_send_sync), @cb is never called. A broker error answer is not retried. */
int ferry_send_async(ferry_producer_t *p, const struct ferry_message *msg, ferry_send_cb cb,
                     void *arg);

/* Send @msg and do not wait for any answer. 0 means written to a connection (the outcome
 * stays unknown); an error means not sent. */
int ferry_send_oneway(ferry_producer_t *p, const struct ferry_message *msg);

/* Send @n messages (1..10000) of one topic as one batch (SEND_BATCH_MESSAGE, REMOTING.md §3.7)
 * and wait: all are stored in one queue with consecutive offsets, or none is. Retries as
 * ferry_send_sync(). Bodies are never compressed, delay levels and %RETRY% topics are refused
 * (FERRY_EINVAL), and the bodies together must fit in maxMessageSize (FERRY_ETOOBIG).
 * @ids (may be NULL) receives each message's UNIQ_KEY, in order. On 0, @res describes the
 * first message: msg_id and offset_msg_id are its ids, queue_offset its offset (message i has
 * queue_offset + i). */
int ferry_send_batch(ferry_producer_t *p, const struct ferry_message *msgs, size_t n,
                     char (*ids)[FERRY_UNIQ_KEY_LEN], struct ferry_send_result *res);

/* Chooses a queue for @msg among @nqueues writable queues of its topic: returns an index in
 * [0, nqueues). The queues are ordered by broker name, then queue id. */
typedef int (*ferry_queue_selector)(int nqueues, const struct ferry_message *msg, void *arg);

/* The selector for ordered messages: @arg is a NUL-terminated sharding key, and the index is
 * abs(h % nqueues) with h Java's String.hashCode() of the key's bytes (the same queue as Java's
 * SelectMessageQueueByHash for ASCII keys). */
int ferry_select_by_hash(int nqueues, const struct ferry_message *msg, void *arg);

/* Send @msg to one queue of its topic, once (no retry, no fault avoidance), and wait. With
 * @sel, the queue is @sel(nqueues, msg, arg); with @sel NULL, it is @queue_index. An index out
 * of range is FERRY_EINVAL. Otherwise as ferry_send_sync(). */
int ferry_send_to_queue(ferry_producer_t *p, const struct ferry_message *msg,
                        ferry_queue_selector sel, void *arg, int queue_index,
                        struct ferry_send_result *res);

/* ---- transactions ----
 *
 * A transactional send stores the message as a half message, invisible to consumers; the
 * application then runs its local transaction and the producer tells the broker to commit
 * (the message becomes visible, once) or roll back (it never does). When the broker does not
 * learn the outcome (UNKNOWN, or the producer died), it asks a producer of the same group later
 * (check-back, after the broker's transactionTimeOut): the check callback answers from the
 * application's records. */

enum ferry_tx_state {
    FERRY_TX_COMMIT = 0,
    FERRY_TX_ROLLBACK = 1,
    FERRY_TX_UNKNOWN = 2, /* not known yet: the broker asks again later */
};

/* Run the local transaction of @msg, whose half message is stored; @tx_id is its transaction
 * id (the UNIQ_KEY). Runs on the calling thread of ferry_send_in_transaction(). */
typedef enum ferry_tx_state (*ferry_tx_execute)(const struct ferry_message *msg, const char *tx_id,
                                                void *arg);

struct ferry_message_ext;
/* The broker asks about transaction @tx_id (@msg is the half message with its real topic).
 * Runs on a connection's I/O thread: answer from local records, do not block for long. */
typedef enum ferry_tx_state (*ferry_tx_check)(const struct ferry_message_ext *msg,
                                              const char *tx_id, void *arg);

/* Register the check callback of this producer's group. Before ferry_producer_start(). */
int ferry_producer_set_tx_check(ferry_producer_t *p, ferry_tx_check fn, void *arg);

/* Send @msg as a half message (retried as ferry_send_sync()), run @exec, and send its outcome
 * to the broker (END_TRANSACTION). Returns 0 with *@state the local outcome (COMMIT, ROLLBACK
 * or UNKNOWN: then the broker checks back) and @res the half's send result (res.msg_id is the
 * transaction id), or the send's error (then @exec was not run and nothing is stored). The
 * outcome reaches the broker at most once from here; if it is lost, the check-back resolves
 * the transaction. Delay levels are refused (FERRY_EINVAL). */
int ferry_send_in_transaction(ferry_producer_t *p, const struct ferry_message *msg,
                              ferry_tx_execute exec, void *arg, struct ferry_send_result *res,
                              enum ferry_tx_state *state);

/* ==== consumers ====
 *
 * Push consumer life cycle:
 *
 *     struct ferry_consumer_config cfg;
 *     ferry_consumer_config_init(&cfg);          // Java DefaultMQPushConsumer defaults
 *     snprintf(cfg.group, sizeof cfg.group, "CID_demo");
 *     ferry_push_consumer_t *c;
 *     ferry_push_consumer_new(&cfg, on_msgs, arg, &c);
 *     ferry_push_consumer_subscribe(c, "TopicA", "TagA || TagB");   // "*" or NULL: every tag
 *     ferry_push_consumer_start(c);              // rebalance, pull, call on_msgs on a pool
 *     ...
 *     ferry_push_consumer_free(c);               // shuts down: waits for running listeners,
 *                                                // commits offsets, unregisters
 *
 * Delivery is at least once. The committed offset of a queue only moves past a message after
 * that message and every earlier one of the queue was consumed with FERRY_CONSUME_SUCCESS (or
 * handed back to the broker for a retry): a crash or a rebalance can deliver a message again,
 * never skip one. RECONSUME_LATER sends the message back to the broker (CONSUMER_SEND_MSG_BACK,
 * to %RETRY%<group>, where the broker redelivers it after a delay); when the broker refuses, the
 * message is consumed again locally after 5 s. Offsets are committed every
 * persistConsumerOffsetInterval ms and at shutdown: to the broker (clustering) or to a local
 * file written atomically (broadcasting). */

enum ferry_message_model {
    FERRY_CLUSTERING = 0,   /* the group shares the queues (average allocation) */
    FERRY_BROADCASTING = 1, /* every consumer gets every message; offsets kept locally */
};

/* Where a group with no committed offset for a queue starts. */
enum ferry_consume_from {
    FERRY_CONSUME_FROM_LAST_OFFSET = 0,  /* the queue's end (new messages only) */
    FERRY_CONSUME_FROM_FIRST_OFFSET = 1, /* the queue's start */
    FERRY_CONSUME_FROM_TIMESTAMP = 2,    /* the first message stored at consumeTimestamp */
};

struct ferry_consumer_config {
    char group[256];        /* consumer group; required */
    char namesrvAddr[1024]; /* "host:port;host:port"; empty: env NAMESRV_ADDR */
    char instanceName[128]; /* client id is "<ip>@<instanceName>"; empty: the process id */
    enum ferry_message_model messageModel;    /* CLUSTERING */
    enum ferry_consume_from consumeFromWhere; /* CONSUME_FROM_LAST_OFFSET */
    int64_t consumeTimestamp;                 /* ms since the epoch; 0: half an hour before start */
    int orderly;                              /* push: 1 = orderly consumption (queue locks); 0 */
    int consumeThreadMin;                     /* push: listener threads; 20 */
    int consumeThreadMax;                     /* push: upper bound (>= min); 20 */
    int consumeMessageBatchMaxSize;           /* push: messages per listener call; 1 */
    int pullBatchSize;                        /* messages per pull request; 32 */
    int pullThresholdForQueue;         /* push: cached messages per queue before pausing; 1000 */
    int pullThresholdSizeForQueue;     /* push: cached MiB per queue before pausing; 100 */
    int consumeConcurrentlyMaxSpan;    /* push: max offset span cached per queue; 2000 */
    int maxReconsumeTimes;             /* push: -1 = broker default (16) */
    int suspendCurrentQueueTimeMillis; /* push orderly: pause after RECONSUME_LATER; 1000 */
    int heartbeatBrokerInterval;       /* ms; 30000 */
    int persistConsumerOffsetInterval; /* ms; 5000 */
    int rebalanceInterval;             /* push: ms; 20000 */
    int pollNameServerInterval;        /* ms between route refreshes; 30000 */
    int brokerSuspendMaxTimeMillis;    /* long polling hold on the broker; 15000 */
    int autoCommit;                    /* lite pull: commit polled positions every
                                        * persistConsumerOffsetInterval ms on poll; 1 */
    char offsetStoreDir[1024];         /* broadcasting: directory of the offset files; empty:
                                        * $HOME/.rocketmq_offsets (Java's
                                        * rocketmq.client.localOffsetStoreDir) */
    char accessKey[256]; /* ACL account, as in struct ferry_producer_config; empty: unsigned */
    char secretKey[256];
    int useTLS; /* TLS, as in struct ferry_producer_config (docs/TLS.md); 0: plain */
    int tlsAuthServer;
    char tlsTrustCertPath[1024];
    char tlsCertPath[1024];
    char tlsKeyPath[1024];
    char tlsKeyPassword[256];
};

/* Set every field to its default (group empty). */
void ferry_consumer_config_init(struct ferry_consumer_config *cfg);

/* A received message. Every pointer stays valid during the listener call (push) or until the
 * next poll (lite pull). Strings are NUL-terminated. */
struct ferry_message_ext {
    const char *topic; /* the topic it was sent to (a retry's original topic) */
    const char *tags;  /* NULL when none */
    const char *keys;  /* NULL when none */
    const void *body;  /* decompressed */
    size_t body_len;
    const struct ferry_property *props; /* every property, system ones included */
    size_t nprops;
    const char *msg_id;        /* UNIQ_KEY when the producer set one, else offset_msg_id */
    const char *offset_msg_id; /* the broker's id: store host + CommitLog offset */
    const char *broker_name;
    int queue_id;
    int64_t queue_offset;
    int64_t commitlog_offset;
    int32_t reconsume_times;
    int32_t flag;
    int64_t born_timestamp;  /* ms */
    int64_t store_timestamp; /* ms */
};

/* The value of property @name of @m, or NULL. */
const char *ferry_message_property(const struct ferry_message_ext *m, const char *name);

enum ferry_consume_status {
    FERRY_CONSUME_SUCCESS = 0,
    /* Concurrent: deliver these messages again later (retry topic, delay level
     * 3 + reconsume_times). Orderly: suspend the queue for suspendCurrentQueueTimeMillis, then
     * deliver the same messages again (Java's SUSPEND_CURRENT_QUEUE_A_MOMENT). */
    FERRY_RECONSUME_LATER = 1,
};

/* Consume @n messages (1..consumeMessageBatchMaxSize), all of one queue, in queue order.
 * Runs on a library thread; any number at once (concurrent) or one per queue (orderly). */
typedef enum ferry_consume_status (*ferry_listener)(const struct ferry_message_ext *msgs, size_t n,
                                                    void *arg);

/* ---- push consumer ---- */

typedef struct ferry_push_consumer ferry_push_consumer_t;

/* A push consumer with a copy of @cfg calling @fn(msgs, n, @arg). FERRY_ECONFIG for an empty
 * group or name server list or a number out of range; FERRY_EINVAL when @fn is NULL. */
int ferry_push_consumer_new(const struct ferry_consumer_config *cfg, ferry_listener fn, void *arg,
                            ferry_push_consumer_t **out);

/* Subscribe to @topic with tag expression @expr ("*", NULL or "" for every message, or tags
 * separated by "||"). Before start; a topic subscribed twice keeps the last expression. In
 * clustering mode %RETRY%<group> is subscribed too, so retries come back automatically. */
int ferry_push_consumer_subscribe(ferry_push_consumer_t *c, const char *topic, const char *expr);

/* Start: heartbeat to the brokers, rebalance, pull. FERRY_EINVAL without a subscription,
 * FERRY_ENOROUTE when a subscribed topic has no route yet is not an error (it is retried). */
int ferry_push_consumer_start(ferry_push_consumer_t *c);

/* Stop pulling, wait for running listener calls, commit offsets, unlock queues (orderly),
 * unregister from the brokers, close connections. Messages fetched and not consumed are simply
 * delivered again later. Idempotent; not from a listener. */
void ferry_push_consumer_shutdown(ferry_push_consumer_t *c);

/* Shut down if needed and free. NULL is a no-op. */
void ferry_push_consumer_free(ferry_push_consumer_t *c);

/* ---- lite pull consumer (explicit queues and offsets) ---- */

/* One queue of a topic. */
struct ferry_mq {
    char topic[256];
    char broker[128];
    int queue_id;
};

typedef struct ferry_pull_consumer ferry_pull_consumer_t;

/* A pull consumer with a copy of @cfg (group, namesrvAddr, instanceName, messageModel for where
 * offsets are committed, consumeFromWhere for queues without a committed offset,
 * pullBatchSize, autoCommit). */
int ferry_pull_consumer_new(const struct ferry_consumer_config *cfg, ferry_pull_consumer_t **out);
int ferry_pull_consumer_start(ferry_pull_consumer_t *c);

/* The readable queues of @topic: *@out is an array of *@n (free() it). */
int ferry_pull_consumer_fetch_queues(ferry_pull_consumer_t *c, const char *topic,
                                     struct ferry_mq **out, size_t *n);

/* Consume exactly these queues from now on (replaces any earlier assignment). A queue starts at
 * the position given by seek, else at its committed offset, else at consumeFromWhere. */
int ferry_pull_consumer_assign(ferry_pull_consumer_t *c, const struct ferry_mq *mqs, size_t n);

/* Set the next offset polled from an assigned queue. FERRY_EINVAL if @mq is not assigned. */
int ferry_pull_consumer_seek(ferry_pull_consumer_t *c, const struct ferry_mq *mq, int64_t offset);
int ferry_pull_consumer_seek_to_begin(ferry_pull_consumer_t *c, const struct ferry_mq *mq);
int ferry_pull_consumer_seek_to_end(ferry_pull_consumer_t *c, const struct ferry_mq *mq);

/* The offset of the first message of @mq stored at or after @timestamp_ms (the queue's end
 * when there is none). */
int ferry_pull_consumer_offset_for_timestamp(ferry_pull_consumer_t *c, const struct ferry_mq *mq,
                                             int64_t timestamp_ms, int64_t *offset);

/* The group's committed offset of @mq (-1 when none). */
int ferry_pull_consumer_committed(ferry_pull_consumer_t *c, const struct ferry_mq *mq,
                                  int64_t *offset);

/* Wait at most @timeout_ms for messages of the assigned queues. On 0, *@msgs is an array of
 * *@n messages (0 on timeout) valid until the next poll, shutdown or free; the position of
 * each queue moves past what was returned. */
int ferry_pull_consumer_poll(ferry_pull_consumer_t *c, int timeout_ms,
                             const struct ferry_message_ext **msgs, size_t *n);

/* Commit the current position of every assigned queue (everything polled counts as consumed)
 * and wait for the broker (or the local file). */
int ferry_pull_consumer_commit(ferry_pull_consumer_t *c);

/* Commit (when autoCommit), unregister, close connections. Idempotent. */
void ferry_pull_consumer_shutdown(ferry_pull_consumer_t *c);
void ferry_pull_consumer_free(ferry_pull_consumer_t *c);

#ifdef __cplusplus
}
#endif

#endif
