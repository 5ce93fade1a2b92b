/*
 * DiskDescriptor.xml, the description of a ploop disk (QEMU docs/interop/prl-xml.rst; ploop's
 * lib/xml.c): its size, its image files and the snapshot tree that orders them. Parsed with
 * libxml2 from bytes, so that unit tests and the fuzzer run it without files.
 */
#ifndef LIGERO_BLOCK_PLOOP_XML_H
#define LIGERO_BLOCK_PLOOP_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOOP_NONE_GUID "{00000000-0000-0000-0000-000000000000}"
/* The top delta's GUID when the descriptor names none (ploop's TOPDELTA_UUID). */
#define PLOOP_TOP_GUID "{5fbaabe3-6958-40ff-92a7-860e329aab41}"
/* Descriptors larger than this are refused unread. */
#define PLOOP_XML_MAX (4u << 20)

struct ploop_image {
	char *guid;
	char *file; /* as the descriptor writes it */
	char *path; /* resolved against the descriptor's directory */
	bool plain; /* <Type>Plain</Type>: a raw file (else an expandable image) */
};

struct ploop_desc {
	uint64_t disk_sectors; /* <Disk_size> */
	uint32_t blocksize;    /* <Blocksize> in sectors, 0 when absent */
	char *top_guid;
	/* The snapshot chain that makes the disk: the top image first, down to the base. */
	struct ploop_image *chain;
	size_t nchain;
};

/*
 * Parse a descriptor's bytes; name is the descriptor's path for messages, dir the directory
 * that relative <File> names are relative to. Refuses (-EINVAL, one message naming name): XML
 * that is not well-formed or has a DTD, an unknown root, an encrypted disk, split storage, a
 * missing or malformed size or GUID, a <Type> other than Compressed and Plain, duplicate
 * GUIDs, a chain through unknown GUIDs, a loop, or one deeper than BDEV_MAX_CHAIN.
 */
int ploop_desc_parse(const char *buf, size_t len, const char *name, const char *dir,
		     struct ploop_desc *d);
void ploop_desc_free(struct ploop_desc *d);

#endif
