/*
 * test_decay.c - idle memory going back over time (zp_config.decay_ms):
 * the store's low-water decay, the two stages of mapped buffers, thread
 * caches giving up idle classes, the maintenance thread, and all of them
 * racing with owners and trims.  Time comes from the library's test clock
 * (_zp_test_set_clock), so the steps are exact; only the maintenance
 * thread's test waits for real time, for a condition, with a generous
 * deadline.  Run against every backend (argv[1]).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <valgrind/valgrind.h>

#include "zp_os.h"
#include "zp_test.h"

#define MS 1000000ull
#define DECAY_MS 800 /* steps every 100 ms */
#define TICK (DECAY_MS * MS / 8)
#define SMALL 4096         /* a heap class: decay frees it */
#define MAPPED (64u << 10) /* a mapped class: decay releases its pages first */

static uint64_t clock_ns;

static void clock_set(uint64_t ns)
{
	clock_ns = ns;
	_zp_test_set_clock(ns);
}

/* One interval passes; run the step due.  Returns what it gave back. */
static long tick(zp_pool *p)
{
	clock_set(clock_ns + TICK);
	long n = zp_maintain(p);
	CHECK(n >= 0);
	return n;
}

/* A pool on the test clock (at any start: steps count from the pool's
 * creation), or on the real clock with `real`. */
static zp_pool *make_on(bool real, long decay_ms, unsigned depth, unsigned flags)
{
	clock_set(real ? 0 : 1000000 * MS);
	zp_config c = zp_test_config();
	c.decay_ms = decay_ms;
	c.cache_depth = depth;
	c.flags = flags;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	return p;
}

static zp_pool *make(long decay_ms, unsigned depth, unsigned flags)
{
	return make_on(false, decay_ms, depth, flags);
}

static void cycle(zp_pool *p, int n, size_t len)
{
	zp_buf *b[64];
	REQUIRE(n <= 64);
	for (int i = 0; i < n; i++) {
		REQUIRE((b[i] = zp_get(p, len)) != NULL);
		b[i]->data[0] = (unsigned char)i;
	}
	for (int i = 0; i < n; i++)
		CHECK_EQ(zp_put(p, b[i]), 0);
}

static struct zp_stats stats(zp_pool *p)
{
	struct zp_stats st;
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.live_buffers,
		 st.idle_buffers + st.released_buffers + st.cached_buffers + st.outstanding);
	return st;
}

static void test_config(void)
{
	zp_config c;
	zp_config_init(&c);
	CHECK_EQ(c.decay_ms, 10000);
	const long bad[] = {-2, LONG_MIN, ZP_MAX_DECAY_MS + 1, LONG_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		c = zp_test_config();
		c.decay_ms = bad[i];
		CHECK_ERR(zp_pool_create(&c), EINVAL);
	}
	const long good[] = {ZP_DECAY_NEVER, 0, 1, ZP_MAX_DECAY_MS};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		c = zp_test_config();
		c.decay_ms = good[i];
		c.flags = ZP_F_MAINTENANCE_THREAD;
		zp_pool *p = zp_pool_create(&c);
		CHECK(p != NULL);
		zp_pool_destroy(p);
	}
	CHECK_ERR(zp_maintain(NULL), EINVAL);
}

/* 64 idle buffers and no load: nothing goes for decay_ms, then the store
 * halves every interval, and by 2 x decay_ms it is empty. */
static void test_store_halves(void)
{
	zp_pool *p = make(DECAY_MS, 0, 0);
	cycle(p, 64, SMALL);
	for (int i = 1; i <= 8; i++)
		CHECK_EQ(tick(p), 0);
	const long want[] = {32, 16, 8, 4, 2, 1, 1, 0};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		CHECK_EQ(tick(p), want[i]);
	struct zp_stats st = stats(p);
	CHECK_EQ(st.idle_buffers, 0);
	CHECK_EQ(st.live_buffers, 0);
	CHECK_EQ(st.decayed, 64);
	CHECK_EQ(st.idle_peak_bytes, 64 * SMALL);
	CHECK_EQ(zp_maintain(p), 0); /* not due: the clock did not move */
	zp_pool_destroy(p);
}

/* Steps that come late count the intervals that passed: one step after a
 * long quiet spell gives back what stayed idle through it. */
static void test_late_step(void)
{
	zp_pool *p = make(DECAY_MS, 0, 0);
	cycle(p, 64, SMALL);
	CHECK_EQ(tick(p), 0);
	clock_set(clock_ns + 20 * TICK);
	CHECK_EQ(zp_maintain(p), 64);
	CHECK_EQ(stats(p).live_buffers, 0);
	zp_pool_destroy(p);
}

/* A load that uses 48 buffers in every interval keeps them: decay takes
 * only the 16 the store never lent, and nothing is allocated again. */
static void test_working_set_kept(void)
{
	zp_pool *p = make(DECAY_MS, 0, 0);
	cycle(p, 64, SMALL);
	for (int i = 0; i < 40; i++) {
		cycle(p, 48, SMALL);
		tick(p);
	}
	struct zp_stats st = stats(p);
	CHECK_EQ(st.fresh, 64);
	CHECK_EQ(st.live_buffers, 48);
	CHECK_EQ(st.decayed, 16);
	zp_pool_destroy(p);
}

/* Mapped buffers lose their pages first (mapping kept, reusable), and are
 * unmapped after another decay_ms; a released one is reused as it is. */
static void test_mapped_two_stages(void)
{
	zp_pool *p = make(DECAY_MS, 0, 0);
	cycle(p, 8, MAPPED);
	bool released_while_mapped = false;
	for (int i = 0; i < 9; i++)
		tick(p);
	struct zp_stats st = stats(p);
	CHECK_EQ(st.released_buffers, 4);
	CHECK_EQ(st.idle_buffers, 4);
	CHECK_EQ(st.live_buffers, 8);
	for (int i = 0; i < 40; i++) {
		tick(p);
		st = stats(p);
		released_while_mapped |= st.released_buffers > 0 && st.live_buffers == 8;
	}
	CHECK(released_while_mapped);
	CHECK_EQ(st.live_buffers, 0);
	CHECK_EQ(st.released_buffers, 0);
	CHECK_EQ(st.decayed, 16); /* 8 page releases, 8 unmaps */
	cycle(p, 2, MAPPED);      /* fresh mappings again */
	CHECK_EQ(stats(p).fresh, 10);
	zp_pool_destroy(p);
}

/* A class this thread stopped using goes back to the store (and then
 * decays there); the class it uses stays cached. */
static void test_cache_class_retires(void)
{
	zp_pool *p = make(DECAY_MS, ZP_CACHE_DEPTH_AUTO, 0);
	cycle(p, 32, 1024);
	struct zp_stats before = stats(p);
	CHECK(before.cached_buffers >= 16);
	size_t trigger = 2048;
	/* Two looks, decay_ms apart: the first records what each class did,
	 * the second retires the classes that did nothing since. */
	for (int look = 0; look < 2; look++) {
		for (int i = 0; i < 8; i++) {
			cycle(p, 4, 8192);
			tick(p);
		}
		cycle(p, 1, trigger); /* a first get of a class: a slow path */
		trigger += 1024;
	}
	struct zp_stats after = stats(p);
	CHECK(after.cached_buffers <= 4 + 2); /* the 8 KiB class and the triggers' */
	CHECK(after.idle_buffers + after.decayed >= before.cached_buffers);
	for (int i = 0; i < 24; i++) {
		cycle(p, 4, 8192);
		tick(p);
	}
	CHECK(stats(p).live_buffers <= 4 + 2 + 1);
	zp_pool_destroy(p);
}

/* zp_maintain decays the calling thread's own cache too: a thread that
 * runs its own timer gives back what it cached and no longer uses. */
static void test_maintain_own_cache(void)
{
	zp_pool *p = make(DECAY_MS, ZP_CACHE_DEPTH_AUTO, 0);
	cycle(p, 32, 1024);
	CHECK(stats(p).cached_buffers >= 16);
	for (int i = 0; i < 16; i++)
		tick(p); /* a look at step 8 records, the one at step 16 retires */
	CHECK_EQ(stats(p).cached_buffers, 0);
	for (int i = 0; i < 16; i++)
		tick(p); /* then the store gives them back */
	CHECK_EQ(stats(p).live_buffers, 0);
	zp_pool_destroy(p);
}

static void test_never(void)
{
	zp_pool *p = make(ZP_DECAY_NEVER, 0, 0);
	cycle(p, 16, SMALL);
	for (int i = 0; i < 40; i++)
		CHECK_EQ(tick(p), 0);
	CHECK_EQ(stats(p).idle_buffers, 16);
	zp_pool_destroy(p);
}

/* decay_ms 0: every step gives back whatever is idle. */
static void test_zero(void)
{
	zp_pool *p = make(0, 0, 0);
	cycle(p, 16, SMALL);
	CHECK_EQ(tick(p), 16);
	CHECK_EQ(stats(p).live_buffers, 0);
	zp_pool_destroy(p);
}

/* The maintenance thread decays a pool nobody calls (real time: the test
 * waits for the condition, up to a minute, for a step every millisecond). */
static void test_maintenance_thread(void)
{
	zp_pool *p = make_on(true, 8, 0, ZP_F_MAINTENANCE_THREAD);
	cycle(p, 32, SMALL);
	struct timespec pause = {0, 1000000};
	struct zp_stats st; /* read while the thread moves buffers: not conserved */
	REQUIRE(zp_stats(p, &st) == 0);
	for (int i = 0; i < 60000 && st.decayed < 32; i++) {
		nanosleep(&pause, NULL);
		REQUIRE(zp_stats(p, &st) == 0);
	}
	CHECK_EQ(st.live_buffers, 0);
	CHECK_EQ(st.decayed, 32);
	cycle(p, 8, SMALL);
	zp_pool_destroy(p); /* with its thread running */
}

/* ---- other threads' caches ------------------------------------------------ */

/* A thread that fills its cache, then works `rounds` rounds (a cycle each,
 * between two waits on `bar`), then parks until released, then makes one
 * more cycle (its next call after a drain) and exits. */
struct worker {
	zp_pool *pool;
	pthread_barrier_t bar;
	int rounds;
	pthread_t t;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	cycle(w->pool, 32, 1024);
	pthread_barrier_wait(&w->bar); /* filled */
	for (int r = 0; r < w->rounds; r++) {
		pthread_barrier_wait(&w->bar);
		cycle(w->pool, 4, 1024);
		pthread_barrier_wait(&w->bar);
	}
	pthread_barrier_wait(&w->bar); /* parked until released */
	cycle(w->pool, 1, 1024);
	return NULL;
}

static void worker_start(struct worker *w, zp_pool *p, int rounds)
{
	w->pool = p;
	w->rounds = rounds;
	REQUIRE(pthread_barrier_init(&w->bar, NULL, 2) == 0);
	REQUIRE(pthread_create(&w->t, NULL, work, w) == 0);
	pthread_barrier_wait(&w->bar);
}

static void worker_end(struct worker *w)
{
	pthread_barrier_wait(&w->bar);
	pthread_join(w->t, NULL);
	pthread_barrier_destroy(&w->bar);
}

/* zp_trim from one thread reaches the cache of another that sits idle: all
 * but the top buffer of each class (which it might be getting or putting at
 * that moment); the owner's next call finds its cache consistent.  Without
 * membarrier the trim cannot touch the cache, and the owner trims it on
 * its next call.  The cache hits, which zp_stats derives from the count
 * (zp_tcache.h, the hit ledger), count no buffer the trim took: the one
 * left is the owner's next hit, and with the trim denied the owner's own
 * trim leaves it none. */
static void trim_idle_thread(bool deny)
{
	zp_pool *p = make(ZP_DECAY_NEVER, ZP_CACHE_DEPTH_AUTO, 0);
	struct worker w;
	worker_start(&w, p, 0);
	struct zp_stats before = stats(p);
	uint64_t cached = before.cached_buffers;
	CHECK(cached >= 16);
	_zp_test_deny_membarrier(deny);
	size_t freed = zp_trim(p);
	struct zp_stats st = stats(p);
	CHECK_EQ(st.cached_buffers, deny ? cached : 1);
	CHECK_EQ(freed, (deny ? 0 : cached - 1) * 1024 + (32 - cached) * 1024);
	CHECK_EQ(st.cache_hits, before.cache_hits);
	CHECK_EQ(st.gets, before.gets);
	worker_end(&w); /* its next get reopens the cache (and trims it, denied) */
	_zp_test_deny_membarrier(false);
	st = stats(p);
	CHECK_EQ(st.trimmed, 31 + (deny ? 1 : 0));
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.live_buffers, st.idle_buffers);
	CHECK_EQ(st.gets, before.gets + 1);
	CHECK_EQ(st.cache_hits, before.cache_hits + (deny ? 0 : 1));
	CHECK_EQ(st.gets, st.cache_hits + st.store_hits + st.fresh);
	zp_pool_destroy(p);
}

static void test_trim_idle_thread(void)
{
	trim_idle_thread(false);
}

static void test_trim_idle_thread_no_membarrier(void)
{
	trim_idle_thread(true);
}

/* Decay reaches a thread that stopped calling the pool: a look at every
 * step notes what each cache did, and a cache that did nothing for
 * decay_ms (8 steps) is drained (all but each class's top) and freed.  A
 * thread that keeps working keeps its cache. */
static void test_decay_idle_thread(void)
{
	zp_pool *p = make(DECAY_MS, ZP_CACHE_DEPTH_AUTO, 0);
	struct worker w;
	worker_start(&w, p, 0);
	uint64_t cached = stats(p).cached_buffers;
	CHECK(cached >= 16);
	for (int i = 0; i < 8; i++) {
		tick(p); /* the first look notes its gets and puts */
		CHECK_EQ(stats(p).cached_buffers, cached);
	}
	uint64_t before = stats(p).decayed;
	tick(p); /* 8 steps later nothing changed: drained */
	struct zp_stats st = stats(p);
	CHECK_EQ(st.cached_buffers, 1);
	CHECK(st.decayed >= before + cached - 1);
	worker_end(&w);
	CHECK_EQ(stats(p).outstanding, 0);

	worker_start(&w, p, 24);
	cached = stats(p).cached_buffers;
	for (int i = 0; i < 24; i++) {
		pthread_barrier_wait(&w.bar);
		pthread_barrier_wait(&w.bar); /* it made a cycle */
		tick(p);
		CHECK_EQ(stats(p).cached_buffers, cached);
	}
	worker_end(&w);
	CHECK_EQ(stats(p).outstanding, 0);
	zp_pool_destroy(p);
}

/* Owners on their inline paths while another thread trims all caches and
 * runs steps, without pause: a buffer an owner holds is never taken (its
 * pattern stays), none is lost (gets == puts, and every live buffer is
 * accounted for at rest). */
struct owner {
	zp_pool *pool;
	unsigned seed;
	long iters;
	_Atomic int *running;
	_Atomic long *trims;
};

static void *own(void *arg)
{
	struct owner *o = arg;
	zp_buf *held[8];
	unsigned s = o->seed;
	/* at least `iters` rounds, and until the trims overlapped them */
	for (long i = 0; i < o->iters || atomic_load(o->trims) < 50; i++) {
		s = s * 1103515245u + 12345u;
		int n = 1 + (int)((s >> 16) % 8);
		size_t len = 64u << ((s >> 8) % 4);
		for (int k = 0; k < n; k++) {
			REQUIRE((held[k] = zp_get(o->pool, len)) != NULL);
			memset(held[k]->data, (int)(o->seed + (unsigned)k), len);
		}
		for (int k = 0; k < n; k++) {
			if (held[k]->data[0] != (unsigned char)(o->seed + (unsigned)k) ||
			    held[k]->data[len - 1] != (unsigned char)(o->seed + (unsigned)k))
				CHECK(!"a held buffer changed");
			CHECK_EQ(zp_put(o->pool, held[k]), 0);
		}
	}
	atomic_fetch_sub(o->running, 1);
	return NULL;
}

static void test_trim_race(void)
{
	/* Under valgrind's one-thread-at-a-time scheduler this test does not
	 * race, and under helgrind it stalled (not seen natively in 20 runs,
	 * nor under TSan): an open question, docs/testing.md.  ZP_TRIM_RACE
	 * set: run it anyway (to look into that). */
	if (RUNNING_ON_VALGRIND && getenv("ZP_TRIM_RACE") == NULL) {
		fprintf(stderr, "skip trim_race under valgrind\n");
		return;
	}
	clock_set(0);
	zp_config c = zp_test_config();
	c.decay_ms = 0;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	enum { T = 3 };
	pthread_t t[T];
	struct owner o[T];
	_Atomic int running = T;
	_Atomic long trims = 0;
	for (int i = 0; i < T; i++) {
		o[i] = (struct owner){p, 29u * (unsigned)i + 3, (long)(2000 * zp_test_scale) + 16,
				      &running, &trims};
		REQUIRE(pthread_create(&t[i], NULL, own, &o[i]) == 0);
	}
	while (atomic_load(&running) > 0) {
		zp_trim(p);
		zp_maintain(p);
		atomic_fetch_add(&trims, 1);
	}
	for (int i = 0; i < T; i++)
		pthread_join(t[i], NULL);
	struct zp_stats st = stats(p);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.gets, st.puts);
	zp_pool_destroy(p);
}

/* Owners, trims, slow-path steps and the maintenance thread at once: every
 * held buffer keeps its owner's pattern (none is given back while held),
 * and at rest every buffer is accounted for. */
struct racer {
	zp_pool *pool;
	unsigned seed;
	long iters;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	zp_buf *held[32];
	unsigned s = r->seed;
	for (long i = 0; i < r->iters; i++) {
		s = s * 1103515245u + 12345u;
		int n = 1 + (int)((s >> 16) % 32);
		size_t len = (s >> 8) % 3 == 0 ? MAPPED : 64 + (s >> 4) % 8192;
		for (int k = 0; k < n; k++) {
			REQUIRE((held[k] = zp_get(r->pool, len)) != NULL);
			memset(held[k]->data, (int)(r->seed + (unsigned)k), 64);
		}
		for (int k = 0; k < n; k++) {
			for (int j = 0; j < 64; j++)
				if (held[k]->data[j] != (unsigned char)(r->seed + (unsigned)k)) {
					CHECK(!"a held buffer changed");
					break;
				}
			CHECK_EQ(zp_put(r->pool, held[k]), 0);
		}
		if (i % 64 == 0)
			zp_trim(r->pool);
		if (i % 16 == 0)
			zp_maintain(r->pool);
	}
	return NULL;
}

static void test_race(void)
{
	clock_set(0);
	zp_config c = zp_test_config();
	c.decay_ms = 0; /* a step every millisecond gives back all that is idle */
	c.flags = ZP_F_MAINTENANCE_THREAD;
	c.max_idle_bytes = 4u << 20;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	enum { T = 4 };
	pthread_t t[T];
	struct racer r[T];
	for (int i = 0; i < T; i++) {
		r[i] = (struct racer){p, 17u * (unsigned)i + 1, (long)(400 * zp_test_scale) + 8};
		REQUIRE(pthread_create(&t[i], NULL, race, &r[i]) == 0);
	}
	for (int i = 0; i < T; i++)
		pthread_join(t[i], NULL);
	/* The maintenance thread still gives back what is idle (decay_ms 0):
	 * the gauges are exact once it has given back everything (real time,
	 * up to a minute for steps due every millisecond). */
	struct timespec pause = {0, 1000000};
	struct zp_stats st;
	REQUIRE(zp_stats(p, &st) == 0);
	for (int i = 0; i < 60000 && st.live_buffers != 0; i++) {
		nanosleep(&pause, NULL);
		REQUIRE(zp_stats(p, &st) == 0);
	}
	st = stats(p);
	CHECK_EQ(st.live_buffers, 0);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.gets, st.puts);
	zp_pool_destroy(p);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"config", test_config},
	    {"store_halves", test_store_halves},
	    {"late_step", test_late_step},
	    {"working_set_kept", test_working_set_kept},
	    {"mapped_two_stages", test_mapped_two_stages},
	    {"cache_class_retires", test_cache_class_retires},
	    {"maintain_own_cache", test_maintain_own_cache},
	    {"never", test_never},
	    {"zero", test_zero},
	    {"maintenance_thread", test_maintenance_thread},
	    {"trim_idle_thread", test_trim_idle_thread},
	    {"trim_idle_thread_no_membarrier", test_trim_idle_thread_no_membarrier},
	    {"decay_idle_thread", test_decay_idle_thread},
	    {"trim_race", test_trim_race},
	    {"race", test_race},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
