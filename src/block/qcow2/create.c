/*
 * Creating a qcow2 image, laid out as qemu-img lays it out: header cluster, refcount table,
 * refcount block(s), L1 table. Nothing is left behind if creation fails.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int validate_opts(const char *path, const struct bdev_create_opts *o, int *version,
			 unsigned *cbits, unsigned *rorder)
{
	uint32_t cs = o->cluster_size ? o->cluster_size : 65536;
	int rb = o->refcount_bits ? o->refcount_bits : 16;

	*version = o->compat ? o->compat : 3;
	if (*version != 2 && *version != 3)
		return err_set(EINVAL, "%s: compat must be 0.10 or 1.1", path);
	if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)))
		return err_set(EINVAL,
			       "%s: cluster size must be a power of two between 512 and "
			       "2M, not %u",
			       path, cs);
	if (rb < 1 || rb > 64 || (rb & (rb - 1)))
		return err_set(EINVAL,
			       "%s: refcount_bits must be a power of two from 1 to 64, not "
			       "%d",
			       path, rb);
	if (*version == 2) {
		if (rb != 16)
			return err_set(EINVAL, "%s: compat=0.10 requires refcount_bits=16", path);
		if (o->lazy_refcounts)
			return err_set(EINVAL, "%s: lazy refcounts require compat=1.1", path);
		if (o->compression_type)
			return err_set(EINVAL, "%s: compression_type=zstd requires compat=1.1",
				       path);
	}
	if (o->compression_type < 0 || o->compression_type > QCOW2_COMPRESSION_ZSTD)
		return err_set(EINVAL, "%s: unknown compression type", path);
	if (o->size > QCOW2_MAX_VIRTUAL_SIZE)
		return err_set(EFBIG, "%s: size is larger than 32 PiB", path);
	*cbits = (unsigned)__builtin_ctz(cs);
	*rorder = (unsigned)__builtin_ctz((unsigned)rb);
	return 0;
}

static int open_backing(const char *path, const struct bdev_create_opts *o, char **fmt_out,
			uint64_t *size_out)
{
	char *bpath = bdev_resolve_backing(path, o->backing_file);
	struct bdev *b;
	int ret;

	if (!bpath)
		return err_set(ENOMEM, "%s: out of memory", path);
	ret = bdev_open(&b, bpath, o->backing_fmt, BDEV_O_FORCE_SHARE);
	if (ret < 0) {
		ret = err_prefix(ret, "%s: backing file: ", path);
		free(bpath);
		return ret;
	}
	*fmt_out = strdup(b->drv->name);
	*size_out = b->size;
	bdev_close(b);
	free(bpath);
	return *fmt_out ? 0 : err_set(ENOMEM, "%s: out of memory", path);
}

/* Allocate every cluster of the virtual size (preallocation=metadata|falloc|full). Caller
 * holds s->lock. */
static int preallocate(struct qcow2 *s, int mode)
{
	uint64_t cs = s->cluster_size, size = s->bs->size;
	int ret = 0;

	assert(qcow2_lock_held(s));
	for (uint64_t off = 0; off < size && ret == 0;) {
		/* One run per L2 table: contiguous data clusters, then their entries. */
		uint64_t l2end = (qcow2_l1_index(s, off) + 1) * s->l2_size * cs;
		uint64_t stop = l2end < size ? l2end : size;
		uint64_t n = (stop - off + cs - 1) / cs;
		uint64_t *tbl;
		ret = qcow2_prepare_l2(s, qcow2_l1_index(s, off), &tbl);
		if (ret < 0)
			break;
		qcow2_cache_put(s->l2_cache, (void **)&tbl);
		int64_t host = qcow2_alloc_clusters(s, n);
		if (host < 0)
			return (int)host;
		if (mode == BDEV_PREALLOC_FALLOC || mode == BDEV_PREALLOC_FULL) {
			int e = posix_fallocate(s->fd, host, (off_t)(n * cs));
			if (e)
				return err_sys(e, "%s: could not preallocate", s->bs->filename);
		}
		for (uint64_t i = 0; i < n && ret == 0; i++)
			ret = qcow2_set_entry(s, off + i * cs,
					      ((uint64_t)host + i * cs) | QCOW2_OFLAG_COPIED);
		off = stop;
	}
	if (ret == 0 && s->file_end > 0) {
		/* The file covers every allocated cluster even where nothing was written. */
		if (ftruncate(s->fd, (off_t)s->file_end) < 0 && errno != EINVAL)
			ret = err_sys(errno, "%s: could not extend the file", s->bs->filename);
	}
	return ret;
}

int qcow2_create(const char *path, const struct bdev_create_opts *o)
{
	int version, fd = -1, ret;
	unsigned cbits = 16, rorder = 4;
	char *bfmt = NULL;
	uint8_t *buf = NULL;
	uint64_t size = o->size;

	ret = validate_opts(path, o, &version, &cbits, &rorder);
	if (ret < 0)
		return ret;
	if (o->backing_file) {
		uint64_t bsize = 0;
		ret = open_backing(path, o, &bfmt, &bsize);
		if (ret < 0)
			return ret;
		if (!size)
			size = bsize;
	}
	uint64_t cs = 1ULL << cbits;
	uint64_t per_l1 = cs * (cs / 8);
	uint64_t l1_size = (size + per_l1 - 1) / per_l1;
	if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		ret = err_set(EFBIG,
			      "%s: size needs an L1 table larger than %u MiB; use a larger "
			      "cluster_size",
			      path, QCOW2_MAX_L1_BYTES >> 20);
		goto out;
	}
	/* Layout: header, refcount table (T), refcount blocks (B), L1 (L), to a fixed point. */
	uint64_t per_block = (cs * 8) >> rorder, L = (l1_size * 8 + cs - 1) / cs, T = 1, B = 1;
	for (;;) {
		uint64_t total = 1 + T + B + L;
		uint64_t nb = (total + per_block - 1) / per_block;
		uint64_t nt = (nb * 8 + cs - 1) / cs;
		if (nb == B && nt == T)
			break;
		B = nb;
		T = nt;
	}
	uint64_t total = 1 + T + B + L;
	buf = calloc(1 + T + B, cs);
	if (!buf) {
		ret = err_set(ENOMEM, "%s: out of memory", path);
		goto out;
	}
	uint64_t rt_off = cs, rb_off = (1 + T) * cs, l1_off = (1 + T + B) * cs;
	struct qcow2_header_fields f = {
	    .version = version,
	    .cluster_bits = cbits,
	    .refcount_order = rorder,
	    .incompat = o->compression_type ? QCOW2_INCOMPAT_COMPRESSION : 0,
	    .compat = o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0,
	    .compression_type = (uint8_t)o->compression_type,
	    .size = size,
	    .l1_size = (uint32_t)l1_size,
	    .l1_offset = l1_off,
	    .rt_offset = rt_off,
	    .rt_clusters = (uint32_t)T,
	    .backing_name = o->backing_file,
	    .backing_fmt = bfmt,
	};
	ret = qcow2_header_build(path, buf, cs, &f);
	if (ret < 0)
		goto out;
	for (uint64_t i = 0; i < B; i++)
		be64_put(buf + rt_off + i * 8, rb_off + i * cs);
	for (uint64_t c = 0; c < total; c++) {
		uint8_t *blk = buf + rb_off + (c / per_block) * cs;
		uint64_t i = c % per_block;
		switch (rorder) {
		case 0:
			blk[i / 8] |= (uint8_t)(1u << (i % 8));
			break;
		case 1:
			blk[i / 4] |= (uint8_t)(1u << (2 * (i % 4)));
			break;
		case 2:
			blk[i / 2] |= (uint8_t)(1u << (4 * (i % 2)));
			break;
		case 3:
			blk[i] = 1;
			break;
		case 4:
			be16_put(blk + 2 * i, 1);
			break;
		case 5:
			be32_put(blk + 4 * i, 1);
			break;
		default:
			be64_put(blk + 8 * i, 1);
			break;
		}
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (o->force ? O_TRUNC : O_EXCL), 0644);
	if (fd < 0) {
		ret = errno == EEXIST
			  ? err_set(EEXIST, "%s: file exists (use --force to overwrite)", path)
			  : err_sys(errno, "%s: could not create", path);
		goto out;
	}
	ret = bdev_fd_pwrite(fd, path, buf, (1 + T + B) * cs, 0, "the new image's metadata");
	if (ret == 0 && ftruncate(fd, (off_t)(l1_off + (l1_size ? l1_size * 8 : 0))) < 0)
		ret = err_sys(errno, "%s: could not set the file size", path);
	if (ret == 0 && fdatasync(fd) < 0)
		ret = err_sys(errno, "%s: could not flush", path);
	close(fd);
	fd = -1;
	if (ret == 0 && o->prealloc != BDEV_PREALLOC_OFF) {
		struct bdev *bs;
		ret = bdev_open(&bs, path, "qcow2", BDEV_O_RDWR | BDEV_O_NO_BACKING);
		if (ret == 0) {
			struct qcow2 *s = bs->opaque;
			qcow2_lock(s);
			ret = preallocate(s, o->prealloc);
			qcow2_unlock(s);
			int r2 = bdev_flush(bs);
			bdev_close(bs);
			if (ret == 0)
				ret = r2;
		}
	}
	if (ret < 0)
		unlink(path);
	else if (o->backing_file) {
		char *bpath = bdev_resolve_backing(path, o->backing_file);
		if (bpath)
			bdev_base_register(bpath, path);
		free(bpath);
	}
out:
	free(bfmt);
	free(buf);
	return ret;
}
