/*
 * test_lifecycle.c - threads and pools coming and going, against every
 * backend: thread exit with cached buffers, pool destroy while idle threads
 * still cache its buffers, several pools per thread, buffers put by another
 * thread, and thread churn.  Run under memcheck, a thread that touched a
 * destroyed pool's memory or a lost buffer fails it.
 */
#include <pthread.h>
#include <stdint.h>

#include "zp_test.h"

static zp_pool *make(unsigned depth)
{
	zp_config c = zp_test_config();
	c.cache_depth = depth;
	c.max_per_class = 64;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	return p;
}

/* Get n buffers of `len` and put them all back: they stay in this thread's
 * cache (up to its depth) and the rest go to the store. */
static void churn(zp_pool *p, int n, size_t len)
{
	zp_buf *b[64];
	REQUIRE(n <= 64);
	for (int i = 0; i < n; i++) {
		b[i] = zp_get(p, len);
		REQUIRE(b[i] != NULL);
		memset(b[i]->data, 0x5a, b[i]->len);
	}
	for (int i = 0; i < n; i++)
		CHECK_EQ(zp_put(p, b[i]), 0);
}

static void *churn_thread(void *arg)
{
	churn(arg, 6, 3000);
	return NULL;
}

static void test_thread_exit_returns_cache(void)
{
	zp_pool *p = make(8);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, churn_thread, p) == 0);
	pthread_join(t, NULL);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.threads, 0);
	CHECK_EQ(st.live_buffers, 6);
	CHECK_EQ(st.idle_buffers, 6); /* all six came back to the store */
	CHECK_EQ(st.cached_buffers, 0);
	churn(p, 6, 3000); /* this thread reuses them: no fresh allocation */
	zp_stats(p, &st);
	CHECK_EQ(st.fresh, 6);
	CHECK_EQ(st.gets, 12);
	CHECK_EQ(st.threads, 1);
	zp_pool_destroy(p);
}

struct idle_run {
	zp_pool *a;
	zp_pool *_Atomic b;
	pthread_barrier_t cached, destroyed, done, checked;
};

/* Set up the run's barriers for n threads, or (n == 0) tear them down. */
static void idle_run_barriers(struct idle_run *r, unsigned n)
{
	pthread_barrier_t *b[] = {&r->cached, &r->destroyed, &r->done, &r->checked};
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
		if (n > 0)
			pthread_barrier_init(b[i], NULL, n);
		else
			pthread_barrier_destroy(b[i]);
	}
}

static void *idle_thread(void *arg)
{
	struct idle_run *r = arg;
	churn(r->a, 10, 700);
	pthread_barrier_wait(&r->cached);
	pthread_barrier_wait(&r->destroyed); /* main destroyed a meanwhile */
	churn(r->b, 10, 700);                /* b may reuse a's cache slot */
	pthread_barrier_wait(&r->done);
	pthread_barrier_wait(&r->checked); /* main looks at our caches first */
	return NULL;
}

static void test_destroy_with_idle_caches(void)
{
	enum { N = 3 };
	struct idle_run r;
	r.a = make(8);
	idle_run_barriers(&r, N + 1);
	pthread_t t[N];
	for (int i = 0; i < N; i++)
		REQUIRE(pthread_create(&t[i], NULL, idle_thread, &r) == 0);
	pthread_barrier_wait(&r.cached);
	struct zp_stats st;
	zp_stats(r.a, &st);
	CHECK_EQ(st.threads, N);
	CHECK_EQ(st.cached_buffers + st.idle_buffers, st.live_buffers);
	CHECK(st.cached_buffers >= N * 4); /* depth 8, batch 4: 6 each */
	zp_pool_destroy(r.a);              /* frees the buffers cached by the idle threads */
	r.b = make(8);
	pthread_barrier_wait(&r.destroyed);
	pthread_barrier_wait(&r.done);
	zp_stats(r.b, &st);
	CHECK_EQ(st.gets, N * 10);
	CHECK_EQ(st.fresh + st.store_hits + st.cache_hits, N * 10);
	CHECK_EQ(st.threads, N);
	pthread_barrier_wait(&r.checked);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	zp_stats(r.b, &st);
	CHECK_EQ(st.threads, 0);
	CHECK_EQ(st.outstanding, 0);
	zp_pool_destroy(r.b);
	idle_run_barriers(&r, 0);
}

/* ---- adaptive caches (ZP_CACHE_DEPTH_AUTO, the default) ------------------ */

enum { GROWN = 300 }; /* buffers a thread keeps: its cache grows to hold them */

static zp_pool *make_auto(void)
{
	zp_config c = zp_test_config(); /* defaults: adaptive cache, byte-bound store */
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	return p;
}

/* Get GROWN buffers of 1000 bytes and put them back: the class's capacity
 * doubles on every overflow until it holds all of them. */
static void grow_cache(zp_pool *p)
{
	static _Thread_local zp_buf *b[GROWN];
	for (int i = 0; i < GROWN; i++) {
		b[i] = zp_get(p, 1000);
		REQUIRE(b[i] != NULL);
		memset(b[i]->data, 0x3c, b[i]->len);
	}
	for (int i = 0; i < GROWN; i++)
		CHECK_EQ(zp_put(p, b[i]), 0);
}

static void *grow_thread(void *arg)
{
	zp_pool *p = arg;
	grow_cache(p);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, GROWN); /* all in this thread's cache */
	CHECK_EQ(st.idle_buffers, 0);
	grow_cache(p); /* the second round is served by the cache alone */
	zp_stats(p, &st);
	CHECK_EQ(st.fresh, GROWN);
	CHECK_EQ(st.cache_hits, GROWN);
	return NULL;
}

static void test_grown_cache_thread_exit(void)
{
	zp_pool *p = make_auto();
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, grow_thread, p) == 0);
	pthread_join(t, NULL);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.threads, 0);
	CHECK_EQ(st.cached_buffers, 0);
	CHECK_EQ(st.idle_buffers, GROWN); /* the grown cache came back whole */
	CHECK_EQ(st.live_buffers, GROWN);
	grow_cache(p); /* this thread refills from the store: nothing fresh */
	zp_stats(p, &st);
	CHECK_EQ(st.fresh, GROWN);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.cached_buffers + st.idle_buffers, st.live_buffers);
	zp_pool_destroy(p);
}

static void *grown_idle_thread(void *arg)
{
	struct idle_run *r = arg;
	grow_cache(r->a);
	pthread_barrier_wait(&r->cached);
	pthread_barrier_wait(&r->destroyed); /* main destroyed a and its large caches */
	grow_cache(r->b);
	pthread_barrier_wait(&r->done);
	pthread_barrier_wait(&r->checked);
	return NULL;
}

static void test_destroy_with_grown_caches(void)
{
	enum { N = 3 };
	struct idle_run r;
	r.a = make_auto();
	idle_run_barriers(&r, N + 1);
	pthread_t t[N];
	for (int i = 0; i < N; i++)
		REQUIRE(pthread_create(&t[i], NULL, grown_idle_thread, &r) == 0);
	pthread_barrier_wait(&r.cached);
	struct zp_stats st;
	zp_stats(r.a, &st);
	CHECK_EQ(st.threads, N);
	CHECK_EQ(st.cached_buffers, N * GROWN);
	zp_pool_destroy(r.a); /* frees the buffers and the grown slot arrays */
	r.b = make_auto();
	pthread_barrier_wait(&r.destroyed);
	pthread_barrier_wait(&r.done);
	zp_stats(r.b, &st);
	CHECK_EQ(st.gets, N * GROWN);
	CHECK_EQ(st.cached_buffers, N * GROWN);
	pthread_barrier_wait(&r.checked);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	zp_stats(r.b, &st);
	CHECK_EQ(st.threads, 0);
	CHECK_EQ(st.idle_buffers, N * GROWN);
	zp_pool_destroy(r.b);
	idle_run_barriers(&r, 0);
}

static void test_pools_keep_separate_caches(void)
{
	zp_pool *p[3] = {make(4), make(4), make(4)};
	for (int round = 0; round < 100; round++)
		for (int i = 0; i < 3; i++) {
			zp_buf *b = zp_get(p[i], 256);
			REQUIRE(b != NULL);
			CHECK_EQ(zp_put(p[i], b), 0);
		}
	for (int i = 0; i < 3; i++) {
		struct zp_stats st;
		zp_stats(p[i], &st);
		CHECK_EQ(st.fresh, 1); /* no flush on switching pools */
		CHECK_EQ(st.cache_hits, 99);
		zp_pool_destroy(p[i]);
	}
}

struct handoff {
	zp_pool *pool;
	zp_buf *bufs[50];
};

static void *put_thread(void *arg)
{
	struct handoff *h = arg;
	for (int i = 0; i < 50; i++) {
		CHECK(h->bufs[i]->data[0] == (unsigned char)i);
		CHECK_EQ(zp_put(h->pool, h->bufs[i]), 0);
	}
	return NULL;
}

static void test_put_by_other_thread(void)
{
	struct handoff h = {.pool = make(4)};
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 50; i++) {
			REQUIRE((h.bufs[i] = zp_get(h.pool, 1 + (size_t)i * 100)) != NULL);
			h.bufs[i]->data[0] = (unsigned char)i;
		}
		struct zp_stats before, after;
		zp_stats(h.pool, &before);
		pthread_t t;
		REQUIRE(pthread_create(&t, NULL, put_thread, &h) == 0);
		pthread_join(t, NULL);
		/* The put thread got nothing: what it cached left its cache at
		 * exit, which the hit ledger counts out, so no hit. */
		zp_stats(h.pool, &after);
		CHECK_EQ(after.cache_hits, before.cache_hits);
		CHECK_EQ(after.gets, before.gets);
	}
	struct zp_stats st;
	zp_stats(h.pool, &st);
	CHECK_EQ(st.gets, 200);
	CHECK_EQ(st.puts, 200);
	CHECK_EQ(st.outstanding, 0);
	CHECK(st.fresh < 200); /* later rounds reuse what the other thread put */
	zp_pool_destroy(h.pool);
}

static void *short_thread(void *arg)
{
	zp_pool *p = arg;
	zp_buf *keep = zp_get(p, 4096);
	churn(p, 5, 100);
	churn(p, 3, 20000);
	CHECK(keep != NULL);
	return keep; /* handed to the joiner, which puts it */
}

static void test_thread_churn(void)
{
	zp_pool *p = make(4);
	int rounds = (int)(50 * zp_test_scale);
	for (int i = 0; i < rounds; i++) {
		pthread_t t[4];
		for (int j = 0; j < 4; j++)
			REQUIRE(pthread_create(&t[j], NULL, short_thread, p) == 0);
		for (int j = 0; j < 4; j++) {
			void *keep;
			pthread_join(t[j], &keep);
			CHECK_EQ(zp_put(p, keep), 0);
		}
	}
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.gets, (uint64_t)rounds * 4 * 9);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.threads, 1); /* only this thread still has a cache */
	CHECK_EQ(st.cached_buffers + st.idle_buffers, st.live_buffers);
	CHECK(st.live_buffers <= 64 * 3 + 4 * 3); /* bounded: store + this cache */
	zp_pool_destroy(p);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"thread_exit_returns_cache", test_thread_exit_returns_cache},
	    {"destroy_with_idle_caches", test_destroy_with_idle_caches},
	    {"pools_keep_separate_caches", test_pools_keep_separate_caches},
	    {"put_by_other_thread", test_put_by_other_thread},
	    {"grown_cache_thread_exit", test_grown_cache_thread_exit},
	    {"destroy_with_grown_caches", test_destroy_with_grown_caches},
	    {"thread_churn", test_thread_churn},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
