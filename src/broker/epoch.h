/* The epoch file of a broker in controller mode (`<storePathRootDir>/epochFileCheckpoint`):
 * which master epoch wrote which part of the CommitLog, as (epoch, start offset) pairs in
 * increasing order. A broker appends a pair when it becomes master; a slave takes its
 * master's pairs. Two replicas hold the same bytes up to the end of the last epoch they share
 * (the consistent point), and a returning replica cuts its CommitLog there before it follows
 * the new master, so no offset ever holds two different messages. Text, one "epoch offset"
 * line per pair, replaced atomically (fs_replace). Not thread-safe: one owner at a time. */
#ifndef FERRY_BROKER_EPOCH_H
#define FERRY_BROKER_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#define EPOCH_MAX 256 /* pairs kept; older ones are dropped */

struct epoch_entry {
    int64_t epoch;
    int64_t start; /* CommitLog offset of the first byte written under this epoch */
};

struct epoch_list {
    struct epoch_entry e[EPOCH_MAX];
    int n;
};

/* Read @path (missing: empty list). 0, or FERRY_ECORRUPT with @err (not in order, not
 * numbers). */
int epoch_load(const char *path, struct epoch_list *l, char *err, size_t errlen);
/* Write @l to @path atomically. 0 or -errno. */
int epoch_save(const char *path, const struct epoch_list *l);

/* The last epoch (0 when empty). */
int64_t epoch_last(const struct epoch_list *l);
/* Add (@epoch, @start); @epoch must be above the last, @start not below its start. 0 or
 * FERRY_EINVAL. */
int epoch_append(struct epoch_list *l, int64_t epoch, int64_t start);
/* Drop pairs that start at or after @end (the CommitLog was cut there). */
void epoch_cut(struct epoch_list *l, int64_t end);

/* The offset up to which a replica with @mine (CommitLog end @my_end) holds the same bytes
 * as one with @theirs (end @their_end): the end of the highest epoch both have with the same
 * start, the smaller of the two ends. -1 when either list is empty or they share no epoch. */
int64_t epoch_consistent_point(const struct epoch_list *mine, int64_t my_end,
                               const struct epoch_list *theirs, int64_t their_end);

/* Serialised for the HA handshake: count (2 bytes) then 16 bytes per pair, big-endian.
 * epoch_encode returns the bytes written (at most 2 + 16 * EPOCH_MAX); epoch_decode returns
 * the bytes read, or -1 when @n is short or the pairs are out of order. */
size_t epoch_encode(const struct epoch_list *l, uint8_t *out);
int epoch_decode(const uint8_t *p, size_t n, struct epoch_list *l);

#endif
