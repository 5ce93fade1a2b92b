/* The front-end's memory table, mapped (vhost_user.h). */
#include "serve/vhost_user.h"
#include "util/error.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* Do [a, a + alen) and [b, b + blen) share a byte? (Neither sum wraps: checked before.) */
static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Region i alone: sizes that add up, a file big enough to hold it. */
static int region_check(const struct vhost_user_region *r, unsigned i, int fd)
{
	struct stat st;

	if (r->memory_size == 0)
		return err_set(EINVAL, "memory region %u is empty", i);
	if (r->guest_phys_addr > UINT64_MAX - r->memory_size ||
	    r->userspace_addr > UINT64_MAX - r->memory_size ||
	    r->mmap_offset > UINT64_MAX - r->memory_size)
		return err_set(EINVAL, "memory region %u (%llu bytes at offset %llu) wraps around",
			       i, (unsigned long long)r->memory_size,
			       (unsigned long long)r->mmap_offset);
	if (fstat(fd, &st) < 0)
		return err_sys(errno, "memory region %u: its file", i);
	/* A mapping past the end of its file faults on access (SIGBUS): only regular files
	 * (memfd, hugetlbfs, shm), and long enough now. */
	if (!S_ISREG(st.st_mode))
		return err_set(EINVAL, "memory region %u is not backed by a regular file", i);
	if ((uint64_t)st.st_size < r->mmap_offset + r->memory_size)
		return err_set(EINVAL, "memory region %u ends at byte %llu of a file of %llu bytes",
			       i, (unsigned long long)(r->mmap_offset + r->memory_size),
			       (unsigned long long)st.st_size);
	return 0;
}

static int table_check(const struct vhost_user_memory *t, const int *fds)
{
	for (unsigned i = 0; i < t->nregions; i++) {
		const struct vhost_user_region *r = &t->regions[i];
		int ret = region_check(r, i, fds[i]);
		if (ret < 0)
			return ret;
		for (unsigned j = 0; j < i; j++) {
			const struct vhost_user_region *o = &t->regions[j];
			if (overlap(r->guest_phys_addr, r->memory_size, o->guest_phys_addr,
				    o->memory_size))
				return err_set(EINVAL,
					       "memory regions %u and %u overlap in guest memory",
					       j, i);
			if (overlap(r->userspace_addr, r->memory_size, o->userspace_addr,
				    o->memory_size))
				return err_set(
				    EINVAL,
				    "memory regions %u and %u overlap in the front-end's "
				    "address space",
				    j, i);
		}
	}
	return 0;
}

int vhost_user_mem_map(struct vhost_user_mem *out, const struct vhost_user_msg *m)
{
	const struct vhost_user_memory *t = &m->payload.memory;
	struct vhost_user_mem mem;
	int ret;

	memset(&mem, 0, sizeof(mem));
	if (t->nregions > VHOST_USER_MAX_REGIONS || (int)t->nregions != m->nfds)
		return err_set(EINVAL, "a memory table of %u regions with %d file descriptors",
			       t->nregions, m->nfds);
	ret = table_check(t, m->fds);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < t->nregions; i++) {
		const struct vhost_user_region *r = &t->regions[i];
		size_t len = (size_t)(r->mmap_offset + r->memory_size);
		/* From offset 0, as the front-end mapped it: a hugetlbfs file takes only offsets
		 * that are multiples of its page size, which mmap_offset need not be. */
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[i], 0);
		if (p == MAP_FAILED) {
			ret = err_sys(errno, "mapping memory region %u (%zu bytes)", i, len);
			vhost_user_mem_unmap(&mem);
			return ret;
		}
		mem.r[i].map = p;
		mem.r[i].map_len = len;
		mem.r[i].uva = r->userspace_addr;
		mem.mem.r[i] = (struct virtio_mem_region){r->guest_phys_addr, r->memory_size,
							  (uint8_t *)p + r->mmap_offset};
		mem.n = mem.mem.nregions = i + 1;
	}
	*out = mem;
	return 0;
}

void vhost_user_mem_unmap(struct vhost_user_mem *mem)
{
	for (unsigned i = 0; i < mem->n; i++)
		if (mem->r[i].map)
			munmap(mem->r[i].map, mem->r[i].map_len);
	memset(mem, 0, sizeof(*mem));
}

bool vhost_user_mem_uva_to_gpa(const struct vhost_user_mem *mem, uint64_t uva, uint64_t len,
			       uint64_t *gpa)
{
	for (unsigned i = 0; i < mem->n; i++) {
		uint64_t base = mem->r[i].uva, size = mem->mem.r[i].size;
		if (uva < base || uva - base >= size)
			continue;
		if (len > size - (uva - base))
			return false;
		*gpa = mem->mem.r[i].gpa + (uva - base);
		return true;
	}
	return false;
}
