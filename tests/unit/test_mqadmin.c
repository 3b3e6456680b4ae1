/* The mqadmin binary ($MQADMIN) run as a child process against an in-process name server and
 * broker on free loopback ports: each subcommand's output and exit code, a missing topic and
 * usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "ferry/ferry.h"
#include "namesrv/namesrv.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct env {
    char nsdir[512];
    char ns[64];
    char baddr[64];
    namesrv_t *ns_h;
    struct tb b;
    ferry_producer_t *p;
};

static struct env *E;

/* Run mqadmin with the NULL-ended arguments; stdout/stderr captured in the result. */
static struct test_run *mqadmin(const char *arg, ...)
{
    static struct test_run r;
    const char *bin = getenv("MQADMIN");
    const char *argv[32] = {"mqadmin"};
    int n = 1;
    va_list ap;
    assert_non_null(bin);
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    assert_int_equal(test_run_program(bin, argv, E->nsdir, NULL, &r), 0);
    return &r;
}

static void expect_ok(const struct test_run *r)
{
    if (r->status != 0)
        fail_msg("mqadmin exited %d: %s%s", r->status, r->out, r->err);
}

static int setup(void **state)
{
    struct namesrv_config nc;
    struct ferry_producer_config pc;
    char err[512];
    E = calloc(1, sizeof *E);
    namesrv_config_defaults(&nc);
    snprintf(nc.listenAddress, sizeof nc.listenAddress, "127.0.0.1");
    nc.listenPort = 0;
    test_tmpdir(E->nsdir, sizeof E->nsdir, "mqadmin-ns");
    snprintf(nc.kvConfigPath, sizeof nc.kvConfigPath, "%s/kv.json", E->nsdir);
    if (namesrv_new(&nc, &E->ns_h, err, sizeof err) != 0 ||
        namesrv_start(E->ns_h, err, sizeof err) != 0)
        fail_msg("name server: %s", err);
    snprintf(E->ns, sizeof E->ns, "127.0.0.1:%d", namesrv_port(E->ns_h));

    tb_init(&E->b, "mqadmin-broker");
    snprintf(E->b.cfg.brokerName, sizeof E->b.cfg.brokerName, "broker-a");
    snprintf(E->b.cfg.brokerClusterName, sizeof E->b.cfg.brokerClusterName, "AdminCluster");
    snprintf(E->b.cfg.namesrvAddr, sizeof E->b.cfg.namesrvAddr, "%s", E->ns);
    tb_start(&E->b);
    snprintf(E->baddr, sizeof E->baddr, "127.0.0.1:%d", E->b.port);
    remoting_client_t *cli = tb_client(E->b.port);
    assert_int_equal(tb_create_topic(cli, "TopicA", 4), RESP_SUCCESS);
    remoting_client_free(cli);

    ferry_producer_config_init(&pc);
    snprintf(pc.group, sizeof pc.group, "PID_mqadmin_test");
    snprintf(pc.namesrvAddr, sizeof pc.namesrvAddr, "%s", E->ns);
    pc.sendMsgTimeout *= test_time_mult();
    assert_int_equal(ferry_producer_new(&pc, &E->p), 0);
    assert_int_equal(ferry_producer_start(E->p), 0);
    *state = E;
    return 0;
}

static int teardown(void **state)
{
    ferry_producer_free(E->p);
    tb_cleanup(&E->b);
    namesrv_free(E->ns_h);
    test_rmdir(E->nsdir);
    free(E);
    return 0;
}

static void send_msg(const char *topic, const char *keys, const char *body,
                     struct ferry_send_result *res)
{
    struct ferry_message m = {
        .topic = topic, .tags = "TagA", .keys = keys, .body = body, .body_len = strlen(body)};
    assert_int_equal(ferry_send_sync(E->p, &m, res), 0);
}

/* Run until stdout contains @want (the index and auto-created routes are asynchronous). */
static struct test_run *until(const char *want, const char *a0, const char *a1, const char *a2,
                              const char *a3, const char *a4, const char *a5, const char *a6)
{
    struct test_run *r = NULL;
    for (int i = 0; i < 100 * test_time_mult(); i++) {
        r = mqadmin(a0, a1, a2, a3, a4, a5, a6, NULL);
        if (r->status == 0 && strstr(r->out, want))
            return r;
        usleep(100 * 1000);
    }
    fail_msg("no \"%s\" in mqadmin %s output: %s%s", want, a0, r->out, r->err);
    return r;
}

static void test_usage_errors(void **state)
{
    struct test_run *r = mqadmin("topicRoute", "-n", E->ns, "-t", "TopicA", "-Z", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "unknown option -Z"));
    assert_non_null(strstr(r->err, "usage: mqadmin topicRoute"));
    r = mqadmin("topicRoute", "-n", E->ns, NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-t is required"));
    r = mqadmin("updateTopic", "-n", E->ns, "-t", "X", "-c", "C", "-w", "zero", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("noSuchCommand", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin(NULL);
    assert_int_equal(r->status, 2);
}

static void test_missing_topic(void **state)
{
    struct test_run *r = mqadmin("topicRoute", "-n", E->ns, "-t", "NoSuchTopic", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: topicRoute: no route for topic NoSuchTopic"));
    assert_non_null(strstr(r->err, "TOPIC_NOT_EXIST"));
    r = mqadmin("topicStatus", "-n", E->ns, "-t", "NoSuchTopic", NULL);
    assert_int_equal(r->status, 1);
    r = mqadmin("queryMsgByKey", "-n", E->ns, "-t", "TopicA", "-k", "never-sent", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "no message with key never-sent"));
    /* Nothing listens on the name server address. */
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", tb_free_port());
    r = mqadmin("topicList", "-n", dead, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: topicList: connect to"));
}

static void test_cluster_list(void **state)
{
    struct test_run *r = mqadmin("clusterList", "-n", E->ns, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "AdminCluster"));
    assert_non_null(strstr(r->out, "broker-a"));
    assert_non_null(strstr(r->out, E->baddr));
    r = mqadmin("clusterList", "-n", E->ns, "--json", NULL);
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out);
    assert_non_null(j);
    assert_non_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "clusterAddrTable"), "AdminCluster"));
    cJSON_Delete(j);
}

static void test_topic_list_auto_created(void **state)
{
    struct ferry_send_result res;
    send_msg("AutoTopic1", NULL, "auto", &res);
    until("AutoTopic1", "topicList", "-n", E->ns, NULL, NULL, NULL, NULL);
    /* NAMESRV_ADDR instead of -n, and JSON. */
    setenv("NAMESRV_ADDR", E->ns, 1);
    struct test_run *r = mqadmin("topicList", "--json", NULL);
    unsetenv("NAMESRV_ADDR");
    expect_ok(r);
    assert_non_null(strstr(r->out, "\"topicList\""));
    assert_non_null(strstr(r->out, "\"TopicA\""));
}

static void test_update_route_status(void **state)
{
    struct ferry_send_result res;
    struct test_run *r = mqadmin("updateTopic", "-n", E->ns, "-t", "AdminT", "-r", "3", "-w", "3",
                                 "-c", "AdminCluster", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "create topic AdminT"));
    r = mqadmin("topicRoute", "-n", E->ns, "-t", "AdminT", "--json", NULL);
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out);
    cJSON *qd = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "queueDatas"), 0);
    assert_non_null(qd);
    assert_int_equal(cJSON_GetObjectItem(qd, "writeQueueNums")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(qd, "readQueueNums")->valueint, 3);
    cJSON_Delete(j);
    r = mqadmin("topicRoute", "-n", E->ns, "-t", "AdminT", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "broker-a"));
    assert_non_null(strstr(r->out, "#Write"));

    for (int i = 0; i < 6; i++)
        send_msg("AdminT", NULL, "x", &res);
    tb_wait_dispatched(&E->b);
    r = mqadmin("topicStatus", "-n", E->ns, "-t", "AdminT", "--json", NULL);
    expect_ok(r);
    j = cJSON_Parse(r->out);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    int64_t total = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        assert_int_equal(cJSON_GetObjectItem(e, "minOffset")->valueint, 0);
        total += cJSON_GetObjectItem(e, "maxOffset")->valueint;
    }
    assert_int_equal(total, 6);
    cJSON_Delete(j);
    r = mqadmin("topicStatus", "-n", E->ns, "-t", "AdminT", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "#Max Offset"));

    /* Via -b too, then delete it: the route is gone. */
    r = mqadmin("updateTopic", "-n", E->ns, "-t", "AdminT2", "-b", E->baddr, "-w", "2", NULL);
    expect_ok(r);
    expect_ok(mqadmin("topicRoute", "-n", E->ns, "-t", "AdminT2", NULL));
    r = mqadmin("deleteTopic", "-n", E->ns, "-t", "AdminT2", "-c", "AdminCluster", NULL);
    expect_ok(r);
    r = mqadmin("topicRoute", "-n", E->ns, "-t", "AdminT2", NULL);
    assert_int_equal(r->status, 1);
}

static void test_query_messages(void **state)
{
    struct ferry_send_result res;
    send_msg("TopicA", "order-42 other", "hello-by-id", &res);
    tb_wait_dispatched(&E->b);
    struct test_run *r = mqadmin("queryMsgById", "-i", res.offset_msg_id, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "hello-by-id"));
    assert_non_null(strstr(r->out, res.msg_id));
    assert_non_null(strstr(r->out, "TopicA"));
    r = mqadmin("queryMsgById", "-i", res.offset_msg_id, "--json", NULL);
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "offsetMsgId")),
                        res.offset_msg_id);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "keys")), "order-42 other");
    cJSON_Delete(j);
    r = mqadmin("queryMsgById", "-i", "XYZ", NULL);
    assert_int_equal(r->status, 1);

    until(res.msg_id, "queryMsgByKey", "-n", E->ns, "-t", "TopicA", "-k", "order-42");
    r = mqadmin("queryMsgByKey", "-n", E->ns, "-t", "TopicA", "-k", res.msg_id, NULL);
    expect_ok(r); /* UNIQ_KEY is indexed too */
}

static void test_send_message(void **state)
{
    struct test_run *r = mqadmin("sendMessage", "-n", E->ns, "-t", "TopicA", "-p", "from-cli", "-k",
                                 "cli-key-1", "-c", "TagCli", "--json", NULL);
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "sendStatus")), "SEND_OK");
    char id[64];
    snprintf(id, sizeof id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "msgId")));
    cJSON_Delete(j);
    r = until(id, "queryMsgByKey", "-n", E->ns, "-t", "TopicA", "-k", "cli-key-1");
    r = mqadmin("queryMsgByKey", "-n", E->ns, "-t", "TopicA", "-k", "cli-key-1", "--json", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "from-cli"));
    assert_non_null(strstr(r->out, "TagCli"));
    r = mqadmin("sendMessage", "-n", E->ns, "-t", "TopicA", NULL);
    assert_int_equal(r->status, 2);
}

static void test_broker_status_and_consumers(void **state)
{
    struct test_run *r = mqadmin("brokerStatus", "-b", E->baddr, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "brokerVersionDesc"));
    r = mqadmin("brokerStatus", "-b", E->baddr, "--json", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "\"brokerVersionDesc\""));
    r = mqadmin("consumerConnection", "-g", "NoSuchGroup", "-b", E->baddr, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: consumerConnection:"));
    assert_non_null(strstr(r->err, "CONSUMER_NOT_ONLINE"));

    /* A consumer registered by heartbeat (the connection stays open meanwhile). */
    const char *body =
        "{\"clientID\":\"127.0.0.1@cli-1\",\"consumerDataSet\":[{\"groupName\":\"CG_admin\","
        "\"consumeType\":\"CONSUME_PASSIVELY\",\"messageModel\":\"CLUSTERING\","
        "\"consumeFromWhere\":\"CONSUME_FROM_FIRST_OFFSET\",\"subscriptionDataSet\":[{"
        "\"topic\":\"TopicA\",\"subString\":\"*\",\"tagsSet\":[],\"codeSet\":[],"
        "\"subVersion\":1}],\"unitMode\":false}],\"producerDataSet\":[]}";
    struct rcmd req;
    remoting_client_t *cli = tb_client(E->b.port);
    rcmd_init_request(&req, REQ_HEART_BEAT);
    req.version = 121;
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    r = mqadmin("consumerConnection", "-g", "CG_admin", "-b", E->baddr, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "127.0.0.1@cli-1"));
    assert_non_null(strstr(r->out, "CLUSTERING"));
    /* through the name server: the route of %RETRY%CG_admin (created by the heartbeat) is
     * registered asynchronously */
    r = until("127.0.0.1@cli-1", "consumerConnection", "-n", E->ns, "-g", "CG_admin", "--json",
              NULL);
    remoting_client_free(cli);
}

/* ---- consumer offsets: consumerProgress, queryMsgByOffset, resets, consumeMessage ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A topic with @queues queues and @per[q] messages "<topic>-<q>-<i>" in queue q. */
static void fill_topic(const char *topic, int queues, const int *per)
{
    remoting_client_t *cli = tb_client(E->b.port);
    char body[128];
    assert_int_equal(tb_create_topic(cli, topic, queues), RESP_SUCCESS);
    for (int q = 0; q < queues; q++) {
        for (int i = 0; i < per[q]; i++) {
            snprintf(body, sizeof body, "%s-%d-%d", topic, q, i);
            rcmd_free(tb_send(cli, topic, q, "TagP", NULL, body));
        }
    }
    remoting_client_free(cli);
    tb_wait_dispatched(&E->b);
}

static void commit_offset(const char *group, const char *topic, int qid, int64_t off)
{
    struct rcmd req;
    remoting_client_t *cli = tb_client(E->b.port);
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", qid);
    rcmd_ext_add_i64(&req, "commitOffset", off);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    remoting_client_free(cli);
}

static int64_t query_offset(const char *group, const char *topic, int qid)
{
    struct rcmd req;
    remoting_client_t *cli = tb_client(E->b.port);
    rcmd_init_request(&req, REQ_QUERY_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", qid);
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    int64_t off = tb_ext_i64(resp, "offset");
    rcmd_free(resp);
    remoting_client_free(cli);
    return off;
}

/* The JSON of a successful run (freed by the caller). */
static cJSON *json_of(const struct test_run *r)
{
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out);
    if (!j)
        fail_msg("not JSON: %s", r->out);
    return j;
}

static cJSON *row_of(cJSON *arr, const char *topic, int qid)
{
    cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (cJSON_GetObjectItem(e, "queueId")->valueint == qid &&
            (!topic || strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "topic")), topic) == 0))
            return e;
    }
    fail_msg("no row for queue %d", qid);
    return NULL;
}

static long long num_of(cJSON *o, const char *key)
{
    cJSON *n = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(n))
        fail_msg("no number %s", key);
    return (long long)n->valuedouble;
}

static void test_consumer_progress(void **state)
{
    const int per[2] = {5, 3};
    fill_topic("ProgT", 2, per);
    commit_offset("CG_prog", "ProgT", 0, 2);
    commit_offset("CG_prog", "ProgT", 1, 3);

    /* No retry topic (no consumer ever sent a heartbeat): every master is asked. */
    cJSON *j = json_of(mqadmin("consumerProgress", "-n", E->ns, "-g", "CG_prog", "--json", NULL));
    cJSON *tab = cJSON_GetObjectItem(j, "offsetTable");
    assert_int_equal(cJSON_GetArraySize(tab), 2);
    cJSON *q0 = row_of(tab, "ProgT", 0), *q1 = row_of(tab, "ProgT", 1);
    assert_int_equal(num_of(q0, "brokerOffset"), 5);
    assert_int_equal(num_of(q0, "consumerOffset"), 2);
    assert_int_equal(num_of(q0, "diff"), 3);
    assert_int_equal(num_of(q1, "diff"), 0);
    assert_int_equal(num_of(j, "diffTotal"), 3);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(q0, "brokerName")), "broker-a");
    assert_true(num_of(q0, "lastTimestamp") > 0);
    cJSON_Delete(j);

    struct test_run *r =
        mqadmin("consumerProgress", "-n", E->ns, "-g", "CG_prog", "-t", "ProgT", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "#Consumer Offset"));
    assert_non_null(strstr(r->out, "#Diff"));
    assert_non_null(strstr(r->out, "Diff Total: 3"));

    r = mqadmin("consumerProgress", "-n", E->ns, "-g", "NoSuchGroupP", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: consumerProgress: consumer group NoSuchGroupP"));
    r = mqadmin("consumerProgress", "-n", E->ns, "-g", "CG_prog", "-t", "NoSuchTopicP", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "TOPIC_NOT_EXIST"));
    r = mqadmin("consumerProgress", "-n", E->ns, NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-g is required"));
}

static void test_query_by_offset(void **state)
{
    const int per[2] = {3, 2};
    fill_topic("OffT", 2, per);
    struct test_run *r = mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "OffT", "-b", "broker-a",
                                 "-i", "1", "-o", "1", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "OffT-1-1"));
    assert_non_null(strstr(r->out, "queueOffset"));
    cJSON *j = json_of(mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "OffT", "-b", "broker-a",
                               "-i", "0", "-o", "2", "--json", NULL));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "body")), "OffT-0-2");
    assert_int_equal(num_of(j, "queueOffset"), 2);
    assert_int_equal(num_of(j, "queueId"), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "tags")), "TagP");
    cJSON_Delete(j);

    /* Past the end, an unknown broker, an unknown topic, bad numbers. */
    r = mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "OffT", "-b", "broker-a", "-i", "0", "-o",
                "3", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "no message at offset 3 of OffT/broker-a/0 (PULL_NOT_FOUND"));
    assert_non_null(strstr(r->err, E->baddr));
    r = mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "OffT", "-b", "broker-zz", "-i", "0", "-o",
                "0", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "broker-zz"));
    r = mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "NoSuchTopicO", "-b", "broker-a", "-i", "0",
                "-o", "0", NULL);
    assert_int_equal(r->status, 1);
    r = mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "OffT", "-b", "broker-a", "-i", "x", "-o",
                "0", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("queryMsgByOffset", "-n", E->ns, "-t", "OffT", "-b", "broker-a", "-i", "0", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-o is required"));
}

/* Each queue of ResetT: 3 messages, a pause, then 2 more; @mid lies in the pause, much nearer
 * to the later messages (the search picks the entry nearest in store time). */
static void fill_reset_topic(int64_t *mid)
{
    remoting_client_t *cli = tb_client(E->b.port);
    assert_int_equal(tb_create_topic(cli, "ResetT", 2), RESP_SUCCESS);
    for (int i = 0; i < 5; i++) {
        if (i == 3) {
            usleep(600 * 1000);
            *mid = wall_ms();
            usleep(2 * 1000);
        }
        for (int q = 0; q < 2; q++)
            rcmd_free(tb_send(cli, "ResetT", q, "TagR", NULL, "r"));
    }
    remoting_client_free(cli);
    tb_wait_dispatched(&E->b);
}

static void test_reset_offset_offline(void **state)
{
    int64_t mid = 0;
    char ts[32];
    fill_reset_topic(&mid);
    for (int q = 0; q < 2; q++)
        commit_offset("CG_reset", "ResetT", q, 5);

    /* To a time: offset 3 in both queues (the group has no consumer online). */
    snprintf(ts, sizeof ts, "%lld", (long long)mid);
    cJSON *j = json_of(mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT",
                               "-s", ts, "--json", NULL));
    cJSON *tab = cJSON_GetObjectItem(j, "offsetTable");
    assert_int_equal(cJSON_GetArraySize(tab), 2);
    assert_int_equal(num_of(row_of(tab, "ResetT", 0), "offset"), 3);
    assert_int_equal(num_of(row_of(tab, "ResetT", 1), "offset"), 3);
    cJSON_Delete(j);
    assert_int_equal(query_offset("CG_reset", "ResetT", 0), 3);
    assert_int_equal(query_offset("CG_reset", "ResetT", 1), 3);

    /* RocketMQ's date format, long ago: the first message. */
    struct test_run *r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT",
                                 "-s", "2000-01-01#00:00:00:000", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "rollback consumer offset by specified group[CG_reset]"));
    assert_non_null(strstr(r->out, "#offset"));
    assert_int_equal(query_offset("CG_reset", "ResetT", 0), 0);

    /* Not forced: "now" would move the offsets forward, so they stay. */
    expect_ok(mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s",
                      "now", "-f", "false", NULL));
    assert_int_equal(query_offset("CG_reset", "ResetT", 1), 0);
    expect_ok(mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s",
                      "now", NULL));
    assert_int_equal(query_offset("CG_reset", "ResetT", 0), 5);
    assert_int_equal(query_offset("CG_reset", "ResetT", 1), 5);
    r = mqadmin("consumerProgress", "-n", E->ns, "-g", "CG_reset", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "Diff Total: 0"));

    /* The old way (SEARCH_OFFSET_BY_TIMESTAMP + UPDATE_CONSUMER_OFFSET from mqadmin). */
    j = json_of(mqadmin("resetOffsetByTimeOld", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s",
                        ts, "--json", NULL));
    tab = cJSON_GetObjectItem(j, "offsetTable");
    assert_int_equal(cJSON_GetArraySize(tab), 2);
    assert_int_equal(num_of(row_of(tab, "ResetT", 1), "consumerOffset"), 5);
    assert_int_equal(num_of(row_of(tab, "ResetT", 1), "timestampOffset"), 3);
    assert_int_equal(num_of(row_of(tab, "ResetT", 1), "brokerOffset"), 5);
    cJSON_Delete(j);
    assert_int_equal(query_offset("CG_reset", "ResetT", 0), 3);
    assert_int_equal(query_offset("CG_reset", "ResetT", 1), 3);
    r = mqadmin("resetOffsetByTimeOld", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s", "0",
                "-f", "false", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "#rollbackOffset"));
    assert_int_equal(query_offset("CG_reset", "ResetT", 0), 0);
    /* A group without any offset: the topic's min offsets stand in (as Java). */
    expect_ok(mqadmin("resetOffsetByTimeOld", "-n", E->ns, "-g", "CG_fresh", "-t", "ResetT", "-s",
                      ts, NULL));
    assert_int_equal(query_offset("CG_fresh", "ResetT", 1), 3);

    /* Errors: unknown group (broker), unknown topic (name server), bad input (usage). */
    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "NoSuchGroupR", "-t", "ResetT", "-s", "now",
                NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "SYSTEM_ERROR (1) from"));
    assert_non_null(strstr(r->err, E->baddr));
    assert_non_null(strstr(r->err, "NoSuchGroupR"));
    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "NoSuchTopicR", "-s",
                "now", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "TOPIC_NOT_EXIST"));
    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s",
                "yesterday", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "bad timestamp yesterday"));
    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s",
                "2024-13-01#00:00:00:000", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s", "now",
                "-f", "maybe", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-s is required"));
    r = mqadmin("resetOffsetByTimeOld", "-n", E->ns, "-g", "CG_reset", "-t", "ResetT", "-s", "now",
                NULL);
    assert_int_equal(r->status, 2);
}

/* What a consumer connection received as RESET_CONSUMER_CLIENT_OFFSET. */
static struct {
    pthread_mutex_t mu;
    int n;
    char group[64], is_force[8], body[4096];
} got220 = {PTHREAD_MUTEX_INITIALIZER, 0, "", "", ""};

static void on_reset_220(conn_t *conn, const struct rcmd *req, void *arg)
{
    (void)conn;
    (void)arg;
    pthread_mutex_lock(&got220.mu);
    snprintf(got220.group, sizeof got220.group, "%s", tb_ext(req, "group"));
    snprintf(got220.is_force, sizeof got220.is_force, "%s", tb_ext(req, "isForce"));
    snprintf(got220.body, sizeof got220.body, "%.*s", (int)req->body_len, (const char *)req->body);
    got220.n++;
    pthread_mutex_unlock(&got220.mu);
}

static void wait_220(int n, char *body, size_t cap)
{
    for (int i = 0; i < 500 * test_time_mult(); i++) {
        pthread_mutex_lock(&got220.mu);
        int have = got220.n;
        snprintf(body, cap, "%s", got220.body);
        pthread_mutex_unlock(&got220.mu);
        if (have >= n)
            return;
        usleep(10 * 1000);
    }
    fail_msg("the consumer got no RESET_CONSUMER_CLIENT_OFFSET");
}

static void test_reset_offset_online(void **state)
{
    const char *hb =
        "{\"clientID\":\"127.0.0.1@reset-1\",\"consumerDataSet\":[{\"groupName\":\"CG_online\","
        "\"consumeType\":\"CONSUME_PASSIVELY\",\"messageModel\":\"CLUSTERING\","
        "\"consumeFromWhere\":\"CONSUME_FROM_FIRST_OFFSET\",\"subscriptionDataSet\":[{"
        "\"topic\":\"ResetT\",\"subString\":\"*\",\"tagsSet\":[],\"codeSet\":[],"
        "\"subVersion\":1}],\"unitMode\":false}],\"producerDataSet\":[]}";
    char body[4096];
    struct rcmd req;
    remoting_client_t *cli =
        tb_client_h(E->b.port, REQ_RESET_CONSUMER_CLIENT_OFFSET, on_reset_220, NULL);
    rcmd_init_request(&req, REQ_HEART_BEAT);
    req.version = 121;
    req.body = (const uint8_t *)hb;
    req.body_len = strlen(hb);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    commit_offset("CG_online", "ResetT", 0, 1);
    commit_offset("CG_online", "ResetT", 1, 2);

    cJSON *j = json_of(mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_online", "-t", "ResetT",
                               "-s", "now", "--json", NULL));
    assert_int_equal(num_of(row_of(cJSON_GetObjectItem(j, "offsetTable"), "ResetT", 1), "offset"),
                     5);
    cJSON_Delete(j);
    wait_220(1, body, sizeof body);
    assert_string_equal(got220.group, "CG_online");
    assert_string_equal(got220.is_force, "true");
    assert_non_null(
        strstr(body, "{\"brokerName\":\"broker-a\",\"queueId\":1,\"topic\":\"ResetT\"}:5"));
    assert_int_equal(query_offset("CG_online", "ResetT", 0), 5);

    /* -c: the consumers get ResetOffsetBodyForC (a list). */
    expect_ok(mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_online", "-t", "ResetT", "-s",
                      "0", "-c", NULL));
    wait_220(2, body, sizeof body);
    assert_non_null(strstr(body, "\"offsetTable\":[{"));
    assert_non_null(strstr(body, "\"offset\":0,\"queueId\":0,\"topic\":\"ResetT\"}"));
    assert_int_equal(query_offset("CG_online", "ResetT", 1), 0);

    /* Online now, so consumerProgress finds the brokers through the retry topic. */
    struct test_run *r =
        until("Diff Total: 10", "consumerProgress", "-n", E->ns, "-g", "CG_online", NULL, NULL);
    assert_non_null(strstr(r->out, "ResetT"));
    remoting_client_free(cli);
}

static void test_consume_message(void **state)
{
    const int per[2] = {3, 4};
    fill_topic("ConsT", 2, per);
    cJSON *j = json_of(mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 7);
    cJSON_Delete(j);
    struct test_run *r = mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "7 messages"));
    assert_non_null(strstr(r->out, "ConsT-1-3"));
    j = json_of(mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-c", "5", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 5);
    cJSON_Delete(j);
    j = json_of(mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-b", "broker-a", "-i", "1",
                        "-o", "2", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "body")),
                        "ConsT-1-2");
    assert_int_equal(num_of(cJSON_GetArrayItem(j, 1), "queueOffset"), 3);
    cJSON_Delete(j);

    /* A time window: only what was stored after @mid. */
    usleep(50 * 1000);
    int64_t mid = wall_ms();
    char ts[32], end[32];
    usleep(50 * 1000);
    remoting_client_t *cli = tb_client(E->b.port);
    rcmd_free(tb_send(cli, "ConsT", 0, "TagP", NULL, "late-1"));
    rcmd_free(tb_send(cli, "ConsT", 1, "TagP", NULL, "late-2"));
    remoting_client_free(cli);
    tb_wait_dispatched(&E->b);
    snprintf(ts, sizeof ts, "%lld", (long long)mid);
    j = json_of(mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-s", ts, "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    j = json_of(mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-e", ts, "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 7);
    cJSON_Delete(j);
    /* Nothing was committed for the tools group. */
    r = mqadmin("consumerProgress", "-n", E->ns, "-g", "TOOLS_CONSUMER", NULL);
    assert_int_equal(r->status, 1);

    snprintf(end, sizeof end, "%lld", (long long)wall_ms() + 3600 * 1000);
    r = mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-s", end, NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-i", "0", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "needs -b"));
    r = mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-c", "0", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("consumeMessage", "-n", E->ns, "-t", "NoSuchTopicC", NULL);
    assert_int_equal(r->status, 1);
    r = mqadmin("consumeMessage", "-n", E->ns, "-t", "ConsT", "-b", "broker-zz", NULL);
    assert_int_equal(r->status, 1);
}

/* The broker's SubscriptionGroupConfig of @group (GET_ALL_SUBSCRIPTIONGROUP_CONFIG). */
static cJSON *group_config(const char *group)
{
    struct rcmd req;
    remoting_client_t *cli = tb_client(E->b.port);
    rcmd_init_request(&req, REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    cJSON *all = cJSON_Parse(tb_body(resp));
    rcmd_free(resp);
    remoting_client_free(cli);
    assert_non_null(all);
    cJSON *g =
        cJSON_DetachItemFromObject(cJSON_GetObjectItem(all, "subscriptionGroupTable"), group);
    cJSON_Delete(all);
    return g;
}

static void test_update_sub_group(void **state)
{
    struct test_run *r = mqadmin("updateSubGroup", "-g", "SG_admin", "-b", E->baddr, "-r", "5",
                                 "-q", "2", "-a", "false", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "create subscription group to"));
    cJSON *g = group_config("SG_admin");
    assert_non_null(g);
    assert_int_equal(num_of(g, "retryMaxTimes"), 5);
    assert_int_equal(num_of(g, "retryQueueNums"), 2);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(g, "notifyConsumerIdsChangedEnable")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(g, "consumeBroadcastEnable")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(g, "consumeEnable")));
    cJSON_Delete(g);

    cJSON *j = json_of(mqadmin("updateSubGroup", "-n", E->ns, "-g", "SG_admin", "-c",
                               "AdminCluster", "-r", "7", "-d", "true", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "brokers")), 1);
    cJSON_Delete(j);
    g = group_config("SG_admin");
    assert_int_equal(num_of(g, "retryMaxTimes"), 7);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(g, "consumeBroadcastEnable")));
    cJSON_Delete(g);

    r = mqadmin("updateSubGroup", "-n", E->ns, "-g", "SG_admin", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "exactly one of -c cluster and -b brokerAddr"));
    r = mqadmin("updateSubGroup", "-g", "SG_admin", "-b", E->baddr, "-s", "maybe", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("updateSubGroup", "-g", "SG_admin", "-b", E->baddr, "-r", "many", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("updateSubGroup", "-b", E->baddr, NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("updateSubGroup", "-n", E->ns, "-g", "SG_admin", "-c", "NoSuchCluster", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "cluster NoSuchCluster not found"));
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", tb_free_port());
    r = mqadmin("updateSubGroup", "-g", "SG_admin", "-b", dead, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "connect to"));
}

/* ---- resetOffsetByTime -s earliest / latest ---- */

static void test_reset_offset_earliest_latest(void **state)
{
    /* ResetT (fill_reset_topic): 5 messages in each of its 2 queues. */
    commit_offset("CG_edge", "ResetT", 0, 2);
    commit_offset("CG_edge", "ResetT", 1, 4);
    cJSON *j = json_of(mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_edge", "-t", "ResetT",
                               "-s", "earliest", "--json", NULL));
    assert_int_equal(num_of(j, "timestamp"), 0);
    assert_int_equal(num_of(row_of(cJSON_GetObjectItem(j, "offsetTable"), "ResetT", 1), "offset"),
                     0);
    cJSON_Delete(j);
    assert_int_equal(query_offset("CG_edge", "ResetT", 0), 0);
    assert_int_equal(query_offset("CG_edge", "ResetT", 1), 0);
    struct test_run *r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_edge", "-t", "ResetT",
                                 "-s", "latest", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "timestamp(string)[latest], timestamp(long)[-1]"));
    assert_int_equal(query_offset("CG_edge", "ResetT", 0), 5);
    assert_int_equal(query_offset("CG_edge", "ResetT", 1), 5);

    /* The old way too: GET_MIN_OFFSET / GET_MAX_OFFSET per queue. */
    j = json_of(mqadmin("resetOffsetByTimeOld", "-n", E->ns, "-g", "CG_edge", "-t", "ResetT", "-s",
                        "earliest", "--json", NULL));
    assert_int_equal(
        num_of(row_of(cJSON_GetObjectItem(j, "offsetTable"), "ResetT", 0), "timestampOffset"), 0);
    cJSON_Delete(j);
    assert_int_equal(query_offset("CG_edge", "ResetT", 1), 0);
    expect_ok(mqadmin("resetOffsetByTimeOld", "-n", E->ns, "-g", "CG_edge", "-t", "ResetT", "-s",
                      "latest", NULL));
    assert_int_equal(query_offset("CG_edge", "ResetT", 0), 5);
    assert_int_equal(query_offset("CG_edge", "ResetT", 1), 5);

    r = mqadmin("resetOffsetByTime", "-n", E->ns, "-g", "CG_edge", "-t", "ResetT", "-s", "oldest",
                NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "expected now, earliest, latest"));
    r = mqadmin("resetOffsetByTime", "-h", NULL);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->err, "now|earliest|latest"));
}

/* ---- dead letters: dlqList, dlqView, dlqResend ---- */

static int64_t max_offset(const char *topic, int qid)
{
    struct rcmd req;
    remoting_client_t *cli = tb_client(E->b.port);
    tb_wait_dispatched(&E->b);
    rcmd_init_request(&req, REQ_GET_MAX_OFFSET);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", qid);
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    int64_t off = tb_ext_i64(resp, "offset");
    rcmd_free(resp);
    remoting_client_free(cli);
    return off;
}

/* Hand the message of @res back for @group with CONSUMER_SEND_MSG_BACK at delay level -1:
 * straight to %DLQ%<group>, reconsume times 0 + 1. */
static void send_back_dlq(const char *group, const char *topic, const struct ferry_send_result *res)
{
    char ip[64];
    int port;
    int64_t phys;
    struct rcmd req;
    assert_int_equal(tb_msgid_decode(res->offset_msg_id, ip, sizeof ip, &port, &phys), 0);
    remoting_client_t *cli = tb_client(E->b.port);
    rcmd_init_request(&req, REQ_CONSUMER_SEND_MSG_BACK);
    rcmd_ext_add_i64(&req, "offset", phys);
    rcmd_ext_add(&req, "group", group);
    rcmd_ext_add_i64(&req, "delayLevel", -1);
    rcmd_ext_add(&req, "originMsgId", res->msg_id);
    rcmd_ext_add(&req, "originTopic", topic);
    rcmd_ext_add_i64(&req, "maxReconsumeTimes", 16);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    remoting_client_free(cli);
    tb_wait_dispatched(&E->b);
}

static const char *str_of(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
    if (!s)
        fail_msg("no string %s", key);
    return s;
}

/* The message at @off of DlqT/0 is the resent copy of @orig_id (new UNIQ_KEY @new_id). */
static void expect_resent(int64_t off, const char *orig_id, const char *new_id, const char *keys,
                          const char *body)
{
    struct rcmd req;
    struct tb_rec rec;
    remoting_client_t *cli = tb_client(E->b.port);
    tb_pull_req(&req, "CG_dlq_check", "DlqT", 0, off, 1, "*", 0, 0);
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_records(resp, &rec, 1), 1);
    assert_int_equal(rec.v.queue_offset, off);
    assert_string_equal(rec.topic, "DlqT");
    assert_string_equal(rec.body, body);
    assert_string_equal(tb_prop(&rec, "KEYS"), keys);
    assert_string_equal(tb_prop(&rec, "TAGS"), "TagA");
    assert_string_equal(tb_prop(&rec, "ORIGIN_MESSAGE_ID"), orig_id);
    if (new_id)
        assert_string_equal(tb_prop(&rec, "UNIQ_KEY"), new_id);
    assert_string_not_equal(tb_prop(&rec, "UNIQ_KEY"), orig_id);
    assert_string_equal(tb_prop(&rec, "DLQ_ORIGIN_TOPIC"), "");
    assert_string_equal(tb_prop(&rec, "RETRY_TOPIC"), "");
    assert_string_equal(tb_prop(&rec, "REAL_TOPIC"), "");
    assert_int_equal(rec.v.reconsume_times, 0);
    rcmd_free(resp);
    remoting_client_free(cli);
}

static void test_dlq(void **state)
{
    struct ferry_send_result m1, m2;
    remoting_client_t *cli = tb_client(E->b.port);
    assert_int_equal(tb_create_topic(cli, "DlqT", 1), RESP_SUCCESS);
    remoting_client_free(cli);
    send_msg("DlqT", "dlq-key-1", "dead-body-1", &m1);
    send_msg("DlqT", "dlq-key-2 other", "dead-body-2", &m2);
    assert_int_equal(max_offset("DlqT", 0), 2);

    /* No dead letter yet: the group has no DLQ topic. */
    struct test_run *r = mqadmin("dlqList", "-n", E->ns, "-g", "CG_dlq", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: dlqList: consumer group CG_dlq has no dead-letter "
                                   "topic %DLQ%CG_dlq"));

    send_back_dlq("CG_dlq", "DlqT", &m1);
    /* The route of %DLQ%CG_dlq reaches the name server asynchronously. */
    r = until("dead-body-1", "dlqList", "-n", E->ns, "-g", "CG_dlq", NULL, NULL);
    assert_non_null(strstr(r->out, "#Original Topic"));
    assert_non_null(strstr(r->out, "DlqT"));
    assert_non_null(strstr(r->out, m1.msg_id));
    assert_non_null(strstr(r->out, "dlq-key-1"));
    assert_non_null(strstr(r->out, "1 dead letters in %DLQ%CG_dlq"));
    cJSON *j = json_of(mqadmin("dlqList", "-n", E->ns, "-g", "CG_dlq", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON *d = cJSON_GetArrayItem(j, 0);
    assert_string_equal(str_of(d, "topic"), "%DLQ%CG_dlq");
    assert_string_equal(str_of(d, "originTopic"), "DlqT");
    assert_string_equal(str_of(d, "originMsgId"), m1.msg_id);
    assert_int_equal(num_of(d, "reconsumeTimes"), 1);
    assert_int_equal(num_of(d, "queueOffset"), 0);
    assert_string_equal(str_of(d, "keys"), "dlq-key-1");
    assert_string_equal(str_of(d, "tags"), "TagA");
    assert_string_equal(str_of(d, "body"), "dead-body-1");
    assert_string_equal(str_of(d, "brokerName"), "broker-a");
    cJSON *props = cJSON_GetObjectItem(d, "properties");
    assert_string_equal(str_of(props, "DLQ_ORIGIN_TOPIC"), "DlqT");
    assert_string_equal(str_of(props, "RETRY_TOPIC"), "DlqT");
    char dlq_offset_id[64];
    snprintf(dlq_offset_id, sizeof dlq_offset_id, "%s", str_of(d, "offsetMsgId"));
    cJSON_Delete(j);

    /* Until the broker's next registration round the name server may not know %DLQ%CG_dlq
     * (found through the masters meanwhile); creating a topic forces a round, after which the
     * commands below use the name server's route. */
    cli = tb_client(E->b.port);
    assert_int_equal(tb_create_topic(cli, "DlqT2", 1), RESP_SUCCESS);
    remoting_client_free(cli);
    expect_ok(mqadmin("topicRoute", "-n", E->ns, "-t", "%DLQ%CG_dlq", NULL));

    /* dlqView by the original msgId, by the dead letter's offset msgId, by queue offset. */
    r = mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", "-i", m1.msg_id, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "dead-body-1"));
    assert_non_null(strstr(r->out, "originTopic          DlqT"));
    assert_non_null(strstr(r->out, "properties"));
    assert_non_null(strstr(r->out, "DLQ_ORIGIN_MESSAGE_ID"));
    assert_non_null(strstr(r->out, "ORIGIN_MESSAGE_ID"));
    assert_non_null(strstr(r->out, "reconsumeTimes       1"));
    j = json_of(
        mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", "-i", dlq_offset_id, "--json", NULL));
    props = cJSON_GetObjectItem(j, "properties");
    assert_string_equal(str_of(props, "DLQ_ORIGIN_MESSAGE_ID"), m1.msg_id);
    assert_string_equal(str_of(props, "ORIGIN_MESSAGE_ID"), m1.msg_id);
    assert_string_equal(str_of(props, "UNIQ_KEY"), m1.msg_id);
    assert_string_equal(str_of(props, "KEYS"), "dlq-key-1");
    assert_string_equal(str_of(j, "offsetMsgId"), dlq_offset_id);
    cJSON_Delete(j);
    j = json_of(mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", "-i", "0", "--json", NULL));
    assert_string_equal(str_of(j, "originMsgId"), m1.msg_id);
    cJSON_Delete(j);

    /* dlqResend -i: a new message in DlqT; the dead letter stays. */
    j = json_of(mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", "-i", m1.msg_id, "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 1);
    d = cJSON_GetArrayItem(j, 0);
    assert_string_equal(str_of(d, "topic"), "DlqT");
    assert_string_equal(str_of(d, "sendStatus"), "SEND_OK");
    assert_string_equal(str_of(d, "originMsgId"), m1.msg_id);
    assert_int_equal(num_of(d, "queueOffset"), 2);
    assert_string_not_equal(str_of(d, "msgId"), m1.msg_id);
    assert_int_equal(max_offset("DlqT", 0), 3);
    expect_resent(2, m1.msg_id, str_of(d, "msgId"), "dlq-key-1", "dead-body-1");
    cJSON_Delete(j);
    assert_int_equal(max_offset("%DLQ%CG_dlq", 0), 1);

    /* Two more dead letters (m2 handed back twice): -c, ambiguity, --all. */
    send_back_dlq("CG_dlq", "DlqT", &m2);
    send_back_dlq("CG_dlq", "DlqT", &m2);
    r = mqadmin("dlqList", "-n", E->ns, "-g", "CG_dlq", "-c", "2", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "2 dead letters in %DLQ%CG_dlq shown, more follow"));
    j = json_of(mqadmin("dlqList", "-n", E->ns, "-g", "CG_dlq", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 3);
    cJSON_Delete(j);
    r = mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", "-i", m2.msg_id, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "2 dead letters match"));
    assert_non_null(strstr(r->err, "broker-a:1, broker-a:2"));
    r = mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", "-i", "2", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "#New MsgId"));
    assert_non_null(strstr(r->out, "SEND_OK"));
    assert_non_null(strstr(r->out, "1 dead letters of CG_dlq resent; they stay in %DLQ%CG_dlq"));
    assert_int_equal(max_offset("DlqT", 0), 4);
    expect_resent(3, m2.msg_id, NULL, "dlq-key-2 other", "dead-body-2");

    j = json_of(mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", "--all", "--json", NULL));
    assert_int_equal(cJSON_GetArraySize(j), 3);
    assert_int_equal(num_of(cJSON_GetArrayItem(j, 2), "dlqQueueOffset"), 2);
    cJSON_Delete(j);
    assert_int_equal(max_offset("DlqT", 0), 7);
    expect_resent(4, m1.msg_id, NULL, "dlq-key-1", "dead-body-1");
    expect_resent(6, m2.msg_id, NULL, "dlq-key-2 other", "dead-body-2");
    assert_int_equal(max_offset("%DLQ%CG_dlq", 0), 3); /* still there */

    /* -t: to another topic. */
    j = json_of(mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", "-i", "0", "-t", "TopicA",
                        "--json", NULL));
    assert_string_equal(str_of(cJSON_GetArrayItem(j, 0), "topic"), "TopicA");
    cJSON_Delete(j);
    assert_int_equal(max_offset("DlqT", 0), 7);

    /* Errors: unknown group, bad ids, usage. */
    r = mqadmin("dlqView", "-n", E->ns, "-g", "NoSuchGroupD", "-i", "0", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "has no dead-letter topic %DLQ%NoSuchGroupD"));
    r = mqadmin("dlqResend", "-n", E->ns, "-g", "NoSuchGroupD", "--all", NULL);
    assert_int_equal(r->status, 1);
    r = mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", "-i", "NOT-AN-ID", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "no dead letter NOT-AN-ID in %DLQ%CG_dlq (3 dead letters"));
    r = mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", "-i", "99", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: dlqResend: no dead letter 99"));
    r = mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", "-i", "0", "-b", "broker-zz", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "broker-zz"));
    r = mqadmin("dlqList", "-n", E->ns, NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-g is required"));
    r = mqadmin("dlqResend", "-n", E->ns, "-i", "0", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "exactly one of -i id and --all"));
    r = mqadmin("dlqResend", "-n", E->ns, "-g", "CG_dlq", "-i", "0", "--all", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("dlqList", "-n", E->ns, "-g", "CG_dlq", "--all", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "unknown option --all"));
    r = mqadmin("dlqList", "-n", E->ns, "-g", "CG_dlq", "-c", "0", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("dlqView", "-n", E->ns, "-g", "CG_dlq", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-i is required"));
    assert_int_equal(max_offset("DlqT", 0), 7); /* no failed command sent anything */
}

/* txStatus: a half message nobody resolved is listed with its group and topic; committed it
 * is gone. */
static void test_tx_status(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(E->b.port);
    struct rcmd req, *resp;
    tb_send_req(&req, "TopicA", 0, "TRAN_MSG\001true\002PGROUP\001PG_admin_tx", "half", 4);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    char ip[64];
    int port;
    int64_t phys, off = tb_ext_i64(resp, "queueOffset");
    assert_int_equal(tb_msgid_decode(tb_ext(resp, "msgId"), ip, sizeof ip, &port, &phys), 0);
    rcmd_free(resp);
    struct test_run *r = until("PG_admin_tx", "txStatus", "-b", E->baddr, NULL, NULL, NULL, NULL);
    assert_non_null(strstr(r->out, "pending 1"));
    assert_non_null(strstr(r->out, "TopicA"));
    r = mqadmin("txStatus", "-n", E->ns, "--json", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "\"producerGroup\""));
    assert_non_null(strstr(r->out, "\"PG_admin_tx\""));
    rcmd_init_request(&req, REQ_END_TRANSACTION);
    rcmd_ext_add(&req, "producerGroup", "PG_admin_tx");
    rcmd_ext_add_i64(&req, "tranStateTableOffset", off);
    rcmd_ext_add_i64(&req, "commitLogOffset", phys);
    rcmd_ext_add(&req, "commitOrRollback", "12");
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    r = until("pending 0", "txStatus", "-b", E->baddr, NULL, NULL, NULL, NULL);
    assert_null(strstr(r->out, "PG_admin_tx"));
    r = mqadmin("txStatus", "-b", "127.0.0.1:1", NULL);
    assert_int_equal(r->status, 1);
    remoting_client_free(cli);
}

/* The replication views on a broker outside controller mode (no haSecret: no HA thread):
 * haStatus says master without HA, getBrokerEpoch an empty epoch list; the controller commands'
 * usage errors and an unreachable controller. The controller-mode behaviour is
 * tests/integration/ha_admin.test.js. */
static void test_ha_views(void **state)
{
    (void)state;
    struct test_run *r = mqadmin("haStatus", "-b", E->baddr, "--json", NULL);
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out), *h = cJSON_GetArrayItem(j, 0);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(h, "master")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(h, "haRunning")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(h, "controllerMode")));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(h, "brokerAddr")), E->baddr);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "haConnectionInfo")), 0);
    cJSON_Delete(j);
    r = mqadmin("haStatus", "-c", "AdminCluster", "-n", E->ns, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "#Broker\tbroker-a id 0 at "));
    assert_non_null(strstr(r->out, "#HA\tnot running (haSecret empty)"));
    assert_non_null(strstr(r->out, "#SlaveNum\t0"));
    r = mqadmin("getBrokerEpoch", "-b", "broker-a", "-n", E->ns, "--json", NULL);
    expect_ok(r);
    j = cJSON_Parse(r->out);
    h = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(h, "clusterName")),
                        "AdminCluster");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "epochList")), 0);
    assert_true(cJSON_GetObjectItem(h, "maxOffset")->valuedouble > 0);
    cJSON_Delete(j);
    r = mqadmin("getBrokerEpoch", "-b", "no-such-broker", "-n", E->ns, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "broker no-such-broker is not registered on the name server"));
    r = mqadmin("haStatus", "-c", "NoCluster", "-n", E->ns, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "cluster NoCluster not found"));
    r = mqadmin("haStatus", "-n", E->ns, NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "give exactly one of -b brokerAddr and -c cluster"));
    r = mqadmin("electMaster", "-a", "127.0.0.1:1", "-c", "C", "-b", "2", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "option -bn is required"));
    r = mqadmin("electMaster", "-a", "127.0.0.1:1", "-c", "C", "-bn", "s", "-b", "x", NULL);
    assert_int_equal(r->status, 2);
    r = mqadmin("getSyncStateSet", "-a", "127.0.0.1:1", "-b", "s", "-c", "C", NULL);
    assert_int_equal(r->status, 2);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", tb_free_port());
    r = mqadmin("getControllerMetaData", "-a", dead, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "mqadmin: getControllerMetaData: no controller answered among"));
    r = mqadmin("electMaster", "-a", dead, "-c", "C", "-bn", "s", "-b", "2", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "no controller leader answered among"));
    /* A broker is no controller: it does not know the code. */
    r = mqadmin("getControllerMetaData", "-a", E->baddr, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "REQUEST_CODE_NOT_SUPPORTED"));
}

/* brokerThroughput: the broker's totals move by what was sent; -s bounds the history; the
 * table has one row per broker of the cluster; a server without GET_BROKER_THROUGHPUT (the
 * name server) and a dead address are reported in the JSON array and the exit code. */
static void test_broker_throughput(void **state)
{
    (void)state;
    struct test_run *r = mqadmin("brokerThroughput", "-b", E->baddr, "--json", NULL);
    expect_ok(r);
    cJSON *j = cJSON_Parse(r->out), *t = cJSON_GetArrayItem(j, 0);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(t, "brokerName")), "broker-a");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(t, "brokerAddr")), E->baddr);
    double before = cJSON_GetObjectItem(t, "putTotal")->valuedouble;
    cJSON_Delete(j);

    struct ferry_send_result res;
    for (int i = 0; i < 3; i++)
        send_msg("TopicA", "tput", "throughput", &res);
    r = mqadmin("brokerThroughput", "-b", E->baddr, "-s", "5", "--json", NULL);
    expect_ok(r);
    j = cJSON_Parse(r->out);
    t = cJSON_GetArrayItem(j, 0);
    assert_true(cJSON_GetObjectItem(t, "putTotal")->valuedouble == before + 3);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(t, "put")) <= 5);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "put")),
                     cJSON_GetArraySize(cJSON_GetObjectItem(t, "get")));
    cJSON_Delete(j);

    r = mqadmin("brokerThroughput", "-c", "AdminCluster", "-n", E->ns, NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "#Broker"));
    assert_non_null(strstr(r->out, "#Put/s 600s"));
    char row[128];
    snprintf(row, sizeof row, "\nbroker-a             0    %-22s", E->baddr);
    assert_non_null(strstr(r->out, row));

    r = mqadmin("brokerThroughput", "-n", E->ns, NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "give exactly one of -b brokerAddr and -c cluster"));
    r = mqadmin("brokerThroughput", "-b", E->baddr, "-s", "0", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "-s must be a number of seconds, 1..600"));
    r = mqadmin("brokerThroughput", "-c", "NoCluster", "-n", E->ns, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "cluster NoCluster not found"));

    /* the name server does not know the request */
    r = mqadmin("brokerThroughput", "-b", E->ns, "--json", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "does not support GET_BROKER_THROUGHPUT (request 10102)"));
    j = cJSON_Parse(r->out);
    t = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(t, "brokerAddr")), E->ns);
    assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(t, "error")),
                           "does not support GET_BROKER_THROUGHPUT"));
    assert_null(cJSON_GetObjectItem(t, "put"));
    cJSON_Delete(j);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", tb_free_port());
    r = mqadmin("brokerThroughput", "-b", dead, NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, " no answer from 127.0.0.1:"));
    assert_non_null(strstr(r->err, "mqadmin: brokerThroughput: no answer from"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_missing_topic),
        cmocka_unit_test(test_cluster_list),
        cmocka_unit_test(test_topic_list_auto_created),
        cmocka_unit_test(test_update_route_status),
        cmocka_unit_test(test_query_messages),
        cmocka_unit_test(test_send_message),
        cmocka_unit_test(test_broker_status_and_consumers),
        cmocka_unit_test(test_consumer_progress),
        cmocka_unit_test(test_query_by_offset),
        cmocka_unit_test(test_reset_offset_offline),
        cmocka_unit_test(test_reset_offset_online),
        cmocka_unit_test(test_consume_message),
        cmocka_unit_test(test_update_sub_group),
        cmocka_unit_test(test_reset_offset_earliest_latest),
        cmocka_unit_test(test_dlq),
        cmocka_unit_test(test_tx_status),
        cmocka_unit_test(test_ha_views),
        cmocka_unit_test(test_broker_throughput),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
