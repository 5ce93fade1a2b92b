/* The driver lock: who holds it, exclusive calls, and waiting for data moved without it. */
#include "block/qcow2/qcow2.h"

#include <assert.h>

/*
 * Data transfers outside the lock. readv and writev map a piece of the request under the lock,
 * then move its bytes between the caller's iovecs and the file without it, so requests of
 * several threads (the virtio-blk I/O threads) overlap. These rules keep that safe:
 *  - a transfer only touches clusters that stay where they are meanwhile: nothing frees or
 *    moves a cluster while one runs (qcow2_free_pending and every call that restructures the
 *    image first wait for io_inflight to reach 0, and io_quiesce holds new transfers back
 *    meanwhile);
 *  - a call that restructures the image (qcow2_lock_excl) also waits for whole write requests
 *    to end, since one may drop the lock while clusters it replaced wait on its free list
 *    (their refcounts still count the old references): check would see them as leaks;
 *  - new clusters are written before the L2 entries point at them, and the guest range they
 *    will serve is listed in allocs[] until then: a write that touches that range waits, so a
 *    cluster is never allocated twice;
 *  - a read of a range being allocated sees its old content (the entries are not set yet).
 */

__thread const struct qcow2 *qcow2_writing;

/* Its address names the calling thread in s->lock_owner. */
static __thread char thread_mark;

static void owner_set(struct qcow2 *s, const void *who)
{
	__atomic_store_n(&s->lock_owner, who, __ATOMIC_RELAXED);
}

bool qcow2_lock_held(const struct qcow2 *s)
{
	return __atomic_load_n(&s->lock_owner, __ATOMIC_RELAXED) == &thread_mark;
}

void qcow2_lock(struct qcow2 *s)
{
	pthread_mutex_lock(&s->lock);
	owner_set(s, &thread_mark);
}

void qcow2_lock_drop(struct qcow2 *s)
{
	assert(qcow2_lock_held(s));
	owner_set(s, NULL);
	pthread_mutex_unlock(&s->lock);
}

void qcow2_unlock(struct qcow2 *s)
{
	qcow2_writing = NULL;
	qcow2_lock_drop(s);
}

void qcow2_io_wait(struct qcow2 *s)
{
	owner_set(s, NULL);
	pthread_cond_wait(&s->io_cond, &s->lock);
	owner_set(s, &thread_mark);
}

void qcow2_drain(struct qcow2 *s)
{
	assert(qcow2_lock_held(s));
	s->io_quiesce++;
	while (s->io_inflight)
		qcow2_io_wait(s);
	if (--s->io_quiesce == 0)
		pthread_cond_broadcast(&s->io_cond);
}

void qcow2_lock_excl_keep_cbuf(struct qcow2 *s)
{
	qcow2_lock(s);
	s->excl_waiting++;
	while (s->writes_active)
		qcow2_io_wait(s);
	if (--s->excl_waiting == 0)
		pthread_cond_broadcast(&s->io_cond);
	qcow2_drain(s);
}

void qcow2_lock_excl(struct qcow2 *s)
{
	qcow2_lock_excl_keep_cbuf(s);
	/* A failed buffer write stays in cbuf_err (and its bytes are never written later): the
	 * next write or flush returns it. */
	(void)qcow2_cbuf_settle(s);
}
