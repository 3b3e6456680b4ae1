/* Delayed and timed messages (Java 4.9.8 ScheduleMessageService; RocketMQ 5 timer messages).
 *
 * Delay levels: a message with DELAY=<level> is stored in SCHEDULE_TOPIC_XXXX, queue level - 1,
 * with REAL_TOPIC / REAL_QID properties (sched_prepare(), called on every store path). Each
 * level's queue is in store-time order, so its messages are due in queue order: the service
 * reads each level from its delivery offset, and every record whose store time + the level's
 * delay has come is stored again in its real topic and queue (DELAY removed, everything else
 * kept). Timed messages (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS, __STARTDELIVERTIME)
 * go to the timer topic, one queue in arrival order with any due times: the service keeps the
 * undelivered ones in memory (a ring in offset order and a heap by due time), delivers each at
 * its time, and its delivery offset is the first offset not delivered yet.
 *
 * Durability: the offsets (config/delayOffset.json) are written atomically every
 * flushDelayOffsetInterval and at shutdown, and only once every delivered copy below them is on
 * disk; after a crash or restart delivery resumes from the file, so a message is never lost or
 * delivered early, and at worst delivered twice. Due times come from the stored records (store
 * time + level delay, or the absolute TIMER_DELIVER_MS written at receipt), never from memory.
 *
 * Roles: only a master delivers (a delivery is a store append, which a slave must never make on
 * its own). The thread runs on every broker and follows the role: on a slave, and from the
 * moment a master is demoted (controller mode), it idles; when the broker becomes master it
 * reloads config/delayOffset.json, which a slave keeps in step with its master's (slave_sync.c),
 * and delivers from there: what the old master delivered after its last offsets reached the
 * slave is delivered again (at least once), and nothing is skipped. sched_wait_idle() lets a
 * demotion wait for a delivery in flight before replication takes over the log.
 *
 * One thread; it wakes at the next due time, at most 100 ms later. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS        100
#define READ_BATCH     32
#define DELIVER_BATCH  64
#define TIMER_MAX_HELD 2000000 /* undelivered timed messages kept in memory */

struct tent {
    int64_t due;
    int done;
};

struct hent {
    int64_t due;
    int64_t off;
};

struct sched {
    broker_t *b;
    pthread_t thr;
    int running;
    pthread_mutex_t mu; /* stop, active, wake */
    pthread_cond_t cond;
    int stop;
    int active; /* delivering (the broker is a master); written by the thread, @locks mu */
    int nlevels;
    int64_t delay_ms[SCHED_MAX_LEVELS];
    /* next schedule-queue offset per level; written by the schedule thread only, atomic for
     * sched_progress() readers (the metrics' backlog) */
    _Atomic int64_t level_off[SCHED_MAX_LEVELS];
    int64_t need_phys; /* end of the latest delivered copy */
    int dirty;
    int64_t next_persist;
    /* timer topic: ring of offsets [base, base + n), heap of the undelivered by due time */
    struct tent *ring;
    size_t head, n, cap;
    _Atomic int64_t base; /* first timer offset not delivered (atomic: sched_progress) */
    int64_t scanned;
    struct hent *heap;
    size_t hn, hcap;
    char path[4200];
};

/* ---- configuration ---- */

int sched_parse_levels(const char *s, int64_t *ms, int *n, char *err, size_t errlen)
{
    *n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        int range_err = errno == ERANGE;
        int64_t unit = 0;
        switch (*end) {
        case 's':
            unit = 1000;
            break;
        case 'm':
            unit = 60 * 1000;
            break;
        case 'h':
            unit = 3600 * 1000;
            break;
        case 'd':
            unit = 24 * 3600 * 1000;
            break;
        default:
            break;
        }
        if (end == s || v <= 0 || range_err || !unit || v > INT64_MAX / unit ||
            (end[1] && end[1] != ' ' && end[1] != '\t') || *n >= SCHED_MAX_LEVELS) {
            snprintf(err, errlen,
                     "messageDelayLevel: \"%s\": expected up to %d durations such as \"1s 5s "
                     "10s 30s 1m 2m ... 2h\" (units s, m, h, d)",
                     s, SCHED_MAX_LEVELS);
            return FERRY_ECONFIG;
        }
        ms[(*n)++] = (int64_t)v * unit;
        s = end + 1;
    }
    if (*n == 0) {
        snprintf(err, errlen, "messageDelayLevel: empty");
        return FERRY_ECONFIG;
    }
    return 0;
}

/* ---- the send side ---- */

/* The delay and timer properties of a message (found: present with a decimal value). */
struct delay_props {
    int64_t abs_ms, ons, sec, rel, level;
    int f_abs, f_ons, f_sec, f_ms, f_lvl;
};

static void prop_i64(const char *v, size_t vlen, int64_t *out, int *found)
{
    char buf[32];
    if (*found || vlen == 0 || vlen >= sizeof buf)
        return; /* the first occurrence counts, as msg_prop_get() */
    memcpy(buf, v, vlen);
    buf[vlen] = 0;
    char *end;
    long long x = strtoll(buf, &end, 10);
    if (*end)
        return;
    *found = 1;
    *out = x;
}

/* One pass over @props for the five names (a plain send has none of them): looking each up
 * with msg_prop_get() was a sixth of the broker's instructions per plain send. */
static void delay_props_scan(const char *props, size_t len, struct delay_props *dp)
{
    memset(dp, 0, sizeof *dp);
    const char *p = props ? props : "", *end = p + (props ? len : 0);
    while (p < end) {
        const char *pair_end = memchr(p, PROP_PAIR_SEP, (size_t)(end - p));
        if (!pair_end)
            pair_end = end;
        const char *sep = memchr(p, PROP_NAME_SEP, (size_t)(pair_end - p));
        if (sep) {
            size_t kl = (size_t)(sep - p), vl = (size_t)(pair_end - sep - 1);
#define IS(lit) (kl == sizeof lit - 1 && memcmp(p, lit, kl) == 0)
            if (IS("DELAY"))
                prop_i64(sep + 1, vl, &dp->level, &dp->f_lvl);
            else if (IS("TIMER_DELIVER_MS"))
                prop_i64(sep + 1, vl, &dp->abs_ms, &dp->f_abs);
            else if (IS("__STARTDELIVERTIME"))
                prop_i64(sep + 1, vl, &dp->ons, &dp->f_ons);
            else if (IS("TIMER_DELAY_SEC"))
                prop_i64(sep + 1, vl, &dp->sec, &dp->f_sec);
            else if (IS("TIMER_DELAY_MS"))
                prop_i64(sep + 1, vl, &dp->rel, &dp->f_ms);
#undef IS
        }
        p = pair_end + 1;
    }
}

int sched_prepare(broker_t *b, struct store_msg *m, struct sbuf *props, char *remark, size_t cap)
{
    int tx = m->sys_flag & SYSFLAG_TX_MASK;
    if (tx != SYSFLAG_TX_NOT && tx != SYSFLAG_TX_COMMIT)
        return 0;
    if (strcmp(m->topic, SCHEDULE_TOPIC) == 0 || strcmp(m->topic, TIMER_TOPIC) == 0)
        return 0;
    struct delay_props dp;
    delay_props_scan(props->p, props->len, &dp);
    int f_abs = dp.f_abs, f_ons = dp.f_ons, f_sec = dp.f_sec, f_ms = dp.f_ms, f_lvl = dp.f_lvl;
    int64_t abs_ms = dp.abs_ms, ons = dp.ons, sec = dp.sec, rel = dp.rel, level = dp.level;
    if (!(f_abs || f_ons || f_sec || f_ms || (f_lvl && level > 0)))
        return 0; /* a plain message */
    int64_t now = clock_wall_ms();
    char topic[256], qid[16];
    snprintf(topic, sizeof topic, "%s", m->topic);
    snprintf(qid, sizeof qid, "%d", m->queue_id);
    if (f_abs || f_ons || f_sec || f_ms) {
        int64_t due = f_abs ? abs_ms : f_ons ? ons : f_sec ? now + sec * 1000 : now + rel;
        if (due <= now)
            return 0; /* due already: stored in its topic as is */
        if (due - now > (int64_t)b->cfg.timerMaxDelaySec * 1000) {
            snprintf(remark, cap,
                     "timer message delivery time %" PRId64 " is %" PRId64
                     " s away, over timerMaxDelaySec=%d",
                     due, (due - now) / 1000, b->cfg.timerMaxDelaySec);
            return FERRY_EINVAL;
        }
        char v[32];
        brec_prop_add(props, "REAL_TOPIC", 10, topic, strlen(topic));
        brec_prop_add(props, "REAL_QID", 8, qid, strlen(qid));
        if (!f_abs) {
            snprintf(v, sizeof v, "%" PRId64, due);
            brec_prop_add(props, "TIMER_DELIVER_MS", 16, v, strlen(v));
        }
        m->topic = TIMER_TOPIC;
        m->queue_id = 0;
    } else if (f_lvl && level > 0) {
        struct sched *s = b->sched;
        int n = s ? s->nlevels : 18;
        if (level > n)
            level = n;
        brec_prop_add(props, "REAL_TOPIC", 10, topic, strlen(topic));
        brec_prop_add(props, "REAL_QID", 8, qid, strlen(qid));
        m->topic = SCHEDULE_TOPIC;
        m->queue_id = (int32_t)level - 1;
    } else {
        return 0;
    }
    m->props = props->p;
    m->props_len = (uint32_t)props->len;
    return 0;
}

/* ---- delivery ---- */

/* The stored copy for the real topic: properties without DELAY, the timer ones and the CRC
 * (the store adds a new one). */
static int build_delivery(const struct msg_view *v, struct store_msg *d, char *topic,
                          size_t topic_cap, struct sbuf *props)
{
    static const char *const drop[] = {"DELAY", NULL};
    int32_t qid;
    if (brec_real_target(v, topic, topic_cap, &qid) != 0)
        return FERRY_EINVAL;
    brec_to_msg(v, d);
    d->topic = topic;
    d->queue_id = qid;
    props->len = 0;
    brec_props_copy(props, v->props, v->props_len, drop, 1);
    d->props = props->p;
    d->props_len = (uint32_t)props->len;
    return 0;
}
struct batch {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int pending, failed;
    int64_t end; /* highest end of a stored copy */
    struct put_result res[DELIVER_BATCH];
};

static void on_put(void *arg, int rc)
{
    struct batch *bt = arg;
    pthread_mutex_lock(&bt->mu);
    if (rc != 0 && rc != FERRY_ETIMEDOUT)
        bt->failed = 1;
    bt->pending--;
    pthread_cond_signal(&bt->cond);
    pthread_mutex_unlock(&bt->mu);
}

/* Store the delivery copy of @v; 0 when it is stored (the caller then waits for the batch). */
static int deliver(struct sched *s, struct batch *bt, int i, const struct msg_view *v)
{
    struct store_msg d;
    char topic[256];
    struct sbuf props;
    bsb_init(&props);
    int rc = build_delivery(v, &d, topic, sizeof topic, &props);
    if (rc) {
        log_warn(LOG_BROKER,
                 "scheduled message at CommitLog %" PRId64 " has no REAL_TOPIC/REAL_QID; dropped",
                 v->phys_offset);
        bsb_free(&props);
        return 1; /* nothing to deliver: counts as done */
    }
    pthread_mutex_lock(&bt->mu);
    bt->pending++;
    pthread_mutex_unlock(&bt->mu);
    rc = store_put_async(s->b->store, &d, 1, &bt->res[i], on_put, bt);
    bsb_free(&props);
    if (rc == 1)
        return 0;
    pthread_mutex_lock(&bt->mu);
    bt->pending--;
    if (rc != 0 && rc != FERRY_ETIMEDOUT)
        bt->failed = 1;
    pthread_mutex_unlock(&bt->mu);
    return rc == 0 || rc == FERRY_ETIMEDOUT ? 0 : rc;
}

/* Wait for the batch; 0 when every copy was stored. */
static int batch_wait(struct sched *s, struct batch *bt, int n)
{
    pthread_mutex_lock(&bt->mu);
    while (bt->pending > 0)
        pthread_cond_wait(&bt->cond, &bt->mu);
    int failed = bt->failed;
    pthread_mutex_unlock(&bt->mu);
    for (int i = 0; i < n; i++) {
        int64_t end = bt->res[i].phys_offset + bt->res[i].size;
        if (bt->res[i].size && end > s->need_phys)
            s->need_phys = end;
    }
    return failed;
}

static void batch_reset(struct batch *bt)
{
    bt->pending = bt->failed = 0;
    memset(bt->res, 0, sizeof bt->res);
}

/* Deliver what is due in level @lv's queue. Updates *@wake with its next due time. */
static void run_level(struct sched *s, struct batch *bt, int lv, int64_t now, int64_t *wake)
{
    store_t *st = s->b->store;
    struct store_slice sl[READ_BATCH];
    for (;;) {
        struct get_request rq = {.topic = SCHEDULE_TOPIC,
                                 .queue_id = lv,
                                 .offset = s->level_off[lv],
                                 .max_msgs = READ_BATCH,
                                 .max_bytes = 4 << 20};
        struct get_result gr = {.msgs = sl};
        if (store_get(st, &rq, &gr) != 0)
            return;
        if (gr.status == GET_OFFSET_TOO_SMALL || gr.status == GET_OFFSET_OVERFLOW_BADLY) {
            s->level_off[lv] = gr.next_offset; /* expired, or a queue that was reset */
            s->dirty = 1;
            if (gr.n)
                store_release(sl, gr.n);
            continue;
        }
        if (gr.status != GET_FOUND || gr.n == 0) {
            if (gr.n)
                store_release(sl, gr.n);
            return;
        }
        int k = 0, stop = 0;
        batch_reset(bt);
        for (; k < gr.n && k < DELIVER_BATCH; k++) {
            struct msg_view v;
            if (msg_parse(sl[k].data, sl[k].len, &v) != 0)
                continue;
            int64_t due = v.store_ts + s->delay_ms[lv];
            if (due > now) {
                if (due < *wake)
                    *wake = due;
                stop = 1;
                break;
            }
            int rc = deliver(s, bt, k, &v);
            if (rc < 0) {
                stop = 1;
                break;
            }
        }
        int failed = batch_wait(s, bt, k);
        store_release(sl, gr.n);
        if (failed) {
            log_warn(LOG_BROKER, "delay level %d: delivery failed; retrying in 1 s", lv + 1);
            *wake = now + 1000 < *wake ? now + 1000 : *wake;
            return; /* the offset stays: the batch is delivered again (at worst twice) */
        }
        if (k) {
            s->level_off[lv] = sl[k - 1].queue_offset + 1;
            s->dirty = 1;
        }
        if (stop || k < gr.n || gr.n < READ_BATCH)
            return;
    }
}

/* ---- the timer topic ---- */

static void heap_push(struct sched *s, int64_t due, int64_t off)
{
    if (s->hn == s->hcap) {
        s->hcap = s->hcap ? s->hcap * 2 : 256;
        s->heap = ferry_realloc(s->heap, s->hcap * sizeof *s->heap);
    }
    size_t i = s->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].due <= due)
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = (struct hent){due, off};
}

static void heap_pop(struct sched *s)
{
    struct hent last = s->heap[--s->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->hn)
            break;
        if (c + 1 < s->hn && s->heap[c + 1].due < s->heap[c].due)
            c++;
        if (last.due <= s->heap[c].due)
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->hn)
        s->heap[i] = last;
}

static struct tent *ring_at(struct sched *s, int64_t off)
{
    return &s->ring[(s->head + (size_t)(off - s->base)) % s->cap];
}

static void ring_push(struct sched *s, int64_t due)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct tent *r = ferry_malloc(cap * sizeof *r);
        for (size_t i = 0; i < s->n; i++)
            r[i] = s->ring[(s->head + i) % s->cap];
        ferry_free(s->ring);
        s->ring = r;
        s->cap = cap;
        s->head = 0;
    }
    s->ring[(s->head + s->n++) % s->cap] = (struct tent){due, 0};
}

static void ring_done(struct sched *s, int64_t off)
{
    if (off < s->base || off >= s->base + (int64_t)s->n)
        return;
    ring_at(s, off)->done = 1;
    while (s->n && s->ring[s->head].done) {
        s->head = (s->head + 1) % s->cap;
        s->n--;
        s->base++;
        s->dirty = 1;
    }
}

/* Read the timer queue's new entries into memory. */
static void timer_scan(struct sched *s)
{
    store_t *st = s->b->store;
    struct store_slice sl[READ_BATCH];
    while (s->n < TIMER_MAX_HELD) {
        struct get_request rq = {.topic = TIMER_TOPIC,
                                 .queue_id = 0,
                                 .offset = s->scanned,
                                 .max_msgs = READ_BATCH,
                                 .max_bytes = 4 << 20};
        struct get_result gr = {.msgs = sl};
        if (store_get(st, &rq, &gr) != 0)
            return;
        if (gr.status == GET_OFFSET_TOO_SMALL && s->n == 0) {
            s->base = s->scanned = gr.next_offset; /* expired before delivery */
            s->dirty = 1;
            continue;
        }
        if (gr.status != GET_FOUND || gr.n == 0) {
            if (gr.n)
                store_release(sl, gr.n);
            return;
        }
        for (int k = 0; k < gr.n; k++) {
            struct msg_view v;
            int found = 0;
            int64_t due = 0;
            if (sl[k].queue_offset != s->scanned) /* never: the queue has no holes */
                break;
            size_t vlen;
            const char *val = msg_parse(sl[k].data, sl[k].len, &v) == 0
                                  ? msg_prop_get(v.props, v.props_len, "TIMER_DELIVER_MS", &vlen)
                                  : NULL;
            if (val)
                prop_i64(val, vlen, &due, &found);
            if (!found)
                due = v.store_ts;
            ring_push(s, due);
            heap_push(s, due, s->scanned);
            s->scanned++;
        }
        store_release(sl, gr.n);
    }
}

static void run_timer(struct sched *s, struct batch *bt, int64_t now, int64_t *wake)
{
    timer_scan(s);
    while (s->hn && s->heap[0].due <= now) {
        int64_t offs[DELIVER_BATCH];
        struct store_slice sl[DELIVER_BATCH];
        int k = 0;
        batch_reset(bt);
        while (s->hn && s->heap[0].due <= now && k < DELIVER_BATCH) {
            int64_t off = s->heap[0].off;
            struct get_request rq = {
                .topic = TIMER_TOPIC, .queue_id = 0, .offset = off, .max_msgs = 1, .max_bytes = 1};
            struct get_result gr = {.msgs = &sl[k]};
            struct msg_view v;
            if (store_get(s->b->store, &rq, &gr) != 0 || gr.status != GET_FOUND || gr.n != 1) {
                if (gr.n)
                    store_release(&sl[k], gr.n);
                if (gr.status == GET_OFFSET_TOO_SMALL) { /* expired: nothing to deliver */
                    heap_pop(s);
                    ring_done(s, off);
                    continue;
                }
                break;
            }
            if (msg_parse(sl[k].data, sl[k].len, &v) != 0 || deliver(s, bt, k, &v) > 0) {
                store_release(&sl[k], 1); /* unreadable or no real topic: done */
                heap_pop(s);
                ring_done(s, off);
                continue;
            }
            heap_pop(s);
            offs[k++] = off;
        }
        int failed = batch_wait(s, bt, k);
        store_release(sl, k);
        if (failed) {
            for (int i = 0; i < k; i++)
                heap_push(s, now, offs[i]); /* again (at worst twice) */
            log_warn(LOG_BROKER, "timer messages: delivery failed; retrying in 1 s");
            *wake = now + 1000 < *wake ? now + 1000 : *wake;
            return;
        }
        for (int i = 0; i < k; i++)
            ring_done(s, offs[i]);
        if (k == 0)
            break;
    }
    if (s->hn && s->heap[0].due < *wake)
        *wake = s->heap[0].due;
}

/* ---- progress file ---- */

static void persist_now(struct sched *s)
{
    broker_t *b = s->b;
    struct sbuf sb;
    bsb_init(&sb);
    bsb_str(&sb, "{\"offsetTable\":{");
    for (int i = 0; i < s->nlevels; i++)
        bsb_fmt(&sb, "%s\"%d\":%" PRId64, i ? "," : "", i + 1, s->level_off[i]);
    bsb_fmt(&sb, "},\"timerOffset\":%" PRId64 "}", s->base);
    pthread_mutex_lock(&b->persist_mu);
    int rc = bmeta_write(b, s->path, &sb);
    pthread_mutex_unlock(&b->persist_mu);
    bsb_free(&sb);
    if (rc == 0)
        s->dirty = 0;
}

/* Write the offsets when something moved and every delivered copy is on disk (else the old
 * offsets stay: those copies may be delivered again after a crash, never lost). */
static void persist(struct sched *s)
{
    if (!s->dirty || store_flushed_phys(s->b->store) < s->need_phys)
        return;
    persist_now(s);
}

static int load(struct sched *s, char *err, size_t errlen)
{
    cJSON *doc = NULL;
    for (int i = 0; i < SCHED_MAX_LEVELS; i++)
        s->level_off[i] = 0;
    s->base = s->scanned = 0;
    s->head = s->n = s->hn = 0; /* the timer ring and heap are rebuilt from s->base */
    int rc = bmeta_load_json(s->path, &doc, err, errlen);
    if (rc || !doc)
        return rc;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "offsetTable"), *it;
    cJSON_ArrayForEach(it, t)
    {
        int lv = atoi(it->string ? it->string : "0");
        if (lv >= 1 && lv <= s->nlevels && cJSON_IsNumber(it))
            s->level_off[lv - 1] = (int64_t)it->valuedouble;
    }
    s->scanned = bjson_i64(doc, "timerOffset", 0);
    s->base = s->scanned;
    cJSON_Delete(doc);
    return 0;
}

/* ---- the thread ---- */

/* Follow the broker's role (see the file comment): start delivering from the offsets file when
 * the broker has become master, stop (writing the offsets) when it is a slave. Returns whether
 * to deliver now. Thread only. */
static int follow_role(struct sched *s)
{
    int master = broker_role(s->b) != BROKER_SLAVE;
    if (master == s->active)
        return master;
    if (master) {
        char err[256] = "";
        if (load(s, err, sizeof err) != 0)
            log_warn(LOG_BROKER, "schedule service: %s; delivering from the start of each level",
                     err);
        s->dirty = 0;
        log_info(LOG_BROKER,
                 "schedule service: this broker is master; delivering delayed and timed "
                 "messages from %s",
                 s->path);
    } else {
        persist(s);
        s->dirty = 0; /* the master's offsets replace ours (slave_sync.c) */
        log_info(LOG_BROKER, "schedule service: this broker is a slave; not delivering");
    }
    pthread_mutex_lock(&s->mu);
    s->active = master;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return master;
}

static void *sched_main(void *arg)
{
    struct sched *s = arg;
    struct batch bt;
    memset(&bt, 0, sizeof bt);
    pthread_mutex_init(&bt.mu, NULL);
    pthread_cond_init(&bt.cond, NULL);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        int64_t now = clock_wall_ms(), wake = now + TICK_MS;
        if (follow_role(s)) {
            for (int lv = 0; lv < s->nlevels; lv++)
                run_level(s, &bt, lv, now, &wake);
            run_timer(s, &bt, now, &wake);
            if (clock_mono_ms() >= s->next_persist) {
                persist(s);
                s->next_persist = clock_mono_ms() + s->b->cfg.flushDelayOffsetInterval;
            }
        }
        int64_t wait = wake - clock_wall_ms();
        if (wait > TICK_MS)
            wait = TICK_MS;
        pthread_mutex_lock(&s->mu);
        if (wait > 0 && !s->stop) {
            struct timespec ts = clock_deadline_ts(wait);
            pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&bt.mu);
    pthread_cond_destroy(&bt.cond);
    return NULL;
}

int sched_start(broker_t *b, char *err, size_t errlen)
{
    struct sched *s = ferry_calloc(1, sizeof *s);
    int rc = sched_parse_levels(b->cfg.messageDelayLevel, s->delay_ms, &s->nlevels, err, errlen);
    if (rc) {
        ferry_free(s);
        return rc;
    }
    s->b = b;
    snprintf(s->path, sizeof s->path, "%s/delayOffset.json", b->config_dir);
    if ((rc = load(s, err, errlen)) != 0) {
        ferry_free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    struct topic_config tc;
    int created;
    topics_create_if_missing(b, SCHEDULE_TOPIC, s->nlevels, PERM_READ | PERM_WRITE, 0, &tc,
                             &created);
    topics_create_if_missing(b, TIMER_TOPIC, 1, PERM_READ | PERM_WRITE, 0, &tc, &created);
    b->sched = s;
    s->active = broker_role(b) != BROKER_SLAVE; /* a slave's thread waits to become master */
    if ((rc = pthread_create(&s->thr, NULL, sched_main, s)) != 0) {
        snprintf(err, errlen, "start the schedule thread: %s", strerror(rc));
        return -rc;
    }
    s->running = 1;
    return 0;
}

void sched_stop(broker_t *b)
{
    struct sched *s = b->sched;
    if (!s || !s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thr, NULL);
    s->running = 0;
    persist(s);
}

void sched_free(broker_t *b, int store_flushed)
{
    struct sched *s = b->sched;
    if (!s)
        return;
    sched_stop(b);
    if (store_flushed && s->dirty) { /* the store was closed cleanly: every copy is on disk */
        persist_now(s);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    ferry_free(s->ring);
    ferry_free(s->heap);
    ferry_free(s);
    b->sched = NULL;
}

int sched_wait_idle(broker_t *b, int timeout_ms)
{
    struct sched *s = b->sched;
    if (!s || !s->running)
        return 0;
    return bwait_inactive(&s->mu, &s->cond, &s->active, &s->stop, timeout_ms);
}

int sched_progress(broker_t *b, int64_t *level_off, int cap, int64_t *timer_off)
{
    struct sched *s = b->sched;
    if (!s || !s->running)
        return 0;
    pthread_mutex_lock(&s->mu);
    int active = s->active;
    pthread_mutex_unlock(&s->mu);
    if (!active)
        return 0;
    int n = s->nlevels < cap ? s->nlevels : cap;
    for (int i = 0; i < n; i++)
        level_off[i] = atomic_load_explicit(&s->level_off[i], memory_order_relaxed);
    *timer_off = atomic_load_explicit(&s->base, memory_order_relaxed);
    return n;
}

int64_t sched_level_delay(broker_t *b, int level)
{
    struct sched *s = b->sched;
    if (!s || level < 1)
        return 0;
    return s->delay_ms[(level > s->nlevels ? s->nlevels : level) - 1];
}
