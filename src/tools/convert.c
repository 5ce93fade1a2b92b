/*
 * The copy engine behind img convert: the ring of slots and its threads (filling a slot is
 * convert_read.c).
 *
 * A pipeline of batches (4 MiB each) held in a ring of slots, batch k in slot k % nslots:
 *   readers (the caller's thread and up to CONVERT_MAX_READERS - 1 more): each takes the next
 *     batch in guest order, waits until its slot is free (the writer has passed batch
 *     k - nslots), and fills it: block status + read + zero detection;
 *   workers (-m N, only with compression): compress ready slots' clusters, any order;
 *   writer (one thread): writes batch after batch in guest order, each once it is ready and
 *     all its clusters are compressed.
 * Several readers keep several source reads in flight, which is what a source with latency
 * (RBD: each read is a round trip to an OSD; NBD) needs: one reader would wait for every round
 * trip in turn. The output is still written by one thread in guest order, so compressed
 * clusters reach the file in order and the image is as compact as a sequential copy makes it
 * (qemu-img's -W is not needed for speed, and never reorders anything here).
 *
 * Locking: one mutex (e->lock) and one condition variable guard the ring: the batch counters,
 * each slot's ready/pending/next_claim, the first error and the table of mapped source files.
 * A slot's buffers and units belong to the reader that claimed it until it sets ready (under
 * the lock), then to the workers (each unit claimed under the lock) and the writer (once
 * pending is 0), and to nobody again once the writer advances write_seq, which is what lets
 * the reader of batch k + nslots in. So no buffer is touched by two threads at once without
 * the lock's hand-over between them. The lock is never held across I/O or compression (but for
 * mapping a source file, once per file); it is taken once per cluster by workers and once per
 * batch by readers and the writer, never contended enough to matter. The block layer is
 * called from several threads at once: every driver is safe for that (qcow2 maps under its
 * lock and moves data without it; raw and parallels are preads; RBD waits on an eventfd per
 * thread; NBD's libnbd handle serialises its calls, so NBD readers take turns on the wire).
 *
 * Errors: the first failure (any thread, with its thread-local message) wins and stops every
 * thread at its next look at the ring; the caller gets that one message.
 */
#include "tools/convert.h"
#include "block/block.h"
#include "tools/convert_priv.h"
#include "util/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

int convert_default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (n > CONVERT_MAX_WORKERS ? CONVERT_MAX_WORKERS : (int)n);
}

int convert_opts_check(const struct convert_opts *o)
{
	if (o->workers < 0 || o->workers > CONVERT_MAX_WORKERS)
		return err_set(EINVAL,
			       "%d compression threads: the number must be between 1 and %d",
			       o->workers, CONVERT_MAX_WORKERS);
	if (o->min_sparse % 512 || o->min_sparse > CONVERT_MAX_SPARSE)
		return err_set(EINVAL,
			       "sparse size %llu: must be a multiple of 512 up to 16 MiB (0: none)",
			       (unsigned long long)o->min_sparse);
	return 0;
}

/* Record the first failure (with its thread-local message) and wake everybody. Locked. */
static void fail_locked(struct engine *e, int ret)
{
	if (e->err)
		return;
	e->err = ret;
	snprintf(e->msg, sizeof(e->msg), "%s", err_msg_or(ret));
	pthread_cond_broadcast(&e->cond);
}

static void fail(struct engine *e, int ret)
{
	pthread_mutex_lock(&e->lock);
	fail_locked(e, ret);
	pthread_mutex_unlock(&e->lock);
}

/* A ready slot with a cluster nobody compresses yet: claims it (locked). */
static struct slot *claim_cluster(struct engine *e, size_t *j)
{
	uint64_t end = e->write_seq + (uint64_t)e->nslots;

	if (end > e->claim_seq)
		end = e->claim_seq;
	for (uint64_t seq = e->write_seq; seq < end; seq++) {
		struct slot *c = &e->slots[seq % (uint64_t)e->nslots];
		if (c->ready && c->next_claim < c->ncomp) {
			*j = c->comp[c->next_claim++];
			return c;
		}
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		size_t j = 0;
		struct slot *s = e->err ? NULL : claim_cluster(e, &j);
		if (e->err || (!s && e->filled == e->nbatch))
			break;
		if (!s) {
			pthread_cond_wait(&e->cond, &e->lock);
			continue;
		}
		pthread_mutex_unlock(&e->lock);
		uint64_t at = j * e->unit;
		/* A short last cluster is compressed zero-padded to a whole one: readers
		 * (QEMU's too) inflate every compressed cluster to the full cluster size. */
		int64_t n = bdev_compress(e->dst, s->out + at, e->unit, convert_unit_data(e, s, j),
					  e->unit);
		pthread_mutex_lock(&e->lock);
		if (n < 0 && n != -ENOSPC) {
			fail_locked(e, (int)n);
			break;
		}
		s->u[j].clen = n;
		if (--s->pending == 0)
			pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* Written as they are: data units, and units that did not shrink when compressed. */
static bool is_plain(const struct unit *u)
{
	return u->kind == U_DATA || (u->kind == U_COMP && u->clen < 0);
}

/* Write a run of units starting at unit j: one compressed unit, or a run of plain units (in
 * one vectored write, so incompressible data goes out in large writes too), or a run of zero
 * or skipped units. Returns the units consumed or -errno. */
static int64_t write_run(struct engine *e, struct slot *s, size_t j)
{
	struct unit *u = &s->u[j];
	uint64_t at = j * e->unit, off = s->off + at;
	size_t k = j + 1;
	int ret = 0;

	if (u->kind == U_COMP && u->clen >= 0) {
		ret = bdev_write_compressed(e->dst, off, s->out + at, (size_t)u->clen);
		return ret < 0 ? ret : 1;
	}
	if (is_plain(u)) { /* one vectored write; pieces adjacent in memory are merged */
		struct iovec iov[64];
		int n = 0;
		size_t m = j;
		for (; m < s->nunits && is_plain(&s->u[m]); m++) {
			const uint8_t *p = convert_unit_data(e, s, m);
			uint64_t mat = m * e->unit;
			size_t ulen = s->len - mat < e->unit ? (size_t)(s->len - mat) : e->unit;
			if (n && p != e->zero_unit &&
			    (const uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == p)
				iov[n - 1].iov_len += ulen;
			else if (n < 64)
				iov[n++] = (struct iovec){(void *)p, ulen};
			else
				break;
		}
		ret = bdev_writev(e->dst, off, iov, n);
		return ret < 0 ? ret : (int64_t)(m - j);
	}
	while (k < s->nunits && s->u[k].kind == u->kind)
		k++;
	uint64_t len = (k - j) * e->unit;
	if (at + len > s->len)
		len = s->len - at;
	if (u->kind == U_ZERO)
		ret = bdev_write_zeroes(e->dst, off, len,
					e->o->diff_target ? 0 : BDEV_ZERO_MAY_UNMAP);
	return ret < 0 ? ret : (int64_t)(k - j);
}

static void *writer_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct slot *s = &e->slots[e->write_seq % (uint64_t)e->nslots];
		bool ready = e->write_seq < e->nbatch && s->ready && s->pending == 0;
		if (e->err || e->write_seq == e->nbatch)
			break;
		if (!ready) {
			pthread_cond_wait(&e->cond, &e->lock);
			continue;
		}
		pthread_mutex_unlock(&e->lock);
		int64_t r = 0;
		for (size_t j = 0; j < s->nunits && r >= 0; j += (size_t)r)
			r = write_run(e, s, j);
		/* done with the mapped source pages: unmap them (the page cache keeps them) */
		for (size_t i = 0; i < s->nmapped; i++) {
			uintptr_t a = (uintptr_t)s->mapped[i].iov_base & ~(uintptr_t)4095;
			madvise((void *)a,
				(uintptr_t)s->mapped[i].iov_base + s->mapped[i].iov_len - a,
				MADV_DONTNEED);
		}
		pthread_mutex_lock(&e->lock);
		if (r < 0) {
			fail_locked(e, (int)r);
			break;
		}
		s->ready = false;
		e->done += s->len;
		e->write_seq++;
		pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

static void free_slots(struct engine *e)
{
	for (int i = 0; i < e->nslots; i++) {
		free(e->slots[i].in);
		free(e->slots[i].out);
		free(e->slots[i].cur);
		free(e->slots[i].u);
		free(e->slots[i].comp);
		free(e->slots[i].mapped);
	}
	for (int i = 0; i < e->nmaps; i++)
		if (e->maps[i].p)
			munmap((void *)e->maps[i].p, (size_t)e->maps[i].len);
	free(e->zero_unit);
}

/* Slots: one per reader and two more (the one being written, one ready behind it), or two per
 * compression thread and two more, whichever is more. */
static int alloc_slots(struct engine *e, int workers, int readers)
{
	size_t nunits = e->batch / e->unit;

	e->zero_unit = calloc(1, e->unit);
	if (!e->zero_unit)
		return err_set(ENOMEM, "out of memory");
	e->nslots = workers * 2 + 2;
	if (e->nslots < readers + 2)
		e->nslots = readers + 2;
	if (e->nslots < 3)
		e->nslots = 3;
	if (e->nslots > MAX_SLOTS)
		e->nslots = MAX_SLOTS;
	for (int i = 0; i < e->nslots; i++) {
		struct slot *s = &e->slots[i];
		s->in = aligned_alloc(4096, e->batch);
		s->out = e->o->compress ? aligned_alloc(4096, e->batch) : NULL;
		s->cur = e->o->diff_target ? aligned_alloc(4096, e->batch) : NULL;
		s->u = calloc(nunits, sizeof(*s->u));
		s->comp = calloc(nunits, sizeof(*s->comp));
		s->mapped = calloc(nunits, sizeof(*s->mapped));
		if (!s->in || !s->u || !s->comp || !s->mapped || (e->o->compress && !s->out) ||
		    (e->o->diff_target && !s->cur))
			return err_set(ENOMEM, "out of memory for %zu-byte copy buffers", e->batch);
	}
	return 0;
}

static int setup(struct engine *e, int *workers, int *readers)
{
	const struct convert_opts *o = e->o;
	uint32_t cs = bdev_cluster_size(e->dst);

	for (int i = 0; i < e->nsrc; i++) {
		if (e->src[i]->size > UINT64_MAX - e->total)
			return err_set(EFBIG, "the sources together are too large");
		e->total += e->src[i]->size;
	}
	if (e->total > e->dst->size)
		return err_set(ENOSPC, "%s: target is smaller (%llu bytes) than the source (%llu)",
			       e->dst->filename, (unsigned long long)e->dst->size,
			       (unsigned long long)e->total);
	if (o->compress && !cs)
		return err_set(ENOTSUP, "%s: format %s does not support compression",
			       e->dst->filename, e->dst->drv->name);
	if (cs)
		e->unit = cs;
	else
		e->unit = o->min_sparse >= 512 && o->min_sparse < 4096 ? o->min_sparse : 4096;
	e->batch = BATCH_BYTES < e->unit ? e->unit : BATCH_BYTES / e->unit * e->unit;
	e->nbatch = (e->total + e->batch - 1) / e->batch;
	*workers = o->compress ? (o->workers > 0 ? o->workers : convert_default_workers()) : 0;
	*readers = o->readers > 0 ? o->readers : CONVERT_DEFAULT_READERS;
	if (*readers > CONVERT_MAX_READERS)
		*readers = CONVERT_MAX_READERS;
	return alloc_slots(e, *workers, *readers);
}

/* The caller's reader, once every batch is taken: progress until the writer is done. */
static void report_rest(struct engine *e)
{
	const struct convert_opts *o = e->o;
	uint64_t done = e->done;

	while (!e->err && e->write_seq < e->nbatch) {
		pthread_cond_wait(&e->cond, &e->lock);
		if (e->done == done)
			continue;
		done = e->done;
		pthread_mutex_unlock(&e->lock);
		o->progress(o->opaque, done, e->total);
		pthread_mutex_lock(&e->lock);
	}
}

/* Take the next batch, wait for its slot, fill it, hand it over; until none is left. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct engine *e = r->e;
	const struct convert_opts *o = e->o;

	pthread_mutex_lock(&e->lock);
	while (!e->err && e->claim_seq < e->nbatch) {
		uint64_t seq = e->claim_seq++;
		struct slot *s = &e->slots[seq % (uint64_t)e->nslots];
		while (!e->err && seq >= e->write_seq + (uint64_t)e->nslots)
			pthread_cond_wait(&e->cond, &e->lock);
		if (e->err)
			break;
		uint64_t done = e->done;
		pthread_mutex_unlock(&e->lock);
		int ret;
		if (r->main && o->progress)
			o->progress(o->opaque, done, e->total);
		if (o->stop && *o->stop)
			ret = err_set(EINTR, "interrupted");
		else
			ret = convert_fill_slot(r, s, seq * e->batch);
		pthread_mutex_lock(&e->lock);
		if (ret < 0) {
			fail_locked(e, ret);
			break;
		}
		s->ready = true;
		s->pending = s->ncomp;
		e->filled++;
		pthread_cond_broadcast(&e->cond);
	}
	if (r->main && o->progress)
		report_rest(e);
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int convert_run(struct bdev *const *src, int n, struct bdev *dst, const struct convert_opts *o)
{
	struct engine e = {.src = src, .nsrc = n, .dst = dst, .o = o};
	pthread_t writer, workers[CONVERT_MAX_WORKERS], readers[CONVERT_MAX_READERS];
	struct reader rd[CONVERT_MAX_READERS];
	int nworkers = 0, started = 0, nreaders = 0, rstarted = 1, ret;

	ret = convert_opts_check(o);
	if (ret < 0)
		return ret;
	pthread_mutex_init(&e.lock, NULL);
	pthread_cond_init(&e.cond, NULL);
	ret = setup(&e, &nworkers, &nreaders);
	if (ret < 0)
		goto out;
	if (pthread_create(&writer, NULL, writer_main, &e)) {
		ret = err_set(EAGAIN, "could not start the writer thread");
		goto out;
	}
	for (; started < nworkers; started++)
		if (pthread_create(&workers[started], NULL, worker_main, &e))
			break;
	if (nworkers && !started)
		fail(&e, err_set(EAGAIN, "could not start compression threads"));
	for (int i = 0; i < nreaders; i++)
		rd[i] = (struct reader){.e = &e, .ext_src = -1, .main = i == 0};
	/* Readers that do not start leave their batches to the others (the caller's at least). */
	for (; rstarted < nreaders; rstarted++)
		if (pthread_create(&readers[rstarted], NULL, reader_main, &rd[rstarted]))
			break;
	reader_main(&rd[0]);
	for (int i = 1; i < rstarted; i++)
		pthread_join(readers[i], NULL);
	for (int i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	pthread_join(writer, NULL);
	ret = e.err;
	if (ret == 0)
		ret = bdev_flush(dst);
	else
		err_set(ret, "%s", e.msg);
	if (ret == 0 && o->progress)
		o->progress(o->opaque, e.total, e.total);
out:
	free_slots(&e);
	pthread_cond_destroy(&e.cond);
	pthread_mutex_destroy(&e.lock);
	return ret;
}

int convert_copy_range(struct bdev *src, struct bdev *dst, uint64_t off, uint64_t len, void *buf,
		       size_t buf_len)
{
	while (len) {
		size_t n = len < buf_len ? (size_t)len : buf_len;
		int ret = bdev_read(src, off, buf, n);
		if (ret == 0)
			ret = bdev_write(dst, off, buf, n);
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}
