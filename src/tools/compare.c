/* Compare what two guests would read, chunk by chunk, skipping what block status says is zero
 * on both sides. Mismatch offsets are rounded down to 512 bytes, as qemu-img reports them. */
#include "tools/compare.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (1u << 20)

static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	uint64_t i = 0;

	while (i + 4096 <= len && !memcmp(a + i, b + i, 4096))
		i += 4096;
	while (i < len && a[i] == b[i])
		i++;
	return i;
}

static uint64_t first_nonzero(const uint8_t *a, uint64_t len)
{
	uint64_t i = 0;

	while (i < len && !a[i])
		i++;
	return i;
}

static int stop_requested(const struct compare_opts *o, uint64_t done, uint64_t total)
{
	if (o->progress)
		o->progress(o->opaque, done, total);
	if (o->stop && *o->stop)
		return err_set(EINTR, "interrupted");
	return 0;
}

/* [off, off+len) of bs must read as zero. */
static int tail_zero(struct bdev *bs, uint64_t off, uint8_t *buf, uint64_t *where,
		     const struct compare_opts *o, uint64_t total)
{
	while (off < bs->size) {
		struct bdev_extent e;
		int ret = stop_requested(o, off, total);
		if (ret == 0)
			ret = bdev_block_status_chain(bs, off, bs->size - off, &e);
		if (ret < 0)
			return ret;
		uint64_t n = e.length < CHUNK ? e.length : CHUNK;
		if (!(e.flags & BDEV_ST_ZERO)) {
			ret = bdev_read(bs, off, buf, n);
			if (ret < 0)
				return ret;
			uint64_t i = first_nonzero(buf, n);
			if (i < n) {
				*where = (off + i) & ~511ULL;
				return COMPARE_MISMATCH;
			}
		}
		off += n;
	}
	return COMPARE_IDENTICAL;
}

static unsigned status_class(unsigned flags)
{
	return flags & (BDEV_ST_ALLOCATED | BDEV_ST_ZERO | BDEV_ST_DATA);
}

int compare_images(struct bdev *a, struct bdev *b, const struct compare_opts *o, uint64_t *where)
{
	uint64_t common = a->size < b->size ? a->size : b->size;
	uint64_t total = a->size > b->size ? a->size : b->size, off = 0;
	uint8_t *ba = aligned_alloc(4096, CHUNK), *bb = aligned_alloc(4096, CHUNK);
	int ret = 0;

	if (!ba || !bb) {
		ret = err_set(ENOMEM, "out of memory");
		goto out;
	}
	if (o->strict && a->size != b->size) {
		ret = COMPARE_SIZE_MISMATCH;
		goto out;
	}
	while (off < common && ret == 0) {
		struct bdev_extent ea, eb;
		ret = stop_requested(o, off, total);
		if (ret == 0)
			ret = bdev_block_status_chain(a, off, common - off, &ea);
		if (ret == 0)
			ret = bdev_block_status_chain(b, off, common - off, &eb);
		if (ret < 0)
			break;
		uint64_t n = ea.length < eb.length ? ea.length : eb.length;
		if (n > CHUNK)
			n = CHUNK;
		if (o->strict && status_class(ea.flags) != status_class(eb.flags)) {
			*where = off;
			ret = COMPARE_STATUS_MISMATCH;
			break;
		}
		if ((ea.flags & BDEV_ST_ZERO) && (eb.flags & BDEV_ST_ZERO)) {
			off += n;
			continue;
		}
		ret = bdev_read(a, off, ba, n);
		if (ret == 0)
			ret = bdev_read(b, off, bb, n);
		if (ret < 0)
			break;
		uint64_t i = first_diff(ba, bb, n);
		if (i < n) {
			*where = (off + i) & ~511ULL;
			ret = COMPARE_MISMATCH;
			break;
		}
		off += n;
	}
	if (ret == 0 && a->size != b->size)
		ret = tail_zero(a->size > b->size ? a : b, common, ba, where, o, total);
out:
	free(ba);
	free(bb);
	return ret;
}
