/*
 * virtio-balloon driven as Linux's virtio_balloon drives it, without KVM: registers through the
 * PCI bus, rings in a fake guest RAM that is a private anonymous mapping (as vmm/memory.c maps
 * guest RAM), kicks through the notify window. What the device did to guest memory is checked
 * with the kernel's own view: mincore(2) says which pages are still resident, and reads show
 * what the guest would find there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/pci_bus.h"
#include "vmm/virtio/devices.h"
#include "pci_mmio.h"

#define RAM_SIZE (8ull << 20)
#define ECAM	 0xe0000000ull
#define MMIO	 0xc0000000ull
#define RING(q)	 (0x10000ull + (q)*0x4000ull) /* desc, avail +0x1000, used +0x2000 */
#define PFNS	 0x40000ull		      /* an inflate request's page numbers */
#define DATA	 (2ull << 20)		      /* the pages the tests report: 2 MiB .. 8 MiB */
#define QSZ	 16
#define PAGE	 4096ull
/* A hang guard, not a deadline: the device thread answers in microseconds when it runs. */
#define WAIT_NS (60ll * 1000000000)

struct fix {
	uint8_t *ram;
	struct virtio_mem mem;
	struct kvm_irq irq;
	struct pci_bus bus;
	struct virtio_dev *d;
	uint64_t bar;
	unsigned slot;
	uint16_t avail_idx[4];
};

PCI_MMIO_ACCESSORS(struct fix, ECAM)

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	f->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->ram != MAP_FAILED);
	f->mem.nregions = 1;
	f->mem.r[0] = (struct virtio_mem_region){0, RAM_SIZE, f->ram};
	kvm_irq_init(&f->irq, -1);
	pci_bus_init(&f->bus, ECAM, MMIO, 0x10000000);
	assert_int_equal(virtio_balloon_create(&f->d, 0, &f->mem, &f->irq), 0);
	int slot = pci_bus_add(&f->bus, &f->d->pci);
	assert_true(slot > 0);
	f->slot = (unsigned)slot;
	f->bar = cfg_rd(f, 0x10, 4) & ~0xfu;
	memset(f->ram + DATA, 0xaa, RAM_SIZE - DATA);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	virtio_balloon_destroy(f->d);
	pci_bus_destroy(&f->bus);
	munmap(f->ram, RAM_SIZE);
	free(f);
	return 0;
}

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

static void setup_queue(struct fix *f, unsigned q)
{
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSZ);
	wr(f, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)RING(q));
	wr(f, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)(RING(q) + 0x1000));
	wr(f, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)(RING(q) + 0x2000));
	wr(f, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

/* Feature negotiation, nq queues, then (optionally) poison_val, then DRIVER_OK: the order of
 * Linux's virtballoon_probe. */
static void start(struct fix *f, uint64_t features, unsigned nq, bool poison, uint32_t pv)
{
	features |= 1ull << VIRTIO_F_VERSION_1;
	assert_true(negotiate(f, features) & VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < nq; q++)
		setup_queue(f, q);
	if (poison)
		wr(f, VIRTIO_DEVCFG_OFF + offsetof(struct virtio_balloon_config, poison_val), 4,
		   pv);
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	       VIRTIO_CONFIG_S_DRIVER_OK);
}

static void desc(struct fix *f, unsigned q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = f->ram + RING(q) + 16 * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static uint16_t used_idx(struct fix *f, unsigned q)
{
	return __atomic_load_n((uint16_t *)(f->ram + RING(q) + 0x2000 + 2), __ATOMIC_ACQUIRE);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Publish chain `head` on queue q, kick it, wait until the device used it. */
static bool submit(struct fix *f, unsigned q, uint16_t head)
{
	uint16_t before = used_idx(f, q);
	uint8_t *avail = f->ram + RING(q) + 0x1000;
	int64_t until = now_ns() + WAIT_NS;

	memcpy(avail + 4 + 2 * (f->avail_idx[q] % QSZ), &head, 2);
	f->avail_idx[q]++;
	__atomic_store_n((uint16_t *)(avail + 2), f->avail_idx[q], __ATOMIC_RELEASE);
	wr(f, VIRTIO_NOTIFY_OFF + q * VIRTIO_NOTIFY_MULT, 2, q);
	while (used_idx(f, q) == before && now_ns() < until)
		usleep(200);
	return used_idx(f, q) != before;
}

/* Resident pages of [gpa, gpa + len), by mincore(2). */
static size_t resident(struct fix *f, uint64_t gpa, uint64_t len)
{
	unsigned char vec[RAM_SIZE / PAGE];
	size_t n = 0;

	assert_int_equal(mincore(f->ram + gpa, len, vec), 0);
	for (uint64_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

static bool all(const uint8_t *p, uint64_t len, uint8_t v)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* One report of three buffers: 2 MiB at 2 MiB, 1 MiB at 5 MiB, and 3 pages + 100 bytes starting
 * 100 bytes into the page at 7 MiB (only its 2 whole pages inside may go). */
static void report_three(struct fix *f, unsigned q)
{
	desc(f, q, 0, DATA, 2 << 20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(f, q, 1, 5ull << 20, 1 << 20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	desc(f, q, 2, (7ull << 20) + 100, 3 * PAGE, VRING_DESC_F_WRITE, 0);
	assert_true(submit(f, q, 0));
}

static void check_three_dropped(struct fix *f)
{
	assert_int_equal(resident(f, DATA, 2 << 20), 0);
	assert_int_equal(resident(f, 5ull << 20, 1 << 20), 0);
	assert_int_equal(resident(f, (7ull << 20) + PAGE, 2 * PAGE), 0);
	/* what was not reported stays, to the byte: the partial pages at both ends of the last
	 * buffer, the memory between the buffers */
	assert_int_equal(resident(f, 4ull << 20, 1 << 20), 256);
	assert_int_equal(resident(f, 6ull << 20, 1 << 20), 256);
	assert_true(all(f->ram + (7ull << 20), PAGE, 0xaa));
	assert_true(all(f->ram + (7ull << 20) + 3 * PAGE, PAGE, 0xaa));
	assert_true(all(f->ram + (4ull << 20), 1 << 20, 0xaa));
	assert_true(all(f->ram + (6ull << 20), 1 << 20, 0xaa));
	/* a dropped page reads as zeros: what the guest may find in a reported page */
	assert_true(all(f->ram + DATA, 2 << 20, 0));
	assert_true(all(f->ram + (7ull << 20) + PAGE, 2 * PAGE, 0));
}

/* Linux's layout: STATS_VQ and PAGE_REPORTING negotiated, reporting_vq is queue 3. */
static void report_drops_pages(void **state)
{
	struct fix *f = *state;
	uint32_t host_lo;

	wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	host_lo = (uint32_t)rd(f, VIRTIO_PCI_COMMON_DF, 4);
	assert_true(host_lo & (1u << VIRTIO_BALLOON_F_REPORTING));
	assert_true(host_lo & (1u << VIRTIO_BALLOON_F_PAGE_POISON));
	start(f, 1ull << VIRTIO_BALLOON_F_STATS_VQ | 1ull << VIRTIO_BALLOON_F_REPORTING, 4, false,
	      0);
	assert_int_equal(resident(f, DATA, RAM_SIZE - DATA), (RAM_SIZE - DATA) / PAGE);
	report_three(f, 3);
	check_three_dropped(f);
	/* the guest reuses the pages once the report is acknowledged */
	memset(f->ram + DATA, 0x55, PAGE);
	assert_int_equal(f->ram[DATA + PAGE - 1], 0x55);
	assert_false(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* A driver that declines STATS_VQ numbers its reporting queue 2 (virtio 1.2, 5.5.2). Treated as
 * a statsq, the report would be held forever and the guest's reporting would stall. */
static void report_queue_without_stats(void **state)
{
	struct fix *f = *state;

	start(f, 1ull << VIRTIO_BALLOON_F_REPORTING, 3, false, 0);
	report_three(f, 2);
	check_three_dropped(f);
}

/* PAGE_POISON with a non-zero poison_val: the guest expects reported pages to keep it, so they
 * are acknowledged and left alone. poison_val 0 (init_on_free): zeros are right, pages go. */
static void report_keeps_poisoned_pages(void **state)
{
	struct fix *f = *state;

	start(f,
	      1ull << VIRTIO_BALLOON_F_STATS_VQ | 1ull << VIRTIO_BALLOON_F_PAGE_POISON |
		  1ull << VIRTIO_BALLOON_F_REPORTING,
	      4, true, 0xaaaaaaaa);
	report_three(f, 3);
	assert_int_equal(resident(f, DATA, RAM_SIZE - DATA), (RAM_SIZE - DATA) / PAGE);
	assert_true(all(f->ram + DATA, RAM_SIZE - DATA, 0xaa));
}

static void report_poison_zero_drops(void **state)
{
	struct fix *f = *state;

	start(f,
	      1ull << VIRTIO_BALLOON_F_STATS_VQ | 1ull << VIRTIO_BALLOON_F_PAGE_POISON |
		  1ull << VIRTIO_BALLOON_F_REPORTING,
	      4, true, 0);
	report_three(f, 3);
	check_three_dropped(f);
}

/* A buffer that runs past the end of RAM: the queue code refuses the chain, the device needs a
 * reset, and nothing at all is dropped (not even the valid buffer before it). */
static void report_outside_ram_breaks_device(void **state)
{
	struct fix *f = *state;
	uint8_t *avail = f->ram + RING(3) + 0x1000;
	uint16_t head = 0;

	start(f, 1ull << VIRTIO_BALLOON_F_STATS_VQ | 1ull << VIRTIO_BALLOON_F_REPORTING, 4, false,
	      0);
	desc(f, 3, 0, DATA, 1 << 20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(f, 3, 1, RAM_SIZE - PAGE, 2 * PAGE, VRING_DESC_F_WRITE, 0);
	memcpy(avail + 4, &head, 2);
	__atomic_store_n((uint16_t *)(avail + 2), (uint16_t)1, __ATOMIC_RELEASE);
	wr(f, VIRTIO_NOTIFY_OFF + 3 * VIRTIO_NOTIFY_MULT, 2, 3);
	int64_t until = now_ns() + WAIT_NS;
	while (!(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET) &&
	       now_ns() < until)
		usleep(200);
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(used_idx(f, 3), 0);
	assert_int_equal(resident(f, DATA, RAM_SIZE - DATA), (RAM_SIZE - DATA) / PAGE);
}

/* Inflate: page numbers inside RAM are dropped, one past the end is skipped. */
static void inflate_drops_valid_pfns(void **state)
{
	struct fix *f = *state;
	uint32_t pfns[] = {DATA / PAGE, DATA / PAGE + 1, RAM_SIZE / PAGE, 0xffffffffu,
			   (6ull << 20) / PAGE};

	start(f, 1ull << VIRTIO_BALLOON_F_STATS_VQ | 1ull << VIRTIO_BALLOON_F_REPORTING, 4, false,
	      0);
	memcpy(f->ram + PFNS, pfns, sizeof(pfns));
	desc(f, 0, 0, PFNS, sizeof(pfns), 0, 0);
	assert_true(submit(f, 0, 0));
	assert_int_equal(resident(f, DATA, 2 * PAGE), 0);
	assert_int_equal(resident(f, 6ull << 20, PAGE), 0);
	assert_int_equal(resident(f, DATA + 2 * PAGE, PAGE), 1);
	assert_int_equal(resident(f, 3ull << 20, 3ull << 20), 3 * 256);
	assert_false(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(report_drops_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(report_queue_without_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(report_keeps_poisoned_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(report_poison_zero_drops, setup, teardown),
	    cmocka_unit_test_setup_teardown(report_outside_ram_breaks_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(inflate_drops_valid_pfns, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
