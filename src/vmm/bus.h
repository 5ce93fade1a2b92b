/* Address decoding for port I/O and MMIO exits: a sorted-free small table of devices. */
#ifndef LIGERO_VMM_BUS_H
#define LIGERO_VMM_BUS_H

#include <pthread.h>
#include <stdint.h>

#define BUS_MAX_DEVS 16

struct bus_ops {
	/* off is relative to the device's base; size is 1, 2, 4 or 8. */
	uint64_t (*read)(void *opaque, uint64_t off, unsigned size);
	void (*write)(void *opaque, uint64_t off, unsigned size, uint64_t val);
};

struct bus_dev {
	uint64_t base, len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	struct bus_dev devs[BUS_MAX_DEVS];
	unsigned n;
};

/* Claim [base, base+len); returns -EEXIST on overlap, -ENOSPC when full. */
int bus_add(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops, void *opaque);
/* Dispatch a read; an address nobody claims reads as all ones. */
uint64_t bus_read(const struct bus *bus, uint64_t addr, unsigned size);
/* Dispatch a write; an address nobody claims ignores it. Returns 1 if a device took it. */
int bus_write(const struct bus *bus, uint64_t addr, unsigned size, uint64_t val);

#endif
