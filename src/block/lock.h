/*
 * Image locks compatible with QEMU's (block/file-posix.c): open file description (OFD) byte-range
 * locks on bytes 100+bit ("I use permission bit") and 200+bit ("I do not let others use it"), so
 * ligero, qemu-img, qemu-io and a running QEMU see each other's claims on an image.
 */
#ifndef LIGERO_BLOCK_LOCK_H
#define LIGERO_BLOCK_LOCK_H

struct bdev;

/* Permission bits, numbered as QEMU numbers them. */
enum {
	LOCK_PERM_CONSISTENT_READ = 1 << 0,
	LOCK_PERM_WRITE = 1 << 1,
	LOCK_PERM_WRITE_UNCHANGED = 1 << 2,
	LOCK_PERM_RESIZE = 1 << 3,
	LOCK_PERM_ALL = 0xf,
};

/* Take the locks for using `perm` while letting others use `shared`, on bs->fd. Fails with
 * -EAGAIN and a message naming the file and the permission if another process conflicts.
 * Can be called again on the same bdev to change the claim (e.g. read-only -> read-write). */
int bdev_lock(struct bdev *bs, int perm, int shared);

/* Drop every lock this bdev holds (closing the fd does that too). */
void bdev_unlock(struct bdev *bs);

#endif
