/* Allocation wrappers: a failed allocation logs and aborts (as Redis zmalloc), so callers
 * never carry an out-of-memory path for small, bounded allocations. */
#ifndef FERRY_COMMON_ALLOC_H
#define FERRY_COMMON_ALLOC_H

#include <stddef.h>

void *ferry_malloc(size_t n);
void *ferry_calloc(size_t n, size_t size);
void *ferry_realloc(void *p, size_t n);
char *ferry_strdup(const char *s);
void ferry_free(void *p);

#endif
