/* Send N messages synchronously and print each result.
 *
 *   example_producer [namesrv-addr] [topic] [count]
 *
 * The name server defaults to $NAMESRV_ADDR, then 127.0.0.1:9876. */
#include "ferry/ferry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    struct ferry_producer_config cfg;
    struct ferry_send_result res;
    ferry_producer_t *p;
    const char *topic = argc > 2 ? argv[2] : "TopicTest";
    int n = argc > 3 ? atoi(argv[3]) : 10, failed = 0;
    int rc;

    ferry_producer_config_init(&cfg);
    snprintf(cfg.group, sizeof cfg.group, "PID_example");
    if (argc > 1)
        snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "%s", argv[1]);
    else if (!getenv("NAMESRV_ADDR"))
        snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "127.0.0.1:9876");
    if ((rc = ferry_producer_new(&cfg, &p)) != 0 || (rc = ferry_producer_start(p)) != 0) {
        fprintf(stderr, "producer: %s\n", ferry_strerror(rc));
        ferry_producer_free(p);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char body[64];
        struct ferry_message msg = {.topic = topic, .tags = "TagA", .body = body};
        msg.body_len = (size_t)snprintf(body, sizeof body, "Hello FerryMQ %d", i);
        rc = ferry_send_sync(p, &msg, &res);
        if (rc == 0)
            printf("%d OK status=%d msgId=%s offsetMsgId=%s queue=%s:%d offset=%lld\n", i,
                   (int)res.status, res.msg_id, res.offset_msg_id, res.broker_name, res.queue_id,
                   (long long)res.queue_offset);
        else
            printf("%d %s: %s\n", i, rc == FERRY_EUNKNOWN ? "UNKNOWN" : "FAILED",
                   ferry_strerror(rc));
        failed += rc != 0;
    }
    ferry_producer_free(p);
    return failed ? 1 : 0;
}
