/*
 * test_misuse.c - misuse the header documents as undetected must still not
 * corrupt the pool where the store can prevent it cheaply.
 *
 * Two threads put the same buffer at the same moment.  The front end cannot
 * see it (that needs an atomic on every put); lockfree-ck with the cache off
 * pushed the descriptor twice on its stack of single descriptors, making a
 * cycle: every later get returned that one buffer (issue 12, item 7).  Its
 * push now claims the descriptor first.  The other backends keep the second
 * copy as a second idle entry (two holders later), which the header leaves
 * undefined; the test checks them for what holds everywhere: no crash, no
 * hang, gauges that do not wrap.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "zp_test.h"

/* The main thread gets a buffer and publishes it; both threads then spin
 * until both are there and put it at once (spinning, not a barrier, so the
 * two puts start within a cache-line transfer of each other). */
struct race {
	zp_pool *pool;
	zp_buf *_Atomic buf;
	atomic_uint arrived; /* 2 per round */
	atomic_uint finished;
	unsigned rounds;
};

/* Spin, yielding after a while (valgrind runs one thread at a time). */
#define SPIN_UNTIL(cond)                                                                           \
	for (unsigned spins_ = 0; !(cond); spins_++)                                               \
		if (spins_ > 1000)                                                                 \
	sched_yield()

static void put_at_once(struct race *r, unsigned round, zp_buf *b)
{
	atomic_fetch_add(&r->arrived, 1);
	SPIN_UNTIL(atomic_load(&r->arrived) >= 2 * (round + 1));
	(void)zp_put(r->pool, b); /* one of the two puts is a misuse */
	atomic_fetch_add(&r->finished, 1);
}

static void *putter(void *arg)
{
	struct race *r = arg;
	for (unsigned i = 0; i < r->rounds; i++) {
		zp_buf *b;
		SPIN_UNTIL((b = atomic_exchange(&r->buf, NULL)) != NULL);
		put_at_once(r, i, b);
	}
	return NULL;
}

/* Gets up to 8 buffers; returns how many of them were a buffer already got
 * in this round (a cycle hands out the same one again). */
static unsigned repeats(zp_pool *p)
{
	zp_buf *got[8];
	unsigned n = 0, rep = 0;
	for (; n < 8; n++) {
		got[n] = zp_get(p, 100);
		REQUIRE(got[n] != NULL);
		for (unsigned j = 0; j < n; j++)
			rep += got[j] == got[n];
	}
	for (unsigned i = 0; i < n; i++) {
		bool first = true;
		for (unsigned j = 0; j < i; j++)
			first = first && got[j] != got[i];
		if (first)
			(void)zp_put(p, got[i]);
	}
	return rep;
}

static void test_concurrent_double_put(void)
{
	bool claims = strcmp(zp_test_backend, "lockfree-ck") == 0;
	zp_config cfg = zp_test_config();
	cfg.cache_depth = 0; /* every put reaches the store */
	struct race r = {.pool = zp_pool_create(&cfg)};
	REQUIRE(r.pool != NULL);
	r.rounds = (unsigned)(20000 * zp_test_scale) + 10;
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, putter, &r) == 0);
	unsigned rep = 0;
	for (unsigned i = 0; i < r.rounds; i++) {
		zp_buf *b = zp_get(r.pool, 100);
		REQUIRE(b != NULL);
		atomic_store(&r.buf, b);
		put_at_once(&r, i, b);
		SPIN_UNTIL(atomic_load(&r.finished) >= 2 * (i + 1));
		rep += repeats(r.pool);
	}
	pthread_join(t, NULL);
	struct zp_stats st;
	CHECK_EQ(zp_stats(r.pool, &st), 0);
	CHECK(st.outstanding <= st.gets);
	CHECK(st.cached_buffers <= st.live_buffers);
	if (claims)
		CHECK_EQ(rep, 0);
	else if (rep != 0)
		fprintf(stderr, "[%s] %u repeated gets after concurrent double puts (undefined)\n",
			zp_test_backend, rep);
	zp_pool_destroy(r.pool);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"concurrent_double_put", test_concurrent_double_put},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
