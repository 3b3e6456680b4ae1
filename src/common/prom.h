/* Prometheus helpers: a lock-free histogram cheap enough for the message path, and a writer of
 * the text exposition format 0.0.4 (HELP and TYPE lines, samples with escaped label values,
 * histograms as cumulative _bucket / _sum / _count series).
 *
 * They are in src/common because the store records with them (the CommitLog flush) and the
 * broker and the name server write their /metrics answers with them.
 *
 * Histogram: fixed upper bounds (in the unit observed: microseconds, bytes, messages), a
 * counter per bucket and the sum, each a relaxed atomic. Observing costs a short scan of the
 * bounds and two atomic additions, from any thread, without a lock. A reader takes a snapshot
 * (prom_hist_read); its +Inf bucket is the sum of the buckets, so the count always equals the
 * +Inf bucket even while other threads observe (the sum may be off by the observations in
 * flight: Prometheus tolerates that, and rates over time are exact). */
#ifndef FERRY_COMMON_PROM_H
#define FERRY_COMMON_PROM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_BUCKETS_MAX 24

struct prom_hist {
    const int64_t *bounds; /* @n upper bounds, ascending (bucket i: value <= bounds[i]) */
    int n;
    atomic_uint_least64_t counts[PROM_BUCKETS_MAX + 1]; /* per bucket; [n] is above every bound */
    atomic_int_least64_t sum;
};

/* A snapshot: cumulative counts (cum[i] = observations <= bounds[i]; cum[n] = all of them). */
struct prom_hist_snap {
    const int64_t *bounds;
    int n;
    uint64_t cum[PROM_BUCKETS_MAX + 1];
    int64_t sum;
};

/* Empty histogram with @n (1..PROM_BUCKETS_MAX) ascending upper bounds, which must outlive it. */
void prom_hist_init(struct prom_hist *h, const int64_t *bounds, int n);

/* Count @v. Any thread, lock-free. */
static inline void prom_hist_observe(struct prom_hist *h, int64_t v)
{
    int i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

/* A consistent-enough snapshot (see above). Any thread. */
void prom_hist_read(const struct prom_hist *h, struct prom_hist_snap *out);

/* ---- the text format ---------------------------------------------------------------------- */

/* Where the text goes: @write(@arg, bytes, length), called many times. */
struct prom_out {
    void (*write)(void *arg, const char *p, size_t n);
    void *arg;
};

/* "# HELP @name @help" (escaped) and "# TYPE @name @type" (counter, gauge, histogram). Every
 * sample of the family must follow before the next family. */
void prom_family(const struct prom_out *o, const char *name, const char *type, const char *help);

/* One sample line "@name{k="v",...} value". @labels: NULL, or a NULL-terminated list of label
 * name / value pairs, e.g. (const char *[]){"topic", t, "queue", q, NULL}; the values are
 * escaped (\\, \", \n). A value that is not finite is written as +Inf, -Inf or NaN. */
void prom_sample(const struct prom_out *o, const char *name, const char *const *labels, double v);
/* The same with an exact integer value. */
void prom_sample_i64(const struct prom_out *o, const char *name, const char *const *labels,
                     int64_t v);

/* A family of one unlabelled sample: prom_family() then prom_sample() (prom_sample_i64()). */
void prom_one(const struct prom_out *o, const char *name, const char *type, const char *help,
              double v);
void prom_one_i64(const struct prom_out *o, const char *name, const char *type, const char *help,
                  int64_t v);

/* A histogram's series: @name_bucket{...,le="b"} for every bound then le="+Inf",
 * @name_sum and @name_count. Bounds and sum are divided by @scale (1e6: microseconds written as
 * seconds; 1: as they are). */
void prom_histogram(const struct prom_out *o, const char *name, const char *const *labels,
                    const struct prom_hist_snap *s, double scale);

/* Resident set size of this process in bytes (/proc/self/statm), or -1. */
int64_t prom_process_rss(void);

/* The process families every Prometheus client library exports, under their standard names
 * (process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds), for a process that started at
 * @start_ms (Unix ms). Reads /proc/self; a figure it cannot read is -1. */
void prom_process(const struct prom_out *o, int64_t start_ms);

#endif
