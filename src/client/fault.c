/* Latency fault tolerance and queue selection, as Java 4.9.8 MQFaultStrategy and
 * LatencyFaultToleranceImpl: after each send the broker is unavailable for a time looked up
 * from its latency (a failure counts as 30 s); selection skips unavailable brokers. */
#include "client/client_int.h"

#include "common/alloc.h"

#include <string.h>

static const int64_t latency_max[] = {50, 100, 550, 1000, 2000, 3000, 15000};
static const int64_t not_available[] = {0, 0, 30000, 60000, 120000, 180000, 600000};
#define NLAT ((int)(sizeof latency_max / sizeof latency_max[0]))

int64_t fault_duration(int64_t latency_ms)
{
    for (int i = NLAT - 1; i >= 0; i--)
        if (latency_ms >= latency_max[i])
            return not_available[i];
    return 0;
}

static struct fault_item *find(const struct fault_table *ft, const char *broker)
{
    for (int i = 0; i < ft->n; i++)
        if (strcmp(ft->items[i].broker, broker) == 0)
            return &ft->items[i];
    return NULL;
}

void fault_update(struct fault_table *ft, const char *broker, int64_t latency_ms, int isolation,
                  int64_t now)
{
    struct fault_item *it = find(ft, broker);
    int64_t lat = isolation ? 30000 : latency_ms;
    if (!it) {
        if (ft->n == ft->cap) {
            ft->cap = ft->cap ? 2 * ft->cap : 8;
            ft->items = ferry_realloc(ft->items, (size_t)ft->cap * sizeof *ft->items);
        }
        it = &ft->items[ft->n++];
        memset(it, 0, sizeof *it);
        strncpy(it->broker, broker, sizeof it->broker - 1);
    }
    it->latency = lat;
    it->until = now + fault_duration(lat);
}

int fault_available(const struct fault_table *ft, const char *broker, int64_t now)
{
    const struct fault_item *it = find(ft, broker);
    return !it || now >= it->until;
}

void fault_clear(struct fault_table *ft)
{
    ferry_free(ft->items);
    memset(ft, 0, sizeof *ft);
}

/* First queue from the counter that passes: available (when @ft) and not on @last. */
static int pick(const struct route *r, const struct fault_table *ft, const char *last,
                uint32_t *counter, int64_t now)
{
    for (int i = 0; i < r->nmq; i++) {
        int idx = (int)((*counter)++ % (uint32_t)r->nmq);
        const struct mq *q = &r->mqs[idx];
        if (ft && !fault_available(ft, q->broker, now))
            continue;
        if (last && strcmp(q->broker, last) == 0)
            continue;
        return idx;
    }
    return -1;
}

int mq_select(const struct route *r, const struct fault_table *ft, const char *last,
              uint32_t *counter, int64_t now)
{
    int idx;
    if (r->nmq == 0)
        return -1;
    if (ft && ((idx = pick(r, ft, last, counter, now)) >= 0 ||
               (idx = pick(r, ft, NULL, counter, now)) >= 0))
        return idx;
    if ((idx = pick(r, NULL, last, counter, now)) >= 0)
        return idx;
    return (int)((*counter)++ % (uint32_t)r->nmq);
}
