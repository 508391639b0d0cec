/*
 * zp_store_budget.c - the idle-bytes budget (max_idle_bytes): what an idle
 * buffer costs it (its charge), the chunks classes reserve, admitting
 * buffers into the store and releasing them, and the capacity lent to
 * thread caches (zp_store.h).
 */
#include <errno.h>

#include "zp_store.h"

/* Budget bytes a class reserves at a time: 256 KiB or 64 buffers, but no
 * more than budget / 16 (small budgets stay shared: a class that is short
 * also reclaims what other classes hold unused), and at least one buffer.
 * A chunk holds a whole transfer of most classes, so that drains and
 * refills of large buffers do not write the pool-wide budget.reserved on
 * every transfer (docs/measurements.md, the shared-store budget). */
#define CHUNK_MIN ((uint64_t)256 << 10)
#define CHUNK_BUFS 64

#define MASK_WORDS(classes) (((classes) + 63) / 64)

static uint64_t budget_chunk(const zp_pool *pool, size_t size)
{
	uint64_t chunk = (uint64_t)size * CHUNK_BUFS;
	if (chunk < CHUNK_MIN)
		chunk = CHUNK_MIN;
	uint64_t share = (uint64_t)pool->cfg.max_idle_bytes / 16;
	if (chunk > share)
		chunk = share;
	return chunk < size ? size : chunk;
}

int _zp_store_budget_init(zp_pool *pool)
{
	pool->budget.reserving = _zp_meta_alloc(MASK_WORDS(pool->classes) * sizeof(uint64_t));
	if (pool->budget.reserving == NULL)
		return -1;
	size_t meta =
	    pool->ops->idle_meta != NULL ? pool->ops->idle_meta(pool->store) : sizeof(zp_buf *);
	for (unsigned k = 0; k < pool->classes; k++) {
		pool->sc[k].charge =
		    _zp_os_footprint(pool->class_size[k]) + _zp_store_desc_share() + meta;
		pool->sc[k].chunk = budget_chunk(pool, pool->sc[k].charge);
	}
	return 0;
}

void _zp_store_budget_fini(zp_pool *pool)
{
	_zp_meta_free(pool->budget.reserving);
	pool->budget.reserving = NULL;
}

/* Budget flows (zp_store.h, struct _zp_store_class): the pool's
 * idle_reserved -> a class's avail -> buffers in the store, and back; and
 * idle_reserved -> cache_borrowed (capacity lent to thread caches).  Each
 * step takes from its source before adding to its destination, so that
 * (bytes in the store) + sum(avail) + cache_borrowed <= idle_reserved
 * <= max_idle_bytes holds at every instant. */

/* Grant a class max(need, chunk) bytes of the pool's budget, or what is
 * left of it if less; returns the bytes granted. */
static uint64_t budget_reserve(zp_pool *pool, uint64_t need, uint64_t chunk)
{
	uint64_t budget = pool->cfg.max_idle_bytes;
	uint64_t want = need > chunk ? need : chunk;
	uint64_t cur = zp_atomic_load_relaxed(&pool->budget.reserved);
	for (;;) {
		uint64_t left = cur < budget ? budget - cur : 0;
		uint64_t g = want < left ? want : left;
		if (g == 0)
			return 0;
		if (zp_atomic_cas_weak_relaxed(&pool->budget.reserved, &cur, cur + g))
			return g;
	}
}

/* Class cls got budget (reserved or reclaimed): mark it for
 * budget_reclaim (once; the bit stays, so the word is written at most once
 * per class). */
static void budget_mark(zp_pool *pool, unsigned cls)
{
	_Atomic uint64_t *w = &pool->budget.reserving[cls / 64];
	uint64_t bit = (uint64_t)1 << (cls % 64);
	uint64_t x = zp_atomic_load_relaxed(w);
	while (!(x & bit) && !zp_atomic_cas_weak_relaxed(w, &x, x | bit))
		;
}

/* Take up to `need` unused bytes from the other classes that ever reserved
 * (the budget is spent); returns the bytes taken. */
static uint64_t budget_reclaim(zp_pool *pool, unsigned cls, uint64_t need)
{
	uint64_t got = 0;
	for (unsigned w = 0; w < MASK_WORDS(pool->classes) && got < need; w++) {
		uint64_t bits = zp_atomic_load_relaxed(&pool->budget.reserving[w]);
		while (bits != 0 && got < need) {
			unsigned k = w * 64 + (unsigned)__builtin_ctzll(bits);
			bits &= bits - 1;
			if (k == cls)
				continue;
			_Atomic uint64_t *a = &pool->sc[k].avail;
			uint64_t x = zp_atomic_load_relaxed(a);
			while (x > 0 && !zp_atomic_cas_weak_relaxed(a, &x, 0))
				;
			got += x;
		}
	}
	return got;
}

/* The budget's slow paths: admitting when the class's avail is short or
 * contended, and handing surplus back to the pool (the fast paths are
 * inline in zp_store.h, on every transfer). */
unsigned _zp_store_budget_admit_slow(zp_pool *pool, unsigned cls, unsigned n, uint64_t size)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	uint64_t want = (uint64_t)n * size;
	uint64_t avail = zp_atomic_load_relaxed(&sc->avail);
	unsigned fit = n, rounds = 0;
	for (;;) {
		if (avail >= want) {
			if (zp_atomic_cas_weak_relaxed(&sc->avail, &avail, avail - want))
				break;
			continue;
		}
		/* Short: reserve more (a few rounds: other threads of this
		 * class may use it first), then admit what fits. */
		uint64_t g = 0;
		if (rounds++ < 4) {
			g = budget_reserve(pool, want - avail, sc->chunk);
			if (g == 0)
				g = budget_reclaim(pool, cls, want - avail);
			if (g > 0)
				budget_mark(pool, cls);
		}
		if (g > 0) {
			avail = zp_atomic_add_relaxed(&sc->avail, g) + g;
			continue;
		}
		fit = (unsigned)(avail / size);
		want = (uint64_t)fit * size;
		if (fit == 0 || zp_atomic_cas_weak_relaxed(&sc->avail, &avail, avail - want))
			break;
		/* avail moved: start over for all n (a later success takes
		 * n * size bytes, so it must admit n) */
		fit = n;
		want = (uint64_t)n * size;
	}
	return fit;
}

void _zp_store_budget_surplus(zp_pool *pool, unsigned cls, uint64_t avail)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	while (avail > 2 * sc->chunk) {
		if (zp_atomic_cas_weak_relaxed(&sc->avail, &avail, sc->chunk)) {
			zp_atomic_sub_relaxed(&pool->budget.reserved, avail - sc->chunk);
			break;
		}
	}
}

bool _zp_store_borrow(zp_pool *pool, uint64_t bytes)
{
	uint64_t cap = _zp_store_budget_unlimited(pool)
			   ? UINT64_MAX
			   : pool->cfg.max_idle_bytes / ZP_CACHE_LEND_SHARE;
	if (!_zp_store_gauge_add_bounded(&pool->budget.lent, bytes, cap))
		return false;
	if (_zp_store_budget_unlimited(pool))
		return true;
	/* the lent bytes leave the budget like a class's reservation */
	uint64_t r = budget_reserve(pool, bytes, 0);
	if (r == bytes)
		return true;
	zp_atomic_sub_relaxed(&pool->budget.reserved, r);
	zp_atomic_sub_relaxed(&pool->budget.lent, bytes);
	return false;
}

void _zp_store_unborrow(zp_pool *pool, uint64_t bytes)
{
	if (bytes == 0)
		return;
	zp_atomic_sub_relaxed(&pool->budget.lent, bytes);
	if (!_zp_store_budget_unlimited(pool))
		zp_atomic_sub_relaxed(&pool->budget.reserved, bytes);
}

uint64_t _zp_store_cap_idle(const zp_pool *pool, uint64_t idle_bytes)
{
	uint64_t budget = pool->cfg.max_idle_bytes;
	return idle_bytes < budget ? idle_bytes : budget;
}

uint64_t _zp_test_class_charge(zp_pool *pool, size_t size)
{
	return _zp_store_class_charge(pool, _zp_store_class_of(pool, size));
}

uint64_t _zp_store_idle_charge(zp_pool *pool)
{
	uint64_t sum = 0;
	for (unsigned k = 0; k < pool->classes; k++)
		sum += (uint64_t)pool->ops->count(pool->store, k) * _zp_store_class_charge(pool, k);
	return _zp_store_cap_idle(pool, sum);
}
