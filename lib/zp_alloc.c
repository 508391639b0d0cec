/*
 * zp_alloc.c - the entry points zp_get and zp_put, the slow paths behind the
 * inline cache code of zeropool.h (what is not the cache's: validation,
 * hand-out, oversize buffers, decay's turn), and zp_thread_cache.
 *
 * The hit path is zp_get/zp_put, inline in the caller through the header's
 * macros or here through the exported functions: a TLS load, the table
 * entry, then the inline cache code; everything else is a tail call, so no
 * stack frame is built.  A miss goes to the cache layer, which refills or
 * drains a batch through the store (zp_tcache_refill.c).
 */
#include <errno.h>
#include <string.h>

#include "zp_poison.h"
#include "zp_tcache.h"

/* ---- slow paths ------------------------------------------------------------ */

#if ZP_DEBUG_CHECKS || ZP_VALGRIND
/* The buffer is handed out: accessible, contents undefined, and no access
 * history for helgrind (its previous holder's writes are ordered before by
 * the pool). */
void _zp_instrument_get(zp_buf *b)
{
	_zp_unpoison(b->data, b->cap);
	_zp_hg_clean(b->data, b->cap);
}

/* The buffer goes idle: nobody may touch its data. */
void _zp_instrument_put(zp_buf *b)
{
	_zp_hg_clean(b->data, b->cap);
	_zp_poison(b->data, b->cap);
}
#endif
#if ZP_VALGRIND && !_ZP_TSAN
/* An inline get or put ends: it happens before a drain of the cache by
 * another thread (zp_tcache.c). */
void _zp_instrument_done(zp_cache *c)
{
	_zp_hb_before(c);
}
#endif

static zp_buf *hand_out(zp_pool *pool, zp_buf *b, size_t len)
{
	_zp_instrument_get(b);
	b->_zp_owner = _ZP_OWNED(pool->tag, b);
	*(size_t *)&b->len = len;
	if (pool->cfg.flags & ZP_F_ZERO_ON_GET)
		memset(b->data, 0, len);
	return b;
}

static zp_buf *get_oversize(zp_pool *pool, size_t len)
{
	zp_buf *b = _zp_store_buf_new(pool, _ZP_CLASS_OVERSIZE, len, _zp_tcache_hint());
	if (b == NULL)
		return NULL;
	zp_atomic_add_relaxed(&pool->entry.oversize_gets, 1);
	b->_zp_owner = _ZP_OWNED(pool->tag, b) | _ZP_OWNER_OVERSIZE;
	if (pool->cfg.flags & ZP_F_ZERO_ON_GET)
		memset(b->data, 0, len);
	return b;
}

/* Every slow path gives decay its turn: a step of the pool's when one is
 * due, and this thread's cache's when decay_ms passed since its last. */
static void decay_turn(zp_pool *pool, struct _zp_tcache *tc)
{
	_zp_decay_poll(pool);
	if (tc != NULL)
		_zp_tcache_decay_poll(tc);
	(void)_zp_tcache_decay_caches(pool, false);
}

/* A get that the inline path did not serve; tc NULL means no cache.  The
 * cache layer serves a class it caches (zp_tcache_refill.c); another takes
 * one buffer from the store; a fresh buffer when the store has none. */
static zp_buf *get_miss(zp_pool *pool, struct _zp_tcache *tc, size_t len)
{
	decay_turn(pool, tc);
	if (len > pool->cfg.max_size)
		return get_oversize(pool, len);
	unsigned cls = _zp_store_class_of(pool, len);
	struct _zp_class_counters *ctr = tc != NULL ? tc->ctr : NULL;
	unsigned hint = _zp_tcache_hint();
	zp_buf *b;
	if (tc != NULL && _zp_tcache_class_cached(tc, cls)) {
		b = _zp_tcache_get_miss(tc, cls);
		if (b != NULL)
			return hand_out(pool, b, len);
	} else if (_zp_store_take(pool, hint, cls, &b, 1) == 1) {
		_ZP_ADD(pool, ctr, cls, store_hits, 1);
		return hand_out(pool, b, len);
	}
	b = _zp_store_buf_new(pool, cls, len, hint);
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
	uintptr_t owner = b->_zp_owner, mine = _ZP_OWNED(pool->tag, b);
	if (owner == mine)
		return 1;
	if (owner == (mine | _ZP_OWNER_OVERSIZE)) {
		zp_atomic_add_release(&pool->entry.oversize_puts, 1);
		_zp_store_buf_free(pool, b);
		return 0;
	}
	errno = owner == (mine | _ZP_OWNER_IDLE) ? EALREADY : EINVAL;
	return -1;
}

/* A put that the inline path did not absorb; tc NULL means no cache.
 * Inline in its two callers: the backend path (no cache) runs it on every
 * put. */
static inline __attribute__((always_inline)) int put_miss(zp_pool *pool, struct _zp_tcache *tc,
							  zp_buf *b)
{
	int rc = put_check(pool, b);
	if (rc <= 0)
		return rc;
	decay_turn(pool, tc);
	unsigned cls = b->_zp_class;
	b->_zp_owner = _ZP_OWNED(pool->tag, b) | _ZP_OWNER_IDLE;
	_zp_instrument_put(b);
	struct _zp_class_counters *ctr = NULL;
	if (tc != NULL) {
		if (_zp_tcache_class_cached(tc, cls)) {
			_zp_tcache_put_miss(tc, cls, b);
			return 0;
		}
		_zp_tcache_put_passes(tc, cls);
		ctr = tc->ctr;
	} else {
		zp_atomic_add_release(&pool->totals[cls].puts, 1);
	}
	_zp_store_give(pool, _zp_tcache_hint(), cls, &b, 1, ctr);
	return 0;
}

zp_buf *_zp_cache_get_slow(zp_cache *c, size_t len)
{
	struct _zp_tcache *tc = _zp_tcache_of(c);
	_zp_tcache_enter(tc);
	zp_buf *b = get_miss(tc->pool, tc, len);
	_zp_tcache_leave(tc);
	return b;
}

int _zp_cache_put_slow(zp_cache *c, zp_buf *b)
{
	struct _zp_tcache *tc = _zp_tcache_of(c);
	_zp_tcache_enter(tc);
	int rc = put_miss(tc->pool, tc, b);
	_zp_tcache_leave(tc);
	return rc;
}

/* ---- the explicit handle ---------------------------------------------------- */

zp_cache *zp_thread_cache(zp_pool *pool)
{
	if (pool == NULL) {
		errno = EINVAL;
		return NULL;
	}
	zp_cache *c = _zp_cache_peek(pool);
	return c != NULL ? c : _zp_tcache_attach(pool);
}

/* ---- zp_get and zp_put ------------------------------------------------------ */

/* First use of a pool on this thread (or no cache possible), and NULL.
 * A call that needs no cache (oversize: served or refused; a refused put)
 * does not attach one: a refused call changes nothing. */
static __attribute__((noinline)) zp_buf *get_first(zp_pool *pool, size_t len)
{
	if (pool == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (len > pool->cfg.max_size)
		return get_oversize(pool, len);
	int saved = errno; /* running uncached is not an error */
	zp_cache *c = _zp_tcache_attach(pool);
	errno = saved;
	return c != NULL ? zp_cache_get(c, len) : get_miss(pool, NULL, len);
}

static __attribute__((noinline)) int put_first(zp_pool *pool, zp_buf *b)
{
	if (pool == NULL) {
		errno = EINVAL;
		return -1;
	}
	int rc = put_check(pool, b);
	if (rc <= 0)
		return rc; /* refused, or an oversize buffer (freed) */
	int saved = errno;
	zp_cache *c = _zp_tcache_attach(pool);
	errno = saved;
	return c != NULL ? zp_cache_put(c, b) : put_miss(pool, NULL, b);
}

/* The exported functions (the names in parentheses are not the header's
 * macros, which run the same hit path in the caller): a TLS load, the table
 * entry, then the inline cache code; everything else is a tail call, so no
 * stack frame is built. */
zp_buf *(zp_get)(zp_pool *pool, size_t len)
{
	if (ZP_LIKELY(pool != NULL)) {
		zp_cache *c = _zp_cache_peek(pool);
		if (ZP_LIKELY(c != NULL))
			return zp_cache_get(c, len);
	}
	return get_first(pool, len);
}

int(zp_put)(zp_pool *pool, zp_buf *b)
{
	if (ZP_LIKELY(pool != NULL)) {
		zp_cache *c = _zp_cache_peek(pool);
		if (ZP_LIKELY(c != NULL))
			return zp_cache_put(c, b);
	}
	return put_first(pool, b);
}
