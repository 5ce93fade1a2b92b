/* One read API over ext (libext2fs) and XFS: a table of operations per filesystem family. */
#include "fs/gfs.h"
#include "fs/detect.h"
#include "fs/ext.h"
#include "fs/xfs.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gfs {
	const struct gfs_ops *ops;
	void *impl;
	bool owned; /* close impl with the gfs */
	char *name;
};

/* ext: inode numbers are 32-bit there; a larger one cannot come from ext itself. */
static int ext_ino(uint64_t ino, uint32_t *out)
{
	if (ino > UINT32_MAX)
		return err_set(EINVAL, "inode %llu is not an ext inode number",
			       (unsigned long long)ino);
	*out = (uint32_t)ino;
	return 0;
}

static int ext_lookup(void *impl, const char *path, bool follow, uint64_t *ino)
{
	uint32_t i = 0;
	int ret = extfs_lookup(impl, path, follow, &i);

	if (ret == 0)
		*ino = i;
	return ret;
}

static int ext_stat(void *impl, uint64_t ino, struct gfs_stat *st)
{
	struct extfs_stat es;
	uint32_t i = 0;
	int ret = ext_ino(ino, &i);

	if (ret < 0 || (ret = extfs_stat(impl, i, &es)) < 0)
		return ret;
	*st = (struct gfs_stat){
	    .ino = es.ino,
	    .mode = es.mode,
	    .uid = es.uid,
	    .gid = es.gid,
	    .nlink = es.nlink,
	    .size = es.size,
	    .blocks = es.blocks,
	    .rdev = es.rdev,
	    .atime = es.atime,
	    .mtime = es.mtime,
	    .ctime = es.ctime,
	    .crtime = es.crtime,
	};
	return 0;
}

struct ext_dir_ctx {
	gfs_dir_cb cb;
	void *priv;
};

static int ext_dir_entry(const char *name, uint32_t ino, void *priv)
{
	struct ext_dir_ctx *c = priv;

	return c->cb(name, ino, c->priv);
}

static int ext_readdir(void *impl, uint64_t dir, gfs_dir_cb cb, void *priv)
{
	struct ext_dir_ctx c = {cb, priv};
	uint32_t i = 0;
	int ret = ext_ino(dir, &i);

	return ret < 0 ? ret : extfs_readdir(impl, i, ext_dir_entry, &c);
}

static int ext_pread(void *impl, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got)
{
	uint32_t i = 0;
	int ret = ext_ino(ino, &i);

	return ret < 0 ? ret : extfs_pread(impl, i, off, buf, len, got);
}

static int ext_readlink(void *impl, uint64_t ino, char *buf, size_t size)
{
	uint32_t i = 0;
	int ret = ext_ino(ino, &i);

	return ret < 0 ? ret : extfs_readlink(impl, i, buf, size);
}

static const char *ext_warning(const void *impl)
{
	return extfs_warning(impl);
}

static int ext_close(void *impl)
{
	return extfs_close(impl);
}

static int ext_data_ranges(void *impl, uint64_t ino, struct gfs_range **out, size_t *n)
{
	struct extfs_range *r = NULL;
	uint32_t i = 0;
	int ret = ext_ino(ino, &i);

	*out = NULL;
	*n = 0;
	if (ret < 0 || (ret = extfs_data_ranges(impl, i, &r, n)) < 0)
		return ret;
	if (*n && !(*out = calloc(*n, sizeof(**out)))) {
		free(r);
		*n = 0;
		return err_set(ENOMEM, "out of memory");
	}
	for (size_t k = 0; k < *n; k++)
		(*out)[k] = (struct gfs_range){r[k].start, r[k].len};
	free(r);
	return 0;
}

static int ext_xattr_list(void *impl, uint64_t ino, gfs_xattr_cb cb, void *priv)
{
	uint32_t i = 0;
	int ret = ext_ino(ino, &i);

	return ret < 0 ? ret : extfs_xattr_list(impl, i, cb, priv);
}

static const struct gfs_ops ext_ops = {
    .family = "ext",
    .lookup = ext_lookup,
    .stat = ext_stat,
    .readdir = ext_readdir,
    .pread = ext_pread,
    .readlink = ext_readlink,
    .warning = ext_warning,
    .close = ext_close,
    .data_ranges = ext_data_ranges,
    .xattr_list = ext_xattr_list,
};

/* xfs: the reader speaks gfs's types already; these only convert the opaque pointer. */
static int xfs_op_lookup(void *impl, const char *path, bool follow, uint64_t *ino)
{
	return xfs_lookup(impl, path, follow, ino);
}

static int xfs_op_stat(void *impl, uint64_t ino, struct gfs_stat *st)
{
	return xfs_stat(impl, ino, st);
}

static int xfs_op_readdir(void *impl, uint64_t dir, gfs_dir_cb cb, void *priv)
{
	return xfs_readdir(impl, dir, cb, priv);
}

static int xfs_op_pread(void *impl, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got)
{
	return xfs_pread(impl, ino, off, buf, len, got);
}

static int xfs_op_readlink(void *impl, uint64_t ino, char *buf, size_t size)
{
	return xfs_readlink(impl, ino, buf, size);
}

static const char *xfs_op_warning(const void *impl)
{
	return xfs_warning(impl);
}

static int xfs_op_close(void *impl)
{
	return xfs_close(impl);
}

static int xfs_op_data_ranges(void *impl, uint64_t ino, struct gfs_range **out, size_t *n)
{
	return xfs_data_ranges(impl, ino, out, n);
}

static const struct gfs_ops xfs_ops = {
    .family = "xfs",
    .lookup = xfs_op_lookup,
    .stat = xfs_op_stat,
    .readdir = xfs_op_readdir,
    .pread = xfs_op_pread,
    .readlink = xfs_op_readlink,
    .warning = xfs_op_warning,
    .close = xfs_op_close,
    .data_ranges = xfs_op_data_ranges,
};

static int gfs_new(struct gfs **out, const struct gfs_ops *ops, void *impl, bool owned,
		   const char *name)
{
	struct gfs *fs = calloc(1, sizeof(*fs));

	if (!fs || !(fs->name = strdup(name))) {
		free(fs);
		return err_set(ENOMEM, "%s: out of memory", name);
	}
	fs->ops = ops;
	fs->impl = impl;
	fs->owned = owned;
	*out = fs;
	return 0;
}

int gfs_open(struct gfs **out, struct bdev *bs, uint64_t off, uint64_t len, const char *name)
{
	struct fs_probe probe;
	struct extfs *ext;
	struct xfs *xfs;
	int ret = fs_detect(bs, off, len, &probe);

	if (ret < 0)
		return err_prefix(ret, "%s: ", name);
	if (fs_type_is_ext(probe.type)) {
		if ((ret = extfs_open(&ext, bs, off, len, name, false)) < 0)
			return ret;
		if ((ret = gfs_new(out, &ext_ops, ext, true, name)) < 0)
			extfs_close(ext);
		return ret;
	}
	if (!strcmp(probe.type, "xfs")) {
		if ((ret = xfs_open(&xfs, bs, off, len, name)) < 0)
			return ret;
		if ((ret = gfs_new(out, &xfs_ops, xfs, true, name)) < 0)
			xfs_close(xfs);
		return ret;
	}
	if (probe.type[0])
		return err_set(EMEDIUMTYPE, "%s: holds %s, which ligero cannot read", name,
			       probe.type);
	return err_set(EMEDIUMTYPE, "%s: no filesystem ligero can read (ext2/3/4, xfs)", name);
}

int gfs_wrap_ext(struct gfs **out, struct extfs *fs)
{
	return gfs_new(out, &ext_ops, fs, false, extfs_name(fs));
}

void gfs_close(struct gfs *fs)
{
	if (!fs)
		return;
	if (fs->owned)
		fs->ops->close(fs->impl);
	free(fs->name);
	free(fs);
}

const char *gfs_family(const struct gfs *fs)
{
	return fs->ops->family;
}

const char *gfs_name(const struct gfs *fs)
{
	return fs->name;
}

const char *gfs_warning(const struct gfs *fs)
{
	return fs->ops->warning(fs->impl);
}

struct extfs *gfs_ext(struct gfs *fs)
{
	return fs->ops == &ext_ops ? fs->impl : NULL;
}

int gfs_lookup(struct gfs *fs, const char *path, bool follow, uint64_t *ino)
{
	return fs->ops->lookup(fs->impl, path, follow, ino);
}

int gfs_stat(struct gfs *fs, uint64_t ino, struct gfs_stat *st)
{
	return fs->ops->stat(fs->impl, ino, st);
}

int gfs_readdir(struct gfs *fs, uint64_t dir, gfs_dir_cb cb, void *priv)
{
	return fs->ops->readdir(fs->impl, dir, cb, priv);
}

int gfs_pread(struct gfs *fs, uint64_t ino, uint64_t off, void *buf, size_t len, size_t *got)
{
	return fs->ops->pread(fs->impl, ino, off, buf, len, got);
}

int gfs_readlink(struct gfs *fs, uint64_t ino, char *buf, size_t size)
{
	return fs->ops->readlink(fs->impl, ino, buf, size);
}

int gfs_read_file(struct gfs *fs, const char *path, size_t max, char **buf, size_t *len)
{
	struct gfs_stat st;
	uint64_t ino;
	size_t got;
	char *b;
	int ret;

	if ((ret = gfs_lookup(fs, path, true, &ino)) < 0 || (ret = gfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (!S_ISREG(st.mode))
		return err_set(EINVAL, "%s: %s is not a regular file", fs->name, path);
	if (st.size > max)
		return err_set(EFBIG, "%s: %s is %llu bytes, more than the %zu expected", fs->name,
			       path, (unsigned long long)st.size, max);
	if (!(b = malloc(st.size + 1)))
		return err_set(ENOMEM, "%s: out of memory reading %s", fs->name, path);
	if ((ret = gfs_pread(fs, ino, 0, b, st.size, &got)) < 0) {
		free(b);
		return ret;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

int gfs_data_ranges(struct gfs *fs, uint64_t ino, struct gfs_range **out, size_t *n)
{
	struct gfs_stat st;
	int ret;

	if (fs->ops->data_ranges)
		return fs->ops->data_ranges(fs->impl, ino, out, n);
	*out = NULL;
	*n = 0;
	if ((ret = gfs_stat(fs, ino, &st)) < 0 || st.size == 0)
		return ret;
	if (!(*out = malloc(sizeof(**out))))
		return err_set(ENOMEM, "%s: out of memory", fs->name);
	**out = (struct gfs_range){0, st.size};
	*n = 1;
	return 0;
}

int gfs_xattr_list(struct gfs *fs, uint64_t ino, gfs_xattr_cb cb, void *priv)
{
	return fs->ops->xattr_list ? fs->ops->xattr_list(fs->impl, ino, cb, priv) : 0;
}
