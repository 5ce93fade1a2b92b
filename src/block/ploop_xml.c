/*
 * DiskDescriptor.xml with libxml2: the tree is read from memory with no network, no DTD and no
 * entity expansion, and libxml2's own error printing off (its message comes back in ours).
 *
 * What is used (the rest, such as geometry, <Miscellaneous> and snapshot names, is ignored):
 *   <Parallels_disk_image> or <Virtuozzo_disk_image> (ploop's name since 7.0)
 *     <Disk_Parameters> <Disk_size> sectors, <Padding> 0, <Encryption> absent or empty
 *     <StorageData> <Storage> (exactly one) <Blocksize>, <Image> <GUID> <Type> <File>
 *     <Snapshots> <TopGUID>, <Shot> <GUID> <ParentGUID>
 */
#include "block/ploop_xml.h"
#include "block/block.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEXT_MAX 4096

struct shot {
	char *guid, *parent;
};

struct desc_parse {
	const char *name;
	struct ploop_image *img;
	size_t nimg;
	struct shot *shot;
	size_t nshot;
	char *top;
};

static bool is_elem(const xmlNode *n, const char *tag)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, tag);
}

/* The first child element named tag, or NULL. */
static xmlNode *child(const xmlNode *parent, const char *tag)
{
	for (xmlNode *n = parent->children; n; n = n->next)
		if (is_elem(n, tag))
			return n;
	return NULL;
}

static size_t count(const xmlNode *parent, const char *tag)
{
	size_t c = 0;

	for (xmlNode *n = parent->children; n; n = n->next)
		c += is_elem(n, tag);
	return c;
}

/* The text of element n (trimmed of white space) in *out, malloc'd. Elements, entity references
 * and other markup inside are refused. */
static int text_of(const struct desc_parse *p, const xmlNode *n, char **out)
{
	char buf[TEXT_MAX + 1];
	size_t len = 0;

	for (xmlNode *c = n->children; c; c = c->next) {
		if (c->type == XML_COMMENT_NODE)
			continue;
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			return err_set(EINVAL, "%s: <%s> (line %d) holds markup, not text", p->name,
				       (const char *)n->name, (int)xmlGetLineNo(n));
		size_t l = c->content ? strlen((const char *)c->content) : 0;
		if (l > TEXT_MAX - len)
			return err_set(EINVAL, "%s: <%s> (line %d) is longer than %d bytes",
				       p->name, (const char *)n->name, (int)xmlGetLineNo(n),
				       TEXT_MAX);
		memcpy(buf + len, c->content, l);
		len += l;
	}
	char *s = buf, *e = buf + len;
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	*out = strdup(s);
	return *out ? 0 : err_set(ENOMEM, "%s: out of memory", p->name);
}

/* The text of parent's child tag; a missing child is an error naming it. */
static int need_text(const struct desc_parse *p, const xmlNode *parent, const char *tag, char **out)
{
	const xmlNode *n = child(parent, tag);

	*out = NULL;
	if (!n)
		return err_set(EINVAL, "%s: <%s> (line %d) has no <%s>", p->name,
			       (const char *)parent->name, (int)xmlGetLineNo(parent), tag);
	return text_of(p, n, out);
}

static int parse_u64(const struct desc_parse *p, const char *tag, const char *s, uint64_t max,
		     uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return err_set(EINVAL, "%s: <%s> is empty", p->name, tag);
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) || v > (max - (uint64_t)(*s - '0')) / 10)
			return err_set(EINVAL, "%s: <%s> is not a number up to %llu", p->name, tag,
				       (unsigned long long)max);
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" */
static int check_guid(const struct desc_parse *p, const char *what, const char *g)
{
	static const char shape[] = "{........-....-....-....-............}";
	bool ok = strlen(g) == sizeof(shape) - 1;

	for (size_t i = 0; ok && g[i]; i++)
		ok = shape[i] == '.' ? isxdigit((unsigned char)g[i]) : g[i] == shape[i];
	if (!ok)
		return err_set(EINVAL, "%s: %s '%.64s' is not a GUID ({8-4-4-4-12 hex digits})",
			       p->name, what, g);
	return 0;
}

static int parse_encryption(const struct desc_parse *p, const xmlNode *enc)
{
	char *key = NULL, *engine = NULL;
	int ret = 0;

	/* ploop writes <KeyId>; Parallels Desktop an <Engine>, all zeroes when not encrypted. */
	if (child(enc, "KeyId"))
		ret = need_text(p, enc, "KeyId", &key);
	if (ret == 0 && child(enc, "Engine"))
		ret = need_text(p, enc, "Engine", &engine);
	if (ret == 0 && key && *key)
		ret = err_set(EPERM,
			      "%s: the disk is encrypted (key id %.64s); ligero does not decrypt "
			      "ploop disks",
			      p->name, key);
	else if (ret == 0 && engine && *engine && strcasecmp(engine, PLOOP_NONE_GUID))
		ret = err_set(EPERM,
			      "%s: the disk is encrypted (engine %.64s); ligero does not decrypt "
			      "Parallels disks",
			      p->name, engine);
	free(key);
	free(engine);
	return ret;
}

static int parse_params(const struct desc_parse *p, const xmlNode *root, struct ploop_desc *d)
{
	const xmlNode *par = child(root, "Disk_Parameters");
	char *s = NULL;
	uint64_t v;
	int ret;

	if (!par)
		return err_set(EINVAL, "%s: no <Disk_Parameters>", p->name);
	ret = need_text(p, par, "Disk_size", &s);
	if (ret == 0)
		ret = parse_u64(p, "Disk_size", s, UINT64_MAX / 512, &d->disk_sectors);
	free(s);
	if (ret == 0 && child(par, "Padding")) {
		ret = need_text(p, par, "Padding", &s);
		if (ret == 0 && (parse_u64(p, "Padding", s, 1, &v) < 0 || v != 0))
			ret = err_set(EINVAL,
				      "%s: <Padding> is not 0 (padded disks are not "
				      "supported)",
				      p->name);
		free(s);
	}
	if (ret == 0 && child(par, "Encryption"))
		ret = parse_encryption(p, child(par, "Encryption"));
	return ret;
}

static struct ploop_image *find_image(const struct desc_parse *p, const char *guid)
{
	for (size_t i = 0; i < p->nimg; i++)
		if (!strcasecmp(p->img[i].guid, guid))
			return &p->img[i];
	return NULL;
}

static struct shot *find_shot(const struct desc_parse *p, const char *guid)
{
	for (size_t i = 0; i < p->nshot; i++)
		if (!strcasecmp(p->shot[i].guid, guid))
			return &p->shot[i];
	return NULL;
}

static int resolve_path(const struct desc_parse *p, const char *dir, struct ploop_image *img)
{
	if (!*img->file)
		return err_set(EINVAL, "%s: image %s has an empty <File>", p->name, img->guid);
	if (img->file[0] == '/' || !dir || !*dir || !strcmp(dir, "."))
		img->path = strdup(img->file);
	else if (asprintf(&img->path, "%s/%s", dir, img->file) < 0)
		img->path = NULL;
	return img->path ? 0 : err_set(ENOMEM, "%s: out of memory", p->name);
}

static int parse_image(struct desc_parse *p, const xmlNode *n, const char *dir)
{
	struct ploop_image *img = &p->img[p->nimg];
	char *type = NULL;
	int ret = need_text(p, n, "GUID", &img->guid);

	if (ret == 0)
		p->nimg++; /* owned from here: freed with the rest */
	if (ret == 0)
		ret = check_guid(p, "image GUID", img->guid);
	if (ret == 0 && find_image(p, img->guid) != img)
		ret = err_set(EINVAL, "%s: two images have GUID %s", p->name, img->guid);
	if (ret == 0)
		ret = need_text(p, n, "File", &img->file);
	if (ret == 0)
		ret = resolve_path(p, dir, img);
	if (ret == 0 && child(n, "Type"))
		ret = need_text(p, n, "Type", &type);
	if (ret == 0 && type && strcmp(type, "Compressed") && strcmp(type, "Plain"))
		ret =
		    err_set(EINVAL, "%s: image %s has <Type>%.32s</Type> (not Compressed or Plain)",
			    p->name, img->guid, type);
	img->plain = type && !strcmp(type, "Plain");
	free(type);
	return ret;
}

static int parse_storage(struct desc_parse *p, const xmlNode *root, const char *dir,
			 struct ploop_desc *d)
{
	const xmlNode *data = child(root, "StorageData"), *st;
	char *s = NULL;
	uint64_t v = 0;
	int ret = 0;

	if (!data || count(data, "Storage") != 1)
		return err_set(EINVAL, "%s: %s", p->name,
			       data ? "more than one <Storage> (split disks are not supported)"
				    : "no <StorageData>");
	if (child(data, "Volume"))
		return err_set(EINVAL,
			       "%s: <Volume> (a disk over another ploop volume) is not "
			       "supported",
			       p->name);
	st = child(data, "Storage");
	if (child(st, "Blocksize")) {
		ret = need_text(p, st, "Blocksize", &s);
		if (ret == 0)
			ret = parse_u64(p, "Blocksize", s, UINT32_MAX, &v);
		d->blocksize = (uint32_t)v;
		free(s);
	}
	size_t n = count(st, "Image");
	if (ret == 0 && !n)
		ret = err_set(EINVAL, "%s: <Storage> lists no <Image>", p->name);
	if (ret == 0 && !(p->img = calloc(n, sizeof(*p->img))))
		ret = err_set(ENOMEM, "%s: out of memory", p->name);
	for (const xmlNode *c = st->children; c && ret == 0; c = c->next)
		if (is_elem(c, "Image"))
			ret = parse_image(p, c, dir);
	return ret;
}

static int parse_shot(struct desc_parse *p, const xmlNode *n)
{
	struct shot *s = &p->shot[p->nshot];
	int ret = need_text(p, n, "GUID", &s->guid);

	if (ret == 0)
		ret = need_text(p, n, "ParentGUID", &s->parent);
	if (s->guid)
		p->nshot++;
	else
		free(s->parent);
	if (ret == 0)
		ret = check_guid(p, "snapshot GUID", s->guid);
	if (ret == 0)
		ret = check_guid(p, "parent GUID", s->parent);
	if (ret == 0 && find_shot(p, s->guid) != s)
		ret = err_set(EINVAL, "%s: two snapshots have GUID %s", p->name, s->guid);
	return ret;
}

static int parse_snapshots(struct desc_parse *p, const xmlNode *root)
{
	const xmlNode *sn = child(root, "Snapshots");
	int ret = 0;

	if (!sn)
		return err_set(EINVAL, "%s: no <Snapshots>", p->name);
	if (child(sn, "TopGUID")) {
		ret = need_text(p, sn, "TopGUID", &p->top);
		if (ret == 0)
			ret = check_guid(p, "<TopGUID>", p->top);
	}
	size_t n = count(sn, "Shot");
	if (ret == 0 && n && !(p->shot = calloc(n, sizeof(*p->shot))))
		ret = err_set(ENOMEM, "%s: out of memory", p->name);
	for (const xmlNode *c = sn->children; c && ret == 0; c = c->next)
		if (is_elem(c, "Shot"))
			ret = parse_shot(p, c);
	return ret;
}

/* The top image: <TopGUID>; else ploop's fixed top GUID; else the only image. */
static const char *top_guid(const struct desc_parse *p)
{
	if (p->top)
		return p->top;
	if (find_image(p, PLOOP_TOP_GUID))
		return PLOOP_TOP_GUID;
	return p->nimg == 1 ? p->img[0].guid : NULL;
}

/* Move the images from the top down the parent links into d->chain. */
static int build_chain(struct desc_parse *p, struct ploop_desc *d)
{
	const char *cur = top_guid(p);
	bool *seen = calloc(p->nimg, sizeof(*seen));

	if (!seen || !(d->chain = calloc(p->nimg, sizeof(*d->chain)))) {
		free(seen);
		return err_set(ENOMEM, "%s: out of memory", p->name);
	}
	if (!cur) {
		free(seen);
		return err_set(EINVAL,
			       "%s: no <TopGUID> and no image with ploop's top GUID: "
			       "which image is on top is unknown",
			       p->name);
	}
	d->top_guid = strdup(cur);
	int ret = d->top_guid ? 0 : err_set(ENOMEM, "%s: out of memory", p->name);
	while (ret == 0 && strcasecmp(cur, PLOOP_NONE_GUID)) {
		struct ploop_image *img = find_image(p, cur);
		const struct shot *s = find_shot(p, cur);
		if (!img) {
			ret =
			    err_set(EINVAL, "%s: the snapshot chain names %s, which no <Image> has",
				    p->name, cur);
		} else if (seen[img - p->img]) {
			ret =
			    err_set(ELOOP, "%s: the snapshot chain loops back to %s", p->name, cur);
		} else if (d->nchain == BDEV_MAX_CHAIN) {
			ret = err_set(ELOOP, "%s: the snapshot chain is deeper than %d images",
				      p->name, BDEV_MAX_CHAIN);
		} else if (!s && (p->nshot || p->nimg > 1)) {
			ret = err_set(EINVAL, "%s: image %s has no <Shot>: its parent is unknown",
				      p->name, cur);
		} else {
			seen[img - p->img] = true;
			d->chain[d->nchain++] = *img;
			memset(img, 0, sizeof(*img));
			img->guid = strdup(d->chain[d->nchain - 1].guid); /* still searchable */
			if (!img->guid)
				ret = err_set(ENOMEM, "%s: out of memory", p->name);
			cur = s ? s->parent : PLOOP_NONE_GUID;
		}
	}
	if (ret == 0 && !d->nchain)
		ret = err_set(EINVAL, "%s: the top image is the null GUID", p->name);
	free(seen);
	return ret;
}

static void parse_free(struct desc_parse *p)
{
	for (size_t i = 0; i < p->nimg; i++) {
		free(p->img[i].guid);
		free(p->img[i].file);
		free(p->img[i].path);
	}
	for (size_t i = 0; i < p->nshot; i++) {
		free(p->shot[i].guid);
		free(p->shot[i].parent);
	}
	free(p->img);
	free(p->shot);
	free(p->top);
}

/* The document, or NULL with libxml2's own words in the message. */
static xmlDoc *read_doc(const char *buf, size_t len, const char *name)
{
	xmlParserCtxt *ctxt;
	xmlDoc *doc;

	if (len > PLOOP_XML_MAX || len == 0) {
		err_set(len ? EFBIG : EINVAL, "%s: %zu bytes is %s for a disk descriptor", name,
			len, len ? "too large" : "too small");
		return NULL;
	}
	xmlInitParser();
	ctxt = xmlNewParserCtxt();
	if (!ctxt) {
		err_set(ENOMEM, "%s: out of memory", name);
		return NULL;
	}
	doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, NULL,
				XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char what[160] = "empty";
		if (e && e->message) {
			snprintf(what, sizeof(what), "line %d: %s", e->line, e->message);
			what[strcspn(what, "\n")] = '\0';
		}
		err_set(EINVAL, "%s: not well-formed XML (%s)", name, what);
	}
	xmlFreeParserCtxt(ctxt);
	return doc;
}

int ploop_desc_parse(const char *buf, size_t len, const char *name, const char *dir,
		     struct ploop_desc *d)
{
	struct desc_parse p = {.name = name};
	xmlDoc *doc;
	int ret;

	memset(d, 0, sizeof(*d));
	doc = read_doc(buf, len, name);
	if (!doc)
		return -EINVAL;
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (doc->intSubset || doc->extSubset)
		ret = err_set(EINVAL, "%s: has a <!DOCTYPE>, which no disk descriptor has", name);
	else if (!root || (strcmp((const char *)root->name, "Parallels_disk_image") &&
			   strcmp((const char *)root->name, "Virtuozzo_disk_image")))
		ret = err_set(EINVAL, "%s: the root element is <%.64s>, not <Parallels_disk_image>",
			      name, root ? (const char *)root->name : "");
	else
		ret = parse_params(&p, root, d);
	if (ret == 0)
		ret = parse_storage(&p, root, dir, d);
	if (ret == 0)
		ret = parse_snapshots(&p, root);
	if (ret == 0)
		ret = build_chain(&p, d);
	parse_free(&p);
	xmlFreeDoc(doc);
	if (ret < 0)
		ploop_desc_free(d);
	return ret;
}

void ploop_desc_free(struct ploop_desc *d)
{
	for (size_t i = 0; i < d->nchain; i++) {
		free(d->chain[i].guid);
		free(d->chain[i].file);
		free(d->chain[i].path);
	}
	free(d->chain);
	free(d->top_guid);
	memset(d, 0, sizeof(*d));
}
