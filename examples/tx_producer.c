/* A transaction producer on the command line: sends numbered transactional messages, decides
 * each local transaction, and answers the broker's check-backs.
 *
 *   example_tx_producer -n <namesrv> -t <topic> [-g group] [-c count] [--start I]
 *                       [--decide commit|rollback|unknown|rule]
 *                       [--check commit|rollback|unknown|rule] [--unknown-checks K]
 *                       [--crash-after N] [--stay] [--exec-ms M] [--interval-ms M]
 *                       [--timeout-ms M]
 *
 * Message i (i = start .. start+count-1, default 0 .. 9) has the body "tx-<i>" and the key
 * "tx-<i>"; it is sent with ferry_send_in_transaction() in group -g (default PID_tx_producer).
 *
 *   --decide D        the outcome of each local transaction (default commit)
 *   --check C         the answer to each check-back (default commit); the message's i is read
 *                     from the body, so any producer of the group can answer any transaction
 *   "rule"            decides by i: i % 3 == 0 commit, i % 3 == 1 rollback, i % 3 == 2 unknown
 *                     (--decide) and commit (--check), i.e. "unknown, then commit on check"
 *   --unknown-checks K  the first K checks of each transaction id (counted in this process)
 *                     are answered UNKNOWN before the --check answer is given
 *   --crash-after N   the local transaction of message N kills the process with SIGKILL: the
 *                     half message of N is stored, its END_TRANSACTION is never sent
 *   --stay            after the last send, keep running (answering checks) until SIGTERM or
 *                     SIGINT; then shut the producer down, print "STOPPED" on stderr, exit 0
 *   --exec-ms M       each local transaction takes M ms (between the stored half and
 *                     END_TRANSACTION: a broker restart in that time gets the END afterwards)
 *   --interval-ms M   pause M ms between transactions
 *   --timeout-ms M    sendMsgTimeout (default 3000)
 *
 * stdout, one line per event, flushed at once (lines of different threads never mix):
 *
 *     TX <i> <txid> COMMIT|ROLLBACK|UNKNOWN      after ferry_send_in_transaction() returned 0:
 *                                                the local decision sent in END_TRANSACTION
 *     CHECK <i> <txid> COMMIT|ROLLBACK|UNKNOWN   a check-back and its answer (i is -1 when the
 *                                                body is not "tx-<i>")
 *     CRASH <i> <txid>                           --crash-after: just before SIGKILL
 *     FAILED <i> <rc> <reason>                   the half message was not sent (rc from
 *                                                ferry_send_in_transaction(); -10012,
 *                                                FERRY_EUNKNOWN: sent without answer, the half
 *                                                may be stored and is then checked back)
 *
 * After the last send "DONE tx <n> failed <m>" goes to stderr. Exit status without --stay: 0
 * when every transaction was sent, 1 otherwise; 2 for a usage error. The name server defaults
 * to $NAMESRV_ADDR. */
#include "ferry/ferry.h"

#include "example_util.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum mode { M_COMMIT, M_ROLLBACK, M_UNKNOWN, M_RULE };

struct options {
    const char *namesrv, *topic, *group;
    long count, start, unknown_checks, crash_after, exec_ms, interval_ms, timeout_ms;
    enum mode decide, check;
    int stay;
};

/* Check-backs seen per transaction id, for --unknown-checks. @locks checks_mu */
struct seen {
    char tx_id[FERRY_UNIQ_KEY_LEN + 32];
    long n;
};

static pthread_mutex_t checks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct seen *checks;
static size_t nchecks, checks_cap;

static const char *const state_names[] = {"COMMIT", "ROLLBACK", "UNKNOWN"};

static void usage(FILE *f)
{
    fprintf(f, "usage: example_tx_producer -n <namesrv> -t <topic> [-g group] [-c count]\n"
               "         [--start I] [--decide commit|rollback|unknown|rule]\n"
               "         [--check commit|rollback|unknown|rule] [--unknown-checks K]\n"
               "         [--crash-after N] [--stay] [--exec-ms M] [--interval-ms M]\n"
               "         [--timeout-ms M]\n");
}

static int parse_mode(const char *s, enum mode *out)
{
    static const char *const names[] = {"commit", "rollback", "unknown", "rule"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum mode)i;
            return 0;
        }
    }
    return -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"start", required_argument, NULL, 's'},
        {"decide", required_argument, NULL, 'd'},
        {"check", required_argument, NULL, 'k'},
        {"unknown-checks", required_argument, NULL, 'u'},
        {"crash-after", required_argument, NULL, 'x'},
        {"stay", no_argument, NULL, 'S'},
        {"exec-ms", required_argument, NULL, 'e'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"timeout-ms", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, bad = 0;

    *o = (struct options){.group = "PID_tx_producer",
                          .count = 10,
                          .crash_after = -1,
                          .timeout_ms = 3000,
                          .decide = M_COMMIT,
                          .check = M_COMMIT};
    while ((ch = getopt_long(argc, argv, "n:t:g:c:h", longopts, NULL)) != -1) {
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
        case 'c':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->count);
            break;
        case 's':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->start);
            break;
        case 'd':
            bad |= parse_mode(optarg, &o->decide);
            break;
        case 'k':
            bad |= parse_mode(optarg, &o->check);
            break;
        case 'u':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->unknown_checks);
            break;
        case 'x':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->crash_after);
            break;
        case 'S':
            o->stay = 1;
            break;
        case 'e':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->exec_ms);
            break;
        case 'i':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->interval_ms);
            break;
        case 'm':
            bad |= ex_parse_long(optarg, 0, LONG_MAX, &o->timeout_ms);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || !o->topic || o->timeout_ms <= 0 || o->timeout_ms > 600000 ||
        o->interval_ms > 600000 || o->exec_ms > 600000 || o->start > 1000000000 ||
        o->count > 1000000000)
        return -1;
    if (!o->namesrv && !getenv("NAMESRV_ADDR"))
        return -1;
    return 0;
}

/* The state @m gives to message @i; @on_check selects the check answer of "rule". */
static enum ferry_tx_state decide(enum mode m, long i, int on_check)
{
    switch (m) {
    case M_COMMIT:
        return FERRY_TX_COMMIT;
    case M_ROLLBACK:
        return FERRY_TX_ROLLBACK;
    case M_UNKNOWN:
        return FERRY_TX_UNKNOWN;
    case M_RULE:
        break;
    }
    if (i % 3 == 0)
        return FERRY_TX_COMMIT;
    if (i % 3 == 1)
        return FERRY_TX_ROLLBACK;
    return on_check ? FERRY_TX_COMMIT : FERRY_TX_UNKNOWN;
}

/* Prints one line on stdout and flushes it; lines of different threads never mix. */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    va_list ap;

    flockfile(stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
    funlockfile(stdout);
}

/* The number i of a body "tx-<i>", or -1. */
static long body_index(const void *body, size_t len)
{
    char buf[32];
    long i;

    if (len < 4 || len >= sizeof buf || memcmp(body, "tx-", 3) != 0)
        return -1;
    memcpy(buf, body, len);
    buf[len] = 0;
    return ex_parse_long(buf + 3, 0, LONG_MAX, &i) == 0 ? i : -1;
}

/* Counts a check-back of @tx_id; returns how many came before this one. */
static long count_check(const char *tx_id)
{
    long before = 0;
    size_t k;

    pthread_mutex_lock(&checks_mu);
    for (k = 0; k < nchecks && strcmp(checks[k].tx_id, tx_id) != 0; k++)
        ;
    if (k == nchecks) {
        if (nchecks == checks_cap) {
            size_t cap = checks_cap ? checks_cap * 2 : 64;
            struct seen *v = realloc(checks, cap * sizeof *v);
            if (!v) {
                pthread_mutex_unlock(&checks_mu);
                return 0; /* out of memory: answer as if first seen */
            }
            checks = v;
            checks_cap = cap;
        }
        snprintf(checks[k].tx_id, sizeof checks[k].tx_id, "%s", tx_id);
        checks[k].n = 0;
        nchecks++;
    }
    before = checks[k].n++;
    pthread_mutex_unlock(&checks_mu);
    return before;
}

/* The check-back callback. Runs on a connection's I/O thread. */
static enum ferry_tx_state on_check(const struct ferry_message_ext *m, const char *tx_id, void *arg)
{
    const struct options *o = arg;
    long i = body_index(m->body, m->body_len);
    enum ferry_tx_state st;

    if (count_check(tx_id) < o->unknown_checks)
        st = FERRY_TX_UNKNOWN;
    else
        st = decide(o->check, i < 0 ? 0 : i, 1);
    emit("CHECK %ld %s %s\n", i, tx_id, state_names[st]);
    return st;
}

static void sleep_ms(long n)
{
    struct timespec ts = {.tv_sec = n / 1000, .tv_nsec = (n % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct local_tx {
    const struct options *o;
    long i;
};

/* The local transaction: takes --exec-ms, decides by --decide, or dies at --crash-after. */
static enum ferry_tx_state on_execute(const struct ferry_message *m, const char *tx_id, void *arg)
{
    const struct local_tx *lt = arg;

    (void)m;
    if (lt->o->exec_ms)
        sleep_ms(lt->o->exec_ms);
    if (lt->i == lt->o->crash_after) {
        emit("CRASH %ld %s\n", lt->i, tx_id);
        kill(getpid(), SIGKILL);
        abort(); /* not reached: SIGKILL to oneself is delivered before kill() returns */
    }
    return decide(lt->o->decide, lt->i, 0);
}

/* Sends transaction @i and prints its TX or FAILED line; returns the call's result. */
static int send_one(ferry_producer_t *p, const struct options *o, long i)
{
    char body[32];
    struct ferry_send_result res;
    enum ferry_tx_state st = FERRY_TX_UNKNOWN;
    struct local_tx lt = {.o = o, .i = i};
    int n = snprintf(body, sizeof body, "tx-%ld", i);
    struct ferry_message msg = {
        .topic = o->topic, .keys = body, .body = body, .body_len = (size_t)n};
    int rc = ferry_send_in_transaction(p, &msg, on_execute, &lt, &res, &st);

    if (rc == 0)
        emit("TX %ld %s %s\n", i, res.msg_id, state_names[st]);
    else
        emit("FAILED %ld %d %s%s%s\n", i, rc, ferry_strerror(rc),
             rc == FERRY_ENOTSTORED ? ": " : "", rc == FERRY_ENOTSTORED ? res.remark : "");
    return rc;
}

int main(int argc, char **argv)
{
    struct ferry_producer_config cfg;
    struct options o;
    ferry_producer_t *p = NULL;
    sigset_t stop_sigs;
    long sent = 0, failed = 0;
    int rc, sig = 0;

    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "%s", o.group);
    if (o.namesrv)
        snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", o.namesrv);
    cfg.sendMsgTimeout = (int)o.timeout_ms;

    /* Block the stop signals before any library thread exists, so that every thread inherits
     * the mask and only sigwait() below receives them. Without --stay they stop at once. */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    if (o.stay)
        pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

    if ((rc = ferry_producer_new(&cfg, &p)) != 0 ||
        (rc = ferry_producer_set_tx_check(p, on_check, &o)) != 0 ||
        (rc = ferry_producer_start(p)) != 0) {
        fprintf(stderr, "tx_producer: producer: %s\n", ferry_strerror(rc));
        ferry_producer_free(p);
        return 1;
    }
    for (long i = o.start; i < o.start + o.count; i++) {
        if (send_one(p, &o, i) == 0)
            sent++;
        else
            failed++;
        if (o.interval_ms && i + 1 < o.start + o.count)
            sleep_ms(o.interval_ms);
    }
    fprintf(stderr, "DONE tx %ld failed %ld\n", sent, failed);
    if (o.stay) {
        while (sigwait(&stop_sigs, &sig) != 0)
            ;
        fprintf(stderr, "signal %d: shutting down\n", sig);
    }
    ferry_producer_free(p);
    free(checks);
    if (o.stay) {
        fprintf(stderr, "STOPPED\n");
        return 0;
    }
    return failed ? 1 : 0;
}
