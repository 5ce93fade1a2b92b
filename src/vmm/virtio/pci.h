/*
 * The virtio 1.x modern PCI transport (virtio spec 4.1). One BAR holds the common, ISR, device
 * and notify structures and the MSI-X table and PBA. Guest notifications land on one eventfd per
 * queue (KVM ioeventfd on the queue's notify address), interrupts leave through one eventfd per
 * MSI-X vector (a KVM irqfd on an MSI route), so the device threads and the guest talk without
 * the vCPU threads' user space.
 *
 * A device supplies a struct virtio_dev_ops; the transport negotiates features, keeps the queue
 * configuration (frozen once a queue is enabled or DRIVER_OK is set), starts the device on
 * DRIVER_OK and stops it on reset. A device that meets a malformed request calls virtio_dev_fail:
 * the device is then broken (DEVICE_NEEDS_RESET) until the driver resets it, and one line is
 * logged.
 */
#ifndef LIGERO_VMM_VIRTIO_PCI_H
#define LIGERO_VMM_VIRTIO_PCI_H

#include "vmm/pci_bus.h"
#include "vmm/virtio/kvm_irq.h"
#include "vmm/virtio/queue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* virtio-net's 8 queue pairs and its control queue; a device has a vector per queue and one for
 * configuration changes. */
#define VIRTIO_MAX_QUEUES   17
#define VIRTIO_MSIX_VECTORS (VIRTIO_MAX_QUEUES + 1)
#define VIRTIO_NO_VECTOR    0xffff

struct virtio_dev;

struct virtio_dev_ops {
	const char *name;    /* "blk", "net", ... for log lines */
	uint16_t type;	     /* virtio device ID (VIRTIO_ID_*) */
	uint32_t class_code; /* PCI class */
	/* Device configuration space (struct virtio_blk_config ...), bounds checked by the caller.
	 */
	void (*cfg_read)(struct virtio_dev *d, uint32_t off, void *data, unsigned len);
	void (*cfg_write)(struct virtio_dev *d, uint32_t off, const void *data, unsigned len);
	/* DRIVER_OK: queues are started; begin work (threads). Nonzero marks the device broken. */
	int (*activate)(struct virtio_dev *d);
	/* Reset or teardown: stop all work and wait for it; afterwards no queue is touched. */
	void (*reset)(struct virtio_dev *d);
	/* A queue served outside the VMM (virtio_dev_call_attach) must from now on signal its
	 * interrupts on eventfd fd. Called with the MSI-X lock held: no transport calls. */
	void (*set_call)(struct virtio_dev *d, unsigned qi, int fd);
};

/* Transport state of one queue. */
struct virtio_queue {
	struct virtq vq;   /* ring configuration and parser state */
	uint16_t max_size; /* what the device offers */
	uint16_t msix_vector;
	bool enabled;
	int kick_fd;	      /* eventfd: the guest notified this queue */
	pthread_mutex_t lock; /* held by the device while it pops or pushes */
	/* A backend outside the VMM (vhost) signals interrupts itself: on the vector's irqfd
	 * while the vector can be delivered, on masked_fd while it cannot (pending bit). */
	bool attached;
	int call_target; /* the eventfd the backend was given last (-1: none) */
	int masked_fd;
};

struct virtio_dev {
	struct pci_dev pci;
	const struct virtio_dev_ops *ops;
	void *priv;
	const struct virtio_mem *mem;
	struct kvm_irq *irq;
	unsigned nqueues;
	unsigned nvectors;	/* MSI-X table entries: one per queue and one for configuration */
	uint32_t cfg_size;	/* bytes of device configuration space */
	uint64_t host_features; /* offered, with VERSION_1 and the ring features virtio_dev_init
				   adds (a device may clear ring features after init) */

	pthread_mutex_t lock; /* everything below */
	uint64_t features;    /* negotiated (valid once FEATURES_OK) */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	uint16_t config_vector;
	uint8_t status;
	uint8_t isr;
	uint8_t config_generation;
	bool broken;
	bool active; /* ops->activate ran */
	struct virtio_queue q[VIRTIO_MAX_QUEUES];

	/* MSI-X */
	pthread_mutex_t msix_lock;
	uint32_t msix_table[VIRTIO_MSIX_VECTORS][4];
	uint32_t msix_pba;
	int msix_gsi[VIRTIO_MSIX_VECTORS];
	int msix_fd[VIRTIO_MSIX_VECTORS];
	bool msix_routed[VIRTIO_MSIX_VECTORS];
	uint64_t notify_gpa;  /* where the queues' MMIO ioeventfds are registered (0: none) */
	uint64_t notify_port; /* and their port I/O ones (0: none) */
	uint64_t irqs_sent;   /* interrupts signalled (for tests and stats) */
};

/* Set up a device with nqueues queues of at most queue_max entries and `features` (device
 * specific bits); cfg_size is its configuration space. Creates the eventfds. */
int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, void *priv,
		    const struct virtio_mem *mem, struct kvm_irq *irq, unsigned nqueues,
		    uint16_t queue_max, uint64_t features, uint32_t cfg_size);
/* Stop the device, drop its KVM registrations and close the eventfds. */
void virtio_dev_destroy(struct virtio_dev *d);

/* Signal the interrupt of queue qi (or of configuration changes, with qi -1). */
void virtio_dev_irq(struct virtio_dev *d, int qi);
/* After pushing to queue qi: interrupt the guest if it asked for it (EVENT_IDX / flags);
 * returns whether it did. q->lock held. */
bool virtio_dev_queue_done(struct virtio_dev *d, int qi);
/* The device met something malformed: mark it broken (DEVICE_NEEDS_RESET), log once. */
void virtio_dev_fail(struct virtio_dev *d, const char *why);
/* True once the device is broken; workers stop touching the queues. */
bool virtio_dev_broken(struct virtio_dev *d);
/* Negotiated feature test. */
bool virtio_dev_has(const struct virtio_dev *d, unsigned bit);
/* The device configuration changed (e.g. balloon target): bump generation, interrupt. */
void virtio_dev_config_changed(struct virtio_dev *d);

/* Queue qi is served by a backend outside the VMM (vhost): ops->set_call gets the eventfd its
 * interrupts go to now, before this returns, and again whenever that changes: the vector's
 * irqfd (KVM injects the MSI, no VMM thread involved) while it can be delivered, a pending
 * eventfd of the queue while it is masked or disabled (delivered at unmask, as the PBA says).
 * Detach before the backend stops using the queue. */
void virtio_dev_call_attach(struct virtio_dev *d, unsigned qi);
void virtio_dev_call_detach(struct virtio_dev *d, unsigned qi);
/* Layout of BAR 0 (exposed for tests). */
#define VIRTIO_BAR_SIZE	   0x8000
#define VIRTIO_COMMON_OFF  0x0000
#define VIRTIO_ISR_OFF	   0x1000
#define VIRTIO_DEVCFG_OFF  0x2000
#define VIRTIO_NOTIFY_OFF  0x3000
#define VIRTIO_NOTIFY_MULT 4
#define VIRTIO_MSIX_OFF	   0x4000
#define VIRTIO_PBA_OFF	   0x5000
/* BAR 2: the same notifications through port I/O, a 16-bit port per queue. Its capability comes
 * first, so drivers that take the first they can use (Linux) notify through ports: a port I/O
 * exit gives KVM the next instruction's address, where an MMIO exit on AMD hosts goes through
 * KVM's instruction emulator (docs/virtio.md). */
#define VIRTIO_PIO_BAR	       2
#define VIRTIO_PIO_NOTIFY_MULT 2

#endif
