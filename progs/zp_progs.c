/*
 * zp_progs.c - the out-of-line part of zp_progs.h: the clock, sorting of
 * samples, the resident set, and the malloc provider.
 */
#include "zp_progs.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec t;
	if (clock_gettime(clk, &t) != 0)
		return 0;
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint64_t zpp_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t zpp_thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t zpp_process_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

long zpp_rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

double zpp_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void zpp_sort_doubles(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
}

/* ---- which library serves malloc ------------------------------------------ */

static char malloc_path[512];
static const char *malloc_base;
static const char *malloc_prov;
static pthread_once_t malloc_once = PTHREAD_ONCE_INIT;

/* Allocators recognised by a substring of their file name: every name any
 * program or script of this repository (bench/run_matrix.py's ALLOCATORS)
 * knows.  Checked before glibc, since a preloaded one shadows libc. */
static const char *const known_allocators[] = {"jemalloc", "mimalloc", "tcmalloc"};

static void detect_malloc(void)
{
	Dl_info di;
	void *f = dlsym(RTLD_DEFAULT, "malloc");
	const char *path = NULL;
	if (f != NULL && dladdr(f, &di) != 0 && di.dli_fname != NULL)
		path = di.dli_fname;
	snprintf(malloc_path, sizeof malloc_path, "%s", path != NULL ? path : "unknown");
	const char *slash = strrchr(malloc_path, '/');
	malloc_base = slash != NULL ? slash + 1 : malloc_path;
	malloc_prov = malloc_base;
	for (size_t i = 0; i < sizeof known_allocators / sizeof known_allocators[0]; i++)
		if (strstr(malloc_base, known_allocators[i]) != NULL) {
			malloc_prov = known_allocators[i];
			return;
		}
	/* libc.so.6 today; libc-2.x.so before glibc 2.34 */
	if (strncmp(malloc_base, "libc.so", 7) == 0 || strncmp(malloc_base, "libc-", 5) == 0)
		malloc_prov = "glibc";
}

const char *zpp_malloc_provider(void)
{
	pthread_once(&malloc_once, detect_malloc);
	return malloc_prov;
}

const char *zpp_malloc_file(void)
{
	pthread_once(&malloc_once, detect_malloc);
	return malloc_base;
}

const char *zpp_malloc_library(void)
{
	pthread_once(&malloc_once, detect_malloc);
	return malloc_path;
}
