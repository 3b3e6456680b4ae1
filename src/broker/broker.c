/* The broker object: configuration table and checks, start-up and clean shutdown, and the
 * request dispatch table.
 *
 * Start: bind the main port (so that the store host in every record and msgId is the real
 * address), open the store (recovery included), load config/topics.json,
 * config/subscriptionGroup.json and config/consumerOffset.json, start the service thread and
 * the metadata writer, mark the broker ready, register with the name servers (first round
 * synchronous), start the registration thread. Until ready, requests get SYSTEM_ERROR "broker
 * unable to service".
 *
 * Stop (broker_free): close the listening sockets and every connection, stop the service
 * thread, stop the registration thread and unregister, stop the metadata writer, write the
 * metadata files, close the store (flush + checkpoint + remove the abort file). A broker whose
 * start failed is freed the same way, without writing metadata it never loaded. */
#include "broker/broker_int.h"

#include "broker/acl.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration -------------------------------------------------------------------- */

static const char *const role_names[] = {"ASYNC_MASTER", "SYNC_MASTER", "SLAVE", NULL};

#define F(k)        offsetof(struct broker_config, k)
#define CONF_STRUCT struct broker_config
#define STR         CONF_ROW_STR
#define INT         CONF_ROW_INT
#define LONG        CONF_ROW_LONG
#define BOOL        CONF_ROW_BOOL

const struct conf_def broker_conf_defs[] = {
    STR(brokerClusterName, "DefaultCluster", "cluster this broker belongs to"),
    STR(brokerName, "",
        "broker name shared by a master and its slaves (empty: the host name, with characters "
        "outside [A-Za-z0-9_-] replaced by -)"),
    LONG(brokerId, "0", 0, INT32_MAX, "0 for a master, > 0 for a slave"),
    STR(namesrvAddr, "", "name servers to register with, host:port;host:port (empty: none)"),
    INT(listenPort, "10911", 0, 65535, "port for clients (0: any free port)"),
    STR(bindAddress, "0.0.0.0", "FerryMQ: local address to listen on"),
    STR(brokerIP1, "",
        "IPv4 address advertised to clients and written into records and msgIds (empty: the "
        "first non-loopback IPv4 address)"),
    {"brokerRole", CONF_ENUM, F(brokerRole), 0, "ASYNC_MASTER", 0, 0, role_names, 0,
     "ASYNC_MASTER (acknowledge without waiting for slaves), SYNC_MASTER (acknowledge once "
     "inSyncReplicas slaves have the message) or SLAVE (replicates its master, refuses sends)"},
    INT(brokerPermission, "6", 0, 7, "broker perm bits: 4 read, 2 write"),
    BOOL(autoCreateTopicEnable, "true",
         "create TBW102 (perm 7) so that producers may create topics by sending"),
    BOOL(autoCreateSubscriptionGroup, "true", "create unknown consumer groups on first use"),
    INT(defaultTopicQueueNums, "8", 1, 1024,
        "queues of TBW102 (auto-created topics get min(4, "
        "this))"),
    BOOL(clusterTopicEnable, "true", "the cluster-name topic is readable and writable"),
    BOOL(brokerTopicEnable, "true", "the broker-name topic is readable and writable"),
    BOOL(traceTopicEnable, "false", "create the message trace topic"),
    STR(msgTraceTopicName, "RMQ_SYS_TRACE_TOPIC", "name of the message trace topic"),
    STR(regionId, "DefaultRegion", "MSG_REGION returned with every send"),
    BOOL(traceOn, "true", "TRACE_ON returned with every send"),
    INT(registerNameServerPeriod, "30000", 10000, 60000, "ms between REGISTER_BROKER rounds"),
    INT(registerBrokerTimeoutMills, "6000", 100, 60000, "REGISTER_BROKER timeout, ms"),
    INT(flushConsumerOffsetInterval, "5000", 100, 600000,
        "ms between writes of config/consumerOffset.json"),
    BOOL(longPollingEnable, "true",
         "hold pulls until a message arrives (else shortPollingTimeMills)"),
    LONG(shortPollingTimeMills, "1000", 1, 60000, "hold time of a pull when long polling is off"),
    BOOL(notifyConsumerIdsChangedEnable, "true",
         "send NOTIFY_CONSUMER_IDS_CHANGED when a consumer group changes"),
    INT(accessMessageInMemoryMaxRatio, "40", 0, 100,
        "% of RAM: queue data older than this is 'on disk' (QUERY_CONSUMER_OFFSET rule)"),
    INT(maxTransferCountOnMessageInMemory, "32", 1, 1024, "most messages in one pull answer"),
    INT(maxTransferBytesOnMessageInMemory, "262144", 1024, 16777216,
        "most bytes in one pull answer (at least one message is always sent)"),
    INT(defaultQueryMaxNum, "32", 1, 64, "messages returned by a unique-key QUERY_MESSAGE"),
    INT(serverChannelMaxIdleTimeSeconds, "120", 0, 86400,
        "close connections idle this long (0: never)"),
    INT(serverSelectorThreads, "3", 1, 64, "I/O threads"),
    INT(channelExpiredTimeout, "120000", 1000, 3600000,
        "FerryMQ: ms without heartbeat before a client channel is dropped"),
    BOOL(fastListenPortEnable, "false",
         "FerryMQ: also listen on listenPort - 2 (the VIP port old Java clients use)"),
    INT(metricsPort, "-1", -1, 65535,
        "FerryMQ: HTTP port of the Prometheus endpoint /metrics and the web dashboard, on "
        "metricsBindAddress (-1: off; 0: any free port, logged)"),
    STR(metricsBindAddress, "",
        "FerryMQ: local address of the HTTP port (metricsPort), e.g. 127.0.0.1 to keep the "
        "dashboard on the host (empty: bindAddress)"),
    STR(httpAllowedHosts, "",
        "FerryMQ: host names (comma-separated; * any) besides IP addresses and localhost that "
        "the dashboard's API answers under (its Host header), against DNS rebinding"),
    INT(haListenPort, "0", 0, 65535,
        "master: port slaves replicate from, advertised to name servers as haServerAddr (0: "
        "listenPort + 1)"),
    STR(haMasterAddress, "",
        "slave: host:port of the master's HA port (empty: the haServerAddr the name server "
        "returns for this brokerName)"),
    STR(haSecret, "",
        "FerryMQ: shared secret of a master and its slaves; the HA port authenticates every peer "
        "with it and is not opened while it is empty"),
    TLS_CONF_SERVER_ROWS(struct broker_config, tls),
    TLS_CONF_CLIENT_ROWS(struct broker_config, tls),
    INT(haTransferBatchSize, "32768", 1024, 16777216,
        "most CommitLog bytes a master sends a slave in one transfer"),
    INT(haSendHeartbeatInterval, "5000", 100, 600000,
        "slave: ms between offset reports when nothing arrives"),
    LONG(haMaxGapNotInSync, "268435456", 0, INT64_MAX,
         "a slave more than this many bytes behind the master is not in sync"),
    INT(inSyncReplicas, "1", 1, 16,
        "SYNC_MASTER: slaves that must have a message (durably) before it is acknowledged"),
    BOOL(enableControllerMode, "false",
         "RocketMQ 5: roles are decided by the controllers in controllerAddr (docs/CONTROLLER.md); "
         "brokerRole then only says which master flavour this broker is when elected"),
    STR(controllerAddr, "", "controller mode: host:port of every controller, ';'-separated"),
    LONG(brokerHeartbeatInterval, "1000", 50, 60000,
         "controller mode: ms between heartbeats to every controller (each also reads the "
         "replica info of this broker set)"),
    LONG(checkSyncStateSetPeriod, "5000", 100, 600000,
         "controller mode, master: ms between checks of which slaves are in sync"),
    LONG(controllerHeartBeatTimeoutMills, "10000", 500, 600000,
         "controller mode: the controllers' broker lease; a master that has not reached a "
         "majority of controllers for half of it stops accepting messages"),
    BOOL(slaveReadEnable, "false",
         "master: when a pull reads data that is no longer in memory, suggest that the consumer "
         "read from a slave"),
    STR(messageDelayLevel, "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h",
        "delay of each level (DELAY=1..n), units s, m, h, d; level n is queue n-1 of "
        "SCHEDULE_TOPIC_XXXX"),
    INT(flushDelayOffsetInterval, "10000", 100, 600000,
        "ms between writes of config/delayOffset.json (delivery progress of delayed and timed "
        "messages)"),
    INT(timerMaxDelaySec, "259200", 1, 31536000,
        "FerryMQ/RocketMQ 5: farthest delivery time of a timed message (TIMER_DELIVER_MS, "
        "TIMER_DELAY_SEC, TIMER_DELAY_MS, __STARTDELIVERTIME), seconds from receipt"),
    LONG(transactionTimeOut, "6000", 0, 86400000,
         "ms after which an unresolved transactional half message is checked with its producer"),
    INT(transactionCheckMax, "15", 1, 10000,
        "checks of a half message before it is moved to TRANS_CHECK_MAX_TIME_TOPIC (logged)"),
    LONG(transactionCheckInterval, "60000", 100, 86400000,
         "ms between rounds of CHECK_TRANSACTION_STATE requests"),
    BOOL(aclEnable, "false",
         "check every request on the client ports against aclFile: accounts, signatures, "
         "topic/group permissions, IP whitelists (RocketMQ 4.x ACL, docs/ACL.md)"),
    STR(aclFile, "",
        "FerryMQ: the ACL file in RocketMQ's plain_acl.yml format, reloaded when it changes "
        "(empty: $ROCKETMQ_HOME/conf/plain_acl.yml, as RocketMQ)"),
    STR(aclAccessKey, "",
        "FerryMQ: the account whose keys sign this broker's own requests to other brokers (a "
        "slave's metadata sync from its master); empty: unsigned"),
    STR(aclSecretKey, "", "FerryMQ: the secret key of aclAccessKey (printed as ******)"),
    CONF_ROW_END,
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

void broker_config_defaults(struct broker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    conf_defaults(broker_conf_defs, cfg);
    store_config_defaults(&cfg->store);
}

int broker_config_load(struct broker_config *cfg, const char *path, char *err, size_t errlen)
{
    struct conf_target t[2] = {{broker_conf_defs, cfg, NULL}, {store_conf_defs, &cfg->store, NULL}};
    return conf_load_targets(path, t, 2, err, errlen);
}

void broker_config_print(const struct broker_config *cfg, FILE *out)
{
    /* The printout goes to consoles and to GET_BROKER_CONFIG answers: whoever reads haSecret
     * can pose as a slave, so it is masked. */
    struct broker_config *c = ferry_malloc(sizeof *c);
    *c = *cfg;
    if (c->haSecret[0])
        snprintf(c->haSecret, sizeof c->haSecret, "******");
    tls_config_mask(&c->tls);
    if (c->aclSecretKey[0])
        snprintf(c->aclSecretKey, sizeof c->aclSecretKey, "******");
    conf_print(broker_conf_defs, c, out);
    conf_print(store_conf_defs, &c->store, out);
    ferry_free(c);
}

/* The first non-loopback IPv4 address of this host, or 127.0.0.1. */
static void detect_ip(char *out, size_t cap)
{
    struct ifaddrs *ifs, *i;
    snprintf(out, cap, "127.0.0.1");
    if (getifaddrs(&ifs) != 0)
        return;
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)cap);
        break;
    }
    freeifaddrs(ifs);
}

static int check_name(const char *key, const char *v, char *err, size_t errlen)
{
    if (!*v || strlen(v) > MSG_MAX_TOPIC_LEN || !broker_name_ok(v)) {
        snprintf(err, errlen,
                 "%s=%s: expected 1 to %d characters from letters, digits, %%, |, _ and -", key, v,
                 MSG_MAX_TOPIC_LEN);
        return FERRY_ECONFIG;
    }
    return 0;
}

static int check_namesrv(const char *v, char *err, size_t errlen)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ";", &save); tok;
         tok = strtok_r(NULL, ";", &save)) {
        char *t = trim(tok);
        if (!*t)
            continue;
        char *colon = strrchr(t, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == t || !end || *end || end == colon + 1 || port < 1 || port > 65535) {
            snprintf(err, errlen,
                     "namesrvAddr=%s: \"%s\" is not host:port (expected "
                     "host:port;host:port with ports 1-65535)",
                     v, t);
            return FERRY_ECONFIG;
        }
    }
    return 0;
}

int broker_config_check(struct broker_config *cfg, char *err, size_t errlen)
{
    int rc;
    if (!cfg->brokerName[0]) {
        char host[256] = "broker";
        gethostname(host, sizeof host - 1);
        host[MSG_MAX_TOPIC_LEN] = 0;
        for (char *p = host; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                *p = '-';
        snprintf(cfg->brokerName, sizeof cfg->brokerName, "%s", host[0] ? host : "broker");
    }
    if ((rc = check_name("brokerName", cfg->brokerName, err, errlen)) != 0 ||
        (rc = check_name("brokerClusterName", cfg->brokerClusterName, err, errlen)) != 0 ||
        (rc = check_namesrv(cfg->namesrvAddr, err, errlen)) != 0)
        return rc;
    if (cfg->traceTopicEnable &&
        (rc = check_name("msgTraceTopicName", cfg->msgTraceTopicName, err, errlen)) != 0)
        return rc;
    int64_t levels[SCHED_MAX_LEVELS];
    int nlevels;
    if ((rc = sched_parse_levels(cfg->messageDelayLevel, levels, &nlevels, err, errlen)) != 0)
        return rc;
    struct in_addr a4;
    struct in6_addr a6;
    if (!cfg->brokerIP1[0]) {
        detect_ip(cfg->brokerIP1, sizeof cfg->brokerIP1);
    } else if (inet_pton(AF_INET, cfg->brokerIP1, &a4) != 1) {
        snprintf(err, errlen,
                 "brokerIP1=%s: expected an IPv4 address (clients decode 4-byte store hosts)",
                 cfg->brokerIP1);
        return FERRY_ECONFIG;
    }
    if (inet_pton(AF_INET, cfg->bindAddress, &a4) != 1 &&
        inet_pton(AF_INET6, cfg->bindAddress, &a6) != 1) {
        snprintf(err, errlen, "bindAddress=%s: expected an IPv4 or IPv6 address", cfg->bindAddress);
        return FERRY_ECONFIG;
    }
    if (cfg->metricsBindAddress[0] && inet_pton(AF_INET, cfg->metricsBindAddress, &a4) != 1 &&
        inet_pton(AF_INET6, cfg->metricsBindAddress, &a6) != 1) {
        snprintf(err, errlen, "metricsBindAddress=%s: expected an IPv4 or IPv6 address",
                 cfg->metricsBindAddress);
        return FERRY_ECONFIG;
    }
    if (cfg->enableControllerMode) {
        if (!cfg->controllerAddr[0]) {
            snprintf(err, errlen, "controllerAddr: required with enableControllerMode=true");
            return FERRY_ECONFIG;
        }
        if (!cfg->haSecret[0]) {
            snprintf(err, errlen,
                     "haSecret: required with enableControllerMode=true (the "
                     "replicas of a set replicate over the authenticated HA port)");
            return FERRY_ECONFIG;
        }
        if (cfg->brokerId <= 0) {
            snprintf(err, errlen,
                     "brokerId=%" PRId64 ": with enableControllerMode=true every broker of a "
                     "set needs its own brokerId >= 1 (the controller names the master)",
                     cfg->brokerId);
            return FERRY_ECONFIG;
        }
        return 0;
    }
    if (cfg->brokerRole == BROKER_SLAVE && cfg->brokerId <= 0) {
        snprintf(err, errlen,
                 "brokerId=%" PRId64 ": a broker with brokerRole=SLAVE needs "
                 "brokerId > 0",
                 cfg->brokerId);
        return FERRY_ECONFIG;
    }
    if (cfg->brokerRole != BROKER_SLAVE && cfg->brokerId != 0) {
        log_warn(LOG_BROKER, "brokerId=%" PRId64 " ignored: a master's brokerId is 0",
                 cfg->brokerId);
        cfg->brokerId = 0;
    }
    return 0;
}

/* ---- life cycle ----------------------------------------------------------------------- */

int broker_ready(broker_t *b, conn_t *conn, const struct rcmd *req)
{
    if (atomic_load_explicit(&b->ready, memory_order_acquire))
        return 1;
    broker_respond(conn, req, RESP_SYSTEM_ERROR,
                   "broker unable to service, until the message store is open");
    return 0;
}

void broker_persist(broker_t *b, int offsets)
{
    topics_persist(b);
    groups_persist(b);
    if (offsets)
        offsets_persist(b);
}

int broker_new(const struct broker_config *cfg, broker_t **out, char *err, size_t errlen)
{
    broker_t *b = ferry_calloc(1, sizeof *b);
    b->cfg = *cfg;
    int rc = broker_config_check(&b->cfg, err, errlen);
    /* Controller mode: a slave with no master (refusing sends) until the controller says. */
    atomic_init(&b->role, b->cfg.enableControllerMode ? BROKER_SLAVE : b->cfg.brokerRole);
    pthread_rwlock_init(&b->topics.lock, NULL);
    pthread_mutex_init(&b->groups.mu, NULL);
    pthread_mutex_init(&b->offsets.mu, NULL);
    pthread_mutex_init(&b->offsets.wmu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&b->offsets.wcond, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_mutex_init(&b->clients.mu, NULL);
    pthread_mutex_init(&b->stats.mu, NULL);
    b->stats.hist_n = 1; /* put_hist[0], get_hist[0]: the totals at start, 0; so the first
                          * second's rates count what came before the first tick */
    pthread_mutex_init(&b->persist_mu, NULL);
    clients_init(b);
    holds_init(b);
    bmetrics_init(b);
    if (rc == 0)
        rc = broker_reg_init(b, err, errlen);
    else
        broker_reg_init(b, NULL, 0);
    if (rc) {
        broker_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

struct handler_def {
    int32_t code;
    remoting_handler_fn fn;
};

static const struct handler_def handlers[] = {
    {REQ_SEND_MESSAGE, broker_on_send},
    {REQ_SEND_MESSAGE_V2, broker_on_send},
    {REQ_SEND_BATCH_MESSAGE, broker_on_send},
    {REQ_PULL_MESSAGE, broker_on_pull},
    {REQ_QUERY_MESSAGE, broker_on_query_message},
    {REQ_QUERY_CONSUMER_OFFSET, broker_on_query_consumer_offset},
    {REQ_UPDATE_CONSUMER_OFFSET, broker_on_update_consumer_offset},
    {REQ_UPDATE_AND_CREATE_TOPIC, broker_on_create_topic},
    {REQ_GET_ALL_TOPIC_CONFIG, broker_on_all_topic_config},
    {REQ_GET_BROKER_CONFIG, broker_on_broker_config},
    {REQ_GET_BROKER_RUNTIME_INFO, broker_on_runtime_info},
    {REQ_SEARCH_OFFSET_BY_TIMESTAMP, broker_on_search_offset},
    {REQ_GET_MAX_OFFSET, broker_on_get_max_offset},
    {REQ_GET_MIN_OFFSET, broker_on_get_min_offset},
    {REQ_GET_EARLIEST_MSG_STORETIME, broker_on_earliest_time},
    {REQ_VIEW_MESSAGE_BY_ID, broker_on_view_message},
    {REQ_HEART_BEAT, broker_on_heartbeat},
    {REQ_UNREGISTER_CLIENT, broker_on_unregister_client},
    {REQ_CONSUMER_SEND_MSG_BACK, broker_on_send_back},
    {REQ_END_TRANSACTION, broker_on_end_transaction},
    {REQ_GET_CONSUMER_LIST_BY_GROUP, broker_on_consumer_list},
    {REQ_LOCK_BATCH_MQ, broker_on_lock_batch},
    {REQ_UNLOCK_BATCH_MQ, broker_on_unlock_batch},
    {REQ_CHECK_CLIENT_CONFIG, broker_on_check_client_config},
    {REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, broker_on_create_group},
    {REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG, broker_on_all_group_config},
    {REQ_GET_ALL_CONSUMER_OFFSET, broker_on_all_consumer_offset},
    {REQ_GET_ALL_DELAY_OFFSET, broker_on_all_delay_offset},
    {REQ_GET_TOPIC_STATS_INFO, broker_on_topic_stats},
    {REQ_GET_CONSUMER_CONNECTION_LIST, broker_on_consumer_connection_list},
    {REQ_GET_PRODUCER_CONNECTION_LIST, broker_on_producer_connection_list},
    {REQ_DELETE_SUBSCRIPTIONGROUP, broker_on_delete_group},
    {REQ_GET_CONSUME_STATS, broker_on_consume_stats},
    {REQ_INVOKE_BROKER_TO_RESET_OFFSET, broker_on_reset_offset},
    {REQ_DELETE_TOPIC_IN_BROKER, broker_on_delete_topic},
    {REQ_GET_CONSUMER_RUNNING_INFO, broker_on_consumer_running_info},
    {REQ_GET_BROKER_HA_STATUS, broker_on_ha_status},
    {REQ_GET_BROKER_EPOCH_CACHE, broker_on_epoch_cache},
    {REQ_GET_BROKER_METRICS, broker_on_metrics},
    {REQ_GET_BROKER_THROUGHPUT, broker_on_throughput},
};

/* ---- access control (aclEnable; acl.c, docs/ACL.md) ---- */

#define ACL_POLL_MS 1000 /* how often the ACL file is checked for changes */

/* With aclEnable every handler is registered behind a gate: the request is checked first
 * (both client ports), and refused with NO_PERMISSION and the reason. */
struct acl_gate {
    broker_t *b;
    remoting_handler_fn fn;
};

static void acl_gate(conn_t *conn, const struct rcmd *req, void *arg)
{
    const struct acl_gate *g = arg;
    char remark[512];
    if (acl_check(g->b->acl, req, remoting_conn_peer(conn), remark, sizeof remark) != 0) {
        broker_respond(conn, req, RESP_NO_PERMISSION, "%s", remark);
        return;
    }
    g->fn(conn, req, g->b);
}

/* aclFile, else $ROCKETMQ_HOME/conf/plain_acl.yml (RocketMQ's place); a missing or invalid file
 * is a start-up error. */
static int acl_start(broker_t *b, char *err, size_t errlen)
{
    char path[1200], msg[900];
    const char *home = getenv("ROCKETMQ_HOME");
    if (b->cfg.aclFile[0]) {
        snprintf(path, sizeof path, "%s", b->cfg.aclFile);
    } else if (home && home[0]) {
        snprintf(path, sizeof path, "%s/conf/plain_acl.yml", home);
    } else {
        snprintf(err, errlen,
                 "aclEnable=true needs aclFile=<path of plain_acl.yml> (or ROCKETMQ_HOME: "
                 "then $ROCKETMQ_HOME/conf/plain_acl.yml is read)");
        return FERRY_ECONFIG;
    }
    int rc = acl_open(path, ACL_POLL_MS, &b->acl, msg, sizeof msg);
    if (rc) {
        snprintf(err, errlen, "aclEnable=true: cannot load the ACL file %s", msg);
        return rc;
    }
    size_t n = sizeof handlers / sizeof handlers[0];
    b->acl_gates = ferry_calloc(n, sizeof *b->acl_gates);
    for (size_t i = 0; i < n; i++)
        b->acl_gates[i] = (struct acl_gate){b, handlers[i].fn};
    return 0;
}

static int start_server(broker_t *b, int port, remoting_server_t **out, char *err, size_t errlen)
{
    struct remoting_server_config sc;
    remoting_server_config_init(&sc);
    sc.bind_addr = b->cfg.bindAddress;
    sc.port = port;
    sc.io_threads = b->cfg.serverSelectorThreads;
    sc.idle_close_seconds = b->cfg.serverChannelMaxIdleTimeSeconds;
    sc.on_close = clients_on_close;
    sc.hook_arg = b;
    sc.tls_mode = b->cfg.tls.tlsMode;
    sc.tls = b->tls_server;
    int rc = remoting_server_new(&sc, out);
    if (rc) {
        snprintf(err, errlen, "remoting server: %s", ferry_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        remoting_server_register(*out, handlers[i].code, b->acl ? acl_gate : handlers[i].fn,
                                 b->acl ? (void *)&b->acl_gates[i] : b);
    char msg[256] = "";
    rc = remoting_server_start(*out, msg, sizeof msg);
    if (rc)
        snprintf(err, errlen, "listen on %s:%d: %s", b->cfg.bindAddress, port,
                 msg[0] ? msg : ferry_strerror(rc));
    return rc;
}

/* TLS (docs/TLS.md): tlsConfigFile over the keys, then the server context (client ports and
 * the HA port) and the client context (name servers, controllers, the master). */
static int tls_start(broker_t *b, char *err, size_t errlen)
{
    struct tls_client_config cc;
    int rc = tls_config_load_file(&b->cfg.tls, err, errlen);
    if (rc == 0)
        rc = tls_server_ctx_new(&b->cfg.tls, &b->tls_server, err, errlen);
    tls_client_config_from(&cc, &b->cfg.tls);
    if (rc == 0)
        rc = tls_client_ctx_new(&cc, &b->tls_client, err, errlen);
    /* The dashboard runs mqadmin's code in this process: its connections follow tlsEnable too
     * (one broker per process; with several, the last one started decides). */
    if (rc == 0 && b->tls_client)
        remoting_client_default_tls(b->tls_client);
    return rc;
}

int broker_start(broker_t *b, char *err, size_t errlen)
{
    int rc;
    b->start_ms = clock_wall_ms();
    if ((rc = tls_start(b, err, errlen)) != 0)
        return rc;
    if (b->cfg.aclEnable && (rc = acl_start(b, err, errlen)) != 0)
        return rc;
    if ((rc = start_server(b, b->cfg.listenPort, &b->srv, err, errlen)) != 0)
        return rc;
    b->port = remoting_server_port(b->srv);
    snprintf(b->ip, sizeof b->ip, "%s", b->cfg.brokerIP1);
    snprintf(b->addr, sizeof b->addr, "%s:%d", b->ip, b->port);
    snprintf(b->ha_addr, sizeof b->ha_addr, "%s:%d", b->ip,
             b->cfg.haListenPort ? b->cfg.haListenPort : b->port + 1);
    snprintf(b->cfg.store.storeHost, sizeof b->cfg.store.storeHost, "%s", b->addr);

    char msg[1024] = "";
    if ((rc = store_open(&b->cfg.store, &b->store, msg, sizeof msg)) != 0) {
        snprintf(err, errlen, "cannot open the store: %s", msg);
        return rc;
    }
    snprintf(b->config_dir, sizeof b->config_dir, "%s/config", b->cfg.store.storePathRootDir);
    if ((rc = fs_mkdirs(b->config_dir)) != 0) {
        snprintf(err, errlen, "create %s: %s", b->config_dir, ferry_strerror(rc));
        return rc;
    }
    if ((rc = topics_init(b, err, errlen)) != 0 || (rc = groups_init(b, err, errlen)) != 0 ||
        (rc = offsets_init(b, err, errlen)) != 0)
        return rc;
    b->mem_budget = broker_phys_mem() / 100 * b->cfg.accessMessageInMemoryMaxRatio;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    b->stats.yday = tm.tm_yday;
    store_set_arrive_cb(b->store, holds_on_arrive, b);
    if ((rc = pthread_create(&b->svc_thread, NULL, broker_svc_main, b)) != 0) {
        snprintf(err, errlen, "start the service thread: %s", strerror(rc));
        return -rc;
    }
    b->svc_started = 1;
    if ((rc = offsets_start(b)) != 0) {
        snprintf(err, errlen, "start the metadata writer thread: %s", ferry_strerror(rc));
        return rc;
    }
    if ((rc = sched_start(b, err, errlen)) != 0 || (rc = tx_start(b, err, errlen)) != 0 ||
        (rc = ha_start(b, err, errlen)) != 0 || (rc = slave_sync_start(b, err, errlen)) != 0)
        return rc;
    atomic_store_explicit(&b->ready, 1, memory_order_release);
    if ((rc = broker_reg_start(b)) != 0) {
        snprintf(err, errlen, "start the registration thread: %s", ferry_strerror(rc));
        return rc;
    }
    if (b->cfg.enableControllerMode && (rc = ctl_link_start(b, err, errlen)) != 0)
        return rc;
    if (b->cfg.fastListenPortEnable && b->cfg.listenPort > 2) {
        if ((rc = start_server(b, b->cfg.listenPort - 2, &b->fast_srv, err, errlen)) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (the VIP port; set fastListenPortEnable=false)");
            return rc;
        }
    }
    if ((rc = broker_web_start(b, err, errlen)) != 0)
        return rc;
    log_info(LOG_BROKER, "broker %s (cluster %s, %s) serving at %s, store %s, name servers: %s",
             b->cfg.brokerName, b->cfg.brokerClusterName, role_names[broker_role(b)], b->addr,
             b->cfg.store.storePathRootDir, b->cfg.namesrvAddr[0] ? b->cfg.namesrvAddr : "none");
    return 0;
}

int broker_port(const broker_t *b)
{
    return b->port;
}

const char *broker_addr(const broker_t *b)
{
    return b->addr;
}

store_t *broker_store(broker_t *b)
{
    return b->store;
}

void broker_free(broker_t *b)
{
    if (!b)
        return;
    atomic_store(&b->stopping, 1);
    broker_web_stop(b);
    remoting_server_free(b->fast_srv);
    remoting_server_free(b->srv);
    acl_free(b->acl); /* no handler runs any more */
    ferry_free(b->acl_gates);
    if (b->svc_started) {
        pthread_mutex_lock(&b->holds.mu);
        b->holds.stop = 1;
        pthread_cond_signal(&b->holds.cond);
        pthread_mutex_unlock(&b->holds.mu);
        pthread_join(b->svc_thread, NULL);
    }
    holds_drain(b);
    ctl_link_stop(b);
    broker_reg_stop(b);
    slave_sync_stop(b);
    ha_stop(b);
    ctl_link_free(b);
    sched_stop(b);
    tx_stop(b);
    offsets_stop(b);
    if (atomic_load(&b->ready)) {
        broker_persist(b, 1);
        log_info(LOG_BROKER, "broker %s stopped; metadata written", b->cfg.brokerName);
    }
    int flushed = b->store && store_write_state(b->store) != FERRY_EFENCED;
    if (b->store)
        store_set_repl_limit(b->store, -1); /* let dispatch finish: a clean close */
    store_close(b->store);
    ha_release(b); /* no thread can reach a retired replication object any more */
    sched_free(b, flushed);
    tx_free(b, flushed);
    broker_reg_close(b);
    holds_close(b);
    clients_close(b);
    topics_close(b);
    groups_close(b);
    offsets_close(b);
    bmetrics_free(b);
    pthread_rwlock_destroy(&b->topics.lock);
    pthread_mutex_destroy(&b->groups.mu);
    pthread_mutex_destroy(&b->offsets.mu);
    pthread_mutex_destroy(&b->offsets.wmu);
    pthread_cond_destroy(&b->offsets.wcond);
    pthread_mutex_destroy(&b->clients.mu);
    pthread_mutex_destroy(&b->stats.mu);
    pthread_mutex_destroy(&b->persist_mu);
    remoting_client_default_tls_clear(b->tls_client); /* if still ours */
    tls_ctx_unref(b->tls_server); /* every server and client using them is gone */
    tls_ctx_unref(b->tls_client);
    ferry_free(b);
}
