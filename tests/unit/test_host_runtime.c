/*
 * A VM's runtime state from its runtime files: exit records, the lock that says a VM process
 * lives, telling a VM process from a stranger that got its pid, stale leftovers of a process
 * that was SIGKILLed, the states list shows (a VM process whose QMP socket never answers is
 * "unresponsive" within the timeout given, never a hang), and /proc figures read from a fake
 * /proc as well as the real one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/procinfo.h"
#include "host/runtime.h"
#include "util/error.h"

struct fixture {
	char dir[64];
	struct registry r;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ligero-rt-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	unsetenv("LIGERO_RUNTIME_DIR");
	assert_int_equal(registry_open(&f->r, f->dir), 0);
	assert_int_equal(registry_prepare(&f->r, true), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	registry_close(&f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void rt_file(const struct fixture *f, const char *name, enum registry_file which,
		    const char *text)
{
	char *p = registry_path(&f->r, name, which);
	write_file(p, text);
	free(p);
}

static bool rt_exists(const struct fixture *f, const char *name, enum registry_file which)
{
	char *p = registry_path(&f->r, name, which);
	bool yes = access(p, F_OK) == 0;
	free(p);
	return yes;
}

/* A pid that was just in use and is no more (reaped). */
static pid_t dead_pid(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

/* A process whose command line is `ligero run --name NAME --qmp QMP`, as the VMM's is: this
 * test program again (main() below), which only waits. Stopped with SIGKILL by the caller. */
static pid_t fake_vm_process(const struct fixture *f, const char *name, int lockfd)
{
	char *qmp = registry_path(&f->r, name, REG_QMP);
	int sync[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(sync), 0);
	assert_true(lockfd < 9 && sync[1] < 9);
	if ((pid = fork()) == 0) {
		if (lockfd >= 0)
			fcntl(lockfd, F_SETFD, 0); /* the lock goes across exec, as in vm start */
		close(sync[0]);
		dup2(sync[1], 9); /* above the lock's fd */
		execl("/proc/self/exe", "ligero", "run", "--name", name, "--qmp", qmp,
		      (char *)NULL);
		_exit(127);
	}
	close(sync[1]);
	assert_int_equal(read(sync[0], &c, 1), 1); /* exec'd: its cmdline is the new one */
	close(sync[0]);
	free(qmp);
	return pid;
}

static void test_exit_records(void **state)
{
	struct fixture *f = *state;
	struct vm_exit e;

	assert_int_equal(vm_exit_read(&f->r, "a", &e), 0);
	assert_false(e.present);
	rt_file(f, "a", REG_EXIT, "{\"reason\": \"poweroff\", \"message\": \"m\", \"status\": 0}");
	assert_int_equal(vm_exit_read(&f->r, "a", &e), 0);
	assert_true(e.present);
	assert_false(e.crashed);
	assert_string_equal(e.reason, "poweroff");
	rt_file(f, "a", REG_EXIT,
		"{\"reason\": \"triple-fault\", \"message\": \"x\", \"status\": 1}");
	assert_int_equal(vm_exit_read(&f->r, "a", &e), 0);
	assert_true(e.crashed);
	assert_int_equal(e.status, 1);
	rt_file(f, "a", REG_EXIT, "{\"reason\": \"panic\""); /* torn: no record */
	assert_int_equal(vm_exit_read(&f->r, "a", &e), 0);
	assert_false(e.present);
	assert_int_equal(vm_exit_write(&f->r, "a", "crashed", "killed", "gone", -1), 0);
	assert_int_equal(vm_exit_read(&f->r, "a", &e), 0);
	assert_true(e.crashed); /* the state written wins over the reason's usual meaning */
	assert_string_equal(e.message, "gone");
	assert_int_equal(vm_exit_write(&f->r, "a", "stopped", "killed", "by vm kill", -1), 0);
	assert_int_equal(vm_exit_read(&f->r, "a", &e), 0);
	assert_false(e.crashed);
}

static void test_lock(void **state)
{
	struct fixture *f = *state;
	pid_t holder, child;
	int fd, status;

	fd = vm_lock_try(&f->r, "web", &holder);
	assert_true(fd >= 0);
	assert_int_equal(vm_lock_set_pid(fd, 4242), 0);
	assert_int_equal(vm_lock_pid(&f->r, "web"), 4242);
	if ((child = fork()) == 0) {
		pid_t h;
		close(fd);
		_exit(vm_lock_try(&f->r, "web", &h) == -EBUSY && h == 4242 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	fd = vm_lock_try(&f->r, "web", &holder); /* free again once closed */
	assert_true(fd >= 0);
	close(fd);
}

static void test_pid_is_ours(void **state)
{
	struct fixture *f = *state;
	pid_t vm = fake_vm_process(f, "web", -1), stranger;

	assert_true(vm_pid_is_ours(&f->r, "web", vm));
	assert_false(vm_pid_is_ours(&f->r, "other", vm));
	assert_false(vm_pid_is_ours(&f->r, "web", getpid()));
	assert_false(vm_pid_is_ours(&f->r, "web", dead_pid()));
	assert_false(vm_pid_is_ours(&f->r, "web", 0));
	kill(vm, SIGKILL);
	waitpid(vm, NULL, 0);
	if ((stranger = fork()) == 0) {
		execl("/bin/sleep", "sleep", "100", (char *)NULL);
		_exit(127);
	}
	assert_false(vm_pid_is_ours(&f->r, "web", stranger));
	kill(stranger, SIGKILL);
	waitpid(stranger, NULL, 0);
}

static void test_stale_after_sigkill(void **state)
{
	struct fixture *f = *state;
	struct vm_status st;
	pid_t holder, vm;
	int fd;

	/* a VM process holding the lock, with its files; then SIGKILL */
	fd = vm_lock_try(&f->r, "web", &holder);
	assert_true(fd >= 0);
	vm = fake_vm_process(f, "web", fd);
	assert_int_equal(vm_lock_set_pid(fd, vm), 0);
	close(fd); /* only the child holds it now */
	rt_file(f, "web", REG_PID, "1\n");
	rt_file(f, "web", REG_QMP, "");
	rt_file(f, "web", REG_CONSOLE, "");
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.pid, vm);
	assert_int_equal(st.state, VM_UNRESPONSIVE); /* the "socket" is a plain file */
	kill(vm, SIGKILL);
	waitpid(vm, NULL, 0);
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_CRASHED);
	assert_string_equal(st.last.reason, "killed");
	assert_non_null(strstr(st.last.message, "ended without recording why"));
	assert_false(rt_exists(f, "web", REG_PID));
	assert_false(rt_exists(f, "web", REG_QMP));
	assert_false(rt_exists(f, "web", REG_CONSOLE));
	assert_int_equal(vm_lock_pid(&f->r, "web"), 0);
	/* asked again: the same answer, nothing left to clean */
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_CRASHED);
}

static void test_stale_after_host_crash(void **state)
{
	struct fixture *f = *state;
	struct vm_status st;
	char pid[32];
	pid_t holder;
	int fd;

	/* files of a VM process that the host lost: a pid that is dead, or alive and another */
	for (int i = 0; i < 2; i++) {
		fd = vm_lock_try(&f->r, "web", &holder);
		assert_true(fd >= 0);
		assert_int_equal(vm_lock_set_pid(fd, i ? 1 : dead_pid()), 0);
		close(fd);
		snprintf(pid, sizeof(pid), "%d\n", i ? 1 : dead_pid());
		rt_file(f, "web", REG_PID, pid);
		rt_file(f, "web", REG_QMP, "");
		assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
		assert_int_equal(st.state, VM_CRASHED);
		assert_int_equal(st.pid, 0);
		assert_false(rt_exists(f, "web", REG_PID));
		assert_false(rt_exists(f, "web", REG_QMP));
		vm_clear_runtime(&f->r, "web");
	}
}

static void test_states(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vm_status st;
	pid_t holder, vm;
	char *qmp;
	int fd, sock;

	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_DEFINED);
	rt_file(f, "web", REG_EXIT, "{\"reason\": \"poweroff\", \"message\": \"\", \"status\": 0}");
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_STOPPED);
	rt_file(f, "web", REG_EXIT, "{\"reason\": \"panic\", \"message\": \"p\", \"status\": 1}");
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_CRASHED);
	vm_clear_runtime(&f->r, "web");
	/* running, but before its pid file: starting */
	fd = vm_lock_try(&f->r, "web", &holder);
	vm = fake_vm_process(f, "web", fd);
	vm_lock_set_pid(fd, vm);
	close(fd);
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_STARTING);
	assert_int_equal(st.pid, vm);
	/* a QMP socket that takes connections and never greets: unresponsive, in time */
	qmp = registry_path(&f->r, "web", REG_QMP);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmp);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(sock, 8), 0);
	rt_file(f, "web", REG_PID, "1\n");
	assert_int_equal(vm_status_get(&f->r, "web", 200, &st), 0);
	assert_int_equal(st.state, VM_UNRESPONSIVE);
	close(sock);
	free(qmp);
	kill(vm, SIGKILL);
	waitpid(vm, NULL, 0);
}

static void test_procinfo_fake(void **state)
{
	struct fixture *f = *state;
	char proc[128], path[256], cmd[300];
	struct proc_usage u;
	char buf[256];
	size_t len;

	snprintf(proc, sizeof(proc), "%s/proc", f->dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/77", proc);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/77/status", proc);
	write_file(path, "Name:\tligero\nVmPeak:\t 999 kB\nVmRSS:\t   20480 kB\nThreads: 3\n");
	snprintf(path, sizeof(path), "%s/77/stat", proc);
	/* a command name with blanks and parentheses; starttime (field 22) = 500 ticks */
	write_file(path,
		   "77 (a) b (c) S 1 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 3 0 500 1 2 3\n");
	snprintf(path, sizeof(path), "%s/uptime", proc);
	write_file(path, "100.00 50.00\n");
	snprintf(path, sizeof(path), "%s/77/ksm_stat", proc);
	write_file(path, "ksm_rmap_items 10\nksm_merging_pages 256\n");
	assert_int_equal(proc_usage_get(proc, 77, &u), 0);
	assert_int_equal(u.rss, 20480ull * 1024);
	assert_int_equal(u.ksm_shared, 256 * sysconf(_SC_PAGESIZE));
	double want = 100.0 - 500.0 / (double)sysconf(_SC_CLK_TCK);
	assert_true(u.uptime > want - 0.01 && u.uptime < want + 0.01);
	snprintf(path, sizeof(path), "%s/77/ksm_merging_pages", proc);
	write_file(path, "3\n"); /* the older file wins where both are */
	assert_int_equal(proc_usage_get(proc, 77, &u), 0);
	assert_int_equal(u.ksm_shared, 3 * sysconf(_SC_PAGESIZE));
	unlink(path);
	snprintf(path, sizeof(path), "%s/77/ksm_stat", proc);
	unlink(path);
	assert_int_equal(proc_usage_get(proc, 77, &u), 0);
	assert_int_equal(u.ksm_shared, -1); /* "unknown", never a guess */
	assert_int_equal(proc_usage_get(proc, 78, &u), -ENOENT);
	snprintf(path, sizeof(path), "%s/77/cmdline", proc);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, "ligero\0run\0--name\0web\0--qmp\0/q\0", 31), 31);
	close(fd);
	assert_int_equal(proc_cmdline(proc, 77, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 31);
	assert_true(proc_cmdline_has_pair(buf, len, "--name", "web"));
	assert_true(proc_cmdline_has_pair(buf, len, "--qmp", "/q"));
	assert_false(proc_cmdline_has_pair(buf, len, "--name", "we"));
	assert_false(proc_cmdline_has_pair(buf, len, "run", "web"));
	assert_int_equal(proc_cmdline(proc, 78, buf, sizeof(buf), &len), -ESRCH);
}

static void test_procinfo_live(void **state)
{
	struct proc_usage u;
	(void)state;

	assert_int_equal(proc_usage_get("/proc", getpid(), &u), 0);
	assert_true(u.rss > 0);
	assert_true(u.uptime >= 0);
	assert_true(u.ksm_shared >= -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "run")) { /* fake_vm_process() */
		(void)!write(9, "\n", 1);
		close(9);
		for (;;)
			pause();
	}
	const struct CMUnitTest tests[] = {
	    T(test_exit_records),
	    T(test_lock),
	    T(test_pid_is_ours),
	    T(test_stale_after_sigkill),
	    T(test_stale_after_host_crash),
	    T(test_states),
	    T(test_procinfo_fake),
	    T(test_procinfo_live),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
