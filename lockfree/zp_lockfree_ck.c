/*
 * zp_lockfree_ck.c - the lock-free backend, Concurrency Kit flavour
 * ("lockfree-ck").  Design, ABA and reclamation argument: docs/lockfree.md.
 *
 * Per class, three ck_stack_t (16-byte aligned for cmpxchg16b) in one cache
 * line, plus an approximate buffer count:
 *
 *   full     magazines holding 1..cap descriptors (a stack of batches)
 *   empty    spare magazines of this class
 *   singles  descriptors themselves, linked through zp_buf._zp_link[0];
 *            gives of ZP_LF_CK_SINGLE_MAX buffers or fewer go here (a
 *            magazine would cost two stack operations per side for one
 *            buffer), and so does a batch when no magazine can be had
 *
 * Pops are ck_stack_trypop_mpmc (DWCAS on {head, generation}); pushes are
 * ck_stack_trypush_mpmc.  Both are retried here so that every failed CAS
 * can be counted as contention; the loop is the body of ck_stack_pop_mpmc
 * / ck_stack_push_mpmc, unchanged.
 *
 * ABA safety: every node ever pushed is type-stable for the store's life.
 * Magazines live in chunks that the store frees only in destroy();
 * descriptors live in the pool's slabs, which the pool frees only after
 * destroy().  A stale popper therefore reads a `next` from memory that is
 * still mapped and still a node, and the generation counter makes its CAS
 * fail.  Nothing is freed before destroy(), so no ck_epoch is needed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <ck_pr.h>
#include <ck_stack.h>

#include "zp_backend.h"
#include "zp_backend_services.h"

#ifndef CK_F_STACK_POP_MPMC
#if defined(__clang_analyzer__) || defined(__CPPCHECK__)
/* Static analysers make CK fall back to its generic builtins, which have no
 * double-width CAS: give them the single-width pop to look at.  Never built. */
#define ck_stack_trypop_mpmc ck_stack_trypop_upmc
#else
/* cppcheck-suppress preprocessorErrorDirective */
#error "lockfree-ck needs ck_stack_pop_mpmc (a double-width CAS), which CK lacks on this target"
#endif
#endif

/* Gives of at most this many buffers push the descriptors themselves, and
 * takes of at most this many look at the singles first.  0: magazines
 * only (the single-buffer path is then used only when no magazine can be
 * allocated).  See docs/lockfree.md for the measurements behind 1. */
#ifndef ZP_LF_CK_SINGLE_MAX
#define ZP_LF_CK_SINGLE_MAX 1
#endif

#define ZP_ALIGNED_16 __attribute__((aligned(16)))

struct ck_mag {
	ck_stack_entry_t link; /* on its class's full or empty stack */
	uint32_t count;        /* bufs[0..count), bufs[count-1] the hottest */
	uint32_t _pad;
	zp_buf *bufs[];
};

/* A slab chunk: this header, then per_chunk nodes of `stride` bytes. */
struct ck_chunk {
	ck_stack_entry_t link; /* on store->chunks */
} ZP_ALIGNED_CL;

struct ck_class {
	ck_stack_t full ZP_ALIGNED_16;
	ck_stack_t singles ZP_ALIGNED_16;
	ck_stack_t empty ZP_ALIGNED_16;
	_Atomic size_t count; /* >= buffers in full + singles */
} ZP_ALIGNED_CL;

struct ck_store {
	unsigned classes;
	size_t max; /* max_per_class */
	struct zp_mag_shape mag;
	ck_stack_t chunks ZP_ALIGNED_16;
	_Atomic uint64_t contention ZP_ALIGNED_CL; /* failed CAS (push or pop) */
	_Atomic size_t meta_bytes;                 /* this struct and its chunks */
	struct ck_class cls[];
};

_Static_assert(offsetof(struct ck_class, full) % 16 == 0, "cmpxchg16b needs 16-byte alignment");
_Static_assert(offsetof(struct ck_class, singles) % 16 == 0, "cmpxchg16b needs 16-byte alignment");
_Static_assert(offsetof(struct ck_class, empty) % 16 == 0, "cmpxchg16b needs 16-byte alignment");
_Static_assert(sizeof(struct ck_class) == ZP_CACHELINE, "one cache line per class");
_Static_assert(offsetof(struct ck_store, cls) % ZP_CACHELINE == 0, "classes start a line");
_Static_assert(sizeof(ck_stack_entry_t) == sizeof(void *), "a link word holds a stack entry");

static inline struct ck_mag *mag_of(ck_stack_entry_t *e)
{
	return (struct ck_mag *)((char *)e - offsetof(struct ck_mag, link));
}

static inline ck_stack_entry_t *desc_entry(zp_buf *b)
{
	return (ck_stack_entry_t *)(void *)&b->_zp_link[0];
}

static inline zp_buf *desc_of(ck_stack_entry_t *e)
{
	return (zp_buf *)(void *)((char *)e - offsetof(zp_buf, _zp_link));
}

/* ---- the library's stack, with failed CAS attempts counted ------------ */

static void count_contention(struct ck_store *s, unsigned fails)
{
	zp_atomic_add_relaxed(&s->contention, fails);
}

static inline void lf_push(struct ck_store *s, ck_stack_t *st, ck_stack_entry_t *e)
{
	unsigned fails = 0;
	_zp_hb_before(st);
	_zp_racy_begin();
	while (!ck_stack_trypush_mpmc(st, e)) {
		fails++;
		ck_pr_stall();
	}
	_zp_racy_end();
	if (ZP_UNLIKELY(fails != 0))
		count_contention(s, fails);
}

static inline ck_stack_entry_t *lf_pop(struct ck_store *s, ck_stack_t *st)
{
	ck_stack_entry_t *e = NULL;
	unsigned fails = 0;
	_zp_racy_begin();
	/* trypop fails on an empty stack and on a lost CAS: tell them apart. */
	while (!ck_stack_trypop_mpmc(st, &e)) {
		if (ck_pr_load_ptr(&st->head) == NULL) {
			e = NULL;
			break;
		}
		fails++;
		ck_pr_stall();
	}
	_zp_racy_end();
	if (ZP_UNLIKELY(fails != 0))
		count_contention(s, fails);
	if (e != NULL)
		_zp_hb_after(st);
	return e;
}

/* ---- magazines --------------------------------------------------------- */

/* Carve a new chunk: keep one magazine, file the others as spares. */
static struct ck_mag *mag_grow(struct ck_store *s, struct ck_class *c)
{
	size_t bytes = zp_mag_chunk_bytes(&s->mag, sizeof(struct ck_chunk));
	struct ck_chunk *ch = _zp_meta_alloc(bytes);
	if (ch == NULL)
		return NULL;
	zp_atomic_add_relaxed(&s->meta_bytes, bytes);
	_zp_racy_by_design(&ch->link, sizeof ch->link);
	lf_push(s, &s->chunks, &ch->link);
	for (unsigned i = 0; i < s->mag.per_chunk; i++) {
		struct ck_mag *m = zp_mag_node(&s->mag, ch + 1, i);
		_zp_racy_by_design(&m->link, sizeof m->link);
		if (i > 0)
			lf_push(s, &c->empty, &m->link);
	}
	return zp_mag_node(&s->mag, ch + 1, 0);
}

static inline struct ck_mag *mag_get(struct ck_store *s, struct ck_class *c)
{
	ck_stack_entry_t *e = lf_pop(s, &c->empty);
	if (e != NULL)
		return mag_of(e);
	return mag_grow(s, c);
}

/* ---- the ops ------------------------------------------------------------ */

static void *ck_create(const struct zp_store_params *p)
{
	if (p->classes == 0) {
		errno = EINVAL;
		return NULL;
	}
	struct ck_store *s =
	    _zp_meta_alloc(sizeof *s + (size_t)p->classes * sizeof(struct ck_class));
	if (s == NULL)
		return NULL;
	/* _zp_meta_alloc zeroes: every stack starts as CK_STACK_INITIALIZER,
	 * except that the generation counters start at a non-NULL value.  CK
	 * counts generations in a `char *` (ck_stack.h: generation + 1), and
	 * arithmetic on a NULL pointer is undefined (UBSan's pointer-overflow
	 * check stops on it).  The counter is only ever compared for equality,
	 * so any start will do; from a real address it cannot wrap. */
	for (unsigned k = 0; k < p->classes; k++) {
		struct ck_class *c = &s->cls[k];
		c->full.generation = (char *)c;
		c->singles.generation = (char *)c;
		c->empty.generation = (char *)c;
	}
	s->classes = p->classes;
	s->meta_bytes = sizeof *s + (size_t)p->classes * sizeof(struct ck_class);
	s->max = p->max_per_class;
	s->mag =
	    zp_mag_shape_for(p->max_batch, offsetof(struct ck_mag, bufs), sizeof(struct ck_chunk));
	return s;
}

static void ck_destroy(void *store)
{
	struct ck_store *s = store;
	/* Last call on this store: no concurrent pops, no stale poppers. */
	ck_stack_entry_t *e = ck_stack_batch_pop_npsc(&s->chunks);
	while (e != NULL) {
		ck_stack_entry_t *next = e->next;
		_zp_meta_free((char *)e - offsetof(struct ck_chunk, link));
		e = next;
	}
	_zp_meta_free(s);
}

/* A descriptor on the singles stack is claimed: a second give of it (two
 * threads putting one buffer at the same moment, which the front end
 * cannot see without an atomic on every put) finds the claim taken and is
 * dropped instead of linked, which would make a cycle and hand the buffer
 * out forever.  The push pays for a locked instruction anyway. */
static inline bool claim(zp_buf *b)
{
	uint32_t free_ = 0;
	return __atomic_compare_exchange_n(&b->_zp_claim, &free_, 1, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

static inline void unclaim(zp_buf *b)
{
	__atomic_store_n(&b->_zp_claim, 0, __ATOMIC_RELEASE);
}

/* Pop descriptors into the free end of out[0..n) (see zp_mag_drain_to_end). */
static unsigned take_singles(struct ck_store *s, struct ck_class *c, zp_buf **out, unsigned n,
			     unsigned got)
{
	while (got < n) {
		ck_stack_entry_t *e = lf_pop(s, &c->singles);
		if (e == NULL)
			break;
		out[n - 1 - got] = desc_of(e);
		unclaim(out[n - 1 - got]);
		got++;
	}
	return got;
}

static unsigned take_mags(struct ck_store *s, struct ck_class *c, zp_buf **out, unsigned n,
			  unsigned got)
{
	while (got < n) {
		ck_stack_entry_t *e = lf_pop(s, &c->full);
		if (e == NULL)
			break;
		struct ck_mag *m = mag_of(e);
		got += zp_mag_drain_to_end(m->bufs, &m->count, out, n - got);
		/* Type-stable + generation counted: a popped node may go straight
		 * back, to either stack. */
		lf_push(s, m->count != 0 ? &c->full : &c->empty, &m->link);
	}
	return got;
}

static unsigned ck_take(void *store, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	struct ck_store *s = store;
	struct ck_class *c = &s->cls[cls];
	unsigned got = 0;
	(void)hint;
	zp_assert(cls < s->classes);
	if (n <= ZP_LF_CK_SINGLE_MAX)
		got = take_singles(s, c, out, n, got);
	got = take_mags(s, c, out, n, got);
	if (got < n)
		got = take_singles(s, c, out, n, got);
	return zp_lf_taken(&c->count, out, n, got);
}

static void push_singles(struct ck_store *s, struct ck_class *c, zp_buf *const *in, unsigned n)
{
	unsigned dropped = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!claim(in[i])) {
			dropped++; /* already on the stack: see claim() */
			continue;
		}
		_zp_racy_by_design(&in[i]->_zp_link[0], sizeof in[i]->_zp_link[0]);
		lf_push(s, &c->singles, desc_entry(in[i])); /* in[n-1], the hottest, ends on top */
	}
	zp_lf_release(&c->count, dropped);
}

static unsigned ck_give(void *store, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			zp_buf **victims)
{
	struct ck_store *s = store;
	struct ck_class *c = &s->cls[cls];
	(void)hint;
	zp_assert(cls < s->classes);
	unsigned admit = zp_lf_admit(&c->count, s->max, in, n, victims);
	unsigned nv = n - admit;
	in += nv;
	if (admit <= ZP_LF_CK_SINGLE_MAX) {
		push_singles(s, c, in, admit);
		return nv;
	}
	while (admit > 0) {
		struct ck_mag *m = mag_get(s, c);
		if (m == NULL) { /* ENOMEM: the descriptors link themselves */
			push_singles(s, c, in, admit);
			break;
		}
		unsigned k = zp_mag_load(m->bufs, &m->count, s->mag.cap, in, admit);
		lf_push(s, &c->full, &m->link);
		in += k;
		admit -= k;
	}
	return nv;
}

static size_t ck_count(void *store, unsigned cls)
{
	struct ck_store *s = store;
	return zp_atomic_load_relaxed(&s->cls[cls].count);
}

static void ck_stats(void *store, struct zp_backend_stats *out)
{
	struct ck_store *s = store;
	out->contention = zp_atomic_load_relaxed(&s->contention);
	out->meta_bytes = zp_atomic_load_relaxed(&s->meta_bytes);
	/* reclaimed, grace_*: 0.  A popped magazine goes straight back (the
	 * generation counter, not a grace period, keeps stale pops out). */
}

/* Transfers of one buffer link the descriptors themselves (no memory of
 * the store's); larger ones fill magazines. */
static size_t ck_idle_meta(void *store)
{
	struct ck_store *s = store;
	return s->mag.cap <= ZP_LF_CK_SINGLE_MAX ? 0 : zp_mag_bytes_per_buf(&s->mag);
}

const struct zp_backend_ops _zp_backend_lockfree_ck = {
    .name = "lockfree-ck",
    .create = ck_create,
    .destroy = ck_destroy,
    .take = ck_take,
    .give = ck_give,
    .count = ck_count,
    .stats = ck_stats,
    .thread_exit = NULL,
    .idle_meta = ck_idle_meta,
};
