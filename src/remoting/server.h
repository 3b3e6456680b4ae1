/* The remoting server: accepts TCP connections, spreads them over N I/O threads, decodes
 * frames and calls the handler registered for each request code (protocol/REMOTING.md §1).
 *
 * Life cycle: remoting_server_new() -> remoting_server_register()... -> remoting_server_start()
 * -> ... -> remoting_server_free(). One acceptor thread owns the listening socket and hands each
 * accepted socket to an I/O thread in turn; each connection then lives on that thread. Answers
 * and server-initiated requests go through conn.h (remoting_respond(), remoting_conn_invoke()).
 *
 * Built in: an unknown code is answered with RESP_REQUEST_CODE_NOT_SUPPORTED and the remark
 * "request type <code> not supported"; oneway requests are never answered; a malformed or
 * over-limit frame closes only its connection, with one warning line naming the peer and the
 * reason; so does output queued beyond max_out_bytes; a connection without traffic for
 * idle_close_seconds is closed. */
#ifndef FERRY_REMOTING_SERVER_H
#define FERRY_REMOTING_SERVER_H

#include "remoting/conn.h"
#include "remoting/tls.h"

#include <stddef.h>
#include <stdint.h>

typedef struct remoting_server remoting_server_t;

struct remoting_server_config {
    const char *bind_addr;  /* IPv4 or IPv6 literal; default "0.0.0.0" */
    int port;               /* 0: a free port, see remoting_server_port(); default 0 */
    int io_threads;         /* 1..64; default 3 (Java's serverSelectorThreads) */
    size_t max_frame;       /* whole frame incl. length field; default 16 MiB */
    int idle_close_seconds; /* 0: never; default 120 */
    size_t max_out_bytes;   /* output queued per connection before it is closed; 64 MiB */
    int backlog;            /* listen(2) backlog; default 1024 */
    /* Optional, called on the connection's I/O thread when a connection is established and
     * once when it is closed (e.g. the name server forgets brokers registered on it). */
    void (*on_open)(conn_t *conn, void *arg);
    void (*on_close)(conn_t *conn, void *arg);
    void *hook_arg;
    /* TLS (tls.h, docs/TLS.md): @tls_mode and the server context (tls_server_ctx_new(); the
     * server takes its own reference). Default TLS_MODE_DISABLED, NULL: plain only, as before.
     * Permissive and enforcing need @tls. */
    int tls_mode;
    tls_ctx_t *tls;
};

struct remoting_server_stats {
    uint64_t accepted;        /* connections accepted */
    uint64_t open;            /* connections open now */
    uint64_t closed;          /* connections closed, for any reason */
    uint64_t proto_errors;    /* closed for a malformed or over-limit frame */
    uint64_t idle_closed;     /* closed for idleness */
    uint64_t overflow_closed; /* closed for output over max_out_bytes */
    uint64_t tls_established; /* TLS handshakes completed */
    uint64_t tls_refused;     /* TLS handshakes failed, plain clients on an enforcing port */
};

/* Defaults as documented above. */
void remoting_server_config_init(struct remoting_server_config *cfg);

/* A server with a copy of @cfg (bind_addr is copied). Returns 0 or FERRY_EINVAL for a value
 * out of range. */
int remoting_server_new(const struct remoting_server_config *cfg, remoting_server_t **out);

/* Route requests with @code to @fn (replacing an earlier one). Before start only (the table is
 * read without locks afterwards): FERRY_EINVAL otherwise. */
int remoting_server_register(remoting_server_t *srv, int32_t code, remoting_handler_fn fn,
                             void *arg);

/* Start the I/O threads, bind, listen and start accepting. Returns 0, or a -errno (e.g.
 * -EADDRINUSE) with a message in @errmsg; the server can then only be freed. */
int remoting_server_start(remoting_server_t *srv, char *errmsg, size_t errlen);

/* The bound port (the one picked when the config said 0); 0 before start. */
int remoting_server_port(const remoting_server_t *srv);

/* A snapshot of the counters; any thread. */
void remoting_server_stats(const remoting_server_t *srv, struct remoting_server_stats *st);

/* Stop accepting, close every connection (pending invokes get -ECANCELED, on_close runs),
 * join the threads and free the server. Connections still referenced by the caller stay
 * valid objects: calls on them return -ENOTCONN until the last remoting_conn_unref().
 * Not from a handler or callback (an I/O thread). NULL is a no-op. */
void remoting_server_free(remoting_server_t *srv);

#endif
