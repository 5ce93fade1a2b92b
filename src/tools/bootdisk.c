/*
 * Finding the boot entries of a disk (bootdisk.h says where, in which order). Every filesystem
 * of the disk is opened read-only through fs/gfs.h; the configuration files are parsed by
 * tools/bootcfg*.c, which run nothing. The last resort (kernels without a configuration) and
 * reading the chosen entry's files are bootdisk_load.c.
 */
#include "tools/bootdisk_priv.h"
#include "block/block.h"
#include "fs/detect.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_BLS_FILES 1024 /* entries in /boot/loader/entries read at most */

static const char *const prefixes[] = {"/boot", ""};

char *bd_join(const char *a, const char *b)
{
	char *s = NULL;

	return asprintf(&s, "%s%s", a, b) < 0 ? NULL : s;
}

int bd_read_file(const struct bd_fs *f, const char *path, size_t max, char **buf, size_t *len)
{
	uint64_t ino;
	struct gfs_stat st;
	int ret;

	if (!f->fs || gfs_lookup(f->fs, path, true, &ino) < 0 || gfs_stat(f->fs, ino, &st) < 0 ||
	    !S_ISREG(st.mode)) {
		err_clear();
		return 1;
	}
	ret = gfs_read_file(f->fs, path, max, buf, len);
	return ret < 0 ? ret : 0;
}

static bool is_dir(const struct bd_fs *f, const char *path)
{
	struct gfs_stat st;
	uint64_t ino;
	bool dir = f->fs && gfs_lookup(f->fs, path, true, &ino) == 0 &&
		   gfs_stat(f->fs, ino, &st) == 0 && S_ISDIR(st.mode);

	err_clear();
	return dir;
}

/* ---- the disk's filesystems ---- */

static int add_fs(struct bootdisk *bd, const struct fs_slot *s)
{
	struct bd_fs *v = realloc(bd->fs, (bd->nfs + 1) * sizeof(*v)), *f;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	bd->fs = v;
	f = &v[bd->nfs];
	memset(f, 0, sizeof(*f));
	f->num = s->num;
	f->probe = s->probe;
	if ((s->num ? asprintf(&f->name, "%s:%d", bd->path, s->num)
		    : asprintf(&f->name, "%s", bd->path)) < 0)
		return -ENOMEM;
	bd->nfs++;
	if (!strcmp(s->probe.type, "swap") || !strcmp(s->probe.type, "LVM2_member"))
		ret = asprintf(&f->why, "%s: %s, not a filesystem", f->name,
			       s->probe.type[0] == 's' ? "swap space" : "an LVM physical volume");
	else if (gfs_open(&f->fs, bd->disk.bs, s->start, s->size, f->name) < 0)
		ret = asprintf(&f->why, "%s", err_msg());
	err_clear();
	if (ret < 0)
		return -ENOMEM;
	if (f->fs) {
		uint64_t ino;
		f->is_root = gfs_lookup(f->fs, "/etc/os-release", false, &ino) == 0 ||
			     gfs_lookup(f->fs, "/usr/lib/os-release", false, &ino) == 0;
		f->has_boot = is_dir(f, "/boot");
		err_clear();
	}
	return 0;
}

static int scan_disk(struct bootdisk *bd)
{
	struct fs_slot *s;
	size_t n, readable = 0;
	int ret = fs_disk_slots(&bd->disk, &s, &n);

	for (size_t i = 0; i < n && ret == 0; i++)
		if (s[i].probe.type[0] && !(s[i].part && s[i].part->container))
			ret = add_fs(bd, &s[i]);
	if (ret == 0 && n == 1 && !s[0].part && !bd->nfs)
		ret = err_set(ENOENT,
			      "%s: no partition table and no filesystem ligero can read: nothing "
			      "to boot",
			      bd->path);
	free(s);
	if (ret < 0)
		return ret;
	bd->root = -1;
	for (size_t i = 0; i < bd->nfs; i++) {
		readable += bd->fs[i].fs != NULL;
		if (bd->fs[i].is_root && bd->root < 0)
			bd->root = (int)i;
	}
	if (!readable && bd->nfs == 1 && bd->fs[0].why)
		return err_set(ENOENT, "%s: nothing to boot", bd->fs[0].why);
	if (!readable)
		return err_set(ENOENT,
			       "%s: none of its %zu partitions holds a filesystem ligero can read "
			       "(ext2/3/4, xfs): nothing to boot",
			       bd->path, n);
	if (bd->root < 0 && readable == 1)
		for (size_t i = 0; i < bd->nfs; i++)
			if (bd->fs[i].fs)
				bd->root = (int)i;
	return 0;
}

/* grub.cfg's `search`: filesystems by UUID or label (readable or not), files on readable ones. */
static int search_fs(void *priv, const char *kind, const char *what)
{
	struct bootdisk *bd = priv;

	for (size_t i = 0; i < bd->nfs; i++) {
		const struct bd_fs *f = &bd->fs[i];
		uint64_t ino;
		if ((!strcmp(kind, "uuid") && !strcasecmp(f->probe.uuid, what)) ||
		    (!strcmp(kind, "label") && f->probe.label[0] && !strcmp(f->probe.label, what)))
			return f->num;
		if (!strcmp(kind, "file") && f->fs && gfs_lookup(f->fs, what, true, &ino) == 0)
			return f->num;
	}
	err_clear();
	return -1;
}

/* ---- entries ---- */

int bd_adopt(struct bootdisk *bd, struct bootcfg_menu *m, int cfg_fs, const char *prefix,
	     const char *kind, const char *source, const char *dir)
{
	size_t n = m->n, first = bd->menu.n;
	struct bootcfg_entry *v = realloc(bd->menu.v, (bd->menu.n + n) * sizeof(*v));
	struct bd_info *info;

	if (!v)
		return -ENOMEM;
	bd->menu.v = v;
	if (!(info = realloc(bd->info, (bd->menu.n + n) * sizeof(*info))))
		return -ENOMEM;
	bd->info = info;
	for (size_t i = 0; i < n; i++) {
		struct bd_info *in = &info[bd->menu.n];
		int r;
		memset(in, 0, sizeof(*in));
		in->cfg_fs = cfg_fs;
		in->prefix = prefix;
		in->kind = kind;
		r = source ? asprintf(&in->source, "%s:%s", bd->fs[cfg_fs].name, source)
			   : asprintf(&in->source, "%s:%s/%s.conf", bd->fs[cfg_fs].name, dir,
				      m->v[i].id);
		v[bd->menu.n++] = m->v[i];
		memset(&m->v[i], 0, sizeof(m->v[i]));
		if (r < 0) {
			in->source = NULL;
			return -ENOMEM;
		}
	}
	if (!first)
		bd->menu.def = m->def;
	m->n = 0;
	return 0;
}

struct names {
	char **v;
	size_t n;
};

static int bls_name(const char *name, uint64_t ino, void *priv)
{
	struct names *l = priv;
	size_t len = strlen(name);
	char **v;

	(void)ino;
	if (name[0] == '.' || len <= 5 || strcmp(name + len - 5, ".conf") || l->n >= MAX_BLS_FILES)
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

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* grubenv next to a configuration ("/boot/grub2" + "/grubenv"); absent or broken: empty. */
static void load_grubenv(const struct bd_fs *f, const char *dir, struct bootcfg_env *env)
{
	char *path = bd_join(dir, "/grubenv"), *buf;
	size_t len;

	memset(env, 0, sizeof(*env));
	if (path && bd_read_file(f, path, 64 << 10, &buf, &len) == 0) {
		if (bootcfg_grubenv_parse(buf, len, env) < 0)
			memset(env, 0, sizeof(*env));
		free(buf);
	}
	free(path);
	err_clear();
}

/* The variables and `default` blscfg sees: grubenv, then grub.cfg run over it. */
static void bls_env(struct bootdisk *bd, const struct bd_fs *f, const char *prefix,
		    struct bootcfg_menu *cfg)
{
	static const char *const dirs[] = {"/grub2", "/grub"};

	memset(cfg, 0, sizeof(*cfg));
	for (size_t d = 0; d < 2; d++) {
		char *dir = bd_join(prefix, dirs[d]),
		     *path = dir ? bd_join(dir, "/grub.cfg") : NULL;
		char *buf;
		size_t len;
		struct bootcfg_env env;
		if (!path || !is_dir(f, dir)) {
			free(dir);
			free(path);
			continue;
		}
		load_grubenv(f, dir, &env);
		buf = NULL;
		if (bd_read_file(f, path, BOOTCFG_MAX_FILE, &buf, &len) != 0 ||
		    bootcfg_grub_parse(buf, len, &env, search_fs, bd, cfg) < 0) {
			/* no usable grub.cfg: grubenv as load_env gives it */
			memset(cfg, 0, sizeof(*cfg));
			cfg->env = env;
			const char *saved = bootcfg_env_get(&env, "saved_entry");
			if (saved && bootcfg_env_set(&cfg->env, "default", saved) < 0)
				err_clear();
		} else {
			bootcfg_env_free(&env);
		}
		free(buf);
		err_clear();
		free(dir);
		free(path);
		return;
	}
}

static int try_bls(struct bootdisk *bd, size_t fi, const char *prefix, bool *found)
{
	const struct bd_fs *f = &bd->fs[fi];
	char *dir = bd_join(prefix, "/loader/entries");
	struct names l = {0};
	struct bootcfg_menu m = {0}, cfg;
	uint64_t ino;
	int ret = 0;

	if (!dir)
		return -ENOMEM;
	if (!is_dir(f, dir) || gfs_lookup(f->fs, dir, true, &ino) < 0 ||
	    gfs_readdir(f->fs, ino, bls_name, &l) < 0 || !l.n) {
		err_clear();
		goto out;
	}
	bls_env(bd, f, prefix, &cfg);
	if (!(m.v = calloc(l.n, sizeof(*m.v))))
		ret = -ENOMEM;
	for (size_t i = 0; i < l.n && ret == 0; i++) {
		char *path = NULL, *buf;
		size_t len;
		if (asprintf(&path, "%s/%s", dir, l.v[i]) < 0) {
			ret = -ENOMEM;
			break;
		}
		if (bd_read_file(f, path, BOOTCFG_MAX_FILE, &buf, &len) == 0) {
			/* like blscfg, an entry it cannot use is left out */
			if (bootcfg_bls_parse(l.v[i], buf, len, &cfg.env, &m.v[m.n]) == 0)
				m.n++;
			free(buf);
		}
		free(path);
		err_clear();
	}
	if (ret == 0 && m.n) {
		bootcfg_bls_sort(&m, bootcfg_env_get(&cfg.env, "default"));
		ret = bd_adopt(bd, &m, (int)fi, prefix, "BLS", NULL, dir);
		*found = ret == 0;
	}
	bootcfg_menu_free(&cfg);
out:
	bootcfg_menu_free(&m);
	names_free(&l);
	free(dir);
	return ret;
}

/* grub.cfg (grub != 0) or menu.lst at prefix+file. A grub.cfg GRUB would fail on is an error. */
static int try_config(struct bootdisk *bd, size_t fi, const char *prefix, const char *file,
		      bool grub, bool *found)
{
	const struct bd_fs *f = &bd->fs[fi];
	char *path = bd_join(prefix, file), *buf = NULL, *dir;
	struct bootcfg_menu m = {0};
	struct bootcfg_env env = {0};
	size_t len;
	int ret;

	if (!path)
		return -ENOMEM;
	if ((ret = bd_read_file(f, path, BOOTCFG_MAX_FILE, &buf, &len)) != 0) {
		free(path);
		return ret < 0 ? ret : 0; /* the message names the file */
	}
	if (grub && (dir = strdup(path))) {
		*strrchr(dir, '/') = '\0';
		load_grubenv(f, dir, &env);
		free(dir);
	}
	ret = grub ? bootcfg_grub_parse(buf, len, &env, search_fs, bd, &m)
		   : bootcfg_legacy_parse(buf, len, &m);
	if (ret < 0)
		ret = err_prefix(ret, "%s:%s: ", f->name, path);
	else if (m.n && (ret = bd_adopt(bd, &m, (int)fi, prefix, grub ? "grub.cfg" : "menu.lst",
					path, NULL)) == 0)
		*found = true;
	bootcfg_menu_free(&m);
	bootcfg_env_free(&env);
	free(buf);
	free(path);
	return ret;
}

static int find_entries(struct bootdisk *bd)
{
	static const char *const grub_files[] = {"/grub/grub.cfg", "/grub2/grub.cfg"};
	static const char *const legacy_files[] = {"/grub/menu.lst", "/grub/grub.conf"};
	bool found = false;
	int ret = 0;

	for (size_t i = 0; i < bd->nfs && !found && ret == 0; i++)
		for (size_t p = 0; p < 2 && !found && ret == 0 && bd->fs[i].fs; p++)
			ret = try_bls(bd, i, prefixes[p], &found);
	for (size_t i = 0; i < bd->nfs && !found && ret == 0; i++)
		for (size_t p = 0; p < 2 && !found && ret == 0 && bd->fs[i].fs; p++)
			for (size_t k = 0; k < 2 && !found && ret == 0; k++)
				ret = try_config(bd, i, prefixes[p], grub_files[k], true, &found);
	for (size_t i = 0; i < bd->nfs && !found && ret == 0; i++)
		for (size_t p = 0; p < 2 && !found && ret == 0 && bd->fs[i].fs; p++)
			for (size_t k = 0; k < 2 && !found && ret == 0; k++)
				ret =
				    try_config(bd, i, prefixes[p], legacy_files[k], false, &found);
	if (!found && ret == 0)
		ret = bd_find_kernels(bd);
	return ret;
}

/* "disk.qcow2: no bootable entry found: looked for ... in disk.qcow2:1 (ext4), ..." */
static int none_found(const struct bootdisk *bd)
{
	char where[1024] = "", unread[1024] = "";

	for (size_t i = 0; i < bd->nfs; i++) {
		const struct bd_fs *f = &bd->fs[i];
		char *dst = f->fs ? where : unread;
		size_t used = strlen(dst);
		if (f->fs)
			snprintf(dst + used, sizeof(where) - used, "%s%s (%s%s)", used ? ", " : "",
				 f->name, f->probe.type,
				 f->has_boot  ? ""
				 : f->is_root ? ", no /boot"
					      : "");
		else
			snprintf(dst + used, sizeof(unread) - used, "; %s", f->why);
	}
	return err_set(ENOENT,
		       "%s: no bootable entry found: looked for /boot/loader/entries/*.conf, "
		       "/boot/grub/grub.cfg, /boot/grub2/grub.cfg, /boot/grub/menu.lst, /vmlinuz "
		       "and /boot/vmlinuz-* (and the same without /boot on a /boot partition) in "
		       "%s%s",
		       bd->path, where, unread);
}

static int fill_public(struct bootdisk *bd)
{
	for (size_t i = 0; i < bd->menu.n; i++) {
		struct bootcfg_entry *e = &bd->menu.v[i];
		struct bd_info *in = &bd->info[i];
		int fi = bd_path_fs(bd, i, &e->kernel);
		if (!(in->initrd = calloc(e->ninitrd + 1, sizeof(*in->initrd))))
			return -ENOMEM;
		for (size_t k = 0; k < e->ninitrd; k++)
			in->initrd[k] = e->initrd[k].path;
		in->pub = (struct bootdisk_entry){
		    .title = e->title,
		    .id = e->id,
		    .kernel = e->kernel.path,
		    .kernel_fs = fi >= 0 ? bd->fs[fi].name : NULL,
		    .initrd = in->initrd,
		    .ninitrd = e->ninitrd,
		    .options = e->options ? e->options : "",
		    .kind = in->kind,
		    .source = in->source,
		    .is_default = i == bd->menu.def,
		};
	}
	return 0;
}

int bootdisk_open(struct bootdisk **out, const char *path, const char *format)
{
	struct bootdisk *bd = calloc(1, sizeof(*bd));
	int ret;

	if (!bd || !(bd->path = strdup(path))) {
		free(bd);
		return -ENOMEM;
	}
	bd->disk.path = bd->path;
	ret = bdev_open(&bd->disk.bs, path, format, 0);
	if (ret == 0)
		ret = part_read(bd->disk.bs, &bd->disk.pt);
	if (ret == 0)
		ret = scan_disk(bd);
	if (ret == 0)
		ret = find_entries(bd);
	if (ret == 0 && bd->menu.n == 0)
		ret = none_found(bd);
	if (ret == 0)
		ret = fill_public(bd);
	if (ret < 0) {
		bootdisk_close(bd);
		return ret;
	}
	*out = bd;
	return 0;
}

size_t bootdisk_count(const struct bootdisk *bd)
{
	return bd->menu.n;
}

const struct bootdisk_entry *bootdisk_entry(const struct bootdisk *bd, size_t i)
{
	return i < bd->menu.n ? &bd->info[i].pub : NULL;
}

size_t bootdisk_default(const struct bootdisk *bd)
{
	return bd->menu.def;
}

int bootdisk_select(const struct bootdisk *bd, const char *spec, size_t *idx)
{
	char *end;
	long n;

	if (spec[0] && isdigit((unsigned char)spec[0])) {
		n = strtol(spec, &end, 10);
		if (!*end) {
			if (n < 0 || (size_t)n >= bd->menu.n)
				return err_set(
				    ENOENT,
				    "--boot-entry %s: %s has %zu boot entries (0 to %zu; "
				    "see --list-boot-entries)",
				    spec, bd->path, bd->menu.n, bd->menu.n - 1);
			*idx = (size_t)n;
			return 0;
		}
	}
	n = bootcfg_menu_find(&bd->menu, spec);
	for (size_t i = 0; i < bd->menu.n && n < 0; i++) {
		const struct bootcfg_entry *e = &bd->menu.v[i];
		if (e->depth && e->lvl[e->depth - 1].title &&
		    !strcmp(e->lvl[e->depth - 1].title, spec))
			n = (long)i;
	}
	if (n < 0)
		return err_set(
		    ENOENT,
		    "--boot-entry '%s': no entry of %s has that number, title or id (see "
		    "--list-boot-entries)",
		    spec, bd->path);
	*idx = (size_t)n;
	return 0;
}

void bootdisk_close(struct bootdisk *bd)
{
	if (!bd)
		return;
	for (size_t i = 0; i < bd->menu.n && bd->info; i++) {
		free(bd->info[i].source);
		free(bd->info[i].initrd);
	}
	free(bd->info);
	bootcfg_menu_free(&bd->menu);
	for (size_t i = 0; i < bd->nfs; i++) {
		gfs_close(bd->fs[i].fs);
		free(bd->fs[i].name);
		free(bd->fs[i].why);
	}
	free(bd->fs);
	if (bd->disk.bs)
		bdev_close(bd->disk.bs);
	part_table_free(&bd->disk.pt);
	free(bd->path);
	free(bd);
}
