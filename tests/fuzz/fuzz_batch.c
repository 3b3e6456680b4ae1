/* libFuzzer entry point for the broker's SEND_BATCH_MESSAGE body decoder,
 * broker_batch_decode() (src/broker/send.c).
 *
 * Input: one control byte, then the batch body. Bit 0 of the control byte gives the request
 * header's batch-level properties (WAIT, KEYS, CLUSTER and a record CRC property, the last two
 * of which the broker must drop), bit 1 a long cluster name. The body is decoded from an
 * exact-size heap copy (ASan sees overreads). When the decoder accepts it, every entry must
 * point inside the body, and its properties must be well-formed pairs with non-empty names and
 * values, none of the broker's own keys except one CLUSTER pair at the end. Each entry is then
 * stored as a record (msg_encode/msg_seal, as the store does) that must parse back to the same
 * body and properties and pass its CRC. */
#include "broker/broker_int.h"
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
    fprintf(stderr, "fuzz_batch: %s\n", what);
    abort();
}

/* The pairs of @p: non-empty names and values, no broker-owned key but a final CLUSTER pair
 * with @cluster. */
static void check_props(const char *p, size_t len, const char *cluster)
{
    size_t i = 0, clusters = 0;
    const char *last = NULL;
    size_t last_len = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && p[j] != PROP_PAIR_SEP)
            j++;
        const char *sep = memchr(p + i, PROP_NAME_SEP, j - i);
        if (!sep || sep == p + i || sep + 1 == p + j)
            die("a stored property pair without name or value");
        size_t nl = (size_t)(sep - (p + i));
        if (nl == strlen(MSG_CRC_PROP) && memcmp(p + i, MSG_CRC_PROP, nl) == 0)
            die("the record CRC property from the client was kept");
        if (nl == 7 && memcmp(p + i, "CLUSTER", 7) == 0)
            clusters++;
        last = p + i;
        last_len = j - i;
        i = j + 1;
    }
    if (clusters != 1 || !last || last_len != 8 + strlen(cluster) ||
        memcmp(last, "CLUSTER\001", 8) != 0 || memcmp(last + 8, cluster, strlen(cluster)) != 0)
        die("the properties do not end with the one CLUSTER pair");
}

static void store_and_check(const struct store_msg *m)
{
    static const struct msg_host store_host = {{127, 0, 0, 1}, 0, 10911};
    size_t len = msg_record_size(m, &store_host, 1);
    if (len == 0)
        return; /* over the format's property limit: store_put refuses it (FERRY_EINVAL) */
    uint8_t *rec = ferry_malloc(len);
    struct msg_crc_parts parts;
    size_t ts = msg_encode(m, &store_host, 1, rec, len, &parts);
    msg_seal(rec, len, ts, 7, 4096, 1700000000000, &parts);
    struct msg_view v;
    if (msg_parse(rec, len, &v) != 0 || v.total_size != len)
        die("a decoded batch entry does not make a valid record");
    if (msg_verify(&v, 1) != 0)
        die("a decoded batch entry's record fails its CRC");
    if (v.body_len != m->body_len || (m->body_len && memcmp(v.body, m->body, m->body_len) != 0) ||
        v.flag != m->flag || v.props_len < m->props_len ||
        (m->props_len && memcmp(v.props, m->props, m->props_len) != 0))
        die("a stored batch entry differs from the decoded one");
    ferry_free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hdr_props[] =
        "WAIT\001true\002KEYS\001k1 k2\002CLUSTER\001Evil\002" MSG_CRC_PROP
        "\0010000000000\002\001novalue\002noname\001";
    static const char long_cluster[] =
        "ClusterNameThatIsRatherLongAndUsesEveryAllowedCharacter_-%|0123456789";
    if (size == 0 || size > (1u << 20))
        return 0;
    uint8_t ctl = data[0];
    size_t blen = size - 1;
    uint8_t *body = ferry_malloc(blen ? blen : 1);
    memcpy(body, data + 1, blen);
    struct rstr bp = {0};
    if (ctl & 1)
        bp = (struct rstr){hdr_props, sizeof hdr_props - 1};
    const char *cluster = (ctl & 2) ? long_cluster : "DefaultCluster";

    struct store_msg tmpl = {.topic = "FuzzTopic", .queue_id = 1, .born_ts = 1700000000000};
    struct store_msg *msgs = NULL;
    char *props = NULL;
    char remark[320] = "";
    /* A request without a body has a NULL body (frame_decode). */
    int n = broker_batch_decode(blen ? body : NULL, blen, bp, cluster, &tmpl, &msgs, &props, remark,
                                sizeof remark);
    if (n < 0) {
        if (!remark[0] || msgs || props)
            die("a refused batch without a remark, or with output");
    } else {
        if (n == 0 || !msgs || !props)
            die("an accepted batch without entries");
        /* Each entry takes at least 22 bytes of the body. */
        if ((size_t)n > blen / 22)
            die("more entries than the body can hold");
        const uint8_t *prev_end = body;
        for (int i = 0; i < n; i++) {
            const struct store_msg *m = &msgs[i];
            if (strcmp(m->topic, "FuzzTopic") != 0 || m->queue_id != 1)
                die("an entry lost the template's fields");
            if ((const uint8_t *)m->body < prev_end + 20 ||
                (const uint8_t *)m->body + m->body_len + 2 > body + blen)
                die("an entry's body lies outside the batch body");
            prev_end = (const uint8_t *)m->body + m->body_len + 2;
            check_props(m->props, m->props_len, cluster);
            store_and_check(m);
        }
        ferry_free(msgs);
        ferry_free(props);
    }
    ferry_free(body);
    return 0;
}
