/* A remoting connection, as server and client handlers see it: answer a request, send a
 * request to the peer on the same connection, keep the connection while an answer is pending.
 *
 * Threads: each connection belongs to one I/O thread (one uv loop). Handlers and callbacks run
 * on that thread. Every function below may be called from any thread; calls from other threads
 * are posted to the owning loop (uv_async_send). */
#ifndef FERRY_REMOTING_CONN_H
#define FERRY_REMOTING_CONN_H

#include "remoting/frame.h"

typedef struct conn conn_t;

/* A request from the peer. @req and everything it points to are valid only during the call.
 * Answer with remoting_respond() now, or later after remoting_conn_ref(): the connection
 * memory then stays valid until the matching remoting_conn_unref(). Oneway requests get no
 * answer (remoting_respond() drops one built with rcmd_init_response()).
 * @thread the connection's I/O thread */
typedef void (*remoting_handler_fn)(conn_t *conn, const struct rcmd *req, void *arg);

/* The result of a request we sent: @status 0 and the response (valid only during the call), or
 * a negative error and @resp NULL: -ETIMEDOUT (no answer in time), -ECONNRESET (the peer
 * closed), -ECANCELED (closed locally or shut down), FERRY_EPROTO (bad frame from the peer),
 * -ENOBUFS (output over the cap), another -errno from the socket.
 * Called exactly once for each invoke that returned 0, never before it returned.
 * @thread the connection's I/O thread */
typedef void (*remoting_cb_fn)(int status, const struct rcmd *resp, void *arg);

/* Send @resp (built with rcmd_init_response()). @resp is borrowed for the call, except that its
 * body is taken over when resp->body_release is set (released exactly once, also on error).
 * Returns 0 (queued, or dropped because it answers a oneway request), -ENOTCONN when the
 * connection is closed, FERRY_EINVAL when @resp cannot be encoded. */
int remoting_respond(conn_t *conn, const struct rcmd *resp);

/* Send the request @req to the peer and call @cb with its answer or an error after
 * @timeout_ms (> 0). The opaque and flag of @req are replaced (a fresh opaque of this
 * connection, flag 0); the rest is borrowed for the call, body as in remoting_respond().
 * Returns 0 (then @cb is called exactly once, later, on the I/O thread), or -ENOTCONN,
 * FERRY_EINVAL (and then @cb is never called). */
int remoting_conn_invoke(conn_t *conn, const struct rcmd *req, int timeout_ms, remoting_cb_fn cb,
                         void *arg);

/* Send @req as a oneway request (flag ONEWAY, fresh opaque); nothing comes back.
 * Returns 0, -ENOTCONN or FERRY_EINVAL. */
int remoting_conn_oneway(conn_t *conn, const struct rcmd *req);

/* Close the connection (asynchronously when called from another thread). Pending invokes get
 * -ECANCELED. A no-op on a closed connection. */
void remoting_conn_close(conn_t *conn);

void remoting_conn_ref(conn_t *conn);
void remoting_conn_unref(conn_t *conn);

/* "ip:port" of the peer (stable for the life of the connection object). */
const char *remoting_conn_peer(const conn_t *conn);
/* Run @fn(@arg) on @conn's I/O thread at the end of the current loop turn, after the handlers
 * of every frame read in this turn (on any of the thread's connections) have run, and before
 * the answers gathered meanwhile are written. Lets a handler collect work across requests
 * and do it once (the broker appends a turn's sends with one store call). Returns 0, or
 * FERRY_EINVAL when not called on @conn's I/O thread (then @fn is never called).
 * @thread the connection's I/O thread */
int remoting_defer(conn_t *conn, void (*fn)(void *arg), void *arg);
/* Run @fn(@arg) on @conn's I/O thread (from any thread; a call on that thread is queued too),
 * also when @conn has been closed meanwhile. One call wakes the thread at most once however
 * many answers @fn then sends. Returns 0, or -ENOTCONN when the I/O thread has shut down
 * (then @fn is never called). */
int remoting_conn_post(conn_t *conn, void (*fn)(void *arg), void *arg);
/* 1 until the connection starts closing, then 0. */
int remoting_conn_is_open(const conn_t *conn);

#endif
