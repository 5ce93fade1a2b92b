/*
 * Every write the qcow2 driver makes, metadata or data, survives what pwrite may do: return
 * early (a short write), fail with EINTR, or write nothing. The link wraps pwrite64 and
 * pwritev64 (-Wl,--wrap, see meson.build), so the library's calls come here first.
 *
 * A scenario that reaches every metadata write (create, L2 tables, refcount blocks, a larger
 * refcount table, a larger L1 table, snapshots, zeroes, discard, compressed clusters, amend,
 * a new backing file, a refcount rebuild, the autoclear bits) runs once as it is and once per
 * injection mode; the images must come out byte for byte the same. Then every write of the
 * scenario in turn, and all after it, fails (writing nothing, or with ENOSPC): the step that
 * made it must fail, with a message that names the file and the reason, never "Success".
 *
 * With LIGERO_INJECT_KEEP=DIR the images of each mode stay in DIR/MODE/ (DIR must exist), so
 * tests/system/test_img_inject.py can have qemu-img check them. The clock is wrapped too:
 * snapshots record the time, and the runs must write the same bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"

#define KiB 1024ULL
#define MiB (1024 * KiB)

ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t __real_pwritev64(int fd, const struct iovec *iov, int cnt, off_t off);
ssize_t __wrap_pwritev64(int fd, const struct iovec *iov, int cnt, off_t off);
int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_fdatasync(int fd);

enum mode {
	M_OFF,	 /* every call as it is */
	M_SHORT, /* every call cut short where it can be */
	M_EINTR, /* every other call fails with EINTR first */
	M_MIXED, /* EINTR, short, whole, in turn */
	M_FAIL,	 /* call fail_from and every later one fail; the ones before are counted */
};

static struct {
	enum mode mode;
	bool paused;	/* the test's own writes (damage on purpose) */
	long calls;	/* write calls seen */
	long injected;	/* calls cut short or interrupted */
	long fail_from; /* M_FAIL */
	int fail_errno; /* M_FAIL: 0 writes nothing and returns 0 */
	long failed;	/* M_FAIL: calls failed so far */
} inj;

/* Half of n, kept a multiple of 512 on an O_DIRECT descriptor (the kernel's short writes there
 * are whole blocks); n itself when it cannot be cut. */
static size_t cut_short(int fd, size_t n)
{
	int fl = fcntl(fd, F_GETFL);
	size_t m = (fl >= 0 && (fl & O_DIRECT)) ? (n / 2) & ~(size_t)511 : n / 2;

	if (!m)
		return n;
	inj.injected++;
	return m;
}

/* The counting run records where each write comes from: the first call made from each call
 * stack (a write site of the library, reached through a given path), and the calls each step
 * of the scenario made. */
static bool counting;
static struct {
	uintptr_t key;
	long first;
} sites[512];
static int nsites;

static void site_note(long k)
{
	void *frames[8];
	int n = backtrace(frames, 8);
	uintptr_t key = 0;

	for (int i = 2; i < n; i++) /* past inject() and the wrapper */
		key = key * 1000003u ^ (uintptr_t)frames[i];
	for (int i = 0; i < nsites; i++)
		if (sites[i].key == key)
			return;
	if (nsites < 512) {
		sites[nsites].key = key;
		sites[nsites++].first = k;
	}
}

/* What this write call does: 0 = write *len bytes (maybe cut), -1 = fail with errno set,
 * 1 = return 0 without writing. */
static int inject(int fd, size_t *len)
{
	if (inj.mode == M_OFF || inj.paused)
		return 0;
	long k = ++inj.calls;
	switch (inj.mode) {
	case M_FAIL:
		if (counting)
			site_note(k);
		if (k < inj.fail_from)
			return 0;
		inj.failed++;
		errno = inj.fail_errno;
		return inj.fail_errno ? -1 : 1;
	case M_EINTR:
	case M_MIXED:
		if (k % (inj.mode == M_EINTR ? 2 : 3) == 1) {
			inj.injected++;
			errno = EINTR;
			return -1;
		}
		if (inj.mode == M_MIXED && k % 3 == 2)
			*len = cut_short(fd, *len);
		return 0;
	case M_SHORT:
		*len = cut_short(fd, *len);
		return 0;
	default:
		return 0;
	}
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	int r = inject(fd, &n);

	if (r)
		return r < 0 ? -1 : 0;
	return __real_pwrite64(fd, buf, n, off);
}

ssize_t __wrap_pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	static struct iovec part[IOV_MAX];
	size_t total = 0, n;
	int m = 0;

	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	n = total;
	int r = inject(fd, &n);
	if (r)
		return r < 0 ? -1 : 0;
	if (n == total || cnt > IOV_MAX)
		return __real_pwritev64(fd, iov, cnt, off);
	for (size_t left = n; left; m++) {
		part[m] = iov[m];
		if (part[m].iov_len > left)
			part[m].iov_len = left;
		left -= part[m].iov_len;
	}
	return __real_pwritev64(fd, part, m, off);
}

int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	if (clk != CLOCK_REALTIME)
		return __real_clock_gettime(clk, ts);
	ts->tv_sec = 1700000000;
	ts->tv_nsec = 123456789;
	return 0;
}

/* What reaches the file is all this test looks at: a sync would only make it slow. */
int __wrap_fdatasync(int fd)
{
	(void)fd;
	return 0;
}

/* One run of the scenario: where it stopped and why. */
struct run {
	char dir[256];
	int ret;
	int line;	/* of the step that failed */
	char msg[1024]; /* err_msg() then */
	int swallowed;	/* line of a step that returned 0 although a write in it failed */
};

static void path(char *out, const struct run *r, const char *name)
{
	snprintf(out, 512, "%s/%s", r->dir, name);
}

/* The write calls each step made, in the counting run: [first, last]. */
static struct {
	long first, last;
} steps[128];
static int nsteps;

static void step_calls(long calls0)
{
	if (counting && inj.calls > calls0 && nsteps < 128) {
		steps[nsteps].first = calls0 + 1;
		steps[nsteps++].last = inj.calls;
	}
}

/* A step of the scenario: stop at the first failure, and notice a failed write that did not
 * fail its step. Uses `r`, `ret` and the label `out` of the calling function. */
#define STEP(expr)                                                                                 \
	do {                                                                                       \
		long failed0 = inj.failed, calls0 = inj.calls;                                     \
		ret = (expr);                                                                      \
		step_calls(calls0);                                                                \
		if (ret == 0 && !failed0 && inj.failed && !r->swallowed)                           \
			r->swallowed = __LINE__;                                                   \
		if (ret < 0) {                                                                     \
			r->line = __LINE__;                                                        \
			snprintf(r->msg, sizeof(r->msg), "%s", err_msg_or(ret));                   \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = aligned_alloc(4096, (len + 4095) & ~(size_t)4095);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
	return p;
}

/* A cluster that compresses: a short text repeated. */
static int write_compressed(struct bdev *bs, uint64_t off, size_t cs)
{
	uint8_t *src = malloc(cs), *dst = malloc(cs);
	int64_t n;
	int ret;

	assert_true(src && dst);
	for (size_t i = 0; i < cs; i++)
		src[i] = (uint8_t) "ligero writes this again "[(i + off / cs) % 25];
	n = bdev_compress(bs, dst, cs, src, cs);
	assert_true(n > 0);
	ret = bdev_write_compressed(bs, off, dst, (size_t)n);
	free(src);
	free(dst);
	return ret;
}

/* a.qcow2: 512-byte clusters and 64-bit refcounts, so a refcount block covers 64 clusters and
 * the first refcount table 4096: 2.5 MiB of data outgrow it. Through O_DIRECT where the file
 * system has it (oflags). */
static int image_a(struct run *r, int oflags)
{
	struct bdev_create_opts o = {.size = 4 * MiB, .cluster_size = 512, .refcount_bits = 64};
	uint8_t *data = pattern(2560 * KiB, 1);
	struct bdev *bs = NULL;
	char a[512];
	int ret;

	path(a, r, "a.qcow2");
	STEP(bdev_create(a, "qcow2", &o));
	STEP(bdev_open(&bs, a, "qcow2", BDEV_O_RDWR | oflags));
	STEP(bdev_write(bs, 0, data, 2560 * KiB));
	STEP(bdev_write(bs, 1000, data + 7, 100));
	STEP(bdev_truncate(bs, 8 * MiB)); /* 256 L1 entries: the table moves */
	STEP(bdev_snapshot_create(bs, "one"));
	STEP(bdev_write(bs, 5000, data + 3, 3000)); /* copy-on-write of shared tables */
	STEP(bdev_write(bs, 6 * MiB + 100, data, 5000));
	STEP(bdev_write_zeroes(bs, 64 * KiB, 4 * KiB, BDEV_ZERO_MAY_UNMAP));
	STEP(bdev_write_zeroes(bs, 128 * KiB + 100, 700, 0));
	STEP(bdev_discard(bs, 256 * KiB, 64 * KiB));
	for (uint64_t c = 0; c < 4; c++)
		STEP(write_compressed(bs, 3 * MiB + c * 512, 512));
	STEP(bdev_snapshot_create(bs, "two"));
	STEP(bdev_snapshot_delete(bs, "one"));
	STEP(bdev_flush(bs));
out:
	bdev_close(bs);
	free(data);
	return ret;
}

/* b.qcow2: preallocated metadata, compressed clusters gathered in the buffer of cache=unsafe,
 * lazy refcounts on (the dirty bit) and off, then compat=0.10 (zero clusters written out and
 * the header rewritten). */
static int image_b(struct run *r)
{
	struct bdev_create_opts o = {.size = 2 * MiB, .prealloc = BDEV_PREALLOC_METADATA};
	struct bdev_amend_opts lazy = {.compat = -1, .lazy_refcounts = 1};
	struct bdev_amend_opts eager = {.compat = -1, .lazy_refcounts = 0};
	struct bdev_amend_opts v2 = {.compat = 2, .lazy_refcounts = -1};
	uint8_t *data = pattern(64 * KiB, 2);
	struct bdev *bs = NULL;
	char b[512];
	int ret;

	path(b, r, "b.qcow2");
	STEP(bdev_create(b, "qcow2", &o));
	STEP(bdev_open(&bs, b, "qcow2", BDEV_O_RDWR | BDEV_O_UNSAFE));
	for (uint64_t c = 0; c < 3; c++)
		STEP(write_compressed(bs, c * 64 * KiB, 64 * KiB));
	STEP(bdev_write(bs, 300 * KiB, data, 1000));
	STEP(bdev_write_zeroes(bs, 512 * KiB, 128 * KiB, 0));
	STEP(bdev_amend(bs, &lazy));
	STEP(bdev_write(bs, 1 * MiB, data, 64 * KiB));
	STEP(bdev_amend(bs, &eager));
	STEP(bdev_amend(bs, &v2));
	STEP(bdev_flush(bs));
out:
	bdev_close(bs);
	free(data);
	return ret;
}

/* Change bytes of a closed image without the injection. */
static void damage(const char *file, uint64_t off, uint64_t v)
{
	int fd = open(file, O_WRONLY);
	uint8_t b[8];

	assert_true(fd >= 0);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	inj.paused = true;
	assert_int_equal(pwrite(fd, b, 8, (off_t)off), 8);
	inj.paused = false;
	close(fd);
}

static uint64_t file_be64(const char *file, uint64_t off)
{
	int fd = open(file, O_RDONLY);
	uint8_t b[8];
	uint64_t v = 0;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
	close(fd);
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* c.qcow2: a refcount table entry aimed at a data cluster, which check repairs by rebuilding
 * the refcount structures; then the autoclear bits, cleared by a writer, and a new backing file
 * (the header rewritten). */
static int image_c(struct run *r)
{
	struct bdev_create_opts o = {.size = 4 * MiB, .cluster_size = 4096};
	struct bdev_check_result res = {0};
	struct bdev_extent ext = {0};
	uint8_t *data = pattern(320 * KiB, 3);
	struct bdev *bs = NULL;
	char c[512];
	int ret;

	path(c, r, "c.qcow2");
	STEP(bdev_create(c, "qcow2", &o));
	STEP(bdev_open(&bs, c, "qcow2", BDEV_O_RDWR));
	STEP(bdev_write(bs, 0, data, 320 * KiB));
	STEP(bdev_flush(bs));
	STEP(bdev_block_status(bs, 0, 4096, &ext));
	bdev_close(bs);
	bs = NULL;
	assert_true(ext.flags & BDEV_ST_OFFSET);
	damage(c, file_be64(c, 48) + 8, ext.host_offset);
	STEP(bdev_open(&bs, c, "qcow2",
		       BDEV_O_RDWR | BDEV_O_CHECK | BDEV_O_NO_REPAIR | BDEV_O_NO_BACKING));
	STEP(bdev_check(bs, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res));
	STEP(bdev_flush(bs));
	bdev_close(bs);
	bs = NULL;
	damage(c, 88, 1); /* autoclear: the bitmaps bit, which we do not keep */
	STEP(bdev_open(&bs, c, "qcow2", BDEV_O_RDWR | BDEV_O_NO_BACKING));
	STEP(bdev_set_backing(bs, "b.qcow2", "qcow2"));
	STEP(bdev_flush(bs));
out:
	bdev_check_result_free(&res); /* failed or not */
	bdev_close(bs);
	free(data);
	return ret;
}

static const char *const names[] = {"a.qcow2", "b.qcow2", "c.qcow2"};

/* Can files in dir be opened with O_DIRECT? (tmpfs, for one, refuses.) */
static bool direct_works(const char *dir)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/direct-probe", dir);
	int fd = open(p, O_RDWR | O_CREAT | O_DIRECT, 0644);

	if (fd >= 0)
		close(fd);
	unlink(p);
	return fd >= 0;
}

static char base[200];

static void scenario(struct run *r, const char *name)
{
	snprintf(r->dir, sizeof(r->dir), "%s/%s", base, name);
	assert_int_equal(mkdir(r->dir, 0755), 0);
	r->ret = image_b(r);
	if (r->ret == 0)
		r->ret = image_a(r, direct_works(r->dir) ? BDEV_O_DIRECT : 0);
	if (r->ret == 0)
		r->ret = image_c(r);
}

static void rm_rf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void assert_same_file(const char *p1, const char *p2)
{
	FILE *f1 = fopen(p1, "rb"), *f2 = fopen(p2, "rb");
	long pos = 0;
	int c1, c2;

	assert_non_null(f1);
	assert_non_null(f2);
	do {
		c1 = getc(f1);
		c2 = getc(f2);
		if (c1 != c2)
			fail_msg("%s and %s differ at byte %ld", p1, p2, pos);
		pos++;
	} while (c1 != EOF);
	fclose(f1);
	fclose(f2);
}

static int setup(void **state)
{
	const char *keep = getenv("LIGERO_INJECT_KEEP");

	(void)state;
	/* not /tmp by default: tmpfs has no O_DIRECT; the build directory's file system has */
	if (keep)
		snprintf(base, sizeof(base), "%s", keep);
	else
		snprintf(base, sizeof(base), "inject-XXXXXX");
	return keep || mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (!getenv("LIGERO_INJECT_KEEP"))
		rm_rf(base);
	return 0;
}

static void run_mode(enum mode m, const char *name, struct run *r)
{
	memset(&inj, 0, sizeof(inj));
	inj.mode = m;
	scenario(r, name);
	inj.mode = M_OFF;
	if (r->ret < 0)
		fail_msg("%s: line %d: %s", name, r->line, r->msg);
}

/* Short writes and EINTR change nothing in what reaches the file. */
static void test_same_bytes(void **state)
{
	static const struct {
		enum mode m;
		const char *name;
	} modes[] = {{M_SHORT, "short"}, {M_EINTR, "eintr"}, {M_MIXED, "mixed"}};
	struct run ref = {0};
	(void)state;

	run_mode(M_OFF, "plain", &ref);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct run r = {0};
		run_mode(modes[i].m, modes[i].name, &r);
		/* the injection did happen, and on most calls */
		assert_true(inj.injected > 100);
		assert_true(inj.injected * 4 > inj.calls);
		for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
			char p1[512], p2[512];
			path(p1, &ref, names[f]);
			path(p2, &r, names[f]);
			assert_same_file(p1, p2);
		}
	}
}

/* Write number k of the scenario, and all after it, fail: the step fails with a message. */
static void fail_from(long k, int errnum, long *total)
{
	struct run r = {0};
	char name[64];

	snprintf(name, sizeof(name), "fail-%ld-%d", k, errnum);
	memset(&inj, 0, sizeof(inj));
	inj.mode = M_FAIL;
	inj.fail_from = k;
	inj.fail_errno = errnum;
	scenario(&r, name);
	inj.mode = M_OFF;
	*total = inj.calls;
	if (inj.failed) {
		if (r.ret >= 0)
			fail_msg("write %ld failed (%s) but the scenario succeeded (line %d)", k,
				 errnum ? strerror(errnum) : "nothing written", r.swallowed);
		if (r.swallowed)
			fail_msg("write %ld failed but the step at line %d returned 0", k,
				 r.swallowed);
		if (strstr(r.msg, "Success") || !strstr(r.msg, r.dir) ||
		    !strstr(r.msg, errnum ? strerror(errnum) : "short write"))
			fail_msg("write %ld: line %d: bad message: %s", k, r.line, r.msg);
	}
	rm_rf(r.dir);
}

/* Is write k one the sweep tries: the first from each call stack, the first three and the last
 * of every step, and every 37th (a step that writes clusters makes hundreds alike). */
static bool sampled(long k)
{
	for (int i = 0; i < nsites; i++)
		if (k == sites[i].first)
			return true;
	for (int i = 0; i < nsteps; i++)
		if ((k >= steps[i].first && k < steps[i].first + 3) || k == steps[i].last)
			return true;
	return k % 37 == 0;
}

static void test_failures(void **state)
{
	long total = 0, tried = 0;
	(void)state;

	counting = true;
	fail_from(LONG_MAX, 0, &total); /* counts the calls and where each step made them */
	counting = false;
	assert_true(total > 300);
	assert_true(nsteps > 25);
	for (long k = 1; k <= total; k++) {
		if (!sampled(k))
			continue;
		long seen;
		fail_from(k, tried++ % 2 ? ENOSPC : 0, &seen);
	}
	print_message("%ld write calls from %d call stacks in %d steps, %ld made to fail\n", total,
		      nsites, nsteps, tried);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_bytes),
	    cmocka_unit_test(test_failures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
