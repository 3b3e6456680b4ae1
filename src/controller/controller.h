/* mqcontroller: the Raft-replicated controller of master/slave broker sets
 * (docs/CONTROLLER.md). One controller_t is one member of the controller group: a consensus
 * node (consensus.h) applying the state machine of state.h, and a remoting server on
 * listenPort answering RocketMQ's controller request codes (codes.h). */
#ifndef FERRY_CONTROLLER_CONTROLLER_H
#define FERRY_CONTROLLER_CONTROLLER_H

#include "common/conf.h"
#include "remoting/tls.h"
#include "controller/consensus.h"

#include <stddef.h>
#include <stdint.h>

struct controller_config {
    char controllerGroup[128];
    char controllerPeers[1024]; /* n0-127.0.0.1:9878;n1-127.0.0.1:9868;... */
    char controllerSelfId[64];  /* n0 */
    char controllerStorePath[1024];
    int32_t listenPort;                      /* remoting port for brokers and admin */
    int64_t scanNotActiveBrokerInterval;     /* ms between lease scans on the leader */
    int64_t controllerHeartBeatTimeoutMills; /* broker lease: ms without heartbeat */
    int enableElectUncleanMaster;            /* elect outside the sync state set */
    int32_t raftElectionTimeoutMs;
    int32_t raftHeartbeatTimeoutMs;
    int32_t raftSnapshotThreshold;
    struct tls_config tls; /* tlsMode, ...: TLS on listenPort, not on Raft (docs/TLS.md) */
};

extern const struct conf_def controller_conf_defs[];

void controller_config_defaults(struct controller_config *cfg);

/* The peers of controllerPeers (ids 1.. in order), and which one controllerSelfId names.
 * Returns 0 or FERRY_ECONFIG with a message naming the key. */
int controller_parse_peers(const struct controller_config *cfg, struct consensus_peer *peers,
                           char names[][32], int *n, int *self_index, char *err, size_t errlen);

typedef struct controller controller_t;

/* Validate @cfg and start (Raft node, then the remoting server). Returns 0 or an error with a
 * message in @err. */
int controller_start(const struct controller_config *cfg, controller_t **out, char *err,
                     size_t errlen);
int controller_port(const controller_t *ctl);
void controller_stop(controller_t *ctl);

#endif
