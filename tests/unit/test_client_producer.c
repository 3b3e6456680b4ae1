/* The libferry producer against an in-process name server and brokers on free loopback ports:
 * sync/async/oneway sends land in the store, chosen queues, compression, size limit, retry on
 * another broker, and "unknown" when a broker never answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/clock.h"
#include "common/err.h"
#include "ferry/ferry.h"
#include "namesrv/namesrv.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

struct env {
    char nsdir[512];
    namesrv_t *ns;
    int ns_port;
    struct tb b[2];
};

static void ns_start(struct env *e)
{
    struct namesrv_config nc;
    char err[512];
    namesrv_config_defaults(&nc);
    snprintf(nc.listenAddress, sizeof nc.listenAddress, "127.0.0.1");
    nc.listenPort = 0;
    test_tmpdir(e->nsdir, sizeof e->nsdir, "client-ns");
    snprintf(nc.kvConfigPath, sizeof nc.kvConfigPath, "%s/kv.json", e->nsdir);
    if (namesrv_new(&nc, &e->ns, err, sizeof err) != 0 || namesrv_start(e->ns, err, sizeof err))
        fail_msg("name server: %s", err);
    e->ns_port = namesrv_port(e->ns);
}

/* Start broker @i named @name, registered, with @topic (4 queues). */
static void broker_up(struct env *e, int i, const char *name, const char *topic)
{
    struct tb *t = &e->b[i];
    tb_init(t, name);
    snprintf(t->cfg.brokerName, sizeof t->cfg.brokerName, "%s", name);
    snprintf(t->cfg.namesrvAddr, sizeof t->cfg.namesrvAddr, "127.0.0.1:%d", e->ns_port);
    tb_start(t);
    remoting_client_t *cli = tb_client(t->port);
    assert_int_equal(tb_create_topic(cli, topic, 4), RESP_SUCCESS);
    remoting_client_free(cli);
}

static int setup1(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    ns_start(e);
    broker_up(e, 0, "broker-a", "TopicA");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    for (int i = 0; i < 2; i++)
        if (e->b[i].dir[0])
            tb_cleanup(&e->b[i]);
    namesrv_free(e->ns);
    test_rmdir(e->nsdir);
    free(e);
    return 0;
}

static ferry_producer_t *producer(struct env *e, struct ferry_producer_config *cfg)
{
    struct ferry_producer_config def;
    ferry_producer_t *p;
    if (!cfg) {
        ferry_producer_config_init(&def);
        cfg = &def;
    }
    snprintf(cfg->group, sizeof cfg->group, "PID_test");
    snprintf(cfg->namesrvAddr, sizeof cfg->namesrvAddr, "127.0.0.1:%d", e->ns_port);
    cfg->sendMsgTimeout *= test_time_mult();
    assert_int_equal(ferry_producer_new(cfg, &p), 0);
    assert_int_equal(ferry_producer_start(p), 0);
    return p;
}

/* The stored record behind @res, checked against @body (uncompressed when flagged). */
static void check_stored(struct tb *t, const struct ferry_send_result *res, const void *body,
                         size_t len, int want_compressed)
{
    char ip[64];
    int port;
    int64_t phys;
    struct store_slice s;
    struct msg_view v;
    size_t vlen;
    assert_int_equal(tb_msgid_decode(res->offset_msg_id, ip, sizeof ip, &port, &phys), 0);
    assert_int_equal(port, t->port);
    assert_int_equal(store_read_at(broker_store(t->b), phys, &s), 0);
    assert_int_equal(msg_parse(s.data, s.len, &v), 0);
    assert_int_equal(v.queue_id, res->queue_id);
    assert_int_equal(v.queue_offset, res->queue_offset);
    const char *uk = msg_prop_get(v.props, v.props_len, "UNIQ_KEY", &vlen);
    assert_non_null(uk);
    assert_int_equal(vlen, 32);
    assert_memory_equal(uk, res->msg_id, 32);
    assert_int_equal(!!(v.sys_flag & 1), want_compressed);
    if (want_compressed) {
        uLongf n = (uLongf)len;
        uint8_t *out = malloc(len);
        assert_int_equal(uncompress(out, &n, v.body, v.body_len), Z_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, body, len);
        free(out);
    } else {
        assert_int_equal(v.body_len, len);
        assert_memory_equal(v.body, body, len);
    }
    store_release(&s, 1);
}

static void test_send_sync(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct ferry_property up[] = {{"color", "blue"}};
    struct ferry_send_result res;
    int qseen[4] = {0};
    for (int i = 0; i < 8; i++) {
        char body[32];
        struct ferry_message m = {.topic = "TopicA",
                                  .tags = "TagA",
                                  .keys = "k1 k2",
                                  .body = body,
                                  .props = up,
                                  .nprops = 1};
        m.body_len = (size_t)snprintf(body, sizeof body, "hello %d", i);
        assert_int_equal(ferry_send_sync(p, &m, &res), 0);
        assert_int_equal(res.status, FERRY_SEND_OK);
        assert_string_equal(res.broker_name, "broker-a");
        assert_true(res.queue_id >= 0 && res.queue_id < 4);
        qseen[res.queue_id]++;
        check_stored(&e->b[0], &res, body, m.body_len, 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(qseen[i], 2); /* round-robin */
    ferry_producer_free(p);
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok, unknown, other;
    struct ferry_send_result res[16];
    int returned; /* set after ferry_send_async returned */
    int early;    /* a callback ran before its call returned */
};

static void on_sent(int rc, const struct ferry_send_result *res, void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    if (w->returned <= w->done)
        w->early++;
    if (rc == 0)
        w->res[w->ok++ % 16] = *res;
    else if (rc == FERRY_EUNKNOWN)
        w->unknown++;
    else
        w->other++;
    w->done++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void wait_done(struct waiter *w, int n)
{
    int64_t end = clock_mono_ms() + 10000 * test_time_mult();
    pthread_mutex_lock(&w->mu);
    while (w->done < n && clock_mono_ms() < end) {
        struct timespec ts = clock_deadline_ts(100);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
}

static void test_send_async(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct ferry_message m = {.topic = "TopicA", .body = "async", .body_len = 5};
    for (int i = 0; i < 10; i++) {
        pthread_mutex_lock(&w.mu);
        assert_int_equal(ferry_send_async(p, &m, on_sent, &w), 0);
        w.returned++;
        pthread_mutex_unlock(&w.mu);
    }
    wait_done(&w, 10);
    assert_int_equal(w.done, 10);
    assert_int_equal(w.ok, 10);
    assert_int_equal(w.early, 0);
    for (int i = 0; i < 10; i++)
        check_stored(&e->b[0], &w.res[i], "async", 5, 0);
    assert_int_equal(ferry_send_async(p, &m, NULL, NULL), FERRY_EINVAL);
    ferry_producer_free(p);
}

static void test_send_oneway(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct ferry_message m = {.topic = "TopicA", .body = "oneway-body", .body_len = 11};
    assert_int_equal(ferry_send_oneway(p, &m), 0);
    /* Pull every queue until the message shows up. */
    remoting_client_t *cli = tb_client(e->b[0].port);
    int64_t end = clock_mono_ms() + 10000 * test_time_mult();
    int found = 0;
    while (!found && clock_mono_ms() < end) {
        for (int q = 0; q < 4 && !found; q++) {
            struct rcmd req, *resp;
            struct tb_rec recs[64];
            tb_pull_req(&req, "GID_t", "TopicA", q, 0, 64, "*", 0, 0);
            resp = tb_call(cli, &req);
            int n = resp->code == RESP_SUCCESS ? tb_records(resp, recs, 64) : 0;
            for (int i = 0; i < n; i++)
                found |= strcmp(recs[i].body, "oneway-body") == 0;
            rcmd_free(resp);
        }
        if (!found)
            usleep(20000);
    }
    assert_true(found);
    remoting_client_free(cli);
    ferry_producer_free(p);
}

static int pick_last(int nqueues, const struct ferry_message *msg, void *arg)
{
    (void)msg;
    (void)arg;
    return nqueues - 1;
}

static void test_send_to_queue(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct ferry_send_result res;
    struct ferry_message m = {.topic = "TopicA", .body = "q", .body_len = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ferry_send_to_queue(p, &m, NULL, NULL, 2, &res), 0);
        assert_int_equal(res.queue_id, 2);
    }
    assert_int_equal(ferry_send_to_queue(p, &m, pick_last, NULL, 0, &res), 0);
    assert_int_equal(res.queue_id, 3);
    int want = ferry_select_by_hash(4, &m, "order-42");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ferry_send_to_queue(p, &m, ferry_select_by_hash, "order-42", 0, &res), 0);
        assert_int_equal(res.queue_id, want);
        check_stored(&e->b[0], &res, "q", 1, 0);
    }
    assert_int_equal(ferry_send_to_queue(p, &m, NULL, NULL, 4, &res), FERRY_EINVAL);
    assert_int_equal(ferry_send_to_queue(p, &m, NULL, NULL, -1, &res), FERRY_EINVAL);
    ferry_producer_free(p);
}

static void test_compression_and_size(void **state)
{
    struct env *e = *state;
    struct ferry_producer_config cfg;
    struct ferry_send_result res;
    ferry_producer_config_init(&cfg);
    cfg.maxMessageSize = 64 * 1024;
    ferry_producer_t *p = producer(e, &cfg);
    size_t len = 20000;
    char *body = malloc(64 * 1024 + 1);
    for (size_t i = 0; i < 64 * 1024 + 1; i++)
        body[i] = (char)('a' + (i * 7 % 13));
    struct ferry_message m = {.topic = "TopicA", .body = body, .body_len = len};
    assert_int_equal(ferry_send_sync(p, &m, &res), 0);
    check_stored(&e->b[0], &res, body, len, 1);
    m.body_len = 4095; /* under compressMsgBodyOverHowmuch */
    assert_int_equal(ferry_send_sync(p, &m, &res), 0);
    check_stored(&e->b[0], &res, body, 4095, 0);
    char *noise = malloc(8192); /* incompressible: sent as it is, not flagged */
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < 8192; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise[i] = (char)x;
    }
    struct ferry_message mn = {.topic = "TopicA", .body = noise, .body_len = 8192};
    assert_int_equal(ferry_send_sync(p, &mn, &res), 0);
    check_stored(&e->b[0], &res, noise, 8192, 0);
    free(noise);
    m.body_len = 64 * 1024; /* the limit itself is fine */
    assert_int_equal(ferry_send_sync(p, &m, &res), 0);
    m.body_len = 64 * 1024 + 1;
    assert_int_equal(ferry_send_sync(p, &m, &res), FERRY_ETOOBIG);
    assert_int_equal(ferry_send_oneway(p, &m), FERRY_ETOOBIG);
    assert_int_equal(ferry_send_async(p, &m, on_sent, NULL), FERRY_ETOOBIG);
    free(body);
    ferry_producer_free(p);
}

static void test_retry_other_broker(void **state)
{
    struct env *e = *state;
    broker_up(e, 1, "broker-b", "TopicA");
    struct ferry_producer_config cfg;
    ferry_producer_config_init(&cfg);
    ferry_producer_t *p = producer(e, &cfg);
    struct ferry_send_result res;
    struct ferry_message m = {.topic = "TopicA", .body = "r", .body_len = 1};
    int seen_a = 0, seen_b = 0;
    for (int i = 0; i < 16 && !(seen_a && seen_b); i++) {
        assert_int_equal(ferry_send_sync(p, &m, &res), 0);
        seen_a |= strcmp(res.broker_name, "broker-a") == 0;
        seen_b |= strcmp(res.broker_name, "broker-b") == 0;
    }
    assert_true(seen_a && seen_b); /* both brokers are in the route */
    tb_stop(&e->b[0]);
    for (int i = 0; i < 10; i++) {
        int64_t t0 = clock_mono_ms();
        assert_int_equal(ferry_send_sync(p, &m, &res), 0);
        assert_true(clock_mono_ms() - t0 < cfg.sendMsgTimeout);
        assert_string_equal(res.broker_name, "broker-b");
        check_stored(&e->b[1], &res, "r", 1, 0);
    }
    ferry_producer_free(p);
}

static void test_send_batch(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct ferry_send_result res;
    struct ferry_message m[5];
    char bodies[5][16], ids[5][FERRY_UNIQ_KEY_LEN];
    for (int i = 0; i < 5; i++) {
        m[i] = (struct ferry_message){.topic = "TopicA", .tags = "TagB", .body = bodies[i]};
        m[i].body_len = (size_t)snprintf(bodies[i], sizeof bodies[i], "batch-%d", i);
    }
    assert_int_equal(ferry_send_batch(p, m, 5, ids, &res), 0);
    assert_int_equal(res.status, FERRY_SEND_OK);
    assert_string_equal(res.msg_id, ids[0]);
    check_stored(&e->b[0], &res, "batch-0", 7, 0);
    /* All five, in order, with consecutive offsets in one queue. */
    remoting_client_t *cli = tb_client(e->b[0].port);
    struct rcmd req, *resp;
    struct tb_rec recs[8];
    tb_wait_dispatched(&e->b[0]);
    tb_pull_req(&req, "GID_t", "TopicA", res.queue_id, res.queue_offset, 5, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_records(resp, recs, 8), 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(recs[i].body, bodies[i]);
        assert_string_equal(tb_prop(&recs[i], "UNIQ_KEY"), ids[i]);
        assert_string_equal(tb_prop(&recs[i], "TAGS"), "TagB");
        assert_int_equal(recs[i].v.queue_offset, res.queue_offset + i);
    }
    rcmd_free(resp);
    remoting_client_free(cli);
    /* Refused before sending. */
    m[3].topic = "TopicB";
    assert_int_equal(ferry_send_batch(p, m, 5, NULL, &res), FERRY_EINVAL);
    m[3].topic = "TopicA";
    m[2].delay_level = 3;
    assert_int_equal(ferry_send_batch(p, m, 5, NULL, &res), FERRY_EINVAL);
    m[2].delay_level = 0;
    assert_int_equal(ferry_send_batch(p, m, 0, NULL, &res), FERRY_EINVAL);
    ferry_producer_free(p);

    struct ferry_producer_config cfg;
    ferry_producer_config_init(&cfg);
    cfg.maxMessageSize = 30; /* each body fits, all five (35 bytes) do not */
    p = producer(e, &cfg);
    assert_int_equal(ferry_send_batch(p, m, 5, NULL, &res), FERRY_ETOOBIG);
    assert_int_equal(ferry_send_batch(p, m, 4, NULL, &res), 0);
    ferry_producer_free(p);
}

/* The broker restarts on the same port: the producer reconnects. */
static void test_reconnect(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct ferry_send_result res;
    struct ferry_message m = {.topic = "TopicA", .body = "c", .body_len = 1};
    assert_int_equal(ferry_send_sync(p, &m, &res), 0);
    int port = e->b[0].port;
    tb_stop(&e->b[0]);
    assert_int_not_equal(ferry_send_sync(p, &m, &res), 0); /* nobody there */
    e->b[0].cfg.listenPort = port;
    tb_start(&e->b[0]);
    int64_t end = clock_mono_ms() + 10000 * test_time_mult();
    int rc;
    while ((rc = ferry_send_sync(p, &m, &res)) != 0 && clock_mono_ms() < end)
        usleep(50000);
    assert_int_equal(rc, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ferry_send_sync(p, &m, &res), 0);
        check_stored(&e->b[0], &res, "c", 1, 0);
    }
    ferry_producer_free(p);
}

/* A "broker" that accepts connections (the kernel does) and never answers, registered with
 * the name server for topic Silent. */
static void test_no_answer_is_unknown(void **state)
{
    struct env *e = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    char addr[64], body[1024];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    snprintf(body, sizeof body,
             "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{\"dataVersion\":"
             "{\"counter\":1,\"timestamp\":1},\"topicConfigTable\":{\"Silent\":{\"order\":false,"
             "\"perm\":6,\"readQueueNums\":2,\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":"
             "\"Silent\",\"topicSysFlag\":0,\"writeQueueNums\":2}}}}");
    remoting_client_t *reg = tb_client(e->ns_port);
    struct rcmd req;
    rcmd_init_request(&req, REQ_REGISTER_BROKER);
    rcmd_ext_add(&req, "brokerName", "broker-silent");
    rcmd_ext_add(&req, "brokerAddr", addr);
    rcmd_ext_add(&req, "clusterName", "DefaultCluster");
    rcmd_ext_add(&req, "haServerAddr", addr);
    rcmd_ext_add(&req, "brokerId", "0");
    rcmd_ext_add(&req, "compressed", "false");
    rcmd_ext_add(&req, "bodyCrc32", "0");
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(tb_call_code(reg, &req), RESP_SUCCESS);

    struct ferry_producer_config cfg;
    ferry_producer_config_init(&cfg);
    cfg.sendMsgTimeout = 500;
    ferry_producer_t *p = producer(e, &cfg);
    struct ferry_send_result res;
    struct ferry_message m = {.topic = "Silent", .body = "s", .body_len = 1};
    assert_int_equal(ferry_send_sync(p, &m, &res), FERRY_EUNKNOWN);
    assert_int_equal(ferry_send_to_queue(p, &m, NULL, NULL, 1, &res), FERRY_EUNKNOWN);
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_mutex_lock(&w.mu);
    assert_int_equal(ferry_send_async(p, &m, on_sent, &w), 0);
    w.returned++;
    pthread_mutex_unlock(&w.mu);
    wait_done(&w, 1);
    assert_int_equal(w.unknown, 1);
    /* A pending async send completes (unknown), at the latest when the producer is freed. */
    pthread_mutex_lock(&w.mu);
    assert_int_equal(ferry_send_async(p, &m, on_sent, &w), 0);
    w.returned++;
    pthread_mutex_unlock(&w.mu);
    ferry_producer_free(p);
    assert_int_equal(w.done, 2);
    assert_int_equal(w.unknown, 2);
    remoting_client_free(reg);
    close(fd);
}

/* Nobody serves the topic and no broker has TBW102 routes for it: not persisted. */
static void test_no_route(void **state)
{
    struct env *e = *state;
    struct ferry_producer_config cfg;
    ferry_producer_config_init(&cfg);
    cfg.sendMsgTimeout = 1000;
    snprintf(cfg.group, sizeof cfg.group, "PID_test");
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "127.0.0.1:%d", tb_free_port());
    ferry_producer_t *p;
    assert_int_equal(ferry_producer_new(&cfg, &p), 0);
    assert_int_equal(ferry_producer_start(p), 0);
    struct ferry_message m = {.topic = "Nowhere", .body = "n", .body_len = 1};
    int rc = ferry_send_sync(p, &m, NULL);
    assert_true(rc < 0 && rc != FERRY_EUNKNOWN);
    ferry_producer_free(p);
    (void)e;
}

/* GET_PRODUCER_CONNECTION_LIST for PID_test: 1 when @id is listed. */
static int producer_listed(struct env *e, const char *id)
{
    remoting_client_t *cli = tb_client(e->b[0].port);
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_PRODUCER_CONNECTION_LIST);
    rcmd_ext_add(&req, "producerGroup", "PID_test");
    struct rcmd *resp = tb_call(cli, &req);
    int found = resp->code == RESP_SUCCESS && strstr(tb_body(resp), id) != NULL;
    rcmd_free(resp);
    remoting_client_free(cli);
    return found;
}

/* The producer heartbeats to a broker as soon as it is connected to it (the broker lists the
 * group's connection); after shutdown it is not listed any more (UNREGISTER_CLIENT, or the
 * closed connection: the broker drops the channel either way). */
static void test_heartbeat_unregister(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    struct ferry_message m = {.topic = "TopicA", .body = "hb", .body_len = 2};
    assert_int_equal(ferry_send_sync(p, &m, NULL), 0);
    char pid[32];
    snprintf(pid, sizeof pid, "@%d#p", (int)getpid());
    int64_t deadline = clock_mono_ms() + 10000 * test_time_mult();
    while (!producer_listed(e, pid) && clock_mono_ms() < deadline)
        usleep(20000);
    assert_true(producer_listed(e, pid));
    ferry_producer_free(p);
    assert_false(producer_listed(e, pid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_sync, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_send_async, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_send_oneway, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_send_to_queue, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_compression_and_size, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_retry_other_broker, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_send_batch, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_is_unknown, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_no_route, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_unregister, setup1, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
