/*
 * zp_tcache.h - the thread-cache layer: each thread's table of caches, one
 * per pool it uses.  Above the store layer (zp_store.h), below the entry
 * points.  By concern:
 *
 *   zp_tcache.c           tables, pool slots, attach, retire at thread exit,
 *                         detach at pool destroy
 *   zp_tcache_refill.c    the miss path: refill from the store, absorb a
 *                         put, drain the coldest batch
 *   zp_tcache_capacity.c  fixed or adaptive capacity: grow, borrow, steal,
 *                         and give it back after decay_ms without use
 *   zp_tcache_reclaim.c   trim of the caller's cache, draining other
 *                         threads' caches (zp_trim, idle-cache decay)
 *
 * Each thread has one table of cache pointers indexed by the pool's slot
 * (pools hold distinct slots while alive), reached through one
 * initial-exec TLS pointer: the hit path is a TLS load, an indexed load and
 * the inline zp_cache_get/zp_cache_put of zeropool.h.
 *
 * _zp_tcache_lock guards what links caches, threads and pools: the slot
 * table, every pool's cache list and count, other threads' table entries,
 * and the thread-exit key.  Cache creation, thread exit, pool destroy and
 * stats take it.  The owning thread reads its own table without the lock:
 * an entry is written by another thread only by zp_pool_destroy, which by
 * contract runs when no thread uses that pool, and a slot reused by a later
 * pool is ordered after the destroy by the lock and by the caller's own
 * hand-off of the new pool pointer.
 */
#ifndef ZP_TCACHE_H
#define ZP_TCACHE_H

#include <pthread.h>
#include <stddef.h>

#include "zp_decay.h"
#include "zp_os.h"
#include "zp_poison.h"
#include "zp_store.h"

extern pthread_mutex_t _zp_tcache_lock;

/* struct _zp_thread (a thread's table of caches) and _zp_tcache_self (the
 * calling thread's, a table of NULLs until it attaches its first cache) are
 * in zeropool.h: the inline zp_get/zp_put read them. */

/* A thread's cache for one pool: this private header, then the public
 * zp_cache with its classes, then counters and slots, in one block. */
struct _zp_tcache {
	LIST_ENTRY(_zp_tcache) link; /* in pool->caches.list */
	struct _zp_thread *thread;
	zp_pool *pool;
	struct _zp_class_counters *ctr; /* [classes] */
	zp_buf **inline_slots;          /* [classes][init], in this block */
	uint32_t init;                  /* slots per class in this block */
	size_t cap_bytes;               /* sum of limit x class size */
	size_t borrowed;                /* capacity beyond cache_bytes (_zp_store_borrow) */
	/* Decay (_zp_tcache_decay): the pool's decay_steps at the last look;
	 * each class's gets + puts then follow the counters in this block
	 * (_zp_tcache_decay_ops). */
	uint64_t decay_step;
	/* The hand-off with threads that drain this cache (zp_tcache.c,
	 * "Draining another thread's cache").  in_slow: 1 while the owner
	 * is in a slow path (its own accesses).  closed: a drain closed the
	 * inline paths and may have taken buffers from the bottom of classes
	 * (below base[]); written under _zp_tcache_lock.  The rest belong to
	 * drainers, under _zp_tcache_lock: trim_pending (a zp_trim that could
	 * not take everything asks the owner to trim), and the activity seen
	 * at the last look of the decay of idle caches. */
	_Atomic uint32_t in_slow;
	_Atomic uint32_t closed;
	uint32_t idle_step; /* decay steps, modulo 2^32 */
	bool trim_pending;
	bool picked; /* chosen by the drain under way */
	uint64_t idle_ops;
	/* Must be last (a flexible array), and at an offset that puts the
	 * 32-byte class records of cls[] on 32-byte boundaries of this
	 * line-aligned block, so that none straddles two cache lines (a field
	 * added above moved them: zp_tcache.c asserts it). */
	zp_cache pub;
};

/* The hit ledger.  The inline get counts nothing: a hit lowers `count`,
 * and the class's hits so far are derived,
 *
 *   hits = puts + in - out - count,
 *
 * from what the slow paths moved into the slots other than by a put (`in`:
 * refills, less the buffer each refill hands out, which is a store hit)
 * and out of them other than by a get (`out`: drains, trims, the buffers
 * another thread's drain took, puts that went past the cache to the store).
 * Every term has one writer, the owner, and all but count only grow, so
 * a reader on another thread (zp_stats, the fold at exit) never counts
 * fewer hits than there were when it began, if it reads them in this
 * order against the owner's:
 *
 *   owner                                   reader (_zp_tcache_hits)
 *   put:     puts (release), count (release) out (acquire)
 *   refill:  in, then count (release)        count (acquire)
 *   drain:   count, then out (release)       puts (acquire), in
 *
 * A count read new brings the puts and `in` that came before it; an `out`
 * read new brings the count that came before it; the rest are read late,
 * which only adds.  [classes] of these follow the counters. */
struct _zp_hit_ledger {
	_Atomic uint64_t in, out;
};
static inline struct _zp_hit_ledger *_zp_tcache_ledger(const struct _zp_tcache *tc)
{
	return (struct _zp_hit_ledger *)(void *)(tc->ctr + tc->pool->classes);
}

/* The owner's side of the ledger: n buffers entered class k's slots other
 * than by a put (before count is raised), or left them other than by a get
 * (after count is lowered). */
static inline void _zp_tcache_moved_in(struct _zp_tcache *tc, unsigned k, uint64_t n)
{
	zp_atomic_bump_single_writer(&_zp_tcache_ledger(tc)[k].in, n);
}
static inline void _zp_tcache_moved_out(struct _zp_tcache *tc, unsigned k, uint64_t n)
{
	_Atomic uint64_t *out = &_zp_tcache_ledger(tc)[k].out;
	zp_atomic_store_release(out, zp_atomic_load_relaxed(out) + n);
}

/* Class k's cache hits so far, from any thread (see the ledger above). */
static inline uint64_t _zp_tcache_hits(const struct _zp_tcache *tc, unsigned k)
{
	const struct _zp_hit_ledger *l = &_zp_tcache_ledger(tc)[k];
	const struct _zp_cache_class *cc = &tc->pub.cls[k];
	uint64_t out = zp_atomic_load_acquire(&l->out);
	uint32_t count = __atomic_load_n(&cc->count, __ATOMIC_ACQUIRE);
	uint64_t puts = __atomic_load_n(&cc->puts, __ATOMIC_ACQUIRE);
	return puts + zp_atomic_load_relaxed(&l->in) - out - count;
}

/* Each class's gets + puts at the last decay look: [classes] uint64_t
 * after the ledger. */
static inline uint64_t *_zp_tcache_decay_ops(struct _zp_tcache *tc)
{
	return (uint64_t *)(void *)(_zp_tcache_ledger(tc) + tc->pool->classes);
}

/* Per class, the buffers a drain took from the bottom of its slots
 * (slots[0..base) are gone): [classes] uint32_t after the decay ops, zero
 * while the cache is open. */
static inline uint32_t *_zp_tcache_base(struct _zp_tcache *tc)
{
	return (uint32_t *)(void *)(_zp_tcache_decay_ops(tc) + tc->pool->classes);
}

/* The owner's side of the hand-off, around everything it does to its cache
 * outside the inline paths: enter marks it busy, then (a store before a
 * load, ordered against a drainer by that drainer's membarrier) sees
 * whether a drain closed the cache, and if so takes the drained slots out
 * and reopens the inline paths; leave ends it. */
void _zp_tcache_reopen(struct _zp_tcache *tc);
static inline void _zp_tcache_enter(struct _zp_tcache *tc)
{
	zp_atomic_store_relaxed(&tc->in_slow, 1);
	zp_atomic_compiler_fence();
	if (ZP_UNLIKELY(zp_atomic_load_relaxed(&tc->closed) != 0))
		_zp_tcache_reopen(tc);
}
static inline void _zp_tcache_leave(struct _zp_tcache *tc)
{
	_zp_hb_before(&tc->pub); /* helgrind and DRD do not see the release */
	zp_atomic_store_release(&tc->in_slow, 0);
}

/* Free the buffers of the caches of pool that other threads own (they may
 * be using them), all but the top buffer of each class (the owner may be in
 * the middle of a get or put of it).  The owners of caches that could not
 * be drained (in a slow path at that moment, or no membarrier on this
 * system) trim their own on their next call.  Returns the bytes freed,
 * adding their number to *nbufs and their bytes to *f (the caller gives
 * them back: _zp_os_give_back, not under _zp_tcache_lock). */
size_t _zp_tcache_trim_others(zp_pool *pool, uint64_t *nbufs, struct _zp_freed *f);

/* After a decay step: free the buffers of the caches of pool whose owner
 * made no get or put through the last decay_ms (not the caller's own), as
 * _zp_tcache_trim_others does, counted in pool->decay.given.  Runs at most once
 * per step; wait false: not if another thread holds _zp_tcache_lock.
 * Returns the buffers freed. */
long _zp_tcache_decay_caches(zp_pool *pool, bool wait);

/* Capacity a class gets on first use in an adaptive cache
 * (ZP_CACHE_DEPTH_AUTO); it has none before. */
#define ZP_CACHE_INIT 4u
/* An adaptive cache holds at most this many times cfg.cache_bytes: what
 * is beyond cache_bytes is borrowed from the idle budget (zp_store.h). */
#define ZP_CACHE_BORROW_FACTOR 4u

static inline struct _zp_tcache *_zp_tcache_of(zp_cache *c)
{
	return (struct _zp_tcache *)((char *)c - offsetof(struct _zp_tcache, pub));
}

/* The calling thread's cache for pool, created if needed; NULL with errno
 * EAGAIN (the thread is exiting, the pool has no slot, the process has no
 * pthread key left) or ENOMEM. */
zp_cache *_zp_tcache_attach(zp_pool *pool);

/* The most buffers class k of a cache of pool may hold: the fixed depth,
 * or for an adaptive cache min(ZP_MAX_CACHE_DEPTH, ZP_CACHE_BORROW_FACTOR x
 * cache_bytes / size) when one buffer fits cache_bytes, else 0 (the class
 * is not cached). */
uint32_t _zp_tcache_class_max(const zp_pool *pool, unsigned k);

/* Grow class k of the calling thread's cache tc (adaptive caches only);
 * returns its capacity, unchanged when it cannot grow. */
uint32_t _zp_tcache_grow(struct _zp_tcache *tc, unsigned k);

/* Whether class cls of tc caches buffers: it has capacity, or gets some on
 * first use (adaptive caches).  False for a cache of depth 0, a class
 * larger than cache_bytes, or a cache too full to give it room. */
static inline bool _zp_tcache_class_cached(struct _zp_tcache *tc, unsigned cls)
{
	return tc->pub.cls[cls].limit > 0 || _zp_tcache_grow(tc, cls) > 0;
}

/* A put of class cls that passes the slots of tc (the class does not
 * cache): counted as the cache's put, and in the hit ledger's out; the
 * caller gives the buffer to the store with tc->ctr. */
static inline void _zp_tcache_put_passes(struct _zp_tcache *tc, unsigned cls)
{
	_ZP_COUNT_RELEASE(&tc->pub.cls[cls].puts);
	_zp_tcache_moved_out(tc, cls, 1);
}

/* Give the n coldest buffers of class k of tc (the bottom of its LIFO) to
 * the store, at most pool->batch per transfer, and move the rest down.  On
 * the cache's own thread (or, at its exit, the exiting thread);
 * zp_tcache_refill.c. */
void _zp_tcache_drain(struct _zp_tcache *tc, unsigned k, uint32_t n);

/* The miss path (zp_tcache_refill.c), on the owner's thread between
 * _zp_tcache_enter and _zp_tcache_leave.  First the class decides whether
 * it caches: _zp_tcache_class_cached (inline, so that a pool without caches
 * pays no call for the answer).
 *
 * A get of a cached class cls that the inline path did not serve: the top
 * of the class's slots, or the top of a batch refilled from the store
 * (counted as a refill and a store hit), or NULL when the store had none
 * (the caller allocates a fresh buffer). */
zp_buf *_zp_tcache_get_miss(struct _zp_tcache *tc, unsigned cls);
/* A put of b, a validated buffer of cached class cls already marked idle,
 * that the inline path did not absorb: counted, then into the slots,
 * draining the coldest batch first when the class is full and cannot
 * grow. */
void _zp_tcache_put_miss(struct _zp_tcache *tc, unsigned cls, zp_buf *b);

/* A new pool's place in this layer: its (empty) list of caches and a free
 * slot in every thread's table (pool->slot ZP_MAX_POOLS when all are
 * taken: the pool runs uncached).  _zp_tcache_pool_fini gives the slot
 * back, once no cache of the pool is left (_zp_tcache_detach_all). */
void _zp_tcache_pool_init(zp_pool *pool);
void _zp_tcache_pool_fini(zp_pool *pool);

/* Detach and free every thread's cache of `pool`; the buffers they held
 * are not freed here (the pool frees all of its buffers itself). */
void _zp_tcache_detach_all(zp_pool *pool);

/* Decay of the calling thread's cache tc, from its slow paths: once every
 * decay_ms (ZP_DECAY_SLOTS of the pool's decay steps), each class that saw
 * no get or put since the last look gives its buffers to the store and its
 * capacity up, and what the cache borrowed beyond its capacity goes back
 * to the budget. */
void _zp_tcache_decay(struct _zp_tcache *tc, uint64_t steps);
static inline void _zp_tcache_decay_poll(struct _zp_tcache *tc)
{
	uint64_t steps = zp_atomic_load_relaxed(&tc->pool->decay.steps);
	if (ZP_UNLIKELY(steps >= tc->decay_step + ZP_DECAY_SLOTS))
		_zp_tcache_decay(tc, steps);
}

/* Free every buffer in the calling thread's cache of pool (if it has one);
 * adds their number to *nbufs and their bytes to *f (for
 * _zp_os_give_back), and returns their bytes. */
size_t _zp_tcache_trim_self(zp_pool *pool, uint64_t *nbufs, struct _zp_freed *f);

/* The calling thread's small id (shard hint). */
unsigned _zp_tcache_hint(void);

/* ---- shared by the files of this layer ---------------------------------- */

/* Whether class k still uses the slots in the cache's own block (it has not
 * grown past tc->init). */
static inline bool _zp_tcache_slots_inline(const struct _zp_tcache *tc, unsigned k)
{
	return tc->pub.cls[k].slots == tc->inline_slots + (size_t)k * tc->init;
}

/* The inline get's size bound of an open cache: zeroing pools take the
 * slow path for every get, which zeroes. */
static inline size_t _zp_tcache_open_fast_limit(const zp_pool *pool)
{
	return (pool->cfg.flags & ZP_F_ZERO_ON_GET) ? 0 : pool->cfg.max_size + 1;
}

/* Gets and puts of class k of tc so far (all counted by its owner). */
static inline uint64_t _zp_tcache_class_ops(const struct _zp_tcache *tc, unsigned k)
{
	const struct _zp_cache_class *cc = &tc->pub.cls[k];
	return _zp_tcache_hits(tc, k) + _ZP_LOAD(&cc->puts) +
	       zp_atomic_load_relaxed(&tc->ctr[k].store_hits) +
	       zp_atomic_load_relaxed(&tc->ctr[k].fresh);
}

/* Reopen a cache a drain closed (zp_tcache_reclaim.c): move what the drain
 * left down to slots[0] and open the inline paths.  Under _zp_tcache_lock,
 * on the owner's thread or at its exit. */
void _zp_tcache_reopen_locked(struct _zp_tcache *tc);

#endif /* ZP_TCACHE_H */
