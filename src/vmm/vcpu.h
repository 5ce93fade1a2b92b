/* A virtual CPU: its KVM fd, its registers at reset, and the thread that runs it. */
#ifndef LIGERO_VMM_VCPU_H
#define LIGERO_VMM_VCPU_H

#include "vmm/bus.h"
#include "vmm/exitstat.h"
#include "vmm/guestprof.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

struct vm;

struct vcpu {
	unsigned id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	int started;
	int tid; /* the thread's id (query-cpus-fast), once it runs */
	struct vm *vm;
	const struct bus *io, *mmio;
	unsigned long exits;	/* exits handled in user space */
	struct exitstat *stat;	/* or NULL */
	struct guestprof *prof; /* or NULL */
};

/* Create vCPU `id` of `ncpus` and set its CPUID, MSRs, FPU and LAPIC. cpuid is scratch space
 * holding KVM's supported CPUID; it is modified. */
int vcpu_create(struct vcpu *v, int vm_fd, unsigned id, unsigned ncpus, size_t run_size,
		struct kvm_cpuid2 *cpuid);
/* Put the boot vCPU in 64-bit mode at the kernel's 64-bit entry (boot.h's plan). */
int vcpu_setup_boot(struct vcpu *v);
/* Thread body: run the vCPU until the VM stops, parking while it is paused (vm_pause.c). */
void *vcpu_thread(void *arg);
/* Make a vCPU's KVM_RUN return now (call with the VM stopping). */
void vcpu_kick(struct vcpu *v);
/* Print where the vCPU is (registers, run state, pending events, in-service and requested
 * interrupts) on one line; for LIGERO_STATS, after its thread has stopped. */
void vcpu_print_state(const struct vcpu *v, FILE *f);
/* Close the fd and unmap the run area. */
void vcpu_destroy(struct vcpu *v);

#endif
