/* Logging backend: formats into a stack buffer and writes the line with one write(2), so
 * lines from different threads never interleave. */
#include "common/log.h"

#include <execinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int log_min_level = LOG_LEVEL_INFO;
unsigned log_debug_mask = 0;

static const char *const sub_names[LOG_SUB_N] = {"main",   "store",   "remoting",
                                                 "broker", "namesrv", "client"};
static const char *const lvl_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_debug(const char *csv)
{
    log_debug_mask = 0;
    if (!csv || !*csv)
        return;
    for (int i = 0; i < LOG_SUB_N; i++)
        if (strstr(csv, "all") || strstr(csv, sub_names[i]))
            log_debug_mask |= 1u << i;
    if (log_debug_mask)
        log_min_level = LOG_LEVEL_DEBUG;
}

__attribute__((constructor)) static void log_init_env(void)
{
    const char *d = getenv("FERRY_LOG_DEBUG");
    if (d)
        log_set_debug(d);
    const char *q = getenv("FERRY_LOG_QUIET");
    if (q && *q == '1')
        log_min_level = LOG_LEVEL_WARN;
}

void log_write(enum log_level lvl, enum log_sub sub, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %-5s [%ld] %s: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
        lvl_names[lvl], (long)syscall(SYS_gettid), sub_names[sub]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void ferry_assert_fail(const char *expr, const char *file, int line)
{
    log_write(LOG_LEVEL_ERROR, LOG_MAIN, "assertion failed: %s at %s:%d", expr, file, line);
    void *frames[32];
    int n = backtrace(frames, 32);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    abort();
}
