/* Connections on I/O threads: owns the uv loop of each I/O thread and its mailbox, every
 * connection's read buffer, output queue, pending invokes (opaque -> callback) and idle timer,
 * and request dispatch. Shared by the server and the client.
 *
 * Happy path: bytes read are appended to the connection's buffer; each complete frame is
 * decoded in place and either completes a pending invoke (response bit set, matched by opaque)
 * or goes to the handler registered for its code. Answers and requests from other threads are
 * encoded on the calling thread and posted to the owning loop (mutex-guarded list +
 * uv_async_send). On the loop thread, frames are gathered per connection and written with one
 * uv_write (one writev) per connection just before the loop polls again (a uv_prepare handle
 * active only while something is gathered): a group commit that completes hundreds of sends,
 * or a read that carried many pipelined requests, costs one write syscall per connection
 * instead of one per answer.
 *
 * Failure modes: a malformed or over-limit frame logs one warning with the peer and reason and
 * closes only that connection; so does output queued over the cap. Idle connections are closed
 * after idle_ms without traffic. Every pending invoke is completed exactly once: by its response,
 * its timer (-ETIMEDOUT) or the close of its connection (the close status). Connection memory
 * is refcounted (the loop holds one reference until the handles' close callbacks have run), and
 * each connection holds a reference on its I/O thread struct, so a call on a closed connection
 * after shutdown returns -ENOTCONN instead of touching freed memory.
 *
 * TLS (tls.h, docs/TLS.md): a TLS connection reads with its own libuv callbacks (ciphertext into
 * the session, plaintext into the read buffer, then the same frame processing) and writes its
 * gathered frames through SSL_write, so a plain connection pays one predictable branch per
 * flush and nothing per read. A permissive or enforcing server port looks at the first bytes
 * of each new connection (sniff_on_read) and picks plain or TLS for good. A client connection
 * reports itself connected only once its handshake is done; gathered output waits for it. */
#include "remoting/remoting_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RBUF_SHRINK (1024 * 1024) /* a buffer grown past this shrinks back when not needed */

enum msg_type { MSG_FD, MSG_CONNECT, MSG_SEND, MSG_INVOKE, MSG_CLOSE, MSG_CALL };

/* One frame being written: the encoded head (with the body copied in, unless the body is
 * borrowed and released after the write). A borrowed multi-slice body gets one buffer per
 * slice (@bufs then points to a heap array instead of @small). */
struct wreq {
    uv_write_t req;
    struct conn *conn;
    uv_buf_t small[2];
    uv_buf_t *bufs;
    unsigned nbufs;
    uint8_t *head;
    void (*body_release)(void *body_ctx);
    void *body_ctx;
    struct wreq *next; /* gathered after this one; written by the same uv_write */
    uv_buf_t *all;     /* the buffers of the whole chain (heap) when it has several */
};

/* An invoke waiting for its response. @thread owner (after it was posted) */
struct pending {
    struct pending *next;          /* hash chain */
    struct pending *tprev, *tnext; /* conn's deadline list, soonest first */
    uint64_t deadline;             /* loop time (ms) of its -ETIMEDOUT */
    struct conn *conn;
    int32_t opaque;
    int timeout_ms;
    remoting_cb_fn cb;
    void *arg;
};

struct msg {
    struct msg *next;
    enum msg_type type;
    int fd;
    struct conn *conn; /* holds a reference */
    struct wreq *wr;
    struct pending *pd;
    void (*fn)(void *arg); /* MSG_CALL */
    void *arg;
    struct sockaddr_storage addr;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t idle;
    /* One timer for every pending invoke of the connection, armed for the soonest deadline
     * (a uv_timer per request cost a heap insert, a removal and a handle close each). A
     * response does not touch it: when it fires early it re-arms for the new soonest. */
    uv_timer_t ptimer;
    uv_connect_t creq;
    struct iothr *io;
    const struct conn_opts *opts;
    atomic_int refs;
    atomic_int closed; /* set when closing starts; read from any thread */
    atomic_uint next_opaque;
    char peer[64];
    /* @thread owner */
    struct conn *prev, *next; /* io->conns */
    int linked;
    int handles; /* initialized handles not yet closed */
    int closing;
    int opened;
    int close_status;
    uint8_t *rbuf;
    size_t rlen, rcap, need;
    uint64_t last_active;
    struct pending **pend;
    size_t pend_cap, pend_n;
    struct pending *thead, *ttail;    /* by deadline */
    uint64_t ptimer_due;              /* when ptimer fires; 0: not armed */
    struct wreq *out_head, *out_tail; /* gathered, not yet handed to uv_write */
    size_t out_bytes;
    unsigned out_nbufs;
    struct conn *dirty_next; /* io->dirty */
    int dirty;
    void (*on_connect)(struct conn *conn, int status, void *owner);
    void (*on_closed)(struct conn *conn, void *owner);
    void *owner;
    int client;         /* made by conn_connect() */
    tls_session_t *tls; /* NULL: plain */
};

static void conn_close(struct conn *c, int status);

/* ---- dispatch table ------------------------------------------------------------------- */

void dispatch_init(struct dispatch *d)
{
    memset(d, 0, sizeof *d);
}

void dispatch_close(struct dispatch *d)
{
    ferry_free(d->extra);
    d->extra = NULL;
    d->n_extra = 0;
}

int dispatch_set(struct dispatch *d, int32_t code, remoting_handler_fn fn, void *arg)
{
    if (code >= 0 && code < DISPATCH_DIRECT) {
        d->direct[code] = (struct handler){fn, arg};
        return 0;
    }
    for (size_t i = 0; i < d->n_extra; i++) {
        if (d->extra[i].code == code) {
            d->extra[i].h = (struct handler){fn, arg};
            return 0;
        }
    }
    d->extra = ferry_realloc(d->extra, (d->n_extra + 1) * sizeof d->extra[0]);
    d->extra[d->n_extra].code = code;
    d->extra[d->n_extra].h = (struct handler){fn, arg};
    d->n_extra++;
    return 0;
}

static const struct handler *dispatch_find(const struct dispatch *d, int32_t code)
{
    if (!d)
        return NULL;
    if (code >= 0 && code < DISPATCH_DIRECT)
        return d->direct[code].fn ? &d->direct[code] : NULL;
    for (size_t i = 0; i < d->n_extra; i++)
        if (d->extra[i].code == code && d->extra[i].h.fn)
            return &d->extra[i].h;
    return NULL;
}

/* ---- I/O threads ---------------------------------------------------------------------- */

static void io_ref(struct iothr *io)
{
    atomic_fetch_add(&io->refs, 1);
}

static void io_unref(struct iothr *io)
{
    if (atomic_fetch_sub(&io->refs, 1) == 1) {
        ferry_free(io->deferred);
        pthread_mutex_destroy(&io->mu);
        ferry_free(io);
    }
}

int iothr_on_thread(const struct iothr *io)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &io->tid);
}

/* Queue @m for @io's thread. Returns 0 or -ENOTCONN when @io no longer takes messages (the
 * caller keeps @m). uv_async_send (an eventfd write when the loop is not already woken) runs
 * after the lock is dropped, so that posters on many threads do not queue up behind a syscall;
 * `senders` counts those between the two, and io_shutdown() waits for them before it closes
 * the async handle (`closed`, set under the lock, stops new ones). */
static int io_post(struct iothr *io, struct msg *m)
{
    pthread_mutex_lock(&io->mu);
    if (io->closed) {
        pthread_mutex_unlock(&io->mu);
        return -ENOTCONN;
    }
    m->next = NULL;
    if (io->mq_tail)
        io->mq_tail->next = m;
    else
        io->mq_head = m;
    io->mq_tail = m;
    atomic_fetch_add(&io->senders, 1);
    pthread_mutex_unlock(&io->mu);
    uv_async_send(&io->async);
    atomic_fetch_sub(&io->senders, 1);
    return 0;
}

static struct msg *msg_new(enum msg_type type, struct conn *c)
{
    struct msg *m = ferry_calloc(1, sizeof *m);
    m->type = type;
    m->fd = -1;
    m->conn = c;
    if (c)
        remoting_conn_ref(c);
    return m;
}

/* Free @wr and every write request chained after it. */
static void wreq_free(struct wreq *wr)
{
    while (wr) {
        struct wreq *next = wr->next;
        if (wr->bufs != wr->small)
            ferry_free(wr->bufs);
        ferry_free(wr->all);
        ferry_free(wr->head);
        if (wr->body_release)
            wr->body_release(wr->body_ctx);
        ferry_free(wr);
        wr = next;
    }
}

static void conn_accept(struct iothr *io, int fd);
static void conn_do_connect(struct conn *c, const struct sockaddr *addr);
static int conn_write(struct conn *c, struct wreq *wr);
static void flush_dirty(struct iothr *io);
static int write_gathered(struct conn *c);
static int tls_send(struct conn *c);
static void conn_start_invoke(struct conn *c, struct pending *pd, struct wreq *wr);
static void run_deferred(struct iothr *io);

static void run_msgs(struct iothr *io, struct msg *m)
{
    while (m) {
        struct msg *next = m->next;
        switch (m->type) {
        case MSG_FD:
            if (io->stopping)
                close(m->fd);
            else
                conn_accept(io, m->fd);
            break;
        case MSG_CONNECT:
            conn_do_connect(m->conn, (const struct sockaddr *)&m->addr);
            m->conn = NULL; /* the message's reference became the loop's */
            break;
        case MSG_SEND:
            conn_write(m->conn, m->wr);
            break;
        case MSG_INVOKE:
            conn_start_invoke(m->conn, m->pd, m->wr);
            break;
        case MSG_CLOSE:
            conn_close(m->conn, -ECANCELED);
            break;
        case MSG_CALL:
            m->fn(m->arg);
            break;
        }
        if (m->conn)
            remoting_conn_unref(m->conn);
        ferry_free(m);
        m = next;
    }
}

/* Stop taking messages, run those already queued, close every connection and the async
 * handle; the loop then ends when the last close callback has run. */
static void io_shutdown(struct iothr *io)
{
    struct msg *m;

    io->stopping = 1;
    pthread_mutex_lock(&io->mu);
    io->closed = 1;
    m = io->mq_head;
    io->mq_head = io->mq_tail = NULL;
    pthread_mutex_unlock(&io->mu);
    run_msgs(io, m);
    run_deferred(io);
    flush_dirty(io);
    for (struct conn *c = io->conns; c; c = c->next)
        conn_close(c, -ECANCELED);
    while (atomic_load(&io->senders) > 0) /* a poster between its unlock and uv_async_send */
        sched_yield();
    uv_close((uv_handle_t *)&io->async, NULL);
    uv_close((uv_handle_t *)&io->flush, NULL);
    uv_close((uv_handle_t *)&io->turn, NULL);
}

/* Run the calls deferred to the end of this turn (and those they defer in turn). */
static void run_deferred(struct iothr *io)
{
    while (io->n_deferred > 0) {
        int n = io->n_deferred;
        struct deferred small[32];
        struct deferred *d = n <= 32 ? small : ferry_malloc((size_t)n * sizeof *d);
        memcpy(d, io->deferred, (size_t)n * sizeof *d);
        io->n_deferred = 0;
        for (int i = 0; i < n; i++)
            d[i].fn(d[i].arg);
        if (d != small)
            ferry_free(d);
    }
    uv_check_stop(&io->turn);
}

static void on_turn(uv_check_t *h)
{
    run_deferred(h->data);
}

static void on_async(uv_async_t *a)
{
    struct iothr *io = a->data;
    struct msg *m;
    int stop;

    pthread_mutex_lock(&io->mu);
    m = io->mq_head;
    io->mq_head = io->mq_tail = NULL;
    stop = io->stop_requested;
    pthread_mutex_unlock(&io->mu);
    run_msgs(io, m);
    if (stop && !io->stopping)
        io_shutdown(io);
}

static void thread_main(void *arg)
{
    struct iothr *io = arg;

    io->tid = uv_thread_self();
    pthread_setname_np(pthread_self(), io->name);
    uv_sem_post(&io->started);
    uv_run(&io->loop, UV_RUN_DEFAULT);
}

int iothr_start(const struct conn_opts *opts, const char *name, struct iothr **out)
{
    struct iothr *io = ferry_calloc(1, sizeof *io);
    int rc;

    atomic_init(&io->refs, 1);
    io->opts = opts;
    snprintf(io->name, sizeof io->name, "%s", name);
    pthread_mutex_init(&io->mu, NULL);
    if ((rc = uv_loop_init(&io->loop)) != 0)
        goto fail_loop;
    /* The thread does not exist yet, so touching its loop here is safe. */
    uv_async_init(&io->loop, &io->async, on_async);
    io->async.data = io;
    uv_prepare_init(&io->loop, &io->flush);
    io->flush.data = io;
    uv_check_init(&io->loop, &io->turn);
    io->turn.data = io;
    if ((rc = uv_sem_init(&io->started, 0)) != 0)
        goto fail_sem;
    if ((rc = uv_thread_create(&io->thread, thread_main, io)) != 0)
        goto fail_thread;
    uv_sem_wait(&io->started);
    uv_sem_destroy(&io->started);
    *out = io;
    return 0;

fail_thread:
    uv_sem_destroy(&io->started);
fail_sem:
    uv_close((uv_handle_t *)&io->async, NULL);
    uv_close((uv_handle_t *)&io->flush, NULL);
    uv_close((uv_handle_t *)&io->turn, NULL);
    uv_run(&io->loop, UV_RUN_DEFAULT);
    uv_loop_close(&io->loop);
fail_loop:
    io_unref(io);
    return rc;
}

void iothr_stop(struct iothr *io)
{
    FERRY_ASSERT(!iothr_on_thread(io));
    pthread_mutex_lock(&io->mu);
    io->stop_requested = 1;
    if (!io->closed)
        uv_async_send(&io->async);
    pthread_mutex_unlock(&io->mu);
    uv_thread_join(&io->thread);
    int rc = uv_loop_close(&io->loop);
    FERRY_ASSERT(rc == 0); /* every handle was closed before the loop ended */
    io_unref(io);
}

int iothr_post_fd(struct iothr *io, int fd)
{
    struct msg *m = msg_new(MSG_FD, NULL);
    m->fd = fd;
    int rc = io_post(io, m);
    if (rc != 0)
        ferry_free(m);
    return rc;
}

/* ---- pending invokes: a small chained hash by opaque ---------------------------------- */

static size_t pend_slot(const struct conn *c, int32_t opaque)
{
    return ((uint32_t)opaque * 2654435761u) & (c->pend_cap - 1);
}

static void pend_insert(struct conn *c, struct pending *pd)
{
    if (c->pend_n >= c->pend_cap) {
        size_t old_cap = c->pend_cap;
        struct pending **old = c->pend;
        c->pend_cap = old_cap ? old_cap * 2 : 16;
        c->pend = ferry_calloc(c->pend_cap, sizeof *c->pend);
        for (size_t i = 0; i < old_cap; i++) {
            while (old[i]) {
                struct pending *p = old[i];
                old[i] = p->next;
                size_t s = pend_slot(c, p->opaque);
                p->next = c->pend[s];
                c->pend[s] = p;
            }
        }
        ferry_free(old);
    }
    size_t s = pend_slot(c, pd->opaque);
    pd->next = c->pend[s];
    c->pend[s] = pd;
    c->pend_n++;
}

/* Unlink the pending call with @opaque (or exactly @want when not NULL). */
static struct pending *pend_take(struct conn *c, int32_t opaque, struct pending *want)
{
    if (!c->pend_cap)
        return NULL;
    for (struct pending **pp = &c->pend[pend_slot(c, opaque)]; *pp; pp = &(*pp)->next) {
        struct pending *p = *pp;
        if (p->opaque == opaque && (!want || p == want)) {
            *pp = p->next;
            c->pend_n--;
            return p;
        }
    }
    return NULL;
}

static void on_pending_timeout(uv_timer_t *t);

/* Arm the connection's timer for @due unless it already fires no later. @thread owner */
static void ptimer_arm(struct conn *c, uint64_t due)
{
    uint64_t now = uv_now(&c->io->loop);
    if (c->closing || (c->ptimer_due && c->ptimer_due <= due))
        return;
    c->ptimer_due = due;
    uv_timer_start(&c->ptimer, on_pending_timeout, due > now ? due - now : 0, 0);
}

/* Put @pd (its timeout_ms set) on the deadline list, in order (from the tail: requests on
 * one connection almost always share a timeout, so that is where it goes). */
static void deadline_add(struct conn *c, struct pending *pd)
{
    struct pending *after = c->ttail;
    pd->deadline = uv_now(&c->io->loop) + (uint64_t)pd->timeout_ms;
    while (after && after->deadline > pd->deadline)
        after = after->tprev;
    pd->tprev = after;
    pd->tnext = after ? after->tnext : c->thead;
    if (pd->tnext)
        pd->tnext->tprev = pd;
    else
        c->ttail = pd;
    if (after)
        after->tnext = pd;
    else
        c->thead = pd;
    ptimer_arm(c, pd->deadline);
}

static void deadline_remove(struct conn *c, struct pending *pd)
{
    if (pd->tprev)
        pd->tprev->tnext = pd->tnext;
    else
        c->thead = pd->tnext;
    if (pd->tnext)
        pd->tnext->tprev = pd->tprev;
    else
        c->ttail = pd->tprev;
    pd->tprev = pd->tnext = NULL;
}

/* Complete a pending call that is no longer in the table: exactly once. */
static void pending_done(struct pending *pd, int status, const struct rcmd *resp)
{
    deadline_remove(pd->conn, pd);
    pd->cb(status, resp, pd->arg);
    ferry_free(pd);
}

/* Fail every invoke whose deadline has passed, then re-arm for the soonest left. The
 * callbacks may start new invokes (later deadlines) or close the connection. */
static void on_pending_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(&c->io->loop);
    struct pending *pd;

    c->ptimer_due = 0;
    while ((pd = c->thead) != NULL && pd->deadline <= now) {
        pend_take(c, pd->opaque, pd);
        log_debug(LOG_REMOTING, "%s: request opaque=%" PRId32 " timed out after %d ms", c->peer,
                  pd->opaque, pd->timeout_ms);
        pending_done(pd, -ETIMEDOUT, NULL);
    }
    if (c->thead)
        ptimer_arm(c, c->thead->deadline);
}

static void fail_all_pending(struct conn *c, int status)
{
    for (size_t i = 0; i < c->pend_cap; i++) {
        while (c->pend[i]) {
            struct pending *pd = c->pend[i];
            c->pend[i] = pd->next;
            c->pend_n--;
            pending_done(pd, status, NULL);
        }
    }
}

static void conn_start_invoke(struct conn *c, struct pending *pd, struct wreq *wr)
{
    if (c->closing) {
        wreq_free(wr);
        pd->cb(c->close_status, NULL, pd->arg);
        ferry_free(pd);
        return;
    }
    pd->conn = c;
    deadline_add(c, pd);
    pend_insert(c, pd);
    conn_write(c, wr); /* a failure closes the connection, which fails @pd */
}

/* ---- connection life cycle ------------------------------------------------------------ */

static struct conn *conn_alloc(struct iothr *io)
{
    struct conn *c = ferry_calloc(1, sizeof *c);
    c->io = io;
    io_ref(io);
    c->opts = io->opts;
    atomic_init(&c->refs, 1);
    atomic_init(&c->closed, 0);
    atomic_init(&c->next_opaque, 1);
    c->close_status = -ECONNRESET;
    snprintf(c->peer, sizeof c->peer, "?");
    return c;
}

void remoting_conn_ref(conn_t *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void remoting_conn_unref(conn_t *c)
{
    if (!c)
        return;
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        struct iothr *io = c->io;
        ferry_free(c);
        io_unref(io);
    }
}

const char *remoting_conn_peer(const conn_t *c)
{
    return c->peer;
}

int remoting_conn_is_open(const conn_t *c)
{
    return !atomic_load(&c->closed);
}

static void notify_connect(struct conn *c, int status)
{
    void (*fn)(struct conn *, int, void *) = c->on_connect;
    if (fn) {
        c->on_connect = NULL;
        fn(c, status, c->owner);
    }
}

/* All handles are closed: complete what waits on the connection and drop the loop's ref. */
static void conn_finish(struct conn *c)
{
    struct conn_stats *st = c->opts->stats;

    notify_connect(c, c->close_status);
    fail_all_pending(c, c->close_status);
    if (c->linked) {
        if (c->prev)
            c->prev->next = c->next;
        else
            c->io->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->linked = 0;
    }
    if (c->opened) {
        atomic_fetch_sub(&st->open, 1);
        atomic_fetch_add(&st->closed, 1);
        if (c->opts->on_close)
            c->opts->on_close(c, c->opts->hook_arg);
    }
    if (c->on_closed)
        c->on_closed(c, c->owner);
    log_debug(LOG_REMOTING, "connection %s closed: %s", c->peer, ferry_strerror(c->close_status));
    ferry_free(c->rbuf);
    c->rbuf = NULL;
    tls_session_free(c->tls);
    c->tls = NULL;
    ferry_free(c->pend);
    c->pend = NULL;
    c->pend_cap = 0;
    remoting_conn_unref(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0)
        conn_finish(c);
}

static void conn_close(struct conn *c, int status)
{
    if (c->closing)
        return;
    c->closing = 1;
    atomic_store(&c->closed, 1);
    c->close_status = status;
    /* Answers gathered before the close still go out (as if written at once), best effort;
     * the dirty list keeps its reference until it is next flushed. */
    if (c->handles)
        write_gathered(c);
    if (c->tls && c->handles) {
        tls_session_shutdown(c->tls); /* close_notify */
        tls_send(c);
    }
    wreq_free(c->out_head); /* a TLS connection's output from before its handshake */
    c->out_head = c->out_tail = NULL;
    if (c->handles == 0) {
        conn_finish(c);
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    uv_close((uv_handle_t *)&c->ptimer, on_handle_closed);
}

static void conn_init_handles(struct conn *c)
{
    struct iothr *io = c->io;
    int rc = uv_tcp_init(&io->loop, &c->tcp);

    FERRY_ASSERT(rc == 0); /* no socket is created here; only bad flags can fail */
    c->tcp.data = c;
    uv_timer_init(&io->loop, &c->idle);
    c->idle.data = c;
    uv_timer_init(&io->loop, &c->ptimer);
    c->ptimer.data = c;
    c->handles = 3;
    c->next = io->conns;
    c->prev = NULL;
    if (io->conns)
        io->conns->prev = c;
    io->conns = c;
    c->linked = 1;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        uv_ip4_name(in, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(in6, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(out, cap, "?");
    }
}

static void on_idle(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(&c->io->loop);
    uint64_t idle_ms = c->opts->idle_ms;
    uint64_t quiet = now - c->last_active;

    if (quiet >= idle_ms) {
        atomic_fetch_add(&c->opts->stats->idle_closed, 1);
        log_info(LOG_REMOTING, "closing connection %s: no traffic for %" PRIu64 " ms", c->peer,
                 quiet);
        conn_close(c, -ETIMEDOUT);
        return;
    }
    uv_timer_start(&c->idle, on_idle, idle_ms - quiet, 0);
}

/* Size the read buffer for the next read: the frame being assembled, or RBUF_INIT. */
static inline void rbuf_reserve(struct conn *c)
{
    size_t want = c->need > RBUF_INIT ? c->need : RBUF_INIT;

    /* need (a frame length already checked against max_frame) > rlen, so space remains. */
    if (c->rcap < want || (c->rcap > RBUF_SHRINK && c->rcap > 4 * want)) {
        c->rbuf = ferry_realloc(c->rbuf, want);
        c->rcap = want;
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)hint;
    rbuf_reserve(c);
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void proto_error(struct conn *c, const char *reason)
{
    atomic_fetch_add(&c->opts->stats->proto_errors, 1);
    log_warn(LOG_REMOTING, "closing connection %s: %s", c->peer, reason);
    conn_close(c, FERRY_EPROTO);
}

static void dispatch_request(struct conn *c, const struct rcmd *cmd)
{
    const struct handler *h = dispatch_find(c->opts->disp, cmd->code);
    char remark[64];
    struct rcmd resp;

    if (h) {
        h->fn(c, cmd, h->arg);
        return;
    }
    log_debug(LOG_REMOTING, "%s: request code %" PRId32 " not supported", c->peer, cmd->code);
    if (cmd->flag & RCMD_FLAG_ONEWAY)
        return;
    snprintf(remark, sizeof remark, "request type %" PRId32 " not supported", cmd->code);
    rcmd_init_response(&resp, cmd, RESP_REQUEST_CODE_NOT_SUPPORTED, remark);
    remoting_respond(c, &resp);
}

static void handle_cmd(struct conn *c, const struct rcmd *cmd)
{
    log_debug(LOG_REMOTING,
              "%s: frame code=%" PRId32 " opaque=%" PRId32 " flag=%" PRId32 " ser=%d body=%zu",
              c->peer, cmd->code, cmd->opaque, cmd->flag, (int)cmd->ser, cmd->body_len);
    if (!(cmd->flag & RCMD_FLAG_RESPONSE)) {
        dispatch_request(c, cmd);
        return;
    }
    struct pending *pd = pend_take(c, cmd->opaque, NULL);
    if (!pd) {
        log_debug(LOG_REMOTING, "%s: response opaque=%" PRId32 " matches no request; dropped",
                  c->peer, cmd->opaque);
        return;
    }
    pending_done(pd, 0, cmd);
}

static void process_frames(struct conn *c)
{
    char err[160];
    size_t off = 0, flen = 0;
    struct rcmd cmd;

    while (!c->closing) {
        int rc =
            frame_peek(c->rbuf + off, c->rlen - off, c->opts->max_frame, &flen, err, sizeof err);
        if (rc != 0) {
            if (off == 0 && !c->client && !c->tls && tls_is_handshake(c->rbuf, c->rlen))
                snprintf(err, sizeof err, "a TLS handshake, but this port has tlsMode=disabled");
            proto_error(c, err);
            return;
        }
        if (flen == 0 || c->rlen - off < flen)
            break;
        if ((rc = frame_decode(c->rbuf + off, flen, &cmd, err, sizeof err)) != 0) {
            proto_error(c, err);
            return;
        }
        off += flen;
        flen = 0;
        handle_cmd(c, &cmd);
    }
    if (c->closing)
        return;
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    c->need = flen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug(LOG_REMOTING, "read from %s: %s", c->peer, uv_strerror((int)nread));
        conn_close(c, nread == UV_EOF ? -ECONNRESET : (int)nread);
        return;
    }
    if (nread == 0)
        return;
    c->rlen += (size_t)nread;
    c->last_active = uv_now(&c->io->loop);
    process_frames(c);
}

/* ---- TLS connections -------------------------------------------------------------------- */

static int tls_write_gathered(struct conn *c);

/* Ciphertext that did not fit into the socket at once: a copy for uv_write. */
struct tls_wreq {
    uv_write_t req;
    struct conn *conn;
    char data[];
};

static void tls_on_write(uv_write_t *req, int status)
{
    struct tls_wreq *w = (struct tls_wreq *)req;
    struct conn *c = w->conn;

    ferry_free(w);
    if (status == 0) {
        c->last_active = uv_now(&c->io->loop);
    } else if (status != UV_ECANCELED) {
        log_debug(LOG_REMOTING, "write to %s: %s", c->peer, uv_strerror(status));
        conn_close(c, status);
    }
}

/* Send what the session has ready (handshake messages, records, alerts): straight from the
 * session's buffer when the socket takes it all, else the rest through one uv_write behind
 * what is queued. Returns 0 or a libuv error. @thread owner */
static int tls_send(struct conn *c)
{
    const uint8_t *p;
    size_t n = tls_session_out(c->tls, &p);
    uv_buf_t b;
    int rc;

    if (n == 0)
        return 0;
    b = uv_buf_init((char *)p, (unsigned)n);
    rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rc >= 0 && (size_t)rc == n) {
        c->last_active = uv_now(&c->io->loop);
        return 0;
    }
    if (rc < 0 && rc != UV_EAGAIN)
        return rc;
    size_t done = rc > 0 ? (size_t)rc : 0;
    struct tls_wreq *w = ferry_malloc(sizeof *w + (n - done));
    memcpy(w->data, p + done, n - done);
    w->conn = c;
    b = uv_buf_init(w->data, (unsigned)(n - done));
    if ((rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, tls_on_write)) != 0)
        ferry_free(w);
    return rc;
}

/* A handshake or record error, or a plain client on an enforcing port: one warning with the
 * peer and the reason, then close. */
static void tls_refuse(struct conn *c, const char *what, const char *why)
{
    atomic_fetch_add(&c->opts->stats->tls_refused, 1);
    log_warn(LOG_REMOTING, "closing connection %s: %s: %s", c->peer, what, why);
    conn_close(c, FERRY_EPROTO);
}

/* The handshake completed: a client connection is now connected; output gathered meanwhile
 * goes out. */
static void tls_established(struct conn *c)
{
    char d[320];

    atomic_fetch_add(&c->opts->stats->tls_established, 1);
    tls_session_describe(c->tls, d, sizeof d);
    log_debug(LOG_REMOTING, "connection %s: TLS established (%s)", c->peer, d);
    if (c->client)
        notify_connect(c, 0);
    /* Not through conn_flush(): with a second caller the compiler stops inlining it into the
     * plain path's flush. */
    if (!c->closing && c->out_head) {
        int rc = tls_write_gathered(c);
        if (rc != 0) {
            log_debug(LOG_REMOTING, "write to %s: %s", c->peer, uv_strerror(rc));
            conn_close(c, rc);
        }
    }
}

/* Decrypt what was fed into the session into the read buffer, handling frames as they
 * complete, then send what the session produced (handshake replies). @thread owner */
static void tls_pump(struct conn *c)
{
    char err[256];
    int was = tls_session_established(c->tls);

    for (;;) {
        if (c->rlen == c->rcap && c->rcap) {
            process_frames(c);
            if (c->closing)
                return;
        }
        rbuf_reserve(c);
        if (c->rlen == c->rcap) { /* not reached: process_frames leaves less than a frame */
            c->rcap *= 2;
            c->rbuf = ferry_realloc(c->rbuf, c->rcap);
        }
        int n = tls_session_read(c->tls, c->rbuf + c->rlen, c->rcap - c->rlen, err, sizeof err);
        if (!was && tls_session_established(c->tls)) {
            was = 1;
            tls_established(c);
            if (c->closing)
                return;
        }
        if (n > 0) {
            c->rlen += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        tls_send(c); /* the alert telling the peer why, best effort */
        if (n == TLS_EOF) {
            conn_close(c, -ECONNRESET);
            return;
        }
        tls_refuse(c, was ? "TLS error" : "TLS handshake failed", err);
        return;
    }
    int rc = tls_send(c);
    if (rc != 0) {
        log_debug(LOG_REMOTING, "write to %s: %s", c->peer, uv_strerror(rc));
        conn_close(c, rc);
        return;
    }
    process_frames(c);
}

static void tls_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    size_t cap;
    uint8_t *p = tls_session_inbuf(c->tls, &cap);

    (void)hint;
    *buf = uv_buf_init((char *)p, (unsigned)cap);
}

static void tls_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (nread < 0) {
        if (!tls_session_established(c->tls)) {
            tls_refuse(c, "TLS handshake failed",
                       nread == UV_EOF ? "the peer closed the connection (is TLS on at its end?)"
                                       : uv_strerror((int)nread));
            return;
        }
        on_read(s, nread, buf);
        return;
    }
    if (nread == 0)
        return;
    c->last_active = uv_now(&c->io->loop);
    tls_session_feed(c->tls, buf->base, (size_t)nread);
    tls_pump(c);
}

/* Start a TLS session on @c (server side: its first bytes are in @first). 0 or closes. */
static int tls_start(struct conn *c, const void *first, size_t n)
{
    char host[64];
    const char *h = NULL;
    int rc;

    if (c->client) { /* "host:port" or "[v6]:port" -> the host the certificate must name */
        const char *end = c->peer[0] == '[' ? strchr(c->peer, ']') : strrchr(c->peer, ':');
        size_t len = end ? (size_t)(end - c->peer) : strlen(c->peer);
        size_t skip = c->peer[0] == '[';
        snprintf(host, sizeof host, "%.*s", (int)(len - skip), c->peer + skip);
        h = host;
    }
    if ((c->tls = tls_session_new(c->opts->tls, h)) == NULL) {
        tls_refuse(c, "TLS", "cannot create a session (bad host name?)");
        return FERRY_EPROTO;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    if ((rc = uv_read_start((uv_stream_t *)&c->tcp, tls_on_alloc, tls_on_read)) != 0) {
        conn_close(c, rc);
        return rc;
    }
    if (n) {
        tls_session_feed(c->tls, first, n);
        tls_pump(c);
    } else if ((rc = tls_send(c)) != 0) { /* the client's hello */
        conn_close(c, rc);
        return rc;
    }
    return 0;
}

/* The first read of a connection on a permissive or enforcing port: a TLS handshake record
 * starts TLS; anything else is served plain (permissive) or refused (enforcing). */
static void sniff_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    const uint8_t *p = (const uint8_t *)buf->base;

    if (nread <= 0) {
        on_read(s, nread, buf);
        return;
    }
    if (tls_is_handshake(p, (size_t)nread)) {
        c->last_active = uv_now(&c->io->loop);
        tls_start(c, p, (size_t)nread); /* the bytes are copied into the session */
        return;
    }
    if (c->opts->tls_mode == TLS_MODE_ENFORCING) {
        tls_refuse(c, "not a TLS handshake",
                   "this port has tlsMode=enforcing and refuses plain clients");
        return;
    }
    uv_read_stop(s);
    int rc = uv_read_start(s, on_alloc, on_read);
    if (rc != 0) {
        conn_close(c, rc);
        return;
    }
    on_read(s, nread, buf);
}

/* The socket is connected: read, watch for idleness, announce. Returns 0 or closes. A TLS
 * client connection starts its handshake; a permissive or enforcing server port first looks
 * at what arrives (sniff_on_read). */
static int conn_start(struct conn *c)
{
    struct conn_stats *st = c->opts->stats;
    uv_read_cb read_cb = on_read;
    int rc;

    uv_tcp_nodelay(&c->tcp, 1);
    c->last_active = uv_now(&c->io->loop);
    if (c->opts->tls && !c->client)
        read_cb = sniff_on_read;
    if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, read_cb)) != 0) {
        conn_close(c, rc);
        return rc;
    }
    if (c->opts->idle_ms)
        uv_timer_start(&c->idle, on_idle, c->opts->idle_ms, 0);
    c->opened = 1;
    atomic_fetch_add(&st->open, 1);
    if (c->opts->on_open)
        c->opts->on_open(c, c->opts->hook_arg);
    log_debug(LOG_REMOTING, "connection %s open", c->peer);
    if (c->opts->tls && c->client)
        return tls_start(c, NULL, 0);
    return 0;
}

static void conn_accept(struct iothr *io, int fd)
{
    struct conn *c = conn_alloc(io);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc;

    conn_init_handles(c);
    if ((rc = uv_tcp_open(&c->tcp, fd)) != 0) {
        log_warn(LOG_REMOTING, "adopting an accepted socket: %s", uv_strerror(rc));
        close(fd);
        conn_close(c, rc);
        return;
    }
    atomic_fetch_add(&c->opts->stats->accepted, 1);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        format_addr(&ss, c->peer, sizeof c->peer);
    conn_start(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0 || c->closing) {
        status = status < 0 ? status : -ECANCELED;
        notify_connect(c, status);
        conn_close(c, status);
        return;
    }
    status = conn_start(c);
    if (status != 0 || !c->tls) /* TLS: connected when the handshake is done */
        notify_connect(c, status);
}

static void conn_do_connect(struct conn *c, const struct sockaddr *addr)
{
    int rc;

    if (c->io->stopping) {
        conn_close(c, -ECANCELED); /* no handles yet: finishes at once */
        return;
    }
    conn_init_handles(c);
    c->creq.data = c;
    if ((rc = uv_tcp_connect(&c->creq, &c->tcp, addr, on_connect)) != 0) {
        notify_connect(c, rc);
        conn_close(c, rc);
    }
}

struct conn *conn_connect(struct iothr *io, const struct conn_opts *opts,
                          const struct sockaddr *addr, const char *peer,
                          void (*on_conn)(struct conn *conn, int status, void *owner),
                          void (*on_closed)(struct conn *conn, void *owner), void *owner, int *rc)
{
    struct conn *c = conn_alloc(io);
    struct msg *m;

    c->opts = opts;
    c->client = 1;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->on_connect = on_conn;
    c->on_closed = on_closed;
    c->owner = owner;
    remoting_conn_ref(c); /* the caller's */
    m = msg_new(MSG_CONNECT, NULL);
    m->conn = c; /* the loop's reference travels with the message */
    memcpy(&m->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if ((*rc = io_post(io, m)) != 0) {
        ferry_free(m);
        remoting_conn_unref(c);
        remoting_conn_unref(c);
        return NULL;
    }
    return c;
}

/* ---- writing -------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct conn *c = wr->conn;

    wreq_free(wr);
    if (status == 0) {
        c->last_active = uv_now(&c->io->loop);
        return;
    }
    if (status != UV_ECANCELED) {
        log_debug(LOG_REMOTING, "write to %s: %s", c->peer, uv_strerror(status));
        conn_close(c, status);
    }
}

/* TLS: encrypt everything gathered (after the handshake; until then it stays gathered) and
 * send it. Returns 0 or an error as write_gathered(). @thread owner */
static int tls_write_gathered(struct conn *c)
{
    struct wreq *wr = c->out_head;
    char err[256];
    int rc = 0;

    if (!tls_session_established(c->tls))
        return 0;
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
    c->out_nbufs = 0;
    for (struct wreq *w = wr; w && rc == 0; w = w->next)
        for (unsigned i = 0; i < w->nbufs && rc == 0; i++)
            rc = tls_session_write(c->tls, w->bufs[i].base, w->bufs[i].len, err, sizeof err);
    wreq_free(wr);
    if (rc != 0) {
        log_warn(LOG_REMOTING, "TLS write to %s: %s", c->peer, err);
        return UV_EPROTO;
    }
    return tls_send(c);
}

/* Hand everything gathered on @c to the socket. Most of the time it all fits in the socket
 * buffer: it is written at once with uv_try_write, so libuv neither queues a write request nor
 * re-arms the epoll interest when the queue drains (one epoll_ctl per write otherwise). What
 * does not fit goes to one uv_write, which keeps the order behind it. Returns 0 or the error
 * (the gathered requests are then freed; the caller decides about the connection).
 * @thread owner */
static int write_gathered(struct conn *c)
{
    struct wreq *wr = c->out_head;
    unsigned nbufs = c->out_nbufs;
    size_t total = c->out_bytes;
    uv_buf_t *bufs;
    int rc;

    if (!wr)
        return 0;
    if (c->tls)
        return tls_write_gathered(c);
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
    c->out_nbufs = 0;
    if (wr->next) { /* several frames: one array of every buffer, in order */
        uv_buf_t *all = ferry_malloc(nbufs * sizeof *all);
        unsigned n = 0;
        for (struct wreq *w = wr; w; w = w->next)
            for (unsigned i = 0; i < w->nbufs; i++)
                all[n++] = w->bufs[i];
        wr->all = bufs = all;
    } else {
        bufs = wr->bufs;
        nbufs = wr->nbufs;
    }
    rc = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (rc >= 0 && (size_t)rc == total) {
        c->last_active = uv_now(&c->io->loop);
        wreq_free(wr);
        return 0;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        wreq_free(wr);
        return rc;
    }
    if (rc > 0) { /* skip what was written (libuv copies the array, not the bytes) */
        size_t done = (size_t)rc;
        while (done >= bufs->len) {
            done -= bufs->len;
            bufs++;
            nbufs--;
        }
        bufs->base += done;
        bufs->len -= done;
    }
    rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write);
    if (rc != 0)
        wreq_free(wr);
    return rc;
}

static void conn_flush(struct conn *c)
{
    int rc;

    if (c->closing || (rc = write_gathered(c)) == 0)
        return;
    log_debug(LOG_REMOTING, "write to %s: %s", c->peer, uv_strerror(rc));
    conn_close(c, rc);
}

/* Write what every dirty connection gathered. @thread owner */
static void flush_dirty(struct iothr *io)
{
    struct conn *c;

    while ((c = io->dirty) != NULL) {
        io->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        conn_flush(c);
        remoting_conn_unref(c);
    }
    uv_prepare_stop(&io->flush);
}

static void on_flush(uv_prepare_t *h)
{
    flush_dirty(h->data);
}

/* Gather @wr (taken over) on the owning thread; it is written before the loop next polls.
 * Returns 0 or a negative error (then the connection is closed or was already). */
static int conn_write(struct conn *c, struct wreq *wr)
{
    struct iothr *io = c->io;

    if (c->closing) {
        wreq_free(wr);
        return -ENOTCONN;
    }
    wr->conn = c;
    wr->next = NULL;
    if (c->out_tail)
        c->out_tail->next = wr;
    else
        c->out_head = wr;
    c->out_tail = wr;
    c->out_nbufs += wr->nbufs;
    for (unsigned i = 0; i < wr->nbufs; i++)
        c->out_bytes += wr->bufs[i].len;
    if (!c->dirty) {
        c->dirty = 1;
        remoting_conn_ref(c);
        c->dirty_next = io->dirty;
        if (!io->dirty)
            uv_prepare_start(&io->flush, on_flush);
        io->dirty = c;
    }
    /* What the socket did not take is queued in user space (libuv's queue, or gathered). */
    if (c->tcp.write_queue_size + c->out_bytes > c->opts->max_out) {
        atomic_fetch_add(&c->opts->stats->overflow_closed, 1);
        log_warn(LOG_REMOTING,
                 "closing connection %s: %zu bytes of output queued, over the "
                 "limit of %zu",
                 c->peer, c->tcp.write_queue_size + c->out_bytes, c->opts->max_out);
        conn_close(c, -ENOBUFS);
    }
    return 0;
}

static void release_body(const struct rcmd *cmd)
{
    if (cmd->body_release)
        cmd->body_release(cmd->body_ctx);
}

/* Encode @cmd into a write request; the body is copied unless body_release is set. On error
 * the body is released. */
static int wreq_new(const struct rcmd *cmd, struct wreq **out)
{
    /* The request and the frame's bytes in one allocation (head stays NULL: nothing apart). */
    const size_t lead = (sizeof(struct wreq) + 15) & ~(size_t)15;
    uint8_t *block;
    size_t len;
    int rc = frame_encode_after(cmd, lead, !cmd->body_release, &block, &len);
    if (rc != 0) {
        release_body(cmd);
        return rc;
    }
    struct wreq *wr = (struct wreq *)block;
    memset(wr, 0, sizeof *wr);
    wr->bufs = wr->small;
    wr->body_release = cmd->body_release;
    wr->body_ctx = cmd->body_ctx;
    if (cmd->body_release && cmd->body_iov && cmd->body_iovcnt > 0)
        wr->bufs = ferry_calloc((size_t)cmd->body_iovcnt + 1, sizeof *wr->bufs);
    wr->bufs[0] = uv_buf_init((char *)block + lead, (unsigned)len);
    wr->nbufs = 1;
    if (cmd->body_release && cmd->body_iov) {
        for (int i = 0; i < cmd->body_iovcnt; i++)
            if (cmd->body_iov[i].iov_len)
                wr->bufs[wr->nbufs++] = uv_buf_init((char *)cmd->body_iov[i].iov_base,
                                                    (unsigned)cmd->body_iov[i].iov_len);
    } else if (cmd->body_release && cmd->body_len) {
        wr->bufs[wr->nbufs++] = uv_buf_init((char *)cmd->body, (unsigned)cmd->body_len);
    }
    *out = wr;
    return 0;
}

static int conn_send(struct conn *c, struct wreq *wr)
{
    if (iothr_on_thread(c->io))
        return conn_write(c, wr);
    struct msg *m = msg_new(MSG_SEND, c);
    m->wr = wr;
    int rc = io_post(c->io, m);
    if (rc != 0) {
        wreq_free(wr);
        remoting_conn_unref(c);
        ferry_free(m);
    }
    return rc;
}

static int32_t next_opaque(struct conn *c)
{
    return (int32_t)(atomic_fetch_add(&c->next_opaque, 1) & 0x7FFFFFFFu);
}

int remoting_respond(conn_t *c, const struct rcmd *resp)
{
    struct wreq *wr;
    int rc;

    if (!c || !resp) {
        if (resp)
            release_body(resp);
        return FERRY_EINVAL;
    }
    if (resp->flag & RCMD_FLAG_ONEWAY) {
        release_body(resp); /* answers a oneway request: never sent */
        return 0;
    }
    if (atomic_load(&c->closed)) {
        release_body(resp);
        return -ENOTCONN;
    }
    if ((rc = wreq_new(resp, &wr)) != 0)
        return rc;
    return conn_send(c, wr);
}

int remoting_conn_oneway(conn_t *c, const struct rcmd *req)
{
    struct rcmd r;
    struct wreq *wr;
    int rc;

    if (!c || !req) {
        if (req)
            release_body(req);
        return FERRY_EINVAL;
    }
    if (atomic_load(&c->closed)) {
        release_body(req);
        return -ENOTCONN;
    }
    rcmd_copy_head(&r, req);
    r.opaque = next_opaque(c);
    r.flag = RCMD_FLAG_ONEWAY;
    if ((rc = wreq_new(&r, &wr)) != 0)
        return rc;
    return conn_send(c, wr);
}

/* An invoke on the connection's own thread (a callback sending the next request): started
 * at once instead of through the mailbox, which would cost an eventfd write and another loop
 * round per request. @cb still never runs before we return: the request is gathered before
 * the pending entry exists, so a close caused by the write (output over the cap) finds
 * nothing to fail, and no response can be read before the loop runs again.
 * @thread owner */
static int invoke_here(struct conn *c, struct pending *pd, struct wreq *wr)
{
    if (c->closing || c->io->stopping) {
        wreq_free(wr);
        ferry_free(pd);
        return -ENOTCONN;
    }
    conn_write(c, wr);
    if (c->closing) {
        ferry_free(pd);
        return -ENOTCONN;
    }
    pd->conn = c;
    deadline_add(c, pd);
    pend_insert(c, pd);
    return 0;
}

int remoting_conn_invoke(conn_t *c, const struct rcmd *req, int timeout_ms, remoting_cb_fn cb,
                         void *arg)
{
    struct rcmd r;
    struct wreq *wr;
    struct pending *pd;
    struct msg *m;
    int rc;

    if (!c || !req || !cb || timeout_ms <= 0) {
        if (req)
            release_body(req);
        return FERRY_EINVAL;
    }
    if (atomic_load(&c->closed)) {
        release_body(req);
        return -ENOTCONN;
    }
    /* Only the header part is copied; views into req->scratch stay valid for the call. */
    rcmd_copy_head(&r, req);
    r.opaque = next_opaque(c);
    r.flag = 0;
    if ((rc = wreq_new(&r, &wr)) != 0)
        return rc;
    pd = ferry_calloc(1, sizeof *pd);
    pd->opaque = r.opaque;
    pd->timeout_ms = timeout_ms;
    pd->cb = cb;
    pd->arg = arg;
    if (iothr_on_thread(c->io))
        return invoke_here(c, pd, wr);
    /* Posted from other threads; on the loop thread see invoke_here(). */
    m = msg_new(MSG_INVOKE, c);
    m->wr = wr;
    m->pd = pd;
    if ((rc = io_post(c->io, m)) != 0) {
        wreq_free(wr);
        ferry_free(pd);
        remoting_conn_unref(c);
        ferry_free(m);
    }
    return rc;
}

int remoting_defer(conn_t *c, void (*fn)(void *arg), void *arg)
{
    struct iothr *io = c ? c->io : NULL;

    if (!io || !fn || !iothr_on_thread(io) || io->stopping)
        return FERRY_EINVAL;
    if (io->n_deferred == io->deferred_cap) {
        io->deferred_cap = io->deferred_cap ? 2 * io->deferred_cap : 8;
        io->deferred = ferry_realloc(io->deferred, (size_t)io->deferred_cap * sizeof *io->deferred);
    }
    io->deferred[io->n_deferred++] = (struct deferred){fn, arg};
    if (io->n_deferred == 1)
        uv_check_start(&io->turn, on_turn);
    return 0;
}

int remoting_conn_post(conn_t *c, void (*fn)(void *arg), void *arg)
{
    if (!c || !fn)
        return FERRY_EINVAL;
    struct msg *m = msg_new(MSG_CALL, c);
    m->fn = fn;
    m->arg = arg;
    int rc = io_post(c->io, m);
    if (rc != 0) {
        remoting_conn_unref(c);
        ferry_free(m);
    }
    return rc;
}

void remoting_conn_close(conn_t *c)
{
    if (!c || atomic_load(&c->closed))
        return;
    if (iothr_on_thread(c->io)) {
        conn_close(c, -ECANCELED);
        return;
    }
    struct msg *m = msg_new(MSG_CLOSE, c);
    if (io_post(c->io, m) != 0) {
        remoting_conn_unref(c);
        ferry_free(m);
    }
}
