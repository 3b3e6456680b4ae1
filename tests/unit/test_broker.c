/* The broker's request processors over real sockets: an in-process broker on a free loopback
 * port, driven by ferry_remoting's client with requests built as the Java / ali-ons clients
 * build them (REMOTING.md §2.4). Every wait is on a condition with a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct tb g; /* the shared broker of the default group */

/* ---- async results and server-initiated requests -------------------------------------- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int status;
    struct rcmd *resp;
    int notifies;
    char last_group[128];
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void waiter_close(struct waiter *w)
{
    rcmd_free(w->resp);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
}

static void on_async(int status, const struct rcmd *resp, void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->resp = resp ? rcmd_dup(resp) : NULL;
    w->done = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Wait until @w->done (or @what >= @n when @what is set). 1 when it happened in time. */
static int wait_until(struct waiter *w, const int *what, int n, int ms)
{
    struct timespec dl = clock_deadline_ts((int64_t)ms * test_time_mult());
    pthread_mutex_lock(&w->mu);
    while (what ? *what < n : !w->done)
        if (pthread_cond_timedwait(&w->cond, &w->mu, &dl) == ETIMEDOUT)
            break;
    int ok = what ? *what >= n : w->done;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static void on_notify(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct waiter *w = arg;
    const struct rstr *grp = rcmd_ext_get(req, "consumerGroup");
    pthread_mutex_lock(&w->mu);
    w->notifies++;
    snprintf(w->last_group, sizeof w->last_group, "%.*s", grp ? (int)grp->len : 0,
             grp ? grp->p : "");
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    (void)conn;
}

/* ---- setup ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    tb_init(&g, "broker");
    tb_start(&g);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tb_cleanup(&g);
    return 0;
}

static void heartbeat_v(remoting_client_t *cli, const char *client_id, const char *group,
                        const char *topic, const char *sub, long long sub_version)
{
    char body[2048];
    struct rcmd req;
    snprintf(body, sizeof body,
             "{\"clientID\":\"%s\",\"consumerDataSet\":[{\"groupName\":\"%s\",\"consumeType\":"
             "\"CONSUME_PASSIVELY\",\"messageModel\":\"CLUSTERING\",\"consumeFromWhere\":"
             "\"CONSUME_FROM_FIRST_OFFSET\",\"subscriptionDataSet\":[{\"topic\":\"%s\","
             "\"subString\":\"%s\",\"tagsSet\":[],\"codeSet\":[],\"subVersion\":%lld}],"
             "\"unitMode\":false}],\"producerDataSet\":[{\"groupName\":\"PID_hb\"}]}",
             client_id, group, topic, sub, sub_version);
    rcmd_init_request(&req, REQ_HEART_BEAT);
    req.version = 121;
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
}

static void heartbeat(remoting_client_t *cli, const char *client_id, const char *group,
                      const char *topic, const char *sub)
{
    static long long sub_version = 1700000000000LL; /* Java: the time of subscribe() */
    heartbeat_v(cli, client_id, group, topic, sub, ++sub_version);
}

/* ---- send and pull -------------------------------------------------------------------- */

static void test_send_v2_pull_with_tags(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicA", 4), RESP_SUCCESS);

    const char *tags[3] = {"TagA", "TagB", "TagA"};
    for (int i = 0; i < 3; i++) {
        char body[32];
        snprintf(body, sizeof body, "hello %d", i);
        struct rcmd *r = tb_send(cli, "TopicA", 0, tags[i], "order-1", body);
        assert_int_equal(tb_ext_i64(r, "queueId"), 0);
        assert_int_equal(tb_ext_i64(r, "queueOffset"), i);
        assert_string_equal(tb_ext(r, "MSG_REGION"), "DefaultRegion");
        assert_string_equal(tb_ext(r, "TRACE_ON"), "true");
        char ip[64];
        int port;
        int64_t phys;
        assert_int_equal(tb_msgid_decode(tb_ext(r, "msgId"), ip, sizeof ip, &port, &phys), 0);
        assert_string_equal(ip, "127.0.0.1");
        assert_int_equal(port, g.port);
        assert_true(phys >= 0);
        rcmd_free(r);
    }
    tb_wait_dispatched(&g);

    struct rcmd req, *resp;
    struct tb_rec recs[8];
    /* TagA only: 2 of the 3 records, and nextBeginOffset past everything scanned. */
    tb_pull_req(&req, "GID_A", "TopicA", 0, 0, 32, "TagA || TagC", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 3);
    assert_int_equal(tb_ext_i64(resp, "minOffset"), 0);
    assert_int_equal(tb_ext_i64(resp, "maxOffset"), 3);
    assert_int_equal(tb_ext_i64(resp, "suggestWhichBrokerId"), 0);
    assert_int_equal(tb_records(resp, recs, 8), 2);
    assert_string_equal(recs[0].body, "hello 0");
    assert_string_equal(recs[1].body, "hello 2");
    assert_string_equal(recs[0].tags, "TagA");
    assert_string_equal(recs[0].topic, "TopicA");
    assert_int_equal(recs[1].v.queue_offset, 2);
    assert_string_equal(tb_prop(&recs[0], "KEYS"), "order-1");
    assert_string_equal(tb_prop(&recs[0], "CLUSTER"), "DefaultCluster");
    assert_string_equal(tb_prop(&recs[0], "WAIT"), ""); /* dropped as 4.9.8 does */
    assert_int_equal(recs[0].v.born_ts, 1700000000123LL);
    rcmd_free(resp);

    /* Everything with "*". */
    tb_pull_req(&req, "GID_A", "TopicA", 0, 0, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_records(resp, recs, 8), 3);
    assert_string_equal(recs[1].tags, "TagB");
    rcmd_free(resp);

    /* maxMsgNums is honoured. */
    tb_pull_req(&req, "GID_A", "TopicA", 0, 1, 1, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(tb_records(resp, recs, 8), 1);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 2);
    rcmd_free(resp);

    /* No match: PULL_RETRY_IMMEDIATELY with the offset moved past what was scanned. */
    tb_pull_req(&req, "GID_A", "TopicA", 0, 0, 32, "TagZ", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_PULL_RETRY_IMMEDIATELY);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 3);
    assert_string_equal(tb_remark(resp), "NO_MATCHED_MESSAGE");
    rcmd_free(resp);

    /* Caught up (no suspend): PULL_NOT_FOUND at the same offset. */
    tb_pull_req(&req, "GID_A", "TopicA", 0, 3, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_PULL_NOT_FOUND);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 3);
    rcmd_free(resp);

    /* Past the end: PULL_OFFSET_MOVED to the max offset. */
    tb_pull_req(&req, "GID_A", "TopicA", 0, 10, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_PULL_OFFSET_MOVED);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 3);
    rcmd_free(resp);

    /* An empty queue: NOT_FOUND at 0, OFFSET_MOVED (to 0) elsewhere. */
    tb_pull_req(&req, "GID_A", "TopicA", 1, 0, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_PULL_NOT_FOUND);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 0);
    rcmd_free(resp);
    tb_pull_req(&req, "GID_A", "TopicA", 1, 5, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_PULL_OFFSET_MOVED);
    assert_int_equal(tb_ext_i64(resp, "nextBeginOffset"), 0);
    rcmd_free(resp);

    /* Queue id out of range; unknown topic. */
    tb_pull_req(&req, "GID_A", "TopicA", 4, 0, 32, "*", 0, 0);
    assert_int_equal(tb_call_code(cli, &req), RESP_SYSTEM_ERROR);
    tb_pull_req(&req, "GID_A", "NoSuchTopic", 0, 0, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_TOPIC_NOT_EXIST);
    assert_non_null(strstr(tb_remark(resp), "NoSuchTopic"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

static void test_send_v1(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicV1", 1), RESP_SUCCESS);
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_SEND_MESSAGE);
    rcmd_ext_add(&req, "producerGroup", "PID_v1");
    rcmd_ext_add(&req, "topic", "TopicV1");
    rcmd_ext_add(&req, "defaultTopic", "TBW102");
    rcmd_ext_add(&req, "defaultTopicQueueNums", "4");
    rcmd_ext_add(&req, "queueId", "-1"); /* the broker picks */
    rcmd_ext_add(&req, "sysFlag", "0");
    rcmd_ext_add(&req, "bornTimestamp", "1700000000000");
    rcmd_ext_add(&req, "flag", "7");
    rcmd_ext_add(&req, "properties", "TAGS\001v1\002");
    rcmd_ext_add(&req, "reconsumeTimes", "0");
    rcmd_ext_add(&req, "unitMode", "false");
    req.body = (const uint8_t *)"v1 body";
    req.body_len = 7;
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_ext_i64(resp, "queueId"), 0);
    rcmd_free(resp);
    tb_wait_dispatched(&g);

    struct tb_rec recs[2];
    tb_pull_req(&req, "GID_v1", "TopicV1", 0, 0, 32, "v1", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_records(resp, recs, 2), 1);
    assert_string_equal(recs[0].body, "v1 body");
    assert_int_equal(recs[0].v.flag, 7);
    rcmd_free(resp);
    remoting_client_free(cli);
}

static size_t batch_entry(uint8_t *p, const char *body, const char *props)
{
    size_t bl = strlen(body), pl = strlen(props), total = 22 + bl + pl;
    be32_put(p, (uint32_t)total);
    be32_put(p + 4, 0);
    be32_put(p + 8, 0);
    be32_put(p + 12, 3);
    be32_put(p + 16, (uint32_t)bl);
    memcpy(p + 20, body, bl);
    be16_put(p + 20 + bl, (uint16_t)pl);
    memcpy(p + 22 + bl, props, pl);
    return total;
}

static void test_send_batch(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicBatch", 2), RESP_SUCCESS);
    uint8_t body[1024];
    size_t n = 0;
    n += batch_entry(body + n, "b0", "TAGS\001x\002UNIQ_KEY\001U0");
    n += batch_entry(body + n, "b1", "");
    n += batch_entry(body + n, "b2", "TAGS\001y\002");
    struct rcmd req, *resp;
    tb_send_req(&req, "TopicBatch", 1, "WAIT\001true", body, n);
    req.code = REQ_SEND_BATCH_MESSAGE;
    rcmd_ext_add(&req, "m", "true");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_ext_i64(resp, "queueOffset"), 0);
    const char *ids = tb_ext(resp, "msgId");
    assert_int_equal(strlen(ids), 3 * 32 + 2);
    assert_true(ids[32] == ',' && ids[65] == ',');
    rcmd_free(resp);
    tb_wait_dispatched(&g);

    struct tb_rec recs[4];
    tb_pull_req(&req, "GID_batch", "TopicBatch", 1, 0, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(tb_records(resp, recs, 4), 3);
    assert_string_equal(recs[0].body, "b0");
    assert_string_equal(recs[2].body, "b2");
    assert_string_equal(recs[0].tags, "x");
    assert_string_equal(recs[2].tags, "y");
    assert_string_equal(tb_prop(&recs[0], "UNIQ_KEY"), "U0");
    assert_string_equal(tb_prop(&recs[1], "WAIT"), "true"); /* batch-level properties */
    assert_string_equal(tb_prop(&recs[1], "CLUSTER"), "DefaultCluster");
    assert_int_equal(recs[2].v.queue_offset, 2);
    assert_int_equal(recs[1].v.flag, 3);
    rcmd_free(resp);

    /* A truncated batch body is refused with a readable remark. */
    tb_send_req(&req, "TopicBatch", 1, NULL, body, 30);
    req.code = REQ_SEND_BATCH_MESSAGE;
    rcmd_ext_add(&req, "m", "true");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_MESSAGE_ILLEGAL);
    assert_non_null(strstr(tb_remark(resp), "batch"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

/* ---- long polling --------------------------------------------------------------------- */

static void test_long_poll_woken_by_send(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicLP", 1), RESP_SUCCESS);
    struct waiter w;
    waiter_init(&w);
    struct rcmd req;
    tb_pull_req(&req, "GID_lp", "TopicLP", 0, 0, 32, "*", 1, 20000);
    int64_t t0 = clock_mono_ms();
    assert_int_equal(remoting_client_invoke_async(cli, &req, 30000, on_async, &w), 0);
    /* The send goes on the same connection, so the broker has parked the pull before it
     * handles the send: the pull can only be answered with the message. */
    struct rcmd *sr = tb_send(cli, "TopicLP", 0, "t", NULL, "wake up");
    rcmd_free(sr);
    assert_true(wait_until(&w, NULL, 0, 10000));
    assert_int_equal(w.status, 0);
    assert_int_equal(w.resp->code, RESP_SUCCESS);
    struct tb_rec recs[2];
    assert_int_equal(tb_records(w.resp, recs, 2), 1);
    assert_string_equal(recs[0].body, "wake up");
    assert_true(clock_mono_ms() - t0 < 10000 * test_time_mult());
    waiter_close(&w);

    /* Parked with a tag filter, woken by a message that does not match: answered with
     * PULL_RETRY_IMMEDIATELY and the offset moved past it (as Java's hold check does). */
    waiter_init(&w);
    tb_pull_req(&req, "GID_lp", "TopicLP", 0, 1, 32, "only-this", 1, 20000);
    assert_int_equal(remoting_client_invoke_async(cli, &req, 30000, on_async, &w), 0);
    sr = tb_send(cli, "TopicLP", 0, "other", NULL, "not for you");
    rcmd_free(sr);
    assert_true(wait_until(&w, NULL, 0, 10000));
    assert_int_equal(w.resp->code, RESP_PULL_RETRY_IMMEDIATELY);
    assert_int_equal(tb_ext_i64(w.resp, "nextBeginOffset"), 2);
    waiter_close(&w);
    remoting_client_free(cli);
}

static void test_long_poll_times_out(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicLP2", 1), RESP_SUCCESS);
    struct waiter w;
    waiter_init(&w);
    struct rcmd req;
    tb_pull_req(&req, "GID_lp2", "TopicLP2", 0, 0, 32, "*", 1, 300);
    int64_t t0 = clock_mono_ms();
    assert_int_equal(remoting_client_invoke_async(cli, &req, 30000, on_async, &w), 0);
    assert_true(wait_until(&w, NULL, 0, 10000));
    int64_t held = clock_mono_ms() - t0;
    assert_int_equal(w.status, 0);
    assert_int_equal(w.resp->code, RESP_PULL_NOT_FOUND);
    assert_int_equal(tb_ext_i64(w.resp, "nextBeginOffset"), 0);
    assert_true(held >= 290);
    waiter_close(&w);

    /* Without the suspend flag the answer is immediate. */
    tb_pull_req(&req, "GID_lp2", "TopicLP2", 0, 0, 32, "*", 0, 20000);
    assert_int_equal(tb_call_code(cli, &req), RESP_PULL_NOT_FOUND);
    remoting_client_free(cli);
}

/* ---- offsets -------------------------------------------------------------------------- */

static int64_t query_offset(remoting_client_t *cli, const char *group, const char *topic, int q,
                            int32_t *code)
{
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_QUERY_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", q);
    resp = tb_call(cli, &req);
    *code = resp->code;
    int64_t off = resp->code == RESP_SUCCESS ? tb_ext_i64(resp, "offset") : -1;
    rcmd_free(resp);
    return off;
}

static void update_offset(remoting_client_t *cli, const char *group, const char *topic, int q,
                          int64_t off, int oneway)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", q);
    rcmd_ext_add_i64(&req, "commitOffset", off);
    if (oneway)
        assert_int_equal(remoting_client_invoke_oneway(cli, &req), 0);
    else
        assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
}

static void test_offsets_commit_query(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    int32_t code;
    assert_int_equal(tb_create_topic(cli, "TopicOff", 2), RESP_SUCCESS);
    /* Nothing committed, young/empty queue: 4.9.8 answers offset 0. */
    assert_int_equal(query_offset(cli, "GID_off", "TopicOff", 0, &code), 0);
    assert_int_equal(code, RESP_SUCCESS);
    update_offset(cli, "GID_off", "TopicOff", 0, 17, 0);
    assert_int_equal(query_offset(cli, "GID_off", "TopicOff", 0, &code), 17);
    /* ali-ons sends -1 for "unknown": ignored. */
    update_offset(cli, "GID_off", "TopicOff", 0, -1, 0);
    assert_int_equal(query_offset(cli, "GID_off", "TopicOff", 0, &code), 17);
    /* A oneway commit is applied and not answered. */
    update_offset(cli, "GID_off", "TopicOff", 1, 9, 1);
    int64_t end = clock_mono_ms() + 5000 * test_time_mult();
    while (query_offset(cli, "GID_off", "TopicOff", 1, &code) != 9 && clock_mono_ms() < end)
        ;
    assert_int_equal(query_offset(cli, "GID_off", "TopicOff", 1, &code), 9);

    /* The commit piggy-backed on a pull (sysFlag bit 0). */
    struct rcmd req;
    tb_pull_req(&req, "GID_off", "TopicOff", 0, 0, 32, "*", 0, 0);
    rcmd_ext_add(&req, "sysFlag", "5");
    rcmd_ext_add(&req, "commitOffset", "23");
    assert_int_equal(tb_call_code(cli, &req), RESP_PULL_NOT_FOUND);
    assert_int_equal(query_offset(cli, "GID_off", "TopicOff", 0, &code), 23);

    /* Missing and bad fields get a clear SYSTEM_ERROR. */
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", "GID_off");
    rcmd_ext_add(&req, "topic", "TopicOff");
    rcmd_ext_add(&req, "queueId", "zero");
    rcmd_ext_add(&req, "commitOffset", "1");
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "queueId"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

static void test_queue_offsets_and_times(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicTime", 1), RESP_SUCCESS);
    int64_t store_ts[3];
    for (int i = 0; i < 3; i++) {
        /* Distinct store times: wait (on the clock) until it moved on. */
        int64_t until = clock_wall_ms() + 5;
        while (clock_wall_ms() < until)
            ;
        struct rcmd *r = tb_send(cli, "TopicTime", 0, NULL, NULL, "tick");
        rcmd_free(r);
    }
    tb_wait_dispatched(&g);
    struct rcmd req, *resp;
    struct tb_rec recs[4];
    tb_pull_req(&req, "GID_t", "TopicTime", 0, 0, 32, "*", 0, 0);
    resp = tb_call(cli, &req);
    assert_int_equal(tb_records(resp, recs, 4), 3);
    for (int i = 0; i < 3; i++)
        store_ts[i] = recs[i].v.store_ts;
    rcmd_free(resp);
    assert_true(store_ts[0] < store_ts[1] && store_ts[1] < store_ts[2]);

    const int32_t codes[] = {REQ_GET_MAX_OFFSET, REQ_GET_MIN_OFFSET};
    const int64_t want[] = {3, 0};
    for (int i = 0; i < 2; i++) {
        rcmd_init_request(&req, codes[i]);
        rcmd_ext_add(&req, "topic", "TopicTime");
        rcmd_ext_add(&req, "queueId", "0");
        resp = tb_call(cli, &req);
        assert_int_equal(resp->code, RESP_SUCCESS);
        assert_int_equal(tb_ext_i64(resp, "offset"), want[i]);
        rcmd_free(resp);
    }
    rcmd_init_request(&req, REQ_GET_EARLIEST_MSG_STORETIME);
    rcmd_ext_add(&req, "topic", "TopicTime");
    rcmd_ext_add(&req, "queueId", "0");
    resp = tb_call(cli, &req);
    assert_int_equal(tb_ext_i64(resp, "timestamp"), store_ts[0]);
    rcmd_free(resp);

    /* Search by time: nearest store time; before all -> first; after all -> last. */
    const int64_t ts[] = {store_ts[0] - 100000, store_ts[1], store_ts[2] + 100000, store_ts[1] + 1};
    const int64_t off[] = {0, 1, 2, 1};
    for (int i = 0; i < 4; i++) {
        rcmd_init_request(&req, REQ_SEARCH_OFFSET_BY_TIMESTAMP);
        rcmd_ext_add(&req, "topic", "TopicTime");
        rcmd_ext_add(&req, "queueId", "0");
        rcmd_ext_add_i64(&req, "timestamp", ts[i]);
        resp = tb_call(cli, &req);
        assert_int_equal(resp->code, RESP_SUCCESS);
        assert_int_equal(tb_ext_i64(resp, "offset"), off[i]);
        rcmd_free(resp);
    }
    /* Unknown queue: 0 / 0 / -1. */
    rcmd_init_request(&req, REQ_GET_MAX_OFFSET);
    rcmd_ext_add(&req, "topic", "NoSuchTopic");
    rcmd_ext_add(&req, "queueId", "3");
    resp = tb_call(cli, &req);
    assert_int_equal(tb_ext_i64(resp, "offset"), 0);
    rcmd_free(resp);
    remoting_client_free(cli);
}

/* ---- view by id, query by key ---------------------------------------------------------- */

static void test_view_by_id_and_query_by_key(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    assert_int_equal(tb_create_topic(cli, "TopicKey", 1), RESP_SUCCESS);
    struct rcmd *sr = tb_send(cli, "TopicKey", 0, "k", "alpha beta", "find me");
    char ip[64];
    int port;
    int64_t phys;
    assert_int_equal(tb_msgid_decode(tb_ext(sr, "msgId"), ip, sizeof ip, &port, &phys), 0);
    rcmd_free(sr);

    struct rcmd req, *resp;
    struct tb_rec recs[4];
    rcmd_init_request(&req, REQ_VIEW_MESSAGE_BY_ID);
    rcmd_ext_add_i64(&req, "offset", phys);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_records(resp, recs, 4), 1);
    assert_string_equal(recs[0].body, "find me");
    assert_int_equal(recs[0].v.phys_offset, phys);
    rcmd_free(resp);

    rcmd_init_request(&req, REQ_VIEW_MESSAGE_BY_ID);
    rcmd_ext_add_i64(&req, "offset", phys + 1);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "can not find message by the offset"));
    rcmd_free(resp);

    /* The index is built by the store's dispatch thread: look until it is there. */
    int found = 0;
    int64_t end = clock_mono_ms() + 10000 * test_time_mult();
    while (!found && clock_mono_ms() < end) {
        rcmd_init_request(&req, REQ_QUERY_MESSAGE);
        rcmd_ext_add(&req, "topic", "TopicKey");
        rcmd_ext_add(&req, "key", "beta");
        rcmd_ext_add(&req, "maxNum", "32");
        rcmd_ext_add(&req, "beginTimestamp", "0");
        rcmd_ext_add(&req, "endTimestamp", "9223372036854775807");
        resp = tb_call(cli, &req);
        if (resp->code == RESP_SUCCESS) {
            found = 1;
            assert_int_equal(tb_records(resp, recs, 4), 1);
            assert_string_equal(recs[0].body, "find me");
            assert_non_null(tb_ext(resp, "indexLastUpdatePhyoffset"));
        } else {
            assert_int_equal(resp->code, RESP_QUERY_NOT_FOUND);
        }
        rcmd_free(resp);
    }
    assert_true(found);
    rcmd_init_request(&req, REQ_QUERY_MESSAGE);
    rcmd_ext_add(&req, "topic", "TopicKey");
    rcmd_ext_add(&req, "key", "gamma");
    rcmd_ext_add(&req, "maxNum", "32");
    rcmd_ext_add(&req, "beginTimestamp", "0");
    rcmd_ext_add(&req, "endTimestamp", "9223372036854775807");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_QUERY_NOT_FOUND);
    assert_non_null(strstr(tb_remark(resp), "can not find message"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

/* ---- topics --------------------------------------------------------------------------- */

static void test_auto_create_and_topic_admin(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    /* A send to an unknown topic creates it from TBW102 with min(4, 8) queues, perm 6. */
    struct rcmd *r = tb_send(cli, "AutoTopic", -1, NULL, NULL, "auto");
    int64_t qid = tb_ext_i64(r, "queueId");
    assert_true(qid >= 0 && qid < 4);
    rcmd_free(r);
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    const char *body = tb_body(resp);
    assert_non_null(strstr(body, "\"dataVersion\""));
    const char *at = strstr(body, "\"AutoTopic\":{");
    assert_non_null(at);
    assert_non_null(strstr(at, "\"perm\":6,\"readQueueNums\":4"));
    assert_non_null(strstr(body, "\"TBW102\":{\"order\":false,\"perm\":7,\"readQueueNums\":8"));
    for (const char *t = "SELF_TEST_TOPIC\0BenchmarkTest\0DefaultCluster\0broker-t\0OFFSET_"
                         "MOVED_EVENT\0SCHEDULE_TOPIC_XXXX\0DefaultCluster_REPLY_TOPIC\0";
         *t; t += strlen(t) + 1) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":{", t);
        assert_non_null(strstr(body, key));
    }
    rcmd_free(resp);

    /* Stats: MessageQueue objects as map keys, as fastjson writes them. */
    rcmd_init_request(&req, REQ_GET_TOPIC_STATS_INFO);
    rcmd_ext_add(&req, "topic", "AutoTopic");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    char key[160];
    snprintf(key, sizeof key,
             "{\"brokerName\":\"broker-t\",\"queueId\":%d,\"topic\":\"AutoTopic\"}:{"
             "\"lastUpdateTimestamp\":",
             (int)qid);
    assert_non_null(strstr(tb_body(resp), key));
    rcmd_free(resp);
    rcmd_init_request(&req, REQ_GET_TOPIC_STATS_INFO);
    rcmd_ext_add(&req, "topic", "NoSuchTopic");
    assert_int_equal(tb_call_code(cli, &req), RESP_TOPIC_NOT_EXIST);

    /* Delete: gone from the table; system topics cannot be deleted. */
    rcmd_init_request(&req, REQ_DELETE_TOPIC_IN_BROKER);
    rcmd_ext_add(&req, "topic", "AutoTopic");
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    resp = tb_call(cli, &req);
    assert_null(strstr(tb_body(resp), "\"AutoTopic\""));
    rcmd_free(resp);
    rcmd_init_request(&req, REQ_DELETE_TOPIC_IN_BROKER);
    rcmd_ext_add(&req, "topic", "TBW102");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "conflict with system topic"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

static void test_bad_topic_names(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    struct rcmd req, *resp;
    char long_name[200];
    memset(long_name, 'x', 128);
    long_name[128] = 0;
    struct {
        const char *topic;
        int32_t code;
        const char *remark;
    } cases[] = {
        {"bad topic", RESP_SYSTEM_ERROR, "illegal characters"},
        {"bad.topic", RESP_SYSTEM_ERROR, "illegal characters"},
        {long_name, RESP_SYSTEM_ERROR, "longer than topic max length"},
        {"SCHEDULE_TOPIC_XXXX", RESP_NO_PERMISSION, "forbidden"},
        {"RMQ_SYS_TRANS_HALF_TOPIC", RESP_NO_PERMISSION, "forbidden"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tb_send_req(&req, cases[i].topic, 0, "TAGS\001a", "x", 1);
        resp = tb_call(cli, &req);
        assert_int_equal(resp->code, cases[i].code);
        assert_non_null(strstr(tb_remark(resp), cases[i].remark));
        assert_string_equal(tb_ext(resp, "MSG_REGION"), "DefaultRegion");
        rcmd_free(resp);
    }
    /* Topic creation: the same name rules, and no system topic names. */
    assert_int_equal(tb_create_topic(cli, "bad topic", 1), RESP_SYSTEM_ERROR);
    assert_int_equal(tb_create_topic(cli, "TBW102", 1), RESP_SYSTEM_ERROR);
    assert_int_equal(tb_create_topic(cli, "rmq_sys_mine", 1), RESP_SYSTEM_ERROR);
    assert_int_equal(tb_create_topic(cli, "broker-t", 1), RESP_SYSTEM_ERROR);
    remoting_client_free(cli);
}

static void test_unknown_code_and_bad_requests(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    struct rcmd req, *resp;
    rcmd_init_request(&req, 9999);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_REQUEST_CODE_NOT_SUPPORTED);
    assert_non_null(strstr(tb_remark(resp), "9999"));
    rcmd_free(resp);

    /* A send without its topic field, or with a non-numeric queue id. */
    tb_send_req(&req, "TopicA", 0, NULL, "x", 1);
    req.ext_n = 0;
    rcmd_ext_add(&req, "a", "PID");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "<b>"));
    rcmd_free(resp);
    tb_send_req(&req, "TopicA", 0, NULL, "x", 1);
    rcmd_ext_add(&req, "e", "first");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "<e>"));
    rcmd_free(resp);

    /* Pull without a group; heartbeat and lock bodies that are not JSON. */
    tb_pull_req(&req, "G", "TopicA", 0, 0, 32, "*", 0, 0);
    rcmd_ext_add(&req, "consumerGroup", "");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "consumerGroup"));
    rcmd_free(resp);
    const int32_t codes[] = {REQ_HEART_BEAT, REQ_LOCK_BATCH_MQ, REQ_UNLOCK_BATCH_MQ,
                             REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        rcmd_init_request(&req, codes[i]);
        req.body = (const uint8_t *)"{not json";
        req.body_len = 9;
        resp = tb_call(cli, &req);
        assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
        assert_true(resp->remark.len > 10);
        rcmd_free(resp);
    }
    /* A prepared transaction sysFlag without TRAN_MSG is refused clearly (test_broker_tx has
     * the transactions themselves). */
    tb_send_req(&req, "TopicA", 0, "PGROUP\001P", "x", 1);
    rcmd_ext_add(&req, "f", "4");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_MESSAGE_ILLEGAL);
    assert_non_null(strstr(tb_remark(resp), "TRAN_MSG"));
    rcmd_free(resp);
    /* send-back of an offset with no message: a clear error (test_broker_schedule has the rest) */
    rcmd_init_request(&req, REQ_CONSUMER_SEND_MSG_BACK);
    rcmd_ext_add(&req, "offset", "1099511627776");
    rcmd_ext_add(&req, "group", "G");
    rcmd_ext_add(&req, "delayLevel", "0");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_non_null(strstr(tb_remark(resp), "look message by offset failed"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

/* ---- clients -------------------------------------------------------------------------- */

static const char *consumer_list(remoting_client_t *cli, const char *group, int32_t *code)
{
    struct rcmd req, *resp;
    static char out[1024];
    rcmd_init_request(&req, REQ_GET_CONSUMER_LIST_BY_GROUP);
    rcmd_ext_add(&req, "consumerGroup", group);
    resp = tb_call(cli, &req);
    *code = resp->code;
    snprintf(out, sizeof out, "%s", resp->code == RESP_SUCCESS ? tb_body(resp) : tb_remark(resp));
    rcmd_free(resp);
    return out;
}

static void test_heartbeat_consumer_list_notify(void **state)
{
    (void)state;
    struct waiter wa, wb;
    int32_t code;
    waiter_init(&wa);
    waiter_init(&wb);
    remoting_client_t *a = tb_client_h(g.port, REQ_NOTIFY_CONSUMER_IDS_CHANGED, on_notify, &wa);
    remoting_client_t *b2 = tb_client_h(g.port, REQ_NOTIFY_CONSUMER_IDS_CHANGED, on_notify, &wb);
    remoting_client_t *admin = tb_client(g.port);
    assert_int_equal(tb_create_topic(admin, "TopicHB", 2), RESP_SUCCESS);

    heartbeat_v(a, "10.0.0.1@1", "GID_hb", "TopicHB", "*", 1600000000000LL);
    assert_true(wait_until(&wa, &wa.notifies, 1, 5000)); /* its own arrival changes the group */
    /* The periodic heartbeat repeats itself: nothing changes. */
    heartbeat_v(a, "10.0.0.1@1", "GID_hb", "TopicHB", "*", 1600000000000LL);
    heartbeat_v(a, "10.0.0.1@1", "GID_hb", "TopicHB", "*", 1600000000000LL);
    assert_string_equal(wa.last_group, "GID_hb");
    assert_string_equal(consumer_list(admin, "GID_hb", &code),
                        "{\"consumerIdList\":[\"10.0.0.1@1\"]}");
    assert_int_equal(code, RESP_SUCCESS);

    /* The retry topic exists now. */
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    resp = tb_call(admin, &req);
    assert_non_null(strstr(tb_body(resp), "\"%RETRY%GID_hb\":{\"order\":false,\"perm\":6,"
                                          "\"readQueueNums\":1"));
    rcmd_free(resp);

    /* A second member: both are told. A repeated heartbeat changes nothing. */
    heartbeat(b2, "10.0.0.2@2", "GID_hb", "TopicHB", "TagA || TagB");
    assert_true(wait_until(&wa, &wa.notifies, 2, 5000));
    assert_true(wait_until(&wb, &wb.notifies, 1, 5000));
    const char *list = consumer_list(admin, "GID_hb", &code);
    assert_non_null(strstr(list, "\"10.0.0.1@1\""));
    assert_non_null(strstr(list, "\"10.0.0.2@2\""));

    /* The connection list shows both, with the subscription. */
    rcmd_init_request(&req, REQ_GET_CONSUMER_CONNECTION_LIST);
    rcmd_ext_add(&req, "consumerGroup", "GID_hb");
    resp = tb_call(admin, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    const char *body = tb_body(resp);
    assert_non_null(strstr(body, "\"clientId\":\"10.0.0.2@2\""));
    assert_non_null(strstr(body, "\"consumeType\":\"CONSUME_PASSIVELY\""));
    assert_non_null(strstr(body, "\"messageModel\":\"CLUSTERING\""));
    assert_non_null(strstr(body, "\"tagsSet\":[\"TagA\",\"TagB\"]"));
    assert_non_null(strstr(body, "\"codeSet\":[2598919,2598920]"));
    rcmd_free(resp);
    rcmd_init_request(&req, REQ_GET_CONSUMER_CONNECTION_LIST);
    rcmd_ext_add(&req, "consumerGroup", "GID_nobody");
    assert_int_equal(tb_call_code(admin, &req), RESP_CONSUMER_NOT_ONLINE);

    /* A pull without the subscription flag uses the heartbeat's subscription. */
    struct rcmd *sr = tb_send(admin, "TopicHB", 0, "TagB", NULL, "for b");
    rcmd_free(sr);
    sr = tb_send(admin, "TopicHB", 0, "TagC", NULL, "for nobody");
    rcmd_free(sr);
    tb_wait_dispatched(&g);
    struct tb_rec recs[4];
    tb_pull_req(&req, "GID_hb", "TopicHB", 0, 0, 32, NULL, 0, 0);
    resp = tb_call(b2, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_records(resp, recs, 4), 1);
    assert_string_equal(recs[0].body, "for b");
    rcmd_free(resp);
    tb_pull_req(&req, "GID_unknown", "TopicHB", 0, 0, 32, NULL, 0, 0);
    assert_int_equal(tb_call_code(b2, &req), RESP_SUBSCRIPTION_NOT_EXIST);

    /* The second member's connection closes: the first is told, the list shrinks. */
    remoting_client_free(b2);
    assert_true(wait_until(&wa, &wa.notifies, 3, 5000));
    int64_t end = clock_mono_ms() + 5000 * test_time_mult();
    while (strstr(consumer_list(admin, "GID_hb", &code), "10.0.0.2@2") && clock_mono_ms() < end)
        ;
    assert_string_equal(consumer_list(admin, "GID_hb", &code),
                        "{\"consumerIdList\":[\"10.0.0.1@1\"]}");

    /* Unregister: the group is empty. */
    rcmd_init_request(&req, REQ_UNREGISTER_CLIENT);
    rcmd_ext_add(&req, "clientID", "10.0.0.1@1");
    rcmd_ext_add(&req, "consumerGroup", "GID_hb");
    rcmd_ext_add(&req, "producerGroup", "PID_hb");
    assert_int_equal(tb_call_code(a, &req), RESP_SUCCESS);
    list = consumer_list(admin, "GID_hb", &code);
    assert_int_equal(code, RESP_SYSTEM_ERROR);
    assert_string_equal(list, "no consumer for this group, GID_hb");

    remoting_client_free(a);
    remoting_client_free(admin);
    waiter_close(&wa);
    waiter_close(&wb);
}

static void test_lock_unlock_batch(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    struct rcmd req, *resp;
    char body[512];
    const char *mq = "{\"topic\":\"TopicL\",\"brokerName\":\"broker-t\",\"queueId\":%d}";
    char q[3][96];
    for (int i = 0; i < 3; i++)
        snprintf(q[i], sizeof q[i], mq, i);

    snprintf(body, sizeof body, "{\"consumerGroup\":\"GL\",\"clientId\":\"X\",\"mqSet\":[%s,%s]}",
             q[0], q[1]);
    rcmd_init_request(&req, REQ_LOCK_BATCH_MQ);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_non_null(strstr(tb_body(resp), "\"queueId\":0"));
    assert_non_null(strstr(tb_body(resp), "\"queueId\":1"));
    rcmd_free(resp);

    char body2[512];
    snprintf(body2, sizeof body2, "{\"consumerGroup\":\"GL\",\"clientId\":\"Y\",\"mqSet\":[%s,%s]}",
             q[1], q[2]);
    req.body = (const uint8_t *)body2;
    req.body_len = strlen(body2);
    resp = tb_call(cli, &req);
    assert_string_equal(tb_body(resp), "{\"lockOKMQSet\":[{\"brokerName\":\"broker-t\","
                                       "\"queueId\":2,\"topic\":\"TopicL\"}]}");
    rcmd_free(resp);

    /* X unlocks queue 1 (Y's unlock of queue 0 is ignored); then Y gets queue 1. */
    snprintf(body, sizeof body, "{\"consumerGroup\":\"GL\",\"clientId\":\"X\",\"mqSet\":[%s]}",
             q[1]);
    rcmd_init_request(&req, REQ_UNLOCK_BATCH_MQ);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    snprintf(body, sizeof body, "{\"consumerGroup\":\"GL\",\"clientId\":\"Y\",\"mqSet\":[%s]}",
             q[0]);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    rcmd_init_request(&req, REQ_LOCK_BATCH_MQ);
    req.body = (const uint8_t *)body2;
    req.body_len = strlen(body2);
    resp = tb_call(cli, &req);
    assert_non_null(strstr(tb_body(resp), "\"queueId\":1"));
    assert_non_null(strstr(tb_body(resp), "\"queueId\":2"));
    rcmd_free(resp);
    snprintf(body, sizeof body, "{\"consumerGroup\":\"GL\",\"clientId\":\"X\",\"mqSet\":[%s]}",
             q[0]);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    resp = tb_call(cli, &req);
    assert_non_null(strstr(tb_body(resp), "\"queueId\":0")); /* still X's */
    rcmd_free(resp);
    remoting_client_free(cli);
}

static void on_running_info(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct rcmd resp;
    const struct rstr *id = rcmd_ext_get(req, "clientId");
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    if (id && id->len == 3 && memcmp(id->p, "C@1", 3) == 0) {
        resp.body = (const uint8_t *)"{\"properties\":{\"x\":\"1\"}}";
        resp.body_len = strlen((const char *)resp.body);
    }
    remoting_respond(conn, &resp);
    (void)arg;
}

static void test_consumer_running_info_forwarded(void **state)
{
    (void)state;
    remoting_client_t *c =
        tb_client_h(g.port, REQ_GET_CONSUMER_RUNNING_INFO, on_running_info, NULL);
    remoting_client_t *admin = tb_client(g.port);
    heartbeat(c, "C@1", "GID_ri", "TopicHB", "*");
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_GET_CONSUMER_RUNNING_INFO);
    rcmd_ext_add(&req, "consumerGroup", "GID_ri");
    rcmd_ext_add(&req, "clientId", "C@1");
    rcmd_ext_add(&req, "jstackEnable", "false");
    resp = tb_call(admin, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_string_equal(tb_body(resp), "{\"properties\":{\"x\":\"1\"}}");
    rcmd_free(resp);
    rcmd_ext_add(&req, "clientId", "C@2");
    resp = tb_call(admin, &req);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    assert_string_equal(tb_remark(resp), "The Consumer <GID_ri> <C@2> not online");
    rcmd_free(resp);
    remoting_client_free(c);
    remoting_client_free(admin);
}

static void test_runtime_info_and_groups(void **state)
{
    (void)state;
    remoting_client_t *cli = tb_client(g.port);
    struct rcmd req, *resp;
    rcmd_init_request(&req, REQ_GET_BROKER_RUNTIME_INFO);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_non_null(strstr(tb_body(resp), "\"brokerVersionDesc\":\"V4_9_8\""));
    assert_non_null(strstr(tb_body(resp), "\"msgPutTotalTodayNow\":\""));
    assert_non_null(strstr(tb_body(resp), "\"commitLogDirCapacity\":\"Total : "));
    rcmd_free(resp);

    const char *gc = "{\"groupName\":\"GID_admin\",\"consumeEnable\":false,\"retryMaxTimes\":3}";
    rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP);
    req.body = (const uint8_t *)gc;
    req.body_len = strlen(gc);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    rcmd_init_request(&req, REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
    resp = tb_call(cli, &req);
    assert_non_null(strstr(tb_body(resp), "\"GID_admin\":{\"brokerId\":0,"
                                          "\"consumeBroadcastEnable\":true,\"consumeEnable\":"
                                          "false"));
    rcmd_free(resp);
    /* A group with consumption disabled may not pull. */
    tb_pull_req(&req, "GID_admin", "TopicA", 0, 0, 32, "*", 0, 0);
    assert_int_equal(tb_call_code(cli, &req), RESP_NO_PERMISSION);

    rcmd_init_request(&req, REQ_GET_BROKER_CONFIG);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_non_null(strstr(tb_body(resp), "brokerName=broker-t\n"));
    rcmd_free(resp);
    remoting_client_free(cli);
}

/* ---- brokers with their own configuration ---------------------------------------------- */

static void test_auto_create_off(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-noauto");
    t.cfg.autoCreateTopicEnable = 0;
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    struct rcmd req, *resp;
    tb_send_req(&req, "NotCreated", 0, NULL, "x", 1);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_TOPIC_NOT_EXIST);
    assert_string_equal(tb_remark(resp), "topic[NotCreated] not exist, apply first please!");
    rcmd_free(resp);
    /* No TBW102 then; a %RETRY% topic is still created on send (as Java). */
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    resp = tb_call(cli, &req);
    assert_null(strstr(tb_body(resp), "\"TBW102\""));
    rcmd_free(resp);
    struct rcmd *sr = tb_send(cli, "%RETRY%GID_x", 0, NULL, NULL, "retry");
    rcmd_free(sr);
    remoting_client_free(cli);
    tb_cleanup(&t);
}

static void test_oversize_and_sync_flush(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-sync");
    t.cfg.store.maxMessageSize = 1024;
    t.cfg.store.flushDiskType = SYNC_FLUSH;
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "TopicS", 1), RESP_SUCCESS);
    static char big[2000];
    memset(big, 'b', sizeof big);
    struct rcmd req, *resp;
    tb_send_req(&req, "TopicS", 0, "TAGS\001x", big, sizeof big);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_MESSAGE_ILLEGAL);
    assert_non_null(strstr(tb_remark(resp), "maxMessageSize=1024"));
    rcmd_free(resp);
    /* Properties over 32 KiB. */
    static char props[40000];
    memset(props, 'p', sizeof props - 1);
    memcpy(props, "USER\001", 5);
    tb_send_req(&req, "TopicS", 0, props, "x", 1);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_MESSAGE_ILLEGAL);
    assert_non_null(strstr(tb_remark(resp), "32KB"));
    rcmd_free(resp);
    /* SYNC_FLUSH: answered from the store's flush callback once durable. */
    for (int i = 0; i < 20; i++) {
        struct rcmd *sr = tb_send(cli, "TopicS", 0, "s", NULL, "durable");
        assert_int_equal(tb_ext_i64(sr, "queueOffset"), i);
        rcmd_free(sr);
    }
    remoting_client_free(cli);
    tb_cleanup(&t);
}

static void test_fenced_store_never_acknowledges(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-fenced");
    t.cfg.store.flushDiskType = SYNC_FLUSH;
    t.cfg.store.debugSyncFailAfter = 1; /* every CommitLog sync after the first fails (EIO) */
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "TopicF", 1), RESP_SUCCESS);
    int ok = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        struct rcmd req, *resp;
        tb_send_req(&req, "TopicF", 0, "TAGS\001f", "fenced?", 7);
        resp = tb_call(cli, &req);
        if (resp->code == RESP_SUCCESS) {
            assert_int_equal(refused, 0); /* never acknowledged once the store refused */
            ok++;
        } else {
            assert_int_equal(resp->code, RESP_SERVICE_NOT_AVAILABLE);
            assert_non_null(strstr(tb_remark(resp), "fenced"));
            assert_null(tb_ext(resp, "msgId"));
            refused++;
        }
        rcmd_free(resp);
    }
    assert_true(refused > 0);
    assert_true(ok <= 1);
    remoting_client_free(cli);
    tb_cleanup(&t);
}

static void test_query_offset_not_found_on_disk(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "broker-ondisk");
    t.cfg.accessMessageInMemoryMaxRatio = 0; /* everything already written counts as "on disk" */
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "TopicD", 1), RESP_SUCCESS);
    int32_t code;
    assert_int_equal(query_offset(cli, "GID_d", "TopicD", 0, &code), 0); /* empty queue */
    struct rcmd *sr = tb_send(cli, "TopicD", 0, NULL, NULL, "one");
    rcmd_free(sr);
    sr = tb_send(cli, "TopicD", 0, NULL, NULL, "two");
    rcmd_free(sr);
    int64_t end = clock_mono_ms() + 5000 * test_time_mult();
    do
        query_offset(cli, "GID_d", "TopicD", 0, &code);
    while (code != RESP_QUERY_NOT_FOUND && clock_mono_ms() < end);
    assert_int_equal(code, RESP_QUERY_NOT_FOUND);
    remoting_client_free(cli);
    tb_cleanup(&t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_send_v2_pull_with_tags),
        cmocka_unit_test(test_send_v1),
        cmocka_unit_test(test_send_batch),
        cmocka_unit_test(test_long_poll_woken_by_send),
        cmocka_unit_test(test_long_poll_times_out),
        cmocka_unit_test(test_offsets_commit_query),
        cmocka_unit_test(test_queue_offsets_and_times),
        cmocka_unit_test(test_view_by_id_and_query_by_key),
        cmocka_unit_test(test_auto_create_and_topic_admin),
        cmocka_unit_test(test_bad_topic_names),
        cmocka_unit_test(test_unknown_code_and_bad_requests),
        cmocka_unit_test(test_heartbeat_consumer_list_notify),
        cmocka_unit_test(test_lock_unlock_batch),
        cmocka_unit_test(test_consumer_running_info_forwarded),
        cmocka_unit_test(test_runtime_info_and_groups),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_auto_create_off),
        cmocka_unit_test(test_oversize_and_sync_flush),
        cmocka_unit_test(test_query_offset_not_found_on_disk),
        cmocka_unit_test(test_fenced_store_never_acknowledges),
    };
    int fails = cmocka_run_group_tests_name("broker", shared, group_setup, group_teardown);
    fails += cmocka_run_group_tests_name("broker-own-config", own, NULL, NULL);
    return fails;
}
