/* Boot protocol: setup header checks, e820 map, command line; memory layout and bounds. */
#include "vmm/boot.h"
#include "vmm/memory.h"
#include "vmm/pci.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static uint8_t hdr[0x400];

static void make_header(uint16_t version)
{
	memset(hdr, 0, sizeof(hdr));
	hdr[0x1f1] = 27; /* setup_sects */
	hdr[0x1fe] = 0x55;
	hdr[0x1ff] = 0xaa;
	hdr[0x201] = 0x6a; /* header ends at 0x26c */
	memcpy(hdr + 0x202, "HdrS", 4);
	hdr[0x206] = version & 0xff;
	hdr[0x207] = version >> 8;
	hdr[0x211] = 0x01;			    /* LOADED_HIGH */
	hdr[0x236] = 0x01;			    /* XLF_KERNEL_64 */
	memcpy(hdr + 0x22c, "\xff\xff\xff\x7f", 4); /* initrd_addr_max */
	memcpy(hdr + 0x238, "\xff\x07\x00\x00", 4); /* cmdline_size 2047 */
	memcpy(hdr + 0x260, "\x00\x00\x00\x02", 4); /* init_size 32 MiB */
}

static void test_bzimage_accepts_modern_kernel(void **state)
{
	struct bzimage bz;

	make_header(0x020f);
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 8 << 20, &bz), 0);
	assert_int_equal(bz.setup_bytes, 28 * 512);
	assert_int_equal(bz.cmdline_size, 2047);
	assert_int_equal(bz.initrd_addr_max, 0x7fffffff);
	assert_int_equal(bz.init_size, 32 << 20);
}

static void test_bzimage_rejects(void **state)
{
	struct bzimage bz;

	make_header(0x020b); /* too old */
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 8 << 20, &bz), -ENOEXEC);
	make_header(0x020f);
	hdr[0x236] = 0; /* no 64-bit entry */
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 8 << 20, &bz), -ENOEXEC);
	make_header(0x020f);
	hdr[0x203] = 'x'; /* no HdrS */
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 8 << 20, &bz), -ENOEXEC);
	make_header(0x020f);
	assert_int_equal(bzimage_parse(hdr, 0x200, 8 << 20, &bz), -ENOEXEC);	/* truncated */
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 1000, &bz), -ENOEXEC); /* no kernel */
	make_header(0x020f);
	hdr[0x201] = 0x10; /* header too short for init_size */
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 8 << 20, &bz), -ENOEXEC);
	make_header(0x020f);
	memcpy(hdr + 0x260, "\x00\x10\x00\x00", 4); /* init_size smaller than the kernel */
	assert_int_equal(bzimage_parse(hdr, sizeof(hdr), 8 << 20, &bz), -ENOEXEC);
}

static void test_layout_and_hole(void **state)
{
	struct guest_mem m;
	struct e820_entry e[E820_MAX];
	unsigned n;
	uint64_t ram = 0;

	assert_int_equal(mem_layout(&m, 16 << 20), -EINVAL);
	assert_int_equal(mem_layout(&m, (256 << 20) + 1), -EINVAL);
	assert_int_equal(mem_layout(&m, 256 << 20), 0);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(mem_layout(&m, 5ull << 30), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.regions[0].size, MEM_HOLE_START);
	assert_int_equal(m.regions[1].gpa, 4ull << 30);
	assert_int_equal(m.regions[1].size, 2ull << 30);
	n = boot_e820(&m, e);
	for (unsigned i = 0; i < n; i++) {
		if (e[i].type == E820_RAM)
			ram += e[i].size;
		/* sorted, disjoint */
		if (i)
			assert_true(e[i].addr >= e[i - 1].addr + e[i - 1].size);
	}
	assert_int_equal(ram, (5ull << 30) - (BOOT_KERNEL_ADDR - BOOT_EBDA_START));
	assert_true(PCI_ECAM_BASE >= MEM_HOLE_START &&
		    PCI_ECAM_BASE + PCI_ECAM_SIZE <= MEM_HOLE_END);
}

static void test_mem_ptr_bounds(void **state)
{
	static uint8_t fake[1];
	struct guest_mem m;

	assert_int_equal(mem_layout(&m, 4ull << 30), 0);
	m.regions[0].host = fake; /* pointers are only compared, never used */
	m.regions[1].host = fake;
	assert_non_null(mem_ptr(&m, 0, 4096));
	assert_non_null(mem_ptr(&m, MEM_HOLE_START - 4096, 4096));
	assert_null(mem_ptr(&m, MEM_HOLE_START - 4096, 4097)); /* into the hole */
	assert_null(mem_ptr(&m, MEM_HOLE_START, 1));
	assert_non_null(mem_ptr(&m, MEM_HOLE_END, 1ull << 30));
	assert_null(mem_ptr(&m, MEM_HOLE_END, (1ull << 30) + 1));
	assert_null(mem_ptr(&m, ~0ull, 2)); /* wraps */
	assert_null(mem_ptr(&m, 4096, ~0ull));
}

/* A kernel and initrd given as buffers load exactly as the same bytes given as files. */
static void test_load_from_buffers(void **state)
{
	char kpath[] = "/tmp/test_vmm_boot_k.XXXXXX", ipath[] = "/tmp/test_vmm_boot_i.XXXXXX";
	size_t klen = 64 << 10, ilen = 10000;
	uint8_t *kernel = malloc(klen), *initrd = malloc(ilen), *zp1, *zp2, zeros[0x400] = {0};
	struct guest_mem m1, m2;
	int kfd = mkstemp(kpath), ifd = mkstemp(ipath);

	make_header(0x020f);
	for (size_t i = 0; i < klen; i++)
		kernel[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < ilen; i++)
		initrd[i] = (uint8_t)(i * 13 + 1);
	memcpy(kernel, hdr, sizeof(hdr));
	assert_true(kfd >= 0 && ifd >= 0);
	assert_int_equal(write(kfd, kernel, klen), (ssize_t)klen);
	assert_int_equal(write(ifd, initrd, ilen), (ssize_t)ilen);
	close(kfd);
	close(ifd);

	struct boot_file kf = {kpath, NULL, 0}, inf = {ipath, NULL, 0};
	struct boot_file kb = {"disk.img:2:/boot/vmlinuz", kernel, klen};
	struct boot_file ib = {"disk.img:2:/boot/initrd.img", initrd, ilen};
	assert_int_equal(boot_probe(&kf, &inf), 0);
	assert_int_equal(boot_probe(&kb, &ib), 0);
	assert_int_equal(mem_layout(&m1, 256 << 20), 0);
	assert_int_equal(mem_layout(&m2, 256 << 20), 0);
	assert_int_equal(mem_alloc(&m1), 0);
	assert_int_equal(mem_alloc(&m2), 0);
	assert_int_equal(boot_load(&m1, &kf, &inf, "quiet", 0xe0000), 0);
	assert_int_equal(boot_load(&m2, &kb, &ib, "quiet", 0xe0000), 0);
	zp1 = mem_ptr(&m1, BOOT_ZERO_PAGE, 4096);
	zp2 = mem_ptr(&m2, BOOT_ZERO_PAGE, 4096);
	assert_memory_equal(zp1, zp2, 4096);
	size_t setup = 28 * 512;
	assert_memory_equal(mem_ptr(&m2, BOOT_KERNEL_ADDR, klen - setup), kernel + setup,
			    klen - setup);
	assert_memory_equal(mem_ptr(&m1, BOOT_KERNEL_ADDR, klen - setup),
			    mem_ptr(&m2, BOOT_KERNEL_ADDR, klen - setup), klen - setup);
	uint32_t at = zp2[0x218] | zp2[0x219] << 8 | zp2[0x21a] << 16 | (uint32_t)zp2[0x21b] << 24;
	assert_int_equal(zp2[0x21c] | zp2[0x21d] << 8, ilen & 0xffff);
	assert_memory_equal(mem_ptr(&m2, at, ilen), initrd, ilen);
	assert_memory_equal(mem_ptr(&m1, BOOT_CMDLINE_ADDR, 64),
			    mem_ptr(&m2, BOOT_CMDLINE_ADDR, 64), 64);
	mem_unmap(&m1);
	mem_unmap(&m2);

	/* what bootdisk must catch before: no bzImage, an empty initrd */
	struct boot_file zk = {"zeros", zeros, sizeof(zeros)}, empty = {"empty", initrd, 0};
	assert_int_equal(boot_probe(&zk, NULL), -ENOEXEC);
	assert_int_equal(boot_probe(&kb, &empty), -EINVAL);
	unlink(kpath);
	unlink(ipath);
	free(kernel);
	free(initrd);
}

static void test_cmdline(void **state)
{
	char out[64];

	assert_int_equal(boot_cmdline("quiet", out, sizeof(out)), 0);
	assert_string_equal(out, BOOT_CMDLINE_PREFIX " console=ttyS0 quiet");
	assert_int_equal(boot_cmdline("console=hvc0", out, sizeof(out)), 0);
	assert_string_equal(out, BOOT_CMDLINE_PREFIX " console=hvc0");
	assert_int_equal(boot_cmdline(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, BOOT_CMDLINE_PREFIX " console=ttyS0");
	assert_int_equal(boot_cmdline("a-very-long-command-line-that-does-not-fit", out, 64),
			 -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bzimage_accepts_modern_kernel),
	    cmocka_unit_test(test_bzimage_rejects),
	    cmocka_unit_test(test_layout_and_hole),
	    cmocka_unit_test(test_mem_ptr_bounds),
	    cmocka_unit_test(test_cmdline),
	    cmocka_unit_test(test_load_from_buffers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
