/* vCPUs. The boot vCPU starts in long mode at the kernel's 64-bit entry with the zero page in
 * RSI; the others wait in KVM for the INIT/SIPI that Linux sends them. */
#include "vmm/vcpu.h"
#include "vmm/boot.h"
#include "vmm/cpuid.h"
#include "vmm/vm_priv.h"
#include "util/error.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_EXTINT 0x700
#define APIC_MODE_NMI	 0x400

static const struct {
	uint32_t index;
	uint64_t value;
} boot_msrs[] = {
    {MSR_IA32_SYSENTER_CS, 0},
    {MSR_IA32_SYSENTER_ESP, 0},
    {MSR_IA32_SYSENTER_EIP, 0},
    {MSR_STAR, 0},
    {MSR_LSTAR, 0},
    {MSR_CSTAR, 0},
    {MSR_SYSCALL_MASK, 0},
    {MSR_KERNEL_GS_BASE, 0},
    {MSR_IA32_MISC_ENABLE, 1},		/* fast string operations */
    {MSR_MTRR_DEF_TYPE, (1 << 11) | 6}, /* MTRRs on, default write-back */
};

#define NMSRS (sizeof(boot_msrs) / sizeof(boot_msrs[0]))

static int vcpu_set_msrs(struct vcpu *v)
{
	union {
		struct kvm_msrs h;
		uint8_t bytes[sizeof(struct kvm_msrs) + NMSRS * sizeof(struct kvm_msr_entry)];
	} m;
	int n;

	memset(&m, 0, sizeof(m));
	m.h.nmsrs = NMSRS;
	for (size_t i = 0; i < NMSRS; i++) {
		m.h.entries[i].index = boot_msrs[i].index;
		m.h.entries[i].data = boot_msrs[i].value;
	}
	n = ioctl(v->fd, KVM_SET_MSRS, &m);
	if (n < 0)
		return err_sys(errno, "vCPU %u: KVM_SET_MSRS", v->id);
	if ((size_t)n < NMSRS)
		return err_set(EINVAL, "vCPU %u: KVM refused MSR %#x", v->id, boot_msrs[n].index);
	return 0;
}

static int vcpu_set_lapic(struct vcpu *v)
{
	struct kvm_lapic_state l;
	uint32_t *lvt0 = (uint32_t *)(l.regs + APIC_LVT0), *lvt1 = (uint32_t *)(l.regs + APIC_LVT1);

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return err_sys(errno, "vCPU %u: KVM_GET_LAPIC", v->id);
	/* Through-the-8259 interrupts on LINT0 and NMI on LINT1, as a PC firmware leaves them. */
	*lvt0 = (*lvt0 & ~0x10700u) | APIC_MODE_EXTINT;
	*lvt1 = (*lvt1 & ~0x10700u) | APIC_MODE_NMI;
	if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
		return err_sys(errno, "vCPU %u: KVM_SET_LAPIC", v->id);
	return 0;
}

int vcpu_create(struct vcpu *v, int vm_fd, unsigned id, unsigned ncpus, size_t run_size,
		struct kvm_cpuid2 *cpuid)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	int ret;

	v->id = id;
	v->run_size = run_size;
	v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return err_sys(errno, "KVM_CREATE_VCPU %u", id);
	v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return err_sys(errno, "vCPU %u: cannot map kvm_run", id);
	}
	cpuid_set_topology(cpuid, id, ncpus);
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0)
		return err_sys(errno, "vCPU %u: KVM_SET_CPUID2", id);
	if ((ret = vcpu_set_msrs(v)) < 0)
		return ret;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return err_sys(errno, "vCPU %u: KVM_SET_FPU", id);
	return vcpu_set_lapic(v);
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64)
{
	*s = (struct kvm_segment){
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = sel,
	    .type = type,
	    .present = 1,
	    .s = 1,
	    .db = !code64,
	    .l = code64,
	    .g = 1,
	};
}

int vcpu_setup_boot(struct vcpu *v)
{
	struct kvm_sregs s;
	struct kvm_regs r = {
	    .rflags = 2,
	    .rip = BOOT_KERNEL_ADDR + 0x200, /* the 64-bit entry, startup_64 */
	    .rsi = BOOT_ZERO_PAGE,
	    .rsp = BOOT_STACK,
	    .rbp = BOOT_STACK,
	};

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return err_sys(errno, "KVM_GET_SREGS");
	seg(&s.cs, 0x10, 0xb, 1);
	seg(&s.ds, 0x18, 0x3, 0);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.tr = (struct kvm_segment){.limit = 0x67, .type = 0xb, .present = 1};
	s.gdt.base = BOOT_GDT_ADDR;
	s.gdt.limit = 4 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = 0x80000031; /* PG, NE, ET, PE */
	s.cr3 = BOOT_PML4;
	s.cr4 = 0x20;	/* PAE */
	s.efer = 0x500; /* LMA, LME */
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return err_sys(errno, "KVM_SET_SREGS");
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return err_sys(errno, "KVM_SET_REGS");
	return 0;
}

static int vcpu_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t off = run->io.data_offset, size = run->io.size, count = run->io.count;
	uint8_t *p;

	if ((size != 1 && size != 2 && size != 4) || off > v->run_size ||
	    count > (v->run_size - off) / size)
		return -EINVAL;
	p = (uint8_t *)run + off;
	for (uint64_t i = 0; i < count; i++, p += size) {
		uint64_t val = 0;
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&val, p, size);
			bus_write(v->io, run->io.port, size, val);
		} else {
			val = bus_read(v->io, run->io.port, size);
			memcpy(p, &val, size);
		}
	}
	return 0;
}

static int vcpu_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;
	uint64_t val = 0;

	if (len == 0 || len > 8)
		return -EINVAL;
	if (run->mmio.is_write) {
		memcpy(&val, run->mmio.data, len);
		bus_write(v->mmio, run->mmio.phys_addr, len, val);
	} else {
		val = bus_read(v->mmio, run->mmio.phys_addr, len);
		memcpy(run->mmio.data, &val, len);
	}
	return 0;
}

static void vcpu_count_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	if (run->exit_reason == KVM_EXIT_IO)
		exitstat_count(v->stat, EXITSTAT_PIO, run->io.port,
			       run->io.direction == KVM_EXIT_IO_OUT);
	else if (run->exit_reason == KVM_EXIT_MMIO)
		exitstat_count(v->stat, EXITSTAT_MMIO, run->mmio.phys_addr, run->mmio.is_write);
	else
		exitstat_count(v->stat, EXITSTAT_OTHER, run->exit_reason, 0);
}

/* Handle one exit; returns 0 to continue, or stops the VM and returns 1. */
static int vcpu_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	v->exits++;
	if (v->stat)
		vcpu_count_exit(v);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (vcpu_io(v) == 0)
			return 0;
		vm_fail(v->vm, "vCPU %u: malformed port I/O exit (port %#x size %u count %u)",
			v->id, run->io.port, run->io.size, run->io.count);
		return 1;
	case KVM_EXIT_MMIO:
		if (vcpu_mmio(v) == 0)
			return 0;
		vm_fail(v->vm, "vCPU %u: malformed MMIO exit at %#llx", v->id,
			(unsigned long long)run->mmio.phys_addr);
		return 1;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		return 0;
	case KVM_EXIT_SHUTDOWN:
		vm_request_stop(v->vm, VM_EXIT_TRIPLE_FAULT);
		return 1;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_request_stop(v->vm, run->system_event.type == KVM_SYSTEM_EVENT_RESET
					   ? VM_EXIT_RESET
					   : VM_EXIT_POWEROFF);
		return 1;
	case KVM_EXIT_FAIL_ENTRY:
		vm_fail(v->vm, "vCPU %u: KVM could not enter the guest (hardware reason %#llx)",
			v->id, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return 1;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_fail(v->vm, "vCPU %u: KVM internal error, suberror %u", v->id,
			run->internal.suberror);
		return 1;
	default:
		vm_fail(v->vm, "vCPU %u: unexpected KVM exit reason %u", v->id, run->exit_reason);
		return 1;
	}
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];

	__atomic_store_n(&v->tid, (int)gettid(), __ATOMIC_RELEASE);
	snprintf(name, sizeof(name), "CPU %u/KVM", v->id); /* QEMU's thread name */
	pthread_setname_np(pthread_self(), name);
	if (v->id == 0)
		exitstat_mark(v->stat, "boot vCPU enters the guest");
	while (!vm_stopping(v->vm)) {
		if (vm_pause_requested(v->vm)) {
			vm_vcpu_park(v->vm, v);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				guestprof_sample(v->prof, v->id, v->fd); /* LIGERO_PROFILE */
				continue;
			}
			vm_fail(v->vm, "vCPU %u: KVM_RUN: %s", v->id, strerror(errno));
			break;
		}
		if (vcpu_exit(v))
			break;
	}
	vm_vcpu_exited(v->vm);
	return NULL;
}

void vcpu_kick(struct vcpu *v)
{
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->started)
		pthread_kill(v->thread, SIGUSR1);
}

/* The highest vector set in one of the LAPIC's 256-bit registers (ISR at 0x100, IRR at 0x200),
 * or -1. */
static int lapic_top(const struct kvm_lapic_state *l, unsigned reg)
{
	for (int i = 7; i >= 0; i--) {
		uint32_t w;
		memcpy(&w, l->regs + reg + i * 16, 4);
		if (w)
			return i * 32 + 31 - __builtin_clz(w);
	}
	return -1;
}

void vcpu_print_state(const struct vcpu *v, FILE *f)
{
	struct kvm_regs r;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	struct kvm_lapic_state l;
	uint32_t tpr = 0, timer = 0, tmcct = 0;

	if (v->fd < 0 || ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &l) < 0) {
		fprintf(f, "ligero: vCPU %u: state unavailable: %s\n", v->id, strerror(errno));
		return;
	}
	memcpy(&tpr, l.regs + 0x80, 4);
	memcpy(&timer, l.regs + 0x320, 4);
	memcpy(&tmcct, l.regs + 0x390, 4);
	fprintf(f,
		"ligero: vCPU %u: %lu exits, rip %#llx rsp %#llx rflags %#llx mp_state %u "
		"irq-pending %u/%u nmi %u/%u shadow %u exception %u/%u isr %d irr %d tpr %#x "
		"lvt-timer %#x timer-count %u\n",
		v->id, v->exits, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		(unsigned long long)r.rflags, mp.mp_state, ev.interrupt.injected, ev.interrupt.nr,
		ev.nmi.injected, ev.nmi.pending, ev.interrupt.shadow, ev.exception.injected,
		ev.exception.nr, lapic_top(&l, 0x100), lapic_top(&l, 0x200), tpr, timer, tmcct);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}
