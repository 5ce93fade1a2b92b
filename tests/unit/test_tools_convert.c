/*
 * The copy engine's own limits (convert_opts_check), enforced by convert_run for any caller:
 * compression threads from 0 (online CPUs) to CONVERT_MAX_WORKERS, -S a multiple of 512 up to
 * 16 MiB. A refused copy writes nothing; the largest allowed thread count copies correctly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "tools/convert.h"
#include "util/error.h"

#define SIZE (4u << 20)

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ligero-convert-XXXXXX");
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

static struct bdev *image(const char *name, const char *fmt, bool fill)
{
	struct bdev_create_opts co = {.size = SIZE, .force = true};
	char path[128];
	struct bdev *bs;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(bdev_create(path, fmt, &co), 0);
	assert_int_equal(bdev_open(&bs, path, fmt, BDEV_O_RDWR), 0);
	if (fill) {
		uint8_t *buf = malloc(SIZE);
		assert_non_null(buf);
		for (size_t i = 0; i < SIZE; i++)
			buf[i] = (uint8_t)(i / 4096 % 7 ? i / 4096 : (i * 2654435761u) >> 13);
		assert_int_equal(bdev_write(bs, 0, buf, SIZE), 0);
		free(buf);
	}
	return bs;
}

static void check(void **state)
{
	struct convert_opts o = {0};
	(void)state;

	assert_int_equal(convert_opts_check(&o), 0);
	o.workers = CONVERT_MAX_WORKERS;
	assert_int_equal(convert_opts_check(&o), 0);
	o.workers = CONVERT_MAX_WORKERS + 1;
	assert_int_equal(convert_opts_check(&o), -EINVAL);
	assert_non_null(strstr(err_msg(), "compression threads"));
	o.workers = -1;
	assert_int_equal(convert_opts_check(&o), -EINVAL);
	o.workers = 0;
	o.min_sparse = 16u << 20;
	assert_int_equal(convert_opts_check(&o), 0);
	o.min_sparse = (16u << 20) + 512;
	assert_int_equal(convert_opts_check(&o), -EINVAL);
	o.min_sparse = 1000;
	assert_int_equal(convert_opts_check(&o), -EINVAL);
	assert_non_null(strstr(err_msg(), "multiple of 512"));
}

/* convert_run itself refuses (it used to index a 64-entry thread array with the count). */
static void run_refuses(void **state)
{
	struct bdev *src = image("src.raw", "raw", true), *dst = image("dst.qcow2", "qcow2", false);
	struct convert_opts o = {.compress = true, .workers = 1000, .target_is_zero = true};
	uint8_t buf[4096];
	(void)state;

	assert_int_equal(convert_run(&src, 1, dst, &o), -EINVAL);
	o.workers = 1;
	o.min_sparse = 1000;
	assert_int_equal(convert_run(&src, 1, dst, &o), -EINVAL);
	assert_int_equal(bdev_read(dst, 0, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0); /* nothing was written */
	bdev_close(src);
	bdev_close(dst);
}

static void run_most_workers(void **state)
{
	struct bdev *src = image("src2.raw", "raw", true),
		    *dst = image("dst2.qcow2", "qcow2", false);
	struct convert_opts o = {
	    .compress = true, .workers = CONVERT_MAX_WORKERS, .target_is_zero = true};
	uint8_t *a = malloc(SIZE), *b = malloc(SIZE);
	(void)state;

	assert_int_equal(convert_run(&src, 1, dst, &o), 0);
	assert_int_equal(bdev_read(src, 0, a, SIZE), 0);
	assert_int_equal(bdev_read(dst, 0, b, SIZE), 0);
	assert_memory_equal(a, b, SIZE);
	free(a);
	free(b);
	bdev_close(src);
	bdev_close(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(check),
	    cmocka_unit_test(run_refuses),
	    cmocka_unit_test(run_most_workers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
