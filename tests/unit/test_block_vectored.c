/*
 * Scatter-gather I/O (bdev_readv/bdev_writev): the bytes that reach the image are the bytes a
 * plain bdev_write of the same buffer stores, and reads give back what bdev_read gives, for raw
 * (one preadv/pwritev, buffered and O_DIRECT) and qcow2 (its own vectored path); pieces of odd
 * sizes and offsets, reads past a raw file's end, and the probed-raw header guard.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"

#define SIZE (4u << 20)

static char dir[64];

static int setup(void **state)
{
	(void)state;
	/* not /tmp: tmpfs has no O_DIRECT; the build directory's file system usually has */
	snprintf(dir, sizeof(dir), "vectored-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

/* Cut buf into n pieces of sizes taken from sizes[], cycling. */
static int cut(struct iovec *iov, uint8_t *buf, size_t len, const size_t *sizes, int nsizes)
{
	int n = 0;

	for (size_t off = 0; off < len; n++) {
		size_t l = sizes[n % nsizes];
		if (l > len - off)
			l = len - off;
		iov[n].iov_base = buf + off;
		iov[n].iov_len = l;
		off += l;
	}
	return n;
}

static void open_image(struct bdev **bs, const char *name, const char *fmt, int flags)
{
	char path[128];
	struct bdev_create_opts o = {.size = SIZE};

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(bdev_create(path, fmt, &o), 0);
	assert_int_equal(bdev_open(bs, path, fmt, BDEV_O_RDWR | flags), 0);
}

/* Write with pieces, read back whole; write whole, read back with other pieces. */
static void round_trip(struct bdev *bs, const size_t *sizes, int nsizes, uint64_t off, size_t len)
{
	size_t alloc = (len + 4095) & ~(size_t)4095; /* aligned_alloc: a multiple of 4096 */
	uint8_t *src = aligned_alloc(4096, alloc), *dst = aligned_alloc(4096, alloc);
	struct iovec iov[BDEV_IOV_MAX];
	int n;

	assert_non_null(src);
	assert_non_null(dst);
	fill(src, len, (unsigned)off);
	n = cut(iov, src, len, sizes, nsizes);
	assert_int_equal(bdev_writev(bs, off, iov, n), 0);
	memset(dst, 0xaa, len);
	assert_int_equal(bdev_read(bs, off, dst, len), 0);
	assert_memory_equal(src, dst, len);

	fill(src, len, (unsigned)off + 7);
	assert_int_equal(bdev_write(bs, off, src, len), 0);
	memset(dst, 0xaa, len);
	n = cut(iov, dst, len, sizes + 1, nsizes - 1);
	assert_int_equal(bdev_readv(bs, off, iov, n), 0);
	assert_memory_equal(src, dst, len);
	free(src);
	free(dst);
}

static const size_t pages[] = {4096, 4096, 8192, 4096};
static const size_t odd[] = {512, 1536, 4096, 512, 3072, 65536, 1024};
static const size_t tiny[] = {1, 511, 7, 4096, 3};

static void test_raw_buffered(void **state)
{
	struct bdev *bs;

	(void)state;
	open_image(&bs, "buffered.raw", "raw", 0);
	assert_true(bdev_vectored(bs));
	round_trip(bs, pages, 4, 0, 1u << 20);
	round_trip(bs, odd, 7, 3 * 512, 300 * 1024);
	round_trip(bs, tiny, 5, 12345, 9000);
	bdev_close(bs);
}

static void test_raw_direct(void **state)
{
	struct bdev *bs;

	(void)state;
	open_image(&bs, "direct.raw", "raw", BDEV_O_DIRECT);
	/* aligned pieces take the O_DIRECT descriptor (where the file system has it), the others
	 * the buffered one; the bytes are the same either way */
	round_trip(bs, pages, 4, 1u << 20, 1u << 20);
	round_trip(bs, odd, 7, 512, 200 * 1024);
	round_trip(bs, tiny, 5, 777, 5000);
	bdev_close(bs);
}

static void test_qcow2_pieces(void **state)
{
	struct bdev *bs;

	(void)state;
	open_image(&bs, "pieces.qcow2", "qcow2", 0);
	assert_true(bdev_vectored(bs));
	round_trip(bs, pages, 4, 60 * 1024, 512 * 1024); /* crosses cluster boundaries */
	round_trip(bs, odd, 7, 0, 300 * 1024);
	bdev_close(bs);
}

static void test_raw_tail_reads_zero(void **state)
{
	char path[128];
	struct bdev *bs;
	uint8_t buf[1024], want[1024];
	struct iovec iov[3] = {{buf, 100}, {buf + 100, 900}, {buf + 1000, 24}};
	int fd;

	(void)state;
	/* a 1000-byte file is a 1024-byte disk: the last 24 bytes read as zeroes */
	snprintf(path, sizeof(path), "%s/short.raw", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_true(fd >= 0);
	fill(want, 1000, 3);
	memset(want + 1000, 0, 24);
	assert_int_equal(write(fd, want, 1000), 1000);
	close(fd);
	assert_int_equal(bdev_open(&bs, path, "raw", 0), 0);
	assert_int_equal(bs->size, 1024);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(bdev_readv(bs, 0, iov, 3), 0);
	assert_memory_equal(buf, want, sizeof(buf));
	/* and past the disk's end is refused */
	iov[2].iov_len = 25;
	assert_int_equal(bdev_readv(bs, 0, iov, 3), -EINVAL);
	bdev_close(bs);
}

static void test_probed_raw_keeps_header_guard(void **state)
{
	char path[128];
	struct bdev *bs;
	uint8_t hdr[512] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3}, rest[512] = {0};
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {rest, sizeof(rest)}};
	struct bdev_create_opts o = {.size = SIZE};

	(void)state;
	snprintf(path, sizeof(path), "%s/probed.raw", dir);
	assert_int_equal(bdev_create(path, "raw", &o), 0);
	assert_int_equal(bdev_open(&bs, path, NULL, BDEV_O_RDWR), 0);
	assert_int_equal(bdev_writev(bs, 0, iov, 2), -EPERM);
	assert_non_null(strstr(err_msg(), "probed raw"));
	/* the same bytes past the first sector are data like any other */
	assert_int_equal(bdev_writev(bs, 4096, iov, 2), 0);
	bdev_close(bs);
}

static void test_too_many_pieces(void **state)
{
	struct bdev *bs;
	static uint8_t byte[BDEV_IOV_MAX + 1];
	static struct iovec iov[BDEV_IOV_MAX + 1];

	(void)state;
	open_image(&bs, "many.raw", "raw", 0);
	for (int i = 0; i <= BDEV_IOV_MAX; i++)
		iov[i] = (struct iovec){byte + i, 1};
	assert_int_equal(bdev_readv(bs, 0, iov, BDEV_IOV_MAX + 1), -EINVAL);
	assert_int_equal(bdev_readv(bs, 0, iov, BDEV_IOV_MAX), 0);
	bdev_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw_buffered),
	    cmocka_unit_test(test_raw_direct),
	    cmocka_unit_test(test_qcow2_pieces),
	    cmocka_unit_test(test_raw_tail_reads_zero),
	    cmocka_unit_test(test_probed_raw_keeps_header_guard),
	    cmocka_unit_test(test_too_many_pieces),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
