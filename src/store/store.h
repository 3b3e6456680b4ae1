/* The FerryMQ message store: one CommitLog, a ConsumeQueue per topic and queue, an IndexFile
 * by key, a checkpoint and an abort marker, as RocketMQ's DefaultMessageStore.
 *
 * Promise: with SYNC_FLUSH, store_put() returns 0 only after the record is on disk (one
 * fdatasync covers every append waiting at that moment); readers see only durable records; a
 * failed write or sync fences the store (every later append fails with FERRY_EFENCED) instead
 * of acknowledging. After a crash, store_open() recovers: the CommitLog is cut at the first
 * invalid record (the cut bytes zeroed) and the queues and index are rebuilt from it.
 *
 * Threads: every function here is thread-safe. The store runs its own threads: segment
 * allocation, flush (group commit), dispatch (CommitLog -> queues/index) and a service thread
 * (queue flush, checkpoint, expiry, disk-space checks). */
#ifndef FERRY_STORE_STORE_H
#define FERRY_STORE_STORE_H

#include "common/conf.h"
#include "store/msg.h"
#include "common/prom.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

enum flush_disk_type { ASYNC_FLUSH, SYNC_FLUSH };
enum write_mode { WRITE_MMAP, WRITE_PWRITE, WRITE_AUTO };

/* Configuration, with RocketMQ's key names (see store_conf_defs and docs/config.md). */
struct store_config {
    char storePathRootDir[1024];
    char storePathCommitLog[1024]; /* empty: <root>/commitlog */
    int64_t mappedFileSizeCommitLog;
    int32_t mappedFileSizeConsumeQueue; /* bytes; rounded up to a multiple of 20 */
    int flushDiskType;                  /* enum flush_disk_type */
    int32_t flushIntervalCommitLog;
    int32_t flushCommitLogLeastPages;
    int32_t flushCommitLogThoroughInterval;
    int32_t flushIntervalConsumeQueue;
    int32_t flushConsumeQueueLeastPages;
    int32_t flushConsumeQueueThoroughInterval;
    int32_t syncFlushTimeout;
    int32_t maxMessageSize;
    int messageIndexEnable;
    int32_t maxHashSlotNum;
    int32_t maxIndexNum;
    int32_t fileReservedTime; /* hours */
    char deleteWhen[64];      /* "04" or "04;16" */
    int32_t cleanResourceInterval;
    int32_t diskMaxUsedSpaceRatio;
    int32_t diskSpaceWarningLevelRatio;
    int32_t diskSpaceCleanForciblyRatio;
    int cleanFileForciblyEnable; /* opt-in: delete unexpired segments under disk pressure */
    int32_t deleteFileBatchMax;
    int checkCRCOnRecover;
    int writeWithoutMmap; /* enum write_mode: how appends reach the segment */
    int enabledAppendPropCRC;
    char storeHost[64];         /* "ip:port" written as STOREHOST */
    int32_t debugSyncDelayMs;   /* hidden test knob: sleep before each CommitLog sync */
    int32_t debugSyncFailAfter; /* hidden test knob: CommitLog syncs after the Nth fail (EIO) */
};

extern const struct conf_def store_conf_defs[];
void store_config_defaults(struct store_config *cfg);

/* Open (creating if empty) the store in cfg->storePathRootDir, recover if the last run did
 * not shut down cleanly, and start its threads. On failure @err says why. */
int store_open(const struct store_config *cfg, store_t **out, char *err, size_t errlen);
/* Clean shutdown: stop accepting appends, flush everything, write the checkpoint, remove the
 * abort file. NULL is a no-op. */
void store_close(store_t *st);

struct put_result {
    int64_t phys_offset;  /* CommitLog offset of the record */
    int64_t queue_offset; /* its index in the ConsumeQueue */
    int32_t size;         /* record bytes */
    int64_t store_ts;
};

/* Append @n messages atomically into one segment (n == 1 for a plain send; a batch keeps
 * consecutive queue offsets). Returns:
 *   0                     stored (and durable when SYNC_FLUSH)
 *   FERRY_ETIMEDOUT       stored but not yet durable after syncFlushTimeout (FLUSH_DISK_TIMEOUT)
 *   FERRY_ETOOBIG         body over maxMessageSize (nothing stored)
 *   FERRY_EINVAL          bad topic, queue id or properties (nothing stored)
 *   FERRY_EDISKFULL       disk (nearly) full (nothing stored)
 *   FERRY_EFENCED         an earlier I/O error fenced the store (nothing stored)
 *   FERRY_ECLOSED         shutting down (nothing stored)
 * @res (n entries) is filled when 0 or FERRY_ETIMEDOUT is returned. */
int store_put(store_t *st, const struct store_msg *msgs, int n, struct put_result *res);

/* Asynchronous form for event loops. Returns 0 when the result is final at once (res filled,
 * @cb never called), 1 when @cb will be called exactly once later, from a store thread, with
 * the final code (0, FERRY_ETIMEDOUT or FERRY_EFENCED) and @res filled, or a negative error
 * (nothing stored, @cb never called). @res must stay valid until then. */
typedef void (*store_put_cb)(void *arg, int rc);
int store_put_async(store_t *st, const struct store_msg *msgs, int n, struct put_result *res,
                    store_put_cb cb, void *arg);

/* Append @n independent messages (any topics and queues) under one hold of the append lock,
 * with one write per CommitLog segment touched and, under SYNC_FLUSH, one group-commit waiter
 * for all of them. Unlike store_put(), each message is stored or refused on its own: @rcs[i]
 * gets 0 (stored: @res[i] filled, queue offsets consecutive per queue in array order) or the
 * code store_put() would return for it alone (FERRY_ETOOBIG, FERRY_EINVAL, FERRY_EDISKFULL,
 * FERRY_EFENCED, FERRY_ECLOSED). A failed write refuses every message of the call
 * (FERRY_EFENCED). Returns 0 when every result is final now (ASYNC_FLUSH, or nothing was
 * stored; @cb is never called), or 1 when @cb(@arg, rc) will be called exactly once from a
 * store thread with the final code of every message stored (0, FERRY_ETIMEDOUT or
 * FERRY_EFENCED). @rcs and @res must stay valid until then. */
int store_put_multi_async(store_t *st, const struct store_msg *msgs, int n, int *rcs,
                          struct put_result *res, store_put_cb cb, void *arg);

/* A stored record handed to a reader: @data points into the mapped CommitLog and stays valid
 * until store_release() (zero-copy pulls send it as is). */
struct store_slice {
    const uint8_t *data;
    uint32_t len;
    int64_t phys_offset;
    int64_t queue_offset;
    void *ref; /* internal */
};

enum get_status {
    GET_FOUND,
    GET_NO_MATCHED_MESSAGE, /* entries scanned, none passed the tag filter */
    GET_MESSAGE_WAS_REMOVING,
    GET_OFFSET_FOUND_NULL,
    GET_OFFSET_OVERFLOW_BADLY,
    GET_OFFSET_OVERFLOW_ONE, /* offset == max: wait for the next message */
    GET_OFFSET_TOO_SMALL,
    GET_NO_MATCHED_LOGIC_QUEUE,
    GET_NO_MESSAGE_IN_QUEUE,
};

struct get_request {
    const char *topic;
    int32_t queue_id;
    int64_t offset;
    int32_t max_msgs;    /* 1..1024 */
    int64_t max_bytes;   /* stop before exceeding (always returns at least one record) */
    const int64_t *tags; /* tag codes to accept; NULL = all */
    int n_tags;
};

struct get_result {
    enum get_status status;
    int64_t next_offset; /* where the next read should start */
    int64_t min_offset, max_offset;
    int n;                    /* slices filled */
    struct store_slice *msgs; /* caller-provided array of max_msgs */
};

/* Read from a queue. Records are validated (structure, and that they match their queue entry)
 * before they are returned. Returns 0 (see res->status) or an error; release with
 * store_release(). */
int store_get(store_t *st, const struct get_request *req, struct get_result *res);
void store_release(struct store_slice *slices, int n);

/* The record at CommitLog offset @phys (the "offset message id"), validated incl. CRCs. */
int store_read_at(store_t *st, int64_t phys, struct store_slice *out);

/* Up to @cap records of @topic whose KEYS or UNIQ_KEY contains @key and whose store time is in
 * [@begin_ts, @end_ts], newest first (each verified against the real key). Returns the count. */
int store_query_by_key(store_t *st, const char *topic, const char *key, int64_t begin_ts,
                       int64_t end_ts, struct store_slice *out, int cap);

int64_t store_min_offset(store_t *st, const char *topic, int32_t qid);
int64_t store_max_offset(store_t *st, const char *topic, int32_t qid);
/* The first queue offset whose store time is >= @ts (max offset when none). */
int64_t store_offset_by_time(store_t *st, const char *topic, int32_t qid, int64_t ts);
/* Store time of the record at queue offset @offset, or -1. */
int64_t store_time_at(store_t *st, const char *topic, int32_t qid, int64_t offset);

int64_t store_min_phys(store_t *st);
int64_t store_max_phys(store_t *st);     /* end of the last appended record */
int64_t store_confirm_phys(store_t *st); /* end of what readers may see */
int64_t store_dispatch_phys(store_t *st);
int64_t store_flushed_phys(store_t *st); /* end of what is on disk (fdatasync'd) */

/* Called from the dispatch thread after new entries of topic/qid became readable. */
typedef void (*store_arrive_cb)(void *arg, const char *topic, int32_t qid, int64_t max_offset);
void store_set_arrive_cb(store_t *st, store_arrive_cb cb, void *arg);

/* Why writes are refused right now (0 when they are not): FERRY_EFENCED or FERRY_EDISKFULL
 * (disk use over diskSpaceWarningLevelRatio, or no space for the next CommitLog segment). */
int store_write_state(store_t *st);
/* Run one round of expiry now, deleting expired segments regardless of deleteWhen (the
 * admin "deleteExpiredCommitLog"). Returns the number of segments deleted. */
int store_clean_expired_now(store_t *st);
/* Milliseconds the last open spent in recovery, and whether it was abnormal. */
int64_t store_recovery_ms(store_t *st, int *abnormal);
/* Block until dispatch has caught up with the confirmed offset (tests, shutdown). */
int store_wait_dispatched(store_t *st, int timeout_ms);

/* ---- metrics (docs/METRICS.md) ------------------------------------------------------- */

/* What the store measures, for the broker's /metrics. Flush histograms: one observation per
 * CommitLog sync that made bytes durable (the group commit under SYNC_FLUSH, the periodic
 * flush under ASYNC_FLUSH); latency in nanoseconds. */
struct store_metrics {
    int sync_flush; /* flushDiskType is SYNC_FLUSH */
    int64_t min_phys, max_phys, confirm_phys, flushed_phys, dispatched_phys;
    int commit_waiters;            /* SYNC_FLUSH appends waiting for the next group commit */
    uint64_t appended;             /* records appended since the store opened (or replicated) */
    int segments;                  /* CommitLog segment files */
    int64_t segment_bytes;         /* their size: segments x mappedFileSizeCommitLog */
    int queues;                    /* ConsumeQueues */
    int64_t disk_total, disk_free; /* the CommitLog's file system at the last check (1 s) */
    int32_t disk_warning_ratio;    /* diskSpaceWarningLevelRatio, % */
    int write_state;               /* store_write_state(): 0, FERRY_EDISKFULL, FERRY_EFENCED */
    struct prom_hist_snap flush_us, flush_bytes, flush_msgs;
};

/* Fill @out: atomics and short read-lock holds only, so any thread may call it often. */
void store_metrics(store_t *st, struct store_metrics *out);

/* Call @fn(@arg, topic, queue id, min offset, max offset) for every ConsumeQueue, under the
 * queue table's read lock: @fn must be short and must not call into the store. */
void store_queue_offsets(store_t *st,
                         void (*fn)(void *arg, const char *topic, int32_t qid, int64_t min,
                                    int64_t max),
                         void *arg);

/* ---- replication (docs/REPLICATION.md) ----------------------------------------------- */

int64_t store_seg_size(store_t *st);
/* Master: up to @max raw CommitLog bytes from @phys, within one segment and below the written
 * end, without copying: @out->data points into the mapping (release with store_release()).
 * Returns the byte count (0: nothing at @phys yet), or FERRY_ENOTFOUND when @phys is below
 * the oldest segment. */
int64_t store_read_raw(store_t *st, int64_t phys, int64_t max, struct store_slice *out);
/* Slave: append @len bytes received from the master, verbatim, at @phys, which must lie
 * between the written end (the last whole record) and the received end (store_received_phys);
 * received bytes from @phys on are replaced. The bytes may split records and cross segment ends
 * (the master's blank markers are kept). Only whole records advance the written end
 * (store_max_phys) and so reach flush and dispatch. Returns 0, FERRY_EINVAL (@phys is not
 * the end), FERRY_ECORRUPT (the bytes do not form valid records: nothing after the last whole
 * record is kept), or the write errors of store_put. */
int store_append_replica(store_t *st, int64_t phys, const void *data, size_t len);
int64_t store_received_phys(store_t *st);
/* Slave: compare @len bytes at @phys with @data (1 equal, 0 different or not there). */
int store_compare_raw(store_t *st, int64_t phys, const void *data, size_t len);
/* Start of the record (or blank marker) that ends exactly at @end (a record boundary below
 * the written end), or -1 when no record ends there. @end == min phys gives @end. */
int64_t store_record_start_before(store_t *st, int64_t end);
/* Slave: cut the log at @end (a record boundary below the written end; the caller checked
 * it against the master): ConsumeQueue entries and the index from @end on go, the CommitLog
 * bytes are zeroed and later segments deleted, then a checkpoint is written. Returns 0 or an
 * error (FERRY_EINVAL: not a record boundary). */
int store_truncate_replica(store_t *st, int64_t end);
/* A replica is promoted to master: wait until every record received is dispatched, then take
 * each queue's next offset from its ConsumeQueue, so that the first new message of a queue
 * follows the last replicated one. 0 or FERRY_ETIMEDOUT (nothing changed). */
int store_promote(store_t *st, int timeout_ms);
/* Controller mode, SYNC_MASTER: dispatch, hence what consumers can read, stops at @limit (the
 * CommitLog end every required replica has durably), so no consumer sees a message a failover
 * could take back. Never lowered; -1 lifts it (a slave, a store about to close). Any thread. */
void store_set_repl_limit(store_t *st, int64_t limit);
/* Callbacks for the HA service: @on_append after every append that advanced the written end
 * (from the appending thread), @on_flush after each flush with the new durable end (flush
 * thread). Either may be NULL. They run under store locks: they must be short and never block
 * or call into the store. Once a call with NULLs returned, neither runs any more. */
void store_set_repl_cbs(store_t *st, void (*on_append)(void *arg),
                        void (*on_flush)(void *arg, int64_t flushed), void *arg);

#endif
