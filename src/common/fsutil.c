/* File helpers. fs_replace() is the one way small state files are written: a crash at any
 * point leaves either the old or the new content in place, never a torn file. */
#include "common/fsutil.h"

#include "common/alloc.h"
#include "common/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int fs_pread_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return FERRY_ECORRUPT;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* mkdir @path (NUL-terminated, no trailing '/'); when it creates the directory, fsync its
 * parent so that the new entry survives a power cut (files later made durable inside it would
 * otherwise vanish with it). 0, or -errno. */
static int mkdir_durable(char *path)
{
    if (mkdir(path, 0755) != 0)
        return errno == EEXIST ? 0 : -errno;
    char *slash = strrchr(path, '/');
    if (!slash)
        return fs_fsync_dir(".");
    if (slash == path)
        return fs_fsync_dir("/");
    *slash = 0;
    int rc = fs_fsync_dir(path);
    *slash = '/';
    return rc;
}

int fs_mkdirs(const char *path)
{
    char tmp[FERRY_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = 0;
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        int rc = mkdir_durable(tmp);
        if (rc)
            return rc;
        if (!c)
            return 0;
        *p = '/';
    }
}

static void dir_of(const char *path, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, cap, ".");
}

int fs_replace(const char *path, const void *buf, size_t len)
{
    char tmp[FERRY_PATH_MAX], bak[FERRY_PATH_MAX], dir[FERRY_PATH_MAX];
    int fd = -1, rc;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp ||
        snprintf(bak, sizeof bak, "%s.bak", path) >= (int)sizeof bak)
        return -ENAMETOOLONG;
    dir_of(path, dir, sizeof dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if ((rc = fs_pwrite_all(fd, buf, len, 0)) != 0)
        goto out;
    if (fsync(fd) != 0) {
        rc = -errno;
        goto out;
    }
    /* Keep the previous version as .bak: a hard link is atomic and costs no copy. */
    if (access(path, F_OK) == 0) {
        unlink(bak);
        if (link(path, bak) != 0) {
            rc = -errno;
            goto out;
        }
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto out;
    }
    rc = fs_fsync_dir(dir);
out:
    close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

static int read_one(const char *path, char **out, size_t *outlen, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if ((size_t)st.st_size > cap) {
        close(fd);
        return -EFBIG;
    }
    char *buf = ferry_malloc((size_t)st.st_size + 1);
    int rc = fs_pread_all(fd, buf, (size_t)st.st_size, 0);
    close(fd);
    if (rc != 0) {
        ferry_free(buf);
        return rc;
    }
    buf[st.st_size] = 0;
    *out = buf;
    *outlen = (size_t)st.st_size;
    return 0;
}

int fs_read_file(const char *path, int use_bak, char **out, size_t *outlen, size_t cap)
{
    int rc = read_one(path, out, outlen, cap);
    if ((rc == 0 && *outlen > 0) || !use_bak)
        return rc;
    char bak[FERRY_PATH_MAX], *bbuf;
    size_t blen;
    snprintf(bak, sizeof bak, "%s.bak", path);
    if (read_one(bak, &bbuf, &blen, cap) != 0)
        return rc; /* keep what @path gave: an empty buffer, or its error */
    if (rc == 0)
        ferry_free(*out);
    *out = bbuf;
    *outlen = blen;
    return 0;
}

int fs_space(const char *path, uint64_t *free_bytes, uint64_t *total_bytes)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return -errno;
    *free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    *total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    return 0;
}

int fs_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : -errno;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[FERRY_PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        int r = fs_remove_tree(sub);
        if (r && !rc)
            rc = r;
    }
    closedir(d);
    if (rmdir(path) != 0 && !rc)
        rc = -errno;
    return rc;
}
