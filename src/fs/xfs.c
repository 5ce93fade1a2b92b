/*
 * XFS, read-only: inodes, path lookup, file and symlink reads (the superblock is xfs_sb.c). The
 * on-disk format is the one documented in the Linux kernel's Documentation/filesystems/xfs/ and
 * xfsprogs' libxfs/xfs_format.h; this file decodes the fields it needs by offset, never by casting
 * disk bytes to structures.
 */
#include "fs/xfs_priv.h"
#include "block/block.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define XFS_DINODE_MAGIC  0x494e     /* "IN" */
#define XFS_SYMLINK_MAGIC 0x58534c4d /* "XSLM" */
#define XFS_MAX_SYMLINKS  40	     /* followed per lookup, as Linux's namei allows */

/* ---- reading ---- */

int xfs_read(struct xfs *fs, uint64_t off, void *buf, size_t len)
{
	int ret;

	if (off > fs->len || len > fs->len - off)
		return err_set(EIO,
			       "%s: xfs: read of %zu bytes at %llu is past the end of the "
			       "filesystem",
			       fs->name, len, (unsigned long long)off);
	if ((ret = bdev_read(fs->bs, fs->off + off, buf, len)) < 0)
		return err_prefix(ret, "%s: ", fs->name);
	return 0;
}

int xfs_fsb_to_byte(struct xfs *fs, uint64_t fsb, uint64_t count, uint64_t *byte)
{
	uint64_t agno = fsb >> fs->sb.agblklog;
	uint64_t agbno = fsb & ((1ULL << fs->sb.agblklog) - 1);
	uint64_t blk = agno * fs->sb.agblocks + agbno;

	if (agno >= fs->sb.agcount || agbno >= fs->sb.agblocks || count > fs->sb.agblocks - agbno ||
	    blk + count > fs->sb.dblocks)
		return err_set(EIO,
			       "%s: xfs: block range %llu+%llu is outside the filesystem or "
			       "its allocation group (damaged)",
			       fs->name, (unsigned long long)fsb, (unsigned long long)count);
	*byte = blk << fs->sb.blocklog;
	return 0;
}

int xfs_v5_check(struct xfs *fs, const uint8_t *b, size_t len, size_t crcoff, size_t uuidoff,
		 size_t owneroff, uint64_t owner, size_t blknooff, uint64_t byte, const char *what)
{
	if (xfs_cksum(b, len, crcoff) != le32_get(b + crcoff))
		return err_set(EIO, "%s: xfs: %s: bad CRC (damaged metadata)", fs->name, what);
	if (memcmp(b + uuidoff, fs->sb.meta_uuid, 16))
		return err_set(EIO, "%s: xfs: %s: belongs to another filesystem (UUID mismatch)",
			       fs->name, what);
	if (owner && be64_get(b + owneroff) != owner)
		return err_set(EIO, "%s: xfs: %s: owned by inode %llu (damaged)", fs->name, what,
			       (unsigned long long)be64_get(b + owneroff));
	if (blknooff != SIZE_MAX && be64_get(b + blknooff) != byte >> 9)
		return err_set(EIO,
			       "%s: xfs: %s: records disk address %llu but was read at %llu "
			       "(misdirected)",
			       fs->name, what, (unsigned long long)be64_get(b + blknooff),
			       (unsigned long long)(byte >> 9));
	return 0;
}

/* ---- inodes ---- */

/* Inode core field offsets (struct xfs_dinode). */
enum {
	DI_MODE = 2,
	DI_VERSION = 4,
	DI_FORMAT = 5,
	DI_ONLINK = 6,
	DI_UID = 8,
	DI_GID = 12,
	DI_NLINK = 16,
	DI_BIG_NEXTENTS = 24,
	DI_ATIME = 32,
	DI_MTIME = 40,
	DI_CTIME = 48,
	DI_SIZE = 56,
	DI_NBLOCKS = 64,
	DI_NEXTENTS = 76,
	DI_FORKOFF = 82,
	DI_FLAGS = 90,
	DI_CRC = 100,
	DI_FLAGS2 = 120,
	DI_CRTIME = 144,
	DI_INO = 152,
	DI_UUID = 160,
	DI_CORE_V2 = 100,
	DI_CORE_V3 = 176,
};

bool xfs_ino_valid(const struct xfs *fs, uint64_t ino)
{
	unsigned agino_log = fs->sb.agblklog + fs->sb.inopblog;
	uint64_t agno = ino >> agino_log;
	uint64_t agbno = (ino >> fs->sb.inopblog) & ((1ULL << fs->sb.agblklog) - 1);

	return agno < fs->sb.agcount && agbno < fs->sb.agblocks &&
	       agno * fs->sb.agblocks + agbno < fs->sb.dblocks;
}

static int inode_err(struct xfs *fs, uint64_t ino, const char *what)
{
	return err_set(EIO, "%s: xfs: inode %llu: %s (damaged)", fs->name, (unsigned long long)ino,
		       what);
}

static int get_time(struct xfs *fs, struct xfs_inode *ip, size_t off, struct timespec *ts)
{
	const uint8_t *p = ip->raw + off;

	if (ip->flags2 & XFS_DIFLAG2_BIGTIME) {
		/* Nanoseconds since 1901-12-13 20:45:52 UTC, the smallest 32-bit time. */
		uint64_t ns = be64_get(p);
		ts->tv_sec = (time_t)(ns / 1000000000) - 2147483648LL;
		ts->tv_nsec = (long)(ns % 1000000000);
		return 0;
	}
	uint32_t nsec = be32_get(p + 4);
	if (nsec >= 1000000000)
		return inode_err(fs, ip->ino, "timestamp nanoseconds out of range");
	ts->tv_sec = (int32_t)be32_get(p);
	ts->tv_nsec = (long)nsec;
	return 0;
}

/* The data fork format must be one XFS uses for the file type, and its content must fit. */
static int check_fork(struct xfs *fs, struct xfs_inode *ip)
{
	uint32_t t = ip->mode & S_IFMT;

	switch (ip->format) {
	case XFS_FMT_DEV:
		if (t != S_IFCHR && t != S_IFBLK && t != S_IFIFO && t != S_IFSOCK)
			break;
		if (ip->forksize < 4)
			return inode_err(fs, ip->ino, "device number does not fit");
		ip->rdev = be32_get(ip->fork);
		return 0;
	case XFS_FMT_LOCAL:
		if (t != S_IFDIR && t != S_IFLNK)
			break;
		if (ip->size > ip->forksize)
			return inode_err(fs, ip->ino, "inline data larger than the inode");
		return 0;
	case XFS_FMT_EXTENTS:
	case XFS_FMT_BTREE:
		if (t != S_IFDIR && t != S_IFLNK && t != S_IFREG)
			break;
		if (ip->format == XFS_FMT_EXTENTS && ip->nextents > ip->forksize / 16)
			return inode_err(fs, ip->ino, "more extents than the inode holds");
		if (ip->format == XFS_FMT_BTREE && ip->forksize < 4 + 16)
			return inode_err(fs, ip->ino, "btree root does not fit");
		if (ip->nextents > fs->sb.dblocks)
			return inode_err(fs, ip->ino, "impossible extent count");
		return 0;
	}
	return inode_err(fs, ip->ino, "data fork format does not match the file type");
}

static int inode_decode(struct xfs *fs, struct xfs_inode *ip, uint64_t byte)
{
	uint8_t *r = ip->raw;
	size_t core;
	int ret;

	if (be16_get(r) != XFS_DINODE_MAGIC)
		return inode_err(fs, ip->ino, "bad magic");
	ip->version = r[DI_VERSION];
	if (fs->sb.v5 ? ip->version != 3 : (ip->version != 1 && ip->version != 2))
		return inode_err(fs, ip->ino, "bad inode version");
	if (ip->version == 3) {
		char what[64];
		snprintf(what, sizeof(what), "inode %llu", (unsigned long long)ip->ino);
		ret = xfs_v5_check(fs, r, fs->sb.inodesize, DI_CRC, DI_UUID, 0, 0, SIZE_MAX, byte,
				   what);
		if (ret < 0)
			return ret;
		if (be64_get(r + DI_INO) != ip->ino)
			return inode_err(fs, ip->ino, "records another inode number (misdirected)");
	}
	ip->mode = be16_get(r + DI_MODE);
	if (ip->mode == 0)
		return err_set(EIO, "%s: xfs: inode %llu is not in use (damaged directory?)",
			       fs->name, (unsigned long long)ip->ino);
	switch (ip->mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	default:
		return inode_err(fs, ip->ino, "unknown file type");
	}
	ip->format = r[DI_FORMAT];
	ip->uid = be32_get(r + DI_UID);
	ip->gid = be32_get(r + DI_GID);
	ip->nlink = ip->version == 1 ? be16_get(r + DI_ONLINK) : be32_get(r + DI_NLINK);
	ip->size = be64_get(r + DI_SIZE);
	ip->nblocks = be64_get(r + DI_NBLOCKS);
	ip->flags = be16_get(r + DI_FLAGS);
	ip->flags2 = ip->version == 3 ? be64_get(r + DI_FLAGS2) : 0;
	if (ip->size > INT64_MAX)
		return inode_err(fs, ip->ino, "impossible size");
	if (((ip->flags2 & XFS_DIFLAG2_NREXT64) && !fs->sb.nrext64) ||
	    ((ip->flags2 & XFS_DIFLAG2_BIGTIME) && !fs->sb.bigtime))
		return inode_err(fs, ip->ino, "uses a feature the superblock does not have");
	ip->nextents = (ip->flags2 & XFS_DIFLAG2_NREXT64) ? be64_get(r + DI_BIG_NEXTENTS)
							  : be32_get(r + DI_NEXTENTS);
	core = ip->version == 3 ? DI_CORE_V3 : DI_CORE_V2;
	size_t litino = fs->sb.inodesize - core, forkoff = (size_t)r[DI_FORKOFF] * 8;
	if (forkoff >= litino)
		return inode_err(fs, ip->ino, "attribute fork offset past the inode");
	ip->fork = r + core;
	ip->forksize = forkoff ? forkoff : litino;
	if ((ret = get_time(fs, ip, DI_ATIME, &ip->atime)) < 0 ||
	    (ret = get_time(fs, ip, DI_MTIME, &ip->mtime)) < 0 ||
	    (ret = get_time(fs, ip, DI_CTIME, &ip->ctime)) < 0)
		return ret;
	memset(&ip->crtime, 0, sizeof(ip->crtime));
	if (ip->version == 3 && (ret = get_time(fs, ip, DI_CRTIME, &ip->crtime)) < 0)
		return ret;
	return check_fork(fs, ip);
}

int xfs_inode_read(struct xfs *fs, uint64_t ino, struct xfs_inode *ip)
{
	const struct xfs_sb *sb = &fs->sb;
	int ret;

	if (!xfs_ino_valid(fs, ino))
		return err_set(EIO,
			       "%s: xfs: inode number %llu is outside the filesystem (damaged)",
			       fs->name, (unsigned long long)ino);
	uint64_t agno = ino >> (sb->agblklog + sb->inopblog);
	uint64_t agbno = (ino >> sb->inopblog) & ((1ULL << sb->agblklog) - 1);
	uint64_t byte = ((agno * sb->agblocks + agbno) << sb->blocklog) +
			((ino & ((1ULL << sb->inopblog) - 1)) << sb->inodelog);
	memset(ip, 0, offsetof(struct xfs_inode, raw));
	ip->ino = ino;
	if ((ret = xfs_read(fs, byte, ip->raw, sb->inodesize)) < 0)
		return ret;
	return inode_decode(fs, ip, byte);
}

/* ---- open, close ---- */

int xfs_open(struct xfs **out, struct bdev *bs, uint64_t off, uint64_t len, const char *name)
{
	uint8_t buf[32768]; /* the largest sector XFS allows */
	struct xfs *fs = calloc(1, sizeof(*fs));
	size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
	int ret;

	if (!fs || !(fs->name = strdup(name))) {
		free(fs);
		return err_set(ENOMEM, "%s: out of memory", name);
	}
	fs->bs = bs;
	fs->off = off;
	fs->len = len;
	if ((ret = xfs_read(fs, 0, buf, n < 512 ? 512 : n)) < 0 ||
	    (ret = xfs_sb_decode(buf, n, len, name, &fs->sb)) < 0)
		goto fail;
	fs->dirblksize = fs->sb.blocksize << fs->sb.dirblklog;
	fs->dirfsbs = 1u << fs->sb.dirblklog;
	if (fs->sb.log_incompat &&
	    asprintf(&fs->warning,
		     "%s: warning: the xfs log holds changes not yet written back "
		     "(not unmounted cleanly?); what is read may be stale",
		     name) < 0)
		fs->warning = NULL;
	/* The root must be a directory, or nothing else can be found. */
	struct xfs_inode *root = malloc(sizeof(*root));
	if (!root) {
		ret = err_set(ENOMEM, "%s: out of memory", name);
		goto fail;
	}
	ret = xfs_inode_read(fs, fs->sb.rootino, root);
	if (ret == 0 && !S_ISDIR(root->mode))
		ret = err_set(EIO, "%s: xfs: the root inode is not a directory (damaged)", name);
	free(root);
	if (ret < 0)
		goto fail;
	*out = fs;
	return 0;
fail:
	xfs_close(fs);
	return ret;
}

int xfs_close(struct xfs *fs)
{
	if (!fs)
		return 0;
	xfs_bmap_free(&fs->cached);
	free(fs->warning);
	free(fs->name);
	free(fs);
	return 0;
}

const char *xfs_name(const struct xfs *fs)
{
	return fs->name;
}

const char *xfs_warning(const struct xfs *fs)
{
	return fs->warning;
}

/* ---- attributes, content ---- */

/* An inode read into the heap (struct xfs_inode holds the 2 KiB raw inode). */
static int inode_get(struct xfs *fs, uint64_t ino, struct xfs_inode **out)
{
	struct xfs_inode *ip = malloc(sizeof(*ip));
	int ret;

	if (!ip)
		return err_set(ENOMEM, "%s: out of memory", fs->name);
	if ((ret = xfs_inode_read(fs, ino, ip)) < 0) {
		free(ip);
		return ret;
	}
	*out = ip;
	return 0;
}

int xfs_stat(struct xfs *fs, uint64_t ino, struct gfs_stat *st)
{
	struct xfs_inode *ip = NULL;
	int ret = inode_get(fs, ino, &ip);

	if (ret < 0)
		return ret;
	*st = (struct gfs_stat){
	    .ino = ino,
	    .mode = ip->mode,
	    .uid = ip->uid,
	    .gid = ip->gid,
	    .nlink = ip->nlink,
	    .size = ip->size,
	    .blocks = ip->nblocks << (fs->sb.blocklog - 9),
	    .atime = ip->atime,
	    .mtime = ip->mtime,
	    .ctime = ip->ctime,
	    .crtime = ip->crtime,
	};
	if (S_ISCHR(ip->mode) || S_ISBLK(ip->mode))
		st->rdev = makedev((ip->rdev >> 18) & 0x1ff, ip->rdev & 0x3ffff);
	free(ip);
	return 0;
}

/* The extent map of ip, from the one-inode cache when it is the inode read last. */
static int inode_map(struct xfs *fs, const struct xfs_inode *ip, const struct xfs_bmap **map)
{
	int ret;

	if (fs->cached_ino != ip->ino || !fs->cached.v) {
		xfs_bmap_free(&fs->cached);
		fs->cached_ino = 0;
		if ((ret = xfs_bmap_load(fs, ip, &fs->cached)) < 0)
			return ret;
		fs->cached_ino = ip->ino;
	}
	*map = &fs->cached;
	return 0;
}

int xfs_pread(struct xfs *fs, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got)
{
	const struct xfs_bmap *map;
	struct xfs_inode *ip = NULL;
	int ret = inode_get(fs, ino, &ip);

	*got = 0;
	if (ret < 0)
		return ret;
	if (ip->format == XFS_FMT_DEV)
		ret = err_set(EINVAL, "%s: inode %llu is a special file, not a regular file",
			      fs->name, (unsigned long long)ino);
	else if (ip->flags & XFS_DIFLAG_REALTIME)
		ret = err_set(ENOTSUP,
			      "%s: xfs: inode %llu lives on a realtime subvolume, which "
			      "ligero does not read",
			      fs->name, (unsigned long long)ino);
	if (ret < 0 || off >= ip->size)
		goto out;
	if (len > ip->size - off)
		len = (size_t)(ip->size - off);
	if (ip->format == XFS_FMT_LOCAL)
		memcpy(buf, ip->fork + off, len);
	else if ((ret = inode_map(fs, ip, &map)) == 0)
		ret = xfs_read_data(fs, ip, map, off, buf, len);
	if (ret == 0)
		*got = len;
out:
	free(ip);
	return ret;
}

int xfs_data_ranges(struct xfs *fs, uint64_t ino, struct gfs_range **out, size_t *n)
{
	const struct xfs_bmap *map;
	struct gfs_range *r = NULL;
	struct xfs_inode *ip = NULL;
	size_t k = 0;
	int ret = inode_get(fs, ino, &ip);

	*out = NULL;
	*n = 0;
	if (ret < 0)
		return ret;
	if (!S_ISREG(ip->mode) || (ret = inode_map(fs, ip, &map)) < 0)
		goto out;
	if (map->n && !(r = calloc(map->n, sizeof(*r)))) {
		ret = err_set(ENOMEM, "%s: out of memory", fs->name);
		goto out;
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct xfs_extent *e = &map->v[i];
		uint64_t start = e->off << fs->sb.blocklog, end = (e->off + e->len)
								  << fs->sb.blocklog;
		if (e->unwritten || start >= ip->size)
			continue;
		if (end > ip->size)
			end = ip->size;
		if (k && r[k - 1].start + r[k - 1].len == start)
			r[k - 1].len += end - start;
		else
			r[k++] = (struct gfs_range){start, end - start};
	}
	*out = r;
	*n = k;
out:
	free(ip);
	return ret;
}

/* Remote symlinks: each extent is one buffer and, on v5, starts with a header saying which bytes
 * of the target it holds (xfs_symlink_remote_read). */
static int symlink_remote(struct xfs *fs, const struct xfs_inode *ip, char *buf)
{
	const struct xfs_bmap *map = NULL;
	size_t hdr = fs->sb.v5 ? 56 : 0, done = 0;
	uint64_t fb = 0,
		 maxblocks = (XFS_SYMLINK_MAXLEN + hdr + fs->sb.blocksize - 1) >> fs->sb.blocklog;
	uint8_t *blk = malloc(maxblocks << fs->sb.blocklog);
	char what[80];
	int ret = blk ? inode_map(fs, ip, &map) : err_set(ENOMEM, "%s: out of memory", fs->name);

	snprintf(what, sizeof(what), "symbolic link block of inode %llu",
		 (unsigned long long)ip->ino);
	for (size_t i = 0; ret == 0 && done < ip->size; i++) {
		const struct xfs_extent *e = i < map->n ? &map->v[i] : NULL;
		if (!e || e->off != fb || e->len > maxblocks || e->unwritten) {
			ret = inode_err(fs, ip->ino, "bad symbolic link block map");
			break;
		}
		size_t len = (size_t)e->len << fs->sb.blocklog, want = len - hdr;
		uint64_t byte = 0;
		if (want > ip->size - done)
			want = (size_t)(ip->size - done);
		if ((ret = xfs_read_fblocks(fs, ip, map, fb, (uint32_t)e->len, blk, what)) < 0)
			break;
		if (fs->sb.v5) {
			if (be32_get(blk) != XFS_SYMLINK_MAGIC)
				ret = err_set(EIO, "%s: xfs: %s: bad magic (damaged)", fs->name,
					      what);
			else if (be32_get(blk + 4) != done || be32_get(blk + 8) != want)
				ret = err_set(EIO, "%s: xfs: %s: holds the wrong bytes (damaged)",
					      fs->name, what);
			else if ((ret = xfs_fsb_to_byte(fs, e->fsb, e->len, &byte)) == 0)
				ret =
				    xfs_v5_check(fs, blk, len, 12, 16, 32, ip->ino, 40, byte, what);
		}
		if (ret == 0)
			memcpy(buf + done, blk + hdr, want);
		done += want;
		fb += e->len;
	}
	free(blk);
	return ret;
}

int xfs_readlink(struct xfs *fs, uint64_t ino, char *buf, size_t size)
{
	struct xfs_inode *ip = NULL;
	int ret = inode_get(fs, ino, &ip);

	if (ret < 0)
		return ret;
	if (!S_ISLNK(ip->mode))
		ret = err_set(EINVAL, "%s: inode %llu is not a symbolic link", fs->name,
			      (unsigned long long)ino);
	else if (ip->size == 0 || ip->size > XFS_SYMLINK_MAXLEN)
		ret = inode_err(fs, ino, "impossible symbolic link length");
	else if (ip->size >= size)
		ret = err_set(ENAMETOOLONG, "%s: symbolic link inode %llu is too long", fs->name,
			      (unsigned long long)ino);
	else if (ip->format == XFS_FMT_LOCAL)
		memcpy(buf, ip->fork, ip->size);
	else
		ret = symlink_remote(fs, ip, buf);
	if (ret == 0 && memchr(buf, 0, ip->size))
		ret = inode_err(fs, ino, "symbolic link target holds a NUL byte");
	if (ret == 0)
		buf[ip->size] = 0;
	free(ip);
	return ret;
}

/* ---- directories, paths ---- */

int xfs_readdir(struct xfs *fs, uint64_t dir, gfs_dir_cb cb, void *priv)
{
	struct xfs_inode *ip = NULL;
	int ret = inode_get(fs, dir, &ip);

	if (ret < 0)
		return ret;
	if (!S_ISDIR(ip->mode))
		ret = err_set(ENOTDIR, "%s: inode %llu is not a directory", fs->name,
			      (unsigned long long)dir);
	else
		ret = xfs_dir_iterate(fs, ip, cb, priv);
	free(ip);
	return ret;
}

/* The directories walked so far (".." pops one), grown as needed. */
struct walk {
	uint64_t *v;
	size_t n, cap;
};

static int walk_push(struct xfs *fs, struct walk *w, uint64_t ino)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 32;
		uint64_t *v = realloc(w->v, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "%s: out of memory", fs->name);
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n++] = ino;
	return 0;
}

/* Replace *rest with target + "/" + the part of the path after the link. */
static int splice_link(struct xfs *fs, char **path, const char *target, const char *after)
{
	char *s = NULL;

	if (asprintf(&s, "%s/%s", target, after) < 0)
		return err_set(ENOMEM, "%s: out of memory", fs->name);
	free(*path);
	*path = s;
	return 0;
}

static int lookup_step(struct xfs *fs, struct walk *w, const char *name, size_t len,
		       uint64_t *child, struct xfs_inode *ip)
{
	int ret = xfs_inode_read(fs, w->v[w->n - 1], ip);

	if (ret < 0)
		return ret;
	if (!S_ISDIR(ip->mode))
		return -ENOTDIR;
	if (len > 255)
		return -ENAMETOOLONG;
	if ((ret = xfs_dir_lookup(fs, ip, name, len, child)) < 0)
		return ret;
	return xfs_inode_read(fs, *child, ip);
}

static int lookup_walk(struct xfs *fs, char **path, bool follow, struct walk *w,
		       struct xfs_inode *ip)
{
	char target[XFS_SYMLINK_MAXLEN + 1];
	int links = 0, ret = walk_push(fs, w, fs->sb.rootino);
	size_t pos = 0;

	while (ret == 0) {
		const char *p = *path;
		while (p[pos] == '/')
			pos++;
		if (!p[pos])
			break;
		size_t len = strcspn(p + pos, "/"), next = pos + len;
		while (p[next] == '/')
			next++;
		if (len == 1 && p[pos] == '.') {
			pos = next;
			continue;
		}
		if (len == 2 && p[pos] == '.' && p[pos + 1] == '.') {
			if (w->n > 1)
				w->n--;
			pos = next;
			continue;
		}
		uint64_t child;
		if ((ret = lookup_step(fs, w, p + pos, len, &child, ip)) < 0)
			break;
		if (!S_ISLNK(ip->mode) || (!p[next] && !follow)) {
			ret = walk_push(fs, w, child);
			pos = next;
			continue;
		}
		if (++links > XFS_MAX_SYMLINKS)
			return -ELOOP;
		if ((ret = xfs_readlink(fs, child, target, sizeof(target))) < 0)
			break;
		if (target[0] == '/')
			w->n = 1;
		ret = splice_link(fs, path, target, p + next);
		pos = 0;
	}
	return ret;
}

int xfs_lookup(struct xfs *fs, const char *path, bool follow, uint64_t *ino)
{
	struct walk w = {0};
	struct xfs_inode *ip = NULL;
	char *p;
	int ret;

	if (path[0] != '/')
		return err_set(EINVAL, "%s: %s: guest paths must be absolute (start with /)",
			       fs->name, path);
	if (!(p = strdup(path)) || !(ip = malloc(sizeof(*ip)))) {
		free(p);
		return err_set(ENOMEM, "%s: out of memory", fs->name);
	}
	ret = lookup_walk(fs, &p, follow, &w, ip);
	if (ret == -ENOENT)
		ret = err_set(ENOENT, "%s: %s: no such file or directory", fs->name, path);
	else if (ret == -ENOTDIR)
		ret = err_set(ENOTDIR, "%s: %s: a component of the path is not a directory",
			      fs->name, path);
	else if (ret == -ELOOP)
		ret = err_set(ELOOP, "%s: %s: too many levels of symbolic links", fs->name, path);
	else if (ret == -ENAMETOOLONG)
		ret = err_set(ENAMETOOLONG, "%s: %s: a name in the path is longer than 255 bytes",
			      fs->name, path);
	if (ret == 0)
		*ino = w.v[w.n - 1];
	free(w.v);
	free(ip);
	free(p);
	return ret;
}
