/*
 * Fleet members as RBD clones (fleet_rbd.h). The names are taken apart as text, the way the
 * block layer reads them (rbd:POOL/[NS/]IMAGE[@SNAP][:KEY=VALUE...], '\' escaping the next
 * character), so a member's name keeps the base's pool, namespace and options exactly as the
 * user spelled them; everything that touches the cluster goes through the block layer.
 */
#include "host/fleet_rbd.h"
#include "block/block.h"
#include "block/rbd.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBD_PREFIX "rbd:"

/* The first c in [s, end) that no '\' escapes, or end. */
static const char *unescaped(const char *s, const char *end, char c)
{
	for (; s < end; s++) {
		if (*s == '\\' && s + 1 < end)
			s++;
		else if (*s == c)
			return s;
	}
	return end;
}

/* The last c in [s, end) that no '\' escapes, or NULL. */
static const char *unescaped_last(const char *s, const char *end, char c)
{
	const char *last = NULL;

	while ((s = unescaped(s, end, c)) < end)
		last = s++;
	return last;
}

/* A name's parts: [name, image) is the head ("rbd:POOL/"), [image, snap) the image,
 * [snap, tail) "@SNAP" or empty, [tail, end) the options. */
struct parts {
	const char *image, *snap, *tail;
};

static int split(const char *name, struct parts *p)
{
	const char *s = name + strlen(RBD_PREFIX), *slash;

	if (strncmp(name, RBD_PREFIX, strlen(RBD_PREFIX)))
		return err_set(EINVAL,
			       "%s: give an RBD base as rbd:POOL/IMAGE@SNAP[:conf=FILE][:id=USER]",
			       name);
	p->tail = unescaped(s, s + strlen(s), ':');
	p->snap = unescaped(s, p->tail, '@');
	slash = unescaped_last(s, p->snap, '/');
	if (!slash || slash == s || slash + 1 == p->snap)
		return err_set(EINVAL, "%s: not an RBD image name (rbd:POOL/IMAGE)", name);
	p->image = slash + 1;
	return 0;
}

int fleet_rbd_base(const char *base, const char *pool, struct fleet_rbd *rb)
{
	struct parts p;
	struct bdev *bs;
	int ret = split(base, &p);

	*rb = (struct fleet_rbd){0};
	if (ret < 0)
		return err_prefix(ret, "base ");
	if (p.snap == p.tail)
		return err_set(EINVAL,
			       "base %s: a clone needs a snapshot of its parent: --base "
			       "%.*s@SNAP%s (make one with ligero img snapshot -c SNAP %s)",
			       base, (int)(p.tail - base), base, p.tail, base);
	if (pool && (!*pool || strpbrk(pool, ":@/=\\")))
		return err_set(
		    EINVAL, "--disk-pool '%s' is not a pool name (no ':', '@', '/', '=' or '\\')",
		    pool);
	if ((ret = bdev_open(&bs, base, NULL, 0)) < 0)
		return err_prefix(ret, "base: ");
	bdev_close(bs);
	if (pool)
		ret = asprintf(&rb->head, "%s%s/", RBD_PREFIX, pool);
	else
		ret = asprintf(&rb->head, "%.*s", (int)(p.image - base), base);
	if (ret < 0 || !(rb->tail = strdup(p.tail))) {
		if (ret < 0)
			rb->head = NULL;
		fleet_rbd_free(rb);
		return err_set(ENOMEM, "out of memory");
	}
	return 0;
}

void fleet_rbd_free(struct fleet_rbd *rb)
{
	free(rb->head);
	free(rb->tail);
	*rb = (struct fleet_rbd){0};
}

char *fleet_rbd_member(const struct fleet_rbd *rb, const char *name)
{
	char *s;

	return asprintf(&s, "%s%s%s", rb->head, name, rb->tail) < 0 ? NULL : s;
}

char *fleet_rbd_sibling(const char *disk, const char *image)
{
	struct parts p;
	char *s;

	if (split(disk, &p) < 0)
		return NULL;
	return asprintf(&s, "%.*s%s%s", (int)(p.image - disk), disk, image, p.tail) < 0 ? NULL : s;
}

char *fleet_rbd_image(const char *disk)
{
	struct parts p;

	return split(disk, &p) < 0 ? NULL : strndup(p.image, (size_t)(p.snap - p.image));
}

int fleet_rbd_parent(const char *disk, char **parent)
{
	struct json_object *info = NULL, *data, *par;
	struct bdev *bs;
	struct parts p;
	int ret;

	*parent = NULL;
	if ((ret = split(disk, &p)) < 0 || (ret = bdev_open(&bs, disk, "raw", 0)) < 0)
		return ret;
	if (bs->drv->info_specific)
		info = bs->drv->info_specific(bs);
	if (!info || !json_object_object_get_ex(info, "data", &data) ||
	    !json_object_object_get_ex(data, "parent", &par))
		ret = err_set(EINVAL, "%s is not an RBD clone: it has no parent snapshot", disk);
	else if (asprintf(parent, "%s%s", json_object_get_string(par), p.tail) < 0)
		ret = err_set(ENOMEM, "out of memory");
	json_object_put(info);
	bdev_close(bs);
	if (ret < 0)
		*parent = NULL;
	return ret;
}
