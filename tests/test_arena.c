/*
 * test_arena.c - the page arena behind buffers of 4 KiB up to 64 KiB
 * (lib/zp_arena.h): page-aligned slots that never overlap, reuse of the
 * resident slots first, the bound on free resident bytes, and pages given
 * back by zp_trim and zp_pool_destroy.  Residency is read with mincore(),
 * which reports the kernel's page tables, not a speed: no test here waits
 * or times anything.  The arena is process-wide; each test starts from a
 * purge (zp_trim) so that its counts are exact.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zp_arena.h"
#include "zp_test.h"

/* A pool where every put beyond one idle buffer per class is freed. */
static zp_pool *evicting_pool(void)
{
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	c.max_per_class = 1;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	return p;
}

/* Pages of [p, p+n) that are resident; an unmapped range counts none. */
static size_t resident_pages(const void *p, size_t n)
{
	size_t pages = (n + ZP_PAGE - 1) / ZP_PAGE;
	unsigned char vec[64];
	REQUIRE(pages <= sizeof vec);
	if (mincore((void *)p, n, vec) != 0)
		return 0; /* ENOMEM: no longer mapped, so nothing resident */
	size_t r = 0;
	for (size_t i = 0; i < pages; i++)
		r += vec[i] & 1;
	return r;
}

static void purge_all(zp_pool *p)
{
	zp_trim(p);
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 0);
}

static void test_slots_aligned_and_disjoint(void)
{
	static const size_t lens[] = {4096, 4097, 5000, 8192, 12288, 20000, 40000, 61440, 65535};
	enum { NLENS = sizeof lens / sizeof lens[0], SMALL_N = 300, N = 24 };
	zp_pool *p = evicting_pool();
	zp_buf *b[NLENS][SMALL_N];
	for (size_t k = 0; k < NLENS; k++) {
		size_t n = k == 0 ? SMALL_N : N; /* 300 x 4 KiB: more than a span */
		for (size_t i = 0; i < n; i++) {
			REQUIRE((b[k][i] = zp_get(p, lens[k])) != NULL);
			CHECK_EQ((uintptr_t)b[k][i]->data % ZP_PAGE, 0);
			memset(b[k][i]->data, (int)(k * 31 + i), b[k][i]->cap);
		}
	}
	for (size_t k = 0; k < NLENS; k++) {
		size_t n = k == 0 ? SMALL_N : N;
		for (size_t i = 0; i < n; i++) {
			const unsigned char *d = b[k][i]->data;
			unsigned char want = (unsigned char)(k * 31 + i);
			size_t bad = 0;
			for (size_t j = 0; j < b[k][i]->cap; j++)
				bad += d[j] != want;
			CHECK_EQ(bad, 0);
			zp_put(p, b[k][i]);
		}
	}
	zp_pool_destroy(p);
}

/* With 16 classes per doubling, a class just below 64 KiB (62 KiB) rounds
 * up to a 64 KiB slot: the largest stride, 15 slots per span. */
static void test_largest_stride(void)
{
	enum { N = 40 }; /* more than two spans */
	zp_config c = zp_test_config();
	c.classes_per_doubling = 16;
	c.cache_depth = 0;
	c.max_per_class = 1;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *b[N];
	for (int i = 0; i < N; i++) {
		REQUIRE((b[i] = zp_get(p, 63000)) != NULL);
		CHECK_EQ(b[i]->cap, 63488);
		CHECK_EQ((uintptr_t)b[i]->data % ZP_PAGE, 0);
		memset(b[i]->data, i, b[i]->cap);
	}
	for (int i = 0; i < N; i++) {
		CHECK_EQ(b[i]->data[0], (unsigned char)i);
		CHECK_EQ(b[i]->data[b[i]->cap - 1], (unsigned char)i);
		zp_put(p, b[i]);
	}
	zp_pool_destroy(p);
}

static void test_freed_slot_reused_first(void)
{
	zp_pool *p = evicting_pool();
	purge_all(p);
	zp_buf *a = zp_get(p, 8192), *b = zp_get(p, 8192);
	REQUIRE(a != NULL && b != NULL);
	unsigned char *da = a->data, *db = b->data;
	zp_put(p, a);
	zp_put(p, b); /* the store keeps one; the other goes to the arena */
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 8192);
	zp_buf *c = zp_get(p, 8192), *d = zp_get(p, 8192);
	REQUIRE(c != NULL && d != NULL);
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 0);
	/* both came back: the store's and the arena's resident slot */
	CHECK((c->data == da && d->data == db) || (c->data == db && d->data == da));
	zp_put(p, c);
	zp_put(p, d);
	zp_pool_destroy(p);
}

static void test_trim_gives_pages_back(void)
{
	zp_pool *p = evicting_pool();
	purge_all(p);
	/* held throughout: the span stays mapped, so its free pages must be
	 * given back one by one (an empty span would be unmapped whole) */
	zp_buf *keep = zp_get(p, 16384);
	zp_buf *a = zp_get(p, 16384), *b = zp_get(p, 16384);
	REQUIRE(keep != NULL && a != NULL && b != NULL);
	memset(keep->data, 5, keep->cap);
	memset(a->data, 1, a->cap);
	memset(b->data, 2, b->cap);
	unsigned char *da = a->data, *db = b->data;
	CHECK_EQ(resident_pages(da, 16384), 4);
	CHECK_EQ(resident_pages(db, 16384), 4);
	zp_put(p, a);
	zp_put(p, b);
	/* one idle in the store, one free in the arena: both still resident */
	CHECK_EQ(resident_pages(da, 16384) + resident_pages(db, 16384), 8);
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 16384);
	zp_trim(p);
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 0);
	CHECK_EQ(resident_pages(da, 16384), 0);
	CHECK_EQ(resident_pages(db, 16384), 0);
	CHECK_EQ(resident_pages(keep->data, 16384), 4);
	CHECK_EQ(keep->data[0], 5);
	zp_put(p, keep);
	zp_pool_destroy(p);
}

static void test_free_resident_bytes_bounded(void)
{
	enum { N = 600 }; /* 600 x 8 KiB: more than twice _ZP_ARENA_DIRTY_MAX */
	zp_pool *p = evicting_pool();
	purge_all(p);
	static zp_buf *b[N];
	for (int i = 0; i < N; i++) {
		REQUIRE((b[i] = zp_get(p, 8192)) != NULL);
		memset(b[i]->data, 3, b[i]->cap);
	}
	uint64_t high = 0;
	for (int i = 0; i < N; i++) {
		zp_put(p, b[i]);
		uint64_t d = _zp_test_arena_dirty_bytes();
		CHECK(d <= _ZP_ARENA_DIRTY_MAX);
		high = d > high ? d : high;
	}
	/* it filled up to the bound (slots were kept for reuse) and was purged */
	CHECK(high > _ZP_ARENA_DIRTY_MAX - 8192);
	CHECK(_zp_test_arena_dirty_bytes() < (uint64_t)(N - 1) * 8192);
	zp_pool_destroy(p);
}

static void test_destroy_gives_pages_back(void)
{
	enum { N = 100 };
	zp_config c = zp_test_config(); /* the defaults: caches and store keep all */
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *b[N];
	unsigned char *data[N];
	for (int i = 0; i < N; i++) {
		REQUIRE((b[i] = zp_get(p, 32768)) != NULL);
		memset(b[i]->data, 4, b[i]->cap);
		data[i] = b[i]->data;
	}
	for (int i = 0; i < N; i++)
		zp_put(p, b[i]);
	size_t resident = 0;
	for (int i = 0; i < N; i++)
		resident += resident_pages(data[i], 32768);
	CHECK_EQ(resident, (size_t)N * 8); /* idle in the pool, resident */
	zp_pool_destroy(p);
	resident = 0;
	for (int i = 0; i < N; i++)
		resident += resident_pages(data[i], 32768);
	CHECK_EQ(resident, 0);
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 0);
}

/* Threads get, fill, check and put buffers of every arena size, with
 * most puts freed to the arena: no two live buffers may share a byte. */
struct worker {
	zp_pool *pool;
	unsigned id;
	long iters;
	long bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	enum { HOLD = 8 };
	zp_buf *held[HOLD] = {0};
	uint64_t x = 0x9e3779b97f4a7c15ull * (w->id + 1);
	for (long i = 0; i < w->iters; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		unsigned h = (unsigned)(x >> 40) % HOLD;
		if (held[h] != NULL) {
			unsigned char want = (unsigned char)(w->id * 16 + h);
			const unsigned char *d = held[h]->data;
			if (d[0] != want || d[held[h]->cap / 2] != want ||
			    d[held[h]->cap - 1] != want)
				w->bad++;
			zp_put(w->pool, held[h]);
		}
		size_t len = 4096 + (size_t)((x >> 20) % (60 * 1024));
		held[h] = zp_get(w->pool, len);
		if (held[h] == NULL) {
			w->bad++;
			continue;
		}
		memset(held[h]->data, (int)(w->id * 16 + h), held[h]->cap);
	}
	for (unsigned h = 0; h < HOLD; h++)
		if (held[h] != NULL)
			zp_put(w->pool, held[h]);
	return NULL;
}

static void test_threads_share_the_arena(void)
{
	enum { T = 4 };
	zp_pool *p = evicting_pool();
	struct worker w[T];
	pthread_t th[T];
	long iters = (long)(20000 * zp_test_scale);
	if (iters < 200)
		iters = 200;
	for (unsigned i = 0; i < T; i++) {
		w[i] = (struct worker){.pool = p, .id = i, .iters = iters};
		REQUIRE(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	for (unsigned i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(w[i].bad, 0);
	}
	struct zp_stats s;
	REQUIRE(zp_stats(p, &s) == 0);
	CHECK_EQ(s.gets, s.puts);
	zp_pool_destroy(p);
	CHECK_EQ(_zp_test_arena_dirty_bytes(), 0);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"slots_aligned_and_disjoint", test_slots_aligned_and_disjoint},
	    {"largest_stride", test_largest_stride},
	    {"freed_slot_reused_first", test_freed_slot_reused_first},
	    {"trim_gives_pages_back", test_trim_gives_pages_back},
	    {"free_resident_bytes_bounded", test_free_resident_bytes_bounded},
	    {"destroy_gives_pages_back", test_destroy_gives_pages_back},
	    {"threads_share_the_arena", test_threads_share_the_arena},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
