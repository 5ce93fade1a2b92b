/*
 * grub.cfg, read the way GRUB 2 reads it, with nothing run. The script (bootcfg_script.c) is
 * evaluated: `set` and assignments, `[`/`test` conditions, `search` (through the caller's
 * lookup), and inside a menuentry `linux`/`initrd` and their 16/efi forms. GRUB's feature_*
 * variables are those of GRUB 2.02 and later, so the branches a generated file takes on a real
 * GRUB are the ones taken here.
 *
 * As in GRUB, menu entries are built once the file has run: an entry's commands see the
 * variables as the file leaves them. Everything is bounded: nesting, variables, menu items and
 * the bytes variable expansion may produce, so hostile files fail with a message.
 */
#include "tools/bootcfg_script.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 4096 /* menu entries and submenus */

/* ---- evaluation ---- */

struct item {
	const struct node *n;
	char *title, *id;
};

/* One menu (the top one, or a submenu's) as its script defines it. */
struct level {
	struct item *v;
	size_t n;
};

struct eval {
	const struct toks *t;
	bootcfg_search_fn search;
	void *priv;
	struct bootcfg_menu *menu;
	size_t budget; /* bytes expansion may still produce */
	size_t items;  /* menu items so far, every level */
	size_t depth;  /* the menu path of the level being built */
	struct {
		int index;
		const char *title, *id;
	} path[BOOTCFG_MAX_DEPTH];
	struct bootcfg_entry *entry; /* inside a menuentry */
};

static int exec_list(struct eval *ev, struct bootcfg_env *env, const struct node *n,
		     struct level *lv, int *status);

static int argv_of(struct eval *ev, const struct bootcfg_env *env, size_t w0, size_t nw,
		   struct words *w)
{
	int ret = 0;

	memset(w, 0, sizeof(*w));
	w->budget = &ev->budget;
	for (size_t i = w0; i < w0 + nw && ret == 0; i++)
		if ((ret = script_expand(ev->t->v[i].s, ev->t->v[i].len, env, w)) == 0)
			ret = script_flush(w);
	free(w->cur);
	w->cur = NULL;
	if (ret == 0 && !w->v && !(w->v = calloc(1, sizeof(*w->v))))
		ret = -ENOMEM;
	if (ret < 0)
		bootcfg_words_free(w->v, w->n);
	return ret;
}

static bool valid_name(const char *s, size_t n)
{
	if (!n || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!script_name_char(s[i]))
			return false;
	return true;
}

/* name=value: set it (1), or not an assignment (0). */
static int assign(struct bootcfg_env *env, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char name[128];

	if (!eq || !valid_name(arg, (size_t)(eq - arg)) || (size_t)(eq - arg) >= sizeof(name))
		return 0;
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	int ret = bootcfg_env_set(env, name, eq + 1);
	return ret < 0 ? ret : 1;
}

static void unset(struct bootcfg_env *env, const char *name)
{
	for (size_t i = 0; i < env->n; i++)
		if (!strcmp(env->keys[i], name)) {
			free(env->keys[i]);
			free(env->vals[i]);
			memmove(env->keys + i, env->keys + i + 1,
				(env->n - i - 1) * sizeof(char *));
			memmove(env->vals + i, env->vals + i + 1,
				(env->n - i - 1) * sizeof(char *));
			env->n--;
			return;
		}
}

/* GRUB's test: strings, numbers, ! ( ) -a -o. Files cannot be looked at: their tests are false. */
static bool test_expr(char **a, size_t n, size_t *i, int depth);

static bool test_primary(char **a, size_t n, size_t *i, int depth)
{
	static const char *const bin[] = {"=",	 "==",	"!=",  "<",   ">",  "-eq",
					  "-ne", "-lt", "-le", "-gt", "-ge"};
	const char *x;

	if (*i >= n || depth > 32)
		return false;
	if (!strcmp(a[*i], "!")) {
		++*i;
		return !test_primary(a, n, i, depth + 1);
	}
	if (!strcmp(a[*i], "(")) {
		++*i;
		bool v = test_expr(a, n, i, depth + 1);
		if (*i < n && !strcmp(a[*i], ")"))
			++*i;
		return v;
	}
	for (size_t k = 0; *i + 2 < n && k < sizeof(bin) / sizeof(bin[0]); k++) {
		if (strcmp(a[*i + 1], bin[k]))
			continue;
		const char *l = a[*i], *r = a[*i + 2];
		long long ln = strtoll(l, NULL, 10), rn = strtoll(r, NULL, 10);
		int c = strcmp(l, r);
		*i += 3;
		switch (k) {
		case 0:
		case 1:
			return c == 0;
		case 2:
			return c != 0;
		case 3:
			return c < 0;
		case 4:
			return c > 0;
		case 5:
			return ln == rn;
		case 6:
			return ln != rn;
		case 7:
			return ln < rn;
		case 8:
			return ln <= rn;
		case 9:
			return ln > rn;
		default:
			return ln >= rn;
		}
	}
	x = a[*i];
	if (x[0] == '-' && x[1] && !x[2] && *i + 1 < n) {
		const char *arg = a[*i + 1];
		*i += 2;
		if (x[1] == 'z')
			return !*arg;
		if (x[1] == 'n')
			return *arg;
		return false; /* -e -f -d -s: files are not looked at */
	}
	++*i;
	return *x;
}

static bool test_expr(char **a, size_t n, size_t *i, int depth)
{
	bool v = test_primary(a, n, i, depth);

	while (*i < n && (!strcmp(a[*i], "-a") || !strcmp(a[*i], "-o"))) {
		bool is_and = a[*i][1] == 'a';
		++*i;
		bool r = test_primary(a, n, i, depth);
		v = is_and ? (v && r) : (v || r);
	}
	return v;
}

/* search [--fs-uuid|--label|--file] [--set[=VAR]] [--no-floppy] [--hint...] WHAT, and the
 * search.fs_uuid / search.fs_label / search.file forms (WHAT [VAR]). */
static int cmd_search(struct eval *ev, struct bootcfg_env *env, char **a, size_t n, int *st)
{
	const char *kind = "file", *var = NULL, *what = NULL;
	bool dotted = strchr(a[0], '.') != NULL;

	if (dotted)
		kind = !strcmp(a[0], "search.fs_uuid")	  ? "uuid"
		       : !strcmp(a[0], "search.fs_label") ? "label"
							  : "file";
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(a[i], "--fs-uuid") || !strcmp(a[i], "-u"))
			kind = "uuid";
		else if (!strcmp(a[i], "--label") || !strcmp(a[i], "-l"))
			kind = "label";
		else if (!strcmp(a[i], "--file") || !strcmp(a[i], "-f"))
			kind = "file";
		else if (!strcmp(a[i], "--set") || !strcmp(a[i], "-s"))
			var = "root";
		else if (!strncmp(a[i], "--set=", 6))
			var = a[i] + 6;
		else if (!strcmp(a[i], "--hint") && i + 1 < n)
			i++;
		else if (a[i][0] == '-')
			continue; /* --no-floppy, --hint-bios=..., --efidisk-only */
		else if (!what)
			what = a[i];
		else if (dotted && !var)
			var = a[i];
	}
	if (dotted && !var)
		var = "root";
	*st = 1;
	int part = what && ev->search ? ev->search(ev->priv, kind, what) : -1;
	if (part < 0 || !var)
		return 0;
	char dev[32];
	snprintf(dev, sizeof(dev), part ? "hd0,%d" : "hd0", part);
	*st = 0;
	return bootcfg_env_set(env, var, dev);
}

/* GRUB device names of this disk: hd0 (the whole disk), hd0,N, hd0,msdosN, hd0,gptN. */
static int device_part(const char *dev)
{
	const char *p;
	char *end;
	long n;

	if (strncmp(dev, "hd0", 3))
		return BOOTCFG_PART_OTHER;
	if (!dev[3])
		return 0;
	if (dev[3] != ',')
		return BOOTCFG_PART_OTHER;
	p = dev + 4;
	if (!strncmp(p, "msdos", 5))
		p += 5;
	else if (!strncmp(p, "gpt", 3))
		p += 3;
	n = strtol(p, &end, 10);
	if (end == p || *end || n < 1 || n > 1000)
		return BOOTCFG_PART_OTHER;
	return (int)n;
}

/* A path as GRUB opens it: "(dev)/path", or "/path" on $root. */
static int resolve(const struct bootcfg_env *env, const char *arg, struct bootcfg_path *out)
{
	const char *root = bootcfg_env_get(env, "root"), *rest = arg;
	char dev[256];

	out->part = BOOTCFG_PART_CONFIG;
	if (arg[0] == '(' && strchr(arg, ')')) {
		size_t l = (size_t)(strchr(arg, ')') - arg - 1);
		snprintf(dev, sizeof(dev), "%.*s", (int)l, arg + 1);
		rest = arg + l + 2;
		out->part = device_part(dev);
	} else if (root && *root) {
		out->part = device_part(root);
		if (out->part == BOOTCFG_PART_OTHER) {
			size_t need = strlen(root) + strlen(arg) + 3;
			if (!(out->path = malloc(need)))
				return -ENOMEM;
			snprintf(out->path, need, "(%s)%s", root, arg);
			return 0;
		}
	}
	out->path = strdup(out->part == BOOTCFG_PART_OTHER ? arg : rest);
	return out->path ? 0 : -ENOMEM;
}

static int cmd_linux(struct eval *ev, const struct bootcfg_env *env, char **a, size_t n, int *st)
{
	struct bootcfg_entry *e = ev->entry;
	int ret;

	*st = 1;
	if (!e || n < 2)
		return 0;
	free(e->kernel.path);
	free(e->options);
	e->kernel.path = e->options = NULL;
	if ((ret = resolve(env, a[1], &e->kernel)) < 0)
		return ret;
	if (!(e->options = bootcfg_grub_cmdline(a + 2, n - 2)))
		return -ENOMEM;
	*st = 0;
	return 0;
}

static int cmd_initrd(struct eval *ev, const struct bootcfg_env *env, char **a, size_t n, int *st)
{
	struct bootcfg_entry *e = ev->entry;
	struct bootcfg_path *v;
	int ret = 0;

	*st = 1;
	if (!e || n < 2)
		return 0;
	for (size_t i = 0; i < e->ninitrd; i++)
		free(e->initrd[i].path);
	e->ninitrd = 0;
	if (!(v = realloc(e->initrd, (n - 1) * sizeof(*v))))
		return -ENOMEM;
	e->initrd = v;
	for (size_t i = 1; i < n && ret == 0; i++)
		if ((ret = resolve(env, a[i], &v[e->ninitrd])) == 0)
			e->ninitrd++;
	*st = ret ? 1 : 0;
	return ret;
}

/* menuentry/submenu arguments: the title and --id; --class, --users, --hotkey take a value. */
static int menu_item(struct eval *ev, struct bootcfg_env *env, const struct node *n,
		     struct level *lv)
{
	struct words w;
	struct item *v;
	const char *title = NULL, *id = NULL;
	int ret;

	if (ev->items >= MAX_ITEMS)
		return err_set(EINVAL, "line %u: more than %d menu entries", n->line, MAX_ITEMS);
	if ((ret = argv_of(ev, env, n->w0, n->nw, &w)) < 0)
		return ret;
	for (size_t i = 0; i < w.n; i++) {
		const char *a = w.v[i];
		if (!strcmp(a, "--id") && i + 1 < w.n)
			id = w.v[++i];
		else if (!strncmp(a, "--id=", 5))
			id = a + 5;
		else if ((!strcmp(a, "--class") || !strcmp(a, "--users") ||
			  !strcmp(a, "--hotkey")) &&
			 i + 1 < w.n)
			i++;
		else if (!strncmp(a, "--", 2))
			continue;
		else if (!title)
			title = a;
	}
	ret = -ENOMEM;
	if ((v = realloc(lv->v, (lv->n + 1) * sizeof(*v)))) {
		lv->v = v;
		v[lv->n] = (struct item){n, strdup(title ? title : ""), id ? strdup(id) : NULL};
		if (v[lv->n].title && (!id || v[lv->n].id)) {
			lv->n++;
			ev->items++;
			ret = 0;
		} else {
			free(v[lv->n].title);
			free(v[lv->n].id);
		}
	}
	bootcfg_words_free(w.v, w.n);
	return ret;
}

static int exec_cmd(struct eval *ev, struct bootcfg_env *env, const struct node *n, int *st)
{
	struct words w;
	char **a;
	int ret = argv_of(ev, env, n->w0, n->nw, &w);

	if (ret < 0)
		return ret;
	a = w.v;
	*st = 0;
	if (w.n == 0) {
	} else if (!strcmp(a[0], "set")) {
		for (size_t i = 1; i < w.n && ret >= 0; i++)
			ret = assign(env, a[i]);
		ret = ret < 0 ? ret : 0;
	} else if (!strcmp(a[0], "unset")) {
		for (size_t i = 1; i < w.n; i++)
			unset(env, a[i]);
	} else if (!strcmp(a[0], "[") || !strcmp(a[0], "test")) {
		size_t end = w.n, i = 1;
		if (a[0][0] == '[' && strcmp(a[--end], "]"))
			end = 0;
		*st = end && test_expr(a, end, &i, 0) && i == end ? 0 : 1;
	} else if (!strcmp(a[0], "false")) {
		*st = 1;
	} else if (!strncmp(a[0], "search", 6)) {
		ret = cmd_search(ev, env, a, w.n, st);
	} else if (!strcmp(a[0], "linux") || !strcmp(a[0], "linux16") ||
		   !strcmp(a[0], "linuxefi")) {
		ret = cmd_linux(ev, env, a, w.n, st);
	} else if (!strcmp(a[0], "initrd") || !strcmp(a[0], "initrd16") ||
		   !strcmp(a[0], "initrdefi")) {
		ret = cmd_initrd(ev, env, a, w.n, st);
	} else if ((ret = assign(env, a[0])) > 0) {
		ret = 0;
	}
	/* anything else (insmod, load_video, echo, ...) does nothing here and succeeds */
	bootcfg_words_free(w.v, w.n);
	return ret;
}

static int exec_list(struct eval *ev, struct bootcfg_env *env, const struct node *n,
		     struct level *lv, int *status)
{
	int ret = 0, st = 0;

	for (; n && ret == 0; n = n->next) {
		switch (n->kind) {
		case N_CMD:
			ret = exec_cmd(ev, env, n, &st);
			break;
		case N_IF: {
			size_t b = 0;
			for (; b < n->nbr && ret == 0; b++) {
				if ((ret = exec_list(ev, env, n->cond[b], lv, &st)) == 0 &&
				    st == 0) {
					ret = exec_list(ev, env, n->then[b], lv, &st);
					break;
				}
			}
			if (ret == 0 && b == n->nbr)
				ret = n->els ? exec_list(ev, env, n->els, lv, &st) : (st = 0, 0);
			break;
		}
		case N_MENUENTRY:
		case N_SUBMENU:
			/* defined here, built once the script has run; nested in an entry: ignored
			 */
			ret = lv ? menu_item(ev, env, n, lv) : 0;
			st = 0;
			break;
		case N_SKIP:
			st = 0;
			break;
		}
	}
	*status = st;
	return ret;
}

static int env_copy(struct eval *ev, const struct bootcfg_env *src, struct bootcfg_env *dst)
{
	size_t bytes = 0;

	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		bytes += strlen(src->vals[i]) + 1;
	if (bytes > ev->budget)
		return err_set(EINVAL, "variables expand to more than %u bytes",
			       SCRIPT_MAX_EXPANDED);
	ev->budget -= bytes;
	return bootcfg_env_merge(dst, src);
}

/* "A>B>C" from the menu path and the last level's title (or id, all ids or NULL). */
static char *join_path(const struct eval *ev, bool ids)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i <= ev->depth; i++) {
		const char *c = ids ? ev->path[i].id : ev->path[i].title;
		if (!c)
			return NULL;
		len += strlen(c) + 1;
	}
	if (!(p = s = malloc(len)))
		return NULL;
	for (size_t i = 0; i <= ev->depth; i++)
		p += sprintf(p, "%s%s", i ? ">" : "", ids ? ev->path[i].id : ev->path[i].title);
	return s;
}

static int add_entry(struct eval *ev, struct bootcfg_entry *e)
{
	struct bootcfg_entry *v = realloc(ev->menu->v, (ev->menu->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	ev->menu->v = v;
	e->depth = ev->depth + 1;
	for (size_t i = 0; i <= ev->depth; i++) {
		e->lvl[i].index = ev->path[i].index;
		e->lvl[i].title = strdup(ev->path[i].title);
		e->lvl[i].id = ev->path[i].id ? strdup(ev->path[i].id) : NULL;
		if (!e->lvl[i].title || (ev->path[i].id && !e->lvl[i].id))
			return -ENOMEM;
	}
	e->title = join_path(ev, false);
	e->id = join_path(ev, true);
	if (!e->title)
		return -ENOMEM;
	v[ev->menu->n++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

/* Build the items a level's script defined, in order: entries run their commands, submenus
 * their script (which defines their own items). */
static int build_level(struct eval *ev, const struct bootcfg_env *env, struct level *lv)
{
	int ret = 0, st;

	for (size_t i = 0; i < lv->n && ret == 0; i++) {
		const struct item *it = &lv->v[i];
		struct bootcfg_env local;
		ev->path[ev->depth].index = (int)i;
		ev->path[ev->depth].title = it->title;
		ev->path[ev->depth].id = it->id;
		if ((ret = env_copy(ev, env, &local)) < 0) {
			bootcfg_env_free(&local);
			break;
		}
		if (it->n->kind == N_MENUENTRY) {
			struct bootcfg_entry e = {0};
			ev->entry = &e;
			ret = exec_list(ev, &local, it->n->body, NULL, &st);
			ev->entry = NULL;
			if (ret == 0 && e.kernel.path)
				ret = add_entry(ev, &e);
			bootcfg_entry_free(&e);
		} else if (ev->depth + 1 >= BOOTCFG_MAX_DEPTH) {
			ret = err_set(EINVAL, "line %u: submenus nested deeper than %d",
				      it->n->line, BOOTCFG_MAX_DEPTH);
		} else {
			struct level sub = {0};
			ret = exec_list(ev, &local, it->n->body, &sub, &st);
			ev->depth++;
			if (ret == 0)
				ret = build_level(ev, &local, &sub);
			ev->depth--;
			for (size_t k = 0; k < sub.n; k++) {
				free(sub.v[k].title);
				free(sub.v[k].id);
			}
			free(sub.v);
		}
		bootcfg_env_free(&local);
	}
	return ret;
}

/* What GRUB 2.02 and later define before reading grub.cfg (grub-mkconfig's files test them). */
static int grub_defaults(struct bootcfg_env *env)
{
	static const char *const vars[][2] = {
	    {"feature_200_final", "y"},
	    {"feature_all_video_module", "y"},
	    {"feature_chainloader_bpb", "y"},
	    {"feature_default_font_path", "y"},
	    {"feature_menuentry_id", "y"},
	    {"feature_menuentry_options", "y"},
	    {"feature_nativedisk_cmd", "y"},
	    {"feature_ntldr", "y"},
	    {"feature_platform_search_hint", "y"},
	    {"feature_timeout_style", "y"},
	    {"grub_cpu", "i386"},
	    {"grub_platform", "pc"},
	};
	int ret = 0;

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]) && ret == 0; i++)
		ret = bootcfg_env_set(env, vars[i][0], vars[i][1]);
	return ret;
}

int bootcfg_grub_parse(const char *buf, size_t len, const struct bootcfg_env *grubenv,
		       bootcfg_search_fn search, void *priv, struct bootcfg_menu *out)
{
	struct toks t = {0};
	struct node *top = NULL;
	struct eval ev = {
	    .t = &t, .search = search, .priv = priv, .menu = out, .budget = SCRIPT_MAX_EXPANDED};
	struct level lv = {0};
	const char *nul = memchr(buf, '\0', len);
	int ret = 0, st;
	long def;

	memset(out, 0, sizeof(*out));
	if (len > BOOTCFG_MAX_FILE)
		return err_set(EFBIG, "is %zu bytes, more than the %u a boot configuration may be",
			       len, BOOTCFG_MAX_FILE);
	if (nul)
		return err_set(EINVAL, "holds a NUL byte at offset %zu: not a text file",
			       (size_t)(nul - buf));
	if ((ret = script_lex(buf, len, &t)) == 0)
		ret = script_parse(&t, &top);
	if (ret == 0 && (ret = grub_defaults(&out->env)) == 0 &&
	    (ret = bootcfg_env_merge(&out->env, grubenv)) == 0 &&
	    (ret = exec_list(&ev, &out->env, top, &lv, &st)) == 0)
		ret = build_level(&ev, &out->env, &lv);
	for (size_t k = 0; k < lv.n; k++) {
		free(lv.v[k].title);
		free(lv.v[k].id);
	}
	free(lv.v);
	script_free(top);
	free(t.v);
	if (ret < 0) {
		bootcfg_menu_free(out);
		return ret;
	}
	def = bootcfg_menu_find(out, bootcfg_env_get(&out->env, "default"));
	out->def = def < 0 ? 0 : (size_t)def;
	return 0;
}
