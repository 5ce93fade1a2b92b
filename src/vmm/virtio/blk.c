/*
 * virtio-blk on a struct bdev. A dispatcher thread turns queue kicks into wake-ups of a small
 * pool of I/O threads; each pops one request, does the I/O straight between the block layer and
 * guest memory (blk_exec.c, shared with serve/'s vhost-user-blk), completes it and takes the
 * next, so up to BLK_THREADS requests are in flight. Every length comes from a validated chain
 * and is checked against the disk size; the host allocates nothing per request (each I/O
 * thread's bounce buffer, for formats without vectored I/O, is allocated once).
 */
#include "vmm/virtio/blk_exec.h"
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
#define BLK_THREADS    4

struct blk;

struct blk_thread {
	struct blk *b;
	pthread_t tid;
	struct virtq_elem e;
	struct iovec iov[BLK_QUEUE_SIZE];
	struct iovec part[BLK_QUEUE_SIZE]; /* the data pieces of the current request */
	struct virtio_blk_exec x;
};

struct blk {
	struct virtio_dev dev;
	struct bdev *bs;
	bool readonly;
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

static void *blk_thread_main(void *arg)
{
	struct blk_thread *t = arg;
	struct blk *b = t->b;
	struct virtio_queue *q = &b->dev.q[0];

	pthread_mutex_lock(&q->lock);
	while (!b->stopping) {
		int64_t used;
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
		used = virtio_blk_exec(&t->x, &t->e);
		pthread_mutex_lock(&q->lock);
		if (used < 0) {
			virtio_dev_fail(&b->dev, "request without header or status byte");
			continue;
		}
		virtq_push(&q->vq, t->e.head, (uint32_t)used);
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
	pthread_cond_init(&b->wake, NULL);
	for (int i = 0; i < BLK_THREADS; i++) {
		struct blk_thread *t = &b->t[i];
		t->b = b;
		t->e.iov = t->iov;
		t->x.bs = b->bs;
		t->x.readonly = b->readonly;
		t->x.part = t->part;
		memcpy(t->x.serial, o->serial, sizeof(t->x.serial));
	}
	features = virtio_blk_config_init(&b->cfg, b->bs, b->readonly, BLK_QUEUE_SIZE - 2, 1);
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
		virtio_blk_exec_free(&b->t[i].x);
	free(b);
}

struct bdev *virtio_blk_bdev(struct virtio_dev *d)
{
	return ((struct blk *)d)->bs;
}
