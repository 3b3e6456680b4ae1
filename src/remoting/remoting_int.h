/* Private declarations shared by conn.c, server.c and client.c: the I/O thread (a uv loop with
 * a mailbox), the connection object and the dispatch table. */
#ifndef FERRY_REMOTING_INT_H
#define FERRY_REMOTING_INT_H

#include "remoting/conn.h"
#include "remoting/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define DISPATCH_DIRECT 1024 /* codes 0..1023 are looked up by index, others in a list */
#define RBUF_INIT       (16 * 1024)

struct handler {
    remoting_handler_fn fn;
    void *arg;
};

struct dispatch {
    struct handler direct[DISPATCH_DIRECT];
    struct dispatch_extra {
        int32_t code;
        struct handler h;
    } * extra;
    size_t n_extra;
};

void dispatch_init(struct dispatch *d);
void dispatch_close(struct dispatch *d);
int dispatch_set(struct dispatch *d, int32_t code, remoting_handler_fn fn, void *arg);

/* Counters of a server (or client); updated by the I/O threads, read by anyone. */
struct conn_stats {
    atomic_ullong accepted;
    atomic_ullong open;
    atomic_ullong closed;
    atomic_ullong proto_errors;
    atomic_ullong idle_closed;
    atomic_ullong overflow_closed;
    atomic_ullong tls_established; /* TLS handshakes completed */
    atomic_ullong tls_refused;     /* failed handshakes, plain clients on enforcing ports */
};

/* What every connection of a server or client shares; owned by the server or client, which
 * outlives its I/O threads. Read-only once the threads run. */
struct conn_opts {
    size_t max_frame;
    size_t max_out;
    uint64_t idle_ms; /* 0: never close idle connections */
    const struct dispatch *disp;
    void (*on_open)(conn_t *conn, void *arg);
    void (*on_close)(conn_t *conn, void *arg);
    void *hook_arg;
    struct conn_stats *stats;
    /* TLS (tls.h), NULL: plain. A server's context with its tlsMode (never DISABLED when set):
     * accepted connections are sniffed. A client's: every connection starts TLS. */
    tls_ctx_t *tls;
    int tls_mode;
};

struct msg;

/* An I/O thread. Its loop and the connections on it are touched only by the thread itself;
 * other threads talk to it through io_post(). The struct is refcounted: one reference for the
 * owner (server or client) and one per connection object, so a late remoting_respond() on a
 * closed connection still finds a valid (closed) mailbox. */
struct iothr {
    uv_loop_t loop;
    uv_async_t async;
    uv_thread_t thread;
    uv_thread_t tid; /* set by the thread itself before it runs the loop */
    uv_sem_t started;
    atomic_int refs;
    const struct conn_opts *opts;
    char name[16];
    pthread_mutex_t mu; /* guards the three fields below */
    struct msg *mq_head, *mq_tail;
    int closed;         /* no more messages accepted */
    atomic_int senders; /* io_post() calls past the lock, not yet out of uv_async_send */
    int stop_requested; /* iothr_stop() was called */
    /* @thread owner */
    struct conn *conns; /* open and closing connections */
    int stopping;
    uv_prepare_t flush; /* active while a connection has output gathered (conn.c) */
    uv_check_t turn;    /* active while calls are deferred to the end of this loop turn */
    struct deferred {
        void (*fn)(void *arg);
        void *arg;
    } * deferred;
    int n_deferred, deferred_cap;
    struct conn *dirty; /* connections with gathered output, each holding a reference */
};

/* Create and start an I/O thread running an empty loop. Returns 0 or -errno. */
int iothr_start(const struct conn_opts *opts, const char *name, struct iothr **out);
/* Close every connection, stop and join the thread, close its loop, drop the owner's
 * reference. Not from the thread itself. */
void iothr_stop(struct iothr *io);
/* 1 when called on @io's thread. */
int iothr_on_thread(const struct iothr *io);
/* Hand an accepted socket to @io (which then owns it). Returns 0, or -ENOTCONN when @io is
 * shutting down (the caller still owns @fd). */
int iothr_post_fd(struct iothr *io, int fd);

/* Client side: a connection object to be connected to @addr on @io. @on_connect is called
 * once on the I/O thread with 0 or a negative error; @on_closed once when the connection is
 * closed, connected or not. The new object has two references: the loop's and the caller's.
 * @opts (the owner's, outliving the connection) replaces @io's. */
struct conn *conn_connect(struct iothr *io, const struct conn_opts *opts,
                          const struct sockaddr *addr, const char *peer,
                          void (*on_connect)(struct conn *conn, int status, void *owner),
                          void (*on_closed)(struct conn *conn, void *owner), void *owner, int *rc);

#endif
