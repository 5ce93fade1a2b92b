/* `ligero run` booting a disk's own kernel (run_boot.c), called from run.c. */
#ifndef LIGERO_CLI_RUN_BOOT_H
#define LIGERO_CLI_RUN_BOOT_H

#include "tools/bootdisk.h"

#include <stdbool.h>

struct vm_config;

struct run_boot {
	const char *entry; /* --boot-entry */
	bool list;	   /* --list-boot-entries */
	bool json;	   /* --output=json */
	bool output;	   /* --output was given */
	struct bootdisk_image img;
};

/* Usage lines for these options. */
extern const char run_boot_usage[];
/* --output=human|json; 0, or 1 after printing an error. */
int run_boot_output(struct run_boot *rb, const char *fmt);
/* With no --kernel, find the first --disk's boot entries: list them (returns -1: done), or
 * read the chosen one and point cfg's kernel, initrd and command line at it (0). 1 after
 * printing an error. With --kernel, only checks that no disk-boot option was given. */
int run_boot_prepare(struct vm_config *cfg, struct run_boot *rb);
/* Free what was read, once vm_create has returned. */
void run_boot_release(struct run_boot *rb, struct vm_config *cfg);

#endif
