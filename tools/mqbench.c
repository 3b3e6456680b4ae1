/* mqbench: a load generator on libferry, like RocketMQ's benchmark Producer and Consumer.
 *
 *   mqbench producer -n <namesrv> -t <topic> [-w threads] [-s size] [-a] [-i inflight]
 *                    [-p producers] [-d seconds] [-c count]
 *   mqbench consumer -n <namesrv> -t <topic> -g <group> [-d seconds] [-c count] [-L]
 *
 * The run ends after -d seconds (10 when neither -d nor -c is given) or -c messages, whichever
 * comes first. *
 * Producer, sync (default): -w threads (64) share -p producers (1) and each loops on
 * ferry_send_sync(). Async (-a): -p producers (1), each with its own connections, each keeping
 * -i sends (16) in flight with ferry_send_async(); a completion starts the next send from the
 * callback (the library's I/O thread) when the previous one succeeded, otherwise it hands the
 * slot to the producer's own thread, which retries (so a reconnect never runs on an I/O
 * thread). A send is OK only when it returned (or called back with) 0 and FERRY_SEND_OK.
 *
 * Consumer: one push consumer (clustering, from the first offset unless -L) counts messages and
 * the end-to-end latency now - born_timestamp (ms resolution: the producer's clock).
 *
 * Output: a line per second, then one `SUMMARY key=value ...` line that scripts parse
 * (bench/bench_e2e.sh). Latencies go to fixed log-linear histograms (about 3% precision), one per
 * sending thread or producer, merged at the end: nothing is allocated per message. Exit status:
 * 0, 1 when nothing succeeded, 2 for a usage error. */
#include "ferry/ferry.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- histogram: values in microseconds ---- */

#define HIST_SUB     32 /* sub-buckets per power of two (5 bits) */
#define HIST_LINEAR  64 /* values below this get a bucket each */
#define HIST_BUCKETS (HIST_LINEAR + 40 * HIST_SUB)

struct hist {
    atomic_uint_fast64_t n[HIST_BUCKETS];
};

static int hist_index(uint64_t v)
{
    if (v < HIST_LINEAR)
        return (int)v;
    int msb = 63 - __builtin_clzll(v); /* >= 6 */
    int idx = HIST_LINEAR + (msb - 6) * HIST_SUB + (int)((v >> (msb - 5)) & (HIST_SUB - 1));
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The upper bound of bucket @i (what a percentile reports). */
static uint64_t hist_value(int i)
{
    if (i < HIST_LINEAR)
        return (uint64_t)i;
    int msb = (i - HIST_LINEAR) / HIST_SUB + 6, sub = (i - HIST_LINEAR) % HIST_SUB;
    return ((uint64_t)(HIST_SUB + sub + 1) << (msb - 5)) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    atomic_fetch_add_explicit(&h->n[hist_index(v)], 1, memory_order_relaxed);
}

static void hist_merge(struct hist *dst, struct hist *src)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        atomic_fetch_add_explicit(&dst->n[i], atomic_load(&src->n[i]), memory_order_relaxed);
}

static uint64_t hist_pct(struct hist *h, double p)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++)
        total += atomic_load(&h->n[i]);
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(p * (double)total);
    if (want >= total)
        want = total - 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += atomic_load(&h->n[i]);
        if (seen > want)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---- counters of one worker (a sending thread, a producer, a listener thread) ---- */

struct stats {
    atomic_uint_fast64_t ok, fail, unknown, rt_sum_us, rt_max_us;
    struct hist h;
} __attribute__((aligned(64)));

static void stats_ok(struct stats *s, uint64_t rt_us)
{
    atomic_fetch_add_explicit(&s->ok, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->rt_sum_us, rt_us, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&s->rt_max_us, memory_order_relaxed);
    while (rt_us > m && !atomic_compare_exchange_weak_explicit(
                            &s->rt_max_us, &m, rt_us, memory_order_relaxed, memory_order_relaxed))
        ;
    hist_add(&s->h, rt_us);
}

/* Sums of every worker since the previous call (the per-second line). */
struct totals {
    uint64_t ok, fail, unknown, rt_sum_us, rt_max_us;
};

static void totals_read(struct stats *s, int n, struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++) {
        t->ok += atomic_load(&s[i].ok);
        t->fail += atomic_load(&s[i].fail);
        t->unknown += atomic_load(&s[i].unknown);
        t->rt_sum_us += atomic_load(&s[i].rt_sum_us);
        uint64_t m = atomic_exchange(&s[i].rt_max_us, 0);
        if (m > t->rt_max_us)
            t->rt_max_us = m;
    }
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&d, NULL);
}

/* ---- options ---- */

struct opts {
    const char *namesrv, *topic, *group;
    int threads, size, async, inflight, producers, from_last;
    int64_t seconds, count;
};

static atomic_int g_stop;             /* set at the end of the run, or by SIGINT/SIGTERM */
static atomic_int_fast64_t g_tickets; /* sends (or messages) left with -c; < 0: unlimited */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mqbench producer -n namesrv -t topic [-w threads(64)] [-s size(128)] [-a]\n"
            "                        [-i inflight per producer(16)] [-p producers(1)]\n"
            "                        [-d seconds] [-c count]\n"
            "       mqbench consumer -n namesrv -t topic -g group [-d seconds] [-c count] [-L]\n"
            "  the run ends after -d seconds (10 without -d and -c) or -c messages\n"
            "  -a  asynchronous sends: -p producers, each with -i sends in flight\n"
            "  -L  consumer: start from the end of the queues (default: their start)\n");
}

static int parse_num(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, int consumer, struct opts *o)
{
    int64_t v;
    *o = (struct opts){.threads = 64, .size = 128, .inflight = 16, .producers = 0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-a") == 0 && !consumer) {
            o->async = 1;
            continue;
        }
        if (strcmp(a, "-L") == 0 && consumer) {
            o->from_last = 1;
            continue;
        }
        if (a[0] != '-' || !a[1] || a[2] || i + 1 >= argc) {
            fprintf(stderr, "mqbench: bad argument %s\n", a);
            return -1;
        }
        const char *val = argv[++i];
        int bad = 0;
        switch (a[1]) {
        case 'n':
            o->namesrv = val;
            break;
        case 't':
            o->topic = val;
            break;
        case 'g':
            o->group = val;
            break;
        case 'w':
            bad = parse_num(val, 1, 4096, &v) || consumer;
            o->threads = (int)v;
            break;
        case 's':
            bad = parse_num(val, 1, 4 * 1024 * 1024, &v) || consumer;
            o->size = (int)v;
            break;
        case 'i':
            bad = parse_num(val, 1, 65536, &v) || consumer;
            o->inflight = (int)v;
            break;
        case 'p':
            bad = parse_num(val, 1, 1024, &v) || consumer;
            o->producers = (int)v;
            break;
        case 'd':
            bad = parse_num(val, 1, 86400, &v);
            o->seconds = v;
            break;
        case 'c':
            bad = parse_num(val, 1, INT64_MAX / 2, &v);
            o->count = v;
            break;
        default:
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "mqbench: bad value for %s: %s\n", a, val);
            return -1;
        }
    }
    if (!o->namesrv || !o->topic || (consumer && !o->group)) {
        fprintf(stderr, "mqbench: -n and -t are required%s\n", consumer ? ", and -g" : "");
        return -1;
    }
    if (!o->seconds && !o->count)
        o->seconds = 10;
    if (!o->producers)
        o->producers = 1;
    return 0;
}

/* The per-second lines until the run ends (g_stop, or -d elapsed); returns the start time. */
static void report_loop(const char *what, struct stats *s, int n, int64_t start,
                        const struct opts *o, atomic_int *done)
{
    struct totals prev = {0}, cur;
    int64_t next = start;
    while (!atomic_load(&g_stop) && !(done && atomic_load(done))) {
        next += 1000000000;
        int64_t end = o->seconds ? start + o->seconds * 1000000000 : INT64_MAX;
        int64_t until = next < end ? next : end;
        while (!atomic_load(&g_stop) && !(done && atomic_load(done))) {
            int64_t left = until - now_ns();
            if (left <= 0)
                break;
            sleep_ms(left > 10000000 ? 10 : (int)(left / 1000000) + 1);
        }
        if (until == end)
            atomic_store(&g_stop, 1);
        totals_read(s, n, &cur);
        uint64_t ok = cur.ok - prev.ok;
        printf("%s TPS: %" PRIu64 " Max RT(ms): %.3f Average RT(ms): %.3f Failed: %" PRIu64
               " Unknown: %" PRIu64 "\n",
               what, ok, (double)cur.rt_max_us / 1000.0,
               ok ? (double)(cur.rt_sum_us - prev.rt_sum_us) / (double)ok / 1000.0 : 0.0,
               cur.fail - prev.fail, cur.unknown - prev.unknown);
        fflush(stdout);
        prev = cur;
    }
}

/* 1 when the caller may send one more message (-c), 0 when the run is over. */
static int take_ticket(void)
{
    if (atomic_load_explicit(&g_stop, memory_order_relaxed))
        return 0;
    if (atomic_load_explicit(&g_tickets, memory_order_relaxed) < 0)
        return 1;
    if (atomic_fetch_sub(&g_tickets, 1) > 0)
        return 1;
    atomic_store(&g_stop, 1);
    return 0;
}

static void summary(const char *mode, struct stats *s, int n, int64_t elapsed_ns, const char *extra)
{
    struct hist *all = calloc(1, sizeof *all);
    struct totals t;
    totals_read(s, n, &t);
    for (int i = 0; i < n; i++)
        hist_merge(all, &s[i].h);
    double secs = (double)elapsed_ns / 1e9;
    printf("SUMMARY mode=%s ok=%" PRIu64 " failed=%" PRIu64 " unknown=%" PRIu64
           " seconds=%.3f tps=%.0f avg_ms=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f%s\n",
           mode, t.ok, t.fail, t.unknown, secs, secs > 0 ? (double)t.ok / secs : 0.0,
           t.ok ? (double)t.rt_sum_us / (double)t.ok / 1000.0 : 0.0,
           (double)hist_pct(all, 0.5) / 1000.0, (double)hist_pct(all, 0.99) / 1000.0,
           (double)hist_pct(all, 0.999) / 1000.0, extra ? extra : "");
    fflush(stdout);
    free(all);
}

/* ---- producer ---- */

struct slot {
    struct prod *pr;
    struct slot *next_free;
    int64_t t0;
};

struct prod {
    ferry_producer_t *p;
    struct ferry_message msg;
    struct stats *st;
    /* async: slots not in flight wait in a stack for the producer's thread */
    pthread_mutex_t mu;
    struct slot *free; /* @locks mu */
    sem_t nfree;       /* the stack's size */
    struct slot *slots;
    atomic_int inflight;
    pthread_t thr;
};

struct sync_worker {
    struct prod *pr;
    struct stats *st;
    pthread_t thr;
};

static char g_first_error[400];
static pthread_mutex_t g_err_mu = PTHREAD_MUTEX_INITIALIZER;

static void note_error(int rc, const struct ferry_send_result *res)
{
    pthread_mutex_lock(&g_err_mu);
    if (!g_first_error[0]) {
        if (rc == 0 && res)
            snprintf(g_first_error, sizeof g_first_error, "stored with status %d",
                     (int)res->status);
        else if (rc == FERRY_ENOTSTORED && res)
            snprintf(g_first_error, sizeof g_first_error, "broker code %d: %s",
                     (int)res->broker_code, res->remark);
        else
            snprintf(g_first_error, sizeof g_first_error, "%s", ferry_strerror(rc));
    }
    pthread_mutex_unlock(&g_err_mu);
}

/* Count one finished send, at @now (ns). */
static void account_at(struct stats *st, int rc, const struct ferry_send_result *res, int64_t t0,
                       int64_t now)
{
    if (rc == 0 && res && res->status == FERRY_SEND_OK) {
        stats_ok(st, (uint64_t)(now - t0) / 1000);
        return;
    }
    note_error(rc, res);
    if (rc == FERRY_EUNKNOWN)
        atomic_fetch_add_explicit(&st->unknown, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&st->fail, 1, memory_order_relaxed);
}

static void account(struct stats *st, int rc, const struct ferry_send_result *res, int64_t t0)
{
    account_at(st, rc, res, t0, now_ns());
}

static void *sync_main(void *arg)
{
    struct sync_worker *w = arg;
    struct ferry_send_result res;
    while (take_ticket()) {
        int64_t t0 = now_ns();
        int rc = ferry_send_sync(w->pr->p, &w->pr->msg, &res);
        account(w->st, rc, &res, t0);
        if (rc != 0 && rc != FERRY_EUNKNOWN)
            sleep_ms(1); /* not sent: do not spin on a refusing broker */
    }
    return NULL;
}

static void slot_give_back(struct slot *sl)
{
    struct prod *pr = sl->pr;
    pthread_mutex_lock(&pr->mu);
    sl->next_free = pr->free;
    pr->free = sl;
    pthread_mutex_unlock(&pr->mu);
    atomic_fetch_sub(&pr->inflight, 1);
    sem_post(&pr->nfree);
}

static void on_sent(int rc, const struct ferry_send_result *res, void *arg);

/* Start a send on @sl (counted in flight) at @now (ns). 0, or the error (counted; the caller
 * still has the slot). */
static int start_send_at(struct slot *sl, int64_t now)
{
    struct prod *pr = sl->pr;
    sl->t0 = now;
    int rc = ferry_send_async(pr->p, &pr->msg, on_sent, sl);
    if (rc != 0)
        account(pr->st, rc, NULL, sl->t0);
    return rc;
}

static int start_send(struct slot *sl)
{
    return start_send_at(sl, now_ns());
}

/* A send finished: start the next one right here when this one succeeded (the connection
 * works, so ferry_send_async will not block), else give the slot back to the producer's
 * thread. @thread the producer's broker connection I/O thread */
static void on_sent(int rc, const struct ferry_send_result *res, void *arg)
{
    struct slot *sl = arg;
    int64_t now = now_ns(); /* the end of this send and the start of the next: one clock read */
    account_at(sl->pr->st, rc, res, sl->t0, now);
    if (rc == 0 && take_ticket() && start_send_at(sl, now) == 0)
        return;
    slot_give_back(sl);
}

/* The producer's own thread: starts every free slot (all of them at first, then those given
 * back after a failure) until the run ends. */
static void *async_main(void *arg)
{
    struct prod *pr = arg;
    while (!atomic_load(&g_stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (sem_timedwait(&pr->nfree, &ts) != 0)
            continue;
        pthread_mutex_lock(&pr->mu);
        struct slot *sl = pr->free;
        pr->free = sl->next_free;
        pthread_mutex_unlock(&pr->mu);
        atomic_fetch_add(&pr->inflight, 1);
        if (!take_ticket()) {
            slot_give_back(sl);
            break;
        }
        if (start_send(sl) != 0) {
            sleep_ms(1); /* not sent: do not spin on a refusing broker */
            slot_give_back(sl);
        }
    }
    return NULL;
}

/* Printable bytes from a fixed xorshift sequence: the client compresses bodies from
 * compressMsgBodyOverHowmuch (4 KiB) on, and a body of one repeated byte would shrink to a few
 * hundred bytes, so large sizes would not measure what their size says. */
static void fill_body(char *body, size_t n)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body[i] = (char)('!' + x % 94);
    }
}

static int run_producer(const struct opts *o)
{
    int np = o->producers, nw = o->async ? np : o->threads, rc = 0;
    struct prod *prods = calloc((size_t)np, sizeof *prods);
    struct sync_worker *ws = calloc((size_t)nw, sizeof *ws);
    struct stats *st = aligned_alloc(64, sizeof(struct stats) * (size_t)nw);
    char *body = malloc((size_t)o->size);
    fill_body(body, (size_t)o->size);
    memset(st, 0, sizeof(struct stats) * (size_t)nw);

    for (int i = 0; i < np; i++) {
        struct prod *pr = &prods[i];
        struct ferry_producer_config cfg;
        ferry_producer_config_init(&cfg);
        snprintf(cfg.group, sizeof cfg.group, "PID_mqbench");
        snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o->namesrv);
        if ((rc = ferry_producer_new(&cfg, &pr->p)) != 0 ||
            (rc = ferry_producer_start(pr->p)) != 0) {
            fprintf(stderr, "mqbench: producer: %s\n", ferry_strerror(rc));
            return 2;
        }
        pr->msg =
            (struct ferry_message){.topic = o->topic, .body = body, .body_len = (size_t)o->size};
        pr->st = o->async ? &st[i] : NULL;
        pthread_mutex_init(&pr->mu, NULL);
        if (o->async) {
            pr->slots = calloc((size_t)o->inflight, sizeof *pr->slots);
            for (int k = 0; k < o->inflight; k++) {
                pr->slots[k].pr = pr;
                pr->slots[k].next_free = pr->free;
                pr->free = &pr->slots[k];
            }
            sem_init(&pr->nfree, 0, (unsigned)o->inflight);
        }
    }
    if (o->async)
        printf("mqbench producer: %s topic %s, %d B, async: %d producers x %d in flight\n",
               o->namesrv, o->topic, o->size, np, o->inflight);
    else
        printf("mqbench producer: %s topic %s, %d B, sync: %d threads on %d producer(s)\n",
               o->namesrv, o->topic, o->size, nw, np);
    fflush(stdout);

    int64_t start = now_ns();
    for (int i = 0; i < nw; i++) {
        if (o->async) {
            pthread_create(&prods[i].thr, NULL, async_main, &prods[i]);
        } else {
            ws[i].pr = &prods[i % np];
            ws[i].st = &st[i];
            pthread_create(&ws[i].thr, NULL, sync_main, &ws[i]);
        }
    }
    report_loop("Send", st, nw, start, o, NULL);
    atomic_store(&g_stop, 1);
    /* Let what is in flight finish (at most sendMsgTimeout), then stop. */
    for (int i = 0; i < nw; i++)
        pthread_join(o->async ? prods[i].thr : ws[i].thr, NULL);
    int64_t deadline = now_ns() + 4000000000LL;
    for (int i = 0; i < np && o->async; i++)
        while (atomic_load(&prods[i].inflight) > 0 && now_ns() < deadline)
            sleep_ms(1);
    int64_t elapsed = now_ns() - start;
    for (int i = 0; i < np; i++)
        ferry_producer_shutdown(prods[i].p); /* completes anything still pending */
    char extra[600];
    snprintf(extra, sizeof extra, " size=%d%s%s", o->size, g_first_error[0] ? " first_error=" : "",
             g_first_error);
    summary(o->async ? "async" : "sync", st, nw, elapsed, extra);
    struct totals t;
    totals_read(st, nw, &t);
    for (int i = 0; i < np; i++) {
        ferry_producer_free(prods[i].p);
        if (o->async) {
            sem_destroy(&prods[i].nfree);
            free(prods[i].slots);
        }
        pthread_mutex_destroy(&prods[i].mu);
    }
    free(prods);
    free(ws);
    free(st);
    free(body);
    return t.ok ? 0 : 1;
}

/* ---- consumer ---- */

#define CONS_SLOTS 256

static struct stats *g_cstats; /* CONS_SLOTS, one per listener thread (shared beyond that) */
static atomic_int g_cnext;
static atomic_int g_cdone;
static atomic_int_fast64_t g_first_ns, g_last_ns;
static _Thread_local struct stats *t_mine;

static enum ferry_consume_status on_msgs(const struct ferry_message_ext *msgs, size_t n, void *arg)
{
    (void)arg;
    if (!t_mine)
        t_mine = &g_cstats[atomic_fetch_add(&g_cnext, 1) % CONS_SLOTS];
    int64_t now = wall_ms(), t = now_ns(), zero = 0;
    atomic_compare_exchange_strong(&g_first_ns, &zero, t);
    for (size_t i = 0; i < n; i++) {
        int64_t lat = now - msgs[i].born_timestamp;
        stats_ok(t_mine, lat > 0 ? (uint64_t)lat * 1000 : 0);
        if (atomic_load_explicit(&g_tickets, memory_order_relaxed) >= 0 &&
            atomic_fetch_sub(&g_tickets, 1) == 1)
            atomic_store(&g_cdone, 1);
    }
    atomic_store(&g_last_ns, now_ns());
    return FERRY_CONSUME_SUCCESS;
}

static int run_consumer(const struct opts *o)
{
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c = NULL;
    int rc;
    g_cstats = aligned_alloc(64, sizeof(struct stats) * CONS_SLOTS);
    memset(g_cstats, 0, sizeof(struct stats) * CONS_SLOTS);
    ferry_consumer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "%s", o->group);
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o->namesrv);
    cfg.consumeFromWhere =
        o->from_last ? FERRY_CONSUME_FROM_LAST_OFFSET : FERRY_CONSUME_FROM_FIRST_OFFSET;
    if ((rc = ferry_push_consumer_new(&cfg, on_msgs, NULL, &c)) != 0 ||
        (rc = ferry_push_consumer_subscribe(c, o->topic, "*")) != 0 ||
        (rc = ferry_push_consumer_start(c)) != 0) {
        fprintf(stderr, "mqbench: consumer: %s\n", ferry_strerror(rc));
        ferry_push_consumer_free(c);
        free(g_cstats);
        return 2;
    }
    printf("mqbench consumer: %s topic %s group %s, from the %s\n", o->namesrv, o->topic, o->group,
           o->from_last ? "end" : "start");
    fflush(stdout);
    int64_t start = now_ns();
    report_loop("Consume", g_cstats, CONS_SLOTS, start, o, &g_cdone);
    int64_t elapsed = now_ns() - start;
    ferry_push_consumer_shutdown(c);
    int64_t first = atomic_load(&g_first_ns), last = atomic_load(&g_last_ns);
    struct totals t;
    totals_read(g_cstats, CONS_SLOTS, &t);
    char extra[200];
    /* drain_tps: from the first message to the last, without the start-up (rebalance). */
    snprintf(extra, sizeof extra, " drain_tps=%.0f first_msg_after_ms=%.0f",
             last > first ? (double)t.ok / ((double)(last - first) / 1e9) : 0.0,
             first ? (double)(first - start) / 1e6 : -1.0);
    summary("consumer", g_cstats, CONS_SLOTS, elapsed, extra);
    ferry_push_consumer_free(c);
    free(g_cstats);
    return t.ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (argc < 2) {
        usage();
        return 2;
    }
    int consumer = strcmp(argv[1], "consumer") == 0;
    if ((!consumer && strcmp(argv[1], "producer") != 0) || parse_opts(argc, argv, consumer, &o)) {
        usage();
        return 2;
    }
    atomic_store(&g_tickets, o.count ? o.count : -1);
    return consumer ? run_consumer(&o) : run_producer(&o);
}
