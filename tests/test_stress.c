/*
 * test_stress.c - multithreaded canary stress and conservation, against
 * every backend.
 *
 * Every holder writes its own pattern (thread id and a sequence number)
 * over the whole buffer right after zp_get and checks it right before
 * zp_put, so a buffer handed to two holders at once is caught: the second
 * holder's pattern overwrites the first's.  Half of the buffers travel to
 * another thread through a mutex-protected mailbox and are put there.  At
 * the end the books must balance: the pool counts exactly the gets and puts
 * the threads made, nothing is outstanding, and once the threads have
 * exited every live buffer is idle in the shared store.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "zp_test.h"

enum { THREADS = 4, HOLD = 6, MAILBOX = 64 };

struct held {
	zp_buf *b;
	uint64_t pat;
};

struct mailbox {
	pthread_mutex_t lock;
	struct held slot[MAILBOX];
	unsigned n;
};

struct run {
	zp_pool *pool;
	struct mailbox box;
	long iters;
	_Atomic long gets, puts, errors;
};

struct worker {
	struct run *run;
	unsigned id;
};

static uint64_t pattern(unsigned id, uint64_t seq)
{
	return ((uint64_t)id << 48) ^ (seq * 0x9e3779b97f4a7c15ull);
}

static void fill(zp_buf *b, uint64_t pat)
{
	size_t n = b->cap / 8;
	uint64_t *w = (uint64_t *)(void *)b->data;
	for (size_t i = 0; i < n; i++)
		w[i] = pat + i;
}

static bool intact(const zp_buf *b, uint64_t pat)
{
	size_t n = b->cap / 8;
	const uint64_t *w = (const uint64_t *)(const void *)b->data;
	for (size_t i = 0; i < n; i++)
		if (w[i] != pat + i)
			return false;
	return true;
}

static void release(struct run *r, struct held *h)
{
	if (!intact(h->b, h->pat))
		r->errors++;
	if (zp_put(r->pool, h->b) != 0)
		r->errors++;
	else
		r->puts++;
	h->b = NULL;
}

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	static const size_t sizes[] = {1, 64, 100, 700, 4096, 5000, 20000, 65536};
	struct held held[HOLD] = {{0}};
	uint64_t x = 0x1234567u + w->id, seq = 0;
	long gets = 0;
	for (long it = 0; it < r->iters; it++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		unsigned slot = (unsigned)(x >> 33) % HOLD;
		if (held[slot].b != NULL)
			release(r, &held[slot]);
		zp_buf *b = zp_get(r->pool, sizes[(x >> 40) % 8]);
		if (b == NULL) {
			r->errors++;
			continue;
		}
		gets++;
		uint64_t pat = pattern(w->id, ++seq);
		fill(b, pat);
		if ((x >> 20) % 2 == 0) {
			held[slot] = (struct held){b, pat};
			continue;
		}
		/* Mail it: the receiver checks our pattern, writes its own. */
		struct held in = {NULL, 0};
		pthread_mutex_lock(&r->box.lock);
		if (r->box.n == MAILBOX)
			in = r->box.slot[--r->box.n];
		r->box.slot[r->box.n++] = (struct held){b, pat};
		pthread_mutex_unlock(&r->box.lock);
		if (in.b != NULL) {
			if (!intact(in.b, in.pat)) /* changed in transit: two owners */
				r->errors++;
			in.pat = pattern(w->id, ++seq);
			fill(in.b, in.pat);
			release(r, &in);
		}
	}
	for (int i = 0; i < HOLD; i++)
		if (held[i].b != NULL)
			release(r, &held[i]);
	r->gets += gets;
	return NULL;
}

static void stress(unsigned depth, zp_evict_policy pol, unsigned max_per_class)
{
	zp_config c = zp_test_config();
	c.cache_depth = depth;
	c.evict = pol;
	c.max_per_class = max_per_class;
	struct run r = {.iters = (long)(20000 * zp_test_scale)};
	r.pool = zp_pool_create(&c);
	REQUIRE(r.pool != NULL);
	pthread_mutex_init(&r.box.lock, NULL);
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (struct worker){&r, i + 1};
		REQUIRE(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < r.box.n; i++)
		release(&r, &r.box.slot[i]);
	CHECK_EQ(r.errors, 0);
	struct zp_stats st;
	CHECK_EQ(zp_stats(r.pool, &st), 0);
	CHECK_EQ(st.gets, r.gets);
	CHECK_EQ(st.puts, r.puts);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.gets, st.cache_hits + st.store_hits + st.fresh + st.oversize);
	/* the workers exited: their caches went back to the store (the main
	 * thread's cache holds what it put last) */
	struct zp_stats after;
	zp_trim(r.pool); /* empties the store and the main thread's cache */
	CHECK_EQ(zp_stats(r.pool, &after), 0);
	CHECK_EQ(after.live_buffers, 0);
	CHECK_EQ(after.idle_bytes, 0);
	CHECK_EQ(after.threads, depth > 0 && r.box.n > 0 ? 1 : after.threads);
	zp_pool_destroy(r.pool);
	pthread_mutex_destroy(&r.box.lock);
}

static void test_cached(void)
{
	stress(4, ZP_EVICT_DROP_COLDEST, 32);
}

static void test_backend_only(void)
{
	stress(0, ZP_EVICT_DROP_COLDEST, 32);
}

static void test_tiny_store_drop_newest(void)
{
	stress(2, ZP_EVICT_DROP_NEWEST, 2);
}

static void test_tiny_store_drop_coldest(void)
{
	stress(0, ZP_EVICT_DROP_COLDEST, 1);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"cached", test_cached},
	    {"backend_only", test_backend_only},
	    {"tiny_store_drop_newest", test_tiny_store_drop_newest},
	    {"tiny_store_drop_coldest", test_tiny_store_drop_coldest},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
