/*
 * Fleets (fleet.h): members started, stopped and killed in parallel, and their state.
 *
 * Each member's action runs in a worker process, not a thread: vm_start forks the VMM, and a
 * fork from a multi-threaded process may only call async-signal-safe functions before exec,
 * which the VMM's child side (logging, closing fds) does not restrict itself to. A worker
 * reports one fixed-size record through its pipe (one write below PIPE_BUF, so it arrives
 * whole) and exits; the VMM it started outlives it, as it outlives `ligero vm start`.
 */
#include "host/fleet.h"
#include "host/lifecycle.h"
#include "host/procinfo.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct record {
	int ret;
	int already;
	pid_t pid;
	char message[600];
};

_Static_assert(sizeof(struct record) < PIPE_BUF, "a worker's record is written at once");

static bool is_up(enum vm_state s)
{
	return s != VM_DEFINED && s != VM_STOPPED && s != VM_CRASHED;
}

static int do_start(const struct registry *r, const char *name, const struct fleet_run_opts *o,
		    struct record *rec)
{
	struct vmdef d;
	int ret = registry_load(r, name, &d);

	if (ret < 0)
		return ret;
	ret = vm_start(r, &d, o->exe, o->start_timeout_ms, &rec->pid);
	vmdef_free(&d);
	return ret;
}

/* One member's action, in its worker. */
static int act(const struct registry *r, const char *name, const struct fleet_run_opts *o,
	       struct record *rec)
{
	struct vm_status st;
	struct vm_exit e;
	int ret = vm_status_get(r, name, 2000, &st);

	if (ret < 0)
		return ret;
	switch (o->action) {
	case FLEET_START:
		if (is_up(st.state)) {
			rec->already = 1;
			rec->pid = st.pid;
			return 0;
		}
		return do_start(r, name, o, rec);
	case FLEET_STOP:
	case FLEET_KILL:
		if (!is_up(st.state)) {
			rec->already = 1;
			return 0;
		}
		return o->action == FLEET_KILL ? vm_kill(r, name, &e)
					       : vm_stop(r, name, o->stop_timeout_s, o->force, &e);
	case FLEET_RESTART:
		if (is_up(st.state) && (ret = vm_stop(r, name, o->stop_timeout_s, false, &e)) < 0)
			return ret;
		return do_start(r, name, o, rec);
	}
	return err_set(EINVAL, "unknown fleet action");
}

struct worker {
	pid_t pid;
	int fd;
	size_t member;
};

static int worker_spawn(const struct registry *r, char *const *names, size_t i,
			const struct fleet_run_opts *o, struct worker *w)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_sys(errno, "pipe");
	fflush(NULL);
	w->pid = fork();
	if (w->pid < 0) {
		int ret = err_sys(errno, "fork");
		close(p[0]);
		close(p[1]);
		return ret;
	}
	if (w->pid == 0) {
		struct record rec = {0};
		close(p[0]);
		err_clear();
		rec.ret = act(r, names[i], o, &rec);
		if (rec.ret < 0)
			snprintf(rec.message, sizeof(rec.message), "%s", err_msg_or(rec.ret));
		_exit(write(p[1], &rec, sizeof(rec)) == (ssize_t)sizeof(rec) ? 0 : 1);
	}
	close(p[1]);
	w->fd = p[0];
	w->member = i;
	return 0;
}

/* Collect worker w's record (it has written it, or died) and report it. */
static bool worker_reap(char *const *names, struct worker *w,
			void (*report)(void *priv, const struct fleet_outcome *out), void *priv)
{
	struct fleet_outcome out = {.name = names[w->member]};
	struct record rec;
	ssize_t n;
	int status;

	do
		n = read(w->fd, &rec, sizeof(rec));
	while (n < 0 && errno == EINTR);
	close(w->fd);
	while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rec)) {
		out.ret = -EIO;
		snprintf(out.message, sizeof(out.message),
			 "its worker process ended without a result");
	} else {
		out.ret = rec.ret;
		out.already = rec.already;
		out.pid = rec.pid;
		memcpy(out.message, rec.message, sizeof(out.message));
		out.message[sizeof(out.message) - 1] = '\0';
	}
	if (report)
		report(priv, &out);
	return out.ret == 0;
}

int fleet_run(const struct registry *r, char *const *names, size_t n,
	      const struct fleet_run_opts *o,
	      void (*report)(void *priv, const struct fleet_outcome *out), void *priv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t k = o->parallel ? o->parallel : (cpus > 0 ? (size_t)cpus : 1);
	struct worker *w;
	struct pollfd *pfd;
	size_t next = 0, active = 0;
	int failed = 0, ret = 0;

	if (k > n)
		k = n ? n : 1;
	w = calloc(k, sizeof(*w));
	pfd = calloc(k, sizeof(*pfd));
	if (!w || !pfd) {
		free(w);
		free(pfd);
		return err_set(ENOMEM, "out of memory");
	}
	while (next < n || active) {
		while (next < n && active < k) {
			if ((ret = worker_spawn(r, names, next, o, &w[active])) < 0)
				break;
			next++;
			active++;
		}
		if (ret < 0 && !active)
			break;
		for (size_t i = 0; i < active; i++)
			pfd[i] = (struct pollfd){.fd = w[i].fd, .events = POLLIN};
		if (poll(pfd, active, -1) < 0 && errno != EINTR) {
			ret = err_sys(errno, "poll");
			break;
		}
		for (size_t i = active; i-- > 0;) {
			if (!pfd[i].revents)
				continue;
			if (!worker_reap(names, &w[i], report, priv))
				failed++;
			w[i] = w[--active];
		}
	}
	/* Only a poll failure leaves workers: wait for them, so none is left a zombie. */
	for (size_t i = 0; i < active; i++)
		if (!worker_reap(names, &w[i], report, priv))
			failed++;
	free(w);
	free(pfd);
	if (ret < 0 && next == 0)
		return ret;
	return failed + (int)(n - next);
}

/* ---- list ---- */

static void info_fill(const struct registry *r, const char *name, int qmp_timeout_ms,
		      struct fleet_member_info *m)
{
	struct vmdef d;
	struct proc_usage u;
	struct stat st;

	snprintf(m->name, sizeof(m->name), "%s", name);
	m->disk_actual = -1;
	if (registry_load(r, name, &d) < 0)
		return;
	m->valid = true;
	m->memory = d.memory;
	if (d.ndisks) {
		m->disk = d.disks[0].path;
		d.disks[0].path = NULL;
		if (stat(m->disk, &st) == 0)
			m->disk_actual = (int64_t)st.st_blocks * 512;
	}
	vmdef_free(&d);
	if (vm_status_get(r, name, qmp_timeout_ms, &m->st) < 0) {
		m->st.state = VM_UNRESPONSIVE;
		return;
	}
	if (is_up(m->st.state) && m->st.pid > 0 && proc_usage_get("/proc", m->st.pid, &u) == 0)
		m->rss = u.rss;
}

int fleet_info(const struct registry *r, const char *prefix, int qmp_timeout_ms,
	       struct fleet_member_info **out, size_t *n)
{
	char **names;
	int ret = fleet_members(r, prefix, &names, n);

	if (ret < 0)
		return ret;
	*out = calloc(*n ? *n : 1, sizeof(**out));
	if (!*out) {
		registry_names_free(names, *n);
		return err_set(ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < *n; i++)
		info_fill(r, names[i], qmp_timeout_ms, &(*out)[i]);
	registry_names_free(names, *n);
	return 0;
}

void fleet_info_free(struct fleet_member_info *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++)
		free(m[i].disk);
	free(m);
}
