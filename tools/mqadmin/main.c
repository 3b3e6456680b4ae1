/* mqadmin: FerryMQ's admin command line (the subcommands and option letters of RocketMQ
 * 4.9.8's mqadmin, plus dlqList/dlqView/dlqResend and groupList, and RocketMQ 5's haStatus,
 * getBrokerEpoch, getSyncStateSet, getControllerMetaData and electMaster). The subcommands are
 * the ferry_admin library, which the broker's dashboard also runs. Every subcommand opens its own
 * short-lived connections: one request to a name server, then requests to the brokers it names
 * (protocol/REMOTING.md §2.3, §2.4). Tables by default, --json for scripts. Exit 0 on success,
 * 1 on a failure (a message on stderr), 2 on a usage error. This file: the command table,
 * option parsing and dispatch; the subcommands are in topic.c, consumer.c, message.c, dlq.c,
 * ha.c, metrics.c (brokerMetrics, and FerryMQ's brokerThroughput). */
#include "mqadmin.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "now" (-1, only when @now_ok; so is "-1"), milliseconds since the epoch, or RocketMQ's
 * yyyy-MM-dd#HH:mm:ss:SSS in local time. 0 or -1. */
static int parse_ts(const char *s, int now_ok, int64_t *out)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    char *end;
    long long v;
    if (now_ok && strcmp(s, "now") == 0) {
        *out = -1;
        return 0;
    }
    v = strtoll(s, &end, 10);
    if (*s && !*end) {
        if (v < (now_ok ? -1 : 0))
            return -1;
        *out = v;
        return 0;
    }
    if (sscanf(s, "%4d-%2d-%2d#%2d:%2d:%2d:%3d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
        s[n] || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0 || ms < 0 || tm.tm_year < 1970)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

/* ---- command table and option parsing ---- */

/* getopt_long codes of --accessKey / --secretKey (outside the option letters of val[]). */
#define OPT_AK  0x101
#define OPT_SK  0x102
#define OPT_TLS 0x103 /* --tls */

struct cmd {
    const char *name, *opts, *usage, *desc;
    const char *required; /* option letters that must be given */
};

static const struct cmd cmds[] = {
    {"topicList", "n:", "[-n namesrv]", "list all topics", ""},
    {"topicRoute", "n:t:", "-t topic [-n namesrv]", "show a topic's route", "t"},
    {"clusterList", "n:", "[-n namesrv]", "list clusters and brokers", ""},
    {"updateTopic", "n:t:r:w:p:o:c:b:",
     "-t topic (-c cluster | -b brokerAddr) [-r readQueueNums] [-w writeQueueNums] [-p perm] "
     "[-o true|false] [-n namesrv]",
     "create or update a topic", "t"},
    {"deleteTopic", "n:t:c:", "-t topic -c cluster [-n namesrv]", "delete a topic", "tc"},
    {"topicStatus", "n:t:", "-t topic [-n namesrv]", "min/max offset of each queue", "t"},
    {"brokerStatus", "n:b:", "-b brokerAddr", "a broker's runtime info", "b"},
    {"brokerMetrics", "n:b:", "-b brokerAddr",
     "a broker's Prometheus metrics (what /metrics on its metricsPort shows)", "b"},
    {"brokerThroughput", "n:b:c:s:", "(-b brokerAddr | -c cluster) [-s seconds] [-n namesrv]",
     "puts/gets per second over the last 10 minutes, of a broker or of a cluster's brokers", ""},
    {"txStatus", "n:b:", "[-b brokerAddr] [-n namesrv]",
     "unresolved transactional half messages (count, oldest, a sample)", ""},
    {"consumerConnection", "n:g:b:", "-g group [-b brokerAddr] [-n namesrv]",
     "a consumer group's connections", "g"},
    {"queryMsgById", "n:i:", "-i offsetMsgId", "view a message by its offset message id", "i"},
    {"queryMsgByKey", "n:t:k:", "-t topic -k key [-n namesrv]", "find messages by key", "tk"},
    {"sendMessage", "n:t:p:k:c:", "-t topic -p body [-k keys] [-c tags] [-n namesrv]",
     "send one message", "tp"},
    {"groupList", "n:c:", "[-c cluster] [-n namesrv]",
     "consumer groups of the masters: subscription groups and groups with offsets", ""},
    {"consumerProgress", "n:g:t:", "-g group [-t topic] [-n namesrv]",
     "a consumer group's offsets and lag per queue", "g"},
    {"queryMsgByOffset", "n:t:b:i:o:", "-t topic -b brokerName -i queueId -o offset [-n namesrv]",
     "view the message at a queue offset", "tbio"},
    {"resetOffsetByTime", "n:g:t:s:f:c",
     "-g group -t topic -s now|earliest|latest|<ms>|yyyy-MM-dd#HH:mm:ss:SSS [-f true|false] [-c] "
     "[-n namesrv]",
     "reset a consumer group's offsets to a time (consumers online or not)", "gts"},
    {"resetOffsetByTimeOld", "n:g:t:s:f:",
     "-g group -t topic -s earliest|latest|<ms>|yyyy-MM-dd#HH:mm:ss:SSS [-f true|false] "
     "[-n namesrv]",
     "reset offsets with UPDATE_CONSUMER_OFFSET only (running consumers must restart)", "gts"},
    {"consumeMessage", "n:t:b:i:o:c:s:e:g:",
     "-t topic [-b brokerName [-i queueId [-o offset]]] [-c count] [-s beginTimestamp] "
     "[-e endTimestamp] [-g group] [-n namesrv]",
     "print a topic's messages (pulled, no offset commit)", "t"},
    {"updateSubGroup", "n:g:b:c:s:m:d:q:r:i:w:a:",
     "-g group (-b brokerAddr | -c cluster) [-s consumeEnable] [-m consumeFromMinEnable] "
     "[-d consumeBroadcastEnable] [-q retryQueueNums] [-r retryMaxTimes] [-i brokerId] "
     "[-w whichBrokerWhenConsumeSlowly] [-a notifyConsumerIdsChangedEnable] [-n namesrv]",
     "create or update a subscription group", "g"},
    {"dlqList", "n:g:c:b:", "-g group [-c count] [-b brokerName] [-n namesrv]",
     "list a consumer group's dead letters (%DLQ%<group>)", "g"},
    {"dlqView",
     "n:g:i:b:", "-g group -i msgId|offsetMsgId|queueOffset [-b brokerName] [-n namesrv]",
     "print one dead letter with every property", "gi"},
    {"dlqResend", "n:g:i:t:b:",
     "-g group (-i msgId|offsetMsgId|queueOffset | --all) [-t topic] [-b brokerName] "
     "[-n namesrv]",
     "send dead letters back to their original topic (they also stay in the DLQ)", "g"},
    /* RocketMQ 5's replication and controller commands (ha.c). electMaster's -bn brokerName is
     * read as -N (RocketMQ's two-letter option; -b is the brokerId there). */
    {"haStatus", "n:b:c:", "(-b brokerAddr | -c cluster) [-n namesrv]",
     "replication status of a broker, or of every broker of a cluster", ""},
    {"getBrokerEpoch", "n:b:c:", "(-b brokerName | -c cluster) [-n namesrv]",
     "the epoch entries (controller mode) of every broker of a set or a cluster", ""},
    {"getSyncStateSet",
     "n:a:b:c:", "-a controllerAddr[;addr...] [-b brokerName | -c cluster [-n namesrv]]",
     "master, epochs and sync state set of broker sets, from the controllers", "a"},
    {"getControllerMetaData", "a:", "-a controllerAddr[;addr...]",
     "the controller group: leader, peers", "a"},
    {"electMaster",
     "a:c:N:b:", "-a controllerAddr[;addr...] -c clusterName -bn brokerName -b brokerId",
     "make a broker of the sync state set the master of its set (designated election)", "acNb"},
};

static int usage_all(FILE *f)
{
    fprintf(f, "usage: mqadmin <command> [options] [--json]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-20s %s\n", cmds[i].name, cmds[i].desc);
    fprintf(f, "\nThe name server is -n host:port[;host:port] or $NAMESRV_ADDR.\n"
               "Brokers with aclEnable: --accessKey AK --secretKey SK (any command), or\n"
               "$FERRY_ACCESS_KEY and $FERRY_SECRET_KEY, sign every request.\n"
               "Servers with tlsMode=enforcing: --tls (or FERRY_TLS_ENABLE=true) connects\n"
               "with TLS; FERRY_TLS_CONFIG_FILE=tls.properties gives tls.client.* (docs/TLS.md).\n"
               "mqadmin <command> -h shows a command's options.\n");
    return 2;
}

/* An option letter as the user typed it (electMaster's -N is -bn). */
static const char *opt_name(const struct cmd *cmd, int ch)
{
    static char one[2];
    if (ch == 'N' && strcmp(cmd->name, "electMaster") == 0)
        return "bn";
    one[0] = (char)ch;
    return one;
}

static int usage(const struct cmd *cmd, const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "mqadmin: %s: ", cmd->name);
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
    fprintf(stderr, "usage: mqadmin %s %s [--json]\n", cmd->name, cmd->usage);
    return 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* An optional true|false option @letter into *@out (left alone when absent). */
static int parse_bool(const char *const *val, int letter, int *out)
{
    const char *s = val[letter];
    if (!s)
        return 0;
    if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
        return -1;
    *out = strcmp(s, "true") == 0;
    return 0;
}

static int main_reset(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    int old = strcmp(cmd->name, "resetOffsetByTimeOld") == 0;
    struct reset_opts o = {val['g'], val['t'], val['s'], 0, 1, val['c'] != NULL};
    /* earliest: timestamp 0, whose offset is the queue's first; latest: -1, the max offset
     * (what Java's -s now sends). */
    if (strcmp(o.ts_str, "earliest") == 0)
        o.ts = 0;
    else if (strcmp(o.ts_str, "latest") == 0)
        o.ts = -1;
    else if (parse_ts(o.ts_str, !old, &o.ts) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "bad timestamp %.64s: expected %searliest, latest, milliseconds since the epoch "
                 "or yyyy-MM-dd#HH:mm:ss:SSS",
                 o.ts_str, old ? "" : "now, ");
        return usage(cmd, "%s", msg);
    }
    if (parse_bool(val, 'f', &o.force) != 0)
        return usage(cmd, "%s", "-f must be true or false");
    return cmd_reset_offset(c, &o, old);
}

static int main_consume(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    struct consume_opts o = {val['t'], val['b'], val['g'] ? val['g'] : TOOLS_GROUP, -1, -1, 128,
                             0,        0};
    int64_t now = clock_wall_ms();
    if (val['i'] && !val['b'])
        return usage(cmd, "%s", "-i queueId needs -b brokerName");
    if (val['o'] && !val['i'])
        return usage(cmd, "%s", "-o offset needs -i queueId");
    if ((val['i'] && parse_int(val['i'], 0, 65535, &o.qid) != 0) ||
        (val['o'] && parse_i64(val['o'], 0, INT64_MAX, &o.offset) != 0) ||
        (val['c'] && parse_i64(val['c'], 1, INT64_MAX, &o.count) != 0))
        return usage(cmd, "%s", "-i must be a queue id, -o an offset, -c a positive count");
    if ((val['s'] && parse_ts(val['s'], 0, &o.begin) != 0) ||
        (val['e'] && parse_ts(val['e'], 0, &o.end) != 0))
        return usage(cmd, "%s",
                     "-s and -e must be milliseconds since the epoch or yyyy-MM-dd#HH:mm:ss:SSS");
    if (o.begin > now || o.end > now)
        return usage(cmd, "%s", "-s and -e must not be in the future");
    if (val['e'] && o.begin > o.end)
        return usage(cmd, "%s", "-s beginTimestamp must not be after -e endTimestamp");
    return cmd_consume_message(c, &o);
}

static int main_sub_group(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    struct group_opts o = {val['g'], val['b'], val['c'], 1, 0, 0, 1, 1, 16, 0, 1};
    if (!o.cluster == !o.broker)
        return usage(cmd, "%s", "give exactly one of -c cluster and -b brokerAddr");
    if (parse_bool(val, 's', &o.consume_enable) != 0 || parse_bool(val, 'm', &o.from_min) != 0 ||
        parse_bool(val, 'd', &o.broadcast) != 0 || parse_bool(val, 'a', &o.notify) != 0)
        return usage(cmd, "%s", "-s, -m, -d and -a must be true or false");
    if ((val['q'] && parse_int(val['q'], 0, 1024, &o.retry_queues) != 0) ||
        (val['r'] && parse_int(val['r'], -1, INT32_MAX, &o.retry_max) != 0) ||
        (val['i'] && parse_i64(val['i'], 0, INT32_MAX, &o.broker_id) != 0) ||
        (val['w'] && parse_i64(val['w'], 0, INT32_MAX, &o.slow_broker) != 0))
        return usage(cmd, "%s", "-q must be 0..1024, -r -1.., -i and -w broker ids (0..)");
    return cmd_update_sub_group(c, &o);
}

/* The replication and controller commands (main_ha). */
static int is_ha(const struct cmd *cmd)
{
    static const char *const names[] = {"haStatus", "getBrokerEpoch", "getSyncStateSet",
                                        "getControllerMetaData", "electMaster"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(cmd->name, names[i]) == 0)
            return 1;
    return 0;
}

/* Whether a replication / controller command needs the name server: to find brokers by
 * cluster or broker name. */
static int ha_needs_ns(const struct cmd *cmd, const char *const *val)
{
    if (strcmp(cmd->name, "haStatus") == 0)
        return !val['b'];
    if (strcmp(cmd->name, "getBrokerEpoch") == 0)
        return 1;
    if (strcmp(cmd->name, "getSyncStateSet") == 0)
        return val['c'] != NULL;
    return 0;
}

/* haStatus, getBrokerEpoch, getSyncStateSet, getControllerMetaData, electMaster (ha.c). */
static int main_ha(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    const char *b = val['b'], *cl = val['c'];
    if (strcmp(cmd->name, "getControllerMetaData") == 0)
        return cmd_controller_meta(c, val['a']);
    if (strcmp(cmd->name, "electMaster") == 0) {
        int64_t id;
        if (parse_i64(b, 0, INT64_MAX, &id) != 0)
            return usage(cmd, "%s", "-b must be a broker id (a number >= 0)");
        return cmd_elect_master(c, val['a'], cl, val['N'], id);
    }
    if (strcmp(cmd->name, "getSyncStateSet") == 0) {
        if (b && cl)
            return usage(cmd, "%s", "give at most one of -b brokerName and -c cluster");
        return cmd_sync_state_set(c, val['a'], b, cl);
    }
    if (!b == !cl)
        return usage(cmd, "give exactly one of -b %s and -c cluster",
                     cmd->name[0] == 'h' ? "brokerAddr" : "brokerName");
    if (strcmp(cmd->name, "haStatus") == 0)
        return cmd_ha_status(c, b, cl);
    return cmd_broker_epoch(c, b, cl);
}

/* brokerThroughput: -b | -c, -s 1..600 (default 600). */
static int main_throughput(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    int secs = 600;
    if (!val['b'] == !val['c'])
        return usage(cmd, "%s", "give exactly one of -b brokerAddr and -c cluster");
    if (val['s'] && parse_int(val['s'], 1, 600, &secs) != 0)
        return usage(cmd, "%s", "-s must be a number of seconds, 1..600");
    return cmd_broker_throughput(c, val['b'], val['c'], secs);
}

static int main_dlq(const struct cmd *cmd, const struct ctx *c, const char *const *val)
{
    struct dlq_opts o = {val['g'], val['i'], val['t'], val['b'], 128, val['A'] != NULL};
    if (val['c'] && parse_i64(val['c'], 1, INT64_MAX, &o.count) != 0)
        return usage(cmd, "%s", "-c must be a positive count");
    if (strcmp(cmd->name, "dlqList") == 0)
        return cmd_dlq_list(c, &o);
    if (strcmp(cmd->name, "dlqView") == 0)
        return cmd_dlq_view(c, &o);
    if (!o.id == !o.all)
        return usage(cmd, "%s", "give exactly one of -i id and --all");
    return cmd_dlq_resend(c, &o);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'J'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"all", no_argument, NULL, 'A'}, /* dlqResend only */
                                             {"accessKey", required_argument, NULL, OPT_AK},
                                             {"secretKey", required_argument, NULL, OPT_SK},
                                             {"tls", no_argument, NULL, OPT_TLS},
                                             {NULL, 0, NULL, 0}};
    struct tls_client_config tls = {0};
    tls_ctx_t *tls_ctx = NULL;
    const char *ak = getenv("FERRY_ACCESS_KEY"), *sk = getenv("FERRY_SECRET_KEY");
    const struct cmd *cmd = NULL;
    const char *val[128] = {0};
    struct ctx c = {.out = stdout, .err = stderr};
    char optstr[64];
    int ch;

    if (argc < 2)
        return usage_all(stderr);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_all(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            cmd = &cmds[i];
    if (!cmd) {
        fprintf(stderr, "mqadmin: unknown command %s\n", argv[1]);
        return usage_all(stderr);
    }
    c.cmd = cmd->name;
    if (strcmp(cmd->name, "electMaster") == 0) {
        static char bn[] = "-N";
        for (int i = 2; i < argc; i++)
            if (strcmp(argv[i], "-bn") == 0)
                argv[i] = bn;
    }
    snprintf(optstr, sizeof optstr, ":%sh", cmd->opts);
    opterr = 0;
    while ((ch = getopt_long(argc - 1, argv + 1, optstr, longopts, NULL)) != -1) {
        if (ch == 'J')
            c.json = 1;
        else if (ch == 'h')
            return usage(cmd, NULL, NULL), 0;
        else if (ch == 'A' && strcmp(cmd->name, "dlqResend") != 0)
            return usage(cmd, "unknown option %s", "--all");
        else if (ch == OPT_AK)
            ak = optarg;
        else if (ch == OPT_SK)
            sk = optarg;
        else if (ch == OPT_TLS)
            tls.enable = 1;
        else if (ch == ':')
            return usage(cmd, "option -%s needs a value", opt_name(cmd, optopt));
        else if (ch == '?')
            return optopt ? usage(cmd, "unknown option -%s", opt_name(cmd, optopt))
                          : usage(cmd, "unknown option %s", argv[optind]);
        else
            val[ch] = optarg ? optarg : "true"; /* a flag (resetOffsetByTime -c) */
    }
    if (optind < argc - 1)
        return usage(cmd, "unexpected argument %s", argv[optind + 1]);
    for (const char *r = cmd->required; *r; r++)
        if (!val[(unsigned char)*r])
            return usage(cmd, "option -%s is required", opt_name(cmd, *r));
    /* ACL (docs/ACL.md): every connection this thread opens signs with the account. */
    if ((ak && *ak) != (sk && *sk) || remoting_client_default_signer(ak, sk) != 0)
        return usage(cmd, "%s",
                     "give both --accessKey and --secretKey (or FERRY_ACCESS_KEY and "
                     "FERRY_SECRET_KEY), each at most 255 bytes");
    /* TLS (docs/TLS.md): every connection this process opens, libferry's included. */
    {
        static struct tls_config storage;
        char terr[512];
        if (tls_client_config_env(&tls, &storage, terr, sizeof terr) != 0 ||
            tls_client_ctx_new(&tls, &tls_ctx, terr, sizeof terr) != 0) {
            fprintf(stderr, "mqadmin: TLS: %s\n", terr);
            return 1;
        }
        remoting_client_default_tls(tls_ctx); /* the default's reference, kept until exit */
        tls_ctx_unref(tls_ctx);
    }
    c.ns = val['n'] ? val['n'] : getenv("NAMESRV_ADDR");
    if (!c.ns || !c.ns[0]) {
        if (strcmp(cmd->name, "brokerStatus") != 0 && strcmp(cmd->name, "brokerMetrics") != 0 &&
            !(strcmp(cmd->name, "brokerThroughput") == 0 && val['b']) &&
            strcmp(cmd->name, "queryMsgById") != 0 &&
            !(strcmp(cmd->name, "txStatus") == 0 && val['b']) &&
            !((strcmp(cmd->name, "consumerConnection") == 0 ||
               strcmp(cmd->name, "updateSubGroup") == 0) &&
              val['b']) &&
            !(is_ha(cmd) && !ha_needs_ns(cmd, val)))
            return usage(cmd, "%s", "no name server: give -n host:port or set NAMESRV_ADDR");
        c.ns = "";
    }

    if (strcmp(cmd->name, "topicList") == 0)
        return cmd_topic_list(&c);
    if (strcmp(cmd->name, "topicRoute") == 0)
        return cmd_topic_route(&c, val['t']);
    if (strcmp(cmd->name, "clusterList") == 0)
        return cmd_cluster_list(&c);
    if (strcmp(cmd->name, "updateTopic") == 0 || strcmp(cmd->name, "deleteTopic") == 0) {
        struct topic_opts o = {val['t'], val['c'], val['b'], 8, 8, 6, 0};
        if (cmd->name[0] == 'd')
            return cmd_delete_topic(&c, &o);
        if (!o.cluster == !o.broker)
            return usage(cmd, "%s", "give exactly one of -c cluster and -b brokerAddr");
        if ((val['r'] && parse_int(val['r'], 1, 1024, &o.rq) != 0) ||
            (val['w'] && parse_int(val['w'], 1, 1024, &o.wq) != 0) ||
            (val['p'] && parse_int(val['p'], 0, 7, &o.perm) != 0))
            return usage(cmd, "%s", "-r and -w must be 1..1024, -p 0..7");
        if (val['o'] && strcmp(val['o'], "true") != 0 && strcmp(val['o'], "false") != 0)
            return usage(cmd, "%s", "-o must be true or false");
        o.order = val['o'] && strcmp(val['o'], "true") == 0;
        return cmd_update_topic(&c, &o);
    }
    if (strcmp(cmd->name, "topicStatus") == 0)
        return cmd_topic_status(&c, val['t']);
    if (strcmp(cmd->name, "brokerStatus") == 0)
        return cmd_broker_status(&c, val['b']);
    if (strcmp(cmd->name, "brokerMetrics") == 0)
        return cmd_broker_metrics(&c, val['b']);
    if (strcmp(cmd->name, "brokerThroughput") == 0)
        return main_throughput(cmd, &c, val);
    if (strcmp(cmd->name, "txStatus") == 0)
        return cmd_tx_status(&c, val['b']);
    if (strcmp(cmd->name, "consumerConnection") == 0)
        return cmd_consumer_connection(&c, val['g'], val['b']);
    if (strcmp(cmd->name, "queryMsgById") == 0)
        return cmd_query_by_id(&c, val['i']);
    if (strcmp(cmd->name, "queryMsgByKey") == 0)
        return cmd_query_by_key(&c, val['t'], val['k']);
    if (strcmp(cmd->name, "groupList") == 0)
        return cmd_group_list(&c, val['c']);
    if (strcmp(cmd->name, "consumerProgress") == 0)
        return cmd_consumer_progress(&c, val['g'], val['t']);
    if (strcmp(cmd->name, "queryMsgByOffset") == 0) {
        int qid;
        int64_t off;
        if (parse_int(val['i'], 0, 65535, &qid) != 0 || parse_i64(val['o'], 0, INT64_MAX, &off))
            return usage(cmd, "%s", "-i must be a queue id and -o an offset (numbers >= 0)");
        return cmd_query_by_offset(&c, val['t'], val['b'], qid, off);
    }
    if (strncmp(cmd->name, "resetOffsetByTime", 17) == 0)
        return main_reset(cmd, &c, val);
    if (strcmp(cmd->name, "consumeMessage") == 0)
        return main_consume(cmd, &c, val);
    if (strcmp(cmd->name, "updateSubGroup") == 0)
        return main_sub_group(cmd, &c, val);
    if (strncmp(cmd->name, "dlq", 3) == 0)
        return main_dlq(cmd, &c, val);
    if (is_ha(cmd))
        return main_ha(cmd, &c, val);
    struct ferry_message m = {.topic = val['t'],
                              .tags = val['c'],
                              .keys = val['k'],
                              .body = val['p'],
                              .body_len = strlen(val['p'])};
    if (m.body_len == 0)
        return usage(cmd, "%s", "-p body must not be empty");
    return cmd_send(&c, &m);
}
