/* Decoding a pull response: the stored records (docs/STORAGE.md §2, msg_parse()) become
 * struct ferry_message_ext views in one allocation per response — no allocation per message
 * except for a compressed body. */
#include "client/consumer_int.h"

#include "common/alloc.h"
#include "common/log.h"
#include "store/msg.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define COMPRESS_TYPE_MASK 0x700
#define COMPRESS_ZLIB      0x300
#define INFLATE_MAX        (64u * 1024 * 1024)

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t count_props(const char *p, uint32_t len)
{
    size_t n = 0;
    for (uint32_t i = 0; i < len; i++)
        n += p[i] == PROP_PAIR_SEP;
    return n + 1;
}

static void *inflate_body(const uint8_t *in, size_t len, size_t *out_len)
{
    size_t cap = len * 4 + 64;
    for (;;) {
        uint8_t *out = ferry_malloc(cap);
        uLongf n = (uLongf)cap;
        int zr = uncompress(out, &n, in, (uLong)len);
        if (zr == Z_OK) {
            *out_len = n;
            return out;
        }
        ferry_free(out);
        if (zr != Z_BUF_ERROR || cap >= INFLATE_MAX)
            return NULL;
        cap *= 4;
    }
}

int msgdec_batch(const uint8_t *body, size_t len, const char *broker, struct msg_batch **out)
{
    struct msg_view v;
    size_t n = 0, nprops = 0, strs = 0, pos = 0;
    size_t blen = strlen(broker) + 1;
    *out = NULL;
    while (pos < len) {
        if (msg_parse(body + pos, len - pos, &v) != 0)
            return FERRY_EPROTO;
        n++;
        nprops += count_props(v.props, v.props_len);
        strs += v.topic_len + 1 + v.props_len + 1 + 64;
        pos += v.total_size;
    }
    size_t sz = align8(sizeof(struct msg_batch)) + align8(n * sizeof(struct ferry_message_ext)) +
                align8(n * sizeof(struct task)) + align8(nprops * sizeof(struct ferry_property)) +
                strs + blen + len;
    uint8_t *mem = ferry_calloc(1, sz);
    struct msg_batch *b = (struct msg_batch *)mem;
    size_t at = align8(sizeof *b);
    b->msgs = (struct ferry_message_ext *)(mem + at);
    at += align8(n * sizeof(struct ferry_message_ext));
    b->tasks = (struct task *)(mem + at);
    at += align8(n * sizeof(struct task));
    struct ferry_property *props = (struct ferry_property *)(mem + at);
    at += align8(nprops * sizeof(struct ferry_property));
    char *str = (char *)(mem + at);
    uint8_t *raw = mem + sz - len;
    memcpy(raw, body, len);
    char *bname = str;
    memcpy(bname, broker, blen);
    str += blen;
    atomic_init(&b->refs, 1);

    pos = 0;
    for (size_t i = 0; i < n; i++) {
        struct ferry_message_ext *m = &b->msgs[i];
        msg_parse(raw + pos, len - pos, &v);
        pos += v.total_size;
        m->broker_name = bname;
        m->queue_id = v.queue_id;
        m->queue_offset = v.queue_offset;
        m->commitlog_offset = v.phys_offset;
        m->reconsume_times = v.reconsume_times;
        m->flag = v.flag;
        m->born_timestamp = v.born_ts;
        m->store_timestamp = v.store_ts;
        m->body = v.body;
        m->body_len = v.body_len;
        if (v.sys_flag & SYSFLAG_COMPRESSED) {
            int type = v.sys_flag & COMPRESS_TYPE_MASK;
            size_t ilen;
            void *ib = (type == 0 || type == COMPRESS_ZLIB)
                           ? inflate_body(v.body, v.body_len, &ilen)
                           : NULL;
            if (ib) {
                b->inflated = ferry_realloc(b->inflated, (b->ninflated + 1) * sizeof *b->inflated);
                b->inflated[b->ninflated++] = ib;
                m->body = ib;
                m->body_len = ilen;
            } else {
                log_warn(LOG_CLIENT, "message at %s offset %lld: cannot decompress (sysFlag 0x%x)",
                         broker, (long long)v.queue_offset, (unsigned)v.sys_flag);
            }
        }
        char *topic = str;
        memcpy(topic, v.topic, v.topic_len);
        topic[v.topic_len] = 0;
        str += v.topic_len + 1;
        m->topic = topic;
        char *oid = str;
        msg_offset_id(&v, oid);
        str += 64;
        m->offset_msg_id = oid;
        m->msg_id = oid;
        /* properties: name SOH value STX ..., copied with NULs */
        char *pc = str;
        memcpy(pc, v.props, v.props_len);
        pc[v.props_len] = 0;
        str += v.props_len + 1;
        m->props = props;
        size_t k = 0;
        char *p = pc, *end = pc + v.props_len;
        while (p < end) {
            char *sep = memchr(p, PROP_NAME_SEP, (size_t)(end - p));
            if (!sep)
                break;
            char *vend = memchr(sep + 1, PROP_PAIR_SEP, (size_t)(end - sep - 1));
            if (!vend)
                vend = end;
            *sep = 0;
            *vend = 0;
            props[k].name = p;
            props[k].value = sep + 1;
            k++;
            p = vend + 1;
        }
        m->nprops = k;
        props += k;
        const char *uniq = ferry_message_property(m, "UNIQ_KEY");
        const char *retry = ferry_message_property(m, "RETRY_TOPIC");
        if (uniq && *uniq)
            m->msg_id = uniq;
        if (retry && *retry)
            m->topic = retry;
        m->tags = ferry_message_property(m, "TAGS");
        m->keys = ferry_message_property(m, "KEYS");
    }
    b->n = n;
    *out = b;
    return 0;
}

const char *ferry_message_property(const struct ferry_message_ext *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (size_t i = 0; i < m->nprops; i++)
        if (strcmp(m->props[i].name, name) == 0)
            return m->props[i].value;
    return NULL;
}

void msgdec_filter(struct msg_batch *b, int (*keep)(const struct ferry_message_ext *, void *),
                   void *arg)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        if (keep(&b->msgs[i], arg)) {
            if (k != i)
                b->msgs[k] = b->msgs[i];
            k++;
        }
    b->n = k;
}

void msgdec_ref(struct msg_batch *b, int n)
{
    atomic_fetch_add(&b->refs, n);
}

void msgdec_unref(struct msg_batch *b, int n)
{
    if (!b || n <= 0)
        return;
    if (atomic_fetch_sub(&b->refs, n) == n) {
        for (size_t i = 0; i < b->ninflated; i++)
            ferry_free(b->inflated[i]);
        ferry_free(b->inflated);
        ferry_free(b);
    }
}
