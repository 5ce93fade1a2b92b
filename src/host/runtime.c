/*
 * A VM's runtime state, read from its runtime files. The lock file is the one source of truth
 * about liveness: the VM process holds an exclusive flock on RUN/NAME.lock from before its
 * start until it is gone, whatever way it goes. Everything else (pid, sockets, exit record) is
 * interpreted in the light of it.
 */
#include "host/runtime.h"
#include "host/procinfo.h"
#include "host/qmp_client.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const char *vm_state_name(enum vm_state s)
{
	static const char *const names[] = {
	    [VM_DEFINED] = "defined", [VM_STARTING] = "starting",	  [VM_RUNNING] = "running",
	    [VM_PAUSED] = "paused",   [VM_STOPPING] = "stopping",	  [VM_STOPPED] = "stopped",
	    [VM_CRASHED] = "crashed", [VM_UNRESPONSIVE] = "unresponsive",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* Reasons (ligero run's, docs/ligero-run.md, and ligero vm's own) after which a VM counts as
 * stopped: it powered off or rebooted, or somebody stopped it (QMP quit, a signal, a stop that
 * timed out, vm kill). Any other reason (panic, triple-fault, kvm-error, disk-error, error) is
 * a crash. */
static bool clean_reason(const char *reason)
{
	static const char *const clean[] = {"poweroff",		"reset",  "quit", "stop-timeout",
					    "killed-by-signal", "killed", NULL};

	for (int i = 0; clean[i]; i++)
		if (!strcmp(reason, clean[i]))
			return true;
	return false;
}

int vm_exit_read(const struct registry *r, const char *name, struct vm_exit *e)
{
	char *path = registry_path(r, name, REG_EXIT);
	struct json_object *o, *v;

	memset(e, 0, sizeof(*e));
	if (!path)
		return err_set(ENOMEM, "out of memory");
	o = json_object_from_file(path);
	free(path);
	if (!o)
		return 0; /* none, or torn beyond reading: no record */
	e->present = true;
	snprintf(e->reason, sizeof(e->reason), "%s",
		 json_object_object_get_ex(o, "reason", &v) ? json_object_get_string(v)
							    : "unknown");
	if (json_object_object_get_ex(o, "message", &v) && json_object_is_type(v, json_type_string))
		snprintf(e->message, sizeof(e->message), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "status", &v))
		e->status = json_object_get_int(v);
	if (json_object_object_get_ex(o, "state", &v) && json_object_is_type(v, json_type_string))
		e->crashed = !strcmp(json_object_get_string(v), "crashed");
	else
		e->crashed = !clean_reason(e->reason);
	json_object_put(o);
	return 0;
}

int vm_exit_write(const struct registry *r, const char *name, const char *state, const char *reason,
		  const char *message, int status)
{
	char *path = registry_path(r, name, REG_EXIT), *tmp = NULL;
	struct json_object *o = json_object_new_object();
	const char *text;
	int fd, ret = 0;

	json_object_object_add(o, "reason", json_object_new_string(reason));
	json_object_object_add(o, "message", json_object_new_string(message));
	json_object_object_add(o, "status", json_object_new_int(status));
	json_object_object_add(o, "state", json_object_new_string(state));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!path || asprintf(&tmp, "%s.tmp", path) < 0) {
		ret = err_set(ENOMEM, "out of memory");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		ret = err_sys(errno, "cannot write %s", tmp);
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		ret = err_sys(errno, "cannot write %s", path);
		unlink(tmp);
	}
out:
	json_object_put(o);
	free(tmp);
	free(path);
	return ret;
}

static pid_t read_pid_fd(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long v;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	v = strtol(buf, NULL, 10);
	return v > 0 && v < (1L << 30) ? (pid_t)v : 0;
}

pid_t vm_lock_pid(const struct registry *r, const char *name)
{
	char *path = registry_path(r, name, REG_LOCK);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	pid_t pid = 0;

	free(path);
	if (fd >= 0) {
		pid = read_pid_fd(fd);
		close(fd);
	}
	return pid;
}

int vm_lock_try(const struct registry *r, const char *name, pid_t *holder)
{
	char *path;
	int fd, ret;

	*holder = 0;
	if ((ret = registry_prepare(r, true)) < 0)
		return ret;
	if (!(path = registry_path(r, name, REG_LOCK)))
		return err_set(ENOMEM, "out of memory");
	/* The lock file may be removed (vm delete) between open and flock: a lock on a file
	 * that no longer has the name locks nothing, so check and take the new one. */
	for (int tries = 0; tries < 16; tries++) {
		struct stat a, b;

		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			ret = err_sys(errno, "%s", path);
			break;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			ret = errno == EWOULDBLOCK ? -EBUSY : err_sys(errno, "lock %s", path);
			if (ret == -EBUSY)
				*holder = read_pid_fd(fd);
			close(fd);
			break;
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			ret = fd;
			break;
		}
		close(fd);
		ret = err_set(EAGAIN, "%s keeps being replaced", path);
	}
	free(path);
	return ret;
}

int vm_lock_set_pid(int fd, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		return err_sys(errno, "cannot record the VM's pid");
	return 0;
}

bool vm_pid_is_ours(const struct registry *r, const char *name, pid_t pid)
{
	char *buf, *qmp;
	size_t len;
	bool ours = false;

	if (pid <= 0 || !(buf = malloc(65536)))
		return false;
	if ((qmp = registry_path(r, name, REG_QMP)) &&
	    proc_cmdline("/proc", pid, buf, 65536, &len) == 0)
		ours = proc_cmdline_has_pair(buf, len, "--name", name) &&
		       proc_cmdline_has_pair(buf, len, "--qmp", qmp);
	free(qmp);
	free(buf);
	return ours;
}

static void unlink_file(const struct registry *r, const char *name, enum registry_file f)
{
	char *p = registry_path(r, name, f);

	if (p)
		unlink(p);
	free(p);
}

void vm_clear_runtime(const struct registry *r, const char *name)
{
	static const enum registry_file files[] = {REG_EXIT, REG_PID, REG_QMP, REG_CONSOLE,
						   REG_STOPPING};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink_file(r, name, files[i]);
}

int vm_clean_stale(const struct registry *r, const char *name, int lockfd)
{
	pid_t pid = read_pid_fd(lockfd);
	struct vm_exit e;
	char msg[256];

	if (!pid)
		return 0;
	vm_exit_read(r, name, &e);
	if (!e.present) {
		/* The process is gone (we hold its lock) and wrote no record: it was killed by
		 * a signal it could not catch, or the host went down under it. */
		snprintf(msg, sizeof(msg),
			 "the VM process (pid %d) ended without recording why: killed by a signal "
			 "(SIGKILL, the OOM killer) or the host went down",
			 (int)pid);
		vm_exit_write(r, name, "crashed", "killed", msg, -1);
	}
	unlink_file(r, name, REG_PID);
	unlink_file(r, name, REG_QMP);
	unlink_file(r, name, REG_CONSOLE);
	unlink_file(r, name, REG_STOPPING);
	if (ftruncate(lockfd, 0) < 0)
		return err_sys(errno, "cannot clear %s's lock file", name);
	return e.present ? 0 : 1;
}

static bool exists(const struct registry *r, const char *name, enum registry_file f)
{
	char *p = registry_path(r, name, f);
	bool yes = p && access(p, F_OK) == 0;

	free(p);
	return yes;
}

/* The VM process runs (its lock is held): what does it say? */
static void ask_running(const struct registry *r, const char *name, int timeout_ms,
			struct vm_status *st)
{
	struct qmp_client *c;
	struct json_object *ret, *v;
	char *qmp = registry_path(r, name, REG_QMP);

	st->state = VM_STARTING;
	if (!qmp)
		return;
	if (!exists(r, name, REG_PID)) {
		free(qmp); /* its sockets are not ready yet */
		return;
	}
	if (qmp_connect(qmp, timeout_ms, &c) < 0) {
		free(qmp);
		err_clear();
		st->state = VM_UNRESPONSIVE;
		return;
	}
	free(qmp);
	if (qmp_execute(c, "query-status", NULL, timeout_ms, &ret) < 0) {
		err_clear();
		st->state = VM_UNRESPONSIVE;
		qmp_close(c);
		return;
	}
	if (json_object_object_get_ex(ret, "status", &v))
		snprintf(st->qmp_status, sizeof(st->qmp_status), "%s", json_object_get_string(v));
	json_object_put(ret);
	qmp_close(c);
	if (!strcmp(st->qmp_status, "running"))
		st->state = exists(r, name, REG_STOPPING) ? VM_STOPPING : VM_RUNNING;
	else if (!strcmp(st->qmp_status, "paused"))
		st->state = VM_PAUSED;
	else if (!strcmp(st->qmp_status, "prelaunch") || !strcmp(st->qmp_status, "inmigrate"))
		st->state = VM_STARTING;
	else
		st->state = VM_STOPPING; /* shutdown, guest-panicked: on its way out */
}

int vm_status_get(const struct registry *r, const char *name, int qmp_timeout_ms,
		  struct vm_status *st)
{
	pid_t holder;
	int fd;

	memset(st, 0, sizeof(*st));
	fd = vm_lock_try(r, name, &holder);
	if (fd == -EBUSY) {
		st->pid = holder;
		if (holder && !vm_pid_is_ours(r, name, holder)) {
			/* Held by a `ligero vm` command at work (a start before its exec, an
			 * edit): the VM itself is not up. */
			st->state = VM_STARTING;
			return 0;
		}
		ask_running(r, name, qmp_timeout_ms, st);
		return 0;
	}
	if (fd < 0)
		return fd;
	vm_clean_stale(r, name, fd);
	close(fd);
	vm_exit_read(r, name, &st->last);
	if (!st->last.present)
		st->state = VM_DEFINED;
	else
		st->state = st->last.crashed ? VM_CRASHED : VM_STOPPED;
	return 0;
}
