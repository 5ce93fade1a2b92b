/*
 * KSM: ksmtuned's decisions (numbers worked out by hand from Debian's ksmtuned script; the
 * system test test_ksm.py also runs the script itself on the same inputs), and the readers and
 * writers against a fake root directory (proc/, sys/kernel/mm/ksm/, etc/) made here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/ksm.h"
#include "util/error.h"

#define GIB_KB (1024ull * 1024)

static struct ksm_decision decide(uint64_t total, uint64_t free_kb, uint64_t committed,
				  int64_t npages)
{
	struct ksm_tune_conf c;
	struct ksm_tune_input in = {total, free_kb, committed, npages};
	struct ksm_decision d;

	ksm_tune_defaults(&c);
	ksm_tune_decide(&c, &in, &d);
	return d;
}

static void tune_stop_when_room(void **state)
{
	/* 16 GiB host, 1 GiB in VMs, 10 GiB free: thres = 20% = 3355443 KiB */
	struct ksm_decision d = decide(16 * GIB_KB, 10 * GIB_KB, GIB_KB, 0);

	assert_false(d.run);
	assert_int_equal(d.thres_kb, 3355443);
	assert_int_equal(d.sleep_ms, 10);
	assert_int_equal(d.npages, 0); /* unchanged while stopped */
	assert_non_null(strstr(d.why, "stop"));
}

static void tune_boost_when_free_low(void **state)
{
	/* 2 GiB host (the seed's 3 GB host is close): sleep 10 * 16 GiB / 2 GiB = 80 ms */
	struct ksm_decision d = decide(2 * GIB_KB, 100 * 1024, 1800 * 1024, 0);

	assert_true(d.run);
	assert_int_equal(d.thres_kb, 419430);
	assert_int_equal(d.sleep_ms, 80);
	assert_int_equal(d.npages, 300);
	assert_non_null(strstr(d.why, "boost"));
	d = decide(2 * GIB_KB, 100 * 1024, 1800 * 1024, 1200);
	assert_int_equal(d.npages, 1250); /* KSM_NPAGES_MAX */
}

static void tune_decay_when_free_high(void **state)
{
	/* committed + thres >= total, but free memory above the threshold: run, slower */
	struct ksm_decision d = decide(2 * GIB_KB, 500 * 1024, 1700 * 1024, 300);

	assert_true(d.run);
	assert_int_equal(d.npages, 250);
	assert_non_null(strstr(d.why, "decay"));
	d = decide(2 * GIB_KB, 500 * 1024, 1700 * 1024, 0);
	assert_int_equal(d.npages, 64); /* KSM_NPAGES_MIN */
}

static void tune_boundaries(void **state)
{
	/* free == thres: not "free > thres", so no stop; not "free < thres", so decay */
	struct ksm_decision d = decide(2 * GIB_KB, 419430, 0, 100);
	assert_true(d.run);
	assert_int_equal(d.npages, 64);
	/* committed + thres == total: not "<", so run */
	d = decide(2 * GIB_KB, GIB_KB, 2 * GIB_KB - 419430, 100);
	assert_true(d.run);
	d = decide(2 * GIB_KB, GIB_KB, 2 * GIB_KB - 419431, 100);
	assert_false(d.run);
	/* a tiny host: 20% is below KSM_THRES_CONST (2048 KiB), which wins; sleep grows */
	d = decide(8192, 4096, 0, 0);
	assert_int_equal(d.thres_kb, 2048);
	assert_int_equal(d.sleep_ms, 20480);
	assert_false(d.run);
	/* a big host: the sleep never goes under 10 ms */
	d = decide(64 * GIB_KB, GIB_KB, 63 * GIB_KB, 0);
	assert_int_equal(d.sleep_ms, 10);
	assert_true(d.run);
	/* no MemTotal at all: no division by zero */
	d = decide(0, 0, 0, 0);
	assert_int_equal(d.sleep_ms, 10);
}

static void tune_settings(void **state)
{
	struct ksm_tune_conf c;
	struct ksm_tune_input in = {4 * GIB_KB, 10, 4 * GIB_KB, 1000};
	struct ksm_decision d;

	ksm_tune_defaults(&c);
	c.npages_boost = 5000;
	c.npages_max = 4000;
	c.sleep_msec = 40;
	ksm_tune_decide(&c, &in, &d);
	assert_int_equal(d.npages, 4000);
	assert_int_equal(d.sleep_ms, 160);
}

/* ---- a fake root ---- */

static char root[PATH_MAX];

static void put(const char *rel, const char *text)
{
	char p[PATH_MAX + 256], *slash;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (slash = strchr(p + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(p, 0755);
		*slash = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void put_bytes(const char *rel, const char *bytes, size_t len)
{
	char p[PATH_MAX + 256];

	put(rel, "");
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, len, f), len);
	fclose(f);
}

static void link_exe(int pid, const char *target)
{
	char p[PATH_MAX + 128], d[PATH_MAX + 64];

	snprintf(d, sizeof(d), "%s/proc/%d", root, pid);
	mkdir(d, 0755);
	snprintf(p, sizeof(p), "%s/exe", d);
	assert_int_equal(symlink(target, p), 0);
}

static char *get(const char *rel)
{
	static char buf[4096];
	char p[PATH_MAX + 256];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char *const knobs[][2] = {
    {"run", "0"},
    {"pages_to_scan", "100"},
    {"sleep_millisecs", "20"},
    {"merge_across_nodes", "1"},
    {"use_zero_pages", "0"},
    {"max_page_sharing", "256"},
    {"pages_shared", "10"},
    {"pages_sharing", "90"},
    {"pages_unshared", "5"},
    {"pages_volatile", "1"},
    {"full_scans", "3"},
};

static int fake_root(void **state)
{
	char f[128];

	snprintf(root, sizeof(root), "/tmp/ligero-ksm-XXXXXX");
	assert_non_null(mkdtemp(root));
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		snprintf(f, sizeof(f), "sys/kernel/mm/ksm/%s", knobs[i][0]);
		put(f, knobs[i][1]);
	}
	put("proc/meminfo", "MemTotal:        2097152 kB\nMemFree:          102400 kB\n"
			    "MemAvailable:     409600 kB\nBuffers:            1024 kB\n"
			    "Cached:             4096 kB\n");
	/* a VM with --mem 512M (getopt_long takes the abbreviation), the kernel's ksm_merging_pages
	 * only (Linux 6.1) */
	link_exe(100, "/usr/local/bin/ligero");
	static const char a[] = "ligero\0"
				"run\0"
				"--kernel\0"
				"k\0"
				"--mem\0"
				"512M\0"
				"--balloon\0"
				"0\0"
				"--name=estudiante1";
	put_bytes("proc/100/cmdline", a, sizeof(a) - 1);
	put("proc/100/status", "Name:\tligero\nVmPeak:\t 9999 kB\nVmRSS:\t  409600 kB\n");
	put("proc/100/ksm_merging_pages", "50\n");
	put("proc/100/ksm_stat", "ksm_rmap_items 77\n");
	/* rebuilt since it started, --memory=1G, a 6.4+ ksm_stat */
	link_exe(101, "/work/build/ligero (deleted)");
	static const char b[] = "./ligero\0"
				"run\0"
				"--memory=1G\0"
				"--na\0"
				"web.1\0"
				"--cpus\0"
				"2";
	put_bytes("proc/101/cmdline", b, sizeof(b) - 1);
	put("proc/101/status", "Name:\tligero\nVmRSS:\t  204800 kB\n");
	put("proc/101/ksm_stat", "ksm_rmap_items 100\nksm_zero_pages 4\nksm_merging_pages 30\n"
				 "ksm_process_profit 131072\nksm_merge_any: no\n");
	/* the default memory, an abbreviated option after `--` is not an option */
	link_exe(102, "/usr/bin/ligero");
	static const char c[] = "ligero\0"
				"run\0"
				"--kernel\0"
				"k\0"
				"--\0"
				"--memory\0"
				"8G\0"
				"--name\0"
				"x";
	put_bytes("proc/102/cmdline", c, sizeof(c) - 1);
	put("proc/102/status", "Name:\tligero\n");
	/* not VMs: QEMU, ligero doing something else, a process without cmdline */
	link_exe(200, "/usr/bin/qemu-system-x86_64");
	static const char q[] = "qemu-system-x86_64\0run\0";
	put_bytes("proc/200/cmdline", q, sizeof(q) - 1);
	link_exe(201, "/usr/bin/ligero");
	static const char i[] = "ligero\0img\0info\0x\0";
	put_bytes("proc/201/cmdline", i, sizeof(i) - 1);
	link_exe(202, "/usr/bin/ligero");
	put("proc/self/cmdline", "");
	return 0;
}

static int rm_root(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void lists_ligero_vms(void **state)
{
	struct ksm_vm *v;
	size_t n;

	assert_int_equal(ksm_list_vms(root, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].pid, 100);
	assert_int_equal(v[0].memory, 512ull << 20);
	assert_false(v[0].memory_default);
	assert_int_equal(v[0].rss, 409600ll * 1024);
	assert_int_equal(v[0].merging_pages, 50);
	assert_string_equal(v[0].merging_source, "/proc/100/ksm_merging_pages");
	assert_int_equal(v[0].profit, -1);
	assert_string_equal(v[0].name, "estudiante1"); /* --name=, as `ligero vm` starts VMs */
	assert_int_equal(v[1].pid, 101);
	assert_string_equal(v[1].name, "web.1"); /* an abbreviation, its value the next word */
	assert_int_equal(v[1].memory, 1ull << 30);
	assert_int_equal(v[1].merging_pages, 30);
	assert_string_equal(v[1].merging_source, "/proc/101/ksm_stat");
	assert_int_equal(v[1].zero_pages, 4);
	assert_int_equal(v[1].profit, 131072);
	assert_int_equal(v[2].pid, 102);
	assert_true(v[2].memory_default);
	assert_int_equal(v[2].memory, 256ull << 20);
	assert_int_equal(v[2].rss, -1);
	assert_int_equal(v[2].merging_pages, -1);
	assert_string_equal(v[2].merging_source, "");
	assert_string_equal(v[2].name, ""); /* after `--`: not an option */
	free(v);
}

static void report_figures(void **state)
{
	struct ksm_report r;

	assert_int_equal(ksm_report_read(root, &r), 0);
	assert_true(r.k.present);
	assert_int_equal(r.k.v[KSM_PAGES_SHARING], 90);
	assert_int_equal(r.k.v[KSM_ZERO_PAGES], -1); /* no such file: unknown */
	assert_int_equal(r.k.v[KSM_GENERAL_PROFIT], -1);
	assert_int_equal(r.saved, 90 * (int64_t)r.k.page_size);
	assert_int_equal(r.promised, (512ull << 20) + (1ull << 30) + (256ull << 20));
	assert_int_equal(r.used, (2097152ull - 409600) * 1024);
	assert_int_equal(r.vm_rss, (409600ull + 204800) * 1024);
	/* 50 merging pages x 90 / (10 + 90) = 45 pages; 30 x 0.9 = 27 + 4 zero pages */
	assert_int_equal(r.vms[0].saved, 45 * (int64_t)r.k.page_size);
	assert_int_equal(r.vms[1].saved, 31 * (int64_t)r.k.page_size);
	assert_int_equal(r.vms[2].saved, -1);
	ksm_report_free(&r);
	/* zero pages count in the host's saving when the kernel has them */
	put("sys/kernel/mm/ksm/ksm_zero_pages", "7\n");
	assert_int_equal(ksm_report_read(root, &r), 0);
	assert_int_equal(r.saved, 97 * (int64_t)r.k.page_size);
	ksm_report_free(&r);
}

static void no_ksm_is_not_an_error(void **state)
{
	struct ksm_report r;
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/sys", root);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ksm_report_read(root, &r), 0);
	assert_false(r.k.present);
	assert_int_equal(r.saved, -1);
	assert_int_equal(r.vms[0].saved, -1);
	assert_int_equal(r.nvms, 3);
	ksm_report_free(&r);
	assert_int_equal(ksm_enable(root, 10, 10), -ENOENT);
	assert_non_null(strstr(err_msg(), "has no KSM"));
}

static void enable_disable_write_knobs(void **state)
{
	assert_int_equal(ksm_enable(root, 4000, 10), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/pages_to_scan"), "4000");
	assert_string_equal(get("sys/kernel/mm/ksm/sleep_millisecs"), "10");
	assert_string_equal(get("sys/kernel/mm/ksm/run"), "1");
	assert_int_equal(ksm_enable(root, -1, -1), 0); /* knobs as they are */
	assert_string_equal(get("sys/kernel/mm/ksm/pages_to_scan"), "4000");
	assert_int_equal(ksm_disable(root, false), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/run"), "0");
	assert_int_equal(ksm_disable(root, true), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/run"), "2");
	/* a knob this kernel lacks */
	assert_int_equal(ksm_write_knob(root, "advisor_mode", "scan-time"), -ENOENT);
	assert_non_null(strstr(err_msg(), "advisor_mode"));
}

static void persist_dropin(void **state)
{
	bool removed;

	assert_int_equal(ksm_persist_write(root, 4000, 10), 0);
	const char *t = get("etc/tmpfiles.d/ligero-ksm.conf");
	assert_non_null(t);
	assert_non_null(strstr(t, "\nw /sys/kernel/mm/ksm/pages_to_scan - - - - 4000\n"));
	assert_non_null(strstr(t, "\nw /sys/kernel/mm/ksm/sleep_millisecs - - - - 10\n"));
	assert_non_null(strstr(t, "\nw /sys/kernel/mm/ksm/run - - - - 1\n"));
	assert_int_equal(ksm_persist_remove(root, &removed), 0);
	assert_true(removed);
	assert_null(get("etc/tmpfiles.d/ligero-ksm.conf"));
	assert_int_equal(ksm_persist_remove(root, &removed), 0);
	assert_false(removed);
}

static void auto_unit(void **state)
{
	char link[PATH_MAX + 128], target[PATH_MAX];
	ssize_t n;

	assert_int_equal(ksm_auto_install(root, "/opt/ligero/bin/ligero", "--interval 30"), 0);
	const char *t = get("etc/systemd/system/ligero-ksm-auto.service");
	assert_non_null(t);
	assert_non_null(strstr(t, "\nExecStart=/opt/ligero/bin/ligero ksm auto --interval 30\n"));
	assert_non_null(strstr(t, "\nWantedBy=multi-user.target\n"));
	snprintf(link, sizeof(link), "%s%s", root, KSM_AUTO_WANTS);
	n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, KSM_AUTO_UNIT);
	/* again: replaced, not an error */
	assert_int_equal(ksm_auto_install(root, "/opt/ligero/bin/ligero", NULL), 0);
	assert_non_null(strstr(get("etc/systemd/system/ligero-ksm-auto.service"),
			       "\nExecStart=/opt/ligero/bin/ligero ksm auto\n"));
}

/* One loop step against the fake host: its VMs' RSS (400 + 200 MiB) and meminfo decide. */
static void tune_step_on_fake_root(void **state)
{
	struct ksm_tune_conf c;
	struct ksm_tune_input in;
	struct ksm_decision d;
	size_t nvms;

	ksm_tune_defaults(&c);
	assert_int_equal(ksm_tune_input_read(root, 0, &in, &nvms), 0);
	assert_int_equal(nvms, 3);
	assert_int_equal(in.total_kb, 2097152);
	assert_int_equal(in.free_kb, 102400 + 1024 + 4096);
	assert_int_equal(in.committed_kb, 409600 + 204800);
	ksm_tune_decide(&c, &in, &d);
	assert_true(d.run); /* free 107520 < thres 419430: boost */
	assert_int_equal(d.npages, 300);
	assert_int_equal(ksm_tune_apply(root, &c, &d), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/pages_to_scan"), "300");
	assert_string_equal(get("sys/kernel/mm/ksm/sleep_millisecs"), "80");
	assert_string_equal(get("sys/kernel/mm/ksm/run"), "1");
	/* the advisor: refused without the kernel's advisor_mode, used with it */
	c.advisor = true;
	assert_int_equal(ksm_tune_apply(root, &c, &d), -ENOTSUP);
	put("sys/kernel/mm/ksm/advisor_mode", "[none] scan-time\n");
	assert_int_equal(ksm_tune_apply(root, &c, &d), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/advisor_mode"), "scan-time");
	/* and without --advisor a running advisor is switched off (it would override) */
	put("sys/kernel/mm/ksm/advisor_mode", "none [scan-time]\n");
	c.advisor = false;
	assert_int_equal(ksm_tune_apply(root, &c, &d), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/advisor_mode"), "none");
	d.run = false;
	assert_int_equal(ksm_tune_apply(root, &c, &d), 0);
	assert_string_equal(get("sys/kernel/mm/ksm/run"), "0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tune_stop_when_room),
	    cmocka_unit_test(tune_boost_when_free_low),
	    cmocka_unit_test(tune_decay_when_free_high),
	    cmocka_unit_test(tune_boundaries),
	    cmocka_unit_test(tune_settings),
	    cmocka_unit_test_setup_teardown(lists_ligero_vms, fake_root, rm_root),
	    cmocka_unit_test_setup_teardown(report_figures, fake_root, rm_root),
	    cmocka_unit_test_setup_teardown(no_ksm_is_not_an_error, fake_root, rm_root),
	    cmocka_unit_test_setup_teardown(enable_disable_write_knobs, fake_root, rm_root),
	    cmocka_unit_test_setup_teardown(persist_dropin, fake_root, rm_root),
	    cmocka_unit_test_setup_teardown(auto_unit, fake_root, rm_root),
	    cmocka_unit_test_setup_teardown(tune_step_on_fake_root, fake_root, rm_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
