/*
 * The QMP commands of a ligero VM, with QEMU's names, arguments and answers (QEMU's
 * qapi/ schema files), and ligero's own under the "ligero-" prefix. They reach the VM only through
 * struct qmp_vm_ops, so the protocol and every answer's shape are tested without KVM
 * (tests/unit/test_vmm_qmp.c gives them a fake VM). See docs/qmp.md.
 */
#ifndef LIGERO_VMM_QMP_CMDS_H
#define LIGERO_VMM_QMP_CMDS_H

#include "vmm/qmp.h"
#include "vmm/virtio/vmdev.h"

#include <stdbool.h>
#include <stdint.h>

/* The QEMU version whose QMP ligero speaks (the shapes of its answers). */
#define QMP_QEMU_MAJOR 7
#define QMP_QEMU_MINOR 2
#define QMP_QEMU_MICRO 0

struct json_object;

/* Why the VM stopped, as QEMU's SHUTDOWN event says it (ShutdownCause in qapi/run-state.json). */
enum qmp_shutdown {
	QMP_SHUTDOWN_GUEST,	  /* "guest-shutdown": the guest powered off */
	QMP_SHUTDOWN_GUEST_RESET, /* "guest-reset": it rebooted, or triple-faulted */
	QMP_SHUTDOWN_GUEST_PANIC, /* "guest-panic" */
	QMP_SHUTDOWN_QMP_QUIT,	  /* "host-qmp-quit" */
	QMP_SHUTDOWN_QMP_RESET,	  /* "host-qmp-system-reset" */
	QMP_SHUTDOWN_SIGNAL,	  /* "host-signal" */
	QMP_SHUTDOWN_UI,	  /* "host-ui": Ctrl-A x on the console */
	QMP_SHUTDOWN_ERROR,	  /* "host-error": KVM or a device failed */
};

struct qmp_vm_cpu {
	int thread_id; /* the vCPU thread's TID */
};

struct qmp_vm_ops {
	/* run state */
	bool (*running)(void *vm);
	int (*pause)(void *vm);	 /* 0, or -errno with a message (util/error.h) */
	int (*resume)(void *vm); /* the same */
	/* the ACPI power button, as SIGTERM presses it */
	void (*powerdown)(void *vm);
	/* end the VM (the loop stops after the answer is sent) */
	void (*stop)(void *vm, enum qmp_shutdown why);
	/* facts */
	const char *(*name)(void *vm); /* NULL: none given */
	unsigned (*cpus)(void *vm, struct qmp_vm_cpu *out, unsigned max);
	uint64_t (*ram_size)(void *vm);
	/* the balloon: -ENODEV without one; sizes in bytes of guest RAM left to the guest */
	int (*balloon_set)(void *vm, uint64_t target);
	int (*balloon_actual)(void *vm, uint64_t *actual);
	/* disk i for query-block: 0, or -ENOENT past the last */
	int (*disk)(void *vm, unsigned i, struct vm_disk_info *out);
	/* ligero-query-exit's and ligero-query-stats' objects (new references) */
	struct json_object *(*exit_info)(void *vm);
	struct json_object *(*stats)(void *vm);
};

/* The context the commands get: ops on vm. */
struct qmp_vm {
	const struct qmp_vm_ops *ops;
	void *vm;
	bool shutdown_sent; /* SHUTDOWN goes out once */
};

/* The command table for qmp_server_new() (ctx: a struct qmp_vm). */
const struct qmp_cmd *qmp_vm_commands(size_t *n);
/* The version to announce: QMP_QEMU_* and "ligero VERSION". */
struct qmp_version qmp_vm_version(void);
/* Send SHUTDOWN (once per VM) with QEMU's guest/reason data. */
void qmp_vm_shutdown_event(struct qmp_server *s, struct qmp_vm *q, enum qmp_shutdown why);
/* QEMU's name for the cause ("guest-shutdown", ...). */
const char *qmp_shutdown_reason(enum qmp_shutdown why);

#endif
