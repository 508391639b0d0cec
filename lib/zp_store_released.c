/*
 * zp_store_released.c - released buffers: mapped buffers that the budget
 * refused, or decay took, keep their mapping and descriptor and give their
 * pages back, waiting on their class's list to be reused or unmapped
 * (zp_store.h).
 */
#include "zp_store.h"

/* A mapped buffer that the idle-bytes budget refuses is not unmapped: its
 * pages are given back (_zp_os_release_pages: MADV_FREE) and the buffer,
 * mapping and descriptor, waits on its class's released list.  A take that
 * finds the store empty takes it before allocating: reuse costs at most
 * page faults on the pages the user touches, not an munmap, an mmap and the
 * page tables of the whole mapping.  Released buffers hold address space
 * and page tables, and their pages until the kernel takes them; their
 * capacity is bounded by max_idle_bytes too (released_bytes), beyond which
 * buffers are freed as before.  Buffers of pools that lock or prefault
 * their pages, and those below _ZP_MMAP_MIN (malloc's), are freed.  The
 * lists are under desc_lock: releasing stands for a free and reusing for an
 * allocation, the two operations that lock already serialises, on the same
 * rare paths. */

static bool release_keep(zp_pool *pool, unsigned cls, zp_buf *b, bool now)
{
	if (b->cap < _ZP_MMAP_MIN || (pool->cfg.flags & (ZP_F_MLOCK | ZP_F_PREFAULT)))
		return false;
	if (!_zp_store_gauge_add_bounded(&pool->budget.released, b->cap, pool->cfg.max_idle_bytes))
		return false;
	if (_zp_os_release_pages(b->data, b->cap, now) != 0) {
		zp_atomic_sub_relaxed(&pool->budget.released, b->cap);
		return false;
	}
	struct _zp_store_class *sc = &pool->sc[cls];
	pthread_mutex_lock(&pool->desc.lock);
	b->_zp_link[0] = sc->released;
	sc->released = b;
	zp_atomic_store_relaxed(&sc->nreleased, zp_atomic_load_relaxed(&sc->nreleased) + 1);
	pthread_mutex_unlock(&pool->desc.lock);
	return true;
}

/* A buffer the budget refused, or decay took (`now`: its pages leave the RSS
 * at once): released if it can be, else freed.  (What
 * the store evicts for max_per_class is freed: a count bound the user set
 * is a bound on mappings too.) */
void _zp_store_release_or_free(zp_pool *pool, unsigned cls, zp_buf *b, bool now)
{
	if (!release_keep(pool, cls, b, now))
		_zp_store_buf_free(pool, b);
}

/* Take up to n released buffers of class cls into out[0..n). */
unsigned _zp_store_take_released(zp_pool *pool, unsigned cls, zp_buf **out, unsigned n)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	if (n == 0 || zp_atomic_load_relaxed(&sc->nreleased) == 0)
		return 0;
	unsigned got = 0;
	pthread_mutex_lock(&pool->desc.lock);
	while (got < n && sc->released != NULL) {
		zp_buf *b = sc->released;
		sc->released = b->_zp_link[0];
		b->_zp_link[0] = NULL;
		out[got++] = b;
	}
	uint64_t left = zp_atomic_load_relaxed(&sc->nreleased) - got;
	zp_atomic_store_relaxed(&sc->nreleased, left);
	if (left < sc->released_low)
		sc->released_low = left;
	pthread_mutex_unlock(&pool->desc.lock);
	zp_atomic_sub_relaxed(&pool->budget.released,
			      (uint64_t)got * _zp_store_class_size(pool, cls));
	return got;
}

void _zp_store_released(zp_pool *pool, uint64_t *buffers, uint64_t *bytes)
{
	_zp_store_sum_gauge(pool, offsetof(struct _zp_store_class, nreleased), buffers, bytes);
}

unsigned _zp_store_decay_released(zp_pool *pool, unsigned cls, unsigned n)
{
	zp_buf *batch[ZP_MAX_CACHE_DEPTH];
	unsigned done = 0;
	while (done < n) {
		unsigned want = n - done < ZP_MAX_CACHE_DEPTH ? n - done : ZP_MAX_CACHE_DEPTH;
		unsigned got = _zp_store_take_released(pool, cls, batch, want);
		if (got == 0)
			break;
		for (unsigned i = 0; i < got; i++)
			_zp_store_buf_free(pool, batch[i]);
		done += got;
	}
	return done;
}
