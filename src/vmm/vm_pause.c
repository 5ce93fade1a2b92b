/*
 * Pausing a VM (QMP stop and cont). The vCPUs are told to park (pause_req), kicked out of
 * KVM_RUN (immediate_exit and a signal, as at the VM's end) and waited for: each parks at its
 * next exit, with any exit it was handling finished. KVM keeps everything else: the in-kernel
 * irqchip holds interrupts raised meanwhile (they are delivered at resume), the LAPIC timers
 * and the PIT go on in the host kernel, so no timer and no interrupt is lost.
 *
 * The guest's clock: as QEMU does, kvmclock is read (KVM_GET_CLOCK) once all vCPUs are parked
 * and set back to that value (KVM_SET_CLOCK) before they run again, so a guest using kvm-clock
 * sees no time pass while paused (no jump forward, and never backward); KVM_KVMCLOCK_CTRL tells
 * it that it was stopped, so its watchdogs do not call the pause a soft lockup.
 *
 * Devices are not paused: their threads finish what the guest queued before the pause; with
 * the vCPUs stopped nothing new is queued, except that virtio-net still receives frames into
 * buffers the guest posted earlier (their interrupts wait in KVM).
 */
#include "vmm/vm_priv.h"
#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

int vm_pause_init(struct vm *vm)
{
	pthread_condattr_t a;
	int ret;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&vm->pause_cond, &a);
	pthread_condattr_destroy(&a);
	if (ret)
		return err_set(ret, "pthread_cond_init: %s", strerror(ret));
	pthread_mutex_init(&vm->pause_lock, NULL);
	return 0;
}

void vm_pause_destroy(struct vm *vm)
{
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
}

bool vm_pause_requested(struct vm *vm)
{
	return __atomic_load_n(&vm->pause_req, __ATOMIC_SEQ_CST);
}

void vm_vcpu_park(struct vm *vm, struct vcpu *v)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm_pause_requested(vm) && !vm_stopping(vm))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
	/* The kick that brought us here must not make the next KVM_RUN return at once. A stop
	 * kick racing with this store is not lost: the stop flag is set before immediate_exit
	 * (both sequentially consistent), and the loop tests it after this. */
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

void vm_vcpu_exited(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->exited++;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_pause_release(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	__atomic_store_n(&vm->pause_req, 0, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	vm->paused = false;
}

static unsigned vm_started(const struct vm *vm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm->ncpus; i++)
		n += vm->vcpus[i].started != 0;
	return n;
}

/* Wait until every started vCPU is parked or gone. A signal handler can stop the VM
 * meanwhile and cannot signal a condition variable: look at the stop flag every 50 ms. */
static int vm_wait_parked(struct vm *vm)
{
	unsigned want = vm_started(vm);
	struct timespec t;
	int ret = 0;

	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked + vm->exited < want) {
		if (vm_stopping(vm)) {
			ret = err_set(ECANCELED, "the VM is stopping");
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_nsec += 50 * 1000 * 1000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &t);
	}
	pthread_mutex_unlock(&vm->pause_lock);
	return ret;
}

int vm_pause(struct vm *vm)
{
	int ret;

	if (vm->paused)
		return 0;
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	if ((ret = vm_wait_parked(vm)) < 0)
		return ret;
	memset(&vm->clock, 0, sizeof(vm->clock));
	vm->clock_saved = ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->clock) == 0;
	vm->paused = true;
	return 0;
}

int vm_resume(struct vm *vm)
{
	struct kvm_clock_data c;

	if (!vm->paused)
		return 0;
	if (vm->clock_saved) {
		memset(&c, 0, sizeof(c));
		c.clock = vm->clock.clock;
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
			return err_sys(errno, "KVM_SET_CLOCK");
	}
	for (unsigned i = 0; i < vm->ncpus; i++)
		(void)ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0); /* EINVAL: no kvm-clock */
	vm_pause_release(vm);
	return 0;
}

bool vm_paused(const struct vm *vm)
{
	return vm->paused;
}
