/*
 * ml_checkpoint_loader - port of zeropool's profiling/ml_checkpoint_loader.rs.
 *
 * One thread loads a 48-layer "checkpoint" again and again: each tensor
 * buffer is got, touched at both ends (the "disk read"), read back (the
 * "processing") and put before the next get, so one buffer is live at a
 * time.  Sizes run from 4 KiB to 256 MiB; only two bytes of each are
 * touched, so the cost is the pool (or the kernel's mmap/munmap in malloc
 * mode), not memory bandwidth.  See docs/workloads.md.
 */
#include <stdint.h>
#include <stdio.h>

#include "wl_common.h"

#define TOTAL_MODEL_SIZE_GB 2 /* printed only, as in the original */
#define NUM_EPOCHS 1000       /* scaled by --scale */
#define NUM_LAYERS 48
#define METADATA_ITEMS_PER_LAYER 10
#define ATTENTION_PER_LAYER 4 /* Q, K, V, O */
#define FFN_PER_LAYER 2
#define LAYER_NORM_PER_LAYER 2

#define METADATA_SIZE (4 * WL_KIB)
#define EMBEDDING_SIZE (128 * WL_MIB)
#define ATTENTION_SIZE (64 * WL_MIB)
#define FFN_SIZE (256 * WL_MIB)
#define LAYER_NORM_SIZE (1 * WL_MIB)

static const wl_prog PROG = {
    .name = "ml_checkpoint_loader",
    .summary = "Load a 48-layer model checkpoint epoch after epoch: 4 KiB .. 256 MiB buffers, "
	       "one thread.",
    .scaled = "the number of epochs (1000; 868 gets each)",
    .default_threads = 0,
};

/* Gets per epoch, counted from the structure of load_epoch() below:
 * embedding and its half at the start, the layers, a norm and the
 * embedding again at the end. */
static uint64_t gets_per_epoch(void)
{
	return 2 +
	       (uint64_t)NUM_LAYERS * (METADATA_ITEMS_PER_LAYER + ATTENTION_PER_LAYER +
				       FFN_PER_LAYER + LAYER_NORM_PER_LAYER) +
	       2;
}

/* "simulate_disk_read": the first and the last byte arrive. */
static void simulate_disk_read(wl_buf b)
{
	wl_write(b.data, 0, 1);
	wl_write(b.data, b.len - 1, 1);
}

/* "process_weights": black_box(len) and black_box(&buf[0]). */
static void process_weights(wl_buf b)
{
	zpp_black_box(b.len);
	(void)wl_read(b.data, 0);
}

static void load_tensor(wl_thread *t, size_t size)
{
	wl_buf b = wl_get(t, size);

	simulate_disk_read(b);
	process_weights(b);
	wl_put(t, b);
}

static void load_layer(wl_thread *t)
{
	for (int i = 0; i < METADATA_ITEMS_PER_LAYER; i++)
		load_tensor(t, METADATA_SIZE);
	for (int i = 0; i < ATTENTION_PER_LAYER; i++)
		load_tensor(t, ATTENTION_SIZE);
	for (int i = 0; i < FFN_PER_LAYER; i++)
		load_tensor(t, FFN_SIZE);
	for (int i = 0; i < LAYER_NORM_PER_LAYER; i++)
		load_tensor(t, LAYER_NORM_SIZE);
}

static void load_epoch(wl_thread *t)
{
	load_tensor(t, EMBEDDING_SIZE);
	load_tensor(t, EMBEDDING_SIZE / 2);
	for (int l = 0; l < NUM_LAYERS; l++)
		load_layer(t);
	load_tensor(t, LAYER_NORM_SIZE);
	load_tensor(t, EMBEDDING_SIZE);
}

/*
 * The original's pool: tls 4, 32 per class, min 1 MiB (so 4 KiB requests
 * are served from the 1 MiB class).  No byte budget: zeropool has none, and
 * the warm-up alone places 6 GiB of untouched mappings.
 */
static void open_pool(wl_ctx *ctx)
{
	zp_config cfg;

	wl_config_init(ctx, &cfg);
	cfg.cache_depth = 4;
	cfg.max_per_class = 32;
	cfg.min_size = 1 * WL_MIB;
	cfg.max_idle_bytes = SIZE_MAX;
	wl_pool_open(ctx, &cfg);
}

static void warm_up(wl_ctx *ctx)
{
	wl_preallocate(ctx, 8, EMBEDDING_SIZE);
	wl_preallocate(ctx, 16, ATTENTION_SIZE);
	wl_preallocate(ctx, 16, FFN_SIZE);
	wl_preallocate(ctx, 32, METADATA_SIZE);
}

int main(int argc, char **argv)
{
	wl_ctx ctx;
	wl_thread t;
	uint64_t epochs;
	double t0, t1;
	char d1[32], d2[32];

	wl_init(&ctx, &PROG, argc, argv);
	epochs = wl_scaled(&ctx, NUM_EPOCHS);
	ctx.expected_gets = epochs * gets_per_epoch();

	wl_log(&ctx, "=== ML Checkpoint Loader Profiling ===\n");
	wl_log(&ctx, "Model size: %d GB\n", TOTAL_MODEL_SIZE_GB);
	wl_log(&ctx, "Epochs: %llu\n", (unsigned long long)epochs);
	wl_log(&ctx, "Layers: %d\n", NUM_LAYERS);

	t0 = zpp_now();
	open_pool(&ctx);
	wl_log(&ctx, "Pre-allocating buffers...\n");
	warm_up(&ctx);
	ctx.setup_s = zpp_now() - t0;
	wl_phase_add(&ctx, "warmup", ctx.setup_s, 0);

	wl_thread_init(&ctx, &t, 0, NULL);
	t.report = ctx.progress;
	wl_progress_begin(&ctx, "epochs", epochs, &t, 1);
	t0 = zpp_now();
	for (uint64_t e = 1; e <= epochs; e++) {
		if (e % 10 == 1 || e == epochs)
			wl_log(&ctx, "Processing epoch %llu/%llu...\n", (unsigned long long)e,
			       (unsigned long long)epochs);
		load_epoch(&t);
		wl_progress_tick(&t, 1);
	}
	t1 = zpp_now();
	wl_progress_end();
	wl_thread_collect(&ctx, &t);
	ctx.wall_s = t1 - t0;
	wl_phase_add(&ctx, "epochs", ctx.wall_s, t.gets);

	wl_log(&ctx, "\n=== Profiling Complete ===\n");
	wl_log(&ctx, "Total time: %s\n", wl_fmt_dur(ctx.wall_s, d1, sizeof(d1)));
	wl_log(&ctx, "Average epoch time: %s\n",
	       wl_fmt_dur(ctx.wall_s / (double)epochs, d2, sizeof(d2)));
	if (ctx.pool != NULL)
		wl_log(&ctx, "Pool stats: %lld buffers in pool\n",
		       (long long)wl_idle_buffers(&ctx));
	wl_extra(&ctx, "epochs", epochs);
	return wl_finish(&ctx);
}
