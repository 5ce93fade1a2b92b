/* ACPI tables. The guest learns its CPUs and interrupt routing from the MADT (Debian's cloud
 * kernel parses no MP table), how to power off from the FADT's PM1a block and the DSDT's \_S5,
 * that it has a power button from the FADT (a fixed-feature button: PWRBTN_STS/EN in the PM1a
 * event block, signalled on the SCI; nothing in the DSDT), and where PCI lives from the DSDT's
 * root bridge and the MCFG. The FADT also says which legacy devices are absent, so the guest
 * does not spend seconds probing a CMOS clock or an 8042. */
#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/pci.h"
#include "vmm/pm.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IOAPIC_ADDR 0xfec00000u
#define LAPIC_ADDR  0xfee00000u

/* IAPC_BOOT_ARCH: no legacy devices, no 8042, no VGA, no CMOS RTC. */
#define BOOT_ARCH_NO_VGA 0x0004
#define BOOT_ARCH_NO_RTC 0x0020
/* FADT flags: WBINVD works, C1 on all CPUs, no sleep button. PWR_BUTTON (0x10) is clear: the
 * power button is the fixed-feature one, which Linux offers as LNXPWRBN (ACPI 6.3, 4.8.2.2.1.1);
 * a control-method button would need a PNP0C0C device and a GPE block instead. */
#define FADT_FLAGS (0x1 | 0x4 | 0x20)

struct out {
	uint8_t *buf;
	size_t cap, n;
	uint64_t base;
	int overflow;
};

static uint8_t *emit(struct out *o, size_t len)
{
	uint8_t *p;

	if (o->overflow || len > o->cap - o->n) {
		o->overflow = 1;
		return NULL;
	}
	p = o->buf + o->n;
	memset(p, 0, len);
	o->n += len;
	return p;
}

static void align(struct out *o, size_t a)
{
	size_t pad = (a - o->n % a) % a;

	if (pad)
		emit(o, pad);
}

static void le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = v >> (8 * i);
}

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* Start a table with the standard 36-byte header; returns its offset in the output. */
static size_t table_begin(struct out *o, const char *sig, uint8_t rev)
{
	size_t off;
	uint8_t *h;

	align(o, 16);
	off = o->n;
	if (!(h = emit(o, 36)))
		return off;
	memcpy(h, sig, 4);
	h[8] = rev;
	memcpy(h + 10, "LIGERO", 6);
	memcpy(h + 16, "LIGEROVM", 8);
	le(h + 24, 1, 4);
	memcpy(h + 28, "LGRO", 4);
	le(h + 32, 1, 4);
	return off;
}

static void table_end(struct out *o, size_t off)
{
	uint8_t *h = o->buf + off;

	if (o->overflow)
		return;
	le(h + 4, o->n - off, 4);
	h[9] = 0;
	h[9] = -acpi_checksum(h, o->n - off);
}

/* --- AML, just enough for names, packages, buffers, scopes and devices. --- */

static void aml_byte(struct out *o, uint8_t b)
{
	uint8_t *p = emit(o, 1);

	if (p)
		*p = b;
}

static void aml_raw(struct out *o, const void *d, size_t len)
{
	uint8_t *p = emit(o, len);

	if (p)
		memcpy(p, d, len);
}

static void aml_int(struct out *o, uint64_t v)
{
	if (v <= 1) {
		aml_byte(o, v); /* ZeroOp, OneOp */
		return;
	}
	int bytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffff ? 4 : 8;
	uint8_t *p;

	aml_byte(o, bytes == 1 ? 0x0a : bytes == 2 ? 0x0b : bytes == 4 ? 0x0c : 0x0e);
	if ((p = emit(o, bytes)))
		le(p, v, bytes);
}

/* PkgLength counts itself, so it is written after the contents, which then move up. */
static void aml_pkg_end(struct out *o, size_t start)
{
	size_t len = o->n - start, k = len + 1 < 0x40 ? 1 : len + 2 < 0x1000 ? 2 : 3;
	size_t v = len + k;
	uint8_t *p;

	if (!emit(o, k))
		return;
	p = o->buf + start;
	memmove(p + k, p, len);
	if (k == 1) {
		p[0] = v;
		return;
	}
	p[0] = (k - 1) << 6 | (v & 0xf);
	p[1] = v >> 4;
	if (k == 3)
		p[2] = v >> 12;
}

static void aml_name(struct out *o, const char *seg)
{
	aml_byte(o, 0x08); /* NameOp */
	aml_raw(o, seg, 4);
}

static uint32_t eisa_id(const char *id)
{
	uint32_t hex = 0;
	uint16_t vendor = (id[0] - '@') << 10 | (id[1] - '@') << 5 | (id[2] - '@');

	for (int i = 3; i < 7; i++)
		hex = hex << 4 | (id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
	/* Stored big-endian: vendor bytes, then product bytes. */
	return (vendor >> 8) | (vendor & 0xff) << 8 | (hex >> 8 & 0xff) << 16 | (hex & 0xff) << 24;
}

static void aml_name_eisa(struct out *o, const char *seg, const char *id)
{
	aml_name(o, seg);
	aml_byte(o, 0x0c);
	uint8_t *p = emit(o, 4);
	if (p)
		le(p, eisa_id(id), 4);
}

static void aml_name_int(struct out *o, const char *seg, uint64_t v)
{
	aml_name(o, seg);
	aml_int(o, v);
}

/* Name(seg, Buffer() { resource descriptors..., end tag }) from raw descriptor bytes. */
static void aml_name_crs(struct out *o, const uint8_t *res, size_t len)
{
	size_t start;

	aml_name(o, "_CRS");
	aml_byte(o, 0x11); /* BufferOp */
	start = o->n;
	aml_int(o, len + 2);
	aml_raw(o, res, len);
	aml_byte(o, 0x79); /* end tag */
	aml_byte(o, 0);
	aml_pkg_end(o, start);
}

static size_t res_word(uint8_t *p, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	p[0] = 0x88;
	le(p + 1, 13, 2);
	p[3] = type; /* 1: I/O, 2: bus numbers */
	p[4] = 0x0c; /* producer, min and max fixed */
	p[5] = tflags;
	le(p + 6, 0, 2);
	le(p + 8, min, 2);
	le(p + 10, max, 2);
	le(p + 12, 0, 2);
	le(p + 14, max - min + 1, 2);
	return 16;
}

static size_t res_io(uint8_t *p, uint16_t port, uint8_t len)
{
	p[0] = 0x47;
	p[1] = 1; /* 16-bit decode */
	le(p + 2, port, 2);
	le(p + 4, port, 2);
	p[6] = 1;
	p[7] = len;
	return 8;
}

static size_t res_dword_mem(uint8_t *p, uint32_t min, uint32_t max)
{
	p[0] = 0x87;
	le(p + 1, 23, 2);
	p[3] = 0;    /* memory */
	p[4] = 0x0c; /* producer, min and max fixed */
	p[5] = 0x01; /* read-write, non-cacheable */
	le(p + 6, 0, 4);
	le(p + 10, min, 4);
	le(p + 14, max, 4);
	le(p + 18, 0, 4);
	le(p + 22, max - min + 1, 4);
	return 26;
}

static void dsdt_pci_root(struct out *o)
{
	uint8_t res[128];
	size_t n = 0, start;

	aml_byte(o, 0x5b);
	aml_byte(o, 0x82); /* DeviceOp */
	start = o->n;
	aml_raw(o, "PCI0", 4);
	aml_name_eisa(o, "_HID", "PNP0A08");
	aml_name_eisa(o, "_CID", "PNP0A03");
	aml_name_int(o, "_SEG", 0);
	aml_name_int(o, "_BBN", 0);
	aml_name_int(o, "_UID", 0);
	n += res_word(res + n, 2, 0, 0, 0);
	n += res_io(res + n, PCI_CONFIG_IO, 8);
	n += res_word(res + n, 1, 0x03, 0x0000, 0x0cf7);
	n += res_word(res + n, 1, 0x03, 0x0d00, 0xffff);
	n += res_dword_mem(res + n, PCI_MMIO_BASE, PCI_MMIO_END);
	aml_name_crs(o, res, n);
	aml_pkg_end(o, start);
}

static void dsdt_pvpanic(struct out *o)
{
	uint8_t res[8];
	size_t start;

	aml_byte(o, 0x5b);
	aml_byte(o, 0x82);
	start = o->n;
	aml_raw(o, "PEVT", 4);
	aml_name(o, "_HID");
	aml_byte(o, 0x0d); /* String */
	aml_raw(o, "QEMU0001", 9);
	aml_name_crs(o, res, res_io(res, PVPANIC_PORT, 1));
	aml_pkg_end(o, start);
}

static size_t build_dsdt(struct out *o)
{
	size_t off = table_begin(o, "DSDT", 2), start;

	/* Name(\_S5, Package(4) {5, 5, 0, 0}): SLP_TYP for PM1a and PM1b. */
	aml_name(o, "_S5_");
	aml_byte(o, 0x12);
	start = o->n;
	aml_byte(o, 4);
	aml_int(o, PM_S5_SLP_TYP);
	aml_int(o, PM_S5_SLP_TYP);
	aml_int(o, 0);
	aml_int(o, 0);
	aml_pkg_end(o, start);

	aml_byte(o, 0x10); /* Scope(\_SB) */
	start = o->n;
	aml_raw(o, "\\_SB_", 5);
	dsdt_pci_root(o);
	dsdt_pvpanic(o);
	aml_pkg_end(o, start);
	table_end(o, off);
	return off;
}

static size_t build_facs(struct out *o)
{
	size_t off;
	uint8_t *p;

	align(o, 64);
	off = o->n;
	if ((p = emit(o, 64))) {
		memcpy(p, "FACS", 4);
		le(p + 4, 64, 4);
		p[32] = 2; /* version */
	}
	return off;
}

static size_t build_fadt(struct out *o, uint64_t facs, uint64_t dsdt)
{
	size_t off = table_begin(o, "FACP", 6);
	uint8_t *f = emit(o, 276 - 36);

	if (!f)
		return off;
	f -= 36; /* offsets below are from the table start */
	le(f + 36, facs, 4);
	le(f + 40, dsdt, 4);
	le(f + 46, PM_SCI_IRQ, 2);
	le(f + 56, PM1A_EVT_PORT, 4);
	le(f + 64, PM1A_CNT_PORT, 4);
	f[88] = PM1A_EVT_LEN;
	f[89] = PM1A_CNT_LEN;
	le(f + 96, 101, 2);  /* no C2 */
	le(f + 98, 1001, 2); /* no C3 */
	le(f + 109, BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_RTC, 2);
	le(f + 112, FADT_FLAGS, 4);
	f[131] = 3;	      /* FADT minor version: ACPI 6.3 */
	le(f + 140, dsdt, 8); /* X_DSDT */
	table_end(o, off);
	return off;
}

static size_t build_madt(struct out *o, unsigned ncpus)
{
	size_t off = table_begin(o, "APIC", 4);
	uint8_t *p = emit(o, 8);

	if (p) {
		le(p, LAPIC_ADDR, 4);
		le(p + 4, 1, 4); /* PCAT_COMPAT: KVM's irqchip includes the 8259s */
	}
	for (unsigned i = 0; i < ncpus; i++) {
		if (!(p = emit(o, 8)))
			break;
		p[0] = 0; /* processor local APIC */
		p[1] = 8;
		p[2] = i;
		p[3] = i;
		le(p + 4, 1, 4); /* enabled */
	}
	if ((p = emit(o, 12))) {
		p[0] = 1; /* I/O APIC, id 0, GSI 0.. */
		p[1] = 12;
		le(p + 4, IOAPIC_ADDR, 4);
	}
	/* KVM routes the PIT (IRQ 0) to IOAPIC pin 2, like a PC; the SCI is level-triggered. */
	if ((p = emit(o, 10))) {
		p[0] = 2;
		p[1] = 10;
		le(p + 4, 2, 4);
	}
	if ((p = emit(o, 10))) {
		p[0] = 2;
		p[1] = 10;
		p[3] = PM_SCI_IRQ;
		le(p + 4, PM_SCI_IRQ, 4);
		le(p + 8, 0x000d, 2); /* active high, level */
	}
	if ((p = emit(o, 6))) {
		p[0] = 4; /* local APIC NMI on LINT1 of every CPU */
		p[1] = 6;
		p[2] = 0xff;
		p[5] = 1;
	}
	table_end(o, off);
	return off;
}

static size_t build_mcfg(struct out *o)
{
	size_t off = table_begin(o, "MCFG", 1);
	uint8_t *p;

	emit(o, 8);
	if ((p = emit(o, 16))) {
		le(p, PCI_ECAM_BASE, 8);
		p[10] = 0;
		p[11] = (PCI_ECAM_SIZE >> 20) - 1; /* last bus */
	}
	table_end(o, off);
	return off;
}

static size_t build_xsdt(struct out *o, const uint64_t *tables, unsigned n)
{
	size_t off = table_begin(o, "XSDT", 1);

	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = emit(o, 8);
		if (p)
			le(p, tables[i], 8);
	}
	table_end(o, off);
	return off;
}

size_t acpi_build(uint8_t *buf, size_t cap, uint64_t base, unsigned ncpus)
{
	struct out o = {buf, cap, 0, base, 0};
	uint8_t *rsdp = emit(&o, 36);
	uint64_t dsdt, facs, t[3];
	size_t xsdt;

	dsdt = base + build_dsdt(&o);
	facs = base + build_facs(&o);
	t[0] = base + build_fadt(&o, facs, dsdt);
	t[1] = base + build_madt(&o, ncpus);
	t[2] = base + build_mcfg(&o);
	xsdt = build_xsdt(&o, t, 3);
	if (o.overflow || !rsdp)
		return 0;
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "LIGERO", 6);
	rsdp[15] = 2; /* ACPI 2.0+: use the XSDT */
	le(rsdp + 20, 36, 4);
	le(rsdp + 24, base + xsdt, 8);
	rsdp[8] = -acpi_checksum(rsdp, 20);
	rsdp[32] = -acpi_checksum(rsdp, 36);
	return o.n;
}

static uint64_t rd(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[bytes];
	return v;
}

static int dump_one(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[4096];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_sys(errno, "%s", path);
	if (write(fd, p, len) != (ssize_t)len)
		ret = err_sys(errno ? errno : EIO, "%s: write error", path);
	if (close(fd) < 0 && ret == 0)
		ret = err_sys(errno, "%s", path);
	return ret;
}

/* The table at guest address gpa with its length field, or NULL when it lies outside. */
static const uint8_t *dump_find(const uint8_t *buf, size_t n, uint64_t gpa, size_t *len)
{
	uint64_t off = gpa - BOOT_BIOS_START;

	if (gpa < BOOT_BIOS_START || off + 8 > n || rd(buf + off + 4, 4) > n - off)
		return NULL;
	*len = rd(buf + off + 4, 4);
	return buf + off;
}

int acpi_dump(const char *dir, unsigned ncpus)
{
	size_t cap = BOOT_KERNEL_ADDR - BOOT_BIOS_START, n, len, xlen;
	uint8_t *buf = malloc(cap);
	const uint8_t *xsdt, *t, *fadt = NULL;
	int ret;

	if (!buf)
		return -ENOMEM;
	n = acpi_build(buf, cap, BOOT_BIOS_START, ncpus);
	if (n == 0 || !(xsdt = dump_find(buf, n, rd(buf + 24, 8), &xlen))) {
		free(buf);
		return err_set(ENOSPC, "ACPI tables do not fit below 1 MiB");
	}
	ret = dump_one(dir, "RSDP", buf, 36);
	if (ret == 0)
		ret = dump_one(dir, "XSDT", xsdt, xlen);
	for (size_t i = 36; ret == 0 && i + 8 <= xlen; i += 8) {
		char sig[5] = {0};
		if (!(t = dump_find(buf, n, rd(xsdt + i, 8), &len)))
			break;
		memcpy(sig, t, 4);
		if (!memcmp(sig, "FACP", 4))
			fadt = t;
		ret = dump_one(dir, sig, t, len);
	}
	/* the FADT points at the DSDT and the FACS */
	if (ret == 0 && fadt && (t = dump_find(buf, n, rd(fadt + 140, 8), &len)))
		ret = dump_one(dir, "DSDT", t, len);
	if (ret == 0 && fadt && (t = dump_find(buf, n, rd(fadt + 36, 4), &len)))
		ret = dump_one(dir, "FACS", t, len);
	free(buf);
	return ret;
}
