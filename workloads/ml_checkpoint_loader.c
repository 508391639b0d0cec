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
#include <stdlib.h>
#include <string.h>

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
    .real_files = true,
};

/*
 * The real-file mode's checkpoint: one file holding one epoch's tensors in
 * load order, each at its own offset (the sizes are whole pages, so every
 * offset is page aligned); every epoch reads each tensor from its offset
 * into its own buffer, consecutive tensors up to --read-window bytes (at
 * most 16) with one request, each then loaded as in the simulated program;
 * a tensor larger than the window is one read alone.  Epoch 1 reads the
 * file once from the
 * device (the cold pass), later epochs read it again.  An epoch reads 37 GB
 * at the original sizes, so --scale multiplies the tensor sizes too
 * (rounded up to whole pages and the direct-I/O alignment), not only the
 * epochs.
 */
enum { T_METADATA, T_LAYER_NORM, T_ATTENTION, T_EMBEDDING, T_FFN, T_KINDS };

static const size_t TENSOR_SIZES[T_KINDS] = {
    METADATA_SIZE, LAYER_NORM_SIZE, ATTENTION_SIZE, EMBEDDING_SIZE, FFN_SIZE,
};

typedef struct ml_io {
	wl_files *fs;
	size_t size[T_KINDS]; /* the scaled sizes */
	int fd;
	bool layout;   /* placing the tensors (open_checkpoint), not reading */
	unsigned next; /* the tensor of the epoch to load next */
	uint64_t *off; /* per tensor of an epoch, in load order: its offset */
	size_t *len;   /* and its size */
	uint64_t epoch_bytes;
	/* Tensors next .. next + ahead - 1, read ahead into ahead_buf[head..]. */
	wl_buf ahead_buf[WL_FILES_MAX_IOV];
	unsigned head, ahead;
} ml_io;

/* EMBEDDING_SIZE / 2 is ATTENTION_SIZE: the same scaled size. */
static int tensor_kind(size_t size)
{
	for (int k = 0; k < T_KINDS; k++)
		if (TENSOR_SIZES[k] == size)
			return k;
	wl_die("no tensor kind of %zu bytes", size);
}

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

/* The read-ahead window: tensors io->next .. got into their own buffers
 * and read with one request, while they fit in the window (at least one,
 * at most WL_FILES_MAX_IOV, never past the epoch's last). */
static void read_ahead(wl_thread *t, ml_io *io)
{
	struct iovec iov[WL_FILES_MAX_IOV];
	size_t bytes = 0;
	unsigned n = 0, per_epoch = (unsigned)gets_per_epoch();

	while (n < WL_FILES_MAX_IOV && io->next + n < per_epoch &&
	       (n == 0 || bytes + io->len[io->next + n] <= wl_files_read_window(io->fs))) {
		io->ahead_buf[n] = wl_get(t, io->len[io->next + n]);
		iov[n].iov_base = io->ahead_buf[n].data;
		iov[n].iov_len = io->len[io->next + n];
		bytes += io->len[io->next + n];
		n++;
	}
	wl_files_readv(io->fs, io->fd, iov, n, io->off[io->next]);
	io->head = 0;
	io->ahead = n;
}

/* io == NULL: the simulated load (the port); else the tensor comes read
 * from its offset in the checkpoint (or, while io->layout, is only given
 * its offset). */
static void load_tensor(wl_thread *t, size_t size, ml_io *io)
{
	wl_buf b;

	if (io != NULL) {
		if (io->layout) { /* the read path takes its sizes from len[] */
			size = io->size[tensor_kind(size)];
			io->off[io->next] = io->epoch_bytes;
			io->len[io->next++] = size;
			io->epoch_bytes += size;
			return;
		}
		if (io->ahead == 0)
			read_ahead(t, io);
		b = io->ahead_buf[io->head++];
		io->ahead--;
		io->next++;
	} else {
		b = wl_get(t, size);
	}
	simulate_disk_read(b);
	process_weights(b);
	wl_put(t, b);
}

static void load_layer(wl_thread *t, ml_io *io)
{
	for (int i = 0; i < METADATA_ITEMS_PER_LAYER; i++)
		load_tensor(t, METADATA_SIZE, io);
	for (int i = 0; i < ATTENTION_PER_LAYER; i++)
		load_tensor(t, ATTENTION_SIZE, io);
	for (int i = 0; i < FFN_PER_LAYER; i++)
		load_tensor(t, FFN_SIZE, io);
	for (int i = 0; i < LAYER_NORM_PER_LAYER; i++)
		load_tensor(t, LAYER_NORM_SIZE, io);
}

static void load_epoch(wl_thread *t, ml_io *io)
{
	if (io != NULL)
		io->next = 0;
	load_tensor(t, EMBEDDING_SIZE, io);
	load_tensor(t, EMBEDDING_SIZE / 2, io);
	for (int l = 0; l < NUM_LAYERS; l++)
		load_layer(t, io);
	load_tensor(t, LAYER_NORM_SIZE, io);
	load_tensor(t, EMBEDDING_SIZE, io);
}

/* Place one epoch's tensors at the scaled sizes in load order (a dry run
 * of load_epoch), write the checkpoint and open it. */
static void open_checkpoint(wl_ctx *ctx, ml_io *io)
{
	size_t unit = wl_files_align(ctx->files);

	if (unit < 4 * WL_KIB)
		unit = 4 * WL_KIB;
	memset(io, 0, sizeof(*io));
	io->fs = ctx->files;
	for (int k = 0; k < T_KINDS; k++) {
		double want = (double)TENSOR_SIZES[k] * ctx->opt.scale;
		size_t units = (size_t)((want + (double)unit - 1) / (double)unit);

		io->size[k] = (units < 1 ? 1 : units) * unit;
	}
	io->off = malloc(gets_per_epoch() * sizeof(*io->off));
	io->len = malloc(gets_per_epoch() * sizeof(*io->len));
	if (io->off == NULL || io->len == NULL)
		wl_die("out of memory for the checkpoint's layout");
	io->layout = true;
	load_epoch(NULL, io);
	io->layout = false;
	if (io->next != gets_per_epoch())
		wl_die("checkpoint: %u tensors placed, %llu expected", io->next,
		       (unsigned long long)gets_per_epoch());
	if (wl_files_add(ctx->files, io->epoch_bytes) != 0)
		wl_die("checkpoint: unexpected file index");
	wl_log(ctx,
	       "Checkpoint: %u tensors, %llu bytes (metadata %zu, layer norm %zu, attention %zu, "
	       "embedding %zu, ffn %zu bytes each)\n",
	       io->next, (unsigned long long)io->epoch_bytes, io->size[T_METADATA],
	       io->size[T_LAYER_NORM], io->size[T_ATTENTION], io->size[T_EMBEDDING],
	       io->size[T_FFN]);
	io->fd = wl_files_openfd(ctx->files, 0);
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

static void warm_up(wl_ctx *ctx, const ml_io *io)
{
	wl_preallocate(ctx, 8, io != NULL ? io->size[T_EMBEDDING] : EMBEDDING_SIZE);
	wl_preallocate(ctx, 16, io != NULL ? io->size[T_ATTENTION] : ATTENTION_SIZE);
	wl_preallocate(ctx, 16, io != NULL ? io->size[T_FFN] : FFN_SIZE);
	wl_preallocate(ctx, 32, io != NULL ? io->size[T_METADATA] : METADATA_SIZE);
}

int main(int argc, char **argv)
{
	wl_ctx ctx;
	wl_thread t;
	ml_io io_real;
	ml_io *io = NULL;
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

	if (ctx.opt.files != NULL) {
		wl_files_open(&ctx);
		open_checkpoint(&ctx, &io_real);
		io = &io_real;
	}

	t0 = zpp_now();
	open_pool(&ctx);
	wl_log(&ctx, "Pre-allocating buffers...\n");
	warm_up(&ctx, io);
	ctx.setup_s = zpp_now() - t0;
	wl_phase_add(&ctx, "warmup", ctx.setup_s, 0);

	wl_thread_init(&ctx, &t, 0, NULL);
	t.report = ctx.progress;
	wl_progress_begin(&ctx, "epochs", epochs, &t, 1);
	if (io != NULL)
		wl_files_begin(io->fs);
	t0 = zpp_now();
	for (uint64_t e = 1; e <= epochs; e++) {
		if (e % 10 == 1 || e == epochs)
			wl_log(&ctx, "Processing epoch %llu/%llu...\n", (unsigned long long)e,
			       (unsigned long long)epochs);
		load_epoch(&t, io);
		/* Epoch 1 reads the checkpoint once, from the device in both modes. */
		if (e == 1 && io != NULL)
			wl_files_cold_end(io->fs);
		wl_progress_tick(&t, 1);
	}
	t1 = zpp_now();
	if (io != NULL) {
		wl_files_end(io->fs);
		wl_files_closefd(io->fd);
		free(io->off);
		free(io->len);
	}
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
