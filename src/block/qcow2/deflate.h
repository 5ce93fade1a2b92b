/*
 * A raw deflate (RFC 1951) encoder for qcow2's zlib clusters, whose readers (QEMU's among them)
 * inflate with a 4 KiB window: no match here reaches further back than 4096 bytes.
 */
#ifndef LIGERO_BLOCK_QCOW2_DEFLATE_H
#define LIGERO_BLOCK_QCOW2_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

struct dfl;

/* State for one thread (about 200 KiB), reused from call to call; NULL when out of memory. */
struct dfl *dfl_new(void);
void dfl_free(struct dfl *d);

/* Compress src[0..len) into dst[0..cap) as one complete raw deflate stream. Returns the
 * stream's length, or -ENOSPC when it does not fit in cap, -ENOMEM when out of memory, -EPROTO
 * when a block would declare distance codes past the 4 KiB window (never, by construction;
 * checked because the caller's decode check does not enforce the window). */
int64_t dfl_compress(struct dfl *d, uint8_t *dst, size_t cap, const uint8_t *src, size_t len);

#endif
