/*
 * zp_bench_cases.c - bodies and matrix of the micro-benchmarks (see
 * zp_bench_cases.h for the life cycle of a run, docs/benchmarks.md for what
 * each case measures).
 *
 * Every body is written once, generic over "who serves get/put" (the pool
 * through zp_get/zp_put, the pool through an explicit zp_cache handle,
 * malloc/free, a thread-local array stack), and instantiated per server
 * with the server a compile-time constant, so each timed loop is straight
 * code with no indirect call of ours in it.
 *
 * Every get writes byte 0 of the buffer (a fresh mmap-backed malloc then
 * pays its page fault, as a real user would) and every pointer escapes
 * through an empty asm, so the compiler can neither drop a malloc/free pair
 * nor hoist the size-class computation out of the loop.
 */
#include "zp_bench_cases.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"
#include "zp_progs.h"

#ifdef ZPB_HAVE_DPDK
#include "zp_bench_dpdk.h"
#endif

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)

/* ---- the matrix ------------------------------------------------------------ */

enum server {
	S_POOL,   /* zp_get / zp_put */
	S_HANDLE, /* zp_thread_cache once, then zp_cache_get / zp_cache_put */
	S_MALLOC, /* malloc / free, whichever library serves malloc */
	S_TLS,    /* a thread-local array stack of preallocated buffers: the floor */
	S_DPDK,   /* rte_mempool_get / rte_mempool_put with the lcore cache */
};

enum body {
	B_PAIR,     /* get, touch, put */
	B_WORKSET,  /* get `keep` buffers (touching each), then put them in order */
	B_PRODCONS, /* even threads get and pass through an SPSC ring, odd threads put */
	B_MIXED,    /* a window of mixed-size buffers, some handed to the next thread */
};

#define ZPB_MAX_CASE_THREADS 16

struct zpb_case {
	char name[192];
	enum server server;
	enum body body;
	size_t size;
	unsigned keep;
	zp_config cfg; /* pool servers */
	unsigned threads[ZPB_MAX_CASE_THREADS];
	size_t nthreads;
	uint64_t batch;
	const char *label;
};

static zpb_case *cases;
static size_t ncases, capcases;
static char errbuf[512];

const char *zpb_error(void)
{
	return errbuf;
}

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((noreturn, cold, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "zp_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

int zpb_have_dpdk(void)
{
#ifdef ZPB_HAVE_DPDK
	return 1;
#else
	return 0;
#endif
}

/* ---- building the matrix ------------------------------------------------------ */

static zpb_case *add_case(enum server s, enum body b, size_t size, uint64_t batch)
{
	if (ncases == capcases) {
		size_t cap = capcases ? capcases * 2 : 256;
		zpb_case *n = realloc(cases, cap * sizeof *n);
		if (n == NULL)
			return NULL;
		cases = n;
		capcases = cap;
	}
	zpb_case *c = &cases[ncases++];
	memset(c, 0, sizeof *c);
	c->server = s;
	c->body = b;
	c->size = size;
	c->batch = batch;
	c->threads[0] = 1;
	c->nthreads = 1;
	return c;
}

static void set_threads(zpb_case *c, const unsigned *t, size_t n, bool even_only)
{
	c->nthreads = 0;
	for (size_t i = 0; i < n && c->nthreads < ZPB_MAX_CASE_THREADS; i++) {
		if (t[i] == 0 || t[i] > ZPB_MAX_THREADS || (even_only && t[i] % 2 != 0))
			continue;
		bool dup = false;
		for (size_t j = 0; j < c->nthreads; j++)
			dup |= c->threads[j] == t[i];
		if (!dup)
			c->threads[c->nthreads++] = t[i];
	}
	if (c->nthreads == 0) {
		c->threads[0] = even_only ? 2 : 1;
		c->nthreads = 1;
	}
}

/* Iterations per zpb_run for a get+put pair: enough to make the loop
 * bookkeeping of Google Benchmark negligible, few enough that a slow peer
 * (malloc of 256 MiB is an mmap, a page fault and a munmap) does not
 * overshoot a short run. */
static uint64_t pair_batch(size_t size)
{
	return size >= MIB ? 8 : 256;
}

static void pool_cfg(zp_config *cfg, const char *backend)
{
	zp_config_init(cfg);
	cfg->backend = backend;
}

/* ---- the matrix as a table -------------------------------------------------
 *
 * Each row is one kind of case, swept over a list of values (one list for
 * the full matrix, one for --zp_smoke), and, where its parameter is not the
 * size, over a list of sizes.  The matrix is walked twice: first every row
 * with the library's default configuration (what zp_config_init gives, only
 * the backend chosen, unless the row's own parameter is a setting), then
 * the tuned variants of the rows that have one (a bigger store, named
 * store:<max_per_class>), so that the default cases come first.  In each
 * walk, pool rows are instantiated once per registered backend, all of them
 * for the first backend before the next; then every peer row once.  A
 * case's name is its owner's prefix, the row's kind, size:<bytes> (unless
 * the case mixes sizes), then the keys the row names, always in the order
 * of enum name_key.
 */

enum owner {
	O_POOL,   /* pool/<backend>, once per registered backend */
	O_MALLOC, /* malloc/<provider>, labelled with the provider */
	O_TLS,    /* tls_stack/floor */
	O_DPDK,   /* dpdk/mempool */
};

enum param {
	P_SIZE,  /* the values are buffer sizes */
	P_KEEP,  /* working-set sizes (the window, for B_MIXED) */
	P_BATCH, /* zp_config.batch */
};

enum thread_rule {
	T_ONE,         /* one thread only */
	T_AT_THREADED, /* every asked count plus 1 at THREADED_SIZE, else one thread */
	T_ALL,         /* every asked count plus 1 */
	T_ALL_SMOKE_2, /* every asked count plus 1; with --zp_smoke, 2 only */
	T_EVEN,        /* the asked counts that are even (pairs of threads) */
};

/* The keys a row's name has; store:<max_per_class>, the mark of a tuned
 * variant, comes after them all. */
enum name_key {
	N_KEEP = 1u << 0,    /* keep:<keep> */
	N_DEPTH = 1u << 1,   /* depth:<cache_depth> */
	N_MPC = 1u << 2,     /* mpc:<max_per_class> */
	N_BATCH = 1u << 3,   /* batch:<batch> */
	N_POLICY = 1u << 4,  /* policy:coldest and policy:newest: one case each */
	N_BUDGET = 1u << 5,  /* budget:<max_idle_bytes> */
	N_WINDOW = 1u << 6,  /* window:<keep> and handoff:<MIXED_HANDOFF> */
	N_NO_SIZE = 1u << 7, /* no size:<bytes> (the case mixes sizes) */
};

/* Cases run single-threaded, except the size sweeps at this size, where they
 * run at every thread count asked for. */
#define THREADED_SIZE (4 * KIB)

/* No zp_config field set by the row: the library's default. */
#define DEFAULT_DEPTH (~0u)

/* The tuned variants' store: large enough to keep every buffer a case
 * holds, so that what they measure is the transfer between thread caches
 * and the store, not eviction (and, for prodcons, not how the scheduler
 * interleaves a pair: a small store evicts whatever a consumer returns
 * while its producer is descheduled). */
#define TUNED_MPC 4096u

/* mixed_server hands 1 buffer in MIXED_HANDOFF to the next thread. */
#define MIXED_HANDOFF 8u

struct values {
	const size_t *v;
	size_t n;
};
/* clang-format would spread the braces of VALUES over four lines. */
/* clang-format off */
#define VALUES(a) {(a), sizeof(a) / sizeof((a)[0])}
/* clang-format on */

struct row {
	enum owner owner;
	enum server server;
	enum body body;
	const char *kind;
	enum param param;
	struct values full, smoke;       /* the param's values */
	struct values at_full, at_smoke; /* unless param is P_SIZE: sizes; none: .size */
	size_t size;                     /* unless param is P_SIZE or the at_ list has sizes */
	size_t max_size;                 /* sizes above it are left out; 0: none */
	unsigned keep;                   /* unless param is P_KEEP */
	unsigned depth;                  /* cache_depth; DEFAULT_DEPTH: the library's */
	unsigned mpc;                    /* max_per_class; 0: default */
	unsigned tuned;                  /* nonzero: also a variant with max_per_class = tuned */
	unsigned budget_x;               /* max_idle_bytes = budget_x * size; 0: default */
	unsigned named;                  /* enum name_key bits */
	enum thread_rule threads;
	uint64_t iters; /* per zpb_run; 0: pair_batch(size) */
};

static const size_t sizes_full[] = {64,        256, KIB,     4 * KIB,  16 * KIB, 64 * KIB,
				    256 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB};
static const size_t sizes_smoke[] = {64, 4 * KIB, MIB, 256 * MIB};
static const size_t keeps_full[] = {16, 256}, keeps_smoke[] = {16};
static const size_t batches_full[] = {1, 2, 4, 8, 16, 32, 64}, batches_smoke[] = {1, 32};
static const size_t evict_full[] = {4 * KIB, MIB}, evict_smoke[] = {4 * KIB};
static const size_t budget_full[] = {16 * KIB, MIB}, budget_smoke[] = {16 * KIB};
static const size_t only_4k[] = {4 * KIB};
/* The store-bound cases: a small, a page-sized and a large buffer. */
static const size_t store_sizes_full[] = {64, 4 * KIB, 64 * KIB};
static const size_t windows[] = {64};

#define SIZES .param = P_SIZE, .full = VALUES(sizes_full), .smoke = VALUES(sizes_smoke)
#define KEEPS .param = P_KEEP, .full = VALUES(keeps_full), .smoke = VALUES(keeps_smoke)
#define STORE_SIZES .full = VALUES(store_sizes_full), .smoke = VALUES(only_4k)
#define AT_STORE_SIZES .at_full = VALUES(store_sizes_full), .at_smoke = VALUES(only_4k)
#define WINDOWS .param = P_KEEP, .full = VALUES(windows), .smoke = VALUES(windows)

static const struct row matrix[] = {
    /* The hit path: through zp_get/zp_put, through a zp_cache handle, and
     * with no thread cache (every get and put goes to the backend). */
    {O_POOL, S_POOL, B_PAIR, "hit", SIZES, .depth = DEFAULT_DEPTH, .threads = T_AT_THREADED},
    {O_POOL, S_HANDLE, B_PAIR, "handle_hit", SIZES, .depth = DEFAULT_DEPTH,
     .threads = T_AT_THREADED},
    {O_POOL, S_POOL, B_PAIR, "backend", SIZES, .depth = 0, .threads = T_AT_THREADED},
    /* A working set larger than the cache: refill/drain traffic, and with
     * the default store, eviction and fresh allocation too. */
    {O_POOL, S_POOL, B_WORKSET, "working_set", KEEPS, AT_STORE_SIZES, .depth = DEFAULT_DEPTH,
     .tuned = TUNED_MPC, .named = N_KEEP, .threads = T_ALL, .iters = 1},
    /* The same with a deep cache, sweeping the refill/drain batch. */
    {O_POOL, S_POOL, B_WORKSET, "batch", P_BATCH, VALUES(batches_full), VALUES(batches_smoke),
     .size = 4 * KIB, .keep = 256, .depth = 64, .tuned = TUNED_MPC,
     .named = N_KEEP | N_DEPTH | N_BATCH, .threads = T_ONE, .iters = 1},
    /* Buffers got on one thread and put on another.  At most RING_SLOTS
     * buffers per pair are in flight. */
    {O_POOL, S_POOL, B_PRODCONS, "prodcons", .param = P_SIZE, STORE_SIZES, .depth = DEFAULT_DEPTH,
     .tuned = TUNED_MPC, .threads = T_EVEN, .iters = 256},
    /* Eviction pressure: no thread cache, a store of 4 per class, a working
     * set of 8, so half the puts find the store full. */
    {O_POOL, S_POOL, B_WORKSET, "evict", P_SIZE, VALUES(evict_full), VALUES(evict_smoke), .keep = 8,
     .depth = 0, .mpc = 4, .named = N_KEEP | N_MPC | N_POLICY, .threads = T_ONE, .iters = 1},
    /* The idle-bytes budget in force: a store that may keep only four
     * buffers' worth of bytes under a working set of 32. */
    {O_POOL, S_POOL, B_WORKSET, "idle_budget", P_SIZE, VALUES(budget_full), VALUES(budget_smoke),
     .keep = 32, .depth = DEFAULT_DEPTH, .tuned = TUNED_MPC, .budget_x = 4,
     .named = N_KEEP | N_BUDGET, .threads = T_ONE, .iters = 1},
    /* Shaped like a server: a window of buffers of mixed sizes, a random
     * one replaced each iteration, 1 in MIXED_HANDOFF put by the next
     * thread. */
    {O_POOL, S_POOL, B_MIXED, "mixed_server", WINDOWS, .depth = DEFAULT_DEPTH,
     .named = N_WINDOW | N_NO_SIZE, .threads = T_ALL_SMOKE_2, .iters = 256},

    /* Peers. */
    {O_MALLOC, S_MALLOC, B_PAIR, "hit", SIZES, .threads = T_AT_THREADED},
    {O_MALLOC, S_MALLOC, B_WORKSET, "working_set", KEEPS, AT_STORE_SIZES, .named = N_KEEP,
     .threads = T_ALL, .iters = 1},
    {O_MALLOC, S_MALLOC, B_PRODCONS, "prodcons", .param = P_SIZE, STORE_SIZES, .threads = T_EVEN,
     .iters = 256},
    {O_MALLOC, S_MALLOC, B_MIXED, "mixed_server", WINDOWS, .named = N_WINDOW | N_NO_SIZE,
     .threads = T_ALL_SMOKE_2, .iters = 256},
    {O_TLS, S_TLS, B_PAIR, "hit", SIZES, .threads = T_AT_THREADED, .iters = 256},
#ifdef ZPB_HAVE_DPDK
    {O_DPDK, S_DPDK, B_PAIR, "hit", SIZES, .max_size = 64 * KIB, .threads = T_AT_THREADED,
     .iters = 256},
#endif
};

#undef SIZES
#undef KEEPS
#undef STORE_SIZES
#undef AT_STORE_SIZES
#undef WINDOWS

/* The network_server workload's packet mix (workloads/network_server.c):
 * 64 B 50%, 512 B 20%, 1 KiB 10%, 4 KiB 10%, 16 KiB 7%, 32 KiB 2%,
 * 64 KiB 1%, as a table of 100 entries, so that a draw is one load. */
static const struct {
	size_t size;
	unsigned weight;
} mixed_sizes[] = {
    {64, 50}, {512, 20}, {KIB, 10}, {4 * KIB, 10}, {16 * KIB, 7}, {32 * KIB, 2}, {64 * KIB, 1},
};
static size_t mixed_size_of[100];

static void mixed_table_init(void)
{
	unsigned r = 0;
	for (size_t i = 0; i < sizeof mixed_sizes / sizeof mixed_sizes[0]; i++)
		for (unsigned w = 0; w < mixed_sizes[i].weight && r < 100; w++)
			mixed_size_of[r++] = mixed_sizes[i].size;
	if (r != 100)
		die("mixed_server: the weights do not add up to 100");
}

/* One draw decides everything an iteration of the mixed body needs: the
 * slot (the low 32 bits, scaled to the window), the new buffer's size (the
 * high 32 bits, scaled to 100) and whether the old one is handed over (the
 * low 3 bits). */
static inline size_t mixed_size(uint64_t r)
{
	return mixed_size_of[((r >> 32) * 100) >> 32];
}

static inline unsigned mixed_slot(uint64_t r, unsigned window)
{
	return (unsigned)(((r & 0xffffffffu) * window) >> 32);
}

struct thread_lists {
	const unsigned *asked; /* the options' counts, or {1} */
	size_t nasked;
	unsigned with1[ZPB_MAX_CASE_THREADS + 1]; /* 1, then the asked counts */
	size_t nwith1;
	bool smoke;
};

static void name_add(zpb_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void name_add(zpb_case *c, const char *fmt, ...)
{
	size_t len = strlen(c->name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->name + len, sizeof c->name - len, fmt, ap);
	va_end(ap);
}

/* One case of row r at size `at` (rows whose param is not the size) with
 * its swept value v, the tuned variant or not, and, for N_POLICY rows,
 * policy pol (0 coldest, 1 newest); be is the backend of pool rows. */
static int add_row_case(const struct row *r, size_t at, size_t v, bool tuned, int pol,
			const char *be, const char *malloc_prov, const struct thread_lists *tl)
{
	size_t size = r->param == P_SIZE ? v : at;
	zpb_case *c = add_case(r->server, r->body, size, r->iters ? r->iters : pair_batch(size));
	if (c == NULL)
		return -1;
	c->keep = r->param == P_KEEP ? (unsigned)v : r->keep;
	if (r->owner == O_POOL) {
		pool_cfg(&c->cfg, be);
		if (r->depth != DEFAULT_DEPTH)
			c->cfg.cache_depth = r->depth;
		if (r->param == P_BATCH)
			c->cfg.batch = (unsigned)v;
		if (r->mpc != 0)
			c->cfg.max_per_class = r->mpc;
		if (tuned)
			c->cfg.max_per_class = r->tuned;
		if (r->budget_x != 0)
			c->cfg.max_idle_bytes = r->budget_x * size;
		if (r->named & N_POLICY)
			c->cfg.evict = pol ? ZP_EVICT_DROP_NEWEST : ZP_EVICT_DROP_COLDEST;
	}
	static const unsigned two = 2;
	switch (r->threads) {
	case T_AT_THREADED:
		if (size == THREADED_SIZE)
			set_threads(c, tl->with1, tl->nwith1, false);
		break;
	case T_ALL_SMOKE_2:
		if (tl->smoke) {
			set_threads(c, &two, 1, false);
			break;
		}
		set_threads(c, tl->with1, tl->nwith1, false);
		break;
	case T_ALL:
		set_threads(c, tl->with1, tl->nwith1, false);
		break;
	case T_EVEN:
		set_threads(c, tl->asked, tl->nasked, true);
		break;
	case T_ONE:
	default:
		break;
	}

	switch (r->owner) {
	case O_POOL:
		name_add(c, "pool/%s", be);
		break;
	case O_MALLOC:
		c->label = malloc_prov;
		name_add(c, "malloc/%s", malloc_prov);
		break;
	case O_TLS:
		name_add(c, "tls_stack/floor");
		break;
	case O_DPDK:
	default:
		name_add(c, "dpdk/mempool");
		break;
	}
	name_add(c, "/%s", r->kind);
	if (!(r->named & N_NO_SIZE))
		name_add(c, "/size:%zu", size);
	if (r->named & N_KEEP)
		name_add(c, "/keep:%u", c->keep);
	if (r->named & N_DEPTH)
		name_add(c, "/depth:%u", c->cfg.cache_depth);
	if (r->named & N_MPC)
		name_add(c, "/mpc:%u", c->cfg.max_per_class);
	if (r->named & N_BATCH)
		name_add(c, "/batch:%u", c->cfg.batch);
	if (r->named & N_POLICY)
		name_add(c, "/policy:%s", pol ? "newest" : "coldest");
	if (r->named & N_BUDGET)
		name_add(c, "/budget:%zu", c->cfg.max_idle_bytes);
	if (r->named & N_WINDOW)
		name_add(c, "/window:%u/handoff:%u", c->keep, MIXED_HANDOFF);
	if (tuned)
		name_add(c, "/store:%u", c->cfg.max_per_class);
	return 0;
}

/* Every case of row r (its tuned variant with `tuned`). */
static int add_row(const struct row *r, bool tuned, const char *be, const char *malloc_prov,
		   const struct thread_lists *tl)
{
	const struct values *vs = tl->smoke ? &r->smoke : &r->full;
	const struct values *at = tl->smoke ? &r->at_smoke : &r->at_full;
	for (size_t a = 0; a < (at->n ? at->n : 1); a++) {
		size_t size = at->n ? at->v[a] : r->size;
		for (size_t i = 0; i < vs->n; i++) {
			if (r->max_size != 0 &&
			    (r->param == P_SIZE ? vs->v[i] : size) > r->max_size)
				continue;
			for (int pol = 0; pol < ((r->named & N_POLICY) ? 2 : 1); pol++)
				if (add_row_case(r, size, vs->v[i], tuned, pol, be, malloc_prov,
						 tl) != 0)
					return -1;
		}
	}
	return 0;
}

long zpb_cases_build(const zpb_options *opt)
{
	mixed_table_init();
	static const unsigned one = 1;
	struct thread_lists tl = {opt->nthreads ? opt->threads : &one,
				  opt->nthreads ? opt->nthreads : 1,
				  {1},
				  1,
				  opt->smoke != 0};
	for (size_t i = 0; i < tl.nasked && tl.nwith1 < ZPB_MAX_CASE_THREADS; i++)
		tl.with1[tl.nwith1++] = tl.asked[i];
	const char *malloc_prov = zpp_malloc_provider();
	size_t nb = zp_backend_count();
	ncases = 0;

	/* Pass 0: the default configurations; pass 1: the tuned variants.
	 * Owner k < nb is the k-th backend's pool; k == nb, the peers. */
	for (int tuned = 0; tuned < 2; tuned++) {
		for (size_t k = 0; k <= nb; k++) {
			const char *be = k < nb ? zp_backend_at(k) : NULL;
			for (size_t ri = 0; ri < sizeof matrix / sizeof matrix[0]; ri++) {
				const struct row *r = &matrix[ri];
				if ((r->owner == O_POOL) != (be != NULL) || (tuned && !r->tuned))
					continue;
				if (add_row(r, tuned, be, malloc_prov, &tl) != 0) {
					set_error("out of memory building the matrix");
					return -1;
				}
			}
		}
	}
	return (long)ncases;
}

size_t zpb_case_count(void)
{
	return ncases;
}

zpb_case *zpb_case_at(size_t i)
{
	return i < ncases ? &cases[i] : NULL;
}

const char *zpb_case_name(const zpb_case *c)
{
	return c->name;
}

size_t zpb_case_nthreads(const zpb_case *c)
{
	return c->nthreads;
}

unsigned zpb_case_threads(const zpb_case *c, size_t i)
{
	return i < c->nthreads ? c->threads[i] : 0;
}

uint64_t zpb_case_batch(const zpb_case *c)
{
	return c->batch;
}

uint64_t zpb_case_items(const zpb_case *c, int tid)
{
	switch (c->body) {
	case B_WORKSET:
		return c->keep;
	case B_PRODCONS:
		return tid % 2 == 0 ? 1 : 0; /* one pair per buffer passed: count it once */
	case B_MIXED:                        /* one get, and one put here or on the next thread */
	case B_PAIR:
	default:
		return 1;
	}
}

const char *zpb_case_label(const zpb_case *c)
{
	return c->label;
}

/* ---- run-time state -------------------------------------------------------- */

/* A barrier that needs no initialisation (all fields start at zero) and
 * yields while it waits, so oversubscribed runs do not burn their quantum. */
struct barrier {
	_Atomic unsigned count;
	_Atomic unsigned gen;
};

/* With `stamp`, the last thread to arrive writes the time into it before
 * releasing the others. */
static void barrier_wait(struct barrier *b, unsigned n, uint64_t *stamp)
{
	unsigned g = atomic_load_explicit(&b->gen, memory_order_acquire);
	if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) + 1 == n) {
		if (stamp != NULL)
			*stamp = zpp_now_ns();
		atomic_store_explicit(&b->count, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&b->gen, 1, memory_order_release);
		return;
	}
	while (atomic_load_explicit(&b->gen, memory_order_acquire) == g)
		sched_yield();
}

#define RING_SLOTS 256u

struct ring {
	_Alignas(64) _Atomic uint64_t head; /* written by the producer */
	_Alignas(64) _Atomic uint64_t tail; /* written by the consumer */
	_Alignas(64) void *slot[RING_SLOTS];
};

struct thread_state {
	zp_cache *cache;
	void **held;            /* [keep] for the working-set and mixed bodies */
	uint64_t seen;          /* prodcons: the partner's index last read */
	uint64_t rng;           /* mixed: this thread's zpp_splitmix64 state */
	uint64_t iters, handed; /* mixed: timed iterations, buffers passed on in them */
	uint64_t cpu0, cpu1;    /* this thread's CPU time (ns) at enter and leave */
	unsigned nthreads;
	bool tls_ready;
	bool dpdk_registered;
} __attribute__((aligned(64)));

static struct {
	zpb_case *cur; /* the case whose pool is alive */
	zp_pool *pool;
	void *dpdk_mp;
	_Atomic int failed;
	struct barrier bar;
	struct ring
	    *rings; /* [ZPB_MAX_THREADS]: prodcons pair p's is [p], mixed thread t's inbox [t] */
	struct zp_stats st0;
	bool have_st0;
	uint64_t t0;         /* when the last thread was ready (ns) */
	uint64_t pcpu0;      /* the process's CPU time then (ns) */
	_Atomic uint64_t t1; /* the earliest time a thread saw the run finished */
} rt;

static struct thread_state ts[ZPB_MAX_THREADS];

#define TLS_DEPTH 64
static __thread void *tls_stk[TLS_DEPTH];
static __thread unsigned tls_top;

/* Write byte 0, then a compiler barrier standing for the caller's use of the
 * buffer: nothing of the allocator's state stays in registers across it, so
 * a get and the put that follows cannot be fused (it would turn the
 * thread-local stack floor into no work at all). */
static inline void touch(unsigned char *data, uint64_t i)
{
	((volatile unsigned char *)data)[0] = (unsigned char)i;
	zpp_clobber(data);
}

static void spin_wait(unsigned *spins)
{
	if (++*spins < 64)
		__builtin_ia32_pause();
	else {
		*spins = 0;
		sched_yield();
	}
}

/* ---- get and put, per server ------------------------------------------------- */

typedef struct item {
	void *h;             /* what put takes back */
	unsigned char *data; /* what the caller writes */
} item;

static void die_get(size_t len) __attribute__((noreturn, cold));
static void die_get(size_t len)
{
	die("get of %zu bytes failed: %s", len, strerror(errno));
}

static void die_put(void) __attribute__((noreturn, cold));
static void die_put(void)
{
	die("put failed: %s", strerror(errno));
}

static inline __attribute__((always_inline)) item do_get(const enum server s, zp_pool *pool,
							 zp_cache *cache, size_t len)
{
	item it;
	switch (s) {
	case S_POOL:
	case S_HANDLE: {
		zp_buf *b = s == S_POOL ? zp_get(pool, len) : zp_cache_get(cache, len);
		if (ZP_UNLIKELY(b == NULL))
			die_get(len);
		it.h = b;
		it.data = b->data;
		break;
	}
	case S_MALLOC: {
		unsigned char *p = malloc(len);
		if (ZP_UNLIKELY(p == NULL))
			die_get(len);
		zpp_escape(p);
		it.h = p;
		it.data = p;
		break;
	}
	case S_TLS:
	default: {
		if (ZP_UNLIKELY(tls_top == 0))
			die_get(len);
		unsigned char *p = tls_stk[--tls_top];
		it.h = p;
		it.data = p;
		break;
	}
	}
	return it;
}

static inline __attribute__((always_inline)) void do_put(const enum server s, zp_pool *pool,
							 zp_cache *cache, void *h)
{
	switch (s) {
	case S_POOL:
		if (ZP_UNLIKELY(zp_put(pool, h) != 0))
			die_put();
		break;
	case S_HANDLE:
		if (ZP_UNLIKELY(zp_cache_put(cache, h) != 0))
			die_put();
		break;
	case S_MALLOC:
		free(h);
		break;
	case S_TLS:
	default:
		tls_stk[tls_top++] = h;
		break;
	}
}

/* ---- bodies -------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void body_pair(const enum server s, zpb_case *c,
							    struct thread_state *t, uint64_t n)
{
	zp_pool *pool = rt.pool;
	zp_cache *cache = t->cache;
	size_t len = c->size;
	for (uint64_t i = 0; i < n; i++) {
		item it = do_get(s, pool, cache, zpp_opaque(len));
		touch(it.data, i);
		do_put(s, pool, cache, it.h);
	}
}

static inline __attribute__((always_inline)) void body_workset(const enum server s, zpb_case *c,
							       struct thread_state *t, uint64_t n)
{
	zp_pool *pool = rt.pool;
	zp_cache *cache = t->cache;
	size_t len = c->size;
	unsigned keep = c->keep;
	void **held = t->held;
	for (uint64_t i = 0; i < n; i++) {
		for (unsigned k = 0; k < keep; k++) {
			item it = do_get(s, pool, cache, zpp_opaque(len));
			touch(it.data, k);
			held[k] = it.h;
		}
		for (unsigned k = 0; k < keep; k++)
			do_put(s, pool, cache, held[k]);
	}
}

/* Thread 2p produces for thread 2p+1 through rings[p]: get, touch, pass;
 * the consumer takes and puts.  Each side caches the other's index and
 * rereads it only when the ring looks full (empty). */
static inline __attribute__((always_inline)) void
body_prodcons(const enum server s, zpb_case *c, int tid, struct thread_state *t, uint64_t n)
{
	zp_pool *pool = rt.pool;
	zp_cache *cache = t->cache;
	struct ring *r = &rt.rings[tid / 2];
	size_t len = c->size;
	unsigned spins = 0;
	if (tid % 2 == 0) {
		uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
		uint64_t tail = t->seen;
		for (uint64_t i = 0; i < n; i++, h++) {
			item it = do_get(s, pool, cache, zpp_opaque(len));
			touch(it.data, i);
			while (h - tail >= RING_SLOTS) {
				tail = atomic_load_explicit(&r->tail, memory_order_acquire);
				if (h - tail >= RING_SLOTS)
					spin_wait(&spins);
			}
			r->slot[h % RING_SLOTS] = it.h;
			atomic_store_explicit(&r->head, h + 1, memory_order_release);
		}
		t->seen = tail;
	} else {
		uint64_t tl = atomic_load_explicit(&r->tail, memory_order_relaxed);
		uint64_t head = t->seen;
		for (uint64_t i = 0; i < n; i++, tl++) {
			while (head == tl) {
				head = atomic_load_explicit(&r->head, memory_order_acquire);
				if (head == tl)
					spin_wait(&spins);
			}
			void *h = r->slot[tl % RING_SLOTS];
			atomic_store_explicit(&r->tail, tl + 1, memory_order_release);
			do_put(s, pool, cache, h);
		}
		t->seen = head;
	}
}

/* A window of c->keep buffers of mixed sizes per thread (filled in
 * thread_init); each iteration replaces a random one: the old buffer is put,
 * or, 1 time in MIXED_HANDOFF and when there are other threads, passed
 * through rings[tid + 1] to the next thread, which puts it; then a new one
 * is got and touched.  The thread puts what its own inbox, rings[tid], holds
 * after every iteration.  A full inbox is not waited for: the buffer is put
 * here instead (no two threads can then wait on each other). */
static inline __attribute__((always_inline)) void
body_mixed(const enum server s, zpb_case *c, int tid, struct thread_state *t, uint64_t n)
{
	zp_pool *pool = rt.pool;
	zp_cache *cache = t->cache;
	void **win = t->held;
	unsigned window = c->keep, nth = t->nthreads;
	struct ring *out = nth > 1 ? &rt.rings[((unsigned)tid + 1) % nth] : NULL;
	struct ring *in = &rt.rings[tid];
	uint64_t oh = 0, otail = 0, itail = 0;
	if (out != NULL) {
		oh = atomic_load_explicit(&out->head, memory_order_relaxed);
		otail = atomic_load_explicit(&out->tail, memory_order_acquire);
		itail = atomic_load_explicit(&in->tail, memory_order_relaxed);
	}
	uint64_t rng = t->rng, handed = t->handed;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = zpp_splitmix64(&rng);
		unsigned j = mixed_slot(r, window);
		void *old = win[j];
		bool pass = out != NULL && (r & (MIXED_HANDOFF - 1)) == 0;
		if (pass && oh - otail >= RING_SLOTS) {
			otail = atomic_load_explicit(&out->tail, memory_order_acquire);
			pass = oh - otail < RING_SLOTS;
		}
		if (pass) {
			out->slot[oh % RING_SLOTS] = old;
			atomic_store_explicit(&out->head, ++oh, memory_order_release);
			handed++;
		} else {
			do_put(s, pool, cache, old);
		}
		item it = do_get(s, pool, cache, mixed_size(r));
		touch(it.data, i);
		win[j] = it.h;
		if (out != NULL) {
			uint64_t ih = atomic_load_explicit(&in->head, memory_order_acquire);
			if (ih != itail) {
				for (; itail != ih; itail++)
					do_put(s, pool, cache, in->slot[itail % RING_SLOTS]);
				atomic_store_explicit(&in->tail, itail, memory_order_release);
			}
		}
	}
	t->rng = rng;
	t->handed = handed;
	t->iters += n;
}

#define INSTANTIATE(S, tag)                                                                        \
	static __attribute__((noinline)) void pair_##tag(zpb_case *c, struct thread_state *t,      \
							 uint64_t n)                               \
	{                                                                                          \
		body_pair(S, c, t, n);                                                             \
	}                                                                                          \
	static __attribute__((noinline)) void workset_##tag(zpb_case *c, struct thread_state *t,   \
							    uint64_t n)                            \
	{                                                                                          \
		body_workset(S, c, t, n);                                                          \
	}                                                                                          \
	static __attribute__((noinline)) void prodcons_##tag(zpb_case *c, int tid,                 \
							     struct thread_state *t, uint64_t n)   \
	{                                                                                          \
		body_prodcons(S, c, tid, t, n);                                                    \
	}                                                                                          \
	static __attribute__((noinline)) void mixed_##tag(zpb_case *c, int tid,                    \
							  struct thread_state *t, uint64_t n)      \
	{                                                                                          \
		body_mixed(S, c, tid, t, n);                                                       \
	}

INSTANTIATE(S_POOL, pool)
INSTANTIATE(S_HANDLE, handle)
INSTANTIATE(S_MALLOC, malloc)
INSTANTIATE(S_TLS, tls)

void zpb_run(zpb_case *c, int tid, uint64_t iters)
{
	struct thread_state *t = &ts[tid];
#define DISPATCH(tag)                                                                              \
	switch (c->body) {                                                                         \
	case B_PAIR:                                                                               \
		pair_##tag(c, t, iters);                                                           \
		break;                                                                             \
	case B_WORKSET:                                                                            \
		workset_##tag(c, t, iters);                                                        \
		break;                                                                             \
	case B_PRODCONS:                                                                           \
		prodcons_##tag(c, tid, t, iters);                                                  \
		break;                                                                             \
	case B_MIXED:                                                                              \
		mixed_##tag(c, tid, t, iters);                                                     \
		break;                                                                             \
	}
	switch (c->server) {
	case S_POOL:
		DISPATCH(pool);
		break;
	case S_HANDLE:
		DISPATCH(handle);
		break;
	case S_MALLOC:
		DISPATCH(malloc);
		break;
	case S_TLS:
		DISPATCH(tls);
		break;
	case S_DPDK:
#ifdef ZPB_HAVE_DPDK
		zpb_dpdk_pair_loop(rt.dpdk_mp, c->size, iters);
#endif
		break;
	}
#undef DISPATCH
}

/* ---- enter / leave -------------------------------------------------------------- */

static void release_current(void)
{
	if (rt.pool != NULL)
		zp_pool_destroy(rt.pool);
	rt.pool = NULL;
#ifdef ZPB_HAVE_DPDK
	if (rt.dpdk_mp != NULL)
		zpb_dpdk_free(rt.dpdk_mp);
#endif
	rt.dpdk_mp = NULL;
	rt.cur = NULL;
}

/* Thread 0: make c's pool the live one (kept across trials of c). */
static int prepare(zpb_case *c)
{
	if (rt.rings == NULL) {
		rt.rings = aligned_alloc(64, sizeof(struct ring) * ZPB_MAX_THREADS);
		if (rt.rings == NULL) {
			set_error("out of memory");
			return -1;
		}
		memset(rt.rings, 0, sizeof(struct ring) * ZPB_MAX_THREADS);
	}
	if (rt.cur == c)
		return 0;
	release_current();
	switch (c->server) {
	case S_POOL:
	case S_HANDLE:
		rt.pool = zp_pool_create(&c->cfg);
		if (rt.pool == NULL) {
			set_error("zp_pool_create(%s): %s", c->cfg.backend, strerror(errno));
			return -1;
		}
		break;
	case S_DPDK:
#ifdef ZPB_HAVE_DPDK
		rt.dpdk_mp = zpb_dpdk_create(c->size, errbuf, sizeof errbuf);
		if (rt.dpdk_mp == NULL)
			return -1;
#endif
		break;
	default:
		break;
	}
	rt.cur = c;
	return 0;
}

/* Put h back to whoever serves c, outside the timed loops. */
static void put_any(zpb_case *c, struct thread_state *t, void *h)
{
	switch (c->server) {
	case S_POOL:
		do_put(S_POOL, rt.pool, t->cache, h);
		break;
	case S_HANDLE:
		do_put(S_HANDLE, rt.pool, t->cache, h);
		break;
	case S_MALLOC:
		do_put(S_MALLOC, rt.pool, t->cache, h);
		break;
	default:
		die("put_any: not a pool or malloc case");
	}
}

/* Fill the mixed body's window: what a server holds when it is running. */
static void mixed_fill(zpb_case *c, struct thread_state *t)
{
	for (unsigned k = 0; k < c->keep; k++) {
		uint64_t r = zpp_splitmix64(&t->rng);
		item it;
		switch (c->server) {
		case S_POOL:
			it = do_get(S_POOL, rt.pool, t->cache, mixed_size(r));
			break;
		case S_HANDLE:
			it = do_get(S_HANDLE, rt.pool, t->cache, mixed_size(r));
			break;
		case S_MALLOC:
			it = do_get(S_MALLOC, rt.pool, t->cache, mixed_size(r));
			break;
		default:
			die("mixed_fill: not a pool or malloc case");
		}
		touch(it.data, k);
		t->held[k] = it.h;
	}
}

/* Return the mixed body's window and what the inbox still holds (every
 * thread has left its loop: nothing more arrives). */
static void mixed_empty(zpb_case *c, int tid, struct thread_state *t)
{
	for (unsigned k = 0; k < c->keep; k++)
		if (t->held[k] != NULL)
			put_any(c, t, t->held[k]);
	struct ring *in = &rt.rings[tid];
	uint64_t head = atomic_load_explicit(&in->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&in->tail, memory_order_relaxed);
	for (; tail != head; tail++)
		put_any(c, t, in->slot[tail % RING_SLOTS]);
	atomic_store_explicit(&in->tail, tail, memory_order_release);
}

static void thread_fini(zpb_case *c, int tid)
{
	struct thread_state *t = &ts[tid];
	if (c->body == B_MIXED && t->held != NULL)
		mixed_empty(c, tid, t);
	free(t->held);
	t->held = NULL;
	t->cache = NULL;
	if (t->tls_ready) {
		while (tls_top > 0)
			free(tls_stk[--tls_top]);
		t->tls_ready = false;
	}
#ifdef ZPB_HAVE_DPDK
	if (t->dpdk_registered)
		zpb_dpdk_thread_leave();
#endif
	t->dpdk_registered = false;
}

static int thread_init(zpb_case *c, int tid, int nthreads)
{
	struct thread_state *t = &ts[tid];
	memset(t, 0, sizeof *t);
	t->nthreads = (unsigned)nthreads;
	t->rng = (uint64_t)tid; /* the same sequence on every run */
	if (c->server == S_HANDLE) {
		t->cache = zp_thread_cache(rt.pool);
		if (t->cache == NULL) {
			set_error("zp_thread_cache: %s", strerror(errno));
			return -1;
		}
	}
	if (c->body == B_WORKSET || c->body == B_MIXED) {
		/* Whole lines of its own: where the malloc under test would put
		 * it must not decide whether two threads' arrays share a line. */
		size_t bytes = ((c->keep ? c->keep : 1) * sizeof *t->held + 63) & ~(size_t)63;
		t->held = aligned_alloc(64, bytes);
		if (t->held != NULL)
			memset(t->held, 0, bytes);
		if (t->held == NULL) {
			set_error("out of memory");
			return -1;
		}
	}
	if (c->server == S_TLS) {
		tls_top = 0;
		unsigned char *p = malloc(c->size);
		if (p == NULL) {
			set_error("malloc(%zu) failed", c->size);
			return -1;
		}
		memset(p, 0, c->size < 4096 ? c->size : 4096);
		tls_stk[tls_top++] = p;
		t->tls_ready = true;
	}
#ifdef ZPB_HAVE_DPDK
	if (c->server == S_DPDK && tid != 0) {
		if (zpb_dpdk_thread_enter(errbuf, sizeof errbuf) != 0)
			return -1;
		t->dpdk_registered = true;
	}
#endif
	if (c->body == B_MIXED)
		mixed_fill(c, t);
	/* Warm up: one iteration (a local get+put for the split body, whose
	 * partner is not running yet). */
	if (c->body == B_PRODCONS) {
		if (c->server == S_MALLOC) {
			pair_malloc(c, t, 1);
		} else {
			pair_pool(c, t, 1);
		}
		struct ring *r = &rt.rings[tid / 2];
		t->seen = tid % 2 == 0 ? atomic_load(&r->tail) : atomic_load(&r->head);
	} else {
		zpb_run(c, tid, 1);
	}
	t->iters = t->handed = 0; /* count the timed loop only */
	return 0;
}

int zpb_enter(zpb_case *c, int tid, int nthreads)
{
	if (tid == 0) {
		atomic_store(&rt.failed, 0);
		rt.have_st0 = false;
		atomic_store(&rt.t1, UINT64_MAX);
		if (nthreads > ZPB_MAX_THREADS) {
			set_error("at most %d threads", ZPB_MAX_THREADS);
			atomic_store(&rt.failed, 1);
		} else if (c->body == B_PRODCONS && nthreads % 2 != 0) {
			set_error("producer/consumer needs an even number of threads");
			atomic_store(&rt.failed, 1);
		} else if (prepare(c) != 0) {
			atomic_store(&rt.failed, 1);
		}
	}
	barrier_wait(&rt.bar, (unsigned)nthreads, NULL);
	if (atomic_load(&rt.failed))
		return -1;
	if (tid < ZPB_MAX_THREADS && thread_init(c, tid, nthreads) != 0)
		atomic_store(&rt.failed, 1);
	barrier_wait(&rt.bar, (unsigned)nthreads, &rt.t0);
	if (atomic_load(&rt.failed)) {
		thread_fini(c, tid);
		return -1;
	}
	if (tid == 0 && rt.pool != NULL)
		rt.have_st0 = zp_stats(rt.pool, &rt.st0) == 0;
	if (tid == 0)
		rt.pcpu0 = zpp_process_cpu_ns();
	if (tid < ZPB_MAX_THREADS)
		ts[tid].cpu0 = zpp_thread_cpu_ns();
	return 0;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

size_t zpb_leave(zpb_case *c, int tid, int nthreads, double *wall_s, zpb_counter *out, size_t max)
{
	/* The run ended when the last thread finished its loop; every thread
	 * gets here only after Google Benchmark's closing barrier, so the
	 * earliest of their clocks is the closest to that moment. */
	if (tid < ZPB_MAX_THREADS)
		ts[tid].cpu1 = zpp_thread_cpu_ns();
	uint64_t t = zpp_now_ns(), cur = atomic_load(&rt.t1);
	while (t < cur && !atomic_compare_exchange_weak(&rt.t1, &cur, t))
		;
	size_t n = 0;
	uint64_t ops = 0; /* gets + puts of the run, for the background CPU */
	if (tid == 0 && rt.pool != NULL && rt.have_st0 && max >= 14) {
		struct zp_stats s1;
		if (zp_stats(rt.pool, &s1) == 0) {
			const struct zp_stats *s0 = &rt.st0;
			uint64_t gets = s1.gets - s0->gets, puts = s1.puts - s0->puts;
			ops = gets + puts;
			out[n++] =
			    (zpb_counter){"hit_rate", ratio(s1.cache_hits - s0->cache_hits, gets)};
			out[n++] = (zpb_counter){"store_hit_rate",
						 ratio(s1.store_hits - s0->store_hits, gets)};
			out[n++] =
			    (zpb_counter){"fresh_per_get", ratio(s1.fresh - s0->fresh, gets)};
			out[n++] =
			    (zpb_counter){"refills_per_get", ratio(s1.refills - s0->refills, gets)};
			out[n++] =
			    (zpb_counter){"drains_per_put", ratio(s1.drains - s0->drains, puts)};
			out[n++] = (zpb_counter){"evict_per_put",
						 ratio(s1.evictions - s0->evictions, puts)};
			out[n++] = (zpb_counter){"discard_per_put",
						 ratio(s1.discards - s0->discards, puts)};
			out[n++] = (zpb_counter){"contention_per_op",
						 ratio(s1.contention - s0->contention, ops)};
			/* Reclamation (docs/findings.md, question 4): magazines
			 * reused after a grace period, per operation; the mean
			 * grace period of the run; the longest since the pool
			 * was made; the store's own memory at the end. */
			out[n++] = (zpb_counter){"reclaimed_per_op",
						 ratio(s1.reclaimed - s0->reclaimed, ops)};
			out[n++] =
			    (zpb_counter){"grace_us", ratio(s1.grace_ns - s0->grace_ns,
							    s1.grace_periods - s0->grace_periods) /
							  1e3};
			out[n++] = (zpb_counter){"grace_max_us", (double)s1.grace_max_ns / 1e3};
			out[n++] =
			    (zpb_counter){"store_meta_kib", (double)s1.store_meta_bytes / 1024.0};
			/* The buffers the pool holds at the end (cached, idle or
			 * out): its memory, apart from the process's RSS. */
			out[n++] = (zpb_counter){"live_kib", (double)s1.live_bytes / 1024.0};
		}
	}
	if (tid == 0 && c->body == B_MIXED && n < max) {
		/* 1 in MIXED_HANDOFF with threads to pass to, less what found
		 * the next thread's mailbox full. */
		uint64_t iters = 0, handed = 0;
		for (int i = 0; i < nthreads && i < ZPB_MAX_THREADS; i++) {
			iters += ts[i].iters;
			handed += ts[i].handed;
		}
		out[n++] = (zpb_counter){"handoff_per_get", ratio(handed, iters)};
	}
	barrier_wait(&rt.bar, (unsigned)nthreads, NULL);
	if (tid == 0 && ops != 0 && n < max) {
		/* CPU time the process spent outside the benchmark's threads
		 * (liburcu's call_rcu worker: question 4 of docs/findings.md),
		 * per operation.  Every thread has read its clock: the barrier. */
		uint64_t mine = 0, all = zpp_process_cpu_ns() - rt.pcpu0;
		for (int i = 0; i < nthreads && i < ZPB_MAX_THREADS; i++)
			mine += ts[i].cpu1 - ts[i].cpu0;
		out[n++] = (zpb_counter){"bg_cpu_ns_per_op",
					 all > mine ? (double)(all - mine) / (double)ops : 0.0};
	}
	*wall_s = (double)(atomic_load(&rt.t1) - rt.t0) / 1e9;
	thread_fini(c, tid);
	return n;
}

void zpb_cases_free(void)
{
	release_current();
	free(rt.rings);
	rt.rings = NULL;
	free(cases);
	cases = NULL;
	ncases = capcases = 0;
}
