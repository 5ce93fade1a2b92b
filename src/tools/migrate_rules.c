/*
 * What belongs to the VM. The rules name guest paths, but they are checked on the target's own
 * directory inodes: "/lib/modules" and "/usr/lib/modules" are the same place when the base is
 * usr-merged (/lib -> usr/lib) and two places when it is split, and either way the place is
 * found by resolving the path in the target. A symlink in the container's tree cannot move a
 * rule, since the copy also places entries by the target's inodes (migrate_sync.c).
 */
#include "fs/ext.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOT_INO 2

/* The kernel and its modules, firmware, /boot, fstab, udev, the bootloader's and the
 * initramfs' configuration, the kernel's mount points, and ligero's own directory. The copy
 * neither writes nor deletes anything at or below these. */
const char *const mig_vm_paths[] = {
    "boot",
    "proc",
    "sys",
    "dev",
    "run",
    "lost+found",
    "lib/modules",
    "usr/lib/modules",
    "lib/firmware",
    "usr/lib/firmware",
    "etc/fstab",
    "etc/udev",
    "lib/udev",
    "usr/lib/udev",
    "etc/default/grub",
    "etc/default/grub.d",
    "etc/grub.d",
    "etc/sysconfig/kernel",
    "etc/kernel",
    "etc/kernel-img.conf",
    "etc/initramfs-tools",
    "var/lib/initramfs-tools",
    "etc/dracut.conf",
    "etc/dracut.conf.d",
    "var/lib/ligero-migrate",
    NULL,
};

static void key_of(char *buf, size_t len, uint32_t dir, const char *name)
{
	snprintf(buf, len, "%u/%s", dir, name);
}

bool mig_rules_owned(const struct mig_rules *r, uint32_t dir, const char *name)
{
	char key[300];

	key_of(key, sizeof(key), dir, name);
	return strmap_find(&r->owned, key) != NULL;
}

bool mig_rules_holds(const struct mig_rules *r, uint32_t dir)
{
	char key[16];

	snprintf(key, sizeof(key), "%u", dir);
	return strmap_find(&r->holds, key) != NULL;
}

bool mig_rules_path(const struct mig_rules *r, const char *path)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s", path);
	/* The path itself, then each directory above it. */
	for (;;) {
		if (strmap_find(&r->paths, p))
			return true;
		char *slash = strrchr(p, '/');
		if (!slash)
			return false;
		*slash = 0;
	}
}

/* Mark dir and the directories above it as holding an owned entry. */
static int mark_holds(struct mig_rules *r, struct extfs *fs, uint32_t dir)
{
	char key[16];

	for (int depth = 0; depth < 4096; depth++) {
		snprintf(key, sizeof(key), "%u", dir);
		if (strmap_find(&r->holds, key))
			return 0;
		if (strmap_put(&r->holds, key, NULL) < 0)
			return err_set(ENOMEM, "out of memory");
		if (dir == ROOT_INO)
			return 0;
		uint32_t up;
		if (extfs_lookup_at(fs, dir, "..", &up) < 0) {
			err_clear();
			return 0;
		}
		dir = up;
	}
	return 0;
}

int mig_rules_add(struct mig_rules *r, struct extfs *fs, const char *path)
{
	const char *rel = path + strspn(path, "/");
	char abs[4200], base[256], key[300];
	uint32_t dir;

	if (!*rel)
		return 0;
	if (strmap_put(&r->paths, rel, NULL) < 0)
		return err_set(ENOMEM, "out of memory");
	snprintf(abs, sizeof(abs), "/%s", rel);
	if (extfs_lookup_parent(fs, abs, &dir, base) < 0) {
		err_clear(); /* no such directory in the target: nothing of the VM's to keep there
			      */
		return 0;
	}
	key_of(key, sizeof(key), dir, base);
	if (strmap_put(&r->owned, key, NULL) < 0)
		return err_set(ENOMEM, "out of memory");
	return mark_holds(r, fs, dir);
}

int mig_rules_init(struct mig_rules *r, struct extfs *fs)
{
	int ret = 0;

	memset(r, 0, sizeof(*r));
	for (const char *const *p = mig_vm_paths; *p && ret == 0; p++)
		ret = mig_rules_add(r, fs, *p);
	return ret;
}

void mig_rules_free(struct mig_rules *r)
{
	strmap_free(&r->owned, NULL);
	strmap_free(&r->holds, NULL);
	strmap_free(&r->paths, NULL);
}
