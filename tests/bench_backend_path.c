/*
 * bench_backend_path.c - the cost of the shared store, backend against
 * backend, in one run (so every number comes from the same machine state).
 *
 *   usage: bench_backend_path [SECONDS_PER_RUN [REPS [BACKEND...]]]  (--help)
 *
 * Two loops, each run with 1 and 2 threads, REPS times (default 5), and
 * reported as the median (min..max) of the per-run figures:
 *
 *   path   cache_depth 0: every zp_get is a take(1), every zp_put a give(1)
 *          -> ns per get+put pair, per thread (wall time / pairs)
 *   batch  cache_depth 8, batch 4: get 32 buffers, put them back, so every
 *          4 gets refill from the store and every 4 puts drain to it
 *          -> ns per buffer get+put, per thread
 *
 * plus the aggregate rate (Mpairs/s, all threads).  Of the library, uses
 * only zeropool.h.
 * Not a CI test: run it by hand (docs/lockfree.md).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"
#include "zp_test.h"
#include "zp_progs.h"

enum { MAX_REPS = 31, WORKING_SET = 32 };

struct job {
	zp_pool *pool;
	int batch_mode;
	double seconds;
	atomic_int *ready;
	atomic_int *go;
	unsigned long pairs;
	double elapsed;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	zp_buf *set[WORKING_SET];
	atomic_fetch_add(j->ready, 1);
	while (!atomic_load(j->go))
		;
	unsigned long pairs = 0;
	double t0 = zpp_now(), t;
	do {
		for (int k = 0; k < 64; k++) {
			if (j->batch_mode) {
				for (int i = 0; i < WORKING_SET; i++)
					set[i] = zp_get(j->pool, 256);
				for (int i = WORKING_SET - 1; i >= 0; i--)
					zp_put(j->pool, set[i]);
				pairs += WORKING_SET;
			} else {
				zp_buf *b = zp_get(j->pool, 256);
				zp_put(j->pool, b);
				pairs++;
			}
		}
		t = zpp_now();
	} while (t - t0 < j->seconds);
	j->pairs = pairs;
	j->elapsed = t - t0;
	return NULL;
}

/* One timed run: ns per pair per thread, and aggregate Mpairs/s. */
static int run_once(const char *backend, int batch_mode, unsigned threads, double seconds,
		    double *ns, double *mops)
{
	zp_config cfg;
	zp_config_init(&cfg);
	cfg.backend = backend;
	cfg.cache_depth = batch_mode ? 8 : 0;
	cfg.batch = batch_mode ? 4 : 0;
	cfg.max_per_class = 256;
	zp_pool *pool = zp_pool_create(&cfg);
	if (pool == NULL)
		return -1;
	atomic_int ready = 0, go = 0;
	struct job jobs[2];
	pthread_t tid[2];
	for (unsigned i = 0; i < threads; i++) {
		jobs[i] = (struct job){.pool = pool,
				       .batch_mode = batch_mode,
				       .seconds = seconds,
				       .ready = &ready,
				       .go = &go};
		pthread_create(&tid[i], NULL, run_job, &jobs[i]);
	}
	while (atomic_load(&ready) < (int)threads)
		;
	atomic_store(&go, 1);
	double sum_ns = 0, rate = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		sum_ns += jobs[i].elapsed * 1e9 / (double)jobs[i].pairs;
		rate += (double)jobs[i].pairs / jobs[i].elapsed;
	}
	zp_pool_destroy(pool);
	*ns = sum_ns / threads;
	*mops = rate / 1e6;
	return 0;
}

static int usage(FILE *to, const char *prog, int rc)
{
	fprintf(to,
		"usage: %s [SECONDS_PER_RUN [REPS [BACKEND...]]]\n"
		"  SECONDS_PER_RUN  each timed run, 0 < s <= 60 (default 0.2)\n"
		"  REPS             runs per backend and loop, 1..%d, reported as median\n"
		"                   (min..max) (default 5)\n"
		"  BACKEND          up to 16 of:",
		prog, MAX_REPS);
	zp_test_print_backends(to);
	fprintf(to, " (default: all)\n");
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return usage(stdout, argv[0], 0);
	double seconds = 0.2;
	long reps = 5;
	if (argc > 1 && !zp_test_parse_positive(argv[1], 60, &seconds)) {
		fprintf(stderr, "%s: bad SECONDS_PER_RUN: %s\n", argv[0], argv[1]);
		return usage(stderr, argv[0], 2);
	}
	if (argc > 2 && !zp_test_parse_long(argv[2], 1, MAX_REPS, &reps)) {
		fprintf(stderr, "%s: bad REPS: %s\n", argv[0], argv[2]);
		return usage(stderr, argv[0], 2);
	}
	if (argc > 3 + 16) {
		fprintf(stderr, "%s: more than 16 backends\n", argv[0]);
		return usage(stderr, argv[0], 2);
	}
	const char *names[16];
	int nb = 0;
	for (int i = 3; i < argc; i++) {
		if (!zp_test_backend_known(argv[i])) {
			fprintf(stderr, "%s: unknown backend: %s\n", argv[0], argv[i]);
			return usage(stderr, argv[0], 2);
		}
		names[nb++] = argv[i];
	}
	if (nb == 0)
		for (size_t i = 0; i < zp_backend_count() && nb < 16; i++)
			names[nb++] = zp_backend_at(i);

	printf("%-6s %-14s %7s %10s %21s %12s\n", "loop", "backend", "threads", "ns/pair",
	       "(min..max)", "Mpairs/s");
	for (int mode = 0; mode < 2; mode++)
		for (unsigned threads = 1; threads <= 2; threads++) {
			/* Interleave the backends rep by rep, so drift hits all alike. */
			double ns[16][MAX_REPS], mops[16][MAX_REPS];
			for (int r = 0; r < reps; r++)
				for (int b = 0; b < nb; b++)
					if (run_once(names[b], mode, threads, seconds, &ns[b][r],
						     &mops[b][r]) != 0) {
						perror(names[b]);
						return 1;
					}
			for (int b = 0; b < nb; b++) {
				zpp_sort_doubles(ns[b], (size_t)reps);
				zpp_sort_doubles(mops[b], (size_t)reps);
				printf("%-6s %-14s %7u %10.1f %9.1f..%-10.1f %12.2f\n",
				       mode ? "batch" : "path", names[b], threads, ns[b][reps / 2],
				       ns[b][0], ns[b][reps - 1], mops[b][reps / 2]);
			}
		}
	return 0;
}
