/* The Prometheus text exposition of the broker (GET /metrics on metricsPort). */
#include "broker/broker_int.h"

#include "http/http.h"

void broker_metrics_http(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    (void)b;
    (void)req;
    static const char todo[] = "# metrics: not yet\n";
    http_reply(x, 200, "text/plain; version=0.0.4; charset=utf-8", todo, sizeof todo - 1,
               HTTP_STATIC);
}
