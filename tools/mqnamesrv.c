/* mqnamesrv: the FerryMQ name server as its own process (docs/NAMESRV.md).
 *
 *   mqnamesrv [-c namesrv.conf] [-p]   -p checks the config and prints the effective one
 *   mqnamesrv --doc-config             Markdown table of the keys
 *
 * Runs until SIGINT or SIGTERM, then shuts down cleanly and exits 0. The signals are blocked
 * in every thread and taken with sigwait() (common/signals.h), so no handler runs. Under
 * systemd (Type=notify) it reports READY=1 once its port is bound and STOPPING=1 at the
 * signal (server_cli.h). Exit status 1: bad config or start-up failure (the message says
 * which); 2: bad usage. */
#include "common/log.h"
#include "common/signals.h"
#include "server_cli.h"
#include "namesrv/namesrv.h"

#include <stdio.h>

/* -p and start: every check namesrv_new() makes (listenAddress, the KV file readable). */
static int check(void *cfg, char *err, size_t errlen)
{
    namesrv_t *ns;
    int rc = namesrv_new(cfg, &ns, err, errlen);
    namesrv_free(ns);
    return rc;
}

int main(int argc, char **argv)
{
    struct namesrv_config cfg;
    char err[1024];
    namesrv_config_defaults(&cfg);
    int rc = server_cli(argc, argv, "mqnamesrv", "mqnamesrv [-c namesrv.conf] [-p] | --doc-config",
                        namesrv_conf_defs, &cfg, check);
    if (rc >= 0)
        return rc;

    namesrv_t *ns;
    server_notify_status("starting the name server");
    if (namesrv_new(&cfg, &ns, err, sizeof err) != 0) {
        fprintf(stderr, "mqnamesrv: %s\n", err);
        server_notify_status("cannot start: %s", err);
        return 1;
    }
    if (namesrv_start(ns, err, sizeof err) != 0) {
        fprintf(stderr, "mqnamesrv: cannot start: %s\n", err);
        server_notify_status("cannot start: %s", err);
        namesrv_free(ns);
        return 1;
    }
    server_notify_ready("name server serving on %s port %d", cfg.listenAddress, namesrv_port(ns));
    const char *sig = signals_wait_shutdown();
    server_notify_stopping(sig);
    log_info(LOG_NAMESRV, "%s received, shutting down", sig);
    namesrv_free(ns);
    log_info(LOG_NAMESRV, "name server stopped");
    return 0;
}
