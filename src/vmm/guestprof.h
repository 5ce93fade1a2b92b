/* A sampling profiler of the guest, for `LIGERO_PROFILE=FILE`: a thread of its own interrupts
 * every vCPU thread every LIGERO_PROFILE_US microseconds (default 1000); the interrupted
 * KVM_RUN returns, the vCPU thread reads the guest's instruction pointer and goes back in.
 * At exit FILE gets one line per sample, "seconds vcpu rip", seconds on CLOCK_BOOTTIME (the
 * clock of /proc/uptime and of LIGERO_STATS), after a header of '#' lines. Each sample costs
 * the guest one exit to user space. bench/bootprof.sh names the guest's functions. */
#ifndef LIGERO_VMM_GUESTPROF_H
#define LIGERO_VMM_GUESTPROF_H

#include <pthread.h>

struct guestprof;

/* A profiler when LIGERO_PROFILE is set (*out NULL when not); a bad LIGERO_PROFILE_US is an
 * error. */
int guestprof_new(struct guestprof **out);
/* Record where vCPU `cpu` (its fd `vcpu_fd`) is; called on its own thread after KVM_RUN
 * returned EINTR. */
void guestprof_sample(struct guestprof *p, unsigned cpu, int vcpu_fd);
/* Start interrupting the n threads (the vCPUs', running). */
int guestprof_start(struct guestprof *p, const pthread_t *threads, unsigned n);
/* Stop interrupting; call before the vCPU threads are joined. */
void guestprof_stop(struct guestprof *p);
/* Write the samples to the file; an error when it cannot. */
int guestprof_write(struct guestprof *p);
void guestprof_free(struct guestprof *p);

#endif
