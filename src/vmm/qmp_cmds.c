/* The VM's QMP commands; see qmp_cmds.h. Each answer has the members QEMU 7.2 gives for the
 * same command (tests/qmp/qemu-7.2.jsonl is a recorded QEMU session the unit test compares
 * with); events that QEMU sends before a command's answer (STOP, RESUME, POWERDOWN, SHUTDOWN)
 * are sent before ours too. */
#include "vmm/qmp_cmds.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define MAX_CPUS 256

static struct qmp_vm *vmq(void *ctx)
{
	return ctx;
}

const char *qmp_shutdown_reason(enum qmp_shutdown why)
{
	switch (why) {
	case QMP_SHUTDOWN_GUEST:
		return "guest-shutdown";
	case QMP_SHUTDOWN_GUEST_RESET:
		return "guest-reset";
	case QMP_SHUTDOWN_GUEST_PANIC:
		return "guest-panic";
	case QMP_SHUTDOWN_QMP_QUIT:
		return "host-qmp-quit";
	case QMP_SHUTDOWN_QMP_RESET:
		return "host-qmp-system-reset";
	case QMP_SHUTDOWN_SIGNAL:
		return "host-signal";
	case QMP_SHUTDOWN_UI:
		return "host-ui";
	case QMP_SHUTDOWN_ERROR:
		break;
	}
	return "host-error";
}

void qmp_vm_shutdown_event(struct qmp_server *s, struct qmp_vm *q, enum qmp_shutdown why)
{
	struct json_object *d;

	if (q->shutdown_sent)
		return;
	q->shutdown_sent = true;
	d = json_object_new_object();
	json_object_object_add(d, "guest",
			       json_object_new_boolean(why == QMP_SHUTDOWN_GUEST ||
						       why == QMP_SHUTDOWN_GUEST_RESET ||
						       why == QMP_SHUTDOWN_GUEST_PANIC));
	json_object_object_add(d, "reason", json_object_new_string(qmp_shutdown_reason(why)));
	qmp_server_event(s, "SHUTDOWN", d);
}

struct qmp_version qmp_vm_version(void)
{
	return (struct qmp_version){QMP_QEMU_MAJOR, QMP_QEMU_MINOR, QMP_QEMU_MICRO,
				    "ligero " LIGERO_VERSION};
}

static int failed(struct qmp_error *e, int ret)
{
	return qmp_error_set(e, "GenericError", "%s", err_msg_or(ret));
}

static int cmd_query_status(struct qmp_server *s, void *ctx, struct json_object *args,
			    struct json_object **ret, struct qmp_error *e)
{
	bool running = vmq(ctx)->ops->running(vmq(ctx)->vm);

	*ret = json_object_new_object();
	json_object_object_add(*ret, "status",
			       json_object_new_string(running ? "running" : "paused"));
	json_object_object_add(*ret, "singlestep", json_object_new_boolean(false));
	json_object_object_add(*ret, "running", json_object_new_boolean(running));
	return 0;
}

static int cmd_query_version(struct qmp_server *s, void *ctx, struct json_object *args,
			     struct json_object **ret, struct qmp_error *e)
{
	const struct qmp_version *v = qmp_server_version(s);
	struct json_object *q = json_object_new_object();

	json_object_object_add(q, "micro", json_object_new_int(v->micro));
	json_object_object_add(q, "minor", json_object_new_int(v->minor));
	json_object_object_add(q, "major", json_object_new_int(v->major));
	*ret = json_object_new_object();
	json_object_object_add(*ret, "qemu", q);
	json_object_object_add(*ret, "package", json_object_new_string(v->package));
	return 0;
}

static int cmd_query_name(struct qmp_server *s, void *ctx, struct json_object *args,
			  struct json_object **ret, struct qmp_error *e)
{
	const char *name = vmq(ctx)->ops->name(vmq(ctx)->vm);

	*ret = json_object_new_object();
	if (name)
		json_object_object_add(*ret, "name", json_object_new_string(name));
	return 0;
}

static int cmd_query_kvm(struct qmp_server *s, void *ctx, struct json_object *args,
			 struct json_object **ret, struct qmp_error *e)
{
	*ret = json_object_new_object();
	json_object_object_add(*ret, "enabled", json_object_new_boolean(true));
	json_object_object_add(*ret, "present", json_object_new_boolean(true));
	return 0;
}

/* One socket of N single-thread cores, as the guest's CPUID and MADT describe them. */
static int cmd_query_cpus_fast(struct qmp_server *s, void *ctx, struct json_object *args,
			       struct json_object **ret, struct qmp_error *e)
{
	struct qmp_vm_cpu cpu[MAX_CPUS];
	unsigned n = vmq(ctx)->ops->cpus(vmq(ctx)->vm, cpu, MAX_CPUS);
	char path[64];

	*ret = json_object_new_array();
	for (unsigned i = 0; i < n; i++) {
		struct json_object *c = json_object_new_object(), *p = json_object_new_object();
		json_object_object_add(c, "thread-id", json_object_new_int(cpu[i].thread_id));
		json_object_object_add(p, "core-id", json_object_new_int((int)i));
		json_object_object_add(p, "thread-id", json_object_new_int(0));
		json_object_object_add(p, "socket-id", json_object_new_int(0));
		json_object_object_add(c, "props", p);
		/* QEMU's path for CPU 0 (libvirt looks for it); ours go on by index */
		snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
		json_object_object_add(c, "qom-path", json_object_new_string(path));
		json_object_object_add(c, "cpu-index", json_object_new_int((int)i));
		json_object_object_add(c, "target", json_object_new_string("x86_64"));
		json_object_array_add(*ret, c);
	}
	return 0;
}

static struct json_object *jbool(bool b)
{
	return json_object_new_boolean(b);
}

/* QEMU's BlockInfo, with what ligero knows of it (no node names, no throttling). */
static struct json_object *disk_json(unsigned i, const struct vm_disk_info *d)
{
	struct json_object *o = json_object_new_object(), *in = json_object_new_object();
	struct json_object *cache = json_object_new_object(), *img = json_object_new_object();
	static const char *const zero[] = {"bps",     "bps_rd",	 "bps_wr",	   "iops",
					   "iops_rd", "iops_wr", "write_threshold"};
	char name[64];

	snprintf(name, sizeof(name), "virtio%u", i); /* QEMU's name for -drive if=virtio */
	json_object_object_add(o, "device", json_object_new_string(name));
	json_object_object_add(o, "locked", jbool(false));
	json_object_object_add(o, "removable", jbool(false));
	json_object_object_add(o, "type", json_object_new_string("unknown"));
	json_object_object_add(o, "io-status", json_object_new_string("ok"));
	json_object_object_add(in, "file", json_object_new_string(d->path));
	json_object_object_add(in, "ro", jbool(d->readonly));
	json_object_object_add(in, "drv", json_object_new_string(d->format));
	json_object_object_add(in, "encrypted", jbool(false));
	json_object_object_add(in, "detect_zeroes", json_object_new_string("off"));
	if (d->backing)
		json_object_object_add(in, "backing_file", json_object_new_string(d->backing));
	json_object_object_add(in, "backing_file_depth", json_object_new_int((int)d->depth));
	for (size_t k = 0; k < sizeof(zero) / sizeof(zero[0]); k++)
		json_object_object_add(in, zero[k], json_object_new_int(0));
	json_object_object_add(cache, "writeback", jbool(!(d->cache & BDEV_O_WRITETHROUGH)));
	json_object_object_add(cache, "direct", jbool(d->cache & BDEV_O_DIRECT));
	json_object_object_add(cache, "no-flush", jbool(d->cache & BDEV_O_UNSAFE));
	json_object_object_add(in, "cache", cache);
	json_object_object_add(img, "filename", json_object_new_string(d->path));
	json_object_object_add(img, "format", json_object_new_string(d->format));
	json_object_object_add(img, "virtual-size", json_object_new_int64((int64_t)d->size));
	if (d->backing)
		json_object_object_add(img, "backing-filename", json_object_new_string(d->backing));
	json_object_object_add(in, "image", img);
	json_object_object_add(o, "inserted", in);
	return o;
}

static int cmd_query_block(struct qmp_server *s, void *ctx, struct json_object *args,
			   struct json_object **ret, struct qmp_error *e)
{
	struct vm_disk_info d;

	*ret = json_object_new_array();
	for (unsigned i = 0; vmq(ctx)->ops->disk(vmq(ctx)->vm, i, &d) == 0; i++)
		json_object_array_add(*ret, disk_json(i, &d));
	return 0;
}

static int cmd_stop(struct qmp_server *s, void *ctx, struct json_object *args,
		    struct json_object **ret, struct qmp_error *e)
{
	struct qmp_vm *q = vmq(ctx);
	int r;

	if (!q->ops->running(q->vm))
		return 0; /* already paused: no event, as QEMU */
	if ((r = q->ops->pause(q->vm)) < 0)
		return failed(e, r);
	qmp_server_event(s, "STOP", NULL);
	return 0;
}

static int cmd_cont(struct qmp_server *s, void *ctx, struct json_object *args,
		    struct json_object **ret, struct qmp_error *e)
{
	struct qmp_vm *q = vmq(ctx);
	int r;

	if (q->ops->running(q->vm))
		return 0;
	if ((r = q->ops->resume(q->vm)) < 0)
		return failed(e, r);
	qmp_server_event(s, "RESUME", NULL);
	return 0;
}

static int cmd_system_powerdown(struct qmp_server *s, void *ctx, struct json_object *args,
				struct json_object **ret, struct qmp_error *e)
{
	qmp_server_event(s, "POWERDOWN", NULL);
	vmq(ctx)->ops->powerdown(vmq(ctx)->vm);
	return 0;
}

/* A reset ends the process, as QEMU's with -no-reboot: the host decides whether to start the
 * VM again. */
static int cmd_system_reset(struct qmp_server *s, void *ctx, struct json_object *args,
			    struct json_object **ret, struct qmp_error *e)
{
	qmp_vm_shutdown_event(s, vmq(ctx), QMP_SHUTDOWN_QMP_RESET);
	vmq(ctx)->ops->stop(vmq(ctx)->vm, QMP_SHUTDOWN_QMP_RESET);
	return 0;
}

static int cmd_quit(struct qmp_server *s, void *ctx, struct json_object *args,
		    struct json_object **ret, struct qmp_error *e)
{
	qmp_vm_shutdown_event(s, vmq(ctx), QMP_SHUTDOWN_QMP_QUIT);
	vmq(ctx)->ops->stop(vmq(ctx)->vm, QMP_SHUTDOWN_QMP_QUIT);
	return 0;
}

static int no_balloon(struct qmp_error *e)
{
	return qmp_error_set(e, "DeviceNotActive", "No balloon device has been activated");
}

/* value: the guest RAM to leave to the guest, in bytes (QEMU's meaning, not the balloon's
 * size). */
static int cmd_balloon(struct qmp_server *s, void *ctx, struct json_object *args,
		       struct json_object **ret, struct qmp_error *e)
{
	struct json_object *v;
	int64_t value;
	int r;

	json_object_object_get_ex(args, "value", &v);
	value = json_object_get_int64(v);
	if (value <= 0)
		return qmp_error_set(e, "GenericError", "Parameter 'target' expects a size");
	r = vmq(ctx)->ops->balloon_set(vmq(ctx)->vm, (uint64_t)value);
	if (r == -ENODEV)
		return no_balloon(e);
	return r < 0 ? failed(e, r) : 0;
}

static int cmd_query_balloon(struct qmp_server *s, void *ctx, struct json_object *args,
			     struct json_object **ret, struct qmp_error *e)
{
	uint64_t actual;
	int r = vmq(ctx)->ops->balloon_actual(vmq(ctx)->vm, &actual);

	if (r == -ENODEV)
		return no_balloon(e);
	if (r < 0)
		return failed(e, r);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "actual", json_object_new_int64((int64_t)actual));
	return 0;
}

static int cmd_query_memory_size_summary(struct qmp_server *s, void *ctx, struct json_object *args,
					 struct json_object **ret, struct qmp_error *e)
{
	uint64_t ram = vmq(ctx)->ops->ram_size(vmq(ctx)->vm);

	*ret = json_object_new_object();
	json_object_object_add(*ret, "base-memory", json_object_new_int64((int64_t)ram));
	json_object_object_add(*ret, "plugged-memory", json_object_new_int64(0));
	return 0;
}

static int cmd_query_commands(struct qmp_server *s, void *ctx, struct json_object *args,
			      struct json_object **ret, struct qmp_error *e)
{
	size_t n;
	const struct qmp_cmd *cmds = qmp_server_commands(s, &n);
	struct json_object *c = json_object_new_object();

	*ret = json_object_new_array();
	json_object_object_add(c, "name", json_object_new_string("qmp_capabilities"));
	json_object_array_add(*ret, c);
	for (size_t i = 0; i < n; i++) {
		c = json_object_new_object();
		json_object_object_add(c, "name", json_object_new_string(cmds[i].name));
		json_object_array_add(*ret, c);
	}
	return 0;
}

static int cmd_ligero_query_exit(struct qmp_server *s, void *ctx, struct json_object *args,
				 struct json_object **ret, struct qmp_error *e)
{
	*ret = vmq(ctx)->ops->exit_info(vmq(ctx)->vm);
	return 0;
}

static int cmd_ligero_query_stats(struct qmp_server *s, void *ctx, struct json_object *args,
				  struct json_object **ret, struct qmp_error *e)
{
	*ret = vmq(ctx)->ops->stats(vmq(ctx)->vm);
	return *ret ? 0 : failed(e, -EIO);
}

static const struct qmp_cmd commands[] = {
    {"query-status", cmd_query_status, {{0}}},
    {"query-version", cmd_query_version, {{0}}},
    {"query-name", cmd_query_name, {{0}}},
    {"query-kvm", cmd_query_kvm, {{0}}},
    {"query-cpus-fast", cmd_query_cpus_fast, {{0}}},
    {"query-block", cmd_query_block, {{0}}},
    {"query-balloon", cmd_query_balloon, {{0}}},
    {"query-memory-size-summary", cmd_query_memory_size_summary, {{0}}},
    {"query-commands", cmd_query_commands, {{0}}},
    {"stop", cmd_stop, {{0}}},
    {"cont", cmd_cont, {{0}}},
    {"system_powerdown", cmd_system_powerdown, {{0}}},
    {"system_reset", cmd_system_reset, {{0}}},
    {"quit", cmd_quit, {{0}}},
    {"balloon", cmd_balloon, {{"value", QMP_T_INT, false}}},
    {"ligero-query-exit", cmd_ligero_query_exit, {{0}}},
    {"ligero-query-stats", cmd_ligero_query_stats, {{0}}},
};

const struct qmp_cmd *qmp_vm_commands(size_t *n)
{
	*n = sizeof(commands) / sizeof(commands[0]);
	return commands;
}
