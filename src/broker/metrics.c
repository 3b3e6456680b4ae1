/* The broker's metrics (docs/METRICS.md): per-topic traffic and the send latency counted on the
 * message path, and the Prometheus text exposition (format 0.0.4) that GET /metrics on
 * metricsPort and the GET_BROKER_METRICS request (mqadmin brokerMetrics) both answer with, so
 * that the two always show the same figures.
 *
 * Message path cost: a send looks its topic's entry up once (a hash of the name, one chain
 * walk, no lock), and its answer adds to four relaxed atomics and one histogram; a pull that
 * returns messages looks the entry up and adds to two counters. No allocation but the first
 * time a topic is seen. The table is separate from the topic configs on purpose: its entries
 * live as long as the broker, so a topic deleted and created again keeps counting upwards (a
 * Prometheus counter must not go back) and a send never holds the topic table's lock to count.
 *
 * Scrape cost: O(tables): the topic entries, every ConsumeQueue, the offset table, the slaves.
 * Everything is read through the locks and accessors the request processors use.
 *
 * Also here: GET_BROKER_THROUGHPUT (FerryMQ's 10102, mqadmin brokerThroughput, the dashboard's
 * charts), the puts and gets per second of the statistics ring that the service thread fills
 * once a second (pull.c stats_tick): a copy taken under stats.mu, O(seconds asked). */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "http/http.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_STATS_MAX 100000 /* entries; beyond, new topics are not counted (logged once) */

/* Send latency bounds, us: 100 us .. 10 s. Microseconds, not nanoseconds: at 100k sends/s of
 * 10 ms each the histogram's int64 sum lasts 292 years, in nanoseconds 107 days. */
static const int64_t send_us_bounds[] = {100,     250,     500,     1000,    2500,   5000,
                                         10000,   25000,   50000,   100000,  250000, 500000,
                                         1000000, 2500000, 5000000, 10000000};

/* ---- the per-topic table ------------------------------------------------------------------ */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void bmetrics_init(broker_t *b)
{
    struct bmetrics *m = &b->metrics;
    for (int i = 0; i < BMETRICS_BUCKETS; i++)
        atomic_init(&m->tab[i], NULL);
    pthread_mutex_init(&m->mu, NULL);
    for (int i = 0; i < 2; i++)
        prom_hist_init(&m->send_us[i], send_us_bounds,
                       (int)(sizeof send_us_bounds / sizeof send_us_bounds[0]));
}

void bmetrics_free(broker_t *b)
{
    struct bmetrics *m = &b->metrics;
    for (int i = 0; i < BMETRICS_BUCKETS; i++) {
        struct topic_stats *ts = atomic_load(&m->tab[i]);
        while (ts) {
            struct topic_stats *next = ts->next;
            ferry_free(ts);
            ts = next;
        }
        atomic_store(&m->tab[i], NULL);
    }
    pthread_mutex_destroy(&m->mu);
}

static struct topic_stats *ts_find(struct bmetrics *m, const char *topic, uint32_t h)
{
    struct topic_stats *ts =
        atomic_load_explicit(&m->tab[h & (BMETRICS_BUCKETS - 1)], memory_order_acquire);
    for (; ts; ts = ts->next)
        if (ts->hash == h && strcmp(ts->name, topic) == 0)
            return ts;
    return NULL;
}

struct topic_stats *bmetrics_topic(broker_t *b, const char *topic)
{
    struct bmetrics *m = &b->metrics;
    uint32_t h = name_hash(topic);
    struct topic_stats *ts = ts_find(m, topic, h);
    if (ts || strlen(topic) > MSG_MAX_TOPIC_LEN)
        return ts;
    pthread_mutex_lock(&m->mu);
    ts = ts_find(m, topic, h);
    if (!ts && m->n < TOPIC_STATS_MAX) {
        ts = ferry_calloc(1, sizeof *ts);
        ts->hash = h;
        snprintf(ts->name, sizeof ts->name, "%s", topic);
        ts->next = atomic_load_explicit(&m->tab[h & (BMETRICS_BUCKETS - 1)], memory_order_relaxed);
        atomic_store_explicit(&m->tab[h & (BMETRICS_BUCKETS - 1)], ts, memory_order_release);
        if (++m->n == TOPIC_STATS_MAX)
            log_warn(LOG_BROKER, "metrics: %d topics counted; later new topics are not",
                     TOPIC_STATS_MAX);
    }
    pthread_mutex_unlock(&m->mu);
    return ts;
}

void bmetrics_sent(broker_t *b, struct topic_stats *ts, int n, int64_t bytes, int waited_slaves,
                   int64_t t0_ns)
{
    if (ts) {
        atomic_fetch_add_explicit(&ts->msgs_in, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&ts->bytes_in, bytes, memory_order_relaxed);
    }
    prom_hist_observe(&b->metrics.send_us[waited_slaves ? 1 : 0], (clock_mono_ns() - t0_ns) / 1000);
}

void bmetrics_pulled(broker_t *b, const char *topic, int n, int64_t bytes)
{
    struct topic_stats *ts = bmetrics_topic(b, topic);
    if (!ts)
        return;
    atomic_fetch_add_explicit(&ts->msgs_out, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&ts->bytes_out, bytes, memory_order_relaxed);
}

/* ---- the exposition ----------------------------------------------------------------------- */

static void sb_write(void *arg, const char *p, size_t n)
{
    bsb_add(arg, p, n);
}

static int cmp_ts(const void *a, const void *b)
{
    return strcmp((*(struct topic_stats *const *)a)->name, (*(struct topic_stats *const *)b)->name);
}

static void write_topics(broker_t *b, const struct prom_out *o)
{
    struct bmetrics *m = &b->metrics;
    struct topic_stats **v = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < BMETRICS_BUCKETS; i++) {
        for (struct topic_stats *ts = atomic_load_explicit(&m->tab[i], memory_order_acquire); ts;
             ts = ts->next) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                v = ferry_realloc(v, cap * sizeof *v);
            }
            v[n++] = ts;
        }
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_ts);
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        {"ferrymq_messages_in_total", "Messages stored by sends to the topic.",
         offsetof(struct topic_stats, msgs_in)},
        {"ferrymq_bytes_in_total",
         "Bytes of the CommitLog records stored by sends to the topic (header, properties, "
         "body).",
         offsetof(struct topic_stats, bytes_in)},
        {"ferrymq_messages_out_total", "Messages of the topic returned to pulls.",
         offsetof(struct topic_stats, msgs_out)},
        {"ferrymq_bytes_out_total", "Bytes of the records of the topic returned to pulls.",
         offsetof(struct topic_stats, bytes_out)},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        prom_family(o, fams[f].name, "counter", fams[f].help);
        for (size_t i = 0; i < n; i++) {
            const atomic_llong *c = (const atomic_llong *)((const char *)v[i] + fams[f].off);
            prom_sample_i64(o, fams[f].name, (const char *[]){"topic", v[i]->name, NULL},
                            atomic_load_explicit(c, memory_order_relaxed));
        }
    }
    ferry_free(v);
}

static void write_latency(broker_t *b, const struct prom_out *o)
{
    const char *flush = b->cfg.store.flushDiskType == SYNC_FLUSH ? "SYNC_FLUSH" : "ASYNC_FLUSH";
    prom_family(o, "ferrymq_send_latency_seconds", "histogram",
                "Time from taking a send request to its answer, for stored messages, by the "
                "broker's flushDiskType and whether the answer waited for slaves (SYNC_MASTER).");
    for (int i = 0; i < 2; i++) {
        struct prom_hist_snap s;
        prom_hist_read(&b->metrics.send_us[i], &s);
        prom_histogram(o, "ferrymq_send_latency_seconds",
                       (const char *[]){"flush", flush, "replication", i ? "sync" : "async", NULL},
                       &s, 1e6);
    }
}

static void write_store(broker_t *b, const struct prom_out *o)
{
    struct store_metrics sm;
    store_metrics(b->store, &sm);
    prom_family(o, "ferrymq_flush_latency_seconds", "histogram",
                "Time of each CommitLog sync (fdatasync) that made appended bytes durable: the "
                "group commit under SYNC_FLUSH, the periodic flush under ASYNC_FLUSH.");
    prom_histogram(o, "ferrymq_flush_latency_seconds", NULL, &sm.flush_us, 1e6);
    prom_family(o, "ferrymq_flush_batch_bytes", "histogram",
                "CommitLog bytes each sync made durable.");
    prom_histogram(o, "ferrymq_flush_batch_bytes", NULL, &sm.flush_bytes, 1);
    prom_family(o, "ferrymq_flush_batch_messages", "histogram",
                "Records appended since the previous sync began, for each sync (the group "
                "commit's batch).");
    prom_histogram(o, "ferrymq_flush_batch_messages", NULL, &sm.flush_msgs, 1);
    prom_one_i64(o, "ferrymq_group_commit_queue_depth", "gauge",
                 "SYNC_FLUSH appends waiting for the next group commit now.", sm.commit_waiters);
    prom_one_i64(o, "ferrymq_commitlog_appended_messages_total", "counter",
                 "Records appended to the CommitLog since the broker started (replicated ones on a "
                 "slave).",
                 (int64_t)sm.appended);
    prom_one_i64(o, "ferrymq_commitlog_min_offset_bytes", "gauge",
                 "CommitLog offset of the oldest record kept.", sm.min_phys);
    prom_one_i64(o, "ferrymq_commitlog_max_offset_bytes", "gauge",
                 "CommitLog offset of the end of the last appended record.", sm.max_phys);
    prom_one_i64(o, "ferrymq_commitlog_flushed_offset_bytes", "gauge",
                 "CommitLog offset up to which the log is on disk (fdatasync'd).", sm.flushed_phys);
    prom_one_i64(o, "ferrymq_commitlog_dispatched_offset_bytes", "gauge",
                 "CommitLog offset up to which records are in their ConsumeQueues and the index.",
                 sm.dispatched_phys);
    prom_one_i64(
        o, "ferrymq_dispatch_lag_bytes", "gauge",
        "CommitLog max offset minus dispatched offset: appended bytes consumers cannot see "
        "yet.",
        sm.max_phys - sm.dispatched_phys);
    prom_one_i64(o, "ferrymq_flush_lag_bytes", "gauge",
                 "CommitLog max offset minus flushed offset: appended bytes not yet on disk.",
                 sm.max_phys - sm.flushed_phys);
    prom_one_i64(o, "ferrymq_commitlog_segments", "gauge", "CommitLog segment files.", sm.segments);
    prom_one_i64(o, "ferrymq_commitlog_size_bytes", "gauge",
                 "Size of the CommitLog segment files (segments x mappedFileSizeCommitLog).",
                 sm.segment_bytes);
    prom_one_i64(o, "ferrymq_consume_queues", "gauge",
                 "ConsumeQueues (topic, queue id) in the store.", sm.queues);
    prom_one_i64(o, "ferrymq_disk_total_bytes", "gauge",
                 "Size of the file system holding the CommitLog (checked every second).",
                 sm.disk_total);
    prom_one_i64(o, "ferrymq_disk_free_bytes", "gauge",
                 "Free bytes of that file system, for unprivileged users.", sm.disk_free);
    prom_one(o, "ferrymq_disk_used_ratio", "gauge",
             "Used fraction of that file system, as compared with diskSpaceWarningLevelRatio.",
             sm.disk_total > 0 ? (double)(sm.disk_total - sm.disk_free) / (double)sm.disk_total
                               : 0);
    prom_one(o, "ferrymq_disk_warning_ratio", "gauge",
             "diskSpaceWarningLevelRatio as a fraction: from this use on sends are refused.",
             sm.disk_warning_ratio / 100.0);
    prom_family(o, "ferrymq_store_write_refused", "gauge",
                "1 while the store refuses every append for the reason: disk_full (over "
                "diskSpaceWarningLevelRatio, or no room for the next CommitLog file) or fenced (an "
                "I/O error; until a restart).");
    prom_sample_i64(o, "ferrymq_store_write_refused", (const char *[]){"reason", "disk_full", NULL},
                    sm.write_state == FERRY_EDISKFULL);
    prom_sample_i64(o, "ferrymq_store_write_refused", (const char *[]){"reason", "fenced", NULL},
                    sm.write_state == FERRY_EFENCED);
}

/* ---- queues, and the system topics' counts derived from them ------------------------------ */

struct qrow {
    char topic[MSG_MAX_TOPIC_LEN + 1];
    int32_t qid;
    int64_t min, max;
};

struct qrows {
    struct qrow *v;
    size_t n, cap;
};

static void collect_queue(void *arg, const char *topic, int32_t qid, int64_t min, int64_t max)
{
    struct qrows *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = ferry_realloc(r->v, r->cap * sizeof *r->v);
    }
    struct qrow *q = &r->v[r->n++];
    snprintf(q->topic, sizeof q->topic, "%s", topic);
    q->qid = qid;
    q->min = min;
    q->max = max;
}

static int cmp_qrow(const void *a, const void *b)
{
    const struct qrow *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->qid > y->qid) - (x->qid < y->qid);
}

/* Per-name sums of the max offsets of the queues of topics starting with @prefix (name =
 * the rest of the topic name), as a counter family labelled @label. @rows sorted. */
static void write_prefixed(const struct prom_out *o, const struct qrows *r, const char *prefix,
                           const char *name, const char *label, const char *help)
{
    size_t pl = strlen(prefix);
    prom_family(o, name, "counter", help);
    for (size_t i = 0; i < r->n;) {
        size_t j = i;
        int64_t sum = 0;
        while (j < r->n && strcmp(r->v[j].topic, r->v[i].topic) == 0)
            sum += r->v[j++].max;
        if (strncmp(r->v[i].topic, prefix, pl) == 0)
            prom_sample_i64(o, name, (const char *[]){label, r->v[i].topic + pl, NULL}, sum);
        i = j;
    }
}

static int64_t topic_sum(const struct qrows *r, const char *topic)
{
    int64_t sum = 0;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].topic, topic) == 0)
            sum += r->v[i].max;
    return sum;
}

/* Delayed and timed messages stored but not delivered yet: each level's schedule queue max
 * offset minus the schedule service's delivery offset (a master's; a slave delivers nothing and
 * writes no samples). @r sorted. */
static void write_delay_backlog(broker_t *b, const struct prom_out *o, const struct qrows *r)
{
    int64_t done[SCHED_MAX_LEVELS], timer_done = 0;
    int n = sched_progress(b, done, SCHED_MAX_LEVELS, &timer_done);
    char level[16];
    prom_family(o, "ferrymq_delay_backlog_messages", "gauge",
                "Delayed messages of the level stored and not delivered to their topic yet "
                "(masters).");
    for (size_t i = 0; i < r->n; i++) {
        const struct qrow *q = &r->v[i];
        if (strcmp(q->topic, SCHEDULE_TOPIC) != 0 || q->qid >= n)
            continue;
        snprintf(level, sizeof level, "%d", q->qid + 1);
        prom_sample_i64(o, "ferrymq_delay_backlog_messages", (const char *[]){"level", level, NULL},
                        q->max > done[q->qid] ? q->max - done[q->qid] : 0);
    }
    prom_family(o, "ferrymq_timer_backlog_messages", "gauge",
                "Timed messages stored in rmq_sys_wheel_timer and not delivered yet (masters).");
    if (n > 0) {
        int64_t max = topic_sum(r, TIMER_TOPIC);
        prom_sample_i64(o, "ferrymq_timer_backlog_messages", NULL,
                        max > timer_done ? max - timer_done : 0);
    }
}

static void write_queues(broker_t *b, const struct prom_out *o)
{
    struct qrows r = {0};
    char qid[16];
    store_queue_offsets(b->store, collect_queue, &r);
    if (r.n > 1)
        qsort(r.v, r.n, sizeof *r.v, cmp_qrow);
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        {"ferrymq_queue_max_offset",
         "Next queue offset of each ConsumeQueue (messages ever stored in it).",
         offsetof(struct qrow, max)},
        {"ferrymq_queue_min_offset", "Oldest queue offset still readable in each ConsumeQueue.",
         offsetof(struct qrow, min)},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        prom_family(o, fams[f].name, "gauge", fams[f].help);
        for (size_t i = 0; i < r.n; i++) {
            snprintf(qid, sizeof qid, "%d", r.v[i].qid);
            prom_sample_i64(o, fams[f].name,
                            (const char *[]){"topic", r.v[i].topic, "queue", qid, NULL},
                            *(const int64_t *)((const char *)&r.v[i] + fams[f].off));
        }
    }
    write_prefixed(o, &r, RETRY_PREFIX, "ferrymq_retry_messages_total", "group",
                   "Messages stored in the group's retry topic %RETRY%<group> (sent back for "
                   "another delivery).");
    write_prefixed(o, &r, DLQ_PREFIX, "ferrymq_dlq_messages_total", "group",
                   "Messages stored in the group's dead-letter topic %DLQ%<group>.");
    prom_family(o, "ferrymq_delay_messages_total", "counter",
                "Delayed messages stored in SCHEDULE_TOPIC_XXXX, by delay level.");
    for (size_t i = 0; i < r.n; i++) {
        if (strcmp(r.v[i].topic, SCHEDULE_TOPIC) != 0)
            continue;
        snprintf(qid, sizeof qid, "%d", r.v[i].qid + 1);
        prom_sample_i64(o, "ferrymq_delay_messages_total", (const char *[]){"level", qid, NULL},
                        r.v[i].max);
    }
    prom_one_i64(o, "ferrymq_timer_messages_total", "counter",
                 "Timed messages (RocketMQ 5 timer properties) stored in rmq_sys_wheel_timer.",
                 topic_sum(&r, TIMER_TOPIC));
    write_delay_backlog(b, o, &r);
    prom_one_i64(o, "ferrymq_transaction_half_messages_total", "counter",
                 "Transactional half messages stored in RMQ_SYS_TRANS_HALF_TOPIC.",
                 topic_sum(&r, TRANS_HALF_TOPIC));
    ferry_free(r.v);
    int64_t oldest = 0;
    int pending = tx_pending(b, &oldest);
    prom_one_i64(o, "ferrymq_transaction_half_pending", "gauge",
                 "Transactional half messages neither committed nor rolled back yet.", pending);
    prom_one(o, "ferrymq_transaction_half_oldest_age_seconds", "gauge",
             "Age of the oldest unresolved half message (0 when none).",
             pending && oldest ? (double)(clock_wall_ms() - oldest) / 1000.0 : 0);
}

/* ---- consumer groups: committed offsets and lag, as consumerProgress computes them -------- */

struct grow {
    const char *group, *topic; /* into the parsed document / @topic copies */
    int32_t qid;
    int64_t committed, lag;
};

static void write_groups(broker_t *b, const struct prom_out *o)
{
    struct sbuf sb;
    bsb_init(&sb);
    offsets_encode(b, &sb);
    cJSON *doc = cJSON_ParseWithLength(sb.p, sb.len);
    bsb_free(&sb);
    struct grow *rows = NULL;
    char **topics = NULL;
    size_t n = 0, cap = 0, nt = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "offsetTable"))
    {
        /* "topic@group": topic names have no '@', so the first one splits. */
        const char *at = e->string ? strchr(e->string, '@') : NULL;
        struct topic_config tc;
        if (!at || at == e->string || !at[1])
            continue;
        char *topic = ferry_malloc((size_t)(at - e->string) + 1);
        memcpy(topic, e->string, (size_t)(at - e->string));
        topic[at - e->string] = 0;
        if (topics_get(b, topic, &tc) != 0) {
            ferry_free(topic);
            continue;
        }
        topics = ferry_realloc(topics, (nt + 1) * sizeof *topics);
        topics[nt++] = topic;
        for (int32_t q = 0; q < tc.write_queues; q++) {
            char key[16];
            snprintf(key, sizeof key, "%d", q);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, key);
            int64_t committed = cJSON_IsNumber(c) ? (int64_t)c->valuedouble : 0;
            int64_t max = store_max_offset(b->store, topic, q);
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                rows = ferry_realloc(rows, cap * sizeof *rows);
            }
            rows[n++] =
                (struct grow){at + 1, topic, q, committed, max > committed ? max - committed : 0};
        }
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        {"ferrymq_group_committed_offset",
         "Committed consumer offset of each queue of each topic the group has offsets for (0 for "
         "a queue it has none for), as mqadmin consumerProgress shows it.",
         offsetof(struct grow, committed)},
        {"ferrymq_group_lag_messages",
         "Queue max offset minus the committed offset (never below 0): messages the group has "
         "not consumed yet.",
         offsetof(struct grow, lag)},
    };
    char qid[16];
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        prom_family(o, fams[f].name, "gauge", fams[f].help);
        for (size_t i = 0; i < n; i++) {
            snprintf(qid, sizeof qid, "%d", rows[i].qid);
            prom_sample_i64(o, fams[f].name,
                            (const char *[]){"group", rows[i].group, "topic", rows[i].topic,
                                             "queue", qid, NULL},
                            *(const int64_t *)((const char *)&rows[i] + fams[f].off));
        }
    }
    for (size_t i = 0; i < nt; i++)
        ferry_free(topics[i]);
    ferry_free(topics);
    ferry_free(rows);
    cJSON_Delete(doc);
}

/* ---- replication, connections, the process ------------------------------------------------ */

static void write_replication(broker_t *b, const struct prom_out *o)
{
    struct ha_slave sl[64];
    int n = ha_slaves(b, sl, 64);
    int64_t end = store_max_phys(b->store);
    struct ha_info hi;
    ha_info(b, &hi);
    prom_one_i64(o, "ferrymq_replication_slaves", "gauge",
                 "Slaves streaming from this master now (HA port).", n);
    static const char *const fams[][2] = {
        {"ferrymq_replication_lag_bytes",
         "CommitLog bytes the slave has not acknowledged as durable: master max offset minus "
         "its acknowledged offset."},
        {"ferrymq_replication_slave_acked_offset_bytes",
         "CommitLog offset the slave last reported durable."},
        {"ferrymq_replication_slave_idle_seconds", "Time since the slave was last heard from."},
    };
    for (int f = 0; f < 3; f++) {
        prom_family(o, fams[f][0], "gauge", fams[f][1]);
        for (int i = 0; i < n; i++) {
            char id[24];
            snprintf(id, sizeof id, "%" PRId64, sl[i].broker_id);
            const char *const labels[] = {"slave_id", id, "addr", sl[i].addr, NULL};
            if (f == 0)
                prom_sample_i64(o, fams[f][0], labels, end > sl[i].acked ? end - sl[i].acked : 0);
            else if (f == 1)
                prom_sample_i64(o, fams[f][0], labels, sl[i].acked);
            else
                prom_sample(o, fams[f][0], labels, (double)sl[i].idle_ms / 1000.0);
        }
    }
    prom_one_i64(o, "ferrymq_replication_master_connected", "gauge",
                 "A slave: 1 while it is authenticated and streaming from its master.",
                 hi.running && !hi.master && hi.connected);
}

static void write_process(broker_t *b, const struct prom_out *o)
{
    static const char *const roles[] = {"ASYNC_MASTER", "SYNC_MASTER", "SLAVE"};
    char id[24], proto[16];
    snprintf(id, sizeof id, "%" PRId64, b->cfg.brokerId);
    snprintf(proto, sizeof proto, "%d", REMOTING_VERSION);
    prom_family(o, "ferrymq_broker_info", "gauge",
                "Always 1; the labels name the broker and the RocketMQ protocol it speaks.");
    prom_sample_i64(o, "ferrymq_broker_info",
                    (const char *[]){"cluster", b->cfg.brokerClusterName, "broker",
                                     b->cfg.brokerName, "broker_id", id, "addr", b->addr, "version",
                                     "V4_9_8", "protocol", proto, NULL},
                    1);
    int role = broker_role(b);
    prom_family(o, "ferrymq_broker_role", "gauge",
                "1 for the broker's role now, 0 for the others.");
    for (int i = 0; i < 3; i++)
        prom_sample_i64(o, "ferrymq_broker_role", (const char *[]){"role", roles[i], NULL},
                        role == i);
    prom_one(o, "ferrymq_uptime_seconds", "gauge", "Time since the broker started.",
             (double)(clock_wall_ms() - b->start_ms) / 1000.0);
    prom_process(o, b->start_ms);

    struct remoting_server_stats st[2] = {{0}, {0}};
    if (b->srv)
        remoting_server_stats(b->srv, &st[0]);
    if (b->fast_srv)
        remoting_server_stats(b->fast_srv, &st[1]);
    static const char *const ports[] = {"client", "fast"};
    prom_family(o, "ferrymq_connections", "gauge",
                "Client connections open now, by port (client: listenPort; fast: listenPort - 2).");
    for (int i = 0; i < (b->fast_srv ? 2 : 1); i++)
        prom_sample_i64(o, "ferrymq_connections", (const char *[]){"port", ports[i], NULL},
                        (int64_t)st[i].open);
    prom_family(o, "ferrymq_connections_accepted_total", "counter",
                "Client connections accepted, by port.");
    for (int i = 0; i < (b->fast_srv ? 2 : 1); i++)
        prom_sample_i64(o, "ferrymq_connections_accepted_total",
                        (const char *[]){"port", ports[i], NULL}, (int64_t)st[i].accepted);
    pthread_mutex_lock(&b->holds.mu);
    int held = b->holds.n_held;
    pthread_mutex_unlock(&b->holds.mu);
    prom_one_i64(o, "ferrymq_pull_held_requests", "gauge",
                 "Pull requests held by long polling now, waiting for a message.", held);
}

void broker_metrics_write(broker_t *b, struct sbuf *sb)
{
    struct prom_out o = {sb_write, sb};
    write_process(b, &o);
    write_topics(b, &o);
    write_latency(b, &o);
    if (!b->store)
        return;
    write_store(b, &o);
    write_queues(b, &o);
    write_groups(b, &o);
    write_replication(b, &o);
}

/* ---- the two ways in ---------------------------------------------------------------------- */

void broker_metrics_http(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        static const char msg[] = "method not allowed: GET /metrics\n";
        http_add_header(x, "Allow", "GET, HEAD");
        http_reply(x, 405, "text/plain; charset=utf-8", msg, sizeof msg - 1, HTTP_STATIC);
        return;
    }
    if (!atomic_load_explicit(&b->ready, memory_order_acquire) || atomic_load(&b->stopping)) {
        static const char msg[] = "the broker is not serving\n";
        http_reply(x, 503, "text/plain; charset=utf-8", msg, sizeof msg - 1, HTTP_STATIC);
        return;
    }
    struct sbuf sb;
    bsb_init(&sb);
    broker_metrics_write(b, &sb);
    http_reply(x, 200, ctype, sb.p, sb.len, HTTP_TAKE);
}

void broker_on_metrics(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    if (!broker_ready(b, conn, req))
        return;
    struct sbuf sb;
    bsb_init(&sb);
    broker_metrics_write(b, &sb);
    broker_respond_sb(conn, req, &sb);
}

/* ---- GET_BROKER_THROUGHPUT ---------------------------------------------------------------- */

/* "put":[...] or "get":[...]: the differences of the @n totals of @tot (oldest first). */
static void write_rates(struct sbuf *sb, const char *key, const int64_t *tot, int n)
{
    bsb_fmt(sb, "\"%s\":[", key);
    for (int i = 1; i < n; i++)
        bsb_fmt(sb, "%s%" PRId64, i > 1 ? "," : "", tot[i] - tot[i - 1]);
    bsb_add(sb, "]", 1);
}

void broker_on_throughput(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct stats *s = &b->stats;
    int64_t put[STATS_HIST], get[STATS_HIST], secs;
    struct hdrs h;
    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&h, req);
    bhdrs_i64(&h, "seconds", &secs, THROUGHPUT_MAX_SECONDS, 0);
    if (h.bad || secs < 1) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s",
                       h.bad ? h.remark : "the custom field <seconds> must be at least 1");
        return;
    }
    if (secs > THROUGHPUT_MAX_SECONDS)
        secs = THROUGHPUT_MAX_SECONDS;

    /* The newest secs + 1 totals of the ring (fewer while the broker is young), oldest first. */
    pthread_mutex_lock(&s->mu);
    int n = s->hist_n < secs + 1 ? s->hist_n : (int)secs + 1;
    for (int i = 0; i < n; i++) {
        int k = (s->hist_pos - n + 1 + i + STATS_HIST) % STATS_HIST;
        put[i] = s->put_hist[k];
        get[i] = s->get_hist[k];
    }
    pthread_mutex_unlock(&s->mu);

    int role = broker_role(b);
    struct sbuf sb;
    bsb_init(&sb);
    bsb_str(&sb, "{\"brokerName\":");
    bsb_jstr(&sb, b->cfg.brokerName);
    bsb_str(&sb, ",\"brokerAddr\":");
    bsb_jstr(&sb, broker_addr(b));
    bsb_fmt(&sb,
            ",\"brokerId\":%" PRId64 ",\"brokerRole\":\"%s\",\"now\":%" PRId64
            ",\"intervalMs\":1000,\"putTotal\":%lld,\"getTotal\":%lld,",
            b->cfg.brokerId,
            role == BROKER_SLAVE         ? "SLAVE"
            : role == BROKER_SYNC_MASTER ? "SYNC_MASTER"
                                         : "ASYNC_MASTER",
            clock_wall_ms(), (long long)atomic_load(&s->put_total),
            (long long)atomic_load(&s->get_total));
    write_rates(&sb, "put", put, n);
    bsb_add(&sb, ",", 1);
    write_rates(&sb, "get", get, n);
    bsb_add(&sb, "}", 1);
    broker_respond_sb(conn, req, &sb);
}
