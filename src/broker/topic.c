/* The topic table (Java TopicConfigManager): system topics created at start, topics.json
 * loaded over them, auto-creation from TBW102 on send, retry/DLQ topics on demand, admin
 * create/delete, and the TopicConfigSerializeWrapper JSON sent to name servers.
 *
 * Happy path: readers take the read lock and copy a config out; writers change the table under
 * the write lock, bump the data version and mark the table dirty. The file
 * <storePathRootDir>/config/topics.json is written atomically (fs_replace) by the service or
 * registration thread, never by an I/O thread.
 *
 * Failure modes: a damaged topics.json falls back to topics.json.bak; if neither parses the
 * broker refuses to start (util.c meta_load_json) rather than forget topics. Entries with an
 * invalid name or queue count are skipped with a warning. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAX_QUEUES 65535

void topics_config_init(struct topic_config *tc, const char *name)
{
    memset(tc, 0, sizeof *tc);
    snprintf(tc->name, sizeof tc->name, "%s", name);
    tc->read_queues = tc->write_queues = 16;
    tc->perm = PERM_READ | PERM_WRITE;
    tc->filter_type = FILTER_SINGLE_TAG;
}

static void dv_next(struct data_version *dv)
{
    dv->counter++;
    dv->timestamp = clock_wall_ms();
}

/* @locks topics.lock (write) */
static void put_locked(broker_t *b, const struct topic_config *tc)
{
    struct topic_config *copy = ferry_malloc(sizeof *copy);
    *copy = *tc;
    ferry_free(bmap_put(&b->topics.map, tc->name, copy));
}

static void add_system(broker_t *b, const char *name, int32_t queues, int32_t perm)
{
    struct topic_config tc;
    topics_config_init(&tc, name);
    if (queues > 0)
        tc.read_queues = tc.write_queues = queues;
    tc.perm = perm;
    put_locked(b, &tc);
    bmap_put(&b->topics.system, name, (void *)1);
}

/* The topics a 4.9.8 broker creates in its TopicConfigManager constructor. */
static void create_system_topics(broker_t *b)
{
    const struct broker_config *c = &b->cfg;
    char name[300];

    add_system(b, TOPIC_SELF_TEST, 1, PERM_READ | PERM_WRITE);
    if (c->autoCreateTopicEnable)
        add_system(b, TOPIC_TBW102, c->defaultTopicQueueNums,
                   PERM_INHERIT | PERM_READ | PERM_WRITE);
    add_system(b, TOPIC_BENCHMARK, 1024, PERM_READ | PERM_WRITE);
    add_system(b, c->brokerClusterName, 0,
               PERM_INHERIT | (c->clusterTopicEnable ? PERM_READ | PERM_WRITE : 0));
    add_system(b, c->brokerName, 1,
               PERM_INHERIT | (c->brokerTopicEnable ? PERM_READ | PERM_WRITE : 0));
    add_system(b, TOPIC_OFFSET_MOVED, 1, PERM_READ | PERM_WRITE);
    add_system(b, TOPIC_SCHEDULE, 18, PERM_READ | PERM_WRITE);
    if (c->traceTopicEnable)
        add_system(b, c->msgTraceTopicName, 1, PERM_READ | PERM_WRITE);
    snprintf(name, sizeof name, "%s_REPLY_TOPIC", c->brokerClusterName);
    if (strlen(name) <= MSG_MAX_TOPIC_LEN)
        add_system(b, name, 1, PERM_READ | PERM_WRITE);
    /* Names Java treats as system topics even before they exist. */
    const char *sys[] = {TOPIC_TRANS_HALF, TOPIC_TRANS_OP_HALF, TOPIC_TRANS_CHECK,
                         "RMQ_SYS_TRACE_TOPIC", TOPIC_TBW102};
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        bmap_put(&b->topics.system, sys[i], (void *)1);
}

static int parse_filter(const cJSON *v)
{
    if (cJSON_IsString(v))
        return strcmp(v->valuestring, "MULTI_TAG") == 0 ? FILTER_MULTI_TAG : FILTER_SINGLE_TAG;
    if (cJSON_IsNumber(v))
        return v->valueint == 1 ? FILTER_MULTI_TAG : FILTER_SINGLE_TAG;
    return FILTER_SINGLE_TAG;
}

static void load_table(broker_t *b, const cJSON *doc)
{
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(doc, "dataVersion");
    if (cJSON_IsObject(dv)) {
        b->topics.dv.counter = bjson_i64(dv, "counter", 0);
        b->topics.dv.timestamp = bjson_i64(dv, "timestamp", 0);
    }
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(doc, "topicConfigTable");
    const cJSON *e;
    cJSON_ArrayForEach(e, table)
    {
        const char *name = bjson_str(e, "topicName");
        char remark[160];
        if (!name)
            name = e->string;
        if (!name || topics_name_check(name, remark, sizeof remark) != 0) {
            log_warn(LOG_BROKER, "%s: skipping topic \"%s\": %s", b->topics.path, name ? name : "",
                     name ? remark : "no name");
            continue;
        }
        struct topic_config tc;
        topics_config_init(&tc, name);
        int64_t r = bjson_i64(e, "readQueueNums", 16), w = bjson_i64(e, "writeQueueNums", 16);
        if (r < 0 || r > MAX_QUEUES || w < 0 || w > MAX_QUEUES) {
            log_warn(LOG_BROKER, "%s: skipping topic %s: bad queue counts %" PRId64 "/%" PRId64,
                     b->topics.path, name, r, w);
            continue;
        }
        tc.read_queues = (int32_t)r;
        tc.write_queues = (int32_t)w;
        tc.perm = (int32_t)bjson_i64(e, "perm", PERM_READ | PERM_WRITE) & 0xF;
        tc.sys_flag = (int32_t)bjson_i64(e, "topicSysFlag", 0);
        tc.filter_type = parse_filter(cJSON_GetObjectItemCaseSensitive(e, "topicFilterType"));
        tc.order = bjson_bool(e, "order", 0);
        put_locked(b, &tc);
    }
}

int topics_init(broker_t *b, char *err, size_t errlen)
{
    struct topics *t = &b->topics;
    cJSON *doc;

    snprintf(t->path, sizeof t->path, "%s/topics.json", b->config_dir);
    pthread_rwlock_wrlock(&t->lock);
    create_system_topics(b);
    pthread_rwlock_unlock(&t->lock);
    int rc = bmeta_load_json(t->path, &doc, err, errlen);
    if (rc)
        return rc;
    if (doc) {
        pthread_rwlock_wrlock(&t->lock);
        load_table(b, doc);
        pthread_rwlock_unlock(&t->lock);
        cJSON_Delete(doc);
        log_info(LOG_BROKER, "loaded %u topics from %s", t->map.n, t->path);
    }
    atomic_store(&t->dirty, 1); /* system topics may be new: write the file once */
    return 0;
}

void topics_close(broker_t *b)
{
    bmap_clear(&b->topics.map, ferry_free);
    bmap_clear(&b->topics.system, NULL);
}

int topics_get(broker_t *b, const char *name, struct topic_config *out)
{
    pthread_rwlock_rdlock(&b->topics.lock);
    const struct topic_config *tc = bmap_get(&b->topics.map, name);
    if (tc)
        *out = *tc;
    pthread_rwlock_unlock(&b->topics.lock);
    return tc ? 0 : FERRY_ENOTFOUND;
}

void topics_put(broker_t *b, const struct topic_config *tc)
{
    pthread_rwlock_wrlock(&b->topics.lock);
    put_locked(b, tc);
    dv_next(&b->topics.dv);
    pthread_rwlock_unlock(&b->topics.lock);
    atomic_store(&b->topics.dirty, 1);
}

int topics_delete(broker_t *b, const char *name)
{
    pthread_rwlock_wrlock(&b->topics.lock);
    struct topic_config *tc = bmap_del(&b->topics.map, name);
    if (tc)
        dv_next(&b->topics.dv);
    pthread_rwlock_unlock(&b->topics.lock);
    if (!tc)
        return FERRY_ENOTFOUND;
    ferry_free(tc);
    atomic_store(&b->topics.dirty, 1);
    return 0;
}

int topics_create_for_send(broker_t *b, const char *topic, const char *default_topic,
                           int32_t queue_nums, int32_t sys_flag, struct topic_config *out,
                           int *created)
{
    int rc = FERRY_ENOTFOUND;
    *created = 0;
    pthread_rwlock_wrlock(&b->topics.lock);
    const struct topic_config *tc = bmap_get(&b->topics.map, topic);
    if (tc) {
        *out = *tc;
        rc = 0;
        goto out;
    }
    const struct topic_config *def = bmap_get(&b->topics.map, default_topic);
    if (!def) {
        log_warn(LOG_BROKER, "create topic %s failed: the default topic %s does not exist", topic,
                 default_topic);
        goto out;
    }
    int32_t perm = def->perm;
    /* With auto-creation off a leftover TBW102 is not a template. */
    if (strcmp(default_topic, TOPIC_TBW102) == 0 && !b->cfg.autoCreateTopicEnable)
        perm = PERM_READ | PERM_WRITE;
    if (!(perm & PERM_INHERIT)) {
        log_warn(LOG_BROKER, "create topic %s failed: the default topic %s has no inherit perm",
                 topic, default_topic);
        goto out;
    }
    struct topic_config nt;
    topics_config_init(&nt, topic);
    int32_t q = queue_nums < def->write_queues ? queue_nums : def->write_queues;
    nt.read_queues = nt.write_queues = q < 0 ? 0 : q;
    nt.perm = perm & ~PERM_INHERIT;
    nt.sys_flag = sys_flag;
    nt.filter_type = def->filter_type;
    put_locked(b, &nt);
    dv_next(&b->topics.dv);
    *out = nt;
    *created = 1;
    rc = 0;
out:
    pthread_rwlock_unlock(&b->topics.lock);
    if (*created) {
        atomic_store(&b->topics.dirty, 1);
        log_info(LOG_BROKER, "created topic %s from %s: %d queues, perm %d", topic, default_topic,
                 out->write_queues, out->perm);
    }
    return rc;
}

void topics_create_if_missing(broker_t *b, const char *topic, int32_t queues, int32_t perm,
                              int32_t sys_flag, struct topic_config *out, int *created)
{
    *created = 0;
    pthread_rwlock_wrlock(&b->topics.lock);
    const struct topic_config *tc = bmap_get(&b->topics.map, topic);
    if (tc) {
        *out = *tc;
    } else {
        topics_config_init(out, topic);
        out->read_queues = out->write_queues = queues;
        out->perm = perm;
        out->sys_flag = sys_flag;
        put_locked(b, out);
        dv_next(&b->topics.dv);
        *created = 1;
    }
    pthread_rwlock_unlock(&b->topics.lock);
    if (*created) {
        atomic_store(&b->topics.dirty, 1);
        log_info(LOG_BROKER, "created topic %s: %d queues, perm %d", topic, queues, perm);
    }
}

void topics_config_json(struct sbuf *sb, const struct topic_config *tc, int32_t perm)
{
    bsb_fmt(sb, "{\"order\":%s,\"perm\":%d,\"readQueueNums\":%d,\"topicFilterType\":\"%s\",",
            tc->order ? "true" : "false", perm, tc->read_queues,
            tc->filter_type == FILTER_MULTI_TAG ? "MULTI_TAG" : "SINGLE_TAG");
    bsb_str(sb, "\"topicName\":");
    bsb_jstr(sb, tc->name);
    bsb_fmt(sb, ",\"topicSysFlag\":%d,\"writeQueueNums\":%d}", tc->sys_flag, tc->write_queues);
}

void topics_encode(broker_t *b, struct sbuf *sb, int32_t perm_override)
{
    pthread_rwlock_rdlock(&b->topics.lock);
    const char **keys = bmap_sorted_keys(&b->topics.map);
    bsb_fmt(sb, "{\"dataVersion\":{\"counter\":%" PRId64 ",\"timestamp\":%" PRId64 "},",
            b->topics.dv.counter, b->topics.dv.timestamp);
    bsb_str(sb, "\"topicConfigTable\":{");
    for (uint32_t i = 0; i < b->topics.map.n; i++) {
        const struct topic_config *tc = bmap_get(&b->topics.map, keys[i]);
        bsb_jstr(sb, keys[i]);
        bsb_add(sb, ":", 1);
        topics_config_json(sb, tc, perm_override ? perm_override : tc->perm);
        bsb_add(sb, ",", 1);
    }
    bsb_trim_comma(sb);
    bsb_str(sb, "}}");
    ferry_free(keys);
    pthread_rwlock_unlock(&b->topics.lock);
}

int topics_persist(broker_t *b)
{
    /* Held across the write: a caller that finds nothing dirty knows that every earlier write
     * has completed (what it answers is on disk). */
    pthread_mutex_lock(&b->persist_mu);
    if (!atomic_exchange(&b->topics.dirty, 0)) {
        pthread_mutex_unlock(&b->persist_mu);
        return 0;
    }
    struct sbuf sb;
    bsb_init(&sb);
    topics_encode(b, &sb, 0);
    int rc = bmeta_write(b, b->topics.path, &sb);
    bsb_free(&sb);
    if (rc)
        atomic_store(&b->topics.dirty, 1); /* try again next round */
    pthread_mutex_unlock(&b->persist_mu);
    return rc;
}

/* A slave's copy of its master's table (Java SlaveSynchronize.syncTopicConfig): when the
 * master's dataVersion differs from ours, our table becomes the master's, with its version.
 * 1 replaced, 0 already equal, -1 not a TopicConfigSerializeWrapper. */
int topics_replace_json(broker_t *b, const char *json, size_t len)
{
    char *fixed = bjson_quote_int_keys(json, len);
    cJSON *doc = cJSON_Parse(fixed);
    ferry_free(fixed);
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(doc, "dataVersion");
    if (!cJSON_IsObject(doc) || !cJSON_IsObject(dv) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "topicConfigTable"))) {
        cJSON_Delete(doc);
        return -1;
    }
    struct data_version mdv = {bjson_i64(dv, "counter", 0), bjson_i64(dv, "timestamp", 0)};
    pthread_rwlock_wrlock(&b->topics.lock);
    int same = b->topics.dv.counter == mdv.counter && b->topics.dv.timestamp == mdv.timestamp;
    if (!same) {
        bmap_clear(&b->topics.map, ferry_free);
        bmap_init(&b->topics.map);
        load_table(b, doc);
        b->topics.dv = mdv;
    }
    pthread_rwlock_unlock(&b->topics.lock);
    cJSON_Delete(doc);
    if (!same)
        atomic_store(&b->topics.dirty, 1);
    return !same;
}
