/* Internal state of the store, shared by its source files (commitlog, dispatch, recovery,
 * expiry, store). Nothing here is visible outside src/store. */
#ifndef FERRY_STORE_INT_H
#define FERRY_STORE_INT_H

#include "store/cq.h"
#include "store/index.h"
#include "store/mfile.h"
#include "store/msg.h"
#include "common/prom.h"
#include "store/store.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

/* One topic-queue: its ConsumeQueue and the next queue offset appends assign. */
struct qstate {
    struct qstate *next; /* hash chain */
    uint32_t hash;
    cq_t *cq;
    int64_t next_offset;         /* @locks store.put_lock */
    int64_t rebuild_from;        /* @locks store.disp_mu: -1 or first entry to rebuild */
    struct qstate *rebuild_next; /* @locks store.disp_mu */
    atomic_int repairing;        /* a rebuild is asked for or running: the queue may be short */
    int32_t qid;
    uint8_t topic_len;
    char topic[128];
};

/* A caller waiting for its append to become durable (SYNC_FLUSH). A blocked store_put()
 * caller sleeps on its own semaphore, so a group commit wakes exactly the callers it covers
 * (no herd of threads fighting for flush_mu after every sync). */
struct waiter {
    struct waiter *prev, *next;
    struct waiter *done_next; /* completion list, after it left the FIFO */
    sem_t sem;                /* blocked callers only */
    int64_t end;              /* durable once flushed >= end */
    int64_t deadline_ms;      /* monotonic */
    store_put_cb cb;          /* NULL: a blocked store_put() thread */
    void *arg;
    int done, rc;
};

struct checkpoint {
    int64_t phys_ts;    /* store time of the last flushed CommitLog record */
    int64_t logics_ts;  /* store time of the last record whose queue entry is durable */
    int64_t index_ts;   /* same for the index */
    int64_t dispatched; /* every record below this has durable queue and index entries */
    int64_t confirm;    /* durable CommitLog end when written */
};

struct store {
    struct store_config cfg;
    char cl_dir[FERRY_PATH_MAX], cq_dir[FERRY_PATH_MAX], index_dir[FERRY_PATH_MAX];
    char ckpt_path[FERRY_PATH_MAX], abort_path[FERRY_PATH_MAX], qtable_path[FERRY_PATH_MAX];
    int lock_fd;
    struct msg_host store_host;
    int sync; /* cfg.flushDiskType == SYNC_FLUSH */
    int64_t seg_size;

    /* CommitLog segments, ascending. @locks segs_lock (rw): appender adds, expiry removes. */
    pthread_rwlock_t segs_lock;
    struct mfile **segs;
    int nsegs, segs_cap;

    /* Appends. */
    pthread_mutex_t put_lock;
    int64_t write_pos;     /* @locks put_lock */
    int64_t last_store_ts; /* @locks put_lock */
    atomic_int_least64_t max_phys;
    atomic_int_least64_t min_phys;

    /* Segment pre-allocation thread. */
    pthread_t alloc_thread;
    pthread_mutex_t alloc_mu;
    pthread_cond_t alloc_cv;
    struct mfile *next_seg; /* @locks alloc_mu: ready segment starting at alloc_start */
    int64_t alloc_start;    /* @locks alloc_mu */
    int alloc_err;          /* @locks alloc_mu: last failure, 0 if none */

    /* Flush thread and durable waiters. */
    pthread_t flush_thread;
    pthread_mutex_t flush_mu;
    pthread_cond_t flush_cv; /* wakes the flusher */
    pthread_cond_t done_cv;  /* wakes blocked store_put() callers */
    struct waiter wait_head; /* FIFO ring by end offset, @locks flush_mu */
    atomic_int flusher_idle;
    atomic_int_least64_t flushed;
    atomic_int_least64_t flushed_ts;

    /* Dispatch thread. */
    pthread_t dispatch_thread;
    pthread_mutex_t disp_mu;
    pthread_cond_t disp_cv;
    atomic_int dispatcher_idle;
    atomic_int_least64_t dispatched;
    atomic_int_least64_t dispatched_ts;
    atomic_int_least64_t repl_limit; /* -1, or dispatch stops there (store_set_repl_limit) */
    struct qstate *rebuild_list;     /* @locks disp_mu (read unlocked as a hint) */
    store_arrive_cb arrive_cb;
    void *arrive_arg;

    /* Topic-queue table: chained hash, @locks qt_lock (rw). */
    pthread_rwlock_t qt_lock;
    struct qstate **qt;
    uint32_t qt_size, qt_count;
    atomic_int qt_changed;

    index_svc_t *index;

    /* Replication hooks (store_set_repl_cbs): after each append, after each flush. */
    void (*append_cb)(void *arg);
    void (*flush_cb)(void *arg, int64_t flushed);
    void *repl_arg;
    atomic_int_least64_t recv_pos; /* slave: end of the bytes received (may split a record) */

    /* Service thread: queue flush, checkpoint, expiry, disk space, waiter timeouts. */
    pthread_t service_thread;
    pthread_mutex_t svc_mu;
    pthread_cond_t svc_cv;
    int64_t last_cq_flush_ms, last_cq_thorough_ms, last_clean_ms, last_disk_ms;

    /* Metrics (store_metrics()): written where the work happens, read from any thread. */
    atomic_int commit_waiters;       /* SYNC_FLUSH waiters in the FIFO, @locks flush_mu */
    atomic_uint_least64_t appended;  /* records appended (written under put_lock) */
    uint64_t appended_at_sync;       /* @thread flush: appended when the last sync began */
    struct prom_hist flush_us;       /* CommitLog sync time of each flush, us */
    struct prom_hist flush_bytes;    /* bytes each flush made durable */
    struct prom_hist flush_msgs;     /* records appended since the previous flush began */
    atomic_int_least64_t disk_total; /* the CommitLog's file system, last check (bytes) */
    atomic_int_least64_t disk_free;  /* free for unprivileged users, last check */

    atomic_int debug_syncs; /* syncs done, for debugSyncFailAfter */
    atomic_int fenced;      /* FERRY_EFENCED reason errno, 0 when healthy */
    atomic_int disk_full;
    atomic_int stopping;
    int threads_started;
    int64_t recovery_ms;
    int abnormal;
};

/* commitlog.c */
int commitlog_load(store_t *st, char *err, size_t errlen);
int commitlog_start(store_t *st);
void commitlog_stop(store_t *st);
void commitlog_unload(store_t *st);
struct mfile *commitlog_seg_ref(store_t *st, int64_t phys); /* segment holding @phys, ref'd */
int commitlog_put(store_t *st, const struct store_msg *msgs, int n, struct put_result *res,
                  struct waiter *w);
/* Append @n independent messages under one put_lock hold, one write per segment touched.
 * Each gets its own result in @rcs (0: stored, @res[i] filled; else why it was refused).
 * Returns how many were stored; @w (if any) is registered for them when that is > 0. */
int commitlog_put_multi(store_t *st, const struct store_msg *msgs, int n, int *rcs,
                        struct put_result *res, struct waiter *w);
/* Block until @w (registered by commitlog_put) is durable, fenced or timed out. */
int commitlog_wait(store_t *st, struct waiter *w);
void commitlog_fence(store_t *st, int err, const char *what);
void commitlog_expire_waiters(store_t *st);
int commitlog_sync_all(store_t *st);
int64_t commitlog_confirm(store_t *st);
int commitlog_truncate(store_t *st, int64_t end);

/* dispatch.c */
int dispatch_start(store_t *st);
void dispatch_stop(store_t *st);
void dispatch_kick(store_t *st);
/* Feed one parsed record to its queue and the index. @only: restrict to this queue (rebuild).
 * Returns 0, FERRY_EINVAL for a gap in the queue, or another error. */
int dispatch_record(store_t *st, const struct msg_view *v, struct qstate *only);
/* Re-add the entries of @qs found in CommitLog [@phys, @until). */
int dispatch_rebuild_queue(store_t *st, struct qstate *qs, int64_t phys, int64_t until);
/* Dispatch every record in [@from, @to) (recovery). */
int dispatch_replay(store_t *st, int64_t from, int64_t to);
/* Ask the dispatch thread to cut @qs at @index and rebuild it from the CommitLog. */
void dispatch_request_rebuild(store_t *st, struct qstate *qs, int64_t index);
/* Where dispatch goes: the confirmed offset, or the replication limit below it. */
int64_t dispatch_target(store_t *st);
/* Where a rebuild of @qs starts: the end of its last entry that matches its CommitLog record
 * (damaged entries after it are dropped), or the log start. @thread dispatch, or recovery */
int64_t dispatch_rebuild_point(store_t *st, struct qstate *qs);

/* store.c */
struct qstate *store_queue(store_t *st, const char *topic, size_t topic_len, int32_t qid,
                           int create);
void store_foreach_queue(store_t *st, void (*fn)(struct qstate *qs, void *arg), void *arg);

/* checkpoint.c */
int checkpoint_read(const char *path, struct checkpoint *ck);
int checkpoint_write(const char *path, const struct checkpoint *ck);
int qtable_write(store_t *st);
/* Calls @fn for each (topic, qid, entries) in the saved queue table. */
int qtable_read(store_t *st,
                void (*fn)(store_t *st, const char *topic, int32_t qid, int64_t entries, void *arg),
                void *arg);

/* recovery.c */
int recovery_run(store_t *st, char *err, size_t errlen);

/* expiry.c */
void expiry_check_disk(store_t *st);
int expiry_run(store_t *st, int manual);

#endif
