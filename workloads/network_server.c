/*
 * network_server - port of zeropool's profiling/network_server.rs.
 *
 * Worker threads (8 by default) each serve connections of 100
 * request/response cycles: get a request buffer of a random packet size,
 * write its first byte, get a response buffer of another random size with
 * the request still live, write its first byte, put the response, then the
 * request.  Packet sizes follow the original's (size, weight) table.
 *
 * The original draws each size from the wall clock's nanoseconds (two
 * clock_gettime calls per request, as costly as a pool operation, and not
 * repeatable).  Here each thread has its own splitmix64 stream seeded with
 * its thread id (zpp_splitmix64 of progs/zp_progs.h): the same distribution, a few cycles per draw,
 * and the same sequence on every run.  See docs/workloads.md.
 */
#include <stdint.h>
#include <stdio.h>

#include "wl_common.h"

#define NUM_WORKER_THREADS 8        /* --threads */
#define CONNECTIONS_PER_THREAD 5000 /* scaled by --scale */
#define REQUESTS_PER_CONNECTION 100
#define SIMULATION_DURATION_SECS 30 /* printed only, as in the original */
#define GETS_PER_REQUEST 2

static const wl_prog PROG = {
    .name = "network_server",
    .summary = "Serve request/response cycles on worker threads: 64 B .. 64 KiB packets.",
    .scaled = "connections per thread (5000; 100 requests and 200 gets each)",
    .default_threads = NUM_WORKER_THREADS,
};

/* (size, weight out of 100), "Zipf-like". */
static const struct {
	size_t size;
	unsigned weight;
} PACKET_SIZES[] = {
    {64, 50}, {512, 20}, {1024, 10}, {4096, 10}, {16384, 7}, {32768, 2}, {65536, 1},
};

#define NUM_PACKET_SIZES (sizeof(PACKET_SIZES) / sizeof(PACKET_SIZES[0]))

/* size_for[r] for r in 0..99: the original's walk over cumulative weights,
 * done once, so that a draw is one table load. */
static size_t size_for[100];

static void build_size_table(void)
{
	unsigned r = 0;

	for (size_t i = 0; i < NUM_PACKET_SIZES; i++)
		for (unsigned w = 0; w < PACKET_SIZES[i].weight; w++)
			size_for[r++] = PACKET_SIZES[i].size;
	if (r != 100)
		wl_die("packet weights sum to %u, not 100", r);
}

/* r uniform in 0..99 (the bias of the modulo is below 1e-17). */
static inline size_t packet_size(uint64_t *rng)
{
	return size_for[zpp_splitmix64(rng) % 100];
}

struct params {
	uint64_t connections; /* per thread */
};

static inline void handle_request(wl_thread *t, uint64_t *rng)
{
	wl_buf req = wl_get(t, packet_size(rng));
	wl_buf resp;

	/* receive_packet, parse_request */
	wl_write(req.data, 0, 1);
	zpp_black_box((uint32_t)req.len);

	resp = wl_get(t, packet_size(rng));
	/* generate_response, send_packet */
	wl_write(resp.data, 0, (unsigned char)(req.len % 256));
	zpp_black_box(resp.len);

	/* Rust drops in reverse order of declaration. */
	wl_put(t, resp);
	wl_put(t, req);
}

static void worker(wl_thread *t)
{
	const struct params *p = t->arg;
	uint64_t rng = t->tid;

	wl_log(t->ctx, "  Worker %u started\n", t->tid);
	for (uint64_t c = 0; c < p->connections; c++) {
		for (int r = 0; r < REQUESTS_PER_CONNECTION; r++)
			handle_request(t, &rng);
		wl_progress_tick(t, 1);
	}
}

/* The original's pool: tls 6, 32 per class, min 512 B. */
static void open_pool(wl_ctx *ctx)
{
	zp_config cfg;

	wl_config_init(ctx, &cfg);
	cfg.cache_depth = 6;
	cfg.max_per_class = 32;
	cfg.min_size = 512;
	wl_pool_open(ctx, &cfg);
}

static void warm_up(wl_ctx *ctx)
{
	wl_preallocate(ctx, 32, 64);
	wl_preallocate(ctx, 32, 512);
	wl_preallocate(ctx, 32, 1024);
	wl_preallocate(ctx, 16, 4096);
	wl_preallocate(ctx, 8, 16384);
}

int main(int argc, char **argv)
{
	wl_ctx ctx;
	struct params p;
	unsigned threads;
	uint64_t gets, requests;
	double t0;
	char d[32];

	wl_init(&ctx, &PROG, argc, argv);
	build_size_table();
	threads = ctx.opt.threads;
	p.connections = wl_scaled(&ctx, CONNECTIONS_PER_THREAD);
	ctx.expected_gets =
	    (uint64_t)threads * p.connections * REQUESTS_PER_CONNECTION * GETS_PER_REQUEST;

	wl_log(&ctx, "=== Network Server Profiling ===\n");
	wl_log(&ctx, "Worker threads: %u\n", threads);
	wl_log(&ctx, "Connections per thread: %llu\n", (unsigned long long)p.connections);
	wl_log(&ctx, "Requests per connection: %d\n", REQUESTS_PER_CONNECTION);
	wl_log(&ctx, "Target duration: %ds\n", SIMULATION_DURATION_SECS);

	t0 = zpp_now();
	open_pool(&ctx);
	warm_up(&ctx);
	ctx.setup_s = zpp_now() - t0;
	wl_phase_add(&ctx, "warmup", ctx.setup_s, 0);

	wl_log(&ctx, "\nStarting %u worker threads...\n", threads);
	t0 = zpp_now();
	gets = wl_run_threads(&ctx, threads, worker, &p, "connections",
			      (uint64_t)threads * p.connections);
	ctx.wall_s = zpp_now() - t0;
	wl_phase_add(&ctx, "serve", ctx.wall_s, gets);

	requests = ctx.gets / GETS_PER_REQUEST;
	wl_log(&ctx, "\n=== Profiling Complete ===\n");
	wl_log(&ctx, "Duration: %s\n", wl_fmt_dur(ctx.wall_s, d, sizeof(d)));
	wl_log(&ctx, "Total requests: %llu\n", (unsigned long long)requests);
	wl_log(&ctx, "Total data processed: %.2f GB\n", (double)ctx.bytes / 1e9);
	wl_log(&ctx, "Throughput: %.0f req/s\n", (double)requests / ctx.wall_s);
	wl_log(&ctx, "Bandwidth: %.2f GB/s\n", (double)ctx.bytes / 1e9 / ctx.wall_s);
	if (ctx.pool != NULL)
		wl_log(&ctx, "Pool stats: %lld buffers in pool\n",
		       (long long)wl_idle_buffers(&ctx));
	wl_extra(&ctx, "requests", requests);
	wl_extra(&ctx, "connections_per_thread", p.connections);
	return wl_finish(&ctx);
}
