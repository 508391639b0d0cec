/*
 * http_io_uring.c - the io_uring I/O model (--io uring): one io_uring and one
 * provided-buffer ring (zeropool_uring.h) per worker, fed from the pool.
 *
 * A multishot accept on the worker's own listener; per connection one
 * multishot recv that selects its buffers from the ring, so an idle
 * connection holds no read buffer at all (its armed recv is a poll entry in
 * the kernel).  Each completion's buffer is claimed and queued on the
 * connection; the connection code (http_conn.c) takes it as its read buffer
 * without a copy, parses and answers it, and puts it back to the pool once
 * nothing unanswered is left in it.  A request split over two buffers is
 * copied into a 16 KiB read buffer of the pool.  A response is written with
 * a send SQE from its pooled buffer; a short send is sent on from where it
 * stopped.  While a response is out, what arrives waits in the queue (no
 * new request is answered before the previous answer is out).
 *
 * A multishot recv that ends (no IORING_CQE_F_MORE) for want of buffers
 * (-ENOBUFS) is re-armed after the ring is replenished; res 0 or another
 * error is the end of the connection.  A closed connection is shut down
 * (its recv ends, a send fails) and freed when its last request in the
 * kernel has completed.
 *
 * The ring's buffers are the pool's: their gets and puts are counted in the
 * worker's counters like any wl_get/wl_put (a fill of the ring is a get, a
 * put of a claimed buffer or the ring's destroy a put), so the driver's
 * gets == puts and the pool's statistics agree.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_server.h"
#include "zeropool_uring.h"

#define SQ_DEPTH 256
#define CQ_DEPTH 4096
#define WAIT_NS (50 * 1000 * 1000) /* how often a worker looks at the stop flag */
#define RX_MAX 1024                /* queued buffers a connection may hold: then closed */

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2, OP_CANCEL = 3 };
#define UD(ptr, op) ((uint64_t)(uintptr_t)(ptr) | (op))

typedef struct uring_worker {
	struct io_uring ring;
	zp_uring_bufring *br;
	hs_worker *w;
	uint64_t live; /* connections not freed yet, closed ones included */
} uring_worker;

/* Buffers that the ring took from the pool count as the worker's gets. */
static void count_gets(hs_worker *w, unsigned n)
{
	w->t->gets += n;
	w->t->bytes += (uint64_t)n * HS_RING_BUF_SIZE;
}

static struct io_uring_sqe *sqe_get(uring_worker *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (sqe == NULL) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
		if (sqe == NULL)
			wl_die("io_uring: no submission queue entry");
	}
	return sqe;
}

static void arm_accept(uring_worker *u)
{
	struct io_uring_sqe *sqe = sqe_get(u);

	io_uring_prep_multishot_accept(sqe, u->w->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(NULL, OP_ACCEPT));
}

static void arm_recv(uring_worker *u, hs_conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(u);

	zp_uring_prep_recv_multishot(u->br, sqe, c->fd);
	io_uring_sqe_set_data64(sqe, UD(c, OP_RECV));
	c->recv_armed = true;
	c->inflight++;
}

static void replenish(uring_worker *u)
{
	int n = zp_uring_bufring_replenish(u->br);

	if (n > 0) /* ENOMEM: the re-armed recv ends again, and retries */
		count_gets(u->w, (unsigned)n);
}

static zp_buf *claim(uring_worker *u, const struct io_uring_cqe *cqe)
{
	unsigned before = zp_uring_bufring_held(u->br);
	zp_buf *b = zp_uring_bufring_claim(u->br, cqe);

	if (b == NULL)
		wl_die("zp_uring_bufring_claim: %s", strerror(errno));
	count_gets(u->w, zp_uring_bufring_held(u->br) + 1 - before); /* its refill */
	return b;
}

/* Put every queued buffer the connection has not taken. */
static void rx_drop(hs_worker *w, hs_conn *c)
{
	for (unsigned i = 0; i < c->rxn; i++)
		if (c->rxq[i].b.data != NULL) {
			wl_put(w->t, c->rxq[i].b);
			hs_rbuf_count(w, -1);
		}
	c->rxn = 0;
}

static void free_conn(uring_worker *u, hs_conn *c)
{
	close(c->fd);
	free(c->rxq);
	free(c);
	u->live--;
}

/* hs_io_ops.close: freed now, or once the kernel is done with it. */
static void close_conn(hs_worker *w, hs_conn *c)
{
	uring_worker *u = w->io;

	rx_drop(w, c);
	c->dead = true;
	if (c->inflight == 0) {
		free_conn(u, c);
		return;
	}
	/* The recv ends with res 0, a send fails or is cancelled. */
	shutdown(c->fd, SHUT_RDWR);
	struct io_uring_sqe *sqe = sqe_get(u);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD(NULL, OP_CANCEL));
}

/* hs_io_ops.send: one send SQE for the rest of the response. */
static int send_rest(hs_worker *w, hs_conn *c)
{
	uring_worker *u = w->io;
	struct io_uring_sqe *sqe;

	if (c->woff == c->wlen) {
		c->want_out = false;
		return 1;
	}
	sqe = sqe_get(u);
	io_uring_prep_send(sqe, c->fd, c->wb.data + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(c, OP_SEND));
	c->inflight++;
	return 0;
}

/* Feed the queued buffers to the parser while no response is out; at the
 * end of the stream, close.  Returns false when c was closed. */
static bool pump(uring_worker *u, hs_conn *c)
{
	hs_worker *w = u->w;

	while (c->rxn > 0 && !c->has_wb) {
		hs_rx *rx = &c->rxq[0];

		if (!hs_conn_feed(w, c, &rx->b, &rx->off))
			return false;
		if (rx->b.data == NULL || rx->off == rx->b.len) {
			if (rx->b.data != NULL) {
				wl_put(w->t, rx->b);
				hs_rbuf_count(w, -1);
			}
			c->rxn--;
			memmove(c->rxq, c->rxq + 1, c->rxn * sizeof(*c->rxq));
		}
	}
	if (c->eof && !c->has_wb) {
		hs_conn_close(w, c);
		return false;
	}
	return true;
}

static void rx_push(uring_worker *u, hs_conn *c, zp_buf *b)
{
	hs_worker *w = u->w;
	wl_buf in = {.data = b->data, .len = b->len, .zb = b};

	if (c->rxn == c->rxcap) {
		unsigned cap = c->rxcap != 0 ? 2 * c->rxcap : 4;
		hs_rx *q = realloc(c->rxq, cap * sizeof(*q));

		if (q == NULL)
			wl_die("out of memory for a connection's queue");
		c->rxq = q;
		c->rxcap = cap;
	}
	c->rxq[c->rxn++] = (hs_rx){.b = in, .off = 0};
	hs_rbuf_count(w, 1);
}

static void on_recv(uring_worker *u, hs_conn *c, const struct io_uring_cqe *cqe)
{
	hs_worker *w = u->w;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		zp_buf *b = claim(u, cqe);

		if (c->dead || b->len == 0)
			wl_put(w->t, (wl_buf){.data = b->data, .len = b->len, .zb = b});
		else
			rx_push(u, c, b);
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		c->recv_armed = false;
		c->inflight--;
		if (c->dead) {
			if (c->inflight == 0)
				free_conn(u, c);
			return;
		}
		if (cqe->res == -ENOBUFS || (cqe->res > 0 && !hs_stopping())) {
			replenish(u);
			arm_recv(u, c);
			zpp_add_relaxed(&w->rearms, 1);
		} else {
			c->eof = true; /* res 0: the peer closed; or an error */
		}
	}
	if (c->dead)
		return;
	if (c->rxn > RX_MAX) { /* a client that sends and never reads */
		hs_conn_close(w, c);
		return;
	}
	pump(u, c);
}

static void on_send(uring_worker *u, hs_conn *c, const struct io_uring_cqe *cqe)
{
	hs_worker *w = u->w;

	c->inflight--;
	if (c->dead) {
		if (c->inflight == 0)
			free_conn(u, c);
		return;
	}
	if (cqe->res <= 0) { /* EPIPE, ECONNRESET, ECANCELED */
		hs_conn_close(w, c);
		return;
	}
	c->woff += (size_t)cqe->res;
	if (c->woff < c->wlen && !c->want_out) {
		c->want_out = true; /* counted once per response, as epoll does */
		zpp_add_relaxed(&w->partial, 1);
	}
	if (hs_conn_writable(w, c))
		pump(u, c); /* the bytes that waited for the answer */
}

static void on_accept(uring_worker *u, const struct io_uring_cqe *cqe)
{
	hs_worker *w = u->w;

	if (cqe->res >= 0) {
		if (hs_stopping()) {
			close(cqe->res);
		} else {
			hs_conn *c = hs_conn_open(w, cqe->res);

			if (c == NULL)
				wl_die("out of memory for a connection");
			u->live++;
			arm_recv(u, c);
		}
	} else if (cqe->res == -EMFILE || cqe->res == -ENFILE) {
		wl_die("accept: %s (raise the fd limit?)", strerror(-cqe->res));
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && !hs_stopping())
		arm_accept(u);
}

/* Submit, wait up to WAIT_NS for a completion, handle every one there is. */
static void reap(uring_worker *u)
{
	struct __kernel_timespec ts = {.tv_nsec = WAIT_NS};
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);

	if (rc < 0 && rc != -ETIME && rc != -EINTR)
		wl_die("io_uring_submit_and_wait_timeout: %s", strerror(-rc));
	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		hs_conn *c = (hs_conn *)(uintptr_t)(ud & ~(uint64_t)3);

		seen++;
		switch (ud & 3) {
		case OP_ACCEPT:
			on_accept(u, cqe);
			break;
		case OP_RECV:
			on_recv(u, c, cqe);
			break;
		case OP_SEND:
			on_send(u, c, cqe);
			break;
		default: /* a cancel's own completion */
			break;
		}
	}
	io_uring_cq_advance(&u->ring, seen);
}

static void run(hs_worker *w)
{
	uring_worker u = {.w = w};
	/* One thread submits and reaps: completions' task work runs when it
	 * waits (DEFER_TASKRUN, kernel 6.1), not as interrupts of its work.
	 * An older kernel refuses the flags (EINVAL): plain then. */
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
					     IORING_SETUP_DEFER_TASKRUN,
				    .cq_entries = CQ_DEPTH};
	int rc = io_uring_queue_init_params(SQ_DEPTH, &u.ring, &p);
	int fl = fcntl(w->lfd, F_GETFL);

	if (rc == -EINVAL) {
		p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_DEPTH};
		rc = io_uring_queue_init_params(SQ_DEPTH, &u.ring, &p);
	}
	if (rc < 0)
		wl_die("io_uring_queue_init: %s", strerror(-rc));
	(void)io_uring_register_ring_fd(&u.ring); /* io_uring_enter skips the fd lookup */
	u.br =
	    zp_uring_bufring_create(&u.ring, w->t->pool, 0, HS_RING_ENTRIES, HS_RING_BUF_SIZE, 0);
	if (u.br == NULL)
		wl_die("zp_uring_bufring_create: %s", strerror(errno));
	count_gets(w, zp_uring_bufring_held(u.br));
	w->io = &u;
	/* io_uring waits on the listener itself: a non-blocking one may answer
	 * EAGAIN instead of arming a poll. */
	if (fl < 0 || fcntl(w->lfd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		wl_die("fcntl: %s", strerror(errno));
	arm_accept(&u);

	while (!hs_stopping())
		reap(&u);

	/* Shut every connection down; each closes as its requests end. */
	for (hs_conn *c = LIST_FIRST(&w->conns); c != NULL; c = LIST_NEXT(c, link)) {
		shutdown(c->fd, SHUT_RDWR);
		struct io_uring_sqe *sqe = sqe_get(&u);
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, UD(NULL, OP_CANCEL));
	}
	while (u.live > 0)
		reap(&u);

	w->t->puts += zp_uring_bufring_held(u.br); /* destroy puts them */
	zp_uring_bufring_destroy(u.br);
	io_uring_queue_exit(&u.ring);
	w->io = NULL;
}

void hs_io_uring_probe(void)
{
	struct io_uring ring;
	int rc = getenv("ZP_WL_REFUSE_URING") != NULL ? -EPERM : io_uring_queue_init(4, &ring, 0);

	if (rc < 0) {
		fprintf(stderr, "io_uring refused: io_uring_queue_init: %s%s\n", strerror(-rc),
			getenv("ZP_WL_REFUSE_URING") != NULL ? " (ZP_WL_REFUSE_URING)" : "");
		exit(77);
	}
	io_uring_queue_exit(&ring);
}

const hs_io_ops hs_io_uring = {.name = "uring", .run = run, .send = send_rest, .close = close_conn};
