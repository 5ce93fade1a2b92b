/* What an offline guest disk holds, like virt-inspector: OS, hostname, kernels, fstab, network
 * configuration files. */
#ifndef LIGERO_FS_INSPECT_H
#define LIGERO_FS_INSPECT_H

#include <stddef.h>

struct fs_disk;
struct extfs;
struct gfs;

struct fs_kernel {
	char *version; /* "6.1.0-13-amd64" */
	char *kernel;  /* path in the filesystem that holds it */
	char *initrd;  /* matching initrd, or NULL */
};

struct fs_fstab_entry {
	char *spec, *file, *type, *options;
};

struct fs_inspect {
	int root_part; /* partition of the root filesystem, 0 for a whole disk */
	int boot_part; /* partition holding the kernels (root_part unless /boot is separate) */
	char *os_id, *os_name, *os_version, *os_pretty, *os_codename; /* from os-release */
	char *hostname;
	struct fs_kernel *kernels;
	size_t nkernels;
	struct fs_fstab_entry *fstab;
	size_t nfstab;
	char **netfiles; /* network configuration files found, as guest paths */
	size_t nnetfiles;
};

/* Inspect the root filesystem root (partition root_part of disk d); kernels in a separate /boot
 * partition are found by looking at the disk's other filesystems (ext or xfs). */
int fs_inspect_gfs(struct fs_disk *d, struct gfs *root, int root_part, struct fs_inspect *out);
/* The same for an ext root filesystem. */
int fs_inspect(struct fs_disk *d, struct extfs *root, int root_part, struct fs_inspect *out);
/* Free what fs_inspect filled in. */
void fs_inspect_free(struct fs_inspect *in);

#endif
