/*
 * zp_burst_rss.c - where the resident memory of stress_test's burst phase
 * goes, one step at a time, on one thread.  (Issue 13; docs/design.md,
 * "The page arena".)
 *
 *     zp_burst_rss [--backend NAME|malloc] [--rounds N] [--count N]
 *
 * Each round gets --count buffers (200) of one size (4, 8, 16, 32 KiB in
 * turn), writes the first and the last byte of each, and puts them all
 * back, with the pool settings of stress_test (cache_depth 8,
 * max_per_class 64).  The process's resident set (/proc/self/statm) is
 * read after the gets, after the writes and after the puts, and printed as
 * CSV on stdout: round,size,rss_start_kib,after_get_kib,after_write_kib,
 * after_put_kib.  With --backend malloc the same steps use malloc/free.
 * One thread, no sleeps: every number is the kernel's page count at that
 * step, which does not depend on timing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"
#include "zp_progs.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: zp_burst_rss [options]\n"
		"Resident memory after each step of stress_test's burst phase, one thread.\n\n"
		"  --backend NAME   a zeropool backend, or \"malloc\" (default: the library's)\n"
		"  --rounds N       rounds, 1..1000 (default 8): sizes 4, 8, 16, 32 KiB in turn\n"
		"  --count N        buffers held per round, 1..100000 (default 200)\n"
		"  --help           this text\n\n"
		"Output: CSV on stdout, one line per round.\n"
		"Exit status: 0 success, 1 a get failed, 2 bad usage.\n");
}

static long rss_kib(void)
{
	long kib = zpp_rss_kib();
	if (kib == 0) {
		fprintf(stderr, "zp_burst_rss: cannot read /proc/self/statm\n");
		exit(1);
	}
	return kib;
}

static long parse_long(const char *opt, const char *v, long lo, long hi)
{
	char *end = NULL;
	long n = v != NULL ? strtol(v, &end, 10) : 0;
	if (v == NULL || *v == '\0' || *end != '\0' || n < lo || n > hi) {
		fprintf(stderr, "zp_burst_rss: %s wants an integer in %ld..%ld\n", opt, lo, hi);
		usage(stderr);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *backend = NULL;
	long rounds = 8, count = 200;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--backend") == 0 && v != NULL) {
			backend = v;
			i++;
		} else if (strcmp(a, "--rounds") == 0) {
			rounds = parse_long(a, v, 1, 1000);
			i++;
		} else if (strcmp(a, "--count") == 0) {
			count = parse_long(a, v, 1, 100000);
			i++;
		} else {
			fprintf(stderr, "zp_burst_rss: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	bool use_malloc = backend != NULL && strcmp(backend, "malloc") == 0;
	zp_pool *pool = NULL;
	if (!use_malloc) {
		zp_config c;
		zp_config_init(&c);
		c.backend = backend;
		c.cache_depth = 8; /* stress_test's settings (docs/workloads.md) */
		c.max_per_class = 64;
		c.min_size = 64;
		pool = zp_pool_create(&c);
		if (pool == NULL) {
			perror("zp_burst_rss: zp_pool_create");
			return 2;
		}
	}
	zp_buf **held = calloc((size_t)count, sizeof *held);
	unsigned char **data = calloc((size_t)count, sizeof *data);
	if (held == NULL || data == NULL)
		return 1;
	static const size_t sizes[4] = {4096, 8192, 16384, 32768};
	printf("round,size,rss_start_kib,after_get_kib,after_write_kib,after_put_kib\n");
	for (long r = 0; r < rounds; r++) {
		size_t size = sizes[r % 4];
		long start = rss_kib();
		for (long i = 0; i < count; i++) {
			if (use_malloc) {
				data[i] = malloc(size);
			} else {
				held[i] = zp_get(pool, size);
				data[i] = held[i] != NULL ? held[i]->data : NULL;
			}
			if (data[i] == NULL) {
				fprintf(stderr, "zp_burst_rss: get of %zu failed\n", size);
				return 1;
			}
		}
		long got = rss_kib();
		for (long i = 0; i < count; i++) {
			((volatile unsigned char *)data[i])[0] = 1;
			((volatile unsigned char *)data[i])[size - 1] = 1;
		}
		long written = rss_kib();
		for (long i = 0; i < count; i++) {
			if (use_malloc)
				free(data[i]);
			else
				zp_put(pool, held[i]);
		}
		printf("%ld,%zu,%ld,%ld,%ld,%ld\n", r, size, start, got, written, rss_kib());
	}
	free(held);
	free(data);
	zp_pool_destroy(pool);
	return 0;
}
