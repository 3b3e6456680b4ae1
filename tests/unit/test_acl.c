/* Access control (src/broker/acl.c, docs/ACL.md): signatures against independently computed
 * vectors (RFC 2202, `openssl dgst -sha1 -hmac`, a request signed by ali-ons itself), the
 * client's signer against OpenSSL's, whitelist patterns, plain_acl.yml parsing (good and bad
 * files), the decision for each request code, reloads that keep the old rules on a bad file,
 * and a broker with aclEnable driven by raw requests, libferry and the mqadmin binary
 * ($MQADMIN), plus a slave that signs its metadata sync with aclAccessKey. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_broker_harness.h"

#include "../lib/testlib.h"
#include "broker/acl.h"
#include "common/clock.h"
#include "common/err.h"
#include "ferry/ferry.h"
#include "namesrv/namesrv.h"
#include "remoting/client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0); /* a new inode: the watcher sees it at once */
}

static void body(struct rcmd *req, const char *s)
{
    req->body = (const uint8_t *)s;
    req->body_len = strlen(s);
}

/* AccessKey and Signature as a Java AclClientRPCHook adds them; @sig keeps the value. */
static void sign(struct rcmd *req, const char *ak, const char *sk, char *sig)
{
    assert_int_equal(rcmd_ext_add(req, "AccessKey", ak), 0);
    remoting_sign(req, sk, sig);
    assert_int_equal(rcmd_ext_add(req, "Signature", sig), 0);
}

/* acl_check(): the code, and @want (when not NULL) in the remark. */
static int check(acl_t *acl, const struct rcmd *req, const char *peer, const char *want)
{
    char remark[512];
    int rc = acl_check(acl, req, peer, remark, sizeof remark);
    if (rc == 0 && remark[0])
        fail_msg("allowed with a remark: %s", remark);
    if (want && !strstr(remark, want))
        fail_msg("remark \"%s\" lacks \"%s\"", remark, want);
    return rc;
}

static void send_req(struct rcmd *req, int32_t code, const char *topic, const char *group)
{
    rcmd_init_request(req, code);
    if (code == REQ_SEND_MESSAGE) {
        rcmd_ext_add(req, "producerGroup", group);
        rcmd_ext_add(req, "topic", topic);
    } else {
        rcmd_ext_add(req, "a", group);
        rcmd_ext_add(req, "b", topic);
        rcmd_ext_add(req, "c", "TBW102");
        rcmd_ext_add(req, "e", "0");
    }
    body(req, "payload");
}

static void pull_req(struct rcmd *req, const char *topic, const char *group)
{
    rcmd_init_request(req, REQ_PULL_MESSAGE);
    rcmd_ext_add(req, "consumerGroup", group);
    rcmd_ext_add(req, "topic", topic);
    rcmd_ext_add(req, "queueId", "0");
    rcmd_ext_add(req, "queueOffset", "0");
}

/* ---- signatures ------------------------------------------------------------------------- */

/* RFC 2202 HMAC-SHA1 test cases 1, 2, 6 and 7 through remoting_sign() (a request with only a
 * body signs exactly its body) and acl_signature() (OpenSSL). */
static void test_signature_rfc2202(void **state)
{
    static const struct {
        const char *key, *data, *b64;
    } v[] = {
        {"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b",
         "Hi There", "thcxhlUFcmTii8C2+zeMjvFGvgA="},
        {"Jefe", "what do ya want for nothing?", "7/zfauXrL6LSdBbV8YTfnCWafHk="},
        {NULL, "Test Using Larger Than Block-Size Key - Hash Key First",
         "qkrl4VJy0A6VcFY3zoo7Ve1AIRI="},
        {NULL, "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
         "6OmdD0UjfXhta7qnllx4CLv/GpE="},
    };
    char long_key[81], sig[29], ossl[29];
    memset(long_key, 0xaa, 80);
    long_key[80] = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct rcmd req;
        rcmd_init_request(&req, REQ_SEND_MESSAGE);
        body(&req, v[i].data);
        remoting_sign(&req, v[i].key ? v[i].key : long_key, sig);
        assert_string_equal(sig, v[i].b64);
        assert_int_equal(acl_signature(&req, v[i].key ? v[i].key : long_key, 0, ossl), 0);
        assert_string_equal(ossl, v[i].b64);
    }
}

/* RocketMQ's content: the values sorted by key (AccessKey < queueId < topic), then the body.
 * printf 'RocketMQ3TopicAhello' | openssl dgst -sha1 -hmac 12345678 -binary | base64 */
static void test_signature_content(void **state)
{
    struct rcmd req;
    char sig[29], ossl[29];
    rcmd_init_request(&req, REQ_SEND_MESSAGE);
    rcmd_ext_add(&req, "topic", "TopicA");
    rcmd_ext_add(&req, "queueId", "3");
    rcmd_ext_add(&req, "AccessKey", "RocketMQ");
    rcmd_ext_add(&req, "Signature", "ignored: never part of what is signed");
    body(&req, "hello");
    remoting_sign(&req, "12345678", sig);
    assert_string_equal(sig, "QcqR8l+klMtAl8J6wQO3I6w1Xuw=");
    assert_int_equal(acl_signature(&req, "12345678", 0, ossl), 0);
    assert_string_equal(ossl, sig);
    /* _UNIQUE_KEY_QUERY is left out unless asked for (Java's broker leaves it out). */
    rcmd_ext_add(&req, "_UNIQUE_KEY_QUERY", "true");
    remoting_sign(&req, "12345678", sig);
    assert_string_equal(sig, "QcqR8l+klMtAl8J6wQO3I6w1Xuw=");
    assert_int_equal(acl_signature(&req, "12345678", 1, ossl), 0);
    assert_string_not_equal(ossl, sig);
}

/* The client's SHA-1 against OpenSSL on random requests, bodies split into slices. */
static void test_signature_random(void **state)
{
    uint64_t rs = test_seed();
    static char keys[RCMD_EXT_MAX][16], vals[RCMD_EXT_MAX][80];
    static uint8_t data[5000];
    for (int round = 0; round < 300; round++) {
        struct rcmd req;
        struct iovec iov[3];
        char sk[100], sig[29], ossl[29];
        rcmd_init_request(&req, REQ_SEND_MESSAGE_V2);
        int n = (int)(test_rand(&rs) % 20);
        for (int i = 0; i < n; i++) {
            snprintf(keys[i], sizeof keys[i], "k%llx", (unsigned long long)(test_rand(&rs) % 4096));
            size_t len = test_rand(&rs) % (sizeof vals[i] - 1);
            for (size_t j = 0; j < len; j++)
                vals[i][j] = (char)(' ' + test_rand(&rs) % 90);
            vals[i][len] = 0;
            rcmd_ext_add(&req, keys[i], vals[i]);
        }
        size_t blen = test_rand(&rs) % sizeof data;
        for (size_t j = 0; j < blen; j++)
            data[j] = (uint8_t)test_rand(&rs);
        if (round % 2) {
            size_t a = blen ? test_rand(&rs) % blen : 0, b = a + (blen - a) / 2;
            iov[0] = (struct iovec){data, a};
            iov[1] = (struct iovec){data + a, b - a};
            iov[2] = (struct iovec){data + b, blen - b};
            req.body_iov = iov;
            req.body_iovcnt = 3;
        } else {
            req.body = blen ? data : NULL;
        }
        req.body_len = blen;
        size_t klen = 1 + test_rand(&rs) % (sizeof sk - 1);
        for (size_t j = 0; j < klen; j++)
            sk[j] = (char)('!' + test_rand(&rs) % 90);
        sk[klen] = 0;
        remoting_sign(&req, sk, sig);
        assert_int_equal(acl_signature(&req, sk, 0, ossl), 0);
        assert_string_equal(sig, ossl);
    }
}

/* ---- whitelist patterns ----------------------------------------------------------------- */

static void test_address_patterns(void **state)
{
    static const struct {
        const char *pat, *ip;
        int want;
    } v[] = {
        {"192.168.1.10", "192.168.1.10", 1},
        {"192.168.1.10", "192.168.1.11:4455", 0},
        {"*", "8.8.8.8:1", 1},
        {"*.*.*.*", "[::1]:9", 1},
        {"192.168.1.*", "192.168.1.200", 1},
        {"192.168.1.*", "192.168.2.1", 0},
        {"192.168.*.*", "192.168.77.3", 1},
        {"192.168.*", "192.168.77.3", 1},
        {"10.*", "10.1.2.3", 1},
        {"192.168.1.1-100", "192.168.1.100", 1},
        {"192.168.1.1-100", "192.168.1.101", 0},
        {"192.168.1.1-100", "192.168.1.0", 0},
        {"192.168.1-3.*", "192.168.3.9", 1},
        {"192.168.1.{1,2,3}", "192.168.1.2", 1},
        {"192.168.1.{1,2,3}", "192.168.1.4", 0},
        {"192.168.*.{1, 2}", "192.168.9.2", 1},
        {"1.1.1.1,2.2.2.2", "2.2.2.2:80", 1},
        {"1.1.1.1, 2.2.2.*", "2.2.2.9", 1},
        {"1.1.1.1,2.2.2.2", "3.3.3.3", 0},
        {"127.0.0.1", "[::ffff:127.0.0.1]:5", 1},
        {"::1", "[::1]:5", 1},
        {"::1", "::1", 1},
        {"0:0:0:0:0:0:0:1", "[::1]:5", 1},
        {"::1", "127.0.0.1", 0},
        {"127.0.0.1", "not-an-address", 0},
    };
    char err[256];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int rc = acl_addr_match(v[i].pat, v[i].ip, err, sizeof err);
        if (rc != v[i].want)
            fail_msg("%s vs %s: %d (%s), want %d", v[i].pat, v[i].ip, rc, rc < 0 ? err : "",
                     v[i].want);
    }
    static const char *const bad[] = {"300.1.1.1", "1.2.3",       "1.2.3.4.5",  "1.2.3.x",
                                      "1.2.3.9-1", "1.2.{1,2}.3", "1..2.3",     "1.2.3.",
                                      "2::1-5",    "fe80::*",     "1.2.3.{1,x}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (acl_addr_match(bad[i], "1.2.3.4", err, sizeof err) != FERRY_ECONFIG)
            fail_msg("pattern %s accepted", bad[i]);
        assert_non_null(strstr(err, "whitelist address"));
    }
}

/* ---- files ------------------------------------------------------------------------------ */

static const char RULES[] = "# test rules\n"
                            "globalWhiteRemoteAddresses:\n"
                            "  - 10.10.103.*\n"
                            "accounts:\n"
                            "  - accessKey: RocketMQ\n"
                            "    secretKey: 12345678\n"
                            "    whiteRemoteAddress: 192.168.1.{5,6}\n"
                            "    admin: false\n"
                            "    defaultTopicPerm: DENY\n"
                            "    defaultGroupPerm: SUB\n"
                            "    topicPerms:\n"
                            "      - topicA=DENY\n"
                            "      - topicB=PUB|SUB\n"
                            "      - topicC = SUB\n"
                            "    groupPerms:\n"
                            "      - groupA=DENY\n"
                            "      - groupB=PUB|SUB\n"
                            "  - accessKey: adminKey1\n"
                            "    secretKey: adminSecret1\n"
                            "    whiteRemoteAddress:\n"
                            "    admin: true\n"
                            "  - accessKey: adminKey2\n"
                            "    secretKey: \"adminSecret2\"\n"
                            "    admin: yes\n"
                            "    topicPerms:\n"
                            "      - topicB=SUB\n"
                            "dataVersion:\n"
                            "  - counter: 1\n"
                            "    timestamp: 1700000000000\n";

struct files {
    char dir[512];
    char path[600];
};

static acl_t *open_rules(struct files *f, const char *text, int poll_ms)
{
    char err[512];
    acl_t *acl = NULL;
    test_tmpdir(f->dir, sizeof f->dir, "acl");
    snprintf(f->path, sizeof f->path, "%s/plain_acl.yml", f->dir);
    write_file(f->path, text);
    if (acl_open(f->path, poll_ms, &acl, err, sizeof err) != 0)
        fail_msg("acl_open: %s", err);
    assert_int_equal(acl_version(acl), 1);
    return acl;
}

static void test_bad_files(void **state)
{
    static const struct {
        const char *text, *want;
    } v[] = {
        {"accounts: [\n", "line "},
        {"accounts:\n  - accessKey: short\n    secretKey: 12345678\n",
         "accounts[0] short: accessKey and secretKey are required"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 123456\n", "longer than 6"},
        {"accounts:\n  - secretKey: 12345678\n", "accounts[0]: accessKey and secretKey"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    topicPerms:\n"
         "      - topicA=PUBB\n",
         "line 5: accounts[0] topicPerms: \"topicA=PUBB\": expected PUB, SUB"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    groupPerms:\n"
         "      - groupA\n",
         "is not name=PERM"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    defaultTopicPerm: ALL\n",
         "defaultTopicPerm/defaultGroupPerm must be"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    admin: maybe\n",
         "admin must be true or false"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n"
         "    whiteRemoteAddress: 192.168.1.300\n",
         "whiteRemoteAddress: whitelist address 192.168.1.300"},
        {"globalWhiteRemoteAddresses:\n  - 10.10.*.x\n", "globalWhiteRemoteAddresses: whitelist"},
        {"globalWhiteRemoteAddresses: 10.1.1.1\n", "globalWhiteRemoteAddresses must be a list"},
        {"accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n"
         "  - accessKey: RocketMQ\n    secretKey: 87654321\n",
         "accounts[1]: accessKey RocketMQ is defined twice"},
        {"accounts: 5\n", "accounts must be a list"},
        {"accounts:\n  - just a string\n", "accounts[0] must be a map"},
        {"- a\n- b\n", "the file must be a map"},
    };
    struct files f;
    char err[512];
    acl_t *acl = NULL;
    test_tmpdir(f.dir, sizeof f.dir, "acl-bad");
    snprintf(f.path, sizeof f.path, "%s/plain_acl.yml", f.dir);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        write_file(f.path, v[i].text);
        err[0] = 0;
        if (acl_open(f.path, 0, &acl, err, sizeof err) == 0)
            fail_msg("file %zu accepted:\n%s", i, v[i].text);
        if (!strstr(err, v[i].want) || !strstr(err, f.path))
            fail_msg("file %zu: \"%s\" lacks \"%s\"", i, err, v[i].want);
    }
    unlink(f.path);
    assert_int_equal(acl_open(f.path, 0, &acl, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "No such file"));
    /* An empty file is valid: no accounts, every request refused. */
    write_file(f.path, "# nothing yet\n");
    assert_int_equal(acl_open(f.path, 0, &acl, err, sizeof err), 0);
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", "No accessKey is configured"),
                     RESP_NO_PERMISSION);
    acl_free(acl);
    test_rmdir(f.dir);
}

/* ---- decisions -------------------------------------------------------------------------- */

static void test_decisions(void **state)
{
    struct files f;
    acl_t *acl = open_rules(&f, RULES, 0);
    struct rcmd req;
    char sig[29];
    const char *local = "127.0.0.1:40000";

    /* Unsigned: refused unless the peer is globally whitelisted. */
    send_req(&req, REQ_SEND_MESSAGE_V2, "topicB", "PID_a");
    assert_int_equal(check(acl, &req, local, "No accessKey is configured"), RESP_NO_PERMISSION);
    assert_int_equal(check(acl, &req, "10.10.103.7:1234", NULL), 0);
    /* An account's whitelist stands in for its signature. */
    rcmd_ext_add(&req, "AccessKey", "RocketMQ");
    assert_int_equal(check(acl, &req, "192.168.1.5:1", NULL), 0);
    assert_int_equal(check(acl, &req, "192.168.1.7:1", "signature mismatch for accessKey RocketMQ"),
                     RESP_NO_PERMISSION);
    /* Signed right, with the wrong secret, by an unknown account; a changed body. */
    send_req(&req, REQ_SEND_MESSAGE_V2, "topicB", "PID_a");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);
    body(&req, "payloaD");
    assert_int_equal(check(acl, &req, local, "signature mismatch"), RESP_NO_PERMISSION);
    send_req(&req, REQ_SEND_MESSAGE_V2, "topicB", "PID_a");
    sign(&req, "RocketMQ", "wrong-secret", sig);
    assert_int_equal(check(acl, &req, local, "signature mismatch for accessKey RocketMQ"),
                     RESP_NO_PERMISSION);
    send_req(&req, REQ_SEND_MESSAGE_V2, "topicB", "PID_a");
    sign(&req, "nobody123", "12345678", sig);
    assert_int_equal(check(acl, &req, local, "No acl config for accessKey nobody123"),
                     RESP_NO_PERMISSION);

    /* Sends need PUB on the topic: DENY, SUB only, the default (DENY), V1 and batch alike. */
    static const struct {
        int32_t code;
        const char *topic;
        const char *want; /* NULL: allowed */
    } sends[] = {
        {REQ_SEND_MESSAGE_V2, "topicA",
         "accessKey RocketMQ has no PUB permission on topic topicA "
         "(DENY)"},
        {REQ_SEND_MESSAGE_V2, "topicC", "has no PUB permission on topic topicC"},
        {REQ_SEND_MESSAGE_V2, "topicZ", "has no PUB permission on topic topicZ (DENY)"},
        {REQ_SEND_MESSAGE, "topicB", NULL},
        {REQ_SEND_MESSAGE, "topicA", "no PUB permission on topic topicA"},
        {REQ_SEND_BATCH_MESSAGE, "topicA", "no PUB permission on topic topicA"},
        {REQ_SEND_BATCH_MESSAGE, "topicB", NULL},
        {REQ_SEND_MESSAGE_V2, "RMQ_SYS_TRACE_TOPIC", NULL}, /* Java skips the check */
        /* %RETRY%G: SUB on group G itself, whatever group the request names (Java checks the
         * producer group field "a", which the sender chooses: here groupA, DENY) */
        {REQ_SEND_MESSAGE_V2, "%RETRY%groupB", NULL},
        {REQ_SEND_MESSAGE_V2, "%RETRY%groupA", "no SUB permission on group groupA (DENY)"},
        {REQ_SEND_MESSAGE, "%RETRY%groupA", "no SUB permission on group groupA (DENY)"},
    };
    for (size_t i = 0; i < sizeof sends / sizeof sends[0]; i++) {
        send_req(&req, sends[i].code, sends[i].topic,
                 strncmp(sends[i].topic, "%RETRY%", 7) ? "PID_a" : "groupB");
        sign(&req, "RocketMQ", "12345678", sig);
        int rc = check(acl, &req, local, sends[i].want);
        if (rc != (sends[i].want ? RESP_NO_PERMISSION : 0))
            fail_msg("send %d to %s: %d", sends[i].code, sends[i].topic, rc);
    }

    /* Pulls need SUB on the topic and the group; %RETRY%G counts as group G. */
    static const struct {
        const char *topic, *group, *want;
    } pulls[] = {
        {"topicC", "groupC", NULL}, /* defaultGroupPerm SUB */
        {"topicB", "groupB", NULL},
        {"topicC", "groupA", "no SUB permission on group groupA (DENY)"},
        {"topicA", "groupB", "no SUB permission on topic topicA (DENY)"},
        {"%RETRY%groupB", "groupB", NULL},
        {"%RETRY%groupA", "groupB", "on group groupA"},
        {"topicZ", "groupB", "on topic topicZ"},
    };
    for (size_t i = 0; i < sizeof pulls / sizeof pulls[0]; i++) {
        pull_req(&req, pulls[i].topic, pulls[i].group);
        sign(&req, "RocketMQ", "12345678", sig);
        int rc = check(acl, &req, local, pulls[i].want);
        if (rc != (pulls[i].want ? RESP_NO_PERMISSION : 0))
            fail_msg("pull %s/%s: %d", pulls[i].topic, pulls[i].group, rc);
    }

    /* Heartbeats: SUB on every consumer group and every subscribed topic. */
    rcmd_init_request(&req, REQ_HEART_BEAT);
    body(&req, "{\"clientID\":\"c1\",\"producerDataSet\":[{\"groupName\":\"PID_x\"}],"
               "\"consumerDataSet\":[{\"groupName\":\"groupB\",\"subscriptionDataSet\":["
               "{\"topic\":\"topicB\"},{\"topic\":\"%RETRY%groupB\"}]}]}");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);
    rcmd_init_request(&req, REQ_HEART_BEAT);
    body(&req, "{\"clientID\":\"c1\",\"consumerDataSet\":[{\"groupName\":\"groupB\","
               "\"subscriptionDataSet\":[{\"topic\":\"topicB\"},{\"topic\":\"topicA\"}]}]}");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, "no SUB permission on topic topicA"),
                     RESP_NO_PERMISSION);
    rcmd_init_request(&req, REQ_HEART_BEAT);
    body(&req, "{\"clientID\":\"c1\",\"consumerDataSet\":[{\"groupName\":\"groupA\"}]}");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, "on group groupA"), RESP_NO_PERMISSION);

    /* The other codes with resources. */
    rcmd_init_request(&req, REQ_CONSUMER_SEND_MSG_BACK);
    rcmd_ext_add(&req, "group", "groupA");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, "on group groupA"), RESP_NO_PERMISSION);
    rcmd_init_request(&req, REQ_UPDATE_CONSUMER_OFFSET);
    rcmd_ext_add(&req, "consumerGroup", "groupB");
    rcmd_ext_add(&req, "topic", "topicB");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);
    rcmd_init_request(&req, REQ_GET_CONSUMER_LIST_BY_GROUP);
    rcmd_ext_add(&req, "consumerGroup", "groupA");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, "on group groupA"), RESP_NO_PERMISSION);
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG); /* no resource: the signature only */
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);

    /* QUERY_MESSAGE by a 4.9.8 Java client signs _UNIQUE_KEY_QUERY too; either way passes. */
    rcmd_init_request(&req, REQ_QUERY_MESSAGE);
    rcmd_ext_add(&req, "topic", "topicB");
    rcmd_ext_add(&req, "key", "k1");
    rcmd_ext_add(&req, "_UNIQUE_KEY_QUERY", "false");
    rcmd_ext_add(&req, "AccessKey", "RocketMQ");
    assert_int_equal(acl_signature(&req, "12345678", 1, sig), 0);
    rcmd_ext_add(&req, "Signature", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);
    assert_int_equal(acl_signature(&req, "12345678", 0, sig), 0);
    assert_int_equal(check(acl, &req, local, NULL), 0);

    /* Admin codes need an admin account; an admin without perms may touch everything, one
     * with perms is checked like anyone. */
    rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_TOPIC);
    rcmd_ext_add(&req, "topic", "topicNew");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(
        check(acl, &req, local,
              "admin request 17 needs an admin account; accessKey RocketMQ is not one"),
        RESP_NO_PERMISSION);
    rcmd_init_request(&req, REQ_DELETE_SUBSCRIPTIONGROUP);
    rcmd_ext_add(&req, "groupName", "groupB");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, local, "admin request 207"), RESP_NO_PERMISSION);
    rcmd_init_request(&req, REQ_UPDATE_AND_CREATE_TOPIC);
    rcmd_ext_add(&req, "topic", "topicNew");
    sign(&req, "adminKey1", "adminSecret1", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);
    pull_req(&req, "topicZ", "groupZ");
    sign(&req, "adminKey1", "adminSecret1", sig);
    assert_int_equal(check(acl, &req, local, NULL), 0);
    send_req(&req, REQ_SEND_MESSAGE_V2, "topicB", "PID_a");
    sign(&req, "adminKey2", "adminSecret2", sig);
    assert_int_equal(check(acl, &req, local,
                           "accessKey adminKey2 has no PUB permission on topic "
                           "topicB"),
                     RESP_NO_PERMISSION);

    acl_free(acl);
    test_rmdir(f.dir);
}

/* The header of a SEND_MESSAGE_V2 that ali-ons 3.12.0 signed (Channel.beforeRequest with
 * accessKey RocketMQ, secretKey 12345678; body "hello acl"), decoded as the broker does. */
static void test_ali_ons_request(void **state)
{
    static const char hdr[] =
        "{\"code\":310,\"language\":\"JAVA\",\"opaque\":1,\"flag\":0,\"version\":121,"
        "\"extFields\":{\"Signature\":\"u+5/fpBVjtihn/TbyVskl3D8qlw=\",\"AccessKey\":\"RocketMQ\","
        "\"OnsChannel\":\"ALIYUN\",\"a\":\"PID_acl\",\"b\":\"TopicB\",\"c\":\"TBW102\",\"d\":4,"
        "\"e\":1,\"f\":0,\"g\":1700000000000,\"h\":0,\"i\":\"TAGS\\u0001t1\\u0002WAIT\\u0001true\","
        "\"j\":0,\"k\":false,\"l\":0}}";
    static const char rules[] = "accounts:\n"
                                "  - accessKey: RocketMQ\n"
                                "    secretKey: 12345678\n"
                                "    defaultTopicPerm: PUB\n";
    uint8_t buf[sizeof hdr];
    struct rcmd req;
    char err[128], sig[29];
    struct files f;
    memcpy(buf, hdr, sizeof hdr);
    rcmd_init_request(&req, 0);
    assert_int_equal(rcmd_decode_json(buf, sizeof hdr - 1, &req, err, sizeof err), 0);
    body(&req, "hello acl");
    acl_t *acl = open_rules(&f, rules, 0);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", NULL), 0);
    remoting_sign(&req, "12345678", sig); /* and libferry's signer agrees */
    assert_string_equal(sig, "u+5/fpBVjtihn/TbyVskl3D8qlw=");
    body(&req, "hello ACL");
    assert_int_equal(check(acl, &req, "127.0.0.1:1", "signature mismatch"), RESP_NO_PERMISSION);
    acl_free(acl);
    test_rmdir(f.dir);
}

/* ---- reloads ---------------------------------------------------------------------------- */

static void test_reload(void **state)
{
    struct files f;
    acl_t *acl = open_rules(&f, RULES, 0);
    struct rcmd req;
    char sig[29], err[512];

    assert_int_equal(acl_poll(acl, err, sizeof err), 0); /* unchanged */
    send_req(&req, REQ_SEND_MESSAGE_V2, "topicA", "PID_a");
    sign(&req, "RocketMQ", "12345678", sig);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", "topicA"), RESP_NO_PERMISSION);

    /* A valid change takes effect. */
    char text[sizeof RULES + 64];
    snprintf(text, sizeof text, "%s", RULES);
    memcpy(strstr(text, "topicA=DENY"), "topicA=PUB ", 11);
    write_file(f.path, text);
    assert_int_equal(acl_poll(acl, err, sizeof err), 1);
    assert_int_equal(acl_version(acl), 2);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", NULL), 0);

    /* A bad file is refused with its reason; the rules stay; it is not read again until it
     * changes. */
    write_file(f.path, "accounts:\n  - accessKey: RocketMQ\n    secretKey: 1234\n");
    assert_int_equal(acl_poll(acl, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "longer than 6"));
    assert_int_equal(acl_poll(acl, err, sizeof err), 0);
    assert_int_equal(acl_version(acl), 2);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", NULL), 0);
    /* A removed file: reported once, rules kept. */
    unlink(f.path);
    assert_int_equal(acl_poll(acl, err, sizeof err), -ENOENT);
    assert_int_equal(acl_poll(acl, err, sizeof err), 0);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", NULL), 0);
    write_file(f.path, RULES);
    assert_int_equal(acl_poll(acl, err, sizeof err), 1);
    assert_int_equal(check(acl, &req, "127.0.0.1:1", "topicA (DENY)"), RESP_NO_PERMISSION);
    acl_free(acl);
    test_rmdir(f.dir);
}

/* ---- the dashboard's login ------------------------------------------------------------- */

static int login(acl_t *acl, const char *ak, const char *sk, const char *want)
{
    char why[512];
    int rc = acl_admin_login(acl, ak, sk, "127.0.0.9", why, sizeof why);
    if (rc == ACL_LOGIN_OK && why[0])
        fail_msg("accepted with a reason: %s", why);
    if (want && !strstr(why, want))
        fail_msg("reason \"%s\" lacks \"%s\"", why, want);
    return rc;
}

/* acl_admin_login(): admin accounts with their secret only, a reason that does not tell a wrong
 * key from a wrong secret, whitelists of no help, and an edited file counts from its reload. */
static void test_admin_login(void **state)
{
    struct files f;
    char err[512];
    acl_t *acl = open_rules(&f, RULES, 0);

    assert_int_equal(login(acl, "adminKey1", "adminSecret1", NULL), ACL_LOGIN_OK);
    assert_int_equal(login(acl, "adminKey2", "adminSecret2", NULL), ACL_LOGIN_OK); /* admin: yes */
    assert_int_equal(login(acl, "RocketMQ", "12345678", "not an admin account"),
                     ACL_LOGIN_NOT_ADMIN);
    /* Wrong secret, unknown key, a secret that is a prefix or an extension, empty and NULL:
     * the same answer. */
    static const char *const bad[][2] = {
        {"adminKey1", "adminSecret2"},
        {"adminKey1", "adminSecret"},
        {"adminKey1", "adminSecret11"},
        {"nobody123", "adminSecret1"},
        {"adminKey1", ""},
        {"", ""},
        {"RocketMQ", "1234567"},
        {"adminKey", "adminSecret1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(login(acl, bad[i][0], bad[i][1], "wrong access key or secret key"),
                         ACL_LOGIN_BAD_KEYS);
    assert_int_equal(acl_admin_login(acl, NULL, NULL, NULL, err, sizeof err), ACL_LOGIN_BAD_KEYS);
    /* A whitelisted peer still needs the secret (RocketMQ's account has 192.168.1.5 in it). */
    assert_int_equal(acl_admin_login(acl, "adminKey1", "x", "10.10.103.1", err, sizeof err),
                     ACL_LOGIN_BAD_KEYS);

    /* The file edited: adminKey1 loses admin, adminKey2 gets a new secret, RocketMQ becomes an
     * admin. Nothing changes until the reload; then the new rules decide. */
    char text[sizeof RULES + 64];
    snprintf(text, sizeof text, "%s", RULES);
    char *p = strstr(text, "    whiteRemoteAddress:\n    admin: true");
    memcpy(strstr(p, "true"), "no  ", 4);
    p = strstr(text, "\"adminSecret2\"");
    memcpy(p, "\"adminSecret3\"", 14);
    memcpy(strstr(text, "admin: false"), "admin: true ", 12);
    write_file(f.path, text);
    assert_int_equal(login(acl, "adminKey1", "adminSecret1", NULL), ACL_LOGIN_OK);
    assert_int_equal(acl_poll(acl, err, sizeof err), 1);
    assert_int_equal(login(acl, "adminKey1", "adminSecret1", "not an admin account"),
                     ACL_LOGIN_NOT_ADMIN);
    assert_int_equal(login(acl, "adminKey2", "adminSecret2", NULL), ACL_LOGIN_BAD_KEYS);
    assert_int_equal(login(acl, "adminKey2", "adminSecret3", NULL), ACL_LOGIN_OK);
    assert_int_equal(login(acl, "RocketMQ", "12345678", NULL), ACL_LOGIN_OK);
    /* The account removed. */
    write_file(f.path, "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n"
                       "    admin: true\n");
    assert_int_equal(acl_poll(acl, err, sizeof err), 1);
    assert_int_equal(login(acl, "adminKey2", "adminSecret3", NULL), ACL_LOGIN_BAD_KEYS);
    assert_int_equal(login(acl, "RocketMQ", "12345678", NULL), ACL_LOGIN_OK);
    acl_free(acl);
    test_rmdir(f.dir);
}

/* The watcher thread picks a change up by itself, while other threads keep checking. */
struct hammer {
    acl_t *acl;
    atomic_int stop;
    atomic_long checks, bad; /* bad: an answer other than 0 (cmocka asserts only on main) */
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct rcmd req;
    char sig[29], remark[256];
    pull_req(&req, "topicB", "groupB");
    sign(&req, "RocketMQ", "12345678", sig);
    while (!atomic_load(&h->stop)) {
        if (acl_check(h->acl, &req, "127.0.0.1:2", remark, sizeof remark) != 0)
            atomic_fetch_add(&h->bad, 1);
        atomic_fetch_add(&h->checks, 1);
    }
    return NULL;
}

static void test_watcher(void **state)
{
    struct files f;
    struct hammer h;
    pthread_t thr[2];
    acl_t *acl = open_rules(&f, RULES, 20);
    h.acl = acl;
    atomic_init(&h.stop, 0);
    atomic_init(&h.checks, 0);
    atomic_init(&h.bad, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&thr[i], NULL, hammer_main, &h), 0);
    for (int round = 0; round < 6; round++) {
        char text[sizeof RULES + 64];
        snprintf(text, sizeof text, "%s# round %d\n", RULES, round);
        if (round % 3 == 2)
            snprintf(text, sizeof text, "accounts: [broken %d\n", round);
        uint64_t before = acl_version(acl);
        write_file(f.path, text);
        if (round % 3 == 2) {
            usleep(100 * 1000); /* refused: nothing to wait for but time */
            assert_int_equal(acl_version(acl), before);
            continue;
        }
        int64_t dl = clock_mono_ms() + 5000 * test_time_mult();
        while (acl_version(acl) == before && clock_mono_ms() < dl)
            usleep(5 * 1000);
        assert_int_equal(acl_version(acl), before + 1);
    }
    atomic_store(&h.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(thr[i], NULL);
    assert_true(atomic_load(&h.checks) > 0);
    assert_int_equal(atomic_load(&h.bad), 0); /* every snapshot allows topicB/groupB */
    acl_free(acl);
    test_rmdir(f.dir);
}

/* ---- a broker with aclEnable ------------------------------------------------------------ */

static const char BROKER_RULES[] = "accounts:\n"
                                   "  - accessKey: appKey01\n"
                                   "    secretKey: appSecret01\n"
                                   "    defaultTopicPerm: DENY\n"
                                   "    defaultGroupPerm: DENY\n"
                                   "    topicPerms:\n"
                                   "      - TopicAcl=PUB|SUB\n"
                                   "      - TBW102=PUB\n"
                                   "    groupPerms:\n"
                                   "      - GID_acl=SUB\n"
                                   "  - accessKey: adminKey01\n"
                                   "    secretKey: adminSecret01\n"
                                   "    admin: true\n";

struct env {
    char dir[512];
    char acl_path[600];
    char ns[64];
    namesrv_t *ns_h;
    struct tb b;
};

static struct env *E;

/* The mqadmin binary with the NULL-ended arguments (without the keys of the environment). */
static struct test_run *mqadmin(const char *arg, ...)
{
    static struct test_run r;
    static const char *const unset[] = {"FERRY_ACCESS_KEY", "FERRY_SECRET_KEY", NULL};
    const char *bin = getenv("MQADMIN");
    const char *argv[32] = {"mqadmin"};
    int n = 1;
    va_list ap;
    if (!bin)
        fail_msg("MQADMIN is not set (run through CTest)");
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    assert_int_equal(test_run_program(bin, argv, E->dir, unset, &r), 0);
    return &r;
}

static int broker_setup(void **state)
{
    struct namesrv_config nc;
    char err[512];
    E = calloc(1, sizeof *E);
    test_tmpdir(E->dir, sizeof E->dir, "acl-broker");
    snprintf(E->acl_path, sizeof E->acl_path, "%s/plain_acl.yml", E->dir);
    write_file(E->acl_path, BROKER_RULES);
    namesrv_config_defaults(&nc);
    snprintf(nc.listenAddress, sizeof nc.listenAddress, "127.0.0.1");
    nc.listenPort = 0;
    snprintf(nc.kvConfigPath, sizeof nc.kvConfigPath, "%s/kv.json", E->dir);
    if (namesrv_new(&nc, &E->ns_h, err, sizeof err) != 0 ||
        namesrv_start(E->ns_h, err, sizeof err) != 0)
        fail_msg("name server: %s", err);
    snprintf(E->ns, sizeof E->ns, "127.0.0.1:%d", namesrv_port(E->ns_h));
    tb_init(&E->b, "acl-master");
    snprintf(E->b.cfg.brokerName, sizeof E->b.cfg.brokerName, "broker-acl");
    snprintf(E->b.cfg.brokerClusterName, sizeof E->b.cfg.brokerClusterName, "AclCluster");
    snprintf(E->b.cfg.namesrvAddr, sizeof E->b.cfg.namesrvAddr, "%s", E->ns);
    E->b.cfg.aclEnable = 1;
    snprintf(E->b.cfg.aclFile, sizeof E->b.cfg.aclFile, "%s", E->acl_path);
    tb_start(&E->b);
    *state = E;
    return 0;
}

static int broker_teardown(void **state)
{
    tb_cleanup(&E->b);
    namesrv_free(E->ns_h);
    test_rmdir(E->dir);
    free(E);
    E = NULL;
    return 0;
}

/* aclEnable with no file, or a bad one, does not start. */
static void test_broker_start_errors(void **state)
{
    struct tb t;
    char err[1024];
    broker_t *b = NULL;
    const char *home = getenv("ROCKETMQ_HOME");
    char saved[512] = "";
    if (home)
        snprintf(saved, sizeof saved, "%s", home);
    unsetenv("ROCKETMQ_HOME");
    tb_init(&t, "acl-start");
    t.cfg.aclEnable = 1;
    assert_int_equal(broker_new(&t.cfg, &b, err, sizeof err), 0);
    assert_int_equal(broker_start(b, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "aclEnable=true needs aclFile"));
    broker_free(b);
    /* ROCKETMQ_HOME: $ROCKETMQ_HOME/conf/plain_acl.yml, here a bad one. */
    char conf[700], file[800];
    snprintf(conf, sizeof conf, "%s/conf", t.dir);
    assert_int_equal(mkdir(conf, 0700), 0);
    snprintf(file, sizeof file, "%s/plain_acl.yml", conf);
    write_file(file, "accounts:\n  - accessKey: x\n");
    setenv("ROCKETMQ_HOME", t.dir, 1);
    assert_int_equal(broker_new(&t.cfg, &b, err, sizeof err), 0);
    assert_int_equal(broker_start(b, err, sizeof err), FERRY_ECONFIG);
    assert_non_null(strstr(err, "cannot load the ACL file"));
    assert_non_null(strstr(err, file));
    broker_free(b);
    write_file(file, BROKER_RULES);
    assert_int_equal(broker_new(&t.cfg, &b, err, sizeof err), 0);
    if (broker_start(b, err, sizeof err) != 0)
        fail_msg("start with $ROCKETMQ_HOME/conf/plain_acl.yml: %s", err);
    broker_free(b);
    if (saved[0])
        setenv("ROCKETMQ_HOME", saved, 1);
    else
        unsetenv("ROCKETMQ_HOME");
    test_rmdir(t.dir);
}

static void test_broker_raw(void **state)
{
    remoting_client_t *cli = tb_client(E->b.port);
    struct rcmd *resp;
    struct rcmd req;
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    resp = tb_call(cli, &req);
    assert_int_equal(resp->code, RESP_NO_PERMISSION);
    assert_non_null(strstr(tb_remark(resp), "No accessKey is configured"));
    rcmd_free(resp);
    assert_int_equal(tb_create_topic(cli, "TopicAcl", 4), RESP_NO_PERMISSION);
    remoting_client_free(cli);

    /* The app account: no admin requests; the admin account creates the topic. */
    cli = tb_client(E->b.port);
    assert_int_equal(remoting_client_set_signer(cli, "appKey01", "appSecret01"), 0);
    assert_int_equal(tb_create_topic(cli, "TopicAcl", 4), RESP_NO_PERMISSION);
    assert_int_equal(tb_call_code(cli, &req), RESP_SUCCESS);
    assert_int_equal(remoting_client_set_signer(cli, "adminKey01", "adminSecret01"), 0);
    assert_int_equal(tb_create_topic(cli, "TopicAcl", 4), RESP_SUCCESS);
    assert_int_equal(tb_create_topic(cli, "TopicOther", 4), RESP_SUCCESS);
    /* A signing client's request is not changed: the same struct can be sent unsigned. */
    assert_int_equal(remoting_client_set_signer(cli, NULL, NULL), 0);
    assert_int_equal(tb_call_code(cli, &req), RESP_NO_PERMISSION);
    remoting_client_free(cli);
}

static int send_until(ferry_producer_t *p, const char *topic, struct ferry_send_result *res)
{
    struct ferry_message m = {.topic = topic, .tags = "TagA", .body = "acl body", .body_len = 8};
    int64_t dl = clock_mono_ms() + 15000 * test_time_mult();
    int rc;
    /* The route appears once the broker's registration round after the create ran. */
    while ((rc = ferry_send_sync(p, &m, res)) == FERRY_ENOROUTE && clock_mono_ms() < dl)
        usleep(100 * 1000);
    return rc;
}

static ferry_producer_t *producer(const char *ak, const char *sk)
{
    struct ferry_producer_config pc;
    ferry_producer_t *p;
    ferry_producer_config_init(&pc);
    snprintf(pc.group, sizeof pc.group, "PID_acl");
    snprintf(pc.namesrvAddr, sizeof pc.namesrvAddr, "%s", E->ns);
    snprintf(pc.accessKey, sizeof pc.accessKey, "%s", ak);
    snprintf(pc.secretKey, sizeof pc.secretKey, "%s", sk);
    pc.sendMsgTimeout *= test_time_mult();
    pc.retryTimesWhenSendFailed = 0;
    assert_int_equal(ferry_producer_new(&pc, &p), 0);
    assert_int_equal(ferry_producer_start(p), 0);
    return p;
}

static void test_broker_libferry(void **state)
{
    struct ferry_send_result res;
    struct ferry_producer_config pc;
    ferry_producer_t *p = NULL;
    ferry_producer_config_init(&pc);
    snprintf(pc.group, sizeof pc.group, "PID_acl");
    snprintf(pc.namesrvAddr, sizeof pc.namesrvAddr, "%s", E->ns);
    snprintf(pc.accessKey, sizeof pc.accessKey, "appKey01"); /* without secretKey */
    assert_int_equal(ferry_producer_new(&pc, &p), FERRY_ECONFIG);

    p = producer("appKey01", "appSecret01");
    assert_int_equal(send_until(p, "TopicAcl", &res), 0);
    memset(&res, 0, sizeof res);
    assert_int_equal(send_until(p, "TopicOther", &res), FERRY_ENOTSTORED);
    assert_int_equal(res.broker_code, RESP_NO_PERMISSION);
    assert_non_null(strstr(res.remark, "has no PUB permission on topic TopicOther"));
    ferry_producer_free(p);
    p = producer("appKey01", "wrongSecret");
    memset(&res, 0, sizeof res);
    assert_int_equal(send_until(p, "TopicAcl", &res), FERRY_ENOTSTORED);
    assert_int_equal(res.broker_code, RESP_NO_PERMISSION);
    assert_non_null(strstr(res.remark, "signature mismatch for accessKey appKey01"));
    ferry_producer_free(p);

    /* Consume what was sent with a lite pull consumer of the app account. */
    struct ferry_consumer_config cc;
    ferry_pull_consumer_t *c;
    struct ferry_mq *mqs;
    size_t nmq, got = 0;
    ferry_consumer_config_init(&cc);
    snprintf(cc.group, sizeof cc.group, "GID_acl");
    snprintf(cc.namesrvAddr, sizeof cc.namesrvAddr, "%s", E->ns);
    snprintf(cc.accessKey, sizeof cc.accessKey, "appKey01");
    snprintf(cc.secretKey, sizeof cc.secretKey, "appSecret01");
    cc.consumeFromWhere = FERRY_CONSUME_FROM_FIRST_OFFSET;
    cc.autoCommit = 0;
    assert_int_equal(ferry_pull_consumer_new(&cc, &c), 0);
    assert_int_equal(ferry_pull_consumer_start(c), 0);
    assert_int_equal(ferry_pull_consumer_fetch_queues(c, "TopicAcl", &mqs, &nmq), 0);
    assert_true(nmq == 4);
    assert_int_equal(ferry_pull_consumer_assign(c, mqs, nmq), 0);
    for (size_t i = 0; i < nmq; i++)
        assert_int_equal(ferry_pull_consumer_seek_to_begin(c, &mqs[i]), 0);
    int64_t dl = clock_mono_ms() + 15000 * test_time_mult();
    while (got == 0 && clock_mono_ms() < dl) {
        const struct ferry_message_ext *msgs;
        size_t n = 0;
        assert_int_equal(ferry_pull_consumer_poll(c, 500, &msgs, &n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(msgs[i].body_len, 8);
            assert_memory_equal(msgs[i].body, "acl body", 8);
        }
        got += n;
    }
    assert_int_equal(got, 1);
    assert_int_equal(ferry_pull_consumer_commit(c), 0);
    free(mqs);
    ferry_pull_consumer_free(c);
}

static void test_broker_mqadmin(void **state)
{
    struct test_run *r =
        mqadmin("updateTopic", "-n", E->ns, "-c", "AclCluster", "-t", "TopicAdm", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "No accessKey is configured"));
    r = mqadmin("updateTopic", "-n", E->ns, "-c", "AclCluster", "-t", "TopicAdm", "--accessKey",
                "appKey01", "--secretKey", "appSecret01", NULL);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "NO_PERMISSION"));
    assert_non_null(strstr(r->err, "admin request 17 needs an admin account"));
    r = mqadmin("updateTopic", "-n", E->ns, "-c", "AclCluster", "-t", "TopicAdm", "--accessKey",
                "adminKey01", "--secretKey", "adminSecret01", NULL);
    if (r->status != 0)
        fail_msg("mqadmin updateTopic as admin: %s%s", r->out, r->err);
    r = mqadmin("updateTopic", "-n", E->ns, "-c", "AclCluster", "-t", "TopicAdm", "--accessKey",
                "adminKey01", NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "give both --accessKey and --secretKey"));
    /* sendMessage goes through libferry's producer on the same thread: signed too. */
    r = mqadmin("sendMessage", "-n", E->ns, "-t", "TopicAcl", "-p", "from mqadmin", "--accessKey",
                "appKey01", "--secretKey", "appSecret01", NULL);
    for (int i = 0; r->status != 0 && strstr(r->err, "route") && i < 50 * test_time_mult(); i++) {
        usleep(100 * 1000);
        r = mqadmin("sendMessage", "-n", E->ns, "-t", "TopicAcl", "-p", "from mqadmin",
                    "--accessKey", "appKey01", "--secretKey", "appSecret01", NULL);
    }
    if (r->status != 0)
        fail_msg("mqadmin sendMessage: %s%s", r->out, r->err);
}

/* A slave syncs its master's topics through the ACL with aclAccessKey/aclSecretKey. */
static void test_broker_slave_sync(void **state)
{
    struct tb s;
    remoting_client_t *cli;
    struct rcmd req;
    tb_init(&s, "acl-slave");
    snprintf(s.cfg.brokerName, sizeof s.cfg.brokerName, "broker-acl");
    snprintf(s.cfg.brokerClusterName, sizeof s.cfg.brokerClusterName, "AclCluster");
    snprintf(s.cfg.namesrvAddr, sizeof s.cfg.namesrvAddr, "%s", E->ns);
    s.cfg.brokerRole = BROKER_SLAVE;
    s.cfg.brokerId = 1;
    snprintf(s.cfg.aclAccessKey, sizeof s.cfg.aclAccessKey, "adminKey01");
    snprintf(s.cfg.aclSecretKey, sizeof s.cfg.aclSecretKey, "adminSecret01");
    tb_start(&s);
    cli = tb_client(s.port);
    rcmd_init_request(&req, REQ_GET_ALL_TOPIC_CONFIG);
    int64_t dl = clock_mono_ms() + 20000 * test_time_mult();
    int found = 0;
    while (!found && clock_mono_ms() < dl) {
        struct rcmd *resp = tb_call(cli, &req);
        found = resp->code == RESP_SUCCESS && strstr(tb_body(resp), "\"TopicAcl\"");
        rcmd_free(resp);
        if (!found)
            usleep(100 * 1000);
    }
    assert_true(found);
    remoting_client_free(cli);
    tb_cleanup(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_rfc2202), cmocka_unit_test(test_signature_content),
        cmocka_unit_test(test_signature_random),  cmocka_unit_test(test_address_patterns),
        cmocka_unit_test(test_bad_files),         cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_ali_ons_request),   cmocka_unit_test(test_reload),
        cmocka_unit_test(test_watcher),           cmocka_unit_test(test_broker_start_errors),
        cmocka_unit_test(test_admin_login),
    };
    const struct CMUnitTest broker_tests[] = {
        cmocka_unit_test(test_broker_raw),
        cmocka_unit_test(test_broker_libferry),
        cmocka_unit_test(test_broker_mqadmin),
        cmocka_unit_test(test_broker_slave_sync),
    };
    int rc = cmocka_run_group_tests_name("acl", tests, NULL, NULL);
    return rc +
           cmocka_run_group_tests_name("acl_broker", broker_tests, broker_setup, broker_teardown);
}
