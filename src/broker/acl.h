/* RocketMQ 4.x-compatible access control (docs/ACL.md): accounts with access key / secret key,
 * per-topic and per-group permissions (PUB, SUB, DENY), admin accounts and IP whitelists, read
 * from a plain_acl.yml file and reloaded when it changes; each request verified by RocketMQ's
 * signature (HMAC-SHA1 over the sorted extFields values and the body, Base64).
 *
 * The rules are an immutable snapshot: acl_check() takes a reference under a mutex held for a
 * few instructions (never during a reload, which parses into a new snapshot first and only
 * swaps the pointer), and the last holder of an old snapshot frees it. A bad new file is logged
 * with its reason and the previous rules stay in force.
 *
 * Decision order (RocketMQ 4.9.8 PlainPermissionManager.validate): a peer in
 * globalWhiteRemoteAddresses passes; else the request needs an AccessKey of a known account; a
 * peer in that account's whiteRemoteAddress passes without signature; else the Signature must
 * match; then admin request codes need an admin account, and the topics and groups the request
 * touches need the account's permission (explicit, else its defaultTopicPerm/defaultGroupPerm;
 * an admin account without any topicPerms/groupPerms may touch everything). */
#ifndef FERRY_BROKER_ACL_H
#define FERRY_BROKER_ACL_H

#include "remoting/frame.h"

#include <stddef.h>
#include <stdint.h>

typedef struct acl acl_t;

/* Load @path (it must exist and be valid; an empty file means no accounts). With @poll_ms > 0
 * a watcher thread stats the file every @poll_ms ms (inode, size, mtime, ctime) and reloads it
 * on a change. Returns 0, or FERRY_ECONFIG / -errno with @err naming the file and the problem
 * ("line 7 column 3: ...", "accounts[1]: secretKey must be longer than 6 characters"). */
int acl_open(const char *path, int poll_ms, acl_t **out, char *err, size_t errlen);

/* Stop the watcher and free (the last snapshot goes when its last reader is done; callers must
 * not be inside acl_check() any more). NULL is a no-op. */
void acl_free(acl_t *acl);

/* Reload now if the file changed since it was last read (what the watcher does; so not while
 * a watcher runs: open with @poll_ms 0 to drive reloads by hand). Returns 1
 * (reloaded), 0 (unchanged), or FERRY_ECONFIG / -errno with @err when the changed file could
 * not be read or parsed: the previous rules stay in force, and the same file is not read again
 * until it changes. */
int acl_poll(acl_t *acl, char *err, size_t errlen);

/* Successful loads so far (1 after acl_open()). Any thread. */
uint64_t acl_version(acl_t *acl);

/* May @req from @peer ("ip", "ip:port" or "[v6]:port") run? 0, or RESP_NO_PERMISSION (16)
 * with the reason in @remark, e.g. "No accessKey is configured ...", "signature mismatch for
 * accessKey X", "accessKey X has no PUB permission on topic T", "admin request 17 needs an
 * admin account; accessKey X is not one". Any thread; no allocation except a HEART_BEAT's
 * JSON body, parsed when its groups and topics must be checked. */
int acl_check(acl_t *acl, const struct rcmd *req, const char *peer, char *remark, size_t cap);

/* Whether @ip matches the whitelist pattern @pattern (RocketMQ's forms: an address, "*",
 * "192.168.1.*", "192.168.1.1-100", "192.168.*.*", "192.168.1.{1,2,3}", "a,b,c"; docs/ACL.md).
 * 1 or 0, or FERRY_ECONFIG with @err for a bad pattern. For tests and tools. */
int acl_addr_match(const char *pattern, const char *ip, char *err, size_t errlen);

/* The Signature of @req with @secret_key computed with OpenSSL (what acl_check() compares):
 * base64(HMAC-SHA1) into @out (29 bytes). 0, or FERRY_EINVAL when OpenSSL fails. */
int acl_signature(const struct rcmd *req, const char *secret_key, int with_unique_flag,
                  char out[29]);

/* What acl_admin_login() decided. */
enum acl_login {
    ACL_LOGIN_OK = 0,        /* an admin account and its secret key */
    ACL_LOGIN_BAD_KEYS = 1,  /* an unknown access key or a wrong secret key (not said which) */
    ACL_LOGIN_NOT_ADMIN = 2, /* the right keys of an account without admin: true */
};

/* The dashboard's login (docs/DASHBOARD.md): may @ak with @sk use the dashboard? The account
 * must be in the CURRENT snapshot (so an edited file counts from its reload on), have admin:
 * true, and @sk must be its secretKey, compared in constant time (an unknown @ak costs the
 * same compare). Whitelists neither grant nor restrict it: on the client port a whitelist
 * stands in for the signature, and the secret key is what the login checks instead.
 * @peer ("ip"), when not NULL, marks a login attempt: a refusal is logged at warn with the
 * peer and the access key (never the secret); NULL (a session's re-check) logs nothing.
 * Returns an enum acl_login, with the reason for the person in @why ("" when OK; for
 * ACL_LOGIN_BAD_KEYS only "wrong access key or secret key"). Any thread; no allocation. */
int acl_admin_login(acl_t *acl, const char *ak, const char *sk, const char *peer, char *why,
                    size_t cap);

#endif
