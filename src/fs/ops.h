/* Path-level operations on a guest filesystem, shared by the CLI verbs and the FUSE mount. */
#ifndef LIGERO_FS_OPS_H
#define LIGERO_FS_OPS_H

#include <stdbool.h>
#include <stdint.h>

struct extfs;
struct gfs;

/* Copy the content of a regular guest file to a host fd (any filesystem ligero reads). */
int fs_cat(struct gfs *fs, const char *path, int fd);
/* Replace (or create, mode 0644 root-owned) a guest file with everything read from fd. An
 * existing file keeps its inode, owner and mode. */
int fs_write_from(struct extfs *fs, const char *path, int fd);
/* Create a directory; parents creates missing ones and accepts an existing directory. */
int fs_mkdir(struct extfs *fs, const char *path, uint32_t mode, bool parents);
/* Remove a file, or with recursive a whole tree; force ignores a missing path. */
int fs_rm(struct extfs *fs, const char *path, bool recursive, bool force);
/* Set permission bits, following a final symlink. */
int fs_chmod(struct extfs *fs, const char *path, uint32_t mode);
/* Set owner and group of path itself; (uint32_t)-1 keeps that id. */
int fs_chown(struct extfs *fs, const char *path, uint32_t uid, uint32_t gid);
/* A symbolic link path -> target. */
int fs_symlink(struct extfs *fs, const char *target, const char *path);
/* A hard link path -> existing. */
int fs_link(struct extfs *fs, const char *existing, const char *path);

#endif
