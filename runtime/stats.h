/*
 * Per-actor statistics: counters each actor keeps on its own thread, and
 * the snapshots other threads take of them.
 *
 * Only the actor's thread writes its counters, so an update is a relaxed
 * load and store (a plain add on the machine: no lock, no atomic
 * read-modify-write); readers on other threads load them relaxed, each
 * value exact, the set not taken at one instant. The one counter written
 * by other threads is the mailbox gauge: senders in the same process add
 * one for each message they push into the actor's inbox, the actor counts
 * what it takes, and the difference is its mailbox depth.
 *
 * Handler latency goes into a log-linear histogram of microseconds: exact
 * below 8 us, then 8 buckets per power of two (at most 12.5% wide), up to
 * 2^40 us. A percentile is reported as the upper bound of its bucket (never
 * above the largest value seen).
 */
#ifndef AF_RUNTIME_STATS_H
#define AF_RUNTIME_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "actorflow/actor.h"

#define AF__LATENCY_SUB_BITS 3
#define AF__LATENCY_MAX_BITS 40
#define AF__LATENCY_BUCKETS                                                    \
	((AF__LATENCY_MAX_BITS - AF__LATENCY_SUB_BITS + 1)                     \
	 << AF__LATENCY_SUB_BITS)

/* Reserved message types begin with this: every actor answers them itself,
 * its handler never sees them. */
#define AF__RESERVED_PREFIX "af."
#define AF__STATS_TYPE "af.stats"

/* Counts sent into one actor's inbox by other contexts; shared by the
 * actor and every peer connected to it, freed by whoever lets go last. */
typedef struct af__gauge {
	atomic_uint_fast64_t queued;
	atomic_uint refs;
} af__gauge;

typedef struct af__actor_stats {
	atomic_uint_fast64_t tells;
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t in_flight;
	atomic_uint_fast64_t answered;
	atomic_uint_fast64_t taken; /* messages read from the inbox */
	atomic_uint_fast64_t remote_peers;
	atomic_uint_fast64_t max_us;
	atomic_uint_fast64_t latency[AF__LATENCY_BUCKETS];
} af__actor_stats;

struct af__actor;

/* An update by the owning thread: no read-modify-write needed. */
static inline void af__stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

af__gauge *af__gauge_new(void);
void af__gauge_hold(af__gauge *g);
void af__gauge_release(af__gauge *g);
/* A sender pushed one message into the gauge's inbox. */
static inline void af__gauge_add(af__gauge *g)
{
	if (g != NULL)
		atomic_fetch_add_explicit(&g->queued, 1, memory_order_relaxed);
}

/* The actor took request m from its mailbox: counts it, and notes when
 * for its latency. */
void af__stats_request_taken(af_ctx *ctx, af_msg *m);
/* The actor answered a request that arrived at arrived_us (0: unknown),
 * with an error or not. */
void af__stats_answered(af_ctx *ctx, int64_t arrived_us, bool error);
/* A request the actor took is done with (answered, or its pending freed):
 * one less in flight; wakes af_system_drain when none is left. */
void af__stats_request_done(af_ctx *ctx);
/* True when m's type is reserved. */
bool af__stats_reserved(const af_msg *m);
/* Answers a request of a reserved type (actor.c has checked that it is
 * addressed to this actor). */
void af__stats_answer_reserved(af_ctx *ctx, af_msg *m);
/* Fills out from a's counters; called with sys->mu held. */
void af__stats_snapshot(const struct af__actor *a, af_actor_stats *out);

#endif
