/* libferry consumer internals: decoded message batches, process queues (offset bookkeeping),
 * queue allocation, and the core shared by the push and the lite pull consumer (routes,
 * offsets, pulling, heartbeats, the service thread). */
#ifndef FERRY_CLIENT_CONSUMER_INT_H
#define FERRY_CLIENT_CONSUMER_INT_H

#include "client/client_int.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- decoded pull responses (msgdec.c) ---- */

struct pqueue;
struct msg_batch;

/* A unit of work for the push consumer's pool: @n messages of @b from @start (concurrent), or,
 * with @b NULL, "consume queue @q in order" (orderly). */
struct task {
    struct task *next;
    struct pqueue *q;
    struct msg_batch *b;
    uint32_t start, n;
    int64_t due; /* local retry: not before (monotonic ms) */
};

/* The messages of one pull response, in one allocation: the ext structs, the consume tasks
 * that can refer to them, their properties and strings, and a copy of the stored records.
 * Freed when the last reference goes (each process-queue entry and each task hold one). */
struct msg_batch {
    atomic_int refs;
    size_t n; /* messages kept (after filtering) */
    struct ferry_message_ext *msgs;
    struct task *tasks; /* n slots for the push consumer */
    void **inflated;    /* decompressed bodies, ninflated */
    size_t ninflated;
};

/* Decode the records in @body (a pull response) into *@out with one reference held by the
 * caller. @broker is the queue's broker name. Returns 0 or FERRY_EPROTO. */
int msgdec_batch(const uint8_t *body, size_t len, const char *broker, struct msg_batch **out);
/* Keep only the messages for which @keep(m, arg) is true (order preserved). */
void msgdec_filter(struct msg_batch *b, int (*keep)(const struct ferry_message_ext *, void *),
                   void *arg);
void msgdec_ref(struct msg_batch *b, int n);
void msgdec_unref(struct msg_batch *b, int n);

/* ---- process queue: the messages of one queue held by the client (procq.c) ---- */

struct pq_entry {
    int64_t offset;
    struct ferry_message_ext *m;
    struct msg_batch *b;
    uint32_t size;
    uint8_t done;  /* consumed (or handed back to the broker) */
    uint8_t taken; /* orderly / lite pull: handed to the application, not settled yet */
};

/* Entries in offset order (a ring). The committed offset of the queue is the offset of the
 * first entry not done, or the last offset added + 1 when every entry is done: it never passes
 * a message that was not consumed. */
struct procq {
    struct pq_entry *v;
    size_t head, n, cap;
    int64_t last; /* highest offset added; -1: none */
    size_t bytes; /* body bytes of the entries */
};

void procq_init(struct procq *q);
/* Release every entry's batch reference. */
void procq_destroy(struct procq *q);
/* Append @n messages of @b (ascending offsets; ones at or below q->last are skipped), each
 * taking one reference on @b. Returns how many were added. */
size_t procq_add(struct procq *q, struct msg_batch *b, struct ferry_message_ext *msgs, size_t n);
/* Mark @offset done and drop the done prefix. Returns 1 when found. */
int procq_done(struct procq *q, int64_t offset);
/* The committed offset (see above), -1 when nothing was ever added. */
int64_t procq_commit_offset(const struct procq *q);
/* Take up to @max entries not yet taken, in offset order, into @out (pointers into the
 * ring, valid until the next add/done). Returns the count. */
size_t procq_take(struct procq *q, size_t max, struct pq_entry **out);
/* Give back every taken and not done entry (orderly suspend), counting one more
 * reconsume_times on each. */
void procq_untake(struct procq *q);
/* Entries held (a done entry stays until those before it are done); offset span between the
 * first and the last entry. */
static inline size_t procq_count(const struct procq *q)
{
    return q->n;
}
int64_t procq_span(const struct procq *q);

/* AllocateMessageQueueAveragely: the indexes [*first, *first + *count) of @nmq queues that
 * consumer @me (its index in the sorted list of @ncid ids) gets. */
void allocate_average(int nmq, int ncid, int me, int *first, int *count);

/* ---- the consumer core (consumer.c) ---- */

enum consumer_kind { CONSUMER_PUSH, CONSUMER_LITE };

struct sub {
    char topic[256];
    char expr[1024]; /* "*" or "a||b" as given */
    char **tags;     /* NULL: every tag */
    int ntags;
    int64_t version;
};

struct consumer;

/* One message queue the consumer pulls. */
struct pqueue {
    struct ferry_mq mq;
    struct consumer *c;
    atomic_int refs;
    pthread_mutex_t lock; /* everything below */
    struct procq pq;
    int64_t next_offset;  /* next pull */
    int64_t start_offset; /* where pulling started (commit offset before any message) */
    int64_t lite_pos;     /* lite pull: consumed position */
    int dropped;
    int pull_busy;         /* a pull in flight or scheduled */
    uint32_t gen;          /* bumped by a seek: results of older pulls are discarded */
    int locked;            /* orderly: the broker lock is held */
    int64_t lock_ms;       /* when it was last renewed (monotonic ms) */
    int consuming;         /* orderly: a worker owns the queue */
    int64_t suspend_until; /* orderly: no consuming before (monotonic ms) */
    int64_t committed;     /* last offset reported to the offset store */
    int from_slave;        /* the last pull answer suggested a slave (suggestWhichBrokerId) */
    struct task otask;     /* orderly: the queue's task (queued while consuming is set) */
};

/* Hooks of the consumer kinds. Called without c->lock. */
struct consumer_ops {
    /* New messages in @q (called on an I/O thread, q->lock not held). */
    void (*on_messages)(struct consumer *c, struct pqueue *q, struct msg_batch *b);
    /* Periodic and notified rebalancing (push only; may be NULL). */
    void (*rebalance)(struct consumer *c);
    /* 1 when pulling @q must pause (flow control); q->lock held. */
    int (*pull_paused)(struct consumer *c, struct pqueue *q);
};

struct timer {
    struct pqueue *q; /* a delayed pull (referenced) */
    int64_t due;      /* monotonic ms */
    uint32_t gen;     /* q->gen when scheduled */
};

struct off_entry {
    struct ferry_mq mq;
    int64_t offset;
    int dirty;
};

struct consumer {
    struct ferry_consumer_config cfg;
    enum consumer_kind kind;
    const struct consumer_ops *ops;
    char client_id[256];
    struct route_cache rc;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t cond;  /* wakes the service thread */
    struct sub *subs;
    int nsubs;
    struct pqueue **qs; /* assigned queues */
    int nqs;
    struct timer *timers;
    int ntimers;
    struct off_entry *offs; /* the offset store's table */
    int noffs;
    struct route_entry *routes; /* per subscribed topic, refreshed by the service thread */
    int nroutes;
    /* Every master address seen in a route, kept when a refreshed route no longer lists the
     * broker (a name server that restarted lists brokers as they re-register): the offsets of
     * the queues released then are still committed to it. */
    struct route_broker *known;
    int nknown;
    /* Master addresses that refused a connection: slaves serve until @until (monotonic ms),
     * then the master is tried again. */
    struct down_addr {
        char addr[CLIENT_ADDR_MAX];
        int64_t until;
    } * down;
    int ndown;
    char **pending_reset; /* RESET_CONSUMER_CLIENT_OFFSET bodies to apply */
    int npending_reset;
    int started, stopping, stopped;
    int rebalance_now;
    int rebalance_soon; /* a topic had no route or no members yet: retry in a second */
    int heartbeat_soon; /* a pull failed: the broker may have restarted and forgotten us */
    int64_t next_heartbeat, next_persist, next_rebalance, next_routes, next_lock;
    pthread_t service;
    int service_running;
    pthread_cond_t lite_cond; /* lite pull: messages arrived */
};

int consumer_init(struct consumer *c, const struct ferry_consumer_config *cfg,
                  enum consumer_kind kind, const struct consumer_ops *ops);
/* Start the service thread. */
int consumer_start(struct consumer *c);
/* Stop pulling and the service thread (connections stay open). */
void consumer_stop(struct consumer *c);
/* Persist offsets, unlock (orderly), unregister, close connections. */
void consumer_finish(struct consumer *c);
void consumer_destroy(struct consumer *c);

int consumer_subscribe(struct consumer *c, const char *topic, const char *expr);
/* 1 when @m passes the subscription of its topic (client-side tag check). */
int consumer_tag_match(const struct consumer *c, const char *topic, const char *tags);

/* The route of @topic (cached by the service thread; fetched when missing). */
int consumer_route(struct consumer *c, const char *topic, struct route *out);

/* Queue table (c->lock held by the caller for find; add/remove take it). */
struct pqueue *consumer_find_queue(struct consumer *c, const struct ferry_mq *mq);
/* A new queue starting at @offset (@locked: orderly, the broker lock is held); pulling
 * starts. */
struct pqueue *consumer_add_queue(struct consumer *c, const struct ferry_mq *mq, int64_t offset,
                                  int locked);
/* Drop @q: no more pulls, its offset persisted and forgotten (clustering). */
void consumer_remove_queue(struct consumer *c, struct pqueue *q, int persist);
void pqueue_ref(struct pqueue *q);
void pqueue_unref(struct pqueue *q);

/* Start point of a new queue (computePullFromWhere): 0 with *@offset, or an error. */
int consumer_start_offset(struct consumer *c, const struct ferry_mq *mq, int64_t *offset);
/* The committed offset of @mq from the broker or the local file (-1: none). */
int consumer_read_offset(struct consumer *c, const struct ferry_mq *mq, int64_t *offset);
/* Offsets of @mq from its broker: @which 0 = min, 1 = max, 2 = first stored at @ts. */
int consumer_queue_offset(struct consumer *c, const struct ferry_mq *mq, int which, int64_t ts,
                          int64_t *out);
/* Update the offset store (increase only unless @force). */
void consumer_update_offset(struct consumer *c, const struct ferry_mq *mq, int64_t offset,
                            int force);
/* Write every dirty offset (broker or local file). Returns 0 or the first error. */
int consumer_persist_offsets(struct consumer *c);

/* Ask for a pull of @q after @delay_ms (0: now). */
void consumer_pull_later(struct consumer *c, struct pqueue *q, int64_t delay_ms);
/* Wake the service thread to rebalance. */
void consumer_kick(struct consumer *c);

/* One request to the master of @broker: 0 with *@resp (rcmd_free), or an error. */
int consumer_invoke(struct consumer *c, const char *broker, struct rcmd *req, int timeout_ms,
                    struct rcmd **resp);
/* Master address of @broker per the routes of the subscribed topics (copied to @addr). */
int consumer_broker_addr(struct consumer *c, const char *topic, const char *broker, char *addr,
                         size_t cap);
/* The address to read from for @broker: its master, unless @want_slave (the broker suggested
 * a slave) and a slave is listed, or the master is absent from the route or refused a
 * connection lately and a slave is listed. *@alt (may be NULL): the other address to try when
 * connecting to the one picked fails ("" when none); *@is_master: the pick is the master. */
int consumer_pick_addr(struct consumer *c, const char *topic, const char *broker, int want_slave,
                       char *addr, size_t cap, char *alt, size_t alt_cap, int *is_master);
/* A master that refused a connection: read from its slave for a while. */
void consumer_master_down(struct consumer *c, const char *addr);

/* JSON of a MessageQueue as Java writes it. */
void mq_to_json(char *buf, size_t cap, const struct ferry_mq *mq);

#endif
