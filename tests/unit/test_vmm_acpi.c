/* ACPI tables: checksums, pointers between tables, CPUs in the MADT, \_S5 in the DSDT. */
#include "vmm/acpi.h"
#include "vmm/pci.h"
#include "vmm/pm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
	    cmocka_unit_test(test_mcfg_covers_ecam),
	    cmocka_unit_test(test_too_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
