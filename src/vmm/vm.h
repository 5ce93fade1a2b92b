/* A virtual machine on KVM: the public API the command line uses. */
#ifndef LIGERO_VMM_VM_H
#define LIGERO_VMM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Why a VM stopped. */
enum vm_exit {
	VM_EXIT_POWEROFF,     /* ACPI S5 */
	VM_EXIT_RESET,	      /* the guest rebooted (i8042 reset) */
	VM_EXIT_QUIT,	      /* Ctrl-A x on the console, or QMP's quit */
	VM_EXIT_PANIC,	      /* the guest kernel panicked */
	VM_EXIT_TRIPLE_FAULT, /* KVM_EXIT_SHUTDOWN */
	VM_EXIT_ERROR,	      /* KVM or a device failed; see the message */
	VM_EXIT_SIGNAL,	      /* a signal (or the stop timeout after one) stopped it */
};

struct vm_config {
	const char *kernel; /* bzImage path (with kernel_buf: only its name in messages) */
	const char *initrd; /* or NULL */
	/* The kernel and initrd already in memory, instead of the files above: tools/bootdisk
	 * reads a disk's own (vmm/ never reads guest filesystems). They must stay valid until
	 * vm_create returns. */
	const void *kernel_buf, *initrd_buf;
	size_t kernel_len, initrd_len;
	const char *cmdline; /* the user's part; the VMM appends its own (see boot.h) */
	uint64_t mem_size;
	unsigned cpus;
	int console_in;		    /* fd the guest's serial port reads, or -1 */
	int console_out;	    /* fd the guest's serial port writes, or -1 */
	const char *console_socket; /* a UNIX socket for console clients, or NULL */
	const char *console_log;    /* a file all console output is appended to, or NULL */
	uint64_t console_log_max;   /* its rotation size (0: 1 MiB) */
	const char *qmp_path;	    /* the QMP socket, or NULL */
	const char *name;	    /* the VM's name (query-name), or NULL */
	bool force;		    /* run even on a KVM that cannot run stock kernels */
	struct vm_devices *devices; /* virtio devices and their PCI bus (virtio/vmdev.h), or NULL */
};

struct vm;

/* Check the config, open KVM, load the kernel and build the machine. The QMP and console
 * sockets listen when it returns (a client that connects waits until vm_run serves it). */
int vm_create(const struct vm_config *cfg, struct vm **out);
/* Run until the guest stops; *why says how, *msg (static until vm_destroy) says more. Before it
 * returns, the devices are stopped (disk requests in flight complete) and the disks flushed and
 * closed; a disk that could not be flushed makes it return -errno with a message (*why and *msg
 * are set all the same). */
int vm_run(struct vm *vm, enum vm_exit *why, const char **msg);
/* Ask a running VM to stop with this reason (async-signal-safe). */
void vm_request_stop(struct vm *vm, enum vm_exit why);
/* Press the ACPI power button, as a person would press a PC's: the guest's OS is told (SCI,
 * PWRBTN_STS) and decides what to do, normally a clean power-off, which vm_run() then reports
 * as VM_EXIT_POWEROFF. Nothing happens if the guest ignores it. Async-signal-safe and callable
 * from any thread; presses made before vm_run() are delivered when it starts. */
void vm_press_power_button(struct vm *vm);
/* True once the VM has been asked to stop; vCPU threads poll it. */
bool vm_stopping(struct vm *vm);
/* Stop with VM_EXIT_ERROR, recording this message (the first failure wins). */
void vm_fail(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Exits handled in user space so far, all vCPUs together (KVM handles the rest itself). */
unsigned long vm_user_exits(const struct vm *vm);
/* With LIGERO_STATS=1: the user-space exit count, then start-up times and exits by kind and
 * address (vmm/exitstat.h); without: the count alone. */
void vm_print_stats(const struct vm *vm, FILE *f);
/* Free everything vm_create made. */
void vm_destroy(struct vm *vm);
/* Stop every vCPU out of KVM_RUN (and the guest's kvmclock with them), or let them go on; 0
 * or -errno with a message. Only on the thread running vm_run() (its QMP commands do it). */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
bool vm_paused(const struct vm *vm);
/* Short English name for an exit reason. */
const char *vm_exit_name(enum vm_exit why);
/* Its one-word name for machines: "poweroff", "reset", "quit", "panic", "triple-fault",
 * "kvm-error", "signal". */
const char *vm_exit_reason(enum vm_exit why);

#endif
