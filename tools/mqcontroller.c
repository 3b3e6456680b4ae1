/* mqcontroller: one member of FerryMQ's Raft-replicated controller group (docs/CONTROLLER.md).
 *
 *   mqcontroller -c controller.conf [-p]   -p prints the effective config and exits
 *   mqcontroller --doc-config              Markdown table of the keys
 *
 * Runs until SIGINT or SIGTERM, then shuts down cleanly and exits 0. Exit status 1: bad
 * command line, config or start-up failure (the message names the key). */
#include "common/conf.h"
#include "common/log.h"
#include "common/signals.h"
#include "controller/controller.h"

#include <stdio.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: mqcontroller -c controller.conf [-p] | --doc-config\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct controller_config cfg;
    const char *conf = NULL;
    int print = 0;
    char err[1024];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--doc-config")) {
            conf_print_doc(controller_conf_defs, stdout);
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
    controller_config_defaults(&cfg);
    if (conf && conf_load_file(controller_conf_defs, &cfg, conf, err, sizeof err) != 0) {
        fprintf(stderr, "mqcontroller: %s\n", err);
        return 1;
    }
    if (print) {
        conf_print(controller_conf_defs, &cfg, stdout);
        return 0;
    }
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
