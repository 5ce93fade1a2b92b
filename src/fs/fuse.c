/*
 * FUSE over the guest filesystem layer: reads go through gfs (ext or xfs), writes through the ext
 * layer (an xfs mount is read-only). Requests are served by one thread (fuse_loop, not
 * fuse_loop_mt): libext2fs and the xfs reader are not thread-safe, and a guest disk is not a
 * throughput device. Paths are resolved on every call; the kernel caches attributes and entries
 * for a second in between.
 */
#define FUSE_USE_VERSION 35
#include <fuse.h>

#include "fs/fuse.h"
#include "fs/ext.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

struct fs_fuse {
	struct fuse *fuse;
	struct gfs *gfs;
	struct extfs *fs; /* NULL when the filesystem is only read (xfs) */
	bool ro;
	bool mounted;
	bool signals;
};

static struct extfs *ctx_fs(void)
{
	return ((struct fs_fuse *)fuse_get_context()->private_data)->fs;
}

static struct gfs *ctx_gfs(void)
{
	return ((struct fs_fuse *)fuse_get_context()->private_data)->gfs;
}

static void to_stat(const struct gfs_stat *e, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_mode = e->mode;
	st->st_nlink = e->nlink;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_size = (off_t)e->size;
	st->st_blocks = (blkcnt_t)e->blocks;
	st->st_blksize = 4096;
	st->st_rdev = e->rdev;
	st->st_atim = e->atime;
	st->st_mtim = e->mtime;
	st->st_ctim = e->ctime;
}

/* For the writing operations, which the kernel only sends to a read-write (ext) mount. */
static int lookup(const char *path, bool follow, uint32_t *ino)
{
	return ctx_fs() ? extfs_lookup(ctx_fs(), path, follow, ino) : -EROFS;
}

static int glookup(const char *path, bool follow, uint64_t *ino)
{
	return gfs_lookup(ctx_gfs(), path, follow, ino);
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1; /* hard links show one inode number, as on the guest */
	cfg->nullpath_ok = 0;
	return fuse_get_context()->private_data;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct gfs_stat e;
	uint64_t ino;
	int ret = glookup(path, false, &ino);

	if (ret == 0 && (ret = gfs_stat(ctx_gfs(), ino, &e)) == 0)
		to_stat(&e, st);
	return ret;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
	uint64_t ino;
	int ret = glookup(path, false, &ino);

	if (ret < 0)
		return ret;
	ret = gfs_readlink(ctx_gfs(), ino, buf, size);
	if (ret == -ENAMETOOLONG && size) { /* FUSE truncates, like readlink(2) */
		char big[4096];
		if (gfs_readlink(ctx_gfs(), ino, big, sizeof(big)) == 0) {
			memcpy(buf, big, size - 1);
			buf[size - 1] = 0;
			return 0;
		}
	}
	return ret;
}

struct fill {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fill_one(const char *name, uint64_t ino, void *priv)
{
	struct fill *f = priv;

	return f->filler(f->buf, name, NULL, 0, 0) ? 1 : 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fill f = {buf, filler};
	uint64_t ino;
	int ret = glookup(path, true, &ino);

	if (ret < 0)
		return ret;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	ret = gfs_readdir(ctx_gfs(), ino, fill_one, &f);
	return ret < 0 ? ret : 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	uint64_t ino;
	int ret = glookup(path, true, &ino);

	if (ret == 0)
		fi->fh = ino;
	return ret;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	size_t got;
	int ret = gfs_pread(ctx_gfs(), fi->fh, (uint64_t)off, buf, size, &got);

	return ret < 0 ? ret : (int)got;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	int ret =
	    ctx_fs() ? extfs_pwrite(ctx_fs(), (uint32_t)fi->fh, (uint64_t)off, buf, size) : -EROFS;

	return ret < 0 ? ret : (int)size;
}

static int parent_of(const char *path, uint32_t *dir, char base[256])
{
	return ctx_fs() ? extfs_lookup_parent(ctx_fs(), path, dir, base) : -EROFS;
}

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
	struct fuse_context *c = fuse_get_context();
	char base[256];
	uint32_t dir, ino;
	int ret = parent_of(path, &dir, base);

	return ret < 0 ? ret : extfs_mknod(ctx_fs(), dir, base, mode, rdev, c->uid, c->gid, &ino);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_context *c = fuse_get_context();
	char base[256];
	uint32_t dir, ino;
	int ret = parent_of(path, &dir, base);

	if (ret == 0)
		ret = extfs_mknod(ctx_fs(), dir, base, S_IFREG | (mode & 07777), 0, c->uid, c->gid,
				  &ino);
	if (ret == 0)
		fi->fh = ino;
	return ret;
}

static int op_mkdir(const char *path, mode_t mode)
{
	struct fuse_context *c = fuse_get_context();
	char base[256];
	uint32_t dir, ino;
	int ret = parent_of(path, &dir, base);

	return ret < 0 ? ret : extfs_mkdir(ctx_fs(), dir, base, mode, c->uid, c->gid, &ino);
}

static int op_unlink(const char *path)
{
	char base[256];
	uint32_t dir;
	int ret = parent_of(path, &dir, base);

	return ret < 0 ? ret : extfs_unlink(ctx_fs(), dir, base);
}

static int op_rmdir(const char *path)
{
	char base[256];
	uint32_t dir;
	int ret = parent_of(path, &dir, base);

	return ret < 0 ? ret : extfs_rmdir(ctx_fs(), dir, base);
}

static int op_symlink(const char *target, const char *path)
{
	struct fuse_context *c = fuse_get_context();
	char base[256];
	uint32_t dir, ino;
	int ret = parent_of(path, &dir, base);

	return ret < 0 ? ret : extfs_symlink(ctx_fs(), dir, base, target, c->uid, c->gid, &ino);
}

static int op_link(const char *from, const char *to)
{
	char base[256];
	uint32_t dir, ino;
	int ret = lookup(from, false, &ino);

	if (ret == 0)
		ret = parent_of(to, &dir, base);
	return ret < 0 ? ret : extfs_link(ctx_fs(), dir, base, ino);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	char ob[256], nb[256];
	uint32_t od, nd, ino;
	int ret;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if ((ret = parent_of(from, &od, ob)) < 0 || (ret = parent_of(to, &nd, nb)) < 0)
		return ret;
	if ((flags & RENAME_NOREPLACE) && extfs_lookup_at(ctx_fs(), nd, nb, &ino) == 0)
		return -EEXIST;
	return extfs_rename(ctx_fs(), od, ob, nd, nb);
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	uint32_t ino;
	int ret = lookup(path, true, &ino);

	return ret < 0 ? ret : extfs_chmod(ctx_fs(), ino, mode);
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	uint32_t ino;
	int ret = lookup(path, false, &ino);

	return ret < 0 ? ret : extfs_chown(ctx_fs(), ino, uid, gid);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	uint32_t ino;
	int ret = fi ? 0 : lookup(path, true, &ino);

	if (fi)
		ino = (uint32_t)fi->fh;
	return ret < 0 ? ret : extfs_truncate(ctx_fs(), ino, (uint64_t)size);
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	uint32_t ino;
	int ret = lookup(path, false, &ino);

	return ret < 0 ? ret : extfs_utimens(ctx_fs(), ino, tv);
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	if (ctx_fs())
		return extfs_statfs(ctx_fs(), sv);
	memset(sv, 0, sizeof(*sv)); /* the xfs reader keeps no free-space counts */
	sv->f_bsize = sv->f_frsize = 4096;
	sv->f_namemax = 255;
	return 0;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return ctx_fs() ? extfs_sync(ctx_fs()) : 0;
}

static int op_setxattr(const char *path, const char *name, const char *val, size_t size, int flags)
{
	uint32_t ino;
	void *old;
	size_t olen;
	int ret = lookup(path, false, &ino);

	if (ret < 0)
		return ret;
	if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
		ret = extfs_xattr_get(ctx_fs(), ino, name, &old, &olen);
		free(old);
		if (ret < 0 && ret != -ENODATA)
			return ret;
		if ((flags & XATTR_CREATE) && ret == 0)
			return -EEXIST;
		if ((flags & XATTR_REPLACE) && ret == -ENODATA)
			return -ENODATA;
	}
	return extfs_xattr_set(ctx_fs(), ino, name, val, size);
}

struct xget {
	const char *name;
	char *buf;
	size_t size;
	int ret;
};

static int xget_one(const char *name, const void *val, size_t len, void *priv)
{
	struct xget *x = priv;

	if (strcmp(name, x->name))
		return 0;
	if (x->size && len > x->size)
		x->ret = -ERANGE;
	else if (x->size)
		memcpy(x->buf, val, len);
	if (x->ret == 0)
		x->ret = (int)len;
	return 1;
}

static int op_getxattr(const char *path, const char *name, char *buf, size_t size)
{
	struct xget x = {name, buf, size, 0};
	uint64_t gino;
	uint32_t ino;
	void *val;
	size_t len;
	int ret;

	if (!ctx_fs()) { /* read-only families: from the attribute list, if they have one */
		if ((ret = glookup(path, false, &gino)) < 0 ||
		    (ret = gfs_xattr_list(ctx_gfs(), gino, xget_one, &x)) < 0)
			return ret;
		return ret == 0 ? -ENODATA : x.ret;
	}
	if ((ret = lookup(path, false, &ino)) < 0 ||
	    (ret = extfs_xattr_get(ctx_fs(), ino, name, &val, &len)) < 0)
		return ret;
	if (size && len > size)
		ret = -ERANGE;
	else if (size)
		memcpy(buf, val, len);
	free(val);
	return ret < 0 ? ret : (int)len;
}

struct xlist {
	char *buf;
	size_t size, len;
};

static int xlist_add(const char *name, const void *val, size_t len, void *priv)
{
	struct xlist *x = priv;
	size_t n = strlen(name) + 1;

	if (x->size && x->len + n <= x->size)
		memcpy(x->buf + x->len, name, n);
	x->len += n;
	return 0;
}

static int op_listxattr(const char *path, char *buf, size_t size)
{
	struct xlist x = {buf, size, 0};
	uint64_t ino;
	int ret = glookup(path, false, &ino);

	if (ret < 0 || (ret = gfs_xattr_list(ctx_gfs(), ino, xlist_add, &x)) < 0)
		return ret;
	if (size && x.len > size)
		return -ERANGE;
	return (int)x.len;
}

static int op_removexattr(const char *path, const char *name)
{
	uint32_t ino;
	int ret = lookup(path, false, &ino);

	return ret < 0 ? ret : extfs_xattr_remove(ctx_fs(), ino, name);
}

static const struct fuse_operations ops = {
    .init = op_init,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .readdir = op_readdir,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .mknod = op_mknod,
    .create = op_create,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .link = op_link,
    .rename = op_rename,
    .chmod = op_chmod,
    .chown = op_chown,
    .truncate = op_truncate,
    .utimens = op_utimens,
    .statfs = op_statfs,
    .fsync = op_fsync,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
};

int fs_fuse_mount(struct fs_fuse **out, struct gfs *gfs, struct extfs *fs, const char *mountpoint,
		  bool ro, const char *fsname)
{
	struct fs_fuse *ff = calloc(1, sizeof(*ff));
	char *opt = NULL;
	int ret = 0;

	if (!ff)
		return err_set(ENOMEM, "out of memory");
	ff->gfs = gfs;
	ff->fs = fs;
	ff->ro = ro || !fs;
	/* fsname is ours and contains no commas (the caller checks); FUSE splits options on them.
	 */
	if (asprintf(&opt, "fsname=%s,subtype=ligero,default_permissions%s", fsname,
		     ff->ro ? ",ro" : "") < 0) {
		free(ff);
		return err_set(ENOMEM, "out of memory");
	}
	char *argv[] = {"ligero", "-o", opt, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	ff->fuse = fuse_new(&args, &ops, sizeof(ops), ff);
	fuse_opt_free_args(&args);
	free(opt);
	if (!ff->fuse)
		ret = err_set(EINVAL, "%s: cannot set up the FUSE filesystem", mountpoint);
	else if (fuse_mount(ff->fuse, mountpoint) != 0)
		ret = err_set(EIO,
			      "%s: cannot mount (is it an existing directory, and is /dev/fuse "
			      "usable?)",
			      mountpoint);
	if (ret < 0) {
		if (ff->fuse)
			fuse_destroy(ff->fuse);
		free(ff);
		return ret;
	}
	ff->mounted = true;
	*out = ff;
	return 0;
}

int fs_fuse_loop(struct fs_fuse *ff)
{
	struct fuse_session *se = fuse_get_session(ff->fuse);

	if (fuse_set_signal_handlers(se) == 0)
		ff->signals = true;
	int ret = fuse_loop(ff->fuse);
	if (ff->signals) {
		fuse_remove_signal_handlers(se);
		ff->signals = false;
	}
	/* A signal ends the loop with a positive signal number; that is a normal stop. */
	return ret < 0 ? err_set(-ret, "FUSE session failed") : 0;
}

void fs_fuse_destroy(struct fs_fuse *ff)
{
	if (!ff)
		return;
	if (ff->mounted)
		fuse_unmount(ff->fuse);
	fuse_destroy(ff->fuse);
	free(ff);
}
