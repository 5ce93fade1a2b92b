/* Turning KSM on and off, now and at boot; see ksm.h. */
#include "host/ksm.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void under(char *out, size_t len, const char *root, const char *path)
{
	size_t r = strlen(root);

	while (r > 0 && root[r - 1] == '/')
		r--;
	snprintf(out, len, "%.*s%s", (int)r, root, path);
}

int ksm_write_knob(const char *root, const char *name, const char *value)
{
	char path[PATH_MAX], f[96], dir[PATH_MAX];
	size_t len = strlen(value);
	int fd;

	under(dir, sizeof(dir), root, "/sys/kernel/mm/ksm");
	if (access(dir, F_OK) != 0 && errno == ENOENT)
		return err_set(ENOENT, "%s: this kernel has no KSM (CONFIG_KSM)", dir);
	snprintf(f, sizeof(f), "/sys/kernel/mm/ksm/%s", name);
	under(path, sizeof(path), root, f);
	/* O_TRUNC keeps writes to a plain file (a test's fake sysfs) whole; sysfs ignores it */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 && (errno == EACCES || errno == EPERM))
		return err_set(
		    errno, "%s: permission denied (KSM's settings are root's: run as root)", path);
	if (fd < 0 && errno == ENOENT)
		return err_set(ENOENT, "%s: this kernel has no such KSM setting", path);
	if (fd < 0)
		return err_sys(errno, "%s: cannot open", path);
	ssize_t n = write(fd, value, len);
	int e = errno;
	close(fd);
	if (n < 0)
		return err_sys(e, "%s: the kernel refused '%s'", path, value);
	if ((size_t)n != len)
		return err_set(EIO, "%s: short write of '%s'", path, value);
	return 0;
}

static int write_num(const char *root, const char *name, int64_t v)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return ksm_write_knob(root, name, s);
}

int ksm_enable(const char *root, int64_t pages_to_scan, int64_t sleep_ms)
{
	int ret = 0;

	if (pages_to_scan >= 0)
		ret = write_num(root, "pages_to_scan", pages_to_scan);
	if (ret == 0 && sleep_ms >= 0)
		ret = write_num(root, "sleep_millisecs", sleep_ms);
	return ret < 0 ? ret : ksm_write_knob(root, "run", "1");
}

int ksm_disable(const char *root, bool unmerge)
{
	return ksm_write_knob(root, "run", unmerge ? "2" : "0");
}

/* mkdir -p of the directory that holds path (all but its last component). */
static int make_parents(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return err_sys(errno, "%s: cannot create the directory", buf);
		*p = '/';
	}
	return 0;
}

/* Write text to path whole or not at all: a temporary name in the same directory, fsync,
 * rename over path. */
static int write_atomic(const char *path, const char *text, mode_t mode)
{
	char tmp[PATH_MAX + 16];
	size_t len = strlen(text), done = 0;
	int fd, ret = make_parents(path);

	if (ret < 0)
		return ret;
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return err_sys(errno, "%s: cannot create", tmp);
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = err_sys(errno, "%s: write error", tmp);
			break;
		}
		done += (size_t)n;
	}
	if (ret == 0 && fsync(fd) < 0)
		ret = err_sys(errno, "%s: fsync", tmp);
	if (close(fd) < 0 && ret == 0)
		ret = err_sys(errno, "%s: close", tmp);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = err_sys(errno, "%s: cannot rename to %s", tmp, path);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int ksm_persist_write(const char *root, int64_t pages_to_scan, int64_t sleep_ms)
{
	char path[PATH_MAX], text[1024];
	int len = snprintf(text, sizeof(text),
			   "# Written by `ligero ksm enable --persist`; removed by `ligero ksm "
			   "disable`.\n"
			   "# systemd-tmpfiles writes these KSM settings at boot "
			   "(tmpfiles.d(5), type w).\n");

	if (pages_to_scan >= 0)
		len += snprintf(text + len, sizeof(text) - (size_t)len,
				"w /sys/kernel/mm/ksm/pages_to_scan - - - - %" PRId64 "\n",
				pages_to_scan);
	if (sleep_ms >= 0)
		len += snprintf(text + len, sizeof(text) - (size_t)len,
				"w /sys/kernel/mm/ksm/sleep_millisecs - - - - %" PRId64 "\n",
				sleep_ms);
	snprintf(text + len, sizeof(text) - (size_t)len, "w /sys/kernel/mm/ksm/run - - - - 1\n");
	under(path, sizeof(path), root, KSM_TMPFILES_DROPIN);
	return write_atomic(path, text, 0644);
}

int ksm_persist_remove(const char *root, bool *removed)
{
	char path[PATH_MAX];

	*removed = false;
	under(path, sizeof(path), root, KSM_TMPFILES_DROPIN);
	if (unlink(path) == 0) {
		*removed = true;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	return err_sys(errno, "%s: cannot remove", path);
}

char *ksm_auto_unit_text(const char *exec, const char *args)
{
	char *text = NULL;

	if (asprintf(
		&text,
		"# ligero-ksm-auto.service: `ligero ksm auto`, ksmtuned's control loop counting\n"
		"# ligero's VMs (docs/ligero-ksm.md). Installed by `ligero ksm auto --persist`.\n"
		"[Unit]\n"
		"Description=KSM tuning for ligero's VMs (ligero ksm auto)\n"
		"ConditionPathExists=/sys/kernel/mm/ksm\n"
		"# ksmtuned counts only qemu-system processes and would fight over the knobs\n"
		"Conflicts=ksmtuned.service\n"
		"\n"
		"[Service]\n"
		"Type=exec\n"
		"ExecStart=%s ksm auto%s%s\n"
		"# like ksmtuned: SIGUSR1 decides at once (a VM started or stopped)\n"
		"ExecReload=/bin/kill -USR1 $MAINPID\n"
		"Restart=on-failure\n"
		"\n"
		"[Install]\n"
		"WantedBy=multi-user.target\n",
		exec, args && *args ? " " : "", args ? args : "") < 0)
		return NULL;
	return text;
}

int ksm_auto_install(const char *root, const char *exec, const char *args)
{
	char unit[PATH_MAX], wants[PATH_MAX];
	char *text = ksm_auto_unit_text(exec, args);
	int ret;

	if (!text)
		return err_set(ENOMEM, "out of memory");
	under(unit, sizeof(unit), root, KSM_AUTO_UNIT);
	under(wants, sizeof(wants), root, KSM_AUTO_WANTS);
	ret = write_atomic(unit, text, 0644);
	free(text);
	if (ret < 0 || (ret = make_parents(wants)) < 0)
		return ret;
	/* what `systemctl enable` makes: an absolute link, valid once root is the real root */
	if (unlink(wants) < 0 && errno != ENOENT)
		return err_sys(errno, "%s: cannot replace", wants);
	if (symlink(KSM_AUTO_UNIT, wants) < 0)
		return err_sys(errno, "%s: cannot create the link", wants);
	return 0;
}
