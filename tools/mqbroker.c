/* mqbroker: the FerryMQ broker as its own process (docs/BROKER.md).
 *
 *   mqbroker [-c broker.conf] [-n namesrvAddr] [-p]   -p prints the effective config and exits
 *   mqbroker --doc-config                             Markdown tables of the keys
 *
 * broker.conf holds RocketMQ's broker keys and the store keys in one file; -n overrides
 * namesrvAddr. Runs until SIGINT or SIGTERM, then shuts down cleanly (unregister, persist
 * offsets and topics, close the store: no abort file is left) and exits 0. The signals are
 * blocked in every thread and taken with sigwait() (common/signals.h). Under systemd
 * (Type=notify) it reports READY=1 once broker_start() returned (port bound, store recovered,
 * first registration round with the name servers done) and STOPPING=1 at the signal
 * (server_cli.h). Exit status 1: a bad config value (the message names the key and what is
 * allowed) or a start-up failure; 2: bad usage. */
#include "broker/broker.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/signals.h"
#include "server_cli.h"

#include <stdio.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: mqbroker [-c broker.conf] [-n namesrvAddr] [-p] | --doc-config\n"
                    "  -c FILE   broker.conf: broker and store keys (key=value)\n"
                    "  -n ADDR   name servers, host:port;host:port (overrides namesrvAddr)\n"
                    "  -p        print the effective configuration and exit\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct broker_config cfg;
    const char *conf = NULL, *ns = NULL;
    int print = 0;
    char err[1024];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--doc-config")) {
            printf("## Broker keys\n\n");
            conf_print_doc(broker_conf_defs, stdout);
            printf("\n## Store keys\n\n");
            conf_print_doc(store_conf_defs, stdout);
            return 0;
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            conf = argv[++i];
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            ns = argv[++i];
        } else if (!strcmp(argv[i], "-p")) {
            print = 1;
        } else {
            return usage();
        }
    }

    signals_block_shutdown(); /* before any thread exists: all inherit the mask */

    broker_config_defaults(&cfg);
    if (conf && broker_config_load(&cfg, conf, err, sizeof err) != 0) {
        fprintf(stderr, "mqbroker: %s\n", err);
        return 1;
    }
    if (ns && conf_set(broker_conf_defs, &cfg, "namesrvAddr", ns, err, sizeof err) != 0) {
        fprintf(stderr, "mqbroker: -n: %s\n", err);
        return 1;
    }
    if (broker_config_check(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mqbroker: %s\n", err);
        return 1;
    }
    if (print) {
        broker_config_print(&cfg, stdout);
        return 0;
    }

    broker_t *b;
    if (broker_new(&cfg, &b, err, sizeof err) != 0) {
        fprintf(stderr, "mqbroker: %s\n", err);
        server_notify_status("cannot start: %s", err);
        return 1;
    }
    server_notify_status("opening the store in %s (recovery may scan the CommitLog)",
                         cfg.store.storePathRootDir);
    if (broker_start(b, err, sizeof err) != 0) {
        fprintf(stderr, "mqbroker: cannot start: %s\n", err);
        server_notify_status("cannot start: %s", err);
        broker_free(b);
        return 1;
    }
    printf("The broker[%s, %s] boot success. serializeType=JSON and name server is %s\n",
           cfg.brokerName, broker_addr(b), cfg.namesrvAddr[0] ? cfg.namesrvAddr : "(none)");
    fflush(stdout);
    server_notify_ready("broker %s (cluster %s) serving at %s, name servers %s", cfg.brokerName,
                        cfg.brokerClusterName, broker_addr(b),
                        cfg.namesrvAddr[0] ? cfg.namesrvAddr : "(none)");
    const char *sig = signals_wait_shutdown();
    server_notify_stopping(sig);
    log_info(LOG_BROKER, "%s received, shutting down", sig);
    broker_free(b);
    log_info(LOG_BROKER, "broker stopped cleanly");
    return 0;
}
