/*
 * zp_tcache.c - the lifetime of thread caches: thread tables, pool slots,
 * attaching a cache, retiring it at thread exit, detaching all of a pool's
 * caches at destroy.  The locking rules are in zp_tcache.h; the cache's
 * miss path is zp_tcache_refill.c, its capacity zp_tcache_capacity.c, and
 * taking buffers out of caches zp_tcache_reclaim.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_poison.h"
#include "zp_tcache.h"

pthread_mutex_t _zp_tcache_lock = PTHREAD_MUTEX_INITIALIZER;

/* No class record straddles two cache lines (the block is line-aligned). */
_Static_assert(sizeof(struct _zp_cache_class) == 32, "a class record is 32 bytes");
_Static_assert((offsetof(struct _zp_tcache, pub) + offsetof(zp_cache, cls)) %
		       sizeof(struct _zp_cache_class) ==
		   0,
	       "class records start on 32-byte boundaries of the cache block");

/* Until a thread attaches its first cache, _zp_tcache_self points at this
 * table of NULLs; `self_table` tells them apart. */
static struct _zp_thread empty_table;

#define ZP_TLS __thread __attribute__((tls_model("initial-exec")))
ZP_EXPORT ZP_TLS struct _zp_thread *_zp_tcache_self = &empty_table;
static ZP_TLS struct _zp_thread *self_table; /* NULL until allocated */
static ZP_TLS bool self_gone;                /* the thread-exit destructor has run */
static ZP_TLS unsigned hint_p1;              /* shard hint + 1 for threads without a table */

static bool slot_used[ZP_MAX_POOLS];
static pthread_key_t exit_key;
static bool exit_key_made; /* under _zp_tcache_lock (not pthread_once:
			    * helgrind cannot see its ordering) */
static _Atomic unsigned next_hint;

/* ---- a pool's place in the layer ------------------------------------------ */

void _zp_tcache_pool_init(zp_pool *pool)
{
	LIST_INIT(&pool->caches.list);
	pool->caches.n = 0;
	_zp_hg_counters(&pool->caches.step, sizeof pool->caches.step);
	pool->slot = ZP_MAX_POOLS;
	pthread_mutex_lock(&_zp_tcache_lock);
	for (unsigned i = 0; i < ZP_MAX_POOLS; i++)
		if (!slot_used[i]) {
			slot_used[i] = true;
			pool->slot = i;
			break;
		}
	pthread_mutex_unlock(&_zp_tcache_lock);
}

void _zp_tcache_pool_fini(zp_pool *pool)
{
	_zp_hg_counters_gone(&pool->caches.step, sizeof pool->caches.step);
	if (pool->slot >= ZP_MAX_POOLS)
		return;
	pthread_mutex_lock(&_zp_tcache_lock);
	slot_used[pool->slot] = false;
	pthread_mutex_unlock(&_zp_tcache_lock);
	pool->slot = ZP_MAX_POOLS;
}

unsigned _zp_tcache_hint(void)
{
	if (self_table != NULL)
		return self_table->hint;
	if (hint_p1 == 0)
		hint_p1 = zp_atomic_add_relaxed(&next_hint, 1) + 1;
	return hint_p1 - 1;
}

/* ---- counters ---------------------------------------------------------- */

/* Fold a cache's counters into the pool's totals (under _zp_tcache_lock,
 * when the cache goes away). */
static void fold_counters(zp_pool *pool, const struct _zp_tcache *tc)
{
	for (unsigned k = 0; k < pool->classes; k++) {
		_Atomic uint64_t *to = (_Atomic uint64_t *)&pool->totals[k];
		_Atomic uint64_t *from = (_Atomic uint64_t *)&tc->ctr[k];
		for (size_t i = 0; i < _ZP_NCOUNTERS; i++)
			zp_atomic_add_relaxed(&to[i], zp_atomic_load_relaxed(&from[i]));
		zp_atomic_add_relaxed(&pool->totals[k].hits, _zp_tcache_hits(tc, k));
		zp_atomic_add_relaxed(&pool->totals[k].puts, _ZP_LOAD(&tc->pub.cls[k].puts));
	}
}

static void unlink_cache(zp_pool *pool, struct _zp_tcache *tc)
{
	LIST_REMOVE(tc, link);
	pool->caches.n--;
}

/* The counters zp_stats reads while the owner writes them (zp_poison.h):
 * out of helgrind's and DRD's checking while the cache lives. */
static void hg_counters(struct _zp_tcache *tc, bool on)
{
#if ZP_VALGRIND
	/* With them, what a drain reads or writes while the owner may run
	 * its inline paths (ordered by a membarrier, which checkers cannot
	 * see): the class records (count beside the counters), the counters
	 * and the hit ledger after them (one block), the words
	 * that close the inline paths, and the hand-off's flags. */
	unsigned k = tc->pool->classes;
	size_t n = k * (sizeof(struct _zp_class_counters) + sizeof(struct _zp_hit_ledger));
	size_t recs = k * sizeof(struct _zp_cache_class);
	if (on) {
		_zp_hg_counters(tc->pub.cls, recs);
		_zp_hg_counters(tc->ctr, n);
		_zp_hg_counters(&tc->pub.put_tag, 2 * sizeof(uintptr_t));
		_zp_hg_counters(&tc->in_slow, 2 * sizeof(uint32_t));
	} else {
		_zp_hg_counters_gone(tc->pub.cls, recs);
		_zp_hg_counters_gone(tc->ctr, n);
		_zp_hg_counters_gone(&tc->pub.put_tag, 2 * sizeof(uintptr_t));
		_zp_hg_counters_gone(&tc->in_slow, 2 * sizeof(uint32_t));
	}
#else
	(void)tc;
	(void)on;
#endif
}

/* Free a cache and the slot arrays its classes grew into. */
static void free_cache(struct _zp_tcache *tc)
{
	hg_counters(tc, false);
	for (unsigned k = 0; k < tc->pool->classes; k++)
		if (!_zp_tcache_slots_inline(tc, k))
			_zp_meta_free(tc->pub.cls[k].slots);
	_zp_meta_free(tc);
}

/* ---- thread exit and pool destroy ---------------------------------------- */

/* Give a cache's buffers back to its pool's store (hottest last, so they
 * stay hot there) and free the cache. */
static void retire_cache(struct _zp_tcache *tc)
{
	zp_pool *pool = tc->pool;
	if (zp_atomic_load_relaxed(&tc->closed) != 0)
		_zp_tcache_reopen_locked(tc);
	for (unsigned k = 0; k < pool->classes; k++)
		_zp_tcache_drain(tc, k, tc->pub.cls[k].count);
	_zp_store_unborrow(pool, tc->borrowed);
	fold_counters(pool, tc);
	unlink_cache(pool, tc);
	if (pool->ops->thread_exit != NULL)
		pool->ops->thread_exit(pool->store);
	free_cache(tc);
}

static void thread_exit(void *arg)
{
	struct _zp_thread *t = arg;
	pthread_mutex_lock(&_zp_tcache_lock);
	for (unsigned i = 0; i < ZP_MAX_POOLS; i++)
		if (t->caches[i] != NULL)
			retire_cache(_zp_tcache_of(t->caches[i]));
	_zp_tcache_self = &empty_table;
	self_table = NULL;
	self_gone = true;
	pthread_mutex_unlock(&_zp_tcache_lock);
	_zp_meta_free(t);
}

void _zp_tcache_detach_all(zp_pool *pool)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	struct _zp_tcache *tc = LIST_FIRST(&pool->caches.list);
	while (tc != NULL) {
		struct _zp_tcache *next = LIST_NEXT(tc, link);
		tc->thread->caches[pool->slot] = NULL;
		free_cache(tc);
		tc = next;
	}
	LIST_INIT(&pool->caches.list);
	pool->caches.n = 0;
	pthread_mutex_unlock(&_zp_tcache_lock);
}

/* ---- attaching a cache --------------------------------------------------- */

static struct _zp_thread *this_thread(void)
{
	if (self_table != NULL)
		return self_table;
	if (self_gone)
		return NULL;
	pthread_mutex_lock(&_zp_tcache_lock);
	if (!exit_key_made)
		exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
	bool have_key = exit_key_made;
	pthread_mutex_unlock(&_zp_tcache_lock);
	if (!have_key) { /* the process ran out of keys: run uncached */
		errno = EAGAIN;
		return NULL;
	}
	struct _zp_thread *t = _zp_meta_alloc(sizeof *t);
	if (t == NULL)
		return NULL;
	t->hint = _zp_tcache_hint();
	if (pthread_setspecific(exit_key, t) != 0) {
		_zp_meta_free(t);
		return NULL;
	}
	self_table = t;
	_zp_tcache_self = t;
	return t;
}

zp_cache *_zp_tcache_attach(zp_pool *pool)
{
	if (pool->slot >= ZP_MAX_POOLS) {
		errno = EAGAIN;
		return NULL;
	}
	struct _zp_thread *t = this_thread();
	if (t == NULL) {
		if (self_gone)
			errno = EAGAIN;
		return NULL;
	}
	if (t->caches[pool->slot] != NULL)
		return t->caches[pool->slot];
	unsigned k = pool->classes;
	/* Every class starts with `init` slots in the cache's own block; an
	 * adaptive class that grows past them gets an array of its own. */
	uint32_t init = pool->depth == ZP_CACHE_DEPTH_AUTO ? ZP_CACHE_INIT : pool->depth;
	size_t head = offsetof(struct _zp_tcache, pub) + sizeof(zp_cache) +
		      k * sizeof(struct _zp_cache_class);
	size_t ctr_off = (head + 7) & ~(size_t)7;
	size_t ops_off =
	    ctr_off + k * (sizeof(struct _zp_class_counters) + sizeof(struct _zp_hit_ledger));
	size_t base_off = ops_off + k * sizeof(uint64_t);
	size_t slots_off = (base_off + k * sizeof(uint32_t) + 7) & ~(size_t)7;
	struct _zp_tcache *tc = _zp_meta_alloc(slots_off + (size_t)k * init * sizeof(zp_buf *));
	if (tc == NULL)
		return NULL;
	tc->thread = t;
	tc->pool = pool;
	tc->ctr = (struct _zp_class_counters *)((char *)tc + ctr_off);
	tc->decay_step = zp_atomic_load_relaxed(&pool->decay.steps);
	tc->idle_step = (uint32_t)tc->decay_step;
	tc->idle_ops = 0;
	tc->trim_pending = false;
	tc->picked = false;
	zp_atomic_store_relaxed(&tc->in_slow, 0);
	zp_atomic_store_relaxed(&tc->closed, 0);
	tc->inline_slots = (zp_buf **)((char *)tc + slots_off);
	hg_counters(tc, true);
	tc->init = init;
	zp_cache *c = &tc->pub;
	c->tag = pool->tag;
	c->put_tag = pool->tag;
	c->fast_limit = _zp_tcache_open_fast_limit(pool);
	uint32_t sh = pool->spacing_shift;
	unsigned m = (unsigned)__builtin_ctzll(pool->cfg.min_size);
	for (unsigned i = 0; i < 64; i++) { /* see struct zp_cache */
		bool small = i < m || i == 63;
		c->class_add[i] =
		    small ? -(int64_t)(i == 63) : (int64_t)(i << sh) - (int64_t)pool->class_base;
		c->class_shift[i] = (uint8_t)(small ? 63 : i - sh);
	}
	/* A fixed cache has its capacity from the start; an adaptive one gives
	 * a class capacity when it is first used (_zp_tcache_grow), so that
	 * cache_bytes goes to the classes this thread uses. */
	for (unsigned i = 0; i < k; i++) {
		c->cls[i].slots = tc->inline_slots + (size_t)i * init;
		c->cls[i].limit = pool->depth == ZP_CACHE_DEPTH_AUTO ? 0 : pool->depth;
	}
	pthread_mutex_lock(&_zp_tcache_lock);
	LIST_INSERT_HEAD(&pool->caches.list, tc, link);
	pool->caches.n++;
	t->caches[pool->slot] = c;
	pthread_mutex_unlock(&_zp_tcache_lock);
	return c;
}
