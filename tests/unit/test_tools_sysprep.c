/* Sysprep's pure parts: --operations, hostname validity, and the text edits of guest files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sysprep_priv.h"
#include "util/error.h"

static uint32_t bit(const char *name)
{
	size_t n;
	const struct sysprep_op *ops = sysprep_ops(&n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(ops[i].name, name))
			return 1u << i;
	fail_msg("no operation %s", name);
	return 0;
}

static void operations(void **state)
{
	uint32_t m, all = sysprep_default_ops();

	assert_int_equal(sysprep_ops_parse("machine-id", &m), 0);
	assert_int_equal(m, bit("machine-id"));
	assert_int_equal(sysprep_ops_parse("defaults,-ssh-hostkeys", &m), 0);
	assert_int_equal(m, all & ~bit("ssh-hostkeys"));
	assert_int_equal(sysprep_ops_parse("none,tmp-files,logfiles,-tmp-files", &m), 0);
	assert_int_equal(m, bit("logfiles"));
	assert_int_equal(sysprep_ops_parse("all", &m), 0);
	assert_int_equal(m, all);
	m = 77;
	assert_int_equal(sysprep_ops_parse("machine-id,nope", &m), -EINVAL);
	assert_int_equal(m, 77); /* untouched on error */
	assert_non_null(strstr(err_msg(), "'nope'"));
	/* names sorted, as virt-sysprep lists them */
	size_t n;
	const struct sysprep_op *ops = sysprep_ops(&n);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(ops[i - 1].name, ops[i].name) < 0);
}

static void hostnames(void **state)
{
	char long_label[70], long_name[260];

	assert_true(sysprep_hostname_valid("estudiante1"));
	assert_true(sysprep_hostname_valid("pc-07.aula.example"));
	assert_true(sysprep_hostname_valid("1host"));
	assert_false(sysprep_hostname_valid(""));
	assert_false(sysprep_hostname_valid("-a"));
	assert_false(sysprep_hostname_valid("a-"));
	assert_false(sysprep_hostname_valid("a..b"));
	assert_false(sysprep_hostname_valid("a."));
	assert_false(sysprep_hostname_valid(".a"));
	assert_false(sysprep_hostname_valid("a_b"));
	assert_false(sysprep_hostname_valid("a b"));
	assert_false(sysprep_hostname_valid("ñandú"));
	memset(long_label, 'a', 63);
	long_label[63] = 0;
	assert_true(sysprep_hostname_valid(long_label));
	long_label[63] = 'a';
	long_label[64] = 0;
	assert_false(sysprep_hostname_valid(long_label));
	for (int i = 0; i < 254; i++)
		long_name[i] = i % 2 ? '.' : 'a';
	long_name[253] = 0; /* 253 bytes ending in 'a' */
	assert_true(sysprep_hostname_valid(long_name));
	long_name[253] = '.';
	long_name[254] = 'a';
	long_name[255] = 0;
	assert_false(sysprep_hostname_valid(long_name));
}

static void drop_lines(void **state)
{
	char t[] = "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\n  HWADDR=x\nONBOOT=yes\nXHWADDR=k\n"
		   "HWADDR=no-newline";
	assert_int_equal(sysprep_drop_lines(t, "HWADDR="), 1);
	assert_string_equal(t, "DEVICE=eth0\nONBOOT=yes\nXHWADDR=k\n");
	assert_int_equal(sysprep_drop_lines(t, "HWADDR="), 0);
	char e[] = "";
	assert_int_equal(sysprep_drop_lines(e, "HWADDR="), 0);
}

static void hosts(void **state)
{
	bool changed;
	char *o;

	o = sysprep_hosts_edit("127.0.0.1\tlocalhost\n127.0.1.1\told.example.org\told\n"
			       "::1 localhost\n",
			       "new", true, &changed);
	assert_string_equal(o, "127.0.0.1\tlocalhost\n127.0.1.1\tnew\n::1 localhost\n");
	assert_true(changed);
	free(o);
	o = sysprep_hosts_edit("127.0.1.1 a\n  127.0.1.1\tb\n", "pc.aula.example", false, &changed);
	assert_string_equal(o, "127.0.1.1\tpc.aula.example\tpc\n"); /* one line left */
	free(o);
	/* none there: appended on Debian, left alone elsewhere */
	o = sysprep_hosts_edit("127.0.0.1 localhost", "x", true, &changed);
	assert_string_equal(o, "127.0.0.1 localhost\n127.0.1.1\tx\n");
	free(o);
	o = sysprep_hosts_edit("127.0.0.1 localhost\n", "x", false, &changed);
	assert_string_equal(o, "127.0.0.1 localhost\n");
	assert_false(changed);
	free(o);
	/* 127.0.1.10 is another address */
	o = sysprep_hosts_edit("127.0.1.10\tz\n", "x", false, &changed);
	assert_false(changed);
	free(o);
	o = sysprep_hosts_edit("127.0.1.1\tx\n", "x", true, &changed);
	assert_false(changed);
	free(o);
}

static void os_family(void **state)
{
	char *id;

	assert_int_equal(sysprep_os_family("NAME=\"Debian GNU/Linux\"\nID=debian\n", &id),
			 FAMILY_DEBIAN);
	assert_string_equal(id, "debian");
	free(id);
	assert_int_equal(sysprep_os_family("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", &id),
			 FAMILY_DEBIAN);
	free(id);
	assert_int_equal(
	    sysprep_os_family("ID=\"almalinux\"\r\nID_LIKE=\"rhel centos fedora\"\r\n", &id),
	    FAMILY_RHEL);
	assert_string_equal(id, "almalinux");
	free(id);
	assert_int_equal(sysprep_os_family("ID=fedora\n", &id), FAMILY_RHEL);
	free(id);
	assert_int_equal(sysprep_os_family("ID=arch\n", &id), FAMILY_OTHER);
	free(id);
	/* a word inside another is not it */
	assert_int_equal(sysprep_os_family("ID=notdebianish\nID_LIKE=rhelx\n", &id), FAMILY_OTHER);
	free(id);
	assert_int_equal(sysprep_os_family("garbage\n=\n==\n", &id), FAMILY_OTHER);
	assert_null(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(operations), cmocka_unit_test(hostnames), cmocka_unit_test(drop_lines),
	    cmocka_unit_test(hosts),	  cmocka_unit_test(os_family),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
