/* mqcontroller: one member of FerryMQ's Raft-replicated controller group (docs/CONTROLLER.md).
 *
 *   mqcontroller -c controller.conf [-p]   -p prints the effective config and exits
 *   mqcontroller --doc-config              Markdown table of the keys
 *
 * Runs until SIGINT or SIGTERM, then shuts down cleanly and exits 0. Exit status 1: bad
 * command line, config or start-up failure (the message names the key). */
#include "common/log.h"
#include "common/signals.h"
#include "server_cli.h"
#include "controller/controller.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    struct controller_config cfg;
    char err[1024];
    controller_config_defaults(&cfg);
    int rc = server_cli(argc, argv, "mqcontroller",
                        "mqcontroller -c controller.conf [-p] | --doc-config", controller_conf_defs,
                        &cfg);
    if (rc >= 0)
        return rc;
    controller_t *ctl;
    if (controller_start(&cfg, &ctl, err, sizeof err) != 0) {
        fprintf(stderr, "mqcontroller: %s\n", err);
        return 1;
    }
    log_info(LOG_MAIN, "%s received, shutting down", signals_wait_shutdown());
    controller_stop(ctl);
    log_info(LOG_MAIN, "controller stopped");
    return 0;
}
