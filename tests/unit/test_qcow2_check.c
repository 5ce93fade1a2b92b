/*
 * qcow2 check and repair: images made by our own create and write, broken on purpose through the
 * driver's internals (refcounts, L1/L2 entries, the refcount table), then checked, repaired and
 * checked again. The data must read back unchanged after every repair, and qemu-img check (the
 * oracle, when installed) must find the repaired image clean. A seeded byte-flipping loop checks
 * that hostile metadata never crashes the check or the repair.
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
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#define MiB (1ULL << 20)

struct img {
	char dir[32];
	char path[64];
	uint32_t cs;
};

static void pattern(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) * 7 / 512 + 1);
}

/* 4 MiB image; data at [0, 320k) and [1M, 1M+64k). */
static void make(struct img *im, uint32_t cs, int refcount_bits, bool lazy)
{
	struct bdev_create_opts o = {.size = 4 * MiB,
				     .cluster_size = cs,
				     .refcount_bits = refcount_bits,
				     .lazy_refcounts = lazy};
	static uint8_t buf[320 << 10];
	struct bdev *bs;

	strcpy(im->dir, "/tmp/ligero-check-XXXXXX");
	assert_non_null(mkdtemp(im->dir));
	snprintf(im->path, sizeof(im->path), "%s/img.qcow2", im->dir);
	im->cs = cs;
	assert_int_equal(bdev_create(im->path, "qcow2", &o), 0);
	assert_int_equal(bdev_open(&bs, im->path, "qcow2", BDEV_O_RDWR), 0);
	pattern(buf, sizeof(buf), 0);
	assert_int_equal(bdev_write(bs, 0, buf, sizeof(buf)), 0);
	pattern(buf, 64 << 10, MiB);
	assert_int_equal(bdev_write(bs, MiB, buf, 64 << 10), 0);
	bdev_close(bs);
}

static void cleanup(struct img *im)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", im->dir);
	assert_int_equal(system(cmd), 0);
}

static void verify_data(const struct img *im)
{
	static uint8_t buf[320 << 10], want[320 << 10];
	struct bdev *bs;

	assert_int_equal(bdev_open(&bs, im->path, "qcow2", 0), 0);
	assert_int_equal(bdev_read(bs, 0, buf, sizeof(buf)), 0);
	pattern(want, sizeof(want), 0);
	assert_memory_equal(buf, want, sizeof(buf));
	assert_int_equal(bdev_read(bs, MiB, buf, 64 << 10), 0);
	pattern(want, 64 << 10, MiB);
	assert_memory_equal(buf, want, 64 << 10);
	bdev_close(bs);
}

static bool qemu_img_clean(const char *path)
{
	char cmd[256];
	if (system("command -v qemu-img >/dev/null 2>&1") != 0)
		return true;
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", path);
	return system(cmd) == 0;
}

/* Check (fix = 0) or repair; the result stays in *res for the caller to free. */
static void run_check(const struct img *im, int fix, struct bdev_check_result *res)
{
	int flags = BDEV_O_CHECK | BDEV_O_NO_BACKING | (fix ? BDEV_O_RDWR | BDEV_O_NO_REPAIR : 0);
	struct bdev *bs;

	assert_int_equal(bdev_open(&bs, im->path, "qcow2", flags), 0);
	assert_int_equal(bdev_check(bs, fix, res), 0);
	bdev_close(bs);
}

static bool has_message(const struct bdev_check_result *res, const char *text)
{
	for (size_t i = 0; i < res->nmessages; i++)
		if (strstr(res->messages[i], text))
			return true;
	return false;
}

static void assert_clean(const struct img *im)
{
	struct bdev_check_result res;
	run_check(im, 0, &res);
	assert_int_equal(res.corruptions, 0);
	assert_int_equal(res.leaks, 0);
	assert_int_equal(res.check_errors, 0);
	bdev_check_result_free(&res);
	assert_true(qemu_img_clean(im->path));
}

/* Open the image raw for breaking it through the driver: no repair, no check of tables. */
static struct bdev *open_for_damage(const struct img *im)
{
	struct bdev *bs;
	assert_int_equal(
	    bdev_open(&bs, im->path, "qcow2",
		      BDEV_O_RDWR | BDEV_O_CHECK | BDEV_O_NO_REPAIR | BDEV_O_NO_BACKING),
	    0);
	return bs;
}

static void set_refcount(const struct img *im, uint64_t cluster, uint64_t val)
{
	struct bdev *bs = open_for_damage(im);
	struct qcow2 *s = bs->opaque;
	assert_int_equal(qcow2_refcount_set(s, cluster, val), 0);
	bdev_close(bs);
}

/* Host offset of the L2 entry for guest offset off (the L2 table must exist). */
static uint64_t l2e_offset(const struct img *im, uint64_t off)
{
	struct bdev *bs = open_for_damage(im);
	struct qcow2 *s = bs->opaque;
	uint64_t l2 = s->l1[off >> (s->cluster_bits + s->l2_bits)] & QCOW2_L1E_OFFSET_MASK;
	uint64_t idx = (off >> s->cluster_bits) & (s->l2_size - 1);
	bdev_close(bs);
	assert_true(l2 != 0);
	return l2 + idx * 8;
}

static uint64_t file_u64(const struct img *im, uint64_t off)
{
	uint8_t b[8];
	int fd = open(im->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
	close(fd);
	return be64_get(b);
}

static void file_put_u64(const struct img *im, uint64_t off, uint64_t v)
{
	uint8_t b[8];
	int fd = open(im->path, O_WRONLY);
	assert_true(fd >= 0);
	be64_put(b, v);
	assert_int_equal(pwrite(fd, b, 8, (off_t)off), 8);
	close(fd);
}

static uint64_t file_size(const struct img *im)
{
	struct stat st;
	assert_int_equal(stat(im->path, &st), 0);
	return (uint64_t)st.st_size;
}

static void test_clean(void **state)
{
	struct bdev_check_result res;
	struct img im;
	(void)state;

	make(&im, 65536, 16, false);
	run_check(&im, 0, &res);
	assert_int_equal(res.corruptions + res.leaks + res.check_errors, 0);
	assert_int_equal(res.nmessages, 0);
	assert_int_equal(res.total_clusters, 64);
	assert_int_equal(res.allocated_clusters, 6);
	assert_int_equal(res.compressed_clusters, 0);
	assert_int_equal(res.image_end_offset, file_size(&im));
	bdev_check_result_free(&res);
	cleanup(&im);
}

static void test_leak(void **state)
{
	struct bdev_check_result res;
	struct img im;
	(void)state;

	make(&im, 65536, 16, false);
	uint64_t leaked = file_size(&im) / 65536 - 1 + 1; /* the cluster after the end */
	assert_int_equal(truncate(im.path, (off_t)((leaked + 1) * 65536)), 0);
	set_refcount(&im, leaked, 1);
	run_check(&im, 0, &res);
	assert_int_equal(res.leaks, 1);
	assert_int_equal(res.corruptions, 0);
	assert_true(has_message(&res, "Leaked cluster"));
	assert_int_equal(res.image_end_offset, (leaked + 1) * 65536);
	bdev_check_result_free(&res);

	run_check(&im, BDEV_CHECK_FIX_LEAKS, &res);
	assert_int_equal(res.leaks_fixed, 1);
	assert_int_equal(res.leaks, 0);
	assert_int_equal(res.image_end_offset, leaked * 65536);
	bdev_check_result_free(&res);
	assert_clean(&im);
	verify_data(&im);
	cleanup(&im);
}

static void test_refcount_too_low(void **state)
{
	static const int widths[] = {1, 8, 16, 64};
	struct bdev_check_result res;
	(void)state;

	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		struct img im;
		make(&im, 4096, widths[w], false);
		uint64_t data = file_u64(&im, l2e_offset(&im, 8192)) & QCOW2_L2E_OFFSET_MASK;
		set_refcount(&im, data / 4096, 0);
		run_check(&im, 0, &res);
		assert_int_equal(res.corruptions, 2); /* refcount, and so the COPIED flag */
		assert_true(has_message(&res, "refcount=0 reference=1"));
		bdev_check_result_free(&res);
		run_check(&im, BDEV_CHECK_FIX_LEAKS, &res); /* leaks only: nothing to do */
		assert_int_equal(res.corruptions, 2);
		assert_int_equal(res.corruptions_fixed, 0);
		bdev_check_result_free(&res);
		run_check(&im, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res);
		assert_int_equal(res.corruptions_fixed, 1);
		assert_int_equal(res.corruptions, 0);
		bdev_check_result_free(&res);
		assert_clean(&im);
		verify_data(&im);
		cleanup(&im);
	}
}

static void test_copied_flag(void **state)
{
	struct bdev_check_result res;
	struct img im;
	(void)state;

	make(&im, 65536, 16, false);
	uint64_t at = l2e_offset(&im, 0);
	file_put_u64(&im, at, file_u64(&im, at) & ~QCOW2_OFLAG_COPIED);
	run_check(&im, 0, &res);
	assert_int_equal(res.corruptions, 1);
	assert_true(has_message(&res, "ERROR OFLAG_COPIED data cluster"));
	bdev_check_result_free(&res);
	run_check(&im, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res);
	assert_int_equal(res.corruptions_fixed, 1);
	bdev_check_result_free(&res);
	assert_true(file_u64(&im, at) & QCOW2_OFLAG_COPIED);
	assert_clean(&im);
	cleanup(&im);
}

static void test_past_eof_is_not_fixed(void **state)
{
	struct bdev_check_result res;
	struct img im;
	(void)state;

	make(&im, 65536, 16, false);
	file_put_u64(&im, l2e_offset(&im, 65536), QCOW2_OFLAG_COPIED | (1ULL << 40));
	run_check(&im, 0, &res);
	assert_int_equal(res.corruptions, 2);
	assert_int_equal(res.leaks, 1);
	assert_true(has_message(&res, "exceeding the end of the file"));
	bdev_check_result_free(&res);
	run_check(&im, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res);
	assert_int_equal(res.corruptions, 1);
	assert_int_equal(res.leaks_fixed, 1);
	assert_int_equal(res.corruptions_fixed, 1);
	bdev_check_result_free(&res);
	cleanup(&im);
}

static void test_missing_refcount_block(void **state)
{
	struct bdev_check_result res;
	struct img im;
	(void)state;

	/* 512-byte clusters, 16-bit refcounts: a block covers 256 clusters (128 KiB). */
	make(&im, 512, 16, false);
	uint64_t rt = file_u64(&im, QCOW2_HDR_RT_OFFSET);
	file_put_u64(&im, rt + 8, 0);
	run_check(&im, 0, &res);
	assert_true(res.corruptions > 255);
	bdev_check_result_free(&res);
	run_check(&im, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res);
	assert_int_equal(res.corruptions, 0);
	assert_int_equal(res.corruptions_fixed, 255);
	bdev_check_result_free(&res);
	assert_clean(&im);
	verify_data(&im);
	cleanup(&im);
}

static void test_rebuild(void **state)
{
	static const int widths[] = {1, 2, 4, 16, 32, 64};
	struct bdev_check_result res;
	(void)state;

	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		struct img im;
		make(&im, 4096, widths[w], false);
		uint64_t rt = file_u64(&im, QCOW2_HDR_RT_OFFSET);
		uint64_t data = file_u64(&im, l2e_offset(&im, 0)) & QCOW2_L2E_OFFSET_MASK;
		/* A second refcount block "at" a data cluster: it must never be written. */
		file_put_u64(&im, rt + 8, data);
		run_check(&im, 0, &res);
		assert_true(has_message(&res, "ERROR refcount block 1 refcount=2"));
		bdev_check_result_free(&res);
		run_check(&im, BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS, &res);
		assert_int_equal(res.corruptions, 0);
		assert_true(res.corruptions_fixed > 0);
		assert_true(has_message(&res, "Rebuilding refcount structure"));
		bdev_check_result_free(&res);
		assert_clean(&im);
		verify_data(&im);
		cleanup(&im);
	}
}

/* What a crash with lazy refcounts leaves: the dirty bit, and refcounts that lag behind. */
static void test_dirty_repaired_on_open(void **state)
{
	struct bdev_check_result res;
	struct img im;
	struct bdev *bs;
	(void)state;

	make(&im, 65536, 16, true);
	uint64_t data = file_u64(&im, l2e_offset(&im, 65536)) & QCOW2_L2E_OFFSET_MASK;
	set_refcount(&im, data / 65536, 0);
	file_put_u64(&im, QCOW2_HDR_INCOMPAT,
		     file_u64(&im, QCOW2_HDR_INCOMPAT) | QCOW2_INCOMPAT_DIRTY);
	run_check(&im, 0, &res);
	assert_int_equal(res.corruptions, 2);
	bdev_check_result_free(&res);
	assert_int_equal(bdev_open(&bs, im.path, "qcow2", BDEV_O_RDWR), 0);
	/* A new allocation must not land on the cluster whose refcount lagged. */
	static uint8_t buf[65536];
	memset(buf, 0x5c, sizeof(buf));
	assert_int_equal(bdev_write(bs, 2 * MiB, buf, sizeof(buf)), 0);
	bdev_close(bs);
	assert_int_equal(file_u64(&im, QCOW2_HDR_INCOMPAT) & QCOW2_INCOMPAT_DIRTY, 0);
	assert_clean(&im);
	verify_data(&im);
	cleanup(&im);
}

static void test_read_only_cannot_repair(void **state)
{
	struct bdev_check_result res;
	struct img im;
	struct bdev *bs;
	(void)state;

	make(&im, 65536, 16, false);
	assert_int_equal(bdev_open(&bs, im.path, "qcow2", BDEV_O_CHECK), 0);
	assert_int_equal(bdev_check(bs, BDEV_CHECK_FIX_LEAKS, &res), -EROFS);
	bdev_check_result_free(&res);
	bdev_close(bs);
	cleanup(&im);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Flip random bits in the metadata clusters (header, tables, refcount blocks); the check and
 * the repair must return (any result) without crashing, and a repaired image must check the
 * same way twice. Run under ASan/UBSan in CI. */
static void test_hostile_metadata(void **state)
{
	struct img im;
	char copy[96], cmd[256];
	(void)state;

	make(&im, 4096, 16, false);
	snprintf(copy, sizeof(copy), "%s/pristine.qcow2", im.dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", im.path, copy);
	assert_int_equal(system(cmd), 0);
	uint64_t meta_end = 12 * 4096; /* header, L1, refcount table and block, first L2 */
	for (int iter = 0; iter < 300; iter++) {
		snprintf(cmd, sizeof(cmd), "cp %s %s", copy, im.path);
		assert_int_equal(system(cmd), 0);
		int fd = open(im.path, O_RDWR);
		assert_true(fd >= 0);
		for (int k = 0; k < 1 + (int)(rnd() % 4); k++) {
			uint64_t off = 104 + rnd() % (meta_end - 104);
			uint8_t b;
			assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
			b ^= (uint8_t)(1u << (rnd() % 8));
			assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
		}
		close(fd);
		for (int fix = 0; fix <= 3; fix += 3) {
			struct bdev_check_result res;
			int flags = BDEV_O_CHECK | BDEV_O_NO_BACKING |
				    (fix ? BDEV_O_RDWR | BDEV_O_NO_REPAIR : 0);
			struct bdev *bs;
			if (bdev_open(&bs, im.path, "qcow2", flags) < 0)
				break; /* refused at open: nothing to check */
			memset(&res, 0, sizeof(res));
			(void)bdev_check(bs, fix, &res);
			bdev_check_result_free(&res);
			bdev_close(bs);
		}
	}
	cleanup(&im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clean),
	    cmocka_unit_test(test_leak),
	    cmocka_unit_test(test_refcount_too_low),
	    cmocka_unit_test(test_copied_flag),
	    cmocka_unit_test(test_past_eof_is_not_fixed),
	    cmocka_unit_test(test_missing_refcount_block),
	    cmocka_unit_test(test_rebuild),
	    cmocka_unit_test(test_dirty_repaired_on_open),
	    cmocka_unit_test(test_read_only_cannot_repair),
	    cmocka_unit_test(test_hostile_metadata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
