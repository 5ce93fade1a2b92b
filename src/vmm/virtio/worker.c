/* Device threads; see worker.h. */
#include "vmm/virtio/worker.h"
#include "util/error.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

void virtio_eventfd_drain(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == sizeof(v))
		;
}

void virtio_worker_init(struct virtio_worker *w, void *opaque)
{
	memset(w, 0, sizeof(*w));
	w->opaque = opaque;
	w->stop_fd = -1;
	w->timeout_us = -1;
}

int virtio_worker_add(struct virtio_worker *w, int fd, short events, virtio_worker_fn *fn)
{
	if (w->nfds == VIRTIO_WORKER_FDS)
		return -ENOSPC;
	w->fds[w->nfds] = fd;
	w->events[w->nfds] = events;
	w->fn[w->nfds] = fn;
	return w->nfds++;
}

static void *worker_main(void *arg)
{
	struct virtio_worker *w = arg;
	struct pollfd p[VIRTIO_WORKER_FDS + 1];

	for (;;) {
		int n;
		p[0] = (struct pollfd){.fd = w->stop_fd, .events = POLLIN};
		for (int i = 0; i < w->nfds; i++)
			p[i + 1] = (struct pollfd){.fd = w->fds[i], .events = w->events[i]};
		if (w->timeout_us >= 0) {
			struct timespec ts = {.tv_sec = w->timeout_us / 1000000,
					      .tv_nsec = w->timeout_us % 1000000 * 1000};
			n = ppoll(p, (nfds_t)w->nfds + 1, &ts, NULL);
		} else {
			n = ppoll(p, (nfds_t)w->nfds + 1, NULL, NULL);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p[0].revents & POLLIN))
			break;
		if (n == 0 && w->on_timeout)
			w->on_timeout(w, -1);
		for (int i = 0; i < w->nfds; i++)
			if (p[i + 1].revents)
				w->fn[i](w, i);
	}
	return NULL;
}

int virtio_worker_start(struct virtio_worker *w, const char *name)
{
	int ret;

	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->stop_fd < 0)
		return err_sys(errno, "eventfd");
	ret = pthread_create(&w->thread, NULL, worker_main, w);
	if (ret) {
		close(w->stop_fd);
		w->stop_fd = -1;
		return err_sys(ret, "starting the %s thread", name);
	}
	pthread_setname_np(w->thread, name);
	w->running = true;
	return 0;
}

void virtio_worker_stop(struct virtio_worker *w)
{
	if (!w->running)
		return;
	eventfd_write(w->stop_fd, 1);
	pthread_join(w->thread, NULL);
	close(w->stop_fd);
	w->stop_fd = -1;
	w->running = false;
}

/* q->lock held: pop and handle everything queue qi holds, notifications off meanwhile;
 * returns whether anything was completed. */
static bool drain_locked(struct virtio_dev *d, int qi, struct virtq_elem *e, virtio_elem_fn *fn)
{
	struct virtio_queue *q = &d->q[qi];
	bool pushed = false;

	while (!virtio_dev_broken(d)) {
		uint32_t written = 0;
		int r;
		virtq_notify_off(&q->vq);
		r = virtq_pop(&q->vq, e);
		if (r < 0) {
			virtio_dev_fail(d, err_msg());
			break;
		}
		if (r == 0) {
			if (virtq_notify_on(&q->vq))
				continue;
			break;
		}
		r = fn(d, qi, e, &written);
		if (r < 0) {
			virtio_dev_fail(d, err_msg());
			break;
		}
		if (r == 0) {
			virtq_push(&q->vq, e->head, written);
			pushed = true;
		}
	}
	return pushed;
}

bool virtio_queue_drain_quiet(struct virtio_dev *d, int qi, struct virtq_elem *e,
			      virtio_elem_fn *fn)
{
	struct virtio_queue *q = &d->q[qi];

	pthread_mutex_lock(&q->lock);
	bool pushed = drain_locked(d, qi, e, fn);
	pthread_mutex_unlock(&q->lock);
	return pushed;
}

void virtio_queue_drain(struct virtio_dev *d, int qi, struct virtq_elem *e, virtio_elem_fn *fn)
{
	struct virtio_queue *q = &d->q[qi];

	pthread_mutex_lock(&q->lock);
	if (drain_locked(d, qi, e, fn))
		virtio_dev_queue_done(d, qi);
	pthread_mutex_unlock(&q->lock);
}

void virtio_queue_complete(struct virtio_dev *d, int qi, uint16_t head, uint32_t written)
{
	struct virtio_queue *q = &d->q[qi];

	pthread_mutex_lock(&q->lock);
	if (!virtio_dev_broken(d) && virtq_push(&q->vq, head, written) == 0)
		virtio_dev_queue_done(d, qi);
	pthread_mutex_unlock(&q->lock);
}
