/* Replication between a master and its slaves (issue 8; protocol in docs/REPLICATION.md).
 *
 * One dedicated thread per broker runs the HA side of its role with poll(2):
 * - a master listens on the HA port, authenticates each slave (HMAC-SHA256 over both nonces,
 *   the broker name and the sender's role, keyed by haSecret), then streams its CommitLog from
 *   the offset the slave asks for, zero-copy from the mapped segments, in frames of at most
 *   haTransferBatchSize bytes, as fast as TCP takes them (no round trip per frame). Slaves
 *   report their durable end; SYNC_MASTER waiters (ha_wait) are completed in offset order.
 * - a slave connects to haMasterAddress (or what the name server told), authenticates the
 *   master, checks that its own log agrees with the master's (the last record below the
 *   common end must be byte-identical), appends what arrives verbatim
 *   (store_append_replica) and reports its durable end after every flush and every
 *   haSendHeartbeatInterval. It reconnects with backoff.
 * Nothing is opened while haSecret is empty.
 *
 * TLS (docs/TLS.md): with tlsMode permissive or enforcing the master first looks at what a new
 * slave sends (a TLS handshake record, or the plain HELLO) and, for TLS, completes the
 * handshake before its own HELLO; a slave with tlsEnable connects with TLS. The haSecret
 * authentication then runs inside TLS as it does in plain. */
#include "broker/ha.h"

#include "broker/broker_int.h"
#include "broker/epoch.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HA_MAGIC     "FHA1"
#define NONCE_LEN    32
#define MAC_LEN      32
#define HELLO_ID     (13 + NONCE_LEN) /* the sender's brokerId */
#define HELLO_NL     (HELLO_ID + 8)   /* length of its brokerName */
#define HELLO_FIXED  (HELLO_NL + 1)   /* magic role segsize nonce id namelen */
#define HA_EPOCHS    32               /* last epochs sent in the handshake */
#define DATA_HDR     13               /* 'D' phys(8) len(4) */
#define REPORT_LEN   17               /* 'R' received(8) durable(8) */
#define HANDSHAKE_MS 5000
#define MAX_PEERS    16
#define SLAVE_BUF    (256 * 1024)
#define MAX_BACKOFF  5000

/* P_SNIFF: TLS is on; the first byte decides plain or TLS. P_TLS: handshaking. */
enum peer_state { P_HELLO, P_AUTH, P_START, P_STREAM, P_SNIFF, P_TLS };

struct peer {
    int fd;
    struct ssl_st *ssl; /* TLS; NULL: plain */
    enum peer_state state;
    char addr[64];
    uint8_t nonce[NONCE_LEN], peer_nonce[NONCE_LEN];
    uint8_t in[512];
    size_t in_len;
    uint8_t out[1024];
    size_t out_len, out_off;
    struct store_slice cur; /* data being sent (zero-copy) */
    size_t cur_off;
    int64_t send_pos;   /* next CommitLog byte to send */
    int64_t acked;      /* durable end the slave reported, @locks ha.mu */
    int streaming;      /* @locks ha.mu */
    int64_t last_rx_ms; /* monotonic */
    int64_t last_tx_ms; /* last data frame queued (an empty one is a heartbeat) */
    int64_t t0_ms;
    int64_t broker_id; /* the slave's, from its HELLO */
};

struct ha_waiter {
    struct ha_waiter *next;
    int64_t end, deadline_ms;
    ha_wait_cb cb;
    void *arg;
};

struct ha {
    broker_t *b;
    store_t *st;
    int role;
    char name[128];
    pthread_t thread;
    int started;
    int wake_fd;
    atomic_int stop;
    atomic_int wake_pending;
    int listen_fd;
    pthread_mutex_t mu;
    struct peer *peers[MAX_PEERS]; /* master; @locks mu for acked/streaming */
    int npeers;
    struct ha_waiter *waiters; /* sorted by end, @locks mu */
    struct ha_waiter *wlast;
    /* slave: what GET_BROKER_HA_STATUS shows (ha_info) */
    char follow_addr[128]; /* the master's HA address tried last, @locks mu */
    int follow_connected;  /* authenticated and streaming from it, @locks mu */
    int stopped;           /* ha_stop() ran: ha_wait() refuses, @locks mu */
    /* A slave's socket while it connects and authenticates (-1 otherwise), @locks mu: ha_stop()
     * shuts it down, so that a master that went silent (a partition: no RST, no answer) does
     * not hold up a role switch for the connect and handshake timeouts. */
    int handshake_fd;
    struct ha *retired_next;
};

/* Guards b->ha itself: ha_stop() clears it under this lock before freeing, so a reader on
 * another thread (ha_slaves, ha_info: the admin requests) never uses a freed ha. Lock order:
 * ha_life_mu, then ha->mu. */
static pthread_mutex_t ha_life_mu = PTHREAD_MUTEX_INITIALIZER;

/* Record the slave side's link state for ha_info(). */
static void set_follow(struct ha *ha, const char *addr, int connected)
{
    pthread_mutex_lock(&ha->mu);
    if (addr)
        snprintf(ha->follow_addr, sizeof ha->follow_addr, "%s", addr);
    ha->follow_connected = connected;
    pthread_mutex_unlock(&ha->mu);
}

/* ---- helpers -------------------------------------------------------------------------- */

static void wake(struct ha *ha)
{
    if (atomic_exchange(&ha->wake_pending, 1))
        return;
    uint64_t one = 1;
    ssize_t r = write(ha->wake_fd, &one, sizeof one);
    (void)r;
}

static void on_append(void *arg)
{
    wake(arg);
}

static void on_flush(void *arg, int64_t flushed)
{
    (void)flushed;
    wake(arg);
}

/* Read the eventfd first, then allow new writes: a wake() between the two finds pending set
 * and skips its write, but what it announced is already visible to the work done after this
 * (the other order could swallow a write and leave pending set for good). */
static void drain_wake(struct ha *ha)
{
    uint64_t v;
    ssize_t r = read(ha->wake_fd, &v, sizeof v);
    (void)r;
    atomic_store(&ha->wake_pending, 0);
}

static void mac(const struct ha *ha, const uint8_t *slave_nonce, const uint8_t *master_nonce,
                char role, uint8_t out[MAC_LEN])
{
    uint8_t msg[2 * NONCE_LEN + 128 + 1];
    size_t nl = strlen(ha->name), n = 0;
    memcpy(msg, slave_nonce, NONCE_LEN);
    memcpy(msg + NONCE_LEN, master_nonce, NONCE_LEN);
    n = 2 * NONCE_LEN;
    memcpy(msg + n, ha->name, nl);
    n += nl;
    msg[n++] = (uint8_t)role;
    unsigned len = MAC_LEN;
    const char *key = ha->b->cfg.haSecret;
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, n, out, &len);
}

static size_t hello(const struct ha *ha, char role, const uint8_t *nonce, uint8_t *out)
{
    size_t nl = strlen(ha->name);
    memcpy(out, HA_MAGIC, 4);
    out[4] = (uint8_t)role;
    be64_put(out + 5, (uint64_t)store_seg_size(ha->st));
    memcpy(out + 13, nonce, NONCE_LEN);
    be64_put(out + HELLO_ID, (uint64_t)ha->b->cfg.brokerId);
    out[HELLO_NL] = (uint8_t)nl;
    memcpy(out + HELLO_FIXED, ha->name, nl);
    return HELLO_FIXED + nl;
}

/* Check a peer's HELLO in @p (@n bytes). Returns its length (0: incomplete, -1: refused and
 * logged). */
static int hello_check(const struct ha *ha, const uint8_t *p, size_t n, char want_role,
                       const char *who, uint8_t *nonce_out, int64_t *id_out)
{
    if (n < HELLO_FIXED)
        return 0;
    size_t nl = p[HELLO_NL];
    if (n < HELLO_FIXED + nl)
        return 0;
    if (memcmp(p, HA_MAGIC, 4) != 0 || p[4] != (uint8_t)want_role) {
        log_error(LOG_BROKER, "HA peer %s: not a FerryMQ HA %s; refused", who,
                  want_role == 'S' ? "slave" : "master");
        return -1;
    }
    if (nl != strlen(ha->name) || memcmp(p + HELLO_FIXED, ha->name, nl) != 0) {
        log_error(LOG_BROKER, "HA peer %s: brokerName '%.*s' is not ours ('%s'); refused", who,
                  (int)nl, (const char *)p + HELLO_FIXED, ha->name);
        return -1;
    }
    int64_t seg = (int64_t)be64_get(p + 5);
    if (seg != store_seg_size(ha->st)) {
        log_error(LOG_BROKER,
                  "HA peer %s: mappedFileSizeCommitLog=%" PRId64 " differs from ours (%" PRId64
                  "); master and slaves must use the same segment size; refused",
                  who, seg, store_seg_size(ha->st));
        return -1;
    }
    memcpy(nonce_out, p + 13, NONCE_LEN);
    *id_out = (int64_t)be64_get(p + HELLO_ID);
    return (int)(HELLO_FIXED + nl);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* recv(2) and send(2) on the HA socket @fd, through @ssl when it is TLS. */
static ssize_t ha_recv(int fd, struct ssl_st *ssl, void *buf, size_t n)
{
    return ssl ? tls_sock_read(ssl, buf, n) : recv(fd, buf, n, 0);
}

static ssize_t ha_send(int fd, struct ssl_st *ssl, const void *buf, size_t n)
{
    struct iovec v = {(void *)buf, n};
    return ssl ? tls_sock_writev(ssl, &v, 1) : send(fd, buf, n, MSG_NOSIGNAL);
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -1;
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

/* ---- SYNC_MASTER waiters -------------------------------------------------------------- */

/* Controller mode: the slaves whose acknowledgement a SYNC_MASTER send needs (the sync state
 * set, plus slaves about to join it). Outside controller mode: 0 (any inSyncReplicas). */
static uint64_t required_mask(struct ha *ha)
{
    return ha->b->cfg.enableControllerMode ? ctl_link_required_mask(ha->b) : 0;
}

static int popcount64(uint64_t m)
{
    return __builtin_popcountll(m);
}

/* Controller mode: the durable end every required slave has reached (-1: one is not
 * streaming, or there are fewer than inSyncReplicas). @locks mu */
static int64_t required_end(struct ha *ha, uint64_t mask)
{
    if (popcount64(mask) < ha->b->cfg.inSyncReplicas)
        return -1;
    int64_t end = INT64_MAX;
    uint64_t seen = 0;
    for (int i = 0; i < ha->npeers; i++) {
        struct peer *p = ha->peers[i];
        if (!p->streaming || p->broker_id <= 0 || p->broker_id > 63 || !(mask >> p->broker_id & 1))
            continue;
        seen |= 1ULL << p->broker_id;
        if (p->acked < end)
            end = p->acked; /* -1 (not checked yet): not ready */
    }
    return seen == mask ? end : -1;
}

/* The durable end that inSyncReplicas streaming slaves have reached. @locks mu */
static int64_t quorum_end(struct ha *ha)
{
    uint64_t mask = required_mask(ha);
    if (ha->b->cfg.enableControllerMode)
        return required_end(ha, mask);
    int need = ha->b->cfg.inSyncReplicas;
    int64_t acks[MAX_PEERS];
    int n = 0;
    for (int i = 0; i < ha->npeers; i++)
        if (ha->peers[i]->streaming && ha->peers[i]->acked >= 0)
            acks[n++] = ha->peers[i]->acked;
    if (n < need)
        return -1;
    /* need-th largest */
    for (int i = 0; i < need; i++)
        for (int j = i + 1; j < n; j++)
            if (acks[j] > acks[i]) {
                int64_t t = acks[i];
                acks[i] = acks[j];
                acks[j] = t;
            }
    return acks[need - 1];
}

static int in_sync_count(struct ha *ha)
{
    if (ha->b->cfg.enableControllerMode) /* every required slave must be there */
        return required_end(ha, required_mask(ha)) >= 0 ? ha->b->cfg.inSyncReplicas : 0;
    int64_t max = store_max_phys(ha->st);
    int n = 0;
    for (int i = 0; i < ha->npeers; i++)
        if (ha->peers[i]->streaming && ha->peers[i]->acked >= 0 &&
            max - ha->peers[i]->acked <= ha->b->cfg.haMaxGapNotInSync)
            n++;
    return n;
}

int ha_wait(struct ha *ha, int64_t end, ha_wait_cb cb, void *arg)
{
    if (!ha || ha->role != BROKER_SYNC_MASTER)
        return HA_ENOSLAVE;
    pthread_mutex_lock(&ha->mu);
    int rc;
    if (ha->stopped) {
        rc = HA_ENOSLAVE; /* a role switch stopped replication under this send */
    } else if (quorum_end(ha) >= end) {
        rc = 0;
    } else if (in_sync_count(ha) < ha->b->cfg.inSyncReplicas) {
        rc = HA_ENOSLAVE;
    } else {
        struct ha_waiter *w = ferry_malloc(sizeof *w);
        w->end = end;
        w->deadline_ms = clock_mono_ms() + ha->b->cfg.store.syncFlushTimeout;
        w->cb = cb;
        w->arg = arg;
        /* Sorted by end; appends almost always go last. */
        struct ha_waiter **pp = &ha->waiters;
        if (ha->wlast && ha->wlast->end <= end)
            pp = &ha->wlast->next;
        while (*pp && (*pp)->end <= end)
            pp = &(*pp)->next;
        w->next = *pp;
        *pp = w;
        if (!w->next)
            ha->wlast = w;
        rc = 1;
    }
    pthread_mutex_unlock(&ha->mu);
    if (rc == 1)
        wake(ha);
    return rc;
}

/* Complete the waiters covered by the slaves' reports, and (@now > 0) those past their
 * deadline; all of them with @rc_all when nonzero. Callbacks run outside the lock. */
static void complete_waiters(struct ha *ha, int64_t now, int rc_all)
{
    struct ha_waiter *done = NULL, **dtail = &done;
    pthread_mutex_lock(&ha->mu);
    int64_t q = quorum_end(ha);
    /* Controller mode: consumers see what every required replica has (store_set_repl_limit). */
    if (q >= 0 && !rc_all && ha->b->cfg.enableControllerMode && ha->role == BROKER_SYNC_MASTER)
        store_set_repl_limit(ha->st, q);
    struct ha_waiter **pp = &ha->waiters;
    while (*pp) {
        struct ha_waiter *w = *pp;
        int rc;
        if (rc_all)
            rc = rc_all;
        else if (w->end <= q)
            rc = 0;
        else if (now > 0 && w->deadline_ms <= now)
            rc = HA_ETIMEDOUT;
        else if (now == 0)
            break; /* sorted by end: nobody further is covered */
        else {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = NULL;
        w->deadline_ms = rc; /* reused: the result */
        *dtail = w;
        dtail = &w->next;
    }
    ha->wlast = NULL;
    for (struct ha_waiter *w = ha->waiters; w; w = w->next)
        ha->wlast = w;
    pthread_mutex_unlock(&ha->mu);
    while (done) {
        struct ha_waiter *next = done->next;
        done->cb(done->arg, (int)done->deadline_ms);
        ferry_free(done);
        done = next;
    }
}

static int have_waiters(struct ha *ha)
{
    pthread_mutex_lock(&ha->mu);
    int r = ha->waiters != NULL;
    pthread_mutex_unlock(&ha->mu);
    return r;
}

/* ---- master --------------------------------------------------------------------------- */

static void peer_close(struct ha *ha, int i, const char *why)
{
    struct peer *p = ha->peers[i];
    if (why)
        log_warn(LOG_BROKER, "HA: slave %s disconnected: %s", p->addr, why);
    pthread_mutex_lock(&ha->mu);
    ha->peers[i] = ha->peers[--ha->npeers];
    pthread_mutex_unlock(&ha->mu);
    store_release(&p->cur, p->cur.ref ? 1 : 0);
    tls_sock_free(p->ssl);
    close(p->fd);
    ferry_free(p);
}

static void queue_out(struct peer *p, const void *d, size_t n)
{
    if (p->out_off == p->out_len)
        p->out_off = p->out_len = 0;
    memcpy(p->out + p->out_len, d, n);
    p->out_len += n;
}

static void master_accept(struct ha *ha)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = accept(ha->listen_fd, (struct sockaddr *)&sa, &sl);
    if (fd < 0)
        return;
    if (ha->npeers == MAX_PEERS) {
        log_warn(LOG_BROKER, "HA: more than %d slave connections; refused", MAX_PEERS);
        close(fd);
        return;
    }
    set_nonblock(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct peer *p = ferry_calloc(1, sizeof *p);
    p->fd = fd;
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(p->addr, sizeof p->addr, "%s:%d", ip, ntohs(sa.sin_port));
    RAND_bytes(p->nonce, NONCE_LEN);
    uint8_t h[HELLO_FIXED + 128];
    if (ha->b->tls_server) /* TLS on: the slave's first byte decides (master_tls) */
        p->state = P_SNIFF;
    else
        queue_out(p, h, hello(ha, 'M', p->nonce, h));
    p->t0_ms = p->last_rx_ms = clock_mono_ms();
    pthread_mutex_lock(&ha->mu);
    ha->peers[ha->npeers++] = p;
    pthread_mutex_unlock(&ha->mu);
}

/* A new slave on a port with TLS on: plain or TLS by its first byte, then the handshake;
 * the master's HELLO follows either. Returns 1 (go on reading), 0 (wait) or -1 (close;
 * logged). */
static int master_tls(struct ha *ha, struct peer *p)
{
    char err[256];
    if (p->state == P_SNIFF) {
        uint8_t first[2];
        ssize_t r = recv(p->fd, first, sizeof first, MSG_PEEK);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            log_warn(LOG_BROKER, "HA: slave %s closed the connection", p->addr);
            return -1;
        }
        if (r < 0)
            return 0;
        if (tls_is_handshake(first, (size_t)r)) {
            if ((p->ssl = tls_sock_new(ha->b->tls_server, p->fd, NULL, err, sizeof err)) == NULL) {
                log_error(LOG_BROKER, "HA: slave %s: %s", p->addr, err);
                return -1;
            }
            p->state = P_TLS;
        } else if (ha->b->cfg.tls.tlsMode == TLS_MODE_ENFORCING) {
            log_error(LOG_BROKER,
                      "HA: slave %s connected without TLS, and tlsMode=enforcing; refused "
                      "(set tlsEnable=true on the slave)",
                      p->addr);
            return -1;
        }
    }
    if (p->state == P_TLS) {
        int r = tls_sock_handshake(p->ssl, err, sizeof err);
        if (r < 0) {
            log_error(LOG_BROKER, "HA: TLS handshake with slave %s failed: %s; refused", p->addr,
                      err);
            return -1;
        }
        if (r == 0)
            return 0;
        log_info(LOG_BROKER, "HA: slave %s: TLS established", p->addr);
    }
    uint8_t h[HELLO_FIXED + 128];
    queue_out(p, h, hello(ha, 'M', p->nonce, h));
    p->state = P_HELLO;
    return 1;
}

/* Handle what a peer sent. Returns 0, or -1 when it must be closed (logged). */
static int master_input(struct ha *ha, struct peer *p, int *acked)
{
    if (p->state == P_SNIFF || p->state == P_TLS) {
        int r = master_tls(ha, p);
        if (r <= 0)
            return r;
    }
    for (;;) {
        ssize_t r = ha_recv(p->fd, p->ssl, p->in + p->in_len, sizeof p->in - p->in_len);
        if (r == 0) {
            log_warn(LOG_BROKER, "HA: slave %s closed the connection", p->addr);
            return -1;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            log_warn(LOG_BROKER, "HA: slave %s: %s", p->addr, strerror(errno));
            return -1;
        }
        p->in_len += (size_t)r;
        p->last_rx_ms = clock_mono_ms();
        size_t off = 0;
        for (;;) {
            const uint8_t *m = p->in + off;
            size_t n = p->in_len - off;
            if (p->state == P_HELLO) {
                int hl = hello_check(ha, m, n, 'S', p->addr, p->peer_nonce, &p->broker_id);
                if (hl < 0)
                    return -1;
                if (hl == 0)
                    break;
                off += (size_t)hl;
                p->state = P_AUTH;
            } else if (p->state == P_AUTH) {
                if (n < 1 + MAC_LEN)
                    break;
                uint8_t want[MAC_LEN];
                mac(ha, p->peer_nonce, p->nonce, 'S', want);
                if (m[0] != 'A' || CRYPTO_memcmp(want, m + 1, MAC_LEN) != 0) {
                    log_error(LOG_BROKER,
                              "HA: slave %s failed authentication (wrong haSecret?); refused",
                              p->addr);
                    return -1;
                }
                off += 1 + MAC_LEN;
                /* 'A' mac 'I' end(8), then the last epochs (count(2) + 16 each). */
                uint8_t a[1 + MAC_LEN + 9 + 2 + 16 * HA_EPOCHS];
                a[0] = 'A';
                mac(ha, p->peer_nonce, p->nonce, 'M', a + 1);
                a[1 + MAC_LEN] = 'I';
                be64_put(a + 2 + MAC_LEN, (uint64_t)store_max_phys(ha->st));
                struct epoch_list *el = ferry_malloc(sizeof *el);
                el->n = 0;
                if (ha->b->cfg.enableControllerMode)
                    ctl_link_epochs(ha->b, el);
                if (el->n > HA_EPOCHS) {
                    memmove(el->e, el->e + el->n - HA_EPOCHS, HA_EPOCHS * sizeof el->e[0]);
                    el->n = HA_EPOCHS;
                }
                size_t el_len = epoch_encode(el, a + 1 + MAC_LEN + 9);
                ferry_free(el);
                queue_out(p, a, 1 + MAC_LEN + 9 + el_len);
                p->state = P_START;
            } else if (p->state == P_START) {
                if (n < 9)
                    break;
                int64_t start = (int64_t)be64_get(m + 1);
                if (m[0] != 'S' || start < store_min_phys(ha->st) ||
                    start > store_max_phys(ha->st)) {
                    log_error(LOG_BROKER,
                              "HA: slave %s asks for CommitLog offset %" PRId64 " outside [%" PRId64
                              ", %" PRId64 "]; refused",
                              p->addr, start, store_min_phys(ha->st), store_max_phys(ha->st));
                    return -1;
                }
                off += 9;
                p->send_pos = start;
                pthread_mutex_lock(&ha->mu);
                p->acked = -1; /* not in sync until it reports a checked durable end */
                p->streaming = 1;
                pthread_mutex_unlock(&ha->mu);
                p->state = P_STREAM;
                log_info(LOG_BROKER, "HA: slave %s authenticated; streaming from %" PRId64, p->addr,
                         start);
            } else {
                if (n < REPORT_LEN)
                    break;
                if (m[0] != 'R') {
                    log_error(LOG_BROKER, "HA: slave %s sent a bad report; closed", p->addr);
                    return -1;
                }
                int64_t durable = (int64_t)be64_get(m + 9);
                pthread_mutex_lock(&ha->mu);
                if (durable > p->acked) {
                    p->acked = durable;
                    *acked = 1;
                }
                pthread_mutex_unlock(&ha->mu);
                off += REPORT_LEN;
            }
        }
        memmove(p->in, p->in + off, p->in_len - off);
        p->in_len -= off;
    }
    return 0;
}

/* Send what we can: control bytes, then CommitLog data. Returns 0 or -1 (closed). */
static int master_output(struct ha *ha, struct peer *p)
{
    for (;;) {
        if (p->state == P_STREAM && !p->cur.ref && p->out_off == p->out_len) {
            int64_t n =
                store_read_raw(ha->st, p->send_pos, ha->b->cfg.haTransferBatchSize, &p->cur);
            if (n == FERRY_ENOTFOUND) {
                log_error(LOG_BROKER,
                          "HA: slave %s needs CommitLog offset %" PRId64
                          ", which expired here; it cannot catch up from this master",
                          p->addr, p->send_pos);
                return -1;
            }
            /* Idle: an empty frame every haSendHeartbeatInterval tells the slave we live. */
            if (n == 0 && clock_mono_ms() - p->last_tx_ms < ha->b->cfg.haSendHeartbeatInterval)
                return 0;
            p->last_tx_ms = clock_mono_ms();
            uint8_t h[DATA_HDR];
            h[0] = 'D';
            be64_put(h + 1, (uint64_t)p->send_pos);
            be32_put(h + 9, (uint32_t)n);
            queue_out(p, h, sizeof h);
            p->cur_off = 0;
            p->send_pos += n;
        }
        struct iovec iov[2];
        int niov = 0;
        if (p->out_off < p->out_len)
            iov[niov++] = (struct iovec){p->out + p->out_off, p->out_len - p->out_off};
        if (p->cur.ref)
            iov[niov++] =
                (struct iovec){(void *)(p->cur.data + p->cur_off), p->cur.len - p->cur_off};
        if (niov == 0)
            return 0;
        ssize_t w = p->ssl ? tls_sock_writev(p->ssl, iov, niov) : writev(p->fd, iov, niov);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            log_warn(LOG_BROKER, "HA: slave %s: %s", p->addr, strerror(errno));
            return -1;
        }
        size_t left = (size_t)w, c = p->out_len - p->out_off;
        if (c > left)
            c = left;
        p->out_off += c;
        left -= c;
        if (p->cur.ref) {
            p->cur_off += left;
            if (p->cur_off == p->cur.len)
                store_release(&p->cur, 1);
        }
    }
}

static void master_loop(struct ha *ha)
{
    int64_t idle_ms = 3LL * ha->b->cfg.haSendHeartbeatInterval + 1000, last_expire = 0;
    while (!atomic_load(&ha->stop)) {
        struct pollfd pf[MAX_PEERS + 2];
        int n = 0;
        pf[n++] = (struct pollfd){ha->wake_fd, POLLIN, 0};
        pf[n++] = (struct pollfd){ha->listen_fd, POLLIN, 0};
        int64_t max = store_max_phys(ha->st);
        for (int i = 0; i < ha->npeers; i++) {
            struct peer *p = ha->peers[i];
            short ev = POLLIN;
            if (p->out_off < p->out_len || p->cur.ref ||
                (p->state == P_STREAM && p->send_pos < max) ||
                (p->state == P_TLS && tls_sock_want_write(p->ssl)))
                ev |= POLLOUT;
            pf[n++] = (struct pollfd){p->fd, ev, 0};
        }
        int timeout = have_waiters(ha) ? 5 : 200;
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            drain_wake(ha);
        if (pf[1].revents & POLLIN)
            master_accept(ha);
        int acked = 0;
        int64_t now = clock_mono_ms();
        /* pf[2 + i] matches peers[i] as of the poll; accepted ones were appended after. */
        for (int i = n - 3; i >= 0; i--) {
            struct peer *p = ha->peers[i];
            short rev = pf[2 + i].revents;
            if ((rev & (POLLIN | POLLERR | POLLHUP) || (rev && p->state == P_TLS)) &&
                master_input(ha, p, &acked) != 0) {
                peer_close(ha, i, NULL);
                continue;
            }
            if (master_output(ha, p) != 0) {
                peer_close(ha, i, NULL);
                continue;
            }
            if (p->state != P_STREAM && now - p->t0_ms > HANDSHAKE_MS) {
                peer_close(ha, i, "no handshake in time");
                continue;
            }
            if (now - p->last_rx_ms > idle_ms)
                peer_close(ha, i, "no report in time");
        }
        /* Reports complete waiters at once; deadlines are checked every 5 ms. */
        if (now - last_expire >= 5) {
            last_expire = now;
            complete_waiters(ha, now, 0);
        } else if (acked) {
            complete_waiters(ha, 0, 0);
        }
    }
    while (ha->npeers)
        peer_close(ha, ha->npeers - 1, NULL);
}

/* ---- slave ---------------------------------------------------------------------------- */

struct slave_conn {
    int fd;
    struct ssl_st *ssl; /* TLS; NULL: plain */
    int64_t frame_pos;  /* CommitLog offset of the next data byte */
    uint32_t frame_left;
    uint8_t hdr[DATA_HDR];
    size_t hdr_len;
    int64_t verify_end; /* bytes below this are compared, not appended */
    int truncate;       /* cut the log at verify_end once the compare is done */
    int checked;        /* the compare (and cut) is done: the replication limit is lifted */
    int64_t last_report_ms;
    int64_t reported;
};

static int read_full(int fd, struct ssl_st *ssl, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = ha_recv(fd, ssl, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, struct ssl_st *ssl, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = ha_send(fd, ssl, p, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Connect and authenticate; agree on where to start. Returns 0, -1 (retry later) or -2
 * (refused for a reason a retry will not fix soon; logged). */
/* The handshake is over: ha_stop() no longer shuts the socket down; then close @fd (>= 0). */
static void unpublish_close(struct ha *ha, int fd)
{
    pthread_mutex_lock(&ha->mu);
    ha->handshake_fd = -1;
    pthread_mutex_unlock(&ha->mu);
    if (fd >= 0)
        close(fd);
}

static int slave_connect(struct ha *ha, const char *addr, struct slave_conn *c)
{
    struct sockaddr_in sa;
    if (parse_hostport(addr, &sa) != 0) {
        log_error(LOG_BROKER, "HA: cannot resolve the master's HA address '%s'", addr);
        return -2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&ha->mu);
    int stopping = atomic_load(&ha->stop);
    if (!stopping)
        ha->handshake_fd = fd;
    pthread_mutex_unlock(&ha->mu);
    if (stopping) {
        close(fd);
        return -1;
    }
    struct timeval tv = {HANDSHAKE_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        log_debug(LOG_BROKER, "HA: connect %s: %s", addr, strerror(errno));
        unpublish_close(ha, fd);
        return -1;
    }
    struct ssl_st *ssl = NULL; /* tlsEnable: TLS first, haSecret inside (docs/TLS.md) */
    if (ha->b->tls_client) {
        char host[128], terr[256] = "the master did not answer in time";
        const char *colon = strrchr(addr, ':');
        snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - addr) : (int)strlen(addr), addr);
        ssl = tls_sock_new(ha->b->tls_client, fd, host, terr, sizeof terr);
        if (!ssl || tls_sock_handshake(ssl, terr, sizeof terr) != 1) {
            log_error(LOG_BROKER, "HA: TLS handshake with master %s failed: %s", addr, terr);
            tls_sock_free(ssl);
            unpublish_close(ha, fd);
            return -2;
        }
    }
    uint8_t nonce[NONCE_LEN], mnonce[NONCE_LEN], buf[HELLO_FIXED + 256];
    RAND_bytes(nonce, NONCE_LEN);
    size_t hl = hello(ha, 'S', nonce, buf);
    int rc = -1;
    int64_t master_id;
    if (write_full(fd, ssl, buf, hl) != 0 || read_full(fd, ssl, buf, HELLO_FIXED) != 0 ||
        read_full(fd, ssl, buf + HELLO_FIXED, buf[HELLO_NL]) != 0)
        goto fail;
    if (hello_check(ha, buf, HELLO_FIXED + buf[HELLO_NL], 'M', addr, mnonce, &master_id) <= 0) {
        rc = -2;
        goto fail;
    }
    buf[0] = 'A';
    mac(ha, nonce, mnonce, 'S', buf + 1);
    if (write_full(fd, ssl, buf, 1 + MAC_LEN) != 0)
        goto fail;
    uint8_t a[1 + MAC_LEN + 9], want[MAC_LEN];
    if (read_full(fd, ssl, a, sizeof a) != 0) {
        log_error(LOG_BROKER,
                  "HA: master %s closed the connection during authentication (wrong haSecret?)",
                  addr);
        rc = -2;
        goto fail;
    }
    mac(ha, nonce, mnonce, 'M', want);
    if (a[0] != 'A' || CRYPTO_memcmp(want, a + 1, MAC_LEN) != 0 || a[1 + MAC_LEN] != 'I') {
        log_error(LOG_BROKER, "HA: master %s failed authentication (wrong haSecret?); refused",
                  addr);
        rc = -2;
        goto fail;
    }
    int64_t mend = (int64_t)be64_get(a + 2 + MAC_LEN);
    uint8_t eb[2 + 16 * HA_EPOCHS];
    struct epoch_list *theirs = ferry_malloc(sizeof *theirs), *mine = ferry_malloc(sizeof *mine);
    if (read_full(fd, ssl, eb, 2) != 0 || be16_get(eb) > HA_EPOCHS ||
        read_full(fd, ssl, eb + 2, 16 * (size_t)be16_get(eb)) != 0 ||
        epoch_decode(eb, 2 + 16 * (size_t)be16_get(eb), theirs) < 0) {
        log_error(LOG_BROKER, "HA: master %s sent a bad epoch list", addr);
        ferry_free(theirs);
        ferry_free(mine);
        goto fail;
    }
    int64_t end = store_max_phys(ha->st);
    if (ha->b->cfg.enableControllerMode) {
        /* Cut what this replica wrote under an epoch the master's history does not share
         * (an old master's unacknowledged tail) before anything is compared. */
        ctl_link_epochs(ha->b, mine);
        int64_t cp = epoch_consistent_point(mine, end, theirs, mend);
        if (cp >= 0 && cp < end) {
            log_warn(LOG_BROKER,
                     "HA: this replica's CommitLog (end %" PRId64 ") holds %" PRId64
                     " bytes the new master's history does not have (epochs); cutting at %" PRId64,
                     end, end - cp, cp);
            if (store_truncate_replica(ha->st, cp) != 0) {
                log_error(LOG_BROKER, "HA: cannot cut the CommitLog at %" PRId64, cp);
                ferry_free(theirs);
                ferry_free(mine);
                rc = -2;
                goto fail;
            }
            end = cp;
        }
        ctl_link_adopt_epochs(ha->b, theirs, end);
    }
    ferry_free(theirs);
    ferry_free(mine);
    int64_t common = end < mend ? end : mend;
    int64_t start = store_record_start_before(ha->st, common);
    if (start < 0) {
        log_error(LOG_BROKER,
                  "HA: this slave's CommitLog (end %" PRId64 ") has no record boundary at %" PRId64
                  ", the master's end: the logs diverged; NOT following the master (fix by hand)",
                  end, common);
        rc = -2;
        goto fail;
    }
    if (end > mend)
        log_warn(LOG_BROKER,
                 "HA: this slave's CommitLog (end %" PRId64
                 ") is longer than the master's (%" PRId64
                 "): it will be cut there once the record below is found identical",
                 end, mend);
    if (end > mend && start == common) {
        log_error(LOG_BROKER,
                  "HA: the master's CommitLog ends at %" PRId64
                  " where this slave has no record to "
                  "compare with it: NOT cutting %" PRId64 " bytes on trust (fix by hand)",
                  mend, end - mend);
        rc = -2;
        goto fail;
    }
    buf[0] = 'S';
    be64_put(buf + 1, (uint64_t)start);
    if (write_full(fd, ssl, buf, 9) != 0)
        goto fail;
    set_nonblock(fd);
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->ssl = ssl;
    c->frame_pos = start;
    c->verify_end = common;
    c->truncate = end > mend && start < common;
    c->reported = -1;
    log_info(LOG_BROKER,
             "HA: following master %s (its end %" PRId64 ", ours %" PRId64
             "; checking from %" PRId64 ")",
             addr, mend, end, start);
    unpublish_close(ha, -1);
    return 0;
fail:
    tls_sock_free(ssl);
    unpublish_close(ha, fd);
    return rc;
}

static int slave_report(struct ha *ha, struct slave_conn *c, int force)
{
    int64_t durable = store_flushed_phys(ha->st);
    /* Until the compare with the master is done the slave is not in sync at all: -1, so that
     * a slave about to refuse the master's log never counts for SYNC_MASTER. */
    if (c->frame_pos < c->verify_end || c->truncate)
        durable = -1;
    int64_t now = clock_mono_ms();
    if (!force && durable == c->reported &&
        now - c->last_report_ms < ha->b->cfg.haSendHeartbeatInterval)
        return 0;
    uint8_t r[REPORT_LEN];
    r[0] = 'R';
    be64_put(r + 1, (uint64_t)store_received_phys(ha->st));
    be64_put(r + 9, (uint64_t)durable);
    /* 17 bytes into a socket the master drains constantly: a short wait is enough. */
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    int rc = write_full(c->fd, c->ssl, r, sizeof r);
    fcntl(c->fd, F_SETFL, fl);
    c->reported = durable;
    c->last_report_ms = now;
    return rc;
}

/* Consume @n received bytes. Returns 0 or -1 (closed), -2 (diverged: stop following). */
static int slave_data(struct ha *ha, struct slave_conn *c, const uint8_t *p, size_t n)
{
    while (n) {
        if (c->frame_left == 0) {
            size_t k = DATA_HDR - c->hdr_len < n ? DATA_HDR - c->hdr_len : n;
            memcpy(c->hdr + c->hdr_len, p, k);
            c->hdr_len += k;
            p += k;
            n -= k;
            if (c->hdr_len < DATA_HDR)
                return 0;
            c->hdr_len = 0;
            int64_t pos = (int64_t)be64_get(c->hdr + 1);
            if (c->hdr[0] != 'D' || pos != c->frame_pos) {
                log_error(LOG_BROKER,
                          "HA: bad frame from the master (offset %" PRId64 ", expected %" PRId64
                          "); reconnecting",
                          pos, c->frame_pos);
                return -1;
            }
            c->frame_left = be32_get(c->hdr + 9);
            continue;
        }
        size_t k = c->frame_left < n ? c->frame_left : n;
        size_t cmp = 0;
        if (c->frame_pos < c->verify_end) {
            cmp = (size_t)(c->verify_end - c->frame_pos) < k
                      ? (size_t)(c->verify_end - c->frame_pos)
                      : k;
            if (!store_compare_raw(ha->st, c->frame_pos, p, cmp)) {
                log_error(LOG_BROKER,
                          "HA: the last record below offset %" PRId64 " differs from the master's: "
                          "the logs diverged; NOT following the master (fix by hand)",
                          c->verify_end);
                return -2;
            }
        }
        if (c->truncate && c->frame_pos + (int64_t)cmp == c->verify_end) {
            c->truncate = 0;
            if (store_truncate_replica(ha->st, c->verify_end) != 0) {
                log_error(LOG_BROKER, "HA: cannot cut the CommitLog at %" PRId64 "; NOT following",
                          c->verify_end);
                return -2;
            }
        }
        if (k > cmp) {
            int rc = store_append_replica(ha->st, c->frame_pos + (int64_t)cmp, p + cmp, k - cmp);
            if (rc) {
                log_error(LOG_BROKER, "HA: cannot append at %" PRId64 ": %s",
                          c->frame_pos + (int64_t)cmp, ferry_strerror(rc));
                return rc == FERRY_ECORRUPT ? -2 : -1;
            }
        }
        c->frame_pos += (int64_t)k;
        c->frame_left -= (uint32_t)k;
        p += k;
        n -= k;
    }
    return 0;
}

/* Once the log is known to agree with the master's (and cut where it did not), a slave
 * dispatches everything it receives: lift a replication limit left by its time as master. */
static void lift_limit_when_checked(struct ha *ha, struct slave_conn *c)
{
    if (!c->checked && c->frame_pos >= c->verify_end && !c->truncate) {
        c->checked = 1;
        store_set_repl_limit(ha->st, -1);
    }
}

static void slave_loop(struct ha *ha)
{
    uint8_t *buf = ferry_malloc(SLAVE_BUF);
    int64_t backoff = 100, next_try = 0;
    while (!atomic_load(&ha->stop)) {
        int64_t now = clock_mono_ms();
        if (now < next_try) {
            struct pollfd pf = {ha->wake_fd, POLLIN, 0};
            if (poll(&pf, 1, (int)(next_try - now)) > 0)
                drain_wake(ha);
            continue;
        }
        char addr[128], maddr[128], want[128];
        snprintf(addr, sizeof addr, "%s", ha->b->cfg.haMasterAddress);
        if (ha->b->cfg.enableControllerMode) {
            /* Follow the master the controller names, at the HA address the name server
             * has for it (a stale answer is asked again). */
            ctl_link_master(ha->b, want, sizeof want);
            if (!want[0] ||
                broker_master_addrs(ha->b, maddr, sizeof maddr, addr, sizeof addr) != 0 ||
                strcmp(maddr, want) != 0)
                addr[0] = 0;
            if (want[0] && !addr[0])
                broker_reg_trigger(ha->b);
            if (!addr[0] && backoff > 500)
                backoff = 500;
        } else if (!addr[0] &&
                   broker_master_addrs(ha->b, maddr, sizeof maddr, addr, sizeof addr) != 0) {
            addr[0] = 0;
        }
        struct slave_conn c;
        set_follow(ha, addr, 0);
        int rc = addr[0] ? slave_connect(ha, addr, &c) : -1;
        if (rc != 0) {
            if (rc == -2)
                backoff = MAX_BACKOFF;
            next_try = clock_mono_ms() + backoff;
            backoff = backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : backoff * 2;
            continue;
        }
        backoff = 100;
        set_follow(ha, NULL, 1);
        lift_limit_when_checked(ha, &c);
        int64_t last_rx = clock_mono_ms();
        int64_t idle_ms = 3LL * ha->b->cfg.haSendHeartbeatInterval + 1000;
        slave_report(ha, &c, 1);
        while (!atomic_load(&ha->stop) && rc == 0) {
            struct pollfd pf[2] = {{ha->wake_fd, POLLIN, 0}, {c.fd, POLLIN, 0}};
            int buffered = c.ssl && tls_sock_pending(c.ssl); /* poll(2) cannot see those */
            if (poll(pf, 2, buffered ? 0 : 100) < 0 && errno != EINTR)
                break;
            if (pf[0].revents)
                drain_wake(ha);
            if (pf[1].revents || buffered) {
                ssize_t r = ha_recv(c.fd, c.ssl, buf, SLAVE_BUF);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    log_warn(LOG_BROKER, "HA: connection to master %s lost", addr);
                    rc = -1;
                    break;
                }
                if (r > 0) {
                    last_rx = clock_mono_ms();
                    rc = slave_data(ha, &c, buf, (size_t)r);
                    if (rc == 0)
                        lift_limit_when_checked(ha, &c);
                }
            }
            if (rc == 0 && slave_report(ha, &c, 0) != 0)
                rc = -1;
            if (rc == 0 && clock_mono_ms() - last_rx > idle_ms) {
                log_warn(LOG_BROKER, "HA: nothing from master %s for %" PRId64 " ms; reconnecting",
                         addr, idle_ms);
                rc = -1;
            }
        }
        tls_sock_free(c.ssl);
        close(c.fd);
        set_follow(ha, NULL, 0);
        next_try = clock_mono_ms() + (rc == -2 ? MAX_BACKOFF : backoff);
    }
    ferry_free(buf);
}

int ha_slaves(broker_t *b, struct ha_slave *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&ha_life_mu);
    struct ha *ha = b->ha;
    if (ha && ha->role != BROKER_SLAVE) {
        int64_t now = clock_mono_ms();
        pthread_mutex_lock(&ha->mu);
        for (int i = 0; i < ha->npeers && n < max; i++) {
            struct peer *p = ha->peers[i];
            if (!p->streaming)
                continue;
            out[n] = (struct ha_slave){
                .broker_id = p->broker_id, .acked = p->acked, .idle_ms = now - p->last_rx_ms};
            /* p->addr is written before the peer is published under mu, never after */
            snprintf(out[n].addr, sizeof out[n].addr, "%s", p->addr);
            n++;
        }
        pthread_mutex_unlock(&ha->mu);
    }
    pthread_mutex_unlock(&ha_life_mu);
    return n;
}

void ha_info(broker_t *b, struct ha_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&ha_life_mu);
    struct ha *ha = b->ha;
    if (ha && ha->started) {
        out->running = 1;
        out->master = ha->role != BROKER_SLAVE;
        pthread_mutex_lock(&ha->mu);
        out->connected = ha->follow_connected;
        snprintf(out->master_addr, sizeof out->master_addr, "%s", ha->follow_addr);
        pthread_mutex_unlock(&ha->mu);
    }
    pthread_mutex_unlock(&ha_life_mu);
}

/* ---- life cycle ----------------------------------------------------------------------- */

static void *ha_main(void *arg)
{
    struct ha *ha = arg;
    if (ha->role == BROKER_SLAVE)
        slave_loop(ha);
    else
        master_loop(ha);
    return NULL;
}

static int open_listener(struct ha *ha, char *err, size_t errlen)
{
    const char *colon = strrchr(ha->b->ha_addr, ':');
    int port = colon ? atoi(colon + 1) : 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ha->b->cfg.bindAddress, &sa.sin_addr) != 1)
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "HA port %s:%d: %s (set haListenPort)", ha->b->cfg.bindAddress, port,
                 strerror(e));
        return -e;
    }
    ha->listen_fd = fd;
    return 0;
}

int ha_start(broker_t *b, char *err, size_t errlen)
{
    int role = broker_role(b);
    if (!b->cfg.haSecret[0]) {
        if (role != BROKER_ASYNC_MASTER)
            log_warn(LOG_BROKER,
                     "haSecret is empty: the HA port is not opened and nothing replicates%s",
                     role == BROKER_SYNC_MASTER ? " (every send answers SLAVE_NOT_AVAILABLE)" : "");
        return 0;
    }
    struct ha *ha = ferry_calloc(1, sizeof *ha);
    ha->b = b;
    ha->st = b->store;
    ha->role = role;
    ha->listen_fd = -1;
    ha->handshake_fd = -1;
    snprintf(ha->name, sizeof ha->name, "%s", b->cfg.brokerName);
    pthread_mutex_init(&ha->mu, NULL);
    ha->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = ha->wake_fd < 0 ? -errno : 0;
    if (rc)
        snprintf(err, errlen, "HA: eventfd: %s", strerror(-rc));
    if (rc == 0 && role != BROKER_SLAVE)
        rc = open_listener(ha, err, errlen);
    if (rc == 0) {
        store_set_repl_cbs(ha->st, role != BROKER_SLAVE ? on_append : NULL,
                           role == BROKER_SLAVE ? on_flush : NULL, ha);
        if ((rc = pthread_create(&ha->thread, NULL, ha_main, ha)) != 0) {
            snprintf(err, errlen, "HA: start thread: %s", strerror(rc));
            rc = -rc;
            store_set_repl_cbs(ha->st, NULL, NULL, NULL);
        } else {
            ha->started = 1;
        }
    }
    pthread_mutex_lock(&ha_life_mu);
    b->ha = ha;
    pthread_mutex_unlock(&ha_life_mu);
    if (rc == 0)
        log_info(LOG_BROKER, "HA: %s",
                 role == BROKER_SLAVE ? "slave replication started" : "listening for slaves");
    return rc;
}

void ha_stop(broker_t *b)
{
    struct ha *ha = b->ha;
    if (!ha)
        return;
    atomic_store(&ha->stop, 1);
    pthread_mutex_lock(&ha->mu);
    if (ha->handshake_fd >= 0)
        shutdown(ha->handshake_fd, SHUT_RDWR); /* wakes a blocked connect() or read() */
    pthread_mutex_unlock(&ha->mu);
    if (ha->started) {
        uint64_t one = 1;
        ssize_t r = write(ha->wake_fd, &one, sizeof one);
        (void)r;
        pthread_join(ha->thread, NULL);
        store_set_repl_cbs(ha->st, NULL, NULL, NULL);
    }
    pthread_mutex_lock(&ha->mu);
    ha->stopped = 1;
    pthread_mutex_unlock(&ha->mu);
    complete_waiters(ha, 0, HA_ETIMEDOUT);
    if (ha->listen_fd >= 0)
        close(ha->listen_fd);
    ha->listen_fd = -1;
    pthread_mutex_lock(&ha_life_mu);
    b->ha = NULL;
    pthread_mutex_unlock(&ha_life_mu);
    /* Kept until ha_release(): a send that read b->ha just before may still call ha_wait()
     * on it (it answers HA_ENOSLAVE), and a store thread may still wake it. */
    ha->retired_next = b->ha_retired;
    b->ha_retired = ha;
}

void ha_release(broker_t *b)
{
    ha_stop(b);
    while (b->ha_retired) {
        struct ha *ha = b->ha_retired;
        b->ha_retired = ha->retired_next;
        if (ha->wake_fd >= 0)
            close(ha->wake_fd);
        pthread_mutex_destroy(&ha->mu);
        ferry_free(ha);
    }
}
