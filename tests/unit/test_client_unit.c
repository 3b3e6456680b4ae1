/* libferry pieces without a network: route parsing (both JSON forms, slaves), UNIQ_KEY, the latency
 * fault table, queue selection and the hash selector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/consumer_int.h"
#include "common/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* REMOTING.md §2.3.3, byte for byte (fastjson: unquoted integer map keys). */
static const char fastjson_route[] =
    "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"127.0.0.1:10911\"},\"brokerName\":\"broker-a\","
    "\"cluster\":\"DefaultCluster\"}],\n"
    " \"filterServerTable\":{},\n"
    " \"queueDatas\":[{\"brokerName\":\"broker-a\",\"perm\":6,\"readQueueNums\":4,"
    "\"topicSysFlag\":0,\"writeQueueNums\":4}]}";

static void test_route_fastjson(void **state)
{
    (void)state;
    struct route r;
    assert_int_equal(route_parse(fastjson_route, strlen(fastjson_route), 0, &r), 0);
    assert_int_equal(r.nbrokers, 1);
    assert_string_equal(r.brokers[0].name, "broker-a");
    assert_string_equal(route_addr(&r, "broker-a"), "127.0.0.1:10911");
    assert_int_equal(r.nmq, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(r.mqs[i].broker, "broker-a");
        assert_int_equal(r.mqs[i].qid, i);
    }
    route_clear(&r);
}

/* route_cache_borrow: a borrowed snapshot stays intact while the route is replaced (from
 * another thread, many times), borrowers see the new route after a replacement, and every
 * snapshot is freed once the cache and the last borrower let go (ASan checks the leaks). */
struct borrow_arg {
    struct route_cache *rc;
    int rounds;
};

static void *replace_routes(void *arg)
{
    struct borrow_arg *a = arg;
    for (int i = 0; i < a->rounds; i++) {
        struct route r;
        if (route_parse(fastjson_route, strlen(fastjson_route), 1 + i % 4, &r) != 0)
            return (void *)1;
        route_cache_install(a->rc, "T", &r);
    }
    return NULL;
}

static void test_route_borrow(void **state)
{
    (void)state;
    struct route_cache rc;
    struct route_snap *s1, *s2;
    struct route r;
    assert_int_equal(route_cache_init(&rc, "127.0.0.1:1"), 0);
    assert_int_equal(route_parse(fastjson_route, strlen(fastjson_route), 0, &r), 0);
    assert_int_equal(route_cache_install(&rc, "T", &r), 0);
    assert_int_equal(route_cache_borrow(&rc, "T", 1000, clock_mono_ms(), &s1), 0);
    assert_int_equal(route_cache_borrow(&rc, "T", 1000, clock_mono_ms(), &s2), 0);
    assert_ptr_equal(s1, s2); /* one copy per fetched route, not per send */
    route_snap_release(s2);

    struct borrow_arg a = {&rc, 2000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, replace_routes, &a), 0);
    for (int i = 0; i < 2000; i++) {
        struct route_snap *s;
        assert_int_equal(route_cache_borrow(&rc, "T", 1000, clock_mono_ms(), &s), 0);
        assert_true(s->r.nmq >= 1 && s->r.nmq <= 4);
        for (int k = 0; k < s->r.nmq; k++) {
            assert_string_equal(s->r.mqs[k].broker, "broker-a");
            assert_int_equal(s->r.mqs[k].qid, k);
        }
        assert_string_equal(route_addr(&s->r, "broker-a"), "127.0.0.1:10911");
        route_snap_release(s);
    }
    void *ret;
    pthread_join(t, &ret);
    assert_null(ret);
    /* The first snapshot did not change under the replacements. */
    assert_int_equal(s1->r.nmq, 4);
    assert_int_equal(s1->r.mqs[3].qid, 3);
    /* The last replacement (1 + 1999 % 4 = 4 queues) is what a new borrow sees. */
    assert_int_equal(route_parse(fastjson_route, strlen(fastjson_route), 2, &r), 0);
    assert_int_equal(route_cache_install(&rc, "T", &r), 0);
    assert_int_equal(route_cache_borrow(&rc, "T", 1000, clock_mono_ms(), &s2), 0);
    assert_ptr_not_equal(s1, s2);
    assert_int_equal(s2->r.nmq, 2);
    /* route_cache_get (consumers, tx producer) still hands out copies of the same route. */
    assert_int_equal(route_cache_get(&rc, "T", 1000, &r), 0);
    assert_int_equal(r.nmq, 2);
    route_clear(&r);
    route_cache_destroy(&rc); /* the borrowers' snapshots outlive the cache */
    assert_int_equal(s1->r.nmq, 4);
    route_snap_release(s1);
    route_snap_release(s2);
}

static void test_route_standard_json(void **state)
{
    (void)state;
    /* Quoted keys, two brokers out of order, a slave, a read-only broker, a broker without a
     * master, and a string value that looks like an unquoted key. */
    const char *json =
        "{\"brokerDatas\":[{\"brokerAddrs\":{\"0\":\"10.0.0.2:10911\",\"1\":\"10.0.0.3:10911\"},"
        "\"brokerName\":\"b\",\"cluster\":\"C\"},{\"brokerAddrs\":{\"0\":\"10.0.0.1:10911\"},"
        "\"brokerName\":\"a\",\"cluster\":\"{0:x\"},{\"brokerAddrs\":{\"0\":\"10.0.0.4:1\"},"
        "\"brokerName\":\"ro\",\"cluster\":\"C\"},{\"brokerAddrs\":{\"1\":\"10.0.0.5:1\"},"
        "\"brokerName\":\"slaveonly\",\"cluster\":\"C\"}],\"filterServerTable\":{},"
        "\"queueDatas\":[{\"brokerName\":\"b\",\"perm\":6,\"readQueueNums\":2,"
        "\"writeQueueNums\":2},{\"brokerName\":\"a\",\"perm\":7,\"readQueueNums\":8,"
        "\"writeQueueNums\":3},{\"brokerName\":\"ro\",\"perm\":4,\"readQueueNums\":4,"
        "\"writeQueueNums\":4},{\"brokerName\":\"slaveonly\",\"perm\":6,\"readQueueNums\":4,"
        "\"writeQueueNums\":4}]}";
    struct route r;
    assert_int_equal(route_parse(json, strlen(json), 0, &r), 0);
    assert_int_equal(r.nmq, 5);
    assert_string_equal(r.mqs[0].broker, "a");
    assert_int_equal(r.mqs[2].qid, 2);
    assert_string_equal(r.mqs[3].broker, "b");
    assert_int_equal(r.mqs[4].qid, 1);
    assert_string_equal(route_addr(&r, "b"), "10.0.0.2:10911");
    assert_null(route_addr(&r, "slaveonly"));
    route_clear(&r);
    /* The TBW102 fallback caps the queue count. */
    assert_int_equal(route_parse(json, strlen(json), 1, &r), 0);
    assert_int_equal(r.nmq, 2);
    route_clear(&r);
    /* Garbage. */
    assert_int_equal(route_parse("{\"queueDatas\":[", 15, 0, &r), FERRY_EPROTO);
    assert_int_equal(route_parse("{}", 2, 0, &r), FERRY_EPROTO);
}

/* Slave addresses (issue 8): the lowest non-zero brokerId is a broker's slave, in both JSON
 * forms; a broker listed with only its slave (master down) is readable but not writable, so
 * producers never send to it; ids that are not integers and empty addresses are ignored. */
static void test_route_slaves(void **state)
{
    (void)state;
    const char *fj =
        "{\"brokerDatas\":[{\"brokerAddrs\":{2:\"10.0.0.9:1\",0:\"10.0.0.1:1\",1:\"10.0.0.2:1\"},"
        "\"brokerName\":\"a\",\"cluster\":\"C\"},{\"brokerAddrs\":{1:\"10.0.0.3:1\"},"
        "\"brokerName\":\"b\",\"cluster\":\"C\"},{\"brokerAddrs\":{\"x\":\"10.0.0.4:1\","
        "3:\"\"},\"brokerName\":\"c\",\"cluster\":\"C\"}],"
        "\"queueDatas\":[{\"brokerName\":\"a\",\"perm\":6,\"readQueueNums\":2,"
        "\"writeQueueNums\":2},{\"brokerName\":\"b\",\"perm\":6,\"readQueueNums\":3,"
        "\"writeQueueNums\":3},{\"brokerName\":\"c\",\"perm\":6,\"readQueueNums\":1,"
        "\"writeQueueNums\":1}]}";
    struct route r, copy;
    assert_int_equal(route_parse(fj, strlen(fj), 0, &r), 0);
    assert_int_equal(r.nbrokers, 2); /* c has no usable address */
    assert_string_equal(route_addr(&r, "a"), "10.0.0.1:1");
    assert_string_equal(route_slave_addr(&r, "a"), "10.0.0.2:1");
    assert_null(route_addr(&r, "b"));
    assert_string_equal(route_slave_addr(&r, "b"), "10.0.0.3:1");
    assert_true(route_has_broker(&r, "b"));
    assert_false(route_has_broker(&r, "c"));
    assert_null(route_slave_addr(&r, "c"));
    /* writable: a's 2 queues only; readable: a's 2 and b's 3 */
    assert_int_equal(r.nmq, 2);
    for (int i = 0; i < r.nmq; i++)
        assert_string_equal(r.mqs[i].broker, "a");
    assert_int_equal(r.nrmq, 5);
    assert_string_equal(r.rmqs[2].broker, "b");
    assert_int_equal(r.rmqs[4].qid, 2);
    route_copy(&copy, &r);
    assert_string_equal(route_slave_addr(&copy, "b"), "10.0.0.3:1");
    route_clear(&copy);
    route_clear(&r);

    /* Standard JSON, master only: no slave. */
    const char *std = "{\"brokerDatas\":[{\"brokerAddrs\":{\"0\":\"10.0.0.1:1\"},"
                      "\"brokerName\":\"a\"}],\"queueDatas\":[{\"brokerName\":\"a\","
                      "\"perm\":6,\"readQueueNums\":1,\"writeQueueNums\":1}]}";
    assert_int_equal(route_parse(std, strlen(std), 0, &r), 0);
    assert_null(route_slave_addr(&r, "a"));
    assert_int_equal(r.nmq, 1);
    assert_int_equal(r.nrmq, 1);
    route_clear(&r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_uniq_key(void **state)
{
    (void)state;
    enum { N = 5000 };
    char(*keys)[33] = malloc(N * sizeof *keys);
    for (int i = 0; i < N; i++) {
        uniq_key_new(keys[i]);
        assert_int_equal(strlen(keys[i]), 32);
        for (int j = 0; j < 32; j++)
            assert_non_null(strchr("0123456789ABCDEF", keys[i][j]));
        /* ip, pid and the random part are fixed per process */
        assert_memory_equal(keys[i], keys[0], 20);
    }
    qsort(keys, N, sizeof *keys, cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(keys[i - 1], keys[i]);
    free(keys);
}

static void test_fault_table(void **state)
{
    (void)state;
    static const int64_t lat[] = {0,    49,   50,   99,   100,  549,   550,   999,
                                  1000, 1999, 2000, 2999, 3000, 14999, 15000, 99999};
    static const int64_t dur[] = {0,     0,     0,      0,      0,      0,      30000,  30000,
                                  60000, 60000, 120000, 120000, 180000, 180000, 600000, 600000};
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
        assert_int_equal(fault_duration(lat[i]), dur[i]);
    struct fault_table ft = {0};
    fault_update(&ft, "a", 10, 0, 1000);
    assert_true(fault_available(&ft, "a", 1000));
    fault_update(&ft, "a", 600, 0, 1000);
    assert_false(fault_available(&ft, "a", 1000));
    assert_false(fault_available(&ft, "a", 30999));
    assert_true(fault_available(&ft, "a", 31000));
    fault_update(&ft, "b", 1, 1, 1000); /* a failure counts as 30 s: 600 s out */
    assert_false(fault_available(&ft, "b", 600999));
    assert_true(fault_available(&ft, "b", 601000));
    assert_true(fault_available(&ft, "c", 0));
    fault_clear(&ft);
}

static void test_queue_selection(void **state)
{
    (void)state;
    struct mq mqs[6] = {{"a", 0}, {"a", 1}, {"b", 0}, {"b", 1}, {"c", 0}, {"c", 1}};
    struct route r = {.mqs = mqs, .nmq = 6};
    struct fault_table ft = {0};
    uint32_t counter = 0;
    int seen[6] = {0};
    /* Round-robin over all queues. */
    for (int i = 0; i < 12; i++)
        seen[mq_select(&r, &ft, NULL, &counter, 0)]++;
    for (int i = 0; i < 6; i++)
        assert_int_equal(seen[i], 2);
    /* b unavailable: never picked. */
    fault_update(&ft, "b", 0, 1, 0);
    for (int i = 0; i < 20; i++)
        assert_string_not_equal(r.mqs[mq_select(&r, &ft, NULL, &counter, 10)].broker, "b");
    /* Not the last broker when another is available. */
    for (int i = 0; i < 20; i++)
        assert_string_equal(r.mqs[mq_select(&r, &ft, "a", &counter, 10)].broker, "c");
    /* Everything unavailable: still a queue, avoiding the last broker. */
    fault_update(&ft, "a", 0, 1, 0);
    fault_update(&ft, "c", 0, 1, 0);
    for (int i = 0; i < 20; i++) {
        int idx = mq_select(&r, &ft, "a", &counter, 10);
        assert_true(idx >= 0 && idx < 6);
        assert_string_not_equal(r.mqs[idx].broker, "a");
    }
    /* Without fault avoidance (NULL table): round-robin avoiding the last broker. */
    for (int i = 0; i < 20; i++)
        assert_string_not_equal(r.mqs[mq_select(&r, NULL, "b", &counter, 10)].broker, "b");
    struct route empty = {0};
    assert_int_equal(mq_select(&empty, &ft, NULL, &counter, 0), -1);
    fault_clear(&ft);
}

static void test_hash_selector(void **state)
{
    (void)state;
    /* Java: "order-1".hashCode() == -1207111310; "abc".hashCode() == 96354. */
    assert_int_equal(java_hash("abc"), 96354);
    assert_int_equal(java_hash("order-1"), -1207111310);
    assert_int_equal(ferry_select_by_hash(8, NULL, "abc"), 96354 % 8);
    assert_int_equal(ferry_select_by_hash(7, NULL, "order-1"), 1207111310 % 7);
    for (int i = 0; i < 1000; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i * 7919);
        int q = ferry_select_by_hash(5, NULL, key);
        assert_true(q >= 0 && q < 5);
        assert_int_equal(q, ferry_select_by_hash(5, NULL, key));
    }
}

static void test_config(void **state)
{
    (void)state;
    struct ferry_producer_config cfg;
    ferry_producer_t *p = (ferry_producer_t *)1;
    ferry_producer_config_init(&cfg);
    assert_int_equal(cfg.sendMsgTimeout, 3000);
    assert_int_equal(cfg.retryTimesWhenSendFailed, 2);
    assert_int_equal(cfg.retryTimesWhenSendAsyncFailed, 2);
    assert_int_equal(cfg.retryAnotherBrokerWhenNotStoreOK, 0);
    assert_int_equal(cfg.compressMsgBodyOverHowmuch, 4096);
    assert_int_equal(cfg.maxMessageSize, 4 * 1024 * 1024);
    assert_int_equal(cfg.sendLatencyFaultEnable, 1);
    unsetenv("NAMESRV_ADDR");
    assert_int_equal(ferry_producer_new(&cfg, &p), FERRY_ECONFIG); /* no group */
    assert_null(p);
    snprintf(cfg.group, sizeof cfg.group, "G");
    assert_int_equal(ferry_producer_new(&cfg, &p), FERRY_ECONFIG); /* no name server */
    setenv("NAMESRV_ADDR", "127.0.0.1:1;127.0.0.1:2", 1);
    assert_int_equal(ferry_producer_new(&cfg, &p), 0);
    ferry_producer_free(p);
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "nohostport");
    assert_int_equal(ferry_producer_new(&cfg, &p), FERRY_ECONFIG);
    unsetenv("NAMESRV_ADDR");
    ferry_producer_free(NULL);
    /* Not started. */
    snprintf(cfg.namesrvAddr, sizeof cfg.namesrvAddr, "127.0.0.1:1");
    assert_int_equal(ferry_producer_new(&cfg, &p), 0);
    struct ferry_message m = {.topic = "T", .body = "x", .body_len = 1};
    assert_int_equal(ferry_send_sync(p, &m, NULL), FERRY_ESHUTDOWN);
    assert_int_equal(ferry_producer_start(p), 0);
    m.topic = "bad topic";
    assert_int_equal(ferry_send_sync(p, &m, NULL), FERRY_EINVAL);
    ferry_producer_shutdown(p);
    m.topic = "T";
    assert_int_equal(ferry_send_sync(p, &m, NULL), FERRY_ESHUTDOWN);
    assert_int_equal(ferry_producer_start(p), FERRY_ESHUTDOWN);
    ferry_producer_free(p);
}

extern const int client_abi_errs[];

/* ferry.h's own copy of the error values matches the internal table. */
static void test_public_error_values(void **state)
{
    (void)state;
    static const int internal[] = {FERRY_ETOOBIG,    FERRY_EINVAL,   FERRY_ECONFIG,
                                   FERRY_ENOTFOUND,  FERRY_EPROTO,   FERRY_EUNKNOWN,
                                   FERRY_ENOTSTORED, FERRY_ENOROUTE, FERRY_ESHUTDOWN};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++)
        assert_int_equal(client_abi_errs[i], internal[i]);
    assert_string_equal(ferry_strerror(FERRY_ENOTSTORED),
                        "the broker refused the message (not stored)");
}

/* A batch of @n fake messages with the given offsets (no records behind them). */
static struct msg_batch *fake_batch(const int64_t *offs, size_t n)
{
    struct msg_batch *b = calloc(1, sizeof *b);
    b->msgs = calloc(n, sizeof *b->msgs);
    b->n = n;
    atomic_init(&b->refs, 1);
    for (size_t i = 0; i < n; i++) {
        b->msgs[i].queue_offset = offs[i];
        b->msgs[i].body_len = 10;
    }
    return b;
}

/* The committed offset never passes a message that is not done, whatever order they finish. */
static void test_procq_out_of_order(void **state)
{
    (void)state;
    struct procq q;
    int64_t offs[] = {5, 6, 8, 9, 12}; /* gaps: filtered tags */
    struct msg_batch *b = fake_batch(offs, 5);
    procq_init(&q);
    assert_int_equal(procq_commit_offset(&q), -1);
    assert_int_equal(procq_add(&q, b, b->msgs, 5), 5);
    assert_int_equal(atomic_load(&b->refs), 6);
    assert_int_equal(procq_add(&q, b, b->msgs, 5), 0); /* a repeated pull adds nothing */
    assert_int_equal(procq_commit_offset(&q), 5);
    assert_int_equal(procq_span(&q), 7);
    assert_int_equal(procq_done(&q, 9), 1);
    assert_int_equal(procq_done(&q, 6), 1);
    assert_int_equal(procq_commit_offset(&q), 5); /* 5 still out */
    assert_int_equal(procq_done(&q, 7), 0);       /* never added */
    assert_int_equal(procq_done(&q, 5), 1);
    assert_int_equal(procq_commit_offset(&q), 8); /* 6 done, 8 out */
    assert_int_equal(procq_count(&q), 3);         /* 8, 9 (done, not at the head), 12 */
    assert_int_equal(procq_done(&q, 12), 1);
    assert_int_equal(procq_commit_offset(&q), 8);
    assert_int_equal(procq_done(&q, 8), 1);
    assert_int_equal(procq_commit_offset(&q), 13); /* all done: last + 1 */
    assert_int_equal(procq_count(&q), 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(atomic_load(&b->refs), 1);
    procq_destroy(&q);
    free(b->msgs);
    free(b);
}

/* Orderly take/untake: in order, a given-back entry comes first again, counted as reconsumed. */
static void test_procq_take(void **state)
{
    (void)state;
    struct procq q;
    struct pq_entry *e[8];
    int64_t offs[200];
    for (int i = 0; i < 200; i++)
        offs[i] = i;
    struct msg_batch *b = fake_batch(offs, 200);
    procq_init(&q);
    assert_int_equal(procq_add(&q, b, b->msgs, 100), 100);
    assert_int_equal(procq_add(&q, b, b->msgs + 100, 100), 100); /* the ring grows */
    assert_int_equal(procq_take(&q, 3, e), 3);
    assert_int_equal(e[0]->offset, 0);
    assert_int_equal(e[2]->offset, 2);
    procq_untake(&q);
    assert_int_equal(b->msgs[0].reconsume_times, 1);
    assert_int_equal(procq_take(&q, 8, e), 8);
    assert_int_equal(e[0]->offset, 0);
    for (int i = 0; i < 8; i++)
        procq_done(&q, i);
    assert_int_equal(procq_commit_offset(&q), 8);
    assert_int_equal(procq_take(&q, 1, e), 1);
    assert_int_equal(e[0]->offset, 8);
    procq_destroy(&q);
    assert_int_equal(atomic_load(&b->refs), 1);
    free(b->msgs);
    free(b);
}

/* AllocateMessageQueueAveragely, as Java: every queue to exactly one consumer. */
static void test_allocate_average(void **state)
{
    (void)state;
    int first, count;
    allocate_average(8, 3, 0, &first, &count);
    assert_int_equal(first, 0);
    assert_int_equal(count, 3);
    allocate_average(8, 3, 1, &first, &count);
    assert_int_equal(first, 3);
    assert_int_equal(count, 3);
    allocate_average(8, 3, 2, &first, &count);
    assert_int_equal(first, 6);
    assert_int_equal(count, 2);
    allocate_average(2, 3, 2, &first, &count); /* more consumers than queues */
    assert_int_equal(count, 0);
    allocate_average(4, 2, 5, &first, &count); /* not a member */
    assert_int_equal(count, 0);
    for (int nmq = 1; nmq <= 17; nmq++)
        for (int ncid = 1; ncid <= 6; ncid++) {
            int owner[17] = {0};
            for (int me = 0; me < ncid; me++) {
                allocate_average(nmq, ncid, me, &first, &count);
                for (int k = first; k < first + count; k++)
                    owner[k]++;
            }
            for (int k = 0; k < nmq; k++)
                assert_int_equal(owner[k], 1);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_fastjson),      cmocka_unit_test(test_route_standard_json),
        cmocka_unit_test(test_route_borrow),        cmocka_unit_test(test_uniq_key),
        cmocka_unit_test(test_fault_table),         cmocka_unit_test(test_queue_selection),
        cmocka_unit_test(test_hash_selector),       cmocka_unit_test(test_config),
        cmocka_unit_test(test_public_error_values), cmocka_unit_test(test_procq_out_of_order),
        cmocka_unit_test(test_procq_take),          cmocka_unit_test(test_allocate_average),
        cmocka_unit_test(test_route_slaves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
