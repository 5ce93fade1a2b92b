/*
 * The VMM's event loop: one epoll set on the thread that runs vm_run(), serving the control
 * sockets, console clients and the VM's own eventfds. Callbacks run on that thread only, so
 * what they share needs no lock; nothing here ever runs on a vCPU thread.
 */
#ifndef LIGERO_VMM_LOOP_H
#define LIGERO_VMM_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct loop_watch;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLHUP, ...) that fd has. */
typedef void loop_fn(struct loop_watch *w, uint32_t events);

/* One watched descriptor; the caller owns the memory (embed it in the object it serves). */
struct loop_watch {
	int fd;
	uint32_t events;
	loop_fn *fn;
	void *opaque;
	struct loop *loop; /* NULL while not watched */
};

int loop_new(struct loop **out);
/* Start watching fd for events (level-triggered); fn(w, events) runs when it is ready. */
int loop_add(struct loop *l, struct loop_watch *w, int fd, uint32_t events, loop_fn *fn,
	     void *opaque);
/* Change what a watched descriptor waits for. */
int loop_mod(struct loop_watch *w, uint32_t events);
/* Stop watching (call before closing the fd). Safe from a callback, for any watch: events
 * already fetched for it are not delivered. A watch not being watched is ignored. */
void loop_del(struct loop_watch *w);
/* Wait up to timeout_ms (-1: forever) and run the callbacks of what is ready. Returns the
 * number of events handled, or -errno (EINTR is 0). */
int loop_run_once(struct loop *l, int timeout_ms);
void loop_free(struct loop *l);

#endif
