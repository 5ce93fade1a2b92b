/*
 * qmpcmd: one QMP command from a shell script, for tests and benchmarks that run where there is
 * no python (the emulated host has busybox only), through ligero's own QMP client.
 *
 *   qmpcmd [-t SECONDS] [-w] [-e EVENT] SOCKET COMMAND ['{"arguments": ...}']
 *
 * Prints the command's "return" value as JSON. -w then waits until the peer closes the socket
 * (the VM exited), -e EVENT waits for that event (and prints it). Exit status 0, 1 on a QMP
 * error or timeout (the message on stderr), 2 on bad usage.
 */
#include "host/qmp_client.h"
#include "util/error.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct qmp_client *c;
	struct json_object *args = NULL, *ret = NULL, *ev = NULL;
	const char *event = NULL;
	int timeout_ms = 30000, c2, rc;
	int wait_close = 0;

	while ((c2 = getopt(argc, argv, "t:we:")) != -1) {
		switch (c2) {
		case 't':
			timeout_ms = atoi(optarg) * 1000;
			break;
		case 'w':
			wait_close = 1;
			break;
		case 'e':
			event = optarg;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 2 || argc - optind > 3) {
		fprintf(stderr,
			"usage: qmpcmd [-t SECONDS] [-w] [-e EVENT] SOCKET COMMAND [ARGS]\n");
		return 2;
	}
	if (argc - optind == 3 && !(args = json_tokener_parse(argv[optind + 2]))) {
		fprintf(stderr, "qmpcmd: the arguments are not JSON\n");
		return 2;
	}
	if ((rc = qmp_connect(argv[optind], timeout_ms, &c)) < 0) {
		fprintf(stderr, "qmpcmd: %s\n", err_msg_or(rc));
		return 1;
	}
	rc = qmp_execute(c, argv[optind + 1], args, timeout_ms, &ret);
	if (rc == -EPIPE && wait_close) { /* gone before it answered (quit): what -w waits for */
		qmp_close(c);
		return 0;
	}
	if (rc == 0) {
		printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN));
		json_object_put(ret);
	}
	if (rc == 0 && event && (rc = qmp_wait_event(c, event, timeout_ms, &ev)) == 0) {
		printf("%s\n", json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
		json_object_put(ev);
	}
	if (rc == 0 && wait_close)
		rc = qmp_wait_close(c, timeout_ms);
	if (rc < 0)
		fprintf(stderr, "qmpcmd: %s\n", err_msg_or(rc));
	qmp_close(c);
	return rc < 0 ? 1 : 0;
}
