/* UNIQ_KEY (protocol/REMOTING.md §3.6): client IPv4 (4) | pid low 16 bits (2) | random (4) |
 * ms since the start of the month, local time (4) | counter (2), as 32 upper-hex characters.
 * Same layout as Java MessageClientIDSetter (which uses the class loader hash for the random
 * part) and the C++ client. */
#include "client/client_int.h"

#include "common/bytes.h"
#include "common/clock.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint8_t fixed[10]; /* ip, pid, random */
static int64_t month_start_ms;
static int64_t next_month_ms;
static atomic_uint counter;
static pthread_mutex_t month_lock = PTHREAD_MUTEX_INITIALIZER;

uint32_t client_local_ipv4(void)
{
    struct ifaddrs *ifs, *i;
    uint32_t ip = 0x7F000001;
    if (getifaddrs(&ifs) != 0)
        return ip;
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        uint32_t a = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
        if ((a >> 24) != 127) {
            ip = a;
            break;
        }
    }
    freeifaddrs(ifs);
    return ip;
}

/* Local-time month start and next month start, as wall ms. @locks month_lock */
static void set_month(int64_t now)
{
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    month_start_ms = (int64_t)mktime(&tm) * 1000;
    tm.tm_mon++;
    tm.tm_isdst = -1;
    next_month_ms = (int64_t)mktime(&tm) * 1000;
}

static void init_fixed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t seed = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() ^ (uint32_t)(uintptr_t)&ts;
    be32_put(fixed, client_local_ipv4());
    be16_put(fixed + 4, (uint16_t)getpid());
    be32_put(fixed + 6, (uint32_t)rand_r(&seed) ^ ((uint32_t)rand_r(&seed) << 16));
    set_month(clock_wall_ms());
}

void uniq_key_new(char out[33])
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t b[16];
    int64_t now = clock_wall_ms();
    pthread_once(&once, init_fixed);
    memcpy(b, fixed, 10);
    pthread_mutex_lock(&month_lock);
    if (now >= next_month_ms)
        set_month(now);
    int64_t since = now - month_start_ms;
    pthread_mutex_unlock(&month_lock);
    be32_put(b + 10, (uint32_t)since);
    be16_put(b + 14, (uint16_t)atomic_fetch_add(&counter, 1));
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = 0;
}

int32_t java_hash(const char *s)
{
    uint32_t h = 0;
    for (; *s; s++)
        h = 31 * h + (uint8_t)*s;
    return (int32_t)h;
}
