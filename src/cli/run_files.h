/* `ligero run`'s --pidfile and --exit-status-file (docs/ligero-run.md has their format). */
#ifndef LIGERO_CLI_RUN_FILES_H
#define LIGERO_CLI_RUN_FILES_H

/* How the VM process ended, as --exit-status-file records it. */
struct run_exit {
	const char *reason; /* poweroff, reset, quit, panic, triple-fault, kvm-error, disk-error,
			     * killed-by-signal, stop-timeout, error */
	char message[512];  /* one line: what ligero printed on stderr, or what happened */
	int status;	    /* the process's exit status */
	int signal;	    /* killed-by-signal: the signal's number, else 0 */
};

/* Write our pid (and a newline); returns 0 or 1 after printing the error. */
int run_pidfile_write(const char *path);
/* Remove it if it still holds our pid. */
void run_pidfile_remove(const char *path);
/* Remove a previous run's file, so that none is there while this one runs; 0 or 1. */
int run_exit_file_clear(const char *path);
/* {"reason": ..., "message": ..., "status": N[, "signal": N]}; errors are printed. */
void run_exit_file_write(const char *path, const struct run_exit *e);

#endif
