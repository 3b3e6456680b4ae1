/* The broker's HTTP port (metricsPort, off by default): routes each request of the embedded
 * HTTP server (src/http) to what answers it:
 *
 *   GET /metrics       the Prometheus text exposition (metrics.c)
 *   /api/...           the dashboard's JSON API (dashboard.c; with aclEnable behind the
 *                      login, whose sessions (login.c) live as long as the server)
 *   anything else      the dashboard's pages and assets, embedded in the binary (dashboard.c)
 *
 * The server starts once the broker is ready and stops first at shutdown, before any table it
 * reads is freed. Handlers run on the HTTP server's threads and read the broker through the same
 * locks the request processors take. */
#include "broker/broker_int.h"
#include "broker/login.h"

#include "common/err.h"
#include "common/log.h"
#include "http/http.h"

#include <stdio.h>
#include <string.h>

static void on_request(void *arg, const struct http_request *req, struct http_exchange *x)
{
    broker_t *b = arg;
    if (strcmp(req->path, "/metrics") == 0)
        broker_metrics_http(b, req, x);
    else if (strncmp(req->path, "/api/", 5) == 0)
        broker_dashboard_api(b, req, x);
    else
        broker_dashboard_asset(b, req, x);
}

int broker_web_start(broker_t *b, char *err, size_t errlen)
{
    if (b->cfg.metricsPort < 0)
        return 0;
    if (b->acl) { /* the dashboard's login (dashboard.c) */
        struct login_config lc;
        login_config_init(&lc);
        b->login = login_new(&lc);
    }
    int rc =
        http_start(b->cfg.bindAddress, b->cfg.metricsPort, on_request, b, &b->web, err, errlen);
    if (rc != 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (metricsPort; -1 turns the HTTP port off)");
        login_free(b->login);
        b->login = NULL;
        return rc;
    }
    log_info(LOG_BROKER, "HTTP port (metrics, dashboard) at http://%s:%d/", b->cfg.bindAddress,
             http_port(b->web));
    return 0;
}

int broker_web_port(const broker_t *b)
{
    return b->web ? http_port(b->web) : -1;
}

void broker_web_stop(broker_t *b)
{
    http_stop(b->web);
    b->web = NULL;
    login_free(b->login); /* no handler runs any more */
    b->login = NULL;
}
