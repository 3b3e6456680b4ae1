/* Frame codec tests: round trips in both serializations, the hand-written frames of
 * protocol/REMOTING.md §1.4/§1.5 decoded and re-encoded byte for byte, and malformed input
 * (truncated, garbage, oversize, bad lengths) rejected with FERRY_EPROTO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testlib.h"
#include "common/alloc.h"
#include "common/err.h"
#include "remoting/codes.h"
#include "remoting/frame.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_rstr(const struct rstr *s, const char *want)
{
    assert_non_null(s);
    assert_non_null(s->p);
    assert_int_equal(s->len, strlen(want));
    assert_memory_equal(s->p, want, s->len);
}

static void assert_ext(const struct rcmd *cmd, const char *key, const char *want)
{
    const struct rstr *v = rcmd_ext_get(cmd, key);
    if (!v)
        fail_msg("extFields key %s missing", key);
    assert_rstr(v, want);
}

/* Decode @len bytes copied into a fresh heap buffer (so ASan sees any overread); returns the
 * decoder's result and keeps the buffer in *@keep for views. */
static int decode_copy(const void *bytes, size_t len, struct rcmd *cmd, uint8_t **keep, char *err,
                       size_t errlen)
{
    uint8_t *buf = ferry_malloc(len ? len : 1);
    memcpy(buf, bytes, len);
    int rc = frame_decode(buf, len, cmd, err, errlen);
    *keep = buf;
    return rc;
}

/* A request with awkward strings, encoded and decoded in @ser. */
/* Header numbers at the int64 limits: both ends parse, one past either is refused. */
static void test_ext_i64_limits(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t v;
    } cases[] = {
        {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775808", FERRY_EINVAL, 0},
        {"-9223372036854775809", FERRY_EINVAL, 0},
        {"18446744073709551616", FERRY_EINVAL, 0},
        {"0", 0, 0},
        {"-0", 0, 0},
        {"-", FERRY_EINVAL, 0},
        {"12a", FERRY_EINVAL, 0},
        {"0009223372036854775807", 0, INT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rcmd cmd;
        rcmd_init_request(&cmd, REQ_SEND_MESSAGE_V2);
        assert_int_equal(rcmd_ext_add(&cmd, "n", cases[i].text), 0);
        int64_t v = 42;
        int rc = rcmd_ext_get_i64(&cmd, "n", &v);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d, want %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].v)
            fail_msg("%s: got %lld", cases[i].text, (long long)v);
    }
}

static void roundtrip(enum rcmd_ser ser)
{
    static const uint8_t body[] = {0, 1, 2, 0xff, 'x'};
    const char props[] = "KEYS\001order-1\002UNIQ_KEY\001AB\"C\\D\n\002TAGS\001T\xc3\xa9";
    struct rcmd cmd, got;
    uint8_t *frame;
    size_t len;
    char err[160] = "";

    rcmd_init_request(&cmd, REQ_SEND_MESSAGE_V2);
    cmd.ser = ser;
    cmd.opaque = -12345; /* Java's counter wraps to negative */
    cmd.flag = RCMD_FLAG_ONEWAY;
    cmd.language = RCMD_LANG_CPP;
    cmd.remark = (struct rstr){"remark \"quoted\"\ttab", strlen("remark \"quoted\"\ttab")};
    assert_int_equal(rcmd_ext_add(&cmd, "a", "PID_demo"), 0);
    assert_int_equal(rcmd_ext_add(&cmd, "i", props), 0);
    assert_int_equal(rcmd_ext_add_i64(&cmd, "g", 1700000000123LL), 0);
    assert_int_equal(rcmd_ext_add_i64(&cmd, "min", INT64_MIN), 0);
    assert_int_equal(rcmd_ext_add(&cmd, "a", "PID_again"), 0); /* overwrites */
    cmd.body = body;
    cmd.body_len = sizeof body;

    assert_int_equal(frame_encode(&cmd, &frame, &len), 0);
    size_t flen;
    assert_int_equal(frame_peek(frame, len, FRAME_MAX_DEFAULT, &flen, err, sizeof err), 0);
    assert_int_equal(flen, len);
    assert_int_equal(frame[4], (uint8_t)ser);
    assert_int_equal(frame_decode(frame, len, &got, err, sizeof err), 0);

    assert_int_equal(got.ser, ser);
    assert_int_equal(got.code, REQ_SEND_MESSAGE_V2);
    assert_int_equal(got.opaque, -12345);
    assert_int_equal(got.flag, RCMD_FLAG_ONEWAY);
    assert_int_equal(got.language, RCMD_LANG_CPP);
    assert_int_equal(got.version, REMOTING_VERSION);
    assert_rstr(&got.remark, "remark \"quoted\"\ttab");
    assert_int_equal(got.ext_n, 4);
    assert_ext(&got, "a", "PID_again");
    assert_ext(&got, "i", props);
    assert_ext(&got, "g", "1700000000123");
    int64_t v;
    assert_int_equal(rcmd_ext_get_i64(&got, "g", &v), 0);
    assert_true(v == 1700000000123LL);
    assert_int_equal(rcmd_ext_get_i64(&got, "min", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(rcmd_ext_get_i64(&got, "nope", &v), FERRY_ENOTFOUND);
    assert_int_equal(rcmd_ext_get_i64(&got, "a", &v), FERRY_EINVAL);
    assert_int_equal(got.body_len, sizeof body);
    assert_memory_equal(got.body, body, sizeof body);

    /* A copy outlives the frame and its strings are NUL-terminated. */
    struct rcmd *dup = rcmd_dup(&got);
    memset(frame, 0xAA, len);
    ferry_free(frame);
    assert_string_equal(rcmd_ext_get(dup, "a")->p, "PID_again");
    assert_string_equal(dup->remark.p, "remark \"quoted\"\ttab");
    assert_memory_equal(dup->body, body, sizeof body);
    rcmd_free(dup);
}

static void test_json_roundtrip(void **state)
{
    roundtrip(RCMD_SER_JSON);
}

static void test_binary_roundtrip(void **state)
{
    roundtrip(RCMD_SER_ROCKETMQ);
}

/* What rocketmq-client-cpp and ali-ons send: numbers and booleans inside extFields, "" remark,
 * a trailing newline. */
static void test_json_ext_numbers_and_booleans(void **state)
{
    const char *hdr = "{\"code\":310,\"language\":\"CPP\",\"version\":333,\"opaque\":0,\"flag\":0,"
                      "\"remark\":\"\",\"extFields\":{\"b\":\"DemoTopic\",\"d\":4,\"e\":-1,"
                      "\"k\":false,\"m\":true,\"big\":9223372036854775807,\"f\":1.5e3,"
                      "\"gone\":null,\"obj\":{\"x\":[1,\"\\u0001\"]},\"Signature\":\"\"}}\n";
    size_t hlen = strlen(hdr);
    uint8_t *buf = ferry_malloc(hlen);
    struct rcmd cmd;
    char err[160] = "";

    memcpy(buf, hdr, hlen);
    assert_int_equal(rcmd_decode_json(buf, hlen, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.code, 310);
    assert_int_equal(cmd.language, RCMD_LANG_CPP);
    assert_int_equal(cmd.version, 333);
    assert_rstr(&cmd.remark, "");
    assert_ext(&cmd, "b", "DemoTopic");
    assert_ext(&cmd, "d", "4");
    assert_ext(&cmd, "e", "-1");
    assert_ext(&cmd, "k", "false");
    assert_ext(&cmd, "m", "true");
    assert_ext(&cmd, "big", "9223372036854775807"); /* exact: no trip through a double */
    assert_ext(&cmd, "f", "1.5e3");
    assert_ext(&cmd, "obj", "{\"x\":[1,\"\\u0001\"]}");
    assert_ext(&cmd, "Signature", "");
    assert_null(rcmd_ext_get(&cmd, "gone"));
    assert_int_equal(cmd.ext_n, 9);

    /* Re-encoded, every extFields value is a JSON string. */
    cmd.ser = RCMD_SER_JSON;
    cmd.body = NULL;
    cmd.body_len = 0;
    cmd.body_release = NULL;
    uint8_t *frame;
    size_t len;
    assert_int_equal(frame_encode(&cmd, &frame, &len), 0);
    cJSON *root = cJSON_ParseWithLength((const char *)frame + 8, len - 8);
    assert_non_null(root);
    cJSON *ext = cJSON_GetObjectItemCaseSensitive(root, "extFields");
    assert_non_null(ext);
    int n = 0;
    for (cJSON *it = ext->child; it; it = it->next, n++)
        assert_true(cJSON_IsString(it));
    assert_int_equal(n, 9);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ext, "big")->valuestring,
                        "9223372036854775807");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ext, "k")->valuestring, "false");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "language")->valuestring, "CPP");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "code")));
    cJSON_Delete(root);
    ferry_free(frame);
    ferry_free(buf);
}

static void test_json_escapes_and_language(void **state)
{
    const char *hdr = "{\"code\":\"34\",\"language\":\"KOTLIN\",\"extFields\":{\"p\":"
                      "\"\\u0001\\u0002\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\udc00x\"},"
                      "\"unknown\":{\"deep\":[true,false,null,-0.5e-3]},\"opaque\":7}";
    size_t hlen = strlen(hdr);
    uint8_t *buf = ferry_malloc(hlen);
    struct rcmd cmd;
    char err[160] = "";

    memcpy(buf, hdr, hlen);
    assert_int_equal(rcmd_decode_json(buf, hlen, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.code, 34); /* an integer in a string is accepted */
    assert_int_equal(cmd.opaque, 7);
    assert_int_equal(cmd.language, RCMD_LANG_UNKNOWN);
    assert_rstr(&cmd.lang_raw, "KOTLIN");
    assert_null(cmd.remark.p);
    assert_ext(&cmd, "p",
               "\001\002\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd"
               "x");

    /* An unknown language is echoed as received. */
    cmd.ser = RCMD_SER_JSON;
    cmd.body = NULL;
    cmd.body_len = 0;
    cmd.body_release = NULL;
    uint8_t *frame;
    size_t len;
    struct rcmd back;
    assert_int_equal(frame_encode(&cmd, &frame, &len), 0);
    assert_int_equal(frame_decode(frame, len, &back, err, sizeof err), 0);
    assert_rstr(&back.lang_raw, "KOTLIN");
    assert_ext(&back, "p",
               "\001\002\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd"
               "x");
    ferry_free(frame);
    ferry_free(buf);

    /* Defaults when fields are missing; the ordinal form of language. */
    char min[] = " { \"code\" : 11 , \"language\" : 9 } ";
    assert_int_equal(rcmd_decode_json((uint8_t *)min, strlen(min), &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.code, 11);
    assert_int_equal(cmd.language, RCMD_LANG_GO);
    assert_int_equal(cmd.flag, 0);
    assert_int_equal(cmd.ext_n, 0);
}

/* The Java broker's send response of REMOTING.md §1.4, framed by hand: total 0xED = 4 + 233,
 * header word 0x000000E9 (JSON, 233 bytes). */
#define JAVA_RESP_JSON                                                                             \
    "{\"code\":0,\"extFields\":{\"queueId\":\"1\",\"TRACE_ON\":\"true\",\"MSG_REGION\":"           \
    "\"DefaultRegion\",\"msgId\":\"7F00000100002A9F0000000000001A2B\",\"queueOffset\":\"17\"},"    \
    "\"flag\":1,\"language\":\"JAVA\",\"opaque\":57,\"serializeTypeCurrentRPC\":\"JSON\","         \
    "\"version\":409}"

static void test_json_frame_byte_exact(void **state)
{
    static const uint8_t frame[] = "\x00\x00\x00\xED\x00\x00\x00\xE9" JAVA_RESP_JSON;
    const size_t flen = sizeof frame - 1; /* without the literal's NUL */
    struct rcmd cmd;
    uint8_t *keep;
    char err[160] = "";
    size_t need;

    assert_int_equal(flen, 8 + 233);
    assert_int_equal(frame_peek(frame, 8, FRAME_MAX_DEFAULT, &need, err, sizeof err), 0);
    assert_int_equal(need, flen);
    assert_int_equal(decode_copy(frame, flen, &cmd, &keep, err, sizeof err), 0);
    assert_int_equal(cmd.ser, RCMD_SER_JSON);
    assert_int_equal(cmd.code, RESP_SUCCESS);
    assert_int_equal(cmd.flag, RCMD_FLAG_RESPONSE);
    assert_int_equal(cmd.opaque, 57);
    assert_int_equal(cmd.version, 409);
    assert_int_equal(cmd.language, RCMD_LANG_JAVA);
    assert_int_equal(cmd.ext_n, 5);
    assert_ext(&cmd, "queueId", "1");
    assert_ext(&cmd, "msgId", "7F00000100002A9F0000000000001A2B");
    assert_ext(&cmd, "queueOffset", "17");
    assert_null(cmd.body);
    assert_int_equal(cmd.body_len, 0);

    /* Our encoder writes keys in fastjson's (alphabetical) order: the same bytes come back. */
    uint8_t *out;
    size_t len;
    assert_int_equal(frame_encode(&cmd, &out, &len), 0);
    assert_int_equal(len, flen);
    assert_memory_equal(out, frame, flen);
    ferry_free(out);
    ferry_free(keep);
}

/* GET_CONSUMER_LIST_BY_GROUP in the binary header, REMOTING.md §1.5, byte for byte. */
static const uint8_t bin_frame[] = {
    0x00, 0x00, 0x00, 0x2E, 0x01, 0x00, 0x00, 0x2A, /* total 46, ROCKETMQ, 42 */
    0x00, 0x26, 0x00, 0x01, 0x99,                   /* code 38, JAVA, 409 */
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, /* opaque 7, flag 0 */
    0x00, 0x00, 0x00, 0x00,                         /* no remark */
    0x00, 0x00, 0x00, 0x15,                         /* extFields: 21 bytes */
    0x00, 0x0D, 'c',  'o',  'n',  's',  'u',  'm',  'e', 'r', 'G', 'r', 'o', 'u', 'p', /* key */
    0x00, 0x00, 0x00, 0x02, 'G',  '1',                                                 /* value */
};

static void test_binary_frame_byte_exact(void **state)
{
    struct rcmd cmd;
    uint8_t *keep;
    char err[160] = "";

    assert_int_equal(sizeof bin_frame, 50);
    assert_int_equal(decode_copy(bin_frame, sizeof bin_frame, &cmd, &keep, err, sizeof err), 0);
    assert_int_equal(cmd.ser, RCMD_SER_ROCKETMQ);
    assert_int_equal(cmd.code, REQ_GET_CONSUMER_LIST_BY_GROUP);
    assert_int_equal(cmd.language, RCMD_LANG_JAVA);
    assert_int_equal(cmd.version, 409);
    assert_int_equal(cmd.opaque, 7);
    assert_int_equal(cmd.flag, 0);
    assert_null(cmd.remark.p);
    assert_int_equal(cmd.ext_n, 1);
    assert_ext(&cmd, "consumerGroup", "G1");
    assert_int_equal(cmd.body_len, 0);
    ferry_free(keep);

    /* Built from scratch, the same request encodes to the same bytes. */
    struct rcmd req;
    uint8_t *out;
    size_t len;
    rcmd_init_request(&req, REQ_GET_CONSUMER_LIST_BY_GROUP);
    req.ser = RCMD_SER_ROCKETMQ;
    req.opaque = 7;
    rcmd_ext_add(&req, "consumerGroup", "G1");
    assert_int_equal(frame_encode(&req, &out, &len), 0);
    assert_int_equal(len, sizeof bin_frame);
    assert_memory_equal(out, bin_frame, len);
    ferry_free(out);

    /* The answer to it comes back in the binary serialization too. */
    struct rcmd resp;
    rcmd_init_response(&resp, &req, RESP_SYSTEM_ERROR, "no consumer");
    assert_int_equal(frame_encode(&resp, &out, &len), 0);
    assert_int_equal(out[4], RCMD_SER_ROCKETMQ);
    assert_int_equal(decode_copy(out, len, &cmd, &keep, err, sizeof err), 0);
    assert_int_equal(cmd.flag, RCMD_FLAG_RESPONSE);
    assert_int_equal(cmd.opaque, 7);
    assert_int_equal(cmd.code, RESP_SYSTEM_ERROR);
    assert_rstr(&cmd.remark, "no consumer");
    ferry_free(out);
    ferry_free(keep);
}

static void expect_proto(const void *bytes, size_t len, const char *why)
{
    struct rcmd cmd;
    uint8_t *keep;
    char err[160] = "";
    int rc = decode_copy(bytes, len, &cmd, &keep, err, sizeof err);
    ferry_free(keep);
    if (rc != FERRY_EPROTO)
        fail_msg("%s: rc=%d, want FERRY_EPROTO", why, rc);
    if (err[0] == '\0')
        fail_msg("%s: no reason given", why);
}

/* Every proper prefix of a valid frame is rejected by the decoder, and frame_peek asks for
 * the whole frame. */
static void test_truncated(void **state)
{
    static const uint8_t json[] = "\x00\x00\x00\xED\x00\x00\x00\xE9" JAVA_RESP_JSON;
    const uint8_t *frames[] = {json, bin_frame};
    const size_t lens[] = {sizeof json - 1, sizeof bin_frame};
    char err[160];

    for (int f = 0; f < 2; f++) {
        for (size_t n = 0; n < lens[f]; n++) {
            size_t need = 0;
            assert_int_equal(frame_peek(frames[f], n, FRAME_MAX_DEFAULT, &need, err, sizeof err),
                             0);
            assert_true(need == 0 || need == lens[f]);
            expect_proto(frames[f], n, "truncated frame");
        }
        /* A frame whose length field says less than there is. */
        uint8_t *copy = ferry_malloc(lens[f] + 1);
        memcpy(copy, frames[f], lens[f]);
        copy[lens[f]] = 0;
        expect_proto(copy, lens[f] + 1, "frame with a trailing byte");
        ferry_free(copy);
    }
    /* A header cut short inside a frame whose lengths agree. */
    uint8_t cut[sizeof bin_frame];
    memcpy(cut, bin_frame, sizeof cut);
    cut[3] = 0x2E - 6;
    cut[7] = 0x2A - 6;
    expect_proto(cut, sizeof cut - 6, "binary header cut inside extFields");
}

static void frame_with_header(uint8_t *out, size_t *len, uint8_t ser, const void *hdr, size_t hlen)
{
    out[0] = (uint8_t)((4 + hlen) >> 24);
    out[1] = (uint8_t)((4 + hlen) >> 16);
    out[2] = (uint8_t)((4 + hlen) >> 8);
    out[3] = (uint8_t)(4 + hlen);
    out[4] = ser;
    out[5] = (uint8_t)(hlen >> 16);
    out[6] = (uint8_t)(hlen >> 8);
    out[7] = (uint8_t)hlen;
    memcpy(out + 8, hdr, hlen);
    *len = 8 + hlen;
}

static void expect_json_proto(const char *hdr, const char *why)
{
    uint8_t buf[4096];
    size_t len;
    frame_with_header(buf, &len, 0, hdr, strlen(hdr));
    expect_proto(buf, len, why);
}

static void test_bad_lengths(void **state)
{
    char err[160] = "";
    size_t need;

    /* Length fields. */
    static const uint8_t neg[] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(frame_peek(neg, sizeof neg, FRAME_MAX_DEFAULT, &need, err, sizeof err),
                     FERRY_EPROTO);
    expect_proto(neg, sizeof neg, "negative length");
    static const uint8_t tiny[] = {0, 0, 0, 3, 0, 0, 0};
    assert_int_equal(frame_peek(tiny, sizeof tiny, FRAME_MAX_DEFAULT, &need, err, sizeof err),
                     FERRY_EPROTO);
    /* Over the limit: 16 MiB - 4 + 1 (the limit counts the length field). */
    static const uint8_t big[] = {0x00, 0xFF, 0xFF, 0xFD};
    assert_int_equal(frame_peek(big, 4, FRAME_MAX_DEFAULT, &need, err, sizeof err), FERRY_EPROTO);
    assert_non_null(strstr(err, "limit"));
    static const uint8_t max[] = {0x00, 0xFF, 0xFF, 0xFC};
    assert_int_equal(frame_peek(max, 4, FRAME_MAX_DEFAULT, &need, err, sizeof err), 0);
    assert_int_equal(need, FRAME_MAX_DEFAULT);
    assert_int_equal(frame_peek(max, 4, 1024, &need, err, sizeof err), FERRY_EPROTO);
    /* "GET / HTTP/1.1" is a 1.2 GB frame: refused from its first 4 bytes. */
    assert_int_equal(frame_peek((const uint8_t *)"GET / HTTP/1.1\r\n", 16, FRAME_MAX_DEFAULT, &need,
                                err, sizeof err),
                     FERRY_EPROTO);
    /* Unknown serialize type, header longer than the frame: caught by peek already. */
    static const uint8_t ser2[] = {0, 0, 0, 6, 2, 0, 0, 2, '{', '}'};
    assert_int_equal(frame_peek(ser2, sizeof ser2, FRAME_MAX_DEFAULT, &need, err, sizeof err),
                     FERRY_EPROTO);
    expect_proto(ser2, sizeof ser2, "serialize type 2");
    static const uint8_t hl[] = {0, 0, 0, 6, 0, 0, 0, 3, '{', '}'};
    assert_int_equal(frame_peek(hl, sizeof hl, FRAME_MAX_DEFAULT, &need, err, sizeof err),
                     FERRY_EPROTO);
    expect_proto(hl, sizeof hl, "header length > total - 4");

    /* Binary header lengths. */
    uint8_t h[64], buf[128];
    size_t len;
    memcpy(h, bin_frame + 8, 42);
    h[13] = 0x7F; /* remark length 2^31-ish */
    frame_with_header(buf, &len, 1, h, 42);
    expect_proto(buf, len, "binary remark length too large");
    memcpy(h, bin_frame + 8, 42);
    h[13] = 0xFF; /* negative remark length */
    frame_with_header(buf, &len, 1, h, 42);
    expect_proto(buf, len, "binary negative remark length");
    memcpy(h, bin_frame + 8, 42);
    h[20] = 0x16; /* extFields length one past the end */
    frame_with_header(buf, &len, 1, h, 42);
    expect_proto(buf, len, "binary extFields length too large");
    memcpy(h, bin_frame + 8, 42);
    h[21] = 0x80; /* negative key length */
    frame_with_header(buf, &len, 1, h, 42);
    expect_proto(buf, len, "binary negative key length");
    memcpy(h, bin_frame + 8, 42);
    h[37] = 0x03; /* value length past the map */
    frame_with_header(buf, &len, 1, h, 42);
    expect_proto(buf, len, "binary value length too large");
    frame_with_header(buf, &len, 1, h, 20);
    expect_proto(buf, len, "binary header shorter than its fixed part");

    /* JSON headers. */
    expect_json_proto("", "empty JSON header");
    expect_json_proto("[]", "JSON array header");
    expect_json_proto("{\"code\":1", "unterminated object");
    expect_json_proto("{\"code\":1}}", "trailing bytes");
    expect_json_proto("{\"code\":2147483648}", "code over int32");
    expect_json_proto("{\"code\":1.5}", "fractional code");
    expect_json_proto("{\"code\":true}", "boolean code");
    expect_json_proto("{\"code\":01}", "leading zero");
    expect_json_proto("{\"code\":1,\"remark\":\"abc}", "unterminated string");
    expect_json_proto("{\"code\":1,\"remark\":\"\\x\"}", "bad escape");
    expect_json_proto("{\"code\":1,\"remark\":\"\\u12\"}", "short unicode escape");
    expect_json_proto("{\"code\":1,\"extFields\":[]}", "extFields not an object");
    expect_json_proto("{\"code\":1,\"extFields\":{\"a\" 1}}", "missing colon");
    expect_json_proto("{code:1}", "unquoted key");
    expect_json_proto("{\"code\":1,}", "trailing comma");
    expect_json_proto("{\"code\":nul}", "bad literal");

    char deep[200];
    int n = snprintf(deep, sizeof deep, "{\"x\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    expect_json_proto(deep, "nesting deeper than the cap");

    char many[4096];
    n = snprintf(many, sizeof many, "{\"extFields\":{");
    for (int i = 0; i <= RCMD_EXT_MAX; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, "%s\"k%d\":\"v\"", i ? "," : "", i);
    snprintf(many + n, sizeof many - (size_t)n, "}}");
    expect_json_proto(many, "more extFields than the cap");
}

/* Random bytes and random mutations of valid frames never crash the decoder (ASan checks
 * every access: the input is a heap copy of exactly its length). */
static void test_garbage(void **state)
{
    static const uint8_t json[] = "\x00\x00\x00\xED\x00\x00\x00\xE9" JAVA_RESP_JSON;
    uint64_t rng = test_seed();
    uint8_t buf[300];

    for (int iter = 0; iter < 20000; iter++) {
        size_t len;
        if (iter % 2) {
            const uint8_t *src = iter % 4 == 1 ? json : bin_frame;
            len = iter % 4 == 1 ? sizeof json - 1 : sizeof bin_frame;
            memcpy(buf, src, len);
            int flips = 1 + (int)(test_rand(&rng) % 4);
            for (int i = 0; i < flips; i++)
                buf[8 + test_rand(&rng) % (len - 8)] = (uint8_t)test_rand(&rng);
        } else {
            len = 8 + test_rand(&rng) % 200;
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)test_rand(&rng);
            /* Make the lengths agree sometimes, so the header decoders get to run. */
            uint32_t hl = (uint32_t)(len - 8 - test_rand(&rng) % (len - 7));
            buf[0] = buf[1] = buf[2] = 0;
            buf[3] = (uint8_t)(len - 4);
            buf[4] = (uint8_t)(test_rand(&rng) % 2);
            buf[5] = 0;
            buf[6] = (uint8_t)(hl >> 8);
            buf[7] = (uint8_t)hl;
        }
        struct rcmd cmd;
        uint8_t *keep;
        char err[160];
        int rc = decode_copy(buf, len, &cmd, &keep, err, sizeof err);
        assert_true(rc == 0 || rc == FERRY_EPROTO);
        if (rc == 0) {
            uint8_t *out;
            size_t olen;
            int erc = frame_encode(&cmd, &out, &olen);
            assert_true(erc == 0 || erc == FERRY_EINVAL);
            if (erc == 0)
                ferry_free(out);
        }
        ferry_free(keep);
    }
}

static void test_encode_limits_and_helpers(void **state)
{
    struct rcmd cmd, req;
    uint8_t *out;
    size_t len;

    rcmd_init_request(&cmd, 40000);
    cmd.ser = RCMD_SER_ROCKETMQ;
    assert_int_equal(frame_encode(&cmd, &out, &len), FERRY_EINVAL); /* code is int16 there */
    cmd.ser = RCMD_SER_JSON;
    assert_int_equal(frame_encode(&cmd, &out, &len), 0); /* fine in JSON */
    ferry_free(out);
    cmd.ser = (enum rcmd_ser)5;
    assert_int_equal(frame_encode(&cmd, &out, &len), FERRY_EINVAL);

    /* The extFields cap and the scratch space. */
    rcmd_init_request(&cmd, 10);
    char keys[RCMD_EXT_MAX + 1][8];
    for (int i = 0; i < RCMD_EXT_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        assert_int_equal(rcmd_ext_add(&cmd, keys[i], "v"), 0);
    }
    assert_int_equal(rcmd_ext_add(&cmd, "one-more", "v"), FERRY_EINVAL);
    assert_int_equal(rcmd_ext_add(&cmd, "k3", "replaced"), 0);
    rcmd_init_request(&cmd, 10);
    int added = 0;
    while (rcmd_ext_add_i64(&cmd, "same", INT64_MAX) == 0 && added < 1000)
        added++;
    assert_true(added > 10 && added < 1000);

    /* A response to a oneway request keeps the oneway bit, so it is never sent. */
    rcmd_init_request(&req, 37);
    req.flag = RCMD_FLAG_ONEWAY;
    req.opaque = 99;
    req.ser = RCMD_SER_ROCKETMQ;
    rcmd_init_response(&cmd, &req, RESP_SUCCESS, NULL);
    assert_int_equal(cmd.flag, RCMD_FLAG_RESPONSE | RCMD_FLAG_ONEWAY);
    assert_int_equal(cmd.opaque, 99);
    assert_int_equal(cmd.ser, RCMD_SER_ROCKETMQ);
    assert_null(cmd.remark.p);

    assert_string_equal(rcmd_lang_name(RCMD_LANG_RUST), "RUST");
    assert_null(rcmd_lang_name(RCMD_LANG_UNKNOWN));
    assert_null(rcmd_lang_name(RCMD_LANG_N));
}

/* One-letter keys (SEND_MESSAGE_V2) are found through a hint kept by every function that puts a
 * key in ext[]: it must stay exact through a removal (JSON null), a repeated key, a command
 * whose ext_n was lowered by hand, and a decode into a used command. */
static void expect_val(const struct rcmd *cmd, const char *key, const char *want)
{
    const struct rstr *v = rcmd_ext_get(cmd, key);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_int_equal(v->len, strlen(want));
    assert_memory_equal(v->p, want, v->len);
}

static void test_one_letter_keys(void **state)
{
    (void)state;
    struct rcmd cmd;
    char err[128];
    char json[] = "{\"code\":310,\"extFields\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"b\":null,"
                  "\"d\":\"4\",\"a\":\"5\",\"topic\":\"T\"}}";
    memset(&cmd, 0xAB, sizeof cmd); /* a used command: stale hints everywhere */
    assert_int_equal(rcmd_decode_json((uint8_t *)json, strlen(json), &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.ext_n, 4);
    expect_val(&cmd, "a", "5");
    expect_val(&cmd, "b", NULL);
    expect_val(&cmd, "c", "3");
    expect_val(&cmd, "d", "4");
    expect_val(&cmd, "topic", "T");
    expect_val(&cmd, "e", NULL);

    rcmd_init_request(&cmd, 310);
    assert_int_equal(rcmd_ext_add(&cmd, "a", "1"), 0);
    assert_int_equal(rcmd_ext_append(&cmd, "b", "2"), 0);
    assert_int_equal(rcmd_ext_add(&cmd, "c", "3"), 0);
    assert_int_equal(rcmd_ext_add(&cmd, "a", "9"), 0); /* replaces */
    assert_int_equal(cmd.ext_n, 3);
    expect_val(&cmd, "a", "9");
    cmd.ext_n = 1; /* lowered by hand, as a caller reusing the command may */
    expect_val(&cmd, "b", NULL);
    expect_val(&cmd, "c", NULL);
    assert_int_equal(rcmd_ext_add(&cmd, "c", "7"), 0);
    assert_int_equal(rcmd_ext_add(&cmd, "b", "8"), 0);
    assert_int_equal(cmd.ext_n, 3);
    expect_val(&cmd, "a", "9");
    expect_val(&cmd, "b", "8");
    expect_val(&cmd, "c", "7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ext_i64_limits),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_binary_roundtrip),
        cmocka_unit_test(test_json_ext_numbers_and_booleans),
        cmocka_unit_test(test_json_escapes_and_language),
        cmocka_unit_test(test_json_frame_byte_exact),
        cmocka_unit_test(test_binary_frame_byte_exact),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_encode_limits_and_helpers),
        cmocka_unit_test(test_one_letter_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
