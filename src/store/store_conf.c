/* The store's configuration keys: RocketMQ's names, defaults and meaning, with bounds. */
#include "store/store.h"

#include <stddef.h>

static const char *const flush_names[] = {"ASYNC_FLUSH", "SYNC_FLUSH", NULL};
static const char *const wwm_names[] = {"false", "true", "auto", NULL};

#define F(k)        offsetof(struct store_config, k)
#define CONF_STRUCT struct store_config
#define STR         CONF_ROW_STR
#define INT         CONF_ROW_INT
#define LONG        CONF_ROW_LONG
#define BOOL        CONF_ROW_BOOL

const struct conf_def store_conf_defs[] = {
    STR(storePathRootDir, "./data",
        "store root: commitlog/, consumequeue/, index/, checkpoint, abort"),
    STR(storePathCommitLog, "", "CommitLog directory (empty: <storePathRootDir>/commitlog)"),
    LONG(mappedFileSizeCommitLog, "1073741824", 65536, 1LL << 40, "CommitLog segment size, bytes"),
    INT(mappedFileSizeConsumeQueue, "6000000", 20, 1 << 30,
        "ConsumeQueue file size, bytes (x20 entries)"),
    {"flushDiskType", CONF_ENUM, F(flushDiskType), 0, "ASYNC_FLUSH", 0, 0, flush_names, 0,
     "SYNC_FLUSH: acknowledge after fdatasync (group commit); ASYNC_FLUSH: flush in the "
     "background"},
    INT(flushIntervalCommitLog, "500", 1, 60000, "ASYNC_FLUSH: ms between flushes"),
    INT(flushCommitLogLeastPages, "4", 0, 1 << 20,
        "ASYNC_FLUSH: flush only when this many 4 KiB pages are dirty"),
    INT(flushCommitLogThoroughInterval, "10000", 0, 3600000,
        "ASYNC_FLUSH: flush whatever is dirty at least this often, ms"),
    INT(flushIntervalConsumeQueue, "1000", 1, 60000,
        "ms between ConsumeQueue/index flushes and checkpoints"),
    INT(flushConsumeQueueLeastPages, "2", 0, 1 << 20,
        "flush a ConsumeQueue only with this many dirty pages"),
    INT(flushConsumeQueueThoroughInterval, "60000", 0, 3600000,
        "flush every queue at least this often, ms"),
    INT(syncFlushTimeout, "5000", 1, 600000, "SYNC_FLUSH: ms before FLUSH_DISK_TIMEOUT"),
    INT(maxMessageSize, "4194304", 1, 1 << 30, "largest message body, bytes"),
    BOOL(messageIndexEnable, "true", "build the IndexFile (lookup by key)"),
    INT(maxHashSlotNum, "5000000", 1, 1 << 28, "IndexFile hash slots per file"),
    INT(maxIndexNum, "20000000", 2, 1 << 28, "IndexFile entries per file"),
    INT(fileReservedTime, "72", 0, 1 << 20, "hours a CommitLog segment is kept"),
    STR(deleteWhen, "04", "hours (;-separated) at which expired segments are deleted"),
    INT(cleanResourceInterval, "10000", 10, 3600000, "ms between expiry checks"),
    INT(diskMaxUsedSpaceRatio, "75", 10, 95,
        "above this disk use %, delete expired segments at any hour"),
    INT(diskSpaceWarningLevelRatio, "90", 10, 99, "above this disk use %, refuse appends"),
    INT(diskSpaceCleanForciblyRatio, "85", 10, 95,
        "with cleanFileForciblyEnable: above this %, delete unexpired segments"),
    BOOL(cleanFileForciblyEnable, "false",
         "opt in to deleting UNEXPIRED (maybe unconsumed) segments under disk pressure"),
    INT(deleteFileBatchMax, "10", 1, 1000, "segments deleted per expiry round"),
    BOOL(checkCRCOnRecover, "true", "check body and record CRCs during recovery"),
    {"writeWithoutMmap", CONF_ENUM, F(writeWithoutMmap), 0, "auto", 0, 0, wwm_names, 0,
     "append with pwrite(2) (true) or by copying into the mapped segment (false); auto: "
     "pwrite under SYNC_FLUSH (its fdatasync is several times faster), copy under ASYNC_FLUSH"},
    BOOL(enabledAppendPropCRC, "true",
         "append the whole-record CRC property __CRC32# (do not turn on for a store written "
         "without it)"),
    STR(storeHost, "127.0.0.1:10911", "address written as STOREHOST in records"),
    {"debugSyncDelayMs", CONF_INT, F(debugSyncDelayMs), 0, "0", 0, 600000, NULL, CONF_HIDDEN,
     "test only: sleep before each CommitLog sync"},
    {"debugSyncFailAfter", CONF_INT, F(debugSyncFailAfter), 0, "0", 0, INT32_MAX, NULL, CONF_HIDDEN,
     "test only: every CommitLog sync after the Nth fails with EIO"},
    CONF_ROW_END,
};

void store_config_defaults(struct store_config *cfg)
{
    conf_defaults(store_conf_defs, cfg);
}
