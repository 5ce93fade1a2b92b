/* A FUSE (libfuse3) mount of a guest filesystem, like guestmount. */
#ifndef LIGERO_FS_FUSE_H
#define LIGERO_FS_FUSE_H

#include <stdbool.h>

struct extfs;
struct fs_fuse;
struct gfs;

/* Mount gfs on mountpoint; writes go to fs, its ext filesystem (read-only when ro or when fs is
 * NULL, as for xfs). fsname is what mount tables show as the source. The filesystems stay owned
 * by the caller and must outlive the mount. */
int fs_fuse_mount(struct fs_fuse **out, struct gfs *gfs, struct extfs *fs, const char *mountpoint,
		  bool ro, const char *fsname);
/* Serve requests until the mount is unmounted or SIGINT/SIGTERM/SIGHUP arrives. */
int fs_fuse_loop(struct fs_fuse *ff);
/* Unmount (if still mounted) and free. */
void fs_fuse_destroy(struct fs_fuse *ff);

#endif
