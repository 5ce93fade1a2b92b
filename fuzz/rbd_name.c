/*
 * Fuzz target: RBD image names. A qcow2 image's backing file name is untrusted and may be an
 * rbd: or json: name, which rbd_name.c parses before anything connects to a cluster. Every
 * input must parse or fail with a message; crashes, sanitizer reports and leaks are findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block/rbd.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *name = malloc(size + 1);
	struct rbd_target t;

	if (!name)
		return 0;
	memcpy(name, data, size);
	name[size] = '\0';
	(void)bdev_rbd_is_name(name);
	if (rbd_target_parse(name, &t) == 0) {
		if (!t.pool || !t.image || !t.ns || !t.spec)
			abort();
		rbd_target_free(&t);
	} else if (!*err_msg()) {
		abort(); /* a refusal always says why */
	}
	err_clear();
	free(name);
	return 0;
}
