/* Clients: consumer and producer groups (Java ConsumerManager, ProducerManager,
 * ClientManageProcessor), queue locks for orderly consumers (RebalanceLockManager), and the
 * requests built on them: HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP,
 * GET_CONSUMER_CONNECTION_LIST, GET_PRODUCER_CONNECTION_LIST, GET_CONSUMER_RUNNING_INFO
 * (forwarded to the client), LOCK_BATCH_MQ, UNLOCK_BATCH_MQ, CHECK_CLIENT_CONFIG.
 *
 * A group's members are its channels (connections) with the clientID each one sent in its
 * heartbeat. When the channel set or the subscribed topics of a consumer group change, every
 * channel of the group gets NOTIFY_CONSUMER_IDS_CHANGED (oneway), as 4.9.8 does (when both the
 * broker and the group allow it). A closed connection leaves every group at once; a channel
 * without a heartbeat for channelExpiredTimeout (120 s) is dropped and closed.
 *
 * Locking: clients.mu guards all three tables; requests to clients (notify, running info) are
 * sent after it is released, with a reference on each connection. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define LOCK_MAX_LIVE_MS   60000
#define RUNNING_INFO_MS    10000
#define RUNNING_INFO_MIN_V 62 /* V3_1_8_SNAPSHOT */

static const char *const consume_type_names[] = {"CONSUME_ACTIVELY", "CONSUME_PASSIVELY", NULL};
static const char *const model_names[] = {"BROADCASTING", "CLUSTERING", NULL};
static const char *const from_where_names[] = {
    "CONSUME_FROM_LAST_OFFSET",
    "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    "CONSUME_FROM_MIN_OFFSET",
    "CONSUME_FROM_MAX_OFFSET",
    "CONSUME_FROM_FIRST_OFFSET",
    "CONSUME_FROM_TIMESTAMP",
    NULL};

struct qlock {
    char *client_id;
    int64_t last_ms;
};

/* ---- small pieces --------------------------------------------------------------------- */

static int enum_of(const cJSON *v, const char *const *names, int def)
{
    if (cJSON_IsNumber(v)) {
        int n = 0;
        while (names[n])
            n++;
        return v->valueint >= 0 && v->valueint < n ? v->valueint : def;
    }
    if (cJSON_IsString(v))
        for (int i = 0; names[i]; i++)
            if (strcmp(v->valuestring, names[i]) == 0)
                return i;
    return def;
}

static void chan_clear(struct chan *c)
{
    if (c->conn)
        remoting_conn_unref(c->conn);
    ferry_free(c->client_id);
    c->conn = NULL;
    c->client_id = NULL;
}

static void sub_clear(struct sub *s)
{
    ferry_free(s->topic);
    ferry_free(s->sub_string);
    ferry_free(s->expr_type);
    bfilter_free(&s->filter);
    for (int i = 0; i < s->n_tags; i++)
        ferry_free(s->tags[i]);
    ferry_free(s->tags);
    memset(s, 0, sizeof *s);
}

static void cgroup_free(void *p)
{
    struct cgroup *g = p;
    for (int i = 0; i < g->n_chans; i++)
        chan_clear(&g->chans[i]);
    for (int i = 0; i < g->n_subs; i++)
        sub_clear(&g->subs[i]);
    ferry_free(g->chans);
    ferry_free(g->subs);
    ferry_free(g->name);
    ferry_free(g);
}

static void pgroup_free(void *p)
{
    struct pgroup *g = p;
    for (int i = 0; i < g->n_chans; i++)
        chan_clear(&g->chans[i]);
    ferry_free(g->chans);
    ferry_free(g);
}

static void qlock_free(void *p)
{
    struct qlock *l = p;
    ferry_free(l->client_id);
    ferry_free(l);
}

void clients_init(broker_t *b)
{
    bmap_init(&b->clients.consumers);
    bmap_init(&b->clients.producers);
    bmap_init(&b->clients.locks);
}

void clients_close(broker_t *b)
{
    bmap_clear(&b->clients.consumers, cgroup_free);
    bmap_clear(&b->clients.producers, pgroup_free);
    bmap_clear(&b->clients.locks, qlock_free);
}

/* Find @conn in @chans: index or -1. */
static int chan_find(const struct chan *chans, int n, const conn_t *conn)
{
    for (int i = 0; i < n; i++)
        if (chans[i].conn == conn)
            return i;
    return -1;
}

/* Add or refresh the channel of @conn. Returns 1 when it is new. @locks clients.mu */
static int chan_update(struct chan **chans, int *n, int *cap, conn_t *conn, const char *client_id,
                       int lang, int32_t version)
{
    int64_t now = clock_mono_ms();
    int i = chan_find(*chans, *n, conn);
    if (i >= 0) {
        struct chan *c = &(*chans)[i];
        if (strcmp(c->client_id, client_id) != 0) {
            ferry_free(c->client_id);
            c->client_id = ferry_strdup(client_id);
        }
        c->language = lang;
        c->version = version;
        c->last_update_ms = now;
        return 0;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *chans = ferry_realloc(*chans, (size_t)*cap * sizeof **chans);
    }
    remoting_conn_ref(conn);
    (*chans)[(*n)++] = (struct chan){conn, ferry_strdup(client_id), lang, version, now};
    return 1;
}

/* Remove the channel at @i. @locks clients.mu */
static void chan_remove(struct chan *chans, int *n, int i)
{
    chan_clear(&chans[i]);
    memmove(&chans[i], &chans[i + 1], (size_t)(*n - i - 1) * sizeof *chans);
    (*n)--;
}

/* A list of connections to notify, referenced. */
struct notify_list {
    conn_t **conns;
    int n;
    char group[NAME_MAX_LEN + 1];
    struct notify_list *next;
};

/* @locks clients.mu */
static struct notify_list *notify_prepare(const struct cgroup *g, struct notify_list *next)
{
    struct notify_list *nl = ferry_calloc(1, sizeof *nl);
    snprintf(nl->group, sizeof nl->group, "%s", g->name);
    nl->conns = ferry_malloc((size_t)(g->n_chans ? g->n_chans : 1) * sizeof *nl->conns);
    for (int i = 0; i < g->n_chans; i++) {
        remoting_conn_ref(g->chans[i].conn);
        nl->conns[nl->n++] = g->chans[i].conn;
    }
    nl->next = next;
    return nl;
}

/* Send NOTIFY_CONSUMER_IDS_CHANGED (oneway) and free the lists. Not under clients.mu. */
static void notify_send(broker_t *b, struct notify_list *nl)
{
    while (nl) {
        struct notify_list *next = nl->next;
        for (int i = 0; i < nl->n; i++) {
            if (b->cfg.notifyConsumerIdsChangedEnable) {
                struct rcmd r;
                rcmd_init_request(&r, REQ_NOTIFY_CONSUMER_IDS_CHANGED);
                rcmd_ext_add(&r, "consumerGroup", nl->group);
                int rc = remoting_conn_oneway(nl->conns[i], &r);
                log_debug(LOG_BROKER, "notify %s of group %s: %s", remoting_conn_peer(nl->conns[i]),
                          nl->group, ferry_strerror(rc));
            }
            remoting_conn_unref(nl->conns[i]);
        }
        ferry_free(nl->conns);
        ferry_free(nl);
        nl = next;
    }
}

/* Free the lists without sending. */
static void notify_drop(struct notify_list *nl)
{
    while (nl) {
        struct notify_list *next = nl->next;
        for (int i = 0; i < nl->n; i++)
            remoting_conn_unref(nl->conns[i]);
        ferry_free(nl->conns);
        ferry_free(nl);
        nl = next;
    }
}

static int group_notify_enabled(broker_t *b, const char *group)
{
    struct group_config gc;
    return groups_find(b, group, &gc) != 0 || gc.notify_enable;
}

/* Split a TAG expression into trimmed tags (Java FilterAPI), for the connection list. */
static void split_tags(struct sub *s)
{
    const char *p = s->sub_string;
    if (!p || !*p || strcmp(p, "*") == 0)
        return;
    for (;;) {
        const char *sep = strstr(p, "||");
        const char *end = sep ? sep : p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *z = end;
        while (z > p && (z[-1] == ' ' || z[-1] == '\t'))
            z--;
        if (z > p) {
            s->tags = ferry_realloc(s->tags, (size_t)(s->n_tags + 1) * sizeof *s->tags);
            char *t = ferry_malloc((size_t)(z - p) + 1);
            memcpy(t, p, (size_t)(z - p));
            t[z - p] = 0;
            s->tags[s->n_tags++] = t;
        }
        if (!sep)
            break;
        p = sep + 2;
    }
}

static int parse_sub(const cJSON *j, struct sub *s)
{
    memset(s, 0, sizeof *s);
    const char *topic = bjson_str(j, "topic");
    if (!topic || !*topic)
        return -1;
    const char *str = bjson_str(j, "subString");
    const char *et = bjson_str(j, "expressionType");
    s->topic = ferry_strdup(topic);
    s->sub_string = ferry_strdup(str && *str ? str : "*");
    s->expr_type = ferry_strdup(et && *et ? et : "TAG");
    s->is_tag = strcmp(s->expr_type, "TAG") == 0;
    s->sub_version = bjson_i64(j, "subVersion", 0);
    if (s->is_tag) {
        bfilter_build(&s->filter, s->sub_string);
        split_tags(s);
    } else {
        s->filter.all = 1;
    }
    return 0;
}

/* Java ConsumerGroupInfo.updateSubscription: 1 when a topic was added or removed.
 * Takes over @subs. @locks clients.mu */
static int update_subs(struct cgroup *g, struct sub *subs, int n)
{
    int changed = 0;
    for (int i = 0; i < n; i++) {
        int found = -1;
        for (int k = 0; k < g->n_subs; k++)
            if (g->subs[k].topic && strcmp(g->subs[k].topic, subs[i].topic) == 0)
                found = k;
        if (found < 0) {
            changed = 1;
        } else if (subs[i].sub_version <= g->subs[found].sub_version) {
            /* Keep the newer one the broker already has. */
            sub_clear(&subs[i]);
            subs[i] = g->subs[found];
            memset(&g->subs[found], 0, sizeof g->subs[found]);
        }
    }
    for (int k = 0; k < g->n_subs; k++) {
        int exist = 0;
        for (int i = 0; i < n; i++)
            if (g->subs[k].topic && strcmp(g->subs[k].topic, subs[i].topic) == 0)
                exist = 1;
        if (g->subs[k].topic && !exist)
            changed = 1;
        sub_clear(&g->subs[k]);
    }
    ferry_free(g->subs);
    g->subs = subs;
    g->n_subs = n;
    return changed;
}

/* ---- HEART_BEAT / UNREGISTER_CLIENT ---------------------------------------------------- */

static void heartbeat_consumer(broker_t *b, conn_t *conn, const struct rcmd *req,
                               const char *client_id, const cJSON *cd, struct notify_list **notify)
{
    const char *group = bjson_str(cd, "groupName");
    struct group_config gc;
    if (!group || !*group || strlen(group) > NAME_MAX_LEN)
        return;
    int notify_ok = 1;
    if (groups_find(b, group, &gc) == 0) {
        char retry[NAME_MAX_LEN + 16], remark[160];
        notify_ok = gc.notify_enable;
        snprintf(retry, sizeof retry, "%s%s", RETRY_PREFIX, group);
        if (topics_name_check(retry, remark, sizeof remark) == 0) {
            struct topic_config tc;
            int created;
            topics_create_if_missing(b, retry, gc.retry_queue_nums, PERM_READ | PERM_WRITE,
                                     bjson_bool(cd, "unitMode", 0) ? 2 : 0, &tc, &created);
            if (created)
                broker_reg_trigger(b);
        }
    }
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(cd, "subscriptionDataSet");
    int n = cJSON_GetArraySize(set), k = 0;
    struct sub *subs = ferry_calloc((size_t)(n ? n : 1), sizeof *subs);
    const cJSON *sj;
    cJSON_ArrayForEach(sj, set)
    {
        if (parse_sub(sj, &subs[k]) == 0)
            k++;
    }

    pthread_mutex_lock(&b->clients.mu);
    struct cgroup *g = bmap_get(&b->clients.consumers, group);
    if (!g) {
        g = ferry_calloc(1, sizeof *g);
        g->name = ferry_strdup(group);
        bmap_put(&b->clients.consumers, group, g);
    }
    g->consume_type =
        enum_of(cJSON_GetObjectItemCaseSensitive(cd, "consumeType"), consume_type_names, 1);
    g->message_model =
        enum_of(cJSON_GetObjectItemCaseSensitive(cd, "messageModel"), model_names, 1);
    g->from_where =
        enum_of(cJSON_GetObjectItemCaseSensitive(cd, "consumeFromWhere"), from_where_names, 0);
    int r1 = chan_update(&g->chans, &g->n_chans, &g->cap_chans, conn, client_id, req->language,
                         req->version);
    int r2 = update_subs(g, subs, k);
    if ((r1 || r2) && notify_ok)
        *notify = notify_prepare(g, *notify);
    pthread_mutex_unlock(&b->clients.mu);
    if (r1 || r2)
        log_info(LOG_BROKER, "consumer group %s: %s %s from %s", group,
                 r1 ? "new channel" : "subscription changed", client_id, remoting_conn_peer(conn));
}

void broker_on_heartbeat(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct notify_list *notify = NULL;
    if (!broker_ready(b, conn, req))
        return;
    cJSON *doc =
        req->body_len ? cJSON_ParseWithLength((const char *)req->body, req->body_len) : NULL;
    const char *client_id = doc ? bjson_str(doc, "clientID") : NULL;
    if (!client_id || !*client_id) {
        cJSON_Delete(doc);
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       doc ? "the heartbeat body has no clientID"
                           : "the heartbeat body is missing or not valid JSON");
        return;
    }
    const cJSON *cd;
    cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(doc, "consumerDataSet"))
    {
        heartbeat_consumer(b, conn, req, client_id, cd, &notify);
    }
    const cJSON *pd;
    cJSON_ArrayForEach(pd, cJSON_GetObjectItemCaseSensitive(doc, "producerDataSet"))
    {
        const char *group = bjson_str(pd, "groupName");
        if (!group || !*group || strlen(group) > NAME_MAX_LEN)
            continue;
        pthread_mutex_lock(&b->clients.mu);
        struct pgroup *g = bmap_get(&b->clients.producers, group);
        if (!g) {
            g = ferry_calloc(1, sizeof *g);
            bmap_put(&b->clients.producers, group, g);
        }
        chan_update(&g->chans, &g->n_chans, &g->cap_chans, conn, client_id, req->language,
                    req->version);
        pthread_mutex_unlock(&b->clients.mu);
    }
    cJSON_Delete(doc);
    broker_respond(conn, req, RESP_SUCCESS, NULL);
    notify_send(b, notify);
}

/* Drop @conn from consumer group @name; returns the notify list when it was a member. */
static struct notify_list *consumer_leave(broker_t *b, const char *name, conn_t *conn,
                                          int always_notify, struct notify_list *nl)
{
    struct cgroup *g = bmap_get(&b->clients.consumers, name);
    if (!g)
        return nl;
    int i = chan_find(g->chans, g->n_chans, conn);
    if (i >= 0)
        chan_remove(g->chans, &g->n_chans, i);
    if (i >= 0 || always_notify) {
        if (g->n_chans > 0)
            nl = notify_prepare(g, nl);
    }
    if (g->n_chans == 0) {
        /* @name may be the map's own key: log before the entry goes. */
        log_info(LOG_BROKER, "consumer group %s has no connection left", name);
        bmap_del(&b->clients.consumers, name);
        cgroup_free(g);
    }
    return nl;
}

void broker_on_unregister_client(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char client_id[512], pgroup[NAME_MAX_LEN + 1], cgroup[NAME_MAX_LEN + 1];
    struct hdrs p;
    struct notify_list *nl = NULL;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "clientID", client_id, sizeof client_id, 1);
    bhdrs_str(&p, "producerGroup", pgroup, sizeof pgroup, 0);
    bhdrs_str(&p, "consumerGroup", cgroup, sizeof cgroup, 0);
    if (p.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p.remark);
        return;
    }
    int notify = cgroup[0] && group_notify_enabled(b, cgroup);
    pthread_mutex_lock(&b->clients.mu);
    if (pgroup[0]) {
        struct pgroup *g = bmap_get(&b->clients.producers, pgroup);
        int i = g ? chan_find(g->chans, g->n_chans, conn) : -1;
        if (i >= 0)
            chan_remove(g->chans, &g->n_chans, i);
        if (g && g->n_chans == 0) {
            bmap_del(&b->clients.producers, pgroup);
            pgroup_free(g);
        }
    }
    if (cgroup[0])
        nl = consumer_leave(b, cgroup, conn, 1, NULL);
    pthread_mutex_unlock(&b->clients.mu);
    broker_respond(conn, req, RESP_SUCCESS, NULL);
    if (notify)
        notify_send(b, nl);
    else
        notify_drop(nl);
}

void clients_on_close(conn_t *conn, void *arg)
{
    broker_t *b = arg;
    struct notify_list *nl = NULL;
    pthread_mutex_lock(&b->clients.mu);
    const char **keys = bmap_sorted_keys(&b->clients.consumers);
    uint32_t n = b->clients.consumers.n;
    for (uint32_t i = 0; i < n; i++)
        nl = consumer_leave(b, keys[i], conn, 0, nl);
    ferry_free(keys);
    keys = bmap_sorted_keys(&b->clients.producers);
    n = b->clients.producers.n;
    for (uint32_t i = 0; i < n; i++) {
        struct pgroup *g = bmap_get(&b->clients.producers, keys[i]);
        int k = chan_find(g->chans, g->n_chans, conn);
        if (k >= 0)
            chan_remove(g->chans, &g->n_chans, k);
        if (g->n_chans == 0) {
            bmap_del(&b->clients.producers, keys[i]);
            pgroup_free(g);
        }
    }
    ferry_free(keys);
    pthread_mutex_unlock(&b->clients.mu);
    if (!atomic_load(&b->stopping))
        notify_send(b, nl);
    else
        notify_drop(nl);
}

void clients_scan_expired(broker_t *b)
{
    int64_t now = clock_mono_ms(), limit = b->cfg.channelExpiredTimeout;
    conn_t *close_list[64];
    int n_close = 0;
    struct notify_list *nl = NULL;

    pthread_mutex_lock(&b->clients.mu);
    const char **keys = bmap_sorted_keys(&b->clients.consumers);
    uint32_t n = b->clients.consumers.n;
    for (uint32_t i = 0; i < n; i++) {
        struct cgroup *g = bmap_get(&b->clients.consumers, keys[i]);
        for (int k = 0; k < g->n_chans; k++) {
            if (now - g->chans[k].last_update_ms <= limit)
                continue;
            log_warn(LOG_BROKER,
                     "consumer %s of group %s sent no heartbeat for %" PRId64 " ms; dropping it",
                     g->chans[k].client_id, g->name, now - g->chans[k].last_update_ms);
            if (n_close < 64) {
                remoting_conn_ref(g->chans[k].conn);
                close_list[n_close++] = g->chans[k].conn;
            }
            nl = consumer_leave(b, keys[i], g->chans[k].conn, 0, nl);
            break; /* @g may be gone; the next scan handles the rest */
        }
    }
    ferry_free(keys);
    keys = bmap_sorted_keys(&b->clients.producers);
    n = b->clients.producers.n;
    for (uint32_t i = 0; i < n; i++) {
        struct pgroup *g = bmap_get(&b->clients.producers, keys[i]);
        for (int k = g->n_chans - 1; k >= 0; k--)
            if (now - g->chans[k].last_update_ms > limit)
                chan_remove(g->chans, &g->n_chans, k);
        if (g->n_chans == 0) {
            bmap_del(&b->clients.producers, keys[i]);
            pgroup_free(g);
        }
    }
    ferry_free(keys);
    pthread_mutex_unlock(&b->clients.mu);
    for (int i = 0; i < n_close; i++) {
        remoting_conn_close(close_list[i]);
        remoting_conn_unref(close_list[i]);
    }
    notify_send(b, nl);
}

int clients_find_sub(broker_t *b, const char *group, const char *topic, int64_t sub_version,
                     int broadcast_enable, struct tag_filter *out, char *remark, size_t cap)
{
    int rc = 0;
    pthread_mutex_lock(&b->clients.mu);
    const struct cgroup *g = bmap_get(&b->clients.consumers, group);
    const struct sub *s = NULL;
    for (int i = 0; g && i < g->n_subs; i++)
        if (strcmp(g->subs[i].topic, topic) == 0)
            s = &g->subs[i];
    if (!g) {
        rc = RESP_SUBSCRIPTION_NOT_EXIST;
        snprintf(remark, cap, "the consumer's group info not exist, group: %s", group);
    } else if (!broadcast_enable && g->message_model == 0) {
        rc = RESP_NO_PERMISSION;
        snprintf(remark, cap, "the consumer group[%s] can not consume by broadcast way", group);
    } else if (!s) {
        rc = RESP_SUBSCRIPTION_NOT_EXIST;
        snprintf(remark, cap, "the consumer's subscription not exist, group: %s, topic: %s", group,
                 topic);
    } else if (s->sub_version < sub_version) {
        rc = RESP_SUBSCRIPTION_NOT_LATEST;
        snprintf(remark, cap, "the consumer's subscription not latest");
    } else if (!s->is_tag) {
        rc = RESP_SYSTEM_ERROR;
        snprintf(remark, cap, "The broker does not support consumer to filter message by %s",
                 s->expr_type);
    } else {
        bfilter_copy(out, &s->filter);
    }
    pthread_mutex_unlock(&b->clients.mu);
    return rc;
}

/* ---- lists ---------------------------------------------------------------------------- */

void broker_on_consumer_list(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1];
    struct hdrs p;
    struct sbuf sb;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", group, sizeof group, 1);
    if (p.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p.remark);
        return;
    }
    bsb_init(&sb);
    bsb_str(&sb, "{\"consumerIdList\":[");
    int n = 0;
    pthread_mutex_lock(&b->clients.mu);
    const struct cgroup *g = bmap_get(&b->clients.consumers, group);
    for (int i = 0; g && i < g->n_chans; i++) {
        int dup = 0;
        for (int k = 0; k < i; k++)
            if (strcmp(g->chans[k].client_id, g->chans[i].client_id) == 0)
                dup = 1;
        if (dup)
            continue;
        bsb_jstr(&sb, g->chans[i].client_id);
        bsb_add(&sb, ",", 1);
        n++;
    }
    pthread_mutex_unlock(&b->clients.mu);
    if (n == 0) {
        bsb_free(&sb);
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "no consumer for this group, %s", group);
        return;
    }
    bsb_trim_comma(&sb);
    bsb_str(&sb, "]}");
    broker_respond_sb(conn, req, &sb);
}

static void chans_json(struct sbuf *sb, const struct chan *chans, int n)
{
    bsb_str(sb, "\"connectionSet\":[");
    for (int i = 0; i < n; i++) {
        const char *lang = rcmd_lang_name(chans[i].language);
        bsb_str(sb, "{\"clientAddr\":");
        bsb_jstr(sb, remoting_conn_peer(chans[i].conn));
        bsb_str(sb, ",\"clientId\":");
        bsb_jstr(sb, chans[i].client_id);
        bsb_fmt(sb, ",\"language\":\"%s\",\"version\":%d},", lang ? lang : "OTHER",
                chans[i].version);
    }
    bsb_trim_comma(sb);
    bsb_str(sb, "]");
}

void broker_on_consumer_connection_list(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1];
    struct hdrs p;
    struct sbuf sb;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", group, sizeof group, 1);
    if (p.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p.remark);
        return;
    }
    bsb_init(&sb);
    pthread_mutex_lock(&b->clients.mu);
    const struct cgroup *g = bmap_get(&b->clients.consumers, group);
    if (g) {
        bsb_add(&sb, "{", 1);
        chans_json(&sb, g->chans, g->n_chans);
        bsb_fmt(&sb,
                ",\"consumeFromWhere\":\"%s\",\"consumeType\":\"%s\",\"messageModel\":\"%s\","
                "\"subscriptionTable\":{",
                from_where_names[g->from_where], consume_type_names[g->consume_type],
                model_names[g->message_model]);
        for (int i = 0; i < g->n_subs; i++) {
            const struct sub *s = &g->subs[i];
            bsb_jstr(&sb, s->topic);
            bsb_str(&sb, ":{\"classFilterMode\":false,\"codeSet\":[");
            for (int k = 0; !s->filter.all && k < s->filter.n; k++)
                bsb_fmt(&sb, "%s%" PRId64, k ? "," : "", s->filter.codes[k]);
            bsb_str(&sb, "],\"expressionType\":");
            bsb_jstr(&sb, s->expr_type);
            bsb_str(&sb, ",\"subString\":");
            bsb_jstr(&sb, s->sub_string);
            bsb_fmt(&sb, ",\"subVersion\":%" PRId64 ",\"tagsSet\":[", s->sub_version);
            for (int k = 0; k < s->n_tags; k++) {
                if (k)
                    bsb_add(&sb, ",", 1);
                bsb_jstr(&sb, s->tags[k]);
            }
            bsb_str(&sb, "]},");
        }
        bsb_trim_comma(&sb);
        bsb_str(&sb, "}}");
    }
    pthread_mutex_unlock(&b->clients.mu);
    if (!g) {
        bsb_free(&sb);
        broker_respond(conn, req, RESP_CONSUMER_NOT_ONLINE, "the consumer group[%s] not online",
                       group);
        return;
    }
    broker_respond_sb(conn, req, &sb);
}

void broker_on_producer_connection_list(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1];
    struct hdrs p;
    struct sbuf sb;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "producerGroup", group, sizeof group, 1);
    if (p.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p.remark);
        return;
    }
    bsb_init(&sb);
    pthread_mutex_lock(&b->clients.mu);
    const struct pgroup *g = bmap_get(&b->clients.producers, group);
    if (g) {
        bsb_add(&sb, "{", 1);
        chans_json(&sb, g->chans, g->n_chans);
        bsb_add(&sb, "}", 1);
    }
    pthread_mutex_unlock(&b->clients.mu);
    if (!g) {
        bsb_free(&sb);
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "the producer group[%s] not exist", group);
        return;
    }
    broker_respond_sb(conn, req, &sb);
}

/* ---- GET_CONSUMER_RUNNING_INFO: forwarded to the consumer ------------------------------ */

struct fwd {
    struct reply_to rt;
    char desc[600];
};

static void on_forwarded(int status, const struct rcmd *cresp, void *arg)
{
    struct fwd *f = arg;
    struct rcmd resp;
    char remark[800];
    if (status == 0) {
        char *rm = NULL;
        if (cresp->remark.p) {
            rm = ferry_malloc(cresp->remark.len + 1);
            memcpy(rm, cresp->remark.p, cresp->remark.len);
            rm[cresp->remark.len] = 0;
        }
        broker_reply_init_resp(&f->rt, &resp, cresp->code, rm);
        for (unsigned i = 0; i < cresp->ext_n; i++)
            rcmd_ext_addn(&resp, cresp->ext[i].key.p, cresp->ext[i].key.len, cresp->ext[i].val.p,
                          cresp->ext[i].val.len);
        resp.body = cresp->body;
        resp.body_len = cresp->body_len;
        remoting_respond(f->rt.conn, &resp);
        ferry_free(rm);
    } else {
        int32_t code = status == -ETIMEDOUT ? RESP_CONSUME_MSG_TIMEOUT : RESP_SYSTEM_ERROR;
        if (status == -ETIMEDOUT)
            snprintf(remark, sizeof remark, "%s Timeout: no answer in %d ms", f->desc,
                     RUNNING_INFO_MS);
        else
            snprintf(remark, sizeof remark, "invoke %s Exception: %s", f->desc,
                     ferry_strerror(status));
        broker_reply_init_resp(&f->rt, &resp, code, remark);
        remoting_respond(f->rt.conn, &resp);
    }
    broker_reply_done(&f->rt);
    ferry_free(f);
}

void broker_on_consumer_running_info(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1], client_id[512];
    struct hdrs p;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", group, sizeof group, 1);
    bhdrs_str(&p, "clientId", client_id, sizeof client_id, 1);
    if (p.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p.remark);
        return;
    }
    conn_t *target = NULL;
    int32_t version = 0;
    pthread_mutex_lock(&b->clients.mu);
    const struct cgroup *g = bmap_get(&b->clients.consumers, group);
    for (int i = 0; g && i < g->n_chans; i++) {
        if (strcmp(g->chans[i].client_id, client_id) == 0) {
            target = g->chans[i].conn;
            version = g->chans[i].version;
            remoting_conn_ref(target);
            break;
        }
    }
    pthread_mutex_unlock(&b->clients.mu);
    if (!target) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "The Consumer <%s> <%s> not online", group,
                       client_id);
        return;
    }
    if (version < RUNNING_INFO_MIN_V) {
        remoting_conn_unref(target);
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "The Consumer <%s> Version <%d> too low to finish, please upgrade it to "
                       "V3_1_8_SNAPSHOT",
                       client_id, version);
        return;
    }
    struct rcmd fwd_req;
    rcmd_init_request(&fwd_req, REQ_GET_CONSUMER_RUNNING_INFO);
    for (unsigned i = 0; i < req->ext_n; i++)
        rcmd_ext_addn(&fwd_req, req->ext[i].key.p, req->ext[i].key.len, req->ext[i].val.p,
                      req->ext[i].val.len);
    fwd_req.body = req->body;
    fwd_req.body_len = req->body_len;
    struct fwd *f = ferry_calloc(1, sizeof *f);
    broker_reply_init(&f->rt, conn, req);
    snprintf(f->desc, sizeof f->desc, "consumer <%s> <%s>", group, client_id);
    int rc = remoting_conn_invoke(target, &fwd_req, RUNNING_INFO_MS, on_forwarded, f);
    remoting_conn_unref(target);
    if (rc != 0) {
        broker_reply_done(&f->rt);
        ferry_free(f);
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "invoke consumer <%s> <%s> failed: %s", group,
                       client_id, ferry_strerror(rc));
    }
}

/* ---- LOCK_BATCH_MQ / UNLOCK_BATCH_MQ --------------------------------------------------- */

static void lock_key(char *key, size_t cap, const char *group, const char *topic,
                     const char *broker, int qid)
{
    snprintf(key, cap, "%s\001%s\001%s\001%d", group, topic, broker, qid);
}

/* Parse a LockBatchRequestBody; NULL with @remark when it is not usable. */
static cJSON *parse_lock_body(const struct rcmd *req, const char **group, const char **client,
                              char *remark, size_t cap)
{
    cJSON *doc =
        req->body_len ? cJSON_ParseWithLength((const char *)req->body, req->body_len) : NULL;
    *group = doc ? bjson_str(doc, "consumerGroup") : NULL;
    *client = doc ? bjson_str(doc, "clientId") : NULL;
    if (!doc || !*group || !*client) {
        snprintf(remark, cap,
                 "the lock body is missing, not JSON, or lacks consumerGroup/clientId");
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static void mq_json(struct sbuf *sb, const char *topic, const char *broker, int qid)
{
    bsb_str(sb, "{\"brokerName\":");
    bsb_jstr(sb, broker);
    bsb_fmt(sb, ",\"queueId\":%d,\"topic\":", qid);
    bsb_jstr(sb, topic);
    bsb_add(sb, "},", 2);
}

void broker_on_lock_batch(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    const char *group, *client;
    char remark[200], key[1024];
    struct sbuf sb;

    if (!broker_ready(b, conn, req))
        return;
    cJSON *doc = parse_lock_body(req, &group, &client, remark, sizeof remark);
    if (!doc) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", remark);
        return;
    }
    bsb_init(&sb);
    bsb_str(&sb, "{\"lockOKMQSet\":[");
    int64_t now = clock_mono_ms();
    const cJSON *mq;
    pthread_mutex_lock(&b->clients.mu);
    cJSON_ArrayForEach(mq, cJSON_GetObjectItemCaseSensitive(doc, "mqSet"))
    {
        const char *topic = bjson_str(mq, "topic"), *broker = bjson_str(mq, "brokerName");
        int64_t qid = bjson_i64(mq, "queueId", -1);
        if (!topic || !broker || qid < 0 || qid > INT32_MAX)
            continue;
        lock_key(key, sizeof key, group, topic, broker, (int)qid);
        struct qlock *l = bmap_get(&b->clients.locks, key);
        int ok = 0;
        if (!l) {
            l = ferry_calloc(1, sizeof *l);
            l->client_id = ferry_strdup(client);
            bmap_put(&b->clients.locks, key, l);
            ok = 1;
        } else if (strcmp(l->client_id, client) == 0) {
            ok = 1;
        } else if (now - l->last_ms > LOCK_MAX_LIVE_MS) {
            log_warn(LOG_BROKER, "queue lock %s/%s/%d of group %s taken over from %s by %s", topic,
                     broker, (int)qid, group, l->client_id, client);
            ferry_free(l->client_id);
            l->client_id = ferry_strdup(client);
            ok = 1;
        }
        if (ok) {
            l->last_ms = now;
            mq_json(&sb, topic, broker, (int)qid);
        }
    }
    pthread_mutex_unlock(&b->clients.mu);
    cJSON_Delete(doc);
    bsb_trim_comma(&sb);
    bsb_str(&sb, "]}");
    broker_respond_sb(conn, req, &sb);
}

void broker_on_unlock_batch(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    const char *group, *client;
    char remark[200], key[1024];

    if (!broker_ready(b, conn, req))
        return;
    cJSON *doc = parse_lock_body(req, &group, &client, remark, sizeof remark);
    if (!doc) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", remark);
        return;
    }
    const cJSON *mq;
    pthread_mutex_lock(&b->clients.mu);
    cJSON_ArrayForEach(mq, cJSON_GetObjectItemCaseSensitive(doc, "mqSet"))
    {
        const char *topic = bjson_str(mq, "topic"), *broker = bjson_str(mq, "brokerName");
        int64_t qid = bjson_i64(mq, "queueId", -1);
        if (!topic || !broker || qid < 0 || qid > INT32_MAX)
            continue;
        lock_key(key, sizeof key, group, topic, broker, (int)qid);
        struct qlock *l = bmap_get(&b->clients.locks, key);
        if (l && strcmp(l->client_id, client) == 0)
            qlock_free(bmap_del(&b->clients.locks, key));
    }
    pthread_mutex_unlock(&b->clients.mu);
    cJSON_Delete(doc);
    broker_respond(conn, req, RESP_SUCCESS, NULL);
}

void broker_on_check_client_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    if (!broker_ready(b, conn, req))
        return;
    cJSON *doc =
        req->body_len ? cJSON_ParseWithLength((const char *)req->body, req->body_len) : NULL;
    const cJSON *sd = doc ? cJSON_GetObjectItemCaseSensitive(doc, "subscriptionData") : NULL;
    const char *et = sd ? bjson_str(sd, "expressionType") : NULL;
    if (et && *et && strcmp(et, "TAG") != 0)
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "The broker does not support consumer to filter message by %s", et);
    else
        broker_respond(conn, req, RESP_SUCCESS, NULL);
    cJSON_Delete(doc);
}
