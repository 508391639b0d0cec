/*
 * zp_decay.c - the decay step over the store and what runs it from slow
 * paths and zp_maintain (zp_decay.h); the maintenance thread is
 * zp_maintain.c.
 *
 * Why a low-water mark and not an age per buffer: the lock-free stores are
 * stacks whose bottom cannot be reached, and stamping every buffer would
 * put a clock read on every transfer.  A class that never held fewer than
 * m buffers during the last decay_ms had m buffers it did not need for that
 * long, whichever ones they were (jemalloc's tcache GC reasons the same
 * way).  The step gives back half of them per interval, so a brief dip
 * after a long idle spell is not paid for with the whole working set, and a
 * pool that goes quiet halves what it holds every interval from decay_ms on.
 */
#include <stdlib.h>
#include <string.h>

#include "zp_decay.h"
#include "zp_os.h"
#include "zp_poison.h"

/* The lowest counts of a class over the last ZP_DECAY_SLOTS intervals:
 * [IDLE] for the store, [RELEASED] for the released list. */
enum { IDLE, RELEASED, KINDS };

struct _zp_decay {
	uint64_t last_ns; /* the start of the interval now running */
	unsigned pos;     /* the ring slot that interval fills */
	uint64_t *low;    /* [classes][KINDS][ZP_DECAY_SLOTS] */
};

static uint64_t *ring(struct _zp_decay *d, unsigned cls, unsigned kind)
{
	return d->low + ((size_t)cls * KINDS + kind) * ZP_DECAY_SLOTS;
}

/* Record an interval's low-water mark `low` in e slots (e intervals
 * elapsed since the last step), and return what stayed idle through all
 * the slots, at most `now`. */
static uint64_t ring_push(struct _zp_decay *d, uint64_t *r, unsigned e, uint64_t low, uint64_t now)
{
	for (unsigned i = 0; i < e && i < ZP_DECAY_SLOTS; i++)
		r[(d->pos + i) % ZP_DECAY_SLOTS] = low;
	uint64_t m = now;
	for (unsigned i = 0; i < ZP_DECAY_SLOTS; i++)
		if (r[i] < m)
			m = r[i];
	return m;
}

/* n buffers of the ring's class were given back: they no longer count as
 * idle in any interval. */
static void ring_take(uint64_t *r, uint64_t n)
{
	for (unsigned i = 0; i < ZP_DECAY_SLOTS; i++)
		r[i] = r[i] > n ? r[i] - n : 0;
}

/* How many to give back after e elapsed intervals, of `now` buffers of
 * which `m` stayed idle for decay_ms: half of those per interval; with
 * decay_ms 0, all. */
static uint64_t due(const zp_pool *pool, uint64_t m, uint64_t now, unsigned e)
{
	if (pool->cfg.decay_ms == 0)
		return now;
	return e >= 64 ? m : m - (m >> e);
}

static unsigned clamp_batch(uint64_t n)
{
	return n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
}

/* One step at time now, under decay_lock; returns the buffers given back. */
static long step_locked(zp_pool *pool, uint64_t now)
{
	struct _zp_decay *d = pool->decay.state;
	uint64_t tick = pool->decay.tick_ns;
	if (now < d->last_ns + tick)
		return 0;
	uint64_t elapsed = (now - d->last_ns) / tick;
	unsigned e = elapsed > 64 ? 64 : (unsigned)elapsed;
	d->last_ns += elapsed * tick;
	zp_atomic_store_relaxed(&pool->decay.next_ns, d->last_ns + tick);
	long given = 0;
	struct _zp_freed freed = {0, 0};
	for (unsigned k = 0; k < pool->classes; k++) {
		uint64_t idle, idle_low, rel, rel_low;
		_zp_store_decay_sample(pool, k, &idle, &idle_low, &rel, &rel_low);
		uint64_t *ri = ring(d, k, IDLE), *rr = ring(d, k, RELEASED);
		uint64_t mi = ring_push(d, ri, e, idle_low, idle);
		uint64_t mr = ring_push(d, rr, e, rel_low, rel);
		/* Released buffers first: those the idle step is about to
		 * release join the list now and must wait decay_ms there. */
		uint64_t n = due(pool, mr, rel, e);
		if (n > 0) {
			unsigned got = _zp_store_decay_released(pool, k, clamp_batch(n));
			ring_take(rr, got);
			given += got;
		}
		n = due(pool, mi, idle, e);
		if (n > 0) {
			unsigned got = _zp_store_decay_idle(pool, k, clamp_batch(n));
			ring_take(ri, got);
			given += got;
			_zp_freed_add(&freed, _zp_store_class_size(pool, k), got);
		}
	}
	_zp_os_give_back(&freed);
	d->pos = (d->pos + (e < ZP_DECAY_SLOTS ? e : ZP_DECAY_SLOTS)) % ZP_DECAY_SLOTS;
	zp_atomic_add_relaxed(&pool->decay.steps, elapsed);
	if (given > 0)
		zp_atomic_add_relaxed(&pool->decay.given, (uint64_t)given);
	return given;
}

/* Slow paths left before this thread reads the clock again: a clock read
 * costs a fraction of a slow path with a transfer, but most of one without
 * (cache_depth 0), so one in POLL_EVERY reads it. */
#define POLL_EVERY 8u
static __thread __attribute__((tls_model("initial-exec"))) unsigned poll_skip;

void _zp_decay_poll(zp_pool *pool)
{
	if (pool->decay.tick_ns == 0)
		return;
	if (poll_skip != 0) {
		poll_skip--;
		return;
	}
	poll_skip = POLL_EVERY - 1;
	uint64_t now = _zp_os_now_ns();
	if (now < zp_atomic_load_relaxed(&pool->decay.next_ns))
		return;
	if (pthread_mutex_trylock(&pool->decay.lock) != 0)
		return; /* another thread is running it */
	(void)step_locked(pool, now);
	pthread_mutex_unlock(&pool->decay.lock);
}

long _zp_decay_run(zp_pool *pool)
{
	if (pool->decay.tick_ns == 0)
		return 0;
	pthread_mutex_lock(&pool->decay.lock);
	long given = step_locked(pool, _zp_os_now_ns());
	pthread_mutex_unlock(&pool->decay.lock);
	return given;
}

/* ---- lifetime ------------------------------------------------------------- */

_Static_assert(offsetof(struct _zp_pool_decay, given) ==
		   offsetof(struct _zp_pool_decay, next_ns) + 2 * sizeof(uint64_t),
	       "decay's shared words are annotated as one range");

int _zp_decay_init(zp_pool *pool)
{
	_zp_hg_counters(&pool->decay.next_ns, 3 * sizeof(uint64_t));
	long ms = pool->cfg.decay_ms;
	if (ms == ZP_DECAY_NEVER)
		return 0;
	uint64_t tick = (uint64_t)ms * 1000000u / ZP_DECAY_SLOTS;
	pool->decay.tick_ns = tick < 1000000u ? 1000000u : tick;
	struct _zp_decay *d = _zp_meta_alloc(sizeof *d);
	if (d == NULL)
		return -1;
	pool->decay.state = d;
	d->low = _zp_meta_alloc((size_t)pool->classes * KINDS * ZP_DECAY_SLOTS * sizeof(uint64_t));
	if (d->low == NULL)
		return -1;
	d->last_ns = _zp_os_now_ns();
	zp_atomic_store_relaxed(&pool->decay.next_ns, d->last_ns + pool->decay.tick_ns);
	return 0;
}

void _zp_decay_fini(zp_pool *pool)
{
	struct _zp_decay *d = pool->decay.state;
	if (d != NULL) {
		_zp_meta_free(d->low);
		_zp_meta_free(d);
		pool->decay.state = NULL;
	}
	pool->decay.tick_ns = 0;
	_zp_hg_counters_gone(&pool->decay.next_ns, 3 * sizeof(uint64_t));
}

/* ---- fork ------------------------------------------------------------------- */

void _zp_decay_fork_prepare(zp_pool *pool)
{
	pthread_mutex_lock(&pool->decay.lock);
}

void _zp_decay_fork_release(zp_pool *pool)
{
	pthread_mutex_unlock(&pool->decay.lock);
}
