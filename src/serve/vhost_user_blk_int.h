/* The vhost-user-blk device's insides, shared by vhost_user_blk.c (messages, connection) and
 * vhost_user_rings.c (rings and I/O threads). */
#ifndef LIGERO_SERVE_VHOST_USER_BLK_INT_H
#define LIGERO_SERVE_VHOST_USER_BLK_INT_H

#include "serve/vhost_user.h"
#include "serve/vhost_user_blk.h"
#include "vmm/virtio/blk_exec.h"
#include "vmm/virtio/queue.h"

#include <linux/virtio_blk.h>
#include <pthread.h>

/*
 * One ring. The loop thread owns the set-up fields; the fields marked "lock" are shared with
 * the I/O threads under the device's lock. A ring runs when it has a size, addresses and a kick
 * descriptor (it starts at SET_VRING_KICK, or when the last of them arrives) and stops at
 * GET_VRING_BASE; broken (a malformed chain or ring) it stays stopped until set up again.
 */
struct vub_ring {
	uint16_t num;  /* SET_VRING_NUM; 0 = not yet */
	uint16_t base; /* SET_VRING_BASE: the first avail entry to take */
	bool addr_set;
	struct vhost_user_addr addr; /* user addresses, translated when the ring starts */

	int kick_fd;	 /* lock: watched by the I/O threads (wepfd) */
	struct virtq vq; /* lock */
	int call_fd;	 /* lock: -1 = the front-end polls */
	int err_fd;	 /* lock: -1 = none */
	bool started;	 /* lock: vq is valid */
	bool enabled;	 /* lock: SET_VRING_ENABLE (on until the front-end says off) */
	bool broken;	 /* lock */
	bool paused;	 /* lock: the loop is changing the ring: I/O threads keep off */
	bool pending;	 /* lock: a kick came, chains may be waiting */
	unsigned busy;	 /* lock: chains at I/O threads */
	bool owed;	 /* lock: completions published whose interrupt is held back */
	/* lock: interrupt coalescing's own view of the ring (vhost_user_rings.c) */
	unsigned held;	      /* completions published since the last interrupt (or none) */
	bool coalescing;      /* every completion waits for its window's end */
	bool missed;	      /* the last window held one completion only */
	unsigned probe_gap;   /* completions between two tries while not coalescing */
	unsigned probe_left;  /* until the next try */
	unsigned windows;     /* windows since this stretch of coalescing began */
	bool paid;	      /* a window of this stretch held two completions or more */
	uint64_t since_ns;    /* when the current stretch (coalescing or not) began */
	uint64_t last_ns;     /* the last completion */
	unsigned done;	      /* completions in it */
	uint64_t quiet_ns;    /* the last stretch without coalescing: time per completion */
};

struct vub_worker {
	struct vhost_user_blk *d;
	pthread_t tid;
	struct virtq_elem e;
	struct virtio_blk_exec x;
	struct iovec iov[VIRTQ_MAX_SIZE];
	struct iovec part[VIRTQ_MAX_SIZE];
};

struct vhost_user_blk {
	struct vhost_user_blk_opts o;
	bool read_only;
	struct virtio_blk_config cfg;
	uint64_t offered;  /* virtio features (GET_FEATURES) */
	uint64_t features; /* SET_FEATURES */
	uint64_t protocol; /* SET_PROTOCOL_FEATURES */
	int fd;		   /* the front-end's socket, -1 = none */
	int epfd;	   /* the loop's: the socket */
	int wepfd;	   /* the I/O threads': kick descriptors, work_fd, stop_fd */
	int work_fd;	   /* eventfd: chains wait for one more I/O thread */
	int stop_fd;	   /* eventfd: the I/O threads end */
	int timer_fd;	   /* timerfd: held-back interrupts are due */
	long hold_ns;	   /* the longest an interrupt may be held back; 0: never */
	long window_ns;	   /* lock: how long a held interrupt waits now (up to hold_ns) */
	bool timer_armed;  /* lock */
	unsigned owed;	   /* lock: rings with an interrupt held back */
	struct vhost_user_reader rd;
	struct vhost_user_mem mem; /* replaced only while every ring is paused and idle */

	pthread_mutex_t lock;
	pthread_cond_t idle; /* a paused ring's last chain is done */
	struct vub_ring ring[VHOST_USER_BLK_MAX_QUEUES];
	unsigned next_ring; /* lock: where the I/O threads look first (fairness) */
	struct vub_worker *w;
	int nworkers;
};

__attribute__((format(printf, 2, 3))) void vub_log(struct vhost_user_blk *d, const char *fmt, ...);

/* vhost_user_rings.c. "lock" = d->lock held. */
/* The I/O threads' epoll set and eventfds, then the threads. */
int vub_workers_start(struct vhost_user_blk *d, int n);
void vub_workers_stop(struct vhost_user_blk *d);
/* lock: keep the I/O threads off the rings in mask (bit i = ring i) and wait until none holds
 * a chain of them; then let them back. */
void vub_rings_pause(struct vhost_user_blk *d, unsigned mask);
void vub_rings_resume(struct vhost_user_blk *d, unsigned mask);
/* lock, ring paused: start ring i at avail entry last_avail if it has everything it needs
 * (size, addresses, kick, memory); a ring whose addresses are not in guest memory is broken. */
void vub_ring_start(struct vhost_user_blk *d, unsigned i, uint16_t last_avail);
/* lock, ring paused: stop ring i; returns the next avail entry it would have taken. */
uint16_t vub_ring_stop(struct vhost_user_blk *d, unsigned i);
/* lock: the ring is unusable: stop taking chains, tell the front-end (error eventfd), log. */
void vub_ring_fail(struct vhost_user_blk *d, unsigned i, const char *why);
/* lock: ring i's kick descriptor is fd now (-1: none); the old one is closed. 0 or -errno. */
int vub_ring_set_kick(struct vhost_user_blk *d, unsigned i, int fd);
/* Chains may wait on some ring: wake an idle I/O thread. */
void vub_wake(struct vhost_user_blk *d);

#endif
