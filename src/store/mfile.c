/* Mapped files. Creation is crash-safe (tmp + rename); zero-fill writes real blocks, which the
 * first fdatasync into the file then does not have to convert from unwritten extents. */
#include "store/mfile.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void mfile_name(int64_t start, char out[21])
{
    snprintf(out, 21, "%020" PRId64, start);
}

static int map_fd(int fd, const char *path, int64_t start, int64_t size, struct mfile **out)
{
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    struct mfile *mf = ferry_calloc(1, sizeof *mf);
    memcpy(mf->path, path, strnlen(path, sizeof mf->path - 1));
    mf->fd = fd;
    mf->base = base;
    mf->start = start;
    mf->size = size;
    atomic_init(&mf->refs, 1);
    atomic_init(&mf->retired, 0);
    *out = mf;
    return 0;
}

static int zero_fill(int fd, int64_t size)
{
    static const uint8_t zeros[1 << 16];
    for (int64_t off = 0; off < size; off += (int64_t)sizeof zeros) {
        size_t n = size - off < (int64_t)sizeof zeros ? (size_t)(size - off) : sizeof zeros;
        int rc = fs_pwrite_all(fd, zeros, n, off);
        if (rc)
            return rc;
    }
    return 0;
}

int mfile_create(const char *dir, int64_t start, int64_t size, enum mfile_alloc alloc,
                 struct mfile **out)
{
    char name[21], path[FERRY_PATH_MAX], tmp[FERRY_PATH_MAX + 8];
    if (strlen(dir) + 22 >= sizeof path)
        return -ENAMETOOLONG;
    mfile_name(start, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc;
    if (alloc == MFILE_ZERO_FILL)
        rc = zero_fill(fd, size);
    else
        rc = -posix_fallocate(fd, 0, size);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fs_fsync_dir(dir);
    if (rc == 0)
        rc = map_fd(fd, path, start, size, out);
    if (rc != 0) {
        close(fd);
        unlink(tmp);
    }
    return rc;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

void mfile_prefault(struct mfile *mf)
{
    if (madvise(mf->base, (size_t)mf->size, MADV_POPULATE_READ) == 0)
        return;
    /* Older kernels: one read per page does the same, a little slower. */
    long page = sysconf(_SC_PAGESIZE);
    for (int64_t off = 0; off < mf->size; off += page)
        (void)*(volatile const uint8_t *)(mf->base + off);
}

int mfile_open(const char *path, int64_t start, int64_t size, struct mfile **out)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (st.st_size != size) {
        log_error(LOG_STORE, "%s: size %lld, expected %lld; refusing to map it", path,
                  (long long)st.st_size, (long long)size);
        close(fd);
        return FERRY_ECORRUPT;
    }
    int rc = map_fd(fd, path, start, size, out);
    if (rc)
        close(fd);
    return rc;
}

void mfile_ref(struct mfile *mf)
{
    atomic_fetch_add_explicit(&mf->refs, 1, memory_order_relaxed);
}

void mfile_unref(struct mfile *mf)
{
    if (!mf || atomic_fetch_sub_explicit(&mf->refs, 1, memory_order_acq_rel) != 1)
        return;
    munmap(mf->base, (size_t)mf->size);
    close(mf->fd);
    if (atomic_load(&mf->retired) && unlink(mf->path) != 0 && errno != ENOENT)
        log_warn(LOG_STORE, "unlink %s: %s", mf->path, strerror(errno));
    ferry_free(mf);
}

void mfile_retire(struct mfile *mf)
{
    atomic_store(&mf->retired, 1);
    mfile_unref(mf);
}

int mfile_sync(struct mfile *mf)
{
    return fdatasync(mf->fd) == 0 ? 0 : -errno;
}
