/*
 * The state and runtime directories, and definition files written so that a crash at any
 * instant leaves either the old definition or the new one, never a torn file.
 */
#include "host/registry.h"
#include "util/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *join(const char *a, const char *b)
{
	char *s;

	return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* The default state directory, malloc'd. */
static char *default_state_dir(void)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char *s;

	if (geteuid() == 0)
		return strdup("/var/lib/ligero");
	if (xdg && xdg[0] == '/')
		return join(xdg, "ligero");
	if (!home || home[0] != '/')
		return NULL;
	return asprintf(&s, "%s/.local/share/ligero", home) < 0 ? NULL : s;
}

static char *default_run_dir(const char *state, bool chosen)
{
	const char *env = getenv("LIGERO_RUNTIME_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		return strdup(env);
	if (chosen)
		return join(state, "run");
	if (geteuid() == 0)
		return strdup("/run/ligero");
	if (xdg && xdg[0] == '/')
		return join(xdg, "ligero");
	return join(state, "run");
}

int registry_open(struct registry *r, const char *state_dir)
{
	const char *env = getenv("LIGERO_STATE_DIR");
	bool chosen = state_dir || (env && *env);

	memset(r, 0, sizeof(*r));
	if (!state_dir && env && *env)
		state_dir = env;
	r->state_dir = state_dir ? strdup(state_dir) : default_state_dir();
	if (!r->state_dir)
		return err_set(ENOENT, "no state directory: HOME is not set (use --state-dir or "
				       "LIGERO_STATE_DIR)");
	r->vms_dir = join(r->state_dir, "vms");
	r->log_dir = join(r->state_dir, "log");
	r->run_dir = default_run_dir(r->state_dir, chosen);
	if (!r->vms_dir || !r->log_dir || !r->run_dir) {
		registry_close(r);
		return err_set(ENOMEM, "out of memory");
	}
	return 0;
}

void registry_close(struct registry *r)
{
	free(r->state_dir);
	free(r->vms_dir);
	free(r->log_dir);
	free(r->run_dir);
	memset(r, 0, sizeof(*r));
}

/* mkdir -p, the last component with mode. */
static int mkdirs(const char *path, mode_t mode)
{
	char *p = strdup(path);
	int ret = 0;

	if (!p)
		return err_set(ENOMEM, "out of memory");
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			ret = err_sys(errno, "cannot create %s", p);
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		ret = err_sys(errno, "cannot create %s", p);
out:
	free(p);
	return ret;
}

int registry_prepare(const struct registry *r, bool run)
{
	int ret;

	if ((ret = mkdirs(r->vms_dir, 0755)) < 0 || (ret = mkdirs(r->log_dir, 0755)) < 0)
		return ret;
	/* Sockets are 0600 themselves; the directory keeps other users from even seeing
	 * which VMs run. */
	if (run && (ret = mkdirs(r->run_dir, 0700)) < 0)
		return ret;
	return 0;
}

char *registry_path(const struct registry *r, const char *name, enum registry_file f)
{
	static const struct {
		int dir; /* 0 vms, 1 log, 2 run */
		const char *suffix;
	} files[] = {
	    [REG_DEF] = {0, ".json"},
	    [REG_LOG] = {1, ".log"},
	    [REG_CONSOLE_LOG] = {1, ".console.log"},
	    [REG_LOCK] = {2, ".lock"},
	    [REG_QMP] = {2, ".qmp"},
	    [REG_CONSOLE] = {2, ".console"},
	    [REG_PID] = {2, ".pid"},
	    [REG_EXIT] = {2, ".exit"},
	    [REG_STOPPING] = {2, ".stopping"},
	};
	const char *dir = files[f].dir == 0   ? r->vms_dir
			  : files[f].dir == 1 ? r->log_dir
					      : r->run_dir;
	char *s;

	return asprintf(&s, "%s/%s%s", dir, name, files[f].suffix) < 0 ? NULL : s;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int registry_names(const struct registry *r, char ***names, size_t *n)
{
	DIR *dir = opendir(r->vms_dir);
	struct dirent *e;
	char **v = NULL;
	size_t count = 0;

	*names = NULL;
	*n = 0;
	if (!dir)
		return errno == ENOENT ? 0 : err_sys(errno, "%s", r->vms_dir);
	while ((e = readdir(dir))) {
		size_t len = strlen(e->d_name);
		char **nv;

		/* NAME.json; temporary files start with '.', which no name does. */
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json") || e->d_name[0] == '.')
			continue;
		if (!(nv = realloc(v, (count + 1) * sizeof(*v))) ||
		    !(nv[count] = strndup(e->d_name, len - 5))) {
			closedir(dir);
			registry_names_free(nv ? nv : v, count);
			return err_set(ENOMEM, "out of memory");
		}
		v = nv;
		count++;
	}
	closedir(dir);
	if (count)
		qsort(v, count, sizeof(*v), cmp_names);
	*names = v;
	*n = count;
	return 0;
}

void registry_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int read_file(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size > (1 << 20)) {
		close(fd);
		return err_set(EFBIG, "%s: too large for a definition", path);
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return err_set(ENOMEM, "out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*text = buf;
	*len = got;
	return 0;
}

int registry_load(const struct registry *r, const char *name, struct vmdef *d)
{
	char *path, *text = NULL;
	size_t len = 0;
	int ret;

	if ((ret = vmdef_name_check(name)) < 0)
		return ret;
	if (!(path = registry_path(r, name, REG_DEF)))
		return err_set(ENOMEM, "out of memory");
	ret = read_file(path, &text, &len);
	if (ret == -ENOENT) {
		ret = err_set(ENOENT, "no VM named '%s' (see 'ligero vm list')", name);
	} else if (ret < 0) {
		ret = ret == -EFBIG ? ret : err_sys(-ret, "%s", path);
	} else {
		ret = vmdef_parse(text, len, path, d);
		free(text);
		if (ret == 0 && strcmp(d->name, name)) {
			ret = err_set(EINVAL, "%s: 'name' is '%s', but the file is named for '%s'",
				      path, d->name, name);
			vmdef_free(d);
		}
	}
	free(path);
	return ret;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return err_sys(errno, "%s", dir);
	if (fsync(fd) < 0 && errno != EINVAL)
		ret = err_sys(errno, "fsync %s", dir);
	close(fd);
	return ret;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write text to a temporary file next to path and move it there: replacing what is there, or
 * (replace false) failing with -EEXIST when something is. */
static int write_atomic(const char *dir, const char *path, const char *text, bool replace)
{
	char *tmp;
	int fd, ret;

	if (asprintf(&tmp, "%s/.tmp.XXXXXX", dir) < 0)
		return err_set(ENOMEM, "out of memory");
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		ret = err_sys(errno, "cannot write in %s", dir);
		free(tmp);
		return ret;
	}
	ret = fchmod(fd, 0644) < 0 ? -errno : 0;
	if (!ret)
		ret = write_all(fd, text, strlen(text));
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (ret) {
		ret = err_sys(-ret, "cannot write %s", tmp);
		goto fail;
	}
	if (replace) {
		if (rename(tmp, path) < 0) {
			ret = err_sys(errno, "cannot rename %s to %s", tmp, path);
			goto fail;
		}
	} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		/* Filesystems without RENAME_NOREPLACE: link(2) refuses an existing name too. */
		if (errno == EINVAL || errno == ENOSYS) {
			if (link(tmp, path) < 0) {
				ret = errno == EEXIST ? -EEXIST : err_sys(errno, "%s", path);
				goto fail;
			}
			unlink(tmp);
		} else {
			ret = errno == EEXIST ? -EEXIST : err_sys(errno, "%s", path);
			goto fail;
		}
	}
	free(tmp);
	return fsync_dir(dir);
fail:
	unlink(tmp);
	free(tmp);
	return ret;
}

static int save(const struct registry *r, const struct vmdef *d, bool replace)
{
	char *text, *path;
	struct stat st;
	int ret;

	if ((ret = vmdef_validate(d)) < 0)
		return ret;
	if ((ret = registry_prepare(r, false)) < 0)
		return ret;
	if (!(path = registry_path(r, d->name, REG_DEF)))
		return err_set(ENOMEM, "out of memory");
	if (replace && stat(path, &st) < 0) {
		ret = err_set(ENOENT, "no VM named '%s' (see 'ligero vm list')", d->name);
		free(path);
		return ret;
	}
	if (!(text = vmdef_to_text(d))) {
		free(path);
		return err_set(ENOMEM, "out of memory");
	}
	ret = write_atomic(r->vms_dir, path, text, replace);
	if (ret == -EEXIST)
		ret = err_set(EEXIST, "a VM named '%s' exists already (%s)", d->name, path);
	free(text);
	free(path);
	return ret;
}

int registry_create(const struct registry *r, const struct vmdef *d)
{
	return save(r, d, false);
}

int registry_replace(const struct registry *r, const struct vmdef *d)
{
	return save(r, d, true);
}

int registry_remove(const struct registry *r, const char *name)
{
	static const enum registry_file others[] = {REG_LOG,	  REG_CONSOLE_LOG, REG_QMP,
						    REG_CONSOLE,  REG_PID,	   REG_EXIT,
						    REG_STOPPING, REG_LOCK};
	char *path = registry_path(r, name, REG_DEF), *p;
	int ret = 0;

	if (!path)
		return err_set(ENOMEM, "out of memory");
	if (unlink(path) < 0)
		ret = errno == ENOENT ? err_set(ENOENT, "no VM named '%s'", name)
				      : err_sys(errno, "cannot remove %s", path);
	free(path);
	if (ret < 0)
		return ret;
	fsync_dir(r->vms_dir);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		if (!(p = registry_path(r, name, others[i])))
			continue;
		unlink(p);
		if (others[i] == REG_CONSOLE_LOG || others[i] == REG_LOG) {
			char *old;
			if (asprintf(&old, "%s.1", p) >= 0) {
				unlink(old);
				free(old);
			}
		}
		free(p);
	}
	return 0;
}

int registry_lock(const struct registry *r)
{
	char *path;
	int fd, ret;

	if ((ret = registry_prepare(r, false)) < 0)
		return ret;
	if (!(path = join(r->state_dir, ".lock")))
		return err_set(ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = err_sys(errno, "%s", path);
		free(path);
		return ret;
	}
	/* Definition changes take milliseconds; waiting for 30 s is a hang guard. */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || i >= 3000) {
			ret = err_sys(errno, "cannot lock %s", path);
			close(fd);
			free(path);
			return ret;
		}
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	free(path);
	return fd;
}

void registry_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* Call fn for the MACs of every parseable definition except skip's. */
static char *mac_user(const struct registry *r, const char *mac, const char *skip)
{
	char **names, *owner = NULL;
	size_t n;

	if (registry_names(r, &names, &n) < 0)
		return NULL;
	for (size_t i = 0; i < n && !owner; i++) {
		struct vmdef d;
		if (skip && !strcmp(names[i], skip))
			continue;
		if (registry_load(r, names[i], &d) < 0)
			continue;
		for (size_t j = 0; j < d.nnets && !owner; j++)
			if (!strcasecmp(d.nets[j].mac, mac))
				owner = strdup(names[i]);
		vmdef_free(&d);
	}
	registry_names_free(names, n);
	err_clear();
	return owner;
}

char *registry_mac_owner(const struct registry *r, const char *mac, const char *skip)
{
	return mac_user(r, mac, skip);
}

int registry_new_mac(const struct registry *r, const char *skip, const struct vmdef *extra,
		     char mac[VMDEF_MAC_LEN + 1])
{
	/* 2^24 addresses: a collision is rare, and 64 draws all colliding means the registry is
	 * full beyond any real host. */
	for (int tries = 0; tries < 64; tries++) {
		char *owner;
		bool dup = false;

		vmdef_random_mac(mac);
		for (size_t i = 0; extra && i < extra->nnets; i++)
			dup |= !strcasecmp(extra->nets[i].mac, mac);
		if (dup)
			continue;
		if (!(owner = mac_user(r, mac, skip)))
			return 0;
		free(owner);
	}
	return err_set(EAGAIN, "no free MAC address found in 64 draws");
}
