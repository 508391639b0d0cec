/*
 * zp_hitpath.c - the cost of one cache-hit get+put pair, in nanoseconds and
 * in instructions, without any benchmark framework in the way.
 *
 * Paths (--path):
 *   get     zp_get + zp_put            (the header's macros: the cache hit
 *                                       inline, the rest a call)
 *   call    (zp_get) + (zp_put)        (the exported functions: a call into
 *                                       the library each, through the PLT
 *                                       when linked against the shared one)
 *   handle  zp_thread_cache once, then zp_cache_get + zp_cache_put (inline)
 *   malloc  malloc + free              (whichever library serves malloc)
 *   tls     push/pop of a thread-local array stack (the floor)
 *   empty   the loop alone: what the other numbers include besides the pair
 *
 * Each pair is:  b = get(opaque(len)); <b escapes, memory clobber>; put(b).
 * The length goes through an empty asm every iteration so that the size
 * class is computed every time, and the clobber stands for the caller's use
 * of the buffer, so nothing is kept in registers across it.
 *
 * Timing (default): per backend and path, --reps repetitions of --iters
 * pairs; prints the median, min and max ns per pair.
 *
 * Counting (--count): runs exactly --iters pairs of one path inside the
 * function zph_loop_<path>, after an untimed warm-up outside it, so that
 *
 *   valgrind --tool=callgrind --toggle-collect=zph_loop_get \
 *            ./zp_hitpath --count --path get --iters 1000000
 *
 * collects only the loop: Ir / iters is instructions per pair (loop
 * overhead included; --path empty measures that overhead).
 *
 * --depth 0 makes every get and put go to the backend (no thread cache),
 * which is where the backends differ.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"
#include "zp_progs.h"

#ifndef ZPH_LINK
#define ZPH_LINK "shared"
#endif

static void die(const char *what) __attribute__((noreturn, cold));
static void die(const char *what)
{
	fprintf(stderr, "zp_hitpath: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- the loops (noinline: callgrind toggles on their names) --------------- */

__attribute__((noinline)) void zph_loop_get(zp_pool *p, size_t len, uint64_t n);
__attribute__((noinline)) void zph_loop_call(zp_pool *p, size_t len, uint64_t n);
__attribute__((noinline)) void zph_loop_handle(zp_cache *c, size_t len, uint64_t n);
__attribute__((noinline)) void zph_loop_malloc(size_t len, uint64_t n);
__attribute__((noinline)) void zph_loop_tls(size_t len, uint64_t n);
__attribute__((noinline)) void zph_loop_empty(size_t len, uint64_t n);

void zph_loop_get(zp_pool *p, size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		zp_buf *b = zp_get(p, zpp_opaque(len));
		if (ZP_UNLIKELY(b == NULL))
			die("zp_get");
		zpp_clobber(b);
		if (ZP_UNLIKELY(zp_put(p, b) != 0))
			die("zp_put");
	}
}

void zph_loop_call(zp_pool *p, size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		zp_buf *b = (zp_get)(p, zpp_opaque(len));
		if (ZP_UNLIKELY(b == NULL))
			die("zp_get");
		zpp_clobber(b);
		if (ZP_UNLIKELY((zp_put)(p, b) != 0))
			die("zp_put");
	}
}

void zph_loop_handle(zp_cache *c, size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		zp_buf *b = zp_cache_get(c, zpp_opaque(len));
		if (ZP_UNLIKELY(b == NULL))
			die("zp_cache_get");
		zpp_clobber(b);
		if (ZP_UNLIKELY(zp_cache_put(c, b) != 0))
			die("zp_cache_put");
	}
}

void zph_loop_malloc(size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		void *b = malloc(zpp_opaque(len));
		if (ZP_UNLIKELY(b == NULL))
			die("malloc");
		zpp_clobber(b);
		free(b);
	}
}

static __thread void *stk[64];
static __thread unsigned top;

void zph_loop_tls(size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		(void)zpp_opaque(len);
		void *b = stk[--top];
		zpp_clobber(b);
		stk[top++] = b;
	}
}

void zph_loop_empty(size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		(void)zpp_opaque(len);
		zpp_clobber(NULL);
	}
}

/* ---- driver ------------------------------------------------------------- */

enum path { P_GET, P_CALL, P_HANDLE, P_MALLOC, P_TLS, P_EMPTY, P_N };
static const char *const path_names[P_N] = {"get", "call", "handle", "malloc", "tls", "empty"};
static const int path_uses_pool[P_N] = {1, 1, 1, 0, 0, 0};

struct run {
	zp_pool *pool;
	zp_cache *cache;
	size_t len;
};

static void run_path(enum path p, const struct run *r, uint64_t n)
{
	switch (p) {
	case P_GET:
		zph_loop_get(r->pool, r->len, n);
		break;
	case P_CALL:
		zph_loop_call(r->pool, r->len, n);
		break;
	case P_HANDLE:
		zph_loop_handle(r->cache, r->len, n);
		break;
	case P_MALLOC:
		zph_loop_malloc(r->len, n);
		break;
	case P_TLS:
		zph_loop_tls(r->len, n);
		break;
	default:
		zph_loop_empty(r->len, n);
		break;
	}
}

/* Untimed warm-up that does not go through the loop functions (so that
 * callgrind's toggle does not count it): attach the cache, fill the class. */
static void warm(enum path p, struct run *r)
{
	if (path_uses_pool[p]) {
		zp_buf *b = zp_get(r->pool, r->len);
		if (b == NULL)
			die("zp_get");
		if (zp_put(r->pool, b) != 0)
			die("zp_put");
		if (p == P_HANDLE) {
			r->cache = zp_thread_cache(r->pool);
			if (r->cache == NULL)
				die("zp_thread_cache");
			b = zp_cache_get(r->cache, r->len);
			if (b == NULL || zp_cache_put(r->cache, b) != 0)
				die("zp_cache_get/put");
		}
	} else if (p == P_TLS && top == 0) {
		void *b = malloc(r->len);
		if (b == NULL)
			die("malloc");
		stk[top++] = b;
	} else if (p == P_MALLOC) {
		void *b = malloc(r->len);
		zpp_clobber(b);
		free(b);
	}
}

struct opts {
	size_t size;
	long depth;
	uint64_t iters;
	unsigned reps;
	int count, json;
};

static void print_result(const struct opts *o, const char *bname, enum path p, unsigned depth,
			 const double *ns)
{
	const char *pn = path_names[p];
	unsigned long long iters = (unsigned long long)o->iters;
	if (o->count) {
		if (o->json)
			printf(
			    "{\"mode\":\"count\",\"backend\":\"%s\",\"path\":\"%s\",\"size\":%zu,",
			    bname, pn, o->size);
		else
			printf("count backend=%s path=%s size=%zu ", bname, pn, o->size);
		if (o->json)
			printf("\"depth\":%u,\"link\":\"%s\",\"iters\":%llu,\"function\":\"zph_"
			       "loop_%s\",",
			       depth, ZPH_LINK, iters, pn);
		else
			printf("depth=%u link=%s iters=%llu function=zph_loop_%s\n", depth,
			       ZPH_LINK, iters, pn);
		if (o->json)
			printf("\"allocator\":\"%s\"}\n", zpp_malloc_provider());
		return;
	}
	double sorted[1000];
	unsigned r = o->reps;
	memcpy(sorted, ns, r * sizeof *ns);
	zpp_sort_doubles(sorted, r);
	double med = r % 2 ? sorted[r / 2] : (sorted[r / 2 - 1] + sorted[r / 2]) / 2;
	if (!o->json) {
		printf("backend=%-14s path=%-6s size=%zu depth=%u link=%s  ", bname, pn, o->size,
		       depth, ZPH_LINK);
		printf("median %.2f ns/pair  (min %.2f, max %.2f, %u x %llu)\n", med, sorted[0],
		       sorted[r - 1], r, iters);
		return;
	}
	printf("{\"mode\":\"time\",\"backend\":\"%s\",\"path\":\"%s\",\"size\":%zu,", bname, pn,
	       o->size);
	printf("\"depth\":%u,\"link\":\"%s\",\"iters\":%llu,\"reps\":%u,", depth, ZPH_LINK, iters,
	       r);
	printf("\"allocator\":\"%s\",\"median_ns\":%.4f,\"min_ns\":%.4f,\"max_ns\":%.4f,\"ns\":[",
	       zpp_malloc_provider(), med, sorted[0], sorted[r - 1]);
	for (unsigned k = 0; k < r; k++)
		printf("%s%.4f", k ? "," : "", ns[k]);
	printf("]}\n");
}

/* One backend (NULL for the paths without a pool) and path: create, warm,
 * then count or time, and report. */
static void run_one(const struct opts *o, const char *be, enum path p, double *ns)
{
	struct run r = {NULL, NULL, o->size};
	unsigned d = 0;
	if (be != NULL) {
		zp_config cfg;
		zp_config_init(&cfg);
		cfg.backend = be;
		if (o->depth >= 0) {
			cfg.cache_depth = (unsigned)o->depth;
			cfg.batch = 0;
		}
		d = cfg.cache_depth;
		r.pool = zp_pool_create(&cfg);
		if (r.pool == NULL)
			die("zp_pool_create");
	}
	warm(p, &r);
	if (o->count) {
		run_path(p, &r, o->iters);
	} else {
		for (unsigned k = 0; k < o->reps; k++) {
			uint64_t t0 = zpp_now_ns();
			run_path(p, &r, o->iters);
			ns[k] = (double)(zpp_now_ns() - t0) / (double)o->iters;
		}
	}
	print_result(o, be ? be : "-", p, d, ns);
	fflush(stdout);
	zp_pool_destroy(r.pool);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zp_hitpath [options]\n"
		"  --backend NAME   a registered backend, or all (default all)\n"
		"  --path P         get, call, handle, malloc, tls, empty or all (default all)\n"
		"  --size N         bytes per get (default 64)\n"
		"  --depth D        thread-cache depth (default: the library's; 0 = backend path)\n"
		"  --iters N        pairs per repetition (default 2000000)\n"
		"  --reps R         repetitions; the median is reported (default 11)\n"
		"  --count          run --iters pairs of one path once, for callgrind\n"
		"  --cpu N          pin to CPU N\n"
		"  --json           one JSON object per line instead of text\n"
		"  --list           print the registered backends and exit\n");
}

int main(int argc, char **argv)
{
	const char *backend = "all", *pathsel = "all";
	size_t size = 64;
	long depth = -1;
	uint64_t iters = 2000000;
	unsigned reps = 11;
	int count = 0, json = 0, cpu = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v != NULL && ++i)
		if (ARG("--backend"))
			backend = v;
		else if (ARG("--path"))
			pathsel = v;
		else if (ARG("--size"))
			size = strtoull(v, NULL, 0);
		else if (ARG("--depth"))
			depth = strtol(v, NULL, 0);
		else if (ARG("--iters"))
			iters = strtoull(v, NULL, 0);
		else if (ARG("--reps"))
			reps = (unsigned)strtoul(v, NULL, 0);
		else if (ARG("--cpu"))
			cpu = atoi(v);
		else if (strcmp(a, "--count") == 0)
			count = 1;
		else if (strcmp(a, "--json") == 0)
			json = 1;
		else if (strcmp(a, "--list") == 0) {
			for (size_t k = 0; k < zp_backend_count(); k++)
				printf("%s\n", zp_backend_at(k));
			return 0;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
#undef ARG
	}
	if (iters == 0 || reps == 0 || reps > 1000) {
		usage(stderr);
		return 2;
	}
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) != 0)
			die("sched_setaffinity");
	}
	int want[P_N] = {0};
	int any = 0;
	for (int p = 0; p < P_N; p++)
		any |= want[p] = strcmp(pathsel, "all") == 0 || strcmp(pathsel, path_names[p]) == 0;
	if (!any || (count && strcmp(pathsel, "all") == 0)) {
		fprintf(stderr, "zp_hitpath: --path must name one path%s\n",
			count ? " with --count" : "");
		return 2;
	}

	double *ns = calloc(reps, sizeof *ns);
	if (ns == NULL)
		die("calloc");
	struct opts o = {size, depth, iters, reps, count, json};
	/* Pool paths once per backend; the others once. */
	size_t nb = zp_backend_count();
	for (size_t bi = 0; bi <= nb; bi++) {
		const char *be = bi < nb ? zp_backend_at(bi) : NULL;
		if (be != NULL && strcmp(backend, "all") != 0 && strcmp(backend, be) != 0)
			continue;
		for (int p = 0; p < P_N; p++)
			if (want[p] && (be != NULL) == (path_uses_pool[p] != 0))
				run_one(&o, be, (enum path)p, ns);
	}
	free(ns);
	return 0;
}
