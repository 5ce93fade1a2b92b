/* `ligero host check`: one line per check, PASS/WARN/FAIL and the fix (host/check.c). */
#include "cli/cli.h"
#include "host/check.h"
#include "host/registry.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void host_usage(FILE *f)
{
	fputs("usage: ligero host <verb> [options]\n\n"
	      "The machine VMs run on.\n\nverbs:\n"
	      "  check [--output=json] [--root DIR] [--state-dir DIR]\n",
	      f);
}

static const char check_usage[] =
    "usage: ligero host check [--output=json] [--root DIR] [--state-dir DIR]\n"
    "\n"
    "Is this host ready to run VMs? One line per check: PASS, WARN or FAIL, and the fix.\n"
    "Exit status 0 when VMs can run with hardware acceleration (no FAIL). --root DIR\n"
    "checks the tree at DIR (its proc, sys and dev) instead of this host's; --state-dir\n"
    "names the VM definitions whose memory and bridges are weighed.\n";

/* What the definitions promise: their memory, and the bridges they use. */
static void promised(const char *state_dir, struct check_opts *co, char ***bridges)
{
	struct registry r;
	char **names;
	size_t n, nb = 0;

	*bridges = NULL;
	if (registry_open(&r, state_dir) < 0 || registry_names(&r, &names, &n) < 0) {
		err_clear();
		return;
	}
	*bridges = calloc(n * 16 + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		struct vmdef d;
		if (registry_load(&r, names[i], &d) < 0)
			continue;
		co->promised += d.memory;
		co->nvms++;
		for (size_t j = 0; *bridges && j < d.nnets; j++)
			if (d.nets[j].bridge)
				(*bridges)[nb++] = strdup(d.nets[j].bridge);
		vmdef_free(&d);
	}
	err_clear();
	co->bridges = (const char *const *)*bridges;
	co->nbridges = nb;
	registry_names_free(names, n);
	registry_close(&r);
}

static void print_json(const struct check_item *it, size_t n)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		struct json_object *j = json_object_new_object();
		char res[8];
		snprintf(res, sizeof(res), "%s", check_result_name(it[i].result));
		for (char *p = res; *p; p++)
			*p = (char)(*p - 'A' + 'a');
		json_object_object_add(j, "name", json_object_new_string(it[i].name));
		json_object_object_add(j, "result", json_object_new_string(res));
		json_object_object_add(j, "message", json_object_new_string(it[i].message));
		json_object_object_add(j, "fix",
				       it[i].fix[0] ? json_object_new_string(it[i].fix) : NULL);
		json_object_array_add(a, j);
	}
	json_object_object_add(o, "checks", a);
	json_object_object_add(o, "accelerated",
			       json_object_new_boolean(host_check_accelerated(it, n)));
	printf("%s\n",
	       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static int host_check_main(int argc, char **argv)
{
	enum { OPT_OUTPUT = 0x100, OPT_ROOT, OPT_STATE_DIR };
	static const struct option opts[] = {
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct check_opts co = {.root = "/"};
	const char *state_dir = NULL;
	struct check_item *items;
	gid_t groups[256];
	char **bridges;
	bool json = false;
	size_t n;
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(check_usage, stdout);
			return 0;
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") && strcmp(optarg, "human"))
				return cli_usage_fail(
				    "host check", "--output must be 'human' or 'json', not '%s'",
				    optarg);
			json = !strcmp(optarg, "json");
			break;
		case OPT_ROOT:
			co.root = optarg;
			break;
		case OPT_STATE_DIR:
			state_dir = optarg;
			break;
		default:
			return cli_opt_error("host check", c, argv, opts);
		}
	}
	if (optind < argc)
		return cli_usage_fail("host check", "unexpected argument '%s'", argv[optind]);
	if (access(co.root, R_OK | X_OK) < 0)
		return cli_fail("host check: --root %s: %s", co.root, strerror(errno));
	co.uid = geteuid();
	co.gid = getegid();
	co.ngroups = getgroups(256, groups);
	co.groups = groups;
	if (co.ngroups < 0)
		co.ngroups = 0;
	co.live = !strcmp(co.root, "/");
	promised(state_dir, &co, &bridges);
	ret = host_check(&co, &items, &n);
	for (size_t i = 0; bridges && bridges[i]; i++)
		free(bridges[i]);
	free(bridges);
	if (ret < 0)
		return cli_fail("host check: %s", err_msg_or(ret));
	if (json) {
		print_json(items, n);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s  %-10s %s%s%s\n", check_result_name(items[i].result),
			       items[i].name, items[i].message, items[i].fix[0] ? "; fix: " : "",
			       items[i].fix);
	}
	ret = host_check_accelerated(items, n) ? 0 : 1;
	free(items);
	return ret;
}

int cmd_host(int argc, char **argv)
{
	if (argc < 2) {
		host_usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		host_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "check"))
		return host_check_main(argc - 1, argv + 1);
	return cli_fail("unknown host verb '%s' (see 'ligero host --help')", argv[1]);
}
