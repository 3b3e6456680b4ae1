/* Shared helpers of the broker tests: a broker (and optionally a name server) started
 * in-process on free loopback ports in a private temp dir, remoting clients, requests built as
 * the Java client sends them, and record parsing. Every wait is on a condition with a deadline. */
#ifndef FERRY_TEST_BROKER_HARNESS_H
#define FERRY_TEST_BROKER_HARNESS_H

#include "broker/broker.h"
#include "remoting/client.h"
#include "remoting/codes.h"
#include "remoting/frame.h"
#include "store/msg.h"

#include <stddef.h>
#include <stdint.h>

struct tb {
    char dir[512];
    struct broker_config cfg;
    broker_t *b;
    int port;
};

/* Test defaults: 127.0.0.1, port 0, small files, store in @dir/store. */
void tb_config(struct broker_config *cfg, const char *dir);
/* Start (asserting success). */
void tb_start(struct tb *t);
void tb_stop(struct tb *t);
/* A new temp dir + default config. */
void tb_init(struct tb *t, const char *tag);
/* tb_stop + remove the dir. */
void tb_cleanup(struct tb *t);
/* Wait until the store has dispatched everything stored (queue entries readable). */
void tb_wait_dispatched(struct tb *t);

/* A connected client (handlers for server requests may be given: code/fn pairs, 0-ended). */
remoting_client_t *tb_client(int port);
remoting_client_t *tb_client_h(int port, int32_t code, remoting_handler_fn fn, void *arg);
/* invoke_sync, asserting the transport worked; the caller frees the response. */
struct rcmd *tb_call(remoting_client_t *cli, const struct rcmd *req);
int32_t tb_call_code(remoting_client_t *cli, const struct rcmd *req);

/* The value of a response field as a NUL-terminated string (static buffer per call slot). */
const char *tb_ext(const struct rcmd *resp, const char *key);
int64_t tb_ext_i64(const struct rcmd *resp, const char *key);
/* The remark (or ""), in a static buffer. */
const char *tb_remark(const struct rcmd *resp);
/* The body as a NUL-terminated string (static buffer, truncated at 64 KiB). */
const char *tb_body(const struct rcmd *resp);

/* SEND_MESSAGE_V2 as a 4.9.8 Java producer builds it. @props may be NULL. */
void tb_send_req(struct rcmd *req, const char *topic, int qid, const char *props, const void *body,
                 size_t len);
/* A properties string "TAGS\1tag\2KEYS\1keys\2WAIT\1true" in @buf. */
const char *tb_props(char *buf, size_t cap, const char *tags, const char *keys);
/* Send and assert SUCCESS; returns the response (caller frees). */
struct rcmd *tb_send(remoting_client_t *cli, const char *topic, int qid, const char *tags,
                     const char *keys, const char *body);

/* PULL_MESSAGE as ali-ons sends it (with the subscription when @sub is not NULL). */
void tb_pull_req(struct rcmd *req, const char *group, const char *topic, int qid, int64_t offset,
                 int max, const char *sub, int suspend, int64_t suspend_ms);

/* UPDATE_AND_CREATE_TOPIC; returns the response code. */
int32_t tb_create_topic(remoting_client_t *cli, const char *topic, int queues);

/* Records of a pull/query/view body. */
struct tb_rec {
    struct msg_view v;
    char topic[128];
    char tags[64];
    char body[256];
};
/* Parse up to @cap records; returns the count, or -1 when the body is not a clean sequence. */
int tb_records(const struct rcmd *resp, struct tb_rec *out, int cap);
/* A property of a record as a string ("" when absent), static buffer. */
const char *tb_prop(const struct tb_rec *r, const char *name);

/* Decode an offset msgId: 0 or -1. */
int tb_msgid_decode(const char *id, char *ip, size_t cap, int *port, int64_t *phys);

/* A free TCP port on 127.0.0.1 (bound and released). */
int tb_free_port(void);

#endif
