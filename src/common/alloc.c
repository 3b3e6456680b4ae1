#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "ferrymq: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ferry_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *ferry_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *ferry_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *ferry_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ferry_malloc(n);
    memcpy(d, s, n);
    return d;
}

void ferry_free(void *p)
{
    free(p);
}
