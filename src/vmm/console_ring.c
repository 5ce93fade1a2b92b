/* The console's ring buffer; see console_ring.h. */
#include "vmm/console_ring.h"

#include <string.h>

void console_ring_put(struct console_ring *r, const uint8_t *p, size_t n)
{
	if (n > CONSOLE_RING_SIZE) { /* only the tail survives */
		r->total += n - CONSOLE_RING_SIZE;
		p += n - CONSOLE_RING_SIZE;
		n = CONSOLE_RING_SIZE;
	}
	while (n) {
		size_t at = r->total % CONSOLE_RING_SIZE, k = CONSOLE_RING_SIZE - at;
		if (k > n)
			k = n;
		memcpy(r->buf + at, p, k);
		r->total += k;
		p += k;
		n -= k;
	}
}

uint64_t console_ring_start(const struct console_ring *r)
{
	return r->total > CONSOLE_RING_SIZE ? r->total - CONSOLE_RING_SIZE : 0;
}

size_t console_ring_get(const struct console_ring *r, uint64_t pos, uint8_t *out, size_t max)
{
	size_t done = 0;

	if (pos < console_ring_start(r) || pos > r->total)
		return 0;
	while (done < max && pos < r->total) {
		size_t at = pos % CONSOLE_RING_SIZE, k = CONSOLE_RING_SIZE - at;
		if (k > r->total - pos)
			k = r->total - pos;
		if (k > max - done)
			k = max - done;
		memcpy(out + done, r->buf + at, k);
		done += k;
		pos += k;
	}
	return done;
}
