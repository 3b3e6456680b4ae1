/* Replication: a SYNC_MASTER (SYNC_FLUSH) and a SLAVE as two in-process brokers with real
 * sockets and stores. Every acknowledged message must already be durable on the slave when
 * the answer arrives; the slave's CommitLog is a byte-identical prefix of the master's and its
 * own ConsumeQueues serve pulls; a slave that restarts catches up from its offset; a slow slave
 * gives FLUSH_SLAVE_TIMEOUT, no slave SLAVE_NOT_AVAILABLE; a peer without the secret or with
 * another brokerName is refused before it sees any data; ASYNC_MASTER does not wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "broker/broker.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "../lib/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SECRET "s3cret-for-tests"

static void master_cfg(struct tb *m, int role, int ha_port)
{
    tb_init(m, "ha-master");
    m->cfg.brokerRole = role;
    m->cfg.haListenPort = ha_port;
    snprintf(m->cfg.haSecret, sizeof m->cfg.haSecret, "%s", SECRET);
    m->cfg.store.flushDiskType = SYNC_FLUSH;
    m->cfg.store.syncFlushTimeout = 5000 * test_time_mult();
    m->cfg.haSendHeartbeatInterval = 200;
}

static void slave_cfg(struct tb *s, int ha_port, const char *secret)
{
    tb_init(s, "ha-slave");
    s->cfg.brokerRole = BROKER_SLAVE;
    s->cfg.brokerId = 1;
    snprintf(s->cfg.haMasterAddress, sizeof s->cfg.haMasterAddress, "127.0.0.1:%d", ha_port);
    snprintf(s->cfg.haSecret, sizeof s->cfg.haSecret, "%s", secret);
    s->cfg.store.flushDiskType = SYNC_FLUSH;
    s->cfg.haSendHeartbeatInterval = 200;
}

static int32_t send_code(remoting_client_t *cli, const char *topic, int qid, const char *body,
                         int64_t *end, store_t *master)
{
    struct rcmd req;
    char props[128];
    tb_send_req(&req, topic, qid, tb_props(props, sizeof props, "TagA", "k1"), body, strlen(body));
    struct rcmd *r = tb_call(cli, &req);
    int32_t code = r->code;
    if (end && (code == RESP_SUCCESS || code == RESP_FLUSH_SLAVE_TIMEOUT ||
                code == RESP_SLAVE_NOT_AVAILABLE)) {
        char ip[64];
        int port;
        int64_t phys;
        assert_int_equal(tb_msgid_decode(tb_ext(r, "msgId"), ip, sizeof ip, &port, &phys), 0);
        struct store_slice sl;
        assert_int_equal(store_read_at(master, phys, &sl), 0);
        *end = phys + sl.len;
        store_release(&sl, 1);
    }
    rcmd_free(r);
    return code;
}

/* Wait (deadline) until @cond_fn holds. */
static int wait_until(int (*fn)(void *), void *arg, int ms)
{
    int64_t deadline = clock_mono_ms() + (int64_t)ms * test_time_mult();
    while (!fn(arg)) {
        if (clock_mono_ms() > deadline)
            return -1;
        usleep(2000);
    }
    return 0;
}

struct pair {
    struct tb *m, *s;
};

static int slave_caught_up(void *arg)
{
    struct pair *p = arg;
    return store_flushed_phys(broker_store(p->s->b)) == store_max_phys(broker_store(p->m->b));
}

/* An in-sync slave is known to the master once a send is not SLAVE_NOT_AVAILABLE. */
static void wait_in_sync(remoting_client_t *cli, store_t *master)
{
    int64_t deadline = clock_mono_ms() + 10000LL * test_time_mult();
    for (;;) {
        int64_t end;
        int32_t code = send_code(cli, "HaWarm", 0, "warm-up", &end, master);
        if (code == RESP_SUCCESS)
            return;
        assert_int_equal(code, RESP_SLAVE_NOT_AVAILABLE);
        assert_true(clock_mono_ms() < deadline);
        usleep(20000);
    }
}

/* Byte-compare the slave's CommitLog with the master's over [0, slave end). */
static void assert_prefix(store_t *m, store_t *s)
{
    int64_t end = store_max_phys(s), pos = 0;
    assert_true(end > 0);
    assert_true(end <= store_max_phys(m));
    while (pos < end) {
        struct store_slice a, b;
        int64_t n = store_read_raw(m, pos, end - pos, &a);
        assert_true(n > 0);
        int64_t k = store_read_raw(s, pos, n, &b);
        assert_int_equal(k, n);
        assert_memory_equal(a.data, b.data, (size_t)n);
        store_release(&a, 1);
        store_release(&b, 1);
        pos += n;
    }
}

static void test_sync_master_replicates(void **state)
{
    (void)state;
    struct tb m, s;
    int ha_port = tb_free_port();
    master_cfg(&m, BROKER_SYNC_MASTER, ha_port);
    tb_start(&m);
    slave_cfg(&s, ha_port, SECRET);
    tb_start(&s);
    store_t *ms = broker_store(m.b), *ss = broker_store(s.b);
    remoting_client_t *cli = tb_client(m.port);
    assert_int_equal(tb_create_topic(cli, "HaTopic", 2), RESP_SUCCESS);
    wait_in_sync(cli, ms);

    /* Every acknowledged message is durable on the slave when the answer arrives. */
    for (int i = 0; i < 200; i++) {
        char body[64];
        snprintf(body, sizeof body, "replicated %d", i);
        int64_t end = 0;
        assert_int_equal(send_code(cli, "HaTopic", i % 2, body, &end, ms), RESP_SUCCESS);
        assert_true(store_flushed_phys(ss) >= end);
    }
    struct pair p = {&m, &s};
    assert_int_equal(wait_until(slave_caught_up, &p, 10000), 0);
    assert_prefix(ms, ss);

    /* The slave serves them from its own ConsumeQueues. */
    assert_int_equal(store_wait_dispatched(ss, 10000 * test_time_mult()), 0);
    /* (Pulls over the wire also need the topic config, which reaches a slave by the
     * metadata sync of slave_sync.c, not by this stream: read the slave's queue directly.) */
    struct store_slice sl[32];
    struct get_request gr = {
        .topic = "HaTopic", .queue_id = 1, .offset = 0, .max_msgs = 32, .max_bytes = 1 << 20};
    struct get_result res = {.msgs = sl};
    assert_int_equal(store_get(ss, &gr, &res), 0);
    assert_int_equal(res.status, GET_FOUND);
    assert_int_equal(res.n, 32);
    assert_int_equal(res.max_offset, 100);
    for (int i = 0; i < res.n; i++) {
        struct msg_view v;
        char want[64];
        assert_int_equal(msg_parse(sl[i].data, sl[i].len, &v), 0);
        snprintf(want, sizeof want, "replicated %d", 2 * i + 1);
        assert_int_equal(v.body_len, strlen(want));
        assert_memory_equal(v.body, want, v.body_len);
        assert_int_equal(v.queue_offset, i);
    }
    store_release(sl, res.n);

    /* The slave restarts and catches up from its own offset. */
    int64_t before = store_max_phys(ss);
    tb_stop(&s);
    for (int i = 0; i < 20; i++)
        assert_int_equal(send_code(cli, "HaTopic", 0, "while the slave is away", NULL, ms),
                         RESP_SLAVE_NOT_AVAILABLE);
    tb_start(&s);
    ss = broker_store(s.b);
    assert_true(store_max_phys(ss) >= before);
    assert_int_equal(wait_until(slave_caught_up, &p, 10000), 0);
    assert_prefix(ms, ss);
    wait_in_sync(cli, ms);
    int64_t end = 0;
    assert_int_equal(send_code(cli, "HaTopic", 0, "after restart", &end, ms), RESP_SUCCESS);
    assert_true(store_flushed_phys(ss) >= end);

    remoting_client_free(cli);
    tb_cleanup(&s);
    tb_cleanup(&m);
}

static void test_no_slave_and_slow_slave(void **state)
{
    (void)state;
    struct tb m, s;
    int ha_port = tb_free_port();
    master_cfg(&m, BROKER_SYNC_MASTER, ha_port);
    m.cfg.store.syncFlushTimeout = 300;
    tb_start(&m);
    store_t *ms = broker_store(m.b);
    remoting_client_t *cli = tb_client(m.port);
    assert_int_equal(tb_create_topic(cli, "HaSlow", 1), RESP_SUCCESS);
    /* No slave: SLAVE_NOT_AVAILABLE at once, the message stored on the master. */
    int64_t t0 = clock_mono_ms(), end = 0;
    assert_int_equal(send_code(cli, "HaSlow", 0, "alone", &end, ms), RESP_SLAVE_NOT_AVAILABLE);
    assert_true(clock_mono_ms() - t0 < 250);
    assert_true(end > 0);

    /* A slave whose disk takes 2 s per sync: FLUSH_SLAVE_TIMEOUT after syncFlushTimeout. */
    slave_cfg(&s, ha_port, SECRET);
    s.cfg.store.debugSyncDelayMs = 2000;
    tb_start(&s);
    int64_t deadline = clock_mono_ms() + 20000LL * test_time_mult();
    int32_t code;
    while ((code = send_code(cli, "HaSlow", 0, "slow", &end, ms)) == RESP_SLAVE_NOT_AVAILABLE) {
        assert_true(clock_mono_ms() < deadline);
        usleep(20000);
    }
    /* in sync (gap < haMaxGapNotInSync) but not durable in time */
    t0 = clock_mono_ms();
    assert_int_equal(send_code(cli, "HaSlow", 0, "slow 2", &end, ms), RESP_FLUSH_SLAVE_TIMEOUT);
    assert_true(clock_mono_ms() - t0 >= 250);
    assert_true(end > 0); /* stored on the master all the same (send_code read it back) */
    remoting_client_free(cli);
    tb_cleanup(&s);
    tb_cleanup(&m);
}

static void test_async_master_does_not_wait(void **state)
{
    (void)state;
    struct tb m, s;
    int ha_port = tb_free_port();
    master_cfg(&m, BROKER_ASYNC_MASTER, ha_port);
    tb_start(&m);
    slave_cfg(&s, ha_port, SECRET);
    s.cfg.store.debugSyncDelayMs = 3000;
    tb_start(&s);
    store_t *ms = broker_store(m.b);
    remoting_client_t *cli = tb_client(m.port);
    assert_int_equal(tb_create_topic(cli, "HaAsync", 1), RESP_SUCCESS);
    int64_t t0 = clock_mono_ms();
    for (int i = 0; i < 20; i++)
        assert_int_equal(send_code(cli, "HaAsync", 0, "no wait", NULL, ms), RESP_SUCCESS);
    assert_true(clock_mono_ms() - t0 < 2500);
    /* It still replicates: the slave receives everything. */
    int64_t deadline = clock_mono_ms() + 10000LL * test_time_mult();
    while (store_received_phys(broker_store(s.b)) < store_max_phys(ms)) {
        assert_true(clock_mono_ms() < deadline);
        usleep(2000);
    }
    remoting_client_free(cli);
    tb_cleanup(&s);
    tb_cleanup(&m);
}

/* ---- authentication, probed with a raw socket ---------------------------------------- */

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static int read_n(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Handshake as a slave named @name with key @secret; returns 1 when the master answered with
 * its proof, 0 when it closed the connection instead. */
static int probe(int port, const char *name, const char *secret)
{
    int fd = connect_port(port);
    uint8_t h[128], mh[128], nonce[32] = {1, 2, 3};
    size_t nl = strlen(name);
    memcpy(h, "FHA1", 4);
    h[4] = 'S';
    be64_put(h + 5, 8 * 1024 * 1024);
    memcpy(h + 13, nonce, 32);
    be64_put(h + 45, 2); /* brokerId */
    h[53] = (uint8_t)nl;
    memcpy(h + 54, name, nl);
    assert_int_equal(send(fd, h, 54 + nl, 0), (ssize_t)(54 + nl));
    assert_int_equal(read_n(fd, mh, 54), 0);
    assert_int_equal(read_n(fd, mh + 54, mh[53]), 0);
    uint8_t msg[200], a[33];
    memcpy(msg, nonce, 32);
    memcpy(msg + 32, mh + 13, 32);
    memcpy(msg + 64, name, nl);
    msg[64 + nl] = 'S';
    unsigned len = 32;
    a[0] = 'A';
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, 65 + nl, a + 1, &len);
    ssize_t w = send(fd, a, sizeof a, MSG_NOSIGNAL);
    uint8_t back[1];
    int got = w == (ssize_t)sizeof a && recv(fd, back, 1, 0) == 1 && back[0] == 'A';
    close(fd);
    return got;
}

static void test_auth(void **state)
{
    (void)state;
    struct tb m, s;
    int ha_port = tb_free_port();
    master_cfg(&m, BROKER_SYNC_MASTER, ha_port);
    tb_start(&m);
    /* The protocol with the right secret gets an answer (the probe is a valid client). */
    assert_int_equal(probe(ha_port, "broker-t", SECRET), 1);
    assert_int_equal(probe(ha_port, "broker-t", "wrong"), 0);
    /* A valid secret for another broker set is refused by name before any proof. */
    int fd = connect_port(ha_port);
    uint8_t h[64] = "FHA1S";
    be64_put(h + 5, 8 * 1024 * 1024);
    h[53] = 5;
    memcpy(h + 54, "other", 5);
    assert_int_equal(send(fd, h, 59, 0), 59);
    uint8_t buf[256];
    ssize_t r;
    size_t total = 0;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        total += (size_t)r;
    assert_int_equal(r, 0);       /* closed by the master */
    assert_true(total <= 54 + 8); /* its HELLO only: no proof, no data */
    close(fd);

    /* A real slave with the wrong secret: nothing replicated, nothing acknowledged. */
    slave_cfg(&s, ha_port, "not-the-secret");
    tb_start(&s);
    store_t *ms = broker_store(m.b);
    remoting_client_t *cli = tb_client(m.port);
    assert_int_equal(tb_create_topic(cli, "HaAuth", 1), RESP_SUCCESS);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(send_code(cli, "HaAuth", 0, "x", NULL, ms), RESP_SLAVE_NOT_AVAILABLE);
        usleep(50000);
    }
    assert_int_equal(store_received_phys(broker_store(s.b)), 0);
    remoting_client_free(cli);
    tb_cleanup(&s);
    tb_cleanup(&m);
}

/* SEND_BATCH_MESSAGE (the store_put_async path): the answer waits for the slave too. */
static int32_t send_batch(remoting_client_t *cli, const char *topic, int n, int64_t *end,
                          store_t *master)
{
    uint8_t body[4096];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char b[32];
        int bl = snprintf(b, sizeof b, "batch %d", i);
        uint8_t *e = body + len;
        size_t total = 20 + (size_t)bl + 2;
        be32_put(e, (uint32_t)total);
        be32_put(e + 4, 0);
        be32_put(e + 8, 0);
        be32_put(e + 12, 0);
        be32_put(e + 16, (uint32_t)bl);
        memcpy(e + 20, b, (size_t)bl);
        e[20 + bl] = 0;
        e[21 + bl] = 0;
        len += total;
    }
    struct rcmd req;
    rcmd_init_request(&req, REQ_SEND_BATCH_MESSAGE);
    rcmd_ext_add(&req, "a", "PID_test");
    rcmd_ext_add(&req, "b", topic);
    rcmd_ext_add(&req, "c", "TBW102");
    rcmd_ext_add(&req, "d", "4");
    rcmd_ext_add(&req, "e", "0");
    rcmd_ext_add(&req, "f", "0");
    rcmd_ext_add(&req, "g", "1700000000123");
    rcmd_ext_add(&req, "h", "0");
    rcmd_ext_add(&req, "j", "0");
    rcmd_ext_add(&req, "k", "false");
    rcmd_ext_add(&req, "m", "true");
    req.body = body;
    req.body_len = len;
    struct rcmd *r = tb_call(cli, &req);
    int32_t code = r->code;
    if (code == RESP_SUCCESS) {
        const char *ids = tb_ext(r, "msgId");
        const char *last = strrchr(ids, ',');
        char ip[64];
        int port;
        int64_t phys;
        assert_non_null(last);
        assert_int_equal(tb_msgid_decode(last + 1, ip, sizeof ip, &port, &phys), 0);
        struct store_slice sl;
        assert_int_equal(store_read_at(master, phys, &sl), 0);
        *end = phys + sl.len;
        store_release(&sl, 1);
    }
    rcmd_free(r);
    return code;
}

static void copy_store(const char *dir, const char *from, const char *to)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s' && cp -a '%s/%s' '%s/%s'", dir, to, dir, from, dir,
             to);
    assert_int_equal(system(cmd), 0);
}

static void send_n(remoting_client_t *cli, store_t *ms, store_t *ss, const char *prefix, int n,
                   int32_t want)
{
    for (int i = 0; i < n; i++) {
        char body[64];
        int64_t end = 0;
        snprintf(body, sizeof body, "%s-%d", prefix, i);
        assert_int_equal(send_code(cli, "HaDiv", 0, body, &end, ms), want);
        if (want == RESP_SUCCESS && ss)
            assert_true(store_flushed_phys(ss) >= end);
    }
}

/* A master that comes back with a shorter log (it lost its tail, as after a failover to an
 * older copy): the slave checks the last common record and cuts its log and queues there, so
 * no queue offset is used twice. A master whose log differs, or is empty, is not followed. */
static void test_longer_slave_is_cut_after_check(void **state)
{
    (void)state;
    struct tb m, s;
    int ha_port = tb_free_port();
    master_cfg(&m, BROKER_SYNC_MASTER, ha_port);
    tb_start(&m);
    slave_cfg(&s, ha_port, SECRET);
    tb_start(&s);
    store_t *ms = broker_store(m.b), *ss = broker_store(s.b);
    remoting_client_t *cli = tb_client(m.port);
    assert_int_equal(tb_create_topic(cli, "HaDiv", 1), RESP_SUCCESS);
    wait_in_sync(cli, ms);
    int64_t bend = 0;
    assert_int_equal(send_batch(cli, "HaDiv", 3, &bend, ms), RESP_SUCCESS);
    assert_true(store_flushed_phys(ss) >= bend);
    send_n(cli, ms, ss, "a", 30, RESP_SUCCESS);
    remoting_client_free(cli);

    tb_stop(&m);
    copy_store(m.dir, "store", "store-old");
    tb_start(&m);
    ms = broker_store(m.b);
    cli = tb_client(m.port);
    wait_in_sync(cli, ms);
    send_n(cli, ms, ss, "b", 20, RESP_SUCCESS);
    remoting_client_free(cli);
    int64_t slave_end = store_max_phys(ss);

    /* The master comes back with the old copy: shorter than the slave. */
    tb_stop(&m);
    copy_store(m.dir, "store", "store-new");
    copy_store(m.dir, "store-old", "store");
    tb_start(&m);
    ms = broker_store(m.b);
    assert_true(store_max_phys(ms) < slave_end);
    /* Nothing may be written before the slave is back: a new record at offsets the slave
     * already holds differently is a real divergence, which is refused (below). */
    struct pair p = {&m, &s};
    assert_int_equal(wait_until(slave_caught_up, &p, 10000), 0);
    assert_int_equal(store_max_phys(ss), store_max_phys(ms));
    cli = tb_client(m.port);
    wait_in_sync(cli, ms);
    send_n(cli, ms, ss, "c", 10, RESP_SUCCESS);
    assert_int_equal(wait_until(slave_caught_up, &p, 10000), 0);
    assert_int_equal(store_max_phys(ss), store_max_phys(ms));
    assert_prefix(ms, ss);
    assert_int_equal(store_wait_dispatched(ss, 10000 * test_time_mult()), 0);
    /* 3 batch + 30 a + 10 c, each queue offset once: no b left. */
    assert_int_equal(store_max_offset(ss, "HaDiv", 0), 43);
    struct store_slice sl[16];
    struct get_request gr = {
        .topic = "HaDiv", .queue_id = 0, .offset = 30, .max_msgs = 16, .max_bytes = 1 << 20};
    struct get_result res = {.msgs = sl};
    assert_int_equal(store_get(ss, &gr, &res), 0);
    assert_int_equal(res.n, 13);
    for (int i = 0; i < res.n; i++) {
        struct msg_view v;
        char want[32];
        assert_int_equal(msg_parse(sl[i].data, sl[i].len, &v), 0);
        snprintf(want, sizeof want, i < 3 ? "a-%d" : "c-%d", i < 3 ? 27 + i : i - 3);
        assert_int_equal(v.body_len, strlen(want));
        assert_memory_equal(v.body, want, v.body_len);
    }
    store_release(sl, res.n);
    remoting_client_free(cli);

    /* A master whose log differs from the slave's below its end: refused, nothing cut. */
    tb_stop(&s);
    tb_stop(&m);
    copy_store(m.dir, "store-old", "store");
    tb_start(&m);
    ms = broker_store(m.b);
    cli = tb_client(m.port);
    send_n(cli, ms, NULL, "different-message-x", 25, RESP_SLAVE_NOT_AVAILABLE);
    tb_start(&s);
    ss = broker_store(s.b);
    slave_end = store_max_phys(ss);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(send_code(cli, "HaDiv", 0, "y", NULL, ms), RESP_SLAVE_NOT_AVAILABLE);
        usleep(100000);
    }
    assert_int_equal(store_max_phys(ss), slave_end);
    assert_int_equal(store_received_phys(ss), slave_end);
    remoting_client_free(cli);

    /* A master with an empty log: nothing to compare, the slave does not cut on trust. */
    tb_stop(&s);
    tb_stop(&m);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/store'", m.dir);
    assert_int_equal(system(cmd), 0);
    tb_start(&m);
    tb_start(&s); /* connects at once */
    ss = broker_store(s.b);
    cli = tb_client(m.port);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(send_code(cli, "HaWarm", 0, "z", NULL, broker_store(m.b)),
                         RESP_SLAVE_NOT_AVAILABLE);
        usleep(100000);
    }
    assert_int_equal(store_max_phys(ss), slave_end);
    remoting_client_free(cli);
    tb_cleanup(&s);
    tb_cleanup(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_master_replicates),
        cmocka_unit_test(test_no_slave_and_slow_slave),
        cmocka_unit_test(test_async_master_does_not_wait),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_longer_slave_is_cut_after_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
