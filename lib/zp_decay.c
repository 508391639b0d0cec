/*
 * zp_decay.c - the decay step, what runs it, and the maintenance thread
 * (zp_decay.h).
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
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

	/* The maintenance thread: `lock` guards `stop` and is never held
	 * while another library lock is taken; the thread sleeps in poll() on
	 * wake_fd (an eventfd), which destroy writes to wake it at once.  (Not
	 * a condition variable: helgrind reports glibc's timed wait itself.) */
	pthread_mutex_t lock;
	int wake_fd;
	pthread_t thread;
	bool running; /* a thread to stop and join (false in a forked child) */
	bool stop;
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
	struct _zp_decay *d = pool->decay;
	uint64_t tick = pool->decay_tick_ns;
	if (now < d->last_ns + tick)
		return 0;
	uint64_t elapsed = (now - d->last_ns) / tick;
	unsigned e = elapsed > 64 ? 64 : (unsigned)elapsed;
	d->last_ns += elapsed * tick;
	zp_atomic_store_relaxed(&pool->decay_next_ns, d->last_ns + tick);
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
	zp_atomic_add_relaxed(&pool->decay_steps, elapsed);
	if (given > 0)
		zp_atomic_add_relaxed(&pool->decayed, (uint64_t)given);
	return given;
}

/* Slow paths left before this thread reads the clock again: a read costs
 * 7 ns here (CLOCK_MONOTONIC_COARSE), a slow path with a transfer about
 * 50, one without (cache_depth 0) less. */
#define POLL_EVERY 8u
static __thread __attribute__((tls_model("initial-exec"))) unsigned poll_skip;

void _zp_decay_poll(zp_pool *pool)
{
	if (pool->decay_tick_ns == 0)
		return;
	if (poll_skip != 0) {
		poll_skip--;
		return;
	}
	poll_skip = POLL_EVERY - 1;
	uint64_t now = _zp_os_now_ns();
	if (now < zp_atomic_load_relaxed(&pool->decay_next_ns))
		return;
	if (pthread_mutex_trylock(&pool->decay_lock) != 0)
		return; /* another thread is running it */
	(void)step_locked(pool, now);
	pthread_mutex_unlock(&pool->decay_lock);
}

long _zp_decay_run(zp_pool *pool)
{
	if (pool->decay_tick_ns == 0)
		return 0;
	pthread_mutex_lock(&pool->decay_lock);
	long given = step_locked(pool, _zp_os_now_ns());
	pthread_mutex_unlock(&pool->decay_lock);
	return given;
}

/* ---- the maintenance thread ---------------------------------------------- */

static bool stopping(struct _zp_decay *d)
{
	pthread_mutex_lock(&d->lock);
	bool stop = d->stop;
	pthread_mutex_unlock(&d->lock);
	return stop;
}

static void *maintain(void *arg)
{
	zp_pool *pool = arg;
	struct _zp_decay *d = pool->decay;
	uint64_t ms = (pool->decay_tick_ns + 999999u) / 1000000u;
	int timeout = ms > INT_MAX ? INT_MAX : (int)ms;
	for (;;) {
		struct pollfd pfd = {.fd = d->wake_fd, .events = POLLIN};
		(void)poll(&pfd, 1, timeout);
		if (stopping(d))
			break;
		(void)_zp_decay_run(pool);
		if (pool->decay_caches != NULL)
			pool->decay_caches(pool, true);
	}
	if (pool->ops->thread_exit != NULL)
		pool->ops->thread_exit(pool->store);
	return NULL;
}

/* Start the thread with every signal blocked: signals meant for the
 * application's threads must not land on ours. */
static int start_thread(zp_pool *pool)
{
	struct _zp_decay *d = pool->decay;
	d->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (d->wake_fd < 0) {
		errno = EAGAIN;
		return -1;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&d->thread, NULL, maintain, pool);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = EAGAIN;
		return -1;
	}
	d->running = true;
	return 0;
}

/* ---- lifetime ------------------------------------------------------------- */

_Static_assert(offsetof(struct zp_pool, caches_step) ==
		   offsetof(struct zp_pool, decay_next_ns) + 3 * sizeof(uint64_t),
	       "decay's shared words are annotated as one range");

int _zp_decay_init(zp_pool *pool)
{
	_zp_hg_counters(&pool->decay_next_ns, 4 * sizeof(uint64_t));
	long ms = pool->cfg.decay_ms;
	if (ms == ZP_DECAY_NEVER)
		return 0;
	uint64_t tick = (uint64_t)ms * 1000000u / ZP_DECAY_SLOTS;
	pool->decay_tick_ns = tick < 1000000u ? 1000000u : tick;
	struct _zp_decay *d = _zp_meta_alloc(sizeof *d);
	if (d == NULL)
		return -1;
	pthread_mutex_init(&d->lock, NULL);
	d->wake_fd = -1;
	pool->decay = d;
	d->low = _zp_meta_alloc((size_t)pool->classes * KINDS * ZP_DECAY_SLOTS * sizeof(uint64_t));
	if (d->low == NULL)
		return -1;
	d->last_ns = _zp_os_now_ns();
	zp_atomic_store_relaxed(&pool->decay_next_ns, d->last_ns + pool->decay_tick_ns);
	return 0;
}

int _zp_decay_start(zp_pool *pool)
{
	if (pool->decay == NULL || !(pool->cfg.flags & ZP_F_MAINTENANCE_THREAD))
		return 0;
	return start_thread(pool);
}

void _zp_decay_fini(zp_pool *pool)
{
	struct _zp_decay *d = pool->decay;
	if (d != NULL) {
		if (d->running) {
			pthread_mutex_lock(&d->lock);
			d->stop = true;
			pthread_mutex_unlock(&d->lock);
			uint64_t one = 1;
			while (write(d->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
				;
			pthread_join(d->thread, NULL);
		}
		if (d->wake_fd >= 0)
			close(d->wake_fd);
		pthread_mutex_destroy(&d->lock);
		_zp_meta_free(d->low);
		_zp_meta_free(d);
		pool->decay = NULL;
	}
	pool->decay_tick_ns = 0;
	_zp_hg_counters_gone(&pool->decay_next_ns, 4 * sizeof(uint64_t));
}

/* ---- fork ------------------------------------------------------------------- */

void _zp_decay_fork_prepare(zp_pool *pool)
{
	pthread_mutex_lock(&pool->decay_lock);
	if (pool->decay != NULL)
		pthread_mutex_lock(&pool->decay->lock);
}

void _zp_decay_fork_release(zp_pool *pool, bool in_child)
{
	if (pool->decay != NULL) {
		if (in_child)
			pool->decay->running = false; /* threads do not survive fork */
		pthread_mutex_unlock(&pool->decay->lock);
	}
	pthread_mutex_unlock(&pool->decay_lock);
}
