/*
 * PCI bus 0: configuration space through 0xCF8/0xCFC and ECAM, BAR sizing and decoding.
 * One lock serialises configuration accesses; BAR accesses are passed to the function without
 * it (functions lock what they need), so a device's register reads never wait for another's.
 */
#include "vmm/pci_bus.h"

#include <errno.h>
#include <string.h>

#define PCI_COMMAND	   0x04
#define PCI_COMMAND_IO	   0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_BAR0	   0x10

void pci_dev_init(struct pci_dev *d, const struct pci_dev_ops *ops, uint16_t vendor,
		  uint16_t device, uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->slot = -1;
	pci_cfg_put(d, 0x00, 2, vendor);
	pci_cfg_put(d, 0x02, 2, device);
	pci_cfg_put(d, 0x08, 4, class_code << 8 | 1); /* revision 1: virtio 1.x wants >= 1 */
	pci_cfg_put(d, 0x2c, 2, subsys_vendor);
	pci_cfg_put(d, 0x2e, 2, subsys_id);
	/* command: I/O, memory, bus master, INTx disable */
	d->wmask[PCI_COMMAND] = 0x07;
	d->wmask[PCI_COMMAND + 1] = 0x04;
	d->wmask[0x3c] = 0xff; /* interrupt line: scratch for the OS */
}

void pci_dev_set_bar(struct pci_dev *d, int bar, uint64_t size)
{
	uint32_t mask = (uint32_t) ~(size - 1) & ~0xfu;

	d->bar_size[bar] = size;
	for (int i = 0; i < 4; i++)
		d->wmask[PCI_BAR0 + 4 * bar + i] = (uint8_t)(mask >> (8 * i));
	pci_cfg_put(d, PCI_BAR0 + 4 * bar, 4, 0); /* 32-bit, non-prefetchable memory */
}

void pci_dev_set_io_bar(struct pci_dev *d, int bar, unsigned size)
{
	uint32_t mask = ~(size - 1) & 0xfffcu; /* x86 ports are 16-bit: the rest reads as 0 */

	d->bar_size[bar] = size;
	d->bar_io[bar] = true;
	for (int i = 0; i < 4; i++)
		d->wmask[PCI_BAR0 + 4 * bar + i] = (uint8_t)(mask >> (8 * i));
	pci_cfg_put(d, PCI_BAR0 + 4 * bar, 4, 1); /* bit 0: I/O space */
}

/* Where each BAR decodes after a command or BAR write; tell the function about changes. */
static void update_bars(struct pci_dev *d)
{
	uint32_t cmd = pci_cfg_get(d, PCI_COMMAND, 2);

	for (int b = 0; b < PCI_NUM_BARS; b++) {
		uint64_t gpa, old = d->bar_gpa[b];
		if (!d->bar_size[b])
			continue;
		gpa = pci_cfg_get(d, PCI_BAR0 + 4 * b, 4) & (d->bar_io[b] ? ~0x3ull : ~0xfull);
		if (!(cmd & (d->bar_io[b] ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)))
			gpa = 0;
		if (gpa == old)
			continue;
		d->bar_gpa[b] = gpa;
		if (d->ops && d->ops->bar_moved)
			d->ops->bar_moved(d, b, old, gpa);
	}
}

void pci_bus_init(struct pci_bus *bus, uint64_t ecam_base, uint64_t mmio_base, uint64_t mmio_size)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	bus->ecam_base = ecam_base;
	bus->mmio_next = mmio_base;
	bus->mmio_end = mmio_base + mmio_size;
	bus->io_next = PCI_BUS_IO_BASE;
	/* 00:00.0, the host bridge: Linux's type-1 probe looks for a bridge class here. */
	pci_dev_init(&bus->host_bridge, NULL, 0x1b36, 0x0008, 0x060000, 0, 0);
	pci_cfg_put(&bus->host_bridge, 0x08, 1, 0);
	bus->host_bridge.wmask[0x3c] = 0;
	bus->host_bridge.slot = 0;
	bus->host_bridge.bus = bus;
	bus->dev[0] = &bus->host_bridge;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	pthread_mutex_destroy(&bus->lock);
}

int pci_bus_add(struct pci_bus *bus, struct pci_dev *d)
{
	int slot;

	pthread_mutex_lock(&bus->lock);
	for (slot = 1; slot < PCI_BUS_SLOTS && bus->dev[slot]; slot++)
		;
	if (slot == PCI_BUS_SLOTS) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOSPC;
	}
	/* Place BARs now (naturally aligned), as firmware would: Linux keeps what it finds. */
	uint64_t mmio_next = bus->mmio_next, io_next = bus->io_next;
	uint16_t cmd = 0;
	for (int b = 0; b < PCI_NUM_BARS; b++) {
		uint64_t sz = d->bar_size[b], *next = d->bar_io[b] ? &io_next : &mmio_next;
		uint64_t at = (*next + sz - 1) & ~(sz - 1);
		if (!sz)
			continue;
		if (at + sz > (d->bar_io[b] ? PCI_BUS_IO_END : bus->mmio_end)) {
			pthread_mutex_unlock(&bus->lock);
			return -ENOSPC;
		}
		pci_cfg_put(d, PCI_BAR0 + 4 * b, 4, (uint32_t)at | (d->bar_io[b] ? 1 : 0));
		*next = at + sz;
		cmd |= d->bar_io[b] ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
	}
	bus->mmio_next = mmio_next;
	bus->io_next = (uint32_t)io_next;
	pci_cfg_put(d, PCI_COMMAND, 2, cmd);
	d->slot = slot;
	d->bus = bus;
	bus->dev[slot] = d;
	update_bars(d);
	pthread_mutex_unlock(&bus->lock);
	return slot;
}

/* Configuration access to bus 0, device/function devfn. Only function 0 exists. */
static void cfg_access(struct pci_bus *bus, unsigned devfn, unsigned reg, void *data, unsigned len,
		       bool is_write)
{
	struct pci_dev *d = (devfn & 7) ? NULL : bus->dev[devfn >> 3];
	uint32_t v = 0;

	if (len > 4 || reg + len > PCI_CFG_SIZE || (reg & (len - 1))) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (!is_write) {
		if (d && d->ops && d->ops->cfg_reading)
			d->ops->cfg_reading(d, reg, len);
		v = d ? pci_cfg_get(d, reg, len) : 0xffffffffu;
		memcpy(data, &v, len);
		return;
	}
	if (!d)
		return;
	memcpy(&v, data, len);
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = d->wmask[reg + i];
		d->cfg[reg + i] = (uint8_t)((d->cfg[reg + i] & ~m) | ((v >> (8 * i)) & m));
	}
	if (reg < PCI_BAR0 + 4 * PCI_NUM_BARS && reg + len > PCI_COMMAND)
		update_bars(d);
	if (d->ops && d->ops->cfg_written)
		d->ops->cfg_written(d, reg, len);
}

/* The BAR of kind io that holds [addr, addr + len), as its device and offset; or NULL. */
static struct pci_dev *bar_at(struct pci_bus *bus, bool io, uint64_t addr, unsigned len, int *bar,
			      uint64_t *off)
{
	for (int s = 1; s < PCI_BUS_SLOTS; s++) {
		struct pci_dev *d = bus->dev[s];
		if (!d)
			continue;
		for (int b = 0; b < PCI_NUM_BARS; b++) {
			uint64_t base = __atomic_load_n(&d->bar_gpa[b], __ATOMIC_ACQUIRE);
			uint64_t sz = d->bar_size[b];
			if (d->bar_io[b] != io || !base || addr < base || addr - base >= sz ||
			    len > sz - (addr - base))
				continue;
			*bar = b;
			*off = addr - base;
			return d;
		}
	}
	return NULL;
}

/* An access to the I/O (io) or memory BARs: true when a BAR of that kind holds it. */
static bool bar_access(struct pci_bus *bus, bool io, uint64_t addr, void *data, unsigned len,
		       bool is_write)
{
	int bar;
	uint64_t off;
	struct pci_dev *d = bar_at(bus, io, addr, len, &bar, &off);

	if (!d)
		return false;
	if (is_write && d->ops->bar_write)
		d->ops->bar_write(d, bar, off, data, len);
	else if (!is_write && d->ops->bar_read)
		d->ops->bar_read(d, bar, off, data, len);
	else if (!is_write)
		memset(data, 0xff, len);
	return true;
}

bool pci_bus_pio(struct pci_bus *bus, uint16_t port, void *data, unsigned len, bool is_write)
{
	if (port < 0xcf8 || port + len > 0xd00)
		return bar_access(bus, true, port, data, len, is_write);
	pthread_mutex_lock(&bus->lock);
	if (port == 0xcf8) {
		if (len == 4 && is_write)
			memcpy(&bus->cf8, data, 4);
		else if (len == 4)
			memcpy(data, &bus->cf8, 4);
		else if (!is_write)
			memset(data, 0xff, len);
	} else if (port >= 0xcfc) {
		uint32_t a = bus->cf8;
		if ((a & 0x80000000u) && ((a >> 16) & 0xff) == 0)
			cfg_access(bus, (a >> 8) & 0xff, (a & 0xfc) + (port - 0xcfc), data, len,
				   is_write);
		else if (!is_write)
			memset(data, 0xff, len);
	} else if (!is_write) {
		memset(data, 0xff, len);
	}
	pthread_mutex_unlock(&bus->lock);
	return true;
}

bool pci_bus_mmio(struct pci_bus *bus, uint64_t gpa, void *data, unsigned len, bool is_write)
{
	if (gpa >= bus->ecam_base && gpa - bus->ecam_base < PCI_BUS_ECAM_LEN) {
		uint64_t off = gpa - bus->ecam_base;
		pthread_mutex_lock(&bus->lock);
		cfg_access(bus, (off >> 12) & 0xff, off & 0xfff, data, len, is_write);
		pthread_mutex_unlock(&bus->lock);
		return true;
	}
	return bar_access(bus, false, gpa, data, len, is_write);
}
