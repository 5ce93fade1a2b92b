/*
 * The overlap map (overlap.c) is built lazily, on the first metadata change of a session. A
 * change that moves a table (refcount table growth, L1 growth) before anything built the map
 * must still be in the map afterwards: a map built halfway through, from the old tables, would
 * call the new refcount blocks "guest data" and refuse their next write, marking a good image
 * corrupt ("preventing a write of a refcount block ... over guest data").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "block/block.h"
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#define MiB (1ULL << 20)

struct img {
	char dir[32];
	char path[64];
};

static void img_create(struct img *im, uint64_t size, uint32_t cs, int refcount_bits)
{
	struct bdev_create_opts o = {
	    .size = size, .cluster_size = cs, .compat = 3, .refcount_bits = refcount_bits};

	strcpy(im->dir, "/tmp/ligero-overlap-XXXXXX");
	assert_non_null(mkdtemp(im->dir));
	snprintf(im->path, sizeof(im->path), "%s/img.qcow2", im->dir);
	if (bdev_create(im->path, "qcow2", &o) < 0)
		fail_msg("create: %s", err_msg());
}

static void img_remove(struct img *im)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", im->dir);
	assert_int_equal(system(cmd), 0);
}

static struct bdev *img_open(struct img *im)
{
	struct bdev *bs;

	if (bdev_open(&bs, im->path, "qcow2", BDEV_O_RDWR | BDEV_O_UNSAFE) < 0)
		fail_msg("open: %s", err_msg());
	return bs;
}

static uint64_t file_clusters(struct img *im, uint32_t cs)
{
	struct stat st;

	assert_int_equal(stat(im->path, &st), 0);
	return ((uint64_t)st.st_size + cs - 1) / cs;
}

/* Every table the image uses right now is in the map, with its type. */
static void assert_map_knows_tables(struct qcow2 *s)
{
	uint64_t cs = s->cluster_size;

	assert_true(s->meta_built);
	for (uint64_t c = s->l1_offset / cs; c < (s->l1_offset + s->l1_size * 8ULL + cs - 1) / cs;
	     c++)
		assert_int_equal(s->meta[c], QCOW2_META_L1);
	for (uint64_t i = 0; i < s->rt_clusters; i++)
		assert_int_equal(s->meta[s->rt_offset / cs + i], QCOW2_META_RT);
	for (uint64_t i = 0; i < s->rt_size; i++) {
		uint64_t rb = s->rt[i] & QCOW2_REFT_OFFSET_MASK;
		if (rb)
			assert_int_equal(s->meta[rb / cs], QCOW2_META_RB);
	}
}

static bool qemu_img_check_clean(const char *path)
{
	char cmd[160];

	if (system("command -v qemu-img >/dev/null 2>&1") != 0)
		return true;
	/* Exit 0: clean; 3: leaked clusters only, which a crash-free run must not leave either. */
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", path);
	return system(cmd) == 0;
}

/*
 * A session whose first allocation straddles the end of what the refcount table covers: the
 * first clusters get their counts in the last existing refcount block (left dirty in the cache),
 * the next ones need a new block past the table, so the table grows before anything built the
 * map. Flushing that dirty block inside the growth built the map from the old table.
 */
static void rt_growth_first_in_session(void **state)
{
	const uint32_t cs = 512;
	const uint64_t size = 64 * MiB, run = 16; /* clusters of the second session's write */
	static uint8_t buf[1 << 20];
	struct img im;
	struct bdev *bs;

	(void)state;
	img_create(&im, size, cs, 8);
	bs = img_open(&im);
	struct qcow2 *s = bs->opaque;
	uint64_t covered = s->rt_size << s->rb_bits, rt_size = s->rt_size;
	/* Fill the file (sequential data, no frees) until it ends a few clusters short of what
	 * the table covers; each write adds at most 3 clusters (data, L2 table, refcount block). */
	uint64_t off = 0, target = covered - run / 2;
	memset(buf, 0x11, sizeof(buf));
	while (file_clusters(&im, cs) + sizeof(buf) / cs * 105 / 100 < target) {
		assert_int_equal(bdev_write(bs, off, buf, sizeof(buf)), 0);
		off += sizeof(buf);
	}
	while (file_clusters(&im, cs) < target) {
		assert_int_equal(bdev_write(bs, off, buf, cs), 0);
		off += cs;
	}
	assert_int_equal(s->rt_size, rt_size);
	assert_true(file_clusters(&im, cs) < covered - 1);
	bdev_close(bs);

	/* A fresh session (no map yet): write where no L2 table exists, so nothing checks the
	 * map before the allocation. */
	bs = img_open(&im);
	s = bs->opaque;
	memset(buf, 0x22, run * cs);
	if (bdev_write(bs, size - run * cs, buf, run * cs) < 0)
		fail_msg("write across the refcount table's coverage: %s", err_msg());
	assert_true(s->rt_size > rt_size); /* the case under test really happened */
	assert_false(s->corrupt);
	assert_map_knows_tables(s);
	/* The new refcount blocks keep taking writes. */
	assert_int_equal(bdev_write(bs, off, buf, 64 * cs), 0);
	assert_int_equal(bdev_flush(bs), 0);
	bdev_close(bs);

	bs = img_open(&im);
	assert_int_equal(bdev_read(bs, size - run * cs, buf + run * cs, run * cs), 0);
	assert_memory_equal(buf, buf + run * cs, run * cs);
	bdev_close(bs);
	assert_true(qemu_img_check_clean(im.path));
	img_remove(&im);
}

/* The same for the L1 table: the first change of a session grows it (a resize), and the
 * refcount flush inside the growth must not map the tables before the new L1 is marked. */
static void l1_growth_first_in_session(void **state)
{
	const uint32_t cs = 512;
	static uint8_t buf[64 << 10];
	struct img im;
	struct bdev *bs;

	(void)state;
	img_create(&im, 1 * MiB, cs, 16);
	bs = img_open(&im);
	memset(buf, 0x33, sizeof(buf));
	assert_int_equal(bdev_write(bs, 0, buf, sizeof(buf)), 0);
	bdev_close(bs);

	bs = img_open(&im);
	struct qcow2 *s = bs->opaque;
	uint32_t l1_size = s->l1_size;
	if (bdev_truncate(bs, 64 * MiB) < 0)
		fail_msg("resize: %s", err_msg());
	assert_true(s->l1_size > l1_size);
	assert_map_knows_tables(s);
	assert_int_equal(bdev_write(bs, 63 * MiB, buf, sizeof(buf)), 0);
	bdev_close(bs);
	assert_true(qemu_img_check_clean(im.path));
	img_remove(&im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rt_growth_first_in_session),
	    cmocka_unit_test(l1_growth_first_in_session),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
