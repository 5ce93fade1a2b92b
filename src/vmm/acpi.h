/* ACPI tables generated for the guest: RSDP, XSDT, FADT, FACS, MADT, DSDT, MCFG. */
#ifndef LIGERO_VMM_ACPI_H
#define LIGERO_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* Write all tables into buf, which the guest will see at guest-physical `base`; the RSDP comes
 * first, at `base`. Returns the bytes used, or 0 when cap is too small. */
size_t acpi_build(uint8_t *buf, size_t cap, uint64_t base, unsigned ncpus);
/* Write the tables a guest with ncpus vCPUs sees into dir, one file per table named after its
 * signature (RSDP.dat, XSDT.dat, FACP.dat, APIC.dat, MCFG.dat, DSDT.dat, FACS.dat): the binary
 * form `iasl -d` disassembles. */
int acpi_dump(const char *dir, unsigned ncpus);
/* Sum of bytes mod 256 (a valid ACPI table sums to 0). */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

#endif
