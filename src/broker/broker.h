/* The FerryMQ broker: receives, stores and serves messages for RocketMQ 4.x clients
 * (protocol/REMOTING.md §2.4-§8), on top of one message store (store.h).
 *
 * Life cycle: broker_config_defaults() -> (broker_config_load() / conf_set()) -> broker_new() ->
 * broker_start() -> ... -> broker_free(). broker_start() binds the listening port, opens the
 * store (recovering it if needed), loads the metadata files under <storePathRootDir>/config,
 * creates the system topics, starts the service threads and registers with every name server
 * in namesrvAddr. broker_free() is the clean shutdown: stop accepting and close connections,
 * unregister from the name servers, persist consumer offsets, topics and subscription groups,
 * close the store (which removes its abort file).
 *
 * Threads: besides the remoting I/O threads (request handlers) and the store's own threads, a
 * broker runs a service thread (long-polling holds, client expiry, statistics), a metadata
 * writer (consumer offsets, topics, subscription groups) and a registration thread
 * (REGISTER_BROKER every registerNameServerPeriod and after every topic change). The functions
 * here are for the owning thread only (not concurrently on one broker). */
#ifndef FERRY_BROKER_BROKER_H
#define FERRY_BROKER_BROKER_H

#include "common/conf.h"
#include "remoting/tls.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct broker broker_t;

enum broker_role { BROKER_ASYNC_MASTER, BROKER_SYNC_MASTER, BROKER_SLAVE };

/* The broker keys of broker.conf (RocketMQ's names; see broker_conf_defs and docs/config.md),
 * plus the store's configuration. */
struct broker_config {
    char brokerClusterName[128];
    char brokerName[128]; /* empty: the host name */
    int64_t brokerId;
    char namesrvAddr[1024]; /* "host:port;host:port" */
    int32_t listenPort;     /* 0: any free port (tests), see broker_port() */
    char bindAddress[64];   /* FerryMQ: local address to listen on */
    char brokerIP1[64];     /* empty: the first non-loopback IPv4 address */
    int brokerRole;         /* enum broker_role */
    int32_t brokerPermission;
    int autoCreateTopicEnable;
    int autoCreateSubscriptionGroup;
    int32_t defaultTopicQueueNums;
    int clusterTopicEnable;
    int brokerTopicEnable;
    int traceTopicEnable;
    char msgTraceTopicName[128];
    char regionId[64];
    int traceOn;
    int32_t registerNameServerPeriod;
    int32_t registerBrokerTimeoutMills;
    int32_t flushConsumerOffsetInterval;
    int longPollingEnable;
    int64_t shortPollingTimeMills;
    int notifyConsumerIdsChangedEnable;
    int32_t accessMessageInMemoryMaxRatio;
    int32_t maxTransferCountOnMessageInMemory;
    int32_t maxTransferBytesOnMessageInMemory;
    int32_t defaultQueryMaxNum;
    int32_t serverChannelMaxIdleTimeSeconds;
    int32_t serverSelectorThreads;
    int32_t channelExpiredTimeout;   /* ms without heartbeat before a client channel is dropped */
    int fastListenPortEnable;        /* FerryMQ: also listen on listenPort - 2 (the "VIP" port) */
    int metricsPort;                 /* FerryMQ: HTTP port of /metrics and the dashboard; -1 off */
    char metricsBindAddress[64];     /* FerryMQ: the HTTP port's address; "": bindAddress */
    char httpAllowedHosts[512];      /* FerryMQ: Host names the dashboard API answers under */
    int32_t haListenPort;            /* advertised as haServerAddr; 0: listenPort + 1 */
    char haMasterAddress[128];       /* slave: the master's HA host:port (empty: ask namesrv) */
    char haSecret[256];              /* shared secret of the HA port (empty: port closed) */
    struct tls_config tls;           /* tlsMode, tlsEnable, ...: TLS keys (docs/TLS.md) */
    int32_t haTransferBatchSize;     /* most bytes per transfer to a slave */
    int32_t haSendHeartbeatInterval; /* slave: ms between idle offset reports */
    int64_t haMaxGapNotInSync;       /* bytes behind beyond which a slave is not in sync */
    int32_t inSyncReplicas;          /* SYNC_MASTER: slaves that must have a message */
    int enableControllerMode;        /* roles decided by the controllers */
    char controllerAddr[1024];       /* "host:port;host:port" */
    int64_t brokerHeartbeatInterval; /* ms between heartbeats to the controllers */
    int64_t checkSyncStateSetPeriod; /* master: ms between sync state set checks */
    int64_t controllerHeartBeatTimeoutMills; /* lease; a master fences after half of it */
    int slaveReadEnable;                     /* master: suggest slave reads for cold data */
    char messageDelayLevel[512];             /* the delay levels, "1s 5s ... 2h" */
    int32_t flushDelayOffsetInterval;        /* ms between writes of config/delayOffset.json */
    int32_t timerMaxDelaySec;                /* farthest delivery time of a timed message */
    int64_t transactionTimeOut;              /* ms before an unresolved half is checked */
    int32_t transactionCheckMax;             /* checks before a half goes to the discard topic */
    int64_t transactionCheckInterval;        /* ms between check rounds */
    int aclEnable;                           /* check every client request (docs/ACL.md) */
    char aclFile[1024];     /* plain_acl.yml; empty: $ROCKETMQ_HOME/conf/plain_acl.yml */
    char aclAccessKey[256]; /* the account this broker signs its own requests with */
    char aclSecretKey[256];
    struct store_config store;
};

/* The broker keys (offsets into struct broker_config; the store's keys are store_conf_defs,
 * offsets into struct store_config). */
extern const struct conf_def broker_conf_defs[];

/* Every key to its default (brokerName: the host name). */
void broker_config_defaults(struct broker_config *cfg);

/* (Multi-table files, as ferrymq's, are read with conf_load_targets() from common/conf.h.) */

/* Load broker.conf: the broker keys, then the store keys. Same errors. */
int broker_config_load(struct broker_config *cfg, const char *path, char *err, size_t errlen);

/* Check the values that the tables cannot (namesrvAddr syntax, brokerIP1, names, brokerRole vs
 * brokerId), fill in derived defaults (brokerIP1 detection; brokerId 0 for masters).
 * Returns 0 or FERRY_ECONFIG with @err naming the key and the allowed values. */
int broker_config_check(struct broker_config *cfg, char *err, size_t errlen);

/* Print the effective configuration (broker keys, then store keys) as `key=value`; a set
 * haSecret prints as ******. */
void broker_config_print(const struct broker_config *cfg, FILE *out);

/* A broker with a copy of @cfg (checked with broker_config_check()). Nothing is opened yet.
 * Returns 0 or FERRY_ECONFIG with @err set. */
int broker_new(const struct broker_config *cfg, broker_t **out, char *err, size_t errlen);

/* Listen, open the store, load the metadata, start the threads, register with the name
 * servers. Returns 0 or a negative error with @err set; the broker can then only be freed. */
int broker_start(broker_t *b, char *err, size_t errlen);

/* The bound main port (the picked one when listenPort was 0); 0 before start. */
int broker_port(const broker_t *b);

/* "ip:port" that clients and name servers use (brokerIP1 and the bound port). */
const char *broker_addr(const broker_t *b);
/* The HTTP port (metrics, dashboard) listened on, or -1 when metricsPort is -1. */
int broker_web_port(const broker_t *b);

/* The store (NULL before start). For tests and the standalone launcher. */
store_t *broker_store(broker_t *b);

/* Clean shutdown as described above, then free. NULL is a no-op. */
void broker_free(broker_t *b);

#endif
