/* RBD names (src/block/rbd_name.c): qemu-img's rbd: syntax with its escapes, and QEMU's json:
 * spellings, parsed the way QEMU's qemu_rbd_parse_filename reads them; bad names refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "block/rbd.h"
#include "util/error.h"

static void plain_names(void **state)
{
	struct rbd_target t;

	(void)state;
	assert_int_equal(rbd_target_parse("rbd:rbd/disk", &t), 0);
	assert_string_equal(t.pool, "rbd");
	assert_string_equal(t.image, "disk");
	assert_string_equal(t.ns, "");
	assert_null(t.snap);
	assert_null(t.conf);
	assert_null(t.user);
	assert_int_equal(t.nkv, 0);
	assert_string_equal(t.spec, "rbd/disk");
	rbd_target_free(&t);

	assert_int_equal(rbd_target_parse("rbd:vms/ns1/base@gold:conf=/etc/c.conf:id=lab:"
					  "key=AQB==:rbd_cache=false",
					  &t),
			 0);
	assert_string_equal(t.pool, "vms");
	assert_string_equal(t.ns, "ns1");
	assert_string_equal(t.image, "base");
	assert_string_equal(t.snap, "gold");
	assert_string_equal(t.conf, "/etc/c.conf");
	assert_string_equal(t.user, "lab");
	assert_int_equal(t.nkv, 2);
	assert_string_equal(t.keys[0], "key");
	assert_string_equal(t.vals[0], "AQB==");
	assert_string_equal(t.keys[1], "rbd_cache");
	assert_string_equal(t.vals[1], "false");
	assert_string_equal(t.spec, "vms/ns1/base@gold");
	rbd_target_free(&t);

	/* Backslashes escape ':', '@', '/' and '=' in every part. */
	assert_int_equal(rbd_target_parse("rbd:p\\/q/im\\:g\\@x:conf=/a\\:b", &t), 0);
	assert_string_equal(t.pool, "p/q");
	assert_string_equal(t.image, "im:g@x");
	assert_null(t.snap);
	assert_string_equal(t.conf, "/a:b");
	rbd_target_free(&t);

	/* An '@' inside an option value is not a snapshot. */
	assert_int_equal(rbd_target_parse("rbd:rbd/img:conf=/x@y/ceph.conf", &t), 0);
	assert_null(t.snap);
	assert_string_equal(t.image, "img");
	assert_string_equal(t.conf, "/x@y/ceph.conf");
	rbd_target_free(&t);
}

static void json_names(void **state)
{
	struct rbd_target t;

	(void)state;
	const char *nested = "json:{\"driver\": \"raw\", \"file\": {\"pool\": \"rbd\", \"image\": "
			     "\"q1\", \"driver\": \"rbd\", \"namespace\": \"\", \"conf\": "
			     "\"/c\", \"snapshot\": \"s\", \"user\": \"u\"}}";
	assert_true(bdev_rbd_is_name(nested));
	assert_int_equal(rbd_target_parse(nested, &t), 0);
	assert_string_equal(t.pool, "rbd");
	assert_string_equal(t.image, "q1");
	assert_string_equal(t.snap, "s");
	assert_string_equal(t.conf, "/c");
	assert_string_equal(t.user, "u");
	rbd_target_free(&t);

	const char *flat = "json:{\"driver\":\"raw\",\"file.driver\":\"rbd\",\"file.pool\":\"p\","
			   "\"file.image\":\"i\",\"file.server.0.host\":\"10.1.1.1\","
			   "\"file.server.0.port\":\"6789\",\"file.server.1.host\":\"::1\","
			   "\"file.server.1.port\":\"3300\"}";
	assert_true(bdev_rbd_is_name(flat));
	assert_int_equal(rbd_target_parse(flat, &t), 0);
	assert_string_equal(t.mon_host, "10.1.1.1:6789;[::1]:3300");
	rbd_target_free(&t);

	const char *kv = "json:{\"driver\":\"rbd\",\"pool\":\"p\",\"image\":\"i\","
			 "\"server\":[{\"host\":\"h\",\"port\":\"1\"}],"
			 "\"=keyvalue-pairs\":\"[\\\"rbd_cache\\\", \\\"false\\\"]\"}";
	assert_int_equal(rbd_target_parse(kv, &t), 0);
	assert_string_equal(t.mon_host, "h:1");
	assert_int_equal(t.nkv, 1);
	assert_string_equal(t.keys[0], "rbd_cache");
	rbd_target_free(&t);

	assert_false(bdev_rbd_is_name("json:{\"driver\":\"nbd\",\"path\":\"/s\"}"));
	assert_false(bdev_rbd_is_name("json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"rbd\"}}"));
	assert_false(bdev_rbd_is_name("disk.qcow2"));
	assert_false(bdev_rbd_is_name("json:[1"));
	assert_false(bdev_rbd_is_name("json:{\"driver\":null,\"file\":{\"driver\":7}}"));
}

static const char kv_null[] = "json:{\"driver\":\"rbd\",\"pool\":\"p\",\"image\":\"i\","
			      "\"=keyvalue-pairs\":\"[null,1]\"}";

static void bad_names(void **state)
{
	static const char *const bad[] = {
	    "rbd:",
	    "rbd:rbd",
	    "rbd:/img",
	    "rbd:rbd/",
	    "rbd:rbd/img@",
	    "rbd:rbd/img:conf",
	    "rbd:rbd/img:=x",
	    "rbd:rbd/img:conf=a:conf=b",
	    "json:{\"driver\":\"rbd\",\"pool\":\"p\"}",
	    "json:{\"driver\":\"rbd\",\"pool\":\"p\",\"image\":\"i\",\"key-secret\":\"s\"}",
	    "json:{\"driver\":\"rbd\",\"pool\":\"p\",\"image\":\"i\",\"server\":[{}]}",
	    "json:{\"driver\":\"rbd\",\"pool\":\"p\",\"image\":\"i\",\"=keyvalue-pairs\":\"[1]\"}",
	    "json:{\"driver\":\"rbd\",\"pool\":\"p\",\"image\":\"i\",\"server\":\"h\"}",
	    kv_null,
	    "nbd://x",
	};
	struct rbd_target t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear();
		int ret = rbd_target_parse(bad[i], &t);
		if (ret == 0)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(err_msg(), bad[i]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(plain_names),
	    cmocka_unit_test(json_names),
	    cmocka_unit_test(bad_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
