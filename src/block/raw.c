/* The raw driver: guest offset = file offset. Holes read as zeroes. */
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int raw_pread_full(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	return bdev_file_pread(bs, buf, len, off);
}

static int raw_pwrite_full(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	return bdev_file_pwrite(bs, buf, len, off);
}

static int raw_open(struct bdev *bs)
{
	struct stat st;

	if (fstat(bs->fd, &st) < 0)
		return err_sys(errno, "%s: could not stat", bs->filename);
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(bs->fd, 0, SEEK_END);
		if (end < 0)
			return err_sys(errno, "%s: could not find the device size", bs->filename);
		bs->size = (uint64_t)end;
	} else {
		/* Like QEMU, a file's size counts in whole 512-byte sectors; the tail reads as
		 * zeroes until written. */
		bs->size = ((uint64_t)st.st_size + 511) & ~511ULL;
	}
	return 0;
}

static int raw_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	return raw_pread_full(bs, off, buf, len);
}

/* A file whose format was guessed must keep looking raw: a guest that writes a qcow2 header into
 * its first sector must not turn its disk into an image that names host files as backing. */
static int raw_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	if ((bs->flags & BDEV_O_PROBED) && off < 512) {
		uint8_t first[512];
		int ret = raw_pread_full(bs, 0, first, sizeof(first));
		if (ret < 0)
			return ret;
		size_t n = len < 512 - off ? len : 512 - off;
		memcpy(first + off, buf, n);
		if (bdev_probe_buf(first, sizeof(first)) != &bdev_raw_driver)
			return err_set(EPERM,
				       "%s: refusing to write an image header into a probed raw "
				       "file (open it with an explicit format: -f raw)",
				       bs->filename);
	}
	return raw_pwrite_full(bs, off, buf, len);
}

static int raw_readv(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	return bdev_file_preadv(bs, iov, n, len, off);
}

static int raw_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	if ((bs->flags & BDEV_O_PROBED) && off < 512) { /* raw_write's header check, per piece */
		int ret = 0;
		for (int i = 0; i < n && ret == 0; off += iov[i++].iov_len)
			ret = raw_write(bs, off, iov[i].iov_base, iov[i].iov_len);
		return ret;
	}
	return bdev_file_pwritev(bs, iov, n, len, off);
}

static int raw_flush(struct bdev *bs)
{
	if (bs->flags & BDEV_O_UNSAFE)
		return 0;
	if (fdatasync(bs->fd) < 0)
		return err_sys(errno, "%s: flush failed", bs->filename);
	return 0;
}

static int raw_punch(struct bdev *bs, uint64_t off, uint64_t len)
{
	if (fallocate(bs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ==
	    0)
		return 0;
	return -errno;
}

static int raw_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	int ret = raw_punch(bs, off, len);
	/* Discard is a hint: a file system without hole punching simply keeps the data. */
	return (ret == -EOPNOTSUPP || ret == -ENOSYS)
		   ? 0
		   : (ret < 0 ? err_sys(-ret, "%s: discard failed at offset %llu", bs->filename,
					(unsigned long long)off)
			      : 0);
}

static int raw_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	if (fallocate(bs->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ==
	    0)
		return 0;
	if ((flags & BDEV_ZERO_MAY_UNMAP) && raw_punch(bs, off, len) == 0)
		return 0;
	if (flags & BDEV_ZERO_NO_FALLBACK)
		return err_set(ENOTSUP, "%s: zeroing offset %llu would mean writing zeroes",
			       bs->filename, (unsigned long long)off);
	static const uint8_t zero[65536];
	while (len) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		int ret = raw_pwrite_full(bs, off, zero, n);
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

static int raw_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	off_t data = lseek(bs->fd, (off_t)off, SEEK_DATA);
	uint64_t end = off + len;

	ext->flags = BDEV_ST_ALLOCATED | BDEV_ST_OFFSET;
	ext->host_offset = off;
	if (data < 0 && errno == ENXIO) { /* a hole up to EOF */
		ext->flags |= BDEV_ST_ZERO;
		ext->length = len;
		return 0;
	}
	if (data < 0) { /* no SEEK_DATA: everything is data */
		ext->flags |= BDEV_ST_DATA;
		ext->length = len;
		return 0;
	}
	if ((uint64_t)data > off) {
		ext->flags |= BDEV_ST_ZERO;
		ext->length = ((uint64_t)data < end ? (uint64_t)data : end) - off;
		return 0;
	}
	off_t hole = lseek(bs->fd, (off_t)off, SEEK_HOLE);
	ext->flags |= BDEV_ST_DATA;
	if (hole < 0 || (uint64_t)hole <= off)
		ext->length = len;
	else
		ext->length = ((uint64_t)hole < end ? (uint64_t)hole : end) - off;
	return 0;
}

static int raw_truncate(struct bdev *bs, uint64_t size)
{
	if (ftruncate(bs->fd, (off_t)size) < 0)
		return err_sys(errno, "%s: could not resize to %llu bytes", bs->filename,
			       (unsigned long long)size);
	bs->size = size;
	return 0;
}

static int raw_create(const char *path, const struct bdev_create_opts *opts)
{
	if (opts->backing_file)
		return err_set(EINVAL, "%s: format raw has no backing file (use -f qcow2)", path);
	int fd =
	    open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (opts->force ? O_TRUNC : O_EXCL), 0644);
	if (fd < 0)
		return err_sys(errno, "%s: could not create", path);
	int ret = 0;
	if (ftruncate(fd, (off_t)opts->size) < 0)
		ret = err_sys(errno, "%s: could not set size", path);
	else if (opts->prealloc == BDEV_PREALLOC_FALLOC || opts->prealloc == BDEV_PREALLOC_FULL) {
		int e = posix_fallocate(fd, 0, (off_t)opts->size);
		if (e)
			ret = err_sys(e, "%s: could not preallocate", path);
	}
	close(fd);
	if (ret < 0)
		unlink(path);
	return ret;
}

const struct bdev_driver bdev_raw_driver = {
    .name = "raw",
    .probe = NULL,
    .open = raw_open,
    .read = raw_read,
    .write = raw_write,
    .readv = raw_readv,
    .writev = raw_writev,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .block_status = raw_block_status,
    .truncate = raw_truncate,
    .create = raw_create,
};
