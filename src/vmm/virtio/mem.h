/*
 * Guest memory as the virtio devices see it: a few RAM regions, each contiguous in guest-physical
 * space and in the VMM's address space. Every pointer a device derives from a guest address comes
 * from virtio_mem_range(), which refuses any range not wholly inside one region.
 */
#ifndef LIGERO_VMM_VIRTIO_MEM_H
#define LIGERO_VMM_VIRTIO_MEM_H

#include <stddef.h>
#include <stdint.h>

/* vhost-user's memory table holds up to 8 regions (VHOST_MEMORY_BASELINE_NREGIONS); the VMM's
 * own RAM is one or two. */
#define VIRTIO_MEM_MAX_REGIONS 8

struct virtio_mem_region {
	uint64_t gpa;  /* guest-physical start */
	uint64_t size; /* bytes */
	uint8_t *host; /* where the VMM mapped it */
};

struct virtio_mem {
	unsigned nregions;
	struct virtio_mem_region r[VIRTIO_MEM_MAX_REGIONS];
};

/*
 * The host address of guest range [gpa, gpa + len), or NULL unless the whole range lies inside
 * one RAM region. len 0 is accepted (a valid pointer for an empty range at a RAM address).
 * Written so that no sum can wrap: the range is compared by differences only.
 */
static inline void *virtio_mem_range(const struct virtio_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nregions && i < VIRTIO_MEM_MAX_REGIONS; i++) {
		const struct virtio_mem_region *r = &m->r[i];
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

#endif
