/* mqcontroller: one member of FerryMQ's Raft-replicated controller group (docs/CONTROLLER.md).
 *
 *   mqcontroller -c controller.conf [-p]   -p checks the config and prints the effective one
 *   mqcontroller --doc-config              Markdown table of the keys
 *
 * Runs until SIGINT or SIGTERM, then shuts down cleanly and exits 0. Under systemd
 * (Type=notify) it reports READY=1 once its Raft node runs and its remoting port is bound, and
 * STOPPING=1 at the signal (server_cli.h). Exit status 1: bad config or start-up failure (the
 * message names the key); 2: bad usage. */
#include "common/log.h"
#include "common/signals.h"
#include "server_cli.h"
#include "controller/controller.h"

#include <stdio.h>

/* -p: what controller_start() checks before it opens anything. */
static int check(void *arg, char *err, size_t errlen)
{
    const struct controller_config *cfg = arg;
    struct consensus_peer peers[CONSENSUS_PEERS_MAX];
    char names[CONSENSUS_PEERS_MAX][32];
    int n, self;
    if (controller_parse_peers(cfg, peers, names, &n, &self, err, errlen) != 0)
        return 1;
    if (!cfg->controllerStorePath[0]) {
        snprintf(err, errlen, "controllerStorePath is not set (the Raft log directory)");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct controller_config cfg;
    char err[1024];
    controller_config_defaults(&cfg);
    int rc = server_cli(argc, argv, "mqcontroller",
                        "mqcontroller -c controller.conf [-p] | --doc-config", controller_conf_defs,
                        &cfg, check);
    if (rc >= 0)
        return rc;
    controller_t *ctl;
    server_notify_status("starting controller %s", cfg.controllerSelfId);
    if (controller_start(&cfg, &ctl, err, sizeof err) != 0) {
        fprintf(stderr, "mqcontroller: %s\n", err);
        server_notify_status("cannot start: %s", err);
        return 1;
    }
    server_notify_ready("controller %s of %s serving on port %d", cfg.controllerSelfId,
                        cfg.controllerGroup, controller_port(ctl));
    const char *sig = signals_wait_shutdown();
    server_notify_stopping(sig);
    log_info(LOG_MAIN, "%s received, shutting down", sig);
    controller_stop(ctl);
    log_info(LOG_MAIN, "controller stopped");
    return 0;
}
