/* Decoding what a broker sends with REGISTER_BROKER (REMOTING.md §2.3.1): the JSON
 * RegisterBrokerBody, its zlib-compressed form (Java brokers with compressedRegister=true), and
 * the bare TopicConfigSerializeWrapper of brokers older than V3_0_11. Also the DataVersion JSON
 * of QUERY_DATA_VERSION.
 *
 * The bytes come from the network: every length is checked against what remains, the inflated
 * size is capped (REG_BODY_INFLATE_MAX) before it is allocated, and a malformed body is an
 * FERRY_EPROTO with a reason, never an assertion. Fields follow fastjson's leniency: numbers may
 * arrive as JSON numbers or numeric strings; missing fields keep Java's defaults. */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void reg_body_clear(struct reg_body *body)
{
    for (size_t i = 0; i < body->n; i++)
        ferry_free(body->topics[i].name);
    ferry_free(body->topics);
    memset(body, 0, sizeof *body);
}

static struct topic_conf *add_topic(struct reg_body *body, const char *name)
{
    if (body->n == body->cap) {
        body->cap = body->cap ? body->cap * 2 : 16;
        body->topics = ferry_realloc(body->topics, body->cap * sizeof *body->topics);
    }
    struct topic_conf *tc = &body->topics[body->n++];
    tc->name = ferry_strdup(name);
    tc->read_queues = tc->write_queues = 16; /* TopicConfig's defaults */
    tc->perm = 6;
    tc->sysflag = 0;
    return tc;
}

/* A JSON number or numeric string holding an integer in [lo, hi]. */
static int json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
            return -1;
        int64_t x = (int64_t)d;
        if (x < lo || x > hi)
            return -1;
        *out = x;
        return 0;
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        errno = 0;
        long long x = strtoll(v->valuestring, &end, 10);
        if (errno || *end || x < lo || x > hi)
            return -1;
        *out = x;
        return 0;
    }
    return -1;
}

/* Field @name of object @obj (@what names it in errors) into *@out when present (null counts
 * as absent). */
static int opt_int(const cJSON *obj, const char *what, const char *name, int64_t lo, int64_t hi,
                   int64_t *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (json_int(v, lo, hi, out) != 0) {
        snprintf(err, errlen, "%s.%s is not an integer in [%lld, %lld]", what, name, (long long)lo,
                 (long long)hi);
        return FERRY_EPROTO;
    }
    return 0;
}

static int dv_from_json(const cJSON *o, struct data_version *dv, char *err, size_t errlen)
{
    int64_t counter = 0, ts = clock_wall_ms(); /* a new Java DataVersion: now, 0 */
    int rc;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "dataVersion is not a JSON object");
        return FERRY_EPROTO;
    }
    if ((rc = opt_int(o, "dataVersion", "counter", INT64_MIN, INT64_MAX, &counter, err, errlen)) !=
            0 ||
        (rc = opt_int(o, "dataVersion", "timestamp", INT64_MIN, INT64_MAX, &ts, err, errlen)) != 0)
        return rc;
    dv->counter = counter;
    dv->timestamp = ts;
    return 0;
}

static int topic_from_json(const cJSON *t, struct reg_body *body, char *err, size_t errlen)
{
    int64_t v[4];
    static const char *const fields[] = {"readQueueNums", "writeQueueNums", "perm", "topicSysFlag"};
    if (!cJSON_IsObject(t)) {
        snprintf(err, errlen, "topicConfigTable[%s] is not a JSON object", t->string);
        return FERRY_EPROTO;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "topicName");
    if (name && !cJSON_IsNull(name) && (!cJSON_IsString(name) || !name->valuestring[0])) {
        snprintf(err, errlen, "topicConfigTable[%s].topicName is not a string", t->string);
        return FERRY_EPROTO;
    }
    v[0] = v[1] = 16;
    v[2] = 6;
    v[3] = 0;
    char what[160];
    snprintf(what, sizeof what, "topicConfigTable[%s]", t->string);
    for (int i = 0; i < 4; i++) {
        int rc = opt_int(t, what, fields[i], INT32_MIN, INT32_MAX, &v[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    struct topic_conf *tc = add_topic(body, cJSON_IsString(name) ? name->valuestring : t->string);
    tc->read_queues = (int32_t)v[0];
    tc->write_queues = (int32_t)v[1];
    tc->perm = (int32_t)v[2];
    tc->sysflag = (int32_t)v[3];
    return 0;
}

static int wrapper_from_json(const cJSON *w, struct reg_body *body, char *err, size_t errlen)
{
    int rc;
    body->dv.counter = 0;
    body->dv.timestamp = clock_wall_ms();
    if (!w || cJSON_IsNull(w))
        return 0;
    if (!cJSON_IsObject(w)) {
        snprintf(err, errlen, "topicConfigSerializeWrapper is not a JSON object");
        return FERRY_EPROTO;
    }
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(w, "dataVersion");
    if (dv && !cJSON_IsNull(dv) && (rc = dv_from_json(dv, &body->dv, err, errlen)) != 0)
        return rc;
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(w, "topicConfigTable");
    if (!table || cJSON_IsNull(table))
        return 0;
    if (!cJSON_IsObject(table)) {
        snprintf(err, errlen, "topicConfigTable is not a JSON object");
        return FERRY_EPROTO;
    }
    for (const cJSON *t = table->child; t; t = t->next)
        if ((rc = topic_from_json(t, body, err, errlen)) != 0)
            return rc;
    return 0;
}

static int decode_json(const uint8_t *p, size_t len, struct reg_body *body, char *err,
                       size_t errlen)
{
    int rc;
    cJSON *root = cJSON_ParseWithLength((const char *)p, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "the body is not a JSON object");
        cJSON_Delete(root);
        return FERRY_EPROTO;
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "topicConfigSerializeWrapper");
    if (!w && (cJSON_GetObjectItemCaseSensitive(root, "topicConfigTable") ||
               cJSON_GetObjectItemCaseSensitive(root, "dataVersion")))
        w = root; /* a bare TopicConfigSerializeWrapper: brokers older than V3_0_11 */
    rc = wrapper_from_json(w, body, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* Inflate a zlib stream into a new buffer of at most REG_BODY_INFLATE_MAX bytes. */
static int inflate_all(const uint8_t *p, size_t len, uint8_t **out, size_t *out_len, char *err,
                       size_t errlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) {
        snprintf(err, errlen, "zlib init failed");
        return FERRY_EPROTO;
    }
    size_t cap = len * 4 + 1024, n = 0;
    if (cap > REG_BODY_INFLATE_MAX)
        cap = REG_BODY_INFLATE_MAX;
    uint8_t *buf = ferry_malloc(cap);
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)len;
    int zr = Z_OK, rc = 0;
    while (zr != Z_STREAM_END) {
        if (n == cap) {
            if (cap >= REG_BODY_INFLATE_MAX) {
                snprintf(err, errlen, "compressed body inflates to more than %u bytes",
                         REG_BODY_INFLATE_MAX);
                rc = FERRY_EPROTO;
                break;
            }
            cap = cap * 2 > REG_BODY_INFLATE_MAX ? REG_BODY_INFLATE_MAX : cap * 2;
            buf = ferry_realloc(buf, cap);
        }
        zs.next_out = buf + n;
        zs.avail_out = (uInt)(cap - n);
        zr = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (zr != Z_OK && zr != Z_STREAM_END) {
            snprintf(err, errlen, "compressed body: %s",
                     zr == Z_BUF_ERROR ? "truncated zlib stream" : (zs.msg ? zs.msg : "bad data"));
            rc = FERRY_EPROTO;
            break;
        }
    }
    inflateEnd(&zs);
    if (rc != 0) {
        ferry_free(buf);
        return rc;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

struct rd {
    const uint8_t *p;
    size_t left;
};

/* A big-endian int32 length followed by that many bytes (a view into the buffer). */
static int read_chunk(struct rd *r, const uint8_t **chunk, size_t *clen)
{
    if (r->left < 4)
        return -1;
    uint32_t v =
        (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    if (v > INT32_MAX || v > r->left)
        return -1;
    *chunk = r->p;
    *clen = v;
    r->p += v;
    r->left -= v;
    return 0;
}

/* "<name> <readQueueNums> <writeQueueNums> <perm> <SINGLE_TAG|MULTI_TAG>" (TopicConfig.encode). */
static int topic_from_text(const uint8_t *p, size_t len, struct reg_body *body)
{
    char *s = ferry_malloc(len + 1), *parts[5], *save = NULL;
    memcpy(s, p, len);
    s[len] = 0;
    int n = 0, rc = -1;
    for (char *t = strtok_r(s, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
        parts[n < 5 ? n : 4] = t, n++;
    if (n == 5 && memchr(p, 0, len) == NULL) {
        int64_t v[3];
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++) {
            char *end;
            errno = 0;
            long long x = strtoll(parts[i + 1], &end, 10);
            ok = !errno && !*end && x >= INT32_MIN && x <= INT32_MAX;
            v[i] = x;
        }
        if (ok && (!strcmp(parts[4], "SINGLE_TAG") || !strcmp(parts[4], "MULTI_TAG"))) {
            struct topic_conf *tc = add_topic(body, parts[0]);
            tc->read_queues = (int32_t)v[0];
            tc->write_queues = (int32_t)v[1];
            tc->perm = (int32_t)v[2];
            rc = 0;
        }
    }
    ferry_free(s);
    return rc;
}

static int decode_compressed(const uint8_t *p, size_t len, struct reg_body *body, char *err,
                             size_t errlen)
{
    uint8_t *plain;
    size_t plen, clen;
    const uint8_t *chunk;
    int rc = inflate_all(p, len, &plain, &plen, err, errlen);
    if (rc != 0)
        return rc;
    struct rd r = {plain, plen};
    rc = FERRY_EPROTO;
    if (read_chunk(&r, &chunk, &clen) != 0) {
        snprintf(err, errlen, "compressed body: bad dataVersion length");
        goto out;
    }
    if (data_version_decode(chunk, clen, &body->dv, err, errlen) != 0)
        goto out;
    if (r.left < 4) {
        snprintf(err, errlen, "compressed body: topic count missing");
        goto out;
    }
    uint32_t count =
        (uint32_t)r.p[0] << 24 | (uint32_t)r.p[1] << 16 | (uint32_t)r.p[2] << 8 | r.p[3];
    r.p += 4;
    r.left -= 4;
    if (count > INT32_MAX) {
        snprintf(err, errlen, "compressed body: negative topic count");
        goto out;
    }
    for (uint32_t i = 0; i < count; i++) { /* each entry needs >= 4 bytes: bounded by plen */
        if (read_chunk(&r, &chunk, &clen) != 0 || topic_from_text(chunk, clen, body) != 0) {
            snprintf(err, errlen, "compressed body: bad topic config #%u", i);
            goto out;
        }
    }
    if (read_chunk(&r, &chunk, &clen) != 0) {
        snprintf(err, errlen, "compressed body: bad filter server list");
        goto out;
    }
    rc = 0;
out:
    ferry_free(plain);
    return rc;
}

int reg_body_decode(const uint8_t *p, size_t len, int compressed, struct reg_body *body, char *err,
                    size_t errlen)
{
    memset(body, 0, sizeof *body);
    int rc = compressed ? decode_compressed(p, len, body, err, errlen)
                        : decode_json(p, len, body, err, errlen);
    if (rc != 0)
        reg_body_clear(body);
    return rc;
}

int data_version_decode(const uint8_t *p, size_t len, struct data_version *dv, char *err,
                        size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength((const char *)p, len);
    int rc;
    if (!root) {
        snprintf(err, errlen, "dataVersion is not JSON");
        return FERRY_EPROTO;
    }
    rc = dv_from_json(root, dv, err, errlen);
    cJSON_Delete(root);
    return rc;
}

void data_version_json(const struct data_version *dv, struct jbuf *out)
{
    jb_raw(out, "{\"counter\":");
    jb_i64(out, dv->counter);
    jb_raw(out, ",\"timestamp\":");
    jb_i64(out, dv->timestamp);
    jb_putc(out, '}');
}
