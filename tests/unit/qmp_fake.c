/* The QMP unit tests' fake VM and harness; see qmp_fake.h. */
#include "qmp_fake.h"
#include "block/block.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- a fake VM ---- */

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

const struct qmp_vm_ops fake_ops = {
    f_running, f_pause,	      f_resume,		f_powerdown, f_stop,	  f_name,  f_cpus,
    f_ram,     f_balloon_set, f_balloon_actual, f_disk,	     f_exit_info, f_stats,
};

/* ---- the harness ---- */

struct t *T;

void turn(int ms)
{
	assert_true(loop_run_once(T->loop, ms) >= 0);
}

struct cl *connect_client(int i)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qmp_server_add_client(T->srv, sv[1]), 0);
	T->c[i].fd = sv[0];
	T->c[i].len = 0;
	return &T->c[i];
}

int setup(void **state)
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

int teardown(void **state)
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
void cl_send(struct cl *c, const void *p, size_t n)
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

void cl_sends(struct cl *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Read what has arrived; 0 at end of file, -1 when nothing is there. */
int cl_fill(struct cl *c)
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
char *cl_line(struct cl *c)
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

struct json_object *cl_recv(struct cl *c)
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
void cl_quiet(struct cl *c)
{
	for (int i = 0; i < 20; i++)
		turn(0);
	cl_fill(c);
	assert_int_equal(c->len, 0);
}

const char *str_at(struct json_object *o, const char *a, const char *b)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, a, &x))
		return NULL;
	if (b && !json_object_object_get_ex(x, b, &x))
		return NULL;
	return json_object_get_string(x);
}

/* Send a request and check that the answer is this error (class, description). */
void expect_error(struct cl *c, const char *req, const char *cls, const char *desc)
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
struct json_object *expect_return(struct cl *c, const char *req)
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

struct cl *negotiated(int i)
{
	struct cl *c = connect_client(i);

	json_object_put(cl_recv(c)); /* greeting */
	json_object_put(expect_return(c, "{\"execute\": \"qmp_capabilities\"}"));
	return c;
}
