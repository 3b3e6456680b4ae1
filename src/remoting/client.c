/* The remoting client: at most one live connection at a time, on an I/O thread of its own or
 * (cfg.shared_io) on one of a few I/O threads shared by such clients; then freeing a client
 * closes its connection and waits until every connection it made has finished closing.
 *
 * Happy path: connect() resolves on the caller's thread, posts the connect to the I/O thread
 * and waits for its result; invoke_async() posts the encoded request with a pending entry
 * (conn.c matches the response by opaque); invoke_sync() is invoke_async() plus a condition
 * variable and a copy of the response.
 *
 * Failure modes: a connect that does not finish in time is abandoned (its connection closed)
 * and reported as -ETIMEDOUT; a lost connection fails every pending request through conn.c and
 * clears cli->conn, so later calls return -ENOTCONN at once. @locks cli->mu guards conn and the
 * connect state; it is never held while calling into the I/O thread or user callbacks.
 *
 * Signing (RocketMQ ACL): a client with an account sends each request as a stack copy of its
 * head with AccessKey and Signature added (HMAC-SHA1 over the sorted extFields values and the
 * body, computed here without libcrypto); the request itself is not touched. */
#include "remoting/client.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/remoting_int.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct remoting_client {
    struct remoting_client_config cfg;
    struct conn_opts opts;
    struct conn_stats stats;
    struct dispatch disp;
    struct iothr *io;
    pthread_mutex_t mu;
    pthread_cond_t cond;     /* connect results; CLOCK_MONOTONIC */
    struct conn *conn;       /* @locks mu; holds a reference */
    int connecting;          /* @locks mu */
    int connect_done;        /* @locks mu */
    int connect_status;      /* @locks mu */
    int registration_closed; /* @locks mu: a connect was tried */
    int shared;              /* io is one of the shared threads (cfg.shared_io) */
    int live_conns;          /* @locks mu: connections made and not yet finished closing */
    /* The signing account ("": requests go unsigned). */
    char sign_ak[REMOTING_KEY_MAX];
    char sign_sk[REMOTING_KEY_MAX];
};

/* The account new clients of this thread sign with (remoting_client_default_signer()). */
static _Thread_local char default_ak[REMOTING_KEY_MAX], default_sk[REMOTING_KEY_MAX];

/* The I/O threads shared by clients with cfg.shared_io: started with the first such client,
 * stopped with the last. @locks shared_mu */
#define SHARED_IO_MAX 4
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct iothr *shared_io[SHARED_IO_MAX];
static struct conn_opts shared_opts; /* unused: every connection brings its client's */
static int shared_n, shared_users;
static unsigned shared_next;

static int shared_acquire(struct iothr **out)
{
    int rc = 0;
    pthread_mutex_lock(&shared_mu);
    if (shared_users == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n = n < 1 ? 1 : n > SHARED_IO_MAX ? SHARED_IO_MAX : n;
        for (shared_n = 0; shared_n < n; shared_n++)
            if ((rc = iothr_start(&shared_opts, "ferry-io-shared", &shared_io[shared_n])) != 0)
                break;
        if (rc != 0) {
            while (shared_n > 0)
                iothr_stop(shared_io[--shared_n]);
        }
    }
    if (rc == 0) {
        shared_users++;
        *out = shared_io[shared_next++ % (unsigned)shared_n];
    }
    pthread_mutex_unlock(&shared_mu);
    return rc;
}

/* Not from a shared I/O thread (the last release joins them). */
static void shared_release(void)
{
    pthread_mutex_lock(&shared_mu);
    if (--shared_users == 0) {
        while (shared_n > 0)
            iothr_stop(shared_io[--shared_n]);
    }
    pthread_mutex_unlock(&shared_mu);
}

void remoting_client_config_init(struct remoting_client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_frame = FRAME_MAX_DEFAULT;
    cfg->max_out_bytes = 64u * 1024 * 1024;
    cfg->idle_close_seconds = 0;
}

/* The TLS context of clients made with cfg->tls NULL (remoting_client_default_tls), with its
 * own reference, @locks default_tls_mu. */
static tls_ctx_t *default_tls;
static pthread_mutex_t default_tls_mu = PTHREAD_MUTEX_INITIALIZER;

static void set_default_tls(tls_ctx_t *ctx, tls_ctx_t *only_if)
{
    tls_ctx_t *old;
    pthread_mutex_lock(&default_tls_mu);
    old = default_tls;
    if (only_if && old != only_if) {
        pthread_mutex_unlock(&default_tls_mu);
        return;
    }
    if (ctx)
        tls_ctx_ref(ctx);
    default_tls = ctx;
    pthread_mutex_unlock(&default_tls_mu);
    if (old)
        tls_ctx_unref(old);
}

void remoting_client_default_tls(tls_ctx_t *ctx)
{
    set_default_tls(ctx, NULL);
}

void remoting_client_default_tls_clear(tls_ctx_t *ctx)
{
    if (ctx)
        set_default_tls(NULL, ctx);
}

/* The context a new client uses, with a reference for it (or NULL: plain). */
static tls_ctx_t *client_tls(const struct remoting_client_config *cfg)
{
    tls_ctx_t *t = cfg->tls;
    if (!t && !cfg->tls_no_default) {
        pthread_mutex_lock(&default_tls_mu);
        t = default_tls;
        if (t)
            tls_ctx_ref(t);
        pthread_mutex_unlock(&default_tls_mu);
        return t;
    }
    if (t)
        tls_ctx_ref(t);
    return t;
}

int remoting_client_new(const struct remoting_client_config *cfg, remoting_client_t **out)
{
    pthread_condattr_t ca;
    int rc;

    if (!cfg || cfg->max_frame < 64 || cfg->max_out_bytes == 0 || cfg->idle_close_seconds < 0)
        return FERRY_EINVAL;
    remoting_client_t *cli = ferry_calloc(1, sizeof *cli);
    cli->cfg = *cfg;
    dispatch_init(&cli->disp);
    cli->opts = (struct conn_opts){
        .max_frame = cfg->max_frame,
        .max_out = cfg->max_out_bytes,
        .idle_ms = (uint64_t)cfg->idle_close_seconds * 1000,
        .disp = &cli->disp,
        .stats = &cli->stats,
        .tls = client_tls(cfg), /* a reference, dropped by remoting_client_free() */
    };
    pthread_mutex_init(&cli->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cli->cond, &ca);
    pthread_condattr_destroy(&ca);
    cli->shared = cfg->shared_io != 0;
    memcpy(cli->sign_ak, default_ak, sizeof cli->sign_ak);
    memcpy(cli->sign_sk, default_sk, sizeof cli->sign_sk);
    rc = cli->shared ? shared_acquire(&cli->io) : iothr_start(&cli->opts, "ferry-client", &cli->io);
    if (rc != 0) {
        tls_ctx_unref(cli->opts.tls);
        pthread_cond_destroy(&cli->cond);
        pthread_mutex_destroy(&cli->mu);
        ferry_free(cli);
        return rc;
    }
    *out = cli;
    return 0;
}

int remoting_client_register(remoting_client_t *cli, int32_t code, remoting_handler_fn fn,
                             void *arg)
{
    int rc = FERRY_EINVAL;

    if (!cli || !fn)
        return FERRY_EINVAL;
    pthread_mutex_lock(&cli->mu);
    if (!cli->registration_closed)
        rc = dispatch_set(&cli->disp, code, fn, arg);
    pthread_mutex_unlock(&cli->mu);
    return rc;
}

/* @thread client I/O */
static void on_conn_result(struct conn *c, int status, void *owner)
{
    remoting_client_t *cli = owner;

    pthread_mutex_lock(&cli->mu);
    if (cli->conn == c && !cli->connect_done) {
        cli->connect_done = 1;
        cli->connect_status = status;
        pthread_cond_broadcast(&cli->cond);
    }
    pthread_mutex_unlock(&cli->mu);
}

/* @thread client I/O */
static void on_conn_closed(struct conn *c, void *owner)
{
    remoting_client_t *cli = owner;
    struct conn *drop = NULL;

    pthread_mutex_lock(&cli->mu);
    cli->live_conns--;
    if (cli->conn == c) {
        drop = c;
        cli->conn = NULL;
        if (!cli->connect_done) {
            cli->connect_done = 1;
            cli->connect_status = -ECONNRESET;
        }
    }
    pthread_cond_broadcast(&cli->cond); /* connect waits, and free waits for live_conns */
    pthread_mutex_unlock(&cli->mu);
    remoting_conn_unref(drop);
}

/* Split "host:port" or "[v6]:port". Returns 0 or FERRY_EINVAL. */
static int split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon, *h = addr;
    size_t hlen;

    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':')
            return FERRY_EINVAL;
        h = addr + 1;
        hlen = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return FERRY_EINVAL;
        hlen = (size_t)(colon - addr);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (hlen == 0 || hlen >= hcap || *end || end == colon + 1 || p < 1 || p > 65535)
        return FERRY_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, pcap, "%ld", p);
    return 0;
}

static struct timespec mono_deadline(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Wait for the result of connecting @c. @locks mu (held on entry and exit) */
static int wait_connect(remoting_client_t *cli, struct conn *c, int timeout_ms)
{
    struct timespec dl = mono_deadline(timeout_ms);

    while (!cli->connect_done) {
        if (pthread_cond_timedwait(&cli->cond, &cli->mu, &dl) == ETIMEDOUT && !cli->connect_done)
            return -ETIMEDOUT;
    }
    return cli->connect_status;
}

int remoting_client_connect(remoting_client_t *cli, const char *addr, int timeout_ms, char *errmsg,
                            size_t errlen)
{
    char host[256], port[8];
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    struct conn *c, *drop = NULL;
    int rc;

    if (!cli || !addr || timeout_ms <= 0 ||
        split_addr(addr, host, sizeof host, port, sizeof port) != 0) {
        snprintf(errmsg, errlen, "bad address %s (want host:port)", addr ? addr : "(null)");
        return FERRY_EINVAL;
    }
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        snprintf(errmsg, errlen, "resolve %s: %s", host, gai_strerror(rc));
        return FERRY_EINVAL;
    }
    if (iothr_on_thread(cli->io)) { /* its callbacks would wait for us: never connected */
        freeaddrinfo(ai);
        snprintf(errmsg, errlen, "connect to %s: not from a callback of the same I/O thread", addr);
        return -EDEADLK;
    }
    pthread_mutex_lock(&cli->mu);
    cli->registration_closed = 1;
    if (cli->conn && !cli->connecting && !remoting_conn_is_open(cli->conn)) {
        /* Lost and still closing: forget it now (its close callback will see it is gone). */
        drop = cli->conn;
        cli->conn = NULL;
    }
    if (cli->conn || cli->connecting) {
        pthread_mutex_unlock(&cli->mu);
        freeaddrinfo(ai);
        snprintf(errmsg, errlen, "already connected");
        return -EISCONN;
    }
    if (drop) {
        remoting_conn_unref(drop);
        drop = NULL;
    }
    cli->connecting = 1;
    cli->connect_done = 0;
    /* mu stays held until cli->conn is set: the I/O thread's callbacks wait for it, and
     * ignore a connection that is not cli->conn. Lock order: cli->mu, then the mailbox. */
    c = conn_connect(cli->io, &cli->opts, ai->ai_addr, addr, on_conn_result, on_conn_closed, cli,
                     &rc);
    freeaddrinfo(ai);
    if (c) {
        cli->live_conns++;
        cli->conn = c;
        rc = wait_connect(cli, c, timeout_ms);
        if (rc != 0 && cli->conn == c) {
            drop = c;
            cli->conn = NULL;
        }
    }
    cli->connecting = 0;
    pthread_mutex_unlock(&cli->mu);
    if (drop) {
        remoting_conn_close(drop); /* abandons a connect still in progress */
        remoting_conn_unref(drop);
    }
    if (rc != 0)
        snprintf(errmsg, errlen, "connect to %s: %s", addr, ferry_strerror(rc));
    return rc;
}

/* ---- signing (docs/ACL.md) ---------------------------------------------------------------- */

static int rstr_eq(struct rstr s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static int key_cmp(struct rstr a, struct rstr b)
{
    int c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

void remoting_sign_content(const struct rcmd *cmd, int with_unique_flag,
                           void (*fn)(void *arg, const void *p, size_t n), void *arg)
{
    const struct rcmd_ext *sorted[RCMD_EXT_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < cmd->ext_n && i < RCMD_EXT_MAX; i++) {
        const struct rcmd_ext *e = &cmd->ext[i];
        if (!e->key.p || rstr_eq(e->key, "Signature") ||
            (!with_unique_flag && rstr_eq(e->key, "_UNIQUE_KEY_QUERY")))
            continue;
        unsigned j = n++; /* insertion sort: at most RCMD_EXT_MAX short keys */
        for (; j > 0 && key_cmp(sorted[j - 1]->key, e->key) > 0; j--)
            sorted[j] = sorted[j - 1];
        sorted[j] = e;
    }
    for (unsigned i = 0; i < n; i++)
        if (sorted[i]->val.len)
            fn(arg, sorted[i]->val.p, sorted[i]->val.len);
    if (cmd->body_iov) {
        for (int i = 0; i < cmd->body_iovcnt; i++)
            if (cmd->body_iov[i].iov_len)
                fn(arg, cmd->body_iov[i].iov_base, cmd->body_iov[i].iov_len);
    } else if (cmd->body_len) {
        fn(arg, cmd->body, cmd->body_len);
    }
}

/* HMAC-SHA1 through OpenSSL's EVP_MAC (the algorithm fetched once per process). */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static void mac_sink(void *arg, const void *p, size_t n)
{
    EVP_MAC_update(arg, p, n);
}

void remoting_sign(const struct rcmd *cmd, const char *secret_key,
                   char out[REMOTING_SIGNATURE_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    pthread_once(&hmac_once, hmac_fetch);
    EVP_MAC_CTX *ctx = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;
    if (ctx && EVP_MAC_init(ctx, (const unsigned char *)secret_key, strlen(secret_key), params)) {
        remoting_sign_content(cmd, 0, mac_sink, ctx);
        if (!EVP_MAC_final(ctx, mac, &maclen, sizeof mac))
            maclen = 0;
    }
    EVP_MAC_CTX_free(ctx);
    if (maclen != 20) { /* OpenSSL without SHA-1: a signature no broker accepts */
        memset(out, '=', REMOTING_SIGNATURE_LEN);
        out[REMOTING_SIGNATURE_LEN] = 0;
        log_error(LOG_REMOTING, "HMAC-SHA1 is not available from OpenSSL: requests go unsigned");
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, mac, 20); /* 28 characters and a NUL */
}

static int copy_keys(char *ak, char *sk, const char *access_key, const char *secret_key)
{
    if (!access_key || !*access_key) {
        ak[0] = sk[0] = 0;
        return 0;
    }
    if (strlen(access_key) >= REMOTING_KEY_MAX || !secret_key ||
        strlen(secret_key) >= REMOTING_KEY_MAX)
        return FERRY_EINVAL;
    snprintf(ak, REMOTING_KEY_MAX, "%s", access_key);
    snprintf(sk, REMOTING_KEY_MAX, "%s", secret_key);
    return 0;
}

int remoting_client_set_signer(remoting_client_t *cli, const char *access_key,
                               const char *secret_key)
{
    return cli ? copy_keys(cli->sign_ak, cli->sign_sk, access_key, secret_key) : FERRY_EINVAL;
}

int remoting_client_default_signer(const char *access_key, const char *secret_key)
{
    return copy_keys(default_ak, default_sk, access_key, secret_key);
}

/* When @cli signs: *@req becomes @tmp, a copy of its head with AccessKey and Signature (in
 * @sig) added. 0, or FERRY_EINVAL when the extFields are full (the body is then released). */
static int sign_req(const remoting_client_t *cli, const struct rcmd **req, struct rcmd *tmp,
                    char *sig)
{
    if (!cli->sign_ak[0])
        return 0;
    rcmd_copy_head(tmp, *req);
    if (rcmd_ext_add(tmp, "AccessKey", cli->sign_ak) != 0)
        goto full;
    remoting_sign(tmp, cli->sign_sk, sig);
    if (rcmd_ext_add(tmp, "Signature", sig) != 0)
        goto full;
    *req = tmp;
    return 0;
full:
    if (tmp->body_release)
        tmp->body_release(tmp->body_ctx);
    return FERRY_EINVAL;
}

/* The current connection with a reference, or NULL. */
static struct conn *get_conn(remoting_client_t *cli)
{
    struct conn *c = NULL;

    pthread_mutex_lock(&cli->mu);
    if (cli->conn && !cli->connecting && remoting_conn_is_open(cli->conn)) {
        c = cli->conn;
        remoting_conn_ref(c);
    }
    pthread_mutex_unlock(&cli->mu);
    return c;
}

int remoting_client_is_connected(remoting_client_t *cli)
{
    struct conn *c = get_conn(cli);
    remoting_conn_unref(c);
    return c != NULL;
}

int remoting_client_invoke_async(remoting_client_t *cli, const struct rcmd *req, int timeout_ms,
                                 remoting_cb_fn cb, void *arg)
{
    if (!cli || !req) {
        if (req && req->body_release)
            req->body_release(req->body_ctx);
        return FERRY_EINVAL;
    }
    struct conn *c = get_conn(cli);
    if (!c) {
        if (req->body_release)
            req->body_release(req->body_ctx);
        return -ENOTCONN;
    }
    struct rcmd tmp;
    char sig[REMOTING_SIGNATURE_LEN + 1];
    int rc = sign_req(cli, &req, &tmp, sig);
    if (rc == 0)
        rc = remoting_conn_invoke(c, req, timeout_ms, cb, arg);
    remoting_conn_unref(c);
    return rc;
}

int remoting_client_invoke_oneway(remoting_client_t *cli, const struct rcmd *req)
{
    if (!cli || !req) {
        if (req && req->body_release)
            req->body_release(req->body_ctx);
        return FERRY_EINVAL;
    }
    struct conn *c = get_conn(cli);
    if (!c) {
        if (req->body_release)
            req->body_release(req->body_ctx);
        return -ENOTCONN;
    }
    struct rcmd tmp;
    char sig[REMOTING_SIGNATURE_LEN + 1];
    int rc = sign_req(cli, &req, &tmp, sig);
    if (rc == 0)
        rc = remoting_conn_oneway(c, req);
    remoting_conn_unref(c);
    return rc;
}

/* A blocked invoke_sync caller. It sleeps on its own semaphore: the I/O thread posts it
 * without a lock the woken caller would at once contend for (a condition variable signalled
 * under its mutex made every sync send a second futex round trip). */
struct sync_wait {
    sem_t sem;
    int status;
    struct rcmd *resp;
};

/* @thread client I/O */
static void on_sync_done(int status, const struct rcmd *resp, void *arg)
{
    struct sync_wait *w = arg;
    w->resp = status == 0 ? rcmd_dup(resp) : NULL;
    w->status = status;
    sem_post(&w->sem); /* the caller may return at once: @w is not touched after this */
}

int remoting_client_invoke_sync(remoting_client_t *cli, const struct rcmd *req, int timeout_ms,
                                struct rcmd **resp)
{
    struct sync_wait w = {.status = 0};
    int rc;

    if (!cli || !resp || (req && iothr_on_thread(cli->io))) {
        if (req && req->body_release)
            req->body_release(req->body_ctx);
        return FERRY_EINVAL;
    }
    *resp = NULL;
    sem_init(&w.sem, 0, 0);
    /* The callback comes exactly once (response, timer or close), so an unbounded wait ends. */
    if ((rc = remoting_client_invoke_async(cli, req, timeout_ms, on_sync_done, &w)) == 0) {
        while (sem_wait(&w.sem) != 0)
            ; /* EINTR */
        rc = w.status;
        *resp = w.resp;
    }
    sem_destroy(&w.sem);
    return rc;
}

void remoting_client_free(remoting_client_t *cli)
{
    struct conn *c;

    if (!cli)
        return;
    pthread_mutex_lock(&cli->mu);
    c = cli->conn;
    cli->conn = NULL;
    pthread_mutex_unlock(&cli->mu);
    if (cli->shared) {
        /* The thread goes on for others: close our connection (pending requests get
         * -ECANCELED) and wait until every one we made has finished closing, so that no
         * callback can reach @cli any more. */
        remoting_conn_close(c);
        pthread_mutex_lock(&cli->mu);
        while (cli->live_conns > 0)
            pthread_cond_wait(&cli->cond, &cli->mu);
        pthread_mutex_unlock(&cli->mu);
        shared_release();
    } else {
        iothr_stop(cli->io); /* closes @c: pending requests get -ECANCELED */
    }
    remoting_conn_unref(c);
    dispatch_close(&cli->disp);
    tls_ctx_unref(cli->opts.tls); /* every connection has finished */
    pthread_cond_destroy(&cli->cond);
    pthread_mutex_destroy(&cli->mu);
    ferry_free(cli);
}
