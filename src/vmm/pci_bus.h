/*
 * PCI bus 0 behind a host bridge: type-1 configuration ports (0xCF8 address, 0xCFC-0xCFF data)
 * and an ECAM window (the one the MCFG table announces), plus decoding of the devices' memory
 * and I/O BARs. A function keeps its configuration space as bytes with a write mask; the bus does
 * the generic part (BAR sizing, command register) and tells the function about the rest.
 *
 * The VMM calls pci_bus_pio / pci_bus_mmio from its vCPU exit handler; both return false for an
 * address that is not the bus's, so the caller can try its other devices. Thread-safe.
 */
#ifndef LIGERO_VMM_PCI_BUS_H
#define LIGERO_VMM_PCI_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_BUS_SLOTS	 32
#define PCI_CFG_SIZE	 4096	    /* extended configuration space, reachable through ECAM */
#define PCI_BUS_ECAM_LEN (1u << 20) /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define PCI_NUM_BARS	 6
/* The ports I/O BARs are given from: inside the host bridge's I/O window (the DSDT's _CRS). */
#define PCI_BUS_IO_BASE 0xc000u
#define PCI_BUS_IO_END	0x10000u

struct pci_dev;

struct pci_dev_ops {
	/* Before the guest reads configuration bytes [off, off + len): refresh them if needed. */
	void (*cfg_reading)(struct pci_dev *d, unsigned off, unsigned len);
	/* After the guest wrote configuration bytes [off, off + len) (already stored). */
	void (*cfg_written)(struct pci_dev *d, unsigned off, unsigned len);
	/* A BAR's guest address changed (0 = not decoded: memory space off or unassigned). */
	void (*bar_moved)(struct pci_dev *d, int bar, uint64_t old_gpa, uint64_t new_gpa);
	/* Accesses of 1, 2, 4 or 8 bytes inside BAR `bar`; off + len <= the BAR's size. */
	void (*bar_read)(struct pci_dev *d, int bar, uint64_t off, void *data, unsigned len);
	void (*bar_write)(struct pci_dev *d, int bar, uint64_t off, const void *data, unsigned len);
};

struct pci_dev {
	const struct pci_dev_ops *ops;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];	 /* bits the guest may change */
	uint64_t bar_size[PCI_NUM_BARS]; /* 0 = BAR unused */
	bool bar_io[PCI_NUM_BARS];	 /* an I/O BAR (else 32-bit memory) */
	uint64_t bar_gpa[PCI_NUM_BARS];	 /* where it decodes now: address or port (0 = nowhere) */
	int slot;
	struct pci_bus *bus;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t cf8;
	uint64_t ecam_base;
	uint64_t mmio_next, mmio_end; /* 32-bit window the VMM gives BARs from */
	uint32_t io_next;	      /* and ports for I/O BARs, up to PCI_BUS_IO_END */
	struct pci_dev host_bridge;
	struct pci_dev *dev[PCI_BUS_SLOTS];
};

/* ecam_base: the MCFG address; [mmio_base, +mmio_size): the host bridge's 32-bit MMIO window
 * (the DSDT's _CRS), from which BARs get their initial addresses. Slot 0 is the host bridge. */
void pci_bus_init(struct pci_bus *bus, uint64_t ecam_base, uint64_t mmio_base, uint64_t mmio_size);
void pci_bus_destroy(struct pci_bus *bus);

/* Fill the header of a type-0 function (caller sets capabilities etc. afterwards). */
void pci_dev_init(struct pci_dev *d, const struct pci_dev_ops *ops, uint16_t vendor,
		  uint16_t device, uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id);
/* Declare BAR `bar` as a 32-bit memory BAR of `size` bytes (a power of two >= 4 KiB). */
void pci_dev_set_bar(struct pci_dev *d, int bar, uint64_t size);
/* Declare BAR `bar` as an I/O BAR of `size` ports (a power of two from 4 to 256). */
void pci_dev_set_io_bar(struct pci_dev *d, int bar, unsigned size);

/* Plug a function into the next free slot and place its BARs. Returns the slot or -ENOSPC. */
int pci_bus_add(struct pci_bus *bus, struct pci_dev *d);

/* Port I/O (the configuration ports and the I/O BARs) and MMIO exits. Return true when the
 * access was the bus's. Reads of nothing give
 * all ones, as on real hardware. */
bool pci_bus_pio(struct pci_bus *bus, uint16_t port, void *data, unsigned len, bool is_write);
bool pci_bus_mmio(struct pci_bus *bus, uint64_t gpa, void *data, unsigned len, bool is_write);

static inline uint32_t pci_cfg_get(const struct pci_dev *d, unsigned off, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d->cfg[off + i] << (8 * i);
	return v;
}

static inline void pci_cfg_put(struct pci_dev *d, unsigned off, unsigned len, uint32_t v)
{
	for (unsigned i = 0; i < len; i++)
		d->cfg[off + i] = (uint8_t)(v >> (8 * i));
}

#endif
