/*
 * VM definitions: names, MACs, UUIDs, the JSON form (a definition written and read back is the
 * same definition) and the messages for a hand edit gone wrong, which must name the file and the
 * line the way a person counts lines in an editor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/vmdef.h"
#include "util/error.h"

static void test_names(void **state)
{
	char name[80];

	(void)state;
	assert_int_equal(vmdef_name_check("web1"), 0);
	assert_int_equal(vmdef_name_check("estudiante-20_a.b"), 0);
	assert_int_equal(vmdef_name_check("A"), 0);
	memset(name, 'x', 64);
	name[64] = '\0';
	assert_int_equal(vmdef_name_check(name), 0);
	name[64] = 'x';
	name[65] = '\0';
	assert_int_equal(vmdef_name_check(name), -EINVAL);
	assert_non_null(strstr(err_msg(), "longer than 64"));
	static const char *const bad[] = {"",	       "a b",	"a/b", "../x", ".hidden",
					  "-opt",      "a:b",	"a,b", "ñu",   "a\nb",
					  "tab\there", "semi;", "x$y", "a*"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vmdef_name_check(bad[i]), -EINVAL);
		assert_true(strlen(err_msg()) > 10);
	}
	vmdef_name_check("a b");
	assert_non_null(strstr(err_msg(), "0x20"));
}

static void test_mac_and_uuid(void **state)
{
	char mac[VMDEF_MAC_LEN + 1], uuid[37], seen[64][VMDEF_MAC_LEN + 1];
	unsigned a, b, c, d, e, f;

	(void)state;
	for (int i = 0; i < 64; i++) {
		vmdef_random_mac(mac);
		assert_int_equal(strlen(mac), VMDEF_MAC_LEN);
		assert_int_equal(sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &a, &b, &c, &d, &e, &f), 6);
		/* QEMU's locally administered prefix: unicast, local bit set in 0x52 */
		assert_int_equal(a, 0x52);
		assert_int_equal(b, 0x54);
		assert_int_equal(c, 0x00);
		assert_int_equal(vmdef_mac_parse(mac, seen[i]), 0);
		assert_string_equal(seen[i], mac);
	}
	/* 64 draws of 24 random bits: a repeat would say the bits are not random */
	int same = 0;
	for (int i = 0; i < 64; i++)
		for (int j = 0; j < i; j++)
			same += !strcmp(seen[i], seen[j]);
	assert_true(same <= 1);
	assert_int_equal(vmdef_mac_parse("52:54:00:AB:cd:0F", mac), 0);
	assert_string_equal(mac, "52:54:00:ab:cd:0f");
	assert_int_equal(vmdef_mac_parse("01:00:5e:00:00:01", mac), -EINVAL); /* multicast */
	assert_int_equal(vmdef_mac_parse("52:54:00:ab:cd", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("52:54:00:ab:cd:0f:", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("52-54-00-ab-cd-0f", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("52:54:00:ab:c :0f", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("5:254:00:ab:cd:0f", mac), -EINVAL);
	vmdef_random_uuid(uuid);
	assert_int_equal(strlen(uuid), 36);
	assert_int_equal(uuid[14], '4');
	assert_non_null(strchr("89ab", uuid[19]));
	for (int i = 0; i < 36; i++)
		assert_true(i == 8 || i == 13 || i == 18 || i == 23 ? uuid[i] == '-'
								    : isxdigit(uuid[i]) != 0);
}

static void test_size_str(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(vmdef_size_str(900ull << 20, buf, sizeof(buf)), "900M");
	assert_string_equal(vmdef_size_str(2ull << 30, buf, sizeof(buf)), "2G");
	assert_string_equal(vmdef_size_str(1536ull << 20, buf, sizeof(buf)), "1536M");
	assert_string_equal(vmdef_size_str(4096, buf, sizeof(buf)), "4K");
	assert_string_equal(vmdef_size_str(4097, buf, sizeof(buf)), "4097");
}

static void fill(struct vmdef *d)
{
	struct vmdef_disk k1 = {.path = "/var/lib/ligero/images/web1.qcow2", .format = "qcow2"};
	struct vmdef_disk k2 = {.path = "/srv/iso/data.img",
				.format = "raw",
				.readonly = true,
				.cache = "none",
				.serial = "DATA-1"};
	struct vmdef_net n1 = {.bridge = "br0", .mac = "52:54:00:12:34:56"};
	struct vmdef_net n2 = {.tap = "tap7", .mac = "52:54:00:ab:cd:ef"};

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "web1");
	vmdef_random_uuid(d->uuid);
	vmdef_stamp(d);
	d->memory = 900ull << 20;
	d->cpus = 2;
	assert_int_equal(vmdef_add_disk(d, &k1), 0);
	assert_int_equal(vmdef_add_disk(d, &k2), 0);
	assert_int_equal(vmdef_add_net(d, &n1), 0);
	assert_int_equal(vmdef_add_net(d, &n2), 0);
	d->kernel = strdup("/boot/vmlinuz");
	d->initrd = strdup("/boot/initrd.img");
	d->cmdline = strdup("console=ttyS0 root=/dev/vda1 \"quoted\" ñ");
	d->balloon = true;
	d->autostart = true;
}

static void assert_same(const struct vmdef *a, const struct vmdef *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->uuid, b->uuid);
	assert_string_equal(a->created, b->created);
	assert_int_equal(a->memory, b->memory);
	assert_int_equal(a->cpus, b->cpus);
	assert_int_equal(a->ndisks, b->ndisks);
	for (size_t i = 0; i < a->ndisks; i++) {
		assert_string_equal(a->disks[i].path, b->disks[i].path);
		assert_string_equal(a->disks[i].format, b->disks[i].format);
		assert_int_equal(a->disks[i].readonly, b->disks[i].readonly);
		assert_true((a->disks[i].cache == NULL) == (b->disks[i].cache == NULL));
		if (a->disks[i].cache)
			assert_string_equal(a->disks[i].cache, b->disks[i].cache);
		assert_true((a->disks[i].serial == NULL) == (b->disks[i].serial == NULL));
	}
	assert_int_equal(a->nnets, b->nnets);
	for (size_t i = 0; i < a->nnets; i++) {
		assert_string_equal(a->nets[i].mac, b->nets[i].mac);
		assert_true((a->nets[i].bridge == NULL) == (b->nets[i].bridge == NULL));
		assert_true((a->nets[i].tap == NULL) == (b->nets[i].tap == NULL));
	}
	assert_string_equal(a->kernel, b->kernel);
	assert_string_equal(a->initrd, b->initrd);
	assert_string_equal(a->cmdline, b->cmdline);
	assert_int_equal(a->balloon, b->balloon);
	assert_int_equal(a->rng, b->rng);
	assert_int_equal(a->autostart, b->autostart);
}

static void test_roundtrip(void **state)
{
	struct vmdef d, back;
	char *text;

	(void)state;
	fill(&d);
	assert_int_equal(vmdef_validate(&d), 0);
	text = vmdef_to_text(&d);
	assert_non_null(text);
	/* For people: one key per line, paths unescaped, sizes as a person writes them. */
	assert_non_null(strstr(text, "\"memory\": \"900M\""));
	assert_non_null(strstr(text, "\"/var/lib/ligero/images/web1.qcow2\""));
	assert_non_null(strstr(text, "\n  \"cpus\": 2,\n"));
	assert_int_equal(text[strlen(text) - 1], '\n');
	assert_int_equal(vmdef_parse(text, strlen(text), "web1.json", &back), 0);
	assert_same(&d, &back);
	free(text);
	vmdef_free(&back);
	/* memory as bytes, as a script might write it */
	const char *bytes = "{\"name\": \"b\", \"uuid\": \"01234567-89ab-cdef-0123-456789abcdef\", "
			    "\"memory\": 536870912, \"cpus\": 1, \"kernel\": \"/k\"}";
	assert_int_equal(vmdef_parse(bytes, strlen(bytes), "b.json", &back), 0);
	assert_int_equal(back.memory, 512ull << 20);
	assert_int_equal(back.ndisks, 0);
	vmdef_free(&back);
	vmdef_free(&d);
}

/* Parse text expecting failure; the message must hold want. */
static void bad_parse(const char *text, const char *want)
{
	struct vmdef d;

	memset(&d, 0x5a, sizeof(d));
	assert_int_equal(vmdef_parse(text, strlen(text), "/v/vms/web1.json", &d), -EINVAL);
	if (!strstr(err_msg(), want))
		fail_msg("message '%s' lacks '%s'", err_msg(), want);
	assert_null(strchr(err_msg(), '\n'));
	assert_int_equal(((unsigned char *)&d)[0], 0x5a); /* untouched */
}

static void test_invalid_json_names_the_line(void **state)
{
	(void)state;
	/* a missing comma at the end of line 3: the tokener stops on line 4's key */
	bad_parse("{\n  \"name\": \"web1\",\n  \"uuid\": \"x\"\n  \"memory\": \"1G\"\n}\n",
		  "/v/vms/web1.json:4:");
	/* a trailing comma (strict JSON) on line 5 before the brace on line 6 */
	bad_parse("{\n\n\n\n  \"cpus\": 1,\n}\n", "/v/vms/web1.json:6:");
	/* cut short: the file ends inside the object; the last line is named */
	bad_parse("{\n  \"name\": \"web1\",\n  \"cpus\": 1", "/v/vms/web1.json:3: invalid JSON "
							     "(the file ends");
	/* a stray character on line 2 */
	bad_parse("{\n  name: 1\n}", "/v/vms/web1.json:2:");
	/* text after the object */
	bad_parse("{}\n\n}\n", "/v/vms/web1.json:3:1: invalid JSON");
	/* single quotes are not JSON */
	bad_parse("{'name': 'x'}", "/v/vms/web1.json:1:");
	bad_parse("", "/v/vms/web1.json:1: invalid JSON");
}

static void test_bad_fields(void **state)
{
	const char *head =
	    "{\"name\": \"web1\", \"uuid\": \"01234567-89ab-cdef-0123-456789abcdef\", ";
	char buf[1024];

	(void)state;
#define BAD(rest, want)                                                                            \
	do {                                                                                       \
		snprintf(buf, sizeof(buf), "%s%s}", head, rest);                                   \
		bad_parse(buf, want);                                                              \
	} while (0)
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernal\": \"/k\"", "unknown key 'kernal'");
	BAD("\"memory\": \"1G\", \"cpus\": \"2\", \"kernel\": \"/k\"", "'cpus' must be");
	BAD("\"memory\": \"1G\", \"cpus\": 255, \"kernel\": \"/k\"", "'cpus' must be");
	BAD("\"memory\": \"lots\", \"cpus\": 1, \"kernel\": \"/k\"", "'memory' must be");
	BAD("\"memory\": \"16M\", \"cpus\": 1, \"kernel\": \"/k\"", "memory must be");
	BAD("\"memory\": \"1G\", \"cpus\": 1", "needs a kernel or a disk");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"vmlinuz\"", "not absolute");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"initrd\": \"/i\", \"disks\": [{\"path\": \"/d\", "
	    "\"format\": \"raw\"}]",
	    "need a kernel");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"disks\": [{\"path\": \"/a,b\", \"format\": "
	    "\"raw\"}]",
	    "has a ','");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"disks\": [{\"path\": \"/d\", \"format\": "
	    "\"vmdk\"}]",
	    "format must be raw or qcow2");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"disks\": [{\"path\": \"/d\", \"format\": \"raw\", "
	    "\"cache\": \"fast\"}]",
	    "/v/vms/web1.json: disk /d: ");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"disks\": [{\"path\": \"/d\", \"format\": \"raw\", "
	    "\"size\": 1}]",
	    "unknown key 'size' in a disk");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"/k\", \"net\": [{\"bridge\": \"br0\"}]",
	    "'mac' is missing");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"/k\", \"net\": [{\"bridge\": \"br0\", "
	    "\"mac\": \"52:54:00:00:00:01\"}, {\"tap\": \"t\", \"mac\": \"52:54:00:00:00:01\"}]",
	    "given twice");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"/k\", \"net\": [{\"mac\": "
	    "\"52:54:00:00:00:01\"}]",
	    "bridge or a tap");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"/k\", \"net\": [{\"bridge\": "
	    "\"br0,x=y\", \"mac\": \"52:54:00:00:00:01\"}]",
	    "not an interface name");
	BAD("\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"/k\", \"autostart\": \"yes\"",
	    "'autostart' must be true or false");
#undef BAD
	bad_parse("[1, 2]", "a JSON object");
	bad_parse("{\"name\": \"a b\", \"uuid\": \"01234567-89ab-cdef-0123-456789abcdef\"}",
		  "/v/vms/web1.json: VM name 'a b'");
	bad_parse("{\"name\": \"a\", \"uuid\": \"nope\"}", "'uuid' must be a UUID");
	/* a NUL inside a string would cut the path short of what the file says */
	const char nul[] = "{\"name\": \"a\", \"uuid\": \"01234567-89ab-cdef-0123-456789abcdef\", "
			   "\"memory\": \"1G\", \"cpus\": 1, \"kernel\": \"/k\\u0000x\"}";
	bad_parse(nul, "without NUL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_mac_and_uuid),
	    cmocka_unit_test(test_size_str),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_invalid_json_names_the_line),
	    cmocka_unit_test(test_bad_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
