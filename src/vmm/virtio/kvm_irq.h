/*
 * KVM plumbing for devices: MSI routes (KVM_SET_GSI_ROUTING) bound to irqfds, and ioeventfds.
 * KVM_SET_GSI_ROUTING replaces the whole table, so this module owns it and always re-adds the
 * default PIC/IOAPIC routes for GSIs 0-23 that KVM_CREATE_IRQCHIP set up (the serial port and
 * the rest of the legacy devices keep working). vm_fd -1 is a machine without KVM (unit tests):
 * everything succeeds and nothing is called.
 */
#ifndef LIGERO_VMM_VIRTIO_KVM_IRQ_H
#define LIGERO_VMM_VIRTIO_KVM_IRQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define KVM_IRQ_MAX_MSI 256

struct kvm_irq {
	int vm_fd;
	pthread_mutex_t lock;
	unsigned nmsi;
	struct {
		uint64_t addr;
		uint32_t data;
		bool valid;
	} msi[KVM_IRQ_MAX_MSI]; /* msi[i] is GSI 24 + i */
};

void kvm_irq_init(struct kvm_irq *k, int vm_fd);
/* A new GSI for an MSI (not routed until kvm_irq_set_msi). */
int kvm_irq_alloc(struct kvm_irq *k);
/* Route gsi to the MSI message (valid false: no route, the irqfd then does nothing). */
int kvm_irq_set_msi(struct kvm_irq *k, int gsi, uint64_t addr, uint32_t data, bool valid);
/* Bind (or unbind) eventfd fd to gsi: a write to fd injects the interrupt in the kernel. */
int kvm_irq_irqfd(struct kvm_irq *k, int fd, int gsi, bool assign);
/* Make guest writes to MMIO address gpa signal fd without leaving the kernel. */
int kvm_ioeventfd(int vm_fd, uint64_t gpa, int fd, bool assign);
/* The same for a 16-bit write to I/O port `port`. */
int kvm_ioeventfd_pio(int vm_fd, uint16_t port, int fd, bool assign);

#endif
