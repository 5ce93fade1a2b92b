/*
 * Who else uses a disk. Two sources, because neither is complete alone: the other definitions
 * (their disks and those disks' backing chains, read layer by layer from the image headers),
 * and the block layer's record of overlays made by ligero (bdev_base_users), which also knows
 * overlays no VM definition names. Files are compared by identity (device and inode), so a
 * path spelled differently or through a link is still the same disk.
 */
#include "host/vmdisks.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool same_file(const char *path, const struct stat *st)
{
	struct stat o;

	return path && stat(path, &o) == 0 && o.st_dev == st->st_dev && o.st_ino == st->st_ino;
}

/* Whether the image at top, or any image below it in its backing chain, is the file st. Each
 * layer is opened alone (no backing, no locks), so a missing or broken layer further down ends
 * the walk instead of hiding the layers above it. */
static bool chain_has(const char *top, const struct stat *st)
{
	char *path = strdup(top);
	bool found = false;

	for (int depth = 0; path && depth < BDEV_MAX_CHAIN && !found; depth++) {
		struct bdev *bs;
		char *next = NULL;

		if (same_file(path, st)) {
			found = true;
			break;
		}
		/* A remote image's chain holds no local file, and opening it needs its server. */
		if (bdev_is_remote_name(path))
			break;
		if (bdev_open(&bs, path, NULL, BDEV_O_NO_BACKING | BDEV_O_FORCE_SHARE) < 0)
			break;
		if (bs->backing_path)
			next = strdup(bs->backing_path);
		bdev_close(bs);
		free(path);
		path = next;
	}
	free(path);
	err_clear();
	return found;
}

int vm_disk_removable(const struct registry *r, const char *name, const char *path)
{
	char **names, first[4096];
	struct stat st;
	size_t n;
	int ret, users;

	if (stat(path, &st) < 0)
		return err_sys(errno, "%s", path);
	if ((ret = registry_names(r, &names, &n)) < 0)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		struct vmdef d;

		if (!strcmp(names[i], name) || registry_load(r, names[i], &d) < 0)
			continue;
		for (size_t j = 0; j < d.ndisks && !ret; j++) {
			if (same_file(d.disks[j].path, &st))
				ret = err_set(EBUSY, "%s is also a disk of VM %s; kept", path,
					      names[i]);
			else if (chain_has(d.disks[j].path, &st))
				ret = err_set(EBUSY,
					      "%s is in the backing chain of %s (a disk of "
					      "VM %s); kept",
					      path, d.disks[j].path, names[i]);
		}
		vmdef_free(&d);
	}
	registry_names_free(names, n);
	if (ret)
		return ret;
	users = bdev_base_users(path, first, sizeof(first));
	if (users > 0)
		return err_set(EBUSY, "%s is the backing file of %d overlay%s (%s); kept", path,
			       users, users == 1 ? "" : "s", first);
	return 0;
}
