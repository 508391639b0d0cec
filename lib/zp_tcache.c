/*
 * zp_tcache.c - per-thread, per-pool caches: thread tables, slots,
 * attaching a cache, retiring it at thread exit, detaching all of a pool's
 * caches at destroy, and trimming the calling thread's cache.  The locking
 * rules are in zp_tcache.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_poison.h"
#include "zp_tcache.h"

pthread_mutex_t _zp_tcache_lock = PTHREAD_MUTEX_INITIALIZER;

/* No class record straddles two cache lines (the block is line-aligned). */
_Static_assert(sizeof(struct _zp_cache_class) == 32, "a class record is 32 bytes");
_Static_assert((offsetof(struct _zp_tcache, pub) + offsetof(zp_cache, cls)) %
		       sizeof(struct _zp_cache_class) ==
		   0,
	       "class records start on 32-byte boundaries of the cache block");

/* Until a thread attaches its first cache, _zp_tcache_self points at this
 * table of NULLs; `self_table` tells them apart. */
static struct _zp_thread empty_table;

#define ZP_TLS __thread __attribute__((tls_model("initial-exec")))
ZP_EXPORT ZP_TLS struct _zp_thread *_zp_tcache_self = &empty_table;
static ZP_TLS struct _zp_thread *self_table; /* NULL until allocated */
static ZP_TLS bool self_gone;                /* the thread-exit destructor has run */
static ZP_TLS unsigned hint_p1;              /* shard hint + 1 for threads without a table */

static bool slot_used[ZP_MAX_POOLS];
static pthread_key_t exit_key;
static bool exit_key_made; /* under _zp_tcache_lock (not pthread_once:
			    * helgrind cannot see its ordering) */
static _Atomic unsigned next_hint;

/* ---- slots ------------------------------------------------------------ */

unsigned _zp_tcache_slot_acquire(void)
{
	unsigned slot = ZP_MAX_POOLS;
	pthread_mutex_lock(&_zp_tcache_lock);
	for (unsigned i = 0; i < ZP_MAX_POOLS; i++)
		if (!slot_used[i]) {
			slot_used[i] = true;
			slot = i;
			break;
		}
	pthread_mutex_unlock(&_zp_tcache_lock);
	return slot;
}

void _zp_tcache_slot_release(unsigned slot)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	slot_used[slot] = false;
	pthread_mutex_unlock(&_zp_tcache_lock);
}

unsigned _zp_tcache_hint(void)
{
	if (self_table != NULL)
		return self_table->hint;
	if (hint_p1 == 0)
		hint_p1 = zp_atomic_add_relaxed(&next_hint, 1) + 1;
	return hint_p1 - 1;
}

/* ---- counters ---------------------------------------------------------- */

/* Fold a cache's counters into the pool's totals (under _zp_tcache_lock,
 * when the cache goes away). */
static void fold_counters(zp_pool *pool, const struct _zp_tcache *tc)
{
	for (unsigned k = 0; k < pool->classes; k++) {
		_Atomic uint64_t *to = (_Atomic uint64_t *)&pool->totals[k];
		_Atomic uint64_t *from = (_Atomic uint64_t *)&tc->ctr[k];
		for (size_t i = 0; i < _ZP_NCOUNTERS; i++)
			zp_atomic_add_relaxed(&to[i], zp_atomic_load_relaxed(&from[i]));
		zp_atomic_add_relaxed(&pool->totals[k].hits, _zp_tcache_hits(tc, k));
		zp_atomic_add_relaxed(&pool->totals[k].puts, _ZP_LOAD(&tc->pub.cls[k].puts));
	}
}

/* ---- thread exit -------------------------------------------------------- */

static void unlink_cache(zp_pool *pool, struct _zp_tcache *tc)
{
	if (tc->prev != NULL)
		tc->prev->next = tc->next;
	else
		pool->caches = tc->next;
	if (tc->next != NULL)
		tc->next->prev = tc->prev;
	pool->ncaches--;
}

static bool slots_inline(const struct _zp_tcache *tc, unsigned k)
{
	return tc->pub.cls[k].slots == tc->inline_slots + (size_t)k * tc->init;
}

/* The counters zp_stats reads while the owner writes them (zp_poison.h):
 * out of helgrind's and DRD's checking while the cache lives. */
static void hg_counters(struct _zp_tcache *tc, bool on)
{
#if ZP_VALGRIND
	/* With them, what a drain reads or writes while the owner may run
	 * its inline paths (ordered by a membarrier, which checkers cannot
	 * see): the class records (count beside the counters), the counters
	 * and the hit ledger after them (one block), the words
	 * that close the inline paths, and the hand-off's flags. */
	unsigned k = tc->pool->classes;
	size_t n = k * (sizeof(struct _zp_class_counters) + sizeof(struct _zp_hit_ledger));
	size_t recs = k * sizeof(struct _zp_cache_class);
	if (on) {
		_zp_hg_counters(tc->pub.cls, recs);
		_zp_hg_counters(tc->ctr, n);
		_zp_hg_counters(&tc->pub.put_tag, 2 * sizeof(uintptr_t));
		_zp_hg_counters(&tc->in_slow, 2 * sizeof(uint32_t));
	} else {
		_zp_hg_counters_gone(tc->pub.cls, recs);
		_zp_hg_counters_gone(tc->ctr, n);
		_zp_hg_counters_gone(&tc->pub.put_tag, 2 * sizeof(uintptr_t));
		_zp_hg_counters_gone(&tc->in_slow, 2 * sizeof(uint32_t));
	}
#else
	(void)tc;
	(void)on;
#endif
}

/* Free a cache and the slot arrays its classes grew into. */
static void free_cache(struct _zp_tcache *tc)
{
	hg_counters(tc, false);
	for (unsigned k = 0; k < tc->pool->classes; k++)
		if (!slots_inline(tc, k))
			_zp_meta_free(tc->pub.cls[k].slots);
	_zp_meta_free(tc);
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

static void reopen_locked(struct _zp_tcache *tc);

/* Give a cache's buffers back to its pool's store (hottest last, so they
 * stay hot there) and free the cache. */
static void retire_cache(struct _zp_tcache *tc)
{
	zp_pool *pool = tc->pool;
	if (zp_atomic_load_relaxed(&tc->closed) != 0)
		reopen_locked(tc);
	for (unsigned k = 0; k < pool->classes; k++)
		_zp_tcache_drain(tc, k, tc->pub.cls[k].count);
	_zp_store_unborrow(pool, tc->borrowed);
	fold_counters(pool, tc);
	unlink_cache(pool, tc);
	if (pool->ops->thread_exit != NULL)
		pool->ops->thread_exit(pool->store);
	free_cache(tc);
}

static void thread_exit(void *arg)
{
	struct _zp_thread *t = arg;
	pthread_mutex_lock(&_zp_tcache_lock);
	for (unsigned i = 0; i < ZP_MAX_POOLS; i++)
		if (t->caches[i] != NULL)
			retire_cache(_zp_tcache_of(t->caches[i]));
	_zp_tcache_self = &empty_table;
	self_table = NULL;
	self_gone = true;
	pthread_mutex_unlock(&_zp_tcache_lock);
	_zp_meta_free(t);
}

void _zp_tcache_detach_all(zp_pool *pool)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	struct _zp_tcache *tc = pool->caches;
	while (tc != NULL) {
		struct _zp_tcache *next = tc->next;
		tc->thread->caches[pool->slot] = NULL;
		free_cache(tc);
		tc = next;
	}
	pool->caches = NULL;
	pool->ncaches = 0;
	pthread_mutex_unlock(&_zp_tcache_lock);
}

/* Zeroing pools take the slow path for every get: it zeroes. */
static size_t open_fast_limit(const zp_pool *pool)
{
	return (pool->cfg.flags & ZP_F_ZERO_ON_GET) ? 0 : pool->cfg.max_size + 1;
}

/* ---- attaching a cache --------------------------------------------------- */

static struct _zp_thread *this_thread(void)
{
	if (self_table != NULL)
		return self_table;
	if (self_gone)
		return NULL;
	pthread_mutex_lock(&_zp_tcache_lock);
	if (!exit_key_made)
		exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
	bool have_key = exit_key_made;
	pthread_mutex_unlock(&_zp_tcache_lock);
	if (!have_key) { /* the process ran out of keys: run uncached */
		errno = EAGAIN;
		return NULL;
	}
	struct _zp_thread *t = _zp_meta_alloc(sizeof *t);
	if (t == NULL)
		return NULL;
	t->hint = _zp_tcache_hint();
	if (pthread_setspecific(exit_key, t) != 0) {
		_zp_meta_free(t);
		return NULL;
	}
	self_table = t;
	_zp_tcache_self = t;
	return t;
}

zp_cache *_zp_tcache_attach(zp_pool *pool)
{
	if (pool->slot >= ZP_MAX_POOLS) {
		errno = EAGAIN;
		return NULL;
	}
	struct _zp_thread *t = this_thread();
	if (t == NULL) {
		if (self_gone)
			errno = EAGAIN;
		return NULL;
	}
	if (t->caches[pool->slot] != NULL)
		return t->caches[pool->slot];
	unsigned k = pool->classes;
	/* Every class starts with `init` slots in the cache's own block; an
	 * adaptive class that grows past them gets an array of its own. */
	uint32_t init = pool->depth == ZP_CACHE_DEPTH_AUTO ? ZP_CACHE_INIT : pool->depth;
	size_t head = offsetof(struct _zp_tcache, pub) + sizeof(zp_cache) +
		      k * sizeof(struct _zp_cache_class);
	size_t ctr_off = (head + 7) & ~(size_t)7;
	size_t ops_off =
	    ctr_off + k * (sizeof(struct _zp_class_counters) + sizeof(struct _zp_hit_ledger));
	size_t base_off = ops_off + k * sizeof(uint64_t);
	size_t slots_off = (base_off + k * sizeof(uint32_t) + 7) & ~(size_t)7;
	struct _zp_tcache *tc = _zp_meta_alloc(slots_off + (size_t)k * init * sizeof(zp_buf *));
	if (tc == NULL)
		return NULL;
	tc->thread = t;
	tc->pool = pool;
	tc->ctr = (struct _zp_class_counters *)((char *)tc + ctr_off);
	tc->decay_step = zp_atomic_load_relaxed(&pool->decay_steps);
	tc->idle_step = (uint32_t)tc->decay_step;
	tc->idle_ops = 0;
	tc->trim_pending = false;
	tc->picked = false;
	zp_atomic_store_relaxed(&tc->in_slow, 0);
	zp_atomic_store_relaxed(&tc->closed, 0);
	tc->inline_slots = (zp_buf **)((char *)tc + slots_off);
	hg_counters(tc, true);
	tc->init = init;
	zp_cache *c = &tc->pub;
	c->tag = pool->tag;
	c->put_tag = pool->tag;
	c->fast_limit = open_fast_limit(pool);
	uint32_t sh = pool->spacing_shift;
	unsigned m = (unsigned)__builtin_ctzll(pool->cfg.min_size);
	for (unsigned i = 0; i < 64; i++) { /* see struct zp_cache */
		bool small = i < m || i == 63;
		c->class_add[i] =
		    small ? -(int64_t)(i == 63) : (int64_t)(i << sh) - (int64_t)pool->class_base;
		c->class_shift[i] = (uint8_t)(small ? 63 : i - sh);
	}
	/* A fixed cache has its capacity from the start; an adaptive one gives
	 * a class capacity when it is first used (_zp_tcache_grow), so that
	 * cache_bytes goes to the classes this thread uses. */
	for (unsigned i = 0; i < k; i++) {
		c->cls[i].slots = tc->inline_slots + (size_t)i * init;
		c->cls[i].limit = pool->depth == ZP_CACHE_DEPTH_AUTO ? 0 : pool->depth;
	}
	pthread_mutex_lock(&_zp_tcache_lock);
	tc->next = pool->caches;
	if (tc->next != NULL)
		tc->next->prev = tc;
	pool->caches = tc;
	pool->ncaches++;
	t->caches[pool->slot] = c;
	pthread_mutex_unlock(&_zp_tcache_lock);
	return c;
}

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
		if (!slots_inline(tc, k))
			_zp_meta_free(cc->slots);
		cc->slots = s;
	}
	cc->limit = (uint32_t)want;
	tc->cap_bytes += (size_t)(want - lim) * size;
	zp_atomic_max_relaxed(&pool->sc[k].cache_limit_peak, cc->limit);
	return cc->limit;
}

/* ---- decay ----------------------------------------------------------------- */

/* Gets and puts of class k of tc so far (all counted by this thread). */
static uint64_t class_ops(const struct _zp_tcache *tc, unsigned k)
{
	const struct _zp_cache_class *cc = &tc->pub.cls[k];
	return _zp_tcache_hits(tc, k) + _ZP_LOAD(&cc->puts) +
	       zp_atomic_load_relaxed(&tc->ctr[k].store_hits) +
	       zp_atomic_load_relaxed(&tc->ctr[k].fresh);
}

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
	if (!slots_inline(tc, k)) {
		_zp_meta_free(cc->slots);
		cc->slots = tc->inline_slots + (size_t)k * tc->init;
	}
}

void _zp_tcache_decay(struct _zp_tcache *tc, uint64_t steps)
{
	zp_pool *pool = tc->pool;
	for (unsigned k = 0; k < pool->classes; k++) {
		uint64_t ops = class_ops(tc, k);
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
static void reopen_locked(struct _zp_tcache *tc)
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
	_ZP_STORE(&tc->pub.fast_limit, open_fast_limit(tc->pool));
	zp_atomic_store_relaxed(&tc->closed, 0);
}

void _zp_tcache_reopen(struct _zp_tcache *tc)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	reopen_locked(tc);
	bool trim = tc->trim_pending;
	tc->trim_pending = false;
	pthread_mutex_unlock(&_zp_tcache_lock);
	if (trim) {
		uint64_t n = 0;
		struct _zp_freed f = {0, 0};
		(void)trim_cache(tc, &n, &f);
		_zp_os_give_back(&f);
		zp_atomic_add_relaxed(&tc->pool->trimmed, n);
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
	for (struct _zp_tcache *tc = pool->caches; tc != NULL; tc = tc->next)
		if (tc->picked) {
			if (zp_atomic_load_relaxed(&tc->closed) == 0)
				close_cache(tc);
			any = true;
		}
	if (!any)
		return 0;
	bool barrier = _zp_os_membarrier() == 0;
	size_t freed = 0;
	for (struct _zp_tcache *tc = pool->caches; tc != NULL; tc = tc->next) {
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
	const struct _zp_thread *self = self_table;
	pthread_mutex_lock(&_zp_tcache_lock);
	for (struct _zp_tcache *tc = pool->caches; tc != NULL; tc = tc->next)
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
		ops += class_ops(tc, k);
	return ops;
}

long _zp_tcache_decay_caches(zp_pool *pool, bool wait)
{
	uint64_t steps = zp_atomic_load_relaxed(&pool->decay_steps);
	if (steps == zp_atomic_load_relaxed(&pool->caches_step))
		return 0;
	if (!wait) {
		if (pthread_mutex_trylock(&_zp_tcache_lock) != 0)
			return 0;
	} else {
		pthread_mutex_lock(&_zp_tcache_lock);
	}
	zp_atomic_store_relaxed(&pool->caches_step, steps);
	const struct _zp_thread *self = self_table;
	for (struct _zp_tcache *tc = pool->caches; tc != NULL; tc = tc->next) {
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
	zp_atomic_add_relaxed(&pool->decayed, n);
	return (long)n;
}
