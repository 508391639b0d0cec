/*
 * zp_tcache.h - the thread-cache layer (zp_tcache.c): each thread's table
 * of caches, one per pool it uses, and their lifetime (attach, retire at
 * thread exit, detach at pool destroy, trim by the owner).  Above the store
 * layer (zp_store.h), below the entry points.
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
#include "zp_store.h"

extern pthread_mutex_t _zp_tcache_lock;

struct _zp_thread {
	/* [ZP_MAX_POOLS] is a sentinel that stays NULL: pools without a slot
	 * index it and take the uncached path. */
	zp_cache *caches[ZP_MAX_POOLS + 1];
	unsigned hint;
};

/* The calling thread's table.  Until the thread attaches its first cache it
 * points at a shared table of NULLs, so the hot path needs no NULL test. */
extern __thread struct _zp_thread *_zp_tcache_self __attribute__((tls_model("initial-exec")));

/* A thread's cache for one pool: this private header, then the public
 * zp_cache with its classes, then counters and slots, in one block. */
struct _zp_tcache {
	struct _zp_tcache *next, *prev; /* in pool->caches */
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
	/* Must be last (a flexible array), and at an offset that puts the
	 * 32-byte class records of cls[] on 32-byte boundaries of this
	 * line-aligned block, so that none straddles two cache lines (a field
	 * added above moved them: zp_tcache.c asserts it). */
	zp_cache pub;
};

/* Each class's gets + puts at the last decay look: [classes] uint64_t
 * after the counters. */
static inline uint64_t *_zp_tcache_decay_ops(struct _zp_tcache *tc)
{
	return (uint64_t *)(void *)(tc->ctr + tc->pool->classes);
}

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

/* The calling thread's cache for pool, or NULL; never creates one. */
static inline zp_cache *_zp_tcache_peek(const zp_pool *pool)
{
	return _zp_tcache_self->caches[pool->slot];
}

/* The calling thread's cache for pool, created if needed; NULL with errno
 * EAGAIN (the thread is exiting, the pool has no slot, the process has no
 * pthread key left) or ENOMEM. */
zp_cache *_zp_tcache_attach(zp_pool *pool);

/* The most buffers class k of a cache of pool may hold: the fixed depth,
 * or for an adaptive cache min(ZP_MAX_CACHE_DEPTH, cache_bytes / size)
 * (0: the class is not cached). */
uint32_t _zp_tcache_class_max(const zp_pool *pool, unsigned k);

/* Grow class k of the calling thread's cache tc (adaptive caches only);
 * returns its capacity, unchanged when it cannot grow. */
uint32_t _zp_tcache_grow(struct _zp_tcache *tc, unsigned k);

/* Give the n coldest buffers of class k of tc (the bottom of its LIFO) to
 * the store, at most pool->batch per transfer, and move the rest down.  On
 * the cache's own thread (or, at its exit, the exiting thread). */
void _zp_tcache_drain(struct _zp_tcache *tc, unsigned k, uint32_t n);

/* Buffers one refill or drain of a class with capacity lim moves. */
static inline uint32_t _zp_tcache_transfer(const zp_pool *pool, uint32_t lim)
{
	if (pool->depth != ZP_CACHE_DEPTH_AUTO)
		return pool->batch;
	uint32_t half = lim / 2 ? lim / 2 : 1;
	return half < pool->batch ? half : pool->batch;
}

/* A free slot for a new pool, or ZP_MAX_POOLS when all are taken; and its
 * release when the pool is gone. */
unsigned _zp_tcache_slot_acquire(void);
void _zp_tcache_slot_release(unsigned slot);

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
	uint64_t steps = zp_atomic_load_relaxed(&tc->pool->decay_steps);
	if (ZP_UNLIKELY(steps >= tc->decay_step + ZP_DECAY_SLOTS))
		_zp_tcache_decay(tc, steps);
}

/* Free every buffer in the calling thread's cache of pool (if it has one);
 * adds their number to *nbufs and returns their bytes. */
size_t _zp_tcache_trim_self(zp_pool *pool, uint64_t *nbufs);

/* The calling thread's small id (shard hint). */
unsigned _zp_tcache_hint(void);

#endif /* ZP_TCACHE_H */
