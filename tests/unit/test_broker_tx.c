/* Transactional messages on the broker (issue 6), over loopback sockets: a half message is
 * invisible until END_TRANSACTION commit, then visible exactly once (a repeated or late
 * commit/rollback delivers nothing more); rollback never delivers; an unresolved half is checked
 * with a live producer of its group (CHECK_TRANSACTION_STATE with the message), UNKNOWN is checked
 * again, and after transactionCheckMax checks the half goes to the discard topic; pending halves
 * survive a restart and are resolved once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/clock.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GROUP "PG_tx"

/* What the producer connection saw: CHECK_TRANSACTION_STATE requests. */
struct checks {
    pthread_mutex_t mu;
    int n;
    int64_t off, phys;
    char topic[128], body[64], tran[16];
};

struct env {
    struct tb t;
    remoting_client_t *cli; /* also the producer connection (heartbeat with GROUP) */
    struct checks ck;
};

static void on_check(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct checks *ck = arg;
    struct tb_rec r;
    pthread_mutex_lock(&ck->mu);
    ck->n++;
    ck->off = tb_ext_i64(req, "tranStateTableOffset");
    ck->phys = tb_ext_i64(req, "commitLogOffset");
    struct rcmd fake = *req; /* tb_records reads resp->body */
    if (tb_records(&fake, &r, 1) == 1) {
        snprintf(ck->topic, sizeof ck->topic, "%s", r.topic);
        snprintf(ck->body, sizeof ck->body, "%s", r.body);
        snprintf(ck->tran, sizeof ck->tran, "%s", tb_prop(&r, "TRAN_MSG"));
    }
    pthread_mutex_unlock(&ck->mu);
}

static void heartbeat(struct env *e)
{
    const char *body = "{\"clientID\":\"127.0.0.1@txp\",\"consumerDataSet\":[],"
                       "\"producerDataSet\":[{\"groupName\":\"" GROUP "\"}]}";
    struct rcmd req;
    rcmd_init_request(&req, REQ_HEART_BEAT);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    assert_int_equal(tb_call_code(e->cli, &req), RESP_SUCCESS);
}

static void connect_producer(struct env *e)
{
    e->cli = tb_client_h(e->t.port, REQ_CHECK_TRANSACTION_STATE, on_check, &e->ck);
    heartbeat(e);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    pthread_mutex_init(&e->ck.mu, NULL);
    tb_init(&e->t, "tx");
    e->t.cfg.transactionTimeOut = 300;
    e->t.cfg.transactionCheckInterval = 300;
    e->t.cfg.transactionCheckMax = 3;
    e->t.cfg.flushDelayOffsetInterval = 200;
    tb_start(&e->t);
    connect_producer(e);
    remoting_client_t *c = tb_client(e->t.port);
    assert_int_equal(tb_create_topic(c, "TopicT", 1), RESP_SUCCESS);
    remoting_client_free(c);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    remoting_client_free(e->cli);
    tb_cleanup(&e->t);
    pthread_mutex_destroy(&e->ck.mu);
    free(e);
    return 0;
}

static int64_t max_offset(struct env *e, const char *topic)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_MAX_OFFSET);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "queueId", "0");
    struct rcmd *resp = tb_call(e->cli, &req);
    int64_t off = resp->code == RESP_SUCCESS ? tb_ext_i64(resp, "offset") : -1;
    rcmd_free(resp);
    return off;
}

/* Send a half message; its half-queue offset and CommitLog offset. */
static void send_half(struct env *e, const char *body, int64_t *off, int64_t *phys)
{
    struct rcmd req;
    char ip[64], props[256];
    int port;
    snprintf(props, sizeof props,
             "TRAN_MSG\001true\002PGROUP\001" GROUP "\002KEYS\001k1\002UNIQ_KEY\001U-%s", body);
    tb_send_req(&req, "TopicT", 0, props, body, strlen(body));
    rcmd_ext_add(&req, "f", "4"); /* sysFlag TRANSACTION_PREPARED_TYPE, as Java */
    struct rcmd *resp = tb_call(e->cli, &req);
    assert_int_equal(resp->code, RESP_SUCCESS);
    assert_int_equal(tb_msgid_decode(tb_ext(resp, "msgId"), ip, sizeof ip, &port, phys), 0);
    *off = tb_ext_i64(resp, "queueOffset");
    rcmd_free(resp);
}

static int32_t end_tx(struct env *e, int64_t off, int64_t phys, int type, const char *group)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_END_TRANSACTION);
    rcmd_ext_add(&req, "producerGroup", group);
    rcmd_ext_add_i64(&req, "tranStateTableOffset", off);
    rcmd_ext_add_i64(&req, "commitLogOffset", phys);
    rcmd_ext_add_i64(&req, "commitOrRollback", type);
    rcmd_ext_add(&req, "fromTransactionCheck", "false");
    return tb_call_code(e->cli, &req);
}

static int wait_max(struct env *e, const char *topic, int64_t n, int64_t ms)
{
    int64_t deadline = clock_mono_ms() + ms * test_time_mult();
    while (clock_mono_ms() < deadline) {
        if (max_offset(e, topic) >= n)
            return 1;
        usleep(20000);
    }
    return 0;
}

static int wait_checks(struct env *e, int n, int64_t ms)
{
    int64_t deadline = clock_mono_ms() + ms * test_time_mult();
    while (clock_mono_ms() < deadline) {
        pthread_mutex_lock(&e->ck.mu);
        int got = e->ck.n;
        pthread_mutex_unlock(&e->ck.mu);
        if (got >= n)
            return 1;
        usleep(20000);
    }
    return 0;
}

static void test_commit_once_rollback_never(void **state)
{
    struct env *e = *state;
    int64_t off, phys, off2, phys2;
    send_half(e, "tx-commit", &off, &phys);
    send_half(e, "tx-rollback", &off2, &phys2);
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "TopicT"), 0); /* invisible */
    assert_int_equal(max_offset(e, "RMQ_SYS_TRANS_HALF_TOPIC"), 2);
    assert_int_equal(end_tx(e, off, phys, 8, "PG_other"), RESP_SYSTEM_ERROR); /* wrong group */
    assert_int_equal(end_tx(e, off, phys, 8, GROUP), RESP_SUCCESS);
    assert_int_equal(end_tx(e, off2, phys2, 12, GROUP), RESP_SUCCESS);
    assert_true(wait_max(e, "TopicT", 1, 5000));
    /* repeated and late answers deliver nothing more */
    assert_int_equal(end_tx(e, off, phys, 8, GROUP), RESP_SUCCESS);
    assert_int_equal(end_tx(e, off, phys, 12, GROUP), RESP_SUCCESS);
    assert_int_equal(end_tx(e, off2, phys2, 8, GROUP), RESP_SUCCESS);
    /* a wrong offset pair is refused */
    assert_int_equal(end_tx(e, off + 1, phys, 8, GROUP), RESP_SYSTEM_ERROR);
    usleep(1000000); /* several check rounds: resolved halves are never checked */
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "TopicT"), 1);
    pthread_mutex_lock(&e->ck.mu);
    assert_int_equal(e->ck.n, 0);
    pthread_mutex_unlock(&e->ck.mu);
    struct rcmd req;
    tb_pull_req(&req, "GID_tx_reader", "TopicT", 0, 0, 8, "*", 0, 0);
    struct rcmd *resp = tb_call(e->cli, &req);
    struct tb_rec r;
    assert_int_equal(tb_records(resp, &r, 1), 1);
    assert_string_equal(r.body, "tx-commit");
    assert_string_equal(tb_prop(&r, "TRAN_MSG"), "");
    assert_string_equal(tb_prop(&r, "KEYS"), "k1");
    assert_int_equal(r.v.sys_flag & 0xC, 0x8); /* TRANSACTION_COMMIT_TYPE */
    rcmd_free(resp);
}

/* No answer: the producer is checked; UNKNOWN (no answer) is checked again; commit after the
 * third check delivers once. */
static void test_check_back(void **state)
{
    struct env *e = *state;
    int64_t off, phys;
    send_half(e, "tx-check", &off, &phys);
    assert_true(wait_checks(e, 2, 10000));
    pthread_mutex_lock(&e->ck.mu);
    assert_int_equal(e->ck.off, off);
    assert_int_equal(e->ck.phys, phys);
    assert_string_equal(e->ck.topic, "TopicT"); /* the real topic, as Java sends it */
    assert_string_equal(e->ck.body, "tx-check");
    assert_string_equal(e->ck.tran, "true");
    pthread_mutex_unlock(&e->ck.mu);
    tb_wait_dispatched(&e->t);
    assert_int_equal(max_offset(e, "TopicT"), 0);
    assert_int_equal(end_tx(e, off, phys, 8, GROUP), RESP_SUCCESS);
    assert_true(wait_max(e, "TopicT", 1, 5000));
    pthread_mutex_lock(&e->ck.mu);
    int n = e->ck.n;
    pthread_mutex_unlock(&e->ck.mu);
    usleep(1000000);
    pthread_mutex_lock(&e->ck.mu);
    assert_true(e->ck.n <= n + 1); /* at most one check already on its way */
    pthread_mutex_unlock(&e->ck.mu);
    assert_int_equal(max_offset(e, "TopicT"), 1);
}

/* transactionCheckMax checks without an answer: kept in the discard topic, never delivered. */
static void test_check_max_discard(void **state)
{
    struct env *e = *state;
    int64_t off, phys;
    send_half(e, "tx-orphan", &off, &phys);
    assert_true(wait_max(e, "TRANS_CHECK_MAX_TIME_TOPIC", 1, 15000));
    pthread_mutex_lock(&e->ck.mu);
    assert_int_equal(e->ck.n, 3);
    pthread_mutex_unlock(&e->ck.mu);
    assert_int_equal(max_offset(e, "TopicT"), 0);
    /* a commit that comes too late delivers nothing */
    assert_int_equal(end_tx(e, off, phys, 8, GROUP), RESP_SUCCESS);
    usleep(300000);
    assert_int_equal(max_offset(e, "TopicT"), 0);
}

/* A pending half survives a restart; resolved ones stay resolved (no second delivery). */
static void test_restart(void **state)
{
    struct env *e = *state;
    int64_t off, phys, off2, phys2;
    send_half(e, "tx-before", &off, &phys);
    assert_int_equal(end_tx(e, off, phys, 8, GROUP), RESP_SUCCESS);
    send_half(e, "tx-pending", &off2, &phys2);
    assert_true(wait_max(e, "TopicT", 1, 5000));
    remoting_client_free(e->cli);
    e->cli = NULL;
    tb_stop(&e->t);
    tb_start(&e->t);
    pthread_mutex_lock(&e->ck.mu);
    e->ck.n = 0;
    pthread_mutex_unlock(&e->ck.mu);
    connect_producer(e);
    assert_true(wait_checks(e, 1, 10000));
    pthread_mutex_lock(&e->ck.mu);
    assert_int_equal(e->ck.off, off2); /* only the pending one is checked */
    pthread_mutex_unlock(&e->ck.mu);
    assert_int_equal(end_tx(e, off2, phys2, 8, GROUP), RESP_SUCCESS);
    assert_int_equal(end_tx(e, off, phys, 8, GROUP), RESP_SUCCESS); /* late, already done */
    assert_true(wait_max(e, "TopicT", 2, 5000));
    usleep(800000);
    assert_int_equal(max_offset(e, "TopicT"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_once_rollback_never, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_max_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
