/* powercut-apply LIVE SHADOW OUT [--torn SEED]
 *
 * Builds OUT, the tree as it is after a power cut: the durable directories and file contents
 * recorded by the powercut shim in SHADOW (see powercut.c and README.md). With --torn, some
 * pages written after their file's last sync are torn: for each such page (a page where the
 * live file differs from the durable content, the live file being the same object), with
 * probability 1/2 a random subset of its 512-byte sectors comes from the live file (seeded,
 * reproducible). Prints one summary line. Exit status 0, or 1 with a message. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE   4096
#define SECTOR 512

static const char *g_live, *g_shadow, *g_out;
static int g_torn;
static uint64_t g_rng;
static long g_files, g_dirs, g_torn_pages, g_torn_sectors, g_changed_pages;
static long long g_bytes;

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "powercut-apply: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail("fstat", path);
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        fail("malloc", path);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("read", path);
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    *len = got;
    return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        fail("create", path);
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("write", path);
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0)
        fail("close", path);
}

static void tear(char *data, size_t len, const char *live_path, const char *key)
{
    struct stat st;
    if (stat(live_path, &st) != 0 || (uint64_t)st.st_ino != strtoull(key, NULL, 10))
        return; /* not the same object any more: its later writes are elsewhere */
    size_t llen;
    char *live = slurp(live_path, &llen);
    if (!live)
        return;
    size_t n = len < llen ? len : llen;
    for (size_t off = 0; off < n; off += PAGE) {
        size_t plen = n - off < PAGE ? n - off : PAGE;
        if (memcmp(data + off, live + off, plen) == 0)
            continue;
        g_changed_pages++;
        if (rnd() & 1)
            continue;
        g_torn_pages++;
        for (size_t s = 0; s < plen; s += SECTOR) {
            if (rnd() & 1) {
                size_t slen = plen - s < SECTOR ? plen - s : SECTOR;
                memcpy(data + off + s, live + off + s, slen);
                g_torn_sectors++;
            }
        }
    }
    free(live);
}

/* Rebuilds directory @rel ("" = root) from its manifest. */
static void build_dir(const char *rel)
{
    char enc[PATH_MAX], mpath[PATH_MAX + 32], out[PATH_MAX * 2];
    snprintf(enc, sizeof enc, "%s", *rel ? rel : "@");
    for (char *p = enc; *p; p++)
        if (*p == '/')
            *p = '%';
    snprintf(mpath, sizeof mpath, "%s/dirs/%s.pcd", g_shadow, enc);
    snprintf(out, sizeof out, "%s%s%s", g_out, *rel ? "/" : "", rel);
    if (mkdir(out, 0755) != 0)
        fail("mkdir", out);
    g_dirs++;
    size_t mlen;
    char *man = slurp(mpath, &mlen);
    if (!man)
        return; /* never synced: an empty directory */
    char *save = NULL;
    for (char *line = strtok_r(man, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char kind = line[0], *name = line + 2, *key = NULL;
        if (strlen(line) < 3 || line[1] != ' ')
            continue;
        if (kind == 'f') {
            char *sp = strrchr(name, ' ');
            if (!sp)
                continue;
            *sp = 0;
            key = sp + 1;
        }
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name);
        if (kind == 'd') {
            build_dir(sub);
            continue;
        }
        char cpath[PATH_MAX * 2], opath[PATH_MAX * 2], lpath[PATH_MAX * 2];
        snprintf(cpath, sizeof cpath, "%s/content/%s", g_shadow, key);
        snprintf(opath, sizeof opath, "%s/%s", g_out, sub);
        snprintf(lpath, sizeof lpath, "%s/%s", g_live, sub);
        size_t len = 0;
        char *data = slurp(cpath, &len);
        if (!data) {
            data = calloc(1, 1);
            len = 0;
        }
        if (g_torn)
            tear(data, len, lpath, key);
        spit(opath, data, len);
        free(data);
        g_files++;
        g_bytes += (long long)len;
    }
    free(man);
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 6 && !strcmp(argv[4], "--torn"))) {
        fprintf(stderr, "usage: powercut-apply LIVE SHADOW OUT [--torn SEED]\n");
        return 2;
    }
    g_live = argv[1];
    g_shadow = argv[2];
    g_out = argv[3];
    if (argc == 6) {
        g_torn = 1;
        g_rng = strtoull(argv[5], NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
    }
    build_dir("");
    printf("powercut-apply: %ld dirs, %ld files, %lld bytes durable; %ld pages changed after "
           "their last sync, %ld torn (%ld sectors from the live file)\n",
           g_dirs, g_files, g_bytes, g_changed_pages, g_torn_pages, g_torn_sectors);
    return 0;
}
