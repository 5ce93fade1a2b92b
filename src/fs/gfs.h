/*
 * Read access to any guest filesystem ligero reads: ext2/3/4 (libext2fs, src/fs/ext.h) and XFS
 * (read-only, src/fs/xfs.h). Finding a disk's boot entry, inspection and the read-only `ligero
 * fs` verbs go through this, so they work the same on both. Writing stays with src/fs/ext.h:
 * XFS is never written.
 *
 * Each filesystem is one `struct gfs_ops` table; gfs.c picks it by the superblock found at the
 * start of the range. Inode numbers are 64-bit (XFS's are).
 */
#ifndef LIGERO_FS_GFS_H
#define LIGERO_FS_GFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct bdev;
struct extfs;
struct gfs;

struct gfs_stat {
	uint64_t ino;
	uint32_t mode; /* S_IF* | permission bits, as in struct stat */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;
	uint64_t blocks;			     /* 512-byte units, like st_blocks */
	uint64_t rdev;				     /* device nodes: makedev() value */
	struct timespec atime, mtime, ctime, crtime; /* crtime is 0 when the inode has none */
};

/* Called for every directory entry except "." and ".."; a non-zero return stops the walk and is
 * returned by gfs_readdir. */
typedef int (*gfs_dir_cb)(const char *name, uint64_t ino, void *priv);

/* A byte range of a file. */
struct gfs_range {
	uint64_t start, len;
};

/* Called for every extended attribute ("user.x", "security.selinux"); a non-zero return stops. */
typedef int (*gfs_xattr_cb)(const char *name, const void *val, size_t len, void *priv);

/* One filesystem's implementation. impl is what its open returned. */
struct gfs_ops {
	const char *family; /* "ext", "xfs" */
	int (*lookup)(void *impl, const char *path, bool follow, uint64_t *ino);
	int (*stat)(void *impl, uint64_t ino, struct gfs_stat *st);
	int (*readdir)(void *impl, uint64_t dir, gfs_dir_cb cb, void *priv);
	int (*pread)(void *impl, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got);
	int (*readlink)(void *impl, uint64_t ino, char *buf, size_t size);
	const char *(*warning)(const void *impl);
	int (*close)(void *impl);
	/* Optional (NULL: the whole file is data, no attributes). */
	int (*data_ranges)(void *impl, uint64_t ino, struct gfs_range **out, size_t *n);
	int (*xattr_list)(void *impl, uint64_t ino, gfs_xattr_cb cb, void *priv);
};

/* Open the filesystem in [off, off+len) of bs read-only, whatever its type (-EMEDIUMTYPE with a
 * message naming `name` when no readable filesystem is there). name ("disk.img:2") prefixes
 * every message. */
int gfs_open(struct gfs **out, struct bdev *bs, uint64_t off, uint64_t len, const char *name);
/* Wrap an ext filesystem the caller already opened (and keeps: gfs_close leaves it open). */
int gfs_wrap_ext(struct gfs **out, struct extfs *fs);
/* Close (or, for a wrapped ext filesystem, just release the wrapper). */
void gfs_close(struct gfs *fs);
/* "ext" or "xfs". */
const char *gfs_family(const struct gfs *fs);
/* The name given at open. */
const char *gfs_name(const struct gfs *fs);
/* A warning to show the user about this filesystem (stale journal...), or NULL. */
const char *gfs_warning(const struct gfs *fs);
/* The ext filesystem behind fs, or NULL when it is not ext (for verbs that also write). */
struct extfs *gfs_ext(struct gfs *fs);

/* Resolve an absolute path; intermediate symlinks resolve inside the guest, a final one only
 * with follow. -ENOENT with a message naming the path when absent. */
int gfs_lookup(struct gfs *fs, const char *path, bool follow, uint64_t *ino);
/* Attributes of an inode. */
int gfs_stat(struct gfs *fs, uint64_t ino, struct gfs_stat *st);
/* Every entry of a directory except "." and "..", in on-disk order. */
int gfs_readdir(struct gfs *fs, uint64_t dir, gfs_dir_cb cb, void *priv);
/* Read up to len bytes at off; *got is short at end of file. Holes read as zeros. */
int gfs_pread(struct gfs *fs, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got);
/* The target of a symlink, NUL-terminated in buf (-ENAMETOOLONG if it does not fit). */
int gfs_readlink(struct gfs *fs, uint64_t ino, char *buf, size_t size);
/* A whole regular file (symlinks followed) into a malloc'ed buffer with a NUL after its len
 * bytes; -EFBIG with a message when it is larger than max. */
int gfs_read_file(struct gfs *fs, const char *path, size_t max, char **buf, size_t *len);
/* The byte ranges of a regular file that hold data (holes and unwritten extents left out, up to
 * its size), *out malloc'ed. */
int gfs_data_ranges(struct gfs *fs, uint64_t ino, struct gfs_range **out, size_t *n);
/* Every extended attribute of an inode (none on filesystems whose reader has no attributes). */
int gfs_xattr_list(struct gfs *fs, uint64_t ino, gfs_xattr_cb cb, void *priv);

#endif
