/* How the guest tells the VMM it is done: ACPI power-off (PM1a control), the i8042 reset line,
 * pvpanic, and a watch on the console for a panic message from kernels without pvpanic. */
#ifndef LIGERO_VMM_PM_H
#define LIGERO_VMM_PM_H

#include "vmm/bus.h"

#include <stdint.h>

#define PM_SCI_IRQ	9
#define PM1A_EVT_PORT	0x600 /* 4 bytes: status, enable */
#define PM1A_EVT_LEN	4
#define PM1A_CNT_PORT	0x604 /* 2 bytes: SCI_EN, SLP_TYP, SLP_EN */
#define PM1A_CNT_LEN	2
#define PM_S5_SLP_TYP	5 /* the value the DSDT's \_S5 hands the OS */
#define PVPANIC_PORT	0x505
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT	0x64

struct vm;

/* Register the PM1a blocks, the pvpanic port and the i8042 on the I/O bus. */
int pm_init(struct bus *io, struct vm *vm);
/* Decode a PM1a control write: 1 if it requests S5 (power off). */
int pm1_cnt_is_poweroff(uint16_t val);

#endif
