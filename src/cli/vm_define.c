/*
 * `ligero vm create`, `edit` and `delete`: definitions. Every change happens under the
 * registry's lock (so two creates cannot hand out one MAC) and, for an existing VM, under the
 * VM's own lock (so it cannot start half-edited or be deleted while it runs).
 */
#include "cli/cli.h"
#include "cli/vm.h"
#include "block/block.h"
#include "host/runtime.h"
#include "host/vmdisks.h"
#include "util/error.h"
#include "util/options.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* An absolute path to an existing file, malloc'd; NULL after printing why not. */
static char *existing_file(const struct vm_cli *o, const char *what, const char *path)
{
	char *abs = realpath(path, NULL);
	struct stat st;

	if (!abs || stat(abs, &st) < 0) {
		vm_cli_fail(o, err_sys(errno, "%s %s", what, path));
		free(abs);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		vm_cli_fail(o, err_set(EISDIR, "%s %s is a directory", what, path));
		free(abs);
		return NULL;
	}
	return abs;
}

/* --disk FILE[,format=raw|qcow2][,readonly=on|off][,cache=MODE][,serial=ID] into d. */
static int add_disk(const struct vm_cli *o, struct vmdef *d, const char *spec)
{
	char *copy = strdup(spec), *s = copy, *k, *v;
	struct vmdef_disk disk = {0};
	const char *probed;
	int ret = 1;

	if (copy && bdev_is_remote_name(copy)) {
		/* A remote image (rbd:POOL/IMAGE:conf=F, nbd://HOST/EXPORT, nbd+unix:///?socket=S):
		 * its name runs to the first ',' and may hold '=' and ':'; it is raw unless said
		 * otherwise, and only the VMM, on whatever host starts it, connects to it. */
		char *comma = strchr(copy, ',');
		s = comma ? (*comma = '\0', comma + 1) : copy + strlen(copy);
		if (!(disk.path = strdup(copy))) {
			vm_cli_fail(o, err_set(ENOMEM, "out of memory"));
			goto out;
		}
		disk.format = (char *)"raw";
	} else if (!copy || !opts_next(&s, &k, &v) || v || !*k) {
		cli_usage_fail(o->verb, "--disk: the first item must be the image file");
		goto out;
	} else if (!(disk.path = existing_file(o, "--disk", k)))
		goto out;
	while (opts_next(&s, &k, &v)) {
		if (v && !strcmp(k, "format") && (!strcmp(v, "raw") || !strcmp(v, "qcow2")))
			disk.format = v;
		else if (v && !strcmp(k, "readonly") && (!strcmp(v, "on") || !strcmp(v, "off")))
			disk.readonly = !strcmp(v, "on");
		else if (v && !strcmp(k, "cache"))
			disk.cache = v;
		else if (v && !strcmp(k, "serial"))
			disk.serial = v;
		else {
			cli_usage_fail(o->verb, "--disk %s: bad option %s%s%s", disk.path, k,
				       v ? "=" : "", v ? v : "");
			goto out;
		}
	}
	/* Recorded now, so no boot ever probes the format again (a guest could write a qcow2
	 * header into a raw disk). */
	if (!disk.format) {
		if ((ret = bdev_probe_file(disk.path, &probed)) < 0) {
			ret = vm_cli_fail(o, ret);
			goto out;
		}
		disk.format = (char *)probed;
	}
	if ((ret = vmdef_add_disk(d, &disk)) < 0)
		ret = vm_cli_fail(o, ret);
	else
		ret = 0;
out:
	free(disk.path);
	free(copy);
	return ret;
}

/* --net bridge=BR|tap=TAP[,mac=MAC]: a MAC given must be free; one not given is drawn. */
static int add_net(const struct vm_cli *o, struct vmdef *d, const char *spec)
{
	char *copy = strdup(spec), *s = copy, *k, *v, *owner;
	struct vmdef_net n = {0};
	int ret = 1;

	while (copy && opts_next(&s, &k, &v)) {
		if (v && !strcmp(k, "bridge") && !n.bridge)
			n.bridge = v;
		else if (v && !strcmp(k, "tap") && !n.tap)
			n.tap = v;
		else if (v && !strcmp(k, "mac") && !n.mac[0]) {
			if ((ret = vmdef_mac_parse(v, n.mac)) < 0) {
				ret = vm_cli_fail(o, ret);
				goto out;
			}
		} else {
			ret = cli_usage_fail(o->verb, "--net: bad option %s%s%s", k, v ? "=" : "",
					     v ? v : "");
			goto out;
		}
	}
	if (!n.bridge && !n.tap) {
		ret = cli_usage_fail(o->verb, "--net needs bridge=BR or tap=TAP");
		goto out;
	}
	if (n.mac[0] && (owner = registry_mac_owner(&o->reg, n.mac, d->name))) {
		ret = vm_cli_fail(
		    o, err_set(EEXIST, "MAC address %s is VM %s's already", n.mac, owner));
		free(owner);
		goto out;
	}
	for (size_t i = 0; n.mac[0] && i < d->nnets; i++)
		if (!strcmp(d->nets[i].mac, n.mac)) {
			ret =
			    vm_cli_fail(o, err_set(EEXIST, "MAC address %s is given twice", n.mac));
			goto out;
		}
	if (!n.mac[0] && (ret = registry_new_mac(&o->reg, d->name, d, n.mac)) < 0) {
		ret = vm_cli_fail(o, ret);
		goto out;
	}
	ret = vmdef_add_net(d, &n) < 0 ? vm_cli_fail(o, -ENOMEM) : 0;
out:
	free(copy);
	return ret;
}

static int parse_cpus(const struct vm_cli *o, const char *s, unsigned *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || end == s || v < 1 || v > VMDEF_MAX_CPUS)
		return cli_usage_fail(o->verb, "--cpus '%s' is not a CPU count (1 to 254)", s);
	*out = (unsigned)v;
	return 0;
}

static int set_file(const struct vm_cli *o, char **field, const char *what, const char *path)
{
	char *abs = existing_file(o, what, path);

	if (!abs)
		return 1;
	free(*field);
	*field = abs;
	return 0;
}

static int set_str(char **field, const char *v)
{
	free(*field);
	*field = strdup(v);
	return 0;
}

/* ---- create ---- */

enum {
	OPT_DISK = 0x100,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_MEMORY,
	OPT_CPUS,
	OPT_NET,
	OPT_BALLOON,
	OPT_RNG,
	OPT_AUTOSTART,
	OPT_NO_BALLOON,
	OPT_NO_RNG,
	OPT_NO_AUTOSTART,
	OPT_DISK_BOOT,
	OPT_REMOVE_DISK,
	OPT_REMOVE_NET,
	OPT_DISKS,
};

int vm_define_collect(int c, const char *arg, void *priv)
{
	struct vm_define_opts *k = priv;

	k->any = true;
	switch (c) {
	case OPT_MEMORY:
		k->memory = arg;
		return 0;
	case OPT_CPUS:
		k->cpus = arg;
		return 0;
	case OPT_KERNEL:
		k->kernel = arg;
		return 0;
	case OPT_INITRD:
		k->initrd = arg;
		return 0;
	case OPT_CMDLINE:
		k->cmdline = arg;
		return 0;
	case OPT_DISK:
		if (k->ndisks == 64)
			return cli_usage_fail(k->verb, "at most 64 disks");
		k->disks[k->ndisks++] = arg;
		return 0;
	case OPT_NET:
		if (k->nnets == 16)
			return cli_usage_fail(k->verb, "at most 16 NICs");
		k->nets[k->nnets++] = arg;
		return 0;
	case OPT_REMOVE_DISK:
		if (k->nrm_disks < 64)
			k->rm_disks[k->nrm_disks++] = arg;
		return 0;
	case OPT_REMOVE_NET:
		if (k->nrm_nets < 16)
			k->rm_nets[k->nrm_nets++] = arg;
		return 0;
	case OPT_BALLOON:
	case OPT_NO_BALLOON:
		k->balloon = c == OPT_BALLOON;
		return 0;
	case OPT_RNG:
	case OPT_NO_RNG:
		k->rng = c == OPT_RNG;
		return 0;
	case OPT_AUTOSTART:
	case OPT_NO_AUTOSTART:
		k->autostart = c == OPT_AUTOSTART;
		return 0;
	case OPT_DISK_BOOT:
		k->disk_boot = true;
		return 0;
	}
	return 1;
}

int vm_define_apply(const struct vm_cli *o, const struct vm_define_opts *k, struct vmdef *d)
{
	int ret;

	if (k->memory && cli_parse_size("--memory", k->memory, &d->memory))
		return 1;
	if (k->cpus && (ret = parse_cpus(o, k->cpus, &d->cpus)))
		return ret;
	if (k->disk_boot) {
		free(d->kernel);
		free(d->initrd);
		free(d->cmdline);
		d->kernel = d->initrd = d->cmdline = NULL;
	}
	if (k->kernel && set_file(o, &d->kernel, "--kernel", k->kernel))
		return 1;
	if (k->initrd && set_file(o, &d->initrd, "--initrd", k->initrd))
		return 1;
	if (k->cmdline)
		set_str(&d->cmdline, k->cmdline);
	for (int i = 0; i < k->nrm_disks; i++) {
		char *abs = realpath(k->rm_disks[i], NULL);
		size_t j;
		for (j = 0; j < d->ndisks; j++)
			if (!strcmp(d->disks[j].path, abs ? abs : k->rm_disks[i]) ||
			    !strcmp(d->disks[j].path, k->rm_disks[i]))
				break;
		free(abs);
		if (j == d->ndisks)
			return vm_cli_fail(
			    o, err_set(ENOENT, "%s is not a disk of %s", k->rm_disks[i], d->name));
		free(d->disks[j].path);
		free(d->disks[j].format);
		free(d->disks[j].cache);
		free(d->disks[j].serial);
		memmove(d->disks + j, d->disks + j + 1, (d->ndisks - j - 1) * sizeof(*d->disks));
		d->ndisks--;
	}
	for (int i = 0; i < k->nrm_nets; i++) {
		size_t j;
		for (j = 0; j < d->nnets && strcasecmp(d->nets[j].mac, k->rm_nets[i]); j++)
			;
		if (j == d->nnets)
			return vm_cli_fail(o, err_set(ENOENT, "%s has no NIC with MAC %s", d->name,
						      k->rm_nets[i]));
		free(d->nets[j].bridge);
		free(d->nets[j].tap);
		memmove(d->nets + j, d->nets + j + 1, (d->nnets - j - 1) * sizeof(*d->nets));
		d->nnets--;
	}
	for (int i = 0; i < k->ndisks; i++)
		if ((ret = add_disk(o, d, k->disks[i])))
			return ret;
	for (int i = 0; i < k->nnets; i++)
		if ((ret = add_net(o, d, k->nets[i])))
			return ret;
	if (k->balloon >= 0)
		d->balloon = k->balloon;
	if (k->rng >= 0)
		d->rng = k->rng;
	if (k->autostart >= 0)
		d->autostart = k->autostart;
	if ((ret = vmdef_validate(d)) < 0)
		return vm_cli_fail(o, ret);
	return 0;
}

static const char create_usage[] =
    "create NAME [--disk FILE[,format=raw|qcow2][,readonly=on][,cache=MODE][,serial=ID]]...\n"
    "       [--kernel FILE [--initrd FILE] [--cmdline STR]] [--memory SIZE] [--cpus N]\n"
    "       [--net bridge=BR|tap=TAP[,mac=MAC]]... [--balloon] [--rng] [--autostart]\n"
    "\n"
    "Without --kernel the first disk's own kernel boots. Memory defaults to 1G, CPUs to 1.\n";

static const struct option create_opts[] = {
    {"disk", required_argument, NULL, OPT_DISK},
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"cmdline", required_argument, NULL, OPT_CMDLINE},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"net", required_argument, NULL, OPT_NET},
    {"balloon", no_argument, NULL, OPT_BALLOON},
    {"rng", no_argument, NULL, OPT_RNG},
    {"autostart", no_argument, NULL, OPT_AUTOSTART},
    {0},
};

const struct option *vm_define_options(size_t *n)
{
	*n = sizeof(create_opts) / sizeof(create_opts[0]) - 1;
	return create_opts;
}

int vm_create_main(int argc, char **argv)
{
	const struct option *opts = create_opts;
	struct vm_cli o = {.verb = "vm create"};
	struct vm_define_opts k = {.balloon = -1, .rng = -1, .autostart = -1, .verb = o.verb};
	struct vmdef d = {.memory = VM_DEFAULT_MEMORY, .cpus = 1};
	int ret, lock;

	if ((ret = vm_cli_parse(&o, create_usage, argc, argv, opts, false, true, vm_define_collect,
				&k)))
		return ret < 0 ? 0 : ret;
	if (!k.kernel && (k.initrd || k.cmdline))
		return vm_cli_done(&o, cli_usage_fail(o.verb, "--initrd and --cmdline go with "
							      "--kernel"));
	snprintf(d.name, sizeof(d.name), "%s", o.name);
	vmdef_random_uuid(d.uuid);
	vmdef_stamp(&d);
	if ((lock = registry_lock(&o.reg)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, lock));
	ret = vm_define_apply(&o, &k, &d);
	if (!ret && (ret = registry_create(&o.reg, &d)) < 0)
		ret = vm_cli_fail(&o, ret);
	registry_unlock(lock);
	vmdef_free(&d);
	return vm_cli_done(&o, ret);
}

/* ---- edit ---- */

/* The VM's lock, so it cannot start meanwhile: the fd, or -1 after printing why not. */
static int lock_stopped(const struct vm_cli *o, const char *what)
{
	pid_t holder;
	int fd = vm_lock_try(&o->reg, o->name, &holder);

	if (fd == -EBUSY) {
		if (holder)
			cli_fail("%s: %s is running (pid %d): stop it before %s", o->verb, o->name,
				 (int)holder, what);
		else
			cli_fail("%s: %s is running or busy: stop it before %s", o->verb, o->name,
				 what);
		return -1;
	}
	if (fd < 0) {
		vm_cli_fail(o, fd);
		return -1;
	}
	vm_clean_stale(&o->reg, o->name, fd);
	return fd;
}

/* No options: the definition in $VISUAL or $EDITOR, checked before it replaces the old one. */
static int edit_in_editor(const struct vm_cli *o, struct vmdef *d)
{
	const char *ed = getenv("VISUAL");
	char tmp[] = "/tmp/ligero-vm-edit.XXXXXX.json", *text = vmdef_to_text(d), *buf = NULL;
	struct vmdef nd;
	struct stat st;
	int fd, status, ret;
	pid_t pid;

	if (!ed || !*ed)
		ed = getenv("EDITOR");
	if (!ed || !*ed)
		ed = "vi";
	if (!text || (fd = mkstemps(tmp, 5)) < 0) {
		free(text);
		return vm_cli_fail(o, err_sys(errno, "cannot make a file to edit"));
	}
	ret = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -errno;
	free(text);
	close(fd);
	if (ret < 0)
		return vm_cli_fail(o, err_sys(-ret, "%s", tmp));
	fflush(NULL);
	if ((pid = fork()) == 0) {
		execl("/bin/sh", "sh", "-c", "exec $LIGERO_EDITOR \"$1\"", "sh", tmp, (char *)NULL);
		_exit(127);
	}
	/* The editor is run through the shell so that EDITOR may carry arguments. */
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		unlink(tmp);
		return cli_fail("%s: the editor (%s) failed; %s is unchanged", o->verb, ed,
				o->name);
	}
	if (stat(tmp, &st) < 0 || !(buf = malloc((size_t)st.st_size + 1)) ||
	    (fd = open(tmp, O_RDONLY)) < 0) {
		free(buf);
		return vm_cli_fail(o, err_sys(errno, "%s", tmp));
	}
	ret = read(fd, buf, (size_t)st.st_size) == st.st_size ? 0 : -EIO;
	close(fd);
	if (!ret)
		ret = vmdef_parse(buf, (size_t)st.st_size, tmp, &nd);
	free(buf);
	if (ret < 0) {
		cli_fail("%s: %s; %s is unchanged, the edit is kept in %s", o->verb,
			 err_msg_or(ret), o->name, tmp);
		return 1;
	}
	unlink(tmp);
	if (strcmp(nd.name, d->name) || strcmp(nd.uuid, d->uuid)) {
		vmdef_free(&nd);
		return cli_fail("%s: the name and uuid cannot be changed (create a new VM); %s is "
				"unchanged",
				o->verb, o->name);
	}
	vmdef_free(d);
	*d = nd;
	return 0;
}

static const char edit_usage[] =
    "edit NAME [--memory SIZE] [--cpus N] [--kernel FILE] [--initrd FILE] [--cmdline STR]\n"
    "       [--disk-boot] [--disk FILE[,OPTS]]... [--remove-disk FILE]...\n"
    "       [--net bridge=BR|tap=TAP[,mac=MAC]]... [--remove-net MAC]...\n"
    "       [--balloon|--no-balloon] [--rng|--no-rng] [--autostart|--no-autostart]\n"
    "\n"
    "Changes a stopped VM's definition; --disk and --net add. Without options the\n"
    "definition opens in $VISUAL or $EDITOR and is checked before it is saved.\n";

int vm_edit_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"memory", required_argument, NULL, OPT_MEMORY},
	    {"cpus", required_argument, NULL, OPT_CPUS},
	    {"kernel", required_argument, NULL, OPT_KERNEL},
	    {"initrd", required_argument, NULL, OPT_INITRD},
	    {"cmdline", required_argument, NULL, OPT_CMDLINE},
	    {"disk-boot", no_argument, NULL, OPT_DISK_BOOT},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"remove-disk", required_argument, NULL, OPT_REMOVE_DISK},
	    {"net", required_argument, NULL, OPT_NET},
	    {"remove-net", required_argument, NULL, OPT_REMOVE_NET},
	    {"balloon", no_argument, NULL, OPT_BALLOON},
	    {"no-balloon", no_argument, NULL, OPT_NO_BALLOON},
	    {"rng", no_argument, NULL, OPT_RNG},
	    {"no-rng", no_argument, NULL, OPT_NO_RNG},
	    {"autostart", no_argument, NULL, OPT_AUTOSTART},
	    {"no-autostart", no_argument, NULL, OPT_NO_AUTOSTART},
	    {0},
	};
	struct vm_cli o = {.verb = "vm edit"};
	struct vm_define_opts k = {.balloon = -1, .rng = -1, .autostart = -1, .verb = o.verb};
	struct vmdef d;
	int ret, lock, vmlock;
	const char *ed;

	if ((ret = vm_cli_parse(&o, edit_usage, argc, argv, opts, false, true, vm_define_collect,
				&k)))
		return ret < 0 ? 0 : ret;
	if ((vmlock = lock_stopped(&o, "editing it")) < 0)
		return vm_cli_done(&o, 1);
	if ((lock = registry_lock(&o.reg)) < 0) {
		close(vmlock);
		return vm_cli_done(&o, vm_cli_fail(&o, lock));
	}
	if ((ret = registry_load(&o.reg, o.name, &d)) < 0) {
		ret = vm_cli_fail(&o, ret);
		goto out;
	}
	if (k.any) {
		ret = vm_define_apply(&o, &k, &d);
	} else {
		ed = getenv("VISUAL");
		if (!ed || !*ed)
			ed = getenv("EDITOR");
		setenv("LIGERO_EDITOR", ed && *ed ? ed : "vi", 1);
		ret = edit_in_editor(&o, &d);
		if (!ret && (ret = vmdef_validate(&d)) < 0)
			ret = vm_cli_fail(&o, ret);
	}
	if (!ret && (ret = registry_replace(&o.reg, &d)) < 0)
		ret = vm_cli_fail(&o, ret);
	vmdef_free(&d);
out:
	registry_unlock(lock);
	close(vmlock);
	return vm_cli_done(&o, ret);
}

/* ---- delete ---- */

static int delete_one_opt(int c, const char *arg, void *priv)
{
	(void)arg;
	*(bool *)priv = c == OPT_DISKS;
	return c == OPT_DISKS ? 0 : 1;
}

int vm_delete_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"disks", no_argument, NULL, OPT_DISKS},
	    {0},
	};
	struct vm_cli o = {.verb = "vm delete"};
	bool disks = false;
	bool *remove = NULL;
	struct vmdef d = {0};
	int ret, lock, vmlock;

	if ((ret = vm_cli_parse(&o,
				"delete NAME [--disks]\n\n--disks also removes the VM's own "
				"disk images: never one that another VM\nuses, a base that "
				"overlays depend on, or a read-only one.\n",
				argc, argv, opts, false, true, delete_one_opt, &disks)))
		return ret < 0 ? 0 : ret;
	if ((vmlock = lock_stopped(&o, "deleting it")) < 0)
		return vm_cli_done(&o, 1);
	if ((lock = registry_lock(&o.reg)) < 0) {
		close(vmlock);
		return vm_cli_done(&o, vm_cli_fail(&o, lock));
	}
	/* A definition that no longer parses can still be deleted, but not with its disks:
	 * which files they are is what cannot be read. */
	ret = registry_load(&o.reg, o.name, &d);
	if (ret < 0 && (ret == -ENOENT || disks)) {
		ret = vm_cli_fail(&o, ret);
		goto out;
	}
	if (disks && d.ndisks && !(remove = calloc(d.ndisks, sizeof(*remove)))) {
		ret = vm_cli_fail(&o, -ENOMEM);
		goto out;
	}
	for (size_t i = 0; disks && i < d.ndisks; i++) {
		if (d.disks[i].readonly) {
			fprintf(stderr, "ligero: %s: %s is read-only, so not %s's own; kept\n",
				o.verb, d.disks[i].path, o.name);
			continue;
		}
		if (bdev_is_remote_name(d.disks[i].path)) {
			fprintf(stderr,
				"ligero: %s: %s is a remote image, removed only on its server (rbd "
				"rm; a fleet's members: fleet delete --disks); kept\n",
				o.verb, d.disks[i].path);
			continue;
		}
		if (vm_disk_removable(&o.reg, o.name, d.disks[i].path) < 0) {
			fprintf(stderr, "ligero: %s: %s\n", o.verb, err_msg());
			continue;
		}
		remove[i] = true;
	}
	if ((ret = registry_remove(&o.reg, o.name)) < 0) {
		ret = vm_cli_fail(&o, ret);
		goto out;
	}
	for (size_t i = 0; disks && i < d.ndisks; i++)
		if (remove[i] && unlink(d.disks[i].path) < 0 && errno != ENOENT)
			ret = cli_fail("%s: cannot remove %s: %s", o.verb, d.disks[i].path,
				       strerror(errno));
out:
	free(remove);
	vmdef_free(&d);
	registry_unlock(lock);
	close(vmlock);
	return vm_cli_done(&o, ret);
}
