/* Recursive copies between a guest filesystem and the host, like virt-copy-out/-in: modes,
 * owners, times, symlinks, hard links, device nodes, xattrs and holes are kept. */
#ifndef LIGERO_FS_COPY_H
#define LIGERO_FS_COPY_H

struct extfs;
struct gfs;

/* Copy guest path (file or directory tree) into the existing host directory hostdir, as
 * hostdir/<basename>; "/" copies the root's contents. Existing files are replaced. */
int fs_copy_out(struct gfs *fs, const char *path, const char *hostdir);
/* Copy a host file or tree into the guest directory dir as dir/<basename>; a host path ending in
 * "/." copies the directory's contents. Directories merge, files are replaced. */
int fs_copy_in(struct extfs *fs, const char *hostpath, const char *dir);

#endif
