/* Fuzz targets' input as a file: a memfd holding the bytes, named through /proc/self/fd. */
#ifndef LIGERO_FUZZ_MEMDISK_H
#define LIGERO_FUZZ_MEMDISK_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The memfd (close it when done) with path filled in, or -1. */
static inline int memdisk_open(const uint8_t *data, size_t size, char *path, size_t path_len)
{
	int fd = memfd_create("fuzz", 0);

	if (fd < 0)
		return -1;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, path_len, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
