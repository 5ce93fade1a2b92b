/*
 * Boot configuration parsers (src/tools/bootcfg*.c) on what real systems hold: grub.cfg written
 * by Debian 12's grub-mkconfig, CentOS 7's grub2-mkconfig layout, RHEL 8 and 9 BLS entries with
 * grubenv, CentOS 6's grub.conf (tests/unit/data/bootcfg/README.md says where each comes from).
 * Independent oracles where one exists on the machine: grub-editenv writes the grubenv read back,
 * `sort -V` orders the kernel names. Then hostile inputs: each must fail with a message, never
 * crash, and a few thousand random mutations of the samples must not crash either.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/bootcfg.h"
#include "tools/bootdisk.h"
#include "util/error.h"

#ifndef BOOTCFG_SAMPLES
#error "BOOTCFG_SAMPLES (the sample directory) must be defined by the build"
#endif

#define DEB_ROOT "2e1d3a9c-4b6f-4c1e-9d2a-7f3b5e6c8a10"
#define DEB_BOOT "7c5b2f10-3d4e-4a8b-9c1d-2e3f4a5b6c7d"
#define RHEL8_ID "6f9cc9cb7d7845d49698c9537337cedc"
#define RHEL8_OPTS                                                                                 \
	"root=/dev/mapper/rhel-root ro crashkernel=auto resume=/dev/mapper/rhel-swap "             \
	"rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet"

static char *slurp(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", BOOTCFG_SAMPLES, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open sample %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* The disk of the Debian samples: root on partition 2, /boot (bootpart) on partition 1. */
static int searches;
static int deb_search(void *priv, const char *kind, const char *what)
{
	(void)priv;
	searches++;
	if (strcmp(kind, "uuid"))
		return -1;
	if (!strcasecmp(what, DEB_ROOT))
		return 2;
	if (!strcasecmp(what, DEB_BOOT))
		return 1;
	return -1;
}

static void parse_grub(const char *name, const struct bootcfg_env *env, bootcfg_search_fn fn,
		       struct bootcfg_menu *m)
{
	size_t len;
	char *buf = slurp(name, &len);
	int ret = bootcfg_grub_parse(buf, len, env, fn, NULL, m);

	if (ret < 0)
		fail_msg("%s: %s", name, err_msg());
	free(buf);
}

static void env_from(const char *name, struct bootcfg_env *env)
{
	size_t len;
	char *buf = slurp(name, &len);

	assert_int_equal(bootcfg_grubenv_parse(buf, len, env), 0);
	free(buf);
}

static void test_debian12(void **state)
{
	struct bootcfg_menu m;

	(void)state;
	searches = 0;
	parse_grub("debian12-grub.cfg", NULL, deb_search, &m);
	assert_true(searches > 0);
	assert_int_equal(m.n, 5);
	assert_int_equal(m.def, 0);
	assert_string_equal(m.v[0].title, "Debian GNU/Linux");
	assert_string_equal(m.v[0].id, "gnulinux-simple-" DEB_ROOT);
	assert_string_equal(m.v[0].kernel.path, "/boot/vmlinuz-6.1.0-18-amd64");
	assert_int_equal(m.v[0].kernel.part, 2);
	assert_string_equal(m.v[0].options, "root=UUID=" DEB_ROOT " ro quiet");
	assert_int_equal(m.v[0].ninitrd, 1);
	assert_string_equal(m.v[0].initrd[0].path, "/boot/initrd.img-6.1.0-18-amd64");
	assert_int_equal(m.v[0].initrd[0].part, 2);
	assert_string_equal(m.v[1].title, "Advanced options for Debian GNU/Linux>Debian GNU/Linux, "
					  "with Linux 6.1.0-18-amd64");
	assert_string_equal(m.v[2].title, "Advanced options for Debian GNU/Linux>Debian GNU/Linux, "
					  "with Linux 6.1.0-18-amd64 (recovery mode)");
	assert_string_equal(m.v[2].options, "root=UUID=" DEB_ROOT " ro single");
	assert_string_equal(m.v[3].kernel.path, "/boot/vmlinuz-6.1.0-13-amd64");
	assert_string_equal(m.v[3].id, "gnulinux-advanced-" DEB_ROOT
				       ">gnulinux-6.1.0-13-amd64-advanced-" DEB_ROOT);
	/* GRUB's ways of naming an entry */
	assert_int_equal(bootcfg_menu_find(&m, "0"), 0);
	assert_int_equal(bootcfg_menu_find(&m, "1"), 1); /* the submenu: its first entry */
	assert_int_equal(bootcfg_menu_find(&m, "1>2"), 3);
	assert_int_equal(bootcfg_menu_find(&m,
					   "Advanced options for Debian GNU/Linux>Debian "
					   "GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)"),
			 4);
	assert_int_equal(bootcfg_menu_find(&m, "gnulinux-advanced-" DEB_ROOT
					       ">gnulinux-6.1.0-13-amd64-recovery-" DEB_ROOT),
			 4);
	assert_int_equal(bootcfg_menu_find(&m, "2"), -1);
	assert_int_equal(bootcfg_menu_find(&m, "no such entry"), -1);
	bootcfg_menu_free(&m);

	/* without search: the `set root='hd0,gpt2'` hint before it stays */
	parse_grub("debian12-grub.cfg", NULL, NULL, &m);
	assert_int_equal(m.n, 5);
	assert_int_equal(m.v[0].kernel.part, 2);
	bootcfg_menu_free(&m);
}

static void test_debian12_saved(void **state)
{
	struct bootcfg_env env = {0};
	struct bootcfg_menu m;

	(void)state;
	/* GRUB_DEFAULT=saved, and grub-set-default naming the old kernel through the submenu */
	assert_int_equal(bootcfg_env_set(&env, "saved_entry",
					 "gnulinux-advanced-" DEB_ROOT
					 ">gnulinux-6.1.0-13-amd64-advanced-" DEB_ROOT),
			 0);
	parse_grub("debian12-saved-grub.cfg", &env, deb_search, &m);
	assert_int_equal(m.def, 3);
	bootcfg_menu_free(&m);
	/* next_entry (grub-reboot) wins for the one boot it is for */
	assert_int_equal(bootcfg_env_set(&env, "next_entry", "1>1"), 0);
	parse_grub("debian12-saved-grub.cfg", &env, deb_search, &m);
	assert_int_equal(m.def, 2);
	bootcfg_menu_free(&m);
	bootcfg_env_free(&env);
	/* nothing saved: the first entry */
	parse_grub("debian12-saved-grub.cfg", NULL, deb_search, &m);
	assert_int_equal(m.def, 0);
	bootcfg_menu_free(&m);
}

static void test_debian12_bootpart(void **state)
{
	struct bootcfg_menu m;

	(void)state;
	parse_grub("debian12-bootpart-grub.cfg", NULL, deb_search, &m);
	assert_int_equal(m.n, 5);
	assert_string_equal(m.v[0].kernel.path, "/vmlinuz-6.1.0-18-amd64");
	assert_int_equal(m.v[0].kernel.part, 1); /* search --fs-uuid found the /boot partition */
	assert_string_equal(m.v[0].initrd[0].path, "/initrd.img-6.1.0-18-amd64");
	assert_string_equal(m.v[0].options, "root=UUID=" DEB_ROOT " ro quiet");
	bootcfg_menu_free(&m);
}

static void test_centos7(void **state)
{
	struct bootcfg_env env;
	struct bootcfg_menu m;

	(void)state;
	env_from("centos7-grubenv", &env);
	assert_string_equal(bootcfg_env_get(&env, "saved_entry"),
			    "CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)");
	parse_grub("centos7-grub.cfg", &env, NULL, &m);
	assert_int_equal(m.n, 3);
	assert_int_equal(m.def, 1); /* saved_entry is a title */
	assert_string_equal(m.v[1].kernel.path, "/vmlinuz-3.10.0-1160.el7.x86_64");
	assert_int_equal(m.v[1].kernel.part, 1);
	assert_string_equal(m.v[1].initrd[0].path, "/initramfs-3.10.0-1160.el7.x86_64.img");
	assert_string_equal(m.v[1].options,
			    "root=/dev/mapper/centos-root ro crashkernel=auto "
			    "rd.lvm.lv=centos/root rd.lvm.lv=centos/swap rhgb quiet "
			    "LANG=en_US.UTF-8");
	assert_string_equal(m.v[2].kernel.path,
			    "/vmlinuz-0-rescue-3b4c5d6e7f8091a2b3c4d5e6f7081920");
	bootcfg_menu_free(&m);
	bootcfg_env_free(&env);
	parse_grub("centos7-grub.cfg", NULL, NULL, &m);
	assert_int_equal(m.def, 0);
	bootcfg_menu_free(&m);
}

static const char *const rhel8_files[] = {
    RHEL8_ID "-0-rescue.conf",
    RHEL8_ID "-4.18.0-477.10.1.el8_8.x86_64.conf",
    RHEL8_ID "-4.18.0-513.24.1.el8_9.x86_64.conf",
};

/* What bootdisk does: grubenv, grub.cfg's variables, the entries, blscfg's order. */
static void rhel8_menu(const char *grubenv_name, struct bootcfg_menu *bls)
{
	struct bootcfg_env env = {0};
	struct bootcfg_menu cfg;

	if (grubenv_name)
		env_from(grubenv_name, &env);
	parse_grub("rhel8-grub.cfg", &env, NULL, &cfg);
	assert_int_equal(cfg.n, 0); /* blscfg makes the entries */
	memset(bls, 0, sizeof(*bls));
	bls->v = calloc(3, sizeof(*bls->v));
	for (size_t i = 0; i < 3; i++) {
		char name[256];
		size_t len;
		snprintf(name, sizeof(name), "rhel8-entries/%s", rhel8_files[i]);
		char *buf = slurp(name, &len);
		assert_int_equal(bootcfg_bls_parse(rhel8_files[i], buf, len, &cfg.env, &bls->v[i]),
				 0);
		bls->n++;
		free(buf);
	}
	bootcfg_bls_sort(bls, bootcfg_env_get(&cfg.env, "default"));
	bootcfg_menu_free(&cfg);
	bootcfg_env_free(&env);
}

static void test_rhel8_bls(void **state)
{
	struct bootcfg_menu m;

	(void)state;
	rhel8_menu("rhel8-grubenv", &m);
	assert_string_equal(m.v[0].version, "4.18.0-513.24.1.el8_9.x86_64");
	assert_string_equal(m.v[1].version, "4.18.0-477.10.1.el8_8.x86_64");
	assert_string_equal(m.v[2].version, "0-rescue-" RHEL8_ID);
	assert_int_equal(m.def, 1); /* saved_entry names the 477 kernel's file */
	assert_string_equal(m.v[1].id, RHEL8_ID "-4.18.0-477.10.1.el8_8.x86_64");
	assert_string_equal(m.v[1].title,
			    "Red Hat Enterprise Linux (4.18.0-477.10.1.el8_8.x86_64) 8.9 (Ootpa)");
	assert_string_equal(m.v[1].kernel.path, "/vmlinuz-4.18.0-477.10.1.el8_8.x86_64");
	assert_int_equal(m.v[1].kernel.part, BOOTCFG_PART_CONFIG);
	assert_int_equal(m.v[1].ninitrd, 1); /* $tuned_initrd is empty */
	assert_string_equal(m.v[1].initrd[0].path, "/initramfs-4.18.0-477.10.1.el8_8.x86_64.img");
	assert_string_equal(m.v[1].options, RHEL8_OPTS);
	assert_int_equal(bootcfg_menu_find(&m, "2"), 2);
	assert_int_equal(
	    bootcfg_menu_find(&m, "Red Hat Enterprise Linux (0-rescue-" RHEL8_ID ") 8.9 (Ootpa)"),
	    2);
	bootcfg_menu_free(&m);
	/* no grubenv: grub.cfg's fallback kernelopts, and the newest entry */
	rhel8_menu(NULL, &m);
	assert_int_equal(m.def, 0);
	assert_string_equal(m.v[0].options, RHEL8_OPTS);
	bootcfg_menu_free(&m);
}

static void test_rhel9_bls(void **state)
{
	static const char *const files[] = {
	    "b1c2d3e4f5a6478990a1b2c3d4e5f607-5.14.0-284.11.1.el9_2.x86_64.conf",
	    "b1c2d3e4f5a6478990a1b2c3d4e5f607-5.14.0-362.8.1.el9_3.x86_64.conf",
	};
	struct bootcfg_env env;
	struct bootcfg_menu m = {0};

	(void)state;
	env_from("rhel9-grubenv", &env);
	m.v = calloc(2, sizeof(*m.v));
	for (size_t i = 0; i < 2; i++) {
		char name[256];
		size_t len;
		snprintf(name, sizeof(name), "rhel9-entries/%s", files[i]);
		char *buf = slurp(name, &len);
		assert_int_equal(bootcfg_bls_parse(files[i], buf, len, &env, &m.v[m.n++]), 0);
		free(buf);
	}
	bootcfg_bls_sort(&m, bootcfg_env_get(&env, "saved_entry"));
	assert_int_equal(m.def, 0);
	assert_string_equal(m.v[0].version, "5.14.0-362.8.1.el9_3.x86_64");
	assert_string_equal(m.v[0].options,
			    "root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:"
			    "512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root "
			    "rd.lvm.lv=rhel/swap rhgb quiet");
	bootcfg_menu_free(&m);
	bootcfg_env_free(&env);
}

static void test_centos6_legacy(void **state)
{
	struct bootcfg_menu m;
	size_t len;
	char *buf = slurp("centos6-grub.conf", &len);

	(void)state;
	assert_int_equal(bootcfg_legacy_parse(buf, len, &m), 0);
	free(buf);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.def, 1);
	assert_string_equal(m.v[1].title, "CentOS 6 (2.6.32-754.el6.x86_64)");
	assert_string_equal(m.v[1].kernel.path, "/vmlinuz-2.6.32-754.el6.x86_64");
	assert_int_equal(m.v[1].kernel.part, 1); /* root (hd0,0): GRUB legacy counts from 0 */
	assert_string_equal(m.v[1].initrd[0].path, "/initramfs-2.6.32-754.el6.x86_64.img");
	/* passed on as written, double blank included */
	assert_non_null(strstr(m.v[1].options, "rd_LVM_LV=VolGroup/lv_root  KEYBOARDTYPE=pc"));
	assert_true(!strncmp(m.v[1].options, "ro root=/dev/mapper/VolGroup-lv_root ", 37));
	bootcfg_menu_free(&m);
}

static void test_legacy_forms(void **state)
{
	static const char cfg[] =
	    "default 2\n"
	    "title Windows\n rootnoverify (hd0,0)\n chainloader +1\n"
	    "title Old\n kernel (hd0,1)/boot/vmlinuz-old ro\n"
	    "title=Linux\n root (hd0,2)\n kernel --type=linux /vmlinuz ro quiet\n"
	    " initrd /initrd.img\n"
	    "title Elsewhere\n root (hd1,0)\n kernel /vmlinuz\n";
	struct bootcfg_menu m;

	(void)state;
	assert_int_equal(bootcfg_legacy_parse(cfg, strlen(cfg), &m), 0);
	assert_int_equal(m.n, 3); /* the chainloader entry is not bootable here */
	assert_int_equal(m.def, 1);
	assert_string_equal(m.v[0].kernel.path, "/boot/vmlinuz-old");
	assert_int_equal(m.v[0].kernel.part, 2);
	assert_string_equal(m.v[1].title, "Linux");
	assert_string_equal(m.v[1].kernel.path, "/vmlinuz");
	assert_int_equal(m.v[1].kernel.part, 3);
	assert_string_equal(m.v[1].options, "ro quiet");
	assert_int_equal(m.v[2].kernel.part, BOOTCFG_PART_OTHER);
	bootcfg_menu_free(&m);
}

/* grubenv written by GRUB's own tool, escapes included, read back. */
static void test_grubenv_oracle(void **state)
{
	char path[] = "/tmp/test_bootcfg_env.XXXXXX", cmd[512];
	struct bootcfg_env env;
	size_t len;
	FILE *f;
	char buf[2048];
	int fd;

	(void)state;
	if (system("command -v grub-editenv >/dev/null 2>&1") != 0)
		skip();
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	snprintf(cmd, sizeof(cmd),
		 "grub-editenv %s create && grub-editenv %s set 'saved_entry=A>B' "
		 "'kernelopts=root=/dev/vda1 ro' 'odd=back\\slash' \"$(printf 'nl=one\\ntwo')\"",
		 path, path);
	assert_int_equal(system(cmd), 0);
	f = fopen(path, "rb");
	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	unlink(path);
	assert_int_equal(len, 1024);
	assert_int_equal(bootcfg_grubenv_parse(buf, len, &env), 0);
	assert_int_equal(env.n, 4);
	assert_string_equal(bootcfg_env_get(&env, "saved_entry"), "A>B");
	assert_string_equal(bootcfg_env_get(&env, "kernelopts"), "root=/dev/vda1 ro");
	assert_string_equal(bootcfg_env_get(&env, "odd"), "back\\slash");
	assert_string_equal(bootcfg_env_get(&env, "nl"), "one\ntwo");
	bootcfg_env_free(&env);
	assert_int_equal(bootcfg_grubenv_parse("saved_entry=x\n", 14, &env), -EINVAL);
}

static void test_rpmvercmp(void **state)
{
	static const struct {
		const char *a, *b;
		int want;
	} c[] = {
	    {"1.0", "1.0", 0},
	    {"1.0", "2.0", -1},
	    {"2.0.1", "2.0", 1},
	    {"1.0a", "1.0", 1},
	    {"1.0~rc1", "1.0", -1},
	    {"1.0+p1", "1.0", 1},
	    {"10", "9", 1},
	    {"010", "10", 0},
	    {"4.18.0-513.24.1.el8_9.x86_64", "4.18.0-477.10.1.el8_8.x86_64", 1},
	    {"0-rescue-6f9cc9cb", "4.18.0-477.10.1.el8_8.x86_64", -1},
	    {"5.14.0-362.8.1.el9_3", "5.14.0-362.8.1.el9_3.1", -1},
	    {"a", "1", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int r = bootcfg_rpmvercmp(c[i].a, c[i].b);
		if ((r > 0) - (r < 0) != c[i].want)
			fail_msg("rpmvercmp(%s, %s) = %d, want %d", c[i].a, c[i].b, r, c[i].want);
	}
}

static int cmp_filever(const void *a, const void *b)
{
	return bootcfg_filevercmp(*(char *const *)a, *(char *const *)b);
}

/* The order of `sort -V` itself. */
static void test_filevercmp_sort_v(void **state)
{
	static const char *const names[] = {
	    "vmlinuz-6.1.0-18-amd64",	      "vmlinuz-6.1.0-9-amd64",
	    "vmlinuz-6.1.0-13-amd64",	      "vmlinuz-5.10.0-28-amd64",
	    "vmlinuz-6.1.0-18-cloud-amd64",   "vmlinuz-6.10.0-1-amd64",
	    "vmlinuz-6.1.0-rc7-amd64",	      "vmlinuz-6.1.0~rc7-amd64",
	    "vmlinuz-4.19.0-26-amd64",	      "vmlinuz-6.1.0-18-amd64.old",
	    "vmlinuz-3.10.0-1160.el7.x86_64", "vmlinuz-3.10.0-862.el7.x86_64",
	    "vmlinuz-0-rescue-3b4c5d6e"};
	size_t n = sizeof(names) / sizeof(names[0]);
	char *mine[sizeof(names) / sizeof(names[0])], line[256], cmd[64] = "sort -V >";
	char out[] = "/tmp/test_bootcfg_sortv.XXXXXX";
	FILE *p, *f;
	int fd;

	(void)state;
	fd = mkstemp(out);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s", out);
	p = popen(cmd, "w");
	if (!p)
		skip();
	for (size_t i = 0; i < n; i++) {
		fprintf(p, "%s\n", names[i]);
		mine[i] = (char *)names[i];
	}
	assert_int_equal(pclose(p), 0);
	qsort(mine, n, sizeof(mine[0]), cmp_filever);
	f = fopen(out, "r");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(fgets(line, sizeof(line), f));
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, mine[i]))
			fail_msg("position %zu: sort -V has %s, bootcfg_filevercmp %s", i, line,
				 mine[i]);
	}
	fclose(f);
	unlink(out);
}

static void test_cmdline_quoting(void **state)
{
	char **w;
	size_t n;
	char *s;

	(void)state;
	assert_int_equal(bootcfg_grub_words("a 'b c' \"d\\\"e\" f\\ g x=\"y z\" \\x41", &w, &n), 0);
	assert_int_equal(n, 6);
	assert_string_equal(w[1], "b c");
	assert_string_equal(w[2], "d\"e");
	assert_string_equal(w[3], "f g");
	assert_string_equal(w[4], "x=y z");
	s = bootcfg_grub_cmdline(w, n);
	/* GRUB's linux loader: quotes around a word with a blank, \ before quotes */
	assert_string_equal(s, "a \"b c\" d\\\"e \"f g\" \"x=y z\" x41");
	free(s);
	bootcfg_words_free(w, n);
	assert_int_equal(bootcfg_grub_words("a 'b", &w, &n), -EINVAL);
}

static void test_bls_forms(void **state)
{
	static const char e1[] = "# comment\n"
				 "title  Spaced   title \n"
				 "version 1.2\n"
				 "linux\t/vmlinuz-1.2\n"
				 "initrd /ucode.img\n"
				 "initrd /initrd-1.2.img $extra\n"
				 "options root=UUID=x $kernelopts\n"
				 "options quiet\n";
	static const char e2[] = "title no kernel\noptions quiet\n";
	struct bootcfg_env env = {0};
	struct bootcfg_entry e;

	(void)state;
	assert_int_equal(bootcfg_env_set(&env, "kernelopts", "ro console=ttyS0,115200"), 0);
	assert_int_equal(bootcfg_env_set(&env, "extra", "/extra.img"), 0);
	assert_int_equal(bootcfg_bls_parse("x-1.2.conf", e1, strlen(e1), &env, &e), 0);
	assert_string_equal(e.title, "Spaced   title");
	assert_string_equal(e.id, "x-1.2");
	assert_int_equal(e.ninitrd, 3);
	assert_string_equal(e.initrd[0].path, "/ucode.img");
	assert_string_equal(e.initrd[2].path, "/extra.img");
	assert_string_equal(e.options, "root=UUID=x ro console=ttyS0,115200 quiet");
	bootcfg_entry_free(&e);
	assert_int_equal(bootcfg_bls_parse("y.conf", e2, strlen(e2), &env, &e), -ENOENT);
	bootcfg_env_free(&env);
}

/* Each must fail with a message (and, under ASan, without a leak or a bad access). */
static void test_hostile_grub(void **state)
{
	static const char *const bad[] = {
	    "menuentry 'x {\n linux /vmlinuz\n}\n",
	    "menuentry \"x {\n",
	    "set a=${b\n",
	    "menuentry x\nlinux /vmlinuz\n}\n",
	    "menuentry x {\n linux /vmlinuz\n",
	    "}\n",
	    "fi\n",
	    "if true; then\n set a=b\n",
	    "if true\n set a=b\nfi\n",
	    "submenu a {\n menuentry b {\n linux /v\n }\n",
	    "while true; do\n",
	    "{\n",
	};
	struct bootcfg_menu m;
	char *s;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear();
		if (bootcfg_grub_parse(bad[i], strlen(bad[i]), NULL, NULL, NULL, &m) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_true(strlen(err_msg()) > 0);
	}
	/* nesting: 100 levels of if */
	s = calloc(1, 4096);
	for (int i = 0; i < 100; i++)
		strcat(s, "if true; then\n");
	for (int i = 0; i < 100; i++)
		strcat(s, "fi\n");
	assert_int_equal(bootcfg_grub_parse(s, strlen(s), NULL, NULL, NULL, &m), -EINVAL);
	/* submenus 9 deep */
	s[0] = '\0';
	for (int i = 0; i < 9; i++)
		strcat(s, "submenu s {\n");
	strcat(s, "menuentry e {\nlinux /v\n}\n");
	for (int i = 0; i < 9; i++)
		strcat(s, "}\n");
	assert_int_equal(bootcfg_grub_parse(s, strlen(s), NULL, NULL, NULL, &m), -EINVAL);
	free(s);
	/* a variable doubled 40 times */
	s = calloc(1, 4096);
	strcpy(s, "set a=0123456789abcdef\n");
	for (int i = 0; i < 40; i++)
		strcat(s, "set a=$a$a\n");
	assert_int_equal(bootcfg_grub_parse(s, strlen(s), NULL, NULL, NULL, &m), -EINVAL);
	free(s);
	/* too many variables, too many entries */
	n = 0;
	s = malloc(1 << 20);
	for (int i = 0; i < 2000; i++)
		n += (size_t)sprintf(s + n, "set v%d=x\n", i);
	assert_int_equal(bootcfg_grub_parse(s, n, NULL, NULL, NULL, &m), -EINVAL);
	n = 0;
	for (int i = 0; i < 5000; i++)
		n += (size_t)sprintf(s + n, "menuentry e%d {\nlinux /v\n}\n", i);
	assert_int_equal(bootcfg_grub_parse(s, n, NULL, NULL, NULL, &m), -EINVAL);
	free(s);
	/* larger than any configuration, and binary */
	s = calloc(1, BOOTCFG_MAX_FILE + 1);
	memset(s, '#', BOOTCFG_MAX_FILE + 1);
	assert_int_equal(bootcfg_grub_parse(s, BOOTCFG_MAX_FILE + 1, NULL, NULL, NULL, &m), -EFBIG);
	assert_int_equal(bootcfg_legacy_parse(s, BOOTCFG_MAX_FILE + 1, &m), -EFBIG);
	assert_int_equal(bootcfg_grub_parse("set\0a", 5, NULL, NULL, NULL, &m), -EINVAL);
	free(s);
	/* but what GRUB accepts and we need not understand is no error */
	static const char odd[] = "for x in a b; do echo $x; done\nfunction f { true; }\n"
				  "menuentry 'UEFI Firmware Settings' --id uefi { fwsetup; }\n"
				  "menuentry a { linux (lvm/vg-root)/boot/vmlinuz ro }\n";
	assert_int_equal(bootcfg_grub_parse(odd, strlen(odd), NULL, NULL, NULL, &m), 0);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.v[0].kernel.part, BOOTCFG_PART_OTHER);
	assert_string_equal(m.v[0].kernel.path, "(lvm/vg-root)/boot/vmlinuz");
	assert_int_equal(m.def, 0);
	bootcfg_menu_free(&m);
}

/* Which command lines get console=ttyS0 added: those naming no serial console. */
static void test_serial_console(void **state)
{
	(void)state;
	assert_true(bootdisk_serial_console("console=ttyS0"));
	assert_true(bootdisk_serial_console("ro console=tty0 console=ttyS1,115200n8 quiet"));
	assert_true(bootdisk_serial_console("a \"console=ttyS0\""));
	assert_false(bootdisk_serial_console("ro quiet console=tty0"));
	assert_false(bootdisk_serial_console("xconsole=ttyS0 console=hvc0"));
	assert_false(bootdisk_serial_console(""));
	assert_false(bootdisk_serial_console(NULL));
}

/* Random damage to every sample: whatever comes back, nothing may crash or leak. */
static void test_mutations(void **state)
{
	static const char *const samples[] = {
	    "debian12-grub.cfg", "centos7-grub.cfg", "rhel8-grub.cfg",
	    "centos6-grub.conf", "rhel8-grubenv",    "rhel8-entries/" RHEL8_ID "-0-rescue.conf"};
	unsigned seed = 12345;

	(void)state;
	for (size_t k = 0; k < sizeof(samples) / sizeof(samples[0]); k++) {
		size_t len;
		char *orig = slurp(samples[k], &len), *buf = malloc(len + 1);
		for (int round = 0; round < 400; round++) {
			struct bootcfg_menu m;
			struct bootcfg_env env;
			struct bootcfg_entry e;
			size_t n = len;
			memcpy(buf, orig, len);
			for (int j = 0; j < 1 + round % 8; j++) {
				seed = seed * 1103515245 + 12345;
				size_t at = (seed >> 8) % len;
				static const char pick[] = "{}'\"$\\\n;#> =x\0";
				buf[at] = pick[(seed >> 20) % (sizeof(pick) - 1)];
			}
			if (round % 5 == 0)
				n = (seed >> 4) % len; /* truncated */
			if (bootcfg_grub_parse(buf, n, NULL, deb_search, NULL, &m) == 0)
				bootcfg_menu_free(&m);
			if (bootcfg_legacy_parse(buf, n, &m) == 0)
				bootcfg_menu_free(&m);
			if (bootcfg_grubenv_parse(buf, n, &env) == 0)
				bootcfg_env_free(&env);
			if (bootcfg_bls_parse("m.conf", buf, n, NULL, &e) == 0)
				bootcfg_entry_free(&e);
		}
		free(buf);
		free(orig);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_debian12),	      cmocka_unit_test(test_debian12_saved),
	    cmocka_unit_test(test_debian12_bootpart), cmocka_unit_test(test_centos7),
	    cmocka_unit_test(test_rhel8_bls),	      cmocka_unit_test(test_rhel9_bls),
	    cmocka_unit_test(test_centos6_legacy),    cmocka_unit_test(test_legacy_forms),
	    cmocka_unit_test(test_grubenv_oracle),    cmocka_unit_test(test_rpmvercmp),
	    cmocka_unit_test(test_filevercmp_sort_v), cmocka_unit_test(test_cmdline_quoting),
	    cmocka_unit_test(test_bls_forms),	      cmocka_unit_test(test_hostile_grub),
	    cmocka_unit_test(test_serial_console),    cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
