/*
 * Sysprep's text edits of guest files (hosts, ifcfg-*, sysconfig/network, os-release): pure
 * functions over NUL-terminated text, so they are unit-tested and fuzzed alone (guest files are
 * untrusted input). See sysprep_priv.h.
 */
#include "tools/sysprep_priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Drop the lines of text that start (after blanks) with prefix; 1 if any went. */
int sysprep_drop_lines(char *text, const char *prefix)
{
	char *out = text;
	int dropped = 0;

	for (char *l = text; *l;) {
		char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l + 1) : strlen(l);
		const char *s = l + strspn(l, " \t");
		if (!strncmp(s, prefix, strlen(prefix))) {
			dropped = 1;
		} else {
			memmove(out, l, len);
			out += len;
		}
		l += len;
	}
	*out = '\0';
	return dropped;
}

/* /etc/hosts with the 127.0.1.1 line naming host ("127.0.1.1\tFQDN\tSHORT" when the name has a
 * domain), as Debian's installer writes it; appended on Debian when there is none. */
char *sysprep_hosts_edit(const char *text, const char *host, bool append, bool *changed)
{
	char names[600], *out;
	const char *dot = strchr(host, '.');
	size_t len = strlen(text), cap = len + sizeof(names) + 16, o = 0;
	bool found = false;

	if (dot)
		snprintf(names, sizeof(names), "127.0.1.1\t%s\t%.*s\n", host, (int)(dot - host),
			 host);
	else
		snprintf(names, sizeof(names), "127.0.1.1\t%s\n", host);
	if (!(out = malloc(cap)))
		return NULL;
	for (const char *l = text; *l;) {
		const char *end = strchr(l, '\n');
		size_t ll = end ? (size_t)(end - l + 1) : strlen(l);
		const char *s = l + strspn(l, " \t");
		if (!strncmp(s, "127.0.1.1", 9) && (s[9] == ' ' || s[9] == '\t')) {
			if (!found) {
				memcpy(out + o, names, strlen(names));
				o += strlen(names);
			}
			found = true;
		} else {
			memcpy(out + o, l, ll);
			o += ll;
		}
		l += ll;
	}
	if (!found && append) {
		if (o && out[o - 1] != '\n')
			out[o++] = '\n';
		memcpy(out + o, names, strlen(names));
		o += strlen(names);
	}
	out[o] = '\0';
	*changed = strcmp(out, text) != 0;
	return out;
}

enum sysprep_family sysprep_os_family(const char *os_release, char **os_id)
{
	static const char *const debian[] = {"debian", "ubuntu", NULL};
	static const char *const rhel[] = {"rhel", "fedora", "centos", NULL};
	enum sysprep_family f = FAMILY_OTHER;
	char like[256] = "", *t = strdup(os_release);

	*os_id = NULL;
	for (char *save = NULL, *l = t ? strtok_r(t, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		char *v = strchr(l, '=');
		if (!v)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\r")] = '\0';
		if (*v == '"' || *v == '\'') {
			v++;
			v[strcspn(v, "\"'")] = '\0';
		}
		if (!strcmp(l, "ID") && !*os_id)
			*os_id = strdup(v);
		else if (!strcmp(l, "ID_LIKE"))
			snprintf(like, sizeof(like), "%s", v);
	}
	free(t);
	char all[320], w[32];
	snprintf(all, sizeof(all), " %s %s ", *os_id ? *os_id : "", like);
	for (int i = 0; debian[i] && f == FAMILY_OTHER; i++) {
		snprintf(w, sizeof(w), " %s ", debian[i]);
		if (strstr(all, w))
			f = FAMILY_DEBIAN;
	}
	for (int i = 0; rhel[i] && f == FAMILY_OTHER; i++) {
		snprintf(w, sizeof(w), " %s ", rhel[i]);
		if (strstr(all, w))
			f = FAMILY_RHEL;
	}
	return f;
}

bool sysprep_hostname_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (!len || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = name[i];
		if (ch == '.' || !ch) {
			if (!label || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)ch) && ch != '-')
			return false;
		if (ch == '-' && !label)
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}
