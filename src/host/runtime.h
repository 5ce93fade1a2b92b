/*
 * What a VM's runtime files say about it: the lock its process holds, its pid, how it ended,
 * and the state `ligero vm list` shows. Liveness is the lock, never a pid alone: a pid outlives
 * nothing (it is reused), while a flock ends with the process that held it, even a SIGKILLed one.
 */
#ifndef LIGERO_HOST_RUNTIME_H
#define LIGERO_HOST_RUNTIME_H

#include "host/registry.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum vm_state {
	VM_DEFINED,  /* never started (since the runtime directory was made) */
	VM_STARTING, /* the process runs; its QMP socket does not answer yet */
	VM_RUNNING,
	VM_PAUSED,
	VM_STOPPING,	 /* a graceful stop was asked for; the guest has not powered off yet */
	VM_STOPPED,	 /* ended cleanly: power-off, reset, or stopped by ligero vm */
	VM_CRASHED,	 /* ended otherwise: panic, triple fault, KVM error, killed, ... */
	VM_UNRESPONSIVE, /* the process runs, its QMP socket does not answer in time */
};

const char *vm_state_name(enum vm_state s);

/* RUN/NAME.exit: {"reason": ..., "message": ..., "status": N}, as `ligero run
 * --exit-status-file` writes it, or as ligero vm writes it for what it did itself (with
 * "state": "stopped" or "crashed" then). */
struct vm_exit {
	bool present;
	char reason[32];
	char message[512];
	int status;
	bool crashed;
};

/* Read NAME's exit record; present false when there is none. */
int vm_exit_read(const struct registry *r, const char *name, struct vm_exit *e);
/* Write NAME's exit record atomically (state: "stopped" or "crashed"). */
int vm_exit_write(const struct registry *r, const char *name, const char *state, const char *reason,
		  const char *message, int status);

/* Take NAME's lock without waiting: the fd (close it to release), or -EBUSY when a process
 * holds it, with *holder its pid as recorded in the lock file (0 when none is recorded yet).
 * The lock file is made when missing (with the runtime directory). */
int vm_lock_try(const struct registry *r, const char *name, pid_t *holder);
/* Record pid in the lock file whose lock fd holds. */
int vm_lock_set_pid(int fd, pid_t pid);
/* The pid recorded in NAME's lock file, 0 when none. */
pid_t vm_lock_pid(const struct registry *r, const char *name);

/* Whether pid is NAME's VM process: alive, and its command line is `... run --name NAME ...`
 * with NAME's QMP socket (so a reused pid or a stranger is never taken for it). */
bool vm_pid_is_ours(const struct registry *r, const char *name, pid_t pid);

/* With NAME's lock held (lockfd) and so no VM process alive: leftovers of a process that died
 * without its exit record (SIGKILL, a host crash) are turned into an exit record (crashed,
 * reason "killed") and the pid, sockets and stop marker are removed. Returns 1 when it found
 * such leftovers, 0 when there were none. */
int vm_clean_stale(const struct registry *r, const char *name, int lockfd);

/* Remove what a previous run left (exit record, pid, sockets, stop marker) before a start. */
void vm_clear_runtime(const struct registry *r, const char *name);

struct vm_status {
	enum vm_state state;
	pid_t pid;	     /* the VM process, 0 when none */
	struct vm_exit last; /* the last exit, for stopped and crashed */
	char qmp_status[32]; /* query-status's "status" ("running", "paused", ...) or "" */
};

/* NAME's state. A running VM is asked through QMP with qmp_timeout_ms as the bound for the
 * whole exchange, so a stuck VM makes it "unresponsive", never a hang. Stale leftovers are
 * cleaned on the way (vm_clean_stale). */
int vm_status_get(const struct registry *r, const char *name, int qmp_timeout_ms,
		  struct vm_status *st);

#endif
