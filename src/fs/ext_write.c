/*
 * ext2/3/4 changes through libext2fs. Each call leaves the filesystem consistent for e2fsck:
 * directory entries are added only after the inode they name is written, and freed inodes and
 * blocks are returned to the bitmaps and group counters with the *_alloc_stats calls.
 */
#include "fs/ext_priv.h"
#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

static struct timespec now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

static void touch_ctime(struct extfs *fs, struct ext2_inode_large *in)
{
	struct timespec ts = now();

	ext_set_time(fs, in, EXT_CTIME, &ts);
}

static int file_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return EXT2_FT_REG_FILE;
	case S_IFDIR:
		return EXT2_FT_DIR;
	case S_IFLNK:
		return EXT2_FT_SYMLINK;
	case S_IFCHR:
		return EXT2_FT_CHRDEV;
	case S_IFBLK:
		return EXT2_FT_BLKDEV;
	case S_IFIFO:
		return EXT2_FT_FIFO;
	case S_IFSOCK:
		return EXT2_FT_SOCK;
	}
	return EXT2_FT_UNKNOWN;
}

/* Refuse to create a name that exists, is too long, or is "." / "..". */
static int check_new_name(struct extfs *fs, uint32_t dir, const char *name)
{
	uint32_t ino;
	size_t len = strlen(name);
	int ret;

	if ((ret = ext_check_rw(fs)) < 0)
		return ret;
	if (!len || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
		return err_set(EINVAL, "%s: '%s' is not a valid file name", fs->name, name);
	if (len > EXT2_NAME_LEN)
		return err_set(ENAMETOOLONG, "%s: '%s' is longer than 255 bytes", fs->name, name);
	ret = extfs_lookup_at(fs, dir, name, &ino);
	if (ret == 0)
		return err_set(EEXIST, "%s: '%s' already exists", fs->name, name);
	return ret == -ENOENT ? 0 : ret;
}

/* Add dir/name -> ino, growing the directory when its blocks are full. */
static int add_link(struct extfs *fs, uint32_t dir, const char *name, uint32_t ino, int ft)
{
	errcode_t e = ext2fs_link(fs->fs, dir, name, ino, ft);

	if (e == EXT2_ET_DIR_NO_SPACE) {
		if ((e = ext2fs_expand_dir(fs->fs, dir)) == 0)
			e = ext2fs_link(fs->fs, dir, name, ino, ft);
	}
	if (e)
		return ext_err(fs, e, "cannot add '%s' to directory inode %u", name, dir);
	return 0;
}

/* A fresh inode: owner, mode, all four times now, one link, an empty extent tree. */
static int new_inode(struct extfs *fs, uint32_t dir, uint32_t mode, uint32_t uid, uint32_t gid,
		     uint32_t *ino, struct ext2_inode_large *in)
{
	ext2_ino_t i;
	errcode_t e = ext2fs_new_inode(fs->fs, dir, (int)mode, NULL, &i);
	struct timespec ts = now();

	if (e)
		return ext_err(fs, e, "cannot allocate an inode");
	memset(in, 0, sizeof(*in));
	in->i_mode = (__u16)mode;
	in->i_uid = (__u16)uid;
	ext2fs_set_i_uid_high(*in, uid >> 16);
	in->i_gid = (__u16)gid;
	ext2fs_set_i_gid_high(*in, gid >> 16);
	in->i_links_count = 1;
	if (EXT2_INODE_SIZE(fs->fs->super) > EXT2_GOOD_OLD_INODE_SIZE)
		in->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
	ext_set_time(fs, in, EXT_ATIME, &ts);
	ext_set_time(fs, in, EXT_MTIME, &ts);
	ext_set_time(fs, in, EXT_CTIME, &ts);
	ext_set_time(fs, in, EXT_CRTIME, &ts);
	*ino = i;
	return 0;
}

/* Write a new inode, count it as used, then link it into dir. */
static int commit_new(struct extfs *fs, uint32_t dir, const char *name, uint32_t ino,
		      struct ext2_inode_large *in)
{
	errcode_t e = ext2fs_write_new_inode(fs->fs, ino, (struct ext2_inode *)in);
	int ret;

	if (e)
		return ext_err(fs, e, "cannot write inode %u", ino);
	if ((ret = add_link(fs, dir, name, ino, file_type(in->i_mode))) < 0)
		return ret;
	ext2fs_inode_alloc_stats2(fs->fs, ino, +1, LINUX_S_ISDIR(in->i_mode));
	return 0;
}

int extfs_mknod(struct extfs *fs, uint32_t dir, const char *name, uint32_t mode, uint64_t rdev,
		uint32_t uid, uint32_t gid, uint32_t *ino)
{
	struct ext2_inode_large in;
	int ret;

	if ((ret = check_new_name(fs, dir, name)) < 0)
		return ret;
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) &&
	    !S_ISBLK(mode))
		return err_set(EINVAL, "%s: '%s': unsupported file type", fs->name, name);
	if ((ret = new_inode(fs, dir, mode, uid, gid, ino, &in)) < 0)
		return ret;
	if (S_ISCHR(mode) || S_ISBLK(mode)) {
		unsigned ma = major(rdev), mi = minor(rdev);
		if (ma < 256 && mi < 256)
			in.i_block[0] = ma * 256 + mi;
		else
			in.i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
	} else if (S_ISREG(mode) && ext2fs_has_feature_extents(fs->fs->super)) {
		ext2_extent_handle_t h;
		errcode_t e;
		in.i_flags |= EXT4_EXTENTS_FL;
		/* Opening a handle on an inode without a tree writes an empty tree header. */
		if ((e = ext2fs_extent_open2(fs->fs, *ino, (struct ext2_inode *)&in, &h)))
			return ext_err(fs, e, "cannot set up the extent tree of inode %u", *ino);
		ext2fs_extent_free(h);
	}
	return commit_new(fs, dir, name, *ino, &in);
}

int extfs_mkdir(struct extfs *fs, uint32_t dir, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, uint32_t *ino)
{
	struct ext2_inode_large in;
	errcode_t e;
	int ret;

	if ((ret = check_new_name(fs, dir, name)) < 0)
		return ret;
	e = ext2fs_mkdir(fs->fs, dir, 0, name);
	if (e == EXT2_ET_DIR_NO_SPACE) {
		if ((e = ext2fs_expand_dir(fs->fs, dir)) == 0)
			e = ext2fs_mkdir(fs->fs, dir, 0, name);
	}
	if (e)
		return ext_err(fs, e, "cannot create directory '%s'", name);
	if ((ret = extfs_lookup_at(fs, dir, name, ino)) < 0)
		return ret == -ENOENT
			   ? err_set(EIO, "%s: new directory '%s' vanished", fs->name, name)
			   : ret;
	if ((ret = ext_read_inode(fs, *ino, &in)) < 0)
		return ret;
	in.i_mode = (__u16)(S_IFDIR | (mode & 07777));
	in.i_uid = (__u16)uid;
	ext2fs_set_i_uid_high(in, uid >> 16);
	in.i_gid = (__u16)gid;
	ext2fs_set_i_gid_high(in, gid >> 16);
	return ext_write_inode(fs, *ino, &in);
}

int extfs_symlink(struct extfs *fs, uint32_t dir, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, uint32_t *ino)
{
	struct ext2_inode_large in;
	ext2_ino_t i;
	errcode_t e;
	int ret;

	if ((ret = check_new_name(fs, dir, name)) < 0)
		return ret;
	if (strlen(target) >= fs->fs->blocksize)
		return err_set(ENAMETOOLONG, "%s: symbolic link target of '%s' is too long",
			       fs->name, name);
	e = ext2fs_symlink(fs->fs, dir, 0, name, target);
	if (e == EXT2_ET_DIR_NO_SPACE) {
		if ((e = ext2fs_expand_dir(fs->fs, dir)) == 0)
			e = ext2fs_symlink(fs->fs, dir, 0, name, target);
	}
	if (e)
		return ext_err(fs, e, "cannot create symbolic link '%s'", name);
	if ((e = ext2fs_lookup(fs->fs, dir, name, (int)strlen(name), NULL, &i)))
		return ext_err(fs, e, "cannot find new symbolic link '%s'", name);
	*ino = i;
	if ((ret = ext_read_inode(fs, i, &in)) < 0)
		return ret;
	in.i_uid = (__u16)uid;
	ext2fs_set_i_uid_high(in, uid >> 16);
	in.i_gid = (__u16)gid;
	ext2fs_set_i_gid_high(in, gid >> 16);
	return ext_write_inode(fs, i, &in);
}

int extfs_link(struct extfs *fs, uint32_t dir, const char *name, uint32_t ino)
{
	struct ext2_inode_large in;
	int ret;

	if ((ret = check_new_name(fs, dir, name)) < 0)
		return ret;
	if ((ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	if (LINUX_S_ISDIR(in.i_mode))
		return err_set(EPERM, "%s: '%s': cannot hard-link a directory", fs->name, name);
	if (in.i_links_count >= EXT2_LINK_MAX)
		return err_set(EMLINK, "%s: '%s': too many links", fs->name, name);
	if ((ret = add_link(fs, dir, name, ino, file_type(in.i_mode))) < 0)
		return ret;
	in.i_links_count++;
	touch_ctime(fs, &in);
	return ext_write_inode(fs, ino, &in);
}

/* Drop one link of ino; with the last one, free its blocks, attributes and the inode. */
static int drop_link(struct extfs *fs, uint32_t ino, bool dir)
{
	struct ext2_inode_large in;
	errcode_t e;
	int ret = ext_read_inode(fs, ino, &in);

	if (ret < 0)
		return ret;
	if (dir)
		in.i_links_count = 0; /* "." and the parent's entry go together */
	else if (in.i_links_count)
		in.i_links_count--;
	touch_ctime(fs, &in);
	if (in.i_links_count)
		return ext_write_inode(fs, ino, &in);
	if ((e = ext2fs_free_ext_attr(fs->fs, ino, &in)))
		return ext_err(fs, e, "cannot free the attributes of inode %u", ino);
	if (ext2fs_inode_has_valid_blocks2(fs->fs, (struct ext2_inode *)&in) ||
	    (in.i_flags & EXT4_INLINE_DATA_FL)) {
		if ((e = ext2fs_punch(fs->fs, ino, (struct ext2_inode *)&in, NULL, 0, ~0ULL)))
			return ext_err(fs, e, "cannot free the blocks of inode %u", ino);
	}
	in.i_dtime = (__u32)time(NULL);
	if ((ret = ext_write_inode(fs, ino, &in)) < 0)
		return ret;
	ext2fs_inode_alloc_stats2(fs->fs, ino, -1, dir);
	return 0;
}

int extfs_unlink(struct extfs *fs, uint32_t dir, const char *name)
{
	struct ext2_inode_large in;
	uint32_t ino;
	errcode_t e;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0)
		return ret;
	if ((ret = extfs_lookup_at(fs, dir, name, &ino)) < 0)
		return ret == -ENOENT
			   ? err_set(ENOENT, "%s: '%s': no such file or directory", fs->name, name)
			   : ret;
	if ((ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	if (LINUX_S_ISDIR(in.i_mode))
		return err_set(EISDIR, "%s: '%s' is a directory", fs->name, name);
	if ((e = ext2fs_unlink(fs->fs, dir, name, ino, 0)))
		return ext_err(fs, e, "cannot remove '%s'", name);
	return drop_link(fs, ino, false);
}

static int empty_iter(const char *name, uint32_t ino, void *priv)
{
	return 1;
}

/* Change the parent count of directory dir by delta (its ".." entry comes or goes). */
static int adjust_links(struct extfs *fs, uint32_t dir, int delta)
{
	struct ext2_inode_large in;
	int ret = ext_read_inode(fs, dir, &in);

	if (ret < 0)
		return ret;
	/* With dir_nlink a count of 1 means "too many to count": leave it. */
	if (delta < 0 && in.i_links_count > 1)
		in.i_links_count--;
	else if (delta > 0 && in.i_links_count > 1 && in.i_links_count < EXT2_LINK_MAX)
		in.i_links_count++;
	else if (delta > 0 && in.i_links_count >= EXT2_LINK_MAX)
		in.i_links_count = 1;
	touch_ctime(fs, &in);
	struct timespec ts = now();
	ext_set_time(fs, &in, EXT_MTIME, &ts);
	return ext_write_inode(fs, dir, &in);
}

int extfs_rmdir(struct extfs *fs, uint32_t dir, const char *name)
{
	uint32_t ino;
	errcode_t e;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0)
		return ret;
	if ((ret = extfs_lookup_at(fs, dir, name, &ino)) < 0)
		return ret == -ENOENT
			   ? err_set(ENOENT, "%s: '%s': no such file or directory", fs->name, name)
			   : ret;
	if (ino == EXT2_ROOT_INO)
		return err_set(EBUSY, "%s: cannot remove the root directory", fs->name);
	if ((ret = extfs_readdir(fs, ino, empty_iter, NULL)) < 0)
		return ret;
	if (ret > 0)
		return err_set(ENOTEMPTY, "%s: directory '%s' is not empty", fs->name, name);
	if ((e = ext2fs_unlink(fs->fs, dir, name, ino, 0)))
		return ext_err(fs, e, "cannot remove '%s'", name);
	if ((ret = drop_link(fs, ino, true)) < 0)
		return ret;
	return adjust_links(fs, dir, -1);
}

struct dotdot {
	uint32_t parent;
	bool done;
};

static int dotdot_iter(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset,
		       int blocksize, char *buf, void *priv)
{
	struct dotdot *c = priv;

	if (entry != DIRENT_DOT_DOT_FILE)
		return 0;
	d->inode = c->parent;
	c->done = true;
	return DIRENT_CHANGED | DIRENT_ABORT;
}

int extfs_rename(struct extfs *fs, uint32_t odir, const char *oname, uint32_t ndir,
		 const char *nname)
{
	struct extfs_stat st, tst;
	uint32_t ino, tino;
	errcode_t e;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0)
		return ret;
	if ((ret = extfs_lookup_at(fs, odir, oname, &ino)) < 0)
		return ret == -ENOENT
			   ? err_set(ENOENT, "%s: '%s': no such file or directory", fs->name, oname)
			   : ret;
	if ((ret = extfs_stat(fs, ino, &st)) < 0)
		return ret;
	bool isdir = S_ISDIR(st.mode);
	if (isdir) { /* a directory may not move below itself */
		uint32_t cur = ndir;
		for (int depth = 0; cur != EXT2_ROOT_INO && depth < 4096; depth++) {
			if (cur == ino)
				return err_set(EINVAL, "%s: cannot move '%s' into itself", fs->name,
					       oname);
			if (extfs_lookup_at(fs, cur, "..", &cur) < 0)
				break;
		}
	}
	ret = extfs_lookup_at(fs, ndir, nname, &tino);
	if (ret == 0) {
		if (tino == ino)
			return 0;
		if ((ret = extfs_stat(fs, tino, &tst)) < 0)
			return ret;
		if (S_ISDIR(tst.mode) != isdir)
			return err_set(isdir ? ENOTDIR : EISDIR, "%s: cannot replace '%s' by '%s'",
				       fs->name, nname, oname);
		ret = isdir ? extfs_rmdir(fs, ndir, nname) : extfs_unlink(fs, ndir, nname);
	} else if (ret == -ENOENT) {
		ret = 0;
	}
	if (ret < 0 || (ret = check_new_name(fs, ndir, nname)) < 0)
		return ret;
	if ((ret = add_link(fs, ndir, nname, ino, file_type(st.mode))) < 0)
		return ret;
	if ((e = ext2fs_unlink(fs->fs, odir, oname, ino, 0)))
		return ext_err(fs, e, "cannot remove old name '%s'", oname);
	if (isdir && odir != ndir) {
		struct dotdot c = {ndir, false};
		if ((e = ext2fs_dir_iterate2(fs->fs, ino, DIRENT_FLAG_INCLUDE_EMPTY, NULL,
					     dotdot_iter, &c)))
			return ext_err(fs, e, "cannot update '..' of '%s'", nname);
		if ((ret = adjust_links(fs, odir, -1)) < 0 ||
		    (ret = adjust_links(fs, ndir, +1)) < 0)
			return ret;
	}
	struct ext2_inode_large in;
	if ((ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	touch_ctime(fs, &in);
	return ext_write_inode(fs, ino, &in);
}

static int regular(struct extfs *fs, uint32_t ino, struct ext2_inode_large *in)
{
	int ret = ext_read_inode(fs, ino, in);

	if (ret < 0)
		return ret;
	if (!LINUX_S_ISREG(in->i_mode))
		return err_set(EINVAL, "%s: inode %u is not a regular file", fs->name, ino);
	return 0;
}

int extfs_pwrite(struct extfs *fs, uint32_t ino, uint64_t off, const void *buf, size_t len)
{
	struct ext2_inode_large in;
	ext2_file_t f;
	errcode_t e, e2;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0 || (ret = regular(fs, ino, &in)) < 0)
		return ret;
	if ((ret = ext_map_pwrite(fs, ino, &in, off, buf, len)) <= 0) {
		if (ret < 0)
			return ret;
		/* Written straight to its blocks: the size and times are all that change. */
		if (off + len > EXT2_I_SIZE(&in) &&
		    (e = ext2fs_inode_size_set(fs->fs, (struct ext2_inode *)&in, off + len)))
			return ext_err(fs, e, "cannot set the size of inode %u", ino);
		struct timespec ts = now();
		ext_set_time(fs, &in, EXT_MTIME, &ts);
		ext_set_time(fs, &in, EXT_CTIME, &ts);
		return ext_write_inode(fs, ino, &in);
	}
	if ((e = ext2fs_file_open(fs->fs, ino, EXT2_FILE_WRITE, &f)))
		return ext_err(fs, e, "cannot open inode %u for writing", ino);
	e = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
	while (!e && len) {
		unsigned int n = 0, chunk = len > (1u << 30) ? (1u << 30) : (unsigned int)len;
		e = ext2fs_file_write(f, buf, chunk, &n);
		if (!e && n == 0)
			e = EXT2_ET_SHORT_WRITE;
		buf = (const char *)buf + n;
		len -= n;
	}
	if (!e) {
		/* The file grows to the end of what was written. */
		__u64 end = off;
		uint64_t size = EXT2_I_SIZE(ext2fs_file_get_inode(f));
		ext2fs_file_llseek(f, 0, EXT2_SEEK_CUR, &end);
		if (end > size)
			e = ext2fs_file_set_size2(f, end);
	}
	if (!e)
		e = ext2fs_file_flush(f);
	e2 = ext2fs_file_close(f);
	if (e || e2)
		return ext_err(fs, e ? e : e2, "cannot write inode %u", ino);
	if ((ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	struct timespec ts = now();
	ext_set_time(fs, &in, EXT_MTIME, &ts);
	ext_set_time(fs, &in, EXT_CTIME, &ts);
	return ext_write_inode(fs, ino, &in);
}

int extfs_alloc(struct extfs *fs, uint32_t ino, uint64_t off, uint64_t len)
{
	struct ext2_inode_large in;
	errcode_t e;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0 || (ret = regular(fs, ino, &in)) < 0)
		return ret;
	if (!len || !ext2fs_has_feature_extents(fs->fs->super) || !(in.i_flags & EXT4_EXTENTS_FL))
		return 0;
	blk64_t bs = fs->fs->blocksize, first = off / bs, last = (off + len + bs - 1) / bs;
	/* Near a full filesystem, leave allocation to the writes: ext2fs_fallocate running out
	 * of space midway leaves blocks counted that no extent holds. */
	if (ext2fs_free_blocks_count(fs->fs->super) < (last - first) * 2 + 256)
		return 0;
	/* No inode passed: libext2fs reads it and writes it back with the new block count. */
	e = ext2fs_fallocate(fs->fs, EXT2_FALLOCATE_FORCE_INIT | EXT2_FALLOCATE_INIT_BEYOND_EOF,
			     ino, NULL, ~0ULL, first, last - first);
	ext_map_forget(fs);
	if (e) {
		/* What was allocated before the failure lies past the file's end: give it back,
		 * so the filesystem stays consistent. */
		ret = ext_err(fs, e, "cannot allocate blocks for inode %u", ino);
		ext2fs_punch(fs->fs, ino, NULL, NULL, (EXT2_I_SIZE(&in) + bs - 1) / bs, ~0ULL);
		ext_map_forget(fs);
		return ret;
	}
	return 0;
}

int extfs_truncate(struct extfs *fs, uint32_t ino, uint64_t size)
{
	struct ext2_inode_large in;
	ext2_file_t f;
	errcode_t e, e2;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0 || (ret = regular(fs, ino, &in)) < 0)
		return ret;
	if ((e = ext2fs_file_open(fs->fs, ino, EXT2_FILE_WRITE, &f)))
		return ext_err(fs, e, "cannot open inode %u for writing", ino);
	e = ext2fs_file_set_size2(f, size);
	e2 = ext2fs_file_close(f);
	if (e || e2)
		return ext_err(fs, e ? e : e2, "cannot resize inode %u", ino);
	if ((ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	struct timespec ts = now();
	ext_set_time(fs, &in, EXT_MTIME, &ts);
	ext_set_time(fs, &in, EXT_CTIME, &ts);
	return ext_write_inode(fs, ino, &in);
}

int extfs_chmod(struct extfs *fs, uint32_t ino, uint32_t mode)
{
	struct ext2_inode_large in;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0 || (ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	in.i_mode = (__u16)((in.i_mode & S_IFMT) | (mode & 07777));
	touch_ctime(fs, &in);
	return ext_write_inode(fs, ino, &in);
}

int extfs_chown(struct extfs *fs, uint32_t ino, uint32_t uid, uint32_t gid)
{
	struct ext2_inode_large in;
	int ret;

	if ((ret = ext_check_rw(fs)) < 0 || (ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	if (uid != (uint32_t)-1) {
		in.i_uid = (__u16)uid;
		ext2fs_set_i_uid_high(in, uid >> 16);
	}
	if (gid != (uint32_t)-1) {
		in.i_gid = (__u16)gid;
		ext2fs_set_i_gid_high(in, gid >> 16);
	}
	touch_ctime(fs, &in);
	return ext_write_inode(fs, ino, &in);
}

int extfs_utimens(struct extfs *fs, uint32_t ino, const struct timespec ts[2])
{
	struct ext2_inode_large in;
	struct timespec t = now();
	int ret;

	if ((ret = ext_check_rw(fs)) < 0 || (ret = ext_read_inode(fs, ino, &in)) < 0)
		return ret;
	for (int i = 0; i < 2; i++) {
		if (ts[i].tv_nsec == UTIME_OMIT)
			continue;
		ext_set_time(fs, &in, i ? EXT_MTIME : EXT_ATIME,
			     ts[i].tv_nsec == UTIME_NOW ? &t : &ts[i]);
	}
	ext_set_time(fs, &in, EXT_CTIME, &t);
	return ext_write_inode(fs, ino, &in);
}
