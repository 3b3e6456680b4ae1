/* Optional TLS on remoting connections (OpenSSL; docs/TLS.md), as RocketMQ's tlsMode.
 *
 * Three parts:
 * - configuration: struct tls_config and its conf rows (the broker, the name server and the
 *   controller embed the same keys), and tlsConfigFile in RocketMQ's tls.properties names;
 * - contexts: a refcounted server or client context (certificates, trust, verification),
 *   shared by every connection of a server or client and safe to use from any thread;
 * - two transports: a memory-BIO session for the libuv connections of conn.c (ciphertext in
 *   and out as plain bytes, no socket), and blocking/non-blocking SSL on a socket for the HA
 *   port (ha.c), with recv/send-like results and errno.
 *
 * Modes of a server port (RocketMQ's TlsMode): disabled (plain only; a TLS client's handshake
 * is refused), permissive (the first byte of a new connection decides: 0x16, a TLS handshake
 * record, starts TLS, anything else is served plain), enforcing (TLS only; a plain client is
 * refused). Clients either use TLS or not (tlsEnable, RocketMQ's tls.enable / useTLS). */
#ifndef FERRY_REMOTING_TLS_H
#define FERRY_REMOTING_TLS_H

#include "common/conf.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum tls_mode { TLS_MODE_DISABLED, TLS_MODE_PERMISSIVE, TLS_MODE_ENFORCING };
/* tlsServerNeedClientAuth: ask for no client certificate, ask for one, or require one. */
enum tls_need_auth { TLS_AUTH_NONE, TLS_AUTH_OPTIONAL, TLS_AUTH_REQUIRE };

extern const char *const tls_mode_names[];      /* "disabled", "permissive", "enforcing" */
extern const char *const tls_need_auth_names[]; /* "none", "optional", "require" */

#define TLS_PATH_MAX 1024
#define TLS_PASS_MAX 256

/* The TLS keys of a server process. Field names are the config keys. */
struct tls_config {
    int tlsMode;                               /* enum tls_mode of the server ports */
    int tlsServerNeedClientAuth;               /* enum tls_need_auth */
    char tlsServerCertPath[TLS_PATH_MAX];      /* PEM certificate chain */
    char tlsServerKeyPath[TLS_PATH_MAX];       /* PEM private key (PKCS#8 or traditional) */
    char tlsServerKeyPassword[TLS_PASS_MAX];   /* of an encrypted key; empty: not encrypted */
    int tlsServerAuthClient;                   /* verify client certificates with the trust */
    char tlsServerTrustCertPath[TLS_PATH_MAX]; /* PEM CA file for tlsServerAuthClient */
    int tlsTestModeEnable;                     /* a self-signed certificate made at start */
    int tlsEnable;                             /* outbound connections use TLS */
    char tlsClientCertPath[TLS_PATH_MAX];      /* client certificate (mutual auth); optional */
    char tlsClientKeyPath[TLS_PATH_MAX];
    char tlsClientKeyPassword[TLS_PASS_MAX];
    int tlsClientAuthServer;                   /* verify the server's certificate and address */
    char tlsClientTrustCertPath[TLS_PATH_MAX]; /* PEM CA file; empty: the system's */
    char tlsConfigFile[TLS_PATH_MAX];          /* RocketMQ tls.properties applied at start */
};

/* Conf rows of the server side (mode, certificate, client auth, test mode, config file) for a
 * config struct @S holding a struct tls_config as member @m. */
#define TLS_ROW_(S, m, k, type, size, def, names, doc)                                             \
    {                                                                                              \
#k, type, offsetof(S, m.k), size, def, 0, 0, names, 0, doc                                 \
    }
#define TLS_ROW_STR_(S, m, k, doc)  TLS_ROW_(S, m, k, CONF_STR, sizeof(((S *)0)->m.k), "", NULL, doc)
#define TLS_ROW_BOOL_(S, m, k, doc) TLS_ROW_(S, m, k, CONF_BOOL, 0, "false", NULL, doc)
#define TLS_CONF_SERVER_ROWS(S, m)                                                                 \
    TLS_ROW_(S, m, tlsMode, CONF_ENUM, 0, "disabled", tls_mode_names,                              \
             "TLS on this server's remoting ports (docs/TLS.md): disabled (plain only), "          \
             "permissive (TLS and plain on the same port), enforcing (TLS only). RocketMQ's "      \
             "tls.server.mode; its default is permissive, FerryMQ's disabled"),                    \
        TLS_ROW_(S, m, tlsServerNeedClientAuth, CONF_ENUM, 0, "none", tls_need_auth_names,         \
                 "client certificates: none, optional (asked for), require (refused without)"),    \
        TLS_ROW_STR_(S, m, tlsServerCertPath, "the server's PEM certificate chain"),               \
        TLS_ROW_STR_(S, m, tlsServerKeyPath, "the server's PEM private key"),                      \
        TLS_ROW_STR_(S, m, tlsServerKeyPassword,                                                   \
                     "password of an encrypted tlsServerKeyPath (printed as ******)"),             \
        TLS_ROW_BOOL_(S, m, tlsServerAuthClient,                                                   \
                      "verify client certificates against tlsServerTrustCertPath (false: any "     \
                      "certificate is accepted, as RocketMQ)"),                                    \
        TLS_ROW_STR_(S, m, tlsServerTrustCertPath,                                                 \
                     "PEM CA certificates that sign client certificates (empty: the system's)"),   \
        TLS_ROW_BOOL_(S, m, tlsTestModeEnable,                                                     \
                      "use a self-signed certificate made at start instead of tlsServerCertPath "  \
                      "(tests only; RocketMQ's default is true)"),                                 \
        TLS_ROW_STR_(S, m, tlsConfigFile,                                                          \
                     "a file of RocketMQ's tls.properties keys (tls.server.mode, "                 \
                     "tls.server.keyPath, ...) applied over these at start; empty: none")
/* Conf rows of the client side (outbound connections of a server process). */
#define TLS_CONF_CLIENT_ROWS(S, m)                                                                 \
    TLS_ROW_BOOL_(S, m, tlsEnable,                                                                 \
                  "connect to name servers, controllers and the master (HA too) with TLS "         \
                  "(RocketMQ's tls.enable)"),                                                      \
        TLS_ROW_STR_(S, m, tlsClientCertPath, "client certificate for servers that ask (PEM)"),    \
        TLS_ROW_STR_(S, m, tlsClientKeyPath, "its PEM private key"),                               \
        TLS_ROW_STR_(S, m, tlsClientKeyPassword,                                                   \
                     "password of an encrypted tlsClientKeyPath (printed as ******)"),             \
        TLS_ROW_BOOL_(S, m, tlsClientAuthServer,                                                   \
                      "verify the server's certificate (tlsClientTrustCertPath) and that it "      \
                      "names the address connected to"),                                           \
        TLS_ROW_STR_(S, m, tlsClientTrustCertPath,                                                 \
                     "PEM CA certificates for tlsClientAuthServer (empty: the system's)")

/* Apply cfg->tlsConfigFile (when set) over @cfg: RocketMQ's names tls.server.mode,
 * tls.server.need.client.auth, tls.server.keyPath, tls.server.keyPassword, tls.server.certPath,
 * tls.server.authClient, tls.server.trustCertPath, tls.client.keyPath, tls.client.keyPassword,
 * tls.client.certPath, tls.client.authServer, tls.client.trustCertPath, tls.test.mode.enable,
 * tls.enable. Returns 0 or FERRY_ECONFIG / -errno with @err set. */
int tls_config_load_file(struct tls_config *cfg, char *err, size_t errlen);
/* Replace the passwords by "******" (for printing a config). */
void tls_config_mask(struct tls_config *cfg);

/* ---- contexts ------------------------------------------------------------------------- */

typedef struct tls_ctx tls_ctx_t;

/* What a client context needs (libferry's producer/consumer options, mqadmin --tls). */
struct tls_client_config {
    int enable;      /* 0: no context (plain) */
    int auth_server; /* verify the server's certificate chain and that it names the host */
    const char *trust_cert_path, *cert_path, *key_path, *key_password; /* NULL or "": none */
};

/* The server context of @cfg: NULL in *@out when tlsMode is disabled. Test mode makes a
 * self-signed P-256 certificate for "localhost" and 127.0.0.1. Returns 0 or FERRY_ECONFIG with
 * @err naming the key and the reason (a missing file, a key that does not match...). */
int tls_server_ctx_new(const struct tls_config *cfg, tls_ctx_t **out, char *err, size_t errlen);
/* A client context (NULL in *@out when !cc->enable). Returns 0 or FERRY_ECONFIG with @err. */
int tls_client_ctx_new(const struct tls_client_config *cc, tls_ctx_t **out, char *err,
                       size_t errlen);
/* The client side of @cfg (tlsEnable, tlsClient*); the strings point into @cfg. */
void tls_client_config_from(struct tls_client_config *cc, const struct tls_config *cfg);
/* For programs without a config file (libferry, mqadmin): when cc->enable is 0, the
 * environment may turn TLS on as Java's -Dtls.enable: FERRY_TLS_ENABLE=true. Then (either way)
 * FERRY_TLS_CONFIG_FILE names a tls.properties whose tls.client.* keys fill what @cc leaves
 * empty; @storage holds those strings. Returns 0 or FERRY_ECONFIG with @err. */
int tls_client_config_env(struct tls_client_config *cc, struct tls_config *storage, char *err,
                          size_t errlen);
void tls_ctx_ref(tls_ctx_t *ctx);
/* Drop a reference (NULL is a no-op). */
void tls_ctx_unref(tls_ctx_t *ctx);
/* 1 for a server context. */
int tls_ctx_is_server(const tls_ctx_t *ctx);

/* First-byte detection of a permissive port: 1 when the first bytes a peer sent (@n >= 1) can
 * only be a TLS handshake record (content type 0x16, then major version 3 when present);
 * 0 for anything else. A RocketMQ frame starts with its length, big-endian: 0x16 there would
 * be a frame of at least 352 MiB, over any max_frame. */
int tls_is_handshake(const uint8_t *p, size_t n);

/* ---- memory-BIO sessions (conn.c) ------------------------------------------------------ */

typedef struct tls_session tls_session_t;

#define TLS_EOF  (-1) /* the peer closed TLS (close_notify) */
#define TLS_FAIL (-2) /* handshake or record error; the reason is in the @err of the call */

/* A session of @ctx (server or client side, as the context). @host (client side): the name
 * or IP literal the certificate must match when the context verifies the server; also sent
 * as SNI when it is a name. The client's first flight is ready in the output at once. */
tls_session_t *tls_session_new(tls_ctx_t *ctx, const char *host);
void tls_session_free(tls_session_t *s);
/* A buffer of *@cap bytes for ciphertext read from the socket, then tls_session_feed(n). */
uint8_t *tls_session_inbuf(tls_session_t *s, size_t *cap);
/* Take @n ciphertext bytes (from tls_session_inbuf() or anywhere else). */
void tls_session_feed(tls_session_t *s, const void *p, size_t n);
/* Drive the handshake and decrypt into @buf: >0 plaintext bytes, 0 when more ciphertext is
 * needed, TLS_EOF or TLS_FAIL (reason in @err). */
int tls_session_read(tls_session_t *s, void *buf, size_t cap, char *err, size_t errlen);
/* Encrypt all of @p (after the handshake). 0 or TLS_FAIL (reason in @err). */
int tls_session_write(tls_session_t *s, const void *p, size_t n, char *err, size_t errlen);
/* Queue a close_notify alert (best effort). */
void tls_session_shutdown(tls_session_t *s);
/* The ciphertext to send, taken out of the session: *@p stays valid until the next call on
 * @s. Returns its length (0: nothing). */
size_t tls_session_out(tls_session_t *s, const uint8_t **p);
/* 1 once the handshake has completed. */
int tls_session_established(const tls_session_t *s);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384, peer CN=..." into @buf. */
void tls_session_describe(const tls_session_t *s, char *buf, size_t cap);

/* ---- TLS on a socket (ha.c) ----------------------------------------------------------- */

struct ssl_st; /* OpenSSL's SSL */

/* SSL on connected socket @fd (not owned: tls_sock_free() leaves it open), server or client
 * side as @ctx, partial writes allowed. @host as in tls_session_new(). NULL on failure (logged
 * nowhere: @err). OpenSSL writes with write(2), not send(MSG_NOSIGNAL): the process must ignore
 * SIGPIPE, as the servers do (common/signals.c). */
struct ssl_st *tls_sock_new(tls_ctx_t *ctx, int fd, const char *host, char *err, size_t errlen);
/* Advance the handshake: 1 done, 0 blocked (non-blocking socket; tls_sock_want_write() tells
 * what it waits for), -1 failed (reason in @err). On a blocking socket it returns 1 or -1. */
int tls_sock_handshake(struct ssl_st *ssl, char *err, size_t errlen);
int tls_sock_want_write(const struct ssl_st *ssl);
/* recv(2)-like: bytes, 0 at the end of the stream, or -1 with errno (EAGAIN: would block). */
ssize_t tls_sock_read(struct ssl_st *ssl, void *buf, size_t n);
/* writev(2)-like over SSL_write: bytes taken (maybe fewer), or -1 with errno (EAGAIN...).
 * After EAGAIN call it again with the same bytes still first. */
ssize_t tls_sock_writev(struct ssl_st *ssl, const struct iovec *iov, int niov);
/* 1 when decrypted or undecrypted bytes wait inside @ssl (poll(2) would not see them). */
int tls_sock_pending(const struct ssl_st *ssl);
/* Send close_notify (best effort) and free. NULL is a no-op. */
void tls_sock_free(struct ssl_st *ssl);

#endif
