/*
 * RBD images created, cloned and snapshotted: `img create` on an rbd: name makes an image (with
 * -b naming an RBD snapshot, a copy-on-write clone of it), `img snapshot` lists, creates,
 * rolls back and removes the image's snapshots, `img info` shows what the cluster knows.
 */
#include "block/rbd_int.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- snapshots: an RBD snapshot's name is its id too (QEMU lists them so) --- */

int rbd_snapshot_list(struct bdev *bs, struct bdev_snapshot **list, int *n)
{
	struct rbdc *s = bs->opaque;
	int max = 16, r;
	rbd_snap_info_t *snaps = NULL;

	for (;;) {
		rbd_snap_info_t *ns = realloc(snaps, (size_t)max * sizeof(*snaps));
		if (!ns) {
			free(snaps);
			return err_set(ENOMEM, "%s: out of memory", bs->filename);
		}
		snaps = ns;
		r = rbd_snap_list(s->image, snaps, &max);
		if (r != -ERANGE)
			break;
	}
	if (r < 0) {
		free(snaps);
		return rbd_fail(bs->filename, r, "could not list snapshots");
	}
	*list = r ? calloc((size_t)r, sizeof(**list)) : NULL;
	if (r && !*list) {
		rbd_snap_list_end(snaps);
		free(snaps);
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	}
	for (int i = 0; i < r; i++) {
		struct bdev_snapshot *sn = &(*list)[i];
		snprintf(sn->id, sizeof(sn->id), "%s", snaps[i].name);
		snprintf(sn->name, sizeof(sn->name), "%s", snaps[i].name);
		sn->vm_state_size = snaps[i].size; /* what qemu-img shows as VM SIZE for RBD */
		sn->icount = 0; /* qemu-img prints 0: QEMU's rbd driver leaves it clear */
	}
	*n = r;
	if (r)
		rbd_snap_list_end(snaps);
	free(snaps);
	return 0;
}

static int snap_name_ok(struct bdev *bs, const char *name)
{
	if (!*name)
		return err_set(EINVAL, "%s: an RBD snapshot needs a name", bs->filename);
	if (strlen(name) >= sizeof(((struct bdev_snapshot *)0)->id))
		return err_set(ERANGE, "%s: snapshot name '%s' is too long", bs->filename, name);
	return 0;
}

int rbd_snapshot_create(struct bdev *bs, const char *name)
{
	struct rbdc *s = bs->opaque;
	int ret = snap_name_ok(bs, name);

	if (ret == 0)
		ret = rbd_drain(bs);
	if (ret < 0)
		return ret;
	s->bs.n = 0;
	int r = rbd_snap_create(s->image, name);
	if (r == -EEXIST)
		return err_set(EEXIST, "%s: a snapshot named '%s' already exists", bs->filename,
			       name);
	return r < 0 ? rbd_fail(bs->filename, r, "could not create the snapshot") : 0;
}

int rbd_snapshot_apply(struct bdev *bs, const char *name)
{
	struct rbdc *s = bs->opaque;
	int ret = rbd_drain(bs);

	if (ret < 0)
		return ret;
	s->bs.n = 0;
	int r = rbd_snap_rollback(s->image, name);
	if (r == -ENOENT)
		return err_set(ENOENT, "%s: no snapshot named '%s'", bs->filename, name);
	return r < 0 ? rbd_fail(bs->filename, r, "could not roll back to the snapshot") : 0;
}

int rbd_snapshot_delete(struct bdev *bs, const char *name)
{
	struct rbdc *s = bs->opaque;
	int prot = 0;
	int r = rbd_snap_remove(s->image, name);

	if (r == -ENOENT)
		return err_set(ENOENT, "%s: no snapshot named '%s'", bs->filename, name);
	if (r == -EBUSY && rbd_snap_is_protected(s->image, name, &prot) == 0 && prot)
		return err_set(EBUSY,
			       "%s: snapshot '%s' is protected (clones may use it; flatten or "
			       "remove them and unprotect it first)",
			       bs->filename, name);
	return r < 0 ? rbd_fail(bs->filename, r, "could not remove the snapshot") : 0;
}

/* --- info --- */

struct json_object *rbd_info_specific(struct bdev *bs)
{
	struct rbdc *s = bs->opaque;
	struct json_object *o = json_object_new_object(), *d = json_object_new_object();
	char feat[512];
	size_t flen = sizeof(feat);
	rbd_image_info_t info;
	rbd_linked_image_spec_t pimg;
	rbd_snap_spec_t psnap;

	json_object_object_add(o, "type", json_object_new_string("rbd"));
	json_object_object_add(d, "pool", json_object_new_string(s->t.pool));
	if (*s->t.ns)
		json_object_object_add(d, "namespace", json_object_new_string(s->t.ns));
	json_object_object_add(d, "image", json_object_new_string(s->t.image));
	if (s->t.snap)
		json_object_object_add(d, "snapshot", json_object_new_string(s->t.snap));
	json_object_object_add(d, "object-size", json_object_new_int64((int64_t)s->obj_size));
	if (rbd_stat(s->image, &info, sizeof(info)) == 0)
		json_object_object_add(d, "order", json_object_new_int(info.order));
	if (rbd_features_to_string(s->features, feat, &flen) == 0)
		json_object_object_add(d, "features", json_object_new_string(feat));
	if (rbd_get_parent(s->image, &pimg, &psnap) == 0) {
		char *p = NULL;
		if (asprintf(&p, "rbd:%s/%s%s%s@%s", pimg.pool_name, pimg.pool_namespace,
			     *pimg.pool_namespace ? "/" : "", pimg.image_name, psnap.name) > 0) {
			json_object_object_add(d, "parent", json_object_new_string(p));
			free(p);
		}
		rbd_linked_image_spec_cleanup(&pimg);
		rbd_snap_spec_cleanup(&psnap);
	}
	if (s->locked)
		json_object_object_add(d, "exclusive-lock", json_object_new_boolean(true));
	/* qemu-img shows the object size as the cluster size and a (clear) dirty flag. */
	json_object_object_add(d, "_cluster-size", json_object_new_int64((int64_t)s->obj_size));
	json_object_object_add(d, "_dirty", json_object_new_boolean(false));
	json_object_object_add(o, "data", d);
	return o;
}

/* --- create and clone --- */

static int check_no_snap(const char *name, const struct rbd_target *t)
{
	if (t->snap)
		return err_set(EINVAL,
			       "%s: an image is created without a snapshot name (drop '@%s')", name,
			       t->snap);
	return 0;
}

/* The parent of a clone: an RBD snapshot named by the backing file. */
static int parse_parent(const char *name, const struct bdev_create_opts *opts, struct rbd_target *p)
{
	const char *b = opts->backing_file;

	if (opts->backing_fmt && strcmp(opts->backing_fmt, "raw"))
		return err_set(EINVAL, "%s: the backing file of an RBD clone is raw, not %s", name,
			       opts->backing_fmt);
	if (!bdev_rbd_is_name(b))
		return err_set(EINVAL,
			       "%s: an RBD image can only be a clone of an RBD snapshot "
			       "(-b rbd:POOL/IMAGE@SNAP), not of %s",
			       name, b);
	int ret = rbd_target_parse(b, p);
	if (ret == 0 && !p->snap) {
		ret = err_set(EINVAL,
			      "%s: a clone needs a snapshot of its parent: -b %s@SNAP (make one "
			      "with ligero img snapshot -c SNAP %s)",
			      name, b, b);
		rbd_target_free(p);
	}
	return ret;
}

/* Protect the parent's snapshot (clones need it so) unless it is already. The check opens the
 * snapshot read-only (no watch, no header lock): the common case, a base whose snapshot is
 * protected once for a whole class, costs one header read per clone. */
static int protect(const char *name, rados_ioctx_t pio, const struct rbd_target *p)
{
	rbd_image_t img;
	int prot = 0, r = rbd_open_read_only(pio, p->image, &img, p->snap);

	if (r == 0) {
		r = rbd_snap_is_protected(img, p->snap, &prot);
		rbd_close(img);
	}
	if (r == 0 && !prot) {
		r = rbd_open(pio, p->image, &img, NULL);
		if (r == 0) {
			r = rbd_snap_protect(img, p->snap);
			rbd_close(img);
		}
	}
	if (r == -ENOENT)
		return err_set(ENOENT,
			       "%s: no snapshot '%s' of %s/%s (make one with ligero img snapshot "
			       "-c %s)",
			       name, p->snap, p->pool, p->image, p->snap);
	return r < 0 ? rbd_fail(name, r, "could not protect the parent's snapshot") : 0;
}

static int resize_image(const char *name, rados_ioctx_t io, const char *image, uint64_t size)
{
	rbd_image_t img;
	int r = rbd_open(io, image, &img, NULL);

	if (r == 0) {
		r = rbd_resize(img, size);
		rbd_close(img);
	}
	return r < 0 ? rbd_fail(name, r, "could not resize the new image") : 0;
}

static int clone_image(const char *name, const struct bdev_create_opts *opts, rados_t cluster,
		       rados_ioctx_t io, const struct rbd_target *t)
{
	struct rbd_target p;
	rados_ioctx_t pio;
	rbd_image_options_t o;
	int ret = parse_parent(name, opts, &p);

	if (ret < 0)
		return ret;
	int r = rados_ioctx_create(cluster, p.pool, &pio);
	if (r < 0) {
		ret = err_sys(-r, "%s: could not open the parent's pool '%s'", name, p.pool);
		rbd_target_free(&p);
		return ret;
	}
	rados_ioctx_set_namespace(pio, p.ns);
	ret = protect(name, pio, &p);
	if (ret == 0) {
		rbd_image_options_create(&o);
		rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_FORMAT, 2);
		rbd_image_options_set_uint64(o, RBD_IMAGE_OPTION_FEATURES_SET,
					     RBD_FEATURE_LAYERING);
		r = rbd_clone3(pio, p.image, p.snap, io, t->image, o);
		rbd_image_options_destroy(o);
		if (r == -EEXIST)
			ret =
			    err_set(EEXIST, "%s: image already exists in pool '%s'", name, t->pool);
		else if (r < 0)
			ret = rbd_fail(name, r, "could not clone the parent's snapshot");
	}
	if (ret == 0 && opts->size) {
		rbd_image_t img;
		rbd_image_info_t info;
		r = rbd_open(io, t->image, &img, NULL);
		if (r == 0) {
			r = rbd_stat(img, &info, sizeof(info));
			rbd_close(img);
		}
		if (r < 0)
			ret = rbd_fail(name, r, "could not open the new clone");
		else if (info.size != opts->size)
			ret = resize_image(name, io, t->image, opts->size);
	}
	rados_ioctx_destroy(pio);
	rbd_target_free(&p);
	return ret;
}

static int create_image(const char *name, const struct bdev_create_opts *opts, rados_ioctx_t io,
			const struct rbd_target *t)
{
	rbd_image_options_t o;
	uint64_t size = (opts->size + 511) / 512 * 512; /* whole sectors, as QEMU makes them */
	int r;

	rbd_image_options_create(&o);
	r = rbd_create4(io, t->image, size, o);
	if (r == -EEXIST && opts->force) {
		r = rbd_remove(io, t->image);
		if (r < 0) {
			rbd_image_options_destroy(o);
			return rbd_fail(name, r, "could not remove the existing image (--force)");
		}
		r = rbd_create4(io, t->image, size, o);
	}
	rbd_image_options_destroy(o);
	if (r == -EEXIST)
		return err_set(EEXIST,
			       "%s: image already exists in pool '%s' (--force replaces it)", name,
			       t->pool);
	return r < 0 ? rbd_fail(name, r, "could not create the image") : 0;
}

int bdev_rbd_create(const char *name, const struct bdev_create_opts *opts)
{
	struct rbd_target t;
	rados_t cluster;
	rados_ioctx_t io;
	int ret = rbd_target_parse(name, &t);

	if (ret < 0)
		return ret;
	if (opts->prealloc != BDEV_PREALLOC_OFF)
		ret = err_set(ENOTSUP, "%s: RBD images are thin: no preallocation", name);
	if (ret == 0)
		ret = check_no_snap(name, &t);
	if (ret == 0)
		ret = rbd_connect(name, &t, false, &cluster, &io);
	if (ret == 0) {
		if (opts->backing_file)
			ret = clone_image(name, opts, cluster, io, &t);
		else
			ret = create_image(name, opts, io, &t);
		rados_ioctx_destroy(io);
		rados_shutdown(cluster);
	}
	rbd_target_free(&t);
	return ret;
}

/* --- remove and rename (a fleet's members: `fleet delete --disks`, `fleet reset`) --- */

static int admin_open(const char *name, struct rbd_target *t, rados_t *cluster, rados_ioctx_t *io)
{
	int ret = rbd_target_parse(name, t);

	if (ret == 0 && t->snap)
		ret = err_set(EINVAL, "%s: names a snapshot, not an image (drop '@%s')", name,
			      t->snap);
	if (ret == 0)
		ret = rbd_connect(name, t, false, cluster, io);
	if (ret < 0)
		rbd_target_free(t);
	return ret;
}

static void admin_close(struct rbd_target *t, rados_t cluster, rados_ioctx_t io)
{
	rados_ioctx_destroy(io);
	rados_shutdown(cluster);
	rbd_target_free(t);
}

int bdev_rbd_remove(const char *name)
{
	struct rbd_target t;
	rados_t cluster;
	rados_ioctx_t io;
	int r, ret = admin_open(name, &t, &cluster, &io);

	if (ret < 0)
		return ret;
	r = rbd_remove(io, t.image);
	if (r == -ENOENT)
		ret = err_set(ENOENT, "%s: no such image in pool '%s'", name, t.pool);
	else if (r == -ENOTEMPTY)
		ret = err_set(ENOTEMPTY, "%s: the image has snapshots (remove them first)", name);
	else if (r == -EBUSY)
		ret = err_set(EBUSY, "%s: the image is in use (open by a client, or has clones)",
			      name);
	else if (r < 0)
		ret = rbd_fail(name, r, "could not remove the image");
	admin_close(&t, cluster, io);
	return ret;
}

int bdev_rbd_rename(const char *name, const char *image)
{
	struct rbd_target t;
	rados_t cluster;
	rados_ioctx_t io;
	int r, ret = admin_open(name, &t, &cluster, &io);

	if (ret < 0)
		return ret;
	r = rbd_rename(io, t.image, image);
	if (r == -EEXIST)
		ret =
		    err_set(EEXIST, "%s: cannot rename it to '%s': that image exists in pool '%s'",
			    name, image, t.pool);
	else if (r == -ENOENT)
		ret = err_set(ENOENT, "%s: no such image in pool '%s'", name, t.pool);
	else if (r < 0)
		ret = rbd_fail(name, r, "could not rename the image");
	admin_close(&t, cluster, io);
	return ret;
}
