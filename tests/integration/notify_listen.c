/* notify_listen: the systemd side of sd_notify(3), for tests/integration/install.test.js.
 *
 *   notify_listen SOCKET_PATH [--stop-on-ready]
 *
 * Binds a unix datagram socket at SOCKET_PATH (pass it to a server as NOTIFY_SOCKET), prints
 * "LISTENING" once bound, then one line per datagram received:
 *   MSG <sender pid> <assignment>\t<assignment>...
 * (the datagram's newline-separated assignments, joined by tabs; the pid comes from the
 * kernel's SCM_CREDENTIALS, as systemd's NotifyAccess=main checks it). With --stop-on-ready, a
 * datagram holding READY=1 makes it SIGSTOP the sender at once and then print
 * "STOPPED <pid>", so that the test can look at the server's state as it was when it declared
 * itself ready (a stopped process's listening socket still completes TCP handshakes); the test
 * sends SIGCONT. Runs until killed; stdout is line-buffered. Exit 1 on a setup error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

static int open_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "notify_listen: socket path too long: %s\n", path);
        return -1;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;
    unlink(path);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "notify_listen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return fd;
}

/* Receive one datagram into @buf (NUL-terminated); its sender's pid in @pid (0: unknown). */
static ssize_t receive(int fd, char *buf, size_t cap, pid_t *pid)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {buf, cap - 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0)
        return n;
    buf[n] = 0;
    *pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            *pid = uc.pid;
        }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (argc == 3 && strcmp(argv[2], "--stop-on-ready") != 0) || argc > 3) {
        fprintf(stderr, "usage: notify_listen SOCKET_PATH [--stop-on-ready]\n");
        return 2;
    }
    int stop_on_ready = argc == 3;
    int fd = open_socket(argv[1]);
    if (fd < 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("LISTENING\n");
    char buf[4097];
    for (;;) {
        pid_t pid;
        ssize_t n = receive(fd, buf, sizeof buf, &pid);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "notify_listen: recvmsg: %s\n", strerror(errno));
            return 1;
        }
        int ready = 0;
        for (char *line = buf; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = 0;
            if (strcmp(line, "READY=1") == 0)
                ready = 1;
            if (nl)
                *nl = '\t';
            line = nl ? nl + 1 : NULL;
        }
        if (ready && stop_on_ready && pid > 0)
            kill(pid, SIGSTOP); /* first, before anything slows us down */
        printf("MSG %d %s\n", (int)pid, buf);
        if (ready && stop_on_ready && pid > 0)
            printf("STOPPED %d\n", (int)pid);
    }
}
