/*
 * http_client.c - the driver's own clients, on blocking loopback sockets
 * with a 10 s timeout on every send and receive:
 *
 *   --self-test N: N requests of each size (64 B, 4 KiB, 64 KiB) round robin
 *   over 4 keep-alive connections, then two pipelined requests in one
 *   write, 96 pipelined 64 KiB ones on a connection with a 4 KiB receive
 *   window (partial writes), 404s and two 400s; every status line,
 *   Content-Length and body is checked.
 *
 *   --self-test-flood BYTES: one connection pipelines BYTES of requests (of
 *   1-4 KiB each, padded with a header, for 4-8 KiB answers whose
 *   Content-Length tells them apart) without reading: it sends until the
 *   socket takes no more for FLOOD_BLOCKED_MS (the server stopped
 *   receiving), then reads every response that arrives, checking each in
 *   order, and goes on sending; at the end it reads the rest.  A server
 *   that drops, reorders or closes fails it.
 *
 *   --idle-conns N: in a child process (so that the server's resident set
 *   and descriptors are its own), N keep-alive connections held open, one
 *   request on every IDLE_SAMPLE-th of them; then it writes a byte to the
 *   "ready" pipe and waits for one (or EOF) on the "release" pipe before
 *   closing them all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_server.h"

#define CLIENT_TIMEOUT_S 10
#define CLIENT_BUF (HS_BODY_MAX + 4 * WL_KIB) /* one response and some of the next */
#define IDLE_SAMPLE 16

static const size_t SIZES[] = {64, 4096, 65536};

typedef struct cl_conn {
	int fd;
	unsigned char *buf;
	size_t len; /* bytes received and not yet consumed */
} cl_conn;

static void fail(hs_client *cl, const char *what, const char *detail)
{
	cl->failed++;
	if (cl->failed <= 10)
		fprintf(stderr, "self-test: %s%s%s\n", what, detail != NULL ? ": " : "",
			detail != NULL ? detail : "");
}

/* rcvbuf: 0, or a receive buffer size (set before connect, so that the
 * window is small from the start). */
static int connect_loopback(int port, int rcvbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((rcvbuf != 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Send all n bytes; a failure is one of cl's failed checks. */
static bool send_all(hs_client *cl, int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fail(cl, "send", k < 0 ? strerror(errno) : "sent nothing");
			return false;
		}
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Receive until `want` bytes are buffered; false on EOF, error or timeout. */
static bool fill(cl_conn *c, size_t want)
{
	while (c->len < want) {
		ssize_t k = recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		c->len += (size_t)k;
	}
	return true;
}

/*
 * Read one response and check it: the status code, a Content-Length equal
 * to `body` and that many HS_BODY_BYTE bytes.  The response is consumed;
 * what follows it stays buffered.
 */
static bool read_response(hs_client *cl, cl_conn *c, int status, size_t body)
{
	unsigned char *end;
	const char *cl_hdr;
	char want[32], head[512];
	size_t hlen, got;

	for (;;) {
		end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (end != NULL)
			break;
		if (c->len == CLIENT_BUF || !fill(c, c->len + 1)) {
			fail(cl, "no complete response header", strerror(errno));
			return false;
		}
	}
	hlen = (size_t)(end - c->buf) + 4;
	if (hlen >= sizeof(head)) {
		fail(cl, "response header too long", NULL);
		return false;
	}
	memcpy(head, c->buf, hlen);
	head[hlen] = '\0';
	snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
	cl_hdr = strstr(head, "Content-Length: ");
	if (strncmp(head, want, strlen(want)) != 0 || cl_hdr == NULL) {
		fail(cl, "unexpected response", head);
		return false;
	}
	got = strtoul(cl_hdr + 16, NULL, 10);
	if (got != body) {
		fail(cl, "wrong Content-Length", head);
		return false;
	}
	if (!fill(c, hlen + body)) {
		fail(cl, "short body", strerror(errno));
		return false;
	}
	for (size_t i = 0; i < body; i++)
		if (c->buf[hlen + i] != HS_BODY_BYTE) {
			fail(cl, "wrong body byte", NULL);
			return false;
		}
	c->len -= hlen + body;
	memmove(c->buf, c->buf + hlen + body, c->len);
	return true;
}

static bool request(hs_client *cl, cl_conn *c, const char *path, int status, size_t body)
{
	char req[128];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);

	if (!send_all(cl, c->fd, req, (size_t)n) || !read_response(cl, c, status, body))
		return false;
	cl->answers++;
	return true;
}

/* HS_RBUF_SIZE bytes of one request's header, never ended by a blank line. */
static bool send_endless(hs_client *cl, cl_conn *c)
{
	static const char line[] = "GET /64 HTTP/1.1\r\n";
	char *req = malloc(HS_RBUF_SIZE);
	bool ok;

	if (req == NULL)
		wl_die("self-test: out of memory");
	memset(req, 'a', HS_RBUF_SIZE);
	memcpy(req, line, sizeof(line) - 1);
	memcpy(req + sizeof(line) - 1, "X-Pad: ", 7);
	ok = send_all(cl, c->fd, req, HS_RBUF_SIZE);
	free(req);
	return ok;
}

#define SELF_TEST_CONNS 5 /* the last one has a small receive window */
#define SLOW_PIPELINED 96 /* 6 MiB: more than tcp_wmem's largest send buffer (4 MiB) */
#define SLOW_RCVBUF 4096

static void self_test(hs_client *cl)
{
	cl_conn cs[SELF_TEST_CONNS];
	char path[32];
	static const char pipelined[] = "GET /64 HTTP/1.1\r\nHost: a\r\n\r\n"
					"GET /4096 HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char bad[] = "BREW /64 HTTP/1.1\r\n\r\n";
	static const char big[] = "GET /65536 HTTP/1.1\r\n\r\n";

	for (unsigned i = 0; i < SELF_TEST_CONNS; i++) {
		cs[i].len = 0;
		cs[i].buf = malloc(CLIENT_BUF);
		cs[i].fd = connect_loopback(cl->port, i == SELF_TEST_CONNS - 1 ? SLOW_RCVBUF : 0);
		if (cs[i].buf == NULL || cs[i].fd < 0)
			wl_die("self-test: connect to 127.0.0.1:%d: %s", cl->port, strerror(errno));
	}
	for (size_t s = 0; s < sizeof(SIZES) / sizeof(SIZES[0]); s++) {
		snprintf(path, sizeof(path), "/%zu", SIZES[s]);
		for (uint64_t r = 0; r < cl->requests; r++)
			if (!request(cl, &cs[r % (SELF_TEST_CONNS - 1)], path, 200, SIZES[s]))
				goto out;
	}
	/* Two requests in one write: two responses, in order. */
	if (!send_all(cl, cs[0].fd, pipelined, sizeof(pipelined) - 1) ||
	    !read_response(cl, &cs[0], 200, 64) || !read_response(cl, &cs[0], 200, 4096))
		goto out;
	cl->answers += 2;
	/* 96 x 64 KiB answers into a 4 KiB window: the server's writes are
	 * partial and wait for EPOLLOUT (its partial_writes counts them). */
	for (int i = 0; i < SLOW_PIPELINED; i++)
		if (!send_all(cl, cs[4].fd, big, sizeof(big) - 1))
			goto out;
	nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	for (int i = 0; i < SLOW_PIPELINED; i++) {
		if (!read_response(cl, &cs[4], 200, 65536))
			goto out;
		cl->answers++;
	}
	/* Paths out of range: 404, and the connection stays open. */
	if (!request(cl, &cs[1], "/63", 404, 0) || !request(cl, &cs[1], "/65537", 404, 0) ||
	    !request(cl, &cs[1], "/abc", 404, 0) || !request(cl, &cs[1], "/128", 200, 128))
		goto out;
	/* Not a GET: 400, then the server closes the connection. */
	if (!send_all(cl, cs[2].fd, bad, sizeof(bad) - 1) || !read_response(cl, &cs[2], 400, 0))
		goto out;
	cl->answers++;
	if (fill(&cs[2], cs[2].len + 1)) {
		fail(cl, "the connection stayed open after a 400", NULL);
		goto out;
	}
	/* A request that fills the server's read buffer without ending: 400,
	 * with an empty body, then the server closes the connection. */
	if (!send_endless(cl, &cs[3]) || !read_response(cl, &cs[3], 400, 0))
		goto out;
	cl->answers++;
	if (fill(&cs[3], cs[3].len + 1))
		fail(cl, "the connection stayed open after a request longer than a buffer", NULL);
out:
	for (unsigned i = 0; i < SELF_TEST_CONNS; i++) {
		close(cs[i].fd);
		free(cs[i].buf);
	}
}

void *hs_self_test_client(void *arg)
{
	hs_client *cl = arg;

	self_test(cl);
	hs_request_stop();
	return NULL;
}

#define FLOOD_BLOCKED_MS 100 /* a send that waits this long: the server paused */
#define FLOOD_QUIET_MS 50    /* reading stops when nothing came for this long */
#define FLOOD_REQ_MAX 4096
#define FLOOD_SNDBUF (64 << 10)

/* The body size the i-th flood request asks for: 4096..8191, so that each
 * answer's Content-Length tells it from its neighbours. */
static size_t flood_body(uint64_t i)
{
	return 4096 + (size_t)(i * 2657 % 4096);
}

/* The i-th flood request, GET /flood_body(i) with a pad of 1000 + i*131 %
 * 3000 bytes (requests straddle the ring's 4 KiB buffers); its length. */
static size_t flood_request(char *dst, uint64_t i)
{
	size_t pad = 1000 + (size_t)(i * 131 % 3000);
	int n =
	    snprintf(dst, FLOOD_REQ_MAX, "GET /%zu HTTP/1.1\r\nHost: a\r\nX-Pad: ", flood_body(i));

	memset(dst + n, 'p', pad);
	memcpy(dst + n + pad, "\r\n\r\n", 4);
	return (size_t)n + pad + 4;
}

/* Whether fd becomes ready for `events` (POLLIN, POLLOUT) within ms. */
static bool fd_ready(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};

	return poll(&p, 1, ms) > 0;
}

static void flood(hs_client *cl)
{
	cl_conn c = {.buf = malloc(CLIENT_BUF)};
	char *req = malloc(FLOOD_REQ_MAX);
	uint64_t nreq = 0, nresp = 0, bytes = 0;
	size_t len = 0, off = 0;

	c.fd = connect_loopback(cl->port, 0);
	/* A fixed send buffer: the socket stops taking requests soon after the
	 * server stops receiving, whatever tcp_wmem lets autotuning reach. */
	if (c.fd >= 0 &&
	    setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &(int){FLOOD_SNDBUF}, sizeof(int)) != 0)
		wl_die("flood: SO_SNDBUF: %s", strerror(errno));
	if (c.buf == NULL || req == NULL || c.fd < 0)
		wl_die("flood: connect to 127.0.0.1:%d: %s", cl->port, strerror(errno));
	while (bytes < cl->flood_bytes || off < len) {
		if (off == len) {
			len = flood_request(req, nreq++);
			off = 0;
		}
		ssize_t k = send(c.fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k > 0) {
			off += (size_t)k;
			bytes += (uint64_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			fail(cl, "flood: send", strerror(errno));
			goto out;
		}
		if (fd_ready(c.fd, POLLOUT, FLOOD_BLOCKED_MS))
			continue;
		/* Blocked: read what the server answered, in order. */
		while (nresp < nreq && fd_ready(c.fd, POLLIN, FLOOD_QUIET_MS)) {
			if (!read_response(cl, &c, 200, flood_body(nresp)))
				goto out;
			nresp++;
		}
	}
	while (nresp < nreq) {
		if (!read_response(cl, &c, 200, flood_body(nresp)))
			goto out;
		nresp++;
	}
	/* Nothing more than asked for. */
	if (c.len != 0 || fd_ready(c.fd, POLLIN, FLOOD_QUIET_MS))
		fail(cl, "flood: bytes after the last response", NULL);
out:
	cl->answers += nresp;
	close(c.fd);
	free(c.buf);
	free(req);
}

void *hs_flood_client(void *arg)
{
	hs_client *cl = arg;

	flood(cl);
	hs_request_stop();
	return NULL;
}

/* The child's work; returns its exit status. */
static int idle_client(hs_client *cl, int ready_fd, int release_fd)
{
	int *fds = malloc(cl->conns * sizeof(*fds));
	cl_conn c = {.buf = malloc(CLIENT_BUF)};
	char byte = 'r';
	ssize_t k;

	if (fds == NULL || c.buf == NULL)
		wl_die("idle client: out of memory");
	for (unsigned i = 0; i < cl->conns; i++) {
		fds[i] = connect_loopback(cl->port, 0);
		if (fds[i] < 0)
			wl_die("idle client: connection %u to 127.0.0.1:%d: %s", i, cl->port,
			       strerror(errno));
	}
	for (unsigned i = 0; i < cl->conns; i += IDLE_SAMPLE) {
		c.fd = fds[i];
		c.len = 0;
		if (!request(cl, &c, "/64", 200, 64))
			break;
	}
	if (cl->failed == 0 && write(ready_fd, &byte, 1) != 1)
		wl_die("idle client: write: %s", strerror(errno));
	/* A byte from the server, or EOF when it ends. */
	do
		k = read(release_fd, &byte, 1);
	while (k < 0 && errno == EINTR);
	for (unsigned i = 0; i < cl->conns; i++)
		close(fds[i]);
	free(fds);
	free(c.buf);
	return cl->failed == 0 ? WL_EXIT_OK : WL_EXIT_FAIL;
}

/* Fork the idle client before any thread exists (the child runs only
 * socket calls, and _exits). */
void hs_idle_start(hs_idle_child *ic, const hs_worker *ws, unsigned n, int port, unsigned conns)
{
	int ready[2], release[2];

	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(release, O_CLOEXEC) != 0)
		wl_die("pipe2: %s", strerror(errno));
	fflush(NULL);
	ic->pid = fork();
	if (ic->pid < 0)
		wl_die("fork: %s", strerror(errno));
	if (ic->pid == 0) {
		hs_client cl = {.port = port, .conns = conns};

		for (unsigned i = 0; i < n; i++)
			close(ws[i].lfd);
		close(ready[0]);
		close(release[1]);
		_exit(idle_client(&cl, ready[1], release[0]));
	}
	close(ready[1]);
	close(release[0]);
	ic->ready_fd = ready[0];
	ic->release_fd = release[1];
	if (fcntl(ic->ready_fd, F_SETFL, O_NONBLOCK) != 0)
		wl_die("fcntl: %s", strerror(errno));
}

/* Release the child and wait for it; false if it failed. */
bool hs_idle_finish(hs_idle_child *ic)
{
	char byte = 'x';
	int st;

	if (write(ic->release_fd, &byte, 1) != 1 && errno != EPIPE)
		wl_die("write: %s", strerror(errno));
	close(ic->release_fd);
	close(ic->ready_fd);
	if (waitpid(ic->pid, &st, 0) != ic->pid)
		wl_die("waitpid: %s", strerror(errno));
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
