/*
 * NBD exports as images, through libnbd: every verb reads, writes, maps and copies them as it
 * does local raw files. An export is raw bytes, so the driver calls itself "raw" (qemu-img
 * info says "file format: raw" too). Block status comes from the base:allocation context; each
 * reply's extents are kept until the next write, so a map costs one round trip per batch of
 * extents rather than one per extent. Requests larger than the server's maximum are split,
 * unaligned ones (servers that advertise a minimum block size) go through a bounce buffer.
 *
 * libnbd serialises calls on one handle, so threads that share a bdev take turns on the wire.
 */
#include "block/nbd.h"
#include "util/error.h"

#include <errno.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUEST   (32u << 20) /* NBD's portable payload limit */
#define MAX_EFFECT    (1u << 30)  /* zero/trim per request: well inside the 32-bit length */
#define CACHE_EXTENTS 4096

struct nbdc {
	struct nbd_handle *h;
	uint32_t min, max;
	bool can_flush, can_trim, can_zero, can_fast_zero, meta;
	bool written;
	pthread_mutex_t lock; /* the extent cache */
	uint64_t cache_off;   /* the cached extents describe the export from here on */
	uint32_t cache[2 * CACHE_EXTENTS];
	size_t ncache;
};

static int nbdc_fail(struct bdev *bs, const char *what, uint64_t off)
{
	int e = nbd_get_errno();
	const char *msg = nbd_get_error();

	return err_set(e > 0 ? e : EIO, "%s: %s at offset %llu failed: %s", bs->filename, what,
		       (unsigned long long)off, msg ? msg : "unknown NBD error");
}

static void cache_drop(struct nbdc *s)
{
	pthread_mutex_lock(&s->lock);
	s->ncache = 0;
	pthread_mutex_unlock(&s->lock);
}

/* Aligned transfers in pieces the server takes. */
static int xfer(struct bdev *bs, uint64_t off, void *rbuf, const void *wbuf, size_t len)
{
	struct nbdc *s = bs->opaque;

	while (len) {
		size_t n = len < s->max ? len : s->max;
		int r = rbuf ? nbd_pread(s->h, rbuf, n, off, 0) : nbd_pwrite(s->h, wbuf, n, off, 0);
		if (r < 0)
			return nbdc_fail(bs, rbuf ? "read" : "write", off);
		off += n;
		len -= n;
		if (rbuf)
			rbuf = (uint8_t *)rbuf + n;
		else
			wbuf = (const uint8_t *)wbuf + n;
	}
	return 0;
}

/* A request not aligned to the server's minimum block: the covering blocks are read, and for a
 * write patched and written back. */
static int bounce(struct bdev *bs, uint64_t off, void *rbuf, const void *wbuf, size_t len)
{
	struct nbdc *s = bs->opaque;
	uint64_t start = off / s->min * s->min, end = (off + len + s->min - 1) / s->min * s->min;

	if (end > bs->size)
		end = bs->size;
	uint8_t *tmp = malloc(end - start);
	if (!tmp)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	int ret = xfer(bs, start, tmp, NULL, end - start);
	if (ret == 0 && rbuf)
		memcpy(rbuf, tmp + (off - start), len);
	if (ret == 0 && wbuf) {
		memcpy(tmp + (off - start), wbuf, len);
		ret = xfer(bs, start, NULL, tmp, end - start);
	}
	free(tmp);
	return ret;
}

static bool aligned(const struct nbdc *s, uint64_t off, uint64_t len)
{
	return s->min == 1 || !((off | len) % s->min);
}

static int nbdc_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	if (!aligned(bs->opaque, off, len))
		return bounce(bs, off, buf, NULL, len);
	return xfer(bs, off, buf, NULL, len);
}

static int nbdc_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	struct nbdc *s = bs->opaque;

	cache_drop(s);
	s->written = true;
	if (!aligned(s, off, len))
		return bounce(bs, off, NULL, buf, len);
	return xfer(bs, off, NULL, buf, len);
}

static int nbdc_flush(struct bdev *bs)
{
	struct nbdc *s = bs->opaque;

	if ((bs->flags & BDEV_O_UNSAFE) || !s->can_flush)
		return 0;
	if (nbd_flush(s->h, 0) < 0)
		return nbdc_fail(bs, "flush", 0);
	return 0;
}

/* Trim or zero [off, off+len): whole minimum blocks in requests of at most MAX_EFFECT. */
static int effect(struct bdev *bs, uint64_t off, uint64_t len, bool zero, uint32_t flags)
{
	struct nbdc *s = bs->opaque;

	cache_drop(s);
	s->written = true;
	while (len) {
		uint64_t n = len < MAX_EFFECT ? len : MAX_EFFECT;
		int r = zero ? nbd_zero(s->h, n, off, flags) : nbd_trim(s->h, n, off, 0);
		if (r < 0)
			return nbdc_fail(bs, zero ? "write zeroes" : "trim", off);
		off += n;
		len -= n;
	}
	return 0;
}

static int nbdc_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct nbdc *s = bs->opaque;
	uint64_t start = (off + s->min - 1) / s->min * s->min, end = (off + len) / s->min * s->min;

	if (!s->can_trim || end <= start) /* discard is a hint */
		return 0;
	return effect(bs, start, end - start, false, 0);
}

static int write_zero_data(struct bdev *bs, uint64_t off, uint64_t len)
{
	static const uint8_t zero[65536];

	while (len) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		int ret = nbdc_write(bs, off, zero, n);
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

static int nbdc_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	struct nbdc *s = bs->opaque;
	uint32_t f = (flags & BDEV_ZERO_MAY_UNMAP) ? 0 : LIBNBD_CMD_FLAG_NO_HOLE;

	if (flags & BDEV_ZERO_NO_FALLBACK) {
		if (!s->can_zero || !s->can_fast_zero || !aligned(s, off, len))
			return err_set(ENOTSUP, "%s: the NBD server cannot zero quickly",
				       bs->filename);
		f |= LIBNBD_CMD_FLAG_FAST_ZERO;
	}
	if (!s->can_zero)
		return write_zero_data(bs, off, len);
	uint64_t start = (off + s->min - 1) / s->min * s->min, end = (off + len) / s->min * s->min;
	if (end <= start)
		return write_zero_data(bs, off, len);
	int ret = write_zero_data(bs, off, start - off);
	if (ret == 0)
		ret = effect(bs, start, end - start, true, f);
	if (ret == 0)
		ret = write_zero_data(bs, end, off + len - end);
	return ret;
}

struct status_ctx {
	struct nbdc *s;
	bool got;
};

static int status_cb(void *opaque, const char *context, uint64_t offset, uint32_t *entries,
		     size_t n, int *error)
{
	struct status_ctx *c = opaque;

	(void)error;
	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) || c->got)
		return 0;
	n = n / 2 < CACHE_EXTENTS ? n / 2 : CACHE_EXTENTS;
	memcpy(c->s->cache, entries, n * 2 * sizeof(uint32_t));
	c->s->ncache = n;
	c->s->cache_off = offset;
	c->got = true;
	return 0;
}

/* The cached extent holding off, if any. */
static bool cache_find(const struct nbdc *s, uint64_t off, uint64_t *len, uint32_t *flags)
{
	uint64_t pos = s->cache_off;

	if (off < pos)
		return false;
	for (size_t i = 0; i < s->ncache; i++) {
		uint64_t end = pos + s->cache[2 * i];
		if (off < end) {
			*len = end - off;
			*flags = s->cache[2 * i + 1];
			return true;
		}
		pos = end;
	}
	return false;
}

/* What qemu's NBD client reports: every byte "allocated" at its own offset (the server decides
 * the content), data unless the server calls it a hole, zero when it says so. */
static int nbdc_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	struct nbdc *s = bs->opaque;
	uint64_t elen = 0;
	uint32_t f = 0;
	int ret = 0;

	ext->flags = BDEV_ST_ALLOCATED | BDEV_ST_OFFSET;
	ext->host_offset = off;
	ext->length = len;
	if (!s->meta) {
		ext->flags |= BDEV_ST_DATA;
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	if (!cache_find(s, off, &elen, &f)) {
		uint64_t lim = UINT32_MAX / s->min * s->min, q = len < lim ? len : lim;
		if (q >= s->min)
			q = q / s->min * s->min;
		struct status_ctx c = {s, false};
		s->ncache = 0;
		if (nbd_block_status(s->h, q, off,
				     (nbd_extent_callback){.callback = status_cb, .user_data = &c},
				     0) < 0)
			ret = nbdc_fail(bs, "block status", off);
		else if (!cache_find(s, off, &elen, &f))
			ret = err_set(EPROTO, "%s: the NBD server sent no extent for offset %llu",
				      bs->filename, (unsigned long long)off);
	}
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return ret;
	ext->length = elen < len ? elen : len;
	if (!(f & LIBNBD_STATE_HOLE))
		ext->flags |= BDEV_ST_DATA;
	if (f & LIBNBD_STATE_ZERO)
		ext->flags |= BDEV_ST_ZERO;
	return 0;
}

static int nbdc_truncate(struct bdev *bs, uint64_t size)
{
	if (size == bs->size)
		return 0;
	return err_set(ENOTSUP, "%s: an NBD export cannot be resized", bs->filename);
}

static void nbdc_close(struct bdev *bs)
{
	struct nbdc *s = bs->opaque;

	if (!s)
		return;
	/* Whatever the cache mode, what was written reaches the server's disk before we go:
	 * nobody can flush an NBD export on our behalf after the connection is gone. */
	if (s->written && s->can_flush)
		nbd_flush(s->h, 0);
	nbd_shutdown(s->h, 0);
	nbd_close(s->h);
	pthread_mutex_destroy(&s->lock);
	free(s);
	bs->opaque = NULL;
}

static int connect_target(struct bdev *bs, struct nbdc *s, const struct nbd_target *t)
{
	struct nbd_handle *h = s->h;

	if (nbd_set_export_name(h, t->export) < 0 ||
	    nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0)
		return nbdc_fail(bs, "setup", 0);
	if (t->tls) {
		if (nbd_supports_tls(h) != 1)
			return err_set(ENOTSUP, "%s: this libnbd has no TLS", bs->filename);
		if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) < 0 ||
		    (t->tls_dir && nbd_set_tls_certificates(h, t->tls_dir) < 0))
			return nbdc_fail(bs, "TLS setup", 0);
	}
	int r = t->is_unix ? nbd_connect_unix(h, t->path) : nbd_connect_tcp(h, t->host, t->port);
	if (r < 0) {
		const char *msg = nbd_get_error();
		int e = nbd_get_errno();
		return err_set(e > 0 ? e : EIO, "%s: could not connect: %s", bs->filename,
			       msg ? msg : "unknown NBD error");
	}
	return 0;
}

static void read_limits(struct nbdc *s)
{
	int64_t min = nbd_get_block_size(s->h, LIBNBD_SIZE_MINIMUM);
	int64_t max = nbd_get_block_size(s->h, LIBNBD_SIZE_MAXIMUM);

	s->min = min > 0 && min <= 65536 ? (uint32_t)min : 1;
	s->max = max > 0 && max < MAX_REQUEST ? (uint32_t)max : MAX_REQUEST;
	s->max = s->max / s->min * s->min;
	if (!s->max)
		s->max = s->min;
	s->can_flush = nbd_can_flush(s->h) == 1;
	s->can_trim = nbd_can_trim(s->h) == 1;
	s->can_zero = nbd_can_zero(s->h) == 1;
	s->can_fast_zero = nbd_can_fast_zero(s->h) == 1;
	s->meta = nbd_can_meta_context(s->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
}

static int nbdc_open(struct bdev *bs)
{
	struct nbd_target t;
	struct nbdc *s;
	int ret = nbd_target_parse(bs->filename, &t);

	if (ret < 0)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->h = nbd_create())) {
		free(s);
		nbd_target_free(&t);
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	}
	pthread_mutex_init(&s->lock, NULL);
	bs->opaque = s;
	ret = connect_target(bs, s, &t);
	int64_t size = ret == 0 ? nbd_get_size(s->h) : 0;
	if (ret == 0 && size < 0)
		ret = nbdc_fail(bs, "size query", 0);
	if (ret == 0 && !bs->read_only && nbd_is_read_only(s->h) == 1)
		ret = err_set(EROFS, "%s: the NBD export is read-only", bs->filename);
	if (ret == 0) {
		read_limits(s);
		bs->size = (uint64_t)size;
		bs->align = s->min > 512 ? s->min : 512;
		char *name = strdup(t.canonical);
		if (name) {
			free(bs->filename);
			bs->filename = name;
		}
	}
	nbd_target_free(&t);
	if (ret < 0)
		nbdc_close(bs);
	return ret;
}

int bdev_nbd_create(const char *name, const struct bdev_create_opts *opts)
{
	struct bdev *bs;
	int ret;

	if (opts->backing_file)
		return err_set(EINVAL, "%s: an NBD export has no backing file", name);
	ret = bdev_open(&bs, name, "raw", BDEV_O_RDWR);
	if (ret < 0)
		return ret;
	if (bs->size < opts->size)
		ret = err_set(ENOSPC,
			      "%s: the export (%llu bytes) is smaller than the image (%llu "
			      "bytes)",
			      bs->filename, (unsigned long long)bs->size,
			      (unsigned long long)opts->size);
	bdev_close(bs);
	return ret;
}

const struct bdev_driver bdev_nbd_driver = {
    .name = "raw",
    .open = nbdc_open,
    .close = nbdc_close,
    .read = nbdc_read,
    .write = nbdc_write,
    .flush = nbdc_flush,
    .discard = nbdc_discard,
    .write_zeroes = nbdc_write_zeroes,
    .block_status = nbdc_block_status,
    .truncate = nbdc_truncate,
};
