/* From "disk.qcow2:2" to an open filesystem: image, partition table, detection, root choice. */
#include "fs/disk.h"
#include "block/block.h"
#include "fs/ext.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fs_addr_parse(const char *arg, char **path, int *num)
{
	const char *colon = strrchr(arg, ':');

	*num = 0;
	*path = NULL;
	if (!arg[0])
		return err_set(EINVAL, "empty disk name");
	if (colon && colon[1] && access(arg, F_OK) != 0) {
		char *end;
		errno = 0;
		long n = strtol(colon + 1, &end, 10);
		/* A remote name's own options (rbd:POOL/IMAGE:conf=F) are not a partition. */
		if ((*end || end == colon + 1) && bdev_is_remote_name(arg)) {
			*path = strdup(arg);
			return *path ? 0 : err_set(ENOMEM, "out of memory");
		}
		if (*end || n < 1 || n > 1 << 20 || errno || colon == arg)
			return err_set(EINVAL,
				       "%s: not a disk address (DISK or DISK:N with N a "
				       "partition number; a file whose name contains ':' is named "
				       "./NAME or with --disk)",
				       arg);
		*num = (int)n;
		*path = strndup(arg, (size_t)(colon - arg));
	} else {
		*path = strdup(arg);
	}
	return *path ? 0 : err_set(ENOMEM, "out of memory");
}

int fs_disk_open(struct fs_disk **out, const char *path, bool rw)
{
	struct fs_disk *d = calloc(1, sizeof(*d));
	int ret;

	if (!d || !(d->path = strdup(path))) {
		free(d);
		return err_set(ENOMEM, "out of memory");
	}
	ret = bdev_open(&d->bs, path, NULL, rw ? BDEV_O_RDWR : 0);
	if (ret == -EAGAIN && rw) {
		ret = err_set(EAGAIN,
			      "%s: the image is in use by another process (a running VM?); "
			      "refusing to write to it",
			      path);
	} else if (ret == -EAGAIN) {
		ret = bdev_open(&d->bs, path, NULL, BDEV_O_FORCE_SHARE);
		if (ret == 0 && asprintf(&d->warning,
					 "%s: warning: the image is in use by another "
					 "process (a running VM?); what is read may be "
					 "inconsistent",
					 path) < 0)
			d->warning = NULL;
	}
	if (ret == 0)
		ret = part_read(d->bs, &d->pt);
	if (ret < 0) {
		fs_disk_close(d);
		return ret;
	}
	*out = d;
	return 0;
}

void fs_disk_close(struct fs_disk *d)
{
	if (!d)
		return;
	bdev_close(d->bs);
	part_table_free(&d->pt);
	free(d->warning);
	free(d->path);
	free(d);
}

int fs_disk_slots(struct fs_disk *d, struct fs_slot **out, size_t *n)
{
	size_t count = d->pt.scheme == PART_NONE ? 1 : d->pt.n;
	struct fs_slot *s = calloc(count ? count : 1, sizeof(*s));
	int ret = 0;

	if (!s)
		return err_set(ENOMEM, "out of memory");
	if (d->pt.scheme == PART_NONE) {
		s[0].size = d->bs->size;
		ret = fs_detect(d->bs, 0, d->bs->size, &s[0].probe);
	}
	for (size_t i = 0; d->pt.scheme != PART_NONE && i < count && ret == 0; i++) {
		const struct part *p = &d->pt.parts[i];
		s[i] =
		    (struct fs_slot){.num = p->num, .start = p->start, .size = p->size, .part = p};
		if (!p->container)
			ret = fs_detect(d->bs, p->start, p->size, &s[i].probe);
	}
	if (ret < 0) {
		free(s);
		return ret;
	}
	*out = s;
	*n = count;
	return 0;
}

static char *slot_name(struct fs_disk *d, int num)
{
	char *name = NULL;

	if ((num ? asprintf(&name, "%s:%d", d->path, num) : asprintf(&name, "%s", d->path)) < 0)
		return NULL;
	return name;
}

static bool readable(const struct fs_probe *p)
{
	return fs_type_is_ext(p->type) || !strcmp(p->type, "xfs");
}

/* Why a slot cannot be opened (the message recorded), or 0. */
static int slot_check(const struct fs_slot *s, const char *name, bool rw)
{
	if (s->part && s->part->container)
		return err_set(EINVAL,
			       "%s: is an extended partition (it holds the logical "
			       "partitions, numbered from 5), not a filesystem",
			       name);
	if (!s->probe.type[0])
		return err_set(EINVAL, "%s: no filesystem found (not a known superblock)", name);
	if (rw && !strcmp(s->probe.type, "xfs"))
		return err_set(EROFS, "%s: xfs is read-only in ligero; writes need ext2/3/4", name);
	if (!readable(&s->probe))
		return err_set(ENOTSUP,
			       "%s: %s filesystems are not supported (ext2, ext3, ext4 and, "
			       "read-only, xfs are)",
			       name, s->probe.type);
	return 0;
}

static int open_slot(struct fs_disk *d, const struct fs_slot *s, bool rw, struct extfs **fs)
{
	char *name = slot_name(d, s->num);
	int ret;

	if (!name)
		return err_set(ENOMEM, "out of memory");
	if ((ret = slot_check(s, name, rw)) == 0 && !fs_type_is_ext(s->probe.type))
		ret = err_set(ENOTSUP, "%s: holds %s; this needs ext2/3/4", name, s->probe.type);
	if (ret == 0)
		ret = extfs_open(fs, d->bs, s->start, s->size, name, rw);
	free(name);
	return ret;
}

static int open_slot_gfs(struct fs_disk *d, const struct fs_slot *s, struct gfs **fs)
{
	char *name = slot_name(d, s->num);
	int ret;

	if (!name)
		return err_set(ENOMEM, "out of memory");
	if ((ret = slot_check(s, name, false)) == 0)
		ret = gfs_open(fs, d->bs, s->start, s->size, name);
	free(name);
	return ret;
}

static bool mountable(const struct fs_probe *p)
{
	return p->type[0] && strcmp(p->type, "swap") && strcmp(p->type, "LVM2_member");
}

/* Several filesystems: the root is the readable one with /etc/os-release. */
static int pick_root(struct fs_disk *d, struct fs_slot *s, size_t n, int *num)
{
	int found = 0, count = 0;
	char others[128] = "";

	for (size_t i = 0; i < n; i++) {
		struct gfs *fs;
		uint64_t ino;
		if (!readable(&s[i].probe) || open_slot_gfs(d, &s[i], &fs) < 0)
			continue;
		if (gfs_lookup(fs, "/etc/os-release", false, &ino) == 0) {
			count++;
			if (!found)
				found = s[i].num;
			else
				snprintf(others + strlen(others), sizeof(others) - strlen(others),
					 " %d", s[i].num);
		}
		gfs_close(fs);
	}
	if (count == 1) {
		*num = found;
		return 0;
	}
	if (count > 1)
		return err_set(EINVAL,
			       "%s: several filesystems hold an operating system root "
			       "(partitions %d%s); name one as %s:N",
			       d->path, found, others, d->path);
	return err_set(EINVAL,
		       "%s: has several filesystems and none holds /etc/os-release; name "
		       "one as %s:N (see 'ligero fs list %s')",
		       d->path, d->path, d->path);
}

/* The slot an address names (num 0: the only filesystem, or the root among several). */
static int pick_slot(struct fs_disk *d, int num, struct fs_slot *s, size_t n, struct fs_slot **slot)
{
	int ret = 0;

	if (num && d->pt.scheme == PART_NONE)
		return err_set(ENOENT,
			       "%s: has no partition table, so no partition %d (name the "
			       "whole disk as %s)",
			       d->path, num, d->path);
	if (!num && d->pt.scheme == PART_NONE) {
		if (!s[0].probe.type[0])
			return err_set(EINVAL, "%s: no partition table and no known filesystem",
				       d->path);
		*slot = &s[0];
		return 0;
	}
	if (!num) {
		int candidates = 0;
		for (size_t i = 0; i < n; i++)
			if (mountable(&s[i].probe)) {
				candidates++;
				num = s[i].num;
			}
		if (candidates == 0)
			return err_set(EINVAL,
				       "%s: none of its %zu partitions holds a known "
				       "filesystem",
				       d->path, n);
		if (candidates > 1 && (ret = pick_root(d, s, n, &num)) < 0)
			return ret;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i].num == num) {
			*slot = &s[i];
			return 0;
		}
	return err_set(ENOENT, "%s: has no partition %d (see 'ligero fs list %s')", d->path, num,
		       d->path);
}

int fs_disk_open_fs(struct fs_disk *d, int num, bool rw, struct extfs **fs, int *used)
{
	struct fs_slot *s, *slot;
	size_t n;
	int ret = fs_disk_slots(d, &s, &n);

	if (ret < 0)
		return ret;
	if ((ret = pick_slot(d, num, s, n, &slot)) == 0 &&
	    (ret = open_slot(d, slot, rw, fs)) == 0 && used)
		*used = slot->num;
	free(s);
	return ret;
}

int fs_disk_open_gfs(struct fs_disk *d, int num, struct gfs **fs, int *used)
{
	struct fs_slot *s, *slot;
	size_t n;
	int ret = fs_disk_slots(d, &s, &n);

	if (ret < 0)
		return ret;
	if ((ret = pick_slot(d, num, s, n, &slot)) == 0 &&
	    (ret = open_slot_gfs(d, slot, fs)) == 0 && used)
		*used = slot->num;
	free(s);
	return ret;
}

int fs_handle_open(struct fs_handle *h, const char *addr, const char *disk_opt, int num_opt,
		   bool rw)
{
	char *path = NULL;
	int num = num_opt, ret;

	memset(h, 0, sizeof(*h));
	if (disk_opt)
		path = strdup(disk_opt);
	else if ((ret = fs_addr_parse(addr, &path, &num)) < 0)
		return ret;
	if (!path)
		return err_set(ENOMEM, "out of memory");
	ret = fs_disk_open(&h->disk, path, rw);
	free(path);
	if (ret < 0)
		return ret;
	if (!rw) {
		ret = fs_disk_open_gfs(h->disk, num, &h->gfs, &h->num);
		h->fs = ret == 0 ? gfs_ext(h->gfs) : NULL;
	} else if ((ret = fs_disk_open_fs(h->disk, num, rw, &h->fs, &h->num)) == 0 &&
		   (ret = gfs_wrap_ext(&h->gfs, h->fs)) < 0) {
		extfs_close(h->fs);
	}
	if (ret < 0) {
		fs_disk_close(h->disk);
		memset(h, 0, sizeof(*h));
	} else {
		h->rw = rw;
	}
	return ret;
}

int fs_handle_close(struct fs_handle *h)
{
	int ret = 0;

	/* A writing handle's gfs only wraps h->fs, which holds the write-back; a read-only
	 * handle's gfs owns its filesystem. */
	gfs_close(h->gfs);
	if (h->rw)
		ret = extfs_close(h->fs);
	fs_disk_close(h->disk);
	memset(h, 0, sizeof(*h));
	return ret;
}
