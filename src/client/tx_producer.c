/* The transaction producer (Java 4.9.8 TransactionMQProducer): a half message (TRAN_MSG=true,
 * PGROUP) sent with the producer's retries, the local transaction, then END_TRANSACTION to the
 * broker that stored the half; and the answer to the broker's CHECK_TRANSACTION_STATE, given by
 * the application's check callback on the connection's I/O thread. */
#include "client/consumer_int.h"

#include "common/alloc.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TX_RPC_MS 3000

static const int32_t tx_codes[] = {8 /* COMMIT */, 12 /* ROLLBACK */, 0 /* UNKNOWN */};

/* The CommitLog offset in an offset msgId (its last 16 hex digits). */
static int64_t offset_of(const char *offset_msg_id)
{
    size_t n = strlen(offset_msg_id);
    if (n < 16)
        return -1;
    return (int64_t)strtoull(offset_msg_id + n - 16, NULL, 16);
}

static void end_req(struct rcmd *req, const char *group, int64_t table_off, int64_t phys,
                    enum ferry_tx_state st, int from_check, const char *msg_id, const char *tx_id)
{
    rcmd_init_request(req, REQ_END_TRANSACTION);
    rcmd_ext_add(req, "producerGroup", group);
    rcmd_ext_add_i64(req, "tranStateTableOffset", table_off);
    rcmd_ext_add_i64(req, "commitLogOffset", phys);
    rcmd_ext_add_i64(req, "commitOrRollback", tx_codes[st]);
    rcmd_ext_add(req, "fromTransactionCheck", from_check ? "true" : "false");
    rcmd_ext_add(req, "msgId", msg_id);
    rcmd_ext_add(req, "transactionId", tx_id);
}

static void on_check(conn_t *conn, const struct rcmd *req, void *arg);

int ferry_producer_set_tx_check(ferry_producer_t *p, ferry_tx_check fn, void *arg)
{
    if (!p || !fn)
        return FERRY_EINVAL;
    int rc = producer_set_tx_check(p, fn, arg);
    if (rc == 0) /* on every connection (none is open before start) */
        route_cache_on(producer_route_cache(p), REQ_CHECK_TRANSACTION_STATE, on_check, p);
    return rc;
}

/* CHECK_TRANSACTION_STATE from a broker: ask the application, answer with END_TRANSACTION
 * (oneway, fromTransactionCheck) on the same connection. @thread the connection's */
static void on_check(conn_t *conn, const struct rcmd *req, void *arg)
{
    ferry_producer_t *p = arg;
    ferry_tx_check fn;
    void *fn_arg;
    int64_t table_off, phys;
    struct msg_batch *b = NULL;
    producer_tx_check(p, &fn, &fn_arg);
    if (!fn || rcmd_ext_get_i64(req, "tranStateTableOffset", &table_off) != 0 ||
        rcmd_ext_get_i64(req, "commitLogOffset", &phys) != 0 ||
        msgdec_batch(req->body, req->body_len, "", &b) != 0 || b->n != 1) {
        log_warn(LOG_CLIENT, "CHECK_TRANSACTION_STATE from %s: %s", remoting_conn_peer(conn),
                 fn ? "malformed request" : "no check callback registered");
        msgdec_unref(b, 1);
        return;
    }
    const struct rstr *t = rcmd_ext_get(req, "transactionId");
    char tx_id[128];
    snprintf(tx_id, sizeof tx_id, "%.*s", t ? (int)t->len : 0, t ? t->p : "");
    if (!tx_id[0])
        snprintf(tx_id, sizeof tx_id, "%s", b->msgs[0].msg_id);
    enum ferry_tx_state st = fn(&b->msgs[0], tx_id, fn_arg);
    if (st < FERRY_TX_COMMIT || st > FERRY_TX_UNKNOWN)
        st = FERRY_TX_UNKNOWN;
    struct rcmd end;
    end_req(&end, producer_group(p), table_off, phys, st, 1, b->msgs[0].msg_id, tx_id);
    if (remoting_conn_oneway(conn, &end) != 0)
        log_warn(LOG_CLIENT, "END_TRANSACTION for %s: the connection is gone", tx_id);
    msgdec_unref(b, 1);
}

int ferry_send_in_transaction(ferry_producer_t *p, const struct ferry_message *msg,
                              ferry_tx_execute exec, void *arg, struct ferry_send_result *res,
                              enum ferry_tx_state *state)
{
    struct ferry_send_result local;
    if (!p || !msg || !exec || msg->delay_level)
        return FERRY_EINVAL;
    if (!res)
        res = &local;
    if (state)
        *state = FERRY_TX_UNKNOWN;
    struct route_cache *rc = producer_route_cache(p);

    size_t n = msg->nprops;
    struct ferry_property *props = ferry_calloc(n + 2, sizeof *props);
    if (n)
        memcpy(props, msg->props, n * sizeof *props);
    props[n++] = (struct ferry_property){"TRAN_MSG", "true"};
    props[n++] = (struct ferry_property){"PGROUP", producer_group(p)};
    struct ferry_message half = *msg;
    half.props = props;
    half.nprops = n;
    int rc_send = ferry_send_sync(p, &half, res);
    ferry_free(props);
    if (rc_send)
        return rc_send;
    enum ferry_tx_state st =
        res->status == FERRY_SEND_OK ? exec(msg, res->msg_id, arg) : FERRY_TX_ROLLBACK;
    if (st < FERRY_TX_COMMIT || st > FERRY_TX_UNKNOWN)
        st = FERRY_TX_UNKNOWN;
    if (state)
        *state = st;

    /* END_TRANSACTION to the master that stored the half */
    struct route r;
    remoting_client_t *cli;
    const char *addr = NULL;
    char addr_buf[CLIENT_ADDR_MAX] = "";
    if (route_cache_get(rc, msg->topic, TX_RPC_MS, &r) == 0) {
        addr = route_addr(&r, res->broker_name);
        if (addr)
            snprintf(addr_buf, sizeof addr_buf, "%s", addr);
        route_clear(&r);
    }
    if (!addr_buf[0] || route_cache_conn(rc, addr_buf, TX_RPC_MS, &cli) != 0) {
        log_warn(LOG_CLIENT, "END_TRANSACTION for %s: broker %s unreachable; it will check back",
                 res->msg_id, res->broker_name);
        return 0;
    }
    struct rcmd end, *resp = NULL;
    end_req(&end, producer_group(p), res->queue_offset, offset_of(res->offset_msg_id), st, 0,
            res->msg_id, res->msg_id);
    int erc = remoting_client_invoke_sync(cli, &end, TX_RPC_MS, &resp);
    if (erc || resp->code != RESP_SUCCESS)
        log_warn(LOG_CLIENT, "END_TRANSACTION for %s: %s; the broker will check back", res->msg_id,
                 erc ? ferry_strerror(erc) : "refused");
    rcmd_free(resp);
    return 0;
}
