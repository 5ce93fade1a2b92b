/*
 * virtio-blk requests (virtio 1.x, 5.2.6) carried out on a struct bdev, whatever carries the
 * rings: the VMM's virtio-pci device (blk.c) and serve/'s vhost-user-blk back-end both hand a
 * chain virtq_pop validated to virtio_blk_exec. Every sector range is checked against the disk
 * size before the block layer sees it. Nothing here knows KVM or allocates per request.
 */
#ifndef LIGERO_VMM_VIRTIO_BLK_EXEC_H
#define LIGERO_VMM_VIRTIO_BLK_EXEC_H

#include "vmm/virtio/queue.h"

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stdint.h>

/* Requests of formats without vectored I/O go through one buffer per thread up to this size. */
#define VIRTIO_BLK_BOUNCE_MAX (1u << 20)

struct bdev;

/* One I/O thread's state; the thread owns it, several threads share bs (the block layer allows
 * concurrent calls). */
struct virtio_blk_exec {
	struct bdev *bs;
	bool readonly;			  /* writes, discards and zeroes fail with IOERR */
	char serial[VIRTIO_BLK_ID_BYTES]; /* GET_ID's answer, NUL-padded */
	struct iovec *part;		  /* scratch: as many entries as the chain may have */
	uint8_t *bounce;		  /* VIRTIO_BLK_BOUNCE_MAX bytes on first use */
};

/* Carry out the request in e and store its status byte (the last byte of the in buffers).
 * Returns the used length (bytes stored in the in buffers, status included), or -EINVAL with a
 * message when the chain has no room for the header or the status byte: the guest's driver is
 * broken and so is the ring. */
int64_t virtio_blk_exec(struct virtio_blk_exec *x, const struct virtq_elem *e);
/* Free the bounce buffer (x itself is the caller's). */
void virtio_blk_exec_free(struct virtio_blk_exec *x);

/*
 * The configuration space of a disk and the VIRTIO_BLK_F_* features that go with it: capacity,
 * 512-byte blocks, seg_max (data buffers per request: at most the queue size - 2, header and
 * status taking two), one discard or write-zeroes segment per request, discards aligned to the
 * image's clusters; read-only disks offer RO and neither discard nor write-zeroes.
 */
uint64_t virtio_blk_config_init(struct virtio_blk_config *cfg, struct bdev *bs, bool readonly,
				uint32_t seg_max, uint16_t num_queues);

#endif
