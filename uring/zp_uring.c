/*
 * zp_uring.c - io_uring provided-buffer rings fed from a pool class
 * (zeropool_uring.h has the contracts, docs/uring.md the design).
 *
 * A client of the pool: zeropool.h and liburing only.  A slot is a buffer
 * id: slot[bid] is the buffer lent to the kernel under that id, or NULL
 * while the slot is empty (its buffer claimed, not yet refilled); the empty
 * ids wait on a stack.  The kernel consumes ring entries in order, so which
 * id lies where in the ring does not matter: a refill adds entries at the
 * tail for whatever ids are empty.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zeropool_uring.h"

struct zp_uring_bufring {
	struct io_uring *ring;
	zp_pool *pool;
	struct io_uring_buf_ring *br; /* entries * 16 bytes, page aligned */
	size_t br_bytes;
	size_t buf_size; /* bytes posted per buffer, and asked of zp_get */
	size_t cap;      /* the class's capacity: a buffer's cap */
	unsigned entries;
	unsigned limit;        /* refills stop once this many slots hold a buffer */
	unsigned nempty;       /* ids on the empty stack */
	unsigned short bgid;   /* the buffer group */
	unsigned short *empty; /* [entries]: a stack of empty ids */
	zp_buf **slot;         /* [entries]: the buffer lent under each id */
};

/* Slots that hold a buffer (zp_uring_bufring_held). */
static inline unsigned held(const zp_uring_bufring *br)
{
	return br->entries - br->nempty;
}

/* Fill up to `max` empty slots from the pool, no more than the limit
 * allows, and publish them with one tail update.  Returns how many it
 * filled; stops at the first get the pool refuses.  errno is left as it
 * was: a refill inside a claim or a recycle is not their error, and the
 * callers that report a refusal say ENOMEM themselves. */
static unsigned fill(zp_uring_bufring *br, unsigned max)
{
	int mask = io_uring_buf_ring_mask(br->entries);
	unsigned room = br->limit > held(br) ? br->limit - held(br) : 0;
	unsigned n = 0;
	int saved = errno;
	if (max > room)
		max = room;
	while (n < max && br->nempty > 0) {
		zp_buf *b = zp_get(br->pool, br->buf_size);
		if (b == NULL)
			break;
		unsigned short bid = br->empty[--br->nempty];
		br->slot[bid] = b;
		io_uring_buf_ring_add(br->br, b->data, (unsigned)br->buf_size, bid, mask, (int)n);
		n++;
	}
	if (n > 0)
		io_uring_buf_ring_advance(br->br, (int)n);
	errno = saved;
	return n;
}

/* Free what create allocated (the ring's memory if it was mapped). */
static void free_ring(zp_uring_bufring *br)
{
	if (br->br != NULL)
		munmap(br->br, br->br_bytes);
	free(br->empty);
	free(br->slot);
	free(br);
}

/* The received length becomes the descriptor's len, as zp_get sets it: len
 * is the holder's length, which the pool never reads on put. */
static void set_len(zp_buf *b, size_t len)
{
	*(size_t *)&b->len = len;
}

zp_uring_bufring *zp_uring_bufring_create(struct io_uring *ring, zp_pool *pool, unsigned short bgid,
					  unsigned entries, size_t buf_size, unsigned flags)
{
	if (ring == NULL || pool == NULL || entries == 0 || entries > ZP_URING_MAX_ENTRIES ||
	    (entries & (entries - 1)) != 0 || buf_size == 0 || buf_size > UINT32_MAX ||
	    flags != 0 || zp_class_of(pool, buf_size) < 0) {
		errno = EINVAL;
		return NULL;
	}
	zp_uring_bufring *br = calloc(1, sizeof(*br));
	if (br == NULL)
		return NULL;
	br->ring = ring;
	br->pool = pool;
	br->bgid = bgid;
	br->entries = entries;
	br->limit = entries;
	br->buf_size = buf_size;
	long page = sysconf(_SC_PAGESIZE);
	size_t bytes = (size_t)entries * sizeof(struct io_uring_buf);
	br->br_bytes = (bytes + (size_t)page - 1) & ~((size_t)page - 1);
	br->empty = calloc(entries, sizeof(*br->empty));
	br->slot = calloc(entries, sizeof(zp_buf *));
	void *mem = MAP_FAILED;
	if (br->empty != NULL && br->slot != NULL)
		mem = mmap(NULL, br->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	if (mem == MAP_FAILED) {
		free_ring(br);
		errno = ENOMEM;
		return NULL;
	}
	br->br = mem;
	io_uring_buf_ring_init(br->br);
	for (unsigned i = 0; i < entries; i++)
		br->empty[i] = (unsigned short)(entries - 1 - i);
	br->nempty = entries;

	struct io_uring_buf_reg reg = {0};
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = entries;
	reg.bgid = bgid;
	int rc = io_uring_register_buf_ring(ring, &reg, 0);
	if (rc < 0) {
		free_ring(br);
		errno = -rc;
		return NULL;
	}
	if (fill(br, entries) == 0) {
		zp_uring_bufring_destroy(br);
		errno = ENOMEM;
		return NULL;
	}
	br->cap = br->slot[0]->cap; /* fill takes id 0 first */
	return br;
}

zp_buf *zp_uring_bufring_claim(zp_uring_bufring *br, const struct io_uring_cqe *cqe)
{
	if (br == NULL || cqe == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		errno = ENOENT;
		return NULL;
	}
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	if (bid >= br->entries || br->slot[bid] == NULL || cqe->res < 0) {
		errno = EINVAL;
		return NULL;
	}
	zp_buf *b = br->slot[bid];
	br->slot[bid] = NULL;
	br->empty[br->nempty++] = (unsigned short)bid;
	set_len(b, (size_t)cqe->res);
	if (br->nempty >= ZP_URING_REFILL_BATCH(br->entries))
		fill(br, br->nempty);
	return b;
}

int zp_uring_bufring_recycle(zp_uring_bufring *br, zp_buf *b)
{
	if (br == NULL || b == NULL || b->cap != br->cap) {
		errno = EINVAL;
		return -1;
	}
	if (zp_put(br->pool, b) != 0)
		return -1;
	fill(br, 1);
	return 0;
}

int zp_uring_bufring_replenish(zp_uring_bufring *br)
{
	if (br == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (held(br) >= br->limit) /* a full ring too: limit <= entries */
		return 0;
	unsigned n = fill(br, br->nempty);
	if (n == 0) {
		errno = ENOMEM;
		return -1;
	}
	return (int)n;
}

int zp_uring_bufring_set_limit(zp_uring_bufring *br, unsigned limit)
{
	if (br == NULL || limit > br->entries) {
		errno = EINVAL;
		return -1;
	}
	br->limit = limit;
	return 0;
}

unsigned zp_uring_bufring_held(const zp_uring_bufring *br)
{
	return br == NULL ? 0 : held(br);
}

unsigned short zp_uring_bufring_bgid(const zp_uring_bufring *br)
{
	return br == NULL ? 0 : br->bgid;
}

int zp_uring_prep_recv_multishot(zp_uring_bufring *br, struct io_uring_sqe *sqe, int fd)
{
	if (br == NULL || sqe == NULL || fd < 0) {
		errno = EINVAL;
		return -1;
	}
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = br->bgid;
	return 0;
}

void zp_uring_bufring_destroy(zp_uring_bufring *br)
{
	if (br == NULL)
		return;
	/* First the kernel lets go of the ring, then its buffers go back. */
	io_uring_unregister_buf_ring(br->ring, br->bgid);
	for (unsigned i = 0; i < br->entries; i++)
		if (br->slot[i] != NULL)
			zp_put(br->pool, br->slot[i]);
	free_ring(br);
}
