/* The route tables (Java RouteInfoManager): which brokers exist, which topics they serve, and
 * when each broker was last heard from.
 *
 *   topics:   topic      -> queue data per brokerName (sorted by brokerName)
 *   brokers:  brokerName -> BrokerData {cluster, brokerName, brokerId -> addr (sorted by id)}
 *   clusters: cluster    -> set of brokerNames (sorted)
 *   live:     brokerAddr -> {last registration (monotonic ms), DataVersion, connection, HA addr}
 *
 * Happy path: a broker registers every 30 s; a master's registration (re)writes the queue data
 * of its topics when its DataVersion changed or on its first registration. Removal, by
 * UNREGISTER_BROKER, by expiry or by its connection closing, takes the address out of its
 * BrokerData; only when a brokerName has no address left are the BrokerData, its cluster
 * membership (the cluster too when empty) and its queue data removed, and a topic left without
 * queue data goes as well (REMOTING.md §2.3).
 *
 * Threads: any (I/O threads for requests and closes, the scanner for expiry). @locks rt->lock:
 * readers build response bodies under the read lock; every change takes the write lock. A live
 * entry holds a reference on its connection, so expiry can close it safely. */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

#define PERM_WRITE    0x2
#define PERM_READ     0x4
#define FLAG_UNIT     0x1
#define FLAG_UNIT_SUB 0x2
#define MASTER_ID     0

struct qdata {
    char *broker;
    int32_t read, write, perm, sysflag;
};

struct topic {
    size_t n, cap;
    struct qdata *q; /* sorted by broker */
};

struct baddr {
    int64_t id;
    char *addr;
};

struct bdata {
    char *cluster, *name;
    size_t n, cap;
    struct baddr *a; /* sorted by id */
};

struct cset {
    size_t n, cap;
    char **names; /* sorted */
};

struct live {
    int64_t last_ms; /* monotonic */
    struct data_version dv;
    conn_t *conn; /* referenced */
    char *ha;
};

struct route {
    pthread_rwlock_t lock;
    struct smap topics, brokers, clusters, live;
};

/* ---- element helpers -------------------------------------------------------------------- */

static void topic_free(void *p)
{
    struct topic *t = p;
    for (size_t i = 0; i < t->n; i++)
        ferry_free(t->q[i].broker);
    ferry_free(t->q);
    ferry_free(t);
}

static void bdata_free(void *p)
{
    struct bdata *bd = p;
    for (size_t i = 0; i < bd->n; i++)
        ferry_free(bd->a[i].addr);
    ferry_free(bd->a);
    ferry_free(bd->cluster);
    ferry_free(bd->name);
    ferry_free(bd);
}

static void cset_free(void *p)
{
    struct cset *cs = p;
    for (size_t i = 0; i < cs->n; i++)
        ferry_free(cs->names[i]);
    ferry_free(cs->names);
    ferry_free(cs);
}

static void live_free(void *p)
{
    struct live *lv = p;
    remoting_conn_unref(lv->conn);
    ferry_free(lv->ha);
    ferry_free(lv);
}

/* Index of @name in the sorted @names, or where it would go (*@found says which). */
static size_t name_search(char *const *names, size_t n, const char *name, int *found)
{
    size_t lo = 0, hi = n;
    *found = 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(names[mid], name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The same over a topic's queue data, sorted by broker name. */
static size_t q_search(const struct topic *t, const char *broker, int *found)
{
    size_t lo = 0, hi = t->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->q[mid].broker, broker);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void cset_add(struct cset *cs, const char *name)
{
    int found;
    size_t i = name_search(cs->names, cs->n, name, &found);
    if (found)
        return;
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 4;
        cs->names = ferry_realloc(cs->names, cs->cap * sizeof *cs->names);
    }
    memmove(cs->names + i + 1, cs->names + i, (cs->n - i) * sizeof *cs->names);
    cs->names[i] = ferry_strdup(name);
    cs->n++;
}

static int cset_remove(struct cset *cs, const char *name)
{
    int found;
    size_t i = name_search(cs->names, cs->n, name, &found);
    if (!found)
        return 0;
    ferry_free(cs->names[i]);
    memmove(cs->names + i, cs->names + i + 1, (cs->n - i - 1) * sizeof *cs->names);
    cs->n--;
    return 1;
}

static struct qdata *topic_find(struct topic *t, const char *broker)
{
    int found;
    size_t i = q_search(t, broker, &found);
    return found ? &t->q[i] : NULL;
}

static int topic_remove(struct topic *t, const char *broker)
{
    int found;
    size_t i = q_search(t, broker, &found);
    if (!found)
        return 0;
    ferry_free(t->q[i].broker);
    memmove(t->q + i, t->q + i + 1, (t->n - i - 1) * sizeof *t->q);
    t->n--;
    return 1;
}

/* The address slot of @id, or NULL. */
static struct baddr *bdata_find(struct bdata *bd, int64_t id)
{
    for (size_t i = 0; i < bd->n; i++)
        if (bd->a[i].id == id)
            return &bd->a[i];
    return NULL;
}

static void bdata_remove_at(struct bdata *bd, size_t i)
{
    ferry_free(bd->a[i].addr);
    memmove(bd->a + i, bd->a + i + 1, (bd->n - i - 1) * sizeof *bd->a);
    bd->n--;
}

/* Put @id -> @addr; returns 1 when @id already had an address. */
static int bdata_put(struct bdata *bd, int64_t id, const char *addr)
{
    struct baddr *slot = bdata_find(bd, id);
    if (slot) {
        if (strcmp(slot->addr, addr) != 0) {
            if (id == MASTER_ID)
                log_info(LOG_NAMESRV,
                         "cluster [%s] brokerName [%s] master address change from %s to %s",
                         bd->cluster, bd->name, slot->addr, addr);
            ferry_free(slot->addr);
            slot->addr = ferry_strdup(addr);
        }
        return 1;
    }
    if (bd->n == bd->cap) {
        bd->cap = bd->cap ? bd->cap * 2 : 2;
        bd->a = ferry_realloc(bd->a, bd->cap * sizeof *bd->a);
    }
    size_t i = 0;
    while (i < bd->n && bd->a[i].id < id)
        i++;
    memmove(bd->a + i + 1, bd->a + i, (bd->n - i) * sizeof *bd->a);
    bd->a[i].id = id;
    bd->a[i].addr = ferry_strdup(addr);
    bd->n++;
    return 0;
}

/* ---- life cycle ------------------------------------------------------------------------- */

route_t *route_new(void)
{
    route_t *rt = ferry_calloc(1, sizeof *rt);
    pthread_rwlock_init(&rt->lock, NULL);
    smap_init(&rt->topics);
    smap_init(&rt->brokers);
    smap_init(&rt->clusters);
    smap_init(&rt->live);
    return rt;
}

void route_counts(route_t *rt, struct route_counts *out)
{
    pthread_rwlock_rdlock(&rt->lock);
    out->topics = rt->topics.n;
    out->broker_names = rt->brokers.n;
    out->clusters = rt->clusters.n;
    out->brokers = rt->live.n;
    pthread_rwlock_unlock(&rt->lock);
}

void route_free(route_t *rt)
{
    if (!rt)
        return;
    smap_clear(&rt->topics, topic_free);
    smap_clear(&rt->brokers, bdata_free);
    smap_clear(&rt->clusters, cset_free);
    smap_clear(&rt->live, live_free);
    pthread_rwlock_destroy(&rt->lock);
    ferry_free(rt);
}

void reg_result_clear(struct reg_result *res)
{
    ferry_free(res->master_addr);
    ferry_free(res->ha_addr);
    res->master_addr = res->ha_addr = NULL;
}

/* ---- changes (@locks rt->lock for writing) ---------------------------------------------- */

static void update_queue_data(route_t *rt, const char *broker, const struct topic_conf *tc)
{
    struct topic *t = smap_get(&rt->topics, tc->name);
    if (!t) {
        t = ferry_calloc(1, sizeof *t);
        smap_put(&rt->topics, tc->name, t);
        log_debug(LOG_NAMESRV, "new topic registered: %s by %s", tc->name, broker);
    }
    int found;
    size_t i = q_search(t, broker, &found);
    struct qdata *q = found ? &t->q[i] : NULL;
    if (!q) {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 2;
            t->q = ferry_realloc(t->q, t->cap * sizeof *t->q);
        }
        memmove(t->q + i + 1, t->q + i, (t->n - i) * sizeof *t->q);
        q = &t->q[i];
        q->broker = ferry_strdup(broker);
        t->n++;
    }
    q->read = tc->read_queues;
    q->write = tc->write_queues;
    q->perm = tc->perm;
    q->sysflag = tc->sysflag;
}

static void remove_topics_of(route_t *rt, const char *broker)
{
    struct smap_ent *e, *next;
    for (e = smap_first(&rt->topics); e; e = next) {
        next = smap_next(&rt->topics, e);
        struct topic *t = e->val;
        topic_remove(t, broker);
        if (t->n == 0) {
            log_debug(LOG_NAMESRV, "topic %s removed: no broker serves it", e->key);
            topic_free(smap_del(&rt->topics, e->key));
        }
    }
}

static int version_changed(route_t *rt, const char *addr, const struct data_version *dv)
{
    struct live *lv = smap_get(&rt->live, addr);
    return !lv || lv->dv.counter != dv->counter || lv->dv.timestamp != dv->timestamp;
}

void route_register(route_t *rt, const struct broker_id *b, const char *ha_addr,
                    const struct reg_body *body, conn_t *conn, int64_t now_ms,
                    struct reg_result *res)
{
    memset(res, 0, sizeof *res);
    pthread_rwlock_wrlock(&rt->lock);

    struct cset *cs = smap_get(&rt->clusters, b->cluster);
    if (!cs) {
        cs = ferry_calloc(1, sizeof *cs);
        smap_put(&rt->clusters, b->cluster, cs);
    }
    cset_add(cs, b->name);

    struct bdata *bd = smap_get(&rt->brokers, b->name);
    int first = 0;
    if (!bd) {
        first = 1;
        bd = ferry_calloc(1, sizeof *bd);
        bd->cluster = ferry_strdup(b->cluster);
        bd->name = ferry_strdup(b->name);
        smap_put(&rt->brokers, b->name, bd);
    }
    /* One address has one id: a slave promoted to master drops its old id first. */
    for (size_t i = 0; i < bd->n;) {
        if (strcmp(bd->a[i].addr, b->addr) == 0 && bd->a[i].id != b->id)
            bdata_remove_at(bd, i);
        else
            i++;
    }
    if (!bdata_put(bd, b->id, b->addr))
        first = 1;

    if (b->id == MASTER_ID && (first || version_changed(rt, b->addr, &body->dv)))
        for (size_t i = 0; i < body->n; i++)
            update_queue_data(rt, b->name, &body->topics[i]);

    struct live *lv = smap_get(&rt->live, b->addr);
    if (!lv) {
        lv = ferry_calloc(1, sizeof *lv);
        smap_put(&rt->live, b->addr, lv);
        log_info(LOG_NAMESRV, "new broker registered: %s (%s, id %lld, cluster %s) HAServer: %s",
                 b->addr, b->name, (long long)b->id, b->cluster, ha_addr);
    }
    lv->last_ms = now_ms;
    lv->dv = body->dv;
    if (lv->conn != conn) {
        remoting_conn_ref(conn);
        remoting_conn_unref(lv->conn);
        lv->conn = conn;
    }
    ferry_free(lv->ha);
    lv->ha = ferry_strdup(ha_addr);

    if (b->id != MASTER_ID) {
        struct baddr *m = bdata_find(bd, MASTER_ID);
        struct live *mlv = m ? smap_get(&rt->live, m->addr) : NULL;
        if (mlv) {
            res->master_addr = ferry_strdup(m->addr);
            res->ha_addr = ferry_strdup(mlv->ha);
        }
    }
    pthread_rwlock_unlock(&rt->lock);
}

/* @name lost its last address: drop its BrokerData, cluster membership and queue data.
 * @cluster NULL: look in every cluster (the address disappeared without a request). */
static void remove_broker_name(route_t *rt, const char *name, const char *cluster)
{
    bdata_free(smap_del(&rt->brokers, name));
    log_info(LOG_NAMESRV, "broker %s removed: no address left", name);
    struct smap_ent *e, *next;
    for (e = smap_first(&rt->clusters); e; e = next) {
        next = smap_next(&rt->clusters, e);
        if (cluster && strcmp(e->key, cluster) != 0)
            continue;
        struct cset *cs = e->val;
        if (cset_remove(cs, name)) {
            if (cs->n == 0) {
                log_info(LOG_NAMESRV, "cluster %s removed: no broker left", e->key);
                cset_free(smap_del(&rt->clusters, e->key));
            }
            break;
        }
    }
    remove_topics_of(rt, name);
}

static void drop_live(route_t *rt, const char *addr)
{
    struct live *lv = smap_del(&rt->live, addr);
    if (lv)
        live_free(lv);
}

void route_unregister(route_t *rt, const struct broker_id *b)
{
    pthread_rwlock_wrlock(&rt->lock);
    drop_live(rt, b->addr);
    struct bdata *bd = smap_get(&rt->brokers, b->name);
    if (bd) {
        for (size_t i = 0; i < bd->n; i++)
            if (bd->a[i].id == b->id) {
                bdata_remove_at(bd, i);
                break;
            }
        if (bd->n == 0)
            remove_broker_name(rt, b->name, b->cluster);
    }
    log_info(LOG_NAMESRV, "broker unregistered: %s (%s, id %lld)", b->addr, b->name,
             (long long)b->id);
    pthread_rwlock_unlock(&rt->lock);
}

/* The address went away without a request (connection closed, expired): Java's
 * onChannelDestroy. */
static void remove_addr(route_t *rt, const char *addr_in)
{
    char *addr = ferry_strdup(addr_in); /* @addr_in may be the live entry's key */
    drop_live(rt, addr);
    for (struct smap_ent *e = smap_first(&rt->brokers); e; e = smap_next(&rt->brokers, e)) {
        struct bdata *bd = e->val;
        for (size_t i = 0; i < bd->n; i++) {
            if (strcmp(bd->a[i].addr, addr) == 0) {
                bdata_remove_at(bd, i);
                if (bd->n == 0) {
                    char *name = ferry_strdup(e->key); /* removing it frees e */
                    remove_broker_name(rt, name, NULL);
                    ferry_free(name);
                }
                ferry_free(addr);
                return;
            }
        }
    }
    ferry_free(addr);
}

void route_conn_closed(route_t *rt, conn_t *conn)
{
    pthread_rwlock_wrlock(&rt->lock);
    struct smap_ent *e, *next;
    for (e = smap_first(&rt->live); e; e = next) {
        next = smap_next(&rt->live, e);
        if (((struct live *)e->val)->conn != conn)
            continue;
        log_info(LOG_NAMESRV, "the connection of broker %s closed (%s): removing it", e->key,
                 remoting_conn_peer(conn));
        remove_addr(rt, e->key);
        next = smap_first(&rt->live); /* the map changed: restart (rare, small) */
    }
    pthread_rwlock_unlock(&rt->lock);
}

int route_scan(route_t *rt, int64_t now_ms, int64_t expire_ms)
{
    int removed = 0;
    pthread_rwlock_wrlock(&rt->lock);
    struct smap_ent *e, *next;
    for (e = smap_first(&rt->live); e; e = next) {
        next = smap_next(&rt->live, e);
        struct live *lv = e->val;
        if (lv->last_ms + expire_ms >= now_ms)
            continue;
        log_warn(LOG_NAMESRV, "broker %s expired: no registration for %lld ms", e->key,
                 (long long)(now_ms - lv->last_ms));
        remoting_conn_close(lv->conn);
        remove_addr(rt, e->key);
        removed++;
        next = smap_first(&rt->live);
    }
    pthread_rwlock_unlock(&rt->lock);
    return removed;
}

int route_write_perm(route_t *rt, const char *broker_name, int add)
{
    int n = 0;
    pthread_rwlock_wrlock(&rt->lock);
    for (struct smap_ent *e = smap_first(&rt->topics); e; e = smap_next(&rt->topics, e)) {
        struct qdata *q = topic_find(e->val, broker_name);
        if (!q)
            continue;
        q->perm = add ? (PERM_READ | PERM_WRITE) : (q->perm & ~PERM_WRITE);
        n++;
    }
    pthread_rwlock_unlock(&rt->lock);
    return n;
}

void route_delete_topic(route_t *rt, const char *topic, const char *cluster)
{
    pthread_rwlock_wrlock(&rt->lock);
    struct topic *t = smap_get(&rt->topics, topic);
    struct cset *cs = cluster ? smap_get(&rt->clusters, cluster) : NULL;
    if (t && !cluster) {
        topic_free(smap_del(&rt->topics, topic));
    } else if (t && cs) {
        for (size_t i = 0; i < cs->n; i++)
            topic_remove(t, cs->names[i]);
        if (t->n == 0)
            topic_free(smap_del(&rt->topics, topic));
    }
    pthread_rwlock_unlock(&rt->lock);
}

int route_query_version(route_t *rt, const char *addr, const struct data_version *dv,
                        int64_t now_ms, int *changed, struct data_version *stored)
{
    pthread_rwlock_wrlock(&rt->lock);
    struct live *lv = smap_get(&rt->live, addr);
    *changed = !lv || lv->dv.counter != dv->counter || lv->dv.timestamp != dv->timestamp;
    if (lv && !*changed)
        lv->last_ms = now_ms;
    if (lv)
        *stored = lv->dv;
    pthread_rwlock_unlock(&rt->lock);
    return lv != NULL;
}

/* ---- response bodies (@locks rt->lock for reading) -------------------------------------- */

static void bdata_json(const struct bdata *bd, int standard, struct jbuf *out)
{
    jb_raw(out, "{\"brokerAddrs\":{");
    for (size_t i = 0; i < bd->n; i++) {
        if (i)
            jb_putc(out, ',');
        if (standard)
            jb_putc(out, '"');
        jb_i64(out, bd->a[i].id); /* fastjson writes a Long map key without quotes */
        if (standard)
            jb_putc(out, '"');
        jb_putc(out, ':');
        jb_str(out, bd->a[i].addr, standard);
    }
    jb_raw(out, "},\"brokerName\":");
    jb_str(out, bd->name, standard);
    jb_raw(out, ",\"cluster\":");
    jb_str(out, bd->cluster, standard);
    jb_putc(out, '}');
}

static void qdata_json(const struct qdata *q, int standard, struct jbuf *out)
{
    jb_raw(out, "{\"brokerName\":");
    jb_str(out, q->broker, standard);
    jb_raw(out, ",\"perm\":");
    jb_i64(out, q->perm);
    jb_raw(out, ",\"readQueueNums\":");
    jb_i64(out, q->read);
    jb_raw(out, ",\"topicSysFlag\":");
    jb_i64(out, q->sysflag);
    jb_raw(out, ",\"writeQueueNums\":");
    jb_i64(out, q->write);
    jb_putc(out, '}');
}

int route_topic_json(route_t *rt, const char *topic, const char *order_conf, int standard,
                     struct jbuf *out)
{
    int rc = FERRY_ENOTFOUND, nb = 0;
    size_t start = out->len;
    pthread_rwlock_rdlock(&rt->lock);
    struct topic *t = smap_get(&rt->topics, topic);
    if (!t)
        goto out;
    jb_raw(out, "{\"brokerDatas\":[");
    for (size_t i = 0; i < t->n; i++) {
        struct bdata *bd = smap_get(&rt->brokers, t->q[i].broker);
        if (!bd)
            continue;
        if (nb++)
            jb_putc(out, ',');
        bdata_json(bd, standard, out);
    }
    if (nb == 0)
        goto out;
    jb_raw(out, "],\"filterServerTable\":{}");
    if (order_conf) {
        jb_raw(out, ",\"orderTopicConf\":");
        jb_str(out, order_conf, standard);
    }
    jb_raw(out, ",\"queueDatas\":[");
    for (size_t i = 0; i < t->n; i++) {
        if (i)
            jb_putc(out, ',');
        qdata_json(&t->q[i], standard, out);
    }
    jb_raw(out, "]}");
    rc = 0;
out:
    pthread_rwlock_unlock(&rt->lock);
    if (rc != 0 && out->p) {
        out->len = start; /* nothing half-written is left behind */
        out->p[start] = 0;
    }
    return rc;
}

void route_cluster_json(route_t *rt, int standard, struct jbuf *out)
{
    pthread_rwlock_rdlock(&rt->lock);
    struct smap_ent **v = smap_sorted(&rt->brokers);
    jb_raw(out, "{\"brokerAddrTable\":{");
    for (size_t i = 0; i < rt->brokers.n; i++) {
        if (i)
            jb_putc(out, ',');
        jb_key(out, v[i]->key, standard);
        bdata_json(v[i]->val, standard, out);
    }
    ferry_free(v);
    v = smap_sorted(&rt->clusters);
    jb_raw(out, "},\"clusterAddrTable\":{");
    for (size_t i = 0; i < rt->clusters.n; i++) {
        const struct cset *cs = v[i]->val;
        if (i)
            jb_putc(out, ',');
        jb_key(out, v[i]->key, standard);
        jb_putc(out, '[');
        for (size_t j = 0; j < cs->n; j++) {
            if (j)
                jb_putc(out, ',');
            jb_str(out, cs->names[j], standard);
        }
        jb_putc(out, ']');
    }
    ferry_free(v);
    jb_raw(out, "}}");
    pthread_rwlock_unlock(&rt->lock);
}

/* {"brokerAddr":..,"topicList":[sorted keys of @set]} (the set's values are unused). */
static void topic_list_json(const struct smap *set, const char *broker_addr, struct jbuf *out)
{
    struct smap_ent **v = smap_sorted(set);
    jb_putc(out, '{');
    if (broker_addr) {
        jb_raw(out, "\"brokerAddr\":");
        jb_str(out, broker_addr, 0);
        jb_putc(out, ',');
    }
    jb_raw(out, "\"topicList\":[");
    for (size_t i = 0; i < set->n; i++) {
        if (i)
            jb_putc(out, ',');
        jb_str(out, v[i]->key, 0);
    }
    jb_raw(out, "]}");
    ferry_free(v);
}

void route_topics_json(route_t *rt, struct jbuf *out)
{
    pthread_rwlock_rdlock(&rt->lock);
    topic_list_json(&rt->topics, NULL, out);
    pthread_rwlock_unlock(&rt->lock);
}

void route_cluster_topics_json(route_t *rt, const char *cluster, struct jbuf *out)
{
    struct smap set;
    smap_init(&set);
    pthread_rwlock_rdlock(&rt->lock);
    const struct cset *cs = smap_get(&rt->clusters, cluster);
    for (size_t i = 0; cs && i < cs->n; i++)
        for (struct smap_ent *e = smap_first(&rt->topics); e; e = smap_next(&rt->topics, e))
            if (topic_find(e->val, cs->names[i]))
                smap_put(&set, e->key, e->val);
    pthread_rwlock_unlock(&rt->lock);
    topic_list_json(&set, NULL, out);
    smap_clear(&set, NULL);
}

void route_system_topics_json(route_t *rt, struct jbuf *out)
{
    struct smap set;
    smap_init(&set);
    pthread_rwlock_rdlock(&rt->lock);
    for (struct smap_ent *e = smap_first(&rt->clusters); e; e = smap_next(&rt->clusters, e)) {
        const struct cset *cs = e->val;
        smap_put(&set, e->key, NULL);
        for (size_t i = 0; i < cs->n; i++)
            smap_put(&set, cs->names[i], NULL);
    }
    struct smap_ent **v = smap_sorted(&rt->brokers);
    const char *addr = NULL;
    for (size_t i = 0; i < rt->brokers.n && !addr; i++) {
        const struct bdata *bd = v[i]->val;
        if (bd->n)
            addr = bd->a[0].addr;
    }
    topic_list_json(&set, addr, out);
    ferry_free(v);
    pthread_rwlock_unlock(&rt->lock);
    smap_clear(&set, NULL);
}

void route_unit_topics_json(route_t *rt, int which, struct jbuf *out)
{
    struct smap set;
    smap_init(&set);
    pthread_rwlock_rdlock(&rt->lock);
    for (struct smap_ent *e = smap_first(&rt->topics); e; e = smap_next(&rt->topics, e)) {
        const struct topic *t = e->val;
        if (t->n == 0)
            continue;
        int f = t->q[0].sysflag; /* Java looks at one queue data only */
        int unit = (f & FLAG_UNIT) != 0, sub = (f & FLAG_UNIT_SUB) != 0;
        if ((which == 0 && unit) || (which == 1 && sub) || (which == 2 && !unit && sub))
            smap_put(&set, e->key, NULL);
    }
    pthread_rwlock_unlock(&rt->lock);
    topic_list_json(&set, NULL, out);
    smap_clear(&set, NULL);
}
