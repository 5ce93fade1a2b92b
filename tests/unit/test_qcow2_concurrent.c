/*
 * qcow2 readv/writev from several threads at once, as virtio-blk I/O threads issue them: data
 * moves outside the driver lock, fresh clusters are written before their L2 entries, and
 * discard, zeroes, flush and snapshots drain the transfers first. Every thread owns chunks of
 * the disk (interleaved: neighbours share clusters and L2 tables, most edges are mid-cluster)
 * and checks its reads against a model; "shared" chunks are written by all writers with the
 * same bytes, so overlapping allocations leave one defined result and a cluster allocated
 * twice shows up as a leak. At the end the model must match ligero, qemu-img compare, and
 * qemu-img check must find nothing (leaks included), and the last snapshot must hold what the
 * model held when it was taken. Breaking the overlap check of allocations (alloc_overlaps),
 * setting L2 entries before the data is written, or writing shared clusters in place makes
 * this test fail. check_during_writes_4k runs bdev_check among the writers: a check that
 * waited only for their transfers (not for whole write requests) would run in the middle of a
 * write whose replaced clusters are not yet freed and report them leaked (refcount 2,
 * reference 1 after a snapshot).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"

#define SIZE	      (64ULL << 20)
#define BSIZE	      ((48ULL << 20) + 1536) /* the backing file ends mid-cluster: past it, zeroes */
#define OPS	      3000		     /* per thread */
#define PHASE	      25 /* ops between barriers; each phase works in one zone */
#define ZONE_CLUSTERS 32 /* small enough that all threads collide in it */
#define NTHREADS      4

/* Chunk owners: thread ids, then classes nobody owns alone. */
enum { RO_BACKING = 8, RO_WRITTEN, SHARED };
enum { WRITER, READER, EXCL };

struct conc_case {
	uint32_t cs;
	const char *bfmt;
	bool mixed; /* else disjoint: 4 writers */
	bool check; /* mixed, with bdev_check where the others flush */
};

struct chunk {
	uint64_t start, len;
	int owner;
};

struct run {
	uint32_t cs;
	bool check;
	struct bdev *bs;
	uint8_t *model, *snap; /* snap: the content of the newest snapshot */
	struct chunk *ch;
	size_t nch;
	pthread_barrier_t bar;
};

struct worker {
	struct run *r;
	int id, role, op; /* id -1: the main thread's final check of every byte */
	uint64_t rng, zone;
	uint8_t *buf;
	struct iovec iov[8];
	char err[512];
};

/* Threads record their first failure: cmocka's asserts only work in the main thread. */
#define FAIL_W(w, ...) (void)((w)->err[0] || snprintf((w)->err, sizeof((w)->err), __VA_ARGS__))
#define BK(o)	       ((o) < BSIZE ? pat(o) : 0) /* the backing file's byte, zero past its end */
#define PAT2(o)	       (pat(o) ^ 0x5c)		  /* what every writer puts into shared chunks */

/* A copy into the page cache takes microseconds: without a yield in each data transfer (the
 * driver moves only data with preadv/pwritev; these replace libc's for the whole binary), few
 * transfers would overlap another thread's metadata work. */
ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	sched_yield();
	return syscall(SYS_preadv, fd, iov, n, (long)off, (long)((uint64_t)off >> 32));
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	sched_yield();
	return syscall(SYS_pwritev, fd, iov, n, (long)off, (long)((uint64_t)off >> 32));
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL); /* splitmix64: seeded, one per thread */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Depends on every bit of the offset, so data from a wrong place never matches. */
static uint8_t pat(uint64_t o)
{
	return (uint8_t)(((o ^ (o >> 17)) * 0x9e3779b97f4a7c15ULL) >> 56);
}

/* Chunks from a few bytes to several clusters; a third end on a cluster boundary, so the next
 * one starts aligned and the whole-cluster paths (fresh runs, in place) run too. */
static void make_chunks(struct run *r, const int *classes, int nclasses)
{
	uint64_t s = r->cs, cs = r->cs, cap = SIZE / cs * 4 + 16;

	r->ch = calloc(cap, sizeof(*r->ch));
	assert_non_null(r->ch);
	for (uint64_t off = 0; off < SIZE;) {
		/* part of a cluster, whole clusters, clusters and a part, a few bytes */
		uint64_t x = rnd(&s), k = x >> 8,
			 end = off + (x % 4 == 0   ? 1 + k % cs
				      : x % 4 == 1 ? cs * (1 + k % 4)
				      : x % 4 == 2 ? cs * (1 + k % 8) + k / 8 % cs
						   : 1 + k % 700);
		if ((x >> 60) % 3 == 0)
			end = (end + cs - 1) & ~(cs - 1);
		end = end < SIZE ? end : SIZE;
		assert_true(r->nch < cap);
		r->ch[r->nch] = (struct chunk){off, end - off, classes[r->nch % (size_t)nclasses]};
		r->nch++;
		off = end;
	}
}

static size_t find_chunk(const struct run *r, uint64_t off)
{
	size_t lo = 0, hi = r->nch - 1;

	while (lo < hi) {
		size_t mid = (lo + hi + 1) / 2;
		if (r->ch[mid].start <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* All threads compute the same zone per phase; some phases go to the backing file's end and
 * to the disk's end. */
static uint64_t zone_of(const struct run *r, int phase)
{
	uint64_t zl = (uint64_t)r->cs * ZONE_CLUSTERS, p = (uint64_t)phase;

	if (phase % 10 == 3)
		return (BSIZE - zl / 2) / zl * zl;
	return phase % 10 == 7 ? SIZE - zl : rnd(&p) % (SIZE / zl) * zl;
}

static const struct chunk *pick_chunk(struct worker *w, int owner)
{
	const struct run *r = w->r;
	size_t i = find_chunk(r, w->zone + rnd(&w->rng) % ((uint64_t)r->cs * ZONE_CLUSTERS));

	for (size_t k = 0; k < r->nch; k++, i = (i + 1) % r->nch)
		if (r->ch[i].owner == owner)
			return &r->ch[i];
	abort(); /* unreachable: every class recurs within a few chunks */
}

/* A range inside a chunk: all of it, its whole clusters, or a random piece. */
static void sub_range(struct worker *w, const struct chunk *c, uint64_t *off, uint64_t *len)
{
	uint64_t cs = w->r->cs, x = rnd(&w->rng);
	uint64_t a = (c->start + cs - 1) & ~(cs - 1), b = (c->start + c->len) & ~(cs - 1);

	*off = c->start;
	*len = c->len;
	if (x % 4 == 1 && b > a) {
		*off = a;
		*len = b - a;
	} else if (x % 4 >= 2) {
		*off = c->start + (x >> 8) % c->len;
		uint64_t max = c->start + c->len - *off;
		*len = 1 + (x >> 32) % (max < 3 * cs ? max : 3 * cs);
	}
}

/* Cut len bytes of buf into 1..8 pieces of odd sizes. */
static int cut(struct worker *w, uint8_t *buf, size_t len)
{
	int n = 0, max = 1 + (int)(rnd(&w->rng) % 8);

	for (size_t off = 0; off < len; n++) {
		size_t l = len - off;
		if (n < max - 1 && l > 1)
			l = 1 + rnd(&w->rng) % (l - 1);
		w->iov[n] = (struct iovec){buf + off, l};
		off += l;
	}
	return n;
}

static void write_range(struct worker *w, uint64_t off, uint64_t len, bool shared)
{
	for (uint64_t i = 0, v = 0; i < len; i++, v >>= 8) {
		v = i % 8 ? v : rnd(&w->rng);
		w->buf[i] = shared ? PAT2(off + i) : (uint8_t)v;
	}
	int n = cut(w, w->buf, len);
	if (bdev_writev(w->r->bs, off, w->iov, n) < 0)
		FAIL_W(w, "writev %" PRIu64 "+%" PRIu64 ": %s", off, len, err_msg());
	else if (!shared)
		memcpy(w->r->model + off, w->buf, len);
	else /* the others may store the same bytes at once: atomics keep that defined */
		for (uint64_t o = off; o < off + len; o++)
			__atomic_store_n(&w->r->model[o], PAT2(o), __ATOMIC_RELAXED);
}

/* Read a range and check what can be known of it while others write: the reader's own bytes
 * and read-only chunks exactly, shared ones as old or new content, the rest not at all. */
static void read_check(struct worker *w, uint64_t off, uint64_t len)
{
	const struct run *r = w->r;
	int n = cut(w, w->buf, len);

	memset(w->buf, 0xee, len);
	if (bdev_readv(r->bs, off, w->iov, n) < 0) {
		FAIL_W(w, "readv %" PRIu64 "+%" PRIu64 ": %s", off, len, err_msg());
		return;
	}
	for (size_t i = find_chunk(r, off); i < r->nch && r->ch[i].start < off + len; i++) {
		const struct chunk *c = &r->ch[i];
		bool final = w->id < 0, shared = c->owner == SHARED && !final;
		if (!final && c->owner != w->id && c->owner < RO_BACKING)
			continue;
		for (uint64_t o = c->start > off ? c->start : off;
		     o < c->start + c->len && o < off + len; o++) {
			uint8_t g = w->buf[o - off], want = shared ? PAT2(o) : r->model[o];
			if (g != want && !(shared && g == BK(o))) {
				FAIL_W(w, "byte %" PRIu64 " (owner %d) read 0x%02x, want 0x%02x", o,
				       c->owner, g, want);
				return;
			}
		}
	}
}

static void read_zone(struct worker *w)
{
	uint64_t cs = w->r->cs, off = w->zone + rnd(&w->rng) % (cs * ZONE_CLUSTERS);
	uint64_t len = 1 + rnd(&w->rng) % (2 * cs);

	read_check(w, off, len < SIZE - off ? len : SIZE - off);
}

/* Where the others allocate: reads must find old or new bytes, never a cluster's before. */
static void read_shared(struct worker *w)
{
	uint64_t off, len;

	sub_range(w, pick_chunk(w, SHARED), &off, &len);
	read_check(w, off, len);
}

static void writer_op(struct worker *w)
{
	uint64_t x = rnd(&w->rng) % 20, off, len;

	if (x < 12) {
		sub_range(w, pick_chunk(w, x < 3 ? SHARED : w->id), &off, &len);
		write_range(w, off, len, x < 3);
	} else if (x < 15) {
		sub_range(w, pick_chunk(w, w->id), &off, &len);
		read_check(w, off, len);
	} else if (x < 18) {
		read_shared(w);
	} else {
		read_zone(w);
	}
}

/* The others wait at a barrier meanwhile: the snapshot holds what the model holds now. */
static void snapshot_create(struct worker *w)
{
	char name[16];

	snprintf(name, sizeof(name), "s%d", w->op / 1000);
	if (bdev_snapshot_create(w->r->bs, name) < 0)
		FAIL_W(w, "snapshot %s: %s", name, err_msg());
	memcpy(w->r->snap, w->r->model, SIZE);
}

/* bdev_check drains the others like discard does: it must find nothing amiss meanwhile. */
static int check_clean(struct worker *w)
{
	struct bdev_check_result res = {0};
	int ret = bdev_check(w->r->bs, 0, &res);

	if (ret == 0 && (res.leaks || res.corruptions))
		FAIL_W(w, "check at op %d: %" PRId64 " leaks, %" PRId64 " corruptions: %s", w->op,
		       res.leaks, res.corruptions, res.nmessages ? res.messages[0] : "");
	bdev_check_result_free(&res);
	return ret;
}

/* Discard and zeroes free or re-point clusters next to the others' transfers; a snapshot
 * makes every cluster shared, so the writers' next writes copy them, and deleting it frees
 * the copies' originals. */
static void excl_op(struct worker *w)
{
	struct run *r = w->r;
	uint64_t x = rnd(&w->rng) % 10, off, len, cs = r->cs;
	char name[16];
	int ret = 0;

	if (w->op % 1000 == 750 && w->op > 1000) {
		snprintf(name, sizeof(name), "s%d", w->op / 1000 - 1);
		if (bdev_snapshot_delete(r->bs, name) < 0)
			FAIL_W(w, "delete %s: %s", name, err_msg());
		return;
	}
	sub_range(w, pick_chunk(w, w->id), &off, &len);
	if (x < 4) {
		write_range(w, off, len, false);
	} else if (x < 6) {
		ret = bdev_write_zeroes(r->bs, off, len, x == 5 ? BDEV_ZERO_MAY_UNMAP : 0);
		if (ret == 0)
			memset(r->model + off, 0, len);
	} else if (x < 8) {
		/* whole clusters only; with a backing file (v3) they then read as zero */
		uint64_t a = (off + cs - 1) & ~(cs - 1), b = (off + len) & ~(cs - 1);
		ret = bdev_discard(r->bs, off, len);
		if (ret == 0 && b > a)
			memset(r->model + a, 0, b - a);
	} else if (x == 8) {
		ret = r->check ? check_clean(w) : bdev_flush(r->bs);
	} else {
		read_check(w, off, len);
	}
	if (ret < 0)
		FAIL_W(w, "op %d at %" PRIu64 "+%" PRIu64 ": %s", w->op, off, len, err_msg());
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (w->op = 0; w->op < OPS; w->op++) {
		if (w->op % PHASE == 0) {
			pthread_barrier_wait(&w->r->bar);
			w->zone = zone_of(w->r, w->op / PHASE);
		}
		if (w->op % 1000 == 500) { /* a snapshot of known content: nobody writes */
			if (w->role == EXCL && !w->err[0])
				snapshot_create(w);
			pthread_barrier_wait(&w->r->bar);
		}
		if (w->err[0])
			continue; /* keep meeting the barrier so the others finish */
		if (w->role == WRITER)
			writer_op(w);
		else if (w->role == READER && w->op % 2)
			read_zone(w);
		else if (w->role == READER)
			read_shared(w);
		else
			excl_op(w);
	}
	return NULL;
}

/* Every byte, read in pieces of odd sizes like the threads read. */
static void verify(struct run *r)
{
	struct worker v = {.r = r, .id = -1, .rng = 1, .buf = malloc(1 << 20)};

	assert_non_null(v.buf);
	for (uint64_t off = 0; off < SIZE && !v.err[0]; off += 1 << 20)
		read_check(&v, off, 1 << 20);
	free(v.buf);
	if (v.err[0])
		fail_msg("%s", v.err);
}

static void make_image(const char *path, const char *fmt, const uint8_t *data, uint64_t size)
{
	struct bdev_create_opts o = {.size = size};
	struct bdev *bs;

	assert_int_equal(bdev_create(path, fmt, &o), 0);
	assert_int_equal(bdev_open(&bs, path, fmt, BDEV_O_RDWR), 0);
	assert_int_equal(bdev_write(bs, 0, data, size), 0);
	bdev_close(bs);
}

__attribute__((format(printf, 1, 2))) static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("failed: %s", cmd);
}

static char dir[64];
static struct run cur; /* teardown frees it, also after a failure */

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/ligero-conc-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	if (cur.bs)
		bdev_close(cur.bs);
	free(cur.ch);
	free(cur.model);
	free(cur.snap);
	cur = (struct run){0};
	sh("rm -rf '%s'", dir); /* the images are big */
	return 0;
}

/* Written before the threads start: readers then find owned clusters next to the writers'. */
static void prewrite(struct run *r)
{
	for (size_t i = 0; i < r->nch; i++) {
		const struct chunk *c = &r->ch[i];
		uint64_t s = i;
		for (uint64_t k = 0; k < c->len && c->owner == RO_WRITTEN; k++)
			r->model[c->start + k] = (uint8_t)rnd(&s);
		if (c->owner == RO_WRITTEN)
			assert_int_equal(bdev_write(r->bs, c->start, r->model + c->start, c->len),
					 0);
	}
}

static void run_threads(struct run *r, bool mixed)
{
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];

	pthread_barrier_init(&r->bar, NULL, NTHREADS);
	for (int t = 0; t < NTHREADS; t++) {
		w[t] = (struct worker){.r = r, .id = t, .rng = 0x5eed0000ULL + t * 977 + r->cs};
		w[t].role = !mixed || t < 2 ? WRITER : t == 2 ? EXCL : READER;
		w[t].buf = malloc(12 * (size_t)r->cs + 1024);
		assert_non_null(w[t].buf);
		assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&r->bar);
	for (int t = 0; t < NTHREADS; t++)
		free(w[t].buf);
	for (int t = 0; t < NTHREADS; t++)
		if (w[t].err[0])
			fail_msg("thread %d: %s", t, w[t].err);
}

static void run_case(void **state)
{
	static const int disjoint[] = {0, 1, 2, 3, SHARED};
	static const int mixed[] = {0, 1, RO_BACKING, 2, 0, RO_WRITTEN, 1, SHARED};
	const struct conc_case *c = *state;
	struct run *r = &cur;
	char top[128], base[128];

	*r = (struct run){
	    .cs = c->cs, .check = c->check, .model = malloc(SIZE), .snap = malloc(SIZE)};
	assert_true(r->model && r->snap);
	for (uint64_t o = 0; o < SIZE; o++)
		r->model[o] = BK(o);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	snprintf(base, sizeof(base), "%s/base.%s", dir, c->bfmt);
	make_image(base, c->bfmt, r->model, BSIZE);
	struct bdev_create_opts o = {.size = SIZE,
				     .cluster_size = c->cs,
				     .backing_fmt = c->bfmt,
				     .backing_file = strrchr(base, '/') + 1};
	assert_int_equal(bdev_create(top, "qcow2", &o), 0);
	if (bdev_open(&r->bs, top, "qcow2", BDEV_O_RDWR) < 0)
		fail_msg("open: %s", err_msg());
	make_chunks(r, c->mixed ? mixed : disjoint, c->mixed ? 8 : 5);
	prewrite(r);
	run_threads(r, c->mixed);
	verify(r);
	bdev_close(r->bs);
	r->bs = NULL;
	/* the oracle: metadata clean (exit 3 would be leaks, 2 corruption), content the model's */
	sh("qemu-img check -q -f qcow2 %s >&2", top);
	snprintf(base, sizeof(base), "%s/model.raw", dir);
	make_image(base, "raw", r->model, SIZE);
	sh("qemu-img compare -q -f qcow2 -F raw %s %s >&2", top, base);
	assert_int_equal(bdev_open(&r->bs, top, "qcow2", c->mixed ? BDEV_O_RDWR : 0), 0);
	verify(r);
	if (c->mixed) { /* the last snapshot holds what the model held when it was taken */
		snprintf(base, sizeof(base), "s%d", (OPS - 501) / 1000);
		assert_int_equal(bdev_snapshot_apply(r->bs, base), 0);
		memcpy(r->model, r->snap, SIZE);
		verify(r);
	}
}

/* disjoint: 4 writers; mixed: 2 writers, a reader, a thread with discard, zeroes, flush and
 * snapshots. Both cluster sizes, both kinds of backing file. */
static const struct conc_case cases[] = {{65536, "raw", false, false},
					 {4096, "qcow2", false, false},
					 {65536, "qcow2", true, false},
					 {4096, "raw", true, false},
					 {4096, "raw", true, true}};

int main(void)
{
	const struct CMUnitTest tests[] = {
	    {"disjoint_64k_raw", run_case, setup, teardown, (void *)&cases[0]},
	    {"disjoint_4k_qcow2", run_case, setup, teardown, (void *)&cases[1]},
	    {"mixed_64k_qcow2", run_case, setup, teardown, (void *)&cases[2]},
	    {"mixed_4k_raw", run_case, setup, teardown, (void *)&cases[3]},
	    {"check_during_writes_4k", run_case, setup, teardown, (void *)&cases[4]},
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
