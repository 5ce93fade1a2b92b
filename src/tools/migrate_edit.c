/*
 * The guest's files as the fixups see and change them: in the overlay after the copy, or in a
 * dry run in the container's probed files (which the edits then change in memory only). Each
 * edit keeps the original as MIG_ORIG/<path>.ligero-orig (the first original: a file changed
 * twice keeps what the container had) and is recorded with its reason.
 *
 * Backups live in one directory rather than next to the files: a copy beside
 * ifcfg-venet0 or in /etc/network/interfaces.d would be read as configuration by the very
 * tools whose configuration it backs up.
 */
#include "fs/ext.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_READ (64u << 20)

static const char *rel(const char *path)
{
	return path + strspn(path, "/");
}

char *mig_backup_path(const char *path)
{
	char *b = NULL;

	return asprintf(&b, "%s/%s%s", MIG_ORIG, rel(path), MIG_SUFFIX) < 0 ? NULL : b;
}

void mig_note(struct mig_ctx *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	char **v = realloc(c->r->notes, (c->r->nnotes + 1) * sizeof(*v));
	if (!v) {
		free(s);
		return;
	}
	c->r->notes = v;
	v[c->r->nnotes++] = s;
}

int mig_record(struct mig_ctx *c, const char *path, const char *action, const char *why,
	       const char *backup)
{
	struct migrate_report *r = c->r;
	struct migrate_change *v = realloc(r->changes, (r->nchanges + 1) * sizeof(*v));

	if (!v)
		return err_set(ENOMEM, "out of memory");
	r->changes = v;
	v[r->nchanges] = (struct migrate_change){strdup(path), strdup(action), strdup(why),
						 backup ? strdup(backup) : NULL};
	if (!v[r->nchanges].path || !v[r->nchanges].action || !v[r->nchanges].why)
		return err_set(ENOMEM, "out of memory");
	r->nchanges++;
	return 0;
}

/* ---- reading ---- */

static int ext_read_all(struct extfs *fs, uint32_t ino, uint64_t size, char **buf, size_t *len)
{
	size_t got;
	char *b;
	int ret;

	if (size > MAX_READ)
		return err_set(EFBIG, "%s: a file of %llu bytes is not configuration",
			       extfs_name(fs), (unsigned long long)size);
	if (!(b = malloc((size_t)size + 1)))
		return err_set(ENOMEM, "out of memory");
	if ((ret = extfs_pread(fs, ino, 0, b, (size_t)size, &got)) < 0) {
		free(b);
		return ret;
	}
	b[got] = 0;
	*buf = b;
	*len = got;
	return 0;
}

/* -ENOENT (no message) when absent. */
static int lookup(struct mig_ctx *c, const char *path, bool follow, uint32_t *ino,
		  struct extfs_stat *st)
{
	int ret = extfs_lookup(c->fs, path, follow, ino);

	if (ret == 0)
		ret = extfs_stat(c->fs, *ino, st);
	if (ret == -ENOENT || ret == -ENOTDIR || ret == -ELOOP) {
		err_clear();
		return -ENOENT;
	}
	return ret;
}

int mig_read(struct mig_ctx *c, const char *path, char **buf, size_t *len)
{
	if (c->dry) {
		const struct mig_file *f = mig_files_get(&c->probe, rel(path), true);
		if (!f || !S_ISREG(f->mode))
			return -ENOENT;
		*len = f->len;
		return (*buf = strdup(f->data)) ? 0 : err_set(ENOMEM, "out of memory");
	}
	uint32_t ino;
	struct extfs_stat st;
	int ret = lookup(c, path, true, &ino, &st);
	if (ret < 0)
		return ret;
	if (!S_ISREG(st.mode))
		return -ENOENT;
	return ext_read_all(c->fs, ino, st.size, buf, len);
}

int mig_lstat(struct mig_ctx *c, const char *path, uint32_t *mode)
{
	if (c->dry) {
		const struct mig_file *f = mig_files_get(&c->probe, rel(path), false);
		if (!f)
			return -ENOENT;
		*mode = f->mode;
		return 0;
	}
	uint32_t ino;
	struct extfs_stat st;
	int ret = lookup(c, path, false, &ino, &st);
	if (ret == 0)
		*mode = st.mode;
	return ret;
}

int mig_readlink(struct mig_ctx *c, const char *path, char *buf, size_t size)
{
	if (c->dry) {
		const struct mig_file *f = mig_files_get(&c->probe, rel(path), false);
		if (!f || !S_ISLNK(f->mode))
			return -ENOENT;
		snprintf(buf, size, "%s", f->data);
		return 0;
	}
	uint32_t ino;
	struct extfs_stat st;
	int ret = lookup(c, path, false, &ino, &st);
	if (ret < 0)
		return ret;
	if (!S_ISLNK(st.mode))
		return -ENOENT;
	return extfs_readlink(c->fs, ino, buf, size);
}

struct names {
	char **v;
	size_t n;
};

static int add_name(const char *name, uint32_t ino, void *priv)
{
	struct names *l = priv;
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	(void)ino;
	if (!v || !(v[l->n] = strdup(name))) {
		if (v)
			l->v = v;
		return err_set(ENOMEM, "out of memory");
	}
	l->v = v;
	l->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mig_list(struct mig_ctx *c, const char *dir, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (c->dry) {
		const struct mig_file *f = mig_files_get(&c->probe, rel(dir), true);
		char res[4096];
		if (!f || !S_ISDIR(f->mode))
			return 0;
		/* List the directory the path resolves to: find its key. */
		snprintf(res, sizeof(res), "%s", rel(dir));
		size_t it = 0;
		struct strmap_slot *s;
		while ((s = strmap_next(&c->probe.map, &it)))
			if (s->val == f) {
				snprintf(res, sizeof(res), "%s", s->key);
				break;
			}
		return mig_files_list(&c->probe, res, out, n);
	}
	uint32_t ino;
	struct extfs_stat st;
	struct names l = {0};
	int ret = lookup(c, dir, true, &ino, &st);
	if (ret == -ENOENT || (ret == 0 && !S_ISDIR(st.mode)))
		return 0;
	if (ret == 0)
		ret = extfs_readdir(c->fs, ino, add_name, &l);
	if (ret < 0) {
		mig_strv_free(l.v, l.n);
		return ret;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	*out = l.v;
	*n = l.n;
	return 0;
}

/* ---- writing (the overlay) ---- */

/* Make the directories of path that are missing (root's, 0755); *dir is the last one. */
static int make_dirs(struct mig_ctx *c, const char *path, uint32_t *dir, char base[256])
{
	char p[4096];
	uint32_t cur = 2, ino;
	int ret;

	snprintf(p, sizeof(p), "%s", path);
	char *last = strrchr(p, '/');
	if (!last || !last[1])
		return err_set(EINVAL, "%s: not a file path", path);
	snprintf(base, 256, "%s", last + 1);
	*last = 0;
	for (char *save = NULL, *comp = strtok_r(p, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		char sofar[4096];
		snprintf(sofar, sizeof(sofar), "%.*s", (int)(comp - p + strlen(comp)), path);
		ret = extfs_lookup(c->fs, sofar, true, &ino);
		if (ret == -ENOENT) {
			err_clear();
			if ((ret = extfs_mkdir(c->fs, cur, comp, 0755, 0, 0, &ino)) < 0)
				return ret;
		} else if (ret < 0) {
			return ret;
		}
		cur = ino;
	}
	*dir = cur;
	return 0;
}

struct ext_content {
	struct extfs *fs;
	uint32_t ino;
	uint64_t off, size;
	char buf[65536];
};

static int ext_next(void *priv, uint64_t *off, const void **buf, size_t *len)
{
	struct ext_content *e = priv;
	size_t want =
	    e->size - e->off < sizeof(e->buf) ? (size_t)(e->size - e->off) : sizeof(e->buf);
	int ret = 0;

	*len = 0;
	if (want && (ret = extfs_pread(e->fs, e->ino, e->off, e->buf, want, len)) == 0) {
		*off = e->off;
		*buf = e->buf;
		e->off += *len;
	}
	return ret;
}

/* Copy what is at path to its backup, unless a backup is there already. */
static int backup(struct mig_ctx *c, const char *path, char **bpath)
{
	uint32_t ino, bino, dir;
	struct extfs_stat st, bst;
	char base[256], link[4096];
	int ret;

	if (!(*bpath = mig_backup_path(path)))
		return err_set(ENOMEM, "out of memory");
	if (c->dry || lookup(c, *bpath, false, &bino, &bst) == 0)
		return 0;
	if ((ret = lookup(c, path, false, &ino, &st)) < 0)
		return ret == -ENOENT ? 0 : ret;
	if ((ret = make_dirs(c, *bpath, &dir, base)) < 0)
		return ret;
	struct ext_content *ec = calloc(1, sizeof(*ec));
	if (!ec)
		return err_set(ENOMEM, "out of memory");
	*ec = (struct ext_content){.fs = c->fs, .ino = ino, .size = st.size};
	struct fs_node n = {.mode = st.mode,
			    .uid = st.uid,
			    .gid = st.gid,
			    .size = S_ISREG(st.mode) ? st.size : 0,
			    .rdev = st.rdev,
			    .atime = st.atime,
			    .mtime = st.mtime};
	if (S_ISREG(st.mode))
		n.content = (struct fs_content){ext_next, ec};
	if (S_ISLNK(st.mode)) {
		ret = extfs_readlink(c->fs, ino, link, sizeof(link));
		n.link = link;
	}
	if (ret == 0)
		ret = fs_node_create(c->fs, dir, base, &n, &bino);
	if (ret == 0)
		ret = fs_node_attrs(c->fs, bino, &n, false, true);
	free(ec);
	return ret;
}

static int unlink_path(struct mig_ctx *c, const char *path)
{
	uint32_t dir;
	char base[256];
	int ret = extfs_lookup_parent(c->fs, path, &dir, base);

	return ret < 0 ? ret : extfs_unlink(c->fs, dir, base);
}

int mig_write(struct mig_ctx *c, const char *path, const char *data, size_t len, uint32_t mode,
	      const char *why)
{
	uint32_t cur_mode = 0, ino, dir;
	char *old = NULL, *bpath = NULL, base[256];
	size_t olen = 0;
	int ret;

	bool exists = mig_lstat(c, path, &cur_mode) == 0;
	if (exists && S_ISREG(cur_mode) && mig_read(c, path, &old, &olen) == 0 && olen == len &&
	    !memcmp(old, data, len)) {
		free(old);
		return 0;
	}
	free(old);
	if (exists && S_ISDIR(cur_mode))
		return err_set(EISDIR, "%s: a directory is in the way", path);
	if ((ret = backup(c, path, &bpath)) < 0)
		goto out;
	if (c->dry) {
		struct fs_node n = {.mode =
					exists && S_ISREG(cur_mode) ? cur_mode : S_IFREG | mode};
		ret = mig_files_put(&c->probe, rel(path), &n, data, len);
	} else if (exists && S_ISREG(cur_mode)) {
		struct extfs_stat st;
		if ((ret = lookup(c, path, false, &ino, &st)) == 0 &&
		    (ret = extfs_truncate(c->fs, ino, 0)) == 0)
			ret = extfs_pwrite(c->fs, ino, 0, data, len);
	} else {
		if (exists && (ret = unlink_path(c, path)) < 0)
			goto out;
		if ((ret = make_dirs(c, path, &dir, base)) == 0 &&
		    (ret = extfs_mknod(c->fs, dir, base, S_IFREG | (mode & 07777), 0, 0, 0,
				       &ino)) == 0)
			ret = extfs_pwrite(c->fs, ino, 0, data, len);
	}
	if (ret == 0)
		ret = mig_record(c, path, exists ? "modified" : "created", why,
				 exists ? bpath : NULL);
out:
	free(bpath);
	return ret;
}

int mig_remove(struct mig_ctx *c, const char *path, const char *why)
{
	uint32_t mode;
	char *bpath = NULL;
	int ret;

	if (mig_lstat(c, path, &mode) < 0)
		return 0;
	if (S_ISDIR(mode))
		return err_set(EISDIR, "%s: is a directory", path);
	if ((ret = backup(c, path, &bpath)) == 0) {
		if (c->dry)
			mig_files_del(&c->probe, path);
		else
			ret = unlink_path(c, path);
	}
	if (ret == 0)
		ret = mig_record(c, path, "removed", why, bpath);
	free(bpath);
	return ret;
}

int mig_symlink(struct mig_ctx *c, const char *path, const char *target, const char *why)
{
	uint32_t mode, dir, ino;
	char cur[4096], *bpath = NULL, base[256];
	int ret;

	bool exists = mig_lstat(c, path, &mode) == 0;
	if (exists && S_ISLNK(mode) && mig_readlink(c, path, cur, sizeof(cur)) == 0 &&
	    !strcmp(cur, target))
		return 0;
	if (exists && S_ISDIR(mode))
		return err_set(EISDIR, "%s: a directory is in the way", path);
	if ((ret = backup(c, path, &bpath)) < 0)
		goto out;
	if (c->dry) {
		struct fs_node n = {.mode = S_IFLNK | 0777};
		ret = mig_files_put(&c->probe, rel(path), &n, target, strlen(target));
	} else {
		if (exists && (ret = unlink_path(c, path)) < 0)
			goto out;
		if ((ret = make_dirs(c, path, &dir, base)) == 0)
			ret = extfs_symlink(c->fs, dir, base, target, 0, 0, &ino);
	}
	if (ret == 0)
		ret = mig_record(c, path, exists ? "modified" : "created", why,
				 exists ? bpath : NULL);
out:
	free(bpath);
	return ret;
}

int mig_put_file(struct mig_ctx *c, const char *path, const char *data, size_t len)
{
	uint32_t ino, dir;
	struct extfs_stat st;
	char base[256];
	int ret;

	if (c->dry)
		return 0;
	if ((ret = lookup(c, path, false, &ino, &st)) == 0 && S_ISREG(st.mode)) {
		if ((ret = extfs_truncate(c->fs, ino, 0)) == 0)
			ret = extfs_pwrite(c->fs, ino, 0, data, len);
		return ret;
	}
	if (ret != -ENOENT)
		return ret < 0 ? ret : err_set(EEXIST, "%s: not a regular file", path);
	if ((ret = make_dirs(c, path, &dir, base)) == 0 &&
	    (ret = extfs_mknod(c->fs, dir, base, S_IFREG | 0600, 0, 0, 0, &ino)) == 0)
		ret = extfs_pwrite(c->fs, ino, 0, data, len);
	return ret;
}
