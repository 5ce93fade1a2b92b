/*
 * Fleets: N VMs made from one base image for a class or a test bench, handled as one. Members
 * are ordinary VMs named PREFIX1..PREFIXN (so every `ligero vm` verb works on each), each on
 * its own qcow2 overlay DIR/PREFIXi.qcow2 of the base, sysprepped before its first boot
 * (hostname = its name, machine-id emptied, SSH host keys and udev net rules removed) and with
 * a MAC derived from the prefix and its index. The base is only ever opened read-only; the
 * block layer's base guard refuses writing it while overlays exist. A base on a Ceph cluster,
 * an RBD snapshot rbd:POOL/IMAGE@SNAP, gets RBD clones rbd:POOL/PREFIXi instead of overlays
 * (with the base's options, so any host with that conf can run any member); its guard is the
 * snapshot's protection, which the cluster keeps while clones exist.
 *
 * A VM belongs to fleet PREFIX when its name is PREFIX followed by an index (a decimal number
 * without leading zeros). A prefix cannot end in a digit, so no name belongs to two fleets.
 */
#ifndef LIGERO_HOST_FLEET_H
#define LIGERO_HOST_FLEET_H

#include "host/registry.h"
#include "host/runtime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FLEET_MAX_COUNT 1000 /* MACs hold the index in 12 bits; a class is tens */
#define FLEET_MAX_NICS	16   /* and the NIC number in 4 */

/* 0 when prefix can name a fleet of count members (1..FLEET_MAX_COUNT; every member name a
 * valid VM name; not ending in a digit), else -EINVAL with a message saying why. */
int fleet_prefix_check(const char *prefix, unsigned long count);

/* PREFIX followed by index into name. -EINVAL when it does not fit a VM name. */
int fleet_member_name(const char *prefix, unsigned index, char name[VMDEF_NAME_MAX + 1]);

/* The index of name in fleet prefix (>= 1), or 0 when name is not a member's. */
unsigned fleet_member_index(const char *prefix, const char *name);

/* The MAC of member index's NIC nic: locally administered and unicast (first byte xxxxxx10),
 * three bytes of a hash of the prefix, then the index (12 bits) and the NIC (4 bits). Two
 * members of one fleet never share one; another fleet's may (fleet_create checks). */
void fleet_member_mac(const char *prefix, unsigned index, unsigned nic,
		      char mac[VMDEF_MAC_LEN + 1]);

/* The defined members of prefix, sorted by index; free with registry_names_free. An empty
 * list is not an error. */
int fleet_members(const struct registry *r, const char *prefix, char ***names, size_t *n);

struct fleet_create_opts {
	const char *prefix;
	unsigned count;
	const char *base;      /* the image the overlays sit on (or an RBD snapshot); read-only */
	const char *disk_dir;  /* where the overlays go; NULL: the base's directory */
	const char *disk_pool; /* an RBD base's clones go in this pool; NULL: the base's */
	/* What every member gets: memory, cpus, kernel, initrd, cmdline, balloon, rng,
	 * autostart; its nets (bridge only: each member's MAC replaces any given) and its disks
	 * (read-only ones only: they are shared), after the member's overlay. */
	const struct vmdef *tmpl;
	bool sysprep; /* false: the overlays are left as qemu-img create -b makes them */
};

/* Create the fleet, all or nothing: under the registry's lock, check that no defined VM's
 * name belongs to the fleet, that no overlay file exists and no member's MAC is taken; then per
 * member the overlay, its sysprep and its definition. When anything fails, every overlay and
 * definition made so far is removed, and the message names the member and the file. */
int fleet_create(const struct registry *r, const struct fleet_create_opts *o);

/* The overlay file of member name in dir, malloc'd (NULL when memory ran out). */
char *fleet_overlay_path(const char *dir, const char *name);

/* Give every member a fresh overlay of its base (the backing file its overlay records), with
 * the same path and definition (so the same MAC), sysprepped again when sysprep is set.
 * Refused (-EBUSY, naming them) when any member runs: all members' locks are held throughout.
 * Each overlay is replaced by a rename, so a failure leaves a member's old overlay whole. An
 * RBD member gets a fresh clone of its parent snapshot, made as IMAGE.reset, then renamed
 * over the old image once that is removed. */
int fleet_reset(const struct registry *r, const char *prefix, bool sysprep);

/* Remove every member's definition and, with disks, its overlay (its first disk, when that is
 * an overlay no other VM uses: never the base, never a read-only disk; kept is told of each
 * one left in place, and why). An RBD member's clone is removed from its pool (only a clone,
 * only when no other definition names it; one the cluster refuses to remove, having snapshots
 * or clients, is reported to kept). Refused (-EBUSY, naming them) when any member runs. */
int fleet_delete(const struct registry *r, const char *prefix, bool disks,
		 void (*kept)(void *priv, const char *name, const char *why), void *priv);

enum fleet_action { FLEET_START, FLEET_STOP, FLEET_RESTART, FLEET_KILL };

struct fleet_run_opts {
	enum fleet_action action;
	unsigned parallel; /* at most this many members at once; 0: the online CPUs */
	const char *exe;   /* the VMM (vm_start's exe) */
	int start_timeout_ms;
	int stop_timeout_s; /* stop and restart: the power button's grace */
	bool force;	    /* stop: at once, hard */
};

/* What happened to one member. */
struct fleet_outcome {
	const char *name;
	int ret;	   /* 0, or -errno with message */
	bool already;	   /* nothing to do: it already ran (start) or was not running */
	pid_t pid;	   /* start, restart: the VM's process */
	char message[600]; /* on failure, the recorded error */
};

/* Run the action on each of names, up to parallel at once, each in its own worker process
 * (so one member's slow start or failure holds up no other); report is called in the caller's
 * process as each finishes, in completion order. Returns how many failed (0: all succeeded),
 * or -errno when no worker could be started. */
int fleet_run(const struct registry *r, char *const *names, size_t n,
	      const struct fleet_run_opts *o,
	      void (*report)(void *priv, const struct fleet_outcome *out), void *priv);

/* One member as `fleet list` shows it. */
struct fleet_member_info {
	char name[VMDEF_NAME_MAX + 1];
	bool valid; /* its definition parses (else the fields below are unknown) */
	struct vm_status st;
	uint64_t memory;     /* promised (the definition's) */
	uint64_t rss;	     /* the VM process's, when it runs; 0 else */
	char *disk;	     /* its first disk, or NULL */
	int64_t disk_actual; /* bytes that file occupies on the host, -1 when unknown */
};

/* Every member's state and figures; free with fleet_info_free. */
int fleet_info(const struct registry *r, const char *prefix, int qmp_timeout_ms,
	       struct fleet_member_info **out, size_t *n);
void fleet_info_free(struct fleet_member_info *m, size_t n);

#endif
