/*
 * vhost-user-blk's rings and I/O threads. The I/O threads wait on the rings' kick eventfds
 * themselves (one epoll set, edge-triggered, so a kick wakes one thread): the thread a kick
 * wakes takes the chain, does the request on the block layer with the device's lock released
 * (virtio_blk_exec, the VMM's own request code), puts it on the used ring and signals the
 * front-end's call eventfd when the driver wants an interrupt. A request at queue depth 1
 * costs one thread wake-up on our side and no copy; when more chains wait, the thread wakes
 * another one (work_fd) before it starts on its own. The loop thread never touches a request.
 */
#include "serve/vhost_user_blk_int.h"
#include "block/block.h"
#include "util/clock.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
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

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
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

/* lock: interrupt the front-end's guest for ring r's published completions, if it asked. */
static void notify(struct vhost_user_blk *d, struct vub_ring *r)
{
	r->held = 0;
	if (r->owed) {
		r->owed = false;
		if (--d->owed == 0 && d->timer_armed) {
			struct itimerspec off = {{0, 0}, {0, 0}};
			timerfd_settime(d->timer_fd, 0, &off, NULL);
			d->timer_armed = false;
		}
	}
	if (r->started && !r->broken && virtq_should_notify(&r->vq))
		signal_fd(r->call_fd);
}

/* lock: ring r's completion is published; its interrupt waits for the window's end (the timer,
 * armed by the window's first completion). */
static void hold(struct vhost_user_blk *d, struct vub_ring *r)
{
	if (!r->owed) {
		r->owed = true;
		d->owed++;
	}
	if (!d->timer_armed) {
		struct itimerspec due = {{0, 0},
					 {d->window_ns / 1000000000, d->window_ns % 1000000000}};
		if (timerfd_settime(d->timer_fd, 0, &due, NULL) == 0)
			d->timer_armed = true;
		else
			notify(d, r);
	}
}

/*
 * Interrupt coalescing (hold_ns > 0). Holding a completion's interrupt back only pays if the
 * guest sends more requests before it has had it: several threads of it with requests out,
 * and the guest's own CPU what limits them (each interrupt costs it exits, under nested
 * virtualization long ones), so that a fast back-end finishes each request before the next
 * comes and would interrupt for every one. A guest that waits for each request before it sends
 * the next (queue depth 1), or one whose few requests in flight are all a window would hold,
 * would only wait longer. So a ring interrupts at once, as without coalescing, but for tries
 * now and then, and coalesces only where a try showed that it pays:
 * - A window is twice the time per completion of the stretch before the try (it holds about two
 *   requests at the rate the guest was going), WINDOW_MIN_NS to hold_ns. Every completion waits
 *   for the window's end, and one interrupt covers the window.
 * - A try ends after PROBE_WINDOWS windows unless one of them held two completions or more: a
 *   guest used to an interrupt per request wakes its threads one at a time, and only once
 *   interrupts have been held does it have several requests to send at once. Then, over
 *   PROBE_WINDOWS more, the ring has to complete requests at least as fast as in the stretch
 *   before the try (the time per completion no longer). If it does, it goes on coalescing for
 *   EPOCH_WINDOWS windows in all, or until two windows in a row hold one each, and measures
 *   again without it.
 * - After a failed try the next comes after twice as many completions (PROBE_MIN to PROBE_MAX).
 * A pause of IDLE_WINDOWS times hold_ns between two completions starts the stretch's measure
 * again: a guest's idle time is not its rate. The device has one timer, so its rings share the
 * window: the one the last try sized.
 */
#define PROBE_MIN     32u
#define PROBE_MAX     1024u
#define PROBE_WINDOWS 4u
#define EPOCH_WINDOWS 256u
#define WINDOW_MIN_NS 10000u
#define IDLE_WINDOWS  8u

/* lock: ring r stops coalescing; a stretch without it begins (now). */
static void stop_coalescing(struct vub_ring *r, uint64_t now, bool failed)
{
	r->coalescing = r->missed = false;
	if (!failed)
		r->probe_gap = PROBE_MIN;
	else if ((r->probe_gap *= 2) > PROBE_MAX)
		r->probe_gap = PROBE_MAX;
	r->probe_left = r->probe_gap;
	r->since_ns = now;
	r->done = 0;
}

/* lock: ring r's window ended (the timer): learn from how many completions it held. */
static void window_ended(struct vub_ring *r)
{
	if (!r->coalescing)
		return;
	uint64_t now = clock_mono_ns();
	r->windows++;
	if (r->held >= 2) {
		r->paid = true;
		r->missed = false;
	} else if (r->windows > PROBE_WINDOWS) {
		if (r->missed) {
			stop_coalescing(r, now, true); /* the guest sends one request at a time */
			return;
		}
		r->missed = true;
	}
	if (r->windows == PROBE_WINDOWS) {
		if (!r->paid) {
			stop_coalescing(r, now, true); /* nothing to gather */
			return;
		}
		r->since_ns = now; /* the guest has had time to change pace: the rate from here */
		r->done = 0;
	} else if (r->windows == 2 * PROBE_WINDOWS) {
		/* the try's verdict: time per completion against the stretch before it */
		if (!r->done || (now - r->since_ns) / r->done > r->quiet_ns)
			stop_coalescing(r, now, true);
	} else if (r->windows >= EPOCH_WINDOWS) {
		stop_coalescing(r, now, false);
	}
}

/* lock: a completion of ring r is published: hold its interrupt back? */
static bool hold_it(struct vhost_user_blk *d, struct vub_ring *r)
{
	if (!d->hold_ns)
		return false;
	uint64_t now = clock_mono_ns();
	if (!r->coalescing && now - r->last_ns > IDLE_WINDOWS * (uint64_t)d->hold_ns) {
		r->since_ns = now; /* the guest was idle: measure from here */
		r->done = 0;
	}
	r->last_ns = now;
	r->done++;
	if (r->coalescing)
		return true;
	if (r->probe_left > 0) {
		r->probe_left--;
		return false;
	}
	/* A try: its window from the stretch that ends here. */
	r->quiet_ns = (now - r->since_ns) / r->done;
	uint64_t w = 2 * r->quiet_ns;
	if (w < WINDOW_MIN_NS)
		w = WINDOW_MIN_NS;
	d->window_ns = w < (uint64_t)d->hold_ns ? (long)w : d->hold_ns;
	r->coalescing = true;
	r->paid = r->missed = false;
	r->windows = 0;
	r->since_ns = now;
	r->done = 1;
	return true;
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
		r->held++;
		if (hold_it(d, r))
			hold(d, r);
		else
			notify(d, r);
	}
	if (r->paused && r->busy == 0)
		pthread_cond_broadcast(&d->idle);
}

void vub_wake(struct vhost_user_blk *d)
{
	signal_fd(d->work_fd);
}

/* lock: take chains from the rings until none has any, one request at a time. */
static void serve(struct vhost_user_blk *d, struct vub_worker *t)
{
	unsigned i;
	struct vub_ring *r;

	while ((r = next_ring(d, &i))) {
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
		if (virtq_has_avail(&r->vq))
			vub_wake(d);
		pthread_mutex_unlock(&d->lock);
		int64_t used = virtio_blk_exec(&t->x, &t->e);
		pthread_mutex_lock(&d->lock);
		complete(d, i, t, used);
	}
}

enum { TAG_WORK = 1000, TAG_STOP, TAG_TIMER };

static void *worker_main(void *arg)
{
	struct vub_worker *t = arg;
	struct vhost_user_blk *d = t->d;
	struct epoll_event ev[8];
	uint64_t v;

	for (;;) {
		int n = epoll_wait(d->wepfd, ev, 8, -1);
		if (n < 0 && errno != EINTR)
			return NULL;
		pthread_mutex_lock(&d->lock);
		for (int k = 0; k < n; k++) {
			uint64_t tag = ev[k].data.u64;
			if (tag == TAG_STOP) {
				pthread_mutex_unlock(&d->lock);
				return NULL;
			}
			if (tag == TAG_TIMER) {
				if (read(d->timer_fd, &v, sizeof(v)) == sizeof(v) && d->timer_armed) {
					d->timer_armed = false;
					for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
						if (d->ring[i].owed) {
							window_ended(&d->ring[i]);
							notify(d, &d->ring[i]);
						}
				}
				continue;
			}
			if (tag == TAG_WORK) {
				if (read(d->work_fd, &v, sizeof(v)) < 0) {
					/* another thread took it */
				}
				continue;
			}
			/* Under the lock: the loop may replace the descriptor meanwhile (the event
			 * is then stale, and a spurious look at the ring is harmless). */
			struct vub_ring *r = &d->ring[tag];
			if (r->kick_fd >= 0 && read(r->kick_fd, &v, sizeof(v)) < 0) {
				/* drained already: a kick is a hint */
			}
			r->pending = true;
		}
		serve(d, t);
		pthread_mutex_unlock(&d->lock);
	}
}

static int watch(struct vhost_user_blk *d, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};

	if (epoll_ctl(d->wepfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err_sys(errno, "setting up the I/O threads");
	return 0;
}

int vub_workers_start(struct vhost_user_blk *d, int n)
{
	int ret;

	d->wepfd = epoll_create1(EPOLL_CLOEXEC);
	d->work_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->wepfd < 0 || d->work_fd < 0 || d->stop_fd < 0 || d->timer_fd < 0)
		return err_sys(errno, "setting up the I/O threads");
	d->hold_ns = d->o.coalesce_us * 1000L;
	d->window_ns = d->hold_ns;
	/* work_fd edge-triggered: one write, one thread; stop_fd level-triggered: all of them */
	if ((ret = watch(d, d->work_fd, EPOLLIN | EPOLLET, TAG_WORK)) < 0 ||
	    (ret = watch(d, d->stop_fd, EPOLLIN, TAG_STOP)) < 0 ||
	    (ret = watch(d, d->timer_fd, EPOLLIN | EPOLLET, TAG_TIMER)) < 0)
		return ret;
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
	if (d->stop_fd >= 0)
		signal_fd(d->stop_fd);
	for (int k = 0; k < d->nworkers; k++) {
		pthread_join(d->w[k].tid, NULL);
		virtio_blk_exec_free(&d->w[k].x);
	}
	free(d->w);
	d->w = NULL;
	d->nworkers = 0;
	close_fd(&d->wepfd);
	close_fd(&d->work_fd);
	close_fd(&d->stop_fd);
	close_fd(&d->timer_fd);
}

int vub_ring_set_kick(struct vhost_user_blk *d, unsigned i, int fd)
{
	struct vub_ring *r = &d->ring[i];

	if (r->kick_fd >= 0) {
		/* The front-end holds the same file: closing ours would not take it out of the
		 * epoll set. */
		epoll_ctl(d->wepfd, EPOLL_CTL_DEL, r->kick_fd, NULL);
		close(r->kick_fd);
	}
	r->kick_fd = fd;
	/* A kick that came before the descriptor was watched shows as ready at once. */
	return fd < 0 ? 0 : watch(d, fd, EPOLLIN | EPOLLET, i);
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
	vub_wake(d);
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
	r->held = 0;
	stop_coalescing(r, clock_mono_ns(), false);
	r->last_ns = r->since_ns;
	r->started = true;
	r->pending = true; /* chains queued before the kick descriptor came */
}

uint16_t vub_ring_stop(struct vhost_user_blk *d, unsigned i)
{
	struct vub_ring *r = &d->ring[i];
	uint16_t next = r->started ? r->vq.last_avail : r->base;

	if (r->owed)
		notify(d, r); /* what was held back goes out before the ring stops */
	virtq_stop(&r->vq);
	r->started = false;
	r->pending = false;
	r->base = next;
	return next;
}
