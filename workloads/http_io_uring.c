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
 * Back-pressure: a connection whose queue reaches RX_HIGH buffers is paused
 * (its multishot recv cancelled; what the kernel had received meanwhile
 * still arrives, in order, before the final CQE) and re-armed once the
 * queue drains to RX_LOW.  The data waits in the socket meanwhile, and TCP
 * slows the client down.
 *
 * Starvation: when a recv ends with -ENOBUFS and the ring is still empty
 * after a replenish (the pool refused, or --ring-budget is spent), the
 * connection is parked instead of re-armed (a recv on an empty ring ends at
 * once: a loop that would burn the CPU).  Parked connections are re-armed,
 * first come first served and no more than the ring holds, when a retry
 * fills the ring: after a batch of completions in which read buffers came
 * back, or every RETRY_NS otherwise (the worker's wait is that short while
 * any connection is parked).
 *
 * The ring's buffers are the pool's: their gets and puts are counted in the
 * worker's counters like any wl_get/wl_put (a fill of the ring is a get, a
 * put of a claimed buffer or the ring's destroy a put), so the driver's
 * gets == puts and the pool's statistics agree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_server.h"
#include "wl_uring.h"
#include "zeropool_uring.h"

#define SQ_DEPTH 256
#define CQ_DEPTH 4096
#define WAIT_NS (50 * 1000 * 1000)  /* how often a worker looks at the stop flag */
#define RETRY_NS (10 * 1000 * 1000) /* refill retries while connections are parked */
/*
 * Back-pressure marks, in queued buffers (of HS_RING_BUF_SIZE, 4 KiB):
 * pause at 64 (256 KiB: twice a socket's default receive buffer, so a
 * client that pipelines keeps the server busy while a response is out),
 * resume at 16 (64 KiB still queued, so the parser does not run dry during
 * the re-arm's round trip; the gap of 48 keeps a steady client from costing
 * a cancel and a re-arm per buffer).  A paused connection holds at most
 * RX_HIGH plus what the kernel received before the cancel took effect,
 * which is bounded by the ring (HS_RING_ENTRIES buffers).
 */
#define RX_HIGH 64
#define RX_LOW 16

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2, OP_CANCEL = 3 };
#define UD(ptr, op) ((uint64_t)(uintptr_t)(ptr) | (op))

typedef struct uring_worker {
	struct io_uring ring;
	zp_uring_bufring *br;
	hs_worker *w;
	uint64_t live; /* connections not freed yet, closed ones included */
	TAILQ_HEAD(hs_park_list, hs_conn) parked; /* waiting for buffers, FIFO */
	uint64_t starved_t0, starved_cpu0;        /* since the list is not empty */
	uint64_t retry_t;                         /* the last refill retry */
	uint64_t retry_rbuf;                      /* rbuf_held at that retry */
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

/* --ring-budget: the ring may fill what the budget leaves after the read
 * buffers the worker holds, and `reserve` about to be claimed. */
static void budget_sync(uring_worker *u, unsigned reserve)
{
	uint64_t budget = u->w->srv->ring_budget;
	uint64_t held = u->w->rbuf_held + reserve;
	uint64_t room = held >= budget ? 0 : budget - held;

	if (budget != 0)
		zp_uring_bufring_set_limit(u->br, room > u->w->srv->ring_entries
						      ? u->w->srv->ring_entries
						      : (unsigned)room);
}

/* Fill the ring; returns the buffers it holds now (0: a recv would end at
 * once with -ENOBUFS). */
static unsigned replenish(uring_worker *u)
{
	int n;

	budget_sync(u, 0);
	n = zp_uring_bufring_replenish(u->br);
	if (n > 0) /* -1 ENOMEM (the pool refused) or 0 (budget): held says */
		count_gets(u->w, (unsigned)n);
	return zp_uring_bufring_held(u->br);
}

static zp_buf *claim(uring_worker *u, const struct io_uring_cqe *cqe)
{
	unsigned before = zp_uring_bufring_held(u->br);
	zp_buf *b;

	budget_sync(u, 1);
	b = zp_uring_bufring_claim(u->br, cqe);
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

/* ---- starvation: connections that wait for the ring to have buffers ---- */

static void park(uring_worker *u, hs_conn *c)
{
	if (TAILQ_EMPTY(&u->parked)) {
		u->starved_t0 = zpp_now_ns();
		u->starved_cpu0 = zpp_thread_cpu_ns();
		u->retry_t = u->starved_t0;
		u->retry_rbuf = u->w->rbuf_held;
	}
	TAILQ_INSERT_TAIL(&u->parked, c, park_link);
	c->parked = true;
	zpp_add_relaxed(&u->w->starved, 1);
}

static void unpark(uring_worker *u, hs_conn *c)
{
	hs_worker *w = u->w;

	TAILQ_REMOVE(&u->parked, c, park_link);
	c->parked = false;
	if (TAILQ_EMPTY(&u->parked)) {
		zpp_add_relaxed(&w->starved_us, (zpp_now_ns() - u->starved_t0) / 1000);
		zpp_add_relaxed(&w->starved_cpu_us, (zpp_thread_cpu_ns() - u->starved_cpu0) / 1000);
	}
}

/* c's recv ended and c wants more: re-arm it, unless it is paused (the
 * resume re-arms), or the ring has no buffer for it (park it). */
static void want_recv(uring_worker *u, hs_conn *c)
{
	if (c->paused || c->parked || c->recv_armed || c->eof || c->dead || hs_stopping())
		return;
	if (replenish(u) == 0) {
		park(u, c);
		return;
	}
	arm_recv(u, c);
	zpp_add_relaxed(&u->w->rearms, 1);
}

/* After a batch of completions: while connections are parked, try to fill
 * the ring if read buffers came back since the last try, or RETRY_NS
 * passed; re-arm as many parked connections as the ring has buffers. */
static void retry_parked(uring_worker *u)
{
	hs_worker *w = u->w;
	uint64_t now;
	unsigned n;

	if (TAILQ_EMPTY(&u->parked))
		return;
	now = zpp_now_ns();
	if (w->rbuf_held >= u->retry_rbuf && now - u->retry_t < RETRY_NS)
		return;
	u->retry_t = now;
	u->retry_rbuf = w->rbuf_held;
	zpp_add_relaxed(&w->starve_retries, 1);
	n = replenish(u);
	while (n-- > 0 && !TAILQ_EMPTY(&u->parked)) {
		hs_conn *c = TAILQ_FIRST(&u->parked);

		unpark(u, c);
		want_recv(u, c);
	}
}

/* ---- connections ---------------------------------------------------------- */

static void free_conn(uring_worker *u, hs_conn *c)
{
	close(c->fd);
	free(c->rxq);
	free(c);
	u->live--;
}

/* An operation of c's ended in the kernel: false when c is closed (and
 * freed with its last one), so that its completion has nothing to do. */
static bool op_ended(uring_worker *u, hs_conn *c)
{
	c->inflight--;
	if (!c->dead)
		return true;
	if (c->inflight == 0)
		free_conn(u, c);
	return false;
}

/* End what c has in the kernel: its recv ends with res 0, a send fails or
 * is cancelled; the last of them frees c (op_ended). */
static void shut(uring_worker *u, hs_conn *c)
{
	struct io_uring_sqe *sqe;

	shutdown(c->fd, SHUT_RDWR);
	sqe = sqe_get(u);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD(NULL, OP_CANCEL));
}

/* hs_io_ops.close: freed now, or once the kernel is done with it. */
static void close_conn(hs_worker *w, hs_conn *c)
{
	uring_worker *u = w->io;

	rx_drop(w, c);
	c->dead = true;
	if (c->parked)
		unpark(u, c);
	if (c->inflight == 0)
		free_conn(u, c);
	else
		shut(u, c);
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
	if (c->paused && c->rxn <= RX_LOW) {
		c->paused = false;
		zpp_add_relaxed(&w->resumes, 1);
		want_recv(u, c); /* or, if the cancelled recv has not ended yet, its end */
	}
	return true;
}

/* Stop receiving for c: cancel its multishot recv (the kernel may still
 * deliver what it received before the cancel, then the recv's last CQE,
 * -ECANCELED or another end, which does not re-arm while paused). */
static void pause_recv(uring_worker *u, hs_conn *c, bool recv_goes_on)
{
	c->paused = true;
	zpp_add_relaxed(&u->w->pauses, 1);
	if (recv_goes_on) {
		struct io_uring_sqe *sqe = sqe_get(u);

		io_uring_prep_cancel64(sqe, UD(c, OP_RECV), 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, OP_CANCEL));
	}
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
	if (c->rxn > w->rxq_peak)
		zpp_add_relaxed(&w->rxq_peak, c->rxn - w->rxq_peak);
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
	if (!c->dead && !c->paused && c->rxn >= RX_HIGH)
		pause_recv(u, c, (cqe->flags & IORING_CQE_F_MORE) != 0);
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		c->recv_armed = false;
		if (!op_ended(u, c))
			return;
		/* More to come: out of buffers, cancelled by a pause, or a recv
		 * that stopped with data; res 0 is the peer's close. */
		if (!hs_stopping() &&
		    (cqe->res > 0 || cqe->res == -ENOBUFS || cqe->res == -ECANCELED))
			want_recv(u, c);
		else
			c->eof = true;
	}
	if (c->dead)
		return;
	pump(u, c);
}

static void on_send(uring_worker *u, hs_conn *c, const struct io_uring_cqe *cqe)
{
	hs_worker *w = u->w;

	if (!op_ended(u, c))
		return;
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
	struct __kernel_timespec ts = {.tv_nsec = TAILQ_EMPTY(&u->parked) ? WAIT_NS : RETRY_NS};
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
	retry_parked(u);
}

static void run(hs_worker *w)
{
	uring_worker u = {.w = w};
	hs_conn *next;
	int rc = wl_uring_setup(&u.ring, SQ_DEPTH, CQ_DEPTH);

	if (rc < 0)
		wl_die("io_uring_queue_init: %s", strerror(-rc));
	u.br = zp_uring_bufring_create(&u.ring, w->t->pool, 0, w->srv->ring_entries,
				       HS_RING_BUF_SIZE, 0);
	if (u.br == NULL)
		wl_die("zp_uring_bufring_create: %s", strerror(errno));
	count_gets(w, zp_uring_bufring_held(u.br));
	TAILQ_INIT(&u.parked);
	w->io = &u;
	arm_accept(&u); /* on a blocking listener: a non-blocking one may answer
			 * EAGAIN instead of arming a poll */

	while (!hs_stopping())
		reap(&u);

	/* Shut every connection down; each closes as its requests end, or now
	 * if it has none in the kernel (paused or parked, nothing to send). */
	for (hs_conn *c = LIST_FIRST(&w->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->inflight == 0)
			hs_conn_close(w, c);
		else
			shut(&u, c);
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
	int rc = wl_uring_setup(&ring, 4, 0);
	char why[160];

	if (rc < 0) {
		fprintf(stderr, "%s\n", wl_uring_refusal(why, sizeof(why), rc));
		exit(77);
	}
	io_uring_queue_exit(&ring);
}

const hs_io_ops hs_io_uring = {.name = "uring", .run = run, .send = send_rest, .close = close_conn};
