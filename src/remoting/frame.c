/* Frame codec: owns the byte layout of a remoting frame and of both header serializations
 * (protocol/REMOTING.md §1.2-1.5), and the command helpers of frame.h.
 *
 * Happy path: frame_peek() sizes a frame from its first 8 bytes, frame_decode() checks the
 * length words and runs the JSON or binary header decoder, which fill struct rcmd with views
 * into the frame; frame_encode_head() writes a command back in its serialization with a
 * count-then-write pass, so exactly one buffer of the right size is allocated.
 *
 * Failure modes: every length read from the wire is checked against the bytes that remain
 * before it is used, so a truncated, oversize or garbage frame gives FERRY_EPROTO with a reason
 * and never a read out of bounds or an allocation. The JSON decoder is a small strict parser of
 * our own (not cJSON) because it must keep 64-bit numbers in extFields exactly as sent, turn
 * numbers and booleans into string views without allocating, and unescape in place; nesting is
 * capped at JSON_DEPTH_MAX. Encoding fails with FERRY_EINVAL for what the wire cannot carry. */
#include "remoting/frame.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JSON_DEPTH_MAX 32
#define BIN_FIXED_LEN  21 /* code..flag (13) + remark length (4) + extFields length (4) */

static const char *const lang_names[RCMD_LANG_N] = {
    "JAVA",  "CPP",  "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY",
    "OTHER", "HTTP", "GO",     "PHP",    "OMS",    "RUST",   "NODE_JS",
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return FERRY_EPROTO;
}

static int rstr_is(struct rstr s, const char *lit)
{
    size_t n = strlen(lit);
    return s.p && s.len == n && memcmp(s.p, lit, n) == 0;
}

/* The first bytes are compared inline: header keys are short (SEND_MESSAGE_V2's are one
 * letter) and looked up linearly, so a memcmp call per candidate was a visible cost. */
static inline int rstr_eq(struct rstr a, struct rstr b)
{
    if (a.len != b.len)
        return 0;
    if (a.len == 0)
        return 1;
    return a.p[0] == b.p[0] && (a.len == 1 || memcmp(a.p + 1, b.p + 1, a.len - 1) == 0);
}

/* Parse a whole view as a decimal int64 ("-"? digits). Returns 0 or -1. */
static int parse_i64(const char *p, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;
    uint64_t lim = (uint64_t)INT64_MAX;

    if (len > 0 && p[0] == '-') {
        neg = 1;
        lim += 1;
        i = 1;
    }
    if (i == len)
        return -1;
    /* No division per digit: overflow when v * 10 + d > lim. */
    const uint64_t lim10 = lim / 10, limd = lim % 10;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > lim10 || (v == lim10 && d > limd))
            return -1;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/* Decimal digits of @v into @t (at least 20 bytes), no NUL; returns the length. Hand-written:
 * snprintf's format machinery was a visible share of every send's cost. */
static size_t fmt_i64(char *t, int64_t v)
{
    char tmp[20];
    size_t n = 0, k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        t[k++] = '-';
    while (n)
        t[k++] = tmp[--n];
    return k;
}

const char *rcmd_lang_name(int lang)
{
    return lang >= 0 && lang < RCMD_LANG_N ? lang_names[lang] : NULL;
}

static int lang_from_name(struct rstr s)
{
    for (int i = 0; i < RCMD_LANG_N; i++)
        if (rstr_is(s, lang_names[i]))
            return i;
    return RCMD_LANG_UNKNOWN;
}

/* Every header field to its default; body, ser and scratch are left alone, except that the
 * send-only multi-slice body is cleared (a decoded command never has one). */
static void reset_header(struct rcmd *cmd)
{
    cmd->body_iov = NULL;
    cmd->body_iovcnt = 0;
    cmd->code = 0;
    cmd->language = RCMD_LANG_JAVA;
    cmd->lang_raw = (struct rstr){0};
    cmd->version = 0;
    cmd->opaque = 0;
    cmd->flag = 0;
    cmd->remark = (struct rstr){0};
    cmd->ext_n = 0;
    cmd->scratch_used = 0;
}

void rcmd_init_request(struct rcmd *cmd, int32_t code)
{
    /* Everything but the extFields array (2 KiB, three times per send on a broker): only its
     * first ext_n entries are ever read. */
    memset(cmd, 0, offsetof(struct rcmd, ext));
    memset(&cmd->body, 0, offsetof(struct rcmd, scratch) - offsetof(struct rcmd, body));
    cmd->code = code;
    cmd->language = RCMD_LANG_JAVA;
    cmd->version = REMOTING_VERSION;
    cmd->ser = RCMD_SER_JSON;
}

void rcmd_copy_head(struct rcmd *dst, const struct rcmd *src)
{
    memcpy(dst, src, offsetof(struct rcmd, ext) + src->ext_n * sizeof src->ext[0]);
    memcpy(&dst->body, &src->body, offsetof(struct rcmd, scratch) - offsetof(struct rcmd, body));
}

void rcmd_init_response(struct rcmd *resp, const struct rcmd *req, int32_t code, const char *remark)
{
    rcmd_init_request(resp, code);
    resp->opaque = req->opaque;
    resp->ser = req->ser;
    resp->flag = RCMD_FLAG_RESPONSE | (req->flag & RCMD_FLAG_ONEWAY);
    if (remark)
        resp->remark = (struct rstr){remark, strlen(remark)};
}

/* ---- one-letter keys ---- */

static inline int one_slot(struct rstr key)
{
    return key.len == 1 && key.p[0] >= 'a' && key.p[0] <= 'z' ? key.p[0] - 'a' : -1;
}

/* ext[i] was just set: remember where its key is if it is one letter. */
static inline void one_note(struct rcmd *cmd, unsigned i)
{
    int s = one_slot(cmd->ext[i].key);
    if (s >= 0)
        cmd->ext_one[s] = (uint8_t)(i + 1);
}

/* The index of @key by its hint: -1 when it is not one letter (search), -2 when it is absent.
 * Exact because every function here that puts a key in ext[] notes it (and a removal notes the
 * entries it moves); a stale hint (ext_n lowered by hand, a reused command) fails the check. */
static inline int one_find(const struct rcmd *cmd, struct rstr key)
{
    int s = one_slot(key);
    if (s < 0)
        return -1;
    unsigned i = cmd->ext_one[s];
    if (i == 0 || i > cmd->ext_n || cmd->ext[i - 1].key.len != 1 ||
        cmd->ext[i - 1].key.p[0] != key.p[0])
        return -2;
    return (int)i - 1;
}

static int ext_set(struct rcmd *cmd, struct rstr key, struct rstr val)
{
    int f = one_find(cmd, key);
    if (f >= 0) {
        cmd->ext[f].val = val;
        return 0;
    }
    for (unsigned i = 0; f == -1 && i < cmd->ext_n; i++) {
        if (rstr_eq(cmd->ext[i].key, key)) {
            cmd->ext[i].val = val;
            return 0;
        }
    }
    if (cmd->ext_n >= RCMD_EXT_MAX)
        return FERRY_EINVAL;
    cmd->ext[cmd->ext_n].key = key;
    cmd->ext[cmd->ext_n].val = val;
    one_note(cmd, cmd->ext_n++);
    return 0;
}

/* ext_set() while decoding: @seen has a bit per first byte of the keys set so far, so a key
 * whose first byte is new is appended without the search (SEND_MESSAGE_V2's one-letter keys
 * all are). */
static int ext_set_seen(struct rcmd *cmd, struct rstr key, struct rstr val, uint64_t seen[4])
{
    unsigned char c = (unsigned char)key.p[0];
    uint64_t bit = (uint64_t)1 << (c & 63);
    if (!(seen[c >> 6] & bit) && cmd->ext_n < RCMD_EXT_MAX) {
        seen[c >> 6] |= bit;
        cmd->ext[cmd->ext_n].key = key;
        cmd->ext[cmd->ext_n].val = val;
        one_note(cmd, cmd->ext_n++);
        return 0;
    }
    return ext_set(cmd, key, val);
}

static void ext_del(struct rcmd *cmd, struct rstr key)
{
    for (unsigned i = 0; i < cmd->ext_n; i++) {
        if (rstr_eq(cmd->ext[i].key, key)) {
            memmove(&cmd->ext[i], &cmd->ext[i + 1], (cmd->ext_n - i - 1) * sizeof cmd->ext[0]);
            cmd->ext_n--;
            for (; i < cmd->ext_n; i++)
                one_note(cmd, i);
            return;
        }
    }
}

int rcmd_ext_addn(struct rcmd *cmd, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (!key || (!val && vlen > 0))
        return FERRY_EINVAL;
    return ext_set(cmd, (struct rstr){key, klen}, (struct rstr){val ? val : "", vlen});
}

int rcmd_ext_append_n(struct rcmd *cmd, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (!key || !val || cmd->ext_n >= RCMD_EXT_MAX)
        return FERRY_EINVAL;
    cmd->ext[cmd->ext_n].key = (struct rstr){key, klen};
    cmd->ext[cmd->ext_n].val = (struct rstr){val, vlen};
    one_note(cmd, cmd->ext_n++);
    return 0;
}

int rcmd_ext_append(struct rcmd *cmd, const char *key, const char *val)
{
    if (!key || !val)
        return FERRY_EINVAL;
    return rcmd_ext_append_n(cmd, key, strlen(key), val, strlen(val));
}

int rcmd_ext_append_i64(struct rcmd *cmd, const char *key, size_t klen, int64_t v)
{
    if (cmd->scratch_used + 20 > sizeof cmd->scratch)
        return FERRY_EINVAL;
    char *dst = cmd->scratch + cmd->scratch_used;
    size_t n = fmt_i64(dst, v);
    int rc = rcmd_ext_append_n(cmd, key, klen, dst, n);
    if (rc == 0)
        cmd->scratch_used += n;
    return rc;
}

int rcmd_ext_add(struct rcmd *cmd, const char *key, const char *val)
{
    if (!key || !val)
        return FERRY_EINVAL;
    return rcmd_ext_addn(cmd, key, strlen(key), val, strlen(val));
}

int rcmd_ext_add_i64(struct rcmd *cmd, const char *key, int64_t v)
{
    char tmp[24];
    size_t n = fmt_i64(tmp, v);

    if (!key || cmd->scratch_used + n > sizeof cmd->scratch)
        return FERRY_EINVAL;
    char *dst = cmd->scratch + cmd->scratch_used;
    memcpy(dst, tmp, n);
    int rc = rcmd_ext_addn(cmd, key, strlen(key), dst, n);
    if (rc == 0)
        cmd->scratch_used += n;
    return rc;
}

const struct rstr *rcmd_ext_get(const struct rcmd *cmd, const char *key)
{
    struct rstr k = {key, key[0] && !key[1] ? 1 : strlen(key)};
    int f = one_find(cmd, k);
    if (f >= 0)
        return &cmd->ext[f].val;
    if (f == -2)
        return NULL;
    for (unsigned i = 0; i < cmd->ext_n; i++)
        if (rstr_eq(cmd->ext[i].key, k))
            return &cmd->ext[i].val;
    return NULL;
}

int rcmd_ext_get_i64(const struct rcmd *cmd, const char *key, int64_t *out)
{
    const struct rstr *v = rcmd_ext_get(cmd, key);
    if (!v || v->len == 0)
        return FERRY_ENOTFOUND;
    return parse_i64(v->p, v->len, out) == 0 ? 0 : FERRY_EINVAL;
}

/* Copy @s to @dst NUL-terminated and return the view of the copy; absent stays absent. */
static struct rstr copy_str(char **dst, struct rstr s)
{
    if (!s.p)
        return s;
    struct rstr r = {*dst, s.len};
    if (s.len)
        memcpy(*dst, s.p, s.len);
    (*dst)[s.len] = '\0';
    *dst += s.len + 1;
    return r;
}

struct rcmd *rcmd_dup(const struct rcmd *cmd)
{
    size_t n = sizeof(struct rcmd) + cmd->lang_raw.len + 1 + cmd->remark.len + 1 + cmd->body_len;
    for (unsigned i = 0; i < cmd->ext_n; i++)
        n += cmd->ext[i].key.len + 1 + cmd->ext[i].val.len + 1;

    struct rcmd *d = ferry_malloc(n);
    rcmd_copy_head(d, cmd);
    d->scratch_used = 0;
    d->body_release = NULL;
    d->body_ctx = NULL;

    char *p = (char *)(d + 1);
    d->lang_raw = copy_str(&p, cmd->lang_raw);
    d->remark = copy_str(&p, cmd->remark);
    for (unsigned i = 0; i < cmd->ext_n; i++) {
        d->ext[i].key = copy_str(&p, cmd->ext[i].key);
        d->ext[i].val = copy_str(&p, cmd->ext[i].val);
    }
    d->body_iov = NULL;
    d->body_iovcnt = 0;
    if (cmd->body_len) {
        if (cmd->body_iov) {
            size_t off = 0;
            for (int i = 0; i < cmd->body_iovcnt && off < cmd->body_len; i++) {
                size_t sl = cmd->body_iov[i].iov_len;
                if (sl > cmd->body_len - off)
                    sl = cmd->body_len - off;
                memcpy(p + off, cmd->body_iov[i].iov_base, sl);
                off += sl;
            }
            if (off < cmd->body_len)
                memset(p + off, 0, cmd->body_len - off);
        } else {
            memcpy(p, cmd->body, cmd->body_len);
        }
        d->body = (const uint8_t *)p;
    } else {
        d->body = NULL;
    }
    return d;
}

void rcmd_free(struct rcmd *cmd)
{
    ferry_free(cmd);
}

/* ---- JSON header decoding ------------------------------------------------------------ */

struct jp {
    uint8_t *p;
    uint8_t *end;
    uint8_t *start;
    char *err;
    size_t errlen;
};

enum jkind { J_STR, J_NUM, J_TRUE, J_FALSE, J_NULL, J_OBJ, J_ARR };

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int jexpect(struct jp *j, uint8_t c, const char *what)
{
    jws(j);
    if (j->p >= j->end || *j->p != c)
        return fail(j->err, j->errlen, "JSON header: expected %s at byte %td", what,
                    j->p - j->start);
    j->p++;
    return 0;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Read 4 hex digits at @s (caller checked 4 bytes remain). Returns the value or -1. */
static long hex4(const uint8_t *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t utf8_put(uint8_t *d, long cp)
{
    if (cp < 0x80) {
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xC0 | cp >> 6);
        d[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (uint8_t)(0xE0 | cp >> 12);
        d[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (uint8_t)(0xF0 | cp >> 18);
    d[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \u escape (after the 'u') at *@src; a valid surrogate pair is joined, a lone surrogate
 * becomes U+FFFD (what Java writes for one). The output is never longer than the input, so
 * unescaping in place is safe. Returns the code point or -1. */
static long unicode_escape(uint8_t **src, uint8_t *end)
{
    if (end - *src < 4)
        return -1;
    long cp = hex4(*src);
    if (cp < 0)
        return -1;
    *src += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && end - *src >= 6 && (*src)[0] == '\\' && (*src)[1] == 'u') {
        long lo = hex4(*src + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *src += 6;
            return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD;
    return cp;
}

/* Decode the escape at *@src (after the backslash) into @out (at most 4 bytes). Returns the
 * number of bytes or -1. */
static int escape(uint8_t **src, uint8_t *end, uint8_t *out)
{
    uint8_t e = *(*src)++;
    long cp;

    switch (e) {
    case '"':
    case '\\':
    case '/':
        *out = e;
        return 1;
    case 'b':
        *out = '\b';
        return 1;
    case 'f':
        *out = '\f';
        return 1;
    case 'n':
        *out = '\n';
        return 1;
    case 'r':
        *out = '\r';
        return 1;
    case 't':
        *out = '\t';
        return 1;
    case 'u':
        cp = unicode_escape(src, end);
        return cp < 0 ? -1 : (int)utf8_put(out, cp);
    default:
        return -1;
    }
}

/* The string at j->p ('"'). With @unescape its content is unescaped in place (the output is
 * never longer than the input) and returned in @out; without, the bytes are only validated and
 * left untouched, so that the raw text of an enclosing value stays intact. */
static int jstring(struct jp *j, struct rstr *out, int unescape)
{
    uint8_t *src = j->p + 1;
    uint8_t *dst = src;
    uint8_t *start = src;
    uint8_t tmp[4];

    for (;;) {
        if (src >= j->end)
            return fail(j->err, j->errlen, "JSON header: unterminated string");
        uint8_t c = *src++;
        if (c == '"')
            break;
        if (c != '\\') {
            if (unescape)
                *dst++ = c;
            continue;
        }
        if (src >= j->end)
            return fail(j->err, j->errlen, "JSON header: unterminated string");
        int n = escape(&src, j->end, tmp);
        if (n < 0)
            return fail(j->err, j->errlen, "JSON header: bad escape sequence");
        if (unescape) {
            memcpy(dst, tmp, (size_t)n);
            dst += n;
        }
    }
    if (out)
        *out = (struct rstr){(const char *)start, (size_t)((unescape ? dst : src - 1) - start)};
    j->p = src;
    return 0;
}

static int jdigits(struct jp *j)
{
    const uint8_t *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s ? 0 : -1;
}

/* A number token; *@is_int tells whether it has neither fraction nor exponent. */
static int jnumber(struct jp *j, struct rstr *out, int *is_int)
{
    uint8_t *s = j->p;
    *is_int = 1;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (jdigits(j) != 0)
        goto bad;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        *is_int = 0;
        if (jdigits(j) != 0)
            goto bad;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        *is_int = 0;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (jdigits(j) != 0)
            goto bad;
    }
    *out = (struct rstr){(const char *)s, (size_t)(j->p - s)};
    return 0;
bad:
    return fail(j->err, j->errlen, "JSON header: bad number");
}

static int jliteral(struct jp *j, const char *lit, struct rstr *out)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return fail(j->err, j->errlen, "JSON header: unexpected character");
    *out = (struct rstr){(const char *)j->p, n};
    j->p += n;
    return 0;
}

static int jvalue(struct jp *j, struct rstr *out, enum jkind *kind, int unescape, int depth);

/* An object or array at j->p, validated and skipped (strings are not unescaped, so the raw
 * text stays intact for a caller that keeps it). */
static int jcontainer(struct jp *j, int depth)
{
    uint8_t close = *j->p == '{' ? '}' : ']';
    int is_obj = close == '}';
    struct rstr tmp;
    enum jkind k;
    int rc;

    if (depth > JSON_DEPTH_MAX)
        return fail(j->err, j->errlen, "JSON header: nested deeper than %d", JSON_DEPTH_MAX);
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        jws(j);
        if (is_obj) {
            if (j->p >= j->end || *j->p != '"')
                return fail(j->err, j->errlen, "JSON header: expected a key");
            if ((rc = jstring(j, NULL, 0)) != 0 || (rc = jexpect(j, ':', "':'")) != 0)
                return rc;
        }
        if ((rc = jvalue(j, &tmp, &k, 0, depth + 1)) != 0)
            return rc;
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        return fail(j->err, j->errlen, "JSON header: expected ',' or '%c'", close);
    }
}

/* Any value. Strings give their (unescaped when @unescape) content, numbers and literals their
 * text, objects and arrays their raw JSON text. */
static int jvalue(struct jp *j, struct rstr *out, enum jkind *kind, int unescape, int depth)
{
    int is_int, rc;
    uint8_t *s;

    jws(j);
    if (j->p >= j->end)
        return fail(j->err, j->errlen, "JSON header: truncated");
    switch (*j->p) {
    case '"':
        *kind = J_STR;
        return jstring(j, out, unescape);
    case '{':
    case '[':
        *kind = *j->p == '{' ? J_OBJ : J_ARR;
        s = j->p;
        if ((rc = jcontainer(j, depth)) != 0)
            return rc;
        *out = (struct rstr){(const char *)s, (size_t)(j->p - s)};
        return 0;
    case 't':
        *kind = J_TRUE;
        return jliteral(j, "true", out);
    case 'f':
        *kind = J_FALSE;
        return jliteral(j, "false", out);
    case 'n':
        *kind = J_NULL;
        return jliteral(j, "null", out);
    default:
        *kind = J_NUM;
        return jnumber(j, out, &is_int);
    }
}

/* An int32 header field: a JSON integer, or a string holding one. */
static int jint32(struct jp *j, const char *name, int32_t *out)
{
    struct rstr v;
    enum jkind k;
    int64_t x;
    int rc = jvalue(j, &v, &k, 1, 1);

    if (rc != 0)
        return rc;
    if (k == J_NULL)
        return 0;
    if ((k != J_NUM && k != J_STR) || parse_i64(v.p, v.len, &x) != 0 || x < INT32_MIN ||
        x > INT32_MAX)
        return fail(j->err, j->errlen, "JSON header: %s is not a 32-bit integer", name);
    *out = (int32_t)x;
    return 0;
}

static int jlanguage(struct jp *j, struct rcmd *cmd)
{
    struct rstr v;
    enum jkind k;
    int64_t x;
    int rc = jvalue(j, &v, &k, 1, 1);

    if (rc != 0)
        return rc;
    cmd->lang_raw = (struct rstr){0};
    if (k == J_NULL) {
        cmd->language = RCMD_LANG_JAVA;
    } else if (k == J_NUM && parse_i64(v.p, v.len, &x) == 0 && x >= 0 && x < RCMD_LANG_N) {
        cmd->language = (int)x;
    } else {
        cmd->language = k == J_STR ? lang_from_name(v) : RCMD_LANG_UNKNOWN;
        if (cmd->language == RCMD_LANG_UNKNOWN)
            cmd->lang_raw = v;
    }
    return 0;
}

static int jext(struct jp *j, struct rcmd *cmd)
{
    struct rstr key, val;
    enum jkind k;
    int rc;

    jws(j);
    if (j->p < j->end && *j->p == 'n')
        return jliteral(j, "null", &val);
    if ((rc = jexpect(j, '{', "'{' for extFields")) != 0)
        return rc;
    jws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        jws(j);
        if (j->p >= j->end || *j->p != '"')
            return fail(j->err, j->errlen, "JSON header: expected an extFields key");
        if ((rc = jstring(j, &key, 1)) != 0 || (rc = jexpect(j, ':', "':'")) != 0 ||
            (rc = jvalue(j, &val, &k, 1, 2)) != 0)
            return rc;
        if (k == J_NULL)
            ext_del(cmd, key);
        else if (ext_set(cmd, key, val) != 0)
            return fail(j->err, j->errlen, "more than %d extFields", RCMD_EXT_MAX);
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        return jexpect(j, '}', "',' or '}' in extFields");
    }
}

static int jfield(struct jp *j, struct rstr key, struct rcmd *cmd)
{
    struct rstr v;
    enum jkind k;
    int rc;

    if (rstr_is(key, "code"))
        return jint32(j, "code", &cmd->code);
    if (rstr_is(key, "flag"))
        return jint32(j, "flag", &cmd->flag);
    if (rstr_is(key, "opaque"))
        return jint32(j, "opaque", &cmd->opaque);
    if (rstr_is(key, "version"))
        return jint32(j, "version", &cmd->version);
    if (rstr_is(key, "language"))
        return jlanguage(j, cmd);
    if (rstr_is(key, "extFields"))
        return jext(j, cmd);
    if (rstr_is(key, "remark")) {
        if ((rc = jvalue(j, &v, &k, 1, 1)) != 0)
            return rc;
        cmd->remark = k == J_NULL ? (struct rstr){0} : v;
        return 0;
    }
    return jvalue(j, &v, &k, 0, 1); /* serializeTypeCurrentRPC and anything unknown */
}

int rcmd_decode_json(uint8_t *hdr, size_t len, struct rcmd *cmd, char *err, size_t errlen)
{
    struct jp j = {hdr, hdr + len, hdr, err, errlen};
    struct rstr key;
    int rc;

    reset_header(cmd);
    if ((rc = jexpect(&j, '{', "'{'")) != 0)
        return rc;
    jws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            jws(&j);
            if (j.p >= j.end || *j.p != '"')
                return fail(err, errlen, "JSON header: expected a key");
            if ((rc = jstring(&j, &key, 1)) != 0 || (rc = jexpect(&j, ':', "':'")) != 0 ||
                (rc = jfield(&j, key, cmd)) != 0)
                return rc;
            jws(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                continue;
            }
            if ((rc = jexpect(&j, '}', "',' or '}'")) != 0)
                return rc;
            break;
        }
    }
    jws(&j); /* rocketmq-client-cpp ends its header with '\n' */
    if (j.p != j.end)
        return fail(err, errlen, "JSON header: %td bytes after the object", j.end - j.p);
    return 0;
}

/* ---- binary header decoding ----------------------------------------------------------- */

int rcmd_decode_binary(const uint8_t *h, size_t len, struct rcmd *cmd, char *err, size_t errlen)
{
    size_t off, end;
    int32_t rlen, elen;

    reset_header(cmd);
    if (len < BIN_FIXED_LEN)
        return fail(err, errlen, "binary header of %zu bytes is shorter than %d", len,
                    BIN_FIXED_LEN);
    cmd->code = (int16_t)be16_get(h);
    cmd->language = h[2] < RCMD_LANG_N ? h[2] : RCMD_LANG_UNKNOWN;
    cmd->version = (int16_t)be16_get(h + 3);
    cmd->opaque = (int32_t)be32_get(h + 5);
    cmd->flag = (int32_t)be32_get(h + 9);
    rlen = (int32_t)be32_get(h + 13);
    off = 17;
    if (rlen < 0 || (size_t)rlen > len - off - 4)
        return fail(err, errlen, "binary header: bad remark length %" PRId32, rlen);
    if (rlen > 0)
        cmd->remark = (struct rstr){(const char *)h + off, (size_t)rlen};
    off += (size_t)rlen;
    elen = (int32_t)be32_get(h + off);
    off += 4;
    if (elen < 0 || (size_t)elen > len - off)
        return fail(err, errlen, "binary header: bad extFields length %" PRId32, elen);
    end = off + (size_t)elen;
    uint64_t seen[4] = {0};
    while (off < end) {
        struct rstr key, val;
        if (end - off < 2)
            return fail(err, errlen, "binary header: truncated extFields key length");
        int16_t klen = (int16_t)be16_get(h + off);
        off += 2;
        if (klen < 0 || (size_t)klen > end - off)
            return fail(err, errlen, "binary header: bad extFields key length %d", klen);
        key = (struct rstr){(const char *)h + off, (size_t)klen};
        off += (size_t)klen;
        if (end - off < 4)
            return fail(err, errlen, "binary header: truncated extFields value length");
        int32_t vlen = (int32_t)be32_get(h + off);
        off += 4;
        if (vlen < 0 || (size_t)vlen > end - off)
            return fail(err, errlen, "binary header: bad extFields value length %" PRId32, vlen);
        val = (struct rstr){(const char *)h + off, (size_t)vlen};
        off += (size_t)vlen;
        /* Java 4.9.8 reads a zero-length key or value as null: no usable entry. */
        if (klen == 0)
            continue;
        if (vlen == 0)
            ext_del(cmd, key);
        else if (ext_set_seen(cmd, key, val, seen) != 0)
            return fail(err, errlen, "more than %d extFields", RCMD_EXT_MAX);
    }
    return 0; /* bytes after the map are ignored, as Java does */
}

/* ---- frames --------------------------------------------------------------------------- */

static int check_word(uint32_t word, int32_t total, char *err, size_t errlen)
{
    uint32_t ser = word >> 24;
    uint32_t hlen = word & FRAME_HEADER_MAX;

    if (ser > RCMD_SER_ROCKETMQ)
        return fail(err, errlen, "unknown serialize type %" PRIu32, ser);
    if (hlen > (uint32_t)total - 4)
        return fail(err, errlen, "bad header length %" PRIu32 " in a frame of %" PRId32 " bytes",
                    hlen, total);
    return 0;
}

int frame_peek(const uint8_t *p, size_t avail, size_t max_frame, size_t *frame_len, char *err,
               size_t errlen)
{
    *frame_len = 0;
    if (avail < 4)
        return 0;
    if (max_frame == 0)
        max_frame = FRAME_MAX_DEFAULT;
    int32_t total = (int32_t)be32_get(p);
    if (total < 4)
        return fail(err, errlen, "bad frame length %" PRId32, total);
    if ((uint64_t)total + 4 > max_frame)
        return fail(err, errlen, "frame length %" PRId32 " over the limit of %zu bytes", total,
                    max_frame);
    if (avail >= 8) {
        int rc = check_word(be32_get(p + 4), total, err, errlen);
        if (rc != 0)
            return rc;
    }
    *frame_len = (size_t)total + 4;
    return 0;
}

int frame_decode(uint8_t *frame, size_t len, struct rcmd *cmd, char *err, size_t errlen)
{
    if (len < 8)
        return fail(err, errlen, "frame of %zu bytes is too short", len);
    int32_t total = (int32_t)be32_get(frame);
    if (total < 4 || (uint64_t)total + 4 != len)
        return fail(err, errlen, "frame length %" PRId32 " does not match %zu bytes", total, len);
    uint32_t word = be32_get(frame + 4);
    int rc = check_word(word, total, err, errlen);
    if (rc != 0)
        return rc;
    size_t hlen = word & FRAME_HEADER_MAX;
    enum rcmd_ser ser = (enum rcmd_ser)(word >> 24);
    rc = ser == RCMD_SER_JSON ? rcmd_decode_json(frame + 8, hlen, cmd, err, errlen)
                              : rcmd_decode_binary(frame + 8, hlen, cmd, err, errlen);
    if (rc != 0)
        return rc;
    cmd->ser = ser;
    cmd->body_len = len - 8 - hlen;
    cmd->body = cmd->body_len ? frame + 8 + hlen : NULL;
    cmd->body_release = NULL;
    cmd->body_ctx = NULL;
    cmd->body_iov = NULL;
    cmd->body_iovcnt = 0;
    return 0;
}

/* ---- encoding ------------------------------------------------------------------------- */

/* An output cursor; with p == NULL it only counts, so one pass sizes the buffer. */
struct wbuf {
    uint8_t *p;
    size_t len;
};

static void w_bytes(struct wbuf *w, const void *s, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void w_lit(struct wbuf *w, const char *s)
{
    w_bytes(w, s, strlen(s));
}

static void w_u8(struct wbuf *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void w_be16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2];
    be16_put(b, v);
    w_bytes(w, b, 2);
}

static void w_be32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4];
    be32_put(b, v);
    w_bytes(w, b, 4);
}

static void w_int(struct wbuf *w, int64_t v)
{
    char t[24];
    w_bytes(w, t, fmt_i64(t, v));
}

/* A JSON string: quotes, backslashes and control characters escaped (fastjson writes
 * \u00XX for the SOH/STX of message properties); other bytes, UTF-8 included, go raw. */
static void w_jstr(struct wbuf *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    w_u8(w, '"');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        w_bytes(w, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            w_lit(w, "\\\"");
            break;
        case '\\':
            w_lit(w, "\\\\");
            break;
        case '\n':
            w_lit(w, "\\n");
            break;
        case '\r':
            w_lit(w, "\\r");
            break;
        case '\t':
            w_lit(w, "\\t");
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            w_bytes(w, u, 6);
        }
        }
    }
    w_bytes(w, s + run, n - run);
    w_u8(w, '"');
}

static void encode_json(const struct rcmd *cmd, struct wbuf *w)
{
    const char *lang = rcmd_lang_name(cmd->language);

    w_lit(w, "{\"code\":");
    w_int(w, cmd->code);
    if (cmd->ext_n) {
        w_lit(w, ",\"extFields\":{");
        for (unsigned i = 0; i < cmd->ext_n; i++) {
            if (i)
                w_u8(w, ',');
            w_jstr(w, cmd->ext[i].key.p, cmd->ext[i].key.len);
            w_u8(w, ':');
            w_jstr(w, cmd->ext[i].val.p, cmd->ext[i].val.len);
        }
        w_u8(w, '}');
    }
    w_lit(w, ",\"flag\":");
    w_int(w, cmd->flag);
    w_lit(w, ",\"language\":");
    if (lang)
        w_jstr(w, lang, strlen(lang));
    else if (cmd->lang_raw.len)
        w_jstr(w, cmd->lang_raw.p, cmd->lang_raw.len);
    else
        w_lit(w, "\"OTHER\"");
    w_lit(w, ",\"opaque\":");
    w_int(w, cmd->opaque);
    if (cmd->remark.p) {
        w_lit(w, ",\"remark\":");
        w_jstr(w, cmd->remark.p, cmd->remark.len);
    }
    w_lit(w, ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    w_int(w, cmd->version);
    w_u8(w, '}');
}

static int bin_check(const struct rcmd *cmd)
{
    if (cmd->code < INT16_MIN || cmd->code > INT16_MAX || cmd->version < INT16_MIN ||
        cmd->version > INT16_MAX || cmd->remark.len > INT32_MAX)
        return FERRY_EINVAL;
    for (unsigned i = 0; i < cmd->ext_n; i++)
        if (cmd->ext[i].key.len > INT16_MAX || cmd->ext[i].val.len > INT32_MAX)
            return FERRY_EINVAL;
    return 0;
}

/* Entries with an empty key or value are left out: Java would read them back as null. */
/* Writes straight into the buffer (sized by ext_bin_len()): a send's header has a dozen short
 * fields, and four writer calls per field were an eighth of a client's send. */
static void encode_ext_bin(const struct rcmd *cmd, struct wbuf *w)
{
    uint8_t *p = w->p + w->len;
    for (unsigned i = 0; i < cmd->ext_n; i++) {
        const struct rcmd_ext *e = &cmd->ext[i];
        if (e->key.len == 0 || e->val.len == 0)
            continue;
        be16_put(p, (uint16_t)e->key.len);
        p += 2;
        if (e->key.len == 1)
            *p = (uint8_t)e->key.p[0];
        else
            memcpy(p, e->key.p, e->key.len);
        p += e->key.len;
        be32_put(p, (uint32_t)e->val.len);
        p += 4;
        memcpy(p, e->val.p, e->val.len);
        p += e->val.len;
    }
    w->len = (size_t)(p - w->p);
}

/* What encode_ext_bin() writes, in bytes, without walking it as a writer. */
static size_t ext_bin_len(const struct rcmd *cmd)
{
    size_t n = 0;
    for (unsigned i = 0; i < cmd->ext_n; i++)
        if (cmd->ext[i].key.len && cmd->ext[i].val.len)
            n += 6 + cmd->ext[i].key.len + cmd->ext[i].val.len;
    return n;
}

static void encode_binary(const struct rcmd *cmd, struct wbuf *w)
{
    int lang = cmd->language >= 0 && cmd->language < RCMD_LANG_N ? cmd->language : RCMD_LANG_OTHER;

    w_be16(w, (uint16_t)cmd->code);
    w_u8(w, (uint8_t)lang);
    w_be16(w, (uint16_t)cmd->version);
    w_be32(w, (uint32_t)cmd->opaque);
    w_be32(w, (uint32_t)cmd->flag);
    w_be32(w, (uint32_t)cmd->remark.len);
    w_bytes(w, cmd->remark.p, cmd->remark.len);
    size_t elen = ext_bin_len(cmd);
    w_be32(w, (uint32_t)elen);
    if (w->p)
        encode_ext_bin(cmd, w);
    else
        w->len += elen; /* sizing pass */
}

static void encode_header(const struct rcmd *cmd, struct wbuf *w)
{
    if (cmd->ser == RCMD_SER_ROCKETMQ)
        encode_binary(cmd, w);
    else
        encode_json(cmd, w);
}

/* Size the header and check that the frame can be represented. */
static int frame_size(const struct rcmd *cmd, size_t *hlen)
{
    struct wbuf count = {NULL, 0};

    if (cmd->ser != RCMD_SER_JSON && cmd->ser != RCMD_SER_ROCKETMQ)
        return FERRY_EINVAL;
    if (cmd->ser == RCMD_SER_ROCKETMQ && bin_check(cmd) != 0)
        return FERRY_EINVAL;
    if (cmd->body_iov) {
        size_t total = 0;
        if (cmd->body_iovcnt < 0)
            return FERRY_EINVAL;
        for (int i = 0; i < cmd->body_iovcnt; i++) {
            if (cmd->body_iov[i].iov_len > INT32_MAX - total)
                return FERRY_EINVAL;
            total += cmd->body_iov[i].iov_len;
        }
        if (total != cmd->body_len)
            return FERRY_EINVAL;
    }
    encode_header(cmd, &count);
    if (count.len > FRAME_HEADER_MAX || cmd->body_len > INT32_MAX ||
        4 + count.len + cmd->body_len > INT32_MAX)
        return FERRY_EINVAL;
    *hlen = count.len;
    return 0;
}

static void write_prefix(const struct rcmd *cmd, struct wbuf *w, size_t hlen)
{
    w_be32(w, (uint32_t)(4 + hlen + cmd->body_len));
    w_be32(w, (uint32_t)cmd->ser << 24 | (uint32_t)hlen);
    encode_header(cmd, w);
    FERRY_ASSERT(w->len == 8 + hlen);
}

int frame_encode_head(const struct rcmd *cmd, uint8_t **out, size_t *out_len)
{
    size_t hlen;
    int rc = frame_size(cmd, &hlen);
    if (rc != 0)
        return rc;
    struct wbuf w = {ferry_malloc(8 + hlen), 0};
    write_prefix(cmd, &w, hlen);
    *out = w.p;
    *out_len = w.len;
    return 0;
}

int frame_encode_after(const struct rcmd *cmd, size_t lead, int with_body, uint8_t **block,
                       size_t *out_len)
{
    size_t hlen;
    int rc = frame_size(cmd, &hlen);
    if (rc != 0)
        return rc;
    uint8_t *b = ferry_malloc(lead + 8 + hlen + (with_body ? cmd->body_len : 0));
    struct wbuf w = {b + lead, 0};
    write_prefix(cmd, &w, hlen);
    if (with_body && cmd->body_iov)
        for (int i = 0; i < cmd->body_iovcnt; i++)
            w_bytes(&w, cmd->body_iov[i].iov_base, cmd->body_iov[i].iov_len);
    else if (with_body)
        w_bytes(&w, cmd->body, cmd->body_len);
    *block = b;
    *out_len = w.len;
    return 0;
}

int frame_encode(const struct rcmd *cmd, uint8_t **out, size_t *out_len)
{
    size_t hlen;
    int rc = frame_size(cmd, &hlen);
    if (rc != 0)
        return rc;
    struct wbuf w = {ferry_malloc(8 + hlen + cmd->body_len), 0};
    write_prefix(cmd, &w, hlen);
    if (cmd->body_iov)
        for (int i = 0; i < cmd->body_iovcnt; i++)
            w_bytes(&w, cmd->body_iov[i].iov_base, cmd->body_iov[i].iov_len);
    else
        w_bytes(&w, cmd->body, cmd->body_len);
    *out = w.p;
    *out_len = w.len;
    return 0;
}
