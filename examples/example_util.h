/* What the example programs share: parsing numeric options. */
#ifndef FERRY_EXAMPLE_UTIL_H
#define FERRY_EXAMPLE_UTIL_H

#include <errno.h>
#include <stdlib.h>

/* A decimal number in [@min, @max] into *@out; 0 or -1. */
static inline int ex_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

#endif
