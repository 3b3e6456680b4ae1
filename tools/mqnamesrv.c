/* mqnamesrv: the FerryMQ name server as its own process (docs/NAMESRV.md).
 *
 *   mqnamesrv [-c namesrv.conf] [-p]   -p prints the effective config and exits
 *   mqnamesrv --doc-config             Markdown table of the keys
 *
 * Runs until SIGINT or SIGTERM, then shuts down cleanly and exits 0. The signals are blocked
 * in every thread and taken with sigwait() (common/signals.h), so no handler runs. Exit
 * status 1: bad command line, config or start-up failure (the message says which). */
#include "common/conf.h"
#include "common/log.h"
#include "common/signals.h"
#include "namesrv/namesrv.h"

#include <stdio.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: mqnamesrv [-c namesrv.conf] [-p] | --doc-config\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct namesrv_config cfg;
    const char *conf = NULL;
    int print = 0;
    char err[1024];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--doc-config")) {
            conf_print_doc(namesrv_conf_defs, stdout);
            return 0;
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            conf = argv[++i];
        } else if (!strcmp(argv[i], "-p")) {
            print = 1;
        } else {
            return usage();
        }
    }

    signals_block_shutdown(); /* before any thread exists: all inherit the mask */

    namesrv_config_defaults(&cfg);
    if (conf && conf_load_file(namesrv_conf_defs, &cfg, conf, err, sizeof err) != 0) {
        fprintf(stderr, "mqnamesrv: %s\n", err);
        return 1;
    }
    if (print) {
        conf_print(namesrv_conf_defs, &cfg, stdout);
        return 0;
    }

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
