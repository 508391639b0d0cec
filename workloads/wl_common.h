/*
 * wl_common.h - what the four workload drivers share: options, the
 * "pool or malloc" buffer abstraction, per-thread counters, timing,
 * progress and the human / JSON reports.
 *
 * The drivers are C ports of zeropool's profiling programs (see
 * docs/workloads.md).  Each one runs the same work against a zeropool
 * backend or against plain malloc/free, so that the library and the
 * allocators (glibc, or jemalloc/mimalloc/tcmalloc through LD_PRELOAD)
 * compare on identical call sequences.
 */
#ifndef WL_COMMON_H
#define WL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "zeropool.h"
#include "zp_progs.h"
#include "wl_files.h"

#define WL_EXIT_OK 0
#define WL_EXIT_FAIL 1  /* a get returned NULL, a put failed, counts disagree */
#define WL_EXIT_USAGE 2 /* bad option, bad value, unknown backend */

#define WL_MAX_PHASES 16
#define WL_MAX_EXTRAS 40

#define WL_KIB ((size_t)1024)
#define WL_MIB ((size_t)1024 * 1024)

/* --read-window (real-file mode): the default and the largest accepted. */
#define WL_READ_WINDOW_DEFAULT (4 * WL_MIB)
#define WL_READ_WINDOW_MAX ((size_t)1 << 30)

/* ---- keeping the work observable -------------------------------------- */

/*
 * GCC deletes a malloc/free pair whose pointer does not escape (see
 * docs/workloads.md), which would leave the malloc baseline measuring
 * nothing: wl_get passes a malloc'd pointer through zpp_clobber.  The
 * drivers' touches are volatile accesses, so the bytes cannot be dropped
 * either; lengths they "process" go through zpp_black_box.
 */

static inline void wl_write(unsigned char *data, size_t i, unsigned char v)
{
	((volatile unsigned char *)data)[i] = v;
}

static inline unsigned char wl_read(const unsigned char *data, size_t i)
{
	return ((const volatile unsigned char *)data)[i];
}

/* ---- program description and options ----------------------------------- */

typedef struct wl_prog {
	const char *name;         /* "network_server" */
	const char *summary;      /* one line for --help */
	const char *scaled;       /* which loops --scale multiplies, for --help */
	unsigned default_threads; /* 0: single-threaded, no --threads option */
	bool real_files;          /* has the real-file mode (--files, --read) */
	/* A driver's own options (NULL: none).  option() is offered each word
	 * that is none of the common options; it returns true when it took the
	 * word (and its value, with wl_option_value), false to let wl_init call
	 * it unknown.  options_help is printed in --help after the common ones. */
	bool (*option)(const struct wl_prog *prog, int argc, char **argv, int *i);
	const char *options_help;
} wl_prog;

typedef enum wl_api {
	WL_API_GET = 0, /* zp_get / zp_put */
	WL_API_CACHE,   /* zp_thread_cache once per thread, then zp_cache_get / zp_cache_put */
} wl_api;

typedef enum wl_config {
	WL_CONFIG_ZEROPOOL = 0, /* the original program's pool settings */
	WL_CONFIG_DEFAULTS,     /* zp_config_init's, only the backend chosen */
} wl_config;

typedef enum wl_read_mode {
	WL_READ_DIRECT = 0, /* O_DIRECT into page-aligned pooled buffers */
	WL_READ_BUFFERED,   /* plain reads through the page cache */
	WL_READ_URING,      /* O_DIRECT through io_uring (WL_HAVE_URING builds) */
} wl_read_mode;

typedef struct wl_opts {
	const char *backend; /* NULL: the library's default; "malloc": no pool */
	double scale;
	unsigned threads; /* 1 for single-threaded programs */
	bool json;
	bool quiet;
	wl_api api;
	wl_config config;
	const char *files;  /* --files DIR|auto: the real-file mode; NULL: simulated */
	wl_read_mode read;  /* --read, real-file mode only */
	size_t read_window; /* --read-window: bytes per read-ahead request */
} wl_opts;

typedef struct wl_phase {
	const char *name;
	double seconds;
	uint64_t gets;
	int64_t idle_buffers; /* the pool's shared store at the end; -1: malloc */
} wl_phase;

typedef struct wl_ctx {
	const wl_prog *prog;
	wl_opts opt;
	bool use_malloc;
	zp_pool *pool;              /* NULL in malloc mode */
	zp_config cfg;              /* what the pool was created with */
	long preallocated;          /* buffers zp_preallocate placed, all calls together */
	uint64_t gets, puts, bytes; /* summed over the threads that finished */
	uint64_t expected_gets;     /* from the scaled loop constants */
	uint64_t expected_bytes;    /* when known in advance; 0: not checked */
	double setup_s;             /* pool creation and warm-up */
	double wall_s;              /* the timed work, as the originals' "Total time" */
	wl_phase phases[WL_MAX_PHASES];
	unsigned nphases;
	struct {
		const char *key;
		uint64_t value;
	} extras[WL_MAX_EXTRAS]; /* program-specific JSON numbers */
	unsigned nextras;
	bool progress;          /* stderr is a terminal and not --quiet */
	struct wl_files *files; /* the real-file mode's state; NULL: simulated */
} wl_ctx;

/* ---- per-thread state -------------------------------------------------- */

/* One per worker thread, on its own cache line(s): the counters are written
 * on every get and put, and false sharing would cost more than the pool. */
typedef struct wl_thread {
	zp_pool *pool;   /* NULL in malloc mode */
	zp_cache *cache; /* with --api cache, this thread's handle */
	uint64_t gets, puts, bytes;
	uint64_t done; /* progress units; relaxed atomic stores, read by main */
	bool report;   /* single-threaded: print progress from this thread */
	unsigned tid;
	wl_ctx *ctx;
	void *arg; /* the driver's parameters */
} __attribute__((aligned(64))) wl_thread;

/* A buffer as the drivers see it, whichever allocator produced it. */
typedef struct wl_buf {
	unsigned char *data;
	size_t len;
	zp_buf *zb; /* NULL in malloc mode */
} wl_buf;

/* Failure paths: print and exit with WL_EXIT_FAIL, from any thread. */
void wl_fail_get(size_t len, const zp_buf *got) __attribute__((noreturn, cold));
void wl_fail_put(size_t len) __attribute__((noreturn, cold));
void wl_die(const char *fmt, ...) __attribute__((noreturn, cold, format(printf, 1, 2)));

/*
 * get(n): a buffer with len == n.  Pool mode checks what the library
 * returned (len exactly n, cap at least n) since the counts are only
 * meaningful for a correct pool; the check is one predictable branch.
 * Malloc mode asks for exactly n bytes.
 */
static inline wl_buf wl_get(wl_thread *t, size_t len)
{
	wl_buf b;
	if (t->pool != NULL) {
		zp_buf *z = t->cache != NULL ? zp_cache_get(t->cache, len) : zp_get(t->pool, len);
		if (ZP_UNLIKELY(z == NULL || z->len != len || z->cap < len))
			wl_fail_get(len, z);
		b.data = z->data;
		b.len = len;
		b.zb = z;
	} else {
		unsigned char *p = malloc(len);
		if (ZP_UNLIKELY(p == NULL))
			wl_fail_get(len, NULL);
		zpp_clobber(p);
		b.data = p;
		b.len = len;
		b.zb = NULL;
	}
	t->gets++;
	t->bytes += len;
	return b;
}

static inline void wl_put(wl_thread *t, wl_buf b)
{
	if (t->pool != NULL) {
		int rc = t->cache != NULL ? zp_cache_put(t->cache, b.zb) : zp_put(t->pool, b.zb);
		if (ZP_UNLIKELY(rc != 0))
			wl_fail_put(b.len);
	} else {
		free(b.data);
	}
	t->puts++;
}

/* ---- progress ------------------------------------------------------------ */

void wl_progress_poll(void);

/* Count `units` of work done.  Workers only store a number; the main thread
 * (or a single-threaded driver itself, t->report) prints at most 5 times a
 * second, and only when stderr is a terminal. */
static inline void wl_progress_tick(wl_thread *t, uint64_t units)
{
	zpp_add_relaxed(&t->done, units);
	if (t->report)
		wl_progress_poll();
}

/* ---- the driver's life cycle ------------------------------------------- */

/* For a driver's option(): the value of argv[*i] if it is "--name VALUE"
 * (advancing *i) or "--name=VALUE", NULL if it is another word; a usage
 * error when the value is missing. */
const char *wl_option_value(const wl_prog *prog, int argc, char **argv, int *i, const char *name);
/* The value of option opt: a decimal integer in lo..hi, else a usage error
 * (exit 2) that names opt and the range. */
uint64_t wl_parse_uint(const wl_prog *prog, const char *opt, const char *v, uint64_t lo,
		       uint64_t hi);
/* 0 when v is first, 1 when it is second, else a usage error (exit 2). */
int wl_parse_either(const wl_prog *prog, const char *opt, const char *v, const char *first,
		    const char *second);
/* Print "prog: message" and "Try --help" on stderr, exit WL_EXIT_USAGE. */
void wl_usage_error(const wl_prog *prog, const char *fmt, ...)
    __attribute__((noreturn, cold, format(printf, 2, 3)));

/* Parse the command line (exits 0 after --help, 2 on errors). */
void wl_init(wl_ctx *ctx, const wl_prog *prog, int argc, char **argv);

/* base * --scale, rounded to nearest, at least 1. */
uint64_t wl_scaled(const wl_ctx *ctx, uint64_t base);

/* zp_config_init() with the chosen backend; the driver then sets its
 * program's fields and calls wl_pool_open (which does nothing for malloc).
 * With --config defaults, wl_pool_open leaves the program's fields out: the
 * pool gets wl_config_init's configuration, what a user who sets nothing
 * but the backend gets. */
void wl_config_init(const wl_ctx *ctx, zp_config *cfg);
void wl_pool_open(wl_ctx *ctx, const zp_config *cfg);

/* zp_preallocate; a no-op in malloc mode (malloc has no equivalent). */
void wl_preallocate(wl_ctx *ctx, size_t count, size_t size);

/* Human output on stderr, unless --quiet. */
void wl_log(const wl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rust's {:.2?} for a Duration: "1.23s", "6.40ms", "930.12µs", "12.00ns". */
const char *wl_fmt_dur(double seconds, char *buf, size_t n);

/* User + system CPU time of this process (getrusage), in microseconds. */
uint64_t wl_cpu_us(void);
/* Peak resident set of this process in KiB: VmHWM of /proc/self/status, 0
 * where it cannot be read.  Not getrusage's ru_maxrss, which Linux carries
 * across execve, so that a driver started by a larger process (Python, in
 * the bench) would report its parent's. */
uint64_t wl_vm_hwm_kib(void);

/* The decimal digits of v at dst, without a terminator (at most 20);
 * returns how many.  No stdio, no locale: safe in a signal handler. */
size_t wl_put_decimal(char *dst, uint64_t v);

/* The pool's idle buffers in the shared store (the originals' pool.len()),
 * or -1 in malloc mode. */
int64_t wl_idle_buffers(wl_ctx *ctx);

/* Record a phase; its idle buffer count is read now. */
void wl_phase_add(wl_ctx *ctx, const char *name, double seconds, uint64_t gets);

/* A program-specific number for the JSON object (key must be a literal). */
void wl_extra(wl_ctx *ctx, const char *key, uint64_t value);

/* Single-threaded drivers: a wl_thread for the calling thread. */
void wl_thread_init(wl_ctx *ctx, wl_thread *t, unsigned tid, void *arg);
/* Add a finished thread's counters to the totals. */
void wl_thread_collect(wl_ctx *ctx, const wl_thread *t);

void wl_progress_begin(wl_ctx *ctx, const char *label, uint64_t total, wl_thread *threads,
		       unsigned n);
void wl_progress_end(void);

/*
 * Start n threads running fn(t) with t->tid = 0..n-1 and t->arg = arg, wait
 * for all of them, add their counters to the totals, and return the gets
 * they made.  `total` progress units are expected, for the progress line.
 */
uint64_t wl_run_threads(wl_ctx *ctx, unsigned n, void (*fn)(wl_thread *t), void *arg,
			const char *label, uint64_t total);

/* s as a JSON string, quoted and escaped, on stdout. */
void wl_json_string(const char *s);

/* Check the counts, print the JSON object, destroy the pool; returns the
 * exit status. */
int wl_finish(wl_ctx *ctx);

#endif /* WL_COMMON_H */
