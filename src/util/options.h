/* key=value lists, as in `--disk FILE,format=qcow2,cache=none`. */
#ifndef LIGERO_UTIL_OPTIONS_H
#define LIGERO_UTIL_OPTIONS_H

#include <stdbool.h>

/* The next item of the comma-separated list *s, split in place: *key is the item, *val what
 * follows its first '=' (NULL for a bare word). Advances *s; false at the end of the list. */
bool opts_next(char **s, char **key, char **val);

#endif
