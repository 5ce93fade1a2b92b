/*
 * A small blocking QMP client (QEMU Machine Protocol over a UNIX socket), the one `ligero vm`
 * talks to its VMs with. Every call takes a timeout: a VM that stops answering costs its caller
 * that long, never a hang. Events that arrive while a command waits for its answer are kept,
 * in order, for qmp_wait_event.
 */
#ifndef LIGERO_HOST_QMP_CLIENT_H
#define LIGERO_HOST_QMP_CLIENT_H

struct json_object;
struct qmp_client;

/* Connect to the socket at path, read the greeting and leave capabilities negotiation mode
 * (qmp_capabilities), all within timeout_ms. Paths too long for sockaddr_un are reached
 * through their directory. 0 or -errno (-ETIMEDOUT, -ECONNREFUSED, -ENOENT, -EPROTO for a
 * peer that does not speak QMP) with a message. */
int qmp_connect(const char *path, int timeout_ms, struct qmp_client **out);
/* The same over a connected stream socket (taken over: qmp_close closes it). */
int qmp_connect_fd(int fd, const char *name, int timeout_ms, struct qmp_client **out);
void qmp_close(struct qmp_client *c);

/* Run cmd with args (NULL, or an object the call takes over). *ret (if not NULL) gets the
 * "return" value (the caller puts it). A QMP error is -EREMOTEIO with "CLASS: desc" as the
 * message; -ETIMEDOUT when no answer came in time; -EPIPE when the VM closed the socket. */
int qmp_execute(struct qmp_client *c, const char *cmd, struct json_object *args, int timeout_ms,
		struct json_object **ret);

/* Wait for the event named name (NULL: any), kept or new; *ev (if not NULL) gets the whole
 * event object. -ETIMEDOUT, or -EPIPE when the socket closed first. */
int qmp_wait_event(struct qmp_client *c, const char *name, int timeout_ms, struct json_object **ev);

/* Wait until the VM closes the socket (it exits): 0, or -ETIMEDOUT. */
int qmp_wait_close(struct qmp_client *c, int timeout_ms);

/* Connect a stream socket to the UNIX socket at path (of any length: long paths go through
 * their directory's /proc/self/fd entry), retrying while its backlog is full, for up to
 * timeout_ms. The connected fd (blocking, close-on-exec), or -errno with a message. */
int qmp_unix_connect(const char *path, int timeout_ms);

/* The greeting's QMP.version.qemu object ({"major", "minor", "micro"}), or NULL. */
struct json_object *qmp_greeting(struct qmp_client *c);

#endif
