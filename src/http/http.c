/* The embedded HTTP server: libmicrohttpd, a thread per connection (http.h).
 *
 * libmicrohttpd calls the access handler at least twice per request: first with no data (we
 * allocate the exchange), then once per chunk of the body (we append it, up to HTTP_BODY_MAX),
 * then once with no data left: the owner's handler runs and its answer is queued. */
#include "http/http.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HTTP_MAX_HEADERS 4

struct http_server {
    struct MHD_Daemon *d;
    http_handler_fn fn;
    void *arg;
    int port;
};

struct http_exchange {
    struct MHD_Connection *conn;
    char *body;
    size_t body_len;
    int too_big;
    struct MHD_Response *resp; /* the answer, once http_reply() ran */
    int status;
    const char *hdr[HTTP_MAX_HEADERS][2];
    int n_hdr;
};

const char *http_query(struct http_exchange *x, const char *name)
{
    return MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(struct http_exchange *x, const char *name)
{
    return MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(struct http_exchange *x, const char *name)
{
    return MHD_lookup_connection_value(x->conn, MHD_COOKIE_KIND, name);
}

void http_add_header(struct http_exchange *x, const char *name, const char *value)
{
    if (x->n_hdr < HTTP_MAX_HEADERS) {
        x->hdr[x->n_hdr][0] = name;
        x->hdr[x->n_hdr][1] = value;
        x->n_hdr++;
    }
}

void http_reply(struct http_exchange *x, int status, const char *ctype, const void *data,
                size_t len, enum http_mem mem)
{
    if (x->resp) {
        if (mem == HTTP_TAKE)
            ferry_free((void *)data);
        return;
    }
    enum MHD_ResponseMemoryMode mode = mem == HTTP_COPY   ? MHD_RESPMEM_MUST_COPY
                                       : mem == HTTP_TAKE ? MHD_RESPMEM_MUST_FREE
                                                          : MHD_RESPMEM_PERSISTENT;
    x->resp = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!x->resp) {
        if (mem == HTTP_TAKE)
            ferry_free((void *)data);
        return;
    }
    x->status = status;
    if (ctype)
        MHD_add_response_header(x->resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    /* The operator's pages never come from a cache, and never inside another site's frame. */
    MHD_add_response_header(x->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(x->resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(x->resp, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < x->n_hdr; i++)
        MHD_add_response_header(x->resp, x->hdr[i][0], x->hdr[i][1]);
}

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static void peer_text(struct MHD_Connection *conn, char *buf, size_t cap)
{
    snprintf(buf, cap, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **state)
{
    http_server_t *s = cls;
    struct http_exchange *x = *state;
    if (!x) {
        x = ferry_calloc(1, sizeof *x);
        x->conn = conn;
        *state = x;
        /* A declared length over the cap is refused before a byte of the body is read (the
         * connection then closes), so it cannot hold a connection thread while it streams. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > HTTP_BODY_MAX) {
            x->too_big = 1;
            return queue_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!x->too_big && x->body_len + *upload_size <= HTTP_BODY_MAX) {
            x->body = ferry_realloc(x->body, x->body_len + *upload_size + 1);
            memcpy(x->body + x->body_len, upload_data, *upload_size);
            x->body_len += *upload_size;
            x->body[x->body_len] = '\0';
        } else {
            x->too_big = 1;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (x->too_big)
        return queue_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");

    char peer[INET6_ADDRSTRLEN + 1];
    peer_text(conn, peer, sizeof peer);
    struct http_request req = {method, url, peer, x->body ? x->body : "", x->body_len};
    s->fn(s->arg, &req, x);
    if (!x->resp)
        return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "no answer\n");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)x->status, x->resp);
    MHD_destroy_response(x->resp);
    x->resp = NULL;
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    struct http_exchange *x = *state;
    if (!x)
        return;
    if (x->resp)
        MHD_destroy_response(x->resp);
    ferry_free(x->body);
    ferry_free(x);
    *state = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_warn(LOG_MAIN, "http: %s", line);
}

int http_start(const char *host, int port, http_handler_fn fn, void *arg, http_server_t **out,
               char *err, size_t errlen)
{
    *out = NULL;
    /* An IPv4 or an IPv6 address, as the broker's bindAddress and the name server's
     * listenAddress may be ("::" listens on both families, as the kernel's bindv6only allows). */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    struct sockaddr *addr = (struct sockaddr *)&sa;
    unsigned v6 = 0;
    if (inet_pton(AF_INET, host && *host ? host : "0.0.0.0", &sa.sin_addr) != 1) {
        if (inet_pton(AF_INET6, host, &sa6.sin6_addr) != 1) {
            snprintf(err, errlen, "http: bad listen address '%s' (an IPv4 or IPv6 address)", host);
            return FERRY_ECONFIG;
        }
        addr = (struct sockaddr *)&sa6;
        v6 = MHD_USE_IPv6;
    }
    http_server_t *s = ferry_calloc(1, sizeof *s);
    s->fn = fn;
    s->arg = arg;
    errno = 0;
    /* The logger comes first, as libmicrohttpd asks; SO_REUSEADDR only (its default), so that
     * a port another process listens on is an error, not a shared port. */
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_AUTO | MHD_USE_ERROR_LOG | v6,
                            (uint16_t)port, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, s, MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!s->d) {
        int e = errno ? errno : EADDRINUSE;
        snprintf(err, errlen, "http: cannot listen on %s:%d: %s", host && *host ? host : "0.0.0.0",
                 port, strerror(e));
        ferry_free(s);
        return -e;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : port;
    *out = s;
    return 0;
}

int http_port(const http_server_t *s)
{
    return s->port;
}

void http_stop(http_server_t *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    ferry_free(s);
}
