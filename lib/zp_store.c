/*
 * zp_store.c - the store layer's core (zp_store.h): size classes, the
 * pool's store over the backend (create, destroy), give and take with the
 * budget and the idle gauge, and decay's view of the store.  Descriptors
 * are zp_store_desc.c, the budget zp_store_budget.c, released buffers
 * zp_store_released.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_os.h"
#include "zp_poison.h"
#include "zp_store.h"

/* ---- classes ------------------------------------------------------------ */

static int build_classes(zp_pool *pool)
{
	const zp_config *c = &pool->cfg;
	uint32_t s = (uint32_t)__builtin_ctzll(c->classes_per_doubling);
	uint32_t m = (uint32_t)__builtin_ctzll(c->min_size);
	pool->spacing_shift = s;
	pool->class_base = (m << s) + (1u << s) - 1;
	pool->classes = _zp_store_class_of(pool, c->max_size) + 1;
	pool->class_size = _zp_meta_alloc(pool->classes * sizeof(size_t));
	pool->totals = _zp_meta_alloc(pool->classes * sizeof(struct _zp_class_counters));
	pool->sc = _zp_meta_alloc(pool->classes * sizeof(struct _zp_store_class));
	if (pool->class_size == NULL || pool->totals == NULL || pool->sc == NULL)
		return -1;
	_zp_hg_counters(pool->totals, pool->classes * sizeof(struct _zp_class_counters));
	_zp_hg_counters(pool->sc, pool->classes * sizeof(struct _zp_store_class));
	pool->class_size[0] = c->min_size;
	for (unsigned k = 1; k < pool->classes; k++) {
		unsigned g = (k - 1) >> s;
		size_t i = ((k - 1) & (c->classes_per_doubling - 1)) + 1;
		size_t base = (size_t)1 << (m + g);
		pool->class_size[k] = base + i * (base >> s);
	}
	return 0;
}

/* ---- lifetime ------------------------------------------------------------ */

int _zp_store_init(zp_pool *pool)
{
	pthread_mutex_init(&pool->desc.lock, NULL);
	if (build_classes(pool) != 0) {
		errno = ENOMEM;
		return -1;
	}
	struct zp_store_params p = {
	    .classes = pool->classes,
	    .max_per_class = pool->cfg.max_per_class,
	    .max_buffers = _zp_store_budget_unlimited(pool)
			       ? SIZE_MAX
			       : pool->cfg.max_idle_bytes / pool->cfg.min_size,
	    .max_batch = pool->batch,
	    .shards = pool->cfg.shards,
	    .evict = pool->cfg.evict,
	};
	pool->store = pool->ops->create(&p);
	if (pool->store == NULL)
		return -1; /* errno from the backend: ENOMEM, or EAGAIN */
	if (_zp_store_budget_init(pool) != 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void _zp_store_fini(zp_pool *pool)
{
	if (pool->store != NULL)
		pool->ops->destroy(pool->store);
	_zp_store_desc_fini(pool);
	_zp_store_budget_fini(pool);
	_zp_meta_free(pool->class_size);
	if (pool->totals != NULL)
		_zp_hg_counters_gone(pool->totals,
				     pool->classes * sizeof(struct _zp_class_counters));
	if (pool->sc != NULL)
		_zp_hg_counters_gone(pool->sc, pool->classes * sizeof(struct _zp_store_class));
	_zp_meta_free(pool->totals);
	_zp_meta_free(pool->sc);
}

/* ---- gauges ---------------------------------------------------------------- */

/* Sum a per-class buffer gauge of struct _zp_store_class (at byte offset
 * `field`) over the classes, in buffers and in bytes of capacity. */
void _zp_store_sum_gauge(zp_pool *pool, size_t field, uint64_t *buffers, uint64_t *bytes)
{
	*buffers = *bytes = 0;
	for (unsigned k = 0; k < pool->classes; k++) {
		_Atomic uint64_t *g = (_Atomic uint64_t *)((char *)&pool->sc[k] + field);
		uint64_t n = zp_atomic_load_relaxed(g);
		*buffers += n;
		*bytes += n * _zp_store_class_size(pool, k);
	}
}

void _zp_store_live(zp_pool *pool, uint64_t *buffers, uint64_t *bytes)
{
	_zp_store_sum_gauge(pool, offsetof(struct _zp_store_class, live_buffers), buffers, bytes);
}

/* ---- the idle gauge ---------------------------------------------------------- */

/* n buffers entered (n > 0) or left (n < 0) the store of class cls: keep
 * its gauge, its low-water mark for decay and its high-water mark.  The
 * marks are a load and a store (a lost update moves a mark by a transfer,
 * which decay and the peak tolerate), on the class's line, which the
 * transfer's budget update has just written. */
static void idle_move(zp_pool *pool, unsigned cls, int64_t n)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	int64_t now = zp_atomic_add_relaxed(&sc->idle, n) + n;
	if (n < 0 && now < zp_atomic_load_relaxed(&sc->idle_low))
		zp_atomic_store_relaxed(&sc->idle_low, now);
	if (n > 0 && now > zp_atomic_load_relaxed(&sc->idle_high))
		zp_atomic_store_relaxed(&sc->idle_high, now);
}

/* ---- give and take --------------------------------------------------------- */

unsigned _zp_store_give(zp_pool *pool, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			struct _zp_class_counters *ctr)
{
	uint64_t charge = _zp_store_class_charge(pool, cls);
	unsigned fit = _zp_store_budget_admit(pool, cls, n, charge);
	zp_buf *victims[ZP_MAX_CACHE_DEPTH];
	unsigned nv = 0;
	if (fit > 0) {
		nv = pool->ops->give(pool->store, hint, cls, in, fit, victims);
		zp_assert(nv <= fit);
		if (nv > 0)
			_zp_store_budget_release(pool, cls, (uint64_t)nv * charge);
		if (fit > nv)
			idle_move(pool, cls, (int64_t)(fit - nv));
	}
	for (unsigned i = 0; i < nv; i++)
		_zp_store_buf_free(pool, victims[i]); /* max_per_class: a count the user set */
	for (unsigned i = fit; i < n; i++)
		_zp_store_release_or_free(pool, cls, in[i], false);
	if (nv)
		_ZP_ADD(pool, ctr, cls, evictions, nv);
	if (fit < n)
		_ZP_ADD(pool, ctr, cls, discards, n - fit);
	return nv + (n - fit);
}

/* Take up to n idle buffers of class cls from the backend, their bytes
 * back to the class's budget and out of its gauge. */
static unsigned take_idle(zp_pool *pool, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	unsigned got = pool->ops->take(pool->store, hint, cls, out, n);
	zp_assert(got <= n);
	if (got > 0) {
		_zp_store_budget_release(pool, cls,
					 (uint64_t)got * _zp_store_class_charge(pool, cls));
		idle_move(pool, cls, -(int64_t)got);
	}
	return got;
}

unsigned _zp_store_take(zp_pool *pool, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	unsigned got = take_idle(pool, hint, cls, out, n);
	return got + _zp_store_take_released(pool, cls, out + got, n - got);
}

size_t _zp_store_drain(zp_pool *pool, unsigned hint, unsigned cls, uint64_t *nbufs)
{
	size_t freed = 0;
	zp_buf *batch[ZP_MAX_CACHE_DEPTH];
	unsigned got;
	while ((got = _zp_store_take(pool, hint, cls, batch, pool->batch)) > 0) {
		for (unsigned i = 0; i < got; i++) {
			freed += batch[i]->cap;
			_zp_store_buf_free(pool, batch[i]);
		}
		*nbufs += got;
	}
	return freed;
}

/* ---- decay ------------------------------------------------------------------ */

static uint64_t clamp_count(int64_t v)
{
	return v > 0 ? (uint64_t)v : 0;
}

void _zp_store_decay_sample(zp_pool *pool, unsigned cls, uint64_t *idle, uint64_t *idle_low,
			    uint64_t *released, uint64_t *released_low)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	int64_t now = zp_atomic_load_relaxed(&sc->idle);
	int64_t low = zp_atomic_load_relaxed(&sc->idle_low);
	zp_atomic_store_relaxed(&sc->idle_low, now);
	*idle = clamp_count(now);
	*idle_low = clamp_count(low < now ? low : now);
	pthread_mutex_lock(&pool->desc.lock);
	uint64_t r = zp_atomic_load_relaxed(&sc->nreleased);
	*released = r;
	*released_low = sc->released_low < r ? sc->released_low : r;
	sc->released_low = r;
	pthread_mutex_unlock(&pool->desc.lock);
}

unsigned _zp_store_decay_idle(zp_pool *pool, unsigned cls, unsigned n)
{
	zp_buf *batch[ZP_MAX_CACHE_DEPTH];
	unsigned done = 0;
	while (done < n) {
		unsigned want = n - done < pool->batch ? n - done : pool->batch;
		unsigned got = take_idle(pool, 0, cls, batch, want);
		if (got == 0)
			break;
		for (unsigned i = 0; i < got; i++)
			_zp_store_release_or_free(pool, cls, batch[i], true);
		done += got;
	}
	return done;
}

uint64_t _zp_store_idle_peak(zp_pool *pool, uint64_t idle_now)
{
	uint64_t sum = 0;
	for (unsigned k = 0; k < pool->classes; k++)
		sum += clamp_count(zp_atomic_load_relaxed(&pool->sc[k].idle_high)) *
		       _zp_store_class_size(pool, k);
	if (sum < idle_now) /* the class highs lag the backend's counts */
		sum = idle_now;
	return _zp_store_cap_idle(pool, sum);
}
