/* The dashboard's embedded assets (src/broker/dashboard/, cmake/embed.cmake): the generated
 * table holds index.html, app.js, app.css and favicon.svg, each with the Content-Type of its
 * extension; broker_dashboard_asset() serves every entry byte for byte with that type over a
 * real HTTP server, "/" is index.html, an unknown path is 404 and a POST is 405. (The JSON API
 * runs against a real broker in tests/integration/dashboard.test.js.) */
#include "broker/broker_int.h"
#include "broker/dashboard/assets.h"
#include "http/http.h"
#include "../lib/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void handler(void *arg, const struct http_request *req, struct http_exchange *x)
{
    broker_dashboard_asset(arg, req, x); /* the broker is not used by the assets */
}

/* One request over a new connection: the status, the Content-Type and the body. */
struct answer {
    int status;
    char ctype[128];
    char *body;
    size_t body_len;
    char *raw;
};

static void request(int port, const char *method, const char *path, struct answer *a)
{
    char req[512];
    int len = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                       method, path);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, req, (size_t)len), len);
    size_t cap = 1 << 20, got = 0;
    ssize_t n;
    a->raw = malloc(cap + 1);
    while (got < cap && (n = read(fd, a->raw + got, cap - got)) > 0)
        got += (size_t)n;
    a->raw[got] = 0;
    close(fd);
    assert_int_equal(sscanf(a->raw, "HTTP/1.1 %d", &a->status), 1);
    char *end = strstr(a->raw, "\r\n\r\n");
    assert_non_null(end);
    a->body = end + 4;
    a->body_len = got - (size_t)(a->body - a->raw);
    a->ctype[0] = 0;
    for (char *line = strstr(a->raw, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Type: ", 14) == 0) {
            char *e = strstr(line + 2, "\r\n");
            snprintf(a->ctype, sizeof a->ctype, "%.*s", (int)(e - line - 16), line + 16);
        }
    }
}

static const char *expected_mime(const char *path)
{
    const char *ext = strrchr(path, '.');
    if (strcmp(ext, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(ext, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(ext, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(ext, ".svg") == 0)
        return "image/svg+xml";
    return "?";
}

static void table_has_the_pages(void **state)
{
    (void)state;
    static const char *const want[] = {"/index.html", "/app.js", "/app.css", "/favicon.svg"};
    assert_int_equal(dashboard_assets_n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct dashboard_asset *a = dashboard_asset_find(want[i]);
        assert_non_null(a);
        assert_string_equal(a->path, want[i]);
        assert_string_equal(a->mime, expected_mime(want[i]));
        assert_true(a->len > 100);
    }
    assert_ptr_equal(dashboard_asset_find("/"), dashboard_asset_find("/index.html"));
    assert_null(dashboard_asset_find("/nope.js"));
    assert_null(dashboard_asset_find("/app.js/"));
    assert_null(dashboard_asset_find(""));
}

static void serves_every_asset(void **state)
{
    (void)state;
    http_server_t *s = NULL;
    char err[256];
    assert_int_equal(http_start("127.0.0.1", 0, handler, NULL, &s, err, sizeof err), 0);
    int port = http_port(s);
    struct answer a;
    for (size_t i = 0; i < dashboard_assets_n; i++) {
        const struct dashboard_asset *e = &dashboard_assets[i];
        request(port, "GET", e->path, &a);
        assert_int_equal(a.status, 200);
        assert_string_equal(a.ctype, expected_mime(e->path));
        assert_int_equal(a.body_len, e->len);
        assert_memory_equal(a.body, e->data, e->len);
        free(a.raw);
    }
    request(port, "GET", "/", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.ctype, "text/html; charset=utf-8");
    assert_non_null(strstr(a.body, "<script src=\"app.js\"></script>"));
    free(a.raw);
    request(port, "GET", "/missing.html", &a);
    assert_int_equal(a.status, 404);
    free(a.raw);
    request(port, "POST", "/index.html", &a);
    assert_int_equal(a.status, 405);
    free(a.raw);
    http_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_has_the_pages),
        cmocka_unit_test(serves_every_asset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
