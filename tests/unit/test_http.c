/* The embedded HTTP server (src/http/http.h) over real loopback sockets: routing by path, query
 * parameters, request bodies (and the cap on them), owned and static answers, a handler that
 * does not answer, and a port that is taken. */
#include "http/http.h"
#include "../lib/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static const char hello[] = "hello\n";

static void handler(void *arg, const struct http_request *req, struct http_exchange *x)
{
    (void)arg;
    if (strcmp(req->path, "/static") == 0) {
        http_reply(x, 200, "text/plain", hello, sizeof hello - 1, HTTP_STATIC);
    } else if (strcmp(req->path, "/echo") == 0) {
        const char *a = http_query(x, "a");
        char *out = malloc(256 + req->body_len);
        int n = snprintf(out, 256 + req->body_len, "%s a=%s peer=%s body=%s", req->method,
                         a ? a : "(none)", req->peer, req->body);
        http_add_header(x, "X-Test", "1");
        http_reply(x, 201, "text/plain", out, (size_t)n, HTTP_TAKE);
        /* A second answer is ignored (and its owned buffer freed). */
        http_reply(x, 500, "text/plain", strdup("again"), 5, HTTP_TAKE);
    } else if (strcmp(req->path, "/silent") == 0) {
        /* no answer: the server says 500 */
    } else {
        http_reply(x, 404, "text/plain", "not found\n", 10, HTTP_COPY);
    }
}

/* One request over a new connection; the whole answer (headers and body) in @buf. */
static size_t exchange(int port, const char *req, size_t req_len, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t off = 0;
    while (off < req_len) {
        ssize_t n = write(fd, req + off, req_len - off);
        if (n <= 0)
            break; /* the server may answer 413 and close before reading everything */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return got;
}

static void serves_routes_queries_and_bodies(void **state)
{
    (void)state;
    http_server_t *s = NULL;
    char err[256];
    assert_int_equal(http_start("127.0.0.1", 0, handler, NULL, &s, err, sizeof err), 0);
    int port = http_port(s);
    assert_true(port > 0);
    char buf[8192];

    const char *get = "GET /static HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    exchange(port, get, strlen(get), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "\r\n\r\nhello\n"));
    assert_non_null(strstr(buf, "Cache-Control: no-store"));

    const char *post = "POST /echo?a=b%20c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Length: 5\r\n\r\nabcde";
    exchange(port, post, strlen(post), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 201"));
    assert_non_null(strstr(buf, "X-Test: 1"));
    assert_non_null(strstr(buf, "POST a=b c peer=127.0.0.1 body=abcde"));

    const char *silent = "GET /silent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    exchange(port, silent, strlen(silent), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 500"));

    const char *missing = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    exchange(port, missing, strlen(missing), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 404"));

    /* A body above HTTP_BODY_MAX is refused, and the server keeps serving. */
    size_t big = HTTP_BODY_MAX + 1000;
    char *req = malloc(big + 256);
    int h = snprintf(req, 256,
                     "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     big);
    memset(req + h, 'x', big);
    exchange(port, req, (size_t)h + big, buf, sizeof buf);
    free(req);
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    exchange(port, get, strlen(get), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));

    /* A declared length above the cap is refused before any of the body is read: the answer
     * comes although the body never does (the request ends at the headers). */
    const char *huge = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
    exchange(port, huge, strlen(huge), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    exchange(port, get, strlen(get), buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));

    /* The port is taken: a clear error naming it. */
    http_server_t *s2 = NULL;
    assert_true(http_start("127.0.0.1", port, handler, NULL, &s2, err, sizeof err) != 0);
    assert_null(s2);
    assert_non_null(strstr(err, "cannot listen"));
    assert_true(http_start("not-an-ip", 0, handler, NULL, &s2, err, sizeof err) != 0);
    assert_non_null(strstr(err, "bad listen address"));

    http_stop(s);
    http_stop(NULL);
}

/* An IPv6 listen address (bindAddress / listenAddress may be one): served over IPv6. */
static void serves_ipv6(void **state)
{
    (void)state;
    char err[256];
    http_server_t *s = NULL;
    int rc = http_start("::1", 0, handler, NULL, &s, err, sizeof err);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        skip(); /* no IPv6 loopback on this machine */
    }
    assert_int_equal(rc, 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)http_port(s))};
    sa.sin6_addr = in6addr_loopback;
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static const char req[] = "GET /nope HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char buf[1024];
    size_t got = 0;
    ssize_t n;
    while (got + 1 < sizeof buf && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 404"));
    http_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(serves_routes_queries_and_bodies),
                                       cmocka_unit_test(serves_ipv6)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
