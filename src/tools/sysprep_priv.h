/* Sysprep internals shared by the driver (sysprep.c) and the operations (sysprep_ops.c). */
#ifndef LIGERO_TOOLS_SYSPREP_PRIV_H
#define LIGERO_TOOLS_SYSPREP_PRIV_H

#include "tools/sysprep.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct extfs;

enum sysprep_family { FAMILY_OTHER, FAMILY_DEBIAN, FAMILY_RHEL };

struct sysprep_ctx {
	struct extfs *fs;
	const struct sysprep_opts *o;
	struct sysprep_result *r;
	enum sysprep_family family;
	const char *op; /* the operation running, for the changes it records */
};

/* Record a change (and nothing else: the helpers below record their own). */
int sp_record(struct sysprep_ctx *c, const char *path, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a note for the user. */
int sp_note(struct sysprep_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The type (S_IF*) of path without following a final symlink; 0 when absent. Intermediate
 * symlinks resolve inside the guest. */
uint32_t sp_type(struct sysprep_ctx *c, const char *path);
/* The type of what path names after following symlinks; 0 when absent or dangling. */
uint32_t sp_type_follow(struct sysprep_ctx *c, const char *path);
/* A regular file (symlinks followed) whole, NUL-terminated, at most max bytes; NULL when it is
 * absent, not regular or larger (then *too_big is set, when given). */
char *sp_read(struct sysprep_ctx *c, const char *path, size_t max, size_t *len, bool *too_big);
/* The names in a directory (not following a final symlink: a symlinked directory lists as
 * empty), sorted; free with sp_names_free. */
int sp_list(struct sysprep_ctx *c, const char *dir, char ***names, size_t *n);
void sp_names_free(char **names, size_t n);

/* Remove path (a final symlink itself, never its target); a directory with everything in it.
 * Absent: nothing recorded, 0. why becomes the change's detail. */
int sp_remove(struct sysprep_ctx *c, const char *path, const char *why);
/* Empty a regular file (symlinks followed), keeping its inode, owner and mode. */
int sp_truncate(struct sysprep_ctx *c, const char *path, const char *why);
/* Replace a file's content (symlinks followed; created root:root with mode when absent, its
 * directory must exist). action is what is recorded ("rewritten", "edited"). */
int sp_write(struct sysprep_ctx *c, const char *path, const void *buf, size_t len, uint32_t mode,
	     const char *action, const char *why);
/* Make path a symlink to target (an existing non-directory at path is replaced). */
int sp_symlink(struct sysprep_ctx *c, const char *target, const char *path, const char *why);
/* mkdir -p, root:root 0755 (recorded as created). */
int sp_mkdirs(struct sysprep_ctx *c, const char *path);

/* ---- text edits (sysprep_text.c): pure, unit-tested and fuzzed ---- */

/* Drop the lines that start (after blanks) with prefix, in place; 1 if any went. */
int sysprep_drop_lines(char *text, const char *prefix);
/* /etc/hosts with its 127.0.1.1 line naming host ("127.0.1.1<TAB>host", or with a domain
 * "127.0.1.1<TAB>fqdn<TAB>short", as Debian's installer writes it); other 127.0.1.1 lines go;
 * with append, the line is added when there was none. malloc'ed (NULL when out of memory);
 * *changed says whether it differs from text. */
char *sysprep_hosts_edit(const char *text, const char *host, bool append, bool *changed);
/* The family from os-release text (ID, ID_LIKE); *os_id gets ID (malloc'ed) or NULL. */
enum sysprep_family sysprep_os_family(const char *os_release, char **os_id);

/* Fill buf with random bytes from the host (getrandom). */
int sp_random(void *buf, size_t len);

#endif
