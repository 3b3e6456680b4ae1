/* A slave's copy of its master's metadata (Java SlaveSynchronize): on a SLAVE, as soon as the
 * name server has named the master (broker_master_addrs) and then every SYNC_INTERVAL_MS, fetch
 * from the master
 *   GET_ALL_TOPIC_CONFIG (21)              -> replaces topics.json when its dataVersion differs
 *   GET_ALL_CONSUMER_OFFSET (43)           -> merged over the offsets (Java putAll)
 *   GET_ALL_DELAY_OFFSET (45)              -> written as config/delayOffset.json
 *   GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) -> replaces subscriptionGroup.json (dataVersion)
 * and write what changed. Offsets that consumers commit to the slave stay in memory (and on
 * disk) until the master's replace them at the next round.
 *
 * Failure modes: a master that is down or refuses is retried at the next round, logged once
 * per change; the tables keep what the last good round copied. A body that does not parse
 * leaves its table alone. While the master is unknown or unreachable, each retry also asks for
 * a registration round, so that the name server's answer (masterAddr) is fresh.
 * slave_sync_master_ok() says whether the last round reached the master (the pull answer's
 * suggestWhichBrokerId on a slave). */
#include "broker/broker_int.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SYNC_INTERVAL_MS   10000
#define WAIT_MASTER_MS     1000 /* no master known yet: look again after */
#define CONNECT_TIMEOUT_MS 3000
#define CALL_TIMEOUT_MS    5000

/* Defined in topic.c, group.c, offset.c (not in broker_int.h, which is not this module's). */

struct slave_sync {
    broker_t *b;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop; /* @locks mu */
    remoting_client_t *cli;
    char cli_addr[128];
    atomic_int master_ok;
    int state;            /* last logged: -1 none, 0 failing, 1 syncing */
    int unsupported_mask; /* codes the master refused as unsupported (logged once) */
};

static int call(struct slave_sync *s, int32_t code, struct rcmd **resp, char *why, size_t cap)
{
    struct rcmd req;
    rcmd_init_request(&req, code);
    int rc = remoting_client_invoke_sync(s->cli, &req, CALL_TIMEOUT_MS, resp);
    if (rc) {
        snprintf(why, cap, "request %d: %s", code, ferry_strerror(rc));
        return rc;
    }
    if ((*resp)->code != RESP_SUCCESS) {
        snprintf(why, cap, "request %d answered %d: %.*s", code, (*resp)->code,
                 (int)(*resp)->remark.len, (*resp)->remark.p ? (*resp)->remark.p : "");
        return FERRY_EPROTO;
    }
    return 0;
}

static int connect_master(struct slave_sync *s, const char *addr, char *why, size_t cap)
{
    if (s->cli && strcmp(s->cli_addr, addr) != 0) {
        remoting_client_free(s->cli);
        s->cli = NULL;
    }
    if (!s->cli) {
        struct remoting_client_config cc;
        remoting_client_config_init(&cc);
        cc.tls = s->b->tls_client; /* tlsEnable (docs/TLS.md), else plain */
        cc.tls_no_default = 1;
        int rc = remoting_client_new(&cc, &s->cli);
        if (rc) {
            snprintf(why, cap, "client: %s", ferry_strerror(rc));
            return rc;
        }
        snprintf(s->cli_addr, sizeof s->cli_addr, "%s", addr);
        /* A master with aclEnable checks these requests too (docs/ACL.md). */
        remoting_client_set_signer(s->cli, s->b->cfg.aclAccessKey, s->b->cfg.aclSecretKey);
    }
    if (remoting_client_is_connected(s->cli))
        return 0;
    char msg[256] = "";
    int rc = remoting_client_connect(s->cli, addr, CONNECT_TIMEOUT_MS, msg, sizeof msg);
    if (rc == -EISCONN)
        rc = 0;
    if (rc)
        snprintf(why, cap, "connect to %s: %s", addr, msg[0] ? msg : ferry_strerror(rc));
    return rc;
}

/* Replace config/delayOffset.json by @body when it differs (and parses). */
static void write_delay_offsets(broker_t *b, const struct rcmd *resp)
{
    char path[4200], err[300];
    cJSON *cur = NULL, *got = NULL;
    char *fixed = bjson_quote_int_keys((const char *)resp->body, resp->body_len);
    got = cJSON_Parse(fixed);
    ferry_free(fixed);
    if (!cJSON_IsObject(got)) {
        log_warn(LOG_BROKER, "slave sync: the master's delay offsets are not JSON; kept ours");
        cJSON_Delete(got);
        return;
    }
    snprintf(path, sizeof path, "%s/delayOffset.json", b->config_dir);
    if (bmeta_load_json(path, &cur, err, sizeof err) == 0 && cur && cJSON_Compare(cur, got, 1)) {
        cJSON_Delete(cur);
        cJSON_Delete(got);
        return;
    }
    cJSON_Delete(cur);
    char *text = cJSON_PrintUnformatted(got);
    cJSON_Delete(got);
    struct sbuf sb;
    bsb_init(&sb);
    bsb_str(&sb, text);
    cJSON_free(text);
    pthread_mutex_lock(&b->persist_mu);
    bmeta_write(b, path, &sb);
    pthread_mutex_unlock(&b->persist_mu);
    bsb_free(&sb);
}

/* One round; 0 when every table was fetched, else the first failure in @why. */
static int sync_round(struct slave_sync *s, const char *master, char *why, size_t cap)
{
    broker_t *b = s->b;
    static const int32_t codes[] = {REQ_GET_ALL_TOPIC_CONFIG, REQ_GET_ALL_CONSUMER_OFFSET,
                                    REQ_GET_ALL_DELAY_OFFSET, REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG};
    int rc = connect_master(s, master, why, cap), failed = 0;
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        struct rcmd *resp = NULL;
        char w[400];
        rc = call(s, codes[i], &resp, w, sizeof w);
        if (rc == 0 && resp->body_len == 0 && codes[i] != REQ_GET_ALL_DELAY_OFFSET) {
            snprintf(w, sizeof w, "request %d: empty answer", codes[i]);
            rc = FERRY_EPROTO;
        }
        if (rc == 0) {
            const char *body = (const char *)resp->body;
            int r = 0;
            switch (codes[i]) {
            case REQ_GET_ALL_TOPIC_CONFIG:
                r = topics_replace_json(b, body, resp->body_len);
                break;
            case REQ_GET_ALL_CONSUMER_OFFSET:
                r = offsets_merge_json(b, body, resp->body_len);
                break;
            case REQ_GET_ALL_DELAY_OFFSET:
                write_delay_offsets(b, resp);
                break;
            default:
                r = groups_replace_json(b, body, resp->body_len);
                break;
            }
            if (r < 0) {
                snprintf(w, sizeof w, "request %d: the answer does not parse", codes[i]);
                rc = FERRY_EPROTO;
            }
        } else if (resp && resp->code == RESP_REQUEST_CODE_NOT_SUPPORTED) {
            /* An older master: copy the rest, say so once. */
            if (!(s->unsupported_mask & (1 << i)))
                log_warn(LOG_BROKER, "slave sync: the master %s does not support request %d",
                         master, codes[i]);
            s->unsupported_mask |= 1 << i;
            rc = 0;
        } else if (resp && codes[i] == REQ_GET_ALL_DELAY_OFFSET) {
            rc = 0; /* "No delay offset in this broker" */
        }
        rcmd_free(resp);
        if (rc && !failed) {
            failed = rc;
            snprintf(why, cap, "%s", w);
        }
        if (rc && !remoting_client_is_connected(s->cli))
            break;
    }
    topics_persist(b);
    groups_persist(b);
    offsets_persist(b);
    return failed;
}

static void *sync_main(void *arg)
{
    struct slave_sync *s = arg;
    broker_t *b = s->b;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        char master[128], ha[128], why[512] = "";
        int64_t wait = SYNC_INTERVAL_MS;
        broker_master_addrs(b, master, sizeof master, ha, sizeof ha);
        if (broker_role(b) != BROKER_SLAVE) {
            /* Controller mode: this broker is the master now; it copies from nobody. */
            s->state = -1;
            wait = WAIT_MASTER_MS;
        } else if (!master[0]) {
            /* Ask the name server again now rather than at the next registration round
             * (registerNameServerPeriod): the master may have come back. */
            broker_reg_trigger(b);
            atomic_store(&s->master_ok, 0);
            if (s->state != 0)
                log_warn(LOG_BROKER, "slave sync: no master known yet (the name server names "
                                     "it once it is registered); looking again every second");
            s->state = 0;
            wait = WAIT_MASTER_MS;
        } else if (sync_round(s, master, why, sizeof why) != 0) {
            atomic_store(&s->master_ok, remoting_client_is_connected(s->cli));
            if (s->state != 0)
                log_warn(LOG_BROKER, "slave sync from %s: %s (retrying; logged once)", master, why);
            s->state = 0;
            wait = WAIT_MASTER_MS * 3;
            if (!remoting_client_is_connected(s->cli))
                broker_reg_trigger(b); /* the master may have moved: ask the name server */
        } else {
            atomic_store(&s->master_ok, 1);
            if (s->state != 1)
                log_info(LOG_BROKER, "slave sync: copying metadata from master %s every %d s",
                         master, SYNC_INTERVAL_MS / 1000);
            s->state = 1;
        }
        pthread_mutex_lock(&s->mu);
        if (!s->stop) {
            struct timespec ts = clock_deadline_ts(wait);
            pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int slave_sync_start(broker_t *b, char *err, size_t errlen)
{
    if (broker_role(b) != BROKER_SLAVE)
        return 0;
    struct slave_sync *s = ferry_calloc(1, sizeof *s);
    s->b = b;
    s->state = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rc = pthread_create(&s->thr, NULL, sync_main, s);
    if (rc) {
        snprintf(err, errlen, "start the slave sync thread: %s", strerror(rc));
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        ferry_free(s);
        return -rc;
    }
    b->slave_sync = s;
    return 0;
}

void slave_sync_stop(broker_t *b)
{
    struct slave_sync *s = b->slave_sync;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thr, NULL);
    remoting_client_free(s->cli);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    ferry_free(s);
    b->slave_sync = NULL;
}

void slave_sync_kick(broker_t *b)
{
    struct slave_sync *s = b->slave_sync;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

int slave_sync_master_ok(broker_t *b)
{
    struct slave_sync *s = b->slave_sync;
    return s && atomic_load(&s->master_ok);
}
