/* Small helpers shared by the broker's processors: a growable string with JSON escaping, a
 * string-keyed hash map, request-field parsing with Java-like error remarks, deferred replies,
 * topic-name rules (Java TopicValidator), host parsing and TAG subscription filters.
 *
 * Failure modes: request fields are untrusted; every parser reports a problem as a remark for
 * a SYSTEM_ERROR answer instead of failing hard. Allocation failures abort (alloc.h). */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- sbuf ----------------------------------------------------------------------------- */

void bsb_init(struct sbuf *sb)
{
    sb->p = NULL;
    sb->len = sb->cap = 0;
}

void bsb_free(struct sbuf *sb)
{
    ferry_free(sb->p);
    bsb_init(sb);
}

static void bsb_reserve(struct sbuf *sb, size_t more)
{
    if (sb->len + more + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + more + 1)
        cap *= 2;
    sb->p = ferry_realloc(sb->p, cap);
    sb->cap = cap;
}

void bsb_add(struct sbuf *sb, const void *s, size_t n)
{
    bsb_reserve(sb, n);
    if (n)
        memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = 0;
}

void bsb_str(struct sbuf *sb, const char *s)
{
    bsb_add(sb, s, strlen(s));
}

void bsb_fmt(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    bsb_reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void bsb_json(struct sbuf *sb, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    bsb_reserve(sb, n + 2);
    bsb_add(sb, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            bsb_add(sb, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            bsb_add(sb, e, 6);
        } else {
            bsb_add(sb, &s[i], 1);
        }
    }
    bsb_add(sb, "\"", 1);
}

void bsb_jstr(struct sbuf *sb, const char *s)
{
    bsb_json(sb, s, strlen(s));
}

void bsb_trim_comma(struct sbuf *sb)
{
    if (sb->len && sb->p[sb->len - 1] == ',')
        sb->p[--sb->len] = 0;
}

/* ---- smap ----------------------------------------------------------------------------- */

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void bmap_init(struct bmap *m)
{
    m->tab = NULL;
    m->cap = m->n = 0;
}

void bmap_clear(struct bmap *m, void (*free_val)(void *))
{
    for (uint32_t i = 0; i < m->cap; i++) {
        struct bmap_ent *e = m->tab[i];
        while (e) {
            struct bmap_ent *next = e->next;
            if (free_val)
                free_val(e->val);
            ferry_free(e->key);
            ferry_free(e);
            e = next;
        }
    }
    ferry_free(m->tab);
    bmap_init(m);
}

static struct bmap_ent **bmap_slot(const struct bmap *m, const char *key, uint32_t h)
{
    struct bmap_ent **pp = &m->tab[h & (m->cap - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

void *bmap_get(const struct bmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    struct bmap_ent **pp = bmap_slot(m, key, str_hash(key));
    return *pp ? (*pp)->val : NULL;
}

static void bmap_grow(struct bmap *m)
{
    uint32_t cap = m->cap ? m->cap * 2 : 16;
    struct bmap_ent **tab = ferry_calloc(cap, sizeof *tab);
    for (uint32_t i = 0; i < m->cap; i++) {
        struct bmap_ent *e = m->tab[i];
        while (e) {
            struct bmap_ent *next = e->next;
            e->next = tab[e->hash & (cap - 1)];
            tab[e->hash & (cap - 1)] = e;
            e = next;
        }
    }
    ferry_free(m->tab);
    m->tab = tab;
    m->cap = cap;
}

void *bmap_put(struct bmap *m, const char *key, void *val)
{
    if (m->n + 1 > m->cap)
        bmap_grow(m);
    uint32_t h = str_hash(key);
    struct bmap_ent **pp = bmap_slot(m, key, h);
    if (*pp) {
        void *old = (*pp)->val;
        (*pp)->val = val;
        return old;
    }
    struct bmap_ent *e = ferry_calloc(1, sizeof *e);
    e->hash = h;
    e->key = ferry_strdup(key);
    e->val = val;
    *pp = e;
    m->n++;
    return NULL;
}

void *bmap_del(struct bmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    struct bmap_ent **pp = bmap_slot(m, key, str_hash(key));
    struct bmap_ent *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    void *val = e->val;
    ferry_free(e->key);
    ferry_free(e);
    m->n--;
    return val;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **bmap_sorted_keys(const struct bmap *m)
{
    const char **keys = ferry_malloc((m->n ? m->n : 1) * sizeof *keys);
    uint32_t k = 0;
    for (uint32_t i = 0; i < m->cap; i++)
        for (struct bmap_ent *e = m->tab[i]; e; e = e->next)
            keys[k++] = e->key;
    qsort(keys, k, sizeof *keys, cmp_str);
    return keys;
}

/* ---- request fields ------------------------------------------------------------------- */

int bhdr_str(const struct rcmd *req, const char *key, char *buf, size_t cap)
{
    const struct rstr *v = rcmd_ext_get(req, key);
    buf[0] = 0;
    if (!v || !v->p || v->len == 0)
        return HDR_MISSING;
    if (v->len >= cap)
        return HDR_BAD;
    memcpy(buf, v->p, v->len);
    buf[v->len] = 0;
    return HDR_OK;
}

int bhdr_i64(const struct rcmd *req, const char *key, int64_t *out)
{
    int rc = rcmd_ext_get_i64(req, key, out);
    if (rc == 0)
        return HDR_OK;
    return rc == FERRY_ENOTFOUND ? HDR_MISSING : HDR_BAD;
}

int bhdr_bool(const struct rcmd *req, const char *key, int *out)
{
    const struct rstr *v = rcmd_ext_get(req, key);
    if (!v || !v->p || v->len == 0)
        return HDR_MISSING;
    /* Java Boolean.parseBoolean: "true" in any case is true, anything else false. */
    *out = v->len == 4 && strncasecmp(v->p, "true", 4) == 0;
    return HDR_OK;
}

void bhdrs_init(struct hdrs *h, const struct rcmd *req)
{
    h->req = req;
    h->bad = 0;
    h->remark[0] = 0;
}

static void bhdrs_fail(struct hdrs *h, const char *key, int what)
{
    if (h->bad)
        return;
    h->bad = 1;
    const struct rstr *v = rcmd_ext_get(h->req, key);
    if (what == HDR_MISSING)
        snprintf(h->remark, sizeof h->remark, "the custom field <%s> is null", key);
    else
        snprintf(h->remark, sizeof h->remark, "the custom field <%s> is not valid: \"%.*s\"", key,
                 v && v->len < 64 ? (int)v->len : 64, v && v->p ? v->p : "");
}

void bhdrs_str(struct hdrs *h, const char *key, char *buf, size_t cap, int required)
{
    int rc = bhdr_str(h->req, key, buf, cap);
    if (rc == HDR_BAD || (rc == HDR_MISSING && required))
        bhdrs_fail(h, key, rc);
    if (rc != HDR_OK)
        buf[0] = 0;
}

void bhdrs_i64(struct hdrs *h, const char *key, int64_t *out, int64_t def, int required)
{
    int rc = bhdr_i64(h->req, key, out);
    if (rc == HDR_BAD || (rc == HDR_MISSING && required))
        bhdrs_fail(h, key, rc);
    if (rc != HDR_OK)
        *out = def;
}

void bhdrs_i32(struct hdrs *h, const char *key, int32_t *out, int32_t def, int required)
{
    int64_t v;
    int rc = bhdr_i64(h->req, key, &v);
    if (rc == HDR_OK && (v < INT32_MIN || v > INT32_MAX))
        rc = HDR_BAD;
    if (rc == HDR_BAD || (rc == HDR_MISSING && required))
        bhdrs_fail(h, key, rc);
    *out = rc == HDR_OK ? (int32_t)v : def;
}

void bhdrs_bool(struct hdrs *h, const char *key, int *out, int def)
{
    if (bhdr_bool(h->req, key, out) != HDR_OK)
        *out = def;
}

void broker_respond_sb(conn_t *conn, const struct rcmd *req, struct sbuf *sb)
{
    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    resp.body = (const uint8_t *)sb->p;
    resp.body_len = sb->len;
    remoting_respond(conn, &resp);
    bsb_free(sb);
}

int broker_respond(conn_t *conn, const struct rcmd *req, int32_t code, const char *fmt, ...)
{
    char remark[512];
    struct rcmd resp;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(remark, sizeof remark, fmt, ap);
        va_end(ap);
    }
    rcmd_init_response(&resp, req, code, fmt ? remark : NULL);
    return remoting_respond(conn, &resp);
}

void broker_reply_init(struct reply_to *rt, conn_t *conn, const struct rcmd *req)
{
    remoting_conn_ref(conn);
    rt->conn = conn;
    rt->opaque = req->opaque;
    rt->flag = req->flag;
    rt->ser = req->ser;
}

void broker_reply_init_resp(const struct reply_to *rt, struct rcmd *resp, int32_t code,
                            const char *remark)
{
    struct rcmd req;
    rcmd_init_request(&req, 0);
    req.opaque = rt->opaque;
    req.flag = rt->flag;
    req.ser = rt->ser;
    rcmd_init_response(resp, &req, code, remark);
}

void broker_reply_done(struct reply_to *rt)
{
    if (rt->conn)
        remoting_conn_unref(rt->conn);
    rt->conn = NULL;
}

/* ---- names ---------------------------------------------------------------------------- */

int broker_name_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(isalnum(c) || c == '%' || c == '|' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int topics_name_check(const char *topic, char *remark, size_t cap)
{
    int blank = 1;
    for (const char *p = topic; *p; p++)
        if (!isspace((unsigned char)*p))
            blank = 0;
    if (blank) {
        snprintf(remark, cap, "The specified topic is blank.");
        return -1;
    }
    if (!broker_name_ok(topic)) {
        snprintf(remark, cap,
                 "The specified topic contains illegal characters, allowing only "
                 "^[%%|a-zA-Z0-9_-]+$");
        return -1;
    }
    if (strlen(topic) > MSG_MAX_TOPIC_LEN) {
        snprintf(remark, cap, "The specified topic is longer than topic max length.");
        return -1;
    }
    return 0;
}

int topics_is_system(const struct broker *b, const char *topic)
{
    if (strncmp(topic, "rmq_sys_", 8) == 0)
        return 1;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&b->topics.lock);
    int sys = bmap_get(&b->topics.system, topic) != NULL;
    pthread_rwlock_unlock((pthread_rwlock_t *)&b->topics.lock);
    return sys;
}

int topics_not_allowed_send(const char *topic)
{
    static const char *const names[] = {TOPIC_SCHEDULE,    TOPIC_TRANS_HALF, TOPIC_TRANS_OP_HALF,
                                        TOPIC_TRANS_CHECK, TOPIC_SELF_TEST,  TOPIC_OFFSET_MOVED};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(topic, names[i]) == 0)
            return 1;
    return 0;
}

/* ---- hosts ---------------------------------------------------------------------------- */

int broker_host_parse(const char *s, struct msg_host *h)
{
    char ip[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(s, ':');
    if (!colon)
        return FERRY_EINVAL;
    size_t n = (size_t)(colon - s);
    if (n > 1 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof ip)
        return FERRY_EINVAL;
    memcpy(ip, s, n);
    ip[n] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return FERRY_EINVAL;
    memset(h, 0, sizeof *h);
    h->port = (uint32_t)port;
    if (inet_pton(AF_INET, ip, h->addr) == 1)
        return 0;
    uint8_t a6[16];
    if (inet_pton(AF_INET6, ip, a6) != 1)
        return FERRY_EINVAL;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a6, mapped, 12) == 0) {
        memcpy(h->addr, a6 + 12, 4); /* v4-mapped: clients decode 4-byte hosts only */
        return 0;
    }
    memcpy(h->addr, a6, 16);
    h->v6 = 1;
    return 0;
}

/* ---- tag filters ---------------------------------------------------------------------- */

void bfilter_build(struct tag_filter *f, const char *expr)
{
    memset(f, 0, sizeof *f);
    if (!expr || !*expr || strcmp(expr, "*") == 0) {
        f->all = 1;
        return;
    }
    size_t len = strlen(expr);
    f->codes = ferry_malloc((len / 2 + 2) * sizeof *f->codes);
    const char *p = expr;
    for (;;) {
        const char *sep = strstr(p, "||");
        const char *end = sep ? sep : p + strlen(p);
        const char *a = p, *z = end;
        while (a < z && isspace((unsigned char)*a))
            a++;
        while (z > a && isspace((unsigned char)z[-1]))
            z--;
        if (z > a)
            f->codes[f->n++] = java_string_hash(a, (size_t)(z - a));
        if (!sep)
            break;
        p = sep + 2;
    }
}

void bfilter_free(struct tag_filter *f)
{
    ferry_free(f->codes);
    f->codes = NULL;
    f->n = 0;
}

void bfilter_copy(struct tag_filter *dst, const struct tag_filter *src)
{
    *dst = *src;
    if (src->codes) {
        dst->codes = ferry_malloc((size_t)(src->n ? src->n : 1) * sizeof *dst->codes);
        memcpy(dst->codes, src->codes, (size_t)src->n * sizeof *dst->codes);
    }
}

int64_t broker_phys_mem(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return 1LL << 32;
    return (int64_t)pages * size;
}

/* ---- fastjson's unquoted integer keys ------------------------------------------------- */

char *bjson_quote_int_keys(const char *in, size_t len)
{
    struct sbuf sb;
    bsb_init(&sb);
    bsb_reserve(&sb, len + 16);
    int in_str = 0;
    char prev = 0; /* last significant character outside strings */
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (in_str) {
            bsb_add(&sb, &c, 1);
            if (c == '\\' && i + 1 < len) {
                bsb_add(&sb, &in[++i], 1);
            } else if (c == '"') {
                in_str = 0;
                prev = '"';
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
            bsb_add(&sb, &c, 1);
            continue;
        }
        if ((prev == '{' || prev == ',') && (isdigit((unsigned char)c) || c == '-')) {
            size_t j = i + 1;
            while (j < len && isdigit((unsigned char)in[j]))
                j++;
            size_t k = j;
            while (k < len && isspace((unsigned char)in[k]))
                k++;
            if (k < len && in[k] == ':') {
                bsb_add(&sb, "\"", 1);
                bsb_add(&sb, in + i, j - i);
                bsb_add(&sb, "\"", 1);
                i = j - 1;
                prev = '"';
                continue;
            }
        }
        if (!isspace((unsigned char)c))
            prev = c;
        bsb_add(&sb, &c, 1);
    }
    if (!sb.p)
        bsb_add(&sb, "", 0);
    return sb.p;
}

/* ---- metadata files ------------------------------------------------------------------- */

/* The whole file must be one JSON object: cJSON_Parse alone accepts a valid prefix, so
 * garbage starting with a digit parsed as a number and loaded as an empty table. */
static cJSON *parse_meta(const char *buf, size_t len)
{
    if (memchr(buf, 0, len))
        return NULL;
    char *fixed = bjson_quote_int_keys(buf, len);
    cJSON *j = cJSON_ParseWithOpts(fixed, NULL, 1);
    ferry_free(fixed);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

int bmeta_load_json(const char *path, cJSON **out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = fs_read_file(path, 1, &buf, &len, META_FILE_MAX);
    if (rc == -ENOENT)
        return 0; /* first start: neither the file nor its .bak exists */
    if (rc == 0 && len == 0) {
        /* The broker never writes an empty file (fs_replace: tmp, fsync, rename), and the
         * .bak was tried already: an empty table here would overwrite the real one. */
        ferry_free(buf);
        snprintf(err, errlen, "%s: empty (and no usable .bak)", path);
        return FERRY_ECORRUPT;
    }
    if (rc == 0) {
        *out = parse_meta(buf, len);
        ferry_free(buf);
        if (*out)
            return 0;
    }
    /* Unreadable or not JSON: the previous version is the fallback. */
    char bak[4200];
    snprintf(bak, sizeof bak, "%s.bak", path);
    if (fs_read_file(bak, 0, &buf, &len, META_FILE_MAX) == 0) {
        *out = parse_meta(buf, len);
        ferry_free(buf);
        if (*out) {
            log_warn(LOG_BROKER, "%s is damaged; loaded the previous version %s", path, bak);
            return 0;
        }
    }
    snprintf(err, errlen, "%s: %s", path,
             rc ? ferry_strerror(rc) : "not valid JSON (and no usable .bak)");
    return FERRY_ECORRUPT;
}

int bmeta_write(broker_t *b, const char *path, const struct sbuf *sb)
{
    (void)b;
    int rc = fs_replace(path, sb->p ? sb->p : "", sb->len);
    if (rc)
        log_error(LOG_BROKER, "write %s: %s", path, ferry_strerror(rc));
    return rc;
}

int64_t bjson_i64(const cJSON *obj, const char *key, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(v))
        return (int64_t)v->valuedouble;
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        long long x = strtoll(v->valuestring, &end, 10);
        if (!*end)
            return x;
    }
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return def;
}

int bjson_bool(const cJSON *obj, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsString(v))
        return strcasecmp(v->valuestring, "true") == 0;
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0;
    return def;
}

const char *bjson_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- stored records copied into new messages (schedule, send-back, transactions) ---- */

void brec_to_msg(const struct msg_view *v, struct store_msg *m)
{
    memset(m, 0, sizeof *m);
    m->queue_id = v->queue_id;
    m->flag = v->flag;
    m->sys_flag = v->sys_flag & ~(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6);
    m->born_ts = v->born_ts;
    const uint8_t *bh = v->rec + 48; /* BORNHOST follows BORNTIMESTAMP */
    m->born_host.v6 = (v->sys_flag & SYSFLAG_BORNHOST_V6) != 0;
    size_t alen = m->born_host.v6 ? 16 : 4;
    memcpy(m->born_host.addr, bh, alen);
    m->born_host.port = (uint32_t)bh[alen] << 24 | (uint32_t)bh[alen + 1] << 16 |
                        (uint32_t)bh[alen + 2] << 8 | bh[alen + 3];
    m->reconsume_times = v->reconsume_times;
    m->prepared_tx_offset = v->prepared_tx_offset;
    m->body = v->body;
    m->body_len = v->body_len;
}

void brec_props_copy(struct sbuf *sb, const char *p, size_t n, const char *const *drop,
                     int drop_timer)
{
    const char *end = p + n;
    while (p < end) {
        const char *pe = memchr(p, PROP_PAIR_SEP, (size_t)(end - p));
        if (!pe)
            pe = end;
        const char *ns = memchr(p, PROP_NAME_SEP, (size_t)(pe - p));
        size_t nl = ns ? (size_t)(ns - p) : 0;
        int skip = !ns || (nl == strlen(MSG_CRC_PROP) && memcmp(p, MSG_CRC_PROP, nl) == 0) ||
                   (drop_timer && ((nl > 6 && memcmp(p, "TIMER_", 6) == 0) ||
                                   (nl == 18 && memcmp(p, "__STARTDELIVERTIME", 18) == 0)));
        for (int i = 0; !skip && drop && drop[i]; i++)
            skip = nl == strlen(drop[i]) && memcmp(p, drop[i], nl) == 0;
        if (!skip)
            brec_prop_add(sb, p, nl, ns + 1, (size_t)(pe - ns - 1));
        p = pe + 1;
    }
}

void brec_prop_add(struct sbuf *sb, const char *name, size_t nlen, const char *val, size_t vlen)
{
    char sep = PROP_NAME_SEP, pair = PROP_PAIR_SEP;
    if (sb->len && sb->p[sb->len - 1] != PROP_PAIR_SEP)
        bsb_add(sb, &pair, 1);
    bsb_add(sb, name, nlen);
    bsb_add(sb, &sep, 1);
    bsb_add(sb, val, vlen);
}

int brec_real_target(const struct msg_view *v, char *topic, size_t cap, int32_t *qid)
{
    size_t tl, ql;
    char q[16];
    const char *t = msg_prop_get(v->props, v->props_len, "REAL_TOPIC", &tl);
    const char *qs = msg_prop_get(v->props, v->props_len, "REAL_QID", &ql);
    if (!t || !tl || tl >= cap || !qs || !ql || ql >= sizeof q)
        return FERRY_EINVAL;
    memcpy(topic, t, tl);
    topic[tl] = 0;
    memcpy(q, qs, ql);
    q[ql] = 0;
    *qid = atoi(q);
    return 0;
}

int bwait_inactive(pthread_mutex_t *mu, pthread_cond_t *cond, const int *active, const int *stop,
                   int timeout_ms)
{
    int rc = 0;
    struct timespec deadline = clock_deadline_ts(timeout_ms);
    pthread_mutex_lock(mu);
    pthread_cond_broadcast(cond); /* wake the thread to see the broker's role now */
    while (*active && !*stop && rc == 0)
        rc = pthread_cond_timedwait(cond, mu, &deadline);
    int idle = !*active || *stop;
    pthread_mutex_unlock(mu);
    return idle ? 0 : FERRY_ETIMEDOUT;
}
