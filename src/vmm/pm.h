/* How the guest and the VMM tell each other the machine is done: ACPI power-off (PM1a control),
 * the ACPI fixed-feature power button (PM1a status and enable, and the SCI they drive), the
 * i8042 reset line, pvpanic, and a watch on the console for a panic message from kernels
 * without pvpanic. */
#ifndef LIGERO_VMM_PM_H
#define LIGERO_VMM_PM_H

#include "vmm/bus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PM_SCI_IRQ	9
#define PM1A_EVT_PORT	0x600 /* 4 bytes: status (2), enable (2) */
#define PM1A_EVT_LEN	4
#define PM1A_CNT_PORT	0x604 /* 2 bytes: SCI_EN, SLP_TYP, SLP_EN */
#define PM1A_CNT_LEN	2
#define PM_S5_SLP_TYP	5 /* the value the DSDT's \_S5 hands the OS */
#define PVPANIC_PORT	0x505
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT	0x64

/* PM1 status and enable bits (ACPI 6.3, 4.8.3.1): PWRBTN_STS and PWRBTN_EN. */
#define PM1_PWRBTN 0x0100

struct vm;

/* The PM1a event block. The SCI is level-triggered: it is high while a status bit and its
 * enable bit are both set, and KVM's irqchip sees every change of that level (KVM_IRQ_LINE). */
struct pm {
	struct vm *vm;	      /* asked to stop on S5, reset and panic */
	int vm_fd;	      /* -1: no KVM (unit tests); the level is then only recorded */
	pthread_mutex_t lock; /* the registers and the line: vCPUs and the event loop share them */
	uint16_t sts, en;
	bool sci;		  /* the level last put on the SCI */
	unsigned long sci_raised; /* times the SCI went high */
};

/* Register the PM1a blocks, the pvpanic port and the i8042 on the I/O bus. */
int pm_init(struct pm *pm, struct bus *io, struct vm *vm, int vm_fd);
void pm_destroy(struct pm *pm);
/* A press of the power button: PWRBTN_STS is set, and the SCI rises if PWRBTN_EN is set.
 * Takes a mutex: not for signal handlers (vm_press_power_button is). */
void pm_press_power_button(struct pm *pm);
/* The SCI's level now. */
bool pm_sci_level(struct pm *pm);
/* Decode a PM1a control write: 1 if it requests S5 (power off). */
int pm1_cnt_is_poweroff(uint16_t val);

#endif
