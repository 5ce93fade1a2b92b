/* `ligero fs inspect`: what the disk holds, in text or JSON. */
#include "cli/cli.h"
#include "cli/fs.h"
#include "fs/ext.h"
#include "fs/inspect.h"

#include <json-c/json.h>
#include <stdio.h>

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void print_json(const char *disk, const struct fs_inspect *in)
{
	struct json_object *o = json_object_new_object(), *os = json_object_new_object();
	struct json_object *k = json_object_new_array(), *f = json_object_new_array();
	struct json_object *n = json_object_new_array();

	json_object_object_add(o, "disk", json_object_new_string(disk));
	json_object_object_add(o, "root-partition", json_object_new_int(in->root_part));
	json_object_object_add(o, "boot-partition", json_object_new_int(in->boot_part));
	json_object_object_add(os, "id", jstr(in->os_id));
	json_object_object_add(os, "name", jstr(in->os_name));
	json_object_object_add(os, "version", jstr(in->os_version));
	json_object_object_add(os, "pretty-name", jstr(in->os_pretty));
	json_object_object_add(os, "codename", jstr(in->os_codename));
	json_object_object_add(o, "os", os);
	json_object_object_add(o, "hostname", jstr(in->hostname));
	for (size_t i = 0; i < in->nkernels; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "version", jstr(in->kernels[i].version));
		json_object_object_add(e, "kernel", jstr(in->kernels[i].kernel));
		json_object_object_add(e, "initrd", jstr(in->kernels[i].initrd));
		json_object_array_add(k, e);
	}
	json_object_object_add(o, "kernels", k);
	for (size_t i = 0; i < in->nfstab; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "spec", jstr(in->fstab[i].spec));
		json_object_object_add(e, "mountpoint", jstr(in->fstab[i].file));
		json_object_object_add(e, "type", jstr(in->fstab[i].type));
		json_object_object_add(e, "options", jstr(in->fstab[i].options));
		json_object_array_add(f, e);
	}
	json_object_object_add(o, "fstab", f);
	for (size_t i = 0; i < in->nnetfiles; i++)
		json_object_array_add(n, jstr(in->netfiles[i]));
	json_object_object_add(o, "network-config", n);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static const char *or_dash(const char *s)
{
	return s ? s : "-";
}

static void print_text(const char *disk, const struct fs_inspect *in)
{
	printf("disk:       %s\n", disk);
	if (in->root_part)
		printf("root:       %s:%d\n", disk, in->root_part);
	else
		printf("root:       %s\n", disk);
	printf("os:         %s\n", or_dash(in->os_pretty ? in->os_pretty : in->os_name));
	printf("id:         %s\n", or_dash(in->os_id));
	printf("version:    %s\n", or_dash(in->os_version));
	printf("codename:   %s\n", or_dash(in->os_codename));
	printf("hostname:   %s\n", or_dash(in->hostname));
	for (size_t i = 0; i < in->nkernels; i++) {
		printf("kernel:     ");
		if (in->boot_part != in->root_part)
			printf("%s:%d:", disk, in->boot_part);
		printf("%s (initrd %s)\n", in->kernels[i].kernel, or_dash(in->kernels[i].initrd));
	}
	for (size_t i = 0; i < in->nfstab; i++)
		printf("fstab:      %s %s %s %s\n", in->fstab[i].spec, in->fstab[i].file,
		       in->fstab[i].type, in->fstab[i].options);
	for (size_t i = 0; i < in->nnetfiles; i++)
		printf("network:    %s\n", in->netfiles[i]);
}

int fs_inspect_main(int argc, char **argv)
{
	static const char usage[] = "inspect [--output=json] DISK";
	struct fs_cli o;
	struct fs_handle h;
	struct fs_inspect in;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage);

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_exact(argc - i + (addr || o.disk), 1, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, false))
		return 1;
	fs_inspect_gfs(h.disk, h.gfs, h.num, &in);
	if (o.json)
		print_json(h.disk->path, &in);
	else
		print_text(h.disk->path, &in);
	fs_inspect_free(&in);
	return fs_cli_close(&h, 0);
}
