/* ext2/3/4 through libext2fs: open, safety checks, and everything that only reads. */
#include "fs/ext_priv.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

int ext_errno(errcode_t code)
{
	if (code > 0 && code < 256)
		return -(int)code;
	switch (code) {
	case EXT2_ET_FILE_NOT_FOUND:
		return -ENOENT;
	case EXT2_ET_NO_DIRECTORY:
		return -ENOTDIR;
	case EXT2_ET_SYMLINK_LOOP:
		return -ELOOP;
	case EXT2_ET_DIR_NO_SPACE:
	case EXT2_ET_BLOCK_ALLOC_FAIL:
	case EXT2_ET_INODE_ALLOC_FAIL:
	case EXT2_ET_EA_NO_SPACE:
		return -ENOSPC;
	case EXT2_ET_EA_KEY_NOT_FOUND:
		return -ENODATA;
	case EXT2_ET_RO_FILSYS:
		return -EROFS;
	case EXT2_ET_NO_MEMORY:
		return -ENOMEM;
	case EXT2_ET_FILE_TOO_BIG:
		return -EFBIG;
	case EXT2_ET_DIR_EXISTS:
		return -EEXIST;
	case EXT2_ET_TOO_MANY_REFS:
		return -EMLINK;
	case EXT2_ET_INLINE_DATA_NO_SPACE:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

int ext_err(struct extfs *fs, errcode_t code, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	int ret = ext_errno(code);

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (fs->io->failed) /* the bdev already said what went wrong, with file and offset */
		return err_prefix(ret, "%s: %s: ", fs->name, what);
	const char *msg = (code > 0 && code < 256) ? strerror((int)code) : error_message(code);
	return err_set(-ret, "%s: %s: %s", fs->name, what, msg);
}

const char *extfs_name(const struct extfs *fs)
{
	return fs->name;
}

const char *extfs_warning(const struct extfs *fs)
{
	return fs->warning;
}

static void free_extfs(struct extfs *fs)
{
	ext_map_free(fs);
	free(fs->name);
	free(fs->warning);
	free(fs->io);
	free(fs);
}

/* Decide whether the on-disk state allows writing; a refusal or a warning says why. */
static int check_state(struct extfs *fs)
{
	struct ext2_super_block *sb = fs->fs->super;
	const char *why = NULL;

	if (ext2fs_has_feature_journal_needs_recovery(sb))
		why = "its journal needs recovery (the VM was not shut down cleanly, or is "
		      "running)";
	else if (sb->s_state & EXT2_ERROR_FS)
		why = "it is marked as having errors (run e2fsck on it)";
	else if (!(sb->s_state & EXT2_VALID_FS))
		why = "it was not unmounted cleanly (the VM was not shut down cleanly, or is "
		      "running)";
	if (!why)
		return 0;
	if (fs->rw)
		return err_set(EROFS, "%s: refusing to write: %s", fs->name, why);
	if (asprintf(&fs->warning,
		     "%s: warning: %s; reading it as last written, recent changes "
		     "may be missing",
		     fs->name, why) < 0)
		fs->warning = NULL;
	return 0;
}

int extfs_open(struct extfs **out, struct bdev *bs, uint64_t off, uint64_t len, const char *name,
	       bool rw)
{
	char dev[64];
	errcode_t e;
	int ret;
	struct extfs *fs = calloc(1, sizeof(*fs));

	if (!fs || !(fs->io = calloc(1, sizeof(*fs->io))) || !(fs->name = strdup(name))) {
		if (fs)
			free_extfs(fs);
		return err_set(ENOMEM, "%s: out of memory", name);
	}
	fs->bs = bs;
	fs->rw = rw;
	fs->io->bs = bs;
	fs->io->off = off;
	fs->io->len = len;
	if (rw && bs->read_only) {
		ret = err_set(EROFS, "%s: image is opened read-only", name);
		goto fail;
	}
	ext_io_name(fs->io, dev, sizeof(dev));
	int flags = EXT2_FLAG_64BITS | (rw ? EXT2_FLAG_RW : 0);
	e = ext2fs_open2(dev, NULL, flags, 0, 0, ext_bdev_io_manager, &fs->fs);
	if (e) {
		fs->fs = NULL;
		ret = ext_err(fs, e, "cannot open the ext filesystem");
		goto fail;
	}
	if ((ret = check_state(fs)) < 0)
		goto fail;
	if (rw && (e = ext2fs_read_bitmaps(fs->fs))) {
		ret = ext_err(fs, e, "cannot read the allocation bitmaps");
		goto fail;
	}
	*out = fs;
	return 0;
fail:
	if (fs->fs) {
		/* Nothing was changed: drop the in-memory state without writing it back. */
		fs->fs->flags &= ~EXT2_FLAG_DIRTY;
		ext2fs_free(fs->fs);
	}
	free_extfs(fs);
	return ret;
}

int extfs_mark_mounted(struct extfs *fs)
{
	if (!fs->rw)
		return 0;
	fs->fs->super->s_state &= (__u16)~EXT2_VALID_FS;
	fs->fs->super->s_mnt_count++;
	fs->mounted = true;
	ext2fs_mark_super_dirty(fs->fs);
	return extfs_sync(fs);
}

int extfs_sync(struct extfs *fs)
{
	errcode_t e;

	if (!fs->rw)
		return 0;
	if ((e = ext2fs_flush(fs->fs)))
		return ext_err(fs, e, "cannot write back the filesystem metadata");
	if (bdev_flush(fs->bs) < 0)
		return err_prefix(-EIO, "%s: ", fs->name);
	return 0;
}

int extfs_close(struct extfs *fs)
{
	int ret = 0;
	errcode_t e;

	if (!fs)
		return 0;
	if (fs->rw && fs->mounted) {
		fs->fs->super->s_state |= EXT2_VALID_FS;
		ext2fs_mark_super_dirty(fs->fs);
	}
	if (!fs->rw)
		fs->fs->flags &= ~EXT2_FLAG_DIRTY;
	e = ext2fs_close_free(&fs->fs);
	if (e)
		ret = ext_err(fs, e, "cannot write back the filesystem metadata");
	if (ret == 0 && fs->rw && bdev_flush(fs->bs) < 0)
		ret = err_prefix(-EIO, "%s: ", fs->name);
	free_extfs(fs);
	return ret;
}

int ext_check_rw(struct extfs *fs)
{
	if (!fs->rw)
		return err_set(EROFS, "%s: filesystem is opened read-only", fs->name);
	return 0;
}

int ext_read_inode(struct extfs *fs, uint32_t ino, struct ext2_inode_large *inode)
{
	memset(inode, 0, sizeof(*inode));
	errcode_t e =
	    ext2fs_read_inode_full(fs->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));
	if (e)
		return ext_err(fs, e, "cannot read inode %u", ino);
	return 0;
}

int ext_write_inode(struct extfs *fs, uint32_t ino, struct ext2_inode_large *inode)
{
	ext_map_forget(fs);
	errcode_t e =
	    ext2fs_write_inode_full(fs->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));
	if (e)
		return ext_err(fs, e, "cannot write inode %u", ino);
	return 0;
}

static int path_check(struct extfs *fs, const char *path)
{
	if (path[0] != '/')
		return err_set(EINVAL, "%s: %s: guest paths must be absolute (start with /)",
			       fs->name, path);
	return 0;
}

static int lookup_err(struct extfs *fs, errcode_t e, const char *path)
{
	int ret = ext_errno(e);

	if (ret == -ENOENT)
		return err_set(ENOENT, "%s: %s: no such file or directory", fs->name, path);
	if (ret == -ENOTDIR)
		return err_set(ENOTDIR, "%s: %s: a component of the path is not a directory",
			       fs->name, path);
	if (ret == -ELOOP)
		return err_set(ELOOP, "%s: %s: too many levels of symbolic links", fs->name, path);
	return ext_err(fs, e, "%s", path);
}

int extfs_lookup(struct extfs *fs, const char *path, bool follow, uint32_t *ino)
{
	ext2_ino_t i;
	errcode_t e;
	int ret;

	if ((ret = path_check(fs, path)) < 0)
		return ret;
	if (follow)
		e = ext2fs_namei_follow(fs->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &i);
	else
		e = ext2fs_namei(fs->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &i);
	if (e)
		return lookup_err(fs, e, path);
	*ino = i;
	return 0;
}

int extfs_lookup_at(struct extfs *fs, uint32_t dir, const char *name, uint32_t *ino)
{
	ext2_ino_t i;
	errcode_t e = ext2fs_lookup(fs->fs, dir, name, (int)strlen(name), NULL, &i);

	if (e == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	if (e)
		return ext_err(fs, e, "cannot look up '%s' in directory inode %u", name, dir);
	*ino = i;
	return 0;
}

int extfs_lookup_parent(struct extfs *fs, const char *path, uint32_t *dir, char base[256])
{
	int ret;

	if ((ret = path_check(fs, path)) < 0)
		return ret;
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t b = n;
	while (b > 0 && path[b - 1] != '/')
		b--;
	if (n - b == 0 || (n - b == 1 && path[b] == '.') ||
	    (n - b == 2 && path[b] == '.' && path[b + 1] == '.'))
		return err_set(EINVAL, "%s: %s: names no file or directory entry", fs->name, path);
	if (n - b > 255)
		return err_set(ENAMETOOLONG, "%s: %s: file name longer than 255 bytes", fs->name,
			       path);
	memcpy(base, path + b, n - b);
	base[n - b] = 0;
	char *parent = strndup(path, b);
	if (!parent)
		return err_set(ENOMEM, "out of memory");
	ext2_ino_t d;
	errcode_t e = ext2fs_namei_follow(fs->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, parent, &d);
	if (e)
		ret = lookup_err(fs, e, parent);
	else if (ext2fs_check_directory(fs->fs, d))
		ret = err_set(ENOTDIR, "%s: %s: not a directory", fs->name, parent);
	else
		*dir = d;
	free(parent);
	return ret;
}

static struct timespec get_time(struct extfs *fs, const struct ext2_inode_large *in, __u32 lo,
				const __u32 *extra)
{
	struct timespec ts = {.tv_sec = (int32_t)lo};

	if (extra) {
		ts.tv_sec += (time_t)((uint64_t)(*extra & EXT4_EPOCH_MASK) << 32);
		ts.tv_nsec = (long)(*extra >> EXT4_EPOCH_BITS);
		if (ts.tv_nsec >= 1000000000)
			ts.tv_nsec = 0;
	}
	return ts;
}

/* The address of an extra (nanosecond) field when this inode has room for it, else NULL. */
#define EXTRA(fs, in, field)                                                                       \
	((EXT2_INODE_SIZE((fs)->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&                           \
	  (size_t)EXT2_GOOD_OLD_INODE_SIZE + (in)->i_extra_isize >=                                \
	      offsetof(struct ext2_inode_large, field) + sizeof((in)->field))                      \
	     ? &(in)->field                                                                        \
	     : NULL)

void ext_set_time(struct extfs *fs, struct ext2_inode_large *in, int which,
		  const struct timespec *ts)
{
	__u32 lo = (__u32)ts->tv_sec;
	__u32 ex = (__u32)(((uint64_t)(ts->tv_sec - (int32_t)lo) >> 32) & EXT4_EPOCH_MASK) |
		   (__u32)((uint64_t)ts->tv_nsec << EXT4_EPOCH_BITS);
	__u32 *p;

	switch (which) {
	case EXT_ATIME:
		in->i_atime = lo;
		if ((p = EXTRA(fs, in, i_atime_extra)))
			*p = ex;
		break;
	case EXT_MTIME:
		in->i_mtime = lo;
		if ((p = EXTRA(fs, in, i_mtime_extra)))
			*p = ex;
		break;
	case EXT_CTIME:
		in->i_ctime = lo;
		if ((p = EXTRA(fs, in, i_ctime_extra)))
			*p = ex;
		break;
	case EXT_CRTIME:
		if ((p = EXTRA(fs, in, i_crtime))) {
			in->i_crtime = lo;
			if ((p = EXTRA(fs, in, i_crtime_extra)))
				*p = ex;
		}
		break;
	}
}

int extfs_stat(struct extfs *fs, uint32_t ino, struct extfs_stat *st)
{
	struct ext2_inode_large in;
	int ret = ext_read_inode(fs, ino, &in);

	if (ret < 0)
		return ret;
	memset(st, 0, sizeof(*st));
	st->ino = ino;
	st->mode = in.i_mode;
	st->uid = inode_uid(in);
	st->gid = inode_gid(in);
	st->nlink = in.i_links_count;
	st->size = EXT2_I_SIZE(&in);
	st->blocks = ext2fs_get_stat_i_blocks(fs->fs, (struct ext2_inode *)&in);
	st->atime = get_time(fs, &in, in.i_atime, EXTRA(fs, &in, i_atime_extra));
	st->mtime = get_time(fs, &in, in.i_mtime, EXTRA(fs, &in, i_mtime_extra));
	st->ctime = get_time(fs, &in, in.i_ctime, EXTRA(fs, &in, i_ctime_extra));
	if (EXTRA(fs, &in, i_crtime))
		st->crtime = get_time(fs, &in, in.i_crtime, EXTRA(fs, &in, i_crtime_extra));
	if (S_ISCHR(in.i_mode) || S_ISBLK(in.i_mode)) {
		if (in.i_block[0])
			st->rdev = makedev((in.i_block[0] >> 8) & 0xff, in.i_block[0] & 0xff);
		else
			st->rdev =
			    makedev((in.i_block[1] & 0xfff00) >> 8,
				    (in.i_block[1] & 0xff) | ((in.i_block[1] >> 12) & 0xfff00));
	}
	return 0;
}

int extfs_statfs(struct extfs *fs, struct statvfs *sv)
{
	struct ext2_super_block *sb = fs->fs->super;

	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = sv->f_frsize = fs->fs->blocksize;
	sv->f_blocks = ext2fs_blocks_count(sb);
	sv->f_bfree = ext2fs_free_blocks_count(sb);
	uint64_t resv = ext2fs_r_blocks_count(sb);
	sv->f_bavail = sv->f_bfree > resv ? sv->f_bfree - resv : 0;
	sv->f_files = sb->s_inodes_count;
	sv->f_ffree = sv->f_favail = sb->s_free_inodes_count;
	sv->f_namemax = EXT2_NAME_LEN;
	return 0;
}

struct dir_ctx {
	extfs_dir_cb cb;
	void *priv;
	int ret;
};

static int dir_iter(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset, int blocksize,
		    char *buf, void *priv)
{
	struct dir_ctx *c = priv;
	char name[EXT2_NAME_LEN + 1];
	int len = ext2fs_dirent_name_len(d);

	if (entry == DIRENT_DELETED_FILE || !d->inode)
		return 0;
	memcpy(name, d->name, (size_t)len);
	name[len] = 0;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	c->ret = c->cb(name, d->inode, c->priv);
	return c->ret ? DIRENT_ABORT : 0;
}

int extfs_readdir(struct extfs *fs, uint32_t dir, extfs_dir_cb cb, void *priv)
{
	struct dir_ctx c = {cb, priv, 0};
	errcode_t e;

	if (ext2fs_check_directory(fs->fs, dir))
		return err_set(ENOTDIR, "%s: inode %u is not a directory", fs->name, dir);
	e = ext2fs_dir_iterate2(fs->fs, dir, 0, NULL, dir_iter, &c);
	if (e)
		return ext_err(fs, e, "cannot read directory inode %u", dir);
	return c.ret;
}

int extfs_pread(struct extfs *fs, uint32_t ino, uint64_t off, void *buf, size_t len, size_t *got)
{
	struct ext2_inode_large in;
	ext2_file_t f;
	errcode_t e;
	unsigned int n = 0;
	int ret = ext_read_inode(fs, ino, &in);

	*got = 0;
	if (ret < 0)
		return ret;
	if (LINUX_S_ISREG(in.i_mode) && (in.i_flags & EXT4_EXTENTS_FL) &&
	    !(in.i_flags & EXT4_INLINE_DATA_FL))
		return ext_map_pread(fs, ino, &in, off, buf, len, got);
	if ((e = ext2fs_file_open(fs->fs, ino, 0, &f)))
		return ext_err(fs, e, "cannot open inode %u", ino);
	e = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
	while (!e && len) {
		unsigned int chunk = len > (1u << 30) ? (1u << 30) : (unsigned int)len;
		e = ext2fs_file_read(f, buf, chunk, &n);
		if (e || n == 0)
			break;
		*got += n;
		buf = (char *)buf + n;
		len -= n;
	}
	ext2fs_file_close(f);
	if (e)
		return ext_err(fs, e, "cannot read inode %u", ino);
	return 0;
}

int extfs_readlink(struct extfs *fs, uint32_t ino, char *buf, size_t size)
{
	struct ext2_inode_large in;
	int ret = ext_read_inode(fs, ino, &in);
	size_t got;

	if (ret < 0)
		return ret;
	if (!LINUX_S_ISLNK(in.i_mode))
		return err_set(EINVAL, "%s: inode %u is not a symbolic link", fs->name, ino);
	uint64_t len = EXT2_I_SIZE(&in);
	if (len >= size)
		return err_set(ENAMETOOLONG, "%s: symbolic link inode %u is too long", fs->name,
			       ino);
	if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
		if (len >= sizeof(in.i_block)) /* corrupt: a fast link lives in i_block */
			return err_set(EIO, "%s: symbolic link inode %u is corrupt", fs->name, ino);
		memcpy(buf, in.i_block, len);
	} else {
		if ((ret = extfs_pread(fs, ino, 0, buf, len, &got)) < 0)
			return ret;
		len = got;
	}
	buf[len] = 0;
	return 0;
}

struct ranges {
	struct extfs_range *r;
	size_t n, cap;
	uint64_t bsize;
};

static int range_add(struct ranges *rs, uint64_t lblk, uint64_t count)
{
	uint64_t start = lblk * rs->bsize, len = count * rs->bsize;

	if (rs->n && rs->r[rs->n - 1].start + rs->r[rs->n - 1].len == start) {
		rs->r[rs->n - 1].len += len;
		return 0;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		struct extfs_range *nr = realloc(rs->r, cap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		rs->r = nr;
		rs->cap = cap;
	}
	rs->r[rs->n++] = (struct extfs_range){start, len};
	return 0;
}

static int block_iter(ext2_filsys efs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref,
		      int ref_off, void *priv)
{
	if (blockcnt < 0 || !*blocknr)
		return 0;
	return range_add(priv, (uint64_t)blockcnt, 1) ? BLOCK_ABORT : 0;
}

static errcode_t extent_ranges(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in,
			       struct ranges *rs)
{
	ext2_extent_handle_t h;
	struct ext2fs_extent ex;
	errcode_t e = ext2fs_extent_open2(fs->fs, ino, (struct ext2_inode *)in, &h);
	int op = EXT2_EXTENT_ROOT;

	if (e)
		return e;
	while (!(e = ext2fs_extent_get(h, op, &ex))) {
		op = EXT2_EXTENT_NEXT_LEAF;
		if (!(ex.e_flags & EXT2_EXTENT_FLAGS_LEAF))
			continue;
		if (ex.e_flags & EXT2_EXTENT_FLAGS_UNINIT)
			continue; /* allocated but unwritten: reads as zero, copied as a hole */
		if (range_add(rs, ex.e_lblk, ex.e_len)) {
			e = EXT2_ET_NO_MEMORY;
			break;
		}
	}
	ext2fs_extent_free(h);
	return e == EXT2_ET_EXTENT_NO_NEXT ? 0 : e;
}

int extfs_data_ranges(struct extfs *fs, uint32_t ino, struct extfs_range **out, size_t *n)
{
	struct ext2_inode_large in;
	struct ranges rs = {.bsize = fs->fs->blocksize};
	errcode_t e = 0;
	int ret = ext_read_inode(fs, ino, &in);

	if (ret < 0)
		return ret;
	uint64_t size = EXT2_I_SIZE(&in);
	if (in.i_flags & EXT4_INLINE_DATA_FL) {
		if (size && range_add(&rs, 0, 0) == 0)
			rs.r[0].len = size;
	} else if (in.i_flags & EXT4_EXTENTS_FL) {
		e = extent_ranges(fs, ino, &in, &rs);
	} else if (ext2fs_inode_has_valid_blocks2(fs->fs, (struct ext2_inode *)&in)) {
		e = ext2fs_block_iterate3(fs->fs, ino, BLOCK_FLAG_DATA_ONLY | BLOCK_FLAG_READ_ONLY,
					  NULL, block_iter, &rs);
	}
	if (e) {
		free(rs.r);
		return ext_err(fs, e, "cannot map the blocks of inode %u", ino);
	}
	/* Blocks past the size (preallocated with KEEP_SIZE) are not file content. */
	size_t k = 0;
	for (size_t i = 0; i < rs.n; i++) {
		if (rs.r[i].start >= size)
			break;
		if (rs.r[i].start + rs.r[i].len > size)
			rs.r[i].len = size - rs.r[i].start;
		k++;
	}
	*out = rs.r;
	*n = k;
	return 0;
}

/* libext2fs converts stored ACLs to the VFS format with id 0 in the entries that have no
 * qualifier; the kernel's getxattr gives -1 (ACL_UNDEFINED_ID) there. Hand out the kernel's. */
static void acl_undefined_ids(const char *name, void *val, size_t len)
{
	uint8_t *v = val;

	if (strcmp(name, "system.posix_acl_access") && strcmp(name, "system.posix_acl_default"))
		return;
	for (size_t off = 4; off + 8 <= len; off += 8) {
		unsigned tag = v[off] | (unsigned)v[off + 1] << 8;
		if (tag != 0x02 && tag != 0x08) /* ACL_USER, ACL_GROUP carry an id */
			memset(v + off + 4, 0xff, 4);
	}
}

struct xattr_ctx {
	extfs_xattr_cb cb;
	void *priv;
	int ret;
	struct ext2_xattr_handle *h;
};

static int xattr_iter(char *name, char *value, size_t len, void *priv)
{
	struct xattr_ctx *c = priv;

	if (!strcmp(name, "system.data")) /* inline data lives here: content, not an attribute */
		return 0;
	/* The iteration gives stored bytes; ACLs are stored in ext4's own format and handed out
	 * (by the kernel's getxattr, and ext2fs_xattr_get) in the VFS one. */
	if (!strcmp(name, "system.posix_acl_access") || !strcmp(name, "system.posix_acl_default")) {
		void *v = NULL;
		size_t vl = 0;
		if (ext2fs_xattr_get(c->h, name, &v, &vl) == 0) {
			acl_undefined_ids(name, v, vl);
			c->ret = c->cb(name, v, vl, c->priv);
			ext2fs_free_mem(&v);
			return c->ret ? XATTR_ABORT : 0;
		}
	}
	c->ret = c->cb(name, value, len, c->priv);
	return c->ret ? XATTR_ABORT : 0;
}

int extfs_xattr_list(struct extfs *fs, uint32_t ino, extfs_xattr_cb cb, void *priv)
{
	struct ext2_xattr_handle *h;
	struct xattr_ctx c = {cb, priv, 0, NULL};
	errcode_t e;

	if (!ext2fs_has_feature_xattr(fs->fs->super))
		return 0;
	if ((e = ext2fs_xattrs_open(fs->fs, ino, &h)))
		return ext_err(fs, e, "cannot read the extended attributes of inode %u", ino);
	c.h = h;
	e = ext2fs_xattrs_read(h);
	if (!e)
		e = ext2fs_xattrs_iterate(h, xattr_iter, &c);
	ext2fs_xattrs_close(&h);
	if (e)
		return ext_err(fs, e, "cannot read the extended attributes of inode %u", ino);
	return c.ret;
}

int extfs_xattr_get(struct extfs *fs, uint32_t ino, const char *name, void **val, size_t *len)
{
	struct ext2_xattr_handle *h;
	errcode_t e;

	*val = NULL;
	*len = 0;
	if (!ext2fs_has_feature_xattr(fs->fs->super))
		return -ENODATA;
	if ((e = ext2fs_xattrs_open(fs->fs, ino, &h)))
		return ext_err(fs, e, "cannot read the extended attributes of inode %u", ino);
	e = ext2fs_xattrs_read(h);
	void *v = NULL;
	if (!e)
		e = ext2fs_xattr_get(h, name, &v, len);
	ext2fs_xattrs_close(&h);
	if (e == EXT2_ET_EA_KEY_NOT_FOUND)
		return -ENODATA;
	if (e)
		return ext_err(fs, e, "cannot read attribute %s of inode %u", name, ino);
	/* Hand back memory from malloc, whatever libext2fs allocated it with. */
	*val = malloc(*len ? *len : 1);
	if (*val) {
		memcpy(*val, v, *len);
		acl_undefined_ids(name, *val, *len);
	}
	ext2fs_free_mem(&v);
	return *val ? 0 : err_set(ENOMEM, "out of memory");
}

static int xattr_change(struct extfs *fs, uint32_t ino, const char *name, const void *val,
			size_t len, bool remove)
{
	struct ext2_xattr_handle *h;
	errcode_t e;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0)
		return ret;
	if (!ext2fs_has_feature_xattr(fs->fs->super))
		return err_set(ENOTSUP, "%s: the filesystem has no extended attribute support",
			       fs->name);
	if ((e = ext2fs_xattrs_open(fs->fs, ino, &h)))
		return ext_err(fs, e, "cannot open the extended attributes of inode %u", ino);
	e = ext2fs_xattrs_read(h);
	if (!e)
		e = remove ? ext2fs_xattr_remove(h, name) : ext2fs_xattr_set(h, name, val, len);
	ext2fs_xattrs_close(&h);
	if (remove && e == EXT2_ET_EA_KEY_NOT_FOUND)
		return -ENODATA;
	if (e)
		return ext_err(fs, e, "cannot %s attribute %s of inode %u",
			       remove ? "remove" : "set", name, ino);
	return 0;
}

int extfs_xattr_set(struct extfs *fs, uint32_t ino, const char *name, const void *val, size_t len)
{
	return xattr_change(fs, ino, name, val, len, false);
}

int extfs_xattr_remove(struct extfs *fs, uint32_t ino, const char *name)
{
	return xattr_change(fs, ino, name, NULL, 0, true);
}
