/* A lite pull consumer on the command line: takes every queue of one topic, polls, prints each
 * message, and commits what it printed.
 *
 *   example_pull_consumer -n <namesrv> -g <group> -t <topic> [--from-first]
 *                         [--idle-exit-ms M] [--max N]
 *
 *   --from-first      queues without a committed offset start at their first message (default:
 *                     at their end)
 *   --idle-exit-ms M  stop once no message came for M ms (default: run until SIGTERM/SIGINT)
 *   --max N           stop after N messages
 *
 * stdout, one line per message, flushed at once (the format of example_consumer):
 *
 *     MSG <broker> <queue_id> <queue_offset> <msg_id> <reconsume_times> <tags> <keys> <body>
 *
 * The queues are those of the topic's route when the program starts. Every poll's messages
 * are printed before the next poll, and ferry_pull_consumer_commit() runs after each
 * non-empty poll and at the end, so the group's offsets never pass an unprinted message. At
 * the end "STOPPED <count>" goes to stderr and the exit status is 0 (1: a library call failed;
 * 2: usage error). */
#include "ferry/ferry.h"

#include "example_util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct options {
    const char *namesrv, *group, *topic;
    int from_first;
    long idle_exit_ms, max;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: example_pull_consumer -n <namesrv> -g <group> -t <topic> [--from-first]\n"
               "         [--idle-exit-ms M] [--max N]\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"from-first", no_argument, NULL, 'f'},
        {"idle-exit-ms", required_argument, NULL, 'i'},
        {"max", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, bad = 0;

    *o = (struct options){0};
    while ((ch = getopt_long(argc, argv, "n:g:t:h", longopts, NULL)) != -1) {
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
        case 'f':
            o->from_first = 1;
            break;
        case 'i':
            bad |= ex_parse_long(optarg, 1, LONG_MAX, &o->idle_exit_ms);
            break;
        case 'm':
            bad |= ex_parse_long(optarg, 1, LONG_MAX, &o->max);
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

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_msg(const struct ferry_message_ext *m)
{
    const unsigned char *b = m->body;

    printf("MSG %s %d %lld %s %d ", m->broker_name ? m->broker_name : "-", m->queue_id,
           (long long)m->queue_offset, m->msg_id ? m->msg_id : "-", (int)m->reconsume_times);
    for (const char *s = m->tags && *m->tags ? m->tags : "-"; *s; s++)
        putchar(*s == ' ' ? ',' : *s);
    putchar(' ');
    for (const char *s = m->keys && *m->keys ? m->keys : "-"; *s; s++)
        putchar(*s == ' ' ? ',' : *s);
    putchar(' ');
    for (size_t i = 0; i < m->body_len; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            putchar(b[i]);
        else
            printf("\\x%02x", b[i]);
    }
    putchar('\n');
}

/* Polls until a stop condition; returns 0 or the failing call's error. */
static int consume(ferry_pull_consumer_t *c, const struct options *o, long *count)
{
    long long last = now_ms();
    int rc;

    while (!stop_requested && (!o->max || *count < o->max)) {
        const struct ferry_message_ext *msgs;
        size_t n;

        if ((rc = ferry_pull_consumer_poll(c, 200, &msgs, &n)) != 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            print_msg(&msgs[i]);
        fflush(stdout);
        *count += (long)n;
        if (n) {
            last = now_ms();
            if ((rc = ferry_pull_consumer_commit(c)) != 0)
                return rc;
        } else if (o->idle_exit_ms && now_ms() - last >= o->idle_exit_ms) {
            break;
        }
    }
    return ferry_pull_consumer_commit(c);
}

int main(int argc, char **argv)
{
    struct ferry_consumer_config cfg;
    struct options o;
    struct sigaction sa;
    ferry_pull_consumer_t *c = NULL;
    struct ferry_mq *mqs = NULL;
    size_t nmqs = 0;
    long count = 0;
    int rc;

    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    ferry_consumer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "%s", o.group);
    if (o.namesrv)
        snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o.namesrv);
    if (o.from_first)
        cfg.consumeFromWhere = FERRY_CONSUME_FROM_FIRST_OFFSET;
    cfg.autoCommit = 0;
    if ((rc = ferry_pull_consumer_new(&cfg, &c)) != 0 || (rc = ferry_pull_consumer_start(c)) != 0 ||
        (rc = ferry_pull_consumer_fetch_queues(c, o.topic, &mqs, &nmqs)) != 0 ||
        (rc = ferry_pull_consumer_assign(c, mqs, nmqs)) != 0)
        goto out;
    fprintf(stderr, "STARTED group=%s topic=%s queues=%zu\n", o.group, o.topic, nmqs);
    rc = consume(c, &o, &count);
out:
    if (rc != 0)
        fprintf(stderr, "pull_consumer: %s\n", ferry_strerror(rc));
    free(mqs);
    ferry_pull_consumer_free(c);
    fprintf(stderr, "STOPPED %ld\n", count);
    return rc == 0 ? 0 : 1;
}
