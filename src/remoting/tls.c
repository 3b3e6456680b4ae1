/* TLS for remoting connections and the HA port: configuration, OpenSSL contexts, memory-BIO
 * sessions and SSL on sockets (see tls.h and docs/TLS.md).
 *
 * Happy path: a server process builds one context per role at start (certificates loaded and
 * checked there, so a bad file is a start-up error naming the key); every connection then
 * gets an SSL object of it. A memory-BIO session never touches a socket: conn.c feeds it the
 * ciphertext libuv read and sends what tls_session_out() returns, so the connection keeps its
 * libuv reads, writes and timers unchanged.
 *
 * Failure modes: a handshake or record error is returned as TLS_FAIL (or -1 with errno EPROTO)
 * with OpenSSL's reason, plus the verification result when a certificate was refused; the
 * caller logs it and closes that connection only. */
#include "remoting/tls.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_INBUF (32 * 1024) /* ciphertext read per libuv read: two full records */

const char *const tls_mode_names[] = {"disabled", "permissive", "enforcing", NULL};
const char *const tls_need_auth_names[] = {"none", "optional", "require", NULL};

/* ---- configuration -------------------------------------------------------------------- */

/* RocketMQ's tls.properties names, onto the same struct (tls.config.file itself is not read
 * from the file). */
#define FILE_ROW(name, k, type, names)                                                             \
    {                                                                                              \
        name, type, offsetof(struct tls_config, k),                                                \
            type == CONF_STR ? sizeof(((struct tls_config *)0)->k) : 0, "", 0, 0, names, 0, ""     \
    }
static const struct conf_def file_defs[] = {
    FILE_ROW("tls.server.mode", tlsMode, CONF_ENUM, tls_mode_names),
    FILE_ROW("tls.server.need.client.auth", tlsServerNeedClientAuth, CONF_ENUM,
             tls_need_auth_names),
    FILE_ROW("tls.server.keyPath", tlsServerKeyPath, CONF_STR, NULL),
    FILE_ROW("tls.server.keyPassword", tlsServerKeyPassword, CONF_STR, NULL),
    FILE_ROW("tls.server.certPath", tlsServerCertPath, CONF_STR, NULL),
    FILE_ROW("tls.server.authClient", tlsServerAuthClient, CONF_BOOL, NULL),
    FILE_ROW("tls.server.trustCertPath", tlsServerTrustCertPath, CONF_STR, NULL),
    FILE_ROW("tls.client.keyPath", tlsClientKeyPath, CONF_STR, NULL),
    FILE_ROW("tls.client.keyPassword", tlsClientKeyPassword, CONF_STR, NULL),
    FILE_ROW("tls.client.certPath", tlsClientCertPath, CONF_STR, NULL),
    FILE_ROW("tls.client.authServer", tlsClientAuthServer, CONF_BOOL, NULL),
    FILE_ROW("tls.client.trustCertPath", tlsClientTrustCertPath, CONF_STR, NULL),
    FILE_ROW("tls.test.mode.enable", tlsTestModeEnable, CONF_BOOL, NULL),
    FILE_ROW("tls.enable", tlsEnable, CONF_BOOL, NULL),
    CONF_ROW_END,
};

int tls_config_load_file(struct tls_config *cfg, char *err, size_t errlen)
{
    char path[TLS_PATH_MAX], msg[512];
    if (!cfg->tlsConfigFile[0])
        return 0;
    snprintf(path, sizeof path, "%s", cfg->tlsConfigFile);
    int rc = conf_load_file(file_defs, cfg, path, msg, sizeof msg);
    if (rc)
        snprintf(err, errlen, "tlsConfigFile=%s: %s", path, msg);
    return rc;
}

void tls_config_mask(struct tls_config *cfg)
{
    if (cfg->tlsServerKeyPassword[0])
        snprintf(cfg->tlsServerKeyPassword, sizeof cfg->tlsServerKeyPassword, "******");
    if (cfg->tlsClientKeyPassword[0])
        snprintf(cfg->tlsClientKeyPassword, sizeof cfg->tlsClientKeyPassword, "******");
}

void tls_client_config_from(struct tls_client_config *cc, const struct tls_config *cfg)
{
    *cc = (struct tls_client_config){
        .enable = cfg->tlsEnable,
        .auth_server = cfg->tlsClientAuthServer,
        .trust_cert_path = cfg->tlsClientTrustCertPath,
        .cert_path = cfg->tlsClientCertPath,
        .key_path = cfg->tlsClientKeyPath,
        .key_password = cfg->tlsClientKeyPassword,
    };
}

static int empty(const char *s)
{
    return !s || !s[0];
}

int tls_client_config_env(struct tls_client_config *cc, struct tls_config *storage, char *err,
                          size_t errlen)
{
    const char *on = getenv("FERRY_TLS_ENABLE"), *file = getenv("FERRY_TLS_CONFIG_FILE");
    memset(storage, 0, sizeof *storage);
    if (!cc->enable && on && strcasecmp(on, "true") == 0)
        cc->enable = 1;
    if (empty(file))
        return 0;
    if (strlen(file) >= sizeof storage->tlsConfigFile) {
        snprintf(err, errlen, "FERRY_TLS_CONFIG_FILE: path too long");
        return FERRY_ECONFIG;
    }
    snprintf(storage->tlsConfigFile, sizeof storage->tlsConfigFile, "%s", file);
    int rc = tls_config_load_file(storage, err, errlen);
    if (rc)
        return rc;
    if (!cc->enable && !on)
        cc->enable = storage->tlsEnable;
    if (!cc->auth_server)
        cc->auth_server = storage->tlsClientAuthServer;
    if (empty(cc->trust_cert_path))
        cc->trust_cert_path = storage->tlsClientTrustCertPath;
    if (empty(cc->cert_path))
        cc->cert_path = storage->tlsClientCertPath;
    if (empty(cc->key_path))
        cc->key_path = storage->tlsClientKeyPath;
    if (empty(cc->key_password))
        cc->key_password = storage->tlsClientKeyPassword;
    return 0;
}

/* ---- contexts ------------------------------------------------------------------------- */

struct tls_ctx {
    SSL_CTX *ssl;
    atomic_int refs;
    int server;
    int verify_host; /* client: check the server's name / address */
};

/* OpenSSL's most recent error as text (its queue is cleared). */
static void ssl_reason(char *buf, size_t cap)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last)
        ERR_error_string_n(last, buf, cap);
    else
        snprintf(buf, cap, "unknown error");
}

static int pem_password(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pw = u;
    size_t n = pw ? strlen(pw) : 0;
    if (n > (size_t)size)
        return -1;
    memcpy(buf, pw, n);
    return (int)n;
}

static int accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

static tls_ctx_t *ctx_alloc(SSL_CTX *ssl, int server)
{
    tls_ctx_t *c = ferry_calloc(1, sizeof *c);
    c->ssl = ssl;
    c->server = server;
    atomic_init(&c->refs, 1);
    /* TLS 1.2 and 1.3 only; no session resumption (each remoting connection lives long). */
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_num_tickets(ssl, 0);
    return c;
}

/* Certificate chain and key files into @ctx. @what names the keys for messages. */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, const char *password,
                     const char *what, char *err, size_t errlen)
{
    char r[256];
    SSL_CTX_set_default_passwd_cb(ctx, pem_password);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)(password ? password : ""));
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_reason(r, sizeof r);
        snprintf(err, errlen, "%sCertPath=%s: %s", what, cert, r);
        return FERRY_ECONFIG;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(r, sizeof r);
        snprintf(err, errlen, "%sKeyPath=%s: %s (wrong %sKeyPassword?)", what, key, r, what);
        return FERRY_ECONFIG;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(r, sizeof r);
        snprintf(err, errlen, "%sKeyPath=%s does not match %sCertPath=%s: %s", what, key, what,
                 cert, r);
        return FERRY_ECONFIG;
    }
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    return 0;
}

/* Trusted CAs: @path, or the system's store when empty. */
static int load_trust(SSL_CTX *ctx, const char *path, const char *key, char *err, size_t errlen)
{
    char r[256];
    int ok = empty(path) ? SSL_CTX_set_default_verify_paths(ctx)
                         : SSL_CTX_load_verify_locations(ctx, path, NULL);
    if (ok != 1) {
        ssl_reason(r, sizeof r);
        snprintf(err, errlen, "%s=%s: %s", key, empty(path) ? "(system default)" : path, r);
        return FERRY_ECONFIG;
    }
    return 0;
}

/* Test mode: a P-256 key and a self-signed certificate for localhost / 127.0.0.1, valid from
 * an hour ago for a year (RocketMQ's test mode uses Netty's SelfSignedCertificate). */
static int make_self_signed(SSL_CTX *ctx, char *err, size_t errlen)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_EXTENSION *ext = NULL;
    X509V3_CTX v3;
    int ok = 0;
    uint8_t serial[8];
    if (!pk || !x)
        goto out;
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7F;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    if (!sn)
        goto out;
    X509_set_version(x, X509_VERSION_3);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"FerryMQ", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"FerryMQ test mode",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pk);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    if (!ext || !X509_add_ext(x, ext, -1))
        goto out;
    if (!X509_sign(x, pk, EVP_sha256()))
        goto out;
    ok = SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, pk) == 1;
out:
    if (!ok) {
        char r[256];
        ssl_reason(r, sizeof r);
        snprintf(err, errlen, "tlsTestModeEnable: cannot make a self-signed certificate: %s", r);
    }
    X509_EXTENSION_free(ext);
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok ? 0 : FERRY_ECONFIG;
}

int tls_server_ctx_new(const struct tls_config *cfg, tls_ctx_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->tlsMode == TLS_MODE_DISABLED)
        return 0;
    if (!cfg->tlsTestModeEnable && (!cfg->tlsServerCertPath[0] || !cfg->tlsServerKeyPath[0])) {
        snprintf(err, errlen,
                 "tlsMode=%s needs tlsServerCertPath and tlsServerKeyPath (or "
                 "tlsTestModeEnable=true for a self-signed certificate)",
                 tls_mode_names[cfg->tlsMode]);
        return FERRY_ECONFIG;
    }
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (!ssl) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return FERRY_ECONFIG;
    }
    tls_ctx_t *c = ctx_alloc(ssl, 1);
    int rc = cfg->tlsTestModeEnable
                 ? make_self_signed(ssl, err, errlen)
                 : load_pair(ssl, cfg->tlsServerCertPath, cfg->tlsServerKeyPath,
                             cfg->tlsServerKeyPassword, "tlsServer", err, errlen);
    if (rc == 0 && cfg->tlsServerNeedClientAuth != TLS_AUTH_NONE) {
        int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
        if (cfg->tlsServerNeedClientAuth == TLS_AUTH_REQUIRE)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if (cfg->tlsServerAuthClient) {
            rc =
                load_trust(ssl, cfg->tlsServerTrustCertPath, "tlsServerTrustCertPath", err, errlen);
            if (rc == 0 && cfg->tlsServerTrustCertPath[0]) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tlsServerTrustCertPath);
                if (names)
                    SSL_CTX_set_client_CA_list(ssl, names);
            }
            SSL_CTX_set_verify(ssl, mode, NULL);
            if (rc == 0 && !cfg->tlsServerTrustCertPath[0])
                log_warn(LOG_REMOTING,
                         "TLS: tlsServerAuthClient=true without tlsServerTrustCertPath: client "
                         "certificates are checked against the system's CAs, so one any public "
                         "CA issued passes; set tlsServerTrustCertPath to your own CA");
        } else {
            SSL_CTX_set_verify(ssl, mode, accept_any); /* RocketMQ: InsecureTrustManager */
        }
    }
    if (rc) {
        tls_ctx_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}

int tls_client_ctx_new(const struct tls_client_config *cc, tls_ctx_t **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (!cc->enable)
        return 0;
    if (empty(cc->cert_path) != empty(cc->key_path)) {
        snprintf(err, errlen, "a TLS client certificate needs both its certificate and its key");
        return FERRY_ECONFIG;
    }
    SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
    if (!ssl) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return FERRY_ECONFIG;
    }
    tls_ctx_t *c = ctx_alloc(ssl, 0);
    int rc = 0;
    if (!empty(cc->cert_path))
        rc =
            load_pair(ssl, cc->cert_path, cc->key_path, cc->key_password, "tlsClient", err, errlen);
    if (rc == 0 && cc->auth_server) {
        rc = load_trust(ssl, cc->trust_cert_path, "tlsClientTrustCertPath", err, errlen);
        SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        c->verify_host = 1;
    } else {
        SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    if (rc) {
        tls_ctx_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}

void tls_ctx_ref(tls_ctx_t *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
}

void tls_ctx_unref(tls_ctx_t *ctx)
{
    if (ctx && atomic_fetch_sub(&ctx->refs, 1) == 1) {
        SSL_CTX_free(ctx->ssl);
        ferry_free(ctx);
    }
}

int tls_ctx_is_server(const tls_ctx_t *ctx)
{
    return ctx->server;
}

int tls_is_handshake(const uint8_t *p, size_t n)
{
    return n >= 1 && p[0] == 0x16 && (n < 2 || p[1] == 3);
}

/* An SSL of @ctx in its role; a client that verifies checks @host (name or IP literal). */
static SSL *ssl_new(tls_ctx_t *ctx, const char *host)
{
    SSL *ssl = SSL_new(ctx->ssl);
    if (!ssl)
        return NULL;
    if (ctx->server) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    SSL_set_connect_state(ssl);
    if (!empty(host)) {
        struct in6_addr a6;
        struct in_addr a4;
        int is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
        if (!is_ip)
            SSL_set_tlsext_host_name(ssl, host);
        if (ctx->verify_host) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : SSL_set1_host(ssl, host);
            if (ok != 1) {
                SSL_free(ssl);
                return NULL;
            }
        }
    }
    return ssl;
}

/* Why @ssl failed (call @rc's SSL_get_error() result @e): OpenSSL's reason, with the
 * certificate verification result when that is what failed. */
static void fail_reason(SSL *ssl, int e, char *err, size_t errlen)
{
    char r[256];
    long v = SSL_get_verify_result(ssl);
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(err, errlen, "%s", errno ? strerror(errno) : "connection closed by the peer");
        return;
    }
    ssl_reason(r, sizeof r);
    if (v != X509_V_OK && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) &&
        SSL_get_verify_callback(ssl) != accept_any) /* a verification that counted */
        snprintf(err, errlen, "%s (%s)", r, X509_verify_cert_error_string(v));
    else
        snprintf(err, errlen, "%s", r);
}

/* ---- memory-BIO sessions -------------------------------------------------------------- */

struct tls_session {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int established;
    uint8_t *obuf; /* ciphertext taken out of wbio */
    size_t ocap;
    uint8_t in[TLS_INBUF];
};

tls_session_t *tls_session_new(tls_ctx_t *ctx, const char *host)
{
    SSL *ssl = ssl_new(ctx, host);
    if (!ssl)
        return NULL;
    tls_session_t *s = ferry_malloc(sizeof *s);
    s->ssl = ssl;
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    s->established = 0;
    s->obuf = NULL;
    s->ocap = 0;
    /* An empty memory BIO reads as "retry later", not as the end of the stream. */
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(ssl, s->rbio, s->wbio);
    if (!ctx->server)
        SSL_do_handshake(ssl); /* the ClientHello, into wbio */
    return s;
}

void tls_session_free(tls_session_t *s)
{
    if (!s)
        return;
    SSL_free(s->ssl);
    ferry_free(s->obuf);
    ferry_free(s);
}

uint8_t *tls_session_inbuf(tls_session_t *s, size_t *cap)
{
    *cap = sizeof s->in;
    return s->in;
}

void tls_session_feed(tls_session_t *s, const void *p, size_t n)
{
    if (n)
        BIO_write(s->rbio, p, (int)n); /* a memory BIO grows: takes everything */
}

int tls_session_read(tls_session_t *s, void *buf, size_t cap, char *err, size_t errlen)
{
    if (!s->established) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            fail_reason(s->ssl, e, err, errlen);
            return TLS_FAIL;
        }
        s->established = 1;
    }
    int n = SSL_read(s->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (n > 0)
        return n;
    int e = SSL_get_error(s->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return TLS_EOF;
    fail_reason(s->ssl, e, err, errlen);
    return TLS_FAIL;
}

int tls_session_write(tls_session_t *s, const void *p, size_t n, char *err, size_t errlen)
{
    const uint8_t *b = p;
    while (n) {
        int k = n > (1u << 30) ? 1 << 30 : (int)n;
        int w = SSL_write(s->ssl, b, k);
        if (w <= 0) {
            fail_reason(s->ssl, SSL_get_error(s->ssl, w), err, errlen);
            return TLS_FAIL;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

void tls_session_shutdown(tls_session_t *s)
{
    if (s->established)
        SSL_shutdown(s->ssl);
    ERR_clear_error();
}

size_t tls_session_out(tls_session_t *s, const uint8_t **p)
{
    size_t n = BIO_ctrl_pending(s->wbio);
    if (n == 0)
        return 0;
    /* Grown to the largest flush (a pull answer of many MiB), shrunk back when far larger. */
    if (n > s->ocap || (s->ocap > 1024 * 1024 && n < s->ocap / 4)) {
        ferry_free(s->obuf);
        s->ocap = n < 64 * 1024 ? 64 * 1024 : n;
        s->obuf = ferry_malloc(s->ocap);
    }
    int got = BIO_read(s->wbio, s->obuf, (int)n);
    *p = s->obuf;
    return got > 0 ? (size_t)got : 0;
}

int tls_session_established(const tls_session_t *s)
{
    return s->established;
}

static void describe(const SSL *ssl, char *buf, size_t cap)
{
    char subj[256] = "";
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), subj, sizeof subj);
        X509_free(peer);
    }
    snprintf(buf, cap, "%s %s%s%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
             subj[0] ? ", peer " : "", subj);
}

void tls_session_describe(const tls_session_t *s, char *buf, size_t cap)
{
    describe(s->ssl, buf, cap);
}

/* ---- SSL on a socket ------------------------------------------------------------------ */

struct ssl_st *tls_sock_new(tls_ctx_t *ctx, int fd, const char *host, char *err, size_t errlen)
{
    SSL *ssl = ssl_new(ctx, host);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        char r[256];
        ssl_reason(r, sizeof r);
        snprintf(err, errlen, "SSL_new: %s", r);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ssl;
}

int tls_sock_handshake(struct ssl_st *ssl, char *err, size_t errlen)
{
    errno = 0;
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    fail_reason(ssl, e, err, errlen);
    return -1;
}

int tls_sock_want_write(const struct ssl_st *ssl)
{
    return SSL_want_write(ssl);
}

/* Map a failed SSL_read/SSL_write result to errno; returns -1 (or 0: the end of the stream). */
static ssize_t sock_fail(SSL *ssl, int r)
{
    int saved = errno;
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            ERR_clear_error();
            errno = saved ? saved : ECONNRESET;
            return saved ? -1 : 0;
        }
        /* fall through */
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t tls_sock_read(struct ssl_st *ssl, void *buf, size_t n)
{
    errno = 0;
    int r = SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    return r > 0 ? r : sock_fail(ssl, r);
}

ssize_t tls_sock_writev(struct ssl_st *ssl, const struct iovec *iov, int niov)
{
    size_t total = 0;
    for (int i = 0; i < niov; i++) {
        size_t len = iov[i].iov_len;
        if (len == 0)
            continue;
        errno = 0;
        int w = SSL_write(ssl, iov[i].iov_base, len > INT32_MAX ? INT32_MAX : (int)len);
        if (w <= 0) {
            if (total)
                return (ssize_t)total;
            ssize_t r = sock_fail(ssl, w);
            if (r == 0) {
                errno = EPIPE;
                r = -1;
            }
            return r;
        }
        total += (size_t)w;
        if ((size_t)w < len)
            break;
    }
    return (ssize_t)total;
}

int tls_sock_pending(const struct ssl_st *ssl)
{
    return SSL_has_pending(ssl);
}

void tls_sock_free(struct ssl_st *ssl)
{
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}
