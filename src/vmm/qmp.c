/* The QMP server; see qmp.h. Each client has its input splitter (qmp_wire.h), its output
 * queue and its negotiation state. A client is never freed under a callback that may still
 * use it: dropping one closes its socket at once and frees it when no callback runs. */
#include "vmm/qmp.h"
#include "vmm/qmp_wire.h"
#include "vmm/unixsock.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 16384

struct qmp_client {
	struct qmp_server *srv;
	struct qmp_client *next;
	struct loop_watch w;
	int fd;
	bool negotiated; /* qmp_capabilities done: commands and events from now on */
	bool dead;
	struct qmp_wire_in in;
	struct qmp_buf out;
	size_t out_off; /* bytes of out already sent */
};

struct qmp_server {
	struct loop *loop;
	struct qmp_version version;
	const struct qmp_cmd *cmds;
	size_t ncmds;
	void *ctx;
	struct unixsock sock;
	struct loop_watch listen_w;
	struct qmp_client *clients;
	unsigned nclients;
	int busy; /* callbacks running: dead clients are freed when it is 0 */
	uint8_t rbuf[READ_CHUNK];
};

int qmp_error_set(struct qmp_error *e, const char *cls, const char *fmt, ...)
{
	va_list ap;

	e->cls = cls;
	va_start(ap, fmt);
	vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- clients ---- */

static void client_drop(struct qmp_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	loop_del(&c->w);
	close(c->fd);
	c->fd = -1;
	c->srv->nclients--;
}

static void client_free(struct qmp_client *c)
{
	qmp_wire_in_free(&c->in);
	qmp_buf_free(&c->out);
	free(c);
}

static void server_reap(struct qmp_server *s)
{
	struct qmp_client **pp = &s->clients;

	if (s->busy)
		return;
	while (*pp) {
		struct qmp_client *c = *pp;
		if (c->dead) {
			*pp = c->next;
			client_free(c);
		} else {
			pp = &c->next;
		}
	}
}

/* Send what is queued without blocking; wait for EPOLLOUT when the socket is full. */
static void client_flush(struct qmp_client *c)
{
	while (!c->dead && c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (loop_mod(&c->w, EPOLLIN | EPOLLOUT) < 0)
				client_drop(c);
			return;
		}
		if (n <= 0) {
			client_drop(c); /* the peer is gone */
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->dead)
		return;
	c->out.len = c->out_off = 0;
	if (loop_mod(&c->w, EPOLLIN) < 0)
		client_drop(c);
}

/* Queue one message (consumed) for the client. */
static void client_send(struct qmp_client *c, struct json_object *msg)
{
	if (!c->dead) {
		qmp_buf_put_json(&c->out, msg);
		/* It does not read what it asks for, or what happens: let it go rather than
		 * hold its backlog. */
		if (c->out.oom || c->out.len - c->out_off > QMP_OUT_MAX)
			client_drop(c);
		else
			client_flush(c);
	}
	json_object_put(msg);
}

static void client_error(struct qmp_client *c, bool has_id, struct json_object *id, const char *cls,
			 const char *desc)
{
	struct json_object *msg = json_object_new_object(), *e = json_object_new_object();

	if (has_id)
		json_object_object_add(msg, "id", json_object_get(id));
	json_object_object_add(e, "class", json_object_new_string(cls));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object_object_add(msg, "error", e);
	client_send(c, msg);
}

static void client_return(struct qmp_client *c, bool has_id, struct json_object *id,
			  struct json_object *ret)
{
	struct json_object *msg = json_object_new_object();

	json_object_object_add(msg, "return", ret ? ret : json_object_new_object());
	if (has_id)
		json_object_object_add(msg, "id", json_object_get(id));
	client_send(c, msg);
}

static struct json_object *version_json(const struct qmp_version *v)
{
	struct json_object *o = json_object_new_object(), *q = json_object_new_object();

	json_object_object_add(q, "micro", json_object_new_int(v->micro));
	json_object_object_add(q, "minor", json_object_new_int(v->minor));
	json_object_object_add(q, "major", json_object_new_int(v->major));
	json_object_object_add(o, "qemu", q);
	json_object_object_add(o, "package", json_object_new_string(v->package));
	return o;
}

static void client_greet(struct qmp_client *c)
{
	struct json_object *msg = json_object_new_object(), *q = json_object_new_object();

	json_object_object_add(q, "version", version_json(&c->srv->version));
	json_object_object_add(q, "capabilities", json_object_new_array());
	json_object_object_add(msg, "QMP", q);
	client_send(c, msg);
}

/* ---- requests ---- */

static const char *type_name(enum qmp_type t)
{
	switch (t) {
	case QMP_T_INT:
		return "integer";
	case QMP_T_STR:
		return "string";
	case QMP_T_BOOL:
		return "boolean";
	case QMP_T_ARRAY:
		return "array";
	case QMP_T_ANY:
		break;
	}
	return "any";
}

static bool type_ok(struct json_object *v, enum qmp_type t)
{
	switch (t) {
	case QMP_T_INT:
		return json_object_is_type(v, json_type_int);
	case QMP_T_STR:
		return json_object_is_type(v, json_type_string);
	case QMP_T_BOOL:
		return json_object_is_type(v, json_type_boolean);
	case QMP_T_ARRAY:
		return json_object_is_type(v, json_type_array);
	case QMP_T_ANY:
		break;
	}
	return true;
}

/* The arguments against the command's list, in QEMU's order: each declared one (wrong type,
 * missing), then any the command does not take. */
static int check_args(const struct qmp_arg *spec, struct json_object *args, struct qmp_error *e)
{
	struct json_object *v;

	for (const struct qmp_arg *a = spec; a < spec + QMP_ARGS_MAX && a->name; a++) {
		if (!json_object_object_get_ex(args, a->name, &v)) {
			if (!a->optional)
				return qmp_error_set(e, "GenericError", "Parameter '%s' is missing",
						     a->name);
		} else if (!type_ok(v, a->type)) {
			return qmp_error_set(e, "GenericError",
					     "Invalid parameter type for '%s', expected: %s",
					     a->name, type_name(a->type));
		}
	}
	json_object_object_foreach(args, key, val)
	{
		bool known = false;
		(void)val;
		for (const struct qmp_arg *a = spec; a < spec + QMP_ARGS_MAX && a->name; a++)
			known = known || !strcmp(a->name, key);
		if (!known)
			return qmp_error_set(e, "GenericError", "Parameter '%s' is unexpected",
					     key);
	}
	return 0;
}

/* qmp_capabilities: leave negotiation mode. No capability is offered (no "oob"). */
static int capabilities(struct qmp_client *c, struct json_object *args, struct qmp_error *e)
{
	static const struct qmp_arg spec[QMP_ARGS_MAX] = {{"enable", QMP_T_ARRAY, true}};
	struct json_object *en;

	if (check_args(spec, args, e) < 0)
		return -1; /* arguments first, as QEMU does */
	if (c->negotiated)
		return qmp_error_set(
		    e, "CommandNotFound",
		    "Capabilities negotiation is already complete, command ignored");
	if (json_object_object_get_ex(args, "enable", &en)) {
		for (size_t i = 0; i < json_object_array_length(en); i++) {
			struct json_object *cap = json_object_array_get_idx(en, i);
			if (!json_object_is_type(cap, json_type_string))
				return qmp_error_set(e, "GenericError",
						     "Invalid parameter type for 'enable', "
						     "expected: string");
			if (strcmp(json_object_get_string(cap), "oob"))
				return qmp_error_set(e, "GenericError",
						     "Parameter 'enable' does not accept value "
						     "'%.64s'",
						     json_object_get_string(cap));
			return qmp_error_set(e, "GenericError", "Capability 'oob' not available");
		}
	}
	c->negotiated = true;
	return 0;
}

static const struct qmp_cmd *find_cmd(struct qmp_server *s, const char *name)
{
	for (size_t i = 0; i < s->ncmds; i++)
		if (!strcmp(s->cmds[i].name, name))
			return &s->cmds[i];
	return NULL;
}

/* Check the request's members as QEMU does: execute (a string), arguments (an object), id
 * (anything, echoed); nothing else. Returns the command name or NULL with e filled. */
static const char *check_request(struct json_object *req, struct json_object **args,
				 struct qmp_error *e)
{
	const char *name = NULL;

	*args = NULL;
	json_object_object_foreach(req, key, val)
	{
		if (!strcmp(key, "execute")) {
			if (!json_object_is_type(val, json_type_string)) {
				qmp_error_set(e, "GenericError",
					      "QMP input member 'execute' must be a string");
				return NULL;
			}
			name = json_object_get_string(val);
		} else if (!strcmp(key, "arguments")) {
			if (!json_object_is_type(val, json_type_object)) {
				qmp_error_set(e, "GenericError",
					      "QMP input member 'arguments' must be an object");
				return NULL;
			}
			*args = val;
		} else if (strcmp(key, "id")) {
			qmp_error_set(e, "GenericError", "QMP input member '%.64s' is unexpected",
				      key);
			return NULL;
		}
	}
	if (!name)
		qmp_error_set(e, "GenericError", "QMP input lacks member 'execute'");
	return name;
}

static void client_request(struct qmp_client *c, struct json_object *req)
{
	struct qmp_server *s = c->srv;
	struct json_object *id = NULL, *args, *ret = NULL, *empty = NULL;
	bool has_id;
	struct qmp_error e = {0};
	const struct qmp_cmd *cmd;
	const char *name;
	int r;

	if (!json_object_is_type(req, json_type_object)) {
		client_error(c, false, NULL, "GenericError", "QMP input must be a JSON object");
		return;
	}
	has_id = json_object_object_get_ex(req, "id", &id); /* json-c's null is NULL */
	if (!(name = check_request(req, &args, &e))) {
		client_error(c, has_id, id, e.cls, e.desc);
		return;
	}
	if (!args)
		args = empty = json_object_new_object();
	if (!c->negotiated && strcmp(name, "qmp_capabilities"))
		r = qmp_error_set(&e, "CommandNotFound",
				  "Expecting capabilities negotiation with 'qmp_capabilities'");
	else if (!strcmp(name, "qmp_capabilities"))
		r = capabilities(c, args, &e);
	else if (!(cmd = find_cmd(s, name)))
		r = qmp_error_set(&e, "CommandNotFound", "The command %.64s has not been found",
				  name);
	else if ((r = check_args(cmd->args, args, &e)) == 0)
		r = cmd->fn(s, s->ctx, args, &ret, &e);
	if (r < 0)
		client_error(c, has_id, id, e.cls ? e.cls : "GenericError", e.desc);
	else
		client_return(c, has_id, id, ret);
	json_object_put(empty);
}

/* QEMU's words for what json-c found wrong in a text. */
static const char *parse_error(enum json_tokener_error e)
{
	switch (e) {
	case json_tokener_error_depth:
		return "nesting depth limit exceeded";
	case json_tokener_error_parse_array:
		return "expected separator in list";
	case json_tokener_error_parse_object_key_name:
		return "key is not a string in object";
	case json_tokener_error_parse_object_key_sep:
		return "missing : in object pair";
	case json_tokener_error_parse_object_value_sep:
		return "expected separator in dict";
	case json_tokener_error_parse_string:
		return "invalid escape sequence in string";
	case json_tokener_error_parse_null:
	case json_tokener_error_parse_boolean:
		return "invalid keyword";
	default:
		return "expecting value";
	}
}

/* A text from the splitter (or its error): parse it whole and answer it. */
static int client_text(void *opaque, const char *text, size_t len, const char *error)
{
	struct qmp_client *c = opaque;
	struct json_tokener *tok;
	struct json_object *req;
	char desc[160];

	if (error) {
		client_error(c, false, NULL, "GenericError", error);
		return c->dead;
	}
	if (!(tok = json_tokener_new_ex(QMP_DEPTH_MAX + 1))) {
		client_error(c, false, NULL, "GenericError", "out of memory");
		return c->dead;
	}
	/* The terminating NUL is fed too, so that a bare number ends where the text does. */
	req = json_tokener_parse_ex(tok, text, (int)len + 1);
	if (req && json_tokener_get_parse_end(tok) >= len) {
		client_request(c, req);
	} else {
		if (text[0] == '{' || text[0] == '[' || text[0] == '"' || text[0] == '\'')
			snprintf(desc, sizeof(desc), "JSON%s %s",
				 json_tokener_get_error(tok) == json_tokener_error_depth
				     ? ""
				     : " parse error,",
				 parse_error(json_tokener_get_error(tok)));
		else
			snprintf(desc, sizeof(desc), "JSON parse error, invalid keyword '%.64s'",
				 text);
		client_error(c, false, NULL, "GenericError", desc);
	}
	json_object_put(req);
	json_tokener_free(tok);
	return c->dead;
}

static void client_cb(struct loop_watch *w, uint32_t events)
{
	struct qmp_client *c = w->opaque;
	struct qmp_server *s = c->srv;

	s->busy++;
	if (events & EPOLLOUT)
		client_flush(c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t n = read(c->fd, s->rbuf, sizeof(s->rbuf));
		if (n > 0)
			qmp_wire_feed(&c->in, s->rbuf, (size_t)n, client_text, c);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			client_drop(c); /* closed by the client */
	}
	s->busy--;
	server_reap(s);
}

int qmp_server_add_client(struct qmp_server *s, int fd)
{
	struct qmp_client *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		close(fd);
		return err_set(ENOMEM, "out of memory");
	}
	c->srv = s;
	c->fd = fd;
	if ((ret = qmp_wire_in_init(&c->in)) < 0 ||
	    (ret = loop_add(s->loop, &c->w, fd, EPOLLIN, client_cb, c)) < 0) {
		close(fd);
		client_free(c);
		return ret;
	}
	c->next = s->clients;
	s->clients = c;
	s->nclients++;
	s->busy++;
	client_greet(c);
	s->busy--;
	server_reap(s);
	return 0;
}

static void listen_cb(struct loop_watch *w, uint32_t events)
{
	struct qmp_server *s = w->opaque;
	int fd;

	while ((fd = unixsock_accept(&s->sock)) >= 0) {
		if (s->nclients >= QMP_CLIENTS_MAX)
			close(fd); /* a full house: the client sees the connection closed */
		else
			qmp_server_add_client(s, fd);
	}
}

/* ---- the server ---- */

int qmp_server_new(struct loop *loop, const struct qmp_version *v, const struct qmp_cmd *cmds,
		   size_t ncmds, void *ctx, struct qmp_server **out)
{
	struct qmp_server *s = calloc(1, sizeof(*s));

	if (!s)
		return err_set(ENOMEM, "out of memory");
	s->loop = loop;
	s->version = *v;
	s->cmds = cmds;
	s->ncmds = ncmds;
	s->ctx = ctx;
	s->sock.fd = -1;
	*out = s;
	return 0;
}

int qmp_server_listen(struct qmp_server *s, const char *path)
{
	int ret;

	if ((ret = unixsock_listen(&s->sock, path, "--qmp")) < 0)
		return ret;
	if ((ret = loop_add(s->loop, &s->listen_w, s->sock.fd, EPOLLIN, listen_cb, s)) < 0)
		unixsock_close(&s->sock);
	return ret;
}

void qmp_server_event(struct qmp_server *s, const char *name, struct json_object *data)
{
	struct json_object *ts = json_object_new_object();
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	json_object_object_add(ts, "seconds", json_object_new_int64(now.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(now.tv_nsec / 1000));
	s->busy++;
	for (struct qmp_client *c = s->clients; c; c = c->next) {
		struct json_object *msg;
		if (c->dead || !c->negotiated)
			continue;
		msg = json_object_new_object();
		json_object_object_add(msg, "timestamp", json_object_get(ts));
		json_object_object_add(msg, "event", json_object_new_string(name));
		if (data)
			json_object_object_add(msg, "data", json_object_get(data));
		client_send(c, msg);
	}
	s->busy--;
	json_object_put(ts);
	json_object_put(data);
	server_reap(s);
}

unsigned qmp_server_clients(const struct qmp_server *s)
{
	return s->nclients;
}

const struct qmp_version *qmp_server_version(const struct qmp_server *s)
{
	return &s->version;
}

const struct qmp_cmd *qmp_server_commands(const struct qmp_server *s, size_t *n)
{
	*n = s->ncmds;
	return s->cmds;
}

void qmp_server_free(struct qmp_server *s)
{
	if (!s)
		return;
	for (struct qmp_client *c = s->clients; c; c = c->next)
		if (!c->dead) {
			client_flush(c); /* the last events, as far as the socket takes them */
			client_drop(c);
		}
	server_reap(s);
	loop_del(&s->listen_w);
	unixsock_close(&s->sock);
	free(s);
}
