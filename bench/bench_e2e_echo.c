/* bench_e2e_echo: the baseline server of bench/bench_e2e.js. A single-threaded epoll loop on
 * 127.0.0.1:<port> that answers every RocketMQ remoting frame at once, without parsing more
 * than it must: the request frame is sent back with its JSON header's "flag":0 turned into
 * "flag":1 (a response of the request's size), and a request that carries "bodyBytes":"<n>"
 * (the pull baseline) is answered with its header and an n-byte body of zeros. It measures what
 * the load generator and loopback TCP can do, nothing of FerryMQ.
 *
 *   bench_e2e_echo <port>      prints "ready" once listening; runs until killed
 *
 * Built by bench/bench_e2e.sh with the system compiler; not part of the CMake build. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME (16u << 20)

struct peer {
    int fd;
    unsigned char *in;
    size_t in_len, in_cap;
    unsigned char *out;
    size_t out_len, out_off, out_cap;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        perror("realloc");
        exit(1);
    }
    return q;
}

static void out_append(struct peer *p, const void *data, size_t n)
{
    if (p->out_len + n > p->out_cap) {
        p->out_cap = (p->out_len + n) * 2;
        p->out = xrealloc(p->out, p->out_cap);
    }
    memcpy(p->out + p->out_len, data, n);
    p->out_len += n;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Answers one frame (total = length field value). Returns -1 on a malformed frame. */
static int answer(struct peer *p, unsigned char *frame, uint32_t total)
{
    if (total < 4)
        return -1;
    uint32_t hlen = be32(frame + 4) & 0xFFFFFF;
    if (hlen > total - 4)
        return -1;
    char *h = (char *)frame + 8;
    char saved = h[hlen];
    h[hlen] = 0; /* the header is followed by the body or the next frame: restored below */
    char *flag = strstr(h, "\"flag\":0");
    if (flag)
        flag[7] = '1';
    char *bb = strstr(h, "\"bodyBytes\":\"");
    long body = bb ? strtol(bb + 13, NULL, 10) : -1;
    h[hlen] = saved;
    if (body < 0) {
        out_append(p, frame, 4 + (size_t)total);
        return 0;
    }
    if ((unsigned long)body > MAX_FRAME - 8 - hlen)
        return -1;
    unsigned char len[8];
    put_be32(len, 4 + hlen + (uint32_t)body);
    put_be32(len + 4, hlen);
    out_append(p, len, 8);
    out_append(p, h, hlen);
    static unsigned char zeros[65536];
    for (long left = body; left > 0; left -= (long)sizeof zeros)
        out_append(p, zeros, left < (long)sizeof zeros ? (size_t)left : sizeof zeros);
    return 0;
}

static int flush_out(struct peer *p)
{
    while (p->out_off < p->out_len) {
        ssize_t n = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        p->out_off += (size_t)n;
    }
    p->out_off = p->out_len = 0;
    return 0;
}

static int on_readable(struct peer *p)
{
    for (;;) {
        if (p->in_cap - p->in_len < 65536) {
            p->in_cap = p->in_cap * 2 + 65536;
            p->in = xrealloc(p->in, p->in_cap);
        }
        ssize_t n = read(p->fd, p->in + p->in_len, p->in_cap - p->in_len);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        p->in_len += (size_t)n;
    }
    size_t off = 0;
    while (p->in_len - off >= 4) {
        uint32_t total = be32(p->in + off);
        if (total + 4 > MAX_FRAME)
            return -1;
        if (p->in_len - off < 4 + (size_t)total)
            break;
        if (answer(p, p->in + off, total) != 0)
            return -1;
        off += 4 + (size_t)total;
    }
    memmove(p->in, p->in + off, p->in_len - off);
    p->in_len -= off;
    return flush_out(p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_e2e_echo <port>\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 128) != 0) {
        perror("bench_e2e_echo: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            struct peer *p = evs[i].data.ptr;
            if (!p) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0)
                    continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                p = calloc(1, sizeof *p);
                if (!p)
                    return 1;
                p->fd = fd;
                struct epoll_event pev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = p};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &pev);
                continue;
            }
            int rc = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                rc = on_readable(p);
            if (rc == 0 && (evs[i].events & EPOLLOUT))
                rc = flush_out(p);
            if (rc != 0) {
                close(p->fd);
                free(p->in);
                free(p->out);
                free(p);
            }
        }
    }
}
