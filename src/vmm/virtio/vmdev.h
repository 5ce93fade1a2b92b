/*
 * The paravirtual devices of one VM, as `ligero run` options describe them, and their PCI bus.
 * Options are parsed (and rejected) before KVM is touched; the devices are built by
 * vm_devices_attach once guest RAM exists, which also puts the PCI host bridge (type-1 ports and
 * ECAM) and the BAR window on the VM's buses. vm_devices_stop must run before guest RAM is
 * unmapped: it stops every device thread.
 */
#ifndef LIGERO_VMM_VIRTIO_VMDEV_H
#define LIGERO_VMM_VIRTIO_VMDEV_H

#include <stdint.h>

struct vm_devices;
struct bus;
struct guest_mem;

struct vm_devices *vm_devices_new(void);
/* --disk, --net, --balloon, --rng; 0 or -errno with a message. */
int vm_devices_add_disk(struct vm_devices *v, const char *arg);
int vm_devices_add_net(struct vm_devices *v, const char *arg);
int vm_devices_set_balloon(struct vm_devices *v, const char *arg);
int vm_devices_add_rng(struct vm_devices *v);
/* The image file and format (NULL: probed) of disk i, 0 if there is no such disk; for booting
 * the first disk's own kernel (tools/bootdisk). */
int vm_devices_disk(const struct vm_devices *v, unsigned i, const char **path, const char **format);
/* Seed for default MAC addresses (stable per VM): the VM name or its first disk. */
void vm_devices_set_seed(struct vm_devices *v, const char *seed);

int vm_devices_attach(struct vm_devices *v, int vm_fd, const struct guest_mem *mem, struct bus *io,
		      struct bus *mmio);
void vm_devices_stop(struct vm_devices *v);
void vm_devices_free(struct vm_devices *v);

#endif
