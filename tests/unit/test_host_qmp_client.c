/*
 * The QMP client against scripted servers on real UNIX sockets: the greeting and capabilities
 * negotiation, answers matched by id with events in between (kept for later), messages cut
 * into single bytes, QMP errors, a peer that goes silent (a timeout, never a hang), one that
 * hangs up, one that sends garbage or a message without end, and socket paths longer than
 * sockaddr_un holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "host/qmp_client.h"
#include "util/error.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "          \
	"\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"

struct server {
	char dir[128];
	char path[512];
	int lfd;
	pthread_t thread;
	void (*script)(int fd);
};

static void send_str(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

/* Read one request (a JSON object) and return it; NULL at end of stream. */
static struct json_object *read_request(int fd)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = NULL;
	char c;

	while (read(fd, &c, 1) == 1) {
		o = json_tokener_parse_ex(tok, &c, 1);
		if (o || json_tokener_get_error(tok) != json_tokener_continue)
			break;
	}
	json_tokener_free(tok);
	return o;
}

/* Read a request, check its command, and return its id (-1 when none). */
static int expect(int fd, const char *cmd)
{
	struct json_object *o = read_request(fd), *v;
	int id = -1;

	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "execute", &v));
	assert_string_equal(json_object_get_string(v), cmd);
	if (json_object_object_get_ex(o, "id", &v))
		id = json_object_get_int(v);
	json_object_put(o);
	return id;
}

static void reply(int fd, int id, const char *ret)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %d}\r\n", ret, id);
	send_str(fd, buf);
}

static void handshake(int fd)
{
	send_str(fd, GREETING);
	reply(fd, expect(fd, "qmp_capabilities"), "{}");
}

/* Hold the connection until the client closes it. */
static void drain(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);

	if (fd >= 0) {
		s->script(fd);
		close(fd);
	}
	return NULL;
}

static void start(struct server *s, void (*script)(int fd), bool long_path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char sub[300];

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/ligero-qmp-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	if (long_path) {
		/* deeper than sun_path's 108 bytes: bind from inside the directory */
		snprintf(sub, sizeof(sub), "%s/%0120d", s->dir, 0);
		assert_int_equal(mkdir(sub, 0700), 0);
		snprintf(s->path, sizeof(s->path), "%s/vm.qmp", sub);
		assert_true(strlen(s->path) > sizeof(sa.sun_path));
		char cwd[512];
		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(sub), 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "vm.qmp");
		s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(chdir(cwd), 0);
	} else {
		snprintf(s->path, sizeof(s->path), "%s/vm.qmp", s->dir);
		assert_true(strlen(s->path) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
		s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	assert_int_equal(listen(s->lfd, 4), 0);
	s->script = script;
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void stop(struct server *s)
{
	char cmd[700];

	pthread_join(s->thread, NULL);
	close(s->lfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- scripts ---- */

static void script_status(int fd)
{
	int id;

	handshake(fd);
	id = expect(fd, "query-status");
	send_str(fd,
		 "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n");
	reply(fd, id + 1000, "{\"status\": \"wrong\"}"); /* another request's answer */
	send_str(fd,
		 "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 3}}");
	reply(fd, id, "{\"status\": \"running\", \"singlestep\": false, \"running\": true}");
	drain(fd);
}

static void test_status_and_events(void **state)
{
	struct server s;
	struct qmp_client *c;
	struct json_object *ret, *v, *ev;
	(void)state;

	start(&s, script_status, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_non_null(qmp_greeting(c));
	assert_true(json_object_object_get_ex(qmp_greeting(c), "major", &v));
	assert_int_equal(json_object_get_int(v), 7);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 10000, &ret), 0);
	assert_true(json_object_object_get_ex(ret, "status", &v));
	assert_string_equal(json_object_get_string(v), "running");
	json_object_put(ret);
	/* both events were kept, and come out in order, by name */
	assert_int_equal(qmp_wait_event(c, "RESUME", 10000, &ev), 0);
	json_object_put(ev);
	assert_int_equal(qmp_wait_event(c, NULL, 10000, &ev), 0);
	assert_true(json_object_object_get_ex(ev, "event", &v));
	assert_string_equal(json_object_get_string(v), "STOP");
	json_object_put(ev);
	qmp_close(c);
	stop(&s);
}

/* Everything one byte per write, with the answer split from its id. */
static void script_bytewise(int fd)
{
	const char *g = GREETING;
	char buf[256];
	int id;

	for (; *g; g++)
		send(fd, g, 1, MSG_NOSIGNAL);
	id = expect(fd, "qmp_capabilities");
	snprintf(buf, sizeof(buf), "\r\n  {\"return\"\n:\t{}, \"id\": %d}   ", id);
	for (char *p = buf; *p; p++)
		send(fd, p, 1, MSG_NOSIGNAL);
	id = expect(fd, "query-name");
	snprintf(buf, sizeof(buf), "{\"return\": {\"name\": \"web\\u00f1\"}, \"id\": %d}", id);
	for (char *p = buf; *p; p++)
		send(fd, p, 1, MSG_NOSIGNAL);
	drain(fd);
}

static void test_bytewise(void **state)
{
	struct server s;
	struct qmp_client *c;
	struct json_object *ret, *v;
	(void)state;

	start(&s, script_bytewise, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "query-name", NULL, 10000, &ret), 0);
	assert_true(json_object_object_get_ex(ret, "name", &v));
	assert_string_equal(json_object_get_string(v), "web\xc3\xb1");
	json_object_put(ret);
	qmp_close(c);
	stop(&s);
}

static void script_error(int fd)
{
	char buf[256];
	int id;

	handshake(fd);
	id = expect(fd, "frobnicate");
	snprintf(buf, sizeof(buf),
		 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command frobnicate "
		 "has not been found\"}, \"id\": %d}\r\n",
		 id);
	send_str(fd, buf);
	/* the arguments go along */
	struct json_object *o = read_request(fd), *v;
	assert_true(json_object_object_get_ex(o, "arguments", &v));
	assert_true(json_object_object_get_ex(v, "value", &v));
	assert_int_equal(json_object_get_int64(v), 1 << 30);
	assert_true(json_object_object_get_ex(o, "id", &v));
	reply(fd, json_object_get_int(v), "{}");
	json_object_put(o);
	drain(fd);
}

static void test_error_and_arguments(void **state)
{
	struct server s;
	struct qmp_client *c;
	struct json_object *args;
	(void)state;

	start(&s, script_error, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "frobnicate", NULL, 10000, NULL), -EREMOTEIO);
	assert_non_null(strstr(err_msg(), "CommandNotFound: The command frobnicate"));
	args = json_object_new_object();
	json_object_object_add(args, "value", json_object_new_int64(1 << 30));
	assert_int_equal(qmp_execute(c, "balloon", args, 10000, NULL), 0);
	qmp_close(c);
	stop(&s);
}

static void script_silent_after_caps(int fd)
{
	handshake(fd);
	expect(fd, "query-status");
	drain(fd); /* never answers */
}

static void script_no_greeting(int fd)
{
	drain(fd);
}

static void test_timeouts(void **state)
{
	struct server s;
	struct qmp_client *c;
	(void)state;

	start(&s, script_silent_after_caps, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 300, NULL), -ETIMEDOUT);
	assert_non_null(strstr(err_msg(), "does not respond"));
	assert_int_equal(qmp_wait_event(c, "SHUTDOWN", 100, NULL), -ETIMEDOUT);
	assert_int_equal(qmp_wait_close(c, 100), -ETIMEDOUT);
	qmp_close(c);
	stop(&s);
	start(&s, script_no_greeting, false);
	assert_int_equal(qmp_connect(s.path, 300, &c), -ETIMEDOUT);
	assert_non_null(strstr(err_msg(), "no QMP greeting"));
	stop(&s);
}

static void script_hang_up(int fd)
{
	handshake(fd);
	expect(fd, "quit");
	send_str(fd, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false}}\r\n");
	/* and close without an answer, as a VMM that exits at once may */
}

static void test_hang_up(void **state)
{
	struct server s;
	struct qmp_client *c;
	struct json_object *ev;
	(void)state;

	start(&s, script_hang_up, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "quit", NULL, 10000, NULL), -EPIPE);
	assert_int_equal(qmp_wait_event(c, "SHUTDOWN", 10000, &ev), 0); /* kept on the way */
	json_object_put(ev);
	assert_int_equal(qmp_wait_close(c, 10000), 0);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 10000, NULL), -EPIPE);
	qmp_close(c);
	stop(&s);
}

static void script_garbage(int fd)
{
	handshake(fd);
	expect(fd, "query-status");
	send_str(fd, "{\"return\": ]]]\r\n");
	drain(fd);
}

static void script_not_qmp(int fd)
{
	send_str(fd, "{\"hello\": \"I am no VMM\"}\n");
	drain(fd);
}

static void script_endless(int fd)
{
	static char chunk[1 << 16];

	handshake(fd);
	expect(fd, "query-status");
	send_str(fd, "{\"return\": \"");
	memset(chunk, 'a', sizeof(chunk));
	for (int i = 0; i < 300; i++) /* ~19 MiB of one string */
		if (send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
			break;
	drain(fd);
}

static void script_array(int fd)
{
	handshake(fd);
	expect(fd, "query-status");
	send_str(fd, "[1, 2, 3]\r\n");
	drain(fd);
}

static void test_garbage(void **state)
{
	struct server s;
	struct qmp_client *c;
	(void)state;

	start(&s, script_garbage, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 10000, NULL), -EPROTO);
	assert_non_null(strstr(err_msg(), "invalid JSON"));
	qmp_close(c);
	stop(&s);
	start(&s, script_not_qmp, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), -EPROTO);
	assert_non_null(strstr(err_msg(), "no QMP greeting"));
	stop(&s);
	start(&s, script_endless, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 60000, NULL), -EPROTO);
	assert_non_null(strstr(err_msg(), "not a QMP peer"));
	qmp_close(c);
	stop(&s);
	start(&s, script_array, false);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 10000, NULL), -EPROTO);
	qmp_close(c);
	stop(&s);
}

static void script_quick(int fd)
{
	int id;
	handshake(fd);
	id = expect(fd, "query-status");
	reply(fd, id, "{\"status\": \"paused\", \"running\": false}");
	drain(fd);
}

static void test_long_path(void **state)
{
	struct server s;
	struct qmp_client *c;
	struct json_object *ret;
	(void)state;

	start(&s, script_quick, true);
	assert_int_equal(qmp_connect(s.path, 10000, &c), 0);
	assert_int_equal(qmp_execute(c, "query-status", NULL, 10000, &ret), 0);
	json_object_put(ret);
	qmp_close(c);
	stop(&s);
}

static void test_no_server(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct qmp_client *c;
	char dir[] = "/tmp/ligero-qmp-XXXXXX", path[64];
	int fd;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.qmp", dir);
	assert_int_equal(qmp_connect(path, 1000, &c), -ENOENT);
	assert_non_null(strstr(err_msg(), path));
	/* a socket left by a process that died: bound, nobody listening */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(qmp_connect(path, 1000, &c), -ECONNREFUSED);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_and_events),
	    cmocka_unit_test(test_bytewise),
	    cmocka_unit_test(test_error_and_arguments),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_hang_up),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_long_path),
	    cmocka_unit_test(test_no_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
