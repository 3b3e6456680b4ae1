/* The name server in-process on 127.0.0.1 (port 0: the kernel picks a free one), driven by
 * real remoting clients: registration and routes (both JSON forms, byte for byte), cluster
 * info, topic lists, unregistration, broker loss by closed connection and by expiry, the KV
 * table and its file, bad register bodies, and the admin codes. Waits are on conditions with
 * deadlines (a route query repeated until it changes); nothing sleeps a fixed time to "let
 * something happen". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testlib.h"
#include "common/clock.h"
#include "common/crc.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "namesrv/namesrv.h"
#include "remoting/client.h"
#include "remoting/codes.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define ADDR_A  "127.0.0.1:10911"
#define ADDR_A1 "127.0.0.1:10921"
#define ADDR_B  "127.0.0.1:10931"
#define HA_A    "127.0.0.1:10912"
#define V_ONS   121 /* ali-ons */
#define V_498   409 /* Java 4.9.8 */

struct env {
    char dir[512];
    struct namesrv_config cfg;
    namesrv_t *ns;
    remoting_client_t *cli; /* "admin/client" connection */
};

static int ms(int v)
{
    return v * test_time_mult();
}

static remoting_client_t *connect_to(int port)
{
    struct remoting_client_config cc;
    remoting_client_t *cli;
    char addr[64], err[256];
    remoting_client_config_init(&cc);
    assert_int_equal(remoting_client_new(&cc, &cli), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (remoting_client_connect(cli, addr, ms(5000), err, sizeof err) != 0)
        fail_msg("connect %s: %s", addr, err);
    return cli;
}

static void env_config(struct env *e)
{
    char path[600];
    test_tmpdir(e->dir, sizeof e->dir, "namesrv");
    namesrv_config_defaults(&e->cfg);
    snprintf(e->cfg.listenAddress, sizeof e->cfg.listenAddress, "127.0.0.1");
    e->cfg.listenPort = 0;
    snprintf(path, sizeof path, "%s/kv/kvConfig.json", e->dir);
    snprintf(e->cfg.kvConfigPath, sizeof e->cfg.kvConfigPath, "%s", path);
}

static void env_start(struct env *e)
{
    char err[512];
    if (namesrv_new(&e->cfg, &e->ns, err, sizeof err) != 0)
        fail_msg("namesrv_new: %s", err);
    if (namesrv_start(e->ns, err, sizeof err) != 0)
        fail_msg("namesrv_start: %s", err);
    assert_true(namesrv_port(e->ns) > 0);
    e->cli = connect_to(namesrv_port(e->ns));
}

static void env_stop(struct env *e)
{
    remoting_client_free(e->cli);
    namesrv_free(e->ns);
    e->cli = NULL;
    e->ns = NULL;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    env_config(e);
    env_start(e);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    env_stop(e);
    test_rmdir(e->dir);
    free(e);
    return 0;
}

/* ---- requests --------------------------------------------------------------------------- */

static struct rcmd *invoke(remoting_client_t *cli, const struct rcmd *req)
{
    struct rcmd *resp = NULL;
    int rc = remoting_client_invoke_sync(cli, req, ms(5000), &resp);
    if (rc != 0)
        fail_msg("invoke code %d: %s", req->code, ferry_strerror(rc));
    return resp;
}

static char *body_str(const struct rcmd *resp)
{
    char *s = malloc(resp->body_len + 1);
    memcpy(s, resp->body ? (const char *)resp->body : "", resp->body_len);
    s[resp->body_len] = 0;
    return s;
}

static void assert_body(const struct rcmd *resp, const char *want)
{
    char *s = body_str(resp);
    assert_string_equal(s, want);
    free(s);
}

static int remark_has(const struct rcmd *resp, const char *needle)
{
    char buf[1024];
    size_t n = resp->remark.len < sizeof buf - 1 ? resp->remark.len : sizeof buf - 1;
    memcpy(buf, resp->remark.p ? resp->remark.p : "", n);
    buf[n] = 0;
    if (strstr(buf, needle))
        return 1;
    print_message("remark was: %s\n", buf);
    return 0;
}

static const char *ext(const struct rcmd *resp, const char *key, char *buf, size_t cap)
{
    const struct rstr *v = rcmd_ext_get(resp, key);
    if (!v)
        return NULL;
    snprintf(buf, cap, "%.*s", (int)v->len, v->p);
    return buf;
}

struct tc {
    const char *name;
    int r, w, perm;
};

/* A RegisterBrokerBody as a Java broker writes it (fastjson, fields sorted). */
static char *make_body(int64_t counter, const struct tc *t, int n)
{
    char *b = malloc(4096);
    int len = snprintf(b, 4096,
                       "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{\"dataVersion\":"
                       "{\"counter\":%lld,\"timestamp\":1700000000000},\"topicConfigTable\":{",
                       (long long)counter);
    for (int i = 0; i < n; i++)
        len +=
            snprintf(b + len, 4096 - (size_t)len,
                     "%s\"%s\":{\"order\":false,\"perm\":%d,\"readQueueNums\":%d,"
                     "\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":\"%s\",\"topicSysFlag\":0,"
                     "\"writeQueueNums\":%d}",
                     i ? "," : "", t[i].name, t[i].perm, t[i].r, t[i].name, t[i].w);
    snprintf(b + len, 4096 - (size_t)len, "}}}");
    return b;
}

static void init_broker_req(struct rcmd *req, int32_t code, const char *cluster, const char *name,
                            const char *addr, int64_t id)
{
    rcmd_init_request(req, code);
    rcmd_ext_add(req, "brokerName", name);
    rcmd_ext_add(req, "brokerAddr", addr);
    rcmd_ext_add(req, "clusterName", cluster);
    rcmd_ext_add(req, "haServerAddr", HA_A);
    rcmd_ext_add_i64(req, "brokerId", id);
}

/* REGISTER_BROKER with a JSON body (CRC set as a Java broker does); returns the response. */
static struct rcmd *reg_raw(remoting_client_t *cli, const char *cluster, const char *name,
                            const char *addr, int64_t id, int64_t counter, const struct tc *t,
                            int n)
{
    struct rcmd req;
    char *body = make_body(counter, t, n);
    init_broker_req(&req, REQ_REGISTER_BROKER, cluster, name, addr, id);
    rcmd_ext_add(&req, "compressed", "false");
    rcmd_ext_add_i64(&req, "bodyCrc32", crc32_masked(body, strlen(body)));
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    struct rcmd *resp = invoke(cli, &req);
    free(body);
    return resp;
}

static void reg(remoting_client_t *cli, const char *cluster, const char *name, const char *addr,
                int64_t id, int64_t counter, const struct tc *t, int n)
{
    struct rcmd *resp = reg_raw(cli, cluster, name, addr, id, counter, t, n);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
}

static struct rcmd *route(remoting_client_t *cli, const char *topic, int version, int std_only)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
    req.version = version;
    rcmd_ext_add(&req, "topic", topic);
    if (std_only)
        rcmd_ext_add(&req, "acceptStandardJsonOnly", "true");
    return invoke(cli, &req);
}

static int route_code(remoting_client_t *cli, const char *topic)
{
    struct rcmd *resp = route(cli, topic, V_498, 0);
    int code = resp->code;
    rcmd_free(resp);
    return code;
}

static struct rcmd *simple(remoting_client_t *cli, int32_t code, const char *k1, const char *v1,
                           const char *k2, const char *v2)
{
    struct rcmd req;
    rcmd_init_request(&req, code);
    if (k1)
        rcmd_ext_add(&req, k1, v1);
    if (k2)
        rcmd_ext_add(&req, k2, v2);
    return invoke(cli, &req);
}

static void assert_simple_body(remoting_client_t *cli, int32_t code, const char *k1, const char *v1,
                               const char *want)
{
    struct rcmd *resp = simple(cli, code, k1, v1, NULL, NULL);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_body(resp, want);
    rcmd_free(resp);
}

/* Repeat the route query until it answers @code, at most @ms_ ms. */
static int wait_route_code(remoting_client_t *cli, const char *topic, int code, int ms_)
{
    int64_t end = clock_mono_ms() + ms(ms_);
    for (;;) {
        if (route_code(cli, topic) == code)
            return 1;
        if (clock_mono_ms() > end)
            return 0;
        struct timespec t = {0, 5 * 1000000};
        nanosleep(&t, NULL);
    }
}

static const struct tc TOPICS_A[] = {{"T1", 4, 4, 6}, {"TBW102", 8, 8, 7}};

/* ---- tests ------------------------------------------------------------------------------ */

static void test_register_and_route_forms(void **state)
{
    struct env *e = *state;
    struct rcmd *resp = reg_raw(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_null(rcmd_ext_get(resp, "masterAddr")); /* a master gets no master address */
    assert_int_equal(resp->body_len, 0);           /* no ORDER_TOPIC_CONFIG namespace */
    rcmd_free(resp);

    /* ali-ons (version 121): fastjson's default form, integer keys unquoted. */
    resp = route(e->cli, "T1", V_ONS, 0);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_body(resp, "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"127.0.0.1:10911\"},\"brokerName\":"
                      "\"broker-a\",\"cluster\":\"C\"}],\"filterServerTable\":{},\"queueDatas\":[{"
                      "\"brokerName\":\"broker-a\",\"perm\":6,\"readQueueNums\":4,\"topicSysFlag\":"
                      "0,\"writeQueueNums\":4}]}");
    rcmd_free(resp);

    /* C++ (333) too; Java 4.9.8 (409) and acceptStandardJsonOnly get standard JSON. */
    const char *quoted =
        "{\"brokerDatas\":[{\"brokerAddrs\":{\"0\":\"127.0.0.1:10911\"},\"brokerName\":"
        "\"broker-a\",\"cluster\":\"C\"}],\"filterServerTable\":{},\"queueDatas\":[{"
        "\"brokerName\":\"broker-a\",\"perm\":7,\"readQueueNums\":8,\"topicSysFlag\":0,"
        "\"writeQueueNums\":8}]}";
    resp = route(e->cli, "TBW102", 400, 0);
    char *s = body_str(resp);
    assert_non_null(strstr(s, "{0:\"127.0.0.1:10911\"}"));
    free(s);
    rcmd_free(resp);
    resp = route(e->cli, "TBW102", 401, 0);
    assert_body(resp, quoted);
    rcmd_free(resp);
    resp = route(e->cli, "TBW102", V_ONS, 1);
    assert_body(resp, quoted);
    rcmd_free(resp);
}

static void test_escaping_in_both_forms(void **state)
{
    struct env *e = *state;
    /* BrowserCompatible escapes '/' and everything >= 127 (as UTF-16 units); the default form
     * keeps UTF-8 and '/' as they are. */
    reg(e->cli, "c/\xc3\xa9\xf0\x9f\x98\x80", "b\"q", ADDR_A, 0, 1, TOPICS_A, 1);
    struct rcmd *resp = route(e->cli, "T1", V_498, 0);
    char *s = body_str(resp);
    assert_non_null(
        strstr(s, "\"brokerName\":\"b\\\"q\",\"cluster\":\"c\\/\\u00E9\\uD83D\\uDE00\""));
    free(s);
    rcmd_free(resp);
    resp = route(e->cli, "T1", V_ONS, 0);
    s = body_str(resp);
    assert_non_null(strstr(s, "\"cluster\":\"c/\xc3\xa9\xf0\x9f\x98\x80\""));
    free(s);
    rcmd_free(resp);
}

static void test_unknown_topic(void **state)
{
    struct env *e = *state;
    struct rcmd *resp = route(e->cli, "Nope", V_ONS, 0);
    assert_int_equal(resp->code, RESP_TOPIC_NOT_EXIST);
    assert_true(remark_has(resp, "No topic route info in name server for the topic: Nope\nSee "
                                 "http://rocketmq.apache.org/docs/faq/ for further details."));
    assert_int_equal(resp->body_len, 0);
    rcmd_free(resp);
    /* A missing topic field is Java's "custom field is null" error. */
    resp = simple(e->cli, REQ_GET_ROUTEINFO_BY_TOPIC, NULL, NULL, NULL, NULL);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "the custom field <topic> is null"));
    rcmd_free(resp);
}

static void test_two_brokers_cluster_info(void **state)
{
    struct env *e = *state;
    static const struct tc tb[] = {{"T1", 2, 2, 6}, {"T2", 1, 1, 6}};
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    reg(e->cli, "C", "broker-b", ADDR_B, 0, 1, tb, 2);

    /* The slave learns its master's address and HA address. */
    struct rcmd *resp = reg_raw(e->cli, "C", "broker-a", ADDR_A1, 1, 1, TOPICS_A, 2);
    char buf[64];
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "masterAddr", buf, sizeof buf), ADDR_A);
    assert_string_equal(ext(resp, "haServerAddr", buf, sizeof buf), HA_A);
    rcmd_free(resp);

    resp = route(e->cli, "T1", V_ONS, 0);
    assert_body(resp,
                "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"127.0.0.1:10911\",1:\"127.0.0.1:10921\"},"
                "\"brokerName\":\"broker-a\",\"cluster\":\"C\"},{\"brokerAddrs\":{0:\"127.0.0.1:"
                "10931\"},\"brokerName\":\"broker-b\",\"cluster\":\"C\"}],\"filterServerTable\":{},"
                "\"queueDatas\":[{\"brokerName\":\"broker-a\",\"perm\":6,\"readQueueNums\":4,"
                "\"topicSysFlag\":0,\"writeQueueNums\":4},{\"brokerName\":\"broker-b\",\"perm\":6,"
                "\"readQueueNums\":2,\"topicSysFlag\":0,\"writeQueueNums\":2}]}");
    rcmd_free(resp);

    /* Cluster info: Java writes it in the default form whatever the client's version. */
    resp = simple(e->cli, REQ_GET_BROKER_CLUSTER_INFO, NULL, NULL, NULL, NULL);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_body(resp, "{\"brokerAddrTable\":{\"broker-a\":{\"brokerAddrs\":{0:\"127.0.0.1:10911\","
                      "1:\"127.0.0.1:10921\"},\"brokerName\":\"broker-a\",\"cluster\":\"C\"},"
                      "\"broker-b\":{\"brokerAddrs\":{0:\"127.0.0.1:10931\"},\"brokerName\":"
                      "\"broker-b\",\"cluster\":\"C\"}},\"clusterAddrTable\":{\"C\":[\"broker-a\","
                      "\"broker-b\"]}}");
    rcmd_free(resp);

    assert_simple_body(e->cli, REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, NULL, NULL,
                       "{\"topicList\":[\"T1\",\"T2\",\"TBW102\"]}");
    assert_simple_body(e->cli, REQ_GET_TOPICS_BY_CLUSTER, "cluster", "C",
                       "{\"topicList\":[\"T1\",\"T2\",\"TBW102\"]}");
    assert_simple_body(e->cli, REQ_GET_TOPICS_BY_CLUSTER, "cluster", "Other", "{\"topicList\":[]}");
    assert_simple_body(e->cli, REQ_GET_SYSTEM_TOPIC_LIST_FROM_NS, NULL, NULL,
                       "{\"brokerAddr\":\"127.0.0.1:10911\",\"topicList\":[\"C\",\"broker-a\","
                       "\"broker-b\"]}");
}

static void test_unregister_rules(void **state)
{
    struct env *e = *state;
    struct rcmd req, *resp;
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    reg(e->cli, "C", "broker-a", ADDR_A1, 1, 1, TOPICS_A, 2);

    /* The master leaves: the slave keeps the brokerName, its queues stay routable. */
    init_broker_req(&req, REQ_UNREGISTER_BROKER, "C", "broker-a", ADDR_A, 0);
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    resp = route(e->cli, "T1", V_ONS, 0);
    assert_body(resp, "{\"brokerDatas\":[{\"brokerAddrs\":{1:\"127.0.0.1:10921\"},\"brokerName\":"
                      "\"broker-a\",\"cluster\":\"C\"}],\"filterServerTable\":{},\"queueDatas\":[{"
                      "\"brokerName\":\"broker-a\",\"perm\":6,\"readQueueNums\":4,\"topicSysFlag\":"
                      "0,\"writeQueueNums\":4}]}");
    rcmd_free(resp);

    /* The last address goes: BrokerData, cluster and topics go with it. */
    init_broker_req(&req, REQ_UNREGISTER_BROKER, "C", "broker-a", ADDR_A1, 1);
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    assert_int_equal(route_code(e->cli, "T1"), RESP_TOPIC_NOT_EXIST);
    assert_simple_body(e->cli, REQ_GET_BROKER_CLUSTER_INFO, NULL, NULL,
                       "{\"brokerAddrTable\":{},\"clusterAddrTable\":{}}");
    assert_simple_body(e->cli, REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, NULL, NULL,
                       "{\"topicList\":[]}");

    /* Required fields. */
    rcmd_init_request(&req, REQ_UNREGISTER_BROKER);
    rcmd_ext_add(&req, "brokerName", "broker-a");
    rcmd_ext_add(&req, "brokerAddr", ADDR_A);
    rcmd_ext_add(&req, "clusterName", "C");
    rcmd_ext_add(&req, "brokerId", "x");
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "the custom field <brokerId> is not an integer"));
    rcmd_free(resp);
}

static void test_data_version_and_promotion(void **state)
{
    struct env *e = *state;
    char buf[32];
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    struct rcmd *resp =
        simple(e->cli, REQ_WIPE_WRITE_PERM_OF_BROKER, "brokerName", "broker-a", NULL, NULL);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "wipeTopicCount", buf, sizeof buf), "2");
    rcmd_free(resp);

    /* Same DataVersion: the queue data is not rewritten (perm stays wiped: 6 & ~2, 7 & ~2). */
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    resp = route(e->cli, "T1", V_ONS, 0);
    char *s = body_str(resp);
    assert_non_null(strstr(s, "\"perm\":4,"));
    free(s);
    rcmd_free(resp);
    resp = route(e->cli, "TBW102", V_ONS, 0);
    s = body_str(resp);
    assert_non_null(strstr(s, "\"perm\":5,"));
    free(s);
    rcmd_free(resp);

    /* QUERY_DATA_VERSION: unchanged, and the stored version comes back. */
    struct rcmd req;
    const char *dv = "{\"counter\":1,\"timestamp\":1700000000000}";
    init_broker_req(&req, REQ_QUERY_DATA_VERSION, "C", "broker-a", ADDR_A, 0);
    req.body = (const uint8_t *)dv;
    req.body_len = strlen(dv);
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "changed", buf, sizeof buf), "false");
    assert_body(resp, dv);
    rcmd_free(resp);
    const char *dv2 = "{\"counter\":2,\"timestamp\":1700000000000}";
    req.body = (const uint8_t *)dv2;
    req.body_len = strlen(dv2);
    resp = invoke(e->cli, &req);
    assert_string_equal(ext(resp, "changed", buf, sizeof buf), "true");
    assert_body(resp, dv);
    rcmd_free(resp);

    /* A new DataVersion rewrites the queue data. ADD_WRITE_PERM sets RW. */
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 2, TOPICS_A, 2);
    resp = route(e->cli, "TBW102", V_ONS, 0);
    s = body_str(resp);
    assert_non_null(strstr(s, "\"perm\":7,"));
    free(s);
    rcmd_free(resp);
    resp = simple(e->cli, REQ_ADD_WRITE_PERM_OF_BROKER, "brokerName", "broker-a", NULL, NULL);
    assert_string_equal(ext(resp, "addTopicCount", buf, sizeof buf), "2");
    rcmd_free(resp);
    resp = route(e->cli, "TBW102", V_ONS, 0);
    s = body_str(resp);
    assert_non_null(strstr(s, "\"perm\":6,"));
    free(s);
    rcmd_free(resp);

    /* A slave address registering as master drops its old id. */
    reg(e->cli, "C", "broker-a", ADDR_A1, 1, 2, TOPICS_A, 2);
    reg(e->cli, "C", "broker-a", ADDR_A1, 0, 3, TOPICS_A, 2);
    resp = route(e->cli, "T1", V_ONS, 0);
    s = body_str(resp);
    assert_non_null(strstr(s, "{\"brokerAddrs\":{0:\"127.0.0.1:10921\"},"));
    free(s);
    rcmd_free(resp);
}

static void test_delete_topic(void **state)
{
    struct env *e = *state;
    static const struct tc tb[] = {{"T1", 2, 2, 6}};
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    reg(e->cli, "D", "broker-b", ADDR_B, 0, 1, tb, 1);
    struct rcmd *resp =
        simple(e->cli, REQ_DELETE_TOPIC_IN_NAMESRV, "topic", "T1", "clusterName", "D");
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    resp = route(e->cli, "T1", V_ONS, 0);
    char *s = body_str(resp);
    assert_null(strstr(s, "broker-b"));
    assert_non_null(strstr(s, "broker-a"));
    free(s);
    rcmd_free(resp);
    resp = simple(e->cli, REQ_DELETE_TOPIC_IN_NAMESRV, "topic", "T1", NULL, NULL);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    assert_int_equal(route_code(e->cli, "T1"), RESP_TOPIC_NOT_EXIST);
    assert_int_equal(route_code(e->cli, "TBW102"), RESP_SUCCESS);
}

static void test_connection_close_drops_broker(void **state)
{
    struct env *e = *state;
    remoting_client_t *broker = connect_to(namesrv_port(e->ns));
    reg(broker, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    reg(e->cli, "C", "broker-b", ADDR_B, 0, 1, TOPICS_A, 1);
    assert_int_equal(route_code(e->cli, "TBW102"), RESP_SUCCESS);
    remoting_client_free(broker);
    assert_true(wait_route_code(e->cli, "TBW102", RESP_TOPIC_NOT_EXIST, 10000));
    /* broker-b, registered on another connection, is still there. */
    assert_int_equal(route_code(e->cli, "T1"), RESP_SUCCESS);
}

static void test_expiry(void **state)
{
    struct env *e = *state;
    env_stop(e);
    e->cfg.brokerChannelExpiredTime = ms(1000);
    e->cfg.scanNotActiveBrokerInterval = 20;
    env_start(e);
    remoting_client_t *broker = connect_to(namesrv_port(e->ns));

    /* Re-registering in time keeps the broker (periodic registration is the behaviour under
     * test, so this loop paces itself; the margin is 4x). */
    int64_t t0 = clock_mono_ms();
    while (clock_mono_ms() - t0 < ms(1500)) {
        reg(broker, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
        assert_int_equal(route_code(e->cli, "T1"), RESP_SUCCESS);
        struct timespec t = {0, 250 * 1000000L * test_time_mult()};
        nanosleep(&t, NULL);
    }
    /* Silence: dropped after brokerChannelExpiredTime, never before. */
    int64_t t1 = clock_mono_ms();
    reg(broker, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    assert_true(wait_route_code(e->cli, "T1", RESP_TOPIC_NOT_EXIST, 20000));
    assert_true(clock_mono_ms() - t1 >= ms(1000));
    assert_simple_body(e->cli, REQ_GET_BROKER_CLUSTER_INFO, NULL, NULL,
                       "{\"brokerAddrTable\":{},\"clusterAddrTable\":{}}");
    /* Java closes the expired broker's connection; the client notices. */
    int64_t end = clock_mono_ms() + ms(10000);
    while (remoting_client_is_connected(broker) && clock_mono_ms() < end) {
        struct timespec t = {0, 5 * 1000000};
        nanosleep(&t, NULL);
    }
    assert_false(remoting_client_is_connected(broker));
    remoting_client_free(broker);
}

static void test_kv_and_persistence(void **state)
{
    struct env *e = *state;
    char buf[64];
    struct rcmd req, *resp;

    rcmd_init_request(&req, REQ_PUT_KV_CONFIG);
    rcmd_ext_add(&req, "namespace", "ns1");
    rcmd_ext_add(&req, "key", "k1");
    rcmd_ext_add(&req, "value", "v1");
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    rcmd_ext_add(&req, "key", "k2");
    rcmd_ext_add(&req, "value", "v\"2");
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);

    resp = simple(e->cli, REQ_GET_KV_CONFIG, "namespace", "ns1", "key", "k2");
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "value", buf, sizeof buf), "v\"2");
    rcmd_free(resp);
    resp = simple(e->cli, REQ_GET_KV_CONFIG, "namespace", "ns1", "key", "zz");
    assert_int_equal(resp->code, RESP_QUERY_NOT_FOUND);
    assert_true(remark_has(resp, "No config item, Namespace: ns1 Key: zz"));
    rcmd_free(resp);
    assert_simple_body(e->cli, REQ_GET_KVLIST_BY_NAMESPACE, "namespace", "ns1",
                       "{\"table\":{\"k1\":\"v1\",\"k2\":\"v\\\"2\"}}");
    resp = simple(e->cli, REQ_GET_KVLIST_BY_NAMESPACE, "namespace", "none", NULL, NULL);
    assert_int_equal(resp->code, RESP_QUERY_NOT_FOUND);
    assert_true(remark_has(resp, "No config item, Namespace: none"));
    rcmd_free(resp);
    resp = simple(e->cli, REQ_PUT_KV_CONFIG, "namespace", "ns1", "key", "k3");
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "the custom field <value> is null"));
    rcmd_free(resp);

    resp = simple(e->cli, REQ_DELETE_KV_CONFIG, "namespace", "ns1", "key", "k1");
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);

    /* SUCCESS means written: the file already holds the table. */
    char *text;
    size_t len;
    assert_int_equal(fs_read_file(e->cfg.kvConfigPath, 0, &text, &len, 1 << 20), 0);
    assert_string_equal(text, "{\"configTable\":{\"ns1\":{\"k2\":\"v\\\"2\"}}}");
    free(text);

    /* Restart: loaded from the file. */
    env_stop(e);
    env_start(e);
    resp = simple(e->cli, REQ_GET_KV_CONFIG, "namespace", "ns1", "key", "k2");
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "value", buf, sizeof buf), "v\"2");
    rcmd_free(resp);
    resp = simple(e->cli, REQ_GET_KV_CONFIG, "namespace", "ns1", "key", "k1");
    assert_int_equal(resp->code, RESP_QUERY_NOT_FOUND);
    rcmd_free(resp);

    /* A corrupt file falls back to its .bak (the previous version); with neither, start-up
     * fails with a message naming the file. */
    env_stop(e);
    FILE *f = fopen(e->cfg.kvConfigPath, "w");
    fputs("{\"configTable\":", f);
    fclose(f);
    env_start(e);
    resp = simple(e->cli, REQ_GET_KV_CONFIG, "namespace", "ns1", "key", "k1");
    assert_int_equal(resp->code, RESP_SUCCESS); /* the .bak predates the delete */
    rcmd_free(resp);
    env_stop(e);
    char bak[700], err[512];
    snprintf(bak, sizeof bak, "%s.bak", e->cfg.kvConfigPath);
    f = fopen(bak, "w");
    fputs("[1,2]", f);
    fclose(f);
    f = fopen(e->cfg.kvConfigPath, "w");
    fputs("garbage", f);
    fclose(f);
    namesrv_t *ns;
    assert_int_equal(namesrv_new(&e->cfg, &ns, err, sizeof err), FERRY_ECORRUPT);
    assert_non_null(strstr(err, e->cfg.kvConfigPath));
    unlink(e->cfg.kvConfigPath);
    unlink(bak);
    env_start(e); /* no file: an empty table */

    /* The file cannot be written (its directory became a regular file): the write is answered
     * SYSTEM_ERROR naming the file; the value is served from memory. */
    char kvdir[600];
    snprintf(kvdir, sizeof kvdir, "%s/kv", e->dir);
    test_rmdir(kvdir);
    f = fopen(kvdir, "w");
    fclose(f);
    resp = simple(e->cli, REQ_DELETE_KV_CONFIG, "namespace", "ns1", "key", "k1");
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "not persisted to"));
    assert_true(remark_has(resp, e->cfg.kvConfigPath));
    rcmd_free(resp);
    rcmd_init_request(&req, REQ_PUT_KV_CONFIG);
    rcmd_ext_add(&req, "namespace", "ns2");
    rcmd_ext_add(&req, "key", "k");
    rcmd_ext_add(&req, "value", "mem");
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    rcmd_free(resp);
    resp = simple(e->cli, REQ_GET_KV_CONFIG, "namespace", "ns2", "key", "k");
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "value", buf, sizeof buf), "mem");
    rcmd_free(resp);
    unlink(kvdir);
}

static void test_order_topic_conf(void **state)
{
    struct env *e = *state;
    env_stop(e);
    e->cfg.orderMessageEnable = 1;
    env_start(e);
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_PUT_KV_CONFIG);
    rcmd_ext_add(&req, "namespace", "ORDER_TOPIC_CONFIG");
    rcmd_ext_add(&req, "key", "T1");
    rcmd_ext_add(&req, "value", "broker-a:4");
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);

    resp = reg_raw(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_body(resp, "{\"table\":{\"T1\":\"broker-a:4\"}}");
    rcmd_free(resp);
    resp = route(e->cli, "T1", V_ONS, 0);
    char *s = body_str(resp);
    assert_non_null(strstr(s, "\"filterServerTable\":{},\"orderTopicConf\":\"broker-a:4\","
                              "\"queueDatas\""));
    free(s);
    rcmd_free(resp);
}

/* A compressed RegisterBrokerBody as Java's RegisterBrokerBody.encode(true) writes it. */
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t *make_compressed(size_t *out_len, int bad_count)
{
    const char *dv = "{\"counter\":5,\"timestamp\":1700000000001}";
    const char *t[] = {"CT1 3 2 6 SINGLE_TAG", "CT2 1 1 4 MULTI_TAG"};
    uint8_t plain[512];
    size_t n = 0;
    put_be32(plain + n, (uint32_t)strlen(dv));
    memcpy(plain + n + 4, dv, strlen(dv));
    n += 4 + strlen(dv);
    put_be32(plain + n, bad_count ? 7 : 2);
    n += 4;
    for (int i = 0; i < 2; i++) {
        put_be32(plain + n, (uint32_t)strlen(t[i]));
        memcpy(plain + n + 4, t[i], strlen(t[i]));
        n += 4 + strlen(t[i]);
    }
    put_be32(plain + n, 2);
    memcpy(plain + n + 4, "[]", 2);
    n += 6;
    uLongf zl = compressBound(n);
    uint8_t *z = malloc(zl);
    assert_int_equal(compress2(z, &zl, plain, n, 9), Z_OK);
    *out_len = zl;
    return z;
}

static struct rcmd *reg_bytes(remoting_client_t *cli, const void *body, size_t len,
                              const char *compressed, int64_t crc)
{
    struct rcmd req;
    init_broker_req(&req, REQ_REGISTER_BROKER, "C", "broker-z", ADDR_B, 0);
    if (compressed)
        rcmd_ext_add(&req, "compressed", compressed);
    rcmd_ext_add_i64(&req, "bodyCrc32", crc);
    req.body = body;
    req.body_len = len;
    return invoke(cli, &req);
}

static void test_bad_register_bodies(void **state)
{
    struct env *e = *state;
    struct rcmd *resp;
    const char *garbage = "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":";
    const char *badnum = "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"X\":{"
                         "\"readQueueNums\":\"many\"}}}}";

    resp = reg_bytes(e->cli, garbage, strlen(garbage), "false", 0);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "Failed to decode RegisterBrokerBody"));
    rcmd_free(resp);
    resp = reg_bytes(e->cli, badnum, strlen(badnum), NULL, 0);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "readQueueNums"));
    rcmd_free(resp);
    resp = reg_bytes(e->cli, "[1]", 3, NULL, 0);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    rcmd_free(resp);

    /* CRC mismatch (the body is fine). */
    char *body = make_body(1, TOPICS_A, 2);
    resp = reg_bytes(e->cli, body, strlen(body), "false", crc32_masked(body, strlen(body)) ^ 1);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "crc32 not match"));
    rcmd_free(resp);
    free(body);

    /* Compressed: garbage, a count past the end, then the real thing. */
    resp = reg_bytes(e->cli, "not zlib", 8, "true", 0);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "compressed body"));
    rcmd_free(resp);
    size_t zl;
    uint8_t *z = make_compressed(&zl, 1);
    resp = reg_bytes(e->cli, z, zl, "true", 0);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "bad topic config"));
    rcmd_free(resp);
    free(z);
    z = make_compressed(&zl, 0);
    resp = reg_bytes(e->cli, z, zl, "true", crc32_masked(z, zl));
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    free(z);
    resp = route(e->cli, "CT1", V_498, 0);
    assert_body(resp,
                "{\"brokerDatas\":[{\"brokerAddrs\":{\"0\":\"127.0.0.1:10931\"},\"brokerName\":"
                "\"broker-z\",\"cluster\":\"C\"}],\"filterServerTable\":{},\"queueDatas\":[{"
                "\"brokerName\":\"broker-z\",\"perm\":6,\"readQueueNums\":3,\"topicSysFlag\":"
                "0,\"writeQueueNums\":2}]}");
    rcmd_free(resp);
    assert_int_equal(route_code(e->cli, "CT2"), RESP_SUCCESS);

    /* Missing required fields. */
    struct rcmd req;
    rcmd_init_request(&req, REQ_REGISTER_BROKER);
    rcmd_ext_add(&req, "brokerName", "b");
    rcmd_ext_add(&req, "brokerAddr", ADDR_B);
    rcmd_ext_add(&req, "clusterName", "C");
    rcmd_ext_add(&req, "brokerId", "0");
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_true(remark_has(resp, "the custom field <haServerAddr> is null"));
    rcmd_free(resp);

    /* No body: registers the broker with no topics (a Java broker with an empty table). */
    resp = reg_bytes(e->cli, NULL, 0, NULL, 0);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);

    /* Still serving, and nothing from the failed attempts leaked into the tables. */
    assert_simple_body(e->cli, REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, NULL, NULL,
                       "{\"topicList\":[\"CT1\",\"CT2\"]}");
}

static void test_misc_codes(void **state)
{
    struct env *e = *state;
    /* Not a name-server request: the remoting layer answers 3. */
    struct rcmd *resp = simple(e->cli, REQ_UPDATE_NAMESRV_CONFIG, NULL, NULL, NULL, NULL);
    assert_int_equal(resp->code, RESP_REQUEST_CODE_NOT_SUPPORTED);
    rcmd_free(resp);
    resp = simple(e->cli, REQ_SEND_MESSAGE, NULL, NULL, NULL, NULL);
    assert_int_equal(resp->code, RESP_REQUEST_CODE_NOT_SUPPORTED);
    rcmd_free(resp);

    resp = simple(e->cli, REQ_GET_NAMESRV_CONFIG, NULL, NULL, NULL, NULL);
    assert_int_equal(resp->code, RESP_SUCCESS);
    char *s = body_str(resp);
    assert_non_null(strstr(s, "listenPort=0\n"));
    assert_non_null(strstr(s, "brokerChannelExpiredTime=120000\n"));
    free(s);
    rcmd_free(resp);

    /* Unit topic lists (sysflag bits 1 and 2). */
    struct rcmd req;
    const char *body = "{\"topicConfigSerializeWrapper\":{\"dataVersion\":{\"counter\":1,"
                       "\"timestamp\":1},\"topicConfigTable\":{\"U\":{\"topicName\":\"U\","
                       "\"topicSysFlag\":1},\"S\":{\"topicName\":\"S\",\"topicSysFlag\":2},"
                       "\"P\":{\"topicSysFlag\":0}}}}";
    init_broker_req(&req, REQ_REGISTER_BROKER, "C", "broker-a", ADDR_A, 0);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    assert_simple_body(e->cli, REQ_GET_UNIT_TOPIC_LIST, NULL, NULL, "{\"topicList\":[\"U\"]}");
    assert_simple_body(e->cli, REQ_GET_HAS_UNIT_SUB_TOPIC_LIST, NULL, NULL,
                       "{\"topicList\":[\"S\"]}");
    assert_simple_body(e->cli, REQ_GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, NULL, NULL,
                       "{\"topicList\":[\"S\"]}");
    /* A topic without topicName takes its key; defaults 16/16, perm 6. */
    resp = route(e->cli, "P", V_498, 0);
    s = body_str(resp);
    assert_non_null(strstr(s, "\"perm\":6,\"readQueueNums\":16,\"topicSysFlag\":0,"
                              "\"writeQueueNums\":16"));
    free(s);
    rcmd_free(resp);
}

static void test_slave_first_and_oneway(void **state)
{
    struct env *e = *state;
    struct rcmd req, *resp;

    /* A slave registered before its master: no master address, and its topics make no queue
     * data (only a master's do), but its BrokerData is there. */
    resp = reg_raw(e->cli, "C", "broker-a", ADDR_A1, 1, 1, TOPICS_A, 2);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_null(rcmd_ext_get(resp, "masterAddr"));
    rcmd_free(resp);
    assert_int_equal(route_code(e->cli, "T1"), RESP_TOPIC_NOT_EXIST);
    assert_simple_body(
        e->cli, REQ_GET_BROKER_CLUSTER_INFO, NULL, NULL,
        "{\"brokerAddrTable\":{\"broker-a\":{\"brokerAddrs\":{1:\"127.0.0.1:10921\"},"
        "\"brokerName\":\"broker-a\",\"cluster\":\"C\"}},\"clusterAddrTable\":{"
        "\"C\":[\"broker-a\"]}}");
    /* A client may ask for standard JSON here too (Java clients never do). */
    resp =
        simple(e->cli, REQ_GET_BROKER_CLUSTER_INFO, "acceptStandardJsonOnly", "true", NULL, NULL);
    assert_body(resp, "{\"brokerAddrTable\":{\"broker-a\":{\"brokerAddrs\":{\"1\":\"127.0.0.1:"
                      "10921\"},\"brokerName\":\"broker-a\",\"cluster\":\"C\"}},"
                      "\"clusterAddrTable\":{\"C\":[\"broker-a\"]}}");
    rcmd_free(resp);

    /* A Java broker re-registers oneway after creating a topic itself: no answer, but the
     * registration counts. The next request on the connection is handled after it. An empty
     * haServerAddr (no HA) is a value, as in Java. */
    char *body = make_body(1, TOPICS_A, 2);
    rcmd_init_request(&req, REQ_REGISTER_BROKER);
    rcmd_ext_add(&req, "brokerName", "broker-a");
    rcmd_ext_add(&req, "brokerAddr", ADDR_A);
    rcmd_ext_add(&req, "clusterName", "C");
    rcmd_ext_add(&req, "haServerAddr", "");
    rcmd_ext_add(&req, "brokerId", "0");
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(remoting_client_invoke_oneway(e->cli, &req), 0);
    free(body);
    assert_int_equal(route_code(e->cli, "T1"), RESP_SUCCESS);
    /* The slave now learns its master (whose HA address is empty). */
    resp = reg_raw(e->cli, "C", "broker-a", ADDR_A1, 1, 1, TOPICS_A, 2);
    char buf[64];
    assert_string_equal(ext(resp, "masterAddr", buf, sizeof buf), ADDR_A);
    assert_string_equal(ext(resp, "haServerAddr", buf, sizeof buf), "");
    rcmd_free(resp);

    /* QUERY_DATA_VERSION for a broker never registered: changed, no stored version. A body
     * that is not a DataVersion is an error, not a crash. */
    const char *dv = "{\"counter\":1,\"timestamp\":1700000000000}";
    init_broker_req(&req, REQ_QUERY_DATA_VERSION, "C", "broker-x", "127.0.0.1:1", 0);
    req.body = (const uint8_t *)dv;
    req.body_len = strlen(dv);
    resp = invoke(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(ext(resp, "changed", buf, sizeof buf), "true");
    assert_int_equal(resp->body_len, 0);
    rcmd_free(resp);
    const char *junk[] = {"nope", "[1]", "{\"counter\":\"x\"}", ""};
    for (int i = 0; i < 4; i++) {
        req.body = (const uint8_t *)junk[i];
        req.body_len = strlen(junk[i]);
        resp = invoke(e->cli, &req);
        assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
        assert_true(resp->remark.len > 0);
        rcmd_free(resp);
    }
}

/* Several brokers and clients at once, on connections spread over the I/O threads: the route
 * tables stay consistent (run under ASan/UBSan in the sanitizer build). */
#define NCONC 4

struct conc {
    int port, idx, bad;
    char what[128];
};

static int conc_invoke(remoting_client_t *cli, const struct rcmd *req, int want, struct conc *c)
{
    struct rcmd *resp = NULL;
    int rc = remoting_client_invoke_sync(cli, req, ms(10000), &resp);
    if (rc != 0 || resp->code != want) {
        snprintf(c->what, sizeof c->what, "code %d: rc %d resp %d", req->code, rc,
                 resp ? resp->code : -1);
        c->bad = 1;
    }
    rcmd_free(resp);
    return c->bad ? -1 : 0;
}

static void *conc_main(void *arg)
{
    struct conc *c = arg;
    struct remoting_client_config cc;
    remoting_client_t *cli;
    char addr[64], name[32], own[32], err[256];
    remoting_client_config_init(&cc);
    if (remoting_client_new(&cc, &cli) != 0)
        return c->bad = 1, NULL;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", c->port);
    if (remoting_client_connect(cli, addr, ms(5000), err, sizeof err) != 0) {
        c->bad = 1;
        remoting_client_free(cli);
        return NULL;
    }
    snprintf(addr, sizeof addr, "127.0.0.1:%d", 20000 + c->idx);
    snprintf(name, sizeof name, "broker-%d", c->idx);
    snprintf(own, sizeof own, "OWN%d", c->idx);
    const struct tc t[] = {{"SHARED", 4, 4, 6}, {own, 1, 1, 6}};
    for (int k = 0; k < 100 && !c->bad; k++) {
        struct rcmd req;
        char *body = make_body(k / 10, t, 2);
        init_broker_req(&req, REQ_REGISTER_BROKER, "C", name, addr, 0);
        req.body = (const uint8_t *)body;
        req.body_len = strlen(body);
        conc_invoke(cli, &req, RESP_SUCCESS, c);
        free(body);
        rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
        rcmd_ext_add(&req, "topic", own);
        conc_invoke(cli, &req, RESP_SUCCESS, c);
        rcmd_ext_add(&req, "topic", "SHARED");
        conc_invoke(cli, &req, RESP_SUCCESS, c);
        rcmd_init_request(&req, REQ_GET_BROKER_CLUSTER_INFO);
        conc_invoke(cli, &req, RESP_SUCCESS, c);
        if (k % 10 == 9) {
            init_broker_req(&req, REQ_UNREGISTER_BROKER, "C", name, addr, 0);
            conc_invoke(cli, &req, RESP_SUCCESS, c);
            rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
            rcmd_ext_add(&req, "topic", own);
            conc_invoke(cli, &req, RESP_TOPIC_NOT_EXIST, c);
        }
    }
    remoting_client_free(cli);
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    struct env *e = *state;
    pthread_t th[NCONC];
    struct conc c[NCONC];
    for (int i = 0; i < NCONC; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].port = namesrv_port(e->ns);
        c[i].idx = i;
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &c[i]), 0);
    }
    for (int i = 0; i < NCONC; i++) {
        pthread_join(th[i], NULL);
        if (c[i].bad)
            fail_msg("client %d: %s", i, c[i].what);
    }
    /* Every client closed its connection: every broker is gone with it. */
    assert_true(wait_route_code(e->cli, "SHARED", RESP_TOPIC_NOT_EXIST, 10000));
    assert_simple_body(e->cli, REQ_GET_BROKER_CLUSTER_INFO, NULL, NULL,
                       "{\"brokerAddrTable\":{},\"clusterAddrTable\":{}}");
}

static void test_side_by_side(void **state)
{
    struct env *e = *state;
    struct env other;
    memset(&other, 0, sizeof other);
    env_config(&other);
    env_start(&other);
    assert_int_not_equal(namesrv_port(other.ns), namesrv_port(e->ns));
    reg(e->cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    assert_int_equal(route_code(e->cli, "T1"), RESP_SUCCESS);
    assert_int_equal(route_code(other.cli, "T1"), RESP_TOPIC_NOT_EXIST);
    reg(other.cli, "C", "broker-a", ADDR_A, 0, 1, TOPICS_A, 2);
    assert_int_equal(route_code(other.cli, "T1"), RESP_SUCCESS);
    env_stop(&other);
    test_rmdir(other.dir);
    assert_int_equal(route_code(e->cli, "T1"), RESP_SUCCESS);
}

static void test_config_errors(void **state)
{
    (void)state;
    struct namesrv_config cfg;
    namesrv_t *ns;
    char err[512];
    namesrv_config_defaults(&cfg);
    assert_int_equal(cfg.listenPort, 9876);
    assert_int_equal(cfg.brokerChannelExpiredTime, 120000);
    assert_int_equal(cfg.scanNotActiveBrokerInterval, 10000);
    assert_int_equal(cfg.serverChannelMaxIdleTimeSeconds, 120);
    assert_string_equal(cfg.listenAddress, "0.0.0.0");
    assert_int_equal(conf_set(namesrv_conf_defs, &cfg, "listenPort", "70000", err, sizeof err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err, "listenPort"));
    snprintf(cfg.listenAddress, sizeof cfg.listenAddress, "localhost");
    assert_int_equal(namesrv_new(&cfg, &ns, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "listenAddress"));
    assert_null(ns);
    /* An embedding program's struct is checked against the same bounds as a file. */
    namesrv_config_defaults(&cfg);
    cfg.scanNotActiveBrokerInterval = 0;
    assert_int_equal(namesrv_new(&cfg, &ns, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "scanNotActiveBrokerInterval=0"));
    namesrv_config_defaults(&cfg);
    cfg.serverSelectorThreads = 1000;
    assert_int_equal(namesrv_new(&cfg, &ns, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "serverSelectorThreads"));
    namesrv_free(NULL);

    /* The port is taken: start fails with a message, free cleans up. */
    char dir[512], path[600];
    test_tmpdir(dir, sizeof dir, "namesrv-cfg");
    struct env e;
    memset(&e, 0, sizeof e);
    env_config(&e);
    env_start(&e);
    namesrv_config_defaults(&cfg);
    snprintf(cfg.listenAddress, sizeof cfg.listenAddress, "127.0.0.1");
    cfg.listenPort = namesrv_port(e.ns);
    snprintf(path, sizeof path, "%s/kv.json", dir);
    snprintf(cfg.kvConfigPath, sizeof cfg.kvConfigPath, "%s", path);
    assert_int_equal(namesrv_new(&cfg, &ns, err, sizeof err), 0);
    assert_int_equal(namesrv_start(ns, err, sizeof err), -EADDRINUSE);
    namesrv_free(ns);
    env_stop(&e);
    test_rmdir(e.dir);
    test_rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_register_and_route_forms),
        T(test_escaping_in_both_forms),
        T(test_unknown_topic),
        T(test_two_brokers_cluster_info),
        T(test_unregister_rules),
        T(test_data_version_and_promotion),
        T(test_delete_topic),
        T(test_connection_close_drops_broker),
        T(test_expiry),
        T(test_kv_and_persistence),
        T(test_order_topic_conf),
        T(test_bad_register_bodies),
        T(test_misc_codes),
        T(test_slave_first_and_oneway),
        T(test_concurrent_clients),
        T(test_side_by_side),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
