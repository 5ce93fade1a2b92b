/*
 * Resizing on a user's behalf (img resize): the policy that keeps a resize from losing data
 * lives here, under every front end, rather than in one of them.
 */
#include "block/block.h"
#include "util/error.h"

#include <errno.h>

/* The first data this layer holds at or after off (zero clusters are not data), or UINT64_MAX. */
static int data_from(struct bdev *bs, uint64_t off, uint64_t *where)
{
	*where = UINT64_MAX;
	while (off < bs->size) {
		struct bdev_extent e;
		int ret = bdev_block_status(bs, off, bs->size - off, &e);
		if (ret < 0)
			return ret;
		if ((e.flags & BDEV_ST_DATA) && !(e.flags & BDEV_ST_ZERO)) {
			*where = off;
			return 0;
		}
		off += e.length;
	}
	return 0;
}

int bdev_resize(struct bdev *bs, uint64_t size, unsigned flags)
{
	uint64_t where;
	int ret;

	if (size == bs->size)
		return 0;
	if (size < bs->size) {
		if (!(flags & BDEV_RESIZE_SHRINK))
			return err_set(EPERM,
				       "%s: shrinking from %llu to %llu bytes needs --shrink "
				       "(nothing was changed)",
				       bs->filename, (unsigned long long)bs->size,
				       (unsigned long long)size);
		ret = data_from(bs, size, &where);
		if (ret < 0)
			return ret;
		if (where != UINT64_MAX)
			return err_set(ENOTEMPTY,
				       "%s: refusing to shrink to %llu bytes: allocated data at "
				       "offset %llu would be lost (nothing was changed)",
				       bs->filename, (unsigned long long)size,
				       (unsigned long long)where);
	}
	ret = bdev_truncate(bs, size);
	return ret < 0 ? ret : bdev_flush(bs);
}
