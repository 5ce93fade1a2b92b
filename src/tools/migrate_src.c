/*
 * Where the container's files come from. A directory (a simfs private area, any root tree) and
 * a disk image (ploop, qcow2, raw: its root filesystem read through src/fs) are trees walked in
 * sorted order; tar archives and ssh streams (migrate_tar.c) are read as they come. Sources are
 * never written.
 */
#include "block/block.h"
#include "fs/disk.h"
#include "fs/gfs.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

/* A tree a source can walk from any path: a host directory or a guest filesystem. */
struct tree_ops {
	/* The node at rel (no symlink followed): its mode, and a symlink's target. */
	int (*node)(void *t, const char *rel, uint32_t *mode, char *link, size_t size);
	/* Deliver the entry at rel, then (recurse) what it holds. */
	int (*walk)(void *t, const char *rel, bool recurse, mig_entry_fn cb, void *priv);
};

struct tree {
	const struct tree_ops *ops;
	struct mig_src *src;
	char *buf; /* CHUNK bytes */
};

static char *join(const char *a, const char *b)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", a, *a && *b ? "/" : "", b) < 0)
		return NULL;
	return s;
}

/* Resolve rel inside the tree (symlinks relative to their directory or to the tree's root; the
 * last one with follow) into out. -ENOENT without a message when something is missing. */
static int tree_resolve(struct tree *t, const char *rel, bool follow, char *out, size_t outlen)
{
	char done[4096] = "", rest[4096], link[4096], tmp[8192];
	int links = 0;

	snprintf(rest, sizeof(rest), "%s", rel);
	for (;;) {
		char *r = rest + strspn(rest, "/");
		if (!*r)
			break;
		size_t n = strcspn(r, "/");
		char comp[256];
		if (n >= sizeof(comp))
			return -ENOENT;
		memcpy(comp, r, n);
		comp[n] = 0;
		memmove(rest, r + n, strlen(r + n) + 1);
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			char *slash = strrchr(done, '/');
			*(slash ? slash : done) = 0;
			continue;
		}
		char cand[4096];
		if ((size_t)snprintf(cand, sizeof(cand), "%s%s%s", done, *done ? "/" : "", comp) >=
		    sizeof(cand))
			return -ENOENT;
		uint32_t mode;
		if (t->ops->node(t, cand, &mode, link, sizeof(link)) < 0)
			return -ENOENT;
		bool last = !rest[strspn(rest, "/")];
		if (S_ISLNK(mode) && (!last || follow)) {
			if (++links > 40)
				return -ENOENT;
			if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", link, rest) >= sizeof(rest))
				return -ENOENT;
			memcpy(rest, tmp, sizeof(rest));
			if (link[0] == '/')
				done[0] = 0;
			continue;
		}
		memcpy(done, cand, sizeof(done));
	}
	snprintf(out, outlen, "%s", done);
	return 0;
}

/* ---- probing: the few files the migration reads first ---- */

struct probe_ctx {
	struct mig_files *files;
	bool content;
};

static int probe_store(struct mig_entry *e, void *priv)
{
	struct probe_ctx *p = priv;
	const struct fs_node *n = &e->node;
	char *data = NULL;
	size_t len = 0;
	int ret = 0;

	if (S_ISLNK(n->mode)) {
		return mig_files_put(p->files, e->path, n, n->link, strlen(n->link));
	}
	if (S_ISREG(n->mode) && p->content && n->size <= MIG_PROBE_MAX_FILE) {
		if (!(data = calloc(1, n->size + 1)))
			return err_set(ENOMEM, "out of memory");
		uint64_t off;
		const void *buf;
		size_t got;
		while (n->content.next && ret == 0) {
			if ((ret = n->content.next(n->content.priv, &off, &buf, &got)) < 0 ||
			    got == 0)
				break;
			if (off + got > n->size)
				got = off < n->size ? (size_t)(n->size - off) : 0;
			memcpy(data + off, buf, got);
		}
		len = (size_t)n->size;
	}
	if (ret == 0)
		ret = mig_files_put(p->files, e->path, n, data ? data : "", len);
	free(data);
	return ret;
}

static int tree_probe(struct tree *t, struct mig_files *files)
{
	char res[4096];
	int ret = 0;

	for (const struct mig_probe_item *it = mig_probe_spec; it->path && ret == 0; it++) {
		struct probe_ctx p = {files, it->how != MIG_PROBE_NODE};
		if (tree_resolve(t, it->path, false, res, sizeof(res)) < 0)
			continue;
		ret = t->ops->walk(t, res, false, probe_store, &p);
		uint32_t mode;
		char link[4096];
		if (ret < 0 || it->how == MIG_PROBE_NODE || t->ops->node(t, res, &mode, link, 4096))
			continue;
		/* Files: also what a symlink points to. Trees: what they hold. */
		if (S_ISLNK(mode) && tree_resolve(t, it->path, true, res, sizeof(res)) == 0)
			ret = t->ops->walk(t, res, it->how == MIG_PROBE_TREE, probe_store, &p);
		else if (S_ISDIR(mode) && it->how == MIG_PROBE_TREE)
			ret = t->ops->walk(t, res, true, probe_store, &p);
	}
	return ret;
}

/* ---- host directories ---- */

struct dir_tree {
	struct tree t;
	char *root;
	dev_t dev;
};

static char *host_path(struct dir_tree *d, const char *rel)
{
	return join(d->root, rel);
}

static int dir_node(void *tp, const char *rel, uint32_t *mode, char *link, size_t size)
{
	struct dir_tree *d = tp;
	struct stat st;
	char *p = host_path(d, rel);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	if (lstat(p, &st) < 0)
		ret = -errno;
	else if ((*mode = st.st_mode), S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(p, link, size - 1);
		if (n < 0)
			ret = -errno;
		else
			link[n] = 0;
	}
	free(p);
	return ret;
}

static int cmp_dirent(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

static int dir_walk(void *tp, const char *rel, bool recurse, mig_entry_fn cb, void *priv)
{
	struct dir_tree *d = tp;
	struct fs_host_node h;
	char *p = host_path(d, rel);
	int ret;

	if (!p)
		return err_set(ENOMEM, "out of memory");
	if ((ret = fs_host_node_open(&h, p, d->t.buf)) < 0) {
		free(p);
		return ret;
	}
	struct mig_entry e = {.path = rel, .node = h.node};
	bool isdir = S_ISDIR(h.node.mode);
	e.node.xpriv = &h;
	e.node.content.priv = &h;
	if (!isdir && h.nlink > 1)
		snprintf(e.link_key, sizeof(e.link_key), "%llu:%llu", (unsigned long long)h.dev,
			 (unsigned long long)h.ino);
	e.no_descend = isdir && h.dev != d->dev;
	ret = cb(&e, priv);
	fs_host_node_close(&h);
	if (S_ISREG(h.node.mode))
		d->t.src->done += h.node.size;
	if (ret || !isdir || !recurse || e.no_descend) {
		free(p);
		return ret;
	}
	struct dirent **list;
	int n = scandir(p, &list, not_dots, cmp_dirent);
	if (n < 0)
		ret = err_sys(errno, "%s: cannot read the directory", p);
	for (int i = 0; i < n; i++) {
		char *c = ret == 0 ? join(rel, list[i]->d_name) : NULL;
		if (ret == 0)
			ret = c ? dir_walk(d, c, true, cb, priv) : err_set(ENOMEM, "out of memory");
		free(c);
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	free(p);
	return ret;
}

static uint64_t dir_total(const char *path, dev_t dev)
{
	struct dirent **list;
	uint64_t sum = 0;
	int n = scandir(path, &list, not_dots, NULL);

	for (int i = 0; i < n; i++) {
		char *c = join(path, list[i]->d_name);
		struct stat st;
		if (c && lstat(c, &st) == 0) {
			if (S_ISREG(st.st_mode))
				sum += (uint64_t)st.st_size;
			else if (S_ISDIR(st.st_mode) && st.st_dev == dev)
				sum += dir_total(c, dev);
		}
		free(c);
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	return sum;
}

static const struct tree_ops dir_ops = {dir_node, dir_walk};

static int dir_probe(struct mig_src *s, struct mig_files *files)
{
	return tree_probe(s->impl, files);
}

static int dir_walk_all(struct mig_src *s, mig_entry_fn cb, void *priv)
{
	return dir_walk(s->impl, "", true, cb, priv);
}

static void dir_close(struct mig_src *s)
{
	struct dir_tree *d = s->impl;

	if (d) {
		free(d->root);
		free(d->t.buf);
		free(d);
	}
}

static const struct mig_src_ops dir_src_ops = {dir_probe, dir_walk_all, dir_close};

static int dir_open(struct mig_src *s, const char *path, const struct stat *st)
{
	struct dir_tree *d = calloc(1, sizeof(*d));

	if (!d || !(d->root = strdup(path)) || !(d->t.buf = malloc(CHUNK))) {
		if (d)
			free(d->root);
		free(d);
		return err_set(ENOMEM, "out of memory");
	}
	d->t.ops = &dir_ops;
	d->t.src = s;
	d->dev = st->st_dev;
	s->impl = d;
	s->ops = &dir_src_ops;
	s->kind = "directory";
	if (s->want_total)
		s->total = dir_total(path, st->st_dev);
	return 0;
}

/* ---- disk images: the root filesystem inside, through the block layer and src/fs ---- */

struct img_tree {
	struct tree t;
	struct fs_disk *disk;
	struct gfs *fs;
};

struct img_file {
	struct img_tree *it;
	uint64_t ino;
	struct gfs_range *r;
	size_t n, i;
	uint64_t off; /* within r[i] */
};

static int img_next(void *priv, uint64_t *off, const void **buf, size_t *len)
{
	struct img_file *f = priv;

	*len = 0;
	while (f->i < f->n && f->off >= f->r[f->i].len) {
		f->i++;
		f->off = 0;
	}
	if (f->i >= f->n)
		return 0;
	uint64_t left = f->r[f->i].len - f->off;
	size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
	*off = f->r[f->i].start + f->off;
	int ret = gfs_pread(f->it->fs, f->ino, *off, f->it->t.buf, want, &got);
	if (ret < 0)
		return ret;
	if (got == 0)
		return err_set(EIO, "%s: inode %llu ends early", gfs_name(f->it->fs),
			       (unsigned long long)f->ino);
	f->off += got;
	*buf = f->it->t.buf;
	*len = got;
	return 0;
}

struct img_xattr {
	struct img_tree *it;
	uint64_t ino;
};

static int img_xattrs(void *priv, fs_xattr_fn cb, void *cbpriv)
{
	struct img_xattr *x = priv;

	return gfs_xattr_list(x->it->fs, x->ino, cb, cbpriv);
}

static int img_node(void *tp, const char *rel, uint32_t *mode, char *link, size_t size)
{
	struct img_tree *it = tp;
	struct gfs_stat st;
	uint64_t ino;
	char p[4200];

	snprintf(p, sizeof(p), "/%s", rel);
	if (gfs_lookup(it->fs, p, false, &ino) < 0 || gfs_stat(it->fs, ino, &st) < 0) {
		err_clear();
		return -ENOENT;
	}
	*mode = st.mode;
	if (S_ISLNK(st.mode) && gfs_readlink(it->fs, ino, link, size) < 0)
		return -EIO;
	return 0;
}

struct img_child {
	char *name;
	uint64_t ino;
};

struct img_children {
	struct img_child *v;
	size_t n, cap;
};

static int img_collect(const char *name, uint64_t ino, void *priv)
{
	struct img_children *c = priv;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 32;
		struct img_child *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		c->v = v;
		c->cap = cap;
	}
	if (!(c->v[c->n].name = strdup(name)))
		return err_set(ENOMEM, "out of memory");
	c->v[c->n++].ino = ino;
	return 0;
}

static int cmp_child(const void *a, const void *b)
{
	return strcmp(((const struct img_child *)a)->name, ((const struct img_child *)b)->name);
}

static int img_entry(struct img_tree *it, const char *rel, uint64_t ino, bool recurse, int depth,
		     mig_entry_fn cb, void *priv)
{
	struct gfs_stat st;
	char link[4096];
	int ret = gfs_stat(it->fs, ino, &st);

	if (ret < 0)
		return ret;
	if (depth > 4096)
		return err_set(ELOOP, "%s: directory tree deeper than 4096 levels (a loop?)",
			       gfs_name(it->fs));
	struct img_file f = {it, ino, NULL, 0, 0, 0};
	struct img_xattr x = {it, ino};
	struct mig_entry e = {.path = rel};
	e.node = (struct fs_node){.mode = st.mode,
				  .uid = st.uid,
				  .gid = st.gid,
				  .size = S_ISREG(st.mode) ? st.size : 0,
				  .rdev = st.rdev,
				  .atime = st.atime,
				  .mtime = st.mtime,
				  .xattrs = img_xattrs,
				  .xpriv = &x};
	if (S_ISLNK(st.mode)) {
		if ((ret = gfs_readlink(it->fs, ino, link, sizeof(link))) < 0)
			return ret;
		e.node.link = link;
	} else if (S_ISREG(st.mode) && st.size) {
		if ((ret = gfs_data_ranges(it->fs, ino, &f.r, &f.n)) < 0)
			return ret;
		e.node.content = (struct fs_content){img_next, &f};
	}
	if (!S_ISDIR(st.mode) && st.nlink > 1)
		snprintf(e.link_key, sizeof(e.link_key), "i%llu", (unsigned long long)ino);
	ret = cb(&e, priv);
	free(f.r);
	if (S_ISREG(st.mode))
		it->t.src->done += st.size;
	if (ret || !S_ISDIR(st.mode) || !recurse)
		return ret;
	struct img_children ch = {0};
	ret = gfs_readdir(it->fs, ino, img_collect, &ch);
	if (ret == 0 && ch.n > 1)
		qsort(ch.v, ch.n, sizeof(*ch.v), cmp_child);
	for (size_t i = 0; i < ch.n; i++) {
		char *c = ret == 0 ? join(rel, ch.v[i].name) : NULL;
		if (ret == 0)
			ret = c ? img_entry(it, c, ch.v[i].ino, true, depth + 1, cb, priv)
				: err_set(ENOMEM, "out of memory");
		free(c);
		free(ch.v[i].name);
	}
	free(ch.v);
	return ret;
}

static int img_walk(void *tp, const char *rel, bool recurse, mig_entry_fn cb, void *priv)
{
	struct img_tree *it = tp;
	uint64_t ino;
	char p[4200];
	int ret;

	snprintf(p, sizeof(p), "/%s", rel);
	if ((ret = gfs_lookup(it->fs, p, false, &ino)) < 0)
		return ret;
	return img_entry(it, rel, ino, recurse, 0, cb, priv);
}

static int img_count(struct mig_entry *e, void *priv)
{
	if (S_ISREG(e->node.mode))
		*(uint64_t *)priv += e->node.size;
	return 0;
}

static const struct tree_ops img_ops = {img_node, img_walk};

static int img_probe(struct mig_src *s, struct mig_files *files)
{
	return tree_probe(s->impl, files);
}

static int img_walk_all(struct mig_src *s, mig_entry_fn cb, void *priv)
{
	return img_walk(s->impl, "", true, cb, priv);
}

static void img_close(struct mig_src *s)
{
	struct img_tree *it = s->impl;

	if (!it)
		return;
	if (it->fs)
		gfs_close(it->fs);
	fs_disk_close(it->disk);
	free(it->t.buf);
	free(it);
}

static const struct mig_src_ops img_src_ops = {img_probe, img_walk_all, img_close};

static int img_open(struct mig_src *s, const char *path)
{
	struct img_tree *it = calloc(1, sizeof(*it));
	int used, ret;

	if (!it || !(it->t.buf = malloc(CHUNK))) {
		free(it);
		return err_set(ENOMEM, "out of memory");
	}
	it->t.ops = &img_ops;
	it->t.src = s;
	s->impl = it;
	s->ops = &img_src_ops;
	s->kind = "image";
	if ((ret = fs_disk_open(&it->disk, path, false)) < 0 ||
	    (ret = fs_disk_open_gfs(it->disk, 0, &it->fs, &used)) < 0)
		return ret;
	if (s->want_total) {
		uint64_t sum = 0;
		struct mig_src tmp = *s;
		it->t.src = &tmp;
		ret = img_walk(it, "", true, img_count, &sum);
		it->t.src = s;
		s->total = sum;
	}
	return ret;
}

/* ---- choosing the source ---- */

/* An OpenVZ 7 private area keeps a ploop image (root.hdd/, its DiskDescriptor.xml naming the
 * images of its snapshot chain), not a tree; root.hdd itself may be given too. */
static char *ploop_in(const char *dir)
{
	static const char *const names[] = {"DiskDescriptor.xml", "root.hdd/DiskDescriptor.xml",
					    "root.hdd/root.hds", "root.hdd/root.hdd"};
	char *p;
	struct stat st;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(p = join(dir, names[i])))
			return NULL;
		if (stat(p, &st) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* Tar archives, compressed or not, start with one of these. */
static bool looks_like_archive(const char *path)
{
	static const struct {
		size_t off, len;
		const char *magic;
	} m[] = {
	    {257, 5, "ustar"},
	    {0, 2, "\x1f\x8b"},
	    {0, 3, "BZh"},
	    {0, 6,
	     "\xfd"
	     "7zXZ\0"},
	    {0, 4, "\x28\xb5\x2f\xfd"},
	    {0, 3, "\x5d\x00\x00"},
	};
	unsigned char buf[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf), 0);

	if (fd >= 0)
		close(fd);
	for (size_t i = 0; n > 0 && i < sizeof(m) / sizeof(m[0]); i++)
		if ((size_t)n >= m[i].off + m[i].len &&
		    !memcmp(buf + m[i].off, m[i].magic, m[i].len))
			return true;
	return false;
}

int mig_src_open(struct mig_src **out, const char *spec, const char *rsh, bool want_total)
{
	struct mig_src *s = calloc(1, sizeof(*s));
	struct stat st;
	int ret;

	if (!s || !(s->name = strdup(spec))) {
		free(s);
		return err_set(ENOMEM, "out of memory");
	}
	s->want_total = want_total;
	s->rsh = rsh ? rsh : "ssh";
	if (!strncmp(spec, "ssh://", 6)) {
		ret = mig_ssh_open(s);
	} else if (stat(spec, &st) < 0) {
		ret = err_sys(errno, "%s", spec);
	} else if (S_ISDIR(st.st_mode)) {
		char *img = ploop_in(spec);
		char *etc = join(spec, "etc");
		struct stat es;
		if (img && (!etc || lstat(etc, &es) < 0))
			ret = img_open(s, img);
		else
			ret = dir_open(s, spec, &st);
		free(img);
		free(etc);
	} else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		const char *fmt = NULL;
		if (bdev_probe_file(spec, &fmt) == 0 && fmt && strcmp(fmt, "raw"))
			ret = img_open(s, spec);
		else if (looks_like_archive(spec))
			ret = mig_tar_open(s);
		else
			ret = img_open(s, spec);
	} else {
		ret = err_set(EINVAL,
			      "%s: not a container: give its directory (/vz/private/CTID), a tar "
			      "archive, a disk image or ssh://host",
			      spec);
	}
	if (ret < 0) {
		mig_src_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

void mig_src_close(struct mig_src *s)
{
	if (!s)
		return;
	if (s->ops && s->ops->close)
		s->ops->close(s);
	free(s->name);
	free(s);
}
