/*
 * What OpenVZ and its container templates did to the system that a VM must not keep: vzquota's
 * init script and links, the vzfifo/vzreboot start-up signals and ploop mount units, /etc/mtab
 * as a file, gettys and hardware units masked or moved away (a container has no console; a VM
 * boots on ttyS0), sysctl lines commented out (vzctl's post-migrate script comments
 * kernel.sysrq and kernel.core_uses_pid; other lines are recognised by the base, a normal
 * installation of the same release, having them active), and files that need an SELinux
 * relabel. libvzctl's dists/scripts (post_migrate, set_ugid_quota) and lib/env.c are where
 * these come from.
 */
#include "fs/gfs.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define UNITS "/etc/systemd/system"

static bool systemd(struct mig_ctx *c)
{
	uint32_t m;

	return mig_lstat(c, "/usr/lib/systemd/systemd", &m) == 0 ||
	       mig_lstat(c, "/lib/systemd/systemd", &m) == 0;
}

static int fix_mtab(struct mig_ctx *c)
{
	uint32_t mode;
	char t[256];

	if (mig_lstat(c, "/etc/mtab", &mode) < 0)
		return 0;
	if (S_ISLNK(mode) && mig_readlink(c, "/etc/mtab", t, sizeof(t)) == 0 &&
	    (strstr(t, "proc/self/mounts") || strstr(t, "proc/mounts")))
		return 0;
	if (S_ISDIR(mode))
		return 0;
	return mig_symlink(c, "/etc/mtab", "../proc/self/mounts",
			   "the kernel's list of mounts is the only true /etc/mtab (the container "
			   "kept a file, which goes stale)");
}

/* Remove each entry of dir whose name matches one of pats. */
static int remove_matching(struct mig_ctx *c, const char *dir, const char *const *pats,
			   const char *why)
{
	char **names;
	size_t n;
	int ret = mig_list(c, dir, &names, &n);

	for (size_t i = 0; i < n && ret == 0; i++)
		for (const char *const *p = pats; *p && ret == 0; p++)
			if (!fnmatch(*p, names[i], 0)) {
				char path[600];
				snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
				ret = mig_remove(c, path, why);
				break;
			}
	mig_strv_free(names, n);
	return ret;
}

static int fix_vz_scripts(struct mig_ctx *c)
{
	static const char *const rc[] = {"*vzquota*", "*vzreboot*", NULL};
	static const char *const units[] = {"vzfifo.service", "vzreboot.service", "vzquota.service",
					    NULL};
	static const char *const dirs[] = {
	    "/etc/rc0.d",      "/etc/rc1.d",	  "/etc/rc2.d",	     "/etc/rc3.d",
	    "/etc/rc4.d",      "/etc/rc5.d",	  "/etc/rc6.d",	     "/etc/rcS.d",
	    "/etc/rc.d/rc0.d", "/etc/rc.d/rc1.d", "/etc/rc.d/rc2.d", "/etc/rc.d/rc3.d",
	    "/etc/rc.d/rc4.d", "/etc/rc.d/rc5.d", "/etc/rc.d/rc6.d", NULL};
	char **names;
	size_t n;
	int ret =
	    mig_remove(c, "/etc/init.d/vzquota",
		       "vzquota's script sets up OpenVZ disk quotas, which a VM does not have");

	for (const char *const *d = dirs; *d && ret == 0; d++) {
		uint32_t mode;
		/* rcN.d links into rc.d on RHEL: one pass over the real directories. */
		if (mig_lstat(c, *d, &mode) == 0 && S_ISLNK(mode))
			continue;
		ret = remove_matching(c, *d, rc, "starts OpenVZ's vzquota or vzreboot");
	}
	if (ret == 0)
		ret = remove_matching(c, UNITS, units,
				      "OpenVZ's start-up signal (/.vzfifo) or fast reboot: nothing "
				      "waits for them in a VM");
	/* Their links in the .wants directories, and vzctl's ploop mount units. */
	if (ret == 0)
		ret = mig_list(c, UNITS, &names, &n);
	else
		names = NULL, n = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		char p[600], *t = NULL;
		size_t len;
		snprintf(p, sizeof(p), UNITS "/%s", names[i]);
		size_t nl = strlen(names[i]);
		if (nl > 6 && !strcmp(names[i] + nl - 6, ".wants"))
			ret = remove_matching(c, p, units, "enables an OpenVZ unit removed above");
		else if (nl > 6 && !strcmp(names[i] + nl - 6, ".mount") &&
			 mig_read(c, p, &t, &len) == 0 &&
			 strstr(t, "Description=ploop with UUID=")) {
			ret = mig_remove(c, p,
					 "mounts a ploop disk of the container's host, which the "
					 "VM does not have");
			char w[700];
			snprintf(w, sizeof(w), UNITS "/multi-user.target.wants/%s", names[i]);
			if (ret == 0)
				ret = mig_remove(c, w, "enables the mount unit removed above");
		}
		free(t);
	}
	mig_strv_free(names, n);
	if (ret == 0)
		ret = mig_remove(c, "/etc/init/call_on_default_rc.conf",
				 "tells vzctl the container started (upstart)");
	if (ret == 0)
		ret = mig_remove(c, "/etc/event.d/call_on_default_rc",
				 "tells vzctl the container started (upstart)");
	uint32_t mode;
	if (ret == 0 && mig_lstat(c, "/.vzfifo", &mode) == 0)
		ret = mig_remove(c, "/.vzfifo", "vzctl's start-up signal");
	return ret;
}

/* Units a container template masks and a VM needs: its consoles, udev, modules, the clock. */
static const char *const masked_pats[] = {
    "getty@*.service",
    "serial-getty@*.service",
    "getty.target",
    "getty-static.service",
    "systemd-udevd*",
    "systemd-udev-trigger.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "systemd-remount-fs.service",
    "systemd-timesyncd.service",
    "udev.service",
    NULL,
};

/* Where the unit is, named as the distribution names it (Debian's packages install into
 * /lib/systemd/system, RHEL's into /usr/lib/systemd/system, merged /usr or not). */
static const char *unit_dir(struct mig_ctx *c, const char *unit)
{
	static const char *const debian[] = {"/lib/systemd/system", "/usr/lib/systemd/system"};
	static const char *const rhel[] = {"/usr/lib/systemd/system", "/lib/systemd/system"};
	const char *const *dirs = c->family == MIG_FAM_RHEL ? rhel : debian;
	char p[300];
	uint32_t mode;

	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", dirs[i], unit);
		if (mig_lstat(c, p, &mode) == 0)
			return dirs[i];
	}
	return NULL;
}

static int fix_gettys(struct mig_ctx *c)
{
	char **names;
	size_t n;
	int ret;

	if (!systemd(c))
		return 0;
	if ((ret = mig_list(c, UNITS, &names, &n)) < 0)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++) {
		char p[600], t[256];
		uint32_t mode;
		snprintf(p, sizeof(p), UNITS "/%s", names[i]);
		if (mig_lstat(c, p, &mode) < 0 || !S_ISLNK(mode) ||
		    mig_readlink(c, p, t, sizeof(t)) < 0 || strcmp(t, "/dev/null"))
			continue;
		for (const char *const *m = masked_pats; *m; m++)
			if (!fnmatch(*m, names[i], 0)) {
				ret = mig_remove(c, p,
						 "masked by the container template; a VM needs it "
						 "(consoles, devices, modules, the clock)");
				break;
			}
	}
	mig_strv_free(names, n);
	/* Two gettys on the serial console would fight over it. */
	static const char *const cg[] = {"console-getty.service", NULL};
	if (ret == 0)
		ret = remove_matching(c, UNITS "/getty.target.wants", cg,
				      "console-getty is the container's console; the VM's is "
				      "serial-getty@ttyS0, on the same line");
	if (ret == 0)
		ret = remove_matching(c, UNITS "/multi-user.target.wants", cg,
				      "console-getty is the container's console; the VM's is "
				      "serial-getty@ttyS0, on the same line");
	const char *d = unit_dir(c, "serial-getty@.service");
	char target[300];
	if (ret == 0 && d) {
		snprintf(target, sizeof(target), "%s/serial-getty@.service", d);
		ret = mig_symlink(c, UNITS "/getty.target.wants/serial-getty@ttyS0.service", target,
				  "a login prompt on the VM's serial console (ttyS0)");
	}
	if (ret == 0 && (d = unit_dir(c, "getty@.service"))) {
		snprintf(target, sizeof(target), "%s/getty@.service", d);
		ret = mig_symlink(c, UNITS "/getty.target.wants/getty@tty1.service", target,
				  "a login prompt on the VM's screen (tty1), which the container "
				  "template removed");
	}
	return ret;
}

/* Lines of an upstart container: its console jobs moved to /etc/init.removed come back. */
static int fix_upstart(struct mig_ctx *c)
{
	char **names;
	size_t n;
	int ret = mig_list(c, "/etc/init.removed", &names, &n);

	for (size_t i = 0; i < n && ret == 0; i++) {
		char from[600], to[600], *t = NULL;
		size_t len;
		snprintf(from, sizeof(from), "/etc/init.removed/%s", names[i]);
		snprintf(to, sizeof(to), "/etc/init/%s", names[i]);
		if (mig_read(c, from, &t, &len) < 0)
			continue;
		ret = mig_write(c, to, t, len, 0644,
				"a console job the container template moved to /etc/init.removed");
		if (ret == 0)
			ret = mig_remove(c, from, "moved back to /etc/init");
		free(t);
	}
	mig_strv_free(names, n);
	return ret;
}

/* "# key = v" / "#key=v" -> "key = v" (trimmed), or NULL when the line is no commented
 * assignment. */
static char *commented(const char *l)
{
	if (*l != '#')
		return NULL;
	l++;
	l += strspn(l, " \t");
	if (!isalpha((unsigned char)*l) || !strchr(l, '='))
		return NULL;
	return strdup(l);
}

static bool active_in(const char *text, const char *line)
{
	size_t n = strlen(line);

	while (n && isspace((unsigned char)line[n - 1]))
		n--;
	for (const char *l = text; l && *l;) {
		const char *eol = strchr(l, '\n'), *s = l + strspn(l, " \t");
		size_t ll = eol ? (size_t)(eol - s) : strlen(s);
		while (ll && isspace((unsigned char)s[ll - 1]))
			ll--;
		if (ll == n && !strncmp(s, line, n))
			return true;
		l = eol ? eol + 1 : NULL;
	}
	return false;
}

static int fix_sysctl_file(struct mig_ctx *c, const char *path)
{
	const struct mig_file *bf = mig_files_get(&c->basef, path + 1, true);
	char *t = NULL, *out = NULL;
	size_t len, olen = 0;
	int ret = mig_read(c, path, &t, &len), changed = 0;

	if (ret < 0)
		return ret == -ENOENT ? 0 : ret;
	FILE *m = open_memstream(&out, &olen);
	for (char *l = t; m && l && *l;) {
		char *eol = strchr(l, '\n');
		if (eol)
			*eol = 0;
		char *u = commented(l);
		bool vz =
		    !strncmp(l, "# kernel.sysrq", 14) || !strncmp(l, "# kernel.core_uses_pid", 22);
		if (u && (vz || (bf && active_in(bf->data, u)))) {
			fprintf(m, "%s\n", u);
			changed++;
		} else {
			fprintf(m, "%s%s", l, eol ? "\n" : "");
		}
		free(u);
		l = eol ? eol + 1 : NULL;
	}
	if (m)
		fclose(m);
	else
		ret = err_set(ENOMEM, "out of memory");
	if (ret == 0 && changed)
		ret = mig_write(c, path, out, olen, 0644,
				"settings the container template commented out (the kernel is the "
				"VM's own now)");
	free(out);
	free(t);
	return ret;
}

static int fix_sysctl(struct mig_ctx *c)
{
	char **names;
	size_t n;
	int ret = fix_sysctl_file(c, "/etc/sysctl.conf");

	if (ret == 0 && (ret = mig_list(c, "/etc/sysctl.d", &names, &n)) == 0) {
		for (size_t i = 0; i < n && ret == 0; i++) {
			char p[600];
			size_t nl = strlen(names[i]);
			if (nl < 6 || strcmp(names[i] + nl - 5, ".conf"))
				continue;
			snprintf(p, sizeof(p), "/etc/sysctl.d/%s", names[i]);
			ret = fix_sysctl_file(c, p);
		}
		mig_strv_free(names, n);
	}
	return ret;
}

static int fix_selinux(struct mig_ctx *c)
{
	char *t = NULL, *v;
	size_t len;
	int ret = 0;

	if (mig_read(c, "/etc/selinux/config", &t, &len) < 0)
		return 0;
	v = mig_kv_get(t, "SELINUX");
	if (v && !strcmp(v, "enforcing"))
		ret = mig_write(c, "/.autorelabel", "", 0, 0644,
				"SELinux is enforcing and the copied files carry the container's "
				"labels (or none): the first boot relabels them");
	else if (v && !strcmp(v, "permissive"))
		mig_note(c,
			 "SELinux is permissive: relabel (touch /.autorelabel) before enforcing");
	free(v);
	free(t);
	return ret;
}

static int fix_inittab(struct mig_ctx *c)
{
	char *t = NULL, *out = NULL;
	size_t len, olen = 0;
	int ret;

	if (systemd(c) || mig_read(c, "/etc/inittab", &t, &len) < 0)
		return 0;
	FILE *m = open_memstream(&out, &olen);
	bool serial = strstr(t, "ttyS0") != NULL;
	for (char *s = NULL, *l = m ? strtok_r(t, "\n", &s) : NULL; l; l = strtok_r(NULL, "\n", &s))
		if (strncmp(l, "vz:", 3))
			fprintf(m, "%s\n", l);
	if (m && !serial)
		fputs("T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n", m);
	if (m)
		fclose(m);
	ret = m ? mig_write(c, "/etc/inittab", out, olen, 0644,
			    "vzctl's start-up signal goes; a getty on the VM's serial console")
		: err_set(ENOMEM, "out of memory");
	free(out);
	free(t);
	return ret;
}

int mig_fix_leftovers(struct mig_ctx *c)
{
	int ret = fix_mtab(c);

	if (ret == 0)
		ret = fix_vz_scripts(c);
	if (ret == 0)
		ret = fix_gettys(c);
	if (ret == 0)
		ret = fix_upstart(c);
	if (ret == 0)
		ret = fix_inittab(c);
	if (ret == 0)
		ret = fix_sysctl(c);
	if (ret == 0)
		ret = fix_selinux(c);
	return ret;
}

/* The base's versions of what fix_sysctl compares with. */
int mig_fix_prepare(struct mig_ctx *c)
{
	static const char *const files[] = {"/etc/sysctl.conf", NULL};
	char *buf;
	size_t len;
	struct fs_node n = {.mode = S_IFREG | 0644};
	int ret = 0;

	for (const char *const *f = files; *f && ret == 0; f++)
		if (gfs_read_file(c->bgfs, *f, 1u << 20, &buf, &len) == 0) {
			ret = mig_files_put(&c->basef, *f + 1, &n, buf, len);
			free(buf);
		}
	err_clear();
	char **names = NULL;
	size_t nn = 0;
	if (ret == 0)
		ret = mig_gfs_names(c->bgfs, "/etc/sysctl.d", &names, &nn);
	for (size_t i = 0; i < nn && ret == 0; i++) {
		char p[600];
		snprintf(p, sizeof(p), "/etc/sysctl.d/%s", names[i]);
		if (gfs_read_file(c->bgfs, p, 1u << 20, &buf, &len) == 0) {
			ret = mig_files_put(&c->basef, p + 1, &n, buf, len);
			free(buf);
		}
	}
	mig_strv_free(names, nn);
	err_clear();
	return ret;
}
