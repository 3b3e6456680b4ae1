/* The libferry consumers against an in-process name server and broker on free loopback ports:
 * clustering push consumers get every message and commit offsets; a RECONSUME_LATER message
 * comes back and holds the committed offset until it succeeds; orderly consumption keeps queue
 * order with one listener call per queue at a time; broadcasting keeps offsets in a local file;
 * the lite pull consumer polls, seeks and commits. */
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

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NMSG   200
#define QUEUES 4

struct env {
    char nsdir[512];
    char tmp[512];
    namesrv_t *ns;
    int ns_port;
    struct tb b;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    struct namesrv_config nc;
    char err[512];
    namesrv_config_defaults(&nc);
    snprintf(nc.listenAddress, sizeof nc.listenAddress, "127.0.0.1");
    nc.listenPort = 0;
    test_tmpdir(e->nsdir, sizeof e->nsdir, "cons-ns");
    test_tmpdir(e->tmp, sizeof e->tmp, "cons-tmp");
    snprintf(nc.kvConfigPath, sizeof nc.kvConfigPath, "%s/kv.json", e->nsdir);
    if (namesrv_new(&nc, &e->ns, err, sizeof err) != 0 || namesrv_start(e->ns, err, sizeof err))
        fail_msg("name server: %s", err);
    e->ns_port = namesrv_port(e->ns);
    tb_init(&e->b, "cons-broker");
    /* level 3 (the first retry) after 1 s */
    snprintf(e->b.cfg.messageDelayLevel, sizeof e->b.cfg.messageDelayLevel, "1s 1s 1s 1s 2s");
    snprintf(e->b.cfg.brokerName, sizeof e->b.cfg.brokerName, "broker-a");
    snprintf(e->b.cfg.namesrvAddr, sizeof e->b.cfg.namesrvAddr, "127.0.0.1:%d", e->ns_port);
    tb_start(&e->b);
    remoting_client_t *cli = tb_client(e->b.port);
    assert_int_equal(tb_create_topic(cli, "TopicC", QUEUES), RESP_SUCCESS);
    remoting_client_free(cli);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    tb_cleanup(&e->b);
    namesrv_free(e->ns);
    test_rmdir(e->nsdir);
    test_rmdir(e->tmp);
    free(e);
    return 0;
}

/* Send @n messages "<prefix>-<i>" (tag "even"/"odd"), sync, all acknowledged. */
static void produce(struct env *e, const char *topic, int n, const char *prefix)
{
    struct ferry_producer_config pc;
    ferry_producer_t *p;
    ferry_producer_config_init(&pc);
    snprintf(pc.group, sizeof pc.group, "PID_cons");
    snprintf(pc.namesrvAddr, sizeof pc.namesrvAddr, "127.0.0.1:%d", e->ns_port);
    pc.sendMsgTimeout *= test_time_mult();
    assert_int_equal(ferry_producer_new(&pc, &p), 0);
    assert_int_equal(ferry_producer_start(p), 0);
    for (int i = 0; i < n; i++) {
        char body[64];
        snprintf(body, sizeof body, "%s-%d", prefix, i);
        struct ferry_message m = {.topic = topic,
                                  .tags = i % 2 ? "odd" : "even",
                                  .keys = body,
                                  .body = body,
                                  .body_len = strlen(body)};
        struct ferry_send_result r;
        assert_int_equal(ferry_send_sync(p, &m, &r), 0);
        assert_int_equal(r.status, FERRY_SEND_OK);
    }
    ferry_producer_free(p);
}

static void consumer_cfg(struct env *e, struct ferry_consumer_config *cfg, const char *group)
{
    ferry_consumer_config_init(cfg);
    snprintf(cfg->group, sizeof cfg->group, "%s", group);
    snprintf(cfg->namesrvAddr, sizeof cfg->namesrvAddr, "127.0.0.1:%d", e->ns_port);
    snprintf(cfg->offsetStoreDir, sizeof cfg->offsetStoreDir, "%s/offsets", e->tmp);
    cfg->consumeFromWhere = FERRY_CONSUME_FROM_FIRST_OFFSET;
    cfg->consumeThreadMin = cfg->consumeThreadMax = 4;
    cfg->persistConsumerOffsetInterval = 200;
    cfg->rebalanceInterval = 500;
}

/* Messages seen, by number, shared by listeners. */
struct seen {
    pthread_mutex_t mu;
    int count[NMSG];
    int distinct, total;
    int fail_first; /* RECONSUME_LATER the first delivery of this number (-1: none) */
    int32_t retry_reconsume;
    int retry_topic_ok; /* the redelivery names the original topic */
    int fail_q;         /* queue and offset of the failed message */
    int64_t fail_off;
    int64_t last_offset[QUEUES]; /* orderly: last offset seen per queue */
    int order_errors;
    atomic_int inflight[QUEUES];
    int overlap;
    const char *tag; /* only messages with this tag expected (NULL: all) */
    int wrong_tag;
};

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fail_first = -1;
    for (int i = 0; i < QUEUES; i++)
        s->last_offset[i] = -1;
}

static int body_num(const struct ferry_message_ext *m)
{
    const char *dash = memchr(m->body, '-', m->body_len);
    return dash ? atoi(dash + 1) : -1;
}

static enum ferry_consume_status on_msgs(const struct ferry_message_ext *msgs, size_t n, void *arg)
{
    struct seen *s = arg;
    enum ferry_consume_status st = FERRY_CONSUME_SUCCESS;
    int q = msgs[0].queue_id;
    if (atomic_fetch_add(&s->inflight[q], 1) != 0)
        s->overlap = 1;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        int k = body_num(&msgs[i]);
        assert_true(k >= 0 && k < NMSG);
        if (s->tag && (!msgs[i].tags || strcmp(msgs[i].tags, s->tag) != 0))
            s->wrong_tag++;
        if (k == s->fail_first && s->count[k] == 0 && s->retry_reconsume == 0) {
            s->retry_reconsume = -1; /* failed once */
            s->fail_q = msgs[i].queue_id;
            s->fail_off = msgs[i].queue_offset;
            st = FERRY_RECONSUME_LATER;
            continue;
        }
        if (k == s->fail_first && s->retry_reconsume == -1) {
            s->retry_reconsume = msgs[i].reconsume_times;
            const char *rt = ferry_message_property(&msgs[i], "RETRY_TOPIC");
            s->retry_topic_ok =
                strcmp(msgs[i].topic, "TopicC") == 0 && (!rt || strcmp(rt, "TopicC") == 0);
        }
        if (msgs[i].queue_offset <= s->last_offset[q] && st == FERRY_CONSUME_SUCCESS)
            s->order_errors++;
        s->last_offset[q] = msgs[i].queue_offset;
        if (s->count[k]++ == 0)
            s->distinct++;
        s->total++;
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_sub(&s->inflight[q], 1);
    return st;
}

static int wait_distinct(struct seen *s, int want, int64_t ms)
{
    int64_t deadline = clock_mono_ms() + ms * test_time_mult();
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int d = s->distinct;
        pthread_mutex_unlock(&s->mu);
        if (d >= want)
            return 1;
        if (clock_mono_ms() > deadline)
            return 0;
        usleep(20000);
    }
}

/* The broker's committed offset of (group, TopicC, qid). */
static int64_t committed(struct env *e, const char *group, int qid)
{
    remoting_client_t *cli = tb_client(e->b.port);
    struct rcmd req;
    char q[16];
    snprintf(q, sizeof q, "%d", qid);
    rcmd_init_request(&req, REQ_QUERY_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", group);
    rcmd_ext_add(&req, "topic", "TopicC");
    rcmd_ext_add(&req, "queueId", q);
    struct rcmd *resp = tb_call(cli, &req);
    int64_t off = resp->code == RESP_SUCCESS ? tb_ext_i64(resp, "offset") : -1;
    rcmd_free(resp);
    remoting_client_free(cli);
    return off;
}

static int64_t max_offset(struct env *e, int qid)
{
    remoting_client_t *cli = tb_client(e->b.port);
    struct rcmd req;
    char q[16];
    snprintf(q, sizeof q, "%d", qid);
    rcmd_init_request(&req, REQ_GET_MAX_OFFSET);
    rcmd_ext_add(&req, "topic", "TopicC");
    rcmd_ext_add(&req, "queueId", q);
    struct rcmd *resp = tb_call(cli, &req);
    int64_t off = tb_ext_i64(resp, "offset");
    rcmd_free(resp);
    remoting_client_free(cli);
    return off;
}

static void test_config_errors(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c;
    struct seen s;
    seen_init(&s);
    consumer_cfg(e, &cfg, "");
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), FERRY_ECONFIG);
    assert_null(c);
    consumer_cfg(e, &cfg, "CID_cfg");
    cfg.consumeThreadMax = 1;
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), FERRY_ECONFIG);
    consumer_cfg(e, &cfg, "CID_cfg");
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "no-port");
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), FERRY_ECONFIG);
    consumer_cfg(e, &cfg, "CID_cfg");
    assert_int_equal(ferry_push_consumer_new(&cfg, NULL, &s, &c), FERRY_EINVAL);
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c, "bad topic", "*"), FERRY_EINVAL);
    assert_int_equal(ferry_push_consumer_start(c), FERRY_EINVAL); /* no subscription */
    ferry_push_consumer_free(c);
}

/* Two consumers of one group get every message between them; offsets reach the queue ends. */
static void test_clustering(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c[2];
    struct seen s;
    seen_init(&s);
    produce(e, "TopicC", NMSG, "m");
    consumer_cfg(e, &cfg, "CID_cluster");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c[i]), 0);
        assert_int_equal(ferry_push_consumer_subscribe(c[i], "TopicC", "*"), 0);
        assert_int_equal(ferry_push_consumer_start(c[i]), 0);
    }
    assert_true(wait_distinct(&s, NMSG, 20000));
    for (int i = 0; i < 2; i++)
        ferry_push_consumer_free(c[i]); /* commits at shutdown */
    for (int q = 0; q < QUEUES; q++)
        assert_int_equal(committed(e, "CID_cluster", q), max_offset(e, q));
    assert_int_equal(s.wrong_tag, 0);
}

/* A tag subscription delivers only that tag. */
static void test_tag_filter(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c;
    struct seen s;
    seen_init(&s);
    s.tag = "odd";
    produce(e, "TopicC", 40, "t");
    consumer_cfg(e, &cfg, "CID_tags");
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c, "TopicC", "odd || nothing"), 0);
    assert_int_equal(ferry_push_consumer_start(c), 0);
    assert_true(wait_distinct(&s, 20, 20000));
    ferry_push_consumer_free(c);
    assert_int_equal(s.wrong_tag, 0);
    for (int k = 0; k < 40; k++)
        assert_int_equal(s.count[k] > 0, k % 2 == 1);
}

/* RECONSUME_LATER: the message goes back to the broker (CONSUMER_SEND_MSG_BACK) and comes
 * again through %RETRY%<group> after delay level 3, with reconsume_times 1 and its original
 * topic; every offset (the topic's and the retry topic's) ends committed. */
static void test_reconsume_later(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c;
    struct seen s;
    seen_init(&s);
    s.fail_first = 7;
    produce(e, "TopicC", 20, "r");
    consumer_cfg(e, &cfg, "CID_retry");
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c, "TopicC", "*"), 0);
    assert_int_equal(ferry_push_consumer_start(c), 0);
    assert_true(wait_distinct(&s, 20, 30000));
    ferry_push_consumer_free(c);
    assert_int_equal(s.retry_reconsume, 1);
    assert_true(s.retry_topic_ok);
    assert_int_equal(s.count[7], 1);
    for (int q = 0; q < QUEUES; q++)
        assert_int_equal(committed(e, "CID_retry", q), max_offset(e, q));
}

/* Orderly: per queue strictly increasing offsets, never two listener calls on one queue at
 * once, and a RECONSUME_LATER message is the next one delivered on its queue. */
static void test_orderly(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c;
    struct seen s;
    seen_init(&s);
    s.fail_first = 3;
    produce(e, "TopicC", NMSG, "o");
    consumer_cfg(e, &cfg, "CID_orderly");
    cfg.orderly = 1;
    cfg.suspendCurrentQueueTimeMillis = 100;
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c, "TopicC", "*"), 0);
    assert_int_equal(ferry_push_consumer_start(c), 0);
    assert_true(wait_distinct(&s, NMSG, 20000));
    ferry_push_consumer_free(c);
    assert_int_equal(s.order_errors, 0);
    assert_int_equal(s.overlap, 0);
    assert_int_equal(s.retry_reconsume, 1);
    for (int q = 0; q < QUEUES; q++)
        assert_int_equal(committed(e, "CID_orderly", q), max_offset(e, q));
}

static enum ferry_consume_status slow_msgs(const struct ferry_message_ext *msgs, size_t n,
                                           void *arg)
{
    usleep(10000);
    return on_msgs(msgs, n, arg);
}

/* Orderly shutdown waits for the running listener call only: the cached rest is left for later
 * (it was once drained first, taking as long as the cache needed). */
static void test_orderly_shutdown_prompt(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c;
    struct seen s;
    seen_init(&s);
    produce(e, "TopicC", NMSG, "s");
    consumer_cfg(e, &cfg, "CID_orderly_stop");
    cfg.orderly = 1;
    assert_int_equal(ferry_push_consumer_new(&cfg, slow_msgs, &s, &c), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c, "TopicC", "*"), 0);
    assert_int_equal(ferry_push_consumer_start(c), 0);
    assert_true(wait_distinct(&s, 10, 20000));
    int64_t t0 = clock_mono_ms();
    ferry_push_consumer_free(c);
    int64_t took = clock_mono_ms() - t0;
    assert_true(s.distinct < NMSG / 2); /* 4 queues x 10 ms: ~100 would need 250 ms more */
    assert_true(took < 1000 * test_time_mult());
    /* what was consumed is committed, nothing beyond */
    int64_t sum = 0;
    for (int q = 0; q < QUEUES; q++)
        sum += committed(e, "CID_orderly_stop", q);
    assert_int_equal(sum, s.distinct);
}

/* Broadcasting: two consumers each get everything; offsets land in the local file. */
static void test_broadcasting(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c[2];
    struct seen s[2];
    produce(e, "TopicC", 60, "b");
    for (int i = 0; i < 2; i++) {
        seen_init(&s[i]);
        consumer_cfg(e, &cfg, "CID_bcast");
        cfg.messageModel = FERRY_BROADCASTING;
        snprintf(cfg.instanceName, sizeof cfg.instanceName, "inst%d", i);
        assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s[i], &c[i]), 0);
        assert_int_equal(ferry_push_consumer_subscribe(c[i], "TopicC", "*"), 0);
        assert_int_equal(ferry_push_consumer_start(c[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_true(wait_distinct(&s[i], 60, 20000));
    for (int i = 0; i < 2; i++)
        ferry_push_consumer_free(c[i]);
    /* the broker has no offsets for the group; the files have the queue ends */
    for (int q = 0; q < QUEUES; q++)
        assert_true(committed(e, "CID_bcast", q) <= 0);
    char path[1200], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/offsets", e->tmp);
    int found = 0;
    for (int i = 0; i < 2; i++) {
        char f[1400];
        /* <dir>/<ip>@inst<i>/CID_bcast/offsets.json; the ip is the host's */
        snprintf(f, sizeof f, "ls -d %s/*@inst%d/CID_bcast/offsets.json > /dev/null 2>&1", path, i);
        found += system(f) == 0;
    }
    assert_int_equal(found, 2);
    /* a restarted broadcasting consumer continues from its file: nothing again */
    seen_init(&s[0]);
    consumer_cfg(e, &cfg, "CID_bcast");
    cfg.messageModel = FERRY_BROADCASTING;
    snprintf(cfg.instanceName, sizeof cfg.instanceName, "inst0");
    produce(e, "TopicC", 4, "n");
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s[0], &c[0]), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c[0], "TopicC", "*"), 0);
    assert_int_equal(ferry_push_consumer_start(c[0]), 0);
    assert_true(wait_distinct(&s[0], 4, 20000));
    ferry_push_consumer_free(c[0]);
    assert_int_equal(s[0].total, 4); /* only the 4 new ones ("n-0".."n-3") */
    (void)text;
    (void)len;
}

/* INVOKE_BROKER_TO_RESET_OFFSET (what `mqadmin resetOffsetByTime` sends) while the consumer is
 * online: the broker tells it (RESET_CONSUMER_CLIENT_OFFSET) and it consumes everything again. */
static void test_reset_offset_online(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_push_consumer_t *c;
    struct seen s;
    seen_init(&s);
    produce(e, "TopicC", 40, "x");
    consumer_cfg(e, &cfg, "CID_reset");
    assert_int_equal(ferry_push_consumer_new(&cfg, on_msgs, &s, &c), 0);
    assert_int_equal(ferry_push_consumer_subscribe(c, "TopicC", "*"), 0);
    assert_int_equal(ferry_push_consumer_start(c), 0);
    assert_true(wait_distinct(&s, 40, 20000));
    /* every queue's offset is committed before the reset (the broker needs one per queue) */
    int64_t deadline = clock_mono_ms() + 20000 * test_time_mult();
    for (int q = 0; q < QUEUES; q++)
        while (committed(e, "CID_reset", q) != max_offset(e, q) && clock_mono_ms() < deadline)
            usleep(50000);
    pthread_mutex_lock(&s.mu);
    int before = s.total;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(before, 40);
    remoting_client_t *cli = tb_client(e->b.port);
    struct rcmd req;
    rcmd_init_request(&req, REQ_INVOKE_BROKER_TO_RESET_OFFSET);
    rcmd_ext_add(&req, "topic", "TopicC");
    rcmd_ext_add(&req, "group", "CID_reset");
    rcmd_ext_add(&req, "timestamp", "0");
    rcmd_ext_add(&req, "isForce", "true");
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    remoting_client_free(cli);
    deadline = clock_mono_ms() + 20000 * test_time_mult();
    for (;;) {
        pthread_mutex_lock(&s.mu);
        int total = s.total;
        pthread_mutex_unlock(&s.mu);
        if (total >= 80 || clock_mono_ms() > deadline)
            break;
        usleep(20000);
    }
    ferry_push_consumer_free(c);
    for (int k = 0; k < 40; k++)
        assert_true(s.count[k] >= 2);
}

/* Lite pull: assign, poll everything, seek back, commit, committed, offset by time. */
static void test_lite_pull(void **state)
{
    struct env *e = *state;
    struct ferry_consumer_config cfg;
    ferry_pull_consumer_t *c;
    produce(e, "TopicC", 40, "l");
    consumer_cfg(e, &cfg, "CID_lite");
    cfg.autoCommit = 0;
    assert_int_equal(ferry_pull_consumer_new(&cfg, &c), 0);
    assert_int_equal(ferry_pull_consumer_start(c), 0);
    struct ferry_mq *mqs;
    size_t nmq;
    assert_int_equal(ferry_pull_consumer_fetch_queues(c, "TopicC", &mqs, &nmq), 0);
    assert_int_equal(nmq, QUEUES);
    assert_int_equal(ferry_pull_consumer_assign(c, mqs, nmq), 0);
    int seen[40] = {0}, total = 0;
    int64_t deadline = clock_mono_ms() + 20000 * test_time_mult();
    while (total < 40 && clock_mono_ms() < deadline) {
        const struct ferry_message_ext *m;
        size_t n;
        assert_int_equal(ferry_pull_consumer_poll(c, 500, &m, &n), 0);
        for (size_t i = 0; i < n; i++) {
            int k = body_num(&m[i]);
            assert_true(k >= 0 && k < 40);
            if (!seen[k]++)
                total++;
        }
    }
    assert_int_equal(total, 40);
    int64_t off;
    assert_int_equal(ferry_pull_consumer_committed(c, &mqs[0], &off), 0);
    assert_true(off <= 0); /* nothing committed yet (0: the broker's young-queue rule) */
    assert_int_equal(ferry_pull_consumer_commit(c), 0);
    for (int q = 0; q < QUEUES; q++)
        assert_int_equal(committed(e, "CID_lite", q), max_offset(e, q));
    /* seek queue 0 back to 0: its messages come again, from offset 0 */
    assert_int_equal(ferry_pull_consumer_seek(c, &mqs[0], 0), 0);
    int64_t want = max_offset(e, 0), next = 0;
    deadline = clock_mono_ms() + 20000 * test_time_mult();
    while (next < want && clock_mono_ms() < deadline) {
        const struct ferry_message_ext *m;
        size_t n;
        assert_int_equal(ferry_pull_consumer_poll(c, 500, &m, &n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(m[i].queue_id, 0);
            assert_int_equal(m[i].queue_offset, next);
            next++;
        }
    }
    assert_int_equal(next, want);
    assert_int_equal(ferry_pull_consumer_offset_for_timestamp(c, &mqs[0], 0, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(ferry_pull_consumer_seek(c, &(struct ferry_mq){"TopicC", "nope", 0}, 0),
                     FERRY_EINVAL);
    free(mqs);
    ferry_pull_consumer_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clustering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconsume_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orderly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orderly_shutdown_prompt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcasting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_offset_online, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lite_pull, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
