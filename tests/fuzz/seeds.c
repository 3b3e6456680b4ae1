/* Writes the seed corpora of the fuzz targets except frame (whose seeds were written by hand):
 *   fuzz_seeds <dir>    e.g. ./build/tests/fuzz/fuzz_seeds tests/fuzz/corpus
 * creates <dir>/{msg,batch,msgdec,conf,store}/ and writes valid inputs and edge cases there,
 * each a few KiB at most. The output is deterministic; files already there are overwritten,
 * others (regression inputs added by hand) are left alone. */
#include "common/fsutil.h"
#include "store/msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *g_dir;
static int g_count;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[FERRY_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", g_dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    g_count++;
}

static void put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* A sealed record into @out; returns its length. */
static size_t record(uint8_t *out, size_t cap, const char *topic, const void *body, size_t blen,
                     const char *props, int v6, int with_crc, int32_t sys_flag, int64_t qoff,
                     int64_t phys)
{
    struct msg_host born = {{10, 0, 0, 7}, 0, 51234}, store = {{127, 0, 0, 1}, 0, 10911};
    if (v6) {
        memset(born.addr, 0, 16);
        born.addr[15] = 1;
        born.v6 = 1;
        memset(store.addr, 0, 16);
        store.addr[0] = 0xfe;
        store.addr[1] = 0x80;
        store.addr[15] = 2;
        store.v6 = 1;
    }
    struct store_msg m = {.topic = topic,
                          .queue_id = 3,
                          .flag = 0,
                          .sys_flag = sys_flag,
                          .born_ts = 1700000000000,
                          .born_host = born,
                          .reconsume_times = 1,
                          .body = body,
                          .body_len = (uint32_t)blen,
                          .props = props,
                          .props_len = props ? (uint32_t)strlen(props) : 0};
    size_t len = msg_record_size(&m, &store, with_crc);
    if (len == 0 || len > cap) {
        fprintf(stderr, "record too large\n");
        exit(1);
    }
    struct msg_crc_parts parts;
    size_t ts = msg_encode(&m, &store, with_crc, out, len, with_crc ? &parts : NULL);
    msg_seal(out, len, ts, qoff, phys, 1700000000123, with_crc ? &parts : NULL);
    return len;
}

#define PROPS                                                                                      \
    "KEYS\001order-1 order-2\002TAGS\001TagA\002UNIQ_KEY\001AC110001000018B4AAC2\002WAIT\001true"

static void seeds_msg(void)
{
    uint8_t r[4096];
    size_t n = record(r, sizeof r, "TopicTest", "Hello FerryMQ", 13, PROPS, 0, 1, 0, 5, 4096);
    put("msg", "record_v4_crc", r, n);
    put("msg", "record_truncated", r, n - 7);
    n = record(r, sizeof r, "TopicTest", "Hello FerryMQ", 13, PROPS, 1, 1, 0, 5, 4096);
    put("msg", "record_v6_crc", r, n);
    n = record(r, sizeof r, "TopicTest", "", 0, NULL, 0, 0, 0, 0, 0);
    put("msg", "record_empty_nocrc", r, n);
    n = record(r, sizeof r, "%RETRY%group", "x", 1, "RETRY_TOPIC\001T\002\001\002a\001", 0, 1, 8, 1,
               2);
    put("msg", "record_odd_props", r, n);
    n = record(r, sizeof r, "T", "body", 4, PROPS, 0, 1, 0, 0, 0);
    r[n - 5] ^= 1; /* a CRC digit */
    put("msg", "record_bad_crc", r, n);
    static const uint8_t blank[8] = {0, 0, 0, 8, 0xCB, 0xD4, 0x31, 0x94};
    put("msg", "blank_marker", blank, sizeof blank);
    put_str("msg", "props_only", PROPS);
    put_str("msg", "props_edge", "\001\002\002TAGS\001\002TAGS\001t\xc3\xa9\xf0\x9f\x98\x80\xe2");
}

/* Append a batch entry (RocketMQ's MessageDecoder.encodeMessages layout). */
static size_t entry(uint8_t *p, int32_t flag, const char *body, const char *props)
{
    size_t bl = strlen(body), pl = props ? strlen(props) : 0, total = 20 + bl + 2 + pl;
    uint32_t w[5] = {(uint32_t)total, 0, 0, (uint32_t)flag, (uint32_t)bl};
    for (int i = 0; i < 5; i++) {
        p[4 * i] = (uint8_t)(w[i] >> 24);
        p[4 * i + 1] = (uint8_t)(w[i] >> 16);
        p[4 * i + 2] = (uint8_t)(w[i] >> 8);
        p[4 * i + 3] = (uint8_t)w[i];
    }
    memcpy(p + 20, body, bl);
    p[20 + bl] = (uint8_t)(pl >> 8);
    p[21 + bl] = (uint8_t)pl;
    if (pl)
        memcpy(p + 22 + bl, props, pl);
    return total;
}

static void seeds_batch(void)
{
    uint8_t b[4096];
    size_t n = 0;
    b[n++] = 0; /* control byte: no header properties, default cluster */
    n += entry(b + n, 0, "first", "KEYS\001k1\002UNIQ_KEY\001AC1100010000");
    n += entry(b + n, 7, "", NULL);
    n += entry(b + n, 0, "third", "CLUSTER\001x\002__CRC32#\0010123456789\002\001v\002n\001");
    put("batch", "three_entries", b, n);
    b[0] = 3; /* header properties and a long cluster name */
    put("batch", "three_entries_hdr_props", b, n);
    put("batch", "truncated_entry", b, n - 3);
    put("batch", "empty", b, 1);
    uint8_t bad[32];
    memset(bad, 0, sizeof bad);
    bad[0] = 1;
    bad[17] = 0x7f; /* body length far past the end */
    put("batch", "bad_body_len", bad, sizeof bad);
    n = 1 + entry(b + 1, 0, "p", "KEYS\001k");
    b[0] = 0;
    b[1 + 20 + 1] = 0xff; /* properties length past the end */
    put("batch", "bad_props_len", b, n);
}

static void seeds_msgdec(void)
{
    uint8_t r[8192];
    size_t n = record(r, sizeof r, "TopicTest", "one", 3, PROPS, 0, 1, 0, 0, 0);
    n += record(r + n, sizeof r - n, "TopicTest", "two", 3, "TAGS\001b", 0, 1, 0, 1, (int64_t)n);
    put("msgdec", "two_records", r, n);
    put("msgdec", "trailing_garbage", r, n - 9);
    n = record(r, sizeof r, "%RETRY%cg", "retry", 5, "RETRY_TOPIC\001TopicTest\002TAGS\001a", 1, 1,
               0, 9, 100);
    put("msgdec", "retry_v6", r, n);
    static const char text[] = "a compressible body a compressible body a compressible body";
    uint8_t z[256];
    uLongf zl = sizeof z;
    if (compress(z, &zl, (const Bytef *)text, sizeof text - 1) != Z_OK)
        exit(1);
    n = record(r, sizeof r, "TopicTest", z, zl, "TAGS\001z", 0, 1, SYSFLAG_COMPRESSED, 2, 0);
    put("msgdec", "compressed_zlib", r, n);
    n = record(r, sizeof r, "TopicTest", "not zlib", 8, NULL, 0, 1, SYSFLAG_COMPRESSED, 3, 0);
    put("msgdec", "compressed_bad", r, n);
    put("msgdec", "empty", r, 0);
}

static void seeds_conf(void)
{
    put_str("conf", "broker",
            "brokerClusterName = DefaultCluster\nbrokerName=broker-a\nbrokerId=0\n"
            "deleteWhen=04\nfileReservedTime=48\nbrokerRole=ASYNC_MASTER\n"
            "flushDiskType=SYNC_FLUSH\nnamesrvAddr=127.0.0.1:9876;127.0.0.2:9876\n"
            "storePathRootDir=/tmp/store\nmappedFileSizeCommitLog=65536\n"
            "messageDelayLevel=1s 5s 10s 30s 1m 2h 1d\nbrokerIP1=10.0.0.1\n");
    put_str("conf", "standalone",
            "# ferrymq\n! comment\nnamesrv.listenPort: 9876\nlistenPort=10911\n"
            "namesrv.orderMessageEnable=true\nautoCreateTopicEnable = true\n"
            "writeWithoutMmap=auto\nunknownKey=1\n\n   \t\n");
    put_str("conf", "bad_int", "listenPort=99999999999999999999\n");
    put_str("conf", "bad_bool", "autoCreateTopicEnable=yes\n");
    put_str("conf", "bad_enum", "flushDiskType=SOMETIMES\n");
    put_str("conf", "no_separator", "justakey\n");
    put_str("conf", "bad_levels", "messageDelayLevel=1x 0s -1m 99999999999d\n");
    put_str("conf", "bad_names", "brokerName=a b\nnamesrvAddr=host:notaport;;\nbrokerIP1=::1\n");
    put_str("conf", "slave", "brokerRole=SLAVE\nbrokerId=0\n");
    char big[1200];
    memset(big, 'x', sizeof big);
    memcpy(big, "storePathRootDir=", 17);
    big[sizeof big - 1] = '\n';
    put("conf", "long_value", big, sizeof big);
}

/* Store damage: [flags][sel][off 3][len][bytes]..., see fuzz_store.c. */
static void seeds_store(void)
{
    static const uint32_t offs[3] = {100, 30000, 65000};
    uint8_t s[64];
    char name[64];
    put("store", "clean_shutdown", "\001", 1);
    put("store", "crashed", "\000", 1);
    put("store", "crashed_sync_pwrite", "\006", 1);
    for (int sel = 0; sel < 28; sel++) /* the base store has 28 files */
        for (int kind = 0; kind < 3; kind++) {
            size_t n = 0;
            uint32_t off = offs[(sel + kind) % 3];
            s[n++] = (uint8_t)(sel & 1); /* abort file or not */
            s[n++] = (uint8_t)(sel | (kind == 0 ? 0 : kind == 1 ? 2 << 6 : 3 << 6));
            s[n++] = (uint8_t)(off >> 16);
            s[n++] = (uint8_t)(off >> 8);
            s[n++] = (uint8_t)off;
            if (kind == 0) {
                s[n++] = 8;
                memcpy(s + n, "\xff\x00\x13\x37\xde\xad\xbe\xef", 8);
                n += 8;
            } else {
                s[n++] = 0;
            }
            snprintf(name, sizeof name, "file%02d_%s", sel,
                     kind == 0   ? "write"
                     : kind == 1 ? "truncate"
                                 : "delete");
            put("store", name, s, n);
        }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds <corpus dir>\n");
        return 2;
    }
    g_dir = argv[1];
    mkdir(g_dir, 0755);
    seeds_msg();
    seeds_batch();
    seeds_msgdec();
    seeds_conf();
    seeds_store();
    printf("wrote %d seeds under %s\n", g_count, g_dir);
    return 0;
}
