/* A small embedded HTTP/1.1 server for the operator's endpoints (metrics, dashboard): Debian's
 * libmicrohttpd with its own threads (one per connection, at most 64 connections), so that
 * nothing here runs on the message path and a slow request does not hold up the others.
 *
 * One handler per server: it gets every request (the owner routes by path) and answers through
 * http_reply() exactly once; a handler that does not answer yields 500. Handlers run on the
 * server's threads, several at once, so they must only take the locks the owner's tables already
 * have. Request bodies are capped at HTTP_BODY_MAX (413 above). */
#ifndef FERRY_HTTP_HTTP_H
#define FERRY_HTTP_HTTP_H

#include <stddef.h>

#define HTTP_BODY_MAX (64u * 1024)

typedef struct http_server http_server_t;
struct http_exchange;

struct http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* without the query string, e.g. "/metrics" */
    const char *peer;   /* the client's IP address as text */
    const char *body;   /* the request body, NUL-terminated ("" when none) */
    size_t body_len;
};

/* How http_reply() treats its data. */
enum http_mem {
    HTTP_COPY,   /* copied before http_reply() returns */
    HTTP_TAKE,   /* a malloc()ed buffer the server frees after sending */
    HTTP_STATIC, /* lives as long as the program (embedded assets) */
};

typedef void (*http_handler_fn)(void *arg, const struct http_request *req, struct http_exchange *x);

/* The value of query parameter (or urlencoded form field) @name, decoded; NULL when absent. */
const char *http_query(struct http_exchange *x, const char *name);
/* A request header (case-insensitive name); NULL when absent. */
const char *http_header(struct http_exchange *x, const char *name);
/* The value of cookie @name sent with the request; NULL when absent. */
const char *http_cookie(struct http_exchange *x, const char *name);
/* Answer with @status, Content-Type @ctype and @len bytes of @data. Only the first call of a
 * request counts (HTTP_TAKE data of a later call is freed). */
void http_reply(struct http_exchange *x, int status, const char *ctype, const void *data,
                size_t len, enum http_mem mem);
/* Add a response header to the answer being built (before http_reply). Up to 4 per request. */
void http_add_header(struct http_exchange *x, const char *name, const char *value);

/* Listen on @host:@port (port 0: any free port) and serve with @fn(@arg, ...). 0, or a
 * FERRY_E* / -errno code with @err set. */
int http_start(const char *host, int port, http_handler_fn fn, void *arg, http_server_t **out,
               char *err, size_t errlen);
/* The port listened on. */
int http_port(const http_server_t *s);
/* Stop serving (waits for a request in progress) and free. NULL is fine. */
void http_stop(http_server_t *s);

#endif
