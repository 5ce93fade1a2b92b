/*
 * Addressing a guest filesystem, the same in every verb: "DISK" is the only filesystem on the
 * disk, or the one holding /etc/os-release when there are several; "DISK:N" is partition N.
 */
#ifndef LIGERO_FS_DISK_H
#define LIGERO_FS_DISK_H

#include "fs/detect.h"
#include "fs/part.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bdev;
struct extfs;
struct gfs;

struct fs_disk {
	struct bdev *bs;
	char *path;
	struct part_table pt;
	char *warning; /* set when the image is in use and was opened without locks */
};

/* One place that may hold a filesystem: a partition, or the whole disk (num 0). */
struct fs_slot {
	int num;
	uint64_t start, size;
	const struct part *part; /* NULL for the whole disk */
	struct fs_probe probe;
};

/* An address resolved to an open filesystem. */
struct fs_handle {
	struct fs_disk *disk;
	struct extfs *fs; /* for writing: NULL when the filesystem is one ligero only reads (xfs) */
	struct gfs *gfs;  /* for reading, whatever the filesystem */
	int num;	  /* the partition used, 0 for a whole-disk filesystem */
	bool rw;	  /* opened for writing (h->fs holds the changes until close) */
};

/* Split "DISK:N" into the disk path (malloc'ed) and N; plain "DISK" gives N = 0. A name that
 * itself exists as a file is taken whole, so "./a:b" and existing "x:1" files work. */
int fs_addr_parse(const char *arg, char **path, int *num);
/* Open a disk image (any format the block layer knows) and read its partition table. rw fails
 * with -EAGAIN when another process (a running VM) holds the image; read-only opens of such an
 * image go ahead without locks and set disk->warning. */
int fs_disk_open(struct fs_disk **out, const char *path, bool rw);
/* Close the image (and free the table). */
void fs_disk_close(struct fs_disk *d);
/* Every partition (or the whole disk when there is no table) with what detection found. */
int fs_disk_slots(struct fs_disk *d, struct fs_slot **out, size_t *n);
/* Open the ext filesystem of partition num (0 = pick as described above). */
int fs_disk_open_fs(struct fs_disk *d, int num, bool rw, struct extfs **fs, int *used);
/* Open the filesystem of partition num (0 = pick) read-only, whatever it is (ext2/3/4, xfs). */
int fs_disk_open_gfs(struct fs_disk *d, int num, struct gfs **fs, int *used);
/* Parse an address, open the disk and its filesystem: h->gfs always, h->fs too when it is ext
 * (rw refuses filesystems ligero only reads). disk_opt (--disk) names the file literally; then
 * addr is unused and num_opt picks the partition. */
int fs_handle_open(struct fs_handle *h, const char *addr, const char *disk_opt, int num_opt,
		   bool rw);
/* Close the filesystem (writing it back) and the disk; returns the first error. */
int fs_handle_close(struct fs_handle *h);

#endif
