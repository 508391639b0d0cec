/*
 * zp_tcache.c - per-thread, per-pool, per-class caches; the get/put entry
 * points and their slow paths; thread exit.
 *
 * Each thread has one table of cache pointers indexed by the pool's slot
 * (pools hold distinct slots while alive), reached through one
 * initial-exec TLS pointer: the hit path is a TLS load, an indexed load and
 * the inline zp_cache_get/zp_cache_put of zeropool.h.
 *
 * _zp_registry_lock orders everything that links caches, threads and
 * pools: cache creation, thread exit, pool destroy and stats.  Under it a
 * pool's cache list and every thread's table entries for other threads are
 * stable.  The owning thread reads its own table without the lock: an entry
 * is written by another thread only by zp_pool_destroy, which by contract
 * runs when no thread uses that pool, and a slot reused by a later pool is
 * ordered after the destroy by the lock and by the caller's own hand-off of
 * the new pool pointer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_internal.h"
#include "zp_poison.h"

pthread_mutex_t _zp_registry_lock = PTHREAD_MUTEX_INITIALIZER;

struct _zp_thread {
	/* [ZP_MAX_POOLS] is a sentinel that stays NULL: pools without a slot
	 * index it and take the uncached path. */
	zp_cache *caches[ZP_MAX_POOLS + 1];
	unsigned hint;
};

/* Until a thread attaches its first cache, `self` points at this table of
 * NULLs, so the hot path needs no NULL test; `self_table` tells them apart. */
static struct _zp_thread empty_table;

#define ZP_TLS __thread __attribute__((tls_model("initial-exec")))
static ZP_TLS struct _zp_thread *self = &empty_table;
static ZP_TLS struct _zp_thread *self_table; /* NULL until allocated */
static ZP_TLS bool self_gone;                /* the thread-exit destructor has run */
static ZP_TLS unsigned hint_p1;              /* shard hint + 1 for threads without a table */

static bool slot_used[ZP_MAX_POOLS];
static pthread_key_t exit_key;
static bool exit_key_made; /* under _zp_registry_lock (not pthread_once:
			    * helgrind cannot see its ordering) */
static _Atomic unsigned next_hint;

/* ---- slots ------------------------------------------------------------ */

unsigned _zp_slot_acquire(void)
{
	unsigned slot = ZP_MAX_POOLS;
	pthread_mutex_lock(&_zp_registry_lock);
	for (unsigned i = 0; i < ZP_MAX_POOLS; i++)
		if (!slot_used[i]) {
			slot_used[i] = true;
			slot = i;
			break;
		}
	pthread_mutex_unlock(&_zp_registry_lock);
	return slot;
}

void _zp_slot_release(unsigned slot)
{
	pthread_mutex_lock(&_zp_registry_lock);
	slot_used[slot] = false;
	pthread_mutex_unlock(&_zp_registry_lock);
}

unsigned _zp_thread_hint(void)
{
	if (self_table != NULL)
		return self_table->hint;
	if (hint_p1 == 0)
		hint_p1 = atomic_fetch_add_explicit(&next_hint, 1, memory_order_relaxed) + 1;
	return hint_p1 - 1;
}

zp_cache *_zp_tcache_peek(const zp_pool *pool)
{
	return self->caches[pool->slot];
}

/* ---- counters ---------------------------------------------------------- */

/* Cache hits of one class of one cache, derived (see zp_internal.h). */
uint64_t _zp_tcache_hits(const struct _zp_tcache *tc, unsigned k)
{
	const struct _zp_class_counters *c = &tc->ctr[k];
	const struct _zp_cache_class *cc = &tc->pub.cls[k];
	return _ZP_LOAD(&cc->puts) + _ZP_LOAD(&c->refill_bufs) - _ZP_LOAD(&c->drain_bufs) -
	       _ZP_LOAD(&c->trim_bufs) - _ZP_LOAD(&cc->count);
}

/* Fold a cache's counters into the pool's totals (under the registry lock,
 * when the cache goes away). */
static void fold_counters(zp_pool *pool, const struct _zp_tcache *tc)
{
	for (unsigned k = 0; k < pool->classes; k++) {
		uint64_t *to = (uint64_t *)&pool->totals[k];
		const uint64_t *from = (const uint64_t *)&tc->ctr[k];
		for (size_t i = 0; i < _ZP_NCOUNTERS; i++)
			__atomic_fetch_add(&to[i], from[i], __ATOMIC_RELAXED);
		__atomic_fetch_add(&pool->totals[k].hits, _zp_tcache_hits(tc, k), __ATOMIC_RELAXED);
		__atomic_fetch_add(&pool->totals[k].puts, tc->pub.cls[k].puts, __ATOMIC_RELAXED);
	}
}

/* ---- thread exit -------------------------------------------------------- */

static void unlink_cache(zp_pool *pool, struct _zp_tcache *tc)
{
	if (tc->prev != NULL)
		tc->prev->next = tc->next;
	else
		pool->caches = tc->next;
	if (tc->next != NULL)
		tc->next->prev = tc->prev;
	pool->ncaches--;
}

/* Give a cache's buffers back to its pool's store (hottest last, so they
 * stay hot there) and free the cache. */
static void retire_cache(struct _zp_tcache *tc)
{
	zp_pool *pool = tc->pool;
	unsigned hint = tc->thread->hint;
	for (unsigned k = 0; k < pool->classes; k++) {
		struct _zp_cache_class *cc = &tc->pub.cls[k];
		uint32_t count = _ZP_LOAD(&cc->count);
		for (uint32_t done = 0; done < count;) {
			uint32_t n = count - done < pool->batch ? count - done : pool->batch;
			_zp_store_give(pool, hint, k, cc->slots + done, n, tc->ctr);
			done += n;
		}
		_ZP_STORE(&cc->count, 0);
	}
	fold_counters(pool, tc);
	unlink_cache(pool, tc);
	if (pool->ops->thread_exit != NULL)
		pool->ops->thread_exit(pool->store);
	_zp_meta_free(tc);
}

static void thread_exit(void *arg)
{
	struct _zp_thread *t = arg;
	pthread_mutex_lock(&_zp_registry_lock);
	for (unsigned i = 0; i < ZP_MAX_POOLS; i++)
		if (t->caches[i] != NULL)
			retire_cache(_zp_tcache_of(t->caches[i]));
	self = &empty_table;
	self_table = NULL;
	self_gone = true;
	pthread_mutex_unlock(&_zp_registry_lock);
	_zp_meta_free(t);
}

void _zp_tcache_detach_all(zp_pool *pool)
{
	pthread_mutex_lock(&_zp_registry_lock);
	struct _zp_tcache *tc = pool->caches;
	while (tc != NULL) {
		struct _zp_tcache *next = tc->next;
		tc->thread->caches[pool->slot] = NULL;
		_zp_meta_free(tc);
		tc = next;
	}
	pool->caches = NULL;
	pool->ncaches = 0;
	pthread_mutex_unlock(&_zp_registry_lock);
}

/* ---- attaching a cache --------------------------------------------------- */

static struct _zp_thread *this_thread(void)
{
	if (self_table != NULL)
		return self_table;
	if (self_gone)
		return NULL;
	pthread_mutex_lock(&_zp_registry_lock);
	if (!exit_key_made)
		exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
	bool have_key = exit_key_made;
	pthread_mutex_unlock(&_zp_registry_lock);
	if (!have_key) { /* the process ran out of keys: run uncached */
		errno = EAGAIN;
		return NULL;
	}
	struct _zp_thread *t = _zp_meta_alloc(sizeof *t);
	if (t == NULL)
		return NULL;
	t->hint = _zp_thread_hint();
	if (pthread_setspecific(exit_key, t) != 0) {
		_zp_meta_free(t);
		return NULL;
	}
	self_table = t;
	self = t;
	return t;
}

/* The calling thread's cache for pool, created if needed; NULL (errno set)
 * when the thread is exiting, the pool has no slot, or memory is short. */
static zp_cache *attach(zp_pool *pool)
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
	unsigned k = pool->classes, depth = pool->depth;
	size_t head = offsetof(struct _zp_tcache, pub) + sizeof(zp_cache) +
		      k * sizeof(struct _zp_cache_class);
	size_t ctr_off = (head + 7) & ~(size_t)7;
	size_t slots_off = ctr_off + k * sizeof(struct _zp_class_counters);
	struct _zp_tcache *tc = _zp_meta_alloc(slots_off + (size_t)k * depth * sizeof(zp_buf *));
	if (tc == NULL)
		return NULL;
	tc->thread = t;
	tc->pool = pool;
	tc->ctr = (struct _zp_class_counters *)((char *)tc + ctr_off);
	zp_buf **slots = (zp_buf **)((char *)tc + slots_off);
	zp_cache *c = &tc->pub;
	c->tag = pool->tag;
	/* Zeroing pools take the slow path for every get: it zeroes.  Debug
	 * checks and valgrind builds send every get and put there: it poisons
	 * idle buffers and cleans recycled ones (zp_poison.h). */
	c->fast_limit =
	    (pool->cfg.flags & ZP_F_ZERO_ON_GET) || _ZP_INSTRUMENTED ? 0 : pool->cfg.max_size + 1;
	c->min_size = pool->cfg.min_size;
	c->depth = _ZP_INSTRUMENTED ? 0 : depth;
	uint32_t sh = pool->spacing_shift;
	for (unsigned i = sh; i < 64; i++) {
		c->class_add[i] = (int64_t)(i << sh) - (int64_t)pool->class_base;
		c->class_shift[i] = (uint8_t)(i - sh);
	}
	for (unsigned i = 0; i < k; i++)
		c->cls[i].slots = slots + (size_t)i * depth;
	pthread_mutex_lock(&_zp_registry_lock);
	tc->next = pool->caches;
	if (tc->next != NULL)
		tc->next->prev = tc;
	pool->caches = tc;
	pool->ncaches++;
	t->caches[pool->slot] = c;
	pthread_mutex_unlock(&_zp_registry_lock);
	return c;
}

zp_cache *zp_thread_cache(zp_pool *pool)
{
	if (pool == NULL) {
		errno = EINVAL;
		return NULL;
	}
	zp_cache *c = _zp_tcache_peek(pool);
	return c != NULL ? c : attach(pool);
}

/* ---- slow paths ------------------------------------------------------------ */

static zp_buf *hand_out(zp_pool *pool, zp_buf *b, size_t len)
{
	_zp_unpoison(b->data, b->cap);
	_zp_hg_clean(b->data, b->cap);
	b->_zp_owner = pool->tag;
	*(size_t *)&b->len = len;
	if (pool->cfg.flags & ZP_F_ZERO_ON_GET)
		memset(b->data, 0, len);
	return b;
}

static zp_buf *get_oversize(zp_pool *pool, size_t len)
{
	zp_buf *b = _zp_buf_new(pool, _ZP_CLASS_OVERSIZE, len);
	if (b == NULL)
		return NULL;
	atomic_fetch_add_explicit(&pool->oversize_gets, 1, memory_order_relaxed);
	b->_zp_owner = pool->tag | _ZP_OWNER_OVERSIZE;
	if (pool->cfg.flags & ZP_F_ZERO_ON_GET)
		memset(b->data, 0, len);
	return b;
}

/* A get that the inline path did not serve; tc NULL means no cache. */
static zp_buf *get_miss(zp_pool *pool, struct _zp_tcache *tc, size_t len)
{
	if (len > pool->cfg.max_size)
		return get_oversize(pool, len);
	unsigned cls = _zp_pool_class(pool, len);
	struct _zp_class_counters *ctr = tc != NULL ? tc->ctr : NULL;
	unsigned hint = _zp_thread_hint();
	zp_buf *b;
	if (tc != NULL && pool->depth > 0) {
		struct _zp_cache_class *cc = &tc->pub.cls[cls];
		uint32_t n = _ZP_LOAD(&cc->count);
		if (n == 0) {
			n = _zp_store_take(pool, hint, cls, cc->slots, pool->batch);
			if (n == 0)
				goto fresh;
			_ZP_ADD(pool, ctr, cls, refills, 1);
			_ZP_ADD(pool, ctr, cls, refill_bufs, n - 1);
			_ZP_ADD(pool, ctr, cls, store_hits, 1);
		} /* else a cache hit of a zeroing pool: counted by the count */
		_ZP_STORE(&cc->count, n - 1);
		return hand_out(pool, cc->slots[n - 1], len);
	}
	if (_zp_store_take(pool, hint, cls, &b, 1) == 1) {
		_ZP_ADD(pool, ctr, cls, store_hits, 1);
		return hand_out(pool, b, len);
	}
fresh:
	b = _zp_buf_new(pool, cls, len);
	if (b == NULL)
		return NULL;
	_ZP_ADD(pool, ctr, cls, fresh, 1);
	return hand_out(pool, b, len);
}

/* Validate a put.  Returns 1 when b is a held pooled buffer of pool, 0
 * when it was an oversize buffer (now freed), -1 with errno otherwise. */
static int put_check(zp_pool *pool, zp_buf *b)
{
	if (b == NULL) {
		errno = EINVAL;
		return -1;
	}
	uintptr_t owner = b->_zp_owner;
	if (owner == pool->tag)
		return 1;
	if (owner == (pool->tag | _ZP_OWNER_OVERSIZE)) {
		atomic_fetch_add_explicit(&pool->oversize_puts, 1, memory_order_relaxed);
		_zp_buf_free(pool, b);
		return 0;
	}
	errno = owner == (pool->tag | _ZP_OWNER_IDLE) ? EALREADY : EINVAL;
	return -1;
}

/* A put that the inline path did not absorb; tc NULL means no cache. */
static int put_miss(zp_pool *pool, struct _zp_tcache *tc, zp_buf *b)
{
	int rc = put_check(pool, b);
	if (rc <= 0)
		return rc;
	unsigned cls = b->_zp_class, hint = _zp_thread_hint();
	b->_zp_owner = pool->tag | _ZP_OWNER_IDLE;
	_zp_hg_clean(b->data, b->cap);
	_zp_poison(b->data, b->cap);
	if (tc == NULL) {
		__atomic_fetch_add(&pool->totals[cls].puts, 1, __ATOMIC_RELAXED);
		_zp_store_give(pool, hint, cls, &b, 1, NULL);
		return 0;
	}
	struct _zp_cache_class *cc = &tc->pub.cls[cls];
	_ZP_COUNT(&cc->puts);
	if (pool->depth == 0) {
		_zp_store_give(pool, hint, cls, &b, 1, tc->ctr);
		return 0;
	}
	uint32_t n = _ZP_LOAD(&cc->count);
	if (n == pool->depth) {
		/* Full: drain the coldest batch (the bottom), keep the hot top. */
		uint32_t k = pool->batch;
		_zp_store_give(pool, hint, cls, cc->slots, k, tc->ctr);
		memmove(cc->slots, cc->slots + k, (n - k) * sizeof(zp_buf *));
		n -= k;
	}
	cc->slots[n] = b;
	_ZP_STORE(&cc->count, n + 1);
	return 0;
}

zp_buf *_zp_cache_get_slow(zp_cache *c, size_t len)
{
	struct _zp_tcache *tc = _zp_tcache_of(c);
	return get_miss(tc->pool, tc, len);
}

int _zp_cache_put_slow(zp_cache *c, zp_buf *b)
{
	struct _zp_tcache *tc = _zp_tcache_of(c);
	return put_miss(tc->pool, tc, b);
}

/* ---- the entry points ------------------------------------------------------ */

/* First use of a pool on this thread (or no cache possible), and NULL. */
static __attribute__((noinline)) zp_buf *get_first(zp_pool *pool, size_t len)
{
	if (pool == NULL) {
		errno = EINVAL;
		return NULL;
	}
	int saved = errno; /* running uncached is not an error */
	zp_cache *c = attach(pool);
	errno = saved;
	return c != NULL ? zp_cache_get(c, len) : get_miss(pool, NULL, len);
}

static __attribute__((noinline)) int put_first(zp_pool *pool, zp_buf *b)
{
	if (pool == NULL) {
		errno = EINVAL;
		return -1;
	}
	int saved = errno;
	zp_cache *c = attach(pool);
	errno = saved;
	return c != NULL ? zp_cache_put(c, b) : put_miss(pool, NULL, b);
}

/* The hot path: a TLS load, the table entry, then the inline cache code;
 * everything else is a tail call, so no stack frame is built. */
zp_buf *zp_get(zp_pool *pool, size_t len)
{
	if (ZP_LIKELY(pool != NULL)) {
		zp_cache *c = _zp_tcache_peek(pool);
		if (ZP_LIKELY(c != NULL))
			return zp_cache_get(c, len);
	}
	return get_first(pool, len);
}

int zp_put(zp_pool *pool, zp_buf *b)
{
	if (ZP_LIKELY(pool != NULL)) {
		zp_cache *c = _zp_tcache_peek(pool);
		if (ZP_LIKELY(c != NULL))
			return zp_cache_put(c, b);
	}
	return put_first(pool, b);
}
