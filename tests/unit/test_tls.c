/* TLS (src/remoting/tls.c, docs/TLS.md) in isolation and on the remoting layer:
 * - first-byte detection of a permissive port;
 * - the memory-BIO pump: a client and a server session talking through byte buffers only
 *   (handshake, both directions, a large write, close_notify), a refused self-signed
 *   certificate, a required client certificate that is missing;
 * - SSL on a socket pair, non-blocking (the HA port's helpers);
 * - configuration: RocketMQ's tls.properties names, start-up errors naming the key;
 * - a remoting server per tlsMode with plain and TLS remoting clients over 127.0.0.1.
 * Every wait has a deadline; nothing sleeps a fixed time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testlib.h"
#include "common/err.h"
#include "remoting/client.h"
#include "remoting/codes.h"
#include "remoting/server.h"
#include "remoting/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_ECHO 1001

/* A server context in test mode (self-signed) with @need client authentication. */
static tls_ctx_t *server_ctx(int need)
{
    struct tls_config cfg;
    tls_ctx_t *ctx = NULL;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    cfg.tlsMode = TLS_MODE_ENFORCING;
    cfg.tlsTestModeEnable = 1;
    cfg.tlsServerNeedClientAuth = need;
    if (tls_server_ctx_new(&cfg, &ctx, err, sizeof err) != 0)
        fail_msg("server context: %s", err);
    assert_non_null(ctx);
    assert_true(tls_ctx_is_server(ctx));
    return ctx;
}

static tls_ctx_t *client_ctx(int auth_server)
{
    struct tls_client_config cc = {.enable = 1, .auth_server = auth_server};
    tls_ctx_t *ctx = NULL;
    char err[512];
    if (tls_client_ctx_new(&cc, &ctx, err, sizeof err) != 0)
        fail_msg("client context: %s", err);
    assert_non_null(ctx);
    assert_false(tls_ctx_is_server(ctx));
    return ctx;
}

static void test_first_byte(void **state)
{
    (void)state;
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    const uint8_t one[] = {0x16};
    const uint8_t not_tls[] = {0x16, 0x01};
    const uint8_t frame[] = {0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10}; /* a remoting frame */
    const uint8_t ha_hello[] = {'F', 'H', 'A', '1'};
    assert_true(tls_is_handshake(hello, sizeof hello));
    assert_true(tls_is_handshake(one, sizeof one));
    assert_false(tls_is_handshake(not_tls, sizeof not_tls));
    assert_false(tls_is_handshake(frame, sizeof frame));
    assert_false(tls_is_handshake(ha_hello, sizeof ha_hello));
    assert_false(tls_is_handshake(hello, 0));
}

/* Move the ciphertext each session has ready to the other. Returns the bytes moved. */
static size_t pump(tls_session_t *a, tls_session_t *b)
{
    const uint8_t *p;
    size_t n, moved = 0;
    if ((n = tls_session_out(a, &p)) > 0) {
        tls_session_feed(b, p, n);
        moved += n;
    }
    if ((n = tls_session_out(b, &p)) > 0) {
        tls_session_feed(a, p, n);
        moved += n;
    }
    return moved;
}

/* Drive both sessions until neither has anything to say. Reads go to @buf; returns the last
 * results of the two reads in @ra / @rb (0: waiting, >0 bytes, TLS_EOF, TLS_FAIL). */
static void converse(tls_session_t *cli, tls_session_t *srv, char *err, size_t errlen, int *rc,
                     int *rs)
{
    static uint8_t buf[64 * 1024];
    *rc = *rs = 0;
    for (int round = 0; round < 50; round++) {
        int a = tls_session_read(cli, buf, sizeof buf, err, errlen);
        int b = tls_session_read(srv, buf, sizeof buf, err, errlen);
        if (a != 0)
            *rc = a;
        if (b != 0)
            *rs = b;
        if (a < 0 || b < 0)
            return;
        if (pump(cli, srv) == 0 && a == 0 && b == 0)
            return;
    }
    fail_msg("the sessions did not settle");
}

/* Read everything @s has decrypted into @out (up to @cap). */
static size_t drain(tls_session_t *s, uint8_t *out, size_t cap)
{
    char err[256];
    size_t got = 0;
    int n;
    while (got < cap && (n = tls_session_read(s, out + got, cap - got, err, sizeof err)) > 0)
        got += (size_t)n;
    return got;
}

static void test_memory_pump(void **state)
{
    (void)state;
    tls_ctx_t *sc = server_ctx(TLS_AUTH_NONE), *cc = client_ctx(0);
    tls_session_t *srv = tls_session_new(sc, NULL), *cli = tls_session_new(cc, "127.0.0.1");
    char err[256] = "";
    int rc, rs;
    assert_non_null(srv);
    assert_non_null(cli);
    size_t cap;
    assert_non_null(tls_session_inbuf(srv, &cap));
    assert_true(cap >= 16 * 1024 + 256); /* a whole record fits */
    converse(cli, srv, err, sizeof err, &rc, &rs);
    assert_int_equal(rc, 0);
    assert_int_equal(rs, 0);
    assert_true(tls_session_established(cli));
    assert_true(tls_session_established(srv));
    char d[256];
    tls_session_describe(cli, d, sizeof d);
    assert_non_null(strstr(d, "TLSv1.3"));
    assert_non_null(strstr(d, "FerryMQ test mode")); /* the server's self-signed subject */

    /* Client -> server: a short message; server -> client: 300 KB in one write. */
    assert_int_equal(tls_session_write(cli, "hello", 5, err, sizeof err), 0);
    pump(cli, srv);
    uint8_t in[8];
    assert_int_equal(drain(srv, in, sizeof in), 5);
    assert_memory_equal(in, "hello", 5);
    static uint8_t big[300 * 1000], back[300 * 1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(tls_session_write(srv, big, sizeof big, err, sizeof err), 0);
    size_t got = 0;
    while (pump(cli, srv) > 0 || got < sizeof big) {
        size_t n = drain(cli, back + got, sizeof back - got);
        if (n == 0 && got < sizeof big && pump(cli, srv) == 0)
            break;
        got += n;
    }
    assert_int_equal(got, sizeof big);
    assert_memory_equal(back, big, sizeof big);

    /* close_notify: the other side reads TLS_EOF. */
    tls_session_shutdown(cli);
    pump(cli, srv);
    assert_int_equal(tls_session_read(srv, in, sizeof in, err, sizeof err), TLS_EOF);
    tls_session_free(cli);
    tls_session_free(srv);
    tls_ctx_unref(cc);
    tls_ctx_unref(sc);
}

static void test_verify_refuses_self_signed(void **state)
{
    (void)state;
    tls_ctx_t *sc = server_ctx(TLS_AUTH_NONE), *cc = client_ctx(1); /* the system's CAs */
    tls_session_t *srv = tls_session_new(sc, NULL), *cli = tls_session_new(cc, "127.0.0.1");
    char err[256] = "";
    int rc, rs;
    converse(cli, srv, err, sizeof err, &rc, &rs);
    assert_int_equal(rc, TLS_FAIL);
    assert_non_null(strstr(err, "certificate verify failed"));
    assert_non_null(strstr(err, "self-signed certificate"));
    assert_false(tls_session_established(cli));
    tls_session_free(cli);
    tls_session_free(srv);
    tls_ctx_unref(cc);
    tls_ctx_unref(sc);
}

static void test_client_certificate_required(void **state)
{
    (void)state;
    tls_ctx_t *sc = server_ctx(TLS_AUTH_REQUIRE), *cc = client_ctx(0); /* no certificate */
    tls_session_t *srv = tls_session_new(sc, NULL), *cli = tls_session_new(cc, "localhost");
    char err[256] = "";
    int rc, rs;
    converse(cli, srv, err, sizeof err, &rc, &rs);
    assert_int_equal(rs, TLS_FAIL);
    assert_non_null(strstr(err, "peer did not return a certificate"));
    assert_false(tls_session_established(srv));
    tls_session_free(cli);
    tls_session_free(srv);
    tls_ctx_unref(cc);
    tls_ctx_unref(sc);
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* SSL on a non-blocking socket pair: handshake by turns, then data both ways through the
 * recv/writev-like helpers (EAGAIN when nothing is there). */
static void test_socket(void **state)
{
    (void)state;
    tls_ctx_t *sc = server_ctx(TLS_AUTH_NONE), *cc = client_ctx(0);
    int sv[2];
    char err[256];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    struct ssl_st *s = tls_sock_new(sc, sv[0], NULL, err, sizeof err);
    struct ssl_st *c = tls_sock_new(cc, sv[1], "localhost", err, sizeof err);
    assert_non_null(s);
    assert_non_null(c);
    int ds = 0, dc = 0;
    for (int i = 0; i < 100 && !(ds == 1 && dc == 1); i++) {
        if (dc != 1)
            dc = tls_sock_handshake(c, err, sizeof err);
        if (ds != 1)
            ds = tls_sock_handshake(s, err, sizeof err);
        assert_true(dc >= 0 && ds >= 0);
    }
    assert_int_equal(ds, 1);
    assert_int_equal(dc, 1);
    char buf[64];
    errno = 0;
    assert_int_equal(tls_sock_read(s, buf, sizeof buf), -1);
    assert_int_equal(errno, EAGAIN);
    struct iovec iov[2] = {{"FHA1", 4}, {"-hello", 6}};
    assert_int_equal(tls_sock_writev(c, iov, 2), 10);
    struct pollfd pf = {sv[0], POLLIN, 0};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    size_t got = 0;
    while (got < 10) {
        ssize_t r = tls_sock_read(s, buf + got, sizeof buf - got);
        if (r < 0 && errno == EAGAIN) {
            assert_int_equal(poll(&pf, 1, 5000), 1);
            continue;
        }
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(buf, "FHA1-hello", 10);
    assert_false(tls_sock_pending(s));
    tls_sock_free(c); /* close_notify, then the server reads the end */
    pf.revents = 0;
    assert_int_equal(poll(&pf, 1, 5000), 1);
    assert_int_equal(tls_sock_read(s, buf, sizeof buf), 0);
    tls_sock_free(s);
    close(sv[0]);
    close(sv[1]);
    tls_ctx_unref(cc);
    tls_ctx_unref(sc);
}

static void test_config(void **state)
{
    (void)state;
    char dir[256], path[512], err[512] = "";
    struct tls_config cfg;
    test_tmpdir(dir, sizeof dir, "tls");
    snprintf(path, sizeof path, "%s/tls.properties", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# RocketMQ's names\n"
          "tls.server.mode=enforcing\n"
          "tls.server.need.client.auth=optional\n"
          "tls.server.keyPath=/k.pem\n"
          "tls.server.keyPassword=pw\n"
          "tls.server.certPath=/c.pem\n"
          "tls.server.authClient=true\n"
          "tls.server.trustCertPath=/ca.pem\n"
          "tls.client.keyPath=/ck.pem\n"
          "tls.client.certPath=/cc.pem\n"
          "tls.client.authServer=true\n"
          "tls.client.trustCertPath=/cca.pem\n"
          "tls.test.mode.enable=true\n"
          "tls.enable=true\n",
          f);
    fclose(f);
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.tlsConfigFile, sizeof cfg.tlsConfigFile, "%s", path);
    assert_int_equal(tls_config_load_file(&cfg, err, sizeof err), 0);
    assert_int_equal(cfg.tlsMode, TLS_MODE_ENFORCING);
    assert_int_equal(cfg.tlsServerNeedClientAuth, TLS_AUTH_OPTIONAL);
    assert_string_equal(cfg.tlsServerKeyPath, "/k.pem");
    assert_string_equal(cfg.tlsServerKeyPassword, "pw");
    assert_string_equal(cfg.tlsServerCertPath, "/c.pem");
    assert_true(cfg.tlsServerAuthClient);
    assert_string_equal(cfg.tlsServerTrustCertPath, "/ca.pem");
    assert_string_equal(cfg.tlsClientKeyPath, "/ck.pem");
    assert_string_equal(cfg.tlsClientCertPath, "/cc.pem");
    assert_true(cfg.tlsClientAuthServer);
    assert_string_equal(cfg.tlsClientTrustCertPath, "/cca.pem");
    assert_true(cfg.tlsTestModeEnable);
    assert_true(cfg.tlsEnable);
    tls_config_mask(&cfg);
    assert_string_equal(cfg.tlsServerKeyPassword, "******");

    /* A bad value names the key and the file. */
    f = fopen(path, "w");
    fputs("tls.server.mode=strict\n", f);
    fclose(f);
    assert_int_equal(tls_config_load_file(&cfg, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "tls.server.mode=strict"));
    assert_non_null(strstr(err, "tlsConfigFile="));

    /* Start-up errors of the server context name the key. */
    tls_ctx_t *ctx = (tls_ctx_t *)1;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(tls_server_ctx_new(&cfg, &ctx, err, sizeof err), 0);
    assert_null(ctx); /* disabled: no context */
    cfg.tlsMode = TLS_MODE_PERMISSIVE;
    assert_int_equal(tls_server_ctx_new(&cfg, &ctx, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "tlsServerCertPath"));
    snprintf(cfg.tlsServerCertPath, sizeof cfg.tlsServerCertPath, "%s/missing.pem", dir);
    snprintf(cfg.tlsServerKeyPath, sizeof cfg.tlsServerKeyPath, "%s/missing.key", dir);
    assert_int_equal(tls_server_ctx_new(&cfg, &ctx, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "tlsServerCertPath="));
    assert_non_null(strstr(err, "missing.pem"));
    struct tls_client_config cc = {.enable = 1, .cert_path = "/only-cert.pem"};
    assert_int_equal(tls_client_ctx_new(&cc, &ctx, err, sizeof err), FERRY_ECONFIG);
    cc.enable = 0;
    assert_int_equal(tls_client_ctx_new(&cc, &ctx, err, sizeof err), 0);
    assert_null(ctx);
    test_rmdir(dir);
}

/* ---- remoting server and clients over 127.0.0.1 ---- */

static void h_echo(conn_t *conn, const struct rcmd *req, void *arg)
{
    (void)arg;
    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    resp.body = req->body;
    resp.body_len = req->body_len;
    remoting_respond(conn, &resp);
}

static remoting_server_t *start_server(int mode, tls_ctx_t *ctx)
{
    struct remoting_server_config cfg;
    remoting_server_t *srv;
    char err[256];
    remoting_server_config_init(&cfg);
    cfg.bind_addr = "127.0.0.1";
    cfg.io_threads = 2;
    cfg.tls_mode = mode;
    cfg.tls = ctx;
    assert_int_equal(remoting_server_new(&cfg, &srv), 0);
    assert_int_equal(remoting_server_register(srv, T_ECHO, h_echo, NULL), 0);
    if (remoting_server_start(srv, err, sizeof err) != 0)
        fail_msg("server start: %s", err);
    return srv;
}

/* Connect a client (@tls: its context or NULL) and echo @len bytes. Returns 0 or the error
 * of the connect or the request. */
static int echo_over(remoting_server_t *srv, tls_ctx_t *tls, size_t len)
{
    struct remoting_client_config cfg;
    remoting_client_t *cli;
    char addr[64], err[256];
    struct rcmd req, *resp = NULL;
    remoting_client_config_init(&cfg);
    cfg.tls = tls;
    assert_int_equal(remoting_client_new(&cfg, &cli), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", remoting_server_port(srv));
    int rc = remoting_client_connect(cli, addr, 5000 * test_time_mult(), err, sizeof err);
    uint8_t *body = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 31 + 1);
    if (rc == 0) {
        rcmd_init_request(&req, T_ECHO);
        req.body = body;
        req.body_len = len;
        rc = remoting_client_invoke_sync(cli, &req, 5000 * test_time_mult(), &resp);
    }
    if (rc == 0) {
        if (resp->code != RESP_SUCCESS || resp->body_len != len ||
            (len && memcmp(resp->body, body, len) != 0))
            rc = FERRY_EPROTO;
        rcmd_free(resp);
    }
    free(body);
    remoting_client_free(cli);
    return rc;
}

static void test_remoting_modes(void **state)
{
    (void)state;
    tls_ctx_t *sc = server_ctx(TLS_AUTH_NONE), *cc = client_ctx(0);
    struct remoting_server_config bad;
    remoting_server_t *srv;
    struct remoting_server_stats st;

    /* Permissive and enforcing need a server context. */
    remoting_server_config_init(&bad);
    bad.tls_mode = TLS_MODE_PERMISSIVE;
    assert_int_equal(remoting_server_new(&bad, &srv), FERRY_EINVAL);
    bad.tls = cc;
    assert_int_equal(remoting_server_new(&bad, &srv), FERRY_EINVAL);

    /* Permissive: plain and TLS clients on the same port, frames large and small. */
    srv = start_server(TLS_MODE_PERMISSIVE, sc);
    assert_int_equal(echo_over(srv, NULL, 100), 0);
    assert_int_equal(echo_over(srv, cc, 100), 0);
    assert_int_equal(echo_over(srv, cc, 3 * 1024 * 1024 + 17), 0);
    assert_int_equal(echo_over(srv, cc, 0), 0);
    remoting_server_stats(srv, &st);
    assert_int_equal(st.tls_established, 3);
    assert_int_equal(st.tls_refused, 0);
    remoting_server_free(srv);

    /* Enforcing: a plain client's request fails, a TLS client works. */
    srv = start_server(TLS_MODE_ENFORCING, sc);
    assert_int_not_equal(echo_over(srv, NULL, 10), 0);
    assert_int_equal(echo_over(srv, cc, 10), 0);
    remoting_server_stats(srv, &st);
    assert_int_equal(st.tls_refused, 1);
    assert_int_equal(st.tls_established, 1);
    remoting_server_free(srv);

    /* Disabled: a TLS client cannot connect (its handshake is refused); plain works. */
    srv = start_server(TLS_MODE_DISABLED, NULL);
    assert_int_not_equal(echo_over(srv, cc, 10), 0);
    assert_int_equal(echo_over(srv, NULL, 10), 0);
    remoting_server_stats(srv, &st);
    assert_int_equal(st.proto_errors, 1);
    remoting_server_free(srv);

    /* A client that verifies refuses the self-signed certificate: connect fails. */
    tls_ctx_t *strict = client_ctx(1);
    srv = start_server(TLS_MODE_ENFORCING, sc);
    assert_int_not_equal(echo_over(srv, strict, 10), 0);
    remoting_server_free(srv);
    tls_ctx_unref(strict);
    tls_ctx_unref(cc);
    tls_ctx_unref(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_byte),
        cmocka_unit_test(test_memory_pump),
        cmocka_unit_test(test_verify_refuses_self_signed),
        cmocka_unit_test(test_client_certificate_required),
        cmocka_unit_test(test_socket),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_remoting_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
