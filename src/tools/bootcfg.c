/*
 * Boot loader configuration files other than grub.cfg (bootcfg_grub.c): the GRUB environment
 * block, Boot Loader Specification entries, GRUB legacy's menu.lst, and what they share
 * (variables, version orders, entry lookup). Every input is untrusted guest data.
 */
#include "tools/bootcfg.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Variables kept at most (GRUB's generated files set a few dozen). */
#define MAX_VARS 1024

const char *bootcfg_env_get(const struct bootcfg_env *env, const char *key)
{
	for (size_t i = 0; env && i < env->n; i++)
		if (!strcmp(env->keys[i], key))
			return env->vals[i];
	return NULL;
}

int bootcfg_env_set(struct bootcfg_env *env, const char *key, const char *val)
{
	char *v = strdup(val), *k = NULL, **nk, **nv;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < env->n; i++)
		if (!strcmp(env->keys[i], key)) {
			free(env->vals[i]);
			env->vals[i] = v;
			return 0;
		}
	if (env->n >= MAX_VARS) {
		free(v);
		return err_set(EINVAL, "sets more than %d variables", MAX_VARS);
	}
	nk = realloc(env->keys, (env->n + 1) * sizeof(*nk));
	if (nk)
		env->keys = nk;
	nv = nk ? realloc(env->vals, (env->n + 1) * sizeof(*nv)) : NULL;
	if (nv)
		env->vals = nv;
	if (!nk || !nv || !(k = strdup(key))) {
		free(v);
		return -ENOMEM;
	}
	env->keys[env->n] = k;
	env->vals[env->n++] = v;
	return 0;
}

int bootcfg_env_merge(struct bootcfg_env *dst, const struct bootcfg_env *src)
{
	int ret = 0;

	for (size_t i = 0; src && i < src->n && ret == 0; i++)
		ret = bootcfg_env_set(dst, src->keys[i], src->vals[i]);
	return ret;
}

void bootcfg_env_free(struct bootcfg_env *env)
{
	for (size_t i = 0; i < env->n; i++) {
		free(env->keys[i]);
		free(env->vals[i]);
	}
	free(env->keys);
	free(env->vals);
	memset(env, 0, sizeof(*env));
}

void bootcfg_entry_free(struct bootcfg_entry *e)
{
	free(e->title);
	free(e->id);
	free(e->version);
	free(e->kernel.path);
	for (size_t i = 0; i < e->ninitrd; i++)
		free(e->initrd[i].path);
	free(e->initrd);
	free(e->options);
	for (size_t i = 0; i < e->depth && i < BOOTCFG_MAX_DEPTH; i++) {
		free(e->lvl[i].title);
		free(e->lvl[i].id);
	}
	memset(e, 0, sizeof(*e));
}

void bootcfg_menu_free(struct bootcfg_menu *m)
{
	for (size_t i = 0; i < m->n; i++)
		bootcfg_entry_free(&m->v[i]);
	free(m->v);
	bootcfg_env_free(&m->env);
	memset(m, 0, sizeof(*m));
}

/* A copy of the bytes as a C string; a NUL inside is refused (no configuration has one). */
static int text_dup(const char *buf, size_t len, const char *what, char **out)
{
	const char *nul = memchr(buf, '\0', len);

	if (len > BOOTCFG_MAX_FILE)
		return err_set(EFBIG,
			       "%s is %zu bytes, more than the %u a boot configuration may be",
			       what, len, BOOTCFG_MAX_FILE);
	if (nul)
		return err_set(EINVAL, "%s holds a NUL byte at offset %zu: not a text file", what,
			       (size_t)(nul - buf));
	if (!(*out = strndup(buf, len)))
		return -ENOMEM;
	return 0;
}

int bootcfg_grubenv_parse(const char *buf, size_t len, struct bootcfg_env *env)
{
	static const char sig[] = "# GRUB Environment Block\n";
	size_t i = sizeof(sig) - 1;
	int ret = 0;

	memset(env, 0, sizeof(*env));
	if (len < i || memcmp(buf, sig, i))
		return err_set(EINVAL, "grubenv does not start with '# GRUB Environment Block'");
	if (len > BOOTCFG_MAX_FILE)
		return err_set(EFBIG, "grubenv is %zu bytes, more than %u", len, BOOTCFG_MAX_FILE);
	while (i < len && ret == 0) {
		size_t end = i, eq = 0, k = 0;
		char *val;
		/* one entry: up to an unescaped newline; "\x" stands for x */
		while (end < len && buf[end] != '\n') {
			if (buf[end] == '=' && !eq)
				eq = end;
			end += (buf[end] == '\\' && end + 1 < len) ? 2 : 1;
		}
		if (buf[i] == '#' || !eq || eq == i || memchr(buf + i, '\0', end - i)) {
			i = end + 1; /* padding, comments and malformed lines */
			continue;
		}
		if (!(val = malloc(end - eq)))
			return -ENOMEM;
		for (size_t j = eq + 1; j < end; j++)
			val[k++] = (buf[j] == '\\' && j + 1 < end) ? buf[++j] : buf[j];
		val[k] = '\0';
		char *key = strndup(buf + i, eq - i);
		ret = key ? bootcfg_env_set(env, key, val) : -ENOMEM;
		free(key);
		free(val);
		i = end + 1;
	}
	if (ret < 0)
		bootcfg_env_free(env);
	return ret;
}

/* ---- version orders ---- */

int bootcfg_rpmvercmp(const char *a, const char *b)
{
	const char *p = a, *q = b;

	if (!strcmp(a, b))
		return 0;
	while (*p || *q) {
		while (*p && !isalnum((unsigned char)*p) && *p != '~' && *p != '+')
			p++;
		while (*q && !isalnum((unsigned char)*q) && *q != '~' && *q != '+')
			q++;
		if (*p == '~' || *q == '~') { /* ~ sorts before everything, even the end */
			if (*p != '~')
				return 1;
			if (*q != '~')
				return -1;
			p++, q++;
			continue;
		}
		if (*p == '+' || *q == '+') { /* + sorts after the end, before anything else */
			if (!*p)
				return -1;
			if (!*q)
				return 1;
			if (*p != '+')
				return 1;
			if (*q != '+')
				return -1;
			p++, q++;
			continue;
		}
		if (!*p || !*q)
			break;
		bool num = isdigit((unsigned char)*p);
		const char *pe = p, *qe = q;
		while (*pe && (num ? isdigit((unsigned char)*pe) : isalpha((unsigned char)*pe)))
			pe++;
		while (*qe && (num ? isdigit((unsigned char)*qe) : isalpha((unsigned char)*qe)))
			qe++;
		if (qe == q) /* segments of different kinds: a number is newer */
			return num ? 1 : -1;
		if (num) {
			while (*p == '0' && p < pe)
				p++;
			while (*q == '0' && q < qe)
				q++;
			if (pe - p != qe - q)
				return pe - p > qe - q ? 1 : -1;
		}
		size_t lp = (size_t)(pe - p), lq = (size_t)(qe - q);
		int c = memcmp(p, q, lp < lq ? lp : lq);
		if (c || lp != lq)
			return c ? (c < 0 ? -1 : 1) : (lp < lq ? -1 : 1);
		p = pe, q = qe;
	}
	if (!*p && !*q)
		return 0;
	return *p ? 1 : -1;
}

/* Debian's version order of one character, as `sort -V` uses it: '~' first, then the end and
 * digits, letters, everything else. */
static int ver_order(unsigned char c)
{
	if (isdigit(c))
		return 0;
	if (isalpha(c))
		return c;
	if (c == '~')
		return -1;
	return c ? c + 256 : 0;
}

static int verrevcmp(const char *a, size_t la, const char *b, size_t lb)
{
	size_t i = 0, j = 0;

	while (i < la || j < lb) {
		int first = 0;
		while ((i < la && !isdigit((unsigned char)a[i])) ||
		       (j < lb && !isdigit((unsigned char)b[j]))) {
			int ca = i < la ? ver_order((unsigned char)a[i]) : 0;
			int cb = j < lb ? ver_order((unsigned char)b[j]) : 0;
			if (ca != cb)
				return ca - cb;
			i++, j++;
		}
		while (i < la && a[i] == '0')
			i++;
		while (j < lb && b[j] == '0')
			j++;
		while (i < la && j < lb && isdigit((unsigned char)a[i]) &&
		       isdigit((unsigned char)b[j])) {
			if (!first)
				first = a[i] - b[j];
			i++, j++;
		}
		if (i < la && isdigit((unsigned char)a[i]))
			return 1;
		if (j < lb && isdigit((unsigned char)b[j]))
			return -1;
		if (first)
			return first;
	}
	return 0;
}

/* Length of s without its file suffix: the longest tail of the form (\.[A-Za-z~][A-Za-z0-9~]*)*
 * (gnulib's filevercmp). */
static size_t strip_suffix(const char *s, size_t len)
{
	size_t keep = len, i = len;

	while (i > 0) {
		size_t j = i;
		while (j > 0 && (isalnum((unsigned char)s[j - 1]) || s[j - 1] == '~'))
			j--;
		if (j == 0 || s[j - 1] != '.' || j == i ||
		    !(isalpha((unsigned char)s[j]) || s[j] == '~'))
			break;
		keep = i = j - 1;
	}
	return keep;
}

int bootcfg_filevercmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), pa, pb;
	int c;

	if (!strcmp(a, b))
		return 0;
	if (!la || !lb)
		return la ? 1 : -1;
	if (a[0] == '.' && b[0] != '.')
		return -1;
	if (b[0] == '.' && a[0] != '.')
		return 1;
	pa = strip_suffix(a, la);
	pb = strip_suffix(b, lb);
	c = (pa == pb && !memcmp(a, b, pa)) ? 0 : verrevcmp(a, pa, b, pb);
	if (c == 0)
		c = verrevcmp(a, la, b, lb);
	return c ? c : strcmp(a, b);
}

/* ---- finding an entry by GRUB's names ---- */

/* Does a menu item at one level answer to comp: its number, title or id? */
static bool item_is(const struct bootcfg_entry *e, size_t level, const char *comp)
{
	char *end;
	long n;

	if (comp[0] && isdigit((unsigned char)comp[0])) {
		n = strtol(comp, &end, 10);
		if (!*end)
			return n == e->lvl[level].index;
	}
	return (e->lvl[level].title && !strcmp(e->lvl[level].title, comp)) ||
	       (e->lvl[level].id && !strcmp(e->lvl[level].id, comp));
}

long bootcfg_menu_find(const struct bootcfg_menu *m, const char *spec)
{
	char comps[BOOTCFG_MAX_DEPTH][512];
	size_t nc = 0, k = 0;

	if (!spec || !*spec)
		return -1;
	/* split at '>' ('>>' is a literal '>', as GRUB writes titles holding one) */
	comps[0][0] = '\0';
	for (const char *p = spec; *p; p++) {
		if (*p == '>' && p[1] == '>') {
			p++;
		} else if (*p == '>') {
			comps[nc][k] = '\0';
			if (++nc == BOOTCFG_MAX_DEPTH)
				return -1;
			k = 0;
			continue;
		}
		if (k + 1 >= sizeof(comps[0]))
			return -1;
		comps[nc][k++] = *p;
	}
	comps[nc++][k] = '\0';
	for (size_t i = 0; i < m->n; i++) {
		const struct bootcfg_entry *e = &m->v[i];
		size_t l = 0;
		while (l < nc && l < e->depth && item_is(e, l, comps[l]))
			l++;
		if (l == nc)
			return (
			    long)i; /* the entry itself, or the first one of the submenu named */
	}
	return -1;
}

/* ---- Boot Loader Specification entries ---- */

/* $name as blscfg expands it: its value and a space, nothing when unset. GRUB then splits
 * the result into words by its own quoting rules. */
static int bls_expand(const char *in, const struct bootcfg_env *env, char ***words, size_t *nw)
{
	size_t cap = strlen(in) + 1, n = 0;
	char *s = malloc(cap);
	int ret;

	if (!s)
		return -ENOMEM;
	for (const char *p = in; *p;) {
		const char *val = NULL;
		size_t add = 1;
		char name[128];
		if (*p == '$') {
			size_t k = 0;
			for (p++; isalnum((unsigned char)*p) || *p == '_'; p++)
				if (k + 1 < sizeof(name))
					name[k++] = *p;
			name[k] = '\0';
			val = bootcfg_env_get(env, name);
			add = val ? strlen(val) + 1 : 0;
		}
		if (n + add + 1 > cap) {
			cap = (n + add + 1) * 2;
			char *t = cap <= BOOTCFG_MAX_FILE ? realloc(s, cap) : NULL;
			if (!t) {
				free(s);
				return err_set(EINVAL, "'%.40s' expands to more than %u bytes", in,
					       BOOTCFG_MAX_FILE);
			}
			s = t;
		}
		if (val) {
			memcpy(s + n, val, add - 1);
			n += add - 1;
			s[n++] = ' ';
		} else if (add) {
			s[n++] = *p++;
		}
	}
	s[n] = '\0';
	ret = bootcfg_grub_words(s, words, nw);
	free(s);
	return ret;
}

/* options: expanded and split as above, then joined the way GRUB's linux command joins its
 * arguments. */
static int bls_options(const char *opts, const struct bootcfg_env *env, char **out)
{
	char **words = NULL;
	size_t nw = 0;
	int ret = bls_expand(opts, env, &words, &nw);

	if (ret < 0)
		return ret;
	*out = bootcfg_grub_cmdline(words, nw);
	bootcfg_words_free(words, nw);
	return *out ? 0 : -ENOMEM;
}

static int add_path(struct bootcfg_path **v, size_t *n, int part, const char *path)
{
	struct bootcfg_path *t = realloc(*v, (*n + 1) * sizeof(*t));

	if (!t)
		return -ENOMEM;
	*v = t;
	if (!(t[*n].path = strdup(path)))
		return -ENOMEM;
	t[(*n)++].part = part;
	return 0;
}

/* Append " val" (or "val") to a malloc'ed string. */
static int str_append(char **s, const char *val)
{
	size_t a = *s ? strlen(*s) : 0, b = strlen(val);
	char *t = realloc(*s, a + b + 2);

	if (!t)
		return -ENOMEM;
	if (a)
		t[a++] = ' ';
	memcpy(t + a, val, b + 1);
	*s = t;
	return 0;
}

static int bls_line(struct bootcfg_entry *e, char *key, char *val, char **opts,
		    const struct bootcfg_env *env)
{
	char **field = NULL;

	if (!strcmp(key, "title"))
		field = &e->title;
	else if (!strcmp(key, "version"))
		field = &e->version;
	else if (!strcmp(key, "linux"))
		field = &e->kernel.path;
	else if (!strcmp(key, "initrd")) {
		/* blscfg puts every initrd on one GRUB initrd command, where "$tuned_initrd"
		 * and the like expand */
		char **w = NULL;
		size_t nw = 0;
		int ret = bls_expand(val, env, &w, &nw);
		for (size_t i = 0; i < nw && ret == 0; i++)
			ret = add_path(&e->initrd, &e->ninitrd, BOOTCFG_PART_CONFIG, w[i]);
		bootcfg_words_free(w, nw);
		return ret;
	} else if (!strcmp(key, "options"))
		return str_append(opts, val);
	if (!field || *field) /* unknown keys, and repeats of single ones, are ignored */
		return 0;
	return (*field = strdup(val)) ? 0 : -ENOMEM;
}

int bootcfg_bls_parse(const char *name, const char *buf, size_t len, const struct bootcfg_env *env,
		      struct bootcfg_entry *out)
{
	char *text = NULL, *save = NULL, *opts = NULL;
	size_t nl = strlen(name);
	int ret = text_dup(buf, len, name, &text);

	memset(out, 0, sizeof(*out));
	if (ret < 0)
		return ret;
	for (char *line = strtok_r(text, "\n", &save); line && ret == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		size_t l = strlen(line);
		while (l && isspace((unsigned char)line[l - 1]))
			line[--l] = '\0';
		if (!*line || *line == '#')
			continue;
		char *val = line + strcspn(line, " \t");
		if (*val)
			*val++ = '\0';
		while (*val == ' ' || *val == '\t')
			val++;
		ret = bls_line(out, line, val, &opts, env);
	}
	free(text);
	if (ret == 0 && !out->kernel.path)
		ret = err_set(ENOENT, "%s has no 'linux' line", name);
	if (ret == 0) {
		if (!opts && bootcfg_env_get(env, "default_kernelopts"))
			ret = str_append(&opts, bootcfg_env_get(env, "default_kernelopts"));
		if (ret == 0)
			ret = bls_options(opts ? opts : "", env, &out->options);
	}
	free(opts);
	out->kernel.part = BOOTCFG_PART_CONFIG;
	out->depth = 1;
	if (ret == 0) {
		size_t il = nl > 5 && !strcmp(name + nl - 5, ".conf") ? nl - 5 : nl;
		if (!out->title)
			out->title = strdup(out->kernel.path);
		if (!out->title || !(out->id = strndup(name, il)) ||
		    !(out->lvl[0].title = strdup(out->title)) ||
		    !(out->lvl[0].id = strdup(out->id)))
			ret = -ENOMEM;
	}
	if (ret < 0)
		bootcfg_entry_free(out);
	return ret;
}

/* Newest first, as blscfg lists them. */
static int bls_cmp(const void *pa, const void *pb)
{
	const struct bootcfg_entry *a = pa, *b = pb;
	int c;

	if (a->version && !b->version)
		return -1;
	if (!a->version && b->version)
		return 1;
	if (a->version && (c = bootcfg_rpmvercmp(a->version, b->version)) != 0)
		return -c;
	return -bootcfg_rpmvercmp(a->id, b->id);
}

void bootcfg_bls_sort(struct bootcfg_menu *m, const char *def_spec)
{
	long d;

	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), bls_cmp);
	for (size_t i = 0; i < m->n; i++)
		m->v[i].lvl[0].index = (int)i;
	d = bootcfg_menu_find(m, def_spec);
	m->def = d < 0 ? 0 : (size_t)d;
}

/* ---- GRUB legacy (0.97): menu.lst, grub.conf ---- */

/* "(hd0,1)" -> partition 2; "(hd0)" -> the whole disk. *rest gets what follows ')'. */
static int legacy_device(const char *s, const char **rest)
{
	char *end;
	long disk, part;

	if (s[0] != '(' || s[1] != 'h' || s[2] != 'd')
		return -2;
	disk = strtol(s + 3, &end, 10);
	if (end == s + 3 || disk != 0)
		return -2;
	if (*end == ')') {
		*rest = end + 1;
		return 0;
	}
	if (*end != ',')
		return -2;
	part = strtol(end + 1, &end, 10);
	if (part < 0 || part > 1000 || (*end != ')' && *end != ','))
		return -2;
	*rest = strchr(end, ')') ? strchr(end, ')') + 1 : end;
	return (int)part + 1; /* GRUB legacy counts partitions from 0 */
}

struct legacy {
	struct bootcfg_menu *m;
	struct bootcfg_entry cur;
	bool open;
	int root;
	size_t titles;
	long def;
};

static int legacy_finish(struct legacy *l)
{
	struct bootcfg_entry *v;

	if (!l->open)
		return 0;
	l->open = false;
	if (!l->cur.kernel.path) { /* chainloader and other non-Linux entries */
		bootcfg_entry_free(&l->cur);
		return 0;
	}
	if (!(v = realloc(l->m->v, (l->m->n + 1) * sizeof(*v)))) {
		bootcfg_entry_free(&l->cur);
		return -ENOMEM;
	}
	l->m->v = v;
	if (l->cur.lvl[0].index == l->def)
		l->m->def = l->m->n;
	v[l->m->n++] = l->cur;
	memset(&l->cur, 0, sizeof(l->cur));
	return 0;
}

/* A path with an optional "(hdN,M)" in front; *part is the entry's root when there is none. */
static int legacy_path(const char *arg, int root, struct bootcfg_path *out)
{
	const char *rest = arg;
	int part = root;

	if (arg[0] == '(') {
		part = legacy_device(arg, &rest);
		if (part == -2)
			rest = arg; /* kept whole: bootdisk says it cannot read that device */
	}
	out->part = part;
	return (out->path = strdup(rest)) ? 0 : -ENOMEM;
}

static int legacy_cmd(struct legacy *l, const char *cmd, char *arg)
{
	struct bootcfg_entry *e = &l->cur;

	if (!strcmp(cmd, "title")) {
		int ret = legacy_finish(l);
		if (ret < 0)
			return ret;
		memset(e, 0, sizeof(*e));
		l->open = true;
		l->root = BOOTCFG_PART_CONFIG;
		e->depth = 1;
		e->lvl[0].index = (int)l->titles++;
		if (!(e->title = strdup(arg)) || !(e->lvl[0].title = strdup(arg)))
			return -ENOMEM;
		return 0;
	}
	if (!strcmp(cmd, "default") && !l->open) {
		char *end;
		long n = strtol(arg, &end, 10);
		l->def = (end != arg && n >= 0) ? n : 0; /* "saved" and the like: the first */
		return 0;
	}
	if (!l->open)
		return 0;
	if (!strcmp(cmd, "root") || !strcmp(cmd, "rootnoverify")) {
		const char *rest;
		l->root = legacy_device(arg, &rest);
		return 0;
	}
	if (!strcmp(cmd, "kernel")) {
		while (!strncmp(arg, "--", 2)) { /* --type=linux, --no-mem-option */
			arg += strcspn(arg, " \t");
			arg += strspn(arg, " \t");
		}
		char *opts = arg + strcspn(arg, " \t");
		if (*opts)
			*opts++ = '\0';
		opts += strspn(opts, " \t");
		free(e->kernel.path);
		free(e->options);
		e->kernel.path = e->options = NULL;
		if (!*arg)
			return 0;
		if (legacy_path(arg, l->root, &e->kernel) < 0 || !(e->options = strdup(opts)))
			return -ENOMEM;
		return 0;
	}
	if (!strcmp(cmd, "initrd")) {
		struct bootcfg_path p;
		arg[strcspn(arg, " \t")] = '\0';
		if (!*arg)
			return 0;
		if (legacy_path(arg, l->root, &p) < 0)
			return -ENOMEM;
		if (add_path(&e->initrd, &e->ninitrd, p.part, p.path) < 0) {
			free(p.path);
			return -ENOMEM;
		}
		free(p.path);
	}
	return 0;
}

int bootcfg_legacy_parse(const char *buf, size_t len, struct bootcfg_menu *out)
{
	struct legacy l = {.m = out, .def = 0};
	char *text = NULL, *save = NULL;
	int ret = text_dup(buf, len, "menu.lst", &text);

	memset(out, 0, sizeof(*out));
	if (ret < 0)
		return ret;
	for (char *line = strtok_r(text, "\n", &save); line && ret == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " \t");
		size_t n = strlen(line);
		while (n && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		if (!*line || *line == '#')
			continue;
		/* the command name ends at a blank or '=' ("default=0", "title CentOS") */
		char *arg = line + strcspn(line, " \t=");
		char sep = *arg;
		if (sep) {
			*arg++ = '\0';
			arg += strspn(arg, " \t");
			if (sep != '=' && *arg == '=')
				arg += 1 + strspn(arg + 1, " \t");
		}
		ret = legacy_cmd(&l, line, arg);
	}
	if (ret == 0)
		ret = legacy_finish(&l);
	bootcfg_entry_free(&l.cur);
	free(text);
	if (ret < 0)
		bootcfg_menu_free(out);
	return ret;
}
