/*
 * The QMP server (QEMU Machine Protocol, QEMU's docs/interop/qmp-spec.rst): a UNIX socket
 * served by the VMM's event loop, any number of clients, each with its own capability
 * negotiation. The protocol lives here (greeting, qmp_capabilities, request checks, errors,
 * events); the commands come as a table (qmp_cmds.h has the VM's).
 *
 * Limits: a text over QMP_TEXT_MAX bytes or QMP_DEPTH_MAX levels deep is answered with an
 * error, as QEMU does; a client whose unread replies and events pass QMP_OUT_MAX bytes (it
 * sends and does not read, or does not read events) is dropped, so no client can make the
 * VMM's memory grow or stall the loop.
 */
#ifndef LIGERO_VMM_QMP_H
#define LIGERO_VMM_QMP_H

#include "vmm/loop.h"

#include <stdbool.h>
#include <stddef.h>

#define QMP_OUT_MAX	(1024 * 1024)
#define QMP_CLIENTS_MAX 64

struct json_object;
struct qmp_server;

/* An error for the client: QEMU's class ("GenericError", "CommandNotFound",
 * "DeviceNotActive", ...) and description. */
struct qmp_error {
	const char *cls;
	char desc[256];
};

/* Fill e and return -1, for `return qmp_error_set(...)`. */
int qmp_error_set(struct qmp_error *e, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum qmp_type { QMP_T_INT, QMP_T_STR, QMP_T_BOOL, QMP_T_ARRAY, QMP_T_ANY };

struct qmp_arg {
	const char *name;
	enum qmp_type type;
	bool optional;
};

/* A command: args holds the checked "arguments" object ({} when the client sent none). On
 * success return 0 with *ret set (NULL means {}); on failure fill err and return -1. Runs on
 * the loop's thread. */
typedef int qmp_cmd_fn(struct qmp_server *s, void *ctx, struct json_object *args,
		       struct json_object **ret, struct qmp_error *err);

#define QMP_ARGS_MAX 4
struct qmp_cmd {
	const char *name;
	qmp_cmd_fn *fn;
	struct qmp_arg args[QMP_ARGS_MAX]; /* checked before fn runs; ends at a NULL name */
};

/* What the greeting and query-version say. */
struct qmp_version {
	int major, minor, micro;
	const char *package;
};

/* A server on loop with commands cmds[0..ncmds) (ctx is handed to them). */
int qmp_server_new(struct loop *loop, const struct qmp_version *v, const struct qmp_cmd *cmds,
		   size_t ncmds, void *ctx, struct qmp_server **out);
/* Listen at path (unixsock.h: mode 0600, a live server's socket refused, a stale one
 * replaced). */
int qmp_server_listen(struct qmp_server *s, const char *path);
/* Serve an already connected socket (tests use a socketpair); the server owns fd from now. */
int qmp_server_add_client(struct qmp_server *s, int fd);
/* Send an event to every client past capability negotiation, stamped with the time now.
 * data (may be NULL) is consumed. */
void qmp_server_event(struct qmp_server *s, const char *name, struct json_object *data);
/* Clients connected now. */
unsigned qmp_server_clients(const struct qmp_server *s);
/* The version the server announces. */
const struct qmp_version *qmp_server_version(const struct qmp_server *s);
/* The command table, for query-commands. */
const struct qmp_cmd *qmp_server_commands(const struct qmp_server *s, size_t *n);
/* Send what is still queued (without waiting for slow clients), close every client and the
 * socket, and remove the socket file. */
void qmp_server_free(struct qmp_server *s);

#endif
