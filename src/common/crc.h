/* CRC32 as RocketMQ uses it: zlib's crc32 (IEEE 802.3), masked to 31 bits
 * (UtilAll.crc32 returns crc & 0x7FFFFFFF). */
#ifndef FERRY_COMMON_CRC_H
#define FERRY_COMMON_CRC_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* ISA-L (libisal, Debian's isa-l): crc32_gzip_refl() computes zlib's CRC32 with the CPU's
 * carry-less multiply where it has one, several times faster than zlib's table on the 100-300
 * byte pieces a stored record is hashed in; same values, same chaining (start with 0). */
#include <isa-l/crc.h>
#define CRC_ISAL_MIN 64 /* shorter pieces: zlib's table is as fast */

/* zlib's CRC32 of @len bytes continuing from @crc (start with 0). */
static inline uint32_t crc32_update(uint32_t crc, const void *p, size_t len)
{
    const unsigned char *b = p;
    if (len >= CRC_ISAL_MIN)
        return crc32_gzip_refl(crc, b, (uint64_t)len);
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = (uint32_t)crc32(crc, b, n);
        b += n;
        len -= n;
    }
    return crc;
}

/* RocketMQ's masked CRC of a buffer: what BODYCRC and the __CRC32# property hold. */
static inline uint32_t crc32_masked(const void *p, size_t len)
{
    return crc32_update(0, p, len) & 0x7FFFFFFFu;
}

/* CRC of A||B from crc(A), crc(B) and len(B) (zlib crc32_combine). */
static inline uint32_t crc32_join(uint32_t a, uint32_t b, size_t blen)
{
    return (uint32_t)crc32_combine(a, b, (z_off_t)blen);
}

#endif
