/*
 * zp_pool.c - pool lifetime (create, destroy) and the requests that are
 * not get/put: preallocate, trim, names and class lookup.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_arena.h"
#include "zp_config.h"
#include "zp_fork.h"
#include "zp_os.h"
#include "zp_poison.h"
#include "zp_tcache.h"

/* ---- lifetime ------------------------------------------------------------ */

static unsigned default_shards(void)
{
	unsigned n = _zp_os_cpu_count(), s = 2;
	while (s < n && s < 256)
		s <<= 1;
	return s;
}

/* The entry layer's counters, read by zp_stats while other threads write
 * them (zp_poison.h). */
_Static_assert(offsetof(struct _zp_pool_entry, idle_peak_reported) ==
		   offsetof(struct _zp_pool_entry, oversize_gets) + 3 * sizeof(uint64_t),
	       "the entry layer's four counters are annotated as one range");
#define ENTRY_COUNTERS_BYTES (4 * sizeof(uint64_t))

static void pool_free(zp_pool *pool)
{
	_zp_hg_counters_gone(&pool->entry.oversize_gets, ENTRY_COUNTERS_BYTES);
	_zp_maintain_stop(pool);
	_zp_decay_fini(pool);
	pthread_mutex_destroy(&pool->decay.lock);
	_zp_store_fini(pool);
	_zp_tcache_pool_fini(pool);
	_zp_meta_free(pool);
}

zp_pool *zp_pool_create(const zp_config *cfg)
{
	zp_config defaults;
	if (cfg == NULL) {
		zp_config_init(&defaults);
		cfg = &defaults;
	}
	if (_zp_config_check(cfg) != 0)
		return NULL;
	const struct zp_backend_ops *ops = _zp_backend_resolve(cfg->backend);
	if (ops == NULL)
		return NULL;
	zp_pool *pool = _zp_meta_alloc(sizeof *pool);
	if (pool == NULL)
		return NULL;
	pool->tag = (uintptr_t)pool; /* 64-byte aligned: see _ZP_OWNED */
	_zp_hg_counters(&pool->entry.oversize_gets, ENTRY_COUNTERS_BYTES);
	pool->cfg = *cfg;
	pool->cfg.backend = ops->name;
	pool->ops = ops;
	pool->slot = ZP_MAX_POOLS;
	pool->depth =
	    cfg->cache_bytes == 0 && cfg->cache_depth == ZP_CACHE_DEPTH_AUTO ? 0 : cfg->cache_depth;
	if (pool->depth == ZP_CACHE_DEPTH_AUTO) /* the most one transfer moves */
		pool->batch = cfg->batch ? cfg->batch : ZP_MAX_CACHE_DEPTH / 2;
	else
		pool->batch = cfg->batch ? cfg->batch : (pool->depth / 2 ? pool->depth / 2 : 1);
	if (pool->cfg.shards == 0)
		pool->cfg.shards = default_shards();
	pthread_mutex_init(&pool->decay.lock, NULL);
	if (_zp_store_init(pool) != 0 || _zp_decay_init(pool) != 0) {
		int err = errno; /* ENOMEM, or the backend's EAGAIN */
		pool_free(pool);
		errno = err;
		return NULL;
	}
	_zp_tcache_pool_init(pool);
	if (_zp_fork_track(pool) != 0) {
		pool_free(pool);
		return NULL;
	}
	if (_zp_maintain_start(pool) != 0) {
		int err = errno;
		_zp_fork_untrack(pool);
		pool_free(pool);
		errno = err;
		return NULL;
	}
	return pool;
}

void zp_pool_destroy(zp_pool *pool)
{
	if (pool == NULL)
		return;
	/* First off the fork handlers' list: from here on they do not lock the
	 * pool's mutexes, which fini and pool_free destroy (a fork meanwhile
	 * gives the child a pool being destroyed, which it cannot use). */
	_zp_fork_untrack(pool);
	_zp_maintain_stop(pool); /* its thread must not see buffers being freed */
	_zp_tcache_detach_all(pool);
	_zp_store_free_all_data(pool);
	pool_free(pool);
}

/* ---- requests that are not get/put ------------------------------------ */

long zp_preallocate(zp_pool *pool, size_t count, size_t size)
{
	if (pool == NULL || size > pool->cfg.max_size) {
		errno = EINVAL;
		return -1;
	}
	unsigned cls = _zp_store_class_of(pool, size);
	uint64_t charge = _zp_store_class_charge(pool, cls);
	long placed = 0;
	uint64_t idle = _zp_store_idle_charge(pool); /* a sum over the classes: once */
	for (size_t i = 0; i < count; i++, idle += charge) {
		if ((size_t)pool->ops->count(pool->store, cls) >= pool->cfg.max_per_class ||
		    idle + charge > pool->cfg.max_idle_bytes)
			break;
		zp_buf *b = _zp_store_buf_new(pool, cls, 0, _zp_tcache_hint());
		if (b == NULL)
			return -1;
		b->_zp_owner = _ZP_OWNED(pool->tag, b) | _ZP_OWNER_IDLE;
		_zp_poison(b->data, b->cap);
		/* A concurrent give may have filled the store meanwhile: then
		 * something was freed (b, or an older buffer), and we stop. */
		if (_zp_store_give(pool, _zp_tcache_hint(), cls, &b, 1, NULL) != 0)
			break;
		placed++;
	}
	return placed;
}

size_t zp_trim(zp_pool *pool)
{
	if (pool == NULL) {
		errno = EINVAL;
		return (size_t)-1;
	}
	uint64_t n = 0;
	struct _zp_freed f = {0, 0};
	size_t freed = _zp_tcache_trim_self(pool, &n, &f);
	freed += _zp_tcache_trim_others(pool, &n, &f);
	unsigned hint = _zp_tcache_hint();
	for (unsigned cls = 0; cls < pool->classes; cls++)
		freed += _zp_store_drain(pool, hint, cls, &n);
	/* Once for the whole trim: every free arena page, also those that
	 * earlier evictions left (a trim gives back all), and malloc's heap. */
	(void)_zp_arena_purge();
	f.arena = 0; /* purged just above */
	_zp_os_give_back(&f);
	zp_atomic_add_relaxed(&pool->entry.trimmed, n);
	return freed;
}

long zp_maintain(zp_pool *pool)
{
	if (pool == NULL) {
		errno = EINVAL;
		return -1;
	}
	long given = _zp_decay_run(pool);
	if (pool->decay.tick_ns == 0)
		return given;
	/* the caller's own cache, as its slow paths do, and the others */
	zp_cache *c = _zp_cache_peek(pool);
	if (c != NULL) {
		struct _zp_tcache *tc = _zp_tcache_of(c);
		_zp_tcache_enter(tc);
		_zp_tcache_decay_poll(tc);
		_zp_tcache_leave(tc);
	}
	return given + _zp_tcache_decay_caches(pool, true);
}

const char *zp_backend_name(const zp_pool *pool)
{
	if (pool == NULL) {
		errno = EINVAL;
		return NULL;
	}
	return pool->ops->name;
}

int zp_class_of(const zp_pool *pool, size_t len)
{
	if (pool == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (len > pool->cfg.max_size) {
		errno = ERANGE;
		return -1;
	}
	return (int)_zp_store_class_of(pool, len);
}
