/*
 * Compressed clusters: zlib raw deflate (window 4 KiB, as QEMU) and zstd frames, and how they
 * are written (gathered in the buffer of cache=unsafe, then entered in the L2 table).
 */
#include "block/qcow2/deflate.h"
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

void qcow2_compressed_extent(const struct qcow2 *s, uint64_t l2e, uint64_t *off, uint64_t *len)
{
	unsigned shift = 62 - (s->cluster_bits - 8);
	uint64_t mask = (1ULL << (s->cluster_bits - 8)) - 1;
	uint64_t nb_sectors = ((l2e >> shift) & mask) + 1;

	*off = l2e & ((1ULL << shift) - 1);
	*len = nb_sectors * 512 - (*off & 511);
}

static int zlib_decompress(uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
	z_stream z = {0};
	int ret;

	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = (uint8_t *)src;
	z.avail_in = (uInt)src_len;
	z.next_out = dst;
	z.avail_out = (uInt)dst_len;
	ret = inflate(&z, Z_FINISH);
	/* The stored extent is rounded up to sectors, so input may remain after the stream. */
	bool ok = (ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0;
	inflateEnd(&z);
	return ok ? 0 : -EIO;
}

static int zstd_decompress(struct qcow2 *s, uint8_t *dst, size_t dst_len, const uint8_t *src,
			   size_t src_len)
{
	if (!s->zstd_dctx) {
		s->zstd_dctx = ZSTD_createDCtx();
		if (!s->zstd_dctx)
			return -ENOMEM;
	}
	ZSTD_DCtx_reset(s->zstd_dctx, ZSTD_reset_session_only);
	ZSTD_inBuffer in = {src, src_len, 0};
	ZSTD_outBuffer out = {dst, dst_len, 0};
	while (out.pos < out.size) {
		size_t r = ZSTD_decompressStream(s->zstd_dctx, &out, &in);
		if (ZSTD_isError(r))
			return -EIO;
		if (r == 0 || in.pos == in.size)
			break; /* frame complete, or no more input */
	}
	return out.pos == out.size ? 0 : -EIO;
}

int qcow2_decompress_cluster(struct qcow2 *s, uint64_t l2e)
{
	uint64_t off, len;
	int ret;

	qcow2_compressed_extent(s, l2e, &off, &len);
	if (s->zcache_offset == off && off)
		return 0;
	if (len > 2 * s->cluster_size)
		return qcow2_signal_corruption(s, "compressed cluster at offset %llu has size %llu",
					       (unsigned long long)off, (unsigned long long)len);
	ssize_t n = pread(s->fd, s->zbuf, len, (off_t)off);
	if (n < 0)
		return err_sys(errno, "%s: read error at offset %llu", s->bs->filename,
			       (unsigned long long)off);
	/* The last compressed cluster may end before its sector does. */
	if ((uint64_t)n < len)
		memset(s->zbuf + n, 0, len - (uint64_t)n);
	if (s->compression_type == QCOW2_COMPRESSION_ZSTD)
		ret = zstd_decompress(s, s->zcache, s->cluster_size, s->zbuf, len);
	else
		ret = zlib_decompress(s->zcache, s->cluster_size, s->zbuf, len);
	if (ret < 0) {
		s->zcache_offset = 0;
		return err_set(EIO,
			       "%s: compressed cluster at offset %llu does not decompress (%s)",
			       s->bs->filename, (unsigned long long)off,
			       s->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib");
	}
	s->zcache_offset = off;
	return 0;
}

/*
 * Compression contexts are kept per thread and reused from cluster to cluster: QEMU builds a
 * fresh deflate state or ZSTD_CCtx for every cluster, and for zstd that setup costs as much as
 * compressing a cluster of random data. The output is the same either way.
 */
struct cctx {
	z_stream z; /* zlib's deflate: the fallback */
	bool z_ready;
	ZSTD_CCtx *zc;
	struct dfl *dfl;		     /* ligero's deflate (deflate.c) */
	struct libdeflate_decompressor *inf; /* to check what dfl wrote */
	uint8_t *check;			     /* inflated copy */
	size_t check_size;
};

static pthread_key_t cctx_key;
static pthread_once_t cctx_once = PTHREAD_ONCE_INIT;
static bool cctx_key_ok;

static void cctx_free(void *p)
{
	struct cctx *c = p;

	if (c->z_ready)
		deflateEnd(&c->z);
	libdeflate_free_decompressor(c->inf);
	ZSTD_freeCCtx(c->zc);
	dfl_free(c->dfl);
	free(c->check);
	free(c);
}

static void cctx_key_init(void)
{
	cctx_key_ok = pthread_key_create(&cctx_key, cctx_free) == 0;
}

/* This thread's contexts, or NULL when memory or the key is short (callers then use
 * one-shot contexts). */
static struct cctx *cctx_get(void)
{
	pthread_once(&cctx_once, cctx_key_init);
	if (!cctx_key_ok)
		return NULL;
	struct cctx *c = pthread_getspecific(cctx_key);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (c && pthread_setspecific(cctx_key, c)) {
		free(c);
		c = NULL;
	}
	return c;
}

/*
 * Random-looking data (already compressed files, encrypted data) costs deflate as much as text
 * and never shrinks. A cluster whose byte histogram is flat (order-0 entropy of a 16 KiB sample
 * above 7.98 bits per byte; a uniform source scores ~7.989 on that many bytes) cannot lose a
 * byte to Huffman coding, and when none of 64 sampled 8-byte strings repeats within the 4 KiB
 * window before it, LZ77 has nothing to match either: such a cluster is stored plainly without
 * trying. Costs ~10 us per 64 KiB cluster, against ~1 ms of zlib. (zstd gives up on such data
 * about as fast by itself, so only zlib is spared the work.)
 */
static bool looks_incompressible(const uint8_t *p, size_t len)
{
	uint32_t h[4][256] = {{0}};
	size_t sample = 0;
	double bits = 0;

	if (len < 16384)
		return false;
	/* Four 4 KiB blocks spread over the cluster, four histograms to keep stores apart. */
	for (size_t b = 0; b < 4; b++) {
		const uint8_t *q = p + b * (len / 4);
		for (size_t i = 0; i < 4096; i += 4) {
			h[0][q[i]]++;
			h[1][q[i + 1]]++;
			h[2][q[i + 2]]++;
			h[3][q[i + 3]]++;
		}
		sample += 4096;
	}
	for (int i = 0; i < 256; i++) {
		uint32_t n = h[0][i] + h[1][i] + h[2][i] + h[3][i];
		if (!n)
			return false;
		double f = (double)n / (double)sample;
		bits -= f * log2(f);
	}
	if (bits < 7.98)
		return false;
	for (size_t at = 4096; at + 8 <= len; at += len / 64)
		if (memmem(p + at - 4096, 4096 + 8, p + at, 8) != p + at)
			return false;
	return true;
}

/*
 * ligero's encoder (deflate.c: zlib level 6's parse, faster, output no larger on the bench
 * data), then a full decode of what it wrote, compared with the input: a wrong stream would be
 * a corrupt backup, so one is never stored, whatever the encoder does. -EAGAIN: use zlib.
 *
 * The decode is libdeflate's, faster than zlib's inflate (a compressed convert takes 9-17%
 * less CPU with it; docs/img-workflows.md). Unlike
 * QEMU's reader (zlib, window bits 12) it would accept a match reaching back farther than
 * 4 KiB; the encoder cannot write one: its distance alphabet stops at code 23 (distances up to
 * 4096), checked in every block header it writes (deflate.c), and a distance the decoder reads
 * wrongly gives other bytes than the input, which the comparison catches. Both decoders refuse
 * the same malformed Huffman tables (over-full, or incomplete beyond one distance code).
 */
static int64_t dfl_deflate_checked(struct cctx *c, void *dst, size_t dst_len, const void *src,
				   size_t src_len)
{
	size_t in_used = 0, out_len = 0;

	if (!c->dfl)
		c->dfl = dfl_new();
	if (!c->inf)
		c->inf = libdeflate_alloc_decompressor();
	if (!c->dfl || !c->inf)
		return -EAGAIN;
	if (c->check_size < src_len) {
		uint8_t *b = realloc(c->check, src_len);
		if (!b)
			return -EAGAIN;
		c->check = b;
		c->check_size = src_len;
	}
	int64_t n = dfl_compress(c->dfl, dst, dst_len, src, src_len);
	if (n == -ENOSPC)
		return n;
	if (n < 0)
		return -EAGAIN;
	if (libdeflate_deflate_decompress_ex(c->inf, dst, (size_t)n, c->check, src_len, &in_used,
					     &out_len) == LIBDEFLATE_SUCCESS &&
	    in_used == (size_t)n && out_len == src_len && !memcmp(c->check, src, src_len))
		return n;
	return -EAGAIN;
}

/* Raw deflate, level 6 (zlib's default), window 4 KiB, memLevel 9: QEMU's parameters, which its
 * reader's window requires. */
static int64_t zlib_compress(void *dst, size_t dst_len, const void *src, size_t src_len)
{
	struct cctx *c = cctx_get();
	z_stream one = {0}, *z = &one;
	int ret;

	if (looks_incompressible(src, src_len))
		return -ENOSPC;
	if (c) {
		int64_t n = dfl_deflate_checked(c, dst, dst_len, src, src_len);
		if (n != -EAGAIN)
			return n;
	}
	if (c && c->z_ready) {
		z = &c->z;
		if (deflateReset(z) != Z_OK)
			return -ENOMEM;
	} else {
		if (c)
			z = &c->z;
		if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		if (c)
			c->z_ready = true;
	}
	z->next_in = (uint8_t *)src;
	z->avail_in = (uInt)src_len;
	z->next_out = dst;
	z->avail_out = (uInt)dst_len;
	ret = deflate(z, Z_FINISH);
	int64_t out = ret == Z_STREAM_END ? (int64_t)(dst_len - z->avail_out) : -ENOSPC;
	if (!c)
		deflateEnd(z);
	return out;
}

/*
 * zstd level 3, QEMU's, with a larger long-match table for clusters up to 128 KiB: for inputs
 * of that size zstd sizes level 3's tables at 2^16 entries (8-byte matches, hashLog) and 2^15
 * (short matches, chainLog). Doubling the first finds more long matches with fewer collisions:
 * bench/zstdsweep.c measures frames 0.02% smaller than QEMU's on the bench's text and binaries,
 * and within 4 bytes of QEMU's total on 16 MiB of random letters from a 16-letter alphabet
 * (text with few long repeats); CPU differs by less than the sweep's run-to-run spread. The
 * short table stays QEMU's: doubled, it takes more marginal 5-byte matches that cost more than
 * the literals they replace, and on those letters the frames came out 0.05% larger than QEMU's.
 */
#define ZSTD_SMALL_INPUT (128u << 10)

static int64_t zstd_compress(void *dst, size_t dst_len, const void *src, size_t src_len)
{
	struct cctx *c = cctx_get();
	size_t r;

	if (c && !c->zc) {
		c->zc = ZSTD_createCCtx();
		if (c->zc && (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel,
								  ZSTD_CLEVEL_DEFAULT)) ||
			      ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_hashLog, 17)) ||
			      ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_chainLog, 15)))) {
			ZSTD_freeCCtx(c->zc);
			c->zc = NULL;
		}
	}
	if (c && c->zc && src_len <= ZSTD_SMALL_INPUT)
		r = ZSTD_compress2(c->zc, dst, dst_len, src, src_len);
	else if (c && c->zc) /* the level's own tables, whatever was set above */
		r = ZSTD_compressCCtx(c->zc, dst, dst_len, src, src_len, ZSTD_CLEVEL_DEFAULT);
	else
		r = ZSTD_compress(dst, dst_len, src, src_len, ZSTD_CLEVEL_DEFAULT);
	if (ZSTD_isError(r))
		return -ENOSPC;
	return (int64_t)r;
}

int64_t qcow2_compress(int type, void *dst, size_t dst_len, const void *src, size_t src_len)
{
	int64_t n = type == QCOW2_COMPRESSION_ZSTD ? zstd_compress(dst, dst_len, src, src_len)
						   : zlib_compress(dst, dst_len, src, src_len);
	if (n >= 0 && (size_t)n >= src_len)
		return -ENOSPC;
	return n;
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
		ret = bdev_file_pwrite(s->bs, s->cbuf + whole, n - whole, s->cbuf_off + whole);
	if (ret < 0)
		return s->cbuf_err = ret;
	memmove(s->cbuf, s->cbuf + n, s->cbuf_len - n);
	s->cbuf_len -= n;
	s->cbuf_off += n;
	return 0;
}

int qcow2_cbuf_settle(struct qcow2 *s)
{
	assert(qcow2_lock_held(s));
	return s->cbuf_len ? cbuf_write(s, s->cbuf_len) : s->cbuf_err;
}

/* Lock held: the compressed cluster's len bytes for host offset off, written now or buffered.
 * Consecutive clusters (qcow2_alloc_bytes packs them back to back) extend the buffer; one
 * elsewhere settles it and starts again, from the 4 KiB block holding off (whose first bytes,
 * earlier clusters of the same host cluster, are read back). */
static int cbuf_put(struct qcow2 *s, const void *data, size_t len, uint64_t off)
{
	if (!(s->bs->flags & BDEV_O_UNSAFE) || s->cluster_size < CBUF_ALIGN)
		return bdev_file_pwrite(s->bs, data, len, off);
	if (!s->cbuf) {
		s->cbuf_size = CBUF_BYTES + s->cluster_size + CBUF_ALIGN;
		s->cbuf = aligned_alloc(CBUF_ALIGN, s->cbuf_size);
		if (!s->cbuf)
			return bdev_file_pwrite(s->bs, data, len, off);
	}
	int ret = 0;
	if (s->cbuf_len && off != s->cbuf_off + s->cbuf_len)
		ret = qcow2_cbuf_settle(s);
	if (ret == 0 && !s->cbuf_len) {
		size_t head = off & (CBUF_ALIGN - 1);
		s->cbuf_off = off - head;
		ret = head ? bdev_file_pread(s->bs, s->cbuf, head, s->cbuf_off) : s->cbuf_err;
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

int qcow2_write_compressed(struct qcow2 *s, uint64_t guest_off, const void *data, size_t len)
{
	struct qcow2_free_list fl = {0};
	uint64_t e;
	int ret;

	if (guest_off & (s->cluster_size - 1) || len >= s->cluster_size)
		return err_set(EINVAL, "%s: bad compressed cluster write at %llu", s->bs->filename,
			       (unsigned long long)guest_off);
	qcow2_lock_excl_keep_cbuf(s); /* the buffer is for these writes */
	ret = qcow2_mark_dirty(s);
	if (ret == 0)
		ret = qcow2_get_entry(s, guest_off, &e);
	/* Overwriting frees the old cluster below, and a freed host cluster can be given to a
	 * table that is written straight to the file: none may still have bytes waiting in the
	 * buffer, which would land on that table later. */
	if (ret == 0 && qcow2_cluster_allocated(qcow2_cluster_type(e)))
		ret = qcow2_cbuf_settle(s);
	if (ret == 0) {
		/* The L2 table first, as QEMU does: allocated after the data, a new table would
		 * take the host cluster the next compressed cluster was to run on into, and the
		 * rest of the current one would be lost (bigger files than qemu-img's). */
		uint64_t *tbl;
		ret = qcow2_prepare_l2(s, qcow2_l1_index(s, guest_off), &tbl);
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
	ret = qcow2_set_entry(s, guest_off, QCOW2_OFLAG_COMPRESSED | (uint64_t)off | (nb << shift));
	if (ret == 0 && qcow2_cluster_allocated(qcow2_cluster_type(e)))
		ret = qcow2_free_list_add(s, &fl, e);
out:;
	int ret2 = qcow2_free_pending(s, &fl);
	qcow2_unlock(s);
	return ret < 0 ? ret : ret2;
}
