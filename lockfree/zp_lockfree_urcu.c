/*
 * zp_lockfree_urcu.c - the lock-free backend on liburcu, one source for its
 * RCU flavours: lockfree/backend.cmake compiles it once per flavour, with
 * -DZP_LF_URCU_FLAVOUR=<one of these>, into an object library of its own;
 * each object defines that flavour's ops and its own static state.
 *
 *   ZP_URCU_MB    "lockfree-urcu", the backend
 *   ZP_URCU_MEMB  "lockfree-urcu-memb", trial: the backend's flavour before
 *                 mb (it aborts when membarrier is refused later)
 *   ZP_URCU_BP    "lockfree-urcu-bp", trial: the flavour liburcu meant for
 *                 libraries (it registers threads itself and survives fork
 *                 through hooks)
 *   ZP_URCU_QSBR  "lockfree-urcu-qsbr", trial
 *
 * Why mb (docs/findings.md, question 4, measures the four side by side):
 * the memb and bp flavours make the writer issue membarrier(2) in every
 * grace period and abort the process (urcu_die) when the kernel refuses
 * it, which a seccomp filter installed after start-up does; a library
 * never kills its host.  mb pays a full fence on each side of a read-side
 * section instead and never calls membarrier.  QSBR needs its callers'
 * threads to announce quiescent states.  The trials are built with
 * -DZP_URCU_TRIALS=ON.  Design, ABA and reclamation argument:
 * docs/lockfree.md.
 *
 * Per class, three cds_lfs stacks and an approximate buffer count in one
 * cache line:
 *
 *   full   magazines holding 1..cap descriptors (a stack of batches)
 *   empty  spare magazines of this class
 *   limbo  popped empty magazines waiting to start a grace period
 *
 * Pops are __cds_lfs_pop inside an RCU read-side critical section.
 * liburcu's rule for that technique: a popped node may be
 * neither freed nor pushed back before a grace period has elapsed, or a
 * stale popper could swing the head to a `next` that is no longer in the
 * stack (ABA).  Hence:
 *
 *   - descriptors are never stack nodes here (a buffer is reused at once:
 *     it is copied out of its magazine, and only the magazine waits);
 *   - a magazine popped from `full` is retired: pushed on `limbo`, which
 *     is only ever emptied with __cds_lfs_pop_all (no grace period owed);
 *     every ZP_LF_URCU_LIMBO_BATCH retirements the chain goes to one
 *     call_rcu(), whose callback files it on `empty` (one that still holds
 *     buffers, because no spare was at hand, gets its own call_rcu back to
 *     `full`);
 *   - a take that leaves buffers in a magazine moves them into a spare
 *     (popped from `empty`) and pushes that, never the popped one;
 *   - a spare popped from `empty` may go to `full` at once: every way back
 *     to `empty` passes through a grace period that starts after the pop.
 *
 * Magazines live in chunks freed only in destroy(), after their callbacks ran.
 * Threads register with RCU lazily and unregister in a pthread key
 * destructor (and early in ops->thread_exit when the front end calls it).
 *
 * In a forked child (fork without exec), liburcu is never called again:
 * the registry holds the parent's threads, of which one may have been
 * inside a read-side section (no grace period could end) or holding the
 * registry lock, and glibc reuses their stacks, TLS and reader records
 * included, for the child's new threads (liburcu's README: only urcu-bp
 * survives fork without exec, and only through hooks the application
 * calls).  The child's pops run under one mutex instead (child_lock): with
 * one popper at a time no pop can be stale, so a popped magazine goes
 * straight back to a stack and no grace period is owed.  Callbacks queued
 * before the fork never run in the child: their magazines, and any buffers
 * in them, stay unused until destroy frees them.
 *
 * liburcu offers no try-pop, so CAS retries cannot be counted: the
 * contention statistic of this flavour is always 0.
 *
 * The QSBR trial: QSBR's read side is free, but a grace period waits for
 * every registered online thread to pass a quiescent state, and a library
 * cannot make its callers' threads announce them: a thread that put a
 * buffer and then blocked in read() would stall reclamation for as long.
 * So the trial keeps its threads offline between calls and goes online for
 * each take and give, a full fence each way.
 */
#define ZP_URCU_MB 0
#define ZP_URCU_MEMB 1
#define ZP_URCU_BP 2
#define ZP_URCU_QSBR 3
/* The build always names the flavour; the default is for tools that read
 * this file alone (cppcheck). */
#ifndef ZP_LF_URCU_FLAVOUR
#define ZP_LF_URCU_FLAVOUR ZP_URCU_MB
#endif

#include "zp_backend.h"
#include "zp_backend_services.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

/* The stack is always called out of line: its inline version computes
 * &NULL->node on an empty stack (UBSan reports it), and under the race
 * checkers its racy-by-design accesses must stay inside the library's own
 * frames (uninstrumented for TSan; suppressed by object name for
 * helgrind/DRD, tests/lockfree.supp).  The RCU read side is inlined
 * (_LGPL_SOURCE) except under the race checkers, for the same reason, and
 * except the bp flavour's under UBSan: liburcu-bp's registry places its
 * reader records, declared 128-byte aligned, at 32-byte offsets, and its
 * inline read side then reads a misaligned record (liburcu's, reported in
 * our frames). */
#include <urcu/lfstack.h>
#if !ZP_VALGRIND && !_ZP_TSAN && !defined(_LGPL_SOURCE) &&                                         \
    !(ZP_LF_URCU_FLAVOUR == ZP_URCU_BP && defined(__SANITIZE_ADDRESS__))
#define _LGPL_SOURCE 1
#endif
#if ZP_LF_URCU_FLAVOUR == ZP_URCU_QSBR
#include <urcu-qsbr.h>
#define ZP_LF_URCU_NAME "lockfree-urcu-qsbr"
#define ZP_LF_URCU_OPS _zp_backend_lockfree_urcu_qsbr
/* Online for one call: the pops' stale reads are covered from here. */
#define rcu_section_begin()                                                                        \
	do {                                                                                       \
		rcu_thread_online();                                                               \
		rcu_read_lock();                                                                   \
	} while (0)
#define rcu_section_end()                                                                          \
	do {                                                                                       \
		rcu_read_unlock();                                                                 \
		rcu_thread_offline();                                                              \
	} while (0)
#elif ZP_LF_URCU_FLAVOUR == ZP_URCU_BP
#include <urcu-bp.h>
#define ZP_LF_URCU_NAME "lockfree-urcu-bp"
#define ZP_LF_URCU_OPS _zp_backend_lockfree_urcu_bp
#elif ZP_LF_URCU_FLAVOUR == ZP_URCU_MEMB
#define RCU_MEMBARRIER
#include <urcu.h>
#define ZP_LF_URCU_NAME "lockfree-urcu-memb"
#define ZP_LF_URCU_OPS _zp_backend_lockfree_urcu_memb
#elif ZP_LF_URCU_FLAVOUR == ZP_URCU_MB
#define RCU_MB
#include <urcu.h>
#define ZP_LF_URCU_NAME "lockfree-urcu"
#define ZP_LF_URCU_OPS _zp_backend_lockfree_urcu
#else
#error "unknown ZP_LF_URCU_FLAVOUR"
#endif
#ifndef rcu_section_begin /* every flavour but QSBR: the read lock alone */
#define rcu_section_begin() rcu_read_lock()
#define rcu_section_end() rcu_read_unlock()
#endif

struct urcu_store;

struct urcu_mag {
	struct cds_lfs_node link; /* on its class's full or empty stack */
	struct rcu_head rcu;      /* while waiting for a grace period */
	struct urcu_store *store;
	uint64_t queued_ns; /* when its call_rcu was queued (the statistics) */
	uint32_t cls;
	uint32_t count; /* bufs[0..count), bufs[count-1] the hottest */
	zp_buf *bufs[];
};

struct urcu_chunk {
	struct cds_lfs_node link; /* on store->chunks */
} ZP_ALIGNED_CL;

struct urcu_class {
	struct __cds_lfs_stack full;
	struct __cds_lfs_stack empty;
	struct __cds_lfs_stack limbo; /* popped, empty, before call_rcu: push + pop_all only */
	_Atomic size_t count;         /* >= buffers in full (and in retiring magazines) */
	_Atomic size_t pending;       /* call_rcu callbacks of this class not yet run */
} ZP_ALIGNED_CL;

struct urcu_store {
	unsigned classes;
	size_t max; /* max_per_class */
	struct zp_mag_shape mag;
	size_t mag_cap; /* bound on magazines allocated */
	struct __cds_lfs_stack chunks;
	_Atomic size_t mags ZP_ALIGNED_CL; /* magazines allocated */
	/* Written by the callbacks only (the call_rcu worker): off the hot
	 * path, in a line of their own. */
	struct {
		_Atomic uint64_t reclaimed; /* magazines the callbacks filed */
		_Atomic uint64_t runs;      /* callbacks run */
		_Atomic uint64_t ns;        /* queued-to-run latency, summed */
		_Atomic uint64_t max_ns;
	} grace ZP_ALIGNED_CL;
	struct urcu_class cls[];
};

_Static_assert(sizeof(struct urcu_class) == ZP_CACHELINE, "one cache line per class");

/* Empty magazines retired per call_rcu. */
#ifndef ZP_LF_URCU_LIMBO_BATCH
#define ZP_LF_URCU_LIMBO_BATCH 32u
#endif

/* Magazines that may wait for a grace period, in bytes, beyond the ones
 * the class bounds account for (docs/lockfree.md: the carrier bound). */
#ifndef ZP_LF_URCU_RETIRE_BYTES
#define ZP_LF_URCU_RETIRE_BYTES (16u << 20)
#endif

/* ---- lazy RCU registration -------------------------------------------- */

/* True in a forked child (set by child_after_fork, while the child has one
 * thread, so every thread it creates later sees it): liburcu is not called
 * again, and pops run under child_lock. */
static bool forked_child;
static pthread_mutex_t child_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t rcu_key;
static bool rcu_key_ok;
static _Thread_local bool rcu_registered;
static _Thread_local unsigned retired_here; /* magazines this thread put in limbo */

static void rcu_thread_unregister(void)
{
	if (rcu_registered) {
		/* In a forked child the registry is the parent's: leave it. */
		if (!forked_child)
			rcu_unregister_thread();
		rcu_registered = false;
	}
}

/* Runs at thread exit for every thread that registered.  If a later key
 * destructor (the front end's cache drain) uses a store again, the thread
 * re-registers and re-arms the key, and glibc calls this once more. */
static void rcu_key_dtor(void *arg)
{
	(void)arg;
	rcu_thread_unregister();
}

static void child_after_fork(void)
{
	forked_child = true;
}

/* Once per process, at the first create: the key, and the fork handler
 * that switches a child to child_lock (a fork is a child's whether or not
 * a store is alive then: the registry outlives stores). */
static void rcu_key_init(void)
{
	rcu_key_ok = pthread_key_create(&rcu_key, rcu_key_dtor) == 0 &&
		     pthread_atfork(NULL, NULL, child_after_fork) == 0;
}

static void rcu_register_slow(void)
{
	rcu_register_thread();
#if ZP_LF_URCU_FLAVOUR == ZP_URCU_QSBR
	rcu_thread_offline(); /* registered QSBR threads start online */
#endif
	rcu_registered = true;
	/* create() made sure the key exists, so the thread will unregister. */
	(void)pthread_setspecific(rcu_key, (void *)1);
}

/* Around every use of the stacks: a read-side section, or child_lock in a
 * forked child. */
static inline void lf_enter(void)
{
	if (ZP_UNLIKELY(forked_child)) {
		pthread_mutex_lock(&child_lock);
		return;
	}
	if (ZP_UNLIKELY(!rcu_registered))
		rcu_register_slow();
	rcu_section_begin();
}

static inline void lf_exit(void)
{
	if (ZP_UNLIKELY(forked_child)) {
		pthread_mutex_unlock(&child_lock);
		return;
	}
	rcu_section_end();
}

/* ---- stacks and magazines --------------------------------------------- */

/* Before call_rcu: one clock read per grace period asked for (every
 * ZP_LF_URCU_LIMBO_BATCH retirements), none per operation. */
static inline void grace_queued(struct urcu_mag *m)
{
	m->queued_ns = _zp_clock_ns(CLOCK_MONOTONIC);
}

/* In a callback, before its last access to the store: n magazines, whose
 * call_rcu was queued at queued_ns, are back in use. */
static void grace_done(struct urcu_store *s, uint64_t queued_ns, uint64_t n)
{
	uint64_t lat = _zp_clock_ns(CLOCK_MONOTONIC) - queued_ns;
	zp_atomic_add_relaxed(&s->grace.reclaimed, n);
	zp_atomic_add_relaxed(&s->grace.runs, 1);
	zp_atomic_add_relaxed(&s->grace.ns, lat);
	zp_atomic_max_relaxed(&s->grace.max_ns, lat);
}

static inline struct urcu_mag *mag_of(struct cds_lfs_node *n)
{
	return caa_container_of(n, struct urcu_mag, link);
}

static inline void lf_push(struct __cds_lfs_stack *st, struct cds_lfs_node *n)
{
	_zp_hb_before(st);
	cds_lfs_push(st, n);
}

/* Caller is inside lf_enter(). */
static inline struct urcu_mag *lf_pop(struct __cds_lfs_stack *st)
{
	struct cds_lfs_node *n = __cds_lfs_pop(st);
	if (n == NULL)
		return NULL;
	_zp_hb_after(st);
	return mag_of(n);
}

/* Carve a new chunk: keep one magazine, file the others as spares.  NULL
 * when out of memory or over the magazine bound. */
static struct urcu_mag *mag_grow(struct urcu_store *s, unsigned cls)
{
	size_t had = zp_atomic_add_relaxed(&s->mags, s->mag.per_chunk);
	if (had + s->mag.per_chunk > s->mag_cap) {
		zp_atomic_sub_relaxed(&s->mags, s->mag.per_chunk);
		return NULL;
	}
	struct urcu_chunk *ch = _zp_meta_alloc(zp_mag_chunk_bytes(&s->mag, sizeof *ch));
	if (ch == NULL) {
		zp_atomic_sub_relaxed(&s->mags, s->mag.per_chunk);
		return NULL;
	}
	_zp_racy_by_design(&ch->link, sizeof ch->link);
	cds_lfs_push(&s->chunks, &ch->link);
	struct urcu_class *c = &s->cls[cls];
	for (unsigned i = 0; i < s->mag.per_chunk; i++) {
		struct urcu_mag *m = zp_mag_node(&s->mag, ch + 1, i);
		m->store = s;
		m->cls = cls;
		/* Link words of the library's structures: raced on by design. */
		_zp_racy_by_design(&m->link, sizeof m->link);
		_zp_racy_by_design(&m->rcu, sizeof m->rcu);
		if (i > 0)
			lf_push(&c->empty, &m->link); /* never popped yet: no grace period owed */
	}
	return zp_mag_node(&s->mag, ch + 1, 0);
}

static void limbo_flush(struct urcu_class *c);

/* Caller is inside lf_enter(). */
static inline struct urcu_mag *mag_get(struct urcu_store *s, unsigned cls)
{
	struct urcu_class *c = &s->cls[cls];
	struct urcu_mag *m = lf_pop(&c->empty);
	if (m != NULL)
		return m;
	limbo_flush(c); /* start the stragglers' grace period too */
	return mag_grow(s, cls);
}

/* After a grace period: no thread still holds a stale reference to m from
 * a pop, so it may be pushed again. */
static void mag_reuse(struct rcu_head *head)
{
	struct urcu_mag *m = caa_container_of(head, struct urcu_mag, rcu);
	_zp_hb_after(m);
	struct urcu_class *c = &m->store->cls[m->cls];
	grace_done(m->store, m->queued_ns, 1); /* before the push hands m over */
	lf_push(m->count != 0 ? &c->full : &c->empty, &m->link);
	/* Last access to the store: destroy() may free it once this is 0. */
	zp_atomic_sub_release(&c->pending, 1);
}

/* File a chain of empty magazines taken from limbo on `empty`; returns how
 * many. */
static uint64_t file_chain(struct urcu_class *c, struct cds_lfs_node *n)
{
	uint64_t filed = 0;
	for (struct cds_lfs_node *next; n != NULL; n = next) {
		next = n->next; /* read before the push rewrites it */
		lf_push(&c->empty, n);
		filed++;
	}
	return filed;
}

/* The same for a whole chain of empty magazines taken from limbo: one
 * grace period (and one call_rcu) for ZP_LF_URCU_LIMBO_BATCH of them. */
static void limbo_reuse(struct rcu_head *head)
{
	struct urcu_mag *first = caa_container_of(head, struct urcu_mag, rcu);
	_zp_hb_after(first);
	struct urcu_store *s = first->store;
	struct urcu_class *c = &s->cls[first->cls];
	uint64_t queued = first->queued_ns; /* before the pushes hand first over */
	uint64_t filed = file_chain(c, &first->link);
	grace_done(s, queued, filed);
	zp_atomic_sub_release(&c->pending, 1);
}

static void limbo_flush(struct urcu_class *c)
{
	struct cds_lfs_head *h = __cds_lfs_pop_all(&c->limbo);
	if (h == NULL)
		return;
	_zp_hb_after(&c->limbo);
	if (ZP_UNLIKELY(forked_child)) { /* no pop can be stale: file them now */
		(void)file_chain(c, &h->node);
		return;
	}
	struct urcu_mag *first = mag_of(&h->node);
	zp_atomic_add_relaxed(&c->pending, 1);
	grace_queued(first);
	_zp_hb_before(first);
	call_rcu(&first->rcu, limbo_reuse);
}

/* m was popped from c->full: it may not be pushed on a stack of this store
 * before a grace period has elapsed.  An empty one waits in limbo (pushing
 * it there is safe: limbo is only ever emptied with pop_all, which needs no
 * grace period, and limbo's chains reach the stacks only through call_rcu).
 * One that still holds buffers (no spare was at hand) gets its own
 * call_rcu, so that its buffers are back after one grace period. */
static inline void mag_retire(struct urcu_class *c, struct urcu_mag *m)
{
	if (ZP_UNLIKELY(forked_child)) { /* under child_lock: no pop is stale */
		lf_push(m->count != 0 ? &c->full : &c->empty, &m->link);
		return;
	}
	if (ZP_UNLIKELY(m->count != 0)) {
		zp_atomic_add_relaxed(&c->pending, 1);
		grace_queued(m);
		_zp_hb_before(m);
		call_rcu(&m->rcu, mag_reuse);
		return;
	}
	lf_push(&c->limbo, &m->link);
	/* A per-thread count, not a shared one: no RMW on the hot path.  A
	 * class may be left with a few unflushed magazines when a thread's
	 * count fires elsewhere; mag_get flushes them when it runs short. */
	if (++retired_here % ZP_LF_URCU_LIMBO_BATCH == 0)
		limbo_flush(c);
}

/* ---- the ops ------------------------------------------------------------ */

static void *probe_thread(void *arg)
{
	return arg;
}

/* Whether liburcu's default call_rcu worker exists or could be created now:
 * it is created once per process (and again in a forked child), and
 * liburcu's creation path has no error return.  A thread we create and
 * join shows that a stack and a thread can be had (the worker then usually
 * gets the stack glibc cached from it). */
static bool call_rcu_worker_possible(void)
{
	static _Atomic bool started; /* a thread was had: the worker starts next */
	if (zp_atomic_load_acquire(&started))
		return true;
	pthread_t t;
	if (pthread_create(&t, NULL, probe_thread, NULL) != 0)
		return false;
	pthread_join(t, NULL);
	zp_atomic_store_release(&started, true);
	return true;
}

static void *urcu_create(const struct zp_store_params *p)
{
	if (p->classes == 0) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&rcu_key_once, rcu_key_init);
	if (!rcu_key_ok) { /* threads could not unregister at exit */
		errno = EAGAIN;
		return NULL;
	}
	/* Start liburcu's call_rcu worker now rather than in the first take:
	 * that keeps thread creation off the hot path.  liburcu aborts the
	 * process when it cannot create that thread, so first make sure a
	 * thread can be had (tests/test_resource_limits.c).  The worker is never joined
	 * (tests/lockfree.supp names its TLS block, also when it inherits the
	 * probe thread's cached stack). */
	if (!forked_child) {
		if (!call_rcu_worker_possible()) {
			errno = EAGAIN;
			return NULL;
		}
		(void)get_default_call_rcu_data();
	}
	struct urcu_store *s =
	    _zp_meta_alloc(sizeof *s + (size_t)p->classes * sizeof(struct urcu_class));
	if (s == NULL)
		return NULL;
	/* _zp_meta_alloc zeroes: every __cds_lfs_stack starts empty (NULL). */
	s->classes = p->classes;
	s->max = p->max_per_class;
	s->mag = zp_mag_shape_for(p->max_batch, offsetof(struct urcu_mag, bufs),
				  sizeof(struct urcu_chunk));
	/* Every magazine on a full stack holds a counted buffer, so the
	 * bounds on buffers (per class, and all classes: max_buffers) account
	 * for that many of them; the rest is room for spares and for magazines
	 * waiting for a grace period.  (With max_per_class unbounded and
	 * max_buffers not yet passed, a call_rcu worker starved of CPU let
	 * the magazines of three threads cycling buffers through the store
	 * reach gigabytes.) */
	size_t slack = ZP_LF_URCU_RETIRE_BYTES / s->mag.stride;
	if (slack < 1024)
		slack = 1024;
	size_t counted = (size_t)p->classes * p->max_per_class;
	if (counted > p->max_buffers)
		counted = p->max_buffers;
	s->mag_cap = counted + slack;
	return s;
}

/* Callbacks of this store queued and not yet run. */
static size_t pending_callbacks(struct urcu_store *s)
{
	size_t pending = 0;
	for (unsigned i = 0; i < s->classes; i++)
		pending += zp_atomic_load_acquire(&s->cls[i].pending);
	return pending;
}

static void urcu_destroy(void *store)
{
	struct urcu_store *s = store;
	/* In a forked child no callback runs (liburcu's worker is not
	 * recreated), so none can still touch the store: free it at once. */
	size_t pending = forked_child ? 0 : pending_callbacks(s);
	/* Wait until this store's callbacks have run (every one was queued
	 * before this call).  Not rcu_barrier(): it allocates, and liburcu
	 * aborts the process when that fails; a grace period and a
	 * short sleep per round allocate nothing, and the worker runs the
	 * callbacks of one grace period in one batch. */
	while (pending != 0) {
		synchronize_rcu();
		pending = pending_callbacks(s);
		if (pending != 0)
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	/* Last call on this store: nothing pushes or pops concurrently. */
	struct cds_lfs_head *h = __cds_lfs_pop_all(&s->chunks);
	struct cds_lfs_node *n = h != NULL ? &h->node : NULL;
	while (n != NULL) {
		struct cds_lfs_node *next = n->next;
		_zp_meta_free(caa_container_of(n, struct urcu_chunk, link));
		n = next;
	}
	_zp_meta_free(s);
}

static unsigned urcu_take(void *store, unsigned hint, unsigned cls, zp_buf **out, unsigned n)
{
	struct urcu_store *s = store;
	struct urcu_class *c = &s->cls[cls];
	unsigned got = 0;
	(void)hint;
	zp_assert(cls < s->classes);
	lf_enter();
	while (got < n) {
		struct urcu_mag *m = lf_pop(&c->full);
		if (m == NULL)
			break;
		got += zp_mag_drain_to_end(m->bufs, &m->count, out, n - got);
		if (m->count != 0) {
			/* The rest stays visible in a spare; m itself must wait. */
			struct urcu_mag *e = mag_get(s, cls);
			if (e != NULL) {
				(void)zp_mag_load(e->bufs, &e->count, s->mag.cap, m->bufs,
						  m->count);
				m->count = 0;
				lf_push(&c->full, &e->link);
			} /* else m goes back to full after the grace period */
		}
		mag_retire(c, m);
	}
	lf_exit();
	return zp_lf_taken(&c->count, out, n, got);
}

static unsigned urcu_give(void *store, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			  zp_buf **victims)
{
	struct urcu_store *s = store;
	struct urcu_class *c = &s->cls[cls];
	(void)hint;
	zp_assert(cls < s->classes);
	unsigned admit = zp_lf_admit(&c->count, s->max, in, n, victims);
	unsigned nv = n - admit;
	in += nv;
	if (admit == 0)
		return nv;
	lf_enter();
	while (admit > 0) {
		struct urcu_mag *m = mag_get(s, cls);
		if (m == NULL)
			break;
		unsigned k = zp_mag_load(m->bufs, &m->count, s->mag.cap, in, admit);
		lf_push(&c->full, &m->link);
		in += k;
		admit -= k;
	}
	lf_exit();
	if (admit > 0) { /* no magazine (ENOMEM or the bound): refuse the rest */
		zp_lf_release(&c->count, admit);
		memcpy(victims + nv, in, (size_t)admit * sizeof(zp_buf *));
		nv += admit;
	}
	return nv;
}

static size_t urcu_count(void *store, unsigned cls)
{
	struct urcu_store *s = store;
	return zp_atomic_load_relaxed(&s->cls[cls].count);
}

static void urcu_stats(void *store, struct zp_backend_stats *out)
{
	struct urcu_store *s = store;
	out->contention = 0; /* liburcu does not report CAS retries */
	out->reclaimed = zp_atomic_load_relaxed(&s->grace.reclaimed);
	out->grace_periods = zp_atomic_load_relaxed(&s->grace.runs);
	out->grace_ns = zp_atomic_load_relaxed(&s->grace.ns);
	out->grace_max_ns = zp_atomic_load_relaxed(&s->grace.max_ns);
	out->meta_bytes = sizeof *s + (size_t)s->classes * sizeof(struct urcu_class) +
			  zp_atomic_load_relaxed(&s->mags) / s->mag.per_chunk *
			      zp_mag_chunk_bytes(&s->mag, sizeof(struct urcu_chunk));
}

/* The magazine a buffer is in, and one popped before it that waits for a
 * grace period. */
static size_t urcu_idle_meta(void *store)
{
	struct urcu_store *s = store;
	return 2 * zp_mag_bytes_per_buf(&s->mag);
}

static void urcu_thread_exit(void *store)
{
	(void)store;
	rcu_thread_unregister(); /* early; a later use re-registers lazily */
}

/* fork: liburcu is left alone (a child never calls it again, and the
 * parent's worker and registry go on as they were); only child_lock, which
 * a child's threads may hold, must be free when a child forks again.  The
 * front end calls these for each store, one at a time, holding its locks. */
static unsigned forking;
static bool child_lock_held; /* taken by the prepare handler */

static void urcu_fork_prepare(void *store)
{
	(void)store;
	if (forking++ == 0 && forked_child) {
		pthread_mutex_lock(&child_lock);
		child_lock_held = true;
	}
}

/* forked_child may turn true between prepare and this call (in the child,
 * whichever fork handler runs first), hence child_lock_held. */
static void urcu_fork_release(void *store)
{
	(void)store;
	if (--forking == 0 && child_lock_held) {
		child_lock_held = false;
		pthread_mutex_unlock(&child_lock);
	}
}

const struct zp_backend_ops ZP_LF_URCU_OPS = {
    .name = ZP_LF_URCU_NAME,
    .create = urcu_create,
    .destroy = urcu_destroy,
    .take = urcu_take,
    .give = urcu_give,
    .count = urcu_count,
    .stats = urcu_stats,
    .thread_exit = urcu_thread_exit,
    .idle_meta = urcu_idle_meta,
    .fork_prepare = urcu_fork_prepare,
    .fork_parent = urcu_fork_release,
    .fork_child = urcu_fork_release,
};
