/* Prometheus helpers: the histogram and the text exposition format 0.0.4 (prom.h). */
#include "store/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void prom_hist_init(struct prom_hist *h, const int64_t *bounds, int n)
{
    if (n > PROM_BUCKETS_MAX)
        n = PROM_BUCKETS_MAX;
    h->bounds = bounds;
    h->n = n;
    for (int i = 0; i <= PROM_BUCKETS_MAX; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum, 0);
}

void prom_hist_read(const struct prom_hist *h, struct prom_hist_snap *out)
{
    uint64_t acc = 0;
    out->bounds = h->bounds;
    out->n = h->n;
    for (int i = 0; i <= h->n; i++) {
        acc += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        out->cum[i] = acc;
    }
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
}

/* ---- text ----------------------------------------------------------------------------------- */

static void put(const struct prom_out *o, const char *s)
{
    o->write(o->arg, s, strlen(s));
}

/* @s with backslash, newline and (for label values, @quote) double quote escaped. */
static void put_escaped(const struct prom_out *o, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : 0;
        if (!rep)
            continue;
        if (s > run)
            o->write(o->arg, run, (size_t)(s - run));
        put(o, rep);
        run = s + 1;
    }
    if (s > run)
        o->write(o->arg, run, (size_t)(s - run));
}

void prom_family(const struct prom_out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP ");
    put(o, name);
    put(o, " ");
    put_escaped(o, help, 0);
    put(o, "\n# TYPE ");
    put(o, name);
    put(o, " ");
    put(o, type);
    put(o, "\n");
}

/* "name{labels" and, with @le, ",le=\"...\"" (or just "{le=..."), then "} " or " ". */
static void put_head(const struct prom_out *o, const char *name, const char *suffix,
                     const char *const *labels, const char *le)
{
    int any = 0;
    put(o, name);
    if (suffix)
        put(o, suffix);
    for (const char *const *l = labels; l && l[0] && l[1]; l += 2) {
        put(o, any ? "," : "{");
        put(o, l[0]);
        put(o, "=\"");
        put_escaped(o, l[1], 1);
        put(o, "\"");
        any = 1;
    }
    if (le) {
        put(o, any ? ",le=\"" : "{le=\"");
        put(o, le);
        put(o, "\"");
        any = 1;
    }
    put(o, any ? "} " : " ");
}

/* A double as the format writes it: shortest-ish decimal, or +Inf / -Inf / NaN. */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "NaN");
    else if (isinf(v))
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, cap, "%.15g", v);
}

void prom_sample(const struct prom_out *o, const char *name, const char *const *labels, double v)
{
    char num[64];
    fmt_double(num, sizeof num, v);
    put_head(o, name, NULL, labels, NULL);
    put(o, num);
    put(o, "\n");
}

void prom_sample_i64(const struct prom_out *o, const char *name, const char *const *labels,
                     int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, v);
    put_head(o, name, NULL, labels, NULL);
    put(o, num);
    put(o, "\n");
}

void prom_histogram(const struct prom_out *o, const char *name, const char *const *labels,
                    const struct prom_hist_snap *s, double scale)
{
    char le[64], num[64];
    for (int i = 0; i <= s->n; i++) {
        if (i < s->n)
            fmt_double(le, sizeof le, (double)s->bounds[i] / scale);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(num, sizeof num, "%" PRIu64, s->cum[i]);
        put_head(o, name, "_bucket", labels, le);
        put(o, num);
        put(o, "\n");
    }
    fmt_double(num, sizeof num, (double)s->sum / scale);
    put_head(o, name, "_sum", labels, NULL);
    put(o, num);
    put(o, "\n");
    snprintf(num, sizeof num, "%" PRIu64, s->cum[s->n]);
    put_head(o, name, "_count", labels, NULL);
    put(o, num);
    put(o, "\n");
}

int64_t prom_process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long long size = 0, rss = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%lld %lld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return rss < 0 || page <= 0 ? -1 : (int64_t)rss * page;
}
