/*
 * XFS data fork mappings: the extent list kept in the inode, or the bmap btree (root in the
 * inode, v4 "BMAP" or v5 "BMA3" blocks below it). The whole map is loaded into memory; it only
 * ever grows with records really read from disk, and those must come in strictly increasing,
 * non-overlapping file order, which also stops a btree whose pointers loop or repeat.
 */
#include "fs/xfs_priv.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XFS_BMAP_MAGIC	   0x424d4150 /* "BMAP" */
#define XFS_BMAP_CRC_MAGIC 0x424d4133 /* "BMA3" */
#define BMBT_MAXLEVELS	   9	      /* deeper than any file XFS can hold */
#define BMBT_HDR_V4	   24
#define BMBT_HDR_V5	   72

void xfs_extent_decode(const uint8_t rec[16], struct xfs_extent *e)
{
	uint64_t l0 = be64_get(rec), l1 = be64_get(rec + 8);

	e->unwritten = l0 >> 63;
	e->off = (l0 & ~(1ULL << 63)) >> 9;
	e->fsb = ((l0 & 0x1ff) << 43) | (l1 >> 21);
	e->len = l1 & ((1ULL << 21) - 1);
}

void xfs_bmap_free(struct xfs_bmap *map)
{
	free(map->v);
	map->v = NULL;
	map->n = 0;
}

struct loader {
	struct xfs *fs;
	const struct xfs_inode *ip;
	struct xfs_bmap *map;
	size_t cap;
	uint8_t *blk;
};

static int bmap_err(struct loader *l, const char *what)
{
	return err_set(EIO, "%s: xfs: inode %llu: extent map: %s (damaged)", l->fs->name,
		       (unsigned long long)l->ip->ino, what);
}

/* Append one record after checking it against the geometry and the one before it. */
static int bmap_add(struct loader *l, const uint8_t *rec)
{
	struct xfs_bmap *m = l->map;
	struct xfs_extent e;
	uint64_t byte;

	xfs_extent_decode(rec, &e);
	if (m->n >= l->ip->nextents)
		return bmap_err(l, "more extents than the inode records");
	if (e.len == 0)
		return bmap_err(l, "empty extent");
	/* No file is larger than 2^63 bytes: later offset arithmetic in bytes cannot wrap. */
	if (e.off + e.len > (1ULL << (63 - l->fs->sb.blocklog)))
		return bmap_err(l, "extent past the largest file offset");
	if (m->n && e.off < m->v[m->n - 1].off + m->v[m->n - 1].len)
		return bmap_err(l, "extents out of order or overlapping");
	if (xfs_fsb_to_byte(l->fs, e.fsb, e.len, &byte) < 0)
		return bmap_err(l, "extent outside the filesystem or its allocation group");
	if (m->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct xfs_extent *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "%s: out of memory", l->fs->name);
		m->v = v;
		l->cap = cap;
	}
	m->v[m->n++] = e;
	return 0;
}

static int bmbt_walk(struct loader *l, uint64_t fsb, unsigned level);

/* Records or child pointers of one btree level: n entries, maxrecs slots for keys. */
static int bmbt_entries(struct loader *l, const uint8_t *b, unsigned level, unsigned n,
			unsigned maxrecs)
{
	int ret = 0;

	if (level == 0) {
		for (unsigned i = 0; ret == 0 && i < n; i++)
			ret = bmap_add(l, b + 16 * i);
		return ret;
	}
	/* Node: n keys (8 bytes each) in maxrecs slots, then the 8-byte pointers. Children are
	 * read into l->blk, so copy the pointers first. */
	uint64_t *ptr = malloc(n * sizeof(*ptr));
	if (!ptr)
		return err_set(ENOMEM, "%s: out of memory", l->fs->name);
	for (unsigned i = 0; i < n; i++)
		ptr[i] = be64_get(b + 8 * maxrecs + 8 * i);
	for (unsigned i = 0; ret == 0 && i < n; i++)
		ret = bmbt_walk(l, ptr[i], level - 1);
	free(ptr);
	return ret;
}

static int bmbt_walk(struct loader *l, uint64_t fsb, unsigned level)
{
	struct xfs *fs = l->fs;
	size_t hdr = fs->sb.v5 ? BMBT_HDR_V5 : BMBT_HDR_V4, bs = fs->sb.blocksize;
	uint8_t *b = l->blk;
	uint64_t byte;
	char what[80];
	int ret;

	if (xfs_fsb_to_byte(fs, fsb, 1, &byte) < 0)
		return bmap_err(l, "btree block outside the filesystem");
	if ((ret = xfs_read(fs, byte, b, bs)) < 0)
		return ret;
	snprintf(what, sizeof(what), "extent btree block %llu of inode %llu",
		 (unsigned long long)fsb, (unsigned long long)l->ip->ino);
	if (be32_get(b) != (fs->sb.v5 ? XFS_BMAP_CRC_MAGIC : XFS_BMAP_MAGIC))
		return err_set(EIO, "%s: xfs: %s: bad magic (damaged)", fs->name, what);
	if (fs->sb.v5 &&
	    (ret = xfs_v5_check(fs, b, bs, 64, 40, 56, l->ip->ino, 24, byte, what)) < 0)
		return ret;
	unsigned maxrecs = (unsigned)((bs - hdr) / 16), n = be16_get(b + 6);
	if (be16_get(b + 4) != level)
		return err_set(EIO, "%s: xfs: %s: wrong level (damaged)", fs->name, what);
	if (n < 1 || n > maxrecs)
		return err_set(EIO, "%s: xfs: %s: impossible record count %u (damaged)", fs->name,
			       what, n);
	return bmbt_entries(l, b + hdr, level, n, maxrecs);
}

/* The root sits in the inode's data fork: level, count, then keys and pointers sized for the
 * fork (xfs_bmdr_maxrecs). */
static int bmbt_load(struct loader *l)
{
	const uint8_t *f = l->ip->fork;
	unsigned level = be16_get(f), n = be16_get(f + 2);
	unsigned maxrecs = (unsigned)((l->ip->forksize - 4) / 16);

	if (level < 1 || level > BMBT_MAXLEVELS)
		return bmap_err(l, "impossible btree depth");
	if (n < 1 || n > maxrecs)
		return bmap_err(l, "impossible btree root record count");
	if (!(l->blk = malloc(l->fs->sb.blocksize)))
		return err_set(ENOMEM, "%s: out of memory", l->fs->name);
	int ret = bmbt_entries(l, f + 4, level, n, maxrecs);
	free(l->blk);
	return ret;
}

int xfs_bmap_load(struct xfs *fs, const struct xfs_inode *ip, struct xfs_bmap *map)
{
	struct loader l = {fs, ip, map, 0, NULL};
	int ret = 0;

	map->v = NULL;
	map->n = 0;
	if (ip->format == XFS_FMT_EXTENTS) {
		for (uint64_t i = 0; ret == 0 && i < ip->nextents; i++)
			ret = bmap_add(&l, ip->fork + 16 * i);
	} else if (ip->format == XFS_FMT_BTREE) {
		ret = bmbt_load(&l);
	} else {
		return err_set(EINVAL, "%s: xfs: inode %llu has no extent map", fs->name,
			       (unsigned long long)ip->ino);
	}
	if (ret == 0 && map->n != ip->nextents)
		ret = bmap_err(&l, "fewer extents than the inode records");
	/* An empty map stays distinguishable from "not loaded". */
	if (ret == 0 && !map->v && !(map->v = malloc(sizeof(*map->v))))
		ret = err_set(ENOMEM, "%s: out of memory", fs->name);
	if (ret < 0)
		xfs_bmap_free(map);
	return ret;
}

const struct xfs_extent *xfs_bmap_find(const struct xfs_bmap *map, uint64_t fb)
{
	size_t lo = 0, hi = map->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (map->v[mid].off + map->v[mid].len <= fb)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < map->n ? &map->v[lo] : NULL;
}

/* Byte offset of a block inside an extent already checked by bmap_add. */
static uint64_t extent_byte(const struct xfs *fs, const struct xfs_extent *e, uint64_t fb)
{
	uint64_t fsb = e->fsb + (fb - e->off);
	uint64_t agno = fsb >> fs->sb.agblklog, agbno = fsb & ((1ULL << fs->sb.agblklog) - 1);

	return (agno * fs->sb.agblocks + agbno) << fs->sb.blocklog;
}

int xfs_read_fblocks(struct xfs *fs, const struct xfs_inode *ip, const struct xfs_bmap *map,
		     uint64_t fb, uint32_t count, uint8_t *buf, const char *what)
{
	int ret;

	for (uint32_t i = 0; i < count;) {
		const struct xfs_extent *e = xfs_bmap_find(map, fb + i);
		if (!e || e->off > fb + i || e->unwritten)
			return err_set(EIO,
				       "%s: xfs: inode %llu: %s at file block %llu is not "
				       "mapped (damaged)",
				       fs->name, (unsigned long long)ip->ino, what,
				       (unsigned long long)(fb + i));
		uint64_t n = e->off + e->len - (fb + i);
		if (n > count - i)
			n = count - i;
		size_t bytes = (size_t)n << fs->sb.blocklog;
		if ((ret = xfs_read(fs, extent_byte(fs, e, fb + i),
				    buf + ((size_t)i << fs->sb.blocklog), bytes)) < 0)
			return ret;
		i += (uint32_t)n;
	}
	return 0;
}

int xfs_read_data(struct xfs *fs, const struct xfs_inode *ip, const struct xfs_bmap *map,
		  uint64_t off, uint8_t *buf, size_t len)
{
	unsigned log = fs->sb.blocklog;
	uint64_t pos = off, end = off + len;
	int ret;

	while (pos < end) {
		const struct xfs_extent *e = xfs_bmap_find(map, pos >> log);
		uint64_t estart = e ? e->off << log : end,
			 eend = e ? (e->off + e->len) << log : end;
		uint64_t stop;
		if (estart > pos) { /* a hole up to the next extent */
			stop = estart < end ? estart : end;
			memset(buf + (pos - off), 0, (size_t)(stop - pos));
		} else {
			stop = eend < end ? eend : end;
			if (e->unwritten)
				memset(buf + (pos - off), 0, (size_t)(stop - pos));
			else if ((ret = xfs_read(fs,
						 extent_byte(fs, e, pos >> log) +
						     (pos & ((1ULL << log) - 1)),
						 buf + (pos - off), (size_t)(stop - pos))) < 0)
				return ret;
		}
		pos = stop;
	}
	return 0;
}
