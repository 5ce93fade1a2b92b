/* The NBD client driver's hooks into the block layer (block.c); everybody else uses block.h. */
#ifndef LIGERO_BLOCK_NBD_H
#define LIGERO_BLOCK_NBD_H

#include "block/block.h"

/* The driver: an NBD export is raw bytes, so it calls itself "raw" as qemu-img does. */
extern const struct bdev_driver bdev_nbd_driver;

/* Does name address an NBD export (nbd:// and friends, nbd:HOST:PORT, json:{"driver":"nbd"})? */
bool bdev_nbd_is_name(const char *name);
/* "Create" an image on an export, as qemu-img does for protocols that cannot: the export must
 * already be at least opts->size bytes and writable. */
int bdev_nbd_create(const char *name, const struct bdev_create_opts *opts);

/* Where an export is (nbd_name.c): parsed from any of the names above. */
struct nbd_target {
	bool is_unix, tls;
	char *host, *port; /* TCP */
	char *path;	   /* Unix socket */
	char *export;	   /* "" is the default export */
	char *tls_dir;	   /* ?tls-certificates=DIR; NULL: libnbd's default place */
	char *canonical; /* the name as qemu-img prints it (nbd+unix://?socket=..., nbd://H:P/E) */
};
/* Parse name; errors name it and say what is wrong. */
int nbd_target_parse(const char *name, struct nbd_target *t);
void nbd_target_free(struct nbd_target *t);

#endif
