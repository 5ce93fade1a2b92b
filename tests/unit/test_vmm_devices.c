/* Device logic without KVM: the bus, the UART as Linux probes it, the panic watch, the console
 * escapes, the PCI host bridge, CPUID topology and the PVM detection. */
#include "vmm/bus.h"
#include "vmm/console.h"
#include "vmm/cpuid.h"
#include "vmm/kvm.h"
#include "vmm/pci.h"
#include "vmm/serial.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_bus_overlap_and_default(void **state)
{
	static const struct bus_ops none = {NULL, NULL};
	struct bus b = {0};

	assert_int_equal(bus_add(&b, 0x3f8, 8, &none, NULL), 0);
	assert_int_equal(bus_add(&b, 0x3ff, 1, &none, NULL), -EEXIST);
	assert_int_equal(bus_add(&b, ~0ull, 2, &none, NULL), -EINVAL);
	assert_int_equal(bus_read(&b, 0x70, 1), 0xff);
	assert_int_equal(bus_read(&b, 0x70, 4), 0xffffffffu);
	assert_int_equal(bus_write(&b, 0x70, 1, 0), 0);
	assert_int_equal(bus_write(&b, 0x3fe, 4, 0), 0); /* straddles the end */
}

static void test_uart_probe(void **state)
{
	struct bus b = {0};
	struct serial s;
	int p[2];
	char c[8];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(serial_init(&s, &b, p[1], -1, NULL), 0);
	/* IER keeps its low nibble */
	bus_write(&b, 0x3f9, 1, 0xff);
	assert_int_equal(bus_read(&b, 0x3f9, 1), 0x0f);
	bus_write(&b, 0x3f9, 1, 0);
	/* loopback: MSR mirrors MCR */
	bus_write(&b, 0x3fc, 1, 0x1a);
	assert_int_equal(bus_read(&b, 0x3fe, 1) & 0xf0, 0x90);
	bus_write(&b, 0x3f8, 1, 'L'); /* loops back, not out */
	assert_int_equal(bus_read(&b, 0x3fd, 1) & 1, 1);
	assert_int_equal(bus_read(&b, 0x3f8, 1), 'L');
	bus_write(&b, 0x3fc, 1, 0x0b);
	/* FIFO enabled: IIR says 16550A */
	bus_write(&b, 0x3fa, 1, 0x07);
	assert_int_equal(bus_read(&b, 0x3fa, 1) & 0xc0, 0xc0);
	/* THRE interrupt: raised when enabled, acknowledged by reading IIR */
	bus_write(&b, 0x3f9, 1, 0x02);
	assert_int_equal(bus_read(&b, 0x3fa, 1) & 0x0f, 0x02);
	assert_int_equal(bus_read(&b, 0x3fa, 1) & 0x0f, 0x01);
	bus_write(&b, 0x3f8, 1, 'A');
	assert_int_equal(bus_read(&b, 0x3fa, 1) & 0x0f, 0x02);
	assert_int_equal(read(p[0], c, sizeof(c)), 1);
	assert_int_equal(c[0], 'A');
	/* input: data ready and RX interrupt; overflow is bounded */
	bus_write(&b, 0x3f9, 1, 0x01);
	assert_int_equal(serial_rx(&s, (const uint8_t *)"hi", 2), 2);
	assert_int_equal(bus_read(&b, 0x3fa, 1) & 0x0f, 0x04);
	assert_int_equal(bus_read(&b, 0x3f8, 1), 'h');
	assert_int_equal(bus_read(&b, 0x3f8, 1), 'i');
	assert_int_equal(bus_read(&b, 0x3fd, 1) & 1, 0);
	uint8_t big[SERIAL_RX_SIZE * 2] = {0};
	assert_int_equal(serial_rx(&s, big, sizeof(big)), SERIAL_RX_SIZE);
	assert_int_equal(serial_rx_room(&s), 0);
	close(p[0]);
	close(p[1]);
}

static void test_panic_watch(void **state)
{
	struct serial s = {0};
	const char *text = "x Kernel Kernel panic - not syncing: Fatal exception\nmore";
	int at = -1;

	for (int i = 0; text[i]; i++)
		if (serial_watch_panic(&s, text[i]) && at < 0)
			at = i;
	assert_int_equal(at, strchr(text, '\n') - text);
	memset(&s, 0, sizeof(s));
	for (const char *t = "Kernel panic? no\n"; *t; t++)
		assert_int_equal(serial_watch_panic(&s, *t), 0);
}

static void test_console_escapes(void **state)
{
	struct console c = {.in_fd = -1};
	uint8_t b[16];
	bool quit = false;

	memcpy(b,
	       "ab\x01\x01"
	       "c\x01q",
	       7);
	assert_int_equal(console_filter(&c, b, 7, &quit), 4);
	assert_memory_equal(b,
			    "ab\x01"
			    "c",
			    4);
	assert_false(quit);
	memcpy(b, "z\x01", 2); /* escape split across reads */
	assert_int_equal(console_filter(&c, b, 2, &quit), 1);
	memcpy(b, "xyz", 3);
	assert_int_equal(console_filter(&c, b, 3, &quit), 0);
	assert_true(quit);
}

static void test_pci_host_bridge_only(void **state)
{
	struct bus io = {0}, mmio = {0};
	struct pci_host h;

	assert_int_equal(pci_host_init(&h, &io, &mmio), 0);
	bus_write(&io, 0xcf8, 4, 0x80000000);
	assert_int_equal(bus_read(&io, 0xcf8, 4), 0x80000000);
	assert_int_equal(bus_read(&io, 0xcfc, 4), 0x00081b36);
	assert_int_equal(bus_read(&io, 0xcfe, 2), 0x0008);
	bus_write(&io, 0xcf8, 4, 0x80000008);
	assert_int_equal(bus_read(&io, 0xcfc, 4) >> 8, 0x060000);
	bus_write(&io, 0xcf8, 4, 0x80000800); /* 00:01.0 */
	assert_int_equal(bus_read(&io, 0xcfc, 4), 0xffffffffu);
	assert_int_equal(bus_read(&mmio, PCI_ECAM_BASE, 2), 0x1b36);
	assert_int_equal(bus_read(&mmio, PCI_ECAM_BASE + (1 << 15), 4), 0xffffffffu);
	assert_int_equal(bus_read(&mmio, PCI_ECAM_BASE + PCI_ECAM_SIZE, 4), 0xffffffffu);
}

static void test_cpuid_topology(void **state)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 4 * sizeof(c->entries[0]));

	c->nent = 4;
	c->entries[0] = (struct kvm_cpuid_entry2){.function = 1, .ebx = 0xffff0800};
	c->entries[1] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 0};
	c->entries[2] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 1};
	c->entries[3] = (struct kvm_cpuid_entry2){.function = 0x80000008, .ecx = 0xf0ff};
	cpuid_set_topology(c, 3, 4);
	assert_int_equal(c->entries[0].ebx, 0x03040800);
	assert_true(c->entries[0].edx & (1u << 28));
	assert_int_equal(c->entries[1].ebx, 1);
	assert_int_equal(c->entries[1].edx, 3);
	assert_int_equal(c->entries[2].ebx, 4);
	assert_int_equal(c->entries[2].eax, 2);
	assert_int_equal(c->entries[2].ecx, 0x201);
	assert_int_equal(c->entries[3].ecx & 0xff, 3);
	assert_int_equal((c->entries[3].ecx >> 12) & 0xf, 2);
	cpuid_set_topology(c, 0, 1);
	assert_false(c->entries[0].edx & (1u << 28));
	cpuid_set_tsc_deadline(c);
	assert_true(c->entries[0].ecx & (1u << 24));
	free(c);
}

static void test_host_kind(void **state)
{
	char dir[] = "/tmp/ligero-kvmXXXXXX", path[256];
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/cpuinfo", dir);
	f = fopen(path, "w");
	fputs("processor : 0\nflags : fpu vme svm lm\n", f);
	fclose(f);
	assert_int_equal(kvm_host_kind(dir, path), KVM_HOST_OK);
	f = fopen(path, "w");
	fputs("processor : 0\nflags : fpu vme lm hypervisor\n", f);
	fclose(f);
	assert_int_equal(kvm_host_kind(dir, path), KVM_HOST_NO_HWVIRT);
	snprintf(path, sizeof(path), "%s/kvm_pvm", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/cpuinfo", dir);
	assert_int_equal(kvm_host_kind(dir, path), KVM_HOST_PVM);
	unlink(path);
	snprintf(path, sizeof(path), "%s/kvm_pvm", dir);
	rmdir(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bus_overlap_and_default),
	    cmocka_unit_test(test_uart_probe),
	    cmocka_unit_test(test_panic_watch),
	    cmocka_unit_test(test_console_escapes),
	    cmocka_unit_test(test_pci_host_bridge_only),
	    cmocka_unit_test(test_cpuid_topology),
	    cmocka_unit_test(test_host_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
