/* The text parsers of `ligero migrate`: configuration values, addresses, symlinks inside a
 * probed tree, vzctl's interfaces file, dpkg status merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/migrate_priv.h"

static void kv(void **state)
{
	(void)state;
	const char *t = "# comment\nHOSTNAME=\"ct.example.com\"\n  IP_ADDRESS='1.2.3.4 5.6.7.8'\n"
			"export NAMESERVER=9.9.9.9  \nX=1\nX=2\nEMPTY=\"\"\nBROKEN\n";
	char *v;

	assert_string_equal(v = mig_kv_get(t, "HOSTNAME"), "ct.example.com");
	free(v);
	assert_string_equal(v = mig_kv_get(t, "IP_ADDRESS"), "1.2.3.4 5.6.7.8");
	free(v);
	assert_string_equal(v = mig_kv_get(t, "NAMESERVER"), "9.9.9.9");
	free(v);
	assert_string_equal(v = mig_kv_get(t, "X"), "2"); /* the last one, as the shell */
	free(v);
	assert_string_equal(v = mig_kv_get(t, "EMPTY"), "");
	free(v);
	assert_null(mig_kv_get(t, "BROKEN"));
	assert_null(mig_kv_get(t, "HOST"));
	assert_null(mig_kv_get("", "X"));
}

static void addr(void **state)
{
	struct migrate_addr a;
	(void)state;

	assert_true(mig_addr_parse("192.0.2.10", &a, 32));
	assert_int_equal(a.family, 4);
	assert_int_equal(a.prefix, 32);
	assert_string_equal(a.addr, "192.0.2.10");
	assert_true(mig_addr_parse("192.0.2.10/24", &a, 32));
	assert_int_equal(a.prefix, 24);
	assert_true(mig_addr_parse("192.0.2.10/255.255.255.0", &a, 32));
	assert_int_equal(a.prefix, 24);
	assert_true(mig_addr_parse("10.0.0.1/0.0.0.0", &a, 32));
	assert_int_equal(a.prefix, 0);
	assert_true(mig_addr_parse("2001:db8::10", &a, 32));
	assert_int_equal(a.family, 6);
	assert_int_equal(a.prefix, 128);
	assert_true(mig_addr_parse("2001:db8::10/64", &a, 32));
	assert_int_equal(a.prefix, 64);
	assert_false(mig_addr_parse("192.0.2.10/255.0.255.0", &a, 32)); /* not contiguous */
	assert_false(mig_addr_parse("192.0.2.10/33", &a, 32));
	assert_false(mig_addr_parse("2001:db8::1/129", &a, 32));
	assert_false(mig_addr_parse("192.0.2.10/", &a, 32));
	assert_false(mig_addr_parse("192.0.2.10/x", &a, 32));
	assert_false(mig_addr_parse("host.example.com", &a, 32));
	assert_false(mig_addr_parse("", &a, 32));
}

static void put(struct mig_files *f, const char *path, uint32_t mode, const char *data)
{
	struct fs_node n = {.mode = mode};
	assert_int_equal(mig_files_put(f, path, &n, data, strlen(data)), 0);
}

/* Symlinks resolve inside the tree: relative to their directory, absolute to the tree's
 * root, ".." of the root stays there, loops end. */
static void files_symlinks(void **state)
{
	struct mig_files f = {0};
	const struct mig_file *m;
	(void)state;

	put(&f, "usr/lib/os-release", S_IFREG | 0644, "ID=debian\n");
	put(&f, "lib", S_IFLNK | 0777, "usr/lib");
	put(&f, "etc/os-release", S_IFLNK | 0777, "../usr/lib/os-release");
	put(&f, "etc/abs", S_IFLNK | 0777, "/usr/lib/os-release");
	put(&f, "etc/up", S_IFLNK | 0777, "../../../../usr/lib/os-release");
	put(&f, "loop1", S_IFLNK | 0777, "loop2");
	put(&f, "loop2", S_IFLNK | 0777, "loop1");
	assert_non_null(m = mig_files_get(&f, "etc/os-release", true));
	assert_string_equal(m->data, "ID=debian\n");
	assert_non_null(m = mig_files_get(&f, "etc/os-release", false));
	assert_true(S_ISLNK(m->mode));
	assert_non_null(m = mig_files_get(&f, "/etc/abs", true));
	assert_string_equal(m->data, "ID=debian\n");
	assert_non_null(m = mig_files_get(&f, "etc/up", true));
	assert_string_equal(m->data, "ID=debian\n");
	assert_non_null(m = mig_files_get(&f, "lib/os-release", false));
	assert_string_equal(m->data, "ID=debian\n");
	assert_null(mig_files_get(&f, "loop1", true));
	assert_null(mig_files_get(&f, "etc/missing", true));
	/* Parents are entries of their own, so a listing finds them. */
	assert_non_null(m = mig_files_get(&f, "usr/lib", false));
	assert_true(S_ISDIR(m->mode));
	char **names;
	size_t n;
	assert_int_equal(mig_files_list(&f, "etc", &names, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "abs");
	assert_string_equal(names[1], "os-release");
	mig_strv_free(names, n);
	mig_files_free(&f);
}

static const char vz_interfaces[] =
    "# Auto generated lo interface\nauto lo\niface lo inet loopback\n\n"
    "# Auto generated venet0 interface\nauto venet0\niface venet0 inet manual\n"
    "\tup ifconfig venet0 up\n\tup ifconfig venet0 127.0.0.2\n"
    "\tup route add default dev venet0\n\n"
    "iface venet0 inet6 manual\n\tup ifconfig venet0 add 2001:db8::10/64\n"
    "\tup route -A inet6 add default dev venet0\n\n"
    "auto venet0:0\niface venet0:0 inet static\n\taddress 192.0.2.10\n"
    "\tnetmask 255.255.255.0\n\n"
    "allow-hotplug eth1 venet0:1\niface eth1 inet dhcp\n";

static void interfaces(void **state)
{
	struct migrate_report r = {0};
	struct mig_ctx c = {.r = &r};
	bool had;
	(void)state;

	char *out = mig_interfaces_strip(&c, vz_interfaces, true, &had);
	assert_non_null(out);
	assert_true(had);
	assert_null(strstr(out, "venet"));
	assert_non_null(strstr(out, "iface lo inet loopback"));
	assert_non_null(strstr(out, "allow-hotplug eth1\n"));
	assert_non_null(strstr(out, "iface eth1 inet dhcp"));
	assert_null(strstr(out, "127.0.0.2"));
	assert_int_equal(r.naddrs, 2);
	assert_string_equal(r.addrs[0].addr, "2001:db8::10");
	assert_int_equal(r.addrs[0].prefix, 64);
	assert_string_equal(r.addrs[1].addr, "192.0.2.10");
	assert_int_equal(r.addrs[1].prefix, 24);
	/* Stripping again changes nothing and finds no venet. */
	char *again = mig_interfaces_strip(&c, out, false, &had);
	assert_false(had);
	assert_string_equal(again, out);
	free(again);
	free(out);
	free(r.addrs);
}

static void dpkg_merge(void **state)
{
	const char *status = "Package: a\nStatus: install ok installed\nVersion: 1\n\n"
			     "Package: kmod\nStatus: deinstall ok config-files\nVersion: 29\n\n";
	const char *add = "Package: linux-image-x\nStatus: install ok installed\nVersion: 6\n"
			  "Description: k\n more\n\n"
			  "Package: kmod\nStatus: install ok installed\nVersion: 30\n\n"
			  "Package: a\nStatus: install ok installed\nVersion: 2\n\n";
	char *out;
	size_t len, merged;
	(void)state;

	assert_int_equal(mig_dpkg_merge(status, add, &out, &len, &merged), 0);
	assert_int_equal(merged, 2);
	assert_int_equal(strlen(out), len);
	/* The container's a stays (version 1); its config-files kmod gives way. */
	assert_non_null(strstr(out, "Package: a\nStatus: install ok installed\nVersion: 1\n"));
	assert_null(strstr(out, "Version: 2"));
	assert_null(strstr(out, "Version: 29"));
	assert_non_null(strstr(out, "Package: kmod\nStatus: install ok installed\nVersion: 30\n"));
	assert_non_null(strstr(out, "Description: k\n more\n"));
	free(out);
	/* Garbage merges to garbage, without crashing. */
	assert_int_equal(mig_dpkg_merge("\n\n\nx", "y:\n\n", &out, &len, &merged), 0);
	assert_int_equal(merged, 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(kv),
	    cmocka_unit_test(addr),
	    cmocka_unit_test(files_symlinks),
	    cmocka_unit_test(interfaces),
	    cmocka_unit_test(dpkg_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
