/* The CPUID a vCPU sees: what KVM supports, with the topology of this VM. */
#ifndef LIGERO_VMM_CPUID_H
#define LIGERO_VMM_CPUID_H

#include <linux/kvm.h>

/* KVM_GET_SUPPORTED_CPUID into a new buffer (free() it); -errno on failure. */
int cpuid_supported(int kvm_fd, struct kvm_cpuid2 **out);
/* Rewrite the topology leaves (1, 4, 0xB, 0x1F, 0x80000008, 0x8000001E) for vCPU `id` of
 * `ncpus`: one socket, one thread per core, APIC ID = vCPU index. */
void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus);
/* Advertise the TSC-deadline LAPIC timer, which KVM emulates but does not list as supported. */
void cpuid_set_tsc_deadline(struct kvm_cpuid2 *c);

#endif
