/*
 * A device thread: ppoll() on a few file descriptors (queue kick eventfds, a tap, a timer) and
 * call the device back for each that is readable. Devices do their queue work here, never on
 * a vCPU thread. Stop wakes the thread through its own eventfd and joins it.
 */
#ifndef LIGERO_VMM_VIRTIO_WORKER_H
#define LIGERO_VMM_VIRTIO_WORKER_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>

#define VIRTIO_WORKER_FDS 6

struct virtio_worker;
typedef void virtio_worker_fn(struct virtio_worker *w, int idx);

struct virtio_worker {
	void *opaque;
	pthread_t thread;
	int stop_fd;
	bool running;
	int nfds;
	int fds[VIRTIO_WORKER_FDS];
	short events[VIRTIO_WORKER_FDS];
	virtio_worker_fn *fn[VIRTIO_WORKER_FDS];
	long timeout_us; /* -1: none; else on_timeout runs after this much quiet */
	virtio_worker_fn *on_timeout;
};

void virtio_worker_init(struct virtio_worker *w, void *opaque);
/* Watch fd for events (POLLIN, POLLOUT); fn(w, idx) runs when it is ready. Returns idx. */
int virtio_worker_add(struct virtio_worker *w, int fd, short events, virtio_worker_fn *fn);
int virtio_worker_start(struct virtio_worker *w, const char *name);
void virtio_worker_stop(struct virtio_worker *w);

/* Consume an eventfd's count (non-blocking). */
void virtio_eventfd_drain(int fd);

#include "vmm/virtio/pci.h"

/* Handle one popped element of queue qi: return 0 to complete it now with *written bytes, 1 to
 * keep it (the device completes it later with virtio_queue_complete), or <0 (message recorded)
 * to mark the device broken. */
typedef int virtio_elem_fn(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written);
/* Pop and handle everything queue qi holds, with guest notifications off meanwhile; then
 * interrupt the guest if it wants. */
void virtio_queue_drain(struct virtio_dev *d, int qi, struct virtq_elem *e, virtio_elem_fn *fn);
/* The same without the interrupt: returns whether anything was completed (the caller then
 * calls virtio_dev_queue_done when it sees fit). */
bool virtio_queue_drain_quiet(struct virtio_dev *d, int qi, struct virtq_elem *e,
			      virtio_elem_fn *fn);
/* Complete a kept element. */
void virtio_queue_complete(struct virtio_dev *d, int qi, uint16_t head, uint32_t written);
#endif
