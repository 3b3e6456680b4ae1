/* The mqnamesrv binary as a child process: config errors stop it with a message naming the key,
 * -p prints the effective config, unknown keys are warned about, and SIGTERM/SIGINT stop a
 * serving name server cleanly (exit 0; in the sanitizer build LeakSanitizer would fail the exit
 * status on a leak). Each child is reaped on every path; its output is printed on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testlib.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "remoting/client.h"
#include "remoting/codes.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MQNAMESRV_PATH
#error "MQNAMESRV_PATH must name the mqnamesrv binary"
#endif

extern char **environ;

#define OUT_CAP (256 * 1024)
#define READY   "name server ready on "

struct child {
    pid_t pid;
    int fd[2]; /* stdout, stderr read ends; -1 once at EOF */
    char buf[2][OUT_CAP];
    size_t len[2];
    int status;
    int exited;
};

/* The children of the running test, static so that a failed assertion (a longjmp out of the
 * test) still leaves them to teardown(), which kills and reaps them. */
static struct child kids[2];

static int ms(int v)
{
    return v * test_time_mult();
}

static void child_start(struct child *c, const char *conf, const char *extra)
{
    int out[2], err[2];
    posix_spawn_file_actions_t fa;
    char *argv[6];
    int n = 0;

    memset(c, 0, sizeof *c);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
    argv[n++] = (char *)MQNAMESRV_PATH;
    if (conf) {
        argv[n++] = (char *)"-c";
        argv[n++] = (char *)conf;
    }
    if (extra)
        argv[n++] = (char *)extra;
    argv[n] = NULL;
    assert_int_equal(posix_spawn(&c->pid, MQNAMESRV_PATH, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    c->fd[0] = out[0];
    c->fd[1] = err[0];
}

/* Read what is available within @timeout_ms into the buffers. */
static void child_pump(struct child *c, int timeout_ms)
{
    struct pollfd p[2];
    int n = 0, map[2];
    for (int i = 0; i < 2; i++)
        if (c->fd[i] >= 0) {
            p[n].fd = c->fd[i];
            p[n].events = POLLIN;
            map[n++] = i;
        }
    if (n == 0 || poll(p, (nfds_t)n, timeout_ms) <= 0)
        return;
    for (int k = 0; k < n; k++) {
        if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        int i = map[k];
        char tmp[4096];
        ssize_t r = read(c->fd[i], tmp, sizeof tmp);
        if (r <= 0) {
            close(c->fd[i]);
            c->fd[i] = -1;
            continue;
        }
        size_t room = OUT_CAP - 1 - c->len[i];
        size_t take = (size_t)r < room ? (size_t)r : room;
        memcpy(c->buf[i] + c->len[i], tmp, take);
        c->len[i] += take;
        c->buf[i][c->len[i]] = 0;
    }
}

static void child_dump(const struct child *c)
{
    print_message("---- mqnamesrv stdout ----\n%s\n---- mqnamesrv stderr ----\n%s\n----\n",
                  c->buf[0], c->buf[1]);
}

/* Pump until stderr holds @needle; 1 when it does. */
static int child_wait_stderr(struct child *c, const char *needle, int ms_)
{
    int64_t end = clock_mono_ms() + ms(ms_);
    while (!strstr(c->buf[1], needle)) {
        if (clock_mono_ms() > end || (c->fd[1] < 0))
            return strstr(c->buf[1], needle) != NULL;
        child_pump(c, 10);
    }
    return 1;
}

/* Pump until the child exits (and its pipes are drained); 1 when it did within @ms_. */
static int child_wait_exit(struct child *c, int ms_)
{
    int64_t end = clock_mono_ms() + ms(ms_);
    while (!c->exited || c->fd[0] >= 0 || c->fd[1] >= 0) {
        if (!c->exited && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
            c->exited = 1;
        if (clock_mono_ms() > end)
            return 0;
        child_pump(c, 10);
    }
    return 1;
}

/* Always reap: SIGKILL what is still running. */
static void child_reap(struct child *c)
{
    if (!c->exited) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &c->status, 0);
        c->exited = 1;
    }
    for (int i = 0; i < 2; i++)
        if (c->fd[i] >= 0) {
            close(c->fd[i]);
            c->fd[i] = -1;
        }
}

/* Run to completion and check the exit status. */
static void run_expect(struct child *c, const char *conf, const char *extra, int code)
{
    child_start(c, conf, extra);
    int ok = child_wait_exit(c, 20000);
    if (!ok || !WIFEXITED(c->status) || WEXITSTATUS(c->status) != code) {
        child_reap(c);
        child_dump(c);
        fail_msg("expected exit %d", code);
    }
    child_reap(c);
}

static void write_conf(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_bad_value_names_the_key(void **state)
{
    (void)state;
    char dir[512], conf[600];
    struct child *c = &kids[0];
    test_tmpdir(dir, sizeof dir, "nscli");
    snprintf(conf, sizeof conf, "%s/namesrv.conf", dir);

    write_conf(conf, "# a comment\nlistenPort=abc\n");
    run_expect(c, conf, NULL, 1);
    assert_non_null(strstr(c->buf[1], "listenPort=abc: expected an integer in [0, 65535]"));

    write_conf(conf, "brokerChannelExpiredTime = 5\n");
    run_expect(c, conf, NULL, 1);
    assert_non_null(strstr(c->buf[1], "brokerChannelExpiredTime=5"));

    write_conf(conf, "listenAddress=nowhere\n");
    run_expect(c, conf, NULL, 1);
    assert_non_null(strstr(c->buf[1], "listenAddress=nowhere"));

    run_expect(c, "/nonexistent/namesrv.conf", NULL, 1);
    assert_non_null(strstr(c->buf[1], "cannot open config /nonexistent/namesrv.conf"));

    run_expect(c, NULL, "--bogus", 2);
    assert_non_null(strstr(c->buf[1], "usage: mqnamesrv"));
    test_rmdir(dir);
}

static void test_print_config(void **state)
{
    (void)state;
    char dir[512], conf[600];
    struct child *c = &kids[0];
    test_tmpdir(dir, sizeof dir, "nscli");
    snprintf(conf, sizeof conf, "%s/namesrv.conf", dir);
    write_conf(conf, "listenPort=12345\nserverWorkerThreads=8\norderMessageEnable=true\n");
    run_expect(c, conf, "-p", 0);
    assert_non_null(strstr(c->buf[0], "listenPort=12345\n"));
    assert_non_null(strstr(c->buf[0], "orderMessageEnable=true\n"));
    assert_non_null(strstr(c->buf[0], "listenAddress=0.0.0.0\n"));
    assert_non_null(strstr(c->buf[0], "brokerChannelExpiredTime=120000\n"));
    assert_non_null(strstr(c->buf[0], "scanNotActiveBrokerInterval=10000\n"));
    assert_non_null(strstr(c->buf[1], "unknown key serverWorkerThreads ignored"));

    run_expect(c, NULL, "--doc-config", 0);
    assert_non_null(strstr(c->buf[0], "| `listenPort` | `9876` | 0 – 65535 |"));
    test_rmdir(dir);
}

static int parse_port(const char *log)
{
    const char *p = strstr(log, READY "127.0.0.1:");
    return p ? atoi(p + strlen(READY "127.0.0.1:")) : 0;
}

static void serve_then_signal(int sig, const char *signame)
{
    char dir[512], conf[600], text[1400], kvpath[700], addr[64], err[256];
    struct child *c = &kids[0];
    test_tmpdir(dir, sizeof dir, "nscli");
    snprintf(conf, sizeof conf, "%s/namesrv.conf", dir);
    snprintf(kvpath, sizeof kvpath, "%s/kvConfig.json", dir);
    snprintf(text, sizeof text, "listenAddress=127.0.0.1\nlistenPort=0\nkvConfigPath=%s\n", kvpath);
    write_conf(conf, text);

    child_start(c, conf, NULL);
    if (!child_wait_stderr(c, READY "127.0.0.1:", 20000)) {
        child_reap(c);
        child_dump(c);
        fail_msg("mqnamesrv did not start");
    }
    /* One line says the name server is ready, with its address. */
    assert_null(strstr(strstr(c->buf[1], READY) + 1, READY));
    int port = parse_port(c->buf[1]);
    assert_true(port > 0);

    /* It serves: a KV write (persisted) and a route query. */
    struct remoting_client_config cc;
    remoting_client_t *cli;
    struct rcmd req, *resp;
    remoting_client_config_init(&cc);
    assert_int_equal(remoting_client_new(&cc, &cli), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(remoting_client_connect(cli, addr, ms(5000), err, sizeof err), 0);
    rcmd_init_request(&req, REQ_PUT_KV_CONFIG);
    rcmd_ext_add(&req, "namespace", "n");
    rcmd_ext_add(&req, "key", "k");
    rcmd_ext_add(&req, "value", "v");
    assert_int_equal(remoting_client_invoke_sync(cli, &req, ms(5000), &resp), 0);
    assert_int_equal(resp->code, RESP_SUCCESS);
    rcmd_free(resp);
    rcmd_init_request(&req, REQ_GET_ROUTEINFO_BY_TOPIC);
    rcmd_ext_add(&req, "topic", "T");
    assert_int_equal(remoting_client_invoke_sync(cli, &req, ms(5000), &resp), 0);
    assert_int_equal(resp->code, RESP_TOPIC_NOT_EXIST);
    rcmd_free(resp);

    /* The signal stops it cleanly while a client is still connected. */
    assert_int_equal(kill(c->pid, sig), 0);
    int ok = child_wait_exit(c, 20000);
    remoting_client_free(cli);
    if (!ok || !WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
        child_reap(c);
        child_dump(c);
        fail_msg("mqnamesrv did not exit 0 after %s", signame);
    }
    child_reap(c);
    char want[64];
    snprintf(want, sizeof want, "%s received, shutting down", signame);
    assert_non_null(strstr(c->buf[1], want));
    assert_non_null(strstr(c->buf[1], "name server stopped"));

    char *kv;
    size_t len;
    assert_int_equal(fs_read_file(kvpath, 0, &kv, &len, 1 << 20), 0);
    assert_string_equal(kv, "{\"configTable\":{\"n\":{\"k\":\"v\"}}}");
    free(kv);
    test_rmdir(dir);
}

static void test_sigterm_stops_cleanly(void **state)
{
    (void)state;
    serve_then_signal(SIGTERM, "SIGTERM");
}

static void test_sigint_stops_cleanly(void **state)
{
    (void)state;
    serve_then_signal(SIGINT, "SIGINT");
}

static void test_port_in_use(void **state)
{
    (void)state;
    char dir[512], conf[600], text[1400];
    struct child *a = &kids[0], *b = &kids[1];
    test_tmpdir(dir, sizeof dir, "nscli");
    snprintf(conf, sizeof conf, "%s/namesrv.conf", dir);
    snprintf(text, sizeof text, "listenAddress=127.0.0.1\nlistenPort=0\nkvConfigPath=%s/kv.json\n",
             dir);
    write_conf(conf, text);
    child_start(a, conf, NULL);
    if (!child_wait_stderr(a, READY "127.0.0.1:", 20000)) {
        child_reap(a);
        child_dump(a);
        fail_msg("mqnamesrv did not start");
    }
    snprintf(text, sizeof text, "listenAddress=127.0.0.1\nlistenPort=%d\nkvConfigPath=%s/kv.json\n",
             parse_port(a->buf[1]), dir);
    write_conf(conf, text);
    run_expect(b, conf, NULL, 1);
    assert_non_null(strstr(b->buf[1], "mqnamesrv: cannot start"));
    kill(a->pid, SIGTERM);
    int ok = child_wait_exit(a, 20000);
    child_reap(a);
    assert_true(ok && WIFEXITED(a->status) && WEXITSTATUS(a->status) == 0);
    test_rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        if (kids[i].pid > 0 && !kids[i].exited) {
            child_reap(&kids[i]);
            child_dump(&kids[i]);
        }
        memset(&kids[i], 0, sizeof kids[i]);
    }
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(f) cmocka_unit_test_teardown(f, teardown)
    const struct CMUnitTest tests[] = {
        T(test_bad_value_names_the_key), T(test_print_config), T(test_sigterm_stops_cleanly),
        T(test_sigint_stops_cleanly),    T(test_port_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
