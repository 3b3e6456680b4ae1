/* The dashboard's login state (docs/DASHBOARD.md, dashboard.c): the sessions of logged-in admin
 * accounts and the count of failed logins per peer.
 *
 * Sessions: a fixed table of LOGIN_SESSIONS entries under one mutex. A session is created for
 * an account that acl_admin_login() accepted; its token is 32 random bytes (OpenSSL RAND_bytes)
 * handed to the browser once as 64 hex digits; the table keeps only the token's SHA-256, so a
 * copy of the table (a core dump) does not hold a usable cookie. A session ends when it was not
 * used for idle_ms, when it is older than life_ms, on logout, or when the table is full and a
 * new one needs its place (the least recently used goes). It keeps the account's access key and
 * secret key: the dashboard's commands sign with them.
 *
 * Failed logins: a fixed table of LOGIN_PEERS peers under the same mutex. After max_failures
 * failures from one peer within fail_window_ms (a sliding window), that peer is refused for
 * lockout_ms (even with the right keys). A full table forgets the peer that was seen longest
 * ago.
 *
 * Lookups scan the fixed tables (64 entries): a bounded cost per request, no allocation. Any
 * thread. The clock is injectable for tests. */
#ifndef FERRY_BROKER_LOGIN_H
#define FERRY_BROKER_LOGIN_H

#include "remoting/client.h" /* REMOTING_KEY_MAX */

#include <stddef.h>
#include <stdint.h>

#define LOGIN_SESSIONS  64
#define LOGIN_PEERS     64
#define LOGIN_TOKEN_HEX 64 /* the cookie's value: 32 random bytes in hex */

typedef struct login login_t;

struct login_config {
    int64_t idle_ms;        /* a session unused this long ends (default 30 min) */
    int64_t life_ms;        /* a session ends this long after the login (default 12 h) */
    int max_failures;       /* failed logins from one peer (1..16) ... (default 5) */
    int64_t fail_window_ms; /* ... within this time (default 1 min) ... */
    int64_t lockout_ms;     /* ... refuse that peer this long (default 1 min) */
    /* Monotonic milliseconds (default clock_mono_ms); tests pass their own. */
    int64_t (*now_ms)(void *arg);
    void *clock_arg;
};

/* The defaults above. */
void login_config_init(struct login_config *cfg);

/* A new, empty login state with @cfg (copied). */
login_t *login_new(const struct login_config *cfg);
/* Free (no other thread may use it any more). NULL is a no-op. */
void login_free(login_t *l);

/* A new session of account @ak / @sk; its token (NUL-terminated hex) into @token. When the table
 * is full the least recently used session ends. 0, or FERRY_EINVAL (a key too long, or OpenSSL
 * could not produce random bytes). */
int login_session_new(login_t *l, const char *ak, const char *sk, char token[LOGIN_TOKEN_HEX + 1]);

/* The live session of @token (the cookie's value; anything else is simply not found): 0 with
 * its account copied to @ak and @sk and its idle time restarted, or FERRY_ENOTFOUND (unknown,
 * malformed, or expired: an expired session is removed). */
int login_session_get(login_t *l, const char *token, char ak[REMOTING_KEY_MAX],
                      char sk[REMOTING_KEY_MAX]);

/* End the session of @token (if any). */
void login_session_end(login_t *l, const char *token);

/* Live sessions (expired ones not counted). For tests and logs. */
int login_session_count(login_t *l);

/* 0 when @peer may try to log in, else the milliseconds until it may. */
int64_t login_locked_ms(login_t *l, const char *peer);
/* A failed login from @peer. Returns the milliseconds of the lockout it started (0: none). */
int64_t login_failed(login_t *l, const char *peer);
/* A successful login from @peer: its failures are forgotten. */
void login_succeeded(login_t *l, const char *peer);

#endif
