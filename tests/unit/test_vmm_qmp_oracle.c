/* QMP against QEMU itself: tests/qmp/qemu-7.2.jsonl is a session recorded from QEMU 7.2
 * (tests/qmp/record_qemu.py; $QMP_ORACLE names another recording); test_qemu_oracle sends
 * ligero the same bytes and compares the answers' shapes, error classes and descriptions, and
 * the events and their order. Also the server on a real UNIX socket. */
#include "qmp_fake.h"
#include "vmm/qmp_wire.h"
#include "vmm/unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

static void test_unix_socket(void **state)
{
	char dir[] = "/tmp/ligero-qmp-XXXXXX", path[128], file[128];
	struct stat st;
	struct unixsock other;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	assert_int_equal(qmp_server_listen(T->srv, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second server on the same path is refused while this one lives */
	assert_int_equal(unixsock_listen(&other, path, "--qmp"), -EADDRINUSE);
	/* a client over the real socket */
	fd = unixsock_connect(path);
	assert_true(fd >= 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	T->c[0].fd = fd;
	turn(100);
	struct json_object *o = cl_recv(&T->c[0]);
	assert_non_null(json_object_object_get(o, "QMP"));
	json_object_put(o);
	/* freeing the server removes its socket */
	qmp_server_free(T->srv);
	T->srv = NULL;
	assert_int_equal(stat(path, &st), -1);
	/* a stale socket (nobody listens) is replaced */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strcpy(a.sun_path, path);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s);
	assert_int_equal(unixsock_listen(&other, path, "--qmp"), 0);
	unixsock_close(&other);
	/* a file that is no socket is refused */
	snprintf(file, sizeof(file), "%s/file", dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(unixsock_listen(&other, file, "--qmp"), -EEXIST);
	unlink(file);
	rmdir(dir);
	size_t n;
	struct qmp_version v = qmp_vm_version();
	assert_int_equal(qmp_server_new(T->loop, &v, qmp_vm_commands(&n), n, &T->q, &T->srv), 0);
}

/* ---- QEMU as the oracle ---- */

/* Members whose values legitimately differ (times, ids, paths, versions, TCG against KVM). */
static bool value_compared(const char *key)
{
	static const char *const keys[] = {
	    "class",	   "status",	     "running",	      "singlestep",
	    "event",	   "guest",	     "reason",	      "ro",
	    "drv",	   "encrypted",	     "detect_zeroes", "locked",
	    "removable",   "type",	     "device",	      "io-status",
	    "core-id",	   "socket-id",	     "cpu-index",     "target",
	    "base-memory", "plugged-memory", "name",	      "backing_file_depth",
	    "format",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i], key))
			return true;
	return false;
}

/* What QEMU's query-block has that ligero does not model (node graph, image details). */
static bool may_lack(const char *key)
{
	static const char *const keys[] = {
	    "node-name",  "cluster-size",	   "actual-size",   "format-specific",
	    "dirty-flag", "full-backing-filename", "backing-image", "backing-filename-format",
	    "qdev"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i], key))
			return true;
	return false;
}

/* ours has QEMU's shape: the same members with the same JSON types, recursively. */
static void same_shape(struct json_object *ours, struct json_object *qemu, const char *where,
		       const char *key)
{
	enum json_type a = json_object_get_type(ours), b = json_object_get_type(qemu);

	if (a != b)
		fail_msg("%s: member '%s' is %s in ligero's answer, %s in QEMU's", where, key,
			 json_type_to_name(a), json_type_to_name(b));
	if (a == json_type_object) {
		json_object_object_foreach(qemu, k, v)
		{
			struct json_object *x;
			if (json_object_object_get_ex(ours, k, &x))
				same_shape(x, v, where, k);
			else if (!may_lack(k))
				fail_msg("%s: ligero's answer lacks '%s'", where, k);
		}
		json_object_object_foreach(ours, k2, v2)
		{
			(void)v2;
			if (!json_object_object_get_ex(qemu, k2, NULL))
				fail_msg("%s: ligero's answer has '%s', QEMU's does not", where,
					 k2);
		}
	} else if (a == json_type_array) {
		if (json_object_array_length(ours) && json_object_array_length(qemu))
			same_shape(json_object_array_get_idx(ours, 0),
				   json_object_array_get_idx(qemu, 0), where, key);
	} else if (value_compared(key) &&
		   strcmp(json_object_to_json_string(ours), json_object_to_json_string(qemu))) {
		fail_msg("%s: '%s' is %s in ligero's answer, %s in QEMU's", where, key,
			 json_object_to_json_string(ours), json_object_to_json_string(qemu));
	}
}

static void compare_message(struct json_object *ours, struct json_object *qemu, const char *sent)
{
	const char *qd = str_at(qemu, "error", "desc"), *od = str_at(ours, "error", "desc");

	if (qd && od && !strncmp(qd, "JSON parse error, stray", 23)) {
		/* QEMU names the stray character, ligero its byte */
		assert_int_equal(strncmp(od, "JSON parse error, stray", 23), 0);
		return;
	}
	if (qd && od && strcmp(qd, od))
		fail_msg("%s: ligero says '%s', QEMU '%s'", sent, od, qd);
	same_shape(ours, qemu, sent, "");
}

static void test_qemu_oracle(void **state)
{
	const char *path = getenv("QMP_ORACLE");
	char line[1 << 16], where[96];
	struct cl *c = connect_client(0);
	int exchanges = 0;
	FILE *f;

	if (!path || !*path)
		skip();
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		struct json_object *x = json_tokener_parse(line), *send, *recv;
		assert_non_null(x);
		send = json_object_object_get(x, "send");
		recv = json_object_object_get(x, "recv");
		const char *text = json_object_get_string(send);
		/* the recording stores bytes as latin-1 code points: send them as bytes */
		char bytes[4096];
		size_t n = 0;
		for (const uint8_t *p = (const uint8_t *)text; *p && n < sizeof(bytes) - 2;) {
			if (*p == 0xc3 && p[1]) {
				bytes[n++] = (char)(0xc0 | (p[1] & 0x3f));
				p += 2;
			} else {
				bytes[n++] = (char)*p++;
			}
		}
		if (n && !strstr(text, "\"quit\""))
			bytes[n++] = '\n';
		cl_send(c, bytes, n);
		snprintf(where, sizeof(where), "after sending %.60s", text);
		if (json_object_array_length(recv) == 0)
			cl_quiet(c);
		for (size_t i = 0; i < json_object_array_length(recv); i++) {
			struct json_object *ours = cl_recv(c);
			compare_message(ours, json_object_array_get_idx(recv, i), where);
			json_object_put(ours);
		}
		json_object_put(x);
		exchanges++;
	}
	fclose(f);
	assert_true(exchanges > 40);
	assert_int_equal(T->vm.why, QMP_SHUTDOWN_QMP_QUIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qemu_oracle, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
