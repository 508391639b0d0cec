/*
 * file_pipeline - port of zeropool's profiling/file_pipeline.rs.
 *
 * One thread runs a read -> transform -> write pipeline over 500 files of
 * 50 chunks, three times.  File i has type i % 5, which picks its chunk
 * size (4 KiB .. 1 MiB).  Per chunk the read buffer stays live while the
 * write buffer is got, so two buffers of one class are out at a time.
 * In the real-file mode (--files) a read-ahead window of up to 16
 * consecutive chunks is read at once into as many buffers, then processed
 * one chunk at a time.  See docs/workloads.md.
 */
#include <stdint.h>
#include <stdio.h>

#include "wl_common.h"

#define NUM_FILES 500 /* scaled by --scale */
#define CHUNKS_PER_FILE 50
#define SIMULATION_RUNS 3
#define GETS_PER_CHUNK 2

#define MAX_WINDOW_CHUNKS WL_FILES_MAX_IOV

static const wl_prog PROG = {
    .name = "file_pipeline",
    .summary = "Read -> transform -> write chunks of 4 KiB .. 1 MiB, 3 runs, one thread.",
    .scaled = "the number of files per run (500; 50 chunks and 100 gets each)",
    .default_threads = 0,
    .real_files = true,
};

/* SmallText, MediumJson, LargeImage, VideoChunk, Database. */
static const size_t CHUNK_SIZES[] = {
    4 * WL_KIB, 16 * WL_KIB, 64 * WL_KIB, 256 * WL_KIB, 1 * WL_MIB,
};

#define NUM_FILE_TYPES (sizeof(CHUNK_SIZES) / sizeof(CHUNK_SIZES[0]))

static const char *const RUN_NAMES[SIMULATION_RUNS] = {"run 1", "run 2", "run 3"};

/* Process a chunk whose read buffer rd is got (and, with real files,
 * filled): get the write buffer while rd is live, put both. */
static inline void finish_chunk(wl_thread *t, size_t chunk, wl_buf rd)
{
	wl_buf wr;

	/* read_chunk, transform_data */
	wl_write(rd.data, 0, 1);
	zpp_black_box(rd.len);

	wr = wl_get(t, chunk);
	/* prepare_output, write_chunk */
	zpp_black_box(rd.len);
	wl_write(wr.data, 0, 1);
	zpp_black_box(wr.len);

	wl_put(t, wr);
	wl_put(t, rd);
}

/* The simulated pipeline (the port). */
static void process_chunk(wl_thread *t, size_t chunk)
{
	finish_chunk(t, chunk, wl_get(t, chunk));
}

/* Chunks per read-ahead window: --read-window / chunk, 1..16. */
static unsigned window_chunks(size_t window, size_t chunk)
{
	size_t k = window / chunk;

	return k < 1 ? 1 : k > MAX_WINDOW_CHUNKS ? MAX_WINDOW_CHUNKS : (unsigned)k;
}

/* Real files: chunks c0 .. c0 + k - 1 read with one request into k read
 * buffers, then processed one at a time as the simulated chunks are. */
static void process_window(wl_thread *t, size_t chunk, wl_files *fs, int fd, int c0, unsigned k)
{
	wl_buf rd[MAX_WINDOW_CHUNKS];
	struct iovec iov[MAX_WINDOW_CHUNKS];

	for (unsigned i = 0; i < k; i++) {
		rd[i] = wl_get(t, chunk);
		iov[i].iov_base = rd[i].data;
		iov[i].iov_len = chunk;
	}
	wl_files_readv(fs, fd, iov, k, (uint64_t)c0 * chunk);
	for (unsigned i = 0; i < k; i++)
		finish_chunk(t, chunk, rd[i]);
}

static void process_file(wl_thread *t, uint64_t file, wl_files *fs)
{
	size_t chunk = CHUNK_SIZES[file % NUM_FILE_TYPES];
	unsigned k;
	int fd;

	if (fs == NULL) {
		for (int c = 0; c < CHUNKS_PER_FILE; c++)
			process_chunk(t, chunk);
		return;
	}
	k = window_chunks(wl_files_read_window(fs), chunk);
	fd = wl_files_openfd(fs, (unsigned)file);
	for (int c = 0; c < CHUNKS_PER_FILE; c += (int)k) {
		unsigned n = CHUNKS_PER_FILE - c < (int)k ? (unsigned)(CHUNKS_PER_FILE - c) : k;

		process_window(t, chunk, fs, fd, c, n);
	}
	wl_files_closefd(fd);
}

/* The real-file mode's input: file i holds its 50 chunks (file i of the
 * original has 50 chunks of its type's size). */
static void write_files(wl_ctx *ctx, uint64_t files)
{
	uint64_t total = 0;

	for (uint64_t f = 0; f < files; f++) {
		uint64_t size = (uint64_t)CHUNKS_PER_FILE * CHUNK_SIZES[f % NUM_FILE_TYPES];

		wl_files_add(ctx->files, size);
		total += size;
	}
	wl_log(ctx, "Wrote %llu files, %llu bytes\n", (unsigned long long)files,
	       (unsigned long long)total);
}

/* Bytes one run counts: both buffers of every chunk of every file. */
static uint64_t bytes_per_run(uint64_t files)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < NUM_FILE_TYPES; i++) {
		uint64_t n = files / NUM_FILE_TYPES + (i < files % NUM_FILE_TYPES ? 1 : 0);
		sum += n * CHUNKS_PER_FILE * GETS_PER_CHUNK * CHUNK_SIZES[i];
	}
	return sum;
}

/* The original's pool: tls 4, 24 per class, min 4 KiB. */
static void open_pool(wl_ctx *ctx)
{
	zp_config cfg;

	wl_config_init(ctx, &cfg);
	cfg.cache_depth = 4;
	cfg.max_per_class = 24;
	cfg.min_size = 4 * WL_KIB;
	wl_pool_open(ctx, &cfg);
}

static void warm_up(wl_ctx *ctx)
{
	for (size_t i = 0; i < NUM_FILE_TYPES; i++)
		wl_preallocate(ctx, 8, CHUNK_SIZES[i]);
}

int main(int argc, char **argv)
{
	wl_ctx ctx;
	wl_thread t;
	uint64_t files;
	double t0;
	char d[32];

	wl_init(&ctx, &PROG, argc, argv);
	files = wl_scaled(&ctx, NUM_FILES);
	ctx.expected_gets = SIMULATION_RUNS * files * CHUNKS_PER_FILE * GETS_PER_CHUNK;
	ctx.expected_bytes = SIMULATION_RUNS * bytes_per_run(files);

	wl_log(&ctx, "=== File Pipeline Profiling ===\n");
	wl_log(&ctx, "Files to process: %llu\n", (unsigned long long)files);
	wl_log(&ctx, "Chunks per file: %d\n", CHUNKS_PER_FILE);
	wl_log(&ctx, "Simulation runs: %d\n", SIMULATION_RUNS);

	if (ctx.opt.files != NULL) {
		wl_files_open(&ctx);
		write_files(&ctx, files);
		size_t w = wl_files_read_window(ctx.files);

		wl_log(&ctx, "Read-ahead window: %zu bytes (%u, %u, %u, %u, %u chunks per read)\n",
		       w, window_chunks(w, CHUNK_SIZES[0]), window_chunks(w, CHUNK_SIZES[1]),
		       window_chunks(w, CHUNK_SIZES[2]), window_chunks(w, CHUNK_SIZES[3]),
		       window_chunks(w, CHUNK_SIZES[4]));
	}

	t0 = zpp_now();
	open_pool(&ctx);
	wl_log(&ctx, "Pre-allocating buffers...\n");
	warm_up(&ctx);
	ctx.setup_s = zpp_now() - t0;
	wl_phase_add(&ctx, "warmup", ctx.setup_s, 0);

	wl_thread_init(&ctx, &t, 0, NULL);
	t.report = ctx.progress;
	wl_progress_begin(&ctx, "files", SIMULATION_RUNS * files, &t, 1);
	if (ctx.files != NULL)
		wl_files_begin(ctx.files);
	for (int run = 0; run < SIMULATION_RUNS; run++) {
		uint64_t gets0 = t.gets, bytes0 = t.bytes;
		double r0, rs;

		wl_log(&ctx, "\n[Run %d/%d] Processing files...\n", run + 1, SIMULATION_RUNS);
		r0 = zpp_now();
		for (uint64_t f = 0; f < files; f++) {
			process_file(&t, f, ctx.files);
			wl_progress_tick(&t, 1);
		}
		rs = zpp_now() - r0;
		/* Run 1 reads every file once, from the device in both modes. */
		if (run == 0 && ctx.files != NULL)
			wl_files_cold_end(ctx.files);
		ctx.wall_s += rs;
		wl_phase_add(&ctx, RUN_NAMES[run], rs, t.gets - gets0);
		wl_log(&ctx, "[Run %d/%d] Completed in %s, %.2f GB processed\n", run + 1,
		       SIMULATION_RUNS, wl_fmt_dur(rs, d, sizeof(d)),
		       (double)(t.bytes - bytes0) / 1e9);
	}
	if (ctx.files != NULL)
		wl_files_end(ctx.files);
	wl_progress_end();
	wl_thread_collect(&ctx, &t);

	wl_log(&ctx, "\n=== Profiling Complete ===\n");
	wl_log(&ctx, "Total time: %s\n", wl_fmt_dur(ctx.wall_s, d, sizeof(d)));
	wl_log(&ctx, "Average run time: %s\n",
	       wl_fmt_dur(ctx.wall_s / SIMULATION_RUNS, d, sizeof(d)));
	if (ctx.pool != NULL)
		wl_log(&ctx, "Pool stats: %lld buffers in pool\n",
		       (long long)wl_idle_buffers(&ctx));
	wl_extra(&ctx, "files", files);
	return wl_finish(&ctx);
}
