/*
 * Per-actor statistics (stats.h): the counters' updates on the actor's
 * thread, snapshots for any thread, and the answers to reserved message
 * types.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctx.h"
#include "system.h"

/* ---- the mailbox gauge ------------------------------------------------- */

af__gauge *af__gauge_new(void)
{
	af__gauge *g = malloc(sizeof(*g));

	if (g == NULL)
		return NULL;
	atomic_init(&g->queued, 0);
	atomic_init(&g->refs, 1);
	return g;
}

void af__gauge_hold(af__gauge *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void af__gauge_release(af__gauge *g)
{
	if (g != NULL &&
	    atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		free(g);
}

/* ---- updates, on the actor's thread ------------------------------------ */

static size_t bucket_of(uint64_t us)
{
	unsigned e;

	if (us >= UINT64_C(1) << AF__LATENCY_MAX_BITS)
		us = (UINT64_C(1) << AF__LATENCY_MAX_BITS) - 1;
	if (us < (1u << AF__LATENCY_SUB_BITS))
		return (size_t)us;
	e = 63u - (unsigned)__builtin_clzll(us);
	return ((size_t)(e - AF__LATENCY_SUB_BITS + 1)
		<< AF__LATENCY_SUB_BITS) +
	       (size_t)((us >> (e - AF__LATENCY_SUB_BITS)) &
			((1u << AF__LATENCY_SUB_BITS) - 1));
}

/* The largest value bucket i holds. */
static uint64_t bucket_top(size_t i)
{
	size_t sub = i & ((1u << AF__LATENCY_SUB_BITS) - 1);
	unsigned e = (unsigned)(i >> AF__LATENCY_SUB_BITS) +
		     AF__LATENCY_SUB_BITS - 1;

	if (i < (1u << AF__LATENCY_SUB_BITS))
		return i;
	return (((UINT64_C(1) << AF__LATENCY_SUB_BITS) + sub + 1)
		<< (e - AF__LATENCY_SUB_BITS)) -
	       1;
}

void af__stats_request_taken(af_ctx *ctx, af_msg *m)
{
	af__actor_stats *s = &ctx->actor->stats;

	m->arrived_us = af__now_us();
	af__stat_add(&s->requests, 1);
	af__stat_add(&s->in_flight, 1);
}

void af__stats_answered(af_ctx *ctx, int64_t arrived_us, bool error)
{
	af__actor_stats *s;
	uint64_t us;

	/* Only requests the actor counted when it took them. */
	if (arrived_us == 0 || ctx->actor == NULL)
		return;
	s = &ctx->actor->stats;
	if (error)
		af__stat_add(&s->errors, 1);
	us = (uint64_t)(af__now_us() - arrived_us);
	af__stat_add(&s->answered, 1);
	af__stat_add(&s->latency[bucket_of(us)], 1);
	if (us > atomic_load_explicit(&s->max_us, memory_order_relaxed))
		atomic_store_explicit(&s->max_us, us, memory_order_relaxed);
}

void af__stats_request_done(af_ctx *ctx)
{
	af__actor_stats *s = &ctx->actor->stats;
	uint64_t n = atomic_load_explicit(&s->in_flight, memory_order_relaxed);

	if (n == 0)
		return;
	/* Release: whoever sees the count drop sees the answer's counters
	 * (a drain that returns, then reads them). */
	atomic_store_explicit(&s->in_flight, n - 1, memory_order_release);
	/* The last request of this actor is done: a drain waiting for the
	 * system to go quiet looks again. (It also looks every few ms, so
	 * a flag seen late costs only that.) */
	if (n == 1 &&
	    atomic_load_explicit(&ctx->sys->draining, memory_order_relaxed)) {
		pthread_mutex_lock(&ctx->sys->mu);
		pthread_cond_broadcast(&ctx->sys->cv);
		pthread_mutex_unlock(&ctx->sys->mu);
	}
}

/* ---- snapshots --------------------------------------------------------- */

static uint64_t load(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* The smallest bucket top below which pct percent of n values lie. */
static uint64_t percentile(const uint64_t *counts, uint64_t n, unsigned pct,
			   uint64_t max)
{
	uint64_t rank = (n * pct + 99) / 100;
	uint64_t seen = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < AF__LATENCY_BUCKETS; i++) {
		seen += counts[i];
		if (seen >= rank)
			return bucket_top(i) < max ? bucket_top(i) : max;
	}
	return max;
}

void af__stats_snapshot(const af__actor *a, af_actor_stats *out)
{
	const af__actor_stats *s = &a->stats;
	uint64_t counts[AF__LATENCY_BUCKETS];
	uint64_t n = 0;
	uint64_t taken = load(&s->taken);
	uint64_t queued = a->gauge != NULL
				  ? atomic_load_explicit(&a->gauge->queued,
							 memory_order_relaxed)
				  : 0;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", a->name);
	out->type_name = a->ops != NULL && a->ops->type_name != NULL
				 ? a->ops->type_name
				 : "";
	out->tells = load(&s->tells);
	out->requests = load(&s->requests);
	out->errors = load(&s->errors);
	out->in_flight = load(&s->in_flight);
	/* A sender counts a message just after ZeroMQ took it, so the actor
	 * may have taken it first. */
	out->mailbox_depth = queued > taken ? queued - taken : 0;
	for (size_t i = 0; i < AF__LATENCY_BUCKETS; i++) {
		counts[i] = load(&s->latency[i]);
		n += counts[i];
	}
	out->answered = load(&s->answered);
	out->remote_peers = load(&s->remote_peers);
	out->latency_max_us = load(&s->max_us);
	out->latency_p50_us = percentile(counts, n, 50, out->latency_max_us);
	out->latency_p90_us = percentile(counts, n, 90, out->latency_max_us);
	out->latency_p99_us = percentile(counts, n, 99, out->latency_max_us);
}

static bool listed(const af__actor *a)
{
	return !a->inbox_only && a->phase == AF__ACTOR_RUNNING;
}

af_err af_actor_get_stats(af_system *sys, const char *name, af_actor_stats *out)
{
	af_err err = AF_ENOTFOUND;

	if (sys == NULL || name == NULL || out == NULL)
		return AF_EINVAL;
	pthread_mutex_lock(&sys->mu);
	for (af__actor *a = sys->actors; a != NULL; a = a->next) {
		if (!a->inbox_only && a->phase != AF__ACTOR_EXITED &&
		    strcmp(a->name, name) == 0) {
			af__stats_snapshot(a, out);
			err = AF_OK;
			break;
		}
	}
	pthread_mutex_unlock(&sys->mu);
	return err;
}

af_err af_system_list_stats(af_system *sys, af_actor_stats *out, size_t cap,
			    size_t *count)
{
	size_t n = 0;

	if (sys == NULL || count == NULL || (out == NULL && cap > 0))
		return AF_EINVAL;
	pthread_mutex_lock(&sys->mu);
	for (af__actor *a = sys->actors; a != NULL; a = a->next) {
		if (!listed(a))
			continue;
		if (n < cap)
			af__stats_snapshot(a, &out[n]);
		n++;
	}
	pthread_mutex_unlock(&sys->mu);
	*count = n;
	return AF_OK;
}

/* ---- reserved message types -------------------------------------------- */

bool af__stats_reserved(const af_msg *m)
{
	size_t n = sizeof(AF__RESERVED_PREFIX) - 1;

	return m->env.type_len >= n &&
	       memcmp(m->env.type, AF__RESERVED_PREFIX, n) == 0;
}

static void pack_kv(af_payload *p, const char *key, uint64_t v)
{
	af_pack_str(p, key);
	af_pack_uint(p, v);
}

static void pack_actor(af_payload *p, const af_actor_stats *s)
{
	af_pack_map(p, 10);
	af_pack_str(p, "name");
	af_pack_str(p, s->name);
	af_pack_str(p, "type");
	af_pack_str(p, s->type_name);
	pack_kv(p, "tells", s->tells);
	pack_kv(p, "requests", s->requests);
	pack_kv(p, "errors", s->errors);
	pack_kv(p, "in_flight", s->in_flight);
	pack_kv(p, "mailbox_depth", s->mailbox_depth);
	pack_kv(p, "answered", s->answered);
	pack_kv(p, "remote_peers", s->remote_peers);
	af_pack_str(p, "latency_us");
	af_pack_map(p, 4);
	pack_kv(p, "p50", s->latency_p50_us);
	pack_kv(p, "p90", s->latency_p90_us);
	pack_kv(p, "p99", s->latency_p99_us);
	pack_kv(p, "max", s->latency_max_us);
}

/* A gateway's answer: every actor of the system, and its counters. */
static af_err pack_system(af_payload *p, af_system *sys)
{
	af_system_stats ss;
	af_actor_stats *all = NULL;
	size_t n = 0;
	size_t cap = 0;
	af_err err;

	/* Actors may come and go between the count and the copy: retry
	 * until the room suffices. */
	for (;;) {
		err = af_system_list_stats(sys, all, cap, &n);
		if (err != AF_OK || n <= cap)
			break;
		free(all);
		cap = n + 8;
		all = calloc(cap, sizeof(*all));
		if (all == NULL)
			return AF_ENOMEM;
	}
	af_system_get_stats(sys, &ss);
	af_pack_map(p, 2);
	af_pack_str(p, "system");
	af_pack_map(p, 4);
	pack_kv(p, "dropped", ss.dropped);
	pack_kv(p, "refused", ss.refused);
	pack_kv(p, "late", ss.late);
	pack_kv(p, "unroutable", ss.unroutable);
	af_pack_str(p, "actors");
	af_pack_array(p, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		pack_actor(p, &all[i]);
	free(all);
	return err;
}

void af__stats_answer_reserved(af_ctx *ctx, af_msg *m)
{
	af__actor *a = ctx->actor;
	af_payload *p = NULL;
	af_actor_stats s;
	af_err err;

	if (strcmp(m->type, AF__STATS_TYPE) != 0) {
		af_reply_error(ctx, m, AF_ENOTSUP,
			       "'%s' is a reserved message type this runtime "
			       "does not know",
			       m->type);
		return;
	}
	err = af_payload_new(&p);
	if (err == AF_OK && a->gateway) {
		err = pack_system(p, ctx->sys);
	} else if (err == AF_OK) {
		pthread_mutex_lock(&ctx->sys->mu);
		af__stats_snapshot(a, &s);
		pthread_mutex_unlock(&ctx->sys->mu);
		pack_actor(p, &s);
	}
	if (err == AF_OK)
		err = af_payload_status(p);
	if (err == AF_OK)
		err = af_reply(ctx, m, p);
	if (err != AF_OK)
		af_reply_error(ctx, m, err, "cannot answer %s: %s",
			       AF__STATS_TYPE, af_strerror(err));
	af_payload_destroy(&p);
}
