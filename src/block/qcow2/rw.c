/*
 * The guest read/write data path: each request is mapped to host clusters under the driver
 * lock, and its data moves without it (the rules are in lock.c).
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads with the lock kept all along (down to do_read), for the old content around a
 * copy-on-write. Here: the backing file's bytes for [off, off+n), zeroes past its end. */
static int read_backing(struct qcow2 *s, uint64_t off, uint8_t *buf, size_t n)
{
	struct bdev *b = s->bs->backing;
	size_t in = 0;

	if (b && off < b->size) {
		in = b->size - off < n ? (size_t)(b->size - off) : n;
		int ret = bdev_read(b, off, buf, in);
		if (ret < 0)
			return ret;
	}
	memset(buf + in, 0, n - in);
	return 0;
}

/* Read [off, off+n) within one cluster. */
static int read_in_cluster(struct qcow2 *s, uint64_t off, uint8_t *buf, size_t n)
{
	uint64_t e;
	int ret = qcow2_get_entry(s, off, &e);

	if (ret < 0)
		return ret;
	switch (qcow2_cluster_type(e)) {
	case QCOW2_CL_UNALLOC:
		return read_backing(s, off, buf, n);
	case QCOW2_CL_ZERO_PLAIN:
	case QCOW2_CL_ZERO_ALLOC:
		memset(buf, 0, n);
		return 0;
	case QCOW2_CL_COMPRESSED:
		ret = qcow2_decompress_cluster(s, e);
		if (ret == 0)
			memcpy(buf, s->zcache + (off & (s->cluster_size - 1)), n);
		return ret;
	case QCOW2_CL_NORMAL:
		ret = qcow2_check_host_offset(s, e, off);
		if (ret < 0)
			return ret;
		return bdev_file_pread(s->bs, buf, n,
				       (e & QCOW2_L2E_OFFSET_MASK) + (off & (s->cluster_size - 1)));
	}
	return 0;
}

/* Read [off, off+len) cluster by cluster. */
static int do_read(struct qcow2 *s, uint64_t off, uint8_t *buf, size_t len)
{
	while (len) {
		size_t n = s->cluster_size - (off & (s->cluster_size - 1));
		if (n > len)
			n = len;
		int ret = read_in_cluster(s, off, buf, n);
		if (ret < 0)
			return ret;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* The L2 entry for a write at off, its table checked to be one first. */
static int write_entry(struct qcow2 *s, uint64_t off, uint64_t *e)
{
	uint64_t i1 = qcow2_l1_index(s, off);
	uint64_t l2off = i1 < s->l1_size ? s->l1[i1] & QCOW2_L1E_OFFSET_MASK : 0;
	int ret = l2off ? qcow2_meta_check(s, l2off, s->cluster_size, QCOW2_META_L2) : 0;

	return ret < 0 ? ret : qcow2_get_entry(s, off, e);
}

/* A plain cluster this image owns alone: written in place. Checked to be data, not metadata. */
static bool owned(uint64_t e)
{
	return qcow2_cluster_type(e) == QCOW2_CL_NORMAL && (e & QCOW2_OFLAG_COPIED);
}

static int check_data_cluster(struct qcow2 *s, uint64_t e, uint64_t off)
{
	int ret = qcow2_check_host_offset(s, e, off);

	return ret < 0 ? ret
		       : qcow2_meta_check(s, e & QCOW2_L2E_OFFSET_MASK, s->cluster_size,
					  QCOW2_META_NONE);
}

/* Write [off, off+n) inside one cluster: in place in a cluster this image owns, else into a new
 * one (copy-on-write of what the cluster read as). tmp is a cluster-sized buffer. */
static int write_in_cluster(struct qcow2 *s, uint64_t off, const uint8_t *buf, size_t n,
			    uint8_t *tmp, struct qcow2_free_list *fl)
{
	uint64_t cs = s->cluster_size, cstart = off & ~(cs - 1), in = off - cstart, e;
	int ret = write_entry(s, off, &e); /* checked before any data moves */

	if (ret < 0)
		return ret;
	enum qcow2_ctype t = qcow2_cluster_type(e);
	if ((t == QCOW2_CL_NORMAL || t == QCOW2_CL_ZERO_ALLOC) && (e & QCOW2_OFLAG_COPIED)) {
		uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
		ret = check_data_cluster(s, e, off);
		if (ret < 0)
			return ret;
		if (t == QCOW2_CL_NORMAL)
			return bdev_file_pwrite(s->bs, buf, n, host + in);
		/* A preallocated zero cluster: fill it and drop the zero flag. */
		memset(tmp, 0, cs);
		memcpy(tmp + in, buf, n);
		ret = bdev_file_pwrite(s->bs, tmp, cs, host);
		return ret < 0 ? ret : qcow2_set_entry(s, off, host | QCOW2_OFLAG_COPIED);
	}
	/* Copy-on-write into a new cluster: old content (backing, compressed, zero, shared)
	 * around the written bytes, then the bytes. */
	const uint8_t *src = buf;
	if (n != cs) {
		uint64_t clen = cstart + cs > s->bs->size ? s->bs->size - cstart : cs;
		memset(tmp, 0, cs);
		ret = do_read(s, cstart, tmp, clen);
		if (ret < 0)
			return ret;
		memcpy(tmp + in, buf, n);
		src = tmp;
	}
	int64_t host = qcow2_alloc_clusters(s, 1);
	if (host < 0)
		return (int)host;
	/* Refcounts said free; the map must agree (a zeroed refcount must not hand out a table). */
	ret = qcow2_meta_check(s, (uint64_t)host, cs, QCOW2_META_NONE);
	if (ret == 0)
		ret = bdev_file_pwrite(s->bs, src, cs, (uint64_t)host);
	if (ret == 0)
		ret = qcow2_set_entry(s, off, (uint64_t)host | QCOW2_OFLAG_COPIED);
	if (ret == 0 && qcow2_cluster_allocated(t))
		ret = qcow2_free_list_add(s, fl, e);
	return ret;
}

int qcow2_write_locked(struct qcow2 *s, uint64_t off, const uint8_t *buf, size_t len)
{
	struct qcow2_free_list fl = {0};
	uint8_t *tmp = NULL;
	int ret = qcow2_mark_dirty(s);

	while (len && ret == 0) {
		size_t n = s->cluster_size - (off & (s->cluster_size - 1));
		if (n > len)
			n = len;
		if (!tmp && !(tmp = aligned_alloc(512, s->cluster_size)))
			ret = err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		if (ret == 0)
			ret = write_in_cluster(s, off, buf, n, tmp, &fl);
		off += n;
		buf += n;
		len -= n;
	}
	int ret2 = qcow2_free_pending(s, &fl);
	free(tmp);
	return ret < 0 ? ret : ret2;
}

/* Move len bytes between the iovecs and the file at host, the lock dropped meanwhile. */
static int transfer(struct qcow2 *s, bool write, const struct iovec *v, int m, size_t len,
		    uint64_t host)
{
	s->io_inflight++;
	qcow2_lock_drop(s);
	int ret = write ? bdev_file_pwritev(s->bs, v, m, len, host)
			: bdev_file_preadv(s->bs, v, m, len, host);
	qcow2_lock(s);
	if (--s->io_inflight == 0 && s->io_quiesce)
		pthread_cond_broadcast(&s->io_cond);
	return ret;
}

/* A slot of allocs[] that no allocation uses, or -1; whether one overlaps [start, end). */
static int alloc_slot(const struct qcow2 *s)
{
	for (int i = 0; i < QCOW2_ALLOCS; i++)
		if (!s->allocs[i].end)
			return i;
	return -1;
}

static bool alloc_overlaps(const struct qcow2 *s, uint64_t start, uint64_t end)
{
	for (int i = 0; i < QCOW2_ALLOCS; i++)
		if (s->allocs[i].end && s->allocs[i].start < end && start < s->allocs[i].end)
			return true;
	return false;
}

/* Bytes from off (inside a cluster whose entry is e) to the end of the run of clusters stored
 * one after the other in the file, owned ones when writing; at most max. */
static int64_t host_run(struct qcow2 *s, uint64_t off, uint64_t e, uint64_t max, bool write)
{
	uint64_t cs = s->cluster_size, run = cs - (off & (cs - 1));
	uint64_t next = (e & QCOW2_L2E_OFFSET_MASK) + cs, e2;

	while (run < max) {
		int ret =
		    write ? write_entry(s, off + run, &e2) : qcow2_get_entry(s, off + run, &e2);
		if (ret < 0)
			return ret;
		if (qcow2_cluster_type(e2) != QCOW2_CL_NORMAL || (write && !owned(e2)) ||
		    (e2 & QCOW2_L2E_OFFSET_MASK) != next)
			break;
		ret = write ? check_data_cluster(s, e2, off + run)
			    : qcow2_check_host_offset(s, e2, off + run);
		if (ret < 0)
			return ret;
		run += cs;
		next += cs;
	}
	return (int64_t)(run < max ? run : max);
}

/* Whole clusters from off (cluster-aligned) that hold nothing of their own, at most max
 * bytes' worth and 1024 clusters: written as one run of new clusters. */
static int64_t fresh_run(struct qcow2 *s, uint64_t off, uint64_t max)
{
	uint64_t cs = s->cluster_size, k = 0, e;

	while ((k + 1) * cs <= max && k < 1024) {
		int ret = write_entry(s, off + k * cs, &e);
		if (ret < 0)
			return ret;
		if (qcow2_cluster_type(e) != QCOW2_CL_UNALLOC &&
		    qcow2_cluster_type(e) != QCOW2_CL_ZERO_PLAIN)
			break;
		k++;
	}
	return (int64_t)(k * cs);
}

/* New clusters for the len bytes (whole clusters) at off, written and then entered. */
static int write_fresh(struct qcow2 *s, uint64_t off, const struct iovec *v, int m, size_t len,
		       int slot)
{
	uint64_t cs = s->cluster_size;
	int64_t host = qcow2_alloc_clusters(s, len / cs);
	int ret;

	if (host < 0)
		return (int)host;
	/* Refcounts said free; the map must agree (a zeroed refcount must not hand out a table). */
	ret = qcow2_meta_check(s, (uint64_t)host, len, QCOW2_META_NONE);
	if (ret < 0)
		return ret;
	s->allocs[slot].start = off;
	s->allocs[slot].end = off + len;
	ret = transfer(s, true, v, m, len, (uint64_t)host);
	if (ret < 0) {
		/* Nothing points at them yet: give them back, keeping the write error's message. */
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", err_msg());
		(void)qcow2_free_clusters(s, (uint64_t)host, len);
		err_set(-ret, "%s", msg);
	}
	for (uint64_t i = 0; i < len && ret == 0; i += cs)
		ret = qcow2_set_entry(s, off + i, ((uint64_t)host + i) | QCOW2_OFLAG_COPIED);
	s->allocs[slot].end = 0;
	pthread_cond_broadcast(&s->io_cond);
	return ret;
}

/* Cluster-sized buffers of the slow write path, allocated on first use. */
struct wbufs {
	uint8_t *piece, *cow;
};

/*
 * Write the request piece by piece: runs of owned clusters in place and runs of whole clusters
 * that hold nothing into new clusters, both outside the lock; anything else (copy-on-write of a
 * partial cluster, compressed, shared or preallocated-zero clusters) one cluster at a time under
 * it, as before.
 */
static int do_writev(struct qcow2 *s, uint64_t off, const struct iovec *iov, int n, size_t len,
		     struct iovec *part)
{
	uint64_t cs = s->cluster_size, end = off + len;
	struct qcow2_free_list fl = {0};
	struct wbufs wb = {0};
	size_t done = 0;
	int ret = 0;

	while (done < len && ret == 0) {
		uint64_t pos = off + done, e;
		size_t rem = len - done;
		int slot = -1, m;
		int64_t run;
		while (s->io_quiesce || alloc_overlaps(s, pos & ~(cs - 1), end) ||
		       (slot = alloc_slot(s)) < 0)
			qcow2_io_wait(s);
		ret = qcow2_mark_dirty(s);
		if (ret == 0)
			ret = write_entry(s, pos, &e);
		if (ret < 0)
			break;
		if (owned(e)) {
			ret = check_data_cluster(s, e, pos);
			run = ret < 0 ? ret : host_run(s, pos, e, rem, true);
			if (run < 0) {
				ret = (int)run;
				break;
			}
			m = iov_slice(iov, (unsigned)n, done, (size_t)run, part);
			ret = transfer(s, true, part, m, (size_t)run,
				       (e & QCOW2_L2E_OFFSET_MASK) + (pos & (cs - 1)));
			done += (size_t)run;
			continue;
		}
		run = (pos & (cs - 1)) ? 0 : fresh_run(s, pos, rem);
		if (run < 0) {
			ret = (int)run;
			break;
		}
		if (run) {
			m = iov_slice(iov, (unsigned)n, done, (size_t)run, part);
			ret = write_fresh(s, pos, part, m, (size_t)run, slot);
			done += (size_t)run;
			continue;
		}
		size_t piece = cs - (pos & (cs - 1));
		if (piece > rem)
			piece = rem;
		if (!wb.piece && !(wb.piece = aligned_alloc(512, cs)))
			ret = err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		if (!wb.cow && !(wb.cow = aligned_alloc(512, cs)))
			ret = err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		if (ret == 0) {
			iov_to_buf(iov, (unsigned)n, done, wb.piece, piece);
			ret = write_in_cluster(s, pos, wb.piece, piece, wb.cow, &fl);
		}
		done += piece;
	}
	int ret2 = qcow2_free_pending(s, &fl);
	free(wb.piece);
	free(wb.cow);
	return ret < 0 ? ret : ret2;
}

int qcow2_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	struct qcow2 *s = bs->opaque;
	struct iovec part[BDEV_IOV_MAX]; /* the pieces of one transfer (n <= BDEV_IOV_MAX) */

	qcow2_lock(s);
	while (s->excl_waiting)
		qcow2_io_wait(s);
	s->writes_active++;
	int ret = qcow2_cbuf_settle(s);
	if (ret == 0)
		ret = do_writev(s, off, iov, n, len, part);
	if (--s->writes_active == 0 && s->excl_waiting)
		pthread_cond_broadcast(&s->io_cond);
	qcow2_unlock(s);
	return ret;
}

int qcow2_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	struct iovec v = {(void *)buf, len};

	return qcow2_writev(bs, off, &v, 1, len);
}

/* The backing file's bytes for [off, off+len) (zeroes past its end) into v, which it may trim;
 * the lock dropped meanwhile: the backing image is read-only and has a lock of its own. */
static int read_backingv(struct qcow2 *s, uint64_t off, struct iovec *v, int m, size_t len)
{
	struct bdev *b = s->bs->backing;
	size_t in = 0;
	int ret = 0;

	if (b && off < b->size)
		in = b->size - off < len ? (size_t)(b->size - off) : len;
	iov_memset0(v, (unsigned)m, in, len - in);
	if (in) {
		m = iov_slice(v, (unsigned)m, 0, in, v); /* in place: never ahead of its input */
		qcow2_lock_drop(s);
		ret = bdev_readv(b, off, v, m);
		qcow2_lock(s);
	}
	return ret;
}

/* Clusters from off with the same kind of content as the one at off (entry e), at most max
 * bytes: unallocated ones read together from the backing file, zero ones zeroed together. */
static int64_t same_run(struct qcow2 *s, uint64_t off, uint64_t e, uint64_t max)
{
	uint64_t cs = s->cluster_size, run = cs - (off & (cs - 1)), e2;
	enum qcow2_ctype t = qcow2_cluster_type(e);
	bool zero = t == QCOW2_CL_ZERO_PLAIN || t == QCOW2_CL_ZERO_ALLOC;

	while (run < max) {
		int ret = qcow2_get_entry(s, off + run, &e2);
		if (ret < 0)
			return ret;
		enum qcow2_ctype t2 = qcow2_cluster_type(e2);
		if (zero ? t2 != QCOW2_CL_ZERO_PLAIN && t2 != QCOW2_CL_ZERO_ALLOC : t2 != t)
			break;
		run += cs;
	}
	return (int64_t)(run < max ? run : max);
}

static int do_readv(struct qcow2 *s, uint64_t off, const struct iovec *iov, int n, size_t len,
		    struct iovec *part)
{
	uint64_t cs = s->cluster_size;
	size_t done = 0;
	int ret = 0;

	while (done < len && ret == 0) {
		uint64_t pos = off + done, e;
		size_t rem = len - done;
		int64_t run;
		int m;
		while (s->io_quiesce)
			qcow2_io_wait(s);
		ret = qcow2_get_entry(s, pos, &e);
		if (ret < 0)
			break;
		switch (qcow2_cluster_type(e)) {
		case QCOW2_CL_NORMAL:
			ret = qcow2_check_host_offset(s, e, pos);
			run = ret < 0 ? ret : host_run(s, pos, e, rem, false);
			if (run < 0)
				return (int)run;
			m = iov_slice(iov, (unsigned)n, done, (size_t)run, part);
			ret = transfer(s, false, part, m, (size_t)run,
				       (e & QCOW2_L2E_OFFSET_MASK) + (pos & (cs - 1)));
			break;
		case QCOW2_CL_COMPRESSED:
			run = (int64_t)(cs - (pos & (cs - 1)));
			if ((size_t)run > rem)
				run = (int64_t)rem;
			ret = qcow2_decompress_cluster(s, e);
			if (ret == 0)
				iov_from_buf(iov, (unsigned)n, done, s->zcache + (pos & (cs - 1)),
					     (size_t)run);
			break;
		default:
			run = same_run(s, pos, e, rem);
			if (run < 0)
				return (int)run;
			if (qcow2_cluster_type(e) != QCOW2_CL_UNALLOC) {
				iov_memset0(iov, (unsigned)n, done, (size_t)run);
				break;
			}
			m = iov_slice(iov, (unsigned)n, done, (size_t)run, part);
			ret = read_backingv(s, pos, part, m, (size_t)run);
			break;
		}
		done += (size_t)run;
	}
	return ret;
}

int qcow2_readv(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	struct qcow2 *s = bs->opaque;
	struct iovec part[BDEV_IOV_MAX]; /* the pieces of one transfer (n <= BDEV_IOV_MAX) */

	qcow2_lock(s);
	/* reads need the buffered clusters in the file, not an earlier write's error */
	int ret = s->cbuf_len ? qcow2_cbuf_settle(s) : 0;
	if (ret == 0)
		ret = do_readv(s, off, iov, n, len, part);
	qcow2_unlock(s);
	return ret;
}

int qcow2_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct iovec v = {buf, len};

	return qcow2_readv(bs, off, &v, 1, len);
}
