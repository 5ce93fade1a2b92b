/* Workflows on backing chains: commit an overlay into a lower image, rebase onto another. */
#ifndef LIGERO_TOOLS_CHAIN_H
#define LIGERO_TOOLS_CHAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct bdev;

struct chain_progress {
	void (*fn)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	volatile sig_atomic_t *stop; /* non-zero: stop between steps with -EINTR */
};

/* Write everything the layers above base hold into base (a layer of top's open chain, which
 * the caller reopened for writing), growing base to top's size if it is smaller. With
 * empty_top, top (which must be base's direct overlay, opened read-write) is emptied afterwards
 * so its reads come from base again. A stop leaves every image consistent: top still holds all
 * its data until the copy has finished. */
int chain_commit(struct bdev *top, struct bdev *base, bool empty_top,
		 const struct chain_progress *p);

/* Make img (opened read-write with its old chain) show the same guest content on top of
 * new_backing (NULL: no backing file) by copying into img every cluster where the old chain
 * and the new backing differ, then record name/fmt as its backing file. */
int chain_rebase(struct bdev *img, struct bdev *new_backing, const char *name, const char *fmt,
		 const struct chain_progress *p);

#endif
