/*
 * Fuzz target: VM definition files (hand-edited JSON) through vmdef_parse. A definition that
 * parses must survive the round trip: written out with vmdef_to_text and read back, it parses
 * again to the same text. Failures must come back as errors with a message; crashes, sanitizer
 * reports, leaks and hangs are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/vmdef.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmdef d, again;
	char *text, *text2;

	if (vmdef_parse((const char *)data, size, "fuzz.json", &d) < 0) {
		if (!err_msg()[0])
			abort(); /* every failure says why */
		return 0;
	}
	text = vmdef_to_text(&d);
	if (!text || vmdef_parse(text, strlen(text), "again.json", &again) < 0)
		abort();
	text2 = vmdef_to_text(&again);
	if (!text2 || strcmp(text, text2))
		abort();
	free(text);
	free(text2);
	vmdef_free(&d);
	vmdef_free(&again);
	return 0;
}
