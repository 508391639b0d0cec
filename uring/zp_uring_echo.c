/*
 * zp_uring_echo.c - a TCP echo server on loopback over io_uring, its
 * receive buffers from one buffer ring fed by a pool (zeropool_uring.h):
 * multishot accept, one multishot recv per connection selecting from the
 * ring, each claimed buffer sent back as it is and recycled into the ring
 * when the send completes.  The example of the module's pattern: claim,
 * ENOBUFS (replenish, re-arm), recycle.
 *
 *   zp_uring_echo [--port N] [--entries N] [--buf-size N] [--duration S]
 *                 [--self-test CONNS]
 *
 * --self-test runs a client thread that opens CONNS connections, sends
 * messages of several sizes on each and checks the echo; the program exits
 * 0 when every byte came back and every buffer is back in the pool, 77 when
 * the kernel refuses io_uring.  --duration bounds every run (default 60 s).
 *
 * Stopping is the module's other pattern: the ring may be destroyed only
 * once no request selects from it, so the server cancels every request
 * (IORING_ASYNC_CANCEL_ANY), reaps each one's last completion (recycling
 * the buffers of the sends it cut short), and only then destroys the ring.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zeropool_uring.h"

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2, OP_CONTROL = 3 };
enum { CONTROL_DEADLINE = 0, CONTROL_CANCEL = 1 };
#define UD(op, v) (((uint64_t)(v) << 2) | (op))

struct send_op {
	zp_buf *b;
	size_t off;
	int fd;
};

static struct io_uring ring;
static zp_uring_bufring *br;
static zp_pool *pool;
static atomic_int client_done;
static unsigned short port;
static long rearms; /* recvs re-armed after they ended (ENOBUFS) */

/* The requests in flight, each of which ends with one last completion (no
 * IORING_CQE_F_MORE): the server stops when all are reaped. */
static struct {
	bool stopping;  /* everything was cancelled: re-arm nothing */
	bool accepting; /* the multishot accept */
	bool deadline;  /* the --duration timeout */
	bool cancel;    /* the cancel request */
	long conns;     /* connections, each with its recv */
	long sends;     /* sends, each with its buffer */
} live;

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (sqe == NULL) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static void arm_recv(int fd)
{
	struct io_uring_sqe *sqe = sqe_get();
	zp_uring_prep_recv_multishot(br, sqe, fd);
	io_uring_sqe_set_data64(sqe, UD(OP_RECV, fd));
}

static void arm_accept(int lfd)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, lfd));
	live.accepting = true;
}

static void arm_deadline(unsigned seconds)
{
	static struct __kernel_timespec ts; /* read when the SQE is submitted */
	ts.tv_sec = seconds;
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_timeout(sqe, &ts, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(OP_CONTROL, CONTROL_DEADLINE));
	live.deadline = true;
}

/* Cancel every request in flight; each then ends with its last completion
 * (-ECANCELED, or its result if it finished first). */
static void stop(void)
{
	if (live.stopping)
		return;
	live.stopping = true;
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, UD(OP_CONTROL, CONTROL_CANCEL));
	live.cancel = true;
}

/* The deadline's or the cancel's completion.  Returns false when the
 * kernel cannot cancel (before 5.19): the server cannot stop cleanly. */
static bool on_control(const struct io_uring_cqe *cqe, unsigned which, unsigned long duration)
{
	if (which == CONTROL_DEADLINE) {
		live.deadline = false;
		if (cqe->res == -ETIME) {
			(void)fprintf(stderr, "zp_uring_echo: %lu s passed: stopping\n", duration);
			stop();
		}
		return true;
	}
	live.cancel = false;
	if (cqe->res == -EINVAL) {
		(void)fprintf(stderr, "zp_uring_echo: cannot cancel: %s\n", strerror(-cqe->res));
		return false;
	}
	return true;
}

static bool all_reaped(void)
{
	return !live.accepting && !live.deadline && !live.cancel && live.conns == 0 &&
	       live.sends == 0;
}

static void send_rest(struct send_op *op)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_send(sqe, op->fd, op->b->data + op->off, op->b->len - op->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(OP_SEND, (uintptr_t)op >> 2));
}

/* One completion of a connection's recv: echo the data, re-arm when the
 * request ended for want of buffers.  Returns 1 when the connection closed. */
static int on_recv(const struct io_uring_cqe *cqe, int fd)
{
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		zp_buf *b = zp_uring_bufring_claim(br, cqe);
		if (b != NULL && b->len > 0) {
			struct send_op *op = live.stopping ? NULL : malloc(sizeof(*op));
			if (op != NULL) {
				*op = (struct send_op){b, 0, fd};
				send_rest(op);
				live.sends++;
				b = NULL;
			}
		}
		if (b != NULL)
			zp_put(pool, b);
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		return 0;
	if (!live.stopping && (cqe->res == -ENOBUFS || cqe->res > 0)) {
		zp_uring_bufring_replenish(br); /* ENOMEM: the re-arm retries */
		arm_recv(fd);
		rearms++;
		return 0;
	}
	close(fd); /* EOF or an error */
	return 1;
}

static void on_send(const struct io_uring_cqe *cqe, struct send_op *op)
{
	if (!live.stopping && cqe->res > 0 && op->off + (size_t)cqe->res < op->b->len) {
		op->off += (size_t)cqe->res;
		send_rest(op);
		return;
	}
	zp_uring_bufring_recycle(br, op->b); /* straight back to the kernel */
	free(op);
	live.sends--;
}

static unsigned char pattern(size_t i, int conn)
{
	return (unsigned char)(i * 13 + (size_t)conn);
}

static void *client(void *arg)
{
	int conns = *(int *)arg, failed = 0;
	static const size_t sizes[] = {1, 200, 4096, 10000, 65536, 3};
	int *fds = calloc((size_t)conns, sizeof(int));
	unsigned char *out = malloc(65536), *in = malloc(65536);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int c = 0; c < conns && !failed; c++) {
		fds[c] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fds[c], (struct sockaddr *)&a, sizeof(a)) != 0) {
			failed = 1;
			break;
		}
		for (size_t m = 0; m < sizeof(sizes) / sizeof(sizes[0]) && !failed; m++) {
			for (size_t i = 0; i < sizes[m]; i++)
				out[i] = pattern(i + m, c);
			if (send(fds[c], out, sizes[m], MSG_NOSIGNAL) != (ssize_t)sizes[m])
				failed = 1;
			size_t got = 0;
			while (!failed && got < sizes[m]) {
				ssize_t r = read(fds[c], in + got, sizes[m] - got);
				if (r <= 0)
					failed = 1;
				else
					got += (size_t)r;
			}
			if (!failed && memcmp(in, out, sizes[m]) != 0)
				failed = 1;
		}
	}
	atomic_store(&client_done, failed ? 2 : 1);
	for (int c = 0; c < conns; c++)
		if (fds[c] > 0)
			close(fds[c]);
	free(fds);
	free(out);
	free(in);
	return NULL;
}

static void usage(FILE *f, const char *argv0)
{
	(void)fprintf(
	    f,
	    "usage: %s [--port N] [--entries N] [--buf-size N] [--duration S]\n"
	    "          [--self-test CONNS]\n"
	    "  An echo server on 127.0.0.1 over io_uring; its receive buffers come from\n"
	    "  one buffer ring fed by a zeropool pool.\n"
	    "  --port N          port to listen on, 0..65535 (default 0: any, printed)\n"
	    "  --entries N       the ring's entries, a power of two, 1..32768 (default 256)\n"
	    "  --buf-size N      bytes per buffer, 1..1048576 (default 4096)\n"
	    "  --duration S      stop after S seconds, 1..3600 (default 60), in every mode\n"
	    "  --self-test CONNS a client thread opens CONNS connections (1..1000), checks\n"
	    "                    the echo; exit 0 when all came back and every buffer is\n"
	    "                    in the pool\n"
	    "Exit status: 0 done; 1 the self-test failed, a buffer is missing or a\n"
	    "call failed; 2 bad usage; 77 the kernel refuses io_uring or buffer rings.\n",
	    argv0);
}

/* The whole number v if it lies in [lo, hi]. */
static bool number(const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n < lo || n > hi)
		return false;
	*out = n;
	return true;
}

int main(int argc, char **argv)
{
	unsigned long entries = 256, buf_size = 4096, duration = 60, self_conns = 0, port_arg = 0;
	const struct {
		const char *name;
		unsigned long lo, hi, *to;
	} opts[] = {
	    {"--port", 0, 65535, &port_arg},       {"--entries", 1, 32768, &entries},
	    {"--buf-size", 1, 1 << 20, &buf_size}, {"--duration", 1, 3600, &duration},
	    {"--self-test", 1, 1000, &self_conns},
	};
	const size_t nopts = sizeof(opts) / sizeof(opts[0]);
	for (int i = 1; i < argc; i += 2) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout, argv[0]);
			return 0;
		}
		size_t o = 0;
		while (o < nopts && strcmp(argv[i], opts[o].name) != 0)
			o++;
		const char *why = o == nopts      ? "unknown option"
				  : i + 1 == argc ? "missing value for"
				  : !number(argv[i + 1], opts[o].lo, opts[o].hi, opts[o].to)
				      ? "bad value for"
				      : NULL;
		if (why != NULL) {
			(void)fprintf(stderr, "%s: %s %s\n", argv[0], why, argv[i]);
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if ((entries & (entries - 1)) != 0) {
		(void)fprintf(stderr, "%s: not a power of two: --entries\n", argv[0]);
		usage(stderr, argv[0]);
		return 2;
	}
	port = (unsigned short)port_arg;
	int self_test = (int)self_conns;
	int rc = io_uring_queue_init(256, &ring, 0);
	if (rc < 0) {
		(void)fprintf(stderr, "SKIP: io_uring_queue_init: %s\n", strerror(-rc));
		return 77;
	}
	pool = zp_pool_create(NULL);
	if (pool == NULL) {
		perror("zp_pool_create");
		return 1;
	}
	/* The options are valid, so EINVAL is the kernel's refusal. */
	br = zp_uring_bufring_create(&ring, pool, 1, (unsigned)entries, buf_size, 0);
	if (br == NULL) {
		int err = errno;
		(void)fprintf(stderr, "%szp_uring_bufring_create: %s\n",
			      err == EINVAL ? "SKIP: " : "", strerror(err));
		return err == EINVAL ? 77 : 1;
	}
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
		perror("listen");
		return 1;
	}
	port = ntohs(a.sin_port);
	printf("zp_uring_echo: 127.0.0.1:%u, ring of %lu x %lu bytes\n", port, entries, buf_size);
	(void)fflush(stdout);
	arm_accept(lfd);
	arm_deadline((unsigned)duration);
	pthread_t t;
	if (self_test > 0 && pthread_create(&t, NULL, client, &self_test) != 0)
		return 1;
	long echoed = 0;
	while (!(live.stopping && all_reaped())) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_submit_and_wait(&ring, 1);
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			bool last = !(cqe->flags & IORING_CQE_F_MORE);
			seen++;
			switch (ud & 3) {
			case OP_ACCEPT:
				if (cqe->res >= 0 && live.stopping) {
					close(cqe->res);
				} else if (cqe->res >= 0) {
					live.conns++;
					arm_recv(cqe->res);
				}
				live.accepting = !last;
				if (last && !live.stopping) {
					arm_accept(lfd);
				} else if (last) { /* resets connections not accepted */
					close(lfd);
					lfd = -1;
				}
				break;
			case OP_RECV:
				echoed += cqe->res > 0 ? cqe->res : 0;
				live.conns -= on_recv(cqe, (int)(ud >> 2));
				break;
			case OP_SEND:
				on_send(cqe, (struct send_op *)(uintptr_t)(ud & ~(uint64_t)3));
				break;
			default:
				if (!on_control(cqe, (unsigned)(ud >> 2), duration))
					return 1;
			}
		}
		io_uring_cq_advance(&ring, seen);
		if (self_test > 0 && atomic_load(&client_done) && live.conns == 0)
			stop();
	}
	if (self_test > 0)
		pthread_join(t, NULL);
	zp_uring_bufring_destroy(br);
	if (lfd >= 0)
		close(lfd);
	io_uring_queue_exit(&ring);
	struct zp_stats st;
	zp_stats(pool, &st);
	bool client_ok = self_test == 0 || atomic_load(&client_done) == 1;
	printf("zp_uring_echo: %ld bytes echoed, %ld re-arms, %llu buffers outstanding%s\n", echoed,
	       rearms, (unsigned long long)st.outstanding,
	       self_test == 0 ? ""
	       : client_ok    ? ", client ok"
			      : ", client FAILED");
	zp_pool_destroy(pool);
	return client_ok && st.outstanding == 0 ? 0 : 1;
}
