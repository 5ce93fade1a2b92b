/* Where a VM's user-space exits go and where its start-up time goes, for `LIGERO_STATS=1`:
 * exits counted by kind and by port or MMIO address, and time stamps of the start-up steps on
 * CLOCK_BOOTTIME (the clock of /proc/uptime, so they line up with a benchmark's). */
#ifndef LIGERO_VMM_EXITSTAT_H
#define LIGERO_VMM_EXITSTAT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define EXITSTAT_SLOTS 128 /* distinct (kind, address, direction) keys; more are lumped */
#define EXITSTAT_MARKS 16

enum exitstat_kind { EXITSTAT_PIO, EXITSTAT_MMIO, EXITSTAT_OTHER };

struct exitstat_slot {
	uint64_t addr;
	uint32_t kind, write;
	unsigned long count;
};

struct exitstat {
	pthread_mutex_t lock;
	struct exitstat_slot slot[EXITSTAT_SLOTS];
	unsigned nslots;
	unsigned long lumped;
	const char *mark_name[EXITSTAT_MARKS];
	double mark_at[EXITSTAT_MARKS];
	unsigned nmarks;
};

/* A zeroed exitstat, or NULL (no counting) when LIGERO_STATS is unset. */
struct exitstat *exitstat_new(void);
void exitstat_free(struct exitstat *s);
/* Count one exit. `addr` is the port, the MMIO address or the KVM exit reason. */
void exitstat_count(struct exitstat *s, enum exitstat_kind kind, uint64_t addr, int write);
/* Record that start-up step `name` (a string literal) is done, now. */
void exitstat_mark(struct exitstat *s, const char *name);
/* Print the marks and the counts, most frequent first. */
void exitstat_print(struct exitstat *s, FILE *f);

#endif
