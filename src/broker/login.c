/* The dashboard's sessions and failed-login counts (login.h). */
#include "broker/login.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_BYTES (LOGIN_TOKEN_HEX / 2)
#define HASH_BYTES  32 /* SHA-256 */
#define PEER_MAX    64 /* an IPv6 address as text fits */

struct session {
    int used;
    unsigned char hash[HASH_BYTES]; /* SHA-256 of the token's bytes */
    int64_t created_ms, last_ms;
    char ak[REMOTING_KEY_MAX], sk[REMOTING_KEY_MAX];
};

#define FAILS_MAX 16 /* the most max_failures can be */

struct peer_fails {
    char peer[PEER_MAX];   /* "" : a free entry */
    int n, pos;            /* at[]: the times of the last n (<= max_failures) failures ... */
    int64_t at[FAILS_MAX]; /* ... a ring, the oldest at pos once full */
    int64_t last_ms, until_ms;
};

struct login {
    struct login_config cfg;
    pthread_mutex_t mu;
    struct session s[LOGIN_SESSIONS]; /* @locks mu */
    struct peer_fails f[LOGIN_PEERS]; /* @locks mu */
};

static int64_t mono_ms(void *arg)
{
    (void)arg;
    return clock_mono_ms();
}

void login_config_init(struct login_config *cfg)
{
    *cfg = (struct login_config){
        .idle_ms = 30 * 60 * 1000,
        .life_ms = 12 * 3600 * 1000,
        .max_failures = 5,
        .fail_window_ms = 60 * 1000,
        .lockout_ms = 60 * 1000,
        .now_ms = mono_ms,
    };
}

login_t *login_new(const struct login_config *cfg)
{
    login_t *l = ferry_calloc(1, sizeof *l);
    l->cfg = *cfg;
    if (l->cfg.max_failures < 1)
        l->cfg.max_failures = 1;
    if (l->cfg.max_failures > FAILS_MAX)
        l->cfg.max_failures = FAILS_MAX;
    if (!l->cfg.now_ms)
        l->cfg.now_ms = mono_ms;
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

static void session_clear(struct session *s)
{
    OPENSSL_cleanse(s, sizeof *s);
}

void login_free(login_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < LOGIN_SESSIONS; i++)
        session_clear(&l->s[i]);
    pthread_mutex_destroy(&l->mu);
    ferry_free(l);
}

static int64_t now(const login_t *l)
{
    return l->cfg.now_ms(l->cfg.clock_arg);
}

/* ---- sessions ---- */

/* The SHA-256 of @n bytes at @p. 0 or -1. */
static int sha256(const unsigned char *p, size_t n, unsigned char out[HASH_BYTES])
{
    unsigned len = 0;
    return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == HASH_BYTES ? 0 : -1;
}

/* The hash of a token given as hex; -1 for anything but LOGIN_TOKEN_HEX hex digits. */
static int token_hash(const char *token, unsigned char out[HASH_BYTES])
{
    unsigned char raw[TOKEN_BYTES];
    if (!token || strlen(token) != LOGIN_TOKEN_HEX)
        return -1;
    for (int i = 0; i < TOKEN_BYTES; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = token[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        raw[i] = (unsigned char)v;
    }
    int rc = sha256(raw, sizeof raw, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

static int live(const login_t *l, const struct session *s, int64_t t)
{
    return s->used && t - s->last_ms < l->cfg.idle_ms && t - s->created_ms < l->cfg.life_ms;
}

/* The session with @hash; NULL when none. @locks mu */
static struct session *find(login_t *l, const unsigned char hash[HASH_BYTES])
{
    for (int i = 0; i < LOGIN_SESSIONS; i++) /* the fixed table */
        if (l->s[i].used && CRYPTO_memcmp(l->s[i].hash, hash, HASH_BYTES) == 0)
            return &l->s[i];
    return NULL;
}

int login_session_new(login_t *l, const char *ak, const char *sk, char token[LOGIN_TOKEN_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[TOKEN_BYTES], hash[HASH_BYTES];
    if (!ak || !sk || strlen(ak) >= REMOTING_KEY_MAX || strlen(sk) >= REMOTING_KEY_MAX ||
        RAND_bytes(raw, sizeof raw) != 1 || sha256(raw, sizeof raw, hash) != 0)
        return FERRY_EINVAL;
    for (int i = 0; i < TOKEN_BYTES; i++) {
        token[2 * i] = hex[raw[i] >> 4];
        token[2 * i + 1] = hex[raw[i] & 15];
    }
    token[LOGIN_TOKEN_HEX] = 0;
    OPENSSL_cleanse(raw, sizeof raw);

    pthread_mutex_lock(&l->mu);
    int64_t t = now(l);
    struct session *slot = NULL;
    for (int i = 0; i < LOGIN_SESSIONS; i++) { /* a free or expired entry, else the LRU one */
        struct session *s = &l->s[i];
        if (!live(l, s, t)) {
            slot = s;
            break;
        }
        if (!slot || s->last_ms < slot->last_ms)
            slot = s;
    }
    session_clear(slot);
    slot->used = 1;
    memcpy(slot->hash, hash, HASH_BYTES);
    slot->created_ms = slot->last_ms = t;
    snprintf(slot->ak, sizeof slot->ak, "%s", ak);
    snprintf(slot->sk, sizeof slot->sk, "%s", sk);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int login_session_get(login_t *l, const char *token, char ak[REMOTING_KEY_MAX],
                      char sk[REMOTING_KEY_MAX])
{
    unsigned char hash[HASH_BYTES];
    int rc = FERRY_ENOTFOUND;
    if (token_hash(token, hash) != 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    int64_t t = now(l);
    struct session *s = find(l, hash);
    if (s && !live(l, s, t)) {
        session_clear(s);
    } else if (s) {
        s->last_ms = t;
        memcpy(ak, s->ak, REMOTING_KEY_MAX);
        memcpy(sk, s->sk, REMOTING_KEY_MAX);
        rc = 0;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void login_session_end(login_t *l, const char *token)
{
    unsigned char hash[HASH_BYTES];
    if (token_hash(token, hash) != 0)
        return;
    pthread_mutex_lock(&l->mu);
    struct session *s = find(l, hash);
    if (s)
        session_clear(s);
    pthread_mutex_unlock(&l->mu);
}

int login_session_count(login_t *l)
{
    int n = 0;
    pthread_mutex_lock(&l->mu);
    int64_t t = now(l);
    for (int i = 0; i < LOGIN_SESSIONS; i++)
        n += live(l, &l->s[i], t);
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* ---- failed logins ---- */

/* The entry of @peer; with @make, a new one (a free entry, else the one seen longest ago)
 * when it has none. @locks mu */
static struct peer_fails *peer_entry(login_t *l, const char *peer, int make)
{
    struct peer_fails *slot = NULL;
    for (int i = 0; i < LOGIN_PEERS; i++) { /* the fixed table */
        struct peer_fails *f = &l->f[i];
        if (f->peer[0] && strcmp(f->peer, peer) == 0)
            return f;
        if (!slot || (slot->peer[0] && (!f->peer[0] || f->last_ms < slot->last_ms)))
            slot = f;
    }
    if (!make)
        return NULL;
    memset(slot, 0, sizeof *slot);
    snprintf(slot->peer, sizeof slot->peer, "%s", peer);
    return slot;
}

int64_t login_locked_ms(login_t *l, const char *peer)
{
    int64_t left = 0;
    pthread_mutex_lock(&l->mu);
    int64_t t = now(l);
    struct peer_fails *f = peer_entry(l, peer, 0);
    if (f && f->until_ms > t)
        left = f->until_ms - t;
    pthread_mutex_unlock(&l->mu);
    return left;
}

int64_t login_failed(login_t *l, const char *peer)
{
    int64_t lock = 0;
    pthread_mutex_lock(&l->mu);
    int64_t t = now(l);
    int max = l->cfg.max_failures;
    struct peer_fails *f = peer_entry(l, peer, 1);
    f->last_ms = t;
    f->at[f->pos] = t;
    f->pos = (f->pos + 1) % max;
    if (f->n < max)
        f->n++;
    if (f->n == max && t - f->at[f->pos] < l->cfg.fail_window_ms) { /* max within the window */
        f->until_ms = t + l->cfg.lockout_ms;
        f->n = f->pos = 0; /* after the lockout, counting starts over */
        lock = l->cfg.lockout_ms;
    }
    pthread_mutex_unlock(&l->mu);
    return lock;
}

void login_succeeded(login_t *l, const char *peer)
{
    pthread_mutex_lock(&l->mu);
    struct peer_fails *f = peer_entry(l, peer, 0);
    if (f)
        memset(f, 0, sizeof *f);
    pthread_mutex_unlock(&l->mu);
}
