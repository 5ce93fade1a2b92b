/*
 * RBD images (Ceph) as block devices, through librbd and librados: every verb reads, writes,
 * maps and copies them as it does local raw files, and the VMM runs guests on them.
 *
 * I/O is asynchronous underneath (rbd_aio_*). A caller that needs the result (a read, a flush)
 * sleeps on an eventfd of its own thread that the completion callback, running on a librbd
 * thread, signals; many threads (the VMM's disk threads, convert's reader and writer) each have
 * their own requests in flight at once. Writes are write-behind unless the image was opened
 * with cache=none: the data is copied and handed to librbd, and the call returns, so one
 * writer keeps many requests in flight (up to WB_BYTES); a read waits for writes in flight
 * that it overlaps, and a flush (and close) waits for all of them and reports any that
 * failed. This is the write-back cache contract QEMU's rbd driver gets from librbd's cache.
 *
 * A writer takes the image's exclusive lock (RBD_FEATURE_EXCLUSIVE_LOCK) and keeps it until it
 * closes, so a second writer on any host is refused rather than sharing the disk.
 *
 * Block status comes from rbd_diff_iterate2 over whole objects (the object map, when the
 * image has fast-diff), as QEMU's driver reads it; a call describes many extents, cached until
 * the next write, so a map costs one round trip per few hundred extents.
 */
#include "block/rbd_int.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WB_BYTES    (64u << 20) /* write-behind: bytes in flight */
#define WB_REQUESTS 512		/* and requests */
#define BS_STOP	    (-9000)	/* a diff_iterate callback's "enough" */

struct rbd_wb {
	struct rbdc *s;
	uint64_t off, len;
	void *buf;
	struct rbd_wb *next, **pprev;
};

int rbd_fail(const char *name, int r, const char *what)
{
	int e = r < 0 ? -r : EIO;
	return err_sys(e, "%s: %s", name, what);
}

/* --- waiting for one request: a per-thread eventfd --- */

static pthread_key_t efd_key;
static pthread_once_t efd_once = PTHREAD_ONCE_INIT;

static void efd_close(void *p)
{
	close((int)(intptr_t)p - 1);
}

static void efd_key_init(void)
{
	pthread_key_create(&efd_key, efd_close);
}

/* This thread's eventfd (stored +1 so that 0 means none yet). */
static int thread_efd(void)
{
	pthread_once(&efd_once, efd_key_init);
	intptr_t v = (intptr_t)pthread_getspecific(efd_key);
	if (v)
		return (int)v - 1;
	int fd = eventfd(0, EFD_CLOEXEC);
	if (fd >= 0 && pthread_setspecific(efd_key, (void *)(intptr_t)(fd + 1))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

struct waiter {
	int efd;
	ssize_t ret;
};

static void wake_cb(rbd_completion_t c, void *arg)
{
	struct waiter *w = arg;
	uint64_t one = 1;

	w->ret = rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

enum op { OP_READ, OP_WRITE, OP_DISCARD, OP_ZERO, OP_FLUSH };

/* Issue one request and sleep until librbd completes it. Returns librbd's result. */
static ssize_t run_sync(struct rbdc *s, enum op op, uint64_t off, uint64_t len,
			const struct iovec *iov, int n, int zflags)
{
	struct waiter w = {thread_efd(), 0};
	rbd_completion_t c;
	uint64_t v;
	int r;

	if (w.efd < 0)
		return -errno;
	r = rbd_aio_create_completion(&w, wake_cb, &c);
	if (r < 0)
		return r;
	switch (op) {
	case OP_READ:
		r = rbd_aio_readv(s->image, iov, n, off, c);
		break;
	case OP_WRITE:
		r = rbd_aio_writev(s->image, iov, n, off, c);
		break;
	case OP_DISCARD:
		r = rbd_aio_discard(s->image, off, len, c);
		break;
	case OP_ZERO:
		r = rbd_aio_write_zeroes(s->image, off, len, c, zflags, 0);
		break;
	case OP_FLUSH:
		r = rbd_aio_flush(s->image, c);
		break;
	}
	if (r < 0) {
		rbd_aio_release(c);
		return r;
	}
	while (read(w.efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	return w.ret;
}

/* --- write-behind --- */

static bool overlaps(const struct rbd_wb *w, uint64_t off, uint64_t len)
{
	return w->off < off + len && off < w->off + w->len;
}

static bool inflight_overlap(struct rbdc *s, uint64_t off, uint64_t len)
{
	for (struct rbd_wb *w = s->inflight; w; w = w->next)
		if (overlaps(w, off, len))
			return true;
	return false;
}

/* Wait (s->lock held) until no write in flight touches [off, off+len). */
static void wait_overlap(struct rbdc *s, uint64_t off, uint64_t len)
{
	while (inflight_overlap(s, off, len))
		pthread_cond_wait(&s->cond, &s->lock);
}

/* A failure of a write in flight, reported once (to whoever asks next). */
static int take_wb_error(struct bdev *bs)
{
	struct rbdc *s = bs->opaque;
	int e = s->wb_err;

	if (!e)
		return 0;
	s->wb_err = 0;
	return err_sys(-e, "%s: write at offset %llu failed", bs->filename,
		       (unsigned long long)s->wb_err_off);
}

int rbd_drain(struct bdev *bs)
{
	struct rbdc *s = bs->opaque;

	pthread_mutex_lock(&s->lock);
	while (s->wb_count)
		pthread_cond_wait(&s->cond, &s->lock);
	int ret = take_wb_error(bs);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void wb_done(rbd_completion_t c, void *arg)
{
	struct rbd_wb *w = arg;
	struct rbdc *s = w->s;
	ssize_t r = rbd_aio_get_return_value(c);

	rbd_aio_release(c);
	pthread_mutex_lock(&s->lock);
	if (r < 0 && !s->wb_err) {
		s->wb_err = (int)r;
		s->wb_err_off = w->off;
	}
	*w->pprev = w->next;
	if (w->next)
		w->next->pprev = w->pprev;
	s->wb_bytes -= w->len;
	s->wb_count--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	free(w->buf);
	free(w);
}

/* Copy the data, hand it to librbd and return. */
static int write_behind(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	struct rbdc *s = bs->opaque;
	struct rbd_wb *w = malloc(sizeof(*w));
	uint8_t *buf = malloc(len);
	rbd_completion_t c;
	int ret;

	if (!w || !buf) {
		free(w);
		free(buf);
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	}
	for (int i = 0, at = 0; i < n; at += (int)iov[i++].iov_len)
		memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
	*w = (struct rbd_wb){.s = s, .off = off, .len = len, .buf = buf};
	pthread_mutex_lock(&s->lock);
	ret = take_wb_error(bs);
	/* Room in the window, and writes stay in order where they overlap. */
	while (ret == 0 &&
	       (s->wb_count >= WB_REQUESTS || (s->wb_count && s->wb_bytes + len > WB_BYTES) ||
		inflight_overlap(s, off, len))) {
		pthread_cond_wait(&s->cond, &s->lock);
		ret = take_wb_error(bs);
	}
	if (ret == 0) {
		s->bs.n = 0;
		w->next = s->inflight;
		w->pprev = &s->inflight;
		if (s->inflight)
			s->inflight->pprev = &w->next;
		s->inflight = w;
		s->wb_bytes += len;
		s->wb_count++;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret < 0) {
		free(buf);
		free(w);
		return ret;
	}
	int r = rbd_aio_create_completion(w, wb_done, &c);
	if (r == 0) {
		r = rbd_aio_write(s->image, off, len, (const char *)buf, c);
		if (r < 0)
			rbd_aio_release(c);
	}
	if (r < 0) { /* never handed over: take it back out of the list */
		pthread_mutex_lock(&s->lock);
		*w->pprev = w->next;
		if (w->next)
			w->next->pprev = w->pprev;
		s->wb_bytes -= len;
		s->wb_count--;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		free(buf);
		free(w);
		return rbd_fail(bs->filename, r, "could not start a write");
	}
	return 0;
}

/* --- the driver's data calls --- */

static void bs_drop(struct rbdc *s)
{
	pthread_mutex_lock(&s->lock);
	s->bs.n = 0;
	pthread_mutex_unlock(&s->lock);
}

static int rbdc_readv(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	struct rbdc *s = bs->opaque;

	pthread_mutex_lock(&s->lock);
	wait_overlap(s, off, len);
	pthread_mutex_unlock(&s->lock);
	ssize_t r = run_sync(s, OP_READ, off, len, iov, n, 0);
	if (r < 0) {
		char what[64];
		snprintf(what, sizeof(what), "read at offset %llu failed", (unsigned long long)off);
		return rbd_fail(bs->filename, (int)r, what);
	}
	if ((size_t)r < len) { /* librbd reads past the end as nothing: zeroes */
		size_t skip = (size_t)r;
		for (int i = 0; i < n; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			memset((uint8_t *)iov[i].iov_base + skip, 0, iov[i].iov_len - skip);
			skip = 0;
		}
	}
	return 0;
}

static int rbdc_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct iovec iov = {buf, len};
	return rbdc_readv(bs, off, &iov, 1, len);
}

static int rbdc_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	struct rbdc *s = bs->opaque;

	if (s->write_behind)
		return write_behind(bs, off, iov, n, len);
	bs_drop(s);
	ssize_t r = run_sync(s, OP_WRITE, off, len, iov, n, 0);
	if (r < 0) {
		char what[64];
		snprintf(what, sizeof(what), "write at offset %llu failed",
			 (unsigned long long)off);
		return rbd_fail(bs->filename, (int)r, what);
	}
	return 0;
}

static int rbdc_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};
	return rbdc_writev(bs, off, &iov, 1, len);
}

/* Discard, zero and flush wait for the writes in flight first: they are ordered after them. */
static int sync_op(struct bdev *bs, enum op op, uint64_t off, uint64_t len, int zflags,
		   const char *what)
{
	struct rbdc *s = bs->opaque;
	int ret = rbd_drain(bs);

	if (ret < 0)
		return ret;
	if (op != OP_FLUSH)
		bs_drop(s);
	ssize_t r = run_sync(s, op, off, len, NULL, 0, zflags);
	if (r < 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s at offset %llu failed", what,
			 (unsigned long long)off);
		return rbd_fail(bs->filename, (int)r, msg);
	}
	return 0;
}

static int rbdc_flush(struct bdev *bs)
{
	if (bs->flags & BDEV_O_UNSAFE)
		return rbd_drain(bs);
	return sync_op(bs, OP_FLUSH, 0, 0, 0, "flush");
}

static int rbdc_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	return sync_op(bs, OP_DISCARD, off, len, 0, "discard");
}

/* librbd zeroes by deallocating whole objects and truncating or zeroing the rest; without
 * MAY_UNMAP the zeroes are written (thick provisioning), as QEMU asks. */
static int rbdc_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	int zf = (flags & BDEV_ZERO_MAY_UNMAP) ? 0 : RBD_WRITE_ZEROES_FLAG_THICK_PROVISION;

	while (len) { /* librbd takes a size_t and an int result: keep pieces modest */
		uint64_t n = len < (1ull << 30) ? len : (1ull << 30);
		int ret = sync_op(bs, OP_ZERO, off, n, zf, "write zeroes");
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

/* --- block status --- */

struct diff_ctx {
	struct rbdc *s;
	uint64_t start, end, pos;
};

static bool add_run(struct rbdc *s, uint64_t end, bool data)
{
	if (s->bs.n && s->bs.run[s->bs.n - 1].data == data) {
		s->bs.run[s->bs.n - 1].end = end;
		return true;
	}
	if (s->bs.n == RBD_BS_RUNS)
		return false;
	s->bs.run[s->bs.n].end = end;
	s->bs.run[s->bs.n++].data = data;
	return true;
}

/* Extents arrive in order; gaps between them (and extents that do not exist) are holes. */
static int diff_cb(uint64_t offs, size_t len, int exists, void *opaque)
{
	struct diff_ctx *c = opaque;
	struct rbdc *s = c->s;
	uint64_t end = offs + len < c->end ? offs + len : c->end;

	if (!exists || end <= c->pos)
		return 0;
	if (offs > c->pos) {
		if (!add_run(s, offs, false))
			return BS_STOP;
		c->pos = offs;
	}
	if (!add_run(s, end, true)) {
		return BS_STOP;
	}
	c->pos = end;
	/* Keep one slot free so that a trailing hole always fits. */
	return s->bs.n >= RBD_BS_RUNS - 1 ? BS_STOP : 0;
}

/* May this image's allocation be asked of librbd? Without fast-diff (or with its map marked
 * invalid) librbd would read every object to find out: call it all data, as QEMU does. Before
 * librbd 1.17, diff_iterate2 reports wrong offsets for a start that is not object aligned
 * (Ceph bug 53784); aligning the start down fixes it only for unstriped images without a
 * parent, so clones and striped images are all data there too (QEMU's workaround). */
static bool can_diff(struct rbdc *s)
{
	uint64_t flags;

	if (!(s->features & RBD_FEATURE_FAST_DIFF))
		return false;
	if (rbd_get_flags(s->image, &flags) < 0 || (flags & RBD_FLAG_FAST_DIFF_INVALID))
		return false;
#if LIBRBD_VERSION_CODE < LIBRBD_VERSION(1, 17, 0)
	if (s->features & RBD_FEATURE_STRIPINGV2)
		return false;
	rbd_linked_image_spec_t pimg;
	rbd_snap_spec_t psnap;
	int r = rbd_get_parent(s->image, &pimg, &psnap);
	if (r == 0) {
		rbd_linked_image_spec_cleanup(&pimg);
		rbd_snap_spec_cleanup(&psnap);
	}
	if (r != -ENOENT)
		return false;
#endif
	return true;
}

/* Fill the cache from off on (s->lock held). */
static int bs_fill(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct rbdc *s = bs->opaque;
	uint64_t start = off / s->obj_size * s->obj_size;
	struct diff_ctx c = {s, start, off + len, start};

	s->bs.n = 0;
	int r = rbd_diff_iterate2(s->image, NULL, start, c.end - start, 1, 1, diff_cb, &c);
	if (r < 0 && r != BS_STOP) {
		s->bs.n = 0;
		return rbd_fail(bs->filename, r, "block status failed");
	}
	if (r == 0 && c.pos < c.end) {
		add_run(s, c.end, false);
		c.pos = c.end;
	}
	s->bs.off = start;
	s->bs.end = c.pos;
	if (!s->bs.n) { /* nothing learnt (stopped at once): call the first object data */
		uint64_t e = start + s->obj_size < c.end ? start + s->obj_size : c.end;
		add_run(s, e, true);
		s->bs.end = e;
	}
	return 0;
}

/* Every byte is "allocated" at its own offset (the image decides its content): data where an
 * object exists, zero where none does, as qemu-img map shows an RBD image. */
static int rbdc_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	struct rbdc *s = bs->opaque;
	int ret = 0;

	ext->flags = BDEV_ST_ALLOCATED | BDEV_ST_OFFSET;
	ext->host_offset = off;
	ext->length = len;
	if (!can_diff(s)) {
		ext->flags |= BDEV_ST_DATA;
		return 0;
	}
	ret = rbd_drain(bs);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&s->lock);
	if (!s->bs.n || off < s->bs.off || off >= s->bs.end)
		ret = bs_fill(bs, off, len);
	if (ret == 0) {
		uint64_t pos = s->bs.off;
		for (size_t i = 0; i < s->bs.n; i++) {
			if (off < s->bs.run[i].end && off >= pos) {
				uint64_t n = s->bs.run[i].end - off;
				ext->length = n < len ? n : len;
				ext->flags |= s->bs.run[i].data ? BDEV_ST_DATA : BDEV_ST_ZERO;
				break;
			}
			pos = s->bs.run[i].end;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int rbdc_truncate(struct bdev *bs, uint64_t size)
{
	struct rbdc *s = bs->opaque;
	int ret = rbd_drain(bs);

	if (ret < 0)
		return ret;
	bs_drop(s);
	int r = rbd_resize(s->image, size);
	if (r < 0)
		return rbd_fail(bs->filename, r, "could not resize");
	bs->size = size;
	return 0;
}

static uint32_t rbdc_cluster_size(struct bdev *bs)
{
	(void)bs;
	return 0; /* raw bytes: no clusters for convert or sparsify to align to */
}

/* --- open and close --- */

int rbd_connect(const char *name, const struct rbd_target *t, bool cache, rados_t *cluster,
		rados_ioctx_t *io)
{
	rados_t c;
	int r = rbd_lib_load(name);

	if (r < 0)
		return r;
	if ((r = rados_create(&c, t->user)) < 0)
		return rbd_fail(name, r, "could not set up librados");
	r = rados_conf_read_file(c, t->conf); /* NULL: $CEPH_CONF or /etc/ceph; may be absent */
	if (r < 0 && t->conf) {
		rados_shutdown(c);
		return rbd_fail(name, r, "could not read the Ceph configuration file");
	}
	rados_conf_set(c, "rbd_cache", cache ? "true" : "false"); /* the name's options win */
	rados_conf_set(c, "err_to_stderr", "false"); /* the library prints nothing: errors are
							 returned (and named) */
	for (size_t i = 0; i < t->nkv; i++) {
		r = rados_conf_set(c, t->keys[i], t->vals[i]);
		if (r < 0) {
			rados_shutdown(c);
			return err_set(EINVAL, "%s: invalid Ceph option '%s'", name, t->keys[i]);
		}
	}
	if (t->mon_host && (r = rados_conf_set(c, "mon_host", t->mon_host)) < 0) {
		rados_shutdown(c);
		return err_set(EINVAL, "%s: invalid monitor address list '%s'", name, t->mon_host);
	}
	r = rados_connect(c);
	if (r < 0) {
		rados_shutdown(c);
		return rbd_fail(name, r, "could not connect to the Ceph cluster");
	}
	r = rados_ioctx_create(c, t->pool, io);
	if (r < 0) {
		rados_shutdown(c);
		return err_sys(-r, "%s: could not open pool '%s'", name, t->pool);
	}
	rados_ioctx_set_namespace(*io, t->ns);
	*cluster = c;
	return 0;
}

static void rbdc_close(struct bdev *bs)
{
	struct rbdc *s = bs->opaque;

	if (!s)
		return;
	if (s->image) {
		/* What was written reaches the cluster before we go, whatever the cache mode:
		 * nobody can flush this image on our behalf afterwards. */
		rbd_drain(bs);
		if (!bs->read_only)
			run_sync(s, OP_FLUSH, 0, 0, NULL, 0, 0);
		if (s->locked)
			rbd_lock_release(s->image);
		rbd_close(s->image);
	}
	if (s->io)
		rados_ioctx_destroy(s->io);
	if (s->cluster)
		rados_shutdown(s->cluster);
	rbd_target_free(&s->t);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	bs->opaque = NULL;
}

/* A writer holds the exclusive lock for as long as it has the image open. */
static int take_lock(struct bdev *bs)
{
	struct rbdc *s = bs->opaque;
	int r;

	if (!(s->features & RBD_FEATURE_EXCLUSIVE_LOCK))
		return 0; /* nothing to take: librbd cannot keep writers apart on this image */
	r = rbd_lock_acquire(s->image, RBD_LOCK_MODE_EXCLUSIVE);
	if (r == 0) {
		s->locked = true;
		return 0;
	}
	char *owners[8];
	size_t n = 8;
	rbd_lock_mode_t mode;
	char who[160] = "another client";
	if (rbd_lock_get_owners(s->image, &mode, owners, &n) == 0) {
		if (n)
			snprintf(who, sizeof(who), "the client at %s", owners[0]);
		rbd_lock_get_owners_cleanup(owners, n);
	}
	if (r == -EROFS || r == -EBUSY || r == -EAGAIN)
		return err_set(EBUSY,
			       "%s: image is in use by another writer (%s holds its exclusive "
			       "lock)",
			       bs->filename, who);
	return rbd_fail(bs->filename, r, "could not take the image's exclusive lock");
}

static int open_image(struct bdev *bs, struct rbdc *s)
{
	rbd_image_info_t info;
	int r;

	if (s->t.snap && !bs->read_only)
		return err_set(EROFS,
			       "%s: an RBD snapshot is read-only (write to the image, or to a "
			       "clone of the snapshot)",
			       bs->filename);
	if (bs->read_only)
		r = rbd_open_read_only(s->io, s->t.image, &s->image, s->t.snap);
	else
		r = rbd_open(s->io, s->t.image, &s->image, NULL);
	if (r == -ENOENT)
		return err_set(ENOENT, "%s: no such %s in pool '%s'", bs->filename,
			       s->t.snap ? "image or snapshot" : "image", s->t.pool);
	if (r < 0) {
		s->image = NULL;
		return rbd_fail(bs->filename, r, "could not open the image");
	}
	r = rbd_stat(s->image, &info, sizeof(info));
	if (r == 0)
		r = rbd_get_features(s->image, &s->features);
	if (r < 0)
		return rbd_fail(bs->filename, r, "could not read the image's header");
	bs->size = info.size;
	s->obj_size = info.obj_size ? info.obj_size : (4u << 20);
	return bs->read_only ? 0 : take_lock(bs);
}

static int rbdc_open(struct bdev *bs)
{
	struct rbdc *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	bs->opaque = s;
	ret = rbd_target_parse(bs->filename, &s->t);
	if (ret == 0)
		ret = rbd_connect(bs->filename, &s->t, !(bs->flags & BDEV_O_DIRECT), &s->cluster,
				  &s->io);
	if (ret == 0)
		ret = open_image(bs, s);
	if (ret < 0) {
		rbdc_close(bs);
		return ret;
	}
	s->write_behind = !bs->read_only && !(bs->flags & BDEV_O_DIRECT);
	return 0;
}

const struct bdev_driver bdev_rbd_driver = {
    .name = "raw",
    .open = rbdc_open,
    .close = rbdc_close,
    .read = rbdc_read,
    .write = rbdc_write,
    .readv = rbdc_readv,
    .writev = rbdc_writev,
    .flush = rbdc_flush,
    .discard = rbdc_discard,
    .write_zeroes = rbdc_write_zeroes,
    .block_status = rbdc_block_status,
    .truncate = rbdc_truncate,
    .cluster_size = rbdc_cluster_size,
    .snapshot_list = rbd_snapshot_list,
    .snapshot_create = rbd_snapshot_create,
    .snapshot_apply = rbd_snapshot_apply,
    .snapshot_delete = rbd_snapshot_delete,
    .info_specific = rbd_info_specific,
};
