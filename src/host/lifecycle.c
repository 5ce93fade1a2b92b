/*
 * VM start and stop. A start forks a child that becomes the VM process (its own session, stdio
 * to the VM's log, the VM's lock inherited across exec) and watches it until its QMP socket
 * says the guest runs, or it dies; nothing of ligero stays behind to supervise it (systemd may,
 * through `ligero vm run`). A stop asks through QMP and waits for the process to be gone.
 */
#include "host/lifecycle.h"
#include "host/qmp_client.h"
#include "util/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bounds for talking to a VM: hang guards, not expectations (a healthy VM answers in ms). */
#define QMP_TIMEOUT_MS	 5000
#define QUIT_WAIT_MS	 15000
#define KILL_WAIT_MS	 15000
#define LOG_ROTATE_BYTES (1 << 20)

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* ---- the VMM's command line ---- */

struct argv_buf {
	char **v;
	size_t n;
	bool oom;
};

static void add(struct argv_buf *a, const char *s)
{
	char **nv = a->oom ? NULL : realloc(a->v, (a->n + 2) * sizeof(*nv));

	if (nv) {
		a->v = nv;
		nv[a->n] = strdup(s); /* NULL on failure: the vector stays terminated */
	}
	if (!nv || !nv[a->n]) {
		a->oom = true;
		return;
	}
	a->v[++a->n] = NULL;
}

static void add_path(struct argv_buf *a, const char *opt, const struct registry *r,
		     const char *name, enum registry_file f)
{
	char *p = registry_path(r, name, f);

	add(a, opt);
	add(a, p ? p : "");
	a->oom |= !p;
	free(p);
}

static void add_disk(struct argv_buf *a, const struct vmdef_disk *k)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%s,format=%s", k->path, k->format);

	if (k->readonly)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ",readonly=on");
	if (k->cache)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ",cache=%s", k->cache);
	if (k->serial)
		snprintf(buf + n, sizeof(buf) - (size_t)n, ",serial=%s", k->serial);
	add(a, "--disk");
	add(a, buf);
}

static void add_net(struct argv_buf *a, const struct vmdef_net *n)
{
	char buf[128];

	if (n->tap && n->bridge)
		snprintf(buf, sizeof(buf), "tap=%s,bridge=%s,mac=%s", n->tap, n->bridge, n->mac);
	else if (n->tap)
		snprintf(buf, sizeof(buf), "tap=%s,mac=%s", n->tap, n->mac);
	else
		snprintf(buf, sizeof(buf), "bridge=%s,mac=%s", n->bridge, n->mac);
	add(a, "--net");
	add(a, buf);
}

char **vm_run_argv(const struct registry *r, const struct vmdef *d, const char *argv0)
{
	struct argv_buf a = {0};
	char num[32];

	add(&a, argv0);
	add(&a, "run");
	add(&a, "--name");
	add(&a, d->name);
	add(&a, "--memory");
	add(&a, vmdef_size_str(d->memory, num, sizeof(num)));
	add(&a, "--cpus");
	snprintf(num, sizeof(num), "%u", d->cpus);
	add(&a, num);
	if (d->kernel) {
		add(&a, "--kernel");
		add(&a, d->kernel);
	}
	if (d->initrd) {
		add(&a, "--initrd");
		add(&a, d->initrd);
	}
	if (d->cmdline) {
		add(&a, "--cmdline");
		add(&a, d->cmdline);
	}
	for (size_t i = 0; i < d->ndisks; i++)
		add_disk(&a, &d->disks[i]);
	for (size_t i = 0; i < d->nnets; i++)
		add_net(&a, &d->nets[i]);
	if (d->balloon) {
		add(&a, "--balloon");
		add(&a, "0"); /* the device, with nothing taken from the guest yet */
	}
	if (d->rng)
		add(&a, "--rng");
	add(&a, "--console");
	add(&a, "none");
	add_path(&a, "--qmp", r, d->name, REG_QMP);
	add_path(&a, "--console-socket", r, d->name, REG_CONSOLE);
	add_path(&a, "--console-log", r, d->name, REG_CONSOLE_LOG);
	add_path(&a, "--pidfile", r, d->name, REG_PID);
	add_path(&a, "--exit-status-file", r, d->name, REG_EXIT);
	if (a.oom) {
		vm_argv_free(a.v);
		return NULL;
	}
	return a.v;
}

void vm_argv_free(char **argv)
{
	for (char **p = argv; p && *p; p++)
		free(*p);
	free(argv);
}

/* ---- the lock ---- */

/* NAME's lock for a start: -EBUSY "already running (pid N)" when its VM process holds it. A
 * holder that is not (yet) the VM process is a start between its fork and its exec, or another
 * ligero command at work for a few milliseconds: wait for it to become one or the other. */
static int take_lock(const struct registry *r, const char *name)
{
	long long deadline = now_ms() + 5000;
	pid_t holder;
	int fd;

	for (;;) {
		fd = vm_lock_try(r, name, &holder);
		if (fd != -EBUSY)
			return fd;
		if (holder && vm_pid_is_ours(r, name, holder))
			return err_set(EBUSY, "%s is already running (pid %d)", name, (int)holder);
		if (now_ms() > deadline)
			return holder ? err_set(EBUSY, "%s is already running or starting (pid %d)",
						name, (int)holder)
				      : err_set(EBUSY,
						"%s is busy: another ligero command holds its "
						"lock",
						name);
		pause_ms(10);
	}
}

/* Sockets are bound by path, and a path longer than sun_path cannot be bound. */
static int check_socket_paths(const struct registry *r, const char *name)
{
	static const enum registry_file socks[] = {REG_QMP, REG_CONSOLE};

	for (size_t i = 0; i < 2; i++) {
		char *p = registry_path(r, name, socks[i]);
		size_t len = p ? strlen(p) : 0;
		free(p);
		if (len >= 108)
			return err_set(ENAMETOOLONG,
				       "the runtime directory %s is too deep for a UNIX socket "
				       "(%zu bytes, at most 107): set LIGERO_RUNTIME_DIR to a "
				       "shorter path",
				       r->run_dir, len);
	}
	return 0;
}

/* Locked and loaded: the definition as it is now that nobody can change it. */
static int lock_and_load(const struct registry *r, const char *name, struct vmdef *d)
{
	int fd, ret;

	if ((ret = registry_load(r, name, d)) < 0)
		return ret;
	vmdef_free(d);
	if ((ret = check_socket_paths(r, name)) < 0)
		return ret;
	if ((fd = take_lock(r, name)) < 0)
		return fd;
	if ((ret = registry_load(r, name, d)) < 0) {
		close(fd);
		return ret;
	}
	vm_clean_stale(r, name, fd);
	vm_clear_runtime(r, name);
	return fd;
}

/* The lock fd goes across exec into the VMM: from here on it is the VMM's lock. */
static int hand_over_lock(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
		return err_sys(errno, "fcntl");
	return vm_lock_set_pid(fd, getpid());
}

int vm_run_exec(const struct registry *r, const struct vmdef *def, const char *exe)
{
	struct vmdef d;
	char **argv;
	int fd, ret;

	if ((fd = lock_and_load(r, def->name, &d)) < 0)
		return fd;
	argv = vm_run_argv(r, &d, "ligero");
	vmdef_free(&d);
	if (!argv) {
		close(fd);
		return err_set(ENOMEM, "out of memory");
	}
	if ((ret = hand_over_lock(fd)) == 0) {
		execv(exe, argv);
		ret = err_sys(errno, "cannot run %s", exe);
	}
	vm_argv_free(argv);
	/* best effort, its result ignored: a pid left in the unlocked file reads as a stale
	 * leftover anyway */
	int truncated = ftruncate(fd, 0);
	(void)truncated;
	close(fd);
	return ret;
}

/* ---- start ---- */

/* Keep the log from growing without bound: one generation, as the console log has. */
static int open_log(const struct registry *r, const char *name, off_t *start)
{
	char *path = registry_path(r, name, REG_LOG), *old = NULL;
	struct stat st;
	int fd;

	if (!path)
		return err_set(ENOMEM, "out of memory");
	if (stat(path, &st) == 0 && st.st_size > LOG_ROTATE_BYTES &&
	    asprintf(&old, "%s.1", path) >= 0)
		rename(path, old);
	free(old);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fd = err_sys(errno, "cannot open %s", path);
	} else {
		*start = lseek(fd, 0, SEEK_END);
	}
	free(path);
	return fd;
}

/* Close everything from fd 3 up but keep. */
static void close_others(int keep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int dfd = d ? dirfd(d) : -1;

	if (!d) {
		for (int fd = 3; fd < 1024; fd++)
			if (fd != keep)
				close(fd);
		return;
	}
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (fd >= 3 && fd != keep && fd != dfd && e->d_name[0] != '.')
			close(fd);
	}
	closedir(d);
}

static void become_vm(const char *exe, char **argv, int lockfd, int logfd, const char *name)
{
	sigset_t all;
	int devnull = open("/dev/null", O_RDONLY);
	time_t now = time(NULL);
	char when[64];
	struct tm tm;

	setsid();
	if (devnull >= 0)
		dup2(devnull, STDIN_FILENO);
	dup2(logfd, STDOUT_FILENO);
	dup2(logfd, STDERR_FILENO);
	close_others(lockfd);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
	if (hand_over_lock(lockfd) == 0) {
		fprintf(stderr, "---- %s: ligero vm start %s: pid %d\n", when, name, (int)getpid());
		fflush(stderr);
		execv(exe, argv);
		fprintf(stderr, "ligero: vm start: cannot run %s: %s\n", exe, strerror(errno));
	} else {
		fprintf(stderr, "ligero: vm start: %s\n", err_msg());
	}
	_exit(127);
}

/* The last "ligero: " line the VM process wrote to its log since start, without the prefix. */
static void last_log_line(const struct registry *r, const char *name, off_t start, char *out,
			  size_t size)
{
	char *path = registry_path(r, name, REG_LOG), line[1024];
	FILE *f = path ? fopen(path, "re") : NULL;

	out[0] = '\0';
	free(path);
	if (!f)
		return;
	fseeko(f, start, SEEK_SET);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "ligero: ", 8))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, size, "%s", line + 8);
	}
	fclose(f);
}

static int start_failed(const struct registry *r, const char *name, off_t log_start, int status)
{
	struct vm_exit e;
	char line[1024], how[64], *log = registry_path(r, name, REG_LOG);
	int ret;

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	vm_exit_read(r, name, &e);
	last_log_line(r, name, log_start, line, sizeof(line));
	if (e.present && e.message[0])
		snprintf(line, sizeof(line), "%s", e.message);
	if (!e.present) /* so the state says why, not that it was killed */
		vm_exit_write(r, name, "crashed", "start-failed",
			      line[0] ? line : "the VM process ended at its start", -1);
	if (line[0])
		ret = err_set(EIO, "%s did not start: %s", name, line);
	else
		ret = err_set(EIO, "%s did not start: its process %s (see %s)", name, how,
			      log ? log : "its log");
	free(log);
	return ret;
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

/* Is the guest running? A QMP socket that does not answer yet is no failure: it may not listen
 * yet, or be busy building the VM. */
static bool guest_runs(const struct registry *r, const char *name)
{
	char *qmp = registry_path(r, name, REG_QMP);
	struct qmp_client *c;
	struct json_object *ret, *v;
	bool runs = false;

	if (qmp && access(qmp, F_OK) == 0 && qmp_connect(qmp, QMP_TIMEOUT_MS, &c) == 0) {
		if (qmp_execute(c, "query-status", NULL, QMP_TIMEOUT_MS, &ret) == 0) {
			runs = json_object_object_get_ex(ret, "status", &v) &&
			       !strcmp(json_object_get_string(v), "running");
			json_object_put(ret);
		}
		qmp_close(c);
	}
	free(qmp);
	err_clear();
	return runs;
}

/* Wait for the child to be a running VM or to die. Sleeps in poll() on the child's pidfd (its
 * death) and an inotify watch of the runtime directory (its sockets and pid file appearing),
 * with a 200 ms tick as a fallback for kernels without either. */
static int wait_started(const struct registry *r, const char *name, pid_t child, off_t log_start,
			int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	int pfd = pidfd_of(child), ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), status, ret;
	char buf[4096];

	if (ino >= 0)
		inotify_add_watch(ino, r->run_dir, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);
		if (w == child) {
			ret = start_failed(r, name, log_start, status);
			break;
		}
		if (guest_runs(r, name)) {
			ret = 0;
			break;
		}
		if (now_ms() > deadline) {
			ret = err_set(ETIMEDOUT,
				      "%s: the VM process (pid %d) did not report a running guest "
				      "within %d s; it is left as it is (see 'ligero vm list')",
				      name, (int)child, timeout_ms / 1000);
			break;
		}
		struct pollfd p[2] = {{.fd = pfd, .events = POLLIN}, {.fd = ino, .events = POLLIN}};
		if (poll(p, 2, 200) > 0 && ino >= 0)
			while (read(ino, buf, sizeof(buf)) > 0)
				;
	}
	if (pfd >= 0)
		close(pfd);
	if (ino >= 0)
		close(ino);
	return ret;
}

int vm_start(const struct registry *r, const struct vmdef *def, const char *exe, int timeout_ms,
	     pid_t *pid)
{
	struct vmdef d;
	char **argv;
	off_t log_start = 0;
	int lockfd, logfd, ret;
	pid_t child;

	if ((ret = registry_prepare(r, true)) < 0)
		return ret;
	if ((lockfd = lock_and_load(r, def->name, &d)) < 0)
		return lockfd;
	argv = vm_run_argv(r, &d, "ligero");
	vmdef_free(&d);
	if (!argv) {
		close(lockfd);
		return err_set(ENOMEM, "out of memory");
	}
	if ((logfd = open_log(r, def->name, &log_start)) < 0) {
		vm_argv_free(argv);
		close(lockfd);
		return logfd;
	}
	fflush(NULL);
	child = fork();
	if (child == 0)
		become_vm(exe, argv, lockfd, logfd, def->name);
	ret = child < 0 ? err_sys(errno, "fork") : 0;
	vm_argv_free(argv);
	close(logfd);
	close(lockfd); /* the child has it now */
	if (ret < 0)
		return ret;
	if ((ret = wait_started(r, def->name, child, log_start, timeout_ms)) < 0)
		return ret;
	*pid = child;
	return 0;
}

/* ---- stop ---- */

int vm_wait_gone(const struct registry *r, const char *name, pid_t pid, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	int pfd = pid > 0 ? pidfd_of(pid) : -1;
	pid_t holder;

	for (;;) {
		int fd = vm_lock_try(r, name, &holder);
		if (fd >= 0) {
			close(fd);
			if (pfd >= 0)
				close(pfd);
			return 0;
		}
		if (fd != -EBUSY || now_ms() > deadline) {
			if (pfd >= 0)
				close(pfd);
			return fd != -EBUSY ? fd : -ETIMEDOUT;
		}
		/* The lock goes with the process's files, before its pidfd reports the exit. */
		if (pfd >= 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			long long left = deadline - now_ms();
			if (poll(&p, 1, left > 0 ? (int)(left < 1000 ? left : 1000) : 0) > 0)
				continue;
		} else {
			pause_ms(20);
		}
	}
}

/* The VM process of a running VM: its pid and state, or -EINVAL "not running". */
static int running_pid(const struct registry *r, const char *name, struct vm_status *st)
{
	int ret = vm_status_get(r, name, 2000, st);

	if (ret < 0)
		return ret;
	if (st->state == VM_DEFINED || st->state == VM_STOPPED || st->state == VM_CRASHED)
		return err_set(EINVAL, "%s is not running (%s)", name, vm_state_name(st->state));
	return 0;
}

/* QMP quit, then SIGKILL: the VM is gone when this returns 0. */
static int hard_stop(const struct registry *r, const char *name, pid_t pid, struct qmp_client *c)
{
	char *qmp = NULL;

	if (!c && (qmp = registry_path(r, name, REG_QMP)) &&
	    qmp_connect(qmp, QMP_TIMEOUT_MS, &c) < 0)
		c = NULL;
	free(qmp);
	if (c) {
		qmp_execute(c, "quit", NULL, QMP_TIMEOUT_MS, NULL);
		qmp_close(c);
		if (vm_wait_gone(r, name, pid, QUIT_WAIT_MS) == 0) {
			err_clear();
			return 0;
		}
	}
	err_clear();
	/* The pid is checked to be this VM's process right before the signal. */
	if (pid > 0 && vm_pid_is_ours(r, name, pid))
		kill(pid, SIGKILL);
	if (vm_wait_gone(r, name, pid, KILL_WAIT_MS) < 0)
		return err_set(ETIMEDOUT, "%s (pid %d) does not go away, even after SIGKILL", name,
			       (int)pid);
	return 0;
}

static void mark_stopping(const struct registry *r, const char *name)
{
	char *p = registry_path(r, name, REG_STOPPING);
	int fd = p ? open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;

	if (fd >= 0)
		close(fd);
	free(p);
}

/* Press the power button through QMP; without a QMP answer, SIGTERM does the same in the VMM. */
static int press_button(const struct registry *r, const char *name, pid_t pid,
			struct qmp_client **cp)
{
	char *qmp = registry_path(r, name, REG_QMP);
	struct qmp_client *c = NULL;
	struct json_object *ret = NULL, *v;
	int err;

	err = qmp ? qmp_connect(qmp, QMP_TIMEOUT_MS, &c) : -ENOMEM;
	free(qmp);
	if (err == 0 && qmp_execute(c, "query-status", NULL, QMP_TIMEOUT_MS, &ret) == 0 &&
	    json_object_object_get_ex(ret, "status", &v) &&
	    !strcmp(json_object_get_string(v), "paused"))
		qmp_execute(c, "cont", NULL, QMP_TIMEOUT_MS,
			    NULL); /* a paused guest hears nothing */
	json_object_put(ret);
	if (err == 0 && qmp_execute(c, "system_powerdown", NULL, QMP_TIMEOUT_MS, NULL) == 0) {
		*cp = c;
		return 0;
	}
	qmp_close(c);
	err_clear();
	if (pid > 0 && vm_pid_is_ours(r, name, pid) && kill(pid, SIGTERM) == 0)
		return 0;
	return err_set(EIO,
		       "%s: cannot press the power button: no QMP answer, and the process "
		       "cannot be signalled",
		       name);
}

/* The VM process holding name's lock, found without a QMP session of its own (the stop
 * holds one anyway, to press the button): one connection fewer per stop, which is what made
 * `vm stop` slower than a QMP client's system_powerdown (bench/lifecycle.sh). When no VM
 * process holds it, running_pid() says why (not running, a command at work). */
static int vm_process(const struct registry *r, const char *name, pid_t *pid)
{
	struct vm_status st;
	pid_t holder;
	int fd = vm_lock_try(r, name, &holder), ret;

	if (fd == -EBUSY && holder > 0 && vm_pid_is_ours(r, name, holder)) {
		*pid = holder;
		return 0;
	}
	if (fd >= 0)
		close(fd);
	ret = running_pid(r, name, &st);
	*pid = st.pid;
	return ret;
}

int vm_stop(const struct registry *r, const char *name, int timeout_s, bool force,
	    struct vm_exit *how)
{
	struct qmp_client *c = NULL;
	char msg[256];
	pid_t pid;
	int ret;

	if (force)
		return vm_kill(r, name, how);
	if ((ret = vm_process(r, name, &pid)) < 0)
		return ret;
	mark_stopping(r, name);
	if ((ret = press_button(r, name, pid, &c)) < 0)
		return ret;
	ret = vm_wait_gone(r, name, pid, timeout_s * 1000);
	if (ret == -ETIMEDOUT) {
		if ((ret = hard_stop(r, name, pid, c)) < 0)
			return ret;
		snprintf(msg, sizeof(msg),
			 "the guest did not power off within %d s of the power button; stopped it",
			 timeout_s);
		vm_exit_write(r, name, "stopped", "stop-timeout", msg, -1);
	} else {
		qmp_close(c);
	}
	if (ret < 0)
		return ret;
	return vm_exit_read(r, name, how);
}

int vm_kill(const struct registry *r, const char *name, struct vm_exit *how)
{
	struct vm_status st;
	int ret;

	if ((ret = running_pid(r, name, &st)) < 0)
		return ret;
	if ((ret = hard_stop(r, name, st.pid, NULL)) < 0)
		return ret;
	vm_exit_write(r, name, "stopped", "killed", "stopped by 'ligero vm kill'", -1);
	return vm_exit_read(r, name, how);
}
