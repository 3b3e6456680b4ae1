/* Replication between a master and its slaves (issue 8): not implemented yet. */
#include "broker/broker_int.h"

int ha_start(broker_t *b, char *err, size_t errlen)
{
    (void)b;
    (void)err;
    (void)errlen;
    return 0;
}

void ha_stop(broker_t *b)
{
    (void)b;
}
