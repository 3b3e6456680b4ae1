/* The KV config table (Java KVConfigManager): namespace -> key -> value, kept in memory and
 * persisted to kvConfigPath as {"configTable":{"<ns>":{"<key>":"<value>"}}}.
 *
 * Happy path: a PUT/DELETE changes the table under its write lock on the I/O thread, then hands
 * the answer to the writer thread, which writes one snapshot for every change queued since its
 * last write (fs_replace: tmp + fsync + rename, the old file kept as .bak) and then answers
 * them all. So the fsync never runs on an I/O thread, and SUCCESS means "on disk".
 *
 * Failures: a failed write answers SYSTEM_ERROR naming the file (the change stays in memory and
 * is written with the next change). At load, a missing file is an empty table; a corrupt file
 * falls back to its .bak; with neither usable, start-up fails (FERRY_ECORRUPT).
 *
 * Threads: readers (GET, lists) take kv->lock for reading, writers for writing; kv->mu guards
 * the queue of answers waiting for the writer thread. */
#include "namesrv/namesrv_int.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "remoting/codes.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#define KV_FILE_MAX (64u * 1024 * 1024)

struct kv_job {
    struct kv_job *next;
    conn_t *conn;      /* referenced */
    struct rcmd *resp; /* built on the I/O thread; code and remark set by the writer */
};

struct kv {
    char path[FERRY_PATH_MAX];
    pthread_rwlock_t lock; /* the table */
    struct smap ns;        /* namespace -> struct smap * (key -> char *value) */
    pthread_mutex_t mu;    /* the queue below */
    pthread_cond_t cond;
    struct kv_job *head, **tail;
    int stop;
    int started;
    pthread_t thr;
};

static void free_table(void *p)
{
    struct smap *t = p;
    smap_clear(t, ferry_free);
    ferry_free(t);
}

/* The table of @ns, created when missing. @locks kv->lock for writing (or not yet shared). */
static struct smap *ns_table(kv_t *kv, const char *ns)
{
    struct smap *t = smap_get(&kv->ns, ns);
    if (!t) {
        t = ferry_malloc(sizeof *t);
        smap_init(t);
        smap_put(&kv->ns, ns, t);
    }
    return t;
}

static void put_locked(kv_t *kv, const char *ns, const char *key, const char *val)
{
    ferry_free(smap_put(ns_table(kv, ns), key, ferry_strdup(val)));
}

static int load_json(kv_t *kv, const char *text, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *table = root ? cJSON_GetObjectItemCaseSensitive(root, "configTable") : NULL;
    int rc = FERRY_ECORRUPT;
    if (!cJSON_IsObject(root) || (table && !cJSON_IsNull(table) && !cJSON_IsObject(table)))
        goto out;
    for (const cJSON *n = table ? table->child : NULL; n; n = n->next) {
        if (!cJSON_IsObject(n))
            goto out;
        for (const cJSON *e = n->child; e; e = e->next)
            if (!cJSON_IsString(e))
                goto out;
    }
    for (const cJSON *n = table ? table->child : NULL; n; n = n->next) {
        ns_table(kv, n->string); /* an emptied namespace stays, as in Java */
        for (const cJSON *e = n->child; e; e = e->next)
            put_locked(kv, n->string, e->string, e->valuestring);
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int load(kv_t *kv, char *err, size_t errlen)
{
    char *buf = NULL, bak[FERRY_PATH_MAX + 8];
    size_t len = 0;
    int rc = fs_read_file(kv->path, 1, &buf, &len, KV_FILE_MAX);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0) {
        snprintf(err, errlen, "cannot read kvConfigPath %s: %s", kv->path, ferry_strerror(rc));
        return rc;
    }
    if (len > 0 && load_json(kv, buf, len) != 0) {
        ferry_free(buf);
        buf = NULL;
        snprintf(bak, sizeof bak, "%s.bak", kv->path);
        if (fs_read_file(bak, 0, &buf, &len, KV_FILE_MAX) != 0 || load_json(kv, buf, len) != 0) {
            ferry_free(buf);
            snprintf(err, errlen,
                     "kvConfigPath %s is not a valid KV config ({\"configTable\":{...}}) and has "
                     "no usable .bak; repair or remove it",
                     kv->path);
            return FERRY_ECORRUPT;
        }
        log_warn(LOG_NAMESRV, "kvConfigPath %s is corrupt; loaded its backup %s", kv->path, bak);
    }
    ferry_free(buf);
    return 0;
}

int kv_new(const char *path, kv_t **out, char *err, size_t errlen)
{
    kv_t *kv = ferry_calloc(1, sizeof *kv);
    snprintf(kv->path, sizeof kv->path, "%s", path);
    pthread_rwlock_init(&kv->lock, NULL);
    pthread_mutex_init(&kv->mu, NULL);
    pthread_cond_init(&kv->cond, NULL);
    smap_init(&kv->ns);
    kv->tail = &kv->head;
    int rc = load(kv, err, errlen);
    if (rc != 0) {
        kv_free(kv);
        return rc;
    }
    *out = kv;
    return 0;
}

/* The file's content: every namespace and key, sorted. @locks kv->lock for reading. */
static void snapshot(kv_t *kv, struct jbuf *out)
{
    struct smap_ent **nv = smap_sorted(&kv->ns);
    jb_raw(out, "{\"configTable\":{");
    for (size_t i = 0; i < kv->ns.n; i++) {
        const struct smap *t = nv[i]->val;
        struct smap_ent **kvv = smap_sorted(t);
        if (i)
            jb_putc(out, ',');
        jb_key(out, nv[i]->key, 0);
        jb_putc(out, '{');
        for (size_t j = 0; j < t->n; j++) {
            if (j)
                jb_putc(out, ',');
            jb_key(out, kvv[j]->key, 0);
            jb_str(out, kvv[j]->val, 0);
        }
        jb_putc(out, '}');
        ferry_free(kvv);
    }
    jb_raw(out, "}}");
    ferry_free(nv);
}

/* Write the table to kv->path. @thread writer. Returns 0 or -errno. */
static int persist(kv_t *kv)
{
    struct jbuf b;
    char dir[FERRY_PATH_MAX];
    jb_init(&b);
    pthread_rwlock_rdlock(&kv->lock);
    snapshot(kv, &b);
    pthread_rwlock_unlock(&kv->lock);
    snprintf(dir, sizeof dir, "%s", kv->path);
    int rc = fs_mkdirs(dirname(dir));
    if (rc == 0)
        rc = fs_replace(kv->path, b.p, b.len);
    jb_free(&b);
    return rc;
}

/* Answer the jobs after one write. @thread writer. */
static void complete(kv_t *kv, struct kv_job *jobs)
{
    char remark[FERRY_PATH_MAX + 128];
    int rc = persist(kv);
    if (rc != 0) {
        snprintf(remark, sizeof remark, "KV config changed in memory but not persisted to %s: %s",
                 kv->path, ferry_strerror(rc));
        log_error(LOG_NAMESRV, "%s", remark);
    }
    while (jobs) {
        struct kv_job *next = jobs->next;
        if (rc != 0) {
            jobs->resp->code = RESP_SYSTEM_ERROR;
            jobs->resp->remark = (struct rstr){remark, strlen(remark)};
        }
        remoting_respond(jobs->conn, jobs->resp); /* -ENOTCONN: the peer left; nothing to do */
        remoting_conn_unref(jobs->conn);
        ferry_free(jobs->resp);
        ferry_free(jobs);
        jobs = next;
    }
}

static void *writer_main(void *arg)
{
    kv_t *kv = arg;
    pthread_mutex_lock(&kv->mu);
    for (;;) {
        while (!kv->head && !kv->stop)
            pthread_cond_wait(&kv->cond, &kv->mu);
        if (!kv->head)
            break; /* stopping, and everything is answered */
        struct kv_job *jobs = kv->head;
        kv->head = NULL;
        kv->tail = &kv->head;
        pthread_mutex_unlock(&kv->mu);
        complete(kv, jobs);
        pthread_mutex_lock(&kv->mu);
    }
    pthread_mutex_unlock(&kv->mu);
    return NULL;
}

int kv_start(kv_t *kv, char *err, size_t errlen)
{
    int rc = pthread_create(&kv->thr, NULL, writer_main, kv);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the KV writer thread: %s", strerror(rc));
        return -rc;
    }
    kv->started = 1;
    return 0;
}

void kv_free(kv_t *kv)
{
    if (!kv)
        return;
    if (kv->started) {
        pthread_mutex_lock(&kv->mu);
        kv->stop = 1;
        pthread_cond_signal(&kv->cond);
        pthread_mutex_unlock(&kv->mu);
        pthread_join(kv->thr, NULL);
    }
    if (kv->head) /* queued but never started: cannot happen through the handlers */
        complete(kv, kv->head);
    smap_clear(&kv->ns, free_table);
    pthread_cond_destroy(&kv->cond);
    pthread_mutex_destroy(&kv->mu);
    pthread_rwlock_destroy(&kv->lock);
    ferry_free(kv);
}

char *kv_get(kv_t *kv, const char *ns, const char *key)
{
    char *v = NULL;
    pthread_rwlock_rdlock(&kv->lock);
    const struct smap *t = smap_get(&kv->ns, ns);
    const char *val = t ? smap_get(t, key) : NULL;
    if (val)
        v = ferry_strdup(val);
    pthread_rwlock_unlock(&kv->lock);
    return v;
}

int kv_list_json(kv_t *kv, const char *ns, struct jbuf *out)
{
    int rc = FERRY_ENOTFOUND;
    pthread_rwlock_rdlock(&kv->lock);
    const struct smap *t = smap_get(&kv->ns, ns);
    if (t) {
        struct smap_ent **v = smap_sorted(t);
        jb_raw(out, "{\"table\":{");
        for (size_t i = 0; i < t->n; i++) {
            if (i)
                jb_putc(out, ',');
            jb_key(out, v[i]->key, 0);
            jb_str(out, v[i]->val, 0);
        }
        jb_raw(out, "}}");
        ferry_free(v);
        rc = 0;
    }
    pthread_rwlock_unlock(&kv->lock);
    return rc;
}

void kv_write(kv_t *kv, const char *ns, const char *key, const char *val, conn_t *conn,
              const struct rcmd *req)
{
    pthread_rwlock_wrlock(&kv->lock);
    if (val) {
        put_locked(kv, ns, key, val);
        log_info(LOG_NAMESRV, "putKVConfig namespace %s key %s value %s", ns, key, val);
    } else {
        struct smap *t = smap_get(&kv->ns, ns);
        char *old = t ? smap_del(t, key) : NULL;
        if (old)
            log_info(LOG_NAMESRV, "deleteKVConfig namespace %s key %s value %s", ns, key, old);
        ferry_free(old);
    }
    pthread_rwlock_unlock(&kv->lock);

    struct kv_job *job = ferry_malloc(sizeof *job);
    job->next = NULL;
    job->conn = conn;
    job->resp = ferry_malloc(sizeof *job->resp);
    rcmd_init_response(job->resp, req, RESP_SUCCESS, NULL);
    remoting_conn_ref(conn);
    pthread_mutex_lock(&kv->mu);
    *kv->tail = job;
    kv->tail = &job->next;
    pthread_cond_signal(&kv->cond);
    pthread_mutex_unlock(&kv->mu);
}
