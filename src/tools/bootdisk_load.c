/*
 * A disk's kernels when no boot loader configuration names them (/vmlinuz, /boot/vmlinuz-*),
 * and reading the chosen entry's kernel and initrds into memory for the VMM.
 */
#include "tools/bootdisk_priv.h"
#include "vmm/boot.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_KERNEL  (256u << 20)
#define MAX_INITRD  (1024u << 20) /* all of an entry's initrds together */
#define MAX_KERNELS 256		  /* vmlinuz-* files listed at most per directory */

int bd_path_fs(const struct bootdisk *bd, size_t i, const struct bootcfg_path *p)
{
	if (p->part == BOOTCFG_PART_CONFIG)
		return bd->info[i].cfg_fs;
	for (size_t k = 0; p->part >= 0 && k < bd->nfs; k++)
		if (bd->fs[k].num == p->part)
			return (int)k;
	return -1;
}

/* ---- kernels without a configuration ---- */

static bool exists(const struct bd_fs *f, const char *path, bool follow)
{
	uint64_t ino;
	bool yes = f->fs && gfs_lookup(f->fs, path, follow, &ino) == 0;

	err_clear();
	return yes;
}

/* A path on the root filesystem, or, when it leads into an empty /boot (a /boot partition that
 * is not mounted here), the same file on the partition that holds /boot. */
static int locate(const struct bootdisk *bd, int fi, const char *path, int *out_fi, char **out_path)
{
	char target[4096];
	const char *rest = NULL;
	uint64_t ino;

	*out_fi = fi;
	if (exists(&bd->fs[fi], path, true))
		return (*out_path = strdup(path)) ? 0 : -ENOMEM;
	if (gfs_lookup(bd->fs[fi].fs, path, false, &ino) == 0 &&
	    gfs_readlink(bd->fs[fi].fs, ino, target, sizeof(target)) == 0) {
		rest = !strncmp(target, "/boot/", 6)  ? target + 5
		       : !strncmp(target, "boot/", 5) ? target + 4
						      : NULL;
	} else if (!strncmp(path, "/boot/", 6)) {
		rest = path + 5;
	}
	err_clear();
	for (size_t k = 0; rest && k < bd->nfs; k++)
		if ((int)k != fi && !bd->fs[k].is_root && exists(&bd->fs[k], rest, true)) {
			*out_fi = (int)k;
			return (*out_path = strdup(rest)) ? 0 : -ENOMEM;
		}
	*out_path = NULL;
	return 1;
}

static int set_path(struct bootcfg_path *p, const struct bd_fs *f, const char *path)
{
	p->part = f->num;
	return (p->path = strdup(path)) ? 0 : -ENOMEM;
}

/* One entry: title, kernel and an optional initrd, the command line for the root filesystem. */
static int new_entry(const struct bootdisk *bd, struct bootcfg_menu *m, const char *title,
		     const struct bd_fs *kf, const char *kernel, const struct bd_fs *inf,
		     const char *initrd)
{
	const struct bd_fs *root = bd->root >= 0 ? &bd->fs[bd->root] : NULL;
	struct bootcfg_entry *v = realloc(m->v, (m->n + 1) * sizeof(*v)), *e;
	int ret;

	if (!v)
		return -ENOMEM;
	m->v = v;
	e = memset(&v[m->n], 0, sizeof(*e));
	e->depth = 1;
	e->lvl[0].index = (int)m->n;
	ret = (e->title = strdup(title)) && (e->lvl[0].title = strdup(title)) ? 0 : -ENOMEM;
	if (ret == 0)
		ret = set_path(&e->kernel, kf, kernel);
	if (ret == 0 && initrd && !(e->initrd = calloc(1, sizeof(*e->initrd))))
		ret = -ENOMEM;
	if (ret == 0 && initrd && (ret = set_path(&e->initrd[0], inf, initrd)) == 0)
		e->ninitrd = 1;
	if (ret == 0) {
		if (root && root->probe.uuid[0])
			ret = asprintf(&e->options, "root=UUID=%s ro", root->probe.uuid);
		else
			ret = (e->options = strdup("ro")) ? 0 : -1;
		ret = ret < 0 ? (e->options = NULL, -ENOMEM) : 0;
	}
	m->n++;
	return ret;
}

/* /vmlinuz and /initrd.img on the root filesystem (Debian's links). */
static int find_links(struct bootdisk *bd)
{
	struct bootcfg_menu m = {0};
	char *kernel = NULL, *initrd = NULL;
	int kfi, ifi = -1, ret;

	if (bd->root < 0 || !exists(&bd->fs[bd->root], "/vmlinuz", false))
		return 0;
	if ((ret = locate(bd, bd->root, "/vmlinuz", &kfi, &kernel)) != 0)
		return ret < 0 ? ret : 0; /* a dangling link is no entry */
	if (exists(&bd->fs[bd->root], "/initrd.img", false) &&
	    (ret = locate(bd, bd->root, "/initrd.img", &ifi, &initrd)) < 0)
		goto out;
	ret = new_entry(bd, &m, "/vmlinuz", &bd->fs[kfi], kernel, initrd ? &bd->fs[ifi] : NULL,
			initrd);
	if (ret == 0)
		ret = bd_adopt(bd, &m, bd->root, "", "/vmlinuz link", "/vmlinuz", NULL);
out:
	bootcfg_menu_free(&m);
	free(kernel);
	free(initrd);
	return ret;
}

struct names {
	char **v;
	size_t n;
};

static int kernel_name(const char *name, uint64_t ino, void *priv)
{
	struct names *l = priv;
	char **v;

	(void)ino;
	if (strncmp(name, "vmlinuz-", 8) || !name[8] || l->n >= MAX_KERNELS)
		return 0;
	if (!(v = realloc(l->v, (l->n + 1) * sizeof(*v))) || !(v[l->n] = strdup(name))) {
		if (v)
			l->v = v;
		return -ENOMEM;
	}
	l->v = v;
	l->n++;
	return 0;
}

static int newest_first(const void *a, const void *b)
{
	return -bootcfg_filevercmp(*(char *const *)a, *(char *const *)b);
}

/* Every vmlinuz-VERSION in dir, newest first, each with initrd.img-VERSION (Debian),
 * initramfs-VERSION.img (Fedora family), initrd-VERSION.img or initrd-VERSION. */
static int find_in_dir(struct bootdisk *bd, size_t fi, const char *dir)
{
	static const char *const pre[] = {"initrd.img-", "initramfs-", "initrd-", "initrd-"};
	static const char *const suf[] = {"", ".img", ".img", ""};
	const struct bd_fs *f = &bd->fs[fi];
	struct names l = {0};
	struct bootcfg_menu m = {0};
	uint64_t ino;
	int ret = 0;

	if (!f->fs || gfs_lookup(f->fs, dir, true, &ino) < 0 ||
	    gfs_readdir(f->fs, ino, kernel_name, &l) < 0 || !l.n) {
		err_clear();
		free(l.v);
		return 0;
	}
	qsort(l.v, l.n, sizeof(*l.v), newest_first);
	for (size_t i = 0; i < l.n && ret == 0; i++) {
		char kernel[512], initrd[512];
		const char *ver = l.v[i] + 8, *d = strcmp(dir, "/") ? dir : "";
		bool have = false;
		snprintf(kernel, sizeof(kernel), "%s/%s", d, l.v[i]);
		for (size_t k = 0; k < 4 && !have; k++) {
			snprintf(initrd, sizeof(initrd), "%s/%s%s%s", d, pre[k], ver, suf[k]);
			have = exists(f, initrd, true);
		}
		ret = new_entry(bd, &m, l.v[i], f, kernel, f, have ? initrd : NULL);
	}
	if (ret == 0)
		ret = bd_adopt(bd, &m, (int)fi, "", "newest kernel", dir, NULL);
	bootcfg_menu_free(&m);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	return ret;
}

int bd_find_kernels(struct bootdisk *bd)
{
	int ret = find_links(bd);

	/* the root's /boot, then /boot partitions; with no root known, everything */
	if (ret == 0 && bd->root >= 0)
		ret = find_in_dir(bd, (size_t)bd->root, "/boot");
	for (size_t i = 0; i < bd->nfs && ret == 0; i++) {
		if ((int)i == bd->root || bd->fs[i].is_root)
			continue;
		if (bd->root < 0)
			ret = find_in_dir(bd, i, "/boot");
		if (ret == 0)
			ret = find_in_dir(bd, i, "/");
	}
	return ret;
}

/* ---- reading an entry ---- */

/* Read one file of entry i; *from and *name get the filesystem and the path it was read at. */
static int read_path(const struct bootdisk *bd, size_t i, const struct bootcfg_path *p,
		     const char *what, size_t max, char **buf, size_t *len, const char **from,
		     char **name)
{
	const struct bootcfg_entry *e = &bd->menu.v[i];
	const struct bd_info *in = &bd->info[i];
	int fi = bd_path_fs(bd, i, p), ret = 1;
	char *alt = NULL, *path = NULL;

	if (fi < 0 && p->part == BOOTCFG_PART_OTHER)
		return err_set(ENODEV,
			       "%s: the %s of entry '%s' is %s, on a device ligero cannot read "
			       "(only the partitions of the disk itself)",
			       in->source, what, e->title, p->path);
	if (fi < 0)
		return err_set(ENOENT,
			       "%s: the %s of entry '%s' is on partition %d, which %s has not",
			       in->source, what, e->title, p->part, bd->path);
	if (!bd->fs[fi].fs)
		return err_set(ENOTSUP, "%s (the %s of entry '%s' is there)", bd->fs[fi].why, what,
			       e->title);
	/* as written; inside the root's /boot when the configuration was found there but names
	 * paths from a /boot partition's point of view; on a /boot partition for "/boot/..." */
	ret = bd_read_file(&bd->fs[fi], p->path, max, buf, len);
	if (ret == 1 && !strcmp(in->prefix, "/boot") && strncmp(p->path, "/boot/", 6) &&
	    (alt = bd_join("/boot", p->path)) &&
	    (ret = bd_read_file(&bd->fs[fi], alt, max, buf, len)) == 0)
		path = alt;
	if (ret == 1 && !strncmp(p->path, "/boot/", 6)) {
		int other;
		char *rest = NULL;
		if (locate(bd, fi, p->path, &other, &rest) == 0 && other != fi &&
		    (ret = bd_read_file(&bd->fs[other], rest, max, buf, len)) == 0) {
			fi = other;
			free(alt);
			path = alt = rest;
		} else {
			free(rest);
		}
	}
	if (ret == 1)
		ret = err_set(ENOENT, "%s: %s: no such file (the %s of entry '%s' in %s)",
			      bd->fs[fi].name, p->path, what, e->title, in->source);
	else if (ret < 0)
		ret = err_prefix(ret, "%s (the %s of entry '%s'): ", in->source, what, e->title);
	if (ret == 0 && !(*name = strdup(path ? path : p->path)))
		ret = -ENOMEM;
	if (ret == 0)
		*from = bd->fs[fi].name;
	free(alt);
	return ret;
}

bool bootdisk_serial_console(const char *cmdline)
{
	for (const char *p = cmdline; p && (p = strstr(p, "console=ttyS")); p++)
		if (p == cmdline || isspace((unsigned char)p[-1]) || p[-1] == '"')
			return true;
	return false;
}

static int build_cmdline(const char *opts, const char *extra, struct bootdisk_image *img)
{
	bool serial = bootdisk_serial_console(opts) || bootdisk_serial_console(extra);

	img->console_added = !serial;
	if (asprintf(&img->cmdline, "%s%s%s%s%s", opts, *opts && !serial ? " " : "",
		     serial ? "" : "console=ttyS0", extra && *extra ? " " : "",
		     extra ? extra : "") < 0) {
		img->cmdline = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int load_initrds(const struct bootdisk *bd, size_t idx, struct bootdisk_image *img)
{
	const struct bootcfg_entry *e = &bd->menu.v[idx];
	size_t total = 0;
	int ret = 0;

	for (size_t k = 0; k < e->ninitrd && ret == 0; k++) {
		char *buf = NULL, *name = NULL, *all_names = NULL;
		const char *from;
		size_t len = 0, pad = (4 - total % 4) % 4; /* GRUB aligns each initrd to 4 bytes */
		uint8_t *all = NULL;
		ret = read_path(bd, idx, &e->initrd[k], "initrd", MAX_INITRD - total, &buf, &len,
				&from, &name);
		if (ret == 0 && total + pad + len > MAX_INITRD)
			ret = err_set(EFBIG, "%s:%s: the initrds of entry '%s' pass %u MiB", from,
				      name, e->title, MAX_INITRD >> 20);
		if (ret == 0 &&
		    (!(all = realloc(img->initrd, total + pad + len + 1)) ||
		     asprintf(&all_names, "%s%s%s", img->initrd_paths ? img->initrd_paths : "",
			      img->initrd_paths ? ", " : "", name) < 0)) {
			if (all)
				img->initrd = all;
			ret = -ENOMEM;
		}
		if (ret == 0) {
			memset(all + total, 0, pad);
			memcpy(all + total + pad, buf, len);
			img->initrd = all;
			total += pad + len;
			free(img->initrd_paths);
			img->initrd_paths = all_names;
		}
		free(buf);
		free(name);
	}
	img->initrd_len = total;
	return ret;
}

int bootdisk_load(struct bootdisk *bd, size_t idx, const char *extra, struct bootdisk_image *img)
{
	const struct bootcfg_entry *e;
	struct bzimage bz;
	const char *from = NULL;
	char *buf = NULL;
	size_t len = 0;
	int ret;

	memset(img, 0, sizeof(*img));
	if (idx >= bd->menu.n)
		return err_set(ENOENT, "%s: no boot entry %zu", bd->path, idx);
	e = &bd->menu.v[idx];
	ret = read_path(bd, idx, &e->kernel, "kernel", MAX_KERNEL, &buf, &len, &from,
			&img->kernel_path);
	if (ret == 0 && !(img->from = strdup(from)))
		ret = -ENOMEM;
	if (ret == 0 &&
	    (ret = bzimage_parse((const uint8_t *)buf, len < 0x400 ? len : 0x400, len, &bz)) < 0)
		ret = err_prefix(ret, "%s:%s: ", img->from, img->kernel_path);
	img->kernel = buf;
	img->kernel_len = len;
	if (ret == 0)
		ret = load_initrds(bd, idx, img);
	if (ret == 0 && e->ninitrd && img->initrd_len == 0)
		ret = err_set(EINVAL, "%s: the initrd of entry '%s' (%s) is empty", bd->path,
			      e->title, img->initrd_paths);
	if (ret == 0)
		ret = build_cmdline(e->options ? e->options : "", extra, img);
	if (ret < 0)
		bootdisk_image_free(img);
	return ret;
}

void bootdisk_image_free(struct bootdisk_image *img)
{
	free(img->kernel);
	free(img->initrd);
	free(img->from);
	free(img->kernel_path);
	free(img->initrd_paths);
	free(img->cmdline);
	memset(img, 0, sizeof(*img));
}
