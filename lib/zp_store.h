/*
 * zp_store.h - the pool and its store layer: size classes, buffer
 * descriptors, per-class counters, and the byte-budgeted give/take over the
 * backend.  Above the OS layer (zp_os.h), below decay (zp_decay.h) and the
 * thread caches (zp_tcache.h); the layers are listed in
 * scripts/check_layers.py.  By concern:
 *
 *   zp_store.c           classes, the backend's store, give/take, the idle
 *                        gauge, decay's view of the store
 *   zp_store_desc.c      descriptor slabs and lanes, buffers' data
 *   zp_store_budget.c    the idle-bytes budget, charges, lending to caches
 *   zp_store_released.c  released buffers (pages given back, mapping kept)
 */
#ifndef ZP_STORE_H
#define ZP_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "zeropool.h"
#include "zp_backend.h"
#include "zp_os.h"

/* Counters of one class, kept per thread cache (single writer: relaxed
 * load and store) and per pool (folded totals of caches that are gone, and
 * operations made without a cache: relaxed RMW, off the hot path).
 *
 * A cache's puts live in the public _zp_cache_class, where the inline path
 * counts them, and its hits are derived from the hit ledger (zp_tcache.h);
 * the fields `hits` and `puts` here are used only in pool totals.  Puts are
 * counted with release and read before gets (zp_stats.c). */
struct _zp_class_counters {
	_Atomic uint64_t hits, puts;
	_Atomic uint64_t store_hits, fresh;
	_Atomic uint64_t refills, drains; /* batch transfers */
	_Atomic uint64_t evictions, discards;
};

/* Folding and summing walk the counters as an array of words. */
#define _ZP_NCOUNTERS (sizeof(struct _zp_class_counters) / sizeof(_Atomic uint64_t))
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "counters are plain 64-bit words");

/* Add n to a counter: a cache's (single writer) or, if ctr is NULL, the
 * pool's totals (RMW). */
#define _ZP_ADD(pool, ctr, cls, field, n)                                                          \
	((ctr) != NULL ? zp_atomic_bump_single_writer(&(ctr)[cls].field, (n))                      \
		       : (void)zp_atomic_add_relaxed(&(pool)->totals[cls].field, (n)))

/* The store's gauge of one class and its share of the idle-bytes budget,
 * one cache line per class so that transfers and fresh allocations of
 * different classes write no common line (zp_store.c, "the idle-bytes
 * budget").
 *
 * With a finite max_idle_bytes, the budget is handed out in chunks: the
 * pool's idle_reserved counts the bytes granted to classes (never above
 * max_idle_bytes), and each class keeps the granted bytes it does not use
 * in `avail`; a buffer's bytes leave avail before it enters the store and
 * come back after it left.  So the bytes in the store (and on their way in
 * or out) plus every avail never exceed idle_reserved.  A class holds at
 * most 2 chunks unused at rest; a give that finds the pool's budget spent
 * first reclaims the unused bytes of the other classes that ever held
 * budget (`reserving`), so it is refused early only by bytes that
 * concurrent transfers hold on their way.  With SIZE_MAX (no budget) avail,
 * idle_reserved and reserving are not used.
 *
 * Idle bytes are not counted: they are the backend's count() times the
 * class size.  Pooled buffers have the capacity of their class, so live
 * bytes are live_buffers times the class size. */
struct _zp_store_class {
	_Atomic uint64_t avail;        /* budget bytes reserved by this class, not in use */
	_Atomic uint64_t live_buffers; /* allocated, not freed */
	uint64_t chunk;                /* bytes reserved at a time; set at init */
	uint64_t charge; /* what one idle buffer costs the budget (_zp_store_class_charge) */
	/* Buffers the budget refused whose pages went back to the OS (mapping
	 * and descriptor kept, "Released buffers" in zp_store.c): a list
	 * through _zp_link[0] under the pool's desc_lock, and its length,
	 * written under the lock and read without it. */
	zp_buf *released;
	_Atomic uint64_t nreleased;
	/* Decay (zp_decay.c): the buffers in the store (a gauge the front end
	 * keeps beside the backend's count(): it moves after the backend did,
	 * so it may lag and even dip below zero for a moment) and its lowest
	 * value since the last decay step; the lowest nreleased since then
	 * (under desc_lock); the highest `idle` ever (zp_stats). */
	_Atomic int64_t idle;
	_Atomic int64_t idle_low;
	uint64_t released_low;
	_Atomic int64_t idle_high;
	/* The largest capacity a thread cache gave this class (zp_class_stats):
	 * raised by _zp_tcache_grow, a slow path. */
	_Atomic uint32_t cache_limit_peak;
} ZP_ALIGNED_CL;

struct _zp_slab; /* a block of descriptors */
struct _zp_tcache;
struct _zp_decay;
struct _zp_maint;

/* Descriptor lanes: a thread takes fresh descriptors from the slabs of its
 * lane (its small id modulo the lanes), so that descriptors that two
 * threads write on every get and put do not share a 128-byte pair of lines
 * (zp_store_desc.c). */
#define ZP_DESC_LANES 8u

/* The pool.  Its first cache line holds what the hit path and every
 * transfer read, for all layers, and nothing written after create: a word
 * written by transfers on that line would make every thread's hit path
 * miss on it.  The records after it are each one layer's.  (The pool is
 * allocated on a cache line, _zp_meta_alloc.) */
struct zp_pool {
	/* Line 0: read-mostly, set at create. */
	uintptr_t tag; /* == (uintptr_t)this: owner tag of held buffers */
	/* This pool's index in every thread's cache table (ZP_MAX_POOLS:
	 * none); the thread-cache layer's, set at create, cleared at destroy
	 * under _zp_tcache_lock.  The hit path reads it. */
	unsigned slot;
	unsigned classes;
	uint32_t spacing_shift, class_base; /* see _zp_class_index */
	unsigned depth;                     /* cfg.cache_depth: 0, fixed, or ZP_CACHE_DEPTH_AUTO */
	unsigned batch;                     /* the most buffers one refill or drain moves */
	const struct zp_backend_ops *ops;
	void *store;
	size_t *class_size;
	struct _zp_store_class *sc; /* [classes]: gauges and budget shares */

	/* Read-mostly, read on slow paths by every layer. */
	struct _zp_class_counters *totals; /* [classes] */
	zp_config cfg;

	/* Below, one record per layer: its state, which only its own files
	 * write. */

	/* Descriptors (zp_store_desc.c): slabs, never freed before the pool; a
	 * free list per lane.  One mutex for the pool: it is taken only when a
	 * buffer is allocated or freed, next to a malloc/mmap and free/munmap
	 * that cost far more than an uncontended lock. */
	struct _zp_pool_desc {
		pthread_mutex_t lock;
		struct _zp_slab *slabs;
		zp_buf *free[ZP_DESC_LANES];
	} desc;

	/* The idle-bytes budget (zp_store_budget.c). */
	struct _zp_pool_budget {
		_Atomic uint64_t *reserving; /* bit per class that ever reserved budget */
		_Atomic uint64_t reserved;   /* granted to classes, <= max_idle_bytes */
		_Atomic uint64_t lent;       /* of it, lent to thread caches (_zp_store_borrow) */
		_Atomic uint64_t released;   /* capacity of released buffers, <= max_idle_bytes */
	} budget;

	/* Decay (zp_decay.c).  `lock` serialises steps; it is taken before
	 * desc.lock and the store's locks, never while holding them. */
	struct _zp_pool_decay {
		pthread_mutex_t lock;
		uint64_t tick_ns; /* the step interval; 0: no decay */
		/* Written by steps, read by any thread without the lock
		 * (annotated as one range for helgrind and DRD,
		 * _zp_hg_counters). */
		_Atomic uint64_t next_ns; /* when the next step is due */
		_Atomic uint64_t steps;   /* intervals elapsed in steps so far */
		_Atomic uint64_t given;   /* buffers given back by steps and idle-cache decay */
		struct _zp_decay *state;  /* the steps' state, under lock */
	} decay;

	/* The thread-cache layer's (zp_tcache*.c), under _zp_tcache_lock: the
	 * caches attached to this pool, their number, and decay.steps at the
	 * last look at idle caches (_zp_tcache_decay_caches; read without
	 * the lock, annotated for helgrind and DRD). */
	struct _zp_pool_caches {
		LIST_HEAD(_zp_tcache_list, _zp_tcache) list;
		unsigned n;
		_Atomic uint64_t step;
	} caches;

	/* The entry layer's (zp_alloc.c, zp_pool.c, zp_stats.c, zp_fork.c,
	 * zp_maintain.c): counters of what never enters a class, what zp_trim
	 * freed, the most idle_peak_bytes zp_stats returned, the live-pool list
	 * of the fork handlers (under _zp_tcache_lock), the maintenance
	 * thread. */
	struct _zp_pool_entry {
		_Atomic uint64_t oversize_gets, oversize_puts, trimmed;
		_Atomic uint64_t idle_peak_reported;
		LIST_ENTRY(zp_pool) live;
		struct _zp_maint *maint;
	} entry;
};
_Static_assert(offsetof(struct zp_pool, totals) == ZP_CACHELINE,
	       "line 0 of the pool holds the read-mostly fields of the hot paths, and only them");
_Static_assert(offsetof(struct zp_pool, slot) == _ZP_POOL_SLOT_OFFSET &&
		   sizeof(((struct zp_pool *)0)->slot) == sizeof(unsigned),
	       "the inline zp_get/zp_put of zeropool.h read the slot there");

static inline size_t _zp_store_class_size(const zp_pool *pool, unsigned cls)
{
	return pool->class_size[cls];
}

/* What an idle buffer of class cls costs the idle budget (max_idle_bytes):
 * the memory its data occupies (_zp_os_footprint), its descriptor with its
 * share of the descriptor slab, and its entry in the store. */
static inline uint64_t _zp_store_class_charge(const zp_pool *pool, unsigned cls)
{
	return pool->sc[cls].charge;
}

/* Tests: the charge of the class of `size` (size <= max_size). */
ZP_API uint64_t _zp_test_class_charge(zp_pool *pool, size_t size);

static inline unsigned _zp_store_class_of(const zp_pool *pool, size_t len)
{
	return _zp_class_index(len, pool->cfg.min_size, pool->spacing_shift, pool->class_base);
}

/* Sums over the classes of the store's gauges (snapshots: exact when the
 * pool is quiescent).  What the idle buffers cost the budget
 * (_zp_store_class_charge each), capped at max_idle_bytes, which the store
 * never exceeds: a sum read while budget moves between classes could count
 * the moving bytes twice. */
uint64_t _zp_store_idle_charge(zp_pool *pool);
/* Released buffers (mapped, pages returned), all classes. */
void _zp_store_released(zp_pool *pool, uint64_t *buffers, uint64_t *bytes);
uint64_t _zp_store_cap_idle(const zp_pool *pool, uint64_t idle_bytes);
void _zp_store_live(zp_pool *pool, uint64_t *buffers, uint64_t *bytes);

/* Thread caches may grow past cfg.cache_bytes with capacity borrowed from
 * the idle-bytes budget, so that memory idle in the pool stays within
 * max_idle_bytes plus cache_bytes per thread.  At most 1 /
 * ZP_CACHE_LEND_SHARE of max_idle_bytes is lent at once, so the store keeps
 * most of it.  _zp_store_borrow lends all of `bytes` or nothing (false);
 * every lent byte comes back through _zp_store_unborrow.  Both write two
 * pool-wide words: a cache borrows when a class doubles, not per transfer. */
#define ZP_CACHE_LEND_SHARE 8
bool _zp_store_borrow(zp_pool *pool, uint64_t bytes);
void _zp_store_unborrow(zp_pool *pool, uint64_t bytes);

/* Set up the classes, the descriptor slabs and the backend's store of a
 * pool whose cfg, ops, depth and batch are set.  Returns 0, or -1 with errno
 * ENOMEM; _zp_store_fini() cleans up after either. */
int _zp_store_init(zp_pool *pool);
/* Free the data of every buffer the pool ever handed out and did not free
 * (idle, cached anywhere, or still held by callers). */
void _zp_store_free_all_data(zp_pool *pool);
/* Destroy the backend's store and free the descriptors and classes. */
void _zp_store_fini(zp_pool *pool);

/* A fresh buffer of class cls (or oversize when cls == _ZP_CLASS_OVERSIZE,
 * with cap = len rounded up to a page), for the thread whose small id is
 * hint (_zp_tcache_hint: it picks the descriptor lane).  Returns NULL with
 * errno ENOMEM. */
zp_buf *_zp_store_buf_new(zp_pool *pool, unsigned cls, size_t len, unsigned hint);
/* Free a buffer's data and recycle its descriptor. */
void _zp_store_buf_free(zp_pool *pool, zp_buf *b);

/* Hand n <= ZP_MAX_CACHE_DEPTH buffers of one class to the store,
 * honouring max_idle_bytes; frees what the store refuses or evicts, and
 * what the budget does not admit (mapped buffers among those it releases
 * instead: "Released buffers" in zp_store.c), and returns how many buffers
 * left that way.
 * Counters go to `ctr` (a thread cache's) or, when NULL, to the pool's
 * totals.  `hint` is the calling thread's small id (shard selection). */
unsigned _zp_store_give(zp_pool *pool, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			struct _zp_class_counters *ctr);
/* Take up to n buffers of one class from the store: idle ones first, then
 * released ones (their pages fault in again on use). */
unsigned _zp_store_take(zp_pool *pool, unsigned hint, unsigned cls, zp_buf **out, unsigned n);

/* Decay's view of class cls (zp_decay.c): the buffers idle in the store and
 * released now, and the lowest number of each since the last call, which
 * starts the next interval. */
void _zp_store_decay_sample(zp_pool *pool, unsigned cls, uint64_t *idle, uint64_t *idle_low,
			    uint64_t *released, uint64_t *released_low);
/* Give back the memory of up to n idle buffers of class cls: mapped ones
 * lose their pages and wait on the released list (within max_idle_bytes),
 * the others are freed.  Returns how many. */
unsigned _zp_store_decay_idle(zp_pool *pool, unsigned cls, unsigned n);
/* Unmap up to n released buffers of class cls; returns how many. */
unsigned _zp_store_decay_released(zp_pool *pool, unsigned cls, unsigned n);
/* The highest number of idle bytes each class reached, summed, at least
 * idle_now (the live count, which the class highs lag), capped at
 * max_idle_bytes.  Not monotonic (a lost update lowers a class's high by a
 * transfer): zp_stats keeps the floor. */
uint64_t _zp_store_idle_peak(zp_pool *pool, uint64_t idle_now);
/* Free every buffer of class cls idle in the store; adds their number to
 * *nbufs and returns their bytes. */
size_t _zp_store_drain(zp_pool *pool, unsigned hint, unsigned cls, uint64_t *nbufs);

/* ---- shared by the files of this layer ---------------------------------- */

/* Descriptors (zp_store_desc.c): the share of its slab one descriptor
 * costs, and freeing the slabs (after the data, _zp_store_free_all_data). */
size_t _zp_store_desc_share(void);
void _zp_store_desc_fini(zp_pool *pool);

/* The budget (zp_store_budget.c).  Init, after the backend's store exists
 * (a charge includes its idle_meta): the classes' charges and chunks.
 * Returns 0, or -1 (ENOMEM). */
int _zp_store_budget_init(zp_pool *pool);
void _zp_store_budget_fini(zp_pool *pool);
static inline bool _zp_store_budget_unlimited(const zp_pool *pool)
{
	return pool->cfg.max_idle_bytes == SIZE_MAX;
}
/* Admit up to n buffers of class cls, each costing `charge`, into the
 * store's budget; returns how many fit (their bytes leave the class's
 * avail).  Inline, on every transfer: one CAS on the class's line when its
 * avail covers them, else the slow path reserves more, reclaims other
 * classes' unused bytes, or admits what fits. */
unsigned _zp_store_budget_admit_slow(zp_pool *pool, unsigned cls, unsigned n, uint64_t charge);
static inline unsigned _zp_store_budget_admit(zp_pool *pool, unsigned cls, unsigned n,
					      uint64_t charge)
{
	if (_zp_store_budget_unlimited(pool))
		return n;
	_Atomic uint64_t *a = &pool->sc[cls].avail;
	uint64_t want = (uint64_t)n * charge, avail = zp_atomic_load_relaxed(a);
	if (avail >= want && zp_atomic_cas_weak_relaxed(a, &avail, avail - want))
		return n;
	return _zp_store_budget_admit_slow(pool, cls, n, charge);
}
/* Bytes of class cls left the store: back to its unused reservation, and
 * what exceeds 2 chunks of it back to the pool (_zp_store_budget_surplus,
 * given the class's avail after the add). */
void _zp_store_budget_surplus(zp_pool *pool, unsigned cls, uint64_t avail);
static inline void _zp_store_budget_release(zp_pool *pool, unsigned cls, uint64_t bytes)
{
	if (_zp_store_budget_unlimited(pool))
		return;
	struct _zp_store_class *sc = &pool->sc[cls];
	uint64_t avail = zp_atomic_add_relaxed(&sc->avail, bytes) + bytes;
	if (avail > 2 * sc->chunk)
		_zp_store_budget_surplus(pool, cls, avail);
}

/* Released buffers (zp_store_released.c): a buffer the budget refused or
 * decay took (`now`: its pages leave the RSS at once) is released when it
 * can be, else freed; a take reuses released buffers after the idle ones. */
void _zp_store_release_or_free(zp_pool *pool, unsigned cls, zp_buf *b, bool now);
unsigned _zp_store_take_released(zp_pool *pool, unsigned cls, zp_buf **out, unsigned n);

/* Sum a per-class buffer gauge of struct _zp_store_class (at byte offset
 * `field`) over the classes, in buffers and in bytes of capacity. */
void _zp_store_sum_gauge(zp_pool *pool, size_t field, uint64_t *buffers, uint64_t *bytes);

/* Add bytes to a pool-wide gauge unless it would pass cap; true if added. */
static inline bool _zp_store_gauge_add_bounded(_Atomic uint64_t *gauge, uint64_t bytes,
					       uint64_t cap)
{
	uint64_t cur = zp_atomic_load_relaxed(gauge);
	do {
		if (cur > cap || cap - cur < bytes)
			return false;
	} while (!zp_atomic_cas_weak_relaxed(gauge, &cur, cur + bytes));
	return true;
}

#endif /* ZP_STORE_H */
