/*
 * Overlap protection: before any write, the target clusters must hold what the writer thinks
 * they hold (guest data, an L2 table, a refcount block). A hostile or damaged table entry that
 * points into metadata is refused instead of overwriting it, and the image is marked corrupt,
 * as QEMU does ("Preventing invalid write on metadata").
 *
 * The map costs one byte per host cluster (16 MiB for a 1 TiB file of 64 KiB clusters) and is
 * built once, on the first write or metadata change after open, by walking the tables:
 * O(L1 + L2 + refcount table).
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const meta_names[] = {
    "guest data",	"the header",  "the L1 table",	    "the refcount table",
    "a refcount block", "an L2 table", "snapshot metadata", "two tables at once",
};

static int meta_grow(struct qcow2 *s, uint64_t n)
{
	if (n <= s->meta_n)
		return 0;
	uint64_t cap = n + n / 4 + 64;
	uint8_t *m = realloc(s->meta, cap);
	if (!m)
		return err_set(ENOMEM, "%s: out of memory for the metadata map", s->bs->filename);
	memset(m + s->meta_n, 0, cap - s->meta_n);
	s->meta = m;
	s->meta_n = cap;
	return 0;
}

void qcow2_meta_mark(struct qcow2 *s, uint64_t off, uint64_t len, enum qcow2_meta t)
{
	if (!len)
		return;
	/* Build the map before recording the change, never after: the change is made to tables
	 * that are not switched in yet (a refcount table or L1 table being replaced), so a map
	 * built later in the same operation, from the old tables, would not know the new ones. */
	if (!s->meta_built && qcow2_meta_build(s) < 0)
		return;
	uint64_t first = off >> s->cluster_bits, last = (off + len - 1) >> s->cluster_bits;
	/* A table entry far past the end of the file (a damaged or hostile image) is not mapped:
	 * nothing can be allocated there before the file grows past what the map covers. */
	uint64_t limit = ((s->file_end >> s->cluster_bits) + 1) * 2 + 4096;
	if (first >= limit)
		return;
	if (last >= limit)
		last = limit - 1;
	if (meta_grow(s, last + 1) < 0) {
		s->meta_built = false; /* rebuilt on the next write */
		return;
	}
	for (uint64_t c = first; c <= last; c++) {
		if (t != QCOW2_META_NONE && s->meta[c] != QCOW2_META_NONE && s->meta[c] != t)
			s->meta[c] = QCOW2_META_CONFLICT;
		else
			s->meta[c] = (uint8_t)t;
	}
}

static void mark(struct qcow2 *s, uint64_t off, uint64_t len, enum qcow2_meta t)
{
	qcow2_meta_mark(s, off, len, t);
}

static int mark_l1_tables(struct qcow2 *s, const uint64_t *l1, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t l2 = l1[i] & QCOW2_L1E_OFFSET_MASK;
		if (l2)
			mark(s, l2, s->cluster_size, QCOW2_META_L2);
	}
	return 0;
}

int qcow2_meta_build(struct qcow2 *s)
{
	uint64_t cs = s->cluster_size;
	int ret;

	s->meta_built = true;
	ret = meta_grow(s, (s->file_end >> s->cluster_bits) + 1);
	if (ret < 0) {
		s->meta_built = false;
		return ret;
	}
	memset(s->meta, 0, s->meta_n);
	mark(s, 0, cs, QCOW2_META_HEADER);
	mark(s, s->l1_offset, (uint64_t)s->l1_size * 8, QCOW2_META_L1);
	mark(s, s->rt_offset, (uint64_t)s->rt_clusters * cs, QCOW2_META_RT);
	for (uint64_t i = 0; i < s->rt_size; i++)
		if (s->rt[i] & QCOW2_REFT_OFFSET_MASK)
			mark(s, s->rt[i] & QCOW2_REFT_OFFSET_MASK, cs, QCOW2_META_RB);
	mark_l1_tables(s, s->l1, s->l1_size);
	if (s->snapshots_size)
		mark(s, s->snapshots_offset, s->snapshots_size, QCOW2_META_SNAP);
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		const struct qcow2_snapshot *sn = &s->snapshots[i];
		uint64_t bytes = (uint64_t)sn->l1_size * 8;
		if (!bytes)
			continue;
		uint64_t *l1 = malloc(bytes);
		if (!l1) {
			s->meta_built = false;
			return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		}
		if (pread(s->fd, l1, bytes, (off_t)sn->l1_offset) == (ssize_t)bytes) {
			for (uint32_t j = 0; j < sn->l1_size; j++)
				l1[j] = __builtin_bswap64(l1[j]);
			mark(s, sn->l1_offset, bytes, QCOW2_META_SNAP);
			mark_l1_tables(s, l1, sn->l1_size);
		}
		free(l1);
	}
	return 0;
}

int qcow2_meta_check(struct qcow2 *s, uint64_t off, uint64_t len, enum qcow2_meta t)
{
	if (!len)
		return 0;
	if (!s->meta_built) {
		int ret = qcow2_meta_build(s);
		if (ret < 0)
			return ret;
	}
	uint64_t first = off >> s->cluster_bits, last = (off + len - 1) >> s->cluster_bits;
	for (uint64_t c = first; c <= last && c < s->meta_n; c++) {
		if (s->meta[c] == t)
			continue;
		return qcow2_signal_corruption(s, "preventing a write of %s at offset %llu over %s",
					       meta_names[t], (unsigned long long)off,
					       meta_names[s->meta[c]]);
	}
	return 0;
}

void qcow2_meta_free(struct qcow2 *s)
{
	free(s->meta);
	s->meta = NULL;
	s->meta_n = 0;
	s->meta_built = false;
}
