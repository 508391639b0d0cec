/*
 * wl_common.c - options, threads, progress and reports for the workload
 * drivers.  Nothing here is on the get/put path except through the inline
 * functions of wl_common.h.
 */
#include "wl_common.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WL_MAX_THREADS 1024u
#define WL_MAX_SCALE 1000.0
#define WL_PROGRESS_PERIOD 0.2 /* seconds between progress redraws */

typedef struct zp_stats wl_stats;

/* ---- failures ------------------------------------------------------------ */

/*
 * _exit, not exit: other threads may still be inside the pool, and exit()
 * would run the library's destructors under them.  stderr is unbuffered and
 * nothing is pending on stdout (the JSON object is written at the very end).
 */
void wl_die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nerror: %s\n", msg);
	wl_files_cleanup();
	_exit(WL_EXIT_FAIL);
}

void wl_fail_get(size_t len, const zp_buf *got)
{
	if (got == NULL)
		wl_die("get(%zu) failed: %s", len, strerror(errno));
	wl_die("get(%zu) returned a buffer with len %zu, cap %zu", len, got->len, got->cap);
}

void wl_fail_put(size_t len)
{
	wl_die("put of a buffer of len %zu failed: %s", len, strerror(errno));
}

void wl_usage_error(const wl_prog *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", prog->name);
	exit(WL_EXIT_USAGE);
}

/* ---- resources ----------------------------------------------------------- */

uint64_t wl_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

uint64_t wl_vm_hwm_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kib = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- numbers ------------------------------------------------------------- */

size_t wl_put_decimal(char *dst, uint64_t v)
{
	char digits[20];
	size_t n = 0, k = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		dst[k++] = digits[--n];
	return k;
}

/* ---- time ---------------------------------------------------------------- */

const char *wl_fmt_dur(double s, char *buf, size_t n)
{
	if (s >= 1.0)
		snprintf(buf, n, "%.2fs", s);
	else if (s >= 1e-3)
		snprintf(buf, n, "%.2fms", s * 1e3);
	else if (s >= 1e-6)
		snprintf(buf, n, "%.2f\xc2\xb5s", s * 1e6);
	else
		snprintf(buf, n, "%.2fns", s * 1e9);
	return buf;
}

/* ---- options ------------------------------------------------------------- */

static void print_backends(FILE *f)
{
	for (size_t i = 0; i < zp_backend_count(); i++)
		fprintf(f, "%s, ", zp_backend_at(i));
	fprintf(f, "malloc");
}

static void print_usage(const wl_prog *prog)
{
	printf("Usage: %s [options]\n%s\n\nOptions:\n", prog->name, prog->summary);
	printf(
	    "  --backend NAME   a zeropool backend or \"malloc\" (plain malloc/free, same work);\n"
	    "                   one of: ");
	print_backends(stdout);
	printf("\n                   default: the library's (ZP_BACKEND, else %s)\n",
	       zp_default_backend());
	printf("  --scale F        multiply loop counts by F, rounded, at least 1 (default 1):\n"
	       "                   %s\n",
	       prog->scaled);
	if (prog->default_threads != 0)
		printf("  --threads N      worker threads, 1..%u (default %u)\n", WL_MAX_THREADS,
		       prog->default_threads);
	if (prog->real_files)
		printf(
		    "  --files DIR|auto real files: write the input files into a new temporary\n"
		    "                   directory under DIR (auto: $TMPDIR, else /var/tmp), read\n"
		    "                   them, remove them; default: simulated reads\n"
		    "  --read direct|buffered|uring\n"
		    "                   with --files: O_DIRECT reads into page-aligned pooled\n"
		    "                   buffers (direct, the default; the pool is the library's\n"
		    "                   default backend), or plain reads (buffered; default\n"
		    "                   backend malloc), or O_DIRECT reads into pooled buffers\n"
		    "                   submitted through io_uring (uring; builds with\n"
		    "                   liburing only); --scale also shrinks the files\n"
		    "  --read-window BYTES\n"
		    "                   with --files: read up to this many bytes of consecutive\n"
		    "                   chunks or tensors with one request into as many buffers\n"
		    "                   (1..16 of them), in every read mode (default 4M; 0: one\n"
		    "                   read per buffer); K and M suffixes: KiB, MiB\n");
	if (prog->options_help != NULL)
		fputs(prog->options_help, stdout);
	printf("  --api get|cache  pool entry points: zp_get/zp_put (default), or a per-thread\n"
	       "                   zp_thread_cache handle with zp_cache_get/zp_cache_put\n"
	       "  --config zeropool|defaults\n"
	       "                   the pool's settings: the original program's (zeropool,\n"
	       "                   the default), or zp_config_init's with only the backend\n"
	       "                   set (defaults)\n"
	       "  --json           print one JSON object with the results on stdout\n"
	       "  --quiet          no human output on stderr\n"
	       "  --help           print this help and exit\n\n"
	       "Exit status: 0 success; 1 a get or put failed or the counts disagree;\n"
	       "2 bad usage or unknown backend.  See docs/workloads.md.\n");
}

static bool backend_known(const char *name)
{
	if (strcmp(name, "malloc") == 0)
		return true;
	for (size_t i = 0; i < zp_backend_count(); i++)
		if (strcmp(name, zp_backend_at(i)) == 0)
			return true;
	return false;
}

static double parse_scale(const wl_prog *prog, const char *v)
{
	char *end;
	double f;

	errno = 0;
	f = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !isfinite(f) || f <= 0.0 || f > WL_MAX_SCALE)
		wl_usage_error(prog, "--scale wants a number in (0, %g], not '%s'", WL_MAX_SCALE,
			       v);
	return f;
}

uint64_t wl_parse_uint(const wl_prog *prog, const char *opt, const char *v, uint64_t lo,
		       uint64_t hi)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n < lo || n > hi)
		wl_usage_error(prog, "%s wants an integer in %llu..%llu, not '%s'", opt,
			       (unsigned long long)lo, (unsigned long long)hi, v);
	return n;
}

/* 0 when v is `first`, 1 when it is `second`; a usage error otherwise. */
int wl_parse_either(const wl_prog *prog, const char *opt, const char *v, const char *first,
		    const char *second)
{
	if (strcmp(v, first) == 0)
		return 0;
	if (strcmp(v, second) == 0)
		return 1;
	wl_usage_error(prog, "%s wants '%s' or '%s', not '%s'", opt, first, second, v);
}

/* BYTES: a decimal integer, optionally with K or M (KiB, MiB). */
static size_t parse_window(const wl_prog *prog, const char *v)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno == 0 && end != v && v[0] != '-' && v[0] != '+') {
		if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) {
			n = n <= WL_READ_WINDOW_MAX / WL_KIB ? n * WL_KIB : WL_READ_WINDOW_MAX + 1;
			end += strlen(end);
		} else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) {
			n = n <= WL_READ_WINDOW_MAX / WL_MIB ? n * WL_MIB : WL_READ_WINDOW_MAX + 1;
			end += strlen(end);
		}
	}
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || v[0] == '+' ||
	    n > WL_READ_WINDOW_MAX)
		wl_usage_error(prog,
			       "--read-window wants a byte count in 0..%zu (K and M suffixes: "
			       "KiB, MiB), not '%s'",
			       WL_READ_WINDOW_MAX, v);
	return (size_t)n;
}

static wl_read_mode parse_read(const wl_prog *prog, const char *v)
{
	if (strcmp(v, "direct") == 0)
		return WL_READ_DIRECT;
	if (strcmp(v, "buffered") == 0)
		return WL_READ_BUFFERED;
	if (strcmp(v, "uring") == 0) {
#ifdef WL_HAVE_URING
		return WL_READ_URING;
#else
		wl_usage_error(prog, "--read uring: this build has no io_uring support "
				     "(liburing-dev was not found when it was configured)");
#endif
	}
	wl_usage_error(prog, "--read wants 'direct', 'buffered' or 'uring', not '%s'", v);
}

/*
 * Match argv[*i] against "--name" (value in the next word) or "--name=value".
 * Returns the value, or NULL if the word is another option.
 */
const char *wl_option_value(const wl_prog *prog, int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		wl_usage_error(prog, "%s needs a value", name);
	return argv[++*i];
}

/* --files and --read: checked together, and the real-file mode's default
 * backend: the pool for O_DIRECT, malloc for buffered reads. */
static void check_files_opts(wl_ctx *ctx, bool read_given, bool window_given)
{
	const wl_prog *prog = ctx->prog;
	const char *f = ctx->opt.files;
	struct stat st;

	if (f == NULL) {
		if (read_given)
			wl_usage_error(prog, "--read needs --files");
		if (window_given)
			wl_usage_error(prog, "--read-window needs --files");
		return;
	}
	if (f[0] == '\0')
		wl_usage_error(prog, "--files wants a directory or 'auto', not ''");
	if (strcmp(f, "auto") != 0 && (stat(f, &st) != 0 || !S_ISDIR(st.st_mode)))
		wl_usage_error(prog, "--files: '%s' is not a directory", f);
	if (!read_given && ctx->opt.backend != NULL && strcmp(ctx->opt.backend, "malloc") == 0)
		ctx->opt.read = WL_READ_BUFFERED;
	if (ctx->opt.backend == NULL && ctx->opt.read == WL_READ_BUFFERED)
		ctx->opt.backend = "malloc";
	if (ctx->opt.read != WL_READ_BUFFERED && ctx->opt.backend != NULL &&
	    strcmp(ctx->opt.backend, "malloc") == 0)
		wl_usage_error(prog,
			       "--read %s needs page-aligned pooled buffers; --backend "
			       "malloc has none (use --read buffered)",
			       ctx->opt.read == WL_READ_URING ? "uring" : "direct");
}

void wl_init(wl_ctx *ctx, const wl_prog *prog, int argc, char **argv)
{
	const char *v;
	bool read_given = false, window_given = false;

	memset(ctx, 0, sizeof(*ctx));
	ctx->prog = prog;
	ctx->opt.scale = 1.0;
	ctx->opt.threads = prog->default_threads != 0 ? prog->default_threads : 1;
	ctx->opt.api = WL_API_GET;
	ctx->opt.read_window = WL_READ_WINDOW_DEFAULT;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_usage(prog);
			exit(WL_EXIT_OK);
		} else if (strcmp(a, "--json") == 0) {
			ctx->opt.json = true;
		} else if (strcmp(a, "--quiet") == 0) {
			ctx->opt.quiet = true;
		} else if ((v = wl_option_value(prog, argc, argv, &i, "--backend")) != NULL) {
			ctx->opt.backend = v;
		} else if ((v = wl_option_value(prog, argc, argv, &i, "--scale")) != NULL) {
			ctx->opt.scale = parse_scale(prog, v);
		} else if (prog->default_threads != 0 &&
			   (v = wl_option_value(prog, argc, argv, &i, "--threads")) != NULL) {
			ctx->opt.threads =
			    (unsigned)wl_parse_uint(prog, "--threads", v, 1, WL_MAX_THREADS);
		} else if ((v = wl_option_value(prog, argc, argv, &i, "--api")) != NULL) {
			ctx->opt.api = wl_parse_either(prog, "--api", v, "get", "cache") == 0
					   ? WL_API_GET
					   : WL_API_CACHE;
		} else if ((v = wl_option_value(prog, argc, argv, &i, "--config")) != NULL) {
			ctx->opt.config =
			    wl_parse_either(prog, "--config", v, "zeropool", "defaults") == 0
				? WL_CONFIG_ZEROPOOL
				: WL_CONFIG_DEFAULTS;
		} else if (prog->real_files &&
			   (v = wl_option_value(prog, argc, argv, &i, "--files")) != NULL) {
			ctx->opt.files = v;
		} else if (prog->real_files &&
			   (v = wl_option_value(prog, argc, argv, &i, "--read")) != NULL) {
			ctx->opt.read = parse_read(prog, v);
			read_given = true;
		} else if (prog->real_files &&
			   (v = wl_option_value(prog, argc, argv, &i, "--read-window")) != NULL) {
			ctx->opt.read_window = parse_window(prog, v);
			window_given = true;
		} else if (prog->option != NULL && prog->option(prog, argc, argv, &i)) {
			continue;
		} else if (strcmp(a, "--threads") == 0 || strncmp(a, "--threads=", 10) == 0) {
			wl_usage_error(prog,
				       "this program is single-threaded; it has no --threads");
		} else {
			wl_usage_error(prog, "unknown option '%s'", a);
		}
	}

	check_files_opts(ctx, read_given, window_given);
	if (ctx->opt.backend != NULL && !backend_known(ctx->opt.backend)) {
		fprintf(stderr, "%s: unknown backend '%s'; available: ", prog->name,
			ctx->opt.backend);
		print_backends(stderr);
		fprintf(stderr, "\n");
		exit(WL_EXIT_USAGE);
	}
	ctx->use_malloc = ctx->opt.backend != NULL && strcmp(ctx->opt.backend, "malloc") == 0;
	ctx->progress = !ctx->opt.quiet && isatty(STDERR_FILENO);
}

uint64_t wl_scaled(const wl_ctx *ctx, uint64_t base)
{
	double v = floor((double)base * ctx->opt.scale + 0.5);

	return v < 1.0 ? 1 : (uint64_t)v;
}

/* ---- human output and progress ----------------------------------------- */

static struct {
	bool active;
	bool shown; /* a progress line is on the screen */
	const char *label;
	uint64_t total;
	wl_thread *threads;
	unsigned n;
	double next;
} g_progress;

static void progress_clear(void)
{
	if (g_progress.shown) {
		fputs("\r\033[K", stderr);
		g_progress.shown = false;
	}
}

void wl_log(const wl_ctx *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (ctx->opt.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	progress_clear();
	/* One call per line, so that lines from worker threads stay whole. */
	fputs(line, stderr);
}

void wl_progress_begin(wl_ctx *ctx, const char *label, uint64_t total, wl_thread *threads,
		       unsigned n)
{
	if (!ctx->progress)
		return;
	g_progress.active = true;
	g_progress.shown = false;
	g_progress.label = label;
	g_progress.total = total != 0 ? total : 1;
	g_progress.threads = threads;
	g_progress.n = n;
	g_progress.next = zpp_now() + WL_PROGRESS_PERIOD;
}

void wl_progress_poll(void)
{
	uint64_t done = 0;
	double now;

	if (!g_progress.active)
		return;
	now = zpp_now();
	if (now < g_progress.next)
		return;
	g_progress.next = now + WL_PROGRESS_PERIOD;
	for (unsigned i = 0; i < g_progress.n; i++)
		done += zpp_load_relaxed(&g_progress.threads[i].done);
	fprintf(stderr, "\r\033[K[%s] %5.1f%% (%llu/%llu)", g_progress.label,
		100.0 * (double)done / (double)g_progress.total, (unsigned long long)done,
		(unsigned long long)g_progress.total);
	g_progress.shown = true;
}

void wl_progress_end(void)
{
	progress_clear();
	g_progress.active = false;
}

/* ---- the pool ------------------------------------------------------------ */

void wl_config_init(const wl_ctx *ctx, zp_config *cfg)
{
	zp_config_init(cfg);
	cfg->backend = ctx->use_malloc ? NULL : ctx->opt.backend;
}

void wl_pool_open(wl_ctx *ctx, const zp_config *cfg)
{
	if (ctx->opt.config == WL_CONFIG_DEFAULTS)
		wl_config_init(ctx, &ctx->cfg);
	else
		ctx->cfg = *cfg;
	if (ctx->use_malloc)
		return;
	ctx->pool = zp_pool_create(&ctx->cfg);
	if (ctx->pool == NULL) {
		if (errno == ENOENT) {
			fprintf(stderr, "%s: unknown backend '%s'\n", ctx->prog->name,
				ctx->cfg.backend != NULL ? ctx->cfg.backend : "(ZP_BACKEND)");
			exit(WL_EXIT_USAGE);
		}
		wl_die("zp_pool_create failed: %s", strerror(errno));
	}
}

void wl_preallocate(wl_ctx *ctx, size_t count, size_t size)
{
	long placed;

	if (ctx->pool == NULL)
		return;
	placed = zp_preallocate(ctx->pool, count, size);
	if (placed < 0)
		wl_die("zp_preallocate(%zu, %zu) failed: %s", count, size, strerror(errno));
	ctx->preallocated += placed;
}

/* The one place that reads the pool's statistics. */
static void pool_stats(wl_ctx *ctx, wl_stats *st)
{
	if (zp_stats(ctx->pool, st) != 0)
		wl_die("zp_stats failed: %s", strerror(errno));
}

int64_t wl_idle_buffers(wl_ctx *ctx)
{
	wl_stats st;

	if (ctx->pool == NULL)
		return -1;
	pool_stats(ctx, &st);
	return (int64_t)st.idle_buffers;
}

void wl_phase_add(wl_ctx *ctx, const char *name, double seconds, uint64_t gets)
{
	wl_phase *p;

	if (ctx->nphases == WL_MAX_PHASES)
		wl_die("too many phases");
	p = &ctx->phases[ctx->nphases++];
	p->name = name;
	p->seconds = seconds;
	p->gets = gets;
	p->idle_buffers = wl_idle_buffers(ctx);
}

void wl_extra(wl_ctx *ctx, const char *key, uint64_t value)
{
	if (ctx->nextras == WL_MAX_EXTRAS)
		wl_die("too many extra fields");
	ctx->extras[ctx->nextras].key = key;
	ctx->extras[ctx->nextras].value = value;
	ctx->nextras++;
}

/* ---- threads ------------------------------------------------------------- */

static void thread_setup(wl_ctx *ctx, wl_thread *t, unsigned tid, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->pool = ctx->pool;
	t->tid = tid;
	t->ctx = ctx;
	t->arg = arg;
}

/* The cache handle belongs to the thread that asks for it. */
static void thread_attach(wl_thread *t)
{
	if (t->pool == NULL || t->ctx->opt.api != WL_API_CACHE)
		return;
	t->cache = zp_thread_cache(t->pool);
	if (t->cache == NULL)
		wl_die("zp_thread_cache failed: %s", strerror(errno));
}

void wl_thread_init(wl_ctx *ctx, wl_thread *t, unsigned tid, void *arg)
{
	thread_setup(ctx, t, tid, arg);
	thread_attach(t);
}

void wl_thread_collect(wl_ctx *ctx, const wl_thread *t)
{
	ctx->gets += t->gets;
	ctx->puts += t->puts;
	ctx->bytes += t->bytes;
}

/* One wl_run_threads at a time (the drivers run phases one after another). */
static struct {
	void (*fn)(wl_thread *t);
	bool signal; /* post g_run.sem when a worker ends (progress mode) */
	sem_t sem;
} g_run;

static void *thread_main(void *p)
{
	wl_thread *t = p;

	thread_attach(t);
	g_run.fn(t);
	if (g_run.signal)
		sem_post(&g_run.sem);
	return NULL;
}

/* Wait for n workers, redrawing the progress line; sem_timedwait returns as
 * soon as a worker ends, so the phase's time is not rounded up. */
static void wait_with_progress(unsigned n)
{
	unsigned ended = 0;

	while (ended < n) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(WL_PROGRESS_PERIOD * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (sem_timedwait(&g_run.sem, &ts) == 0)
			ended++;
		else if (errno != ETIMEDOUT && errno != EINTR)
			wl_die("sem_timedwait: %s", strerror(errno));
		wl_progress_poll();
	}
}

uint64_t wl_run_threads(wl_ctx *ctx, unsigned n, void (*fn)(wl_thread *t), void *arg,
			const char *label, uint64_t total)
{
	wl_thread *ts = aligned_alloc(64, n * sizeof(*ts));
	pthread_t *ids = calloc(n, sizeof(*ids));
	uint64_t gets = 0;

	if (ts == NULL || ids == NULL)
		wl_die("out of memory for %u threads", n);
	g_run.fn = fn;
	g_run.signal = ctx->progress;
	if (g_run.signal && sem_init(&g_run.sem, 0, 0) != 0)
		wl_die("sem_init: %s", strerror(errno));
	wl_progress_begin(ctx, label, total, ts, n);

	for (unsigned i = 0; i < n; i++)
		thread_setup(ctx, &ts[i], i, arg);
	for (unsigned i = 0; i < n; i++) {
		int rc = pthread_create(&ids[i], NULL, thread_main, &ts[i]);
		if (rc != 0)
			wl_die("pthread_create: %s", strerror(rc));
	}
	if (g_run.signal)
		wait_with_progress(n);
	for (unsigned i = 0; i < n; i++) {
		int rc = pthread_join(ids[i], NULL);
		if (rc != 0)
			wl_die("pthread_join: %s", strerror(rc));
	}

	wl_progress_end();
	if (g_run.signal)
		sem_destroy(&g_run.sem);
	for (unsigned i = 0; i < n; i++) {
		wl_thread_collect(ctx, &ts[i]);
		gets += ts[i].gets;
	}
	free(ids);
	free(ts);
	return gets;
}

/* ---- the report ---------------------------------------------------------- */

static const char *config_label(const wl_ctx *ctx)
{
	return ctx->opt.config == WL_CONFIG_DEFAULTS ? "defaults" : "zeropool";
}

static const char *backend_label(const wl_ctx *ctx)
{
	if (ctx->use_malloc)
		return "malloc";
	return ctx->pool != NULL ? zp_backend_name(ctx->pool) : "?";
}

void wl_json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_u64(const char *key, uint64_t v, bool comma)
{
	printf("\"%s\": %llu%s", key, (unsigned long long)v, comma ? ", " : "");
}

/*
 * The report walks struct zp_stats through the X-macros of zeropool.h, so
 * the lists must be the struct: each listed field of the listed type at the
 * offset its position gives, and nothing but padding after the last.  A
 * field added to the struct and not to a list fails here.
 */
#define STATS_U64_INDEX(f) STATS_U64_##f,
#define STATS_UNSIGNED_INDEX(f) STATS_UNSIGNED_##f,
enum { ZP_STATS_U64_FIELDS(STATS_U64_INDEX) STATS_N_U64 };
enum { ZP_STATS_UNSIGNED_FIELDS(STATS_UNSIGNED_INDEX) STATS_N_UNSIGNED };
#define STATS_U64_CHECK(f)                                                                         \
	_Static_assert(_Generic(((wl_stats *)0)->f, uint64_t : 1, default : 0) &&                  \
			   offsetof(wl_stats, f) == STATS_U64_##f * sizeof(uint64_t),              \
		       "ZP_STATS_U64_FIELDS: " #f " is not the struct's field at this place");
#define STATS_UNSIGNED_CHECK(f)                                                                    \
	_Static_assert(_Generic(((wl_stats *)0)->f, unsigned : 1, default : 0) &&                  \
			   offsetof(wl_stats, f) == STATS_N_U64 * sizeof(uint64_t) +               \
							STATS_UNSIGNED_##f * sizeof(unsigned),     \
		       "ZP_STATS_UNSIGNED_FIELDS: " #f                                             \
		       " is not the struct's field at this place");
ZP_STATS_U64_FIELDS(STATS_U64_CHECK)
ZP_STATS_UNSIGNED_FIELDS(STATS_UNSIGNED_CHECK)
_Static_assert(sizeof(wl_stats) -
		       (STATS_N_U64 * sizeof(uint64_t) + STATS_N_UNSIGNED * sizeof(unsigned)) <
		   _Alignof(wl_stats),
	       "struct zp_stats has fields that ZP_STATS_*_FIELDS do not list");

static void json_stats(const wl_stats *st)
{
	const char *sep = "";

	printf("{");
#define STATS_JSON(f)                                                                              \
	printf("%s\"%s\": %llu", sep, #f, (unsigned long long)st->f);                              \
	sep = ", ";
	ZP_STATS_U64_FIELDS(STATS_JSON)
	ZP_STATS_UNSIGNED_FIELDS(STATS_JSON)
#undef STATS_JSON
	printf("}");
}

/* The classes the run used, with the capacity the thread caches gave
 * each (docs/findings.md, question 2: what the adaptive cache chose). */
static void json_classes(zp_pool *pool, unsigned classes)
{
	const char *sep = "";

	printf("[");
	for (unsigned k = 0; k < classes; k++) {
		struct zp_class_stats c;

		if (zp_class_stats(pool, k, &c) != 0 || c.gets == 0)
			continue;
		printf("%s{\"size\": %zu, \"gets\": %llu, \"cache_hits\": %llu, "
		       "\"cache_limit_peak\": %llu}",
		       sep, c.size, (unsigned long long)c.gets, (unsigned long long)c.cache_hits,
		       (unsigned long long)c.cache_limit_peak);
		sep = ", ";
	}
	printf("]");
}

static void json_config(const zp_config *c)
{
	printf("{");
	json_u64("cache_depth", c->cache_depth, true);
	json_u64("batch", c->batch, true);
	json_u64("max_per_class", c->max_per_class, true);
	json_u64("min_size", c->min_size, true);
	json_u64("max_size", c->max_size, true);
	json_u64("classes_per_doubling", c->classes_per_doubling, true);
	/* SIZE_MAX (unlimited) prints as null: not every JSON reader keeps
	 * 64-bit integers exact. */
	if (c->max_idle_bytes == SIZE_MAX)
		printf("\"max_idle_bytes\": null, ");
	else
		json_u64("max_idle_bytes", c->max_idle_bytes, true);
	json_u64("shards", c->shards, true);
	json_u64("flags", c->flags, false);
	printf("}");
}

static double hit_rate(const wl_stats *st)
{
	return st->gets == 0 ? 0.0 : (double)(st->cache_hits + st->store_hits) / (double)st->gets;
}

static void print_json(const wl_ctx *ctx, const wl_stats *st, bool ok)
{
	printf("{\"program\": ");
	wl_json_string(ctx->prog->name);
	printf(", \"backend\": ");
	wl_json_string(backend_label(ctx));
	printf(", \"allocator\": ");
	wl_json_string(zpp_malloc_file());
	printf(", \"api\": \"%s\"", ctx->opt.api == WL_API_CACHE ? "cache" : "get");
	printf(", \"config_preset\": \"%s\"", config_label(ctx));
	printf(", \"scale\": %.17g, \"threads\": %u", ctx->opt.scale, ctx->opt.threads);
	printf(", \"setup_s\": %.9g, \"wall_s\": %.9g", ctx->setup_s, ctx->wall_s);
	printf(", \"phases\": [");
	for (unsigned i = 0; i < ctx->nphases; i++) {
		const wl_phase *p = &ctx->phases[i];

		printf("%s{\"name\": ", i != 0 ? ", " : "");
		wl_json_string(p->name);
		printf(", \"seconds\": %.9g, \"gets\": %llu", p->seconds,
		       (unsigned long long)p->gets);
		if (p->idle_buffers >= 0)
			printf(", \"idle_buffers\": %lld", (long long)p->idle_buffers);
		printf("}");
	}
	printf("], ");
	json_u64("gets", ctx->gets, true);
	json_u64("puts", ctx->puts, true);
	json_u64("expected_gets", ctx->expected_gets, true);
	json_u64("bytes", ctx->bytes, true);
	if (ctx->expected_bytes != 0)
		json_u64("expected_bytes", ctx->expected_bytes, true);
	for (unsigned i = 0; i < ctx->nextras; i++)
		json_u64(ctx->extras[i].key, ctx->extras[i].value, true);
	if (st != NULL) {
		printf("\"preallocated\": %ld, \"config\": ", ctx->preallocated);
		json_config(&ctx->cfg);
		printf(", \"stats\": ");
		json_stats(st);
		printf(", \"classes\": ");
		json_classes(ctx->pool, st->classes);
		printf(", \"hit_rate\": %.9g", hit_rate(st));
	} else {
		printf("\"preallocated\": null, \"config\": null, \"stats\": null, "
		       "\"classes\": null, \"hit_rate\": null");
	}
	/* Only in the real-file mode: the simulated report stays as it was. */
	if (ctx->files != NULL) {
		printf(", \"real_files\": ");
		wl_files_json(ctx->files);
	}
	printf(", \"ok\": %s}\n", ok ? "true" : "false");
	fflush(stdout);
}

static void print_summary(const wl_ctx *ctx, const wl_stats *st)
{
	wl_log(
	    ctx, "Backend: %s (config %s, malloc from %s), gets: %llu, puts: %llu, bytes: %llu\n",
	    backend_label(ctx), config_label(ctx), zpp_malloc_file(), (unsigned long long)ctx->gets,
	    (unsigned long long)ctx->puts, (unsigned long long)ctx->bytes);
	if (st != NULL)
		wl_log(ctx,
		       "Pool: hit rate %.2f%% (cache %llu, store %llu, fresh %llu, oversize %llu), "
		       "evictions %llu, discards %llu, contention %llu, live %llu, idle %llu\n",
		       100.0 * hit_rate(st), (unsigned long long)st->cache_hits,
		       (unsigned long long)st->store_hits, (unsigned long long)st->fresh,
		       (unsigned long long)st->oversize, (unsigned long long)st->evictions,
		       (unsigned long long)st->discards, (unsigned long long)st->contention,
		       (unsigned long long)st->live_buffers, (unsigned long long)st->idle_buffers);
}

int wl_finish(wl_ctx *ctx)
{
	int status = WL_EXIT_OK;
	wl_stats st;
	const wl_stats *stp = NULL;

	if (ctx->pool != NULL) {
		pool_stats(ctx, &st);
		stp = &st;
	}
	if (ctx->gets != ctx->puts) {
		fprintf(stderr, "error: %llu gets but %llu puts\n", (unsigned long long)ctx->gets,
			(unsigned long long)ctx->puts);
		status = WL_EXIT_FAIL;
	}
	if (ctx->gets != ctx->expected_gets) {
		fprintf(stderr, "error: %llu gets, expected %llu\n", (unsigned long long)ctx->gets,
			(unsigned long long)ctx->expected_gets);
		status = WL_EXIT_FAIL;
	}
	if (ctx->expected_bytes != 0 && ctx->bytes != ctx->expected_bytes) {
		fprintf(stderr, "error: %llu bytes counted, expected %llu\n",
			(unsigned long long)ctx->bytes, (unsigned long long)ctx->expected_bytes);
		status = WL_EXIT_FAIL;
	}
	/* The pool's own counters must agree with ours once it is quiescent. */
	if (stp != NULL && (st.gets != ctx->gets || st.puts != ctx->puts || st.outstanding != 0)) {
		fprintf(stderr,
			"error: pool statistics disagree: pool gets %llu puts %llu outstanding "
			"%llu, driver gets %llu puts %llu\n",
			(unsigned long long)st.gets, (unsigned long long)st.puts,
			(unsigned long long)st.outstanding, (unsigned long long)ctx->gets,
			(unsigned long long)ctx->puts);
		status = WL_EXIT_FAIL;
	}
	print_summary(ctx, stp);
	if (ctx->files != NULL)
		wl_files_summary(ctx, ctx->files);
	if (ctx->opt.json)
		print_json(ctx, stp, status == WL_EXIT_OK);
	zp_pool_destroy(ctx->pool);
	ctx->pool = NULL;
	wl_files_cleanup();
	return status;
}
