/* Loading a bzImage with the Linux x86 64-bit boot protocol (Documentation/x86/boot.rst). */
#ifndef LIGERO_VMM_BOOT_H
#define LIGERO_VMM_BOOT_H

#include "vmm/memory.h"

#include <stddef.h>
#include <stdint.h>

/* The low-memory plan. Everything below 1 MiB that the guest must not reuse is reserved in
 * the e820 map; the rest is ordinary RAM the kernel reclaims after boot. */
#define BOOT_GDT_ADDR	  0x500ull
#define BOOT_ZERO_PAGE	  0x7000ull
#define BOOT_STACK	  0x8ff0ull
#define BOOT_PML4	  0x9000ull /* then PDPT at +0x1000, four PDs at +0x2000.. */
#define BOOT_CMDLINE_ADDR 0x20000ull
#define BOOT_CMDLINE_MAX  0x10000ull
#define BOOT_EBDA_START	  0x9fc00ull
#define BOOT_BIOS_START	  0xe0000ull /* ACPI tables live here, where the RSDP scan looks */
#define BOOT_KERNEL_ADDR  0x100000ull
#define BOOT_MIN_VERSION  0x020c /* 2.12: xloadflags and the 64-bit entry */

/* What the VMM adds in front of the user's command line; documented in docs/ligero-run.md. */
#define BOOT_CMDLINE_PREFIX "panic=-1 reboot=k 8250.nr_uarts=1"

struct bzimage {
	uint16_t version;
	uint32_t setup_bytes; /* real-mode part, boot sector included */
	uint32_t init_size;   /* memory the kernel needs from its load address */
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* longest command line the kernel accepts, NUL excluded */
	uint32_t hdr_end;      /* end of the setup header, offset in the file */
};

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      16

/* A kernel or an initrd: a host file, or bytes already in memory (buf set: path then only
 * names them in messages). tools/bootdisk reads a disk's own kernel into memory; the VMM never
 * reads guest filesystems itself. */
struct boot_file {
	const char *path;
	const void *buf;
	uint64_t len;
};

/* Parse the setup header in the first `len` bytes of a file of `file_size` bytes.
 * Returns -ENOEXEC with a message when it is not a usable bzImage. */
int bzimage_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct bzimage *bz);
/* Check that kernel is a usable bzImage and initrd (may be NULL) a readable, non-empty file or
 * buffer, before any KVM work, so that a wrong path fails first and clearly. */
int boot_probe(const struct boot_file *kernel, const struct boot_file *initrd);
/* Build the e820 map for this memory layout; returns the number of entries. */
unsigned boot_e820(const struct guest_mem *mem, struct e820_entry *out);
/* Compose the guest's command line: BOOT_CMDLINE_PREFIX, console=ttyS0 unless the user chose a
 * console, then the user's text. Returns -E2BIG when it does not fit in `max` bytes. */
int boot_cmdline(const char *user, char *out, size_t max);
/* Load kernel and initrd into guest memory and write zero page, command line, GDT and page
 * tables. rsdp is the ACPI root pointer's guest address. */
int boot_load(struct guest_mem *mem, const struct boot_file *kernel, const struct boot_file *initrd,
	      const char *cmdline, uint64_t rsdp);

#endif
