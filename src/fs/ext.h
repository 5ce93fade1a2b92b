/*
 * ext2/3/4 through libext2fs, on a byte range of a bdev (a partition or the whole disk), so it
 * works on any image format and chain the block layer opens. Paths are absolute guest paths;
 * intermediate symlinks resolve inside the guest. Inode numbers are the handles.
 */
#ifndef LIGERO_FS_EXT_H
#define LIGERO_FS_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct bdev;
struct extfs;
struct statvfs;

struct extfs_stat {
	uint32_t ino;
	uint32_t mode; /* S_IF* | permission bits, as in struct stat */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;
	uint64_t blocks;			     /* 512-byte units, like st_blocks */
	uint64_t rdev;				     /* device nodes: makedev() value */
	struct timespec atime, mtime, ctime, crtime; /* crtime is 0 when the inode has none */
};

struct extfs_range {
	uint64_t start, len; /* bytes */
};

/* Open the filesystem in [off, off+len) of bs. name ("disk.img:2") prefixes every message.
 * rw asks for write access: refused (-EROFS) when the journal needs recovery, the filesystem is
 * marked with errors or was not unmounted cleanly. Read-only opens of such filesystems succeed and
 * extfs_warning() says why the content may be stale. */
int extfs_open(struct extfs **out, struct bdev *bs, uint64_t off, uint64_t len, const char *name,
	       bool rw);
/* Write back what changed and release everything; returns the first write-back error. */
int extfs_close(struct extfs *fs);
/* Write back metadata and flush the bdev, keeping the filesystem open. */
int extfs_sync(struct extfs *fs);
/* A warning to show the user about this filesystem, or NULL. */
const char *extfs_warning(const struct extfs *fs);
/* The name given at open. */
const char *extfs_name(const struct extfs *fs);
/* Mark the filesystem in use (not clean) until close, as a mounted filesystem is. */
int extfs_mark_mounted(struct extfs *fs);

/* Resolve an absolute path; follow says whether a final symlink is followed. */
int extfs_lookup(struct extfs *fs, const char *path, bool follow, uint32_t *ino);
/* Resolve the directory that holds path and copy its last component to base (256 bytes). */
int extfs_lookup_parent(struct extfs *fs, const char *path, uint32_t *dir, char base[256]);
/* Look a name up in a directory; -ENOENT if absent (no message recorded). */
int extfs_lookup_at(struct extfs *fs, uint32_t dir, const char *name, uint32_t *ino);
/* Attributes of an inode. */
int extfs_stat(struct extfs *fs, uint32_t ino, struct extfs_stat *st);
/* Block and inode counts, for statfs(2). */
int extfs_statfs(struct extfs *fs, struct statvfs *sv);

/* Call cb for every entry of a directory except "." and ".."; a non-zero return stops. */
typedef int (*extfs_dir_cb)(const char *name, uint32_t ino, void *priv);
int extfs_readdir(struct extfs *fs, uint32_t dir, extfs_dir_cb cb, void *priv);
/* Read up to len bytes at off; *got is short at end of file. */
int extfs_pread(struct extfs *fs, uint32_t ino, uint64_t off, void *buf, size_t len, size_t *got);
/* The target of a symlink, NUL-terminated in buf (-ENAMETOOLONG if it does not fit). */
int extfs_readlink(struct extfs *fs, uint32_t ino, char *buf, size_t size);
/* The byte ranges of a file that hold data (holes and unwritten extents left out); caller frees. */
int extfs_data_ranges(struct extfs *fs, uint32_t ino, struct extfs_range **out, size_t *n);

/* Extended attributes, named as the VFS names them ("user.x", "security.selinux"). */
typedef int (*extfs_xattr_cb)(const char *name, const void *val, size_t len, void *priv);
int extfs_xattr_list(struct extfs *fs, uint32_t ino, extfs_xattr_cb cb, void *priv);
/* Get one attribute; *val is malloc'ed. -ENODATA if absent. */
int extfs_xattr_get(struct extfs *fs, uint32_t ino, const char *name, void **val, size_t *len);
/* Create or replace one attribute. */
int extfs_xattr_set(struct extfs *fs, uint32_t ino, const char *name, const void *val, size_t len);
/* Remove one attribute. */
int extfs_xattr_remove(struct extfs *fs, uint32_t ino, const char *name);

/* Create a regular file, fifo, socket or device node (mode has the S_IF* type) in dir. */
int extfs_mknod(struct extfs *fs, uint32_t dir, const char *name, uint32_t mode, uint64_t rdev,
		uint32_t uid, uint32_t gid, uint32_t *ino);
/* Create a directory with the given permission bits and owner. */
int extfs_mkdir(struct extfs *fs, uint32_t dir, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, uint32_t *ino);
/* Create a symbolic link dir/name -> target. */
int extfs_symlink(struct extfs *fs, uint32_t dir, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, uint32_t *ino);
/* Add a hard link to ino (not a directory) as dir/name. */
int extfs_link(struct extfs *fs, uint32_t dir, const char *name, uint32_t ino);
/* Remove a non-directory entry; the inode is freed with its last link. */
int extfs_unlink(struct extfs *fs, uint32_t dir, const char *name);
/* Remove an empty directory. */
int extfs_rmdir(struct extfs *fs, uint32_t dir, const char *name);
/* Move odir/oname to ndir/nname, replacing a target of the same kind (an empty directory). */
int extfs_rename(struct extfs *fs, uint32_t odir, const char *oname, uint32_t ndir,
		 const char *nname);
/* Write len bytes at off into a regular file, growing it as needed. */
int extfs_pwrite(struct extfs *fs, uint32_t ino, uint64_t off, const void *buf, size_t len);
/* Map blocks for [off, off+len) of a regular file in one go, ahead of writing all of it: the
 * writes then go to blocks already mapped (one extent-tree update, not one per block). The
 * blocks hold old bytes until written. Nothing for files without extents. */
int extfs_alloc(struct extfs *fs, uint32_t ino, uint64_t off, uint64_t len);
/* Set the size of a regular file (freeing blocks past it). */
int extfs_truncate(struct extfs *fs, uint32_t ino, uint64_t size);
/* Change permission bits (the S_IF* type is kept). */
int extfs_chmod(struct extfs *fs, uint32_t ino, uint32_t mode);
/* Change owner; (uint32_t)-1 keeps that id. */
int extfs_chown(struct extfs *fs, uint32_t ino, uint32_t uid, uint32_t gid);
/* Set atime and mtime (tv_nsec may be UTIME_NOW or UTIME_OMIT). ctime becomes now. */
int extfs_utimens(struct extfs *fs, uint32_t ino, const struct timespec ts[2]);

#endif
