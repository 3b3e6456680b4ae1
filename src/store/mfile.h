/* A mapped file: one fixed-size segment of the CommitLog, a ConsumeQueue or an index, named by
 * the 20-digit decimal offset of its first byte and mapped shared read/write.
 *
 * A new file is built as <name>.tmp, its blocks allocated (written with zeros, or fallocated),
 * synced and only then renamed, so a file with a proper name always has its full size and
 * writes into the mapping can never fault for lack of space.
 *
 * Lifetime: the owner holds one reference; readers take their own with mfile_ref(). A retired
 * file is unlinked and unmapped when the last reference goes. */
#ifndef FERRY_STORE_MFILE_H
#define FERRY_STORE_MFILE_H

#include "common/fsutil.h"

#include <stdatomic.h>
#include <stdint.h>

enum mfile_alloc { MFILE_ZERO_FILL, MFILE_FALLOCATE };

struct mfile {
    char path[FERRY_PATH_MAX];
    int fd;
    uint8_t *base;
    int64_t start; /* offset of byte 0 within its log */
    int64_t size;
    atomic_int refs;
    atomic_int retired;
};

/* "%020lld" of @start into @out (21 bytes). */
void mfile_name(int64_t start, char out[21]);
/* Create <dir>/<name(start)> of @size bytes. Returns 0, -ENOSPC, or another -errno. */
int mfile_create(const char *dir, int64_t start, int64_t size, enum mfile_alloc alloc,
                 struct mfile **out);
/* Map an existing file; its size must be @size (else FERRY_ECORRUPT). */
int mfile_open(const char *path, int64_t start, int64_t size, struct mfile **out);
void mfile_ref(struct mfile *mf);
void mfile_unref(struct mfile *mf);
/* Drop the owner's reference and unlink the file once nobody maps it. */
void mfile_retire(struct mfile *mf);
/* Bring every page of the file into the page cache and map it (read-only until first written),
 * so that the first write into a page takes a light write-protect fault instead of a read of the
 * page (for fallocated blocks: zeroing it) on the writer's path. Best effort. */
void mfile_prefault(struct mfile *mf);
/* fdatasync the file: every byte written into the mapping so far is durable. 0 or -errno. */
int mfile_sync(struct mfile *mf);

#endif
