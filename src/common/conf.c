/* Properties parsing and the conf_def table walker. */
#include "common/conf.h"

#include "common/err.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct conf_def *find(const struct conf_def *defs, const char *key)
{
    for (; defs->key; defs++)
        if (strcmp(defs->key, key) == 0)
            return defs;
    return NULL;
}

static int parse_int(const char *val, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end)
        return -1;
    *out = v;
    return 0;
}

static int set_one(const struct conf_def *d, void *obj, const char *val, char *err, size_t errlen)
{
    char *field = (char *)obj + d->off;
    int64_t v;

    switch (d->type) {
    case CONF_INT:
    case CONF_LONG:
        if (parse_int(val, &v) != 0 || v < d->min || v > d->max) {
            snprintf(err, errlen, "%s=%s: expected an integer in [%" PRId64 ", %" PRId64 "]",
                     d->key, val, d->min, d->max);
            return FERRY_ECONFIG;
        }
        if (d->type == CONF_INT)
            *(int32_t *)field = (int32_t)v;
        else
            *(int64_t *)field = v;
        return 0;
    case CONF_BOOL:
        if (strcasecmp(val, "true") == 0)
            *(int *)field = 1;
        else if (strcasecmp(val, "false") == 0)
            *(int *)field = 0;
        else {
            snprintf(err, errlen, "%s=%s: expected true or false", d->key, val);
            return FERRY_ECONFIG;
        }
        return 0;
    case CONF_STR:
        if (strlen(val) >= d->size) {
            snprintf(err, errlen, "%s: value longer than %zu characters", d->key, d->size - 1);
            return FERRY_ECONFIG;
        }
        memcpy(field, val, strlen(val) + 1);
        return 0;
    case CONF_ENUM:
        for (int i = 0; d->names[i]; i++)
            if (strcmp(d->names[i], val) == 0) {
                *(int *)field = i;
                return 0;
            }
        {
            char allowed[256] = "";
            for (int i = 0; d->names[i]; i++) {
                strncat(allowed, i ? ", " : "", sizeof allowed - strlen(allowed) - 1);
                strncat(allowed, d->names[i], sizeof allowed - strlen(allowed) - 1);
            }
            snprintf(err, errlen, "%s=%s: expected one of %s", d->key, val, allowed);
        }
        return FERRY_ECONFIG;
    }
    return FERRY_ECONFIG;
}

void conf_defaults(const struct conf_def *defs, void *obj)
{
    char err[256];
    for (; defs->key; defs++) {
        int rc = set_one(defs, obj, defs->def, err, sizeof err);
        FERRY_ASSERT(rc == 0); /* a bad default is a bug in the table */
    }
}

int conf_set(const struct conf_def *defs, void *obj, const char *key, const char *val, char *err,
             size_t errlen)
{
    const struct conf_def *d = find(defs, key);
    if (!d) {
        snprintf(err, errlen, "unknown key %s", key);
        return FERRY_ENOTFOUND;
    }
    return set_one(d, obj, val, err, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int conf_load_targets(const char *path, const struct conf_target *targets, int n, char *err,
                      size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open config %s: %s", path, strerror(-rc));
        return rc;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == '!')
            continue;
        char *sep = strpbrk(s, "=:");
        if (!sep) {
            snprintf(err, errlen, "%s:%d: expected key=value, got \"%s\"", path, lineno, s);
            rc = FERRY_ECONFIG;
            break;
        }
        *sep = 0;
        char *key = trim(s), *val = trim(sep + 1);
        char e2[512];
        int r = FERRY_ENOTFOUND;
        for (int i = 0; i < n && r == FERRY_ENOTFOUND; i++) {
            const char *k = key;
            if (targets[i].prefix) {
                size_t pl = strlen(targets[i].prefix);
                if (strncmp(key, targets[i].prefix, pl) != 0)
                    continue;
                k = key + pl;
            }
            r = conf_set(targets[i].defs, targets[i].obj, k, val, e2, sizeof e2);
        }
        if (r == FERRY_ENOTFOUND) {
            log_warn(LOG_MAIN, "%s:%d: unknown key %s ignored", path, lineno, key);
        } else if (r != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
            rc = r;
        }
    }
    fclose(f);
    return rc;
}

int conf_load_file(const struct conf_def *defs, void *obj, const char *path, char *err,
                   size_t errlen)
{
    struct conf_target t = {defs, obj, NULL};
    return conf_load_targets(path, &t, 1, err, errlen);
}

static void print_value(const struct conf_def *d, const void *obj, FILE *out)
{
    const char *field = (const char *)obj + d->off;
    switch (d->type) {
    case CONF_INT:
        fprintf(out, "%" PRId32, *(const int32_t *)field);
        break;
    case CONF_LONG:
        fprintf(out, "%" PRId64, *(const int64_t *)field);
        break;
    case CONF_BOOL:
        fputs(*(const int *)field ? "true" : "false", out);
        break;
    case CONF_STR:
        fputs(field, out);
        break;
    case CONF_ENUM:
        fputs(d->names[*(const int *)field], out);
        break;
    }
}

void conf_print(const struct conf_def *defs, const void *obj, FILE *out)
{
    for (; defs->key; defs++) {
        if (defs->flags & CONF_HIDDEN)
            continue;
        fprintf(out, "%s=", defs->key);
        print_value(defs, obj, out);
        fputc('\n', out);
    }
}

void conf_print_doc(const struct conf_def *defs, FILE *out)
{
    fputs("| key | default | range | meaning |\n| --- | --- | --- | --- |\n", out);
    for (; defs->key; defs++) {
        if (defs->flags & CONF_HIDDEN)
            continue;
        fprintf(out, "| `%s` | `%s` | ", defs->key, defs->def);
        if (defs->type == CONF_INT || defs->type == CONF_LONG)
            fprintf(out, "%" PRId64 " – %" PRId64, defs->min, defs->max);
        else if (defs->type == CONF_BOOL)
            fputs("true, false", out);
        else if (defs->type == CONF_ENUM)
            for (int i = 0; defs->names[i]; i++)
                fprintf(out, "%s%s", i ? ", " : "", defs->names[i]);
        fprintf(out, " | %s |\n", defs->doc);
    }
}

int conf_addr_list(const char *list, int (*fn)(const char *addr, size_t len, void *arg), void *arg)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ";");
        const char *a = p, *z = p + n;
        while (a < z && (*a == ' ' || *a == '\t'))
            a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
            z--;
        int rc = z > a ? fn(a, (size_t)(z - a), arg) : 0;
        if (rc)
            return rc;
        p += n;
        if (*p == ';')
            p++;
    }
    return 0;
}
