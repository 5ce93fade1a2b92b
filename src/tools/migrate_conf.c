/*
 * What the container is: its vzctl configuration (CTID.conf, or OpenVZ 7's ve.conf), and what
 * its own files say (os-release, the usr layout, the hostname). Both are untrusted text: lines
 * that do not parse are skipped.
 */
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *mig_kv_get(const char *text, const char *key)
{
	size_t kl = strlen(key);
	char *found = NULL;

	for (const char *l = text; l && *l;) {
		const char *eol = strchr(l, '\n'), *end = eol ? eol : l + strlen(l);
		while (l < end && isspace((unsigned char)*l))
			l++;
		if (!strncmp(l, "export ", 7))
			l += 7;
		if ((size_t)(end - l) > kl && !strncmp(l, key, kl) && l[kl] == '=') {
			const char *v = l + kl + 1, *ve = end;
			while (ve > v && isspace((unsigned char)ve[-1]))
				ve--;
			if (ve - v >= 2 && (*v == '"' || *v == '\'') && ve[-1] == *v)
				v++, ve--;
			free(found); /* the last assignment wins, as in the shell */
			found = strndup(v, (size_t)(ve - v));
		}
		l = eol ? eol + 1 : NULL;
	}
	return found;
}

/* "192.0.2.10", "192.0.2.10/24", "192.0.2.10/255.255.255.0", "2001:db8::1/64". */
bool mig_addr_parse(const char *s, struct migrate_addr *a, int default_prefix4)
{
	char buf[128];
	unsigned char bin[16];

	snprintf(buf, sizeof(buf), "%s", s);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash++ = 0;
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, buf, bin) == 1) {
		a->family = 4;
		a->prefix = default_prefix4;
	} else if (inet_pton(AF_INET6, buf, bin) == 1) {
		a->family = 6;
		a->prefix = 128;
	} else {
		return false;
	}
	if (strlen(buf) >= sizeof(a->addr))
		return false;
	memcpy(a->addr, buf, strlen(buf) + 1);
	if (!slash)
		return true;
	unsigned char m[4];
	if (a->family == 4 && strchr(slash, '.') && inet_pton(AF_INET, slash, m) == 1) {
		uint32_t v =
		    (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
		int p = 0;
		while (p < 32 && (v & (0x80000000u >> p)))
			p++;
		if ((uint32_t)(p ? ~0u << (32 - p) : 0) != v)
			return false;
		a->prefix = p;
		return true;
	}
	char *end;
	long p = strtol(slash, &end, 10);
	if (*end || p < 0 || p > (a->family == 4 ? 32 : 128) || end == slash)
		return false;
	a->prefix = (int)p;
	return true;
}

bool migrate_addr_parse(const char *s, struct migrate_addr *a)
{
	return mig_addr_parse(s, a, 32);
}

/* PHYSPAGES="0:262144" (4 KiB pages) or "0:1G"; DISKSPACE="10485760:11534336" (KiB) or
 * "10G:11G". The limit (after the colon) is what the container was given. */
static uint64_t vz_size(const char *v, uint64_t unit)
{
	const char *lim = strchr(v, ':') ? strchr(v, ':') + 1 : v;
	char *end;
	unsigned long long n = strtoull(lim, &end, 10);
	uint64_t mult = unit;

	switch (toupper((unsigned char)*end)) {
	case 'K':
		mult = 1ULL << 10;
		break;
	case 'M':
		mult = 1ULL << 20;
		break;
	case 'G':
		mult = 1ULL << 30;
		break;
	case 'T':
		mult = 1ULL << 40;
		break;
	case 'P':
		mult = 4096; /* vzctl's "p": pages */
		break;
	}
	if (n >= 9223372036854775807ULL / 4096 || n == 0)
		return 0; /* unlimited */
	return (uint64_t)n * mult;
}

int mig_conf_read(struct mig_ctx *c, const char *path)
{
	FILE *f = fopen(path, "re");
	static const char *const keys[] = {"VE_LAYOUT",	   "IP_ADDRESS", "HOSTNAME",  "NAMESERVER",
					   "SEARCHDOMAIN", "DISKSPACE",	 "PHYSPAGES", "OSTEMPLATE",
					   "VEID",	   "VE_PRIVATE", NULL};
	char *text = NULL;
	size_t len = 0;
	int ret = 0;

	if (!f)
		return err_sys(errno, "%s", path);
	FILE *m = open_memstream(&text, &len);
	char line[8192];
	size_t nl = 0, good = 0;
	while (m && fgets(line, sizeof(line), f)) {
		nl++;
		fputs(line, m);
		char *p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		if (strchr(p, '=') && isupper((unsigned char)*p))
			good++;
	}
	fclose(f);
	if (!m)
		return err_set(ENOMEM, "out of memory");
	fclose(m);
	if (!good) {
		free(text);
		return err_set(EINVAL, "%s: not a container configuration (no KEY=\"value\" lines)",
			       path);
	}
	for (const char *const *k = keys; *k && ret == 0; k++) {
		char *v = mig_kv_get(text, *k);
		if (v && strmap_put(&c->cfg, *k, v) < 0) {
			free(v);
			ret = err_set(ENOMEM, "out of memory");
		}
	}
	free(text);
	const char *lay = strmap_get(&c->cfg, "VE_LAYOUT");
	if (ret == 0 && lay && strcmp(lay, "simfs") && strcmp(lay, "ploop"))
		return err_set(EINVAL,
			       "%s: unknown layout VE_LAYOUT=\"%s\" (simfs and ploop are known)",
			       path, lay);
	struct migrate_report *r = c->r;
	const char *v;
	if ((v = strmap_get(&c->cfg, "PHYSPAGES")))
		r->ram = vz_size(v, 4096);
	if ((v = strmap_get(&c->cfg, "DISKSPACE")))
		r->disk = vz_size(v, 1024);
	if ((v = strmap_get(&c->cfg, "OSTEMPLATE")))
		r->ostemplate = strdup(v);
	if ((v = strmap_get(&c->cfg, "VEID")))
		r->ctid = strdup(v);
	if (lay)
		r->ve_layout = strdup(lay);
	return ret;
}

static char *probe_text(struct mig_ctx *c, const char *path)
{
	const struct mig_file *f = mig_files_get(&c->probe, path, true);

	return f && S_ISREG(f->mode) ? f->data : NULL;
}

/* "AlmaLinux release 8.9 (Midnight Oncilla)" -> id almalinux, version 8.9. */
static void redhat_release(struct mig_ctx *c, const char *t)
{
	char name[64] = "";
	const char *rel = strstr(t, " release ");

	if (!rel)
		return;
	snprintf(name, sizeof(name), "%.*s", (int)(rel - t), t);
	char *sp = strchr(name, ' ');
	if (sp)
		*sp = 0;
	for (char *p = name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	c->r->os_id = strdup(!strcmp(name, "red") ? "rhel" : name);
	c->r->os_version = strndup(rel + 9, strspn(rel + 9, "0123456789."));
	c->r->os_pretty = strndup(t, strcspn(t, "\n"));
}

int mig_ct_inspect(struct mig_ctx *c)
{
	struct migrate_report *r = c->r;
	const char *osr = probe_text(c, "etc/os-release");
	const char *rh = probe_text(c, "etc/redhat-release");

	if (!osr)
		osr = probe_text(c, "usr/lib/os-release");
	if (osr) {
		r->os_id = mig_kv_get(osr, "ID");
		r->os_version = mig_kv_get(osr, "VERSION_ID");
		r->os_pretty = mig_kv_get(osr, "PRETTY_NAME");
		char *like = mig_kv_get(osr, "ID_LIKE");
		if (like && (strstr(like, "rhel") || strstr(like, "fedora")))
			c->family = MIG_FAM_RHEL;
		if (like && (strstr(like, "debian") || strstr(like, "ubuntu")))
			c->family = MIG_FAM_DEBIAN;
		free(like);
	} else if (rh) {
		redhat_release(c, rh);
	}
	if (!r->os_id)
		return err_set(
		    EINVAL,
		    "%s: not a container's root: no etc/os-release, usr/lib/os-release or "
		    "etc/redhat-release in it",
		    c->src->name);
	if (!strcmp(r->os_id, "debian") || !strcmp(r->os_id, "ubuntu") ||
	    probe_text(c, "etc/debian_version"))
		c->family = MIG_FAM_DEBIAN;
	if (rh || !strcmp(r->os_id, "rhel") || !strcmp(r->os_id, "centos") ||
	    !strcmp(r->os_id, "almalinux") || !strcmp(r->os_id, "rocky"))
		c->family = MIG_FAM_RHEL;
	/* usr-merged: /lib is a link into usr. */
	const struct mig_file *lib = mig_files_get(&c->probe, "lib", false);
	c->merged = lib && S_ISLNK(lib->mode) && strstr(lib->data, "usr/lib");
	r->usr_layout = strdup(c->merged ? "merged" : "split");
	const char *h = strmap_get(&c->cfg, "HOSTNAME");
	const char *hn = probe_text(c, "etc/hostname");
	if (h && *h)
		r->hostname = strdup(h);
	else if (hn && *hn)
		r->hostname = strndup(hn, strcspn(hn, " \t\r\n"));
	else if ((hn = probe_text(c, "etc/sysconfig/network")))
		r->hostname = mig_kv_get(hn, "HOSTNAME");
	if (!r->os_pretty)
		r->os_pretty = strdup(r->os_id);
	return 0;
}
