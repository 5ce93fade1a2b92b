/* QMP's wire format; see qmp_wire.h. The splitter looks only at the bytes that delimit texts
 * (quotes, backslashes in strings, braces and brackets); json-c parses each text whole. Its
 * memory is one buffer of QMP_TEXT_MAX bytes per client, whatever the input: a text over a
 * limit is answered once and its remaining bytes are counted, not stored. */
#include "vmm/qmp_wire.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qmp_wire_in_init(struct qmp_wire_in *in)
{
	memset(in, 0, sizeof(*in));
	in->buf = malloc(QMP_TEXT_MAX + 1);
	return in->buf ? 0 : err_set(ENOMEM, "out of memory");
}

void qmp_wire_in_free(struct qmp_wire_in *in)
{
	free(in->buf);
	in->buf = NULL;
}

static void wire_reset(struct qmp_wire_in *in)
{
	in->len = 0;
	in->depth = 0;
	in->quote = 0;
	in->escape = in->scalar = in->skipping = false;
}

/* A text is over a limit: answer it now and drop the rest of it as it comes. */
static int wire_overflow(struct qmp_wire_in *in, const char *why, qmp_wire_fn *fn, void *opaque)
{
	in->skipping = true;
	in->len = 0;
	return fn(opaque, NULL, 0, why);
}

static int wire_keep(struct qmp_wire_in *in, uint8_t c, qmp_wire_fn *fn, void *opaque)
{
	if (in->skipping)
		return 0;
	if (in->len == QMP_TEXT_MAX)
		return wire_overflow(in, "JSON token size limit exceeded", fn, opaque);
	in->buf[in->len++] = (char)c;
	return 0;
}

/* The text is complete: hand it over (unless it was being skipped) and start afresh. */
static int wire_finish(struct qmp_wire_in *in, qmp_wire_fn *fn, void *opaque)
{
	bool skipped = in->skipping;
	size_t len = in->len;

	wire_reset(in);
	if (skipped)
		return 0;
	in->buf[len] = '\0';
	return fn(opaque, in->buf, len, NULL);
}

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Where an unquoted top-level scalar (42, true, a stray word) ends. */
static bool ends_scalar(uint8_t c)
{
	return is_space(c) || c < 0x20 || strchr("{}[],:\"'", c);
}

/* A byte between texts. */
static int wire_top(struct qmp_wire_in *in, uint8_t c, qmp_wire_fn *fn, void *opaque)
{
	char msg[64];

	if (is_space(c))
		return 0;
	if (c == '}' || c == ']' || c == ',' || c == ':')
		return fn(opaque, NULL, 0, "JSON parse error, expecting value");
	if (c < 0x20) {
		snprintf(msg, sizeof(msg), "JSON parse error, stray byte 0x%02x", c);
		return fn(opaque, NULL, 0, msg);
	}
	if (c == '{' || c == '[')
		in->depth = 1;
	else if (c == '"' || c == '\'')
		in->scalar = true, in->quote = (char)c;
	else
		in->scalar = true;
	return wire_keep(in, c, fn, opaque);
}

/* A byte inside a text or a top-level scalar. */
static int wire_inside(struct qmp_wire_in *in, uint8_t c, qmp_wire_fn *fn, void *opaque)
{
	int ret;

	if (in->quote) {
		if ((ret = wire_keep(in, c, fn, opaque)))
			return ret;
		if (in->escape)
			in->escape = false;
		else if (c == '\\')
			in->escape = true;
		else if (c == (uint8_t)in->quote) {
			in->quote = 0;
			if (in->scalar)
				return wire_finish(in, fn, opaque);
		}
		return 0;
	}
	if (in->scalar) {
		if (!ends_scalar(c))
			return wire_keep(in, c, fn, opaque);
		if ((ret = wire_finish(in, fn, opaque)))
			return ret;
		return wire_top(in, c, fn, opaque); /* the delimiter belongs to what follows */
	}
	if ((ret = wire_keep(in, c, fn, opaque)))
		return ret;
	if (c == '"' || c == '\'') {
		in->quote = (char)c;
	} else if (c == '{' || c == '[') {
		if (++in->depth > QMP_DEPTH_MAX && !in->skipping)
			return wire_overflow(in, "JSON nesting depth limit exceeded", fn, opaque);
	} else if (c == '}' || c == ']') {
		if (--in->depth == 0)
			return wire_finish(in, fn, opaque);
	}
	return 0;
}

int qmp_wire_feed(struct qmp_wire_in *in, const uint8_t *p, size_t n, qmp_wire_fn *fn, void *opaque)
{
	char msg[64];
	int ret;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == 0xfe || c == 0xff) {
			/* Never valid UTF-8: QEMU resets its parser on them (a client's way back
			 * to a known state), and so do we. */
			wire_reset(in);
			snprintf(msg, sizeof(msg), "JSON parse error, stray byte 0x%02x", c);
			ret = fn(opaque, NULL, 0, msg);
		} else if (in->depth || in->scalar || in->quote) {
			ret = wire_inside(in, c, fn, opaque);
		} else {
			ret = wire_top(in, c, fn, opaque);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- output ---- */

void qmp_buf_put(struct qmp_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_s(struct qmp_buf *b, const char *s)
{
	qmp_buf_put(b, s, strlen(s));
}

/* One UTF-8 sequence at s (n bytes left): its code point and length, or U+FFFD and 1 for
 * anything invalid (overlong forms, surrogates, beyond U+10FFFF, cut short). */
static unsigned utf8_next(const uint8_t *s, size_t n, unsigned *len)
{
	unsigned cp, need, min;

	*len = 1;
	if (s[0] < 0x80)
		return s[0];
	if ((s[0] & 0xe0) == 0xc0)
		cp = s[0] & 0x1f, need = 1, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		cp = s[0] & 0x0f, need = 2, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		cp = s[0] & 0x07, need = 3, min = 0x10000;
	else
		return 0xfffd;
	if (need >= n)
		return 0xfffd;
	for (unsigned i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0xfffd;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0xfffd;
	*len = need + 1;
	return cp;
}

/* A string as QEMU's JSON writer prints it: printable ASCII as is, the short escapes, every
 * other code point as \uXXXX (upper case; a surrogate pair above U+FFFF). */
static void put_string(struct qmp_buf *b, const char *str, size_t n)
{
	const uint8_t *s = (const uint8_t *)str;
	char esc[16];

	put_s(b, "\"");
	for (size_t i = 0; i < n;) {
		unsigned len, cp = utf8_next(s + i, n - i, &len);
		i += len;
		switch (cp) {
		case '"':
			put_s(b, "\\\"");
			continue;
		case '\\':
			put_s(b, "\\\\");
			continue;
		case '\b':
			put_s(b, "\\b");
			continue;
		case '\f':
			put_s(b, "\\f");
			continue;
		case '\n':
			put_s(b, "\\n");
			continue;
		case '\r':
			put_s(b, "\\r");
			continue;
		case '\t':
			put_s(b, "\\t");
			continue;
		}
		if (cp >= 0x20 && cp <= 0x7e) {
			esc[0] = (char)cp;
			qmp_buf_put(b, esc, 1);
		} else if (cp > 0xffff) {
			cp -= 0x10000;
			snprintf(esc, sizeof(esc), "\\u%04X\\u%04X", 0xd800 | (cp >> 10),
				 0xdc00 | (cp & 0x3ff));
			put_s(b, esc);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04X", cp);
			put_s(b, esc);
		}
	}
	put_s(b, "\"");
}

static void put_value(struct qmp_buf *b, struct json_object *o)
{
	bool first = true;

	switch (json_object_get_type(o)) {
	case json_type_object:
		put_s(b, "{");
		json_object_object_foreach(o, key, val)
		{
			put_s(b, first ? "" : ", ");
			first = false;
			put_string(b, key, strlen(key));
			put_s(b, ": ");
			put_value(b, val);
		}
		put_s(b, "}");
		return;
	case json_type_array:
		put_s(b, "[");
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			put_s(b, i ? ", " : "");
			put_value(b, json_object_array_get_idx(o, i));
		}
		put_s(b, "]");
		return;
	case json_type_string:
		put_string(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		return;
	case json_type_null:
		put_s(b, "null");
		return;
	default: /* numbers and booleans, as json-c prints them */
		put_s(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	}
}

void qmp_buf_put_json(struct qmp_buf *b, struct json_object *o)
{
	put_value(b, o);
	put_s(b, "\r\n");
}

void qmp_buf_free(struct qmp_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
