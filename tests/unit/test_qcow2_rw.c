/*
 * qcow2 data path against an in-memory model: seeded random writes, zero writes and discards
 * over a backing chain, read back before and after reopening, for every cluster size and
 * refcount width class. `qemu-img check` (the oracle) validates the metadata at the end when
 * it is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"

struct rw_case {
	uint32_t cluster_size;
	int compat;
	int refcount_bits;
	bool lazy;
	bool backing;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_backing(const char *path, uint8_t *model, uint64_t size)
{
	struct bdev *bs;
	struct bdev_create_opts o = {.size = size, .cluster_size = 4096};
	assert_int_equal(bdev_create(path, "qcow2", &o), 0);
	assert_int_equal(bdev_open(&bs, path, "qcow2", BDEV_O_RDWR), 0);
	for (uint64_t off = 0; off < size; off += 3 * 4096) {
		memset(model + off, 0x5a ^ (int)(off >> 12), 4096);
		assert_int_equal(bdev_write(bs, off, model + off, 4096), 0);
	}
	bdev_close(bs);
}

static void verify(struct bdev *bs, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	assert_int_equal(bdev_read(bs, 0, buf, size), 0);
	for (uint64_t i = 0; i < size; i++)
		if (buf[i] != model[i])
			fail_msg("byte %llu: got 0x%02x, expected 0x%02x", (unsigned long long)i,
				 buf[i], model[i]);
	free(buf);
}

static bool qemu_img_check_clean(const char *path)
{
	char cmd[512];
	if (system("command -v qemu-img >/dev/null 2>&1") != 0)
		return true;
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", path);
	return system(cmd) == 0;
}

static void run_case(const struct rw_case *c)
{
	char dir[] = "/tmp/ligero-rw-XXXXXX";
	char top[256], base[256];
	const uint64_t size = 8ULL << 20;
	uint8_t *model = calloc(1, size), *data = malloc(1 << 20);
	struct bdev *bs;

	assert_non_null(mkdtemp(dir));
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	snprintf(base, sizeof(base), "%s/base.qcow2", dir);
	if (c->backing)
		fill_backing(base, model, size);
	struct bdev_create_opts o = {.size = size,
				     .cluster_size = c->cluster_size,
				     .compat = c->compat,
				     .refcount_bits = c->refcount_bits,
				     .lazy_refcounts = c->lazy,
				     .backing_file = c->backing ? "base.qcow2" : NULL};
	if (bdev_create(top, "qcow2", &o) < 0)
		fail_msg("create: %s", err_msg());
	if (bdev_open(&bs, top, NULL, BDEV_O_RDWR) < 0)
		fail_msg("open: %s", err_msg());
	rng_state = 0x9e3779b97f4a7c15ULL ^ c->cluster_size ^ (uint64_t)c->refcount_bits << 32;
	for (int op = 0; op < 400; op++) {
		uint64_t off = rnd() % size;
		uint64_t len = 1 + rnd() % (op % 7 == 0 ? (1 << 20) : 20000);
		if (len > size - off)
			len = size - off;
		int kind = (int)(rnd() % 10);
		if (kind < 7) {
			memset(data, op & 0xff, len);
			if (bdev_write(bs, off, data, len) < 0)
				fail_msg("write: %s", err_msg());
			memcpy(model + off, data, len);
		} else if (kind < 9) {
			if (bdev_write_zeroes(bs, off, len, kind == 8 ? BDEV_ZERO_MAY_UNMAP : 0) <
			    0)
				fail_msg("write_zeroes: %s", err_msg());
			memset(model + off, 0, len);
		} else {
			if (bdev_discard(bs, off, len) < 0)
				fail_msg("discard: %s", err_msg());
			/* Only whole clusters are discarded; they then read as zero, except on
			 * v2 with a backing file where discard does nothing. */
			if (!(c->compat == 2 && c->backing)) {
				uint64_t cs = c->cluster_size;
				uint64_t a = (off + cs - 1) / cs * cs, b = (off + len) / cs * cs;
				if (off + len == size)
					b = size;
				if (b > a)
					memset(model + a, 0, b - a);
			}
		}
		if (op % 50 == 0)
			assert_int_equal(bdev_flush(bs), 0);
	}
	verify(bs, model, size);
	bdev_close(bs);
	assert_true(qemu_img_check_clean(top));
	assert_int_equal(bdev_open(&bs, top, NULL, 0), 0);
	verify(bs, model, size);
	bdev_close(bs);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(model);
	free(data);
}

#define CASE(name, ...)                                                                            \
	static void name(void **state)                                                             \
	{                                                                                          \
		(void)state;                                                                       \
		struct rw_case c = {__VA_ARGS__};                                                  \
		run_case(&c);                                                                      \
	}

CASE(v3_64k, .cluster_size = 65536, .compat = 3, .refcount_bits = 16)
CASE(v3_4k_backing, .cluster_size = 4096, .compat = 3, .refcount_bits = 16, .backing = true)
CASE(v3_512_rc1, .cluster_size = 512, .compat = 3, .refcount_bits = 1, .backing = true)
CASE(v3_2m_rc64, .cluster_size = 2 << 20, .compat = 3, .refcount_bits = 64)
CASE(v2_4k_backing, .cluster_size = 4096, .compat = 2, .refcount_bits = 16, .backing = true)
CASE(v2_64k, .cluster_size = 65536, .compat = 2, .refcount_bits = 16)
/* 512-byte clusters with 64-bit refcounts: a refcount block covers 32 KiB and the first table
 * 2 MiB, so this grows the refcount table several times. */
CASE(v3_512_rc64_grow, .cluster_size = 512, .compat = 3, .refcount_bits = 64)
CASE(v3_lazy, .cluster_size = 4096, .compat = 3, .refcount_bits = 8, .lazy = true, .backing = true)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(v3_64k),	     cmocka_unit_test(v3_4k_backing),
	    cmocka_unit_test(v3_512_rc1),    cmocka_unit_test(v3_2m_rc64),
	    cmocka_unit_test(v2_4k_backing), cmocka_unit_test(v2_64k),
	    cmocka_unit_test(v3_lazy),	     cmocka_unit_test(v3_512_rc64_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
