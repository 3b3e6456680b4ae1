/* Delivery guarantees on the broker (issue 5), over loopback sockets with short delay levels:
 * delayed (DELAY) and timed (TIMER_DELIVER_MS, TIMER_DELAY_SEC, __STARTDELIVERTIME) messages are
 * invisible before their time and delivered after it with their properties; a timed message
 * beyond timerMaxDelaySec is refused; pending ones survive a restart and are delivered once;
 * CONSUMER_SEND_MSG_BACK goes to %RETRY%<group> with delay level 3 + reconsume times and past
 * the maximum to %DLQ%<group> with its history. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct env {
    struct tb t;
    remoting_client_t *cli;
    struct rcmd *last; /* the last pull answer: the records' views point into it */
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    tb_init(&e->t, "sched");
    snprintf(e->t.cfg.messageDelayLevel, sizeof e->t.cfg.messageDelayLevel, "1s 2s 1s 3s");
    e->t.cfg.timerMaxDelaySec = 60;
    e->t.cfg.flushDelayOffsetInterval = 200;
    tb_start(&e->t);
    e->cli = tb_client(e->t.port);
    assert_int_equal(tb_create_topic(e->cli, "TopicD", 4), RESP_SUCCESS);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    rcmd_free(e->last);
    remoting_client_free(e->cli);
    tb_cleanup(&e->t);
    free(e);
    return 0;
}

static void restart(struct env *e)
{
    remoting_client_free(e->cli);
    tb_stop(&e->t);
    tb_start(&e->t);
    e->cli = tb_client(e->t.port);
}

/* Send @body to TopicD queue @qid with tag, key, a user property and @extra ("NAME\1value"
 * pairs joined by \2, or NULL). Returns the CommitLog offset (from the msgId). */
static int64_t send_props(struct env *e, int qid, const char *body, const char *extra)
{
    char props[512];
    struct rcmd req;
    snprintf(props, sizeof props, "TAGS\001tagD\002KEYS\001key-%s\002color\001blue%s%s", body,
             extra ? "\002" : "", extra ? extra : "");
    tb_send_req(&req, "TopicD", qid, props, body, strlen(body));
    struct rcmd *resp = tb_call(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    char ip[64];
    int port;
    int64_t phys;
    assert_int_equal(tb_msgid_decode(tb_ext(resp, "msgId"), ip, sizeof ip, &port, &phys), 0);
    rcmd_free(resp);
    return phys;
}

static int64_t max_offset(struct env *e, const char *topic, int qid)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_MAX_OFFSET);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add_i64(&req, "queueId", qid);
    struct rcmd *resp = tb_call(e->cli, &req);
    int64_t off = resp->code == RESP_SUCCESS ? tb_ext_i64(resp, "offset") : -1;
    rcmd_free(resp);
    return off;
}

/* Wait until @topic/@qid holds @n messages; the time it took, or -1 after @ms. */
static int64_t wait_count(struct env *e, const char *topic, int qid, int64_t n, int64_t ms)
{
    int64_t t0 = clock_mono_ms(), deadline = t0 + ms * test_time_mult();
    while (clock_mono_ms() < deadline) {
        if (max_offset(e, topic, qid) >= n)
            return clock_mono_ms() - t0;
        usleep(20000);
    }
    return -1;
}

/* The record at @topic/@qid/@offset (valid until the next pull). */
static void pull_one(struct env *e, const char *topic, int qid, int64_t offset, struct tb_rec *r)
{
    struct rcmd req;
    tb_pull_req(&req, "GID_sched_reader", topic, qid, offset, 1, "*", 0, 0);
    rcmd_free(e->last);
    e->last = tb_call(e->cli, &req);
    assert_int_equal(e->last->code, RESP_SUCCESS);
    assert_int_equal(tb_records(e->last, r, 1), 1);
}

static void test_delay_level(void **state)
{
    struct env *e = *state;
    int64_t t0 = clock_mono_ms();
    send_props(e, 1, "d1", "DELAY\0012");
    /* not visible in its topic before level 2's 2 s */
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "TopicD", 1), 0);
    assert_int_equal(max_offset(e, "SCHEDULE_TOPIC_XXXX", 1), 1);
    int64_t took = wait_count(e, "TopicD", 1, 1, 10000);
    assert_true(took >= 0);
    int64_t since = clock_mono_ms() - t0;
    assert_true(since >= 2000);
    assert_true(since <= 2000 + 1500 * test_time_mult());
    struct tb_rec r;
    pull_one(e, "TopicD", 1, 0, &r);
    assert_string_equal(r.body, "d1");
    assert_string_equal(r.tags, "tagD");
    assert_string_equal(tb_prop(&r, "KEYS"), "key-d1");
    assert_string_equal(tb_prop(&r, "color"), "blue");
    assert_string_equal(tb_prop(&r, "REAL_TOPIC"), "TopicD");
    assert_string_equal(tb_prop(&r, "DELAY"), "");
    assert_int_equal(r.v.queue_id, 1);
    /* a level over the highest is the highest (4: 3 s) */
    send_props(e, 2, "d99", "DELAY\00199");
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "SCHEDULE_TOPIC_XXXX", 3), 1);
    assert_true(wait_count(e, "TopicD", 2, 1, 10000) >= 0);
}

static void test_timer(void **state)
{
    struct env *e = *state;
    char extra[64];
    int64_t t0 = clock_mono_ms();
    snprintf(extra, sizeof extra, "TIMER_DELIVER_MS\001%" PRId64, clock_wall_ms() + 1500);
    send_props(e, 0, "t1", extra);
    send_props(e, 0, "t0", "TIMER_DELAY_SEC\0011"); /* stored later, due earlier */
    assert_int_equal(max_offset(e, "TopicD", 0), 0);
    assert_true(wait_count(e, "TopicD", 0, 1, 10000) >= 0);
    assert_true(clock_mono_ms() - t0 >= 1000);
    struct tb_rec r;
    pull_one(e, "TopicD", 0, 0, &r);
    assert_string_equal(r.body, "t0"); /* in due order, not arrival order */
    assert_string_equal(tb_prop(&r, "TIMER_DELAY_SEC"), "");
    assert_true(wait_count(e, "TopicD", 0, 2, 10000) >= 0);
    assert_true(clock_mono_ms() - t0 >= 1500);
    assert_true(clock_mono_ms() - t0 <= 1500 + 1500 * test_time_mult());
    pull_one(e, "TopicD", 0, 1, &r);
    assert_string_equal(r.body, "t1");
    assert_string_equal(tb_prop(&r, "color"), "blue");
    /* already due: stored at once; beyond timerMaxDelaySec (60 s): refused, nothing stored */
    send_props(e, 3, "past", "__STARTDELIVERTIME\0011000");
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "TopicD", 3), 1);
    struct rcmd req;
    tb_send_req(&req, "TopicD", 3, "TIMER_DELAY_SEC\001120", "far", 3);
    struct rcmd *resp = tb_call(e->cli, &req);
    assert_int_equal(resp->code, RESP_MESSAGE_ILLEGAL);
    assert_non_null(strstr(tb_remark(resp), "timerMaxDelaySec"));
    rcmd_free(resp);
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "rmq_sys_wheel_timer", 0), 2);
}

/* Pending delayed and timed messages survive a restart; each is delivered once. */
static void test_restart_pending(void **state)
{
    struct env *e = *state;
    char extra[64];
    send_props(e, 1, "r-delay", "DELAY\0014"); /* 3 s */
    snprintf(extra, sizeof extra, "TIMER_DELIVER_MS\001%" PRId64, clock_wall_ms() + 3000);
    send_props(e, 2, "r-timer", extra);
    send_props(e, 3, "r-now", "DELAY\0011"); /* 1 s: delivered before the restart */
    assert_true(wait_count(e, "TopicD", 3, 1, 10000) >= 0);
    usleep(400000); /* > flushDelayOffsetInterval: the level-1 progress is written */
    restart(e);
    assert_int_equal(max_offset(e, "TopicD", 1), 0);
    assert_true(wait_count(e, "TopicD", 1, 1, 10000) >= 0);
    assert_true(wait_count(e, "TopicD", 2, 1, 10000) >= 0);
    usleep(1500000); /* nothing more comes: each was delivered once */
    assert_int_equal(max_offset(e, "TopicD", 1), 1);
    assert_int_equal(max_offset(e, "TopicD", 2), 1);
    assert_int_equal(max_offset(e, "TopicD", 3), 1);
}

static int32_t send_back(struct env *e, int64_t phys, const char *group, int delay, int max)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_CONSUMER_SEND_MSG_BACK);
    rcmd_ext_add_i64(&req, "offset", phys);
    rcmd_ext_add(&req, "group", group);
    rcmd_ext_add_i64(&req, "delayLevel", delay);
    rcmd_ext_add(&req, "originMsgId", "ORIGINID");
    rcmd_ext_add(&req, "originTopic", "TopicD");
    rcmd_ext_add_i64(&req, "maxReconsumeTimes", max);
    return tb_call_code(e->cli, &req);
}

/* Send-back: to %RETRY% after level 3 (1 s) with reconsume 1, then past max to %DLQ%. */
static void test_send_back_retry_then_dlq(void **state)
{
    struct env *e = *state;
    int64_t phys = send_props(e, 0, "sb", NULL);
    int64_t t0 = clock_mono_ms();
    assert_int_equal(send_back(e, phys, "GID_sb", 0, 1), RESP_SUCCESS);
    assert_int_equal(max_offset(e, "%RETRY%GID_sb", 0), 0); /* waiting for level 3 */
    assert_true(wait_count(e, "%RETRY%GID_sb", 0, 1, 10000) >= 0);
    assert_true(clock_mono_ms() - t0 >= 1000);
    struct tb_rec r;
    pull_one(e, "%RETRY%GID_sb", 0, 0, &r);
    assert_string_equal(r.body, "sb");
    assert_int_equal(r.v.reconsume_times, 1);
    assert_string_equal(tb_prop(&r, "RETRY_TOPIC"), "TopicD");
    assert_string_equal(tb_prop(&r, "ORIGIN_MESSAGE_ID"), "ORIGINID");
    assert_string_equal(tb_prop(&r, "color"), "blue");
    /* the retry copy fails again: reconsume 1 >= max 1 -> dead letter */
    assert_int_equal(send_back(e, r.v.phys_offset, "GID_sb", 0, 1), RESP_SUCCESS);
    assert_true(wait_count(e, "%DLQ%GID_sb", 0, 1, 5000) >= 0);
    pull_one(e, "%DLQ%GID_sb", 0, 0, &r);
    assert_string_equal(r.body, "sb");
    assert_int_equal(r.v.reconsume_times, 2);
    assert_string_equal(tb_prop(&r, "RETRY_TOPIC"), "TopicD");
    assert_string_equal(tb_prop(&r, "DLQ_ORIGIN_TOPIC"), "TopicD");
    assert_string_equal(tb_prop(&r, "ORIGIN_MESSAGE_ID"), "ORIGINID");
    assert_string_equal(tb_prop(&r, "DELAY"), "");
    /* a negative level goes straight to the DLQ; a bad offset is a clear error */
    assert_int_equal(send_back(e, phys, "GID_sb", -1, 16), RESP_SUCCESS);
    assert_true(wait_count(e, "%DLQ%GID_sb", 0, 2, 5000) >= 0);
    assert_int_equal(send_back(e, 1 << 30, "GID_sb", 0, 16), RESP_SYSTEM_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delay_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_back_retry_then_dlq, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
