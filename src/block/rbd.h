/* The RBD driver's hooks into the block layer (block.c); everybody else uses block.h. */
#ifndef LIGERO_BLOCK_RBD_H
#define LIGERO_BLOCK_RBD_H

#include "block/block.h"

/* The driver: an RBD image is raw bytes, so it calls itself "raw" as qemu-img does. */
extern const struct bdev_driver bdev_rbd_driver;

/* Does name address an RBD image (rbd:..., json:{"driver":"rbd",...})? */
bool bdev_rbd_is_name(const char *name);
/* Create an RBD image, or with opts->backing_file naming an RBD snapshot, a clone of it
 * (the snapshot protected first when it is not). */
int bdev_rbd_create(const char *name, const struct bdev_create_opts *opts);
/* Remove the RBD image name names (not a snapshot; rbd_remove): -ENOENT when there is none,
 * -ENOTEMPTY when it has snapshots, -EBUSY when a client has it open; each with a message. */
int bdev_rbd_remove(const char *name);
/* Rename the RBD image name names to image, in its pool and namespace (rbd_rename): -EEXIST
 * when that name is taken, -ENOENT when name's image does not exist. */
int bdev_rbd_rename(const char *name, const char *image);

/* Where an image is (rbd_name.c), parsed from rbd:pool/[namespace/]image[@snap][:k=v...]
 * (QEMU's syntax, "\" escapes ':', '@', '/', '=' and itself) or a json: name. */
struct rbd_target {
	char *pool, *ns, *image, *snap; /* ns "" = the default namespace; snap NULL = the head */
	char *conf;			/* config file; NULL: librados's default search */
	char *user;			/* id=, without "client."; NULL: admin */
	char *mon_host;			/* from a json: name's server list, or NULL */
	char **keys, **vals;		/* other options, set with rados_conf_set */
	size_t nkv;
	char *spec; /* "pool/[ns/]image[@snap]" for messages, unescaped */
};
int rbd_target_parse(const char *name, struct rbd_target *t);
void rbd_target_free(struct rbd_target *t);

#endif
