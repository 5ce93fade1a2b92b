/*
 * The vhost-user protocol, back-end side (QEMU's docs/interop/vhost-user.rst): messages read
 * from the front-end's Unix socket with the file descriptors that ride along, checked for the
 * payload each request carries, replies written back; and the table of guest memory regions the
 * front-end shares (SET_MEM_TABLE), mapped here and turned into the virtio_mem the virtqueue code
 * checks every guest address against. No device knowledge: vhost_user_blk.c is the device.
 *
 * Everything the front-end sends is untrusted: sizes are checked against the request type before
 * a payload is looked at, region tables for overlap and overflow, descriptors it passes for the
 * kind of file they are and their size, and every descriptor received is closed unless a handler
 * took it.
 */
#ifndef LIGERO_SERVE_VHOST_USER_H
#define LIGERO_SERVE_VHOST_USER_H

#include "vmm/virtio/mem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header flags: the version in the low two bits, then reply and need-reply. */
#define VHOST_USER_VERSION	   1u
#define VHOST_USER_VERSION_MASK	   3u
#define VHOST_USER_FLAG_REPLY	   (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)

/* The virtio feature bit that says the back-end speaks protocol features. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

enum vhost_user_protocol_feature {
	VHOST_USER_PROTOCOL_F_MQ = 0,
	VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,
	VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
	VHOST_USER_PROTOCOL_F_CONFIG = 9,
	VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
	VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
};

enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_REQUEST_MAX = 41, /* names and sizes are known below this */
};

/* SET_VRING_KICK/CALL/ERR's u64: the ring index in bits 0-7, bit 8 set when no fd came. */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD	  (1u << 8)

/* SET_VRING_ADDR's flags: log used-ring writes (migration, which we do not offer). */
#define VHOST_VRING_F_LOG 1u

/* Regions in one SET_MEM_TABLE, and file descriptors in one message. */
#define VHOST_USER_MAX_REGIONS 8
#define VHOST_USER_MAX_FDS     8
/* The largest config space a front-end may ask for. */
#define VHOST_USER_MAX_CONFIG 256u
/* Payloads past this size belong to no request we know: the front-end is dropped. */
#define VHOST_USER_MAX_PAYLOAD 4096u

struct vhost_user_state {
	uint32_t index, num;
};

struct vhost_user_addr {
	uint32_t index, flags;
	uint64_t desc_user_addr, used_user_addr, avail_user_addr, log_guest_addr;
};

struct vhost_user_region {
	uint64_t guest_phys_addr, memory_size, userspace_addr, mmap_offset;
};

struct vhost_user_memory {
	uint32_t nregions, padding;
	struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
};

struct vhost_user_config {
	uint32_t offset, size, flags;
	uint8_t region[VHOST_USER_MAX_CONFIG];
};

/* The header on the wire: 12 bytes, the payload follows at once. */
#define VHOST_USER_HDR_SIZE 12u
struct vhost_user_hdr {
	uint32_t request, flags, size;
};

struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union {
		uint64_t u64;
		struct vhost_user_state state;
		struct vhost_user_addr addr;
		struct vhost_user_memory memory;
		struct vhost_user_config config;
		uint8_t raw[VHOST_USER_MAX_PAYLOAD];
	} payload;
	/* Not on the wire: the descriptors that came with it (-1 once a handler took one). */
	int fds[VHOST_USER_MAX_FDS];
	int nfds;
};

_Static_assert(sizeof(struct vhost_user_hdr) == 12, "vhost-user header");
_Static_assert(sizeof(struct vhost_user_addr) == 40, "vring address payload");
_Static_assert(sizeof(struct vhost_user_memory) == 8 + 32 * VHOST_USER_MAX_REGIONS, "memory table");
_Static_assert(sizeof(struct vhost_user_config) == 12 + VHOST_USER_MAX_CONFIG, "config payload");

/* The request's name for messages ("SET_MEM_TABLE"), or "unknown". */
const char *vhost_user_request_name(uint32_t request);

/*
 * Check what a message carries against its request: the payload size each request has (memory
 * tables and config spaces by their own counts), the descriptors it may bring. Returns 0, or
 * -EPROTO with a message naming the request and what is wrong. Requests we do not know pass
 * (the device refuses them).
 */
int vhost_user_msg_check(const struct vhost_user_msg *m);

/* Close the descriptors a message still holds. */
void vhost_user_msg_close_fds(struct vhost_user_msg *m);

/*
 * Reading messages from a non-blocking socket: the header, then exactly its payload, so the
 * descriptors of the next message stay in the socket. Feed it on every readable event.
 */
struct vhost_user_reader {
	struct vhost_user_msg msg;
	size_t have; /* bytes of header + payload read so far */
};

void vhost_user_reader_init(struct vhost_user_reader *r);
/* Read on: 1 when r->msg holds a whole message (the caller handles it, closes what fds it did
 * not take, then calls vhost_user_reader_next), 0 when the socket has nothing more now,
 * -ECONNRESET when the front-end closed it (between messages or in the middle of one), or
 * another negative errno with a message (a header that is no request, too many descriptors). */
int vhost_user_read(struct vhost_user_reader *r, int fd);
void vhost_user_reader_next(struct vhost_user_reader *r);

/* Send the reply to request req: header (version and reply flags) and size payload bytes. A
 * front-end that does not read its replies (the socket is full) is an error: -EPROTO. */
int vhost_user_reply(int fd, uint32_t req, const void *payload, uint32_t size);
int vhost_user_reply_u64(int fd, uint32_t req, uint64_t v);

/*
 * The front-end's memory table, mapped. Each region's file (a memfd, a hugetlbfs or shm file)
 * is mapped shared from offset 0 to mmap_offset + size, as the front-end mapped it; guest
 * addresses translate through mem (virtio_mem_range), user addresses (the rings' addresses)
 * through vhost_user_mem_uva_to_gpa.
 */
struct vhost_user_mem {
	struct virtio_mem mem;
	struct {
		void *map;
		size_t map_len;
		uint64_t uva;
	} r[VHOST_USER_MAX_REGIONS];
	unsigned n;
};

/*
 * Map the table in m (a SET_MEM_TABLE whose fds match its regions) into out, which must be
 * unmapped (zeroed or after vhost_user_mem_unmap). Refused with -EINVAL and a message: more
 * regions than descriptors or the limit, an empty region, sums that wrap, regions that overlap
 * in guest or user space, a file shorter than the region. Nothing stays mapped on failure.
 * The descriptors are left to the caller.
 */
int vhost_user_mem_map(struct vhost_user_mem *out, const struct vhost_user_msg *m);
void vhost_user_mem_unmap(struct vhost_user_mem *mem);

/* The guest-physical address of front-end user address uva when [uva, uva + len) lies in one
 * region; false otherwise. */
bool vhost_user_mem_uva_to_gpa(const struct vhost_user_mem *mem, uint64_t uva, uint64_t len,
			       uint64_t *gpa);

#endif
