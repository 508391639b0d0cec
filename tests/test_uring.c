/*
 * test_uring.c - the io_uring module (zeropool_uring.h): multishot recv
 * into a buffer ring fed from a pool class, claims, zp_put and recycle,
 * ENOBUFS and re-arm without loss, the fill limit, a pool that refuses to
 * refill (ENOMEM, and the ring left empty), destroy with buffers
 * outstanding, bad arguments; every buffer back in the pool at the end of
 * each test.
 * Exits 77 (skipped) where the kernel refuses io_uring or buffer rings.
 */
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zeropool_uring.h"
#include "zp_os.h" /* _zp_test_fail_alloc_after: the pool refuses a buffer */
#include "zp_test.h"

#define BGID 7

struct rig {
	struct io_uring ring;
	zp_pool *pool;
	int fd[2]; /* fd[0] receives, fd[1] sends */
};

static void rig_open_with(struct rig *r, const zp_config *cfg)
{
	r->pool = zp_pool_create(cfg);
	REQUIRE(r->pool != NULL);
	REQUIRE(io_uring_queue_init(64, &r->ring, 0) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, r->fd) == 0);
}

static void rig_open(struct rig *r)
{
	zp_config cfg = zp_test_config();
	rig_open_with(r, &cfg);
}

/* The sender closes: the receiver sees EOF, which ends its multishot recv.
 * fd[1] becomes an unconnected socket, for rig_close to close. */
static void close_sender(struct rig *r)
{
	close(r->fd[1]);
	r->fd[1] = socket(AF_UNIX, SOCK_STREAM, 0);
}

/* Every buffer is back: nothing outstanding. */
static void rig_close(struct rig *r)
{
	struct zp_stats st;
	close(r->fd[0]);
	close(r->fd[1]);
	io_uring_queue_exit(&r->ring);
	REQUIRE(zp_stats(r->pool, &st) == 0);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.gets, st.puts);
	zp_pool_destroy(r->pool);
}

static void arm(struct rig *r, zp_uring_bufring *br)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	REQUIRE(sqe != NULL);
	REQUIRE(zp_uring_prep_recv_multishot(br, sqe, r->fd[0]) == 0);
	io_uring_sqe_set_data64(sqe, 1);
	REQUIRE(io_uring_submit(&r->ring) == 1);
}

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 31 + 7);
}

static void send_all(int fd, size_t from, size_t n)
{
	unsigned char chunk[4096];
	while (n > 0) {
		size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
		for (size_t i = 0; i < k; i++)
			chunk[i] = pattern(from + i);
		ssize_t w = write(fd, chunk, k);
		REQUIRE(w > 0);
		from += (size_t)w;
		n -= (size_t)w;
	}
}

/* The CQEs waiting now (at least one: waits for it), copied out and seen,
 * so that the caller claims them after the kernel is done with the batch. */
static unsigned reap(struct rig *r, struct io_uring_cqe *out, unsigned max)
{
	struct io_uring_cqe *cqe;
	REQUIRE(io_uring_wait_cqe(&r->ring, &cqe) == 0);
	unsigned n = 0;
	while (n < max && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
		out[n++] = *cqe;
		io_uring_cqe_seen(&r->ring, cqe);
	}
	return n;
}

/* Check a claimed buffer's bytes against the stream at *pos, advance. */
static void check_data(const zp_buf *b, size_t *pos, size_t buf_size)
{
	CHECK(b->len > 0 && b->len <= buf_size);
	CHECK(b->cap >= buf_size);
	size_t bad = 0;
	for (size_t i = 0; i < b->len; i++)
		bad += b->data[i] != pattern(*pos + i);
	CHECK_EQ(bad, 0);
	*pos += b->len;
}

/* Messages of several sizes through a multishot recv: contents and lengths
 * right, half the buffers given back with zp_put, half recycled. */
static void t_recv_sizes(void)
{
	static const size_t sizes[] = {1, 100, 1024, 1025, 3000, 5000, 64, 17};
	const size_t buf_size = 1024;
	struct rig r;
	rig_open(&r);
	zp_uring_bufring *br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 16, buf_size, 0);
	REQUIRE(br != NULL);
	CHECK_EQ(zp_uring_bufring_held(br), 16);
	CHECK_EQ(zp_uring_bufring_bgid(br), BGID);
	arm(&r, br);
	size_t sent = 0, got = 0;
	unsigned claims = 0, rearms = 0;
	struct io_uring_cqe cq[64];
	for (size_t m = 0; m < sizeof(sizes) / sizeof(sizes[0]); m++) {
		send_all(r.fd[1], sent, sizes[m]);
		sent += sizes[m];
		while (got < sent) {
			unsigned n = reap(&r, cq, 64);
			for (unsigned i = 0; i < n; i++) {
				CHECK(cq[i].res > 0);
				zp_buf *b = zp_uring_bufring_claim(br, &cq[i]);
				REQUIRE(b != NULL);
				check_data(b, &got, buf_size);
				if (claims++ % 2)
					CHECK(zp_put(r.pool, b) == 0);
				else
					CHECK(zp_uring_bufring_recycle(br, b) == 0);
				if (!(cq[i].flags & IORING_CQE_F_MORE)) {
					CHECK(zp_uring_bufring_replenish(br) >= 0);
					arm(&r, br);
					rearms++;
				}
			}
		}
	}
	CHECK_EQ(got, sent);
	CHECK(claims >= 12); /* 5000 bytes alone take 5 buffers */
	CHECK_EQ(rearms, 0); /* a ring of 16 never ran dry here */
	CHECK(zp_uring_bufring_held(br) >= 16 - ZP_URING_REFILL_BATCH(16u));
	close_sender(&r);
	unsigned n = reap(&r, cq, 64);
	CHECK(n >= 1);
	CHECK_EQ(cq[n - 1].res, 0);
	CHECK(!(cq[n - 1].flags & IORING_CQE_F_MORE));
	for (unsigned i = 0; i < n; i++)
		if (cq[i].flags & IORING_CQE_F_BUFFER)
			CHECK(zp_put(r.pool, zp_uring_bufring_claim(br, &cq[i])) == 0);
	zp_uring_bufring_destroy(br);
	rig_close(&r);
}

/* A ring of 4 buffers of 64 bytes and 1000 bytes waiting: the kernel fills
 * the 4 and ends the recv with ENOBUFS; claim, replenish, re-arm, again,
 * until every byte arrived, in order. */
static void t_enobufs(void)
{
	const size_t buf_size = 64, total = 1000;
	struct rig r;
	rig_open(&r);
	zp_uring_bufring *br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 4, buf_size, 0);
	REQUIRE(br != NULL);
	send_all(r.fd[1], 0, total);
	size_t got = 0;
	unsigned enobufs = 0, rounds = 0;
	struct io_uring_cqe cq[64];
	while (got < total && rounds++ < 100) {
		arm(&r, br);
		int ended = 0;
		while (!ended) {
			unsigned n = reap(&r, cq, 64);
			/* The kernel's own refusal does not name a buffer. */
			for (unsigned i = 0; i < n; i++) {
				if (cq[i].res == -ENOBUFS) {
					enobufs++;
					CHECK_ERR(zp_uring_bufring_claim(br, &cq[i]), ENOENT);
				} else if (cq[i].res == 0) { /* EOF, after the last byte */
					if (cq[i].flags & IORING_CQE_F_BUFFER)
						CHECK(zp_put(r.pool, zp_uring_bufring_claim(
									 br, &cq[i])) == 0);
				} else {
					zp_buf *b = zp_uring_bufring_claim(br, &cq[i]);
					REQUIRE(b != NULL);
					check_data(b, &got, buf_size);
					CHECK(zp_put(r.pool, b) == 0);
				}
				if (!(cq[i].flags & IORING_CQE_F_MORE))
					ended = 1;
			}
			if (got == total && !ended) {
				/* all in: stop the request by closing the sender */
				close_sender(&r);
			}
		}
		CHECK(zp_uring_bufring_replenish(br) >= 0);
		CHECK_EQ(zp_uring_bufring_held(br), 4);
	}
	CHECK_EQ(got, total);
	CHECK(enobufs >= 1);
	zp_uring_bufring_destroy(br);
	rig_close(&r);
}

/* Claim `n` buffers' worth of data (n x buf_size bytes sent beforehand)
 * from the armed recv into held[]; returns how many it claimed. */
static unsigned claim_n(struct rig *r, zp_uring_bufring *br, zp_buf **held, unsigned n, size_t *pos,
			size_t buf_size)
{
	struct io_uring_cqe cq[64];
	unsigned got = 0;
	while (got < n) {
		unsigned k = reap(r, cq, 64);
		for (unsigned i = 0; i < k; i++) {
			REQUIRE(cq[i].res > 0);
			zp_buf *b = zp_uring_bufring_claim(br, &cq[i]);
			REQUIRE(b != NULL);
			check_data(b, pos, buf_size);
			held[got++] = b;
		}
	}
	return got;
}

/* End the armed recv (the sender closes: EOF) and reap its last CQE. */
static void end_recv(struct rig *r, zp_uring_bufring *br)
{
	struct io_uring_cqe cq[64];
	close_sender(r);
	for (;;) {
		unsigned n = reap(r, cq, 64);
		for (unsigned i = 0; i < n; i++) {
			if (cq[i].flags & IORING_CQE_F_BUFFER)
				CHECK(zp_put(r->pool, zp_uring_bufring_claim(br, &cq[i])) == 0);
			if (!(cq[i].flags & IORING_CQE_F_MORE))
				return;
		}
	}
}

/* The fill limit: claims, replenish and recycle stop at it; lowered to 0
 * the ring empties and a recv armed on it ends at once with -ENOBUFS (what
 * a caller must not re-arm into a loop); raised, replenish fills again. */
static void t_limit(void)
{
	const size_t buf_size = 64;
	struct rig r;
	rig_open(&r);
	zp_uring_bufring *br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 8, buf_size, 0);
	REQUIRE(br != NULL);
	CHECK_ERR(zp_uring_bufring_set_limit(br, 9), EINVAL);
	CHECK_ERR(zp_uring_bufring_set_limit(NULL, 1), EINVAL);
	CHECK_EQ(zp_uring_bufring_set_limit(br, 2), 0);
	CHECK_EQ(zp_uring_bufring_held(br), 8); /* nothing taken back */
	zp_buf *held[8];
	size_t pos = 0;
	send_all(r.fd[1], 0, 6 * buf_size);
	arm(&r, br);
	CHECK_EQ(claim_n(&r, br, held, 6, &pos, buf_size), 6);
	CHECK_EQ(zp_uring_bufring_held(br), 2);      /* no claim refilled */
	CHECK_EQ(zp_uring_bufring_replenish(br), 0); /* at the limit */
	CHECK_EQ(zp_uring_bufring_recycle(br, held[5]), 0);
	CHECK_EQ(zp_uring_bufring_held(br), 2); /* put, not posted */
	CHECK_EQ(zp_uring_bufring_set_limit(br, 4), 0);
	CHECK_EQ(zp_uring_bufring_replenish(br), 2);
	CHECK_EQ(zp_uring_bufring_held(br), 4);
	/* Limit 0: the kernel uses up the 4, then finds the ring empty. */
	CHECK_EQ(zp_uring_bufring_set_limit(br, 0), 0);
	send_all(r.fd[1], pos, 4 * buf_size);
	zp_buf *more[4];
	CHECK_EQ(claim_n(&r, br, more, 4, &pos, buf_size), 4);
	CHECK_EQ(zp_uring_bufring_held(br), 0);
	CHECK_EQ(zp_uring_bufring_replenish(br), 0); /* allowed nothing */
	CHECK_EQ(zp_uring_bufring_held(br), 0);
	send_all(r.fd[1], pos, 1);
	struct io_uring_cqe cq[64];
	unsigned n = reap(&r, cq, 64); /* the recv's end: no buffer for the byte */
	CHECK_EQ(n, 1);
	CHECK_EQ(cq[0].res, -ENOBUFS);
	CHECK(!(cq[0].flags & IORING_CQE_F_MORE));
	/* Re-armed on the empty ring, it ends again at once. */
	arm(&r, br);
	n = reap(&r, cq, 64);
	CHECK_EQ(n, 1);
	CHECK_EQ(cq[0].res, -ENOBUFS);
	/* Buffers back and the limit raised: the byte that waited arrives. */
	for (unsigned i = 0; i < 5; i++)
		CHECK(zp_put(r.pool, held[i]) == 0);
	for (unsigned i = 0; i < 4; i++)
		CHECK(zp_put(r.pool, more[i]) == 0);
	CHECK_EQ(zp_uring_bufring_set_limit(br, 8), 0);
	CHECK_EQ(zp_uring_bufring_replenish(br), 8);
	arm(&r, br);
	zp_buf *last;
	size_t before = pos;
	n = reap(&r, cq, 64);
	REQUIRE(n >= 1 && cq[0].res == 1);
	last = zp_uring_bufring_claim(br, &cq[0]);
	REQUIRE(last != NULL);
	CHECK_EQ(last->data[0], pattern(before));
	CHECK(zp_put(r.pool, last) == 0);
	end_recv(&r, br);
	zp_uring_bufring_destroy(br);
	rig_close(&r);
}

/* The pool refuses (an injected ENOMEM, no thread cache to fall back on):
 * replenish returns -1 with errno ENOMEM and the ring stays empty; once a
 * buffer is back in the pool, replenish fills again. */
static void t_replenish_enomem(void)
{
	const size_t buf_size = 64;
	struct rig r;
	zp_config cfg = zp_test_config();
	cfg.cache_depth = 0; /* every get asks the store, which is empty */
	rig_open_with(&r, &cfg);
	zp_uring_bufring *br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 4, buf_size, 0);
	REQUIRE(br != NULL);
	CHECK_EQ(zp_uring_bufring_set_limit(br, 0), 0); /* claims do not refill */
	zp_buf *held[4];
	size_t pos = 0;
	send_all(r.fd[1], 0, 4 * buf_size);
	arm(&r, br);
	CHECK_EQ(claim_n(&r, br, held, 4, &pos, buf_size), 4);
	CHECK_EQ(zp_uring_bufring_held(br), 0);
	CHECK_EQ(zp_uring_bufring_set_limit(br, 4), 0);
	_zp_test_fail_alloc_after(1);
	errno = 0;
	int rc = zp_uring_bufring_replenish(br);
	int e = errno;
	_zp_test_fail_alloc_after(0);
	CHECK_EQ(rc, -1);
	CHECK_EQ(e, ENOMEM);
	CHECK_EQ(zp_uring_bufring_held(br), 0);
	/* One back: the pool serves it, and grows for the rest. */
	CHECK(zp_put(r.pool, held[0]) == 0);
	CHECK_EQ(zp_uring_bufring_replenish(br), 4);
	CHECK_EQ(zp_uring_bufring_held(br), 4);
	for (unsigned i = 1; i < 4; i++)
		CHECK(zp_put(r.pool, held[i]) == 0);
	end_recv(&r, br);
	zp_uring_bufring_destroy(br);
	rig_close(&r);
}

/* Destroy while the application holds claimed buffers and the kernel holds
 * filled, unclaimed ones: destroy puts the latter, zp_put takes the former
 * afterwards. */
static void t_destroy_outstanding(void)
{
	struct rig r;
	rig_open(&r);
	zp_uring_bufring *br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 8, 128, 0);
	REQUIRE(br != NULL);
	send_all(r.fd[1], 0, 128 * 6);
	arm(&r, br);
	struct io_uring_cqe cq[64];
	unsigned n = 0;
	while (n < 6)
		n += reap(&r, cq + n, 64 - n);
	zp_buf *held[3];
	size_t got = 0;
	for (unsigned i = 0; i < 3; i++) {
		held[i] = zp_uring_bufring_claim(br, &cq[i]);
		REQUIRE(held[i] != NULL);
		check_data(held[i], &got, 128);
	}
	/* cq[3..5] stay unclaimed: their buffers are still the ring's. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r.ring);
	io_uring_prep_cancel64(sqe, 1, 0);
	REQUIRE(io_uring_submit_and_wait(&r.ring, 1) >= 1);
	zp_uring_bufring_destroy(br);
	struct zp_stats st;
	REQUIRE(zp_stats(r.pool, &st) == 0);
	CHECK_EQ(st.outstanding, 3);
	for (unsigned i = 0; i < 3; i++)
		CHECK(zp_put(r.pool, held[i]) == 0);
	/* The group is gone: a new ring may take its id. */
	br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 2, 128, 0);
	CHECK(br != NULL);
	zp_uring_bufring_destroy(br);
	rig_close(&r);
}

static void t_bad_args(void)
{
	struct rig r;
	rig_open(&r);
	zp_config cfg = zp_test_config();
	cfg.max_size = 64 * 1024;
	zp_pool *small = zp_pool_create(&cfg);
	REQUIRE(small != NULL);
	CHECK_ERR(zp_uring_bufring_create(NULL, r.pool, BGID, 8, 512, 0), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, NULL, BGID, 8, 512, 0), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, r.pool, BGID, 0, 512, 0), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, r.pool, BGID, 6, 512, 0), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, r.pool, BGID, 65536, 512, 0), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, r.pool, BGID, 8, 0, 0), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, r.pool, BGID, 8, 512, 1), EINVAL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, small, BGID, 8, 128 * 1024, 0), EINVAL);

	zp_uring_bufring *br = zp_uring_bufring_create(&r.ring, r.pool, BGID, 8, 512, 0);
	REQUIRE(br != NULL);
	CHECK_ERR(zp_uring_bufring_create(&r.ring, r.pool, BGID, 8, 512, 0), EEXIST);
	/* Recycle: a buffer of another pool, of another class, twice. */
	zp_buf *foreign = zp_get(small, 512);
	zp_buf *other = zp_get(r.pool, 4096);
	zp_buf *mine = zp_get(r.pool, 512);
	REQUIRE(foreign != NULL && other != NULL && mine != NULL);
	CHECK_ERR(zp_uring_bufring_recycle(br, foreign), EINVAL);
	CHECK_ERR(zp_uring_bufring_recycle(br, other), EINVAL);
	CHECK_ERR(zp_uring_bufring_recycle(br, NULL), EINVAL);
	CHECK_ERR(zp_uring_bufring_recycle(NULL, mine), EINVAL);
	CHECK(zp_uring_bufring_recycle(br, mine) == 0); /* a zp_get one is fine */
	CHECK_ERR(zp_uring_bufring_recycle(br, mine), EALREADY);
	CHECK(zp_put(small, foreign) == 0);
	CHECK(zp_put(r.pool, other) == 0);
	/* Claims of CQEs that name no buffer of ours. */
	struct io_uring_cqe cqe = {0};
	cqe.res = -ENOBUFS;
	CHECK_ERR(zp_uring_bufring_claim(br, &cqe), ENOENT);
	cqe.res = 10;
	cqe.flags = IORING_CQE_F_BUFFER | (100u << IORING_CQE_BUFFER_SHIFT);
	CHECK_ERR(zp_uring_bufring_claim(br, &cqe), EINVAL);
	CHECK_ERR(zp_uring_bufring_claim(br, NULL), EINVAL);
	CHECK_ERR(zp_uring_bufring_claim(NULL, &cqe), EINVAL);
	CHECK_ERR(zp_uring_bufring_replenish(NULL), EINVAL);
	CHECK_EQ(zp_uring_bufring_replenish(br), 0); /* full already */
	struct io_uring_sqe sqe;
	CHECK_ERR(zp_uring_prep_recv_multishot(br, &sqe, -1), EINVAL);
	CHECK_ERR(zp_uring_prep_recv_multishot(br, NULL, 0), EINVAL);
	CHECK_EQ(zp_uring_bufring_held(NULL), 0);
	zp_uring_bufring_destroy(br);
	zp_uring_bufring_destroy(NULL);
	zp_pool_destroy(small);
	rig_close(&r);
}

static const struct zp_test tests[] = {
    {"recv_sizes", t_recv_sizes},
    {"enobufs", t_enobufs},
    {"limit", t_limit},
    {"replenish_enomem", t_replenish_enomem},
    {"destroy_outstanding", t_destroy_outstanding},
    {"bad_args", t_bad_args},
};

/* Skip where io_uring or buffer rings are refused (seccomp, the
 * kernel.io_uring_disabled sysctl, an old kernel). */
static int uring_refused(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		fprintf(stderr, "SKIP: io_uring_queue_init: %s (io_uring refused here)\n",
			strerror(-rc));
		return 1;
	}
	struct io_uring_buf_reg reg = {0};
	void *mem = NULL;
	rc = posix_memalign(&mem, 4096, 4096);
	if (rc == 0) {
		reg.ring_addr = (unsigned long long)(uintptr_t)mem;
		reg.ring_entries = 1;
		reg.bgid = 0;
		rc = io_uring_register_buf_ring(&ring, &reg, 0);
		if (rc == 0)
			io_uring_unregister_buf_ring(&ring, 0);
	}
	io_uring_queue_exit(&ring);
	free(mem);
	if (rc < 0) {
		fprintf(stderr, "SKIP: io_uring_register_buf_ring: %s (no buffer rings here)\n",
			strerror(-rc));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--help") != 0 && uring_refused())
		return 77;
	return zp_test_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]));
}
