/* A slave's copy of its master's metadata (issue 8): not implemented yet. */
#include "broker/broker_int.h"

int slave_sync_start(broker_t *b, char *err, size_t errlen)
{
    (void)b;
    (void)err;
    (void)errlen;
    return 0;
}

void slave_sync_stop(broker_t *b)
{
    (void)b;
}
