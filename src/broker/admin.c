/* Offsets, queries and admin requests (Java ConsumerManageProcessor, QueryMessageProcessor and
 * AdminBrokerProcessor): QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET,
 * SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME, VIEW_MESSAGE_BY_ID, QUERY_MESSAGE,
 * UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, GET_ALL_TOPIC_CONFIG, GET_TOPIC_STATS_INFO,
 * GET_BROKER_RUNTIME_INFO, GET_BROKER_CONFIG, the subscription-group admin codes,
 * GET_CONSUME_STATS and INVOKE_BROKER_TO_RESET_OFFSET (which sends RESET_CONSUMER_CLIENT_OFFSET
 * to the group's consumers and commits the offsets itself, for offline groups too).
 *
 * Topic and group changes are answered only after the metadata file is written and the name
 * servers were told (broker_reg_answer_after), so a route lookup right after the answer finds the
 * topic. Message bodies (view, query) are sent from the store's mapping without a copy. */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_BUF     1024
#define QUERY_MAX_NUM 64 /* Java maxMsgsNumBatch */

#define FIELD_ERR(conn, req, p)                                                                    \
    do {                                                                                           \
        if ((p).bad) {                                                                             \
            broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", (p).remark);                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void respond_i64(conn_t *conn, const struct rcmd *req, const char *key, int64_t v)
{
    struct rcmd resp;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    rcmd_ext_add_i64(&resp, key, v);
    remoting_respond(conn, &resp);
}

/* ---- consumer offsets ----------------------------------------------------------------- */

/* Java checkInDiskByConsumeOffset(topic, qid, 0): is the entry at offset 0 farther behind the
 * end of the CommitLog than accessMessageInMemoryMaxRatio of RAM? */
static int offset0_on_disk(broker_t *b, const char *topic, int32_t qid)
{
    struct store_slice s;
    struct get_request gr = {topic, qid, 0, 1, INT64_MAX, NULL, 0};
    struct get_result res = {.msgs = &s};
    if (store_get(b->store, &gr, &res) != 0 || res.n == 0)
        return 0;
    int64_t phys = s.phys_offset;
    store_release(&s, 1);
    return store_max_phys(b->store) - phys > b->mem_budget;
}

void broker_on_query_consumer_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1], topic[TOPIC_BUF];
    int32_t qid;
    struct hdrs p;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", group, sizeof group, 1);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    bhdrs_i32(&p, "queueId", &qid, 0, 1);
    FIELD_ERR(conn, req, p);
    int64_t off = offsets_query(b, group, topic, qid);
    if (off >= 0) {
        respond_i64(conn, req, "offset", off);
        return;
    }
    if (store_min_offset(b->store, topic, qid) <= 0 && !offset0_on_disk(b, topic, qid)) {
        respond_i64(conn, req, "offset", 0);
        return;
    }
    broker_respond(conn, req, RESP_QUERY_NOT_FOUND,
                   "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first");
}

void broker_on_update_consumer_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1], topic[TOPIC_BUF];
    int32_t qid;
    int64_t off;
    struct hdrs p;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", group, sizeof group, 1);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    bhdrs_i32(&p, "queueId", &qid, 0, 1);
    bhdrs_i64(&p, "commitOffset", &off, -1, 1);
    FIELD_ERR(conn, req, p);
    offsets_commit(b, group, topic, qid, off);
    if (req->flag & RCMD_FLAG_ONEWAY)
        return; /* nothing to answer; written within flushConsumerOffsetInterval */
    offsets_answer_after(b, conn, req);
}

/* ---- queue offsets and times ---------------------------------------------------------- */

static int topic_qid(conn_t *conn, const struct rcmd *req, char *topic, int32_t *qid,
                     struct hdrs *p)
{
    bhdrs_init(p, req);
    bhdrs_str(p, "topic", topic, TOPIC_BUF, 1);
    bhdrs_i32(p, "queueId", qid, 0, 1);
    if (p->bad)
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", p->remark);
    return p->bad ? -1 : 0;
}

void broker_on_get_max_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF];
    int32_t qid;
    struct hdrs p;
    if (!broker_ready(b, conn, req) || topic_qid(conn, req, topic, &qid, &p) != 0)
        return;
    respond_i64(conn, req, "offset", store_max_offset(b->store, topic, qid));
}

void broker_on_get_min_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF];
    int32_t qid;
    struct hdrs p;
    if (!broker_ready(b, conn, req) || topic_qid(conn, req, topic, &qid, &p) != 0)
        return;
    respond_i64(conn, req, "offset", store_min_offset(b->store, topic, qid));
}

/* Java 4.9.8 ConsumeQueue.getOffsetInQueueByTime: the entry whose store time is nearest to @ts
 * (an exact match wins; all later -> the first; all earlier -> the last entry); 0 for an empty
 * queue. */
static int64_t offset_by_time(broker_t *b, const char *topic, int32_t qid, int64_t ts)
{
    int64_t min = store_min_offset(b->store, topic, qid),
            max = store_max_offset(b->store, topic, qid);
    if (max <= min)
        return 0;
    int64_t o = store_offset_by_time(b->store, topic, qid, ts);
    if (o >= max)
        return max - 1;
    if (o <= min)
        return o < min ? min : o;
    int64_t t_right = store_time_at(b->store, topic, qid, o);
    int64_t t_left = store_time_at(b->store, topic, qid, o - 1);
    if (t_right == ts || t_left < 0)
        return o;
    return llabs(ts - t_left) > llabs(ts - t_right) ? o : o - 1;
}

void broker_on_search_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF];
    int32_t qid;
    int64_t ts;
    struct hdrs p;
    if (!broker_ready(b, conn, req) || topic_qid(conn, req, topic, &qid, &p) != 0)
        return;
    bhdrs_i64(&p, "timestamp", &ts, 0, 1);
    FIELD_ERR(conn, req, p);
    respond_i64(conn, req, "offset", offset_by_time(b, topic, qid, ts));
}

void broker_on_earliest_time(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF];
    int32_t qid;
    struct hdrs p;
    if (!broker_ready(b, conn, req) || topic_qid(conn, req, topic, &qid, &p) != 0)
        return;
    int64_t min = store_min_offset(b->store, topic, qid);
    int64_t ts = store_max_offset(b->store, topic, qid) > min
                     ? store_time_at(b->store, topic, qid, min)
                     : -1;
    respond_i64(conn, req, "timestamp", ts);
}

/* ---- messages by id and by key -------------------------------------------------------- */

struct slices_body {
    int n;
    struct store_slice s[QUERY_MAX_NUM];
    struct iovec iov[QUERY_MAX_NUM];
};

static void slices_release(void *arg)
{
    struct slices_body *sb = arg;
    store_release(sb->s, sb->n);
    ferry_free(sb);
}

static void attach_slices(struct rcmd *resp, struct slices_body *sb)
{
    size_t total = 0;
    for (int i = 0; i < sb->n; i++) {
        sb->iov[i].iov_base = (void *)sb->s[i].data;
        sb->iov[i].iov_len = sb->s[i].len;
        total += sb->s[i].len;
    }
    resp->body_iov = sb->iov;
    resp->body_iovcnt = sb->n;
    resp->body_len = total;
    resp->body_release = slices_release;
    resp->body_ctx = sb;
}

void broker_on_view_message(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    int64_t off;
    struct hdrs p;
    struct rcmd resp;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_i64(&p, "offset", &off, -1, 1);
    FIELD_ERR(conn, req, p);
    struct slices_body *sb = ferry_calloc(1, sizeof *sb);
    if (off < 0 || store_read_at(b->store, off, &sb->s[0]) != 0) {
        ferry_free(sb);
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "can not find message by the offset, %" PRId64,
                       off);
        return;
    }
    sb->n = 1;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    attach_slices(&resp, sb);
    remoting_respond(conn, &resp);
}

void broker_on_query_message(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF], key[1024];
    int32_t max_num;
    int64_t begin, end;
    int unique = 0;
    struct hdrs p;
    struct rcmd resp;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    bhdrs_str(&p, "key", key, sizeof key, 1);
    bhdrs_i32(&p, "maxNum", &max_num, 32, 1);
    bhdrs_i64(&p, "beginTimestamp", &begin, 0, 1);
    bhdrs_i64(&p, "endTimestamp", &end, INT64_MAX, 1);
    bhdrs_bool(&p, "_UNIQUE_KEY_QUERY", &unique, 0);
    FIELD_ERR(conn, req, p);
    if (unique)
        max_num = b->cfg.defaultQueryMaxNum;
    if (max_num > QUERY_MAX_NUM)
        max_num = QUERY_MAX_NUM;
    struct slices_body *sb = ferry_calloc(1, sizeof *sb);
    sb->n = max_num > 0 ? store_query_by_key(b->store, topic, key, begin, end, sb->s, max_num) : 0;
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    rcmd_ext_add_i64(&resp, "indexLastUpdateTimestamp", clock_wall_ms());
    rcmd_ext_add_i64(&resp, "indexLastUpdatePhyoffset", store_dispatch_phys(b->store));
    if (sb->n <= 0) {
        ferry_free(sb);
        resp.code = RESP_QUERY_NOT_FOUND;
        static const char msg[] = "can not find message, maybe time range not correct";
        resp.remark = (struct rstr){msg, sizeof msg - 1};
        remoting_respond(conn, &resp);
        return;
    }
    attach_slices(&resp, sb);
    remoting_respond(conn, &resp);
}

/* ---- topics --------------------------------------------------------------------------- */

static int slave_refuses(broker_t *b, conn_t *conn, const struct rcmd *req)
{
    if (broker_role(b) != BROKER_SLAVE)
        return 0;
    broker_respond(conn, req, RESP_SYSTEM_ERROR,
                   "Can't modify topic or subscription group from slave broker, please execute it "
                   "from master broker.");
    return 1;
}

void broker_on_create_topic(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF], filter[32], remark[200];
    int32_t rq, wq, perm, sys_flag;
    int order;
    struct hdrs p;
    struct topic_config tc;

    if (!broker_ready(b, conn, req) || slave_refuses(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    bhdrs_i32(&p, "readQueueNums", &rq, 0, 1);
    bhdrs_i32(&p, "writeQueueNums", &wq, 0, 1);
    bhdrs_i32(&p, "perm", &perm, 6, 1);
    bhdrs_str(&p, "topicFilterType", filter, sizeof filter, 0);
    bhdrs_i32(&p, "topicSysFlag", &sys_flag, 0, 0);
    bhdrs_bool(&p, "order", &order, 0);
    FIELD_ERR(conn, req, p);
    if (topics_name_check(topic, remark, sizeof remark) != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", remark);
        return;
    }
    if (topics_is_system(b, topic)) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "The topic[%s] is conflict with system topic.",
                       topic);
        return;
    }
    if (rq < 0 || rq > 65535 || wq < 0 || wq > 65535) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "readQueueNums=%d writeQueueNums=%d: each must be in [0, 65535]", rq, wq);
        return;
    }
    if (perm < 0 || perm > 15) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "perm=%d: expected the bits 4 (read), 2 (write), 1 (inherit)", perm);
        return;
    }
    if (filter[0] && strcmp(filter, "SINGLE_TAG") != 0 && strcmp(filter, "MULTI_TAG") != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "topicFilterType=%s: expected SINGLE_TAG or MULTI_TAG", filter);
        return;
    }
    topics_config_init(&tc, topic);
    tc.read_queues = rq;
    tc.write_queues = wq;
    tc.perm = perm;
    tc.sys_flag = sys_flag;
    tc.filter_type = strcmp(filter, "MULTI_TAG") == 0 ? FILTER_MULTI_TAG : FILTER_SINGLE_TAG;
    tc.order = order;
    topics_put(b, &tc);
    log_info(LOG_BROKER, "topic %s created/updated by %s: %d/%d queues, perm %d", topic,
             remoting_conn_peer(conn), rq, wq, perm);
    broker_reg_answer_after(b, conn, req);
}

void broker_on_delete_topic(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF], remark[200];
    struct hdrs p;

    if (!broker_ready(b, conn, req) || slave_refuses(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    FIELD_ERR(conn, req, p);
    if (topics_name_check(topic, remark, sizeof remark) != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "%s", remark);
        return;
    }
    if (topics_is_system(b, topic)) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "The topic[%s] is conflict with system topic.",
                       topic);
        return;
    }
    if (topics_delete(b, topic) == 0)
        log_info(LOG_BROKER, "topic %s deleted by %s", topic, remoting_conn_peer(conn));
    broker_reg_answer_after(b, conn, req);
}

void broker_on_all_topic_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct sbuf sb;
    if (!broker_ready(b, conn, req))
        return;
    bsb_init(&sb);
    topics_encode(b, &sb, 0);
    broker_respond_sb(conn, req, &sb);
}

static void mq_key(struct sbuf *sb, broker_t *b, const char *topic, int qid)
{
    bsb_str(sb, "{\"brokerName\":");
    bsb_jstr(sb, b->cfg.brokerName);
    bsb_fmt(sb, ",\"queueId\":%d,\"topic\":", qid);
    bsb_jstr(sb, topic);
    bsb_add(sb, "}", 1);
}

void broker_on_topic_stats(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char topic[TOPIC_BUF];
    struct hdrs p;
    struct topic_config tc;
    struct sbuf sb;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    FIELD_ERR(conn, req, p);
    if (topics_get(b, topic, &tc) != 0) {
        broker_respond(conn, req, RESP_TOPIC_NOT_EXIST, "topic[%s] not exist", topic);
        return;
    }
    /* The map keys are MessageQueue objects, written as fastjson does (not standard JSON). */
    bsb_init(&sb);
    bsb_str(&sb, "{\"offsetTable\":{");
    for (int q = 0; q < tc.write_queues; q++) {
        int64_t min = store_min_offset(b->store, topic, q);
        int64_t max = store_max_offset(b->store, topic, q);
        int64_t ts = max > 0 ? store_time_at(b->store, topic, q, max - 1) : 0;
        mq_key(&sb, b, topic, q);
        bsb_fmt(&sb,
                ":{\"lastUpdateTimestamp\":%" PRId64 ",\"maxOffset\":%" PRId64
                ",\"minOffset\":%" PRId64 "},",
                ts < 0 ? 0 : ts, max < 0 ? 0 : max, min < 0 ? 0 : min);
    }
    bsb_trim_comma(&sb);
    bsb_str(&sb, "}}");
    broker_respond_sb(conn, req, &sb);
}

/* ---- broker information --------------------------------------------------------------- */

static void kv(struct sbuf *sb, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kv(struct sbuf *sb, const char *k, const char *fmt, ...)
{
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    bsb_jstr(sb, k);
    bsb_add(sb, ":", 1);
    bsb_jstr(sb, v);
    bsb_add(sb, ",", 1);
}

static void human_bytes(char *out, size_t cap, uint64_t n)
{
    const char *units = "KMGTPE";
    if (n < 1024) {
        snprintf(out, cap, "%" PRIu64 " B", n);
        return;
    }
    int e = 0;
    double v = (double)n / 1024;
    while (v >= 1024 && e < 5) {
        v /= 1024;
        e++;
    }
    snprintf(out, cap, "%.1f %ciB", v, units[e]);
}

void broker_on_runtime_info(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct stats *s = &b->stats;
    struct sbuf sb;
    char total[32], avail[32], flush[32];
    uint64_t free_b = 0, total_b = 0;

    if (!broker_ready(b, conn, req))
        return;
    fs_space(b->cfg.store.storePathRootDir, &free_b, &total_b);
    human_bytes(total, sizeof total, total_b);
    human_bytes(avail, sizeof avail, free_b);
    int64_t max_phys = store_max_phys(b->store), min_phys = store_min_phys(b->store);
    human_bytes(flush, sizeof flush, (uint64_t)(max_phys - store_confirm_phys(b->store)));
    int64_t earliest = -1;
    struct store_slice first;
    if (max_phys > min_phys && store_read_at(b->store, min_phys, &first) == 0) {
        struct msg_view v;
        if (msg_parse(first.data, first.len, &v) == 0)
            earliest = v.store_ts;
        store_release(&first, 1);
    }
    int64_t put = atomic_load(&s->put_total), get = atomic_load(&s->get_total);
    int64_t up = (clock_wall_ms() - b->start_ms) / 1000;

    bsb_init(&sb);
    bsb_str(&sb, "{\"table\":{");
    pthread_mutex_lock(&s->mu);
    kv(&sb, "brokerVersionDesc", "V4_9_8");
    kv(&sb, "brokerVersion", "%d", REMOTING_VERSION);
    kv(&sb, "msgPutTotalYesterdayMorning", "%" PRId64, s->put_yesterday_morning);
    kv(&sb, "msgPutTotalTodayMorning", "%" PRId64, s->put_today_morning);
    kv(&sb, "msgPutTotalTodayNow", "%" PRId64, put);
    kv(&sb, "msgGetTotalYesterdayMorning", "%" PRId64, s->get_yesterday_morning);
    kv(&sb, "msgGetTotalTodayMorning", "%" PRId64, s->get_today_morning);
    kv(&sb, "msgGetTotalTodayNow", "%" PRId64, get);
    kv(&sb, "putTps", "%.2f %.2f %.2f", s->put_tps[0], s->put_tps[1], s->put_tps[2]);
    kv(&sb, "getTransferedTps", "%.2f %.2f %.2f", s->get_tps[0], s->get_tps[1], s->get_tps[2]);
    pthread_mutex_unlock(&s->mu);
    kv(&sb, "sendThreadPoolQueueSize", "0");
    kv(&sb, "sendThreadPoolQueueCapacity", "10000");
    kv(&sb, "pullThreadPoolQueueSize", "0");
    kv(&sb, "pullThreadPoolQueueCapacity", "100000");
    kv(&sb, "queryThreadPoolQueueSize", "0");
    kv(&sb, "queryThreadPoolQueueCapacity", "20000");
    kv(&sb, "EndTransactionQueueSize", "0");
    kv(&sb, "EndTransactionThreadPoolQueueCapacity", "100000");
    kv(&sb, "sendThreadPoolQueueHeadWaitTimeMills", "0");
    kv(&sb, "pullThreadPoolQueueHeadWaitTimeMills", "0");
    kv(&sb, "queryThreadPoolQueueHeadWaitTimeMills", "0");
    kv(&sb, "pageCacheLockTimeMills", "0");
    kv(&sb, "dispatchBehindBytes", "%" PRId64,
       store_confirm_phys(b->store) - store_dispatch_phys(b->store));
    kv(&sb, "earliestMessageTimeStamp", "%" PRId64, earliest);
    kv(&sb, "startAcceptSendRequestTimeStamp", "0");
    kv(&sb, "remainTransientStoreBufferNumbs", "%d", 0);
    kv(&sb, "remainHowManyDataToFlush", "%s", flush);
    kv(&sb, "commitLogDirCapacity", "Total : %s, Free : %s.", total, avail);
    kv(&sb, "commitLogDiskRatio", "%f",
       total_b ? (double)(total_b - free_b) / (double)total_b : 0.0);
    kv(&sb, "commitLogMinOffset", "%" PRId64, min_phys);
    kv(&sb, "commitLogMaxOffset", "%" PRId64, max_phys);
    int64_t oldest_tx;
    int pending_tx = tx_pending(b, &oldest_tx);
    struct sbuf txs;
    bsb_init(&txs);
    tx_pending_sample(b, &txs, 32);
    kv(&sb, "transactionPendingCount", "%d", pending_tx);
    kv(&sb, "transactionOldestPendingTimeStamp", "%" PRId64, oldest_tx);
    bsb_jstr(&sb, "transactionPendingSample"); /* may be longer than kv() takes */
    bsb_add(&sb, ":", 1);
    bsb_json(&sb, txs.p ? txs.p : "", txs.len);
    bsb_add(&sb, ",", 1);
    bsb_free(&txs);
    kv(&sb, "bootTimestamp", "%" PRId64, b->start_ms);
    kv(&sb, "runtime",
       "[ %" PRId64 " days, %" PRId64 " hours, %" PRId64 " minutes, %" PRId64 " seconds ]",
       up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
    kv(&sb, "brokerRole", "%s",
       broker_role(b) == BROKER_SLAVE         ? "SLAVE"
       : broker_role(b) == BROKER_SYNC_MASTER ? "SYNC_MASTER"
                                              : "ASYNC_MASTER");
    bsb_trim_comma(&sb);
    bsb_str(&sb, "}}");
    broker_respond_sb(conn, req, &sb);
}

void broker_on_broker_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char *text = NULL, version[96];
    size_t len = 0;
    struct rcmd resp;

    if (!broker_ready(b, conn, req))
        return;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    broker_config_print(&b->cfg, f);
    fclose(f);
    snprintf(version, sizeof version, "{\"counter\":0,\"timestamp\":%" PRId64 "}", b->start_ms);
    rcmd_init_response(&resp, req, RESP_SUCCESS, NULL);
    rcmd_ext_add(&resp, "version", version);
    resp.body = (const uint8_t *)text;
    resp.body_len = len;
    remoting_respond(conn, &resp);
    free(text);
}

/* ---- subscription groups -------------------------------------------------------------- */

void broker_on_create_group(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct group_config gc;
    if (!broker_ready(b, conn, req) || slave_refuses(b, conn, req))
        return;
    if (!req->body_len || groups_config_parse((const char *)req->body, req->body_len, &gc) != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "the body must be a SubscriptionGroupConfig JSON object with a groupName");
        return;
    }
    groups_put(b, &gc);
    log_info(LOG_BROKER, "subscription group %s created/updated by %s", gc.name,
             remoting_conn_peer(conn));
    broker_reg_answer_after(b, conn, req);
}

void broker_on_all_group_config(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct sbuf sb;
    if (!broker_ready(b, conn, req))
        return;
    bsb_init(&sb);
    groups_encode(b, &sb);
    broker_respond_sb(conn, req, &sb);
}

/* ---- GET_ALL_CONSUMER_OFFSET (43), GET_ALL_DELAY_OFFSET (45): what a slave copies ------ */

/* ConsumerOffsetSerializeWrapper: {"offsetTable":{"topic@group":{"0":12,...}}}. */
void broker_on_all_consumer_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    struct sbuf sb;
    if (!broker_ready(b, conn, req))
        return;
    bsb_init(&sb);
    offsets_encode(b, &sb);
    broker_respond_sb(conn, req, &sb);
}

/* DelayOffsetSerializeWrapper as last written to config/delayOffset.json (the schedule thread
 * writes it every flushDelayOffsetInterval); Java answers SYSTEM_ERROR "No delay offset in this
 * broker" when it has none. */
void broker_on_all_delay_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char path[4200], err[300];
    cJSON *doc = NULL;
    if (!broker_ready(b, conn, req))
        return;
    snprintf(path, sizeof path, "%s/delayOffset.json", b->config_dir);
    int rc = bmeta_load_json(path, &doc, err, sizeof err);
    if (rc || !doc) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR, "No delay offset in this broker");
        cJSON_Delete(doc);
        return;
    }
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    struct sbuf sb;
    bsb_init(&sb);
    bsb_str(&sb, text);
    cJSON_free(text);
    broker_respond_sb(conn, req, &sb);
}

void broker_on_delete_group(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1];
    struct hdrs p;
    if (!broker_ready(b, conn, req) || slave_refuses(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "groupName", group, sizeof group, 1);
    FIELD_ERR(conn, req, p);
    groups_delete(b, group);
    broker_reg_answer_after(b, conn, req);
}

void broker_on_consume_stats(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1], topic[TOPIC_BUF];
    struct hdrs p;
    struct topic_config tc;
    struct sbuf sb;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "consumerGroup", group, sizeof group, 1);
    bhdrs_str(&p, "topic", topic, sizeof topic, 0);
    FIELD_ERR(conn, req, p);
    int n = 0;
    char **topics = offsets_topics_of(b, group, topic[0] ? topic : NULL, &n);
    bsb_init(&sb);
    bsb_str(&sb, "{\"consumeTps\":0.0,\"offsetTable\":{");
    for (int i = 0; i < n; i++) {
        if (topics_get(b, topics[i], &tc) != 0)
            continue;
        for (int q = 0; q < tc.write_queues; q++) {
            int64_t max = store_max_offset(b->store, topics[i], q);
            int64_t off = offsets_query(b, group, topics[i], q);
            if (off < 0)
                off = 0;
            int64_t ts = off > 0 ? store_time_at(b->store, topics[i], q, off - 1) : 0;
            mq_key(&sb, b, topics[i], q);
            bsb_fmt(&sb,
                    ":{\"brokerOffset\":%" PRId64 ",\"consumerOffset\":%" PRId64
                    ",\"lastTimestamp\":%" PRId64 "},",
                    max, off, ts < 0 ? 0 : ts);
        }
    }
    for (int i = 0; i < n; i++)
        ferry_free(topics[i]);
    ferry_free(topics);
    bsb_trim_comma(&sb);
    bsb_str(&sb, "}}");
    broker_respond_sb(conn, req, &sb);
}

/* ---- INVOKE_BROKER_TO_RESET_OFFSET ---------------------------------------------------- */

/* The connections of @group's online consumers, referenced (unref each, free the array). */
static conn_t **group_conns(broker_t *b, const char *group, int *n, int32_t *min_version)
{
    conn_t **out = NULL;
    *n = 0;
    *min_version = INT32_MAX;
    pthread_mutex_lock(&b->clients.mu);
    const struct cgroup *g = bmap_get(&b->clients.consumers, group);
    if (g && g->n_chans > 0) {
        out = ferry_malloc((size_t)g->n_chans * sizeof *out);
        for (int i = 0; i < g->n_chans; i++) {
            remoting_conn_ref(g->chans[i].conn);
            out[(*n)++] = g->chans[i].conn;
            if (g->chans[i].version < *min_version)
                *min_version = g->chans[i].version;
        }
    }
    pthread_mutex_unlock(&b->clients.mu);
    return out;
}

static void conns_drop(conn_t **conns, int n)
{
    for (int i = 0; i < n; i++)
        remoting_conn_unref(conns[i]);
    ferry_free(conns);
}

/* ResetOffsetBody {"offsetTable":{<MessageQueue>:offset}} (fastjson's object keys), or for a
 * C++ admin request ResetOffsetBodyForC {"offsetTable":[{"brokerName",...,"offset"}]}. */
static void reset_body(struct sbuf *sb, broker_t *b, const char *topic, const int64_t *offs, int n,
                       int for_c)
{
    bsb_init(sb);
    bsb_str(sb, for_c ? "{\"offsetTable\":[" : "{\"offsetTable\":{");
    for (int q = 0; q < n; q++) {
        if (for_c) {
            bsb_str(sb, "{\"brokerName\":");
            bsb_jstr(sb, b->cfg.brokerName);
            bsb_fmt(sb, ",\"offset\":%" PRId64 ",\"queueId\":%d,\"topic\":", offs[q], q);
            bsb_jstr(sb, topic);
            bsb_str(sb, "},");
        } else {
            mq_key(sb, b, topic, q);
            bsb_fmt(sb, ":%" PRId64 ",", offs[q]);
        }
    }
    bsb_trim_comma(sb);
    bsb_str(sb, for_c ? "]}" : "}}");
}

/* Java 4.9.8 Broker2Client.resetOffset: per write queue of @topic the offset of @timestamp's
 * message (-1: the max offset; isForce=false only ever moves an offset back), sent as
 * RESET_CONSUMER_CLIENT_OFFSET (oneway) to every online consumer of the group; the answer's
 * body is the same ResetOffsetBody. Unlike Java, the broker also commits the new offsets in its
 * own table (answered once consumerOffset.json is written), so a group whose consumers are all
 * offline is reset too and gets SUCCESS instead of CONSUMER_NOT_ONLINE. */
void broker_on_reset_offset(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    char group[NAME_MAX_LEN + 1], topic[TOPIC_BUF];
    int64_t ts;
    int force;
    struct hdrs p;
    struct topic_config tc;

    if (!broker_ready(b, conn, req))
        return;
    bhdrs_init(&p, req);
    bhdrs_str(&p, "topic", topic, sizeof topic, 1);
    bhdrs_str(&p, "group", group, sizeof group, 1);
    bhdrs_i64(&p, "timestamp", &ts, 0, 1);
    bhdrs_bool(&p, "isForce", &force, 0);
    FIELD_ERR(conn, req, p);
    if (topics_get(b, topic, &tc) != 0) {
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "[reset-offset] reset offset failed, no topic in this broker. topic=%s",
                       topic);
        return;
    }
    int n = tc.write_queues;
    int64_t *offs = ferry_malloc((size_t)(n > 0 ? n : 1) * sizeof *offs);
    for (int q = 0; q < n; q++) {
        int64_t cur = offsets_query(b, group, topic, q);
        if (cur == -1) {
            ferry_free(offs);
            broker_respond(conn, req, RESP_SYSTEM_ERROR, "THe consumer group <%s> not exist",
                           group);
            return;
        }
        /* the first message stored at or after @ts (the queue's end when none): a reset
         * replays exactly from that time (Java 4.9.8 takes the nearest store time here, which
         * can replay one message from before it) */
        int64_t to = ts == -1 ? store_max_offset(b->store, topic, q)
                              : store_offset_by_time(b->store, topic, q, ts);
        if (to < 0)
            to = 0;
        offs[q] = force || to < cur ? to : cur;
    }
    int nconns = 0;
    int32_t min_version;
    conn_t **conns = group_conns(b, group, &nconns, &min_version);
    if (nconns > 0 && min_version < NOTIFY_VERSION) {
        conns_drop(conns, nconns);
        ferry_free(offs);
        broker_respond(conn, req, RESP_SYSTEM_ERROR,
                       "the client does not support this feature. version=%d (older than "
                       "V3_0_7_SNAPSHOT)",
                       (int)min_version);
        return;
    }
    for (int q = 0; q < n; q++)
        offsets_commit(b, group, topic, q, offs[q]);
    log_info(LOG_BROKER,
             "[reset-offset] topic %s group %s timestamp %" PRId64 " force %d: %d queues, %d "
             "online consumers, by %s",
             topic, group, ts, force, n, nconns, remoting_conn_peer(conn));

    struct sbuf body, cbody;
    reset_body(&body, b, topic, offs, n, 0);
    int for_c = req->language == RCMD_LANG_CPP;
    if (for_c)
        reset_body(&cbody, b, topic, offs, n, 1);
    for (int i = 0; i < nconns; i++) {
        struct rcmd r;
        rcmd_init_request(&r, REQ_RESET_CONSUMER_CLIENT_OFFSET);
        rcmd_ext_add(&r, "topic", topic);
        rcmd_ext_add(&r, "group", group);
        rcmd_ext_add_i64(&r, "timestamp", ts);
        rcmd_ext_add(&r, "isForce", force ? "true" : "false");
        r.body = (const uint8_t *)(for_c ? cbody.p : body.p);
        r.body_len = for_c ? cbody.len : body.len;
        int rc = remoting_conn_oneway(conns[i], &r);
        log_debug(LOG_BROKER, "reset offset of %s sent to %s: %s", group,
                  remoting_conn_peer(conns[i]), ferry_strerror(rc));
    }
    conns_drop(conns, nconns);
    if (for_c)
        bsb_free(&cbody);
    ferry_free(offs);
    if (req->flag & RCMD_FLAG_ONEWAY) {
        bsb_free(&body);
        return;
    }
    offsets_answer_after_body(b, conn, req, &body);
}
