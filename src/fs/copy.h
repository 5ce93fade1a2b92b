/* Recursive copies between a guest filesystem and the host, like virt-copy-out/-in: modes,
 * owners, times, symlinks, hard links, device nodes, xattrs and holes are kept. */
#ifndef LIGERO_FS_COPY_H
#define LIGERO_FS_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct extfs;
struct gfs;

/* Copy guest path (file or directory tree) into the existing host directory hostdir, as
 * hostdir/<basename>; "/" copies the root's contents. Existing files are replaced. */
int fs_copy_out(struct gfs *fs, const char *path, const char *hostdir);
/* Copy a host file or tree into the guest directory dir as dir/<basename>; a host path ending in
 * "/." copies the directory's contents. Directories merge, files are replaced. */
int fs_copy_in(struct extfs *fs, const char *hostpath, const char *dir);

/*
 * One node written into a guest filesystem, whatever its source (a host file, an archive entry,
 * another guest filesystem): copy-in and `ligero migrate` both write through these.
 */

/* A regular file's content: blocks of data in increasing offset order; what no block covers is
 * a hole. next() gives the next block (*len 0 at the end); *buf stays valid until the next
 * call. */
struct fs_content {
	int (*next)(void *priv, uint64_t *off, const void **buf, size_t *len);
	void *priv;
};

/* Called for each extended attribute of a node ("user.x", "system.posix_acl_access"). */
typedef int (*fs_xattr_fn)(const char *name, const void *val, size_t len, void *priv);

struct fs_node {
	uint32_t mode; /* S_IF* type and permission bits */
	uint32_t uid, gid;
	uint64_t size; /* regular files */
	uint64_t rdev; /* device nodes: makedev() value */
	struct timespec atime, mtime;
	const char *link;	   /* symbolic links: the target */
	struct fs_content content; /* regular files (next NULL: empty) */
	/* The node's extended attributes (NULL: none): calls cb for each. */
	int (*xattrs)(void *priv, fs_xattr_fn cb, void *cbpriv);
	void *xpriv;
};

/* Create dir/name, which must not exist, as n describes (a directory, symbolic link, device,
 * fifo, socket, or a regular file with its content, holes kept) owned by n's uid and gid.
 * Permission bits, attributes and times are fs_node_attrs' (a directory gets them after its
 * children). */
int fs_node_create(struct extfs *fs, uint32_t dir, const char *name, const struct fs_node *n,
		   uint32_t *ino);
/* Give ino n's owner, permission bits and extended attributes (exact: also remove those n does
 * not have), then, with times, its access and modification times. */
int fs_node_attrs(struct extfs *fs, uint32_t ino, const struct fs_node *n, bool exact, bool times);

/* A host file as a node (lstat), its content read from the file with its holes (SEEK_DATA) and
 * its extended attributes (llistxattr). buf is the caller's, FS_HOST_CHUNK bytes. */
#define FS_HOST_CHUNK (1u << 20)
struct fs_host_node {
	struct fs_node node;
	const char *path;
	int fd;
	char *buf;
	uint64_t off, hole; /* content position, and the end of the current data run */
	char link[4096];
	uint64_t dev, ino, nlink; /* for hard links */
};
int fs_host_node_open(struct fs_host_node *h, const char *path, char *buf);
void fs_host_node_close(struct fs_host_node *h);

#endif
