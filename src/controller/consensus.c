/* consensus.h on canonical raft (libraft 0.15) with its libuv backend, on its own thread. */
#include "controller/consensus.h"

#include "common/alloc.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct prop {
    struct prop *next;
    consensus_done_fn done;
    void *arg;
    size_t len;
    struct raft_apply req;
    char data[];
};

struct consensus {
    struct consensus_config cfg;
    struct consensus_peer peers[CONSENSUS_PEERS_MAX];
    char dir[1024];
    char self_addr[64];
    pthread_t thr;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    int raft_inited;
    int closing;

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    struct prop *q_head, *q_tail;
    int stopping;
    int wake_closed;
    int started; /* start-up finished: start_rc says how */
    int start_rc;
    char start_err[256];
    uint64_t leader_id;
    char leader_addr[64];
    int is_leader;
};

/* An entry is an 8-byte little-endian length, the payload, and zero padding to a multiple of
 * 8 bytes: libraft's disk format pads entry data to 8 bytes, and entries read back from a
 * segment otherwise come back shifted (seen with libraft 0.15 after a restart). */
#define ENTRY_HDR 8

static size_t entry_size(size_t len)
{
    return ENTRY_HDR + ((len + 7) & ~(size_t)7);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct consensus *c = fsm->data;
    const unsigned char *b = buf->base;
    uint64_t len = 0;
    if (buf->len >= ENTRY_HDR)
        for (int i = 0; i < 8; i++)
            len |= (uint64_t)b[i] << (8 * i);
    if (buf->len < ENTRY_HDR || len > buf->len - ENTRY_HDR) {
        log_error(LOG_MAIN, "raft: an entry of %zu bytes is malformed", buf->len);
        len = 0;
    }
    *result = c->cfg.apply(c->cfg.arg, b + ENTRY_HDR, (size_t)len);
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct consensus *c = fsm->data;
    void *data;
    size_t len;
    if (c->cfg.snapshot(c->cfg.arg, &data, &len) != 0)
        return RAFT_NOMEM;
    *bufs = raft_malloc(sizeof **bufs);
    if (!*bufs) {
        ferry_free(data);
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = data;
    (*bufs)[0].len = len;
    *n_bufs = 1;
    return 0;
}

/* Version 2: the buffers are ours to free once raft is done with them. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    for (unsigned i = 0; i < *n_bufs; i++)
        ferry_free((*bufs)[i].base);
    raft_free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct consensus *c = fsm->data;
    if (c->cfg.restore(c->cfg.arg, buf->base, buf->len) != 0)
        return RAFT_CORRUPT;
    raft_free(buf->base); /* the FSM owns the buffer once the restore succeeded */
    return 0;
}

static int map_status(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return CONSENSUS_NOT_LEADER;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return CONSENSUS_SHUTDOWN;
    default:
        return CONSENSUS_FAILED;
    }
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct prop *p = req->data;
    p->done(map_status(status), status == 0 ? result : NULL, p->arg);
    ferry_free(p);
}

static void refresh_leader(struct consensus *c)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&c->raft, &id, &addr);
    int leader = raft_state(&c->raft) == RAFT_LEADER;
    pthread_mutex_lock(&c->mu);
    if (c->leader_id != id || c->is_leader != leader)
        log_info(LOG_MAIN, "raft: %s; leader is %llu (%s)", leader ? "this node leads" : "follower",
                 (unsigned long long)id, addr ? addr : "unknown");
    c->leader_id = id;
    snprintf(c->leader_addr, sizeof c->leader_addr, "%s", addr ? addr : "");
    c->is_leader = leader;
    pthread_mutex_unlock(&c->mu);
}

static void close_handles(struct consensus *c)
{
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->wake, NULL);
}

static void raft_closed(struct raft *r)
{
    struct consensus *c = r->data;
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    pthread_mutex_lock(&c->mu);
    c->wake_closed = 1;
    c->is_leader = 0;
    c->leader_id = 0;
    pthread_mutex_unlock(&c->mu);
    close_handles(c);
}

static void begin_close(struct consensus *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    raft_close(&c->raft, raft_closed);
}

static void on_wake(uv_async_t *h)
{
    struct consensus *c = h->data;
    pthread_mutex_lock(&c->mu);
    struct prop *p = c->q_head;
    c->q_head = c->q_tail = NULL;
    int stopping = c->stopping;
    pthread_mutex_unlock(&c->mu);
    while (p) {
        struct prop *next = p->next;
        int rc = CONSENSUS_SHUTDOWN;
        if (!stopping && !c->closing) {
            rc = CONSENSUS_NOT_LEADER;
            if (raft_state(&c->raft) == RAFT_LEADER) {
                struct raft_buffer buf = {raft_malloc(entry_size(p->len)), entry_size(p->len)};
                if (!buf.base) {
                    rc = CONSENSUS_FAILED;
                } else {
                    unsigned char *b = buf.base;
                    memset(b, 0, buf.len);
                    for (int i = 0; i < 8; i++)
                        b[i] = (unsigned char)((uint64_t)p->len >> (8 * i));
                    memcpy(b + ENTRY_HDR, p->data, p->len);
                    p->req.data = p;
                    int rv = raft_apply(&c->raft, &p->req, &buf, 1, apply_cb);
                    if (rv == 0) {
                        p = next;
                        continue;
                    }
                    raft_free(buf.base);
                    rc = map_status(rv);
                }
            }
        }
        p->done(rc, NULL, p->arg);
        ferry_free(p);
        p = next;
    }
    if (stopping)
        begin_close(c);
}

static void on_tick(uv_timer_t *t)
{
    struct consensus *c = t->data;
    refresh_leader(c);
    if (c->cfg.tick)
        c->cfg.tick(c, c->cfg.arg);
}

static void fail_start(struct consensus *c, int rc, const char *what)
{
    pthread_mutex_lock(&c->mu);
    c->start_rc = rc ? rc : -1;
    snprintf(c->start_err, sizeof c->start_err, "%s: %s (%s)", what, raft_strerror(rc),
             c->raft_inited ? raft_errmsg(&c->raft) : "");
    pthread_mutex_unlock(&c->mu);
}

static int setup(struct consensus *c)
{
    int rv;
    if ((rv = uv_async_init(&c->loop, &c->wake, on_wake)) != 0 ||
        (rv = uv_timer_init(&c->loop, &c->timer)) != 0) {
        pthread_mutex_lock(&c->mu);
        c->start_rc = rv;
        snprintf(c->start_err, sizeof c->start_err, "uv: %s", uv_strerror(rv));
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    c->wake.data = c;
    c->timer.data = c;
    if ((rv = raft_uv_tcp_init(&c->transport, &c->loop)) != 0) {
        fail_start(c, rv, "raft_uv_tcp_init");
        close_handles(c);
        return -1;
    }
    if ((rv = raft_uv_init(&c->io, &c->loop, c->dir, &c->transport)) != 0) {
        fail_start(c, rv, "raft_uv_init");
        raft_uv_tcp_close(&c->transport);
        close_handles(c);
        return -1;
    }
    c->fsm.version = 2;
    c->fsm.data = c;
    c->fsm.apply = fsm_apply;
    c->fsm.snapshot = fsm_snapshot;
    c->fsm.restore = fsm_restore;
    c->fsm.snapshot_finalize = fsm_snapshot_finalize;
    if ((rv = raft_init(&c->raft, &c->io, &c->fsm, c->cfg.self_id, c->self_addr)) != 0) {
        fail_start(c, rv, "raft_init");
        raft_uv_close(&c->io);
        raft_uv_tcp_close(&c->transport);
        close_handles(c);
        return -1;
    }
    c->raft_inited = 1;
    c->raft.data = c;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (int i = 0; i < c->cfg.n_peers; i++) {
        rv = raft_configuration_add(&conf, c->peers[i].id, c->peers[i].addr, RAFT_VOTER);
        if (rv)
            break;
    }
    if (rv == 0) {
        rv = raft_bootstrap(&c->raft, &conf);
        if (rv == RAFT_CANTBOOTSTRAP)
            rv = 0; /* not the first start: the log has the configuration */
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        fail_start(c, rv, "raft_bootstrap");
        c->closing = 1;
        raft_close(&c->raft, raft_closed);
        return -1;
    }
    raft_set_election_timeout(&c->raft, c->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, c->cfg.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&c->raft, c->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, c->cfg.snapshot_threshold / 2 + 1);
    raft_set_pre_vote(&c->raft, true);
    if ((rv = raft_start(&c->raft)) != 0) {
        fail_start(c, rv, "raft_start");
        c->closing = 1;
        raft_close(&c->raft, raft_closed);
        return -1;
    }
    uv_timer_start(&c->timer, on_tick, c->cfg.tick_ms, c->cfg.tick_ms);
    return 0;
}

static void *run(void *arg)
{
    struct consensus *c = arg;
    int ok = setup(c) == 0;
    pthread_mutex_lock(&c->mu);
    c->started = 1;
    if (!ok)
        c->wake_closed = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return NULL;
}

int consensus_start(const struct consensus_config *cfg, consensus_t **out, char *err, size_t errlen)
{
    const struct consensus_peer *self = NULL;
    if (cfg->n_peers < 1 || cfg->n_peers > CONSENSUS_PEERS_MAX) {
        snprintf(err, errlen, "%d peers (1..%d allowed)", cfg->n_peers, CONSENSUS_PEERS_MAX);
        return -1;
    }
    for (int i = 0; i < cfg->n_peers; i++)
        if (cfg->peers[i].id == cfg->self_id)
            self = &cfg->peers[i];
    if (!self) {
        snprintf(err, errlen, "self id %llu is not one of the peers",
                 (unsigned long long)cfg->self_id);
        return -1;
    }
    /* raft_uv_tcp writes with uv_write(): a peer that closed its socket would kill the process
     * with SIGPIPE (mqcontroller ignores it already, through common/signals.c). */
    signal(SIGPIPE, SIG_IGN);
    int rc = fs_mkdirs(cfg->dir);
    if (rc) {
        snprintf(err, errlen, "cannot create %s: %s", cfg->dir, strerror(-rc));
        return -1;
    }
    struct consensus *c = ferry_calloc(1, sizeof *c);
    c->cfg = *cfg;
    memcpy(c->peers, cfg->peers, (size_t)cfg->n_peers * sizeof cfg->peers[0]);
    c->cfg.peers = c->peers;
    snprintf(c->dir, sizeof c->dir, "%s", cfg->dir);
    c->cfg.dir = c->dir;
    snprintf(c->self_addr, sizeof c->self_addr, "%s", self->addr);
    if (!c->cfg.election_timeout_ms)
        c->cfg.election_timeout_ms = 1000;
    if (!c->cfg.heartbeat_timeout_ms)
        c->cfg.heartbeat_timeout_ms = 100;
    if (!c->cfg.snapshot_threshold)
        c->cfg.snapshot_threshold = 1024;
    if (!c->cfg.tick_ms)
        c->cfg.tick_ms = 100;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    uv_loop_init(&c->loop);
    if (pthread_create(&c->thr, NULL, run, c) != 0) {
        snprintf(err, errlen, "cannot start the consensus thread");
        uv_loop_close(&c->loop);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        ferry_free(c);
        return -1;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->started)
        pthread_cond_wait(&c->cv, &c->mu);
    rc = c->start_rc;
    if (rc)
        snprintf(err, errlen, "%s", c->start_err);
    pthread_mutex_unlock(&c->mu);
    if (rc) {
        pthread_join(c->thr, NULL);
        uv_loop_close(&c->loop);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        ferry_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void consensus_propose(consensus_t *c, const void *data, size_t len, consensus_done_fn done,
                       void *arg)
{
    struct prop *p = ferry_malloc(sizeof *p + len);
    memset(p, 0, sizeof *p);
    p->done = done;
    p->arg = arg;
    p->len = len;
    memcpy(p->data, data, len);
    pthread_mutex_lock(&c->mu);
    int closed = c->wake_closed;
    if (!closed) {
        if (c->q_tail)
            c->q_tail->next = p;
        else
            c->q_head = p;
        c->q_tail = p;
        uv_async_send(&c->wake);
    }
    pthread_mutex_unlock(&c->mu);
    if (closed) {
        done(CONSENSUS_SHUTDOWN, NULL, arg);
        ferry_free(p);
    }
}

int consensus_is_leader(consensus_t *c)
{
    pthread_mutex_lock(&c->mu);
    int v = c->is_leader;
    pthread_mutex_unlock(&c->mu);
    return v;
}

uint64_t consensus_leader(consensus_t *c, char *addr, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    uint64_t id = c->leader_id;
    if (addr)
        snprintf(addr, cap, "%s", c->leader_addr);
    pthread_mutex_unlock(&c->mu);
    return id;
}

void consensus_stop(consensus_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    if (!c->wake_closed)
        uv_async_send(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thr, NULL);
    uv_loop_close(&c->loop);
    struct prop *p = c->q_head;
    while (p) {
        struct prop *next = p->next;
        p->done(CONSENSUS_SHUTDOWN, NULL, p->arg);
        ferry_free(p);
        p = next;
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    ferry_free(c);
}
