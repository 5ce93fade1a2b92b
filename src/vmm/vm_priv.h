/* The VM's state, shared by vm.c (building and running it), vm_pause.c (stopping and
 * resuming the vCPUs) and vm_qmp.c (its control socket). Nothing outside src/vmm/vm*.c and
 * vcpu.c includes this. */
#ifndef LIGERO_VMM_VM_PRIV_H
#define LIGERO_VMM_VM_PRIV_H

#include "vmm/vm.h"
#include "vmm/console.h"
#include "vmm/exitstat.h"
#include "vmm/guestprof.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/pci.h"
#include "vmm/pm.h"
#include "vmm/qmp_cmds.h"
#include "vmm/serial.h"
#include "vmm/vcpu.h"

#include <linux/kvm.h>
#include <pthread.h>

struct console_mux;
struct qmp_server;

struct vm {
	int kvm_fd, vm_fd, stop_fd;
	int button_fd; /* eventfd: vm_press_power_button() was called */
	size_t run_size;
	struct guest_mem mem;
	struct bus io, mmio;
	struct serial serial;
	struct pm pm;
	struct pci_host pci;
	struct vm_devices *devices;
	struct exitstat *stat;	/* LIGERO_STATS=1 only */
	struct guestprof *prof; /* LIGERO_PROFILE=FILE only */
	/* the kernel, initrd and ACPI tables are loaded on a thread of their own (vm_load_start) */
	const struct vm_config *load_cfg;
	pthread_t loader;
	bool loading;
	int load_ret;
	char load_msg[512];
	struct vcpu *vcpus;
	unsigned ncpus;
	int stopping; /* atomic */
	enum vm_exit why;
	char msg[512];

	/* the event loop and what it serves (vm_run's thread) */
	struct loop *loop;
	struct loop_watch stop_w, button_w, balloon_w;
	struct console_mux *mux;
	struct qmp_server *qmp;
	struct qmp_vm qvm;
	char *name;
	bool by_qmp;	     /* the stop came from QMP quit or system_reset */
	bool button_pressed; /* the power button was pressed (SIGTERM or QMP) */
	int balloon_fd;	     /* eventfd: the guest changed the balloon's size, or -1 */
	int balloon_timer;   /* timerfd: the end of BALLOON_CHANGE's 1 s window, or -1 */
	struct loop_watch balloon_timer_w;
	bool balloon_armed;	 /* a change waits for the window's end */
	uint64_t balloon_actual; /* the last BALLOON_CHANGE's value */
	uint64_t balloon_sent;	 /* when it was sent (CLOCK_MONOTONIC, ns) */

	/* pause (vm_pause.c) */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond; /* parked or exited changed, or pause_req dropped */
	int pause_req;		   /* atomic: vCPUs park at their next exit */
	unsigned parked, exited;   /* vCPU threads parked / gone (pause_lock) */
	bool paused;		   /* loop thread only */
	struct kvm_clock_data clock;
	bool clock_saved;
};

/* vm_pause.c */
int vm_pause_init(struct vm *vm);
void vm_pause_destroy(struct vm *vm);
/* vCPU threads: true when they should park (call vm_vcpu_park then). */
bool vm_pause_requested(struct vm *vm);
/* Wait, out of KVM_RUN, until the VM is resumed or stops. */
void vm_vcpu_park(struct vm *vm, struct vcpu *v);
/* A vCPU thread is about to return. */
void vm_vcpu_exited(struct vm *vm);
/* Let parked vCPUs go to see that the VM stops (the loop's thread, after the loop). */
void vm_pause_release(struct vm *vm);

/* vm_qmp.c: the control socket (cfg->qmp_path) and the events the loop sends. */
int vm_qmp_open(struct vm *vm, const char *path);
/* The loop's hooks for the power button and the balloon's size. */
int vm_qmp_start(struct vm *vm);
void vm_qmp_powerdown_event(struct vm *vm);
/* SHUTDOWN for how the VM ended, then close the socket. */
void vm_qmp_close(struct vm *vm);

#endif
