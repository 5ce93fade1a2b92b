/*
 * NBD exports as images, through libnbd: every verb reads, writes, maps and copies them as it
 * does local raw files. An export is raw bytes, so the driver calls itself "raw" (qemu-img
 * info says "file format: raw" too). Block status comes from the base:allocation context; each
 * reply's extents are kept until the next write, so a map costs one round trip per batch of
 * extents rather than one per extent. Requests larger than the server's maximum are split,
 * unaligned ones (servers that advertise a minimum block size) go through a bounce buffer.
 *
 * Several requests in flight on one connection, as qemu-img keeps them. libnbd's synchronous
 * calls (nbd_pread...) hold the handle's lock until their reply is in, so threads sharing a
 * handle would take turns on the wire. Instead every command is started with its nbd_aio_*
 * call, which holds the lock only to queue and send the request, and one I/O thread per bdev
 * drives the connection (poll on the socket, nbd_aio_notify_read/write), so replies for all
 * callers are read as they come, in any order. Each caller sleeps on a condition variable
 * until the completion callbacks of its own requests ran. A read larger than the server's
 * maximum goes out as several requests at once. Why not a pool of connections when the server
 * advertises multi-conn: one connection works with every server (multi-conn is only offered
 * for some read-only exports), costs one handshake (and TLS session), and is what qemu-img
 * does. The number of requests in flight is set by the callers (convert's readers, the VMM's
 * disk threads), so the server sees at most that many.
 *
 * The I/O thread watches the socket only while requests are in flight, and a process forked
 * with the export open (fs mount going to the background) starts an I/O thread of its own at
 * its first request: the parent's, idle, never reads the replies meant for the child. The
 * I/O thread calls libnbd only under io_lock, which a fork takes first (pthread_atfork), so
 * the child never inherits the handle's lock held by a thread it does not have.
 */
#include "block/nbd.h"
#include "util/error.h"

#include <errno.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_REQUEST   (32u << 20) /* NBD's portable payload limit */
#define MAX_EFFECT    (1u << 30)  /* zero/trim per request: well inside the 32-bit length */
#define CACHE_EXTENTS 4096
#define WINDOW	      16 /* pieces of one large read or write in flight at once */
#define MAX_RUNS      64 /* disjoint ranges a read's reply may cover before it is complete */

struct nbdc {
	struct nbd_handle *h;
	uint32_t min, max;
	bool can_flush, can_trim, can_zero, can_fast_zero, meta;
	bool written;	      /* under lock */
	pthread_mutex_t lock; /* the extent cache */
	uint64_t cache_off;   /* the cached extents describe the export from here on */
	uint32_t cache[2 * CACHE_EXTENTS];
	size_t ncache;
	/* the I/O thread */
	pthread_t io;
	bool io_running;    /* under done_lock once open */
	atomic_uint io_gen; /* fork_gen when it was started: in this process if equal */
	int wake;	    /* eventfd: a request was queued, or stop */
	atomic_bool stop;
	atomic_uint inflight;	   /* requests started and not completed */
	pthread_mutex_t io_lock;   /* held by the I/O thread while it is inside libnbd */
	struct nbdc *next;	   /* the open exports (registry, for fork) */
	pthread_mutex_t done_lock; /* guards every struct nbdc_req's done and err */
	pthread_cond_t done_cond;
};

/* One command in flight, on its caller's stack until its completion callback ran. A read
 * records which of its bytes the reply's chunks covered: libnbd does not check that a server
 * sent every byte (nor that chunks do not overlap), and its clearing of the buffer beforehand
 * is turned off (it cost a memset of every read), so a reply that leaves bytes unsent fails. */
struct nbdc_req {
	struct nbdc *s;
	uint64_t off;
	uint64_t len; /* of a read (0: not a read) */
	bool done;
	bool bad_chunk;		   /* overlapping, outside the read, or too scattered */
	int nruns;		   /* covered ranges, relative to off: sorted, disjoint, */
	uint64_t run[MAX_RUNS][2]; /* and not adjacent (merged) */
	int err;
	char msg[160]; /* why, when err */
};

/* Bumped in the child of every fork: the I/O threads of the parent do not exist there. */
static atomic_uint fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nbdc *registry;

static void fork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
	for (struct nbdc *s = registry; s; s = s->next)
		pthread_mutex_lock(&s->io_lock);
}

static void fork_parent(void)
{
	for (struct nbdc *s = registry; s; s = s->next)
		pthread_mutex_unlock(&s->io_lock);
	pthread_mutex_unlock(&registry_lock);
}

static void fork_child(void)
{
	atomic_fetch_add(&fork_gen, 1);
	fork_parent();
}

static void fork_hook(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void registry_add(struct nbdc *s)
{
	pthread_mutex_lock(&registry_lock);
	s->next = registry;
	registry = s;
	pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(struct nbdc *s)
{
	pthread_mutex_lock(&registry_lock);
	for (struct nbdc **p = &registry; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	pthread_mutex_unlock(&registry_lock);
}

static int nbdc_fail(struct bdev *bs, const char *what, uint64_t off)
{
	int e = nbd_get_errno();
	const char *msg = nbd_get_error();

	return err_set(e > 0 ? e : EIO, "%s: %s at offset %llu failed: %s", bs->filename, what,
		       (unsigned long long)off, msg ? msg : "unknown NBD error");
}

/* Chunk [a, a+n) of a read's reply arrived (relative to the read): add it to the covered
 * ranges. Servers send a read's chunks in order nearly always, which is the first test. */
static void cover_add(struct nbdc_req *q, uint64_t a, uint64_t n)
{
	int i = q->nruns;

	if (a > q->len || n > q->len - a) {
		q->bad_chunk = true;
		return;
	}
	while (i > 0 && q->run[i - 1][0] > a)
		i--; /* the new chunk goes after run i-1 */
	if ((i > 0 && q->run[i - 1][1] > a) || (i < q->nruns && q->run[i][0] < a + n)) {
		q->bad_chunk = true; /* overlaps a chunk already sent */
		return;
	}
	bool left = i > 0 && q->run[i - 1][1] == a, right = i < q->nruns && q->run[i][0] == a + n;
	if (left && right) {
		q->run[i - 1][1] = q->run[i][1];
		memmove(&q->run[i], &q->run[i + 1], (size_t)(q->nruns - i - 1) * sizeof(q->run[0]));
		q->nruns--;
	} else if (left) {
		q->run[i - 1][1] = a + n;
	} else if (right) {
		q->run[i][0] = a;
	} else if (q->nruns == MAX_RUNS) {
		q->bad_chunk = true;
	} else {
		memmove(&q->run[i + 1], &q->run[i], (size_t)(q->nruns - i) * sizeof(q->run[0]));
		q->run[i][0] = a;
		q->run[i][1] = a + n;
		q->nruns++;
	}
}

/* libnbd's chunk callback of a read (a simple reply is one chunk of the whole read). */
static int read_chunk(void *opaque, const void *subbuf, size_t count, uint64_t offset,
		      unsigned status, int *error)
{
	struct nbdc_req *q = opaque;

	(void)subbuf;
	(void)error;
	if ((status == LIBNBD_READ_DATA || status == LIBNBD_READ_HOLE) && count)
		cover_add(q, offset < q->off ? UINT64_MAX : offset - q->off, count);
	return 0;
}

/* The completion callback: runs on whichever thread moved libnbd's state machine (the I/O
 * thread, or a caller whose request found the connection dead), with the handle locked. */
static int req_done(void *opaque, int *error)
{
	struct nbdc_req *q = opaque;
	struct nbdc *s = q->s;
	int e = *error;

	if (!e && q->len && (q->bad_chunk || q->nruns != 1 || q->run[0][1] != q->len)) {
		e = EIO;
		snprintf(q->msg, sizeof(q->msg), "%s",
			 q->bad_chunk ? "the server's reply has overlapping or stray chunks"
				      : "the server's reply left part of the read unsent");
	} else if (e) {
		/* ENOTCONN: the connection died and libnbd recorded why on this thread; any other
		 * value is the server's error reply. */
		const char *why = e == ENOTCONN ? nbd_get_error() : NULL;
		snprintf(q->msg, sizeof(q->msg), "%s", why ? why : strerror(e));
	}
	atomic_fetch_sub(&s->inflight, 1);
	pthread_mutex_lock(&s->done_lock);
	q->err = e;
	q->done = true;
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->done_lock);
	return 1; /* retire the command: nobody calls nbd_aio_command_completed */
}

static nbd_completion_callback req_init(struct nbdc *s, struct nbdc_req *q, uint64_t off)
{
	q->s = s;
	q->off = off;
	q->len = 0;
	q->nruns = 0;
	q->bad_chunk = false;
	q->done = false;
	q->err = 0;
	q->msg[0] = 0;
	atomic_fetch_add(&s->inflight, 1);
	return (nbd_completion_callback){.callback = req_done, .user_data = q};
}

/* The command set up by req_init could not be started: its callback will never run. */
static void req_unstarted(struct nbdc *s)
{
	atomic_fetch_sub(&s->inflight, 1);
}

/* The I/O thread recomputes what it polls for: a request that could not be sent whole now
 * needs the socket writable. */
static void io_wake(struct nbdc *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake, &one, sizeof(one));

	(void)r; /* an eventfd write fails only when the counter is full: it is awake then */
}

static void req_wait(struct nbdc *s, struct nbdc_req *q)
{
	pthread_mutex_lock(&s->done_lock);
	while (!q->done)
		pthread_cond_wait(&s->done_cond, &s->done_lock);
	pthread_mutex_unlock(&s->done_lock);
}

/* The error of a finished request, recorded. */
static int req_fail(struct bdev *bs, const struct nbdc_req *q, const char *what)
{
	return err_set(q->err > 0 ? q->err : EIO, "%s: %s at offset %llu failed: %s", bs->filename,
		       what, (unsigned long long)q->off, q->msg[0] ? q->msg : "unknown NBD error");
}

/* Wait for a command started with cookie (or failing to start: cookie < 0, no callback
 * will run) and return its result. */
static int req_finish(struct bdev *bs, struct nbdc_req *q, int64_t cookie, const char *what)
{
	struct nbdc *s = bs->opaque;

	if (cookie < 0) {
		req_unstarted(s);
		return nbdc_fail(bs, what, q->off);
	}
	io_wake(s);
	req_wait(s, q);
	return q->err ? req_fail(bs, q, what) : 0;
}

/* Drive the connection: the socket in the direction libnbd wants, and the eventfd. Once the
 * connection is gone (nbd_aio_get_fd fails) only the eventfd is left, for stop. */
static void *io_main(void *opaque)
{
	struct nbdc *s = opaque;

	for (;;) {
		pthread_mutex_lock(&s->io_lock);
		int fd = atomic_load(&s->inflight) ? nbd_aio_get_fd(s->h) : -1;
		unsigned dir = fd >= 0 ? nbd_aio_get_direction(s->h) : 0;
		pthread_mutex_unlock(&s->io_lock);
		struct pollfd p[2] = {{.fd = s->wake, .events = POLLIN}, {.fd = -1}};
		if (dir & LIBNBD_AIO_DIRECTION_READ)
			p[1].events |= POLLIN;
		if (dir & LIBNBD_AIO_DIRECTION_WRITE)
			p[1].events |= POLLOUT;
		if (p[1].events)
			p[1].fd = fd;
		if (poll(p, 2, -1) < 0)
			continue; /* EINTR */
		if (p[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(s->wake, &v, sizeof(v));
			(void)r;
			if (atomic_load(&s->stop))
				return NULL;
		}
		if (p[1].fd < 0 || !(p[1].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)))
			continue;
		/* The direction again: a caller may have moved the state machine meanwhile. A
		 * failure here kills the connection, and libnbd fails every request in flight
		 * through its completion callback. */
		pthread_mutex_lock(&s->io_lock);
		dir = nbd_aio_get_direction(s->h);
		if ((dir & LIBNBD_AIO_DIRECTION_READ) &&
		    (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			nbd_aio_notify_read(s->h);
		else if ((dir & LIBNBD_AIO_DIRECTION_WRITE) &&
			 (p[1].revents & (POLLOUT | POLLHUP | POLLERR)))
			nbd_aio_notify_write(s->h);
		pthread_mutex_unlock(&s->io_lock);
	}
}

static int io_start(struct bdev *bs, struct nbdc *s)
{
	if (s->wake >= 0)
		close(s->wake); /* after a fork: this process's copy of the parent's eventfd */
	s->io_running = false;
	s->wake = eventfd(0, EFD_CLOEXEC);
	if (s->wake < 0)
		return err_sys(errno, "%s: eventfd", bs->filename);
	int e = pthread_create(&s->io, NULL, io_main, s);
	if (e)
		return err_set(e, "%s: cannot start the NBD I/O thread", bs->filename);
	s->io_running = true;
	atomic_store(&s->io_gen, atomic_load(&fork_gen));
	return 0;
}

/* Before starting requests: this process has an I/O thread (a forked child starts its own). */
static int io_ensure(struct bdev *bs)
{
	struct nbdc *s = bs->opaque;
	int ret = 0;

	if (atomic_load(&s->io_gen) == atomic_load(&fork_gen))
		return 0;
	pthread_mutex_lock(&s->done_lock);
	if (atomic_load(&s->io_gen) != atomic_load(&fork_gen) || !s->io_running)
		ret = io_start(bs, s);
	pthread_mutex_unlock(&s->done_lock);
	return ret;
}

/* Every caller is done (close): stop this process's I/O thread; the handle is the caller's
 * again. */
static void io_stop(struct nbdc *s)
{
	if (s->io_running && atomic_load(&s->io_gen) == atomic_load(&fork_gen)) {
		atomic_store(&s->stop, true);
		io_wake(s);
		pthread_join(s->io, NULL);
	}
	s->io_running = false;
	if (s->wake >= 0)
		close(s->wake);
	s->wake = -1;
}

/* A write is coming or has landed: the cached extents may be stale. Called before a write
 * and again once it completed, so that a block status answered while the write was in
 * flight is not kept either. */
static void cache_drop(struct nbdc *s)
{
	pthread_mutex_lock(&s->lock);
	s->ncache = 0;
	s->written = true;
	pthread_mutex_unlock(&s->lock);
}

static const uint8_t zeroes[1u << 20]; /* the data of zero writes to servers without WRITE_ZEROES */

/* Start up to WINDOW pieces the server takes of [off, off+len): reads into rbuf, writes of
 * wbuf, or (both NULL) writes of zeroes. Returns the bytes started, in q[0..*n); a piece
 * that could not be started has its error recorded in *ret. */
static size_t xfer_start(struct bdev *bs, struct nbdc_req *q, int *n, uint64_t off, void *rbuf,
			 const void *wbuf, size_t len, int *ret)
{
	struct nbdc *s = bs->opaque;
	size_t piece = s->max, at = 0;

	if (!rbuf && !wbuf && piece > sizeof(zeroes))
		piece = sizeof(zeroes); /* a multiple of the minimum, a power of two <= 64 KiB */
	for (*n = 0; at < len && *n < WINDOW; (*n)++) {
		size_t k = len - at < piece ? len - at : piece;
		nbd_completion_callback cb = req_init(s, &q[*n], off + at);
		const uint8_t *w = wbuf ? (const uint8_t *)wbuf + at : zeroes;
		nbd_chunk_callback chunk = {.callback = read_chunk, .user_data = &q[*n]};
		q[*n].len = rbuf ? k : 0;
		int64_t c = rbuf ? nbd_aio_pread_structured(s->h, (uint8_t *)rbuf + at, k, off + at,
							    chunk, cb, 0)
				 : nbd_aio_pwrite(s->h, w, k, off + at, cb, 0);
		if (c < 0) {
			req_unstarted(s);
			*ret = nbdc_fail(bs, rbuf ? "read" : "write", off + at);
			break;
		}
		at += k;
	}
	return at;
}

/* Aligned transfers (see xfer_start) in pieces the server takes, several at once. The error
 * reported is the one at the lowest offset. */
static int xfer(struct bdev *bs, uint64_t off, void *rbuf, const void *wbuf, size_t len)
{
	struct nbdc *s = bs->opaque;
	struct nbdc_req q[WINDOW];
	int ret = io_ensure(bs), n;

	while (len && ret == 0) {
		size_t done = xfer_start(bs, q, &n, off, rbuf, wbuf, len, &ret);
		if (n)
			io_wake(s);
		for (int i = 0; i < n; i++)
			req_wait(s, &q[i]);
		for (int i = 0; i < n; i++)
			if (q[i].err) {
				ret = req_fail(bs, &q[i], rbuf ? "read" : "write");
				break;
			}
		off += done;
		len -= done;
		if (rbuf)
			rbuf = (uint8_t *)rbuf + done;
		else if (wbuf)
			wbuf = (const uint8_t *)wbuf + done;
	}
	return ret;
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

	int ret;

	cache_drop(s);
	if (!aligned(s, off, len))
		ret = bounce(bs, off, NULL, buf, len);
	else
		ret = xfer(bs, off, NULL, buf, len);
	cache_drop(s);
	return ret;
}

static int nbdc_flush(struct bdev *bs)
{
	struct nbdc *s = bs->opaque;

	struct nbdc_req q;

	if ((bs->flags & BDEV_O_UNSAFE) || !s->can_flush)
		return 0;
	int ret = io_ensure(bs);
	if (ret < 0)
		return ret;
	return req_finish(bs, &q, nbd_aio_flush(s->h, req_init(s, &q, 0), 0), "flush");
}

/* Trim or zero [off, off+len): whole minimum blocks in requests of at most MAX_EFFECT. */
static int effect(struct bdev *bs, uint64_t off, uint64_t len, bool zero, uint32_t flags)
{
	struct nbdc *s = bs->opaque;

	struct nbdc_req q;
	int ret = io_ensure(bs);

	cache_drop(s);
	while (len && ret == 0) {
		uint64_t n = len < MAX_EFFECT ? len : MAX_EFFECT;
		nbd_completion_callback cb = req_init(s, &q, off);
		int64_t c = zero ? nbd_aio_zero(s->h, n, off, cb, flags)
				 : nbd_aio_trim(s->h, n, off, cb, 0);
		ret = req_finish(bs, &q, c, zero ? "write zeroes" : "trim");
		off += n;
		len -= n;
	}
	cache_drop(s);
	return ret;
}

static int nbdc_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct nbdc *s = bs->opaque;
	uint64_t start = (off + s->min - 1) / s->min * s->min, end = (off + len) / s->min * s->min;

	if (!s->can_trim || end <= start) /* discard is a hint */
		return 0;
	return effect(bs, start, end - start, false, 0);
}

/* Zeroes written as data (the server has no WRITE_ZEROES, or the range is not whole minimum
 * blocks), several pieces at once where aligned. */
static int write_zero_data(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct nbdc *s = bs->opaque;

	if (aligned(s, off, len) && len <= SIZE_MAX) {
		cache_drop(s);
		int ret = xfer(bs, off, NULL, NULL, (size_t)len);
		cache_drop(s);
		return ret;
	}
	while (len) {
		size_t n = len < 65536 ? (size_t)len : 65536;
		int ret = nbdc_write(bs, off, zeroes, n);
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

/* The extent callback runs on the I/O thread while the caller that asked holds s->lock and
 * waits for the completion: it is the only writer of the cache then, and the completion's
 * mutex orders its writes before the caller reads them. */
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

/* Ask the server for the extents from off on, into the cache (the caller holds s->lock). */
static int status_fetch(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct nbdc *s = bs->opaque;
	uint64_t lim = UINT32_MAX / s->min * s->min, n = len < lim ? len : lim;
	struct status_ctx c = {s, false};
	struct nbdc_req r;
	int ret = io_ensure(bs);

	if (ret < 0)
		return ret;
	if (n >= s->min)
		n = n / s->min * s->min;
	s->ncache = 0;
	int64_t cookie = nbd_aio_block_status(
	    s->h, n, off, (nbd_extent_callback){.callback = status_cb, .user_data = &c},
	    req_init(s, &r, off), 0);
	return req_finish(bs, &r, cookie, "block status");
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
		ret = status_fetch(bs, off, len);
		if (ret < 0)
			s->ncache = 0;
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
	io_stop(s);
	registry_remove(s);
	/* Whatever the cache mode, what was written reaches the server's disk before we go:
	 * nobody can flush an NBD export on our behalf after the connection is gone. */
	if (s->written && s->can_flush)
		nbd_flush(s->h, 0);
	nbd_shutdown(s->h, 0);
	nbd_close(s->h);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->done_lock);
	pthread_mutex_destroy(&s->io_lock);
	pthread_cond_destroy(&s->done_cond);
	free(s);
	bs->opaque = NULL;
}

static int connect_target(struct bdev *bs, struct nbdc *s, const struct nbd_target *t)
{
	struct nbd_handle *h = s->h;

	/* no clearing of read buffers: every read checks that its reply covered it (req_done) */
	if (nbd_set_pread_initialize(h, false) < 0 || nbd_set_export_name(h, t->export) < 0 ||
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
	pthread_once(&fork_once, fork_hook);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->io_lock, NULL);
	pthread_mutex_init(&s->done_lock, NULL);
	pthread_cond_init(&s->done_cond, NULL);
	s->wake = -1;
	bs->opaque = s;
	registry_add(s);
	ret = connect_target(bs, s, &t);
	int64_t size = ret == 0 ? nbd_get_size(s->h) : 0;
	if (ret == 0 && size < 0)
		ret = nbdc_fail(bs, "size query", 0);
	if (ret == 0 && !bs->read_only && nbd_is_read_only(s->h) == 1)
		ret = err_set(EROFS, "%s: the NBD export is read-only", bs->filename);
	if (ret == 0) {
		read_limits(s);
		ret = io_start(bs, s);
	}
	if (ret == 0) {
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
