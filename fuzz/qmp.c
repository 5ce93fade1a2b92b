/*
 * libFuzzer target: bytes from a QMP client, through the splitter (qmp_wire.c), json-c, the
 * request checks and every command of the VM's table, against a fake VM. The first byte says
 * whether the client negotiates capabilities first (so that commands run) and how the input is
 * cut into writes; the answers are read and dropped. The server must answer or wait, never
 * crash, and its memory must stay bounded (ASan/LSan watch).
 */
#include "vmm/loop.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmds.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool running = true;

static bool f_running(void *vm)
{
	return running;
}

static int f_pause(void *vm)
{
	running = false;
	return 0;
}

static int f_resume(void *vm)
{
	running = true;
	return 0;
}

static void f_powerdown(void *vm)
{
}

static void f_stop(void *vm, enum qmp_shutdown why)
{
}

static const char *f_name(void *vm)
{
	return "fuzz";
}

static unsigned f_cpus(void *vm, struct qmp_vm_cpu *out, unsigned max)
{
	out[0].thread_id = 1;
	return 1;
}

static uint64_t f_ram(void *vm)
{
	return 256 << 20;
}

static int f_balloon_set(void *vm, uint64_t target)
{
	return 0;
}

static int f_balloon_actual(void *vm, uint64_t *actual)
{
	*actual = 256 << 20;
	return 0;
}

static int f_disk(void *vm, unsigned i, struct vm_disk_info *out)
{
	if (i)
		return -ENOENT;
	*out = (struct vm_disk_info){.path = "d.qcow2", .format = "qcow2", .size = 1 << 20};
	return 0;
}

static struct json_object *f_obj(void *vm)
{
	return json_object_new_object();
}

static const struct qmp_vm_ops ops = {
    f_running, f_pause,	      f_resume, f_powerdown, f_stop, f_name, f_cpus,
    f_ram,     f_balloon_set, f_balloon_actual,	     f_disk, f_obj,  f_obj,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct loop *loop;
	static struct qmp_server *srv;
	static struct qmp_vm q = {.ops = &ops};
	static const char caps[] = "{\"execute\": \"qmp_capabilities\"}";
	char sink[65536];
	int sv[2];

	if (!loop) {
		size_t n;
		const struct qmp_cmd *cmds = qmp_vm_commands(&n);
		struct qmp_version v = qmp_vm_version();
		if (loop_new(&loop) < 0 || qmp_server_new(loop, &v, cmds, n, &q, &srv) < 0)
			abort();
	}
	if (size < 1 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (qmp_server_add_client(srv, sv[1]) < 0) {
		close(sv[0]);
		return 0;
	}
	uint8_t mode = data[0];
	size_t chunk = 1 + (mode >> 1) * 37;
	data++;
	size--;
	if (mode & 1)
		(void)!write(sv[0], caps, sizeof(caps) - 1);
	q.shutdown_sent = false;
	while (size) {
		size_t k = size < chunk ? size : chunk;
		ssize_t w = write(sv[0], data, k);
		if (w > 0) {
			data += w;
			size -= (size_t)w;
		}
		loop_run_once(loop, 0);
		while (read(sv[0], sink, sizeof(sink)) > 0)
			;
		if (w < 0 && errno != EAGAIN)
			break; /* dropped (a flood) */
	}
	loop_run_once(loop, 0);
	close(sv[0]);
	while (qmp_server_clients(srv) && loop_run_once(loop, 0) > 0)
		;
	return 0;
}
