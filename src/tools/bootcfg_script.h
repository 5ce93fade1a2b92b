/*
 * GRUB script, the language of grub.cfg (bootcfg_script.c): lexing with GRUB's quoting rules,
 * the expansion of one word into arguments, and parsing into commands and blocks. Internal to
 * src/tools/bootcfg*.c; bootcfg_grub.c evaluates what this parses.
 */
#ifndef LIGERO_TOOLS_BOOTCFG_SCRIPT_H
#define LIGERO_TOOLS_BOOTCFG_SCRIPT_H

#include "tools/bootcfg.h"

#include <stdbool.h>
#include <stddef.h>

#define SCRIPT_MAX_EXPANDED (16u << 20) /* bytes that variable expansion may produce in all */

enum tk { TK_WORD, TK_SEP, TK_LBRACE, TK_RBRACE, TK_EOF };

struct tok {
	enum tk kind;
	const char *s; /* the word as written, quotes included */
	size_t len;
	unsigned line;
};

struct toks {
	struct tok *v;
	size_t n, cap;
};

/* Arguments being built from words. */
struct words {
	char **v; /* NULL-terminated once anything was flushed */
	size_t n;
	char *cur;
	size_t len, cap;
	bool have;	/* the current word exists even if empty ("" or '') */
	size_t *budget; /* bytes expansion may still produce, or NULL */
};

enum nk { N_CMD, N_IF, N_MENUENTRY, N_SUBMENU, N_SKIP };

/* A command or block; lists are chained by next. */
struct node {
	enum nk kind;
	size_t w0, nw; /* N_CMD: its words; menuentry/submenu: their arguments (token indices) */
	unsigned line;
	struct node *body;  /* menuentry, submenu; skipped function and loop bodies */
	struct node **cond; /* if: conditions and their bodies, then else */
	struct node **then;
	size_t nbr;
	struct node *els;
	struct node *next;
};

/* Split text into words, separators (newline, ';') and braces, ending with TK_EOF. */
int script_lex(const char *s, size_t len, struct toks *t);
/* Expand one word as written into w (variables from env; env NULL: none are expanded). */
int script_expand(const char *s, size_t len, const struct bootcfg_env *env, struct words *w);
/* End the current argument. */
int script_flush(struct words *w);
/* Parse the tokens into a list of commands; the whole input must be consumed. */
int script_parse(const struct toks *t, struct node **out);
void script_free(struct node *n);
/* A character of a variable name. */
bool script_name_char(char c);

#endif
