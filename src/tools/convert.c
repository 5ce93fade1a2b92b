/*
 * The copy engine behind img convert.
 *
 * A pipeline of batches (a few MiB each) held in a ring of slots:
 *   reader (the caller's thread): block status + read + zero detection, fills a slot;
 *   workers (-m N, only with compression): compress the slot's clusters, any order;
 *   writer (one thread): writes each slot in guest order once all its clusters are done.
 * Reading, compressing and writing overlap, and compressed clusters reach the file in guest
 * order, so the output is as compact as a sequential writer makes it. One mutex guards the ring;
 * it is taken once per cluster (about a millisecond of zlib work), so it is never contended
 * enough to matter.
 *
 * No copy where none is needed: a whole unit that block status places at a file offset (raw
 * data, a plain qcow2 cluster) is read where it lies, through a read-only mapping of that file,
 * and a whole unit that block status calls zero points at one shared zero unit; only the rest
 * is read (or cleared) into the slot's buffer. The writer drops a slot's mapped pages once the
 * slot is written, so the process does not keep the source's page cache mapped.
 */
#include "tools/convert.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH_BYTES (4u << 20)
#define MAX_SLOTS   16
#define MAX_MAPS    8 /* source files mapped at once (one per layer of the chains read) */

enum unit_kind {
	U_SKIP, /* nothing to write: the target already reads these bytes */
	U_ZERO, /* write zeroes */
	U_DATA, /* write the data plainly */
	U_COMP, /* compress (a worker fills clen), then write */
};

struct unit {
	uint8_t kind;
	bool zero_known;    /* block status said zero: no need to scan */
	int64_t clen;	    /* U_COMP: compressed length, or -ENOSPC to write plainly */
	const uint8_t *src; /* the unit's bytes when not in the slot's buffer (mapped, or zero) */
};

struct slot {
	uint64_t off, len;
	uint8_t *in, *out, *cur;
	struct unit *u;
	size_t nunits;
	size_t *comp; /* indexes of the U_COMP units */
	size_t ncomp, next_claim, pending;
	struct iovec *mapped; /* the mapped ranges its units point into, dropped once written */
	size_t nmapped;
};

/* A source file mapped whole (read-only), for units read where they lie. */
struct fmap {
	const struct bdev *file;
	const uint8_t *p; /* NULL: the file cannot be mapped */
	uint64_t len;
};

struct engine {
	struct bdev *const *src;
	int nsrc;
	struct bdev *dst;
	const struct convert_opts *o;
	uint64_t total, unit;
	size_t batch;
	struct slot slots[MAX_SLOTS];
	int nslots;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t fill_seq, write_seq, work_seq;
	bool eof;
	int err;
	char msg[1024];
	uint64_t done;
	/* The source extent last looked up (a cache: one lookup serves many batches). */
	int ext_src;
	struct bdev_extent ext;
	struct fmap maps[MAX_MAPS];
	int nmaps;
	uint8_t *zero_unit; /* e->unit zero bytes */
};

/* The bytes of unit j of a slot, wherever they are. */
static const uint8_t *unit_data(const struct engine *e, const struct slot *s, size_t j)
{
	return s->u[j].src ? s->u[j].src : s->in + j * e->unit;
}

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

static bool is_zero(const uint8_t *p, size_t len)
{
	size_t i = 0;

	/* Data clusters almost always fail on the first word; zero ones run at memory speed. */
	for (; i + 32 <= len; i += 32) {
		uint64_t a, b, c, d;
		memcpy(&a, p + i, 8);
		memcpy(&b, p + i + 8, 8);
		memcpy(&c, p + i + 16, 8);
		memcpy(&d, p + i + 24, 8);
		if (a | b | c | d)
			return false;
	}
	for (; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* --salvage: read [off, off+n) of b sector by sector after a failed read; sectors that fail
 * again read as zeroes. Each run of failed sectors gets one warning, like qemu-img's (which
 * warns per sector). */
static int read_salvage(const struct convert_opts *o, struct bdev *b, uint64_t off, uint8_t *p,
			uint64_t n)
{
	uint64_t bad_start = 0, bad_len = 0;
	char why[160] = "";

	for (uint64_t done = 0; done < n;) {
		uint64_t step = 512 - (off + done) % 512;
		if (step > n - done)
			step = n - done;
		int ret = bdev_read(b, off + done, p + done, step);
		if (ret < 0) {
			if (!bad_len) {
				bad_start = off + done;
				snprintf(why, sizeof(why), "%s", err_msg());
			}
			bad_len += step;
			memset(p + done, 0, step);
		}
		done += step;
		if (bad_len && (ret == 0 || done == n)) {
			if (!o->quiet)
				fprintf(stderr,
					"ligero: warning: %s; %llu bytes from offset %llu taken as "
					"zeroes\n",
					why, (unsigned long long)bad_len,
					(unsigned long long)bad_start);
			bad_len = 0;
		}
	}
	err_clear();
	return 0;
}

/* The whole of file mapped read-only, or NULL (not mappable: read it instead). Reader only. */
static const uint8_t *file_map(struct engine *e, const struct bdev *file, uint64_t *len)
{
	struct stat st;

	for (int i = 0; i < e->nmaps; i++)
		if (e->maps[i].file == file) {
			*len = e->maps[i].len;
			return e->maps[i].p;
		}
	if (e->nmaps == MAX_MAPS)
		return NULL;
	struct fmap *m = &e->maps[e->nmaps++];
	m->file = file;
	m->p = NULL;
	m->len = 0;
	if (file->fd >= 0 && fstat(file->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= SIZE_MAX) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, file->fd, 0);
		if (p != MAP_FAILED) {
			madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
			m->p = p;
			m->len = (uint64_t)st.st_size;
		}
	}
	*len = m->len;
	return m->p;
}

/* Point the whole units inside [pos, pos+n) (data of extent e->ext) at the mapped file; returns
 * the number of leading bytes of the piece before the first such unit, or n if none could be
 * mapped. Units after the last mapped one are left for the caller to read (tail). */
static uint64_t map_units(struct engine *e, struct slot *s, uint64_t pos, uint64_t n, uint64_t soff,
			  uint64_t *tail)
{
	const struct bdev_extent *x = &e->ext;
	uint64_t flen, rel = pos - s->off;
	uint64_t first = (rel + e->unit - 1) / e->unit, last = (rel + n) / e->unit;

	*tail = 0;
	if (e->o->salvage || !(x->flags & BDEV_ST_OFFSET) || (x->flags & BDEV_ST_COMPRESSED) ||
	    !x->file || first >= last)
		return n;
	const uint8_t *base = file_map(e, x->file, &flen);
	uint64_t host = x->host_offset + (soff - x->offset); /* where pos lies in the file */
	if (!base || host > flen || n > flen - host)
		return n;
	for (uint64_t j = first; j < last; j++)
		s->u[j].src = base + host + (j * e->unit - rel);
	s->mapped[s->nmapped].iov_base = (void *)(base + host + (first * e->unit - rel));
	s->mapped[s->nmapped].iov_len = (last - first) * e->unit;
	s->nmapped++;
	*tail = rel + n - last * e->unit;
	return first * e->unit - rel;
}

/* Read [off, off+len) of the concatenated sources into the slot: whole units of data that lie
 * at a file offset are mapped rather than read, and units that block status reports as zero
 * are marked so that they need neither a read nor a scan. */
static int read_sources(struct engine *e, struct slot *s)
{
	uint64_t pos = s->off, end = s->off + s->len, base = 0;
	int i = 0;

	while (pos < end) {
		while (i < e->nsrc && pos >= base + e->src[i]->size)
			base += e->src[i++]->size;
		if (i >= e->nsrc)
			return err_set(EINVAL, "internal: read past the sources");
		struct bdev *b = e->src[i];
		uint64_t soff = pos - base, slen = b->size - soff;
		if (slen > end - pos)
			slen = end - pos;
		if (e->ext_src != i || soff < e->ext.offset ||
		    soff >= e->ext.offset + e->ext.length) {
			int ret = bdev_block_status_chain(b, soff, b->size - soff, &e->ext);
			if (ret < 0)
				return ret;
			e->ext_src = i;
		}
		uint64_t n = e->ext.offset + e->ext.length - soff;
		if (n > slen)
			n = slen;
		uint8_t *p = s->in + (pos - s->off);
		if (e->ext.flags & BDEV_ST_ZERO) {
			uint64_t rel = pos - s->off;
			uint64_t first = (rel + e->unit - 1) / e->unit;
			uint64_t last = (rel + n) / e->unit;
			/* whole units point at the shared zero unit; partial ones are cleared */
			if (first >= last) {
				memset(p, 0, n);
			} else {
				memset(p, 0, first * e->unit - rel);
				memset(s->in + last * e->unit, 0, rel + n - last * e->unit);
			}
			for (uint64_t j = first; j < last; j++)
				s->u[j].src = e->zero_unit;
			if (pos + n == s->off + s->len)
				last = s->nunits;
			for (uint64_t j = first; j < last; j++)
				s->u[j].zero_known = true;
		} else {
			uint64_t tail, head = map_units(e, s, pos, n, soff, &tail);
			int ret = bdev_read(b, soff, p, head);
			if (ret < 0 && e->o->salvage)
				ret = read_salvage(e->o, b, soff, p, head);
			if (ret == 0 && head < n && tail)
				ret = bdev_read(b, soff + n - tail, p + n - tail, tail);
			if (ret < 0)
				return ret;
		}
		pos += n;
	}
	return 0;
}

/* Units in a zero run shorter than -S are written as data after all. */
static void apply_min_sparse(struct engine *e, struct slot *s)
{
	size_t j = 0;

	while (j < s->nunits) {
		if (s->u[j].kind != U_ZERO && !(s->u[j].kind == U_SKIP && s->u[j].zero_known)) {
			j++;
			continue;
		}
		size_t k = j;
		uint64_t bytes = 0;
		while (k < s->nunits &&
		       (s->u[k].kind == U_ZERO || (s->u[k].kind == U_SKIP && s->u[k].zero_known))) {
			bytes += e->unit;
			k++;
		}
		if (!e->o->min_sparse || bytes < e->o->min_sparse)
			for (size_t m = j; m < k; m++)
				s->u[m].kind = U_DATA;
		j = k;
	}
}

static int fill_slot(struct engine *e, struct slot *s, uint64_t off)
{
	const struct convert_opts *o = e->o;
	int ret;

	s->off = off;
	s->len = e->total - off < e->batch ? e->total - off : e->batch;
	s->nunits = (s->len + e->unit - 1) / e->unit;
	s->ncomp = s->next_claim = s->pending = 0;
	s->nmapped = 0;
	memset(s->u, 0, s->nunits * sizeof(*s->u));
	ret = read_sources(e, s);
	if (ret == 0 && o->diff_target)
		ret = bdev_read(e->dst, s->off, s->cur, s->len);
	if (ret < 0)
		return ret;
	for (size_t j = 0; j < s->nunits; j++) {
		uint64_t at = j * e->unit;
		size_t ulen = s->len - at < e->unit ? s->len - at : e->unit;
		struct unit *u = &s->u[j];
		bool zero = u->zero_known || is_zero(unit_data(e, s, j), ulen);
		u->zero_known = zero;
		if (o->diff_target && !memcmp(unit_data(e, s, j), s->cur + at, ulen))
			u->kind = U_SKIP;
		else if (zero)
			u->kind = o->target_is_zero && !o->diff_target ? U_SKIP : U_ZERO;
		else
			u->kind = o->compress ? U_COMP : U_DATA;
		/* A compressed cluster replaces the whole cluster: a short last one is padded with
		 * zeroes, which is only right where the target reads zero beyond the sources. */
		if (u->kind == U_COMP && ulen < e->unit && s->off + s->len < e->dst->size &&
		    (!o->target_is_zero || o->diff_target))
			u->kind = U_DATA;
		if (o->diff_target && u->kind == U_SKIP)
			u->zero_known =
			    false; /* equal to the target: not a zero run to reconsider */
	}
	if (!o->compress)
		apply_min_sparse(e, s);
	else if (s->len % e->unit)
		memset(s->in + s->len, 0, e->unit - s->len % e->unit); /* see worker_main */
	for (size_t j = 0; j < s->nunits; j++)
		if (s->u[j].kind == U_COMP)
			s->comp[s->ncomp++] = j;
	return 0;
}

static void *worker_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct slot *s = NULL;
		size_t j = 0;
		while (!e->err && e->work_seq < e->fill_seq) {
			struct slot *c = &e->slots[e->work_seq % (uint64_t)e->nslots];
			if (c->next_claim < c->ncomp) {
				s = c;
				j = c->comp[c->next_claim++];
				break;
			}
			e->work_seq++;
		}
		if (e->err || (!s && e->eof))
			break;
		if (!s) {
			pthread_cond_wait(&e->cond, &e->lock);
			continue;
		}
		pthread_mutex_unlock(&e->lock);
		uint64_t at = j * e->unit;
		/* A short last cluster is compressed zero-padded to a whole one: readers
		 * (QEMU's too) inflate every compressed cluster to the full cluster size. */
		int64_t n =
		    bdev_compress(e->dst, s->out + at, e->unit, unit_data(e, s, j), e->unit);
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
			const uint8_t *p = unit_data(e, s, m);
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
		bool ready = e->write_seq < e->fill_seq && s->pending == 0;
		if (e->err || (e->eof && e->write_seq == e->fill_seq))
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

static int alloc_slots(struct engine *e, int workers)
{
	size_t nunits = e->batch / e->unit;

	e->zero_unit = calloc(1, e->unit);
	if (!e->zero_unit)
		return err_set(ENOMEM, "out of memory");
	e->nslots = workers * 2 + 2;
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

static int setup(struct engine *e, int *workers)
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
	*workers = o->compress ? (o->workers > 0 ? o->workers : convert_default_workers()) : 0;
	e->ext_src = -1;
	return alloc_slots(e, *workers);
}

int convert_run(struct bdev *const *src, int n, struct bdev *dst, const struct convert_opts *o)
{
	struct engine e = {.src = src, .nsrc = n, .dst = dst, .o = o};
	pthread_t writer, workers[CONVERT_MAX_WORKERS];
	int nworkers = 0, started = 0, ret;

	ret = convert_opts_check(o);
	if (ret < 0)
		return ret;
	pthread_mutex_init(&e.lock, NULL);
	pthread_cond_init(&e.cond, NULL);
	ret = setup(&e, &nworkers);
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
	for (uint64_t off = 0; off < e.total; off += e.batch) {
		pthread_mutex_lock(&e.lock);
		while (!e.err && e.fill_seq - e.write_seq >= (uint64_t)e.nslots)
			pthread_cond_wait(&e.cond, &e.lock);
		uint64_t done = e.done;
		bool failed = e.err != 0;
		pthread_mutex_unlock(&e.lock);
		if (failed)
			break;
		if (o->progress)
			o->progress(o->opaque, done, e.total);
		if (o->stop && *o->stop) {
			fail(&e, err_set(EINTR, "interrupted"));
			break;
		}
		struct slot *s = &e.slots[e.fill_seq % (uint64_t)e.nslots];
		ret = fill_slot(&e, s, off);
		pthread_mutex_lock(&e.lock);
		if (ret < 0) {
			fail_locked(&e, ret);
		} else {
			s->pending = s->ncomp;
			e.fill_seq++;
			pthread_cond_broadcast(&e.cond);
		}
		pthread_mutex_unlock(&e.lock);
		if (ret < 0)
			break;
	}
	pthread_mutex_lock(&e.lock);
	e.eof = true;
	pthread_cond_broadcast(&e.cond);
	pthread_mutex_unlock(&e.lock);
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
