/* The remoting layer's multi-slice zero-copy bodies (struct rcmd body_iov), which the broker
 * uses to send stored records straight from the CommitLog mapping: the peer receives the
 * concatenation, the release callback runs exactly once after the write (also when the answer
 * is dropped for a oneway request, when the connection is gone, and when the frame cannot be
 * encoded), and a copy is made when no release callback is given. Real sockets on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testlib.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "remoting/client.h"
#include "remoting/codes.h"
#include "remoting/frame.h"
#include "remoting/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_SLICES = 1100, T_COPY = 1101, T_HOLD = 1102, T_BADLEN = 1103 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int released;
static int respond_rc;
static conn_t *held_conn;
static struct rcmd *held_req;

static char part1[] = "first slice|";
static char part2[70000]; /* larger than a socket buffer write */
static char part3[] = "|last";

static void on_release(void *arg)
{
    pthread_mutex_lock(&mu);
    released += (int)(intptr_t)arg;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static int wait_released(int n)
{
    struct timespec dl = clock_deadline_ts(5000 * test_time_mult());
    pthread_mutex_lock(&mu);
    while (released < n)
        if (pthread_cond_timedwait(&cond, &mu, &dl) == ETIMEDOUT)
            break;
    int ok = released >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static struct iovec iov[3];

static void fill_resp(struct rcmd *resp, int with_release, size_t len)
{
    iov[0] = (struct iovec){part1, sizeof part1 - 1};
    iov[1] = (struct iovec){part2, sizeof part2};
    iov[2] = (struct iovec){part3, sizeof part3 - 1};
    resp->body_iov = iov;
    resp->body_iovcnt = 3;
    resp->body_len = len;
    if (with_release) {
        resp->body_release = on_release;
        resp->body_ctx = (void *)(intptr_t)1;
    }
}

static size_t total_len(void)
{
    return sizeof part1 - 1 + sizeof part2 + sizeof part3 - 1;
}

static void handler(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct rcmd resp;
    (void)arg;
    switch (req->code) {
    case T_SLICES:
    case T_COPY:
        rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
        fill_resp(&resp, req->code == T_SLICES, total_len());
        remoting_respond(conn, &resp);
        break;
    case T_BADLEN:
        rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
        fill_resp(&resp, 1, total_len() + 1);
        int rc = remoting_respond(conn, &resp); /* releases (taking mu): not under mu */
        pthread_mutex_lock(&mu);
        respond_rc = rc;
        pthread_mutex_unlock(&mu);
        rcmd_init_response(&resp, req, RESP_SYSTEM_ERROR, "bad length refused");
        remoting_respond(conn, &resp);
        break;
    case T_HOLD:
        pthread_mutex_lock(&mu);
        remoting_conn_ref(conn);
        held_conn = conn;
        held_req = rcmd_dup(req);
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&mu);
        break;
    }
}

static remoting_server_t *srv;

static int setup(void **state)
{
    (void)state;
    struct remoting_server_config sc;
    char err[256];
    for (size_t i = 0; i < sizeof part2; i++)
        part2[i] = (char)('a' + i % 26);
    remoting_server_config_init(&sc);
    sc.bind_addr = "127.0.0.1";
    assert_int_equal(remoting_server_new(&sc, &srv), 0);
    for (int c = T_SLICES; c <= T_BADLEN; c++)
        remoting_server_register(srv, c, handler, NULL);
    assert_int_equal(remoting_server_start(srv, err, sizeof err), 0);
    released = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remoting_server_free(srv);
    srv = NULL;
    return 0;
}

static remoting_client_t *client(void)
{
    struct remoting_client_config cc;
    remoting_client_t *cli;
    char addr[64], err[256];
    remoting_client_config_init(&cc);
    assert_int_equal(remoting_client_new(&cc, &cli), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", remoting_server_port(srv));
    assert_int_equal(remoting_client_connect(cli, addr, 5000, err, sizeof err), 0);
    return cli;
}

static void check_body(const struct rcmd *resp)
{
    assert_int_equal(resp->body_len, total_len());
    assert_memory_equal(resp->body, part1, sizeof part1 - 1);
    assert_memory_equal(resp->body + sizeof part1 - 1, part2, sizeof part2);
    assert_memory_equal(resp->body + sizeof part1 - 1 + sizeof part2, part3, sizeof part3 - 1);
}

static void test_slices_written_and_released_once(void **state)
{
    (void)state;
    remoting_client_t *cli = client();
    for (int i = 1; i <= 20; i++) {
        struct rcmd req, *resp;
        rcmd_init_request(&req, T_SLICES);
        assert_int_equal(remoting_client_invoke_sync(cli, &req, 5000, &resp), 0);
        check_body(resp);
        rcmd_free(resp);
        assert_true(wait_released(i));
    }
    /* Without a release callback the slices are copied: same bytes, nothing released. */
    struct rcmd req, *resp;
    rcmd_init_request(&req, T_COPY);
    assert_int_equal(remoting_client_invoke_sync(cli, &req, 5000, &resp), 0);
    check_body(resp);
    rcmd_free(resp);
    pthread_mutex_lock(&mu);
    assert_int_equal(released, 20);
    pthread_mutex_unlock(&mu);
    remoting_client_free(cli);
}

static void test_released_on_every_error_path(void **state)
{
    (void)state;
    remoting_client_t *cli = client();
    struct rcmd req, *resp;
    /* body_len not matching the slices: refused (FERRY_EINVAL) and released. */
    rcmd_init_request(&req, T_BADLEN);
    assert_int_equal(remoting_client_invoke_sync(cli, &req, 5000, &resp), 0);
    assert_int_equal(resp->code, RESP_SYSTEM_ERROR);
    rcmd_free(resp);
    assert_true(wait_released(1));
    pthread_mutex_lock(&mu);
    assert_int_equal(respond_rc, FERRY_EINVAL);
    pthread_mutex_unlock(&mu);

    /* A oneway request: the answer is dropped, the slices released. */
    rcmd_init_request(&req, T_SLICES);
    assert_int_equal(remoting_client_invoke_oneway(cli, &req), 0);
    assert_true(wait_released(2));

    /* The connection is gone before the answer: -ENOTCONN and released. */
    rcmd_init_request(&req, T_HOLD);
    assert_int_equal(remoting_client_invoke_oneway(cli, &req), 0);
    struct timespec dl = clock_deadline_ts(5000 * test_time_mult());
    pthread_mutex_lock(&mu);
    while (!held_conn)
        if (pthread_cond_timedwait(&cond, &mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&mu);
    assert_non_null(held_conn);
    remoting_client_free(cli);
    int64_t end = clock_mono_ms() + 5000 * test_time_mult();
    while (remoting_conn_is_open(held_conn) && clock_mono_ms() < end) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    struct rcmd out;
    held_req->flag = 0; /* answer it as if it had been a normal request */
    rcmd_init_response(&out, held_req, RESP_SUCCESS, NULL);
    fill_resp(&out, 1, total_len());
    assert_int_equal(remoting_respond(held_conn, &out), -ENOTCONN);
    assert_true(wait_released(3));
    remoting_conn_unref(held_conn);
    rcmd_free(held_req);
    held_conn = NULL;
    held_req = NULL;
}

static void test_dup_flattens_slices(void **state)
{
    (void)state;
    struct rcmd cmd;
    rcmd_init_request(&cmd, T_SLICES);
    fill_resp(&cmd, 0, total_len());
    struct rcmd *d = rcmd_dup(&cmd);
    assert_null(d->body_iov);
    check_body(d);
    rcmd_free(d);
    uint8_t *frame;
    size_t len;
    assert_int_equal(frame_encode(&cmd, &frame, &len), 0);
    struct rcmd back;
    memset(&back, 0xAB, sizeof back); /* a decoded command has no multi-slice body */
    assert_int_equal(frame_decode(frame, len, &back, NULL, 0), 0);
    assert_null(back.body_iov);
    assert_int_equal(back.body_iovcnt, 0);
    check_body(&back);
    ferry_free(frame);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slices_written_and_released_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_released_on_every_error_path, setup, teardown),
        cmocka_unit_test(test_dup_flattens_slices),
    };
    return cmocka_run_group_tests_name("remoting-iov", tests, NULL, NULL);
}
