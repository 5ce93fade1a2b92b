/*
 * GRUB script as GRUB's own lexer and parser read it (grub-core/script): words with '...',
 * "...", \ escapes, $var and ${var}; '#' comments; newline and ';' between commands; '{' and
 * '}' as words of their own. Parsed into commands, if/elif/else/fi, menuentry and submenu
 * blocks; function bodies and loops are parsed and kept aside, never run. Nesting and size are
 * bounded, so hostile input fails with a message.
 */
#include "tools/bootcfg_script.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NEST   64 /* blocks inside blocks */
#define MAX_TOKENS (1u << 20)

static int tok_add(struct toks *t, enum tk kind, const char *s, size_t len, unsigned line)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct tok *v = cap <= MAX_TOKENS ? realloc(t->v, cap * sizeof(*v)) : NULL;
		if (!v)
			return cap > MAX_TOKENS
				   ? err_set(EINVAL, "has more than %u words", MAX_TOKENS)
				   : -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = (struct tok){kind, s, len, line};
	return 0;
}

/* Skip a quoted string or ${...} starting at s[*i] (the opening character); -EINVAL if it is
 * never closed. */
static int skip_quoted(const char *s, size_t len, size_t *i, unsigned *line)
{
	char open = s[*i], close = open == '$' ? '}' : open;
	unsigned first = *line;

	for (*i += open == '$' ? 2 : 1; *i < len; (*i)++) {
		if (s[*i] == '\n')
			(*line)++;
		if (s[*i] == '\\' && open == '"' && *i + 1 < len) {
			if (s[++*i] == '\n')
				(*line)++;
			continue;
		}
		if (s[*i] == '$' && open == '"' && *i + 1 < len && s[*i + 1] == '{') {
			int ret = skip_quoted(s, len, i, line);
			if (ret < 0)
				return ret;
			continue;
		}
		if (s[*i] == close)
			return 0;
	}
	return err_set(EINVAL, "line %u: %s is never closed", first,
		       open == '$'   ? "'${'"
		       : open == '"' ? "a \" quote"
				     : "a ' quote");
}

/* Split text into words, separators (newline, ';') and braces. */
int script_lex(const char *s, size_t len, struct toks *t)
{
	unsigned line = 1;
	size_t i = 0;
	int ret = 0;

	while (i < len && ret == 0) {
		char c = s[i];
		if (c == ' ' || c == '\t' || c == '\r') {
			i++;
		} else if (c == '\\' && i + 1 < len && s[i + 1] == '\n') {
			i += 2; /* a continued line */
			line++;
		} else if (c == '\n' || c == ';') {
			ret = tok_add(t, TK_SEP, s + i, 1, line);
			line += c == '\n';
			i++;
		} else if (c == '#') {
			while (i < len && s[i] != '\n')
				i++;
		} else {
			size_t start = i;
			unsigned wline = line;
			while (i < len && ret == 0) {
				c = s[i];
				if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';')
					break;
				if (c == '\\') {
					if (i + 1 < len && s[i + 1] == '\n')
						line++;
					i += 2;
				} else if (c == '\'' || c == '"' ||
					   (c == '$' && i + 1 < len && s[i + 1] == '{')) {
					ret = skip_quoted(s, len, &i, &line);
					i++;
				} else {
					i++;
				}
			}
			if (i > len)
				i = len;
			size_t wl = i - start;
			enum tk k = wl == 1 && s[start] == '{'	 ? TK_LBRACE
				    : wl == 1 && s[start] == '}' ? TK_RBRACE
								 : TK_WORD;
			if (ret == 0)
				ret = tok_add(t, k, s + start, wl, wline);
		}
	}
	return ret ? ret : tok_add(t, TK_EOF, s + len, 0, line);
}

/* ---- words: expansion and quote removal ---- */

static int w_putc(struct words *w, char c)
{
	if (w->budget && (*w->budget)-- == 0)
		return err_set(EINVAL, "variables expand to more than %u bytes",
			       SCRIPT_MAX_EXPANDED);
	if (w->len + 1 >= w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		char *t = realloc(w->cur, cap);
		if (!t)
			return -ENOMEM;
		w->cur = t;
		w->cap = cap;
	}
	w->cur[w->len++] = c;
	w->have = true;
	return 0;
}

int script_flush(struct words *w)
{
	char **v, *s;

	if (!w->have)
		return 0;
	if (!(v = realloc(w->v, (w->n + 2) * sizeof(*v))) ||
	    !(s = strndup(w->cur ? w->cur : "", w->len))) {
		if (v)
			w->v = v;
		return -ENOMEM;
	}
	w->v = v;
	v[w->n++] = s;
	v[w->n] = NULL;
	w->len = 0;
	w->have = false;
	return 0;
}

void bootcfg_words_free(char **words, size_t n)
{
	for (size_t i = 0; words && i < n; i++)
		free(words[i]);
	free(words);
}

bool script_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* $name, ${name}, $1, $?: the name starts at s[*i] (past '$'); NULL when it is no variable. */
static const char *var_value(const char *s, size_t len, size_t *i, const struct bootcfg_env *env)
{
	char name[128];
	size_t k = 0, j = *i;

	if (j < len && s[j] == '{') {
		for (j++; j < len && s[j] != '}'; j++)
			if (k + 1 < sizeof(name))
				name[k++] = s[j];
		j++;
	} else if (j < len && (s[j] == '?' || s[j] == '#' || s[j] == '@' || s[j] == '*')) {
		name[k++] = s[j++];
	} else {
		while (j < len && script_name_char(s[j]) && k + 1 < sizeof(name))
			name[k++] = s[j++];
	}
	name[k] = '\0';
	*i = j;
	return bootcfg_env_get(env, name);
}

/* Expand one raw word into zero or more words. env NULL: no variable expansion. */
int script_expand(const char *s, size_t len, const struct bootcfg_env *env, struct words *w)
{
	int ret = 0;

	for (size_t i = 0; i < len && ret == 0;) {
		char c = s[i];
		if (c == '\\') {
			if (i + 1 < len && s[i + 1] != '\n')
				ret = w_putc(w, s[i + 1]);
			i += 2;
		} else if (c == '\'') {
			w->have = true;
			for (i++; i < len && s[i] != '\'' && ret == 0; i++)
				ret = w_putc(w, s[i]);
			i++;
		} else if (c == '"') {
			w->have = true;
			for (i++; i < len && s[i] != '"' && ret == 0;) {
				if (s[i] == '\\' && i + 1 < len && strchr("$\"\\\n", s[i + 1])) {
					if (s[i + 1] != '\n')
						ret = w_putc(w, s[i + 1]);
					i += 2;
				} else if (s[i] == '$' && env && i + 1 < len &&
					   (script_name_char(s[i + 1]) ||
					    strchr("{?#@*", s[i + 1]))) {
					i++;
					const char *v = var_value(s, len, &i, env);
					for (; v && *v && ret == 0; v++)
						ret = w_putc(w, *v);
				} else {
					ret = w_putc(w, s[i++]);
				}
			}
			i++;
		} else if (c == '$' && env && i + 1 < len &&
			   (script_name_char(s[i + 1]) || strchr("{?#@*", s[i + 1]))) {
			i++;
			/* unquoted: the value splits into words at blanks */
			for (const char *v = var_value(s, len, &i, env); v && *v && ret == 0; v++)
				ret = isspace((unsigned char)*v) ? script_flush(w) : w_putc(w, *v);
		} else {
			ret = w_putc(w, c);
			i++;
		}
	}
	return ret;
}

int bootcfg_grub_words(const char *s, char ***out, size_t *n)
{
	struct toks t = {0};
	struct words w = {0};
	int ret = script_lex(s, strlen(s), &t);

	for (size_t i = 0; i < t.n && ret == 0; i++)
		if (t.v[i].kind != TK_SEP && t.v[i].kind != TK_EOF &&
		    (ret = script_expand(t.v[i].s, t.v[i].len, NULL, &w)) == 0)
			ret = script_flush(&w);
	free(t.v);
	free(w.cur);
	if (ret < 0) {
		bootcfg_words_free(w.v, w.n);
		return ret;
	}
	*out = w.v;
	*n = w.n;
	return 0;
}

char *bootcfg_grub_cmdline(char *const *words, size_t n)
{
	size_t size = 1;
	char *out, *p;

	for (size_t i = 0; i < n; i++)
		size += 2 * strlen(words[i]) + 3;
	if (!(p = out = malloc(size)))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *c = words[i];
		bool space = strchr(c, ' ') != NULL;
		if (i)
			*p++ = ' ';
		if (space)
			*p++ = '"';
		for (; *c; c++) {
			if (c[0] == '\\' && c[1] == 'x' && isxdigit((unsigned char)c[2]) &&
			    isxdigit((unsigned char)c[3])) {
				memcpy(p, c, 4);
				p += 4;
				c += 3;
				continue;
			}
			if (*c == '\\' || *c == '\'' || *c == '"')
				*p++ = '\\';
			*p++ = *c;
		}
		if (space)
			*p++ = '"';
	}
	*p = '\0';
	return out;
}

/* ---- parsing: commands and blocks ---- */

struct parser {
	const struct toks *t;
	size_t i;
	int depth;
};

void script_free(struct node *n)
{
	while (n) {
		struct node *next = n->next;
		script_free(n->body);
		for (size_t i = 0; i < n->nbr; i++) {
			script_free(n->cond[i]);
			script_free(n->then[i]);
		}
		free(n->cond);
		free(n->then);
		script_free(n->els);
		free(n);
		n = next;
	}
}

static const struct tok *cur(const struct parser *p)
{
	return &p->t->v[p->i];
}

static bool is_word(const struct tok *t, const char *w)
{
	return t->kind == TK_WORD && t->len == strlen(w) && !memcmp(t->s, w, t->len);
}

static bool is_closer(const struct tok *t)
{
	static const char *const kw[] = {"then", "elif", "else", "fi", "do", "done"};

	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (is_word(t, kw[i]))
			return true;
	return false;
}

static int parse_list(struct parser *p, const char *const *stops, struct node **out);

static int expect(struct parser *p, const char *what, const char *ctx, unsigned line)
{
	if (!is_word(cur(p), what))
		return err_set(EINVAL, "line %u: '%s' without '%s'", line, ctx, what);
	p->i++;
	return 0;
}

static int parse_if(struct parser *p, struct node *n)
{
	static const char *const then_stop[] = {"then", NULL};
	static const char *const body_stop[] = {"elif", "else", "fi", NULL};
	static const char *const fi_stop[] = {"fi", NULL};
	int ret;

	p->i++;
	for (;;) {
		struct node **c = realloc(n->cond, (n->nbr + 1) * sizeof(*c)), **t;
		if (c)
			n->cond = c;
		t = c ? realloc(n->then, (n->nbr + 1) * sizeof(*t)) : NULL;
		if (!t)
			return -ENOMEM;
		n->then = t;
		n->cond[n->nbr] = n->then[n->nbr] = NULL;
		n->nbr++;
		if ((ret = parse_list(p, then_stop, &n->cond[n->nbr - 1])) < 0 ||
		    (ret = expect(p, "then", "if", n->line)) < 0 ||
		    (ret = parse_list(p, body_stop, &n->then[n->nbr - 1])) < 0)
			return ret;
		if (is_word(cur(p), "elif")) {
			p->i++;
			continue;
		}
		if (is_word(cur(p), "else")) {
			p->i++;
			if ((ret = parse_list(p, fi_stop, &n->els)) < 0)
				return ret;
		}
		return expect(p, "fi", "if", n->line);
	}
}

/* for ...; do ...; done and while/until ...; do ...; done: parsed, never run. */
static int parse_loop(struct parser *p, struct node *n)
{
	static const char *const do_stop[] = {"do", NULL};
	static const char *const done_stop[] = {"done", NULL};
	bool is_for = is_word(cur(p), "for");
	int ret;

	p->i++;
	if (is_for)
		while (cur(p)->kind == TK_WORD)
			p->i++;
	n->kind = N_SKIP;
	if ((ret = parse_list(p, do_stop, &n->body)) < 0 ||
	    (ret = expect(p, "do", is_for ? "for" : "while", n->line)) < 0)
		return ret;
	script_free(n->body);
	n->body = NULL;
	if ((ret = parse_list(p, done_stop, &n->body)) < 0)
		return ret;
	return expect(p, "done", is_for ? "for" : "while", n->line);
}

/* menuentry ARGS { ... }, submenu ARGS { ... }, function NAME { ... } */
static int parse_block(struct parser *p, struct node *n, enum nk kind)
{
	const char *what = kind == N_SKIP      ? "function"
			   : kind == N_SUBMENU ? "submenu"
					       : "menuentry";
	int ret;

	n->kind = kind;
	p->i++;
	n->w0 = p->i;
	while (cur(p)->kind == TK_WORD)
		p->i++;
	n->nw = p->i - n->w0;
	if (cur(p)->kind != TK_LBRACE)
		return err_set(EINVAL, "line %u: %s without '{'", n->line, what);
	p->i++;
	if ((ret = parse_list(p, NULL, &n->body)) < 0)
		return ret;
	if (cur(p)->kind != TK_RBRACE)
		return err_set(EINVAL, "line %u: the '{' of this %s is never closed", n->line,
			       what);
	p->i++;
	return 0;
}

static int parse_command(struct parser *p, struct node **out)
{
	const struct tok *t = cur(p);
	struct node *n = calloc(1, sizeof(*n));
	int ret = 0;

	if (!n)
		return -ENOMEM;
	n->line = t->line;
	if (is_word(t, "if")) {
		n->kind = N_IF;
		ret = parse_if(p, n);
	} else if (is_word(t, "for") || is_word(t, "while") || is_word(t, "until")) {
		ret = parse_loop(p, n);
	} else if (is_word(t, "menuentry")) {
		ret = parse_block(p, n, N_MENUENTRY);
	} else if (is_word(t, "submenu")) {
		ret = parse_block(p, n, N_SUBMENU);
	} else if (is_word(t, "function")) {
		ret = parse_block(p, n, N_SKIP);
	} else {
		n->kind = N_CMD;
		n->w0 = p->i;
		while (cur(p)->kind == TK_WORD)
			p->i++;
		n->nw = p->i - n->w0;
	}
	if (ret < 0) {
		script_free(n);
		return ret;
	}
	*out = n;
	return 0;
}

/* Commands up to the end, a '}', or one of the keywords in stops (NULL-terminated). */
static int parse_list(struct parser *p, const char *const *stops, struct node **out)
{
	struct node **tail = out;
	int ret = 0;

	*out = NULL;
	if (++p->depth > MAX_NEST)
		return err_set(EINVAL, "line %u: blocks nested deeper than %d", cur(p)->line,
			       MAX_NEST);
	for (;;) {
		const struct tok *t;
		while (cur(p)->kind == TK_SEP)
			p->i++;
		t = cur(p);
		if (t->kind == TK_EOF || t->kind == TK_RBRACE)
			break;
		if (t->kind == TK_LBRACE) {
			ret = err_set(EINVAL, "line %u: unexpected '{'", t->line);
			break;
		}
		bool stop = false;
		for (size_t k = 0; stops && stops[k]; k++)
			stop |= is_word(t, stops[k]);
		if (stop)
			break;
		if (is_closer(t)) {
			ret = err_set(EINVAL, "line %u: unexpected '%.*s'", t->line, (int)t->len,
				      t->s);
			break;
		}
		if ((ret = parse_command(p, tail)) < 0)
			break;
		tail = &(*tail)->next;
	}
	p->depth--;
	return ret;
}

int script_parse(const struct toks *t, struct node **out)
{
	struct parser p = {.t = t};
	int ret = parse_list(&p, NULL, out);

	if (ret == 0 && cur(&p)->kind != TK_EOF)
		ret = err_set(EINVAL, "line %u: unexpected '}'", cur(&p)->line);
	if (ret < 0) {
		script_free(*out);
		*out = NULL;
	}
	return ret;
}
