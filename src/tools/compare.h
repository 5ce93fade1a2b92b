/* img compare: guest-visible content of two images, as qemu-img compare defines it. */
#ifndef LIGERO_TOOLS_COMPARE_H
#define LIGERO_TOOLS_COMPARE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct bdev;

enum compare_result {
	COMPARE_IDENTICAL = 0,
	COMPARE_MISMATCH,	 /* content differs at *where (rounded down to 512 bytes) */
	COMPARE_SIZE_MISMATCH,	 /* strict: sizes differ */
	COMPARE_STATUS_MISMATCH, /* strict: allocation differs at *where */
};

struct compare_opts {
	bool strict; /* sizes and allocation status must match too (-s) */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	volatile sig_atomic_t *stop;
};

/* Returns an enum compare_result (>= 0) or -errno. Ranges both images report as zero are not
 * read; the tail of the larger image must read as zero unless strict. */
int compare_images(struct bdev *a, struct bdev *b, const struct compare_opts *o, uint64_t *where);

#endif
