/*
 * L1 and L2 tables: entries looked up and set, L2 tables made this image's own before a change,
 * the L1 table grown, and the clusters a change dropped, freed once the tables are on disk.
 * Every function here: caller holds s->lock.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int qcow2_free_list_add(struct qcow2 *s, struct qcow2_free_list *fl, uint64_t entry)
{
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 16;
		uint64_t *e = realloc(fl->e, cap * sizeof(*e));
		if (!e)
			return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		fl->e = e;
		fl->cap = cap;
	}
	fl->e[fl->n++] = entry;
	return 0;
}

static int free_entry(struct qcow2 *s, uint64_t e)
{
	if (qcow2_cluster_type(e) == QCOW2_CL_COMPRESSED) {
		uint64_t off, len;
		qcow2_compressed_extent(s, e, &off, &len);
		return qcow2_free_clusters(s, off, len);
	}
	return qcow2_free_clusters(s, e & QCOW2_L2E_OFFSET_MASK, s->cluster_size);
}

static int entry_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a & QCOW2_L2E_OFFSET_MASK;
	uint64_t y = *(const uint64_t *)b & QCOW2_L2E_OFFSET_MASK;

	return x < y ? -1 : x > y;
}

/* The L2 tables that no longer reference these clusters must be on disk first, and no data
 * transfer may be running on them (see lock.c). */
int qcow2_free_pending(struct qcow2 *s, struct qcow2_free_list *fl)
{
	int ret = 0;

	assert(qcow2_lock_held(s));
	if (fl->n) {
		qcow2_drain(s);
		ret = qcow2_cache_flush(s->l2_cache);
		if (ret == 0)
			ret = qcow2_sync(s);
		/* Plain clusters in host order, so neighbours are freed (and punched) as one run.
		 */
		qsort(fl->e, fl->n, sizeof(*fl->e), entry_cmp);
		for (size_t i = 0; i < fl->n && ret == 0;) {
			uint64_t e = fl->e[i], host = e & QCOW2_L2E_OFFSET_MASK;
			size_t j = i + 1;
			if (qcow2_cluster_type(e) != QCOW2_CL_COMPRESSED) {
				while (j < fl->n &&
				       qcow2_cluster_type(fl->e[j]) != QCOW2_CL_COMPRESSED &&
				       (fl->e[j] & QCOW2_L2E_OFFSET_MASK) ==
					   host + (j - i) * s->cluster_size)
					j++;
				ret = qcow2_free_clusters(s, host, (j - i) * s->cluster_size);
			} else {
				ret = free_entry(s, e);
			}
			i = j;
		}
	}
	free(fl->e);
	fl->e = NULL;
	fl->n = fl->cap = 0;
	return ret;
}

int qcow2_check_host_offset(struct qcow2 *s, uint64_t e, uint64_t guest_off)
{
	uint64_t host = e & QCOW2_L2E_OFFSET_MASK;

	if (host & (s->cluster_size - 1))
		return qcow2_signal_corruption(s,
					       "L2 entry for guest offset %llu points at "
					       "unaligned host offset %llu",
					       (unsigned long long)guest_off,
					       (unsigned long long)host);
	if (host < s->cluster_size)
		return qcow2_signal_corruption(s,
					       "L2 entry for guest offset %llu points into "
					       "the header",
					       (unsigned long long)guest_off);
	return 0;
}

/* L2 table of l1 index i, or *tbl = NULL if none is allocated. */
static int l2_load(struct qcow2 *s, uint64_t i, uint64_t **tbl)
{
	uint64_t l2off;

	*tbl = NULL;
	if (i >= s->l1_size)
		return 0;
	l2off = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
	if (!l2off)
		return 0;
	if (l2off & (s->cluster_size - 1) || l2off < s->cluster_size)
		return qcow2_signal_corruption(s, "L1 entry %llu points at invalid L2 offset %llu",
					       (unsigned long long)i, (unsigned long long)l2off);
	return qcow2_cache_get(s->l2_cache, l2off, (void **)tbl);
}

int qcow2_get_entry(struct qcow2 *s, uint64_t off, uint64_t *entry)
{
	uint64_t *tbl;
	int ret = l2_load(s, qcow2_l1_index(s, off), &tbl);

	*entry = 0;
	if (ret < 0 || !tbl)
		return ret;
	*entry = __builtin_bswap64(tbl[qcow2_l2_index(s, off)]);
	qcow2_cache_put(s->l2_cache, (void **)&tbl);
	return 0;
}

/* With lazy refcounts the dirty bit must be on disk before the first metadata change. */
int qcow2_mark_dirty(struct qcow2 *s)
{
	assert(qcow2_lock_held(s));
	qcow2_writing = s;
	if (!s->lazy_refcounts || s->dirty_marked)
		return 0;
	int ret = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, true);
	if (ret == 0)
		s->dirty_marked = true;
	return ret;
}

/*
 * The new table reaches the disk (after the refcounts it relies on) before the L1 entry points
 * at it; a shared old table loses our reference only after that.
 */
int qcow2_prepare_l2(struct qcow2 *s, uint64_t i, uint64_t **tbl)
{
	uint64_t old = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
	uint64_t *nt, *ot;
	int64_t noff;
	int ret;

	assert(qcow2_lock_held(s));
	if (old && (s->l1[i] & QCOW2_OFLAG_COPIED)) {
		int r = qcow2_meta_check(s, old, s->cluster_size, QCOW2_META_L2);
		return r < 0 ? r : l2_load(s, i, tbl);
	}
	noff = qcow2_alloc_clusters(s, 1);
	if (noff < 0)
		return (int)noff;
	ret = qcow2_meta_check(s, (uint64_t)noff, s->cluster_size, QCOW2_META_NONE);
	if (ret < 0)
		return ret;
	qcow2_meta_mark(s, (uint64_t)noff, s->cluster_size, QCOW2_META_L2);
	ret = qcow2_cache_get_empty(s->l2_cache, (uint64_t)noff, (void **)&nt);
	if (ret < 0)
		return ret;
	if (old) {
		ret = l2_load(s, i, &ot);
		if (ret < 0)
			goto fail;
		memcpy(nt, ot, s->cluster_size);
		qcow2_cache_put(s->l2_cache, (void **)&ot);
	}
	qcow2_cache_mark_dirty(s->l2_cache, nt);
	ret = qcow2_cache_flush(s->l2_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0)
		goto fail;
	s->l1[i] = (uint64_t)noff | QCOW2_OFLAG_COPIED;
	ret = qcow2_l1_write(s, (uint32_t)i, 1);
	if (ret == 0 && old) {
		ret = qcow2_sync(s);
		if (ret == 0)
			ret = qcow2_free_clusters(s, old, s->cluster_size);
	}
	if (ret < 0)
		goto fail;
	*tbl = nt;
	return 0;
fail:
	qcow2_cache_put(s->l2_cache, (void **)&nt);
	return ret;
}

int qcow2_set_entry(struct qcow2 *s, uint64_t off, uint64_t e)
{
	uint64_t *tbl;
	int ret = qcow2_prepare_l2(s, qcow2_l1_index(s, off), &tbl);

	if (ret < 0)
		return ret;
	tbl[qcow2_l2_index(s, off)] = __builtin_bswap64(e);
	qcow2_cache_mark_dirty(s->l2_cache, tbl);
	qcow2_cache_put(s->l2_cache, (void **)&tbl);
	return 0;
}

int qcow2_l1_write(struct qcow2 *s, uint32_t first, uint32_t count)
{
	uint64_t *buf = malloc((size_t)count * 8);
	int ret = 0;

	assert(qcow2_lock_held(s));
	if (!buf)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	for (uint32_t i = 0; i < count; i++)
		buf[i] = __builtin_bswap64(s->l1[first + i]);
	ret = bdev_file_pwrite_meta(s->bs, buf, (size_t)count * 8, s->l1_offset + first * 8ULL,
				    "the L1 table");
	free(buf);
	return ret;
}

int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size)
{
	uint64_t bytes = min_size * 8;
	uint64_t nclusters = (bytes + s->cluster_size - 1) >> s->cluster_bits;
	uint64_t *nl1;
	int64_t off;
	int ret;

	assert(qcow2_lock_held(s));
	if (min_size <= s->l1_size)
		return 0;
	if (bytes > QCOW2_MAX_L1_BYTES)
		return err_set(EFBIG, "%s: L1 table would exceed %u MiB", s->bs->filename,
			       QCOW2_MAX_L1_BYTES >> 20);
	nl1 = calloc(nclusters, s->cluster_size);
	if (!nl1)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	off = qcow2_alloc_clusters(s, nclusters);
	if (off < 0) {
		ret = (int)off;
		goto fail;
	}
	qcow2_meta_mark(s, (uint64_t)off, min_size * 8, QCOW2_META_L1);
	for (uint32_t i = 0; i < s->l1_size; i++)
		nl1[i] = __builtin_bswap64(s->l1[i]);
	ret = bdev_file_pwrite_meta(s->bs, nl1, nclusters * s->cluster_size, (uint64_t)off,
				    "the new L1 table");
	if (ret == 0)
		ret = qcow2_cache_flush(s->rb_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret =
		    qcow2_header_set_table(s, QCOW2_HDR_L1_SIZE, (uint64_t)off, (uint32_t)min_size);
	if (ret < 0)
		goto fail;
	for (uint64_t i = 0; i < min_size; i++)
		nl1[i] = __builtin_bswap64(nl1[i]);
	uint64_t old = s->l1_offset, old_len = (uint64_t)s->l1_size * 8;
	free(s->l1);
	s->l1 = nl1;
	s->l1_offset = (uint64_t)off;
	s->l1_size = (uint32_t)min_size;
	return old_len ? qcow2_free_clusters(s, old, old_len) : 0;
fail:
	free(nl1);
	return ret;
}
