/* MSI routing and irqfd/ioeventfd registration; see kvm_irq.h. */
#include "vmm/virtio/kvm_irq.h"
#include "util/error.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define GSI_FIRST_MSI 24

void kvm_irq_init(struct kvm_irq *k, int vm_fd)
{
	memset(k, 0, sizeof(*k));
	k->vm_fd = vm_fd;
	pthread_mutex_init(&k->lock, NULL);
}

int kvm_irq_alloc(struct kvm_irq *k)
{
	int gsi = -ENOSPC;

	pthread_mutex_lock(&k->lock);
	if (k->nmsi < KVM_IRQ_MAX_MSI)
		gsi = GSI_FIRST_MSI + (int)k->nmsi++;
	pthread_mutex_unlock(&k->lock);
	return gsi < 0 ? err_set(ENOSPC, "out of MSI routes") : gsi;
}

/* Rebuild the routing table: the default irqchip routes, then every valid MSI. */
static int commit(struct kvm_irq *k)
{
	size_t max = 40 + KVM_IRQ_MAX_MSI;
	struct kvm_irq_routing *r;
	unsigned n = 0;
	int ret = 0;

	if (k->vm_fd < 0)
		return 0;
	r = calloc(1, sizeof(*r) + max * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	for (unsigned gsi = 0; gsi < 24; gsi++) {
		if (gsi < 16) {
			r->entries[n].gsi = gsi;
			r->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			r->entries[n].u.irqchip.irqchip =
			    gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			r->entries[n].u.irqchip.pin = gsi % 8;
			n++;
		}
		r->entries[n].gsi = gsi;
		r->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		r->entries[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		r->entries[n].u.irqchip.pin = gsi;
		n++;
	}
	for (unsigned i = 0; i < k->nmsi; i++) {
		if (!k->msi[i].valid)
			continue;
		r->entries[n].gsi = GSI_FIRST_MSI + i;
		r->entries[n].type = KVM_IRQ_ROUTING_MSI;
		r->entries[n].u.msi.address_lo = (uint32_t)k->msi[i].addr;
		r->entries[n].u.msi.address_hi = (uint32_t)(k->msi[i].addr >> 32);
		r->entries[n].u.msi.data = k->msi[i].data;
		n++;
	}
	r->nr = n;
	if (ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, r) < 0)
		ret = err_sys(errno, "KVM_SET_GSI_ROUTING");
	free(r);
	return ret;
}

int kvm_irq_set_msi(struct kvm_irq *k, int gsi, uint64_t addr, uint32_t data, bool valid)
{
	unsigned i = (unsigned)(gsi - GSI_FIRST_MSI);
	int ret;

	if (gsi < GSI_FIRST_MSI || i >= KVM_IRQ_MAX_MSI)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	if (k->msi[i].valid == valid && k->msi[i].addr == addr && k->msi[i].data == data) {
		pthread_mutex_unlock(&k->lock);
		return 0;
	}
	k->msi[i].addr = addr;
	k->msi[i].data = data;
	k->msi[i].valid = valid;
	ret = commit(k);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

int kvm_irq_irqfd(struct kvm_irq *k, int fd, int gsi, bool assign)
{
	struct kvm_irqfd irqfd = {.fd = (uint32_t)fd, .gsi = (uint32_t)gsi};

	if (k->vm_fd < 0)
		return 0;
	if (!assign)
		irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
	if (ioctl(k->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return err_sys(errno, "KVM_IRQFD (gsi %d)", gsi);
	return 0;
}

int kvm_ioeventfd(int vm_fd, uint64_t gpa, int fd, bool assign)
{
	/* len 0 matches a write of any size, and takes KVM's fast MMIO path (no decoding). */
	struct kvm_ioeventfd io = {.addr = gpa, .len = 0, .fd = fd};

	if (vm_fd < 0)
		return 0;
	if (!assign)
		io.flags = KVM_IOEVENTFD_FLAG_DEASSIGN;
	if (ioctl(vm_fd, KVM_IOEVENTFD, &io) == 0)
		return 0;
	io.len = 2; /* kernels without any-length ioeventfds: the guest writes a 16-bit index */
	if (ioctl(vm_fd, KVM_IOEVENTFD, &io) == 0)
		return 0;
	return err_sys(errno, "KVM_IOEVENTFD at 0x%llx", (unsigned long long)gpa);
}

int kvm_ioeventfd_pio(int vm_fd, uint16_t port, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
	    .addr = port, .len = 2, .fd = fd, .flags = KVM_IOEVENTFD_FLAG_PIO};

	if (vm_fd < 0)
		return 0;
	if (!assign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	if (ioctl(vm_fd, KVM_IOEVENTFD, &io) == 0)
		return 0;
	return err_sys(errno, "KVM_IOEVENTFD at port 0x%x", port);
}
