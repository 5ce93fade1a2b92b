/* Internals shared by the migrate_*.c files. Not part of the tools/ API. */
#ifndef LIGERO_TOOLS_MIGRATE_PRIV_H
#define LIGERO_TOOLS_MIGRATE_PRIV_H

#include "fs/copy.h"
#include "tools/migrate.h"
#include "util/strmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct extfs;
struct fs_disk;
struct gfs;

/* Where ligero keeps its own files in the guest: the state of the last run and the backups. */
#define MIG_DIR	   "/var/lib/ligero-migrate"
#define MIG_STATE  MIG_DIR "/state.json"
#define MIG_ORIG   MIG_DIR "/orig"
#define MIG_SUFFIX ".ligero-orig"

/* ---- small in-memory trees: the container's files read before the copy (migrate_files.c) */

struct mig_file {
	uint32_t mode, uid, gid;
	struct timespec mtime;
	char *data; /* content or symlink target, NUL-terminated */
	size_t len;
};

struct mig_files {
	struct strmap map; /* relative path ("etc/hostname") -> struct mig_file */
	size_t bytes;
};

int mig_files_put(struct mig_files *f, const char *path, const struct fs_node *n, const void *data,
		  size_t len);
/* The file at path, symlinks resolved inside the tree (the last one with follow), or NULL. */
const struct mig_file *mig_files_get(const struct mig_files *f, const char *path, bool follow);
/* The names in directory dir ("" for the root), sorted. */
int mig_files_list(const struct mig_files *f, const char *dir, char ***names, size_t *n);
void mig_files_del(struct mig_files *f, const char *path);
void mig_files_free(struct mig_files *f);
void mig_strv_free(char **v, size_t n);
/* The names in a directory of a read-only filesystem (none when it is missing). */
int mig_gfs_names(struct gfs *fs, const char *dir, char ***out, size_t *n);

/* What a source reads before the copy: single files, trees, and nodes alone (symlinks). */
enum { MIG_PROBE_FILE, MIG_PROBE_TREE, MIG_PROBE_NODE };
struct mig_probe_item {
	const char *path; /* relative */
	int how;
};
extern const struct mig_probe_item mig_probe_spec[];
/* Probed content is capped (a tree with huge files is not a configuration). */
#define MIG_PROBE_MAX_FILE (16u << 20)

/* ---- sources (migrate_src.c: directories and disk images; migrate_tar.c: tar and ssh) ---- */

struct mig_entry {
	const char *path; /* relative to the container's root, "" for the root itself */
	struct fs_node node;
	const char *hardlink; /* archives: an earlier entry this one is a hard link to */
	char link_key[48];    /* trees and images: the same for every name of a file with several */
	bool no_descend;      /* a directory on another filesystem: its content is left out */
};
typedef int (*mig_entry_fn)(struct mig_entry *e, void *priv);

struct mig_src;
struct mig_src_ops {
	/* Read what mig_probe_spec names into files (absent paths are skipped). */
	int (*probe)(struct mig_src *s, struct mig_files *files);
	/* Every entry, each directory before what it holds. cb's non-zero return stops. */
	int (*walk)(struct mig_src *s, mig_entry_fn cb, void *priv);
	void (*close)(struct mig_src *s);
};

struct mig_src {
	const struct mig_src_ops *ops;
	char *name;	  /* as given */
	const char *kind; /* "directory", "tar", "ssh", "image" */
	uint64_t total;	  /* progress: bytes to go through (0: unknown) */
	uint64_t done;	  /* bytes gone through */
	bool want_total;  /* asked for progress: sources that must scan to know total do */
	const char *rsh;
	const struct mig_files *names; /* the container's passwd and group (archived ACL names) */
	const char *const *excludes;   /* ssh: guest paths the remote tar leaves out */
	int remote_status;	       /* ssh: the remote tar's exit status (1: files changed) */
	char remote_said[512];	       /* ssh: what it wrote on stderr then */
	void *impl;
};

int mig_src_open(struct mig_src **out, const char *spec, const char *rsh, bool want_total);
void mig_src_close(struct mig_src *s);
int mig_tar_open(struct mig_src *s);
int mig_ssh_open(struct mig_src *s);

/* ---- what belongs to the VM (migrate_rules.c) ---- */

/* Guest paths the VM keeps whatever the container holds there (whole subtrees). */
extern const char *const mig_vm_paths[];

struct mig_rules {
	struct strmap owned; /* "DIRINO/NAME" of target entries the VM owns */
	struct strmap holds; /* "INO" of target directories with owned entries below them */
	struct strmap paths; /* guest paths (no leading '/') the VM owns, matched on the source */
};

/* Resolve mig_vm_paths in the target fs; add MIG_DIR. */
int mig_rules_init(struct mig_rules *r, struct extfs *fs);
/* One more owned guest path (a kernel package's file, a file ligero made). Paths whose parent
 * directory the target lacks are matched by name on the source side only. */
int mig_rules_add(struct mig_rules *r, struct extfs *fs, const char *path);
bool mig_rules_owned(const struct mig_rules *r, uint32_t dir, const char *name);
bool mig_rules_holds(const struct mig_rules *r, uint32_t dir);
/* Is a source path (relative) at or under an owned path? */
bool mig_rules_path(const struct mig_rules *r, const char *path);
void mig_rules_free(struct mig_rules *r);

/* ---- the migration's context ---- */

enum { MIG_FAM_OTHER, MIG_FAM_DEBIAN, MIG_FAM_RHEL };

struct mig_ctx {
	const struct migrate_opts *o;
	struct migrate_report *r;
	bool dry;
	int family;
	bool merged; /* the container's /lib is a link to usr/lib */
	struct mig_src *src;
	struct mig_files probe; /* the container's files read first (and, dry, edited) */
	struct mig_files basef; /* the base's copies of files the fixups compare with */
	struct strmap cfg;	/* the container's configuration: KEY -> value */
	struct fs_disk *bdisk;	/* the base, read-only */
	struct gfs *bgfs;
	int root_part;
	struct fs_disk *disk; /* the target: the overlay, or (dry) the base or the overlay */
	struct extfs *fs;
	bool writing; /* the overlay's filesystem is open for writing: the state goes with it */
	struct mig_rules rules;
	struct strmap prev;    /* earlier runs' changes: guest path -> struct migrate_change */
	struct strmap dropped; /* paths the copy replaced with a new version of the source's */
	struct migrate_report prevnet; /* the last run's network settings (addrs, gateways,
					* dns, search, net_style), the default for a re-sync */
	char **pkg_owned;	       /* dpkg: guest paths of the base's kernel packages' files */
	size_t npkg_owned;
	char *status_merged; /* dpkg: the base's stanzas to merge */
};

/* migrate_conf.c: the configuration, os-release, and what the container is */
int mig_conf_read(struct mig_ctx *c, const char *path);
int mig_ct_inspect(struct mig_ctx *c);
/* "KEY=value" text (os-release, ifcfg, vzctl's .conf): the unquoted value of key, or NULL. */
char *mig_kv_get(const char *text, const char *key);
bool mig_addr_parse(const char *s, struct migrate_addr *a, int default_prefix4);

/* migrate_edit.c: the guest's files as the fixups see and change them: the overlay after the
 * copy, or in a dry run the container's probed files. Paths are absolute guest paths. */
int mig_read(struct mig_ctx *c, const char *path, char **buf, size_t *len);
int mig_lstat(struct mig_ctx *c, const char *path, uint32_t *mode);
int mig_readlink(struct mig_ctx *c, const char *path, char *buf, size_t size);
int mig_list(struct mig_ctx *c, const char *dir, char ***names, size_t *n);
/* Create or replace a regular file (an existing one keeps its owner and mode). No change (and
 * nothing recorded) when the content is already that. */
int mig_write(struct mig_ctx *c, const char *path, const char *data, size_t len, uint32_t mode,
	      const char *why);
int mig_remove(struct mig_ctx *c, const char *path, const char *why);
int mig_symlink(struct mig_ctx *c, const char *path, const char *target, const char *why);
int mig_record(struct mig_ctx *c, const char *path, const char *action, const char *why,
	       const char *backup);
void mig_note(struct mig_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The guest path of path's backup (malloc'ed). */
char *mig_backup_path(const char *path);
/* A file ligero writes for itself (the state), outside the change list. */
int mig_put_file(struct mig_ctx *c, const char *path, const char *data, size_t len);

/* migrate_sync.c: the copy */
int mig_sync(struct mig_ctx *c);

/* migrate_pkg.c: dpkg kernel packages (found before the copy, merged after), rpm's unit */
int mig_pkg_prepare(struct mig_ctx *c);
int mig_pkg_fix(struct mig_ctx *c);
/* dpkg's status text with the stanzas of packages it does not have installed appended (a
 * stanza of the same package that is not installed gives way); *merged counts them. */
int mig_dpkg_merge(const char *status, const char *stanzas, char **out, size_t *olen,
		   size_t *merged);

/* migrate_net.c: venet out, eth0 in */
int mig_net_fix(struct mig_ctx *c);
/* The interfaces(5) text without venet stanzas (and without what an earlier run added);
 * with collect, the venet addresses go to c->r. *had: there was venet. */
char *mig_interfaces_strip(struct mig_ctx *c, const char *text, bool collect, bool *had);
/* The default MAC: 52:54:00 and three bytes of a hash of the container's identity. */
void mig_net_default_mac(struct mig_ctx *c, char mac[18]);

/* migrate_fix.c: what the container template did */
int mig_fix_leftovers(struct mig_ctx *c);
/* Read the base's copies of the files mig_fix_leftovers compares with. */
int mig_fix_prepare(struct mig_ctx *c);

/* migrate_report.c: the state file and the report */
/* *state: -1 no state, 0 an unfinished run, 1 a finished one. */
int mig_state_load(struct mig_ctx *c, int *state);
int mig_state_save(struct mig_ctx *c, bool complete);
void mig_prev_free(struct mig_ctx *c);

#endif
