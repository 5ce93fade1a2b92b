/* Path-level operations built on the inode-level ext calls (reading: on gfs). */
#include "fs/ops.h"
#include "fs/ext.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

int fs_cat(struct gfs *fs, const char *path, int fd)
{
	struct gfs_stat st;
	uint64_t ino;
	int ret;

	if ((ret = gfs_lookup(fs, path, true, &ino)) < 0 || (ret = gfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (S_ISDIR(st.mode))
		return err_set(EISDIR, "%s: %s: is a directory", gfs_name(fs), path);
	if (!S_ISREG(st.mode))
		return err_set(EINVAL, "%s: %s: not a regular file", gfs_name(fs), path);
	char *buf = malloc(CHUNK);
	if (!buf)
		return err_set(ENOMEM, "out of memory");
	for (uint64_t off = 0; ret == 0 && off < st.size;) {
		size_t got = 0;
		ret = gfs_pread(fs, ino, off, buf, CHUNK, &got);
		if (ret == 0 && got == 0)
			break;
		for (size_t done = 0; ret == 0 && done < got;) {
			ssize_t n = write(fd, buf + done, got - done);
			if (n < 0 && errno != EINTR)
				ret = err_sys(errno, "write error");
			done += n > 0 ? (size_t)n : 0;
		}
		off += got;
	}
	free(buf);
	return ret;
}

static int create_file(struct extfs *fs, const char *path, uint32_t *ino)
{
	char base[256];
	uint32_t dir;
	int ret = extfs_lookup_parent(fs, path, &dir, base);

	if (ret < 0)
		return ret;
	ret = extfs_lookup_at(fs, dir, base, ino);
	if (ret == -ENOENT)
		return extfs_mknod(fs, dir, base, S_IFREG | 0644, 0, 0, 0, ino);
	if (ret < 0)
		return ret;
	/* An existing name: follow it if it is a symlink, like a shell redirection does. */
	struct extfs_stat st;
	if ((ret = extfs_lookup(fs, path, true, ino)) < 0 || (ret = extfs_stat(fs, *ino, &st)) < 0)
		return ret;
	if (!S_ISREG(st.mode))
		return err_set(S_ISDIR(st.mode) ? EISDIR : EINVAL, "%s: %s: not a regular file",
			       extfs_name(fs), path);
	return extfs_truncate(fs, *ino, 0);
}

int fs_write_from(struct extfs *fs, const char *path, int fd)
{
	uint32_t ino;
	uint64_t off = 0;
	int ret = create_file(fs, path, &ino);
	char *buf = ret == 0 ? malloc(CHUNK) : NULL;

	if (ret < 0)
		return ret;
	if (!buf)
		return err_set(ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = err_sys(errno, "read error on input");
			break;
		}
		if (n == 0)
			break;
		if ((ret = extfs_pwrite(fs, ino, off, buf, (size_t)n)) < 0)
			break;
		off += (uint64_t)n;
	}
	free(buf);
	return ret;
}

int fs_mkdir(struct extfs *fs, const char *path, uint32_t mode, bool parents)
{
	char base[256];
	uint32_t dir, ino;
	struct extfs_stat st;
	int ret;

	if (parents && extfs_lookup(fs, path, true, &ino) == 0) {
		if ((ret = extfs_stat(fs, ino, &st)) < 0)
			return ret;
		return S_ISDIR(st.mode) ? 0
					: err_set(EEXIST,
						  "%s: %s: exists and is not a "
						  "directory",
						  extfs_name(fs), path);
	}
	ret = extfs_lookup_parent(fs, path, &dir, base);
	if (ret == -ENOENT && parents) {
		char *parent = strdup(path);
		if (!parent)
			return err_set(ENOMEM, "out of memory");
		char *slash = parent + strlen(parent);
		while (slash > parent + 1 && slash[-1] == '/')
			*--slash = 0;
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			ret = fs_mkdir(fs, parent, 0755, true);
		}
		free(parent);
		if (ret < 0)
			return ret;
		ret = extfs_lookup_parent(fs, path, &dir, base);
	}
	if (ret < 0)
		return ret;
	ret = extfs_mkdir(fs, dir, base, mode, 0, 0, &ino);
	if (ret == -EEXIST)
		return err_set(EEXIST, "%s: %s: already exists", extfs_name(fs), path);
	return ret;
}

struct rm_ctx {
	struct extfs *fs;
	uint32_t dir;
	char **names;
	size_t n, cap;
};

static int collect(const char *name, uint32_t ino, void *priv)
{
	struct rm_ctx *c = priv;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 32;
		char **v = realloc(c->names, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		c->names = v;
		c->cap = cap;
	}
	if (!(c->names[c->n] = strdup(name)))
		return err_set(ENOMEM, "out of memory");
	c->n++;
	return 0;
}

/* Remove dir/name and, for a directory, everything below it (names are collected first:
 * removing entries while iterating the same directory would skip some). */
static int rm_tree(struct extfs *fs, uint32_t dir, const char *name)
{
	struct extfs_stat st;
	uint32_t ino;
	int ret = extfs_lookup_at(fs, dir, name, &ino);

	if (ret < 0 || (ret = extfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (!S_ISDIR(st.mode))
		return extfs_unlink(fs, dir, name);
	struct rm_ctx c = {.fs = fs, .dir = ino};
	ret = extfs_readdir(fs, ino, collect, &c);
	for (size_t i = 0; i < c.n; i++) {
		if (ret == 0)
			ret = rm_tree(fs, ino, c.names[i]);
		free(c.names[i]);
	}
	free(c.names);
	return ret < 0 ? ret : extfs_rmdir(fs, dir, name);
}

int fs_rm(struct extfs *fs, const char *path, bool recursive, bool force)
{
	char base[256];
	struct extfs_stat st;
	uint32_t dir, ino;
	int ret = extfs_lookup_parent(fs, path, &dir, base);

	if (ret == -ENOENT && force)
		return 0;
	if (ret < 0)
		return ret;
	ret = extfs_lookup_at(fs, dir, base, &ino);
	if (ret == -ENOENT)
		return force ? 0
			     : err_set(ENOENT, "%s: %s: no such file or directory", extfs_name(fs),
				       path);
	if (ret < 0 || (ret = extfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (S_ISDIR(st.mode) && !recursive)
		return err_set(EISDIR, "%s: %s: is a directory (use rm -r)", extfs_name(fs), path);
	return recursive ? rm_tree(fs, dir, base) : extfs_unlink(fs, dir, base);
}

int fs_chmod(struct extfs *fs, const char *path, uint32_t mode)
{
	uint32_t ino;
	int ret = extfs_lookup(fs, path, true, &ino);

	return ret < 0 ? ret : extfs_chmod(fs, ino, mode);
}

int fs_chown(struct extfs *fs, const char *path, uint32_t uid, uint32_t gid)
{
	uint32_t ino;
	int ret = extfs_lookup(fs, path, false, &ino);

	return ret < 0 ? ret : extfs_chown(fs, ino, uid, gid);
}

int fs_symlink(struct extfs *fs, const char *target, const char *path)
{
	char base[256];
	uint32_t dir, ino;
	int ret = extfs_lookup_parent(fs, path, &dir, base);

	return ret < 0 ? ret : extfs_symlink(fs, dir, base, target, 0, 0, &ino);
}

int fs_link(struct extfs *fs, const char *existing, const char *path)
{
	char base[256];
	uint32_t dir, ino;
	int ret = extfs_lookup(fs, existing, false, &ino);

	if (ret < 0 || (ret = extfs_lookup_parent(fs, path, &dir, base)) < 0)
		return ret;
	return extfs_link(fs, dir, base, ino);
}
