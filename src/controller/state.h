/* The controller's replicated state machine (docs/CONTROLLER.md): per broker set (brokerName)
 * the master brokerId, address and masterEpoch, the sync state set and its epoch, and the known
 * replicas with their last reported max offset and epoch; plus the remoting address of each
 * controller node. Pure and deterministic: it changes only through ctl_state_apply() of
 * committed Raft entries (text commands, below), so every controller that applied the same log
 * holds the same state. No clocks, no liveness: the leader decides who is alive and writes it
 * into the ELECT entry.
 *
 * Commands (one per entry, tokens separated by single spaces; names and addresses have no
 * whitespace):
 *   APPLY <cluster> <brokerName> <brokerId> <addr>       claim a broker id
 * (CONTROLLER_APPLY_BROKER_ID) REG <cluster> <brokerName> <brokerId> <addr>         register
 * (CONTROLLER_REGISTER_BROKER) ALTER <brokerName> <masterId> <masterEpoch> <ssEpoch> <n> <id>...
 *   ELECT <brokerName> <designatedId|0> <unclean 0|1> <n> (<id> <alive 0|1> <maxOffset> <epoch>)...
 *   NODE <nodeIndex> <remotingAddr>                      a controller's remoting address */
#ifndef FERRY_CONTROLLER_STATE_H
#define FERRY_CONTROLLER_STATE_H

#include <stddef.h>
#include <stdint.h>

#define CTL_NAME_MAX     128
#define CTL_ADDR_MAX     64
#define CTL_REPLICAS_MAX 16
#define CTL_NODES_MAX    9

struct ctl_replica {
    int64_t id;
    char addr[CTL_ADDR_MAX];
    int64_t max_offset; /* as last written by an ELECT entry */
    int32_t epoch;
};

struct ctl_set {
    char cluster[CTL_NAME_MAX];
    char name[CTL_NAME_MAX];
    int64_t master_id; /* 0: no master */
    int32_t master_epoch;
    int32_t ss_epoch;
    int n_ss;
    int64_t ss[CTL_REPLICAS_MAX];
    int n_rep;
    struct ctl_replica rep[CTL_REPLICAS_MAX];
    /* Local, not replicated: an election proposal of this node is in flight. */
    int elect_inflight;
};

/* The outcome of the last applied command (valid until the next apply). */
struct ctl_result {
    int code; /* codes.h CTL_RESP_* */
    char remark[256];
    int64_t master_id;
    char master_addr[CTL_ADDR_MAX];
    int32_t master_epoch;
    int32_t ss_epoch;
};

struct ctl_state {
    int n_sets, cap;
    struct ctl_set *sets;
    char node_addr[CTL_NODES_MAX][CTL_ADDR_MAX]; /* "" when unknown */
    struct ctl_result last;
};

void ctl_state_init(struct ctl_state *st);
void ctl_state_free(struct ctl_state *st);

/* Apply one command of @len bytes. Always returns &st->last (code CTL_RESP_INVALID_REQUEST for
 * a malformed command: the state is then unchanged). */
const struct ctl_result *ctl_state_apply(struct ctl_state *st, const char *cmd, size_t len);

struct ctl_set *ctl_state_find(const struct ctl_state *st, const char *name);
const struct ctl_replica *ctl_set_replica(const struct ctl_set *s, int64_t id);
int ctl_set_in_sync(const struct ctl_set *s, int64_t id);

/* The whole state as text (ferry_malloc'd, NUL-terminated; *@len excludes the NUL), and back.
 * ctl_state_restore() replaces @st; returns 0 or FERRY_ECORRUPT (then @st is empty). */
char *ctl_state_dump(const struct ctl_state *st, size_t *len);
int ctl_state_restore(struct ctl_state *st, const char *text, size_t len);

/* 1 when @s is a usable name or address token (1..CTL_NAME_MAX-1 printable bytes, no space). */
int ctl_token_ok(const char *s, size_t cap);

#endif
