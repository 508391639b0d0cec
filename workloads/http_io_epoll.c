/*
 * http_io_epoll.c - the epoll I/O model: one epoll instance per worker,
 * watching the worker's own SO_REUSEPORT listener and its connections.
 *
 * Level-triggered, one read per readiness: a read that fills a request is
 * answered at once, and a connection with nothing to read costs no read
 * call.  Edge-triggered epoll would have to read until EAGAIN, one more
 * read(2) per request, and in pooled mode one more get/put for a buffer
 * that stays empty.  A connection waits for EPOLLIN, or for EPOLLOUT alone
 * while a response is partly written (no new request is read before the
 * previous answer is out: the client's own window is the backpressure).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_server.h"

#define EVENTS 64
#define WAIT_MS 50 /* how often a worker looks at the stop flag */
#define ACCEPTS_PER_WAKEUP 64

static void add(hs_worker *w, int fd, void *ptr)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		wl_die("epoll_ctl ADD: %s", strerror(errno));
}

/* c->want_out changed: EPOLLIN <-> EPOLLOUT. */
static void interest(hs_worker *w, hs_conn *c)
{
	struct epoll_event ev = {.events = c->want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};

	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		wl_die("epoll_ctl MOD: %s", strerror(errno));
}

/* write(2) until the response is out or the socket is full. */
static int send_rest(hs_worker *w, hs_conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wb.data + c->woff, c->wlen - c->woff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->want_out) {
					zpp_add_relaxed(&w->partial, 1);
					c->want_out = true;
					interest(w, c);
				}
				return 0;
			}
			return -1;
		}
		c->woff += (size_t)n;
	}
	if (c->want_out) {
		c->want_out = false;
		interest(w, c);
	}
	return 1;
}

/* The kernel drops a closed descriptor from the epoll set. */
static void close_conn(hs_worker *w, hs_conn *c)
{
	(void)w;
	close(c->fd);
	free(c);
}

static void accept_some(hs_worker *w)
{
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		hs_conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				wl_die("accept4: %s (raise the fd limit?)", strerror(errno));
			return;
		}
		c = hs_conn_open(w, fd);
		if (c == NULL)
			wl_die("out of memory for a connection");
		add(w, fd, c);
	}
}

static void run(hs_worker *w)
{
	struct epoll_event evs[EVENTS];

	int fl = fcntl(w->lfd, F_GETFL);

	/* accept_some() accepts until EAGAIN. */
	if (fl < 0 || fcntl(w->lfd, F_SETFL, fl | O_NONBLOCK) != 0)
		wl_die("fcntl: %s", strerror(errno));
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		wl_die("epoll_create1: %s", strerror(errno));
	add(w, w->lfd, NULL);

	while (!hs_stopping()) {
		int n = epoll_wait(w->epfd, evs, EVENTS, WAIT_MS);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			wl_die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			hs_conn *c = evs[i].data.ptr;
			uint32_t e = evs[i].events;

			if (c == NULL) {
				accept_some(w);
				continue;
			}
			if ((e & EPOLLOUT) || (c->want_out && (e & (EPOLLHUP | EPOLLERR)))) {
				/* a write to a broken connection fails and closes it */
				hs_conn_writable(w, c);
			} else if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				/* read() sees the end or the error and closes */
				hs_conn_readable(w, c);
			}
		}
	}

	while (!LIST_EMPTY(&w->conns))
		hs_conn_close(w, LIST_FIRST(&w->conns));
	close(w->epfd);
	w->epfd = -1;
}

const hs_io_ops hs_io_epoll = {.name = "epoll", .run = run, .send = send_rest, .close = close_conn};
