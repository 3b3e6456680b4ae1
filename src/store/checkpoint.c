/* The checkpoint file and the queue table.
 *
 * checkpoint: 4096 bytes, RocketMQ's layout (big-endian): 0 physicMsgTimestamp,
 * 8 logicsMsgTimestamp, 16 indexMsgTimestamp, 24 masterFlushedOffset (0), 32 confirmPhyOffset,
 * then FerryMQ's own fields: 40 dispatchedPhyOffset (every record below it has durable queue
 * and index entries: recovery starts there, not at a timestamp), 48 "FERRYCK1",
 * 56 CRC32 of bytes 0..55. Written whole with tmp + fsync + rename, so it is never torn.
 *
 * queues: text, one "topic queueId entries" line per queue, written with the checkpoint. It
 * is a lower bound on each queue's length, so recovery notices a queue whose files were
 * deleted or cut and rebuilds it from the CommitLog. */
#include "store/store_int.h"

#include "common/alloc.h"
#include "common/bytes.h"
#include "common/crc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK_SIZE  4096
#define CK_MAGIC "FERRYCK1"

int checkpoint_read(const char *path, struct checkpoint *ck)
{
    char *buf;
    size_t len;
    memset(ck, 0, sizeof *ck);
    int rc = fs_read_file(path, 1, &buf, &len, 1 << 20);
    if (rc)
        return rc;
    const uint8_t *p = (const uint8_t *)buf;
    if (len != CK_SIZE || memcmp(p + 48, CK_MAGIC, 8) != 0 ||
        be32_get(p + 56) != crc32_masked(p, 56)) {
        ferry_free(buf);
        return FERRY_ECORRUPT;
    }
    ck->phys_ts = (int64_t)be64_get(p);
    ck->logics_ts = (int64_t)be64_get(p + 8);
    ck->index_ts = (int64_t)be64_get(p + 16);
    ck->confirm = (int64_t)be64_get(p + 32);
    ck->dispatched = (int64_t)be64_get(p + 40);
    ferry_free(buf);
    return 0;
}

int checkpoint_write(const char *path, const struct checkpoint *ck)
{
    uint8_t buf[CK_SIZE] = {0};
    be64_put(buf, (uint64_t)ck->phys_ts);
    be64_put(buf + 8, (uint64_t)ck->logics_ts);
    be64_put(buf + 16, (uint64_t)ck->index_ts);
    be64_put(buf + 32, (uint64_t)ck->confirm);
    be64_put(buf + 40, (uint64_t)ck->dispatched);
    memcpy(buf + 48, CK_MAGIC, 8);
    be32_put(buf + 56, crc32_masked(buf, 56));
    return fs_replace(path, buf, sizeof buf);
}

struct qt_buf {
    char *p;
    size_t len, cap;
};

static void qt_line(struct qstate *qs, void *arg)
{
    struct qt_buf *b = arg;
    if (b->cap - b->len < 200) {
        b->cap = b->cap * 2 + 4096;
        b->p = ferry_realloc(b->p, b->cap);
    }
    b->len += (size_t)snprintf(b->p + b->len, b->cap - b->len, "%s %d %" PRId64 "\n", qs->topic,
                               qs->qid, cq_max_index(qs->cq));
}

int qtable_write(store_t *st)
{
    struct qt_buf b = {ferry_malloc(4096), 0, 4096};
    store_foreach_queue(st, qt_line, &b);
    int rc = fs_replace(st->qtable_path, b.p, b.len);
    ferry_free(b.p);
    return rc;
}

int qtable_read(store_t *st,
                void (*fn)(store_t *st, const char *topic, int32_t qid, int64_t entries, void *arg),
                void *arg)
{
    char *buf;
    size_t len;
    int rc = fs_read_file(st->qtable_path, 1, &buf, &len, 256u << 20);
    if (rc)
        return rc == -ENOENT ? 0 : rc;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char topic[128];
        int qid;
        long long entries;
        if (sscanf(line, "%127s %d %lld", topic, &qid, &entries) == 3 && qid >= 0 && entries >= 0)
            fn(st, topic, qid, entries, arg);
    }
    ferry_free(buf);
    return 0;
}
