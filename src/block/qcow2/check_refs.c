/*
 * qcow2 check, first half: walk everything that references a cluster and count it in memory,
 * validating the entries on the way (alignment, reserved bits, the end of the file).
 */
#include "block/qcow2/check.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * One more reference to every cluster touching [off, off+len). Like QEMU, a reference may reach
 * into the cluster after the end of the file (the last cluster may be partly written), not
 * further.
 */
uint64_t chk_count(struct chk *c, uint64_t off, uint64_t len)
{
	struct qcow2 *s = c->s;
	uint64_t overflows = 0;

	if (!len)
		return 0;
	if (off > UINT64_MAX - len || off + len >= c->file_size + s->cluster_size) {
		chk_msg(c,
			"ERROR: counting reference for region exceeding the end of the file by one "
			"cluster or more: offset 0x%llx size 0x%llx",
			ull(off), ull(len));
		c->res->corruptions++;
		return 0;
	}
	for (uint64_t k = off >> s->cluster_bits; k <= (off + len - 1) >> s->cluster_bits; k++) {
		if (c->ref[k] >= c->ref_max) {
			chk_msg(c, "ERROR: overflow cluster offset=0x%llx",
				ull(k << s->cluster_bits));
			c->res->corruptions++;
			overflows++;
			continue;
		}
		c->ref[k]++;
		if (k >= c->n)
			c->n = k + 1;
	}
	return overflows;
}

/*
 * Load the L2 table at l2off: through the cache when it is a proper table inside the file (so
 * repairs go through the cache too), else read into c->buf (zeroes past the end of the file;
 * an entry with an offset of 0 reads the header, as in QEMU). *cached says which; release with
 * chk_l2_put.
 */
int chk_l2_load(struct chk *c, uint64_t l2off, uint64_t **t, bool *cached)
{
	struct qcow2 *s = c->s;
	ssize_t n;

	*cached = false;
	if (l2off && !(l2off & (s->cluster_size - 1)) && l2off + s->cluster_size <= c->file_size) {
		*cached = true;
		return qcow2_cache_get(s->l2_cache, l2off, (void **)t);
	}
	memset(c->buf, 0, s->cluster_size);
	*t = c->buf;
	n = pread(s->fd, c->buf, s->cluster_size, (off_t)l2off);
	if (n < 0)
		return err_sys(errno, "%s: could not read the L2 table at offset %llu",
			       s->bs->filename, ull(l2off));
	return 0;
}

void chk_l2_put(struct chk *c, uint64_t **t, bool cached)
{
	if (cached)
		qcow2_cache_put(c->s->l2_cache, (void **)t);
	*t = NULL;
}

/* A standard (not compressed) L2 entry; returns true when the entry was repaired away. */
static bool check_l2_std(struct chk *c, uint64_t *t, uint64_t j, bool cached, bool active)
{
	struct qcow2 *s = c->s;
	uint64_t e = be64_get(&t[j]), off = e & QCOW2_L2E_OFFSET_MASK;
	struct bdev_check_result *res = c->res;

	if (e & L2E_STD_RESERVED_MASK) {
		chk_msg(c, "ERROR found l2 entry with reserved bits set: %llx", ull(e));
		res->corruptions++;
	}
	if ((e & QCOW2_OFLAG_ZERO) && s->version < 3) {
		/* qemu-img 7.2's check misses this, but its read path calls it corruption. */
		chk_msg(c, "ERROR found l2 entry with the zero flag in a version 2 image: %llx",
			ull(e));
		res->corruptions++;
	}
	if (!off)
		return false;
	if (off & (s->cluster_size - 1)) {
		res->corruptions++;
		if (!(e & QCOW2_OFLAG_ZERO)) {
			chk_msg(c,
				"ERROR offset=%llx: Data cluster is not properly aligned; L2 entry "
				"corrupted.",
				ull(off));
		} else {
			bool fix = (c->fix & BDEV_CHECK_FIX_ERRORS) && cached && s->version >= 3;
			chk_msg(c,
				"%s offset=%llx: Preallocated cluster is not properly aligned; L2 "
				"entry corrupted.",
				fix ? "Repairing" : "ERROR", ull(off));
			if (fix) {
				/* Nothing to lose: the entry read as zeroes anyway. */
				be64_put(&t[j], QCOW2_OFLAG_ZERO);
				qcow2_cache_mark_dirty(s->l2_cache, t);
				res->corruptions--;
				res->corruptions_fixed++;
				return true;
			}
		}
	}
	if (active) {
		res->allocated_clusters++;
		if (c->next_contiguous && off != c->next_contiguous)
			res->fragmented_clusters++;
		c->next_contiguous = off + s->cluster_size;
	}
	chk_count(c, off, s->cluster_size);
	return false;
}

static int check_l2(struct chk *c, uint64_t l2off, bool active)
{
	struct qcow2 *s = c->s;
	uint64_t *t, off, len;
	bool cached;
	int ret;

	ret = chk_l2_load(c, l2off, &t, &cached);
	if (ret < 0) {
		chk_msg(c, "ERROR: I/O error in check_refcounts_l2");
		c->res->check_errors++;
		return ret;
	}
	c->next_contiguous = 0;
	for (uint64_t j = 0; j < s->l2_size; j++) {
		uint64_t e = be64_get(&t[j]);
		if (!(e & QCOW2_OFLAG_COMPRESSED)) {
			check_l2_std(c, t, j, cached, active);
			continue;
		}
		qcow2_compressed_extent(s, e, &off, &len);
		if (e & QCOW2_OFLAG_COPIED) {
			chk_msg(
			    c,
			    "ERROR: coffset=0x%llx: copied flag must never be set for compressed "
			    "clusters",
			    ull(off));
			c->res->corruptions++;
		}
		chk_count(c, off, len);
		if (active) {
			/* Compressed clusters count as fragmented: they share sectors. */
			c->res->allocated_clusters++;
			c->res->compressed_clusters++;
			c->res->fragmented_clusters++;
		}
	}
	chk_l2_put(c, &t, cached);
	return 0;
}

/* An L1 table and all it reaches. mem is the table in host order, or NULL to read it. */
static int check_l1(struct chk *c, uint64_t l1off, uint32_t l1_size, const uint64_t *mem,
		    bool active)
{
	struct qcow2 *s = c->s;
	uint64_t bytes = (uint64_t)l1_size * 8;
	uint64_t *l1 = NULL;
	int ret = 0;

	if (!l1_size)
		return 0;
	chk_count(c, l1off, bytes);
	if (!mem) {
		l1 = calloc(l1_size, 8);
		if (!l1) {
			c->res->check_errors++;
			return err_set(ENOMEM, "%s: out of memory for an L1 table",
				       s->bs->filename);
		}
		if (pread(s->fd, l1, bytes, (off_t)l1off) < 0) {
			chk_msg(c, "ERROR: I/O error in check_refcounts_l1");
			c->res->check_errors++;
			ret = err_sys(errno, "%s: could not read the L1 table at offset %llu",
				      s->bs->filename, ull(l1off));
			goto out;
		}
		for (uint32_t i = 0; i < l1_size; i++)
			l1[i] = __builtin_bswap64(l1[i]);
		mem = l1;
	}
	for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
		uint64_t e = mem[i], l2off = e & QCOW2_L1E_OFFSET_MASK;
		if (!e)
			continue;
		if (e & L1E_RESERVED_MASK) {
			chk_msg(c, "ERROR found L1 entry with reserved bits set: %llx", ull(e));
			c->res->corruptions++;
		}
		chk_count(c, l2off, s->cluster_size);
		if (l2off & (s->cluster_size - 1)) {
			chk_msg(c,
				"ERROR l2_offset=%llx: Table is not cluster aligned; L1 entry "
				"corrupted",
				ull(l2off));
			c->res->corruptions++;
		}
		ret = check_l2(c, l2off, active);
	}
out:
	free(l1);
	return ret;
}

/* Version 3 snapshot entries must carry the large VM state size and the disk size (16 bytes of
 * extra data). The table was walked by open already, so its entries are inside the file. */
static void check_snapshot_extra(struct chk *c)
{
	struct qcow2 *s = c->s;
	uint64_t off = s->snapshots_offset;
	uint8_t e[40];

	for (uint32_t i = 0; i < s->nb_snapshots && s->version >= 3; i++) {
		if (pread(s->fd, e, sizeof(e), (off_t)off) != (ssize_t)sizeof(e))
			return;
		uint32_t extra = be32_get(e + 36);
		if (extra < 16 && (c->fix & BDEV_CHECK_FIX_ERRORS) && !s->bs->read_only) {
			chk_msg(c, "Repairing snapshot table entry %u is incomplete", i);
			c->snap_incomplete++;
		} else if (extra < 16) {
			chk_msg(c, "ERROR snapshot table entry %u is incomplete", i);
			c->res->corruptions++;
		}
		off = (off + 40 + extra + be16_get(e + 12) + be16_get(e + 14) + 7) & ~7ULL;
	}
}

static int check_snapshots(struct chk *c)
{
	struct qcow2 *s = c->s;
	int ret;

	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		const struct qcow2_snapshot *sn = &s->snapshots[i];
		if (sn->l1_offset & (s->cluster_size - 1)) {
			chk_msg(c,
				"ERROR snapshot %s (%s) l1_offset=%#llx: L1 table is not cluster "
				"aligned; snapshot table entry corrupted",
				sn->id, sn->name, ull(sn->l1_offset));
			c->res->corruptions++;
			continue;
		}
		if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
			chk_msg(
			    c,
			    "ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; snapshot "
			    "table entry corrupted",
			    sn->id, sn->name, sn->l1_size);
			c->res->corruptions++;
			continue;
		}
		ret = check_l1(c, sn->l1_offset, sn->l1_size, NULL, false);
		if (ret < 0)
			return ret;
	}
	chk_count(c, s->snapshots_offset, s->snapshots_size);
	return 0;
}

#define BME_MAX_DIR_BYTES (64ULL << 20)
#define BME_OFFSET_MASK	  0x00fffffffffffe00ULL
#define BME_RESERVED_MASK 0xff000000000001feULL

/* One bitmap's table and the data clusters it points at, a cluster of entries at a time. */
static int check_bitmap_table(struct chk *c, const char *name, uint64_t off, uint32_t size)
{
	struct qcow2 *s = c->s;
	uint64_t per = s->cluster_size / 8;

	chk_count(c, off, (uint64_t)size * 8);
	if (off & (s->cluster_size - 1)) {
		chk_msg(c, "ERROR bitmap '%s': table offset %#llx is not cluster aligned", name,
			ull(off));
		c->res->corruptions++;
		return 0;
	}
	for (uint64_t i = 0; i < size; i += per) {
		uint64_t n = size - i < per ? size - i : per;
		memset(c->buf, 0, s->cluster_size);
		if (off >= c->file_size || i * 8 >= c->file_size - off)
			break; /* reported by count_range */
		if (pread(s->fd, c->buf, n * 8, (off_t)(off + i * 8)) < 0) {
			c->res->check_errors++;
			return err_sys(errno, "%s: could not read the table of bitmap '%s'",
				       s->bs->filename, name);
		}
		for (uint64_t j = 0; j < n; j++) {
			uint64_t e = be64_get(&c->buf[j]), data = e & BME_OFFSET_MASK;
			if ((e & BME_RESERVED_MASK) || (data && (e & 1))) {
				chk_msg(c, "ERROR bitmap '%s': table entry %llu is invalid: %llx",
					name, ull(i + j), ull(e));
				c->res->corruptions++;
				continue;
			}
			chk_count(c, data, data ? s->cluster_size : 0);
		}
	}
	return 0;
}

/* The bitmap directory and every bitmap in it. dir points at dir_size bytes in memory. */
static int check_bitmap_dir(struct chk *c, const uint8_t *dir, uint64_t dir_size, uint32_t nb)
{
	uint64_t pos = 0;
	char name[65536];

	for (uint32_t i = 0; i < nb; i++) {
		if (dir_size - pos < 24)
			goto bad;
		const uint8_t *e = dir + pos;
		uint16_t name_len = be16_get(e + 18);
		uint32_t extra = be32_get(e + 20);
		uint64_t len = 24 + (uint64_t)extra + name_len;
		if (len > dir_size - pos)
			goto bad;
		memcpy(name, e + 24 + extra, name_len);
		name[name_len] = '\0';
		int ret = check_bitmap_table(c, name, be64_get(e), be32_get(e + 8));
		if (ret < 0)
			return ret;
		pos += (len + 7) & ~7ULL;
		if (pos > dir_size)
			pos = dir_size;
	}
	return 0;
bad:
	chk_msg(c, "ERROR bitmap directory is truncated or corrupted");
	c->res->corruptions++;
	return 0;
}

/* The bitmaps extension, when its autoclear bit says the bitmaps are valid. */
static int check_bitmaps(struct chk *c)
{
	struct qcow2 *s = c->s;
	size_t off = 0;

	if (!(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
		return 0;
	while (off + 8 <= s->ext_keep_len) {
		const uint8_t *p = s->ext_keep + off;
		uint32_t type = be32_get(p), len = be32_get(p + 4);
		if ((uint64_t)len > s->ext_keep_len - off - 8)
			return 0;
		if (type == QCOW2_EXT_BITMAPS && len >= 24) {
			uint32_t nb = be32_get(p + 8);
			uint64_t size = be64_get(p + 16), doff = be64_get(p + 24);
			chk_count(c, doff, size);
			if (!nb)
				return 0;
			if (size > BME_MAX_DIR_BYTES || doff >= c->file_size ||
			    size > c->file_size - doff) {
				chk_msg(c,
					"ERROR bitmap directory at %#llx (%llu bytes) is invalid",
					ull(doff), ull(size));
				c->res->corruptions++;
				return 0;
			}
			uint8_t *dir = malloc(size ? size : 1);
			if (!dir) {
				c->res->check_errors++;
				return err_set(ENOMEM, "%s: out of memory for the bitmap directory",
					       s->bs->filename);
			}
			int ret = 0;
			if (pread(s->fd, dir, size, (off_t)doff) != (ssize_t)size) {
				c->res->check_errors++;
				ret = err_sys(errno, "%s: could not read the bitmap directory",
					      s->bs->filename);
			} else {
				ret = check_bitmap_dir(c, dir, size, nb);
			}
			free(dir);
			return ret;
		}
		off += 8 + (((size_t)len + 7) & ~(size_t)7);
	}
	return 0;
}

/*
 * How the refcount block of table entry i can be read: through the cache, not at all (its
 * offset is not cluster aligned: every lookup fails, as in QEMU), or as zeroes (it lies past
 * the end of the file, where QEMU reads zeroes too).
 */
static uint8_t rb_state(const struct chk *c, uint64_t i)
{
	const struct qcow2 *s = c->s;
	uint64_t off = s->rt[i] & QCOW2_REFT_OFFSET_MASK;

	if (off & (s->cluster_size - 1))
		return CHK_RB_UNUSABLE;
	if (off && off >= c->file_size)
		return CHK_RB_ZEROES;
	return CHK_RB_OK;
}

/* Every refcount block: counted once, and checked to describe nothing but refcounts. */
static void check_refblocks(struct chk *c)
{
	struct qcow2 *s = c->s;

	for (uint64_t i = 0; i < s->rt_size; i++) {
		uint64_t off = s->rt[i] & QCOW2_REFT_OFFSET_MASK, k = off >> s->cluster_bits;
		c->bad_rb[i] = rb_state(c, i);
		if (s->rt[i] & REFT_RESERVED_MASK) {
			chk_msg(c, "ERROR refcount table entry %llu has reserved bits set", ull(i));
		} else if (off & (s->cluster_size - 1)) {
			chk_msg(c,
				"ERROR refcount block %llu is not cluster aligned; refcount table "
				"entry corrupted",
				ull(i));
		} else if (k >= c->n) {
			chk_msg(c, "ERROR refcount block %llu is outside image", ull(i));
		} else {
			if (!off)
				continue;
			uint64_t over = chk_count(c, off, s->cluster_size);
			if (c->ref[k] + over == 1)
				continue;
			/* It overlaps other metadata: writing refcounts into it would destroy
			 * that. (With 1-bit refcounts the overlap shows as an overflow.) */
			chk_msg(c, "ERROR refcount block %llu refcount=%llu", ull(i),
				ull(c->ref[k] + over));
		}
		/* Anything wrong here can only be repaired by a new refcount structure. */
		c->res->corruptions++;
		c->rebuild = true;
	}
}

int chk_count_references(struct chk *c)
{
	struct qcow2 *s = c->s;
	int ret;

	check_snapshot_extra(c);
	chk_count(c, 0, s->cluster_size);
	ret = check_l1(c, s->l1_offset, s->l1_size, s->l1, true);
	if (ret == 0)
		ret = check_snapshots(c);
	if (ret < 0)
		return ret;
	chk_count(c, s->rt_offset, s->rt_size * 8);
	ret = check_bitmaps(c);
	if (ret < 0)
		return ret;
	check_refblocks(c);
	return 0;
}
