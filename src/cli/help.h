/* `ligero help`: the verbs' synopses, generated at build time from the SYNOPSIS sections of
 * X, so the two cannot
 * disagree. */
#ifndef LIGERO_CLI_HELP_H
#define LIGERO_CLI_HELP_H

#include <stddef.h>

struct help_synopsis {
	const char *group; /* "img": its page is ligero-img(1) */
	const char *verb;  /* "" for a group that is one command (run, sparsify) */
	const char *text;  /* "usage: ligero ...\n", one or more forms, wrapped to 80 columns */
};

extern const struct help_synopsis help_synopses[];
extern const size_t help_nsynopses;

#endif
