/* Expiry and disk space.
 *
 * A CommitLog segment (never the last one, never one not yet fully dispatched) is expired when
 * its mtime is older than fileReservedTime hours. Expired segments are deleted, oldest first
 * and stopping at the first unexpired one, at the deleteWhen hours, at any hour once disk use
 * passes diskMaxUsedSpaceRatio, or on request. Unexpired segments are deleted only when the
 * operator opted in with cleanFileForciblyEnable=true and disk use passes
 * diskSpaceCleanForciblyRatio (RocketMQ deletes them by default; FerryMQ does not, since that
 * silently drops messages nobody consumed). ConsumeQueue and index files wholly below the new
 * minimum go with them.
 *
 * Above diskSpaceWarningLevelRatio appends are refused (FERRY_EDISKFULL) until usage drops. */
#include "store/store_int.h"

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Disk use of the CommitLog's file system, %; also kept for store_metrics(). */
static int disk_ratio(store_t *st)
{
    uint64_t free_b, total_b;
    if (fs_space(st->cl_dir, &free_b, &total_b) != 0 || total_b == 0)
        return 0;
    atomic_store_explicit(&st->disk_total, (int64_t)total_b, memory_order_relaxed);
    atomic_store_explicit(&st->disk_free, (int64_t)free_b, memory_order_relaxed);
    return (int)((total_b - free_b) * 100 / total_b);
}

void expiry_check_disk(store_t *st)
{
    int ratio = disk_ratio(st);
    int full = ratio >= st->cfg.diskSpaceWarningLevelRatio;
    int was = atomic_exchange(&st->disk_full, full);
    if (full && !was)
        log_error(LOG_STORE,
                  "disk %d%% used (diskSpaceWarningLevelRatio=%d): refusing appends "
                  "until space is freed; nothing stored is touched",
                  ratio, st->cfg.diskSpaceWarningLevelRatio);
    else if (!full && was)
        log_info(LOG_STORE, "disk %d%% used: appends accepted again", ratio);
}

static int hour_matches(const char *when)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    const char *p = when;
    while (*p) {
        char *end;
        long h = strtol(p, &end, 10);
        if (end == p)
            break;
        if (h == tm.tm_hour)
            return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

struct qmin {
    int64_t min_phys;
};

static void drop_queue_files(struct qstate *qs, void *arg)
{
    cq_delete_below(qs->cq, ((struct qmin *)arg)->min_phys);
}

int expiry_run(store_t *st, int manual)
{
    int ratio = disk_ratio(st);
    int pressure = ratio >= st->cfg.diskMaxUsedSpaceRatio;
    int forced = st->cfg.cleanFileForciblyEnable && ratio >= st->cfg.diskSpaceCleanForciblyRatio;
    if (!manual && !pressure && !forced && !hour_matches(st->cfg.deleteWhen))
        return 0;
    int64_t reserved_ms = (int64_t)st->cfg.fileReservedTime * 3600 * 1000;
    int64_t now = clock_wall_ms();
    int64_t dispatched = atomic_load(&st->dispatched);
    int deleted = 0;
    while (deleted < st->cfg.deleteFileBatchMax) {
        pthread_rwlock_wrlock(&st->segs_lock);
        if (st->nsegs < 2) {
            pthread_rwlock_unlock(&st->segs_lock);
            break;
        }
        struct mfile *mf = st->segs[0];
        struct stat sb;
        int64_t mtime = stat(mf->path, &sb) == 0
                            ? (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000
                            : now;
        int expired = now - mtime >= reserved_ms;
        if ((!expired && !forced) || mf->start + mf->size > dispatched) {
            pthread_rwlock_unlock(&st->segs_lock);
            break;
        }
        memmove(st->segs, st->segs + 1, (size_t)(st->nsegs - 1) * sizeof *st->segs);
        st->nsegs--;
        atomic_store(&st->min_phys, st->segs[0]->start);
        pthread_rwlock_unlock(&st->segs_lock);
        log_info(LOG_STORE, "deleting %s segment %s (disk %d%% used)",
                 expired ? "expired" : "UNEXPIRED (cleanFileForciblyEnable)", mf->path, ratio);
        mfile_retire(mf);
        deleted++;
    }
    if (deleted) {
        struct qmin qm = {atomic_load(&st->min_phys)};
        store_foreach_queue(st, drop_queue_files, &qm);
        if (st->index)
            index_delete_below(st->index, qm.min_phys);
    }
    return deleted;
}
