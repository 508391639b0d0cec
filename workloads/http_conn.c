/*
 * http_conn.c - a connection's request/response cycle, independent of the
 * I/O model: read into a read buffer, answer each complete request with a
 * response built in a buffer of its own, write it (a partial write waits for
 * writability), put the buffers back.
 *
 * Every buffer goes through wl_get/wl_put, so --backend picks the pool or
 * malloc for all of them.  --buffers per-connection takes the read buffer
 * when the connection opens and keeps it to the close (a 16 KiB buffer per
 * connection, what most servers do); --buffers pooled takes it for a read
 * and puts it back as soon as no unanswered byte is left in it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_server.h"

void hs_rbuf_count(hs_worker *w, int delta)
{
	zpp_add_relaxed(&w->rbuf_held, (uint64_t)(int64_t)delta);
	if (w->rbuf_held > w->rbuf_peak)
		zpp_add_relaxed(&w->rbuf_peak, w->rbuf_held - w->rbuf_peak);
}

static void rbuf_take(hs_worker *w, hs_conn *c)
{
	c->rb = wl_get(w->t, HS_RBUF_SIZE);
	c->has_rb = true;
	c->roff = c->rlen = 0;
	c->rcap = HS_RBUF_SIZE;
	hs_rbuf_count(w, 1);
}

static void rbuf_give(hs_worker *w, hs_conn *c)
{
	wl_put(w->t, c->rb);
	c->has_rb = false;
	hs_rbuf_count(w, -1);
}

/* Pooled mode: nothing unanswered is left, so the buffer goes back. */
static void rbuf_release_if_empty(hs_worker *w, hs_conn *c)
{
	if (c->has_rb && c->roff == c->rlen && w->srv->buffers == HS_BUF_POOLED)
		rbuf_give(w, c);
}

hs_conn *hs_conn_open(hs_worker *w, int fd)
{
	hs_conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	LIST_INSERT_HEAD(&w->conns, c, link);
	zpp_add_relaxed(&w->accepted, 1);
	zpp_add_relaxed(&w->open, 1);
	if (w->srv->buffers == HS_BUF_PER_CONN)
		rbuf_take(w, c);
	return c;
}

void hs_conn_close(hs_worker *w, hs_conn *c)
{
	if (c->has_rb)
		rbuf_give(w, c);
	if (c->has_wb)
		wl_put(w->t, c->wb);
	c->has_rb = c->has_wb = false;
	LIST_REMOVE(c, link);
	zpp_add_relaxed(&w->open, (uint64_t)-1);
	w->srv->io->close(w, c);
}

/* The response in c->wb is written in full. */
static void response_done(hs_worker *w, hs_conn *c)
{
	wl_put(w->t, c->wb);
	c->has_wb = false;
	zpp_add_relaxed(&w->requests, 1);
}

/* Send what is left of the response through the I/O model; close c when
 * that failed, or when the response is out and ends the connection
 * (close_after).  Returns 1 when it is all written, 0 when the rest waits,
 * -1 when c was closed. */
static int flush(hs_worker *w, hs_conn *c)
{
	int done = w->srv->io->send(w, c);

	if (done > 0)
		response_done(w, c);
	if (done < 0 || (done > 0 && c->close_after)) {
		hs_conn_close(w, c);
		return -1;
	}
	return done;
}

/* Answer the complete requests in the read buffer, one at a time (a client
 * may pipeline them), until one's response waits for writability.  Returns
 * false when the connection was closed. */
static bool answer(hs_worker *w, hs_conn *c)
{
	while (c->has_rb && !c->has_wb) {
		hs_request req;
		hs_parse_result r = hs_parse_request(c->rb.data + c->roff, c->rlen - c->roff, &req);
		char head[HS_HEAD_MAX];
		size_t hlen;

		if (r == HS_REQ_INCOMPLETE) {
			if (c->rlen - c->roff == HS_RBUF_SIZE) {
				r = HS_REQ_BAD; /* a request longer than a buffer */
				req.length = HS_RBUF_SIZE;
			} else {
				break;
			}
		}
		if (r == HS_REQ_NOT_FOUND)
			zpp_add_relaxed(&w->not_found, 1);
		else if (r == HS_REQ_BAD)
			zpp_add_relaxed(&w->bad, 1);
		c->roff += req.length;
		c->close_after = !req.keep_alive;

		hlen = hs_format_head(head, r, req.body_size, req.keep_alive);
		c->wlen = hlen + req.body_size;
		c->wb = wl_get(w->t, c->wlen);
		c->has_wb = true;
		c->woff = 0;
		memcpy(c->wb.data, head, hlen);
		memset(c->wb.data + hlen, HS_BODY_BYTE, req.body_size);
		/* Nothing unanswered: the read buffer goes back before the write. */
		rbuf_release_if_empty(w, c);
		if (flush(w, c) < 0)
			return false;
	}
	if (c->has_rb && c->roff == c->rlen)
		c->roff = c->rlen = 0;
	return true;
}

/* A partial request after answered ones: to the front. */
static void rbuf_compact(hs_conn *c)
{
	if (c->roff > 0) {
		memmove(c->rb.data, c->rb.data + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
}

bool hs_conn_readable(hs_worker *w, hs_conn *c)
{
	ssize_t n;

	if (c->has_wb)
		return true; /* answer the pending response first */
	if (!c->has_rb)
		rbuf_take(w, c);
	rbuf_compact(c);
	do
		n = read(c->fd, c->rb.data + c->rlen, c->rcap - c->rlen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		rbuf_release_if_empty(w, c);
		return true;
	}
	if (n <= 0) { /* closed by the peer, or an error */
		hs_conn_close(w, c);
		return false;
	}
	c->rlen += (size_t)n;
	return answer(w, c);
}

bool hs_conn_feed(hs_worker *w, hs_conn *c, wl_buf *in, size_t *off)
{
	size_t k;

	if (!c->has_rb && *off == 0) { /* the common case: no copy */
		c->rb = *in;
		c->has_rb = true;
		c->roff = 0;
		c->rlen = in->len;
		c->rcap = in->len;
		in->data = NULL;
		return answer(w, c);
	}
	if (!c->has_rb) {
		rbuf_take(w, c);
	} else if (c->rcap < HS_RBUF_SIZE) { /* a request split over buffers */
		wl_buf small = c->rb;

		c->rb = wl_get(w->t, HS_RBUF_SIZE);
		c->rcap = HS_RBUF_SIZE;
		memcpy(c->rb.data, small.data + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
		wl_put(w->t, small);
	}
	rbuf_compact(c);
	k = in->len - *off;
	if (k > c->rcap - c->rlen)
		k = c->rcap - c->rlen;
	memcpy(c->rb.data + c->rlen, in->data + *off, k);
	c->rlen += k;
	*off += k;
	return answer(w, c);
}

bool hs_conn_writable(hs_worker *w, hs_conn *c)
{
	int done;

	if (!c->has_wb)
		return true;
	done = flush(w, c);
	if (done < 0)
		return false;
	if (done == 0 || !c->has_rb)
		return true;
	return answer(w, c); /* pipelined requests that waited */
}
