/* bench_ceiling: the two ceilings of bench/bench_all.sh, measured with nothing of FerryMQ.
 *
 *   bench_ceiling disk <file> <record bytes> <batch> <seconds> [<wrap MiB>]
 *       Raw disk: a loop of pwrite() of <batch> records of <record bytes> each, back to back,
 *       then fdatasync(), for <seconds>, into <file> on the file system under test. The file is
 *       first filled with <wrap MiB> (default 64) of zeros and synced (like a preallocated
 *       CommitLog segment), and the writes wrap around inside it. <batch> N > 0 is a perfect
 *       group commit of N concurrent senders: each fdatasync covers N records (N = 1: write +
 *       fdatasync per record). <batch> 0 is the ASYNC_FLUSH ceiling: records appended to the
 *       empty file (wrapping at <wrap MiB>) with an fdatasync every 500 ms (FerryMQ's
 *       flushIntervalCommitLog) instead of one per batch.
 *   bench_ceiling loop <port> <conns> <in flight> <body bytes> <seconds>
 *       Loopback: <conns> TCP connections to 127.0.0.1:<port> (bench/bench_e2e_echo), each with
 *       <in flight> RocketMQ remoting request frames outstanding, each carrying a <body bytes>
 *       body and asking (bodyBytes 0) for a header-only response, like a send's. One thread,
 *       epoll; the frames a connection may send go out in one write(), as a batching client's.
 *
 * Prints one line: "CEILING ops=<records or responses per second> mbps=<10^6 B/s of records or
 * bodies> syncs=<fdatasync calls per second>". Exit status 0, 1 on an error, 2 on usage. */
#define _GNU_SOURCE
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
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long arg_num(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "bench_ceiling: bad number %s\n", s);
        exit(2);
    }
    return v;
}

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("bench_ceiling: pwrite");
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
}

static int disk(const char *path, long rec, long batch, long secs, long wrap_mib)
{
    int64_t wrap = (int64_t)wrap_mib << 20;
    if (rec * (batch ? batch : 1) > wrap) {
        fprintf(stderr, "bench_ceiling: a batch does not fit in %ld MiB\n", wrap_mib);
        return 2;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail("bench_ceiling: open");
    size_t chunk = 1 << 20;
    char *zero = calloc(1, chunk);
    size_t blen = (size_t)rec * (size_t)(batch ? batch : 1);
    char *buf = malloc(blen);
    if (!zero || !buf)
        fail("bench_ceiling: malloc");
    memset(buf, 'r', blen);
    if (batch) {
        for (int64_t off = 0; off < wrap; off += (int64_t)chunk)
            pwrite_all(fd, zero, chunk, off);
        if (fsync(fd) != 0)
            fail("bench_ceiling: fsync");
    }
    int64_t recs = 0, syncs = 0, off = 0;
    int64_t t0 = now_ns(), end = t0 + secs * 1000000000, next_sync = t0 + 500000000, t;
    do {
        if (off + (int64_t)blen > wrap)
            off = 0;
        pwrite_all(fd, buf, blen, off);
        off += (int64_t)blen;
        recs += batch ? batch : 1;
        t = now_ns();
        if (batch || t >= next_sync) {
            if (fdatasync(fd) != 0)
                fail("bench_ceiling: fdatasync");
            syncs++;
            next_sync += 500000000;
            t = now_ns();
        }
    } while (t < end);
    double s = (double)(t - t0) / 1e9;
    printf("CEILING ops=%.0f mbps=%.2f syncs=%.1f\n", (double)recs / s,
           (double)recs * (double)rec / s / 1e6, (double)syncs / s);
    close(fd);
    unlink(path);
    free(zero);
    free(buf);
    return 0;
}

struct conn {
    int fd;
    int64_t to_send; /* frames not yet (fully) written */
    size_t out_off;  /* bytes of the current frame written */
    unsigned char in[1 << 16];
    size_t in_len;
};

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

/* Writes as much of the queued frames as the socket takes, as many as there are in one write()
 * (@frames holds @nframes copies of the frame, back to back), like a client that batches. */
static void conn_write(struct conn *c, const unsigned char *frames, size_t flen, int64_t nframes)
{
    while (c->to_send > 0) {
        int64_t k = c->to_send < nframes ? c->to_send : nframes;
        ssize_t n = write(c->fd, frames + c->out_off, (size_t)k * flen - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN)
                return;
            fail("bench_ceiling: write");
        }
        c->out_off += (size_t)n;
        c->to_send -= (int64_t)(c->out_off / flen);
        c->out_off %= flen;
    }
}

/* Reads the responses that arrived; returns how many were complete. */
static int64_t conn_read(struct conn *c)
{
    int64_t done = 0;
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n == 0) {
            fprintf(stderr, "bench_ceiling: the server closed a connection\n");
            exit(1);
        }
        if (n < 0) {
            if (errno == EAGAIN)
                return done;
            fail("bench_ceiling: read");
        }
        c->in_len += (size_t)n;
        size_t off = 0;
        while (c->in_len - off >= 4) {
            size_t total = 4 + (size_t)be32(c->in + off);
            if (total > sizeof c->in) {
                fprintf(stderr, "bench_ceiling: a response of %zu bytes\n", total);
                exit(1);
            }
            if (c->in_len - off < total)
                break;
            off += total;
            done++;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static int loop(long port, long nconns, long inflight, long body, long secs)
{
    /* A SEND_MESSAGE_V2-like request (code 310) whose response is its header only. */
    char hdr[256];
    int hlen = snprintf(hdr, sizeof hdr,
                        "{\"code\":310,\"language\":\"CPP\",\"version\":401,\"opaque\":1,"
                        "\"flag\":0,\"extFields\":{\"bodyBytes\":\"0\"}}");
    size_t flen = 8 + (size_t)hlen + (size_t)body;
    unsigned char *frame = calloc((size_t)inflight, flen);
    struct conn *cs = calloc((size_t)nconns, sizeof *cs);
    if (!frame || !cs)
        fail("bench_ceiling: calloc");
    put_be32(frame, (uint32_t)(flen - 4));
    put_be32(frame + 4, (uint32_t)hlen);
    memcpy(frame + 8, hdr, (size_t)hlen);
    memset(frame + 8 + hlen, 'r', (size_t)body);
    for (long i = 1; i < inflight; i++)
        memcpy(frame + (size_t)i * flen, frame, flen);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        fail("bench_ceiling: epoll_create1");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    for (long i = 0; i < nconns; i++) {
        struct conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
            fail("bench_ceiling: connect");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            fail("bench_ceiling: epoll_ctl");
        c->to_send = inflight;
        conn_write(c, frame, flen, inflight);
    }
    int64_t ok = 0, t0 = now_ns(), end = t0 + secs * 1000000000, t = t0;
    while (t < end) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 100);
        if (n < 0 && errno != EINTR)
            fail("bench_ceiling: epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int64_t got = conn_read(c);
                ok += got;
                c->to_send += got; /* keep <in flight> outstanding */
            }
            conn_write(c, frame, flen, inflight);
        }
        t = now_ns();
    }
    double s = (double)(t - t0) / 1e9;
    printf("CEILING ops=%.0f mbps=%.2f syncs=0\n", (double)ok / s,
           (double)ok * (double)body / s / 1e6);
    for (long i = 0; i < nconns; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    free(frame);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && argc <= 7 && strcmp(argv[1], "disk") == 0)
        return disk(argv[2], arg_num(argv[3], 1, 16 << 20), arg_num(argv[4], 0, 1 << 20),
                    arg_num(argv[5], 1, 3600), argc == 7 ? arg_num(argv[6], 1, 1 << 20) : 64);
    if (argc == 7 && strcmp(argv[1], "loop") == 0)
        return loop(arg_num(argv[2], 1, 65535), arg_num(argv[3], 1, 4096),
                    arg_num(argv[4], 1, 1 << 20), arg_num(argv[5], 0, 16 << 20),
                    arg_num(argv[6], 1, 3600));
    fprintf(stderr,
            "usage: bench_ceiling disk <file> <record bytes> <batch> <seconds> [<wrap MiB>]\n"
            "       bench_ceiling loop <port> <conns> <in flight> <body bytes> <seconds>\n");
    return 2;
}
