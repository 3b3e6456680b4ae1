/* The broker's HTTP port (metricsPort, off by default): routes each request of the embedded
 * HTTP server (src/http) to what answers it:
 *
 *   GET /metrics       the Prometheus text exposition (metrics.c)
 *   /api/...           the dashboard's JSON API (dashboard.c), under an allowed Host only;
 *                      with aclEnable behind the login, whose sessions (login.c) live as
 *                      long as the server)
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

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Whether @list ("a,b,c"; "*" any) names @host (@n bytes), case-insensitively. */
static int listed(const char *list, const char *host, size_t n)
{
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if ((len == 1 && *p == '*') || (len == n && len && strncasecmp(p, host, n) == 0))
            return 1;
        p += len;
    }
    return 0;
}

/* The dashboard's API answers only under a Host that is an IP address, localhost or a name of
 * httpAllowedHosts. A page of another site that re-points its own name at this broker (DNS
 * rebinding) is same-origin with itself, so the browser-side checks of dashboard.c cannot
 * tell it apart; its requests carry its own name as Host, and this refuses them. NULL, or why
 * not. */
static const char *host_refused(broker_t *b, const char *host)
{
    char buf[256];
    struct in6_addr a6;
    struct in_addr a4;
    size_t n;
    if (!host || !host[0])
        return "a request without a Host header";
    if (host[0] == '[') /* [v6]:port */
        return strchr(host, ']') ? NULL : "a bad Host header";
    n = strcspn(host, ":");
    if (n >= sizeof buf)
        return "a bad Host header";
    memcpy(buf, host, n);
    buf[n] = 0;
    if (inet_pton(AF_INET, buf, &a4) == 1 || inet_pton(AF_INET6, buf, &a6) == 1 ||
        strcasecmp(buf, "localhost") == 0 || listed(b->cfg.httpAllowedHosts, buf, n))
        return NULL;
    return "a Host name that is not in httpAllowedHosts";
}

static void on_request(void *arg, const struct http_request *req, struct http_exchange *x)
{
    broker_t *b = arg;
    const char *why;
    if (strcmp(req->path, "/metrics") == 0) {
        broker_metrics_http(b, req, x);
    } else if (strncmp(req->path, "/api/", 5) == 0 &&
               (why = host_refused(b, http_header(x, "Host"))) != NULL) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "{\"error\":\"the dashboard's API refuses %s: reach it by IP address or "
                 "localhost, or add the name to httpAllowedHosts (docs/DASHBOARD.md)\"}",
                 why);
        http_reply(x, 403, "application/json", msg, strlen(msg), HTTP_COPY);
    } else if (strncmp(req->path, "/api/", 5) == 0) {
        broker_dashboard_api(b, req, x);
    } else {
        broker_dashboard_asset(b, req, x);
    }
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
    const char *host =
        b->cfg.metricsBindAddress[0] ? b->cfg.metricsBindAddress : b->cfg.bindAddress;
    int rc = http_start(host, b->cfg.metricsPort, on_request, b, &b->web, err, errlen);
    if (rc != 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (metricsPort; -1 turns the HTTP port off)");
        login_free(b->login);
        b->login = NULL;
        return rc;
    }
    int v6 = strchr(host, ':') != NULL;
    log_info(LOG_BROKER, "HTTP port (metrics, dashboard) at http://%s%s%s:%d/", v6 ? "[" : "", host,
             v6 ? "]" : "", http_port(b->web));
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
