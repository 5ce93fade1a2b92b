#include "util/ranges.h"

#include <errno.h>
#include <stdlib.h>

int ranges_add(struct range_list *l, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct range *r = realloc(l->r, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		l->r = r;
		l->cap = cap;
	}
	l->r[l->n].off = off;
	l->r[l->n].len = len;
	l->n++;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

void ranges_normalize(struct range_list *l)
{
	size_t w = 0;

	if (!l->n)
		return;
	qsort(l->r, l->n, sizeof(*l->r), range_cmp);
	for (size_t i = 1; i < l->n; i++) {
		struct range *cur = &l->r[w];
		uint64_t end = cur->off + cur->len;
		if (l->r[i].off <= end) {
			uint64_t e2 = l->r[i].off + l->r[i].len;
			if (e2 > end)
				cur->len = e2 - cur->off;
		} else {
			l->r[++w] = l->r[i];
		}
	}
	l->n = w + 1;
}

uint64_t ranges_total(const struct range_list *l)
{
	uint64_t t = 0;

	for (size_t i = 0; i < l->n; i++)
		t += l->r[i].len;
	return t;
}

void ranges_free(struct range_list *l)
{
	free(l->r);
	l->r = NULL;
	l->n = l->cap = 0;
}
