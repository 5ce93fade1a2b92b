/* Internals shared by the copy engine's files (convert.c: the ring and its threads;
 * convert_read.c: filling one slot). Not part of the tools/ API. */
#ifndef LIGERO_TOOLS_CONVERT_PRIV_H
#define LIGERO_TOOLS_CONVERT_PRIV_H

#include "block/block.h"
#include "tools/convert.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define BATCH_BYTES (4u << 20)
#define MAX_SLOTS   16
#define MAX_MAPS    8 /* source files mapped at once (one per layer of the chains read) */

enum unit_kind {
	U_SKIP, /* nothing to write: the target already reads these bytes */
	U_ZERO, /* write zeroes */
	U_DATA, /* write the data plainly */
	U_COMP, /* compress (a worker fills clen), then write */
};

struct unit {
	uint8_t kind;
	bool zero_known;    /* block status said zero: no need to scan */
	int64_t clen;	    /* U_COMP: compressed length, or -ENOSPC to write plainly */
	const uint8_t *src; /* the unit's bytes when not in the slot's buffer (mapped, or zero) */
};

/* One batch of the copy. Owned by the reader that claimed it until `ready`, then shared with
 * the workers (units listed in comp, claimed under the lock) and the writer (once pending is
 * 0), and free again once the writer has passed it. */
struct slot {
	uint64_t off, len;
	uint8_t *in, *out, *cur;
	struct unit *u;
	size_t nunits;
	size_t *comp; /* indexes of the U_COMP units */
	size_t ncomp, next_claim, pending;
	bool ready;	      /* filled (locked): workers and the writer may use it */
	struct iovec *mapped; /* the mapped ranges its units point into, dropped once written */
	size_t nmapped;
};

/* A source file mapped whole (read-only), for units read where they lie. */
struct fmap {
	const struct bdev *file;
	const uint8_t *p; /* NULL: the file cannot be mapped */
	uint64_t len;
};

/* What one reader thread keeps to itself: the source extent it last looked up (a cache: one
 * lookup serves many batches). */
struct reader {
	struct engine *e;
	int ext_src;
	struct bdev_extent ext;
	bool main; /* the caller's thread: reports progress */
};

struct engine {
	struct bdev *const *src;
	int nsrc;
	struct bdev *dst;
	const struct convert_opts *o;
	uint64_t total, unit;
	size_t batch;
	uint64_t nbatch; /* batches in the copy */
	struct slot slots[MAX_SLOTS];
	int nslots;
	/* Everything below (but zero_unit, set before the threads start) is guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t claim_seq; /* next batch a reader takes */
	uint64_t filled;    /* batches filled */
	uint64_t write_seq; /* next batch the writer writes */
	int err;
	char msg[1024];
	uint64_t done;
	struct fmap maps[MAX_MAPS]; /* entries are set once, never changed until the end */
	int nmaps;
	uint8_t *zero_unit; /* e->unit zero bytes */
};

/* Fill slot s with the batch at guest offset off: read (or map) the sources, detect zeroes and
 * classify every unit. Runs without the engine lock (but for file_map's short critical
 * section). Returns 0 or -errno with a message recorded in this thread. */
int convert_fill_slot(struct reader *r, struct slot *s, uint64_t off);

/* The bytes of unit j of a slot, wherever they are. */
static inline const uint8_t *convert_unit_data(const struct engine *e, const struct slot *s,
					       size_t j)
{
	return s->u[j].src ? s->u[j].src : s->in + j * e->unit;
}

#endif
