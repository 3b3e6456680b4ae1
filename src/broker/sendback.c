/* CONSUMER_SEND_MSG_BACK (36): a consumer hands back a message it could not consume (Java 4.9.8
 * SendMessageProcessor.consumerSendMsgBack). The message, read from the CommitLog by its offset,
 * is stored again in %RETRY%<group> with DELAY = 3 + reconsume times (or the level asked for), so
 * that the schedule service (schedule.c) redelivers it after that level's delay; past the
 * group's retryMaxTimes (or the request's maxReconsumeTimes) or with a negative level it goes to
 * %DLQ%<group> instead, kept for a person to inspect. Reconsume times + 1; RETRY_TOPIC (the
 * original topic) and ORIGIN_MESSAGE_ID are kept in the properties; a dead letter also gets
 * DLQ_ORIGIN_TOPIC and DLQ_ORIGIN_MESSAGE_ID (RocketMQ 5's names). The answer is sent once the
 * new copy is stored (durable under SYNC_FLUSH). */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_PREFIX "%RETRY%"
#define DLQ_PREFIX   "%DLQ%"
#define DLQ_QUEUES   1

struct back_ctx {
    broker_t *b;
    struct reply_to rt;
    struct put_result res;
    char *props;
    int dlq;
};

static void back_done(void *arg, int rc)
{
    struct back_ctx *ctx = arg;
    struct rcmd resp;
    char remark[200];
    if (rc == 0 || rc == FERRY_ETIMEDOUT) {
        broker_reply_init_resp(&ctx->rt, &resp, RESP_SUCCESS, NULL);
    } else {
        snprintf(remark, sizeof remark, "send message back: the store refused the %s copy: %s",
                 ctx->dlq ? "dead-letter" : "retry", ferry_strerror(rc));
        broker_reply_init_resp(&ctx->rt, &resp, RESP_SYSTEM_ERROR, remark);
    }
    remoting_respond(ctx->rt.conn, &resp);
    broker_reply_done(&ctx->rt);
    ferry_free(ctx->props);
    ferry_free(ctx);
}

void broker_on_send_back(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct hdrs h;
    char group[NAME_MAX_LEN + 1], origin_id[128] = "", origin_topic[256] = "";
    int64_t offset;
    int32_t delay, max_times;
    struct group_config gc;
    struct topic_config tc;
    char topic[NAME_MAX_LEN + 16];

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&h, req);
    bhdrs_i64(&h, "offset", &offset, 0, 1);
    bhdrs_str(&h, "group", group, sizeof group, 1);
    bhdrs_i32(&h, "delayLevel", &delay, 0, 1);
    bhdrs_str(&h, "originMsgId", origin_id, sizeof origin_id, 0);
    bhdrs_str(&h, "originTopic", origin_topic, sizeof origin_topic, 0);
    bhdrs_i32(&h, "maxReconsumeTimes", &max_times, -1, 0);
    if (h.bad) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", h.remark);
        return;
    }
    if (groups_find(b, group, &gc) != 0) {
        broker_respond(conn, req, RESP_SUBSCRIPTION_GROUP_NOT_EXIST,
                       "subscription group not exist, %s", group);
        return;
    }
    if (!(b->cfg.brokerPermission & PERM_WRITE) || broker_role(b) == BROKER_SLAVE) {
        broker_respond(conn, req, RESP_NO_PERMISSION, "the broker[%s] sending message is forbidden",
                       b->ip);
        return;
    }
    if (gc.retry_queue_nums <= 0) { /* Java: retries switched off for the group, dropped */
        broker_respond(conn, req, RESP_SUCCESS, NULL);
        return;
    }

    struct store_slice sl;
    struct msg_view v;
    if (store_read_at(b->store, offset, &sl) != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "look message by offset failed, %" PRId64,
                       offset);
        return;
    }
    if (msg_parse(sl.data, sl.len, &v) != 0) {
        store_release(&sl, 1);
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "the message at offset %" PRId64 " is not readable", offset);
        return;
    }
    if (max_times < 0) /* Java uses the request's value from 3.4.9 clients on */
        max_times = gc.retry_max_times;
    int dlq = v.reconsume_times >= max_times || delay < 0;
    if (!dlq && delay == 0)
        delay = 3 + v.reconsume_times;
    snprintf(topic, sizeof topic, "%s%s", dlq ? DLQ_PREFIX : RETRY_PREFIX, group);
    int32_t queues = dlq ? DLQ_QUEUES : gc.retry_queue_nums;
    int created;
    topics_create_if_missing(b, topic, queues, PERM_READ | PERM_WRITE, 0, &tc, &created);
    if (created) /* routable at once: consumers and mqadmin find it through the name servers */
        broker_reg_trigger(b);
    if (!(tc.perm & PERM_WRITE)) {
        store_release(&sl, 1);
        broker_respond(conn, req, RESP_NO_PERMISSION, "the topic[%s] sending message is forbidden",
                       topic);
        return;
    }

    /* properties: the record's, then RETRY_TOPIC, ORIGIN_MESSAGE_ID, DELAY or the DLQ origin */
    struct sbuf props;
    size_t rl, ol, ul;
    char oid[64], lv[16];
    bsb_init(&props);
    static const char *const drop[] = {"DELAY", "REAL_TOPIC", "REAL_QID", "CLUSTER", NULL};
    brec_props_copy(&props, v.props, v.props_len, drop, 1);
    const char *retry_topic = msg_prop_get(v.props, v.props_len, "RETRY_TOPIC", &rl);
    if (!retry_topic) {
        brec_prop_add(&props, "RETRY_TOPIC", 11, v.topic, v.topic_len);
        retry_topic = v.topic;
        rl = v.topic_len;
    }
    const char *origin = msg_prop_get(v.props, v.props_len, "ORIGIN_MESSAGE_ID", &ol);
    if (!origin) {
        msg_offset_id(&v, oid);
        origin = origin_id[0] ? origin_id : oid;
        ol = strlen(origin);
        brec_prop_add(&props, "ORIGIN_MESSAGE_ID", 17, origin, ol);
    }
    if (dlq) {
        const char *uniq = msg_prop_get(v.props, v.props_len, "UNIQ_KEY", &ul);
        brec_prop_add(&props, "DLQ_ORIGIN_TOPIC", 16, retry_topic, rl);
        brec_prop_add(&props, "DLQ_ORIGIN_MESSAGE_ID", 21, uniq ? uniq : origin, uniq ? ul : ol);
    } else {
        snprintf(lv, sizeof lv, "%d", delay);
        brec_prop_add(&props, "DELAY", 5, lv, strlen(lv));
    }
    brec_prop_add(&props, "CLUSTER", 7, b->cfg.brokerClusterName, strlen(b->cfg.brokerClusterName));

    struct store_msg m;
    brec_to_msg(&v, &m);
    m.topic = topic;
    m.queue_id = queues > 1 ? rand() % queues : 0;
    m.sys_flag &= ~SYSFLAG_TX_MASK;
    m.prepared_tx_offset = 0;
    m.reconsume_times = v.reconsume_times + 1;
    m.props = props.p;
    m.props_len = (uint32_t)props.len;
    char remark[200];
    if (!dlq && sched_prepare(b, &m, &props, remark, sizeof remark) != 0) {
        store_release(&sl, 1);
        bsb_free(&props);
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", remark);
        return;
    }
    log_debug(LOG_BROKER, "send back %s offset %" PRId64 " (reconsume %d) -> %s%s", group, offset,
              v.reconsume_times, topic, dlq ? " (dead letter)" : "");

    struct back_ctx *ctx = ferry_calloc(1, sizeof *ctx);
    ctx->b = b;
    ctx->dlq = dlq;
    ctx->props = props.p;
    broker_reply_init(&ctx->rt, conn, req);
    int rc = store_put_async(b->store, &m, 1, &ctx->res, back_done, ctx);
    store_release(&sl, 1);
    if (rc != 1)
        back_done(ctx, rc);
}
