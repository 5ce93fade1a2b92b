/*
 * Writing the header: fields rewritten in place (table switches, feature bits, the corrupt
 * mark) and the whole header cluster built (create) or rebuilt (rewrite). Every function that
 * takes a struct qcow2: caller holds s->lock.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qcow2_header_write_u64(struct qcow2 *s, unsigned off, uint64_t v)
{
	uint8_t b[8];

	be64_put(b, v);
	return bdev_file_pwrite_meta(s->bs, b, 8, off, "the header");
}

int qcow2_header_set_table(struct qcow2 *s, unsigned field, uint64_t offset, uint32_t size)
{
	uint8_t hdr[12];
	int ret;

	if (field == QCOW2_HDR_RT_OFFSET) {
		be64_put(hdr, offset);
		be32_put(hdr + 8, size);
	} else {
		be32_put(hdr, size);
		be64_put(hdr + 4, offset);
	}
	ret = bdev_file_pwrite_meta(s->bs, hdr, 12, field, "the header");
	return ret < 0 ? ret : qcow2_sync(s);
}

int qcow2_set_incompat(struct qcow2 *s, uint64_t bits, bool set)
{
	uint64_t v = set ? (s->incompat | bits) : (s->incompat & ~bits);
	int ret;

	assert(qcow2_lock_held(s));
	if (v == s->incompat || s->version < 3)
		return 0;
	ret = qcow2_sync(s);
	if (ret == 0)
		ret = qcow2_header_write_u64(s, QCOW2_HDR_INCOMPAT, v);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		s->incompat = v;
	return ret;
}

int qcow2_signal_corruption(struct qcow2 *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Mark the image so nobody writes to it again before a check: only when a write found
	 * the damage (a reader changes nothing), and never while checking. */
	if (qcow2_writing == s && !s->bs->read_only && !(s->bs->flags & BDEV_O_CHECK) &&
	    s->version >= 3) {
		qcow2_header_write_u64(s, QCOW2_HDR_INCOMPAT, s->incompat | QCOW2_INCOMPAT_CORRUPT);
		s->incompat |= QCOW2_INCOMPAT_CORRUPT;
		s->corrupt = true;
		s->bs->read_only = true;
		s->bs->ro_reason = "marked corrupt; run 'ligero img check -r all'";
	}
	return err_set(EIO, "%s: image is corrupt: %s", s->bs->filename, msg);
}

static const struct {
	uint8_t type, bit;
	const char *name;
} features[] = {
    {0, 0, "dirty bit"},	{0, 1, "corrupt bit"},	       {0, 2, "external data file"},
    {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
    {2, 0, "bitmaps"},		{2, 1, "raw external data"},
};
#define NFEATURES (sizeof(features) / sizeof(features[0]))

static size_t ext_add(uint8_t *h, size_t off, uint32_t type, const void *data, uint32_t len)
{
	be32_put(h + off, type);
	be32_put(h + off + 4, len);
	if (len)
		memcpy(h + off + 8, data, len);
	return off + 8 + ((len + 7u) & ~7u);
}

int qcow2_header_build(const char *path, uint8_t *h, uint64_t cs,
		       const struct qcow2_header_fields *f)
{
	size_t hl = f->version >= 3 ? QCOW2_V3_HEADER_LEN : QCOW2_V2_HEADER_LEN;
	size_t blen = f->backing_name ? strlen(f->backing_name) : 0;
	size_t off = hl;

	memset(h, 0, cs);
	be32_put(h, QCOW2_MAGIC);
	be32_put(h + 4, (uint32_t)f->version);
	be32_put(h + 20, f->cluster_bits);
	be64_put(h + 24, f->size);
	be32_put(h + 36, f->l1_size);
	be64_put(h + 40, f->l1_offset);
	be64_put(h + 48, f->rt_offset);
	be32_put(h + 56, f->rt_clusters);
	be32_put(h + 60, f->nb_snapshots);
	be64_put(h + 64, f->snapshots_offset);
	if (f->version >= 3) {
		be64_put(h + 72, f->incompat);
		be64_put(h + 80, f->compat);
		be64_put(h + 88, f->autoclear);
		be32_put(h + 96, f->refcount_order);
		be32_put(h + 100, (uint32_t)hl);
		h[104] = f->compression_type;
	}
	if (blen > QCOW2_MAX_BACKING_NAME)
		return err_set(EINVAL, "%s: backing file name is longer than %d bytes", path,
			       QCOW2_MAX_BACKING_NAME);
	size_t bflen = f->backing_fmt ? strlen(f->backing_fmt) : 0;
	size_t need =
	    hl + (bflen ? 8 + ((bflen + 7) & ~(size_t)7) : 0) + f->ext_keep_len + 8 + blen;
	if (need > cs)
		return err_set(EINVAL,
			       "%s: header, extensions and backing file name do not fit "
			       "in a %llu-byte cluster",
			       path, (unsigned long long)cs);
	if (bflen)
		off = ext_add(h, off, QCOW2_EXT_BACKING_FMT, f->backing_fmt, (uint32_t)bflen);
	/* The feature-name table helps other tools name our bits; like QEMU, it is left out
	 * when the header cluster is too small to hold it. */
	if (f->version >= 3 && need + 8 + NFEATURES * 48 <= cs) {
		uint8_t ft[NFEATURES * 48] = {0};
		for (size_t i = 0; i < NFEATURES; i++) {
			ft[i * 48] = features[i].type;
			ft[i * 48 + 1] = features[i].bit;
			memcpy(ft + i * 48 + 2, features[i].name, strlen(features[i].name));
		}
		off = ext_add(h, off, QCOW2_EXT_FEATURE_TABLE, ft, (uint32_t)sizeof(ft));
	}
	if (f->ext_keep_len) {
		memcpy(h + off, f->ext_keep, f->ext_keep_len);
		off += f->ext_keep_len;
	}
	if (f->version >= 3 || bflen || f->ext_keep_len)
		off = ext_add(h, off, QCOW2_EXT_END, NULL, 0);
	if (blen) {
		memcpy(h + off, f->backing_name, blen);
		be64_put(h + 8, off);
		be32_put(h + 16, (uint32_t)blen);
	}
	return 0;
}

int qcow2_header_rewrite(struct qcow2 *s)
{
	uint8_t *h = malloc(s->cluster_size);
	int ret;

	assert(qcow2_lock_held(s));
	if (!h)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	struct qcow2_header_fields f = {
	    .version = (int)s->version,
	    .cluster_bits = s->cluster_bits,
	    .refcount_order = s->refcount_order,
	    .incompat = s->incompat,
	    .compat = s->compat,
	    .autoclear = s->autoclear,
	    .compression_type = s->compression_type,
	    .size = s->bs->size,
	    .l1_size = s->l1_size,
	    .l1_offset = s->l1_offset,
	    .rt_offset = s->rt_offset,
	    .rt_clusters = s->rt_clusters,
	    .nb_snapshots = s->nb_snapshots,
	    .snapshots_offset = s->snapshots_offset,
	    .backing_name = s->bs->backing_name,
	    .backing_fmt = s->bs->backing_name ? s->bs->backing_fmt : NULL,
	    .ext_keep = s->ext_keep,
	    .ext_keep_len = s->ext_keep_len,
	};
	ret = qcow2_header_build(s->bs->filename, h, s->cluster_size, &f);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret = bdev_file_pwrite_meta(s->bs, h, s->cluster_size, 0, "the header");
	if (ret == 0)
		ret = qcow2_sync(s);
	free(h);
	return ret;
}
