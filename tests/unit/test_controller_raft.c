/* The consensus wrapper (src/controller/consensus.c) over canonical raft, three nodes in one
 * process on loopback TCP with their own log directories: one leader; entries of every size
 * (1..40 bytes, unaligned) are applied on every node in the same order; a follower refuses a
 * proposal (NOT_LEADER); the leader stopped, the two others elect a new one and go on; the
 * stopped node restarts from its directory (a snapshot every 8 entries, then the entries read
 * back from its segments, which libraft pads) and ends with the same log; with two nodes stopped
 * the last one commits nothing and its proposal fails. Waits are on conditions with deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testlib.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "controller/consensus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N       3
#define ENTRIES 24

struct node {
    consensus_t *c;
    char dir[600];
    pthread_mutex_t mu;
    int n;
    char log[64][48];
};

static struct node nodes[N];
static struct consensus_peer peers[N];
static char tmp[512];

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static int done_count, done_fail, last_status;
static int restores; /* snapshots restored, all nodes */

static void *apply(void *arg, const void *data, size_t len)
{
    struct node *nd = arg;
    pthread_mutex_lock(&nd->mu);
    if (nd->n < 64 && len < sizeof nd->log[0]) {
        memcpy(nd->log[nd->n], data, len);
        nd->log[nd->n][len] = 0;
    }
    nd->n++;
    pthread_mutex_unlock(&nd->mu);
    return &nd->n;
}

static int snapshot(void *arg, void **data, size_t *len)
{
    struct node *nd = arg;
    pthread_mutex_lock(&nd->mu);
    *len = sizeof nd->log + sizeof nd->n;
    *data = ferry_malloc(*len);
    memcpy(*data, &nd->n, sizeof nd->n);
    memcpy((char *)*data + sizeof nd->n, nd->log, sizeof nd->log);
    pthread_mutex_unlock(&nd->mu);
    return 0;
}

static int restore(void *arg, const void *data, size_t len)
{
    struct node *nd = arg;
    if (len != sizeof nd->log + sizeof nd->n)
        return -1;
    pthread_mutex_lock(&nd->mu);
    restores++;
    memcpy(&nd->n, data, sizeof nd->n);
    memcpy(nd->log, (const char *)data + sizeof nd->n, sizeof nd->log);
    pthread_mutex_unlock(&nd->mu);
    return 0;
}

static void done(int status, void *result, void *arg)
{
    pthread_mutex_lock(&done_mu);
    done_count++;
    last_status = status;
    if (status != 0)
        done_fail++;
    else
        assert_non_null(result);
    pthread_mutex_unlock(&done_mu);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void start(int i)
{
    struct consensus_config cfg = {
        .peers = peers,
        .n_peers = N,
        .self_id = peers[i].id,
        .dir = nodes[i].dir,
        .election_timeout_ms = 500,
        .heartbeat_timeout_ms = 50,
        .snapshot_threshold = 8, /* snapshots every few entries: restarts restore one */
        .tick_ms = 20,
        .apply = apply,
        .snapshot = snapshot,
        .restore = restore,
        .arg = &nodes[i],
    };
    char err[256];
    pthread_mutex_lock(&nodes[i].mu);
    nodes[i].n = 0;
    pthread_mutex_unlock(&nodes[i].mu);
    if (consensus_start(&cfg, &nodes[i].c, err, sizeof err) != 0)
        fail_msg("node %d: %s", i, err);
}

static void stop(int i)
{
    consensus_stop(nodes[i].c);
    nodes[i].c = NULL;
}

static int leader_among(void)
{
    int64_t deadline = clock_mono_ms() + 20000 * test_time_mult();
    while (clock_mono_ms() < deadline) {
        int found = -1, count = 0;
        for (int i = 0; i < N; i++)
            if (nodes[i].c && consensus_is_leader(nodes[i].c)) {
                found = i;
                count++;
            }
        if (count == 1)
            return found;
        usleep(10000);
    }
    fail_msg("no single leader within the deadline");
    return -1;
}

static int count_of(int i)
{
    pthread_mutex_lock(&nodes[i].mu);
    int n = nodes[i].n;
    pthread_mutex_unlock(&nodes[i].mu);
    return n;
}

static void wait_count(int i, int n)
{
    int64_t deadline = clock_mono_ms() + 20000 * test_time_mult();
    while (count_of(i) < n && clock_mono_ms() < deadline)
        usleep(10000);
    if (count_of(i) != n)
        fail_msg("node %d applied %d entries, expected %d", i, count_of(i), n);
}

static void wait_done(int n)
{
    int64_t deadline = clock_mono_ms() + 20000 * test_time_mult();
    for (;;) {
        pthread_mutex_lock(&done_mu);
        int c = done_count;
        pthread_mutex_unlock(&done_mu);
        if (c >= n)
            return;
        if (clock_mono_ms() > deadline)
            fail_msg("%d of %d proposals finished", c, n);
        usleep(10000);
    }
}

static void same_log(int a, int b)
{
    pthread_mutex_lock(&nodes[a].mu);
    pthread_mutex_lock(&nodes[b].mu);
    assert_int_equal(nodes[a].n, nodes[b].n);
    for (int k = 0; k < nodes[a].n && k < 64; k++)
        assert_string_equal(nodes[a].log[k], nodes[b].log[k]);
    pthread_mutex_unlock(&nodes[b].mu);
    pthread_mutex_unlock(&nodes[a].mu);
}

static void propose_str(int i, const char *s)
{
    consensus_propose(nodes[i].c, s, strlen(s), done, NULL);
}

static void group(void **state)
{
    test_tmpdir(tmp, sizeof tmp, "ctlraft");
    for (int i = 0; i < N; i++) {
        peers[i].id = (uint64_t)i + 1;
        snprintf(peers[i].addr, sizeof peers[i].addr, "127.0.0.1:%d", free_port());
        snprintf(nodes[i].dir, sizeof nodes[i].dir, "%s/n%d", tmp, i);
        pthread_mutex_init(&nodes[i].mu, NULL);
    }
    for (int i = 0; i < N; i++)
        start(i);
    int l = leader_among();

    /* Entries of 1..40 bytes: most lengths are not multiples of 8. */
    char buf[64];
    for (int k = 0; k < ENTRIES; k++) {
        int len = 1 + (k * 7) % 40;
        for (int j = 0; j < len; j++)
            buf[j] = (char)('a' + (k + j) % 26);
        buf[len] = 0;
        propose_str(l, buf);
    }
    wait_done(ENTRIES);
    assert_int_equal(done_fail, 0);
    for (int i = 0; i < N; i++)
        wait_count(i, ENTRIES);
    same_log(0, 1);
    same_log(0, 2);

    /* A follower refuses. */
    int f = (l + 1) % N;
    propose_str(f, "on-a-follower");
    wait_done(ENTRIES + 1);
    assert_int_equal(last_status, CONSENSUS_NOT_LEADER);
    assert_int_equal(count_of(f), ENTRIES);

    /* The leader stops: the two others elect and go on. */
    stop(l);
    int l2 = leader_among();
    assert_int_not_equal(l2, l);
    propose_str(l2, "after-failover");
    wait_done(ENTRIES + 2);
    assert_int_equal(last_status, 0);
    for (int i = 0; i < N; i++)
        if (i != l)
            wait_count(i, ENTRIES + 1);

    /* The stopped node restarts from its directory and replays the same log. */
    start(l);
    wait_count(l, ENTRIES + 1);
    same_log(l, l2);
    pthread_mutex_lock(&nodes[l].mu);
    assert_true(restores > 0); /* it started from a snapshot */
    pthread_mutex_unlock(&nodes[l].mu);

    /* Two stopped: the last node commits nothing. */
    int last = -1;
    for (int i = 0; i < N; i++)
        if (i != l2 && last < 0)
            last = i;
    for (int i = 0; i < N; i++)
        if (i != last)
            stop(i);
    int before = count_of(last);
    propose_str(last, "no-majority");
    wait_done(ENTRIES + 3);
    assert_int_not_equal(last_status, 0);
    assert_int_equal(count_of(last), before);
    stop(last);
}

/* Also after a failed assertion: stop what runs, remove the directories. */
static int teardown(void **state)
{
    for (int i = 0; i < N; i++) {
        if (nodes[i].c)
            stop(i);
        pthread_mutex_destroy(&nodes[i].mu);
    }
    if (tmp[0])
        test_rmdir(tmp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(group, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
