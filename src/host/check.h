/*
 * `ligero host check`: is this host ready to run VMs, and if not, what to do about it, in the
 * manner of libvirt's virt-host-validate. Every check reads files under a root directory that
 * stands for / (so tests can hand it a fake /proc, /sys and /dev).
 */
#ifndef LIGERO_HOST_CHECK_H
#define LIGERO_HOST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum check_result { CHECK_PASS, CHECK_WARN, CHECK_FAIL };

struct check_item {
	const char *name; /* "kvm-device", "cpu-virt", ... (static) */
	enum check_result result;
	char message[512];
	char fix[512]; /* what to do, "" for a pass */
};

struct check_opts {
	const char *root; /* "/" for this host */
	/* Whose access to /dev/kvm is judged. On the real root with the caller's own ids the
	 * device is opened; elsewhere its mode, owner and group decide. */
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	int ngroups;
	bool live;	   /* uid/gid are this process's: open /dev/kvm to be sure */
	uint64_t promised; /* memory the defined VMs promise, bytes */
	unsigned nvms;
	const char *const *bridges; /* bridges the definitions name (may repeat) */
	size_t nbridges;
};

/* Run every check, in a fixed order. *items is malloc'd. 0 or -ENOMEM. */
int host_check(const struct check_opts *o, struct check_item **items, size_t *n);

/* Whether VMs can run with hardware acceleration: no check failed. */
bool host_check_accelerated(const struct check_item *items, size_t n);

const char *check_result_name(enum check_result r);

#endif
