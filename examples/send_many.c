/* Send N numbered messages synchronously and print one line per acknowledged send.
 *
 *   example_send_many -n <namesrv> -t <topic> [-c count] [-g group] [--tag T] [--start I]
 *                     [--body-prefix P] [--key-prefix K] [--order-key K1,K2,...]
 *                     [--interval-ms M] [--timeout-ms M] [--pad N] [--delay-level N]
 *                     [--deliver-at-ms T] [--deliver-after-ms D] [--prop NAME=VALUE]...
 *                     [--print-time]
 *
 * Message i (i = start .. start+count-1) has the body "<body-prefix><i>" (default "msg-<i>"),
 * the tag T (default TagA), and with --key-prefix the key "<key-prefix><i>". With --order-key,
 * message i belongs to the sharding key K[i % nkeys]: its body is "<K>:<seq>" (seq counts the
 * messages of that key from --start / nkeys), and it is sent with ferry_send_to_queue() and
 * ferry_select_by_hash() so that every message of a key lands in one queue, in send order.
 * --pad N appends 'x' up to N bytes of body (bodies of 4096 bytes or more are compressed).
 *
 * Delayed and timed messages: --delay-level N sets the message's delay level (DELAY=N, the
 * broker's messageDelayLevel); --deliver-at-ms T sets the user property TIMER_DELIVER_MS=T
 * (absolute ms since the epoch); --deliver-after-ms D sets TIMER_DELIVER_MS to the wall-clock
 * time of each send + D. --prop NAME=VALUE (up to 8) adds any user property, e.g.
 * TIMER_DELAY_SEC=2 or __STARTDELIVERTIME=<ms>.
 *
 * stdout, one line per acknowledged send (flushed at once, so a test can follow progress):
 *
 *     SENT <msg_id> <broker_name> <queue_id> <queue_offset> <body>
 *
 * With --print-time a field "@<start>,<ack>" comes before <body>: the wall-clock times (ms
 * since the epoch) at which the send started and was acknowledged, so the broker stored the
 * message between the two (same clock, same machine). With --deliver-after-ms the field is
 * "@<start>,<ack>,<deliver_ms>" (the TIMER_DELIVER_MS sent).
 *
 * A send that was not acknowledged prints nothing on stdout and one line on stderr:
 * "FAILED <i> <reason>" (not stored) or "UNKNOWN <i> <reason>" (sent, no answer: it may be
 * stored). The last stderr line is a summary. Exit status: 0 when every send was acknowledged,
 * 1 otherwise, 2 for a usage error. The name server defaults to $NAMESRV_ADDR. */
#include "ferry/ferry.h"

#include "example_util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ORDER_KEYS 64
#define MAX_BODY       (1024 * 1024)
#define MAX_PROPS      8

struct options {
    const char *namesrv, *topic, *group, *tag, *body_prefix, *key_prefix;
    char *order_keys[MAX_ORDER_KEYS];
    int norder_keys;
    long count, start, interval_ms, timeout_ms, pad, delay_level, deliver_at_ms;
    long deliver_after_ms; /* -1: not set */
    struct ferry_property props[MAX_PROPS];
    int nprops, print_time;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: example_send_many -n <namesrv> -t <topic> [-c count] [-g group] [--tag T]\n"
               "         [--start I] [--body-prefix P] [--key-prefix K] [--order-key K1,K2,...]\n"
               "         [--interval-ms M] [--timeout-ms M] [--pad N] [--delay-level N]\n"
               "         [--deliver-at-ms T] [--deliver-after-ms D] [--prop NAME=VALUE]...\n"
               "         [--print-time]\n");
}

/* Splits the comma-separated list @s (modified in place) into o->order_keys. */
static int parse_order_keys(char *s, struct options *o)
{
    for (char *save = NULL, *k = strtok_r(s, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        if (o->norder_keys == MAX_ORDER_KEYS)
            return -1;
        o->order_keys[o->norder_keys++] = k;
    }
    return o->norder_keys ? 0 : -1;
}

/* Splits "NAME=VALUE" (modified in place) into the next user property. */
static int parse_prop(char *s, struct options *o)
{
    char *eq = strchr(s, '=');

    if (!eq || eq == s || !eq[1] || o->nprops == MAX_PROPS)
        return -1;
    *eq = 0;
    o->props[o->nprops++] = (struct ferry_property){.name = s, .value = eq + 1};
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"tag", required_argument, NULL, 'T'},
        {"start", required_argument, NULL, 's'},
        {"body-prefix", required_argument, NULL, 'b'},
        {"key-prefix", required_argument, NULL, 'k'},
        {"order-key", required_argument, NULL, 'o'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"timeout-ms", required_argument, NULL, 'm'},
        {"pad", required_argument, NULL, 'p'},
        {"delay-level", required_argument, NULL, 'd'},
        {"deliver-at-ms", required_argument, NULL, 'A'},
        {"deliver-after-ms", required_argument, NULL, 'D'},
        {"prop", required_argument, NULL, 'P'},
        {"print-time", no_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, bad = 0;

    *o = (struct options){.group = "PID_send_many",
                          .tag = "TagA",
                          .body_prefix = "msg-",
                          .count = 10,
                          .timeout_ms = 3000,
                          .deliver_after_ms = -1};
    while ((ch = getopt_long(argc, argv, "n:t:c:g:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            o->namesrv = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'g':
            o->group = optarg;
            break;
        case 'T':
            o->tag = optarg;
            break;
        case 'b':
            o->body_prefix = optarg;
            break;
        case 'k':
            o->key_prefix = optarg;
            break;
        case 'c':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->count);
            break;
        case 's':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->start);
            break;
        case 'i':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->interval_ms);
            break;
        case 'm':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->timeout_ms);
            break;
        case 'o':
            bad |= parse_order_keys(optarg, o);
            break;
        case 'p':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->pad);
            break;
        case 'd':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->delay_level);
            break;
        case 'A':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->deliver_at_ms);
            break;
        case 'D':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->deliver_after_ms);
            break;
        case 'P':
            bad |= parse_prop(optarg, o);
            break;
        case 'W':
            o->print_time = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || !o->topic || o->timeout_ms <= 0 || o->timeout_ms > 600000 ||
        o->pad > MAX_BODY || o->delay_level > 1000 ||
        (o->deliver_at_ms && o->deliver_after_ms >= 0))
        return -1;
    if (!o->namesrv && !getenv("NAMESRV_ADDR"))
        return -1;
    return 0;
}

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long n)
{
    struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (n % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sends message @i, built in @body (@cap bytes); prints its SENT line, or its FAILED/UNKNOWN line
 * on stderr. Returns the send's result code. */
static int send_one(ferry_producer_t *p, const struct options *o, long i, char *body, size_t cap)
{
    struct ferry_send_result res;
    char keys[256];
    struct ferry_message msg = {
        .topic = o->topic, .tags = o->tag, .body = body, .delay_level = (int)o->delay_level};
    struct ferry_property props[MAX_PROPS + 1];
    char deliver[32] = "", times[96] = "";
    char *order_key = NULL;
    size_t len, nprops = (size_t)o->nprops;
    long long start = wall_ms();
    int rc, n;

    if (o->norder_keys) {
        order_key = o->order_keys[i % o->norder_keys];
        n = snprintf(body, cap, "%s:%ld", order_key, i / o->norder_keys);
    } else {
        n = snprintf(body, cap, "%s%ld", o->body_prefix, i);
    }
    len = n < (int)cap ? (size_t)n : cap - 1;
    if ((size_t)o->pad > len && (size_t)o->pad < cap) {
        memset(body + len, 'x', (size_t)o->pad - len);
        len = (size_t)o->pad;
    }
    msg.body_len = len;
    memcpy(props, o->props, nprops * sizeof props[0]);
    if (o->deliver_at_ms)
        snprintf(deliver, sizeof deliver, "%ld", o->deliver_at_ms);
    else if (o->deliver_after_ms >= 0)
        snprintf(deliver, sizeof deliver, "%lld", start + o->deliver_after_ms);
    if (deliver[0])
        props[nprops++] = (struct ferry_property){.name = "TIMER_DELIVER_MS", .value = deliver};
    msg.props = nprops ? props : NULL;
    msg.nprops = nprops;
    if (o->key_prefix) {
        snprintf(keys, sizeof keys, "%s%ld", o->key_prefix, i);
        msg.keys = keys;
    }
    if (order_key)
        rc = ferry_send_to_queue(p, &msg, ferry_select_by_hash, order_key, 0, &res);
    else
        rc = ferry_send_sync(p, &msg, &res);
    if (rc == 0) {
        if (o->print_time)
            snprintf(times, sizeof times, "@%lld,%lld%s%s ", start, wall_ms(),
                     o->deliver_after_ms >= 0 ? "," : "", o->deliver_after_ms >= 0 ? deliver : "");
        printf("SENT %s %s %d %lld %s%.*s\n", res.msg_id, res.broker_name, res.queue_id,
               (long long)res.queue_offset, times, (int)len, body);
        fflush(stdout);
    } else {
        fprintf(stderr, "%s %ld %s%s%s\n", rc == FERRY_EUNKNOWN ? "UNKNOWN" : "FAILED", i,
                ferry_strerror(rc), rc == FERRY_ENOTSTORED ? ": " : "",
                rc == FERRY_ENOTSTORED ? res.remark : "");
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct ferry_producer_config cfg;
    struct options o;
    ferry_producer_t *p = NULL;
    char *body;
    size_t cap;
    long sent = 0, failed = 0, unknown = 0;
    int rc;

    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "%s", o.group);
    if (o.namesrv)
        snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o.namesrv);
    cfg.sendMsgTimeout = (int)o.timeout_ms;
    if ((rc = ferry_producer_new(&cfg, &p)) != 0 || (rc = ferry_producer_start(p)) != 0) {
        fprintf(stderr, "send_many: producer: %s\n", ferry_strerror(rc));
        ferry_producer_free(p);
        return 1;
    }
    cap = (size_t)o.pad + 1024;
    if (!(body = malloc(cap))) {
        fprintf(stderr, "send_many: out of memory\n");
        ferry_producer_free(p);
        return 1;
    }
    for (long i = o.start; i < o.start + o.count; i++) {
        rc = send_one(p, &o, i, body, cap);
        sent += rc == 0;
        unknown += rc == FERRY_EUNKNOWN;
        failed += rc != 0 && rc != FERRY_EUNKNOWN;
        if (o.interval_ms && i + 1 < o.start + o.count)
            sleep_ms(o.interval_ms);
    }
    free(body);
    ferry_producer_free(p);
    fprintf(stderr, "send_many: sent %ld failed %ld unknown %ld\n", sent, failed, unknown);
    return sent == o.count ? 0 : 1;
}
