/*
 * zp_stats.c - summing per-thread counters into zp_stats.
 *
 * Counters of live caches are read under _zp_tcache_lock (so no cache is
 * freed meanwhile); counters of caches that are gone were folded into
 * pool->totals under the same lock.  Every counter has one writer (or is
 * an RMW), so each sum is at least every value its terms had before the
 * call.
 *
 * gets - puts must never go below zero while other threads run.  A
 * buffer's get happens before its put (on one thread, or through the
 * hand-off that passed the buffer), put counters are stored with release,
 * and a class's puts are all loaded (acquire) before any of its gets: so
 * for every put counted here its get is counted too.  Oversize buffers
 * follow the same order.
 *
 * Gauges that would need another thread's private state (the number of
 * buffers in its cache) are derived instead, clamped at zero:
 *   cached = live - idle - released - (pooled gets - pooled puts).
 * The store's gauges are per class (zp_store.h, struct _zp_store_class):
 * idle bytes are the backend's count times the class size, live bytes
 * live_buffers times it.
 */
#include <errno.h>
#include <string.h>

#include "zp_tcache.h"

/* Sums of one class's counters, indexed like struct _zp_class_counters. */
#define SUM(v, field) (v)[offsetof(struct _zp_class_counters, field) / sizeof(uint64_t)]

/* gets - puts, never below zero (a concurrent double put, which is not
 * detected, counts two puts for one get). */
static uint64_t held_by_callers(uint64_t gets, uint64_t puts)
{
	return gets > puts ? gets - puts : 0;
}

static uint64_t class_puts(zp_pool *pool, unsigned k)
{
	uint64_t puts = zp_atomic_load_acquire(&pool->totals[k].puts);
	const struct _zp_tcache *tc;
	LIST_FOREACH(tc, &pool->caches.list, link)
	puts += __atomic_load_n(&tc->pub.cls[k].puts, __ATOMIC_ACQUIRE);
	return puts;
}

static void sum_class(zp_pool *pool, unsigned k, struct zp_class_stats *o, uint64_t *refills,
		      uint64_t *drains)
{
	o->puts = class_puts(pool, k); /* first: see the comment at the top */
	uint64_t v[_ZP_NCOUNTERS];
	_Atomic uint64_t *t = (_Atomic uint64_t *)&pool->totals[k];
	for (size_t i = 0; i < _ZP_NCOUNTERS; i++)
		v[i] = zp_atomic_load_relaxed(&t[i]);
	const struct _zp_tcache *tc;
	LIST_FOREACH(tc, &pool->caches.list, link)
	{
		_Atomic uint64_t *from = (_Atomic uint64_t *)&tc->ctr[k];
		for (size_t i = 0; i < _ZP_NCOUNTERS; i++)
			v[i] += zp_atomic_load_relaxed(&from[i]);
		SUM(v, hits) += _zp_tcache_hits(tc, k);
	}
	o->size = pool->class_size[k];
	o->cache_hits = SUM(v, hits);
	o->store_hits = SUM(v, store_hits);
	o->fresh = SUM(v, fresh);
	o->gets = o->cache_hits + o->store_hits + o->fresh;
	o->evictions = SUM(v, evictions);
	o->discards = SUM(v, discards);
	o->idle_buffers = pool->ops->count(pool->store, k);
	/* A fixed depth is every cache's capacity for every class. */
	o->cache_limit_peak = pool->depth == ZP_CACHE_DEPTH_AUTO
				  ? zp_atomic_load_relaxed(&pool->sc[k].cache_limit_peak)
				  : pool->depth;
	*refills = SUM(v, refills);
	*drains = SUM(v, drains);
}

int zp_stats(zp_pool *pool, struct zp_stats *out)
{
	if (pool == NULL || out == NULL) {
		errno = EINVAL;
		return -1;
	}
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&_zp_tcache_lock);
	for (unsigned k = 0; k < pool->classes; k++) {
		struct zp_class_stats c;
		uint64_t rf, dr;
		sum_class(pool, k, &c, &rf, &dr);
		out->gets += c.gets;
		out->puts += c.puts;
		out->cache_hits += c.cache_hits;
		out->store_hits += c.store_hits;
		out->fresh += c.fresh;
		out->evictions += c.evictions;
		out->discards += c.discards;
		out->refills += rf;
		out->drains += dr;
		out->idle_buffers += c.idle_buffers;
		out->idle_bytes += c.idle_buffers * c.size;
	}
	out->threads = pool->caches.n;
	pthread_mutex_unlock(&_zp_tcache_lock);

	uint64_t ovp = zp_atomic_load_acquire(&pool->entry.oversize_puts);
	uint64_t ovg = zp_atomic_load_relaxed(&pool->entry.oversize_gets);
	uint64_t pooled_out = held_by_callers(out->gets, out->puts);
	out->oversize = ovg;
	out->gets += ovg;
	out->puts += ovp;
	out->outstanding = held_by_callers(out->gets, out->puts);
	out->trimmed = zp_atomic_load_relaxed(&pool->entry.trimmed);
	out->decayed = zp_atomic_load_relaxed(&pool->decay.given);
	struct zp_backend_stats bs = {0};
	pool->ops->stats(pool->store, &bs);
	out->contention = bs.contention;
	out->reclaimed = bs.reclaimed;
	out->grace_periods = bs.grace_periods;
	out->grace_ns = bs.grace_ns;
	out->grace_max_ns = bs.grace_max_ns;
	out->store_meta_bytes = bs.meta_bytes;
	out->idle_bytes = _zp_store_cap_idle(pool, out->idle_bytes);
	_zp_store_live(pool, &out->live_buffers, &out->live_bytes);
	_zp_store_released(pool, &out->released_buffers, &out->released_bytes);
	/* capped as idle_bytes is: a sum over the classes read while buffers
	 * move between them may count the moving ones twice */
	out->released_bytes = _zp_store_cap_idle(pool, out->released_bytes);
	/* Neither the classes' highs nor the live counts are monotonic: what
	 * was reported once stays the floor. */
	zp_atomic_max_relaxed(&pool->entry.idle_peak_reported,
			      _zp_store_idle_peak(pool, out->idle_bytes));
	out->idle_peak_bytes = zp_atomic_load_relaxed(&pool->entry.idle_peak_reported);
	uint64_t held = out->idle_buffers + out->released_buffers + pooled_out;
	out->cached_buffers = out->live_buffers > held ? out->live_buffers - held : 0;
	out->cache_borrowed = zp_atomic_load_relaxed(&pool->budget.lent);
	out->classes = pool->classes;
	return 0;
}

int zp_class_stats(zp_pool *pool, unsigned cls, struct zp_class_stats *out)
{
	if (pool == NULL || out == NULL || cls >= pool->classes) {
		errno = EINVAL;
		return -1;
	}
	uint64_t rf, dr;
	pthread_mutex_lock(&_zp_tcache_lock);
	sum_class(pool, cls, out, &rf, &dr);
	pthread_mutex_unlock(&_zp_tcache_lock);
	return 0;
}
