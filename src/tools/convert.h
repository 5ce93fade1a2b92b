/*
 * The copy engine: reads one or more sources (each through its whole backing chain, several
 * concatenated) and writes what matters into a target, in guest order. Used by img convert, and
 * by commit and rebase through convert_copy_range.
 */
#ifndef LIGERO_TOOLS_CONVERT_H
#define LIGERO_TOOLS_CONVERT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct bdev;

/* The most compression threads a copy runs (-m). */
#define CONVERT_MAX_WORKERS 64
/* Source reads in flight (reader threads, one 4 MiB batch each): the default keeps as many
 * bytes in flight as qemu-img's default 8 requests of 2 MiB, the most as its -m 16. */
#define CONVERT_DEFAULT_READERS 4
#define CONVERT_MAX_READERS	8
/* The largest -S, as qemu-img's. */
#define CONVERT_MAX_SPARSE (16u << 20)

struct convert_opts {
	/* Zero runs at least this long (bytes) are not written as data (-S); 0 writes all.
	 * A multiple of 512 up to CONVERT_MAX_SPARSE. */
	uint64_t min_sparse;
	/* Compress every cluster with the target's codec on `workers` threads (0 = online CPUs,
	 * at most CONVERT_MAX_WORKERS); a cluster that does not shrink is written plainly. */
	bool compress;
	int workers;
	/* Batches read at once, each on a thread of its own (0 = CONVERT_DEFAULT_READERS; more
	 * than CONVERT_MAX_READERS are CONVERT_MAX_READERS): a source with latency (RBD, NBD)
	 * has that many reads in flight. The output is written in guest order whatever it is. */
	int readers;
	/* The target reads as zeroes already (new image without backing, --target-is-zero):
	 * zero runs are skipped instead of written. */
	bool target_is_zero;
	/* The target has a backing file: read what it shows now and write only the clusters that
	 * differ (-B). */
	bool diff_target;
	/* --salvage: a source range that cannot be read is retried sector by sector, and sectors
	 * that still fail are taken as zeroes (a warning names each failed range) instead of
	 * ending the copy. */
	bool salvage;
	bool quiet; /* no salvage warnings */
	/* Called from the engine's thread with bytes done so far (may be NULL). */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	/* Checked between batches; when it becomes non-zero the copy stops with -EINTR. */
	volatile sig_atomic_t *stop;
};

/* The options convert_run refuses (workers or min_sparse out of range), to check before a
 * target is created. Returns 0 or -EINVAL with a message. */
int convert_opts_check(const struct convert_opts *o);

/* Copy src[0..n) concatenated into dst starting at guest offset 0. dst must be at least as
 * large as the sources together. Returns 0 or -errno with a message recorded. */
int convert_run(struct bdev *const *src, int n, struct bdev *dst, const struct convert_opts *o);

/* Copy [off, off+len) of src (as its guest sees it) into dst at the same offset, every byte
 * written (no zero skipping, no compression): commit and rebase use it for changed ranges.
 * buf is scratch space of buf_len bytes (at least 64 KiB). */
int convert_copy_range(struct bdev *src, struct bdev *dst, uint64_t off, uint64_t len, void *buf,
		       size_t buf_len);

/* Online CPUs (at least 1). */
int convert_default_workers(void);

#endif
