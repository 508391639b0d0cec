/*
 * zp_tcache_refill.c - a thread cache's miss path (zp_tcache.h): a get
 * that found its class empty takes the top of a batch refilled from the
 * store, a put that found its class full drains the coldest batch to the
 * store, and a class without capacity passes single buffers through.  The
 * entry points (zp_alloc.c) call it inside _zp_tcache_enter/leave, on the
 * cache's own thread; it owns every write to the slots and `count` outside
 * the inline paths of zeropool.h and the drains of zp_tcache_reclaim.c.
 */
#include <string.h>

#include "zp_tcache.h"

/* Buffers one refill or drain of a class with capacity lim moves: a fixed
 * cache moves `batch`; an adaptive one at most half its capacity, so that
 * a refill leaves room for puts and a drain keeps the hot half. */
static uint32_t transfer(const zp_pool *pool, uint32_t lim)
{
	if (pool->depth != ZP_CACHE_DEPTH_AUTO)
		return pool->batch;
	uint32_t half = lim / 2 ? lim / 2 : 1;
	return half < pool->batch ? half : pool->batch;
}

zp_buf *_zp_tcache_get_miss(struct _zp_tcache *tc, unsigned cls)
{
	zp_pool *pool = tc->pool;
	struct _zp_cache_class *cc = &tc->pub.cls[cls];
	uint32_t n = cc->count;
	if (n > 0) {
		/* A cache hit the inline path left: counted by the count. */
		_ZP_STORE(&cc->count, n - 1);
		return cc->slots[n - 1];
	}
	n = _zp_store_take(pool, tc->thread->hint, cls, cc->slots, transfer(pool, cc->limit));
	if (n == 0)
		return NULL;
	_ZP_ADD(pool, tc->ctr, cls, refills, 1);
	_ZP_ADD(pool, tc->ctr, cls, store_hits, 1);
	/* The top buffer is this get's (a store hit); the rest enter the
	 * slots, in the hit ledger before the count shows them
	 * (zp_tcache.h). */
	zp_buf *b = cc->slots[n - 1];
	_zp_tcache_moved_in(tc, cls, n - 1);
	_ZP_STORE_RELEASE(&cc->count, n - 1);
	/* The class refills from the store: it is busier than its capacity,
	 * so the next refill may bring more.  (Growing copies the `count`
	 * buffers the class holds.) */
	_zp_tcache_grow(tc, cls);
	return b;
}

void _zp_tcache_put_miss(struct _zp_tcache *tc, unsigned cls, zp_buf *b)
{
	struct _zp_cache_class *cc = &tc->pub.cls[cls];
	_ZP_COUNT_RELEASE(&cc->puts);
	uint32_t n = cc->count;
	if (n >= cc->limit && _zp_tcache_grow(tc, cls) == n) {
		/* Full and cannot grow: drain the coldest batch (the bottom),
		 * keep the hot top. */
		uint32_t k = transfer(tc->pool, n);
		_zp_tcache_drain(tc, cls, k);
		n -= k;
	}
	cc->slots[n] = b;
	_ZP_STORE_RELEASE(&cc->count, n + 1); /* after puts: the hit ledger */
}

void _zp_tcache_drain(struct _zp_tcache *tc, unsigned k, uint32_t n)
{
	zp_pool *pool = tc->pool;
	struct _zp_cache_class *cc = &tc->pub.cls[k];
	uint32_t count = cc->count;
	for (uint32_t done = 0; done < n;) {
		uint32_t m = n - done < pool->batch ? n - done : pool->batch;
		_zp_store_give(pool, tc->thread->hint, k, cc->slots + done, m, tc->ctr);
		_ZP_ADD(pool, tc->ctr, k, drains, 1); /* a cache -> store transfer */
		done += m;
	}
	memmove(cc->slots, cc->slots + n, (size_t)(count - n) * sizeof(zp_buf *));
	_ZP_STORE(&cc->count, count - n);
	_zp_tcache_moved_out(tc, k, n);
}
