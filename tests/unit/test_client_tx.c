/* The libferry transaction producer against an in-process name server and broker (short
 * transactionTimeOut and check interval): commit is visible once, rollback never; a producer
 * that dies with its transaction unknown is replaced by another of the same group whose check
 * callback decides (commit: visible once; rollback: never); UNKNOWN answered twice and then
 * COMMIT delivers once. */
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

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct env {
    char nsdir[512];
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
    test_tmpdir(e->nsdir, sizeof e->nsdir, "tx-ns");
    snprintf(nc.kvConfigPath, sizeof nc.kvConfigPath, "%s/kv.json", e->nsdir);
    if (namesrv_new(&nc, &e->ns, err, sizeof err) != 0 || namesrv_start(e->ns, err, sizeof err))
        fail_msg("name server: %s", err);
    e->ns_port = namesrv_port(e->ns);
    tb_init(&e->b, "tx-broker");
    snprintf(e->b.cfg.namesrvAddr, sizeof e->b.cfg.namesrvAddr, "127.0.0.1:%d", e->ns_port);
    e->b.cfg.transactionTimeOut = 300;
    e->b.cfg.transactionCheckInterval = 300;
    tb_start(&e->b);
    remoting_client_t *cli = tb_client(e->b.port);
    assert_int_equal(tb_create_topic(cli, "TopicX", 1), RESP_SUCCESS);
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
    free(e);
    return 0;
}

static int64_t visible(struct env *e)
{
    tb_wait_dispatched(&e->b);
    remoting_client_t *cli = tb_client(e->b.port);
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_MAX_OFFSET);
    rcmd_ext_add(&req, "topic", "TopicX");
    rcmd_ext_add(&req, "queueId", "0");
    struct rcmd *resp = tb_call(cli, &req);
    int64_t off = tb_ext_i64(resp, "offset");
    rcmd_free(resp);
    remoting_client_free(cli);
    return off;
}

static int wait_visible(struct env *e, int64_t n, int64_t ms)
{
    int64_t deadline = clock_mono_ms() + ms * test_time_mult();
    while (clock_mono_ms() < deadline) {
        if (visible(e) >= n)
            return 1;
        usleep(30000);
    }
    return 0;
}

struct checker {
    atomic_int calls;
    int unknown_first; /* answer UNKNOWN this many times */
    enum ferry_tx_state then;
    char last_body[64];
};

static enum ferry_tx_state check_cb(const struct ferry_message_ext *m, const char *tx_id, void *arg)
{
    struct checker *ck = arg;
    int n = atomic_fetch_add(&ck->calls, 1);
    snprintf(ck->last_body, sizeof ck->last_body, "%.*s", (int)m->body_len, (const char *)m->body);
    assert_non_null(tx_id);
    return n < ck->unknown_first ? FERRY_TX_UNKNOWN : ck->then;
}

static ferry_producer_t *producer(struct env *e, struct checker *ck)
{
    struct ferry_producer_config cfg;
    ferry_producer_t *p;
    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "PID_tx");
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "127.0.0.1:%d", e->ns_port);
    assert_int_equal(ferry_producer_new(&cfg, &p), 0);
    if (ck)
        assert_int_equal(ferry_producer_set_tx_check(p, check_cb, ck), 0);
    assert_int_equal(ferry_producer_start(p), 0);
    if (ck)
        assert_int_equal(ferry_producer_set_tx_check(p, check_cb, ck), FERRY_EINVAL);
    return p;
}

static enum ferry_tx_state exec_state(const struct ferry_message *m, const char *tx_id, void *arg)
{
    assert_non_null(tx_id);
    assert_int_equal(strlen(tx_id), 32);
    return *(enum ferry_tx_state *)arg;
}

static void send_tx(ferry_producer_t *p, const char *body, enum ferry_tx_state local)
{
    struct ferry_message m = {
        .topic = "TopicX", .keys = body, .body = body, .body_len = strlen(body)};
    struct ferry_send_result res;
    enum ferry_tx_state st;
    assert_int_equal(ferry_send_in_transaction(p, &m, exec_state, &local, &res, &st), 0);
    assert_int_equal(st, local);
    assert_int_equal(res.status, FERRY_SEND_OK);
}

static void test_commit_and_rollback(void **state)
{
    struct env *e = *state;
    ferry_producer_t *p = producer(e, NULL);
    send_tx(p, "tx-c", FERRY_TX_COMMIT);
    send_tx(p, "tx-r", FERRY_TX_ROLLBACK);
    assert_true(wait_visible(e, 1, 5000));
    usleep(1000000); /* several check rounds: nothing more */
    assert_int_equal(visible(e), 1);
    struct ferry_message bad = {.topic = "TopicX", .body = "x", .body_len = 1, .delay_level = 2};
    enum ferry_tx_state local = FERRY_TX_COMMIT;
    assert_int_equal(ferry_send_in_transaction(p, &bad, exec_state, &local, NULL, NULL),
                     FERRY_EINVAL);
    ferry_producer_free(p);
}

/* The producer dies with its transaction unknown; another producer of the group decides. */
static void dead_producer_then(struct env *e, enum ferry_tx_state decision, int64_t want)
{
    ferry_producer_t *a = producer(e, NULL);
    send_tx(a, "tx-orphan", FERRY_TX_UNKNOWN);
    ferry_producer_free(a);
    struct checker ck = {.then = decision};
    ferry_producer_t *b = producer(e, &ck);
    struct ferry_message hello = {.topic = "TopicX", .body = "hello", .body_len = 5};
    assert_int_equal(ferry_send_sync(b, &hello, NULL), 0); /* connects: heartbeats follow */
    int64_t deadline = clock_mono_ms() + 10000 * test_time_mult();
    while (atomic_load(&ck.calls) == 0 && clock_mono_ms() < deadline)
        usleep(20000);
    assert_true(atomic_load(&ck.calls) >= 1);
    assert_string_equal(ck.last_body, "tx-orphan");
    if (want)
        assert_true(wait_visible(e, 1 + want, 5000));
    usleep(1000000);
    assert_int_equal(visible(e), 1 + want); /* "hello" + the decision */
    ferry_producer_free(b);
}

static void test_check_commit_after_crash(void **state)
{
    dead_producer_then(*state, FERRY_TX_COMMIT, 1);
}

static void test_check_rollback_after_crash(void **state)
{
    dead_producer_then(*state, FERRY_TX_ROLLBACK, 0);
}

static void test_unknown_twice_then_commit(void **state)
{
    struct env *e = *state;
    struct checker ck = {.unknown_first = 2, .then = FERRY_TX_COMMIT};
    ferry_producer_t *p = producer(e, &ck);
    send_tx(p, "tx-u", FERRY_TX_UNKNOWN);
    assert_true(wait_visible(e, 1, 15000));
    assert_int_equal(atomic_load(&ck.calls), 3);
    usleep(1000000);
    assert_int_equal(visible(e), 1);
    assert_int_equal(atomic_load(&ck.calls), 3); /* resolved: never checked again */
    ferry_producer_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_commit_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_rollback_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_twice_then_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
