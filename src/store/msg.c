/* Encoder, parser and checks for the stored message record (layout in msg.h).
 * The encoder runs outside the CommitLog lock; msg_seal() is the only part that runs under
 * it, and it hashes just the 24 bytes patched there (the rest of the CRC is pre-computed and
 * joined with crc32_combine). The parser treats the bytes as untrusted input. */
#include "store/msg.h"

#include "common/bytes.h"
#include "common/crc.h"
#include "common/err.h"

#include <string.h>

static size_t host_len(const struct msg_host *h)
{
    return h->v6 ? 20 : 8;
}

static size_t props_stored_len(const struct store_msg *m, int with_crc)
{
    size_t n = m->props_len;
    if (with_crc) {
        if (n > 0 && m->props[n - 1] != PROP_PAIR_SEP)
            n++;
        n += MSG_CRC_PROP_LEN;
    }
    return n;
}

size_t msg_record_size(const struct store_msg *m, const struct msg_host *store_host, int with_crc)
{
    size_t topic_len = m->topic ? strlen(m->topic) : 0;
    size_t props = props_stored_len(m, with_crc);
    if (topic_len == 0 || topic_len > MSG_MAX_TOPIC_LEN || props > MSG_MAX_PROPS_LEN)
        return 0;
    return 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + host_len(&m->born_host) + 8 + host_len(store_host) +
           4 + 8 + 4 + m->body_len + 1 + topic_len + 2 + props;
}

/* zlib's combine operator for @len bytes, from a small per-thread cache: generating it costs
 * dozens of polynomial multiplications, and the lengths repeat (same-sized messages). */
static uint32_t combine_op(size_t len)
{
    static _Thread_local struct {
        size_t len;
        uint32_t op;
    } cache[4];
    static _Thread_local unsigned next;
    for (unsigned i = 0; i < 4; i++)
        if (cache[i].len == len && cache[i].op)
            return cache[i].op;
    uint32_t op = (uint32_t)crc32_combine_gen((z_off_t)len);
    cache[next].len = len;
    cache[next].op = op;
    next = (next + 1) & 3;
    return op;
}

/* CRC of A||B from crc(A), crc(B) and len(B). */
static uint32_t join(uint32_t a, uint32_t b, size_t blen)
{
    return (uint32_t)crc32_combine_op(a, b, combine_op(blen));
}

static uint8_t *put_host(uint8_t *p, const struct msg_host *h)
{
    size_t alen = h->v6 ? 16 : 4;
    memcpy(p, h->addr, alen);
    be32_put(p + alen, h->port);
    return p + alen + 4;
}

size_t msg_encode(const struct store_msg *m, const struct msg_host *store_host, int with_crc,
                  uint8_t *buf, size_t len, struct msg_crc_parts *parts)
{
    size_t topic_len = strlen(m->topic);
    size_t props = props_stored_len(m, with_crc);
    int32_t sys_flag = m->sys_flag & ~(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6);
    if (m->born_host.v6)
        sys_flag |= SYSFLAG_BORNHOST_V6;
    if (store_host->v6)
        sys_flag |= SYSFLAG_STOREHOST_V6;

    uint8_t *p = buf;
    be32_put(p, (uint32_t)len);
    be32_put(p + 4, MSG_MAGIC_V1);
    uint32_t body_crc = m->body_len ? crc32_update(0, m->body, m->body_len) : 0;
    be32_put(p + 8, body_crc & 0x7FFFFFFFu);
    be32_put(p + 12, (uint32_t)m->queue_id);
    be32_put(p + 16, (uint32_t)m->flag);
    memset(p + 20, 0, 16); /* queue offset, physical offset: sealed later */
    be32_put(p + 36, (uint32_t)sys_flag);
    be64_put(p + 40, (uint64_t)m->born_ts);
    p = put_host(p + 48, &m->born_host);
    size_t ts_off = (size_t)(p - buf);
    memset(p, 0, 8); /* store timestamp: sealed later */
    p = put_host(p + 8, store_host);
    be32_put(p, (uint32_t)m->reconsume_times);
    be64_put(p + 4, (uint64_t)m->prepared_tx_offset);
    be32_put(p + 12, m->body_len);
    p += 16;
    size_t body_off = (size_t)(p - buf);
    if (m->body_len)
        memcpy(p, m->body, m->body_len);
    p += m->body_len;
    *p++ = (uint8_t)topic_len;
    memcpy(p, m->topic, topic_len);
    p += topic_len;
    be16_put(p, (uint16_t)props);
    p += 2;
    if (m->props_len)
        memcpy(p, m->props, m->props_len);
    p += m->props_len;
    if (with_crc) {
        if (m->props_len > 0 && m->props[m->props_len - 1] != PROP_PAIR_SEP)
            *p++ = PROP_PAIR_SEP;
        memcpy(p, MSG_CRC_PROP "\001", 9);
        memset(p + 9, '0', 10);
        p[19] = PROP_PAIR_SEP;
        p += MSG_CRC_PROP_LEN;
    }
    if (with_crc && parts) {
        /* ISA-L hashes the body again faster than a combine step joins its CRC in (and the 24
         * bytes before it would go through zlib's table): one pass over C. */
        msg_crc_prepare(buf, len, ts_off, parts);
        return ts_off;
    }
    if (with_crc && parts) {
        /* C = [ts+8, body) + body + [body end, len-20): the body's CRC is reused. */
        size_t c1 = body_off - (ts_off + 8), c2 = len - MSG_CRC_PROP_LEN - body_off - m->body_len;
        uint32_t c = crc32_update(0, buf + ts_off + 8, c1);
        c = join(c, body_crc, m->body_len);
        c = crc32_update(c, buf + body_off + m->body_len, c2);
        parts->c = c;
        parts->op = combine_op(c1 + m->body_len + c2);
    }
    return ts_off;
}

void msg_crc_prepare(const uint8_t *rec, size_t len, size_t ts_off, struct msg_crc_parts *parts)
{
    size_t clen = len - MSG_CRC_PROP_LEN - (ts_off + 8);
    parts->c = crc32_update(0, rec + ts_off + 8, clen);
    parts->op = combine_op(clen);
}

/* msg_seal() hashes up to this many bytes after the STORETIMESTAMP field again rather than
 * joining the pre-computed CRC of them. */
#define SEAL_REHASH_MAX 1024

static void put_crc_digits(uint8_t *digits, uint32_t crc)
{
    /* RocketMQ writes the decimal digits least significant first (MessageDecoder.createCrc32). */
    for (int i = 0; i < 10; i++) {
        digits[i] = (uint8_t)('0' + crc % 10);
        crc /= 10;
    }
}

void msg_seal(uint8_t *rec, size_t len, size_t ts_off, int64_t queue_offset, int64_t phys_offset,
              int64_t store_ts, const struct msg_crc_parts *parts)
{
    be64_put(rec + MSG_OFF_QUEUEOFFSET, (uint64_t)queue_offset);
    be64_put(rec + MSG_OFF_PHYSOFFSET, (uint64_t)phys_offset);
    be64_put(rec + ts_off, (uint64_t)store_ts);
    if (!parts)
        return;
    uint32_t x = crc32_update(0, rec, ts_off + 8);
    size_t rest = len - MSG_CRC_PROP_LEN - (ts_off + 8);
    /* The combine costs about 400 instructions whatever the length; hashing a short rest
     * again with the CPU's CRC instructions costs less (a 128 B body: ~200 bytes). */
    if (rest <= SEAL_REHASH_MAX)
        x = crc32_update(x, rec + ts_off + 8, rest);
    else
        x = (uint32_t)crc32_combine_op(x, parts->c, parts->op);
    put_crc_digits(rec + len - MSG_CRC_PROP_LEN + 9, x & 0x7FFFFFFFu);
}

int msg_parse(const uint8_t *p, size_t avail, struct msg_view *v)
{
    if (avail < 8)
        return FERRY_ECORRUPT;
    uint32_t total = be32_get(p);
    uint32_t magic = be32_get(p + 4);
    v->rec = p;
    v->total_size = total;
    if (magic == MSG_MAGIC_BLANK)
        return FERRY_ENOTFOUND;
    if (magic != MSG_MAGIC_V1 || total < 91 || total > avail)
        return FERRY_ECORRUPT;
    v->body_crc = be32_get(p + 8);
    v->queue_id = (int32_t)be32_get(p + 12);
    v->flag = (int32_t)be32_get(p + 16);
    v->queue_offset = (int64_t)be64_get(p + 20);
    v->phys_offset = (int64_t)be64_get(p + 28);
    v->sys_flag = (int32_t)be32_get(p + 36);
    v->born_ts = (int64_t)be64_get(p + 40);
    size_t off = 48 + ((v->sys_flag & SYSFLAG_BORNHOST_V6) ? 20 : 8);
    v->store_ts_off = off;
    v->store_ts = (int64_t)be64_get(p + off);
    off += 8 + ((v->sys_flag & SYSFLAG_STOREHOST_V6) ? 20 : 8);
    if (off + 16 > total)
        return FERRY_ECORRUPT;
    v->reconsume_times = (int32_t)be32_get(p + off);
    v->prepared_tx_offset = (int64_t)be64_get(p + off + 4);
    v->body_len = be32_get(p + off + 12);
    off += 16;
    if (v->body_len > total - off)
        return FERRY_ECORRUPT;
    v->body = p + off;
    off += v->body_len;
    if (off + 1 > total)
        return FERRY_ECORRUPT;
    v->topic_len = p[off++];
    if (v->topic_len == 0 || off + v->topic_len + 2 > total)
        return FERRY_ECORRUPT;
    v->topic = (const char *)p + off;
    off += v->topic_len;
    v->props_len = be16_get(p + off);
    off += 2;
    if (v->props_len > MSG_MAX_PROPS_LEN || off + v->props_len != total)
        return FERRY_ECORRUPT;
    v->props = (const char *)p + off;
    return 0;
}

int msg_verify(const struct msg_view *v, int require_rec_crc)
{
    const char *tail = v->props + v->props_len - MSG_CRC_PROP_LEN;
    if (v->props_len < MSG_CRC_PROP_LEN || memcmp(tail, MSG_CRC_PROP "\001", 9) != 0 ||
        tail[19] != PROP_PAIR_SEP) {
        if (require_rec_crc)
            return FERRY_ECORRUPT;
        uint32_t body_crc = v->body_len ? crc32_masked(v->body, v->body_len) : 0;
        return body_crc == v->body_crc ? 0 : FERRY_ECORRUPT;
    }
    uint32_t want = 0;
    for (int i = 9; i >= 0; i--) {
        char c = tail[9 + i];
        if (c < '0' || c > '9')
            return FERRY_ECORRUPT;
        want = want * 10 + (uint32_t)(c - '0');
    }
    /* The record CRC covers the body and the BODYCRC field as written: one pass suffices. */
    uint32_t got = crc32_masked(v->rec, v->total_size - MSG_CRC_PROP_LEN);
    return got == want ? 0 : FERRY_ECORRUPT;
}

const char *msg_prop_get(const char *props, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = props, *end = props + len;
    while (p < end) {
        /* Compare the name in place (names hold no separator), then find the pair's end:
         * one scan per pair, not two. */
        int hit =
            (size_t)(end - p) > nlen && p[nlen] == PROP_NAME_SEP && memcmp(p, name, nlen) == 0;
        const char *from = hit ? p + nlen + 1 : p;
        const char *pair_end = memchr(from, PROP_PAIR_SEP, (size_t)(end - from));
        if (!pair_end)
            pair_end = end;
        if (hit && from < pair_end) {
            *vlen = (size_t)(pair_end - from);
            return from;
        }
        p = pair_end + 1;
    }
    return NULL;
}

/* Decode one UTF-8 sequence; malformed input yields U+FFFD and advances one byte, as Java's
 * decoder replaces it. */
static uint32_t utf8_next(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    uint32_t c = p[0];
    int n;

    *pp = p + 1;
    if (c < 0x80)
        return c;
    if ((c & 0xE0) == 0xC0)
        n = 1;
    else if ((c & 0xF0) == 0xE0)
        n = 2;
    else if ((c & 0xF8) == 0xF0)
        n = 3;
    else
        return 0xFFFD;
    if (end - p <= n)
        return 0xFFFD;
    c &= 0x3Fu >> n;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0xFFFD;
        c = c << 6 | (p[i] & 0x3F);
    }
    *pp = p + n + 1;
    return c;
}

int32_t java_string_hash(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    uint32_t h = 0;
    while (p < end) {
        uint32_t c = utf8_next(&p, end);
        if (c >= 0x10000) {
            c -= 0x10000;
            h = 31 * h + (0xD800 + (c >> 10));
            h = 31 * h + (0xDC00 + (c & 0x3FF));
        } else {
            h = 31 * h + c;
        }
    }
    return (int32_t)h;
}

int64_t msg_tags_code(const char *props, size_t props_len)
{
    size_t vlen;
    const char *tags = msg_prop_get(props, props_len, "TAGS", &vlen);
    if (!tags || vlen == 0)
        return 0;
    return (int64_t)java_string_hash(tags, vlen);
}

void msg_offset_id(const struct msg_view *v, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t raw[28];
    size_t n = (v->sys_flag & SYSFLAG_STOREHOST_V6) ? 20 : 8; /* STOREHOST follows STORETIMESTAMP */
    memcpy(raw, v->rec + v->store_ts_off + 8, n);
    for (int i = 7; i >= 0; i--)
        raw[n++] = (uint8_t)((uint64_t)v->phys_offset >> (8 * i));
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = 0;
}
