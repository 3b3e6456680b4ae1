/* Logging: one line per event with time, level, thread and subsystem, to stderr.
 * The level is checked before formatting; debug is enabled per subsystem with
 * log_set_debug("store,remoting") (or FERRY_LOG_DEBUG in the environment). */
#ifndef FERRY_COMMON_LOG_H
#define FERRY_COMMON_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_sub { LOG_MAIN, LOG_STORE, LOG_REMOTING, LOG_BROKER, LOG_NAMESRV, LOG_CLIENT, LOG_SUB_N };

extern int log_min_level;       /* lines below this level are dropped */
extern unsigned log_debug_mask; /* bit per enum log_sub that logs debug lines */

void log_set_debug(const char *csv); /* "store,remoting" or "all" */
void log_write(enum log_level lvl, enum log_sub sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_enabled(lvl, sub)                                                                      \
    ((lvl) >= log_min_level && ((lvl) != LOG_LEVEL_DEBUG || (log_debug_mask & (1u << (sub)))))
#define LOG_AT(lvl, sub, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl, sub))                                                                 \
            log_write(lvl, sub, __VA_ARGS__);                                                      \
    } while (0)
#define log_debug(sub, ...) LOG_AT(LOG_LEVEL_DEBUG, sub, __VA_ARGS__)
#define log_info(sub, ...)  LOG_AT(LOG_LEVEL_INFO, sub, __VA_ARGS__)
#define log_warn(sub, ...)  LOG_AT(LOG_LEVEL_WARN, sub, __VA_ARGS__)
#define log_error(sub, ...) LOG_AT(LOG_LEVEL_ERROR, sub, __VA_ARGS__)

/* Always-on assertion for our own invariants (never for disk or network bytes). */
#define FERRY_ASSERT(x)                                                                            \
    do {                                                                                           \
        if (!(x))                                                                                  \
            ferry_assert_fail(#x, __FILE__, __LINE__);                                             \
    } while (0)
void ferry_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
