/*
 * test_lockfree_stress.c - hammer ONE size class of a pool through the
 * shared store, to stress a lock-free backend's stacks.
 *
 *   usage: test_lockfree_stress BACKEND [ITERATIONS [THREADS]]  (--help)
 *
 * ITERATIONS is per worker thread (default 1000000: about a second);
 * THREADS defaults to 4 (2 to 64).  docs/lockfree.md gives the long
 * manual run.  Of the library, only the public API (zeropool.h) is used.
 *
 * Phase 1, cache_depth 0: every zp_get is a take(1) and every zp_put a
 * give(1), so the workers meet only in the backend.  Phase 2, a small
 * cache (depth 4, batch 2) with a tight class bound: batches of 2 move as
 * magazines and some gives are refused in part.  In both phases:
 *
 *   - each worker holds 0..4 buffers at once (phase 2: 0..16, more than
 *     its cache), in a pseudo-random order of gets and puts, with random
 *     lengths that all fall in one class;
 *   - each holder writes its own pattern (thread id, sequence number) over
 *     the whole buffer right after zp_get and checks it right before
 *     zp_put: a buffer handed to two holders at once is caught, because
 *     the second holder's pattern overwrites the first's;
 *   - one extra thread calls zp_trim() in a loop while the workers run
 *     (trim takes everything from the store and frees it);
 *   - at the end the books must balance (zp_stats): gets == puts, the
 *     counts the workers made, nothing outstanding, nothing cached, and
 *     every live buffer idle in the store.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"
#include "zp_test.h"

enum { MAX_HOLD = 16, MAX_THREADS = 64 };

/* All lengths of (CLASS_LO, CLASS_HI] fall in one class with the default
 * 4 classes per doubling (224 < len <= 256); checked at start. */
#define CLASS_LO 225u
#define CLASS_HI 256u

static int failures;

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "test_lockfree_stress: " __VA_ARGS__);                             \
		fputc('\n', stderr);                                                               \
		failures++;                                                                        \
	} while (0)

struct run {
	zp_pool *pool;
	long iters;
	unsigned hold; /* buffers a worker holds at most */
	atomic_bool stop_trim;
	atomic_long corrupt, refused, empty;
	atomic_ulong gets, puts, trims;
};

struct worker {
	struct run *run;
	unsigned id;
	pthread_t tid;
	unsigned long gets, puts;
};

struct held {
	zp_buf *b;
	uint64_t pat;
	size_t len;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill(zp_buf *b, uint64_t pat)
{
	uint64_t *w = (uint64_t *)(void *)b->data;
	for (size_t i = 0; i < b->cap / 8; i++)
		w[i] = pat ^ i;
}

static bool intact(const zp_buf *b, uint64_t pat)
{
	const uint64_t *w = (const uint64_t *)(const void *)b->data;
	for (size_t i = 0; i < b->cap / 8; i++)
		if (w[i] != (pat ^ i))
			return false;
	return true;
}

static void put_back(struct run *r, struct worker *w, struct held *h)
{
	if (!intact(h->b, h->pat) || h->b->len != h->len)
		atomic_fetch_add(&r->corrupt, 1);
	if (zp_put(r->pool, h->b) != 0)
		atomic_fetch_add(&r->refused, 1);
	else
		w->puts++;
	h->b = NULL;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	struct held held[MAX_HOLD];
	unsigned n = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (w->id + 1);
	uint64_t seq = 0;
	memset(held, 0, sizeof held);
	for (long it = 0; it < r->iters; it++) {
		uint64_t x = xorshift(&rng);
		/* Get when holding nothing, put when full, else a coin flip. */
		bool get = n == 0 || (n < r->hold && (x & 1));
		if (get) {
			size_t len = CLASS_LO + (size_t)((x >> 8) % (CLASS_HI - CLASS_LO + 1));
			zp_buf *b = zp_get(r->pool, len);
			if (b == NULL) {
				atomic_fetch_add(&r->empty, 1);
				continue;
			}
			w->gets++;
			struct held *h = &held[n++];
			h->b = b;
			h->len = len;
			h->pat = ((uint64_t)w->id << 56) | (++seq << 8);
			fill(b, h->pat);
		} else {
			/* Put a random one of those held (not always the newest). */
			unsigned k = (unsigned)((x >> 16) % n);
			put_back(r, w, &held[k]);
			held[k] = held[--n];
		}
		if ((x & 0xfff) == 0)
			sched_yield(); /* shuffle the interleavings a little */
	}
	while (n > 0)
		put_back(r, w, &held[--n]);
	return NULL;
}

static void *trimmer_main(void *arg)
{
	struct run *r = arg;
	while (!atomic_load(&r->stop_trim)) {
		if (zp_trim(r->pool) == (size_t)-1)
			atomic_fetch_add(&r->refused, 1);
		atomic_fetch_add(&r->trims, 1);
		sched_yield();
	}
	return NULL;
}

static void phase(const char *backend, const char *name, unsigned depth, unsigned batch,
		  unsigned hold, unsigned max_per_class, long iters, unsigned threads)
{
	zp_config cfg;
	zp_config_init(&cfg);
	cfg.backend = backend;
	cfg.cache_depth = depth;
	cfg.batch = batch;
	cfg.max_per_class = max_per_class;
	zp_pool *pool = zp_pool_create(&cfg);
	if (pool == NULL) {
		FAIL("%s: zp_pool_create(%s): %s", name, backend, strerror(errno));
		return;
	}
	if (zp_class_of(pool, CLASS_LO) != zp_class_of(pool, CLASS_HI) ||
	    zp_class_of(pool, CLASS_LO - 1) == zp_class_of(pool, CLASS_LO))
		FAIL("%s: lengths %u..%u are not exactly one class", name, CLASS_LO, CLASS_HI);

	struct run r = {.pool = pool, .iters = iters, .hold = hold};
	struct worker w[MAX_THREADS];
	pthread_t trimmer;
	memset(w, 0, sizeof w);
	for (unsigned i = 0; i < threads; i++) {
		w[i].run = &r;
		w[i].id = i + 1;
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
			FAIL("%s: pthread_create", name);
			exit(1);
		}
	}
	if (pthread_create(&trimmer, NULL, trimmer_main, &r) != 0) {
		FAIL("%s: pthread_create", name);
		exit(1);
	}
	unsigned long gets = 0, puts = 0, lo = (unsigned long)-1, hi = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(w[i].tid, NULL);
		gets += w[i].gets;
		puts += w[i].puts;
		lo = w[i].gets < lo ? w[i].gets : lo;
		hi = w[i].gets > hi ? w[i].gets : hi;
	}
	atomic_store(&r.stop_trim, true);
	pthread_join(trimmer, NULL);

	struct zp_stats st;
	if (zp_stats(pool, &st) != 0) {
		FAIL("%s: zp_stats: %s", name, strerror(errno));
	} else {
		if (r.corrupt != 0)
			FAIL("%s: %ld buffers were corrupted (handed to two holders?)", name,
			     (long)r.corrupt);
		if (r.refused != 0)
			FAIL("%s: %ld calls failed", name, (long)r.refused);
		if (r.empty != 0)
			FAIL("%s: %ld zp_get calls returned NULL", name, (long)r.empty);
		if (st.gets != gets || st.puts != puts || st.gets != st.puts)
			FAIL("%s: books: pool gets %llu puts %llu, workers got %lu put %lu", name,
			     (unsigned long long)st.gets, (unsigned long long)st.puts, gets, puts);
		if (st.outstanding != 0)
			FAIL("%s: %llu buffers outstanding", name,
			     (unsigned long long)st.outstanding);
		if (st.cached_buffers != 0)
			FAIL("%s: %llu buffers still cached after every worker exited", name,
			     (unsigned long long)st.cached_buffers);
		if (st.live_buffers != st.idle_buffers)
			FAIL("%s: %llu live buffers but %llu idle in the store", name,
			     (unsigned long long)st.live_buffers,
			     (unsigned long long)st.idle_buffers);
		if (st.idle_buffers > max_per_class)
			FAIL("%s: %llu idle buffers over the class bound %u", name,
			     (unsigned long long)st.idle_buffers, max_per_class);
		printf("%-14s %-8s threads %u: gets %lu (per thread %lu..%lu) store_hits %llu "
		       "fresh %llu evictions %llu trimmed %llu (%lu trims) contention %llu idle "
		       "%llu\n",
		       backend, name, threads, gets, lo, hi, (unsigned long long)st.store_hits,
		       (unsigned long long)st.fresh, (unsigned long long)st.evictions,
		       (unsigned long long)st.trimmed, (unsigned long)r.trims,
		       (unsigned long long)st.contention, (unsigned long long)st.idle_buffers);
	}
	zp_pool_destroy(pool);
}

static int usage(FILE *to, const char *prog, int rc)
{
	fprintf(to,
		"usage: %s BACKEND [ITERATIONS [THREADS]]\n"
		"  BACKEND     one of:",
		prog);
	zp_test_print_backends(to);
	fprintf(to,
		"\n  ITERATIONS  per worker thread, >= 1 (default 1000000)\n"
		"  THREADS     2..%d (default 4)\n",
		MAX_THREADS);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return usage(stdout, argv[0], 0);
	if (argc < 2 || argc > 4)
		return usage(stderr, argv[0], 2);
	const char *backend = argv[1];
	long iters = 1000000, threads = 4;
	const char *why = NULL, *what = NULL;
	if (!zp_test_backend_known(backend)) {
		why = "unknown backend";
		what = backend;
	} else if (argc > 2 && !zp_test_parse_long(argv[2], 1, LONG_MAX, &iters)) {
		why = "bad ITERATIONS";
		what = argv[2];
	} else if (argc > 3 && !zp_test_parse_long(argv[3], 2, MAX_THREADS, &threads)) {
		why = "bad THREADS";
		what = argv[3];
	}
	if (why != NULL) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], why, what);
		return usage(stderr, argv[0], 2);
	}
	phase(backend, "depth0", 0, 0, 4, 64, iters, (unsigned)threads);
	phase(backend, "batch2", 4, 2, MAX_HOLD, 24, iters, (unsigned)threads);
	if (failures != 0) {
		fprintf(stderr, "test_lockfree_stress %s: %d failures\n", backend, failures);
		return 1;
	}
	return 0;
}
