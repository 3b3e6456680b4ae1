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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX (256 * 1024)

struct env {
    char nsdir[512];
    char ns[64];
    char baddr[64];
    namesrv_t *ns_h;
    struct tb b;
    ferry_producer_t *p;
};

static struct env *E;

struct run {
    int status; /* exit code, or -1 when killed */
    char out[OUT_MAX];
    char err[OUT_MAX];
};

static void slurp(int fd, char *buf)
{
    ssize_t n = pread(fd, buf, OUT_MAX - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

/* Run mqadmin with the NULL-ended arguments; stdout/stderr captured in @r. */
static struct run *mqadmin(const char *arg, ...)
{
    static struct run r;
    const char *bin = getenv("MQADMIN");
    const char *argv[32] = {"mqadmin"};
    char o[600], e[600];
    int n = 1, fo, fe, st;
    va_list ap;
    assert_non_null(bin);
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    snprintf(o, sizeof o, "%s/out", E->nsdir);
    snprintf(e, sizeof e, "%s/err", E->nsdir);
    fo = open(o, O_RDWR | O_CREAT | O_TRUNC, 0600);
    fe = open(e, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fo >= 0 && fe >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    slurp(fo, r.out);
    slurp(fe, r.err);
    return &r;
}

static void expect_ok(const struct run *r)
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
static struct run *until(const char *want, const char *a0, const char *a1, const char *a2,
                         const char *a3, const char *a4, const char *a5, const char *a6)
{
    struct run *r = NULL;
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
    struct run *r = mqadmin("topicRoute", "-n", E->ns, "-t", "TopicA", "-Z", NULL);
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
    struct run *r = mqadmin("topicRoute", "-n", E->ns, "-t", "NoSuchTopic", NULL);
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
    struct run *r = mqadmin("clusterList", "-n", E->ns, NULL);
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
    struct run *r = mqadmin("topicList", "--json", NULL);
    unsetenv("NAMESRV_ADDR");
    expect_ok(r);
    assert_non_null(strstr(r->out, "\"topicList\""));
    assert_non_null(strstr(r->out, "\"TopicA\""));
}

static void test_update_route_status(void **state)
{
    struct ferry_send_result res;
    struct run *r = mqadmin("updateTopic", "-n", E->ns, "-t", "AdminT", "-r", "3", "-w", "3", "-c",
                            "AdminCluster", NULL);
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
    struct run *r = mqadmin("queryMsgById", "-i", res.offset_msg_id, NULL);
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
    struct run *r = mqadmin("sendMessage", "-n", E->ns, "-t", "TopicA", "-p", "from-cli", "-k",
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
    struct run *r = mqadmin("brokerStatus", "-b", E->baddr, NULL);
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
    r = mqadmin("consumerConnection", "-n", E->ns, "-g", "CG_admin", "--json", NULL);
    expect_ok(r);
    assert_non_null(strstr(r->out, "127.0.0.1@cli-1"));
    remoting_client_free(cli);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
