/*
 * zp_arena.c - the page arena (zp_arena.h): spans of 1 MiB, each cut into
 * equal slots of one stride (a whole number of pages), with the span's
 * header in its first page so that a block finds its span by masking.
 *
 * Invariants, under `lock`:
 *  - a slot is in use, or free; a free slot is dirty (its pages may be
 *    resident: it was used since the last purge) or clean (released, or
 *    never touched); dirty is a subset of free;
 *  - a span with a dirty slot is on its stride's warm list, newest free
 *    first; one with free slots that are all clean on its cold list; a
 *    full one on none.  Gets take a dirty slot of the first warm span,
 *    else a clean slot of the first cold one: reuse finds resident pages
 *    while there are any, and touches new pages only when there are none;
 *  - dirty_bytes is the sum of the strides of dirty slots; a free that
 *    takes it past _ZP_ARENA_DIRTY_MAX purges them all, so each purge (one
 *    madvise per run of adjacent dirty slots) gives back at least
 *    _ZP_ARENA_DIRTY_MAX bytes;
 *  - a span whose slots are all free and clean after a purge leaves its
 *    list for the empty list (any stride may take it), beyond EMPTY_KEEP
 *    of which it is unmapped.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>

#include "zp_arena.h"
#include "zp_poison.h"

#define SPAN _ZP_ARENA_SPAN
#define HEADER ZP_PAGE
/* strides of 1 .. 16 pages: a class below _ZP_MMAP_MIN may round up to it
 * (62 KiB with 16 classes per doubling) */
#define STRIDES (_ZP_MMAP_MIN / ZP_PAGE)
#define MAX_SLOTS ((SPAN - HEADER) / ZP_PAGE)
#define WORDS ((MAX_SLOTS + 63) / 64)
#define EMPTY_KEEP 8u

_Static_assert(sizeof(size_t) >= 8 || SPAN <= ((size_t)1 << 30), "span size");
_Static_assert(_ZP_MMAP_MIN % ZP_PAGE == 0, "strides are whole pages");

enum where { NONE, WARM, COLD, EMPTY };

struct span {
	LIST_ENTRY(span) link; /* on the list `where` says */
	size_t stride;         /* 0 while empty */
	uint32_t nslots, nfree, ndirty;
	enum where where;
	uint64_t free[WORDS];
	uint64_t dirty[WORDS];
};
_Static_assert(sizeof(struct span) <= HEADER, "the header fits its page");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
LIST_HEAD(span_list, span);
static struct span_list warm[STRIDES], cold[STRIDES]; /* per stride */
static struct span_list empty;                        /* all slots free and clean, no stride */
static unsigned nempty;
static uint64_t dirty_bytes;

static struct span *span_of(const void *p)
{
	const unsigned char *c = p;
	return (struct span *)(c - ((uintptr_t)c & (SPAN - 1)));
}

static unsigned char *slot_addr(struct span *s, uint32_t i)
{
	return (unsigned char *)s + HEADER + (size_t)i * s->stride;
}

/* The slot size of a block of cap bytes: whole pages. */
static size_t stride_of(size_t cap)
{
	return (cap + ZP_PAGE - 1) & ~(size_t)(ZP_PAGE - 1);
}

size_t _zp_arena_footprint(size_t cap)
{
	size_t stride = stride_of(cap);
	return SPAN / ((SPAN - HEADER) / stride);
}

/* The index of a stride's lists. */
static unsigned stride_index(size_t stride)
{
	return (unsigned)(stride / ZP_PAGE - 1);
}

static struct span_list *list_of(enum where w, size_t stride)
{
	if (w == EMPTY)
		return &empty;
	unsigned k = stride_index(stride);
	return w == WARM ? &warm[k] : &cold[k];
}

static void unlink_span(struct span *s)
{
	if (s->where == NONE)
		return;
	LIST_REMOVE(s, link);
	s->where = NONE;
}

/* Move s to the head of list w (NONE: off every list). */
static void move_span(struct span *s, enum where w)
{
	unlink_span(s);
	if (w == NONE)
		return;
	LIST_INSERT_HEAD(list_of(w, s->stride), s, link);
	s->where = w;
}

/* A span-aligned mapping: map twice the size and cut the ends off. */
static struct span *span_map(void)
{
	unsigned char *raw =
	    mmap(NULL, 2 * SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	size_t head = (SPAN - ((uintptr_t)raw & (SPAN - 1))) & (SPAN - 1);
	unsigned char *start = raw + head;
	if (head > 0)
		munmap(raw, head);
	if (SPAN - head > 0)
		munmap(start + SPAN, SPAN - head);
#ifdef MADV_NOHUGEPAGE
	/* Slots give back single pages: a transparent huge page (THP
	 * "always") would make one touched byte cost 2 MiB.  Advice only. */
	(void)madvise(start, SPAN, MADV_NOHUGEPAGE);
#endif
	return (struct span *)(void *)start;
}

static void span_unmap(struct span *s)
{
	_zp_unpoison(s, SPAN); /* the address range may be anyone's next */
	munmap(s, SPAN);
}

static void span_format(struct span *s, size_t stride)
{
	memset(s, 0, sizeof *s);
	s->stride = stride;
	s->nslots = (uint32_t)((SPAN - HEADER) / stride);
	s->nfree = s->nslots;
	for (uint32_t i = 0; i < s->nslots; i++)
		s->free[i / 64] |= (uint64_t)1 << (i % 64);
	_zp_poison((unsigned char *)s + HEADER, SPAN - HEADER);
}

/* A span for `stride`, from the empty list or a new mapping; off lists. */
static struct span *span_new(size_t stride)
{
	struct span *s = LIST_FIRST(&empty);
	if (s != NULL) {
		unlink_span(s);
		nempty--;
	} else {
		s = span_map();
		if (s == NULL)
			return NULL;
	}
	span_format(s, stride);
	return s;
}

static uint32_t first_bit(const uint64_t *words)
{
	for (uint32_t w = 0; w < WORDS; w++)
		if (words[w] != 0)
			return w * 64 + (uint32_t)__builtin_ctzll(words[w]);
	return MAX_SLOTS; /* not reached: the caller knows a bit is set */
}

static bool bit(const uint64_t *words, uint32_t i)
{
	return (words[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *words, uint32_t i, bool on)
{
	uint64_t m = (uint64_t)1 << (i % 64);
	words[i / 64] = on ? words[i / 64] | m : words[i / 64] & ~m;
}

void *_zp_arena_alloc(size_t cap)
{
	zp_assert(_zp_arena_holds(cap));
	size_t stride = stride_of(cap);
	unsigned k = stride_index(stride);
	pthread_mutex_lock(&lock);
	struct span *s = LIST_EMPTY(&warm[k]) ? LIST_FIRST(&cold[k]) : LIST_FIRST(&warm[k]);
	if (s == NULL) {
		s = span_new(stride);
		if (s == NULL) {
			pthread_mutex_unlock(&lock);
			errno = ENOMEM;
			return NULL;
		}
		move_span(s, COLD);
	}
	uint32_t i;
	if (s->ndirty > 0) {
		i = first_bit(s->dirty);
		bit_set(s->dirty, i, false);
		s->ndirty--;
		dirty_bytes -= stride;
	} else {
		i = first_bit(s->free);
	}
	bit_set(s->free, i, false);
	s->nfree--;
	if (s->nfree == 0)
		move_span(s, NONE);
	else if (s->ndirty == 0 && s->where == WARM)
		move_span(s, COLD);
	pthread_mutex_unlock(&lock);
	unsigned char *p = slot_addr(s, i);
	_zp_unpoison(p, cap); /* the rest of the slot stays poisoned */
	_zp_hg_clean(p, cap); /* new memory for helgrind, as after malloc */
	return p;
}

/* Give the dirty slots of s back: one madvise per run of adjacent ones. */
static uint64_t span_purge(struct span *s)
{
	uint64_t given = 0;
	uint32_t i = 0;
	while (s->ndirty > 0 && i < s->nslots) {
		if (!bit(s->dirty, i)) {
			i++;
			continue;
		}
		uint32_t j = i;
		while (j < s->nslots && bit(s->dirty, j)) {
			bit_set(s->dirty, j, false);
			s->ndirty--;
			j++;
		}
		size_t len = (size_t)(j - i) * s->stride;
		(void)madvise(slot_addr(s, i), len, MADV_DONTNEED); /* cannot fail on our mapping */
		given += len;
		i = j;
	}
	return given;
}

/* Under lock. */
static uint64_t purge_locked(void)
{
	uint64_t given = 0;
	for (unsigned k = 0; k < STRIDES; k++) {
		while (!LIST_EMPTY(&warm[k])) {
			struct span *s = LIST_FIRST(&warm[k]);
			given += span_purge(s);
			move_span(s, COLD);
		}
		struct span *next;
		for (struct span *s = LIST_FIRST(&cold[k]); s != NULL; s = next) {
			next = LIST_NEXT(s, link);
			if (s->nfree < s->nslots)
				continue;
			move_span(s, NONE);
			if (nempty < EMPTY_KEEP) {
				s->stride = 0;
				move_span(s, EMPTY);
				nempty++;
			} else {
				span_unmap(s);
			}
		}
	}
	dirty_bytes = 0;
	return given;
}

void _zp_arena_free(void *p, size_t cap)
{
	struct span *s = span_of(p);
	size_t stride = stride_of(cap);
	size_t off = (size_t)((unsigned char *)p - (unsigned char *)s);
	uint32_t i = off < HEADER ? 0 : (uint32_t)((off - HEADER) / stride);
	_zp_poison(p, stride);
	pthread_mutex_lock(&lock);
	/* Cheap enough to check always: a wrong free here would hand one
	 * slot to two buffers. */
	if (s->stride != stride || off < HEADER || (off - HEADER) % stride != 0 || bit(s->free, i))
		_zp_fatal(__FILE__, __LINE__, "arena free of a block it did not hand out");
	bit_set(s->free, i, true);
	bit_set(s->dirty, i, true);
	s->nfree++;
	s->ndirty++;
	dirty_bytes += stride;
	move_span(s, WARM);
	if (dirty_bytes > _ZP_ARENA_DIRTY_MAX)
		purge_locked();
	pthread_mutex_unlock(&lock);
}

uint64_t _zp_arena_purge(void)
{
	pthread_mutex_lock(&lock);
	uint64_t given = purge_locked();
	while (!LIST_EMPTY(&empty)) {
		struct span *s = LIST_FIRST(&empty);
		unlink_span(s);
		nempty--;
		span_unmap(s);
	}
	pthread_mutex_unlock(&lock);
	return given;
}

uint64_t _zp_test_arena_dirty_bytes(void)
{
	pthread_mutex_lock(&lock);
	uint64_t d = dirty_bytes;
	pthread_mutex_unlock(&lock);
	return d;
}

void _zp_arena_fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

void _zp_arena_fork_release(void)
{
	pthread_mutex_unlock(&lock);
}
