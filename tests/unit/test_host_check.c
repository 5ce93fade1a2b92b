/*
 * `ligero host check` against fake roots: a directory tree standing for /proc, /sys and /dev,
 * built here for each branch of each check (PASS, WARN, FAIL), so every message and fix is seen
 * without needing a host in that state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/check.h"

struct fixture {
	char root[64];
	struct check_opts o;
	gid_t groups[1];
};

static void put(const struct fixture *f, const char *rel, const char *content)
{
	char path[512];
	FILE *out;

	snprintf(path, sizeof(path), "%s%s", f->root, rel);
	for (char *p = path + strlen(f->root) + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	if (content) {
		out = fopen(path, "w");
		assert_non_null(out);
		fputs(content, out);
		fclose(out);
	} else {
		mkdir(path, 0755); /* a directory */
	}
}

static void rm(const struct fixture *f, const char *rel)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf %s%s", f->root, rel);
	assert_int_equal(system(cmd), 0);
}

/* A host where everything passes: Intel, nested on, KSM running, a bridge with members. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->root, sizeof(f->root), "/tmp/ligero-check-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	put(f, "/dev/kvm", "");
	put(f, "/dev/vhost-net", "");
	put(f, "/dev/net/tun", "");
	put(f, "/proc/cpuinfo",
	    "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse vmx sse2 "
	    "ept\n\nprocessor\t: 1\nflags\t\t: fpu vmx\n");
	put(f, "/proc/meminfo",
	    "MemTotal:        8000000 kB\nMemFree:         1000000 kB\n"
	    "MemAvailable:    6000000 kB\n");
	put(f, "/sys/module/kvm/parameters/halt_poll_ns", "200000\n");
	put(f, "/sys/module/kvm_intel/parameters/nested", "Y\n");
	put(f, "/sys/kernel/mm/ksm/run", "1\n");
	put(f, "/sys/kernel/mm/ksm/pages_to_scan", "100\n");
	put(f, "/sys/kernel/mm/ksm/sleep_millisecs", "20\n");
	put(f, "/sys/kernel/mm/ksm/pages_sharing", "25600\n");
	put(f, "/sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");
	put(f, "/sys/class/net/eth0/address", "52:54:00:00:00:01\n");
	put(f, "/sys/class/net/br0/bridge/stp_state", "0\n");
	put(f, "/sys/class/net/br0/brif/eth0", "");
	put(f, "/sys/class/net/br0/brif/tap0", "");
	put(f, "/sys/class/net/lo/address", "00:00:00:00:00:00\n");
	put(f, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
	put(f, "/sys/kernel/iommu_groups/0", NULL);
	put(f, "/sys/kernel/iommu_groups/1", NULL);
	f->o.root = f->root;
	f->o.uid = 0;
	f->o.promised = 2ull << 30;
	f->o.nvms = 2;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm(f, "");
	free(f);
	return 0;
}

/* Run the checks; the named one's result and text. */
static const struct check_item *run(struct fixture *f, const char *name, struct check_item **all,
				    size_t *n)
{
	assert_int_equal(host_check(&f->o, all, n), 0);
	assert_int_equal(*n, 12);
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*all)[i].name, name))
			return &(*all)[i];
	fail_msg("no check named %s", name);
	return NULL;
}

static void expect(struct fixture *f, const char *name, enum check_result r, const char *msg,
		   const char *fix)
{
	struct check_item *all;
	size_t n;
	const struct check_item *it = run(f, name, &all, &n);

	if (it->result != r)
		fail_msg("%s: %s, wanted %s (%s)", name, check_result_name(it->result),
			 check_result_name(r), it->message);
	if (msg && !strstr(it->message, msg))
		fail_msg("%s: message '%s' lacks '%s'", name, it->message, msg);
	if (fix && !strstr(it->fix, fix))
		fail_msg("%s: fix '%s' lacks '%s'", name, it->fix, fix);
	if (r == CHECK_PASS)
		assert_string_equal(it->fix, "");
	else
		assert_true(r == CHECK_WARN && !fix ? true : strlen(it->fix) > 0);
	free(all);
}

static void test_all_pass(void **state)
{
	struct fixture *f = *state;
	struct check_item *all;
	size_t n;

	run(f, "memory", &all, &n);
	for (size_t i = 0; i < n; i++)
		if (all[i].result != CHECK_PASS)
			fail_msg("%s: %s %s", all[i].name, check_result_name(all[i].result),
				 all[i].message);
	assert_true(host_check_accelerated(all, n));
	free(all);
	expect(f, "cpu-virt", CHECK_PASS, "Intel VT-x (vmx)", NULL);
	expect(f, "kvm-kind", CHECK_PASS, "kvm_intel", NULL);
	expect(f, "nested", CHECK_PASS, "nested=Y", NULL);
	expect(f, "ksm", CHECK_PASS, "pages_to_scan 100, sleep_millisecs 20; 25600 pages", NULL);
	expect(f, "ksm", CHECK_PASS, "(100 MiB saved)", NULL); /* 25600 4 KiB pages */
	expect(f, "thp", CHECK_PASS, "madvise", NULL);
	expect(f, "bridges", CHECK_PASS, "br0 (eth0 tap0)", NULL);
	expect(f, "cgroup-v2", CHECK_PASS, "cpu io memory", NULL);
	expect(f, "iommu", CHECK_PASS, "2 IOMMU groups", NULL);
	expect(f, "memory", CHECK_PASS, "2 defined VMs promise 2048 MiB of the host's 7812 MiB",
	       NULL);
}

static void test_kvm_device(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct stat st;
	struct check_item *all;
	size_t n;

	snprintf(path, sizeof(path), "%s/dev/kvm", f->root);
	assert_int_equal(stat(path, &st), 0);
	/* mode bits decide for another user: its group may, others may not */
	assert_int_equal(chmod(path, 0660), 0);
	f->o.uid = st.st_uid + 4242;
	f->o.gid = st.st_gid + 4242;
	f->o.groups = f->groups;
	f->o.ngroups = 1;
	f->groups[0] = st.st_gid;
	expect(f, "kvm-device", CHECK_PASS, "usable by uid", NULL);
	f->groups[0] = st.st_gid + 1;
	expect(f, "kvm-device", CHECK_FAIL, "cannot read and write it (mode 660",
	       "usermod -aG kvm");
	assert_int_equal(chmod(path, 0666), 0);
	expect(f, "kvm-device", CHECK_PASS, NULL, NULL);
	assert_int_equal(chmod(path, 0600), 0);
	f->o.uid = st.st_uid; /* its owner */
	expect(f, "kvm-device", CHECK_PASS, NULL, NULL);
	f->o.uid = 0;
	rm(f, "/dev/kvm");
	expect(f, "kvm-device", CHECK_FAIL, "does not exist", "modprobe kvm_intel");
	run(f, "kvm-device", &all, &n);
	assert_false(host_check_accelerated(all, n));
	free(all);
}

static void test_cpu_flags(void **state)
{
	struct fixture *f = *state;

	put(f, "/proc/cpuinfo", "flags\t\t: fpu svm npt\n");
	expect(f, "cpu-virt", CHECK_PASS, "AMD-V (svm)", NULL);
	put(f, "/proc/cpuinfo", "flags\t\t: fpu sse2 vmxnot\n"); /* a word that merely starts so */
	expect(f, "cpu-virt", CHECK_FAIL, "no vmx or svm", "in the firmware setup");
	put(f, "/proc/cpuinfo", "flags\t\t: fpu sse2 hypervisor\n");
	expect(f, "cpu-virt", CHECK_FAIL, "itself a VM", "nested virtualization");
	rm(f, "/proc/cpuinfo");
	expect(f, "cpu-virt", CHECK_FAIL, NULL, NULL);
}

static void test_kvm_kind_and_nested(void **state)
{
	struct fixture *f = *state;
	struct check_item *all;
	size_t n;

	put(f, "/sys/module/kvm_intel/parameters/nested", "N\n");
	expect(f, "nested", CHECK_WARN, "off (kvm_intel nested=N)", "options kvm_intel nested=1");
	run(f, "nested", &all, &n);
	assert_true(host_check_accelerated(all, n)); /* a WARN does not stop VMs */
	free(all);
	rm(f, "/sys/module/kvm_intel");
	put(f, "/sys/module/kvm_amd/parameters/nested", "1\n");
	expect(f, "kvm-kind", CHECK_PASS, "kvm_amd", NULL);
	expect(f, "nested", CHECK_PASS, "kvm_amd nested=1", NULL);
	rm(f, "/sys/module/kvm_amd");
	expect(f, "kvm-kind", CHECK_FAIL, "no KVM module", "modprobe kvm_intel");
	expect(f, "nested", CHECK_WARN, "unknown", NULL);
	/* this machine's case: PVM */
	put(f, "/sys/module/kvm_pvm/parameters/x", "1\n");
	expect(f, "kvm-kind", CHECK_FAIL, "PVM (module kvm_pvm)", "tests/vmhost/vmhost.sh");
	run(f, "kvm-kind", &all, &n);
	assert_false(host_check_accelerated(all, n));
	free(all);
}

static void test_ksm_thp(void **state)
{
	struct fixture *f = *state;

	put(f, "/sys/kernel/mm/ksm/run", "0\n");
	expect(f, "ksm", CHECK_WARN, "KSM is off (run=0)", "echo 1 > /sys/kernel/mm/ksm/run");
	put(f, "/sys/kernel/mm/ksm/run", "2\n");
	expect(f, "ksm", CHECK_WARN, "unmerging", "echo 1");
	rm(f, "/sys/kernel/mm/ksm");
	expect(f, "ksm", CHECK_WARN, "no KSM", "CONFIG_KSM");
	put(f, "/sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n");
	expect(f, "thp", CHECK_WARN, "off (never)", "echo madvise");
	put(f, "/sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n");
	expect(f, "thp", CHECK_PASS, "always", NULL);
	rm(f, "/sys/kernel/mm/transparent_hugepage");
	expect(f, "thp", CHECK_WARN, "no transparent huge pages", NULL);
}

static void test_devices_and_bridges(void **state)
{
	struct fixture *f = *state;
	static const char *const want[] = {"br0", "br1"};

	rm(f, "/dev/vhost-net");
	expect(f, "vhost-net", CHECK_WARN, "missing", "modprobe vhost_net");
	rm(f, "/dev/net/tun");
	expect(f, "tun", CHECK_WARN, "missing", "modprobe tun");
	f->o.bridges = want;
	f->o.nbridges = 1;
	expect(f, "bridges", CHECK_PASS, "br0", NULL);
	f->o.nbridges = 2;
	expect(f, "bridges", CHECK_WARN, "uses bridge br1, which does not exist; bridges: br0",
	       "ip link add");
	f->o.nbridges = 0;
	rm(f, "/sys/class/net/br0/brif");
	put(f, "/sys/class/net/br0/brif", NULL);
	expect(f, "bridges", CHECK_PASS, "br0 (no members)", NULL);
	rm(f, "/sys/class/net/br0");
	expect(f, "bridges", CHECK_WARN, "no network bridge", "ip link add br0 type bridge");
}

static void test_cgroup_iommu_memory(void **state)
{
	struct fixture *f = *state;

	put(f, "/sys/fs/cgroup/cgroup.controllers", "cpuset io pids\n");
	expect(f, "cgroup-v2", CHECK_WARN, "without the cpu controller (has: cpuset io pids)",
	       NULL);
	put(f, "/sys/fs/cgroup/cgroup.controllers", "cpu io pids\n");
	expect(f, "cgroup-v2", CHECK_WARN, "without the memory controller", NULL);
	rm(f, "/sys/fs/cgroup");
	expect(f, "cgroup-v2", CHECK_WARN, "no cgroup v2", "unified_cgroup_hierarchy");
	rm(f, "/sys/kernel/iommu_groups");
	expect(f, "iommu", CHECK_WARN, "no IOMMU groups", "intel_iommu=on");
	put(f, "/sys/kernel/iommu_groups", NULL);
	expect(f, "iommu", CHECK_WARN, "no IOMMU groups", NULL);
	/* 10 VMs of 900 MiB on a host of 7812 MiB: the seed's overcommitment */
	f->o.promised = 9000ull << 20;
	f->o.nvms = 10;
	expect(f, "memory", CHECK_WARN,
	       "10 defined VMs promise 9000 MiB, more than the host's "
	       "7812 MiB (5859 MiB available now)",
	       "ligero vm edit");
	f->o.promised = 0;
	f->o.nvms = 0;
	expect(f, "memory", CHECK_PASS, "0 defined VMs promise 0 MiB", NULL);
	rm(f, "/proc/meminfo");
	expect(f, "memory", CHECK_WARN, "cannot read", NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_all_pass),
	    T(test_kvm_device),
	    T(test_cpu_flags),
	    T(test_kvm_kind_and_nested),
	    T(test_ksm_thp),
	    T(test_devices_and_bridges),
	    T(test_cgroup_iommu_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
