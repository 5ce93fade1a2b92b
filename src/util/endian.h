/* Big- and little-endian loads and stores at any alignment (memcpy compiles to one move). */
#ifndef LIGERO_UTIL_ENDIAN_H
#define LIGERO_UTIL_ENDIAN_H

#include <stdint.h>
#include <string.h>

static inline uint64_t be64_get(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return __builtin_bswap64(v);
}
static inline uint32_t be32_get(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}
static inline uint16_t be16_get(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return __builtin_bswap16(v);
}
static inline void be64_put(void *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}
static inline void be32_put(void *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}
static inline void be16_put(void *p, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(p, &v, 2);
}
static inline uint64_t le64_get(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline uint32_t le32_get(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline uint16_t le16_get(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

#endif
