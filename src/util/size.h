/* Sizes parsed and printed the way qemu-img does. */
#ifndef LIGERO_UTIL_SIZE_H
#define LIGERO_UTIL_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parse "4096", "64k", "10G", "1.5T" (binary units, case-insensitive, optional "B"/"iB").
 * Returns 0, or -EINVAL for malformed text and -ERANGE for values past 2^63. */
int size_parse(const char *s, uint64_t *out);

/* Format like qemu's size_to_str(): "10 GiB", "196 KiB", "512 B". Returns buf. */
char *size_human(uint64_t v, char *buf, size_t len);

#endif
