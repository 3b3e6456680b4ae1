/* Helpers shared by the broker tests (see test_broker_harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/bytes.h"
#include "common/err.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 10000

void tb_config(struct broker_config *cfg, const char *dir)
{
    broker_config_defaults(cfg);
    snprintf(cfg->brokerName, sizeof cfg->brokerName, "broker-t");
    snprintf(cfg->bindAddress, sizeof cfg->bindAddress, "127.0.0.1");
    snprintf(cfg->brokerIP1, sizeof cfg->brokerIP1, "127.0.0.1");
    cfg->listenPort = 0;
    cfg->serverSelectorThreads = 2;
    snprintf(cfg->store.storePathRootDir, sizeof cfg->store.storePathRootDir, "%s/store", dir);
    cfg->store.mappedFileSizeCommitLog = 8 * 1024 * 1024;
    cfg->store.mappedFileSizeConsumeQueue = 20 * 10000;
    cfg->store.maxMessageSize = 1024 * 1024;
    cfg->store.maxHashSlotNum = 5000;
    cfg->store.maxIndexNum = 20000;
}

void tb_init(struct tb *t, const char *tag)
{
    memset(t, 0, sizeof *t);
    test_tmpdir(t->dir, sizeof t->dir, tag);
    tb_config(&t->cfg, t->dir);
}

void tb_start(struct tb *t)
{
    char err[1024] = "";
    int rc = broker_new(&t->cfg, &t->b, err, sizeof err);
    if (rc)
        fail_msg("broker_new: %s", err);
    rc = broker_start(t->b, err, sizeof err);
    if (rc) {
        broker_free(t->b);
        t->b = NULL;
        fail_msg("broker_start: %s", err);
    }
    t->port = broker_port(t->b);
    assert_true(t->port > 0);
}

void tb_stop(struct tb *t)
{
    broker_free(t->b);
    t->b = NULL;
}

void tb_cleanup(struct tb *t)
{
    tb_stop(t);
    if (t->dir[0])
        test_rmdir(t->dir);
    t->dir[0] = 0;
}

void tb_wait_dispatched(struct tb *t)
{
    assert_int_equal(store_wait_dispatched(broker_store(t->b), 10000 * test_time_mult()), 0);
}

remoting_client_t *tb_client_h(int port, int32_t code, remoting_handler_fn fn, void *arg)
{
    struct remoting_client_config cc;
    remoting_client_t *cli;
    char addr[64], err[256];
    remoting_client_config_init(&cc);
    assert_int_equal(remoting_client_new(&cc, &cli), 0);
    if (fn)
        assert_int_equal(remoting_client_register(cli, code, fn, arg), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int rc = remoting_client_connect(cli, addr, 5000 * test_time_mult(), err, sizeof err);
    if (rc)
        fail_msg("connect %s: %s", addr, err);
    return cli;
}

remoting_client_t *tb_client(int port)
{
    return tb_client_h(port, 0, NULL, NULL);
}

struct rcmd *tb_call(remoting_client_t *cli, const struct rcmd *req)
{
    struct rcmd *resp = NULL;
    int rc = remoting_client_invoke_sync(cli, req, CALL_TIMEOUT_MS * test_time_mult(), &resp);
    if (rc)
        fail_msg("request code %d: %s", req->code, ferry_strerror(rc));
    return resp;
}

int32_t tb_call_code(remoting_client_t *cli, const struct rcmd *req)
{
    struct rcmd *resp = tb_call(cli, req);
    int32_t code = resp->code;
    rcmd_free(resp);
    return code;
}

static char *slot(void)
{
    static char bufs[8][1024];
    static int next;
    return bufs[next++ % 8];
}

const char *tb_ext(const struct rcmd *resp, const char *key)
{
    const struct rstr *v = rcmd_ext_get(resp, key);
    char *s = slot();
    if (!v || !v->p)
        return NULL;
    snprintf(s, 1024, "%.*s", (int)v->len, v->p);
    return s;
}

int64_t tb_ext_i64(const struct rcmd *resp, const char *key)
{
    int64_t v = 0;
    if (rcmd_ext_get_i64(resp, key, &v) != 0)
        fail_msg("response field %s missing or not a number", key);
    return v;
}

const char *tb_remark(const struct rcmd *resp)
{
    char *s = slot();
    snprintf(s, 1024, "%.*s", (int)resp->remark.len, resp->remark.p ? resp->remark.p : "");
    return s;
}

const char *tb_body(const struct rcmd *resp)
{
    static char buf[65536];
    size_t n = resp->body_len < sizeof buf - 1 ? resp->body_len : sizeof buf - 1;
    if (n)
        memcpy(buf, resp->body, n);
    buf[n] = 0;
    return buf;
}

const char *tb_props(char *buf, size_t cap, const char *tags, const char *keys)
{
    size_t n = 0;
    buf[0] = 0;
    if (tags)
        n += (size_t)snprintf(buf + n, cap - n, "TAGS\001%s\002", tags);
    if (keys)
        n += (size_t)snprintf(buf + n, cap - n, "KEYS\001%s\002", keys);
    snprintf(buf + n, cap - n, "WAIT\001true");
    return buf;
}

void tb_send_req(struct rcmd *req, const char *topic, int qid, const char *props, const void *body,
                 size_t len)
{
    static char tsbuf[32];
    rcmd_init_request(req, REQ_SEND_MESSAGE_V2);
    rcmd_ext_add(req, "a", "PID_test");
    rcmd_ext_add(req, "b", topic);
    rcmd_ext_add(req, "c", "TBW102");
    rcmd_ext_add(req, "d", "4");
    rcmd_ext_add_i64(req, "e", qid);
    rcmd_ext_add(req, "f", "0");
    snprintf(tsbuf, sizeof tsbuf, "%lld", 1700000000123LL);
    rcmd_ext_add(req, "g", tsbuf);
    rcmd_ext_add(req, "h", "0");
    if (props)
        rcmd_ext_add(req, "i", props);
    rcmd_ext_add(req, "j", "0");
    rcmd_ext_add(req, "k", "false");
    rcmd_ext_add(req, "m", "false");
    req->body = body;
    req->body_len = len;
}

struct rcmd *tb_send(remoting_client_t *cli, const char *topic, int qid, const char *tags,
                     const char *keys, const char *body)
{
    char props[512];
    struct rcmd req;
    tb_props(props, sizeof props, tags, keys);
    tb_send_req(&req, topic, qid, props, body, strlen(body));
    struct rcmd *resp = tb_call(cli, &req);
    if (resp->code != RESP_SUCCESS)
        fail_msg("send to %s/%d: code %d %s", topic, qid, resp->code, tb_remark(resp));
    return resp;
}

void tb_pull_req(struct rcmd *req, const char *group, const char *topic, int qid, int64_t offset,
                 int max, const char *sub, int suspend, int64_t suspend_ms)
{
    int flag = (suspend ? 2 : 0) | (sub ? 4 : 0);
    rcmd_init_request(req, REQ_PULL_MESSAGE);
    rcmd_ext_add(req, "consumerGroup", group);
    rcmd_ext_add(req, "topic", topic);
    rcmd_ext_add_i64(req, "queueId", qid);
    rcmd_ext_add_i64(req, "queueOffset", offset);
    rcmd_ext_add_i64(req, "maxMsgNums", max);
    rcmd_ext_add_i64(req, "sysFlag", flag);
    rcmd_ext_add_i64(req, "commitOffset", 0);
    rcmd_ext_add_i64(req, "suspendTimeoutMillis", suspend_ms);
    if (sub)
        rcmd_ext_add(req, "subscription", sub);
    rcmd_ext_add_i64(req, "subVersion", 1);
}

int32_t tb_create_topic(remoting_client_t *cli, const char *topic, int queues)
{
    struct rcmd req;
    rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_TOPIC);
    rcmd_ext_add(&req, "topic", topic);
    rcmd_ext_add(&req, "defaultTopic", "TBW102");
    rcmd_ext_add_i64(&req, "readQueueNums", queues);
    rcmd_ext_add_i64(&req, "writeQueueNums", queues);
    rcmd_ext_add(&req, "perm", "6");
    rcmd_ext_add(&req, "topicFilterType", "SINGLE_TAG");
    rcmd_ext_add(&req, "topicSysFlag", "0");
    rcmd_ext_add(&req, "order", "false");
    return tb_call_code(cli, &req);
}

int tb_records(const struct rcmd *resp, struct tb_rec *out, int cap)
{
    const uint8_t *p = resp->body;
    size_t left = resp->body_len;
    int n = 0;
    while (left > 0 && n < cap) {
        struct tb_rec *r = &out[n];
        if (msg_parse(p, left, &r->v) != 0 || msg_verify(&r->v, 0) != 0)
            return -1;
        snprintf(r->topic, sizeof r->topic, "%.*s", (int)r->v.topic_len, r->v.topic);
        snprintf(r->body, sizeof r->body, "%.*s", (int)r->v.body_len, (const char *)r->v.body);
        size_t tl;
        const char *tags = msg_prop_get(r->v.props, r->v.props_len, "TAGS", &tl);
        snprintf(r->tags, sizeof r->tags, "%.*s", tags ? (int)tl : 0, tags ? tags : "");
        p += r->v.total_size;
        left -= r->v.total_size;
        n++;
    }
    return left == 0 ? n : -1;
}

const char *tb_prop(const struct tb_rec *r, const char *name)
{
    size_t len;
    const char *v = msg_prop_get(r->v.props, r->v.props_len, name, &len);
    char *s = slot();
    snprintf(s, 1024, "%.*s", v ? (int)len : 0, v ? v : "");
    return s;
}

int tb_msgid_decode(const char *id, char *ip, size_t cap, int *port, int64_t *phys)
{
    uint8_t raw[16];
    if (strlen(id) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(id + 2 * i, "%2X", &v) != 1)
            return -1;
        raw[i] = (uint8_t)v;
    }
    inet_ntop(AF_INET, raw, ip, (socklen_t)cap);
    *port = (int)be32_get(raw + 4);
    *phys = (int64_t)be64_get(raw + 8);
    return 0;
}

int tb_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
