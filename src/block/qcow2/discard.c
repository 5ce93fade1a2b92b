/*
 * Clusters that read as zero or go away: write_zeroes, discard, unmap and resize; and block
 * status, which says what each cluster holds.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>

/* Whole clusters of [off, off+len), plus a partial last cluster that ends the image. */
static void whole_clusters(const struct qcow2 *s, uint64_t off, uint64_t len, uint64_t *first,
			   uint64_t *end)
{
	uint64_t cs = s->cluster_size;
	uint64_t stop = off + len;

	*first = (off + cs - 1) & ~(cs - 1);
	*end = stop & ~(cs - 1);
	if (stop == s->bs->size && stop & (cs - 1))
		*end = (stop + cs - 1) & ~(cs - 1);
	if (*end < *first)
		*end = *first;
}

/* Make one whole cluster read as zero (v3): keep a preallocated cluster unless unmapping. */
static int zero_cluster(struct qcow2 *s, uint64_t off, unsigned flags, struct qcow2_free_list *fl)
{
	uint64_t e;
	int ret = qcow2_get_entry(s, off, &e);

	if (ret < 0)
		return ret;
	enum qcow2_ctype t = qcow2_cluster_type(e);
	if (t == QCOW2_CL_ZERO_PLAIN)
		return 0;
	bool unmap = t == QCOW2_CL_COMPRESSED ||
		     (qcow2_cluster_allocated(t) &&
		      ((flags & BDEV_ZERO_MAY_UNMAP) || !(e & QCOW2_OFLAG_COPIED)));
	uint64_t ne = QCOW2_OFLAG_ZERO;
	if (qcow2_cluster_allocated(t) && !unmap)
		ne |= (e & QCOW2_L2E_OFFSET_MASK) | QCOW2_OFLAG_COPIED;
	ret = qcow2_set_entry(s, off, ne);
	if (ret == 0 && unmap)
		ret = qcow2_free_list_add(s, fl, e);
	return ret;
}

static int write_zero_bytes(struct qcow2 *s, uint64_t off, uint64_t len)
{
	uint8_t *z = calloc(1, s->cluster_size);
	int ret = 0;

	if (!z)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	while (len && ret == 0) {
		size_t n = s->cluster_size - (off & (s->cluster_size - 1));
		if (n > len)
			n = len;
		ret = qcow2_write_locked(s, off, z, n);
		off += n;
		len -= n;
	}
	free(z);
	return ret;
}

static int do_block_status(struct qcow2 *s, uint64_t off, uint64_t len, struct bdev_extent *ext);

/* Does [off, off+len) read as zero without reading data (zero flags, holes, short backing)? */
static int reads_zero(struct qcow2 *s, uint64_t off, uint64_t len, bool *zero)
{
	struct bdev *b = s->bs->backing;

	*zero = true;
	while (len && *zero) {
		struct bdev_extent ext = {0};
		int ret = do_block_status(s, off, len, &ext);
		if (ret < 0)
			return ret;
		if (ext.flags & BDEV_ST_ALLOCATED) {
			*zero = ext.flags & BDEV_ST_ZERO;
		} else if (b && off < b->size) {
			struct bdev_extent be;
			uint64_t n = ext.length < b->size - off ? ext.length : b->size - off;
			ret = bdev_block_status_chain(b, off, n, &be);
			if (ret < 0)
				return ret;
			*zero = be.flags & BDEV_ST_ZERO;
			ext.length = be.length;
		}
		off += ext.length;
		len -= ext.length;
	}
	return 0;
}

/*
 * Zero [off, off+len) inside one cluster. Like QEMU, a cluster that holds nothing of its own
 * and whose other bytes already read as zero becomes a zero cluster as a whole; otherwise the
 * zeroes are written as data.
 */
static int zero_partial(struct qcow2 *s, uint64_t off, uint64_t len, unsigned flags,
			struct qcow2_free_list *fl)
{
	uint64_t cstart = off & ~(s->cluster_size - 1), e;
	uint64_t cend =
	    cstart + s->cluster_size < s->bs->size ? cstart + s->cluster_size : s->bs->size;
	int ret;

	if (s->version >= 3) {
		bool z1 = false, z2 = false;
		ret = qcow2_get_entry(s, cstart, &e);
		if (ret < 0)
			return ret;
		enum qcow2_ctype t = qcow2_cluster_type(e);
		if (t == QCOW2_CL_UNALLOC || t == QCOW2_CL_ZERO_PLAIN || t == QCOW2_CL_ZERO_ALLOC) {
			ret = reads_zero(s, cstart, off - cstart, &z1);
			if (ret == 0 && z1)
				ret = reads_zero(s, off + len, cend - (off + len), &z2);
			if (ret < 0)
				return ret;
			if (z1 && z2)
				return zero_cluster(s, cstart, flags, fl);
		}
	}
	return write_zero_bytes(s, off, len);
}

static int do_write_zeroes(struct qcow2 *s, uint64_t off, uint64_t len, unsigned flags)
{
	struct qcow2_free_list fl = {0};
	uint64_t first, end;
	int ret = qcow2_mark_dirty(s);

	if (ret < 0)
		return ret;
	whole_clusters(s, off, len, &first, &end);
	if (off < first)
		ret =
		    zero_partial(s, off, (first < off + len ? first : off + len) - off, flags, &fl);
	for (uint64_t c = first; c < end && ret == 0; c += s->cluster_size) {
		if (s->version >= 3) {
			ret = zero_cluster(s, c, flags, &fl);
		} else {
			/* v2 has no zero flag: unallocated clusters without a backing file
			 * already read as zero; anything else gets zeroes written. */
			uint64_t e;
			ret = qcow2_get_entry(s, c, &e);
			if (ret == 0 &&
			    !(qcow2_cluster_type(e) == QCOW2_CL_UNALLOC && !s->bs->backing)) {
				uint64_t n = s->cluster_size;
				if (c + n > s->bs->size)
					n = s->bs->size - c;
				ret = write_zero_bytes(s, c, n);
			}
		}
	}
	if (ret == 0 && end < off + len && end >= first)
		ret = zero_partial(s, end, off + len - end, flags, &fl);
	int ret2 = qcow2_free_pending(s, &fl);
	return ret < 0 ? ret : ret2;
}

int qcow2_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_write_zeroes(s, off, len, flags);
	qcow2_unlock(s);
	return ret;
}

/*
 * Discard whole clusters, with QEMU's semantics so guests see the same bytes: afterwards they
 * read as zero (v3: zero flag where a backing file or an allocation would show through; v2
 * without backing: unallocated). v2 with a backing file cannot hide the backing data, so
 * discard does nothing there. Partial clusters are left alone.
 */
static int do_discard(struct qcow2 *s, uint64_t off, uint64_t len, bool full)
{
	struct qcow2_free_list fl = {0};
	uint64_t first, end;
	int ret;

	if (!full && s->version < 3 && s->bs->backing)
		return 0;
	ret = qcow2_mark_dirty(s);
	if (ret < 0)
		return ret;
	whole_clusters(s, off, len, &first, &end);
	for (uint64_t c = first; c < end && ret == 0; c += s->cluster_size) {
		uint64_t e;
		ret = qcow2_get_entry(s, c, &e);
		if (ret < 0)
			break;
		enum qcow2_ctype t = qcow2_cluster_type(e);
		uint64_t ne = 0;
		if (!full && s->version >= 3 && (s->bs->backing || qcow2_cluster_allocated(t)))
			ne = QCOW2_OFLAG_ZERO;
		if (e == ne || (t == QCOW2_CL_UNALLOC && !ne))
			continue;
		ret = qcow2_set_entry(s, c, ne);
		if (ret == 0 && qcow2_cluster_allocated(t))
			ret = qcow2_free_list_add(s, &fl, e);
	}
	int ret2 = qcow2_free_pending(s, &fl);
	return ret < 0 ? ret : ret2;
}

static int discard_excl(struct bdev *bs, uint64_t off, uint64_t len, bool full)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_discard(s, off, len, full);
	qcow2_unlock(s);
	return ret;
}

int qcow2_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	return discard_excl(bs, off, len, false);
}

int qcow2_unmap(struct bdev *bs, uint64_t off, uint64_t len)
{
	return discard_excl(bs, off, len, true);
}

static unsigned status_flags(enum qcow2_ctype t)
{
	switch (t) {
	case QCOW2_CL_UNALLOC:
		return 0;
	case QCOW2_CL_ZERO_PLAIN:
		return BDEV_ST_ALLOCATED | BDEV_ST_ZERO;
	case QCOW2_CL_ZERO_ALLOC:
		return BDEV_ST_ALLOCATED | BDEV_ST_ZERO | BDEV_ST_OFFSET;
	case QCOW2_CL_NORMAL:
		return BDEV_ST_ALLOCATED | BDEV_ST_DATA | BDEV_ST_OFFSET;
	case QCOW2_CL_COMPRESSED:
		return BDEV_ST_ALLOCATED | BDEV_ST_DATA | BDEV_ST_COMPRESSED;
	}
	return 0;
}

static int do_block_status(struct qcow2 *s, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	uint64_t e, cs = s->cluster_size;
	int ret = qcow2_get_entry(s, off, &e);

	if (ret < 0)
		return ret;
	enum qcow2_ctype t = qcow2_cluster_type(e);
	uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
	uint64_t in = off & (cs - 1);
	uint64_t n = cs - in;

	ext->flags = status_flags(t);
	if (ext->flags & BDEV_ST_OFFSET)
		ext->host_offset = host + in;
	/* Extend over following clusters of the same kind (and contiguous on the host). */
	while (n < len) {
		uint64_t ne;
		ret = qcow2_get_entry(s, off + n, &ne);
		if (ret < 0)
			return ret;
		if (qcow2_cluster_type(ne) != t)
			break;
		if ((ext->flags & BDEV_ST_OFFSET) && (ne & QCOW2_L2E_OFFSET_MASK) != host + in + n)
			break;
		n += cs;
	}
	ext->length = n < len ? n : len;
	return 0;
}

int qcow2_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock(s);
	int ret = do_block_status(s, off, len, ext);
	qcow2_unlock(s);
	return ret;
}

static int do_truncate(struct qcow2 *s, uint64_t size)
{
	uint64_t per_l1 = s->cluster_size * s->l2_size;
	int ret = qcow2_mark_dirty(s);

	if (ret < 0)
		return ret;
	if (size > QCOW2_MAX_VIRTUAL_SIZE)
		return err_set(EFBIG, "%s: size %llu is larger than qcow2 supports here",
			       s->bs->filename, (unsigned long long)size);
	if (s->nb_snapshots && size < s->bs->size)
		return err_set(ENOTSUP, "%s: cannot shrink an image that has snapshots",
			       s->bs->filename);
	if (size < s->bs->size) {
		/* Drop every cluster past the new end, so the file holds nothing invisible. */
		uint64_t from = (size + s->cluster_size - 1) & ~(s->cluster_size - 1);
		if (from < s->bs->size) {
			ret = do_discard(s, from, s->bs->size - from, true);
			if (ret < 0)
				return ret;
		}
	}
	ret = qcow2_grow_l1(s, (size + per_l1 - 1) / per_l1);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret = qcow2_header_write_u64(s, QCOW2_HDR_SIZE, size);
	if (ret == 0)
		s->bs->size = size;
	return ret;
}

int qcow2_truncate(struct bdev *bs, uint64_t size)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_truncate(s, size);
	qcow2_unlock(s);
	return ret;
}
