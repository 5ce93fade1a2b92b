/* Opening /dev/kvm and judging whether it can run a stock kernel. */
#ifndef LIGERO_VMM_KVM_H
#define LIGERO_VMM_KVM_H

#include <stdbool.h>

enum kvm_host_kind {
	KVM_HOST_OK,	   /* hardware virtualization: stock kernels run */
	KVM_HOST_PVM,	   /* kvm_pvm: only PVM-enabled guest kernels run */
	KVM_HOST_NO_HWVIRT /* no vmx/svm: everything goes through the instruction emulator */
};

/* Classify the host from its module directory (/sys/module) and /proc/cpuinfo. */
enum kvm_host_kind kvm_host_kind(const char *sys_module, const char *cpuinfo);
/* Open path (normally /dev/kvm) and check the API version and the capabilities ligero needs.
 * Unless force, refuse a host kvm_host_kind() finds unable to run stock kernels.
 * Returns the fd or -errno with a one-line message saying what to do. */
int kvm_open(const char *path, bool force);

#endif
