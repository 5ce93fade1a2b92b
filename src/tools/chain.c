/* commit and rebase: both copy only where layers differ, then change one header at the end, so
 * an interrupted run leaves images that read the same as before. */
#include "tools/chain.h"
#include "block/block.h"
#include "tools/convert.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (1u << 20)

static int check_stop(const struct chain_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->fn)
		p->fn(p->opaque, done, total);
	if (p && p->stop && *p->stop)
		return err_set(EINTR, "interrupted");
	return 0;
}

static int base_depth(struct bdev *top, struct bdev *base)
{
	int d = 0;

	for (struct bdev *b = top; b; b = b->backing, d++)
		if (b == base)
			return d;
	return -1;
}

int chain_commit(struct bdev *top, struct bdev *base, bool empty_top,
		 const struct chain_progress *p)
{
	int depth = base_depth(top, base), ret = 0;
	uint64_t off = 0;
	void *buf;

	if (depth < 1)
		return err_set(EINVAL, "%s: is not in the backing chain of %s", base->filename,
			       top->filename);
	if (empty_top && depth != 1)
		return err_set(EINVAL, "%s: only the direct backing file's overlay can be emptied",
			       top->filename);
	if (base->size < top->size) {
		ret = bdev_truncate(base, top->size);
		if (ret < 0)
			return ret;
	}
	buf = aligned_alloc(4096, CHUNK);
	if (!buf)
		return err_set(ENOMEM, "out of memory");
	while (off < top->size && ret == 0) {
		struct bdev_extent ext;
		ret = check_stop(p, off, top->size);
		if (ret == 0)
			ret = bdev_block_status_chain(top, off, top->size - off, &ext);
		if (ret < 0)
			break;
		/* Bounded steps, so a stop request is seen within ~16 MiB of copying. */
		uint64_t n = ext.length < 16 * CHUNK ? ext.length : 16 * CHUNK;
		/* Allocated above base: base must take it. At or below base: nothing changes. */
		if ((ext.flags & BDEV_ST_ALLOCATED) && ext.depth < depth) {
			if (ext.flags & BDEV_ST_ZERO)
				ret = bdev_write_zeroes(base, off, n, 0);
			else
				ret = convert_copy_range(top, base, off, n, buf, CHUNK);
		}
		off += n;
	}
	free(buf);
	if (ret == 0)
		ret = bdev_flush(base);
	if (ret == 0 && empty_top) {
		ret = bdev_unmap(top, 0, top->size);
		if (ret == 0)
			ret = bdev_flush(top);
	}
	if (ret == 0)
		check_stop(p, top->size, top->size);
	return ret;
}

/* Compare the old chain's view (read through img's backing) with the new backing's over one
 * chunk not allocated in img, and copy the clusters that differ into img. */
static int rebase_chunk(struct bdev *img, struct bdev *nb, uint64_t off, uint64_t len, uint8_t *old,
			uint8_t *new, uint64_t unit)
{
	int ret = bdev_read(img, off, old, len);

	if (ret < 0)
		return ret;
	uint64_t have = 0;
	if (nb && off < nb->size)
		have = nb->size - off < len ? nb->size - off : len;
	if (have) {
		ret = bdev_read(nb, off, new, have);
		if (ret < 0)
			return ret;
	}
	memset(new + have, 0, len - have);
	for (uint64_t at = 0; at < len; at += unit) {
		uint64_t n = len - at < unit ? len - at : unit;
		if (memcmp(old + at, new + at, n)) {
			ret = bdev_write(img, off + at, old + at, n);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

int chain_rebase(struct bdev *img, struct bdev *nb, const char *name, const char *fmt,
		 const struct chain_progress *p)
{
	uint64_t unit = bdev_cluster_size(img), off = 0;
	uint8_t *old = aligned_alloc(4096, CHUNK), *new = aligned_alloc(4096, CHUNK);
	int ret = 0;

	if (!unit || unit > CHUNK)
		unit = 65536;
	if (!old || !new) {
		ret = err_set(ENOMEM, "out of memory");
		goto out;
	}
	while (off < img->size && ret == 0) {
		struct bdev_extent top, a, b;
		ret = check_stop(p, off, img->size);
		if (ret == 0)
			ret = bdev_block_status(img, off, img->size - off, &top);
		if (ret < 0)
			break;
		uint64_t n = top.length < CHUNK ? top.length : CHUNK;
		/* Keep chunks cluster-aligned so a differing cluster is written whole. */
		if (n > unit && (off + n) % unit)
			n -= (off + n) % unit;
		if (!(top.flags & BDEV_ST_ALLOCATED)) {
			/* Both sides known zero: nothing can differ. */
			bool both_zero = false;
			if (img->backing &&
			    bdev_block_status_chain(img->backing, off, n, &a) == 0 &&
			    (a.flags & BDEV_ST_ZERO)) {
				n = a.length;
				both_zero = true;
			} else if (!img->backing) {
				both_zero = true;
			}
			if (both_zero && nb && off < nb->size) {
				uint64_t m = nb->size - off < n ? nb->size - off : n;
				ret = bdev_block_status_chain(nb, off, m, &b);
				if (ret < 0)
					break;
				both_zero = b.flags & BDEV_ST_ZERO;
				if (both_zero)
					n = b.length;
			}
			if (!both_zero)
				ret = rebase_chunk(img, nb, off, n, old, new, unit);
		}
		off += n;
	}
	if (ret == 0)
		ret = bdev_flush(img);
	if (ret == 0)
		ret = bdev_set_backing(img, name, fmt);
	if (ret == 0)
		check_stop(p, img->size, img->size);
out:
	free(old);
	free(new);
	return ret;
}
