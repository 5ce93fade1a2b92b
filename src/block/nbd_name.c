/*
 * Names of NBD exports, as qemu-img and libnbd take them:
 *   nbd://HOST[:PORT][/EXPORT]   nbd+tcp://...   nbd+unix:///[EXPORT]?socket=PATH
 *   nbds://... nbds+unix://...   (TLS; ?tls-certificates=DIR as libnbd reads it)
 *   nbd:HOST:PORT[:exportname=EXPORT]   nbd:unix:PATH[:exportname=EXPORT]   (QEMU's old syntax)
 *   json:{"driver":"nbd","server":{"type":"unix","path":...},"export":...}, also flattened
 *   ("server.type") and under a raw driver's "file", as QEMU writes backing names.
 */
#include "block/nbd.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBD_DEFAULT_PORT "10809"

static const struct {
	const char *prefix;
	bool is_unix, tls;
} schemes[] = {
    {"nbd://", false, false}, {"nbd+tcp://", false, false}, {"nbd+unix://", true, false},
    {"nbds://", false, true}, {"nbds+tcp://", false, true}, {"nbds+unix://", true, true},
};

void nbd_target_free(struct nbd_target *t)
{
	free(t->host);
	free(t->port);
	free(t->path);
	free(t->export);
	free(t->tls_dir);
	free(t->canonical);
	memset(t, 0, sizeof(*t));
}

static int hexval(char c)
{
	return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

/* %XX escapes, in place; false for a bad or NUL escape. */
static bool pct_decode(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
			return false;
		int v = hexval(p[1]) * 16 + hexval(p[2]);
		if (!v)
			return false;
		*o++ = (char)v;
		p += 2;
	}
	*o = '\0';
	return true;
}

/* HOST[:PORT] or [V6]:PORT into t->host, t->port. */
static int split_host(const char *name, const char *s, size_t len, struct nbd_target *t)
{
	const char *colon;

	if (len && s[0] == '[') {
		const char *end = memchr(s, ']', len);
		if (!end)
			return err_set(EINVAL, "%s: unterminated [ in the host", name);
		t->host = strndup(s + 1, (size_t)(end - s - 1));
		colon = end + 1 < s + len && end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = memrchr(s, ':', len);
		t->host = strndup(s, colon ? (size_t)(colon - s) : len);
	}
	t->port =
	    colon ? strndup(colon + 1, (size_t)(s + len - colon - 1)) : strdup(NBD_DEFAULT_PORT);
	if (!t->host || !t->port)
		return err_set(ENOMEM, "%s: out of memory", name);
	if (!*t->host)
		return err_set(EINVAL, "%s: no host in the NBD name", name);
	if (!*t->port || strspn(t->port, "0123456789") != strlen(t->port))
		return err_set(EINVAL, "%s: port '%s' is not a number", name, t->port);
	return 0;
}

static int parse_query(const char *name, char *q, struct nbd_target *t)
{
	for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv;
	     kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '=');
		char **dst = NULL;
		if (v)
			*v++ = '\0';
		if (t->is_unix && !strcmp(kv, "socket"))
			dst = &t->path;
		else if (t->tls && !strcmp(kv, "tls-certificates"))
			dst = &t->tls_dir;
		if (!dst || !v || *dst)
			return err_set(EINVAL, "%s: unexpected parameter '%s' in the NBD URI", name,
				       kv);
		if (!pct_decode(v) || !(*dst = strdup(v)))
			return err_set(EINVAL, "%s: bad %%-escape in '%s'", name, kv);
	}
	return 0;
}

static int parse_uri(const char *name, const char *rest, struct nbd_target *t)
{
	size_t alen = strcspn(rest, "/?#");
	const char *p = rest + alen;
	int ret = 0;

	if (t->is_unix && alen)
		return err_set(EINVAL,
			       "%s: an nbd+unix URI names no host (nbd+unix:///EXPORT?"
			       "socket=PATH)",
			       name);
	if (!t->is_unix && (ret = split_host(name, rest, alen, t)) < 0)
		return ret;
	size_t plen = strcspn(p, "?#");
	t->export = strndup(plen ? p + 1 : p, plen ? plen - 1 : 0);
	if (!t->export || !pct_decode(t->export))
		return err_set(EINVAL, "%s: bad export name", name);
	p += plen;
	if (*p == '?') {
		char *q = strndup(p + 1, strcspn(p + 1, "#"));
		ret = q ? parse_query(name, q, t) : err_set(ENOMEM, "%s: out of memory", name);
		free(q);
	}
	if (ret == 0 && t->is_unix && !t->path)
		ret = err_set(EINVAL, "%s: an nbd+unix URI needs ?socket=PATH", name);
	return ret;
}

/* nbd:unix:PATH[:exportname=E] or nbd:HOST:PORT[:exportname=E] */
static int parse_legacy(const char *name, struct nbd_target *t)
{
	const char *body = name + 4, *ex = strstr(body, ":exportname=");
	size_t len = ex ? (size_t)(ex - body) : strlen(body);

	t->export = strdup(ex ? ex + strlen(":exportname=") : "");
	if (!t->export)
		return err_set(ENOMEM, "%s: out of memory", name);
	if (!strncmp(body, "unix:", 5)) {
		t->is_unix = true;
		t->path = strndup(body + 5, len - 5);
		if (!t->path || !*t->path)
			return err_set(EINVAL, "%s: no socket path", name);
		return 0;
	}
	return split_host(name, body, len, t);
}

/* json: names, flattened to dotted keys ("file.server.path") so both spellings read alike. */
struct flat {
	char **key, **val;
	size_t n;
};

static void flatten(struct json_object *o, const char *prefix, struct flat *f)
{
	json_object_object_foreach(o, k, v)
	{
		char *key;
		if (asprintf(&key, "%s%s%s", prefix, *prefix ? "." : "", k) < 0)
			continue;
		if (json_object_is_type(v, json_type_object)) {
			flatten(v, key, f);
			free(key);
			continue;
		}
		char **nk = realloc(f->key, (f->n + 1) * sizeof(char *));
		char **nv = nk ? realloc(f->val, (f->n + 1) * sizeof(char *)) : NULL;
		if (nk)
			f->key = nk;
		if (!nv || !v) {
			free(key);
			continue;
		}
		f->val = nv;
		f->key[f->n] = key;
		f->val[f->n++] = strdup(json_object_get_string(v));
	}
}

static const char *flat_get(const struct flat *f, const char *pre, const char *key)
{
	char full[256];

	snprintf(full, sizeof(full), "%s%s", pre, key);
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->key[i], full))
			return f->val[i];
	return NULL;
}

static void flat_free(struct flat *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->key[i]);
		free(f->val[i]);
	}
	free(f->key);
	free(f->val);
}

/* The key prefix under which a json: name describes an NBD node, or NULL. */
static const char *nbd_prefix(const struct flat *f)
{
	const char *drv = flat_get(f, "", "driver"), *fdrv = flat_get(f, "", "file.driver");

	if (drv && !strcmp(drv, "nbd"))
		return "";
	if ((!drv || !strcmp(drv, "raw")) && fdrv && !strcmp(fdrv, "nbd"))
		return "file.";
	return NULL;
}

static bool load_json(const char *name, struct flat *f)
{
	struct json_object *o = json_tokener_parse(name + 5);
	bool ok = o && json_object_is_type(o, json_type_object);

	if (ok)
		flatten(o, "", f);
	json_object_put(o);
	return ok;
}

static int json_server(const char *name, const struct flat *f, const char *pre,
		       struct nbd_target *t)
{
	const char *type = flat_get(f, pre, "server.type");
	const char *path = flat_get(f, pre, type ? "server.path" : "path");
	const char *host = flat_get(f, pre, type ? "server.host" : "host");
	const char *port = flat_get(f, pre, type ? "server.port" : "port");

	if (type && strcmp(type, "unix") && strcmp(type, "inet"))
		return err_set(EINVAL, "%s: NBD server type '%s' is not supported", name, type);
	t->is_unix = type ? !strcmp(type, "unix") : path != NULL;
	if (t->is_unix) {
		if (!path || !(t->path = strdup(path)))
			return err_set(EINVAL, "%s: no socket path for the NBD server", name);
		return 0;
	}
	if (!host)
		return err_set(EINVAL, "%s: no host for the NBD server", name);
	t->host = strdup(host);
	t->port = strdup(port ? port : NBD_DEFAULT_PORT);
	return t->host && t->port ? 0 : err_set(ENOMEM, "%s: out of memory", name);
}

static int parse_json(const char *name, struct nbd_target *t)
{
	struct flat f = {0};
	int ret;

	if (!load_json(name, &f)) {
		flat_free(&f);
		return err_set(EINVAL, "%s: not a valid json: name", name);
	}
	const char *pre = nbd_prefix(&f);
	if (!pre)
		ret = err_set(ENOTSUP, "%s: json: names are supported for NBD exports only", name);
	else if (flat_get(&f, pre, "tls-creds"))
		ret = err_set(ENOTSUP,
			      "%s: tls-creds names a QEMU object; use nbds://HOST/EXPORT?"
			      "tls-certificates=DIR",
			      name);
	else if (flat_get(&f, pre, "x-dirty-bitmap") ||
		 (*pre && (flat_get(&f, "", "offset") || flat_get(&f, "", "size"))))
		ret = err_set(ENOTSUP, "%s: options of this json: name are not supported", name);
	else
		ret = json_server(name, &f, pre, t);
	if (ret == 0) {
		const char *ex = flat_get(&f, pre, "export");
		t->export = strdup(ex ? ex : "");
		if (!t->export)
			ret = err_set(ENOMEM, "%s: out of memory", name);
	}
	flat_free(&f);
	return ret;
}

bool bdev_nbd_is_name(const char *name)
{
	if (!strncmp(name, "nbd:", 4))
		return true;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(name, schemes[i].prefix, strlen(schemes[i].prefix)))
			return true;
	if (strncmp(name, "json:", 5))
		return false;
	struct flat f = {0};
	bool nbd = load_json(name, &f) && nbd_prefix(&f);
	flat_free(&f);
	return nbd;
}

static int make_canonical(const char *name, struct nbd_target *t)
{
	int n;

	if (t->tls) /* QEMU has no name for TLS exports: keep the user's */
		n = (t->canonical = strdup(name)) ? 0 : -1;
	else if (t->is_unix)
		n = *t->export
			? asprintf(&t->canonical, "nbd+unix:///%s?socket=%s", t->export, t->path)
			: asprintf(&t->canonical, "nbd+unix://?socket=%s", t->path);
	else
		n = *t->export
			? asprintf(&t->canonical, "nbd://%s:%s/%s", t->host, t->port, t->export)
			: asprintf(&t->canonical, "nbd://%s:%s", t->host, t->port);
	if (n < 0) {
		t->canonical = NULL;
		return err_set(ENOMEM, "%s: out of memory", name);
	}
	return 0;
}

int nbd_target_parse(const char *name, struct nbd_target *t)
{
	bool uri = false;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !uri; i++) {
		size_t l = strlen(schemes[i].prefix);
		if (strncmp(name, schemes[i].prefix, l))
			continue;
		uri = true;
		t->is_unix = schemes[i].is_unix;
		t->tls = schemes[i].tls;
		ret = parse_uri(name, name + l, t);
	}
	if (!uri) {
		if (!strncmp(name, "json:", 5))
			ret = parse_json(name, t);
		else if (!strncmp(name, "nbd:", 4))
			ret = parse_legacy(name, t);
		else
			ret = err_set(EINVAL, "%s: not an NBD name", name);
	}
	if (ret == 0 && strlen(t->export) > 4096)
		ret = err_set(EINVAL, "%s: export name longer than 4096 bytes", name);
	if (ret == 0)
		ret = make_canonical(name, t);
	if (ret < 0)
		nbd_target_free(t);
	return ret;
}
