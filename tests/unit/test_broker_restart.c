/* The broker across restarts and with name servers: acknowledged messages, committed offsets,
 * topics and groups survive a clean restart; damaged metadata falls back to the .bak copy or
 * stops start-up naming the file; fastjson's unquoted integer keys load; registration makes
 * topics visible in a real name server's routes at once, keeps working when a name server is
 * down, and is withdrawn at clean shutdown. Brokers and name servers run in-process on free
 * loopback ports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#ifdef FERRY_HAVE_NAMESRV
#include "namesrv/namesrv.h"
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_MSGS 200

static void set_offset(remoting_client_t *cli, const char *group, const char *topic, int q,
                       int64_t off)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", q);
    rcmd_ext_add_i64(&req, "commitOffset", off);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
}

static int64_t get_offset(remoting_client_t *cli, const char *group, const char *topic, int q)
{
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_QUERY_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", q);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    int64_t off = tb_ext_i64(resp, "offset");
    rcmd_free(resp);
    return off;
}

static int file_exists(const char *dir, const char *rel)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return stat(p, &st) == 0;
}

static char *read_file(const char *dir, const char *rel)
{
    char p[1024], *buf = NULL;
    size_t len;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (fs_read_file(p, 0, &buf, &len, 1 << 24) != 0)
        return NULL;
    return buf;
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Pull every message of @topic/@q from 0 and check the bodies "m<i>". */
static void check_messages(remoting_client_t *cli, const char *topic, int q, int n)
{
    int64_t off = 0;
    int seen = 0;
    struct tb_rec recs[32];
    while (seen < n) {
        struct rcmd req, *resp;
        tb_pull_req(&req, "GID_check", topic, q, off, 32, "*", 0, 0);
        resp = tb_call(cli, &req);
        assert_int_equal(resp->code, RESP_SUCCESS);
        int got = tb_records(resp, recs, 32);
        assert_true(got > 0);
        for (int i = 0; i < got; i++) {
            char want[32];
            snprintf(want, sizeof want, "m%d", seen + i);
            assert_string_equal(recs[i].body, want);
            assert_int_equal(recs[i].v.queue_offset, seen + i);
        }
        seen += got;
        off = tb_ext_i64(resp, "nextBeginOffset");
        rcmd_free(resp);
    }
    assert_int_equal(seen, n);
}

static void test_clean_restart_keeps_everything(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-restart");
    t.cfg.store.flushDiskType = SYNC_FLUSH;
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "Keep", 2), RESP_SUCCESS);
    for (int i = 0; i < N_MSGS; i++) {
        char body[16];
        snprintf(body, sizeof body, "m%d", i);
        struct rcmd *r = tb_send(cli, "Keep", 1, "k", NULL, body);
        rcmd_free(r);
    }
    set_offset(cli, "GID_keep", "Keep", 1, 150);
    set_offset(cli, "GID_keep", "Keep", 0, 3);
    const char *gc = "{\"groupName\":\"GID_conf\",\"retryMaxTimes\":5}";
    struct rcmd req;
    rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP);
    req.body = (const uint8_t *)gc;
    req.body_len = strlen(gc);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    remoting_client_free(cli);
    tb_stop(&t);

    /* Clean stop: no abort file; metadata in RocketMQ's shapes. */
    assert_false(file_exists(t.dir, "store/abort"));
    char *offsets = read_file(t.dir, "store/config/consumerOffset.json");
    assert_non_null(offsets);
    assert_non_null(strstr(offsets, "{\"offsetTable\":{"));
    assert_non_null(strstr(offsets, "\"Keep@GID_keep\":{\"0\":3,\"1\":150}"));
    free(offsets);
    char *topics = read_file(t.dir, "store/config/topics.json");
    assert_non_null(strstr(topics, "\"Keep\":{\"order\":false,\"perm\":6,\"readQueueNums\":2"));
    free(topics);
    char *groups = read_file(t.dir, "store/config/subscriptionGroup.json");
    assert_non_null(strstr(groups, "\"GID_conf\":{"));
    assert_non_null(strstr(groups, "\"retryMaxTimes\":5"));
    free(groups);

    tb_start(&t);
    cli = tb_client(t.port);
    assert_int_equal(get_offset(cli, "GID_keep", "Keep", 1), 150);
    assert_int_equal(get_offset(cli, "GID_keep", "Keep", 0), 3);
    tb_wait_dispatched(&t);
    check_messages(cli, "Keep", 1, N_MSGS);
    /* The topic config came back (a send with an out-of-range queue id is refused). */
    struct rcmd *resp;
    tb_send_req(&req, "Keep", 2, NULL, "x", 1);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    rcmd_free(resp);
    rcmd_init_request(&req, REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
    resp = tb_call(cli, &req);
    assert_non_null(strstr(tb_body(resp), "\"retryMaxTimes\":5"));
    rcmd_free(resp);
    remoting_client_free(cli);
    tb_cleanup(&t);
}

static void test_offsets_flushed_periodically(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-flush");
    t.cfg.flushConsumerOffsetInterval = 100;
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "Flushy", 1), RESP_SUCCESS);
    set_offset(cli, "GID_f", "Flushy", 0, 42);
    /* Without any shutdown the file catches up within the interval (+ the 1 s service tick). */
    int64_t end = clock_mono_ms() + 10000 * test_time_mult();
    int ok = 0;
    while (!ok && clock_mono_ms() < end) {
        char *text = read_file(t.dir, "store/config/consumerOffset.json");
        ok = text && strstr(text, "\"Flushy@GID_f\":{\"0\":42}");
        free(text);
        if (!ok) {
            struct timespec d = {0, 10 * 1000000};
            nanosleep(&d, NULL);
        }
    }
    assert_true(ok);
    remoting_client_free(cli);
    tb_cleanup(&t);
}

static void test_metadata_fallbacks(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-meta");
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "First", 1), RESP_SUCCESS);
    assert_int_equal(tb_create_topic(cli, "Second", 1), RESP_SUCCESS);
    remoting_client_free(cli);
    tb_stop(&t);

    /* A damaged topics.json: the .bak (the previous version) is used. */
    write_file(t.dir, "store/config/topics.json", "{\"topicConfigTable\":{ garbage");
    /* fastjson writes integer map keys without quotes: accepted. */
    write_file(t.dir, "store/config/consumerOffset.json",
               "{\"offsetTable\":{\"First@GID_fj\":{0:77,1:5}}}");
    tb_start(&t);
    cli = tb_client(t.port);
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    resp = tb_call(cli, &req);
    assert_non_null(strstr(tb_body(resp), "\"First\":{"));
    rcmd_free(resp);
    assert_int_equal(get_offset(cli, "GID_fj", "First", 0), 77);
    remoting_client_free(cli);
    tb_stop(&t);

    /* Both damaged: start-up stops and names the file. */
    write_file(t.dir, "store/config/subscriptionGroup.json", "not json");
    write_file(t.dir, "store/config/subscriptionGroup.json.bak", "not json either");
    char err[1024] = "";
    broker_t *b;
    assert_int_equal(broker_new(&t.cfg, &b, err, sizeof err), 0);
    assert_int_not_equal(broker_start(b, err, sizeof err), 0);
    assert_non_null(strstr(err, "subscriptionGroup.json"));
    broker_free(b);
    /* The failed start did not overwrite what it could not read. */
    char *text = read_file(t.dir, "store/config/subscriptionGroup.json");
    assert_string_equal(text, "not json");
    free(text);
    tb_cleanup(&t);
}

static void test_bad_config_refused(void **state)
{
    (void)state;
    struct broker_config cfg;
    char err[512];
    broker_t *b;
    broker_config_defaults(&cfg);
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "127.0.0.1:9876;nohostport");
    assert_int_equal(broker_new(&cfg, &b, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "namesrvAddr"));
    broker_config_defaults(&cfg);
    snprintf(cfg.brokerIP1, sizeof cfg.brokerIP1, "::1");
    assert_int_equal(broker_new(&cfg, &b, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "brokerIP1"));
    broker_config_defaults(&cfg);
    cfg.brokerRole = BROKER_SLAVE;
    assert_int_equal(broker_new(&cfg, &b, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "brokerId"));
    broker_config_defaults(&cfg);
    assert_int_equal(conf_set(broker_conf_defs, &cfg, "brokerRole", "MASTER", err, sizeof err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err, "ASYNC_MASTER, SYNC_MASTER, SLAVE"));
}

#ifdef FERRY_HAVE_NAMESRV
static namesrv_t *ns_start(int port)
{
    struct namesrv_config nc;
    namesrv_t *ns;
    char err[512];
    namesrv_config_defaults(&nc);
    snprintf(nc.listenAddress, sizeof nc.listenAddress, "127.0.0.1");
    nc.listenPort = port;
    char dir[512];
    test_tmpdir(dir, sizeof dir, "ns");
    snprintf(nc.kvConfigPath, sizeof nc.kvConfigPath, "%s/kv.json", dir);
    if (namesrv_new(&nc, &ns, err, sizeof err) != 0 || namesrv_start(ns, err, sizeof err) != 0)
        fail_msg("name server: %s", err);
    test_rmdir(dir); /* the KV file is only written on PUT_KV_CONFIG */
    return ns;
}

static int32_t route(int ns_port, const char *topic, char *body, size_t cap)
{
    remoting_client_t *cli = tb_client(ns_port);
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
    rcmd_ext_add(&req, "topic", topic);
    resp = tb_call(cli, &req);
    int32_t code = resp->code;
    snprintf(body, cap, "%s", tb_body(resp));
    rcmd_free(resp);
    remoting_client_free(cli);
    return code;
}

static void test_registration_with_name_server(void **state)
{
    (void)state;
    namesrv_t *ns = ns_start(0);
    int ns_port = namesrv_port(ns);
    struct tb t;
    char body[65536];
    tb_init(&t, "broker-ns");
    snprintf(t.cfg.namesrvAddr, sizeof t.cfg.namesrvAddr, "127.0.0.1:%d", ns_port);
    tb_start(&t);
    /* Registered once broker_start() returned: TBW102 routes to this broker. */
    assert_int_equal(route(ns_port, "TBW102", body, sizeof body), RESP_SUCCESS);
    char addr[64];
    snprintf(addr, sizeof addr, "\"127.0.0.1:%d\"", t.port);
    assert_non_null(strstr(body, addr));
    assert_non_null(strstr(body, "\"broker-t\""));
    /* A created topic is routable as soon as the creation is answered. */
    assert_int_equal(route(ns_port, "Routed", body, sizeof body), RESP_TOPIC_NOT_EXIST);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "Routed", 3), RESP_SUCCESS);
    assert_int_equal(route(ns_port, "Routed", body, sizeof body), RESP_SUCCESS);
    assert_non_null(strstr(body, "\"writeQueueNums\":3"));
    /* The retry topic created by a heartbeat is registered too (soon after). */
    const char *hb = "{\"clientID\":\"c@1\",\"consumerDataSet\":[{\"groupName\":\"GID_ns\","
                     "\"consumeType\":\"CONSUME_PASSIVELY\",\"messageModel\":\"CLUSTERING\","
                     "\"consumeFromWhere\":\"CONSUME_FROM_LAST_OFFSET\",\"subscriptionDataSet\":"
                     "[]}],\"producerDataSet\":[]}";
    struct rcmd req;
    rcmd_init_request(&req, REQ_HEART_BEAT);
    req.body = (const uint8_t *)hb;
    req.body_len = strlen(hb);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    int64_t end = clock_mono_ms() + 10000 * test_time_mult();
    while (route(ns_port, "%RETRY%GID_ns", body, sizeof body) != RESP_SUCCESS &&
           clock_mono_ms() < end)
        ;
    assert_int_equal(route(ns_port, "%RETRY%GID_ns", body, sizeof body), RESP_SUCCESS);
    remoting_client_free(cli);
    /* Clean shutdown unregisters: the routes are gone. */
    tb_stop(&t);
    assert_int_equal(route(ns_port, "Routed", body, sizeof body), RESP_TOPIC_NOT_EXIST);
    tb_cleanup(&t);
    namesrv_free(ns);
}

static void test_name_server_down_then_up(void **state)
{
    (void)state;
    int ns_port = tb_free_port();
    struct tb t;
    char body[65536];
    tb_init(&t, "broker-nsdown");
    snprintf(t.cfg.namesrvAddr, sizeof t.cfg.namesrvAddr, "127.0.0.1:%d", ns_port);
    tb_start(&t); /* the name server is not there: the broker still starts and serves */
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "Early", 1), RESP_SUCCESS);
    struct rcmd *r = tb_send(cli, "Early", 0, NULL, NULL, "served");
    rcmd_free(r);
    /* The name server comes up; the next round (here: after a topic change) registers. */
    namesrv_t *ns = ns_start(ns_port);
    assert_int_equal(tb_create_topic(cli, "Later", 1), RESP_SUCCESS);
    assert_int_equal(route(ns_port, "Early", body, sizeof body), RESP_SUCCESS);
    assert_int_equal(route(ns_port, "Later", body, sizeof body), RESP_SUCCESS);
    remoting_client_free(cli);
    tb_cleanup(&t);
    namesrv_free(ns);
}
#endif

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_restart_keeps_everything),
        cmocka_unit_test(test_offsets_flushed_periodically),
        cmocka_unit_test(test_metadata_fallbacks),
        cmocka_unit_test(test_bad_config_refused),
#ifdef FERRY_HAVE_NAMESRV
        cmocka_unit_test(test_registration_with_name_server),
        cmocka_unit_test(test_name_server_down_then_up),
#endif
    };
    return cmocka_run_group_tests_name("broker-restart", tests, NULL, NULL);
}
