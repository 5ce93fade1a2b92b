/* `ligero sysprep`: make a cloned disk unique, nothing booted. */
#include "cli/cli.h"
#include "tools/sysprep.h"
#include "util/error.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs("usage: ligero sysprep [--hostname NAME] [--operations OP,OP,...] [--dry-run]\n"
	      "                      [--output=human|json] DISK[:N]\n"
	      "       ligero sysprep --list-operations\n"
	      "\n"
	      "Makes a clone unique the way virt-sysprep does (machine ID, SSH host keys, MAC\n"
	      "pinning, DHCP leases, hostname, logs, ...), by writing into the disk's top image\n"
	      "through its filesystem: an overlay changes, its base does not. The root must be\n"
	      "ext2/3/4. Refused: an image in use, a base that overlays depend on.\n"
	      "  --operations  virt-sysprep's syntax: defaults, all, none, a name adds an\n"
	      "                operation, a name after a minus sign removes it\n"
	      "  --dry-run     list what would change, write nothing\n"
	      "See docs/ligero-sysprep.md.\n",
	      f);
}

static void list_ops(void)
{
	size_t n;
	const struct sysprep_op *ops = sysprep_ops(&n);

	for (size_t i = 0; i < n; i++)
		printf("%-20s %s %s\n", ops[i].name, ops[i].by_default ? "*" : " ", ops[i].summary);
}

static void print_json(const char *disk, const struct sysprep_opts *o,
		       const struct sysprep_result *r)
{
	struct json_object *j = json_object_new_object(), *ops = json_object_new_array();
	struct json_object *ch = json_object_new_array(), *notes = json_object_new_array();
	size_t n;
	const struct sysprep_op *all = sysprep_ops(&n);

	json_object_object_add(j, "disk", json_object_new_string(disk));
	json_object_object_add(j, "root", json_object_new_string(r->root));
	json_object_object_add(j, "os-id", json_object_new_string(r->os_id));
	json_object_object_add(j, "family", json_object_new_string(r->family));
	json_object_object_add(j, "dry-run", json_object_new_boolean(o->dry_run));
	for (size_t i = 0; i < n; i++)
		if (o->ops & (1u << i))
			json_object_array_add(ops, json_object_new_string(all[i].name));
	json_object_object_add(j, "operations", ops);
	for (size_t i = 0; i < r->nchanges; i++) {
		const struct sysprep_change *c = &r->changes[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "operation", json_object_new_string(c->op));
		json_object_object_add(e, "path", json_object_new_string(c->path));
		json_object_object_add(e, "action", json_object_new_string(c->action));
		json_object_object_add(e, "detail", json_object_new_string(c->detail));
		json_object_array_add(ch, e);
	}
	json_object_object_add(j, "changes", ch);
	for (size_t i = 0; i < r->nnotes; i++)
		json_object_array_add(notes, json_object_new_string(r->notes[i]));
	json_object_object_add(j, "notes", notes);
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

static void print_text(const struct sysprep_opts *o, const struct sysprep_result *r)
{
	printf("%s: %s (%s family)%s\n", r->root, r->os_id[0] ? r->os_id : "unknown OS", r->family,
	       o->dry_run ? "; dry run: nothing written" : "");
	for (size_t i = 0; i < r->nchanges; i++) {
		const struct sysprep_change *c = &r->changes[i];
		printf("  %-20s %-10s %s%s%s\n", c->op, c->action, c->path,
		       c->detail[0] ? "  # " : "", c->detail);
	}
	if (!r->nchanges)
		printf("  nothing to change\n");
	for (size_t i = 0; i < r->nnotes; i++)
		printf("note: %s\n", r->notes[i]);
}

int cmd_sysprep(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"hostname", required_argument, NULL, 'H'},
	    {"operations", required_argument, NULL, 'O'},
	    {"enable", required_argument, NULL, 'O'}, /* virt-sysprep's older name */
	    {"list-operations", no_argument, NULL, 'L'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"output", required_argument, NULL, 'J'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sysprep_opts o = {.ops = sysprep_default_ops()};
	struct sysprep_result r;
	bool json = false, list = false;
	size_t nops;
	const struct sysprep_op *ops = sysprep_ops(&nops);
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hn", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			o.hostname = optarg;
			break;
		case 'O':
			if ((ret = sysprep_ops_parse(optarg, &o.ops)) < 0)
				return cli_fail_err(ret);
			break;
		case 'L':
			list = true;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 'J':
			if (!strcmp(optarg, "json"))
				json = true;
			else if (strcmp(optarg, "human"))
				return cli_fail("--output must be human or json, not '%s'", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_opt_error("sysprep", c, argv, longopts);
		}
	}
	if (list) {
		list_ops();
		return 0;
	}
	if (optind >= argc)
		return cli_usage_fail("sysprep", "no disk given");
	if (optind + 1 < argc)
		return cli_fail("sysprep: one disk at a time (unexpected '%s')", argv[optind + 1]);
	for (size_t i = 0; i < nops && o.hostname; i++)
		if (!strcmp(ops[i].name, "hostname") && !(o.ops & (1u << i)))
			return cli_fail("sysprep: --hostname given but the hostname operation is "
					"not selected (--operations)");
	if ((ret = sysprep_run(argv[optind], &o, &r)) < 0) {
		sysprep_result_free(&r);
		return cli_fail_err(ret);
	}
	if (json)
		print_json(argv[optind], &o, &r);
	else
		print_text(&o, &r);
	sysprep_result_free(&r);
	return 0;
}
