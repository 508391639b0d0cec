/*
 * zp_store.c - size classes, buffer descriptors, and the front end's side of
 * the shared store: the idle-bytes budget, victims, draining.
 *
 * Descriptors live in slabs owned by the pool and are never freed before
 * it, so a stale or doubled zp_put() reads a descriptor that still exists
 * (and is refused), and lock-free stores may link through them safely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_arena.h"
#include "zp_os.h"
#include "zp_poison.h"
#include "zp_store.h"

#define SLAB_DESCS 64

/* One descriptor per cache line: no false sharing between buffers. */
struct _zp_desc {
	zp_buf b;
} ZP_ALIGNED_CL;
_Static_assert(_Alignof(struct _zp_desc) > (_ZP_OWNER_IDLE | _ZP_OWNER_OVERSIZE),
	       "_ZP_OWNED leaves the low bits of the owner word for the states");
_Static_assert(offsetof(struct zp_pool, idle_peak_reported) ==
		   offsetof(struct zp_pool, oversize_gets) + 3 * sizeof(uint64_t),
	       "the pool's four counters are annotated as one range (_zp_hg_counters)");

struct _zp_slab {
	struct _zp_slab *next;
	struct _zp_desc d[SLAB_DESCS];
};

#define SET_DATA(b, p) (*(unsigned char **)&(b)->data = (p))
#define SET_SIZE(field, v) (*(size_t *)&(field) = (v))

/* ---- classes ------------------------------------------------------------ */

/* Budget bytes a class reserves at a time: 256 KiB or 64 buffers, but no
 * more than budget / 16 (small budgets stay shared: a class that is short
 * also reclaims what other classes hold unused), and at least one buffer.
 * A chunk must hold a whole transfer (up to 256 buffers), or every drain
 * and refill of large buffers writes the pool-wide idle_reserved: with
 * budget / (4 x classes), 1.1 MiB at the defaults here, two threads
 * cycling 64 KiB buffers spent half of _zp_store_give in its CAS (perf). */
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
	pool->reserving = _zp_meta_alloc(MASK_WORDS(pool->classes) * sizeof(uint64_t));
	if (pool->class_size == NULL || pool->totals == NULL || pool->sc == NULL ||
	    pool->reserving == NULL)
		return -1;
	_zp_hg_counters(pool->totals, pool->classes * sizeof(struct _zp_class_counters));
	_zp_hg_counters(pool->sc, pool->classes * sizeof(struct _zp_store_class));
	_zp_hg_counters(&pool->oversize_gets, 4 * sizeof(uint64_t));
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

static bool budget_unlimited(const zp_pool *pool)
{
	return pool->cfg.max_idle_bytes == SIZE_MAX;
}

int _zp_store_init(zp_pool *pool)
{
	pthread_mutex_init(&pool->desc_lock, NULL);
	if (build_classes(pool) != 0) {
		errno = ENOMEM;
		return -1;
	}
	struct zp_store_params p = {
	    .classes = pool->classes,
	    .max_per_class = pool->cfg.max_per_class,
	    .max_buffers =
		budget_unlimited(pool) ? SIZE_MAX : pool->cfg.max_idle_bytes / pool->cfg.min_size,
	    .max_batch = pool->batch,
	    .shards = pool->cfg.shards,
	    .evict = pool->cfg.evict,
	};
	pool->store = pool->ops->create(&p);
	if (pool->store == NULL)
		return -1; /* errno from the backend: ENOMEM, or EAGAIN */
	size_t meta =
	    pool->ops->idle_meta != NULL ? pool->ops->idle_meta(pool->store) : sizeof(zp_buf *);
	for (unsigned k = 0; k < pool->classes; k++) {
		pool->sc[k].charge = _zp_os_footprint(pool->class_size[k]) +
				     sizeof(struct _zp_slab) / SLAB_DESCS + meta;
		pool->sc[k].chunk = budget_chunk(pool, pool->sc[k].charge);
	}
	return 0;
}

void _zp_store_free_all_data(zp_pool *pool)
{
	/* Every buffer ever handed out has a descriptor in a slab: free the
	 * data of all that are not on the free list (idle, cached, held). */
	for (struct _zp_slab *s = pool->slabs; s != NULL; s = s->next)
		for (int i = 0; i < SLAB_DESCS; i++) {
			zp_buf *b = &s->d[i].b;
			if (b->data != NULL)
				_zp_os_free(b->data, b->cap);
		}
	/* What the pool held leaves the RSS with it, not at the next purge. */
	(void)_zp_arena_purge();
}

void _zp_store_fini(zp_pool *pool)
{
	if (pool->store != NULL)
		pool->ops->destroy(pool->store);
	struct _zp_slab *s = pool->slabs;
	while (s != NULL) {
		struct _zp_slab *next = s->next;
		_zp_meta_free(s);
		s = next;
	}
	pthread_mutex_destroy(&pool->desc_lock);
	_zp_meta_free(pool->class_size);
	if (pool->totals != NULL)
		_zp_hg_counters_gone(pool->totals,
				     pool->classes * sizeof(struct _zp_class_counters));
	if (pool->sc != NULL)
		_zp_hg_counters_gone(pool->sc, pool->classes * sizeof(struct _zp_store_class));
	_zp_hg_counters_gone(&pool->oversize_gets, 4 * sizeof(uint64_t));
	_zp_meta_free(pool->totals);
	_zp_meta_free(pool->sc);
	_zp_meta_free(pool->reserving);
}

/* ---- descriptors and buffers --------------------------------------------- */

/* Descriptors come in lanes.  Every get and put writes its descriptor (the
 * owner word, the length).  Two threads that allocate fresh buffers at the
 * same time from one free list get alternate descriptors of a slab, and
 * then working_set of 4 KiB and 64 KiB at 2 threads, all cache hits, ran
 * 1-2 or 4-8 us per round of 256 from one process to the next, and
 * 2.5-3x faster with 128-byte descriptors, which double the descriptors'
 * memory (docs/design.md, "Two busy cores: descriptor lanes", where the
 * mechanism is discussed and left open).  So each slab belongs
 * to one lane, a thread allocates from its lane (its small id modulo
 * ZP_DESC_LANES), and a freed descriptor goes back to its slab's lane:
 * threads of different lanes never write neighbouring descriptors they
 * got fresh.  The cost is at most a part-used slab (4 KiB) per lane. */
static zp_buf *desc_alloc(zp_pool *pool, unsigned hint)
{
	unsigned lane = hint % ZP_DESC_LANES;
	pthread_mutex_lock(&pool->desc_lock);
	if (pool->desc_free[lane] == NULL) {
		struct _zp_slab *s = _zp_meta_alloc(sizeof *s);
		if (s == NULL) {
			pthread_mutex_unlock(&pool->desc_lock);
			return NULL;
		}
		s->next = pool->slabs;
		pool->slabs = s;
		for (int i = SLAB_DESCS - 1; i >= 0; i--) {
			s->d[i].b._zp_lane = lane;
			s->d[i].b._zp_link[0] = pool->desc_free[lane];
			pool->desc_free[lane] = &s->d[i].b;
		}
	}
	zp_buf *b = pool->desc_free[lane];
	pool->desc_free[lane] = b->_zp_link[0];
	pthread_mutex_unlock(&pool->desc_lock);
	b->_zp_link[0] = NULL;
	return b;
}

static void desc_free(zp_pool *pool, zp_buf *b)
{
	b->_zp_owner = 0; /* a later put of this descriptor is refused */
	pthread_mutex_lock(&pool->desc_lock);
	b->_zp_link[0] = pool->desc_free[b->_zp_lane];
	pool->desc_free[b->_zp_lane] = b;
	pthread_mutex_unlock(&pool->desc_lock);
}

static size_t oversize_cap(size_t len)
{
	size_t cap = (len + ZP_PAGE - 1) & ~(size_t)(ZP_PAGE - 1);
	return cap < len ? 0 : cap;
}

zp_buf *_zp_store_buf_new(zp_pool *pool, unsigned cls, size_t len, unsigned hint)
{
	size_t cap =
	    cls == _ZP_CLASS_OVERSIZE ? oversize_cap(len) : _zp_store_class_size(pool, cls);
	if (cap == 0) {
		errno = ENOMEM;
		return NULL;
	}
	zp_buf *b = desc_alloc(pool, hint);
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
	b->_zp_rec = cls != _ZP_CLASS_OVERSIZE ? _ZP_CLASS_REC(cls) : 0;
	if (cls != _ZP_CLASS_OVERSIZE)
		zp_atomic_add_relaxed(&pool->sc[cls].live_buffers, 1);
	return b;
}

void _zp_store_buf_free(zp_pool *pool, zp_buf *b)
{
	if (b->_zp_class != _ZP_CLASS_OVERSIZE)
		zp_atomic_sub_relaxed(&pool->sc[b->_zp_class].live_buffers, 1);
	/* data NULL first: a child forked while this runs must not free it
	 * again when it destroys the pool (at worst it leaks it) */
	unsigned char *data = b->data;
	SET_DATA(b, NULL);
	_zp_os_free(data, b->cap);
	desc_free(pool, b);
}

/* ---- the idle-bytes budget ----------------------------------------------- */

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
	uint64_t cur = zp_atomic_load_relaxed(&pool->idle_reserved);
	for (;;) {
		uint64_t left = cur < budget ? budget - cur : 0;
		uint64_t g = want < left ? want : left;
		if (g == 0)
			return 0;
		if (zp_atomic_cas_weak_relaxed(&pool->idle_reserved, &cur, cur + g))
			return g;
	}
}

/* Class cls got budget (reserved or reclaimed): mark it for
 * budget_reclaim (once; the bit stays, so the word is written at most once
 * per class). */
static void budget_mark(zp_pool *pool, unsigned cls)
{
	_Atomic uint64_t *w = &pool->reserving[cls / 64];
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
		uint64_t bits = zp_atomic_load_relaxed(&pool->reserving[w]);
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

/* Admit up to n buffers of class cls into the store's budget; returns how
 * many fit (their bytes are taken from the class's avail). */
static unsigned budget_admit(zp_pool *pool, unsigned cls, unsigned n, uint64_t size)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	if (budget_unlimited(pool))
		return n;
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

/* Bytes of class cls left the store: back to its unused reservation, and
 * what exceeds 2 chunks of it back to the pool. */
static void budget_release(zp_pool *pool, unsigned cls, uint64_t bytes)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	if (budget_unlimited(pool))
		return;
	uint64_t avail = zp_atomic_add_relaxed(&sc->avail, bytes) + bytes;
	while (avail > 2 * sc->chunk) {
		if (zp_atomic_cas_weak_relaxed(&sc->avail, &avail, sc->chunk)) {
			zp_atomic_sub_relaxed(&pool->idle_reserved, avail - sc->chunk);
			break;
		}
	}
}

/* Add bytes to a pool-wide gauge unless it would pass cap; true if added. */
static bool gauge_add_bounded(_Atomic uint64_t *gauge, uint64_t bytes, uint64_t cap)
{
	uint64_t cur = zp_atomic_load_relaxed(gauge);
	do {
		if (cur > cap || cap - cur < bytes)
			return false;
	} while (!zp_atomic_cas_weak_relaxed(gauge, &cur, cur + bytes));
	return true;
}

bool _zp_store_borrow(zp_pool *pool, uint64_t bytes)
{
	uint64_t cap =
	    budget_unlimited(pool) ? UINT64_MAX : pool->cfg.max_idle_bytes / ZP_CACHE_LEND_SHARE;
	if (!gauge_add_bounded(&pool->cache_borrowed, bytes, cap))
		return false;
	if (budget_unlimited(pool))
		return true;
	/* the lent bytes leave the budget like a class's reservation */
	uint64_t r = budget_reserve(pool, bytes, 0);
	if (r == bytes)
		return true;
	zp_atomic_sub_relaxed(&pool->idle_reserved, r);
	zp_atomic_sub_relaxed(&pool->cache_borrowed, bytes);
	return false;
}

void _zp_store_unborrow(zp_pool *pool, uint64_t bytes)
{
	if (bytes == 0)
		return;
	zp_atomic_sub_relaxed(&pool->cache_borrowed, bytes);
	if (!budget_unlimited(pool))
		zp_atomic_sub_relaxed(&pool->idle_reserved, bytes);
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

/* Sum a per-class buffer gauge of struct _zp_store_class (at byte offset
 * `field`) over the classes, in buffers and in bytes of capacity. */
static void sum_class_gauge(zp_pool *pool, size_t field, uint64_t *buffers, uint64_t *bytes)
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
	sum_class_gauge(pool, offsetof(struct _zp_store_class, live_buffers), buffers, bytes);
}

/* ---- released buffers ------------------------------------------------------ */

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
	if (!gauge_add_bounded(&pool->released_bytes, b->cap, pool->cfg.max_idle_bytes))
		return false;
	if (_zp_os_release_pages(b->data, b->cap, now) != 0) {
		zp_atomic_sub_relaxed(&pool->released_bytes, b->cap);
		return false;
	}
	struct _zp_store_class *sc = &pool->sc[cls];
	pthread_mutex_lock(&pool->desc_lock);
	b->_zp_link[0] = sc->released;
	sc->released = b;
	zp_atomic_store_relaxed(&sc->nreleased, zp_atomic_load_relaxed(&sc->nreleased) + 1);
	pthread_mutex_unlock(&pool->desc_lock);
	return true;
}

/* A buffer the budget refused, or decay took (`now`: its pages leave the RSS
 * at once): released if it can be, else freed.  (What
 * the store evicts for max_per_class is freed: a count bound the user set
 * is a bound on mappings too.) */
static void release_or_free(zp_pool *pool, unsigned cls, zp_buf *b, bool now)
{
	if (!release_keep(pool, cls, b, now))
		_zp_store_buf_free(pool, b);
}

/* Take up to n released buffers of class cls into out[0..n). */
static unsigned take_released(zp_pool *pool, unsigned cls, zp_buf **out, unsigned n)
{
	struct _zp_store_class *sc = &pool->sc[cls];
	if (n == 0 || zp_atomic_load_relaxed(&sc->nreleased) == 0)
		return 0;
	unsigned got = 0;
	pthread_mutex_lock(&pool->desc_lock);
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
	pthread_mutex_unlock(&pool->desc_lock);
	zp_atomic_sub_relaxed(&pool->released_bytes,
			      (uint64_t)got * _zp_store_class_size(pool, cls));
	return got;
}

void _zp_store_released(zp_pool *pool, uint64_t *buffers, uint64_t *bytes)
{
	sum_class_gauge(pool, offsetof(struct _zp_store_class, nreleased), buffers, bytes);
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
	unsigned fit = budget_admit(pool, cls, n, charge);
	zp_buf *victims[ZP_MAX_CACHE_DEPTH];
	unsigned nv = 0;
	if (fit > 0) {
		nv = pool->ops->give(pool->store, hint, cls, in, fit, victims);
		zp_assert(nv <= fit);
		if (nv > 0)
			budget_release(pool, cls, (uint64_t)nv * charge);
		if (fit > nv)
			idle_move(pool, cls, (int64_t)(fit - nv));
	}
	for (unsigned i = 0; i < nv; i++)
		_zp_store_buf_free(pool, victims[i]); /* max_per_class: a count the user set */
	for (unsigned i = fit; i < n; i++)
		release_or_free(pool, cls, in[i], false);
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
		budget_release(pool, cls, (uint64_t)got * _zp_store_class_charge(pool, cls));
		idle_move(pool, cls, -(int64_t)got);
	}
	return got;
}

unsigned _zp_store_take(zp_pool *pool, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	unsigned got = take_idle(pool, hint, cls, out, n);
	return got + take_released(pool, cls, out + got, n - got);
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
	pthread_mutex_lock(&pool->desc_lock);
	uint64_t r = zp_atomic_load_relaxed(&sc->nreleased);
	*released = r;
	*released_low = sc->released_low < r ? sc->released_low : r;
	sc->released_low = r;
	pthread_mutex_unlock(&pool->desc_lock);
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
			release_or_free(pool, cls, batch[i], true);
		done += got;
	}
	return done;
}

unsigned _zp_store_decay_released(zp_pool *pool, unsigned cls, unsigned n)
{
	zp_buf *batch[ZP_MAX_CACHE_DEPTH];
	unsigned done = 0;
	while (done < n) {
		unsigned want = n - done < ZP_MAX_CACHE_DEPTH ? n - done : ZP_MAX_CACHE_DEPTH;
		unsigned got = take_released(pool, cls, batch, want);
		if (got == 0)
			break;
		for (unsigned i = 0; i < got; i++)
			_zp_store_buf_free(pool, batch[i]);
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
	sum = _zp_store_cap_idle(pool, sum);
	/* Neither the highs (a lost update lowers one by a transfer) nor the
	 * live counts are monotonic: what was reported once stays the floor. */
	zp_atomic_max_relaxed(&pool->idle_peak_reported, sum);
	return zp_atomic_load_relaxed(&pool->idle_peak_reported);
}
