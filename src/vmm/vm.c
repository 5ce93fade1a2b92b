/* A VM: KVM with the in-kernel irqchip and PIT, guest RAM, ACPI tables, the kernel, the few
 * devices, and one thread per vCPU. The calling thread of vm_run() runs the event loop: the
 * console's input and clients, the QMP socket, power button presses, and the stop request;
 * whoever stops the VM first (a device, a vCPU, a signal, a QMP client) names the reason. */
#include "vmm/vm_priv.h"
#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/console_mux.h"
#include "vmm/cpuid.h"
#include "vmm/kvm.h"
#include "vmm/virtio/vmdev.h"
#include "util/error.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define VM_MAX_CPUS	  254 /* xAPIC IDs, 255 being broadcast */
#define TSS_ADDR	  0xfffbd000ull
#define IDENT_MAP_ADDR	  0xfffbc000ull
#define THREAD_STACK_SIZE (1u << 20)

const char *vm_exit_name(enum vm_exit why)
{
	switch (why) {
	case VM_EXIT_POWEROFF:
		return "powered off";
	case VM_EXIT_RESET:
		return "rebooted";
	case VM_EXIT_QUIT:
		return "terminated";
	case VM_EXIT_PANIC:
		return "guest kernel panicked";
	case VM_EXIT_TRIPLE_FAULT:
		return "guest triple-faulted (KVM_EXIT_SHUTDOWN)";
	case VM_EXIT_ERROR:
		return "KVM error";
	case VM_EXIT_SIGNAL:
		return "stopped by a signal";
	}
	return "?";
}

const char *vm_exit_reason(enum vm_exit why)
{
	static const char *const names[] = {
	    [VM_EXIT_POWEROFF] = "poweroff",
	    [VM_EXIT_RESET] = "reset",
	    [VM_EXIT_QUIT] = "quit",
	    [VM_EXIT_PANIC] = "panic",
	    [VM_EXIT_TRIPLE_FAULT] = "triple-fault",
	    [VM_EXIT_ERROR] = "kvm-error",
	    [VM_EXIT_SIGNAL] = "signal",
	};
	return (unsigned)why < sizeof(names) / sizeof(names[0]) ? names[why] : "kvm-error";
}

bool vm_stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST);
}

/* The first request wins; later ones (a panic's reboot, say) change nothing. */
static bool vm_claim_stop(struct vm *vm, enum vm_exit why)
{
	int zero = 0;

	if (!__atomic_compare_exchange_n(&vm->stopping, &zero, -1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return false;
	vm->why = why;
	return true;
}

static void vm_publish_stop(struct vm *vm)
{
	uint64_t one = 1;

	/* Sequentially consistent, as the vCPUs' immediate_exit: see vm_vcpu_park(). */
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_SEQ_CST);
	if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow with one write per VM. */
	}
}

void vm_request_stop(struct vm *vm, enum vm_exit why)
{
	if (vm_claim_stop(vm, why))
		vm_publish_stop(vm);
}

void vm_press_power_button(struct vm *vm)
{
	uint64_t one = 1;

	/* Only an eventfd write here, so that a signal handler may call it: the event loop in
	 * vm_run() does the device work (pm.c takes a mutex). */
	if (write(vm->button_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: presses are already pending, and one press is as good as many. */
	}
}

void vm_fail(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	if (!vm_claim_stop(vm, VM_EXIT_ERROR))
		return;
	va_start(ap, fmt);
	vsnprintf(vm->msg, sizeof(vm->msg), fmt, ap);
	va_end(ap);
	vm_publish_stop(vm);
}

unsigned long vm_user_exits(const struct vm *vm)
{
	unsigned long n = 0;

	for (unsigned i = 0; i < vm->ncpus; i++)
		n += __atomic_load_n(&vm->vcpus[i].exits, __ATOMIC_RELAXED);
	return n;
}

static int check_config(const struct vm_config *cfg)
{
	struct sysinfo si;
	uint64_t host;

	if (cfg->cpus < 1 || cfg->cpus > VM_MAX_CPUS)
		return err_set(EINVAL, "--cpus %u is out of range (1 to %u)", cfg->cpus,
			       VM_MAX_CPUS);
	if (sysinfo(&si) == 0) {
		host = (uint64_t)si.totalram * si.mem_unit;
		if (cfg->mem_size > host)
			return err_set(ENOMEM,
				       "--memory %llu MiB is more than this host's %llu MiB "
				       "of RAM",
				       (unsigned long long)(cfg->mem_size >> 20),
				       (unsigned long long)(host >> 20));
	}
	return 0;
}

/* /dev/kvm and its limits: cheap, and where an unusable KVM is refused. */
static int vm_open_kvm(struct vm *vm, const struct vm_config *cfg)
{
	int max;

	if ((vm->kvm_fd = kvm_open("/dev/kvm", cfg->force)) < 0)
		return vm->kvm_fd;
	max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && cfg->cpus > (unsigned)max)
		return err_set(EINVAL, "--cpus %u: this KVM allows at most %d", cfg->cpus, max);
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((ssize_t)vm->run_size < (ssize_t)sizeof(struct kvm_run))
		return err_sys(errno, "KVM_GET_VCPU_MMAP_SIZE");
	return 0;
}

static int vm_create_kvm(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = 0}; /* with the speaker port 0x61, for calibration */

	if ((vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0)) < 0)
		return err_sys(errno, "KVM_CREATE_VM");
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		return err_sys(errno, "KVM_SET_TSS_ADDR");
	uint64_t ident = IDENT_MAP_ADDR;
	(void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident); /* Intel only */
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_sys(errno, "KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_sys(errno, "KVM_CREATE_PIT2");
	exitstat_mark(vm->stat, "KVM VM created");
	return 0;
}

static int vm_create_vcpus(struct vm *vm, unsigned n)
{
	struct kvm_cpuid2 *cpuid;
	int ret;

	if ((ret = cpuid_supported(vm->kvm_fd, &cpuid)) < 0)
		return ret;
	/* Without it Linux calibrates the LAPIC timer against the PIT, which fails under nested
	 * emulation and leaves the guest on the PIT alone. */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		cpuid_set_tsc_deadline(cpuid);
	vm->vcpus = calloc(n, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		free(cpuid);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		vm->vcpus[i].fd = -1;
		vm->vcpus[i].vm = vm;
		vm->vcpus[i].io = &vm->io;
		vm->vcpus[i].mmio = &vm->mmio;
		vm->vcpus[i].stat = vm->stat;
		vm->vcpus[i].prof = vm->prof;
	}
	vm->ncpus = n;
	for (unsigned i = 0; i < n && ret == 0; i++)
		ret = vcpu_create(&vm->vcpus[i], vm->vm_fd, i, n, vm->run_size, cpuid);
	free(cpuid);
	if (ret == 0)
		ret = vcpu_setup_boot(&vm->vcpus[0]);
	return ret;
}

/* The kernel and initrd of cfg, files or buffers; *initrd NULL when there is none. */
static void vm_boot_files(const struct vm_config *cfg, struct boot_file *kernel,
			  struct boot_file *initrd_file, struct boot_file **initrd)
{
	*kernel = (struct boot_file){cfg->kernel, cfg->kernel_buf, cfg->kernel_len};
	*initrd_file = (struct boot_file){cfg->initrd, cfg->initrd_buf, cfg->initrd_len};
	*initrd = cfg->initrd || cfg->initrd_buf ? initrd_file : NULL;
}

static int vm_load(struct vm *vm, const struct vm_config *cfg)
{
	size_t cap = BOOT_KERNEL_ADDR - BOOT_BIOS_START;
	uint8_t *acpi = mem_ptr(&vm->mem, BOOT_BIOS_START, cap);
	struct boot_file kernel, initrd_file, *initrd;
	int ret;

	if (!acpi || acpi_build(acpi, cap, BOOT_BIOS_START, cfg->cpus) == 0)
		return err_set(ENOSPC, "ACPI tables do not fit below 1 MiB");
	vm_boot_files(cfg, &kernel, &initrd_file, &initrd);
	ret = boot_load(&vm->mem, &kernel, initrd, cfg->cmdline, BOOT_BIOS_START);
	exitstat_mark(vm->stat, "kernel loaded");
	return ret;
}

static void *vm_loader(void *arg)
{
	struct vm *vm = arg;
	int ret = vm_load(vm, vm->load_cfg);

	if (ret < 0) /* error messages are per thread: carry it over */
		snprintf(vm->load_msg, sizeof(vm->load_msg), "%s", err_msg_or(ret));
	vm->load_ret = ret;
	return NULL;
}

/* Loading the kernel into guest RAM (page faults, zeroing and a copy of some 15 MB) takes as
 * long as creating the KVM VM and its vCPUs, and the two do not depend on each other: with a
 * second host CPU free, doing them side by side starts the guest sooner. */
static int vm_load_start(struct vm *vm, const struct vm_config *cfg)
{
	pthread_attr_t attr;
	int ret;

	vm->load_cfg = cfg;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	ret = pthread_create(&vm->loader, &attr, vm_loader, vm);
	pthread_attr_destroy(&attr);
	if (ret != 0)
		return vm_load(vm, cfg);
	vm->loading = true;
	return 0;
}

static void vm_load_join(struct vm *vm)
{
	if (vm->loading)
		pthread_join(vm->loader, NULL);
	vm->loading = false;
}

static int vm_load_wait(struct vm *vm)
{
	vm_load_join(vm);
	if (vm->load_ret < 0)
		return err_set(-vm->load_ret, "%s", vm->load_msg);
	return 0;
}

/* The loop, the console's fan-out and the control socket: before KVM is touched, so that a
 * socket a live VM holds or a log that cannot be written fails the start at once. */
static int vm_create_control(struct vm *vm, const struct vm_config *cfg)
{
	struct console_mux_config mc = {
	    .out_fd = cfg->console_out,
	    .in_fd = cfg->console_in,
	    .socket = cfg->console_socket,
	    .log = cfg->console_log,
	    .log_max = cfg->console_log_max,
	};
	int ret;

	if (cfg->name && !(vm->name = strdup(cfg->name)))
		return err_set(ENOMEM, "out of memory");
	if ((ret = vm_pause_init(vm)) < 0 || (ret = loop_new(&vm->loop)) < 0 ||
	    (ret = console_mux_new(&mc, &vm->mux)) < 0)
		return ret;
	return cfg->qmp_path ? vm_qmp_open(vm, cfg->qmp_path) : 0;
}

int vm_create(const struct vm_config *cfg, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct boot_file kernel, initrd_file, *initrd;
	int ret;

	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->balloon_fd = vm->balloon_timer = -1;
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->button_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0 || vm->button_fd < 0) {
		ret = err_sys(errno, "eventfd");
		if (vm->stop_fd >= 0)
			close(vm->stop_fd);
		if (vm->button_fd >= 0)
			close(vm->button_fd);
		free(vm);
		return ret;
	}
	vm->stat = exitstat_new();
	exitstat_mark(vm->stat, "vm_create");
	vm_boot_files(cfg, &kernel, &initrd_file, &initrd);
	/* Cheap checks first, so that bad arguments fail before KVM is touched. */
	if ((ret = check_config(cfg)) < 0 || (ret = guestprof_new(&vm->prof)) < 0 ||
	    (ret = mem_layout(&vm->mem, cfg->mem_size)) < 0 ||
	    (ret = boot_probe(&kernel, initrd)) < 0 ||
	    (ret = vm_create_control(vm, cfg)) < 0 || (ret = vm_open_kvm(vm, cfg)) < 0 ||
	    (ret = mem_alloc(&vm->mem)) < 0 || (ret = vm_load_start(vm, cfg)) < 0 ||
	    (ret = vm_create_kvm(vm)) < 0 || (ret = mem_register(&vm->mem, vm->vm_fd)) < 0 ||
	    (ret = serial_init(&vm->serial, &vm->io, cfg->console_out, vm->vm_fd, vm)) < 0 ||
	    (ret = pm_init(&vm->pm, &vm->io, vm, vm->vm_fd)) < 0 ||
	    (ret = cfg->devices ? vm_devices_attach(vm->devices = cfg->devices, vm->vm_fd, &vm->mem,
						    &vm->io, &vm->mmio)
				: pci_host_init(&vm->pci, &vm->io, &vm->mmio)) < 0 ||
	    (ret = vm_create_vcpus(vm, cfg->cpus)) < 0 || (ret = vm_load_wait(vm)) < 0) {
		vm_destroy(vm);
		return ret;
	}
	serial_set_sink(&vm->serial, console_mux_output, vm->mux);
	exitstat_mark(vm->stat, "VM ready");
	*out = vm;
	return 0;
}

void vm_print_stats(const struct vm *vm, FILE *f)
{
	fprintf(f, "ligero: %lu exits to user space\n", vm_user_exits(vm));
	exitstat_print(vm->stat, f);
	if (vm->stat)
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_print_state(&vm->vcpus[i], f);
}

static void on_kick(int sig)
{
	(void)sig; /* only here to make KVM_RUN return EINTR */
}

/* Drain the press count and press the button once: it is a latch, many presses are one. */
static void vm_button_cb(struct loop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t n;

	if (read(vm->button_fd, &n, sizeof(n)) == sizeof(n)) {
		vm_qmp_powerdown_event(vm);
		pm_press_power_button(&vm->pm);
	}
}

static void vm_stop_cb(struct loop_watch *w, uint32_t events)
{
	/* nothing to do: the loop in vm_run() sees vm_stopping() */
}

/* Ctrl-A x on the terminal. */
static void vm_console_quit(void *opaque)
{
	vm_request_stop(opaque, VM_EXIT_QUIT);
}

/* The event loop's watches; its clients come and go as they connect. */
static int vm_loop_start(struct vm *vm)
{
	int ret;

	if ((ret = loop_add(vm->loop, &vm->stop_w, vm->stop_fd, EPOLLIN, vm_stop_cb, vm)) < 0 ||
	    (ret = loop_add(vm->loop, &vm->button_w, vm->button_fd, EPOLLIN, vm_button_cb, vm)) <
		0 ||
	    (ret = console_mux_start(vm->mux, vm->loop, &vm->serial, vm_console_quit, vm)) < 0)
		return ret;
	return vm->qmp ? vm_qmp_start(vm) : 0;
}

static void vm_loop_run(struct vm *vm)
{
	int ret;

	while (!vm_stopping(vm))
		if ((ret = loop_run_once(vm->loop, -1)) < 0) {
			vm_fail(vm, "the event loop failed: %s", strerror(-ret));
			break;
		}
}

int vm_run(struct vm *vm, enum vm_exit *why, const char **msg)
{
	struct sigaction sa = {.sa_handler = on_kick};
	pthread_attr_t attr;
	sigset_t kick;
	pthread_t tids[VM_MAX_CPUS];
	unsigned started = 0;
	int ret;

	/* SA_RESTART: the profiler's signals (guestprof.h) must not fail a vCPU thread's other
	 * system calls; KVM_RUN returns EINTR all the same. */
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	if ((ret = vm_loop_start(vm)) < 0)
		return ret;
	/* The default stack (8 MiB) holds a 2 MiB-aligned range that transparent huge pages turn
	 * into 2 MiB of RSS at the first touch; our threads need far less. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if ((ret =
			 pthread_create(&vm->vcpus[i].thread, &attr, vcpu_thread, &vm->vcpus[i]))) {
			vm_fail(vm, "cannot start vCPU %u's thread: %s", i, strerror(ret));
			break;
		}
		vm->vcpus[i].started = 1;
		tids[started++] = vm->vcpus[i].thread;
	}
	pthread_attr_destroy(&attr);
	if ((ret = guestprof_start(vm->prof, tids, started)) < 0)
		vm_fail(vm, "%s", err_msg());
	vm_loop_run(vm);
	guestprof_stop(vm->prof); /* before the threads it signals are gone */
	vm_pause_release(vm);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	vm_qmp_close(vm);	   /* SHUTDOWN to the clients, the socket removed */
	console_mux_free(vm->mux); /* the last output to the clients, the terminal restored */
	vm->mux = NULL;
	if (guestprof_write(vm->prof) < 0)
		fprintf(stderr, "ligero: %s\n", err_msg());
	*why = vm->why;
	*msg = vm->msg[0] ? vm->msg : vm_exit_name(vm->why);
	/* Whatever ended the VM, the guest runs no more: finish the disks' requests in flight,
	 * then flush and close them, before the caller reports anything or exits. */
	return vm_devices_stop(vm->devices);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vm_load_join(vm); /* the loader writes guest RAM */
	for (unsigned i = 0; i < vm->ncpus && vm->vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm_devices_stop(vm->devices); /* device threads use guest RAM */
	mem_unmap(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pm_destroy(&vm->pm);
	vm_qmp_close(vm);
	console_mux_free(vm->mux);
	loop_free(vm->loop);
	vm_pause_destroy(vm);
	free(vm->name);
	close(vm->stop_fd);
	close(vm->button_fd);
	exitstat_free(vm->stat);
	guestprof_free(vm->prof);
	free(vm);
}
