/*
 * venet out, eth0 in. An OpenVZ container talks through venet0, a point-to-point device with
 * /32 addresses and a default route through the device; a VM has a network card. The venet
 * configuration vzctl wrote (Debian: stanzas in /etc/network/interfaces; RHEL: ifcfg-venet0*,
 * GATEWAYDEV and IPV6_DEFAULTDEV in /etc/sysconfig/network; systemd-networkd: .network files)
 * goes, and eth0 gets the container's addresses, gateway and DNS in the form the system already
 * uses, matched by the card's MAC address so the kernel's name for it does not matter.
 *
 * Without a gateway (venet has none), the default route goes through the device, as venet's
 * did: that works where the host answers ARP for the router (a flat layer-2 network or proxy
 * ARP); --gateway gives a real one.
 */
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LINK_FILE    "/etc/systemd/network/10-ligero-eth0.link"
#define NETWORK_FILE "/etc/systemd/network/10-ligero-eth0.network"
#define IFCFG_DIR    "/etc/sysconfig/network-scripts"
#define MARK	     "# ligero migrate:"

/* vzctl's fake gateways (GATEWAY= in old RHEL containers). */
static bool fake_gateway(const char *gw)
{
	return !strcmp(gw, "191.255.255.1") || !strcmp(gw, "192.0.2.1");
}

static int add_addr(struct mig_ctx *c, const struct migrate_addr *a)
{
	struct migrate_report *r = c->r;

	if ((a->family == 4 && !strncmp(a->addr, "127.", 4)) || !strcmp(a->addr, "::1") ||
	    !strcmp(a->addr, "0.0.0.0"))
		return 0;
	for (size_t i = 0; i < r->naddrs; i++)
		if (!strcmp(r->addrs[i].addr, a->addr))
			return 0;
	struct migrate_addr *v = realloc(r->addrs, (r->naddrs + 1) * sizeof(*v));
	if (!v)
		return err_set(ENOMEM, "out of memory");
	r->addrs = v;
	v[r->naddrs++] = *a;
	return 0;
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv || !(nv[*n] = strdup(s)))
		return err_set(ENOMEM, "out of memory");
	*v = nv;
	(*n)++;
	return 0;
}

/* Words of a space-separated list, each given to add. */
static int words(const char *list, int (*add)(struct mig_ctx *, const char *), struct mig_ctx *c)
{
	char *dup = strdup(list ? list : "");
	int ret = dup ? 0 : err_set(ENOMEM, "out of memory");

	for (char *s = NULL, *w = dup ? strtok_r(dup, " \t,", &s) : NULL; w && ret == 0;
	     w = strtok_r(NULL, " \t,", &s))
		ret = add(c, w);
	free(dup);
	return ret;
}

static int add_addr_text(struct mig_ctx *c, const char *w)
{
	struct migrate_addr a;

	return mig_addr_parse(w, &a, 32) ? add_addr(c, &a) : 0;
}

static int add_dns(struct mig_ctx *c, const char *w)
{
	return strv_add(&c->r->dns, &c->r->ndns, w);
}

static int add_search(struct mig_ctx *c, const char *w)
{
	return strv_add(&c->r->search, &c->r->nsearch, w);
}

static bool venet_name(const char *w, size_t n)
{
	return n >= 5 && !strncmp(w, "venet", 5);
}

/* ---- Debian: /etc/network/interfaces ---- */

static bool stanza_start(const char *l)
{
	static const char *const kw[] = {"iface",	 "mapping",    "auto",
					 "allow-",	 "source",     "rename",
					 "no-auto-down", "no-scripts", "source-directory"};
	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (!strncmp(l, kw[i], strlen(kw[i])))
			return true;
	return false;
}

/* Addresses a venet stanza's line gives: "address X", "netmask N", "... add X/P ...". */
static int venet_line_addr(struct mig_ctx *c, const char *l, struct migrate_addr *last)
{
	char w1[64], w2[64], w3[64], w4[64], w5[128];
	int n = sscanf(l, "%63s %63s %63s %63s %127s", w1, w2, w3, w4, w5);
	struct migrate_addr a;

	if (n >= 2 && !strcmp(w1, "address") && mig_addr_parse(w2, &a, 32)) {
		*last = a;
		return add_addr(c, &a);
	}
	if (n >= 2 && !strcmp(w1, "netmask") && last->family) {
		char t[128];
		snprintf(t, sizeof(t), "%s/%s", last->addr, w2);
		for (size_t i = 0; i < c->r->naddrs; i++)
			if (!strcmp(c->r->addrs[i].addr, last->addr) && mig_addr_parse(t, &a, 32))
				c->r->addrs[i].prefix = a.prefix;
		return 0;
	}
	/* up ifconfig venet0 add X/P; up ip [-6] addr add X/P dev venet0 */
	const char *add = strstr(l, " add ");
	if (!strncmp(w1, "up", 2) && add && !strstr(l, "route")) {
		char addr[128];
		if (sscanf(add + 5, "%127s", addr) == 1 && mig_addr_parse(addr, &a, 32))
			return add_addr(c, &a);
	}
	return 0;
}

/* The interfaces file without venet and without what an earlier run added; addresses of the
 * venet stanzas collected on the way (when collect). */
char *mig_interfaces_strip(struct mig_ctx *c, const char *text, bool collect, bool *had)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	bool drop = false;
	struct migrate_addr last = {0};

	if (!m)
		return NULL;
	*had = false;
	for (const char *l = text; l && *l;) {
		const char *eol = strchr(l, '\n');
		size_t ll = eol ? (size_t)(eol - l) : strlen(l);
		char *line = strndup(l, ll);
		l = eol ? eol + 1 : NULL;
		if (!line)
			break;
		const char *t = line + strspn(line, " \t");
		if (stanza_start(t)) {
			char kw[64], name[256];
			drop = false;
			if (sscanf(t, "%63s %255s", kw, name) == 2 && !strcmp(kw, "iface") &&
			    (venet_name(name, strlen(name)) || !strcmp(name, "eth0"))) {
				drop = true;
				*had |= venet_name(name, strlen(name));
				memset(&last, 0, sizeof(last));
			} else if (!strcmp(kw, "auto") || !strncmp(kw, "allow-", 6)) {
				/* Keep the other names of the line. */
				bool any = false;
				char *dup = strdup(t + strlen(kw));
				for (char *s = NULL, *w = dup ? strtok_r(dup, " \t", &s) : NULL; w;
				     w = strtok_r(NULL, " \t", &s)) {
					if (venet_name(w, strlen(w)) || !strcmp(w, "eth0")) {
						*had |= venet_name(w, strlen(w));
						continue;
					}
					fprintf(m, "%s %s", any ? "" : kw, w);
					any = true;
				}
				free(dup);
				if (any)
					fputc('\n', m);
			} else if (!drop) {
				fprintf(m, "%s\n", line);
			}
		} else if (drop && *t && *t != '#') {
			if (collect)
				venet_line_addr(c, t, &last);
		} else if (*t == '#' && (strstr(t, "venet") || !strncmp(t, MARK, strlen(MARK)))) {
			/* vzctl's "# Auto generated venet0 interface", an earlier run's mark. */
		} else if (!drop || *t) {
			fprintf(m, "%s\n", line);
		}
		free(line);
	}
	fclose(m);
	/* No run of blank lines at the end. */
	while (len > 1 && out[len - 1] == '\n' && out[len - 2] == '\n')
		out[--len] = 0;
	return out;
}

static void route_lines(FILE *m, struct mig_ctx *c, int family, const char *gw)
{
	const char *ip = family == 4 ? "ip" : "ip -6";

	if (gw)
		fprintf(m, "\tgateway %s\n", gw);
	else
		fprintf(m, "\tup %s route replace default dev eth0\n", ip);
	bool first = true;
	for (size_t i = 0; i < c->r->naddrs; i++) {
		const struct migrate_addr *a = &c->r->addrs[i];
		if (a->family != family)
			continue;
		if (!first)
			fprintf(m, "\tup %s addr add %s/%d dev eth0\n", ip, a->addr, a->prefix);
		first = false;
	}
}

static const char *first_of(struct mig_ctx *c, int family)
{
	for (size_t i = 0; i < c->r->naddrs; i++)
		if (c->r->addrs[i].family == family)
			return c->r->addrs[i].addr;
	return NULL;
}

static int first_prefix(struct mig_ctx *c, int family)
{
	for (size_t i = 0; i < c->r->naddrs; i++)
		if (c->r->addrs[i].family == family)
			return c->r->addrs[i].prefix;
	return 0;
}

static const char *gateway(struct mig_ctx *c, int family)
{
	for (size_t i = 0; i < c->r->ngateways; i++)
		if ((strchr(c->r->gateways[i], ':') != NULL) == (family == 6))
			return c->r->gateways[i];
	return NULL;
}

static char *ifupdown_block(struct mig_ctx *c)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);

	if (!m)
		return NULL;
	fprintf(m,
		"\n" MARK " eth0, the VM's network card (MAC %s; " LINK_FILE ")\n"
		"auto eth0\n",
		c->r->mac);
	for (int fam = 4; fam <= 6; fam += 2) {
		if (!first_of(c, fam))
			continue;
		fprintf(m, "iface eth0 %s static\n\taddress %s/%d\n", fam == 4 ? "inet" : "inet6",
			first_of(c, fam), first_prefix(c, fam));
		route_lines(m, c, fam, gateway(c, fam));
		if (fam == 4 && c->r->ndns) {
			fputs("\tdns-nameservers", m);
			for (size_t i = 0; i < c->r->ndns; i++)
				fprintf(m, " %s", c->r->dns[i]);
			fputc('\n', m);
		}
		if (fam == 4 && c->r->nsearch) {
			fputs("\tdns-search", m);
			for (size_t i = 0; i < c->r->nsearch; i++)
				fprintf(m, " %s", c->r->search[i]);
			fputc('\n', m);
		}
	}
	fclose(m);
	return out;
}

static int link_file(struct mig_ctx *c)
{
	char text[512];
	int n = snprintf(text, sizeof(text),
			 MARK " the VM's network card is eth0, whatever the kernel calls it\n"
			      "[Match]\nMACAddress=%s\n\n[Link]\nName=eth0\n",
			 c->r->mac);

	return mig_write(c, LINK_FILE, text, (size_t)n, 0644,
			 "names the VM's network card eth0 by its MAC address, as the network "
			 "configuration expects");
}

static int fix_ifupdown(struct mig_ctx *c, const char *text)
{
	bool had;
	char *base = mig_interfaces_strip(c, text, false, &had), *block = ifupdown_block(c);
	char *all = NULL;
	int ret;

	if (!base || !block || asprintf(&all, "%s%s", base, block) < 0) {
		free(base);
		free(block);
		return err_set(ENOMEM, "out of memory");
	}
	ret = mig_write(c, "/etc/network/interfaces", all, strlen(all), 0644,
			"venet0 exists only in a container: its stanzas go, and eth0 gets the "
			"container's addresses, gateway and DNS");
	if (ret == 0)
		ret = link_file(c);
	free(all);
	free(base);
	free(block);
	return ret;
}

/* ---- RHEL: ifcfg files ---- */

static int ifcfg_collect(struct mig_ctx *c, char **names, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		char p[512], *t = NULL;
		size_t len;
		if (strncmp(names[i], "ifcfg-venet", 11))
			continue;
		snprintf(p, sizeof(p), IFCFG_DIR "/%s", names[i]);
		if (mig_read(c, p, &t, &len) < 0)
			continue;
		char *ip = mig_kv_get(t, "IPADDR"), *mask = mig_kv_get(t, "NETMASK");
		char *v6 = mig_kv_get(t, "IPV6ADDR"), *v6s = mig_kv_get(t, "IPV6ADDR_SECONDARIES");
		if (ip) {
			char a[128];
			snprintf(a, sizeof(a), "%s%s%s", ip, mask ? "/" : "", mask ? mask : "");
			ret = add_addr_text(c, a);
		}
		if (ret == 0 && v6)
			ret = add_addr_text(c, v6);
		if (ret == 0 && v6s)
			ret = words(v6s, add_addr_text, c);
		free(ip);
		free(mask);
		free(v6);
		free(v6s);
		free(t);
	}
	return ret;
}

/* /etc/sysconfig/network without venet's default-route settings. */
static int fix_sysconfig_network(struct mig_ctx *c)
{
	char *t = NULL, *out = NULL;
	size_t len, olen = 0;
	int ret = mig_read(c, "/etc/sysconfig/network", &t, &len);

	if (ret < 0)
		return ret == -ENOENT ? 0 : ret;
	FILE *m = open_memstream(&out, &olen);
	for (char *s = NULL, *l = m ? strtok_r(t, "\n", &s) : NULL; l;
	     l = strtok_r(NULL, "\n", &s)) {
		char *v = NULL;
		bool drop = false;
		if (!strncmp(l, "GATEWAYDEV=", 11) || !strncmp(l, "IPV6_DEFAULTDEV=", 16))
			drop = strstr(l, "venet") != NULL;
		else if (!strncmp(l, "GATEWAY=", 8) && (v = mig_kv_get(l, "GATEWAY")))
			drop = fake_gateway(v);
		free(v);
		if (!drop)
			fprintf(m, "%s\n", l);
	}
	if (m)
		fclose(m);
	ret = m ? mig_write(c, "/etc/sysconfig/network", out, olen, 0644,
			    "GATEWAYDEV/IPV6_DEFAULTDEV=venet0 (and vzctl's fake GATEWAY) would "
			    "route through a device the VM does not have")
		: err_set(ENOMEM, "out of memory");
	free(out);
	free(t);
	return ret;
}

static int fix_ifcfg(struct mig_ctx *c, char **names, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		char p[512];
		if (strncmp(names[i], "ifcfg-venet", 11) && strncmp(names[i], "route-venet", 11) &&
		    strncmp(names[i], "route6-venet", 12))
			continue;
		snprintf(p, sizeof(p), IFCFG_DIR "/%s", names[i]);
		ret = mig_remove(c, p, "venet exists only in a container; eth0 replaces it");
	}
	if (ret == 0)
		ret = fix_sysconfig_network(c);
	if (!m)
		return err_set(ENOMEM, "out of memory");
	fprintf(m,
		MARK " the VM's network card, with the container's addresses\n"
		     "DEVICE=eth0\nHWADDR=%s\nTYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=none\n",
		c->r->mac);
	int k = 0;
	for (size_t i = 0; i < c->r->naddrs; i++)
		if (c->r->addrs[i].family == 4) {
			fprintf(m, "IPADDR%d=%s\nPREFIX%d=%d\n", k, c->r->addrs[i].addr, k,
				c->r->addrs[i].prefix);
			k++;
		}
	if (gateway(c, 4))
		fprintf(m, "GATEWAY=%s\n", gateway(c, 4));
	fputs("DEFROUTE=yes\n", m);
	if (first_of(c, 6)) {
		fprintf(m, "IPV6INIT=yes\nIPV6_AUTOCONF=no\nIPV6ADDR=%s/%d\n", first_of(c, 6),
			first_prefix(c, 6));
		bool first = true, any = false;
		for (size_t i = 0; i < c->r->naddrs; i++) {
			const struct migrate_addr *a = &c->r->addrs[i];
			if (a->family != 6 || (first && !(first = false)))
				continue;
			fprintf(m, "%s%s/%d", any ? " " : "IPV6ADDR_SECONDARIES=\"", a->addr,
				a->prefix);
			any = true;
		}
		if (any)
			fputs("\"\n", m);
		if (gateway(c, 6))
			fprintf(m, "IPV6_DEFAULTGW=%s\n", gateway(c, 6));
	}
	for (size_t i = 0; i < c->r->ndns && i < 3; i++)
		fprintf(m, "DNS%zu=%s\n", i + 1, c->r->dns[i]);
	if (c->r->nsearch) {
		fputs("DOMAIN=\"", m);
		for (size_t i = 0; i < c->r->nsearch; i++)
			fprintf(m, "%s%s", i ? " " : "", c->r->search[i]);
		fputs("\"\n", m);
	}
	fclose(m);
	if (ret == 0)
		ret = mig_write(c, IFCFG_DIR "/ifcfg-eth0", out, len, 0644,
				"eth0 gets the container's addresses, gateway and DNS, matched by "
				"the VM's MAC address (HWADDR)");
	free(out);
	for (int fam = 4; ret == 0 && fam <= 6; fam += 2) {
		if (!first_of(c, fam) || gateway(c, fam))
			continue;
		const char *rt = "default dev eth0\n";
		ret = mig_write(c, fam == 4 ? IFCFG_DIR "/route-eth0" : IFCFG_DIR "/route6-eth0",
				rt, strlen(rt), 0644,
				"no gateway given: the default route goes through the device, as "
				"venet's did");
	}
	return ret;
}

/* ---- systemd-networkd ---- */

static int fix_networkd(struct mig_ctx *c, char **names, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		char p[512], *t = NULL;
		size_t tl;
		snprintf(p, sizeof(p), "/etc/systemd/network/%s", names[i]);
		if (strlen(names[i]) < 9 || strcmp(names[i] + strlen(names[i]) - 8, ".network") ||
		    mig_read(c, p, &t, &tl) < 0)
			continue;
		if (strstr(t, "venet")) {
			for (char *a = strstr(t, "Address="); a; a = strstr(a + 1, "Address=")) {
				char addr[128];
				if (sscanf(a + 8, "%127s", addr) == 1)
					add_addr_text(c, addr);
			}
			ret =
			    mig_remove(c, p, "venet exists only in a container; eth0 replaces it");
		}
		free(t);
	}
	FILE *m = open_memstream(&out, &len);
	if (!m)
		return err_set(ENOMEM, "out of memory");
	fprintf(m,
		MARK " the VM's network card, with the container's addresses\n"
		     "[Match]\nMACAddress=%s\n\n[Network]\n",
		c->r->mac);
	for (size_t i = 0; i < c->r->naddrs; i++)
		fprintf(m, "Address=%s/%d\n", c->r->addrs[i].addr, c->r->addrs[i].prefix);
	for (size_t i = 0; i < c->r->ngateways; i++)
		fprintf(m, "Gateway=%s\n", c->r->gateways[i]);
	for (size_t i = 0; i < c->r->ndns; i++)
		fprintf(m, "DNS=%s\n", c->r->dns[i]);
	for (size_t i = 0; i < c->r->nsearch; i++)
		fprintf(m, "Domains=%s\n", c->r->search[i]);
	for (int fam = 4; fam <= 6; fam += 2)
		if (first_of(c, fam) && !gateway(c, fam))
			fprintf(m, "\n[Route]\nDestination=%s\nScope=link\n",
				fam == 4 ? "0.0.0.0/0" : "::/0");
	fclose(m);
	if (ret == 0)
		ret = mig_write(c, NETWORK_FILE, out, len, 0644,
				"eth0 gets the container's addresses, gateway and DNS, matched by "
				"the VM's MAC address");
	free(out);
	return ret;
}

/* ---- choosing ---- */

void mig_net_default_mac(struct mig_ctx *c, char mac[18])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *parts[3] = {c->r->hostname, c->r->naddrs ? c->r->addrs[0].addr : NULL,
				c->r->hostname || c->r->naddrs ? NULL : c->src->name};

	for (int i = 0; i < 3; i++)
		for (const char *s = parts[i]; s && *s; s++)
			h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	snprintf(mac, 18, "52:54:00:%02x:%02x:%02x", (unsigned)(h >> 16) & 0xff,
		 (unsigned)(h >> 8) & 0xff, (unsigned)h & 0xff);
}

static int resolv_conf(struct mig_ctx *c)
{
	char *t = NULL;
	size_t len;
	int ret = 0;

	if (mig_read(c, "/etc/resolv.conf", &t, &len) < 0)
		return 0;
	for (char *s = NULL, *l = strtok_r(t, "\n", &s); l && ret == 0;
	     l = strtok_r(NULL, "\n", &s)) {
		char kw[32], rest[512];
		if (sscanf(l, "%31s %511[^\n]", kw, rest) != 2)
			continue;
		if (!strcmp(kw, "nameserver"))
			ret = words(rest, add_dns, c);
		else if (!strcmp(kw, "search") || !strcmp(kw, "domain"))
			ret = words(rest, add_search, c);
	}
	free(t);
	return ret;
}

int mig_net_fix(struct mig_ctx *c)
{
	const struct migrate_opts *o = c->o;
	char *ifs = NULL, **cfgs = NULL, **nets = NULL;
	size_t len, ncfg = 0, nnet = 0;
	bool had = false;
	int ret = 0;

	mig_read(c, "/etc/network/interfaces", &ifs, &len);
	mig_list(c, IFCFG_DIR, &cfgs, &ncfg);
	mig_list(c, "/etc/systemd/network", &nets, &nnet);
	/* The addresses: --ip, else the configuration's IP_ADDRESS, else what venet had. */
	for (size_t i = 0; i < o->nips && ret == 0; i++)
		ret = add_addr_text(c, o->ips[i]);
	if (ret == 0 && !c->r->naddrs && strmap_get(&c->cfg, "IP_ADDRESS"))
		ret = words(strmap_get(&c->cfg, "IP_ADDRESS"), add_addr_text, c);
	bool from_files = !c->r->naddrs;
	char *stripped = ifs ? mig_interfaces_strip(c, ifs, from_files, &had) : NULL;
	free(stripped);
	bool ifcfg_venet = false, nd_venet = false;
	for (size_t i = 0; i < ncfg; i++)
		ifcfg_venet |= !strncmp(cfgs[i], "ifcfg-venet", 11);
	if (ret == 0 && ifcfg_venet && from_files)
		ret = ifcfg_collect(c, cfgs, ncfg);
	for (size_t i = 0; i < nnet && !nd_venet; i++) {
		char p[512], *t = NULL;
		size_t tl;
		snprintf(p, sizeof(p), "/etc/systemd/network/%s", nets[i]);
		if (mig_read(c, p, &t, &tl) == 0)
			nd_venet = strstr(t, "venet") != NULL;
		free(t);
	}
	/* A re-sync keeps what the last run used, unless told otherwise. */
	bool no_addrs = !c->r->naddrs;
	for (size_t i = 0; no_addrs && i < c->prevnet.naddrs && ret == 0; i++)
		ret = add_addr(c, &c->prevnet.addrs[i]);
	for (size_t i = 0; i < o->ngateways && ret == 0; i++)
		ret = strv_add(&c->r->gateways, &c->r->ngateways, o->gateways[i]);
	for (size_t i = 0; !o->ngateways && i < c->prevnet.ngateways && ret == 0; i++)
		ret = strv_add(&c->r->gateways, &c->r->ngateways, c->prevnet.gateways[i]);
	if (ret == 0 && strmap_get(&c->cfg, "NAMESERVER"))
		ret = words(strmap_get(&c->cfg, "NAMESERVER"), add_dns, c);
	if (ret == 0 && strmap_get(&c->cfg, "SEARCHDOMAIN"))
		ret = words(strmap_get(&c->cfg, "SEARCHDOMAIN"), add_search, c);
	bool no_dns = !c->r->ndns, no_search = !c->r->nsearch;
	for (size_t i = 0; no_dns && i < c->prevnet.ndns && ret == 0; i++)
		ret = add_dns(c, c->prevnet.dns[i]);
	for (size_t i = 0; no_search && i < c->prevnet.nsearch && ret == 0; i++)
		ret = add_search(c, c->prevnet.search[i]);
	if (ret == 0 && !c->r->ndns)
		ret = resolv_conf(c);
	/* IPv4 first, each family in the order found. */
	for (size_t i = 1; i < c->r->naddrs; i++)
		for (size_t j = i; j > 0 && c->r->addrs[j].family < c->r->addrs[j - 1].family;
		     j--) {
			struct migrate_addr t = c->r->addrs[j];
			c->r->addrs[j] = c->r->addrs[j - 1];
			c->r->addrs[j - 1] = t;
		}
	uint32_t mode;
	bool networkd = mig_lstat(c,
				  "/etc/systemd/system/multi-user.target.wants/"
				  "systemd-networkd.service",
				  &mode) == 0;
	const char *style = had					  ? "ifupdown"
			    : ifcfg_venet			  ? "ifcfg"
			    : nd_venet				  ? "networkd"
			    : !c->r->naddrs			  ? NULL
			    : c->prevnet.net_style		  ? c->prevnet.net_style
			    : networkd				  ? "networkd"
			    : ifs				  ? "ifupdown"
			    : mig_lstat(c, IFCFG_DIR, &mode) == 0 ? "ifcfg"
								  : "networkd";
	if (ret == 0 && !style)
		mig_note(c, "no venet configuration and no addresses (IP_ADDRESS, --ip): the "
			    "network configuration is left as the container has it");
	if (ret == 0 && style && !c->r->naddrs)
		mig_note(c, "venet had no addresses: eth0 gets none (give --ip)");
	if (ret == 0 && style) {
		c->r->net_style = strdup(style);
		if (!strcmp(style, "ifupdown"))
			ret = fix_ifupdown(c, ifs ? ifs : "");
		else if (!strcmp(style, "ifcfg"))
			ret = fix_ifcfg(c, cfgs, ncfg);
		else
			ret = fix_networkd(c, nets, nnet);
		if (ret == 0 && c->r->naddrs && !c->r->ngateways)
			mig_note(c,
				 "no gateway given (--gateway): the default route goes through "
				 "eth0, as venet's did; that needs the host to answer ARP for the "
				 "router");
		mig_note(c, "give the VM the MAC address %s (ligero run --net bridge=BR,mac=%s)",
			 c->r->mac, c->r->mac);
	}
	free(ifs);
	mig_strv_free(cfgs, ncfg);
	mig_strv_free(nets, nnet);
	return ret;
}
