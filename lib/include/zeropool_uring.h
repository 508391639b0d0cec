/*
 * zeropool_uring.h - io_uring provided-buffer rings fed from a zeropool pool.
 *
 * An optional module (library zeropool_uring, built when liburing is found:
 * CMake option ZP_URING; docs/uring.md has the design).  It is a client of
 * the pool like any application: it uses only zeropool.h and liburing.
 *
 * A zp_uring_bufring registers a buffer ring (IORING_REGISTER_PBUF_RING) for
 * one buffer group of one io_uring.  Its `entries` slots hold buffers of one
 * size class of a pool, each posted to the kernel with `buf_size` bytes.  A
 * recv submitted with IOSQE_BUFFER_SELECT on that group (for instance with
 * zp_uring_prep_recv_multishot()) gets a buffer picked by the kernel when
 * data arrives; zp_uring_bufring_claim() turns the completion's buffer id
 * into the zp_buf the kernel filled, which the application then holds like
 * any buffer it got from zp_get().  Memory follows the data: one bounded
 * ring per thread serves every connection of that thread, and a buffer is
 * taken from the ring only while received data waits in it, not per
 * connection.
 *
 * Refill policy.  A claim empties the buffer's slot.  Empty slots are filled
 * from the pool (zp_get of buf_size) in batches: when a claim leaves
 * ZP_URING_REFILL_BATCH(entries) slots or more empty (an eighth of the ring,
 * at least 1), the claim fills every empty slot and publishes them with one
 * tail update.  So the kernel always sees at least entries - entries/8
 * buffers, less only while the pool cannot give any (ENOMEM), or when the
 * application set a lower limit (zp_uring_bufring_set_limit); a later
 * claim or zp_uring_bufring_replenish() fills the rest then.
 *
 * Giving a buffer back: zp_put(pool, b), or zp_uring_bufring_recycle().  A
 * claimed buffer is an ordinary zp_buf of the ring's pool: zp_put() takes it
 * on any thread, and the ring gets a buffer from the pool again when it
 * runs low.  zp_uring_bufring_recycle(br, b) does that zp_put and then
 * posts a buffer from the pool into an empty slot at once (usually b
 * itself, cache-hot: the calling thread's cache is LIFO), so the ring does
 * not dip until the next batch.  Why no direct path into the ring that
 * skips the pool: the public API cannot tell whether a buffer belongs to a
 * pool without putting it, so a direct path could accept a buffer of
 * another pool, or the same buffer twice, and hand it to the kernel; going
 * through zp_put() gets the pool's checks (EINVAL, EALREADY) for free, keeps
 * its statistics true (outstanding), and costs the inline put+get pair of
 * the thread cache (no call into the library on a hit).
 *
 * ENOBUFS.  When the kernel finds the ring empty, the recv completes with
 * cqe->res == -ENOBUFS and, for a multishot recv, IORING_CQE_F_MORE clear:
 * the request has ended.  Data already received is in the buffers of the
 * earlier completions; data not yet received stays in the socket.  The
 * pattern (the same for any multishot CQE without IORING_CQE_F_MORE):
 *
 *     for each cqe of the request:
 *         if (cqe->flags & IORING_CQE_F_BUFFER)
 *             consume(zp_uring_bufring_claim(br, cqe));   // then zp_put
 *         if (!(cqe->flags & IORING_CQE_F_MORE)) {        // it ended
 *             if (cqe->res == -ENOBUFS || cqe->res > 0) {
 *                 zp_uring_bufring_replenish(br);         // refill, then
 *                 zp_uring_prep_recv_multishot(br, io_uring_get_sqe(ring), fd);
 *             }                                           // res 0: EOF
 *         }
 *
 * If replenish leaves the ring empty (held == 0: ENOMEM, the pool has
 * nothing to give, or the limit allows nothing), do not re-arm at once: the
 * recv would end with -ENOBUFS again, a loop that burns a CPU.  Put
 * buffers back first, or re-arm later; the socket keeps its data meanwhile.
 *
 * Thread safety: a bufring belongs to the thread that owns its io_uring
 * (liburing's struct io_uring is single-threaded); every zp_uring_* call on
 * it must come from that thread, or be serialised by the caller.  Claimed
 * buffers are ordinary zp_bufs: any thread may zp_put() them.
 *
 * Errors: functions that can fail return NULL or -1 and set errno; each
 * function lists its errno values.
 */
#ifndef ZEROPOOL_URING_H
#define ZEROPOOL_URING_H

#include <liburing.h>

#include "zeropool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most entries a ring may have: buffer ids are 16 bits, and the
 * kernel's limit is 32768. */
#define ZP_URING_MAX_ENTRIES 32768u

/* Empty slots that make a claim refill the ring: an eighth of it, >= 1. */
#define ZP_URING_REFILL_BATCH(entries) ((entries) / 8 > 0 ? (entries) / 8 : 1u)

typedef struct zp_uring_bufring zp_uring_bufring;

/* Create a buffer ring of `entries` slots for buffer group `bgid` of `ring`,
 * each slot a buffer of `pool`'s class for `buf_size` bytes, register it
 * with the kernel and fill every slot from the pool.
 *   entries   a power of two, 1..ZP_URING_MAX_ENTRIES
 *   buf_size  1..the pool's max_size (a pooled class, not oversize), and at
 *             most UINT32_MAX; the kernel writes at most buf_size bytes
 *             into each buffer
 *   flags     0 (reserved)
 * The ring's memory is entries * 16 bytes (rounded up to a page), mapped by
 * the module; the buffers come from the pool and count in its statistics
 * as held (outstanding) while the ring has them.
 * Returns the ring, or NULL with errno:
 *   EINVAL  NULL ring or pool, entries not a power of two or too large,
 *           buf_size 0 or above max_size or UINT32_MAX, flags not 0, or the
 *           kernel refused the registration as invalid (a kernel before
 *           5.19 has no buffer rings)
 *   EEXIST  bgid is already registered on this io_uring
 *   ENOMEM  no memory for the ring, or the pool could not give one buffer
 *   other   what io_uring_register_buf_ring() returned (negated)
 * Thread safety: the thread that owns `ring`. */
ZP_EXPORT zp_uring_bufring *zp_uring_bufring_create(struct io_uring *ring, zp_pool *pool,
						    unsigned short bgid, unsigned entries,
						    size_t buf_size, unsigned flags);

/* Take the buffer that the completion `cqe` names (cqe->flags >>
 * IORING_CQE_BUFFER_SHIFT, with IORING_CQE_F_BUFFER set) out of the ring:
 * it is the caller's now, a zp_buf of the ring's pool with len = cqe->res
 * (the bytes received, 0 at end of file) and cap its class size, to be
 * given back with zp_put() or zp_uring_bufring_recycle().  Its slot is
 * empty until the next refill (see "Refill policy" above; this call may
 * run it).  Claim each CQE once, before io_uring_cqe_seen() or after (the
 * CQE is only read).
 * Returns the buffer, or NULL with errno:
 *   EINVAL  NULL argument, a buffer id beyond the ring, or one whose slot
 *           holds no buffer (claimed already, or a CQE of another group)
 *   ENOENT  the CQE carries no buffer (IORING_CQE_F_BUFFER clear: an
 *           error such as -ENOBUFS, or a request without buffer select)
 * A failed claim changes nothing.  A refill that the pool cannot serve
 * does not fail the claim.
 * Thread safety: the thread that owns the ring. */
ZP_EXPORT zp_buf *zp_uring_bufring_claim(zp_uring_bufring *br, const struct io_uring_cqe *cqe);

/* Give back a buffer and refill the ring at once: zp_put(pool, b), then, if
 * the ring has an empty slot (and its limit allows one more), post a
 * buffer from the pool into it (usually b itself: the calling thread's
 * cache is LIFO).  See "Giving a buffer
 * back" above for why it is not a path that skips the pool.  b must be a
 * buffer of the ring's pool and of its class (cap equal to that of the
 * ring's buffers); any such buffer will do, claimed from this ring or got
 * with zp_get().
 * Returns 0, or -1 with errno (b untouched, the ring unchanged):
 *   EINVAL    NULL argument, a buffer of another class, or one that
 *             zp_put() refuses as not held from the ring's pool
 *   EALREADY  b is already back in the pool
 * A refill that the pool cannot serve does not fail the call (b is back in
 * the pool either way).
 * Thread safety: the thread that owns the ring. */
ZP_EXPORT int zp_uring_bufring_recycle(zp_uring_bufring *br, zp_buf *b);

/* Fill every empty slot from the pool (up to the limit, see
 * zp_uring_bufring_set_limit) and publish them to the kernel: call it after
 * an ENOBUFS completion, before re-arming.  It stops at the first buffer
 * the pool refuses, keeping those it got.
 * Returns how many slots it filled (0 when the ring was full, or already
 * holds as many buffers as its limit allows), or -1 with errno:
 *   EINVAL  NULL ring
 *   ENOMEM  the ring has empty slots that its limit allows to fill and the
 *           pool could give none of them
 * Either way, zp_uring_bufring_held() == 0 afterwards means the kernel has
 * no buffer to take: a recv armed now ends at once with -ENOBUFS, so wait
 * for buffers to come back (or retry later) before re-arming.
 * Thread safety: the thread that owns the ring. */
ZP_EXPORT int zp_uring_bufring_replenish(zp_uring_bufring *br);

/* Set how many slots the ring keeps filled: refills (by a claim, a recycle
 * or a replenish) stop once `limit` slots hold a buffer.  The ring is
 * created with limit == entries.  Lowering the limit takes nothing back
 * from the kernel: slots filled above it stay until their buffers are
 * received into and claimed, and are not refilled.  The pool has no bound
 * on the buffers it hands out (zp_get fails only when the system refuses
 * memory), so an application that budgets what is received and not yet
 * handled (the ring plus the buffers it claimed and holds) lowers the limit
 * as its held buffers grow and raises it as it puts them back.
 * Returns 0, or -1 with errno EINVAL (NULL br, limit > entries).
 * Thread safety: the thread that owns the ring. */
ZP_EXPORT int zp_uring_bufring_set_limit(zp_uring_bufring *br, unsigned limit);

/* Slots that hold a buffer: posted to the kernel, or taken by the kernel
 * for a completion not claimed yet.  entries - this is the empty slots.
 * 0 for NULL.  Thread safety: the thread that owns the ring. */
ZP_EXPORT unsigned zp_uring_bufring_held(const zp_uring_bufring *br);

/* The ring's buffer group id, for code that builds its own SQEs
 * (sqe->flags |= IOSQE_BUFFER_SELECT; sqe->buf_group = the id).  0 for
 * NULL.  Thread safety: any thread (constant). */
ZP_EXPORT unsigned short zp_uring_bufring_bgid(const zp_uring_bufring *br);

/* Prepare `sqe` as a multishot recv on `fd` that selects its buffers from
 * the ring (io_uring_prep_recv_multishot with IOSQE_BUFFER_SELECT and the
 * ring's group; kernel 6.0 or later).  Each completion with
 * IORING_CQE_F_MORE set means more will come; see "ENOBUFS" above for the
 * last one.  The caller submits the SQE and may set sqe->user_data.
 * Returns 0, or -1 with errno EINVAL (NULL br or sqe, fd < 0).
 * Thread safety: the thread that owns the ring. */
ZP_EXPORT int zp_uring_prep_recv_multishot(zp_uring_bufring *br, struct io_uring_sqe *sqe, int fd);

/* Unregister the ring from the kernel, unmap it and zp_put every buffer its
 * slots hold, including those the kernel filled for completions that were
 * not claimed (claim nothing of this ring afterwards: those CQEs name a
 * ring that is gone, and their data with it).  Cancel or reap the requests
 * that select from the group first; after this call the kernel has no
 * buffer of the group (a request that selects one fails with ENOBUFS).
 * Buffers already claimed are the application's ordinary zp_bufs: zp_put()
 * them before or after, as it likes.  The pool and the io_uring must be
 * alive: call this before io_uring_queue_exit() and zp_pool_destroy().
 * NULL is a no-op.  Thread safety: the thread that owns the ring. */
ZP_EXPORT void zp_uring_bufring_destroy(zp_uring_bufring *br);

#ifdef __cplusplus
}
#endif

#endif /* ZEROPOOL_URING_H */
