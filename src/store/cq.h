/* ConsumeQueue: per topic and queue id, an array of 20-byte entries
 *   CommitLog offset 8 | record size 4 | tags code 8   (big-endian)
 * in mapped files of `mappedFileSizeConsumeQueue` bytes under consumequeue/<topic>/<qid>/,
 * named by the byte offset of their first entry (entry n at byte n*20).
 *
 * Entries before the queue's first real entry (a queue rebuilt after old CommitLog segments
 * expired) are fillers: offset 0, size INT32_MAX, tags 0, as RocketMQ writes them. An entry
 * whose record is lost for good (damaged in a CommitLog segment recovery did not scan) is a
 * hole: size INT32_MAX, tags 0, and the CommitLog offset where it was, so that offsets stay
 * in order. Readers skip both.
 *
 * Threads: one writer (the dispatch thread: cq_put, cq_truncate); readers (cq_read) and the
 * service thread (cq_flush, cq_delete_below) run concurrently. @locks: a per-queue mutex
 * guards the file list; the entry count is published with release/acquire. */
#ifndef FERRY_STORE_CQ_H
#define FERRY_STORE_CQ_H

#include <stdint.h>

#define CQ_UNIT 20

typedef struct cq cq_t;

struct cq_entry {
    int64_t phys;
    int32_t size;
    int64_t tags_code;
};

#define CQ_HOLE_SIZE INT32_MAX

static inline int cq_entry_is_hole(const struct cq_entry *e)
{
    return e->size == CQ_HOLE_SIZE;
}

/* CommitLog end of an entry's record; a hole has no extent. */
static inline int64_t cq_entry_end(const struct cq_entry *e)
{
    return cq_entry_is_hole(e) ? e->phys : e->phys + e->size;
}

/* Open the queue's directory (created on first write) and map its files. */
int cq_open(const char *root, const char *topic, int32_t qid, int64_t file_size, cq_t **out);
void cq_close(cq_t *q);
const char *cq_topic(const cq_t *q);
int32_t cq_qid(const cq_t *q);

/* Find the end of the queue: the first entry that is zero, not after its predecessor in the
 * CommitLog, has a size outside (0, @max_size], or reaches past @cl_end. Everything from there
 * on is zeroed and later files deleted. Returns the number of entries dropped (>= 0) or an
 * error. */
int64_t cq_recover(cq_t *q, int64_t cl_end, int32_t max_size);

/* Entries [min, max) are readable. */
int64_t cq_min_index(cq_t *q);
int64_t cq_max_index(cq_t *q);
/* CommitLog end (offset + size) of the last entry, or -1 when empty. */
int64_t cq_last_phys_end(cq_t *q);

/* Write entry @index. @index == max appends; @index < max is accepted only if it equals the
 * stored entry (idempotent re-dispatch) else FERRY_ECORRUPT; @index > max on an empty queue
 * starts it there (fillers before); otherwise FERRY_EINVAL (a gap). */
int cq_put(cq_t *q, int64_t index, int64_t phys, int32_t size, int64_t tags_code);

/* Make entries [max, @index) holes at CommitLog offset @phys, which must not be before the
 * last entry's end; the queue must have an entry. 0, FERRY_EINVAL or an I/O error. */
int cq_put_holes(cq_t *q, int64_t index, int64_t phys);

/* Copy up to @n entries starting at @index into @out; returns how many (0 when none). */
int cq_read(cq_t *q, int64_t index, int n, struct cq_entry *out);

/* Drop entries >= @index (zeroed; files wholly past it deleted). */
int cq_truncate(cq_t *q, int64_t index);
/* Index of the first entry whose CommitLog offset is >= @phys (max when none). */
int64_t cq_index_of_phys(cq_t *q, int64_t phys);

/* fdatasync files with unflushed entries; @least_entries > 0 skips a flush of fewer. */
int cq_flush(cq_t *q, int64_t least_entries);
/* Delete files whose entries all point below @min_phys (never the last file); raise min. */
int cq_delete_below(cq_t *q, int64_t min_phys);

#endif
