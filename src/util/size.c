#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int size_shift(char c)
{
	switch (tolower((unsigned char)c)) {
	case 'b':
		return 0;
	case 'k':
		return 10;
	case 'm':
		return 20;
	case 'g':
		return 30;
	case 't':
		return 40;
	case 'p':
		return 50;
	case 'e':
		return 60;
	default:
		return -1;
	}
}

int size_parse(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long whole;
	double frac = 0;
	int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	whole = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end == '.') {
		char *fend;
		frac = strtod(end, &fend);
		if (fend == end + 1)
			return -EINVAL;
		end = fend;
	}
	if (*end) {
		shift = size_shift(*end);
		if (shift < 0)
			return -EINVAL;
		end++;
		if (shift && (*end == 'i' || *end == 'I'))
			end++;
		if (shift && (*end == 'b' || *end == 'B'))
			end++;
		if (*end)
			return -EINVAL;
	}
	if (frac != 0 && shift == 0)
		return -EINVAL;
	if (shift && whole > (UINT64_MAX >> 1) >> shift)
		return -ERANGE;
	uint64_t v = (uint64_t)whole << shift;
	v += (uint64_t)(frac * (double)(1ULL << shift));
	if (v > INT64_MAX)
		return -ERANGE;
	*out = v;
	return 0;
}

char *size_human(uint64_t v, char *buf, size_t len)
{
	static const char *const suffixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
	int exp;

	/* Same rounding as qemu: pick the unit so the value shows with up to three digits. */
	frexp((double)v / (1000.0 / 1024.0), &exp);
	int i = (exp - 1) / 10;
	if (i < 0)
		i = 0;
	if (i > 6)
		i = 6;
	snprintf(buf, len, "%0.3g %sB", (double)v / (double)(1ULL << (i * 10)), suffixes[i]);
	return buf;
}
