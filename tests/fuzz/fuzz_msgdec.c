/* libFuzzer entry point for the client's pull response decoder, msgdec_batch()
 * (src/client/msgdec.c): the body of a PULL_MESSAGE response, a run of stored records.
 *
 * The body is decoded from an exact-size heap copy. The decoder must accept exactly the bodies
 * that are a run of records msg_parse() accepts (an independent walk), and give one message per
 * record with the record's queue fields, its body (or the inflated one for a compressed
 * record), NUL-terminated topic, ids and property strings inside the batch, and property
 * lookups that find each property's first value. msgdec_filter() and the reference counting
 * then run on the batch; ASan/LSan check that everything is freed. */
#include "client/consumer_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "store/msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_msgdec: %s\n", what);
    abort();
}

static int keep_odd(const struct ferry_message_ext *m, void *arg)
{
    (void)arg;
    return (m->queue_offset & 1) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Bodies past the client's inflate limit only cost time. */
    if (size > (1u << 20))
        return 0;
    log_min_level = LOG_LEVEL_ERROR; /* "cannot decompress" warnings are expected */
    uint8_t *buf = ferry_malloc(size ? size : 1);
    memcpy(buf, data, size);

    /* Reference: how many records, and is it a clean run of them. */
    size_t nrec = 0, pos = 0;
    int valid = 1;
    while (pos < size) {
        struct msg_view v;
        if (msg_parse(buf + pos, size - pos, &v) != 0) {
            valid = 0;
            break;
        }
        pos += v.total_size;
        nrec++;
    }

    struct msg_batch *b = NULL;
    int rc = msgdec_batch(buf, size, "broker-a", &b);
    if (rc != 0) {
        if (rc != FERRY_EPROTO || b)
            die("msgdec_batch: unexpected failure");
        if (valid)
            die("msgdec_batch refused a run of valid records");
        ferry_free(buf);
        return 0;
    }
    if (!valid)
        die("msgdec_batch accepted a body msg_parse refuses");
    if (!b || b->n != nrec)
        die("message count differs from the record count");

    pos = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct ferry_message_ext *m = &b->msgs[i];
        struct msg_view v;
        msg_parse(buf + pos, size - pos, &v);
        pos += v.total_size;
        if (m->queue_id != v.queue_id || m->queue_offset != v.queue_offset ||
            m->commitlog_offset != v.phys_offset || m->flag != v.flag ||
            m->reconsume_times != v.reconsume_times || m->born_timestamp != v.born_ts ||
            m->store_timestamp != v.store_ts)
            die("a message's fields differ from its record");
        if (strcmp(m->broker_name, "broker-a") != 0)
            die("broker name lost");
        int compressed = (v.sys_flag & SYSFLAG_COMPRESSED) != 0;
        if (!compressed &&
            (m->body_len != v.body_len || (v.body_len && memcmp(m->body, v.body, v.body_len))))
            die("a message's body differs from its record");
        if (m->body_len && !m->body)
            die("a body length without a body");
        char oid[64];
        msg_offset_id(&v, oid);
        if (strcmp(m->offset_msg_id, oid) != 0)
            die("offset message id differs");
        if (!m->topic || !m->msg_id)
            die("missing topic or message id");
        (void)strlen(m->topic);
        if (m->nprops > v.props_len / 2 + 1)
            die("more properties than the properties string can hold");
        for (size_t k = 0; k < m->nprops; k++) {
            const char *name = m->props[k].name, *val = m->props[k].value;
            if (!name || !val)
                die("a NULL property name or value");
            /* The lookup gives the first property of that name. */
            const char *got = ferry_message_property(m, name);
            size_t first = 0;
            while (strcmp(m->props[first].name, name) != 0)
                first++;
            if (got != m->props[first].value)
                die("ferry_message_property is not the first value of the name");
            (void)strlen(val);
        }
        if (m->tags != ferry_message_property(m, "TAGS") ||
            m->keys != ferry_message_property(m, "KEYS"))
            die("tags or keys differ from their properties");
    }

    size_t before = b->n;
    msgdec_filter(b, keep_odd, NULL);
    for (size_t i = 0; i < b->n; i++)
        if (!(b->msgs[i].queue_offset & 1))
            die("msgdec_filter kept a message it should drop");
    if (b->n > before)
        die("msgdec_filter grew the batch");
    msgdec_ref(b, 2);
    msgdec_unref(b, 1);
    msgdec_unref(b, 2);
    ferry_free(buf);
    return 0;
}
