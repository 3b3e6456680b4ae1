/* mqadmin's consumer-group subcommands: consumerConnection, consumerProgress,
 * resetOffsetByTime (INVOKE_BROKER_TO_RESET_OFFSET, falling back to the old way when the group
 * is not online on a Java broker), resetOffsetByTimeOld (SEARCH_OFFSET_BY_TIMESTAMP +
 * UPDATE_CONSUMER_OFFSET from here) and updateSubGroup. */
#include "mqadmin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- consumerConnection ---- */

int cmd_consumer_connection(const struct ctx *c, const char *group, const char *broker)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX], retry[CLIENT_NAME_MAX * 2], addr[CLIENT_ADDR_MAX] = "";
    const cJSON *e;
    cJSON *j;
    if (broker) {
        snprintf(addr, sizeof addr, "%s", broker);
    } else {
        /* Java asks a broker of the group's retry topic. */
        cJSON *r;
        snprintf(retry, sizeof retry, "%%RETRY%%%s", group);
        if (!(r = adm_get_route(c, retry)))
            return adm_fail(c, "consumer group %s: no broker knows it", group);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "brokerDatas"))
        {
            const char *a = adm_jstr(cJSON_GetObjectItemCaseSensitive(e, "brokerAddrs"), "0");
            if (a[0] && !addr[0])
                snprintf(addr, sizeof addr, "%s", a);
        }
        cJSON_Delete(r);
        if (!addr[0])
            return adm_fail(c, "consumer group %s: no master broker", group);
    }
    rcmd_init_request(&req, REQ_GET_CONSUMER_CONNECTION_LIST);
    rcmd_ext_add(&req, "consumerGroup", group);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "consumer group %s: %s", group, eb);
    j = adm_json_body(c, resp, addr, "consumer connection list");
    rcmd_free(resp);
    if (!j)
        return 1;
    if (c->json) {
        adm_print_json(c, j);
        cJSON_Delete(j);
        return 0;
    }
    fprintf(c->out, "%-4s %-48s %-24s %-10s %s\n", "#", "#ClientId", "#ClientAddr", "#Language",
            "#Version");
    int i = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "connectionSet"))
    {
        fprintf(c->out, "%-4d %-48s %-24s %-10s %lld\n", ++i, adm_jstr(e, "clientId"),
                adm_jstr(e, "clientAddr"), adm_jstr(e, "language"), adm_jnum(e, "version"));
    }
    fprintf(c->out, "\nBelow is subscription:\n");
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "subscriptionTable"))
    {
        fprintf(c->out, "%-48s %s\n", e->string, adm_jstr(e, "subString"));
    }
    fprintf(c->out, "\nConsumeType: %s\nMessageModel: %s\nConsumeFromWhere: %s\n",
            adm_jstr(j, "consumeType"), adm_jstr(j, "messageModel"),
            adm_jstr(j, "consumeFromWhere"));
    cJSON_Delete(j);
    return 0;
}

/* ---- consumerProgress ---- */

struct cstats {
    cJSON *arr;
    const char *only_topic;
};

static void cstats_entry(const cJSON *k, const cJSON *v, void *arg)
{
    struct cstats *cs = arg;
    const char *topic = adm_jstr(k, "topic");
    cJSON *e, *it;
    if (cs->only_topic && strcmp(cs->only_topic, topic) != 0)
        return;
    /* The same queue from two answers (a broker listed twice) is shown once. */
    cJSON_ArrayForEach(it, cs->arr)
    {
        if (strcmp(adm_jstr(it, "topic"), topic) == 0 &&
            strcmp(adm_jstr(it, "brokerName"), adm_jstr(k, "brokerName")) == 0 &&
            adm_jnum(it, "queueId") == adm_jnum(k, "queueId"))
            return;
    }
    e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "topic", topic);
    cJSON_AddStringToObject(e, "brokerName", adm_jstr(k, "brokerName"));
    cJSON_AddNumberToObject(e, "queueId", (double)adm_jnum(k, "queueId"));
    cJSON_AddNumberToObject(e, "brokerOffset", (double)adm_jnum(v, "brokerOffset"));
    cJSON_AddNumberToObject(e, "consumerOffset", (double)adm_jnum(v, "consumerOffset"));
    cJSON_AddNumberToObject(e, "diff",
                            (double)(adm_jnum(v, "brokerOffset") - adm_jnum(v, "consumerOffset")));
    cJSON_AddNumberToObject(e, "lastTimestamp", (double)adm_jnum(v, "lastTimestamp"));
    cJSON_AddItemToArray(cs->arr, e);
}

/* GET_CONSUME_STATS of @group (@topic may be NULL: every topic the group has offsets for) at
 * @addr, appended to @arr; entries of other topics than @only are skipped (when given).
 * *@tps gets the consumeTps added. 0, or 1 with a message printed. */
static int consume_stats_on(const struct ctx *c, struct bconn *bc, const char *addr,
                            const char *group, const char *topic, const char *only, cJSON *arr,
                            double *tps)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    struct cstats cs = {arr, only};
    int rc = 0;
    rcmd_init_request(&req, REQ_GET_CONSUME_STATS);
    rcmd_ext_add(&req, "consumerGroup", group);
    if (topic)
        rcmd_ext_add(&req, "topic", topic);
    if (adm_bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "consumer group %s: %s", group, eb);
    if (resp->code != RESP_SUCCESS) {
        rc = adm_fail(c, "consume stats of group %s failed (%s)", group,
                      adm_resp_err(resp, addr, eb, sizeof eb));
    } else if (adm_parse_mq_map(resp->body, resp->body_len, "offsetTable", cstats_entry, &cs) !=
               0) {
        rc = adm_fail(c, "malformed consume stats from %s", addr);
    } else if (tps) {
        /* Not parsed with cJSON: the body as a whole is not JSON (fastjson's object keys). */
        char *body = strndup((const char *)resp->body, resp->body_len);
        const char *t = body ? strstr(body, "\"consumeTps\":") : NULL;
        *tps += t ? strtod(t + 13, NULL) : 0;
        free(body);
    }
    rcmd_free(resp);
    return rc;
}

int cmd_consumer_progress(const struct ctx *c, const char *group, const char *topic)
{
    char retry[CLIENT_NAME_MAX * 2];
    const char *addrs[64] = {0};
    cJSON *rr, *tr = NULL, *ci = NULL, *arr;
    struct bconn bc = {.cli = NULL};
    double tps = 0;
    long long total = 0;
    int missing = 0, rc = 0;
    const cJSON *e;

    /* Java asks the brokers of the group's retry topic; with -t the topic's brokers too, and
     * when neither has a route (a group that only committed offsets) every master. */
    snprintf(retry, sizeof retry, "%%RETRY%%%s", group);
    if (!(rr = adm_get_route_or(c, retry, &missing)) && !missing)
        return 1;
    adm_route_masters(rr, addrs, 64);
    if (topic) {
        if (!(tr = adm_get_route(c, topic))) {
            cJSON_Delete(rr);
            return 1;
        }
        adm_route_masters(tr, addrs, 64);
    }
    if (!addrs[0]) {
        const cJSON *bd;
        if (!(ci = adm_get_cluster(c))) {
            cJSON_Delete(rr);
            return 1;
        }
        cJSON_ArrayForEach(bd, cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"))
            adm_addr_add(addrs, 64,
                         adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0"));
    }
    arr = cJSON_CreateArray();
    for (int i = 0; addrs[i] && rc == 0; i++)
        rc = consume_stats_on(c, &bc, addrs[i], group, topic, topic, arr, &tps);
    adm_bconn_close(&bc);
    if (rc == 0 && cJSON_GetArraySize(arr) == 0)
        rc = adm_fail(
            c,
            "consumer group %s has no consume stats%s%s: it has committed no offset on any "
            "broker",
            group, topic ? " for topic " : "", topic ? topic : "");
    if (rc == 0) {
        adm_sort_array(arr, adm_cmp_mq);
        cJSON_ArrayForEach(e, arr) total += adm_jnum(e, "diff");
    }
    if (rc == 0 && c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "group", group);
        cJSON_AddNumberToObject(o, "consumeTps", tps);
        cJSON_AddNumberToObject(o, "diffTotal", (double)total);
        cJSON_AddItemToObject(o, "offsetTable", arr);
        arr = NULL;
        adm_print_json(c, o);
        cJSON_Delete(o);
    } else if (rc == 0) {
        fprintf(c->out, "%-32s  %-24s  %-4s  %-16s  %-16s  %-10s  %s\n", "#Topic", "#Broker Name",
                "#QID", "#Broker Offset", "#Consumer Offset", "#Diff", "#LastTime");
        cJSON_ArrayForEach(e, arr)
        {
            char tb[64] = "N/A";
            time_t s = (time_t)(adm_jnum(e, "lastTimestamp") / 1000);
            struct tm tm;
            if (adm_jnum(e, "lastTimestamp") > 0 && localtime_r(&s, &tm))
                strftime(tb, sizeof tb, "%Y-%m-%d %H:%M:%S", &tm);
            fprintf(c->out, "%-32s  %-24s  %-4lld  %-16lld  %-16lld  %-10lld  %s\n",
                    adm_jstr(e, "topic"), adm_jstr(e, "brokerName"), adm_jnum(e, "queueId"),
                    adm_jnum(e, "brokerOffset"), adm_jnum(e, "consumerOffset"), adm_jnum(e, "diff"),
                    tb);
        }
        fprintf(c->out, "\nConsume TPS: %.2f\nDiff Total: %lld\n", tps, total);
    }
    cJSON_Delete(arr);
    cJSON_Delete(ci);
    cJSON_Delete(tr);
    cJSON_Delete(rr);
    return rc;
}

/* ---- resetOffsetByTime / resetOffsetByTimeOld ---- */

static void reset_entry(const cJSON *k, const cJSON *v, void *arg)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "topic", adm_jstr(k, "topic"));
    cJSON_AddStringToObject(e, "brokerName", adm_jstr(k, "brokerName"));
    cJSON_AddNumberToObject(e, "queueId", (double)adm_jnum(k, "queueId"));
    cJSON_AddNumberToObject(e, "offset", cJSON_IsNumber(v) ? v->valuedouble : 0);
    cJSON_AddItemToArray(arg, e);
}

/* RocketMQ's resetOffsetByTimestampOld on one broker: the offsets of the group's queues of the
 * topic (GET_CONSUME_STATS, or when it has none the topic's min/max offsets), the offset of
 * the timestamp per queue (SEARCH_OFFSET_BY_TIMESTAMP, GET_MAX_OFFSET for -1), written with
 * UPDATE_CONSUMER_OFFSET when forced or when it moves the offset back. */
static int reset_old_on(const struct ctx *c, struct bconn *bc, const char *addr, const char *broker,
                        int read_queues, const struct reset_opts *o, cJSON *rows)
{
    cJSON *st = cJSON_CreateArray(), *e;
    char eb[ERR_MAX];
    int rc = consume_stats_on(c, bc, addr, o->group, NULL, o->topic, st, NULL);
    if (rc == 0 && cJSON_GetArraySize(st) == 0) {
        cJSON *ts = cJSON_CreateArray();
        if ((rc = adm_topic_stats_on(c, o->topic, addr, ts)) == 0) {
            cJSON_ArrayForEach(e, ts)
            {
                cJSON *x;
                if (adm_jnum(e, "queueId") >= read_queues)
                    continue;
                x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "topic", o->topic);
                cJSON_AddStringToObject(x, "brokerName", broker);
                cJSON_AddNumberToObject(x, "queueId", (double)adm_jnum(e, "queueId"));
                cJSON_AddNumberToObject(x, "brokerOffset", (double)adm_jnum(e, "maxOffset"));
                cJSON_AddNumberToObject(x, "consumerOffset", (double)adm_jnum(e, "minOffset"));
                cJSON_AddItemToArray(st, x);
            }
        }
        cJSON_Delete(ts);
    }
    cJSON_ArrayForEach(e, st)
    {
        int qid = (int)adm_jnum(e, "queueId");
        long long cur = adm_jnum(e, "consumerOffset");
        int64_t to;
        cJSON *row;
        if (rc != 0)
            break;
        if ((rc = o->ts == -1
                      ? adm_queue_offset(c, bc, addr, REQ_GET_MAX_OFFSET, o->topic, qid, 0, &to)
                      : adm_queue_offset(c, bc, addr, REQ_SEARCH_OFFSET_BY_TIMESTAMP, o->topic, qid,
                                         o->ts, &to)) != 0)
            break;
        row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "topic", o->topic);
        cJSON_AddStringToObject(row, "brokerName", adm_jstr(e, "brokerName"));
        cJSON_AddNumberToObject(row, "queueId", qid);
        cJSON_AddNumberToObject(row, "brokerOffset", (double)adm_jnum(e, "brokerOffset"));
        cJSON_AddNumberToObject(row, "consumerOffset", (double)cur);
        cJSON_AddNumberToObject(row, "timestampOffset", (double)to);
        cJSON_AddNumberToObject(row, "offset", (double)(o->force || to <= cur ? to : cur));
        cJSON_AddItemToArray(rows, row);
        if (o->force || to <= cur) {
            struct rcmd req, *resp = NULL;
            rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
            rcmd_ext_add(&req, "consumerGroup", o->group);
            rcmd_ext_add(&req, "topic", o->topic);
            rcmd_ext_add_i64(&req, "queueId", qid);
            rcmd_ext_add_i64(&req, "commitOffset", to);
            if (adm_bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0) {
                rc = adm_fail(c, "update offset of %s/%d: %s", o->topic, qid, eb);
                break;
            }
            if (resp->code != RESP_SUCCESS)
                rc = adm_fail(c, "update offset of group %s on %s/%d failed (%s)", o->group,
                              o->topic, qid, adm_resp_err(resp, addr, eb, sizeof eb));
            rcmd_free(resp);
        }
    }
    cJSON_Delete(st);
    return rc;
}

/* INVOKE_BROKER_TO_RESET_OFFSET at @addr; CONSUMER_NOT_ONLINE falls back to reset_old_on(). */
static int reset_on(const struct ctx *c, struct bconn *bc, const char *addr, const char *broker,
                    int read_queues, const struct reset_opts *o, cJSON *rows)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, REQ_INVOKE_BROKER_TO_RESET_OFFSET);
    if (o->cplus)
        req.language = RCMD_LANG_CPP; /* the broker then sends the C++ body to the consumers */
    rcmd_ext_add(&req, "topic", o->topic);
    rcmd_ext_add(&req, "group", o->group);
    rcmd_ext_add_i64(&req, "timestamp", o->ts);
    rcmd_ext_add(&req, "isForce", o->force ? "true" : "false");
    if (adm_bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "reset offset of group %s: %s", o->group, eb);
    if (resp->code == RESP_CONSUMER_NOT_ONLINE) {
        rcmd_free(resp);
        if (!c->json)
            fprintf(c->out,
                    "broker %s: consumer group %s is not online, resetting its offsets with "
                    "UPDATE_CONSUMER_OFFSET\n",
                    addr, o->group);
        return reset_old_on(c, bc, addr, broker, read_queues, o, rows);
    }
    if (resp->code != RESP_SUCCESS)
        rc = adm_fail(c, "reset offset of group %s on topic %s failed (%s)", o->group, o->topic,
                      adm_resp_err(resp, addr, eb, sizeof eb));
    else if (adm_parse_mq_map(resp->body, resp->body_len, "offsetTable", reset_entry, rows) != 0)
        rc = adm_fail(c, "malformed reset offset answer from %s", addr);
    rcmd_free(resp);
    return rc;
}

int cmd_reset_offset(const struct ctx *c, const struct reset_opts *o, int old)
{
    cJSON *r = adm_get_route(c, o->topic), *rows;
    struct bconn bc = {.cli = NULL};
    const cJSON *qd, *e;
    int rc = 0;
    if (!r)
        return 1;
    rows = cJSON_CreateArray();
    cJSON_ArrayForEach(qd, cJSON_GetObjectItemCaseSensitive(r, "queueDatas"))
    {
        const char *broker = adm_jstr(qd, "brokerName"), *addr = adm_route_master(r, broker);
        int rq = (int)adm_jnum(qd, "readQueueNums");
        if (!addr[0] || rc != 0)
            continue;
        rc = old ? reset_old_on(c, &bc, addr, broker, rq, o, rows)
                 : reset_on(c, &bc, addr, broker, rq, o, rows);
    }
    adm_bconn_close(&bc);
    cJSON_Delete(r);
    if (rc == 0)
        adm_sort_array(rows, adm_cmp_mq);
    if (rc == 0 && c->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "group", o->group);
        cJSON_AddStringToObject(j, "topic", o->topic);
        cJSON_AddBoolToObject(j, "force", o->force);
        cJSON_AddNumberToObject(j, "timestamp", (double)o->ts);
        cJSON_AddItemToObject(j, "offsetTable", rows);
        rows = NULL;
        adm_print_json(c, j);
        cJSON_Delete(j);
    } else if (rc == 0) {
        fprintf(c->out,
                "rollback consumer offset by specified group[%s], topic[%s], force[%s], "
                "timestamp(string)[%s], timestamp(long)[%lld]\n",
                o->group, o->topic, o->force ? "true" : "false", o->ts_str, (long long)o->ts);
        if (old)
            fprintf(c->out, "%-24s  %-8s  %-16s  %-16s  %-16s  %s\n", "#brokerName", "#queueId",
                    "#brokerOffset", "#consumerOffset", "#timestampOffset", "#rollbackOffset");
        else
            fprintf(c->out, "%-24s  %-8s  %s\n", "#brokerName", "#queueId", "#offset");
        cJSON_ArrayForEach(e, rows)
        {
            if (old)
                fprintf(c->out, "%-24s  %-8lld  %-16lld  %-16lld  %-16lld  %lld\n",
                        adm_jstr(e, "brokerName"), adm_jnum(e, "queueId"),
                        adm_jnum(e, "brokerOffset"), adm_jnum(e, "consumerOffset"),
                        adm_jnum(e, "timestampOffset"), adm_jnum(e, "offset"));
            else
                fprintf(c->out, "%-24s  %-8lld  %lld\n", adm_jstr(e, "brokerName"),
                        adm_jnum(e, "queueId"), adm_jnum(e, "offset"));
        }
    }
    cJSON_Delete(rows);
    return rc;
}

/* ---- updateSubGroup ---- */

int cmd_update_sub_group(const struct ctx *c, const struct group_opts *o)
{
    cJSON *ci, *body = cJSON_CreateObject();
    const char **addrs;
    char *text, eb[ERR_MAX];
    int rc = 0;
    cJSON_AddNumberToObject(body, "brokerId", (double)o->broker_id);
    cJSON_AddBoolToObject(body, "consumeBroadcastEnable", o->broadcast);
    cJSON_AddBoolToObject(body, "consumeEnable", o->consume_enable);
    cJSON_AddBoolToObject(body, "consumeFromMinEnable", o->from_min);
    cJSON_AddStringToObject(body, "groupName", o->group);
    cJSON_AddBoolToObject(body, "notifyConsumerIdsChangedEnable", o->notify);
    cJSON_AddNumberToObject(body, "retryMaxTimes", o->retry_max);
    cJSON_AddNumberToObject(body, "retryQueueNums", o->retry_queues);
    cJSON_AddNumberToObject(body, "whichBrokerWhenConsumeSlowly", (double)o->slow_broker);
    if (adm_targets(c, o->broker, o->cluster, &ci, &addrs) != 0) {
        cJSON_Delete(ci);
        cJSON_Delete(body);
        return 1;
    }
    text = cJSON_PrintUnformatted(body);
    for (int i = 0; addrs[i] && rc == 0; i++) {
        struct rcmd req, *resp = NULL;
        rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP);
        req.body = (const uint8_t *)text;
        req.body_len = strlen(text);
        if (adm_call(addrs[i], &req, &resp, eb, sizeof eb) != 0) {
            rc = adm_fail(c, "subscription group %s: %s", o->group, eb);
            break;
        }
        if (resp->code != RESP_SUCCESS)
            rc = adm_fail(c, "create subscription group %s failed (%s)", o->group,
                          adm_resp_err(resp, addrs[i], eb, sizeof eb));
        else if (!c->json)
            fprintf(c->out, "create subscription group to %s success.\n", addrs[i]);
        rcmd_free(resp);
    }
    if (rc == 0 && c->json) {
        cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "brokers");
        for (int i = 0; addrs[i]; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(addrs[i]));
        cJSON_AddItemToObject(j, "subscriptionGroupConfig", body);
        body = NULL;
        adm_print_json(c, j);
        cJSON_Delete(j);
    } else if (rc == 0) {
        fprintf(c->out, "%s\n", text);
    }
    free(text);
    free(addrs);
    cJSON_Delete(ci);
    cJSON_Delete(body);
    return rc;
}

/* ---- groupList (FerryMQ's: Java lists groups with `consumerProgress` without -g) ---- */

/* The entry of group @name in the object @groups, created on first use. */
static cJSON *group_entry(cJSON *groups, const char *name)
{
    cJSON *g = cJSON_GetObjectItemCaseSensitive(groups, name);
    if (!g) {
        g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "group", name);
        cJSON_AddBoolToObject(g, "subscriptionGroup", 0);
        cJSON_AddArrayToObject(g, "brokers");
        cJSON_AddArrayToObject(g, "topics");
        cJSON_AddItemToObject(groups, name, g);
    }
    return g;
}

/* Append @s to the string array @field of @g unless it is there. */
static void add_unique(cJSON *g, const char *field, const char *s)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(g, field);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (strcmp(cJSON_GetStringValue(e), s) == 0)
            return;
    }
    cJSON_AddItemToArray(arr, cJSON_CreateString(s));
}

/* A request without fields to @addr whose SUCCESS body is JSON; NULL with a message. */
static cJSON *broker_json_req(const struct ctx *c, struct bconn *bc, const char *addr, int32_t code,
                              const char *what)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    cJSON *j;
    rcmd_init_request(&req, code);
    if (adm_bcall(bc, addr, &req, &resp, eb, sizeof eb) != 0) {
        adm_fail(c, "%s: %s", what, eb);
        return NULL;
    }
    j = adm_json_body(c, resp, addr, what);
    rcmd_free(resp);
    return j;
}

/* The subscription groups and the committed offsets of the master @addr (@broker) into
 * @groups. 0, or 1 with a message printed. */
static int group_list_on(const struct ctx *c, struct bconn *bc, const char *addr,
                         const char *broker, cJSON *groups)
{
    static const char *const flags[] = {"consumeEnable", "consumeBroadcastEnable",
                                        "consumeFromMinEnable"};
    cJSON *sg, *off;
    const cJSON *e;
    if (!(sg = broker_json_req(c, bc, addr, REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
                               "subscription groups")))
        return 1;
    if (!(off = broker_json_req(c, bc, addr, REQ_GET_ALL_CONSUMER_OFFSET, "consumer offsets"))) {
        cJSON_Delete(sg);
        return 1;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(sg, "subscriptionGroupTable"))
    {
        cJSON *g;
        if (!e->string)
            continue;
        g = group_entry(groups, e->string);
        add_unique(g, "brokers", broker);
        cJSON_ReplaceItemInObjectCaseSensitive(g, "subscriptionGroup", cJSON_CreateTrue());
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
            cJSON_DeleteItemFromObjectCaseSensitive(g, flags[i]);
            cJSON_AddBoolToObject(g, flags[i],
                                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, flags[i])));
        }
        cJSON_DeleteItemFromObjectCaseSensitive(g, "retryMaxTimes");
        cJSON_AddNumberToObject(g, "retryMaxTimes", (double)adm_jnum(e, "retryMaxTimes"));
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(off, "offsetTable"))
    {
        char topic[CLIENT_NAME_MAX * 2];
        const char *at = e->string ? strchr(e->string, '@') : NULL;
        cJSON *g;
        if (!at || !at[1] || (size_t)(at - e->string) >= sizeof topic)
            continue;
        snprintf(topic, sizeof topic, "%.*s", (int)(at - e->string), e->string);
        g = group_entry(groups, at + 1);
        add_unique(g, "brokers", broker);
        if (strncmp(topic, "%RETRY%", 7) != 0)
            add_unique(g, "topics", topic);
    }
    cJSON_Delete(off);
    cJSON_Delete(sg);
    return 0;
}

static int cmp_group_name(const void *a, const void *b)
{
    return strcmp(adm_jstr(*(const cJSON *const *)a, "group"),
                  adm_jstr(*(const cJSON *const *)b, "group"));
}

int cmd_group_list(const struct ctx *c, const char *cluster)
{
    cJSON *ci = adm_get_cluster(c), *groups, *arr, *g;
    struct bconn bc = {.cli = NULL};
    const cJSON *cl, *n;
    int rc = 0, found = 0;
    if (!ci)
        return 1;
    groups = cJSON_CreateObject();
    cJSON_ArrayForEach(cl, cJSON_GetObjectItemCaseSensitive(ci, "clusterAddrTable"))
    {
        if (cluster && strcmp(cl->string, cluster) != 0)
            continue;
        found = 1;
        cJSON_ArrayForEach(n, cl)
        {
            const char *name = cJSON_GetStringValue(n);
            const cJSON *bd = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(ci, "brokerAddrTable"), name ? name : "");
            const char *a = adm_jstr(cJSON_GetObjectItemCaseSensitive(bd, "brokerAddrs"), "0");
            if (a[0] && rc == 0)
                rc = group_list_on(c, &bc, a, name, groups);
        }
    }
    adm_bconn_close(&bc);
    if (rc == 0 && cluster && !found)
        rc = adm_fail(c, "cluster %s not found", cluster);
    arr = cJSON_CreateArray();
    while (groups->child) {
        g = cJSON_DetachItemViaPointer(groups, groups->child);
        cJSON_AddItemToArray(arr, g);
    }
    adm_sort_array(arr, cmp_group_name);
    if (rc == 0 && c->json) {
        adm_print_json(c, arr);
    } else if (rc == 0) {
        fprintf(c->out, "%-40s %-12s %-32s %s\n", "#Group", "#SubGroup", "#Brokers", "#Topics");
        cJSON_ArrayForEach(g, arr)
        {
            char brokers[256] = "", topics[1024] = "";
            const cJSON *x;
            size_t bl = 0, tl = 0;
            cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(g, "brokers"))
            {
                if (bl < sizeof brokers)
                    bl += (size_t)snprintf(brokers + bl, sizeof brokers - bl, "%s%s", bl ? "," : "",
                                           x->valuestring);
            }
            cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(g, "topics"))
            {
                if (tl < sizeof topics)
                    tl += (size_t)snprintf(topics + tl, sizeof topics - tl, "%s%s", tl ? "," : "",
                                           x->valuestring);
            }
            fprintf(c->out, "%-40s %-12s %-32s %s\n", adm_jstr(g, "group"),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "subscriptionGroup")) ? "yes"
                                                                                           : "no",
                    brokers[0] ? brokers : "-", topics[0] ? topics : "-");
        }
        fprintf(c->out, "\n%d groups\n", cJSON_GetArraySize(arr));
    }
    cJSON_Delete(arr);
    cJSON_Delete(groups);
    cJSON_Delete(ci);
    return rc;
}
