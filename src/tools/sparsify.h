/*
 * Sparsify: drop what a disk's filesystems no longer use, so backups hold only live data.
 * Free space is found by reading each filesystem (ext2/3/4 block bitmaps, swap areas, space no
 * partition covers), never by booting anything or writing zeroes, and nothing is written
 * anywhere but the destination (no temporary files).
 */
#ifndef LIGERO_TOOLS_SPARSIFY_H
#define LIGERO_TOOLS_SPARSIFY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/ranges.h"

struct bdev;

/* What was found in one partition (or the whole disk, or the unpartitioned space). */
struct sparsify_area {
	char where[256];  /* "disk.qcow2:1", "disk.qcow2", "unpartitioned" */
	char type[16];	  /* "ext4", "swap", "xfs", "" */
	uint64_t size;	  /* bytes of the area */
	uint64_t dropped; /* bytes found free */
	char note[160];	  /* why nothing was dropped, when that is the case */
};

struct sparsify_plan {
	struct range_list drop; /* sorted, merged disk byte ranges whose content does not matter */
	struct sparsify_area *areas;
	size_t nareas;
};

/* Find the free space of every filesystem on bs. Filesystems that cannot be read are left
 * whole (their area's note says why; zero detection still applies to them). name prefixes
 * messages. */
int sparsify_plan_make(struct bdev *bs, const char *name, struct sparsify_plan *p);
void sparsify_plan_free(struct sparsify_plan *p);

struct sparsify_opts {
	bool zero_check; /* in place: also drop allocated clusters that read as zero */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	volatile sig_atomic_t *stop;
};

/* Discard the planned ranges in bs itself (opened read-write): qcow2 frees whole clusters,
 * raw files get holes punched. Reports the bytes discarded in *done. */
int sparsify_in_place(struct bdev *bs, const struct sparsify_plan *p, const struct sparsify_opts *o,
		      uint64_t *done);

struct bdev_create_opts;

/* opts->compression_type for sparsify_copy: let it choose. A backup copy is written once and
 * read rarely, and zstd compresses it faster and smaller than zlib (docs/ligero-sparsify.md
 * has the figures): compressed copies get zstd, unless compat=0.10, which cannot record it;
 * the rest zlib (QEMU's default). */
#define SPARSIFY_CODEC_DEFAULT (-1)

/* Copy src into a new image dst_path of format fmt (created here with opts; removed again if
 * anything fails or o->stop is raised), leaving out the planned ranges and zeroes, compressed
 * with all cores when compress is set. */
int sparsify_copy(struct bdev *src, const struct sparsify_plan *p, const char *dst_path,
		  const char *fmt, const struct bdev_create_opts *opts, bool compress,
		  const struct sparsify_opts *o);
#endif
