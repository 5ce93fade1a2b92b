/* The console's ring buffer: the last CONSOLE_RING_SIZE bytes of output, addressed by their
 * position in everything ever written, so that each reader keeps its own place and a reader
 * that fell behind by more than the ring knows it lost bytes. No locking: the owner locks. */
#ifndef LIGERO_VMM_CONSOLE_RING_H
#define LIGERO_VMM_CONSOLE_RING_H

#include <stddef.h>
#include <stdint.h>

#define CONSOLE_RING_SIZE (64 * 1024)

struct console_ring {
	uint8_t buf[CONSOLE_RING_SIZE];
	uint64_t total; /* bytes ever written; the next one goes to buf[total % SIZE] */
};

void console_ring_put(struct console_ring *r, const uint8_t *p, size_t n);
/* The oldest position still held. */
uint64_t console_ring_start(const struct console_ring *r);
/* Copy up to max bytes from position pos on into out; returns how many. pos must be between
 * console_ring_start() and total (else 0). */
size_t console_ring_get(const struct console_ring *r, uint64_t pos, uint8_t *out, size_t max);

#endif
