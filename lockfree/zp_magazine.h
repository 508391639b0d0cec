/*
 * zp_magazine.h - what the two lock-free flavours share: the magazine
 * body (a counted array of descriptor pointers), the per-class bound, and
 * the slab layout of magazine nodes.  See docs/lockfree.md.
 *
 * Order convention (the backend contract's, lib/zp_backend.h): in give(in, n)
 * and take(out, n) the arrays run from coldest to hottest, in[n-1] and
 * out[got-1] being the hottest.  A magazine keeps the same order:
 * bufs[count-1] is its hottest buffer, and take() serves from the top.
 */
#ifndef ZP_MAGAZINE_H
#define ZP_MAGAZINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "zp_backend.h"

/* Buffers per magazine: params->max_batch, clamped to this.  A give of
 * more than that (never done by the front end) fills several magazines. */
#define ZP_MAG_MAX_CAP 64u

/* Bytes carved per slab chunk (at least 2 nodes per chunk). */
#define ZP_MAG_CHUNK_BYTES 2048u

/* Append up to cap - *count of in[0..n) to a magazine; returns how many. */
static inline unsigned zp_mag_fill(zp_buf **bufs, uint32_t *count, uint32_t cap, zp_buf *const *in,
				   unsigned n)
{
	unsigned k = cap - *count;
	if (k > n)
		k = n;
	memcpy(bufs + *count, in, (size_t)k * sizeof(zp_buf *));
	*count += k;
	return k;
}

/* Move the hottest min(n, *count) buffers of a magazine to the END of
 * out[0..n) (they are hotter than anything taken after them, which goes
 * below them); returns how many.  out[n-k..n) receives bufs[count-k..count)
 * in order, so out[n-1] is the magazine's hottest. */
static inline unsigned zp_mag_drain_to_end(zp_buf **bufs, uint32_t *count, zp_buf **out, unsigned n)
{
	unsigned k = *count < n ? *count : n;
	*count -= k;
	memcpy(out + (n - k), bufs + *count, (size_t)k * sizeof(zp_buf *));
	return k;
}

/* Takes fill out[] from the end (hottest first); when fewer than n were
 * found, slide them down to out[0..got). */
static inline void zp_out_compact(zp_buf **out, unsigned n, unsigned got)
{
	if (got != 0 && got < n)
		memmove(out, out + (n - got), (size_t)got * sizeof(zp_buf *));
}

/*
 * The class bound.  `count` is an over-estimate of the buffers in a class
 * (reserved before a push, released after a pop), so reserving with one
 * fetch_add can never admit more than `max` buffers in all: a reserve
 * that overshoots gives the excess back and admits only max - old.  A
 * concurrent reserve may then see the transient overshoot and admit less
 * than the free room: the bound is exact from above, approximate from
 * below.  Returns how many of n are admitted.
 */
static inline unsigned zp_lf_reserve(_Atomic size_t *count, unsigned n, size_t max)
{
	size_t cur = zp_atomic_load_relaxed(count);
	if (cur >= max)
		return 0; /* full: no read-modify-write on the hot line */
	size_t old = zp_atomic_add_relaxed(count, n);
	if (old + n <= max)
		return n;
	unsigned admit = old < max ? (unsigned)(max - old) : 0;
	zp_atomic_sub_relaxed(count, n - admit);
	return admit;
}

static inline void zp_lf_release(_Atomic size_t *count, unsigned n)
{
	if (n != 0)
		zp_atomic_sub_relaxed(count, n);
}

/* Node stride (a multiple of 64 so nodes never share a cache line) and
 * nodes per chunk for a node of `hdr` bytes plus `cap` buffer pointers,
 * after a chunk header of `chunk_hdr` bytes (itself a multiple of 64). */
static inline void zp_mag_layout(size_t hdr, unsigned cap, size_t chunk_hdr, size_t *stride,
				 unsigned *per_chunk)
{
	size_t s = hdr + (size_t)cap * sizeof(zp_buf *);
	s = (s + 63) & ~(size_t)63;
	size_t k = (ZP_MAG_CHUNK_BYTES - chunk_hdr) / s;
	*stride = s;
	*per_chunk = k < 2 ? 2 : (unsigned)k;
}

/* The bytes of one chunk of that layout (its allocation). */
/* A magazine node's bytes per buffer it holds when full (rounded up). */
static inline size_t zp_mag_bytes_per_buf(size_t stride, unsigned cap)
{
	return (stride + cap - 1) / cap;
}

static inline size_t zp_mag_chunk_bytes(size_t chunk_hdr, size_t stride, unsigned per_chunk)
{
	return chunk_hdr + (size_t)per_chunk * stride;
}

#endif /* ZP_MAGAZINE_H */
