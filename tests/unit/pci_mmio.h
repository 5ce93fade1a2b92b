/* Register accessors for unit tests that drive a virtio-pci device through a struct pci_bus:
 * PCI_MMIO_ACCESSORS(struct fix, ECAM) defines cfg_rd/cfg_wr (the function's configuration
 * space in the ECAM window at ECAM) and rd/wr (its BAR), for any fixture type with the fields
 * bus (struct pci_bus), slot (its device number) and bar (the BAR's guest address). Every access
 * must be claimed by the bus (asserted). A test need not use all four (unused is allowed). */
#ifndef LIGERO_TESTS_UNIT_PCI_MMIO_H
#define LIGERO_TESTS_UNIT_PCI_MMIO_H

#define PCI_MMIO_ACCESSORS(FIX, ECAM_BASE)                                                         \
	__attribute__((unused)) static inline uint32_t cfg_rd(FIX *f, unsigned reg, unsigned len)  \
	{                                                                                          \
		uint32_t v = 0;                                                                    \
		assert_true(                                                                       \
		    pci_bus_mmio(&f->bus, (ECAM_BASE) + (f->slot << 15) + reg, &v, len, false));   \
		return v;                                                                          \
	}                                                                                          \
	__attribute__((unused)) static inline void cfg_wr(FIX *f, unsigned reg, unsigned len,      \
							  uint32_t v)                              \
	{                                                                                          \
		assert_true(                                                                       \
		    pci_bus_mmio(&f->bus, (ECAM_BASE) + (f->slot << 15) + reg, &v, len, true));    \
	}                                                                                          \
	__attribute__((unused)) static inline uint64_t rd(FIX *f, uint64_t off, unsigned len)      \
	{                                                                                          \
		uint64_t v = 0;                                                                    \
		assert_true(pci_bus_mmio(&f->bus, f->bar + off, &v, len, false));                  \
		return v;                                                                          \
	}                                                                                          \
	__attribute__((unused)) static inline void wr(FIX *f, uint64_t off, unsigned len,          \
						      uint64_t v)                                  \
	{                                                                                          \
		assert_true(pci_bus_mmio(&f->bus, f->bar + off, &v, len, true));                   \
	}

#endif
