/* A hash map from strings to pointers (open addressing, keys copied). Used where a tool needs
 * to find many names fast: a migration's directory tables, seen sets and rules. */
#ifndef LIGERO_UTIL_STRMAP_H
#define LIGERO_UTIL_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
	char *key; /* NULL: empty; STRMAP_GONE: deleted */
	uint64_t hash;
	void *val;
};

struct strmap {
	struct strmap_slot *v;
	size_t cap;  /* a power of two, or 0 */
	size_t n;    /* live keys */
	size_t used; /* live and deleted slots */
};

/* Insert key (copied) or replace its value. 0, or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *val);
/* The slot of key, or NULL when absent. */
struct strmap_slot *strmap_find(const struct strmap *m, const char *key);
/* The value of key, or NULL when absent (a stored NULL looks absent: use strmap_find). */
void *strmap_get(const struct strmap *m, const char *key);
/* Remove key; returns its value (NULL when absent). */
void *strmap_del(struct strmap *m, const char *key);
/* Walk the live slots: start with *it = 0; NULL at the end. Adding keys while walking may
 * move them; deleting the current one is safe. */
struct strmap_slot *strmap_next(const struct strmap *m, size_t *it);
/* Free the keys and the table, calling free_val (if not NULL) on each value. */
void strmap_free(struct strmap *m, void (*free_val)(void *));

#endif
