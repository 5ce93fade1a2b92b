#include "fs/ext_free.h"
#include "fs/ext_priv.h"
#include "util/error.h"
#include "util/ranges.h"

#include <errno.h>

int extfs_free_ranges(struct extfs *fs, uint64_t base, uint64_t window, struct range_list *out)
{
	ext2_filsys e = fs->fs;
	uint64_t bsize = e->blocksize;
	blk64_t first = e->super->s_first_data_block, end = ext2fs_blocks_count(e->super);
	errcode_t err;

	if (extfs_warning(fs))
		return err_set(EBUSY, "%s: free space not trusted: %s", fs->name,
			       extfs_warning(fs));
	if (ext2fs_has_feature_journal_needs_recovery(e->super) ||
	    !(e->super->s_state & EXT2_VALID_FS) || (e->super->s_state & EXT2_ERROR_FS))
		return err_set(EBUSY,
			       "%s: filesystem was not cleanly unmounted; its free-block "
			       "bitmaps may be stale",
			       fs->name);
	err = ext2fs_read_block_bitmap(e);
	if (err)
		return ext_err(fs, err, "reading block bitmaps");
	/* Runs of clear bits, found a word at a time by libext2fs. */
	blk64_t b = first;
	while (b < end) {
		blk64_t zero, set;
		if (ext2fs_find_first_zero_block_bitmap2(e->block_map, b, end - 1, &zero))
			break;
		if (ext2fs_find_first_set_block_bitmap2(e->block_map, zero, end - 1, &set))
			set = end;
		if (ranges_add(out, base + zero * bsize, (set - zero) * bsize) < 0)
			return err_set(ENOMEM, "%s: out of memory", fs->name);
		b = set;
	}
	uint64_t fs_bytes = (uint64_t)end * bsize;
	if (fs_bytes < window && ranges_add(out, base + fs_bytes, window - fs_bytes) < 0)
		return err_set(ENOMEM, "%s: out of memory", fs->name);
	return 0;
}
