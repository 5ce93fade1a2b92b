/*
 * deflate.c, ligero's raw deflate encoder, against zlib's inflate as the oracle: every stream
 * decodes to its input through a 4 KiB window (inflated in 1 KiB steps, so a match reaching
 * further back than 4096 bytes fails as "invalid distance too far back"), for sizes from 0 to
 * 2 MiB and data from runs and periodic patterns to text-like and random bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#include "block/qcow2/deflate.h"

static uint64_t seed = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (uint32_t)(seed >> 16);
}

/* Inflate through a 4 KiB window, 1 KiB of output at a time; returns the bytes produced or -1. */
static long inflate_small_window(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	z_stream z = {0};
	size_t got = 0;
	int r = Z_OK;

	assert_int_equal(inflateInit2(&z, -12), Z_OK);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)n;
	while (r == Z_OK) {
		size_t step = cap - got < 1024 ? cap - got : 1024;
		z.next_out = out + got;
		z.avail_out = (uInt)step;
		r = inflate(&z, Z_NO_FLUSH);
		got += step - z.avail_out;
		if (r == Z_BUF_ERROR && got == cap)
			break;
	}
	bool ok = r == Z_STREAM_END && z.avail_in == 0;
	inflateEnd(&z);
	return ok ? (long)got : -1;
}

static void round_trip(struct dfl *d, const uint8_t *src, size_t len)
{
	size_t cap = len + len / 8 + 1024;
	uint8_t *c = malloc(cap), *back = malloc(len + 1);
	assert_non_null(c);
	assert_non_null(back);
	int64_t n = dfl_compress(d, c, cap, src, len);
	assert_true(n > 0);
	assert_int_equal(inflate_small_window(c, (size_t)n, back, len + 1), (long)len);
	assert_memory_equal(back, src, len);
	/* One byte less room than the stream needs: refused, not truncated. */
	assert_int_equal(dfl_compress(d, c, (size_t)n - 1, src, len), -ENOSPC);
	free(c);
	free(back);
}

static void fill(uint8_t *p, size_t len, int kind)
{
	static const char *words[] = {"the ",	"qcow2 ",    "cluster ", "ligero ", "\n",
				      "image ", "refcount ", "of ",	 "and ",    "backing "};
	size_t i = 0;

	switch (kind) {
	case 0: /* zeros */
		memset(p, 0, len);
		break;
	case 1: /* random */
		for (; i < len; i++)
			p[i] = (uint8_t)rnd();
		break;
	case 2: /* text-like */
		while (i < len) {
			const char *w = words[rnd() % 10];
			for (; *w && i < len; w++)
				p[i++] = (uint8_t)*w;
		}
		break;
	case 3: /* a random block repeated at exactly the window's distance, and one byte past */
		for (; i < len; i++)
			p[i] = i <= 4096 ? (uint8_t)rnd() : p[i - 4096 - ((i / 4096) % 2)];
		break;
	case 4: /* short periods and long runs mixed with noise */
		for (; i < len; i++)
			p[i] =
			    (rnd() % 16 == 0) ? (uint8_t)rnd() : (uint8_t)(i % (1 + (i >> 12) % 7));
		break;
	default: /* binary-like: small integers, little-endian words */
		for (; i + 4 <= len; i += 4) {
			uint32_t v = rnd() % 4 ? rnd() % 300 : rnd();
			memcpy(p + i, &v, 4);
		}
		for (; i < len; i++)
			p[i] = 0;
	}
}

static void test_round_trips(void **state)
{
	static const size_t sizes[] = {1,   2,	  3,	4,    5,     100,   258,     259,
				       512, 4095, 4096, 4097, 65536, 65537, 2u << 20};
	struct dfl *d = dfl_new();
	(void)state;
	assert_non_null(d);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint8_t *p = malloc(sizes[s]);
		assert_non_null(p);
		for (int kind = 0; kind < 6; kind++) {
			fill(p, sizes[s], kind);
			round_trip(d, p, sizes[s]);
		}
		free(p);
	}
	dfl_free(d);
}

static void test_empty_and_seeded(void **state)
{
	struct dfl *d = dfl_new();
	uint8_t c[64], back[1];
	(void)state;
	int64_t n = dfl_compress(d, c, sizeof(c), (const uint8_t *)"", 0);
	assert_true(n > 0);
	assert_int_equal(inflate_small_window(c, (size_t)n, back, 1), 0);
	/* Many seeded 64 KiB clusters of mixed kinds, as convert compresses them. */
	uint8_t *p = malloc(65536);
	for (int i = 0; i < 300; i++) {
		size_t at = 0;
		while (at < 65536) {
			size_t part = 1 + rnd() % 9000;
			if (part > 65536 - at)
				part = 65536 - at;
			fill(p + at, part, (int)(rnd() % 6));
			at += part;
		}
		round_trip(d, p, 65536);
	}
	free(p);
	dfl_free(d);
}

/* Input that ends right where readable memory ends, as a cluster read through a mapping of the
 * last page of a file does: a read one byte past the input faults here. */
static void test_input_ends_at_unmapped_page(void **state)
{
	const size_t room = 128 << 10;
	struct dfl *d = dfl_new();
	(void)state;
	uint8_t *m =
	    mmap(NULL, room + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + room, 4096, PROT_NONE), 0);
	static const size_t sizes[] = {3, 4, 5, 130, 258, 259, 4096, 65536};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (int kind = 0; kind < 6; kind++) {
			uint8_t *p = m + room - sizes[s];
			fill(p, sizes[s], kind);
			round_trip(d, p, sizes[s]);
		}
	munmap(m, room + 4096);
	dfl_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trips),
	    cmocka_unit_test(test_empty_and_seeded),
	    cmocka_unit_test(test_input_ends_at_unmapped_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
