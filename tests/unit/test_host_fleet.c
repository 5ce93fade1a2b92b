/*
 * Fleets, the pure parts: member names and indexes, prefix rules, MAC derivation (checked
 * against FNV-1a's published test vector, and for uniqueness over a whole fleet), and which
 * defined VMs are a fleet's members, in index order.
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

#include "host/fleet.h"
#include "host/fleet_rbd.h"
#include "util/error.h"

static void test_names_and_indexes(void **state)
{
	char name[VMDEF_NAME_MAX + 1], prefix[80];

	(void)state;
	assert_int_equal(fleet_member_name("estudiante", 20, name), 0);
	assert_string_equal(name, "estudiante20");
	assert_int_equal(fleet_member_index("estudiante", "estudiante20"), 20);
	assert_int_equal(fleet_member_index("estudiante", "estudiante1"), 1);
	assert_int_equal(fleet_member_index("lab", "lab1000"), 1000);
	static const char *const not_members[] = {"lab",   "lab0",    "lab01",
						  "lab1x", "lab-1",   "labx",
						  "xlab1", "lab1001", "lab99999999999999999",
						  "la1"};
	for (size_t i = 0; i < sizeof(not_members) / sizeof(not_members[0]); i++)
		assert_int_equal(fleet_member_index("lab", not_members[i]), 0);
	/* 60 bytes and "1000" is 64, the longest VM name; one more byte is too long */
	memset(prefix, 'p', 60);
	prefix[60] = '\0';
	assert_int_equal(fleet_member_name(prefix, 1000, name), 0);
	assert_int_equal(fleet_prefix_check(prefix, 1000), 0);
	prefix[60] = 'p';
	prefix[61] = '\0';
	assert_int_equal(fleet_prefix_check(prefix, 1000), -EINVAL);
	assert_non_null(strstr(err_msg(), "too long"));
	assert_int_equal(fleet_prefix_check(prefix, 999), 0);
}

static void test_prefix_rules(void **state)
{
	(void)state;
	assert_int_equal(fleet_prefix_check("estudiante", 20), 0);
	assert_int_equal(fleet_prefix_check("web-", 1), 0);
	assert_int_equal(fleet_prefix_check("lab", 0), -EINVAL);
	assert_non_null(strstr(err_msg(), "1 to 1000"));
	assert_int_equal(fleet_prefix_check("lab", FLEET_MAX_COUNT + 1), -EINVAL);
	assert_int_equal(fleet_prefix_check("", 1), -EINVAL);
	assert_int_equal(fleet_prefix_check("a/b", 1), -EINVAL);
	assert_non_null(strstr(err_msg(), "'/'"));
	assert_int_equal(fleet_prefix_check("lab1", 1), -EINVAL);
	assert_non_null(strstr(err_msg(), "digit"));
	assert_int_equal(fleet_prefix_check("-x", 1), -EINVAL);
	assert_int_equal(fleet_prefix_check("a b", 1), -EINVAL);
	assert_non_null(strstr(err_msg(), "fleet prefix 'a b'"));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_macs(void **state)
{
	char mac[VMDEF_MAC_LEN + 1], again[VMDEF_MAC_LEN + 1], parsed[VMDEF_MAC_LEN + 1];
	static char all[FLEET_MAX_COUNT * FLEET_MAX_NICS][VMDEF_MAC_LEN + 1];
	size_t n = 0;

	(void)state;
	/* FNV-1a 32 of "a" is 0xe40c292c (the published test vector): first byte 0xe4 with the
	 * locally administered bit set and the multicast bit clear, then the index and NIC */
	fleet_member_mac("a", 1, 0, mac);
	assert_string_equal(mac, "e6:0c:29:2c:00:10");
	fleet_member_mac("a", 0x123, 5, mac);
	assert_string_equal(mac, "e6:0c:29:2c:12:35");
	for (unsigned i = 1; i <= FLEET_MAX_COUNT; i++)
		for (unsigned k = 0; k < FLEET_MAX_NICS; k++) {
			fleet_member_mac("estudiante", i, k, mac);
			fleet_member_mac("estudiante", i, k, again);
			assert_string_equal(mac, again);
			assert_int_equal(vmdef_mac_parse(mac, parsed), 0);
			unsigned first = (unsigned)strtoul(mac, NULL, 16);
			assert_true(first & 2);
			assert_false(first & 1);
			memcpy(all[n++], mac, sizeof(mac));
		}
	qsort(all, n, sizeof(all[0]), cmp_str);
	for (size_t i = 1; i < n; i++)
		assert_string_not_equal(all[i - 1], all[i]);
	fleet_member_mac("estudiante", 1, 0, mac);
	fleet_member_mac("estudiantes", 1, 0, again);
	assert_string_not_equal(mac, again);
}

static void test_members_in_index_order(void **state)
{
	char dir[] = "/tmp/ligero-fleet-test.XXXXXX", cmd[96];
	static const char *const defined[] = {"lab10", "lab2",	"lab1",	  "labx",
					      "lab-3", "lab02", "other1", "lab9"};
	static const char *const want[] = {"lab1", "lab2", "lab9", "lab10"};
	struct registry r;
	char **names;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(registry_open(&r, dir), 0);
	assert_int_equal(fleet_members(&r, "lab", &names, &n), 0); /* no state dir yet */
	assert_int_equal(n, 0);
	registry_names_free(names, n);
	for (size_t i = 0; i < sizeof(defined) / sizeof(defined[0]); i++) {
		struct vmdef d = {.memory = 64 << 20, .cpus = 1};
		snprintf(d.name, sizeof(d.name), "%s", defined[i]);
		vmdef_random_uuid(d.uuid);
		vmdef_stamp(&d);
		d.kernel = strdup("/boot/vmlinuz");
		assert_int_equal(registry_create(&r, &d), 0);
		vmdef_free(&d);
	}
	assert_int_equal(fleet_members(&r, "lab", &names, &n), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(names[i], want[i]);
	registry_names_free(names, n);
	registry_close(&r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* RBD members' names: the base's pool (or namespace) and options are kept, escapes too. */
static void test_rbd_names(void **state)
{
	static const struct {
		const char *disk, *image, *sibling;
	} cases[] = {
	    {"rbd:rbd/lab1", "lab1", "rbd:rbd/lab1.reset"},
	    {"rbd:rbd/lab1:conf=/etc/ceph/c.conf:id=admin", "lab1",
	     "rbd:rbd/lab1.reset:conf=/etc/ceph/c.conf:id=admin"},
	    {"rbd:pool/ns/lab2:conf=/a\\:b/c.conf", "lab2",
	     "rbd:pool/ns/lab1.reset:conf=/a\\:b/c.conf"},
	    {"rbd:p\\/q/la\\:b3", "la\\:b3", "rbd:p\\/q/lab1.reset"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *img = fleet_rbd_image(cases[i].disk),
		     *sib = fleet_rbd_sibling(cases[i].disk, "lab1.reset");
		assert_non_null(img);
		assert_string_equal(img, cases[i].image);
		assert_non_null(sib);
		assert_string_equal(sib, cases[i].sibling);
		free(img);
		free(sib);
	}
	assert_null(fleet_rbd_image("rbd:nopool"));
	assert_null(fleet_rbd_image("rbd:/img"));
	assert_null(fleet_rbd_image("rbd:pool/"));
	assert_null(fleet_rbd_image("/srv/vms/lab1.qcow2"));
}

/* Bases refused before anything asks the cluster, each with one message saying why. */
static void test_rbd_base_refused(void **state)
{
	static const struct {
		const char *base, *pool, *says;
	} cases[] = {
	    {"rbd:rbd/base", NULL,
	     "a clone needs a snapshot of its parent: --base rbd:rbd/base@SNAP"},
	    {"rbd:rbd/base:conf=/c.conf", NULL, "--base rbd:rbd/base@SNAP:conf=/c.conf"},
	    {"rbd:rbd/base@gold", "a/b", "--disk-pool 'a/b' is not a pool name"},
	    {"rbd:rbd/base@gold", "", "is not a pool name"},
	    {"rbd:base@gold", NULL, "not an RBD image name"},
	    {"json:{\"driver\":\"rbd\"}", NULL, "rbd:POOL/IMAGE@SNAP"},
	};
	struct fleet_rbd rb;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(fleet_rbd_base(cases[i].base, cases[i].pool, &rb), -EINVAL);
		assert_non_null(strstr(err_msg(), cases[i].says));
		assert_null(rb.head);
	}
}

/* A member's definition holds its RBD clone's name (with '='), raw; a ',' cannot be carried. */
static void test_rbd_member_definition(void **state)
{
	struct vmdef d = {.memory = 64 << 20, .cpus = 1};
	struct vmdef_disk k = {.path = "rbd:rbd/lab1:conf=/etc/ceph/c.conf", .format = "raw"};

	(void)state;
	snprintf(d.name, sizeof(d.name), "lab1");
	vmdef_random_uuid(d.uuid);
	vmdef_stamp(&d);
	assert_int_equal(vmdef_add_disk(&d, &k), 0);
	assert_int_equal(vmdef_validate(&d), 0);
	free(d.disks[0].path);
	d.disks[0].path = strdup("rbd:rbd/lab1:conf=/a,b.conf");
	assert_int_equal(vmdef_validate(&d), -EINVAL);
	free(d.disks[0].path);
	d.disks[0].path = strdup("lab1.qcow2");
	assert_int_equal(vmdef_validate(&d), -EINVAL);
	vmdef_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_and_indexes),
	    cmocka_unit_test(test_prefix_rules),
	    cmocka_unit_test(test_macs),
	    cmocka_unit_test(test_members_in_index_order),
	    cmocka_unit_test(test_rbd_names),
	    cmocka_unit_test(test_rbd_base_refused),
	    cmocka_unit_test(test_rbd_member_definition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
