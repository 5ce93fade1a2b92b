/* The guest sampling profiler (guestprof.h). Samples go into one array sized up front (its
 * pages are touched only as it fills), claimed with an atomic counter, so vCPU threads never
 * wait on each other; past its end they are counted as dropped. */
#include "vmm/guestprof.h"
#include "util/error.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PROF_MAX_SAMPLES (1u << 20) /* 17 minutes of one vCPU at the default rate */

struct sample {
	uint64_t ns; /* CLOCK_BOOTTIME */
	uint64_t rip;
	uint32_t cpu;
};

struct guestprof {
	const char *path;
	FILE *f; /* opened up front, so that a bad path fails before the boot */
	long interval_us;
	struct sample *s;
	unsigned long next, dropped; /* atomic */
	pthread_t thread;
	bool running;
	int stop; /* atomic */
	pthread_t *targets;
	unsigned ntargets;
};

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int guestprof_new(struct guestprof **out)
{
	const char *path = getenv("LIGERO_PROFILE"), *us = getenv("LIGERO_PROFILE_US");
	struct guestprof *p;
	long interval = 1000;

	*out = NULL;
	if (!path || !*path)
		return 0;
	if (us) {
		char *end;
		errno = 0;
		interval = strtol(us, &end, 10);
		if (errno || end == us || *end || interval < 100 || interval > 1000000)
			return err_set(
			    EINVAL, "LIGERO_PROFILE_US=%s: want microseconds from 100 to 1000000",
			    us);
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->s = calloc(PROF_MAX_SAMPLES, sizeof(*p->s)))) {
		free(p);
		return -ENOMEM;
	}
	p->path = path;
	p->interval_us = interval;
	p->f = fopen(path, "w");
	if (!p->f) {
		int e = errno;
		free(p->s);
		free(p);
		return err_sys(e, "LIGERO_PROFILE: %s", path);
	}
	*out = p;
	return 0;
}

void guestprof_sample(struct guestprof *p, unsigned cpu, int vcpu_fd)
{
	struct kvm_regs r;
	unsigned long i;

	if (!p || ioctl(vcpu_fd, KVM_GET_REGS, &r) < 0)
		return;
	i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
	if (i >= PROF_MAX_SAMPLES) {
		__atomic_fetch_add(&p->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	p->s[i] = (struct sample){boottime_ns(), r.rip, cpu};
}

static void *sampler(void *arg)
{
	struct guestprof *p = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		next.tv_nsec += p->interval_us * 1000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		for (unsigned i = 0; i < p->ntargets; i++)
			pthread_kill(p->targets[i], SIGUSR1);
	}
	return NULL;
}

int guestprof_start(struct guestprof *p, const pthread_t *threads, unsigned n)
{
	int ret;

	if (!p)
		return 0;
	p->targets = calloc(n ? n : 1, sizeof(*threads));
	if (!p->targets)
		return -ENOMEM;
	memcpy(p->targets, threads, n * sizeof(*threads));
	p->ntargets = n;
	ret = pthread_create(&p->thread, NULL, sampler, p);
	if (ret)
		return err_sys(ret, "LIGERO_PROFILE: cannot start the sampling thread");
	p->running = true;
	return 0;
}

void guestprof_stop(struct guestprof *p)
{
	if (!p || !p->running)
		return;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_join(p->thread, NULL);
	p->running = false;
}

static int by_time(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	return (x->ns > y->ns) - (x->ns < y->ns);
}

int guestprof_write(struct guestprof *p)
{
	unsigned long n;
	FILE *f;
	int bad;

	if (!p || !p->f)
		return 0;
	n = p->next < PROF_MAX_SAMPLES ? p->next : PROF_MAX_SAMPLES;
	qsort(p->s, n, sizeof(*p->s), by_time); /* the vCPUs' samples, interleaved */
	f = p->f;
	p->f = NULL;
	fprintf(f, "# ligero guest profile: seconds (CLOCK_BOOTTIME) vcpu rip\n");
	fprintf(f, "# interval_us %ld samples %lu dropped %lu\n", p->interval_us, n, p->dropped);
	for (unsigned long i = 0; i < n; i++)
		fprintf(f, "%llu.%06llu %u %#llx\n", (unsigned long long)(p->s[i].ns / 1000000000u),
			(unsigned long long)(p->s[i].ns % 1000000000u / 1000), p->s[i].cpu,
			(unsigned long long)p->s[i].rip);
	bad = ferror(f);
	if (fclose(f) || bad)
		return err_sys(errno ? errno : EIO, "LIGERO_PROFILE: writing %s", p->path);
	return 0;
}

void guestprof_free(struct guestprof *p)
{
	if (!p)
		return;
	guestprof_stop(p);
	if (p->f) { /* never written: the VM did not run, so leave no empty profile behind */
		fclose(p->f);
		unlink(p->path);
	}
	free(p->targets);
	free(p->s);
	free(p);
}
