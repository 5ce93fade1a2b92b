/*
 * The qcow2 data path: guest offset -> L1 -> L2 entry -> host cluster, allocation with
 * copy-on-write, zero clusters, discard, block status, resize.
 *
 * Contract of every public function here: called with the driver lock not held (they take it;
 * readv and writev drop it while data moves, see transfer()),
 * range already checked against the virtual size by block.c, returns 0 or -errno with a message.
 * Clusters whose last reference goes away are freed only after the L2 tables that dropped the
 * reference are on disk (see free_pending).
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum ctype { C_UNALLOC, C_ZERO_PLAIN, C_ZERO_ALLOC, C_NORMAL, C_COMPRESSED };

static enum ctype cluster_type(uint64_t e)
{
	if (e & QCOW2_OFLAG_COMPRESSED)
		return C_COMPRESSED;
	if (e & QCOW2_OFLAG_ZERO)
		return (e & QCOW2_L2E_OFFSET_MASK) ? C_ZERO_ALLOC : C_ZERO_PLAIN;
	return (e & QCOW2_L2E_OFFSET_MASK) ? C_NORMAL : C_UNALLOC;
}

static uint64_t l1_index(const struct qcow2 *s, uint64_t off)
{
	return off >> (s->cluster_bits + s->l2_bits);
}

static uint64_t l2_index(const struct qcow2 *s, uint64_t off)
{
	return (off >> s->cluster_bits) & (s->l2_size - 1);
}

/* References that became garbage during one request, freed after the L2 flush. */
struct free_list {
	uint64_t *e;
	size_t n, cap;
};

static int free_list_add(struct qcow2 *s, struct free_list *fl, uint64_t entry)
{
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 16;
		uint64_t *e = realloc(fl->e, cap * sizeof(*e));
		if (!e)
			return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		fl->e = e;
		fl->cap = cap;
	}
	fl->e[fl->n++] = entry;
	return 0;
}

static int free_entry(struct qcow2 *s, uint64_t e)
{
	if (cluster_type(e) == C_COMPRESSED) {
		uint64_t off, len;
		qcow2_compressed_extent(s, e, &off, &len);
		return qcow2_free_clusters(s, off, len);
	}
	return qcow2_free_clusters(s, e & QCOW2_L2E_OFFSET_MASK, s->cluster_size);
}

static int entry_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a & QCOW2_L2E_OFFSET_MASK;
	uint64_t y = *(const uint64_t *)b & QCOW2_L2E_OFFSET_MASK;

	return x < y ? -1 : x > y;
}

static void drain(struct qcow2 *s);

/* The L2 tables that no longer reference these clusters must be on disk first, and no data
 * transfer may be running on them (see transfer()). */
static int free_pending(struct qcow2 *s, struct free_list *fl)
{
	int ret = 0;

	if (fl->n) {
		drain(s);
		ret = qcow2_cache_flush(s->l2_cache);
		if (ret == 0)
			ret = qcow2_sync(s);
		/* Plain clusters in host order, so neighbours are freed (and punched) as one run.
		 */
		qsort(fl->e, fl->n, sizeof(*fl->e), entry_cmp);
		for (size_t i = 0; i < fl->n && ret == 0;) {
			uint64_t e = fl->e[i], host = e & QCOW2_L2E_OFFSET_MASK;
			size_t j = i + 1;
			if (cluster_type(e) != C_COMPRESSED) {
				while (j < fl->n && cluster_type(fl->e[j]) != C_COMPRESSED &&
				       (fl->e[j] & QCOW2_L2E_OFFSET_MASK) ==
					   host + (j - i) * s->cluster_size)
					j++;
				ret = qcow2_free_clusters(s, host, (j - i) * s->cluster_size);
			} else {
				ret = free_entry(s, e);
			}
			i = j;
		}
	}
	free(fl->e);
	fl->e = NULL;
	fl->n = fl->cap = 0;
	return ret;
}

static int check_host_offset(struct qcow2 *s, uint64_t e, uint64_t guest_off)
{
	uint64_t host = e & QCOW2_L2E_OFFSET_MASK;

	if (host & (s->cluster_size - 1))
		return qcow2_signal_corruption(s,
					       "L2 entry for guest offset %llu points at "
					       "unaligned host offset %llu",
					       (unsigned long long)guest_off,
					       (unsigned long long)host);
	if (host < s->cluster_size)
		return qcow2_signal_corruption(s,
					       "L2 entry for guest offset %llu points into "
					       "the header",
					       (unsigned long long)guest_off);
	return 0;
}

/* L2 table of l1 index i, or *tbl = NULL if none is allocated. */
static int l2_load(struct qcow2 *s, uint64_t i, uint64_t **tbl)
{
	uint64_t l2off;

	*tbl = NULL;
	if (i >= s->l1_size)
		return 0;
	l2off = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
	if (!l2off)
		return 0;
	if (l2off & (s->cluster_size - 1) || l2off < s->cluster_size)
		return qcow2_signal_corruption(s, "L1 entry %llu points at invalid L2 offset %llu",
					       (unsigned long long)i, (unsigned long long)l2off);
	return qcow2_cache_get(s->l2_cache, l2off, (void **)tbl);
}

static int get_entry(struct qcow2 *s, uint64_t off, uint64_t *entry)
{
	uint64_t *tbl;
	int ret = l2_load(s, l1_index(s, off), &tbl);

	*entry = 0;
	if (ret < 0 || !tbl)
		return ret;
	*entry = __builtin_bswap64(tbl[l2_index(s, off)]);
	qcow2_cache_put(s->l2_cache, (void **)&tbl);
	return 0;
}

static int pread_full(struct qcow2 *s, void *buf, size_t len, uint64_t off)
{
	return bdev_file_pread(s->bs, buf, len, off);
}

static int pwrite_full(struct qcow2 *s, const void *buf, size_t len, uint64_t off)
{
	return bdev_file_pwrite(s->bs, buf, len, off);
}

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
	int ret = get_entry(s, off, &e);

	if (ret < 0)
		return ret;
	switch (cluster_type(e)) {
	case C_UNALLOC:
		return read_backing(s, off, buf, n);
	case C_ZERO_PLAIN:
	case C_ZERO_ALLOC:
		memset(buf, 0, n);
		return 0;
	case C_COMPRESSED:
		ret = qcow2_decompress_cluster(s, e);
		if (ret == 0)
			memcpy(buf, s->zcache + (off & (s->cluster_size - 1)), n);
		return ret;
	case C_NORMAL:
		ret = check_host_offset(s, e, off);
		if (ret < 0)
			return ret;
		return pread_full(s, buf, n,
				  (e & QCOW2_L2E_OFFSET_MASK) + (off & (s->cluster_size - 1)));
	}
	return 0;
}

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

/* With lazy refcounts the dirty bit must be on disk before the first metadata change. */
static int mark_dirty(struct qcow2 *s)
{
	qcow2_writing = s;
	if (!s->lazy_refcounts || s->dirty_marked)
		return 0;
	int ret = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, true);
	if (ret == 0)
		s->dirty_marked = true;
	return ret;
}

/*
 * An L2 table for l1 index i that this image owns alone (COPIED), allocating it or copying a
 * shared one. The new table reaches the disk (after the refcounts it relies on) before the L1
 * entry points at it; a shared old table loses our reference only after that.
 */
static int l2_prepare(struct qcow2 *s, uint64_t i, uint64_t **tbl)
{
	uint64_t old = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
	uint64_t *nt, *ot;
	int64_t noff;
	int ret;

	if (old && (s->l1[i] & QCOW2_OFLAG_COPIED)) {
		int r = qcow2_meta_check(s, old, s->cluster_size, QCOW2_META_L2);
		return r < 0 ? r : l2_load(s, i, tbl);
	}
	noff = qcow2_alloc_clusters(s, 1);
	if (noff < 0)
		return (int)noff;
	ret = qcow2_meta_check(s, (uint64_t)noff, s->cluster_size, QCOW2_META_NONE);
	if (ret < 0)
		return ret;
	qcow2_meta_mark(s, (uint64_t)noff, s->cluster_size, QCOW2_META_L2);
	ret = qcow2_cache_get_empty(s->l2_cache, (uint64_t)noff, (void **)&nt);
	if (ret < 0)
		return ret;
	if (old) {
		ret = l2_load(s, i, &ot);
		if (ret < 0) {
			qcow2_cache_put(s->l2_cache, (void **)&nt);
			return ret;
		}
		memcpy(nt, ot, s->cluster_size);
		qcow2_cache_put(s->l2_cache, (void **)&ot);
	}
	qcow2_cache_mark_dirty(s->l2_cache, nt);
	ret = qcow2_cache_flush(s->l2_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0) {
		qcow2_cache_put(s->l2_cache, (void **)&nt);
		return ret;
	}
	s->l1[i] = (uint64_t)noff | QCOW2_OFLAG_COPIED;
	ret = qcow2_l1_write(s, (uint32_t)i, 1);
	if (ret == 0 && old) {
		ret = qcow2_sync(s);
		if (ret == 0)
			ret = qcow2_free_clusters(s, old, s->cluster_size);
	}
	if (ret < 0) {
		qcow2_cache_put(s->l2_cache, (void **)&nt);
		return ret;
	}
	*tbl = nt;
	return 0;
}

static int set_entry(struct qcow2 *s, uint64_t off, uint64_t e)
{
	uint64_t *tbl;
	int ret = l2_prepare(s, l1_index(s, off), &tbl);

	if (ret < 0)
		return ret;
	tbl[l2_index(s, off)] = __builtin_bswap64(e);
	qcow2_cache_mark_dirty(s->l2_cache, tbl);
	qcow2_cache_put(s->l2_cache, (void **)&tbl);
	return 0;
}

/* Write [off, off+n) inside one cluster. */
static int write_in_cluster(struct qcow2 *s, uint64_t off, const uint8_t *buf, size_t n,
			    uint8_t *tmp, struct free_list *fl)
{
	uint64_t cstart = off & ~(s->cluster_size - 1), in = off - cstart, e;
	bool full = n == s->cluster_size;
	uint64_t i1 = l1_index(s, off);
	uint64_t l2off = i1 < s->l1_size ? s->l1[i1] & QCOW2_L1E_OFFSET_MASK : 0;
	/* The L2 table we are about to change must be one: check before any data moves. */
	int ret = l2off ? qcow2_meta_check(s, l2off, s->cluster_size, QCOW2_META_L2) : 0;

	if (ret == 0)
		ret = get_entry(s, off, &e);
	if (ret < 0)
		return ret;
	enum ctype t = cluster_type(e);
	if (t == C_NORMAL && (e & QCOW2_OFLAG_COPIED)) {
		ret = check_host_offset(s, e, off);
		if (ret == 0)
			ret = qcow2_meta_check(s, e & QCOW2_L2E_OFFSET_MASK, s->cluster_size,
					       QCOW2_META_NONE);
		return ret < 0 ? ret : pwrite_full(s, buf, n, (e & QCOW2_L2E_OFFSET_MASK) + in);
	}
	if (t == C_ZERO_ALLOC && (e & QCOW2_OFLAG_COPIED)) {
		/* A preallocated zero cluster: fill it and drop the zero flag. */
		ret = check_host_offset(s, e, off);
		if (ret == 0)
			ret = qcow2_meta_check(s, e & QCOW2_L2E_OFFSET_MASK, s->cluster_size,
					       QCOW2_META_NONE);
		if (ret < 0)
			return ret;
		memset(tmp, 0, s->cluster_size);
		memcpy(tmp + in, buf, n);
		ret = pwrite_full(s, tmp, s->cluster_size, e & QCOW2_L2E_OFFSET_MASK);
		return ret < 0
			   ? ret
			   : set_entry(s, off, (e & QCOW2_L2E_OFFSET_MASK) | QCOW2_OFLAG_COPIED);
	}
	/* Copy-on-write into a new cluster: old content (backing, compressed, zero, shared)
	 * around the written bytes, then the bytes. */
	const uint8_t *src = buf;
	if (!full) {
		uint64_t clen = s->cluster_size;
		if (cstart + clen > s->bs->size)
			clen = s->bs->size - cstart;
		memset(tmp, 0, s->cluster_size);
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
	ret = qcow2_meta_check(s, (uint64_t)host, s->cluster_size, QCOW2_META_NONE);
	if (ret == 0)
		ret = pwrite_full(s, src, s->cluster_size, (uint64_t)host);
	if (ret == 0)
		ret = set_entry(s, off, (uint64_t)host | QCOW2_OFLAG_COPIED);
	if (ret == 0 && (t == C_NORMAL || t == C_ZERO_ALLOC || t == C_COMPRESSED))
		ret = free_list_add(s, fl, e);
	return ret;
}

/* Write [off, off+len) cluster by cluster, all under the lock (zero writes of exclusive calls). */
static int do_write(struct qcow2 *s, uint64_t off, const uint8_t *buf, size_t len)
{
	struct free_list fl = {0};
	uint8_t *tmp = NULL;
	int ret = mark_dirty(s);

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
	int ret2 = free_pending(s, &fl);
	free(tmp);
	return ret < 0 ? ret : ret2;
}

/*
 * Data transfers outside the lock. readv and writev map a piece of the request under the lock,
 * then move its bytes between the caller's iovecs and the file without it, so requests of
 * several threads (the virtio-blk I/O threads) overlap. These rules keep that safe:
 *  - a transfer only touches clusters that stay where they are meanwhile: nothing frees or
 *    moves a cluster while one runs (free_pending and every call that restructures the image
 *    first wait for io_inflight to reach 0, and io_quiesce holds new transfers back meanwhile);
 *  - a call that restructures the image (qcow2_lock_excl) also waits for whole write requests
 *    to end, since one may drop the lock while clusters it replaced wait on its free list
 *    (their refcounts still count the old references): check would see them as leaks;
 *  - new clusters are written before the L2 entries point at them, and the guest range they
 *    will serve is listed in allocs[] until then: a write that touches that range waits, so a
 *    cluster is never allocated twice;
 *  - a read of a range being allocated sees its old content (the entries are not set yet).
 */
static void io_wait(struct qcow2 *s)
{
	pthread_cond_wait(&s->io_cond, &s->lock);
}

/* Lock held: wait until no transfer runs outside the lock; none starts while we wait, and none
 * can start while the caller keeps the lock afterwards. */
static void drain(struct qcow2 *s)
{
	s->io_quiesce++;
	while (s->io_inflight)
		io_wait(s);
	if (--s->io_quiesce == 0)
		pthread_cond_broadcast(&s->io_cond);
}

__thread const struct qcow2 *qcow2_writing;

static void lock_excl(struct qcow2 *s)
{
	pthread_mutex_lock(&s->lock);
	s->excl_waiting++;
	while (s->writes_active)
		io_wait(s);
	if (--s->excl_waiting == 0)
		pthread_cond_broadcast(&s->io_cond);
	drain(s);
}

void qcow2_lock_excl(struct qcow2 *s)
{
	lock_excl(s);
	/* A failed buffer write stays in cbuf_err (and its bytes are never written later): the
	 * next write or flush returns it. */
	(void)qcow2_cbuf_settle(s);
}

#define CBUF_ALIGN 4096u
#define CBUF_BYTES (1u << 20)

/* Lock held: write the first n bytes of the compressed-cluster buffer (n = all of it, or its
 * whole 4 KiB blocks), keeping the rest at its start. Whole blocks go out with O_DIRECT where
 * the file has it (the buffer is aligned); a partial last block through the page cache. */
static int cbuf_write(struct qcow2 *s, size_t n)
{
	if (s->cbuf_err)
		return s->cbuf_err;
	size_t whole = n & ~(size_t)(CBUF_ALIGN - 1);
	int ret = whole ? bdev_file_pwrite(s->bs, s->cbuf, whole, s->cbuf_off) : 0;
	if (ret == 0 && n > whole)
		ret = pwrite_full(s, s->cbuf + whole, n - whole, s->cbuf_off + whole);
	if (ret < 0)
		return s->cbuf_err = ret;
	memmove(s->cbuf, s->cbuf + n, s->cbuf_len - n);
	s->cbuf_len -= n;
	s->cbuf_off += n;
	return 0;
}

/* Lock held: everything buffered is in the file; the error of a failed buffer write. */
int qcow2_cbuf_settle(struct qcow2 *s)
{
	return s->cbuf_len ? cbuf_write(s, s->cbuf_len) : s->cbuf_err;
}

/* Lock held: the compressed cluster's len bytes for host offset off, written now or buffered.
 * Consecutive clusters (qcow2_alloc_bytes packs them back to back) extend the buffer; one
 * elsewhere settles it and starts again, from the 4 KiB block holding off (whose first bytes,
 * earlier clusters of the same host cluster, are read back). */
static int cbuf_put(struct qcow2 *s, const void *data, size_t len, uint64_t off)
{
	if (!(s->bs->flags & BDEV_O_UNSAFE) || s->cluster_size < CBUF_ALIGN)
		return pwrite_full(s, data, len, off);
	if (!s->cbuf) {
		s->cbuf_size = CBUF_BYTES + s->cluster_size + CBUF_ALIGN;
		s->cbuf = aligned_alloc(CBUF_ALIGN, s->cbuf_size);
		if (!s->cbuf)
			return pwrite_full(s, data, len, off);
	}
	int ret = 0;
	if (s->cbuf_len && off != s->cbuf_off + s->cbuf_len)
		ret = qcow2_cbuf_settle(s);
	if (ret == 0 && !s->cbuf_len) {
		size_t head = off & (CBUF_ALIGN - 1);
		s->cbuf_off = off - head;
		ret = head ? pread_full(s, s->cbuf, head, s->cbuf_off) : s->cbuf_err;
		if (ret == 0)
			s->cbuf_len = head;
	}
	if (ret == 0 && s->cbuf_len + len > s->cbuf_size)
		ret = cbuf_write(s, s->cbuf_len & ~(size_t)(CBUF_ALIGN - 1));
	if (ret < 0)
		return ret;
	memcpy(s->cbuf + s->cbuf_len, data, len);
	s->cbuf_len += len;
	return 0;
}

/* Move len bytes between the iovecs and the file at host, the lock dropped meanwhile. */
static int transfer(struct qcow2 *s, bool write, const struct iovec *v, int m, size_t len,
		    uint64_t host)
{
	s->io_inflight++;
	pthread_mutex_unlock(&s->lock);
	int ret = write ? bdev_file_pwritev(s->bs, v, m, len, host)
			: bdev_file_preadv(s->bs, v, m, len, host);
	pthread_mutex_lock(&s->lock);
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

/* The L2 entry for a write at off, its table checked to be one first. */
static int write_entry(struct qcow2 *s, uint64_t off, uint64_t *e)
{
	uint64_t i1 = l1_index(s, off);
	uint64_t l2off = i1 < s->l1_size ? s->l1[i1] & QCOW2_L1E_OFFSET_MASK : 0;
	int ret = l2off ? qcow2_meta_check(s, l2off, s->cluster_size, QCOW2_META_L2) : 0;

	return ret < 0 ? ret : get_entry(s, off, e);
}

/* A plain cluster this image owns alone: written in place. Checked to be data, not metadata. */
static bool owned(uint64_t e)
{
	return cluster_type(e) == C_NORMAL && (e & QCOW2_OFLAG_COPIED);
}

static int check_data_cluster(struct qcow2 *s, uint64_t e, uint64_t off)
{
	int ret = check_host_offset(s, e, off);

	return ret < 0 ? ret
		       : qcow2_meta_check(s, e & QCOW2_L2E_OFFSET_MASK, s->cluster_size,
					  QCOW2_META_NONE);
}

/* Bytes from off (inside a cluster whose entry is e) to the end of the run of clusters stored
 * one after the other in the file, owned ones when writing; at most max. */
static int64_t host_run(struct qcow2 *s, uint64_t off, uint64_t e, uint64_t max, bool write)
{
	uint64_t cs = s->cluster_size, run = cs - (off & (cs - 1));
	uint64_t next = (e & QCOW2_L2E_OFFSET_MASK) + cs, e2;

	while (run < max) {
		int ret = write ? write_entry(s, off + run, &e2) : get_entry(s, off + run, &e2);
		if (ret < 0)
			return ret;
		if (cluster_type(e2) != C_NORMAL || (write && !owned(e2)) ||
		    (e2 & QCOW2_L2E_OFFSET_MASK) != next)
			break;
		ret = write ? check_data_cluster(s, e2, off + run)
			    : check_host_offset(s, e2, off + run);
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
		if (cluster_type(e) != C_UNALLOC && cluster_type(e) != C_ZERO_PLAIN)
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
		ret = set_entry(s, off + i, ((uint64_t)host + i) | QCOW2_OFLAG_COPIED);
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
	struct free_list fl = {0};
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
			io_wait(s);
		ret = mark_dirty(s);
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
	int ret2 = free_pending(s, &fl);
	free(wb.piece);
	free(wb.cow);
	return ret < 0 ? ret : ret2;
}

int qcow2_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len)
{
	struct qcow2 *s = bs->opaque;
	struct iovec part[BDEV_IOV_MAX]; /* the pieces of one transfer (n <= BDEV_IOV_MAX) */

	pthread_mutex_lock(&s->lock);
	while (s->excl_waiting)
		io_wait(s);
	s->writes_active++;
	int ret = qcow2_cbuf_settle(s);
	if (ret == 0)
		ret = do_writev(s, off, iov, n, len, part);
	qcow2_writing = NULL;
	if (--s->writes_active == 0 && s->excl_waiting)
		pthread_cond_broadcast(&s->io_cond);
	pthread_mutex_unlock(&s->lock);
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
		pthread_mutex_unlock(&s->lock);
		ret = bdev_readv(b, off, v, m);
		pthread_mutex_lock(&s->lock);
	}
	return ret;
}

/* Clusters from off with the same kind of content as the one at off (entry e), at most max
 * bytes: unallocated ones read together from the backing file, zero ones zeroed together. */
static int64_t same_run(struct qcow2 *s, uint64_t off, uint64_t e, uint64_t max)
{
	uint64_t cs = s->cluster_size, run = cs - (off & (cs - 1)), e2;
	enum ctype t = cluster_type(e);
	bool zero = t == C_ZERO_PLAIN || t == C_ZERO_ALLOC;

	while (run < max) {
		int ret = get_entry(s, off + run, &e2);
		if (ret < 0)
			return ret;
		enum ctype t2 = cluster_type(e2);
		if (zero ? t2 != C_ZERO_PLAIN && t2 != C_ZERO_ALLOC : t2 != t)
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
			io_wait(s);
		ret = get_entry(s, pos, &e);
		if (ret < 0)
			break;
		switch (cluster_type(e)) {
		case C_NORMAL:
			ret = check_host_offset(s, e, pos);
			run = ret < 0 ? ret : host_run(s, pos, e, rem, false);
			if (run < 0)
				return (int)run;
			m = iov_slice(iov, (unsigned)n, done, (size_t)run, part);
			ret = transfer(s, false, part, m, (size_t)run,
				       (e & QCOW2_L2E_OFFSET_MASK) + (pos & (cs - 1)));
			break;
		case C_COMPRESSED:
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
			if (cluster_type(e) != C_UNALLOC) {
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

	pthread_mutex_lock(&s->lock);
	/* reads need the buffered clusters in the file, not an earlier write's error */
	int ret = s->cbuf_len ? qcow2_cbuf_settle(s) : 0;
	if (ret == 0)
		ret = do_readv(s, off, iov, n, len, part);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct iovec v = {buf, len};

	return qcow2_readv(bs, off, &v, 1, len);
}

int qcow2_flush_caches(struct qcow2 *s)
{
	int ret = qcow2_cbuf_settle(s);

	if (ret == 0)
		ret = qcow2_cache_flush(s->l2_cache);

	if (ret == 0)
		ret = qcow2_cache_flush(s->rb_cache);
	return ret;
}

int qcow2_flush(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;
	int ret = qcow2_flush_caches(s);

	return ret < 0 ? ret : qcow2_sync(s);
}

/* Whole clusters of [off, off+len), plus a partial last cluster that ends the image. */
static void whole_clusters(const struct qcow2 *s, uint64_t off, uint64_t len, uint64_t *first,
			   uint64_t *end)
{
	uint64_t cs = s->cluster_size;
	uint64_t stop = off + len;

	*first = (off + cs - 1) & ~(cs - 1);
	*end = stop & ~(cs - 1);
	if (stop == s->bs->size && stop & (cs - 1))
		*end = (stop + cs - 1) & ~(cs - 1);
	if (*end < *first)
		*end = *first;
}

static bool allocated(enum ctype t)
{
	return t == C_NORMAL || t == C_ZERO_ALLOC || t == C_COMPRESSED;
}

/* Make one whole cluster read as zero (v3): keep a preallocated cluster unless unmapping. */
static int zero_cluster(struct qcow2 *s, uint64_t off, unsigned flags, struct free_list *fl)
{
	uint64_t e;
	int ret = get_entry(s, off, &e);

	if (ret < 0)
		return ret;
	enum ctype t = cluster_type(e);
	if (t == C_ZERO_PLAIN)
		return 0;
	bool unmap = t == C_COMPRESSED ||
		     (allocated(t) && ((flags & BDEV_ZERO_MAY_UNMAP) || !(e & QCOW2_OFLAG_COPIED)));
	uint64_t ne = QCOW2_OFLAG_ZERO;
	if (allocated(t) && !unmap)
		ne |= (e & QCOW2_L2E_OFFSET_MASK) | QCOW2_OFLAG_COPIED;
	ret = set_entry(s, off, ne);
	if (ret == 0 && unmap)
		ret = free_list_add(s, fl, e);
	return ret;
}

static int write_zero_bytes(struct qcow2 *s, uint64_t off, uint64_t len)
{
	uint8_t *z = calloc(1, s->cluster_size);
	int ret = 0;

	if (!z)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	while (len && ret == 0) {
		size_t n = s->cluster_size - (off & (s->cluster_size - 1));
		if (n > len)
			n = len;
		ret = do_write(s, off, z, n);
		off += n;
		len -= n;
	}
	free(z);
	return ret;
}

static int do_block_status(struct qcow2 *s, uint64_t off, uint64_t len, struct bdev_extent *ext);

/* Does [off, off+len) read as zero without reading data (zero flags, holes, short backing)? */
static int reads_zero(struct qcow2 *s, uint64_t off, uint64_t len, bool *zero)
{
	struct bdev *b = s->bs->backing;

	*zero = true;
	while (len && *zero) {
		struct bdev_extent ext = {0};
		int ret = do_block_status(s, off, len, &ext);
		if (ret < 0)
			return ret;
		if (ext.flags & BDEV_ST_ALLOCATED) {
			*zero = ext.flags & BDEV_ST_ZERO;
		} else if (b && off < b->size) {
			struct bdev_extent be;
			uint64_t n = ext.length < b->size - off ? ext.length : b->size - off;
			ret = bdev_block_status_chain(b, off, n, &be);
			if (ret < 0)
				return ret;
			*zero = be.flags & BDEV_ST_ZERO;
			ext.length = be.length;
		}
		off += ext.length;
		len -= ext.length;
	}
	return 0;
}

/*
 * Zero [off, off+len) inside one cluster. Like QEMU, a cluster that holds nothing of its own
 * and whose other bytes already read as zero becomes a zero cluster as a whole; otherwise the
 * zeroes are written as data.
 */
static int zero_partial(struct qcow2 *s, uint64_t off, uint64_t len, unsigned flags,
			struct free_list *fl)
{
	uint64_t cstart = off & ~(s->cluster_size - 1), e;
	uint64_t cend =
	    cstart + s->cluster_size < s->bs->size ? cstart + s->cluster_size : s->bs->size;
	int ret;

	if (s->version >= 3) {
		bool z1 = false, z2 = false;
		ret = get_entry(s, cstart, &e);
		if (ret < 0)
			return ret;
		enum ctype t = cluster_type(e);
		if (t == C_UNALLOC || t == C_ZERO_PLAIN || t == C_ZERO_ALLOC) {
			ret = reads_zero(s, cstart, off - cstart, &z1);
			if (ret == 0 && z1)
				ret = reads_zero(s, off + len, cend - (off + len), &z2);
			if (ret < 0)
				return ret;
			if (z1 && z2)
				return zero_cluster(s, cstart, flags, fl);
		}
	}
	return write_zero_bytes(s, off, len);
}

static int do_write_zeroes(struct qcow2 *s, uint64_t off, uint64_t len, unsigned flags)
{
	struct free_list fl = {0};
	uint64_t first, end;
	int ret = mark_dirty(s);

	if (ret < 0)
		return ret;
	whole_clusters(s, off, len, &first, &end);
	if (off < first)
		ret =
		    zero_partial(s, off, (first < off + len ? first : off + len) - off, flags, &fl);
	for (uint64_t c = first; c < end && ret == 0; c += s->cluster_size) {
		if (s->version >= 3) {
			ret = zero_cluster(s, c, flags, &fl);
		} else {
			/* v2 has no zero flag: unallocated clusters without a backing file
			 * already read as zero; anything else gets zeroes written. */
			uint64_t e;
			ret = get_entry(s, c, &e);
			if (ret == 0 && !(cluster_type(e) == C_UNALLOC && !s->bs->backing)) {
				uint64_t n = s->cluster_size;
				if (c + n > s->bs->size)
					n = s->bs->size - c;
				ret = write_zero_bytes(s, c, n);
			}
		}
	}
	if (ret == 0 && end < off + len && end >= first)
		ret = zero_partial(s, end, off + len - end, flags, &fl);
	int ret2 = free_pending(s, &fl);
	return ret < 0 ? ret : ret2;
}

int qcow2_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_write_zeroes(s, off, len, flags);
	qcow2_writing = NULL;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * Discard whole clusters, with QEMU's semantics so guests see the same bytes: afterwards they
 * read as zero (v3: zero flag where a backing file or an allocation would show through; v2
 * without backing: unallocated). v2 with a backing file cannot hide the backing data, so
 * discard does nothing there. Partial clusters are left alone.
 */
static int do_discard(struct qcow2 *s, uint64_t off, uint64_t len, bool full)
{
	struct free_list fl = {0};
	uint64_t first, end;
	int ret;

	if (!full && s->version < 3 && s->bs->backing)
		return 0;
	ret = mark_dirty(s);
	if (ret < 0)
		return ret;
	whole_clusters(s, off, len, &first, &end);
	for (uint64_t c = first; c < end && ret == 0; c += s->cluster_size) {
		uint64_t e;
		ret = get_entry(s, c, &e);
		if (ret < 0)
			break;
		enum ctype t = cluster_type(e);
		uint64_t ne = 0;
		if (!full && s->version >= 3 && (s->bs->backing || allocated(t)))
			ne = QCOW2_OFLAG_ZERO;
		if (e == ne || (t == C_UNALLOC && !ne))
			continue;
		ret = set_entry(s, c, ne);
		if (ret == 0 && allocated(t))
			ret = free_list_add(s, &fl, e);
	}
	int ret2 = free_pending(s, &fl);
	return ret < 0 ? ret : ret2;
}

int qcow2_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_discard(s, off, len, false);
	qcow2_writing = NULL;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static unsigned status_flags(enum ctype t)
{
	switch (t) {
	case C_UNALLOC:
		return 0;
	case C_ZERO_PLAIN:
		return BDEV_ST_ALLOCATED | BDEV_ST_ZERO;
	case C_ZERO_ALLOC:
		return BDEV_ST_ALLOCATED | BDEV_ST_ZERO | BDEV_ST_OFFSET;
	case C_NORMAL:
		return BDEV_ST_ALLOCATED | BDEV_ST_DATA | BDEV_ST_OFFSET;
	case C_COMPRESSED:
		return BDEV_ST_ALLOCATED | BDEV_ST_DATA | BDEV_ST_COMPRESSED;
	}
	return 0;
}

static int do_block_status(struct qcow2 *s, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	uint64_t e, cs = s->cluster_size;
	int ret = get_entry(s, off, &e);

	if (ret < 0)
		return ret;
	enum ctype t = cluster_type(e);
	uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
	uint64_t in = off & (cs - 1);
	uint64_t n = cs - in;

	ext->flags = status_flags(t);
	if (ext->flags & BDEV_ST_OFFSET)
		ext->host_offset = host + in;
	/* Extend over following clusters of the same kind (and contiguous on the host). */
	while (n < len) {
		uint64_t ne;
		ret = get_entry(s, off + n, &ne);
		if (ret < 0)
			return ret;
		if (cluster_type(ne) != t)
			break;
		if ((ext->flags & BDEV_ST_OFFSET) && (ne & QCOW2_L2E_OFFSET_MASK) != host + in + n)
			break;
		n += cs;
	}
	ext->length = n < len ? n : len;
	return 0;
}

int qcow2_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	struct qcow2 *s = bs->opaque;

	pthread_mutex_lock(&s->lock);
	int ret = do_block_status(s, off, len, ext);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size)
{
	uint64_t bytes = min_size * 8;
	uint64_t nclusters = (bytes + s->cluster_size - 1) >> s->cluster_bits;
	uint64_t *nl1;
	int ret;

	if (min_size <= s->l1_size)
		return 0;
	if (bytes > QCOW2_MAX_L1_BYTES)
		return err_set(EFBIG, "%s: L1 table would exceed %u MiB", s->bs->filename,
			       QCOW2_MAX_L1_BYTES >> 20);
	nl1 = calloc(nclusters, s->cluster_size);
	if (!nl1)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	int64_t off = qcow2_alloc_clusters(s, nclusters);
	if (off < 0) {
		free(nl1);
		return (int)off;
	}
	qcow2_meta_mark(s, (uint64_t)off, min_size * 8, QCOW2_META_L1);
	for (uint32_t i = 0; i < s->l1_size; i++)
		nl1[i] = __builtin_bswap64(s->l1[i]);
	ret = bdev_file_pwrite_meta(s->bs, nl1, nclusters * s->cluster_size, (uint64_t)off,
				    "the new L1 table");
	if (ret == 0)
		ret = qcow2_cache_flush(s->rb_cache);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0) {
		uint8_t hdr[12];
		be32_put(hdr, (uint32_t)min_size);
		be64_put(hdr + 4, (uint64_t)off);
		ret = bdev_file_pwrite_meta(s->bs, hdr, 12, QCOW2_HDR_L1_SIZE, "the header");
	}
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0) {
		free(nl1);
		return ret;
	}
	for (uint64_t i = 0; i < min_size; i++)
		nl1[i] = __builtin_bswap64(nl1[i]);
	uint64_t old = s->l1_offset, old_len = (uint64_t)s->l1_size * 8;
	free(s->l1);
	s->l1 = nl1;
	s->l1_offset = (uint64_t)off;
	s->l1_size = (uint32_t)min_size;
	return old_len ? qcow2_free_clusters(s, old, old_len) : 0;
}

static int do_truncate(struct qcow2 *s, uint64_t size)
{
	uint64_t per_l1 = s->cluster_size * s->l2_size;
	int ret = mark_dirty(s);

	if (ret < 0)
		return ret;
	if (size > QCOW2_MAX_VIRTUAL_SIZE)
		return err_set(EFBIG, "%s: size %llu is larger than qcow2 supports here",
			       s->bs->filename, (unsigned long long)size);
	if (s->nb_snapshots && size < s->bs->size)
		return err_set(ENOTSUP, "%s: cannot shrink an image that has snapshots",
			       s->bs->filename);
	if (size < s->bs->size) {
		/* Drop every cluster past the new end, so the file holds nothing invisible. */
		uint64_t from = (size + s->cluster_size - 1) & ~(s->cluster_size - 1);
		if (from < s->bs->size) {
			ret = do_discard(s, from, s->bs->size - from, true);
			if (ret < 0)
				return ret;
		}
	}
	ret = qcow2_grow_l1(s, (size + per_l1 - 1) / per_l1);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret = qcow2_header_write_u64(s, QCOW2_HDR_SIZE, size);
	if (ret == 0)
		s->bs->size = size;
	return ret;
}

int qcow2_truncate(struct bdev *bs, uint64_t size)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_truncate(s, size);
	qcow2_writing = NULL;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_write_compressed(struct qcow2 *s, uint64_t guest_off, const void *data, size_t len)
{
	struct free_list fl = {0};
	uint64_t e;
	int ret;

	if (guest_off & (s->cluster_size - 1) || len >= s->cluster_size)
		return err_set(EINVAL, "%s: bad compressed cluster write at %llu", s->bs->filename,
			       (unsigned long long)guest_off);
	lock_excl(s); /* not qcow2_lock_excl: the buffer is for these writes */
	ret = mark_dirty(s);
	if (ret == 0)
		ret = get_entry(s, guest_off, &e);
	/* Overwriting frees the old cluster below, and a freed host cluster can be given to a
	 * table that is written straight to the file: none may still have bytes waiting in the
	 * buffer, which would land on that table later. */
	if (ret == 0 && allocated(cluster_type(e)))
		ret = qcow2_cbuf_settle(s);
	if (ret == 0) {
		/* The L2 table first, as QEMU does: allocated after the data, a new table would
		 * take the host cluster the next compressed cluster was to run on into, and the
		 * rest of the current one would be lost (bigger files than qemu-img's). */
		uint64_t *tbl;
		ret = l2_prepare(s, l1_index(s, guest_off), &tbl);
		if (ret == 0)
			qcow2_cache_put(s->l2_cache, (void **)&tbl);
	}
	int64_t off = ret < 0 ? ret : qcow2_alloc_bytes(s, len);
	if (off < 0) {
		ret = (int)off;
		goto out;
	}
	ret = qcow2_meta_check(s, (uint64_t)off, len, QCOW2_META_NONE);
	if (ret == 0)
		ret = cbuf_put(s, data, len, (uint64_t)off);
	if (ret < 0)
		goto out;
	unsigned shift = 62 - (s->cluster_bits - 8);
	uint64_t nb = (((uint64_t)off + len - 1) >> 9) - ((uint64_t)off >> 9);
	ret = set_entry(s, guest_off, QCOW2_OFLAG_COMPRESSED | (uint64_t)off | (nb << shift));
	if (ret == 0 && allocated(cluster_type(e)))
		ret = free_list_add(s, &fl, e);
out:;
	int ret2 = free_pending(s, &fl);
	qcow2_writing = NULL;
	pthread_mutex_unlock(&s->lock);
	return ret < 0 ? ret : ret2;
}

int qcow2_preallocate(struct qcow2 *s, int mode)
{
	uint64_t cs = s->cluster_size, size = s->bs->size;
	int ret = 0;

	for (uint64_t off = 0; off < size && ret == 0;) {
		/* One run per L2 table: contiguous data clusters, then their entries. */
		uint64_t l2end = (l1_index(s, off) + 1) * s->l2_size * cs;
		uint64_t stop = l2end < size ? l2end : size;
		uint64_t n = (stop - off + cs - 1) / cs;
		uint64_t *tbl;
		ret = l2_prepare(s, l1_index(s, off), &tbl);
		if (ret < 0)
			break;
		qcow2_cache_put(s->l2_cache, (void **)&tbl);
		int64_t host = qcow2_alloc_clusters(s, n);
		if (host < 0)
			return (int)host;
		if (mode == BDEV_PREALLOC_FALLOC || mode == BDEV_PREALLOC_FULL) {
			int e = posix_fallocate(s->fd, host, (off_t)(n * cs));
			if (e)
				return err_sys(e, "%s: could not preallocate", s->bs->filename);
		}
		for (uint64_t i = 0; i < n && ret == 0; i++)
			ret = set_entry(s, off + i * cs,
					((uint64_t)host + i * cs) | QCOW2_OFLAG_COPIED);
		off = stop;
	}
	if (ret == 0 && s->file_end > 0) {
		/* The file covers every allocated cluster even where nothing was written. */
		if (ftruncate(s->fd, (off_t)s->file_end) < 0 && errno != EINVAL)
			ret = err_sys(errno, "%s: could not extend the file", s->bs->filename);
	}
	return ret;
}

int qcow2_unmap(struct bdev *bs, uint64_t off, uint64_t len)
{
	struct qcow2 *s = bs->opaque;

	qcow2_lock_excl(s);
	int ret = do_discard(s, off, len, true);
	qcow2_writing = NULL;
	pthread_mutex_unlock(&s->lock);
	return ret;
}
