/* The controller's replicated state machine (state.h). */
#include "controller/state.h"

#include "common/alloc.h"
#include "common/err.h"
#include "controller/codes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS (16 + 5 * CTL_REPLICAS_MAX)

void ctl_state_init(struct ctl_state *st)
{
    memset(st, 0, sizeof *st);
}

void ctl_state_free(struct ctl_state *st)
{
    ferry_free(st->sets);
    memset(st, 0, sizeof *st);
}

int ctl_token_ok(const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (n == 0 || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

struct ctl_set *ctl_state_find(const struct ctl_state *st, const char *name)
{
    for (int i = 0; i < st->n_sets; i++)
        if (!strcmp(st->sets[i].name, name))
            return &st->sets[i];
    return NULL;
}

const struct ctl_replica *ctl_set_replica(const struct ctl_set *s, int64_t id)
{
    for (int i = 0; i < s->n_rep; i++)
        if (s->rep[i].id == id)
            return &s->rep[i];
    return NULL;
}

int ctl_set_in_sync(const struct ctl_set *s, int64_t id)
{
    for (int i = 0; i < s->n_ss; i++)
        if (s->ss[i] == id)
            return 1;
    return 0;
}

static const struct ctl_result *result(struct ctl_state *st, const struct ctl_set *s, int code,
                                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static const struct ctl_result *result(struct ctl_state *st, const struct ctl_set *s, int code,
                                       const char *fmt, ...)
{
    struct ctl_result *r = &st->last;
    memset(r, 0, sizeof *r);
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->remark, sizeof r->remark, fmt, ap);
    va_end(ap);
    if (s) {
        r->master_id = s->master_id;
        r->master_epoch = s->master_epoch;
        r->ss_epoch = s->ss_epoch;
        const struct ctl_replica *m = s->master_id ? ctl_set_replica(s, s->master_id) : NULL;
        if (m)
            snprintf(r->master_addr, sizeof r->master_addr, "%s", m->addr);
    }
    return r;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_i32(const char *s, int32_t *out)
{
    int64_t v;
    if (parse_i64(s, &v) || v < INT32_MIN || v > INT32_MAX)
        return -1;
    *out = (int32_t)v;
    return 0;
}

/* Split @buf (modified) at single spaces into at most MAX_TOKENS tokens. */
static int tokenize(char *buf, char **tok)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
        if (n == MAX_TOKENS)
            return -1;
        tok[n++] = t;
    }
    return n;
}

static struct ctl_set *add_set(struct ctl_state *st, const char *cluster, const char *name)
{
    if (st->n_sets == st->cap) {
        int cap = st->cap ? st->cap * 2 : 8;
        st->sets = ferry_realloc(st->sets, (size_t)cap * sizeof *st->sets);
        st->cap = cap;
    }
    struct ctl_set *s = &st->sets[st->n_sets++];
    memset(s, 0, sizeof *s);
    snprintf(s->cluster, sizeof s->cluster, "%s", cluster);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static const struct ctl_result *apply_claim(struct ctl_state *st, char **tok, int n, int reg)
{
    int64_t id;
    if (n != 5 || !ctl_token_ok(tok[1], CTL_NAME_MAX) || !ctl_token_ok(tok[2], CTL_NAME_MAX) ||
        parse_i64(tok[3], &id) || !ctl_token_ok(tok[4], CTL_ADDR_MAX))
        return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed %s command", tok[0]);
    if (id <= 0)
        return result(st, NULL, CTL_RESP_BROKER_ID_INVALID, "brokerId %lld is not positive",
                      (long long)id);
    struct ctl_set *s = ctl_state_find(st, tok[2]);
    if (s && strcmp(s->cluster, tok[1]))
        return result(st, s, CTL_RESP_INVALID_REQUEST,
                      "broker set %s belongs to cluster %s, not %s", tok[2], s->cluster, tok[1]);
    const struct ctl_replica *r = s ? ctl_set_replica(s, id) : NULL;
    if (!reg) { /* APPLY */
        if (r && strcmp(r->addr, tok[4]))
            return result(st, s, CTL_RESP_BROKER_ID_INVALID,
                          "brokerId %lld of %s is already taken by %s", (long long)id, tok[2],
                          r->addr);
        if (r)
            return result(st, s, CTL_RESP_SUCCESS, "brokerId %lld already applied", (long long)id);
        if (s && s->n_rep == CTL_REPLICAS_MAX)
            return result(st, s, CTL_RESP_BROKER_ID_INVALID, "broker set %s is full (%d replicas)",
                          tok[2], CTL_REPLICAS_MAX);
        if (!s)
            s = add_set(st, tok[1], tok[2]);
        struct ctl_replica *nr = &s->rep[s->n_rep++];
        memset(nr, 0, sizeof *nr);
        nr->id = id;
        snprintf(nr->addr, sizeof nr->addr, "%s", tok[4]);
        return result(st, s, CTL_RESP_SUCCESS, "brokerId %lld applied", (long long)id);
    }
    /* REG: the id must have been applied; the address may change (a restart). */
    if (!r)
        return result(st, s, CTL_RESP_BROKER_NEED_TO_BE_REGISTERED,
                      "brokerId %lld of %s has not applied for its id", (long long)id, tok[2]);
    struct ctl_replica *wr = (struct ctl_replica *)r;
    snprintf(wr->addr, sizeof wr->addr, "%s", tok[4]);
    /* A set that never had a master takes its first registered broker; a set whose master is
     * gone takes a registering member of its sync state set. */
    if (s->master_id == 0 && (s->master_epoch == 0 || ctl_set_in_sync(s, id))) {
        s->master_id = id;
        s->master_epoch++;
        s->n_ss = 1;
        s->ss[0] = id;
        s->ss_epoch++;
        return result(st, s, CTL_RESP_SUCCESS, "brokerId %lld registered and elected master",
                      (long long)id);
    }
    return result(st, s, CTL_RESP_SUCCESS, "brokerId %lld registered", (long long)id);
}

static const struct ctl_result *apply_alter(struct ctl_state *st, char **tok, int n)
{
    int64_t master, cnt, ids[CTL_REPLICAS_MAX];
    int32_t mepoch, ssepoch;
    if (n < 6 || !ctl_token_ok(tok[1], CTL_NAME_MAX) || parse_i64(tok[2], &master) ||
        parse_i32(tok[3], &mepoch) || parse_i32(tok[4], &ssepoch) || parse_i64(tok[5], &cnt) ||
        cnt < 0 || cnt > CTL_REPLICAS_MAX || n != 6 + cnt)
        return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed ALTER command");
    for (int i = 0; i < cnt; i++)
        if (parse_i64(tok[6 + i], &ids[i]))
            return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed ALTER command");
    struct ctl_set *s = ctl_state_find(st, tok[1]);
    if (!s)
        return result(st, NULL, CTL_RESP_BROKER_METADATA_NOT_EXIST, "broker set %s is unknown",
                      tok[1]);
    if (mepoch != s->master_epoch)
        return result(st, s, CTL_RESP_FENCED_MASTER_EPOCH,
                      "masterEpoch %d is stale: the current one is %d", mepoch, s->master_epoch);
    if (master != s->master_id)
        return result(st, s, CTL_RESP_INVALID_MASTER, "broker %lld is not the master of %s",
                      (long long)master, s->name);
    if (ssepoch != s->ss_epoch)
        return result(st, s, CTL_RESP_FENCED_SYNC_STATE_SET_EPOCH,
                      "syncStateSetEpoch %d is stale: the current one is %d", ssepoch, s->ss_epoch);
    int has_master = 0;
    for (int i = 0; i < cnt; i++) {
        if (!ctl_set_replica(s, ids[i]))
            return result(st, s, CTL_RESP_INVALID_REPLICAS, "broker %lld is not a replica of %s",
                          (long long)ids[i], s->name);
        for (int j = 0; j < i; j++)
            if (ids[j] == ids[i])
                return result(st, s, CTL_RESP_INVALID_REPLICAS, "broker %lld is listed twice",
                              (long long)ids[i]);
        if (ids[i] == master)
            has_master = 1;
    }
    if (!has_master)
        return result(st, s, CTL_RESP_INVALID_REPLICAS,
                      "the new sync state set must contain the master");
    s->n_ss = (int)cnt;
    memcpy(s->ss, ids, (size_t)cnt * sizeof ids[0]);
    s->ss_epoch++;
    return result(st, s, CTL_RESP_SUCCESS, "sync state set of %s altered", s->name);
}

static const struct ctl_result *apply_elect(struct ctl_state *st, char **tok, int n)
{
    int64_t designated, unclean, cnt;
    struct {
        int64_t id, alive, off;
        int32_t epoch;
    } v[CTL_REPLICAS_MAX];
    if (n < 5 || !ctl_token_ok(tok[1], CTL_NAME_MAX) || parse_i64(tok[2], &designated) ||
        parse_i64(tok[3], &unclean) || parse_i64(tok[4], &cnt) || cnt < 0 ||
        cnt > CTL_REPLICAS_MAX || n != 5 + 4 * cnt)
        return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed ELECT command");
    for (int i = 0; i < cnt; i++) {
        char **t = tok + 5 + 4 * i;
        if (parse_i64(t[0], &v[i].id) || parse_i64(t[1], &v[i].alive) ||
            parse_i64(t[2], &v[i].off) || parse_i32(t[3], &v[i].epoch))
            return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed ELECT command");
    }
    struct ctl_set *s = ctl_state_find(st, tok[1]);
    if (!s)
        return result(st, NULL, CTL_RESP_BROKER_METADATA_NOT_EXIST, "broker set %s is unknown",
                      tok[1]);
    /* Record what the replicas last reported. */
    for (int i = 0; i < cnt; i++) {
        struct ctl_replica *r = (struct ctl_replica *)ctl_set_replica(s, v[i].id);
        if (r && v[i].alive) {
            r->max_offset = v[i].off;
            r->epoch = v[i].epoch;
        }
    }

    int master_alive = 0;
    for (int i = 0; i < cnt; i++)
        if (v[i].id == s->master_id && v[i].alive)
            master_alive = 1;
    if (designated > 0) {
        int ok = 0;
        for (int i = 0; i < cnt; i++)
            if (v[i].id == designated && v[i].alive && ctl_set_replica(s, designated))
                ok = 1;
        if (!ok)
            return result(st, s, CTL_RESP_BROKER_NOT_ALIVE, "broker %lld of %s is not alive",
                          (long long)designated, s->name);
        if (!ctl_set_in_sync(s, designated) && !unclean)
            return result(st, s, CTL_RESP_ELECT_MASTER_FAILED,
                          "broker %lld is not in the sync state set of %s", (long long)designated,
                          s->name);
        if (designated == s->master_id)
            return result(st, s, CTL_RESP_MASTER_STILL_EXIST, "broker %lld is already the master",
                          (long long)designated);
    } else if (s->master_id != 0 && master_alive) {
        return result(st, s, CTL_RESP_MASTER_STILL_EXIST, "master %lld of %s is alive",
                      (long long)s->master_id, s->name);
    }
    int64_t best = designated > 0 ? designated : 0, best_off = -1;
    for (int pass = 0; pass < 2 && best == 0; pass++) {
        if (pass == 1 && !unclean)
            break;
        for (int i = 0; i < cnt; i++) {
            if (!v[i].alive || !ctl_set_replica(s, v[i].id) || v[i].id == s->master_id)
                continue;
            if (pass == 0 && !ctl_set_in_sync(s, v[i].id))
                continue;
            if (v[i].off > best_off || (v[i].off == best_off && v[i].id < best)) {
                best = v[i].id;
                best_off = v[i].off;
            }
        }
    }
    if (best == 0) {
        if (s->master_id == 0)
            return result(st, s, CTL_RESP_MASTER_NOT_AVAILABLE,
                          "no alive replica of %s can be master", s->name);
        /* The master is gone and nobody may replace it: no master, and the old one fenced. */
        int64_t old = s->master_id;
        s->master_id = 0;
        s->master_epoch++;
        return result(st, s, CTL_RESP_MASTER_NOT_AVAILABLE,
                      "master %lld of %s is not alive and no member of the sync state set is: "
                      "no master",
                      (long long)old, s->name);
    }
    s->master_id = best;
    s->master_epoch++;
    s->n_ss = 1;
    s->ss[0] = best;
    s->ss_epoch++;
    return result(st, s, CTL_RESP_SUCCESS, "broker %lld elected master of %s", (long long)best,
                  s->name);
}

static const struct ctl_result *apply_node(struct ctl_state *st, char **tok, int n)
{
    int64_t idx;
    if (n != 3 || parse_i64(tok[1], &idx) || idx < 0 || idx >= CTL_NODES_MAX ||
        !ctl_token_ok(tok[2], CTL_ADDR_MAX))
        return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed NODE command");
    snprintf(st->node_addr[idx], sizeof st->node_addr[idx], "%s", tok[2]);
    return result(st, NULL, CTL_RESP_SUCCESS, "controller %lld at %s", (long long)idx, tok[2]);
}

const struct ctl_result *ctl_state_apply(struct ctl_state *st, const char *cmd, size_t len)
{
    char buf[4096];
    char *tok[MAX_TOKENS];
    if (len == 0 || len >= sizeof buf || memchr(cmd, 0, len))
        return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed command");
    memcpy(buf, cmd, len);
    buf[len] = 0;
    int n = tokenize(buf, tok);
    if (n <= 0)
        return result(st, NULL, CTL_RESP_INVALID_REQUEST, "malformed command");
    if (!strcmp(tok[0], "APPLY"))
        return apply_claim(st, tok, n, 0);
    if (!strcmp(tok[0], "REG"))
        return apply_claim(st, tok, n, 1);
    if (!strcmp(tok[0], "ALTER"))
        return apply_alter(st, tok, n);
    if (!strcmp(tok[0], "ELECT"))
        return apply_elect(st, tok, n);
    if (!strcmp(tok[0], "NODE"))
        return apply_node(st, tok, n);
    return result(st, NULL, CTL_RESP_INVALID_REQUEST, "unknown command %.32s", tok[0]);
}

/* ---- snapshots ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 64;
        b->p = ferry_realloc(b->p, b->cap);
    }
}

char *ctl_state_dump(const struct ctl_state *st, size_t *len)
{
    struct sbuf b = {ferry_malloc(1024), 0, 1024};
    b.p[0] = 0;
    sb_printf(&b, "FERRYCTL 1\n");
    for (int i = 0; i < CTL_NODES_MAX; i++)
        if (st->node_addr[i][0])
            sb_printf(&b, "NODE %d %s\n", i, st->node_addr[i]);
    for (int i = 0; i < st->n_sets; i++) {
        const struct ctl_set *s = &st->sets[i];
        sb_printf(&b, "SET %s %s %lld %d %d %d", s->cluster, s->name, (long long)s->master_id,
                  s->master_epoch, s->ss_epoch, s->n_ss);
        for (int j = 0; j < s->n_ss; j++)
            sb_printf(&b, " %lld", (long long)s->ss[j]);
        sb_printf(&b, " %d", s->n_rep);
        for (int j = 0; j < s->n_rep; j++)
            sb_printf(&b, " %lld %s %lld %d", (long long)s->rep[j].id, s->rep[j].addr,
                      (long long)s->rep[j].max_offset, s->rep[j].epoch);
        sb_printf(&b, "\n");
    }
    *len = b.len;
    return b.p;
}

static int restore_line(struct ctl_state *st, char *line)
{
    char *tok[MAX_TOKENS];
    int n = tokenize(line, tok);
    int64_t v, cnt;
    if (n == 0)
        return 0;
    if (!strcmp(tok[0], "FERRYCTL"))
        return n == 2 && !strcmp(tok[1], "1") ? 0 : -1;
    if (!strcmp(tok[0], "NODE")) {
        if (n != 3 || parse_i64(tok[1], &v) || v < 0 || v >= CTL_NODES_MAX ||
            !ctl_token_ok(tok[2], CTL_ADDR_MAX))
            return -1;
        snprintf(st->node_addr[v], sizeof st->node_addr[v], "%s", tok[2]);
        return 0;
    }
    if (strcmp(tok[0], "SET") || n < 8 || !ctl_token_ok(tok[1], CTL_NAME_MAX) ||
        !ctl_token_ok(tok[2], CTL_NAME_MAX) || ctl_state_find(st, tok[2]))
        return -1;
    struct ctl_set *s = add_set(st, tok[1], tok[2]);
    int k = 3;
    if (parse_i64(tok[k++], &s->master_id) || parse_i32(tok[k++], &s->master_epoch) ||
        parse_i32(tok[k++], &s->ss_epoch) || parse_i64(tok[k++], &cnt) || cnt < 0 ||
        cnt > CTL_REPLICAS_MAX || k + cnt >= n)
        return -1;
    s->n_ss = (int)cnt;
    for (int j = 0; j < cnt; j++)
        if (parse_i64(tok[k++], &s->ss[j]))
            return -1;
    if (parse_i64(tok[k++], &cnt) || cnt < 0 || cnt > CTL_REPLICAS_MAX || k + 4 * cnt != n)
        return -1;
    s->n_rep = (int)cnt;
    for (int j = 0; j < cnt; j++) {
        struct ctl_replica *r = &s->rep[j];
        if (parse_i64(tok[k++], &r->id) || !ctl_token_ok(tok[k], CTL_ADDR_MAX))
            return -1;
        snprintf(r->addr, sizeof r->addr, "%s", tok[k++]);
        if (parse_i64(tok[k++], &r->max_offset) || parse_i32(tok[k++], &r->epoch))
            return -1;
    }
    return 0;
}

int ctl_state_restore(struct ctl_state *st, const char *text, size_t len)
{
    ctl_state_free(st);
    char *copy = ferry_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strlen(line) > 4000 || restore_line(st, line)) {
            rc = FERRY_ECORRUPT;
            break;
        }
    }
    ferry_free(copy);
    if (rc)
        ctl_state_free(st);
    return rc;
}
