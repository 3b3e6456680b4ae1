/* Subscription groups (Java SubscriptionGroupManager): the per-group consume settings, the
 * built-in groups, auto-creation on first use (autoCreateSubscriptionGroup, and always for
 * CID_RMQ_SYS_* groups), admin create/delete, and config/subscriptionGroup.json.
 *
 * Failure modes: as topics.json (damaged file -> .bak -> refuse to start). */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void group_defaults(struct group_config *gc, const char *name)
{
    memset(gc, 0, sizeof *gc);
    snprintf(gc->name, sizeof gc->name, "%s", name);
    gc->consume_enable = 1;
    gc->consume_from_min_enable = 1;
    gc->consume_broadcast_enable = 1;
    gc->retry_queue_nums = 1;
    gc->retry_max_times = 16;
    gc->broker_id = 0;
    gc->which_broker_when_slow = 1;
    gc->notify_enable = 1;
}

static void dv_next(struct data_version *dv)
{
    dv->counter++;
    dv->timestamp = clock_wall_ms();
}

/* @locks groups.mu */
static void put_locked(broker_t *b, const struct group_config *gc)
{
    struct group_config *copy = ferry_malloc(sizeof *copy);
    *copy = *gc;
    ferry_free(bmap_put(&b->groups.map, gc->name, copy));
}

static void parse_into(const cJSON *e, struct group_config *gc)
{
    gc->consume_enable = bjson_bool(e, "consumeEnable", 1);
    gc->consume_from_min_enable = bjson_bool(e, "consumeFromMinEnable", 1);
    gc->consume_broadcast_enable = bjson_bool(e, "consumeBroadcastEnable", 1);
    gc->retry_queue_nums = (int32_t)bjson_i64(e, "retryQueueNums", 1);
    gc->retry_max_times = (int32_t)bjson_i64(e, "retryMaxTimes", 16);
    gc->broker_id = bjson_i64(e, "brokerId", 0);
    gc->which_broker_when_slow = bjson_i64(e, "whichBrokerWhenConsumeSlowly", 1);
    gc->notify_enable = bjson_bool(e, "notifyConsumerIdsChangedEnable", 1);
    if (gc->retry_queue_nums < 0 || gc->retry_queue_nums > 1024)
        gc->retry_queue_nums = 1;
}

int groups_config_parse(const char *json, size_t len, struct group_config *gc)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const char *name = doc ? bjson_str(doc, "groupName") : NULL;
    if (!name || !*name || strlen(name) > NAME_MAX_LEN) {
        cJSON_Delete(doc);
        return FERRY_EINVAL;
    }
    group_defaults(gc, name);
    parse_into(doc, gc);
    cJSON_Delete(doc);
    return 0;
}

/* dataVersion and subscriptionGroupTable of @doc into the table. @locks groups.mu */
static void load_table_locked(broker_t *b, const cJSON *doc)
{
    struct groups *g = &b->groups;
    struct group_config gc;
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(doc, "dataVersion");
    if (cJSON_IsObject(dv)) {
        g->dv.counter = bjson_i64(dv, "counter", 0);
        g->dv.timestamp = bjson_i64(dv, "timestamp", 0);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "subscriptionGroupTable"))
    {
        const char *name = bjson_str(e, "groupName");
        if (!name)
            name = e->string;
        if (!name || !*name || strlen(name) > NAME_MAX_LEN)
            continue;
        group_defaults(&gc, name);
        parse_into(e, &gc);
        put_locked(b, &gc);
    }
}

int groups_init(broker_t *b, char *err, size_t errlen)
{
    static const char *const builtin[] = {
        "TOOLS_CONSUMER",  "FILTERSRV_CONSUMER",    "SELF_TEST_C_GROUP", "CID_ONS-HTTP-PROXY",
        "CID_ONSAPI_PULL", "CID_ONSAPI_PERMISSION", "CID_ONSAPI_OWNER"};
    struct groups *g = &b->groups;
    struct group_config gc;
    cJSON *doc;

    snprintf(g->path, sizeof g->path, "%s/subscriptionGroup.json", b->config_dir);
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        group_defaults(&gc, builtin[i]);
        put_locked(b, &gc);
    }
    pthread_mutex_unlock(&g->mu);
    int rc = bmeta_load_json(g->path, &doc, err, errlen);
    if (rc)
        return rc;
    if (!doc)
        return 0;
    pthread_mutex_lock(&g->mu);
    load_table_locked(b, doc);
    pthread_mutex_unlock(&g->mu);
    cJSON_Delete(doc);
    return 0;
}

void groups_close(broker_t *b)
{
    bmap_clear(&b->groups.map, ferry_free);
}

int groups_find(broker_t *b, const char *name, struct group_config *out)
{
    int created = 0, rc = 0;
    pthread_mutex_lock(&b->groups.mu);
    const struct group_config *gc = bmap_get(&b->groups.map, name);
    if (gc) {
        *out = *gc;
    } else if ((b->cfg.autoCreateSubscriptionGroup || strncmp(name, "CID_RMQ_SYS_", 12) == 0) &&
               strlen(name) <= NAME_MAX_LEN && *name) {
        group_defaults(out, name);
        put_locked(b, out);
        dv_next(&b->groups.dv);
        created = 1;
    } else {
        rc = FERRY_ENOTFOUND;
    }
    pthread_mutex_unlock(&b->groups.mu);
    if (created) {
        atomic_store(&b->groups.dirty, 1);
        log_info(LOG_BROKER, "auto-created subscription group %s", name);
    }
    return rc;
}

void groups_put(broker_t *b, const struct group_config *gc)
{
    pthread_mutex_lock(&b->groups.mu);
    put_locked(b, gc);
    dv_next(&b->groups.dv);
    pthread_mutex_unlock(&b->groups.mu);
    atomic_store(&b->groups.dirty, 1);
}

int groups_delete(broker_t *b, const char *name)
{
    pthread_mutex_lock(&b->groups.mu);
    struct group_config *gc = bmap_del(&b->groups.map, name);
    if (gc)
        dv_next(&b->groups.dv);
    pthread_mutex_unlock(&b->groups.mu);
    if (!gc)
        return FERRY_ENOTFOUND;
    ferry_free(gc);
    atomic_store(&b->groups.dirty, 1);
    return 0;
}

void groups_encode(broker_t *b, struct sbuf *sb)
{
    pthread_mutex_lock(&b->groups.mu);
    const char **keys = bmap_sorted_keys(&b->groups.map);
    bsb_fmt(sb, "{\"dataVersion\":{\"counter\":%" PRId64 ",\"timestamp\":%" PRId64 "},",
            b->groups.dv.counter, b->groups.dv.timestamp);
    bsb_str(sb, "\"subscriptionGroupTable\":{");
    for (uint32_t i = 0; i < b->groups.map.n; i++) {
        const struct group_config *gc = bmap_get(&b->groups.map, keys[i]);
        bsb_jstr(sb, keys[i]);
        bsb_fmt(sb,
                ":{\"brokerId\":%" PRId64 ",\"consumeBroadcastEnable\":%s,\"consumeEnable\":%s,"
                "\"consumeFromMinEnable\":%s,\"groupName\":",
                gc->broker_id, gc->consume_broadcast_enable ? "true" : "false",
                gc->consume_enable ? "true" : "false",
                gc->consume_from_min_enable ? "true" : "false");
        bsb_jstr(sb, gc->name);
        bsb_fmt(sb,
                ",\"notifyConsumerIdsChangedEnable\":%s,\"retryMaxTimes\":%d,"
                "\"retryQueueNums\":%d,\"whichBrokerWhenConsumeSlowly\":%" PRId64 "},",
                gc->notify_enable ? "true" : "false", gc->retry_max_times, gc->retry_queue_nums,
                gc->which_broker_when_slow);
    }
    bsb_trim_comma(sb);
    bsb_str(sb, "}}");
    ferry_free(keys);
    pthread_mutex_unlock(&b->groups.mu);
}

int groups_persist(broker_t *b)
{
    /* Held across the write: a caller that finds nothing dirty knows that every earlier write
     * has completed (what it answers is on disk). */
    pthread_mutex_lock(&b->persist_mu);
    if (!atomic_exchange(&b->groups.dirty, 0)) {
        pthread_mutex_unlock(&b->persist_mu);
        return 0;
    }
    struct sbuf sb;
    bsb_init(&sb);
    groups_encode(b, &sb);
    int rc = bmeta_write(b, b->groups.path, &sb);
    bsb_free(&sb);
    if (rc)
        atomic_store(&b->groups.dirty, 1);
    pthread_mutex_unlock(&b->persist_mu);
    return rc;
}

/* A slave's copy of its master's table (Java SlaveSynchronize.syncSubscriptionGroupConfig):
 * replaced when the master's dataVersion differs. 1 replaced, 0 equal, -1 bad body. */
int groups_replace_json(broker_t *b, const char *json, size_t len)
{
    char *fixed = bjson_quote_int_keys(json, len);
    cJSON *doc = cJSON_Parse(fixed);
    ferry_free(fixed);
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(doc, "dataVersion");
    if (!cJSON_IsObject(doc) || !cJSON_IsObject(dv) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "subscriptionGroupTable"))) {
        cJSON_Delete(doc);
        return -1;
    }
    pthread_mutex_lock(&b->groups.mu);
    int same = b->groups.dv.counter == bjson_i64(dv, "counter", 0) &&
               b->groups.dv.timestamp == bjson_i64(dv, "timestamp", 0);
    if (!same) {
        bmap_clear(&b->groups.map, ferry_free);
        bmap_init(&b->groups.map);
        load_table_locked(b, doc);
    }
    pthread_mutex_unlock(&b->groups.mu);
    cJSON_Delete(doc);
    if (!same)
        atomic_store(&b->groups.dirty, 1);
    return !same;
}
