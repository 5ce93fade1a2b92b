/*
 * The paravirtual devices: each is created from its parsed options (vmdev.h), plugged into a PCI
 * bus by the caller (pci_bus_add(&bus, &dev->pci)) and destroyed after the VM stops.
 */
#ifndef LIGERO_VMM_VIRTIO_DEVICES_H
#define LIGERO_VMM_VIRTIO_DEVICES_H

#include "vmm/virtio/pci.h"
#include "vmm/virtio/vmdev.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frees what vm_devices_add_disk copied into o. */
void virtio_blk_opts_free(struct virtio_blk_opts *o);
int virtio_blk_create(struct virtio_dev **out, const struct virtio_blk_opts *o,
		      const struct virtio_mem *mem, struct kvm_irq *irq);
/* Stop the device, flush the disk and close it: 0 or the flush's error. A second call does
 * nothing and returns 0. */
int virtio_blk_close(struct virtio_dev *d);
/* Close (ignoring errors) and free. */
void virtio_blk_destroy(struct virtio_dev *d);
/* The image under the device (NULL once closed). */
struct bdev *virtio_blk_bdev(struct virtio_dev *d);

/* A stable locally administered MAC from a seed (the VM's name or first disk path). */
void virtio_net_default_mac(const char *seed, unsigned index, uint8_t mac[6]);
/* A NIC on the tap of o; without o->queues, one queue pair per vCPU (at most
 * VIRTIO_NET_MAX_PAIRS). vhost=auto takes the kernel's data path when /dev/vhost-net works. */
int virtio_net_create(struct virtio_dev **out, const struct virtio_net_opts *o, unsigned cpus,
		      const struct virtio_mem *mem, struct kvm_irq *irq);
/* Stop the NIC's data path (the kernel's workers too), so that it touches no guest memory,
 * e.g. while the VM is paused; resume restarts it where each ring stopped. A resume that fails
 * leaves the device broken (needs reset) and returns -errno. */
void virtio_net_pause(struct virtio_dev *d);
int virtio_net_resume(struct virtio_dev *d);
/* Its tap, bridge, data path (and why not vhost-net) and queue pairs, in one line. */
void virtio_net_describe(const struct virtio_dev *d, char *buf, size_t len);
void virtio_net_destroy(struct virtio_dev *d);

/* --balloon MiB: the target size of the balloon (memory taken from the guest). */
int virtio_balloon_create(struct virtio_dev **out, uint64_t target_mib,
			  const struct virtio_mem *mem, struct kvm_irq *irq);
void virtio_balloon_set_target(struct virtio_dev *d, uint64_t target_mib);
/* Pages the guest has in the balloon now, and its last statistics (tag -> value). */
uint64_t virtio_balloon_actual_mib(struct virtio_dev *d);
/* The same in 4 KiB pages (the device's unit). */
void virtio_balloon_set_pages(struct virtio_dev *d, uint64_t pages);
uint64_t virtio_balloon_actual_pages(struct virtio_dev *d);
/* Write 1 to the eventfd fd (-1: none) whenever the driver changes the actual size. */
void virtio_balloon_set_notify(struct virtio_dev *d, int fd);
void virtio_balloon_destroy(struct virtio_dev *d);

int virtio_rng_create(struct virtio_dev **out, const struct virtio_mem *mem, struct kvm_irq *irq);
void virtio_rng_destroy(struct virtio_dev *d);

#endif
