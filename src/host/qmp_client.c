/*
 * QMP client. Messages are JSON objects, one after another on a stream socket; json-c's
 * incremental tokener cuts them out of whatever chunks read() returns. The socket is
 * non-blocking and every wait is a poll() bounded by the caller's deadline.
 */
#include "host/qmp_client.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A message larger than this is no QMP answer ligero asks for: the peer is broken. */
#define QMP_MAX_MESSAGE (16u << 20)
#define QMP_MAX_EVENTS	256

struct qmp_client {
	int fd;
	char name[256];
	struct json_tokener *tok;
	char buf[65536];
	size_t len, pos;
	size_t msg_bytes; /* bytes fed to the tokener for the message being parsed */
	struct json_object *events[QMP_MAX_EVENTS];
	size_t nev;
	struct json_object *greeting;
	int next_id;
	bool closed;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
	long long l = deadline - now_ms();

	return l < 0 ? 0 : l > 0x7fffffff ? 0x7fffffff : (int)l;
}

/* Wait for fd to be ready for events, until the deadline: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		int n = poll(&p, 1, left_ms(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int timeout_err(struct qmp_client *c, const char *what)
{
	return err_set(ETIMEDOUT, "%s: no answer %s in time (the VM does not respond)", c->name,
		       what);
}

/* Read more bytes into buf. 0, -EPIPE at end of stream, -ETIMEDOUT. */
static int fill(struct qmp_client *c, long long deadline)
{
	ssize_t n;
	int ret;

	if (c->closed)
		return -EPIPE;
	if (c->pos == c->len)
		c->pos = c->len = 0;
	for (;;) {
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			return 0;
		}
		if (n == 0) {
			c->closed = true;
			return -EPIPE;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET) {
			c->closed = true;
			return -EPIPE;
		}
		if (errno != EAGAIN)
			return err_sys(errno, "%s", c->name);
		if ((ret = wait_fd(c->fd, POLLIN, deadline)) < 0)
			return ret;
	}
}

/* The next whole message: 0 with *out, -EPIPE, -ETIMEDOUT, -EPROTO. */
static int next_message(struct qmp_client *c, long long deadline, struct json_object **out)
{
	for (;;) {
		while (c->pos < c->len) {
			size_t avail = c->len - c->pos;
			struct json_object *o =
			    json_tokener_parse_ex(c->tok, c->buf + c->pos, (int)avail);
			enum json_tokener_error e = json_tokener_get_error(c->tok);
			size_t used;

			if (e == json_tokener_continue) {
				c->msg_bytes += avail;
				c->pos = c->len;
				if (c->msg_bytes > QMP_MAX_MESSAGE)
					return err_set(EPROTO,
						       "%s: a message of more than %u "
						       "bytes; not a QMP peer",
						       c->name, QMP_MAX_MESSAGE);
				break;
			}
			if (e != json_tokener_success)
				return err_set(EPROTO, "%s: invalid JSON from the VM (%s)", c->name,
					       json_tokener_error_desc(e));
			used = json_tokener_get_parse_end(c->tok);
			c->pos += used ? used : avail;
			c->msg_bytes = 0;
			json_tokener_reset(c->tok);
			if (!o) /* a JSON null: no QMP message */
				continue;
			if (!json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				return err_set(EPROTO,
					       "%s: the VM sent a JSON value that is no "
					       "QMP message",
					       c->name);
			}
			*out = o;
			return 0;
		}
		int ret = fill(c, deadline);
		if (ret < 0)
			return ret;
	}
}

static void keep_event(struct qmp_client *c, struct json_object *ev)
{
	if (c->nev == QMP_MAX_EVENTS) { /* nobody waits for them: keep the newest */
		json_object_put(c->events[0]);
		memmove(c->events, c->events + 1, (QMP_MAX_EVENTS - 1) * sizeof(c->events[0]));
		c->nev--;
	}
	c->events[c->nev++] = ev;
}

static int send_all(struct qmp_client *c, const char *s, long long deadline)
{
	size_t len = strlen(s);
	int ret;

	while (len) {
		ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);
		if (n > 0) {
			s += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			c->closed = true;
			return err_set(EPIPE, "%s: the VM closed its QMP socket", c->name);
		}
		if (n < 0 && errno != EAGAIN)
			return err_sys(errno, "%s", c->name);
		if ((ret = wait_fd(c->fd, POLLOUT, deadline)) < 0)
			return timeout_err(c, "(it reads nothing)");
	}
	return 0;
}

static int qmp_error(struct qmp_client *c, struct json_object *err)
{
	struct json_object *cls = NULL, *desc = NULL;

	json_object_object_get_ex(err, "class", &cls);
	json_object_object_get_ex(err, "desc", &desc);
	return err_set(EREMOTEIO, "%s: %s: %s", c->name,
		       cls ? json_object_get_string(cls) : "GenericError",
		       desc ? json_object_get_string(desc) : "(no description)");
}

int qmp_execute(struct qmp_client *c, const char *cmd, struct json_object *args, int timeout_ms,
		struct json_object **ret)
{
	long long deadline = now_ms() + timeout_ms;
	struct json_object *req = json_object_new_object(), *msg, *v, *id;
	int my_id = ++c->next_id, r;

	if (ret)
		*ret = NULL;
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_int(my_id));
	r = send_all(c, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), deadline);
	json_object_put(req);
	if (r < 0)
		return r;
	for (;;) {
		if ((r = next_message(c, deadline, &msg)) < 0) {
			if (r == -ETIMEDOUT)
				return timeout_err(c, cmd[0] ? "to a command" : "");
			if (r == -EPIPE)
				return err_set(EPIPE, "%s: the VM closed its QMP socket", c->name);
			return r;
		}
		if (json_object_object_get_ex(msg, "event", NULL)) {
			keep_event(c, msg);
			continue;
		}
		/* Ours: the id we gave, or none at all from a peer that does not echo ids. */
		if (json_object_object_get_ex(msg, "id", &id) &&
		    (!json_object_is_type(id, json_type_int) || json_object_get_int(id) != my_id)) {
			json_object_put(msg);
			continue;
		}
		if (json_object_object_get_ex(msg, "error", &v)) {
			r = qmp_error(c, v);
			json_object_put(msg);
			return r;
		}
		if (json_object_object_get_ex(msg, "return", &v)) {
			if (ret)
				*ret = json_object_get(v);
			json_object_put(msg);
			return 0;
		}
		json_object_put(msg); /* neither: not for us */
	}
}

static bool event_is(struct json_object *ev, const char *name)
{
	struct json_object *v;

	return !name || (json_object_object_get_ex(ev, "event", &v) &&
			 json_object_is_type(v, json_type_string) &&
			 !strcmp(json_object_get_string(v), name));
}

int qmp_wait_event(struct qmp_client *c, const char *name, int timeout_ms, struct json_object **ev)
{
	long long deadline = now_ms() + timeout_ms;
	struct json_object *msg;
	int r;

	for (size_t i = 0; i < c->nev; i++) {
		if (!event_is(c->events[i], name))
			continue;
		msg = c->events[i];
		memmove(c->events + i, c->events + i + 1, (c->nev - i - 1) * sizeof(msg));
		c->nev--;
		if (ev)
			*ev = msg;
		else
			json_object_put(msg);
		return 0;
	}
	for (;;) {
		if ((r = next_message(c, deadline, &msg)) < 0)
			return r == -ETIMEDOUT ? err_set(ETIMEDOUT, "%s: no %s event in time",
							 c->name, name ? name : "")
			       : r == -EPIPE
				   ? err_set(EPIPE, "%s: the VM closed its QMP socket", c->name)
				   : r;
		if (json_object_object_get_ex(msg, "event", NULL) && event_is(msg, name)) {
			if (ev)
				*ev = msg;
			else
				json_object_put(msg);
			return 0;
		}
		if (json_object_object_get_ex(msg, "event", NULL))
			keep_event(c, msg);
		else
			json_object_put(msg);
	}
}

int qmp_wait_close(struct qmp_client *c, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct json_object *msg;
	int r;

	for (;;) {
		r = next_message(c, deadline, &msg);
		if (r == -EPIPE)
			return 0;
		if (r == -ETIMEDOUT)
			return err_set(ETIMEDOUT, "%s: the VM is still running", c->name);
		if (r < 0) {
			/* Garbage on the way out: skip it and keep waiting for the end. */
			c->pos = c->len;
			c->msg_bytes = 0;
			json_tokener_reset(c->tok);
			if (fill(c, deadline) == -EPIPE)
				return 0;
			if (left_ms(deadline) == 0)
				return err_set(ETIMEDOUT, "%s: the VM is still running", c->name);
			continue;
		}
		if (json_object_object_get_ex(msg, "event", NULL))
			keep_event(c, msg);
		else
			json_object_put(msg);
	}
}

struct json_object *qmp_greeting(struct qmp_client *c)
{
	struct json_object *v;

	if (c->greeting && json_object_object_get_ex(c->greeting, "QMP", &v) &&
	    json_object_object_get_ex(v, "version", &v) && json_object_object_get_ex(v, "qemu", &v))
		return v;
	return NULL;
}

void qmp_close(struct qmp_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nev; i++)
		json_object_put(c->events[i]);
	json_object_put(c->greeting);
	if (c->tok)
		json_tokener_free(c->tok);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static int handshake(struct qmp_client *c, long long deadline)
{
	struct json_object *msg;
	int r = next_message(c, deadline, &msg);

	if (r == -ETIMEDOUT)
		return err_set(ETIMEDOUT, "%s: no QMP greeting in time (the VM does not respond)",
			       c->name);
	if (r == -EPIPE)
		return err_set(EPIPE, "%s: the VM closed its QMP socket", c->name);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(msg, "QMP", NULL)) {
		json_object_put(msg);
		return err_set(EPROTO, "%s: the peer's first message is no QMP greeting", c->name);
	}
	c->greeting = msg;
	return qmp_execute(c, "qmp_capabilities", NULL, left_ms(deadline), NULL);
}

int qmp_connect_fd(int fd, const char *name, int timeout_ms, struct qmp_client **out)
{
	long long deadline = now_ms() + timeout_ms;
	struct qmp_client *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		close(fd);
		return err_set(ENOMEM, "out of memory");
	}
	c->fd = fd;
	snprintf(c->name, sizeof(c->name), "%s", name);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (!(c->tok = json_tokener_new())) {
		qmp_close(c);
		return err_set(ENOMEM, "out of memory");
	}
	if ((r = handshake(c, deadline)) < 0) {
		qmp_close(c);
		return r;
	}
	*out = c;
	return 0;
}

/* sockaddr_un for path; a path longer than sun_path goes through /proc/self/fd/N of its
 * directory (*dirfd, closed by the caller after connect). */
static int socket_addr(const char *path, struct sockaddr_un *sa, int *dirfd)
{
	char *copy, *dir, base[256];

	*dirfd = -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, strlen(path) + 1);
		return 0;
	}
	if (!(copy = strdup(path)))
		return err_set(ENOMEM, "out of memory");
	snprintf(base, sizeof(base), "%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
	dir = dirname(copy);
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (*dirfd < 0)
		return err_sys(errno, "%s", path);
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
			     base) >= sizeof(sa->sun_path))
		return err_set(ENAMETOOLONG, "%s: socket name too long", path);
	return 0;
}

int qmp_unix_connect(const char *path, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa;
	int fd, dirfd, r;

	if ((r = socket_addr(path, &sa, &dirfd)) < 0) {
		if (dirfd >= 0)
			close(dirfd);
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = err_sys(errno, "socket");
		goto out;
	}
	/* A full listen backlog says EAGAIN: the VM is busy, try again until the deadline. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && left_ms(deadline) > 0) {
			nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
			continue;
		}
		r = errno == EAGAIN ? err_set(ETIMEDOUT, "%s: the VM accepts no connection", path)
				    : err_sys(errno, "cannot connect to %s", path);
		close(fd);
		goto out;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	r = fd;
out:
	if (dirfd >= 0)
		close(dirfd);
	return r;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp_client **out)
{
	long long deadline = now_ms() + timeout_ms;
	int fd = qmp_unix_connect(path, timeout_ms);

	if (fd < 0)
		return fd;
	return qmp_connect_fd(fd, path, left_ms(deadline), out);
}
