#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>

#include "util/size.h"

static void parse_units(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(size_parse("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(size_parse("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(size_parse("10G", &v), 0);
	assert_int_equal(v, 10ULL << 30);
	assert_int_equal(size_parse("1.5G", &v), 0);
	assert_int_equal(v, 3ULL << 29);
	assert_int_equal(size_parse("512MiB", &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(size_parse("2T", &v), 0);
	assert_int_equal(v, 2ULL << 40);
}

static void parse_rejects(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(size_parse("", &v), -EINVAL);
	assert_int_equal(size_parse("-1", &v), -EINVAL);
	assert_int_equal(size_parse("10X", &v), -EINVAL);
	assert_int_equal(size_parse("1.5", &v), -EINVAL);
	assert_int_equal(size_parse("9E", &v), -ERANGE);
	assert_int_equal(size_parse("99999999999999999999", &v), -ERANGE);
}

static void human(void **state)
{
	char b[32];
	(void)state;
	assert_string_equal(size_human(10ULL << 30, b, sizeof(b)), "10 GiB");
	assert_string_equal(size_human(196 * 1024, b, sizeof(b)), "196 KiB");
	assert_string_equal(size_human(512, b, sizeof(b)), "512 B");
	assert_string_equal(size_human(3ULL << 29, b, sizeof(b)), "1.5 GiB");
	assert_string_equal(size_human(0, b, sizeof(b)), "0 B");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_units),
	    cmocka_unit_test(parse_rejects),
	    cmocka_unit_test(human),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
