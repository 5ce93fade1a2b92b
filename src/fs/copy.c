/*
 * Host <-> guest tree copies. Hard links are found by inode number (nlink > 1 only, so the map
 * stays small) and recreated as links. Holes are kept: out, from the file's extent map; in, from
 * SEEK_DATA/SEEK_HOLE on the host file. Attributes go on after content, times last.
 */
#include "fs/copy.h"
#include "fs/ext.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct link_ent {
	uint64_t dev, ino;
	uint32_t guest; /* copy-in: the guest inode made for it */
	char *host;	/* copy-out: the host path made for it */
};

struct links {
	struct link_ent *v;
	size_t n, cap;
};

static struct link_ent *links_find(struct links *l, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].dev == dev && l->v[i].ino == ino)
			return &l->v[i];
	return NULL;
}

static int links_add(struct links *l, struct link_ent e)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 32;
		struct link_ent *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = e;
	return 0;
}

static void links_free(struct links *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].host);
	free(l->v);
}

static char *join(const char *a, const char *b)
{
	char *s = NULL;
	size_t n = strlen(a);

	if (asprintf(&s, "%s%s%s", a, n && a[n - 1] == '/' ? "" : "/", b) < 0)
		return NULL;
	return s;
}

/* ---- guest -> host ---- */

/* Deeper than this is a directory loop in a damaged filesystem, not a real tree. */
#define MAX_DEPTH 4096

struct out_ctx {
	struct gfs *fs;
	struct links links;
	char *buf;
	int depth;
	uint64_t path[MAX_DEPTH]; /* directory inodes from the top of the copy down */
};

static int out_node(struct out_ctx *c, uint64_t ino, const char *host);

struct out_dir {
	struct out_ctx *c;
	const char *host;
	int ret;
};

static int out_child(const char *name, uint64_t ino, void *priv)
{
	struct out_dir *od = priv;
	char *p = join(od->host, name);

	if (!p)
		return err_set(ENOMEM, "out of memory");
	int ret = out_node(od->c, ino, p);
	free(p);
	return ret;
}

static int out_xattr(const char *name, const void *val, size_t len, void *priv)
{
	const char *host = priv;

	if (lsetxattr(host, name, val, len, 0) < 0)
		return err_sys(errno, "%s: cannot set extended attribute %s", host, name);
	return 0;
}

static int out_file(struct out_ctx *c, uint64_t ino, const struct gfs_stat *st, const char *host)
{
	struct gfs_range *r = NULL;
	size_t n = 0;
	int ret, fd = open(host, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return err_sys(errno, "%s: cannot create", host);
	ret = gfs_data_ranges(c->fs, ino, &r, &n);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		for (uint64_t off = r[i].start; ret == 0 && off < r[i].start + r[i].len;) {
			uint64_t left = r[i].start + r[i].len - off;
			size_t want = left < CHUNK ? (size_t)left : CHUNK, got;
			ret = gfs_pread(c->fs, ino, off, c->buf, want, &got);
			if (ret == 0 && got == 0)
				ret = err_set(EIO, "%s: inode %llu ends early", gfs_name(c->fs),
					      (unsigned long long)ino);
			if (ret == 0 && pwrite(fd, c->buf, got, (off_t)off) != (ssize_t)got)
				ret = err_sys(errno ? errno : ENOSPC, "%s: write error", host);
			off += got;
		}
	}
	if (ret == 0 && ftruncate(fd, (off_t)st->size) < 0)
		ret = err_sys(errno, "%s: cannot set the size", host);
	if (close(fd) < 0 && ret == 0)
		ret = err_sys(errno, "%s: write error", host);
	free(r);
	return ret;
}

/* Owner, xattrs, mode (after chown, which clears set-id bits), then times. */
static int out_attrs(struct out_ctx *c, uint64_t ino, const struct gfs_stat *st, const char *host)
{
	int ret;

	if (lchown(host, st->uid, st->gid) < 0)
		return err_sys(errno, "%s: cannot set the owner", host);
	if ((ret = gfs_xattr_list(c->fs, ino, out_xattr, (void *)host)) < 0)
		return ret;
	if (!S_ISLNK(st->mode) && chmod(host, st->mode & 07777) < 0)
		return err_sys(errno, "%s: cannot set the mode", host);
	struct timespec ts[2] = {st->atime, st->mtime};
	if (utimensat(AT_FDCWD, host, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return err_sys(errno, "%s: cannot set the times", host);
	return 0;
}

/* Make room for a new host entry: an existing non-directory is replaced. */
static int out_replace(const char *host, bool dir)
{
	struct stat hs;

	if (lstat(host, &hs) < 0)
		return 0;
	if (dir && S_ISDIR(hs.st_mode))
		return 1; /* merge into it */
	if (S_ISDIR(hs.st_mode))
		return err_set(EISDIR, "%s: a directory is in the way", host);
	if (unlink(host) < 0)
		return err_sys(errno, "%s: cannot replace", host);
	return 0;
}

static int out_node(struct out_ctx *c, uint64_t ino, const char *host)
{
	struct gfs_stat st;
	int ret = gfs_stat(c->fs, ino, &st);

	if (ret < 0)
		return ret;
	bool dir = S_ISDIR(st.mode);
	if ((ret = out_replace(host, dir)) < 0)
		return ret;
	if (!dir && st.nlink > 1) {
		struct link_ent *e = links_find(&c->links, 0, ino);
		if (e) {
			if (link(e->host, host) < 0)
				return err_sys(errno, "%s: cannot link to %s", host, e->host);
			return 0;
		}
		char *h = strdup(host);
		if (!h || (ret = links_add(&c->links, (struct link_ent){0, ino, 0, h})) < 0) {
			free(h);
			return h ? ret : err_set(ENOMEM, "out of memory");
		}
	}
	if (dir) {
		if (c->depth >= MAX_DEPTH)
			return err_set(ELOOP,
				       "%s: directory tree deeper than %d levels (a loop in a "
				       "damaged filesystem?)",
				       gfs_name(c->fs), MAX_DEPTH);
		for (int k = 0; k < c->depth; k++)
			if (c->path[k] == ino)
				return err_set(ELOOP,
					       "%s: directory inode %llu contains itself (a loop "
					       "in a damaged filesystem); stopped at %s",
					       gfs_name(c->fs), (unsigned long long)ino, host);
		c->path[c->depth] = ino;
		if (ret == 0 && mkdir(host, 0700) < 0)
			return err_sys(errno, "%s: cannot create directory", host);
		struct out_dir od = {c, host, 0};
		c->depth++;
		ret = gfs_readdir(c->fs, ino, out_child, &od);
		c->depth--;
		if (ret < 0)
			return ret;
	} else if (S_ISREG(st.mode)) {
		if ((ret = out_file(c, ino, &st, host)) < 0)
			return ret;
	} else if (S_ISLNK(st.mode)) {
		char target[4096];
		if ((ret = gfs_readlink(c->fs, ino, target, sizeof(target))) < 0)
			return ret;
		if (symlink(target, host) < 0)
			return err_sys(errno, "%s: cannot create symbolic link", host);
	} else if (mknod(host, st.mode, st.rdev) < 0) {
		return err_sys(errno, "%s: cannot create special file", host);
	}
	return out_attrs(c, ino, &st, host);
}

static const char *base_name(const char *path, char *buf, size_t len)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t b = n;
	while (b && path[b - 1] != '/')
		b--;
	snprintf(buf, len, "%.*s", (int)(n - b), path + b);
	return buf;
}

int fs_copy_out(struct gfs *fs, const char *path, const char *hostdir)
{
	struct stat hs;
	uint64_t ino;
	char base[256];
	int ret;

	if (stat(hostdir, &hs) < 0)
		return err_sys(errno, "%s", hostdir);
	if (!S_ISDIR(hs.st_mode))
		return err_set(ENOTDIR, "%s: not a directory", hostdir);
	if ((ret = gfs_lookup(fs, path, false, &ino)) < 0)
		return ret;
	/* The context holds the loop-detection path (32 KiB): on the heap, not the stack. */
	struct out_ctx *c = calloc(1, sizeof(*c));
	if (!c || !(c->buf = malloc(CHUNK))) {
		free(c);
		return err_set(ENOMEM, "out of memory");
	}
	c->fs = fs;
	base_name(path, base, sizeof(base));
	if (!strcmp(base, "/")) {
		struct out_dir od = {c, hostdir, 0};
		c->path[c->depth++] = ino;
		ret = gfs_readdir(fs, ino, out_child, &od);
	} else {
		char *host = join(hostdir, base);
		ret = host ? out_node(c, ino, host) : err_set(ENOMEM, "out of memory");
		free(host);
	}
	links_free(&c->links);
	free(c->buf);
	free(c);
	return ret;
}

/* ---- one node into the guest ---- */

static int node_content(struct extfs *fs, uint32_t ino, const struct fs_node *n)
{
	uint64_t off, end = 0;
	const void *buf;
	size_t len;
	int ret = 0;

	while (n->content.next && ret == 0) {
		if ((ret = n->content.next(n->content.priv, &off, &buf, &len)) < 0 || len == 0)
			break;
		/* Blocks mapped first, then written in place: one extent per run, big writes. */
		if ((ret = extfs_alloc(fs, ino, off, len)) == 0)
			ret = extfs_pwrite(fs, ino, off, buf, len);
		if (off + len > end)
			end = off + len;
	}
	/* A file that ends in a hole, or shrank while it was read, gets its size here. */
	if (ret == 0 && end != n->size)
		ret = extfs_truncate(fs, ino, n->size);
	return ret;
}

int fs_node_create(struct extfs *fs, uint32_t dir, const char *name, const struct fs_node *n,
		   uint32_t *ino)
{
	int ret;

	if (S_ISDIR(n->mode))
		return extfs_mkdir(fs, dir, name, n->mode & 07777, n->uid, n->gid, ino);
	if (S_ISLNK(n->mode))
		return extfs_symlink(fs, dir, name, n->link ? n->link : "", n->uid, n->gid, ino);
	ret = extfs_mknod(fs, dir, name, n->mode, n->rdev, n->uid, n->gid, ino);
	if (ret == 0 && S_ISREG(n->mode))
		ret = node_content(fs, *ino, n);
	return ret;
}

struct xattr_set {
	struct extfs *fs;
	uint32_t ino;
	char **names; /* what the node has, for exact */
	size_t n;
};

static int xattr_put(const char *name, const void *val, size_t len, void *priv)
{
	struct xattr_set *x = priv;
	void *old = NULL;
	size_t olen = 0;
	bool same = false;

	if (x->names) {
		char **v = realloc(x->names, (x->n + 2) * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		x->names = v;
		if (!(v[x->n] = strdup(name)))
			return err_set(ENOMEM, "out of memory");
		v[++x->n] = NULL;
		/* Rewriting an attribute that is already right would cost an inode write. */
		if (extfs_xattr_get(x->fs, x->ino, name, &old, &olen) == 0)
			same = olen == len && !memcmp(old, val, len);
		free(old);
		err_clear();
	}
	return same ? 0 : extfs_xattr_set(x->fs, x->ino, name, val, len);
}

struct xattr_drop {
	char **keep;
	char **gone;
	size_t n;
};

static int xattr_stale(const char *name, const void *val, size_t len, void *priv)
{
	struct xattr_drop *d = priv;

	for (char **k = d->keep; *k; k++)
		if (!strcmp(*k, name))
			return 0;
	char **v = realloc(d->gone, (d->n + 1) * sizeof(*v));
	if (!v || !(v[d->n] = strdup(name))) {
		if (v)
			d->gone = v;
		return err_set(ENOMEM, "out of memory");
	}
	d->gone = v;
	d->n++;
	return 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Set n's attributes; with exact, then remove the ones n does not list. */
static int node_xattrs(struct extfs *fs, uint32_t ino, const struct fs_node *n, bool exact)
{
	struct xattr_set x = {fs, ino, NULL, 0};
	int ret = 0;

	if (exact && !(x.names = calloc(1, sizeof(char *))))
		return err_set(ENOMEM, "out of memory");
	if (n->xattrs)
		ret = n->xattrs(n->xpriv, xattr_put, &x);
	if (ret == 0 && exact) {
		struct xattr_drop d = {x.names, NULL, 0};
		ret = extfs_xattr_list(fs, ino, xattr_stale, &d);
		for (size_t i = 0; ret == 0 && i < d.n; i++)
			ret = extfs_xattr_remove(fs, ino, d.gone[i]);
		strv_free(d.gone, d.n);
	}
	strv_free(x.names, x.n);
	return ret;
}

int fs_node_attrs(struct extfs *fs, uint32_t ino, const struct fs_node *n, bool exact, bool times)
{
	struct extfs_stat st;
	int ret = extfs_stat(fs, ino, &st);

	if (ret == 0 && (st.uid != n->uid || st.gid != n->gid))
		ret = extfs_chown(fs, ino, n->uid, n->gid);
	if (ret == 0 && !S_ISLNK(n->mode) && (st.mode & 07777) != (n->mode & 07777))
		ret = extfs_chmod(fs, ino, n->mode);
	if (ret == 0)
		ret = node_xattrs(fs, ino, n, exact);
	if (ret == 0 && times) {
		struct timespec ts[2] = {n->atime, n->mtime};
		ret = extfs_utimens(fs, ino, ts);
	}
	return ret;
}

/* ---- host files as nodes ---- */

static int host_next(void *priv, uint64_t *off, const void **buf, size_t *len)
{
	struct fs_host_node *h = priv;

	*len = 0;
	if (h->off >= h->node.size)
		return 0;
	if (h->off >= h->hole) {
		off_t data = lseek(h->fd, (off_t)h->off, SEEK_DATA);
		if (data < 0)
			return 0; /* nothing but a hole up to the end */
		off_t hole = lseek(h->fd, data, SEEK_HOLE);
		h->off = (uint64_t)data;
		h->hole = hole < 0 ? h->node.size : (uint64_t)hole;
		if (h->hole > h->node.size)
			h->hole = h->node.size;
		if (h->off >= h->hole)
			return 0;
	}
	uint64_t left = h->hole - h->off;
	size_t want = left < FS_HOST_CHUNK ? (size_t)left : FS_HOST_CHUNK;
	ssize_t got = pread(h->fd, h->buf, want, (off_t)h->off);
	if (got < 0)
		return err_sys(errno, "%s: read error", h->path);
	*off = h->off;
	*buf = h->buf;
	*len = (size_t)got;
	h->off = got ? h->off + (uint64_t)got : h->node.size; /* a file that shrank ends here */
	return 0;
}

static int host_xattrs(void *priv, fs_xattr_fn cb, void *cbpriv)
{
	struct fs_host_node *h = priv;
	ssize_t n = llistxattr(h->path, NULL, 0);
	int ret = 0;

	if (n < 0)
		return (errno == ENOTSUP) ? 0
					  : err_sys(errno, "%s: cannot list attributes", h->path);
	if (n == 0)
		return 0;
	char *names = malloc((size_t)n);
	if (!names)
		return err_set(ENOMEM, "out of memory");
	n = llistxattr(h->path, names, (size_t)n);
	for (ssize_t i = 0; ret == 0 && i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *k = names + i;
		ssize_t vl = lgetxattr(h->path, k, h->buf, FS_HOST_CHUNK);
		if (vl < 0)
			ret = err_sys(errno, "%s: cannot read attribute %s", h->path, k);
		else
			ret = cb(k, h->buf, (size_t)vl, cbpriv);
	}
	free(names);
	return ret;
}

int fs_host_node_open(struct fs_host_node *h, const char *path, char *buf)
{
	struct stat hs;

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	h->path = path;
	h->buf = buf;
	if (lstat(path, &hs) < 0)
		return err_sys(errno, "%s", path);
	h->node = (struct fs_node){.mode = hs.st_mode,
				   .uid = hs.st_uid,
				   .gid = hs.st_gid,
				   .size = S_ISREG(hs.st_mode) ? (uint64_t)hs.st_size : 0,
				   .rdev = hs.st_rdev,
				   .atime = hs.st_atim,
				   .mtime = hs.st_mtim,
				   .xattrs = host_xattrs,
				   .xpriv = h};
	h->dev = hs.st_dev;
	h->ino = hs.st_ino;
	h->nlink = hs.st_nlink;
	if (S_ISLNK(hs.st_mode)) {
		ssize_t n = readlink(path, h->link, sizeof(h->link) - 1);
		if (n < 0)
			return err_sys(errno, "%s: cannot read symbolic link", path);
		h->link[n] = 0;
		h->node.link = h->link;
	} else if (S_ISREG(hs.st_mode) && hs.st_size > 0) {
		if ((h->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
			return err_sys(errno, "%s: cannot open", path);
		h->node.content = (struct fs_content){host_next, h};
	}
	return 0;
}

void fs_host_node_close(struct fs_host_node *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

/* ---- host -> guest ---- */

struct in_ctx {
	struct extfs *fs;
	struct links links;
	char *buf;
};

static int in_node(struct in_ctx *c, const char *host, uint32_t dir, const char *name);

struct name_list {
	char **v;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Directory entries sorted, so guest inode numbers do not depend on host readdir order. */
static int host_names(const char *host, struct name_list *l)
{
	DIR *d = opendir(host);
	struct dirent *de;
	size_t cap = 0;

	l->v = NULL;
	l->n = 0;
	if (!d)
		return err_sys(errno, "%s: cannot open directory", host);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (l->n == cap) {
			cap = cap ? 2 * cap : 32;
			char **v = realloc(l->v, cap * sizeof(*v));
			if (!v)
				break;
			l->v = v;
		}
		if (!(l->v[l->n] = strdup(de->d_name)))
			break;
		l->n++;
	}
	closedir(d);
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	return 0;
}

static int in_children(struct in_ctx *c, const char *host, uint32_t ino)
{
	struct name_list l;
	int ret = host_names(host, &l);

	for (size_t i = 0; i < l.n; i++) {
		char *p = ret == 0 ? join(host, l.v[i]) : NULL;
		if (ret == 0)
			ret = p ? in_node(c, p, ino, l.v[i]) : err_set(ENOMEM, "out of memory");
		free(p);
		free(l.v[i]);
	}
	free(l.v);
	return ret;
}

/* An existing guest entry: directories merge, anything else is replaced. */
static int in_replace(struct in_ctx *c, uint32_t dir, const char *name, bool isdir, uint32_t *ino)
{
	struct extfs_stat st;
	int ret = extfs_lookup_at(c->fs, dir, name, ino);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0 || (ret = extfs_stat(c->fs, *ino, &st)) < 0)
		return ret;
	if (S_ISDIR(st.mode)) {
		if (isdir)
			return 1;
		return err_set(EISDIR, "%s: a directory '%s' is in the way", extfs_name(c->fs),
			       name);
	}
	return extfs_unlink(c->fs, dir, name);
}

static int in_node(struct in_ctx *c, const char *host, uint32_t dir, const char *name)
{
	struct fs_host_node h;
	uint32_t ino = 0;
	int ret = fs_host_node_open(&h, host, c->buf);

	bool isdir = S_ISDIR(h.node.mode);
	if (ret == 0)
		ret = in_replace(c, dir, name, isdir, &ino);
	bool merge = ret == 1;
	if (merge)
		ret = 0;
	if (ret == 0 && !isdir && h.nlink > 1) {
		struct link_ent *e = links_find(&c->links, h.dev, h.ino);
		if (e) {
			fs_host_node_close(&h);
			return extfs_link(c->fs, dir, name, e->guest);
		}
	}
	if (ret == 0 && !merge)
		ret = fs_node_create(c->fs, dir, name, &h.node, &ino);
	fs_host_node_close(&h);
	if (ret == 0 && !isdir && h.nlink > 1)
		ret = links_add(&c->links, (struct link_ent){h.dev, h.ino, ino, NULL});
	if (ret == 0 && isdir)
		ret = in_children(c, host, ino);
	/* Existing attributes of a merged directory stay (the copy only adds). */
	if (ret == 0)
		ret = fs_node_attrs(c->fs, ino, &h.node, false, true);
	return ret;
}

int fs_copy_in(struct extfs *fs, const char *hostpath, const char *dir)
{
	struct in_ctx c = {.fs = fs};
	struct extfs_stat st;
	struct stat hs;
	uint32_t ino;
	char base[256];
	int ret;

	if (lstat(hostpath, &hs) < 0)
		return err_sys(errno, "%s", hostpath);
	if ((ret = extfs_lookup(fs, dir, true, &ino)) < 0 || (ret = extfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (!S_ISDIR(st.mode))
		return err_set(ENOTDIR, "%s: %s: not a directory", extfs_name(fs), dir);
	if (!(c.buf = malloc(FS_HOST_CHUNK)))
		return err_set(ENOMEM, "out of memory");
	base_name(hostpath, base, sizeof(base));
	if (!strcmp(base, ".") || !strcmp(base, "/"))
		ret = S_ISDIR(hs.st_mode) ? in_children(&c, hostpath, ino)
					  : err_set(ENOTDIR, "%s: not a directory", hostpath);
	else
		ret = in_node(&c, hostpath, ino, base);
	links_free(&c.links);
	free(c.buf);
	return ret;
}
