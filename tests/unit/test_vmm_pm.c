/* The PM1a event block as the guest's ACPI driver (ACPICA) uses it: the power button sets
 * PWRBTN_STS whether or not the OS enabled it, the SCI is high exactly while a status bit and
 * its enable bit are both set, status bits clear only by writing 1 to them, and the two halves
 * of the block are independent registers whatever the access size. No KVM: the line's level is
 * what the device records (vm_fd -1). */
#include "vmm/bus.h"
#include "vmm/pm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define STS PM1A_EVT_PORT
#define EN  (PM1A_EVT_PORT + 2)

struct fixture {
	struct bus io;
	struct pm pm;
};

static int setup(void **state)
{
	static struct fixture f;

	f = (struct fixture){0};
	assert_int_equal(pm_init(&f.pm, &f.io, NULL, -1), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pm_destroy(&f->pm);
	return 0;
}

static void test_reset_state(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bus_read(&f->io, STS, 2), 0);
	assert_int_equal(bus_read(&f->io, EN, 2), 0);
	assert_false(pm_sci_level(&f->pm));
	/* SCI_EN reads set: ACPI mode from the start, there is no SMI_CMD to switch */
	assert_int_equal(bus_read(&f->io, PM1A_CNT_PORT, 2) & 1, 1);
}

static void test_press_while_disabled_latches_without_sci(void **state)
{
	struct fixture *f = *state;

	pm_press_power_button(&f->pm);
	assert_int_equal(bus_read(&f->io, STS, 2), PM1_PWRBTN);
	assert_false(pm_sci_level(&f->pm));
	assert_int_equal(f->pm.sci_raised, 0);
	/* enabling with the status pending raises the SCI: it is a level, not an edge */
	bus_write(&f->io, EN, 2, PM1_PWRBTN);
	assert_true(pm_sci_level(&f->pm));
	assert_int_equal(f->pm.sci_raised, 1);
	/* disabling drops it; the status stays */
	bus_write(&f->io, EN, 2, 0);
	assert_false(pm_sci_level(&f->pm));
	assert_int_equal(bus_read(&f->io, STS, 2), PM1_PWRBTN);
}

static void test_press_enabled_raises_sci_until_cleared(void **state)
{
	struct fixture *f = *state;

	bus_write(&f->io, EN, 2, PM1_PWRBTN);
	assert_false(pm_sci_level(&f->pm));
	pm_press_power_button(&f->pm);
	assert_true(pm_sci_level(&f->pm));
	/* a second press while pending changes nothing: one SCI */
	pm_press_power_button(&f->pm);
	assert_int_equal(f->pm.sci_raised, 1);
	/* writing 0, or 1s to other bits, leaves the status and the line */
	bus_write(&f->io, STS, 2, 0);
	bus_write(&f->io, STS, 2, (uint16_t)~PM1_PWRBTN);
	assert_int_equal(bus_read(&f->io, STS, 2), PM1_PWRBTN);
	assert_true(pm_sci_level(&f->pm));
	/* writing 1 clears it and lowers the line; the enable bit stays */
	bus_write(&f->io, STS, 2, PM1_PWRBTN);
	assert_int_equal(bus_read(&f->io, STS, 2), 0);
	assert_false(pm_sci_level(&f->pm));
	assert_int_equal(bus_read(&f->io, EN, 2), PM1_PWRBTN);
	/* the next press is a new SCI */
	pm_press_power_button(&f->pm);
	assert_true(pm_sci_level(&f->pm));
	assert_int_equal(f->pm.sci_raised, 2);
}

static void test_access_sizes(void **state)
{
	struct fixture *f = *state;

	/* one 32-bit write: status half clears, enable half is stored */
	pm_press_power_button(&f->pm);
	bus_write(&f->io, STS, 4, (uint32_t)PM1_PWRBTN << 16 | PM1_PWRBTN);
	assert_int_equal(bus_read(&f->io, STS, 4), (uint32_t)PM1_PWRBTN << 16);
	/* byte accesses: PWRBTN is bit 0 of the status' high byte and of the enable's */
	pm_press_power_button(&f->pm);
	assert_true(pm_sci_level(&f->pm));
	assert_int_equal(bus_read(&f->io, STS + 1, 1), 1);
	assert_int_equal(bus_read(&f->io, EN + 1, 1), 1);
	bus_write(&f->io, STS, 1, 0xff); /* the low byte holds none of ours */
	assert_true(pm_sci_level(&f->pm));
	bus_write(&f->io, STS + 1, 1, 1);
	assert_false(pm_sci_level(&f->pm));
	/* a byte write to the enable's low byte keeps its high byte */
	bus_write(&f->io, EN, 1, 0x20); /* GBL_EN: kept, as ACPICA reads it back */
	assert_int_equal(bus_read(&f->io, EN, 2), 0x20 | PM1_PWRBTN);
	/* a 16-bit status write never touches the enable register */
	bus_write(&f->io, STS, 2, 0xffff);
	assert_int_equal(bus_read(&f->io, EN, 2), 0x20 | PM1_PWRBTN);
}

static void test_s5_decode(void **state)
{
	(void)state;
	assert_true(pm1_cnt_is_poweroff(PM_S5_SLP_TYP << 10 | 0x2000));
	assert_true(pm1_cnt_is_poweroff(PM_S5_SLP_TYP << 10 | 0x2000 | 1));
	assert_false(pm1_cnt_is_poweroff(PM_S5_SLP_TYP << 10)); /* SLP_EN not set yet */
	assert_false(pm1_cnt_is_poweroff(1 << 10 | 0x2000));	/* another sleep type */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_press_while_disabled_latches_without_sci, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_press_enabled_raises_sci_until_cleared, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_access_sizes, setup, teardown),
	    cmocka_unit_test(test_s5_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
