/* Free space of an ext2/3/4 filesystem, for sparsify. */
#ifndef LIGERO_FS_EXT_FREE_H
#define LIGERO_FS_EXT_FREE_H

#include <stdint.h>

struct extfs;
struct range_list;

/* Add to out every byte range of the filesystem's window that holds no data or metadata: the
 * blocks its bitmaps mark free, and the part of the window past the filesystem's last block.
 * Offsets are disk offsets (base = where the window starts). Refuses (-EBUSY) a filesystem
 * whose bitmaps may be stale (journal needs recovery, not cleanly unmounted, errors). */
int extfs_free_ranges(struct extfs *fs, uint64_t base, uint64_t window, struct range_list *out);

#endif
