/* The event loop: epoll, level-triggered, with the batch being dispatched kept in the loop so
 * that a callback which drops another watch (a client closed while its neighbour's event is
 * pending) cannot leave a dangling pointer in it. */
#include "vmm/loop.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define LOOP_BATCH 32

struct loop {
	int epfd;
	struct epoll_event ev[LOOP_BATCH];
	int n, at; /* the batch being dispatched and where we are in it */
};

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return err_set(ENOMEM, "out of memory");
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int ret = err_sys(errno, "epoll_create1");
		free(l);
		return ret;
	}
	*out = l;
	return 0;
}

int loop_add(struct loop *l, struct loop_watch *w, int fd, uint32_t events, loop_fn *fn,
	     void *opaque)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->opaque = opaque;
	w->loop = NULL;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err_sys(errno, "epoll_ctl(ADD, fd %d)", fd);
	w->loop = l;
	return 0;
}

int loop_mod(struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (!w->loop || w->events == events)
		return 0;
	if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return err_sys(errno, "epoll_ctl(MOD, fd %d)", w->fd);
	w->events = events;
	return 0;
}

void loop_del(struct loop_watch *w)
{
	struct loop *l = w->loop;

	if (!l)
		return;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	for (int i = l->at; i < l->n; i++)
		if (l->ev[i].data.ptr == w)
			l->ev[i].data.ptr = NULL;
	w->loop = NULL;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	int n = epoll_wait(l->epfd, l->ev, LOOP_BATCH, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	l->n = n;
	for (l->at = 0; l->at < l->n; l->at++) {
		struct loop_watch *w = l->ev[l->at].data.ptr;
		if (w)
			w->fn(w, l->ev[l->at].events);
	}
	l->n = l->at = 0;
	return n;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l);
}
