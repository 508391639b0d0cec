/*
 * http_server - a real HTTP/1.1 keep-alive server on 127.0.0.1, for
 * measuring the pool under sockets: worker threads read each request into a
 * buffer (pool or malloc, --backend; per connection or per read, --buffers)
 * and answer it from another, with a body of the size the path names
 * (/64 .. /65536).  Driven by wrk (bench/server_bench.py), by its own
 * --self-test client, or held under --idle-conns keep-alive connections.
 * It stops by itself: after --duration, after --requests, when its own
 * client is done, or on SIGINT/SIGTERM; an alarm kills it HARD_CAP_SLACK_S
 * after the duration if it has not.  See docs/workloads.md.
 *
 * Each worker has its own SO_REUSEPORT listener on the same port: the kernel
 * spreads connections over them, a connection stays on the thread that
 * accepted it, and no accept is contended or woken in vain (one shared
 * listener in every worker's epoll wakes them all, or needs EPOLLEXCLUSIVE
 * and still shares the accept queue's lock).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_server.h"

#define DEFAULT_THREADS 2
#define DEFAULT_DURATION_S 60
#define MAX_DURATION_S 600
#define HARD_CAP_SLACK_S 30
#define MAX_IDLE_CONNS 100000
#define FD_SLACK 64 /* listeners, epoll instances, stdio, the allocator's */
#define POLL_NS (10 * 1000 * 1000)

static bool server_option(const wl_prog *prog, int argc, char **argv, int *i);

static const wl_prog PROG = {
    .name = "http_server",
    .summary = "Serve HTTP/1.1 keep-alive on 127.0.0.1: GET /N answers N bytes (64..65536).",
    .scaled = "nothing (the server runs for --duration, --requests or its own client)",
    .default_threads = DEFAULT_THREADS,
    .option = server_option,
    .options_help =
	"  --port P         TCP port on 127.0.0.1 (default 0: any free port)\n"
	"  --port-file F    write the bound port to F once listening\n"
	"  --duration S     stop after S seconds, 1..600 (default 60); a hard cap in\n"
	"                   every mode\n"
	"  --requests N     stop after N responses\n"
	"  --buffers per-connection|pooled\n"
	"                   a 16 KiB read buffer per connection for its life, or one\n"
	"                   taken per read and put back once answered (default pooled)\n"
	"  --io epoll|uring the I/O model (default epoll); uring: io_uring with\n"
	"                   multishot recv into one buffer ring per worker, fed from\n"
	"                   the pool (needs a pool backend and --buffers pooled;\n"
	"                   exit 77 with \"io_uring refused\" where the kernel says no)\n"
	"  --self-test N    a client thread sends N requests of each size (64, 4096,\n"
	"                   65536) and a few bad ones, checks every answer, then stops\n"
	"                   the server\n"
	"  --self-test-flood BYTES\n"
	"                   a client thread pipelines BYTES of requests on one\n"
	"                   connection, reading no response until the server stops\n"
	"                   taking more, then checks every answer in order\n"
	"  --ring-budget N  --io uring: a worker's ring and the read buffers it holds\n"
	"                   together stay within N buffers (default: no bound but the\n"
	"                   pool's); recvs wait for buffers while it is spent\n"
	"  --idle-conns N   a client thread holds N keep-alive connections (one in 16\n"
	"                   sends a request); report peak RSS, then stop\n",
};

static struct {
	int port;
	const char *port_file;
	unsigned duration;
	uint64_t requests; /* 0: no limit */
	hs_buffers buffers;
	uint64_t self_test; /* 0: off */
	uint64_t flood;     /* --self-test-flood bytes, 0: off */
	unsigned ring_budget;
	unsigned idle_conns;
	const hs_io_ops *io;
} g_opt = {.duration = DEFAULT_DURATION_S, .buffers = HS_BUF_POOLED, .io = &hs_io_epoll};

static int g_stop; /* relaxed atomic: signal handler, client, main thread */

bool hs_stopping(void)
{
	return __atomic_load_n(&g_stop, __ATOMIC_RELAXED) != 0;
}

void hs_request_stop(void)
{
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
}

typedef void *client_main(void *);

/* The client thread this run starts to check its own answers (--self-test
 * or --self-test-flood), or NULL when an outside client drives it. */
static client_main *own_client(void)
{
	if (g_opt.self_test != 0)
		return hs_self_test_client;
	return g_opt.flood != 0 ? hs_flood_client : NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	hs_request_stop();
}

/* ---- options ------------------------------------------------------------- */

static bool server_option(const wl_prog *prog, int argc, char **argv, int *i)
{
	const char *v;

	if ((v = wl_option_value(prog, argc, argv, i, "--port")) != NULL)
		g_opt.port = (int)wl_parse_uint(prog, "--port", v, 0, 65535);
	else if ((v = wl_option_value(prog, argc, argv, i, "--port-file")) != NULL)
		g_opt.port_file = v;
	else if ((v = wl_option_value(prog, argc, argv, i, "--duration")) != NULL)
		g_opt.duration = (unsigned)wl_parse_uint(prog, "--duration", v, 1, MAX_DURATION_S);
	else if ((v = wl_option_value(prog, argc, argv, i, "--requests")) != NULL)
		g_opt.requests = wl_parse_uint(prog, "--requests", v, 1, UINT64_MAX / 2);
	else if ((v = wl_option_value(prog, argc, argv, i, "--self-test")) != NULL)
		g_opt.self_test = wl_parse_uint(prog, "--self-test", v, 1, 1000000);
	else if ((v = wl_option_value(prog, argc, argv, i, "--self-test-flood")) != NULL)
		g_opt.flood = wl_parse_uint(prog, "--self-test-flood", v, 1, 1u << 30);
	else if ((v = wl_option_value(prog, argc, argv, i, "--ring-budget")) != NULL)
		g_opt.ring_budget = (unsigned)wl_parse_uint(prog, "--ring-budget", v, 1, 1000000);
	else if ((v = wl_option_value(prog, argc, argv, i, "--idle-conns")) != NULL)
		g_opt.idle_conns =
		    (unsigned)wl_parse_uint(prog, "--idle-conns", v, 1, MAX_IDLE_CONNS);
	else if ((v = wl_option_value(prog, argc, argv, i, "--buffers")) != NULL) {
		g_opt.buffers =
		    wl_parse_either(prog, "--buffers", v, "per-connection", "pooled") == 0
			? HS_BUF_PER_CONN
			: HS_BUF_POOLED;
	} else if ((v = wl_option_value(prog, argc, argv, i, "--io")) != NULL) {
		if (wl_parse_either(prog, "--io", v, "epoll", "uring") == 0)
			g_opt.io = &hs_io_epoll;
		else
#ifdef HS_HAVE_URING
			g_opt.io = &hs_io_uring;
#else
			wl_usage_error(prog, "--io uring: built without io_uring (liburing-dev)");
#endif
	} else {
		return false;
	}
	if ((g_opt.self_test != 0) + (g_opt.flood != 0) + (g_opt.idle_conns != 0) > 1)
		wl_usage_error(prog, "--self-test, --self-test-flood and --idle-conns are separate "
				     "runs");
	return true;
}

/* ---- set-up -------------------------------------------------------------- */

/* Room for every descriptor this run opens: with --idle-conns the server's
 * end of each connection (the client's ends are in its child process). */
static void raise_fd_limit(unsigned idle_conns)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)idle_conns + FD_SLACK;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		wl_die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		rl.rlim_max = need; /* allowed with CAP_SYS_RESOURCE */
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
		getrlimit(RLIMIT_NOFILE, &rl);
		wl_die("--idle-conns %u needs %llu descriptors, and the hard limit is %llu "
		       "(raise it: ulimit -Hn, or run with CAP_SYS_RESOURCE)",
		       idle_conns, (unsigned long long)need, (unsigned long long)rl.rlim_max);
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		wl_die("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)need,
		       strerror(errno));
}

/* A SO_REUSEPORT listener on 127.0.0.1:port (0: any), blocking: the I/O
 * model sets the mode it accepts in (epoll: non-blocking). */
static int listen_loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		wl_die("socket: %s", strerror(errno));
	/* The self-test checks that responses larger than the send buffer wait
	 * for writability: a fixed send buffer (accepted sockets inherit it)
	 * makes that so whatever net.ipv4.tcp_wmem lets autotuning reach. */
	int sndbuf = 64 << 10;
	if (own_client() != NULL &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
		wl_die("SO_SNDBUF: %s", strerror(errno));
	/* No fixed receive buffer, though the flood would hold its client back
	 * sooner with one: a paused connection does not read, and on 6.18 a
	 * small fixed buffer there made loopback TCP drop segments and then
	 * refuse their retransmissions for seconds (skb:kfree_skb PROTO_MEM,
	 * TCP_INVALID_SEQUENCE; RTO backoff): the flood stalled in 5 of 60 runs
	 * on two busy cores, and in none of 160 without it. */
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		wl_die("bind 127.0.0.1:%d: %s", port, strerror(errno));
	if (listen(fd, SOMAXCONN) != 0)
		wl_die("listen: %s", strerror(errno));
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_in a;
	socklen_t n = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &n) != 0)
		wl_die("getsockname: %s", strerror(errno));
	return ntohs(a.sin_port);
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static void write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		wl_die("--port-file %s: %s", path, strerror(errno));
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
		wl_die("sigaction: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
}

/* ---- workers and the main loop ------------------------------------------ */

static void *worker_main(void *arg)
{
	hs_worker *w = arg;

	wl_thread_init(w->t->ctx, w->t, w->t->tid, w);
	w->srv->io->run(w);
	return NULL;
}

/* Worker w's counter at `offset` in hs_worker, read while it may run. */
static uint64_t counter(const hs_worker *w, size_t offset)
{
	return zpp_load_relaxed((const uint64_t *)((const char *)w + offset));
}

static uint64_t sum(const hs_worker *ws, unsigned n, size_t offset)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < n; i++)
		s += counter(&ws[i], offset);
	return s;
}

#define SUM(ws, n, field) sum(ws, n, offsetof(hs_worker, field))

static uint64_t most(const hs_worker *ws, unsigned n, size_t offset)
{
	uint64_t m = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t v = counter(&ws[i], offset);
		m = v > m ? v : m;
	}
	return m;
}

#define MOST(ws, n, field) most(ws, n, offsetof(hs_worker, field))

/* Peak resident set as getrusage sees it (KiB), beside VmHWM. */
static long maxrss_kib(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

typedef struct run_result {
	long rss_base_kib;  /* resident before any connection */
	long rss_ready_kib; /* idle mode: with every connection open */
	uint64_t open_peak; /* idle mode: connections the server held */
} run_result;

/* Wait until a stop condition; in idle mode, measure when all are open. */
static void main_loop(hs_worker *ws, unsigned n, hs_idle_child *idle, run_result *res)
{
	struct timespec pause = {.tv_nsec = POLL_NS};
	double deadline = zpp_now() + g_opt.duration;
	char byte;

	while (!hs_stopping() && zpp_now() < deadline) {
		if (g_opt.requests != 0 && SUM(ws, n, requests) >= g_opt.requests)
			break;
		if (idle != NULL && !idle->ready) {
			ssize_t k = read(idle->ready_fd, &byte, 1);

			if (k == 0)
				break; /* the child ended early: it said why */
			idle->ready = k == 1;
		}
		if (idle != NULL && idle->ready && SUM(ws, n, open) >= g_opt.idle_conns) {
			res->open_peak = SUM(ws, n, open);
			res->rss_ready_kib = zpp_rss_kib();
			break;
		}
		nanosleep(&pause, NULL);
	}
	hs_request_stop();
}

int main(int argc, char **argv)
{
	wl_ctx ctx;
	hs_server srv = {0};
	hs_client client = {0};
	run_result res = {0};
	hs_idle_child idle = {.pid = -1, .ready_fd = -1, .release_fd = -1};
	pthread_t client_id;
	bool idle_ok = true;
	hs_worker *ws;
	wl_thread *ts;
	pthread_t *ids;
	unsigned n;
	uint64_t requests, cpu0, cpu, vmhwm;
	long maxrss;
	double t0;
	zp_config cfg;

	wl_init(&ctx, &PROG, argc, argv);
	n = ctx.opt.threads;
	srv.buffers = g_opt.buffers;
	srv.io = g_opt.io;
	srv.ring_budget = g_opt.ring_budget;
	if (g_opt.ring_budget != 0 && srv.io == &hs_io_epoll)
		wl_usage_error(&PROG, "--ring-budget bounds the buffer ring of --io uring");
#ifdef HS_HAVE_URING
	/* The ring starts full: under a small budget it has no more slots than
	 * the budget allows. */
	srv.ring_entries = HS_RING_ENTRIES;
	while (g_opt.ring_budget != 0 && srv.ring_entries > g_opt.ring_budget)
		srv.ring_entries /= 2;
	if (srv.io == &hs_io_uring) {
		/* The ring's buffers are the pool's: there is no malloc ring, and
		 * the ring is the only read buffer a connection has. */
		if (ctx.use_malloc)
			wl_usage_error(&PROG, "--io uring takes its read buffers from a pool's "
					      "buffer ring: not with --backend malloc");
		if (g_opt.buffers != HS_BUF_POOLED)
			wl_usage_error(&PROG, "--io uring reads into the buffer ring: not with "
					      "--buffers per-connection");
		hs_io_uring_probe();
	}
#endif
	raise_fd_limit(g_opt.idle_conns);
	install_signals();
	alarm(g_opt.duration + HARD_CAP_SLACK_S); /* the hard cap: SIGALRM ends the process */

	t0 = zpp_now();
	wl_config_init(&ctx, &cfg);
	wl_pool_open(&ctx, &cfg);
	ctx.setup_s = zpp_now() - t0;

	ws = aligned_alloc(64, n * sizeof(*ws));
	ts = aligned_alloc(64, n * sizeof(*ts));
	ids = calloc(n, sizeof(*ids));
	if (ws == NULL || ts == NULL || ids == NULL)
		wl_die("out of memory for %u workers", n);
	memset(ws, 0, n * sizeof(*ws));
	for (unsigned i = 0; i < n; i++) {
		ts[i].ctx = &ctx;
		ts[i].tid = i;
		ws[i].t = &ts[i];
		ws[i].srv = &srv;
		ws[i].epfd = -1;
		LIST_INIT(&ws[i].conns);
		ws[i].lfd = listen_loopback(i == 0 ? g_opt.port : srv.port);
		if (i == 0)
			srv.port = bound_port(ws[0].lfd);
	}
	if (g_opt.port_file != NULL)
		write_port_file(g_opt.port_file, srv.port);
	wl_log(&ctx, "http_server: 127.0.0.1:%d, %u %s workers, %s buffers, backend %s\n", srv.port,
	       n, srv.io->name, g_opt.buffers == HS_BUF_POOLED ? "pooled" : "per-connection",
	       ctx.use_malloc ? "malloc" : zp_backend_name(ctx.pool));

	res.rss_base_kib = zpp_rss_kib();
	if (g_opt.idle_conns != 0)
		hs_idle_start(&idle, ws, n, srv.port, g_opt.idle_conns);
	cpu0 = wl_cpu_us();
	t0 = zpp_now();
	for (unsigned i = 0; i < n; i++) {
		int rc = pthread_create(&ids[i], NULL, worker_main, &ws[i]);
		if (rc != 0)
			wl_die("pthread_create: %s", strerror(rc));
	}
	client.port = srv.port;
	client.requests = g_opt.self_test;
	client.flood_bytes = g_opt.flood;
	if (own_client() != NULL && pthread_create(&client_id, NULL, own_client(), &client) != 0)
		wl_die("pthread_create: client");

	main_loop(ws, n, g_opt.idle_conns != 0 ? &idle : NULL, &res);
	if (own_client() != NULL)
		pthread_join(client_id, NULL);
	if (g_opt.idle_conns != 0)
		idle_ok = hs_idle_finish(&idle);
	for (unsigned i = 0; i < n; i++)
		pthread_join(ids[i], NULL);
	ctx.wall_s = zpp_now() - t0;
	cpu = wl_cpu_us() - cpu0;

	for (unsigned i = 0; i < n; i++) {
		wl_thread_collect(&ctx, &ts[i]);
		close(ws[i].lfd);
	}
	requests = SUM(ws, n, requests);
	ctx.expected_gets = ctx.gets; /* reads decide the count; gets == puts is checked */
	wl_phase_add(&ctx, "serve", ctx.wall_s, ctx.gets);

	wl_log(&ctx, "Requests: %llu (404: %llu, 400: %llu) on %llu connections in %.2f s\n",
	       (unsigned long long)requests, (unsigned long long)SUM(ws, n, not_found),
	       (unsigned long long)SUM(ws, n, bad), (unsigned long long)SUM(ws, n, accepted),
	       ctx.wall_s);
	maxrss = maxrss_kib();
	vmhwm = wl_vm_hwm_kib();
	wl_log(&ctx, "CPU: %.3f s, %.2f us per request; peak RSS %ld KiB (VmHWM %llu KiB)\n",
	       (double)cpu / 1e6, requests != 0 ? (double)cpu / (double)requests : 0.0, maxrss,
	       (unsigned long long)vmhwm);

	wl_extra(&ctx, "requests", requests);
	wl_extra(&ctx, "not_found", SUM(ws, n, not_found));
	wl_extra(&ctx, "bad_requests", SUM(ws, n, bad));
	wl_extra(&ctx, "connections", SUM(ws, n, accepted));
	wl_extra(&ctx, "partial_writes", SUM(ws, n, partial));
	wl_extra(&ctx, "port", (uint64_t)srv.port);
	wl_extra(&ctx, "buffers_pooled", g_opt.buffers == HS_BUF_POOLED);
	wl_extra(&ctx, "cpu_us", cpu);
	wl_extra(&ctx, "cpu_ns_per_request", requests != 0 ? cpu * 1000 / requests : 0);
	wl_extra(&ctx, "maxrss_kib", (uint64_t)maxrss);
	wl_extra(&ctx, "vmhwm_kib", vmhwm);
	wl_extra(&ctx, "rss_base_kib", (uint64_t)res.rss_base_kib);
	wl_extra(&ctx, "read_buffers_peak", SUM(ws, n, rbuf_peak));
	wl_extra(&ctx, "io_uring", srv.io != &hs_io_epoll);
#ifdef HS_HAVE_URING
	if (srv.io == &hs_io_uring) {
		wl_extra(&ctx, "ring_buffers", (uint64_t)n * srv.ring_entries);
		wl_extra(&ctx, "ring_buf_size", HS_RING_BUF_SIZE);
		wl_extra(&ctx, "recv_rearms", SUM(ws, n, rearms));
		wl_extra(&ctx, "recv_pauses", SUM(ws, n, pauses));
		wl_extra(&ctx, "recv_resumes", SUM(ws, n, resumes));
		wl_extra(&ctx, "rx_queue_peak", MOST(ws, n, rxq_peak));
		wl_extra(&ctx, "ring_budget", g_opt.ring_budget);
		wl_extra(&ctx, "recv_starved", SUM(ws, n, starved));
		wl_extra(&ctx, "starve_retries", SUM(ws, n, starve_retries));
		wl_extra(&ctx, "starved_us", SUM(ws, n, starved_us));
		wl_extra(&ctx, "starved_cpu_us", SUM(ws, n, starved_cpu_us));
	}
#endif
	if (g_opt.idle_conns != 0) {
		wl_extra(&ctx, "idle_conns", g_opt.idle_conns);
		wl_extra(&ctx, "idle_conns_held", res.open_peak);
		wl_extra(&ctx, "rss_idle_kib", (uint64_t)res.rss_ready_kib);
	}
	if (own_client() != NULL)
		wl_extra(&ctx, "self_test_failed", client.failed);

	{
		int status = WL_EXIT_OK;

		if (own_client() != NULL && (client.failed != 0 || requests != client.answers)) {
			fprintf(stderr,
				"error: self-test: %llu failed checks, %llu responses for "
				"%llu requests answered\n",
				(unsigned long long)client.failed, (unsigned long long)requests,
				(unsigned long long)client.answers);
			status = WL_EXIT_FAIL;
		}
		if (g_opt.idle_conns != 0 && (!idle_ok || res.open_peak < g_opt.idle_conns)) {
			fprintf(stderr, "error: the server held %llu of %u idle connections%s\n",
				(unsigned long long)res.open_peak, g_opt.idle_conns,
				idle_ok ? "" : "; the client failed");
			status = WL_EXIT_FAIL;
		}
		free(ids);
		free(ts);
		free(ws);
		return wl_finish(&ctx) != WL_EXIT_OK ? WL_EXIT_FAIL : status;
	}
}
