/*
 * Fuzz target: boot loader configurations from a guest disk (src/tools/bootcfg*.c).
 *
 * The input is read as each kind of file bootdisk parses: grub.cfg (evaluated, with a search
 * that finds one made-up filesystem), a BLS entry, grubenv and GRUB legacy's menu.lst. The
 * input's last line is also used as a `default`/--boot-entry name to look up. Every failure
 * must come back as an error; crashes, sanitizer reports, leaks and hangs are the findings.
 * Seeds: fuzz/corpus/bootcfg (the samples of tests/unit/data/bootcfg).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bootcfg.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int search(void *priv, const char *kind, const char *what)
{
	(void)priv;
	return !strcmp(kind, "uuid") && !strcmp(what, "2e1d3a9c-4b6f-4c1e-9d2a-7f3b5e6c8a10") ? 2
											      : -1;
}

static void check(const struct bootcfg_menu *m, const char *spec)
{
	long i = bootcfg_menu_find(m, spec);

	if (i >= (long)m->n || (m->n && m->def >= m->n))
		abort(); /* an index outside the menu */
	for (size_t k = 0; k < m->n; k++)
		if (!m->v[k].kernel.path || !m->v[k].title || m->v[k].depth > BOOTCFG_MAX_DEPTH)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct bootcfg_menu m;
	struct bootcfg_env env;
	struct bootcfg_entry e;
	char spec[256] = "";
	const char *nl = memrchr(buf, '\n', size);

	if (nl && (size_t)(buf + size - nl - 1) < sizeof(spec))
		memcpy(spec, nl + 1, (size_t)(buf + size - nl - 1));
	if (bootcfg_grubenv_parse(buf, size, &env) < 0)
		memset(&env, 0, sizeof(env));
	if (bootcfg_grub_parse(buf, size, &env, search, NULL, &m) == 0) {
		check(&m, spec);
		bootcfg_menu_free(&m);
	}
	if (bootcfg_legacy_parse(buf, size, &m) == 0) {
		check(&m, spec);
		bootcfg_menu_free(&m);
	}
	if (bootcfg_bls_parse("fuzz.conf", buf, size, &env, &e) == 0) {
		struct bootcfg_menu one = {.v = &e, .n = 1};
		bootcfg_bls_sort(&one, spec);
		check(&one, spec);
		bootcfg_entry_free(&e);
	}
	bootcfg_env_free(&env);
	err_clear();
	return 0;
}
