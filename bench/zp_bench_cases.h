/*
 * zp_bench_cases.h - the micro-benchmark matrix, in plain C.
 *
 * The bodies, the pools they run against and the list of cases live in
 * zp_bench_cases.c; zp_bench_main.cc (the only C++ file) registers every
 * case with Google Benchmark and calls these functions from its threads.
 *
 * One run of a case on N threads (one Google Benchmark "trial") is:
 *
 *     every thread:  zpb_enter(c, tid, N)           prepare, untimed
 *                    while (KeepRunningBatch(zpb_case_batch(c)))
 *                            zpb_run(c, tid, zpb_case_batch(c))
 *                    zpb_leave(c, tid, N, counters)  clean up, untimed
 *
 * Time is wall time of the whole run, reported through SetIterationTime
 * (UseManualTime): Google Benchmark's own UseRealTime averages the threads'
 * own wall times, which overstates the aggregate rate as soon as threads
 * outnumber cores and do not all run at once.
 *
 * zpb_enter creates the case's pool on thread 0 (a pool lives from the first
 * trial of its case until another case starts, so later trials and
 * repetitions run warm), waits for every thread, lets each thread attach and
 * warm up, and waits again, so that nothing but the timed loop overlaps the
 * loop.  zpb_leave returns what the thread still holds; on thread 0 it also
 * reports pool counters (deltas over the trial, from zp_stats()).
 */
#ifndef ZP_BENCH_CASES_H
#define ZP_BENCH_CASES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZPB_MAX_THREADS 64
#define ZPB_MAX_COUNTERS 16

typedef struct zpb_case zpb_case;

typedef struct zpb_options {
	const unsigned *threads; /* thread counts for the threaded cases */
	size_t nthreads;
	int smoke; /* a reduced matrix: fewer sizes and parameter values */
} zpb_options;

typedef struct zpb_counter {
	const char *name;
	double value;
} zpb_counter;

/* Build the matrix: pool cases for every registered backend
 * (zp_backend_count/zp_backend_at), then the peers, then the pool cases'
 * tuned variants.  Returns the number of
 * cases, or -1 (see zpb_error()). */
long zpb_cases_build(const zpb_options *opt);
/* Destroy the live pool and free the matrix. */
void zpb_cases_free(void);
size_t zpb_case_count(void);
zpb_case *zpb_case_at(size_t i);

/* "pool/<backend>/<case>/<key>:<value>/...", "malloc/<allocator>/<case>/...",
 * "tls_stack/floor/<case>/...", "dpdk/mempool/<case>/...".  Pool cases run
 * the library's default configuration unless a key names a setting; the
 * tuned variants end in /store:<max_per_class> and come after every
 * default case. */
const char *zpb_case_name(const zpb_case *c);
/* Thread counts to register this case with. */
size_t zpb_case_nthreads(const zpb_case *c);
unsigned zpb_case_threads(const zpb_case *c, size_t i);
/* Iterations per zpb_run call (the KeepRunningBatch size). */
uint64_t zpb_case_batch(const zpb_case *c);
/* Items (get+put pairs) one iteration of thread tid accounts for. */
uint64_t zpb_case_items(const zpb_case *c, int tid);
/* A label for the report (the allocator serving malloc for malloc peers),
 * or NULL. */
const char *zpb_case_label(const zpb_case *c);

/* See the file comment.  zpb_enter returns 0, or -1 when the case cannot
 * run (zpb_error() says why); every thread of the trial then gets -1. */
int zpb_enter(zpb_case *c, int tid, int nthreads);
void zpb_run(zpb_case *c, int tid, uint64_t iters);
/* Sets *wall_s to the wall time of the whole run, the same on every thread:
 * from the moment the last thread was ready to the moment the last one
 * finished.  Fills out[0..return) on thread 0, returns 0 elsewhere. */
size_t zpb_leave(zpb_case *c, int tid, int nthreads, double *wall_s, zpb_counter *out, size_t max);
const char *zpb_error(void);

/* Whether the DPDK rte_mempool peer was compiled in. */
int zpb_have_dpdk(void);

#ifdef __cplusplus
}
#endif

#endif /* ZP_BENCH_CASES_H */
