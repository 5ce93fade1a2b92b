/*
 * qcow2 check: rebuild the refcount structure from the counts the check computed, for images
 * whose refcount table or blocks are themselves broken (unaligned, outside the file, reserved
 * bits, overlapping other metadata), where writing refcounts in place could destroy data.
 *
 * The new blocks and table go after everything in use (no cluster that anything references is
 * touched), then one header write switches to them. The old structure is left behind as leaked
 * clusters, which the repair pass that follows frees.
 */
#include "block/qcow2/check.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void rb_put(const struct qcow2 *s, uint8_t *rb, uint64_t i, uint64_t v)
{
	unsigned bits = s->refcount_bits;

	if (bits >= 8) {
		for (unsigned b = 0; b < bits / 8; b++)
			rb[i * (bits / 8) + b] = (uint8_t)(v >> (bits - 8 - 8 * b));
		return;
	}
	/* Sub-byte widths: entry 0 in the least significant bits, as QEMU stores them. */
	unsigned shift = (unsigned)(i * bits % 8);
	rb[i * bits / 8] |= (uint8_t)(v << shift);
}

/* Clusters for blocks and table so that the blocks also describe themselves and the table. */
static int rebuild_layout(struct chk *c, uint64_t start, uint64_t *nblocks, uint64_t *tclusters)
{
	struct qcow2 *s = c->s;
	uint64_t per = 1ULL << s->rb_bits, nb = 0, tc = 0;

	for (int iter = 0; iter < 64; iter++) {
		uint64_t total = start + nb + tc;
		uint64_t nb2 = (total + per - 1) / per;
		uint64_t tc2 = (nb2 * 8 + s->cluster_size - 1) >> s->cluster_bits;
		if (nb2 == nb && tc2 == tc) {
			if ((tc << s->cluster_bits) > QCOW2_MAX_RT_BYTES)
				break;
			*nblocks = nb;
			*tclusters = tc;
			return 0;
		}
		nb = nb2;
		tc = tc2;
	}
	return err_set(EFBIG, "%s: the rebuilt refcount table would be larger than %u MiB",
		       s->bs->filename, QCOW2_MAX_RT_BYTES >> 20);
}

static int write_blocks(struct chk *c, uint64_t start, uint64_t nb, uint64_t total)
{
	struct qcow2 *s = c->s;
	uint64_t per = 1ULL << s->rb_bits;
	uint8_t *rb = malloc(s->cluster_size);
	int ret = 0;

	if (!rb)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	for (uint64_t b = 0; b < nb && ret == 0; b++) {
		memset(rb, 0, s->cluster_size);
		for (uint64_t i = 0; i < per && b * per + i < total; i++)
			rb_put(s, rb, i, c->ref[b * per + i]);
		uint64_t off = (start + b) << s->cluster_bits;
		qcow2_cache_discard(s->rb_cache, off);
		ret = bdev_file_pwrite_meta(s->bs, rb, s->cluster_size, off, "a refcount block");
	}
	free(rb);
	return ret;
}

/* Write the table, switch the header to it, and make it the one in memory. */
static int switch_table(struct chk *c, uint64_t start, uint64_t nb, uint64_t tc)
{
	struct qcow2 *s = c->s;
	uint64_t entries = (tc << s->cluster_bits) / 8;
	uint64_t toff = (start + nb) << s->cluster_bits;
	uint64_t *rt = calloc(entries, 8), *be = calloc(entries, 8);
	int ret = 0;

	if (!rt || !be) {
		ret = err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		goto out;
	}
	for (uint64_t b = 0; b < nb; b++) {
		rt[b] = (start + b) << s->cluster_bits;
		be64_put(&be[b], rt[b]);
	}
	ret = bdev_file_pwrite_meta(s->bs, be, entries * 8, toff, "the new refcount table");
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0)
		goto out;
	ret = qcow2_header_set_table(s, QCOW2_HDR_RT_OFFSET, toff, (uint32_t)tc);
	if (ret < 0)
		goto out;
	for (uint64_t i = 0; i < s->rt_size; i++)
		if (!(s->rt[i] & (s->cluster_size - 1)) && (s->rt[i] & QCOW2_REFT_OFFSET_MASK))
			qcow2_cache_discard(s->rb_cache, s->rt[i] & QCOW2_REFT_OFFSET_MASK);
	free(s->rt);
	s->rt = rt;
	rt = NULL;
	s->rt_size = entries;
	s->rt_offset = toff;
	s->rt_clusters = (uint32_t)tc;
	if ((toff + (tc << s->cluster_bits)) > s->file_end)
		s->file_end = toff + (tc << s->cluster_bits);
out:
	free(rt);
	free(be);
	return ret;
}

int chk_rebuild(struct chk *c)
{
	struct qcow2 *s = c->s;
	uint64_t start = c->n, nb = 0, tc = 0;
	uint32_t *ref;
	int ret;

	chk_msg(c, "Rebuilding refcount structure");
	ret = rebuild_layout(c, start, &nb, &tc);
	if (ret < 0)
		return ret;
	/* Dirty blocks of the old structure must not be written over anything later. */
	ret = qcow2_cache_flush(s->rb_cache);
	if (ret < 0)
		return ret;
	uint64_t total = start + nb + tc;
	ref = realloc(c->ref, (total + 1) * sizeof(*ref));
	if (!ref)
		return err_set(ENOMEM, "%s: out of memory rebuilding refcounts", s->bs->filename);
	c->ref = ref;
	for (uint64_t k = start; k <= total; k++)
		ref[k] = k < total; /* the new blocks and table */
	ret = write_blocks(c, start, nb, total);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret = switch_table(c, start, nb, tc);
	if (ret < 0)
		return ret;
	c->n = total;
	c->rebuilt = true;
	return 0;
}
