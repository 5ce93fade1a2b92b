/*
 * Internals of the read-only XFS reader (xfs.c, xfs_sb.c, xfs_bmap.c, xfs_dir.c), shared by its
 * files and the unit tests. Every on-disk number is big-endian and untrusted: it is checked against
 * the superblock geometry before it is used as an offset, a length or a count.
 */
#ifndef LIGERO_FS_XFS_PRIV_H
#define LIGERO_FS_XFS_PRIV_H

#include "fs/gfs.h"
#include "fs/xfs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Superblock fields the reader uses, after validation. */
struct xfs_sb {
	uint32_t blocksize;
	uint8_t blocklog;
	uint16_t sectsize;
	uint16_t inodesize;
	uint8_t inodelog, inopblog, agblklog, dirblklog;
	uint32_t agblocks, agcount;
	uint64_t dblocks;
	uint64_t rootino;
	bool v5;	       /* version 5: CRCs, v3 inodes, v3 directory headers */
	bool ftype;	       /* directory entries carry a file type byte */
	bool nrext64;	       /* inodes may have 64-bit extent counters */
	bool bigtime;	       /* inodes may have 64-bit nanosecond timestamps */
	uint32_t log_incompat; /* non-zero: the log holds changes not yet written back */
	uint8_t meta_uuid[16]; /* the UUID stamped in v5 metadata */
};

/* One mapping of the data fork: file blocks [off, off+len) at filesystem block fsb. */
struct xfs_extent {
	uint64_t off;
	uint64_t fsb; /* agno << agblklog | agbno, as on disk */
	uint64_t len;
	bool unwritten; /* preallocated: reads as zeros */
};

/* A decoded inode. fork points into raw (the data fork, forksize bytes). */
struct xfs_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint8_t version, format;
	uint64_t size, nblocks, nextents;
	uint16_t flags;
	uint64_t flags2;
	uint32_t rdev; /* XFS encoding: major << 18 | minor */
	struct timespec atime, mtime, ctime, crtime;
	const uint8_t *fork;
	size_t forksize;
	uint8_t raw[2048]; /* the largest inode XFS has */
};

/* The data fork's mappings, sorted by file offset, non-overlapping. */
struct xfs_bmap {
	struct xfs_extent *v;
	size_t n;
};

struct xfs {
	struct bdev *bs;
	uint64_t off, len; /* byte range of the filesystem on bs */
	char *name;
	struct xfs_sb sb;
	uint32_t dirblksize; /* directory block, bytes */
	uint32_t dirfsbs;    /* filesystem blocks per directory block */
	char *warning;
	/* The extent map of the inode read last, so that sequential preads of a large file do
	 * not walk its btree again for every chunk. */
	uint64_t cached_ino;
	struct xfs_bmap cached;
};

/* Inode data fork formats (di_format). */
enum { XFS_FMT_DEV = 0, XFS_FMT_LOCAL = 1, XFS_FMT_EXTENTS = 2, XFS_FMT_BTREE = 3 };

/* Inode flags the reader cares about. */
#define XFS_DIFLAG_REALTIME 0x1
#define XFS_DIFLAG2_BIGTIME 0x8
#define XFS_DIFLAG2_NREXT64 0x10

/* Directory geometry: data, leaf and free index spaces are 32 GiB apart in the file. */
#define XFS_DIR2_SPACE_SIZE  (1ULL << 35)
#define XFS_DIR2_LEAF_OFFSET XFS_DIR2_SPACE_SIZE
#define XFS_SYMLINK_MAXLEN   1024

/* ---- xfs_sb.c ---- */

/* CRC32c (Castagnoli), the standard one (check value 0xe3069283 for "123456789"). */
uint32_t xfs_crc32c(const void *buf, size_t len);
/* CRC32c as XFS stores it: crc32c of the buffer with the 4-byte CRC field at crcoff
 * taken as zero. Compare with le32_get(buf + crcoff). */
uint32_t xfs_cksum(const uint8_t *buf, size_t len, size_t crcoff);
/* Decode and validate a superblock (the first sectsize bytes of buf, buflen >= 512). fslen is
 * the size of the region that holds the filesystem. name prefixes messages. */
int xfs_sb_decode(const uint8_t *buf, size_t buflen, uint64_t fslen, const char *name,
		  struct xfs_sb *sb);
/* ---- xfs.c ---- */

/* Read len bytes at byte offset off of the filesystem (checked against its size). */
int xfs_read(struct xfs *fs, uint64_t off, void *buf, size_t len);
/* The byte offset of count blocks from filesystem block fsb, after checking that they lie in
 * one allocation group inside the filesystem. */
int xfs_fsb_to_byte(struct xfs *fs, uint64_t fsb, uint64_t count, uint64_t *byte);
/* Read and validate inode ino. */
int xfs_inode_read(struct xfs *fs, uint64_t ino, struct xfs_inode *ip);
/* Check inode number bits against the geometry (no I/O). */
bool xfs_ino_valid(const struct xfs *fs, uint64_t ino);
/* Check a v5 metadata block: CRC at crcoff over len bytes, UUID at uuidoff, the 64-bit owner at
 * owneroff (if owner is not 0) and the 64-bit disk address (512-byte units) at blknooff (if not
 * SIZE_MAX). what names the block in messages. */
int xfs_v5_check(struct xfs *fs, const uint8_t *b, size_t len, size_t crcoff, size_t uuidoff,
		 size_t owneroff, uint64_t owner, size_t blknooff, uint64_t byte, const char *what);

/* ---- xfs_bmap.c ---- */

/* Decode one 16-byte extent record. */
void xfs_extent_decode(const uint8_t rec[16], struct xfs_extent *e);
/* The data fork's mappings (extents or btree format); free with xfs_bmap_free. */
int xfs_bmap_load(struct xfs *fs, const struct xfs_inode *ip, struct xfs_bmap *map);
void xfs_bmap_free(struct xfs_bmap *map);
/* The first mapping that ends after file block fb (NULL when there is none). */
const struct xfs_extent *xfs_bmap_find(const struct xfs_bmap *map, uint64_t fb);
/* Read count file blocks from fb into buf; every block must be mapped and written (directory
 * and symlink blocks). */
int xfs_read_fblocks(struct xfs *fs, const struct xfs_inode *ip, const struct xfs_bmap *map,
		     uint64_t fb, uint32_t count, uint8_t *buf, const char *what);
/* Read file bytes [off, off+len) (already clipped to the file size): holes and unwritten
 * extents read as zeros. */
int xfs_read_data(struct xfs *fs, const struct xfs_inode *ip, const struct xfs_bmap *map,
		  uint64_t off, uint8_t *buf, size_t len);

/* ---- xfs_dir.c ---- */

/* The directory name hash (xfs_da_hashname). */
uint32_t xfs_da_hashname(const uint8_t *name, size_t len);
/* Look name up in directory dir: 0 with *ino, -ENOENT without a message when absent. */
int xfs_dir_lookup(struct xfs *fs, const struct xfs_inode *dir, const char *name, size_t len,
		   uint64_t *ino);
/* Every entry except "." and "..", in on-disk order. */
int xfs_dir_iterate(struct xfs *fs, const struct xfs_inode *dir, gfs_dir_cb cb, void *priv);

#endif
