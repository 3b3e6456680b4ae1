/* The RocketMQ remoting frame and the command it carries (protocol/REMOTING.md §1).
 *
 *   frame = total_length int32 (counts everything after itself)
 *         | header word int32 (top byte: serialize type, low 24 bits: header length)
 *         | header (JSON or RocketMQ binary) | body
 *
 * A decoded struct rcmd is a set of views: strings point into the frame that was decoded (JSON
 * strings are unescaped in place, so decoding modifies that buffer), and stay valid as long as
 * that buffer does. Nothing is allocated while decoding. A command built for sending holds
 * borrowed pointers that must stay valid until it has been encoded. */
#ifndef FERRY_REMOTING_FRAME_H
#define FERRY_REMOTING_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RCMD_FLAG_RESPONSE 0x1 /* bit 0: response (clear: request) */
#define RCMD_FLAG_ONEWAY   0x2 /* bit 1: oneway request, never answered */

#define RCMD_EXT_MAX      64  /* extFields entries per command; more is a protocol error */
#define RCMD_SCRATCH      512 /* bytes for numbers formatted by rcmd_ext_add_i64() */
#define FRAME_MAX_DEFAULT (16u * 1024 * 1024) /* whole frame incl. the length field, as Java */
#define FRAME_HEADER_MAX  0xFFFFFFu           /* the header length has 24 bits */
#define REMOTING_VERSION  409                 /* MQVersion V4_9_8 ordinal, sent in every frame */

enum rcmd_ser { RCMD_SER_JSON = 0, RCMD_SER_ROCKETMQ = 1 };

/* LanguageCode ordinals (also the binary header byte). */
enum rcmd_lang {
    RCMD_LANG_UNKNOWN = -1,
    RCMD_LANG_JAVA = 0,
    RCMD_LANG_CPP,
    RCMD_LANG_DOTNET,
    RCMD_LANG_PYTHON,
    RCMD_LANG_DELPHI,
    RCMD_LANG_ERLANG,
    RCMD_LANG_RUBY,
    RCMD_LANG_OTHER,
    RCMD_LANG_HTTP,
    RCMD_LANG_GO,
    RCMD_LANG_PHP,
    RCMD_LANG_OMS,
    RCMD_LANG_RUST,
    RCMD_LANG_NODE_JS,
    RCMD_LANG_N
};

/* A string view; p == NULL means "absent" (len is then 0). Not NUL-terminated. */
struct rstr {
    const char *p;
    size_t len;
};

struct rcmd_ext {
    struct rstr key;
    struct rstr val;
};

struct rcmd {
    int32_t code;         /* request code (codes.h REQ_*) or response code (RESP_*) */
    int language;         /* enum rcmd_lang; RCMD_LANG_UNKNOWN when not a known code */
    struct rstr lang_raw; /* JSON only: the name received when it is not a known one */
    int32_t version;      /* sender's MQVersion ordinal */
    int32_t opaque;       /* request id, echoed by the response */
    int32_t flag;         /* RCMD_FLAG_* */
    struct rstr remark;   /* absent when remark.p == NULL */
    /* Where the one-letter keys 'a'..'z' (SEND_MESSAGE_V2's header) are: index + 1 in ext[],
     * kept by the rcmd_ext_* functions; only a hint, checked on use. */
    uint8_t ext_one[26];
    unsigned ext_n; /* extFields; keys are unique (a repeated key keeps the last value) */
    struct rcmd_ext ext[RCMD_EXT_MAX];
    const uint8_t *body; /* NULL when body_len == 0 */
    size_t body_len;
    enum rcmd_ser ser; /* the header's serialization; a reply uses the request's */
    /* Sending only: when set, the remoting layer takes ownership of @body (no copy) and calls
     * body_release(body_ctx) exactly once, on any thread, when it is done with it. */
    void (*body_release)(void *body_ctx);
    void *body_ctx;
    /* Sending only: a body made of several slices (zero-copy, e.g. stored records straight from
     * the CommitLog mapping). When body_iov is set it replaces @body: the body is the
     * concatenation of the body_iovcnt slices and body_len must be their total (else the encoder
     * fails with FERRY_EINVAL). With body_release set, each slice is written as it is (one
     * uv_buf_t each, no copy) and body_release(body_ctx) runs once after the write completed or
     * the connection died; without body_release the slices are copied while encoding. */
    const struct iovec *body_iov;
    int body_iovcnt;
    size_t scratch_used; /* private to rcmd_ext_add_i64() */
    char scratch[RCMD_SCRATCH];
};

/* A request with @code: JSON, language JAVA, version REMOTING_VERSION, flag 0, opaque 0 (the
 * sender assigns it), no fields. */
void rcmd_init_request(struct rcmd *cmd, int32_t code);

/* Copy @src into @dst but for the scratch area (views into it stay @src's) and the unused
 * extFields entries: what memcpy up to offsetof(struct rcmd, scratch) did, without 2 KiB. */
void rcmd_copy_head(struct rcmd *dst, const struct rcmd *src);

/* A response to @req with @code and @remark (borrowed, may be NULL): the request's opaque and
 * serialization, flag RESPONSE. When @req was a oneway request, the response keeps
 * RCMD_FLAG_ONEWAY too, so that remoting_respond() drops it instead of sending it. */
void rcmd_init_response(struct rcmd *resp, const struct rcmd *req, int32_t code,
                        const char *remark);

/* Set an extFields entry (key and value borrowed until the command is encoded); an existing
 * key is overwritten. Returns 0 or FERRY_EINVAL when RCMD_EXT_MAX entries are already used. */
/* rcmd_ext_add() for a key the caller knows is not set yet: no search for it (a request
 * being built field by field). Returns 0 or FERRY_EINVAL (full, NULL). */
int rcmd_ext_append(struct rcmd *cmd, const char *key, const char *val);
/* The same with the lengths known (no strlen), and with a decimal integer (no search). */
int rcmd_ext_append_n(struct rcmd *cmd, const char *key, size_t klen, const char *val, size_t vlen);
int rcmd_ext_append_i64(struct rcmd *cmd, const char *key, size_t klen, int64_t v);
/* For a string-literal key. */
#define RCMD_EXT_APPEND_LIT(cmd, key, val, vlen)                                                   \
    rcmd_ext_append_n(cmd, key, sizeof(key) - 1, val, vlen)
int rcmd_ext_add(struct rcmd *cmd, const char *key, const char *val);
int rcmd_ext_addn(struct rcmd *cmd, const char *key, size_t klen, const char *val, size_t vlen);
/* Same with a decimal integer, formatted into the command's scratch space. Returns 0 or
 * FERRY_EINVAL when the entries or the scratch space are used up. */
int rcmd_ext_add_i64(struct rcmd *cmd, const char *key, int64_t v);

/* The value of @key, or NULL when absent. */
const struct rstr *rcmd_ext_get(const struct rcmd *cmd, const char *key);
/* The value of @key as a decimal integer. Returns 0, FERRY_ENOTFOUND when absent or empty,
 * FERRY_EINVAL when not an integer that fits. */
int rcmd_ext_get_i64(const struct rcmd *cmd, const char *key, int64_t *out);

/* A deep copy in one allocation (strings and body included, a multi-slice body flattened,
 * body_release not copied), for a
 * command that must outlive the buffer it was decoded from. Free with rcmd_free(). */
struct rcmd *rcmd_dup(const struct rcmd *cmd);
void rcmd_free(struct rcmd *cmd);

/* "JAVA", "CPP", ...; NULL for an unknown code. */
const char *rcmd_lang_name(int lang);

/* Look at the first bytes of a frame (@avail bytes at @p). Sets *@frame_len to the size of the
 * whole frame (length field included), or to 0 when fewer than 4 bytes are available.
 * Returns 0, or FERRY_EPROTO with a reason in @err when the length is negative, too small or
 * larger than @max_frame (whole frame), or when the header word (if available) is bad. */
int frame_peek(const uint8_t *p, size_t avail, size_t max_frame, size_t *frame_len, char *err,
               size_t errlen);

/* Decode one whole frame of @len bytes (length field included) into @cmd. The JSON decoder
 * unescapes strings in place, so @frame is modified and @cmd points into it.
 * Returns 0 or FERRY_EPROTO with a reason in @err (which may be NULL). */
int frame_decode(uint8_t *frame, size_t len, struct rcmd *cmd, char *err, size_t errlen);

/* The header decoders on their own (@len header bytes). They fill every header field of @cmd
 * and leave body and ser alone (body_iov, a send-only field, is cleared). Return 0 or
 * FERRY_EPROTO with a reason in @err. */
int rcmd_decode_json(uint8_t *hdr, size_t len, struct rcmd *cmd, char *err, size_t errlen);
int rcmd_decode_binary(const uint8_t *hdr, size_t len, struct rcmd *cmd, char *err, size_t errlen);

/* Encode the length field, the header word and the header of @cmd in cmd->ser into a new
 * buffer (*@out, freed with ferry_free); the length field counts cmd->body_len, and the body
 * itself is not copied, so it can be written separately. Returns 0 or FERRY_EINVAL when the
 * command cannot be represented (header over 16 MiB, frame over INT32_MAX, binary code or
 * version outside int16, key longer than 32767 bytes). */
int frame_encode_head(const struct rcmd *cmd, uint8_t **out, size_t *out_len);
/* The whole frame, body included, in one new buffer. Same errors. */
int frame_encode(const struct rcmd *cmd, uint8_t **out, size_t *out_len);
/* frame_encode() (@with_body) or frame_encode_head() into one new block (ferry_free) whose
 * first @lead bytes are left for the caller (uninitialized) and the frame follows: one
 * allocation for a write request and its bytes. */
int frame_encode_after(const struct rcmd *cmd, size_t lead, int with_body, uint8_t **block,
                       size_t *out_len);

#endif
