/*
 * zp_tcache_reclaim.c - taking buffers out of thread caches other than by
 * the owner's miss path: zp_trim of the caller's cache, the drain of other
 * threads' caches (zp_trim, and the decay of caches left idle), and the
 * owner's side of that hand-off (zp_tcache.h).
 */
#include <string.h>

#include "zp_tcache.h"

/* ---- trim ---------------------------------------------------------------- */

/* Free n buffers of slots (of one class); returns their bytes, adding
 * them to *f. */
static size_t free_slots(zp_pool *pool, zp_buf *const *slots, uint32_t n, struct _zp_freed *f)
{
	size_t freed = 0;
	for (uint32_t i = 0; i < n; i++) {
		size_t cap = slots[i]->cap;
		freed += cap;
		_zp_freed_add(f, cap, 1);
		_zp_store_buf_free(pool, slots[i]);
	}
	return freed;
}

static size_t trim_cache(struct _zp_tcache *tc, uint64_t *nbufs, struct _zp_freed *f)
{
	size_t freed = 0;
	for (unsigned cls = 0; cls < tc->pool->classes; cls++) {
		struct _zp_cache_class *cc = &tc->pub.cls[cls];
		uint32_t count = cc->count;
		freed += free_slots(tc->pool, cc->slots, count, f);
		*nbufs += count;
		_ZP_STORE(&cc->count, 0);
		_zp_tcache_moved_out(tc, cls, count);
	}
	return freed;
}

size_t _zp_tcache_trim_self(zp_pool *pool, uint64_t *nbufs, struct _zp_freed *f)
{
	zp_cache *c = _zp_cache_peek(pool);
	if (c == NULL)
		return 0;
	struct _zp_tcache *tc = _zp_tcache_of(c);
	_zp_tcache_enter(tc);
	size_t freed = trim_cache(tc, nbufs, f);
	_zp_tcache_leave(tc);
	return freed;
}

/* ---- draining another thread's cache ----------------------------------------- */

/*
 * The owner's inline paths take no lock and write `count` and the slots
 * with plain stores, yet zp_trim and the decay of idle caches take buffers
 * from caches of other threads, under _zp_tcache_lock, in this hand-off:
 *
 *   drainer                                 owner
 *   close: fast_limit 0, put_tag ^ 8,       inline get or put: reads
 *     closed 1                                fast_limit or put_tag, then
 *   membarrier()                              count, writes count
 *   in_slow 0?  take slots[base..count-1)   slow path: in_slow 1, compiler
 *     of each class; base = count - 1         fence, closed?  reopen under
 *   else leave it (closed stays)              _zp_tcache_lock
 *
 * After the membarrier every inline get or put that starts sees the closed
 * paths and goes to the slow path.  At most one started before and may
 * still run, on any class, and it read `count` as the drainer reads it now
 * (the owner is its only writer, and the membarrier made its last store
 * visible): a get pops slots[count - 1], a put writes slots[count].  So the
 * drainer takes what lies below slots[count - 1] and leaves that one.  The
 * slow path's store-then-load against the drainer's store-then-load is
 * Dekker's pattern with the membarrier as the fence of both sides (the
 * asymmetric fence of liburcu's memb flavour): either the drainer sees
 * in_slow and leaves the cache alone, or the owner sees `closed` and takes
 * _zp_tcache_lock, held by the drainer, before it touches its cache.  The
 * owner's reopen moves what stayed down to slots[0] and opens the paths;
 * the inline paths gain no instruction.  Without membarrier (an old kernel,
 * a seccomp filter) the drainer only closes the cache, and the owner trims
 * it on its next call.
 */

/* Tags are 64-byte aligned: a put_tag with this bit matches no owner word. */
#define CLOSED_TAG ((uintptr_t)8)

static void close_cache(struct _zp_tcache *tc)
{
	_ZP_STORE(&tc->pub.fast_limit, (size_t)0);
	_ZP_STORE(&tc->pub.put_tag, tc->pub.tag ^ CLOSED_TAG);
	zp_atomic_store_relaxed(&tc->closed, 1);
}

/* Under _zp_tcache_lock, on the owner's thread (or at its exit). */
void _zp_tcache_reopen_locked(struct _zp_tcache *tc)
{
	uint32_t *base = _zp_tcache_base(tc);
	for (unsigned k = 0; k < tc->pool->classes; k++) {
		if (base[k] == 0)
			continue;
		struct _zp_cache_class *cc = &tc->pub.cls[k];
		uint32_t n = cc->count - base[k];
		memmove(cc->slots, cc->slots + base[k], (size_t)n * sizeof(zp_buf *));
		_ZP_STORE(&cc->count, n);
		_zp_tcache_moved_out(tc, k, base[k]);
		base[k] = 0;
	}
	_ZP_STORE(&tc->pub.put_tag, tc->pub.tag);
	_ZP_STORE(&tc->pub.fast_limit, _zp_tcache_open_fast_limit(tc->pool));
	zp_atomic_store_relaxed(&tc->closed, 0);
}

void _zp_tcache_reopen(struct _zp_tcache *tc)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	_zp_tcache_reopen_locked(tc);
	bool trim = tc->trim_pending;
	tc->trim_pending = false;
	pthread_mutex_unlock(&_zp_tcache_lock);
	if (trim) {
		uint64_t n = 0;
		struct _zp_freed f = {0, 0};
		(void)trim_cache(tc, &n, &f);
		_zp_os_give_back(&f);
		zp_atomic_add_relaxed(&tc->pool->entry.trimmed, n);
	}
}

/* What a drain could take from tc: some class holds more than its top. */
static bool drainable(struct _zp_tcache *tc)
{
	const uint32_t *base = _zp_tcache_base(tc);
	for (unsigned k = 0; k < tc->pool->classes; k++)
		if (_ZP_LOAD(&tc->pub.cls[k].count) > base[k] + 1)
			return true;
	return false;
}

/* After the membarrier, with the owner out of its slow paths: free
 * slots[base..count-1) of every class. */
static size_t take_cache(struct _zp_tcache *tc, uint64_t *nbufs, struct _zp_freed *f)
{
	zp_pool *pool = tc->pool;
	uint32_t *base = _zp_tcache_base(tc);
	size_t freed = 0;
	for (unsigned k = 0; k < pool->classes; k++) {
		struct _zp_cache_class *cc = &tc->pub.cls[k];
		uint32_t top = _ZP_LOAD(&cc->count);
		if (top <= base[k] + 1)
			continue;
		uint32_t n = top - 1 - base[k];
		freed += free_slots(pool, cc->slots + base[k], n, f);
		*nbufs += n;
		base[k] = top - 1;
	}
	return freed;
}

/* Close the caches marked `picked`, then drain those whose owner is out of
 * its slow paths; for a trim, the others (and all, without membarrier)
 * get trim_pending.  (For decay, an owner in its slow path is back, and
 * without membarrier an owner decays its own cache when it returns.)
 * Under _zp_tcache_lock; what it freed is added to *f, for the caller to
 * give back after the lock. */
static size_t drain_picked(zp_pool *pool, bool trim, uint64_t *nbufs, struct _zp_freed *f)
{
	bool any = false;
	struct _zp_tcache *tc;
	LIST_FOREACH(tc, &pool->caches.list, link)
	if (tc->picked) {
		if (zp_atomic_load_relaxed(&tc->closed) == 0)
			close_cache(tc);
		any = true;
	}
	if (!any)
		return 0;
	bool barrier = _zp_os_membarrier() == 0;
	size_t freed = 0;
	LIST_FOREACH(tc, &pool->caches.list, link)
	{
		if (!tc->picked)
			continue;
		tc->picked = false;
		if (barrier && zp_atomic_load_acquire(&tc->in_slow) == 0) {
			_zp_hb_after(&tc->pub); /* the owner's inline paths, for checkers */
			freed += take_cache(tc, nbufs, f);
		} else if (trim) {
			tc->trim_pending = true;
		}
	}
	return freed;
}

size_t _zp_tcache_trim_others(zp_pool *pool, uint64_t *nbufs, struct _zp_freed *f)
{
	const struct _zp_thread *self = _zp_tcache_self;
	pthread_mutex_lock(&_zp_tcache_lock);
	struct _zp_tcache *tc;
	LIST_FOREACH(tc, &pool->caches.list, link)
	tc->picked = tc->thread != self && drainable(tc);
	size_t freed = drain_picked(pool, true, nbufs, f);
	pthread_mutex_unlock(&_zp_tcache_lock);
	return freed;
}

/* Gets and puts of every class of tc so far. */
static uint64_t cache_ops(const struct _zp_tcache *tc)
{
	uint64_t ops = 0;
	for (unsigned k = 0; k < tc->pool->classes; k++)
		ops += _zp_tcache_class_ops(tc, k);
	return ops;
}

long _zp_tcache_decay_caches(zp_pool *pool, bool wait)
{
	uint64_t steps = zp_atomic_load_relaxed(&pool->decay.steps);
	if (steps == zp_atomic_load_relaxed(&pool->caches.step))
		return 0;
	if (!wait) {
		if (pthread_mutex_trylock(&_zp_tcache_lock) != 0)
			return 0;
	} else {
		pthread_mutex_lock(&_zp_tcache_lock);
	}
	zp_atomic_store_relaxed(&pool->caches.step, steps);
	const struct _zp_thread *self = _zp_tcache_self;
	struct _zp_tcache *tc;
	LIST_FOREACH(tc, &pool->caches.list, link)
	{
		tc->picked = false;
		if (tc->thread == self)
			continue; /* the caller's own decays on its slow paths */
		uint64_t ops = cache_ops(tc);
		if (ops != tc->idle_ops || zp_atomic_load_relaxed(&tc->closed) != 0) {
			tc->idle_ops = ops; /* busy, or drained and not back yet */
			tc->idle_step = (uint32_t)steps;
			continue;
		}
		tc->picked = (uint32_t)steps - tc->idle_step >= ZP_DECAY_SLOTS && drainable(tc);
	}
	uint64_t n = 0;
	struct _zp_freed f = {0, 0};
	(void)drain_picked(pool, false, &n, &f);
	pthread_mutex_unlock(&_zp_tcache_lock);
	_zp_os_give_back(&f);
	zp_atomic_add_relaxed(&pool->decay.given, n);
	return (long)n;
}
