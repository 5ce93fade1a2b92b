/*
 * The virtio PCI transport and the devices behind it, driven like a guest driver would drive
 * them: config space through 0xCF8/0xCFC and ECAM, registers through BAR 0, rings in a fake
 * guest memory, notifications by MMIO writes, interrupts seen on the MSI-X eventfds.
 * No KVM: kvm_irq with vm_fd -1 skips the ioctls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "vmm/pci_bus.h"
#include "vmm/virtio/devices.h"
#include "pci_mmio.h"

#define RAM_GPA	 0x0ull
#define RAM_SIZE 0x100000ull
#define ECAM	 0xe0000000ull
#define MMIO	 0xc0000000ull
#define DESC	 0x10000ull
#define AVAIL	 0x11000ull
#define USED	 0x12000ull
#define BUF	 0x20000ull
#define QSZ	 16

struct fix {
	uint8_t *ram;
	struct virtio_mem mem;
	struct kvm_irq irq;
	struct pci_bus bus;
	struct virtio_dev *d;
	uint64_t bar;
	unsigned slot;
	uint16_t avail_idx;
	char disk[64];
};

PCI_MMIO_ACCESSORS(struct fix, ECAM)

static void base_setup(struct fix *f)
{
	f->ram = calloc(1, RAM_SIZE);
	f->mem.nregions = 1;
	f->mem.r[0] = (struct virtio_mem_region){RAM_GPA, RAM_SIZE, f->ram};
	kvm_irq_init(&f->irq, -1);
	pci_bus_init(&f->bus, ECAM, MMIO, 0x10000000);
}

static void plug(struct fix *f)
{
	int slot = pci_bus_add(&f->bus, &f->d->pci);
	assert_true(slot > 0);
	f->slot = (unsigned)slot;
	f->bar = cfg_rd(f, 0x10, 4) & ~0xfu;
	assert_true(f->bar >= MMIO);
}

static int setup_rng(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	base_setup(f);
	assert_int_equal(virtio_rng_create(&f->d, &f->mem, &f->irq), 0);
	plug(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	if (f->d && f->d->ops->type == 2)
		virtio_blk_destroy(f->d);
	else if (f->d)
		virtio_rng_destroy(f->d);
	if (f->disk[0])
		unlink(f->disk);
	pci_bus_destroy(&f->bus);
	free(f->ram);
	free(f);
	return 0;
}

/* Negotiate: VERSION_1 plus what is in `extra`; returns the status read back. */
static uint8_t negotiate(struct fix *f, uint64_t features)
{
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	wr(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	return (uint8_t)rd(f, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void setup_queue(struct fix *f, uint16_t size, uint64_t desc)
{
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	wr(f, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)desc);
	wr(f, VIRTIO_PCI_COMMON_Q_DESCHI, 4, (uint32_t)(desc >> 32));
	wr(f, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, AVAIL);
	wr(f, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_USEDLO, 4, USED);
	wr(f, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static void driver_ok(struct fix *f)
{
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	       VIRTIO_CONFIG_S_DRIVER_OK);
}

static void msix_on(struct fix *f)
{
	/* table entry 1: some address/data, unmasked; then MSI-X enable in the capability */
	wr(f, 0x4000 + 16 + 0, 4, 0xfee00000);
	wr(f, 0x4000 + 16 + 8, 4, 0x4041);
	wr(f, 0x4000 + 16 + 12, 4, 0);
	cfg_wr(f, 0x42, 2, 0x8000 | (uint16_t)cfg_rd(f, 0x42, 2));
}

static void desc(struct fix *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = f->ram + DESC + 16 * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static uint16_t used_idx(struct fix *f)
{
	return __atomic_load_n((uint16_t *)(f->ram + USED + 2), __ATOMIC_ACQUIRE);
}

/* Publish head, notify queue 0 through the notify window, wait for the used index to move. */
static bool submit(struct fix *f, uint16_t head)
{
	uint16_t before = used_idx(f);
	memcpy(f->ram + AVAIL + 4 + 2 * (f->avail_idx % QSZ), &head, 2);
	f->avail_idx++;
	__atomic_store_n((uint16_t *)(f->ram + AVAIL + 2), f->avail_idx, __ATOMIC_RELEASE);
	wr(f, 0x3000, 2, 0);
	for (int i = 0; i < 500 && used_idx(f) == before; i++)
		usleep(1000);
	return used_idx(f) != before;
}

static bool irq_seen(struct fix *f, unsigned v)
{
	uint64_t n;
	struct pollfd p = {f->d->msix_fd[v], POLLIN, 0};
	if (poll(&p, 1, 1000) != 1)
		return false;
	return read(f->d->msix_fd[v], &n, 8) == 8;
}

static void config_space(void **state)
{
	struct fix *f = *state;
	uint32_t v, types = 0;
	unsigned cap;

	/* type 1 ports: 00:00.0 is the host bridge, our function answers at its slot */
	v = 0x80000000u;
	pci_bus_pio(&f->bus, 0xcf8, &v, 4, true);
	pci_bus_pio(&f->bus, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0x00081b36);
	v = 0x80000000u | f->slot << 11;
	pci_bus_pio(&f->bus, 0xcf8, &v, 4, true);
	pci_bus_pio(&f->bus, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0x10441af4); /* rng: 0x1040 + 4 */
	v = 0x80000000u | 31 << 11;	 /* empty slot */
	pci_bus_pio(&f->bus, 0xcf8, &v, 4, true);
	pci_bus_pio(&f->bus, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0xffffffff);
	assert_int_equal(cfg_rd(f, 0x2c, 4), 0x00401af4);
	assert_true(cfg_rd(f, 0x06, 2) & 0x10);
	for (cap = cfg_rd(f, 0x34, 1); cap; cap = cfg_rd(f, cap + 1, 1)) {
		assert_true(cap >= 0x40 && cap < 0x100);
		if (cfg_rd(f, cap, 1) == 0x09)
			types |= 1u << cfg_rd(f, cap + 3, 1);
		else
			assert_int_equal(cfg_rd(f, cap, 1), 0x11); /* MSI-X */
	}
	assert_int_equal(types, 0x3e); /* common, notify, ISR, device, PCI cfg access */
	/* BAR sizing: all ones reads back the size mask, then the BAR moves */
	cfg_wr(f, 0x10, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f, 0x10, 4), (uint32_t) ~(VIRTIO_BAR_SIZE - 1));
	cfg_wr(f, 0x10, 4, 0xd0000000);
	f->bar = 0xd0000000;
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	/* memory decoding off: the BAR is gone */
	cfg_wr(f, 0x04, 2, 0);
	assert_false(pci_bus_mmio(&f->bus, f->bar, &v, 4, false));
	cfg_wr(f, 0x04, 2, 2);
	/* the PCI configuration access capability reaches the common config */
	cfg_wr(f, 0x90 + 8, 4, VIRTIO_PCI_COMMON_NUMQ);
	cfg_wr(f, 0x90 + 12, 4, 2);
	assert_int_equal(cfg_rd(f, 0x90 + 16, 2), 1);
}

/* Notifications through BAR 2's ports: the capability Linux takes (the first notify one) points
 * there; a 16-bit write to queue 0's port runs the queue; sizing and I/O decoding like a BAR. */
static void pio_notify(void **state)
{
	struct fix *f = *state;
	uint32_t bar2 = cfg_rd(f, 0x10 + 4 * VIRTIO_PIO_BAR, 4), v;
	unsigned cap, notify = 0, bars[2] = {0, 0}, mult[2] = {0, 0};
	uint16_t port = (uint16_t)(bar2 & ~3u), before, zero = 0;
	uint8_t none[32] = {0};

	assert_int_equal(bar2 & 3, 1); /* an I/O BAR */
	assert_true(port >= PCI_BUS_IO_BASE && port + 8 <= (int)PCI_BUS_IO_END);
	assert_int_equal(cfg_rd(f, 0x04, 2) & 3, 3); /* I/O and memory decoding on */
	for (cap = cfg_rd(f, 0x34, 1); cap; cap = cfg_rd(f, cap + 1, 1))
		if (cfg_rd(f, cap, 1) == 0x09 &&
		    cfg_rd(f, cap + 3, 1) == VIRTIO_PCI_CAP_NOTIFY_CFG && notify < 2) {
			bars[notify] = cfg_rd(f, cap + 4, 1);
			mult[notify++] = cfg_rd(f, cap + 16, 4);
		}
	assert_int_equal(notify, 2);
	assert_int_equal(bars[0], VIRTIO_PIO_BAR); /* port I/O first */
	assert_int_equal(mult[0], VIRTIO_PIO_NOTIFY_MULT);
	assert_int_equal(bars[1], 0);
	assert_int_equal(mult[1], VIRTIO_NOTIFY_MULT);

	assert_true(negotiate(f, 1ull << VIRTIO_F_VERSION_1) & VIRTIO_CONFIG_S_FEATURES_OK);
	setup_queue(f, QSZ, DESC);
	driver_ok(f);
	desc(f, 0, BUF, 32, VRING_DESC_F_WRITE, 0);
	before = used_idx(f);
	memcpy(f->ram + AVAIL + 4, &zero, 2);
	__atomic_store_n((uint16_t *)(f->ram + AVAIL + 2), ++f->avail_idx, __ATOMIC_RELEASE);
	assert_true(pci_bus_pio(&f->bus, port, &zero, 2, true)); /* queue 0's port */
	for (int i = 0; i < 500 && used_idx(f) == before; i++)
		usleep(1000);
	assert_int_equal(used_idx(f), (uint16_t)(before + 1));
	assert_memory_not_equal(f->ram + BUF, none, 32);

	/* sizing reads back the size with the I/O bit; the BAR moves where it is written */
	cfg_wr(f, 0x10 + 4 * VIRTIO_PIO_BAR, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f, 0x10 + 4 * VIRTIO_PIO_BAR, 4),
			 (~(8u - 1u) & 0xfffcu) | 1); /* 8 ports: the minimum */
	cfg_wr(f, 0x10 + 4 * VIRTIO_PIO_BAR, 4, 0xd000);
	assert_false(pci_bus_pio(&f->bus, port, &v, 2, false));
	assert_true(pci_bus_pio(&f->bus, 0xd000, &v, 2, false));
	/* I/O decoding off: the ports are gone, the memory BAR stays */
	cfg_wr(f, 0x04, 2, 2);
	assert_false(pci_bus_pio(&f->bus, 0xd000, &v, 2, false));
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
}

static void feature_negotiation(void **state)
{
	struct fix *f = *state;

	wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	assert_true(rd(f, VIRTIO_PCI_COMMON_DF, 4) & 1); /* VERSION_1 is bit 32 */
	/* without VERSION_1 (a legacy driver): FEATURES_OK does not stick */
	assert_false(negotiate(f, 0) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* a feature the device never offered */
	assert_false(negotiate(f, 1ull << VIRTIO_F_VERSION_1 | 1ull << 20) &
		     VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(negotiate(f, 1ull << VIRTIO_F_VERSION_1) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* features are frozen after FEATURES_OK */
	wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_GF, 4, 0xffffffff);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_GF, 4), 0);
	/* DRIVER_OK without FEATURES_OK marks the device broken */
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_STATUS, 1), 0);
}

static void queue_frozen_and_rng_works(void **state)
{
	struct fix *f = *state;
	uint8_t zero[32] = {0};

	assert_true(negotiate(f, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX) &
		    VIRTIO_CONFIG_S_FEATURES_OK);
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 12); /* not a power of two: ignored */
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 128); /* more than offered: ignored */
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	setup_queue(f, QSZ, DESC);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	/* enabled: size and addresses are frozen */
	wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSZ);
	wr(f, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x50000);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_DESCLO, 4), DESC);
	/* a queue that does not exist reads size 0 and ignores writes */
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 7);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	msix_on(f);
	driver_ok(f);
	assert_int_equal(f->d->q[0].vq.size, QSZ);

	desc(f, 0, BUF, 32, VRING_DESC_F_WRITE, 0);
	assert_true(submit(f, 0));
	assert_int_equal(*(uint32_t *)(f->ram + USED + 8), 32); /* used len */
	assert_memory_not_equal(f->ram + BUF, zero, 32);
	assert_true(irq_seen(f, 1));

	/* masked vector: the interrupt waits in the PBA, and comes on unmask */
	wr(f, 0x4000 + 16 + 12, 4, 1);
	*(uint16_t *)(f->ram + AVAIL + 4 + 2 * QSZ) = used_idx(f); /* used_event: next one */
	assert_true(submit(f, 0));
	usleep(20000);
	assert_int_equal(rd(f, 0x5000, 4) & 2, 2);
	wr(f, 0x4000 + 16 + 12, 4, 0);
	assert_true(irq_seen(f, 1));
	assert_int_equal(rd(f, 0x5000, 4) & 2, 0);
}

static void malformed_chain_needs_reset(void **state)
{
	struct fix *f = *state;

	negotiate(f, 1ull << VIRTIO_F_VERSION_1);
	setup_queue(f, QSZ, DESC);
	msix_on(f);
	driver_ok(f);
	desc(f, 0, RAM_SIZE - 16, 32, VRING_DESC_F_WRITE, 0); /* runs off the end of RAM */
	assert_false(submit(f, 0));
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* broken: a good request is not served either */
	desc(f, 1, BUF, 32, VRING_DESC_F_WRITE, 0);
	assert_false(submit(f, 1));
	/* reset brings it back */
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_STATUS, 1), 0);
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	memset(f->ram + AVAIL, 0, 0x2000);
	f->avail_idx = 0;
	negotiate(f, 1ull << VIRTIO_F_VERSION_1);
	setup_queue(f, QSZ, DESC);
	driver_ok(f);
	assert_true(submit(f, 1));
}

static void bad_ring_address(void **state)
{
	struct fix *f = *state;

	negotiate(f, 1ull << VIRTIO_F_VERSION_1);
	setup_queue(f, QSZ, RAM_SIZE - 64); /* descriptor table runs off RAM */
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

/* ---- virtio-blk on a raw file ---- */

/* A 1 MiB disk whose sector i is filled with the byte i & 0xff; qcow2 or raw. */
static int setup_blk_fmt(void **state, bool ro, const char *fmt)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct virtio_blk_opts o = {.format = (char *)fmt, .readonly = ro, .serial = "SER42"};
	struct bdev_create_opts co = {.size = 2048 * 512, .force = true};
	struct bdev *bs;
	uint8_t sec[512];
	int fd;

	base_setup(f);
	snprintf(f->disk, sizeof(f->disk), "/tmp/ligero-vblk-XXXXXX");
	fd = mkstemp(f->disk);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(bdev_create(f->disk, fmt, &co), 0);
	assert_int_equal(bdev_open(&bs, f->disk, fmt, BDEV_O_RDWR), 0);
	for (int i = 0; i < 2048; i++) {
		memset(sec, i & 0xff, sizeof(sec));
		assert_int_equal(bdev_write(bs, (uint64_t)i * 512, sec, 512), 0);
	}
	bdev_close(bs);
	o.path = f->disk;
	assert_int_equal(virtio_blk_create(&f->d, &o, &f->mem, &f->irq), 0);
	plug(f);
	negotiate(f, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC);
	setup_queue(f, QSZ, DESC);
	msix_on(f);
	driver_ok(f);
	*state = f;
	return 0;
}

static int setup_blk(void **state)
{
	return setup_blk_fmt(state, false, "raw");
}

static int setup_blk_ro(void **state)
{
	return setup_blk_fmt(state, true, "raw");
}

static int setup_blk_qcow2(void **state)
{
	return setup_blk_fmt(state, false, "qcow2");
}

/* A request: header at BUF, data at BUF+0x100 (len), status at BUF+0x80. */
static uint8_t blk_req(struct fix *f, uint32_t type, uint64_t sector, uint32_t len, bool data_in)
{
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	memcpy(f->ram + BUF, &h, sizeof(h));
	f->ram[BUF + 0x80] = 0xaa;
	desc(f, 0, BUF, sizeof(h), VRING_DESC_F_NEXT, 1);
	if (len) {
		desc(f, 1, BUF + 0x100, len, VRING_DESC_F_NEXT | (data_in ? VRING_DESC_F_WRITE : 0),
		     2);
		desc(f, 2, BUF + 0x80, 1, VRING_DESC_F_WRITE, 0);
	} else {
		desc(f, 1, BUF + 0x80, 1, VRING_DESC_F_WRITE, 0);
	}
	assert_true(submit(f, 0));
	return f->ram[BUF + 0x80];
}

static void blk_read_write(void **state)
{
	struct fix *f = *state;
	uint8_t expect[1024], got[512];
	int fd;

	assert_int_equal(rd(f, 0x2000, 4), 2048); /* capacity in sectors */
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 3, 1024, true), VIRTIO_BLK_S_OK);
	memset(expect, 3, 512);
	memset(expect + 512, 4, 512);
	assert_memory_equal(f->ram + BUF + 0x100, expect, 1024);
	assert_int_equal(*(uint32_t *)(f->ram + USED + 8), 1025);
	memset(f->ram + BUF + 0x100, 0x5a, 512);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_OUT, 7, 512, false), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
	fd = open(f->disk, O_RDONLY);
	assert_int_equal(pread(fd, got, 512, 7 * 512), 512);
	close(fd);
	memset(expect, 0x5a, 512);
	assert_memory_equal(got, expect, 512);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_GET_ID, 0, 20, true), VIRTIO_BLK_S_OK);
	assert_string_equal((char *)f->ram + BUF + 0x100, "SER42");
	/* past the end, straddling the end, not a sector multiple, unknown type */
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 2048, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 2047, 1024, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, UINT64_MAX / 256, 512, true),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 0, 100, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_req(f, 99, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
	assert_false(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Data scattered over descriptors of odd sizes, the header sharing its descriptor with the
 * first data bytes on a write and the status byte sharing one with the last on a read: the
 * bytes land where the chain says, on raw (one pwritev/preadv) and qcow2 (gathered). */
static void blk_scatter(void **state)
{
	struct fix *f = *state;
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 10};
	uint8_t data[2048], got[2048];
	struct bdev *bs;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	memcpy(f->ram + BUF, &h, sizeof(h));
	memcpy(f->ram + BUF + sizeof(h), data, 512);
	memcpy(f->ram + BUF + 0x1000, data + 512, 1024);
	memcpy(f->ram + BUF + 0x3000, data + 1536, 512);
	f->ram[BUF + 0x4000] = 0xaa;
	desc(f, 0, BUF, sizeof(h) + 512, VRING_DESC_F_NEXT, 1);
	desc(f, 1, BUF + 0x1000, 1024, VRING_DESC_F_NEXT, 2);
	desc(f, 2, BUF + 0x3000, 512, VRING_DESC_F_NEXT, 3);
	desc(f, 3, BUF + 0x4000, 1, VRING_DESC_F_WRITE, 0);
	assert_true(submit(f, 0));
	assert_int_equal(f->ram[BUF + 0x4000], VIRTIO_BLK_S_OK);

	h.type = VIRTIO_BLK_T_IN;
	memcpy(f->ram + BUF, &h, sizeof(h));
	memset(f->ram + BUF + 0x5000, 0xee, 0x2000);
	desc(f, 0, BUF, sizeof(h), VRING_DESC_F_NEXT, 1);
	desc(f, 1, BUF + 0x5000, 700, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(f, 2, BUF + 0x6000, 1348 + 1, VRING_DESC_F_WRITE, 0);
	assert_true(submit(f, 0));
	assert_int_equal(f->ram[BUF + 0x6000 + 1348], VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + BUF + 0x5000, data, 700);
	assert_memory_equal(f->ram + BUF + 0x6000, data + 700, 1348);
	assert_int_equal(f->ram[BUF + 0x5000 + 700], 0xee);

	/* and the image holds them, with the neighbours untouched */
	virtio_blk_destroy(f->d);
	f->d = NULL;
	assert_int_equal(bdev_open(&bs, f->disk, NULL, 0), 0);
	assert_int_equal(bdev_read(bs, 10 * 512, got, sizeof(got)), 0);
	assert_memory_equal(got, data, sizeof(data));
	assert_int_equal(bdev_read(bs, 9 * 512, got, 512), 0);
	assert_int_equal(got[0], 9);
	assert_int_equal(got[511], 9);
	assert_int_equal(bdev_read(bs, 14 * 512, got, 512), 0);
	assert_int_equal(got[0], 14);
	bdev_close(bs);
}

static void blk_readonly(void **state)
{
	struct fix *f = *state;

	wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	assert_true(rd(f, VIRTIO_PCI_COMMON_DF, 4) & (1u << VIRTIO_BLK_F_RO));
	memset(f->ram + BUF + 0x100, 0x77, 512);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_OUT, 1, 512, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_req(f, VIRTIO_BLK_T_IN, 1, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(f->ram[BUF + 0x100], 1);
}

static void blk_no_status_byte(void **state)
{
	struct fix *f = *state;
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN};

	memcpy(f->ram + BUF, &h, sizeof(h));
	desc(f, 0, BUF, sizeof(h), 0, 0); /* no writable status byte at all */
	assert_false(submit(f, 0));
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* The command line parses the options (tests/unit/test_cli_run_devices.c); the default MAC is
 * the device's. */
static void default_mac(void **state)
{
	uint8_t m1[6], m2[6];
	(void)state;

	virtio_net_default_mac("vm1", 0, m1);
	virtio_net_default_mac("vm1", 0, m2);
	assert_memory_equal(m1, m2, 6);
	virtio_net_default_mac("vm2", 0, m2);
	assert_memory_not_equal(m1, m2, 6);
	assert_int_equal(m1[0] & 3, 2); /* unicast, locally administered */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(config_space, setup_rng, teardown),
	    cmocka_unit_test_setup_teardown(feature_negotiation, setup_rng, teardown),
	    cmocka_unit_test_setup_teardown(pio_notify, setup_rng, teardown),
	    cmocka_unit_test_setup_teardown(queue_frozen_and_rng_works, setup_rng, teardown),
	    cmocka_unit_test_setup_teardown(malformed_chain_needs_reset, setup_rng, teardown),
	    cmocka_unit_test_setup_teardown(bad_ring_address, setup_rng, teardown),
	    cmocka_unit_test_setup_teardown(blk_read_write, setup_blk, teardown),
	    cmocka_unit_test_setup_teardown(blk_scatter, setup_blk, teardown),
	    cmocka_unit_test_setup_teardown(blk_scatter, setup_blk_qcow2, teardown),
	    cmocka_unit_test_setup_teardown(blk_readonly, setup_blk_ro, teardown),
	    cmocka_unit_test_setup_teardown(blk_no_status_byte, setup_blk, teardown),
	    cmocka_unit_test(default_mac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
