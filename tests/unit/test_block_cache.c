/* bdev_parse_cache_mode: QEMU's cache modes (bdrv_parse_cache_mode) as open flags; img io,
 * img convert and virtio-blk's cache= all go through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "block/block.h"
#include "util/error.h"

static void modes(void **state)
{
	static const struct {
		const char *mode;
		int flags;
	} table[] = {
	    {"none", BDEV_O_DIRECT},
	    {"off", BDEV_O_DIRECT},
	    {"writeback", 0},
	    {"writethrough", BDEV_O_WRITETHROUGH},
	    {"directsync", BDEV_O_DIRECT | BDEV_O_WRITETHROUGH},
	    {"unsafe", BDEV_O_UNSAFE},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int flags = -1;
		assert_int_equal(bdev_parse_cache_mode(table[i].mode, &flags), 0);
		assert_int_equal(flags, table[i].flags);
		assert_int_equal(flags & ~BDEV_O_CACHE_MASK, 0);
	}
}

static void refusals(void **state)
{
	static const char *const bad[] = {"", "bogus", "None", "write-back", "none "};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int flags = 12345;
		assert_int_equal(bdev_parse_cache_mode(bad[i], &flags), -EINVAL);
		assert_int_equal(flags, 12345); /* untouched */
		assert_non_null(strstr(err_msg(), "cache mode"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(modes),
	    cmocka_unit_test(refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
