/* Internals shared by ext_io.c, ext.c and ext_write.c. Not part of the fs/ API. */
#ifndef LIGERO_FS_EXT_PRIV_H
#define LIGERO_FS_EXT_PRIV_H

#include "fs/ext.h"

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

struct extfs {
	ext2_filsys fs;
	struct bdev *bs;
	char *name;
	char *warning;
	bool rw;
	bool mounted;
	struct ext_io *io;
	struct ext_map *map; /* ext_map.c's extent cache for the last inode read */
};

/* What the io_manager needs to reach the disk: a byte window of a bdev. */
struct ext_io {
	struct bdev *bs;
	uint64_t off, len;
	bool failed; /* a bdev call failed: its message is the one worth showing */
};

/* The io_manager that reads and writes through struct ext_io; the device name passed to
 * ext2fs_open2 is ext_io_name()'s text for that window. */
extern io_manager ext_bdev_io_manager;
void ext_io_name(const struct ext_io *io, char *buf, size_t len);

/* Record "<fs name>: <what>: <libext2fs message>" and return the matching -errno. */
int ext_err(struct extfs *fs, errcode_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The -errno closest to a libext2fs error code. */
int ext_errno(errcode_t code);

/* Read or write a whole (large) inode, recording a message on failure. */
int ext_read_inode(struct extfs *fs, uint32_t ino, struct ext2_inode_large *inode);
int ext_write_inode(struct extfs *fs, uint32_t ino, struct ext2_inode_large *inode);
/* Set an inode time field pair from a timespec (extra field only when the inode has room). */
void ext_set_time(struct extfs *fs, struct ext2_inode_large *inode, int which,
		  const struct timespec *ts);
enum { EXT_ATIME, EXT_MTIME, EXT_CTIME, EXT_CRTIME };
/* -EROFS with a message unless the filesystem was opened for writing. */
int ext_check_rw(struct extfs *fs);

/* Read from an extent-mapped file with one bdev read per contiguous run (ext_map.c). */
int ext_map_pread(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in, uint64_t off,
		  void *buf, size_t len, size_t *got);
/* Write block-aligned data into blocks already mapped and initialized, one I/O per contiguous
 * run; 1 when some of the range is not (the caller writes through libext2fs). */
int ext_map_pwrite(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in, uint64_t off,
		   const void *buf, size_t len);
/* Drop the cached extent list (any inode write may change it). */
void ext_map_forget(struct extfs *fs);
/* Release the cache (at close). */
void ext_map_free(struct extfs *fs);

#endif
