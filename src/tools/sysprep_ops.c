/*
 * Sysprep's operations: each makes one kind of machine identity or history go away. Names and
 * defaults follow virt-sysprep (guestfs-tools); where virt-sysprep's action differs from what
 * is done here, the operation's comment says so.
 */
#include "tools/sysprep_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_TEXT (1 << 20) /* configuration files edited in place: hosts, ifcfg-*, network */

/* An empty /etc/machine-id: systemd makes a new ID at the next boot (machine-id(5)); leaving it
 * would give every clone the same DHCP client identity (systemd-networkd derives its DUID from
 * it). D-Bus's copy, /var/lib/dbus/machine-id: a symlink (to /etc/machine-id) follows by itself
 * and stays. A file of its own would keep the old ID: virt-sysprep empties it; here it is removed,
 * or on Debian replaced by the link that Debian's dbus tmpfiles.d line (L /var/lib/dbus/machine-id
 * - - - - /etc/machine-id) makes at boot when the file is absent; its postinst's `dbus-uuidgen
 * --ensure` leaves a file instead when it runs first (a debootstrap image). */
static int op_machine_id(struct sysprep_ctx *c)
{
	const char *dbus = "/var/lib/dbus/machine-id";
	int ret = sp_truncate(c, "/etc/machine-id", "systemd makes a new one at boot");

	if (ret < 0)
		return ret;
	uint32_t t = sp_type(c, dbus);
	if (t == S_IFLNK || !t)
		return 0;
	if (c->family == FAMILY_DEBIAN && t == S_IFREG)
		return sp_symlink(c, "/etc/machine-id", dbus,
				  "as Debian's dbus tmpfiles.d makes it");
	return sp_remove(c, dbus, "D-Bus makes it again from /etc/machine-id");
}

/* The unit that makes SSH host keys on a Debian clone. */
static const char hostkeys_unit[] =
    "# Added by `ligero sysprep` (ssh-hostkeys). Debian makes SSH host keys only when\n"
    "# openssh-server is installed or reconfigured (dpkg-reconfigure openssh-server), so a\n"
    "# clone whose keys were removed makes its own here, once, before sshd starts.\n"
    "[Unit]\n"
    "Description=Create the SSH host keys that ligero sysprep removed\n"
    "ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n"
    "Before=ssh.service ssh.socket\n"
    "\n"
    "[Service]\n"
    "Type=oneshot\n"
    "ExecStart=/usr/bin/ssh-keygen -A\n"
    "\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n";

#define HOSTKEYS_UNIT  "/etc/systemd/system/ligero-ssh-hostkeys.service"
#define HOSTKEYS_WANTS "/etc/systemd/system/multi-user.target.wants"

static bool has_systemd(struct sysprep_ctx *c)
{
	return sp_type_follow(c, "/lib/systemd/systemd") == S_IFREG ||
	       sp_type_follow(c, "/usr/lib/systemd/systemd") == S_IFREG;
}

/* Debian's first-boot helper: the unit, enabled the way systemctl enable does it. */
static int hostkeys_helper(struct sysprep_ctx *c)
{
	int ret;

	if (!has_systemd(c))
		return sp_note(c, "ssh-hostkeys: this Debian system has no systemd; make new host "
				  "keys in each clone with 'dpkg-reconfigure openssh-server'");
	if ((ret = sp_mkdirs(c, "/etc/systemd/system")) < 0 ||
	    (ret = sp_write(c, HOSTKEYS_UNIT, hostkeys_unit, sizeof(hostkeys_unit) - 1, 0644,
			    "rewritten", "first boot: ssh-keygen -A before sshd")) < 0 ||
	    (ret = sp_mkdirs(c, HOSTKEYS_WANTS)) < 0 ||
	    (ret = sp_symlink(c, HOSTKEYS_UNIT, HOSTKEYS_WANTS "/ligero-ssh-hostkeys.service",
			      "enabled")) < 0)
		return ret;
	return sp_note(c,
		       "ssh-hostkeys: Debian makes SSH host keys only through "
		       "'dpkg-reconfigure openssh-server'; ligero-ssh-hostkeys.service was added "
		       "to make them at the next boot");
}

/* /etc/ssh/ssh_host_KEY files (virt-sysprep: any /etc/ssh file with _host_ in its name). RHEL's
 * sshd-keygen units make missing keys at boot; Debian's do not, so a Debian clone with sshd gets a
 * first-boot unit. */
static int op_ssh_hostkeys(struct sysprep_ctx *c)
{
	char **names, path[512];
	size_t n, removed = 0;
	int ret = sp_list(c, "/etc/ssh", &names, &n);

	for (size_t i = 0; i < n && ret == 0; i++) {
		if (!strstr(names[i], "_host_"))
			continue;
		snprintf(path, sizeof(path), "/etc/ssh/%s", names[i]);
		ret = sp_remove(c, path, NULL);
		removed++;
	}
	sp_names_free(names, n);
	if (ret < 0 || !removed)
		return ret;
	bool sshd = sp_type_follow(c, "/usr/sbin/sshd") == S_IFREG;
	if (c->family == FAMILY_DEBIAN && sshd)
		return hostkeys_helper(c);
	if (c->family == FAMILY_RHEL && sshd)
		return sp_note(c, "ssh-hostkeys: sshd-keygen makes new host keys at the next boot");
	return 0;
}

/* HWADDR= in ifcfg files (RHEL's network-scripts, SUSE's sysconfig/network). */
static int op_net_hwaddr(struct sysprep_ctx *c)
{
	static const char *const dirs[] = {"/etc/sysconfig/network-scripts",
					   "/etc/sysconfig/network"};
	int ret = 0;

	for (size_t d = 0; d < 2 && ret == 0; d++) {
		char **names, path[512];
		size_t n;
		if ((ret = sp_list(c, dirs[d], &names, &n)) < 0)
			return ret;
		for (size_t i = 0; i < n && ret == 0; i++) {
			bool big;
			size_t len;
			if (strncmp(names[i], "ifcfg-", 6))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dirs[d], names[i]);
			char *t = sp_read(c, path, MAX_TEXT, &len, &big);
			if (big)
				ret = sp_note(c, "net-hwaddr: %s is over 1 MiB; left alone", path);
			if (t && sysprep_drop_lines(t, "HWADDR="))
				ret = sp_write(c, path, t, strlen(t), 0644, "edited",
					       "HWADDR= line removed");
			free(t);
		}
		sp_names_free(names, n);
	}
	return ret;
}

static int op_udev_persistent_net(struct sysprep_ctx *c)
{
	return sp_remove(c, "/etc/udev/rules.d/70-persistent-net.rules",
			 "it pins the old MAC address to eth0");
}

/* Leases in dir whose name contains "lease" (every entry when all). */
static int remove_leases(struct sysprep_ctx *c, const char *dir, bool all)
{
	char **names, path[512];
	size_t n;
	int ret = sp_list(c, dir, &names, &n);

	for (size_t i = 0; i < n && ret == 0; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((all || strstr(names[i], "lease")) && sp_type(c, path) != S_IFDIR)
			ret = sp_remove(c, path, NULL);
	}
	sp_names_free(names, n);
	return ret;
}

/* virt-sysprep: everything in /var/lib/dhclient and /var/lib/dhcp; here also NetworkManager's,
 * dhcpcd's and systemd-networkd's lease files. */
static int op_dhcp_client_state(struct sysprep_ctx *c)
{
	static const struct {
		const char *dir;
		bool all;
	} places[] = {
	    {"/var/lib/dhclient", true},	 {"/var/lib/dhcp", false},
	    {"/var/lib/NetworkManager", false},	 {"/var/lib/dhcpcd", false},
	    {"/var/lib/systemd/network", false}, {"/run/systemd/netif/leases", true},
	};
	int ret = 0;

	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]) && ret == 0; i++)
		ret = remove_leases(c, places[i].dir, places[i].all);
	return ret;
}

/* RHEL 6 and older keep the name in /etc/sysconfig/network's HOSTNAME=. */
static int sysconfig_network(struct sysprep_ctx *c, const char *host)
{
	const char *path = "/etc/sysconfig/network";
	size_t len;
	char *t = sp_read(c, path, MAX_TEXT, &len, NULL), *out;
	int ret = 0;

	if (!t)
		return 0;
	if (sysprep_drop_lines(t, "HOSTNAME=") &&
	    asprintf(&out, "%s%sHOSTNAME=%s\n", t, *t && t[strlen(t) - 1] != '\n' ? "\n" : "",
		     host) >= 0) {
		ret = sp_write(c, path, out, strlen(out), 0644, "edited", "HOSTNAME=");
		free(out);
	}
	free(t);
	return ret;
}

/* virt-sysprep's --hostname (its customize step). Without --hostname nothing changes. */
static int op_hostname(struct sysprep_ctx *c)
{
	const char *host = c->o->hostname;
	char line[300];
	bool big, changed;
	int ret;

	if (!host)
		return sp_note(c, "hostname: no --hostname given; the hostname was left as it was");
	snprintf(line, sizeof(line), "%s\n", host);
	if ((ret = sp_write(c, "/etc/hostname", line, strlen(line), 0644, "rewritten", host)) < 0)
		return ret;
	char *t = sp_read(c, "/etc/hosts", MAX_TEXT, NULL, &big);
	if (big)
		ret = sp_note(c, "hostname: /etc/hosts is over 1 MiB; left alone");
	if (t) {
		char *out = sysprep_hosts_edit(t, host, c->family == FAMILY_DEBIAN, &changed);
		if (!out)
			ret = err_set(ENOMEM, "out of memory");
		else if (changed)
			ret = sp_write(c, "/etc/hosts", out, strlen(out), 0644, "edited",
				       "the 127.0.1.1 line");
		free(out);
		free(t);
	}
	return ret < 0 ? ret : sysconfig_network(c, host);
}

/* Log files anywhere under dir: removed, but the login records that nothing else recreates on
 * a system without systemd-tmpfiles are emptied instead. Journals (one directory per machine
 * ID) go whole. */
static int clean_logs(struct sysprep_ctx *c, const char *dir, int depth)
{
	static const char *const keep[] = {"wtmp", "btmp", "lastlog", "faillog", "tallylog"};
	char **names, path[1024];
	size_t n;
	int ret = sp_list(c, dir, &names, &n);

	for (size_t i = 0; i < n && ret == 0; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path)) {
			ret = err_set(ENAMETOOLONG, "%s/%s: path too long", dir, names[i]);
			break;
		}
		uint32_t t = sp_type(c, path);
		bool login = false;
		for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
			login |= depth == 0 && !strcmp(names[i], keep[k]);
		if (t == S_IFDIR && depth == 1 && !strcmp(dir, "/var/log/journal"))
			ret = sp_remove(c, path, "a journal");
		else if (t == S_IFDIR && depth < 16)
			ret = clean_logs(c, path, depth + 1);
		else if (t == S_IFREG && login)
			ret = sp_truncate(c, path, NULL);
		else if (t == S_IFREG)
			ret = sp_remove(c, path, NULL);
	}
	sp_names_free(names, n);
	return ret;
}

/* virt-sysprep removes a list of known log files; here every regular file under /var/log
 * (directories stay: daemons expect them), plus the installers' logs it lists. */
static int op_logfiles(struct sysprep_ctx *c)
{
	static const char *const files[] = {
	    "/root/install.log",	 "/root/install.log.syslog",   "/root/anaconda-ks.cfg",
	    "/root/anaconda-post.log",	 "/root/initial-setup-ks.cfg", "/root/original-ks.cfg",
	    "/var/lib/logrotate.status", "/var/lib/logrotate/status",
	};
	int ret = sp_type(c, "/var/log") == S_IFDIR ? clean_logs(c, "/var/log", 0) : 0;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && ret == 0; i++)
		ret = sp_remove(c, files[i], NULL);
	return ret;
}

static int op_bash_history(struct sysprep_ctx *c)
{
	char **names, path[512];
	size_t n;
	int ret = sp_remove(c, "/root/.bash_history", NULL);

	if (ret < 0 || (ret = sp_list(c, "/home", &names, &n)) < 0)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++) {
		snprintf(path, sizeof(path), "/home/%s/.bash_history", names[i]);
		ret = sp_remove(c, path, NULL);
	}
	sp_names_free(names, n);
	return ret;
}

/* Everything in /tmp and /var/tmp (not the directories themselves, nor through a symlink). */
static int op_tmp_files(struct sysprep_ctx *c)
{
	static const char *const dirs[] = {"/tmp", "/var/tmp"};
	int ret = 0;

	for (size_t d = 0; d < 2 && ret == 0; d++) {
		char **names, path[512];
		size_t n;
		if ((ret = sp_list(c, dirs[d], &names, &n)) < 0)
			return ret;
		for (size_t i = 0; i < n && ret == 0; i++) {
			snprintf(path, sizeof(path), "%s/%s", dirs[d], names[i]);
			ret = sp_remove(c, path, NULL);
		}
		sp_names_free(names, n);
	}
	return ret;
}

/* A fresh seed from the host's random source in every seed file the guest has (or systemd's,
 * created), as virt-sysprep writes one: clones booting with one seed would start their random
 * pools alike. */
static int op_random_seed(struct sysprep_ctx *c)
{
	static const char *const files[] = {"/var/lib/systemd/random-seed",
					    "/var/lib/urandom/random-seed", "/var/lib/random-seed",
					    "/var/lib/misc/random-seed"};
	unsigned char seed[512];
	int ret = 0, written = 0;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && ret == 0; i++) {
		if (sp_type_follow(c, files[i]) != S_IFREG)
			continue;
		if ((ret = sp_random(seed, sizeof(seed))) == 0)
			ret = sp_write(c, files[i], seed, sizeof(seed), 0600, "rewritten",
				       "512 random bytes from the host");
		written++;
	}
	if (ret == 0 && !written && sp_type_follow(c, "/var/lib/systemd") == S_IFDIR &&
	    (ret = sp_random(seed, sizeof(seed))) == 0)
		ret = sp_write(c, files[0], seed, sizeof(seed), 0600, "rewritten",
			       "512 random bytes from the host");
	return ret;
}

static const struct sysprep_op ops[] = {
    {"bash-history", true, "Remove the bash history in the guest", op_bash_history},
    {"dhcp-client-state", true, "Remove DHCP client leases", op_dhcp_client_state},
    {"hostname", true, "Set the hostname (with --hostname; else nothing)", op_hostname},
    {"logfiles", true, "Remove many log files from the guest", op_logfiles},
    {"machine-id", true, "Remove the local machine ID", op_machine_id},
    {"net-hwaddr", true, "Remove HWADDR (hard-coded MAC address) configuration", op_net_hwaddr},
    {"random-seed", true, "Write a new random seed for the guest", op_random_seed},
    {"ssh-hostkeys", true, "Remove the SSH host keys in the guest", op_ssh_hostkeys},
    {"tmp-files", true, "Remove temporary files", op_tmp_files},
    {"udev-persistent-net", true, "Remove udev persistent net rules", op_udev_persistent_net},
};

const struct sysprep_op *sysprep_ops(size_t *n)
{
	*n = sizeof(ops) / sizeof(ops[0]);
	return ops;
}

uint32_t sysprep_default_ops(void)
{
	uint32_t m = 0;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].by_default)
			m |= 1u << i;
	return m;
}

int sysprep_ops_parse(const char *list, uint32_t *mask)
{
	char *copy = strdup(list), *save = NULL;
	uint32_t m = 0;
	int ret = 0;

	if (!copy)
		return err_set(ENOMEM, "out of memory");
	for (char *w = strtok_r(copy, ",", &save); w && ret == 0; w = strtok_r(NULL, ",", &save)) {
		bool minus = *w == '-';
		const char *name = w + minus;
		size_t i;
		if (!strcmp(name, "defaults") || !strcmp(name, "all") || !strcmp(name, "none")) {
			uint32_t set = !strcmp(name, "defaults") ? sysprep_default_ops()
				       : !strcmp(name, "all")
					   ? (1u << (sizeof(ops) / sizeof(ops[0]))) - 1
					   : 0;
			m = minus ? m & ~set : (!strcmp(name, "none") ? 0 : m | set);
			continue;
		}
		for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (!strcmp(name, ops[i].name))
				break;
		if (i == sizeof(ops) / sizeof(ops[0]))
			ret = err_set(EINVAL,
				      "--operations: no operation '%s' (see 'ligero sysprep "
				      "--list-operations')",
				      name);
		else if (minus)
			m &= ~(1u << i);
		else
			m |= 1u << i;
	}
	free(copy);
	if (ret == 0)
		*mask = m;
	return ret;
}
