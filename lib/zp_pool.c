/*
 * zp_pool.c - pool lifetime, size classes, buffer descriptors, and the
 * front end's side of the store (budget, victims, preallocation, trim).
 *
 * Descriptors live in slabs owned by the pool and are never freed before
 * it, so a stale or doubled zp_put() reads a descriptor that still exists
 * (and is refused), and lock-free stores may link through them safely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_internal.h"
#include "zp_poison.h"

#define SLAB_DESCS 64

/* One descriptor per cache line: no false sharing between buffers. */
struct _zp_desc {
	zp_buf b;
} ZP_ALIGNED_CL;

struct _zp_slab {
	struct _zp_slab *next;
	struct _zp_desc d[SLAB_DESCS];
};

#define SET_DATA(b, p) (*(unsigned char **)&(b)->data = (p))
#define SET_SIZE(field, v) (*(size_t *)&(field) = (v))

static zp_buf *desc_alloc(zp_pool *pool)
{
	pthread_mutex_lock(&pool->desc_lock);
	if (pool->desc_free == NULL) {
		struct _zp_slab *s = _zp_meta_alloc(sizeof *s);
		if (s == NULL) {
			pthread_mutex_unlock(&pool->desc_lock);
			return NULL;
		}
		s->next = pool->slabs;
		pool->slabs = s;
		for (int i = SLAB_DESCS - 1; i >= 0; i--) {
			s->d[i].b._zp_link[0] = pool->desc_free;
			pool->desc_free = &s->d[i].b;
		}
	}
	zp_buf *b = pool->desc_free;
	pool->desc_free = b->_zp_link[0];
	pthread_mutex_unlock(&pool->desc_lock);
	b->_zp_link[0] = NULL;
	return b;
}

static void desc_free(zp_pool *pool, zp_buf *b)
{
	b->_zp_owner = 0; /* a later put of this descriptor is refused */
	pthread_mutex_lock(&pool->desc_lock);
	b->_zp_link[0] = pool->desc_free;
	pool->desc_free = b;
	pthread_mutex_unlock(&pool->desc_lock);
}

static size_t oversize_cap(size_t len)
{
	size_t cap = (len + ZP_PAGE - 1) & ~(size_t)(ZP_PAGE - 1);
	return cap < len ? 0 : cap;
}

zp_buf *_zp_buf_new(zp_pool *pool, unsigned cls, size_t len)
{
	size_t cap = cls == _ZP_CLASS_OVERSIZE ? oversize_cap(len) : _zp_class_size(pool, cls);
	if (cap == 0) {
		errno = ENOMEM;
		return NULL;
	}
	zp_buf *b = desc_alloc(pool);
	if (b == NULL)
		return NULL;
	unsigned char *data = _zp_os_alloc(cap, pool->cfg.flags);
	if (data == NULL) {
		desc_free(pool, b);
		errno = ENOMEM;
		return NULL;
	}
	SET_DATA(b, data);
	SET_SIZE(b->cap, cap);
	SET_SIZE(b->len, len);
	b->_zp_class = cls;
	if (cls != _ZP_CLASS_OVERSIZE) {
		atomic_fetch_add_explicit(&pool->live_buffers, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&pool->live_bytes, cap, memory_order_relaxed);
	}
	return b;
}

void _zp_buf_free(zp_pool *pool, zp_buf *b)
{
	if (b->_zp_class != _ZP_CLASS_OVERSIZE) {
		atomic_fetch_sub_explicit(&pool->live_buffers, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&pool->live_bytes, b->cap, memory_order_relaxed);
	}
	_zp_os_free(b->data, b->cap);
	SET_DATA(b, NULL);
	desc_free(pool, b);
}

/* ---- the store, seen from the front end ------------------------------- */

unsigned _zp_store_give(zp_pool *pool, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			struct _zp_class_counters *ctr)
{
	size_t size = _zp_class_size(pool, cls);
	uint64_t want = (uint64_t)n * size;
	uint64_t before = atomic_fetch_add_explicit(&pool->idle_bytes, want, memory_order_relaxed);
	uint64_t budget = pool->cfg.max_idle_bytes;
	unsigned fit = n;
	if (before + want > budget) {
		fit = before >= budget ? 0 : (unsigned)((budget - before) / size);
		if (fit > n)
			fit = n;
		atomic_fetch_sub_explicit(&pool->idle_bytes, (uint64_t)(n - fit) * size,
					  memory_order_relaxed);
	}
	zp_buf *victims[ZP_MAX_CACHE_DEPTH];
	unsigned nv = 0;
	if (fit > 0) {
		nv = pool->ops->give(pool->store, hint, cls, in, fit, victims);
		zp_assert(nv <= fit);
		if (nv > 0)
			atomic_fetch_sub_explicit(&pool->idle_bytes, (uint64_t)nv * size,
						  memory_order_relaxed);
	}
	for (unsigned i = 0; i < nv; i++)
		_zp_buf_free(pool, victims[i]);
	for (unsigned i = fit; i < n; i++)
		_zp_buf_free(pool, in[i]);
	_ZP_ADD(pool, ctr, cls, drains, 1);
	_ZP_ADD(pool, ctr, cls, drain_bufs, n);
	if (nv)
		_ZP_ADD(pool, ctr, cls, evictions, nv);
	if (fit < n)
		_ZP_ADD(pool, ctr, cls, discards, n - fit);
	return nv + (n - fit);
}

unsigned _zp_store_take(zp_pool *pool, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	unsigned got = pool->ops->take(pool->store, hint, cls, out, n);
	zp_assert(got <= n);
	if (got > 0)
		atomic_fetch_sub_explicit(&pool->idle_bytes,
					  (uint64_t)got * _zp_class_size(pool, cls),
					  memory_order_relaxed);
	return got;
}

/* ---- lifetime --------------------------------------------------------- */

static int build_classes(zp_pool *pool)
{
	const zp_config *c = &pool->cfg;
	uint32_t s = (uint32_t)__builtin_ctzll(c->classes_per_doubling);
	uint32_t m = (uint32_t)__builtin_ctzll(c->min_size);
	pool->spacing_shift = s;
	pool->class_base = (m << s) + (1u << s) - 1;
	pool->classes = _zp_pool_class(pool, c->max_size) + 1;
	pool->class_size = _zp_meta_alloc(pool->classes * sizeof(size_t));
	pool->totals = _zp_meta_alloc(pool->classes * sizeof(struct _zp_class_counters));
	if (pool->class_size == NULL || pool->totals == NULL)
		return -1;
	pool->class_size[0] = c->min_size;
	for (unsigned k = 1; k < pool->classes; k++) {
		unsigned g = (k - 1) >> s;
		size_t i = ((k - 1) & (c->classes_per_doubling - 1)) + 1;
		size_t base = (size_t)1 << (m + g);
		pool->class_size[k] = base + i * (base >> s);
	}
	return 0;
}

static unsigned default_shards(void)
{
	unsigned n = _zp_cpu_count(), s = 2;
	while (s < n && s < 256)
		s <<= 1;
	return s;
}

static void pool_free(zp_pool *pool)
{
	if (pool->store != NULL)
		pool->ops->destroy(pool->store);
	struct _zp_slab *s = pool->slabs;
	while (s != NULL) {
		struct _zp_slab *next = s->next;
		_zp_meta_free(s);
		s = next;
	}
	if (pool->slot < ZP_MAX_POOLS)
		_zp_slot_release(pool->slot);
	pthread_mutex_destroy(&pool->desc_lock);
	_zp_meta_free(pool->class_size);
	_zp_meta_free(pool->totals);
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
	pool->tag = (uintptr_t)pool;
	pool->cfg = *cfg;
	pool->cfg.backend = ops->name;
	pool->ops = ops;
	pool->slot = ZP_MAX_POOLS;
	pthread_mutex_init(&pool->desc_lock, NULL);
	pool->depth = cfg->cache_depth;
	pool->batch = cfg->batch ? cfg->batch : (cfg->cache_depth / 2 ? cfg->cache_depth / 2 : 1);
	if (pool->cfg.shards == 0)
		pool->cfg.shards = default_shards();
	if (build_classes(pool) != 0) {
		pool_free(pool);
		errno = ENOMEM;
		return NULL;
	}
	struct zp_store_params p = {
	    .classes = pool->classes,
	    .class_size = pool->class_size,
	    .max_per_class = cfg->max_per_class,
	    .max_batch = pool->batch,
	    .shards = pool->cfg.shards,
	    .evict = cfg->evict,
	};
	pool->store = ops->create(&p);
	if (pool->store == NULL) {
		pool_free(pool);
		errno = ENOMEM;
		return NULL;
	}
	pool->slot = _zp_slot_acquire();
	return pool;
}

void zp_pool_destroy(zp_pool *pool)
{
	if (pool == NULL)
		return;
	_zp_tcache_detach_all(pool);
	/* Every buffer ever handed out has a descriptor in a slab: free the
	 * data of all that are not on the free list (idle, cached, held). */
	for (struct _zp_slab *s = pool->slabs; s != NULL; s = s->next)
		for (int i = 0; i < SLAB_DESCS; i++) {
			zp_buf *b = &s->d[i].b;
			if (b->data != NULL)
				_zp_os_free(b->data, b->cap);
		}
	pool_free(pool);
}

/* ---- requests that are not get/put ------------------------------------ */

long zp_preallocate(zp_pool *pool, size_t count, size_t size)
{
	if (pool == NULL || size > pool->cfg.max_size) {
		errno = EINVAL;
		return -1;
	}
	unsigned cls = _zp_pool_class(pool, size);
	size_t cap = _zp_class_size(pool, cls);
	long placed = 0;
	for (size_t i = 0; i < count; i++) {
		if ((size_t)pool->ops->count(pool->store, cls) >= pool->cfg.max_per_class ||
		    atomic_load(&pool->idle_bytes) + cap > pool->cfg.max_idle_bytes)
			break;
		zp_buf *b = _zp_buf_new(pool, cls, 0);
		if (b == NULL)
			return -1;
		b->_zp_owner = pool->tag | _ZP_OWNER_IDLE;
		_zp_poison(b->data, b->cap);
		/* A concurrent give may have filled the store meanwhile: then
		 * something was freed (b, or an older buffer), and we stop. */
		if (_zp_store_give(pool, _zp_thread_hint(), cls, &b, 1, NULL) != 0)
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
	size_t freed = 0;
	uint64_t n = 0;
	zp_cache *c = NULL;
	if (pool->slot < ZP_MAX_POOLS)
		c = _zp_tcache_peek(pool);
	for (unsigned cls = 0; cls < pool->classes; cls++) {
		if (c != NULL) {
			struct _zp_cache_class *cc = &c->cls[cls];
			uint32_t count = _ZP_LOAD(&cc->count);
			for (uint32_t i = 0; i < count; i++) {
				freed += cc->slots[i]->cap;
				_zp_buf_free(pool, cc->slots[i]);
			}
			n += count;
			_ZP_ADD(pool, _zp_tcache_of(c)->ctr, cls, trim_bufs, count);
			_ZP_STORE(&cc->count, 0);
		}
		zp_buf *batch[ZP_MAX_CACHE_DEPTH];
		unsigned got;
		while ((got = _zp_store_take(pool, _zp_thread_hint(), cls, batch, pool->batch)) >
		       0) {
			for (unsigned i = 0; i < got; i++) {
				freed += batch[i]->cap;
				_zp_buf_free(pool, batch[i]);
			}
			n += got;
		}
	}
	atomic_fetch_add(&pool->trimmed, n);
	return freed;
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
	return (int)_zp_pool_class(pool, len);
}
