#include "testlib.h"

#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

void test_tmpdir(char *out, size_t cap, const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/ferry-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

void test_rmdir(const char *path)
{
    fs_remove_tree(path);
}

int test_time_mult(void)
{
    const char *m = getenv("FERRY_TEST_TIMEOUT_MULTIPLIER");
    int v = m ? atoi(m) : 1;
    return v > 0 ? v : 1;
}

uint64_t test_seed(void)
{
    const char *s = getenv("FERRY_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (seed == 0)
        seed = 1;
    fprintf(stderr, "test seed: FERRY_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

uint64_t test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void read_back(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

int test_run_program(const char *bin, const char *const *argv, const char *dir,
                     const char *const *unset, struct test_run *r)
{
    char o[4200], e[4200];
    snprintf(o, sizeof o, "%s/run-stdout", dir);
    snprintf(e, sizeof e, "%s/run-stderr", dir);
    int fo = open(o, O_RDWR | O_CREAT | O_TRUNC, 0600),
        fe = open(e, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fo < 0 || fe < 0) {
        int rc = -errno;
        if (fo >= 0)
            close(fo);
        if (fe >= 0)
            close(fe);
        return rc;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int rc = -errno;
        close(fo);
        close(fe);
        return rc;
    }
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        for (const char *const *u = unset; u && *u; u++)
            unsetenv(*u);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        int rc = -errno;
        close(fo);
        close(fe);
        return rc;
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    read_back(fo, r->out, sizeof r->out);
    read_back(fe, r->err, sizeof r->err);
    return 0;
}
