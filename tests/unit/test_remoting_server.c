/* Server and client over real sockets on 127.0.0.1 (free ports picked by the kernel).
 * Every wait is on a condition with a deadline (condition variables for handler and callback
 * events, a short poll for server counters); nothing sleeps a fixed time. */
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

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Test-only request codes (unused by RocketMQ 4.x). */
enum {
    T_HOLD = 1000,     /* kept unanswered until the test answers it */
    T_ECHO = 1001,     /* answered at once with ext echo=<i> and the same body */
    T_ONEWAY = 1002,   /* counts calls, "answers" (which must be dropped) */
    T_COUNT = 1003,    /* answers with ext count=<oneway calls so far> */
    T_CLOSE = 1004,    /* closes its connection without answering */
    T_BIG = 1005,      /* answers with a BIG_BODY-byte borrowed body */
    T_NOANSWER = 1006, /* client side: never answered */
    T_UNKNOWN = 9999,
};

#define MAX_HELD 512
#define BIG_BODY (64 * 1024)

struct held {
    conn_t *conn;
    struct rcmd *req;
};

/* Everything the handlers and callbacks of one test share. */
struct tstate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct held held[MAX_HELD];
    int n_held;
    int respond_on_io; /* T_HOLD: the handler answers the batch itself when it is complete */
    int batch;
    int oneway_calls;
    int client_oneway_calls;
    int cb_calls;
    int cb_status[MAX_HELD];
    int seen[MAX_HELD];
    atomic_int bad; /* set without ts.mu: handlers may fail while the test holds it */
    char bad_what[160];
    conn_t *hb_conn;
    atomic_int released;
    atomic_int big_sent;
    int opened, closed;
};

static struct tstate ts;
static uint8_t big_body[BIG_BODY];

static void ts_reset(void)
{
    memset(&ts, 0, sizeof ts);
    pthread_mutex_init(&ts.mu, NULL);
    pthread_cond_init(&ts.cond, NULL);
}

static void ts_bad(const char *what)
{
    if (atomic_exchange(&ts.bad, 1) == 0)
        snprintf(ts.bad_what, sizeof ts.bad_what, "%s", what);
}

static int deadline_ms(int ms)
{
    return ms * test_time_mult();
}

/* Wait (ts.mu held) until @pred holds or @ms pass. */
static int wait_locked(int (*pred)(void *), void *arg, int ms)
{
    struct timespec dl = clock_deadline_ts(deadline_ms(ms));
    while (!pred(arg))
        if (pthread_cond_timedwait(&ts.cond, &ts.mu, &dl) == ETIMEDOUT)
            return pred(arg);
    return 1;
}

static int wait_for(int (*pred)(void *), void *arg, int ms)
{
    pthread_mutex_lock(&ts.mu);
    int ok = wait_locked(pred, arg, ms);
    pthread_mutex_unlock(&ts.mu);
    return ok;
}

/* For counters that have no condition variable (server stats): check every millisecond. */
static int poll_for(int (*pred)(void *), void *arg, int ms)
{
    int64_t end = clock_mono_ms() + deadline_ms(ms);
    while (!pred(arg)) {
        if (clock_mono_ms() > end)
            return pred(arg);
        struct timespec t = {0, 1000000};
        nanosleep(&t, NULL);
    }
    return 1;
}

static int pred_held(void *arg)
{
    return ts.n_held >= (int)(intptr_t)arg || atomic_load(&ts.bad);
}

static int pred_cb(void *arg)
{
    return ts.cb_calls >= (int)(intptr_t)arg || atomic_load(&ts.bad);
}

/* ---- server handlers (on server I/O threads) ------------------------------------------- */

static void respond_echo(conn_t *conn, const struct rcmd *req)
{
    struct rcmd resp;
    const struct rstr *i = rcmd_ext_get(req, "i");

    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    if (i)
        rcmd_ext_addn(&resp, "echo", 4, i->p, i->len);
    resp.body = req->body;
    resp.body_len = req->body_len;
    if (remoting_respond(conn, &resp) != 0)
        ts_bad("respond echo");
}

static void h_echo(conn_t *conn, const struct rcmd *req, void *arg)
{
    respond_echo(conn, req);
}

static void answer_held(int k)
{
    respond_echo(ts.held[k].conn, ts.held[k].req);
    remoting_conn_unref(ts.held[k].conn);
    rcmd_free(ts.held[k].req);
    ts.held[k].conn = NULL;
    ts.held[k].req = NULL;
}

static void h_hold(conn_t *conn, const struct rcmd *req, void *arg)
{
    pthread_mutex_lock(&ts.mu);
    if (ts.n_held >= MAX_HELD) {
        pthread_mutex_unlock(&ts.mu);
        ts_bad("too many held");
        return;
    }
    remoting_conn_ref(conn);
    ts.held[ts.n_held].conn = conn;
    ts.held[ts.n_held].req = rcmd_dup(req);
    ts.n_held++;
    if (ts.respond_on_io && ts.n_held == ts.batch) {
        for (int k = ts.n_held - 1; k >= 0; k--) /* newest first */
            answer_held(k);
    }
    pthread_cond_broadcast(&ts.cond);
    pthread_mutex_unlock(&ts.mu);
}

static void release_held(void)
{
    pthread_mutex_lock(&ts.mu);
    for (int k = 0; k < ts.n_held; k++) {
        remoting_conn_unref(ts.held[k].conn);
        rcmd_free(ts.held[k].req);
        ts.held[k].conn = NULL;
        ts.held[k].req = NULL;
    }
    ts.n_held = 0;
    pthread_mutex_unlock(&ts.mu);
}

static void h_oneway(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct rcmd resp;

    pthread_mutex_lock(&ts.mu);
    ts.oneway_calls++;
    pthread_mutex_unlock(&ts.mu);
    /* A processor written without caring about oneway: the answer must be dropped. */
    rcmd_init_response(&resp, req, RESP_SUCCESS, "should never be sent");
    if (remoting_respond(conn, &resp) != 0)
        ts_bad("respond to oneway");
}

static void h_count(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct rcmd resp;

    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    pthread_mutex_lock(&ts.mu);
    rcmd_ext_add_i64(&resp, "count", ts.oneway_calls);
    pthread_mutex_unlock(&ts.mu);
    remoting_respond(conn, &resp);
}

static void h_close(conn_t *conn, const struct rcmd *req, void *arg)
{
    remoting_conn_close(conn);
}

static void release_big(void *ctx)
{
    atomic_fetch_add(&ts.released, 1);
}

static void h_big(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct rcmd resp;

    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    resp.body = big_body;
    resp.body_len = sizeof big_body;
    resp.body_release = release_big; /* zero-copy: released after the write or the close */
    atomic_fetch_add(&ts.big_sent, 1);
    remoting_respond(conn, &resp);
}

static void h_heartbeat(conn_t *conn, const struct rcmd *req, void *arg)
{
    pthread_mutex_lock(&ts.mu);
    if (!ts.hb_conn) {
        remoting_conn_ref(conn);
        ts.hb_conn = conn;
    }
    pthread_cond_broadcast(&ts.cond);
    pthread_mutex_unlock(&ts.mu);
    respond_echo(conn, req);
}

static void on_open(conn_t *conn, void *arg)
{
    pthread_mutex_lock(&ts.mu);
    ts.opened++;
    pthread_mutex_unlock(&ts.mu);
}

static void on_close(conn_t *conn, void *arg)
{
    pthread_mutex_lock(&ts.mu);
    ts.closed++;
    pthread_cond_broadcast(&ts.cond);
    pthread_mutex_unlock(&ts.mu);
}

static remoting_server_t *start_server(int idle_s, size_t max_out)
{
    struct remoting_server_config cfg;
    remoting_server_t *srv;
    char err[200] = "";

    remoting_server_config_init(&cfg);
    cfg.bind_addr = "127.0.0.1";
    cfg.io_threads = 3;
    cfg.idle_close_seconds = idle_s;
    if (max_out)
        cfg.max_out_bytes = max_out;
    cfg.max_frame = 1024 * 1024;
    cfg.on_open = on_open;
    cfg.on_close = on_close;
    assert_int_equal(remoting_server_new(&cfg, &srv), 0);
    assert_int_equal(remoting_server_register(srv, T_HOLD, h_hold, NULL), 0);
    assert_int_equal(remoting_server_register(srv, T_ECHO, h_echo, NULL), 0);
    assert_int_equal(remoting_server_register(srv, T_ONEWAY, h_oneway, NULL), 0);
    assert_int_equal(remoting_server_register(srv, T_COUNT, h_count, NULL), 0);
    assert_int_equal(remoting_server_register(srv, T_CLOSE, h_close, NULL), 0);
    assert_int_equal(remoting_server_register(srv, T_BIG, h_big, NULL), 0);
    assert_int_equal(remoting_server_register(srv, REQ_HEART_BEAT, h_heartbeat, NULL), 0);
    if (remoting_server_start(srv, err, sizeof err) != 0)
        fail_msg("server start: %s", err);
    assert_true(remoting_server_port(srv) > 0);
    /* The table is frozen once started. */
    assert_int_equal(remoting_server_register(srv, 1, h_echo, NULL), FERRY_EINVAL);
    return srv;
}

static remoting_client_t *new_client(void)
{
    struct remoting_client_config cfg;
    remoting_client_t *cli;

    remoting_client_config_init(&cfg);
    assert_int_equal(remoting_client_new(&cfg, &cli), 0);
    return cli;
}

static void connect_client(remoting_client_t *cli, int port)
{
    char addr[64], err[200] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (remoting_client_connect(cli, addr, deadline_ms(5000), err, sizeof err) != 0)
        fail_msg("connect: %s", err);
}

static remoting_client_t *client_for(remoting_server_t *srv)
{
    remoting_client_t *cli = new_client();
    connect_client(cli, remoting_server_port(srv));
    return cli;
}

/* A synchronous echo round trip; also a barrier: everything sent before on this connection
 * has been processed by the server once it returns. Returns 0 or an error (no cmocka asserts:
 * worker threads call it). */
static int echo_try(remoting_client_t *cli, int i)
{
    struct rcmd req, *resp = NULL;
    char body[32];
    int64_t echo = -1;

    rcmd_init_request(&req, T_ECHO);
    rcmd_ext_add_i64(&req, "i", i);
    snprintf(body, sizeof body, "body-%d", i);
    req.body = (const uint8_t *)body;
    req.body_len = strlen(body);
    int rc = remoting_client_invoke_sync(cli, &req, deadline_ms(5000), &resp);
    if (rc != 0)
        return rc;
    if (resp->code != RESP_SUCCESS || rcmd_ext_get_i64(resp, "echo", &echo) != 0 || echo != i ||
        resp->body_len != strlen(body) || memcmp(resp->body, body, resp->body_len) != 0)
        rc = FERRY_EPROTO;
    rcmd_free(resp);
    return rc;
}

static void echo_ok(remoting_client_t *cli, int i)
{
    int rc = echo_try(cli, i);
    if (rc != 0)
        fail_msg("echo %d: %s", i, ferry_strerror(rc));
}

/* ---- raw sockets: to send bytes our client never would and to read exactly what comes back */

static int raw_connect(int port, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5 * test_time_mult()};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void raw_send_cmd(int fd, const struct rcmd *cmd)
{
    uint8_t *frame;
    size_t len;
    assert_int_equal(frame_encode(cmd, &frame, &len), 0);
    raw_send(fd, frame, len);
    ferry_free(frame);
}

/* Read exactly @n bytes. Returns 0, or -1 on EOF, error or the receive timeout. */
static int raw_read(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = recv(fd, b, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Read one frame into @buf and decode it into @cmd. */
static void raw_read_cmd(int fd, uint8_t *buf, size_t cap, struct rcmd *cmd)
{
    char err[160];
    size_t flen;
    assert_int_equal(raw_read(fd, buf, 4), 0);
    assert_int_equal(frame_peek(buf, 4, cap, &flen, err, sizeof err), 0);
    assert_int_equal(raw_read(fd, buf + 4, flen - 4), 0);
    assert_int_equal(frame_decode(buf, flen, cmd, err, sizeof err), 0);
}

/* The server closed the connection: recv reaches EOF (or a reset) before the timeout. */
static int raw_closed_by_peer(int fd)
{
    uint8_t b[65536];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return 0; /* timeout */
    }
}

/* ---- client callbacks ------------------------------------------------------------------ */

struct expect {
    int i;
    enum rcmd_ser ser;
};

static struct expect expects[MAX_HELD];

static void cb_echo(int status, const struct rcmd *resp, void *arg)
{
    struct expect *e = arg;
    int64_t echo = -1;
    char body[32];

    if (status != 0) {
        ts_bad("echo callback failed");
        return;
    }
    snprintf(body, sizeof body, "body-%d", e->i);
    if (resp->ser != e->ser || rcmd_ext_get_i64(resp, "echo", &echo) != 0 || echo != e->i ||
        resp->body_len != strlen(body) || memcmp(resp->body, body, resp->body_len) != 0 ||
        !(resp->flag & RCMD_FLAG_RESPONSE))
        ts_bad("echo callback: wrong response");
    pthread_mutex_lock(&ts.mu);
    ts.seen[e->i]++;
    ts.cb_calls++;
    pthread_cond_broadcast(&ts.cond);
    pthread_mutex_unlock(&ts.mu);
}

static void cb_record(int status, const struct rcmd *resp, void *arg)
{
    int k = (int)(intptr_t)arg;

    if ((status == 0) != (resp != NULL))
        ts_bad("status and response disagree");
    pthread_mutex_lock(&ts.mu);
    ts.cb_status[k] = status;
    ts.seen[k]++;
    ts.cb_calls++;
    pthread_cond_broadcast(&ts.cond);
    pthread_mutex_unlock(&ts.mu);
}

/* Send @n T_HOLD requests, alternating JSON and binary headers, each with its own body. */
static void send_batch(remoting_client_t *cli, int n, char bodies[][32])
{
    for (int i = 0; i < n; i++) {
        struct rcmd req;
        rcmd_init_request(&req, T_HOLD);
        req.ser = i % 2 ? RCMD_SER_ROCKETMQ : RCMD_SER_JSON;
        rcmd_ext_add_i64(&req, "i", i);
        snprintf(bodies[i], 32, "body-%d", i);
        req.body = (const uint8_t *)bodies[i];
        req.body_len = strlen(bodies[i]);
        expects[i] = (struct expect){i, req.ser};
        assert_int_equal(
            remoting_client_invoke_async(cli, &req, deadline_ms(10000), cb_echo, &expects[i]), 0);
    }
}

/* ---- tests ----------------------------------------------------------------------------- */

#define N_OOO 300

static void test_out_of_order(void **state)
{
    static char bodies[N_OOO][32];
    uint64_t rng = test_seed();

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *cli = client_for(srv);

    /* Batch 1: all outstanding at once, answered by the test thread in a random order
     * (remoting_respond from a foreign thread). */
    send_batch(cli, N_OOO, bodies);
    pthread_mutex_lock(&ts.mu);
    assert_true(wait_locked(pred_held, (void *)(intptr_t)N_OOO, 10000));
    assert_false(atomic_load(&ts.bad));
    int order[N_OOO];
    for (int i = 0; i < N_OOO; i++)
        order[i] = i;
    for (int i = N_OOO - 1; i > 0; i--) {
        int j = (int)(test_rand(&rng) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N_OOO; i++)
        answer_held(order[i]);
    assert_true(wait_locked(pred_cb, (void *)(intptr_t)N_OOO, 10000));
    if (atomic_load(&ts.bad))
        fail_msg("%s", ts.bad_what);
    for (int i = 0; i < N_OOO; i++)
        assert_int_equal(ts.seen[i], 1);

    /* Batch 2: answered newest first by the handler itself, on the I/O thread. */
    ts.n_held = 0;
    ts.cb_calls = 0;
    memset(ts.seen, 0, sizeof ts.seen);
    ts.respond_on_io = 1;
    ts.batch = N_OOO;
    pthread_mutex_unlock(&ts.mu);
    send_batch(cli, N_OOO, bodies);
    pthread_mutex_lock(&ts.mu);
    assert_true(wait_locked(pred_cb, (void *)(intptr_t)N_OOO, 10000));
    if (atomic_load(&ts.bad))
        fail_msg("%s", ts.bad_what);
    for (int i = 0; i < N_OOO; i++)
        assert_int_equal(ts.seen[i], 1);
    pthread_mutex_unlock(&ts.mu);

    remoting_client_free(cli);
    remoting_server_free(srv);
    release_held();
}

struct sync_arg {
    remoting_client_t *cli;
    int base;
};

static void *sync_worker(void *p)
{
    struct sync_arg *a = p;
    for (int i = 0; i < 200; i++)
        if (echo_try(a->cli, a->base + i) != 0)
            ts_bad("sync echo from a worker thread");
    return NULL;
}

/* Several threads share one client with blocking calls; two clients land on different I/O
 * threads. */
static void test_sync_many_threads(void **state)
{
    pthread_t th[4];
    struct sync_arg args[4];

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *c1 = client_for(srv);
    remoting_client_t *c2 = client_for(srv);
    for (int t = 0; t < 4; t++) {
        args[t] = (struct sync_arg){t % 2 ? c2 : c1, t * 1000};
        assert_int_equal(pthread_create(&th[t], NULL, sync_worker, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    if (atomic_load(&ts.bad))
        fail_msg("%s", ts.bad_what);
    struct remoting_server_stats st;
    remoting_server_stats(srv, &st);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.accepted, 2);
    remoting_client_free(c1);
    remoting_client_free(c2);
    remoting_server_free(srv);
    assert_int_equal(ts.opened, 2);
    assert_int_equal(ts.closed, 2);
}

static void test_oneway(void **state)
{
    uint8_t buf[4096];
    struct rcmd req, resp;

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    int fd = raw_connect(remoting_server_port(srv), 0);

    /* A oneway request to a handler that tries to answer, and one with an unknown code. */
    rcmd_init_request(&req, T_ONEWAY);
    req.flag = RCMD_FLAG_ONEWAY;
    req.opaque = 1;
    raw_send_cmd(fd, &req);
    rcmd_init_request(&req, T_UNKNOWN);
    req.flag = RCMD_FLAG_ONEWAY;
    req.opaque = 2;
    req.ser = RCMD_SER_ROCKETMQ;
    raw_send_cmd(fd, &req);
    rcmd_init_request(&req, T_COUNT);
    req.opaque = 3;
    raw_send_cmd(fd, &req);

    /* The first frame back answers opaque 3: nothing was sent for 1 and 2. */
    raw_read_cmd(fd, buf, sizeof buf, &resp);
    assert_int_equal(resp.opaque, 3);
    assert_int_equal(resp.flag, RCMD_FLAG_RESPONSE);
    int64_t count = -1;
    assert_int_equal(rcmd_ext_get_i64(&resp, "count", &count), 0);
    assert_true(count == 1);
    uint8_t extra;
    assert_int_equal(recv(fd, &extra, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    close(fd);

    /* Through the client API as well. */
    remoting_client_t *cli = client_for(srv);
    rcmd_init_request(&req, T_ONEWAY);
    for (int i = 0; i < 10; i++)
        assert_int_equal(remoting_client_invoke_oneway(cli, &req), 0);
    echo_ok(cli, 1); /* ordered after the oneways on the same connection */
    pthread_mutex_lock(&ts.mu);
    assert_int_equal(ts.oneway_calls, 11);
    pthread_mutex_unlock(&ts.mu);
    remoting_client_free(cli);
    remoting_server_free(srv);
}

static void test_unknown_code(void **state)
{
    struct rcmd req, *resp = NULL;

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *cli = client_for(srv);
    for (int ser = 0; ser < 2; ser++) {
        rcmd_init_request(&req, T_UNKNOWN);
        req.ser = (enum rcmd_ser)ser;
        assert_int_equal(remoting_client_invoke_sync(cli, &req, deadline_ms(5000), &resp), 0);
        assert_int_equal(resp->code, RESP_REQUEST_CODE_NOT_SUPPORTED);
        assert_int_equal(resp->ser, ser);
        assert_non_null(resp->remark.p);
        assert_string_equal(resp->remark.p, "request type 9999 not supported");
        rcmd_free(resp);
    }
    remoting_client_free(cli);
    remoting_server_free(srv);
}

struct stat_want {
    remoting_server_t *srv;
    uint64_t proto, idle, overflow;
};

static int pred_stats(void *arg)
{
    struct stat_want *w = arg;
    struct remoting_server_stats st;
    remoting_server_stats(w->srv, &st);
    return st.proto_errors >= w->proto && st.idle_closed >= w->idle &&
           st.overflow_closed >= w->overflow;
}

/* Garbage, an oversize length and a malformed header each close their own connection only. */
static void test_bad_frames_close_only_their_connection(void **state)
{
    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    int port = remoting_server_port(srv);
    remoting_client_t *good = client_for(srv);
    echo_ok(good, 1);

    int fd = raw_connect(port, 0);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, http, sizeof http - 1);
    assert_true(raw_closed_by_peer(fd));
    close(fd);
    echo_ok(good, 2);

    fd = raw_connect(port, 0);
    const uint8_t oversize[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10}; /* 16 MiB */
    raw_send(fd, oversize, sizeof oversize);
    assert_true(raw_closed_by_peer(fd));
    close(fd);
    echo_ok(good, 3);

    fd = raw_connect(port, 0);
    const char bad_json[] = "\x00\x00\x00\x0b\x00\x00\x00\x07{code:1";
    raw_send(fd, bad_json, sizeof bad_json - 1);
    assert_true(raw_closed_by_peer(fd));
    close(fd);

    /* A valid frame and then garbage on one connection: the first is still answered. */
    fd = raw_connect(port, 0);
    struct rcmd req, resp;
    uint8_t buf[4096];
    rcmd_init_request(&req, T_ECHO);
    req.opaque = 77;
    raw_send_cmd(fd, &req);
    raw_send(fd, "\xff\xff\xff\xff", 4);
    raw_read_cmd(fd, buf, sizeof buf, &resp);
    assert_int_equal(resp.opaque, 77);
    assert_true(raw_closed_by_peer(fd));
    close(fd);

    struct stat_want w = {srv, 4, 0, 0};
    assert_true(poll_for(pred_stats, &w, 5000));
    echo_ok(good, 4);
    assert_true(remoting_client_is_connected(good));
    struct remoting_server_stats st;
    remoting_server_stats(srv, &st);
    assert_int_equal(st.proto_errors, 4);
    remoting_client_free(good);
    remoting_server_free(srv);
}

static int pred_disconnected(void *arg)
{
    return !remoting_client_is_connected(arg);
}

static void test_idle_close(void **state)
{
    ts_reset();
    remoting_server_t *srv = start_server(1, 0);
    remoting_client_t *idle = client_for(srv);
    remoting_client_t *busy = client_for(srv);

    /* Keep one connection busy until the other has been closed for idleness. */
    int64_t end = clock_mono_ms() + deadline_ms(10000);
    int i = 0;
    while (remoting_client_is_connected(idle) && clock_mono_ms() < end)
        echo_ok(busy, i++);
    assert_false(remoting_client_is_connected(idle));
    assert_true(remoting_client_is_connected(busy));
    echo_ok(busy, i);
    struct rcmd req;
    rcmd_init_request(&req, T_ECHO);
    assert_int_equal(remoting_client_invoke_async(idle, &req, 1000, cb_record, NULL), -ENOTCONN);
    struct stat_want w = {srv, 0, 1, 0};
    assert_true(poll_for(pred_stats, &w, 1000));

    /* The busy one is closed too once it stops. */
    assert_true(poll_for(pred_disconnected, busy, 10000));
    remoting_client_free(idle);
    remoting_client_free(busy);
    remoting_server_free(srv);
    assert_int_equal(ts.cb_calls, 0);
}

/* ---- client-side handlers for server-initiated requests --------------------------------- */

static void ch_check_txn(conn_t *conn, const struct rcmd *req, void *arg)
{
    struct rcmd resp;
    const struct rstr *id = rcmd_ext_get(req, "msgId");

    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    rcmd_ext_add(&resp, "state", "COMMIT");
    if (id)
        rcmd_ext_addn(&resp, "msgId", 5, id->p, id->len);
    remoting_respond(conn, &resp);
}

static void ch_notify(conn_t *conn, const struct rcmd *req, void *arg)
{
    pthread_mutex_lock(&ts.mu);
    ts.client_oneway_calls++;
    pthread_cond_broadcast(&ts.cond);
    pthread_mutex_unlock(&ts.mu);
}

static void ch_never(conn_t *conn, const struct rcmd *req, void *arg)
{
}

static struct rcmd *srv_resp;

static void cb_server_side(int status, const struct rcmd *resp, void *arg)
{
    pthread_mutex_lock(&ts.mu);
    if (resp) {
        rcmd_free(srv_resp);
        srv_resp = rcmd_dup(resp);
    }
    pthread_mutex_unlock(&ts.mu);
    cb_record(status, resp, arg);
}

static int pred_hb(void *arg)
{
    return ts.hb_conn != NULL;
}

static int pred_client_oneway(void *arg)
{
    return ts.client_oneway_calls >= 1;
}

static void test_server_invokes_client(void **state)
{
    struct rcmd req;

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *cli = new_client();
    assert_int_equal(remoting_client_register(cli, REQ_CHECK_TRANSACTION_STATE, ch_check_txn, 0),
                     0);
    assert_int_equal(remoting_client_register(cli, REQ_NOTIFY_CONSUMER_IDS_CHANGED, ch_notify, 0),
                     0);
    assert_int_equal(remoting_client_register(cli, T_NOANSWER, ch_never, 0), 0);
    connect_client(cli, remoting_server_port(srv));
    assert_int_equal(remoting_client_register(cli, 1, ch_never, 0), FERRY_EINVAL);

    /* The client's heartbeat tells the server which connection to call back on. */
    struct rcmd hb, *resp;
    rcmd_init_request(&hb, REQ_HEART_BEAT);
    assert_int_equal(remoting_client_invoke_sync(cli, &hb, deadline_ms(5000), &resp), 0);
    rcmd_free(resp);
    assert_true(wait_for(pred_hb, NULL, 5000));
    conn_t *conn = ts.hb_conn;

    /* Transaction check-back, answered by the client's handler. */
    rcmd_init_request(&req, REQ_CHECK_TRANSACTION_STATE);
    rcmd_ext_add(&req, "msgId", "7F00000100002A9F0000000000001A2B");
    assert_int_equal(
        remoting_conn_invoke(conn, &req, deadline_ms(5000), cb_server_side, (void *)(intptr_t)0),
        0);
    assert_true(wait_for(pred_cb, (void *)(intptr_t)1, 5000));
    assert_int_equal(ts.cb_status[0], 0);
    assert_int_equal(srv_resp->code, RESP_SUCCESS);
    assert_string_equal(rcmd_ext_get(srv_resp, "state")->p, "COMMIT");
    assert_string_equal(rcmd_ext_get(srv_resp, "msgId")->p, "7F00000100002A9F0000000000001A2B");

    /* An unknown code on the client side is answered with 3. */
    rcmd_init_request(&req, T_UNKNOWN);
    assert_int_equal(
        remoting_conn_invoke(conn, &req, deadline_ms(5000), cb_server_side, (void *)(intptr_t)1),
        0);
    assert_true(wait_for(pred_cb, (void *)(intptr_t)2, 5000));
    assert_int_equal(ts.cb_status[1], 0);
    assert_int_equal(srv_resp->code, RESP_REQUEST_CODE_NOT_SUPPORTED);

    /* No answer: the server's callback gets -ETIMEDOUT, once. */
    rcmd_init_request(&req, T_NOANSWER);
    assert_int_equal(remoting_conn_invoke(conn, &req, 100, cb_server_side, (void *)(intptr_t)2), 0);
    assert_true(wait_for(pred_cb, (void *)(intptr_t)3, 5000));
    assert_int_equal(ts.cb_status[2], -ETIMEDOUT);

    /* Oneway to the client. */
    rcmd_init_request(&req, REQ_NOTIFY_CONSUMER_IDS_CHANGED);
    assert_int_equal(remoting_conn_oneway(conn, &req), 0);
    assert_true(wait_for(pred_client_oneway, NULL, 5000));

    /* Bad arguments: an error and no callback. */
    assert_int_equal(remoting_conn_invoke(conn, &req, 0, cb_server_side, NULL), FERRY_EINVAL);
    assert_int_equal(remoting_conn_invoke(conn, &req, 100, NULL, NULL), FERRY_EINVAL);

    remoting_client_free(cli);
    pthread_mutex_lock(&ts.mu);
    for (int k = 0; k < 3; k++)
        assert_int_equal(ts.seen[k], 1);
    assert_int_equal(ts.cb_calls, 3);
    pthread_mutex_unlock(&ts.mu);

    /* Server gone, connection object still referenced: calls fail cleanly. */
    remoting_server_free(srv);
    assert_false(remoting_conn_is_open(conn));
    assert_int_equal(remoting_conn_invoke(conn, &req, 100, cb_server_side, NULL), -ENOTCONN);
    struct rcmd r;
    rcmd_init_response(&r, &req, RESP_SUCCESS, NULL);
    assert_int_equal(remoting_respond(conn, &r), -ENOTCONN);
    remoting_conn_close(conn);
    remoting_conn_unref(conn);
    rcmd_free(srv_resp);
    srv_resp = NULL;
}

static void test_async_timeout_exactly_once(void **state)
{
    struct rcmd req;

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *cli = client_for(srv);

    rcmd_init_request(&req, T_HOLD);
    rcmd_ext_add_i64(&req, "i", 0);
    assert_int_equal(remoting_client_invoke_async(cli, &req, 100, cb_record, (void *)0), 0);
    assert_true(wait_for(pred_cb, (void *)(intptr_t)1, 5000));
    assert_int_equal(ts.cb_status[0], -ETIMEDOUT);

    /* The answer arrives late: it is dropped, and the callback is not run again. */
    assert_true(wait_for(pred_held, (void *)(intptr_t)1, 5000));
    pthread_mutex_lock(&ts.mu);
    answer_held(0);
    ts.n_held = 0;
    pthread_mutex_unlock(&ts.mu);
    echo_ok(cli, 5); /* the late answer was read before this one */
    pthread_mutex_lock(&ts.mu);
    assert_int_equal(ts.seen[0], 1);
    assert_int_equal(ts.cb_calls, 1);
    pthread_mutex_unlock(&ts.mu);
    assert_true(remoting_client_is_connected(cli));

    /* A sync call that times out. */
    struct rcmd *resp = (struct rcmd *)1;
    assert_int_equal(remoting_client_invoke_sync(cli, &req, 50, &resp), -ETIMEDOUT);
    assert_null(resp);

    remoting_client_free(cli);
    remoting_server_free(srv);
    release_held();
}

static remoting_client_t *shared_client_for(remoting_server_t *srv)
{
    struct remoting_client_config cfg;
    remoting_client_t *cli;

    remoting_client_config_init(&cfg);
    cfg.shared_io = 1;
    assert_int_equal(remoting_client_new(&cfg, &cli), 0);
    connect_client(cli, remoting_server_port(srv));
    return cli;
}

/* Clients on the shared I/O threads, and the per-connection deadline list: a shorter timeout
 * queued after a longer one still fires first and alone; freeing one shared client cancels
 * its pending requests and leaves the others working; the threads start again after the last
 * shared client was freed. */
static void test_shared_io_and_deadlines(void **state)
{
    struct rcmd req;

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *a = shared_client_for(srv), *b = shared_client_for(srv);

    rcmd_init_request(&req, T_HOLD);
    assert_int_equal(
        remoting_client_invoke_async(a, &req, deadline_ms(30000), cb_record, (void *)0), 0);
    assert_int_equal(remoting_client_invoke_async(a, &req, 150, cb_record, (void *)1), 0);
    assert_int_equal(remoting_client_invoke_async(a, &req, 100, cb_record, (void *)2), 0);
    assert_true(wait_for(pred_cb, (void *)(intptr_t)2, 5000));
    echo_ok(b, 7);
    echo_ok(a, 8);
    pthread_mutex_lock(&ts.mu);
    assert_int_equal(ts.cb_calls, 2);
    assert_int_equal(ts.cb_status[1], -ETIMEDOUT);
    assert_int_equal(ts.cb_status[2], -ETIMEDOUT);
    assert_int_equal(ts.seen[0], 0); /* its deadline is far: still pending */
    pthread_mutex_unlock(&ts.mu);

    remoting_client_free(a); /* on a thread that goes on for b */
    pthread_mutex_lock(&ts.mu);
    assert_int_equal(ts.cb_calls, 3);
    assert_int_equal(ts.cb_status[0], -ECANCELED);
    pthread_mutex_unlock(&ts.mu);
    echo_ok(b, 9);
    remoting_client_free(b);

    remoting_client_t *c = shared_client_for(srv); /* the threads start again */
    echo_ok(c, 10);
    remoting_client_free(c);
    remoting_server_free(srv);
    release_held();
}

static void test_async_connection_loss(void **state)
{
    struct rcmd req;

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    remoting_client_t *cli = client_for(srv);

    /* One request outstanding, then one that makes the server close the connection. */
    rcmd_init_request(&req, T_HOLD);
    assert_int_equal(
        remoting_client_invoke_async(cli, &req, deadline_ms(30000), cb_record, (void *)0), 0);
    rcmd_init_request(&req, T_CLOSE);
    assert_int_equal(
        remoting_client_invoke_async(cli, &req, deadline_ms(30000), cb_record, (void *)1), 0);
    assert_true(wait_for(pred_cb, (void *)(intptr_t)2, 5000));
    assert_int_equal(ts.cb_status[0], -ECONNRESET);
    assert_int_equal(ts.cb_status[1], -ECONNRESET);
    assert_true(poll_for(pred_disconnected, cli, 5000));

    /* Disconnected: an error at once and no callback. */
    assert_int_equal(remoting_client_invoke_async(cli, &req, 1000, cb_record, (void *)2),
                     -ENOTCONN);
    assert_int_equal(remoting_client_invoke_oneway(cli, &req), -ENOTCONN);
    struct rcmd *resp;
    assert_int_equal(remoting_client_invoke_sync(cli, &req, 1000, &resp), -ENOTCONN);

    /* Reconnect, and then lose the connection by freeing the client: -ECANCELED. */
    connect_client(cli, remoting_server_port(srv));
    echo_ok(cli, 1);
    char err[100];
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", remoting_server_port(srv));
    assert_int_equal(remoting_client_connect(cli, addr, 1000, err, sizeof err), -EISCONN);
    rcmd_init_request(&req, T_HOLD);
    assert_int_equal(
        remoting_client_invoke_async(cli, &req, deadline_ms(30000), cb_record, (void *)3), 0);
    assert_true(wait_for(pred_held, (void *)(intptr_t)2, 5000));
    remoting_client_free(cli);
    pthread_mutex_lock(&ts.mu);
    assert_int_equal(ts.cb_calls, 3);
    assert_int_equal(ts.cb_status[3], -ECANCELED);
    for (int k = 0; k < 4; k++)
        assert_int_equal(ts.seen[k], k == 2 ? 0 : 1);
    pthread_mutex_unlock(&ts.mu);

    /* The server side answers the held requests into closed connections: -ENOTCONN. */
    pthread_mutex_lock(&ts.mu);
    for (int k = 0; k < ts.n_held; k++) {
        struct rcmd r;
        rcmd_init_response(&r, ts.held[k].req, RESP_SUCCESS, NULL);
        int rc = remoting_respond(ts.held[k].conn, &r);
        assert_true(rc == -ENOTCONN || rc == 0); /* the close may not be processed yet */
    }
    pthread_mutex_unlock(&ts.mu);
    remoting_server_free(srv);
    release_held();
}

static int pred_released(void *arg)
{
    return atomic_load(&ts.released) == atomic_load(&ts.big_sent);
}

/* A peer that sends requests but never reads: the server closes it when its queued output
 * passes the cap, and releases every borrowed body. */
static void test_output_cap(void **state)
{
    ts_reset();
    remoting_server_t *srv = start_server(120, 256 * 1024);
    remoting_client_t *good = client_for(srv);
    int fd = raw_connect(remoting_server_port(srv), 4096);
    struct rcmd req;

    rcmd_init_request(&req, T_BIG);
    for (int i = 0; i < 400; i++) {
        uint8_t *frame;
        size_t len;
        req.opaque = i;
        assert_int_equal(frame_encode(&req, &frame, &len), 0);
        ssize_t w = send(fd, frame, len, MSG_NOSIGNAL);
        ferry_free(frame);
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            break; /* the server may close us before we are done */
        assert_int_equal(w, (ssize_t)len);
    }
    struct stat_want w = {srv, 0, 0, 1};
    assert_true(poll_for(pred_stats, &w, 10000));
    assert_true(raw_closed_by_peer(fd));
    close(fd);
    assert_true(poll_for(pred_released, NULL, 5000));
    assert_true(atomic_load(&ts.big_sent) > 0);
    echo_ok(good, 1);

    /* The big answers do arrive on a connection that reads them. */
    struct rcmd *resp;
    assert_int_equal(remoting_client_invoke_sync(good, &req, deadline_ms(5000), &resp), 0);
    assert_int_equal(resp->body_len, BIG_BODY);
    rcmd_free(resp);
    remoting_client_free(good);
    remoting_server_free(srv);
    assert_int_equal(atomic_load(&ts.released), atomic_load(&ts.big_sent));
}

static void test_start_errors(void **state)
{
    char err[200] = "";

    ts_reset();
    remoting_server_t *srv = start_server(120, 0);
    int port = remoting_server_port(srv);

    struct remoting_server_config cfg;
    remoting_server_t *dup;
    remoting_server_config_init(&cfg);
    cfg.bind_addr = "127.0.0.1";
    cfg.port = port;
    assert_int_equal(remoting_server_new(&cfg, &dup), 0);
    assert_int_equal(remoting_server_start(dup, err, sizeof err), -EADDRINUSE);
    assert_non_null(strstr(err, "listen"));
    remoting_server_free(dup);

    cfg.io_threads = 0;
    assert_int_equal(remoting_server_new(&cfg, &dup), FERRY_EINVAL);
    cfg.io_threads = 1;
    cfg.bind_addr = "not-an-ip";
    cfg.port = 0;
    assert_int_equal(remoting_server_new(&cfg, &dup), 0);
    assert_int_equal(remoting_server_start(dup, err, sizeof err), -EINVAL);
    remoting_server_free(dup);
    remoting_server_free(NULL);

    remoting_server_free(srv);

    /* Nobody listens there any more. */
    remoting_client_t *cli = new_client();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(remoting_client_connect(cli, addr, deadline_ms(5000), err, sizeof err),
                     -ECONNREFUSED);
    assert_false(remoting_client_is_connected(cli));
    assert_int_equal(remoting_client_connect(cli, "nocolon", 1000, err, sizeof err), FERRY_EINVAL);
    assert_int_equal(remoting_client_connect(cli, "127.0.0.1:0", 1000, err, sizeof err),
                     FERRY_EINVAL);
    remoting_client_free(cli);
    remoting_client_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_sync_many_threads),
        cmocka_unit_test(test_oneway),
        cmocka_unit_test(test_unknown_code),
        cmocka_unit_test(test_bad_frames_close_only_their_connection),
        cmocka_unit_test(test_idle_close),
        cmocka_unit_test(test_server_invokes_client),
        cmocka_unit_test(test_async_timeout_exactly_once),
        cmocka_unit_test(test_async_connection_loss),
        cmocka_unit_test(test_shared_io_and_deadlines),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
