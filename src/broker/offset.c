/* Consumer offsets (Java ConsumerOffsetManager): the committed offset per (topic, group,
 * queue), kept in memory and written to config/consumerOffset.json every
 * flushConsumerOffsetInterval (when something changed) and at clean shutdown, by the metadata
 * writer thread (which also writes topics.json and subscriptionGroup.json after changes).
 * An UPDATE_CONSUMER_OFFSET is answered only after a write that covers it, so an
 * acknowledged commit survives even a crash; commits piggy-backed on pulls and oneway updates
 * are written within the interval.
 *
 * The file is RocketMQ's shape, {"offsetTable":{"<topic>@<group>":{"<queueId>":<offset>}}},
 * with quoted keys; fastjson's unquoted integer keys are accepted when loading. A committed
 * offset survives a clean restart; after a crash at most the last interval is lost.
 * Negative commits (ali-ons sends -1 for "unknown") are ignored. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qoff {
    int32_t qid;
    int64_t offset;
};

struct qoffs {
    struct qoff *e;
    int n, cap;
};

static void qoffs_free(void *p)
{
    struct qoffs *q = p;
    ferry_free(q->e);
    ferry_free(q);
}

static void key_of(char *key, size_t cap, const char *group, const char *topic)
{
    snprintf(key, cap, "%s@%s", topic, group);
}

/* @locks offsets.mu */
static void set_locked(broker_t *b, const char *key, int32_t qid, int64_t offset)
{
    struct qoffs *q = bmap_get(&b->offsets.map, key);
    if (!q) {
        q = ferry_calloc(1, sizeof *q);
        bmap_put(&b->offsets.map, key, q);
    }
    for (int i = 0; i < q->n; i++) {
        if (q->e[i].qid == qid) {
            q->e[i].offset = offset;
            return;
        }
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        q->e = ferry_realloc(q->e, (size_t)q->cap * sizeof *q->e);
    }
    q->e[q->n++] = (struct qoff){qid, offset};
}

static int load_doc_locked(broker_t *b, const cJSON *doc);

int offsets_init(broker_t *b, char *err, size_t errlen)
{
    struct offsets *o = &b->offsets;
    cJSON *doc;
    snprintf(o->path, sizeof o->path, "%s/consumerOffset.json", b->config_dir);
    int rc = bmeta_load_json(o->path, &doc, err, errlen);
    if (rc || !doc)
        return rc;
    pthread_mutex_lock(&o->mu);
    int n = load_doc_locked(b, doc);
    pthread_mutex_unlock(&o->mu);
    cJSON_Delete(doc);
    log_info(LOG_BROKER, "loaded %d consumer offsets from %s", n, o->path);
    return 0;
}

void offsets_close(broker_t *b)
{
    bmap_clear(&b->offsets.map, qoffs_free);
}

void offsets_commit(broker_t *b, const char *group, const char *topic, int32_t qid, int64_t offset)
{
    char key[2 * NAME_MAX_LEN + 8];
    if (offset < 0 || qid < 0 || !*group || !*topic)
        return;
    key_of(key, sizeof key, group, topic);
    pthread_mutex_lock(&b->offsets.mu);
    set_locked(b, key, qid, offset);
    pthread_mutex_unlock(&b->offsets.mu);
    atomic_store(&b->offsets.dirty, 1);
}

int64_t offsets_query(broker_t *b, const char *group, const char *topic, int32_t qid)
{
    char key[2 * NAME_MAX_LEN + 8];
    int64_t off = -1;
    key_of(key, sizeof key, group, topic);
    pthread_mutex_lock(&b->offsets.mu);
    const struct qoffs *q = bmap_get(&b->offsets.map, key);
    for (int i = 0; q && i < q->n; i++)
        if (q->e[i].qid == qid)
            off = q->e[i].offset;
    pthread_mutex_unlock(&b->offsets.mu);
    return off;
}

static int cmp_qoff(const void *a, const void *b)
{
    const struct qoff *x = a, *y = b;
    return (x->qid > y->qid) - (x->qid < y->qid);
}

void offsets_encode(broker_t *b, struct sbuf *sb)
{
    bsb_str(sb, "{\"offsetTable\":{");
    pthread_mutex_lock(&b->offsets.mu);
    const char **keys = bmap_sorted_keys(&b->offsets.map);
    for (uint32_t i = 0; i < b->offsets.map.n; i++) {
        struct qoffs *q = bmap_get(&b->offsets.map, keys[i]);
        qsort(q->e, (size_t)q->n, sizeof q->e[0], cmp_qoff);
        bsb_jstr(sb, keys[i]);
        bsb_add(sb, ":{", 2);
        for (int k = 0; k < q->n; k++)
            bsb_fmt(sb, "\"%d\":%" PRId64 ",", q->e[k].qid, q->e[k].offset);
        bsb_trim_comma(sb);
        bsb_add(sb, "},", 2);
    }
    pthread_mutex_unlock(&b->offsets.mu);
    ferry_free(keys);
    bsb_trim_comma(sb);
    bsb_str(sb, "}}");
}

/* Every valid entry of @doc's offsetTable into the table; the count. @locks offsets.mu */
static int load_doc_locked(broker_t *b, const cJSON *doc)
{
    int n = 0;
    const cJSON *e, *q;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "offsetTable"))
    {
        if (!e->string || !strchr(e->string, '@') || !cJSON_IsObject(e) ||
            strlen(e->string) > 2 * NAME_MAX_LEN + 1)
            continue;
        cJSON_ArrayForEach(q, e)
        {
            char *end;
            long qid = q->string ? strtol(q->string, &end, 10) : -1;
            if (!q->string || *end || qid < 0 || qid > INT32_MAX || !cJSON_IsNumber(q) ||
                q->valuedouble < 0)
                continue;
            set_locked(b, e->string, (int32_t)qid, (int64_t)q->valuedouble);
            n++;
        }
    }
    return n;
}

int offsets_merge_json(broker_t *b, const char *json, size_t len)
{
    char *fixed = bjson_quote_int_keys(json, len);
    cJSON *doc = cJSON_Parse(fixed);
    ferry_free(fixed);
    if (!cJSON_IsObject(doc) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "offsetTable"))) {
        cJSON_Delete(doc);
        return -1;
    }
    pthread_mutex_lock(&b->offsets.mu);
    int n = load_doc_locked(b, doc);
    pthread_mutex_unlock(&b->offsets.mu);
    cJSON_Delete(doc);
    atomic_store(&b->offsets.dirty, 1);
    return n;
}

int offsets_persist(broker_t *b)
{
    /* Held across the write: a caller that finds nothing dirty knows that every earlier write
     * has completed (what it answers is on disk). */
    pthread_mutex_lock(&b->persist_mu);
    if (!atomic_exchange(&b->offsets.dirty, 0)) {
        pthread_mutex_unlock(&b->persist_mu);
        return 0;
    }
    struct sbuf sb;
    bsb_init(&sb);
    offsets_encode(b, &sb);
    int rc = bmeta_write(b, b->offsets.path, &sb);
    bsb_free(&sb);
    if (rc)
        atomic_store(&b->offsets.dirty, 1);
    pthread_mutex_unlock(&b->persist_mu);
    return rc;
}

char **offsets_topics_of(broker_t *b, const char *group, const char *only, int *n)
{
    char **out = NULL;
    *n = 0;
    if (only) {
        out = ferry_malloc(sizeof *out);
        out[0] = ferry_strdup(only);
        *n = 1;
        return out;
    }
    size_t glen = strlen(group);
    pthread_mutex_lock(&b->offsets.mu);
    const char **keys = bmap_sorted_keys(&b->offsets.map);
    out = ferry_malloc((b->offsets.map.n ? b->offsets.map.n : 1) * sizeof *out);
    for (uint32_t i = 0; i < b->offsets.map.n; i++) {
        size_t klen = strlen(keys[i]);
        if (klen > glen + 1 && keys[i][klen - glen - 1] == '@' &&
            strcmp(keys[i] + klen - glen, group) == 0) {
            char *t = ferry_malloc(klen - glen);
            memcpy(t, keys[i], klen - glen - 1);
            t[klen - glen - 1] = 0;
            out[(*n)++] = t;
        }
    }
    pthread_mutex_unlock(&b->offsets.mu);
    ferry_free(keys);
    return out;
}

/* ---- the metadata writer thread ------------------------------------------------------- */

#define META_TICK_MS 1000

static void answer(struct reg_waiter *w, int rc)
{
    while (w) {
        struct reg_waiter *next = w->next;
        struct rcmd resp;
        char remark[200];
        if (rc) {
            snprintf(remark, sizeof remark,
                     "the offset is committed in memory but writing consumerOffset.json "
                     "failed: %s",
                     ferry_strerror(rc));
            broker_reply_init_resp(&w->rt, &resp, RESP_SYSTEM_ERROR, remark);
        } else {
            broker_reply_init_resp(&w->rt, &resp, RESP_SUCCESS, NULL);
            resp.body = (const uint8_t *)w->body.p;
            resp.body_len = w->body.len;
        }
        remoting_respond(w->rt.conn, &resp);
        broker_reply_done(&w->rt);
        bsb_free(&w->body);
        ferry_free(w);
        w = next;
    }
}

static void *writer_main(void *arg)
{
    broker_t *b = arg;
    struct offsets *o = &b->offsets;
    int64_t now = clock_mono_ms();
    int64_t next_tick = now + META_TICK_MS;
    int64_t next_offsets = now + b->cfg.flushConsumerOffsetInterval;

    pthread_mutex_lock(&o->wmu);
    while (!o->stop) {
        now = clock_mono_ms();
        int64_t wake = next_tick < next_offsets ? next_tick : next_offsets;
        if (!o->waiters && now < wake) {
            struct timespec ts = {wake / 1000, (wake % 1000) * 1000000};
            pthread_cond_timedwait(&o->wcond, &o->wmu, &ts);
            continue;
        }
        struct reg_waiter *w = o->waiters;
        o->waiters = NULL;
        pthread_mutex_unlock(&o->wmu);
        if (now >= next_tick) {
            next_tick = now + META_TICK_MS;
            topics_persist(b);
            groups_persist(b);
        }
        int rc = 0;
        /* offsets_persist() holds persist_mu across its write: when nothing is dirty, every
         * commit made before @w was queued is already in a completed write. */
        if (w || now >= next_offsets) {
            next_offsets = now + b->cfg.flushConsumerOffsetInterval;
            rc = offsets_persist(b);
        }
        answer(w, rc);
        pthread_mutex_lock(&o->wmu);
    }
    pthread_mutex_unlock(&o->wmu);
    return NULL;
}

int offsets_start(broker_t *b)
{
    int rc = pthread_create(&b->offsets.thread, NULL, writer_main, b);
    if (rc)
        return -rc;
    b->offsets.started = 1;
    return 0;
}

void offsets_stop(broker_t *b)
{
    struct offsets *o = &b->offsets;
    if (o->started) {
        pthread_mutex_lock(&o->wmu);
        o->stop = 1;
        pthread_cond_signal(&o->wcond);
        pthread_mutex_unlock(&o->wmu);
        pthread_join(o->thread, NULL);
        o->started = 0;
    }
    pthread_mutex_lock(&o->wmu);
    struct reg_waiter *w = o->waiters;
    o->waiters = NULL;
    pthread_mutex_unlock(&o->wmu);
    if (w)
        answer(w, offsets_persist(b));
}

void offsets_answer_after(broker_t *b, conn_t *conn, const struct rcmd *req)
{
    struct sbuf none;
    bsb_init(&none);
    offsets_answer_after_body(b, conn, req, &none);
}

void offsets_answer_after_body(broker_t *b, conn_t *conn, const struct rcmd *req, struct sbuf *body)
{
    struct offsets *o = &b->offsets;
    struct reg_waiter *w = ferry_calloc(1, sizeof *w);
    broker_reply_init(&w->rt, conn, req);
    w->body = *body;
    bsb_init(body);
    pthread_mutex_lock(&o->wmu);
    w->next = o->waiters;
    o->waiters = w;
    pthread_cond_signal(&o->wcond);
    pthread_mutex_unlock(&o->wmu);
}
