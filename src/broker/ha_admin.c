/* Operator views of replication (docs/REPLICATION.md "Operating: haStatus", docs/CONTROLLER.md
 * "Operating: mqadmin"): RocketMQ 5's GET_BROKER_HA_STATUS (907), answered with an
 * HARuntimeInfo-like JSON body, and GET_BROKER_EPOCH_CACHE (1007), an EpochEntryCache. Both
 * are read-only snapshots taken on the remoting thread; the HA state comes from ha.c's
 * accessors (ha_info, ha_slaves), the epochs from the controller link (ctl_link_epochs). */
#include "broker/broker_int.h"
#include "broker/epoch.h"

#include "common/alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAX_SLAVES 16

static const char *role_name(int role)
{
    switch (role) {
    case BROKER_ASYNC_MASTER:
        return "ASYNC_MASTER";
    case BROKER_SYNC_MASTER:
        return "SYNC_MASTER";
    default:
        return "SLAVE";
    }
}

static void jbool(struct sbuf *sb, const char *key, int v)
{
    bsb_fmt(sb, "\"%s\":%s,", key, v ? "true" : "false");
}

static void ji64(struct sbuf *sb, const char *key, int64_t v)
{
    bsb_fmt(sb, "\"%s\":%" PRId64 ",", key, v);
}

static void jstr(struct sbuf *sb, const char *key, const char *v)
{
    bsb_jstr(sb, key);
    bsb_add(sb, ":", 1);
    bsb_jstr(sb, v);
    bsb_add(sb, ",", 1);
}

/* GET_BROKER_HA_STATUS: RocketMQ's HARuntimeInfo fields (master, masterCommitLogMaxOffset,
 * inSyncSlaveNums, haConnectionInfo[addr, slaveAckOffset, diff, inSync], haClientRuntimeInfo
 * [masterAddr, maxOffset]) plus what FerryMQ knows besides: each slave's brokerId, whether a
 * SYNC_MASTER send waits for it (controller mode), ms since its last report; on a slave, the
 * master's HA address, whether the link is up, and the received / durable ends. */
void broker_on_ha_status(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    if (!broker_ready(b, conn, req))
        return;
    struct ha_info hi;
    struct ha_slave sl[MAX_SLAVES];
    ha_info(b, &hi);
    int n = ha_slaves(b, sl, MAX_SLAVES);
    int role = broker_role(b);
    int cm = b->cfg.enableControllerMode;
    uint64_t required = cm ? ctl_link_required_mask(b) : 0;
    int master = role != BROKER_SLAVE || (hi.running && hi.master);
    int64_t max = store_max_phys(b->store);

    struct sbuf sb;
    bsb_init(&sb);
    bsb_add(&sb, "{", 1);
    jstr(&sb, "brokerName", b->cfg.brokerName);
    ji64(&sb, "brokerId", b->cfg.brokerId);
    jstr(&sb, "brokerAddr", b->addr);
    jstr(&sb, "role", role_name(role));
    jbool(&sb, "controllerMode", cm);
    jbool(&sb, "haRunning", hi.running);
    jbool(&sb, "master", master);
    /* A master whose role says SLAVE refuses sends: fenced (controller mode), or switching. */
    jbool(&sb, "fenced", master && role == BROKER_SLAVE);
    ji64(&sb, "masterCommitLogMaxOffset", max);
    ji64(&sb, "inSyncReplicas", b->cfg.inSyncReplicas);
    int in_sync = 0;
    bsb_str(&sb, "\"haConnectionInfo\":[");
    for (int i = 0; i < n; i++) {
        int64_t diff = max > sl[i].acked ? max - sl[i].acked : 0;
        int ok = diff <= b->cfg.haMaxGapNotInSync;
        int req_ack =
            sl[i].broker_id > 0 && sl[i].broker_id < 64 && (required >> sl[i].broker_id & 1);
        in_sync += ok;
        bsb_add(&sb, "{", 1);
        jstr(&sb, "addr", sl[i].addr);
        ji64(&sb, "brokerId", sl[i].broker_id);
        ji64(&sb, "slaveAckOffset", sl[i].acked);
        ji64(&sb, "diff", diff);
        jbool(&sb, "inSync", ok);
        jbool(&sb, "ackRequired", req_ack);
        ji64(&sb, "lastReportMs", sl[i].idle_ms);
        bsb_trim_comma(&sb);
        bsb_str(&sb, "},");
    }
    bsb_trim_comma(&sb);
    bsb_str(&sb, "],");
    ji64(&sb, "inSyncSlaveNums", in_sync);
    bsb_str(&sb, "\"requiredSlaveIds\":[");
    for (int id = 1; id < 64; id++)
        if (required >> id & 1)
            bsb_fmt(&sb, "%d,", id);
    bsb_trim_comma(&sb);
    bsb_str(&sb, "],");
    if (!master) {
        char addr[128] = "", ha_addr[128] = "";
        if (cm)
            ctl_link_master(b, addr, sizeof addr);
        else
            broker_master_addrs(b, addr, sizeof addr, ha_addr, sizeof ha_addr);
        bsb_str(&sb, "\"haClientRuntimeInfo\":{");
        jstr(&sb, "masterAddr", addr);
        jstr(&sb, "masterHaAddr", hi.master_addr[0] ? hi.master_addr : ha_addr);
        jbool(&sb, "connected", hi.running && hi.connected);
        ji64(&sb, "maxOffset", max);
        ji64(&sb, "receivedOffset", store_received_phys(b->store));
        ji64(&sb, "durableOffset", store_flushed_phys(b->store));
        bsb_trim_comma(&sb);
        bsb_str(&sb, "},");
    }
    bsb_trim_comma(&sb);
    bsb_add(&sb, "}", 1);
    broker_respond_sb(conn, req, &sb);
}

/* GET_BROKER_EPOCH_CACHE: RocketMQ's EpochEntryCache (clusterName, brokerName, brokerId,
 * epochList [{epoch, startOffset, endOffset}], maxOffset). Each epoch ends where the next
 * starts, the last at this broker's CommitLog end. Empty outside controller mode. */
void broker_on_epoch_cache(conn_t *conn, const struct rcmd *req, void *arg)
{
    broker_t *b = arg;
    if (!broker_ready(b, conn, req))
        return;
    struct epoch_list *el = ferry_malloc(sizeof *el);
    ctl_link_epochs(b, el);
    int64_t max = store_max_phys(b->store);
    struct sbuf sb;
    bsb_init(&sb);
    bsb_add(&sb, "{", 1);
    jstr(&sb, "clusterName", b->cfg.brokerClusterName);
    jstr(&sb, "brokerName", b->cfg.brokerName);
    ji64(&sb, "brokerId", b->cfg.brokerId);
    jstr(&sb, "brokerAddr", b->addr);
    bsb_str(&sb, "\"epochList\":[");
    for (int i = 0; i < el->n; i++) {
        int64_t start = el->e[i].start;
        int64_t end = i + 1 < el->n ? el->e[i + 1].start : (max > start ? max : start);
        bsb_fmt(&sb,
                "{\"epoch\":%" PRId64 ",\"startOffset\":%" PRId64 ",\"endOffset\":%" PRId64 "},",
                el->e[i].epoch, start, end);
    }
    ferry_free(el);
    bsb_trim_comma(&sb);
    bsb_str(&sb, "],");
    ji64(&sb, "maxOffset", max);
    bsb_trim_comma(&sb);
    bsb_add(&sb, "}", 1);
    broker_respond_sb(conn, req, &sb);
}
