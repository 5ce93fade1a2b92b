/*
 * Sysprep: make a cloned disk unique the way virt-sysprep does (machine ID, SSH host keys,
 * network identity, leases, logs, ...), by writing into its filesystem through src/fs with
 * nothing booted. Writes land in the top image of a chain, so an overlay is changed and its
 * base is not. Only ext2/3/4 roots can be written; an XFS root is refused with that reason.
 *
 * The operations keep virt-sysprep's names where they match; `hostname` and `random-seed` are
 * what virt-sysprep's customize step does (--hostname, the random seed it always writes).
 */
#ifndef LIGERO_TOOLS_SYSPREP_H
#define LIGERO_TOOLS_SYSPREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sysprep_ctx;

struct sysprep_op {
	const char *name;
	bool by_default;
	const char *summary;
	int (*run)(struct sysprep_ctx *c);
};

/* The operations, in the order they run. */
const struct sysprep_op *sysprep_ops(size_t *n);
/* The default set as a mask (bit i = sysprep_ops()[i]). */
uint32_t sysprep_default_ops(void);
/* virt-sysprep's --operations: a comma list applied left to right; "defaults", "all", "none",
 * NAME adds, -NAME removes. -EINVAL with a message naming an unknown operation. */
int sysprep_ops_parse(const char *list, uint32_t *mask);

struct sysprep_opts {
	uint32_t ops;	      /* operations to run (mask) */
	const char *hostname; /* the hostname operation's new name; NULL: that operation skips */
	bool dry_run;	      /* find and report the changes, write nothing */
};

/* One change, as reported: which operation, which guest path, what happened. */
struct sysprep_change {
	const char *op;
	char *path;
	char action[16]; /* removed, emptied, rewritten, edited, created, linked */
	char *detail;	 /* "" or a short explanation */
};

struct sysprep_result {
	char *root;	 /* the filesystem written: "disk.qcow2:2" */
	char *os_id;	 /* os-release ID, or "" */
	char family[16]; /* "debian", "rhel" or "other" */
	struct sysprep_change *changes;
	size_t nchanges, cap;
	char **notes; /* what the user should know (first-boot helpers, regeneration) */
	size_t nnotes;
};

/* True when name is a valid hostname (RFC 1123: dot-separated labels of letters, digits and
 * inner hyphens, 1-63 bytes each, 253 in all). */
bool sysprep_hostname_valid(const char *name);

/* Sysprep the disk at addr ("DISK" or "DISK:N"). Refused with a message: an image another
 * process holds (-EAGAIN), a base image overlays depend on (-EPERM, the block layer's base
 * guard), no Linux root filesystem found, a root that is not ext (XFS: -ENOTSUP). The disk is
 * opened for writing even for a dry run (so the same refusals apply); a dry run's filesystem is
 * opened read-only and nothing is written. */
int sysprep_run(const char *addr, const struct sysprep_opts *o, struct sysprep_result *r);
void sysprep_result_free(struct sysprep_result *r);

#endif
