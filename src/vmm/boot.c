/* The Linux x86 boot protocol, 64-bit entry. Offsets are those of struct boot_params and
 * struct setup_header in the kernel's arch/x86/include/uapi/asm/bootparam.h. */
#include "vmm/boot.h"
#include "vmm/pci.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_SETUP_SECTS	  0x1f1
#define HDR_VID_MODE	  0x1fa
#define HDR_BOOT_FLAG	  0x1fe
#define HDR_JUMP_END	  0x201 /* byte: setup header length past 0x202 */
#define HDR_MAGIC	  0x202
#define HDR_VERSION	  0x206
#define HDR_LOADER_TYPE	  0x210
#define HDR_LOADFLAGS	  0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE  0x21c
#define HDR_CMD_LINE_PTR  0x228
#define HDR_INITRD_MAX	  0x22c
#define HDR_XLOADFLAGS	  0x236
#define HDR_CMDLINE_SIZE  0x238
#define HDR_INIT_SIZE	  0x260
#define BP_ACPI_RSDP	  0x070
#define BP_E820_ENTRIES	  0x1e8
#define BP_E820_TABLE	  0x2d0

#define LOADED_HIGH   0x01
#define XLF_KERNEL_64 0x01

static uint16_t get16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

int bzimage_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct bzimage *bz)
{
	unsigned sects;

	if (len < 0x268 || get16(buf + HDR_BOOT_FLAG) != 0xaa55 ||
	    memcmp(buf + HDR_MAGIC, "HdrS", 4))
		return err_set(ENOEXEC, "not a Linux bzImage (no 'HdrS' setup header)");
	bz->version = get16(buf + HDR_VERSION);
	if (bz->version < BOOT_MIN_VERSION)
		return err_set(ENOEXEC, "boot protocol %u.%02u is too old (need 2.12 or later)",
			       bz->version >> 8, bz->version & 0xff);
	if (!(buf[HDR_LOADFLAGS] & LOADED_HIGH))
		return err_set(ENOEXEC, "not a bzImage (a zImage loads low)");
	if (!(get16(buf + HDR_XLOADFLAGS) & XLF_KERNEL_64))
		return err_set(ENOEXEC, "kernel has no 64-bit entry point");
	sects = buf[HDR_SETUP_SECTS] ? buf[HDR_SETUP_SECTS] : 4;
	bz->setup_bytes = (sects + 1) * 512;
	bz->hdr_end = 0x202 + buf[HDR_JUMP_END];
	if (bz->hdr_end > len || bz->hdr_end < HDR_INIT_SIZE + 4)
		return err_set(ENOEXEC, "setup header length %u is out of range", bz->hdr_end);
	if (file_size <= bz->setup_bytes)
		return err_set(ENOEXEC, "file is shorter than its setup code (%u bytes)",
			       bz->setup_bytes);
	bz->init_size = get32(buf + HDR_INIT_SIZE);
	if (bz->init_size < file_size - bz->setup_bytes)
		return err_set(ENOEXEC, "init_size %u is smaller than the kernel", bz->init_size);
	bz->initrd_addr_max = get32(buf + HDR_INITRD_MAX);
	bz->cmdline_size = get32(buf + HDR_CMDLINE_SIZE);
	return 0;
}

unsigned boot_e820(const struct guest_mem *mem, struct e820_entry *out)
{
	unsigned n = 0;

	out[n++] = (struct e820_entry){0, BOOT_EBDA_START, E820_RAM};
	out[n++] = (struct e820_entry){BOOT_EBDA_START, 0xa0000 - BOOT_EBDA_START, E820_RESERVED};
	out[n++] =
	    (struct e820_entry){BOOT_BIOS_START, BOOT_KERNEL_ADDR - BOOT_BIOS_START, E820_RESERVED};
	out[n++] =
	    (struct e820_entry){BOOT_KERNEL_ADDR, mem_low_end(mem) - BOOT_KERNEL_ADDR, E820_RAM};
	/* Linux trusts MCFG only when its window is reserved. */
	out[n++] = (struct e820_entry){PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED};
	if (mem->nregions > 1)
		out[n++] = (struct e820_entry){mem->regions[1].gpa, mem->regions[1].size, E820_RAM};
	return n;
}

int boot_cmdline(const char *user, char *out, size_t max)
{
	const char *console = "";
	int n;

	if (!user)
		user = "";
	if (strncmp(user, "console=", 8) && !strstr(user, " console="))
		console = " console=ttyS0";
	n = snprintf(out, max, "%s%s%s%s", BOOT_CMDLINE_PREFIX, console, *user ? " " : "", user);
	if (n < 0 || (size_t)n >= max)
		return err_set(E2BIG, "kernel command line is longer than %zu bytes", max - 1);
	return 0;
}

/* Read exactly len bytes at off of fd into dst. */
static int read_full(int fd, void *dst, uint64_t len, uint64_t off, const char *path)
{
	uint8_t *p = dst;

	while (len) {
		ssize_t r = pread(fd, p, len > (1u << 30) ? (1u << 30) : len, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_sys(errno, "%s: read failed", path);
		if (r == 0)
			return err_set(EIO, "%s: file shrank while reading", path);
		p += r;
		off += r;
		len -= r;
	}
	return 0;
}

static int open_regular(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(errno, "%s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(EINVAL, "%s: not a regular file", path);
	}
	*size = st.st_size;
	return fd;
}

/* Identity map the first 4 GiB with 2 MiB pages: enough for the kernel, zero page, command line
 * and an initrd anywhere below 4 GiB, as the 64-bit protocol requires. */
static void boot_page_tables(struct guest_mem *mem)
{
	uint64_t *pml4 = mem_ptr(mem, BOOT_PML4, 0x1000);
	uint64_t *pdpt = mem_ptr(mem, BOOT_PML4 + 0x1000, 0x1000);
	uint64_t *pd = mem_ptr(mem, BOOT_PML4 + 0x2000, 0x4000);

	memset(pml4, 0, 0x6000);
	pml4[0] = (BOOT_PML4 + 0x1000) | 0x3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4 + 0x2000 + i * 0x1000) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB */
}

static void boot_gdt(struct guest_mem *mem)
{
	uint64_t *gdt = mem_ptr(mem, BOOT_GDT_ADDR, 4 * 8);

	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffull; /* 0x10: __BOOT_CS, 64-bit code */
	gdt[3] = 0x00cf93000000ffffull; /* 0x18: __BOOT_DS */
}

static int load_initrd(struct guest_mem *mem, const struct boot_file *initrd,
		       const struct bzimage *bz, uint8_t *zp)
{
	uint64_t size = initrd->len, top, addr, kernel_end = BOOT_KERNEL_ADDR + bz->init_size;
	const char *path = initrd->path ? initrd->path : "initrd";
	int fd = -1, ret = 0;

	if (!initrd->buf && (fd = open_regular(path, &size)) < 0)
		return fd;
	top = mem_low_end(mem);
	if (bz->initrd_addr_max && top > (uint64_t)bz->initrd_addr_max + 1)
		top = (uint64_t)bz->initrd_addr_max + 1;
	if (size == 0 || size > top || ((top - size) & ~0xfffull) < kernel_end) {
		if (fd >= 0)
			close(fd);
		return err_set(ENOMEM,
			       "%s: initrd of %llu bytes does not fit below %#llx "
			       "after the kernel; give the guest more --memory",
			       path, (unsigned long long)size, (unsigned long long)top);
	}
	addr = (top - size) & ~0xfffull;
	if (initrd->buf) {
		memcpy(mem_ptr(mem, addr, size), initrd->buf, size);
	} else {
		ret = read_full(fd, mem_ptr(mem, addr, size), size, 0, path);
		close(fd);
	}
	put32(zp + HDR_RAMDISK_IMAGE, addr);
	put32(zp + HDR_RAMDISK_SIZE, size);
	return ret;
}

static int read_header(const char *kernel, uint8_t *hdr, size_t cap, struct bzimage *bz,
		       uint64_t *fsize)
{
	int fd = open_regular(kernel, fsize), ret;
	size_t len;

	if (fd < 0)
		return fd;
	len = *fsize < cap ? *fsize : cap;
	ret = read_full(fd, hdr, len, 0, kernel);
	if (!ret && (ret = bzimage_parse(hdr, len, *fsize, bz)) < 0)
		ret = err_prefix(ret, "%s: ", kernel);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* The setup header of a kernel given as a buffer (what read_header does for a file). */
static int buf_header(const struct boot_file *k, uint8_t *hdr, size_t cap, struct bzimage *bz)
{
	size_t len = k->len < cap ? k->len : cap;
	int ret;

	memcpy(hdr, k->buf, len);
	if ((ret = bzimage_parse(hdr, len, k->len, bz)) < 0)
		return err_prefix(ret, "%s: ", k->path ? k->path : "kernel");
	return 0;
}

/* The kernel's header: a file stays open for the caller (*fd), a buffer gives *fd = -1. */
static int kernel_header(const struct boot_file *k, uint8_t *hdr, size_t cap, struct bzimage *bz,
			 uint64_t *fsize, int *fd)
{
	*fd = -1;
	if (k->buf) {
		*fsize = k->len;
		return buf_header(k, hdr, cap, bz);
	}
	*fd = read_header(k->path, hdr, cap, bz, fsize);
	return *fd < 0 ? *fd : 0;
}

int boot_probe(const struct boot_file *kernel, const struct boot_file *initrd)
{
	uint8_t hdr[0x400] = {0};
	struct bzimage bz;
	uint64_t size = 0;
	int fd, ret = kernel_header(kernel, hdr, sizeof(hdr), &bz, &size, &fd);

	if (ret < 0)
		return ret;
	if (fd >= 0)
		close(fd);
	if (!initrd)
		return 0;
	size = initrd->len;
	if (!initrd->buf) {
		if ((fd = open_regular(initrd->path, &size)) < 0)
			return fd;
		close(fd);
	}
	if (size == 0)
		return err_set(EINVAL, "%s: initrd is empty",
			       initrd->path ? initrd->path : "initrd");
	return 0;
}

int boot_load(struct guest_mem *mem, const struct boot_file *kernel, const struct boot_file *initrd,
	      const char *cmdline, uint64_t rsdp)
{
	uint8_t hdr[0x400] = {0}, *zp = mem_ptr(mem, BOOT_ZERO_PAGE, 4096);
	struct e820_entry e820[E820_MAX];
	struct bzimage bz;
	uint64_t fsize = 0, ksize;
	size_t cmax;
	char *cl;
	unsigned n;
	int fd, ret;

	if ((ret = kernel_header(kernel, hdr, sizeof(hdr), &bz, &fsize, &fd)) < 0)
		return ret;
	ksize = fsize - bz.setup_bytes;
	if (BOOT_KERNEL_ADDR + bz.init_size > mem_low_end(mem)) {
		if (fd >= 0)
			close(fd);
		return err_set(ENOMEM,
			       "%s: kernel needs %u MiB from 1 MiB up; give the guest more "
			       "--memory",
			       kernel->path ? kernel->path : "kernel", bz.init_size >> 20);
	}
	if (kernel->buf) {
		memcpy(mem_ptr(mem, BOOT_KERNEL_ADDR, ksize),
		       (const uint8_t *)kernel->buf + bz.setup_bytes, ksize);
	} else {
		ret = read_full(fd, mem_ptr(mem, BOOT_KERNEL_ADDR, ksize), ksize, bz.setup_bytes,
				kernel->path);
		close(fd);
		if (ret)
			return ret;
	}

	memset(zp, 0, 4096);
	memcpy(zp + HDR_SETUP_SECTS, hdr + HDR_SETUP_SECTS, bz.hdr_end - HDR_SETUP_SECTS);
	put16(zp + HDR_VID_MODE, 0xffff);
	zp[HDR_LOADER_TYPE] = 0xff; /* "undefined" boot loader */
	put64(zp + BP_ACPI_RSDP, rsdp);

	cmax = bz.cmdline_size + 1 < BOOT_CMDLINE_MAX ? bz.cmdline_size + 1 : BOOT_CMDLINE_MAX;
	cl = mem_ptr(mem, BOOT_CMDLINE_ADDR, cmax);
	if ((ret = boot_cmdline(cmdline, cl, cmax)) < 0)
		return ret;
	put32(zp + HDR_CMD_LINE_PTR, BOOT_CMDLINE_ADDR);

	if (initrd && (ret = load_initrd(mem, initrd, &bz, zp)) < 0)
		return ret;

	n = boot_e820(mem, e820);
	zp[BP_E820_ENTRIES] = n;
	memcpy(zp + BP_E820_TABLE, e820, n * sizeof(e820[0]));
	boot_gdt(mem);
	boot_page_tables(mem);
	return 0;
}
