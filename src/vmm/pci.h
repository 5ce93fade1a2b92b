/* The PCI host bridge: configuration space through ports 0xCF8/0xCFC and an ECAM window.
 * Only the bridge itself (00:00.0) answers; virtio devices arrive with the next issue. */
#ifndef LIGERO_VMM_PCI_H
#define LIGERO_VMM_PCI_H

#include "vmm/bus.h"

#include <pthread.h>
#include <stdint.h>

#define PCI_ECAM_BASE 0xe0000000ull
#define PCI_ECAM_SIZE 0x100000ull   /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define PCI_MMIO_BASE 0xc0000000ull /* 32-bit BAR window, up to the ECAM window */
#define PCI_MMIO_END  (PCI_ECAM_BASE - 1)
#define PCI_CONFIG_IO 0xcf8

struct pci_host {
	pthread_mutex_t lock;
	uint32_t cf8; /* the address latch */
};

/* Register the config ports on `io` and the ECAM window on `mmio`. */
int pci_host_init(struct pci_host *h, struct bus *io, struct bus *mmio);
/* Read `size` bytes of config space of bus 0 device/function `devfn` at `reg`. */
uint32_t pci_config_read(unsigned devfn, unsigned reg, unsigned size);

#endif
