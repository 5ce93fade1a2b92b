/* Power management ports. The guest powers off by writing SLP_TYP=5|SLP_EN to PM1a control
 * (values from the DSDT's \_S5), reboots by pulsing the 8042's reset line (command 0xFE, what
 * `reboot=k` selects), and reports a panic through pvpanic (port 0x505, ACPI id QEMU0001).
 * The host asks it to power off with the fixed-feature power button: PWRBTN_STS in PM1a status,
 * which raises the SCI while the OS has set PWRBTN_EN, and which the OS clears by writing 1. */
#include "vmm/pm.h"
#include "vmm/vm.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#define PM1_SCI_EN	 0x0001
#define PM1_SLP_EN	 0x2000
#define PVPANIC_PANICKED 0x01
#define I8042_RESET	 0xfe
/* The status bits this machine can set; the others read 0 (and GBL_EN, TMR_EN... are kept in
 * the enable register all the same: ACPICA reads back the global-lock enable bit and disables
 * the lock if it does not stick). */
#define PM1_EVENTS PM1_PWRBTN

int pm1_cnt_is_poweroff(uint16_t val)
{
	return (val & PM1_SLP_EN) && ((val >> 10) & 7) == PM_S5_SLP_TYP;
}

/* pm->lock held: drive the SCI to what status and enable say. Only changes reach KVM, so an
 * unchanged level costs nothing and the line never sees a spurious edge. */
static void pm_update_sci(struct pm *pm)
{
	bool level = pm->sts & pm->en & PM1_EVENTS;
	struct kvm_irq_level irq = {.irq = PM_SCI_IRQ, .level = level};

	if (level == pm->sci)
		return;
	pm->sci = level;
	pm->sci_raised += level;
	if (pm->vm_fd >= 0)
		(void)ioctl(pm->vm_fd, KVM_IRQ_LINE, &irq);
}

void pm_press_power_button(struct pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts |= PM1_PWRBTN;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

bool pm_sci_level(struct pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	bool level = pm->sci;
	pthread_mutex_unlock(&pm->lock);
	return level;
}

/* The event block as one 32-bit register: status in bytes 0-1, enable in bytes 2-3, so that any
 * access size and offset (ACPICA uses 16-bit accesses to each half) means the same bits. */
static uint64_t pm1_evt_read(void *opaque, uint64_t off, unsigned size)
{
	struct pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	uint32_t v = (uint32_t)pm->en << 16 | pm->sts;
	pthread_mutex_unlock(&pm->lock);
	return v >> (off * 8);
}

static void pm1_evt_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct pm *pm = opaque;
	uint32_t mask = (uint32_t)(((1ull << (size * 8)) - 1) << (off * 8));
	uint32_t v = (uint32_t)(val << (off * 8)) & mask;

	pthread_mutex_lock(&pm->lock);
	pm->sts &= ~(uint16_t)v; /* status bits: write 1 to clear, 0 leaves them */
	pm->en = (pm->en & ~(uint16_t)(mask >> 16)) | (uint16_t)(v >> 16);
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* SCI_EN reads as set: the machine is always in ACPI mode (the FADT has no SMI_CMD). */
static uint64_t pm1_cnt_read(void *opaque, uint64_t off, unsigned size)
{
	return off == 0 ? PM1_SCI_EN : 0;
}

static void pm1_cnt_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct pm *pm = opaque;

	if (pm1_cnt_is_poweroff(off ? val << 8 : val))
		vm_request_stop(pm->vm, VM_EXIT_POWEROFF);
}

static uint64_t pvpanic_read(void *opaque, uint64_t off, unsigned size)
{
	return PVPANIC_PANICKED; /* the events we understand */
}

static void pvpanic_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct pm *pm = opaque;

	if (val & PVPANIC_PANICKED)
		vm_request_stop(pm->vm, VM_EXIT_PANIC);
}

/* Status 0: output buffer empty, input buffer empty, so kb_wait() returns at once. */
static uint64_t i8042_read(void *opaque, uint64_t off, unsigned size)
{
	return 0;
}

static void i8042_cmd_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct pm *pm = opaque;

	if ((val & 0xff) == I8042_RESET)
		vm_request_stop(pm->vm, VM_EXIT_RESET);
}

static const struct bus_ops pm1_evt_ops = {pm1_evt_read, pm1_evt_write};
static const struct bus_ops pm1_cnt_ops = {pm1_cnt_read, pm1_cnt_write};
static const struct bus_ops pvpanic_ops = {pvpanic_read, pvpanic_write};
static const struct bus_ops i8042_data_ops = {i8042_read, NULL};
static const struct bus_ops i8042_cmd_ops = {i8042_read, i8042_cmd_write};

int pm_init(struct pm *pm, struct bus *io, struct vm *vm, int vm_fd)
{
	int ret;

	*pm = (struct pm){.vm = vm, .vm_fd = vm_fd};
	pthread_mutex_init(&pm->lock, NULL);
	if ((ret = bus_add(io, PM1A_EVT_PORT, PM1A_EVT_LEN, &pm1_evt_ops, pm)) < 0 ||
	    (ret = bus_add(io, PM1A_CNT_PORT, PM1A_CNT_LEN, &pm1_cnt_ops, pm)) < 0 ||
	    (ret = bus_add(io, PVPANIC_PORT, 1, &pvpanic_ops, pm)) < 0)
		return ret;
	/* 0x60 and 0x64 only: 0x61 is the PIT's speaker port, which KVM handles. */
	if ((ret = bus_add(io, I8042_DATA_PORT, 1, &i8042_data_ops, pm)) < 0)
		return ret;
	return bus_add(io, I8042_CMD_PORT, 1, &i8042_cmd_ops, pm);
}

void pm_destroy(struct pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}
