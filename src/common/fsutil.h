/* Small file helpers with complete error handling: short writes, EINTR, atomic replace. */
#ifndef FERRY_COMMON_FSUTIL_H
#define FERRY_COMMON_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FERRY_PATH_MAX 4096

/* Write all @len bytes at @off (pwrite loop). Returns 0 or -errno. */
int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Read exactly @len bytes at @off. Returns 0, -errno, or FERRY_ECORRUPT on a short file. */
int fs_pread_all(int fd, void *buf, size_t len, off_t off);
/* fsync a directory so a create/rename/unlink in it is durable. */
int fs_fsync_dir(const char *dir);
/* mkdir -p; each directory it creates is made durable (its parent is fsynced). */
int fs_mkdirs(const char *path);
/* Atomically replace @path with @buf: write @path.tmp, fsync, keep the old file as
 * @path.bak, rename, fsync the directory. On failure the old file is untouched. */
int fs_replace(const char *path, const void *buf, size_t len);
/* Read a whole file (max @cap bytes) into a malloc'd NUL-terminated buffer. Falls back to
 * @path.bak when @path is missing or empty and @use_bak is set. */
int fs_read_file(const char *path, int use_bak, char **out, size_t *outlen, size_t cap);
/* Free bytes and total bytes of the file system holding @path. */
int fs_space(const char *path, uint64_t *free_bytes, uint64_t *total_bytes);
/* rm -rf @path (best effort; returns the first error). */
int fs_remove_tree(const char *path);

#endif
