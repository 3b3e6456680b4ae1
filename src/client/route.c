/* Topic routes from the name servers (protocol/REMOTING.md §2.3.3), cached per topic and
 * refetched after 30 s or after a send error; and the connections: one remoting client per
 * name server and per broker address, reconnected on use after a loss. */
#include "client/client_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PERM_WRITE 0x2
#define PERM_READ  0x4

/* fastjson writes integer map keys unquoted ({0:"a"}): quote every key that is a bare number
 * (after '{' or ',' outside strings, followed by ':'). Returns a new NUL-terminated buffer. */
static char *quote_int_keys(const char *s, size_t len)
{
    char *out = ferry_malloc(2 * len + 1);
    size_t o = 0, i = 0;
    int in_str = 0;
    char prev = 0; /* last non-space character outside strings */
    while (i < len) {
        char c = s[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = s[++i];
            else if (c == '"')
                in_str = 0;
            i++;
            continue;
        }
        if ((prev == '{' || prev == ',') && (isdigit((unsigned char)c) || c == '-')) {
            size_t j = i + 1, k;
            while (j < len && isdigit((unsigned char)s[j]))
                j++;
            for (k = j; k < len && isspace((unsigned char)s[k]); k++)
                ;
            if (k < len && s[k] == ':') {
                out[o++] = '"';
                memcpy(out + o, s + i, j - i);
                o += j - i;
                out[o++] = '"';
                prev = '"';
                i = j;
                continue;
            }
        }
        if (c == '"')
            in_str = 1;
        if (!isspace((unsigned char)c))
            prev = c;
        out[o++] = c;
        i++;
    }
    out[o] = 0;
    return out;
}

static int cmp_qd(const void *a, const void *b)
{
    const cJSON *x = *(cJSON *const *)a, *y = *(cJSON *const *)b;
    const char *nx = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "brokerName"));
    const char *ny = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(y, "brokerName"));
    return strcmp(nx ? nx : "", ny ? ny : "");
}

static int parse_brokers(const cJSON *bds, struct route *out)
{
    const cJSON *bd;
    int n = cJSON_GetArraySize(bds);
    out->brokers = ferry_calloc((size_t)n + 1, sizeof *out->brokers);
    cJSON_ArrayForEach(bd, bds)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bd, "brokerName"));
        const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs");
        if (!name || !cJSON_IsObject(addrs))
            return FERRY_EPROTO;
        const char *master = NULL, *slave = NULL;
        long slave_id = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, addrs)
        {
            char *end;
            long id = a->string ? strtol(a->string, &end, 10) : -1;
            const char *v = cJSON_GetStringValue(a);
            if (!a->string || *end || id < 0 || !v || !*v || strlen(v) >= CLIENT_ADDR_MAX)
                continue;
            if (id == 0)
                master = v;
            else if (!slave || id < slave_id)
                slave = v, slave_id = id;
        }
        if ((!master && !slave) || strlen(name) >= CLIENT_NAME_MAX)
            continue; /* no address: neither readable nor writable */
        struct route_broker *rb = &out->brokers[out->nbrokers++];
        strcpy(rb->name, name);
        strcpy(rb->addr, master ? master : "");
        strcpy(rb->slave, slave ? slave : "");
    }
    return 0;
}

static int parse_queues(const cJSON *qds, int max_queues, struct route *out)
{
    int n = cJSON_GetArraySize(qds), total = 0, rtotal = 0, rc = 0;
    const cJSON **v = ferry_calloc((size_t)n + 1, sizeof *v);
    const cJSON *qd;
    int k = 0;
    cJSON_ArrayForEach(qd, qds) v[k++] = qd;
    qsort(v, (size_t)n, sizeof *v, cmp_qd);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (int i = 0; i < n; i++) {
            const char *name =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v[i], "brokerName"));
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(v[i], "writeQueueNums");
            const cJSON *rq = cJSON_GetObjectItemCaseSensitive(v[i], "readQueueNums");
            const cJSON *perm = cJSON_GetObjectItemCaseSensitive(v[i], "perm");
            if (!name || !cJSON_IsNumber(w) || !cJSON_IsNumber(perm)) {
                rc = FERRY_EPROTO;
                break;
            }
            int nr = cJSON_IsNumber(rq) ? rq->valueint : 0;
            if ((perm->valueint & PERM_READ) && route_has_broker(out, name) && nr > 0 &&
                nr <= 65536) {
                for (int q = 0; q < nr; q++) {
                    if (pass == 1) {
                        strcpy(out->rmqs[out->nrmq].broker, name);
                        out->rmqs[out->nrmq++].qid = q;
                    } else {
                        rtotal++;
                    }
                }
            }
            int nq = w->valueint;
            if (max_queues > 0 && nq > max_queues)
                nq = max_queues;
            if (!(perm->valueint & PERM_WRITE) || !route_addr(out, name) || nq <= 0)
                continue;
            for (int q = 0; q < nq && nq <= 65536; q++) {
                if (pass == 1) {
                    strcpy(out->mqs[out->nmq].broker, name);
                    out->mqs[out->nmq++].qid = q;
                } else {
                    total++;
                }
            }
        }
        if (pass == 0) {
            out->mqs = ferry_calloc((size_t)total + 1, sizeof *out->mqs);
            out->rmqs = ferry_calloc((size_t)rtotal + 1, sizeof *out->rmqs);
        }
    }
    ferry_free(v);
    return rc;
}

int route_parse(const char *json, size_t len, int max_queues, struct route *out)
{
    char *fixed = quote_int_keys(json, len);
    cJSON *root = cJSON_Parse(fixed);
    int rc = FERRY_EPROTO;
    memset(out, 0, sizeof *out);
    ferry_free(fixed);
    if (!root)
        return FERRY_EPROTO;
    const cJSON *qds = cJSON_GetObjectItemCaseSensitive(root, "queueDatas");
    const cJSON *bds = cJSON_GetObjectItemCaseSensitive(root, "brokerDatas");
    if (cJSON_IsArray(qds) && cJSON_IsArray(bds) && (rc = parse_brokers(bds, out)) == 0)
        rc = parse_queues(qds, max_queues, out);
    cJSON_Delete(root);
    if (rc)
        route_clear(out);
    return rc;
}

void route_clear(struct route *r)
{
    ferry_free(r->mqs);
    ferry_free(r->rmqs);
    ferry_free(r->brokers);
    memset(r, 0, sizeof *r);
}

static const struct route_broker *route_broker_find(const struct route *r, const char *broker)
{
    for (int i = 0; i < r->nbrokers; i++)
        if (strcmp(r->brokers[i].name, broker) == 0)
            return &r->brokers[i];
    return NULL;
}

const char *route_addr(const struct route *r, const char *broker)
{
    const struct route_broker *rb = route_broker_find(r, broker);
    return rb && rb->addr[0] ? rb->addr : NULL;
}

const char *route_slave_addr(const struct route *r, const char *broker)
{
    const struct route_broker *rb = route_broker_find(r, broker);
    return rb && rb->slave[0] ? rb->slave : NULL;
}

int route_has_broker(const struct route *r, const char *broker)
{
    return route_broker_find(r, broker) != NULL;
}

int route_copy(struct route *dst, const struct route *src)
{
    dst->nmq = src->nmq;
    dst->nrmq = src->nrmq;
    dst->nbrokers = src->nbrokers;
    dst->mqs = ferry_calloc((size_t)src->nmq + 1, sizeof *dst->mqs);
    dst->rmqs = ferry_calloc((size_t)src->nrmq + 1, sizeof *dst->rmqs);
    memcpy(dst->rmqs, src->rmqs, (size_t)src->nrmq * sizeof *dst->rmqs);
    dst->brokers = ferry_calloc((size_t)src->nbrokers + 1, sizeof *dst->brokers);
    memcpy(dst->mqs, src->mqs, (size_t)src->nmq * sizeof *dst->mqs);
    memcpy(dst->brokers, src->brokers, (size_t)src->nbrokers * sizeof *dst->brokers);
    return 0;
}

/* ---- the cache ---- */

int route_cache_init(struct route_cache *rc, const char *namesrv)
{
    const char *p = namesrv;
    memset(rc, 0, sizeof *rc);
    pthread_mutex_init(&rc->lock, NULL);
    while (*p) {
        size_t n = strcspn(p, ";");
        const char *colon = memchr(p, ':', n);
        if (n > 0) {
            if (!colon || colon == p || colon + 1 == p + n || n >= CLIENT_ADDR_MAX)
                return FERRY_ECONFIG;
            rc->ns = ferry_realloc(rc->ns, (size_t)(rc->nns + 1) * sizeof *rc->ns);
            rc->ns[rc->nns] = ferry_calloc(1, n + 1);
            memcpy(rc->ns[rc->nns++], p, n);
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return rc->nns > 0 ? 0 : FERRY_ECONFIG;
}

void route_cache_close(struct route_cache *rc)
{
    pthread_mutex_lock(&rc->lock);
    rc->closed = 1;
    pthread_mutex_unlock(&rc->lock);
    /* Not under rc->lock: freeing a client runs its pending callbacks, which may take it. */
    for (int i = 0; i < rc->nconns; i++) {
        struct conn_slot *s = rc->conns[i];
        pthread_mutex_lock(&s->lock);
        remoting_client_free(s->cli);
        s->cli = NULL;
        pthread_mutex_unlock(&s->lock);
    }
}

void route_cache_destroy(struct route_cache *rc)
{
    route_cache_close(rc);
    for (int i = 0; i < rc->nconns; i++) {
        pthread_mutex_destroy(&rc->conns[i]->lock);
        ferry_free(rc->conns[i]);
    }
    for (int i = 0; i < rc->nroutes; i++) {
        route_clear(&rc->routes[i].r);
        route_snap_release(rc->routes[i].snap);
    }
    for (int i = 0; i < rc->nns; i++)
        ferry_free(rc->ns[i]);
    ferry_free(rc->conns);
    ferry_free(rc->routes);
    ferry_free(rc->ns);
    tls_ctx_unref(rc->tls);
    pthread_mutex_destroy(&rc->lock);
    memset(rc, 0, sizeof *rc);
}

int route_cache_tls(struct route_cache *rc, int use, int auth_server, const char *trust,
                    const char *cert, const char *key, size_t path_cap, const char *password,
                    size_t password_cap)
{
    struct tls_client_config cc = {use, auth_server, trust, cert, key, password};
    struct tls_config *storage;
    char err[512] = "";
    int ret;

    if (!memchr(trust, 0, path_cap) || !memchr(cert, 0, path_cap) || !memchr(key, 0, path_cap) ||
        !memchr(password, 0, password_cap))
        return FERRY_ECONFIG;
    storage = ferry_malloc(sizeof *storage);
    ret = tls_client_config_env(&cc, storage, err, sizeof err);
    if (ret == 0)
        ret = tls_client_ctx_new(&cc, &rc->tls, err, sizeof err);
    ferry_free(storage);
    if (ret != 0)
        log_error(LOG_CLIENT, "TLS: %s", err);
    return ret ? FERRY_ECONFIG : 0;
}

static struct conn_slot *slot_get(struct route_cache *rc, const char *addr)
{
    struct conn_slot *s = NULL;
    pthread_mutex_lock(&rc->lock);
    for (int i = 0; i < rc->nconns && !s; i++)
        if (strcmp(rc->conns[i]->addr, addr) == 0)
            s = rc->conns[i];
    if (!s && !rc->closed) {
        struct remoting_client_config cc;
        remoting_client_t *cli;
        int is_ns = 0;
        for (int i = 0; i < rc->nns; i++)
            is_ns |= strcmp(rc->ns[i], addr) == 0;
        remoting_client_config_init(&cc);
        cc.shared_io = rc->shared_io && !is_ns; /* name servers: route fetches wait on them */
        cc.tls = rc->tls;
        if (remoting_client_new(&cc, &cli) == 0) {
            if (rc->access_key[0])
                remoting_client_set_signer(cli, rc->access_key, rc->secret_key);
            for (int i = 0; i < rc->nhandlers; i++)
                remoting_client_register(cli, rc->handlers[i].code, rc->handlers[i].fn,
                                         rc->handlers[i].arg);
            s = ferry_calloc(1, sizeof *s);
            snprintf(s->addr, sizeof s->addr, "%s", addr);
            s->cli = cli;
            pthread_mutex_init(&s->lock, NULL);
            rc->conns = ferry_realloc(rc->conns, (size_t)(rc->nconns + 1) * sizeof *rc->conns);
            rc->conns[rc->nconns++] = s;
        }
    }
    if (rc->closed)
        s = NULL;
    pthread_mutex_unlock(&rc->lock);
    return s;
}

int route_cache_conn(struct route_cache *rc, const char *addr, int timeout_ms,
                     remoting_client_t **out)
{
    struct conn_slot *s = slot_get(rc, addr);
    char err[256] = "";
    int r = 0;
    if (!s)
        return FERRY_ESHUTDOWN;
    pthread_mutex_lock(&s->lock);
    if (!s->cli)
        r = FERRY_ESHUTDOWN;
    else if (!remoting_client_is_connected(s->cli)) {
        r = remoting_client_connect(s->cli, addr, timeout_ms > 0 ? timeout_ms : 1, err, sizeof err);
        if (r == -EISCONN)
            r = 0;
        if (r)
            log_warn(LOG_CLIENT, "connect %s: %s", addr, err);
        else
            atomic_fetch_add(&rc->connects, 1);
    }
    *out = s->cli;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Ask the name servers for @topic. 0, FERRY_ENOTFOUND (TOPIC_NOT_EXIST), or an error. */
static int fetch(struct route_cache *rc, const char *topic, int max_queues, int timeout_ms,
                 struct route *out)
{
    int r = -ENOTCONN;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    pthread_mutex_lock(&rc->lock);
    int start = rc->ns_next;
    pthread_mutex_unlock(&rc->lock);
    for (int i = 0; i < rc->nns; i++) {
        const char *addr = rc->ns[(start + i) % rc->nns];
        int left = (int)(deadline - clock_mono_ms());
        remoting_client_t *cli;
        struct rcmd req, *resp = NULL;
        if (left <= 0)
            return -ETIMEDOUT;
        if ((r = route_cache_conn(rc, addr, left, &cli)) != 0)
            goto next;
        rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
        rcmd_ext_add(&req, "topic", topic);
        if ((r = remoting_client_invoke_sync(cli, &req, left, &resp)) != 0)
            goto next;
        if (resp->code == RESP_SUCCESS)
            r = route_parse((const char *)resp->body, resp->body_len, max_queues, out);
        else
            r = resp->code == RESP_TOPIC_NOT_EXIST ? FERRY_ENOTFOUND : FERRY_EPROTO;
        rcmd_free(resp);
        return r;
    next:
        if (r == FERRY_ESHUTDOWN)
            return r;
        pthread_mutex_lock(&rc->lock);
        rc->ns_next = (start + i + 1) % rc->nns;
        pthread_mutex_unlock(&rc->lock);
    }
    return r;
}

static struct route_entry *entry_find(struct route_cache *rc, const char *topic)
{
    for (int i = 0; i < rc->nroutes; i++)
        if (strcmp(rc->routes[i].topic, topic) == 0)
            return &rc->routes[i];
    return NULL;
}

int route_cache_fetch(struct route_cache *rc, const char *topic, int timeout_ms, struct route *out)
{
    int r = fetch(rc, topic, 0, timeout_ms, out);
    return r == FERRY_ENOTFOUND ? FERRY_ENOROUTE : r;
}

void route_cache_on(struct route_cache *rc, int32_t code, remoting_handler_fn fn, void *arg)
{
    pthread_mutex_lock(&rc->lock);
    if (rc->nhandlers < ROUTE_HANDLERS_MAX) {
        rc->handlers[rc->nhandlers].code = code;
        rc->handlers[rc->nhandlers].fn = fn;
        rc->handlers[rc->nhandlers++].arg = arg;
    }
    pthread_mutex_unlock(&rc->lock);
}

char **route_cache_addrs(struct route_cache *rc, int *n)
{
    pthread_mutex_lock(&rc->lock);
    char **v = ferry_calloc((size_t)rc->nconns + 1, sizeof *v);
    int k = 0;
    for (int i = 0; i < rc->nconns; i++) {
        int is_ns = 0;
        for (int j = 0; j < rc->nns; j++)
            is_ns |= strcmp(rc->ns[j], rc->conns[i]->addr) == 0;
        if (!is_ns)
            v[k++] = ferry_strdup(rc->conns[i]->addr);
    }
    pthread_mutex_unlock(&rc->lock);
    *n = k;
    return v;
}

/* Make @fresh (taken over) @topic's route, fetched now. @locks rc->lock */
static struct route_entry *install(struct route_cache *rc, const char *topic, struct route *fresh)
{
    struct route_entry *e = entry_find(rc, topic);
    if (!e) {
        rc->routes = ferry_realloc(rc->routes, (size_t)(rc->nroutes + 1) * sizeof *rc->routes);
        e = &rc->routes[rc->nroutes++];
        memset(e, 0, sizeof *e);
        strcpy(e->topic, topic);
    }
    route_clear(&e->r);
    e->r = *fresh;
    e->fetched = clock_mono_ms();
    route_snap_release(e->snap); /* borrowers keep theirs; the next borrow copies anew */
    e->snap = NULL;
    return e;
}

int route_cache_install(struct route_cache *rc, const char *topic, struct route *fresh)
{
    if (strlen(topic) >= sizeof rc->routes[0].topic) {
        route_clear(fresh);
        return FERRY_EINVAL;
    }
    pthread_mutex_lock(&rc->lock);
    install(rc, topic, fresh);
    pthread_mutex_unlock(&rc->lock);
    return 0;
}

int route_cache_get(struct route_cache *rc, const char *topic, int timeout_ms, struct route *out)
{
    struct route fresh;
    struct route_entry *e;
    int r;
    if (strlen(topic) >= sizeof e->topic)
        return FERRY_EINVAL;
    pthread_mutex_lock(&rc->lock);
    e = entry_find(rc, topic);
    if (e && e->fetched && clock_mono_ms() - e->fetched < ROUTE_REFRESH_MS) {
        route_copy(out, &e->r);
        pthread_mutex_unlock(&rc->lock);
        return 0;
    }
    pthread_mutex_unlock(&rc->lock);
    r = fetch(rc, topic, 0, timeout_ms, &fresh);
    if (r == FERRY_ENOTFOUND)
        r = fetch(rc, DEFAULT_TOPIC, DEFAULT_TOPIC_QUEUES, timeout_ms, &fresh);
    if (r == 0 && fresh.nmq == 0) {
        route_clear(&fresh);
        r = FERRY_ENOROUTE;
    }
    pthread_mutex_lock(&rc->lock);
    e = r == 0 ? install(rc, topic, &fresh) : entry_find(rc, topic);
    if (e && e->r.nmq > 0) { /* a failed refresh keeps the old route */
        route_copy(out, &e->r);
        r = 0;
    } else if (r == FERRY_ENOTFOUND) {
        r = FERRY_ENOROUTE;
    }
    pthread_mutex_unlock(&rc->lock);
    return r;
}

void route_snap_release(struct route_snap *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        route_clear(&s->r);
        ferry_free(s);
    }
}

/* The snapshot of @e's route, referenced for the caller. @locks rc->lock */
static struct route_snap *entry_snap(struct route_entry *e)
{
    if (!e->snap) {
        e->snap = ferry_malloc(sizeof *e->snap);
        atomic_init(&e->snap->refs, 1); /* the entry's */
        route_copy(&e->snap->r, &e->r);
    }
    atomic_fetch_add_explicit(&e->snap->refs, 1, memory_order_relaxed);
    return e->snap;
}

int route_cache_borrow(struct route_cache *rc, const char *topic, int timeout_ms, int64_t now,
                       struct route_snap **out)
{
    struct route_entry *e;
    struct route r;
    int rc2;
    if (strlen(topic) >= sizeof e->topic)
        return FERRY_EINVAL;
    pthread_mutex_lock(&rc->lock);
    e = entry_find(rc, topic);
    if (e && e->fetched && now - e->fetched < ROUTE_REFRESH_MS) {
        *out = entry_snap(e);
        pthread_mutex_unlock(&rc->lock);
        return 0;
    }
    pthread_mutex_unlock(&rc->lock);
    /* Missing or old: the slow path fetches (or keeps the old route on a failed refresh). */
    if ((rc2 = route_cache_get(rc, topic, timeout_ms, &r)) != 0)
        return rc2;
    route_clear(&r);
    pthread_mutex_lock(&rc->lock);
    e = entry_find(rc, topic);
    if (e && e->r.nmq > 0) {
        *out = entry_snap(e);
    } else {
        rc2 = FERRY_ENOROUTE; /* a concurrent close or removal: cannot happen today */
    }
    pthread_mutex_unlock(&rc->lock);
    return rc2;
}

void route_cache_stale(struct route_cache *rc, const char *topic)
{
    pthread_mutex_lock(&rc->lock);
    struct route_entry *e = entry_find(rc, topic);
    if (e)
        e->fetched = 0;
    pthread_mutex_unlock(&rc->lock);
}

int route_cache_broadcast(struct route_cache *rc, const struct rcmd *req, int timeout_ms)
{
    int n, ok = 0;
    char **addrs = route_cache_addrs(rc, &n);
    for (int i = 0; i < n; i++) {
        remoting_client_t *cli;
        struct rcmd *resp = NULL;
        if (route_cache_conn(rc, addrs[i], timeout_ms, &cli) == 0 &&
            remoting_client_invoke_sync(cli, req, timeout_ms, &resp) == 0) {
            ok += resp->code == RESP_SUCCESS;
            rcmd_free(resp);
        }
        ferry_free(addrs[i]);
    }
    ferry_free(addrs);
    return ok;
}

void route_cache_refresh_all(struct route_cache *rc, int timeout_ms)
{
    pthread_mutex_lock(&rc->lock);
    int n = rc->nroutes;
    char **topics = ferry_calloc((size_t)n + 1, sizeof *topics);
    for (int i = 0; i < n; i++)
        topics[i] = ferry_strdup(rc->routes[i].topic);
    pthread_mutex_unlock(&rc->lock);
    for (int i = 0; i < n; i++) {
        struct route r;
        route_cache_stale(rc, topics[i]);
        if (route_cache_get(rc, topics[i], timeout_ms, &r) == 0)
            route_clear(&r);
        ferry_free(topics[i]);
    }
    ferry_free(topics);
}
