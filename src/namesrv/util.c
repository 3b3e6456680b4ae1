/* Small containers for the name server: a string-keyed hash map (route and KV tables) and a
 * JSON text builder that can write what fastjson writes, including its unquoted integer map
 * keys, which no JSON library produces. Allocation failures abort (common/alloc.h). */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- smap ------------------------------------------------------------------------------- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

void smap_init(struct smap *m)
{
    memset(m, 0, sizeof *m);
}

void smap_clear(struct smap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->nb; i++) {
        struct smap_ent *e = m->b[i];
        while (e) {
            struct smap_ent *next = e->next;
            if (free_val)
                free_val(e->val);
            ferry_free(e->key);
            ferry_free(e);
            e = next;
        }
    }
    ferry_free(m->b);
    smap_init(m);
}

static struct smap_ent **find_slot(const struct smap *m, const char *key, uint32_t h)
{
    if (m->nb == 0)
        return NULL;
    struct smap_ent **pp = &m->b[h & (m->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    return pp;
}

void *smap_get(const struct smap *m, const char *key)
{
    struct smap_ent **pp = find_slot(m, key, hash_str(key));
    return pp && *pp ? (*pp)->val : NULL;
}

static void grow(struct smap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct smap_ent **b = ferry_calloc(nb, sizeof *b);
    for (size_t i = 0; i < m->nb; i++) {
        struct smap_ent *e = m->b[i];
        while (e) {
            struct smap_ent *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    ferry_free(m->b);
    m->b = b;
    m->nb = nb;
}

void *smap_put(struct smap *m, const char *key, void *val)
{
    uint32_t h = hash_str(key);
    struct smap_ent **pp = find_slot(m, key, h);
    if (pp && *pp) {
        void *old = (*pp)->val;
        (*pp)->val = val;
        return old;
    }
    if (m->n + 1 > m->nb * 3 / 4) {
        grow(m);
        pp = find_slot(m, key, h);
    }
    struct smap_ent *e = ferry_malloc(sizeof *e);
    e->key = ferry_strdup(key);
    e->val = val;
    e->hash = h;
    e->next = NULL;
    *pp = e;
    m->n++;
    return NULL;
}

void *smap_del(struct smap *m, const char *key)
{
    struct smap_ent **pp = find_slot(m, key, hash_str(key));
    if (!pp || !*pp)
        return NULL;
    struct smap_ent *e = *pp;
    void *val = e->val;
    *pp = e->next;
    ferry_free(e->key);
    ferry_free(e);
    m->n--;
    return val;
}

static struct smap_ent *first_from(const struct smap *m, size_t i)
{
    for (; i < m->nb; i++)
        if (m->b[i])
            return m->b[i];
    return NULL;
}

struct smap_ent *smap_first(const struct smap *m)
{
    return first_from(m, 0);
}

struct smap_ent *smap_next(const struct smap *m, const struct smap_ent *e)
{
    return e->next ? e->next : first_from(m, (e->hash & (m->nb - 1)) + 1);
}

static int cmp_ent(const void *a, const void *b)
{
    return strcmp((*(struct smap_ent *const *)a)->key, (*(struct smap_ent *const *)b)->key);
}

struct smap_ent **smap_sorted(const struct smap *m)
{
    if (m->n == 0)
        return NULL;
    struct smap_ent **v = ferry_malloc(m->n * sizeof *v);
    size_t i = 0;
    for (struct smap_ent *e = smap_first(m); e; e = smap_next(m, e))
        v[i++] = e;
    qsort(v, m->n, sizeof *v, cmp_ent);
    return v;
}

/* ---- jbuf ------------------------------------------------------------------------------- */

void jb_init(struct jbuf *b)
{
    memset(b, 0, sizeof *b);
}

void jb_free(struct jbuf *b)
{
    ferry_free(b->p);
    jb_init(b);
}

static void reserve(struct jbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = ferry_realloc(b->p, cap);
    b->cap = cap;
}

static void put(struct jbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void jb_putc(struct jbuf *b, char c)
{
    put(b, &c, 1);
}

void jb_raw(struct jbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

void jb_i64(struct jbuf *b, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRId64, v);
    put(b, t, (size_t)n);
}

static void put_u16(struct jbuf *b, unsigned u)
{
    char t[8];
    snprintf(t, sizeof t, "\\u%04X", u & 0xFFFFu);
    put(b, t, 6);
}

/* Decode one UTF-8 sequence at @s (NUL-terminated). Returns its length (1..4) and the code
 * point in *@cp, or 1 with U+FFFD for an invalid, overlong or truncated sequence. */
static int utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned c = s[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return n;
}

static void put_escaped(struct jbuf *b, uint32_t cp, int browser)
{
    switch (cp) {
    case '"':
        jb_raw(b, "\\\"");
        return;
    case '\\':
        jb_raw(b, "\\\\");
        return;
    case '\b':
        jb_raw(b, "\\b");
        return;
    case '\f':
        jb_raw(b, "\\f");
        return;
    case '\n':
        jb_raw(b, "\\n");
        return;
    case '\r':
        jb_raw(b, "\\r");
        return;
    case '\t':
        jb_raw(b, "\\t");
        return;
    case '/':
        jb_raw(b, browser ? "\\/" : "/");
        return;
    }
    if (cp < 0x20 || cp == 0x7F) {
        put_u16(b, cp);
    } else if (cp < 0x7F) {
        jb_putc(b, (char)cp);
    } else if (browser) {
        if (cp >= 0x10000) { /* UTF-16 surrogate pair, as Java strings hold it */
            put_u16(b, 0xD800 + ((cp - 0x10000) >> 10));
            put_u16(b, 0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            put_u16(b, cp);
        }
    } else {
        char t[4];
        int n;
        if (cp < 0x800) {
            t[0] = (char)(0xC0 | (cp >> 6));
            t[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            t[0] = (char)(0xE0 | (cp >> 12));
            t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            t[2] = (char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            t[0] = (char)(0xF0 | (cp >> 18));
            t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            t[3] = (char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        put(b, t, (size_t)n);
    }
}

void jb_str(struct jbuf *b, const char *s, int browser)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    jb_putc(b, '"');
    while (*u) {
        uint32_t cp;
        u += utf8_next(u, &cp);
        put_escaped(b, cp, browser);
    }
    jb_putc(b, '"');
}

void jb_key(struct jbuf *b, const char *key, int browser)
{
    jb_str(b, key, browser);
    jb_putc(b, ':');
}
