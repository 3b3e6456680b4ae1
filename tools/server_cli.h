/* The command line of the single-table servers (mqnamesrv, mqcontroller):
 *   NAME [-c FILE] [-p] | --doc-config
 * --doc-config prints the keys as Markdown, -c loads FILE over the defaults already in @cfg, -p
 * prints the effective configuration. Blocks the shutdown signals first (before any thread
 * exists, so that every thread inherits the mask). */
#ifndef FERRY_TOOLS_SERVER_CLI_H
#define FERRY_TOOLS_SERVER_CLI_H

#include "common/conf.h"

/* Returns -1 when the server should start with @cfg, else the exit code (0 after --doc-config
 * or -p, 1 for a bad config with the message on stderr, 2 for bad usage with @usage). */
int server_cli(int argc, char **argv, const char *name, const char *usage,
               const struct conf_def *defs, void *cfg);

#endif
