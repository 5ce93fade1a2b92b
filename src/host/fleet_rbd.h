/*
 * A fleet whose base is an RBD snapshot (rbd:POOL/IMAGE@SNAP[:conf=F][:id=U]): each member's
 * disk is an RBD clone of that snapshot, rbd:POOL/PREFIXi with the base's options, made by the
 * block layer's create (which protects the snapshot and calls rbd_clone3). Private to
 * fleet.c.
 */
#ifndef LIGERO_HOST_FLEET_RBD_H
#define LIGERO_HOST_FLEET_RBD_H

#include <stdbool.h>

struct fleet_rbd {
	char *head; /* "rbd:POOL/" or "rbd:POOL/NS/": where the members' images go */
	char *tail; /* the base's options (":conf=F:id=U"), or "": every member name keeps them */
};

/* Parse base and check that its snapshot exists (opened read-only). pool, when not NULL,
 * puts the members in that pool (its default namespace) instead of the base's. Refuses a
 * base without @SNAP (a clone needs a snapshot) and json: names, with one message each. */
int fleet_rbd_base(const char *base, const char *pool, struct fleet_rbd *rb);
void fleet_rbd_free(struct fleet_rbd *rb);

/* Member name's image name (head + name + tail), malloc'd; NULL when memory ran out. */
char *fleet_rbd_member(const struct fleet_rbd *rb, const char *name);

/* The snapshot the clone disk was made from, as an rbd: name with disk's options, malloc'd
 * into *parent. -EINVAL when disk is not a clone, -ENOENT when it does not exist. */
int fleet_rbd_parent(const char *disk, char **parent);

/* disk's image name, as written in it (escapes kept), malloc'd; NULL when disk is not an
 * rbd: name or memory ran out. */
char *fleet_rbd_image(const char *disk);

/* disk with its image name replaced by image (same pool, namespace and options), malloc'd. */
char *fleet_rbd_sibling(const char *disk, const char *image);

#endif
