/* Replication between a master and its slaves (docs/REPLICATION.md): the SYNC_MASTER wait.
 * ha_start()/ha_stop() are declared in broker_int.h. */
#ifndef FERRY_BROKER_HA_H
#define FERRY_BROKER_HA_H

#include <stdint.h>

struct ha;

/* Results of a replication wait (besides 0: enough slaves have it durably). Outside the
 * FERRY_E* range. The message is stored on the master in both cases. */
#define HA_ENOSLAVE  (-10101) /* no in-sync slave: SLAVE_NOT_AVAILABLE */
#define HA_ETIMEDOUT (-10102) /* not acknowledged in time: FLUSH_SLAVE_TIMEOUT */

typedef void (*ha_wait_cb)(void *arg, int rc);

/* SYNC_MASTER: wait until inSyncReplicas slaves report a durable CommitLog end >= @end.
 * Returns 0 (already there), HA_ENOSLAVE (at once: fewer in-sync slaves than needed; @ha may
 * be NULL), or 1: @cb(@arg, 0 or HA_ETIMEDOUT) is called exactly once later, from the HA
 * thread, waiters in offset order, after syncFlushTimeout at the latest. Any thread. */
int ha_wait(struct ha *ha, int64_t end, ha_wait_cb cb, void *arg);

#endif
