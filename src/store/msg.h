/* The stored message record: RocketMQ's CommitLog record, byte for byte (magic V1, IPv4 or
 * IPv6 hosts), which is also what a pull response carries. See docs/STORAGE.md §2.
 *
 *   0 TOTALSIZE 4 | 4 MAGIC 4 | 8 BODYCRC 4 | 12 QUEUEID 4 | 16 FLAG 4 | 20 QUEUEOFFSET 8 |
 *  28 PHYSICALOFFSET 8 | 36 SYSFLAG 4 | 40 BORNTIMESTAMP 8 | 48 BORNHOST 8/20 |
 *  STORETIMESTAMP 8 | STOREHOST 8/20 | RECONSUMETIMES 4 | PREPAREDTXOFFSET 8 |
 *  BODYLEN 4 + BODY | TOPICLEN 1 + TOPIC | PROPSLEN 2 + PROPS
 *
 * FerryMQ appends RocketMQ 5's whole-record CRC property (`__CRC32#` SOH 10 digits STX) at the
 * end of PROPS; it covers every byte of the record before it. */
#ifndef FERRY_STORE_MSG_H
#define FERRY_STORE_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_MAGIC_V1      0xDAA320A7u
#define MSG_MAGIC_BLANK   0xCBD43194u /* end-of-segment marker */
#define MSG_BLANK_LEN     8
#define MSG_MAX_TOPIC_LEN 127
#define MSG_MAX_PROPS_LEN 32767
#define MSG_CRC_PROP      "__CRC32#"
#define MSG_CRC_PROP_LEN  20 /* "__CRC32#" 0x01 + 10 digits + 0x02 */

#define MSG_OFF_QUEUEOFFSET 20
#define MSG_OFF_PHYSOFFSET  28
#define MSG_OFF_SYSFLAG     36
#define MSG_OFF_BORNTS      40

#define SYSFLAG_COMPRESSED   0x1
#define SYSFLAG_MULTI_TAGS   0x2
#define SYSFLAG_TX_MASK      0xC
#define SYSFLAG_TX_NOT       0x0
#define SYSFLAG_TX_PREPARED  0x4
#define SYSFLAG_TX_COMMIT    0x8
#define SYSFLAG_TX_ROLLBACK  0xC
#define SYSFLAG_BORNHOST_V6  0x10
#define SYSFLAG_STOREHOST_V6 0x20

#define PROP_NAME_SEP '\001'
#define PROP_PAIR_SEP '\002'

/* A network endpoint as the record stores it: 4- or 16-byte address and a port. */
struct msg_host {
    uint8_t addr[16];
    int v6;
    uint32_t port;
};

/* A message to append (all pointers borrowed for the call). */
struct store_msg {
    const char *topic; /* NUL-terminated, 1..127 bytes */
    int32_t queue_id;
    int32_t flag;
    int32_t sys_flag; /* host-v6 bits are set by the encoder from the hosts */
    int64_t born_ts;
    struct msg_host born_host;
    int32_t reconsume_times;
    int64_t prepared_tx_offset;
    const void *body;
    uint32_t body_len;
    const char *props; /* properties string name\1value\2..., may be NULL */
    uint32_t props_len;
};

/* A parsed record: views into the record bytes. */
struct msg_view {
    const uint8_t *rec;
    uint32_t total_size;
    uint32_t body_crc;
    int32_t queue_id;
    int32_t flag;
    int64_t queue_offset;
    int64_t phys_offset;
    int32_t sys_flag;
    int64_t born_ts;
    int64_t store_ts;
    size_t store_ts_off; /* byte offset of STORETIMESTAMP in the record */
    int32_t reconsume_times;
    int64_t prepared_tx_offset;
    const uint8_t *body;
    uint32_t body_len;
    const char *topic;
    uint32_t topic_len;
    const char *props;
    uint32_t props_len;
};

/* Size of the record @m encodes to with @store_host (with the CRC property if @with_crc).
 * 0 if a field is over its format limit. */
size_t msg_record_size(const struct store_msg *m, const struct msg_host *store_host, int with_crc);

/* Pre-computed CRC pieces so that under the append lock msg_seal() hashes only the record's
 * first ts+8 bytes (where the patched fields live) and joins the rest with one cheap
 * crc32_combine_op: @c is the CRC of [ts+8, len-20), @op zlib's combine operator for its
 * length. */
struct msg_crc_parts {
    uint32_t c, op;
};

/* Encode @m into @buf (msg_record_size bytes). QUEUEOFFSET, PHYSICALOFFSET, STORETIMESTAMP and
 * the CRC property are left for msg_seal(). When @parts is given (with_crc), it is filled
 * for msg_seal(); the body is hashed once for both CRCs. Returns the STORETIMESTAMP field's
 * offset. */
size_t msg_encode(const struct store_msg *m, const struct msg_host *store_host, int with_crc,
                  uint8_t *buf, size_t len, struct msg_crc_parts *parts);

/* The same pieces computed from an encoded record (for checks). */
void msg_crc_prepare(const uint8_t *rec, size_t len, size_t ts_off, struct msg_crc_parts *parts);

/* Patch queue offset, physical offset and store timestamp into an encoded record and, when
 * @parts is given, write the whole-record CRC property. */
void msg_seal(uint8_t *rec, size_t len, size_t ts_off, int64_t queue_offset, int64_t phys_offset,
              int64_t store_ts, const struct msg_crc_parts *parts);

/* Parse and validate the structure of the record at @p with @avail bytes readable: magic,
 * every length in bounds and summing to TOTALSIZE. Returns 0 or FERRY_ECORRUPT.
 * A blank (end-of-segment) record is reported as FERRY_ENOTFOUND with v->total_size set. */
int msg_parse(const uint8_t *p, size_t avail, struct msg_view *v);

/* The offset message id of the parsed record @v: store host (address, port) and CommitLog
 * offset in upper hex, NUL-terminated (33 bytes for an IPv4 store host, 57 for IPv6). */
void msg_offset_id(const struct msg_view *v, char *out);

/* Check the record: with the whole-record CRC property, that CRC (it covers the body and the
 * stored body CRC, so one pass does); without it, the body CRC, and @require_rec_crc fails it.
 * 0 or FERRY_ECORRUPT. */
int msg_verify(const struct msg_view *v, int require_rec_crc);

/* Find property @name; returns a pointer to its value and its length, or NULL. */
const char *msg_prop_get(const char *props, size_t len, const char *name, size_t *vlen);

/* Java String.hashCode() of UTF-8 text, computed over its UTF-16 code units. */
int32_t java_string_hash(const char *s, size_t len);

/* The ConsumeQueue tags code of a record: hashCode(TAGS) sign-extended, 0 without TAGS. */
int64_t msg_tags_code(const char *props, size_t props_len);

#endif
