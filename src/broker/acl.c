/* Access control (acl.h, docs/ACL.md): plain_acl.yml parsed with libyaml into an immutable
 * snapshot, a watcher thread that reloads it, and the per-request check.
 *
 * What each request needs follows RocketMQ 4.9.8 PlainAccessValidator.parse (SEND_BATCH_MESSAGE
 * is checked like SEND_MESSAGE_V2 here, where Java checks only its signature); topics named
 * %RETRY%<group> count as the group. The signature is recomputed with OpenSSL's HMAC over
 * remoting_sign_content() (the bytes libferry's signer hashes too) on a per-thread EVP_MAC_CTX,
 * so a request costs no allocation; it is compared in constant time.
 *
 * Failure modes: a file that is missing, unreadable or invalid at acl_open() is an error; later,
 * the watcher logs why a changed file was refused and keeps the previous snapshot. */
#include "broker/acl.h"

#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/client.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#define ACL_FILE_MAX (16u * 1024 * 1024)
#define KEY_MIN_LEN  7   /* RocketMQ: accessKey and secretKey "length should longer than 6" */
#define SETTLE_MS    300 /* the watcher reloads a file left alone this long (changed_recently) */

/* Permission bits (RocketMQ Permission). */
#define P_DENY 1
#define P_ANY  2
#define P_PUB  4
#define P_SUB  8

#define TRACE_TOPIC "RMQ_SYS_TRACE_TOPIC" /* sends to it skip the permission check (Java) */

/* ---- whitelist patterns --------------------------------------------------------------- */

enum { PAT_ANY, PAT_V4, PAT_V6 };

struct pat {
    int kind;
    uint8_t lo[4], hi[4]; /* PAT_V4: each octet within [lo, hi] ... */
    int has_set;          /* ... and, when set, the last one in @set */
    uint8_t set[32];
    uint8_t v6[16]; /* PAT_V6: this address exactly */
};

struct patlist {
    struct pat *p;
    int n;
};

/* A peer address: IPv4 (v4-mapped IPv6 included) or IPv6. */
struct peer {
    int v6; /* -1: not an address */
    uint8_t a[16];
};

static void peer_parse(const char *s, struct peer *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *h = s;
    size_t n;
    struct in6_addr a6;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        h = s + 1;
        n = rb ? (size_t)(rb - h) : strlen(h);
    } else {
        const char *colon = strchr(s, ':');
        n = colon && !strchr(colon + 1, ':') ? (size_t)(colon - s) : strlen(s);
    }
    out->v6 = -1;
    if (n >= sizeof buf)
        return;
    memcpy(buf, h, n);
    buf[n] = 0;
    if (inet_pton(AF_INET, buf, out->a) == 1) {
        out->v6 = 0;
    } else if (inet_pton(AF_INET6, buf, &a6) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6.s6_addr, mapped, 12) == 0) {
            memcpy(out->a, a6.s6_addr + 12, 4);
            out->v6 = 0;
        } else {
            memcpy(out->a, a6.s6_addr, 16);
            out->v6 = 1;
        }
    }
}

static int pat_match(const struct pat *p, const struct peer *a)
{
    if (p->kind == PAT_ANY)
        return a->v6 >= 0;
    if (p->kind == PAT_V6)
        return a->v6 == 1 && memcmp(p->v6, a->a, 16) == 0;
    if (a->v6 != 0)
        return 0;
    for (int i = 0; i < 4; i++)
        if (a->a[i] < p->lo[i] || a->a[i] > p->hi[i])
            return 0;
    return !p->has_set || (p->set[a->a[3] >> 3] & (1u << (a->a[3] & 7)));
}

static int list_match(const struct patlist *l, const struct peer *a)
{
    for (int i = 0; i < l->n; i++)
        if (pat_match(&l->p[i], a))
            return 1;
    return 0;
}

/* A decimal octet of @n characters at @s. 0 or -1. */
static int octet(const char *s, size_t n, uint8_t *out)
{
    unsigned v = 0;
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 255)
        return -1;
    *out = (uint8_t)v;
    return 0;
}

/* One dotted part of an IPv4 pattern: "*", "a-b", "{a,b}" (when @last) or a number. */
static int v4_part(struct pat *p, int i, const char *s, size_t n, int last)
{
    const char *dash = memchr(s, '-', n);
    if (n == 1 && s[0] == '*') {
        p->lo[i] = 0;
        p->hi[i] = 255;
    } else if (dash) {
        if (octet(s, (size_t)(dash - s), &p->lo[i]) != 0 ||
            octet(dash + 1, n - (size_t)(dash - s) - 1, &p->hi[i]) != 0 || p->lo[i] > p->hi[i])
            return -1;
    } else if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
        if (!last)
            return -1;
        p->has_set = 1;
        p->lo[i] = 0;
        p->hi[i] = 255;
        for (const char *q = s + 1, *end = s + n - 1; q < end;) {
            const char *c = memchr(q, ',', (size_t)(end - q));
            const char *e = c ? c : end;
            uint8_t v;
            while (q < e && *q == ' ')
                q++;
            size_t len = (size_t)(e - q);
            while (len && q[len - 1] == ' ')
                len--;
            if (octet(q, len, &v) != 0)
                return -1;
            p->set[v >> 3] |= (uint8_t)(1u << (v & 7));
            q = c ? c + 1 : end;
        }
    } else {
        if (octet(s, n, &p->lo[i]) != 0)
            return -1;
        p->hi[i] = p->lo[i];
    }
    return 0;
}

/* One pattern (no top-level commas), trimmed and non-empty. */
static int pat_parse(const char *s, struct pat *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!strcmp(s, "*") || !strcmp(s, "*.*.*.*") || !strcmp(s, "*:*:*:*:*:*:*:*")) {
        p->kind = PAT_ANY;
        return 0;
    }
    if (strchr(s, ':')) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, s, &a6) != 1) {
            snprintf(err, errlen,
                     "whitelist address %s: IPv6 addresses must be written out in full (FerryMQ "
                     "has no IPv6 ranges)",
                     s);
            return FERRY_ECONFIG;
        }
        p->kind = PAT_V6;
        memcpy(p->v6, a6.s6_addr, 16);
        return 0;
    }
    p->kind = PAT_V4;
    int i = 0;
    const char *q = s;
    for (; i < 4 && *q; i++) {
        const char *dot = strchr(q, '.');
        size_t n = dot ? (size_t)(dot - q) : strlen(q);
        if (v4_part(p, i, q, n, i == 3) != 0)
            goto bad;
        q += n;
        if (*q == '.' && !*++q)
            goto bad;
    }
    if (*q)
        goto bad;
    if (i < 4) { /* "10.10.*": a trailing * covers the octets left out */
        if (i == 0 || p->lo[i - 1] != 0 || p->hi[i - 1] != 255 || p->has_set)
            goto bad;
        for (; i < 4; i++) {
            p->lo[i] = 0;
            p->hi[i] = 255;
        }
    }
    return 0;
bad:
    snprintf(err, errlen,
             "whitelist address %s: expected an IPv4 address whose octets are numbers, *, "
             "ranges a-b or (last) a set {a,b}; or *",
             s);
    return FERRY_ECONFIG;
}

/* Append the comma-separated patterns of @s to @l. */
static int patlist_add(struct patlist *l, const char *s, char *err, size_t errlen)
{
    size_t len = strlen(s);
    char *buf = ferry_malloc(len + 1);
    int rc = 0, depth = 0;
    size_t start = 0;
    memcpy(buf, s, len + 1);
    for (size_t i = 0; i <= len && rc == 0; i++) {
        if (buf[i] == '{')
            depth++;
        else if (buf[i] == '}')
            depth--;
        if (i < len && (buf[i] != ',' || depth > 0))
            continue;
        buf[i] = 0;
        char *t = buf + start;
        start = i + 1;
        while (isspace((unsigned char)*t))
            t++;
        for (char *e = t + strlen(t); e > t && isspace((unsigned char)e[-1]);)
            *--e = 0;
        if (!*t)
            continue;
        l->p = ferry_realloc(l->p, (size_t)(l->n + 1) * sizeof *l->p);
        if ((rc = pat_parse(t, &l->p[l->n], err, errlen)) == 0)
            l->n++;
    }
    ferry_free(buf);
    return rc;
}

int acl_addr_match(const char *pattern, const char *ip, char *err, size_t errlen)
{
    struct patlist l = {NULL, 0};
    struct peer a;
    int rc = patlist_add(&l, pattern, err, errlen);
    if (rc == 0) {
        peer_parse(ip, &a);
        rc = list_match(&l, &a);
    }
    ferry_free(l.p);
    return rc;
}

/* ---- the rules ------------------------------------------------------------------------ */

struct account {
    char *ak, *sk;
    int admin;
    uint8_t def_topic, def_group;
    int has_perms;        /* any topicPerms/groupPerms entry (Java: resourcePermMap != null) */
    struct bmap topics;   /* topic -> (void *)(uintptr_t)perm */
    struct bmap groups;   /* group (without %RETRY%) -> perm */
    struct patlist white; /* whiteRemoteAddress: these peers need no signature */
};

struct rules {
    atomic_int refs;
    struct patlist global; /* globalWhiteRemoteAddresses */
    struct bmap accounts;  /* accessKey -> struct account * */
};

static void account_free(void *v)
{
    struct account *a = v;
    if (!a)
        return;
    ferry_free(a->ak);
    ferry_free(a->sk);
    bmap_clear(&a->topics, NULL);
    bmap_clear(&a->groups, NULL);
    ferry_free(a->white.p);
    ferry_free(a);
}

static void rules_free(struct rules *r)
{
    if (!r)
        return;
    ferry_free(r->global.p);
    bmap_clear(&r->accounts, account_free);
    ferry_free(r);
}

/* RocketMQ Permission.parsePermFromString, but an unknown word is an error (Java: DENY). */
static int perm_parse(const char *s, uint8_t *out)
{
    char buf[16];
    size_t n = 0;
    for (; *s && n < sizeof buf - 1; s++)
        if (!isspace((unsigned char)*s))
            buf[n++] = *s;
    buf[n] = 0;
    if (!strcmp(buf, "PUB"))
        *out = P_PUB;
    else if (!strcmp(buf, "SUB"))
        *out = P_SUB;
    else if (!strcmp(buf, "PUB|SUB") || !strcmp(buf, "SUB|PUB"))
        *out = P_PUB | P_SUB;
    else if (!strcmp(buf, "DENY"))
        *out = P_DENY;
    else
        return -1;
    return 0;
}

/* ---- YAML ----------------------------------------------------------------------------- */

struct yload {
    yaml_document_t *doc;
    char *err;
    size_t errlen;
};

static int yfail(struct yload *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int yfail(struct yload *y, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    int k = n ? snprintf(y->err, y->errlen, "line %zu: ", n->start_mark.line + 1) : 0;
    if (k < 0 || (size_t)k >= y->errlen)
        k = 0;
    va_start(ap, fmt);
    vsnprintf(y->err + k, y->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return FERRY_ECONFIG;
}

/* A YAML null: no node, or a plain "", "~", "null". */
static int ynull(const yaml_node_t *n)
{
    if (!n)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static const char *yscalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE && !ynull(n) ? (const char *)n->data.scalar.value
                                                         : NULL;
}

/* The scalar items of a sequence (a null counts as empty), each passed to @fn. */
static int yseq(struct yload *y, const yaml_node_t *n, const char *what,
                int (*fn)(struct yload *y, const yaml_node_t *item, const char *s, void *arg),
                void *arg)
{
    if (ynull(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return yfail(y, n, "%s must be a list (- item lines)", what);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(y->doc, *it);
        const char *s = yscalar(item);
        int rc;
        if (!s) {
            if (ynull(item))
                continue;
            return yfail(y, item, "%s: each item must be a single value", what);
        }
        if ((rc = fn(y, item, s, arg)) != 0)
            return rc;
    }
    return 0;
}

static int add_global(struct yload *y, const yaml_node_t *item, const char *s, void *arg)
{
    char e[256];
    if (patlist_add(arg, s, e, sizeof e) != 0)
        return yfail(y, item, "globalWhiteRemoteAddresses: %s", e);
    return 0;
}

struct perm_ctx {
    struct account *a;
    int topics; /* topicPerms (else groupPerms) */
    int idx;
};

/* "name=PERM" of topicPerms / groupPerms (RocketMQ Permission.parseResourcePerms). */
static int add_perm(struct yload *y, const yaml_node_t *item, const char *s, void *arg)
{
    struct perm_ctx *pc = arg;
    const char *what = pc->topics ? "topicPerms" : "groupPerms";
    const char *eq = strchr(s, '=');
    char name[512];
    uint8_t perm;
    if (!eq || strchr(eq + 1, '='))
        return yfail(y, item, "accounts[%d] %s: \"%s\" is not name=PERM", pc->idx, what, s);
    const char *b = s, *e = eq;
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    if (b == e || (size_t)(e - b) >= sizeof name)
        return yfail(y, item, "accounts[%d] %s: \"%.64s\": the name is empty or too long", pc->idx,
                     what, s);
    if (perm_parse(eq + 1, &perm) != 0)
        return yfail(y, item, "accounts[%d] %s: \"%s\": expected PUB, SUB, PUB|SUB or DENY",
                     pc->idx, what, s);
    snprintf(name, sizeof name, "%.*s", (int)(e - b), b);
    /* A topic named %RETRY%G is group G's resource, as in Java's single map. */
    int group = !pc->topics || strncmp(name, RETRY_PREFIX, strlen(RETRY_PREFIX)) == 0;
    const char *key = pc->topics && group ? name + strlen(RETRY_PREFIX) : name;
    bmap_put(group ? &pc->a->groups : &pc->a->topics, key, (void *)(uintptr_t)perm);
    pc->a->has_perms = 1;
    return 0;
}

static int ybool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]))
            return *out = 1, 0;
        if (!strcasecmp(s, no[i]))
            return *out = 0, 0;
    }
    return -1;
}

static int load_account(struct yload *y, const yaml_node_t *n, int idx, struct rules *r)
{
    const yaml_node_t *topics = NULL, *groups = NULL;
    const char *white = NULL, *dtp = NULL, *dgp = NULL;
    char e[256];
    int rc;
    if (n->type != YAML_MAPPING_NODE)
        return yfail(y, n, "accounts[%d] must be a map (accessKey: ..., secretKey: ...)", idx);
    struct account *a = ferry_calloc(1, sizeof *a);
    bmap_init(&a->topics);
    bmap_init(&a->groups);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = yscalar(yaml_document_get_node(y->doc, p->key));
        const yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        const char *s = yscalar(v);
        if (!k)
            continue;
        if (!strcmp(k, "accessKey") && s) {
            ferry_free(a->ak);
            a->ak = ferry_strdup(s);
        } else if (!strcmp(k, "secretKey") && s) {
            ferry_free(a->sk);
            a->sk = ferry_strdup(s);
        } else if (!strcmp(k, "whiteRemoteAddress")) {
            white = s;
        } else if (!strcmp(k, "admin") && s) {
            if (ybool(s, &a->admin) != 0) {
                rc = yfail(y, v, "accounts[%d]: admin must be true or false, not %s", idx, s);
                goto fail;
            }
        } else if (!strcmp(k, "defaultTopicPerm")) {
            dtp = s;
        } else if (!strcmp(k, "defaultGroupPerm")) {
            dgp = s;
        } else if (!strcmp(k, "topicPerms")) {
            topics = v;
        } else if (!strcmp(k, "groupPerms")) {
            groups = v;
        }
    }
    if (!a->ak || strlen(a->ak) < KEY_MIN_LEN || strlen(a->ak) >= REMOTING_KEY_MAX || !a->sk ||
        strlen(a->sk) < KEY_MIN_LEN || strlen(a->sk) >= REMOTING_KEY_MAX) {
        rc = yfail(y, n,
                   "accounts[%d]%s%s: accessKey and secretKey are required, each %d to %d "
                   "characters (RocketMQ: longer than 6)",
                   idx, a->ak ? " " : "", a->ak ? a->ak : "", KEY_MIN_LEN, REMOTING_KEY_MAX - 1);
        goto fail;
    }
    if (bmap_get(&r->accounts, a->ak)) {
        rc = yfail(y, n, "accounts[%d]: accessKey %s is defined twice", idx, a->ak);
        goto fail;
    }
    /* RocketMQ: a missing default permission is DENY. */
    a->def_topic = a->def_group = P_DENY;
    if ((dtp && perm_parse(dtp, &a->def_topic) != 0) ||
        (dgp && perm_parse(dgp, &a->def_group) != 0)) {
        rc = yfail(y, n,
                   "accounts[%d] %s: defaultTopicPerm/defaultGroupPerm must be PUB, SUB, "
                   "PUB|SUB or DENY",
                   idx, a->ak);
        goto fail;
    }
    struct perm_ctx tc = {a, 1, idx}, gc = {a, 0, idx};
    if ((rc = yseq(y, topics, "topicPerms", add_perm, &tc)) != 0 ||
        (rc = yseq(y, groups, "groupPerms", add_perm, &gc)) != 0)
        goto fail;
    if (white && patlist_add(&a->white, white, e, sizeof e) != 0) {
        rc = yfail(y, n, "accounts[%d] %s: whiteRemoteAddress: %s", idx, a->ak, e);
        goto fail;
    }
    bmap_put(&r->accounts, a->ak, a);
    return 0;
fail:
    account_free(a);
    return rc;
}

/* The top-level map: globalWhiteRemoteAddresses and accounts (dataVersion and unknown keys are
 * ignored, as RocketMQ does). */
static int load_root(struct yload *y, const yaml_node_t *root, struct rules *r)
{
    int rc = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++) {
        const char *k = yscalar(yaml_document_get_node(y->doc, p->key));
        const yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        if (!k)
            continue;
        if (!strcmp(k, "globalWhiteRemoteAddresses")) {
            rc = yseq(y, v, k, add_global, &r->global);
        } else if (!strcmp(k, "accounts") && !ynull(v)) {
            if (v->type != YAML_SEQUENCE_NODE)
                return yfail(y, v, "accounts must be a list of accounts (- accessKey: ...)");
            int idx = 0;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 rc == 0 && it < v->data.sequence.items.top; it++, idx++)
                rc = load_account(y, yaml_document_get_node(y->doc, *it), idx, r);
        }
    }
    return rc;
}

/* Parse @len bytes of plain_acl.yml. 0 (*@out set) or FERRY_ECONFIG with @err. */
static int rules_parse(const char *text, size_t len, struct rules **out, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct yload y = {&doc, err, errlen};
    int rc = 0;
    struct rules *r = ferry_calloc(1, sizeof *r);
    atomic_init(&r->refs, 1);
    bmap_init(&r->accounts);
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "line %zu column %zu: %s%s%s", parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        rules_free(r);
        return FERRY_ECONFIG;
    }
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !ynull(root) && root->type != YAML_MAPPING_NODE)
        rc = yfail(&y, root, "the file must be a map (globalWhiteRemoteAddresses:, accounts:)");
    else if (root && root->type == YAML_MAPPING_NODE)
        rc = load_root(&y, root, r);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc) {
        rules_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- the file, snapshots and the watcher ----------------------------------------------- */

struct fstamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct acl {
    char *path;
    pthread_mutex_t mu;    /* guards cur (held only to take a reference or swap) */
    struct rules *cur;     /* @locks mu; holds one reference */
    atomic_ullong version; /* successful loads */
    struct fstamp seen;    /* the file as last read (watcher / acl_poll only) */
    int missing_logged;
    /* watcher */
    pthread_t thr;
    int thr_started;
    int poll_ms;
    pthread_mutex_t wmu;
    pthread_cond_t wcond;
    int stop;                /* @locks wmu */
    atomic_llong last_log_s; /* refusals are logged at most once a second */
};

static void stamp_of(const struct stat *st, struct fstamp *f)
{
    memset(f, 0, sizeof *f);
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
    f->ctime = st->st_ctim;
}

static int stamp_eq(const struct fstamp *a, const struct fstamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Read and parse @path; its stamp (as read) goes to @stamp even when parsing fails. */
static int load_file(const char *path, struct rules **out, struct fstamp *stamp, char *err,
                     size_t errlen)
{
    struct stat st;
    char msg[400];
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    stamp_of(&st, stamp);
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)ACL_FILE_MAX) {
        close(fd);
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path, ACL_FILE_MAX);
        return FERRY_ECONFIG;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *buf = ferry_malloc(len + 1);
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    rc = rules_parse(buf, got, out, msg, sizeof msg);
    if (rc)
        snprintf(err, errlen, "%s: %s", path, msg);
    ferry_free(buf);
    return rc;
}

static struct rules *rules_get(acl_t *acl)
{
    pthread_mutex_lock(&acl->mu);
    struct rules *r = acl->cur;
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&acl->mu);
    return r;
}

static void rules_put(struct rules *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        rules_free(r);
}

static void log_rules(const acl_t *acl, const struct rules *r, const char *verb)
{
    log_info(LOG_BROKER, "ACL rules %s from %s: %u account(s), %d global whitelist pattern(s)",
             verb, acl->path, r->accounts.n, r->global.n);
    if (r->accounts.n == 0 && r->global.n == 0)
        log_warn(LOG_BROKER,
                 "ACL file %s has no accounts and no global whitelist: every request "
                 "is refused",
                 acl->path);
}

/* Whether the file was modified within the last SETTLE_MS. A file written in place (truncated,
 * then written, as editors and config tools often do) may be read half-written; a prefix that
 * parses could grant what its end takes back. The watcher reads a changed file once it has
 * been left alone for SETTLE_MS (and a rename into place, the safe way, settles at once). */
static int changed_recently(const struct stat *st)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const struct timespec *m =
        st->st_mtim.tv_sec > st->st_ctim.tv_sec || (st->st_mtim.tv_sec == st->st_ctim.tv_sec &&
                                                    st->st_mtim.tv_nsec > st->st_ctim.tv_nsec)
            ? &st->st_mtim
            : &st->st_ctim;
    int64_t age_ms =
        (int64_t)(now.tv_sec - m->tv_sec) * 1000 + (now.tv_nsec - m->tv_nsec) / 1000000;
    return age_ms >= 0 && age_ms < SETTLE_MS;
}

int acl_poll(acl_t *acl, char *err, size_t errlen)
{
    struct stat st;
    struct fstamp now;
    struct rules *r = NULL;
    if (stat(acl->path, &st) != 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", acl->path, strerror(errno));
        if (acl->missing_logged)
            return 0; /* reported once until it is back */
        acl->missing_logged = 1;
        return rc;
    }
    acl->missing_logged = 0;
    stamp_of(&st, &now);
    if (stamp_eq(&now, &acl->seen))
        return 0;
    if (acl->poll_ms > 0 && changed_recently(&st)) /* the watcher: wait until it settles */
        return 0;
    int rc = load_file(acl->path, &r, &acl->seen, err, errlen);
    if (rc)
        return rc;
    pthread_mutex_lock(&acl->mu);
    struct rules *old = acl->cur;
    acl->cur = r;
    pthread_mutex_unlock(&acl->mu);
    rules_put(old);
    atomic_fetch_add(&acl->version, 1);
    log_rules(acl, r, "reloaded");
    return 1;
}

static void *watch_main(void *arg)
{
    acl_t *acl = arg;
    char err[512];
    pthread_mutex_lock(&acl->wmu);
    while (!acl->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += acl->poll_ms / 1000;
        dl.tv_nsec += (long)(acl->poll_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        while (!acl->stop && pthread_cond_timedwait(&acl->wcond, &acl->wmu, &dl) != ETIMEDOUT)
            ;
        if (acl->stop)
            break;
        pthread_mutex_unlock(&acl->wmu);
        int rc = acl_poll(acl, err, sizeof err);
        if (rc < 0)
            log_warn(LOG_BROKER, "ACL file not reloaded, the previous rules stay in force: %s",
                     err);
        pthread_mutex_lock(&acl->wmu);
    }
    pthread_mutex_unlock(&acl->wmu);
    return NULL;
}

int acl_open(const char *path, int poll_ms, acl_t **out, char *err, size_t errlen)
{
    acl_t *acl = ferry_calloc(1, sizeof *acl);
    pthread_condattr_t ca;
    int rc;
    acl->path = ferry_strdup(path);
    pthread_mutex_init(&acl->mu, NULL);
    pthread_mutex_init(&acl->wmu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&acl->wcond, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = load_file(path, &acl->cur, &acl->seen, err, errlen)) != 0) {
        acl_free(acl);
        return rc;
    }
    atomic_store(&acl->version, 1);
    log_rules(acl, acl->cur, "loaded");
    acl->poll_ms = poll_ms;
    if (poll_ms > 0) {
        if ((rc = pthread_create(&acl->thr, NULL, watch_main, acl)) != 0) {
            snprintf(err, errlen, "start the ACL file watcher: %s", strerror(rc));
            acl_free(acl);
            return -rc;
        }
        acl->thr_started = 1;
    }
    *out = acl;
    return 0;
}

void acl_free(acl_t *acl)
{
    if (!acl)
        return;
    if (acl->thr_started) {
        pthread_mutex_lock(&acl->wmu);
        acl->stop = 1;
        pthread_cond_signal(&acl->wcond);
        pthread_mutex_unlock(&acl->wmu);
        pthread_join(acl->thr, NULL);
    }
    if (acl->cur)
        rules_put(acl->cur);
    pthread_cond_destroy(&acl->wcond);
    pthread_mutex_destroy(&acl->wmu);
    pthread_mutex_destroy(&acl->mu);
    ferry_free(acl->path);
    ferry_free(acl);
}

uint64_t acl_version(acl_t *acl)
{
    return atomic_load(&acl->version);
}

/* ---- signatures ----------------------------------------------------------------------- */

/* One HMAC-SHA1 context per thread, reused for every request (EVP_MAC_init with a new key
 * does not allocate); freed when the thread exits. */
static EVP_MAC *hmac_alg;
static pthread_key_t hmac_key;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_ctx_free(void *p)
{
    EVP_MAC_CTX_free(p);
}

static void hmac_setup(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    pthread_key_create(&hmac_key, hmac_ctx_free);
}

static EVP_MAC_CTX *hmac_ctx(void)
{
    pthread_once(&hmac_once, hmac_setup);
    EVP_MAC_CTX *c = pthread_getspecific(hmac_key);
    if (c || !hmac_alg)
        return c;
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!(c = EVP_MAC_CTX_new(hmac_alg)))
        return NULL;
    if (!EVP_MAC_CTX_set_params(c, params) || pthread_setspecific(hmac_key, c) != 0) {
        EVP_MAC_CTX_free(c);
        return NULL;
    }
    return c;
}

struct mac_sink {
    EVP_MAC_CTX *c;
    int ok;
};

static void mac_update(void *arg, const void *p, size_t n)
{
    struct mac_sink *s = arg;
    s->ok &= EVP_MAC_update(s->c, p, n);
}

int acl_signature(const struct rcmd *req, const char *secret_key, int with_unique_flag,
                  char out[29])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    struct mac_sink s = {hmac_ctx(), 1};
    if (!s.c || !EVP_MAC_init(s.c, (const unsigned char *)secret_key, strlen(secret_key), NULL))
        return FERRY_EINVAL;
    remoting_sign_content(req, with_unique_flag, mac_update, &s);
    if (!s.ok || !EVP_MAC_final(s.c, mac, &len, sizeof mac) || len != 20)
        return FERRY_EINVAL;
    EVP_EncodeBlock((unsigned char *)out, mac, 20); /* 28 characters and a NUL */
    return 0;
}

/* Whether @req's Signature is @sk's, in constant time. A request with _UNIQUE_KEY_QUERY
 * passes with or without that field in the signed bytes: Java's broker leaves it out, but a
 * 4.9.8 Java client adds it before signing (MQClientAPIImpl.queryMessage). */
static int signature_ok(const struct rcmd *req, const char *sk)
{
    const struct rstr *got = rcmd_ext_get(req, "Signature");
    char want[29];
    if (!got || got->len != REMOTING_SIGNATURE_LEN)
        return 0;
    if (acl_signature(req, sk, 0, want) == 0 &&
        CRYPTO_memcmp(want, got->p, REMOTING_SIGNATURE_LEN) == 0)
        return 1;
    return rcmd_ext_get(req, "_UNIQUE_KEY_QUERY") && acl_signature(req, sk, 1, want) == 0 &&
           CRYPTO_memcmp(want, got->p, REMOTING_SIGNATURE_LEN) == 0;
}

/* ---- the check ------------------------------------------------------------------------ */

struct check {
    const struct account *a;
    const struct rcmd *req;
    char *remark;
    size_t cap;
};

static const char *perm_word(int need)
{
    return need == P_PUB ? "PUB" : need == P_SUB ? "SUB" : "PUB or SUB";
}

/* Java Permission.checkPermission. */
static int perm_allows(int need, int owned)
{
    if (owned & P_DENY)
        return 0;
    if (need & P_ANY)
        return (owned & (P_PUB | P_SUB)) != 0;
    return (need & owned) != 0;
}

/* Does the account hold @need on the topic (or, @group, the group) @name (@n bytes)? A topic
 * %RETRY%G is group G. 0, or -1 with the remark written. */
static int need(struct check *k, const char *name, size_t n, int group, int need_perm)
{
    char buf[NAME_MAX_LEN + 16];
    size_t plen = strlen(RETRY_PREFIX);
    if (!name || n == 0)
        return 0; /* Java: a missing resource is not checked */
    if (!group && n > plen && memcmp(name, RETRY_PREFIX, plen) == 0) {
        group = 1;
        name += plen;
        n -= plen;
    }
    int owned = group ? k->a->def_group : k->a->def_topic;
    if (n < sizeof buf) {
        memcpy(buf, name, n);
        buf[n] = 0;
        void *v = bmap_get(group ? &k->a->groups : &k->a->topics, buf);
        if (v)
            owned = (int)(uintptr_t)v;
    }
    if (perm_allows(need_perm, owned))
        return 0;
    snprintf(k->remark, k->cap, "accessKey %s has no %s permission on %s %.*s%s", k->a->ak,
             perm_word(need_perm), group ? "group" : "topic", (int)(n > 200 ? 200 : n), name,
             owned & P_DENY ? " (DENY)" : "");
    return -1;
}

static int need_ext(struct check *k, const char *key, int group, int perm)
{
    const struct rstr *v = rcmd_ext_get(k->req, key);
    return v ? need(k, v->p, v->len, group, perm) : 0;
}

static int need_json(struct check *k, const cJSON *o, const char *key, int group)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? need(k, v->valuestring, strlen(v->valuestring), group, P_SUB) : 0;
}

/* HEART_BEAT: SUB on every consumer group and every topic it subscribes. */
static int need_heartbeat(struct check *k)
{
    const cJSON *cd, *sd;
    int rc = 0;
    if (!k->req->body_len)
        return 0;
    cJSON *doc = cJSON_ParseWithLength((const char *)k->req->body, k->req->body_len);
    if (!doc) {
        snprintf(k->remark, k->cap, "the heartbeat body is not valid JSON");
        return -1;
    }
    cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(doc, "consumerDataSet"))
    {
        if ((rc = need_json(k, cd, "groupName", 1)) != 0)
            break;
        cJSON_ArrayForEach(sd, cJSON_GetObjectItemCaseSensitive(cd, "subscriptionDataSet"))
        {
            if ((rc = need_json(k, sd, "topic", 0)) != 0)
                break;
        }
        if (rc)
            break;
    }
    cJSON_Delete(doc);
    return rc;
}

static int is_trace_topic(const struct rstr *t)
{
    return t && t->len == strlen(TRACE_TOPIC) && memcmp(t->p, TRACE_TOPIC, t->len) == 0;
}

/* A send: PUB on the topic; a send to %RETRY%G needs SUB on the group G itself (need() maps
 * the retry topic to its group). Java 4.9.8 checks the group named by the request's "group"
 * field instead, which SEND_MESSAGE's header does not have and V2's "a" (the producer group)
 * lets the sender choose, so any signed account could inject into another group's retries;
 * FerryMQ checks the group the messages will reach (docs/ACL.md). */
static int need_send(struct check *k, const struct rstr *topic)
{
    size_t plen = strlen(RETRY_PREFIX);
    if (!topic)
        return 0;
    if (is_trace_topic(topic))
        return 1; /* Java: sends to RMQ_SYS_TRACE_TOPIC skip the permission check */
    if (topic->len >= plen && memcmp(topic->p, RETRY_PREFIX, plen) == 0)
        return need(k, topic->p, topic->len, 0, P_SUB);
    return need(k, topic->p, topic->len, 0, P_PUB);
}

/* Java Permission.ADMIN_CODE. */
static int admin_code(int32_t code)
{
    return code == REQ_UPDATE_AND_CREATE_TOPIC || code == REQ_UPDATE_BROKER_CONFIG ||
           code == REQ_DELETE_TOPIC_IN_BROKER || code == REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP ||
           code == REQ_DELETE_SUBSCRIPTIONGROUP;
}

/* The resources @req touches (PlainAccessValidator.parse). 0, 1 (allowed without further
 * checks: the trace topic), or -1 with the remark. */
static int check_resources(struct check *k)
{
    const struct rcmd *req = k->req;
    const struct rstr *t;
    if (!k->a->has_perms && k->a->admin)
        return 0; /* Java: an admin without topicPerms/groupPerms may touch everything */
    switch (req->code) {
    case REQ_SEND_MESSAGE:
        return need_send(k, rcmd_ext_get(req, "topic"));
    case REQ_SEND_MESSAGE_V2:
    case REQ_SEND_BATCH_MESSAGE:
        t = rcmd_ext_get(req, "b");
        return need_send(k, t ? t : rcmd_ext_get(req, "topic"));
    case REQ_CONSUMER_SEND_MSG_BACK:
        return need_ext(k, "group", 1, P_SUB);
    case REQ_PULL_MESSAGE:
        if (need_ext(k, "topic", 0, P_SUB) != 0)
            return -1;
        return need_ext(k, "consumerGroup", 1, P_SUB);
    case REQ_QUERY_MESSAGE:
        return need_ext(k, "topic", 0, P_SUB);
    case REQ_HEART_BEAT:
        return need_heartbeat(k);
    case REQ_UNREGISTER_CLIENT:
    case REQ_GET_CONSUMER_LIST_BY_GROUP:
        return need_ext(k, "consumerGroup", 1, P_SUB);
    case REQ_UPDATE_CONSUMER_OFFSET:
        if (need_ext(k, "consumerGroup", 1, P_SUB) != 0)
            return -1;
        return need_ext(k, "topic", 0, P_SUB);
    default:
        return 0;
    }
}

static int refuse(acl_t *acl, const struct rcmd *req, const char *peer, const char *remark)
{
    long long now = (long long)time(NULL);
    long long last = atomic_load_explicit(&acl->last_log_s, memory_order_relaxed);
    if (now != last &&
        atomic_compare_exchange_strong_explicit(&acl->last_log_s, &last, now, memory_order_relaxed,
                                                memory_order_relaxed))
        log_warn(LOG_BROKER,
                 "ACL refused request code %d from %s: %s (at most one such line a "
                 "second)",
                 (int)req->code, peer, remark);
    return RESP_NO_PERMISSION;
}

int acl_check(acl_t *acl, const struct rcmd *req, const char *peer, char *remark, size_t cap)
{
    struct peer ip;
    char ak[REMOTING_KEY_MAX];
    int rc = 0;
    remark[0] = 0;
    peer_parse(peer, &ip);
    struct rules *r = rules_get(acl);
    const struct rstr *akv = rcmd_ext_get(req, "AccessKey");
    const struct account *a = NULL;
    if (list_match(&r->global, &ip))
        goto out;
    if (!akv || akv->len == 0) {
        snprintf(remark, cap,
                 "No accessKey is configured: request code %d is not signed and %s is not in "
                 "globalWhiteRemoteAddresses",
                 (int)req->code, peer);
        rc = -1;
        goto out;
    }
    snprintf(ak, sizeof ak, "%.*s", (int)(akv->len < sizeof ak ? akv->len : sizeof ak - 1), akv->p);
    if (akv->len >= sizeof ak || !(a = bmap_get(&r->accounts, ak))) {
        snprintf(remark, cap, "No acl config for accessKey %.64s", ak);
        rc = -1;
        goto out;
    }
    if (list_match(&a->white, &ip))
        goto out; /* Java: the account's whitelist stands in for the signature */
    if (!signature_ok(req, a->sk)) {
        snprintf(remark, cap,
                 "signature mismatch for accessKey %s (the request is not signed with its "
                 "secretKey)",
                 a->ak);
        rc = -1;
        goto out;
    }
    if (admin_code(req->code) && !a->admin) {
        snprintf(remark, cap, "admin request %d needs an admin account; accessKey %s is not one",
                 (int)req->code, a->ak);
        rc = -1;
        goto out;
    }
    struct check k = {a, req, remark, cap};
    if (check_resources(&k) < 0)
        rc = -1;
out:
    rules_put(r);
    return rc ? refuse(acl, req, peer, remark) : 0;
}

/* ---- the dashboard's login ------------------------------------------------------------ */

/* Whether the secrets @a and @b are equal, in time that depends on neither content (only on
 * REMOTING_KEY_MAX): both are compared as zero-padded buffers of that size. */
static int secret_eq(const char *a, const char *b)
{
    unsigned char x[REMOTING_KEY_MAX] = {0}, y[REMOTING_KEY_MAX] = {0};
    size_t n = strnlen(a, sizeof x), m = strnlen(b, sizeof y);
    if (n >= sizeof x || m >= sizeof y)
        return 0;
    memcpy(x, a, n);
    memcpy(y, b, m);
    int eq = CRYPTO_memcmp(x, y, sizeof x) == 0;
    OPENSSL_cleanse(x, sizeof x);
    OPENSSL_cleanse(y, sizeof y);
    return eq && n == m;
}

int acl_admin_login(acl_t *acl, const char *ak, const char *sk, const char *peer, char *why,
                    size_t cap)
{
    /* Compared with when the access key is unknown, so that a wrong key and a wrong secret
     * take the same time. */
    static const char nobody[] = "no account has this secret key";
    struct rules *r = rules_get(acl);
    const struct account *a = ak && *ak ? bmap_get(&r->accounts, ak) : NULL;
    int ok = secret_eq(a ? a->sk : nobody, sk ? sk : "") && a;
    int rc = ACL_LOGIN_OK;
    if (!ok) {
        rc = ACL_LOGIN_BAD_KEYS;
        snprintf(why, cap, "wrong access key or secret key");
    } else if (!a->admin) {
        rc = ACL_LOGIN_NOT_ADMIN;
        snprintf(why, cap,
                 "accessKey %s is not an admin account: the dashboard takes the accounts with "
                 "admin: true in the ACL file",
                 a->ak);
    } else {
        why[0] = 0;
    }
    rules_put(r);
    if (rc != ACL_LOGIN_OK && peer)
        log_warn(LOG_BROKER, "dashboard login refused from %s for accessKey %.64s: %s", peer,
                 ak ? ak : "", rc == ACL_LOGIN_BAD_KEYS ? "unknown key or wrong secret" : why);
    return rc;
}
