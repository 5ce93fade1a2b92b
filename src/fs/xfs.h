/*
 * XFS, read-only, on a byte range of a bdev (a partition or the whole disk): superblock v4 and
 * v5, inodes v1-v3, data forks in local, extents and btree format, directories in short form,
 * block, leaf and node form, symlinks, holes and unwritten extents. Nothing is ever written, and
 * the log is not replayed: a filesystem that was not unmounted cleanly reads as its last
 * checkpoint (xfs_warning() says so when the superblock shows it).
 *
 * The image is untrusted: every offset, length and count read from it is checked before use,
 * and a damaged filesystem gives an error naming it and what is wrong. Not thread-safe: one
 * thread at a time per open filesystem. Most callers want src/fs/gfs.h instead.
 */
#ifndef LIGERO_FS_XFS_H
#define LIGERO_FS_XFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bdev;
struct gfs_range;
struct gfs_stat;
struct xfs;

/* Open the XFS filesystem in [off, off+len) of bs. name ("disk.img:2") prefixes every message.
 * Features the reader does not know are refused by name. */
int xfs_open(struct xfs **out, struct bdev *bs, uint64_t off, uint64_t len, const char *name);
/* Release everything (always 0: nothing is written). */
int xfs_close(struct xfs *fs);
/* The name given at open. */
const char *xfs_name(const struct xfs *fs);
/* A warning to show the user about this filesystem, or NULL. */
const char *xfs_warning(const struct xfs *fs);

/* Resolve an absolute path; intermediate symlinks resolve inside the filesystem, a final one
 * only with follow. */
int xfs_lookup(struct xfs *fs, const char *path, bool follow, uint64_t *ino);
/* Attributes of an inode. */
int xfs_stat(struct xfs *fs, uint64_t ino, struct gfs_stat *st);
/* Every entry of directory dir except "." and "..", in on-disk order; a non-zero return of cb
 * stops the walk and is returned. */
int xfs_readdir(struct xfs *fs, uint64_t dir, int (*cb)(const char *name, uint64_t ino, void *priv),
		void *priv);
/* Read up to len bytes at off; *got is short at end of file. */
int xfs_pread(struct xfs *fs, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got);
/* The target of a symlink, NUL-terminated (-ENAMETOOLONG when it does not fit in size). */
int xfs_readlink(struct xfs *fs, uint64_t ino, char *buf, size_t size);
/* The byte ranges of a regular file that hold written data (holes and unwritten extents left
 * out), clipped to its size; *out is malloc'ed. */
int xfs_data_ranges(struct xfs *fs, uint64_t ino, struct gfs_range **out, size_t *n);

#endif
