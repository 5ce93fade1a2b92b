#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"

/* Many keys in, some out, the rest found, against a plain array as the oracle. */
static void put_get_del(void **state)
{
	struct strmap m = {0};
	enum { N = 20000 };
	static char present[N];
	char key[32];
	(void)state;

	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(strmap_put(&m, key, (void *)(intptr_t)(i + 1)), 0);
		present[i] = 1;
	}
	assert_int_equal(m.n, N);
	for (int i = 0; i < N; i += 3) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_ptr_equal(strmap_del(&m, key), (void *)(intptr_t)(i + 1));
		present[i] = 0;
	}
	/* Re-insert some deleted keys: they reuse deleted slots and are found again. */
	for (int i = 0; i < N; i += 9) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(strmap_put(&m, key, (void *)(intptr_t)(i + 1)), 0);
		present[i] = 1;
	}
	size_t live = 0;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		void *v = strmap_get(&m, key);
		assert_ptr_equal(v, present[i] ? (void *)(intptr_t)(i + 1) : NULL);
		live += present[i];
	}
	assert_int_equal(m.n, live);
	/* Replacing keeps one key. */
	assert_int_equal(strmap_put(&m, "k1", (void *)7), 0);
	assert_ptr_equal(strmap_get(&m, "k1"), (void *)7);
	assert_int_equal(m.n, live);
	assert_null(strmap_get(&m, "absent"));
	assert_null(strmap_del(&m, "absent"));
	strmap_free(&m, NULL);
}

/* Walking visits every live key once, deleting while walking included. */
static void walk(void **state)
{
	struct strmap m = {0};
	struct strmap_slot *s;
	size_t it = 0, seen = 0;
	(void)state;

	assert_null(strmap_next(&m, &it));
	for (int i = 0; i < 500; i++) {
		char key[16];
		snprintf(key, sizeof(key), "%d", i);
		assert_int_equal(strmap_put(&m, key, strdup(key)), 0);
	}
	it = 0;
	while ((s = strmap_next(&m, &it))) {
		assert_string_equal(s->key, (char *)s->val);
		seen++;
		if (atoi(s->key) % 2)
			free(strmap_del(&m, s->key));
	}
	assert_int_equal(seen, 500);
	assert_int_equal(m.n, 250);
	strmap_free(&m, free);
	assert_int_equal(m.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_get_del),
	    cmocka_unit_test(walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
