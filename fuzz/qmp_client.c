/*
 * Fuzz target: what a VM sends on its QMP socket, as ligero vm's client reads it. The input is
 * the whole stream from the VMM (greeting, answers, events), written into a socketpair whose
 * sending side is then shut, so the client never waits: it negotiates, runs two commands and
 * waits for an event and for the end. Every outcome must be a return value (with a message for
 * a failure); crashes, sanitizer reports, leaks and hangs are the findings.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/qmp_client.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_client *c;
	struct json_object *ret = NULL;
	int sv[2], big = 1 << 20;

	if (size > 128 * 1024 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	if (qmp_connect_fd(sv[0], "fuzz", 1000, &c) == 0) {
		if (qmp_execute(c, "query-status", NULL, 1000, &ret) == 0)
			json_object_put(ret);
		qmp_execute(c, "query-name", NULL, 1000, NULL);
		qmp_wait_event(c, "SHUTDOWN", 1000, NULL);
		qmp_wait_close(c, 1000);
		qmp_close(c);
	} else if (!err_msg()[0]) {
		abort();
	}
	close(sv[1]);
	return 0;
}
