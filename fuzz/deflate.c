/*
 * Fuzz target: ligero's deflate encoder (src/block/qcow2/deflate.c) on arbitrary input. The
 * stream must inflate, through zlib with a 4 KiB window, to exactly the input; any difference,
 * crash or sanitizer report is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "block/qcow2/deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dfl *d;
	size_t cap = size + size / 8 + 1024;
	uint8_t *c = malloc(cap), *back = malloc(size + 1);
	z_stream z = {0};

	if (!d)
		d = dfl_new();
	if (!c || !back || !d)
		abort();
	int64_t n = dfl_compress(d, c, cap, data, size);
	if (n <= 0)
		abort(); /* the bound above always fits a stream */
	if (inflateInit2(&z, -12) != Z_OK)
		abort();
	z.next_in = c;
	z.avail_in = (uInt)n;
	z.next_out = back;
	z.avail_out = (uInt)(size + 1);
	int r = inflate(&z, Z_FINISH);
	if (r != Z_STREAM_END || z.total_out != size || memcmp(back, data, size))
		abort();
	inflateEnd(&z);
	free(c);
	free(back);
	return 0;
}
