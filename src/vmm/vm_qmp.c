/* The VM behind its QMP socket: the struct qmp_vm_ops that qmp_cmds.c calls, and the events
 * the VM itself causes (POWERDOWN for a press from a signal, BALLOON_CHANGE, and SHUTDOWN when
 * it ends). Everything here runs on the event loop's thread. */
#include "vmm/vm_priv.h"
#include "vmm/qmp.h"
#include "vmm/virtio/vmdev.h"
#include "util/clock.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull

static bool op_running(void *opaque)
{
	return !vm_paused(opaque);
}

static int op_pause(void *opaque)
{
	return vm_pause(opaque);
}

static int op_resume(void *opaque)
{
	return vm_resume(opaque);
}

/* On the loop's thread already: press at once rather than through the eventfd, so that the
 * guest is told before the command is answered. */
static void op_powerdown(void *opaque)
{
	struct vm *vm = opaque;

	vm->button_pressed = true;
	pm_press_power_button(&vm->pm);
}

static void op_stop(void *opaque, enum qmp_shutdown why)
{
	struct vm *vm = opaque;

	vm->by_qmp = true;
	vm_request_stop(vm, why == QMP_SHUTDOWN_QMP_RESET ? VM_EXIT_RESET : VM_EXIT_QUIT);
}

static const char *op_name(void *opaque)
{
	return ((struct vm *)opaque)->name;
}

static unsigned op_cpus(void *opaque, struct qmp_vm_cpu *out, unsigned max)
{
	struct vm *vm = opaque;
	unsigned n = vm->ncpus < max ? vm->ncpus : max;

	for (unsigned i = 0; i < n; i++)
		out[i].thread_id = __atomic_load_n(&vm->vcpus[i].tid, __ATOMIC_ACQUIRE);
	return n;
}

static uint64_t op_ram_size(void *opaque)
{
	return ((struct vm *)opaque)->mem.size;
}

/* QEMU's balloon value is what the guest keeps: the balloon holds the rest. */
static int op_balloon_set(void *opaque, uint64_t target)
{
	struct vm *vm = opaque;
	uint64_t keep = target < vm->mem.size ? target : vm->mem.size;

	return vm_devices_balloon_set(vm->devices, (vm->mem.size - keep) / PAGE);
}

static int op_balloon_actual(void *opaque, uint64_t *actual)
{
	struct vm *vm = opaque;
	uint64_t pages;
	int ret = vm_devices_balloon_actual(vm->devices, &pages);

	if (ret < 0)
		return ret;
	*actual = pages * PAGE < vm->mem.size ? vm->mem.size - pages * PAGE : 0;
	return 0;
}

static struct json_object *jbool(bool b)
{
	return json_object_new_boolean(b);
}

static int op_disk(void *opaque, unsigned i, struct vm_disk_info *out)
{
	return vm_devices_disk_info(((struct vm *)opaque)->devices, i, out);
}

static struct json_object *op_exit_info(void *opaque)
{
	struct vm *vm = opaque;
	struct json_object *o = json_object_new_object();
	bool stopping = vm_stopping(vm);

	json_object_object_add(o, "stopping", jbool(stopping));
	json_object_object_add(o, "powerdown-requested", jbool(vm->button_pressed));
	if (stopping) {
		json_object_object_add(o, "reason",
				       json_object_new_string(vm_exit_reason(vm->why)));
		json_object_object_add(
		    o, "message",
		    json_object_new_string(vm->msg[0] ? vm->msg : vm_exit_name(vm->why)));
	}
	return o;
}

/* Guest RAM pages resident in this process (mincore); -1 when it cannot tell. */
static int64_t guest_resident(struct vm *vm)
{
	size_t pages = (size_t)(vm->mem.size / PAGE), n = 0;
	unsigned char *v = malloc(pages ? pages : 1);

	if (!v || mincore(vm->mem.base, vm->mem.size, v) < 0) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < pages; i++)
		n += v[i] & 1;
	free(v);
	return (int64_t)(n * PAGE);
}

/* The VMM's own memory: resident set minus the guest RAM that is resident. */
static struct json_object *op_stats(void *opaque)
{
	struct vm *vm = opaque;
	unsigned long size, rss;
	int64_t guest = guest_resident(vm), page = sysconf(_SC_PAGESIZE);
	struct json_object *o;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return NULL;
	if (fscanf(f, "%lu %lu", &size, &rss) != 2) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	o = json_object_new_object();
	json_object_object_add(o, "rss", json_object_new_int64((int64_t)rss * page));
	json_object_object_add(o, "guest-ram", json_object_new_int64((int64_t)vm->mem.size));
	if (guest >= 0) {
		json_object_object_add(o, "guest-resident", json_object_new_int64(guest));
		json_object_object_add(o, "rss-vmm",
				       json_object_new_int64((int64_t)rss * page - guest));
	}
	json_object_object_add(o, "user-exits", json_object_new_int64((int64_t)vm_user_exits(vm)));
	json_object_object_add(o, "vcpus", json_object_new_int((int)vm->ncpus));
	return o;
}

static const struct qmp_vm_ops vm_ops = {
    .running = op_running,
    .pause = op_pause,
    .resume = op_resume,
    .powerdown = op_powerdown,
    .stop = op_stop,
    .name = op_name,
    .cpus = op_cpus,
    .ram_size = op_ram_size,
    .balloon_set = op_balloon_set,
    .balloon_actual = op_balloon_actual,
    .disk = op_disk,
    .exit_info = op_exit_info,
    .stats = op_stats,
};

int vm_qmp_open(struct vm *vm, const char *path)
{
	struct qmp_version v = qmp_vm_version();
	size_t n;
	const struct qmp_cmd *cmds = qmp_vm_commands(&n);
	int ret;

	vm->qvm = (struct qmp_vm){.ops = &vm_ops, .vm = vm};
	if ((ret = qmp_server_new(vm->loop, &v, cmds, n, &vm->qvm, &vm->qmp)) < 0)
		return ret;
	return qmp_server_listen(vm->qmp, path);
}

#define BALLOON_EVENT_NS 1000000000ull /* QEMU sends BALLOON_CHANGE at most once a second */

/* BALLOON_CHANGE with what the guest keeps now, if that changed since the last one. */
static void balloon_send(struct vm *vm)
{
	struct json_object *d;
	uint64_t actual;

	if (op_balloon_actual(vm, &actual) < 0 || actual == vm->balloon_actual)
		return;
	vm->balloon_actual = actual;
	vm->balloon_sent = clock_mono_ns();
	d = json_object_new_object();
	json_object_object_add(d, "actual", json_object_new_int64((int64_t)actual));
	qmp_server_event(vm->qmp, "BALLOON_CHANGE", d);
}

/* The guest changed the balloon's size (it does so every 1 MiB or so while it inflates). As
 * QEMU throttles this event: the first change goes out at once, and within the second that
 * follows only the last one, at the second's end. */
static void balloon_cb(struct loop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v, now = clock_mono_ns(), next = vm->balloon_sent + BALLOON_EVENT_NS;
	struct itimerspec t = {{0, 0}, {0, 0}};

	if (read(vm->balloon_fd, &v, sizeof(v)) < 0 || vm->balloon_armed)
		return;
	if (now >= next) {
		balloon_send(vm);
		return;
	}
	t.it_value.tv_sec = (time_t)((next - now) / 1000000000ull);
	t.it_value.tv_nsec = (long)((next - now) % 1000000000ull);
	if (timerfd_settime(vm->balloon_timer, 0, &t, NULL) == 0)
		vm->balloon_armed = true;
}

static void balloon_timer_cb(struct loop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v;

	if (read(vm->balloon_timer, &v, sizeof(v)) < 0)
		return;
	vm->balloon_armed = false;
	balloon_send(vm);
}

int vm_qmp_start(struct vm *vm)
{
	uint64_t pages;
	int ret;

	if (vm_devices_balloon_actual(vm->devices, &pages) < 0)
		return 0; /* no balloon */
	op_balloon_actual(vm, &vm->balloon_actual);
	vm->balloon_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->balloon_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->balloon_fd < 0 || vm->balloon_timer < 0)
		return err_sys(errno, "balloon events");
	if ((ret = loop_add(vm->loop, &vm->balloon_w, vm->balloon_fd, EPOLLIN, balloon_cb, vm)) <
		0 ||
	    (ret = loop_add(vm->loop, &vm->balloon_timer_w, vm->balloon_timer, EPOLLIN,
			    balloon_timer_cb, vm)) < 0)
		return ret;
	vm_devices_balloon_notify(vm->devices, vm->balloon_fd);
	return 0;
}

void vm_qmp_powerdown_event(struct vm *vm)
{
	vm->button_pressed = true;
	if (vm->qmp)
		qmp_server_event(vm->qmp, "POWERDOWN", NULL);
}

static enum qmp_shutdown shutdown_cause(const struct vm *vm)
{
	switch (vm->why) {
	case VM_EXIT_POWEROFF:
		return QMP_SHUTDOWN_GUEST;
	case VM_EXIT_RESET:
		return vm->by_qmp ? QMP_SHUTDOWN_QMP_RESET : QMP_SHUTDOWN_GUEST_RESET;
	case VM_EXIT_QUIT:
		return vm->by_qmp ? QMP_SHUTDOWN_QMP_QUIT : QMP_SHUTDOWN_UI;
	case VM_EXIT_PANIC:
		return QMP_SHUTDOWN_GUEST_PANIC;
	case VM_EXIT_TRIPLE_FAULT: /* KVM_EXIT_SHUTDOWN: QEMU resets the machine for it */
		return QMP_SHUTDOWN_GUEST_RESET;
	case VM_EXIT_SIGNAL:
		return QMP_SHUTDOWN_SIGNAL;
	case VM_EXIT_ERROR:
		break;
	}
	return QMP_SHUTDOWN_ERROR;
}

void vm_qmp_close(struct vm *vm)
{
	if (vm->balloon_fd >= 0) {
		loop_del(&vm->balloon_w);
		vm_devices_balloon_notify(vm->devices, -1);
		close(vm->balloon_fd);
		vm->balloon_fd = -1;
	}
	if (vm->balloon_timer >= 0) {
		loop_del(&vm->balloon_timer_w);
		close(vm->balloon_timer);
		vm->balloon_timer = -1;
	}
	if (!vm->qmp)
		return;
	if (vm_stopping(vm))
		qmp_vm_shutdown_event(vm->qmp, &vm->qvm, shutdown_cause(vm));
	qmp_server_free(vm->qmp);
	vm->qmp = NULL;
}
