/* Table-driven configuration in RocketMQ's `key=value` properties format.
 * Each binary has one table of struct conf_def (key, type, offset into its config struct,
 * default, bounds, doc). Unknown keys are warned about; a bad value is an error naming the
 * key, the value and what is allowed. */
#ifndef FERRY_COMMON_CONF_H
#define FERRY_COMMON_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum conf_type { CONF_INT, CONF_LONG, CONF_BOOL, CONF_STR, CONF_ENUM };

#define CONF_HIDDEN 0x1 /* test-only knobs (debug*), left out of docs and -p */

struct conf_def {
    const char *key; /* RocketMQ's key name */
    enum conf_type type;
    size_t off;               /* offsetof into the config struct */
    size_t size;              /* CONF_STR: capacity of the char array */
    const char *def;          /* default, as text */
    int64_t min, max;         /* bounds for CONF_INT / CONF_LONG */
    const char *const *names; /* CONF_ENUM: NULL-terminated names; stored as int index */
    unsigned flags;
    const char *doc;
};

/* Set every key of @defs (terminated by a NULL key) to its default. */
void conf_defaults(const struct conf_def *defs, void *obj);
/* Set one key. Returns 0, FERRY_ENOTFOUND for an unknown key, or FERRY_ECONFIG with a
 * message in @err. */
int conf_set(const struct conf_def *defs, void *obj, const char *key, const char *val, char *err,
             size_t errlen);
/* Load a properties file: `#`/`!` comments, `key=value` or `key: value`, trimmed.
 * Unknown keys are logged as warnings. Returns 0 or FERRY_ECONFIG / -errno with @err set. */
int conf_load_file(const struct conf_def *defs, void *obj, const char *path, char *err,
                   size_t errlen);

/* One table of a file that feeds several (ferrymq: name server, broker and store keys). A key
 * is tried against each target in order; a target with a @prefix only takes keys that start
 * with it (the prefix is stripped), e.g. "namesrv." for the name server's listenPort. */
struct conf_target {
    const struct conf_def *defs;
    void *obj;
    const char *prefix; /* NULL: any key */
};
int conf_load_targets(const char *path, const struct conf_target *targets, int n, char *err,
                      size_t errlen);

/* Table rows: in a file, `#define CONF_STRUCT struct my_config` first. */
#define CONF_ROW_STR(k, def, doc)                                                                  \
    {                                                                                              \
#k, CONF_STR, offsetof(CONF_STRUCT, k), sizeof(((CONF_STRUCT *)0)->k), def, 0, 0, NULL, 0, \
            doc                                                                                    \
    }
#define CONF_ROW_INT(k, def, lo, hi, doc)                                                          \
    {                                                                                              \
#k, CONF_INT, offsetof(CONF_STRUCT, k), 0, def, lo, hi, NULL, 0, doc                       \
    }
#define CONF_ROW_LONG(k, def, lo, hi, doc)                                                         \
    {                                                                                              \
#k, CONF_LONG, offsetof(CONF_STRUCT, k), 0, def, lo, hi, NULL, 0, doc                      \
    }
#define CONF_ROW_BOOL(k, def, doc)                                                                 \
    {                                                                                              \
#k, CONF_BOOL, offsetof(CONF_STRUCT, k), 0, def, 0, 0, NULL, 0, doc                        \
    }
#define CONF_ROW_END                                                                               \
    {                                                                                              \
        NULL, 0, 0, 0, NULL, 0, 0, NULL, 0, NULL                                                   \
    }
/* Print every non-hidden key as `key=value`. */
/* Walk a "host:port;host:port" list (namesrvAddr, controllerAddr): each address trimmed of
 * blanks, empty ones skipped, passed to @fn with its length (not NUL-terminated). A nonzero
 * return from @fn stops the walk and is returned; 0 when every address was taken. */
int conf_addr_list(const char *list, int (*fn)(const char *addr, size_t len, void *arg), void *arg);

void conf_print(const struct conf_def *defs, const void *obj, FILE *out);
/* Print a Markdown table of the keys (for docs/config.md). */
void conf_print_doc(const struct conf_def *defs, FILE *out);

#endif
