/* Byte ranges of iovec arrays: copies to and from flat buffers, slices, zero fills. */
#ifndef LIGERO_UTIL_IOV_H
#define LIGERO_UTIL_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Copy between a buffer and the iovecs iov[0..n), starting `off` bytes in. Returns the bytes
 * copied (short when the iovecs end first). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len);
/* Zero the bytes [off, off+len) of the iovecs; returns the bytes zeroed. */
size_t iov_memset0(const struct iovec *iov, unsigned n, size_t off, size_t len);
/* Describe the bytes [off, off+len) of iov[0..n) in out[] (room for n entries, never more
 * used): returns the count, or -1 when the iovecs hold fewer than off + len bytes. */
int iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out);

#endif
