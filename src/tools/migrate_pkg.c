/*
 * The package database after the copy. The container's database replaces the base's, and an
 * OpenVZ container has no kernel package, so the VM would boot a kernel its package manager
 * does not know (and never updates). dpkg's database is text: the base's kernel packages, and
 * what they depend on that the container lacks, are merged into the container's status file,
 * and their files (and info files) belong to the VM during the copy. rpm's database cannot be
 * merged file by file: a first-boot unit installs the running kernel's package (the seed's
 * `yum install kernel`) and removes itself.
 */
#include "fs/gfs.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STATUS "/var/lib/dpkg/status"
#define INFO   "/var/lib/dpkg/info"
#define UNIT   "ligero-kernel-package.service"

/* One stanza of a status file. */
struct stanza {
	const char *text; /* into the file's buffer */
	size_t len;
	char *pkg, *status, *provides, *depends, *arch;
};

struct db {
	char *buf;
	struct stanza *v;
	size_t n;
	struct strmap by_name;	/* installed packages: name -> stanza */
	struct strmap provided; /* virtual names installed packages provide -> stanza */
};

/* A field of a stanza (continuation lines joined), malloc'ed, or NULL. */
static char *field(const char *t, size_t len, const char *name)
{
	size_t nl = strlen(name);
	const char *end = t + len;

	for (const char *l = t; l < end;) {
		const char *eol = memchr(l, '\n', (size_t)(end - l));
		if (!eol)
			eol = end;
		if ((size_t)(eol - l) > nl && !strncasecmp(l, name, nl) && l[nl] == ':') {
			char *v = NULL;
			size_t vl = 0;
			FILE *m = open_memstream(&v, &vl);
			if (!m)
				return NULL;
			fwrite(l + nl + 1, 1, (size_t)(eol - l - (ptrdiff_t)nl - 1), m);
			for (l = eol + 1; l < end && (*l == ' ' || *l == '\t');) {
				eol = memchr(l, '\n', (size_t)(end - l));
				if (!eol)
					eol = end;
				fputc(' ', m);
				fwrite(l, 1, (size_t)(eol - l), m);
				l = eol + 1;
			}
			fclose(m);
			char *s = v + strspn(v, " \t");
			memmove(v, s, strlen(s) + 1);
			return v;
		}
		l = eol + 1;
	}
	return NULL;
}

/* Package names of a relation field: "a (>= 1) | b:any, c" -> calls cb per group. */
static char *dep_name(const char *alt)
{
	alt += strspn(alt, " \t");
	size_t n = strcspn(alt, " \t(:[");
	return strndup(alt, n);
}

static void db_free(struct db *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].pkg);
		free(d->v[i].status);
		free(d->v[i].provides);
		free(d->v[i].depends);
		free(d->v[i].arch);
	}
	free(d->v);
	free(d->buf);
	strmap_free(&d->by_name, NULL);
	strmap_free(&d->provided, NULL);
	memset(d, 0, sizeof(*d));
}

static bool installed(const struct stanza *s)
{
	return s->status && strstr(s->status, " installed") && !strncmp(s->status, "install ", 8);
}

/* Parse a status file (buf is taken). */
static int db_parse(struct db *d, char *buf)
{
	memset(d, 0, sizeof(*d));
	d->buf = buf;
	for (const char *p = buf; *p;) {
		while (*p == '\n')
			p++;
		if (!*p)
			break;
		const char *e = strstr(p, "\n\n");
		size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
		struct stanza *v = realloc(d->v, (d->n + 1) * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		d->v = v;
		struct stanza *s = &v[d->n++];
		*s = (struct stanza){p,
				     len,
				     field(p, len, "Package"),
				     field(p, len, "Status"),
				     field(p, len, "Provides"),
				     NULL,
				     field(p, len, "Architecture")};
		char *pre = field(p, len, "Pre-Depends"), *dep = field(p, len, "Depends");
		if (asprintf(&s->depends, "%s%s%s", pre ? pre : "", pre && dep ? ", " : "",
			     dep ? dep : "") < 0)
			s->depends = NULL;
		free(pre);
		free(dep);
		p += len;
	}
	/* The maps point into d->v, complete now. */
	for (size_t i = 0; i < d->n; i++) {
		struct stanza *s = &d->v[i];
		if (!s->pkg || !installed(s))
			continue;
		strmap_put(&d->by_name, s->pkg, s);
		char *pv = s->provides ? strdup(s->provides) : NULL;
		for (char *sv = NULL, *t = pv ? strtok_r(pv, ",", &sv) : NULL; t;
		     t = strtok_r(NULL, ",", &sv)) {
			char *nm = dep_name(t);
			if (nm && *nm && !strmap_find(&d->provided, nm))
				strmap_put(&d->provided, nm, s);
			free(nm);
		}
		free(pv);
	}
	return 0;
}

static bool has(const struct db *d, const char *name)
{
	return strmap_find(&d->by_name, name) || strmap_find(&d->provided, name);
}

static struct stanza *provider(const struct db *d, const char *name)
{
	struct stanza *s = strmap_get(&d->by_name, name);

	return s ? s : strmap_get(&d->provided, name);
}

/* The base's .list of a package ("name.list" or "name:arch.list"), or NULL. */
static char *list_file(struct mig_ctx *c, const struct stanza *s)
{
	char p[512], *buf = NULL;
	size_t len;

	snprintf(p, sizeof(p), INFO "/%s.list", s->pkg);
	if (gfs_read_file(c->bgfs, p, 64u << 20, &buf, &len) == 0)
		return buf;
	snprintf(p, sizeof(p), INFO "/%s:%s.list", s->pkg, s->arch ? s->arch : "amd64");
	if (gfs_read_file(c->bgfs, p, 64u << 20, &buf, &len) == 0)
		return buf;
	err_clear();
	return NULL;
}

/* Packages that are the VM's by what they hold: the kernel and its modules, firmware. */
static bool kernelish(const char *list)
{
	static const char *const pats[] = {"/boot/vmlinuz-*", "/lib/modules/*",
					   "/usr/lib/modules/*", "/lib/firmware/*",
					   "/usr/lib/firmware/*"};
	for (const char *l = list; l && *l;) {
		const char *eol = strchr(l, '\n');
		char path[1024];
		snprintf(path, sizeof(path), "%.*s", (int)(eol ? eol - l : (ptrdiff_t)strlen(l)),
			 l);
		for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
			if (!fnmatch(pats[i], path, FNM_PATHNAME | FNM_LEADING_DIR))
				return true;
		l = eol ? eol + 1 : NULL;
	}
	return false;
}

static bool bootloader(const char *pkg)
{
	static const char *const pats[] = {"grub*", "shim*", "systemd-boot*", "extlinux",
					   "syslinux*"};
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
		if (!fnmatch(pats[i], pkg, 0))
			return true;
	return false;
}

static int add_owned(struct mig_ctx *c, const char *path)
{
	char **v = realloc(c->pkg_owned, (c->npkg_owned + 1) * sizeof(*v));

	if (!v || !(v[c->npkg_owned] = strdup(path)))
		return err_set(ENOMEM, "out of memory");
	c->pkg_owned = v;
	c->npkg_owned++;
	return 0;
}

/* The files of a carried package belong to the VM: its regular files and links (directories
 * are shared with other packages), and its info files. */
static int own_files(struct mig_ctx *c, const struct stanza *s, const char *list, char **info,
		     size_t ninfo)
{
	int ret = 0;

	for (const char *l = list; ret == 0 && l && *l;) {
		const char *eol = strchr(l, '\n');
		char path[1024];
		snprintf(path, sizeof(path), "%.*s", (int)(eol ? eol - l : (ptrdiff_t)strlen(l)),
			 l);
		l = eol ? eol + 1 : NULL;
		uint64_t ino;
		struct gfs_stat st;
		if (path[0] != '/' || mig_rules_path(&c->rules, path + 1))
			continue;
		if (gfs_lookup(c->bgfs, path, false, &ino) < 0 || gfs_stat(c->bgfs, ino, &st) < 0) {
			err_clear();
			continue;
		}
		if (!S_ISDIR(st.mode))
			ret = add_owned(c, path);
	}
	size_t pl = strlen(s->pkg);
	for (size_t i = 0; ret == 0 && i < ninfo; i++)
		if (!strncmp(info[i], s->pkg, pl) && (info[i][pl] == '.' || info[i][pl] == ':')) {
			char p[600];
			snprintf(p, sizeof(p), INFO "/%s", info[i]);
			ret = add_owned(c, p);
		}
	return ret;
}

struct carry {
	struct stanza **v;
	size_t n;
	struct strmap set;
};

static int carry_add(struct carry *k, struct stanza *s)
{
	if (strmap_find(&k->set, s->pkg))
		return 0;
	struct stanza **v = realloc(k->v, (k->n + 1) * sizeof(*v));
	if (!v || strmap_put(&k->set, s->pkg, s) < 0)
		return err_set(ENOMEM, "out of memory");
	k->v = v;
	v[k->n++] = s;
	return 0;
}

/* What the carried packages depend on that the container does not have, from the base. */
static int closure(struct carry *k, const struct db *base, const struct db *ct)
{
	int ret = 0;

	for (size_t i = 0; i < k->n && ret == 0; i++) {
		char *deps = k->v[i]->depends ? strdup(k->v[i]->depends) : NULL;
		for (char *sg = NULL, *g = deps ? strtok_r(deps, ",", &sg) : NULL; g && ret == 0;
		     g = strtok_r(NULL, ",", &sg)) {
			struct stanza *pick = NULL;
			bool met = false;
			for (char *sa = NULL, *a = strtok_r(g, "|", &sa); a && !met;
			     a = strtok_r(NULL, "|", &sa)) {
				char *nm = dep_name(a);
				if (!nm)
					return err_set(ENOMEM, "out of memory");
				met = has(ct, nm) || strmap_find(&k->set, nm);
				if (!pick)
					pick = provider(base, nm);
				free(nm);
			}
			if (!met && pick)
				ret = carry_add(k, pick);
		}
		free(deps);
	}
	return ret;
}

static int dpkg_prepare(struct mig_ctx *c, const char *ct_status)
{
	struct db base, ct;
	struct carry k = {0};
	char *buf = NULL, **info = NULL, *cts = strdup(ct_status);
	size_t len, ninfo = 0;
	int ret;

	if (!cts)
		return err_set(ENOMEM, "out of memory");
	if (gfs_read_file(c->bgfs, STATUS, 256u << 20, &buf, &len) < 0) {
		err_clear();
		free(cts);
		mig_note(c, "the base has no dpkg database: no kernel package to merge");
		return 0;
	}
	if ((ret = db_parse(&base, buf)) < 0 || (ret = db_parse(&ct, cts)) < 0) {
		db_free(&base);
		return ret;
	}
	for (size_t i = 0; i < base.n && ret == 0; i++) {
		struct stanza *s = &base.v[i];
		if (!s->pkg || !installed(s) || has(&ct, s->pkg))
			continue;
		char *list = bootloader(s->pkg) ? NULL : list_file(c, s);
		if (bootloader(s->pkg) || kernelish(list))
			ret = carry_add(&k, s);
		free(list);
	}
	if (ret == 0)
		ret = closure(&k, &base, &ct);
	FILE *m = NULL;
	size_t mlen = 0;
	char **names = NULL;
	size_t nn = 0;
	if (ret == 0)
		ret = mig_gfs_names(c->bgfs, INFO, &info, &ninfo);
	if (ret == 0 && (m = open_memstream(&c->status_merged, &mlen))) {
		for (size_t i = 0; i < k.n && ret == 0; i++) {
			char *list = list_file(c, k.v[i]);
			ret = own_files(c, k.v[i], list, info, ninfo);
			free(list);
			fwrite(k.v[i]->text, 1, k.v[i]->len, m);
			fputc('\n', m);
			char **v = realloc(names, (nn + 1) * sizeof(*v));
			if (v && (v[nn] = strdup(k.v[i]->pkg)))
				nn++;
			if (v)
				names = v;
		}
		fclose(m);
	} else if (ret == 0) {
		ret = err_set(ENOMEM, "out of memory");
	}
	c->r->kernel_pkgs = names;
	c->r->nkernel_pkgs = nn;
	for (size_t i = 0; ret == 0 && i < c->npkg_owned; i++)
		ret = mig_rules_add(&c->rules, c->fs, c->pkg_owned[i]);
	mig_strv_free(info, ninfo);
	free(k.v);
	strmap_free(&k.set, NULL);
	db_free(&base);
	db_free(&ct);
	return ret;
}

int mig_pkg_prepare(struct mig_ctx *c)
{
	const struct mig_file *st = mig_files_get(&c->probe, "var/lib/dpkg/status", true);

	if (st && S_ISREG(st->mode)) {
		c->r->pkg_system = strdup("dpkg");
		return dpkg_prepare(c, st->data);
	}
	if (mig_files_get(&c->probe, "var/lib/rpm", true) || c->family == MIG_FAM_RHEL)
		c->r->pkg_system = strdup("rpm");
	return 0;
}

int mig_dpkg_merge(const char *status, const char *stanzas, char **out, size_t *olen,
		   size_t *merged)
{
	struct db ct, add;
	char *a = strdup(status), *b = strdup(stanzas);
	int ret;

	memset(&ct, 0, sizeof(ct));
	memset(&add, 0, sizeof(add));
	if (!a || !b) {
		free(a);
		free(b);
		return err_set(ENOMEM, "out of memory");
	}
	/* db_parse takes the buffer it is given, even when it fails. */
	if ((ret = db_parse(&ct, a)) == 0)
		ret = db_parse(&add, b);
	else
		free(b);
	*out = NULL;
	*olen = 0;
	*merged = 0;
	FILE *m = ret == 0 ? open_memstream(out, olen) : NULL;
	if (ret == 0 && !m)
		ret = err_set(ENOMEM, "out of memory");
	for (size_t i = 0; m && i < ct.n; i++) {
		/* A stanza of a package being merged that is not installed (config-files left,
		 * half-removed) gives way to the base's. */
		if (ct.v[i].pkg && strmap_find(&add.by_name, ct.v[i].pkg) && !installed(&ct.v[i]))
			continue;
		fwrite(ct.v[i].text, 1, ct.v[i].len, m);
		fputc('\n', m);
	}
	for (size_t i = 0; m && i < add.n; i++) {
		if (!add.v[i].pkg || strmap_find(&ct.by_name, add.v[i].pkg))
			continue;
		fwrite(add.v[i].text, 1, add.v[i].len, m);
		fputc('\n', m);
		(*merged)++;
	}
	if (m)
		fclose(m);
	db_free(&ct);
	db_free(&add);
	return ret;
}

/* Append the base's stanzas of packages the container's status does not have installed. */
static int dpkg_fix(struct mig_ctx *c)
{
	char *buf = NULL, *out = NULL;
	size_t len, olen, merged;
	int ret;

	if (!c->status_merged || !*c->status_merged)
		return 0;
	if ((ret = mig_read(c, STATUS, &buf, &len)) < 0)
		return ret == -ENOENT ? 0 : ret;
	ret = mig_dpkg_merge(buf, c->status_merged, &out, &olen, &merged);
	free(buf);
	if (ret == 0 && merged)
		ret = mig_write(c, STATUS, out, olen, 0644,
				"the base's kernel packages and what they need that the container "
				"lacks are merged in, so dpkg knows the kernel the VM boots");
	free(out);
	return ret;
}

static const char unit_text[] =
    "# Written by ligero migrate. The container's rpm database has no kernel package, while\n"
    "# the VM boots the base's kernel: this registers the running kernel's package once (the\n"
    "# 'yum install kernel' of a manual migration), then removes itself.\n"
    "[Unit]\n"
    "Description=Register the running kernel in the rpm database (ligero migrate)\n"
    "Wants=network-online.target\n"
    "After=network-online.target\n"
    "\n"
    "[Service]\n"
    "Type=oneshot\n"
    "ExecStart=/bin/sh -c 'pm=yum; command -v dnf >/dev/null && pm=dnf; "
    "$$pm -y install \"kernel-$$(uname -r)\" || $$pm -y install kernel'\n"
    "ExecStartPost=/bin/rm -f /etc/systemd/system/" UNIT
    " /etc/systemd/system/multi-user.target.wants/" UNIT "\n"
    "\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n";

static int rpm_fix(struct mig_ctx *c)
{
	uint32_t mode;
	int ret;

	if (mig_lstat(c, "/usr/lib/systemd/systemd", &mode) < 0 &&
	    mig_lstat(c, "/lib/systemd/systemd", &mode) < 0) {
		mig_note(c, "rpm: the container's package database has no kernel package; run "
			    "'yum install kernel' in the VM after its first boot");
		return 0;
	}
	ret = mig_write(c, "/etc/systemd/system/" UNIT, unit_text, sizeof(unit_text) - 1, 0644,
			"rpm's database cannot be merged: at the first boot this unit installs the "
			"running kernel's package ('yum install kernel'), then removes itself");
	if (ret == 0)
		ret = mig_symlink(c, "/etc/systemd/system/multi-user.target.wants/" UNIT,
				  "/etc/systemd/system/" UNIT, "enables the unit above");
	if (ret == 0)
		mig_note(c, "rpm: at its first boot (with the network up) the VM installs the "
			    "running kernel's package with dnf or yum (" UNIT "), then the unit "
			    "removes itself");
	return ret;
}

int mig_pkg_fix(struct mig_ctx *c)
{
	if (!c->r->pkg_system)
		return 0;
	if (!strcmp(c->r->pkg_system, "dpkg"))
		return dpkg_fix(c);
	return rpm_fix(c);
}
