#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "util/error.h"

static void prefix_short(void **state)
{
	(void)state;
	err_clear();
	assert_int_equal(err_set(EINVAL, "bad header"), -EINVAL);
	assert_int_equal(err_prefix(-EINVAL, "%s: ", "disk.qcow2"), -EINVAL);
	assert_string_equal(err_msg(), "disk.qcow2: bad header");
}

static void prefix_without_message(void **state)
{
	(void)state;
	err_clear();
	err_prefix(-ENOENT, "disk.qcow2: ");
	assert_string_equal(err_msg(), "disk.qcow2: No such file or directory");
}

/* A message longer than the buffer is cut, NUL-terminated, and ends in "..." to say so. */
static void prefix_long_is_cut(void **state)
{
	char big[2000];
	const char *m;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_clear();
	err_set(EIO, "%s", big);
	err_prefix(-EIO, "%s: ", "disk.qcow2");
	m = err_msg();
	assert_int_equal(strlen(m), 1023);
	assert_memory_equal(m, "disk.qcow2: xxx", 15);
	assert_string_equal(m + 1020, "...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(prefix_short),
	    cmocka_unit_test(prefix_without_message),
	    cmocka_unit_test(prefix_long_is_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
