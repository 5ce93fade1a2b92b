/* A VM's disks as files other VMs and overlays may depend on: what `vm delete --disks` may
 * remove. */
#ifndef LIGERO_HOST_VMDISKS_H
#define LIGERO_HOST_VMDISKS_H

#include "host/registry.h"

/* 0 when the image at path (a disk of VM name) may be removed with it; -EBUSY with a message
 * naming the user when another definition has it as a disk, or has it anywhere in a disk's
 * backing chain, or when the block layer has recorded overlays that still use it (a base). */
int vm_disk_removable(const struct registry *r, const char *name, const char *path);

#endif
