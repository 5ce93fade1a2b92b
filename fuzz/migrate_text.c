/*
 * Fuzz target: the container's own text files as `ligero migrate` reads them. The input is
 * split at the first NUL into two texts, given to each parser: configuration values
 * (os-release, CTID.conf, ifcfg), addresses, the interfaces(5) rewrite (which must find no
 * venet in its own output), and the dpkg status merge (the first text the container's status,
 * the second the base's stanzas). Crashes, sanitizer reports and leaks are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/migrate_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *a = malloc(size + 1);
	if (!a)
		return 0;
	memcpy(a, data, size);
	a[size] = 0;
	const char *b = a + strlen(a) + (strlen(a) < size);
	static const char *const keys[] = {"ID", "VERSION_ID", "IP_ADDRESS", "IPADDR", "X"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *v = mig_kv_get(a, keys[i]);
		struct migrate_addr ad;
		if (v)
			(void)mig_addr_parse(v, &ad, 32);
		free(v);
	}
	struct migrate_addr ad;
	(void)mig_addr_parse(b, &ad, 32);

	struct migrate_report r = {0};
	struct mig_ctx c = {.r = &r};
	bool had;
	char *out = mig_interfaces_strip(&c, a, true, &had);
	if (out) {
		char *again = mig_interfaces_strip(&c, out, false, &had);
		if (had)
			abort(); /* the rewrite left a venet stanza behind */
		free(again);
	}
	free(out);
	free(r.addrs);

	size_t len, merged;
	if (mig_dpkg_merge(a, b, &out, &len, &merged) == 0)
		free(out);
	free(a);
	return 0;
}
