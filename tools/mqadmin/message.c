/* mqadmin's message subcommands: queryMsgById (VIEW_MESSAGE_BY_ID at the offset msgId's
 * broker), queryMsgByKey (QUERY_MESSAGE on every broker of the topic), sendMessage (libferry's
 * producer), queryMsgByOffset and consumeMessage (PULL_MESSAGE as the tools group, never
 * committing an offset). */
#include "mqadmin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queryMsgById / queryMsgByKey ---- */

static int cmp_group(const void *a, const void *b)
{
    return strcmp(adm_jstr(*(const cJSON *const *)a, "consumerGroup"),
                  adm_jstr(*(const cJSON *const *)b, "consumerGroup"));
}

/* Java's MessageTrack of the record @rec from the committed offsets at its broker @addr
 * (GET_ALL_CONSUMER_OFFSET): one entry per group with an offset on the record's topic there,
 * CONSUMED when its committed offset of the record's queue is past the record's queue offset,
 * else NOT_CONSUME_YET; sorted by group. NULL with @err filled on a failure. */
static cJSON *message_track(const char *addr, const cJSON *rec, char *err, size_t errlen)
{
    struct rcmd req, *resp = NULL;
    const char *topic = adm_jstr(rec, "topic");
    size_t tl = strlen(topic);
    long long qoff = adm_jnum(rec, "queueOffset");
    char qid[24];
    const cJSON *e;
    cJSON *j, *out;
    rcmd_init_request(&req, REQ_GET_ALL_CONSUMER_OFFSET);
    if (adm_call(addr, &req, &resp, err, errlen) != 0)
        return NULL;
    if (resp->code != RESP_SUCCESS) {
        adm_resp_err(resp, addr, err, errlen);
        rcmd_free(resp);
        return NULL;
    }
    j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
    rcmd_free(resp);
    if (!j) {
        snprintf(err, errlen, "malformed consumer offsets from %s", addr);
        return NULL;
    }
    out = cJSON_CreateArray();
    snprintf(qid, sizeof qid, "%lld", adm_jnum(rec, "queueId"));
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "offsetTable"))
    {
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, qid);
        long long committed = cJSON_IsNumber(off) ? (long long)off->valuedouble : -1;
        cJSON *t;
        if (!e->string || strncmp(e->string, topic, tl) != 0 || e->string[tl] != '@')
            continue;
        t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "consumerGroup", e->string + tl + 1);
        cJSON_AddStringToObject(t, "trackType", committed > qoff ? "CONSUMED" : "NOT_CONSUME_YET");
        cJSON_AddNumberToObject(t, "committedOffset", (double)committed);
        cJSON_AddItemToArray(out, t);
    }
    cJSON_Delete(j);
    adm_sort_array(out, cmp_group);
    return out;
}

int cmd_query_by_id(const struct ctx *c, const char *id)
{
    struct rcmd req, *resp = NULL;
    char addr[64], eb[ERR_MAX];
    int64_t phys;
    cJSON *arr;
    int rc = 0;
    if (adm_decode_offset_id(id, addr, sizeof addr, &phys) != 0)
        return adm_fail(c,
                        "%s is not an offset message id (32 hex digits: IPv4 store host, port, "
                        "commit-log offset)",
                        id);
    rcmd_init_request(&req, REQ_VIEW_MESSAGE_BY_ID);
    rcmd_ext_add_i64(&req, "offset", phys);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "message %s: %s", id, eb);
    if (resp->code != RESP_SUCCESS) {
        adm_resp_err(resp, addr, eb, sizeof eb);
        rcmd_free(resp);
        return adm_fail(c, "message %s not found (%s)", id, eb);
    }
    arr = cJSON_CreateArray();
    if (adm_add_records(resp->body, resp->body_len, NULL, NULL, arr) != 0 ||
        cJSON_GetArraySize(arr) != 1) {
        rc = adm_fail(c, "malformed message record from %s", addr);
    } else {
        cJSON *rec = cJSON_GetArrayItem(arr, 0), *track, *t;
        if ((track = message_track(addr, rec, eb, sizeof eb)) != NULL)
            cJSON_AddItemToObject(rec, "messageTrack", track);
        else
            cJSON_AddStringToObject(rec, "messageTrackError", eb);
        if (c->json) {
            adm_print_json(c, rec);
        } else {
            adm_print_record(c, rec);
            fprintf(c->out, "\n%-32s %-16s %s\n", "#Consumer Group", "#Track Type",
                    "#Committed Offset");
            cJSON_ArrayForEach(t, track)
            {
                fprintf(c->out, "%-32s %-16s %lld\n", adm_jstr(t, "consumerGroup"),
                        adm_jstr(t, "trackType"), adm_jnum(t, "committedOffset"));
            }
            if (!track)
                fprintf(c->out, "(no message track: %s)\n", eb);
        }
    }
    cJSON_Delete(arr);
    rcmd_free(resp);
    return rc;
}

static int query_key_on(const struct ctx *c, const char *addr, const char *topic, const char *key,
                        cJSON *arr)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, REQ_QUERY_MESSAGE);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "key", key);
    rcmd_ext_add_i64(&req, "maxNum", 64);
    rcmd_ext_add_i64(&req, "beginTimestamp", 0);
    rcmd_ext_add_i64(&req, "endTimestamp", INT64_MAX);
    rcmd_ext_add(&req, "_UNIQUE_KEY_QUERY", "false");
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "key %s: %s", key, eb);
    if (resp->code == RESP_SUCCESS) {
        if (adm_add_records(resp->body, resp->body_len, topic, key, arr) != 0)
            rc = adm_fail(c, "malformed message records from %s", addr);
    } else if (resp->code != RESP_QUERY_NOT_FOUND) {
        rc = adm_fail(c, "query of key %s failed (%s)", key,
                      adm_resp_err(resp, addr, eb, sizeof eb));
    }
    rcmd_free(resp);
    return rc;
}

int cmd_query_by_key(const struct ctx *c, const char *topic, const char *key)
{
    cJSON *r = adm_get_route(c, topic), *arr = cJSON_CreateArray();
    const cJSON *bd, *e;
    int rc = r ? 0 : 1;
    cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
    {
        const char *a = adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
        if (a[0] && rc == 0)
            rc = query_key_on(c, a, topic, key, arr);
    }
    if (rc == 0 && cJSON_GetArraySize(arr) == 0)
        rc = adm_fail(c, "no message with key %s in topic %s", key, topic);
    if (rc == 0 && c->json) {
        adm_print_json(c, arr);
    } else if (rc == 0) {
        fprintf(c->out, "%-34s %-34s %-5s %-12s %s\n", "#Message ID", "#Offset Message ID", "#QID",
                "#Offset", "#Keys");
        cJSON_ArrayForEach(e, arr)
        {
            fprintf(c->out, "%-34s %-34s %-5lld %-12lld %s\n", adm_jstr(e, "msgId"),
                    adm_jstr(e, "offsetMsgId"), adm_jnum(e, "queueId"), adm_jnum(e, "queueOffset"),
                    adm_jstr(e, "keys"));
        }
    }
    cJSON_Delete(arr);
    cJSON_Delete(r);
    return rc;
}

/* ---- sendMessage ---- */

int cmd_send(const struct ctx *c, const struct ferry_message *m)
{
    struct ferry_producer_config cfg;
    struct ferry_send_result res;
    ferry_producer_t *p = NULL;
    int rc;
    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "PID_MQADMIN");
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", c->ns);
    if ((rc = ferry_producer_new(&cfg, &p)) != 0 || (rc = ferry_producer_start(p)) != 0) {
        ferry_producer_free(p);
        return adm_fail(c, "producer: %s", ferry_strerror(rc));
    }
    rc = ferry_send_sync(p, m, &res);
    ferry_producer_free(p);
    if (rc == FERRY_ENOTSTORED)
        return adm_fail(c, "send to topic %s failed: %s (%d): %s", m->topic,
                        adm_code_name(res.broker_code), (int)res.broker_code, res.remark);
    if (rc != 0)
        return adm_fail(c, "send to topic %s failed: %s", m->topic, ferry_strerror(rc));
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "brokerName", res.broker_name);
        cJSON_AddNumberToObject(o, "queueId", res.queue_id);
        cJSON_AddNumberToObject(o, "queueOffset", (double)res.queue_offset);
        cJSON_AddStringToObject(o, "sendStatus",
                                res.status == FERRY_SEND_OK ? "SEND_OK" : "STORED");
        cJSON_AddStringToObject(o, "msgId", res.msg_id);
        cJSON_AddStringToObject(o, "offsetMsgId", res.offset_msg_id);
        adm_print_json(c, o);
        cJSON_Delete(o);
    } else {
        fprintf(c->out, "%-24s %-5s %-12s %-34s %s\n", "#Broker Name", "#QID", "#Send Result",
                "#MsgId", "#OffsetMsgId");
        fprintf(c->out, "%-24s %-5d %-12s %-34s %s\n", res.broker_name, res.queue_id,
                res.status == FERRY_SEND_OK ? "SEND_OK" : "STORED", res.msg_id, res.offset_msg_id);
    }
    return 0;
}

/* ---- queryMsgByOffset / consumeMessage ---- */

int cmd_query_by_offset(const struct ctx *c, const char *topic, const char *broker, int qid,
                        int64_t offset)
{
    cJSON *r = adm_get_route(c, topic), *arr;
    struct bconn bc = {.cli = NULL};
    struct rcmd *resp = NULL;
    char eb[ERR_MAX], addr[CLIENT_ADDR_MAX];
    int rc;
    if (!r)
        return 1;
    snprintf(addr, sizeof addr, "%s", adm_route_master(r, broker));
    cJSON_Delete(r);
    if (!addr[0])
        return adm_fail(c, "broker %s has no master in the route of topic %s", broker, topic);
    if ((rc = adm_pull(c, &bc, addr, TOOLS_GROUP, topic, qid, offset, 1, &resp)) != 0) {
        adm_bconn_close(&bc);
        return rc;
    }
    adm_bconn_close(&bc);
    if (resp->code != RESP_SUCCESS) {
        rc =
            adm_fail(c, "no message at offset %lld of %s/%s/%d (%s; queue offsets %lld..%lld)",
                     (long long)offset, topic, broker, qid, adm_resp_err(resp, addr, eb, sizeof eb),
                     (long long)adm_ext_i64(resp, "minOffset", 0),
                     (long long)adm_ext_i64(resp, "maxOffset", 0));
        rcmd_free(resp);
        return rc;
    }
    arr = cJSON_CreateArray();
    if (adm_pulled_records(resp, broker, arr) != 0 || cJSON_GetArraySize(arr) < 1)
        rc = adm_fail(c, "malformed message record from %s", addr);
    else if (c->json)
        adm_print_json(c, cJSON_GetArrayItem(arr, 0));
    else
        adm_print_record(c, cJSON_GetArrayItem(arr, 0));
    cJSON_Delete(arr);
    rcmd_free(resp);
    return rc;
}

/* Read [@from, @to) of one queue, keeping the records stored in [begin, end]; at most *@left. */
static int consume_queue(const struct ctx *c, struct bconn *bc, const char *addr,
                         const struct consume_opts *o, const char *broker, int qid, int64_t from,
                         int64_t to, int64_t *left, cJSON *out)
{
    char eb[ERR_MAX];
    int64_t off = from;
    while (off<to && * left> 0) {
        struct rcmd *resp = NULL;
        int64_t want = to - off < PULL_MAX ? to - off : PULL_MAX, next;
        cJSON *recs, *e;
        if (adm_pull(c, bc, addr, o->group, o->topic, qid, off, (int)want, &resp) != 0)
            return 1;
        next = adm_ext_i64(resp, "nextBeginOffset", off);
        if (resp->code == RESP_PULL_NOT_FOUND ||
            ((resp->code == RESP_PULL_OFFSET_MOVED || resp->code == RESP_PULL_RETRY_IMMEDIATELY) &&
             next <= off)) {
            rcmd_free(resp);
            break; /* the end of the queue */
        }
        if (resp->code != RESP_SUCCESS && resp->code != RESP_PULL_OFFSET_MOVED &&
            resp->code != RESP_PULL_RETRY_IMMEDIATELY) {
            int rc = adm_fail(c, "pull %s/%s/%d at %lld failed (%s)", o->topic, broker, qid,
                              (long long)off, adm_resp_err(resp, addr, eb, sizeof eb));
            rcmd_free(resp);
            return rc;
        }
        recs = cJSON_CreateArray();
        if (resp->code == RESP_SUCCESS && adm_pulled_records(resp, broker, recs) != 0) {
            cJSON_Delete(recs);
            rcmd_free(resp);
            return adm_fail(c, "malformed message records from %s", addr);
        }
        while ((e = cJSON_DetachItemFromArray(recs, 0)) != NULL) {
            long long qo = adm_jnum(e, "queueOffset"), st = adm_jnum(e, "storeTimestamp");
            if (qo >= to || *left <= 0 || (o->begin > 0 && st < o->begin) ||
                (o->end > 0 && st > o->end)) {
                cJSON_Delete(e);
                continue;
            }
            cJSON_AddItemToArray(out, e);
            (*left)--;
        }
        cJSON_Delete(recs);
        rcmd_free(resp);
        if (next <= off)
            break;
        off = next;
    }
    return 0;
}

static int consume_on(const struct ctx *c, struct bconn *bc, const char *addr,
                      const struct consume_opts *o, const char *broker, int qid, int64_t *left,
                      cJSON *out)
{
    int64_t min, max, from, to;
    if (adm_queue_offset(c, bc, addr, REQ_GET_MIN_OFFSET, o->topic, qid, 0, &min) != 0 ||
        adm_queue_offset(c, bc, addr, REQ_GET_MAX_OFFSET, o->topic, qid, 0, &max) != 0)
        return 1;
    from = min;
    to = max;
    if (o->begin > 0 && adm_queue_offset(c, bc, addr, REQ_SEARCH_OFFSET_BY_TIMESTAMP, o->topic, qid,
                                         o->begin, &from))
        return 1;
    if (o->end > 0) {
        if (adm_queue_offset(c, bc, addr, REQ_SEARCH_OFFSET_BY_TIMESTAMP, o->topic, qid, o->end,
                             &to))
            return 1;
        to = to + 1 < max ? to + 1 : max; /* the nearest entry; later ones are filtered out */
    }
    if (o->offset >= 0 && o->offset > from)
        from = o->offset;
    return consume_queue(c, bc, addr, o, broker, qid, from, to, left, out);
}

int cmd_consume_message(const struct ctx *c, const struct consume_opts *o)
{
    cJSON *r = adm_get_route(c, o->topic), *out;
    struct bconn bc = {.cli = NULL};
    const cJSON *qd, *e;
    int64_t left = o->count;
    int rc = 0, queues = 0;
    if (!r)
        return 1;
    if (o->broker && !adm_route_master(r, o->broker)[0]) {
        cJSON_Delete(r);
        return adm_fail(c, "broker %s has no master in the route of topic %s", o->broker, o->topic);
    }
    out = cJSON_CreateArray();
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *broker = adm_jstr(qd, "brokerName"), *addr = adm_route_master(r, broker);
        int n = (int)adm_jnum(qd, "readQueueNums");
        if ((o->broker && strcmp(o->broker, broker) != 0) || !addr[0] ||
            !(adm_jnum(qd, "perm") & 4))
            continue;
        for (int q = 0; q < n && rc == 0 && left > 0; q++) {
            if (o->qid >= 0 && q != o->qid)
                continue;
            queues++;
            rc = consume_on(c, &bc, addr, o, broker, q, &left, out);
        }
    }
    adm_bconn_close(&bc);
    cJSON_Delete(r);
    if (rc == 0 && o->qid >= 0 && queues == 0)
        rc = adm_fail(c, "topic %s has no readable queue %d on broker %s", o->topic, o->qid,
                      o->broker);
    if (rc == 0 && c->json) {
        adm_print_json(c, out);
    } else if (rc == 0) {
        fprintf(c->out, "%-24s %-5s %-10s %-34s %-24s %-16s %s\n", "#Broker Name", "#QID",
                "#Offset", "#MsgId", "#StoreTime", "#Tags", "#Body");
        cJSON_ArrayForEach(e, out)
        {
            char tb[64];
            adm_fmt_time(adm_jnum(e, "storeTimestamp"), tb, sizeof tb);
            fprintf(c->out, "%-24s %-5lld %-10lld %-34s %-24s %-16s %s\n",
                    adm_jstr(e, "brokerName"), adm_jnum(e, "queueId"), adm_jnum(e, "queueOffset"),
                    adm_jstr(e, "msgId"), tb, adm_jstr(e, "tags"),
                    cJSON_GetObjectItemCaseSensitive(e, "body") ? adm_jstr(e, "body")
                                                                : "(compressed)");
        }
        fprintf(c->out, "\n%d messages\n", cJSON_GetArraySize(out));
    }
    cJSON_Delete(out);
    return rc;
}
