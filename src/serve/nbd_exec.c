/* NBD requests on a bdev: reads (sparse with structured replies), writes, zeroes, trim, cache,
 * flush and block status in the base:allocation and qemu:allocation-depth contexts. */
#include "serve/nbd_exec.h"
#include "block/block.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A read's data and zero ranges. Past this many the rest is sent as data: a reply of many tiny
 * chunks costs the client more than the zeroes would. */
#define MAX_RUNS 1024

/* Descriptors in one block status chunk (1 MiB of them, as qemu-nbd sends at most). */
#define MAX_EXTENTS (1u << 17)

static void reply_status(const struct nbd_exec_ctx *ctx, const struct nbd_request *req, int ret,
			 const char *what, struct nbd_buf *out)
{
	if (ret < 0)
		nbd_put_error(out, ctx->structured, req->cookie, nbd_errno(ret), what);
	else
		nbd_put_simple(out, req->cookie, 0);
}

/* One data chunk (or a simple reply) with the whole range read. */
static int read_flat(const struct nbd_exec_ctx *ctx, const struct nbd_request *req,
		     struct nbd_buf *out)
{
	size_t start = out->len;

	if (!req->len) {
		if (ctx->structured)
			nbd_put_done(out, req->cookie);
		else
			nbd_put_simple(out, req->cookie, 0);
		return 0;
	}
	if (!nbd_buf_reserve(out, NBD_CHUNK_HDR + 8 + (size_t)req->len))
		return 0;
	if (ctx->structured) {
		nbd_put_chunk_header(out, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
				     req->cookie, 8 + req->len);
		nbd_buf_put64(out, req->offset);
	} else {
		nbd_put_simple(out, req->cookie, 0);
	}
	uint8_t *data = nbd_buf_extend(out, req->len);
	int ret = bdev_read(ctx->bs, req->offset, data, req->len);
	if (ret < 0) {
		out->len = start;
		nbd_put_error(out, ctx->structured, req->cookie, nbd_errno(ret), "read failed");
	}
	return ret;
}

/* A range of a read: zeroes, or data that is read, or data that stays in a file (plain). */
struct run {
	uint64_t off, len;
	bool zero, plain;
	int fd;
	uint64_t host;
};

/* Data stored as is in an image file (not compressed, not a zero cluster): sendfile can take
 * it from there. Past the end of the file it reads as zeroes, which the sender supplies. */
static bool plain_data(const struct bdev_extent *e)
{
	return (e->flags & (BDEV_ST_DATA | BDEV_ST_OFFSET)) == (BDEV_ST_DATA | BDEV_ST_OFFSET) &&
	       !(e->flags & (BDEV_ST_ZERO | BDEV_ST_COMPRESSED)) && e->file && e->file->fd >= 0;
}

static bool mergeable(const struct run *a, const struct run *b)
{
	if (a->zero != b->zero || a->plain != b->plain)
		return false;
	return !a->plain || (a->fd == b->fd && a->host + a->len == b->host);
}

/* The runs of [off, off+len), neighbours that can go out together merged; files only when
 * files is set. A failed status query is no error: the rest is simply read. */
static int collect_runs(struct bdev *bs, uint64_t off, uint64_t len, struct run *runs, bool files)
{
	int n = 0;

	while (len) {
		struct bdev_extent e;
		if (n == MAX_RUNS - 1 || bdev_block_status_chain(bs, off, len, &e) < 0) {
			e.length = len;
			e.flags = BDEV_ST_DATA;
			e.file = NULL;
		}
		struct run r = {off, e.length, e.flags & BDEV_ST_ZERO, files && plain_data(&e),
				-1,  0};
		if (r.plain) {
			r.fd = e.file->fd;
			r.host = e.host_offset;
		}
		if (n && mergeable(&runs[n - 1], &r))
			runs[n - 1].len += r.len;
		else
			runs[n++] = r;
		off += e.length;
		len -= e.length;
	}
	return n;
}

static bool add_piece(struct nbd_fpieces *fp, size_t at, int fd, uint64_t off, size_t len)
{
	if (fp->n == fp->cap) {
		int cap = fp->cap ? 2 * fp->cap : 16;
		struct nbd_fpiece *p = realloc(fp->p, (size_t)cap * sizeof(*p));
		if (!p)
			return false;
		fp->p = p;
		fp->cap = cap;
	}
	fp->p[fp->n++] = (struct nbd_fpiece){at, fd, off, len};
	return true;
}

/* Structured read: zero ranges as hole chunks, the rest as data chunks (data runs of one chunk
 * may mix read and file pieces), the last chunk DONE (all data is read, or pinned down in
 * files nobody writes, before anything is sent, so no error can follow it). */
static int read_sparse(const struct nbd_exec_ctx *ctx, const struct nbd_request *req,
		       struct nbd_buf *out, struct nbd_fpieces *fp)
{
	struct run *runs = malloc(MAX_RUNS * sizeof(*runs));
	size_t start = out->len, total = 0;
	int n, ret = 0;

	if (!runs)
		return read_flat(ctx, req, out);
	n = collect_runs(ctx->bs, req->offset, req->len, runs, fp != NULL);
	for (int i = 0; i < n; i++)
		total += NBD_CHUNK_HDR + 8 + (runs[i].zero ? 4 : runs[i].plain ? 0 : runs[i].len);
	if (!nbd_buf_reserve(out, total)) {
		free(runs);
		return 0;
	}
	for (int i = 0; i < n && ret == 0;) {
		const struct run *r = &runs[i];
		int j = i + 1; /* runs i..j-1 form one chunk */
		uint64_t len = r->len;
		while (j < n && runs[j].zero == r->zero && !r->zero) /* data: one chunk */
			len += runs[j++].len;
		uint16_t flags = j == n ? NBD_REPLY_FLAG_DONE : 0;
		if (r->zero) {
			nbd_put_chunk_header(out, flags, NBD_REPLY_TYPE_OFFSET_HOLE, req->cookie,
					     12);
			nbd_buf_put64(out, r->off);
			nbd_buf_put32(out, (uint32_t)r->len);
			i = j;
			continue;
		}
		nbd_put_chunk_header(out, flags, NBD_REPLY_TYPE_OFFSET_DATA, req->cookie,
				     (uint32_t)(8 + len));
		nbd_buf_put64(out, r->off);
		for (; i < j && ret == 0; i++) {
			r = &runs[i];
			if (!r->plain || !add_piece(fp, out->len, r->fd, r->host, r->len))
				ret =
				    bdev_read(ctx->bs, r->off, nbd_buf_extend(out, r->len), r->len);
		}
	}
	free(runs);
	if (ret < 0) {
		if (fp)
			fp->n = 0;
		out->len = start;
		nbd_put_error(out, true, req->cookie, nbd_errno(ret), "read failed");
	}
	return ret;
}

/* The flags of one extent in a context. */
static uint32_t status_flags(const struct bdev_extent *e, bool depth)
{
	if (depth) /* qemu:allocation-depth: 0 unallocated, 1 this image, 2 its backing, ... */
		return (e->flags & BDEV_ST_ALLOCATED) ? (uint32_t)e->depth + 1 : 0;
	return ((e->flags & BDEV_ST_DATA) ? 0 : NBD_STATE_HOLE) |
	       ((e->flags & BDEV_ST_ZERO) ? NBD_STATE_ZERO : 0);
}

/* One NBD_REPLY_TYPE_BLOCK_STATUS chunk for a context: consecutive descriptors from the
 * request's offset, neighbours with equal flags merged, at most max of them. */
static int status_chunk(const struct nbd_exec_ctx *ctx, const struct nbd_request *req, bool depth,
			uint16_t flags, struct nbd_buf *out)
{
	uint64_t off = req->offset, end = req->offset + req->len;
	unsigned max = (req->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : MAX_EXTENTS, n = 0;
	size_t hdr = out->len;
	uint32_t last_len = 0, last_flags = 0;

	if (!nbd_buf_extend(out, NBD_CHUNK_HDR))
		return 0;
	nbd_buf_put32(out, depth ? NBD_META_ALLOCATION_DEPTH : NBD_META_BASE_ALLOCATION);
	while (off < end) {
		struct bdev_extent e;
		int ret = bdev_block_status_chain(ctx->bs, off, end - off, &e);
		if (ret < 0)
			return ret;
		uint32_t f = status_flags(&e, depth);
		if (n && f == last_flags && (uint64_t)last_len + e.length <= UINT32_MAX) {
			last_len += (uint32_t)e.length;
			if (!out->oom)
				be32_put(out->data + out->len - 8, last_len);
		} else {
			if (n == max)
				break;
			last_len = (uint32_t)e.length;
			last_flags = f;
			nbd_buf_put32(out, last_len);
			nbd_buf_put32(out, f);
			n++;
		}
		off += e.length;
	}
	if (!out->oom)
		nbd_chunk_header(out->data + hdr, flags, NBD_REPLY_TYPE_BLOCK_STATUS, req->cookie,
				 4 + 8 * n);
	return 0;
}

static int block_status(const struct nbd_exec_ctx *ctx, const struct nbd_request *req,
			struct nbd_buf *out)
{
	size_t start = out->len;
	int ret = 0;

	if (ctx->meta_base)
		ret = status_chunk(ctx, req, false, ctx->meta_depth ? 0 : NBD_REPLY_FLAG_DONE, out);
	if (ret == 0 && ctx->meta_depth)
		ret = status_chunk(ctx, req, true, NBD_REPLY_FLAG_DONE, out);
	if (ret < 0) {
		out->len = start;
		nbd_put_error(out, true, req->cookie, nbd_errno(ret), "block status failed");
	}
	return ret;
}

/* CACHE: read the range so later reads find it in the host's page cache. */
static int cache(struct bdev *bs, uint64_t off, uint64_t len)
{
	size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
	uint8_t *buf = chunk ? malloc(chunk) : NULL;
	int ret = 0;

	if (chunk && !buf)
		return -ENOMEM;
	while (len && ret == 0) {
		size_t n = len < chunk ? (size_t)len : chunk;
		ret = bdev_read(bs, off, buf, n);
		off += n;
		len -= n;
	}
	free(buf);
	return ret;
}

static int write_zeroes(struct bdev *bs, const struct nbd_request *req)
{
	unsigned flags = (req->flags & NBD_CMD_FLAG_NO_HOLE) ? 0 : BDEV_ZERO_MAY_UNMAP;

	if (req->flags & NBD_CMD_FLAG_FAST_ZERO)
		flags |= BDEV_ZERO_NO_FALLBACK;
	return bdev_write_zeroes(bs, req->offset, req->len, flags);
}

int nbd_exec(const struct nbd_exec_ctx *ctx, const struct nbd_request *req, const uint8_t *payload,
	     struct nbd_buf *out, struct nbd_fpieces *fp)
{
	struct bdev *bs = ctx->bs;
	bool fua = req->flags & NBD_CMD_FLAG_FUA;
	int ret = 0;

	if (req->error) {
		nbd_put_error(out, ctx->structured, req->cookie, req->error, req->msg);
		return 0;
	}
	switch (req->type) {
	case NBD_CMD_READ:
		if (ctx->structured && req->len && !(req->flags & NBD_CMD_FLAG_DF))
			return read_sparse(ctx, req, out, fp);
		return read_flat(ctx, req, out);
	case NBD_CMD_BLOCK_STATUS:
		return block_status(ctx, req, out);
	case NBD_CMD_WRITE:
		ret = bdev_write(bs, req->offset, payload, req->len);
		break;
	case NBD_CMD_TRIM:
		ret = bdev_discard(bs, req->offset, req->len);
		break;
	case NBD_CMD_WRITE_ZEROES:
		ret = write_zeroes(bs, req);
		if (ret == -ENOTSUP && (req->flags & NBD_CMD_FLAG_FAST_ZERO)) {
			nbd_put_error(out, ctx->structured, req->cookie, NBD_ENOTSUP,
				      "zeroing this range is not faster than writing");
			return 0;
		}
		break;
	case NBD_CMD_CACHE:
		fua = false;
		ret = cache(bs, req->offset, req->len);
		break;
	case NBD_CMD_FLUSH:
		fua = true;
		break;
	default: /* nbd_session_feed set an error for anything else */
		nbd_put_error(out, ctx->structured, req->cookie, NBD_EINVAL, "unknown command");
		return 0;
	}
	if (ret == 0 && fua)
		ret = bdev_flush(bs);
	reply_status(ctx, req, ret, "request failed", out);
	return ret;
}
