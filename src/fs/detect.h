/* Filesystem detection by superblock: ext2/3/4, xfs, btrfs, vfat, swap, LVM2 PV. */
#ifndef LIGERO_FS_DETECT_H
#define LIGERO_FS_DETECT_H

#include <stdint.h>

struct bdev;

struct fs_probe {
	char type[16]; /* "ext4", "xfs", ...; "" when nothing is recognised */
	char label[64];
	char uuid[48];
};

/* Look for a known superblock in [off, off+len) of a disk. Finding nothing is not an error
 * (type is ""); only I/O errors fail. */
int fs_detect(struct bdev *bs, uint64_t off, uint64_t len, struct fs_probe *out);

/* True when type is an ext2/3/4 filesystem (the ones ligero can read and write). */
int fs_type_is_ext(const char *type);

#endif
