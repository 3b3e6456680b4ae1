/* Prometheus helpers: the histogram and the text exposition format 0.0.4 (prom.h). */
#include "common/prom.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
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

/* Length of the valid UTF-8 sequence at @s (1..4), or 0 when the bytes there are not one
 * (stray continuation, overlong form, surrogate, above U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n <= 1 || (c == 0xc0 || c == 0xc1) || c > 0xf4)
        return n == 1 ? 1 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* @s with backslash, newline and (for label values, @quote) double quote escaped, and every
 * byte that is not part of valid UTF-8 written as U+FFFD: Prometheus refuses a whole scrape
 * for one invalid label value, and names (a consumer group's, say) arrive from clients. */
static void put_escaped(const struct prom_out *o, const char *s, int quote)
{
    const char *run = s;
    while (*s) {
        size_t n = utf8_len((const unsigned char *)s);
        const char *rep = n == 0               ? "\xef\xbf\xbd"
                          : *s == '\\'         ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : 0;
        if (!rep) {
            s += n;
            continue;
        }
        if (s > run)
            o->write(o->arg, run, (size_t)(s - run));
        put(o, rep);
        run = ++s;
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

void prom_one(const struct prom_out *o, const char *name, const char *type, const char *help,
              double v)
{
    prom_family(o, name, type, help);
    prom_sample(o, name, NULL, v);
}

void prom_one_i64(const struct prom_out *o, const char *name, const char *type, const char *help,
                  int64_t v)
{
    prom_family(o, name, type, help);
    prom_sample_i64(o, name, NULL, v);
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

/* Resident and virtual size in bytes from /proc/self/statm; -1 each when unreadable. */
static void statm(int64_t *rss, int64_t *vsize)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long long size = -1, res = -1;
    long page = sysconf(_SC_PAGESIZE);
    *rss = *vsize = -1;
    if (!f)
        return;
    if (fscanf(f, "%lld %lld", &size, &res) == 2 && page > 0) {
        *vsize = (int64_t)size * page;
        *rss = (int64_t)res * page;
    }
    fclose(f);
}

int64_t prom_process_rss(void)
{
    int64_t rss, vsize;
    statm(&rss, &vsize);
    return rss;
}

/* Open file descriptors: the entries of /proc/self/fd (less the one reading it), or -1. */
static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int64_t n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

void prom_process(const struct prom_out *o, int64_t start_ms)
{
    struct rusage ru;
    struct rlimit rl;
    int64_t rss, vsize;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    statm(&rss, &vsize);
    prom_one(o, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.", cpu);
    prom_one(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             (double)rss);
    prom_one(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
             (double)vsize);
    prom_one(o, "process_open_fds", "gauge", "Number of open file descriptors.",
             (double)open_fds());
    prom_one(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
             getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                 ? (double)rl.rlim_cur
                 : -1);
    prom_one(o, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.", (double)start_ms / 1000.0);
}
