/* virtio-blk requests on a bdev: see blk_exec.h. */
#include "vmm/virtio/blk_exec.h"
#include "block/block.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512ull

/* Move len bytes between the disk at off and the iovecs, starting skip bytes into them: one
 * vectored call where the format takes vectors (raw: one preadv/pwritev for the whole request;
 * qcow2: its own vectored path), else gathered through the thread's bounce buffer into one
 * block-layer call, else one call per piece. */
static int blk_rw(struct virtio_blk_exec *x, const struct iovec *iov, unsigned n, size_t skip,
		  uint64_t len, uint64_t off, bool write)
{
	struct bdev *bs = x->bs;
	int slice = iov_slice(iov, n, skip, (size_t)len, x->part);

	if (slice < 0)
		return -EINVAL; /* the chain is shorter than the request (checked by the caller) */
	unsigned m = (unsigned)slice;
	if (m > 1 && !bdev_vectored(bs) && len <= VIRTIO_BLK_BOUNCE_MAX) {
		if (!x->bounce && !(x->bounce = aligned_alloc(4096, VIRTIO_BLK_BOUNCE_MAX)))
			return -ENOMEM;
		if (write) {
			iov_to_buf(x->part, m, 0, x->bounce, len);
			return bdev_write(bs, off, x->bounce, len);
		}
		int ret = bdev_read(bs, off, x->bounce, len);
		if (ret == 0)
			iov_from_buf(x->part, m, 0, x->bounce, len);
		return ret;
	}
	return write ? bdev_writev(bs, off, x->part, (int)m) : bdev_readv(bs, off, x->part, (int)m);
}

/* Sector range inside the disk? Written not to overflow. */
static bool in_disk(const struct virtio_blk_exec *x, uint64_t sector, uint64_t bytes)
{
	uint64_t size = x->bs->size;
	return sector <= size / SECTOR && bytes <= size - sector * SECTOR;
}

static uint8_t blk_segments(struct virtio_blk_exec *x, const struct virtq_elem *e, uint32_t type)
{
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t data = e->out_len - sizeof(struct virtio_blk_outhdr);
	int ret;

	if (x->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (data != sizeof(seg)) /* max_discard_seg = max_write_zeroes_seg = 1 */
		return VIRTIO_BLK_S_UNSUPP;
	iov_to_buf(e->iov, e->nout, sizeof(struct virtio_blk_outhdr), &seg, sizeof(seg));
	if (!in_disk(x, seg.sector, (uint64_t)seg.num_sectors * SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (type == VIRTIO_BLK_T_DISCARD) {
		if (seg.flags)
			return VIRTIO_BLK_S_UNSUPP;
		ret = bdev_discard(x->bs, seg.sector * SECTOR, (uint64_t)seg.num_sectors * SECTOR);
		/* discard is a hint: a format that cannot drop the range still succeeds */
		return ret < 0 && ret != -ENOTSUP ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	}
	if (seg.flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	ret = bdev_write_zeroes(
	    x->bs, seg.sector * SECTOR, (uint64_t)seg.num_sectors * SECTOR,
	    (seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ? BDEV_ZERO_MAY_UNMAP : 0);
	return ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

/* Execute one request with a header and a status byte; *written = bytes stored into the in
 * buffers before the status byte. */
static uint8_t blk_request(struct virtio_blk_exec *x, const struct virtq_elem *e, uint32_t *written)
{
	struct virtio_blk_outhdr h;
	const struct iovec *in = e->iov + e->nout;
	uint64_t data_in = e->in_len - 1, data_out = e->out_len - sizeof(h);

	iov_to_buf(e->iov, e->nout, 0, &h, sizeof(h));
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
		if (data_in % SECTOR || !in_disk(x, h.sector, data_in))
			return VIRTIO_BLK_S_IOERR;
		if (blk_rw(x, in, e->nin, 0, data_in, h.sector * SECTOR, false) < 0)
			return VIRTIO_BLK_S_IOERR;
		*written = (uint32_t)(data_in > UINT32_MAX - 1 ? UINT32_MAX - 1 : data_in);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		if (x->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (data_out % SECTOR || !in_disk(x, h.sector, data_out))
			return VIRTIO_BLK_S_IOERR;
		if (blk_rw(x, e->iov, e->nout, sizeof(h), data_out, h.sector * SECTOR, true) < 0)
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return bdev_flush(x->bs) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		*written = (uint32_t)iov_from_buf(
		    in, e->nin, 0, x->serial,
		    data_in < VIRTIO_BLK_ID_BYTES ? data_in : VIRTIO_BLK_ID_BYTES);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_segments(x, e, h.type);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

int64_t virtio_blk_exec(struct virtio_blk_exec *x, const struct virtq_elem *e)
{
	uint32_t written = 0;
	uint8_t st;

	/* A header and a status byte at least; anything else is the guest's bug. */
	if (e->out_len < sizeof(struct virtio_blk_outhdr) || e->in_len < 1)
		return err_set(EINVAL, "request without header or status byte");
	st = blk_request(x, e, &written);
	iov_from_buf(e->iov + e->nout, e->nin, e->in_len - 1, &st, 1);
	return (int64_t)written + 1;
}

void virtio_blk_exec_free(struct virtio_blk_exec *x)
{
	free(x->bounce);
	x->bounce = NULL;
}

uint64_t virtio_blk_config_init(struct virtio_blk_config *cfg, struct bdev *bs, bool readonly,
				uint32_t seg_max, uint16_t num_queues)
{
	uint32_t cl = bdev_cluster_size(bs);
	uint64_t features;

	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = bs->size / SECTOR;
	cfg->seg_max = seg_max;
	cfg->blk_size = 512;
	cfg->num_queues = num_queues;
	cfg->max_discard_sectors = 1u << 22;
	cfg->max_discard_seg = 1;
	cfg->discard_sector_alignment = cl ? cl / SECTOR : 8;
	cfg->max_write_zeroes_sectors = 1u << 22;
	cfg->max_write_zeroes_seg = 1;
	cfg->write_zeroes_may_unmap = 1;
	features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		   (1ull << VIRTIO_BLK_F_FLUSH);
	if (readonly)
		features |= 1ull << VIRTIO_BLK_F_RO;
	else
		features |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	return features;
}
