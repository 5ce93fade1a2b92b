/*
 * A VM definition: what `ligero vm create` records and `ligero vm start` runs, and its JSON form
 * (one pretty-printed file per VM in the state directory, which people read and edit by hand).
 */
#ifndef LIGERO_HOST_VMDEF_H
#define LIGERO_HOST_VMDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMDEF_NAME_MAX	 64
#define VMDEF_MAC_LEN	 17 /* "52:54:00:12:34:56" */
#define VMDEF_MIN_MEMORY (32ull << 20)
#define VMDEF_MAX_CPUS	 254

struct json_object;

struct vmdef_disk {
	char *path;   /* absolute */
	char *format; /* "raw" or "qcow2", recorded at create so no boot probes a raw disk */
	bool readonly;
	char *cache;  /* QEMU's cache mode, or NULL for the VMM's default (writeback) */
	char *serial; /* up to 20 bytes, or NULL */
};

struct vmdef_net {
	char *bridge; /* a bridge the VM's tap joins, or NULL */
	char *tap;    /* an existing (or named) tap, or NULL */
	char mac[VMDEF_MAC_LEN + 1];
};

struct vmdef {
	char name[VMDEF_NAME_MAX + 1];
	char uuid[37];
	uint64_t memory; /* bytes */
	unsigned cpus;
	struct vmdef_disk *disks;
	size_t ndisks;
	char *kernel; /* NULL (with initrd and cmdline NULL): boot the first disk's own kernel */
	char *initrd;
	char *cmdline;
	struct vmdef_net *nets;
	size_t nnets;
	bool balloon;
	bool rng;
	bool autostart;
	char created[32]; /* ISO 8601, UTC */
};

/* Free what the definition owns (not d itself) and zero it. */
void vmdef_free(struct vmdef *d);

/* 0 when name is a VM name (letters, digits, '-', '_', '.'; 1 to 64 bytes; not "." or ".."
 * and not starting with '.' or '-'), else -EINVAL with a message saying why. */
int vmdef_name_check(const char *name);

/* "52:54:00:xx:xx:xx" with three random bytes (getrandom). */
void vmdef_random_mac(char mac[VMDEF_MAC_LEN + 1]);
/* 0 when s is a unicast MAC written as six pairs of hex digits (stored lower-case in out). */
int vmdef_mac_parse(const char *s, char out[VMDEF_MAC_LEN + 1]);
/* A random (version 4) UUID, lower-case. */
void vmdef_random_uuid(char uuid[37]);
/* created = now. */
void vmdef_stamp(struct vmdef *d);

/* Values a definition may hold (memory, cpus, disks, nets): 0, or -EINVAL naming the field. */
int vmdef_validate(const struct vmdef *d);

/* Parse the JSON text of a definition. file names the source in messages: invalid JSON is
 * "FILE:LINE: invalid JSON (...)", a wrong field "FILE: 'cpus' must be ...". Unknown keys are
 * refused (a misspelt key would otherwise be ignored). 0 or -EINVAL; out is untouched on
 * failure. */
int vmdef_parse(const char *text, size_t len, const char *file, struct vmdef *out);

/* The definition as a JSON object (the caller puts it); NULL only when memory ran out. */
struct json_object *vmdef_to_json(const struct vmdef *d);
/* Pretty-printed JSON text ending in a newline, malloc'd; NULL when memory ran out. */
char *vmdef_to_text(const struct vmdef *d);

/* Deep copies of a disk and a net into a definition (the strings are duplicated). */
int vmdef_add_disk(struct vmdef *d, const struct vmdef_disk *disk);
int vmdef_add_net(struct vmdef *d, const struct vmdef_net *net);

/* A size the way definitions write it: "900M", "2G", "1536K", else bytes ("4096"). */
char *vmdef_size_str(uint64_t v, char *buf, size_t len);

#endif
