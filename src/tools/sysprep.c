/*
 * Sysprep's driver: open the disk for writing (the block layer's locks and base guard refuse a
 * disk in use and a base with overlays), find the Linux root filesystem, run the chosen
 * operations, report every change. The guest's files are untrusted: paths resolve inside the
 * guest's own filesystem, files are read with size caps, and a removal never follows a final
 * symlink. See sysprep.h.
 */
#include "tools/sysprep_priv.h"
#include "fs/disk.h"
#include "fs/ext.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#define MAX_DEPTH 256 /* directory levels a removal descends (guest trees are untrusted) */

/* ---- the result ---- */

__attribute__((format(printf, 1, 0))) static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

int sp_record(struct sysprep_ctx *c, const char *path, const char *action, const char *fmt, ...)
{
	struct sysprep_result *r = c->r;
	struct sysprep_change *ch;
	va_list ap;

	if (r->nchanges == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 32;
		struct sysprep_change *n = realloc(r->changes, cap * sizeof(*n));
		if (!n)
			return err_set(ENOMEM, "out of memory");
		r->changes = n;
		r->cap = cap;
	}
	ch = &r->changes[r->nchanges];
	memset(ch, 0, sizeof(*ch));
	ch->op = c->op;
	snprintf(ch->action, sizeof(ch->action), "%s", action);
	va_start(ap, fmt);
	ch->detail = vfmt(fmt, ap);
	va_end(ap);
	ch->path = strdup(path);
	if (!ch->path || !ch->detail) {
		free(ch->path);
		free(ch->detail);
		return err_set(ENOMEM, "out of memory");
	}
	r->nchanges++;
	return 0;
}

int sp_note(struct sysprep_ctx *c, const char *fmt, ...)
{
	struct sysprep_result *r = c->r;
	char **n = realloc(r->notes, (r->nnotes + 1) * sizeof(*n));
	va_list ap;

	if (!n)
		return err_set(ENOMEM, "out of memory");
	r->notes = n;
	va_start(ap, fmt);
	n[r->nnotes] = vfmt(fmt, ap);
	va_end(ap);
	if (!n[r->nnotes])
		return err_set(ENOMEM, "out of memory");
	r->nnotes++;
	return 0;
}

void sysprep_result_free(struct sysprep_result *r)
{
	for (size_t i = 0; i < r->nchanges; i++) {
		free(r->changes[i].path);
		free(r->changes[i].detail);
	}
	free(r->changes);
	for (size_t i = 0; i < r->nnotes; i++)
		free(r->notes[i]);
	free(r->notes);
	free(r->root);
	free(r->os_id);
	memset(r, 0, sizeof(*r));
}

/* ---- reading the guest ---- */

static uint32_t type_of(struct sysprep_ctx *c, const char *path, bool follow)
{
	struct extfs_stat st;
	uint32_t ino;

	if (extfs_lookup(c->fs, path, follow, &ino) < 0 || extfs_stat(c->fs, ino, &st) < 0) {
		err_clear();
		return 0;
	}
	return st.mode & S_IFMT;
}

uint32_t sp_type(struct sysprep_ctx *c, const char *path)
{
	return type_of(c, path, false);
}

uint32_t sp_type_follow(struct sysprep_ctx *c, const char *path)
{
	return type_of(c, path, true);
}

char *sp_read(struct sysprep_ctx *c, const char *path, size_t max, size_t *len, bool *too_big)
{
	struct extfs_stat st;
	uint32_t ino;
	size_t got = 0;

	if (too_big)
		*too_big = false;
	if (extfs_lookup(c->fs, path, true, &ino) < 0 || extfs_stat(c->fs, ino, &st) < 0 ||
	    !S_ISREG(st.mode)) {
		err_clear();
		return NULL;
	}
	if (st.size > max) {
		if (too_big)
			*too_big = true;
		return NULL;
	}
	char *buf = malloc(st.size + 1);
	if (!buf || extfs_pread(c->fs, ino, 0, buf, st.size, &got) < 0) {
		free(buf);
		err_clear();
		return NULL;
	}
	buf[got] = '\0';
	if (len)
		*len = got;
	return buf;
}

struct names {
	char **v;
	size_t n, cap;
};

static int add_name(const char *name, uint32_t ino, void *priv)
{
	struct names *l = priv;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(name)))
		return err_set(ENOMEM, "out of memory");
	l->n++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sp_list(struct sysprep_ctx *c, const char *dir, char ***names, size_t *n)
{
	struct names l = {0};
	uint32_t ino;
	int ret = 0;

	*names = NULL;
	*n = 0;
	if (sp_type(c, dir) != S_IFDIR)
		return 0;
	if ((ret = extfs_lookup(c->fs, dir, false, &ino)) == 0)
		ret = extfs_readdir(c->fs, ino, add_name, &l);
	if (ret < 0) {
		sp_names_free(l.v, l.n);
		return ret;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_names);
	*names = l.v;
	*n = l.n;
	return 0;
}

void sp_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- writing the guest ---- */

static int parent_of(struct sysprep_ctx *c, const char *path, uint32_t *dir, char base[256])
{
	int ret = extfs_lookup_parent(c->fs, path, dir, base);

	if (ret == -ENOENT)
		err_clear();
	return ret;
}

/* Remove dir/name and everything below it, at most MAX_DEPTH levels down. */
static int remove_at(struct sysprep_ctx *c, uint32_t dir, const char *name, const char *path,
		     int depth)
{
	struct extfs_stat st;
	struct names l = {0};
	uint32_t ino;
	int ret = extfs_lookup_at(c->fs, dir, name, &ino);

	if (ret < 0 || (ret = extfs_stat(c->fs, ino, &st)) < 0)
		return ret;
	if (!S_ISDIR(st.mode))
		return extfs_unlink(c->fs, dir, name);
	if (depth >= MAX_DEPTH)
		return err_set(ELOOP, "%s: %s: more than %d directory levels below; not removed",
			       extfs_name(c->fs), path, MAX_DEPTH);
	ret = extfs_readdir(c->fs, ino, add_name, &l);
	for (size_t i = 0; i < l.n && ret == 0; i++)
		ret = remove_at(c, ino, l.v[i], path, depth + 1);
	sp_names_free(l.v, l.n);
	return ret < 0 ? ret : extfs_rmdir(c->fs, dir, name);
}

int sp_remove(struct sysprep_ctx *c, const char *path, const char *why)
{
	char base[256];
	uint32_t dir, ino;
	int ret = parent_of(c, path, &dir, base);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	if ((ret = extfs_lookup_at(c->fs, dir, base, &ino)) == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	if (!c->o->dry_run && (ret = remove_at(c, dir, base, path, 0)) < 0)
		return ret;
	return sp_record(c, path, "removed", "%s", why ? why : "");
}

int sp_truncate(struct sysprep_ctx *c, const char *path, const char *why)
{
	struct extfs_stat st;
	uint32_t ino;
	int ret;

	if (extfs_lookup(c->fs, path, true, &ino) < 0) {
		err_clear();
		return 0;
	}
	if ((ret = extfs_stat(c->fs, ino, &st)) < 0)
		return ret;
	if (!S_ISREG(st.mode) || st.size == 0)
		return 0;
	if (!c->o->dry_run && (ret = extfs_truncate(c->fs, ino, 0)) < 0)
		return ret;
	return sp_record(c, path, "emptied", "%s", why ? why : "");
}

int sp_write(struct sysprep_ctx *c, const char *path, const void *buf, size_t len, uint32_t mode,
	     const char *action, const char *why)
{
	struct extfs_stat st;
	char base[256];
	uint32_t dir, ino;
	int ret = extfs_lookup(c->fs, path, true, &ino);

	if (ret == 0) {
		if ((ret = extfs_stat(c->fs, ino, &st)) < 0)
			return ret;
		if (!S_ISREG(st.mode))
			return err_set(EINVAL, "%s: %s: not a regular file; not written",
				       extfs_name(c->fs), path);
		if (!c->o->dry_run && ((ret = extfs_truncate(c->fs, ino, 0)) < 0 ||
				       (len && (ret = extfs_pwrite(c->fs, ino, 0, buf, len)) < 0)))
			return ret;
		return sp_record(c, path, action, "%s", why ? why : "");
	}
	if (ret != -ENOENT)
		return ret;
	err_clear();
	if ((ret = parent_of(c, path, &dir, base)) == -ENOENT && c->o->dry_run)
		return sp_record(c, path, "created", "%s", why ? why : ""); /* with its directory */
	if (ret < 0)
		return ret == -ENOENT ? err_set(ENOENT, "%s: %s: its directory does not exist",
						extfs_name(c->fs), path)
				      : ret;
	if (extfs_lookup_at(c->fs, dir, base, &ino) == 0)
		return err_set(EINVAL, "%s: %s: a dangling symlink; not written", extfs_name(c->fs),
			       path);
	if (!c->o->dry_run &&
	    ((ret = extfs_mknod(c->fs, dir, base, S_IFREG | mode, 0, 0, 0, &ino)) < 0 ||
	     (len && (ret = extfs_pwrite(c->fs, ino, 0, buf, len)) < 0)))
		return ret;
	return sp_record(c, path, "created", "%s", why ? why : "");
}

int sp_symlink(struct sysprep_ctx *c, const char *target, const char *path, const char *why)
{
	char base[256];
	uint32_t dir, ino;
	int ret = parent_of(c, path, &dir, base);

	if (ret == -ENOENT && c->o->dry_run) /* a real run would have made the directory */
		return sp_record(c, path, "linked", "-> %s%s%s", target, why ? "; " : "",
				 why ? why : "");
	if (ret < 0)
		return ret == -ENOENT ? err_set(ENOENT, "%s: %s: its directory does not exist",
						extfs_name(c->fs), path)
				      : ret;
	ret = extfs_lookup_at(c->fs, dir, base, &ino);
	if (ret == 0 && sp_type(c, path) == S_IFDIR)
		return err_set(EISDIR, "%s: %s: a directory; not replaced", extfs_name(c->fs),
			       path);
	if (!c->o->dry_run) {
		if (ret == 0 && (ret = extfs_unlink(c->fs, dir, base)) < 0)
			return ret;
		if ((ret = extfs_symlink(c->fs, dir, base, target, 0, 0, &ino)) < 0)
			return ret;
	}
	return sp_record(c, path, "linked", "-> %s%s%s", target, why ? "; " : "", why ? why : "");
}

/* A dry run recorded making this directory already. */
static bool dry_made(struct sysprep_ctx *c, const char *path)
{
	for (size_t i = 0; i < c->r->nchanges; i++)
		if (!strcmp(c->r->changes[i].action, "created") &&
		    !strcmp(c->r->changes[i].detail, "a directory") &&
		    !strcmp(c->r->changes[i].path, path))
			return true;
	return false;
}

int sp_mkdirs(struct sysprep_ctx *c, const char *path)
{
	char buf[4096], base[256];
	uint32_t dir, ino;
	bool missing = false; /* a dry run: this level and all below it would be made */
	int ret;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char save = *p;
		*p = '\0';
		uint32_t t = missing ? 0 : sp_type_follow(c, buf);
		if (!t && c->o->dry_run && dry_made(c, buf))
			t = S_IFDIR;
		if (t && t != S_IFDIR)
			return err_set(ENOTDIR, "%s: %s: not a directory", extfs_name(c->fs), buf);
		if (!t && !c->o->dry_run &&
		    ((ret = parent_of(c, buf, &dir, base)) < 0 ||
		     (ret = extfs_mkdir(c->fs, dir, base, 0755, 0, 0, &ino)) < 0))
			return ret;
		if (!t && (ret = sp_record(c, buf, "created", "a directory")) < 0)
			return ret;
		missing = !t;
		*p = save;
		if (!save)
			return 0;
	}
}

int sp_random(void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = getrandom((char *)buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(errno, "getrandom");
		got += (size_t)n;
	}
	return 0;
}

/* ---- the root filesystem ---- */

static bool is_linux_root(struct sysprep_ctx *c)
{
	return sp_type_follow(c, "/etc/os-release") == S_IFREG ||
	       sp_type_follow(c, "/usr/lib/os-release") == S_IFREG ||
	       (sp_type_follow(c, "/etc/passwd") == S_IFREG &&
		sp_type_follow(c, "/etc/fstab") == S_IFREG);
}

static char *slot_name(const char *path, int num)
{
	char *s = NULL;

	if ((num ? asprintf(&s, "%s:%d", path, num) : asprintf(&s, "%s", path)) < 0)
		return NULL;
	return s;
}

/* Why no root was found, from what the slots hold. */
static int no_root(struct fs_disk *d, const struct fs_slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *t = s[i].probe.type;
		if (!strcmp(t, "xfs"))
			return err_set(ENOTSUP,
				       "%s%s%.0d holds XFS, the root filesystem it seems: ligero "
				       "cannot write XFS, so it cannot sysprep this disk",
				       d->path, s[i].num ? ":" : "", s[i].num);
	}
	for (size_t i = 0; i < n; i++) {
		const char *t = s[i].probe.type;
		if (!strcmp(t, "LVM2_member") || !strcmp(t, "btrfs"))
			return err_set(ENOTSUP,
				       "%s%s%.0d is %s, where the root filesystem may be: ligero "
				       "writes ext2/3/4 only",
				       d->path, s[i].num ? ":" : "", s[i].num,
				       !strcmp(t, "btrfs") ? "btrfs" : "an LVM physical volume");
	}
	return err_set(ENOENT,
		       "%s: no Linux root filesystem found (no ext filesystem with "
		       "/etc/os-release; see 'ligero fs list %s')",
		       d->path, d->path);
}

/* The ext filesystem of slot num holds a Linux root? It is opened read-only to look. */
static bool slot_is_root(struct fs_disk *d, int num)
{
	struct sysprep_ctx c = {0};
	bool yes;

	if (fs_disk_open_fs(d, num, false, &c.fs, NULL) < 0) {
		err_clear();
		return false;
	}
	yes = is_linux_root(&c);
	extfs_close(c.fs);
	return yes;
}

static int find_root(struct fs_disk *d, int num, bool rw, struct extfs **fs, int *used)
{
	struct fs_slot *s;
	size_t n, found = 0;
	int ret = fs_disk_slots(d, &s, &n), root = -1;

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (num && s[i].num != num)
			continue;
		if (num && !fs_type_is_ext(s[i].probe.type)) {
			ret = !strcmp(s[i].probe.type, "xfs")
				  ? no_root(d, &s[i], 1)
				  : fs_disk_open_fs(d, num, rw, fs, used);
			goto out;
		}
		if (fs_type_is_ext(s[i].probe.type) && slot_is_root(d, s[i].num)) {
			found++;
			if (root < 0)
				root = s[i].num;
		}
	}
	if (found > 1)
		ret = err_set(EINVAL, "%s: several filesystems hold a Linux root; name one as %s:N",
			      d->path, d->path);
	else if (!found && num)
		ret = err_set(ENOENT, "%s:%d: no Linux root filesystem there (no /etc/os-release)",
			      d->path, num);
	else if (!found)
		ret = no_root(d, s, n);
	else
		ret = fs_disk_open_fs(d, root, rw, fs, used);
out:
	free(s);
	return ret;
}

/* os-release's ID and ID_LIKE, else the distribution's own release files. */
static enum sysprep_family detect_family(struct sysprep_ctx *c, char **os_id)
{
	char *t = sp_read(c, "/etc/os-release", 64 * 1024, NULL, NULL);
	enum sysprep_family f;

	if (!t)
		t = sp_read(c, "/usr/lib/os-release", 64 * 1024, NULL, NULL);
	f = sysprep_os_family(t ? t : "", os_id);
	free(t);
	if (f == FAMILY_OTHER && sp_type_follow(c, "/etc/debian_version") == S_IFREG)
		f = FAMILY_DEBIAN;
	if (f == FAMILY_OTHER && sp_type_follow(c, "/etc/redhat-release") == S_IFREG)
		f = FAMILY_RHEL;
	return f;
}

int sysprep_run(const char *addr, const struct sysprep_opts *o, struct sysprep_result *r)
{
	static const char *const families[] = {"other", "debian", "rhel"};
	struct sysprep_ctx c = {.o = o, .r = r};
	struct fs_disk *d = NULL;
	char *path;
	size_t nops;
	const struct sysprep_op *ops = sysprep_ops(&nops);
	int num, used = 0, ret;

	memset(r, 0, sizeof(*r));
	if (o->hostname && !sysprep_hostname_valid(o->hostname))
		return err_set(EINVAL,
			       "--hostname '%s' is not a valid hostname (letters, digits and inner "
			       "hyphens, labels of 1-63 characters separated by dots)",
			       o->hostname);
	if ((ret = fs_addr_parse(addr, &path, &num)) < 0)
		return ret;
	/* read-write even for a dry run: the locks and the base guard answer as for a real one */
	ret = fs_disk_open(&d, path, true);
	free(path);
	if (ret < 0)
		return ret;
	if ((ret = find_root(d, num, !o->dry_run, &c.fs, &used)) < 0)
		goto out;
	r->root = slot_name(d->path, used);
	c.family = detect_family(&c, &r->os_id);
	if (!r->root || (!r->os_id && !(r->os_id = strdup("")))) {
		ret = err_set(ENOMEM, "out of memory");
		goto close;
	}
	snprintf(r->family, sizeof(r->family), "%s", families[c.family]);
	for (size_t i = 0; i < nops && ret == 0; i++) {
		if (!(o->ops & (1u << i)))
			continue;
		c.op = ops[i].name;
		ret = ops[i].run(&c);
	}
close:;
	int cret = extfs_close(c.fs);
	if (ret == 0)
		ret = cret;
out:
	fs_disk_close(d);
	return ret;
}
