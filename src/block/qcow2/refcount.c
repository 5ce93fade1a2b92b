/*
 * Refcounts: the two-level refcount table (table -> blocks -> 1..64-bit entries) and cluster
 * allocation.
 *
 * Ordering rules (so a crash leaves at most leaked clusters):
 *  - a refcount increase reaches the disk before any reference to the cluster (the L2 cache
 *    depends on the refcount cache, and new tables are flushed before they are linked);
 *  - a new refcount block is on disk before the table entry that links it;
 *  - a new refcount table is on disk before the header points at it, and the old one is freed
 *    only after the switch.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rb_entry_get(const struct qcow2 *s, const void *rb, uint64_t i)
{
	const uint8_t *p = rb;

	switch (s->refcount_order) {
	case 0:
		return (p[i / 8] >> (i % 8)) & 1;
	case 1:
		return (p[i / 4] >> (2 * (i % 4))) & 3;
	case 2:
		return (p[i / 2] >> (4 * (i % 2))) & 15;
	case 3:
		return p[i];
	case 4:
		return be16_get(p + 2 * i);
	case 5:
		return be32_get(p + 4 * i);
	default:
		return be64_get(p + 8 * i);
	}
}

static void rb_entry_set(const struct qcow2 *s, void *rb, uint64_t i, uint64_t v)
{
	uint8_t *p = rb;

	switch (s->refcount_order) {
	case 0:
		p[i / 8] = (uint8_t)((p[i / 8] & ~(1u << (i % 8))) | (v << (i % 8)));
		break;
	case 1:
		p[i / 4] = (uint8_t)((p[i / 4] & ~(3u << (2 * (i % 4)))) | (v << (2 * (i % 4))));
		break;
	case 2:
		p[i / 2] = (uint8_t)((p[i / 2] & ~(15u << (4 * (i % 2)))) | (v << (4 * (i % 2))));
		break;
	case 3:
		p[i] = (uint8_t)v;
		break;
	case 4:
		be16_put(p + 2 * i, (uint16_t)v);
		break;
	case 5:
		be32_put(p + 4 * i, (uint32_t)v);
		break;
	default:
		be64_put(p + 8 * i, v);
		break;
	}
}

int qcow2_refcount_init(struct qcow2 *s)
{
	uint64_t bytes = (uint64_t)s->rt_clusters << s->cluster_bits;
	ssize_t n;

	s->rt_size = bytes / 8;
	s->rt = calloc(s->rt_size ? s->rt_size : 1, sizeof(uint64_t));
	if (!s->rt)
		return err_set(ENOMEM, "%s: out of memory for the refcount table", s->bs->filename);
	n = pread(s->fd, s->rt, bytes, (off_t)s->rt_offset);
	if (n < 0)
		return err_sys(errno, "%s: could not read the refcount table", s->bs->filename);
	if ((uint64_t)n < bytes && !(s->bs->flags & BDEV_O_CHECK))
		return err_set(EINVAL,
			       "%s: refcount table at offset %llu is past the end of the file",
			       s->bs->filename, (unsigned long long)s->rt_offset);
	for (uint64_t i = 0; i < s->rt_size; i++)
		s->rt[i] = __builtin_bswap64(s->rt[i]);
	s->rb_cache = qcow2_cache_new(s, 16, "refcount block");
	if (!s->rb_cache)
		return err_set(ENOMEM, "%s: out of memory for the refcount cache", s->bs->filename);
	return 0;
}

void qcow2_refcount_close(struct qcow2 *s)
{
	qcow2_cache_free(s->rb_cache);
	s->rb_cache = NULL;
	free(s->rt);
	s->rt = NULL;
}

static uint64_t rb_offset(const struct qcow2 *s, uint64_t idx)
{
	return idx < s->rt_size ? s->rt[idx] & QCOW2_REFT_OFFSET_MASK : 0;
}

int qcow2_refcount_get(struct qcow2 *s, uint64_t cluster, uint64_t *val)
{
	uint64_t off = rb_offset(s, cluster >> s->rb_bits);
	void *rb;
	int ret;

	*val = 0;
	if (!off)
		return 0;
	ret = qcow2_cache_get(s->rb_cache, off, &rb);
	if (ret < 0)
		return ret;
	*val = rb_entry_get(s, rb, cluster & ((1ULL << s->rb_bits) - 1));
	qcow2_cache_put(s->rb_cache, &rb);
	return 0;
}

static bool reserved(const struct qcow2 *s, uint64_t c)
{
	for (int i = 0; i < s->nresv; i++)
		if (c >= s->resv[i][0] && c < s->resv[i][1])
			return true;
	return false;
}

static uint64_t reserved_end(const struct qcow2 *s)
{
	uint64_t end = 0;

	for (int i = 0; i < s->nresv; i++)
		if (s->resv[i][1] > end)
			end = s->resv[i][1];
	return end;
}

static int reserve_push(struct qcow2 *s, uint64_t lo, uint64_t hi)
{
	if (s->nresv >= 8)
		return err_set(EIO, "%s: allocation nested too deeply", s->bs->filename);
	s->resv[s->nresv][0] = lo;
	s->resv[s->nresv][1] = hi;
	s->nresv++;
	return 0;
}

static void reserve_pop(struct qcow2 *s)
{
	s->nresv--;
}

/* First run of n free clusters at or after the allocation hint. O(clusters scanned). */
static int find_free(struct qcow2 *s, uint64_t n, uint64_t *first)
{
	uint64_t start = s->free_cluster_index ? s->free_cluster_index : 1;
	uint64_t run = 0, c = start;

	while (run < n) {
		uint64_t rc = 0;
		if (c >= ((QCOW2_L2E_OFFSET_MASK + 1) >> s->cluster_bits))
			return err_set(ENOSPC,
				       "%s: image file would exceed the largest offset qcow2 "
				       "can address",
				       s->bs->filename);
		int ret = qcow2_refcount_get(s, c, &rc);
		if (ret < 0)
			return ret;
		if (rc || reserved(s, c)) {
			run = 0;
			start = c + 1;
			/* Nothing free below here: later scans may start further on. */
			if (start - 1 == s->free_cluster_index)
				s->free_cluster_index = start;
		} else {
			run++;
		}
		c++;
	}
	*first = start;
	return 0;
}

static int rt_entry_write(struct qcow2 *s, uint64_t idx)
{
	uint8_t buf[8];

	be64_put(buf, s->rt[idx]);
	return bdev_file_pwrite_meta(s->bs, buf, 8, s->rt_offset + idx * 8, "the refcount table");
}

static int rt_grow(struct qcow2 *s, uint64_t min_entries);

/* Make sure refcount block idx exists, allocating (and linking) it if not. */
static int rb_ensure(struct qcow2 *s, uint64_t idx)
{
	uint64_t first, c;
	void *rb;
	int ret;

	if (idx >= s->rt_size) {
		ret = rt_grow(s, idx + 1);
		if (ret < 0)
			return ret;
	}
	if (rb_offset(s, idx))
		return 0;
	ret = find_free(s, 1, &first);
	if (ret < 0)
		return ret;
	c = first;
	uint64_t off = c << s->cluster_bits;
	if (off + s->cluster_size > s->file_end)
		s->file_end = off + s->cluster_size;
	ret = qcow2_meta_check(s, off, s->cluster_size, QCOW2_META_NONE);
	if (ret < 0)
		return ret;
	qcow2_meta_mark(s, off, s->cluster_size, QCOW2_META_RB);
	ret = qcow2_cache_get_empty(s->rb_cache, off, &rb);
	if (ret < 0)
		return ret;
	if ((c >> s->rb_bits) == idx)
		rb_entry_set(s, rb, c & ((1ULL << s->rb_bits) - 1), 1); /* describes itself */
	qcow2_cache_mark_dirty(s->rb_cache, rb);
	qcow2_cache_put(s->rb_cache, &rb);
	if ((c >> s->rb_bits) != idx) {
		ret = reserve_push(s, c, c + 1);
		if (ret < 0)
			return ret;
		ret = qcow2_refcount_set(s, c, 1);
		reserve_pop(s);
		if (ret < 0)
			return ret;
	}
	ret = qcow2_cache_flush(s->rb_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0)
		return ret;
	if (idx >= s->rt_size) /* the table grew again while we allocated */
		return err_set(EIO, "%s: refcount table changed during allocation",
			       s->bs->filename);
	s->rt[idx] = off;
	return rt_entry_write(s, idx);
}

int qcow2_refcount_set(struct qcow2 *s, uint64_t cluster, uint64_t val)
{
	uint64_t idx = cluster >> s->rb_bits;
	void *rb;
	int ret;

	if (val > s->refcount_max)
		return err_set(ERANGE, "%s: refcount of cluster %llu would exceed %llu",
			       s->bs->filename, (unsigned long long)cluster,
			       (unsigned long long)s->refcount_max);
	if (!rb_offset(s, idx)) {
		if (val == 0)
			return 0;
		ret = rb_ensure(s, idx);
		if (ret < 0)
			return ret;
	}
	ret = qcow2_cache_get(s->rb_cache, rb_offset(s, idx), &rb);
	if (ret < 0)
		return ret;
	rb_entry_set(s, rb, cluster & ((1ULL << s->rb_bits) - 1), val);
	qcow2_cache_mark_dirty(s->rb_cache, rb);
	qcow2_cache_put(s->rb_cache, &rb);
	if (val == 0 && cluster < s->free_cluster_index)
		s->free_cluster_index = cluster;
	return 0;
}

int qcow2_refcount_update(struct qcow2 *s, uint64_t off, uint64_t len, int64_t delta)
{
	uint64_t first = off >> s->cluster_bits;
	uint64_t last = (off + len - 1) >> s->cluster_bits;
	uint64_t rc;
	int ret;

	if (!len)
		return 0;
	for (uint64_t c = first; c <= last; c++) {
		ret = qcow2_refcount_get(s, c, &rc);
		if (ret < 0)
			return ret;
		if ((delta < 0 && rc < (uint64_t)-delta) ||
		    (delta > 0 && rc + (uint64_t)delta > s->refcount_max))
			return qcow2_signal_corruption(s,
						       "refcount of cluster %llu is %llu, cannot "
						       "add %lld",
						       (unsigned long long)c,
						       (unsigned long long)rc, (long long)delta);
	}
	for (uint64_t c = first; c <= last; c++) {
		ret = qcow2_refcount_get(s, c, &rc);
		if (ret == 0)
			ret = qcow2_refcount_set(s, c, rc + (uint64_t)delta);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n)
{
	uint64_t first;
	int ret;

	ret = find_free(s, n, &first);
	if (ret < 0)
		return ret;
	if (first == s->free_cluster_index || !s->free_cluster_index)
		s->free_cluster_index = first + n;
	uint64_t end = (first + n) << s->cluster_bits;
	if (end > s->file_end)
		s->file_end = end;
	ret = reserve_push(s, first, first + n);
	if (ret < 0)
		return ret;
	for (uint64_t c = first; c < first + n; c++) {
		ret = qcow2_refcount_set(s, c, 1);
		if (ret < 0)
			break;
	}
	reserve_pop(s);
	if (ret < 0)
		return ret;
	return (int64_t)(first << s->cluster_bits);
}

/*
 * Space for one compressed cluster. Compressed data is packed back to back, and like QEMU it
 * may run on into the next host cluster when that one is free: every cluster a piece touches
 * gets one reference for it.
 */
int64_t qcow2_alloc_bytes(struct qcow2 *s, uint64_t len)
{
	uint64_t off = s->free_byte_offset, rc = 0;
	int ret;

	if (len > s->cluster_size)
		return err_set(EINVAL, "%s: compressed cluster larger than a cluster",
			       s->bs->filename);
	if (off) {
		ret = qcow2_refcount_get(s, off >> s->cluster_bits, &rc);
		if (ret < 0)
			return ret;
		if (rc >= s->refcount_max)
			off = 0;
	}
	uint64_t free_in = off ? s->cluster_size - (off & (s->cluster_size - 1)) : 0;
	if (off && free_in < len) {
		/* Continue into the following cluster if nobody uses it. */
		uint64_t next = (off >> s->cluster_bits) + 1;
		ret = qcow2_refcount_get(s, next, &rc);
		if (ret < 0)
			return ret;
		if (rc || reserved(s, next))
			off = 0;
	}
	if (!off) {
		int64_t c = qcow2_alloc_clusters(s, 1); /* refcount 1: this piece's reference */
		if (c < 0)
			return c;
		off = (uint64_t)c;
	} else {
		uint64_t last = (off + len - 1) >> s->cluster_bits;
		ret = reserve_push(s, off >> s->cluster_bits, last + 1);
		if (ret < 0)
			return ret;
		ret = qcow2_refcount_update(s, off, len, 1);
		reserve_pop(s);
		if (ret < 0)
			return ret;
		uint64_t end = (last + 1) << s->cluster_bits;
		if (end > s->file_end)
			s->file_end = end;
		if (last >= s->free_cluster_index &&
		    (off >> s->cluster_bits) < s->free_cluster_index)
			s->free_cluster_index = last + 1;
	}
	s->free_byte_offset = off + len;
	if (!(s->free_byte_offset & (s->cluster_size - 1)))
		s->free_byte_offset = 0;
	return (int64_t)off;
}

static void punch(struct qcow2 *s, uint64_t first, uint64_t n)
{
	if (n && !(s->bs->flags & BDEV_O_CHECK))
		fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(first << s->cluster_bits), (off_t)(n << s->cluster_bits));
}

int qcow2_free_clusters(struct qcow2 *s, uint64_t off, uint64_t len)
{
	int ret = qcow2_refcount_update(s, off, len, -1);
	uint64_t rc;

	if (ret < 0)
		return ret;
	/* Give freed clusters back to the host file system, one hole per run of them. */
	uint64_t run = 0, nrun = 0;
	for (uint64_t c = off >> s->cluster_bits; c <= (off + len - 1) >> s->cluster_bits; c++) {
		if (qcow2_refcount_get(s, c, &rc) < 0 || rc)
			continue;
		uint64_t co = c << s->cluster_bits;
		qcow2_meta_mark(s, co, s->cluster_size, QCOW2_META_NONE);
		qcow2_cache_discard(s->l2_cache, co);
		if (s->zcache_offset >> s->cluster_bits == c)
			s->zcache_offset = 0;
		if (s->free_byte_offset >> s->cluster_bits == c)
			s->free_byte_offset = 0;
		if (nrun && run + nrun == c) {
			nrun++;
			continue;
		}
		punch(s, run, nrun);
		run = c;
		nrun = 1;
	}
	punch(s, run, nrun);
	return 0;
}

/*
 * Grow the refcount table to at least min_entries. The new table and the refcount blocks that
 * describe it go at the end of the file, so their own refcounts are written in the same step.
 */
static int rt_grow(struct qcow2 *s, uint64_t min_entries)
{
	uint64_t per_cluster = s->cluster_size / 8;
	uint64_t blk = 1ULL << s->rb_bits;
	uint64_t start = (s->file_end + s->cluster_size - 1) >> s->cluster_bits;
	uint64_t entries = min_entries, nblocks = 0, tclusters;
	uint64_t *newrt = NULL;
	uint8_t *blocks = NULL;
	int ret;

	if (start < reserved_end(s))
		start = reserved_end(s);
	if (entries < s->rt_size + s->rt_size / 2)
		entries = s->rt_size + s->rt_size / 2;
	/* Find a fixed point: blocks for the area, table big enough for them. */
	for (int iter = 0;; iter++) {
		entries = (entries + per_cluster - 1) / per_cluster * per_cluster;
		tclusters = entries / per_cluster;
		uint64_t area_end = start + nblocks + tclusters;
		uint64_t need = 0;
		for (uint64_t i = start / blk; i <= (area_end - 1) / blk; i++)
			if (!rb_offset(s, i))
				need++;
		uint64_t max_idx = (area_end - 1) / blk;
		if (need == nblocks && max_idx < entries)
			break;
		nblocks = need;
		if (max_idx >= entries)
			entries = max_idx + 1;
		if (iter > 64 || tclusters * s->cluster_size > QCOW2_MAX_RT_BYTES * 8ULL)
			return err_set(EFBIG, "%s: refcount table would grow too large",
				       s->bs->filename);
	}
	newrt = calloc(entries, sizeof(uint64_t));
	blocks = calloc(nblocks ? nblocks : 1, s->cluster_size);
	if (!newrt || !blocks) {
		ret = err_set(ENOMEM, "%s: out of memory growing the refcount table",
			      s->bs->filename);
		goto out;
	}
	memcpy(newrt, s->rt, s->rt_size * sizeof(uint64_t));
	/* Assign the new blocks (first clusters of the area) to the uncovered indices. */
	uint64_t area_end = start + nblocks + tclusters, b = 0;
	for (uint64_t i = start / blk; i <= (area_end - 1) / blk; i++)
		if (!rb_offset(s, i))
			newrt[i] = (start + b++) << s->cluster_bits;
	/* Every area cluster gets refcount 1: in a new block, or through the cache (existing
	 * blocks only, so nothing is allocated here). */
	for (uint64_t c = start; c < area_end; c++) {
		uint64_t i = c / blk;
		if (rb_offset(s, i)) {
			ret = qcow2_refcount_set(s, c, 1);
			if (ret < 0)
				goto out;
		} else {
			uint64_t bi = ((newrt[i] >> s->cluster_bits) - start);
			rb_entry_set(s, blocks + bi * s->cluster_size, c % blk, 1);
		}
	}
	for (uint64_t i = 0; i < nblocks; i++)
		qcow2_cache_discard(s->rb_cache, (start + i) << s->cluster_bits);
	/* The map covers clusters up to about twice file_end: extend it before marking. */
	if (area_end << s->cluster_bits > s->file_end)
		s->file_end = area_end << s->cluster_bits;
	qcow2_meta_mark(s, start << s->cluster_bits, nblocks << s->cluster_bits, QCOW2_META_RB);
	qcow2_meta_mark(s, (start + nblocks) << s->cluster_bits, tclusters << s->cluster_bits,
			QCOW2_META_RT);
	size_t bbytes = nblocks * s->cluster_size;
	ret = bbytes ? bdev_file_pwrite_meta(s->bs, blocks, bbytes, start << s->cluster_bits,
					     "new refcount blocks")
		     : 0;
	for (uint64_t i = 0; i < entries; i++)
		newrt[i] = __builtin_bswap64(newrt[i]);
	uint64_t toff = (start + nblocks) << s->cluster_bits;
	if (ret == 0)
		ret = bdev_file_pwrite_meta(s->bs, newrt, entries * 8, toff,
					    "the new refcount table");
	for (uint64_t i = 0; i < entries; i++)
		newrt[i] = __builtin_bswap64(newrt[i]);
	if (ret == 0)
		ret = qcow2_cache_flush(s->rb_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0)
		goto out;
	ret = qcow2_header_set_table(s, QCOW2_HDR_RT_OFFSET, toff, (uint32_t)tclusters);
	if (ret < 0)
		goto out;
	uint64_t old_off = s->rt_offset, old_len = (uint64_t)s->rt_clusters << s->cluster_bits;
	free(s->rt);
	s->rt = newrt;
	newrt = NULL;
	s->rt_size = entries;
	s->rt_offset = toff;
	s->rt_clusters = (uint32_t)tclusters;
	ret = qcow2_free_clusters(s, old_off, old_len);
out:
	free(newrt);
	free(blocks);
	return ret;
}
