/* Progress reporting for long verbs, and a clean stop on SIGINT/SIGTERM. */
#ifndef LIGERO_UTIL_PROGRESS_H
#define LIGERO_UTIL_PROGRESS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* A progress bar on stderr in qemu-img's style: "    (45.00/100%)". */
struct progress {
	bool enabled;
	double last; /* last percentage printed, -1 before the first */
};

/* Show progress when asked (-p), or when stderr is a terminal and not quiet. */
void progress_init(struct progress *p, bool asked, bool quiet);
/* Report done of total units; prints only when the percentage moved by 1% or more. */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* End the progress line (only when something was printed). */
void progress_end(struct progress *p);

/* Catch SIGINT and SIGTERM: the first one sets the flag that progress_stop_flag() points to,
 * so long work can stop at its next step and clean up; a second one ends the process. */
void progress_catch_signals(void);
/* Put the default handlers back. */
void progress_release_signals(void);
volatile sig_atomic_t *progress_stop_flag(void);

#endif
