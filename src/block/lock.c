/*
 * Image locks as QEMU 7.2 takes them (block/file-posix.c), so that ligero, qemu-img, qemu-io and
 * a running QEMU see each other's claims on the same file.
 *
 * Each permission bit i has two lock bytes in the file: 100+i ("I use it") and 200+i ("I do not
 * let others use it"). Both are shared (F_RDLCK) open-file-description locks, so any number of
 * users can hold a byte; a conflict shows as another description holding a byte that a write-lock
 * probe (F_OFD_GETLK with F_WRLCK) would collide with. OFD locks belong to the open file
 * description, not the process: two open() calls in one process conflict like two processes, and
 * closing the fd drops them (a POSIX lock would be dropped by closing any fd of the file).
 *
 * Bookkeeping (what this bdev holds right now, zero when nothing):
 *   bs->lock_perm   bits whose byte 100+bit is locked (permissions we use)
 *   bs->lock_shared bits whose byte 200+bit is locked (permissions we do NOT share), the way
 *                   QEMU's locked_shared_perm counts them.
 */
#include "block/lock.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#define LOCK_PERM_BASE	 100
#define LOCK_SHARED_BASE 200
#define LOCK_NBITS	 4

static const char *const perm_names[LOCK_NBITS] = {
    "consistent read",
    "write",
    "write unchanged",
    "resize",
};

/* Lock (F_RDLCK) or unlock (F_UNLCK) one byte. Returns 0 or -errno. */
static int lock_byte(int fd, off_t off, short type)
{
	struct flock fl = {
	    .l_type = type,
	    .l_whence = SEEK_SET,
	    .l_start = off,
	    .l_len = 1,
	    .l_pid = 0, /* must be 0 for OFD locks */
	};

	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return -errno;
	return 0;
}

/* 1 if another open file description holds a lock on the byte, 0 if not, or -errno. */
static int byte_taken(int fd, off_t off)
{
	struct flock fl = {
	    .l_type = F_WRLCK,
	    .l_whence = SEEK_SET,
	    .l_start = off,
	    .l_len = 1,
	    .l_pid = 0,
	};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

static int lock_fail(struct bdev *bs, int err, off_t off)
{
	if (err == EAGAIN || err == EACCES)
		return err_set(
		    EAGAIN,
		    "%s: image is locked by another process (byte %lld); is a VM running "
		    "on it? (-U reads without locking)",
		    bs->filename, (long long)off);
	return err_sys(err, "%s: could not lock byte %lld", bs->filename, (long long)off);
}

/*
 * Lock every byte of perm (100+bit) and unshared (200+bit) with add; unlock every byte outside
 * them without. Every byte is set whatever the bookkeeping says (re-locking a byte this
 * description holds, or unlocking one it does not, is a no-op), so the result is right even when
 * bs->fd was replaced under us and its old locks went with the old description. The bookkeeping
 * follows each byte that was set, so it stays exact when we stop early.
 */
static int apply_bytes(struct bdev *bs, int perm, int unshared, bool add)
{
	int *held[2] = {&bs->lock_perm, &bs->lock_shared};
	const int want[2] = {perm, unshared};
	const off_t base[2] = {LOCK_PERM_BASE, LOCK_SHARED_BASE};

	for (int i = 0; i < LOCK_NBITS; i++) {
		int bit = 1 << i;
		for (int k = 0; k < 2; k++) {
			bool need = want[k] & bit;
			int ret;

			if (add && need) {
				ret = lock_byte(bs->fd, base[k] + i, F_RDLCK);
				if (ret < 0)
					return lock_fail(bs, -ret, base[k] + i);
				*held[k] |= bit;
			} else if (!add && !need) {
				ret = lock_byte(bs->fd, base[k] + i, F_UNLCK);
				if (ret < 0)
					return err_sys(-ret, "%s: could not unlock byte %lld",
						       bs->filename, (long long)(base[k] + i));
				*held[k] &= ~bit;
			}
		}
	}
	return 0;
}

/* Is anyone else in the way of using perm while not sharing unshared? */
static int check_conflicts(struct bdev *bs, int perm, int unshared)
{
	static const char hint[] = "is a VM running on it? (-U reads without locking)";

	for (int i = 0; i < LOCK_NBITS; i++) {
		if (!(perm & (1 << i)))
			continue;
		int r = byte_taken(bs->fd, LOCK_SHARED_BASE + i);
		if (r < 0)
			return err_sys(-r, "%s: could not test lock byte %d", bs->filename,
				       LOCK_SHARED_BASE + i);
		if (r)
			return err_set(
			    EAGAIN,
			    "%s: image is in use by another process (it does not share the "
			    "\"%s\" permission); %s",
			    bs->filename, perm_names[i], hint);
	}
	for (int i = 0; i < LOCK_NBITS; i++) {
		if (!(unshared & (1 << i)))
			continue;
		int r = byte_taken(bs->fd, LOCK_PERM_BASE + i);
		if (r < 0)
			return err_sys(-r, "%s: could not test lock byte %d", bs->filename,
				       LOCK_PERM_BASE + i);
		if (r)
			return err_set(
			    EAGAIN,
			    "%s: image is in use by another process (it holds the \"%s\" "
			    "permission); %s",
			    bs->filename, perm_names[i], hint);
	}
	return 0;
}

/*
 * Like QEMU: first add the new bytes to the old ones (so at no instant do we hold less than either
 * claim), then look for conflicts, then drop what only the old claim needed. On a conflict the old
 * claim is restored, so a failed upgrade leaves the bdev usable as it was.
 */
int bdev_lock(struct bdev *bs, int perm, int shared)
{
	int old_perm = bs->lock_perm, old_unshared = bs->lock_shared;
	int unshared = ~shared & LOCK_PERM_ALL;
	int ret;

	perm &= LOCK_PERM_ALL;
	ret = apply_bytes(bs, perm | old_perm, unshared | old_unshared, true);
	if (ret == 0)
		ret = check_conflicts(bs, perm, unshared);
	if (ret < 0) {
		/* Unlocking never conflicts; keep the failure's message, not a cleanup's. */
		for (int i = 0; i < LOCK_NBITS; i++) {
			int bit = 1 << i;
			if ((bs->lock_perm & bit) && !(old_perm & bit) &&
			    lock_byte(bs->fd, LOCK_PERM_BASE + i, F_UNLCK) == 0)
				bs->lock_perm &= ~bit;
			if ((bs->lock_shared & bit) && !(old_unshared & bit) &&
			    lock_byte(bs->fd, LOCK_SHARED_BASE + i, F_UNLCK) == 0)
				bs->lock_shared &= ~bit;
		}
		return ret;
	}
	return apply_bytes(bs, perm, unshared, false);
}

/* Every byte, whatever the bookkeeping says; no message is recorded, since this runs on cleanup
 * paths where the error that matters was recorded before (an fd already closed has no locks). */
void bdev_unlock(struct bdev *bs)
{
	for (int i = 0; i < LOCK_NBITS; i++) {
		lock_byte(bs->fd, LOCK_PERM_BASE + i, F_UNLCK);
		lock_byte(bs->fd, LOCK_SHARED_BASE + i, F_UNLCK);
	}
	bs->lock_perm = 0;
	bs->lock_shared = 0;
}
