/* The remoting server: owns the listening socket, the acceptor thread and the I/O threads.
 *
 * Happy path: start() launches N I/O threads, binds and listens on the acceptor's loop, then
 * runs that loop on its own thread. Each accepted socket's descriptor is duplicated, the
 * acceptor's handle for it closed, and the duplicate posted to the next I/O thread
 * (round-robin), which adopts it with uv_tcp_open(); from then on only that thread touches it.
 *
 * Failure modes: bind/listen errors are returned from start() with a message. An accept error
 * (EMFILE...) is logged at most once every ACCEPT_LOG_MS with a count; libuv keeps a reserve
 * descriptor so the listener does not spin. An I/O thread that is shutting down refuses the
 * socket, which is then closed. free() stops the acceptor first so no new connection can
 * arrive, then each I/O thread (closing its connections), then frees. */
#include "remoting/server.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/remoting_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define IO_THREADS_MAX 64
#define ACCEPT_LOG_MS  10000

struct remoting_server {
    struct remoting_server_config cfg;
    char bind_addr[64];
    struct conn_opts opts;
    struct conn_stats stats;
    struct dispatch disp;
    struct iothr *io[IO_THREADS_MAX];
    int n_io;
    unsigned next_io; /* @thread acceptor */
    int started;
    atomic_int port;
    /* The acceptor: its loop is touched only by its thread once that runs. */
    uv_loop_t acc_loop;
    uv_tcp_t listener;
    uv_async_t acc_async;
    uv_thread_t acc_thread;
    int acc_running;
    atomic_int acc_stop;
    int64_t accept_log_ms; /* @thread acceptor */
    unsigned accept_errors;
};

void remoting_server_config_init(struct remoting_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind_addr = "0.0.0.0";
    cfg->port = 0;
    cfg->io_threads = 3;
    cfg->max_frame = FRAME_MAX_DEFAULT;
    cfg->idle_close_seconds = 120;
    cfg->max_out_bytes = 64u * 1024 * 1024;
    cfg->backlog = 1024;
}

int remoting_server_new(const struct remoting_server_config *cfg, remoting_server_t **out)
{
    const char *bind = cfg->bind_addr ? cfg->bind_addr : "0.0.0.0";

    if (cfg->port < 0 || cfg->port > 65535 || cfg->io_threads < 1 ||
        cfg->io_threads > IO_THREADS_MAX || cfg->max_frame < 64 || cfg->idle_close_seconds < 0 ||
        cfg->max_out_bytes == 0 || cfg->backlog < 1 || strlen(bind) >= 64 ||
        cfg->tls_mode < TLS_MODE_DISABLED || cfg->tls_mode > TLS_MODE_ENFORCING ||
        (cfg->tls_mode != TLS_MODE_DISABLED && (!cfg->tls || !tls_ctx_is_server(cfg->tls))))
        return FERRY_EINVAL;

    remoting_server_t *srv = ferry_calloc(1, sizeof *srv);
    srv->cfg = *cfg;
    snprintf(srv->bind_addr, sizeof srv->bind_addr, "%s", bind);
    srv->cfg.bind_addr = srv->bind_addr;
    dispatch_init(&srv->disp);
    srv->opts = (struct conn_opts){
        .max_frame = cfg->max_frame,
        .max_out = cfg->max_out_bytes,
        .idle_ms = (uint64_t)cfg->idle_close_seconds * 1000,
        .disp = &srv->disp,
        .on_open = cfg->on_open,
        .on_close = cfg->on_close,
        .hook_arg = cfg->hook_arg,
        .stats = &srv->stats,
        .tls = cfg->tls_mode != TLS_MODE_DISABLED ? cfg->tls : NULL,
        .tls_mode = cfg->tls_mode,
    };
    srv->cfg.tls = srv->opts.tls;
    if (srv->opts.tls)
        tls_ctx_ref(srv->opts.tls);
    *out = srv;
    return 0;
}

int remoting_server_register(remoting_server_t *srv, int32_t code, remoting_handler_fn fn,
                             void *arg)
{
    if (!srv || !fn || srv->started)
        return FERRY_EINVAL;
    return dispatch_set(&srv->disp, code, fn, arg);
}

int remoting_server_port(const remoting_server_t *srv)
{
    return atomic_load(&srv->port);
}

void remoting_server_stats(const remoting_server_t *srv, struct remoting_server_stats *st)
{
    st->accepted = atomic_load(&srv->stats.accepted);
    st->open = atomic_load(&srv->stats.open);
    st->closed = atomic_load(&srv->stats.closed);
    st->proto_errors = atomic_load(&srv->stats.proto_errors);
    st->idle_closed = atomic_load(&srv->stats.idle_closed);
    st->overflow_closed = atomic_load(&srv->stats.overflow_closed);
    st->tls_established = atomic_load(&srv->stats.tls_established);
    st->tls_refused = atomic_load(&srv->stats.tls_refused);
}

/* Log an accept failure at most once per ACCEPT_LOG_MS, with how many were suppressed. */
static void accept_error(remoting_server_t *srv, int rc)
{
    int64_t now = clock_mono_ms();

    srv->accept_errors++;
    if (now - srv->accept_log_ms < ACCEPT_LOG_MS)
        return;
    log_warn(LOG_REMOTING, "accept on port %d: %s (%u times since the last report)",
             atomic_load(&srv->port), uv_strerror(rc), srv->accept_errors);
    srv->accept_log_ms = now;
    srv->accept_errors = 0;
}

static void on_accepted_closed(uv_handle_t *h)
{
    ferry_free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
    remoting_server_t *srv = listener->data;
    uv_tcp_t *tmp;
    uv_os_fd_t fd;
    int dupfd, rc;

    if (status < 0) {
        accept_error(srv, status);
        return;
    }
    tmp = ferry_malloc(sizeof *tmp);
    uv_tcp_init(&srv->acc_loop, tmp);
    if ((rc = uv_accept(listener, (uv_stream_t *)tmp)) != 0) {
        accept_error(srv, rc);
        uv_close((uv_handle_t *)tmp, on_accepted_closed);
        return;
    }
    /* A libuv handle cannot move between loops: hand over a duplicate of the descriptor. */
    dupfd = -1;
    int dup_err = EBADF;
    if (uv_fileno((uv_handle_t *)tmp, &fd) == 0 && (dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        dup_err = errno; /* EMFILE at the descriptor limit; uv_close below clobbers errno */
    uv_close((uv_handle_t *)tmp, on_accepted_closed);
    if (dupfd < 0) {
        accept_error(srv, -dup_err);
        return;
    }
    struct iothr *io = srv->io[srv->next_io++ % (unsigned)srv->n_io];
    if (iothr_post_fd(io, dupfd) != 0)
        close(dupfd); /* that I/O thread is shutting down */
}

static void on_acc_async(uv_async_t *a)
{
    remoting_server_t *srv = a->data;

    if (atomic_load(&srv->acc_stop)) {
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_close((uv_handle_t *)&srv->acc_async, NULL);
    }
}

static void acceptor_main(void *arg)
{
    remoting_server_t *srv = arg;

    pthread_setname_np(pthread_self(), "ferry-accept");
    uv_run(&srv->acc_loop, UV_RUN_DEFAULT);
}

/* Bind and listen on the acceptor loop (its thread does not run yet). */
static int listen_on(remoting_server_t *srv, char *errmsg, size_t errlen)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc;

    if (strchr(srv->bind_addr, ':'))
        rc = uv_ip6_addr(srv->bind_addr, srv->cfg.port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(srv->bind_addr, srv->cfg.port, (struct sockaddr_in *)&ss);
    if (rc != 0) {
        snprintf(errmsg, errlen, "bad bind address %s", srv->bind_addr);
        return rc;
    }
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, srv->cfg.backlog, on_connection)) != 0 ||
        (rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len)) != 0) {
        snprintf(errmsg, errlen, "listen on %s:%d: %s", srv->bind_addr, srv->cfg.port,
                 uv_strerror(rc));
        return rc;
    }
    int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    atomic_store(&srv->port, port);
    return 0;
}

int remoting_server_start(remoting_server_t *srv, char *errmsg, size_t errlen)
{
    char tmp[32];
    int rc;

    if (!srv || srv->started)
        return FERRY_EINVAL;
    srv->started = 1;
    for (int i = 0; i < srv->cfg.io_threads; i++) {
        snprintf(tmp, sizeof tmp, "ferry-io-%d", i);
        if ((rc = iothr_start(&srv->opts, tmp, &srv->io[i])) != 0) {
            snprintf(errmsg, errlen, "starting I/O thread %d: %s", i, uv_strerror(rc));
            return rc;
        }
        srv->n_io++;
    }
    if ((rc = uv_loop_init(&srv->acc_loop)) != 0) {
        snprintf(errmsg, errlen, "uv_loop_init: %s", uv_strerror(rc));
        return rc;
    }
    srv->acc_running = -1; /* the loop exists; its thread does not */
    uv_tcp_init(&srv->acc_loop, &srv->listener);
    srv->listener.data = srv;
    uv_async_init(&srv->acc_loop, &srv->acc_async, on_acc_async);
    srv->acc_async.data = srv;
    if ((rc = listen_on(srv, errmsg, errlen)) != 0)
        return rc;
    if ((rc = uv_thread_create(&srv->acc_thread, acceptor_main, srv)) != 0) {
        snprintf(errmsg, errlen, "starting the acceptor thread: %s", uv_strerror(rc));
        return rc;
    }
    srv->acc_running = 1;
    log_info(LOG_REMOTING, "listening on %s:%d with %d I/O threads%s%s", srv->bind_addr,
             atomic_load(&srv->port), srv->n_io, srv->opts.tls ? ", tlsMode=" : "",
             srv->opts.tls ? tls_mode_names[srv->opts.tls_mode] : "");
    return 0;
}

static void stop_acceptor(remoting_server_t *srv)
{
    if (srv->acc_running == 1) {
        atomic_store(&srv->acc_stop, 1);
        uv_async_send(&srv->acc_async);
        uv_thread_join(&srv->acc_thread);
    } else if (srv->acc_running == -1) {
        /* start() failed after the loop was made: close its handles here. */
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_close((uv_handle_t *)&srv->acc_async, NULL);
        uv_run(&srv->acc_loop, UV_RUN_DEFAULT);
    }
    if (srv->acc_running != 0) {
        int rc = uv_loop_close(&srv->acc_loop);
        FERRY_ASSERT(rc == 0);
    }
    srv->acc_running = 0;
}

void remoting_server_free(remoting_server_t *srv)
{
    if (!srv)
        return;
    stop_acceptor(srv);
    for (int i = 0; i < srv->n_io; i++)
        iothr_stop(srv->io[i]);
    if (srv->started && atomic_load(&srv->port))
        log_info(LOG_REMOTING, "server on port %d stopped", atomic_load(&srv->port));
    dispatch_close(&srv->disp);
    tls_ctx_unref(srv->opts.tls);
    ferry_free(srv);
}
