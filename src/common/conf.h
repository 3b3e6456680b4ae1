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
/* Print every non-hidden key as `key=value`. */
void conf_print(const struct conf_def *defs, const void *obj, FILE *out);
/* Print a Markdown table of the keys (for docs/config.md). */
void conf_print_doc(const struct conf_def *defs, FILE *out);

#endif
