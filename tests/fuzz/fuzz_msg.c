/* libFuzzer entry point for the stored record decoder and the properties parser (store/msg.c).
 *
 * The input is decoded as a CommitLog record with msg_parse() (from an exact-size heap copy, so
 * ASan sees any overread): a record it accepts must have every part inside TOTALSIZE, and
 * msg_verify(), msg_offset_id() and msg_tags_code() must run on it. Its fields are then
 * encoded again with msg_encode()/msg_seal() (with the whole-record CRC): that record must parse
 * to the same fields and pass msg_verify() with the record CRC required, and flipping any byte
 * of it must make msg_verify() or msg_parse() fail.
 *
 * The input is also read as a properties string (name SOH value STX ...): msg_prop_get() must
 * agree with a plain reference lookup for every name in it and for names not in it. */
#include "common/alloc.h"
#include "common/err.h"
#include "store/msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_msg: %s\n", what);
    abort();
}

/* Reference lookup: the first pair named @name (NUL-free) with a non-empty value. */
static const char *ref_prop_get(const char *p, size_t len, const char *name, size_t nlen,
                                size_t *vlen)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && p[j] != PROP_PAIR_SEP)
            j++;
        size_t k = i;
        while (k < j && p[k] != PROP_NAME_SEP)
            k++;
        if (k < j && k - i == nlen && memcmp(p + i, name, nlen) == 0 && k + 1 < j) {
            *vlen = j - k - 1;
            return p + k + 1;
        }
        i = j + 1;
    }
    return NULL;
}

static void check_lookup(const char *props, size_t len, const char *name)
{
    size_t nlen = strlen(name), v1 = 0, v2 = 0;
    const char *a = msg_prop_get(props, len, name, &v1);
    const char *b = ref_prop_get(props, len, name, nlen, &v2);
    if (a != b || (a && v1 != v2))
        die("msg_prop_get differs from the reference lookup");
    if (a && (a < props || a + v1 > props + len))
        die("msg_prop_get value outside the properties");
}

static void check_props(const char *props, size_t len)
{
    char name[64];
    size_t i = 0, pairs = 0;
    while (i < len && pairs < 64) {
        size_t j = i;
        while (j < len && props[j] != PROP_PAIR_SEP && props[j] != PROP_NAME_SEP)
            j++;
        size_t n = j - i < sizeof name - 1 ? j - i : sizeof name - 1;
        memcpy(name, props + i, n);
        name[n] = 0;
        if (strlen(name) == n)
            check_lookup(props, len, name);
        while (j < len && props[j] != PROP_PAIR_SEP)
            j++;
        i = j + 1;
        pairs++;
    }
    check_lookup(props, len, "");
    check_lookup(props, len, "TAGS");
    check_lookup(props, len, "UNIQ_KEY");
    check_lookup(props, len, MSG_CRC_PROP);
    (void)msg_tags_code(props, len);
    (void)java_string_hash(props, len);
}

static int same_view(const struct msg_view *a, const struct msg_view *b)
{
    return a->queue_id == b->queue_id && a->flag == b->flag && a->born_ts == b->born_ts &&
           a->reconsume_times == b->reconsume_times &&
           a->prepared_tx_offset == b->prepared_tx_offset && a->body_len == b->body_len &&
           (a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0) &&
           a->topic_len == b->topic_len && memcmp(a->topic, b->topic, a->topic_len) == 0;
}

/* Encode the fields of the parsed record @v again and check the result. */
static void reencode(const struct msg_view *v)
{
    char topic[MSG_MAX_TOPIC_LEN + 1];
    if (v->topic_len > MSG_MAX_TOPIC_LEN || memchr(v->topic, 0, v->topic_len))
        return; /* the encoder takes a C string */
    memcpy(topic, v->topic, v->topic_len);
    topic[v->topic_len] = 0;

    /* Hosts as stored: born host right after BORNTIMESTAMP, store host after STORETIMESTAMP. */
    struct msg_host born = {0}, store = {0};
    born.v6 = (v->sys_flag & SYSFLAG_BORNHOST_V6) != 0;
    store.v6 = (v->sys_flag & SYSFLAG_STOREHOST_V6) != 0;
    size_t alen = born.v6 ? 16 : 4;
    memcpy(born.addr, v->rec + 48, alen);
    born.port = (uint32_t)v->rec[48 + alen] << 24 | (uint32_t)v->rec[49 + alen] << 16 |
                (uint32_t)v->rec[50 + alen] << 8 | v->rec[51 + alen];
    alen = store.v6 ? 16 : 4;
    const uint8_t *sh = v->rec + v->store_ts_off + 8;
    memcpy(store.addr, sh, alen);
    store.port = (uint32_t)sh[alen] << 24 | (uint32_t)sh[alen + 1] << 16 |
                 (uint32_t)sh[alen + 2] << 8 | sh[alen + 3];

    struct store_msg m = {
        .topic = topic,
        .queue_id = v->queue_id,
        .flag = v->flag,
        .sys_flag = v->sys_flag,
        .born_ts = v->born_ts,
        .born_host = born,
        .reconsume_times = v->reconsume_times,
        .prepared_tx_offset = v->prepared_tx_offset,
        .body = v->body,
        .body_len = v->body_len,
        .props = v->props,
        .props_len = v->props_len,
    };
    size_t len = msg_record_size(&m, &store, 1);
    if (len == 0) {
        if (v->props_len + 1 + MSG_CRC_PROP_LEN <= MSG_MAX_PROPS_LEN)
            die("msg_record_size refuses a parsed record's fields");
        return;
    }
    uint8_t *rec = ferry_malloc(len);
    struct msg_crc_parts parts;
    size_t ts_off = msg_encode(&m, &store, 1, rec, len, &parts);
    if (ts_off != v->store_ts_off)
        die("STORETIMESTAMP offset differs after re-encoding");
    msg_seal(rec, len, ts_off, v->queue_offset, v->phys_offset, v->store_ts, &parts);
    struct msg_view w;
    if (msg_parse(rec, len, &w) != 0 || w.total_size != len)
        die("a re-encoded record does not parse");
    if (!same_view(v, &w) || w.queue_offset != v->queue_offset || w.phys_offset != v->phys_offset ||
        w.store_ts != v->store_ts)
        die("a re-encoded record differs");
    if (msg_verify(&w, 1) != 0)
        die("a re-encoded record fails its CRC");
    char id1[64], id2[64];
    msg_offset_id(v, id1);
    msg_offset_id(&w, id2);
    if (strcmp(id1, id2) != 0)
        die("offset message id differs after re-encoding");
    /* Any single changed byte is caught (the CRC property covers everything before it; a change
     * in its digits no longer matches). Changes to the CRC property's name are not: the record
     * is then one without a record CRC, caught only by the body CRC. Sample a few positions. */
    size_t step = len / 7 + 1;
    for (size_t i = 0; i < len; i += step) {
        if (i >= len - MSG_CRC_PROP_LEN && i < len - MSG_CRC_PROP_LEN + 9)
            continue;
        rec[i] ^= 0x20;
        struct msg_view x;
        int prc = msg_parse(rec, len, &x);
        if (prc == 0 && msg_verify(&x, 1) == 0)
            die("a damaged record passes msg_verify");
        rec[i] ^= 0x20;
    }
    ferry_free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    uint8_t *buf = ferry_malloc(size ? size : 1);
    memcpy(buf, data, size);

    struct msg_view v;
    int rc = msg_parse(buf, size, &v);
    if (rc == 0) {
        if (v.total_size > size || v.total_size < 91)
            die("accepted a record outside the input");
        const uint8_t *end = buf + v.total_size;
        if (v.body + v.body_len > end || (const uint8_t *)v.topic + v.topic_len > end ||
            (const uint8_t *)v.props + v.props_len != end || v.topic_len == 0)
            die("a part of the record lies outside TOTALSIZE");
        int v0 = msg_verify(&v, 0), v1 = msg_verify(&v, 1);
        if ((v0 != 0 && v0 != FERRY_ECORRUPT) || (v1 != 0 && v1 != FERRY_ECORRUPT))
            die("msg_verify: unexpected code");
        if (v1 == 0 && v0 != 0)
            die("a record passes with the record CRC required but not without");
        char id[64];
        msg_offset_id(&v, id);
        size_t idl = strlen(id);
        if (idl != ((v.sys_flag & SYSFLAG_STOREHOST_V6) ? 56u : 32u))
            die("offset message id has a wrong length");
        check_props(v.props, v.props_len);
        reencode(&v);
    } else if (rc != FERRY_ECORRUPT && rc != FERRY_ENOTFOUND) {
        die("msg_parse: unexpected code");
    }

    check_props((const char *)buf, size);
    ferry_free(buf);
    return 0;
}
