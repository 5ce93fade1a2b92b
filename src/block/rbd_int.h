/* What the RBD driver's files (rbd.c: I/O, rbd_admin.c: create, clone, snapshots) share. */
#ifndef LIGERO_BLOCK_RBD_INT_H
#define LIGERO_BLOCK_RBD_INT_H

#include "block/rbd.h"

#include "block/rbd_dl.h"

#include <pthread.h>

/* A write handed to librbd and not yet complete (write-behind, see rbd.c). */
struct rbd_wb;

#define RBD_BS_RUNS 256

struct rbdc {
	rados_t cluster;
	rados_ioctx_t io;
	rbd_image_t image;
	struct rbd_target t;
	uint64_t obj_size, features;
	bool locked;		 /* we hold the image's exclusive lock */
	bool write_behind;	 /* writes return once handed to librbd (see rbd.c) */
	pthread_mutex_t lock;	 /* everything below */
	pthread_cond_t cond;	 /* a write-behind request completed */
	struct rbd_wb *inflight; /* list of writes in flight */
	uint64_t wb_bytes;
	unsigned wb_count;
	int wb_err;		   /* first failure of a write in flight (-errno), 0 */
	uint64_t wb_err_off;	   /* its offset */
	struct {		   /* block status, cached until the next change */
		uint64_t off, end; /* what the runs cover */
		size_t n;
		struct {
			uint64_t end;
			bool data;
		} run[RBD_BS_RUNS];
	} bs;
};

/* Connect to the cluster and open the pool (and namespace) t names; errors name `name`.
 * cache: librbd's own cache (rbd_cache), which QEMU turns off for cache=none. */
int rbd_connect(const char *name, const struct rbd_target *t, bool cache, rados_t *cluster,
		rados_ioctx_t *io);
/* A librbd error as a message on name. */
int rbd_fail(const char *name, int r, const char *what);

int rbd_snapshot_list(struct bdev *bs, struct bdev_snapshot **list, int *n);
int rbd_snapshot_create(struct bdev *bs, const char *name);
int rbd_snapshot_apply(struct bdev *bs, const char *name);
int rbd_snapshot_delete(struct bdev *bs, const char *name);
struct json_object *rbd_info_specific(struct bdev *bs);
/* Wait for every write in flight and report a failure among them. */
int rbd_drain(struct bdev *bs);

#endif
