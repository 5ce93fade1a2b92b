/* Shared by check.c, check_refs.c and check_rebuild.c: the state of one qcow2 check run. */
#ifndef LIGERO_QCOW2_CHECK_H
#define LIGERO_QCOW2_CHECK_H

#include "block/qcow2/qcow2.h"

#define L1E_RESERVED_MASK     0x7f000000000001ffULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL
#define REFT_RESERVED_MASK    0x1ffULL
#define CHECK_MAX_CLUSTERS    ((uint64_t)INT32_MAX)
/* A hostile image can have millions of bad entries; the counts stay exact past this. */
#define CHECK_MAX_MESSAGES 100000

/* How a refcount block can be read (bad_rb). */
enum { CHK_RB_OK, CHK_RB_UNUSABLE, CHK_RB_ZEROES };

struct chk {
	struct qcow2 *s;
	struct bdev_check_result *res;
	int fix;
	uint64_t file_size;
	uint64_t n;	  /* clusters compared: the file's, plus a partly referenced last one */
	uint32_t *ref;	  /* computed references per cluster (n + 1 entries) */
	uint64_t ref_max; /* largest count the array (and the image) can hold */
	uint8_t *bad_rb;  /* per refcount table entry: the block cannot be read */
	bool rebuild;	  /* the refcount structure itself is broken: no in-place repair */
	bool rebuilt;	  /* so it was replaced by a new one */
	uint32_t snap_incomplete; /* snapshot entries to write again with their extra data */
	uint64_t *buf;		  /* an L2 table that cannot go through the cache */
	uint64_t next_contiguous;
};

/* Add a finding to the result's messages (strdup'd, capped at CHECK_MAX_MESSAGES). */
void chk_msg(struct chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One more reference to every cluster touching [off, off+len); a corruption past the file.
 * Returns how many clusters could not take one more reference (refcount_max reached). */
uint64_t chk_count(struct chk *c, uint64_t off, uint64_t len);
/* Load an L2 table (through the cache when it is a proper table inside the file). */
int chk_l2_load(struct chk *c, uint64_t l2off, uint64_t **t, bool *cached);
void chk_l2_put(struct chk *c, uint64_t **t, bool cached);
/* Count every reference in the image into c->ref, checking entries on the way. */
int chk_count_references(struct chk *c);
/* Write a new refcount structure from c->ref after the end of the file and switch to it. */
int chk_rebuild(struct chk *c);

static inline unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

#endif
