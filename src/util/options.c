#include "util/options.h"

#include <string.h>

bool opts_next(char **s, char **key, char **val)
{
	char *p = *s, *comma;

	if (!p || !*p)
		return false;
	comma = strchr(p, ',');
	if (comma) {
		*comma = '\0';
		*s = comma + 1;
	} else {
		*s = p + strlen(p);
	}
	*key = p;
	*val = strchr(p, '=');
	if (*val)
		*(*val)++ = '\0';
	return true;
}
