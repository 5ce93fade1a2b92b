/*
 * The VM registry: the state directory with one definition file per VM, and the runtime
 * directory where running VMs keep their sockets, pid and exit records.
 *
 *   STATE/vms/NAME.json          the definition (vmdef.h), replaced atomically
 *   STATE/log/NAME.log           the VM process's own messages (its stderr)
 *   STATE/log/NAME.console.log   the serial console, rotated by the VMM (NAME.console.log.1)
 *   RUN/NAME.lock                held (flock) by the VM process; holds its pid
 *   RUN/NAME.qmp RUN/NAME.console   its QMP and console sockets
 *   RUN/NAME.pid                 written by the VMM once its sockets answer
 *   RUN/NAME.exit                how it ended (JSON, written by the VMM or by ligero vm)
 *   RUN/NAME.stopping            a graceful stop is under way
 *
 * STATE is /var/lib/ligero for root, $XDG_DATA_HOME/ligero (~/.local/share/ligero) for others,
 * or what --state-dir or LIGERO_STATE_DIR say. RUN is LIGERO_RUNTIME_DIR if set; else
 * STATE/run when the state directory was chosen by hand (two state directories never share
 * sockets); else /run/ligero for root, $XDG_RUNTIME_DIR/ligero, or STATE/run.
 */
#ifndef LIGERO_HOST_REGISTRY_H
#define LIGERO_HOST_REGISTRY_H

#include "host/vmdef.h"

#include <stdbool.h>
#include <stddef.h>

struct registry {
	char *state_dir;
	char *vms_dir;
	char *log_dir;
	char *run_dir;
};

enum registry_file {
	REG_DEF,
	REG_LOG,
	REG_CONSOLE_LOG,
	REG_LOCK,
	REG_QMP,
	REG_CONSOLE,
	REG_PID,
	REG_EXIT,
	REG_STOPPING,
};

/* Resolve the directories (state_dir NULL: LIGERO_STATE_DIR or the default). Nothing is created
 * until something is written. 0 or -errno. */
int registry_open(struct registry *r, const char *state_dir);
void registry_close(struct registry *r);

/* Create the state (and with run, the runtime) directories as needed. */
int registry_prepare(const struct registry *r, bool run);

/* The path of one of NAME's files, malloc'd (NULL only when memory ran out). */
char *registry_path(const struct registry *r, const char *name, enum registry_file f);

/* Names of the defined VMs, sorted; free with registry_names_free. A directory that does not
 * exist yet is an empty registry. */
int registry_names(const struct registry *r, char ***names, size_t *n);
void registry_names_free(char **names, size_t n);

/* Load NAME's definition: -ENOENT "no VM named NAME", or the parser's one-line message. */
int registry_load(const struct registry *r, const char *name, struct vmdef *d);

/* Write a new definition: -EEXIST when NAME is defined already. Atomic: a temporary file in
 * the same directory, fsync, rename without replacing, fsync of the directory. */
int registry_create(const struct registry *r, const struct vmdef *d);
/* Replace NAME's definition (it must exist), atomically. */
int registry_replace(const struct registry *r, const struct vmdef *d);
/* Remove the definition and NAME's logs and runtime records (not its disks). */
int registry_remove(const struct registry *r, const char *name);

/* Serialise definition changes (create, edit, delete): an exclusive lock on STATE/.lock,
 * waited for up to 30 s. Returns the fd to pass to registry_unlock, or -errno. */
int registry_lock(const struct registry *r);
void registry_unlock(int fd);

/* A MAC address no defined VM uses (other than skip's own, skip may be NULL), for a new NIC:
 * 52:54:00 and three random bytes, drawn again on a collision. Definitions that do not parse
 * are skipped: their MACs cannot be known. */
int registry_new_mac(const struct registry *r, const char *skip, const struct vmdef *extra,
		     char mac[VMDEF_MAC_LEN + 1]);
/* The name of a defined VM other than skip that uses mac, malloc'd, or NULL. */
char *registry_mac_owner(const struct registry *r, const char *mac, const char *skip);

#endif
