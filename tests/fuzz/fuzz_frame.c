/* libFuzzer entry point for the frame codec: feeds the input to frame_peek()/frame_decode()
 * and to both header decoders on their own, and re-encodes whatever decodes. The re-encoded
 * frame must decode to the same command and encode to the same bytes again, so a decoder that
 * accepts something its encoder cannot reproduce is caught as well as any crash.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt, README.md): with clang and -fsanitize=fuzzer as
 * `fuzz_frame`, and with replay_main.c as `fuzz_frame_replay`, a plain program that replays the
 * corpus in tests/fuzz/corpus/frame under CTest. */
#include "common/alloc.h"
#include "common/err.h"
#include "remoting/frame.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1u << 20)

static void die(const char *what)
{
    fprintf(stderr, "fuzz_frame: %s\n", what);
    abort();
}

static int rstr_same(struct rstr a, struct rstr b)
{
    return !a.p == !b.p && a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* @b was decoded from the encoding of @a. */
static void check_same(const struct rcmd *a, const struct rcmd *b)
{
    if (a->code != b->code || a->version != b->version || a->opaque != b->opaque ||
        a->flag != b->flag || a->ser != b->ser)
        die("integer fields differ after a round trip");
    if (a->language >= 0) {
        if (b->language != a->language)
            die("language differs after a round trip");
    } else if (a->lang_raw.len) {
        if (!rstr_same(a->lang_raw, b->lang_raw))
            die("unknown language not echoed");
    } else if (b->language != RCMD_LANG_OTHER) {
        die("unknown language not written as OTHER");
    }
    /* The binary header cannot tell an empty remark from none. */
    if (a->ser == RCMD_SER_ROCKETMQ && a->remark.p && a->remark.len == 0) {
        if (b->remark.p)
            die("empty binary remark came back");
    } else if (!rstr_same(a->remark, b->remark)) {
        die("remark differs after a round trip");
    }
    if (a->ext_n != b->ext_n)
        die("extFields count differs after a round trip");
    for (unsigned i = 0; i < a->ext_n; i++)
        if (!rstr_same(a->ext[i].key, b->ext[i].key) || !rstr_same(a->ext[i].val, b->ext[i].val))
            die("extFields differ after a round trip");
    if (a->body_len != b->body_len || (a->body_len && memcmp(a->body, b->body, a->body_len) != 0))
        die("body differs after a round trip");
}

static void roundtrip(const struct rcmd *cmd)
{
    uint8_t *enc1, *enc2, *work;
    size_t len1, len2, flen;
    struct rcmd back;
    char err[160];

    /* Nothing a decoder accepts from a 1 MiB input is beyond what the encoder can write. */
    if (frame_encode(cmd, &enc1, &len1) != 0)
        die("a decoded command does not encode");
    if (frame_peek(enc1, len1, len1, &flen, err, sizeof err) != 0 || flen != len1)
        die("our own frame fails frame_peek");
    /* Decode a copy (decoding unescapes in place) and compare with the original. */
    work = ferry_malloc(len1);
    memcpy(work, enc1, len1);
    if (frame_decode(work, len1, &back, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_frame: %s\n", err);
        die("our own frame does not decode");
    }
    check_same(cmd, &back);
    /* Encoding is canonical: the same command gives the same bytes. */
    if (frame_encode(&back, &enc2, &len2) != 0)
        die("a re-decoded command does not encode");
    if (len1 != len2 || memcmp(enc1, enc2, len1) != 0)
        die("encoding is not stable");
    ferry_free(enc2);
    ferry_free(work);
    ferry_free(enc1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rcmd cmd;
    char err[160];
    size_t flen;
    uint8_t *buf;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    /* A heap copy of exactly @size bytes: the decoders write into it, and ASan sees overreads. */
    buf = ferry_malloc(size ? size : 1);

    memcpy(buf, data, size);
    int rc = frame_peek(buf, size, FRAME_MAX_DEFAULT, &flen, err, sizeof err);
    if (rc != 0 && rc != FERRY_EPROTO)
        die("frame_peek: unexpected error code");
    if (rc == 0 && flen > 0 && flen <= size) {
        rc = frame_decode(buf, flen, &cmd, err, sizeof err);
        if (rc == 0)
            roundtrip(&cmd);
        else if (rc != FERRY_EPROTO || !err[0])
            die("frame_decode: unexpected error or no reason");
    }

    /* The whole input as a bare header, each way. */
    memcpy(buf, data, size);
    rc = rcmd_decode_json(buf, size, &cmd, err, sizeof err);
    if (rc == 0) {
        cmd.ser = RCMD_SER_JSON;
        cmd.body = NULL;
        cmd.body_len = 0;
        cmd.body_release = NULL;
        roundtrip(&cmd);
    } else if (rc != FERRY_EPROTO) {
        die("rcmd_decode_json: unexpected error code");
    }
    memcpy(buf, data, size);
    rc = rcmd_decode_binary(buf, size, &cmd, err, sizeof err);
    if (rc == 0) {
        cmd.ser = RCMD_SER_ROCKETMQ;
        cmd.body = NULL;
        cmd.body_len = 0;
        cmd.body_release = NULL;
        roundtrip(&cmd);
    } else if (rc != FERRY_EPROTO) {
        die("rcmd_decode_binary: unexpected error code");
    }
    ferry_free(buf);
    return 0;
}
