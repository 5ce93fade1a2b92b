/* A PCI host bridge that enumerates as one device, the bridge. Linux's type-1 probe wants the
 * 0xCF8 latch to read back and a host bridge (class 06.00) at 00:00.0 before it trusts the
 * mechanism; everything else reads as "no device" (all ones). */
#include "vmm/pci.h"

#include <string.h>

#define PCI_VENDOR_REDHAT 0x1b36
#define PCI_DEVICE_HOST	  0x0008 /* a generic PCIe host bridge */

uint32_t pci_config_read(unsigned devfn, unsigned reg, unsigned size)
{
	uint32_t dw = 0xffffffff;
	unsigned shift = (reg & 3) * 8;

	if (devfn == 0) {
		switch (reg & ~3u) {
		case 0x00:
			dw = PCI_VENDOR_REDHAT | PCI_DEVICE_HOST << 16;
			break;
		case 0x08:
			dw = 0x06000000; /* class: bridge, host; revision 0 */
			break;
		case 0x04: /* command, status */
		case 0x0c: /* header type 0, single function */
		default:
			dw = 0;
			break;
		}
	}
	dw >>= shift;
	return size >= 4 ? dw : dw & ((1u << (size * 8)) - 1);
}

static uint64_t cf8_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_host *h = opaque;
	uint32_t v = 0xffffffff;

	pthread_mutex_lock(&h->lock);
	if (off == 0 && size == 4)
		v = h->cf8;
	else if (off >= 4 && (h->cf8 & 0x80000000u) && ((h->cf8 >> 16) & 0xff) == 0)
		v = pci_config_read((h->cf8 >> 8) & 0xff, (h->cf8 & 0xfc) + (off - 4), size);
	pthread_mutex_unlock(&h->lock);
	return v;
}

static void cf8_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct pci_host *h = opaque;

	/* Config writes go nowhere: the bridge has nothing to configure. */
	if (off != 0 || size != 4)
		return;
	pthread_mutex_lock(&h->lock);
	h->cf8 = val;
	pthread_mutex_unlock(&h->lock);
}

static uint64_t ecam_read(void *opaque, uint64_t off, unsigned size)
{
	if (size > 4)
		return ~0ull;
	return pci_config_read((off >> 12) & 0xff, off & 0xfff, size);
}

static const struct bus_ops cf8_ops = {cf8_read, cf8_write};
static const struct bus_ops ecam_ops = {ecam_read, NULL};

int pci_host_init(struct pci_host *h, struct bus *io, struct bus *mmio)
{
	int ret;

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	if ((ret = bus_add(io, PCI_CONFIG_IO, 8, &cf8_ops, h)) < 0)
		return ret;
	return bus_add(mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, &ecam_ops, NULL);
}
