/*
 * zp_decay_curve.c - resident memory over time for a load that stops: does
 * the memory come back, and how fast?  (Issue 13; docs/benchmarks.md.)
 *
 *     zp_decay_curve [--backend NAME|malloc] [--maintain thread|call|none]
 *                    [--threads N] [--window N] [--load-ms MS] [--quiet-ms MS]
 *                    [--decay-ms MS] [--idle-threads stay|exit] [--sample-ms MS]
 *
 * N threads each keep a window of buffers of random sizes (64 B to 64 KiB,
 * skewed to small: a size class is drawn uniformly from 64 B, 128 B, ...
 * 64 KiB), replacing one at random per iteration and writing all of its
 * bytes, for --load-ms; then they stop (and wait, or exit) for --quiet-ms.
 * The main thread samples the process's resident set from /proc/self/statm
 * every --sample-ms and prints CSV on stdout: t_ms,phase,rss_kib, then a
 * last comment line with the pool's stats.  With --backend malloc the same
 * work goes to malloc/free (run it under LD_PRELOAD for jemalloc,
 * tcmalloc...).  --maintain: thread = ZP_F_MAINTENANCE_THREAD; call = the
 * main thread calls zp_maintain() at every sample (an application's own
 * timer); none = neither (decay only runs on the pool's slow paths, and a
 * quiet pool has none).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zeropool.h"
#include "zp_progs.h"

static struct {
	const char *backend; /* NULL: the library's default; "malloc" */
	const char *maintain;
	unsigned threads, window;
	long load_ms, quiet_ms, decay_ms, sample_ms;
	bool exit_threads;
} opt = {NULL, "thread", 4, 256, 2000, 25000, 10000, 100, false};

static zp_pool *pool;
static atomic_bool load_over;
static atomic_bool all_over;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: zp_decay_curve [options]\n"
	    "Resident memory over time while threads cycle buffers, then after they stop.\n\n"
	    "  --backend NAME      a zeropool backend or \"malloc\" (default: the library's)\n"
	    "  --maintain MODE     thread (ZP_F_MAINTENANCE_THREAD, default), call (zp_maintain\n"
	    "                      at every sample) or none\n"
	    "  --threads N         worker threads, 1..64 (default 4)\n"
	    "  --window N          buffers each thread keeps, 1..4096 (default 256)\n"
	    "  --load-ms MS        how long the threads work (default 2000)\n"
	    "  --quiet-ms MS       how long to watch after they stop (default 25000)\n"
	    "  --decay-ms MS       zp_config.decay_ms (default 10000, the library's default)\n"
	    "  --idle-threads stay|exit\n"
	    "                      after the load the threads wait (default) or exit\n"
	    "  --sample-ms MS      sampling interval (default 100)\n"
	    "  --help              this text\n\n"
	    "Output (stdout): CSV t_ms,phase,rss_kib; last line '# stats ...' for a pool.\n"
	    "Exit status: 0 success, 1 a get failed, 2 bad usage.\n");
}

static long num(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi) {
		fprintf(stderr, "zp_decay_curve: bad number '%s' (want %ld..%ld)\n", s, lo, hi);
		usage(stderr);
		exit(2);
	}
	return v;
}

static void parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (v == NULL) {
			fprintf(stderr, "zp_decay_curve: unknown option or missing value: %s\n", a);
			usage(stderr);
			exit(2);
		}
		i++;
		if (strcmp(a, "--backend") == 0)
			opt.backend = v;
		else if (strcmp(a, "--maintain") == 0 &&
			 (!strcmp(v, "thread") || !strcmp(v, "call") || !strcmp(v, "none")))
			opt.maintain = v;
		else if (strcmp(a, "--threads") == 0)
			opt.threads = (unsigned)num(v, 1, 64);
		else if (strcmp(a, "--window") == 0)
			opt.window = (unsigned)num(v, 1, 4096);
		else if (strcmp(a, "--load-ms") == 0)
			opt.load_ms = num(v, 1, 3600000);
		else if (strcmp(a, "--quiet-ms") == 0)
			opt.quiet_ms = num(v, 0, 3600000);
		else if (strcmp(a, "--decay-ms") == 0)
			opt.decay_ms = num(v, -1, ZP_MAX_DECAY_MS);
		else if (strcmp(a, "--sample-ms") == 0)
			opt.sample_ms = num(v, 1, 60000);
		else if (strcmp(a, "--idle-threads") == 0 &&
			 (!strcmp(v, "stay") || !strcmp(v, "exit")))
			opt.exit_threads = strcmp(v, "exit") == 0;
		else {
			fprintf(stderr, "zp_decay_curve: bad option: %s %s\n", a, v);
			usage(stderr);
			exit(2);
		}
	}
}

static bool use_malloc(void)
{
	return opt.backend != NULL && strcmp(opt.backend, "malloc") == 0;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

struct slot {
	void *h;    /* zp_buf * or malloc's block */
	size_t len; /* 0: empty */
};

static void *get(size_t len, unsigned char **data)
{
	if (use_malloc()) {
		void *p = malloc(len);
		*data = p;
		return p;
	}
	zp_buf *b = zp_get(pool, len);
	*data = b != NULL ? b->data : NULL;
	return b;
}

static void put(void *h)
{
	if (use_malloc())
		free(h);
	else if (zp_put(pool, h) != 0) {
		perror("zp_decay_curve: zp_put");
		exit(1);
	}
}

static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 7919u + 1;
	struct slot *w = calloc(opt.window, sizeof *w);
	if (w == NULL) {
		perror("zp_decay_curve");
		exit(1);
	}
	while (!atomic_load_explicit(&load_over, memory_order_relaxed)) {
		uint64_t r = splitmix(&seed);
		struct slot *s = &w[r % opt.window];
		if (s->len != 0)
			put(s->h);
		s->len = (size_t)64 << ((r >> 32) % 11); /* 64 B .. 64 KiB */
		unsigned char *data;
		s->h = get(s->len, &data);
		if (s->h == NULL) {
			perror("zp_decay_curve: get");
			exit(1);
		}
		memset(data, (int)r, s->len);
	}
	for (unsigned i = 0; i < opt.window; i++)
		if (w[i].len != 0)
			put(w[i].h);
	free(w);
	while (!opt.exit_threads && !atomic_load_explicit(&all_over, memory_order_relaxed)) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	if (!use_malloc()) {
		zp_config c;
		zp_config_init(&c);
		c.backend = opt.backend;
		c.decay_ms = opt.decay_ms;
		if (strcmp(opt.maintain, "thread") == 0)
			c.flags |= ZP_F_MAINTENANCE_THREAD;
		pool = zp_pool_create(&c);
		if (pool == NULL) {
			perror("zp_decay_curve: zp_pool_create");
			return 2;
		}
	}
	pthread_t *t = calloc(opt.threads, sizeof *t);
	if (t == NULL)
		return 1;
	double t0 = now_ms();
	for (unsigned i = 0; i < opt.threads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) {
			perror("zp_decay_curve: pthread_create");
			return 1;
		}
	printf("t_ms,phase,rss_kib\n");
	bool calls = pool != NULL && strcmp(opt.maintain, "call") == 0;
	double end_load = t0 + (double)opt.load_ms, end = end_load + (double)opt.quiet_ms;
	bool joined = false;
	for (;;) {
		double now = now_ms();
		if (now >= end_load && !atomic_load(&load_over)) {
			atomic_store(&load_over, true);
			fprintf(stderr, "zp_decay_curve: load over at %.0f ms, watching %ld ms\n",
				now - t0, opt.quiet_ms);
		}
		if (opt.exit_threads && atomic_load(&load_over) && !joined) {
			for (unsigned i = 0; i < opt.threads; i++)
				pthread_join(t[i], NULL);
			joined = true;
		}
		if (calls)
			(void)zp_maintain(pool);
		printf("%.0f,%s,%ld\n", now - t0, atomic_load(&load_over) ? "quiet" : "load",
		       zpp_rss_kib());
		if (now >= end)
			break;
		struct timespec ts = {opt.sample_ms / 1000, (opt.sample_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	atomic_store(&all_over, true);
	if (!joined)
		for (unsigned i = 0; i < opt.threads; i++)
			pthread_join(t[i], NULL);
	free(t);
	if (pool != NULL) {
		struct zp_stats st;
		zp_stats(pool, &st);
		printf("# stats idle_bytes=%llu idle_peak_bytes=%llu released_bytes=%llu "
		       "cached_buffers=%llu live_bytes=%llu decayed=%llu fresh=%llu\n",
		       (unsigned long long)st.idle_bytes, (unsigned long long)st.idle_peak_bytes,
		       (unsigned long long)st.released_bytes, (unsigned long long)st.cached_buffers,
		       (unsigned long long)st.live_bytes, (unsigned long long)st.decayed,
		       (unsigned long long)st.fresh);
		zp_pool_destroy(pool);
	}
	return 0;
}
