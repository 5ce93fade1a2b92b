/*
 * Starting and stopping defined VMs. One process per VM, no daemon: `ligero run` with the
 * definition's devices and the runtime paths, holding the VM's lock (runtime.h) for its whole
 * life. The VM is controlled through its QMP socket, as any other QMP client would.
 */
#ifndef LIGERO_HOST_LIFECYCLE_H
#define LIGERO_HOST_LIFECYCLE_H

#include "host/registry.h"
#include "host/runtime.h"

#include <stdbool.h>
#include <sys/types.h>

/* The VMM's command line for d: argv[0] is argv0, then "run" and its options; NULL-terminated,
 * malloc'd (free with vm_argv_free). */
char **vm_run_argv(const struct registry *r, const struct vmdef *d, const char *argv0);
void vm_argv_free(char **argv);

/* `ligero vm run NAME`: take NAME's lock (-EBUSY "NAME is already running (pid N)"), clean
 * what a previous run left, record this process's pid and exec exe (the VMM) with the
 * definition's command line, in the foreground. Returns only on failure. */
int vm_run_exec(const struct registry *r, const struct vmdef *d, const char *exe);

/* `ligero vm start NAME`: the same in a detached child (its own session and process group,
 * stdin /dev/null, stdout and stderr appended to NAME.log, no other fds but the lock), then
 * wait until its QMP socket answers and query-status says running (0, *pid the VM's), or it
 * died (-EIO with its one line: the exit record's message or the log's last "ligero:" line),
 * or timeout_ms passed (-ETIMEDOUT; it is left running). */
int vm_start(const struct registry *r, const struct vmdef *d, const char *exe, int timeout_ms,
	     pid_t *pid);

/* `ligero vm stop NAME`: the ACPI power button (QMP system_powerdown), then up to timeout_s for
 * the guest to power off, then a hard stop (QMP quit, then SIGKILL). force: the hard stop at
 * once. -ENOENT-like -EINVAL "NAME is not running" when it is not. *how gets the exit record. */
int vm_stop(const struct registry *r, const char *name, int timeout_s, bool force,
	    struct vm_exit *how);

/* `ligero vm kill NAME`: stop it where it stands (QMP quit, which still flushes its disks, then
 * SIGKILL if it does not go), and record the exit as stopped, reason "killed". */
int vm_kill(const struct registry *r, const char *name, struct vm_exit *how);

/* Wait up to timeout_ms for the VM process pid to be gone (its lock free). 0 or -ETIMEDOUT. */
int vm_wait_gone(const struct registry *r, const char *name, pid_t pid, int timeout_ms);

#endif
