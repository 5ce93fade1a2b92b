#include "util/iov.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum iov_op { TO_BUF, FROM_BUF, ZERO };

/* Walk the bytes [off, off+len) of an iovec array, doing op on each piece. */
static size_t iov_walk(const struct iovec *iov, unsigned n, size_t off, uint8_t *buf, size_t len,
		       enum iov_op op)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len - done)
			l = len - done;
		uint8_t *v = (uint8_t *)iov[i].iov_base + off;
		if (op == TO_BUF)
			memcpy(buf + done, v, l);
		else if (op == FROM_BUF)
			memcpy(v, buf + done, l);
		else
			memset(v, 0, l);
		done += l;
		off = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len)
{
	return iov_walk(iov, n, off, buf, len, TO_BUF);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len)
{
	return iov_walk(iov, n, off, (uint8_t *)buf, len, FROM_BUF);
}

size_t iov_memset0(const struct iovec *iov, unsigned n, size_t off, size_t len)
{
	return iov_walk(iov, n, off, NULL, len, ZERO);
}

int iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out)
{
	int m = 0;

	for (unsigned i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len)
			l = len;
		out[m].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[m++].iov_len = l;
		off = 0;
		len -= l;
	}
	return len ? -1 : m;
}
