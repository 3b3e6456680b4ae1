/* powercut: an LD_PRELOAD shim that keeps a "durable image" of a directory tree.
 *
 * Active for paths under $POWERCUT_ROOT; the image lives under $POWERCUT_SHADOW:
 *   content/<key>   durable bytes of one file object (key = "<ino>-<pid>-<n>", or "<ino>-0"
 *                   for files that existed when the shim started)
 *   dirs/<rel>.pcd  durable entries of one directory (rel = path below the root with '/'
 *                   turned into '%', "@" for the root): lines "f <name> <key>" / "d <name>"
 * The model (tests/powercut/README.md): a file's durable content is its content at its last
 * fsync/fdatasync/msync(MS_SYNC)/syncfs; a directory's durable entries are its entries at its
 * last fsync. Both are recorded before the intercepted call returns, so a kill -9 at any
 * moment leaves a valid image. powercut-apply turns (live dir, image) into the after-the-cut
 * tree.
 *
 * Fault switch for showing that the tests can fail: POWERCUT_FAULT=lag makes every file sync
 * but the first one of each file record the content of the previous sync of that file (the
 * last sync before the cut is lost).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define PC_PAGE 4096

static char g_root[PATH_MAX];
static size_t g_root_len;
static char g_shadow[PATH_MAX];
static int g_active;
static int g_fault_lag;
/* Recursive: free() inside a locked section may munmap, which takes it again. */
static pthread_mutex_t g_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static unsigned long g_gen;

/* ---- real functions ---------------------------------------------------------------------- */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_msync)(void *, size_t, int);
static int (*real_syncfs)(int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);

static void *sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "powercut: dlsym(%s) failed\n", name);
        abort();
    }
    return p;
}

static void load_syms(void)
{
    real_open = sym("open");
    real_open64 = sym("open64");
    real_openat = sym("openat");
    real_openat64 = sym("openat64");
    real_creat = sym("creat");
    real_creat64 = sym("creat64");
    real_fsync = sym("fsync");
    real_fdatasync = sym("fdatasync");
    real_msync = sym("msync");
    real_syncfs = sym("syncfs");
    real_mmap = sym("mmap");
    real_mmap64 = sym("mmap64");
    real_munmap = sym("munmap");
}

/* ---- small helpers (all I/O here goes to the real functions) ----------------------------- */

static void die(const char *what, const char *path)
{
    fprintf(stderr, "powercut: %s %s: %s\n", what, path ? path : "", strerror(errno));
    abort(); /* an image we cannot keep is worse than no test */
}

static int xopen(const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = real_open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

static void write_all(int fd, const void *buf, size_t len, off_t off, const char *path)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("pwrite", path);
        p += n;
        len -= (size_t)n;
        off += n;
    }
}

static size_t read_full(int fd, void *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* Makes @dst's bytes and size equal to @src's, writing only the pages that differ. */
static void copy_changed(int src, int dst, const char *dst_path)
{
    struct stat ss, ds;
    if (fstat(src, &ss) != 0 || fstat(dst, &ds) != 0)
        die("fstat", dst_path);
    static uint8_t a[16 * PC_PAGE], b[16 * PC_PAGE]; /* under g_mu */
    for (off_t off = 0; off < ss.st_size; off += (off_t)sizeof a) {
        size_t n = read_full(src, a, sizeof a, off);
        if (n == 0)
            break;
        size_t m = off < ds.st_size ? read_full(dst, b, n, off) : 0;
        for (size_t p = 0; p < n; p += PC_PAGE) {
            size_t len = n - p < PC_PAGE ? n - p : PC_PAGE;
            if (p + len <= m && memcmp(a + p, b + p, len) == 0)
                continue;
            write_all(dst, a + p, len, off + (off_t)p, dst_path);
        }
    }
    if (ds.st_size != ss.st_size && ftruncate(dst, ss.st_size) != 0)
        die("ftruncate", dst_path);
}

/* Path of @fd if it is under the root (else 0). @rel gets the part below the root ("" for it). */
static int fd_rel(int fd, char rel[PATH_MAX])
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = 0;
    if (strncmp(path, g_root, g_root_len) != 0 || (path[g_root_len] && path[g_root_len] != '/'))
        return 0;
    snprintf(rel, PATH_MAX, "%s", path[g_root_len] ? path + g_root_len + 1 : "");
    return 1;
}

static void dir_manifest_path(const char *rel, char out[PATH_MAX])
{
    char enc[PATH_MAX];
    snprintf(enc, sizeof enc, "%s", *rel ? rel : "@");
    for (char *p = enc; *p; p++)
        if (*p == '/')
            *p = '%';
    snprintf(out, PATH_MAX, "%s/dirs/%s.pcd", g_shadow, enc);
}

/* ---- inode -> content key ---------------------------------------------------------------- */

struct keyent {
    dev_t dev;
    ino_t ino;
    char key[64];
};
static struct keyent *g_keys;
static size_t g_nkeys, g_keys_cap;

static struct keyent *key_find(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < g_nkeys; i++)
        if (g_keys[i].dev == dev && g_keys[i].ino == ino)
            return &g_keys[i];
    return NULL;
}

/* The key of a file object; @fresh: it was just created (a new object even if the inode
 * number is reused). @locks g_mu */
static const char *key_of(dev_t dev, ino_t ino, int fresh)
{
    struct keyent *e = key_find(dev, ino);
    if (!e) {
        if (g_nkeys == g_keys_cap) {
            g_keys_cap = g_keys_cap ? g_keys_cap * 2 : 256;
            g_keys = realloc(g_keys, g_keys_cap * sizeof *g_keys);
            if (!g_keys)
                die("realloc", NULL);
        }
        e = &g_keys[g_nkeys++];
        e->dev = dev;
        e->ino = ino;
        snprintf(e->key, sizeof e->key, "%llu-0", (unsigned long long)ino);
    }
    if (fresh)
        snprintf(e->key, sizeof e->key, "%llu-%ld-%lu", (unsigned long long)ino, (long)getpid(),
                 ++g_gen);
    return e->key;
}

/* ---- syncs ------------------------------------------------------------------------------- */

/* Records @fd's current content as the durable content of its object. @locks g_mu */
static void sync_file(int fd, const struct stat *st)
{
    char cpath[PATH_MAX], lpath[64];
    const char *key = key_of(st->st_dev, st->st_ino, 0);
    snprintf(cpath, sizeof cpath, "%s/content/%s", g_shadow, key);
    snprintf(lpath, sizeof lpath, "/proc/self/fd/%d", fd);
    int src = xopen(lpath, O_RDONLY, 0);
    if (src < 0)
        die("reopen", lpath);
    int dst = xopen(cpath, O_RDWR | O_CREAT, 0644);
    if (dst < 0)
        die("open", cpath);
    if (g_fault_lag) {
        /* durable <- previous sync's content; pending <- this one */
        char ppath[PATH_MAX + 8];
        snprintf(ppath, sizeof ppath, "%s.pending", cpath);
        int pend = xopen(ppath, O_RDWR, 0);
        if (pend >= 0) {
            copy_changed(pend, dst, cpath);
        } else { /* the object's first sync is kept (a segment's zero fill) */
            if ((pend = xopen(ppath, O_RDWR | O_CREAT, 0644)) < 0)
                die("open", ppath);
            copy_changed(src, dst, cpath);
        }
        copy_changed(src, pend, ppath);
        close(pend);
    } else {
        copy_changed(src, dst, cpath);
    }
    close(dst);
    close(src);
}

/* Records the entries of directory @fd (@rel below the root) as its durable entries. A file
 * whose content was never synced is durable as an empty file. @locks g_mu */
static void sync_dir(int fd, const char *rel)
{
    int dfd = dup(fd);
    if (dfd < 0)
        die("dup", rel);
    DIR *d = fdopendir(dfd);
    if (!d)
        die("fdopendir", rel);
    rewinddir(d);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        die("malloc", NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        char line[NAME_MAX + 100];
        int n;
        if (S_ISDIR(st.st_mode)) {
            n = snprintf(line, sizeof line, "d %s\n", e->d_name);
        } else if (S_ISREG(st.st_mode)) {
            const char *key = key_of(st.st_dev, st.st_ino, 0);
            char cpath[PATH_MAX];
            snprintf(cpath, sizeof cpath, "%s/content/%s", g_shadow, key);
            int c = xopen(cpath, O_RDWR | O_CREAT, 0644); /* never synced: empty */
            if (c < 0)
                die("open", cpath);
            close(c);
            n = snprintf(line, sizeof line, "f %s %s\n", e->d_name, key);
        } else {
            continue;
        }
        while (len + (size_t)n + 1 > cap) {
            cap *= 2;
            if (!(buf = realloc(buf, cap)))
                die("realloc", NULL);
        }
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
    }
    closedir(d);
    char mpath[PATH_MAX], tmp[PATH_MAX + 8];
    dir_manifest_path(rel, mpath);
    snprintf(tmp, sizeof tmp, "%s.tmp", mpath);
    int out = xopen(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0)
        die("open", tmp);
    write_all(out, buf, len, 0, tmp);
    close(out);
    if (rename(tmp, mpath) != 0)
        die("rename", mpath);
    free(buf);
}

/* The shim's view of a sync of @fd. */
static void on_sync(int fd)
{
    if (!g_active)
        return;
    char rel[PATH_MAX];
    if (!fd_rel(fd, rel))
        return;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    pthread_mutex_lock(&g_mu);
    if (S_ISDIR(st.st_mode))
        sync_dir(fd, rel);
    else if (S_ISREG(st.st_mode))
        sync_file(fd, &st);
    pthread_mutex_unlock(&g_mu);
}

/* ---- mappings (for msync) ---------------------------------------------------------------- */

struct mapent {
    uintptr_t addr;
    size_t len;
    int fd; /* a dup of the mapped fd, or -1 */
};
static struct mapent *g_maps;
static size_t g_nmaps, g_maps_cap;

static void map_add(void *addr, size_t len, int fd)
{
    char rel[PATH_MAX];
    if (!g_active || addr == MAP_FAILED || fd < 0 || !fd_rel(fd, rel))
        return;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return;
    pthread_mutex_lock(&g_mu);
    if (g_nmaps == g_maps_cap) {
        g_maps_cap = g_maps_cap ? g_maps_cap * 2 : 64;
        if (!(g_maps = realloc(g_maps, g_maps_cap * sizeof *g_maps)))
            die("realloc", NULL);
    }
    g_maps[g_nmaps++] = (struct mapent){(uintptr_t)addr, len, dfd};
    pthread_mutex_unlock(&g_mu);
}

static void map_del(void *addr)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nmaps; i++) {
        if (g_maps[i].addr == (uintptr_t)addr) {
            close(g_maps[i].fd);
            g_maps[i] = g_maps[--g_nmaps];
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
}

static int map_fd_of(void *addr)
{
    int fd = -1;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nmaps; i++)
        if ((uintptr_t)addr >= g_maps[i].addr && (uintptr_t)addr < g_maps[i].addr + g_maps[i].len)
            fd = fcntl(g_maps[i].fd, F_DUPFD_CLOEXEC, 0);
    pthread_mutex_unlock(&g_mu);
    return fd;
}

/* ---- start-up: the existing tree is the initial durable image ---------------------------- */

static void snapshot_dir(const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s%s", g_root, *rel ? "/" : "", rel);
    int fd = xopen(path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return;
    DIR *d = fdopendir(dup(fd));
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (S_ISDIR(st.st_mode)) {
            snapshot_dir(sub);
        } else if (S_ISREG(st.st_mode)) {
            int f = openat(fd, e->d_name, O_RDONLY | O_CLOEXEC);
            if (f >= 0) {
                sync_file(f, &st);
                close(f);
            }
        }
    }
    if (d)
        closedir(d);
    sync_dir(fd, rel);
    close(fd);
}

__attribute__((constructor)) static void powercut_init(void)
{
    load_syms();
    const char *root = getenv("POWERCUT_ROOT"), *shadow = getenv("POWERCUT_SHADOW");
    if (!root || !*root || !shadow || !*shadow)
        return;
    /* The root may not exist yet: resolve its parent. */
    char parent[PATH_MAX], base[PATH_MAX], rp[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", root);
    char *slash = strrchr(parent, '/');
    if (!slash || !slash[1]) {
        fprintf(stderr, "powercut: POWERCUT_ROOT must be an absolute path without a trailing /\n");
        abort();
    }
    snprintf(base, sizeof base, "%s", slash + 1);
    if (slash == parent)
        parent[1] = 0;
    else
        *slash = 0;
    if (!realpath(parent, rp))
        die("realpath", parent);
    snprintf(g_root, sizeof g_root, "%s/%s", strcmp(rp, "/") ? rp : "", base);
    g_root_len = strlen(g_root);
    snprintf(g_shadow, sizeof g_shadow, "%s", shadow);
    const char *fault = getenv("POWERCUT_FAULT");
    g_fault_lag = fault && !strcmp(fault, "lag");
    char p[PATH_MAX];
    mkdir(g_shadow, 0755);
    snprintf(p, sizeof p, "%s/content", g_shadow);
    int fresh_image = mkdir(p, 0755) == 0;
    snprintf(p, sizeof p, "%s/dirs", g_shadow);
    mkdir(p, 0755);
    if (fresh_image)
        snapshot_dir("");
    g_active = 1;
}

/* ---- intercepted entry points ------------------------------------------------------------ */

static int path_under_root(int dirfd, const char *path)
{
    if (!g_active || !path)
        return 0;
    if (path[0] == '/')
        return strncmp(path, g_root, g_root_len) == 0 &&
               (path[g_root_len] == 0 || path[g_root_len] == '/');
    (void)dirfd;
    return 1; /* relative: decide after the open from the fd */
}

/* Called around an open with O_CREAT: a file that did not exist before is a new object. */
static int after_open(int fd, int existed)
{
    if (fd < 0 || existed)
        return fd;
    int saved = errno;
    char rel[PATH_MAX];
    struct stat st;
    if (fd_rel(fd, rel) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        pthread_mutex_lock(&g_mu);
        key_of(st.st_dev, st.st_ino, 1);
        pthread_mutex_unlock(&g_mu);
    }
    errno = saved;
    return fd;
}

static int existed_before(int dirfd, const char *path, int flags)
{
    if (!(flags & O_CREAT) || !path_under_root(dirfd, path))
        return 1;
    struct stat st;
    int saved = errno, r = fstatat(dirfd, path, &st, 0);
    errno = saved;
    return r == 0;
}

#define OPEN_MODE(flags, mode)                                                                     \
    do {                                                                                           \
        if ((flags) & (O_CREAT | __O_TMPFILE)) {                                                   \
            va_list ap;                                                                            \
            va_start(ap, flags);                                                                   \
            mode = (mode_t)va_arg(ap, int);                                                        \
            va_end(ap);                                                                            \
        }                                                                                          \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, mode);
    if (!real_open)
        load_syms();
    int existed = existed_before(AT_FDCWD, path, flags);
    return after_open(real_open(path, flags, mode), existed);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, mode);
    if (!real_open64)
        load_syms();
    int existed = existed_before(AT_FDCWD, path, flags);
    return after_open(real_open64(path, flags, mode), existed);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, mode);
    if (!real_openat)
        load_syms();
    int existed = existed_before(dirfd, path, flags);
    return after_open(real_openat(dirfd, path, flags, mode), existed);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, mode);
    if (!real_openat64)
        load_syms();
    int existed = existed_before(dirfd, path, flags);
    return after_open(real_openat64(dirfd, path, flags, mode), existed);
}

int __open_2(const char *path, int flags)
{
    return open(path, flags);
}

int __open64_2(const char *path, int flags)
{
    return open64(path, flags);
}

int creat(const char *path, mode_t mode)
{
    if (!real_creat)
        load_syms();
    int existed = existed_before(AT_FDCWD, path, O_CREAT);
    return after_open(real_creat(path, mode), existed);
}

int creat64(const char *path, mode_t mode)
{
    if (!real_creat64)
        load_syms();
    int existed = existed_before(AT_FDCWD, path, O_CREAT);
    return after_open(real_creat64(path, mode), existed);
}

int fsync(int fd)
{
    if (!real_fsync)
        load_syms();
    int rc = real_fsync(fd);
    if (rc == 0)
        on_sync(fd);
    return rc;
}

int fdatasync(int fd)
{
    if (!real_fdatasync)
        load_syms();
    int rc = real_fdatasync(fd);
    if (rc == 0)
        on_sync(fd);
    return rc;
}

int syncfs(int fd)
{
    if (!real_syncfs)
        load_syms();
    int rc = real_syncfs(fd);
    if (rc == 0 && g_active) {
        /* Everything under the root: re-snapshot it. */
        pthread_mutex_lock(&g_mu);
        snapshot_dir("");
        pthread_mutex_unlock(&g_mu);
    }
    return rc;
}

int msync(void *addr, size_t len, int flags)
{
    if (!real_msync)
        load_syms();
    int rc = real_msync(addr, len, flags);
    if (rc == 0 && (flags & MS_SYNC) && g_active) {
        int fd = map_fd_of(addr);
        if (fd >= 0) {
            on_sync(fd); /* the whole file: at least what msync made durable */
            close(fd);
        }
    }
    return rc;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (!real_mmap)
        load_syms();
    void *p = real_mmap(addr, len, prot, flags, fd, off);
    if ((flags & MAP_SHARED) && (prot & PROT_WRITE))
        map_add(p, len, fd);
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (!real_mmap64)
        load_syms();
    void *p = real_mmap64(addr, len, prot, flags, fd, off);
    if ((flags & MAP_SHARED) && (prot & PROT_WRITE))
        map_add(p, len, fd);
    return p;
}

int munmap(void *addr, size_t len)
{
    if (!real_munmap)
        load_syms();
    if (g_active && g_nmaps)
        map_del(addr);
    return real_munmap(addr, len);
}
