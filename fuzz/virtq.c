/*
 * libFuzzer target: random guest RAM (descriptor tables, avail ring, indirect tables, buffers)
 * and random ring placement fed to the virtqueue parser. RAM is an exact-size heap block so ASan
 * catches any access the parser lets through outside it; every iovec it returns is read and
 * written in full to prove it lies inside RAM. The iovec array is an exact-size heap block of
 * `size` entries too, as the devices size theirs, so a chain of more buffers is caught.
 */
#include "vmm/virtio/queue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RAM_GPA	 0x10000ull
#define RAM_SIZE 0x4000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take64(const uint8_t **d, size_t *n)
{
	uint64_t v = 0;
	size_t k = *n < 8 ? *n : 8;
	memcpy(&v, *d, k);
	*d += k;
	*n -= k;
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtio_mem mem = {0};
	struct virtq q = {0};
	struct virtq_elem e;
	struct iovec *iov;
	uint64_t cfg = take64(&data, &size);
	uint8_t *ram = calloc(1, RAM_SIZE);
	uint8_t sink[64];

	if (!ram)
		return 0;
	memcpy(ram, data, size < RAM_SIZE ? size : RAM_SIZE);
	mem.nregions = 1;
	mem.r[0] = (struct virtio_mem_region){RAM_GPA, RAM_SIZE, ram};
	/* Mostly plausible ring placement, sometimes arbitrary. */
	q.size = (uint16_t)(1u << (cfg & 7));
	iov = malloc(q.size * sizeof(*iov));
	if (!iov) {
		free(ram);
		return 0;
	}
	e.iov = iov;
	q.event_idx = cfg & 8;
	q.indirect = cfg & 16;
	if (cfg & 32) {
		q.desc_gpa = RAM_GPA + ((cfg >> 8) & 0x3ff0);
		q.avail_gpa = RAM_GPA + ((cfg >> 22) & 0x3ffe);
		q.used_gpa = RAM_GPA + ((cfg >> 36) & 0x3ffc);
	} else {
		/* avail first, so that short inputs already describe a ring */
		q.avail_gpa = RAM_GPA;
		q.desc_gpa = RAM_GPA + 0x200;
		q.used_gpa = RAM_GPA + 0x3000;
	}
	if (virtq_start(&q, &mem) == 0) {
		for (int round = 0; round < 64; round++) {
			int r = virtq_pop(&q, &e);
			if (r <= 0)
				break;
			for (unsigned i = 0; i < e.nout + e.nin; i++) {
				volatile uint8_t *p = iov[i].iov_base;
				p[0] = p[0];
				p[iov[i].iov_len - 1] = p[iov[i].iov_len - 1];
			}
			iov_to_buf(iov, e.nout + e.nin, cfg >> 50, sink, sizeof(sink));
			if (virtq_push(&q, e.head, (uint32_t)e.in_len) < 0)
				abort(); /* a popped head must always be accepted back */
			virtq_should_notify(&q);
			virtq_notify_on(&q);
		}
	}
	free(iov);
	free(ram);
	return 0;
}
