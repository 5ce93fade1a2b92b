/* Power management ports. The guest powers off by writing SLP_TYP=5|SLP_EN to PM1a control
 * (values from the DSDT's \_S5), reboots by pulsing the 8042's reset line (command 0xFE, what
 * `reboot=k` selects), and reports a panic through pvpanic (port 0x505, ACPI id QEMU0001). */
#include "vmm/pm.h"
#include "vmm/vm.h"

#define PM1_SCI_EN	 0x0001
#define PM1_SLP_EN	 0x2000
#define PVPANIC_PANICKED 0x01
#define I8042_RESET	 0xfe

int pm1_cnt_is_poweroff(uint16_t val)
{
	return (val & PM1_SLP_EN) && ((val >> 10) & 7) == PM_S5_SLP_TYP;
}

/* PM1 status reads 0 (no event is ever pending); PM1 enable keeps what the OS writes, since
 * ACPICA reads back the global-lock enable bit and disables the lock if it does not stick. */
static uint16_t pm1_enable;

static uint64_t pm1_evt_read(void *opaque, uint64_t off, unsigned size)
{
	uint32_t v = (uint32_t)__atomic_load_n(&pm1_enable, __ATOMIC_RELAXED) << 16;

	return v >> (off * 8);
}

static void pm1_evt_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	if (off == 2 && size == 2)
		__atomic_store_n(&pm1_enable, (uint16_t)val, __ATOMIC_RELAXED);
}

/* SCI_EN reads as set: the machine is always in ACPI mode (the FADT has no SMI_CMD). */
static uint64_t pm1_cnt_read(void *opaque, uint64_t off, unsigned size)
{
	return off == 0 ? PM1_SCI_EN : 0;
}

static void pm1_cnt_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{

	if (pm1_cnt_is_poweroff(off ? val << 8 : val))
		vm_request_stop(opaque, VM_EXIT_POWEROFF);
}

static uint64_t pvpanic_read(void *opaque, uint64_t off, unsigned size)
{
	return PVPANIC_PANICKED; /* the events we understand */
}

static void pvpanic_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	if (val & PVPANIC_PANICKED)
		vm_request_stop(opaque, VM_EXIT_PANIC);
}

/* Status 0: output buffer empty, input buffer empty, so kb_wait() returns at once. */
static uint64_t i8042_read(void *opaque, uint64_t off, unsigned size)
{
	return 0;
}

static void i8042_cmd_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	if ((val & 0xff) == I8042_RESET)
		vm_request_stop(opaque, VM_EXIT_RESET);
}

static const struct bus_ops pm1_evt_ops = {pm1_evt_read, pm1_evt_write};
static const struct bus_ops pm1_cnt_ops = {pm1_cnt_read, pm1_cnt_write};
static const struct bus_ops pvpanic_ops = {pvpanic_read, pvpanic_write};
static const struct bus_ops i8042_data_ops = {i8042_read, NULL};
static const struct bus_ops i8042_cmd_ops = {i8042_read, i8042_cmd_write};

int pm_init(struct bus *io, struct vm *vm)
{
	int ret;

	if ((ret = bus_add(io, PM1A_EVT_PORT, PM1A_EVT_LEN, &pm1_evt_ops, vm)) < 0 ||
	    (ret = bus_add(io, PM1A_CNT_PORT, PM1A_CNT_LEN, &pm1_cnt_ops, vm)) < 0 ||
	    (ret = bus_add(io, PVPANIC_PORT, 1, &pvpanic_ops, vm)) < 0)
		return ret;
	/* 0x60 and 0x64 only: 0x61 is the PIT's speaker port, which KVM handles. */
	if ((ret = bus_add(io, I8042_DATA_PORT, 1, &i8042_data_ops, vm)) < 0)
		return ret;
	return bus_add(io, I8042_CMD_PORT, 1, &i8042_cmd_ops, vm);
}
