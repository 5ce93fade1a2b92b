/* JSON strings written the way QEMU writes them, shared by the verbs that print JSON by hand. */
#include "cli/cli.h"

#include <stdio.h>

/*
 * Decode one sequence of QEMU's "modified UTF-8" at p, the way its JSON writer does: returns the
 * code point, or -1 for an invalid sequence (overlong forms except \xC0\x80 for U+0000,
 * surrogates, non-characters, stray continuation bytes), and sets *len to the bytes consumed: a
 * whole sequence, or up to the first byte that breaks it.
 */
static int utf8_next(const unsigned char *p, int *len)
{
	static const int min_cp[5] = {0x80, 0x800, 0x10000, 0x200000, 0x4000000};
	unsigned byte = p[0], mask;
	int n = 0, cp;

	*len = 1;
	if (byte < 0x80)
		return (int)byte;
	if (byte >= 0xfe || !(byte & 0x40))
		return -1;
	for (mask = 0x80; byte & mask; mask >>= 1)
		n++;
	cp = (int)(byte & (mask - 1));
	for (int i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1; /* the breaking byte starts the next sequence */
		cp = (cp << 6) | (p[i] & 0x3f);
		*len = i + 1;
	}
	if (cp > 0x10ffff || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp < min_cp[n - 2] && !(cp == 0 && n == 2)))
		return -1;
	return cp;
}

/* A JSON string as QEMU writes it: ASCII only, \uXXXX (upper-case) for control characters and
 * everything past 0x7e, "/" left alone. */
void cli_json_string(FILE *f, const char *str)
{
	const unsigned char *p = (const unsigned char *)str;
	int len;

	fputc('"', f);
	for (; *p; p += len) {
		int cp = utf8_next(p, &len);
		switch (cp) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (cp < 0)
				cp = 0xfffd;
			if (cp > 0xffff)
				fprintf(f, "\\u%04X\\u%04X", 0xd800 + ((cp - 0x10000) >> 10),
					0xdc00 + ((cp - 0x10000) & 0x3ff));
			else if (cp < 0x20 || cp >= 0x7f)
				fprintf(f, "\\u%04X", cp);
			else
				fputc(cp, f);
		}
	}
	fputc('"', f);
}
