/*
 * test_backend_contract.c - the backend contract (lib/zp_backend.h), checked
 * by driving one backend's ops directly, without the front end: the way
 * Concurrency Kit's validators drive each stack variant.
 *
 *   usage: test_backend_contract BACKEND|all [SCALE] [TEST]
 *
 * The test owns its descriptors (zeroed zp_buf, _zp_class set, alive until
 * the store is destroyed) and keeps a model of where each one is: in its
 * hands, being given, or in the store in a given class with a give sequence
 * number (higher is hotter).  Every call is checked against the model, so a
 * descriptor that is lost, duplicated, returned from the wrong class or
 * returned twice fails the test at the call that did it.
 *
 * Single-threaded, the contract is exact where it is loose under races:
 * count() is the model's count, a give with room admits everything, a take
 * returns min(n, count) (it looks in every shard), and nothing contends.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zp_backend.h"
#include "zp_os.h"
#include "zp_test.h"

/* Where a descriptor is. */
enum where { HAND, GIVING, STORED };

/* Words after out[n] and victims[n]: a backend writing there breaks the
 * "at most n" contract; this pointer is never a descriptor. */
#define GUARD 4
static zp_buf *const guard_value = (zp_buf *)(uintptr_t)0x5a5a5a50;

struct model {
	const struct zp_backend_ops *ops;
	struct zp_store_params p;
	void *store;
	zp_buf *desc; /* [ndesc]: descriptor i belongs to class i % classes */
	size_t ndesc;
	unsigned char *where; /* [ndesc] */
	uint64_t *seq;        /* [ndesc]: give order while STORED */
	size_t stored[8];     /* STORED descriptors per class */
	uint64_t next_seq;
	zp_buf **in, **out, **victims; /* [max_batch + GUARD] */
	int failures0;                 /* zp_test_failures when created */
};

static const struct zp_backend_ops *backend(void)
{
	const struct zp_backend_ops *ops = _zp_backend_find(zp_test_backend);
	REQUIRE(ops != NULL);
	return ops;
}

static struct zp_store_params params(unsigned classes, unsigned max_per_class, unsigned max_batch,
				     unsigned shards, zp_evict_policy evict)
{
	struct zp_store_params p = {.classes = classes,
				    .max_per_class = max_per_class,
				    .max_buffers = SIZE_MAX, /* max_per_class bounds */
				    .max_batch = max_batch,
				    .shards = shards,
				    .evict = evict};
	return p;
}

/* A store with `per_class` descriptors of each class. */
static void model_init(struct model *m, struct zp_store_params p, size_t per_class)
{
	REQUIRE(p.classes >= 1 && p.classes <= 8);
	memset(m, 0, sizeof *m);
	m->ops = backend();
	m->p = p;
	m->ndesc = per_class * p.classes;
	m->desc = calloc(m->ndesc, sizeof *m->desc);
	m->where = calloc(m->ndesc, 1);
	m->seq = calloc(m->ndesc, sizeof *m->seq);
	m->in = calloc(p.max_batch + GUARD, sizeof *m->in);
	m->out = calloc(p.max_batch + GUARD, sizeof *m->out);
	m->victims = calloc(p.max_batch + GUARD, sizeof *m->victims);
	REQUIRE(m->desc && m->where && m->seq && m->in && m->out && m->victims);
	for (size_t i = 0; i < m->ndesc; i++)
		m->desc[i]._zp_class = (uint32_t)(i % p.classes);
	m->store = m->ops->create(&m->p);
	REQUIRE(m->store != NULL);
	m->failures0 = zp_test_failures;
}

/* A check failed since the store was created: its state can no longer be
 * trusted (a buffer it returned twice may now be on a stack twice, a cycle
 * that a take would follow forever), so loops over it stop. */
static int broken(const struct model *m)
{
	return zp_test_failures != m->failures0;
}

/* Destroy the store, then free the descriptors (type-stable until then). */
static void model_fini(struct model *m)
{
	m->ops->destroy(m->store);
	free(m->desc);
	free(m->where);
	free(m->seq);
	free(m->in);
	free(m->out);
	free(m->victims);
}

/* The index of a descriptor, or ndesc for a pointer that is not one. */
static size_t index_of(const struct model *m, const zp_buf *b)
{
	uintptr_t base = (uintptr_t)m->desc, a = (uintptr_t)b;
	if (a < base || (a - base) % sizeof(zp_buf) != 0 || (a - base) / sizeof(zp_buf) >= m->ndesc)
		return m->ndesc;
	return (a - base) / sizeof(zp_buf);
}

static void guard_set(zp_buf **arr, unsigned n)
{
	for (unsigned i = 0; i < GUARD; i++)
		arr[n + i] = guard_value;
}

static int guard_intact(zp_buf **arr, unsigned n)
{
	for (unsigned i = 0; i < GUARD; i++)
		if (arr[n + i] != guard_value)
			return 0;
	return 1;
}

static void check_count(const struct model *m, unsigned cls)
{
	CHECK_EQ(m->ops->count(m->store, cls), m->stored[cls]);
	CHECK(m->ops->count(m->store, cls) <= m->p.max_per_class);
}

/* Give descriptors idx[0..n) (coldest first) to class cls.  Checks the
 * victims against the model and the contract; returns their number and,
 * when vidx is not NULL, their indices.  `may_refuse`: an allocation may
 * fail in this give (failure injection), and a store that cannot grow may
 * refuse buffers below its bound: the store then holds at most, not
 * exactly, what fits, and every buffer is still stored or a victim. */
static unsigned give_ex(struct model *m, unsigned hint, unsigned cls, const size_t *idx, unsigned n,
			size_t *vidx, int may_refuse)
{
	REQUIRE(n <= m->p.max_batch);
	size_t before = m->stored[cls];
	for (unsigned i = 0; i < n; i++) {
		REQUIRE(idx[i] < m->ndesc && m->where[idx[i]] == HAND);
		REQUIRE(idx[i] % m->p.classes == cls);
		m->where[idx[i]] = GIVING;
		m->in[i] = &m->desc[idx[i]];
	}
	guard_set(m->victims, n);
	unsigned nv = m->ops->give(m->store, hint, cls, m->in, n, m->victims);
	CHECK(nv <= n);
	CHECK(guard_intact(m->victims, n));
	if (nv > n)
		nv = n;
	/* Victims: given now or stored earlier in this class, never one in the
	 * test's hands, never twice. */
	unsigned old = 0;
	uint64_t hottest_old = 0;
	for (unsigned v = 0; v < nv; v++) {
		size_t i = index_of(m, m->victims[v]);
		CHECK(i < m->ndesc);
		if (i >= m->ndesc)
			continue;
		CHECK(i % m->p.classes == cls);
		CHECK(m->where[i] == GIVING || m->where[i] == STORED);
		if (m->where[i] == STORED) {
			old++;
			m->stored[cls]--;
			if (m->seq[i] > hottest_old)
				hottest_old = m->seq[i];
		}
		m->where[i] = HAND;
		if (vidx != NULL)
			vidx[v] = i;
	}
	/* Evicting stored buffers is drop-coldest's alone, and then only the
	 * coldest (with one shard; sharded stores order per shard). */
	if (m->p.evict == ZP_EVICT_DROP_NEWEST)
		CHECK_EQ(old, 0);
	else if (old != 0 && m->p.shards <= 1)
		for (size_t i = cls; i < m->ndesc; i += m->p.classes)
			if (m->where[i] == STORED)
				CHECK(m->seq[i] > hottest_old);
	for (unsigned i = 0; i < n; i++)
		if (m->where[idx[i]] == GIVING) {
			m->where[idx[i]] = STORED;
			m->seq[idx[i]] = ++m->next_seq;
			m->stored[cls]++;
		}
	/* Single-threaded the bound is exact: the store grows by n - victims
	 * up to max_per_class, no further, and admits whatever fits. */
	size_t want = before + n < m->p.max_per_class ? before + n : m->p.max_per_class;
	if (may_refuse)
		CHECK(m->stored[cls] <= want);
	else
		CHECK_EQ(m->stored[cls], want);
	check_count(m, cls);
	return nv;
}

static unsigned give(struct model *m, unsigned hint, unsigned cls, const size_t *idx, unsigned n,
		     size_t *vidx)
{
	return give_ex(m, hint, cls, idx, n, vidx, 0);
}

/* Take up to n of class cls; checks them against the model and returns
 * their number, their indices in idx[] (coldest first). */
static unsigned take(struct model *m, unsigned hint, unsigned cls, unsigned n, size_t *idx)
{
	REQUIRE(n <= m->p.max_batch);
	size_t before = m->stored[cls];
	guard_set(m->out, n);
	unsigned got = m->ops->take(m->store, hint, cls, m->out, n);
	CHECK(got <= n);
	CHECK(guard_intact(m->out, n));
	if (got > n)
		got = n;
	/* It looks in every shard before returning fewer than asked. */
	CHECK_EQ(got, before < n ? before : n);
	for (unsigned k = 0; k < got; k++) {
		size_t i = index_of(m, m->out[k]);
		CHECK(i < m->ndesc);
		if (i >= m->ndesc) {
			idx[k] = m->ndesc;
			continue;
		}
		/* From this class's store, once: classes are independent. */
		CHECK(i % m->p.classes == cls && m->desc[i]._zp_class == cls);
		CHECK(m->where[i] == STORED);
		if (m->where[i] == STORED)
			m->stored[cls]--;
		m->where[i] = HAND;
		idx[k] = i;
	}
	check_count(m, cls);
	return got;
}

/* Up to n descriptors of class cls in the test's hands, lowest index first;
 * returns how many. */
static unsigned pick(const struct model *m, unsigned cls, unsigned n, size_t *idx)
{
	unsigned k = 0;
	for (size_t i = cls; i < m->ndesc && k < n; i += m->p.classes)
		if (m->where[i] == HAND)
			idx[k++] = i;
	return k;
}

/* Take everything left: exactly what count() says, then count() is 0. */
static void drain(struct model *m)
{
	size_t idx[128];
	REQUIRE(m->p.max_batch <= 128);
	for (unsigned cls = 0; cls < m->p.classes; cls++) {
		size_t said = m->ops->count(m->store, cls), got = 0;
		unsigned k;
		while (!broken(m) && (k = take(m, cls, cls, m->p.max_batch, idx)) > 0)
			got += k;
		CHECK_EQ(got, said);
		CHECK_EQ(m->ops->count(m->store, cls), 0);
	}
	for (size_t i = 0; i < m->ndesc; i++)
		CHECK(m->where[i] == HAND);
}

static void check_contention_zero(const struct model *m)
{
	struct zp_backend_stats st;
	memset(&st, 0xff, sizeof st);
	m->ops->stats(m->store, &st);
	CHECK_EQ(st.contention, 0);
}

static void check_same(const size_t *got, const size_t *want, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (got[i] != want[i]) {
			CHECK_EQ(got[i], want[i]);
			return;
		}
}

/* ---- ordering ----------------------------------------------------------- */

/* take() writes out[] coldest first, hottest last, and reuses the buffers
 * most recently given: a batch given and then taken comes back as given. */
static void test_order_batches(void)
{
	struct model m;
	model_init(&m, params(2, 64, 16, 1, ZP_EVICT_DROP_NEWEST), 80);
	size_t a[16], b[16], got[32];
	unsigned sizes[] = {1, 2, 3, 16};
	for (unsigned s = 0; s < 4; s++) {
		unsigned n = sizes[s];
		REQUIRE(pick(&m, 1, n, a) == n);
		CHECK_EQ(give(&m, 0, 1, a, n, NULL), 0);
		CHECK_EQ(take(&m, 0, 1, n, got), n);
		check_same(got, a, n);
	}
	/* Two batches: the later one is hotter and comes back first. */
	REQUIRE(pick(&m, 1, 5, a) == 5);
	give(&m, 0, 1, a, 5, NULL);
	REQUIRE(pick(&m, 1, 7, b) == 7);
	give(&m, 0, 1, b, 7, NULL);
	CHECK_EQ(take(&m, 0, 1, 7, got), 7);
	check_same(got, b, 7);
	CHECK_EQ(take(&m, 0, 1, 5, got), 5);
	check_same(got, a, 5);
	/* One take spanning both batches: the colder batch first. */
	give(&m, 0, 1, a, 5, NULL);
	give(&m, 0, 1, b, 7, NULL);
	CHECK_EQ(take(&m, 0, 1, 12, got), 12);
	check_same(got, a, 5);
	check_same(got + 5, b, 7);
	/* Partial takes: the hottest j of the batch, in order, then the rest. */
	for (unsigned j = 1; j < 16; j++) {
		REQUIRE(pick(&m, 1, 16, a) == 16);
		give(&m, 0, 1, a, 16, NULL);
		CHECK_EQ(take(&m, 0, 1, j, got), j);
		check_same(got, a + 16 - j, j);
		CHECK_EQ(take(&m, 0, 1, 16, got), 16 - j);
		check_same(got, a, 16 - j);
	}
	drain(&m);
	model_fini(&m);
}

/* Single buffers (cache_depth 0, zp_preallocate): last in, first out.
 *
 * Not asserted: the order across single gives and batch gives mixed in one
 * class.  lockfree-ck keeps singles on their own stack and a take of more
 * than ZP_LF_CK_SINGLE_MAX drains the magazines first and puts the singles
 * at the cold end of out[] even when they were given last (give {0,1,2},
 * give {3}, take 4 -> 3 0 1 2), and a take of one prefers a cold single to
 * a hot magazine.  The front end mixes the two in one class only when
 * zp_preallocate (single gives) meets caches that drain batches, or on
 * magazine ENOMEM; the contract's order is checked per kind of give. */
static void test_order_singles(void)
{
	struct model m;
	model_init(&m, params(1, 64, 8, 1, ZP_EVICT_DROP_NEWEST), 16);
	size_t x[4], got[8];
	REQUIRE(pick(&m, 0, 4, x) == 4);
	for (unsigned i = 0; i < 3; i++)
		give(&m, 0, 0, &x[i], 1, NULL);
	CHECK_EQ(take(&m, 0, 0, 1, got), 1);
	CHECK_EQ(got[0], x[2]);
	CHECK_EQ(take(&m, 0, 0, 1, got), 1);
	CHECK_EQ(got[0], x[1]);
	give(&m, 0, 0, &x[3], 1, NULL);
	CHECK_EQ(take(&m, 0, 0, 8, got), 2);
	CHECK_EQ(got[0], x[0]);
	CHECK_EQ(got[1], x[3]);
	drain(&m);
	model_fini(&m);
}

/* ---- bounds and victims --------------------------------------------------- */

static void test_bounds(zp_evict_policy evict)
{
	struct model m;
	size_t a[8], v[8], got[8];
	model_init(&m, params(2, 10, 8, 1, evict), 40);
	/* Empty: take returns nothing, and n up to max_batch is fine. */
	CHECK_EQ(take(&m, 0, 0, 1, got), 0);
	CHECK_EQ(take(&m, 0, 0, 8, got), 0);
	/* Fill class 0 to the bound with one batch too many: 8 + 8 > 10. */
	REQUIRE(pick(&m, 0, 8, a) == 8);
	CHECK_EQ(give(&m, 0, 0, a, 8, NULL), 0);
	REQUIRE(pick(&m, 0, 8, a) == 8);
	CHECK_EQ(give(&m, 0, 0, a, 8, v), 6);
	CHECK_EQ(m.stored[0], 10);
	/* Full: a whole batch comes back, the count stays at the bound. */
	REQUIRE(pick(&m, 0, 3, a) == 3);
	CHECK_EQ(give(&m, 0, 0, a, 3, v), 3);
	if (evict == ZP_EVICT_DROP_NEWEST)
		for (unsigned i = 0; i < 3; i++)
			CHECK(v[i] == a[0] || v[i] == a[1] || v[i] == a[2]);
	/* The other class is untouched and has its own bound. */
	CHECK_EQ(m.ops->count(m.store, 1), 0);
	REQUIRE(pick(&m, 1, 8, a) == 8);
	CHECK_EQ(give(&m, 0, 1, a, 8, NULL), 0);
	/* take returns at most n, and min(n, count). */
	CHECK_EQ(take(&m, 0, 0, 4, got), 4);
	CHECK_EQ(take(&m, 0, 1, 8, got), 8);
	CHECK_EQ(take(&m, 0, 1, 8, got), 0);
	check_contention_zero(&m);
	drain(&m);
	model_fini(&m);
}

static void test_bounds_drop_newest(void)
{
	test_bounds(ZP_EVICT_DROP_NEWEST);
}

static void test_bounds_drop_coldest(void)
{
	test_bounds(ZP_EVICT_DROP_COLDEST);
}

/* A sharded store still holds max_per_class in all and finds every buffer
 * from any shard (take looks in every shard before returning fewer). */
static void test_shards(void)
{
	struct model m;
	size_t a[8], got[8];
	model_init(&m, params(1, 20, 8, 4, ZP_EVICT_DROP_NEWEST), 40);
	for (unsigned r = 0; r < 3; r++) {
		REQUIRE(pick(&m, 0, 8, a) == 8);
		give(&m, r, 0, a, 8, NULL); /* the third overflows the home shard */
	}
	CHECK_EQ(m.stored[0], 20);
	unsigned total = 0, k;
	while (!broken(&m) && (k = take(&m, 7, 0, 8, got)) > 0)
		total += k;
	CHECK_EQ(total, 20);
	drain(&m);
	model_fini(&m);
}

/* ---- growth ---------------------------------------------------------------- */

/* max_per_class = UINT_MAX: no count bound, so a store may allocate nothing
 * per buffer up front (the locked backend grows its rings on demand).  3000
 * buffers of one class in batches of 64 (one lock-free magazine each) all
 * stay, and come back batch by batch, the hottest batch first, each in the
 * order given. */
static void run_unbounded(unsigned shards)
{
	enum { TOTAL = 3000, BATCH = 64, BATCHES = (TOTAL + BATCH - 1) / BATCH };
	struct model m;
	static size_t idx[BATCHES][BATCH];
	size_t got[BATCH];
	unsigned len[BATCHES];
	model_init(&m, params(2, UINT_MAX, BATCH, shards, ZP_EVICT_DROP_NEWEST), TOTAL);
	for (unsigned b = 0; b < BATCHES && !broken(&m); b++) {
		len[b] = TOTAL - b * BATCH < BATCH ? TOTAL - b * BATCH : BATCH;
		REQUIRE(pick(&m, 1, len[b], idx[b]) == len[b]);
		CHECK_EQ(give(&m, 0, 1, idx[b], len[b], NULL), 0);
	}
	CHECK_EQ(m.stored[1], TOTAL);
	CHECK_EQ(m.ops->count(m.store, 0), 0);
	for (unsigned b = BATCHES; b-- > 0 && !broken(&m);) {
		CHECK_EQ(take(&m, 0, 1, len[b], got), len[b]);
		check_same(got, idx[b], len[b]);
	}
	CHECK_EQ(m.stored[1], 0);
	/* Again, filled and drained in one go: the store is as good as new. */
	for (unsigned b = 0; b < BATCHES && !broken(&m); b++)
		give(&m, 0, 1, idx[b], len[b], NULL);
	check_contention_zero(&m);
	drain(&m);
	model_fini(&m);
}

static void test_unbounded(void)
{
	run_unbounded(1);
}

static void test_unbounded_sharded(void)
{
	run_unbounded(4);
}

/* A store that must allocate to take more buffers (the locked backend
 * growing a ring, a lock-free one carving magazines) and cannot: the n-th
 * allocation of one give fails, for every n the give reaches.  The give
 * refuses what it cannot keep (or keeps it some other way): nothing is lost
 * or duplicated, count() agrees, everything comes back, and the store works
 * afterwards.  `first` buffers are stored before, without failure: the
 * store has whatever room that took (none for 0; a lock-free store's
 * first magazine chunk has room for the big batch too). */
static void run_growth_failure(zp_evict_policy evict, unsigned shards, unsigned first)
{
	enum { BIG = 64 };
	size_t a[BIG], got[BIG];
	REQUIRE(first <= BIG);
	for (long i = 1;; i++) {
		struct model m;
		model_init(&m, params(1, 1000, BIG, shards, evict), 3 * BIG);
		REQUIRE(pick(&m, 0, first, a) == first);
		if (first > 0)
			give(&m, 0, 0, a, first, NULL);
		/* More than that room, with the i-th allocation failing. */
		REQUIRE(pick(&m, 0, BIG, a) == BIG);
		_zp_test_fail_alloc_after(i);
		give_ex(&m, 0, 0, a, BIG, NULL, 1);
		long calls = _zp_test_alloc_calls();
		_zp_test_fail_alloc_after(0);
		/* Everything stored comes back, once. */
		unsigned k, total = 0;
		while (!broken(&m) && (k = take(&m, 0, 0, BIG, got)) > 0)
			total += k;
		CHECK(total <= first + BIG);
		/* Still usable: a full batch fits now. */
		REQUIRE(pick(&m, 0, BIG, a) == BIG);
		CHECK_EQ(give(&m, 0, 0, a, BIG, NULL), 0);
		drain(&m);
		int stop = calls < i || broken(&m); /* the i-th allocation was never reached */
		model_fini(&m);
		if (stop)
			break;
	}
}

static void test_growth_failure(zp_evict_policy evict)
{
	for (unsigned shards = 1; shards <= 2; shards++) {
		run_growth_failure(evict, shards, 0);
		run_growth_failure(evict, shards, 5);
	}
}

static void test_growth_failure_drop_newest(void)
{
	test_growth_failure(ZP_EVICT_DROP_NEWEST);
}

static void test_growth_failure_drop_coldest(void)
{
	test_growth_failure(ZP_EVICT_DROP_COLDEST);
}

/* ---- conservation ------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t bound)
{
	/* xorshift64*: fixed seed, the same sequence on every run */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % bound;
}

/* A random sequence of gives and takes: the model checks every call. */
static void run_random(struct zp_store_params p, uint64_t seed)
{
	struct model m;
	size_t idx[128], hand[128];
	REQUIRE(p.max_batch <= 128);
	model_init(&m, p, p.max_per_class + 3 * (size_t)p.max_batch);
	rng_state = seed;
	long ops = (long)(20000 * zp_test_scale);
	if (ops < 500)
		ops = 500;
	for (long op = 0; op < ops && !broken(&m); op++) {
		unsigned cls = rnd(p.classes), hint = rnd(8);
		unsigned n = 1 + rnd(p.max_batch);
		if (rnd(2) == 0) {
			unsigned k = pick(&m, cls, p.max_batch, hand);
			if (k == 0)
				continue;
			if (n > k)
				n = k;
			/* n distinct descriptors of the hand, in random order */
			for (unsigned i = 0; i < n; i++) {
				unsigned j = i + rnd(k - i);
				size_t t = hand[i];
				hand[i] = hand[j];
				hand[j] = t;
				idx[i] = hand[i];
			}
			give(&m, hint, cls, idx, n, NULL);
		} else {
			take(&m, hint, cls, n, idx);
		}
	}
	check_contention_zero(&m);
	drain(&m);
	model_fini(&m);
}

static void test_random_drop_newest(void)
{
	run_random(params(3, 24, 8, 1, ZP_EVICT_DROP_NEWEST), 1);
}

static void test_random_drop_coldest(void)
{
	run_random(params(3, 24, 8, 1, ZP_EVICT_DROP_COLDEST), 2);
}

/* Batches larger than a lock-free magazine (ZP_MAG_MAX_CAP, 64). */
static void test_random_big_batches(void)
{
	run_random(params(2, 200, 100, 1, ZP_EVICT_DROP_NEWEST), 3);
}

static void test_random_sharded(void)
{
	run_random(params(3, 30, 8, 4, ZP_EVICT_DROP_NEWEST), 4);
}

/* ---- reclamation statistics ---------------------------------------------- */

/* Whether the backend reuses a popped magazine only after an RCU grace
 * period (the liburcu flavours), which it then reports. */
static int defers_reuse(const struct zp_backend_ops *ops)
{
	return strncmp(ops->name, "lockfree-urcu", strlen("lockfree-urcu")) == 0;
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Batches cycled through a store: the store reports its own memory, and a
 * backend that defers reuse reports the grace periods it waited for (the
 * call_rcu worker runs them in its own time: polled, with a deadline far
 * beyond any machine's grace period); the others report none. */
static void test_reclamation_stats(void)
{
	struct model m;
	size_t idx[8];
	uint64_t t0 = mono_ns();
	model_init(&m, params(1, 64, 8, 1, ZP_EVICT_DROP_NEWEST), 64);
	struct zp_backend_stats st;
	for (unsigned round = 0; round < 400 && !broken(&m); round++) {
		REQUIRE(pick(&m, 0, 8, idx) == 8);
		give(&m, 0, 0, idx, 8, NULL);
		CHECK_EQ(take(&m, 0, 0, 8, idx), 8);
	}
	memset(&st, 0, sizeof st); /* as the front end does (zp_backend.h) */
	m.ops->stats(m.store, &st);
	CHECK(st.meta_bytes > 0 && st.meta_bytes < (64u << 20));
	if (defers_reuse(m.ops)) {
		/* 400 magazines retired: at least 400 / 32 chains were queued. */
		for (int ms = 0; st.grace_periods == 0 && ms < 120000; ms += 10) {
			nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
			m.ops->stats(m.store, &st);
		}
		CHECK(st.grace_periods > 0);
		CHECK(st.reclaimed >= st.grace_periods); /* a callback files one or more */
		CHECK(st.grace_max_ns > 0);
		CHECK(st.grace_ns >= st.grace_max_ns);
		CHECK(st.grace_ns / st.grace_periods <= st.grace_max_ns);
		/* No grace period outlasts the store (a latency measured from a
		 * stale or missing timestamp would). */
		CHECK(st.grace_max_ns <= mono_ns() - t0);
	} else {
		CHECK_EQ(st.reclaimed, 0);
		CHECK_EQ(st.grace_periods, 0);
		CHECK_EQ(st.grace_ns, 0);
		CHECK_EQ(st.grace_max_ns, 0);
	}
	drain(&m);
	model_fini(&m);
}

/* ---- thread_exit (optional) ------------------------------------------------ */

struct exiting {
	struct model *m;
	size_t idx[8];
};

static void *exiting_thread(void *arg)
{
	struct exiting *e = arg;
	give(e->m, 1, 0, e->idx, 8, NULL);
	e->m->ops->thread_exit(e->m->store);
	return NULL;
}

/* A thread that gave buffers exits; they stay in the store, and the store
 * stays usable by a thread that called thread_exit early. */
static void test_thread_exit(void)
{
	struct model m;
	model_init(&m, params(1, 32, 8, 1, ZP_EVICT_DROP_NEWEST), 32);
	if (m.ops->thread_exit == NULL) {
		model_fini(&m);
		return;
	}
	struct exiting e = {.m = &m};
	size_t got[8];
	REQUIRE(pick(&m, 0, 8, e.idx) == 8);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, exiting_thread, &e) == 0);
	REQUIRE(pthread_join(t, NULL) == 0);
	m.ops->thread_exit(m.store);
	CHECK_EQ(take(&m, 0, 0, 8, got), 8);
	check_same(got, e.idx, 8);
	drain(&m);
	model_fini(&m);
}

/* ---- the registry's check ------------------------------------------------ */

static void test_registry_check(void)
{
	const struct zp_backend_ops *ops = backend();
	CHECK(strcmp(ops->name, zp_test_backend) == 0);
	CHECK_EQ(_zp_backend_check(ops), 0);
	CHECK_ERR(_zp_backend_check(NULL), EINVAL);

	/* Every mandatory member, missing in turn. */
	struct zp_backend_ops broken[8];
	for (unsigned i = 0; i < 8; i++)
		broken[i] = *ops;
	broken[0].name = NULL;
	broken[1].name = "";
	broken[2].create = NULL;
	broken[3].destroy = NULL;
	broken[4].take = NULL;
	broken[5].give = NULL;
	broken[6].count = NULL;
	broken[7].stats = NULL;
	for (unsigned i = 0; i < 8; i++)
		CHECK_ERR(_zp_backend_check(&broken[i]), EINVAL);
	/* thread_exit is optional. */
	struct zp_backend_ops lean = *ops;
	lean.thread_exit = NULL;
	CHECK_EQ(_zp_backend_check(&lean), 0);

	/* A table: the incomplete entries and the two that share a name are
	 * refused; the unique complete one is kept, in order. */
	struct zp_backend_ops twin = *ops, other = *ops, nameless = *ops;
	other.name = "contract-other";
	nameless.name = NULL;
	const struct zp_backend_ops *tab[] = {ops, &broken[5], &nameless, &other, &twin};
	const struct zp_backend_ops *usable[5];
	CHECK_EQ(_zp_backend_usable(tab, 5, usable), 1);
	CHECK(usable[0] == &other);
	/* A nameless entry collides with nothing; an incomplete one that has
	 * the name of a complete one makes the name ambiguous all the same. */
	const struct zp_backend_ops *tab2[] = {&nameless, ops, &broken[0], &broken[1]};
	CHECK_EQ(_zp_backend_usable(tab2, 4, usable), 1);
	CHECK(usable[0] == ops);
	const struct zp_backend_ops *tab3[] = {ops, &broken[5]};
	CHECK_EQ(_zp_backend_usable(tab3, 2, usable), 0);

	/* The registry itself: every listed backend is usable and found. */
	for (size_t i = 0; i < zp_backend_count(); i++) {
		const struct zp_backend_ops *b = _zp_backend_find(zp_backend_at(i));
		CHECK(b != NULL && _zp_backend_check(b) == 0);
	}
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"registry_check", test_registry_check},
	    {"order_batches", test_order_batches},
	    {"order_singles", test_order_singles},
	    {"bounds_drop_newest", test_bounds_drop_newest},
	    {"bounds_drop_coldest", test_bounds_drop_coldest},
	    {"shards", test_shards},
	    {"random_drop_newest", test_random_drop_newest},
	    {"random_drop_coldest", test_random_drop_coldest},
	    {"random_big_batches", test_random_big_batches},
	    {"random_sharded", test_random_sharded},
	    {"unbounded", test_unbounded},
	    {"unbounded_sharded", test_unbounded_sharded},
	    {"growth_failure_drop_newest", test_growth_failure_drop_newest},
	    {"growth_failure_drop_coldest", test_growth_failure_drop_coldest},
	    {"thread_exit", test_thread_exit},
	    {"reclamation_stats", test_reclamation_stats},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
