/*
 * zp_uring_echo.c - a TCP echo server on loopback over io_uring, its
 * receive buffers from one buffer ring fed by a pool (zeropool_uring.h):
 * multishot accept, one multishot recv per connection selecting from the
 * ring, each claimed buffer sent back as it is and recycled into the ring
 * when the send completes.  The example of the module's pattern: claim,
 * ENOBUFS (replenish, re-arm), recycle.
 *
 *   zp_uring_echo [--port N] [--entries N] [--buf-size N] [--self-test CONNS]
 *
 * --self-test runs a client thread that opens CONNS connections, sends
 * messages of several sizes on each and checks the echo; the program exits
 * 0 when every byte came back and every buffer is back in the pool, 77 when
 * the kernel refuses io_uring.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zeropool_uring.h"

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2 };
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
			struct send_op *op = malloc(sizeof(*op));
			if (op != NULL) {
				*op = (struct send_op){b, 0, fd};
				send_rest(op);
				b = NULL;
			}
		}
		if (b != NULL)
			zp_put(pool, b);
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		return 0;
	if (cqe->res == -ENOBUFS || cqe->res > 0) {
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
	if (cqe->res > 0 && op->off + (size_t)cqe->res < op->b->len) {
		op->off += (size_t)cqe->res;
		send_rest(op);
		return;
	}
	zp_uring_bufring_recycle(br, op->b); /* straight back to the kernel */
	free(op);
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
			if (write(fds[c], out, sizes[m]) != (ssize_t)sizes[m])
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
	    "usage: %s [--port N] [--entries N] [--buf-size N] [--self-test CONNS]\n"
	    "  An echo server on 127.0.0.1 over io_uring; its receive buffers come from\n"
	    "  one buffer ring (default 256 entries of 4096 bytes) fed by a zeropool pool.\n"
	    "  --port N          port to listen on (default 0: any, printed)\n"
	    "  --self-test CONNS a client thread opens CONNS connections, checks the echo;\n"
	    "                    exit 0 when all came back and every buffer is in the pool\n",
	    argv0);
}

int main(int argc, char **argv)
{
	unsigned entries = 256;
	size_t buf_size = 4096;
	int self_test = 0;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout, argv[0]);
			return 0;
		} else if (strcmp(argv[i], "--port") == 0 && v) {
			port = (unsigned short)atoi(v);
		} else if (strcmp(argv[i], "--entries") == 0 && v) {
			entries = (unsigned)atoi(v);
		} else if (strcmp(argv[i], "--buf-size") == 0 && v) {
			buf_size = (size_t)atol(v);
		} else if (strcmp(argv[i], "--self-test") == 0 && v) {
			self_test = atoi(v);
		} else {
			usage(stderr, argv[0]);
			return 2;
		}
		i++;
	}
	int rc = io_uring_queue_init(256, &ring, 0);
	if (rc < 0) {
		(void)fprintf(stderr, "SKIP: io_uring_queue_init: %s\n", strerror(-rc));
		return 77;
	}
	pool = zp_pool_create(NULL);
	br = pool ? zp_uring_bufring_create(&ring, pool, 1, entries, buf_size, 0) : NULL;
	if (br == NULL) {
		perror("zp_uring_bufring_create");
		return errno == EINVAL ? 2 : 77;
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
	printf("zp_uring_echo: 127.0.0.1:%u, ring of %u x %zu bytes\n", port, entries, buf_size);
	(void)fflush(stdout);
	arm_accept(lfd);
	pthread_t t;
	if (self_test > 0 && pthread_create(&t, NULL, client, &self_test) != 0)
		return 1;
	long conns = 0, echoed = 0;
	while (!(self_test > 0 && atomic_load(&client_done) && conns == 0)) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_submit_and_wait(&ring, 1);
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			seen++;
			switch (ud & 3) {
			case OP_ACCEPT:
				if (cqe->res >= 0) {
					conns++;
					arm_recv(cqe->res);
				}
				if (!(cqe->flags & IORING_CQE_F_MORE))
					arm_accept(lfd);
				break;
			case OP_RECV:
				echoed += cqe->res > 0 ? cqe->res : 0;
				conns -= on_recv(cqe, (int)(ud >> 2));
				break;
			default:
				on_send(cqe, (struct send_op *)(uintptr_t)(ud & ~(uint64_t)3));
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	if (self_test > 0)
		pthread_join(t, NULL);
	zp_uring_bufring_destroy(br);
	close(lfd);
	io_uring_queue_exit(&ring);
	struct zp_stats st;
	zp_stats(pool, &st);
	printf(
	    "zp_uring_echo: %ld bytes echoed, %ld re-arms, %llu buffers outstanding, client %s\n",
	    echoed, rearms, (unsigned long long)st.outstanding,
	    atomic_load(&client_done) == 1 ? "ok" : "FAILED");
	zp_pool_destroy(pool);
	return atomic_load(&client_done) == 1 && st.outstanding == 0 ? 0 : 1;
}
