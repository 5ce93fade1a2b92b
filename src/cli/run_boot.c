/*
 * `ligero run --disk FILE` without --kernel: boot the first disk's own kernel (tools/bootdisk),
 * or list its boot entries (--list-boot-entries) like `pygrub -l`. All of it happens before
 * KVM is opened, so a disk with nothing to boot fails on any host.
 */
#include "cli/cli.h"
#include "cli/run_boot.h"
#include "tools/bootdisk.h"
#include "vmm/virtio/vmdev.h"
#include "vmm/vm.h"
#include "util/error.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int run_boot_output(struct run_boot *rb, const char *fmt)
{
	rb->output = true;
	if (!strcmp(fmt, "json"))
		rb->json = true;
	else if (!strcmp(fmt, "human"))
		rb->json = false;
	else
		return cli_fail("--output '%s': expected human or json", fmt);
	return 0;
}

static void list_text(const struct bootdisk *bd)
{
	for (size_t i = 0; i < bootdisk_count(bd); i++) {
		const struct bootdisk_entry *e = bootdisk_entry(bd, i);
		printf("%zu: %s%s\n", i, e->title, e->is_default ? " (default)" : "");
		printf("   kernel:  %s%s%s\n", e->kernel_fs ? e->kernel_fs : "",
		       e->kernel_fs ? ":" : "", e->kernel);
		for (size_t k = 0; k < e->ninitrd; k++)
			printf("   initrd:  %s\n", e->initrd[k]);
		printf("   options: %s\n", e->options);
		printf("   from:    %s (%s)\n", e->source, e->kind);
	}
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void list_json(const struct bootdisk *bd, const char *disk)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "disk", json_object_new_string(disk));
	json_object_object_add(o, "default", json_object_new_int64((int64_t)bootdisk_default(bd)));
	for (size_t i = 0; i < bootdisk_count(bd); i++) {
		const struct bootdisk_entry *e = bootdisk_entry(bd, i);
		struct json_object *j = json_object_new_object(), *ir = json_object_new_array();
		json_object_object_add(j, "index", json_object_new_int64((int64_t)i));
		json_object_object_add(j, "title", jstr(e->title));
		json_object_object_add(j, "id", jstr(e->id));
		json_object_object_add(j, "kernel", jstr(e->kernel));
		json_object_object_add(j, "filesystem", jstr(e->kernel_fs));
		for (size_t k = 0; k < e->ninitrd; k++)
			json_object_array_add(ir, jstr(e->initrd[k]));
		json_object_object_add(j, "initrd", ir);
		json_object_object_add(j, "options", jstr(e->options));
		json_object_object_add(j, "kind", jstr(e->kind));
		json_object_object_add(j, "source", jstr(e->source));
		json_object_object_add(j, "default", json_object_new_boolean(e->is_default));
		json_object_array_add(a, j);
	}
	json_object_object_add(o, "entries", a);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Read the chosen entry and point cfg at it; one line on stderr says what boots. */
static int boot_entry(struct bootdisk *bd, struct vm_config *cfg, struct run_boot *rb)
{
	const struct bootdisk_entry *e;
	size_t idx = bootdisk_default(bd);
	int ret;

	if (rb->entry && (ret = bootdisk_select(bd, rb->entry, &idx)) < 0)
		return cli_fail_err(ret);
	if ((ret = bootdisk_load(bd, idx, *cfg->cmdline ? cfg->cmdline : NULL, &rb->img)) < 0)
		return cli_fail_err(ret);
	e = bootdisk_entry(bd, idx);
	if (rb->entry)
		fprintf(stderr, "ligero: booting '%s' (%s entry %zu, --boot-entry)", e->title,
			e->kind, idx);
	else
		fprintf(stderr, "ligero: booting '%s' (%s default entry)", e->title, e->kind);
	fprintf(stderr, " from %s: %s", rb->img.from, rb->img.kernel_path);
	if (rb->img.initrd_paths)
		fprintf(stderr, " with initrd %s", rb->img.initrd_paths);
	fputc('\n', stderr);
	if (rb->img.console_added)
		fputs("ligero: the entry names no serial console (console=ttyS...): added "
		      "console=ttyS0 to its command line\n",
		      stderr);
	cfg->kernel = rb->img.kernel_path;
	cfg->kernel_buf = rb->img.kernel;
	cfg->kernel_len = rb->img.kernel_len;
	cfg->initrd = rb->img.initrd ? rb->img.initrd_paths : NULL;
	cfg->initrd_buf = rb->img.initrd;
	cfg->initrd_len = rb->img.initrd_len;
	cfg->cmdline = rb->img.cmdline;
	return 0;
}

int run_boot_prepare(struct vm_config *cfg, struct run_boot *rb)
{
	const char *path = NULL, *format = NULL;
	struct bootdisk *bd;
	int ret;

	if (rb->output && !rb->list)
		return cli_fail("--output goes with --list-boot-entries");
	if (cfg->kernel) {
		if (rb->list || rb->entry)
			return cli_fail("%s reads a disk's own boot entries: leave out --kernel",
					rb->list ? "--list-boot-entries" : "--boot-entry");
		return 0;
	}
	if (cfg->initrd)
		return cli_fail("--initrd goes with --kernel (a disk's own initrd comes from its "
				"boot entry)");
	if (!vm_devices_disk(cfg->devices, 0, &path, &format))
		return cli_fail("--kernel is required, or a --disk whose own kernel to boot (see "
				"'ligero run --help')");
	if ((ret = bootdisk_open(&bd, path, format)) < 0)
		return cli_fail_err(ret);
	if (rb->list) {
		if (rb->json)
			list_json(bd, path);
		else
			list_text(bd);
		ret = -1;
	} else {
		ret = boot_entry(bd, cfg, rb);
	}
	bootdisk_close(bd);
	return ret;
}

void run_boot_release(struct run_boot *rb, struct vm_config *cfg)
{
	if (rb->img.kernel && cfg->kernel_buf == rb->img.kernel) {
		cfg->kernel_buf = cfg->initrd_buf = NULL;
		cfg->kernel = cfg->initrd = cfg->cmdline = NULL;
	}
	bootdisk_image_free(&rb->img);
}

const char run_boot_usage[] =
    "   or: ligero run --disk FILE[,opts] [--disk ...] [--boot-entry N|TITLE] [options]\n"
    "   or: ligero run --disk FILE[,opts] --list-boot-entries [--output=human|json]\n";
