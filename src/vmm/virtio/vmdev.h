/*
 * The paravirtual devices of one VM, as `ligero run` options describe them, and their PCI bus.
 * The command line parses the options (cli/run_devices.c) before KVM is touched and hands
 * them over as the structs below; the devices are built by
 * vm_devices_attach once guest RAM exists, which also puts the PCI host bridge (type-1 ports and
 * ECAM) and the BAR window on the VM's buses. vm_devices_stop must run before guest RAM is
 * unmapped: it stops every device thread.
 */
#ifndef LIGERO_VMM_VIRTIO_VMDEV_H
#define LIGERO_VMM_VIRTIO_VMDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --disk FILE[,format=raw|qcow2][,readonly=on][,cache=MODE][,serial=ID]
 * cache: writeback (default) = page cache, flush when the guest flushes; none = O_DIRECT,
 * flush when the guest flushes; writethrough = every write is flushed before it completes;
 * directsync = both; unsafe = page cache, guest flushes are ignored (fast, loses data on a
 * host crash). */
struct virtio_blk_opts {
	char *path;
	char *format; /* NULL: probe */
	bool readonly;
	int bdev_flags; /* the cache mode's BDEV_O_CACHE_MASK bits (bdev_parse_cache_mode) */
	char serial[21];
};

/* --net tap=NAME | bridge=BR [,vhost=on|off][,queues=N][,mtu=M][,mac=52:54:..] */
#define VIRTIO_NET_MAX_PAIRS 8
enum virtio_net_vhost {
	VIRTIO_NET_VHOST_AUTO, /* the kernel's data path where /dev/vhost-net works, else ours */
	VIRTIO_NET_VHOST_ON,   /* the kernel's, or the VM does not start */
	VIRTIO_NET_VHOST_OFF,  /* ligero's own threads move the packets */
};
struct virtio_net_opts {
	char tap[16];	 /* existing tap to use, or the name to create ("" = kernel picks) */
	char bridge[16]; /* bridge the created tap joins ("" = none) */
	uint8_t mac[6];	 /* unicast; with mac_set, else derived from the VM's seed */
	bool mac_set;
	enum virtio_net_vhost vhost;
	unsigned queues; /* queue pairs, 1 to VIRTIO_NET_MAX_PAIRS; 0 = one per vCPU */
	unsigned mtu;	 /* 68 to 65535, announced to the guest (VIRTIO_NET_F_MTU); 0 = 1500 */
};

/* --balloon MiB[,after=SECONDS][,trigger=FILE]: the balloon's target, applied at once, after
 * a delay, or once a file exists (until the control socket exists, that is how a script
 * inflates the balloon of a running VM). */
struct vm_balloon_opts {
	uint64_t mib;	     /* at most 2^32 */
	unsigned after;	     /* seconds after start before the target applies */
	const char *trigger; /* or NULL */
};

struct vm_devices;
struct bus;
struct guest_mem;

struct vm_devices *vm_devices_new(void);
/* --disk, --net, --balloon, --rng (the options are copied); 0 or -errno with a message. */
int vm_devices_add_disk(struct vm_devices *v, const struct virtio_blk_opts *o);
int vm_devices_add_net(struct vm_devices *v, const struct virtio_net_opts *o);
int vm_devices_set_balloon(struct vm_devices *v, const struct vm_balloon_opts *o);
int vm_devices_add_rng(struct vm_devices *v);
/* The image file and format (NULL: probed) of disk i, 0 if there is no such disk; for booting
 * the first disk's own kernel (tools/bootdisk). */
int vm_devices_disk(const struct vm_devices *v, unsigned i, const char **path, const char **format);
/* Seed for default MAC addresses (stable per VM): the VM name or its first disk. */
void vm_devices_set_seed(struct vm_devices *v, const char *seed);
/* The VM's vCPU count: a --net without queues= gets one queue pair per vCPU. */
void vm_devices_set_cpus(struct vm_devices *v, unsigned cpus);
/* Stop every NIC's data path (ligero's threads and the kernel's vhost workers), so guest memory
 * holds still while the VM is paused; resume restarts them where their rings stopped. */
void vm_devices_pause_nets(struct vm_devices *v);
int vm_devices_resume_nets(struct vm_devices *v);
/* After vm_devices_attach: one line on how NIC i moves its packets (the kernel's vhost-net or
 * ligero's threads, and why), for the user; 0 when there is no NIC i. */
int vm_devices_describe_net(const struct vm_devices *v, unsigned i, char *buf, size_t len);

int vm_devices_attach(struct vm_devices *v, int vm_fd, const struct guest_mem *mem, struct bus *io,
		      struct bus *mmio);

/* A disk as QMP's query-block describes it (pointers valid until vm_devices_stop). */
struct vm_disk_info {
	const char *path;   /* as --disk named it */
	const char *format; /* the driver's name: "raw", "qcow2", ... */
	bool readonly;
	int cache;	     /* BDEV_O_DIRECT, BDEV_O_UNSAFE, BDEV_O_WRITETHROUGH bits */
	const char *backing; /* the backing file name the image records, or NULL */
	unsigned depth;	     /* backing files below it */
	uint64_t size;	     /* virtual size in bytes */
};
/* Disk i of an attached set: 0, or -ENOENT past the last (or once the disks are closed). */
int vm_devices_disk_info(struct vm_devices *v, unsigned i, struct vm_disk_info *out);
/* The balloon, in 4 KiB pages: -ENODEV without one. notify_fd (an eventfd, -1: none) gets a
 * write whenever the guest changes the balloon's actual size. */
int vm_devices_balloon_set(struct vm_devices *v, uint64_t pages);
int vm_devices_balloon_actual(struct vm_devices *v, uint64_t *pages);
int vm_devices_balloon_notify(struct vm_devices *v, int notify_fd);
/* Stop every device (a disk finishes the requests its threads are doing; requests the guest
 * queued behind them are dropped, the guest being stopped), then flush and close the disks.
 * Returns 0, or the first disk's flush error (-errno, message recorded); the other disks are
 * flushed and closed all the same. A second call does nothing. */
int vm_devices_stop(struct vm_devices *v);
void vm_devices_free(struct vm_devices *v);

#endif
