/* What the server launchers (mqnamesrv, mqcontroller, mqbroker, ferrymq) share.
 *
 * The command line of the single-table servers (mqnamesrv, mqcontroller):
 *   NAME [-c FILE] [-p] | --doc-config
 * --doc-config prints the keys as Markdown, -c loads FILE over the defaults already in @cfg, -p
 * checks the configuration as a start would (without binding or opening anything) and prints
 * the effective configuration. Blocks the shutdown signals first (before any thread exists, so
 * that every thread inherits the mask).
 *
 * Readiness for systemd (Type=notify units, dist/systemd/): the server_notify_*() functions send
 * sd_notify(3) messages to $NOTIFY_SOCKET, and do nothing when it is unset (a server started by
 * hand, by a test or by another supervisor). The order every launcher follows:
 *   server_notify_status("starting ...") -> (ports bound, store recovered, registered)
 *   server_notify_ready("serving ...") -> signal -> server_notify_stopping("SIGTERM") -> exit */
#ifndef FERRY_TOOLS_SERVER_CLI_H
#define FERRY_TOOLS_SERVER_CLI_H

#include "common/conf.h"

#include <stddef.h>

/* Extra checks of a loaded configuration that the key table cannot express (e.g. the
 * controller's peer list). Returns 0, or nonzero with a message naming the key in @err. */
typedef int (*server_check_fn)(void *cfg, char *err, size_t errlen);

/* Returns -1 when the server should start with @cfg, else the exit code (0 after --doc-config
 * or -p, 1 for a bad config with the message on stderr, 2 for bad usage with @usage). With -p,
 * @check (may be NULL) runs after the file is loaded: the checks a start would make. */
int server_cli(int argc, char **argv, const char *name, const char *usage,
               const struct conf_def *defs, void *cfg, server_check_fn check);

/* STATUS=<text>: what the server is doing now, shown by `systemctl status`. */
void server_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* READY=1 with STATUS=<text>: the server serves. Call it once, after every port is bound and
 * (broker) the store is recovered and the first name-server registration round is done. */
void server_notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* STOPPING=1 with STATUS="@why received, shutting down cleanly" (@why: "SIGTERM"). */
void server_notify_stopping(const char *why);

#endif
