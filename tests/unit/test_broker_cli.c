/* mqbroker and ferrymq as child processes: a bad config value stops start-up with a non-zero
 * exit naming the key; -p prints the effective configuration; a running broker (and the
 * standalone launcher) serves requests, and SIGTERM gives a clean exit 0 with no abort file
 * left in the store. Children always get killed and reaped, whatever happens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "common/clock.h"
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child = -1;

struct run {
    char dir[512];
    char out[600], err[600];
};

static void reap_child(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
}

static pid_t spawn(struct run *r, char *const argv[])
{
    snprintf(r->out, sizeof r->out, "%s/stdout", r->dir);
    snprintf(r->err, sizeof r->err, "%s/stderr", r->dir);
    unlink(r->out); /* before the fork: never read the previous run's output */
    unlink(r->err);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(r->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(r->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || chdir(r->dir) != 0)
            _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    child = pid;
    return pid;
}

/* Wait for the exit of @pid at most @ms; returns the status or -1 (still running). */
static int wait_exit(pid_t pid, int ms)
{
    int64_t end = clock_mono_ms() + (int64_t)ms * test_time_mult();
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            child = -1;
            return st;
        }
        if (clock_mono_ms() > end)
            return -1;
        struct timespec d = {0, 2 * 1000000};
        nanosleep(&d, NULL);
    }
}

static char *slurp(const char *path)
{
    char *buf = NULL;
    size_t len;
    if (fs_read_file(path, 0, &buf, &len, 1 << 22) != 0)
        return NULL;
    return buf;
}

/* Wait until @path contains @needle (the child's output), at most @ms. */
static int wait_output(const char *path, const char *needle, int ms)
{
    int64_t end = clock_mono_ms() + (int64_t)ms * test_time_mult();
    for (;;) {
        char *text = slurp(path);
        int ok = text && strstr(text, needle);
        free(text);
        if (ok)
            return 1;
        if (clock_mono_ms() > end || (child > 0 && waitpid(child, NULL, WNOHANG) == child)) {
            child = -1;
            return 0;
        }
        struct timespec d = {0, 5 * 1000000};
        nanosleep(&d, NULL);
    }
}

static void write_conf(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void dump(const struct run *r)
{
    char *o = slurp(r->out), *e = slurp(r->err);
    fprintf(stderr, "--- child stdout ---\n%s\n--- child stderr ---\n%s\n", o ? o : "", e ? e : "");
    free(o);
    free(e);
}

static int exited_with(int st, int code)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

static void test_bad_values_exit_nonzero_naming_the_key(void **state)
{
    (void)state;
    struct {
        const char *conf;
        const char *key;
        const char *allowed;
    } cases[] = {
        {"brokerRole=MASTER\n", "brokerRole", "ASYNC_MASTER, SYNC_MASTER, SLAVE"},
        {"listenPort=abc\n", "listenPort", "[0, 65535]"},
        {"flushDiskType=SOMETIMES\n", "flushDiskType", "ASYNC_FLUSH, SYNC_FLUSH"},
        {"autoCreateTopicEnable=yes\n", "autoCreateTopicEnable", "true or false"},
        {"namesrvAddr=localhost\n", "namesrvAddr", "host:port"},
        {"brokerIP1=not-an-ip\n", "brokerIP1", "IPv4"},
    };
    struct run r;
    test_tmpdir(r.dir, sizeof r.dir, "mqbroker-bad");
    char conf[700];
    snprintf(conf, sizeof conf, "%s/broker.conf", r.dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_conf(conf, cases[i].conf);
        char *argv[] = {MQBROKER_PATH, "-c", conf, NULL};
        pid_t pid = spawn(&r, argv);
        int st = wait_exit(pid, 10000);
        reap_child();
        char *err = slurp(r.err);
        if (!exited_with(st, 1) || !err || !strstr(err, cases[i].key) ||
            !strstr(err, cases[i].allowed)) {
            dump(&r);
            free(err);
            fail_msg("case %zu (%s): expected exit 1 naming the key", i, cases[i].conf);
        }
        free(err);
    }
    /* An unknown key is only a warning: -p still works and shows the effective config. */
    write_conf(conf, "someUnknownKey=1\nbrokerName=broker-p\nflushDiskType=SYNC_FLUSH\n"
                     "haSecret=TOPSECRET\n");
    char *argv[] = {MQBROKER_PATH, "-c", conf, "-n", "127.0.0.1:9876;127.0.0.2:9876", "-p", NULL};
    pid_t pid = spawn(&r, argv);
    int st = wait_exit(pid, 10000);
    reap_child();
    char *out = slurp(r.out), *err = slurp(r.err);
    assert_true(exited_with(st, 0));
    assert_non_null(strstr(out, "brokerName=broker-p\n"));
    assert_non_null(strstr(out, "namesrvAddr=127.0.0.1:9876;127.0.0.2:9876\n"));
    assert_non_null(strstr(out, "flushDiskType=SYNC_FLUSH\n"));
    assert_non_null(strstr(out, "listenPort=10911\n"));
    assert_non_null(strstr(out, "haSecret=******\n")); /* never printed: it authenticates slaves */
    assert_null(strstr(out, "TOPSECRET"));
    assert_non_null(strstr(err, "someUnknownKey"));
    free(out);
    free(err);
    test_rmdir(r.dir);
}

static void test_mqbroker_serves_and_stops_cleanly(void **state)
{
    (void)state;
    struct run r;
    char conf[700], text[1500], line[128];
    test_tmpdir(r.dir, sizeof r.dir, "mqbroker-run");
    snprintf(conf, sizeof conf, "%s/broker.conf", r.dir);
    snprintf(text, sizeof text,
             "brokerName=broker-cli\nbrokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nlistenPort=0\n"
             "storePathRootDir=%s/store\nmappedFileSizeCommitLog=8388608\n"
             "maxMessageSize=65536\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n"
             "flushDiskType=SYNC_FLUSH\n",
             r.dir);
    write_conf(conf, text);
    char *argv[] = {MQBROKER_PATH, "-c", conf, NULL};
    pid_t pid = spawn(&r, argv);
    if (!wait_output(r.out, "boot success", 20000)) {
        dump(&r);
        reap_child();
        fail_msg("mqbroker did not start");
    }
    /* "The broker[broker-cli, 127.0.0.1:<port>] boot success..." */
    char *out = slurp(r.out);
    const char *p = strstr(out, "127.0.0.1:");
    int port = p ? atoi(p + 10) : 0;
    free(out);
    assert_true(port > 0);
    remoting_client_t *cli = tb_client(port);
    assert_int_equal(tb_create_topic(cli, "CliTopic", 1), 0);
    struct rcmd *resp = tb_send(cli, "CliTopic", 0, NULL, NULL, "over the wire");
    rcmd_free(resp);
    remoting_client_free(cli);
    snprintf(line, sizeof line, "%s/store/abort", r.dir);
    struct stat st;
    assert_int_equal(stat(line, &st), 0); /* running: the abort marker is there */

    kill(pid, SIGTERM);
    int status = wait_exit(pid, 20000);
    if (!exited_with(status, 0)) {
        dump(&r);
        reap_child();
        fail_msg("SIGTERM: expected exit 0, got status %d", status);
    }
    assert_int_not_equal(stat(line, &st), 0);
    snprintf(line, sizeof line, "%s/store/config/topics.json", r.dir);
    char *topics = slurp(line);
    assert_non_null(topics);
    assert_non_null(strstr(topics, "\"CliTopic\""));
    free(topics);
    test_rmdir(r.dir);
}

/* Start mqbroker with @conf and return its port (0 on failure, output dumped). */
static int start_broker(struct run *r, char *conf, pid_t *pid)
{
    char *argv[] = {MQBROKER_PATH, "-c", conf, NULL};
    *pid = spawn(r, argv);
    if (!wait_output(r->out, "boot success", 20000)) {
        dump(r);
        return 0;
    }
    char *out = slurp(r->out);
    const char *p = strstr(out, "127.0.0.1:");
    int port = p ? atoi(p + 10) : 0;
    free(out);
    return port;
}

static void test_mqbroker_kill9_keeps_acknowledged(void **state)
{
    (void)state;
    struct run r;
    char conf[700], text[1500];
    pid_t pid;
    test_tmpdir(r.dir, sizeof r.dir, "mqbroker-kill9");
    snprintf(conf, sizeof conf, "%s/broker.conf", r.dir);
    snprintf(text, sizeof text,
             "brokerName=broker-k9\nbrokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nlistenPort=0\n"
             "storePathRootDir=%s/store\nmappedFileSizeCommitLog=8388608\n"
             "maxMessageSize=65536\nmaxHashSlotNum=5000\nmaxIndexNum=20000\n"
             "flushDiskType=SYNC_FLUSH\nflushConsumerOffsetInterval=600000\n",
             r.dir);
    write_conf(conf, text);
    int port = start_broker(&r, conf, &pid);
    if (!port) {
        reap_child();
        fail_msg("mqbroker did not start");
    }
    remoting_client_t *cli = tb_client(port);
    assert_int_equal(tb_create_topic(cli, "K9", 1), 0);
    for (int i = 0; i < 50; i++) {
        char body[16];
        snprintf(body, sizeof body, "k%d", i);
        struct rcmd *resp = tb_send(cli, "K9", 0, NULL, NULL, body);
        rcmd_free(resp);
    }
    /* An acknowledged commit is on disk even though the periodic write is 10 minutes away. */
    struct rcmd req;
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", "GID_k9");
    rcmd_ext_add(&req, "topic", "K9");
    rcmd_ext_add(&req, "queueId", "0");
    rcmd_ext_add(&req, "commitOffset", "42");
    assert_int_equal(tb_call_code(cli, &req), 0);
    remoting_client_free(cli);
    kill(pid, SIGKILL);
    assert_true(wait_exit(pid, 10000) >= 0);

    port = start_broker(&r, conf, &pid);
    if (!port) {
        reap_child();
        fail_msg("mqbroker did not restart after kill -9");
    }
    cli = tb_client(port);
    struct rcmd *resp;
    rcmd_init_request(&req, REQ_QUERY_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", "GID_k9");
    rcmd_ext_add(&req, "topic", "K9");
    rcmd_ext_add(&req, "queueId", "0");
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, 0);
    assert_int_equal(tb_ext_i64(resp, "offset"), 42);
    rcmd_free(resp);
    /* Every acknowledged message is there, in order (pull until all 50 came back). */
    int64_t off = 0, end = clock_mono_ms() + 10000 * test_time_mult();
    int seen = 0;
    struct tb_rec recs[32];
    while (seen < 50 && clock_mono_ms() < end) {
        tb_pull_req(&req, "GID_k9", "K9", 0, off, 32, "*", 0, 0);
        resp = tb_call(cli, &req);
        if (resp->code == 0) {
            int n = tb_records(resp, recs, 32);
            assert_true(n > 0);
            for (int i = 0; i < n; i++) {
                char want[16];
                snprintf(want, sizeof want, "k%d", seen + i);
                assert_string_equal(recs[i].body, want);
            }
            seen += n;
            off = tb_ext_i64(resp, "nextBeginOffset");
        }
        rcmd_free(resp);
    }
    assert_int_equal(seen, 50);
    remoting_client_free(cli);
    kill(pid, SIGTERM);
    assert_true(exited_with(wait_exit(pid, 20000), 0));
    test_rmdir(r.dir);
}

static void test_ferrymq_standalone(void **state)
{
    (void)state;
    struct run r;
    char conf[700], text[1500], path[700];
    test_tmpdir(r.dir, sizeof r.dir, "ferrymq-run");
    snprintf(conf, sizeof conf, "%s/standalone.conf", r.dir);
    snprintf(text, sizeof text,
             "storePathRootDir=%s/data\nnamesrv.listenPort=0\nlistenPort=0\n"
             "mappedFileSizeCommitLog=8388608\nmaxMessageSize=65536\nmaxHashSlotNum=5000\n"
             "maxIndexNum=20000\n",
             r.dir);
    write_conf(conf, text);

    char *argv_p[] = {FERRYMQ_PATH, "-c", conf, "-p", NULL};
    pid_t pid = spawn(&r, argv_p);
    int st = wait_exit(pid, 10000);
    reap_child();
    char *out = slurp(r.out);
    assert_true(exited_with(st, 0));
    assert_non_null(strstr(out, "bindAddress=127.0.0.1\n"));
    assert_non_null(strstr(out, "brokerIP1=127.0.0.1\n"));
#ifdef FERRY_HAVE_NAMESRV
    assert_non_null(strstr(out, "namesrv.listenPort=0\n"));
#endif
    free(out);

    char *argv[] = {FERRYMQ_PATH, "-c", conf, NULL};
    pid = spawn(&r, argv);
    if (!wait_output(r.out, "Stop with", 20000)) {
        dump(&r);
        reap_child();
        fail_msg("ferrymq did not start");
    }
    out = slurp(r.out);
    const char *b = strstr(out, "broker 127.0.0.1:");
    int port = b ? atoi(b + 17) : 0;
#ifdef FERRY_HAVE_NAMESRV
    assert_non_null(strstr(out, "NAMESRV_ADDR=127.0.0.1:"));
#endif
    free(out);
    assert_true(port > 0);
    remoting_client_t *cli = tb_client(port);
    struct rcmd *resp = tb_send(cli, "StandaloneTopic", -1, NULL, NULL, "auto-created");
    rcmd_free(resp);
    remoting_client_free(cli);
    kill(pid, SIGINT);
    st = wait_exit(pid, 20000);
    if (!exited_with(st, 0)) {
        dump(&r);
        reap_child();
        fail_msg("SIGINT: expected exit 0");
    }
    snprintf(path, sizeof path, "%s/data/abort", r.dir);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    test_rmdir(r.dir);
}

static int teardown(void **state)
{
    (void)state;
    reap_child();
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bad_values_exit_nonzero_naming_the_key, teardown),
        cmocka_unit_test_teardown(test_mqbroker_serves_and_stops_cleanly, teardown),
        cmocka_unit_test_teardown(test_mqbroker_kill9_keeps_acknowledged, teardown),
        cmocka_unit_test_teardown(test_ferrymq_standalone, teardown),
    };
    return cmocka_run_group_tests_name("broker-cli", tests, NULL, NULL);
}
