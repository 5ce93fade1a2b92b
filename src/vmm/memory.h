/* Guest RAM: one anonymous mapping split around the 32-bit PCI/MMIO hole. */
#ifndef LIGERO_VMM_MEMORY_H
#define LIGERO_VMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define MEM_HOLE_START 0xC0000000ull  /* RAM below 4 GiB ends here at most */
#define MEM_HOLE_END   0x100000000ull /* RAM past MEM_HOLE_START resumes here */
#define MEM_MIN_SIZE   (32ull << 20)
#define MEM_HUGE_ALIGN (2ull << 20) /* where guest RAM starts in the host's address space */

struct mem_region {
	uint64_t gpa, size;
	uint8_t *host;
};

struct guest_mem {
	uint8_t *base; /* the one mapping */
	uint64_t size;
	struct mem_region regions[2];
	unsigned nregions;
};

/* Lay out `size` bytes of guest RAM (regions only; no allocation). */
int mem_layout(struct guest_mem *mem, uint64_t size);
/* Map the RAM (MAP_NORESERVE, MADV_MERGEABLE, MEM_HUGE_ALIGN-aligned); sets regions[].host. */
int mem_alloc(struct guest_mem *mem);
/* Register the mapped RAM with the KVM VM, one memory slot per region. */
int mem_register(const struct guest_mem *mem, int vm_fd);
/* Unmap. */
void mem_unmap(struct guest_mem *mem);
/* Host pointer to [gpa, gpa+len) if it lies wholly in one RAM region, else NULL. */
void *mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* End of RAM below 4 GiB. */
uint64_t mem_low_end(const struct guest_mem *mem);

#endif
