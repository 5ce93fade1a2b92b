/*
 * The registry: where the state and runtime directories are, definitions written atomically
 * (nothing half-written left behind, a duplicate refused even when two processes race), names
 * listed, MACs unique among the defined VMs, and a removal that takes the VM's files along.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/registry.h"
#include "util/error.h"

struct fixture {
	char dir[64];
	struct registry r;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ligero-reg-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	unsetenv("LIGERO_RUNTIME_DIR");
	unsetenv("LIGERO_STATE_DIR");
	assert_int_equal(registry_open(&f->r, f->dir), 0);
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

static void make_def(struct vmdef *d, const char *name)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	vmdef_random_uuid(d->uuid);
	vmdef_stamp(d);
	d->memory = 256ull << 20;
	d->cpus = 1;
	d->kernel = strdup("/boot/vmlinuz");
}

static void test_directories(void **state)
{
	struct registry r;
	(void)state;

	setenv("HOME", "/home/someone", 1);
	unsetenv("LIGERO_STATE_DIR");
	unsetenv("LIGERO_RUNTIME_DIR");
	/* chosen by hand: the runtime directory goes with it */
	assert_int_equal(registry_open(&r, "/srv/vms"), 0);
	assert_string_equal(r.state_dir, "/srv/vms");
	assert_string_equal(r.vms_dir, "/srv/vms/vms");
	assert_string_equal(r.log_dir, "/srv/vms/log");
	assert_string_equal(r.run_dir, "/srv/vms/run");
	registry_close(&r);
	setenv("LIGERO_STATE_DIR", "/env/state", 1);
	assert_int_equal(registry_open(&r, NULL), 0);
	assert_string_equal(r.state_dir, "/env/state");
	assert_string_equal(r.run_dir, "/env/state/run");
	registry_close(&r);
	setenv("LIGERO_RUNTIME_DIR", "/rt", 1);
	assert_int_equal(registry_open(&r, "/srv/vms"), 0);
	assert_string_equal(r.run_dir, "/rt");
	registry_close(&r);
	unsetenv("LIGERO_RUNTIME_DIR");
	unsetenv("LIGERO_STATE_DIR");
	/* the defaults: root's, or the user's XDG directories */
	assert_int_equal(registry_open(&r, NULL), 0);
	if (geteuid() == 0) {
		assert_string_equal(r.state_dir, "/var/lib/ligero");
		assert_string_equal(r.run_dir, "/run/ligero");
	} else {
		setenv("XDG_DATA_HOME", "/xdg/data", 1);
		setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
		registry_close(&r);
		assert_int_equal(registry_open(&r, NULL), 0);
		assert_string_equal(r.state_dir, "/xdg/data/ligero");
		assert_string_equal(r.run_dir, "/run/user/1000/ligero");
		unsetenv("XDG_DATA_HOME");
		unsetenv("XDG_RUNTIME_DIR");
		registry_close(&r);
		assert_int_equal(registry_open(&r, NULL), 0);
		assert_string_equal(r.state_dir, "/home/someone/.local/share/ligero");
		assert_string_equal(r.run_dir, "/home/someone/.local/share/ligero/run");
	}
	char *p = registry_path(&r, "web1", REG_QMP);
	assert_non_null(strstr(p, "/web1.qmp"));
	free(p);
	p = registry_path(&r, "web1", REG_CONSOLE_LOG);
	assert_non_null(strstr(p, "/log/web1.console.log"));
	free(p);
	registry_close(&r);
}

/* Only NAME.json files in vms/: no temporary file left behind. */
static void assert_clean(const struct fixture *f, int want)
{
	char path[128];
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "%s/vms", f->dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		assert_non_null(strstr(e->d_name, ".json"));
		assert_int_not_equal(e->d_name[0], '.');
		n++;
	}
	closedir(d);
	assert_int_equal(n, want);
}

static void test_create_load_replace(void **state)
{
	struct fixture *f = *state;
	struct vmdef d, back;
	char **names;
	size_t n;

	assert_int_equal(registry_names(&f->r, &names, &n), 0); /* nothing yet, no directory */
	assert_int_equal(n, 0);
	make_def(&d, "web2");
	assert_int_equal(registry_create(&f->r, &d), 0);
	snprintf(d.name, sizeof(d.name), "web1");
	assert_int_equal(registry_create(&f->r, &d), 0);
	assert_int_equal(registry_create(&f->r, &d), -EEXIST);
	assert_non_null(strstr(err_msg(), "exists already"));
	assert_clean(f, 2);
	assert_int_equal(registry_names(&f->r, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "web1"); /* sorted */
	assert_string_equal(names[1], "web2");
	registry_names_free(names, n);
	assert_int_equal(registry_load(&f->r, "web1", &back), 0);
	assert_string_equal(back.uuid, d.uuid);
	assert_int_equal(back.memory, 256ull << 20);
	vmdef_free(&back);
	d.cpus = 4;
	assert_int_equal(registry_replace(&f->r, &d), 0);
	assert_int_equal(registry_load(&f->r, "web1", &back), 0);
	assert_int_equal(back.cpus, 4);
	vmdef_free(&back);
	assert_clean(f, 2);
	snprintf(d.name, sizeof(d.name), "nosuch");
	assert_int_equal(registry_replace(&f->r, &d), -ENOENT);
	assert_int_equal(registry_load(&f->r, "nosuch", &back), -ENOENT);
	assert_non_null(strstr(err_msg(), "no VM named 'nosuch'"));
	assert_int_equal(registry_load(&f->r, "../etc", &back), -EINVAL);
	/* invalid values are never written */
	snprintf(d.name, sizeof(d.name), "web3");
	d.cpus = 0;
	assert_int_equal(registry_create(&f->r, &d), -EINVAL);
	assert_clean(f, 2);
	vmdef_free(&d);
}

static void test_file_named_for_another(void **state)
{
	struct fixture *f = *state;
	struct vmdef d, back;
	char from[128], to[128];

	make_def(&d, "alpha");
	assert_int_equal(registry_create(&f->r, &d), 0);
	snprintf(from, sizeof(from), "%s/vms/alpha.json", f->dir);
	snprintf(to, sizeof(to), "%s/vms/beta.json", f->dir);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(registry_load(&f->r, "beta", &back), -EINVAL);
	assert_non_null(strstr(err_msg(), "beta.json: 'name' is 'alpha'"));
	vmdef_free(&d);
}

static void test_racing_creates(void **state)
{
	struct fixture *f = *state;
	int wins = 0, status;
	pid_t pids[8];

	/* Eight processes create one name at once: exactly one succeeds. */
	for (int i = 0; i < 8; i++) {
		if ((pids[i] = fork()) == 0) {
			struct vmdef d;
			make_def(&d, "race");
			d.cpus = (unsigned)i + 1;
			_exit(registry_create(&f->r, &d) == 0 ? 0 : 1);
		}
	}
	for (int i = 0; i < 8; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		wins += WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	assert_int_equal(wins, 1);
	assert_clean(f, 1);
}

static void test_macs_unique(void **state)
{
	struct fixture *f = *state;
	char mac[VMDEF_MAC_LEN + 1], *owner;
	static char seen[200][VMDEF_MAC_LEN + 1];

	for (int i = 0; i < 200; i++) {
		struct vmdef d;
		char name[16];
		snprintf(name, sizeof(name), "vm%d", i);
		make_def(&d, name);
		assert_int_equal(registry_new_mac(&f->r, NULL, &d, mac), 0);
		struct vmdef_net n = {.bridge = "br0"};
		memcpy(n.mac, mac, sizeof(mac));
		assert_int_equal(vmdef_add_net(&d, &n), 0);
		/* a second NIC of the same VM gets another one */
		assert_int_equal(registry_new_mac(&f->r, NULL, &d, mac), 0);
		assert_string_not_equal(mac, d.nets[0].mac);
		assert_int_equal(registry_create(&f->r, &d), 0);
		memcpy(seen[i], d.nets[0].mac, sizeof(seen[i]));
		vmdef_free(&d);
	}
	for (int i = 0; i < 200; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	owner = registry_mac_owner(&f->r, seen[17], NULL);
	assert_string_equal(owner, "vm17");
	free(owner);
	assert_null(registry_mac_owner(&f->r, seen[17], "vm17")); /* its own does not count */
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static void test_remove(void **state)
{
	struct fixture *f = *state;
	struct vmdef d;
	static const enum registry_file files[] = {REG_LOG, REG_CONSOLE_LOG, REG_EXIT, REG_PID,
						   REG_LOCK};
	char *p, old[256];

	make_def(&d, "gone");
	assert_int_equal(registry_create(&f->r, &d), 0);
	assert_int_equal(registry_prepare(&f->r, true), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		p = registry_path(&f->r, "gone", files[i]);
		touch(p);
		free(p);
	}
	p = registry_path(&f->r, "gone", REG_CONSOLE_LOG);
	snprintf(old, sizeof(old), "%s.1", p);
	touch(old);
	free(p);
	assert_int_equal(registry_remove(&f->r, "gone"), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		p = registry_path(&f->r, "gone", files[i]);
		assert_int_equal(access(p, F_OK), -1);
		free(p);
	}
	assert_int_equal(access(old, F_OK), -1);
	p = registry_path(&f->r, "gone", REG_DEF);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	assert_int_equal(registry_remove(&f->r, "gone"), -ENOENT);
	vmdef_free(&d);
}

static void test_lock_excludes(void **state)
{
	struct fixture *f = *state;
	int fd = registry_lock(&f->r), status;
	pid_t pid;

	assert_true(fd >= 0);
	/* another process waits while it is held, and gets it once released */
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	if ((pid = fork()) == 0) {
		close(fd); /* the lock belongs to the open file, which fork shares */
		int l = registry_lock(&f->r);
		char c = 'x';
		(void)!write(pipefd[1], &c, 1);
		_exit(l >= 0 ? 0 : 1);
	}
	close(pipefd[1]);
	/* the child cannot have it yet: nothing to read until we let go */
	struct timeval tv = {0, 200000};
	fd_set set;
	FD_ZERO(&set);
	FD_SET(pipefd[0], &set);
	assert_int_equal(select(pipefd[0] + 1, &set, NULL, NULL, &tv), 0);
	registry_unlock(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pipefd[0]);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_directories),
	    T(test_create_load_replace),
	    T(test_file_named_for_another),
	    T(test_racing_creates),
	    T(test_macs_unique),
	    T(test_remove),
	    T(test_lock_excludes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
