/* The QMP server and the VM's commands, without KVM: the protocol (negotiation, request
 * checks, errors, ids, splitting, limits, garbage), the commands and their events, against the
 * fake VM of qmp_fake.c. test_vmm_qmp_oracle.c holds the same server to QEMU's own answers. */
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

/* ---- protocol ---- */

static void test_greeting_and_negotiation(void **state)
{
	struct cl *c = connect_client(0);
	char *line = cl_line(c);

	/* The greeting, byte for byte as QEMU prints it (with our version). */
	assert_string_equal(line, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
				  "\"major\": 7}, \"package\": \"ligero " LIGERO_VERSION
				  "\"}, \"capabilities\": []}}");
	expect_error(c, "{\"execute\": \"query-status\"}", "CommandNotFound",
		     "Expecting capabilities negotiation with 'qmp_capabilities'");
	expect_error(c, "{\"execute\": \"nosuch\"}", "CommandNotFound",
		     "Expecting capabilities negotiation with 'qmp_capabilities'");
	expect_error(c,
		     "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}",
		     "GenericError", "Capability 'oob' not available");
	cl_sends(c, "{\"execute\": \"qmp_capabilities\", \"id\": 1}");
	assert_string_equal(cl_line(c), "{\"return\": {}, \"id\": 1}");
	expect_error(c, "{\"execute\": \"qmp_capabilities\"}", "CommandNotFound",
		     "Capabilities negotiation is already complete, command ignored");
	struct json_object *r = expect_return(c, "{\"execute\": \"query-status\"}");
	assert_string_equal(json_object_get_string(json_object_object_get(r, "status")), "running");
	json_object_put(r);
}

static void test_request_errors(void **state)
{
	static const struct {
		const char *req, *cls, *desc;
	} cases[] = {
	    {"[1, 2]", "GenericError", "QMP input must be a JSON object"},
	    {"42 ", "GenericError", "QMP input must be a JSON object"},
	    {"\"str\"", "GenericError", "QMP input must be a JSON object"},
	    {"{}", "GenericError", "QMP input lacks member 'execute'"},
	    {"{\"execute\": 42}", "GenericError", "QMP input member 'execute' must be a string"},
	    {"{\"execute\": \"stop\", \"arguments\": [1]}", "GenericError",
	     "QMP input member 'arguments' must be an object"},
	    {"{\"execute\": \"stop\", \"arguments\": null}", "GenericError",
	     "QMP input member 'arguments' must be an object"},
	    {"{\"exec\": \"stop\"}", "GenericError", "QMP input member 'exec' is unexpected"},
	    {"{\"exec-oob\": \"stop\"}", "GenericError",
	     "QMP input member 'exec-oob' is unexpected"},
	    {"{\"execute\": \"nosuch\"}", "CommandNotFound",
	     "The command nosuch has not been found"},
	    {"{\"execute\": \"balloon\", \"arguments\": {\"value\": \"x\"}}", "GenericError",
	     "Invalid parameter type for 'value', expected: integer"},
	    {"{\"execute\": \"balloon\", \"arguments\": {\"value\": 1.5}}", "GenericError",
	     "Invalid parameter type for 'value', expected: integer"},
	    {"{\"execute\": \"balloon\", \"arguments\": {}}", "GenericError",
	     "Parameter 'value' is missing"},
	    {"{\"execute\": \"balloon\"}", "GenericError", "Parameter 'value' is missing"},
	    {"{\"execute\": \"balloon\", \"arguments\": {\"value\": 1, \"foo\": 2}}",
	     "GenericError", "Parameter 'foo' is unexpected"},
	    {"{\"execute\": \"balloon\", \"arguments\": {\"value\": 0}}", "GenericError",
	     "Parameter 'target' expects a size"},
	    {"{\"execute\": \"balloon\", \"arguments\": {\"value\": -5}}", "GenericError",
	     "Parameter 'target' expects a size"},
	    {"{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}}", "GenericError",
	     "Parameter 'x' is unexpected"},
	    {"{\"execute\": }", "GenericError", NULL},
	    {"}", "GenericError", "JSON parse error, expecting value"},
	    {"]", "GenericError", "JSON parse error, expecting value"},
	    {",", "GenericError", "JSON parse error, expecting value"},
	    {"foo ", "GenericError", "JSON parse error, invalid keyword 'foo'"},
	    {"\xff", "GenericError", "JSON parse error, stray byte 0xff"},
	    {"\x01", "GenericError", "JSON parse error, stray byte 0x01"},
	};
	struct cl *c = negotiated(0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(c, cases[i].req, cases[i].cls, cases[i].desc);
	/* and the client is served as before */
	json_object_put(expect_return(c, "{\"execute\": \"query-name\"}"));
}

static void test_id_echoed(void **state)
{
	struct cl *c = negotiated(0);

	cl_sends(c, "{\"execute\": \"query-name\", \"id\": {\"a\": [1, 2]}}");
	assert_string_equal(cl_line(c),
			    "{\"return\": {\"name\": \"oracle\"}, \"id\": {\"a\": [1, 2]}}");
	cl_sends(c, "{\"execute\": \"nosuch\", \"id\": \"x\"}");
	assert_string_equal(cl_line(c),
			    "{\"id\": \"x\", \"error\": {\"class\": \"CommandNotFound\", "
			    "\"desc\": \"The command nosuch has not been found\"}}");
	cl_sends(c, "{\"execute\": \"query-name\", \"foo\": 1, \"id\": null}");
	assert_string_equal(cl_line(c), "{\"id\": null, \"error\": {\"class\": \"GenericError\", "
					"\"desc\": \"QMP input member 'foo' is unexpected\"}}");
	/* non-ASCII and invalid UTF-8 come back escaped as QEMU escapes them */
	cl_sends(c, "{\"execute\": \"query-name\", \"id\": \"\xc3\xa9\xf0\x9f\x98\x80\xc3\"}");
	assert_string_equal(cl_line(c), "{\"return\": {\"name\": \"oracle\"}, \"id\": "
					"\"\\u00E9\\uD83D\\uDE00\\uFFFD\"}");
}

static void test_split_and_batched(void **state)
{
	const char *req = "{\"execute\": \"query-name\", \"id\": \"a}\\\"[\"}";
	struct cl *c = negotiated(0);

	/* byte by byte, the loop turning in between */
	for (const char *p = req; *p; p++) {
		cl_send(c, p, 1);
		turn(0);
	}
	struct json_object *o = cl_recv(c);
	assert_string_equal(str_at(o, "id", NULL), "a}\"[");
	json_object_put(o);
	/* two in one write, single quotes as QEMU takes them */
	cl_sends(c, "{\"execute\": \"query-status\"}  {'execute': 'query-name'}");
	o = cl_recv(c);
	assert_non_null(str_at(o, "return", "status"));
	json_object_put(o);
	o = cl_recv(c);
	assert_string_equal(str_at(o, "return", "name"), "oracle");
	json_object_put(o);
	/* an incomplete text waits for the rest */
	cl_sends(c, "{\"execute\": \"query-name\"");
	cl_quiet(c);
	cl_sends(c, "}");
	json_object_put(cl_recv(c));
}

static void test_limits(void **state)
{
	struct cl *c = negotiated(0);
	size_t big = QMP_TEXT_MAX + 1000;
	static char s[QMP_TEXT_MAX + 1100];

	/* a text over the size limit: one error, its tail dropped, the client still served */
	int n = sprintf(s, "{\"execute\": \"query-name\", \"id\": \"");
	memset(s + n, 'a', big - (size_t)n);
	strcpy(s + big, "\"}");
	expect_error(c, s, "GenericError", "JSON token size limit exceeded");
	cl_quiet(c);
	json_object_put(expect_return(c, "{\"execute\": \"query-name\"}"));
	/* deeper than QEMU's 1024 levels: one error for the whole text */
	memset(s, '[', 1100);
	memset(s + 1100, ']', 1100);
	s[2200] = '\0';
	expect_error(c, s, "GenericError", "JSON nesting depth limit exceeded");
	cl_quiet(c);
	/* at the limit it is parsed (and is no object) */
	memset(s, '[', 1024);
	memset(s + 1024, ']', 1024);
	s[2048] = '\0';
	expect_error(c, s, "GenericError", "QMP input must be a JSON object");
	json_object_put(expect_return(c, "{\"execute\": \"query-name\"}"));
}

/* 200 messages of garbage: random bytes, cut or mangled requests, wrong types. Every one is
 * answered or waits for more; 0xff resets the parser and the client is served again. */
static void test_garbage(void **state)
{
	static const char *const pieces[] = {
	    "{\"execute\":",
	    "\"query-status\"",
	    "}",
	    "{",
	    "[",
	    "]",
	    "\"arguments\":",
	    "{\"value\": ",
	    "null",
	    "true",
	    "-1e999",
	    "\\u0000",
	    "\"\\ud800\"",
	    ",",
	    ":",
	    "'",
	    "\"",
	    " ",
	    "\n",
	    "\"id\": ",
	    "12345678901234567890",
	    "\x01",
	    "\xc3",
	    "\x80",
	    "{\"execute\": \"balloon\", \"arguments\": {\"value\": [[[{}]]]}}",
	};
	struct cl *c = negotiated(0);
	uint32_t seed = 12345;
	char msg[512];

	for (int i = 0; i < 200; i++) {
		size_t len = 0;
		int parts = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 8;
		for (int k = 0; k < parts; k++) {
			seed = seed * 1103515245 + 12345;
			if ((seed >> 8) % 4 == 0) { /* raw bytes, 0xfe and 0xff aside */
				for (int b = 0; b < 8; b++) {
					seed = seed * 1103515245 + 12345;
					uint8_t x = (uint8_t)(seed >> 16);
					msg[len++] = (char)(x >= 0xfe ? 'x' : x);
				}
			} else {
				const char *p =
				    pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
				memcpy(msg + len, p, strlen(p));
				len += strlen(p);
			}
		}
		cl_send(c, msg, len);
		turn(0);
		/* answers are JSON objects with return or error, events aside */
		while (cl_fill(c) > 0)
			;
	}
	cl_sends(c, "\xff");
	turn(0);
	while (cl_fill(c) > 0 || (turn(0), cl_fill(c) > 0))
		;
	c->len = 0;
	/* every answer was one JSON object per line */
	struct json_object *r =
	    expect_return(c, "{\"execute\": \"query-status\", \"id\": \"after\"}");
	json_object_put(r);
	assert_int_equal(qmp_server_clients(T->srv), 1);
}

static void test_answers_are_json_lines(void **state)
{
	struct cl *c = negotiated(0);
	const char *bad[] = {"}", "foo ", "{\"execute\": 1}", "[", "]", "\xff", "'a'", "{\"a\":}"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cl_sends(c, bad[i]);
		turn(0);
	}
	for (int n = 0; n < 7; n++) { /* "[" then "]" is one text; "\xff" resets */
		struct json_object *o = cl_recv(c);
		assert_true(json_object_is_type(o, json_type_object));
		assert_non_null(str_at(o, "error", "class"));
		json_object_put(o);
	}
	cl_quiet(c);
}

/* ---- commands and events ---- */

static void test_stop_cont(void **state)
{
	struct cl *c = negotiated(0), *other = negotiated(1), *fresh = connect_client(2);
	struct json_object *o;

	json_object_put(cl_recv(fresh)); /* greeting; not negotiated: no events */
	cl_sends(c, "{\"execute\": \"stop\"}");
	o = cl_recv(c);
	assert_string_equal(str_at(o, "event", NULL), "STOP");
	assert_non_null(
	    json_object_object_get(json_object_object_get(o, "timestamp"), "microseconds"));
	json_object_put(o);
	json_object_put(
	    expect_return(c, "" /* the next answer */)); /* the answer after the event */
	assert_int_equal(T->vm.pauses, 1);
	o = cl_recv(other);
	assert_string_equal(str_at(o, "event", NULL), "STOP");
	json_object_put(o);
	cl_quiet(fresh);
	/* stopped again: no event, as QEMU */
	json_object_put(expect_return(c, "{\"execute\": \"stop\"}"));
	assert_int_equal(T->vm.pauses, 1);
	o = expect_return(c, "{\"execute\": \"query-status\"}");
	assert_string_equal(
	    json_object_to_json_string(o),
	    "{ \"status\": \"paused\", \"singlestep\": false, \"running\": false }");
	json_object_put(o);
	cl_sends(c, "{\"execute\": \"cont\"}");
	o = cl_recv(c);
	assert_string_equal(str_at(o, "event", NULL), "RESUME");
	json_object_put(o);
	json_object_put(expect_return(c, "" /* the next answer */));
	json_object_put(expect_return(c, "{\"execute\": \"cont\"}"));
	assert_int_equal(T->vm.resumes, 1);
}

static void test_powerdown_quit_reset(void **state)
{
	struct cl *c = negotiated(0);
	struct json_object *o;

	cl_sends(c, "{\"execute\": \"system_powerdown\"}");
	o = cl_recv(c);
	assert_string_equal(str_at(o, "event", NULL), "POWERDOWN");
	json_object_put(o);
	json_object_put(expect_return(c, "" /* the next answer */));
	assert_int_equal(T->vm.powerdowns, 1);

	cl_sends(c, "{\"execute\": \"quit\", \"id\": 7}");
	o = cl_recv(c);
	assert_string_equal(str_at(o, "event", NULL), "SHUTDOWN");
	assert_string_equal(json_object_to_json_string(json_object_object_get(o, "data")),
			    "{ \"guest\": false, \"reason\": \"host-qmp-quit\" }");
	json_object_put(o);
	assert_string_equal(cl_line(c), "{\"return\": {}, \"id\": 7}");
	assert_int_equal(T->vm.stops, 1);
	assert_int_equal(T->vm.why, QMP_SHUTDOWN_QMP_QUIT);
	/* SHUTDOWN goes out once per VM */
	qmp_vm_shutdown_event(T->srv, &T->q, QMP_SHUTDOWN_GUEST);
	cl_quiet(c);
}

static void test_system_reset(void **state)
{
	struct cl *c = negotiated(0);
	struct json_object *o;

	cl_sends(c, "{\"execute\": \"system_reset\"}");
	o = cl_recv(c);
	assert_string_equal(json_object_to_json_string(json_object_object_get(o, "data")),
			    "{ \"guest\": false, \"reason\": \"host-qmp-system-reset\" }");
	json_object_put(o);
	json_object_put(expect_return(c, "" /* the next answer */));
	assert_int_equal(T->vm.why, QMP_SHUTDOWN_QMP_RESET);
}

static void test_shutdown_reasons(void **state)
{
	static const struct {
		enum qmp_shutdown why;
		const char *data;
	} cases[] = {
	    {QMP_SHUTDOWN_GUEST, "{ \"guest\": true, \"reason\": \"guest-shutdown\" }"},
	    {QMP_SHUTDOWN_GUEST_RESET, "{ \"guest\": true, \"reason\": \"guest-reset\" }"},
	    {QMP_SHUTDOWN_GUEST_PANIC, "{ \"guest\": true, \"reason\": \"guest-panic\" }"},
	    {QMP_SHUTDOWN_SIGNAL, "{ \"guest\": false, \"reason\": \"host-signal\" }"},
	    {QMP_SHUTDOWN_UI, "{ \"guest\": false, \"reason\": \"host-ui\" }"},
	    {QMP_SHUTDOWN_ERROR, "{ \"guest\": false, \"reason\": \"host-error\" }"},
	};
	struct cl *c = negotiated(0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		T->q.shutdown_sent = false;
		qmp_vm_shutdown_event(T->srv, &T->q, cases[i].why);
		struct json_object *o = cl_recv(c);
		assert_string_equal(json_object_to_json_string(json_object_object_get(o, "data")),
				    cases[i].data);
		json_object_put(o);
	}
}

static void test_balloon(void **state)
{
	struct cl *c = negotiated(0);
	struct json_object *o;

	json_object_put(
	    expect_return(c, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 134217728}}"));
	assert_int_equal(T->vm.balloon_target, 134217728);
	T->vm.balloon_actual = 200 << 20;
	o = expect_return(c, "{\"execute\": \"query-balloon\"}");
	assert_string_equal(json_object_to_json_string(o), "{ \"actual\": 209715200 }");
	json_object_put(o);
	T->vm.balloon = false;
	expect_error(c, "{\"execute\": \"query-balloon\"}", "DeviceNotActive",
		     "No balloon device has been activated");
	expect_error(c, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 1}}",
		     "DeviceNotActive", "No balloon device has been activated");
	o = expect_return(c, "{\"execute\": \"query-memory-size-summary\"}");
	assert_string_equal(json_object_to_json_string(o),
			    "{ \"base-memory\": 268435456, \"plugged-memory\": 0 }");
	json_object_put(o);
}

static void test_query_commands_lists_all(void **state)
{
	struct cl *c = negotiated(0);
	struct json_object *o = expect_return(c, "{\"execute\": \"query-commands\"}");
	size_t n;
	const struct qmp_cmd *cmds = qmp_vm_commands(&n);
	char req[128];

	assert_int_equal(json_object_array_length(o), n + 1);
	/* each listed command exists: none answers CommandNotFound */
	for (size_t i = 0; i < json_object_array_length(o); i++) {
		const char *name = str_at(json_object_array_get_idx(o, i), "name", NULL);
		if (!strcmp(name, "quit") || !strcmp(name, "system_reset") ||
		    !strcmp(name, "qmp_capabilities"))
			continue;
		snprintf(req, sizeof(req), "{\"execute\": \"%s\"}", name);
		cl_sends(c, req);
		struct json_object *a = cl_recv(c);
		while (str_at(a, "event", NULL)) { /* stop, cont, powerdown */
			json_object_put(a);
			a = cl_recv(c);
		}
		const char *cls = str_at(a, "error", "class");
		assert_true(!cls || strcmp(cls, "CommandNotFound"));
		json_object_put(a);
	}
	json_object_put(o);
	assert_non_null(cmds);
}

/* A client that sends and never reads is dropped; the others go on. */
static void test_flood_dropped(void **state)
{
	struct cl *flood = negotiated(0), *c = negotiated(1);
	const char *req = "{\"execute\": \"query-commands\"}";
	int turns = 0;

	while (qmp_server_clients(T->srv) == 2) {
		ssize_t w = send(flood->fd, req, strlen(req), MSG_NOSIGNAL);
		assert_true(w > 0 || errno == EAGAIN || errno == EPIPE || errno == ECONNRESET);
		turn(0);
		assert_true(++turns < 200000);
	}
	json_object_put(expect_return(c, "{\"execute\": \"query-name\"}"));
	/* the dropped client sees its socket closed */
	while (cl_fill(flood) != 0)
		flood->len = 0;
}

/* Events reach each negotiated client; a client that never reads them is dropped in the end,
 * never blocks the server. */
static void test_event_backlog_dropped(void **state)
{
	struct cl *deaf = negotiated(0);
	int n = 0;

	(void)deaf;
	while (qmp_server_clients(T->srv) == 1) {
		qmp_server_event(T->srv, "STOP", NULL);
		assert_true(++n < 100000);
	}
	assert_true(n > 1000); /* it had a socket buffer and QMP_OUT_MAX of room */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_greeting_and_negotiation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_id_echoed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_and_batched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answers_are_json_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_cont, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_powerdown_quit_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_system_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_reasons, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_balloon, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_query_commands_lists_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flood_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_backlog_dropped, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
