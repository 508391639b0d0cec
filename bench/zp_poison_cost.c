/*
 * zp_poison_cost.c - what use-after-put poisoning (lib/zp_poison.h) adds to
 * a get+put pair in a debug-checks build: the pool poisons a buffer's data
 * when it goes idle and unpoisons it when it is handed out, so each pair
 * pays one _zp_poison and one _zp_unpoison of the buffer's capacity.
 *
 * Times those two macros, as the library expands them in this build, over
 * one buffer of each size, against the same loop without them (a write of
 * the first byte in both), interleaved 11 times; prints the medians of the
 * paired differences.  Outside ZP_DEBUG_CHECKS builds the macros are empty
 * and it says so.  analysis/findings_extra.sh builds it with
 * -fsanitize=address against a debug-checks configuration (docs/
 * findings.md, question 5).
 * Usage: zp_poison_cost [PAIRS]   (default 200,000 per size and run)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zp_poison.h"

#if ZP_DEBUG_CHECKS
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static __attribute__((noinline)) void loop_poison(unsigned char *b, size_t size, long n)
{
	for (long i = 0; i < n; i++) {
		_zp_unpoison(b, size); /* handed out */
		b[0] = (unsigned char)i;
		clobber(b);
		_zp_poison(b, size); /* put back */
	}
}

static __attribute__((noinline)) void loop_plain(unsigned char *b, long n)
{
	for (long i = 0; i < n; i++) {
		b[0] = (unsigned char)i;
		clobber(b);
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}
#endif

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: %s [PAIRS]\n"
		       "ns per get+put pair that poisoning adds, by buffer size (64 B to 1 MiB),\n"
		       "medians of 11 interleaved runs of PAIRS pairs (default 200000).\n",
		       argv[0]);
		return 0;
	}
	long n = argc > 1 ? atol(argv[1]) : 200000;
	if (n <= 0) {
		fprintf(stderr, "usage: %s [PAIRS]\n", argv[0]);
		return 2;
	}
#if !ZP_DEBUG_CHECKS
	printf("poisoning is compiled out of this build (ZP_DEBUG_CHECKS 0): it costs nothing\n");
#else
#if defined(__SANITIZE_ADDRESS__)
	const char *how = "AddressSanitizer";
#else
	const char *how = "valgrind client requests only (not under valgrind)";
#endif
	static const size_t sizes[] = {64, 4096, 65536, 1048576};
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		size_t size = sizes[s];
		unsigned char *b = aligned_alloc(4096, size < 4096 ? 4096 : size);
		if (b == NULL) {
			perror("aligned_alloc");
			return 1;
		}
		double d[11];
		for (int r = 0; r < 11; r++) {
			double t0 = now();
			loop_poison(b, size, n);
			double t1 = now();
			_zp_unpoison(b, size); /* outside the timing: the plain loop writes */
			double t1b = now();
			loop_plain(b, n);
			double t2 = now();
			d[r] = ((t1 - t0) - (t2 - t1b)) / (double)n * 1e9;
		}
		free(b);
		qsort(d, 11, sizeof d[0], cmp);
		printf("poisoning (%s) size %zu: %.2f ns/pair (median paired difference, "
		       "[%.2f-%.2f])\n",
		       how, size, d[5], d[0], d[10]);
	}
#endif
	return 0;
}
