/* The epoch file (epoch.h). */
#include "broker/epoch.h"

#include "common/bytes.h"
#include "common/err.h"
#include "common/fsutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int in_order(const struct epoch_list *l, int i)
{
    return i == 0 || (l->e[i].epoch > l->e[i - 1].epoch && l->e[i].start >= l->e[i - 1].start);
}

int epoch_load(const char *path, struct epoch_list *l, char *err, size_t errlen)
{
    l->n = 0;
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, 1, &text, &len, 1 << 20);
    if (rc == -ENOENT)
        return 0;
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, ferry_strerror(rc));
        return rc;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line)
            continue;
        struct epoch_entry e;
        char extra;
        if (sscanf(line, "%" SCNd64 " %" SCNd64 " %c", &e.epoch, &e.start, &extra) != 2 ||
            e.epoch <= 0 || e.start < 0) {
            snprintf(err, errlen, "%s: bad line '%.60s' (expected 'epoch offset')", path, line);
            free(text);
            return FERRY_ECORRUPT;
        }
        if (l->n == EPOCH_MAX) {
            memmove(l->e, l->e + 1, (EPOCH_MAX - 1) * sizeof l->e[0]);
            l->n--;
        }
        l->e[l->n++] = e;
        if (!in_order(l, l->n - 1)) {
            snprintf(err, errlen, "%s: epoch %" PRId64 " at %" PRId64 " is out of order", path,
                     e.epoch, e.start);
            free(text);
            return FERRY_ECORRUPT;
        }
    }
    free(text);
    return 0;
}

int epoch_save(const char *path, const struct epoch_list *l)
{
    char buf[EPOCH_MAX * 44 + 1];
    size_t len = 0;
    for (int i = 0; i < l->n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%" PRId64 " %" PRId64 "\n",
                                l->e[i].epoch, l->e[i].start);
    return fs_replace(path, buf, len);
}

int64_t epoch_last(const struct epoch_list *l)
{
    return l->n ? l->e[l->n - 1].epoch : 0;
}

int epoch_append(struct epoch_list *l, int64_t epoch, int64_t start)
{
    if (l->n && (epoch <= l->e[l->n - 1].epoch || start < l->e[l->n - 1].start))
        return FERRY_EINVAL;
    if (l->n == EPOCH_MAX) {
        memmove(l->e, l->e + 1, (EPOCH_MAX - 1) * sizeof l->e[0]);
        l->n--;
    }
    l->e[l->n++] = (struct epoch_entry){epoch, start};
    return 0;
}

void epoch_cut(struct epoch_list *l, int64_t end)
{
    while (l->n && l->e[l->n - 1].start >= end)
        l->n--;
}

/* End of pair @i of @l: the next pair's start, or the CommitLog end. */
static int64_t end_of(const struct epoch_list *l, int i, int64_t log_end)
{
    return i + 1 < l->n ? l->e[i + 1].start : log_end;
}

int64_t epoch_consistent_point(const struct epoch_list *mine, int64_t my_end,
                               const struct epoch_list *theirs, int64_t their_end)
{
    for (int i = mine->n - 1; i >= 0; i--) {
        for (int j = theirs->n - 1; j >= 0; j--) {
            if (theirs->e[j].epoch < mine->e[i].epoch)
                break;
            if (theirs->e[j].epoch != mine->e[i].epoch)
                continue;
            if (theirs->e[j].start != mine->e[i].start)
                break; /* same number, other history: look at older epochs */
            int64_t a = end_of(mine, i, my_end), b = end_of(theirs, j, their_end);
            return a < b ? a : b;
        }
    }
    return -1;
}

size_t epoch_encode(const struct epoch_list *l, uint8_t *out)
{
    be16_put(out, (uint16_t)l->n);
    for (int i = 0; i < l->n; i++) {
        be64_put(out + 2 + 16 * i, (uint64_t)l->e[i].epoch);
        be64_put(out + 10 + 16 * i, (uint64_t)l->e[i].start);
    }
    return 2 + 16 * (size_t)l->n;
}

int epoch_decode(const uint8_t *p, size_t n, struct epoch_list *l)
{
    if (n < 2)
        return -1;
    int cnt = be16_get(p);
    if (cnt > EPOCH_MAX || n < 2 + 16 * (size_t)cnt)
        return -1;
    l->n = 0;
    for (int i = 0; i < cnt; i++) {
        l->e[l->n++] = (struct epoch_entry){(int64_t)be64_get(p + 2 + 16 * i),
                                            (int64_t)be64_get(p + 10 + 16 * i)};
        if (l->e[i].epoch <= 0 || l->e[i].start < 0 || !in_order(l, i))
            return -1;
    }
    return 2 + 16 * cnt;
}
