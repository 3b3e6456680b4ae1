/* Metrics (docs/METRICS.md): the Prometheus helpers of common/prom.c (histogram, label escaping,
 * the text format), mqadmin's parser of that text (adm_metrics_parse), the store's figures
 * (store_metrics: flush histograms, appended records, group-commit queue) on a real store, and
 * the broker's exposition through GET_BROKER_METRICS on an in-process broker with real sends
 * and pulls: the per-topic counters move by exactly what was sent and pulled; and the
 * throughput history of GET_BROKER_THROUGHPUT (10102) on the same kind of broker, and on a
 * slave. */
#include "common/clock.h"
#include "common/err.h"
#include "mqadmin.h"
#include "common/prom.h"
#include "store/store.h"
#include "test_broker_harness.h"

#include "../lib/testlib.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ---- text sink ---------------------------------------------------------------------------- */

struct text {
    char buf[65536];
    size_t len;
};

static void text_write(void *arg, const char *p, size_t n)
{
    struct text *t = arg;
    assert_true(t->len + n < sizeof t->buf);
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    t->buf[t->len] = 0;
}

/* ---- prom.c ------------------------------------------------------------------------------- */

/* Label values and HELP texts are escaped as the format wants; other bytes pass as they are. */
static void test_escape(void **state)
{
    (void)state;
    static struct text t;
    struct prom_out o = {text_write, &t};
    t.len = 0;
    prom_family(&o, "e", "gauge", "quote \" stays, \\ and\nare escaped");
    prom_sample_i64(&o, "e", (const char *[]){"v", "plain-Topic_1%|", NULL}, 1);
    prom_sample_i64(&o, "e", (const char *[]){"v", "a\\b\"c\nd", NULL}, 2);
    prom_sample_i64(&o, "e", (const char *[]){"v", "", "w", "\"\"", NULL}, 3);
    prom_sample_i64(&o, "e", (const char *[]){"v", "ünï", NULL}, 4);
    /* bytes that are not UTF-8 (a group name a client sent) become U+FFFD, one each: a stray
     * byte, an overlong '/', a surrogate, a sequence cut short by the end */
    prom_sample_i64(&o, "e", (const char *[]){"v", "G\xff\xfeX\xc0\xaf\xed\xa0\x80\xe2\x82", NULL},
                    5);
    assert_string_equal(
        t.buf, "# HELP e quote \" stays, \\\\ and\\nare escaped\n"
               "# TYPE e gauge\n"
               "e{v=\"plain-Topic_1%|\"} 1\n"
               "e{v=\"a\\\\b\\\"c\\nd\"} 2\n"
               "e{v=\"\",w=\"\\\"\\\"\"} 3\n"
               "e{v=\"ünï\"} 4\n"
               "e{v=\"G\xef\xbf\xbd\xef\xbf\xbdX\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 5\n");
}

static const int64_t bounds3[] = {10, 20, 30};

static void test_histogram(void **state)
{
    (void)state;
    struct prom_hist h;
    struct prom_hist_snap s;
    prom_hist_init(&h, bounds3, 3);
    prom_hist_read(&h, &s);
    assert_int_equal(s.cum[3], 0);
    assert_int_equal(s.sum, 0);
    static const int64_t vals[] = {5, 10, 11, 30, 31, 100, -1};
    int64_t sum = 0;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        prom_hist_observe(&h, vals[i]);
        sum += vals[i];
    }
    prom_hist_read(&h, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.cum[0], 3); /* -1, 5, 10: <= 10 */
    assert_int_equal(s.cum[1], 4); /* 11 */
    assert_int_equal(s.cum[2], 5); /* 30 */
    assert_int_equal(s.cum[3], 7); /* 31, 100 */
    assert_int_equal(s.sum, sum);
}

#define OBS_THREADS 4
#define OBS_EACH    200000

static void *observer(void *arg)
{
    struct prom_hist *h = arg;
    for (int i = 0; i < OBS_EACH; i++)
        prom_hist_observe(h, i % 40);
    return NULL;
}

/* Concurrent observers lose nothing; a reader always sees cumulative buckets whose +Inf
 * bucket is the count. */
static void test_histogram_concurrent(void **state)
{
    (void)state;
    struct prom_hist h;
    pthread_t th[OBS_THREADS];
    prom_hist_init(&h, bounds3, 3);
    for (int i = 0; i < OBS_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, observer, &h), 0);
    for (int r = 0; r < 200; r++) {
        struct prom_hist_snap s;
        prom_hist_read(&h, &s);
        for (int i = 1; i <= s.n; i++)
            assert_true(s.cum[i] >= s.cum[i - 1]);
    }
    for (int i = 0; i < OBS_THREADS; i++)
        pthread_join(th[i], NULL);
    struct prom_hist_snap s;
    prom_hist_read(&h, &s);
    int64_t per = 0;
    for (int i = 0; i < OBS_EACH; i++)
        per += i % 40;
    assert_int_equal(s.cum[3], (uint64_t)OBS_THREADS * OBS_EACH);
    assert_int_equal(s.sum, per * OBS_THREADS);
    /* 0..10 of every 40 values: 11/40 of them */
    assert_int_equal(s.cum[0], (uint64_t)OBS_THREADS * (OBS_EACH / 40) * 11);
}

static void test_text_format(void **state)
{
    (void)state;
    static struct text t;
    struct prom_out o = {text_write, &t};
    t.len = 0;
    prom_family(&o, "x_total", "counter", "Help with \\ and\nnewline.");
    prom_sample_i64(&o, "x_total", (const char *[]){"topic", "a\"b", "queue", "3", NULL},
                    9007199254740993LL);
    prom_sample_i64(&o, "x_total", NULL, -5);
    prom_family(&o, "g", "gauge", "A gauge.");
    prom_sample(&o, "g", (const char *[]){"k", "v", NULL}, 0.25);
    prom_sample(&o, "g", NULL, INFINITY);
    struct prom_hist h;
    struct prom_hist_snap s;
    static const int64_t ns[] = {500000, 1000000000};
    prom_hist_init(&h, ns, 2);
    prom_hist_observe(&h, 250000);
    prom_hist_observe(&h, 2000000000);
    prom_hist_read(&h, &s);
    prom_family(&o, "lat_seconds", "histogram", "Latency.");
    prom_histogram(&o, "lat_seconds", (const char *[]){"mode", "SYNC", NULL}, &s, 1e9);
    prom_histogram(&o, "lat_seconds", NULL, &s, 1e9);
    assert_string_equal(t.buf, "# HELP x_total Help with \\\\ and\\nnewline.\n"
                               "# TYPE x_total counter\n"
                               "x_total{topic=\"a\\\"b\",queue=\"3\"} 9007199254740993\n"
                               "x_total -5\n"
                               "# HELP g A gauge.\n"
                               "# TYPE g gauge\n"
                               "g{k=\"v\"} 0.25\n"
                               "g +Inf\n"
                               "# HELP lat_seconds Latency.\n"
                               "# TYPE lat_seconds histogram\n"
                               "lat_seconds_bucket{mode=\"SYNC\",le=\"0.0005\"} 1\n"
                               "lat_seconds_bucket{mode=\"SYNC\",le=\"1\"} 1\n"
                               "lat_seconds_bucket{mode=\"SYNC\",le=\"+Inf\"} 2\n"
                               "lat_seconds_sum{mode=\"SYNC\"} 2.00025\n"
                               "lat_seconds_count{mode=\"SYNC\"} 2\n"
                               "lat_seconds_bucket{le=\"0.0005\"} 1\n"
                               "lat_seconds_bucket{le=\"1\"} 1\n"
                               "lat_seconds_bucket{le=\"+Inf\"} 2\n"
                               "lat_seconds_sum 2.00025\n"
                               "lat_seconds_count 2\n");
}

static void test_rss(void **state)
{
    (void)state;
    int64_t rss = prom_process_rss();
    assert_true(rss > 1024 * 1024); /* a test process with cmocka and libc: more than 1 MiB */
}

/* ---- mqadmin's parser ----------------------------------------------------------------------- */

static void test_parse(void **state)
{
    (void)state;
    static const char text[] = "# HELP a_total A.\n"
                               "# TYPE a_total counter\n"
                               "a_total{topic=\"t\\\"1\\\\x\\ny\",queue=\"0\"} 12\n"
                               "\n"
                               "# TYPE h histogram\n"
                               "h_bucket{le=\"+Inf\"} 3\n"
                               "h_sum 1.5\n"
                               "h_count 3\n"
                               "u NaN 1700000000000\n";
    char err[256];
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(adm_metrics_parse(text, sizeof text - 1, arr, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    const cJSON *a = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(adm_jstr(a, "name"), "a_total");
    assert_string_equal(adm_jstr(a, "type"), "counter");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(a, "labels");
    assert_string_equal(adm_jstr(l, "topic"), "t\"1\\x\ny");
    assert_string_equal(adm_jstr(l, "queue"), "0");
    assert_int_equal(adm_jnum(a, "value"), 12);
    assert_string_equal(adm_jstr(cJSON_GetArrayItem(arr, 1), "type"), "histogram");
    assert_string_equal(adm_jstr(cJSON_GetArrayItem(arr, 2), "type"), "histogram");
    assert_string_equal(adm_jstr(cJSON_GetArrayItem(arr, 4), "type"), "untyped");
    assert_string_equal(adm_jstr(cJSON_GetArrayItem(arr, 4), "value"), "NaN");
    cJSON_Delete(arr);

    static const char *const bad[] = {
        "a_total\n",                    /* no value */
        "a_total{x=\"1\"}12\n",         /* no space */
        "a_total{x=\"1} 12\n",          /* unterminated value */
        "a_total{x=\"\\t\"} 12\n",      /* unknown escape */
        "a_total{x=\"1\",x=\"2\"} 1\n", /* duplicate label */
        "a_total{1x=\"1\"} 1\n",        /* bad label name */
        "a_total 12abc\n",              /* not a number */
        "9a 1\n",                       /* bad metric name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arr = cJSON_CreateArray();
        err[0] = 0;
        assert_int_equal(adm_metrics_parse(bad[i], strlen(bad[i]), arr, err, sizeof err), -1);
        assert_non_null(strstr(err, "line 1: expected"));
        cJSON_Delete(arr);
    }
}

/* ---- the store ------------------------------------------------------------------------------ */

static void put_one(store_t *st, const char *topic, int qid, int i, struct put_result *res)
{
    char body[64];
    int n = snprintf(body, sizeof body, "metrics body %d", i);
    struct store_msg m = {0};
    m.topic = topic;
    m.queue_id = qid;
    m.born_ts = clock_wall_ms();
    m.born_host.addr[0] = 127;
    m.born_host.addr[3] = 1;
    m.born_host.port = 1234;
    m.body = (const uint8_t *)body;
    m.body_len = (uint32_t)n;
    assert_int_equal(store_put(st, &m, 1, res), 0);
}

struct qseen {
    int64_t max[4];
    int other;
};

static void on_queue(void *arg, const char *topic, int32_t qid, int64_t min, int64_t max)
{
    struct qseen *q = arg;
    assert_int_equal(min, 0);
    if (strcmp(topic, "MetricsT") == 0 && qid >= 0 && qid < 4)
        q->max[qid] = max;
    else
        q->other++;
}

static void test_store_metrics(void **state)
{
    (void)state;
    char dir[512], err[512] = "";
    struct store_config cfg;
    store_t *st = NULL;
    test_tmpdir(dir, sizeof dir, "metrics-store");
    store_config_defaults(&cfg);
    snprintf(cfg.storePathRootDir, sizeof cfg.storePathRootDir, "%s", dir);
    cfg.mappedFileSizeCommitLog = 1024 * 1024;
    cfg.maxMessageSize = 16 * 1024;
    cfg.mappedFileSizeConsumeQueue = 20 * 100;
    cfg.maxHashSlotNum = 256;
    cfg.maxIndexNum = 1000;
    cfg.flushDiskType = SYNC_FLUSH;
    snprintf(cfg.storeHost, sizeof cfg.storeHost, "127.0.0.1:10911");
    assert_int_equal(store_open(&cfg, &st, err, sizeof err), 0);

    struct store_metrics m;
    store_metrics(st, &m);
    assert_int_equal(m.sync_flush, 1);
    assert_int_equal(m.appended, 0);
    assert_int_equal(m.max_phys, 0);
    assert_int_equal(m.flush_us.cum[m.flush_us.n], 0);
    assert_int_equal(m.write_state, 0);
    assert_true(m.disk_total > 0 && m.disk_free > 0 && m.disk_free <= m.disk_total);
    assert_int_equal(m.disk_warning_ratio, cfg.diskSpaceWarningLevelRatio);

    /* SYNC_FLUSH: each store_put returns after its own group commit, so 10 sequential puts
     * are 10 syncs of one record each. */
    int64_t bytes = 0;
    for (int i = 0; i < 10; i++) {
        struct put_result r;
        put_one(st, "MetricsT", i % 4, i, &r);
        bytes += r.size;
    }
    store_metrics(st, &m);
    assert_int_equal(m.appended, 10);
    assert_int_equal(m.max_phys, bytes);
    assert_int_equal(m.flushed_phys, bytes);
    assert_int_equal(m.commit_waiters, 0);
    assert_int_equal(m.flush_bytes.sum, bytes);
    assert_int_equal(m.flush_msgs.sum, 10);
    assert_int_equal(m.flush_us.cum[m.flush_us.n], m.flush_bytes.cum[m.flush_bytes.n]);
    assert_int_equal(m.flush_msgs.cum[m.flush_msgs.n], 10);
    assert_int_equal(m.flush_msgs.cum[0], 10); /* every batch was one record */
    assert_true(m.flush_us.sum > 0);
    assert_int_equal(m.segments, 1);
    assert_int_equal(m.segment_bytes, cfg.mappedFileSizeCommitLog);
    assert_int_equal(m.queues, 4);
    assert_int_equal(store_wait_dispatched(st, 10000 * test_time_mult()), 0);
    store_metrics(st, &m);
    assert_int_equal(m.dispatched_phys, bytes);

    struct qseen q = {{0}, 0};
    store_queue_offsets(st, on_queue, &q);
    assert_int_equal(q.other, 0);
    assert_int_equal(q.max[0], 3);
    assert_int_equal(q.max[1], 3);
    assert_int_equal(q.max[2], 2);
    assert_int_equal(q.max[3], 2);
    store_close(st);
    test_rmdir(dir);
}

/* ---- the broker ----------------------------------------------------------------------------- */

/* The value of the sample line that starts with @head ("name{labels} "), or -1. */
static int64_t sample(const char *text, const char *head)
{
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        size_t n = strlen(head);
        if (strncmp(p, head, n) == 0)
            return strtoll(p + n, NULL, 10);
    }
    return -1;
}

static char *metrics_text(remoting_client_t *cli)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_BROKER_METRICS);
    struct rcmd *resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    char *s = strndup((const char *)resp->body, resp->body_len);
    rcmd_free(resp);
    return s;
}

/* A SEND_MESSAGE_V2 to MetricsTopic queue 0 with the extra properties @extra; asserts SUCCESS. */
static void delayed_send(remoting_client_t *cli, const char *extra)
{
    char props[256];
    struct rcmd req;
    snprintf(props, sizeof props, "TAGS\001tagD\002%s", extra);
    tb_send_req(&req, "MetricsTopic", 0, props, "delayed", 7);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
}

static void test_broker_metrics(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "metrics-broker");
    t.cfg.store.flushDiskType = SYNC_FLUSH;
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "MetricsTopic", 2), RESP_SUCCESS);

    char *before = metrics_text(cli);
    assert_int_equal(sample(before, "ferrymq_messages_in_total{topic=\"MetricsTopic\"} "), -1);
    assert_int_equal(sample(before,
                            "ferrymq_send_latency_seconds_count{flush=\"SYNC_FLUSH\",replication="
                            "\"async\"} "),
                     0);
    free(before);

    for (int i = 0; i < 6; i++) {
        char body[32];
        snprintf(body, sizeof body, "body-%d", i);
        rcmd_free(tb_send(cli, "MetricsTopic", i % 2, "tagA", NULL, body));
    }
    tb_wait_dispatched(&t);
    int64_t pulled_bytes = 0;
    int pulled = 0;
    for (int q = 0; q < 2; q++) {
        struct rcmd req;
        tb_pull_req(&req, "GID_metrics", "MetricsTopic", q, 0, 32, "*", 0, 0);
        struct rcmd *resp = tb_call(cli, &req);
        assert_int_equal(resp->code, RESP_SUCCESS);
        struct tb_rec recs[8];
        pulled += tb_records(resp, recs, 8);
        pulled_bytes += (int64_t)resp->body_len;
        rcmd_free(resp);
    }
    assert_int_equal(pulled, 6);

    char *text = metrics_text(cli);
    assert_int_equal(sample(text, "ferrymq_messages_in_total{topic=\"MetricsTopic\"} "), 6);
    /* every record sent was pulled once: the bytes stored equal the bytes pulled */
    assert_int_equal(sample(text, "ferrymq_bytes_in_total{topic=\"MetricsTopic\"} "), pulled_bytes);
    assert_int_equal(sample(text, "ferrymq_messages_out_total{topic=\"MetricsTopic\"} "), 6);
    assert_int_equal(sample(text, "ferrymq_bytes_out_total{topic=\"MetricsTopic\"} "),
                     pulled_bytes);
    assert_int_equal(
        sample(text,
               "ferrymq_send_latency_seconds_count{flush=\"SYNC_FLUSH\",replication=\"async\"} "),
        6);
    assert_int_equal(sample(text, "ferrymq_queue_max_offset{topic=\"MetricsTopic\",queue=\"0\"} "),
                     3);
    assert_int_equal(sample(text, "ferrymq_queue_max_offset{topic=\"MetricsTopic\",queue=\"1\"} "),
                     3);
    assert_true(sample(text, "ferrymq_flush_latency_seconds_count ") >= 1);
    assert_int_equal(sample(text, "ferrymq_group_commit_queue_depth "), 0);
    assert_int_equal(sample(text, "ferrymq_dispatch_lag_bytes "), 0);
    assert_int_equal(sample(text, "ferrymq_store_write_refused{reason=\"disk_full\"} "), 0);
    assert_int_equal(sample(text, "ferrymq_connections{port=\"client\"} "), 1);
    assert_int_equal(sample(text, "ferrymq_broker_role{role=\"ASYNC_MASTER\"} "), 1);
    assert_true(sample(text, "process_resident_memory_bytes ") > 1024 * 1024);
    assert_true(sample(text, "process_virtual_memory_bytes ") >=
                sample(text, "process_resident_memory_bytes "));
    assert_true(sample(text, "process_open_fds ") >= 3); /* at least a socket, a segment, a log */
    assert_true(sample(text, "process_max_fds ") != 0);
    int64_t started = sample(text, "process_start_time_seconds ");
    assert_true(started <= clock_wall_ms() / 1000 && started > clock_wall_ms() / 1000 - 600);

    /* the whole answer parses, every sample has a declared type */
    char err[256];
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(adm_metrics_parse(text, strlen(text), arr, err, sizeof err), 0);
    const cJSON *s;
    cJSON_ArrayForEach(s, arr) assert_string_not_equal(adm_jstr(s, "type"), "untyped");
    assert_true(cJSON_GetArraySize(arr) > 50);
    cJSON_Delete(arr);
    free(text);

    /* offsets committed by the group: committed offset and lag per queue */
    struct rcmd req;
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", "GID_metrics");
    rcmd_ext_add(&req, "topic", "MetricsTopic");
    rcmd_ext_add(&req, "queueId", "0");
    rcmd_ext_add(&req, "commitOffset", "2");
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    text = metrics_text(cli);
    assert_int_equal(sample(text, "ferrymq_group_committed_offset{group=\"GID_metrics\",topic="
                                  "\"MetricsTopic\",queue=\"0\"} "),
                     2);
    assert_int_equal(sample(text, "ferrymq_group_lag_messages{group=\"GID_metrics\",topic="
                                  "\"MetricsTopic\",queue=\"0\"} "),
                     1);
    /* queue 1 has no committed offset: 0, and all of it is lag (as consumerProgress) */
    assert_int_equal(sample(text, "ferrymq_group_committed_offset{group=\"GID_metrics\",topic="
                                  "\"MetricsTopic\",queue=\"1\"} "),
                     0);
    assert_int_equal(sample(text, "ferrymq_group_lag_messages{group=\"GID_metrics\",topic="
                                  "\"MetricsTopic\",queue=\"1\"} "),
                     3);
    free(text);

    /* delayed and timed messages: stored totals, and the backlog the schedule service has not
     * delivered yet (level 1 = 1 s is delivered, level 18 = 2 h and a 2 h timer are not) */
    delayed_send(cli, "DELAY\0011");
    delayed_send(cli, "DELAY\00118");
    delayed_send(cli, "DELAY\00118");
    delayed_send(cli, "TIMER_DELAY_SEC\0017200");
    tb_wait_dispatched(&t);
    int64_t deadline = clock_mono_ms() + 20000;
    for (;;) {
        text = metrics_text(cli);
        if (sample(text, "ferrymq_delay_backlog_messages{level=\"1\"} ") == 0 ||
            clock_mono_ms() > deadline)
            break;
        free(text);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(sample(text, "ferrymq_delay_backlog_messages{level=\"1\"} "), 0);
    assert_int_equal(sample(text, "ferrymq_delay_messages_total{level=\"1\"} "), 1);
    assert_int_equal(sample(text, "ferrymq_delay_backlog_messages{level=\"18\"} "), 2);
    assert_int_equal(sample(text, "ferrymq_delay_messages_total{level=\"18\"} "), 2);
    /* a level never used has no queue in the store, so no sample */
    assert_int_equal(sample(text, "ferrymq_delay_backlog_messages{level=\"2\"} "), -1);
    assert_int_equal(sample(text, "ferrymq_timer_messages_total "), 1);
    assert_int_equal(sample(text, "ferrymq_timer_backlog_messages "), 1);
    /* the level-1 message reached its topic: 6 + 1 stored in MetricsTopic's queues */
    assert_int_equal(
        sample(text, "ferrymq_queue_max_offset{topic=\"MetricsTopic\",queue=\"0\"} ") +
            sample(text, "ferrymq_queue_max_offset{topic=\"MetricsTopic\",queue=\"1\"} "),
        7);
    free(text);

    remoting_client_free(cli);
    tb_cleanup(&t);
}

/* ---- GET_BROKER_THROUGHPUT ------------------------------------------------------------------ */

/* The broker's answer to GET_BROKER_THROUGHPUT with extFields seconds=@seconds (NULL: none):
 * the parsed body on SUCCESS, else NULL with the code in *@code. */
static cJSON *throughput(remoting_client_t *cli, const char *seconds, int32_t *code)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_BROKER_THROUGHPUT);
    if (seconds)
        rcmd_ext_add(&req, "seconds", seconds);
    struct rcmd *resp = tb_call(cli, &req);
    cJSON *j = NULL;
    *code = resp->code;
    if (resp->code == RESP_SUCCESS) {
        j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
        assert_non_null(j);
    }
    rcmd_free(resp);
    return j;
}

static int64_t sum_of(const cJSON *j, const char *key)
{
    int64_t sum = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(j, key)) sum += (int64_t)v->valuedouble;
    return sum;
}

static int len_of(const cJSON *j, const char *key)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, key));
}

/* Poll GET_BROKER_THROUGHPUT (@seconds) until @ok(answer, @arg) holds; fails after 15 s. */
static cJSON *throughput_until(remoting_client_t *cli, const char *seconds,
                               int (*ok)(const cJSON *j, const void *arg), const void *arg)
{
    int64_t deadline = clock_mono_ms() + 15000 * test_time_mult();
    for (;;) {
        int32_t code;
        cJSON *j = throughput(cli, seconds, &code);
        assert_int_equal(code, RESP_SUCCESS);
        if (ok(j, arg))
            return j;
        cJSON_Delete(j);
        if (clock_mono_ms() > deadline)
            fail_msg("GET_BROKER_THROUGHPUT: the condition did not hold within 15 s");
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int has_rates(const cJSON *j, const void *arg)
{
    return len_of(j, "put") >= *(const int *)arg;
}

struct sums {
    int64_t put, get;
};

static int sums_are(const cJSON *j, const void *arg)
{
    const struct sums *w = arg;
    return sum_of(j, "put") == w->put && sum_of(j, "get") == w->get;
}

/* The rates per second are the differences of the totals that the service thread records once
 * a second: after real sends and pulls their sum moves by exactly what was sent and pulled, and
 * putTotal/getTotal count them; "seconds" bounds the history; bad values are refused. */
static void test_broker_throughput(void **state)
{
    (void)state;
    struct tb t;
    tb_init(&t, "throughput-broker");
    tb_start(&t);
    remoting_client_t *cli = tb_client(t.port);
    assert_int_equal(tb_create_topic(cli, "TputTopic", 2), RESP_SUCCESS);

    /* two seconds recorded (so one rate at least), nothing sent yet */
    int one = 1;
    cJSON *j = throughput_until(cli, NULL, has_rates, &one);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", t.port);
    assert_string_equal(adm_jstr(j, "brokerName"), t.cfg.brokerName);
    assert_string_equal(adm_jstr(j, "brokerAddr"), addr);
    assert_string_equal(adm_jstr(j, "brokerRole"), "ASYNC_MASTER");
    assert_int_equal(adm_jnum(j, "brokerId"), 0);
    assert_int_equal(adm_jnum(j, "intervalMs"), 1000);
    assert_true(llabs(adm_jnum(j, "now") - clock_wall_ms()) < 60000);
    assert_int_equal(adm_jnum(j, "putTotal"), 0);
    assert_int_equal(adm_jnum(j, "getTotal"), 0);
    assert_int_equal(len_of(j, "put"), len_of(j, "get"));
    struct sums want = {sum_of(j, "put"), sum_of(j, "get")};
    assert_int_equal(want.put, 0);
    cJSON_Delete(j);

    for (int i = 0; i < 7; i++)
        rcmd_free(tb_send(cli, "TputTopic", i % 2, "tagA", NULL, "tput"));
    tb_wait_dispatched(&t);
    struct rcmd req;
    tb_pull_req(&req, "GID_tput", "TputTopic", 0, 0, 32, "*", 0, 0);
    struct rcmd *resp = tb_call(cli, &req);
    struct tb_rec recs[8];
    int pulled = tb_records(resp, recs, 8);
    rcmd_free(resp);
    assert_int_equal(pulled, 4);

    /* the broker is younger than 600 s: nothing has left the history */
    want.put += 7;
    want.get += pulled;
    j = throughput_until(cli, NULL, sums_are, &want);
    assert_int_equal(adm_jnum(j, "putTotal"), 7);
    assert_int_equal(adm_jnum(j, "getTotal"), pulled);
    assert_true(len_of(j, "put") <= 600);
    cJSON_Delete(j);

    /* seconds=2: the last two rates, once there are that many */
    int two = 2;
    j = throughput_until(cli, "2", has_rates, &two);
    assert_int_equal(len_of(j, "put"), 2);
    assert_int_equal(len_of(j, "get"), 2);
    cJSON_Delete(j);
    /* more than the ring holds is the whole ring; not a number or < 1 is refused */
    int32_t code;
    j = throughput(cli, "100000", &code);
    assert_int_equal(code, RESP_SUCCESS);
    assert_true(len_of(j, "put") >= 2 && len_of(j, "put") <= 600);
    cJSON_Delete(j);
    assert_null(throughput(cli, "0", &code));
    assert_int_equal(code, RESP_SYSTEM_ERROR);
    assert_null(throughput(cli, "ten", &code));
    assert_int_equal(code, RESP_SYSTEM_ERROR);

    /* mqadmin's means: the last @span values, all of them when fewer */
    cJSON *r = cJSON_Parse("[1, 2, 3, 6]"), *e = cJSON_CreateArray();
    assert_true(adm_rate_mean(r, 2) == 4.5);
    assert_true(adm_rate_mean(r, 10) == 3);
    assert_true(adm_rate_mean(e, 10) == 0);
    cJSON_Delete(r);
    cJSON_Delete(e);

    remoting_client_free(cli);
    tb_cleanup(&t);

    /* a slave answers too (with its role and id) */
    struct tb sl;
    tb_init(&sl, "throughput-slave");
    sl.cfg.brokerRole = BROKER_SLAVE;
    sl.cfg.brokerId = 1;
    tb_start(&sl);
    cli = tb_client(sl.port);
    j = throughput(cli, "10", &code);
    assert_int_equal(code, RESP_SUCCESS);
    assert_string_equal(adm_jstr(j, "brokerRole"), "SLAVE");
    assert_int_equal(adm_jnum(j, "brokerId"), 1);
    assert_int_equal(adm_jnum(j, "putTotal"), 0);
    assert_true(len_of(j, "put") <= 10);
    cJSON_Delete(j);
    remoting_client_free(cli);
    tb_cleanup(&sl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_concurrent),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_rss),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_store_metrics),
        cmocka_unit_test(test_broker_metrics),
        cmocka_unit_test(test_broker_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
