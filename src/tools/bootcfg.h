/*
 * Boot loader configuration files, parsed the way the boot loaders read them: GRUB 2's grub.cfg
 * (a small evaluator of the GRUB script that grub-mkconfig writes: set, if/elif/else with [ ],
 * menuentry, submenu, search, linux, initrd; nothing is run), Boot Loader Specification entries
 * (/boot/loader/entries/ *.conf, as GRUB's blscfg reads them), the GRUB environment block
 * (grubenv) and GRUB legacy's menu.lst.
 *
 * Every function here is pure: it takes the file's bytes, never touches a disk, and rejects what
 * it cannot make sense of with -EINVAL and a message (bytes from a guest disk are untrusted).
 * tools/bootdisk.c finds the files on a disk and boots the entry.
 */
#ifndef LIGERO_TOOLS_BOOTCFG_H
#define LIGERO_TOOLS_BOOTCFG_H

#include <stdbool.h>
#include <stddef.h>

/* Largest configuration file parsed (a generated grub.cfg is a few KiB to some 100 KiB). */
#define BOOTCFG_MAX_FILE (4u << 20)
/* Deepest submenu nesting kept (GRUB's own menus use one level). */
#define BOOTCFG_MAX_DEPTH 8

/* Variables: GRUB's environment (grubenv, `set`), in the order they were first set. */
struct bootcfg_env {
	size_t n;
	char **keys, **vals;
};

/* The value of key, or NULL when unset. */
const char *bootcfg_env_get(const struct bootcfg_env *env, const char *key);
/* Set (or replace) key; -ENOMEM on failure. */
int bootcfg_env_set(struct bootcfg_env *env, const char *key, const char *val);
/* Copy every variable of src into dst (replacing ones of the same name). */
int bootcfg_env_merge(struct bootcfg_env *dst, const struct bootcfg_env *src);
void bootcfg_env_free(struct bootcfg_env *env);

/* A file named by a boot entry. part says on which filesystem: BOOTCFG_PART_CONFIG is the one
 * that holds the configuration file (GRUB's $root when nothing changed it), 0 the whole disk
 * (no partition table), N partition N as Linux numbers it, BOOTCFG_PART_OTHER a device that is
 * not this disk (another disk, LVM, RAID: path then keeps the device, "(lvm/root)/vmlinuz"). */
#define BOOTCFG_PART_CONFIG (-1)
#define BOOTCFG_PART_OTHER  (-2)
struct bootcfg_path {
	int part;
	char *path;
};

/* One bootable entry (an entry without a Linux kernel, such as a chainloader, is left out). */
struct bootcfg_entry {
	char *title; /* as the menu shows it; inside submenus "Submenu>Title" */
	char *id;    /* GRUB's --id path, the BLS file name without .conf, or NULL */
	char *version;
	struct bootcfg_path kernel;
	struct bootcfg_path *initrd; /* loaded one after the other, as GRUB concatenates them */
	size_t ninitrd;
	char *options; /* the kernel command line, as the boot loader would pass it */
	/* Position in the menu, for GRUB's `default` (numbers count every item of a level,
	 * bootable or not): level 0 is the top menu. */
	size_t depth;
	struct {
		int index;
		char *title, *id;
	} lvl[BOOTCFG_MAX_DEPTH];
};

struct bootcfg_menu {
	struct bootcfg_entry *v;
	size_t n;
	size_t def;		/* the default entry (0 when the configuration names none) */
	struct bootcfg_env env; /* grub.cfg: the variables once the file has been evaluated */
};

void bootcfg_menu_free(struct bootcfg_menu *m);

/*
 * Find an entry the way GRUB's `default` names one: "N" (the Nth item of the top menu, counting
 * items that are not bootable), a title or an --id, or a path of those through submenus joined
 * by '>' ("1>2", "gnulinux-advanced-UUID>gnulinux-6.1.0-18-amd64-advanced-UUID"). A name that
 * stops at a submenu picks the submenu's first entry. Returns the index in m->v, or -1.
 */
long bootcfg_menu_find(const struct bootcfg_menu *m, const char *spec);

/* Parse a GRUB environment block (grubenv: "# GRUB Environment Block", then name=value lines,
 * '\' escaping, '#' padding to 1024 bytes) into env. */
int bootcfg_grubenv_parse(const char *buf, size_t len, struct bootcfg_env *env);

/* How grub.cfg's `search` finds a filesystem. kind is "uuid", "label" or "file"; returns the
 * partition holding it (0 for a whole-disk filesystem), or -1. */
typedef int (*bootcfg_search_fn)(void *priv, const char *kind, const char *what);

/*
 * Evaluate grub.cfg. env holds what load_env would load (grubenv), or NULL. The menu gets every
 * menuentry with a `linux`, `linux16` or `linuxefi` command, the default entry (the `default`
 * variable as the file leaves it), and the final variables.
 */
int bootcfg_grub_parse(const char *buf, size_t len, const struct bootcfg_env *env,
		       bootcfg_search_fn search, void *priv, struct bootcfg_menu *out);

/*
 * One BLS entry file (name is its file name, "ID.conf"). title, version, linux, initrd (each
 * line one more), options (several lines are joined) and the `$var` in options are expanded
 * from env as blscfg does; an entry without `linux` is -ENOENT.
 */
int bootcfg_bls_parse(const char *name, const char *buf, size_t len, const struct bootcfg_env *env,
		      struct bootcfg_entry *out);
/* Order BLS entries as GRUB's blscfg does (newest version first, then by file name) and pick
 * the default (def_spec: GRUB's `default`, i.e. saved_entry: an id, a title or an index). */
void bootcfg_bls_sort(struct bootcfg_menu *m, const char *def_spec);

/* GRUB legacy's menu.lst / grub.conf: default, title, root (hd0,N), kernel, initrd. */
int bootcfg_legacy_parse(const char *buf, size_t len, struct bootcfg_menu *out);

/* Version comparison of GRUB's blscfg (rpm's rpmvercmp): <0, 0, >0. */
int bootcfg_rpmvercmp(const char *a, const char *b);
/* `sort -V` (GNU filevercmp) order of two file names: <0, 0, >0. */
int bootcfg_filevercmp(const char *a, const char *b);
/* The command line GRUB's linux loader builds from words: joined by spaces, a word holding a
 * space put in double quotes, \ ' " escaped. malloc'ed, NULL on ENOMEM. */
char *bootcfg_grub_cmdline(char *const *words, size_t n);
/* Split a string into words by GRUB's quoting rules (no variable expansion): malloc'ed array of
 * malloc'ed words. -EINVAL with a message on an unterminated quote. */
int bootcfg_grub_words(const char *s, char ***words, size_t *n);
void bootcfg_words_free(char **words, size_t n);

void bootcfg_entry_free(struct bootcfg_entry *e);

#endif
