/* tools/server_cli.c: the sd_notify messages the server launchers send to systemd (received
 * here on a unix datagram socket, as systemd does, at a path and at an abstract address), and
 * the command line's check mode (-p runs the server's extra check; a start does not). */
#include "../../tools/server_cli.h"

#include "common/conf.h"
#include "../lib/testlib.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A datagram socket at @path ('@' first: abstract); its fd. */
static int listen_at(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    assert_true(n < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + n),
                     0);
    return fd;
}

/* The next datagram on @fd (waits up to 5 s), NUL-terminated in @buf. */
static void receive(int fd, char *buf, size_t cap)
{
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 5000 * test_time_mult()), 1);
    ssize_t n = recv(fd, buf, cap - 1, 0);
    assert_true(n >= 0);
    buf[n] = 0;
}

static void no_more(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 50), 0);
}

/* Every message of a start and a stop, in order, as systemd receives them. */
static void expect_messages(int fd)
{
    char buf[1024];
    server_notify_status("opening the store in %s", "/var/lib/ferrymq\nx");
    receive(fd, buf, sizeof buf);
    assert_string_equal(buf, "STATUS=opening the store in /var/lib/ferrymq x");
    server_notify_ready("broker %s serving at %s", "broker-a", "10.0.0.1:10911");
    receive(fd, buf, sizeof buf);
    assert_string_equal(buf, "READY=1\nSTATUS=broker broker-a serving at 10.0.0.1:10911");
    server_notify_stopping("SIGTERM");
    receive(fd, buf, sizeof buf);
    assert_string_equal(buf, "STOPPING=1\nSTATUS=SIGTERM received, shutting down cleanly");
    no_more(fd);
}

static void test_notify_socket_path(void **state)
{
    (void)state;
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "server_cli");
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    expect_messages(fd);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    test_rmdir(dir);
}

static void test_notify_abstract(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@ferry-test-server-cli-%d", (int)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    expect_messages(fd);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}

static void test_notify_unset(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    /* no socket: nothing is sent, nothing fails */
    server_notify_status("starting");
    server_notify_ready("serving");
    server_notify_stopping("SIGINT");
}

/* ---- the command line ------------------------------------------------------------------ */

struct tcfg {
    int32_t port;
    char name[32];
};
#define CONF_STRUCT struct tcfg
static const struct conf_def tdefs[] = {
    CONF_ROW_INT(port, "9876", 0, 65535, "a port"),
    CONF_ROW_STR(name, "n0", "a name"),
    CONF_ROW_END,
};

static int checks;
static int check_name(void *arg, char *err, size_t errlen)
{
    const struct tcfg *c = arg;
    checks++;
    if (strcmp(c->name, "n0") != 0) {
        snprintf(err, errlen, "name '%s' is not one of n0", c->name);
        return 1;
    }
    return 0;
}

static int cli(const char *file, const char *flag)
{
    struct tcfg c;
    conf_defaults(tdefs, &c);
    char *argv[] = {"t", "-c", (char *)file, (char *)flag, NULL};
    return server_cli(flag ? 4 : 3, argv, "t", "t [-c f] [-p]", tdefs, &c, check_name);
}

static void test_cli_check_mode(void **state)
{
    (void)state;
    char dir[256], good[300], bad[300];
    test_tmpdir(dir, sizeof dir, "server_cli");
    snprintf(good, sizeof good, "%s/good.conf", dir);
    snprintf(bad, sizeof bad, "%s/bad.conf", dir);
    FILE *f = fopen(good, "w");
    fputs("port=1234\nname=n0\n", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("name=n9\n", f);
    fclose(f);

    checks = 0;
    assert_int_equal(cli(good, "-p"), 0); /* checked, printed */
    assert_int_equal(cli(bad, "-p"), 1);  /* the check refuses it */
    assert_int_equal(checks, 2);
    assert_int_equal(cli(bad, NULL), -1); /* a start: the server checks as it starts */
    assert_int_equal(checks, 2);
    assert_int_equal(cli(good, "-x"), 2); /* bad usage */
    f = fopen(bad, "w");
    fputs("port=70000\n", f);
    fclose(f);
    assert_int_equal(cli(bad, "-p"), 1); /* out of range: the table refuses it */
    test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_socket_path),
        cmocka_unit_test(test_notify_abstract),
        cmocka_unit_test(test_notify_unset),
        cmocka_unit_test(test_cli_check_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
