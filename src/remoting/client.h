/* The remoting client: one connection to "host:port" on a private I/O thread, with
 * synchronous, asynchronous and oneway requests matched to responses by opaque, and handlers
 * for the requests the server sends on the same connection (transaction check-back, ...).
 *
 * Life cycle: remoting_client_new() -> remoting_client_register()... ->
 * remoting_client_connect() -> invoke... -> remoting_client_free(). After the connection is
 * lost, invokes return -ENOTCONN until remoting_client_connect() succeeds again. */
#ifndef FERRY_REMOTING_CLIENT_H
#define FERRY_REMOTING_CLIENT_H

#include "remoting/conn.h"
#include "remoting/tls.h"

#include <stddef.h>

typedef struct remoting_client remoting_client_t;

struct remoting_client_config {
    size_t max_frame;       /* whole frame incl. length field; default 16 MiB */
    size_t max_out_bytes;   /* output queued before the connection is closed; default 64 MiB */
    int idle_close_seconds; /* 0 (default): never; clients heartbeat instead */
    /* 0 (default): the client has an I/O thread of its own. 1: it runs on one of a few I/O
     * threads (as many as CPUs, at most 4) shared by every client created so: with dozens of
     * connections each wake-up then serves many of them instead of one, which saves most
     * context switches. Then callbacks of other shared clients run on the same thread, so a
     * callback must not wait for any of them: invoke_sync and connect refuse to (FERRY_EINVAL,
     * -EDEADLK) when the client is on the caller's own thread. */
    int shared_io;
    /* TLS (tls.h, docs/TLS.md): a client context (tls_client_ctx_new(); the client takes its
     * own reference): every connection then starts with a TLS handshake, and connect returns
     * only once it is done. NULL (default): the process default (remoting_client_default_tls),
     * which is NULL, plain, unless a program set it. */
    tls_ctx_t *tls;
    int tls_no_default; /* 1: with @tls NULL, plain even when a process default is set */
};

void remoting_client_config_init(struct remoting_client_config *cfg);

/* The TLS context of clients created from now on with cfg->tls NULL, in any thread (a command
 * line tool sets it once in main(): mqadmin --tls; a broker with tlsEnable, for the mqadmin
 * code its dashboard runs); NULL (the start value) for plain. The default holds its own
 * reference; any thread may set it while others create clients. */
void remoting_client_default_tls(tls_ctx_t *ctx);
/* Back to plain if @ctx is still the default (an owner going away leaves another's alone). */
void remoting_client_default_tls_clear(tls_ctx_t *ctx);

/* A client and its I/O thread (not connected yet). Returns 0, FERRY_EINVAL or -errno. */
int remoting_client_new(const struct remoting_client_config *cfg, remoting_client_t **out);

/* Handle requests with @code that the server sends on this client's connection (@fn runs on
 * the client's I/O thread and answers with remoting_respond()). Before the first connect only:
 * FERRY_EINVAL otherwise. Unregistered codes get RESP_REQUEST_CODE_NOT_SUPPORTED. */
int remoting_client_register(remoting_client_t *cli, int32_t code, remoting_handler_fn fn,
                             void *arg);

/* Resolve @addr ("host:port", "[v6]:port"; the lookup runs on the calling thread) and connect,
 * waiting at most @timeout_ms. Returns 0, -EISCONN when already connected, -ETIMEDOUT, another
 * -errno (e.g. -ECONNREFUSED), or FERRY_EINVAL for a bad address; @errmsg says more. */
int remoting_client_connect(remoting_client_t *cli, const char *addr, int timeout_ms, char *errmsg,
                            size_t errlen);

/* 1 while the connection is established and not closing. */
int remoting_client_is_connected(remoting_client_t *cli);

/* Send @req (borrowed; body as in remoting_respond()) and wait for the response, at most
 * @timeout_ms. On 0, *@resp is a copy owned by the caller (rcmd_free()). Errors: -ENOTCONN,
 * -ETIMEDOUT, -ECONNRESET or another connection error, FERRY_EINVAL (also when called on the
 * client's own I/O thread, where it would deadlock). */
int remoting_client_invoke_sync(remoting_client_t *cli, const struct rcmd *req, int timeout_ms,
                                struct rcmd **resp);

/* Send @req and call @cb exactly once with the response, -ETIMEDOUT after @timeout_ms, or the
 * error that closed the connection; never before this returns and never when this returns an
 * error (-ENOTCONN, FERRY_EINVAL). @cb runs on the client's I/O thread. */
int remoting_client_invoke_async(remoting_client_t *cli, const struct rcmd *req, int timeout_ms,
                                 remoting_cb_fn cb, void *arg);

/* Send @req as a oneway request. Returns 0 (queued), -ENOTCONN or FERRY_EINVAL. */
int remoting_client_invoke_oneway(remoting_client_t *cli, const struct rcmd *req);

/* Close the connection, fail pending requests with -ECANCELED, stop the thread and free.
 * Not from the client's I/O thread. NULL is a no-op. */
void remoting_client_free(remoting_client_t *cli);

/* ---- signed requests: RocketMQ 4.x ACL (docs/ACL.md) ----
 *
 * A signing client adds two extFields to every request it sends, as Java's AclClientRPCHook:
 * AccessKey = the account, and Signature = remoting_sign() of the request with AccessKey
 * already in it. Brokers without ACL ignore both. */

#define REMOTING_SIGNATURE_LEN 28  /* base64 of an HMAC-SHA1: 20 bytes -> 28 characters */
#define REMOTING_KEY_MAX       256 /* longest accessKey / secretKey + 1 */

/* Sign every request sent from now on with @access_key / @secret_key (copied; each shorter
 * than REMOTING_KEY_MAX, else FERRY_EINVAL); NULL or "" for @access_key stops signing. Call it
 * before the client is used from other threads (it is not synchronized with invokes). A new
 * client starts with its creating thread's default (remoting_client_default_signer()).
 * Returns 0 or FERRY_EINVAL. */
int remoting_client_set_signer(remoting_client_t *cli, const char *access_key,
                               const char *secret_key);

/* The default account of clients that the calling thread creates from now on (a command line
 * tool sets it once in main(); NULL or "" clears it). Thread-local: other threads, e.g. the
 * background threads of libferry, are not affected. Returns 0 or FERRY_EINVAL (too long). */
int remoting_client_default_signer(const char *access_key, const char *secret_key);

/* The bytes a RocketMQ signature covers, handed to @fn in order: the value of every extFields
 * entry sorted by key (byte order, which is Java's TreeMap order for the ASCII keys RocketMQ
 * uses) leaving out Signature and, unless @with_unique_flag, _UNIQUE_KEY_QUERY (Java's broker
 * leaves that one out: PlainAccessValidator), then the body (all of body_iov when set). */
void remoting_sign_content(const struct rcmd *cmd, int with_unique_flag,
                           void (*fn)(void *arg, const void *p, size_t n), void *arg);

/* base64(HMAC-SHA1(@secret_key, remoting_sign_content(@cmd, 0))) into @out (NUL-terminated,
 * REMOTING_SIGNATURE_LEN characters): the Signature that Java's AclClientRPCHook and ali-ons
 * compute, with OpenSSL's HMAC (EVP_MAC; one small context allocated per call). When OpenSSL
 * has no SHA-1 (a FIPS-only build), @out is a signature no broker accepts and it is logged. */
void remoting_sign(const struct rcmd *cmd, const char *secret_key,
                   char out[REMOTING_SIGNATURE_LEN + 1]);

#endif
