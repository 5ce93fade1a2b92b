/*
 * OpenVZ (or any Linux root tree) to KVM: `ligero migrate` writes a container's files into a
 * new qcow2 overlay of a base image (a normal installation of the same distribution release),
 * keeping what belongs to the VM (kernel, modules, firmware, /boot, fstab, udev, the bootloader
 * configuration), merging the base's kernel packages into the package database, replacing
 * venet with an eth0 configuration, undoing what the container template did to the system, and
 * recording every change with a backup. A re-sync copies only what changed since.
 *
 * docs/ligero-migrate.md describes the rules and the report.
 */
#ifndef LIGERO_TOOLS_MIGRATE_H
#define LIGERO_TOOLS_MIGRATE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

struct migrate_opts {
	const char
	    *source; /* a directory, a tar archive, a disk image, or ssh://[user@]host[:port] */
	const char *base;   /* the base image (first run); a re-sync uses the overlay's backing */
	const char *output; /* the VM's disk: created by a first run, updated by a re-sync */
	const char *config; /* the container's vzctl configuration (CTID.conf, ve.conf), or NULL */
	const char *mac;    /* the VM's MAC address, or NULL for a stable generated one */
	const char *rsh;    /* the ssh command for ssh:// sources (default "ssh") */
	const char *const *ips; /* --ip ADDR[/PREFIX]: replace the container's addresses */
	size_t nips;
	const char *const *gateways; /* --gateway: IPv4 and/or IPv6 default gateways */
	size_t ngateways;
	bool resync;   /* update an existing overlay */
	bool dry_run;  /* compute the report, write nothing */
	bool force;    /* go ahead although the base's release differs from the container's */
	bool checksum; /* compare contents, not only size, time, mode and owner */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	volatile sig_atomic_t
	    *stop; /* raised: stop at the next file, leaving a resumable overlay */
};

/* One change ligero made to the guest's files, and why. */
struct migrate_change {
	char *path;   /* guest path */
	char *action; /* "modified", "created", "removed", "merged" */
	char *why;
	char *backup; /* guest path of the copy of what was there, or NULL */
};

/* What the copy did (a dry run: would do). */
struct migrate_counts {
	uint64_t entries;   /* entries the source holds */
	uint64_t created;   /* new in the overlay */
	uint64_t updated;   /* replaced: content, type or link target changed */
	uint64_t attrs;	    /* only owner, mode or extended attributes changed */
	uint64_t linked;    /* hard links made */
	uint64_t unchanged; /* already right (quick check, or --checksum) */
	uint64_t deleted;   /* removed from the overlay: the container does not have them */
	uint64_t kept;	    /* left alone: they belong to the VM */
	uint64_t bytes;	    /* file content written */
};

struct migrate_addr {
	int family; /* 4 or 6 */
	char addr[48];
	int prefix;
};

struct migrate_report {
	bool dry_run, resync, resumed;
	char *source, *source_kind, *output, *base;
	char *os_pretty, *os_id, *os_version; /* the container's */
	char *base_os;			      /* the base's PRETTY_NAME */
	char *usr_layout;		      /* "merged" or "split" */
	char *hostname;
	char *mac;
	char *net_style; /* "ifupdown", "networkd", "ifcfg" */
	struct migrate_addr *addrs;
	size_t naddrs;
	char **gateways, **dns, **search;
	size_t ngateways, ndns, nsearch;
	char *pkg_system;   /* "dpkg", "rpm" or NULL */
	char **kernel_pkgs; /* dpkg: the base's packages merged into the container's database */
	size_t nkernel_pkgs;
	char *ctid, *ostemplate, *ve_layout; /* from the configuration, when given */
	uint64_t ram, disk;		     /* bytes, from PHYSPAGES and DISKSPACE (0: unknown) */
	struct migrate_counts counts;
	struct migrate_change *changes;
	size_t nchanges;
	char **notes; /* what the user should know or do (the MAC to give the VM...) */
	size_t nnotes;
};

/* Parse "192.0.2.10", "192.0.2.10/24", "192.0.2.10/255.255.255.0" or "2001:db8::1/64" (IPv4
 * without a prefix: /32, IPv6: /128). */
bool migrate_addr_parse(const char *s, struct migrate_addr *a);

/* Migrate (or, with o->resync, re-sync) as o says, filling r (freed with migrate_report_free
 * whatever the result). Returns 0 or a negative errno with the message recorded; -EINTR when
 * o->stop was raised (the overlay is consistent, and running again resumes). */
int migrate_run(const struct migrate_opts *o, struct migrate_report *r);
void migrate_report_free(struct migrate_report *r);
/* The report as JSON (the caller puts it). */
struct json_object *migrate_report_json(const struct migrate_report *r);

#endif
