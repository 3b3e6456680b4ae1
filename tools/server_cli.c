/* The single-table servers' command line (server_cli.h). */
#include "server_cli.h"

#include "common/signals.h"

#include <stdio.h>
#include <string.h>

int server_cli(int argc, char **argv, const char *name, const char *usage,
               const struct conf_def *defs, void *cfg)
{
    const char *conf = NULL;
    int print = 0;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--doc-config")) {
            conf_print_doc(defs, stdout);
            return 0;
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            conf = argv[++i];
        } else if (!strcmp(argv[i], "-p")) {
            print = 1;
        } else {
            fprintf(stderr, "usage: %s\n", usage);
            return 2;
        }
    }
    signals_block_shutdown();
    if (conf && conf_load_file(defs, cfg, conf, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    if (print) {
        conf_print(defs, cfg, stdout);
        return 0;
    }
    return -1;
}
