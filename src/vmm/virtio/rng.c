/* virtio-rng: every device-writable buffer the guest posts is filled from getrandom(). */
#include "vmm/virtio/devices.h"
#include "vmm/virtio/worker.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <sys/random.h>

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_CHAIN  65536 /* bytes per request: the guest asks again for more */

struct rng {
	struct virtio_dev dev;
	struct virtio_worker w;
	struct virtq_elem e;
	struct iovec iov[RNG_QUEUE_SIZE];
};

static int rng_fill(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	uint32_t done = 0;

	for (unsigned i = e->nout; i < e->nout + e->nin && done < RNG_MAX_CHAIN; i++) {
		size_t want = e->iov[i].iov_len;
		ssize_t n;
		if (want > RNG_MAX_CHAIN - done)
			want = RNG_MAX_CHAIN - done;
		n = getrandom(e->iov[i].iov_base, want, 0);
		if (n <= 0)
			break;
		done += (uint32_t)n;
		if ((size_t)n < want)
			break;
	}
	*written = done;
	return 0;
}

static void rng_kick(struct virtio_worker *w, int idx)
{
	struct rng *r = w->opaque;

	virtio_eventfd_drain(w->fds[idx]);
	virtio_queue_drain(&r->dev, 0, &r->e, rng_fill);
}

static int rng_activate(struct virtio_dev *d)
{
	struct rng *r = d->priv;

	virtio_worker_init(&r->w, r);
	virtio_worker_add(&r->w, d->q[0].kick_fd, POLLIN, rng_kick);
	if (virtio_worker_start(&r->w, "virtio-rng") < 0)
		return -EIO;
	rng_kick(&r->w, 0);
	return 0;
}

static void rng_reset(struct virtio_dev *d)
{
	struct rng *r = d->priv;
	virtio_worker_stop(&r->w);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "rng",
    .type = VIRTIO_ID_RNG,
    .class_code = 0x00ff00,
    .activate = rng_activate,
    .reset = rng_reset,
};

int virtio_rng_create(struct virtio_dev **out, const struct virtio_mem *mem, struct kvm_irq *irq)
{
	struct rng *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	r->e.iov = r->iov;
	ret = virtio_dev_init(&r->dev, &rng_ops, r, mem, irq, 1, RNG_QUEUE_SIZE, 0, 0);
	if (ret < 0) {
		virtio_rng_destroy(&r->dev);
		return ret;
	}
	*out = &r->dev;
	return 0;
}

void virtio_rng_destroy(struct virtio_dev *d)
{
	virtio_dev_destroy(d);
	free(d);
}
