/*
 * stress_test - port of zeropool's profiling/stress_test.rs.
 *
 * Five phases, each on fresh threads (12 by default) that are joined before
 * the next phase starts, so every phase begins with empty thread caches and
 * the previous phase's caches have been given back:
 *   1. Burst Allocations  200 buffers held at once, then a 10 ms sleep
 *   2. Cache Thrashing    two sizes alternating in different classes
 *   3. Mixed Sizes        64 B .. 4 MiB, a deterministic rotation
 *   4. Eviction Pressure  100 large buffers held, half put, more got
 *   5. Random Chaos       an LCG picks sizes; sometimes 5 half-size extras
 * No warm-up.  See docs/workloads.md.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "wl_common.h"

#define NUM_STRESS_THREADS 12   /* --threads */
#define STRESS_DURATION_SECS 30 /* printed only, as in the original */
#define NUM_PHASES 5

/* Loop counts; the ones marked "scaled" are multiplied by --scale. */
#define BURST_ROUNDS 10 /* scaled */
#define BURST_SIZE 200
#define BURST_SLEEP_NS 10000000L
#define THRASH_ITERATIONS 50000 /* scaled */
#define THRASH_SIZES 4
#define MIXED_ITERATIONS 50000 /* scaled */
#define EVICTION_ROUNDS 20     /* scaled */
#define EVICTION_HELD 100
#define EVICTION_KEEP 50 /* held while the extras are got */
#define EVICTION_EXTRA_EVERY 5
#define EVICTION_EXTRAS 10
#define CHAOS_ITERATIONS 50000 /* scaled */
#define CHAOS_EXTRAS 5

#define LCG_MUL 1103515245ull
#define LCG_ADD 12345ull

static const wl_prog PROG = {
    .name = "stress_test",
    .summary = "Five phases of burst, thrashing, mixed, eviction and random patterns, each on "
	       "fresh threads.",
    .scaled = "burst rounds (10), thrashing iterations (50000), mixed iterations (50000),\n"
	      "                   eviction rounds (20) and chaos iterations (50000)",
    .default_threads = NUM_STRESS_THREADS,
};

static const size_t SMALL[] = {64, 128, 256, 512};
static const size_t MEDIUM[] = {4096, 8192, 16384, 32768};
static const size_t LARGE[] = {65536, 131072, 262144, 524288};
static const size_t HUGE[] = {1048576, 2097152, 4194304};

#define NSMALL (sizeof(SMALL) / sizeof(SMALL[0]))
#define NMEDIUM (sizeof(MEDIUM) / sizeof(MEDIUM[0]))
#define NLARGE (sizeof(LARGE) / sizeof(LARGE[0]))
#define NHUGE (sizeof(HUGE) / sizeof(HUGE[0]))

struct params {
	uint64_t burst_rounds;
	uint64_t thrash_iterations;
	uint64_t mixed_iterations;
	uint64_t eviction_rounds;
	uint64_t chaos_iterations;
};

/* "process_buffer": black_box(len), the first and the last byte. */
static inline void process(wl_buf b)
{
	zpp_black_box(b.len);
	wl_write(b.data, 0, 1);
	wl_write(b.data, b.len - 1, 1);
}

static inline void get_process_put(wl_thread *t, size_t size)
{
	wl_buf b = wl_get(t, size);

	process(b);
	wl_put(t, b);
}

static void sleep_ns(long ns)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- phase 1 ------------------------------------------------------------- */

static void phase_burst(wl_thread *t)
{
	const struct params *p = t->arg;
	wl_buf held[BURST_SIZE];

	for (uint64_t r = 0; r < p->burst_rounds; r++) {
		size_t size = MEDIUM[r % NMEDIUM];

		for (int i = 0; i < BURST_SIZE; i++)
			held[i] = wl_get(t, size);
		for (int i = 0; i < BURST_SIZE; i++)
			process(held[i]);
		for (int i = 0; i < BURST_SIZE; i++)
			wl_put(t, held[i]);
		sleep_ns(BURST_SLEEP_NS);
		wl_progress_tick(t, 1);
	}
}

/* ---- phase 2 ------------------------------------------------------------- */

static void phase_thrash(wl_thread *t)
{
	static const size_t even[THRASH_SIZES] = {4096, 65536, 4096, 65536};
	static const size_t odd[THRASH_SIZES] = {16384, 262144, 16384, 262144};
	const struct params *p = t->arg;
	const size_t *sizes = t->tid % 2 == 0 ? even : odd;

	for (uint64_t i = 0; i < p->thrash_iterations; i++) {
		for (int j = 0; j < THRASH_SIZES; j++)
			get_process_put(t, sizes[j]);
		wl_progress_tick(t, 1);
	}
}

/* ---- phase 3 ------------------------------------------------------------- */

static size_t mixed_size(uint64_t seed, uint64_t i)
{
	switch ((seed + i) % 4) {
	case 0:
		return SMALL[(7 * seed + i) % NSMALL];
	case 1:
		return MEDIUM[(11 * seed + i) % NMEDIUM];
	case 2:
		return LARGE[(13 * seed + i) % NLARGE];
	default:
		return HUGE[(17 * seed + i) % NHUGE];
	}
}

static void phase_mixed(wl_thread *t)
{
	const struct params *p = t->arg;
	uint64_t seed = t->tid;

	for (uint64_t i = 0; i < p->mixed_iterations; i++) {
		get_process_put(t, mixed_size(seed, i));
		wl_progress_tick(t, 1);
	}
}

/* ---- phase 4 ------------------------------------------------------------- */

static void phase_eviction(wl_thread *t)
{
	const struct params *p = t->arg;
	wl_buf held[EVICTION_HELD];

	for (uint64_t r = 0; r < p->eviction_rounds; r++) {
		for (int i = 0; i < EVICTION_HELD; i++)
			held[i] = wl_get(t, LARGE[i % NLARGE]);
		for (int i = 0; i < EVICTION_HELD; i++)
			process(held[i]);
		/* Vec::truncate(50) drops the tail in index order. */
		for (int i = EVICTION_KEEP; i < EVICTION_HELD; i++)
			wl_put(t, held[i]);
		if (r % EVICTION_EXTRA_EVERY == 0)
			for (int k = 0; k < EVICTION_EXTRAS; k++)
				get_process_put(t, 1 * WL_MIB);
		for (int i = 0; i < EVICTION_KEEP; i++)
			wl_put(t, held[i]);
		wl_progress_tick(t, 1);
	}
}

/* ---- phase 5 ------------------------------------------------------------- */

/* The original's 64-bit wrapping LCG: uint64_t arithmetic is mod 2^64. */
static inline uint64_t lcg_seed(unsigned tid)
{
	return (uint64_t)tid * LCG_MUL + LCG_ADD;
}

static inline uint64_t lcg_next(uint64_t x)
{
	return x * LCG_MUL + LCG_ADD;
}

static inline bool chaos_extras(uint64_t x)
{
	return x % 10 == 0;
}

static size_t chaos_size(uint64_t x)
{
	uint64_t cat = (x >> 16) % 20;
	uint64_t k = x >> 8;

	if (cat < 8)
		return SMALL[k % NSMALL];
	if (cat < 15)
		return MEDIUM[k % NMEDIUM];
	if (cat < 19)
		return LARGE[k % NLARGE];
	return HUGE[k % NHUGE];
}

static void phase_chaos(wl_thread *t)
{
	const struct params *p = t->arg;
	uint64_t x = lcg_seed(t->tid);

	for (uint64_t i = 0; i < p->chaos_iterations; i++) {
		size_t size;
		wl_buf b;

		x = lcg_next(x);
		size = chaos_size(x);
		b = wl_get(t, size);
		process(b);
		if (chaos_extras(x)) {
			wl_buf extra[CHAOS_EXTRAS];

			for (int k = 0; k < CHAOS_EXTRAS; k++)
				extra[k] = wl_get(t, size / 2);
			for (int k = 0; k < CHAOS_EXTRAS; k++)
				process(extra[k]);
			for (int k = 0; k < CHAOS_EXTRAS; k++)
				wl_put(t, extra[k]);
		}
		wl_put(t, b);
		wl_progress_tick(t, 1);
	}
}

/* ---- expected counts ----------------------------------------------------- */

/*
 * Gets each phase makes, from the loop constants alone.  Phase 5 depends
 * on the LCG, so its count re-runs the generator without allocating.
 */
static uint64_t expected_gets(unsigned phase, const struct params *p, unsigned threads)
{
	uint64_t n = 0;

	switch (phase) {
	case 0:
		return (uint64_t)threads * p->burst_rounds * BURST_SIZE;
	case 1:
		return (uint64_t)threads * p->thrash_iterations * THRASH_SIZES;
	case 2:
		return (uint64_t)threads * p->mixed_iterations;
	case 3:
		for (uint64_t r = 0; r < p->eviction_rounds; r++)
			n += EVICTION_HELD + (r % EVICTION_EXTRA_EVERY == 0 ? EVICTION_EXTRAS : 0);
		return (uint64_t)threads * n;
	default:
		for (unsigned tid = 0; tid < threads; tid++) {
			uint64_t x = lcg_seed(tid);

			for (uint64_t i = 0; i < p->chaos_iterations; i++) {
				x = lcg_next(x);
				n += 1 + (chaos_extras(x) ? CHAOS_EXTRAS : 0);
			}
		}
		return n;
	}
}

/* ---- main ---------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(wl_thread *t);
} PHASES[NUM_PHASES] = {
    {"Burst Allocations", phase_burst}, {"Cache Thrashing", phase_thrash},
    {"Mixed Sizes", phase_mixed},       {"Eviction Pressure", phase_eviction},
    {"Random Chaos", phase_chaos},
};

/* Progress units of a phase: its outer loop's count per thread. */
static uint64_t phase_units(unsigned phase, const struct params *p)
{
	const uint64_t units[NUM_PHASES] = {p->burst_rounds, p->thrash_iterations,
					    p->mixed_iterations, p->eviction_rounds,
					    p->chaos_iterations};
	return units[phase];
}

/* The original's pool: tls 8, 64 per class, min 64 B; no warm-up. */
static void open_pool(wl_ctx *ctx)
{
	zp_config cfg;

	wl_config_init(ctx, &cfg);
	cfg.cache_depth = 8;
	cfg.max_per_class = 64;
	cfg.min_size = 64;
	wl_pool_open(ctx, &cfg);
}

int main(int argc, char **argv)
{
	wl_ctx ctx;
	struct params p;
	unsigned threads;
	double t0, start;
	char d[32];

	wl_init(&ctx, &PROG, argc, argv);
	threads = ctx.opt.threads;
	p.burst_rounds = wl_scaled(&ctx, BURST_ROUNDS);
	p.thrash_iterations = wl_scaled(&ctx, THRASH_ITERATIONS);
	p.mixed_iterations = wl_scaled(&ctx, MIXED_ITERATIONS);
	p.eviction_rounds = wl_scaled(&ctx, EVICTION_ROUNDS);
	p.chaos_iterations = wl_scaled(&ctx, CHAOS_ITERATIONS);
	for (unsigned ph = 0; ph < NUM_PHASES; ph++)
		ctx.expected_gets += expected_gets(ph, &p, threads);

	wl_log(&ctx, "=== Stress Test Profiling ===\n");
	wl_log(&ctx, "Stress threads: %u\n", threads);
	wl_log(&ctx, "Duration: %ds\n", STRESS_DURATION_SECS);
	wl_log(&ctx, "Phases: %d\n", NUM_PHASES);

	t0 = zpp_now();
	open_pool(&ctx);
	ctx.setup_s = zpp_now() - t0;

	start = zpp_now();
	for (unsigned ph = 0; ph < NUM_PHASES; ph++) {
		const char *name = PHASES[ph].name;
		uint64_t gets, want = expected_gets(ph, &p, threads);
		double s;

		wl_log(&ctx, "\n=== Phase: %s ===\n", name);
		t0 = zpp_now();
		gets = wl_run_threads(&ctx, threads, PHASES[ph].fn, &p, name,
				      (uint64_t)threads * phase_units(ph, &p));
		s = zpp_now() - t0;
		wl_phase_add(&ctx, name, s, gets);
		wl_log(&ctx, "[%s] Completed in %s\n", name, wl_fmt_dur(s, d, sizeof(d)));
		if (ctx.pool != NULL)
			wl_log(&ctx, "Pool stats: %lld buffers\n",
			       (long long)ctx.phases[ctx.nphases - 1].idle_buffers);
		if (gets != want)
			fprintf(stderr, "error: phase %s made %llu gets, expected %llu\n", name,
				(unsigned long long)gets, (unsigned long long)want);
	}
	ctx.wall_s = zpp_now() - start;

	wl_log(&ctx, "\n=== Stress Test Complete ===\n");
	wl_log(&ctx, "Total time: %s\n", wl_fmt_dur(ctx.wall_s, d, sizeof(d)));
	if (ctx.pool != NULL)
		wl_log(&ctx, "Final pool size: %lld buffers\n", (long long)wl_idle_buffers(&ctx));
	wl_extra(&ctx, "burst_rounds", p.burst_rounds);
	wl_extra(&ctx, "thrash_iterations", p.thrash_iterations);
	wl_extra(&ctx, "mixed_iterations", p.mixed_iterations);
	wl_extra(&ctx, "eviction_rounds", p.eviction_rounds);
	wl_extra(&ctx, "chaos_iterations", p.chaos_iterations);
	return wl_finish(&ctx);
}
