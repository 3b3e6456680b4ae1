/* mqadmin's dead-letter subcommands: dlqList, dlqView and dlqResend (issue 5).
 *
 * A message a group failed to consume too often is stored by the broker in %DLQ%<group> (one
 * readable queue per broker) with RETRY_TOPIC / DLQ_ORIGIN_TOPIC (the original topic),
 * ORIGIN_MESSAGE_ID / DLQ_ORIGIN_MESSAGE_ID (the original id) and its reconsume times. These
 * commands read that topic as the tools group does (PULL_MESSAGE from each queue's min to its
 * max offset, never committing an offset) and decode the stored records.
 *
 * dlqResend stores a copy of each selected dead letter in its original topic (or -t) with
 * SEND_MESSAGE: body, flag, keys, tags and user properties kept, the compressed sysFlag bit
 * kept with the body as stored, the broker's bookkeeping properties (REAL_TOPIC, DELAY,
 * RETRY_TOPIC, DLQ_*, CLUSTER, the record CRC, ...) dropped, a new UNIQ_KEY and the original
 * id in ORIGIN_MESSAGE_ID, reconsume times 0. The dead letters stay in the DLQ (RocketMQ never
 * deletes them), so every run of `dlqResend --all` resends everything still there.
 *
 * Failure modes: a group without a DLQ topic, an id that matches no dead letter or more than
 * one, an original topic without a route, a broker that refuses the send: a message and exit
 * 1; what was resent before a failure is printed. */
#include "mqadmin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#define DLQ_PREFIX  "%DLQ%"
#define PREVIEW_MAX 40
#define INFLATE_MAX (64 << 20)
#define PERM_W      2

/* One visit of the scan: the dead letter @v (valid during the call) of @broker. Returns 0 to
 * go on, or 1 to stop with a failure (message printed). */
typedef int (*visit_fn)(const struct msg_view *v, const char *broker, void *arg);

struct scan {
    const struct ctx *c;
    const struct dlq_opts *o;
    char topic[CLIENT_NAME_MAX * 2];
    int64_t left;  /* visits still allowed; -1: unbounded */
    int truncated; /* a record was left out because of @left */
    int seen;      /* records visited */
    visit_fn fn;
    void *arg;
};

/* ---- record helpers ---- */

/* The original topic: DLQ_ORIGIN_TOPIC, else RETRY_TOPIC (both set by the broker). */
static void origin_topic(const struct msg_view *v, char *buf, size_t cap)
{
    adm_prop_str(v, "DLQ_ORIGIN_TOPIC", buf, cap);
    if (!buf[0])
        adm_prop_str(v, "RETRY_TOPIC", buf, cap);
}

/* The original message id: DLQ_ORIGIN_MESSAGE_ID, else ORIGIN_MESSAGE_ID, else UNIQ_KEY. */
static void origin_id(const struct msg_view *v, char *buf, size_t cap)
{
    adm_prop_str(v, "DLQ_ORIGIN_MESSAGE_ID", buf, cap);
    if (!buf[0])
        adm_prop_str(v, "ORIGIN_MESSAGE_ID", buf, cap);
    if (!buf[0])
        adm_prop_str(v, "UNIQ_KEY", buf, cap);
}

/* The body as a consumer sees it: inflated when the record is compressed. Returns a
 * NUL-terminated copy (caller frees) or NULL when it does not inflate. */
static char *plain_body(const struct msg_view *v, size_t *len)
{
    size_t cap = (size_t)v->body_len * 4 + 64;
    if (!(v->sys_flag & SYSFLAG_COMPRESSED)) {
        char *s = malloc((size_t)v->body_len + 1);
        memcpy(s, v->body, v->body_len);
        s[v->body_len] = 0;
        *len = v->body_len;
        return s;
    }
    for (;;) {
        char *out = malloc(cap + 1);
        uLongf n = (uLongf)cap;
        int zr = uncompress((Bytef *)out, &n, v->body, (uLong)v->body_len);
        if (zr == Z_OK) {
            out[n] = 0;
            *len = n;
            return out;
        }
        free(out);
        if (zr != Z_BUF_ERROR || cap >= INFLATE_MAX)
            return NULL;
        cap *= 4;
    }
}

/* The first PREVIEW_MAX bytes of the body on one line: control bytes as '.', cut at a UTF-8
 * character boundary, "..." when longer. */
static void body_preview(const struct msg_view *v, char *buf, size_t cap)
{
    size_t len = 0, n;
    char *b = plain_body(v, &len);
    if (!b) {
        snprintf(buf, cap, "(compressed, does not inflate)");
        return;
    }
    n = len < PREVIEW_MAX ? len : PREVIEW_MAX;
    if (n >= cap - 4)
        n = cap - 4;
    while (n > 0 && n < len && ((unsigned char)b[n] & 0xC0) == 0x80)
        n--; /* do not split a UTF-8 sequence */
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)b[i] < 0x20 || b[i] == 0x7f ? '.' : b[i];
    snprintf(buf + n, cap - n, "%s", n < len ? "..." : "");
    free(b);
}

/* A dead letter as JSON: the record's fields, where it is, its origin and every property. */
static cJSON *dead_json(const struct msg_view *v, const char *broker)
{
    cJSON *o = adm_record_json(v); /* with "properties" */
    char buf[1024];
    size_t len;
    char *body;
    cJSON_AddStringToObject(o, "brokerName", broker);
    origin_topic(v, buf, sizeof buf);
    cJSON_AddStringToObject(o, "originTopic", buf);
    origin_id(v, buf, sizeof buf);
    cJSON_AddStringToObject(o, "originMsgId", buf);
    if ((v->sys_flag & SYSFLAG_COMPRESSED) && (body = plain_body(v, &len)) != NULL) {
        cJSON_AddStringToObject(o, "body", body);
        free(body);
    }
    return o;
}

/* ---- scanning %DLQ%<group> ---- */

static void count_queue(const cJSON *k, const cJSON *v, void *arg)
{
    int *n = arg;
    (void)v;
    if (adm_jnum(k, "queueId") + 1 > *n)
        *n = (int)adm_jnum(k, "queueId") + 1;
}

/* The number of queues of @topic at @addr (GET_TOPIC_STATS_INFO); 0 when it does not have the
 * topic or does not answer. */
static int queues_on(const char *addr, const char *topic)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int n = 0;
    rcmd_init_request(&req, REQ_GET_TOPIC_STATS_INFO);
    rcmd_ext_add(&req, "topic", topic);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return 0;
    if (resp->code == RESP_SUCCESS &&
        adm_parse_mq_map(resp->body, resp->body_len, "offsetTable", count_queue, &n) != 0)
        n = 0;
    rcmd_free(resp);
    return n;
}

/* The route of the DLQ @topic. A broker registers a topic that a send-back created only at its
 * next registration round (registerNameServerPeriod, 30 s), so when the name server does not
 * know it yet, a route is built from the masters that have it. NULL with *@missing set when
 * none has it, or with a message printed. */
static cJSON *dlq_route(const struct ctx *c, const char *topic, int *missing)
{
    cJSON *r = adm_get_route_or(c, topic, missing), *ci, *qds, *bds;
    const cJSON *bd;
    if (r || !*missing)
        return r;
    if (!(ci = adm_get_cluster(c))) {
        *missing = 0;
        return NULL;
    }
    r = cJSON_CreateObject();
    qds = cJSON_AddArrayToObject(r, "queueDatas");
    bds = cJSON_AddArrayToObject(r, "brokerDatas");
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"))
    {
        const char *addr = adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        int n = addr[0] ? queues_on(addr, topic) : 0;
        cJSON *q, *b;
        if (n <= 0)
            continue;
        q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "brokerName", adm_jstr(bd, "brokerName"));
        cJSON_AddNumberToObject(q, "readQueueNums", n);
        cJSON_AddItemToArray(qds, q);
        b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "brokerName", adm_jstr(bd, "brokerName"));
        cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "brokerAddrs"), "0", addr);
        cJSON_AddItemToArray(bds, b);
    }
    cJSON_Delete(ci);
    if (cJSON_GetArraySize(qds) == 0) {
        cJSON_Delete(r);
        return NULL;
    }
    *missing = 0;
    return r;
}

/* Visit the records of one queue from its min to its max offset. */
static int scan_queue(struct scan *s, struct bconn *bc, const char *addr, const char *broker,
                      int qid)
{
    const struct ctx *c = s->c;
    char eb[ERR_MAX];
    int64_t off, max;
    if (adm_queue_offset(c, bc, addr, REQ_GET_MIN_OFFSET, s->topic, qid, 0, &off) != 0 ||
        adm_queue_offset(c, bc, addr, REQ_GET_MAX_OFFSET, s->topic, qid, 0, &max) != 0)
        return 1;
    while (off < max) {
        struct rcmd *resp = NULL;
        int64_t next;
        size_t pos = 0;
        int rc = 0;
        if (adm_pull(c, bc, addr, TOOLS_GROUP, s->topic, qid, off, PULL_MAX, &resp) != 0)
            return 1;
        next = adm_ext_i64(resp, "nextBeginOffset", off);
        if (resp->code == RESP_PULL_NOT_FOUND) {
            rcmd_free(resp);
            return 0;
        }
        if (resp->code == RESP_PULL_OFFSET_MOVED || resp->code == RESP_PULL_RETRY_IMMEDIATELY) {
            rcmd_free(resp);
            if (next <= off)
                return 0;
            off = next;
            continue;
        }
        if (resp->code != RESP_SUCCESS) {
            rc = adm_fail(c, "pull %s/%s/%d at %lld failed (%s)", s->topic, broker, qid,
                          (long long)off, adm_resp_err(resp, addr, eb, sizeof eb));
            rcmd_free(resp);
            return rc;
        }
        while (rc == 0 && pos < resp->body_len) {
            struct msg_view v;
            if (msg_parse(resp->body + pos, resp->body_len - pos, &v) != 0) {
                rc = adm_fail(c, "malformed message records from %s", addr);
                break;
            }
            pos += v.total_size;
            if (v.queue_offset < off || v.queue_offset >= max)
                continue;
            if (s->left == 0) {
                s->truncated = 1;
                rc = 2;
                break;
            }
            if (s->left > 0)
                s->left--;
            s->seen++;
            rc = s->fn(&v, broker, s->arg);
        }
        rcmd_free(resp);
        if (rc != 0)
            return rc;
        if (next <= off)
            return 0;
        off = next;
    }
    return 0;
}

/* Visit every dead letter of @o->group on every broker (or -b's), queue by queue, in queue
 * offset order, at most @limit (-1: all). 0, or 1 with a message printed. */
static int dlq_scan(struct scan *s, int64_t limit)
{
    const struct ctx *c = s->c;
    struct bconn bc = {.cli = NULL};
    const cJSON *qd;
    int missing = 0, rc = 0, brokers = 0;
    cJSON *r;
    snprintf(s->topic, sizeof s->topic, "%s%s", DLQ_PREFIX, s->o->group);
    s->left = limit;
    if (!(r = dlq_route(c, s->topic, &missing)) && missing)
        return adm_fail(c,
                        "consumer group %s has no dead-letter topic %s: no message of the group "
                        "has been dead-lettered, or there is no such group",
                        s->o->group, s->topic);
    if (!r)
        return 1;
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *broker = adm_jstr(qd, "brokerName"), *addr = adm_route_master(r, broker);
        int n = (int)adm_jnum(qd, "readQueueNums");
        if (s->o->broker && strcmp(s->o->broker, broker) != 0)
            continue;
        brokers++;
        if (!addr[0]) {
            rc = adm_fail(c, "broker %s of %s has no master", broker, s->topic);
            break;
        }
        for (int q = 0; q < n && rc == 0; q++)
            rc = scan_queue(s, &bc, addr, broker, q);
        if (rc != 0)
            break;
    }
    adm_bconn_close(&bc);
    cJSON_Delete(r);
    if (rc == 0 && brokers == 0 && s->o->broker)
        rc = adm_fail(c, "broker %s has no queue of %s", s->o->broker, s->topic);
    return rc == 2 ? 0 : rc;
}

/* ---- dlqList ---- */

static int list_visit(const struct msg_view *v, const char *broker, void *arg)
{
    cJSON_AddItemToArray(arg, dead_json(v, broker));
    return 0;
}

static void print_list_row(const struct ctx *c, const cJSON *e, const struct msg_view *v)
{
    char tb[64], preview[PREVIEW_MAX * 2 + 8];
    adm_fmt_time(adm_jnum(e, "storeTimestamp"), tb, sizeof tb);
    body_preview(v, preview, sizeof preview);
    fprintf(c->out, "%-16s %-8lld %-24s %-10lld %-24s %-34s %-16s %-12s %s\n",
            adm_jstr(e, "brokerName"), adm_jnum(e, "queueOffset"), tb,
            adm_jnum(e, "reconsumeTimes"), adm_jstr(e, "originTopic"), adm_jstr(e, "originMsgId"),
            adm_jstr(e, "keys"), adm_jstr(e, "tags"), preview);
}

struct table {
    const struct ctx *c;
    int rows;
};

static int table_visit(const struct msg_view *v, const char *broker, void *arg)
{
    struct table *t = arg;
    const struct ctx *c = t->c;
    cJSON *e = dead_json(v, broker);
    if (t->rows++ == 0)
        fprintf(c->out, "%-16s %-8s %-24s %-10s %-24s %-34s %-16s %-12s %s\n", "#Broker Name",
                "#Offset", "#StoreTime", "#Reconsume", "#Original Topic", "#Original MsgId",
                "#Keys", "#Tags", "#Body");
    print_list_row(c, e, v);
    cJSON_Delete(e);
    return 0;
}

int cmd_dlq_list(const struct ctx *c, const struct dlq_opts *o)
{
    struct table t = {c, 0};
    struct scan s = {.c = c, .o = o};
    cJSON *arr = cJSON_CreateArray();
    int rc;
    s.fn = c->json ? list_visit : table_visit;
    s.arg = c->json ? (void *)arr : (void *)&t;
    rc = dlq_scan(&s, o->count);
    if (rc == 0 && c->json) {
        adm_print_json(c, arr);
    } else if (rc == 0) {
        fprintf(c->out, "%s%d dead letters in %s", t.rows ? "\n" : "", t.rows, s.topic);
        if (s.truncated)
            fprintf(c->out, " shown, more follow (-c %lld limits the list)", (long long)o->count);
        fprintf(c->out, "\n");
    }
    cJSON_Delete(arr);
    return rc;
}

/* ---- finding one dead letter: dlqView, dlqResend -i ---- */

struct found {
    const char *id;
    int64_t qoff; /* -1 unless the id is a queue offset */
    int n;
    uint8_t *rec; /* a copy of the first match */
    size_t rec_len;
    char broker[CLIENT_NAME_MAX];
    char where[256]; /* "broker-a:3, broker-b:3" of the matches */
};

static int matches(const struct msg_view *v, const struct found *f)
{
    static const char *const names[] = {"UNIQ_KEY", "DLQ_ORIGIN_MESSAGE_ID", "ORIGIN_MESSAGE_ID"};
    char buf[128];
    cJSON *j;
    int hit;
    if (f->qoff >= 0)
        return v->queue_offset == f->qoff;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        adm_prop_str(v, names[i], buf, sizeof buf);
        if (buf[0] && strcasecmp(buf, f->id) == 0)
            return 1;
    }
    j = adm_record_json(v); /* the dead letter's own offset msgId */
    hit = strcasecmp(adm_jstr(j, "offsetMsgId"), f->id) == 0;
    cJSON_Delete(j);
    return hit;
}

static int find_visit(const struct msg_view *v, const char *broker, void *arg)
{
    struct found *f = arg;
    size_t wl = strlen(f->where);
    if (!matches(v, f))
        return 0;
    if (f->n++ == 0) {
        f->rec = malloc(v->total_size);
        memcpy(f->rec, v->rec, v->total_size);
        f->rec_len = v->total_size;
        snprintf(f->broker, sizeof f->broker, "%s", broker);
    }
    if (wl < sizeof f->where - 1)
        snprintf(f->where + wl, sizeof f->where - wl, "%s%s:%lld", wl ? ", " : "", broker,
                 (long long)v->queue_offset);
    return 0;
}

/* The one dead letter @o->id names: a queue offset (digits), the dead letter's offset msgId,
 * or the original message's id (UNIQ_KEY, DLQ_ORIGIN_MESSAGE_ID, ORIGIN_MESSAGE_ID). On 0,
 * @f->rec holds a copy of the record (caller frees) parsed into @v. */
static int find_one(const struct ctx *c, const struct dlq_opts *o, struct found *f,
                    struct msg_view *v)
{
    struct scan s = {.c = c, .o = o, .fn = find_visit, .arg = f};
    const char *p = o->id;
    int rc;
    memset(f, 0, sizeof *f);
    f->id = o->id;
    f->qoff = -1;
    while (*p && isdigit((unsigned char)*p))
        p++;
    if (o->id[0] && !*p && p - o->id <= 18)
        f->qoff = strtoll(o->id, NULL, 10);
    if ((rc = dlq_scan(&s, -1)) != 0)
        return rc;
    if (f->n == 0)
        return adm_fail(c,
                        "no dead letter %s in %s (%d dead letters looked at; -i takes a queue "
                        "offset, the dead letter's offset msgId or the original msgId)",
                        o->id, s.topic, s.seen);
    if (f->n > 1)
        return adm_fail(c,
                        "%d dead letters match %s (broker:queue offset %s): give one queue "
                        "offset%s",
                        f->n, o->id, f->where, f->qoff >= 0 ? " and -b brokerName" : "");
    if (msg_parse(f->rec, f->rec_len, v) != 0)
        return adm_fail(c, "malformed message record in %s", s.topic);
    return 0;
}

/* ---- dlqView ---- */

static void print_props(const struct ctx *c, const cJSON *props)
{
    const cJSON *p;
    fprintf(c->out, "properties\n");
    cJSON_ArrayForEach(p, props)
    {
        fprintf(c->out, "  %-22s %s\n", p->string, cJSON_GetStringValue(p) ? p->valuestring : "");
    }
}

int cmd_dlq_view(const struct ctx *c, const struct dlq_opts *o)
{
    struct found f;
    struct msg_view v;
    cJSON *e;
    int rc = find_one(c, o, &f, &v);
    if (rc == 0) {
        e = dead_json(&v, f.broker);
        if (c->json) {
            adm_print_json(c, e);
        } else {
            adm_print_record(c, e);
            fprintf(c->out, "%-20s %s\n%-20s %s\n%-20s %s\n", "brokerName",
                    adm_jstr(e, "brokerName"), "originTopic", adm_jstr(e, "originTopic"),
                    "originMsgId", adm_jstr(e, "originMsgId"));
            print_props(c, cJSON_GetObjectItemCaseSensitive(e, "properties"));
        }
        cJSON_Delete(e);
    }
    free(f.rec);
    return rc;
}

/* ---- dlqResend ---- */

struct resend {
    const struct ctx *c;
    const struct dlq_opts *o;
    struct bconn bc;
    char route_topic[CLIENT_NAME_MAX * 2]; /* the topic of @route */
    cJSON *route;
    uint32_t counter; /* round robin over the writable queues */
    cJSON *rows;      /* --json: the results */
    int n;
};

/* The properties of the copy: the dead letter's minus what the broker or a previous delivery
 * set, plus WAIT, a new UNIQ_KEY (in @uniq) and the original id as ORIGIN_MESSAGE_ID. */
static char *resend_props(const struct msg_view *v, const char *orig_id, char uniq[33])
{
    static const char *const drop[] = {
        "UNIQ_KEY",           "REAL_TOPIC", "REAL_QID",   "DELAY",      "RETRY_TOPIC",
        "ORIGIN_MESSAGE_ID",  "CLUSTER",    MSG_CRC_PROP, "WAIT",       "TRAN_MSG",
        "__STARTDELIVERTIME", "PGROUP",     "MIN_OFFSET", "MAX_OFFSET", "CONSUME_START_TIME"};
    const char *p = v->props, *end = v->props + v->props_len;
    size_t cap = v->props_len + strlen(orig_id) + 128, len = 0;
    char *out = malloc(cap);
    while (p < end) {
        const char *pe = memchr(p, PROP_PAIR_SEP, (size_t)(end - p));
        const char *ns;
        size_t nl;
        int skip;
        if (!pe)
            pe = end;
        ns = memchr(p, PROP_NAME_SEP, (size_t)(pe - p));
        nl = ns ? (size_t)(ns - p) : 0;
        skip = !ns || nl == 0 || (nl > 4 && memcmp(p, "DLQ_", 4) == 0) ||
               (nl > 6 && memcmp(p, "TIMER_", 6) == 0);
        for (size_t i = 0; !skip && i < sizeof drop / sizeof drop[0]; i++)
            skip = nl == strlen(drop[i]) && memcmp(p, drop[i], nl) == 0;
        if (!skip) {
            memcpy(out + len, p, (size_t)(pe - p));
            len += (size_t)(pe - p);
            out[len++] = PROP_PAIR_SEP;
        }
        p = pe + 1;
    }
    uniq_key_new(uniq);
    len += (size_t)snprintf(out + len, cap - len, "WAIT%ctrue%cUNIQ_KEY%c%s", PROP_NAME_SEP,
                            PROP_PAIR_SEP, PROP_NAME_SEP, uniq);
    if (orig_id[0])
        snprintf(out + len, cap - len, "%cORIGIN_MESSAGE_ID%c%s", PROP_PAIR_SEP, PROP_NAME_SEP,
                 orig_id);
    return out;
}

/* A writable queue of @topic, round robin: its broker name, master address and queue id. */
static int pick_queue(struct resend *rs, const char *topic, const char **broker, const char **addr,
                      int *qid)
{
    const cJSON *qd;
    int total = 0, k;
    if (!rs->route || strcmp(rs->route_topic, topic) != 0) {
        cJSON_Delete(rs->route);
        snprintf(rs->route_topic, sizeof rs->route_topic, "%s", topic);
        if (!(rs->route = adm_get_route(rs->c, topic)))
            return 1;
    }
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(rs->route, "queueDatas"))
    {
        if ((adm_jnum(qd, "perm") & PERM_W) &&
            adm_route_master(rs->route, adm_jstr(qd, "brokerName"))[0])
            total += (int)adm_jnum(qd, "writeQueueNums");
    }
    if (total <= 0)
        return adm_fail(rs->c, "topic %s has no writable queue", topic);
    k = (int)(rs->counter++ % (uint32_t)total);
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(rs->route, "queueDatas"))
    {
        int n = (int)adm_jnum(qd, "writeQueueNums");
        *broker = adm_jstr(qd, "brokerName");
        *addr = adm_route_master(rs->route, *broker);
        if (!(adm_jnum(qd, "perm") & PERM_W) || !(*addr)[0])
            continue;
        if (k < n) {
            *qid = k;
            return 0;
        }
        k -= n;
    }
    return adm_fail(rs->c, "topic %s has no writable queue", topic); /* not reached */
}

static void print_resend_row(const struct ctx *c, const cJSON *e)
{
    fprintf(c->out, "%-16s %-8lld %-34s %-24s %-16s %-5lld %-12s %-34s %s\n",
            adm_jstr(e, "dlqBrokerName"), adm_jnum(e, "dlqQueueOffset"), adm_jstr(e, "originMsgId"),
            adm_jstr(e, "topic"), adm_jstr(e, "brokerName"), adm_jnum(e, "queueId"),
            adm_jstr(e, "sendStatus"), adm_jstr(e, "msgId"), adm_jstr(e, "offsetMsgId"));
}

/* SEND_MESSAGE of a copy of the dead letter @v (of DLQ broker @dlq_broker). */
static int resend_one(struct resend *rs, const struct msg_view *v, const char *dlq_broker)
{
    const struct ctx *c = rs->c;
    char topic[CLIENT_NAME_MAX * 2], orig[128], uniq[33], eb[ERR_MAX];
    const char *broker = NULL, *addr = NULL;
    struct rcmd req, *resp = NULL;
    const struct rstr *mid;
    char *props;
    cJSON *e;
    int qid = 0, rc = 0;
    origin_id(v, orig, sizeof orig);
    if (rs->o->topic)
        snprintf(topic, sizeof topic, "%s", rs->o->topic);
    else
        origin_topic(v, topic, sizeof topic);
    if (!topic[0])
        return adm_fail(c,
                        "dead letter at %s:%lld has no original topic (no DLQ_ORIGIN_TOPIC or "
                        "RETRY_TOPIC): give -t topic",
                        dlq_broker, (long long)v->queue_offset);
    if (pick_queue(rs, topic, &broker, &addr, &qid) != 0)
        return 1;
    props = resend_props(v, orig, uniq);
    rcmd_init_request(&req, REQ_SEND_MESSAGE);
    rcmd_ext_add(&req, "producerGroup", "PID_MQADMIN");
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "defaultTopic", DEFAULT_TOPIC);
    rcmd_ext_add_i64(&req, "defaultTopicQueueNums", DEFAULT_TOPIC_QUEUES);
    rcmd_ext_add_i64(&req, "queueId", qid);
    rcmd_ext_add_i64(&req, "sysFlag", v->sys_flag & SYSFLAG_COMPRESSED);
    rcmd_ext_add_i64(&req, "bornTimestamp", clock_wall_ms());
    rcmd_ext_add_i64(&req, "flag", v->flag);
    rcmd_ext_add(&req, "properties", props);
    rcmd_ext_add_i64(&req, "reconsumeTimes", 0);
    rcmd_ext_add(&req, "unitMode", "false");
    rcmd_ext_add(&req, "batch", "false");
    req.body = v->body;
    req.body_len = v->body_len;
    if (adm_bcall(&rs->bc, addr, &req, &resp, eb, sizeof eb) != 0) {
        free(props);
        return adm_fail(c,
                        "resend of dead letter %s:%lld to %s: %s (the send's outcome is "
                        "unknown)",
                        dlq_broker, (long long)v->queue_offset, topic, eb);
    }
    free(props);
    if (resp->code != RESP_SUCCESS && resp->code != RESP_FLUSH_DISK_TIMEOUT &&
        resp->code != RESP_FLUSH_SLAVE_TIMEOUT && resp->code != RESP_SLAVE_NOT_AVAILABLE) {
        rc = adm_fail(c, "resend of dead letter %s:%lld to %s failed (%s)", dlq_broker,
                      (long long)v->queue_offset, topic, adm_resp_err(resp, addr, eb, sizeof eb));
        rcmd_free(resp);
        return rc;
    }
    e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dlqBrokerName", dlq_broker);
    cJSON_AddNumberToObject(e, "dlqQueueOffset", (double)v->queue_offset);
    cJSON_AddStringToObject(e, "originMsgId", orig);
    cJSON_AddStringToObject(e, "topic", topic);
    cJSON_AddStringToObject(e, "brokerName", broker);
    cJSON_AddNumberToObject(e, "queueId", qid);
    cJSON_AddNumberToObject(e, "queueOffset", (double)adm_ext_i64(resp, "queueOffset", -1));
    cJSON_AddStringToObject(e, "sendStatus",
                            resp->code == RESP_SUCCESS ? "SEND_OK" : adm_code_name(resp->code));
    cJSON_AddStringToObject(e, "msgId", uniq);
    mid = rcmd_ext_get(resp, "msgId");
    snprintf(eb, sizeof eb, "%.*s", mid ? (int)mid->len : 0, mid ? mid->p : "");
    cJSON_AddStringToObject(e, "offsetMsgId", eb);
    rcmd_free(resp);
    if (!c->json) {
        if (rs->n == 0)
            fprintf(c->out, "%-16s %-8s %-34s %-24s %-16s %-5s %-12s %-34s %s\n", "#DLQ Broker",
                    "#Offset", "#Original MsgId", "#Topic", "#Broker Name", "#QID", "#Send Result",
                    "#New MsgId", "#OffsetMsgId");
        print_resend_row(c, e);
        cJSON_Delete(e);
    } else {
        cJSON_AddItemToArray(rs->rows, e);
    }
    rs->n++;
    return 0;
}

static int resend_visit(const struct msg_view *v, const char *broker, void *arg)
{
    return resend_one(arg, v, broker);
}

int cmd_dlq_resend(const struct ctx *c, const struct dlq_opts *o)
{
    struct resend rs = {.c = c, .o = o, .bc = {.cli = NULL}, .rows = cJSON_CreateArray()};
    char dlq[CLIENT_NAME_MAX * 2];
    int rc;
    snprintf(dlq, sizeof dlq, "%s%s", DLQ_PREFIX, o->group);
    if (o->all) {
        struct scan s = {.c = c, .o = o, .fn = resend_visit, .arg = &rs};
        rc = dlq_scan(&s, -1);
    } else {
        struct found f;
        struct msg_view v;
        if ((rc = find_one(c, o, &f, &v)) == 0)
            rc = resend_one(&rs, &v, f.broker);
        free(f.rec);
    }
    adm_bconn_close(&rs.bc);
    cJSON_Delete(rs.route);
    if (c->json && (rc == 0 || rs.n > 0))
        adm_print_json(c, rs.rows); /* also after a failure: what was resent */
    else if (rc == 0)
        fprintf(c->out, "%s%d dead letters of %s resent; they stay in %s\n", rs.n ? "\n" : "", rs.n,
                o->group, dlq);
    cJSON_Delete(rs.rows);
    return rc;
}
