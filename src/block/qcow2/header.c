/* qcow2 open (validating every header field before it sizes an allocation), close, info, and
 * the driver's table of calls. */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <zstd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const default_feature_names[3][8] = {
    {"dirty bit", "corrupt bit", "external data file", "compression type", "extended L2 entries"},
    {"lazy refcounts"},
    {"bitmaps", "raw external data"},
};

static const char *feature_name(const struct qcow2 *s, int type, int bit)
{
	if (s->feature_names[type][bit][0])
		return s->feature_names[type][bit];
	if (bit < 8 && default_feature_names[type][bit])
		return default_feature_names[type][bit];
	return NULL;
}

static int read_feature_table(struct qcow2 *s, const uint8_t *p, uint32_t len)
{
	s->has_features_table = true;
	for (uint32_t i = 0; i + 48 <= len; i += 48) {
		uint8_t type = p[i], bit = p[i + 1];
		if (type > 2 || bit > 63)
			continue;
		memcpy(s->feature_names[type][bit], p + i + 2, 46);
		s->feature_names[type][bit][46] = '\0';
	}
	return 0;
}

/* Header extensions: [type u32][len u32][data, padded to 8] until type 0. */
static int read_extensions(struct qcow2 *s, const uint8_t *hdr, uint64_t start, uint64_t end)
{
	uint64_t off = start;
	const char *fn = s->bs->filename;

	while (off + 8 <= end) {
		uint32_t type = be32_get(hdr + off), len = be32_get(hdr + off + 4);
		off += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - off)
			return err_set(EINVAL,
				       "%s: header extension 0x%08x (length %u) runs past the "
				       "end of the header cluster",
				       fn, type, len);
		const uint8_t *d = hdr + off;
		switch (type) {
		case QCOW2_EXT_BACKING_FMT:
			if (len > 31)
				return err_set(
				    EINVAL, "%s: backing format name too long (%u bytes)", fn, len);
			free(s->bs->backing_fmt);
			s->bs->backing_fmt = strndup((const char *)d, len);
			break;
		case QCOW2_EXT_FEATURE_TABLE:
			read_feature_table(s, d, len);
			break;
		case QCOW2_EXT_CRYPTO:
			return err_set(ENOTSUP, "%s: encrypted images are not supported", fn);
		case QCOW2_EXT_DATA_FILE:
			return err_set(ENOTSUP,
				       "%s: images with an external data file are not "
				       "supported",
				       fn);
		default: {
			/* Kept verbatim so header rewrites do not lose them. */
			size_t add = 8 + ((len + 7ULL) & ~7ULL);
			uint8_t *k = realloc(s->ext_keep, s->ext_keep_len + add);
			if (!k)
				return err_set(ENOMEM, "%s: out of memory", fn);
			memset(k + s->ext_keep_len, 0, add);
			memcpy(k + s->ext_keep_len, hdr + off - 8, 8 + (size_t)len);
			s->ext_keep = k;
			s->ext_keep_len += add;
			break;
		}
		}
		off += (len + 7ULL) & ~7ULL;
	}
	return 0;
}

static int check_features(struct qcow2 *s)
{
	uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_SUPPORTED;
	const char *fn = s->bs->filename;

	for (int bit = 0; bit < 64; bit++) {
		if (!(unknown & (1ULL << bit)))
			continue;
		const char *name = feature_name(s, 0, bit);
		if (name)
			return err_set(ENOTSUP, "%s: unsupported incompatible feature bit %d (%s)",
				       fn, bit, name);
		return err_set(ENOTSUP, "%s: unsupported incompatible feature bit %d", fn, bit);
	}
	if ((s->incompat & QCOW2_INCOMPAT_COMPRESSION) &&
	    s->compression_type == QCOW2_COMPRESSION_ZLIB)
		return err_set(EINVAL, "%s: compression type bit set with zlib compression", fn);
	if (!(s->incompat & QCOW2_INCOMPAT_COMPRESSION) &&
	    s->compression_type != QCOW2_COMPRESSION_ZLIB)
		return err_set(EINVAL, "%s: compression type %u without its feature bit", fn,
			       s->compression_type);
	if (s->compression_type > QCOW2_COMPRESSION_ZSTD)
		return err_set(ENOTSUP, "%s: unknown compression type %u", fn, s->compression_type);
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Field checks that must pass before anything is allocated from header values. */
static int validate_header(struct qcow2 *s, const uint8_t *h, uint64_t file_size)
{
	const char *fn = s->bs->filename;
	uint64_t cs;

	if (s->version != 2 && s->version != 3)
		return err_set(ENOTSUP, "%s: unsupported qcow2 version %u", fn, s->version);
	if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return err_set(EINVAL, "%s: cluster size 2^%u is out of range (512 B to 2 MiB)", fn,
			       s->cluster_bits);
	cs = 1ULL << s->cluster_bits;
	if (s->version == 3) {
		if (s->header_length < QCOW2_V3_MIN_HEADER_LEN || s->header_length % 8)
			return err_set(EINVAL, "%s: bad header length %u", fn, s->header_length);
		if (s->header_length > cs)
			return err_set(EINVAL, "%s: header length %u exceeds the cluster size", fn,
				       s->header_length);
		if (s->refcount_order > 6)
			return err_set(EINVAL, "%s: refcount width 2^%u bits is out of range", fn,
				       s->refcount_order);
	}
	if (s->crypt_method)
		return err_set(ENOTSUP, "%s: encrypted images are not supported", fn);
	if (s->bs->size > QCOW2_MAX_VIRTUAL_SIZE)
		return err_set(EFBIG, "%s: virtual size %llu is larger than the 32 PiB we support",
			       fn, (unsigned long long)s->bs->size);
	if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return err_set(EFBIG, "%s: L1 table of %u entries is larger than %u MiB", fn,
			       s->l1_size, QCOW2_MAX_L1_BYTES >> 20);
	uint64_t per_l1 = cs * (cs / 8);
	uint64_t need = (s->bs->size + per_l1 - 1) / per_l1;
	if (need > s->l1_size)
		return err_set(EINVAL, "%s: L1 table of %u entries is too small for %llu bytes", fn,
			       s->l1_size, (unsigned long long)s->bs->size);
	if (s->l1_size && (s->l1_offset & (cs - 1)))
		return err_set(EINVAL, "%s: L1 table offset %llu is not cluster aligned", fn,
			       (unsigned long long)s->l1_offset);
	bool checking = s->bs->flags & BDEV_O_CHECK; /* check reports these as corruption */
	if (s->rt_offset & (cs - 1) || (!s->rt_offset && !checking))
		return err_set(EINVAL, "%s: refcount table offset %llu is invalid", fn,
			       (unsigned long long)s->rt_offset);
	if ((uint64_t)s->rt_clusters * cs > QCOW2_MAX_RT_BYTES || !s->rt_clusters)
		return err_set(EFBIG,
			       "%s: refcount table of %u clusters is invalid (at most %u MiB)", fn,
			       s->rt_clusters, QCOW2_MAX_RT_BYTES >> 20);
	if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return err_set(EFBIG, "%s: %u snapshots is more than %u", fn, s->nb_snapshots,
			       QCOW2_MAX_SNAPSHOTS);
	if (s->nb_snapshots && (s->snapshots_offset & (cs - 1)))
		return err_set(EINVAL, "%s: snapshot table offset %llu is not cluster aligned", fn,
			       (unsigned long long)s->snapshots_offset);
	/* Offsets past what an L2 entry can address are hostile (and would overflow below). */
	const uint64_t max_off = QCOW2_L2E_OFFSET_MASK + 1;
	if (s->l1_offset >= max_off || s->rt_offset >= max_off || s->snapshots_offset >= max_off)
		return err_set(EINVAL, "%s: a table offset in the header is beyond 64 PiB", fn);
	uint64_t l1_bytes = (uint64_t)s->l1_size * 8, rt_bytes = (uint64_t)s->rt_clusters * cs;
	if (!checking && ranges_overlap(s->rt_offset, rt_bytes, 0, cs))
		return err_set(EINVAL, "%s: refcount table overlaps the header", fn);
	if (!checking && l1_bytes && ranges_overlap(s->l1_offset, l1_bytes, 0, cs))
		return err_set(EINVAL, "%s: L1 table overlaps the header", fn);
	if (!checking && l1_bytes && ranges_overlap(s->l1_offset, l1_bytes, s->rt_offset, rt_bytes))
		return err_set(EINVAL, "%s: L1 table overlaps the refcount table", fn);
	if (!(s->bs->flags & BDEV_O_CHECK)) {
		if (s->rt_offset + rt_bytes > file_size + cs)
			return err_set(EINVAL,
				       "%s: refcount table at offset %llu is past the end of "
				       "the file",
				       fn, (unsigned long long)s->rt_offset);
		if (l1_bytes && s->l1_offset + l1_bytes > file_size)
			return err_set(EINVAL,
				       "%s: L1 table at offset %llu is past the end of the "
				       "file",
				       fn, (unsigned long long)s->l1_offset);
	}
	(void)h;
	return 0;
}

static int read_backing_name(struct qcow2 *s, const uint8_t *h, uint64_t hdr_len)
{
	uint64_t off = be64_get(h + 8);
	uint32_t len = be32_get(h + 16);
	const char *fn = s->bs->filename;

	if (!off)
		return 0;
	if (len > QCOW2_MAX_BACKING_NAME)
		return err_set(EINVAL, "%s: backing file name of %u bytes is too long (at most %u)",
			       fn, len, QCOW2_MAX_BACKING_NAME);
	if (off + len > hdr_len)
		return err_set(EINVAL, "%s: backing file name lies outside the header cluster", fn);
	if (len == 0)
		return 0;
	s->bs->backing_name = strndup((const char *)h + off, len);
	if (!s->bs->backing_name || strlen(s->bs->backing_name) != len)
		return err_set(EINVAL, "%s: backing file name contains a NUL byte", fn);
	s->bs->backing_path = bdev_resolve_backing(fn, s->bs->backing_name);
	if (!s->bs->backing_path)
		return err_set(ENOMEM, "%s: out of memory", fn);
	return 0;
}

static void snapshots_free(struct qcow2 *s)
{
	for (uint32_t i = 0; i < s->nb_snapshots && s->snapshots; i++) {
		free(s->snapshots[i].id);
		free(s->snapshots[i].name);
	}
	free(s->snapshots);
	s->snapshots = NULL;
}

/* Snapshot table: entries of 40 bytes + extra data + id + name, each padded to 8. */
static int read_snapshots(struct qcow2 *s, uint64_t file_size)
{
	const char *fn = s->bs->filename;
	uint64_t off = s->snapshots_offset;
	uint8_t e[40], extra[1024];

	if (!s->nb_snapshots)
		return 0;
	s->snapshots = calloc(s->nb_snapshots, sizeof(*s->snapshots));
	if (!s->snapshots)
		return err_set(ENOMEM, "%s: out of memory for the snapshot table", fn);
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		struct qcow2_snapshot *sn = &s->snapshots[i];
		if (off + 40 > file_size || pread(s->fd, e, 40, (off_t)off) != 40)
			return err_set(EINVAL,
				       "%s: snapshot table entry %u is past the end of the "
				       "file",
				       fn, i);
		sn->l1_offset = be64_get(e);
		sn->l1_size = be32_get(e + 8);
		uint16_t id_len = be16_get(e + 12), name_len = be16_get(e + 14);
		sn->date_sec = be32_get(e + 16);
		sn->date_nsec = be32_get(e + 20);
		sn->vm_clock_nsec = be64_get(e + 24);
		sn->vm_state_size = be32_get(e + 32);
		uint32_t extra_len = be32_get(e + 36);
		sn->icount = UINT64_MAX;
		if (extra_len > sizeof(extra))
			return err_set(EINVAL,
				       "%s: snapshot %u has %u bytes of extra data (at most "
				       "1024)",
				       fn, i, extra_len);
		if (pread(s->fd, extra, extra_len, (off_t)(off + 40)) != (ssize_t)extra_len)
			return err_set(EINVAL, "%s: snapshot %u is truncated", fn, i);
		if (extra_len >= 8)
			sn->vm_state_size = be64_get(extra);
		if (extra_len >= 16)
			sn->disk_size = be64_get(extra + 8);
		else /* an incomplete entry (check reports it): QEMU assumes today's size */
			sn->disk_size = s->bs->size;
		if (extra_len >= 24)
			sn->icount = be64_get(extra + 16);
		uint64_t p = off + 40 + extra_len;
		sn->id = calloc(1, id_len + 1u);
		sn->name = calloc(1, name_len + 1u);
		if (!sn->id || !sn->name)
			return err_set(ENOMEM, "%s: out of memory", fn);
		if (pread(s->fd, sn->id, id_len, (off_t)p) != id_len ||
		    pread(s->fd, sn->name, name_len, (off_t)(p + id_len)) != name_len)
			return err_set(EINVAL, "%s: snapshot %u is truncated", fn, i);
		if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES)
			return err_set(EFBIG, "%s: snapshot %u has an L1 table of %u entries", fn,
				       i, sn->l1_size);
		if (sn->l1_offset & (s->cluster_size - 1))
			return err_set(EINVAL, "%s: snapshot %u L1 table offset is not aligned", fn,
				       i);
		off = (p + id_len + name_len + 7) & ~7ULL;
	}
	s->snapshots_size = off - s->snapshots_offset;
	return 0;
}

static int l1_load(struct qcow2 *s)
{
	size_t bytes = (size_t)s->l1_size * 8;

	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!s->l1)
		return err_set(ENOMEM, "%s: out of memory for the L1 table", s->bs->filename);
	if (!bytes)
		return 0;
	ssize_t n = pread(s->fd, s->l1, bytes, (off_t)s->l1_offset);
	if (n < 0)
		return err_sys(errno, "%s: could not read the L1 table", s->bs->filename);
	if ((size_t)n < bytes && !(s->bs->flags & BDEV_O_CHECK))
		return err_set(EINVAL, "%s: L1 table is truncated", s->bs->filename);
	for (uint32_t i = 0; i < s->l1_size; i++)
		s->l1[i] = __builtin_bswap64(s->l1[i]);
	return 0;
}

static int parse_header(struct qcow2 *s, uint8_t *h, uint64_t hlen, uint64_t file_size)
{
	if (hlen < QCOW2_V2_HEADER_LEN || be32_get(h) != QCOW2_MAGIC)
		return err_set(EINVAL, "%s: not a qcow2 image (header truncated or bad magic)",
			       s->bs->filename);
	s->version = be32_get(h + 4);
	s->cluster_bits = be32_get(h + 20);
	s->bs->size = be64_get(h + 24);
	s->crypt_method = be32_get(h + 32);
	s->l1_size = be32_get(h + 36);
	s->l1_offset = be64_get(h + 40);
	s->rt_offset = be64_get(h + 48);
	s->rt_clusters = be32_get(h + 56);
	s->nb_snapshots = be32_get(h + 60);
	s->snapshots_offset = be64_get(h + 64);
	s->refcount_order = 4;
	s->header_length = QCOW2_V2_HEADER_LEN;
	if (s->version >= 3) {
		if (hlen < QCOW2_V3_MIN_HEADER_LEN)
			return err_set(EINVAL, "%s: qcow2 v3 header truncated", s->bs->filename);
		s->incompat = be64_get(h + 72);
		s->compat = be64_get(h + 80);
		s->autoclear = be64_get(h + 88);
		s->refcount_order = be32_get(h + 96);
		s->header_length = be32_get(h + 100);
		if (s->header_length > 104 && hlen > 104)
			s->compression_type = h[104];
	}
	return validate_header(s, h, file_size);
}

static int qcow2_open_tables(struct qcow2 *s, uint8_t *h, uint64_t hlen, uint64_t file_size)
{
	int ret;

	s->cluster_size = 1ULL << s->cluster_bits;
	s->l2_bits = s->cluster_bits - 3;
	s->l2_size = 1ULL << s->l2_bits;
	s->refcount_bits = 1U << s->refcount_order;
	s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
	s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX : (1ULL << s->refcount_bits) - 1;
	s->bs->align = 512;
	s->lazy_refcounts = s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS;

	uint64_t hdr_end = hlen < s->cluster_size ? hlen : s->cluster_size, ext_end = hdr_end;
	/* Like QEMU, extensions end where the backing file name begins. */
	uint64_t bname = be64_get(h + 8);
	if (bname && bname > s->header_length && bname < ext_end)
		ext_end = bname;
	if (s->version >= 3 || ext_end > QCOW2_V2_HEADER_LEN) {
		ret = read_extensions(s, h, s->header_length, ext_end);
		if (ret < 0)
			return ret;
	}
	ret = check_features(s);
	if (ret < 0)
		return ret;
	ret = read_backing_name(s, h, hdr_end);
	if (ret < 0)
		return ret;
	ret = l1_load(s);
	if (ret < 0)
		return ret;
	ret = qcow2_refcount_init(s);
	if (ret < 0)
		return ret;
	ret = read_snapshots(s, file_size);
	if (ret < 0)
		return ret;
	/* L2 cache: up to 32 MiB of tables, at least 16, at most 1024 tables. */
	int n = (int)((32ULL << 20) >> s->cluster_bits);
	n = n < 16 ? 16 : (n > 1024 ? 1024 : n);
	s->l2_cache = qcow2_cache_new(s, n, "L2 table");
	s->zcache = malloc(s->cluster_size);
	s->zbuf = malloc(2 * s->cluster_size);
	if (!s->l2_cache || !s->zcache || !s->zbuf)
		return err_set(ENOMEM, "%s: out of memory for metadata caches", s->bs->filename);
	/* Refcounts must reach the disk before the L2 entries that rely on them, unless lazy
	 * refcounts make the dirty bit (and a repair at open) stand in for that order. */
	if (!s->lazy_refcounts)
		qcow2_cache_set_dependency(s->l2_cache, s->rb_cache);
	s->file_end = (file_size + s->cluster_size - 1) & ~(s->cluster_size - 1);
	s->free_cluster_index = 1;
	return 0;
}

static void qcow2_free_state(struct qcow2 *s)
{
	free(s->ext_keep);
	qcow2_meta_free(s);
	qcow2_cache_free(s->l2_cache);
	qcow2_refcount_close(s);
	snapshots_free(s);
	free(s->l1);
	free(s->zcache);
	free(s->zbuf);
	free(s->cbuf);
	if (s->zstd_dctx)
		ZSTD_freeDCtx(s->zstd_dctx);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->io_cond);
	free(s);
}

/* What a writer changes on open: autoclear bits cleared, a dirty image repaired. Caller holds
 * s->lock. */
static int open_fixups(struct qcow2 *s)
{
	struct bdev *bs = s->bs;
	int ret;

	if (s->autoclear && !bs->read_only && s->version >= 3 && !(bs->flags & BDEV_O_CHECK)) {
		/* We keep no bitmaps: writers that do not maintain a feature clear its bit. */
		ret = qcow2_header_write_u64(s, QCOW2_HDR_AUTOCLEAR, 0);
		if (ret < 0)
			return ret;
		s->autoclear = 0;
	}
	if ((s->incompat & QCOW2_INCOMPAT_DIRTY) && !bs->read_only &&
	    !(bs->flags & (BDEV_O_CHECK | BDEV_O_NO_REPAIR))) {
		/* Refcounts may lag behind after a crash with lazy refcounts: rebuild them. */
		struct bdev_check_result res;
		memset(&res, 0, sizeof(res));
		ret = qcow2_check(bs, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res);
		bool bad = res.corruptions || res.check_errors; /* what the repair left */
		bdev_check_result_free(&res);
		if (ret < 0)
			return ret;
		if (bad)
			return err_set(EIO,
				       "%s: image was not closed cleanly and could not be "
				       "repaired; run 'ligero img check -r all'",
				       bs->filename);
		ret = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false);
		if (ret < 0)
			return ret;
		s->meta_built = false;
	}
	return 0;
}

int qcow2_open(struct bdev *bs)
{
	struct qcow2 *s = calloc(1, sizeof(*s));
	struct stat st;
	uint8_t *h = NULL;
	int ret;

	if (!s)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	s->bs = bs;
	s->fd = bs->fd;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->io_cond, NULL);
	bs->opaque = s;
	if (fstat(bs->fd, &st) < 0) {
		ret = err_sys(errno, "%s: could not stat", bs->filename);
		goto fail;
	}
	/* The header and its extensions live in the first cluster (at most 2 MiB). */
	size_t want = (size_t)1 << QCOW2_MAX_CLUSTER_BITS;
	h = calloc(1, want);
	if (!h) {
		ret = err_set(ENOMEM, "%s: out of memory", bs->filename);
		goto fail;
	}
	ssize_t n = pread(bs->fd, h, want, 0);
	if (n < 0) {
		ret = err_sys(errno, "%s: could not read the header", bs->filename);
		goto fail;
	}
	ret = parse_header(s, h, (uint64_t)n, (uint64_t)st.st_size);
	if (ret < 0)
		goto fail;
	uint64_t hlen =
	    (uint64_t)n < (1ULL << s->cluster_bits) ? (uint64_t)n : (1ULL << s->cluster_bits);
	ret = qcow2_open_tables(s, h, hlen, (uint64_t)st.st_size);
	if (ret < 0)
		goto fail;
	free(h);
	h = NULL;
	if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
		s->corrupt = true;
		if (!bs->read_only && !(bs->flags & BDEV_O_CHECK)) {
			bs->read_only = true;
			bs->ro_reason = "marked corrupt; run 'ligero img check -r all'";
		}
	}
	qcow2_lock(s);
	ret = open_fixups(s);
	qcow2_unlock(s);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	free(h);
	qcow2_free_state(s);
	bs->opaque = NULL;
	return ret;
}

void qcow2_close(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;

	if (!s)
		return;
	if (!bs->read_only) {
		qcow2_lock(s);
		int ret = qcow2_flush_caches(s);
		if (ret == 0)
			ret = qcow2_sync(s);
		/* A clean close of a lazy-refcounts image: refcounts are on disk again. */
		if (ret == 0 && s->dirty_marked)
			qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false);
		qcow2_unlock(s);
	}
	qcow2_free_state(s);
	bs->opaque = NULL;
}

static int qcow2_probe(const uint8_t *buf, size_t len)
{
	if (len >= 8 && be32_get(buf) == QCOW2_MAGIC && be32_get(buf + 4) >= 2)
		return 100;
	return 0;
}

static struct json_object *qcow2_info_specific(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;
	struct json_object *o = json_object_new_object(), *d = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("qcow2"));
	json_object_object_add(d, "compat",
			       json_object_new_string(s->version >= 3 ? "1.1" : "0.10"));
	json_object_object_add(d, "compression-type",
			       json_object_new_string(s->compression_type == QCOW2_COMPRESSION_ZSTD
							  ? "zstd"
							  : "zlib"));
	if (s->version >= 3)
		json_object_object_add(d, "lazy-refcounts",
				       json_object_new_boolean(s->lazy_refcounts));
	json_object_object_add(d, "refcount-bits", json_object_new_int(s->refcount_bits));
	if (s->version >= 3) {
		json_object_object_add(d, "corrupt", json_object_new_boolean(s->corrupt));
		json_object_object_add(d, "extended-l2", json_object_new_boolean(false));
	}
	json_object_object_add(o, "data", d);
	json_object_object_add(o, "_dirty",
			       json_object_new_boolean(!!(s->incompat & QCOW2_INCOMPAT_DIRTY)));
	return o;
}

static int locked(struct bdev *bs, int (*fn)(struct bdev *))
{
	struct qcow2 *s = bs->opaque;
	qcow2_lock(s);
	int ret = fn(bs);
	qcow2_unlock(s);
	return ret;
}

static int qcow2_check_op(struct bdev *bs, int fix, struct bdev_check_result *res)
{
	struct qcow2 *s = bs->opaque;
	qcow2_lock_excl(s);
	int ret = qcow2_check(bs, fix, res);
	s->meta_built = false; /* a repair may have moved tables: map them again */
	qcow2_unlock(s);
	return ret;
}

static int qcow2_flush_op(struct bdev *bs)
{
	return locked(bs, qcow2_flush);
}

static uint32_t qcow2_cluster_size_op(struct bdev *bs)
{
	return (uint32_t)((struct qcow2 *)bs->opaque)->cluster_size;
}

static int64_t qcow2_compress_op(struct bdev *bs, void *dst, size_t dst_len, const void *src,
				 size_t len)
{
	return qcow2_compress(((struct qcow2 *)bs->opaque)->compression_type, dst, dst_len, src,
			      len);
}

static int qcow2_write_compressed_op(struct bdev *bs, uint64_t off, const void *cdata, size_t clen)
{
	return qcow2_write_compressed(bs->opaque, off, cdata, clen);
}

const struct bdev_driver bdev_qcow2_driver = {
    .name = "qcow2",
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .read = qcow2_read,
    .write = qcow2_write,
    .readv = qcow2_readv,
    .writev = qcow2_writev,
    .flush = qcow2_flush_op,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .block_status = qcow2_block_status,
    .truncate = qcow2_truncate,
    .create = qcow2_create,
    .check = qcow2_check_op,
    .info_specific = qcow2_info_specific,
    .compress = qcow2_compress_op,
    .write_compressed = qcow2_write_compressed_op,
    .cluster_size = qcow2_cluster_size_op,
    .set_backing = qcow2_set_backing,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_delete = qcow2_snapshot_delete,
    .amend = qcow2_amend,
    .unmap = qcow2_unmap,
};
