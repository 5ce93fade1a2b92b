/* Drivers' file I/O: EINTR, short transfers and the O_DIRECT choice, handled in one place. */
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* The descriptor for a transfer whose buffer addresses, lengths and offset OR together to
 * bits: the O_DIRECT twin dfd when there is one and all are 512-byte aligned, else fd (Linux
 * keeps the two coherent). */
static int pick_fd(int fd, int dfd, uintptr_t bits)
{
	return dfd >= 0 && !(bits & 511) ? dfd : fd;
}

/* Record why writing `what` at off failed; errnum 0 is a write that made no progress, which
 * sets no errno (a message ending in "Success" would hide what happened). */
static int write_failed(const char *file, const char *what, uint64_t off, int errnum)
{
	if (!errnum)
		return err_set(EIO, "%s: could not write %s at offset %llu: short write", file,
			       what, (unsigned long long)off);
	return err_sys(errnum, "%s: could not write %s at offset %llu", file, what,
		       (unsigned long long)off);
}

/* pwrite until all len bytes are in: again after EINTR, on from where a short write stopped.
 * dfd (the O_DIRECT twin, or -1) takes them while buffer, length and offset stay 512-byte
 * aligned; a short direct write that breaks the alignment sends the rest through fd. */
static int pwrite_all(int fd, int dfd, const char *file, const void *buf, size_t len, uint64_t off,
		      const char *what)
{
	int cur = pick_fd(fd, dfd, (uintptr_t)buf | len | off);
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(cur, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return write_failed(file, what, off, n < 0 ? errno : 0);
		if (cur == dfd && (n & 511))
			cur = fd;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int bdev_file_pread(struct bdev *bs, void *buf, size_t len, uint64_t off)
{
	int fd = pick_fd(bs->fd, bs->dfd, (uintptr_t)buf | len | off);
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(errno, "%s: read error at offset %llu", bs->filename,
				       (unsigned long long)off);
		if (n == 0) { /* past EOF: zeroes, as QEMU reads them */
			memset(p, 0, len);
			return 0;
		}
		if (fd == bs->dfd && (n & 511))
			fd = bs->fd; /* a short direct read left us unaligned */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int bdev_file_pwrite(struct bdev *bs, const void *buf, size_t len, uint64_t off)
{
	return pwrite_all(bs->fd, bs->dfd, bs->filename, buf, len, off, "data");
}

int bdev_file_pwrite_meta(struct bdev *bs, const void *buf, size_t len, uint64_t off,
			  const char *what)
{
	return pwrite_all(bs->fd, bs->dfd, bs->filename, buf, len, off, what);
}

int bdev_fd_pwrite(int fd, const char *file, const void *buf, size_t len, uint64_t off,
		   const char *what)
{
	return pwrite_all(fd, -1, file, buf, len, off, what);
}

static uintptr_t iov_bits(const struct iovec *iov, int n, uint64_t off)
{
	uintptr_t bits = (uintptr_t)off;

	for (int i = 0; i < n; i++)
		bits |= (uintptr_t)iov[i].iov_base | iov[i].iov_len;
	return bits;
}

/* Step past done bytes of the iovecs: *first and *skip say where the rest starts. */
static void iov_advance(const struct iovec *iov, int n, int *first, size_t *skip, size_t done)
{
	done += *skip;
	while (*first < n && done >= iov[*first].iov_len) {
		done -= iov[*first].iov_len;
		(*first)++;
	}
	*skip = done;
}

/* preadv/pwritev until len bytes moved; a read that meets EOF zero-fills the rest, a write that
 * makes no progress fails as pwrite_all's does. */
static int file_rwv(struct bdev *bs, const struct iovec *iov, int n, size_t len, uint64_t off,
		    bool write)
{
	int fd = pick_fd(bs->fd, bs->dfd, iov_bits(iov, n, off)), first = 0;
	size_t skip = 0;
	struct iovec part[BDEV_IOV_MAX];

	if (n > BDEV_IOV_MAX)
		return err_set(EINVAL, "%s: %d pieces in one request", bs->filename, n);
	while (len) {
		int m = n - first;
		ssize_t r;
		memcpy(part, iov + first, (size_t)m * sizeof(*part));
		part[0].iov_base = (uint8_t *)part[0].iov_base + skip;
		part[0].iov_len -= skip;
		r = write ? pwritev(fd, part, m, (off_t)off) : preadv(fd, part, m, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (write && r <= 0)
			return write_failed(bs->filename, "data", off, r < 0 ? errno : 0);
		if (r < 0)
			return err_sys(errno, "%s: read error at offset %llu", bs->filename,
				       (unsigned long long)off);
		if (r == 0) { /* past EOF: zeroes, as QEMU reads them */
			for (int i = 0; i < m; i++)
				memset(part[i].iov_base, 0, part[i].iov_len);
			return 0;
		}
		if (fd == bs->dfd && (r & 511))
			fd = bs->fd;
		iov_advance(iov, n, &first, &skip, (size_t)r);
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

int bdev_file_preadv(struct bdev *bs, const struct iovec *iov, int n, size_t len, uint64_t off)
{
	return file_rwv(bs, iov, n, len, off, false);
}

int bdev_file_pwritev(struct bdev *bs, const struct iovec *iov, int n, size_t len, uint64_t off)
{
	return file_rwv(bs, iov, n, len, off, true);
}
