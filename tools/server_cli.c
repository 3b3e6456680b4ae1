/* The server launchers' command line and systemd readiness (server_cli.h). */
#include "server_cli.h"

#include "common/log.h"
#include "common/signals.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

int server_cli(int argc, char **argv, const char *name, const char *usage,
               const struct conf_def *defs, void *cfg, server_check_fn check)
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
    if (print && check && check(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    if (print) {
        conf_print(defs, cfg, stdout);
        return 0;
    }
    return -1;
}

/* Send @state (newline-separated assignments) to $NOTIFY_SOCKET; a failure is logged once. */
static void notify(const char *state)
{
    static int warned;
    int rc = sd_notify(0, state);
    if (rc < 0 && !warned) {
        warned = 1;
        log_warn(LOG_MAIN, "sd_notify to NOTIFY_SOCKET failed: %s", strerror(-rc));
    }
}

static void notify_fmt(const char *head, const char *fmt, va_list ap)
{
    char text[512], msg[600];
    vsnprintf(text, sizeof text, fmt, ap);
    for (char *p = text; *p; p++) /* one line: a newline would start another assignment */
        if (*p == '\n')
            *p = ' ';
    snprintf(msg, sizeof msg, "%sSTATUS=%s", head, text);
    notify(msg);
}

void server_notify_status(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_fmt("", fmt, ap);
    va_end(ap);
}

void server_notify_ready(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_fmt("READY=1\n", fmt, ap);
    va_end(ap);
}

void server_notify_stopping(const char *why)
{
    char msg[200];
    snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=%s received, shutting down cleanly", why);
    notify(msg);
}
