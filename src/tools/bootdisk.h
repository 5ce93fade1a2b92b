/*
 * Booting a disk's own kernel without firmware, the way Xen's pygrub does: find /boot on the
 * disk (MBR or GPT, /boot a partition of its own or inside the root filesystem), read the boot
 * loader's configuration through src/fs (no host mount, nothing booted), and hand the VMM the
 * entry's kernel, initrd and command line as buffers.
 *
 * Where the entries come from, first found wins:
 *   1. BLS entries, /boot/loader/entries/ *.conf, ordered and defaulted as GRUB's blscfg does
 *      (grubenv's saved_entry, $kernelopts and other variables from grubenv and grub.cfg);
 *   2. GRUB 2's grub.cfg (/boot/grub/grub.cfg, /boot/grub2/grub.cfg) and its default entry;
 *   3. GRUB legacy's /boot/grub/menu.lst (or grub.conf);
 *   4. the root filesystem's /vmlinuz and /initrd.img links, then every /boot/vmlinuz-*, the
 *      newest (`sort -V`) first, each with its initrd, booted with root=UUID= of the root
 *      filesystem and ro.
 * On a separate /boot partition the same files are looked for without the /boot prefix.
 */
#ifndef LIGERO_TOOLS_BOOTDISK_H
#define LIGERO_TOOLS_BOOTDISK_H

#include <stdbool.h>
#include <stddef.h>

struct bootdisk;

struct bootdisk_entry {
	const char *title;
	const char *id;	       /* GRUB --id or BLS file name, or NULL */
	const char *kernel;    /* the path as the entry names it */
	const char *kernel_fs; /* "disk.qcow2:2" holding it, or NULL: a device ligero cannot read */
	const char *const *initrd;
	size_t ninitrd;
	const char *options; /* the entry's kernel command line */
	const char *kind;    /* "BLS", "grub.cfg", "menu.lst", "/vmlinuz link", "newest kernel" */
	const char *source;  /* the file it comes from: "disk.qcow2:2:/boot/grub/grub.cfg" */
	bool is_default;
};

/* What to boot: the kernel and initrd read from the disk, and the command line. */
struct bootdisk_image {
	void *kernel, *initrd; /* initrd: the entry's initrds one after the other, or NULL */
	size_t kernel_len, initrd_len;
	char *from;	   /* the filesystem the kernel was read from: "disk.qcow2:2" */
	char *kernel_path; /* "/boot/vmlinuz-6.1.0-18-amd64" */
	char *
	    initrd_paths; /* "/boot/initrd.img-6.1.0-18-amd64" (several: joined by ", "), or NULL */
	char *cmdline;
	bool console_added; /* console=ttyS0 was added: the entry names no serial console */
};

/*
 * Open the disk image read-only (format NULL: probed) and find its boot entries. Fails with a
 * message when there is none, saying where it looked: a disk with no filesystem ligero can
 * read, no /boot, or no configuration and no kernel; and when a configuration file is broken.
 */
int bootdisk_open(struct bootdisk **out, const char *path, const char *format);
/* The entries, in menu order, and the default one. */
size_t bootdisk_count(const struct bootdisk *bd);
const struct bootdisk_entry *bootdisk_entry(const struct bootdisk *bd, size_t i);
size_t bootdisk_default(const struct bootdisk *bd);
/* The entry --boot-entry names: its index in the list, GRUB's own names for it (a title, an id,
 * "1>2" through submenus) or its title alone. -ENOENT with a message when none matches. */
int bootdisk_select(const struct bootdisk *bd, const char *spec, size_t *idx);
/*
 * Read entry idx's kernel (which must be a bzImage) and initrd, and build the command line:
 * the entry's options, console=ttyS0 when they (and extra) name no serial console, then extra
 * (the user's --cmdline, or NULL). Errors name the file: a missing kernel, a kernel that is not
 * a bzImage, a device or filesystem ligero cannot read.
 */
int bootdisk_load(struct bootdisk *bd, size_t idx, const char *extra, struct bootdisk_image *img);
void bootdisk_image_free(struct bootdisk_image *img);
/* Close the disk (the image keeps what it read). */
void bootdisk_close(struct bootdisk *bd);

/* Does a kernel command line name a serial console (console=ttyS...)? */
bool bootdisk_serial_console(const char *cmdline);

#endif
