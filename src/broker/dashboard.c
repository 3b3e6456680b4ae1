/* The broker's web dashboard (docs/DASHBOARD.md), on the HTTP port (web.c routes here):
 *
 *   /, /index.html, /app.js, ...   the single page app (src/broker/dashboard/), embedded in the
 *                                  binary at build time (cmake/embed.cmake, assets.h)
 *   GET  /api/<command>?<options>  a read-only mqadmin command run in-process with --json
 *   POST /api/<command>            an action (updateTopic, resetOffsetByTime, dlqResend); its
 *                                  options are a JSON object of strings in the body
 *   GET  /api/brokerThroughput     mqadmin brokerThroughput: puts/gets per second of the last
 *                                  10 minutes of every broker of this broker's cluster (or b=, c=)
 *   GET  /api/self                 who serves the page: broker, cluster, name servers
 *   GET  /api/                     the list of endpoints
 *   GET  /api/session              {"acl": bool, "user": accessKey or null}, or 401
 *   POST /api/login, /api/logout   with aclEnable: a session of an admin account (below)
 *
 * The figures are mqadmin's by construction: each endpoint fills the same option struct that
 * mqadmin's main.c fills from its command line (the option letters are the parameter names:
 * /api/topicStatus?t=T is `mqadmin topicStatus -t T --json`) and calls the same command
 * function of ferry_admin (tools/mqadmin/) with ctx.json = 1, ctx.ns = this broker's
 * namesrvAddr and ctx.out/ctx.err on memory streams. The answer is what the command printed
 * (200, application/json), or what it reported as {"error": "..."}: 400 for bad parameters,
 * 500 when the command failed (a missing topic, a broker that does not answer, ...).
 *
 * Handlers run on the HTTP server's threads, several at once; the commands keep no shared
 * state and reach the brokers and name servers over their own short-lived connections (also
 * this broker: through its own remoting port, like any admin client), so nothing here takes a
 * broker lock.
 *
 * With aclEnable the API needs a login (login_endpoints()): an admin account's keys checked by
 * acl_admin_login(), a session cookie (login.c), and the commands sign with that account.
 *
 * Actions are POST only and must come from the dashboard's own page: the X-Ferry-Action: 1
 * header (which a foreign page cannot send without a CORS preflight that this server never
 * allows), a JSON body, and when the browser sends them, Origin equal to the Host and
 * Sec-Fetch-Site same-origin. */
#include "broker/acl.h"
#include "broker/broker_int.h"
#include "broker/dashboard/assets.h"
#include "broker/login.h"

#include "common/clock.h"
#include "common/log.h"
#include "http/http.h"
#include "mqadmin.h"
#include "remoting/client.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_PREFIX   "/api/"
#define API_BODY_MAX (64 * 1024) /* message bodies in answers: the first 64 KiB (a preview) */

/* ---- assets ---- */

const struct dashboard_asset *dashboard_asset_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < dashboard_assets_n; i++) /* a handful of files */
        if (strcmp(dashboard_assets[i].path, path) == 0)
            return &dashboard_assets[i];
    return NULL;
}

static void reply_text(struct http_exchange *x, int status, const char *text)
{
    http_reply(x, status, "text/plain; charset=utf-8", text, strlen(text), HTTP_STATIC);
}

void broker_dashboard_asset(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    (void)b;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_add_header(x, "Allow", "GET, HEAD");
        reply_text(x, 405, "method not allowed\n");
        return;
    }
    const struct dashboard_asset *a = dashboard_asset_find(req->path);
    if (!a) {
        reply_text(x, 404, "not found\n");
        return;
    }
    http_reply(x, 200, a->mime, a->data, a->len, HTTP_STATIC);
}

/* ---- the JSON API: requests, parameters, answers ---- */

struct api_req {
    broker_t *b;
    const struct http_request *req;
    struct http_exchange *x;
    cJSON *body;   /* POST: the JSON object of the body */
    char bad[256]; /* a parameter error (400) */
};

/* Parameter @name: from the JSON body of a POST (a string), else from the query string. */
static const char *arg(struct api_req *r, const char *name)
{
    if (r->body)
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->body, name));
    const char *v = http_query(r->x, name);
    return v && v[0] ? v : NULL;
}

/* Like arg(), but a missing parameter is an error (NULL with r->bad set). */
static const char *need(struct api_req *r, const char *name)
{
    const char *v = arg(r, name);
    if (!v && !r->bad[0])
        snprintf(r->bad, sizeof r->bad, "parameter %s is required", name);
    return v;
}

/* Integer parameter @name in [@lo, @hi] into *@out (left alone when absent). 0, or -1 with
 * r->bad set. */
static int arg_i64(struct api_req *r, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = arg(r, name);
    char *end;
    if (!v)
        return 0;
    long long n = strtoll(v, &end, 10);
    if (*end || n < lo || n > hi) {
        snprintf(r->bad, sizeof r->bad, "parameter %s must be a number in %lld..%lld", name,
                 (long long)lo, (long long)hi);
        return -1;
    }
    *out = n;
    return 0;
}

static int arg_int(struct api_req *r, const char *name, int lo, int hi, int *out)
{
    int64_t v = *out;
    if (arg_i64(r, name, lo, hi, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* true|false parameter @name into *@out (left alone when absent). */
static int arg_bool(struct api_req *r, const char *name, int *out)
{
    const char *v = arg(r, name);
    if (!v)
        return 0;
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
        snprintf(r->bad, sizeof r->bad, "parameter %s must be true or false", name);
        return -1;
    }
    *out = strcmp(v, "true") == 0;
    return 0;
}

/* The result of a parameter check: 2 (mqadmin's usage error) when r->bad is set. */
static int bad(const struct api_req *r)
{
    return r->bad[0] ? 2 : 0;
}

static int exactly_one(struct api_req *r, const char *a, const char *b)
{
    if (!arg(r, a) == !arg(r, b))
        snprintf(r->bad, sizeof r->bad, "give exactly one of %s and %s", a, b);
    return bad(r);
}

/* ---- the endpoints: mqadmin's commands (main.c's option checks, same letters) ---- */

static int api_topic_list(struct api_req *r, const struct ctx *c)
{
    (void)r;
    return cmd_topic_list(c);
}

static int api_cluster_list(struct api_req *r, const struct ctx *c)
{
    (void)r;
    return cmd_cluster_list(c);
}

static int api_topic_route(struct api_req *r, const struct ctx *c)
{
    const char *t = need(r, "t");
    return bad(r) ? 2 : cmd_topic_route(c, t);
}

static int api_topic_status(struct api_req *r, const struct ctx *c)
{
    const char *t = need(r, "t");
    return bad(r) ? 2 : cmd_topic_status(c, t);
}

static int api_broker_status(struct api_req *r, const struct ctx *c)
{
    const char *b = need(r, "b");
    return bad(r) ? 2 : cmd_broker_status(c, b);
}

static int api_tx_status(struct api_req *r, const struct ctx *c)
{
    return cmd_tx_status(c, arg(r, "b"));
}

static int api_ha_status(struct api_req *r, const struct ctx *c)
{
    return exactly_one(r, "b", "c") ? 2 : cmd_ha_status(c, arg(r, "b"), arg(r, "c"));
}

static int api_broker_epoch(struct api_req *r, const struct ctx *c)
{
    return exactly_one(r, "b", "c") ? 2 : cmd_broker_epoch(c, arg(r, "b"), arg(r, "c"));
}

static int api_group_list(struct api_req *r, const struct ctx *c)
{
    return cmd_group_list(c, arg(r, "c"));
}

static int api_consumer_connection(struct api_req *r, const struct ctx *c)
{
    const char *g = need(r, "g");
    return bad(r) ? 2 : cmd_consumer_connection(c, g, arg(r, "b"));
}

static int api_consumer_progress(struct api_req *r, const struct ctx *c)
{
    const char *g = need(r, "g");
    return bad(r) ? 2 : cmd_consumer_progress(c, g, arg(r, "t"));
}

static int api_query_by_id(struct api_req *r, const struct ctx *c)
{
    const char *i = need(r, "i");
    return bad(r) ? 2 : cmd_query_by_id(c, i);
}

static int api_query_by_key(struct api_req *r, const struct ctx *c)
{
    const char *t = need(r, "t"), *k = need(r, "k");
    return bad(r) ? 2 : cmd_query_by_key(c, t, k);
}

static int api_query_by_offset(struct api_req *r, const struct ctx *c)
{
    const char *t = need(r, "t"), *b = need(r, "b");
    int qid = -1;
    int64_t off = -1;
    if (!need(r, "i") || !need(r, "o") || bad(r) || arg_int(r, "i", 0, 65535, &qid) ||
        arg_i64(r, "o", 0, INT64_MAX, &off))
        return 2;
    return cmd_query_by_offset(c, t, b, qid, off);
}

/* consumeMessage: the search by time (-s/-e) of the Messages view; -c at most 1000 here. */
static int api_consume(struct api_req *r, const struct ctx *c)
{
    struct consume_opts o = {need(r, "t"), arg(r, "b"), arg(r, "g"), -1, -1, 64, 0, 0};
    int64_t now = clock_wall_ms();
    if (!o.group)
        o.group = TOOLS_GROUP;
    if (bad(r) || arg_int(r, "i", 0, 65535, &o.qid) || arg_i64(r, "o", 0, INT64_MAX, &o.offset) ||
        arg_i64(r, "c", 1, 1000, &o.count) || arg_i64(r, "s", 0, INT64_MAX, &o.begin) ||
        arg_i64(r, "e", 0, INT64_MAX, &o.end))
        return 2;
    if (o.end > now) /* a range that ends in the future ends now */
        o.end = now;
    if (o.qid >= 0 && !o.broker)
        snprintf(r->bad, sizeof r->bad, "parameter i (queue id) needs b (broker name)");
    else if (o.end > 0 && o.begin > o.end)
        snprintf(r->bad, sizeof r->bad, "s (begin) must not be after e (end)");
    return bad(r) ? 2 : cmd_consume_message(c, &o);
}

static int api_dlq_list(struct api_req *r, const struct ctx *c)
{
    struct dlq_opts o = {need(r, "g"), NULL, NULL, arg(r, "b"), 128, 0};
    if (bad(r) || arg_i64(r, "c", 1, 10000, &o.count))
        return 2;
    return cmd_dlq_list(c, &o);
}

static int api_dlq_view(struct api_req *r, const struct ctx *c)
{
    struct dlq_opts o = {need(r, "g"), need(r, "i"), NULL, arg(r, "b"), 128, 0};
    return bad(r) ? 2 : cmd_dlq_view(c, &o);
}

/* ---- actions (POST) ---- */

/* updateTopic: -t, -c | -b, -r, -w, -p, -o (mqadmin's defaults 8, 8, 6, false). */
static int api_update_topic(struct api_req *r, const struct ctx *c)
{
    struct topic_opts o = {need(r, "t"), arg(r, "c"), arg(r, "b"), 8, 8, 6, 0};
    if (bad(r) || exactly_one(r, "c", "b") || arg_int(r, "r", 1, 1024, &o.rq) ||
        arg_int(r, "w", 1, 1024, &o.wq) || arg_int(r, "p", 0, 7, &o.perm) ||
        arg_bool(r, "o", &o.order))
        return 2;
    return cmd_update_topic(c, &o);
}

/* resetOffsetByTime: -g, -t, -s (milliseconds, now, earliest or latest), -f (default true). */
static int api_reset_offset(struct api_req *r, const struct ctx *c)
{
    struct reset_opts o = {need(r, "g"), need(r, "t"), need(r, "s"), 0, 1, 0};
    if (bad(r) || arg_bool(r, "f", &o.force))
        return 2;
    if (strcmp(o.ts_str, "earliest") == 0) {
        o.ts = 0;
    } else if (strcmp(o.ts_str, "latest") == 0 || strcmp(o.ts_str, "now") == 0) {
        o.ts = -1;
    } else {
        char *end;
        long long v = strtoll(o.ts_str, &end, 10);
        if (!o.ts_str[0] || *end || v < 0) {
            snprintf(r->bad, sizeof r->bad,
                     "parameter s must be milliseconds since the epoch, now, earliest or latest");
            return 2;
        }
        o.ts = v;
    }
    return cmd_reset_offset(c, &o, 0);
}

/* dlqResend: -g, -i | all=true, -t, -b. */
static int api_dlq_resend(struct api_req *r, const struct ctx *c)
{
    struct dlq_opts o = {need(r, "g"), arg(r, "i"), arg(r, "t"), arg(r, "b"), 128, 0};
    if (bad(r) || arg_bool(r, "all", &o.all))
        return 2;
    if (!o.id == !o.all) {
        snprintf(r->bad, sizeof r->bad, "give exactly one of i (an id) and all=true");
        return 2;
    }
    return cmd_dlq_resend(c, &o);
}

/* ---- the dashboard's own endpoints ---- */

/* brokerThroughput: -b | -c (neither: this broker's cluster), -s seconds (default 600). A
 * broker that does not answer is an entry with "error" in the array (the command's exit code 1
 * then), which the page shows as such: the answer is 200 whenever the command printed the
 * array. */
static int api_throughput(struct api_req *r, const struct ctx *c)
{
    const char *b = arg(r, "b"), *cl = arg(r, "c");
    int secs = 600;
    if (b && cl) {
        snprintf(r->bad, sizeof r->bad, "give at most one of b and c");
        return 2;
    }
    if (arg_int(r, "s", 1, 600, &secs))
        return 2;
    if (!b && !cl)
        cl = r->b->cfg.brokerClusterName;
    int rc = cmd_broker_throughput(c, b, cl, secs);
    if (rc == 1 && fflush(c->out) == 0 && ftell(c->out) > 0)
        rc = 0;
    return rc;
}

static int api_self(struct api_req *r, const struct ctx *c)
{
    broker_t *b = r->b;
    int role = broker_role(b);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "brokerName", b->cfg.brokerName);
    cJSON_AddStringToObject(o, "clusterName", b->cfg.brokerClusterName);
    cJSON_AddStringToObject(o, "brokerAddr", broker_addr(b));
    cJSON_AddNumberToObject(o, "brokerId", (double)b->cfg.brokerId);
    cJSON_AddStringToObject(o, "brokerRole",
                            role == BROKER_SLAVE         ? "SLAVE"
                            : role == BROKER_SYNC_MASTER ? "SYNC_MASTER"
                                                         : "ASYNC_MASTER");
    cJSON_AddStringToObject(o, "namesrvAddr", b->cfg.namesrvAddr);
    cJSON_AddNumberToObject(o, "bootTimestamp", (double)b->start_ms);
    cJSON_AddNumberToObject(o, "now", (double)clock_wall_ms());
    adm_print_json(c, o);
    cJSON_Delete(o);
    return 0;
}

typedef int (*api_fn)(struct api_req *r, const struct ctx *c);

static const struct api {
    const char *name; /* the mqadmin subcommand, or the dashboard's own endpoint */
    int post;         /* an action: POST only, same-origin checks */
    api_fn fn;
    const char *params; /* for GET /api/: the parameters (mqadmin's option letters) */
} apis[] = {
    {"clusterList", 0, api_cluster_list, ""},
    {"brokerStatus", 0, api_broker_status, "b=brokerAddr"},
    {"haStatus", 0, api_ha_status, "b=brokerAddr | c=cluster"},
    {"getBrokerEpoch", 0, api_broker_epoch, "b=brokerName | c=cluster"},
    {"txStatus", 0, api_tx_status, "[b=brokerAddr]"},
    {"topicList", 0, api_topic_list, ""},
    {"topicRoute", 0, api_topic_route, "t=topic"},
    {"topicStatus", 0, api_topic_status, "t=topic"},
    {"groupList", 0, api_group_list, "[c=cluster]"},
    {"consumerConnection", 0, api_consumer_connection, "g=group [b=brokerAddr]"},
    {"consumerProgress", 0, api_consumer_progress, "g=group [t=topic]"},
    {"queryMsgById", 0, api_query_by_id, "i=offsetMsgId"},
    {"queryMsgByKey", 0, api_query_by_key, "t=topic k=key"},
    {"queryMsgByOffset", 0, api_query_by_offset, "t=topic b=brokerName i=queueId o=offset"},
    {"consumeMessage", 0, api_consume,
     "t=topic [b=brokerName [i=queueId [o=offset]]] [c=count<=1000] [s=beginMs] [e=endMs]"},
    {"dlqList", 0, api_dlq_list, "g=group [c=count] [b=brokerName]"},
    {"dlqView", 0, api_dlq_view, "g=group i=msgId|offsetMsgId|queueOffset [b=brokerName]"},
    {"brokerThroughput", 0, api_throughput, "[b=brokerAddr | c=cluster] [s=seconds<=600]"},
    {"self", 0, api_self, ""},
    {"updateTopic", 1, api_update_topic,
     "t=topic (c=cluster | b=brokerAddr) [r=readQueues] [w=writeQueues] [p=perm] [o=order]"},
    {"resetOffsetByTime", 1, api_reset_offset,
     "g=group t=topic s=ms|now|earliest|latest [f=force]"},
    {"dlqResend", 1, api_dlq_resend, "g=group (i=id | all=true) [t=topic] [b=brokerName]"},
};

/* ---- dispatch ---- */

static void reply_error(struct http_exchange *x, int status, const char *msg);
static void reply_json(struct http_exchange *x, int status, cJSON *o);

/* ---- the login (aclEnable; docs/DASHBOARD.md "Login") ----
 *
 * Without ACL the API is open to whoever reaches the HTTP port, as before. With aclEnable every
 * /api/ request but login and session needs the cookie of a session (login.c) of an admin
 * account, and each request re-checks that account against the CURRENT ACL snapshot
 * (acl_admin_login()): an account removed from plain_acl.yml, no longer admin or with another
 * secret ends its sessions at its next request. The commands then sign every request to the
 * brokers and name servers with the session's keys, so each broker's ACL applies to that
 * account. */

#define SESSION_COOKIE "ferry_session"
/* No Secure flag: the HTTP port is plain HTTP (TLS belongs to a proxy in front of it). */
#define COOKIE_ATTRS "; Path=/; HttpOnly; SameSite=Strict"
#define COOKIE_CLEAR SESSION_COOKIE "=; Max-Age=0" COOKIE_ATTRS

/* The account of a request's session. */
struct api_user {
    char ak[REMOTING_KEY_MAX];
    char sk[REMOTING_KEY_MAX];
};

/* The live session of the request, its account still an admin with the same keys, into @u.
 * 1, or 0 after answering 401 (and telling the browser to drop a cookie it sent). */
static int session_user(broker_t *b, struct http_exchange *x, struct api_user *u)
{
    const char *tok = http_cookie(x, SESSION_COOKIE);
    char why[512];
    if (!tok || login_session_get(b->login, tok, u->ak, u->sk) != 0) {
        if (tok)
            http_add_header(x, "Set-Cookie", COOKIE_CLEAR);
        reply_error(x, 401,
                    "log in with the access key and secret key of an admin account "
                    "(aclEnable=true)");
        return 0;
    }
    if (acl_admin_login(b->acl, u->ak, u->sk, NULL, why, sizeof why) != ACL_LOGIN_OK) {
        login_session_end(b->login, tok);
        log_info(LOG_BROKER,
                 "dashboard session of accessKey %.64s ended: the account changed in the ACL "
                 "file",
                 u->ak);
        http_add_header(x, "Set-Cookie", COOKIE_CLEAR);
        reply_error(x, 401,
                    "the session ended: the account is no longer an admin account with these "
                    "keys in the ACL file; log in again");
        return 0;
    }
    return 1;
}

/* {"acl": @acl, "user": @user or null} with @status. */
static void reply_session(struct http_exchange *x, int status, int acl, const char *user)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "acl", acl);
    if (user)
        cJSON_AddStringToObject(o, "user", user);
    else
        cJSON_AddNullToObject(o, "user");
    reply_json(x, status, o);
}

static const char *foreign_action(struct http_exchange *x);

/* POST /api/login {"accessKey", "secretKey"}: a session for an admin account, in a cookie. */
static void api_login(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    char why[512], token[LOGIN_TOKEN_HEX + 1], cookie[sizeof SESSION_COOKIE + sizeof token + 64];
    char retry[32];
    const char *bad = foreign_action(x);
    if (bad) {
        reply_error(x, 403, bad);
        return;
    }
    int64_t left = login_locked_ms(b->login, req->peer);
    if (left > 0) {
        snprintf(retry, sizeof retry, "%lld", (long long)(left + 999) / 1000);
        http_add_header(x, "Retry-After", retry);
        snprintf(why, sizeof why, "too many failed logins from %s: try again in %s s", req->peer,
                 retry);
        reply_error(x, 429, why);
        return;
    }
    cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
    const char *ak = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "accessKey"));
    const char *sk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "secretKey"));
    if (!ak || !sk) {
        cJSON_Delete(body);
        reply_error(x, 400, "the body must be {\"accessKey\": \"...\", \"secretKey\": \"...\"}");
        return;
    }
    int rc = acl_admin_login(b->acl, ak, sk, req->peer, why, sizeof why);
    if (rc == ACL_LOGIN_BAD_KEYS) {
        int64_t lock = login_failed(b->login, req->peer);
        if (lock > 0)
            log_warn(LOG_BROKER,
                     "dashboard logins from %s refused for %lld s after too many failures",
                     req->peer, (long long)lock / 1000);
        reply_error(x, 401, why);
    } else if (rc != ACL_LOGIN_OK) {
        reply_error(x, 403, why);
    } else if (login_session_new(b->login, ak, sk, token) != 0) {
        reply_error(x, 500, "could not create a session (no random bytes from OpenSSL)");
    } else {
        login_succeeded(b->login, req->peer);
        log_info(LOG_BROKER, "dashboard login of accessKey %s from %s", ak, req->peer);
        snprintf(cookie, sizeof cookie, SESSION_COOKIE "=%s" COOKIE_ATTRS, token);
        http_add_header(x, "Set-Cookie", cookie);
        reply_session(x, 200, 1, ak);
        OPENSSL_cleanse(cookie, sizeof cookie);
        OPENSSL_cleanse(token, sizeof token);
    }
    cJSON_Delete(body);
}

/* POST /api/logout: the session ends and the browser drops the cookie. */
static void api_logout(broker_t *b, struct http_exchange *x)
{
    const char *bad = foreign_action(x), *tok = http_cookie(x, SESSION_COOKIE);
    if (bad) {
        reply_error(x, 403, bad);
        return;
    }
    if (tok)
        login_session_end(b->login, tok);
    http_add_header(x, "Set-Cookie", COOKIE_CLEAR);
    reply_session(x, 200, 1, NULL);
}

/* The gate every /api/ request passes. login, logout and session are answered here; with
 * aclEnable every other endpoint needs a session, else 401 here. Returns 1 when the request was
 * answered, 0 to go on: with aclEnable @u then holds the session's account (else it stays
 * empty). */
static int login_endpoints(broker_t *b, const struct http_request *req, struct http_exchange *x,
                           const char *name, struct api_user *u)
{
    int post = strcmp(req->method, "POST") == 0;
    int is_session = strcmp(name, "session") == 0;
    int is_login = strcmp(name, "login") == 0, is_logout = strcmp(name, "logout") == 0;
    if (b->cfg.aclEnable && !b->login) { /* cannot happen (web.c); never open, though */
        reply_error(x, 503, "the dashboard's login is not available");
        return 1;
    }
    if (is_session || is_login || is_logout) {
        if (post != !is_session || (!post && strcmp(req->method, "GET") != 0)) {
            http_add_header(x, "Allow", is_session ? "GET" : "POST");
            reply_error(x, 405, is_session ? "this endpoint takes GET" : "this action takes POST");
        } else if (!b->login && is_session) {
            reply_session(x, 200, 0, NULL);
        } else if (!b->login) {
            reply_error(x, 404, "no login: the broker runs without ACL (aclEnable=false)");
        } else if (is_login) {
            api_login(b, req, x);
        } else if (is_logout) {
            api_logout(b, x);
        } else if (session_user(b, x, u)) {
            reply_session(x, 200, 1, u->ak);
        }
        return 1;
    }
    return b->login && !session_user(b, x, u);
}

/* An action's request must come from the dashboard's own page (see the file comment). NULL,
 * or why not. */
static const char *foreign_action(struct http_exchange *x)
{
    const char *h = http_header(x, "X-Ferry-Action");
    const char *origin = http_header(x, "Origin"), *host = http_header(x, "Host");
    const char *site = http_header(x, "Sec-Fetch-Site");
    const char *ctype = http_header(x, "Content-Type");
    if (!h || strcmp(h, "1") != 0)
        return "actions need the header X-Ferry-Action: 1 (sent by the dashboard's page)";
    if (site && strcmp(site, "same-origin") != 0)
        return "actions are accepted from the dashboard's own page only (Sec-Fetch-Site)";
    if (origin && strcmp(origin, "null") != 0) {
        const char *p = strstr(origin, "://");
        if (!p || !host || strcmp(p + 3, host) != 0)
            return "actions are accepted from the dashboard's own page only (Origin)";
    } else if (origin) {
        return "actions are accepted from the dashboard's own page only (Origin null)";
    }
    if (!ctype || strncmp(ctype, "application/json", 16) != 0)
        return "actions take a JSON body (Content-Type: application/json)";
    return NULL;
}

/* Answer @o (deleted here) with @status. */
static void reply_json(struct http_exchange *x, int status, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    http_reply(x, status, "application/json", text, strlen(text), HTTP_COPY);
    cJSON_free(text);
}

/* Answer {"error": @msg} with @status. */
static void reply_error(struct http_exchange *x, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    reply_json(x, status, o);
}

/* GET /api/: the endpoints. */
static void reply_index(struct http_exchange *x)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", apis[i].name);
        cJSON_AddStringToObject(e, "method", apis[i].post ? "POST" : "GET");
        cJSON_AddStringToObject(e, "params", apis[i].params);
        cJSON_AddItemToArray(arr, e);
    }
    static const char *const own[][3] = {
        {"session", "GET", ""},
        {"login", "POST", "accessKey secretKey (aclEnable)"},
        {"logout", "POST", ""},
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", own[i][0]);
        cJSON_AddStringToObject(e, "method", own[i][1]);
        cJSON_AddStringToObject(e, "params", own[i][2]);
        cJSON_AddItemToArray(arr, e);
    }
    reply_json(x, 200, arr);
}

/* What the command wrote on its error stream as one line: "mqadmin: " cut off each line, the
 * lines joined with "; ". */
static void error_text(const char *err, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 3 < cap;) {
        if (len - i >= 9 && strncmp(err + i, "mqadmin: ", 9) == 0)
            i += 9;
        while (i < len && err[i] != '\n' && n + 3 < cap)
            buf[n++] = err[i++];
        while (i < len && err[i] == '\n')
            i++;
        if (i < len && n + 3 < cap) {
            buf[n++] = ';';
            buf[n++] = ' ';
        }
    }
    buf[n] = 0;
}

/* The addresses the commands of one API request may connect to (adm_set_addr_filter()): the
 * name servers, this broker, and every broker (master or slave) the name servers list. The
 * cluster info is asked for once, the first time a command connects elsewhere, so commands
 * that talk to the name servers and this broker only cost no extra request. */
struct allowed {
    broker_t *b;
    int fetched;
    cJSON *ci; /* GET_BROKER_CLUSTER_INFO's answer; NULL when the name servers did not give it */
};

static int allowed_addr(void *arg, const char *addr)
{
    struct allowed *a = arg;
    char list[sizeof a->b->cfg.namesrvAddr], *save = NULL;
    if (strcmp(addr, broker_addr(a->b)) == 0)
        return 1;
    snprintf(list, sizeof list, "%s", a->b->cfg.namesrvAddr);
    for (char *t = strtok_r(list, ";", &save); t; t = strtok_r(NULL, ";", &save))
        if (strcmp(t, addr) == 0)
            return 1; /* first: the lookup below connects to them */
    if (!a->fetched) {
        struct ctx c = {.ns = a->b->cfg.namesrvAddr};
        struct rcmd req, *resp = NULL;
        char used[CLIENT_ADDR_MAX], eb[256];
        a->fetched = 1;
        rcmd_init_request(&req, REQ_GET_BROKER_CLUSTER_INFO);
        rcmd_ext_add(&req, "acceptStandardJsonOnly", "true");
        if (adm_ns_call(&c, &req, &resp, used, sizeof used, eb, sizeof eb) == 0 &&
            resp->code == RESP_SUCCESS) /* else: the name servers and this broker only */
            a->ci = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
        rcmd_free(resp);
    }
    const cJSON *bd, *ba;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(a->ci, "brokerAddrTable"))
    {
        cJSON_ArrayForEach(ba, cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"))
        {
            if (cJSON_IsString(ba) && strcmp(ba->valuestring, addr) == 0)
                return 1;
        }
    }
    return 0;
}

void broker_dashboard_api(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    const char *name = req->path + strlen(API_PREFIX);
    const struct api *api = NULL;
    int post = strcmp(req->method, "POST") == 0;
    struct api_user u = {{0}, {0}};

    if (login_endpoints(b, req, x, name, &u))
        return;
    if (!name[0]) {
        reply_index(x);
        return;
    }
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) /* a fixed, short table */
        if (strcmp(apis[i].name, name) == 0)
            api = &apis[i];
    if (!api) {
        reply_error(x, 404, "no such API (GET /api/ lists them)");
        return;
    }
    if (api->post != post || (!post && strcmp(req->method, "GET") != 0)) {
        http_add_header(x, "Allow", api->post ? "POST" : "GET");
        reply_error(x, 405, api->post ? "this action takes POST" : "this endpoint takes GET");
        return;
    }

    struct api_req r = {.b = b, .req = req, .x = x};
    if (post) {
        const char *why = foreign_action(x);
        if (why) {
            reply_error(x, 403, why);
            return;
        }
        r.body = cJSON_ParseWithLength(req->body, req->body_len);
        if (!cJSON_IsObject(r.body)) {
            cJSON_Delete(r.body);
            reply_error(x, 400, "the body must be a JSON object of string parameters");
            return;
        }
    }

    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    struct ctx c = {.cmd = api->name, .ns = b->cfg.namesrvAddr, .json = 1};
    c.out = open_memstream(&out, &out_len);
    c.err = open_memstream(&err, &err_len);
    int rc = 1;
    struct allowed allowed = {.b = b};
    adm_set_addr_filter(allowed_addr, &allowed);
    adm_set_body_max(API_BODY_MAX);
    /* With a session, every connection the command opens on this thread signs with its account
     * (mqadmin's connections take the creating thread's default signer, which mqadmin's main()
     * sets from --accessKey/--secretKey); the thread drops it afterwards, as it serves other
     * requests of its HTTP connection. (It cannot fail: ACL keys are shorter than
     * REMOTING_KEY_MAX.) */
    if (u.ak[0])
        remoting_client_default_signer(u.ak, u.sk);
    if (c.out && c.err)
        rc = api->fn(&r, &c);
    else if (c.err) /* no output stream: reported as the command's failure */
        fputs("out of memory\n", c.err);
    adm_set_body_max(0);
    adm_set_addr_filter(NULL, NULL);
    cJSON_Delete(allowed.ci);
    if (u.ak[0])
        remoting_client_default_signer(NULL, NULL);
    OPENSSL_cleanse(&u, sizeof u);
    if (c.out)
        fclose(c.out);
    if (c.err)
        fclose(c.err);
    cJSON_Delete(r.body);

    if (rc == 0 && out && out_len) {
        http_reply(x, 200, "application/json", out, out_len, HTTP_TAKE);
        out = NULL;
    } else if (rc == 2 || r.bad[0]) {
        reply_error(x, 400, r.bad[0] ? r.bad : "bad parameters");
    } else {
        char msg[2048];
        error_text(err ? err : "", err ? err_len : 0, msg, sizeof msg);
        reply_error(x, 500, msg[0] ? msg : "the command failed without a message");
    }
    free(out);
    free(err);
}
