/*
 * bdev_resize, the resize a tool does on a user's behalf: growing is free, shrinking must be
 * asked for and never drops data this layer holds (zero clusters and unallocated space may go);
 * a refusal changes nothing. raw and qcow2, through the library alone (no command line).
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
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"

#define MiB (1ull << 20)

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ligero-resize-XXXXXX");
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

/* An 8 MiB image of fmt with 64 KiB of data at 2 MiB and a zeroed 64 KiB at 5 MiB. */
static struct bdev *make(const char *name, const char *fmt)
{
	struct bdev_create_opts co = {.size = 8 * MiB, .force = true};
	char path[128];
	uint8_t buf[65536];
	struct bdev *bs;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, fmt);
	assert_int_equal(bdev_create(path, fmt, &co), 0);
	assert_int_equal(bdev_open(&bs, path, fmt, BDEV_O_RDWR), 0);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(bdev_write(bs, 2 * MiB, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_write_zeroes(bs, 5 * MiB, sizeof(buf), 0), 0);
	return bs;
}

static void reopen(struct bdev **bs, const char *fmt)
{
	char path[128];

	snprintf(path, sizeof(path), "%s", (*bs)->filename);
	bdev_close(*bs);
	assert_int_equal(bdev_open(bs, path, fmt, BDEV_O_RDWR), 0);
}

static void check_data(struct bdev *bs)
{
	uint8_t buf[65536], want[65536];

	memset(want, 0x5a, sizeof(want));
	assert_int_equal(bdev_read(bs, 2 * MiB, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, want, sizeof(buf));
}

static void policy(const char *fmt)
{
	struct bdev *bs = make("img", fmt);

	assert_int_equal(bdev_resize(bs, 16 * MiB, 0), 0); /* growing needs nothing */
	reopen(&bs, fmt);
	assert_int_equal(bs->size, 16 * MiB);
	assert_int_equal(bdev_resize(bs, 16 * MiB, 0), 0); /* same size: nothing to do */

	/* Not asked for: refused, whatever lies past the end. */
	assert_int_equal(bdev_resize(bs, 12 * MiB, 0), -EPERM);
	assert_non_null(strstr(err_msg(), "--shrink"));
	/* Data past the new end (2 MiB to 2 MiB + 64 KiB): refused, naming where. */
	assert_int_equal(bdev_resize(bs, 2 * MiB + 4096, BDEV_RESIZE_SHRINK), -ENOTEMPTY);
	assert_non_null(strstr(err_msg(), "offset 2101248"));
	assert_int_equal(bdev_resize(bs, MiB, BDEV_RESIZE_SHRINK), -ENOTEMPTY);
	assert_non_null(strstr(err_msg(), "offset 2097152"));
	reopen(&bs, fmt);
	assert_int_equal(bs->size, 16 * MiB); /* nothing changed */
	check_data(bs);

	/* Past the data, only zeroes and unallocated space: allowed. */
	assert_int_equal(bdev_resize(bs, 4 * MiB, BDEV_RESIZE_SHRINK), 0);
	reopen(&bs, fmt);
	assert_int_equal(bs->size, 4 * MiB);
	check_data(bs);
	/* Exactly at the end of the data. */
	assert_int_equal(bdev_resize(bs, 2 * MiB + 65536, BDEV_RESIZE_SHRINK), 0);
	reopen(&bs, fmt);
	assert_int_equal(bs->size, 2 * MiB + 65536);
	check_data(bs);
	bdev_close(bs);
}

static void resize_raw(void **state)
{
	(void)state;
	policy("raw");
}

static void resize_qcow2(void **state)
{
	(void)state;
	policy("qcow2");
}

/* Read-only images are refused before any policy. */
static void resize_read_only(void **state)
{
	struct bdev *bs = make("ro", "qcow2");
	char path[128];
	(void)state;

	snprintf(path, sizeof(path), "%s", bs->filename);
	bdev_close(bs);
	assert_int_equal(bdev_open(&bs, path, "qcow2", 0), 0);
	assert_int_equal(bdev_resize(bs, 16 * MiB, 0), -EROFS);
	bdev_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(resize_raw),
	    cmocka_unit_test(resize_qcow2),
	    cmocka_unit_test(resize_read_only),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
