/*
 * VM definitions and their JSON form. The file is for people as much as for ligero: pretty
 * printed, sizes as "900M", keys in a fixed order, and a hand edit that breaks it is reported
 * with the file and line, the way a compiler reports a syntax error.
 */
#include "host/vmdef.h"
#include "block/block.h"
#include "util/error.h"
#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void vmdef_free(struct vmdef *d)
{
	for (size_t i = 0; i < d->ndisks; i++) {
		free(d->disks[i].path);
		free(d->disks[i].format);
		free(d->disks[i].cache);
		free(d->disks[i].serial);
	}
	for (size_t i = 0; i < d->nnets; i++) {
		free(d->nets[i].bridge);
		free(d->nets[i].tap);
	}
	free(d->disks);
	free(d->nets);
	free(d->kernel);
	free(d->initrd);
	free(d->cmdline);
	memset(d, 0, sizeof(*d));
}

int vmdef_name_check(const char *name)
{
	size_t len = strlen(name);

	if (!len)
		return err_set(EINVAL, "a VM name cannot be empty");
	if (len > VMDEF_NAME_MAX)
		return err_set(EINVAL, "VM name '%.20s...' is longer than %d bytes", name,
			       VMDEF_NAME_MAX);
	for (const char *p = name; *p; p++)
		if (!isascii((unsigned char)*p) ||
		    !(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
			return err_set(EINVAL,
				       "VM name '%s' has the character '%c' (0x%02x): use letters, "
				       "digits, '-', '_' and '.'",
				       name, isprint((unsigned char)*p) ? *p : '?',
				       (unsigned char)*p);
	/* Files are named after VMs: no hidden files, and nothing an option parser takes for
	 * an option. */
	if (name[0] == '.' || name[0] == '-')
		return err_set(EINVAL, "VM name '%s' cannot start with '%c'", name, name[0]);
	return 0;
}

static void random_bytes(uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);
		if (n > 0)
			got += (size_t)n;
		else if (n < 0 && errno != EINTR)
			break;
	}
	/* getrandom(2) only fails before the kernel's pool is ready (never, with flags 0, once
	 * it blocks) or on ancient kernels: fall back to the clock, which still gives distinct
	 * values to VMs made at different instants. */
	for (; got < len; got++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		buf[got] = (uint8_t)(ts.tv_nsec ^ (ts.tv_nsec >> 8) ^ got);
	}
}

void vmdef_random_mac(char mac[VMDEF_MAC_LEN + 1])
{
	uint8_t b[3];

	random_bytes(b, sizeof(b));
	snprintf(mac, VMDEF_MAC_LEN + 1, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
}

int vmdef_mac_parse(const char *s, char out[VMDEF_MAC_LEN + 1])
{
	unsigned m[6];
	int end = 0;

	if (strlen(s) != VMDEF_MAC_LEN ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5],
		   &end) != 6 ||
	    end != VMDEF_MAC_LEN)
		return err_set(EINVAL, "'%s' is not a MAC address (52:54:00:xx:xx:xx)", s);
	for (int i = 0; i < VMDEF_MAC_LEN; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return err_set(EINVAL, "'%s' is not a MAC address (52:54:00:xx:xx:xx)", s);
	if (m[0] & 1)
		return err_set(EINVAL, "MAC address %s is a multicast address", s);
	snprintf(out, VMDEF_MAC_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x", m[0] & 0xff, m[1] & 0xff,
		 m[2] & 0xff, m[3] & 0xff, m[4] & 0xff, m[5] & 0xff);
	return 0;
}

void vmdef_random_uuid(char uuid[37])
{
	uint8_t b[16];

	random_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(uuid, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

void vmdef_stamp(struct vmdef *d)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(d->created, sizeof(d->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *vmdef_size_str(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (v && !(v & 1023) && u < 5) {
		v >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
	return buf;
}

static bool uuid_ok(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-'
							    : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Interface names: what the kernel takes (IFNAMSIZ - 1 bytes), and nothing that would break the
 * VMM's key=value option list. */
static int ifname_check(const char *what, const char *v)
{
	if (!*v || strlen(v) > 15 || strpbrk(v, ",=/ \t\n:"))
		return err_set(EINVAL,
			       "net %s '%s' is not an interface name (1 to 15 bytes, no ',', "
			       "'=', '/', ':' or blanks)",
			       what, v);
	return 0;
}

static int disk_check(const struct vmdef_disk *k)
{
	int flags;

	/* A remote image (rbd:POOL/IMAGE:conf=F, a fleet member's) may hold '=', not ','. */
	bool remote = k->path && bdev_is_remote_name(k->path);

	if (!k->path || (k->path[0] != '/' && !remote))
		return err_set(EINVAL, "disk path '%s' is not absolute", k->path ? k->path : "");
	if (remote && strchr(k->path, ','))
		return err_set(EINVAL,
			       "disk '%s' has a ',', which the VMM's --disk option cannot carry",
			       k->path);
	if (!remote && strpbrk(k->path, ",="))
		return err_set(EINVAL,
			       "disk path '%s' has a ',' or '=', which the VMM's --disk option "
			       "cannot carry: rename the file or link it under another name",
			       k->path);
	if (!k->format || (strcmp(k->format, "raw") && strcmp(k->format, "qcow2")))
		return err_set(EINVAL, "disk %s: format must be raw or qcow2", k->path);
	if (k->cache && bdev_parse_cache_mode(k->cache, &flags) < 0)
		return err_prefix(-EINVAL, "disk %s: ", k->path);
	if (k->cache && strpbrk(k->cache, ",="))
		return err_set(EINVAL, "disk %s: bad cache mode", k->path);
	if (k->serial && (strlen(k->serial) > 20 || strpbrk(k->serial, ",=")))
		return err_set(EINVAL,
			       "disk %s: serial '%s' is longer than 20 bytes or has ',' or "
			       "'='",
			       k->path, k->serial);
	return 0;
}

int vmdef_validate(const struct vmdef *d)
{
	char mac[VMDEF_MAC_LEN + 1];
	int ret;

	if ((ret = vmdef_name_check(d->name)) < 0)
		return ret;
	if (d->memory < VMDEF_MIN_MEMORY || d->memory % 4096 || d->memory > (1ull << 46))
		return err_set(EINVAL, "memory must be a multiple of 4k from 32M to 64T");
	if (d->cpus < 1 || d->cpus > VMDEF_MAX_CPUS)
		return err_set(EINVAL, "cpus must be from 1 to %d", VMDEF_MAX_CPUS);
	if (!d->kernel && (d->initrd || d->cmdline))
		return err_set(EINVAL, "initrd and cmdline need a kernel (without one, the first "
				       "disk's own kernel boots with its own)");
	if (!d->kernel && !d->ndisks)
		return err_set(EINVAL, "a VM needs a kernel or a disk to boot from");
	if (d->kernel && d->kernel[0] != '/')
		return err_set(EINVAL, "kernel path '%s' is not absolute", d->kernel);
	if (d->initrd && d->initrd[0] != '/')
		return err_set(EINVAL, "initrd path '%s' is not absolute", d->initrd);
	for (size_t i = 0; i < d->ndisks; i++)
		if ((ret = disk_check(&d->disks[i])) < 0)
			return ret;
	for (size_t i = 0; i < d->nnets; i++) {
		const struct vmdef_net *n = &d->nets[i];
		if (!n->bridge && !n->tap)
			return err_set(EINVAL, "a net needs a bridge or a tap");
		if (n->bridge && (ret = ifname_check("bridge", n->bridge)) < 0)
			return ret;
		if (n->tap && (ret = ifname_check("tap", n->tap)) < 0)
			return ret;
		if ((ret = vmdef_mac_parse(n->mac, mac)) < 0)
			return ret;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(d->nets[j].mac, mac))
				return err_set(EINVAL, "MAC address %s is given twice", mac);
	}
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int vmdef_add_disk(struct vmdef *d, const struct vmdef_disk *disk)
{
	struct vmdef_disk *n = realloc(d->disks, (d->ndisks + 1) * sizeof(*n));

	if (!n)
		return err_set(ENOMEM, "out of memory");
	d->disks = n;
	n += d->ndisks;
	*n = (struct vmdef_disk){.readonly = disk->readonly};
	n->path = dup_or_null(disk->path);
	n->format = dup_or_null(disk->format);
	n->cache = dup_or_null(disk->cache);
	n->serial = dup_or_null(disk->serial);
	d->ndisks++;
	return 0;
}

int vmdef_add_net(struct vmdef *d, const struct vmdef_net *net)
{
	struct vmdef_net *n = realloc(d->nets, (d->nnets + 1) * sizeof(*n));

	if (!n)
		return err_set(ENOMEM, "out of memory");
	d->nets = n;
	n += d->nnets;
	*n = (struct vmdef_net){0};
	n->bridge = dup_or_null(net->bridge);
	n->tap = dup_or_null(net->tap);
	memcpy(n->mac, net->mac, sizeof(n->mac));
	d->nnets++;
	return 0;
}

/* ---- JSON out ---- */

static struct json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

struct json_object *vmdef_to_json(const struct vmdef *d)
{
	struct json_object *o = json_object_new_object(), *disks, *nets;
	char size[32];

	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "uuid", json_object_new_string(d->uuid));
	json_object_object_add(
	    o, "memory", json_object_new_string(vmdef_size_str(d->memory, size, sizeof(size))));
	json_object_object_add(o, "cpus", json_object_new_int((int)d->cpus));
	disks = json_object_new_array();
	for (size_t i = 0; i < d->ndisks; i++) {
		const struct vmdef_disk *k = &d->disks[i];
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "path", json_object_new_string(k->path));
		json_object_object_add(j, "format", json_object_new_string(k->format));
		json_object_object_add(j, "readonly", json_object_new_boolean(k->readonly));
		json_object_object_add(j, "cache", str_or_null(k->cache));
		json_object_object_add(j, "serial", str_or_null(k->serial));
		json_object_array_add(disks, j);
	}
	json_object_object_add(o, "disks", disks);
	json_object_object_add(o, "kernel", str_or_null(d->kernel));
	json_object_object_add(o, "initrd", str_or_null(d->initrd));
	json_object_object_add(o, "cmdline", str_or_null(d->cmdline));
	nets = json_object_new_array();
	for (size_t i = 0; i < d->nnets; i++) {
		const struct vmdef_net *n = &d->nets[i];
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "bridge", str_or_null(n->bridge));
		json_object_object_add(j, "tap", str_or_null(n->tap));
		json_object_object_add(j, "mac", json_object_new_string(n->mac));
		json_object_array_add(nets, j);
	}
	json_object_object_add(o, "net", nets);
	json_object_object_add(o, "balloon", json_object_new_boolean(d->balloon));
	json_object_object_add(o, "rng", json_object_new_boolean(d->rng));
	json_object_object_add(o, "autostart", json_object_new_boolean(d->autostart));
	json_object_object_add(o, "created", json_object_new_string(d->created));
	return o;
}

char *vmdef_to_text(const struct vmdef *d)
{
	struct json_object *o = vmdef_to_json(d);
	const char *s;
	char *out = NULL;

	if (!o)
		return NULL;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						  JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s && asprintf(&out, "%s\n", s) < 0)
		out = NULL;
	json_object_put(o);
	return out;
}

/* ---- JSON in ---- */

/* Line and column (1-based) of byte off in text. */
static void line_col(const char *text, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			++*line;
			*col = 1;
		} else {
			++*col;
		}
	}
}

/* The whole text as one JSON value, strictly (no trailing commas, no single quotes). */
static int parse_text(const char *text, size_t len, const char *file, struct json_object **out)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	enum json_tokener_error jerr;
	unsigned line, col;
	size_t end;

	if (!tok)
		return err_set(ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr == json_tokener_continue || (!o && jerr == json_tokener_success)) {
		line_col(text, len, &line, &col);
		return err_set(EINVAL, "%s:%u: invalid JSON (the file ends inside a value)", file,
			       line);
	}
	if (jerr != json_tokener_success) {
		/* The tokener stops on the byte that broke the grammar. */
		line_col(text, end < len ? end : len, &line, &col);
		return err_set(EINVAL, "%s:%u:%u: invalid JSON (%s)", file, line, col,
			       json_tokener_error_desc(jerr));
	}
	while (end < len && isspace((unsigned char)text[end]))
		end++;
	if (end < len) {
		json_object_put(o);
		line_col(text, end, &line, &col);
		return err_set(EINVAL, "%s:%u:%u: invalid JSON (more text after the definition)",
			       file, line, col);
	}
	*out = o;
	return 0;
}

static int bad(const char *file, const char *key, const char *what)
{
	return err_set(EINVAL, "%s: '%s' must be %s", file, key, what);
}

/* A string member, or NULL for a JSON null or a missing key when nullable. */
static int get_str(struct json_object *o, const char *key, const char *file, bool nullable,
		   const char **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v) {
		if (nullable)
			return 0;
		return err_set(EINVAL, "%s: '%s' is missing", file, key);
	}
	if (!json_object_is_type(v, json_type_string))
		return bad(file, key, nullable ? "a string or null" : "a string");
	*out = json_object_get_string(v);
	if (strlen(*out) != (size_t)json_object_get_string_len(v))
		return bad(file, key, "a string without NUL bytes");
	return 0;
}

static int get_bool(struct json_object *o, const char *key, const char *file, bool *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0; /* default: false */
	if (!json_object_is_type(v, json_type_boolean))
		return bad(file, key, "true or false");
	*out = json_object_get_boolean(v);
	return 0;
}

static int only_keys(struct json_object *o, const char *const *keys, const char *file,
		     const char *where)
{
	json_object_object_foreach(o, k, v)
	{
		size_t i;
		(void)v;
		for (i = 0; keys[i] && strcmp(keys[i], k); i++)
			;
		if (!keys[i])
			return err_set(EINVAL, "%s: unknown key '%s'%s", file, k, where);
	}
	return 0;
}

static int parse_memory(struct json_object *o, const char *file, uint64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, "memory", &v) || !v)
		return err_set(EINVAL, "%s: 'memory' is missing", file);
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0) {
		*out = (uint64_t)json_object_get_int64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string) &&
	    size_parse(json_object_get_string(v), out) == 0)
		return 0;
	return bad(file, "memory", "a size such as \"900M\" or a number of bytes");
}

static int parse_disk(struct json_object *j, const char *file, struct vmdef *d)
{
	static const char *const keys[] = {"path", "format", "readonly", "cache", "serial", NULL};
	struct vmdef_disk k = {0};
	const char *path, *format, *cache, *serial;
	int ret;

	if (!json_object_is_type(j, json_type_object))
		return bad(file, "disks", "a list of objects");
	if ((ret = only_keys(j, keys, file, " in a disk")) < 0 ||
	    (ret = get_str(j, "path", file, false, &path)) < 0 ||
	    (ret = get_str(j, "format", file, false, &format)) < 0 ||
	    (ret = get_str(j, "cache", file, true, &cache)) < 0 ||
	    (ret = get_str(j, "serial", file, true, &serial)) < 0 ||
	    (ret = get_bool(j, "readonly", file, &k.readonly)) < 0)
		return ret;
	k.path = (char *)path;
	k.format = (char *)format;
	k.cache = (char *)cache;
	k.serial = (char *)serial;
	return vmdef_add_disk(d, &k);
}

static int parse_net(struct json_object *j, const char *file, struct vmdef *d)
{
	static const char *const keys[] = {"bridge", "tap", "mac", NULL};
	struct vmdef_net n = {0};
	const char *bridge, *tap, *mac;
	int ret;

	if (!json_object_is_type(j, json_type_object))
		return bad(file, "net", "a list of objects");
	if ((ret = only_keys(j, keys, file, " in a net")) < 0 ||
	    (ret = get_str(j, "bridge", file, true, &bridge)) < 0 ||
	    (ret = get_str(j, "tap", file, true, &tap)) < 0 ||
	    (ret = get_str(j, "mac", file, false, &mac)) < 0)
		return ret;
	if (vmdef_mac_parse(mac, n.mac) < 0)
		return err_prefix(-EINVAL, "%s: ", file);
	n.bridge = (char *)bridge;
	n.tap = (char *)tap;
	return vmdef_add_net(d, &n);
}

static int parse_list(struct json_object *o, const char *key, const char *file, struct vmdef *d,
		      int (*one)(struct json_object *, const char *, struct vmdef *))
{
	struct json_object *v;
	int ret;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return bad(file, key, "a list");
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if ((ret = one(json_object_array_get_idx(v, i), file, d)) < 0)
			return ret;
	return 0;
}

static int copy_str(char *dst, size_t size, const char *src, const char *file, const char *key)
{
	if (strlen(src) >= size)
		return err_set(EINVAL, "%s: '%s' is too long", file, key);
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int parse_object(struct json_object *o, const char *file, struct vmdef *d)
{
	static const char *const keys[] = {"name",   "uuid",	  "memory",  "cpus", "disks",
					   "kernel", "initrd",	  "cmdline", "net",  "balloon",
					   "rng",    "autostart", "created", NULL};
	struct json_object *v;
	const char *name, *uuid, *kernel, *initrd, *cmdline, *created;
	int ret;

	if (!json_object_is_type(o, json_type_object))
		return err_set(EINVAL, "%s: a definition is a JSON object ({...})", file);
	if ((ret = only_keys(o, keys, file, "")) < 0 ||
	    (ret = get_str(o, "name", file, false, &name)) < 0 ||
	    (ret = get_str(o, "uuid", file, false, &uuid)) < 0 ||
	    (ret = get_str(o, "kernel", file, true, &kernel)) < 0 ||
	    (ret = get_str(o, "initrd", file, true, &initrd)) < 0 ||
	    (ret = get_str(o, "cmdline", file, true, &cmdline)) < 0 ||
	    (ret = get_str(o, "created", file, true, &created)) < 0)
		return ret;
	if (vmdef_name_check(name) < 0)
		return err_prefix(-EINVAL, "%s: ", file);
	if (!uuid_ok(uuid))
		return bad(file, "uuid", "a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
	if ((ret = copy_str(d->name, sizeof(d->name), name, file, "name")) < 0 ||
	    (ret = copy_str(d->uuid, sizeof(d->uuid), uuid, file, "uuid")) < 0 ||
	    (ret = copy_str(d->created, sizeof(d->created), created ? created : "", file,
			    "created")) < 0 ||
	    (ret = parse_memory(o, file, &d->memory)) < 0)
		return ret;
	if (!json_object_object_get_ex(o, "cpus", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 1 || json_object_get_int64(v) > VMDEF_MAX_CPUS)
		return bad(file, "cpus", "a number from 1 to 254");
	d->cpus = (unsigned)json_object_get_int64(v);
	d->kernel = dup_or_null(kernel);
	d->initrd = dup_or_null(initrd);
	d->cmdline = dup_or_null(cmdline);
	if ((ret = parse_list(o, "disks", file, d, parse_disk)) < 0 ||
	    (ret = parse_list(o, "net", file, d, parse_net)) < 0 ||
	    (ret = get_bool(o, "balloon", file, &d->balloon)) < 0 ||
	    (ret = get_bool(o, "rng", file, &d->rng)) < 0 ||
	    (ret = get_bool(o, "autostart", file, &d->autostart)) < 0)
		return ret;
	if ((ret = vmdef_validate(d)) < 0)
		return err_prefix(ret, "%s: ", file);
	return 0;
}

int vmdef_parse(const char *text, size_t len, const char *file, struct vmdef *out)
{
	struct json_object *o = NULL;
	struct vmdef d = {0};
	int ret;

	if (len > (1u << 20))
		return err_set(EFBIG, "%s: %zu bytes is too large for a definition", file, len);
	if ((ret = parse_text(text, len, file, &o)) < 0)
		return ret;
	ret = parse_object(o, file, &d);
	json_object_put(o);
	if (ret < 0) {
		vmdef_free(&d);
		return ret;
	}
	*out = d;
	return 0;
}
