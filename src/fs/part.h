/* Partition tables (MBR with extended/logical partitions, GPT), read through a bdev. */
#ifndef LIGERO_FS_PART_H
#define LIGERO_FS_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bdev;

enum part_scheme { PART_NONE, PART_MBR, PART_GPT };

struct part {
	int num;	  /* 1-based, numbered as Linux numbers it */
	uint64_t start;	  /* bytes from the start of the disk */
	uint64_t size;	  /* bytes */
	bool container;	  /* an MBR extended partition: holds logical partitions, no filesystem */
	uint8_t mbr_type; /* MBR system id */
	char type[40];	  /* GPT type GUID, or "0x83" style MBR id */
	char uuid[40];	  /* GPT unique partition GUID ("" for MBR) */
	char name[80];	  /* GPT partition name in UTF-8 ("" for MBR) */
};

struct part_table {
	enum part_scheme scheme;
	char disk_id[40]; /* GPT disk GUID or MBR disk signature */
	size_t n;
	struct part *parts;
};

/* Read the partition table of a disk. A disk with no table (a whole-disk filesystem, or nothing)
 * gives scheme PART_NONE and n = 0; a table that is present but broken is an error (-EINVAL). */
int part_read(struct bdev *bs, struct part_table *out);

/* Release what part_read allocated. */
void part_table_free(struct part_table *t);

/* The partition numbered num, or NULL. */
const struct part *part_find(const struct part_table *t, int num);

/* Name of a scheme: "none", "mbr", "gpt". */
const char *part_scheme_name(enum part_scheme s);

/* Format a 16-byte GPT/EFI GUID (mixed-endian) as text; buf holds at least 37 bytes. */
void part_guid_str(const uint8_t g[16], char *buf);

#endif
