/*
 * zp_tcache_capacity.c - how many buffers each class of a thread cache may
 * hold: a fixed depth, or an adaptive capacity within cache_bytes that
 * grows from ZP_CACHE_INIT by doubling, borrows from the idle budget, takes
 * room from the largest class, and goes back when a class sees no get or
 * put for decay_ms (zp_tcache.h).  On the owner's thread, in its slow
 * paths.
 */
#include <string.h>

#include "zp_tcache.h"

/* ---- adaptive capacity ----------------------------------------------------- */

uint32_t _zp_tcache_class_max(const zp_pool *pool, unsigned k)
{
	if (pool->depth != ZP_CACHE_DEPTH_AUTO)
		return pool->depth;
	size_t size = _zp_store_class_size(pool, k), bytes = pool->cfg.cache_bytes;
	if (size > bytes)
		return 0;
	size_t n = bytes / size; /* the most it could hold with what it may borrow: */
	return n < ZP_MAX_CACHE_DEPTH / ZP_CACHE_BORROW_FACTOR
		   ? (uint32_t)n * ZP_CACHE_BORROW_FACTOR
		   : ZP_MAX_CACHE_DEPTH;
}

static size_t cache_room(const struct _zp_tcache *tc)
{
	size_t cap = tc->pool->cfg.cache_bytes + tc->borrowed;
	return cap > tc->cap_bytes ? cap - tc->cap_bytes : 0;
}

/* The cache's capacity is short of `need` bytes: borrow cache_bytes, or
 * `need` if more (a growing cache borrows a few times, not at every
 * doubling), while the cache stays within ZP_CACHE_BORROW_FACTOR x
 * cache_bytes.  With a budget too small to lend that much, nothing is lent. */
static void borrow(struct _zp_tcache *tc, uint64_t need)
{
	zp_pool *pool = tc->pool;
	uint64_t own = pool->cfg.cache_bytes;
	if (own > UINT64_MAX / ZP_CACHE_BORROW_FACTOR)
		return; /* nothing to lend to a cache that large */
	uint64_t most = own * (ZP_CACHE_BORROW_FACTOR - 1) - tc->borrowed;
	uint64_t want = need > own ? need : own;
	if (want > most)
		want = need; /* the last step up to the factor */
	if (want <= most && _zp_store_borrow(pool, want))
		tc->borrowed += want;
}

/* The cache's byte capacity is spent and class k wants to grow to `wanted`
 * bytes: halve the capacity of the class that holds the most, if it holds
 * more than k would after growing (so capacity flows from the largest class
 * to the others and two busy classes do not trade it back and forth).  The
 * coldest buffers beyond the new capacity go to the store. */
static void steal(struct _zp_tcache *tc, unsigned k, uint64_t wanted)
{
	zp_pool *pool = tc->pool;
	unsigned v = pool->classes;
	uint64_t most = wanted;
	for (unsigned i = 0; i < pool->classes; i++) {
		uint64_t bytes = (uint64_t)tc->pub.cls[i].limit * _zp_store_class_size(pool, i);
		if (i != k && bytes > most) {
			most = bytes;
			v = i;
		}
	}
	if (v == pool->classes)
		return;
	struct _zp_cache_class *cv = &tc->pub.cls[v];
	uint32_t lim = cv->limit / 2 >= ZP_CACHE_INIT ? cv->limit / 2 : 0;
	uint32_t n = cv->count;
	if (n > lim)
		_zp_tcache_drain(tc, v, n - lim);
	tc->cap_bytes -= (size_t)(cv->limit - lim) * _zp_store_class_size(pool, v);
	cv->limit = lim;
}

/* Slow start: give a class ZP_CACHE_INIT slots on first use, then double
 * its capacity each time, as far as its own bound and the room left in the
 * cache's byte capacity allow, taking room from the largest class when
 * there is none left.  A failed allocation leaves
 * the capacity as it was (the caller then drains, which is always correct). */
uint32_t _zp_tcache_grow(struct _zp_tcache *tc, unsigned k)
{
	zp_pool *pool = tc->pool;
	struct _zp_cache_class *cc = &tc->pub.cls[k];
	uint32_t lim = cc->limit, max = _zp_tcache_class_max(pool, k);
	if (pool->depth != ZP_CACHE_DEPTH_AUTO || lim >= max)
		return lim;
	size_t size = _zp_store_class_size(pool, k);
	uint64_t want = lim ? 2 * (uint64_t)lim : ZP_CACHE_INIT;
	if (want > max)
		want = max;
	uint64_t need = (want - lim) * size;
	if (need > cache_room(tc))
		borrow(tc, need - cache_room(tc));
	if (need > cache_room(tc))
		steal(tc, k, want * size);
	if (need > cache_room(tc))
		want = lim + cache_room(tc) / size;
	if (want <= lim)
		return lim;
	if (want > tc->init) { /* past the slots in the cache's own block */
		zp_buf **s = _zp_meta_alloc((size_t)want * sizeof(zp_buf *));
		if (s == NULL)
			return lim;
		memcpy(s, cc->slots, (size_t)cc->count * sizeof(zp_buf *));
		if (!_zp_tcache_slots_inline(tc, k))
			_zp_meta_free(cc->slots);
		cc->slots = s;
	}
	cc->limit = (uint32_t)want;
	tc->cap_bytes += (size_t)(want - lim) * size;
	zp_atomic_max_relaxed(&pool->sc[k].cache_limit_peak, cc->limit);
	return cc->limit;
}

/* ---- decay of capacity -------------------------------------------------------------- */

/* Class k goes idle: its buffers to the store, its capacity up (an
 * adaptive cache gives it again on the next use, from 4 slots). */
static void class_retire(struct _zp_tcache *tc, unsigned k)
{
	zp_pool *pool = tc->pool;
	struct _zp_cache_class *cc = &tc->pub.cls[k];
	_zp_tcache_drain(tc, k, cc->count);
	if (pool->depth != ZP_CACHE_DEPTH_AUTO)
		return; /* a fixed depth keeps its capacity */
	tc->cap_bytes -= (size_t)cc->limit * _zp_store_class_size(pool, k);
	cc->limit = 0;
	if (!_zp_tcache_slots_inline(tc, k)) {
		_zp_meta_free(cc->slots);
		cc->slots = tc->inline_slots + (size_t)k * tc->init;
	}
}

void _zp_tcache_decay(struct _zp_tcache *tc, uint64_t steps)
{
	zp_pool *pool = tc->pool;
	for (unsigned k = 0; k < pool->classes; k++) {
		uint64_t ops = _zp_tcache_class_ops(tc, k);
		if (ops == _zp_tcache_decay_ops(tc)[k] &&
		    (tc->pub.cls[k].count > 0 ||
		     (pool->depth == ZP_CACHE_DEPTH_AUTO && tc->pub.cls[k].limit > 0)))
			class_retire(tc, k);
		_zp_tcache_decay_ops(tc)[k] = ops;
	}
	tc->decay_step = steps;
	size_t own = pool->cfg.cache_bytes;
	if (tc->borrowed > 0 && tc->cap_bytes < own + tc->borrowed) {
		size_t back = own + tc->borrowed - tc->cap_bytes;
		if (back > tc->borrowed)
			back = tc->borrowed;
		_zp_store_unborrow(pool, back);
		tc->borrowed -= back;
	}
}
