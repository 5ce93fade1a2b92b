/*
 * The report, as JSON for --output=json, and the state a run leaves in the guest
 * (MIG_STATE): whether it finished, the MAC and network settings it used, and every change
 * ligero made so far with its backup. A re-sync reads it to keep ligero's changes: a file it
 * changed stays as it is while the source's version is the one backed up.
 */
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_str(struct json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static struct json_object *strv(char **v, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static struct json_object *addrs(const struct migrate_addr *v, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		char s[64];
		snprintf(s, sizeof(s), "%s/%d", v[i].addr, v[i].prefix);
		json_object_array_add(a, json_object_new_string(s));
	}
	return a;
}

static struct json_object *change(const struct migrate_change *ch)
{
	struct json_object *o = json_object_new_object();

	put_str(o, "path", ch->path);
	put_str(o, "action", ch->action);
	put_str(o, "why", ch->why);
	put_str(o, "backup", ch->backup);
	return o;
}

struct json_object *migrate_report_json(const struct migrate_report *r)
{
	struct json_object *o = json_object_new_object(), *k = json_object_new_object();
	const struct migrate_counts *c = &r->counts;

	json_object_object_add(o, "dry-run", json_object_new_boolean(r->dry_run));
	json_object_object_add(o, "resync", json_object_new_boolean(r->resync));
	json_object_object_add(o, "resumed", json_object_new_boolean(r->resumed));
	put_str(o, "source", r->source);
	put_str(o, "source-kind", r->source_kind);
	put_str(o, "output", r->output);
	put_str(o, "base", r->base);
	put_str(o, "base-os", r->base_os);
	put_str(o, "os", r->os_pretty);
	put_str(o, "os-id", r->os_id);
	put_str(o, "os-version", r->os_version);
	put_str(o, "usr-layout", r->usr_layout);
	put_str(o, "hostname", r->hostname);
	put_str(o, "mac", r->mac);
	put_str(o, "network", r->net_style);
	json_object_object_add(o, "addresses", addrs(r->addrs, r->naddrs));
	json_object_object_add(o, "gateways", strv(r->gateways, r->ngateways));
	json_object_object_add(o, "dns", strv(r->dns, r->ndns));
	json_object_object_add(o, "search", strv(r->search, r->nsearch));
	put_str(o, "packages", r->pkg_system);
	json_object_object_add(o, "kernel-packages", strv(r->kernel_pkgs, r->nkernel_pkgs));
	put_str(o, "ctid", r->ctid);
	put_str(o, "ostemplate", r->ostemplate);
	put_str(o, "ve-layout", r->ve_layout);
	if (r->ram)
		json_object_object_add(o, "ram", json_object_new_int64((int64_t)r->ram));
	if (r->disk)
		json_object_object_add(o, "disk", json_object_new_int64((int64_t)r->disk));
	static const char *const names[] = {"entries",	 "created", "updated", "attrs", "linked",
					    "unchanged", "deleted", "kept",    "bytes"};
	const uint64_t vals[] = {c->entries,   c->created, c->updated, c->attrs, c->linked,
				 c->unchanged, c->deleted, c->kept,    c->bytes};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		json_object_object_add(k, names[i], json_object_new_int64((int64_t)vals[i]));
	json_object_object_add(o, "copy", k);
	struct json_object *ch = json_object_new_array();
	for (size_t i = 0; i < r->nchanges; i++)
		json_object_array_add(ch, change(&r->changes[i]));
	json_object_object_add(o, "changes", ch);
	json_object_object_add(o, "notes", strv(r->notes, r->nnotes));
	return o;
}

static void strv_free_n(char **v, size_t n)
{
	mig_strv_free(v, n);
}

static void change_free(struct migrate_change *c)
{
	free(c->path);
	free(c->action);
	free(c->why);
	free(c->backup);
}

void migrate_report_free(struct migrate_report *r)
{
	char **strs[] = {&r->source,	 &r->source_kind, &r->output,	  &r->base,
			 &r->os_pretty,	 &r->os_id,	  &r->os_version, &r->base_os,
			 &r->usr_layout, &r->hostname,	  &r->mac,	  &r->net_style,
			 &r->pkg_system, &r->ctid,	  &r->ostemplate, &r->ve_layout};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	free(r->addrs);
	strv_free_n(r->gateways, r->ngateways);
	strv_free_n(r->dns, r->ndns);
	strv_free_n(r->search, r->nsearch);
	strv_free_n(r->kernel_pkgs, r->nkernel_pkgs);
	strv_free_n(r->notes, r->nnotes);
	for (size_t i = 0; i < r->nchanges; i++)
		change_free(&r->changes[i]);
	free(r->changes);
	memset(r, 0, sizeof(*r));
}

/* ---- the state in the guest ---- */

static char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
		   ? strdup(json_object_get_string(v))
		   : NULL;
}

static void jstrv(struct json_object *o, const char *k, char ***v, size_t *n)
{
	struct json_object *a;

	if (!json_object_object_get_ex(o, k, &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
		if (!nv)
			return;
		*v = nv;
		if (json_object_is_type(e, json_type_string) &&
		    (nv[*n] = strdup(json_object_get_string(e))))
			(*n)++;
	}
}

static void change_dtor(void *p)
{
	if (p)
		change_free(p);
	free(p);
}

int mig_state_load(struct mig_ctx *c, int *state)
{
	char *buf = NULL;
	size_t len;
	struct json_object *o, *v;
	int ret;

	*state = -1;
	bool dry = c->dry;
	c->dry = false; /* the state is in the target even in a dry run */
	ret = mig_read(c, MIG_STATE, &buf, &len);
	c->dry = dry;
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	o = json_tokener_parse(buf);
	free(buf);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return err_set(EINVAL, "%s: %s is not a ligero migrate state (damaged?)",
			       c->o->output, MIG_STATE);
	}
	*state = json_object_object_get_ex(o, "complete", &v) && json_object_get_boolean(v);
	if (!c->r->mac && !c->o->mac)
		c->r->mac = jstr(o, "mac");
	struct migrate_report *p = &c->prevnet;
	p->net_style = jstr(o, "network");
	jstrv(o, "gateways", &p->gateways, &p->ngateways);
	jstrv(o, "dns", &p->dns, &p->ndns);
	jstrv(o, "search", &p->search, &p->nsearch);
	char **a = NULL;
	size_t na = 0;
	jstrv(o, "addresses", &a, &na);
	p->addrs = calloc(na ? na : 1, sizeof(*p->addrs));
	for (size_t i = 0; p->addrs && i < na; i++)
		if (mig_addr_parse(a[i], &p->addrs[p->naddrs], 32))
			p->naddrs++;
	mig_strv_free(a, na);
	struct json_object *ch;
	if (json_object_object_get_ex(o, "changes", &ch) &&
	    json_object_is_type(ch, json_type_array))
		for (size_t i = 0; i < json_object_array_length(ch); i++) {
			struct json_object *e = json_object_array_get_idx(ch, i);
			struct migrate_change *m = calloc(1, sizeof(*m));
			if (!m)
				break;
			*m = (struct migrate_change){jstr(e, "path"), jstr(e, "action"),
						     jstr(e, "why"), jstr(e, "backup")};
			if (!m->path || !m->action || strmap_put(&c->prev, m->path, m) < 0)
				change_dtor(m);
		}
	json_object_put(o);
	return 0;
}

int mig_state_save(struct mig_ctx *c, bool complete)
{
	struct migrate_report *r = c->r;
	struct json_object *o = json_object_new_object(), *ch = json_object_new_array();
	struct strmap done = {0};
	int ret;

	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "complete", json_object_new_boolean(complete));
	put_str(o, "source", r->source);
	put_str(o, "base", r->base);
	put_str(o, "os", r->os_pretty);
	put_str(o, "mac", r->mac);
	put_str(o, "network", r->net_style ? r->net_style : c->prevnet.net_style);
	json_object_object_add(o, "addresses",
			       r->naddrs ? addrs(r->addrs, r->naddrs)
					 : addrs(c->prevnet.addrs, c->prevnet.naddrs));
	json_object_object_add(o, "gateways", strv(r->gateways, r->ngateways));
	json_object_object_add(o, "dns", strv(r->dns, r->ndns));
	json_object_object_add(o, "search", strv(r->search, r->nsearch));
	/* This run's changes, then the earlier ones it did not redo (and whose source did
	 * not change since). */
	for (size_t i = 0; i < r->nchanges; i++) {
		json_object_array_add(ch, change(&r->changes[i]));
		strmap_put(&done, r->changes[i].path, NULL);
	}
	size_t it = 0;
	struct strmap_slot *s;
	while ((s = strmap_next(&c->prev, &it)))
		if (!strmap_find(&done, s->key) && !strmap_find(&c->dropped, s->key))
			json_object_array_add(ch, change(s->val));
	json_object_object_add(o, "changes", ch);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_NOSLASHESCAPE);
	ret = mig_put_file(c, MIG_STATE, text, strlen(text));
	json_object_put(o);
	strmap_free(&done, NULL);
	return ret;
}

void mig_prev_free(struct mig_ctx *c)
{
	strmap_free(&c->prev, change_dtor);
	strmap_free(&c->dropped, NULL);
	migrate_report_free(&c->prevnet);
}
