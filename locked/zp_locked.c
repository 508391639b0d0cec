/*
 * zp_locked.c - the mutex-sharded backend.
 *
 * The store is `shards` (a power of two) cache-line-aligned shards, each a
 * pthread mutex over one ring per class.  A ring is a bounded deque: gives
 * push at the top and takes pop from the top (LIFO, so the hottest buffer
 * is reused first); drop-coldest evicts from the bottom (the least recently
 * returned).  The class bound max_per_class is split across the shards: a
 * ring's `max` is its shard's share.
 *
 * Rings grow on demand, so that a large bound (UINT_MAX: no count bound)
 * costs nothing up front: a ring starts empty (no slot array) and a push
 * into a full ring below its max doubles it (RING_MIN_CAP first, at most
 * max), under the shard lock.  A failed growth leaves the ring as it was
 * and it counts as full: the buffer is refused (a victim), never an
 * eviction, which happens only at max.  Rings never shrink; destroy frees
 * their slot arrays.
 *
 * A thread works in its home shard (hint & mask).  take() then looks in
 * every other shard before giving up; give() tries the others only with
 * trylock (never waits) before evicting.  Drop-coldest evicts the least
 * recently returned buffer of the home shard (or of the first shard after
 * it that holds the class at all): "coldest" is per shard, the price of not
 * keeping one global order under one lock.  Every failed trylock counts as
 * contention.
 *
 * Synchronization: everything in a shard is guarded by its mutex, even
 * the counts read by count() and stats: no unlocked peeks, so helgrind and
 * DRD check this backend without annotations.  The contention counter is
 * the exception: it is bumped before the lock is held, with an atomic RMW.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>

#include "zp_backend.h"

/* The first slot array a ring allocates. */
#define RING_MIN_CAP 8u

struct ring {
	zp_buf **slot; /* [cap], NULL while cap is 0 */
	uint32_t cap;  /* slots allocated, at most max */
	uint32_t max;  /* this shard's share of max_per_class; set at create */
	uint32_t bottom;
	uint32_t count;
};

struct shard {
	pthread_mutex_t lock;
	_Atomic uint64_t contention;
	struct ring *rings; /* [classes] */
} ZP_ALIGNED_CL;

struct store {
	unsigned shards, mask, classes;
	zp_evict_policy evict;
	size_t fixed_bytes; /* this struct, its shards and rings */
	struct shard shard[];
};

/* The slot k places above the bottom (k <= cap; bottom + k may not fit in
 * uint32_t when cap is near max_per_class = UINT_MAX). */
static uint32_t at(const struct ring *r, uint32_t k)
{
	uint32_t room = r->cap - r->bottom;
	return k < room ? r->bottom + k : k - room;
}

static void push_top(struct ring *r, zp_buf *b)
{
	r->slot[at(r, r->count)] = b;
	r->count++;
}

static zp_buf *pop_top(struct ring *r)
{
	r->count--;
	return r->slot[at(r, r->count)];
}

static zp_buf *pop_bottom(struct ring *r)
{
	zp_buf *b = r->slot[r->bottom];
	r->bottom = at(r, 1);
	r->count--;
	return b;
}

/* Double the ring's slot array (RING_MIN_CAP the first time, at most
 * max), the buffers unwrapped to its start.  Under the shard lock.  False,
 * the ring unchanged, when it is at max or the allocation fails. */
static bool grow(struct ring *r)
{
	if (r->cap >= r->max)
		return false;
	uint32_t cap = r->cap == 0 ? RING_MIN_CAP : r->cap > r->max / 2 ? r->max : 2 * r->cap;
	if (cap > r->max)
		cap = r->max;
	int saved = errno; /* a refused buffer is no error of the caller's */
	zp_buf **slot = _zp_meta_alloc((size_t)cap * sizeof(zp_buf *));
	errno = saved;
	if (slot == NULL)
		return false;
	if (r->count > 0) {
		uint32_t first = r->cap - r->bottom < r->count ? r->cap - r->bottom : r->count;
		memcpy(slot, r->slot + r->bottom, first * sizeof(zp_buf *));
		memcpy(slot + first, r->slot, (r->count - first) * sizeof(zp_buf *));
	}
	_zp_meta_free(r->slot);
	r->slot = slot;
	r->cap = cap;
	r->bottom = 0;
	return true;
}

static void lock_shard(struct shard *sh)
{
	if (pthread_mutex_trylock(&sh->lock) != 0) {
		zp_atomic_add_relaxed(&sh->contention, 1);
		pthread_mutex_lock(&sh->lock);
	}
}

static bool trylock_shard(struct shard *sh)
{
	if (pthread_mutex_trylock(&sh->lock) == 0)
		return true;
	zp_atomic_add_relaxed(&sh->contention, 1);
	return false;
}

/* Shard locks spin a little before they sleep (glibc's adaptive mutex):
 * a critical section copies at most a batch of pointers, far shorter than
 * the futex sleep and wake a plain mutex pays when a producer and a
 * consumer meet on one shard.  Elsewhere: the default mutex. */
#if defined(__GLIBC__) && defined(__USE_GNU)
static pthread_mutexattr_t spin_attr;
static pthread_once_t spin_once = PTHREAD_ONCE_INIT;

static void spin_attr_init(void)
{
	if (pthread_mutexattr_init(&spin_attr) == 0)
		(void)pthread_mutexattr_settype(&spin_attr, PTHREAD_MUTEX_ADAPTIVE_NP);
}

static const pthread_mutexattr_t *spin_then_sleep(void)
{
	(void)pthread_once(&spin_once, spin_attr_init);
	return &spin_attr;
}
#else
static const pthread_mutexattr_t *spin_then_sleep(void)
{
	return NULL;
}
#endif

static void *locked_create(const struct zp_store_params *p)
{
	unsigned shards = p->shards ? p->shards : 1;
	size_t head = sizeof(struct store) + shards * sizeof(struct shard);
	size_t rings = (size_t)shards * p->classes * sizeof(struct ring);
	/* The rings' slot arrays are allocated as they grow. */
	struct store *s = _zp_meta_alloc(head + rings);
	if (s == NULL)
		return NULL;
	s->shards = shards;
	s->fixed_bytes = head + rings;
	s->mask = shards - 1;
	s->classes = p->classes;
	s->evict = p->evict;
	struct ring *r = (struct ring *)((char *)s + head);
	for (unsigned i = 0; i < shards; i++) {
		struct shard *sh = &s->shard[i];
		pthread_mutex_init(&sh->lock, spin_then_sleep());
		sh->rings = r;
		/* Each shard's class ring holds its share of max_per_class. */
		uint64_t max =
		    (uint64_t)p->max_per_class / shards + (i < p->max_per_class % shards);
		if (max > UINT32_MAX)
			max = UINT32_MAX;
		for (unsigned k = 0; k < p->classes; k++, r++)
			r->max = (uint32_t)max; /* slot NULL, cap 0 (zeroed) */
	}
	return s;
}

static void locked_destroy(void *store)
{
	struct store *s = store;
	for (unsigned i = 0; i < s->shards; i++) {
		pthread_mutex_destroy(&s->shard[i].lock);
		for (unsigned k = 0; k < s->classes; k++)
			_zp_meta_free(s->shard[i].rings[k].slot);
	}
	_zp_meta_free(s);
}

static unsigned locked_take(void *store, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	struct store *s = store;
	unsigned got = 0;
	for (unsigned j = 0; j < s->shards && got < n; j++) {
		struct shard *sh = &s->shard[(hint + j) & s->mask];
		struct ring *r = &sh->rings[cls];
		lock_shard(sh);
		while (got < n && r->count > 0)
			out[got++] = pop_top(r);
		pthread_mutex_unlock(&sh->lock);
	}
	/* popped hottest first; the contract wants the hottest last */
	for (unsigned i = 0; i < got / 2; i++) {
		zp_buf *t = out[i];
		out[i] = out[got - 1 - i];
		out[got - 1 - i] = t;
	}
	return got;
}

static unsigned locked_give(void *store, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			    zp_buf **victims)
{
	struct store *s = store;
	unsigned i = 0, nv = 0;
	for (unsigned j = 0; j < s->shards && i < n; j++) {
		struct shard *sh = &s->shard[(hint + j) & s->mask];
		struct ring *r = &sh->rings[cls];
		if (j == 0)
			lock_shard(sh);
		else if (!trylock_shard(sh))
			continue;
		while (i < n && (r->count < r->cap || grow(r)))
			push_top(r, in[i++]);
		pthread_mutex_unlock(&sh->lock);
	}
	if (i == n)
		return 0;
	if (s->evict == ZP_EVICT_DROP_COLDEST) {
		/* Evict in the home shard, or in the first one after it that
		 * has room for this class at all (max_per_class < shards).
		 * max is set at create: read without the lock. */
		struct shard *sh = NULL;
		for (unsigned j = 0; j < s->shards && sh == NULL; j++)
			if (s->shard[(hint + j) & s->mask].rings[cls].max > 0)
				sh = &s->shard[(hint + j) & s->mask];
		if (sh != NULL) {
			struct ring *r = &sh->rings[cls];
			lock_shard(sh);
			for (; i < n; i++) {
				if (r->count == r->cap && !grow(r)) {
					if (r->count < r->max)
						break; /* growth failed: refuse the rest */
					victims[nv++] = pop_bottom(r);
				}
				push_top(r, in[i]);
			}
			pthread_mutex_unlock(&sh->lock);
		}
	}
	while (i < n)
		victims[nv++] = in[i++];
	return nv;
}

static size_t locked_count(void *store, unsigned cls)
{
	struct store *s = store;
	size_t n = 0;
	for (unsigned i = 0; i < s->shards; i++) {
		struct shard *sh = &s->shard[i];
		pthread_mutex_lock(&sh->lock);
		n += sh->rings[cls].count;
		pthread_mutex_unlock(&sh->lock);
	}
	return n;
}

static void locked_stats(void *store, struct zp_backend_stats *out)
{
	struct store *s = store;
	out->contention = 0;
	out->meta_bytes = s->fixed_bytes;
	for (unsigned i = 0; i < s->shards; i++) {
		struct shard *sh = &s->shard[i];
		out->contention += zp_atomic_load_relaxed(&sh->contention);
		pthread_mutex_lock(&sh->lock); /* the slot arrays grow under it */
		for (unsigned k = 0; k < s->classes; k++)
			out->meta_bytes += (size_t)sh->rings[k].cap * sizeof(zp_buf *);
		pthread_mutex_unlock(&sh->lock);
	}
	/* Nothing waits for a grace period: a ring slot is reused at once. */
}

/* fork: every shard lock, in shard order (no path holds two of them, so
 * the order cannot deadlock), then released on both sides. */
static void locked_fork_prepare(void *store)
{
	struct store *s = store;
	for (unsigned i = 0; i < s->shards; i++)
		pthread_mutex_lock(&s->shard[i].lock);
}

static void locked_fork_release(void *store)
{
	struct store *s = store;
	for (unsigned i = s->shards; i-- > 0;)
		pthread_mutex_unlock(&s->shard[i].lock);
}

/* A ring slot per buffer, and as many again after a doubling. */
static size_t locked_idle_meta(void *store)
{
	(void)store;
	return 2 * sizeof(zp_buf *);
}

const struct zp_backend_ops _zp_backend_locked = {
    .name = "locked",
    .create = locked_create,
    .destroy = locked_destroy,
    .take = locked_take,
    .give = locked_give,
    .count = locked_count,
    .stats = locked_stats,
    .thread_exit = NULL,
    .idle_meta = locked_idle_meta,
    .fork_prepare = locked_fork_prepare,
    .fork_parent = locked_fork_release,
    .fork_child = locked_fork_release,
};
