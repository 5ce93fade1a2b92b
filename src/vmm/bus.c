/* Address decoding. A VM has a dozen devices, so a linear scan is cheaper than anything clever. */
#include "vmm/bus.h"

#include <errno.h>

int bus_add(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops, void *opaque)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	for (unsigned i = 0; i < bus->n; i++) {
		const struct bus_dev *d = &bus->devs[i];
		if (base < d->base + d->len && d->base < base + len)
			return -EEXIST;
	}
	if (bus->n == BUS_MAX_DEVS)
		return -ENOSPC;
	bus->devs[bus->n++] = (struct bus_dev){base, len, ops, opaque};
	return 0;
}

/* An access must lie wholly inside one device; a straddling one belongs to nobody. */
static const struct bus_dev *bus_find(const struct bus *bus, uint64_t addr, unsigned size)
{
	for (unsigned i = 0; i < bus->n; i++) {
		const struct bus_dev *d = &bus->devs[i];
		if (addr >= d->base && addr - d->base < d->len && size <= d->len - (addr - d->base))
			return d;
	}
	return NULL;
}

uint64_t bus_read(const struct bus *bus, uint64_t addr, unsigned size)
{
	const struct bus_dev *d = bus_find(bus, addr, size);
	uint64_t ones = size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;

	if (!d || !d->ops->read)
		return ones;
	return d->ops->read(d->opaque, addr - d->base, size) & ones;
}

int bus_write(const struct bus *bus, uint64_t addr, unsigned size, uint64_t val)
{
	const struct bus_dev *d = bus_find(bus, addr, size);

	if (!d)
		return 0;
	if (d->ops->write)
		d->ops->write(d->opaque, addr - d->base, size, val);
	return 1;
}
