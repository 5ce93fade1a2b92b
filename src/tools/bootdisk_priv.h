/* Internal to src/tools/bootdisk*.c: the disk, its filesystems and the entries found. */
#ifndef LIGERO_TOOLS_BOOTDISK_PRIV_H
#define LIGERO_TOOLS_BOOTDISK_PRIV_H

#include "tools/bootcfg.h"
#include "tools/bootdisk.h"
#include "fs/disk.h"
#include "fs/gfs.h"

#include <stdbool.h>
#include <stddef.h>

/* One filesystem of the disk. */
struct bd_fs {
	int num; /* partition, 0 for a whole-disk filesystem */
	struct fs_probe probe;
	struct gfs *fs; /* NULL when it cannot be read (then why says so) */
	char *name;	/* "disk.qcow2:2" */
	char *why;
	bool is_root;  /* holds /etc/os-release */
	bool has_boot; /* holds a /boot directory */
};

/* What an entry needs besides its bootcfg_entry. */
struct bd_info {
	struct bootdisk_entry pub;
	const char **initrd; /* pub.initrd */
	char *source;
	const char *kind;
	int cfg_fs;	    /* the filesystem holding the configuration */
	const char *prefix; /* "/boot" when it was found inside the root filesystem, else "" */
};

struct bootdisk {
	char *path;
	struct fs_disk disk;
	struct bd_fs *fs;
	size_t nfs;
	int root; /* the root filesystem (index in fs), or -1 */
	struct bootcfg_menu menu;
	struct bd_info *info; /* parallel to menu.v */
};

/* a then b, malloc'ed. */
char *bd_join(const char *a, const char *b);
/* A regular file (symlinks followed) of at most max bytes: 0, 1 when it is absent, or an error
 * (too large, unreadable). */
int bd_read_file(const struct bd_fs *f, const char *path, size_t max, char **buf, size_t *len);
/* Append the entries of m (emptied) as found in filesystem cfg_fs under prefix; their source
 * is fs name + source, or for BLS (source NULL) each entry's own file in dir. */
int bd_adopt(struct bootdisk *bd, struct bootcfg_menu *m, int cfg_fs, const char *prefix,
	     const char *kind, const char *source, const char *dir);
/* The last resort: /vmlinuz and /initrd.img, then every vmlinuz-* newest first. */
int bd_find_kernels(struct bootdisk *bd);
/* The filesystem (index in bd->fs) a path of entry i is on, or -1. */
int bd_path_fs(const struct bootdisk *bd, size_t i, const struct bootcfg_path *p);

#endif
