/* The dashboard's pages and assets, embedded in the binary. */
#include "broker/broker_int.h"

#include "http/http.h"

void broker_dashboard_asset(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    (void)b;
    (void)req;
    http_reply(x, 404, "text/plain; charset=utf-8", "not found\n", 10, HTTP_STATIC);
}

void broker_dashboard_api(broker_t *b, const struct http_request *req, struct http_exchange *x)
{
    (void)b;
    (void)req;
    http_reply(x, 404, "application/json", "{\"error\":\"no such API\"}", 23, HTTP_STATIC);
}
