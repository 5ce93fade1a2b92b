/* Open addressing with linear probing: a table of at most 3/4 used slots (deleted ones
 * included), grown by doubling, so a probe sequence stays short. FNV-1a hashes the keys. */
#include "util/strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char gone_mark;
#define GONE (&gone_mark)

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static struct strmap_slot *probe(const struct strmap *m, const char *key, uint64_t h,
				 struct strmap_slot **free_slot)
{
	size_t mask = m->cap - 1;

	*free_slot = NULL;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct strmap_slot *s = &m->v[i];
		if (!s->key) {
			if (!*free_slot)
				*free_slot = s;
			return NULL;
		}
		if (s->key == GONE) {
			if (!*free_slot)
				*free_slot = s;
		} else if (s->hash == h && !strcmp(s->key, key)) {
			return s;
		}
	}
}

static int grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap : 16;

	while (m->n * 2 >= cap)
		cap *= 2;
	struct strmap_slot *v = calloc(cap, sizeof(*v)), *old = m->v;
	if (!v)
		return -ENOMEM;
	size_t ocap = m->cap;
	m->v = v;
	m->cap = cap;
	m->used = m->n;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].key || old[i].key == GONE)
			continue;
		for (size_t j = old[i].hash & (cap - 1);; j = (j + 1) & (cap - 1))
			if (!v[j].key) {
				v[j] = old[i];
				break;
			}
	}
	free(old);
	return 0;
}

struct strmap_slot *strmap_find(const struct strmap *m, const char *key)
{
	struct strmap_slot *f;

	return m->cap ? probe(m, key, hash_str(key), &f) : NULL;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_slot *s = strmap_find(m, key);

	return s ? s->val : NULL;
}

int strmap_put(struct strmap *m, const char *key, void *val)
{
	uint64_t h = hash_str(key);
	struct strmap_slot *s, *f;

	if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0)
		return -ENOMEM;
	if ((s = probe(m, key, h, &f))) {
		s->val = val;
		return 0;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	if (!f->key)
		m->used++;
	*f = (struct strmap_slot){k, h, val};
	m->n++;
	return 0;
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct strmap_slot *s = strmap_find(m, key);
	void *val;

	if (!s)
		return NULL;
	val = s->val;
	free(s->key);
	s->key = GONE;
	s->val = NULL;
	m->n--;
	return val;
}

struct strmap_slot *strmap_next(const struct strmap *m, size_t *it)
{
	while (*it < m->cap) {
		struct strmap_slot *s = &m->v[(*it)++];
		if (s->key && s->key != GONE)
			return s;
	}
	return NULL;
}

void strmap_free(struct strmap *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->v[i].key || m->v[i].key == GONE)
			continue;
		if (free_val)
			free_val(m->v[i].val);
		free(m->v[i].key);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}
