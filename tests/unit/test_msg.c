/* Record codec: every field round-trips, the CRCs catch damage, RocketMQ's constants hold. */
#include "common/bytes.h"
#include "common/crc.h"
#include "common/err.h"
#include "store/msg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char props[] = "TAGS\001tagA\002KEYS\001k1 k2\002UNIQ_KEY\001ABC\002";

static struct store_msg sample(void)
{
    struct store_msg m = {0};
    m.topic = "TopicTest";
    m.queue_id = 3;
    m.flag = 7;
    m.sys_flag = 0;
    m.born_ts = 1700000000123;
    m.born_host.addr[0] = 10;
    m.born_host.addr[3] = 9;
    m.born_host.port = 5555;
    m.reconsume_times = 2;
    m.prepared_tx_offset = 42;
    m.body = "hello world";
    m.body_len = 11;
    m.props = props;
    m.props_len = sizeof props - 1;
    return m;
}

static void roundtrip(void **state)
{
    (void)state;
    struct store_msg m = sample();
    struct msg_host sh = {{127, 0, 0, 1}, 0, 10911};
    for (int crc = 0; crc <= 1; crc++) {
        size_t len = msg_record_size(&m, &sh, crc);
        /* 91 fixed bytes (V1, IPv4) + body + topic + properties (+ CRC property). */
        assert_int_equal(len, 91 + 11 + 9 + (sizeof props - 1) + (crc ? MSG_CRC_PROP_LEN : 0));
        uint8_t *buf = malloc(len);
        struct msg_crc_parts parts, check;
        size_t ts_off = msg_encode(&m, &sh, crc, buf, len, &parts);
        assert_int_equal(ts_off, 56);
        if (crc) {
            /* The pieces built while encoding equal those hashed from the bytes. */
            msg_crc_prepare(buf, len, ts_off, &check);
            assert_int_equal(parts.c, check.c);
            assert_int_equal(parts.op, check.op);
        }
        msg_seal(buf, len, ts_off, 77, 123456, 1700000000999, crc ? &parts : NULL);

        struct msg_view v;
        assert_int_equal(msg_parse(buf, len, &v), 0);
        assert_int_equal(be32_get(buf + 4), 0xDAA320A7u);
        assert_int_equal(v.total_size, len);
        assert_int_equal(v.queue_id, 3);
        assert_int_equal(v.flag, 7);
        assert_int_equal(v.queue_offset, 77);
        assert_int_equal(v.phys_offset, 123456);
        assert_int_equal(v.born_ts, 1700000000123);
        assert_int_equal(v.store_ts, 1700000000999);
        assert_int_equal(v.reconsume_times, 2);
        assert_int_equal(v.prepared_tx_offset, 42);
        assert_int_equal(v.body_len, 11);
        assert_memory_equal(v.body, "hello world", 11);
        assert_int_equal(v.topic_len, 9);
        assert_memory_equal(v.topic, "TopicTest", 9);
        assert_int_equal(v.body_crc, crc32_masked("hello world", 11));
        char oid[64]; /* 127.0.0.1:10911 at CommitLog offset 123456 */
        msg_offset_id(&v, oid);
        assert_string_equal(oid, "7F00000100002A9F000000000001E240");
        assert_memory_equal(buf + 64, "\x7f\0\0\x01", 4); /* STOREHOST: IPv4 + port */
        assert_int_equal(be32_get(buf + 68), 10911);
        assert_memory_equal(buf + 48, "\x0a\0\0\x09", 4); /* BORNHOST */
        assert_int_equal(be32_get(buf + 52), 5555);
        assert_int_equal(msg_verify(&v, crc), 0);
        size_t vlen;
        const char *tags = msg_prop_get(v.props, v.props_len, "TAGS", &vlen);
        assert_non_null(tags);
        assert_int_equal(vlen, 4);
        assert_memory_equal(tags, "tagA", 4);
        if (crc) {
            /* The CRC digits are the masked CRC of everything before the property, written
             * least significant digit first (RocketMQ MessageDecoder.createCrc32). */
            uint32_t want = crc32_masked(buf, len - MSG_CRC_PROP_LEN);
            const char *d = (const char *)buf + len - 11;
            for (int i = 0; i < 10; i++, want /= 10)
                assert_int_equal(d[i], '0' + want % 10);
            /* Damage to a header byte is caught by the record CRC, not the body CRC. */
            buf[17] ^= 1;
            assert_int_equal(msg_parse(buf, len, &v), 0);
            assert_int_equal(msg_verify(&v, 1), FERRY_ECORRUPT);
            buf[17] ^= 1;
        }
        buf[len - 30] ^= 0x40; /* body or properties */
        assert_int_equal(msg_parse(buf, len, &v), 0);
        if (crc)
            assert_int_equal(msg_verify(&v, 1), FERRY_ECORRUPT);
        free(buf);
    }
}

static void parse_rejects_garbage(void **state)
{
    (void)state;
    uint8_t buf[256] = {0};
    struct msg_view v;
    assert_int_equal(msg_parse(buf, 4, &v), FERRY_ECORRUPT);
    be32_put(buf, 200);
    be32_put(buf + 4, 0x12345678);
    assert_int_equal(msg_parse(buf, sizeof buf, &v), FERRY_ECORRUPT);
    be32_put(buf + 4, MSG_MAGIC_BLANK);
    assert_int_equal(msg_parse(buf, sizeof buf, &v), FERRY_ENOTFOUND);
    assert_int_equal(v.total_size, 200);
    /* A valid record with each length field corrupted in turn never parses out of bounds. */
    struct store_msg m = sample();
    struct msg_host sh = {{127, 0, 0, 1}, 0, 10911};
    size_t len = msg_record_size(&m, &sh, 1);
    uint8_t *rec = malloc(len);
    msg_encode(&m, &sh, 1, rec, len, NULL);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            rec[i] ^= (uint8_t)(1 << bit);
            if (msg_parse(rec, len, &v) == 0) {
                assert_true(v.body + v.body_len <= rec + len);
                assert_true((const uint8_t *)v.props + v.props_len <= rec + len);
            }
            rec[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* Too-long topic and too-long properties are refused by the size function. */
    char topic[200];
    memset(topic, 'a', sizeof topic - 1);
    topic[sizeof topic - 1] = 0;
    m.topic = topic;
    assert_int_equal(msg_record_size(&m, &sh, 1), 0);
    free(rec);
}

/* IPv6 hosts take 20 bytes each (16 + port) and set their sysflag bits; every size agrees. */
static void ipv6_hosts(void **state)
{
    (void)state;
    struct store_msg m = sample();
    m.born_host.v6 = 1;
    memset(m.born_host.addr, 0, 16);
    m.born_host.addr[15] = 1;
    struct msg_host sh = {{0}, 1, 10911};
    sh.addr[0] = 0xfe;
    sh.addr[1] = 0x80;
    size_t len = msg_record_size(&m, &sh, 1);
    assert_int_equal(len, 91 + 24 + 11 + 9 + (sizeof props - 1) + MSG_CRC_PROP_LEN);
    uint8_t *buf = malloc(len);
    struct msg_crc_parts parts;
    size_t ts_off = msg_encode(&m, &sh, 1, buf, len, &parts);
    assert_int_equal(ts_off, 48 + 20);
    msg_seal(buf, len, ts_off, 5, 6, 7, &parts);
    struct msg_view v;
    assert_int_equal(msg_parse(buf, len, &v), 0);
    assert_int_equal(v.total_size, len);
    assert_true(v.sys_flag & SYSFLAG_BORNHOST_V6);
    assert_true(v.sys_flag & SYSFLAG_STOREHOST_V6);
    assert_int_equal(v.store_ts, 7);
    assert_int_equal(msg_verify(&v, 1), 0);
    char oid[64]; /* fe80::, port 10911, offset 6: 56 hex digits */
    msg_offset_id(&v, oid);
    assert_string_equal(oid, "FE800000000000000000000000000000"
                             "00002A9F"
                             "0000000000000006");
    assert_memory_equal(v.body, "hello world", 11);
    free(buf);
}

/* crc32_update (ISA-L for 64 bytes and more) gives zlib's values for every length, alignment
 * and starting CRC. */
static void crc_matches_zlib(void **state)
{
    (void)state;
    uint8_t *buf = malloc(5000);
    uint32_t x = 12345;
    for (int i = 0; i < 5000; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t len = 0; len <= 1100; len++) {
        for (size_t off = 0; off < 20; off += 7) {
            x = x * 1103515245u + 12345u;
            uint32_t seed = len % 3 == 0 ? 0 : x;
            assert_int_equal(crc32_update(seed, buf + off, len),
                             (uint32_t)crc32(seed, buf + off, (uInt)len));
        }
    }
    assert_int_equal(crc32_update(0, buf, 5000), (uint32_t)crc32(0, buf, 5000));
    free(buf);
}

/* The stored CRCs of records of several body and property sizes (ISA-L for the
 * long pieces, zlib's for the short ones, joined with crc32_combine) equal zlib's CRC of the
 * same bytes computed in one go: the values stored before, and what RocketMQ computes. */
static void record_crcs_equal_zlib(void **state)
{
    (void)state;
    static const size_t bodies[] = {1, 63, 64, 100, 128, 129, 1024, 4099};
    char bprops[600];
    uint8_t *body = malloc(5000);
    for (int i = 0; i < 5000; i++)
        body[i] = (uint8_t)(i * 7 + 3);
    for (size_t bi = 0; bi < sizeof bodies / sizeof bodies[0]; bi++) {
        for (size_t plen = 0; plen < 500; plen += 61) {
            struct store_msg m = sample();
            memset(bprops, 'p', plen);
            if (plen > 2) {
                memcpy(bprops, "K\001", 2);
                bprops[plen - 1] = PROP_PAIR_SEP;
            }
            m.props = bprops;
            m.props_len = (uint32_t)plen;
            m.body = body;
            m.body_len = (uint32_t)bodies[bi];
            struct msg_host sh = {{127, 0, 0, 1}, 0, 10911};
            size_t len = msg_record_size(&m, &sh, 1);
            uint8_t *buf = malloc(len);
            struct msg_crc_parts parts;
            size_t ts_off = msg_encode(&m, &sh, 1, buf, len, &parts);
            msg_seal(buf, len, ts_off, 9, 1234567, 1700000000999, &parts);
            uint32_t body_crc = (uint32_t)crc32(0, body, (uInt)bodies[bi]) & 0x7FFFFFFFu;
            assert_int_equal(be32_get(buf + 8), body_crc);
            uint32_t rec_crc =
                (uint32_t)crc32(0, buf, (uInt)(len - MSG_CRC_PROP_LEN)) & 0x7FFFFFFFu;
            char digits[11];
            for (int i = 0; i < 10; i++) { /* least significant digit first */
                digits[i] = (char)('0' + rec_crc % 10);
                rec_crc /= 10;
            }
            assert_memory_equal(buf + len - MSG_CRC_PROP_LEN + 9, digits, 10);
            struct msg_view v;
            assert_int_equal(msg_parse(buf, len, &v), 0);
            assert_int_equal(msg_verify(&v, 1), 0);
            free(buf);
        }
    }
    free(body);
}

static void java_hash(void **state)
{
    (void)state;
    /* Values from Java's String.hashCode(). */
    assert_int_equal(java_string_hash("", 0), 0);
    assert_int_equal(java_string_hash("TagA", 4), 2598919);
    assert_int_equal(java_string_hash("hello", 5), 99162322);
    /* "é" is one UTF-16 unit (0xE9); U+1F600 is a surrogate pair D83D DE00. */
    assert_int_equal(java_string_hash("\xc3\xa9", 2), 0xE9);
    assert_int_equal(java_string_hash("\xf0\x9f\x98\x80", 4), 0xD83D * 31 + 0xDE00);
    assert_int_equal(msg_tags_code(props, sizeof props - 1), java_string_hash("tagA", 4));
    assert_int_equal(msg_tags_code("KEYS\001x\002", 7), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),        cmocka_unit_test(parse_rejects_garbage),
        cmocka_unit_test(ipv6_hosts),       cmocka_unit_test(java_hash),
        cmocka_unit_test(crc_matches_zlib), cmocka_unit_test(record_crcs_equal_zlib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
