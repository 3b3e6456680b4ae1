/* The chaos suite's workload client (tests/chaos/chaos.js drives it): a producer or a push
 * consumer that records every operation in a history file, one line per event written with a
 * single write(2) on an O_APPEND descriptor, so that a line is either fully there or absent
 * after a kill -9.
 *
 *   chaos_client produce -n <namesrv> -t <topic> --id <instance> --log <file>
 *                        [--interval-ms M] [--ordered-pct P] [--keys K] [--queues Q]
 *                        [--timeout-ms T] [--resend N]
 *   chaos_client consume -n <namesrv> -t <topic> -g <group> --instance <name> --log <file>
 *                        [--orderly] [--threads N]
 *
 * produce: sends until SIGTERM. Message <seq> of instance <id> has the id "<id>-<seq>" (its
 * KEYS and, with its sharding key and per-key sequence number, its body "id=<id> key=<key>
 * kseq=<n>"). --ordered-pct P percent of the messages are ordered: their sharding key is one of
 * K keys "<id>-k<j>" (per-key sequence numbers from 1) and they are sent once with
 * ferry_send_to_queue() to the queue ferry_select_by_hash() picks, but only while the route has
 * exactly Q writable queues (both brokers), so that a key never changes queue (else the send is
 * refused: FAIL with FERRY_EINVAL, not sent). The others are plain ferry_send_sync() sends
 * (library retries on another broker); a plain send that did not end in ACK is sent again with
 * the same id, up to --resend N more attempts (default 2), as an at-least-once application
 * would. Lines (t = CLOCK_MONOTONIC in microseconds, comparable between processes):
 *
 *     SEND <id> <plain|ordered> <key|-> <kseq|0> <attempt> <t>      before the call
 *     ACK <id> <broker> <queue> <offset> <msgId> <t>                 after it: SEND_OK
 *     FAIL <id> <rc> <t> <reason...>                                 after it: not stored, or
 *                                                                    rc -10012: unknown
 *
 * rc -10012 (FERRY_EUNKNOWN) also stands for a send the broker stored without confirming its
 * durability (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE; reason "stored,
 * not acknowledged: <status>"): only SEND_OK is an acknowledgement.
 *
 * A SEND without a following ACK/FAIL of the same id means the process died during the call.
 *
 * consume: a clustering push consumer (concurrent, or orderly with --orderly) from the first
 * offset. For every message, before the listener returns CONSUME_SUCCESS:
 *
 *     DELIVER <id> <broker> <queue> <offset> <reconsumeTimes> <instance> <t>
 *
 * where <id> is the message's KEYS; "CORRUPT <broker> <queue> <offset> <keys> <body>" when the
 * body does not name the same id. SIGTERM/SIGINT: both modes shut the client down cleanly (the
 * consumer commits its offsets), write "STOPPED" to the log and exit 0. Exit 1: could not start;
 * 2: usage. */
#include "ferry/ferry.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEYS 64

struct options {
    const char *mode, *namesrv, *topic, *group, *id, *log, *instance;
    long interval_ms, ordered_pct, keys, queues, timeout_ms, resend, threads;
    int orderly;
};

static int log_fd = -1;
static volatile sig_atomic_t stop_flag;

static void usage(FILE *f)
{
    fprintf(f, "usage: chaos_client produce -n <namesrv> -t <topic> --id <instance> --log <file>\n"
               "           [--interval-ms M] [--ordered-pct P] [--keys K] [--queues Q]\n"
               "           [--timeout-ms T] [--resend N]\n"
               "       chaos_client consume -n <namesrv> -t <topic> -g <group> --instance <name>\n"
               "           --log <file> [--orderly] [--threads N]\n");
}

static int parse_num(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    enum {
        O_ID = 256,
        O_LOG,
        O_INST,
        O_INTERVAL,
        O_PCT,
        O_KEYS,
        O_QUEUES,
        O_TIMEOUT,
        O_RESEND,
        O_ORDERLY,
        O_THREADS
    };
    static const struct option longopts[] = {
        {"id", required_argument, NULL, O_ID},
        {"log", required_argument, NULL, O_LOG},
        {"instance", required_argument, NULL, O_INST},
        {"interval-ms", required_argument, NULL, O_INTERVAL},
        {"ordered-pct", required_argument, NULL, O_PCT},
        {"keys", required_argument, NULL, O_KEYS},
        {"queues", required_argument, NULL, O_QUEUES},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"resend", required_argument, NULL, O_RESEND},
        {"orderly", no_argument, NULL, O_ORDERLY},
        {"threads", required_argument, NULL, O_THREADS},
        {NULL, 0, NULL, 0},
    };
    int ch, bad = 0;

    *o = (struct options){.interval_ms = 20,
                          .ordered_pct = 50,
                          .keys = 4,
                          .queues = 8,
                          .timeout_ms = 3000,
                          .resend = 2,
                          .threads = 4};
    if (argc < 2)
        return -1;
    o->mode = argv[1];
    optind = 2;
    while ((ch = getopt_long(argc, argv, "n:t:g:", longopts, NULL)) != -1) {
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
        case O_ID:
            o->id = optarg;
            break;
        case O_LOG:
            o->log = optarg;
            break;
        case O_INST:
            o->instance = optarg;
            break;
        case O_INTERVAL:
            bad |= parse_num(optarg, 0, 60000, &o->interval_ms);
            break;
        case O_PCT:
            bad |= parse_num(optarg, 0, 100, &o->ordered_pct);
            break;
        case O_KEYS:
            bad |= parse_num(optarg, 1, MAX_KEYS, &o->keys);
            break;
        case O_QUEUES:
            bad |= parse_num(optarg, 1, 1024, &o->queues);
            break;
        case O_TIMEOUT:
            bad |= parse_num(optarg, 100, 600000, &o->timeout_ms);
            break;
        case O_RESEND:
            bad |= parse_num(optarg, 0, 100, &o->resend);
            break;
        case O_ORDERLY:
            o->orderly = 1;
            break;
        case O_THREADS:
            bad |= parse_num(optarg, 1, 64, &o->threads);
            break;
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || !o->namesrv || !o->topic || !o->log)
        return -1;
    if (strcmp(o->mode, "produce") == 0)
        return o->id ? 0 : -1;
    if (strcmp(o->mode, "consume") == 0)
        return o->group && o->instance ? 0 : -1;
    return -1;
}

static long long mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Appends one line to the history with a single write(2). */
static void logf_line(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = write(log_fd, buf + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static void sleep_ms(long n)
{
    struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (n % 1000) * 1000000L};

    while (!stop_flag && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- produce ---- */

struct order_sel {
    const char *key;
    int queues; /* the only queue count accepted */
};

/* Hash selection, but only on the full route: an index out of range makes the send fail with
 * FERRY_EINVAL (not sent) rather than move the key to another queue. */
static int select_fixed(int nqueues, const struct ferry_message *msg, void *arg)
{
    struct order_sel *s = arg;

    if (nqueues != s->queues)
        return -1;
    return ferry_select_by_hash(nqueues, msg, (void *)s->key);
}

/* Takes the blocked stop signals for the producer's main loop. */
static void *stop_waiter(void *arg)
{
    const sigset_t *sigs = arg;
    int sig;

    while (sigwait(sigs, &sig) != 0)
        ;
    stop_flag = 1;
    return NULL;
}

static const char *status_name(enum ferry_send_status s)
{
    switch (s) {
    case FERRY_SEND_OK:
        return "SEND_OK";
    case FERRY_FLUSH_DISK_TIMEOUT:
        return "FLUSH_DISK_TIMEOUT";
    case FERRY_FLUSH_SLAVE_TIMEOUT:
        return "FLUSH_SLAVE_TIMEOUT";
    case FERRY_SLAVE_NOT_AVAILABLE:
        return "SLAVE_NOT_AVAILABLE";
    }
    return "unknown status";
}

/* One attempt; logs SEND and the outcome: ACK only for SEND_OK; a send stored without
 * confirmed durability (flush or slave timeout, no slave) is logged as FAIL with rc
 * FERRY_EUNKNOWN and returns FERRY_EUNKNOWN. Returns the send's rc. */
static int send_once(ferry_producer_t *p, const struct options *o, const char *id, const char *key,
                     long kseq, int attempt)
{
    char body[256];
    struct ferry_send_result res;
    struct ferry_message msg = {0};
    struct order_sel sel = {key, (int)o->queues};
    int rc;

    snprintf(body, sizeof body, "id=%s key=%s kseq=%ld", id, key ? key : "-", kseq);
    msg.topic = o->topic;
    msg.tags = key ? "ordered" : "plain";
    msg.keys = id;
    msg.body = body;
    msg.body_len = strlen(body);
    memset(&res, 0, sizeof res);
    logf_line("SEND %s %s %s %ld %d %lld", id, key ? "ordered" : "plain", key ? key : "-", kseq,
              attempt, mono_us());
    if (key)
        rc = ferry_send_to_queue(p, &msg, select_fixed, &sel, 0, &res);
    else
        rc = ferry_send_sync(p, &msg, &res);
    if (rc == 0 && res.status != FERRY_SEND_OK) {
        /* Stored on the broker, durability not confirmed (a slave or the disk did not answer
         * in time): not an acknowledgement. Under SYNC_MASTER a failover may cut it, or it
         * may be delivered: the outcome is unknown. */
        logf_line("FAIL %s %d %lld stored, not acknowledged: %s", id, FERRY_EUNKNOWN, mono_us(),
                  status_name(res.status));
        rc = FERRY_EUNKNOWN;
    } else if (rc == 0)
        logf_line("ACK %s %s %d %" PRId64 " %s %lld", id, res.broker_name, res.queue_id,
                  res.queue_offset, res.msg_id, mono_us());
    else
        logf_line("FAIL %s %d %lld %s%s%s", id, rc, mono_us(), ferry_strerror(rc),
                  res.remark[0] ? ": " : "", res.remark);
    return rc;
}

static ferry_producer_t *new_producer(const struct options *o)
{
    struct ferry_producer_config cfg;
    ferry_producer_t *p = NULL;
    int rc;

    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "PID_chaos");
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o->namesrv);
    cfg.sendMsgTimeout = (int)o->timeout_ms;
    if ((rc = ferry_producer_new(&cfg, &p)) != 0 || (rc = ferry_producer_start(p)) != 0) {
        fprintf(stderr, "producer: %s\n", ferry_strerror(rc));
        ferry_producer_free(p);
        return NULL;
    }
    return p;
}

/* Plain sends go through one long-lived producer. Ordered sends have their own producer, which
 * is re-created (at most every 2 s) after a send refused for an incomplete route: a producer
 * refreshes a route only every 30 s or after a send error, and a refusal is not one, so the
 * ordered keys would otherwise stay refused for up to 30 s after a broker came back. */
static int produce(const struct options *o, sigset_t *stop_sigs)
{
    ferry_producer_t *p, *po;
    long kseq[MAX_KEYS] = {0};
    long long po_born = mono_us();
    unsigned seed = (unsigned)(getpid() ^ (unsigned)mono_us());
    pthread_t waiter;

    if (pthread_create(&waiter, NULL, stop_waiter, stop_sigs) != 0)
        return 1;
    pthread_detach(waiter);
    if (!(p = new_producer(o)))
        return 1;
    if (!(po = new_producer(o))) {
        ferry_producer_free(p);
        return 1;
    }
    logf_line("STARTED producer %s pid %d", o->id, (int)getpid());
    for (long seq = 1; !stop_flag; seq++) {
        char id[160], key[160];
        int ordered = (long)(rand_r(&seed) % 100) < o->ordered_pct;

        snprintf(id, sizeof id, "%s-%06ld", o->id, seq);
        if (ordered) {
            int k = (int)(rand_r(&seed) % (unsigned)o->keys);
            snprintf(key, sizeof key, "%s-k%d", o->id, k);
            if (send_once(po, o, id, key, ++kseq[k], 1) == FERRY_EINVAL &&
                mono_us() - po_born > 2000000) {
                ferry_producer_t *fresh = new_producer(o);
                if (fresh) {
                    ferry_producer_free(po);
                    po = fresh;
                    po_born = mono_us();
                }
            }
        } else {
            for (int attempt = 1; attempt <= 1 + o->resend; attempt++) {
                if (send_once(p, o, id, NULL, 0, attempt) == 0 || stop_flag)
                    break;
                sleep_ms(100);
            }
        }
        if (o->interval_ms)
            sleep_ms(o->interval_ms);
    }
    ferry_producer_free(po);
    ferry_producer_free(p);
    logf_line("STOPPED producer %s", o->id);
    return 0;
}

/* ---- consume ---- */

struct cstate {
    const struct options *o;
};

static enum ferry_consume_status on_msgs(const struct ferry_message_ext *msgs, size_t n, void *arg)
{
    struct cstate *st = arg;

    for (size_t i = 0; i < n; i++) {
        const struct ferry_message_ext *m = &msgs[i];
        const char *keys = m->keys ? m->keys : "-";
        char want[200];
        int ok;

        snprintf(want, sizeof want, "id=%s ", keys);
        ok = m->body_len >= strlen(want) && memcmp(m->body, want, strlen(want)) == 0;
        if (!ok) {
            logf_line("CORRUPT %s %d %" PRId64 " %s %.*s", m->broker_name, m->queue_id,
                      m->queue_offset, keys, (int)(m->body_len > 200 ? 200 : m->body_len),
                      (const char *)m->body);
            continue;
        }
        logf_line("DELIVER %s %s %d %" PRId64 " %d %s %lld", keys, m->broker_name, m->queue_id,
                  m->queue_offset, (int)m->reconsume_times, st->o->instance, mono_us());
    }
    return FERRY_CONSUME_SUCCESS;
}

static int consume(const struct options *o, sigset_t *stop_sigs)
{
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c = NULL;
    struct cstate st = {o};
    int rc, sig = 0;

    ferry_consumer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "%s", o->group);
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o->namesrv);
    snprintf(cfg.instanceName, sizeof cfg.instanceName, "%s", o->instance);
    cfg.messageModel = FERRY_CLUSTERING;
    cfg.consumeFromWhere = FERRY_CONSUME_FROM_FIRST_OFFSET;
    cfg.orderly = o->orderly;
    cfg.consumeThreadMin = (int)o->threads;
    cfg.consumeThreadMax = (int)o->threads;

    if ((rc = ferry_push_consumer_new(&cfg, on_msgs, &st, &c)) != 0 ||
        (rc = ferry_push_consumer_subscribe(c, o->topic, "*")) != 0 ||
        (rc = ferry_push_consumer_start(c)) != 0) {
        fprintf(stderr, "consumer: %s\n", ferry_strerror(rc));
        ferry_push_consumer_free(c);
        return 1;
    }
    logf_line("STARTED consumer %s group %s %s pid %d", o->instance, o->group,
              o->orderly ? "orderly" : "concurrent", (int)getpid());
    while (sigwait(stop_sigs, &sig) != 0)
        ;
    ferry_push_consumer_shutdown(c);
    ferry_push_consumer_free(c);
    logf_line("STOPPED consumer %s", o->instance);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    sigset_t stop_sigs;
    int rc;

    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    log_fd = open(o.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "%s: %s\n", o.log, strerror(errno));
        return 1;
    }
    /* Every library thread inherits the blocked stop signals; only sigwait() takes them. */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = strcmp(o.mode, "produce") == 0 ? produce(&o, &stop_sigs) : consume(&o, &stop_sigs);
    close(log_fd);
    return rc;
}
