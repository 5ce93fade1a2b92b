/*
 * Fuzz target: sysprep's edits of guest text files (/etc/hosts, ifcfg-*, os-release), which come
 * from an untrusted disk. The input's first byte picks the hostname's length from a fixed valid
 * name; the rest is the file. Invariants: no dropped prefix survives at a line start, the hosts
 * edit leaves exactly one 127.0.1.1 line when asked to append, and nothing reads or writes out
 * of bounds (ASan) or leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sysprep_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lines starting (after blanks) with prefix; with addr, prefix must be followed by a blank. */
static size_t count_lines(const char *t, const char *prefix, bool addr)
{
	size_t n = 0, pl = strlen(prefix);

	for (const char *l = t; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *s = l + strspn(l, " \t");
		if (!strncmp(s, prefix, pl) && (!addr || s[pl] == ' ' || s[pl] == '\t'))
			n++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char host[] = "pc-07.aula.example.org";
	char name[sizeof(host)], *t, *o, *id;
	bool changed;

	if (size < 1)
		return 0;
	size_t hl = 1 + data[0] % (sizeof(host) - 1);
	memcpy(name, host, hl);
	name[hl] = '\0';
	if (name[hl - 1] == '.' || name[hl - 1] == '-')
		name[hl - 1] = 'x';
	t = malloc(size);
	memcpy(t, data + 1, size - 1);
	t[size - 1] = '\0';
	o = sysprep_hosts_edit(t, name, true, &changed);
	if (o && count_lines(o, "127.0.1.1", true) != 1)
		abort();
	free(o);
	sysprep_os_family(t, &id);
	free(id);
	sysprep_drop_lines(t, "HWADDR=");
	if (count_lines(t, "HWADDR=", false))
		abort();
	free(t);
	return 0;
}
