/* ACPI tables: checksums, pointers between tables, CPUs in the MADT, \_S5 in the DSDT, the
 * fixed-feature power button and its SCI; the DSDT parsed as AML (the subset ligero emits). */
#include "vmm/acpi.h"
#include "vmm/pci.h"
#include "vmm/pm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define BASE 0xe0000u
#define CAP  0x20000u

static uint8_t buf[CAP];

static uint64_t rd(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The table at guest address gpa, checked: in bounds, signature, checksum. */
static const uint8_t *table(uint64_t gpa, const char *sig)
{
	const uint8_t *t;
	uint32_t len;

	assert_true(gpa >= BASE && gpa + 36 <= BASE + CAP);
	t = buf + (gpa - BASE);
	assert_memory_equal(t, sig, 4);
	len = rd(t + 4, 4);
	assert_true(len >= 36 && gpa + len <= BASE + CAP);
	assert_int_equal(acpi_checksum(t, len), 0);
	return t;
}

static const uint8_t *find(const uint8_t *xsdt, const char *sig)
{
	uint32_t n = (rd(xsdt + 4, 4) - 36) / 8;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = rd(xsdt + 36 + 8 * i, 8);
		if (!memcmp(buf + (a - BASE), sig, 4))
			return table(a, sig);
	}
	fail_msg("no %s in the XSDT", sig);
	return NULL;
}

static const uint8_t *build(unsigned cpus)
{
	memset(buf, 0xaa, sizeof(buf));
	assert_true(acpi_build(buf, CAP, BASE, cpus) > 0);
	assert_memory_equal(buf, "RSD PTR ", 8);
	assert_int_equal(acpi_checksum(buf, 20), 0);
	assert_int_equal(acpi_checksum(buf, 36), 0);
	assert_int_equal(buf[15], 2);
	return table(rd(buf + 24, 8), "XSDT");
}

static void test_madt_lists_every_cpu(void **state)
{
	for (unsigned cpus = 1; cpus <= 254; cpus += 31) {
		const uint8_t *madt = find(build(cpus), "APIC"), *p = madt + 44;
		const uint8_t *end = madt + rd(madt + 4, 4);
		unsigned lapics = 0, ioapics = 0;

		while (p < end) {
			assert_true(p[1] >= 2 && p + p[1] <= end);
			if (p[0] == 0) {
				assert_int_equal(p[3], lapics); /* APIC ID = vCPU index */
				assert_int_equal(rd(p + 4, 4) & 1, 1);
				lapics++;
			}
			if (p[0] == 1) {
				assert_int_equal(rd(p + 4, 4), 0xfec00000u);
				ioapics++;
			}
			p += p[1];
		}
		assert_int_equal(lapics, cpus);
		assert_int_equal(ioapics, 1);
	}
}

static void test_fadt_power_off_and_no_rtc(void **state)
{
	const uint8_t *fadt = find(build(2), "FACP"), *dsdt;
	const uint8_t *s5;

	assert_int_equal(rd(fadt + 4, 4), 276);
	assert_int_equal(rd(fadt + 64, 4), PM1A_CNT_PORT);
	assert_int_equal(fadt[89], 2);
	assert_int_equal(rd(fadt + 56, 4), PM1A_EVT_PORT);
	assert_int_equal(rd(fadt + 46, 2), PM_SCI_IRQ);
	assert_true(rd(fadt + 109, 2) & 0x20);	/* CMOS RTC not present */
	assert_false(rd(fadt + 109, 2) & 0x02); /* no 8042 to probe */
	assert_int_equal(rd(fadt + 40, 4), rd(fadt + 140, 8));
	/* the FACS has no checksum */
	assert_memory_equal(buf + (rd(fadt + 36, 4) - BASE), "FACS", 4);
	assert_int_equal(rd(fadt + 36, 4) % 64, 0);
	dsdt = table(rd(fadt + 140, 8), "DSDT");
	/* Name(_S5_, Package(4) {5, ...}): NameOp, name, PackageOp, len, count, BytePrefix 5 */
	s5 = memmem(dsdt, rd(dsdt + 4, 4), "_S5_", 4);
	assert_non_null(s5);
	assert_int_equal(s5[-1], 0x08);
	assert_int_equal(s5[4], 0x12);
	assert_int_equal(s5[6], 4);
	assert_int_equal(s5[7], 0x0a);
	assert_int_equal(s5[8], PM_S5_SLP_TYP);
	assert_true(pm1_cnt_is_poweroff(PM_S5_SLP_TYP << 10 | 0x2000));
	assert_false(pm1_cnt_is_poweroff(PM_S5_SLP_TYP << 10));
	/* the PCI root bridge (PNP0A08 as an EISA id) and pvpanic */
	assert_non_null(memmem(dsdt, rd(dsdt + 4, 4), "PCI0", 4));
	assert_non_null(memmem(dsdt, rd(dsdt + 4, 4), "\x41\xd0\x0a\x08", 4));
	assert_non_null(memmem(dsdt, rd(dsdt + 4, 4), "QEMU0001", 8));
}

static void test_fadt_fixed_power_button(void **state)
{
	const uint8_t *xsdt = build(2), *fadt = find(xsdt, "FACP"), *madt = find(xsdt, "APIC");
	const uint8_t *p = madt + 44, *end = madt + rd(madt + 4, 4);
	uint32_t flags = rd(fadt + 112, 4);
	int sci_overrides = 0;

	/* PWR_BUTTON clear: the power button is the fixed-feature one; SLP_BUTTON set: no sleep
	 * button at all */
	assert_int_equal(flags & 0x10, 0);
	assert_int_equal(flags & 0x20, 0x20);
	/* its registers: PM1a status and enable, two bytes each, and the SCI they raise */
	assert_int_equal(rd(fadt + 56, 4), PM1A_EVT_PORT);
	assert_int_equal(fadt[88], 4);
	assert_int_equal(rd(fadt + 46, 2), PM_SCI_IRQ);
	assert_int_equal(rd(fadt + 60, 4), 0); /* no PM1b block to look at */
	/* no SMI_CMD: the OS finds the machine in ACPI mode already (SCI_EN reads set) */
	assert_int_equal(rd(fadt + 48, 4), 0);
	/* the MADT makes the SCI level-triggered and active high on GSI 9, as pm.c drives it */
	for (; p < end; p += p[1]) {
		if (p[0] != 2 || p[3] != PM_SCI_IRQ)
			continue;
		sci_overrides++;
		assert_int_equal(rd(p + 4, 4), PM_SCI_IRQ);
		assert_int_equal(rd(p + 8, 2) & 3, 1);	    /* active high */
		assert_int_equal(rd(p + 8, 2) >> 2 & 3, 3); /* level */
	}
	assert_int_equal(sci_overrides, 1);
}

/* --- a small AML reader: the terms ligero emits, every length checked. --- */

struct aml {
	const uint8_t *p, *end;
	char scope[64];
	char devices[8][64];
	char hids[8][16];
	unsigned ndev;
	bool s5;
};

static size_t pkg_length(struct aml *a)
{
	const uint8_t *start = a->p;
	unsigned extra;
	size_t len;

	assert_true(a->p < a->end);
	extra = a->p[0] >> 6;
	len = extra ? a->p[0] & 0xf : a->p[0] & 0x3f;
	assert_true(a->p + 1 + extra <= a->end);
	for (unsigned i = 0; i < extra; i++)
		len |= (size_t)a->p[1 + i] << (4 + 8 * i);
	a->p += 1 + extra;
	/* the length counts itself: where the package ends */
	assert_true(len >= (size_t)(a->p - start) && start + len <= a->end);
	return len - (a->p - start);
}

static void name_seg(struct aml *a, char out[5])
{
	assert_true(a->p + 4 <= a->end);
	memcpy(out, a->p, 4);
	out[4] = 0;
	for (int i = 0; i < 4; i++)
		assert_true((out[i] >= 'A' && out[i] <= 'Z') || out[i] == '_' ||
			    (i && out[i] >= '0' && out[i] <= '9'));
	a->p += 4;
}

static void name_string(struct aml *a, char *out, size_t cap)
{
	char seg[5];

	out[0] = 0;
	if (a->p < a->end && *a->p == '\\') {
		snprintf(out, cap, "\\");
		a->p++;
	}
	name_seg(a, seg);
	strncat(out, seg, cap - strlen(out) - 1);
}

/* A data object; for a string or an EISA id, its text in hid (if not NULL). */
static void data_object(struct aml *a, char *hid)
{
	uint8_t op;

	assert_true(a->p < a->end);
	op = *a->p++;
	switch (op) {
	case 0x00:
	case 0x01:
		return;
	case 0x0a:
	case 0x0b:
	case 0x0c:
	case 0x0e: {
		int n = op == 0x0a ? 1 : op == 0x0b ? 2 : op == 0x0c ? 4 : 8;
		assert_true(a->p + n <= a->end);
		if (hid && n == 4) {
			uint32_t v = rd(a->p, 4);
			uint16_t vendor = (v & 0xff) << 8 | (v >> 8 & 0xff);
			snprintf(hid, 16, "%c%c%c%02X%02X", '@' + (vendor >> 10 & 31),
				 '@' + (vendor >> 5 & 31), '@' + (vendor & 31), v >> 16 & 0xff,
				 v >> 24);
		}
		a->p += n;
		return;
	}
	case 0x0d: {
		const uint8_t *nul = memchr(a->p, 0, a->end - a->p);
		assert_non_null(nul);
		if (hid)
			snprintf(hid, 16, "%s", (const char *)a->p);
		a->p = nul + 1;
		return;
	}
	case 0x11: { /* Buffer: PkgLength, BufferSize, bytes */
		size_t len = pkg_length(a);
		const uint8_t *end = a->p + len;
		struct aml size = {.p = a->p, .end = end};
		data_object(&size, NULL);
		a->p = end;
		return;
	}
	case 0x12: { /* Package: PkgLength, NumElements, elements */
		size_t len = pkg_length(a);
		struct aml in = {.p = a->p, .end = a->p + len};
		unsigned n;
		assert_true(len >= 1);
		n = *in.p++;
		for (unsigned i = 0; i < n; i++)
			data_object(&in, NULL);
		assert_ptr_equal(in.p, in.end);
		a->p = in.end;
		return;
	}
	}
	fail_msg("unexpected AML data opcode %#x at offset %td", op, a->p - 1 - buf);
}

static void term_list(struct aml *a);

static void term(struct aml *a)
{
	char name[64], hid[16] = "";
	uint8_t op = *a->p++;

	if (op == 0x08) { /* Name(seg, data) */
		name_string(a, name, sizeof(name));
		data_object(a, !strcmp(name, "_HID") ? hid : NULL);
		if (hid[0] && a->ndev)
			snprintf(a->hids[a->ndev - 1], 16, "%s", hid);
		if (!strcmp(name, "_S5_") && !a->scope[0])
			a->s5 = true;
		return;
	}
	if (op == 0x10 || (op == 0x5b && a->p < a->end && *a->p == 0x82)) {
		bool device = op == 0x5b;
		char saved[64];
		if (device)
			a->p++;
		size_t len = pkg_length(a);
		struct aml in = *a;
		in.end = a->p + len;
		name_string(&in, name, sizeof(name));
		memcpy(saved, in.scope, sizeof(saved));
		assert_true(strlen(saved) + strlen(name) + 2 <= sizeof(in.scope));
		if (name[0] == '\\')
			in.scope[0] = 0; /* an absolute path */
		else if (saved[0])
			strcat(in.scope, ".");
		strcat(in.scope, name);
		if (device) {
			assert_true(in.ndev < 8);
			snprintf(in.devices[in.ndev++], 64, "%s", in.scope);
		}
		term_list(&in);
		memcpy(in.scope, saved, sizeof(saved));
		in.end = a->end;
		*a = in;
		return;
	}
	fail_msg("unexpected AML opcode %#x at offset %td", op, a->p - 1 - buf);
}

static void term_list(struct aml *a)
{
	while (a->p < a->end)
		term(a);
	assert_ptr_equal(a->p, a->end);
}

static void test_dsdt_parses(void **state)
{
	const uint8_t *dsdt = table(rd(find(build(4), "FACP") + 140, 8), "DSDT");
	struct aml a = {.p = dsdt + 36, .end = dsdt + rd(dsdt + 4, 4)};

	term_list(&a);
	assert_true(a.s5);
	assert_int_equal(a.ndev, 2);
	assert_string_equal(a.devices[0], "\\_SB_.PCI0");
	assert_string_equal(a.hids[0], "PNP0A08");
	assert_string_equal(a.devices[1], "\\_SB_.PEVT");
	assert_string_equal(a.hids[1], "QEMU0001");
	/* a PNP0C0C device would be a second, control-method power button */
	for (unsigned i = 0; i < a.ndev; i++)
		assert_string_not_equal(a.hids[i], "PNP0C0C");
}

static void test_mcfg_covers_ecam(void **state)
{
	const uint8_t *mcfg = find(build(1), "MCFG");

	assert_int_equal(rd(mcfg + 4, 4), 60);
	assert_int_equal(rd(mcfg + 44, 8), PCI_ECAM_BASE);
	assert_int_equal(mcfg[54], 0);
	assert_int_equal(((uint64_t)mcfg[55] + 1) << 20, PCI_ECAM_SIZE);
}

static void test_too_small_buffer(void **state)
{
	assert_int_equal(acpi_build(buf, 100, BASE, 4), 0);
	assert_int_equal(acpi_build(buf, 0, BASE, 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_madt_lists_every_cpu),
	    cmocka_unit_test(test_fadt_power_off_and_no_rtc),
	    cmocka_unit_test(test_fadt_fixed_power_button),
	    cmocka_unit_test(test_dsdt_parses),
	    cmocka_unit_test(test_mcfg_covers_ecam),
	    cmocka_unit_test(test_too_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
