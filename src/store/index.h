/* IndexFile service: RocketMQ's hash index from message key to CommitLog offset, by time.
 *
 * Files live in <storePathRootDir>/index/, named by creation time in local time
 * (yyyyMMddHHmmssSSS), each 40 + slots*4 + max_entries*20 bytes, big-endian:
 *   header (40): beginTimestamp 8 | endTimestamp 8 | beginPhyOffset 8 | endPhyOffset 8 |
 *                hashSlotCount 4 | indexCount 4 (starts at 1; entry 0 is never used)
 *   slots: slots x int32 = number of the newest entry in that bucket (0 = empty)
 *   entries (20): keyHash 4 | phyOffset 8 | timeDiff 4 (seconds since beginTimestamp) |
 *                 prevIndex 4 (older entry in the same bucket, 0 = none)
 * Key hashed = topic + "#" + key; hash = abs(Java String.hashCode()) (0 if it overflows);
 * bucket = hash % slots. A file is full when indexCount >= max_entries.
 *
 * The index is best-effort: only hashes are stored, so callers load each returned offset and
 * compare the real key; after a truncating recovery stale entries may point at other records.
 *
 * Threads: index_put and index_truncate_after are called from one thread (dispatch, or
 * recovery before it starts); index_delete_below (expiry), index_query and index_flush may run
 * concurrently with them from other threads. */
#ifndef FERRY_STORE_INDEX_H
#define FERRY_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct index_svc index_svc_t;

/* Open (creating @dir if needed) and map existing index files. A file whose size is not
 * 40 + slots*4 + max_entries*20 or whose header is inconsistent is logged and deleted (the
 * index is rebuilt from the CommitLog by the caller when needed). */
int index_open(const char *dir, int32_t slots, int32_t max_entries, index_svc_t **out);
/* Unmap and free (NULL is a no-op). Does not sync: call index_flush() first for durability. */
void index_close(index_svc_t *ix);

/* Add one key. Records with @phys < the newest file's endPhyOffset are skipped (idempotent
 * re-dispatch after recovery). Creates a new file when the newest is full. 0 or -errno. */
int index_put(index_svc_t *ix, const char *topic, const char *key, size_t key_len, int64_t phys,
              int64_t store_ts);

/* Up to @max (<= 64) CommitLog offsets of records whose key hash matches topic#key and
 * whose store time is in [@begin_ts, @end_ts], newest first, no duplicates. Returns the
 * count (>= 0) or a negative error. */
int index_query(index_svc_t *ix, const char *topic, const char *key, size_t key_len,
                int64_t begin_ts, int64_t end_ts, int max, int64_t *phys_out);

/* fdatasync every file written since its last flush. 0 or -errno. */
int index_flush(index_svc_t *ix);

/* Before records from @cut on are dispatched again (recovery: @cut is where the index was last
 * made durable): delete files whose beginPhyOffset >= @cut; if the newest remaining file was
 * written at or past @cut, or @torn (after a crash its pages may be torn), keep only its
 * entries below @cut, recompute its slot table from them and lower its endPhyOffset to @cut. */
int index_truncate_after(index_svc_t *ix, int64_t cut, int torn);

/* Delete files (never the newest) whose endPhyOffset < @min_phys (expired CommitLog). */
int index_delete_below(index_svc_t *ix, int64_t min_phys);

/* endPhyOffset of the newest file (0 when there is none). */
int64_t index_end_phys(index_svc_t *ix);

#endif
