/* mqnamesrv: the FerryMQ name server as its own process (docs/NAMESRV.md).
 *
 *   mqnamesrv [-c namesrv.conf] [-p]   -p prints the effective config and exits
 *   mqnamesrv --doc-config             Markdown table of the keys
 *
 * Runs until SIGINT or SIGTERM, then shuts down cleanly and exits 0. The signals are blocked
 * in every thread and taken with sigwait() (common/signals.h), so no handler runs. Exit
 * status 1: bad command line, config or start-up failure (the message says which). */
#include "common/log.h"
#include "common/signals.h"
#include "server_cli.h"
#include "namesrv/namesrv.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    struct namesrv_config cfg;
    char err[1024];
    namesrv_config_defaults(&cfg);
    int rc = server_cli(argc, argv, "mqnamesrv", "mqnamesrv [-c namesrv.conf] [-p] | --doc-config",
                        namesrv_conf_defs, &cfg);
    if (rc >= 0)
        return rc;

    namesrv_t *ns;
    if (namesrv_new(&cfg, &ns, err, sizeof err) != 0) {
        fprintf(stderr, "mqnamesrv: %s\n", err);
        return 1;
    }
    if (namesrv_start(ns, err, sizeof err) != 0) {
        fprintf(stderr, "mqnamesrv: cannot start: %s\n", err);
        namesrv_free(ns);
        return 1;
    }
    log_info(LOG_NAMESRV, "%s received, shutting down", signals_wait_shutdown());
    namesrv_free(ns);
    log_info(LOG_NAMESRV, "name server stopped");
    return 0;
}
