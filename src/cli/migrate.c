/* `ligero migrate`: an OpenVZ container (or any Linux root tree) to a KVM VM's disk. */
#include "cli/cli.h"
#include "tools/migrate.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/size.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs("usage: ligero migrate SOURCE --base BASE -o VM.qcow2 [--config CTID.conf]\n"
	      "                      [--mac MAC] [--ip ADDR[/PREFIX]]... [--gateway ADDR]...\n"
	      "                      [-e SSH] [--checksum] [--dry-run] [--force] [-p]\n"
	      "                      [--output=human|json]\n"
	      "       ligero migrate --resync SOURCE VM.qcow2 [options]\n"
	      "\n"
	      "Writes a container's files into VM.qcow2, a new overlay of BASE (an installation\n"
	      "of the same release), keeping the VM's kernel, modules, /boot, fstab and udev,\n"
	      "merging the kernel packages into the package database, replacing venet with\n"
	      "eth0, undoing the template's changes; each change is listed with its backup.\n"
	      "  SOURCE           a container's directory (/vz/private/CTID), a tar archive, a\n"
	      "                   disk image (ploop, qcow2, raw), or ssh://[user@]host[:port]\n"
	      "                   (--from SOURCE says the same)\n"
	      "  --base BASE      the base image (first run)\n"
	      "  -o VM.qcow2      the overlay to create\n"
	      "  --resync         update VM.qcow2: only what changed since the last run\n"
	      "  --config FILE    the container's vzctl configuration (CTID.conf, ve.conf)\n"
	      "  --mac MAC        the VM's MAC address (default: a stable 52:54:00:xx:xx:xx)\n"
	      "  --ip ADDR[/P]    eth0's addresses instead of the container's (repeatable)\n"
	      "  --gateway ADDR   eth0's default gateway, IPv4 and/or IPv6 (repeatable)\n"
	      "  -e, --rsh SSH    the ssh command for ssh:// sources (default: ssh)\n"
	      "  --checksum       compare contents, not only size, time, mode and owner\n"
	      "  --dry-run        report what would change; write nothing\n"
	      "  --force          go ahead although BASE is another release\n",
	      f);
}

static void print_counts(const struct migrate_counts *k, bool dry)
{
	char b[32];

	printf("copy: %llu entries: %llu created, %llu updated, %llu attributes, %llu hard "
	       "links, %llu unchanged, %llu deleted, %llu kept for the VM; %s %s\n",
	       (unsigned long long)k->entries, (unsigned long long)k->created,
	       (unsigned long long)k->updated, (unsigned long long)k->attrs,
	       (unsigned long long)k->linked, (unsigned long long)k->unchanged,
	       (unsigned long long)k->deleted, (unsigned long long)k->kept,
	       size_human(k->bytes, b, sizeof(b)), dry ? "to write" : "written");
}

static void print_list(const char *label, char **v, size_t n)
{
	if (!n)
		return;
	printf("%s", label);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? ", " : " ", v[i]);
	putchar('\n');
}

static void print_report(const struct migrate_report *r)
{
	char b[32], d[32];

	if (r->dry_run)
		printf("dry run: nothing was written\n");
	printf("%s: %s (%s) -> %s, an overlay of %s%s\n", r->resync ? "re-sync" : "migration",
	       r->source, r->source_kind, r->output, r->base, r->resumed ? " (resumed)" : "");
	printf("container: %s, /usr %s%s%s\n", r->os_pretty, r->usr_layout,
	       r->hostname ? ", hostname " : "", r->hostname ? r->hostname : "");
	if (r->ctid || r->ram || r->disk)
		printf("configuration: CTID %s, layout %s, template %s, RAM %s, disk %s\n",
		       r->ctid ? r->ctid : "-", r->ve_layout ? r->ve_layout : "-",
		       r->ostemplate ? r->ostemplate : "-",
		       r->ram ? size_human(r->ram, b, sizeof(b)) : "-",
		       r->disk ? size_human(r->disk, d, sizeof(d)) : "-");
	printf("base: %s\n", r->base_os);
	print_counts(&r->counts, r->dry_run);
	if (r->pkg_system)
		printf("packages: %s", r->pkg_system);
	if (r->pkg_system && r->nkernel_pkgs) {
		printf(", the base's kernel packages:");
		for (size_t i = 0; i < r->nkernel_pkgs; i++)
			printf(" %s", r->kernel_pkgs[i]);
	}
	if (r->pkg_system)
		putchar('\n');
	if (r->net_style) {
		printf("network: %s, eth0 with MAC %s:", r->net_style, r->mac);
		for (size_t i = 0; i < r->naddrs; i++)
			printf(" %s/%d", r->addrs[i].addr, r->addrs[i].prefix);
		putchar('\n');
		print_list("  gateway:", r->gateways, r->ngateways);
		print_list("  dns:", r->dns, r->ndns);
		print_list("  search:", r->search, r->nsearch);
	}
	if (r->nchanges)
		printf("changes%s:\n", r->dry_run ? " (would be made)" : "");
	for (size_t i = 0; i < r->nchanges; i++) {
		const struct migrate_change *c = &r->changes[i];
		printf("  %-8s %s: %s", c->action, c->path, c->why);
		if (c->backup)
			printf(" (backup: %s)", c->backup);
		putchar('\n');
	}
	for (size_t i = 0; i < r->nnotes; i++)
		printf("note: %s\n", r->notes[i]);
}

/*
 * Progress is reported once per entry copied. Tests interrupt a run there, at a chosen entry:
 * LIGERO_MIGRATE_STOP_AFTER=N raises the stop flag as Ctrl-C does, LIGERO_MIGRATE_KILL_AFTER=N
 * kills the process outright (a crash in the middle of writing).
 */
struct cli_progress {
	struct progress pg;
	volatile sig_atomic_t *stop;
	uint64_t calls, stop_after, kill_after;
};

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	struct cli_progress *p = opaque;

	p->calls++;
	if (p->stop_after && p->calls == p->stop_after)
		*p->stop = SIGINT;
	if (p->kill_after && p->calls == p->kill_after)
		raise(SIGKILL);
	progress_update(&p->pg, done, total ? total : done + 1);
}

static uint64_t env_count(const char *name)
{
	const char *v = getenv(name);

	return v ? strtoull(v, NULL, 10) : 0;
}

static int add_arg(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return cli_fail("out of memory");
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},	       {"base", required_argument, NULL, 'b'},
	    {"from", required_argument, NULL, 'S'},    {"config", required_argument, NULL, 'c'},
	    {"mac", required_argument, NULL, 'm'},     {"ip", required_argument, NULL, 'i'},
	    {"gateway", required_argument, NULL, 'g'}, {"rsh", required_argument, NULL, 'e'},
	    {"resync", no_argument, NULL, 'r'},	       {"checksum", no_argument, NULL, 'C'},
	    {"dry-run", no_argument, NULL, 'n'},       {"force", no_argument, NULL, 'F'},
	    {"output", required_argument, NULL, 'J'},  {NULL, 0, NULL, 0},
	};
	struct migrate_opts o = {0};
	const char **ips = NULL, **gws = NULL;
	bool json = false, show_progress = false;
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hb:o:c:e:p", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'b':
			o.base = optarg;
			break;
		case 'o':
			o.output = optarg;
			break;
		case 'S':
			o.source = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'm': {
			unsigned m[6];
			char tail;
			if (sscanf(optarg, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3],
				   &m[4], &m[5], &tail) != 6 ||
			    strlen(optarg) != 17)
				return cli_usage_fail("migrate",
						      "--mac '%s' is not a MAC address "
						      "(52:54:00:12:34:56)",
						      optarg);
			if (m[0] & 1)
				return cli_usage_fail("migrate", "--mac %s is a multicast address",
						      optarg);
			o.mac = optarg;
			break;
		}
		case 'i':
		case 'g': {
			struct migrate_addr a;
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", optarg);
			if (c == 'g' && strchr(buf, '/'))
				buf[0] = 0;
			if (!buf[0] || !migrate_addr_parse(buf, &a))
				return cli_usage_fail("migrate", "%s '%s' is not an %s",
						      c == 'i' ? "--ip" : "--gateway", optarg,
						      c == 'i' ? "address (192.0.2.10/24)"
							       : "address");
			if (add_arg(c == 'i' ? &ips : &gws, c == 'i' ? &o.nips : &o.ngateways,
				    optarg))
				return 1;
			break;
		}
		case 'e':
			o.rsh = optarg;
			break;
		case 'r':
			o.resync = true;
			break;
		case 'C':
			o.checksum = true;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 'F':
			o.force = true;
			break;
		case 'p':
			show_progress = true;
			break;
		case 'J':
			if (!strcmp(optarg, "json"))
				json = true;
			else if (strcmp(optarg, "human"))
				return cli_usage_fail(
				    "migrate", "--output must be 'human' or 'json', not '%s'",
				    optarg);
			break;
		default:
			return cli_opt_error("migrate", c, argv, longopts);
		}
	}
	if (!o.source && optind < argc)
		o.source = argv[optind++];
	if (o.resync && !o.output && optind < argc)
		o.output = argv[optind++];
	if (optind < argc)
		return cli_usage_fail("migrate", "unexpected argument '%s'", argv[optind]);
	if (!o.source)
		return cli_usage_fail("migrate", "no source given (a container's directory, a tar "
						 "archive, a disk image or ssh://host)");
	if (!o.output)
		return cli_usage_fail("migrate", o.resync ? "--resync needs SOURCE and VM.qcow2"
							  : "no output given (-o VM.qcow2)");
	if (!o.resync && !o.base)
		return cli_usage_fail("migrate",
				      "no base given (--base BASE.qcow2: an installation "
				      "of the container's release)");
	if (o.resync && o.base)
		return cli_usage_fail("migrate",
				      "--resync uses the overlay's own base; drop --base");
	o.ips = ips;
	o.gateways = gws;
	struct cli_progress pg = {.stop = progress_stop_flag(),
				  .stop_after = env_count("LIGERO_MIGRATE_STOP_AFTER"),
				  .kill_after = env_count("LIGERO_MIGRATE_KILL_AFTER")};
	progress_init(&pg.pg, show_progress, json);
	progress_catch_signals();
	if (pg.pg.enabled || pg.stop_after || pg.kill_after)
		o.progress = progress_cb;
	o.opaque = &pg;
	o.stop = pg.stop;
	struct migrate_report r;
	ret = migrate_run(&o, &r);
	progress_end(&pg.pg);
	progress_release_signals();
	if (ret == 0 && json) {
		struct json_object *j = migrate_report_json(&r);
		printf("%s\n", json_object_to_json_string_ext(
				   j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (ret == 0) {
		print_report(&r);
	}
	migrate_report_free(&r);
	free(ips);
	free(gws);
	return ret < 0 ? cli_fail_err(ret) : 0;
}
