/*
 * vhost-user-blk's rings and I/O threads. Each I/O thread takes the next chain from whichever
 * running ring has one (round robin over the rings), does the request on the block layer with
 * the device's lock released (virtio_blk_exec, the VMM's own request code), puts it on the used
 * ring and signals the front-end's call eventfd when the driver wants an interrupt. The loop
 * thread only turns kicks into wake-ups, so a request costs two thread hand-offs and no copy.
 */
#include "serve/vhost_user_blk_int.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static bool runnable(const struct vub_ring *r)
{
	return r->started && r->enabled && !r->broken && !r->paused;
}

/* lock: a ring with chains waiting, the search starting after the last one served. */
static struct vub_ring *next_ring(struct vhost_user_blk *d, unsigned *idx)
{
	for (unsigned k = 0; k < VHOST_USER_BLK_MAX_QUEUES; k++) {
		unsigned i = (d->next_ring + k) % VHOST_USER_BLK_MAX_QUEUES;
		struct vub_ring *r = &d->ring[i];
		if (r->pending && runnable(r)) {
			d->next_ring = i + 1;
			*idx = i;
			return r;
		}
	}
	return NULL;
}

static void signal_fd(int fd)
{
	if (fd >= 0 && eventfd_write(fd, 1) < 0) {
		/* full or gone: the front-end is not reading it, nothing we can add */
	}
}

void vub_ring_fail(struct vhost_user_blk *d, unsigned i, const char *why)
{
	struct vub_ring *r = &d->ring[i];

	if (r->broken)
		return;
	r->broken = true;
	vub_log(d, "ring %u: %s; it stops until the front-end sets it up again", i, why);
	signal_fd(r->err_fd);
}

/* lock: chain e of ring i is done with used bytes (or the request was malformed: used < 0). */
static void complete(struct vhost_user_blk *d, unsigned i, struct vub_worker *t, int64_t used)
{
	struct vub_ring *r = &d->ring[i];

	r->busy--;
	if (used < 0)
		vub_ring_fail(d, i, err_msg());
	else if (r->started && !r->broken) {
		virtq_push(&r->vq, t->e.head, (uint32_t)used);
		if (virtq_should_notify(&r->vq))
			signal_fd(r->call_fd);
	}
	if (r->paused && r->busy == 0)
		pthread_cond_broadcast(&d->idle);
}

static void *worker_main(void *arg)
{
	struct vub_worker *t = arg;
	struct vhost_user_blk *d = t->d;

	pthread_mutex_lock(&d->lock);
	while (!d->quit) {
		unsigned i;
		struct vub_ring *r = next_ring(d, &i);
		if (!r) {
			pthread_cond_wait(&d->work, &d->lock);
			continue;
		}
		int got = virtq_pop(&r->vq, &t->e);
		if (got < 0) {
			vub_ring_fail(d, i, err_msg());
			continue;
		}
		if (got == 0) {
			/* Empty: ask for kicks again, unless chains came meanwhile. */
			if (!virtq_notify_on(&r->vq))
				r->pending = false;
			continue;
		}
		r->busy++;
		/* More waiting: one more thread (a kick wakes one, not the whole pool). */
		if (virtq_has_avail(&r->vq))
			pthread_cond_signal(&d->work);
		pthread_mutex_unlock(&d->lock);
		int64_t used = virtio_blk_exec(&t->x, &t->e);
		pthread_mutex_lock(&d->lock);
		complete(d, i, t, used);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int vub_workers_start(struct vhost_user_blk *d, int n)
{
	d->w = calloc((size_t)n, sizeof(*d->w));
	if (!d->w)
		return err_set(ENOMEM, "out of memory");
	for (int k = 0; k < n; k++) {
		struct vub_worker *t = &d->w[k];
		t->d = d;
		t->e.iov = t->iov;
		t->x.bs = d->o.bs;
		t->x.readonly = d->read_only;
		t->x.part = t->part;
		if (d->o.serial)
			memcpy(t->x.serial, d->o.serial, strnlen(d->o.serial, sizeof(t->x.serial)));
		int e = pthread_create(&t->tid, NULL, worker_main, t);
		if (e)
			return err_sys(e, "could not start an I/O thread");
		pthread_setname_np(t->tid, "vhost-user-io");
		d->nworkers++;
	}
	return 0;
}

void vub_workers_stop(struct vhost_user_blk *d)
{
	pthread_mutex_lock(&d->lock);
	d->quit = true;
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);
	for (int k = 0; k < d->nworkers; k++) {
		pthread_join(d->w[k].tid, NULL);
		virtio_blk_exec_free(&d->w[k].x);
	}
	free(d->w);
	d->w = NULL;
	d->nworkers = 0;
}

void vub_rings_pause(struct vhost_user_blk *d, unsigned mask)
{
	bool busy;

	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
		if (mask & (1u << i))
			d->ring[i].paused = true;
	do {
		busy = false;
		for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
			if ((mask & (1u << i)) && d->ring[i].busy)
				busy = true;
		if (busy)
			pthread_cond_wait(&d->idle, &d->lock);
	} while (busy);
}

void vub_rings_resume(struct vhost_user_blk *d, unsigned mask)
{
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
		if (mask & (1u << i))
			d->ring[i].paused = false;
	pthread_cond_broadcast(&d->work);
}

/* The guest-physical address of a ring area the front-end named by its own address. */
static bool area_gpa(struct vhost_user_blk *d, uint64_t uva, uint64_t len, uint64_t *gpa)
{
	return vhost_user_mem_uva_to_gpa(&d->mem, uva, len, gpa);
}

void vub_ring_start(struct vhost_user_blk *d, unsigned i, uint16_t last_avail)
{
	struct vub_ring *r = &d->ring[i];
	struct virtq *q = &r->vq;
	uint64_t n = r->num;

	if (!r->num || !r->addr_set || r->kick_fd < 0 || !d->mem.n)
		return; /* not set up yet */
	q->size = r->num;
	q->event_idx = d->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	q->indirect = d->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	r->broken = false;
	if (!area_gpa(d, r->addr.desc_user_addr, 16 * n, &q->desc_gpa) ||
	    !area_gpa(d, r->addr.avail_user_addr, 6 + 2 * n, &q->avail_gpa) ||
	    !area_gpa(d, r->addr.used_user_addr, 6 + 8 * n, &q->used_gpa)) {
		vub_ring_fail(d, i, "its addresses are not in the shared memory");
		return;
	}
	if (virtq_start(q, &d->mem.mem) < 0) {
		vub_ring_fail(d, i, err_msg());
		return;
	}
	virtq_resume(q, last_avail);
	r->started = true;
	r->pending = true; /* chains queued before the kick descriptor came */
}

uint16_t vub_ring_stop(struct vhost_user_blk *d, unsigned i)
{
	struct vub_ring *r = &d->ring[i];
	uint16_t next = r->started ? r->vq.last_avail : r->base;

	virtq_stop(&r->vq);
	r->started = false;
	r->pending = false;
	r->base = next;
	return next;
}

void vub_ring_kick(struct vhost_user_blk *d, unsigned i)
{
	struct vub_ring *r = &d->ring[i];
	uint64_t v;

	if (r->kick_fd >= 0 && read(r->kick_fd, &v, sizeof(v)) < 0) {
		/* drained already: a kick is a hint */
	}
	pthread_mutex_lock(&d->lock);
	r->pending = true;
	if (runnable(r))
		pthread_cond_signal(&d->work);
	pthread_mutex_unlock(&d->lock);
}
