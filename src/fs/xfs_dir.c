/*
 * XFS directories, version 2 and 3 (CRC) formats:
 *  - short form: entries packed in the inode (local data fork);
 *  - block form: one directory block of entries with the hash index at its end;
 *  - leaf form: data blocks, and one leaf block (the sorted hash index) at 32 GiB;
 *  - node form: data blocks, a hash btree of node and leaf blocks at 32 GiB, free space index
 *    at 64 GiB (never needed for reading).
 * Listing walks the data blocks in file order; looking a name up in leaf and node form follows
 * the hash index to the one data block that holds it.
 */
#include "fs/xfs_priv.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR2_BLOCK_MAGIC 0x58443242 /* "XD2B" */
#define DIR2_DATA_MAGIC	 0x58443244 /* "XD2D" */
#define DIR3_BLOCK_MAGIC 0x58444233 /* "XDB3" */
#define DIR3_DATA_MAGIC	 0x58444433 /* "XDD3" */
#define DA_NODE_MAGIC	 0xfebe
#define DA3_NODE_MAGIC	 0x3ebe
#define DIR2_LEAF1_MAGIC 0xd2f1
#define DIR3_LEAF1_MAGIC 0x3df1
#define DIR2_LEAFN_MAGIC 0xd2ff
#define DIR3_LEAFN_MAGIC 0x3dff
#define DATA_FREE_TAG	 0xffff
#define DA_NODE_MAXDEPTH 5    /* XFS_DA_NODE_MAXDEPTH */
#define LEAF_CHAIN_MAX	 1024 /* leaves one hash value may span: far more than collisions make */

uint32_t xfs_da_hashname(const uint8_t *name, size_t len)
{
	uint32_t h = 0;

	/* Seven bits per byte, the running hash rotated by 7 bits per byte mixed in. */
	for (; len >= 4; len -= 4, name += 4)
		h = ((uint32_t)name[0] << 21) ^ ((uint32_t)name[1] << 14) ^
		    ((uint32_t)name[2] << 7) ^ name[3] ^ ((h << 28) | (h >> 4));
	switch (len) {
	case 3:
		return ((uint32_t)name[0] << 14) ^ ((uint32_t)name[1] << 7) ^ name[2] ^
		       ((h << 21) | (h >> 11));
	case 2:
		return ((uint32_t)name[0] << 7) ^ name[1] ^ ((h << 14) | (h >> 18));
	case 1:
		return name[0] ^ ((h << 7) | (h >> 25));
	}
	return h;
}

/* What a walk over entries does with each one. */
struct dirent_visit {
	int (*fn)(struct dirent_visit *v, const uint8_t *name, size_t len, uint64_t ino);
	gfs_dir_cb cb; /* readdir */
	void *priv;
	const char *want; /* lookup */
	size_t wantlen;
	uint64_t found;
	uint64_t
	    bfb; /* lookup: the data block the scratch buffer holds, checked (UINT64_MAX: none) */
};

static int dir_err(struct xfs *fs, const struct xfs_inode *dir, const char *what)
{
	return err_set(EIO, "%s: xfs: directory inode %llu: %s (damaged)", fs->name,
		       (unsigned long long)dir->ino, what);
}

/* Names go to callers that join them into host paths: "/" and NUL are refused, "." and ".."
 * are never passed on. */
static int visit(struct xfs *fs, const struct xfs_inode *dir, struct dirent_visit *v,
		 const uint8_t *name, size_t len, uint64_t ino)
{
	if (len == 0 || memchr(name, '/', len) || memchr(name, 0, len))
		return dir_err(fs, dir, "entry name holds '/' or NUL, or is empty");
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	if (!xfs_ino_valid(fs, ino))
		return dir_err(fs, dir, "entry points outside the filesystem");
	return v->fn(v, name, len, ino);
}

static int visit_readdir(struct dirent_visit *v, const uint8_t *name, size_t len, uint64_t ino)
{
	char buf[256];

	memcpy(buf, name, len);
	buf[len] = 0;
	return v->cb(buf, ino, v->priv);
}

/* 1 stops the walk: the name was found. */
static int visit_lookup(struct dirent_visit *v, const uint8_t *name, size_t len, uint64_t ino)
{
	if (len != v->wantlen || memcmp(name, v->want, len))
		return 0;
	v->found = ino;
	return 1;
}

/* ---- short form ---- */

static int sf_walk(struct xfs *fs, const struct xfs_inode *dir, struct dirent_visit *v)
{
	const uint8_t *f = dir->fork;
	size_t size = (size_t)dir->size, isz, pos, ft = fs->sb.ftype ? 1 : 0;
	int ret = 0;

	if (size < 6)
		return dir_err(fs, dir, "short-form header does not fit");
	isz = f[1] ? 8 : 4;
	pos = 2 + isz;
	if (pos > size)
		return dir_err(fs, dir, "short-form header does not fit");
	for (unsigned i = 0; ret == 0 && i < f[0]; i++) {
		if (pos + 3 > size)
			return dir_err(fs, dir, "short-form entry past the end");
		size_t len = f[pos], ent = 3 + len + ft + isz;
		if (len == 0 || ent > size - pos)
			return dir_err(fs, dir, "short-form entry past the end");
		const uint8_t *ip = f + pos + 3 + len + ft;
		uint64_t ino = isz == 8 ? be64_get(ip) & ((1ULL << 56) - 1) : be32_get(ip);
		ret = visit(fs, dir, v, f + pos + 3, len, ino);
		pos += ent;
	}
	return ret;
}

/* ---- data blocks ---- */

static size_t data_hdr(const struct xfs *fs)
{
	return fs->sb.v5 ? 64 : 16;
}

/* Read directory block at file block fb and check its header: want_block picks the block-form
 * magic over the data-block one; da says it is a leaf/node block (magic at 8, CRC at 12). */
static int dir_block(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
		     uint64_t fb, uint8_t *b, bool da)
{
	const struct xfs_extent *e;
	char what[96];
	uint64_t byte;
	int ret;

	snprintf(what, sizeof(what), "directory block %llu of inode %llu", (unsigned long long)fb,
		 (unsigned long long)dir->ino);
	if ((ret = xfs_read_fblocks(fs, dir, map, fb, fs->dirfsbs, b, "directory block")) < 0)
		return ret;
	if (!fs->sb.v5)
		return 0;
	e = xfs_bmap_find(map, fb);
	if ((ret = xfs_fsb_to_byte(fs, e->fsb + (fb - e->off), 1, &byte)) < 0)
		return ret;
	if (da)
		return xfs_v5_check(fs, b, fs->dirblksize, 12, 32, 48, dir->ino, 16, byte, what);
	return xfs_v5_check(fs, b, fs->dirblksize, 4, 24, 40, dir->ino, 8, byte, what);
}

static int check_data_magic(struct xfs *fs, const struct xfs_inode *dir, const uint8_t *b,
			    bool block_form)
{
	uint32_t want = block_form ? (fs->sb.v5 ? DIR3_BLOCK_MAGIC : DIR2_BLOCK_MAGIC)
				   : (fs->sb.v5 ? DIR3_DATA_MAGIC : DIR2_DATA_MAGIC);

	if (be32_get(b) != want)
		return dir_err(fs, dir,
			       block_form ? "bad directory block magic"
					  : "bad directory data block magic");
	return 0;
}

/* Where entries end: a block-form block keeps its hash index and tail after them. */
static int data_end(struct xfs *fs, const struct xfs_inode *dir, const uint8_t *b, bool block_form,
		    size_t *end)
{
	size_t bs = fs->dirblksize;

	*end = bs;
	if (!block_form)
		return 0;
	uint32_t count = be32_get(b + bs - 8);
	if (count > (bs - 8 - data_hdr(fs)) / 8)
		return dir_err(fs, dir, "impossible hash entry count in block-form directory");
	*end = bs - 8 - (size_t)count * 8;
	return 0;
}

/* The size of the active entry at pos, checked to lie in [pos, end) with its tag pointing
 * back at it; 0 when it is damaged. */
static size_t entry_size(const struct xfs *fs, const uint8_t *b, size_t pos, size_t end)
{
	if (pos + 12 > end)
		return 0;
	size_t len = b[pos + 8];
	size_t sz = (8 + 1 + len + (fs->sb.ftype ? 1 : 0) + 2 + 7) & ~(size_t)7;
	if (len == 0 || sz > end - pos || be16_get(b + pos + sz - 2) != pos)
		return 0;
	return sz;
}

static int data_walk(struct xfs *fs, const struct xfs_inode *dir, const uint8_t *b, bool block_form,
		     struct dirent_visit *v)
{
	size_t pos = data_hdr(fs), end;
	int ret = data_end(fs, dir, b, block_form, &end);

	while (ret == 0 && pos < end) {
		if (be16_get(b + pos) == DATA_FREE_TAG) {
			size_t len = pos + 4 <= end ? be16_get(b + pos + 2) : 0;
			if (len < 8 || len % 8 || len > end - pos ||
			    be16_get(b + pos + len - 2) != pos)
				return dir_err(fs, dir, "bad free space record in a data block");
			pos += len;
			continue;
		}
		size_t sz = entry_size(fs, b, pos, end);
		if (!sz)
			return dir_err(fs, dir, "entry past the end of its block");
		ret = visit(fs, dir, v, b + pos + 9, b[pos + 8], be64_get(b + pos));
		pos += sz;
	}
	return ret;
}

/* Which of the block formats a directory with an extent map has. */
enum dir_form { FORM_BLOCK, FORM_LEAF, FORM_NODE };

static uint64_t leaf_fb(const struct xfs *fs)
{
	return XFS_DIR2_LEAF_OFFSET >> fs->sb.blocklog;
}

static int dir_form(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
		    enum dir_form *form)
{
	if (map->n == 0)
		return dir_err(fs, dir, "no blocks");
	const struct xfs_extent *last = &map->v[map->n - 1];
	if (last->off + last->len == fs->dirfsbs) {
		if (dir->size != fs->dirblksize)
			return dir_err(fs, dir, "block-form directory of the wrong size");
		*form = FORM_BLOCK;
		return 0;
	}
	/* Leaf form ends with its one leaf block; node form has free index blocks after it. */
	*form = last->off + last->len == leaf_fb(fs) + fs->dirfsbs ? FORM_LEAF : FORM_NODE;
	if (dir->size > XFS_DIR2_LEAF_OFFSET)
		return dir_err(fs, dir, "data space larger than 32 GiB");
	return 0;
}

/* Every data block below the leaf space, in file order (holes between them are allowed). */
static int blocks_walk(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
		       enum dir_form form, uint8_t *b, struct dirent_visit *v)
{
	uint64_t limit = (dir->size + fs->sb.blocksize - 1) >> fs->sb.blocklog, fb = 0;
	int ret = 0;

	if (limit > leaf_fb(fs))
		limit = leaf_fb(fs);
	while (ret == 0 && fb < limit) {
		const struct xfs_extent *e = xfs_bmap_find(map, fb);
		if (!e || e->off >= limit)
			break;
		if (e->off > fb)
			fb = e->off & ~(uint64_t)(fs->dirfsbs - 1);
		if ((ret = dir_block(fs, dir, map, fb, b, false)) < 0 ||
		    (ret = check_data_magic(fs, dir, b, form == FORM_BLOCK)) < 0)
			break;
		ret = data_walk(fs, dir, b, form == FORM_BLOCK, v);
		fb += fs->dirfsbs;
	}
	return ret;
}

/* ---- hash index (leaf and node forms) ---- */

struct leaf_hdr {
	size_t hdr;   /* header size */
	unsigned cnt; /* entries */
	uint16_t magic;
};

static void leaf_header(const struct xfs *fs, const uint8_t *b, struct leaf_hdr *h)
{
	h->magic = be16_get(b + 8);
	h->hdr = fs->sb.v5 ? 64 : 16;
	h->cnt = be16_get(b + (fs->sb.v5 ? 56 : 12));
}

/* The name at data pointer addr (8-byte units in the data space), compared with want. */
static int leaf_resolve(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
			uint32_t addr, uint8_t *b, struct dirent_visit *v)
{
	uint64_t byte = (uint64_t)addr << 3;
	uint64_t fb = (byte / fs->dirblksize) * fs->dirfsbs;
	size_t pos = (size_t)(byte % fs->dirblksize), sz;
	int ret;

	if (fb >= leaf_fb(fs) || pos < data_hdr(fs))
		return dir_err(fs, dir, "hash index points outside the data space");
	/* Entries of one hash value run through the same few data blocks: each is read and
	 * checked once per lookup, not once per entry (a run of 1200 colliding names re-read and
	 * re-checksummed 8 KiB per entry, 15 ms per lookup). */
	if (v->bfb != fb) {
		v->bfb = UINT64_MAX;
		if ((ret = dir_block(fs, dir, map, fb, b, false)) < 0 ||
		    (ret = check_data_magic(fs, dir, b, false)) < 0)
			return ret;
		v->bfb = fb;
	}
	if (be16_get(b + pos) == DATA_FREE_TAG || !(sz = entry_size(fs, b, pos, fs->dirblksize)))
		return dir_err(fs, dir, "hash index points at no entry");
	return visit(fs, dir, v, b + pos + 9, b[pos + 8], be64_get(b + pos));
}

/* Search the hash entries of one leaf for v->want: 1 found, 0 not here, 2 when the last entry
 * still matches the hash (the run may continue in the next leaf). */
static int leaf_search(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
		       const uint8_t *leaf, const struct leaf_hdr *h, uint32_t hash, uint8_t *b,
		       struct dirent_visit *v)
{
	const uint8_t *ents = leaf + h->hdr;
	unsigned lo = 0, hi = h->cnt;
	int ret;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (be32_get(ents + 8 * mid) < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < h->cnt && be32_get(ents + 8 * lo) == hash; lo++) {
		uint32_t addr = be32_get(ents + 8 * lo + 4);
		if (addr && (ret = leaf_resolve(fs, dir, map, addr, b, v)) != 0)
			return ret;
	}
	return lo == h->cnt && h->cnt ? 2 : 0;
}

static int leaf_lookup(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
		       uint8_t *leaf, uint8_t *b, struct dirent_visit *v)
{
	struct leaf_hdr h;
	size_t bs = fs->dirblksize;
	int ret = dir_block(fs, dir, map, leaf_fb(fs), leaf, true);

	if (ret < 0)
		return ret;
	leaf_header(fs, leaf, &h);
	if (h.magic != (fs->sb.v5 ? DIR3_LEAF1_MAGIC : DIR2_LEAF1_MAGIC))
		return dir_err(fs, dir, "bad leaf block magic");
	/* The entries, then the best-free array and its count at the end of the block. */
	uint32_t bests = be32_get(leaf + bs - 4);
	if (bests > bs / 2 || h.hdr + (size_t)h.cnt * 8 + (size_t)bests * 2 + 4 > bs)
		return dir_err(fs, dir, "impossible leaf entry count");
	ret = leaf_search(fs, dir, map, leaf, &h,
			  xfs_da_hashname((const uint8_t *)v->want, v->wantlen), b, v);
	return ret == 2 ? 0 : ret; /* a leaf-form directory has one leaf: the run ends here */
}

/* A da block number (file block) from a node or sibling link, checked to be a leaf-space
 * directory block. */
static int da_child(struct xfs *fs, const struct xfs_inode *dir, uint32_t da, uint64_t *fb)
{
	uint64_t lo = leaf_fb(fs), hi = (2 * XFS_DIR2_LEAF_OFFSET) >> fs->sb.blocklog;

	if (da < lo || da >= hi || da % fs->dirfsbs)
		return dir_err(fs, dir, "hash btree points outside the leaf space");
	*fb = da;
	return 0;
}

static int node_lookup(struct xfs *fs, const struct xfs_inode *dir, const struct xfs_bmap *map,
		       uint8_t *leaf, uint8_t *b, struct dirent_visit *v)
{
	uint32_t hash = xfs_da_hashname((const uint8_t *)v->want, v->wantlen);
	uint16_t node = fs->sb.v5 ? DA3_NODE_MAGIC : DA_NODE_MAGIC;
	uint16_t leafn = fs->sb.v5 ? DIR3_LEAFN_MAGIC : DIR2_LEAFN_MAGIC;
	uint64_t fb = leaf_fb(fs);
	unsigned want_level = DA_NODE_MAXDEPTH;
	struct leaf_hdr h;
	int ret;

	for (int depth = 0;; depth++) { /* down the hash btree to the leaf for hash */
		if ((ret = dir_block(fs, dir, map, fb, leaf, true)) < 0)
			return ret;
		leaf_header(fs, leaf, &h);
		if (h.magic == leafn)
			break;
		unsigned level = be16_get(leaf + (fs->sb.v5 ? 58 : 14));
		if (h.magic != node || depth >= DA_NODE_MAXDEPTH || level < 1 ||
		    level >= want_level || h.cnt < 1 || h.hdr + (size_t)h.cnt * 8 > fs->dirblksize)
			return dir_err(fs, dir, "bad hash btree node");
		want_level = level;
		unsigned i = 0;
		while (i < h.cnt && be32_get(leaf + h.hdr + 8 * i) < hash)
			i++;
		if (i == h.cnt)
			return 0;
		if ((ret = da_child(fs, dir, be32_get(leaf + h.hdr + 8 * i + 4), &fb)) < 0)
			return ret;
	}
	for (int hops = 0;; hops++) { /* along the leaves while the hash run continues */
		if (h.hdr + (size_t)h.cnt * 8 > fs->dirblksize)
			return dir_err(fs, dir, "impossible leaf entry count");
		if ((ret = leaf_search(fs, dir, map, leaf, &h, hash, b, v)) != 2)
			return ret;
		uint32_t forw = be32_get(leaf);
		if (!forw)
			return 0;
		if (hops >= LEAF_CHAIN_MAX)
			return dir_err(fs, dir, "leaf sibling chain too long (a loop?)");
		if ((ret = da_child(fs, dir, forw, &fb)) < 0 ||
		    (ret = dir_block(fs, dir, map, fb, leaf, true)) < 0)
			return ret;
		leaf_header(fs, leaf, &h);
		if (h.magic != leafn)
			return dir_err(fs, dir, "bad leaf block magic");
	}
}

/* ---- entry points ---- */

static int dir_walk(struct xfs *fs, const struct xfs_inode *dir, struct dirent_visit *v,
		    bool lookup)
{
	struct xfs_bmap map;
	enum dir_form form = FORM_BLOCK;
	uint8_t *b, *leaf;
	int ret;

	if (dir->format == XFS_FMT_LOCAL)
		return sf_walk(fs, dir, v);
	if ((ret = xfs_bmap_load(fs, dir, &map)) < 0)
		return ret;
	b = malloc(fs->dirblksize);
	leaf = malloc(fs->dirblksize);
	if (!b || !leaf)
		ret = err_set(ENOMEM, "%s: out of memory", fs->name);
	else if ((ret = dir_form(fs, dir, &map, &form)) < 0)
		;
	else if (!lookup || form == FORM_BLOCK)
		ret = blocks_walk(fs, dir, &map, form, b, v);
	else if (form == FORM_LEAF)
		ret = leaf_lookup(fs, dir, &map, leaf, b, v);
	else
		ret = node_lookup(fs, dir, &map, leaf, b, v);
	free(b);
	free(leaf);
	xfs_bmap_free(&map);
	return ret;
}

int xfs_dir_lookup(struct xfs *fs, const struct xfs_inode *dir, const char *name, size_t len,
		   uint64_t *ino)
{
	struct dirent_visit v = {
	    .fn = visit_lookup, .want = name, .wantlen = len, .bfb = UINT64_MAX};
	int ret = dir_walk(fs, dir, &v, true);

	if (ret < 0)
		return ret;
	if (ret == 0)
		return -ENOENT;
	*ino = v.found;
	return 0;
}

int xfs_dir_iterate(struct xfs *fs, const struct xfs_inode *dir, gfs_dir_cb cb, void *priv)
{
	struct dirent_visit v = {.fn = visit_readdir, .cb = cb, .priv = priv};

	return dir_walk(fs, dir, &v, false);
}
