/* The QMP server and the VM's commands, without KVM: the commands run against a fake VM, the
 * clients are socketpairs (and one real UNIX socket) driven from this thread, which also turns
 * the server's event loop. The oracle is QEMU itself: tests/qmp/qemu-7.2.jsonl is a session
 * recorded from QEMU 7.2 (tests/qmp/record_qemu.py; $QMP_ORACLE names another recording), and
 * test_qemu_oracle sends ligero the same bytes and compares the answers' shapes, error classes
 * and descriptions, and the events and their order. */
#include "vmm/loop.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmds.h"
#include "vmm/qmp_wire.h"
#include "vmm/unixsock.h"
#include "block/block.h"

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

/* ---- a fake VM ---- */

struct fake {
	bool running, balloon;
	int pauses, resumes, powerdowns, stops;
	enum qmp_shutdown why;
	uint64_t ram, balloon_target, balloon_actual;
	const char *name;
};

static bool f_running(void *vm)
{
	return ((struct fake *)vm)->running;
}

static int f_pause(void *vm)
{
	struct fake *f = vm;
	f->pauses++;
	f->running = false;
	return 0;
}

static int f_resume(void *vm)
{
	struct fake *f = vm;
	f->resumes++;
	f->running = true;
	return 0;
}

static void f_powerdown(void *vm)
{
	((struct fake *)vm)->powerdowns++;
}

static void f_stop(void *vm, enum qmp_shutdown why)
{
	struct fake *f = vm;
	f->stops++;
	f->why = why;
}

static const char *f_name(void *vm)
{
	return ((struct fake *)vm)->name;
}

static unsigned f_cpus(void *vm, struct qmp_vm_cpu *out, unsigned max)
{
	for (unsigned i = 0; i < 2 && i < max; i++)
		out[i].thread_id = 1000 + (int)i;
	return 2;
}

static uint64_t f_ram(void *vm)
{
	return ((struct fake *)vm)->ram;
}

static int f_balloon_set(void *vm, uint64_t target)
{
	struct fake *f = vm;
	if (!f->balloon)
		return -ENODEV;
	f->balloon_target = target;
	return 0;
}

static int f_balloon_actual(void *vm, uint64_t *actual)
{
	struct fake *f = vm;
	if (!f->balloon)
		return -ENODEV;
	*actual = f->balloon_actual;
	return 0;
}

/* One qcow2 disk over a backing file, as the recorded QEMU had. */
static int f_disk(void *vm, unsigned i, struct vm_disk_info *out)
{
	if (i > 0)
		return -ENOENT;
	*out = (struct vm_disk_info){.path = "/tmp/disk.qcow2",
				     .format = "qcow2",
				     .backing = "/tmp/base.qcow2",
				     .depth = 1,
				     .size = 64 << 20};
	return 0;
}

static struct json_object *f_exit_info(void *vm)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "stopping", json_object_new_boolean(false));
	return o;
}

static struct json_object *f_stats(void *vm)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "rss", json_object_new_int64(1 << 20));
	return o;
}

static const struct qmp_vm_ops fake_ops = {
    f_running, f_pause,	      f_resume,		f_powerdown, f_stop,	  f_name,  f_cpus,
    f_ram,     f_balloon_set, f_balloon_actual, f_disk,	     f_exit_info, f_stats,
};

/* ---- the harness ---- */

#define NCL	 4
#define CL_BUF	 (2 << 20)
#define PATIENCE 5000 /* loop turns of up to 10 ms before a test calls it a hang */

struct cl {
	int fd;
	char *buf;
	size_t len;
};

struct t {
	struct loop *loop;
	struct qmp_server *srv;
	struct fake vm;
	struct qmp_vm q;
	struct cl c[NCL];
};

static struct t *T;

static void turn(int ms)
{
	assert_true(loop_run_once(T->loop, ms) >= 0);
}

static struct cl *connect_client(int i)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qmp_server_add_client(T->srv, sv[1]), 0);
	T->c[i].fd = sv[0];
	T->c[i].len = 0;
	return &T->c[i];
}

static int setup(void **state)
{
	size_t n;
	const struct qmp_cmd *cmds = qmp_vm_commands(&n);
	struct qmp_version v = qmp_vm_version();

	T = calloc(1, sizeof(*T));
	T->vm = (struct fake){.running = true, .balloon = true, .ram = 256 << 20, .name = "oracle"};
	T->vm.balloon_actual = T->vm.ram;
	T->q = (struct qmp_vm){.ops = &fake_ops, .vm = &T->vm};
	assert_int_equal(loop_new(&T->loop), 0);
	assert_int_equal(qmp_server_new(T->loop, &v, cmds, n, &T->q, &T->srv), 0);
	for (int i = 0; i < NCL; i++) {
		T->c[i].fd = -1;
		T->c[i].buf = malloc(CL_BUF);
	}
	*state = T;
	return 0;
}

static int teardown(void **state)
{
	qmp_server_free(T->srv);
	loop_free(T->loop);
	for (int i = 0; i < NCL; i++) {
		if (T->c[i].fd >= 0)
			close(T->c[i].fd);
		free(T->c[i].buf);
	}
	free(T);
	return 0;
}

/* Send all of it, turning the loop whenever the socket is full (big texts). */
static void cl_send(struct cl *c, const void *p, size_t n)
{
	const char *s = p;
	int turns = 0;

	while (n) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w < 0) {
			assert_true(errno == EAGAIN);
			assert_true(++turns < PATIENCE);
			turn(10);
			continue;
		}
		s += w;
		n -= (size_t)w;
	}
}

static void cl_sends(struct cl *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Read what has arrived; 0 at end of file, -1 when nothing is there. */
static int cl_fill(struct cl *c)
{
	ssize_t r = read(c->fd, c->buf + c->len, CL_BUF - 1 - c->len);

	if (r < 0) {
		assert_true(errno == EAGAIN);
		return -1;
	}
	c->len += (size_t)r;
	c->buf[c->len] = '\0';
	return r > 0 ? 1 : 0;
}

/* The next line the server sent (without its CRLF), or NULL at end of file. */
static char *cl_line(struct cl *c)
{
	static char line[CL_BUF];
	int turns = 0;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf) + 1;
			assert_true(n >= 2 && nl[-1] == '\r'); /* QEMU ends lines with CRLF */
			memcpy(line, c->buf, n - 2);
			line[n - 2] = '\0';
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			return line;
		}
		int r = cl_fill(c);
		if (r == 0)
			return NULL;
		if (r < 0) {
			assert_true(++turns < PATIENCE);
			turn(10);
		}
	}
}

static struct json_object *cl_recv(struct cl *c)
{
	char *line = cl_line(c);
	struct json_object *o;

	assert_non_null(line);
	o = json_tokener_parse(line);
	if (!o)
		fail_msg("not JSON: %s", line);
	return o;
}

/* Nothing more arrives while the loop has nothing left to do. */
static void cl_quiet(struct cl *c)
{
	for (int i = 0; i < 20; i++)
		turn(0);
	cl_fill(c);
	assert_int_equal(c->len, 0);
}

static const char *str_at(struct json_object *o, const char *a, const char *b)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, a, &x))
		return NULL;
	if (b && !json_object_object_get_ex(x, b, &x))
		return NULL;
	return json_object_get_string(x);
}

/* Send a request and check that the answer is this error (class, description). */
static void expect_error(struct cl *c, const char *req, const char *cls, const char *desc)
{
	struct json_object *o;

	cl_sends(c, req);
	o = cl_recv(c);
	if (!str_at(o, "error", "class"))
		fail_msg("%s: no error in %s", req, json_object_to_json_string(o));
	assert_string_equal(str_at(o, "error", "class"), cls);
	if (desc)
		assert_string_equal(str_at(o, "error", "desc"), desc);
	json_object_put(o);
}

/* Send a request; return its "return" member (a new reference), failing on an error. */
static struct json_object *expect_return(struct cl *c, const char *req)
{
	struct json_object *o, *r;

	cl_sends(c, req);
	o = cl_recv(c);
	if (!json_object_object_get_ex(o, "return", &r))
		fail_msg("%s: %s", req, json_object_to_json_string(o));
	json_object_get(r);
	json_object_put(o);
	return r;
}

static struct cl *negotiated(int i)
{
	struct cl *c = connect_client(i);

	json_object_put(cl_recv(c)); /* greeting */
	json_object_put(expect_return(c, "{\"execute\": \"qmp_capabilities\"}"));
	return c;
}

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
	    cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qemu_oracle, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
