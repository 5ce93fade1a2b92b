/*
 * sparsify_copy's codec choice, made by the library for any caller: with
 * SPARSIFY_CODEC_DEFAULT a compressed copy is zstd (zlib when compat=0.10 cannot record zstd),
 * an uncompressed one zlib; a codec the caller names is kept. The header's compression type is
 * read back through the driver, and the copy holds the source's bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "tools/sparsify.h"
#include "util/error.h"

#define SIZE (2u << 20)

static char dir[64];
static struct bdev *src;
static struct sparsify_plan plan;

static int setup(void **state)
{
	struct bdev_create_opts co = {.size = SIZE, .force = true};
	char path[128];
	uint8_t buf[65536];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ligero-sparsify-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/src.raw", dir);
	assert_int_equal(bdev_create(path, "raw", &co), 0);
	assert_int_equal(bdev_open(&src, path, "raw", BDEV_O_RDWR), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i % 251 < 100 ? 'a' : i % 13);
	assert_int_equal(bdev_write(src, 65536, buf, sizeof(buf)), 0);
	assert_int_equal(sparsify_plan_make(src, "src.raw", &plan), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	sparsify_plan_free(&plan);
	bdev_close(src);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* Copy with the given codec request and compat; returns the copy's compression type. */
static char *copy(int codec, int compat, bool compress)
{
	struct bdev_create_opts co = {.compression_type = codec, .compat = compat};
	struct sparsify_opts so = {0};
	struct json_object *spec, *data, *v;
	char path[128], *type;
	uint8_t a[65536], b[65536];
	struct bdev *out;

	snprintf(path, sizeof(path), "%s/out.qcow2", dir);
	unlink(path);
	assert_int_equal(sparsify_copy(src, &plan, path, "qcow2", &co, compress, &so), 0);
	assert_int_equal(bdev_open(&out, path, "qcow2", 0), 0);
	assert_int_equal(bdev_read(src, 65536, a, sizeof(a)), 0);
	assert_int_equal(bdev_read(out, 65536, b, sizeof(b)), 0);
	assert_memory_equal(a, b, sizeof(a));
	spec = out->drv->info_specific(out);
	assert_true(json_object_object_get_ex(spec, "data", &data));
	assert_true(json_object_object_get_ex(data, "compression-type", &v));
	type = strdup(json_object_get_string(v));
	json_object_put(spec);
	bdev_close(out);
	return type;
}

static void expect(int codec, int compat, bool compress, const char *want)
{
	char *got = copy(codec, compat, compress);

	assert_string_equal(got, want);
	free(got);
}

static void default_codec(void **state)
{
	(void)state;
	expect(SPARSIFY_CODEC_DEFAULT, 0, true, "zstd");
	expect(SPARSIFY_CODEC_DEFAULT, 3, true, "zstd");
	expect(SPARSIFY_CODEC_DEFAULT, 2, true, "zlib"); /* compat=0.10 has no compression type */
	expect(SPARSIFY_CODEC_DEFAULT, 0, false, "zlib");
}

static void named_codec(void **state)
{
	(void)state;
	expect(0, 0, true, "zlib");
	expect(1, 0, true, "zstd");
	expect(1, 0, false, "zstd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(default_codec),
	    cmocka_unit_test(named_codec),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
