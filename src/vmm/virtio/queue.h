/*
 * Split virtqueues (virtio 1.x, 2.7), device side, with EVENT_IDX and INDIRECT_DESC.
 *
 * Everything in the rings belongs to the guest and may change under our feet, so each value is
 * read once into a local and validated there: the descriptor table, avail and used rings must lie
 * in guest RAM (checked at start), every index read from the avail ring is checked against the
 * queue size on every use, and every buffer [addr, addr + len) must lie wholly inside RAM. Loops
 * are bounded per table: at most `size` descriptors from the ring's table, and at most the table's
 * entries from an indirect table (at most `size`, never nested). A chain holds at most `size`
 * buffers in all. Nothing here allocates: the caller's element carries an iovec array of `size`
 * entries, fixed when the queue starts.
 *
 * Not thread-safe: one queue is driven by one thread at a time (the device holds a lock).
 */
#ifndef LIGERO_VMM_VIRTIO_QUEUE_H
#define LIGERO_VMM_VIRTIO_QUEUE_H

#include "vmm/virtio/mem.h"
#include "util/iov.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The largest queue any ligero device offers (a power of two, as the split ring requires). */
#define VIRTQ_MAX_SIZE 1024

struct virtq {
	/* Set by the transport while the queue is disabled; frozen by virtq_start. */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */

	/* Run state (virtq_start resets it). */
	bool started;
	const struct virtio_mem *mem;
	uint8_t *desc, *avail, *used; /* validated host pointers to the three areas */
	uint16_t last_avail;	      /* next avail ring entry to take */
	uint16_t used_idx;	      /* our copy of used->idx (the guest may scribble on theirs) */
	uint16_t used_pending;	      /* entries filled after used_idx, not yet published */
	uint16_t signalled_used;      /* used_idx at the last interrupt (EVENT_IDX) */
	bool signalled_valid;
	uint32_t inflight; /* popped, not yet pushed */
};

/* One descriptor chain: out (device-readable) buffers first, then in (device-writable). */
struct virtq_elem {
	uint16_t head;
	unsigned nout, nin;
	uint64_t out_len, in_len; /* byte totals */
	struct iovec *iov;	  /* nout + nin entries used, capacity = queue size */
};

/* Validate the layout (size a power of two <= VIRTQ_MAX_SIZE, areas aligned and inside RAM) and
 * reset the run state. Returns 0 or -EINVAL with a message. */
int virtq_start(struct virtq *q, const struct virtio_mem *mem);
void virtq_stop(struct virtq *q);

/* Take the next available chain. Returns 1 with *e filled, 0 when the ring is empty, or -EINVAL
 * (message recorded) when the guest's ring or chain is malformed: the device must then stop. */
int virtq_pop(struct virtq *q, struct virtq_elem *e);

/* Return chain `head` to the guest with `len` bytes written into its in buffers. */
int virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/* Batched returns: virtq_fill writes a used entry the guest cannot see yet; virtq_flush
 * publishes every filled entry with one used->idx store (and before virtq_should_notify). */
int virtq_fill(struct virtq *q, uint16_t head, uint32_t len);
void virtq_flush(struct virtq *q);

/* Give back the last n chains taken and not returned: the next virtq_pop takes them again (the
 * guest never saw them taken). For a device that took buffers it cannot use after all. */
void virtq_unpop(struct virtq *q, unsigned n);

/* After pushes: does the guest want an interrupt now (used_event / NO_INTERRUPT)? */
bool virtq_should_notify(struct virtq *q);

/* Guest -> device notifications: off while the device is busy draining the ring, back on before
 * it sleeps. virtq_notify_on returns true when buffers arrived meanwhile (drain again). */
void virtq_notify_off(struct virtq *q);
bool virtq_notify_on(struct virtq *q);

/* True when the avail ring holds chains we have not taken (no validation, a hint). */
bool virtq_has_avail(struct virtq *q);

/* Take over a ring someone else has been serving (vhost-user's SET_VRING_BASE, a back-end
 * reconnecting, guest memory remapped): after virtq_start, the next chain to take is avail entry
 * last_avail and the used index is the one the ring holds now. Nothing is in flight. */
void virtq_resume(struct virtq *q, uint16_t last_avail);

#endif
