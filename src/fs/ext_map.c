/*
 * Fast reads of extent-mapped files. libext2fs's file reader fetches one block per call, which
 * through a qcow2 chain means a cluster lookup per 4 KiB. Here the file's extent list is read
 * once (and kept for the last inode read, so a FUSE mount's sequential 128 KiB reads reuse it),
 * and each physically contiguous run becomes a single bdev read. Any inode write drops the cache.
 */
#include "fs/ext_priv.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ext_map_ent {
	uint64_t lblk, pblk;
	uint32_t len;
	bool uninit;
};

struct ext_map {
	uint32_t ino; /* 0: empty */
	size_t n, cap;
	struct ext_map_ent *e;
};

void ext_map_forget(struct extfs *fs)
{
	if (fs->map)
		fs->map->ino = 0;
}

void ext_map_free(struct extfs *fs)
{
	if (fs->map)
		free(fs->map->e);
	free(fs->map);
	fs->map = NULL;
}

static int map_load(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in)
{
	struct ext_map *m = fs->map;
	ext2_extent_handle_t h;
	struct ext2fs_extent ex;
	errcode_t e;
	int op = EXT2_EXTENT_ROOT;

	if (!m && !(m = fs->map = calloc(1, sizeof(*m))))
		return err_set(ENOMEM, "out of memory");
	m->ino = 0;
	m->n = 0;
	if ((e = ext2fs_extent_open2(fs->fs, ino, (struct ext2_inode *)in, &h)))
		return ext_err(fs, e, "cannot read the extent tree of inode %u", ino);
	while (!(e = ext2fs_extent_get(h, op, &ex))) {
		op = EXT2_EXTENT_NEXT_LEAF;
		if (!(ex.e_flags & EXT2_EXTENT_FLAGS_LEAF))
			continue;
		if (m->n == m->cap) {
			size_t cap = m->cap ? 2 * m->cap : 32;
			struct ext_map_ent *v = realloc(m->e, cap * sizeof(*v));
			if (!v) {
				e = EXT2_ET_NO_MEMORY;
				break;
			}
			m->e = v;
			m->cap = cap;
		}
		m->e[m->n++] = (struct ext_map_ent){ex.e_lblk, ex.e_pblk, ex.e_len,
						    !!(ex.e_flags & EXT2_EXTENT_FLAGS_UNINIT)};
	}
	ext2fs_extent_free(h);
	if (e && e != EXT2_ET_EXTENT_NO_NEXT)
		return ext_err(fs, e, "cannot read the extent tree of inode %u", ino);
	/* Leaves come in logical order; the lookup below relies on it. */
	for (size_t i = 1; i < m->n; i++)
		if (m->e[i].lblk < m->e[i - 1].lblk + m->e[i - 1].len)
			return err_set(EIO, "%s: inode %u has overlapping extents", fs->name, ino);
	m->ino = ino;
	return 0;
}

/* The first extent that ends after lblk (NULL if none). */
static const struct ext_map_ent *map_find(const struct ext_map *m, uint64_t lblk)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->e[mid].lblk + m->e[mid].len <= lblk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->n ? &m->e[lo] : NULL;
}

int ext_map_pread(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in, uint64_t off,
		  void *buf, size_t len, size_t *got)
{
	uint64_t size = EXT2_I_SIZE(in), bsz = fs->fs->blocksize;
	uint8_t *p = buf;
	int ret;

	*got = 0;
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (fs->map == NULL || fs->map->ino != ino)
		if ((ret = map_load(fs, ino, in)) < 0)
			return ret;
	for (uint64_t pos = off, end = off + len; pos < end;) {
		uint64_t lblk = pos / bsz;
		const struct ext_map_ent *e = map_find(fs->map, lblk);
		if (!e || e->lblk > lblk || e->uninit) { /* a hole (or unwritten): zeroes */
			uint64_t stop = end;
			if (e && e->lblk > lblk && e->lblk * bsz < stop)
				stop = e->lblk * bsz;
			if (e && e->uninit && (e->lblk + e->len) * bsz < stop)
				stop = (e->lblk + e->len) * bsz;
			memset(p + (pos - off), 0, stop - pos);
			pos = stop;
			continue;
		}
		uint64_t stop = (e->lblk + e->len) * bsz < end ? (e->lblk + e->len) * bsz : end;
		uint64_t phys = (e->pblk + (lblk - e->lblk)) * bsz + pos % bsz;
		if (phys > fs->io->len || stop - pos > fs->io->len - phys)
			return err_set(EIO, "%s: inode %u points past the end of the filesystem",
				       fs->name, ino);
		if ((ret = bdev_read(fs->bs, fs->io->off + phys, p + (pos - off), stop - pos)) < 0)
			return err_prefix(ret, "%s: ", fs->name);
		pos = stop;
	}
	*got = len;
	return 0;
}

/* Writes into blocks already mapped and initialized (extfs_alloc made them): each physically
 * contiguous run is one write through the I/O channel (which keeps its block cache right),
 * instead of libext2fs's file writer's one block per call. A last partial block is written
 * whole, padded with zeroes: it is past the end of what the file holds so far. 1: the range is
 * not all mapped (the caller writes through libext2fs). */
int ext_map_pwrite(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in, uint64_t off,
		   const void *buf, size_t len)
{
	uint64_t bsz = fs->fs->blocksize, end = off + len;
	const uint8_t *p = buf;
	int ret;

	if (off % bsz || !len || (end % bsz && end < EXT2_I_SIZE(in)) ||
	    !(in->i_flags & EXT4_EXTENTS_FL) || (in->i_flags & EXT4_INLINE_DATA_FL))
		return 1;
	if (fs->map == NULL || fs->map->ino != ino)
		if ((ret = map_load(fs, ino, in)) < 0)
			return ret;
	for (uint64_t pos = off; pos < end;) {
		const struct ext_map_ent *e = map_find(fs->map, pos / bsz);
		if (!e || e->lblk > pos / bsz || e->uninit)
			return 1;
		pos = (e->lblk + e->len) * bsz;
	}
	for (uint64_t pos = off; pos < end;) {
		uint64_t lblk = pos / bsz;
		const struct ext_map_ent *e = map_find(fs->map, lblk);
		uint64_t stop = (e->lblk + e->len) * bsz < end ? (e->lblk + e->len) * bsz : end;
		uint64_t pblk = e->pblk + (lblk - e->lblk), whole = (stop - pos) / bsz;
		errcode_t x = 0;
		if (whole)
			x = io_channel_write_blk64(fs->fs->io, pblk, (int)whole, p + (pos - off));
		if (!x && (stop - pos) % bsz) {
			uint8_t *blk = calloc(1, bsz);
			if (!blk)
				return err_set(ENOMEM, "out of memory");
			memcpy(blk, p + (pos - off) + whole * bsz, (stop - pos) % bsz);
			x = io_channel_write_blk64(fs->fs->io, pblk + whole, 1, blk);
			free(blk);
		}
		if (x)
			return ext_err(fs, x, "cannot write inode %u's data", ino);
		pos = stop;
	}
	return 0;
}
