/* Guest RAM. Below 3 GiB RAM is identity-placed; anything more starts at 4 GiB so that
 * [3 GiB, 4 GiB) stays free for the PCI window, ECAM, the IOAPIC and the local APICs. */
#include "vmm/memory.h"
#include "util/error.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

int mem_layout(struct guest_mem *mem, uint64_t size)
{
	if (size < MEM_MIN_SIZE)
		return err_set(EINVAL, "guest memory must be at least %llu MiB",
			       MEM_MIN_SIZE >> 20);
	if (size & 0xfff)
		return err_set(EINVAL, "guest memory must be a multiple of 4 KiB");
	if (size > (1ull << 46))
		return err_set(EINVAL, "guest memory is larger than 64 TiB");
	mem->size = size;
	mem->base = NULL;
	mem->regions[0] = (struct mem_region){0, size < MEM_HOLE_START ? size : MEM_HOLE_START, 0};
	mem->nregions = 1;
	if (size > MEM_HOLE_START) {
		mem->regions[1] = (struct mem_region){MEM_HOLE_END, size - MEM_HOLE_START, 0};
		mem->nregions = 2;
	}
	return 0;
}

/* An anonymous mapping whose start is a multiple of MEM_HUGE_ALIGN. KVM maps guest RAM with
 * 2 MiB nested page table entries only where the host address and the guest-physical address
 * agree modulo 2 MiB; mmap() (before Linux 6.7) aligns to 4 KiB only, and a misaligned mapping
 * costs one nested page fault per 4 KiB page the guest touches: bench/boot.sh counted 31.7k VM
 * exits to the test guest's marker without the alignment, 4.4k with it. */
static void *map_aligned(uint64_t size)
{
	uint64_t span = size + MEM_HUGE_ALIGN;
	uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start, head;

	if (p == MAP_FAILED)
		return p;
	start = ((uintptr_t)p + MEM_HUGE_ALIGN - 1) & ~(uintptr_t)(MEM_HUGE_ALIGN - 1);
	head = start - (uintptr_t)p;
	if (head)
		munmap(p, head);
	munmap((uint8_t *)start + size, span - head - size);
	return (void *)start;
}

int mem_alloc(struct guest_mem *mem)
{
	void *p = map_aligned(mem->size);
	uint64_t off = 0;

	if (p == MAP_FAILED)
		return err_sys(errno, "cannot map %llu MiB of guest memory",
			       (unsigned long long)(mem->size >> 20));
	mem->base = p;
	/* KSM may be compiled out; sharing is an optimisation, not a requirement. Huge pages let
	 * KVM map guest RAM with 2 MiB nested page table entries: far fewer nested page faults
	 * while the guest first touches its memory (KSM splits them again where it merges). */
	(void)madvise(p, mem->size, MADV_MERGEABLE);
	(void)madvise(p, mem->size, MADV_HUGEPAGE);
	for (unsigned i = 0; i < mem->nregions; i++) {
		mem->regions[i].host = mem->base + off;
		off += mem->regions[i].size;
	}
	return 0;
}

int mem_register(const struct guest_mem *mem, int vm_fd)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *r = &mem->regions[i];
		struct kvm_userspace_memory_region kr = {
		    .slot = i,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uintptr_t)r->host,
		};
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			return err_sys(errno, "KVM_SET_USER_MEMORY_REGION");
	}
	return 0;
}

void mem_unmap(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	mem->base = NULL;
}

void *mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->host ? r->host + (gpa - r->gpa) : NULL;
	}
	return NULL;
}

uint64_t mem_low_end(const struct guest_mem *mem)
{
	return mem->regions[0].size;
}
