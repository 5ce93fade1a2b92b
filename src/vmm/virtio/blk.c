/*
 * virtio-blk on a struct bdev. A dispatcher thread turns queue kicks into wake-ups of a small
 * pool of I/O threads; each pops one request, does the I/O straight between the block layer and
 * guest memory (blk_rw), completes it and takes the next, so up to BLK_THREADS
 * requests are in flight. Every length comes from a validated chain and is checked against the
 * disk size; the host allocates nothing per request (each I/O thread's bounce buffer, for formats
 * without vectored I/O, is allocated once).
 */
#include "vmm/virtio/devices.h"
#include "vmm/virtio/worker.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* QEMU's size: seg_max = 254 lets the guest put a 1 MiB buffer of scattered pages in two requests
 * (with 128 it took three) */
#define BLK_QUEUE_SIZE 256
/* Requests of formats without vectored I/O go through one buffer per I/O thread up to this size. */
#define BLK_BOUNCE_MAX (1u << 20)
#define BLK_THREADS    4
#define SECTOR	       512ull

struct blk;

struct blk_thread {
	struct blk *b;
	pthread_t tid;
	struct virtq_elem e;
	struct iovec iov[BLK_QUEUE_SIZE];
	struct iovec part[BLK_QUEUE_SIZE]; /* the data pieces of the current request */
	uint8_t *bounce;		   /* BLK_BOUNCE_MAX bytes, page-aligned, on first use */
};

struct blk {
	struct virtio_dev dev;
	struct bdev *bs;
	bool readonly;
	char serial[21];
	struct virtio_blk_config cfg;
	struct virtio_worker dispatcher;
	pthread_cond_t wake; /* with dev.q[0].lock */
	bool stopping;
	struct blk_thread t[BLK_THREADS];
};

void virtio_blk_opts_free(struct virtio_blk_opts *o)
{
	free(o->path);
	free(o->format);
	o->path = o->format = NULL;
}

/* Move len bytes between the disk at off and the iovecs, starting skip bytes into them: one
 * vectored call where the format takes vectors (raw: one preadv/pwritev for the whole request;
 * qcow2: its own vectored path), else gathered through the thread's bounce buffer into one
 * block-layer call, else one call per piece. */
static int blk_rw(struct blk_thread *t, const struct iovec *iov, unsigned n, size_t skip,
		  uint64_t len, uint64_t off, bool write)
{
	struct bdev *bs = t->b->bs;
	int slice = iov_slice(iov, n, skip, (size_t)len, t->part);

	if (slice < 0)
		return -EINVAL; /* the chain is shorter than the request (checked by the caller) */
	unsigned m = (unsigned)slice;
	if (m > 1 && !bdev_vectored(bs) && len <= BLK_BOUNCE_MAX) {
		if (!t->bounce && !(t->bounce = aligned_alloc(4096, BLK_BOUNCE_MAX)))
			return -ENOMEM;
		if (write) {
			iov_to_buf(t->part, m, 0, t->bounce, len);
			return bdev_write(bs, off, t->bounce, len);
		}
		int ret = bdev_read(bs, off, t->bounce, len);
		if (ret == 0)
			iov_from_buf(t->part, m, 0, t->bounce, len);
		return ret;
	}
	return write ? bdev_writev(bs, off, t->part, (int)m) : bdev_readv(bs, off, t->part, (int)m);
}

/* Sector range inside the disk? Written not to overflow. */
static bool in_disk(struct blk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t size = b->bs->size;
	return sector <= size / SECTOR && bytes <= size - sector * SECTOR;
}

static uint8_t blk_segments(struct blk *b, struct virtq_elem *e, uint32_t type)
{
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t data = e->out_len - sizeof(struct virtio_blk_outhdr);
	int ret;

	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (data != sizeof(seg)) /* max_discard_seg = max_write_zeroes_seg = 1 */
		return VIRTIO_BLK_S_UNSUPP;
	iov_to_buf(e->iov, e->nout, sizeof(struct virtio_blk_outhdr), &seg, sizeof(seg));
	if (!in_disk(b, seg.sector, (uint64_t)seg.num_sectors * SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (type == VIRTIO_BLK_T_DISCARD) {
		if (seg.flags)
			return VIRTIO_BLK_S_UNSUPP;
		ret = bdev_discard(b->bs, seg.sector * SECTOR, (uint64_t)seg.num_sectors * SECTOR);
		/* discard is a hint: a format that cannot drop the range still succeeds */
		return ret < 0 && ret != -ENOTSUP ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	}
	if (seg.flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	ret = bdev_write_zeroes(
	    b->bs, seg.sector * SECTOR, (uint64_t)seg.num_sectors * SECTOR,
	    (seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ? BDEV_ZERO_MAY_UNMAP : 0);
	return ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

/* Execute one request; *written = bytes stored into the guest's in buffers. */
static uint8_t blk_request(struct blk_thread *t, struct virtq_elem *e, uint32_t *written)
{
	struct blk *b = t->b;
	struct virtio_blk_outhdr h;
	const struct iovec *in = e->iov + e->nout;
	uint64_t data_in = e->in_len - 1, data_out = e->out_len - sizeof(h);

	iov_to_buf(e->iov, e->nout, 0, &h, sizeof(h));
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
		if (data_in % SECTOR || !in_disk(b, h.sector, data_in))
			return VIRTIO_BLK_S_IOERR;
		if (blk_rw(t, in, e->nin, 0, data_in, h.sector * SECTOR, false) < 0)
			return VIRTIO_BLK_S_IOERR;
		*written = (uint32_t)(data_in > UINT32_MAX - 1 ? UINT32_MAX - 1 : data_in);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		if (b->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (data_out % SECTOR || !in_disk(b, h.sector, data_out))
			return VIRTIO_BLK_S_IOERR;
		if (blk_rw(t, e->iov, e->nout, sizeof(h), data_out, h.sector * SECTOR, true) < 0)
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return bdev_flush(b->bs) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		*written = (uint32_t)iov_from_buf(
		    in, e->nin, 0, b->serial,
		    data_in < VIRTIO_BLK_ID_BYTES ? data_in : VIRTIO_BLK_ID_BYTES);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_segments(b, e, h.type);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void *blk_thread_main(void *arg)
{
	struct blk_thread *t = arg;
	struct blk *b = t->b;
	struct virtio_queue *q = &b->dev.q[0];

	pthread_mutex_lock(&q->lock);
	while (!b->stopping) {
		uint32_t written = 0;
		uint8_t st;
		int r = virtio_dev_broken(&b->dev) ? 0 : virtq_pop(&q->vq, &t->e);
		if (r < 0)
			virtio_dev_fail(&b->dev, err_msg());
		if (r <= 0) {
			if (r == 0 && !virtio_dev_broken(&b->dev) && virtq_notify_on(&q->vq))
				continue;
			pthread_cond_wait(&b->wake, &q->lock);
			continue;
		}
		/* More waiting: wake one more thread (a kick wakes one, so idle threads are not all
		 * woken for a single request) */
		if (virtq_has_avail(&q->vq))
			pthread_cond_signal(&b->wake);
		pthread_mutex_unlock(&q->lock);
		/* A header and a status byte at least; anything else is the guest's bug. */
		if (t->e.out_len < sizeof(struct virtio_blk_outhdr) || t->e.in_len < 1)
			st = 0xff;
		else
			st = blk_request(t, &t->e, &written);
		if (st != 0xff)
			iov_from_buf(t->e.iov + t->e.nout, t->e.nin, t->e.in_len - 1, &st, 1);
		pthread_mutex_lock(&q->lock);
		if (st == 0xff) {
			virtio_dev_fail(&b->dev, "request without header or status byte");
			continue;
		}
		virtq_push(&q->vq, t->e.head, written + 1);
		virtio_dev_queue_done(&b->dev, 0);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void blk_kick(struct virtio_worker *w, int idx)
{
	struct blk *b = w->opaque;
	struct virtio_queue *q = &b->dev.q[0];

	virtio_eventfd_drain(w->fds[idx]);
	pthread_mutex_lock(&q->lock);
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&q->lock);
}

static void blk_stop(struct blk *b, int nthreads)
{
	struct virtio_queue *q = &b->dev.q[0];

	virtio_worker_stop(&b->dispatcher);
	pthread_mutex_lock(&q->lock);
	b->stopping = true;
	pthread_cond_broadcast(&b->wake);
	pthread_mutex_unlock(&q->lock);
	for (int i = 0; i < nthreads; i++)
		pthread_join(b->t[i].tid, NULL);
}

static int blk_activate(struct virtio_dev *d)
{
	struct blk *b = d->priv;
	int i, ret;

	b->stopping = false;
	for (i = 0; i < BLK_THREADS; i++) {
		ret = pthread_create(&b->t[i].tid, NULL, blk_thread_main, &b->t[i]);
		if (ret) {
			blk_stop(b, i);
			return err_sys(ret, "virtio-blk: starting I/O threads");
		}
		pthread_setname_np(b->t[i].tid, "virtio-blk-io");
	}
	virtio_worker_init(&b->dispatcher, b);
	virtio_worker_add(&b->dispatcher, d->q[0].kick_fd, POLLIN, blk_kick);
	ret = virtio_worker_start(&b->dispatcher, "virtio-blk");
	if (ret < 0) {
		blk_stop(b, BLK_THREADS);
		return ret;
	}
	/* buffers queued before DRIVER_OK */
	blk_kick(&b->dispatcher, 0);
	return 0;
}

static void blk_reset(struct virtio_dev *d)
{
	blk_stop(d->priv, BLK_THREADS);
}

static void blk_cfg_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct blk *b = d->priv;
	memcpy(data, (uint8_t *)&b->cfg + off, len);
}

static const struct virtio_dev_ops blk_ops = {
    .name = "blk",
    .type = VIRTIO_ID_BLOCK,
    .class_code = 0x018000, /* mass storage, other */
    .cfg_read = blk_cfg_read,
    .activate = blk_activate,
    .reset = blk_reset,
};

int virtio_blk_create(struct virtio_dev **out, const struct virtio_blk_opts *o,
		      const struct virtio_mem *mem, struct kvm_irq *irq)
{
	struct blk *b = calloc(1, sizeof(*b));
	uint64_t features;
	uint32_t cl;
	int ret;

	if (!b)
		return -ENOMEM;
	ret =
	    bdev_open(&b->bs, o->path, o->format, (o->readonly ? 0 : BDEV_O_RDWR) | o->bdev_flags);
	if (ret < 0) {
		free(b);
		return ret;
	}
	b->readonly = o->readonly || b->bs->read_only;
	memcpy(b->serial, o->serial, sizeof(b->serial));
	pthread_cond_init(&b->wake, NULL);
	for (int i = 0; i < BLK_THREADS; i++) {
		b->t[i].b = b;
		b->t[i].e.iov = b->t[i].iov;
	}
	b->cfg.capacity = b->bs->size / SECTOR;
	b->cfg.seg_max = BLK_QUEUE_SIZE - 2;
	b->cfg.blk_size = 512;
	b->cfg.num_queues = 1;
	cl = bdev_cluster_size(b->bs);
	b->cfg.max_discard_sectors = 1u << 22;
	b->cfg.max_discard_seg = 1;
	b->cfg.discard_sector_alignment = cl ? cl / SECTOR : 8;
	b->cfg.max_write_zeroes_sectors = 1u << 22;
	b->cfg.max_write_zeroes_seg = 1;
	b->cfg.write_zeroes_may_unmap = 1;
	features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		   (1ull << VIRTIO_BLK_F_FLUSH);
	if (b->readonly)
		features |= 1ull << VIRTIO_BLK_F_RO;
	else
		features |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	ret = virtio_dev_init(&b->dev, &blk_ops, b, mem, irq, 1, BLK_QUEUE_SIZE, features,
			      sizeof(b->cfg));
	if (ret < 0) {
		virtio_blk_destroy(&b->dev);
		return ret;
	}
	*out = &b->dev;
	return 0;
}

int virtio_blk_close(struct virtio_dev *d)
{
	struct blk *b = (struct blk *)d; /* dev is the first member */
	int ret;

	if (!b->bs)
		return 0;
	/* the reset joins the I/O threads, each once its request is complete */
	virtio_dev_destroy(d);
	ret = bdev_flush(b->bs);
	if (ret < 0)
		ret = err_prefix(ret, "closing the disks: ");
	bdev_close(b->bs);
	b->bs = NULL;
	return ret;
}

void virtio_blk_destroy(struct virtio_dev *d)
{
	struct blk *b = (struct blk *)d;

	virtio_blk_close(d);
	pthread_cond_destroy(&b->wake);
	for (int i = 0; i < BLK_THREADS; i++)
		free(b->t[i].bounce);
	free(b);
}

struct bdev *virtio_blk_bdev(struct virtio_dev *d)
{
	return ((struct blk *)d)->bs;
}
