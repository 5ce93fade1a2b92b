/* A list of byte ranges, kept sorted and merged once finished. */
#ifndef LIGERO_UTIL_RANGES_H
#define LIGERO_UTIL_RANGES_H

#include <stddef.h>
#include <stdint.h>

struct range {
	uint64_t off, len;
};

struct range_list {
	struct range *r;
	size_t n, cap;
};

/* Append [off, off+len); empty ranges are ignored. Returns 0 or -ENOMEM. */
int ranges_add(struct range_list *l, uint64_t off, uint64_t len);
/* Sort by offset and merge overlapping or touching ranges. */
void ranges_normalize(struct range_list *l);
/* Total bytes covered (after normalize). */
uint64_t ranges_total(const struct range_list *l);
void ranges_free(struct range_list *l);

#endif
