/* mqadmin brokerMetrics: a broker's Prometheus metrics over the client port. The broker answers
 * GET_BROKER_METRICS (FerryMQ's code 10101) with the very text of GET /metrics on its
 * metricsPort (src/broker/metrics.c, docs/METRICS.md), so both show the same figures; this
 * command parses it into a table (metric, labels, value) or, with --json, into
 * {"broker": addr, "samples": [{"name", "type", "labels": {...}, "value"}]}.
 *
 * mqadmin brokerThroughput: the puts and gets per second of the last minutes of one broker or
 * of every broker of a cluster, from GET_BROKER_THROUGHPUT (FerryMQ's 10102): a table of means
 * over 10, 60 and 600 seconds, or with --json the brokers' answers (what the dashboard's
 * cluster view draws). */
#include "mqadmin.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int name_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':';
}

static int name_char(char ch)
{
    return name_start(ch) || (ch >= '0' && ch <= '9');
}

/* The type of the family a sample belongs to: its own name's, or its name's without a
 * histogram or summary suffix. */
static const char *family_type(const cJSON *types, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(types, name));
    size_t n = strlen(name);
    for (size_t i = 0; !t && i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i]);
        char base[256];
        if (n <= sl || n - sl >= sizeof base || strcmp(name + n - sl, suffixes[i]) != 0)
            continue;
        memcpy(base, name, n - sl);
        base[n - sl] = 0;
        t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(types, base));
    }
    return t ? t : "untyped";
}

/* One sample line (@p .. @end, no newline): "name{k="v",...} value [timestamp]". Returns a new
 * {"name", "labels", "value"} object, or NULL with the reason in @why. */
static cJSON *parse_sample(const char *p, const char *end, const char **why)
{
    char name[256], buf[1024];
    size_t n = 0;
    *why = "a metric name";
    if (p == end || !name_start(*p))
        return NULL;
    while (p < end && name_char(*p) && n < sizeof name - 1)
        name[n++] = *p++;
    name[n] = 0;
    cJSON *o = cJSON_CreateObject(), *labels = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddItemToObject(o, "labels", labels);
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            char lname[128];
            size_t ln = 0, vn = 0;
            *why = "a label name";
            if (!name_start(*p) || *p == ':')
                goto bad;
            while (p < end && name_char(*p) && *p != ':' && ln < sizeof lname - 1)
                lname[ln++] = *p++;
            lname[ln] = 0;
            *why = "=\" after a label name";
            if (end - p < 2 || p[0] != '=' || p[1] != '"')
                goto bad;
            p += 2;
            *why = "a closed label value";
            while (p < end && *p != '"') {
                char ch = *p++;
                if (ch == '\\') {
                    if (p == end)
                        goto bad;
                    ch = *p++;
                    if (ch == 'n')
                        ch = '\n';
                    else if (ch != '\\' && ch != '"')
                        goto bad;
                }
                if (vn < sizeof buf - 1)
                    buf[vn++] = ch;
            }
            if (p == end)
                goto bad;
            p++;
            buf[vn] = 0;
            *why = "a label name only once";
            if (cJSON_GetObjectItemCaseSensitive(labels, lname))
                goto bad;
            cJSON_AddStringToObject(labels, lname, buf);
            *why = ", or } after a label";
            if (p < end && *p == ',' && p + 1 < end && p[1] != '}')
                p++;
            else if (p == end || *p != '}')
                goto bad;
        }
        *why = "} closing the labels";
        if (p == end)
            goto bad;
        p++;
    }
    *why = "one space and a value";
    if (p == end || *p != ' ')
        goto bad;
    p++;
    n = 0;
    while (p < end && *p != ' ' && n < sizeof buf - 1)
        buf[n++] = *p++;
    buf[n] = 0;
    char *e;
    double v = strtod(buf, &e);
    *why = "a number as the value (or +Inf, -Inf, NaN)";
    if (n == 0 || *e)
        goto bad;
    if (isfinite(v))
        cJSON_AddNumberToObject(o, "value", v);
    else
        cJSON_AddStringToObject(o, "value", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
    return o;
bad:
    cJSON_Delete(o);
    return NULL;
}

int adm_metrics_parse(const char *text, size_t len, cJSON *samples, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    cJSON *types = cJSON_CreateObject();
    int line = 0, rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        if (le > p && *p == '#') {
            char name[256], type[32];
            int n = 0;
            size_t l = (size_t)(le - p);
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(l < sizeof tmp ? l : sizeof tmp - 1), p);
            if (sscanf(tmp, "# TYPE %255s %31s%n", name, type, &n) == 2)
                cJSON_AddStringToObject(types, name, type);
        } else if (le > p) {
            const char *why;
            cJSON *s = parse_sample(p, le, &why);
            if (!s) {
                snprintf(err, errlen, "line %d: expected %s: %.*s", line, why,
                         (int)(le - p > 120 ? 120 : le - p), p);
                rc = -1;
                break;
            }
            const char *name = adm_jstr(s, "name");
            cJSON_AddStringToObject(s, "type", family_type(types, name));
            cJSON_AddItemToArray(samples, s);
        }
        p = nl ? nl + 1 : end;
    }
    cJSON_Delete(types);
    return rc;
}

/* A value as the table shows it: integers without a fraction. */
static void fmt_value(const cJSON *v, char *buf, size_t cap)
{
    if (cJSON_IsString(v))
        snprintf(buf, cap, "%s", v->valuestring);
    else if (v->valuedouble > -1e15 && v->valuedouble < 1e15 &&
             v->valuedouble == (double)(long long)v->valuedouble)
        snprintf(buf, cap, "%lld", (long long)v->valuedouble);
    else
        snprintf(buf, cap, "%.15g", v->valuedouble);
}

int cmd_broker_metrics(const struct ctx *c, const char *addr)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    int rc = 0;
    rcmd_init_request(&req, REQ_GET_BROKER_METRICS);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0)
        return adm_fail(c, "broker %s: %s", addr, eb);
    if (resp->code != RESP_SUCCESS) {
        rc = adm_fail(c, "broker metrics failed (%s)", adm_resp_err(resp, addr, eb, sizeof eb));
        rcmd_free(resp);
        return rc;
    }
    cJSON *samples = cJSON_CreateArray();
    if (adm_metrics_parse((const char *)resp->body, resp->body_len, samples, eb, sizeof eb) != 0)
        rc = adm_fail(c, "malformed metrics from %s: %s", addr, eb);
    rcmd_free(resp);
    if (rc == 0 && c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "broker", addr);
        cJSON_AddItemToObject(o, "samples", samples);
        samples = NULL;
        adm_print_json(c, o);
        cJSON_Delete(o);
    } else if (rc == 0) {
        const cJSON *s, *l;
        fprintf(c->out, "%-48s  %-64s  %s\n", "#Metric", "#Labels", "#Value");
        cJSON_ArrayForEach(s, samples)
        {
            char labels[1024] = "", value[64];
            size_t n = 0;
            cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "labels"))
            {
                int w = snprintf(labels + n, sizeof labels - n, "%s%s=%s", n ? "," : "", l->string,
                                 l->valuestring);
                if (w < 0 || (size_t)w >= sizeof labels - n)
                    break;
                n += (size_t)w;
            }
            fmt_value(cJSON_GetObjectItemCaseSensitive(s, "value"), value, sizeof value);
            fprintf(c->out, "%-48s  %-64s  %s\n", adm_jstr(s, "name"), labels[0] ? labels : "-",
                    value);
        }
    }
    cJSON_Delete(samples);
    return rc;
}

/* ---- brokerThroughput ---------------------------------------------------------------------- */

double adm_rate_mean(const cJSON *rates, int span)
{
    int n = cJSON_GetArraySize(rates), k = span < n ? span : n;
    double sum = 0;
    if (k <= 0)
        return 0;
    for (const cJSON *v = cJSON_GetArrayItem(rates, n - k); v; v = v->next)
        sum += v->valuedouble;
    return sum / k;
}

/* One broker's answer, or NULL with the reason in @why. */
static cJSON *throughput_of(const char *addr, int seconds, char *why, size_t cap)
{
    struct rcmd req, *resp = NULL;
    char eb[ERR_MAX];
    rcmd_init_request(&req, REQ_GET_BROKER_THROUGHPUT);
    rcmd_ext_add_i64(&req, "seconds", seconds);
    if (adm_call(addr, &req, &resp, eb, sizeof eb) != 0) {
        snprintf(why, cap, "no answer from %s: %s", addr, eb);
        return NULL;
    }
    cJSON *j = NULL;
    if (resp->code == RESP_REQUEST_CODE_NOT_SUPPORTED)
        snprintf(why, cap,
                 "the broker at %s does not support GET_BROKER_THROUGHPUT (request %d): not a "
                 "FerryMQ broker, or one older than brokerThroughput",
                 addr, REQ_GET_BROKER_THROUGHPUT);
    else if (resp->code != RESP_SUCCESS)
        snprintf(why, cap, "%s", adm_resp_err(resp, addr, eb, sizeof eb));
    else if (!(j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len)) ||
             !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "put")) ||
             !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "get"))) {
        snprintf(why, cap, "malformed answer from %s", addr);
        cJSON_Delete(j);
        j = NULL;
    }
    rcmd_free(resp);
    return j;
}

static const int mean_spans[3] = {10, 60, 600};

static void print_throughput_row(const struct ctx *c, const cJSON *t)
{
    const cJSON *put = cJSON_GetObjectItemCaseSensitive(t, "put");
    const cJSON *get = cJSON_GetObjectItemCaseSensitive(t, "get");
    const char *name = adm_jstr(t, "brokerName");
    char id[24] = "-";
    if (cJSON_GetObjectItemCaseSensitive(t, "brokerId"))
        snprintf(id, sizeof id, "%lld", adm_jnum(t, "brokerId"));
    fprintf(c->out, "%-20s %-4s %-22s", name[0] ? name : "-", id, adm_jstr(t, "brokerAddr"));
    if (!put || !get) {
        fprintf(c->out, " %s\n", adm_jstr(t, "error"));
        return;
    }
    for (int i = 0; i < 3; i++)
        fprintf(c->out, " %11.2f", adm_rate_mean(put, mean_spans[i]));
    for (int i = 0; i < 3; i++)
        fprintf(c->out, " %11.2f", adm_rate_mean(get, mean_spans[i]));
    fprintf(c->out, " %12lld %12lld\n", adm_jnum(t, "putTotal"), adm_jnum(t, "getTotal"));
}

int cmd_broker_throughput(const struct ctx *c, const char *addr, const char *cluster, int seconds)
{
    cJSON *targets, *out = cJSON_CreateArray(), *t;
    int rc = 0;
    if (!(targets = adm_addr_or_members(c, addr, cluster))) {
        cJSON_Delete(out);
        return 1;
    }
    cJSON_ArrayForEach(t, targets) /* one broker after the other: a cluster has a few */
    {
        const char *a = adm_jstr(t, "addr");
        char why[ERR_MAX + 128];
        cJSON *j = throughput_of(a, seconds, why, sizeof why);
        if (!j) {
            rc = adm_fail(c, "%s", why);
            j = cJSON_CreateObject();
            if (adm_jstr(t, "brokerName")[0])
                cJSON_AddStringToObject(j, "brokerName", adm_jstr(t, "brokerName"));
            if (cJSON_GetObjectItemCaseSensitive(t, "brokerId"))
                cJSON_AddNumberToObject(j, "brokerId", (double)adm_jnum(t, "brokerId"));
            cJSON_AddStringToObject(j, "brokerAddr", a);
            cJSON_AddStringToObject(j, "error", why);
        }
        cJSON_AddItemToArray(out, j);
    }
    if (c->json) {
        adm_print_json(c, out);
    } else {
        fprintf(c->out, "%-20s %-4s %-22s %11s %11s %11s %11s %11s %11s %12s %12s\n", "#Broker",
                "#ID", "#Addr", "#Put/s 10s", "#Put/s 60s", "#Put/s 600s", "#Get/s 10s",
                "#Get/s 60s", "#Get/s 600s", "#PutTotal", "#GetTotal");
        cJSON_ArrayForEach(t, out)
        {
            print_throughput_row(c, t);
        }
    }
    cJSON_Delete(out);
    cJSON_Delete(targets);
    return rc;
}
