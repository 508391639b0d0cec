/*
 * http_server.h - what the parts of the http_server driver share: the
 * server's settings, a worker, a connection, the I/O model interface, the
 * HTTP subset and the driver's own clients.
 *
 *   http_server.c    options, listeners, threads, stop conditions, reports
 *   http_proto.c     the HTTP/1.1 subset: parse a request, format a response
 *   http_conn.c      a connection's buffers and request/response cycle
 *   http_io_epoll.c  the epoll I/O model (hs_io_epoll)
 *   http_io_uring.c  the io_uring model (hs_io_uring; built with HS_HAVE_URING)
 *   http_client.c    the driver's own clients: --self-test and --idle-conns
 *
 * An I/O model (hs_io_ops) owns a worker's event loop; the connection code
 * is called from it when data arrived or a send can go on, and calls back
 * into it to send and to close.  --io selects the model.
 */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "wl_common.h"

#define HS_RBUF_SIZE (16 * WL_KIB) /* a read buffer; the longest request accepted */
#define HS_BODY_MIN 64             /* response bodies: /64 .. /65536 */
#define HS_BODY_MAX (64 * WL_KIB)
#define HS_BODY_BYTE 'x' /* every body byte, so that clients can check them */

typedef enum hs_buffers {
	HS_BUF_PER_CONN = 0, /* one read buffer per connection, held for its life */
	HS_BUF_POOLED,       /* a read buffer per read, back when the request is answered */
} hs_buffers;

struct hs_worker;
struct hs_conn;

/* An I/O model: run() serves the worker's listener and connections until
 * hs_stopping(), then closes every connection (hs_conn_close) and returns.
 * send() writes what is left of c's response, c->wb.data[woff, wlen): 1 when
 * all of it is out (woff == wlen), 0 when the rest waits (the model calls
 * hs_conn_writable() when it can go on), -1 on an error.  close() closes
 * c's socket and frees c, once hs_conn_close() has put its buffers and taken
 * it off the worker's list. */
typedef struct hs_io_ops {
	const char *name;
	void (*run)(struct hs_worker *w);
	int (*send)(struct hs_worker *w, struct hs_conn *c);
	void (*close)(struct hs_worker *w, struct hs_conn *c);
} hs_io_ops;

extern const hs_io_ops hs_io_epoll;
#ifdef HS_HAVE_URING
extern const hs_io_ops hs_io_uring;
/* Exit 77 with "io_uring refused: why" when the kernel refuses io_uring
 * (seccomp, kernel.io_uring_disabled, a kernel without it). */
void hs_io_uring_probe(void);
/* Per worker: a buffer ring of HS_RING_ENTRIES buffers of HS_RING_BUF_SIZE
 * (with --ring-budget N below that, the largest power of two <= N). */
#define HS_RING_ENTRIES 256
#define HS_RING_BUF_SIZE (4 * WL_KIB)
#endif

/* The server as the workers see it; written before they start. */
typedef struct hs_server {
	hs_buffers buffers;
	const hs_io_ops *io;
	int port;
	unsigned ring_budget;  /* io_uring: read buffers a worker may hold, 0: no bound */
	unsigned ring_entries; /* io_uring: HS_RING_ENTRIES, fewer under a small budget */
} hs_server;

/* One worker thread: its listener (SO_REUSEPORT, see http_server.c), its
 * connections and counters.  The counters have one writer (the worker) and
 * are read by the main thread with zpp_load_relaxed. */
typedef struct hs_worker {
	wl_thread *t; /* its buffer calls and gets/puts counters */
	const hs_server *srv;
	int lfd;  /* listening socket */
	int epfd; /* the I/O model's descriptor, if it has one */
	void *io; /* the I/O model's state, if it has any */
	LIST_HEAD(hs_conn_list, hs_conn) conns;
	uint64_t requests;  /* responses written in full (200, 404 and 400) */
	uint64_t not_found; /* of which 404 */
	uint64_t bad;       /* of which 400 */
	uint64_t accepted;  /* connections */
	uint64_t partial;   /* writes that waited for writability */
	uint64_t open;      /* connections open now */
	uint64_t rbuf_held; /* read buffers held now */
	uint64_t rbuf_peak; /* the most held at once */
	uint64_t rearms;    /* io_uring: multishot recvs re-armed (ENOBUFS) */
	/* io_uring back-pressure and starvation (http_io_uring.c) */
	uint64_t pauses;         /* recvs stopped: queue at its high-water mark */
	uint64_t resumes;        /* ... and started again at the low-water mark */
	uint64_t rxq_peak;       /* the most buffers one connection had queued */
	uint64_t starved;        /* recvs that waited for buffers: ring empty */
	uint64_t starve_retries; /* refills tried while connections waited */
	uint64_t starved_us;     /* time some connection waited for buffers */
	uint64_t starved_cpu_us; /* the worker thread's CPU time meanwhile */
} __attribute__((aligned(64))) hs_worker;

/* The io_uring model's buffers that wait for a connection's parser: claimed
 * from the ring, data[off, len) not yet fed (http_io_uring.c). */
typedef struct hs_rx {
	wl_buf b;
	size_t off;
} hs_rx;

/* A connection.  The read buffer holds rb.data[roff, rlen) of its rcap
 * bytes: bytes read and not yet answered.  A response being written is
 * wb.data[woff, wlen). */
typedef struct hs_conn {
	int fd;
	bool has_rb, has_wb;
	bool close_after; /* close once the response is written (400, HTTP/1.0) */
	bool want_out;    /* a write was partial: wait for writability */
	size_t roff, rlen, rcap;
	size_t woff, wlen;
	wl_buf rb, wb;
	LIST_ENTRY(hs_conn) link;
	/* the io_uring model's (http_io_uring.c) */
	unsigned inflight;    /* its requests in the kernel: the recv, a send */
	bool recv_armed, eof; /* a multishot recv runs; it saw the end */
	bool dead;            /* closed: freed when inflight drops to 0 */
	bool paused;          /* its queue passed the high-water mark: no recv */
	bool parked;          /* waits for the ring to have buffers: no recv */
	hs_rx *rxq;           /* [rxcap]: received, waiting for the parser */
	unsigned rxn, rxcap;
	TAILQ_ENTRY(hs_conn) park_link; /* on the worker's parked list */
} hs_conn;

/* ---- http_proto.c -------------------------------------------------------- */

typedef enum hs_parse_result {
	HS_REQ_INCOMPLETE = 0, /* no blank line yet */
	HS_REQ_OK,             /* GET /N with HS_BODY_MIN <= N <= HS_BODY_MAX */
	HS_REQ_NOT_FOUND,      /* a well-formed GET of another path */
	HS_REQ_BAD,            /* anything else */
} hs_parse_result;

typedef struct hs_request {
	size_t length;    /* bytes of the request, through the blank line */
	size_t body_size; /* HS_REQ_OK: the response body's size; else 0 */
	bool keep_alive;  /* HTTP/1.1 without "Connection: close"; false when bad or incomplete */
} hs_request;

hs_parse_result hs_parse_request(const unsigned char *p, size_t n, hs_request *req);
/* The longest response header: the longest status line (57 bytes),
 * "Content-Length: " (16), 20 digits, "\r\nConnection: keep-alive\r\n\r\n" (28). */
#define HS_HEAD_MAX 160
/* Write the response's header into head (at most HS_HEAD_MAX bytes);
 * returns its length.  The body is body_size bytes of HS_BODY_BYTE. */
size_t hs_format_head(char *head, hs_parse_result r, size_t body_size, bool keep_alive);

/* ---- http_conn.c --------------------------------------------------------- */

/* A new accepted (non-blocking) socket; NULL if out of memory (closed). */
hs_conn *hs_conn_open(hs_worker *w, int fd);
/* The socket is readable: read once, answer what is complete.  Returns
 * false when the connection was closed. */
bool hs_conn_readable(hs_worker *w, hs_conn *c);
/* The I/O model received data[*off, in->len) of `in`, a buffer it got for
 * the connection (counted in rbuf_held): with no read buffer the
 * connection takes `in` whole as its read buffer (in->data becomes NULL),
 * else it copies what fits into a 16 KiB one (advancing *off).  Requests
 * are answered.  Only while !c->has_wb.  Returns false when the
 * connection was closed. */
bool hs_conn_feed(hs_worker *w, hs_conn *c, wl_buf *in, size_t *off);
/* The socket is writable (after a partial write). */
bool hs_conn_writable(hs_worker *w, hs_conn *c);
void hs_conn_close(hs_worker *w, hs_conn *c);
/* rbuf_held += delta (and its peak). */
void hs_rbuf_count(hs_worker *w, int delta);

/* ---- http_server.c ------------------------------------------------------- */

bool hs_stopping(void);
void hs_request_stop(void);

/* ---- http_client.c ------------------------------------------------------- */

typedef struct hs_client {
	int port;
	unsigned conns;       /* self-test: connections; idle: connections to hold */
	uint64_t requests;    /* self-test: requests of each size */
	uint64_t flood_bytes; /* flood: bytes of requests to send */
	/* results */
	uint64_t failed;  /* checks that failed (each printed on stderr) */
	uint64_t answers; /* responses the server must have written in full */
} hs_client;

/* A thread: checks, then hs_request_stop(). */
void *hs_self_test_client(void *arg);
/* A thread: the flood client (--self-test-flood), then hs_request_stop(). */
void *hs_flood_client(void *arg);
/* The idle client's process and its two pipes (fds -1 when there is none). */
typedef struct hs_idle_child {
	pid_t pid;
	int ready_fd;   /* read end (non-blocking): a byte once every connection is open */
	int release_fd; /* write end: a byte (or closing it) lets it close them */
	bool ready;
} hs_idle_child;

/* Fork the idle client (before any thread exists): it closes the workers'
 * listeners and holds `conns` connections to 127.0.0.1:port. */
void hs_idle_start(hs_idle_child *ic, const hs_worker *ws, unsigned n, int port, unsigned conns);
/* Release the child and wait for it; false if it failed. */
bool hs_idle_finish(hs_idle_child *ic);

#endif /* HTTP_SERVER_H */
