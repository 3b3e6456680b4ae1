/* Process queues: the offset bookkeeping behind at-least-once (Java's ProcessQueue), and the
 * average queue allocation of a clustering group (AllocateMessageQueueAveragely). */
#include "client/consumer_int.h"

#include "common/alloc.h"

#include <string.h>

void procq_init(struct procq *q)
{
    memset(q, 0, sizeof *q);
    q->last = -1;
}

static struct pq_entry *at(const struct procq *q, size_t i)
{
    return &q->v[(q->head + i) % q->cap];
}

void procq_destroy(struct procq *q)
{
    for (size_t i = 0; i < q->n; i++)
        msgdec_unref(at(q, i)->b, 1);
    ferry_free(q->v);
    procq_init(q);
}

static void grow(struct procq *q)
{
    size_t cap = q->cap ? q->cap * 2 : 64;
    struct pq_entry *v = ferry_malloc(cap * sizeof *v);
    for (size_t i = 0; i < q->n; i++)
        v[i] = *at(q, i);
    ferry_free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
}

size_t procq_add(struct procq *q, struct msg_batch *b, struct ferry_message_ext *msgs, size_t n)
{
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].queue_offset <= q->last)
            continue;
        if (q->n == q->cap)
            grow(q);
        struct pq_entry *e = &q->v[(q->head + q->n) % q->cap];
        e->offset = msgs[i].queue_offset;
        e->m = &msgs[i];
        e->b = b;
        e->size = (uint32_t)msgs[i].body_len;
        e->done = 0;
        e->taken = 0;
        q->n++;
        q->last = e->offset;
        q->bytes += e->size;
        added++;
    }
    if (added)
        msgdec_ref(b, (int)added);
    return added;
}

static void pop_done(struct procq *q)
{
    while (q->n > 0 && q->v[q->head].done) {
        struct pq_entry *e = &q->v[q->head];
        q->bytes -= e->size;
        msgdec_unref(e->b, 1);
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
}

int procq_done(struct procq *q, int64_t offset)
{
    size_t lo = 0, hi = q->n;
    while (lo < hi) { /* first entry with offset >= @offset */
        size_t mid = lo + (hi - lo) / 2;
        if (at(q, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == q->n || at(q, lo)->offset != offset)
        return 0;
    at(q, lo)->done = 1;
    pop_done(q);
    return 1;
}

int64_t procq_commit_offset(const struct procq *q)
{
    if (q->n > 0)
        return q->v[q->head].offset; /* the head is never done (pop_done) */
    return q->last < 0 ? -1 : q->last + 1;
}

size_t procq_take(struct procq *q, size_t max, struct pq_entry **out)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n && k < max; i++) {
        struct pq_entry *e = at(q, i);
        if (e->done || e->taken)
            continue;
        e->taken = 1;
        out[k++] = e;
    }
    return k;
}

void procq_untake(struct procq *q)
{
    for (size_t i = 0; i < q->n; i++) {
        struct pq_entry *e = at(q, i);
        if (e->taken && !e->done) {
            e->taken = 0;
            e->m->reconsume_times++;
        }
    }
}

int64_t procq_span(const struct procq *q)
{
    return q->n ? at(q, q->n - 1)->offset - q->v[q->head].offset : 0;
}

void allocate_average(int nmq, int ncid, int me, int *first, int *count)
{
    *first = 0;
    *count = 0;
    if (nmq <= 0 || ncid <= 0 || me < 0 || me >= ncid)
        return;
    int mod = nmq % ncid;
    int size = nmq <= ncid ? 1 : (mod > 0 && me < mod ? nmq / ncid + 1 : nmq / ncid);
    int start = (mod > 0 && me < mod) ? me * size : me * size + mod;
    int range = nmq - start < size ? nmq - start : size;
    if (range < 0)
        range = 0;
    *first = start;
    *count = range;
}
