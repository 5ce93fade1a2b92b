/*
 * qcow2 consistency check and repair, with qemu-img check's semantics and wording.
 *
 * The check counts in memory how often each host cluster is referenced (header, L1 and L2
 * tables, data and compressed extents, refcount table and blocks, snapshot table and every
 * snapshot's tables, the bitmap directory), compares that with the stored refcounts, then checks
 * that every COPIED flag says "refcount is 1".
 *
 * Repair raises refcounts that are too low before anything is lowered, and raises those whose
 * refcount block exists before those that need a new block: a new block is allocated by scanning
 * for refcount 0, which must never hand out a cluster that is still referenced. What the repair
 * cannot fix in place (a refcount structure that is itself broken, references past the end of
 * the file) is reported and left alone. After a repair the whole check runs again and the result
 * describes what remains, as qemu-img check -r does.
 *
 * Cost: one 32-bit counter per cluster of the file (refused beyond 2^31 clusters), one pass over
 * every L2 table per L1 table that references it.
 */
#include "block/qcow2/check.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void chk_msg(struct chk *c, const char *fmt, ...)
{
	struct bdev_check_result *res = c->res;
	char *line = NULL, **m;
	va_list ap;

	if (res->nmessages > CHECK_MAX_MESSAGES)
		return;
	if (res->nmessages == CHECK_MAX_MESSAGES) {
		line = strdup("(further messages suppressed)");
	} else {
		va_start(ap, fmt);
		if (vasprintf(&line, fmt, ap) < 0)
			line = NULL;
		va_end(ap);
	}
	if (!line)
		return;
	/* Capacity doubles at powers of two (from 16): appending stays O(1) amortised. */
	size_t n = res->nmessages;
	if (n == 0 || (n >= 16 && !(n & (n - 1)))) {
		m = realloc(res->messages, (n ? 2 * n : 16) * sizeof(*m));
		if (!m) {
			free(line);
			return;
		}
		res->messages = m;
	}
	res->messages[res->nmessages++] = line;
}

/* Refcount of a cluster, never reading through a refcount block known to be broken. */
static int get_rc(struct chk *c, uint64_t cluster, uint64_t *val)
{
	struct qcow2 *s = c->s;
	uint64_t idx = cluster >> s->rb_bits;

	*val = 0;
	if (idx < s->rt_size && c->bad_rb[idx] == CHK_RB_UNUSABLE)
		return -EIO;
	if (idx < s->rt_size && c->bad_rb[idx] == CHK_RB_ZEROES)
		return 0;
	return qcow2_refcount_get(s, cluster, val);
}

static bool rb_present(const struct qcow2 *s, uint64_t cluster)
{
	uint64_t idx = cluster >> s->rb_bits;

	return idx < s->rt_size && (s->rt[idx] & QCOW2_REFT_OFFSET_MASK);
}

/* Set one refcount during repair; reports and counts the outcome. */
static void repair_one(struct chk *c, uint64_t i, uint64_t stored)
{
	uint64_t want = c->ref[i];
	int ret;

	chk_msg(c, "Repairing cluster %llu refcount=%llu reference=%llu", ull(i), ull(stored),
		ull(want));
	ret = qcow2_refcount_set(c->s, i, want);
	if (ret == 0) {
		if (stored > want)
			c->res->leaks_fixed++;
		else
			c->res->corruptions_fixed++;
		return;
	}
	chk_msg(c, "ERROR could not repair the refcount of cluster %llu: %s", ull(i), err_msg());
	if (stored > want)
		c->res->leaks++;
	else
		c->res->corruptions++;
}

/*
 * Repair the mismatches found by compare, in three passes: raise counts whose block exists (no
 * allocation can happen), raise the rest (a new block may be allocated: the scan starts past
 * every referenced cluster, since clusters without a block still read as free), lower.
 */
static void repair_refcounts(struct chk *c, bool raise, bool lower)
{
	struct qcow2 *s = c->s;

	for (int pass = 0; pass < 3; pass++) {
		if (pass == 1 && s->free_cluster_index < c->n)
			s->free_cluster_index = c->n;
		for (uint64_t i = 0; i < c->n; i++) {
			uint64_t stored;
			if (c->ref[i] == 0 && pass < 2)
				continue;
			if (get_rc(c, i, &stored) < 0 || stored == c->ref[i])
				continue;
			if (stored < c->ref[i] &&
			    (!raise || pass == 2 || (pass == 0 && !rb_present(s, i))))
				continue;
			if (stored > c->ref[i] && (!lower || pass != 2))
				continue;
			repair_one(c, i, stored);
		}
	}
}

/* Compare computed with stored refcounts; with fix, repair what can be repaired in place. */
static int compare_refcounts(struct chk *c)
{
	struct qcow2 *s = c->s;
	bool raise = (c->fix & BDEV_CHECK_FIX_ERRORS) && !c->rebuild;
	bool lower = (c->fix & BDEV_CHECK_FIX_LEAKS) && !c->rebuild;
	uint64_t highest = 0, pending = 0, stored;
	int ret;

	for (uint64_t i = 0; i < c->n; i++) {
		uint64_t idx = i >> s->rb_bits;
		if (idx < s->rt_size && c->bad_rb[idx] == CHK_RB_UNUSABLE) {
			/* One message per unusable block, not one per cluster. */
			if (i == idx << s->rb_bits) {
				chk_msg(c,
					"Can't get refcount for clusters %llu and up: refcount "
					"block %llu is not cluster aligned",
					ull(i), ull(idx));
				c->res->check_errors++;
			}
			if (c->ref[i])
				highest = i;
			continue;
		}
		ret = get_rc(c, i, &stored);
		if (ret < 0) {
			chk_msg(c, "Can't get refcount for cluster %llu: %s", ull(i),
				strerror(-ret));
			c->res->check_errors++;
			continue;
		}
		if (stored || c->ref[i])
			highest = i;
		if (stored == c->ref[i])
			continue;
		if (stored < c->ref[i] ? raise : lower) {
			pending++;
			continue;
		}
		chk_msg(c, "%s cluster %llu refcount=%llu reference=%u",
			stored < c->ref[i] ? "ERROR" : "Leaked", ull(i), ull(stored), c->ref[i]);
		if (stored < c->ref[i])
			c->res->corruptions++;
		else
			c->res->leaks++;
	}
	c->res->image_end_offset = (highest + 1) << s->cluster_bits;
	if (c->rebuild && (c->fix & BDEV_CHECK_FIX_ERRORS))
		return chk_rebuild(c);
	if (c->rebuild && c->fix) {
		/* Leaks alone cannot be repaired through a broken structure. */
		chk_msg(c, "ERROR need to rebuild refcount structures");
		c->res->check_errors++;
	}
	if (pending)
		repair_refcounts(c, raise, lower);
	return 0;
}

/* COPIED must be set exactly when the refcount is 1, on L1 entries and standard L2 entries. */
static int check_copied_l2(struct chk *c, uint64_t l2off, bool repair)
{
	struct qcow2 *s = c->s;
	uint64_t *t, rc;
	bool cached;
	int ret;

	ret = chk_l2_load(c, l2off, &t, &cached);
	if (ret < 0) {
		chk_msg(c, "ERROR: Could not read L2 table: %s", strerror(-ret));
		c->res->check_errors++;
		return ret;
	}
	for (uint64_t j = 0; j < s->l2_size; j++) {
		uint64_t e = be64_get(&t[j]), off = e & QCOW2_L2E_OFFSET_MASK;
		if ((e & QCOW2_OFLAG_COMPRESSED) || !off)
			continue;
		if (get_rc(c, off >> s->cluster_bits, &rc) < 0)
			continue;
		if ((rc == 1) == !!(e & QCOW2_OFLAG_COPIED))
			continue;
		bool fix = repair && cached;
		chk_msg(c, "%s OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu",
			fix ? "Repairing" : "ERROR", ull(e), ull(rc));
		if (!fix) {
			c->res->corruptions++;
			continue;
		}
		be64_put(&t[j], rc == 1 ? (e | QCOW2_OFLAG_COPIED) : (e & ~QCOW2_OFLAG_COPIED));
		qcow2_cache_mark_dirty(s->l2_cache, t);
		c->res->corruptions_fixed++;
	}
	chk_l2_put(c, &t, cached);
	return 0;
}

static int check_copied(struct chk *c)
{
	struct qcow2 *s = c->s;
	struct bdev_check_result *res = c->res;
	bool repair;
	uint64_t rc;
	int ret;

	/* With leaks-only repair, flags are only trusted to refcounts that are now right. */
	if (c->fix & BDEV_CHECK_FIX_ERRORS)
		repair = true;
	else
		repair = (c->fix & BDEV_CHECK_FIX_LEAKS) && !res->check_errors &&
			 !res->corruptions && !res->leaks;
	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t e = s->l1[i], l2off = e & QCOW2_L1E_OFFSET_MASK;
		if (!l2off || get_rc(c, l2off >> s->cluster_bits, &rc) < 0)
			continue;
		if ((rc == 1) != !!(e & QCOW2_OFLAG_COPIED)) {
			chk_msg(
			    c,
			    "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx refcount=%llu",
			    repair ? "Repairing" : "ERROR", i, ull(e), ull(rc));
			if (repair) {
				s->l1[i] =
				    rc == 1 ? (e | QCOW2_OFLAG_COPIED) : (e & ~QCOW2_OFLAG_COPIED);
				ret = qcow2_l1_write(s, i, 1);
				if (ret < 0) {
					res->check_errors++;
					return ret;
				}
				res->corruptions_fixed++;
			} else {
				res->corruptions++;
			}
		}
		ret = check_copied_l2(c, l2off, repair);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Refcounts reach the disk before the L2 tables whose flags were derived from them. */
static int write_back(struct qcow2 *s)
{
	int ret = qcow2_cache_flush(s->rb_cache);

	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret = qcow2_cache_flush(s->l2_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	return ret;
}

/* One full check (with fix, one repair); fills the counters of res. *rebuilt: the refcount
 * structure was replaced, and a repair pass must follow to free the old one. */
static int check_once(struct qcow2 *s, int fix, struct bdev_check_result *res, bool *rebuilt)
{
	struct chk c = {.s = s, .res = res, .fix = fix};
	struct stat st;
	int ret;

	if (fstat(s->fd, &st) < 0) {
		res->check_errors++;
		return err_sys(errno, "%s: could not stat", s->bs->filename);
	}
	c.file_size = (uint64_t)st.st_size;
	c.n = (c.file_size + s->cluster_size - 1) >> s->cluster_bits;
	if (c.n > CHECK_MAX_CLUSTERS) {
		res->check_errors++;
		return err_set(EFBIG, "%s: image file of %llu bytes has too many clusters to check",
			       s->bs->filename, ull(c.file_size));
	}
	c.ref_max = s->refcount_max < UINT32_MAX ? s->refcount_max : UINT32_MAX;
	c.ref = calloc(c.n + 1, sizeof(*c.ref));
	c.bad_rb = calloc(s->rt_size ? s->rt_size : 1, 1);
	c.buf = malloc(s->cluster_size);
	if (!c.ref || !c.bad_rb || !c.buf) {
		res->check_errors++;
		ret = err_set(ENOMEM, "%s: out of memory for the refcount check of %llu clusters",
			      s->bs->filename, ull(c.n));
		goto out;
	}
	/* QEMU counts the virtual size in whole sectors, rounded down. */
	res->total_clusters = ((s->bs->size & ~511ULL) + s->cluster_size - 1) >> s->cluster_bits;
	ret = chk_count_references(&c);
	if (ret < 0)
		goto out;
	ret = compare_refcounts(&c);
	if (ret < 0) {
		res->check_errors++;
		goto out;
	}
	*rebuilt = c.rebuilt;
	if (fix && !s->bs->read_only) {
		ret = write_back(s);
		if (ret < 0) {
			res->check_errors++;
			goto out;
		}
	}
	/* After a rebuild the flags are checked by the repair pass that follows, against
	 * refcounts without the old structure's double counts; that pass also rewrites the
	 * snapshot table. */
	if (!c.rebuilt && c.snap_incomplete) {
		/* Like QEMU: after the refcounts are right, a new table replaces the old. */
		ret = qcow2_snapshot_table_rewrite(s);
		if (ret < 0) {
			chk_msg(&c, "ERROR could not write the snapshot table: %s", err_msg());
			res->corruptions += c.snap_incomplete;
			res->check_errors++;
			goto out;
		}
		res->corruptions_fixed += c.snap_incomplete;
	}
	if (!c.rebuilt)
		ret = check_copied(&c);
out:
	free(c.ref);
	free(c.bad_rb);
	free(c.buf);
	return ret;
}

static void counts_clear(struct bdev_check_result *res)
{
	res->corruptions = res->leaks = res->check_errors = 0;
	res->allocated_clusters = res->fragmented_clusters = res->compressed_clusters = 0;
	res->total_clusters = res->image_end_offset = 0;
}

/* After a rebuild: repair again (the old structure is now leaked), and credit the rebuild with
 * the corruptions and leaks it made go away. */
static int repair_after_rebuild(struct qcow2 *s, int fix, struct bdev_check_result *res)
{
	int64_t corr = res->corruptions, leaks = res->leaks;
	int64_t lf = res->leaks_fixed, cf = res->corruptions_fixed;
	bool again = false;
	int ret;

	counts_clear(res);
	res->leaks_fixed = res->corruptions_fixed = 0;
	ret = check_once(s, fix, res, &again);
	if (ret < 0)
		return ret;
	if (again)
		return err_set(EIO, "%s: the rebuilt refcount structure is still broken",
			       s->bs->filename);
	/* Leaks fixed now are mostly the old structure, made by the rebuild: what counts is
	 * that the leaks found before are gone. Corruptions found before and not seen now were
	 * fixed by the rebuild. */
	if (fix & BDEV_CHECK_FIX_LEAKS)
		res->leaks_fixed = lf + leaks;
	else
		res->leaks_fixed = lf;
	int64_t seen = res->corruptions + res->corruptions_fixed;
	res->corruptions_fixed += cf + (corr > seen ? corr - seen : 0);
	return write_back(s);
}

int qcow2_check(struct bdev *bs, int fix, struct bdev_check_result *res)
{
	struct qcow2 *s = bs->opaque;
	bool rebuilt = false;
	int ret;

	if (fix && bs->read_only)
		return err_set(EROFS, "%s: cannot repair an image opened read-only", bs->filename);
	if (!bs->read_only) {
		/* The check reads some tables from the file: they must be current there. */
		ret = qcow2_flush_caches(s);
		if (ret < 0)
			return ret;
	}
	ret = check_once(s, fix, res, &rebuilt);
	if (ret < 0 || !fix)
		return ret;
	ret = write_back(s);
	if (ret == 0 && rebuilt)
		ret = repair_after_rebuild(s, fix, res);
	if (ret < 0)
		return ret;
	if (res->leaks_fixed || res->corruptions_fixed) {
		/* Report what remains, as a second plain check sees it. */
		int64_t lf = res->leaks_fixed, cf = res->corruptions_fixed;
		counts_clear(res);
		ret = check_once(s, 0, res, &rebuilt);
		res->leaks_fixed = lf;
		res->corruptions_fixed = cf;
		if (ret < 0)
			return ret;
	}
	if (!res->corruptions && !res->check_errors) {
		ret = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT, false);
		if (ret < 0)
			return ret;
		s->corrupt = false;
		/* Every reference is counted again: allocation may scan from the start once
		 * more (repair moved the scan past all references). */
		s->free_cluster_index = 1;
	}
	return 0;
}
