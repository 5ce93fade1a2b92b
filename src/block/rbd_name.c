/*
 * Names of RBD images, as qemu-img takes and writes them:
 *   rbd:POOL/[NAMESPACE/]IMAGE[@SNAP][:conf=FILE][:id=USER][:key=...][:OPTION=VALUE...]
 *     (a backslash escapes the next character, so values may hold ':', '@', '/', '=')
 *   json:{"driver":"rbd","pool":...,"image":...,"snapshot":...,"namespace":...,"conf":...,
 *         "user":...,"server":[{"host":...,"port":...}],"=keyvalue-pairs":"[\"k\",\"v\"]"}
 *     also under a raw driver's "file", and flattened ("file.pool"), as QEMU writes them.
 */
#include "block/rbd.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rbd_target_free(struct rbd_target *t)
{
	free(t->pool);
	free(t->ns);
	free(t->image);
	free(t->snap);
	free(t->conf);
	free(t->user);
	free(t->mon_host);
	for (size_t i = 0; i < t->nkv; i++) {
		free(t->keys[i]);
		free(t->vals[i]);
	}
	free(t->keys);
	free(t->vals);
	free(t->spec);
	memset(t, 0, sizeof(*t));
}

/* The first unescaped delim in s, or NULL. */
static char *find_unescaped(char *s, char delim)
{
	for (; *s; s++) {
		if (*s == '\\' && s[1])
			s++;
		else if (*s == delim)
			return s;
	}
	return NULL;
}

/* Cut s at its first unescaped delim: returns s, *rest is what follows (NULL: no delim). */
static char *cut(char *s, char delim, char **rest)
{
	char *d = find_unescaped(s, delim);

	*rest = d ? d + 1 : NULL;
	if (d)
		*d = '\0';
	return s;
}

static char *unescape(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		*o++ = *p;
	}
	*o = '\0';
	return s;
}

static int add_kv(const char *name, struct rbd_target *t, const char *k, const char *v)
{
	char **nk = realloc(t->keys, (t->nkv + 1) * sizeof(char *));
	if (nk)
		t->keys = nk;
	char **nv = nk ? realloc(t->vals, (t->nkv + 1) * sizeof(char *)) : NULL;
	if (nv)
		t->vals = nv;
	if (!nv)
		return err_set(ENOMEM, "%s: out of memory", name);
	t->keys[t->nkv] = strdup(k);
	t->vals[t->nkv] = strdup(v);
	t->nkv++;
	return t->keys[t->nkv - 1] && t->vals[t->nkv - 1]
		   ? 0
		   : err_set(ENOMEM, "%s: out of memory", name);
}

/* Set *dst to a copy of v once; a second value for the same key is an error. */
static int set_once(const char *name, const char *key, char **dst, const char *v)
{
	if (*dst)
		return err_set(EINVAL, "%s: option '%s' given twice", name, key);
	*dst = strdup(v);
	return *dst ? 0 : err_set(ENOMEM, "%s: out of memory", name);
}

static int parse_options(const char *name, char *p, struct rbd_target *t)
{
	while (p) {
		char *k = cut(p, '=', &p), *v;
		if (!p)
			return err_set(EINVAL, "%s: option '%s' has no value (KEY=VALUE)", name,
				       unescape(k));
		v = unescape(cut(p, ':', &p));
		unescape(k);
		int ret;
		if (!strcmp(k, "conf"))
			ret = set_once(name, k, &t->conf, v);
		else if (!strcmp(k, "id"))
			ret = set_once(name, k, &t->user, v);
		else if (!*k)
			ret = err_set(EINVAL, "%s: an option has no name", name);
		else
			ret = add_kv(name, t, k, v);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int parse_plain(const char *name, struct rbd_target *t)
{
	char *buf = strdup(name + 4), *p, *img;
	int ret = 0;

	if (!buf)
		return err_set(ENOMEM, "%s: out of memory", name);
	char *pool = cut(buf, '/', &p);
	if (!p) {
		ret = err_set(EINVAL, "%s: no pool in the RBD name (rbd:POOL/IMAGE)", name);
		goto out;
	}
	t->pool = strdup(unescape(pool));
	if (find_unescaped(p, '@') &&
	    (!find_unescaped(p, ':') || find_unescaped(p, '@') < find_unescaped(p, ':'))) {
		img = cut(p, '@', &p);
		t->snap = strdup(unescape(cut(p, ':', &p)));
		if (!t->snap) {
			ret = err_set(ENOMEM, "%s: out of memory", name);
			goto out;
		}
		if (!*t->snap) {
			ret = err_set(EINVAL, "%s: empty snapshot name after '@'", name);
			goto out;
		}
	} else {
		img = cut(p, ':', &p);
	}
	char *slash = find_unescaped(img, '/');
	if (slash) {
		*slash = '\0';
		t->ns = strdup(unescape(img));
		img = slash + 1;
	} else {
		t->ns = strdup("");
	}
	t->image = strdup(unescape(img));
	if (!t->pool || !t->ns || !t->image) {
		ret = err_set(ENOMEM, "%s: out of memory", name);
		goto out;
	}
	ret = parse_options(name, p, t);
out:
	free(buf);
	return ret;
}

/* Is o's "driver" the string want? */
static bool driver_is(struct json_object *o, const char *want)
{
	struct json_object *drv;

	return json_object_object_get_ex(o, "driver", &drv) &&
	       json_object_is_type(drv, json_type_string) &&
	       !strcmp(json_object_get_string(drv), want);
}

/* The object that describes the RBD node of a json: name: the top one or its "file". */
static struct json_object *rbd_node(struct json_object *o)
{
	struct json_object *file;

	if (!json_object_is_type(o, json_type_object))
		return NULL;
	if (driver_is(o, "rbd"))
		return o;
	if (json_object_object_get_ex(o, "file", &file) &&
	    (!json_object_object_get_ex(o, "driver", NULL) || driver_is(o, "raw")))
		return rbd_node(file);
	return NULL;
}

/* json: names may also be flattened ("file.driver": "rbd"): nest them back. */
static struct json_object *unflatten(struct json_object *o)
{
	struct json_object *out = json_object_new_object();

	json_object_object_foreach(o, k, v)
	{
		struct json_object *cur = out;
		char *key = strdup(k), *save = NULL;
		char *part = key ? strtok_r(key, ".", &save) : NULL;
		while (part) {
			char *next = strtok_r(NULL, ".", &save);
			struct json_object *child;
			if (!next) {
				json_object_object_add(cur, part, json_object_get(v));
				break;
			}
			if (!json_object_object_get_ex(cur, part, &child) ||
			    !json_object_is_type(child, json_type_object)) {
				child = json_object_new_object();
				json_object_object_add(cur, part, child);
			}
			cur = child;
			part = next;
		}
		free(key);
	}
	return out;
}

static const char *jstr(struct json_object *n, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(n, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

/* "server": [{"host": H, "port": P}, ...] (or flattened server.0.host) as a mon_host list. */
static int json_servers(const char *name, struct json_object *n, struct rbd_target *t)
{
	struct json_object *srv;
	char buf[4096] = "";
	size_t len = 0;

	if (!json_object_object_get_ex(n, "server", &srv))
		return 0;
	if (!json_object_is_type(srv, json_type_array) &&
	    !json_object_is_type(srv, json_type_object))
		return err_set(EINVAL, "%s: \"server\" is not a list of servers", name);
	size_t count = json_object_is_type(srv, json_type_array)
			   ? json_object_array_length(srv)
			   : (size_t)json_object_object_length(srv);
	for (size_t i = 0; i < count; i++) {
		struct json_object *e;
		char idx[24];
		snprintf(idx, sizeof(idx), "%zu", i);
		if (json_object_is_type(srv, json_type_array))
			e = json_object_array_get_idx(srv, i);
		else if (!json_object_object_get_ex(srv, idx, &e))
			e = NULL;
		bool obj = e && json_object_is_type(e, json_type_object);
		const char *h = obj ? jstr(e, "host") : NULL, *p = obj ? jstr(e, "port") : NULL;
		if (!h || !p)
			return err_set(EINVAL, "%s: server %zu needs a host and a port", name, i);
		int n2 = snprintf(buf + len, sizeof(buf) - len, "%s%s%s%s:%s", len ? ";" : "",
				  strchr(h, ':') ? "[" : "", h, strchr(h, ':') ? "]" : "", p);
		if (n2 < 0 || (size_t)n2 >= sizeof(buf) - len)
			return err_set(EINVAL, "%s: server list too long", name);
		len += (size_t)n2;
	}
	return len ? set_once(name, "server", &t->mon_host, buf) : 0;
}

/* "=keyvalue-pairs": a JSON list ["key1", "value1", ...] as a string. */
static int json_keyvalues(const char *name, struct json_object *n, struct rbd_target *t)
{
	const char *s = jstr(n, "=keyvalue-pairs");
	int ret = 0;

	if (!s)
		return 0;
	struct json_object *l = json_tokener_parse(s);
	if (!l || !json_object_is_type(l, json_type_array) || json_object_array_length(l) % 2)
		ret = err_set(EINVAL, "%s: =keyvalue-pairs is not a list of pairs", name);
	for (size_t i = 0; ret == 0 && i < json_object_array_length(l); i += 2) {
		struct json_object *k = json_object_array_get_idx(l, i);
		struct json_object *v = json_object_array_get_idx(l, i + 1);
		if (!json_object_is_type(k, json_type_string) ||
		    !json_object_is_type(v, json_type_string))
			ret = err_set(EINVAL, "%s: =keyvalue-pairs holds something not a string",
				      name);
		else
			ret = add_kv(name, t, json_object_get_string(k), json_object_get_string(v));
	}
	json_object_put(l);
	return ret;
}

static int parse_json(const char *name, struct rbd_target *t)
{
	struct json_object *top = json_tokener_parse(name + 5), *o = NULL, *n;
	int ret = 0;
	static const char *const unsupported[] = {"key-secret", "password-secret", "encrypt",
						  "auth-client-required"};

	if (top && json_object_is_type(top, json_type_object))
		o = unflatten(top);
	json_object_put(top);
	n = o ? rbd_node(o) : NULL;
	if (!n) {
		json_object_put(o);
		return err_set(EINVAL, "%s: not a json: name of an RBD image", name);
	}
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (json_object_object_get_ex(n, unsupported[i], NULL))
			ret = err_set(ENOTSUP,
				      "%s: '%s' names a QEMU object, which ligero does not have "
				      "(put the key in the Ceph keyring or conf file)",
				      name, unsupported[i]);
	const char *pool = jstr(n, "pool"), *image = jstr(n, "image");
	if (ret == 0 && (!pool || !image))
		ret = err_set(EINVAL, "%s: an RBD json: name needs \"pool\" and \"image\"", name);
	if (ret == 0) {
		const char *ns = jstr(n, "namespace"), *snap = jstr(n, "snapshot");
		t->pool = strdup(pool);
		t->image = strdup(image);
		t->ns = strdup(ns ? ns : "");
		t->snap = snap ? strdup(snap) : NULL;
		if (!t->pool || !t->image || !t->ns || (snap && !t->snap))
			ret = err_set(ENOMEM, "%s: out of memory", name);
	}
	if (ret == 0 && jstr(n, "conf"))
		ret = set_once(name, "conf", &t->conf, jstr(n, "conf"));
	if (ret == 0 && jstr(n, "user"))
		ret = set_once(name, "user", &t->user, jstr(n, "user"));
	if (ret == 0)
		ret = json_servers(name, n, t);
	if (ret == 0)
		ret = json_keyvalues(name, n, t);
	json_object_put(o);
	return ret;
}

bool bdev_rbd_is_name(const char *name)
{
	if (!strncmp(name, "rbd:", 4))
		return true;
	if (strncmp(name, "json:", 5))
		return false;
	struct json_object *top = json_tokener_parse(name + 5), *o = NULL;
	if (top && json_object_is_type(top, json_type_object))
		o = unflatten(top);
	bool rbd = o && rbd_node(o);
	json_object_put(top);
	json_object_put(o);
	return rbd;
}

int rbd_target_parse(const char *name, struct rbd_target *t)
{
	int ret;

	memset(t, 0, sizeof(*t));
	if (!strncmp(name, "rbd:", 4))
		ret = parse_plain(name, t);
	else if (!strncmp(name, "json:", 5))
		ret = parse_json(name, t);
	else
		ret = err_set(EINVAL, "%s: not an RBD name", name);
	if (ret == 0 && (!*t->pool || !*t->image))
		ret = err_set(EINVAL, "%s: empty %s name", name, *t->pool ? "image" : "pool");
	if (ret == 0 && strlen(t->image) > 4096)
		ret = err_set(EINVAL, "%s: image name too long", name);
	if (ret == 0 && asprintf(&t->spec, "%s/%s%s%s%s%s", t->pool, t->ns, *t->ns ? "/" : "",
				 t->image, t->snap ? "@" : "", t->snap ? t->snap : "") < 0) {
		t->spec = NULL;
		ret = err_set(ENOMEM, "%s: out of memory", name);
	}
	if (ret < 0)
		rbd_target_free(t);
	return ret;
}
