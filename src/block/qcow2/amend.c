/* Changing an existing image: backing file (rebase -u), compat level and lazy refcounts. */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int qcow2_set_backing(struct bdev *bs, const char *name, const char *fmt)
{
	struct qcow2 *s = bs->opaque;
	char *oname = bs->backing_name, *ofmt = bs->backing_fmt, *opath = bs->backing_path;
	int ret;

	qcow2_lock_excl(s);
	bs->backing_name = name && *name ? strdup(name) : NULL;
	bs->backing_fmt = bs->backing_name && fmt ? strdup(fmt) : NULL;
	bs->backing_path = bs->backing_name ? bdev_resolve_backing(bs->filename, name) : NULL;
	ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_header_rewrite(s);
	if (ret < 0) {
		free(bs->backing_name);
		free(bs->backing_fmt);
		free(bs->backing_path);
		bs->backing_name = oname;
		bs->backing_fmt = ofmt;
		bs->backing_path = opath;
	} else {
		free(oname);
		free(ofmt);
		free(opath);
		if (bs->backing_path)
			bdev_base_register(bs->backing_path, bs->filename);
	}
	qcow2_unlock(s);
	return ret;
}

/* v2 has no zero flag: turn zero clusters into unallocated ones (nothing below shows through)
 * or into clusters holding zeroes. */
static int expand_zero_clusters(struct qcow2 *s)
{
	uint8_t *zero = calloc(1, s->cluster_size);
	int ret = 0;

	if (!zero)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	for (uint32_t i = 0; i < s->l1_size && ret == 0; i++) {
		uint64_t l2off = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
		uint64_t *t;
		if (!l2off)
			continue;
		ret = qcow2_cache_get(s->l2_cache, l2off, (void **)&t);
		for (uint64_t j = 0; j < s->l2_size && ret == 0; j++) {
			uint64_t e = __builtin_bswap64(t[j]);
			if ((e & QCOW2_OFLAG_COMPRESSED) || !(e & QCOW2_OFLAG_ZERO))
				continue;
			uint64_t host = e & QCOW2_L2E_OFFSET_MASK, ne = 0;
			if (host && (e & QCOW2_OFLAG_COPIED)) {
				ne = host | QCOW2_OFLAG_COPIED;
			} else if (s->bs->backing || host) {
				int64_t h = qcow2_alloc_clusters(s, 1);
				if (h < 0) {
					ret = (int)h;
					break;
				}
				ne = (uint64_t)h | QCOW2_OFLAG_COPIED;
				if (host)
					ret = qcow2_free_clusters(s, host, s->cluster_size);
			}
			if (ret == 0 && ne)
				ret = bdev_file_pwrite_meta(s->bs, zero, s->cluster_size,
							    ne & QCOW2_L2E_OFFSET_MASK,
							    "a zero cluster");
			if (ret == 0) {
				t[j] = __builtin_bswap64(ne);
				qcow2_cache_mark_dirty(s->l2_cache, t);
			}
		}
		if (t)
			qcow2_cache_put(s->l2_cache, (void **)&t);
	}
	free(zero);
	return ret;
}

static int downgrade(struct qcow2 *s)
{
	const char *fn = s->bs->filename;
	int ret;

	if (s->refcount_bits != 16)
		return err_set(ENOTSUP,
			       "%s: compat=0.10 needs refcount_bits=16 (this image has %u)", fn,
			       s->refcount_bits);
	if (s->compression_type != QCOW2_COMPRESSION_ZLIB)
		return err_set(ENOTSUP, "%s: compat=0.10 cannot hold zstd-compressed clusters", fn);
	if (s->nb_snapshots)
		return err_set(ENOTSUP, "%s: downgrading an image with snapshots is not supported",
			       fn);
	if (s->incompat & ~QCOW2_INCOMPAT_DIRTY)
		return err_set(ENOTSUP, "%s: image uses features compat=0.10 lacks", fn);
	ret = expand_zero_clusters(s);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0)
		return ret;
	s->version = 2;
	s->compat = s->autoclear = 0;
	s->incompat = 0;
	s->lazy_refcounts = false;
	s->dirty_marked = false;
	s->header_length = QCOW2_V2_HEADER_LEN;
	return qcow2_header_rewrite(s);
}

static int do_amend(struct qcow2 *s, const struct bdev_amend_opts *o)
{
	int ret = 0;
	int lazy = o->lazy_refcounts;

	if (o->compat == 2 && lazy == 1)
		return err_set(EINVAL, "%s: lazy refcounts require compat=1.1", s->bs->filename);
	if (o->compat == 3 && s->version == 2) {
		s->version = 3;
		s->header_length = QCOW2_V3_HEADER_LEN;
		ret = qcow2_header_rewrite(s);
		if (ret < 0)
			return ret;
	}
	if (lazy >= 0 && s->version < 3 && lazy)
		return err_set(EINVAL, "%s: lazy refcounts require compat=1.1", s->bs->filename);
	if (lazy >= 0 && s->version >= 3 && lazy != (int)s->lazy_refcounts) {
		ret = qcow2_flush_caches(s);
		if (ret == 0)
			ret = qcow2_sync(s);
		if (ret == 0 && !lazy && s->dirty_marked) {
			ret = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false);
			s->dirty_marked = false;
		}
		uint64_t compat = lazy ? (s->compat | QCOW2_COMPAT_LAZY_REFCOUNTS)
				       : (s->compat & ~QCOW2_COMPAT_LAZY_REFCOUNTS);
		if (ret == 0)
			ret = qcow2_header_write_u64(s, QCOW2_HDR_COMPAT, compat);
		if (ret == 0)
			ret = qcow2_sync(s);
		if (ret < 0)
			return ret;
		s->compat = compat;
		s->lazy_refcounts = lazy;
		qcow2_cache_set_dependency(s->l2_cache, lazy ? NULL : s->rb_cache);
	}
	if (o->compat == 2 && s->version == 3)
		ret = downgrade(s);
	return ret;
}

int qcow2_amend(struct bdev *bs, const struct bdev_amend_opts *o)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_amend(s, o);
	s->meta_built = false;
	qcow2_unlock(s);
	return ret;
}
