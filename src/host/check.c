/*
 * Host readiness checks. Only what decides whether a VM runs with hardware acceleration can
 * FAIL (the device, the CPU's virtualization extensions, a KVM that runs stock kernels); the
 * rest are things a VM host usually wants, and WARN with the fix when missing.
 */
#include "host/check.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define NCHECKS 12

const char *check_result_name(enum check_result r)
{
	return r == CHECK_PASS ? "PASS" : r == CHECK_WARN ? "WARN" : "FAIL";
}

struct ctx {
	const struct check_opts *o;
	struct check_item *items;
	size_t n;
};

static struct check_item *item(struct ctx *c, const char *name, enum check_result r,
			       const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static struct check_item *item(struct ctx *c, const char *name, enum check_result r,
			       const char *fix, const char *fmt, ...)
{
	struct check_item *it = &c->items[c->n++];
	va_list ap;

	it->name = name;
	it->result = r;
	va_start(ap, fmt);
	vsnprintf(it->message, sizeof(it->message), fmt, ap);
	va_end(ap);
	snprintf(it->fix, sizeof(it->fix), "%s", fix ? fix : "");
	return it;
}

static void path_of(const struct ctx *c, const char *rel, char *out, size_t size)
{
	const char *root = c->o->root;
	size_t len = strlen(root);

	while (len > 1 && root[len - 1] == '/')
		len--;
	snprintf(out, size, "%.*s%s", (int)(len == 1 && root[0] == '/' ? 0 : len), root, rel);
}

/* The first line of ROOT/rel without its newline; false when unreadable. */
static bool read_line(const struct ctx *c, const char *rel, char *out, size_t size)
{
	char path[4096];
	FILE *f;
	bool ok;

	path_of(c, rel, path, sizeof(path));
	if (!(f = fopen(path, "re")))
		return false;
	ok = fgets(out, (int)size, f) != NULL;
	fclose(f);
	if (ok)
		out[strcspn(out, "\n")] = '\0';
	return ok;
}

static long long read_num(const struct ctx *c, const char *rel)
{
	char buf[64];

	return read_line(c, rel, buf, sizeof(buf)) ? strtoll(buf, NULL, 10) : -1;
}

static bool exists(const struct ctx *c, const char *rel, struct stat *st)
{
	char path[4096];
	struct stat tmp;

	path_of(c, rel, path, sizeof(path));
	return stat(path, st ? st : &tmp) == 0;
}

static bool in_groups(const struct check_opts *o, gid_t g)
{
	if (g == o->gid)
		return true;
	for (int i = 0; i < o->ngroups; i++)
		if (o->groups[i] == g)
			return true;
	return false;
}

/* Read and write access by the mode bits, as the kernel decides it (root passes). */
static bool mode_allows_rw(const struct check_opts *o, const struct stat *st)
{
	mode_t m = st->st_mode;

	if (o->uid == 0)
		return true;
	if (o->uid == st->st_uid)
		return (m & (S_IRUSR | S_IWUSR)) == (S_IRUSR | S_IWUSR);
	if (in_groups(o, st->st_gid))
		return (m & (S_IRGRP | S_IWGRP)) == (S_IRGRP | S_IWGRP);
	return (m & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH);
}

static void check_kvm_device(struct ctx *c)
{
	struct stat st;
	char path[4096];
	int fd, v;

	path_of(c, "/dev/kvm", path, sizeof(path));
	if (!exists(c, "/dev/kvm", &st)) {
		item(c, "kvm-device", CHECK_FAIL,
		     "load KVM for this CPU (modprobe kvm_intel, or kvm_amd); if that fails, "
		     "enable virtualization in the firmware",
		     "%s does not exist", path);
		return;
	}
	if (c->o->live) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 && (errno == EACCES || errno == EPERM)) {
			item(c, "kvm-device", CHECK_FAIL,
			     "join the group that owns /dev/kvm (usermod -aG kvm USER) and log in "
			     "again",
			     "%s exists but this user cannot open it", path);
			return;
		}
		if (fd < 0) {
			item(c, "kvm-device", CHECK_FAIL, "load kvm_intel or kvm_amd",
			     "%s cannot be opened: %s", path, strerror(errno));
			return;
		}
		v = ioctl(fd, KVM_GET_API_VERSION, 0);
		close(fd);
		if (v != KVM_API_VERSION) {
			item(c, "kvm-device", CHECK_FAIL, "use a Linux kernel with KVM API 12",
			     "%s answers KVM API version %d, not %d", path, v, KVM_API_VERSION);
			return;
		}
		item(c, "kvm-device", CHECK_PASS, NULL, "%s is present and usable by this user",
		     path);
		return;
	}
	if (!mode_allows_rw(c->o, &st)) {
		item(c, "kvm-device", CHECK_FAIL,
		     "join the group that owns /dev/kvm (usermod -aG kvm USER) and log in again",
		     "%s exists but uid %u cannot read and write it (mode %03o, owner %u:%u)", path,
		     (unsigned)c->o->uid, (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid,
		     (unsigned)st.st_gid);
		return;
	}
	item(c, "kvm-device", CHECK_PASS, NULL, "%s is present and usable by uid %u", path,
	     (unsigned)c->o->uid);
}

/* The "flags" line of cpuinfo: which of vmx, svm and hypervisor it has. */
static void cpu_flags(const struct ctx *c, bool *vmx, bool *svm, bool *hyp)
{
	char path[4096], line[8192];
	FILE *f;

	*vmx = *svm = *hyp = false;
	path_of(c, "/proc/cpuinfo", path, sizeof(path));
	if (!(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		for (char *save, *t = strtok_r(strchr(line, ':') ? strchr(line, ':') + 1 : line,
					       " \t\n", &save);
		     t; t = strtok_r(NULL, " \t\n", &save)) {
			*vmx |= !strcmp(t, "vmx");
			*svm |= !strcmp(t, "svm");
			*hyp |= !strcmp(t, "hypervisor");
		}
		break;
	}
	fclose(f);
}

static void check_cpu(struct ctx *c)
{
	bool vmx, svm, hyp;

	cpu_flags(c, &vmx, &svm, &hyp);
	if (vmx || svm) {
		item(c, "cpu-virt", CHECK_PASS, NULL, "the CPU has %s",
		     vmx ? "Intel VT-x (vmx)" : "AMD-V (svm)");
		return;
	}
	if (hyp) {
		item(c, "cpu-virt", CHECK_FAIL,
		     "enable nested virtualization in the hypervisor this host runs on (its "
		     "kvm_intel/kvm_amd nested=1, and a CPU model that passes vmx or svm through)",
		     "no vmx or svm in the CPU flags: this host is itself a VM whose hypervisor "
		     "does not pass virtualization through, so VMs would run emulated and slow");
		return;
	}
	item(c, "cpu-virt", CHECK_FAIL,
	     "enable virtualization (Intel VT-x, or AMD-V/SVM mode) in the firmware setup",
	     "no vmx or svm in the CPU flags: virtualization is off in the firmware or missing, "
	     "so VMs would run emulated and slow");
}

static const char *kvm_module(const struct ctx *c)
{
	if (exists(c, "/sys/module/kvm_intel", NULL))
		return "kvm_intel";
	if (exists(c, "/sys/module/kvm_amd", NULL))
		return "kvm_amd";
	return NULL;
}

static void check_kvm_kind(struct ctx *c)
{
	const char *mod = kvm_module(c);

	if (exists(c, "/sys/module/kvm_pvm", NULL)) {
		item(c, "kvm-kind", CHECK_FAIL,
		     "run VMs inside the emulated host, which has a real KVM "
		     "(tests/vmhost/vmhost.sh; docs/ligero-run.md)",
		     "KVM here is PVM (module kvm_pvm): it runs only PVM-enabled guest kernels, "
		     "a stock kernel would hang in its instruction emulator");
		return;
	}
	if (!mod) {
		item(c, "kvm-kind", CHECK_FAIL, "modprobe kvm_intel (or kvm_amd)",
		     "no KVM module for the CPU (kvm_intel, kvm_amd) is loaded");
		return;
	}
	item(c, "kvm-kind", CHECK_PASS, NULL, "KVM is %s, which runs stock kernels", mod);
}

static void check_nested(struct ctx *c)
{
	const char *mod = kvm_module(c);
	char rel[128], v[16], fix[256];

	if (!mod) {
		item(c, "nested", CHECK_WARN, "load kvm_intel or kvm_amd",
		     "nested virtualization: unknown (no kvm_intel or kvm_amd module)");
		return;
	}
	snprintf(rel, sizeof(rel), "/sys/module/%s/parameters/nested", mod);
	if (!read_line(c, rel, v, sizeof(v))) {
		item(c, "nested", CHECK_WARN, NULL,
		     "nested virtualization: %s has no nested "
		     "parameter",
		     mod);
		return;
	}
	if (v[0] == 'Y' || v[0] == 'y' || v[0] == '1') {
		item(c, "nested", CHECK_PASS, NULL,
		     "nested virtualization is on (%s nested=%s): guests can run VMs of their own",
		     mod, v);
		return;
	}
	snprintf(fix, sizeof(fix),
		 "echo 'options %s nested=1' > /etc/modprobe.d/kvm-nested.conf, then reload %s "
		 "with no VM running",
		 mod, mod);
	item(c, "nested", CHECK_WARN, fix,
	     "nested virtualization is off (%s nested=%s): guests cannot run VMs of their own", mod,
	     v);
}

static void check_ksm(struct ctx *c)
{
	long long run = read_num(c, "/sys/kernel/mm/ksm/run");
	long long scan = read_num(c, "/sys/kernel/mm/ksm/pages_to_scan");
	long long sleep = read_num(c, "/sys/kernel/mm/ksm/sleep_millisecs");
	long long sharing = read_num(c, "/sys/kernel/mm/ksm/pages_sharing");
	long page = sysconf(_SC_PAGESIZE);

	if (run < 0) {
		item(c, "ksm", CHECK_WARN, "use a kernel built with CONFIG_KSM",
		     "no KSM in this kernel (/sys/kernel/mm/ksm): identical pages of VMs are "
		     "never shared");
		return;
	}
	if (run == 0) {
		item(c, "ksm", CHECK_WARN,
		     "echo 1 > /sys/kernel/mm/ksm/run (and make it stick with a tmpfiles.d or "
		     "sysfs.conf entry)",
		     "KSM is off (run=0): identical pages of VMs are not shared (pages_to_scan "
		     "%lld, "
		     "sleep_millisecs %lld)",
		     scan, sleep);
		return;
	}
	if (run == 2) {
		item(c, "ksm", CHECK_WARN, "echo 1 > /sys/kernel/mm/ksm/run",
		     "KSM is unmerging every shared page (run=2) and merges nothing new");
		return;
	}
	item(c, "ksm", CHECK_PASS, NULL,
	     "KSM is running: pages_to_scan %lld, sleep_millisecs %lld; %lld pages shared away "
	     "(%lld MiB saved)",
	     scan, sleep, sharing < 0 ? 0 : sharing, sharing < 0 ? 0 : sharing * page / (1 << 20));
}

static void check_thp(struct ctx *c)
{
	char v[256], *open, *close;

	if (!read_line(c, "/sys/kernel/mm/transparent_hugepage/enabled", v, sizeof(v))) {
		item(c, "thp", CHECK_WARN, "use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE",
		     "no transparent huge pages in this kernel: guest memory is mapped with 4 KiB "
		     "pages only");
		return;
	}
	open = strchr(v, '[');
	close = open ? strchr(open, ']') : NULL;
	if (!open || !close) {
		item(c, "thp", CHECK_WARN, NULL, "transparent huge pages: cannot read '%s'", v);
		return;
	}
	*close = '\0';
	if (!strcmp(open + 1, "never")) {
		item(c, "thp", CHECK_WARN,
		     "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
		     "transparent huge pages are off (never): guest memory gets 4 KiB pages, more "
		     "TLB misses");
		return;
	}
	item(c, "thp", CHECK_PASS, NULL, "transparent huge pages: %s", open + 1);
}

static void check_dev(struct ctx *c, const char *name, const char *rel, const char *why,
		      const char *fix)
{
	char path[4096];

	path_of(c, rel, path, sizeof(path));
	if (exists(c, rel, NULL))
		item(c, name, CHECK_PASS, NULL, "%s is present", path);
	else
		item(c, name, CHECK_WARN, fix, "%s is missing: %s", path, why);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of ROOT/rel (no dot files); the count, or -1. */
static int list_dir(const struct ctx *c, const char *rel, char ***out)
{
	char path[4096];
	DIR *d;
	struct dirent *e;
	char **v = NULL;
	int n = 0;

	*out = NULL;
	path_of(c, rel, path, sizeof(path));
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d))) {
		char **nv;
		if (e->d_name[0] == '.' || !(nv = realloc(v, (size_t)(n + 1) * sizeof(*v))))
			continue;
		v = nv;
		if ((v[n] = strdup(e->d_name)))
			n++;
	}
	closedir(d);
	if (n)
		qsort(v, (size_t)n, sizeof(*v), cmp_str);
	*out = v;
	return n;
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool has_bridge(struct ctx *c, const char *name)
{
	char rel[512];

	snprintf(rel, sizeof(rel), "/sys/class/net/%s/bridge", name);
	return exists(c, rel, NULL);
}

static void check_bridges(struct ctx *c)
{
	char **ifs, **members, text[400] = "", rel[512];
	int n = list_dir(c, "/sys/class/net", &ifs), nbr = 0;
	size_t used = 0;

	for (int i = 0; i < n; i++) {
		if (!has_bridge(c, ifs[i]))
			continue;
		snprintf(rel, sizeof(rel), "/sys/class/net/%s/brif", ifs[i]);
		int m = list_dir(c, rel, &members);
		used += (size_t)snprintf(text + used, used < sizeof(text) ? sizeof(text) - used : 0,
					 "%s%s (", nbr++ ? ", " : "", ifs[i]);
		for (int j = 0; j < m; j++)
			used += (size_t)snprintf(text + used,
						 used < sizeof(text) ? sizeof(text) - used : 0,
						 "%s%s", j ? " " : "", members[j]);
		used += (size_t)snprintf(text + used, used < sizeof(text) ? sizeof(text) - used : 0,
					 "%s)", m > 0 ? "" : "no members");
		free_list(members, m);
	}
	free_list(ifs, n);
	for (size_t i = 0; i < c->o->nbridges; i++) {
		if (has_bridge(c, c->o->bridges[i]))
			continue;
		item(
		    c, "bridges", CHECK_WARN,
		    "create it (ip link add NAME type bridge; ip link set NIC master NAME; ip link "
		    "set NAME up) or make it in the network configuration",
		    "a defined VM uses bridge %s, which does not exist%s%s", c->o->bridges[i],
		    nbr ? "; bridges: " : "", nbr ? text : "");
		return;
	}
	if (!nbr) {
		item(c, "bridges", CHECK_WARN,
		     "for VMs on the LAN: ip link add br0 type bridge; ip link set NIC master br0; "
		     "ip link set br0 up (or the distribution's network configuration)",
		     "no network bridge: VMs can use --net tap=, but not bridge=");
		return;
	}
	item(c, "bridges", CHECK_PASS, NULL, "bridges: %s", text);
}

static void check_cgroup(struct ctx *c)
{
	char v[1024];
	bool cpu = false, mem = false;

	if (!read_line(c, "/sys/fs/cgroup/cgroup.controllers", v, sizeof(v))) {
		item(c, "cgroup-v2", CHECK_WARN,
		     "boot with systemd.unified_cgroup_hierarchy=1 (the default of current "
		     "distributions)",
		     "no cgroup v2 at /sys/fs/cgroup: per-VM CPU and memory limits through systemd "
		     "units are not available");
		return;
	}
	for (char *save, *t = strtok_r(v, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		cpu |= !strcmp(t, "cpu");
		mem |= !strcmp(t, "memory");
	}
	read_line(c, "/sys/fs/cgroup/cgroup.controllers", v, sizeof(v));
	if (!cpu || !mem) {
		item(c, "cgroup-v2", CHECK_WARN,
		     "enable the cpu and memory controllers (cgroup_enable=memory on the kernel "
		     "command line)",
		     "cgroup v2 without the %s controller (has: %s)", !cpu ? "cpu" : "memory", v);
		return;
	}
	item(c, "cgroup-v2", CHECK_PASS, NULL, "cgroup v2 controllers: %s", v);
}

static void check_iommu(struct ctx *c)
{
	char **groups;
	int n = list_dir(c, "/sys/kernel/iommu_groups", &groups);

	free_list(groups, n);
	if (n <= 0) {
		item(c, "iommu", CHECK_WARN,
		     "enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on (or "
		     "amd_iommu=on)",
		     "no IOMMU groups: devices cannot be passed through to VMs (VFIO)");
		return;
	}
	item(c, "iommu", CHECK_PASS, NULL, "%d IOMMU groups", n);
}

static long long meminfo_kb(const struct ctx *c, const char *key)
{
	char path[4096], line[256];
	size_t klen = strlen(key);
	long long v = -1;
	FILE *f;

	path_of(c, "/proc/meminfo", path, sizeof(path));
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void check_memory(struct ctx *c)
{
	long long total = meminfo_kb(c, "MemTotal"), avail = meminfo_kb(c, "MemAvailable");
	unsigned long long promised = c->o->promised >> 20;

	if (total < 0) {
		item(c, "memory", CHECK_WARN, NULL, "cannot read /proc/meminfo");
		return;
	}
	total >>= 10;
	avail = avail < 0 ? 0 : avail >> 10;
	if (promised > (unsigned long long)total) {
		item(c, "memory", CHECK_WARN,
		     "give the VMs less memory (ligero vm edit NAME --memory), or run fewer at "
		     "once; KSM and the balloon make overcommitment work only while guests share "
		     "pages or give memory back",
		     "the %u defined VMs promise %llu MiB, more than the host's %lld MiB (%lld MiB "
		     "available now)",
		     c->o->nvms, promised, total, avail);
		return;
	}
	item(c, "memory", CHECK_PASS, NULL,
	     "the %u defined VMs promise %llu MiB of the host's %lld MiB (%lld MiB available now)",
	     c->o->nvms, promised, total, avail);
}

int host_check(const struct check_opts *o, struct check_item **items, size_t *n)
{
	struct ctx c = {.o = o, .items = calloc(NCHECKS, sizeof(struct check_item))};

	if (!c.items)
		return -ENOMEM;
	check_kvm_device(&c);
	check_cpu(&c);
	check_kvm_kind(&c);
	check_nested(&c);
	check_ksm(&c);
	check_thp(&c);
	check_dev(&c, "vhost-net", "/dev/vhost-net",
		  "QEMU's vhost=on needs it (ligero's virtio-net moves packets itself)",
		  "modprobe vhost_net");
	check_dev(&c, "tun", "/dev/net/tun", "VMs with --net (a tap device) cannot start",
		  "modprobe tun");
	check_bridges(&c);
	check_cgroup(&c);
	check_iommu(&c);
	check_memory(&c);
	*items = c.items;
	*n = c.n;
	return 0;
}

bool host_check_accelerated(const struct check_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].result == CHECK_FAIL)
			return false;
	return true;
}
