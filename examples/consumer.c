/* A push consumer on the command line: subscribes one topic and prints every message it consumes.
 *
 *   example_consumer -n <namesrv> -g <group> -t <topic> [-e tagExpr] [--broadcast] [--orderly]
 *                    [--from-first] [--fail-every N] [--sleep-ms M] [--offset-dir D]
 *                    [--instance NAME] [--threads N] [--batch N] [--rebalance-ms MS]
 *                    [--persist-ms MS] [--pull-batch N] [--pull-threshold N]
 *                    [--fail-times K] [--always-fail] [--fail-tag T] [--max-reconsume N]
 *                    [--print-time]
 *
 *   -e tagExpr       "*" (default) or "TagA || TagB"
 *   --broadcast      BROADCASTING (every instance gets every message, offsets in local files
 *                    under --offset-dir, default $HOME/.rocketmq_offsets); default CLUSTERING
 *   --orderly        orderly consumption: one listener call at a time per queue, queue locks
 *   --from-first     a group without committed offsets starts at each queue's first message
 *                    (default: at the queue's end, i.e. new messages only)
 *   --fail-every N   answer RECONSUME_LATER for every Nth delivery of a message that was never
 *                    retried (reconsume_times 0), so that each one is consumed on its first
 *                    retry (for retry tests); the answer covers the listener call's batch
 *   --fail-times K   answer RECONSUME_LATER while the message's reconsume_times < K, so that it
 *                    is consumed on its Kth retry (K + 1 deliveries)
 *   --always-fail    answer RECONSUME_LATER for every delivery (the message ends in the
 *                    dead-letter queue %DLQ%<group> after maxReconsumeTimes retries)
 *   --fail-tag T     apply --fail-every, --fail-times and --always-fail only to messages with
 *                    the tag T; the others are consumed at once
 *   --max-reconsume N  maxReconsumeTimes: retries before the broker moves the message to the
 *                    dead-letter queue (default: the broker's, 16)
 *   --print-time     add the field "@<now>,<born>,<store>" after <reconsume_times>: the
 *                    wall-clock time of the delivery, the message's born and store timestamps
 *                    (ms since the epoch)
 *   --sleep-ms M     spend M ms on each message (slow consumer)
 *   --instance NAME  instanceName (client id <ip>@NAME); default the process id
 *   --threads N      listener threads; --batch N: messages per listener call
 *   --rebalance-ms, --persist-ms: rebalanceInterval and persistConsumerOffsetInterval
 *   --pull-batch N, --pull-threshold N: pullBatchSize and pullThresholdForQueue (messages
 *                    fetched per pull, and cached per queue before pulling pauses)
 *
 * stdout, one line per message and delivery, flushed at once (lines of different listener
 * threads never mix):
 *
 *     MSG <broker> <queue_id> <queue_offset> <msg_id> <reconsume_times> <tags> <keys> <body>
 *
 * With --print-time:
 *
 *     MSG <broker> <queue_id> <queue_offset> <msg_id> <reconsume_times> @<now>,<born>,<store>
 *         <tags> <keys> <body>
 *
 * "LATER" instead of "MSG" marks a delivery answered with RECONSUME_LATER (--fail-every,
 * --fail-times, --always-fail): the message is not consumed yet and comes again. <tags> and <keys>
 * are "-" when absent, and the spaces between keys are written as ','. <body> runs to the end of
 * the line; its bytes outside printable ASCII and '\' are written as \xNN.
 *
 * SIGTERM or SIGINT stops the consumer with ferry_push_consumer_shutdown(), which waits for
 * running listener calls and commits the offsets, then prints "STOPPED" on stderr and exits 0.
 * Exit status 1: the consumer could not start; 2: usage error. */
#include "ferry/ferry.h"

#include "example_util.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct options {
    const char *namesrv, *group, *topic, *expr, *offset_dir, *instance, *fail_tag;
    int broadcast, orderly, from_first, always_fail, print_time;
    long fail_every, sleep_ms, threads, batch, rebalance_ms, persist_ms, pull_batch, pull_threshold;
    long fail_times, max_reconsume;
};

struct state {
    const struct options *o;
    atomic_long deliveries; /* messages handed to the listener so far */
};

static void usage(FILE *f)
{
    fprintf(
        f, "usage: example_consumer -n <namesrv> -g <group> -t <topic> [-e tagExpr] [--broadcast]\n"
           "         [--orderly] [--from-first] [--fail-every N] [--sleep-ms M] [--offset-dir D]\n"
           "         [--instance NAME] [--threads N] [--batch N] [--rebalance-ms MS]\n"
           "         [--persist-ms MS] [--pull-batch N] [--pull-threshold N]\n"
           "         [--fail-times K] [--always-fail] [--fail-tag T] [--max-reconsume N]\n"
           "         [--print-time]\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
    enum {
        O_BROADCAST = 256,
        O_ORDERLY,
        O_FIRST,
        O_FAIL,
        O_SLEEP,
        O_DIR,
        O_INST,
        O_THREADS,
        O_BATCH,
        O_REBALANCE,
        O_PERSIST,
        O_PULL_BATCH,
        O_PULL_THRESHOLD,
        O_FAIL_TIMES,
        O_ALWAYS_FAIL,
        O_FAIL_TAG,
        O_MAX_RECONSUME,
        O_PRINT_TIME
    };
    static const struct option longopts[] = {
        {"broadcast", no_argument, NULL, O_BROADCAST},
        {"orderly", no_argument, NULL, O_ORDERLY},
        {"from-first", no_argument, NULL, O_FIRST},
        {"fail-every", required_argument, NULL, O_FAIL},
        {"sleep-ms", required_argument, NULL, O_SLEEP},
        {"offset-dir", required_argument, NULL, O_DIR},
        {"instance", required_argument, NULL, O_INST},
        {"threads", required_argument, NULL, O_THREADS},
        {"batch", required_argument, NULL, O_BATCH},
        {"rebalance-ms", required_argument, NULL, O_REBALANCE},
        {"persist-ms", required_argument, NULL, O_PERSIST},
        {"pull-batch", required_argument, NULL, O_PULL_BATCH},
        {"pull-threshold", required_argument, NULL, O_PULL_THRESHOLD},
        {"fail-times", required_argument, NULL, O_FAIL_TIMES},
        {"always-fail", no_argument, NULL, O_ALWAYS_FAIL},
        {"fail-tag", required_argument, NULL, O_FAIL_TAG},
        {"max-reconsume", required_argument, NULL, O_MAX_RECONSUME},
        {"print-time", no_argument, NULL, O_PRINT_TIME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, bad = 0;

    *o = (struct options){.expr = "*", .max_reconsume = -1};
    while ((ch = getopt_long(argc, argv, "n:g:t:e:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            o->namesrv = optarg;
            break;
        case 'g':
            o->group = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'e':
            o->expr = optarg;
            break;
        case O_BROADCAST:
            o->broadcast = 1;
            break;
        case O_ORDERLY:
            o->orderly = 1;
            break;
        case O_FIRST:
            o->from_first = 1;
            break;
        case O_DIR:
            o->offset_dir = optarg;
            break;
        case O_INST:
            o->instance = optarg;
            break;
        case O_FAIL:
            bad |= ex_parse_long(optarg, 0, 1000000000, &o->fail_every);
            break;
        case O_SLEEP:
            bad |= ex_parse_long(optarg, 0, 600000, &o->sleep_ms);
            break;
        case O_THREADS:
            bad |= ex_parse_long(optarg, 1, 1000, &o->threads);
            break;
        case O_BATCH:
            bad |= ex_parse_long(optarg, 1, 1024, &o->batch);
            break;
        case O_REBALANCE:
            bad |= ex_parse_long(optarg, 1, 3600000, &o->rebalance_ms);
            break;
        case O_PERSIST:
            bad |= ex_parse_long(optarg, 1, 3600000, &o->persist_ms);
            break;
        case O_PULL_BATCH:
            bad |= ex_parse_long(optarg, 1, 1024, &o->pull_batch);
            break;
        case O_PULL_THRESHOLD:
            bad |= ex_parse_long(optarg, 1, 65535, &o->pull_threshold);
            break;
        case O_FAIL_TIMES:
            bad |= ex_parse_long(optarg, 0, 1000, &o->fail_times);
            break;
        case O_ALWAYS_FAIL:
            o->always_fail = 1;
            break;
        case O_FAIL_TAG:
            o->fail_tag = optarg;
            break;
        case O_MAX_RECONSUME:
            bad |= ex_parse_long(optarg, 0, 1000, &o->max_reconsume);
            break;
        case O_PRINT_TIME:
            o->print_time = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || !o->group || !o->topic)
        return -1;
    if (!o->namesrv && !getenv("NAMESRV_ADDR"))
        return -1;
    return 0;
}

static void sleep_ms(long n)
{
    struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (n % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Writes @s (NULL: "-") with spaces as ','. @f is locked by the caller. */
static void put_word(FILE *f, const char *s)
{
    if (!s || !*s) {
        putc_unlocked('-', f);
        return;
    }
    for (; *s; s++)
        putc_unlocked(*s == ' ' ? ',' : *s, f);
}

/* Writes @len bytes of @body, escaping what would break the line. @f is locked by the caller. */
static void put_body(FILE *f, const unsigned char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] >= 0x20 && body[i] < 0x7f && body[i] != '\\')
            putc_unlocked(body[i], f);
        else
            fprintf(f, "\\x%02x", body[i]);
    }
}

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints one delivery; @now is its wall-clock time (ms), or -1 when not printed. */
static void print_msg(const char *what, const struct ferry_message_ext *m, long long now)
{
    flockfile(stdout);
    fprintf(stdout, "%s %s %d %lld %s %d ", what, m->broker_name ? m->broker_name : "-",
            m->queue_id, (long long)m->queue_offset, m->msg_id ? m->msg_id : "-",
            (int)m->reconsume_times);
    if (now >= 0)
        fprintf(stdout, "@%lld,%lld,%lld ", now, (long long)m->born_timestamp,
                (long long)m->store_timestamp);
    put_word(stdout, m->tags);
    putc_unlocked(' ', stdout);
    put_word(stdout, m->keys);
    putc_unlocked(' ', stdout);
    put_body(stdout, m->body, m->body_len);
    putc_unlocked('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
}

/* Whether the delivery of @m (the @k-th delivery of this process) is answered with
 * RECONSUME_LATER. */
static int should_fail(const struct options *o, const struct ferry_message_ext *m, long k)
{
    if (o->fail_tag && (!m->tags || strcmp(m->tags, o->fail_tag) != 0))
        return 0;
    if (o->always_fail)
        return 1;
    if (o->fail_times && m->reconsume_times < o->fail_times)
        return 1;
    return o->fail_every && m->reconsume_times == 0 && k % o->fail_every == 0;
}

/* The listener: sleeps if asked, decides whether this delivery fails, prints every message with
 * the outcome. Runs on library threads. */
static enum ferry_consume_status on_msgs(const struct ferry_message_ext *msgs, size_t n, void *arg)
{
    struct state *st = arg;
    enum ferry_consume_status status = FERRY_CONSUME_SUCCESS;
    long long now = st->o->print_time ? wall_ms() : -1;

    for (size_t i = 0; i < n; i++) {
        long k = atomic_fetch_add(&st->deliveries, 1) + 1;

        if (should_fail(st->o, &msgs[i], k))
            status = FERRY_RECONSUME_LATER;
        if (st->o->sleep_ms)
            sleep_ms(st->o->sleep_ms);
    }
    /* The status covers the whole batch: print every message with it. */
    for (size_t i = 0; i < n; i++)
        print_msg(status == FERRY_CONSUME_SUCCESS ? "MSG" : "LATER", &msgs[i], now);
    return status;
}

static void fill_config(const struct options *o, struct ferry_consumer_config *cfg)
{
    ferry_consumer_config_init(cfg);
    snprintf(cfg->group, sizeof cfg->group, "%s", o->group);
    if (o->namesrv)
        snprintf(cfg->namesrvAddr, sizeof cfg->namesrvAddr, "%s", o->namesrv);
    if (o->instance)
        snprintf(cfg->instanceName, sizeof cfg->instanceName, "%s", o->instance);
    if (o->offset_dir)
        snprintf(cfg->offsetStoreDir, sizeof cfg->offsetStoreDir, "%s", o->offset_dir);
    cfg->messageModel = o->broadcast ? FERRY_BROADCASTING : FERRY_CLUSTERING;
    if (o->from_first)
        cfg->consumeFromWhere = FERRY_CONSUME_FROM_FIRST_OFFSET;
    cfg->orderly = o->orderly;
    if (o->threads) {
        cfg->consumeThreadMin = (int)o->threads;
        cfg->consumeThreadMax = (int)o->threads;
    }
    if (o->batch)
        cfg->consumeMessageBatchMaxSize = (int)o->batch;
    if (o->rebalance_ms)
        cfg->rebalanceInterval = (int)o->rebalance_ms;
    if (o->persist_ms)
        cfg->persistConsumerOffsetInterval = (int)o->persist_ms;
    if (o->pull_batch)
        cfg->pullBatchSize = (int)o->pull_batch;
    if (o->pull_threshold)
        cfg->pullThresholdForQueue = (int)o->pull_threshold;
    if (o->max_reconsume >= 0)
        cfg->maxReconsumeTimes = (int)o->max_reconsume;
}

int main(int argc, char **argv)
{
    struct ferry_consumer_config cfg;
    struct options o;
    struct state st;
    ferry_push_consumer_t *c = NULL;
    sigset_t stop_sigs;
    int rc, sig = 0;

    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    st.o = &o;
    atomic_init(&st.deliveries, 0);
    fill_config(&o, &cfg);

    /* Block the stop signals before any library thread exists, so that every thread inherits
     * the mask and only sigwait() below receives them. */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

    if ((rc = ferry_push_consumer_new(&cfg, on_msgs, &st, &c)) != 0 ||
        (rc = ferry_push_consumer_subscribe(c, o.topic, o.expr)) != 0 ||
        (rc = ferry_push_consumer_start(c)) != 0) {
        fprintf(stderr, "consumer: %s\n", ferry_strerror(rc));
        ferry_push_consumer_free(c);
        return 1;
    }
    fprintf(stderr, "STARTED group=%s topic=%s expr=%s %s%s\n", o.group, o.topic, o.expr,
            o.broadcast ? "broadcasting" : "clustering", o.orderly ? " orderly" : "");
    while (sigwait(&stop_sigs, &sig) != 0)
        ;
    fprintf(stderr, "signal %d: shutting down\n", sig);
    ferry_push_consumer_shutdown(c);
    ferry_push_consumer_free(c);
    fprintf(stderr, "STOPPED after %ld deliveries\n", (long)atomic_load(&st.deliveries));
    return 0;
}
