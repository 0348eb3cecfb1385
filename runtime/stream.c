/*
 * Streams: a request answered by chunks, then one end or error.
 *
 * The requester grants a credit window in its request (the request's seq)
 * and reports what it has taken with credit messages (seq: chunks taken so
 * far, cumulative, so a credit that arrives late or twice does no harm).
 * The producer never has more than the window in flight: a slow consumer
 * costs it a bounded amount of memory, and af_pending_chunk says AF_EAGAIN
 * until credit comes. Chunks carry their number; the consumer checks that
 * they come one after the other and that the end counts them all, so a
 * chunk is never delivered twice, out of order or after the end.
 *
 * Chunks to a local consumer travel in the same batches as tells: a busy
 * producer's chunks cost one ZeroMQ message per batch.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctx.h"
#include "payload_internal.h"

/* Credit goes back once the consumer has taken this part of the window:
 * often enough that the producer rarely waits, rarely enough that credit
 * costs little. */
#define CREDIT_DIVISOR 4

/* ---- the consumer ------------------------------------------------------ */

static void send_credit(af_ctx *ctx, af__outreq *o);

static void credit_retry(af_ctx *ctx, void *arg)
{
	af__outreq *o = af__idmap_get(&ctx->outreqs, (uint64_t)(uintptr_t)arg);

	if (o != NULL && o->credit_owed) {
		o->credit_owed = false;
		send_credit(ctx, o);
	}
}

static void send_credit(af_ctx *ctx, af__outreq *o)
{
	af_err err;

	if (o->credit_owed)
		return;
	err = af__outreq_send_control(ctx, o, AF_KIND_CREDIT, o->taken);
	if (err == AF_OK) {
		o->credited = o->taken;
		return;
	}
	/* A producer waiting for credit must get it: retry when its mailbox
	 * has room. Credit is cumulative, so the retry sends the latest. */
	if (err != AF_EPEERDOWN &&
	    af__peer_when_writable(o->peer, credit_retry,
				   (void *)(uintptr_t)o->id) == AF_OK)
		o->credit_owed = true;
}

void af__stream_taken(af_ctx *ctx, uint64_t id, uint64_t n)
{
	af__outreq *o = af__idmap_get(&ctx->outreqs, id);

	if (o == NULL)
		return; /* settled already: no credit is owed */
	o->taken += n;
	if (o->taken - o->credited >= o->window / CREDIT_DIVISOR)
		send_credit(ctx, o);
}

/* Ends o with a protocol error: the producer broke the stream's order. */
static void stream_broken(af_ctx *ctx, af__outreq *o)
{
	af__ctx_count(ctx, AF__STAT_DROPPED, 1);
	af__outreq_send_cancel(ctx, o);
	af__outreq_settle(o, AF_EPROTO, NULL);
}

void af__stream_on_chunk(af_ctx *ctx, af__outreq *o, af_msg *m)
{
	uint64_t id = o->id;
	bool manual_credit = o->manual_credit;

	if (o->on_chunk == NULL) {
		/* A plain request answered by a stream: the target broke
		 * the protocol (it was granted no window). */
		stream_broken(ctx, o);
		return;
	}
	if (m->env.kind == AF_KIND_END) {
		if (m->env.seq != o->received)
			stream_broken(ctx, o);
		else
			af__outreq_settle(o, AF_OK, m);
		return;
	}
	if (m->env.seq != o->received + 1 ||
	    o->received - o->taken >= o->window) {
		stream_broken(ctx, o);
		return;
	}
	o->received++;
	/* The continuation may cancel the request: o is not used after it. */
	o->on_chunk(ctx, m, o->arg);
	if (!manual_credit)
		af__stream_taken(ctx, id, 1);
}

/* ---- the producer ------------------------------------------------------ */

bool af_pending_is_stream(const af_pending *p)
{
	return p != NULL && p->window > 0;
}

uint64_t af_pending_in_flight(const af_pending *p)
{
	return p != NULL ? p->sent - p->acked : 0;
}

/* Adds a chunk to the batch going to a local consumer. False
 * when it has to go alone (too large, answers to the consumer waiting in
 * the backlog ahead of it, a full mailbox): it then goes as an ordinary
 * answer. */
static bool batch_chunk(af_ctx *ctx, af_pending *p, const af__envelope *env,
			const af_payload *payload, af_err *err)
{
	uint8_t header[AF__HEADER_MAX];
	size_t header_len;
	size_t payload_len;
	const void *payload_bytes;
	af__reply_to to;
	af__peer *peer;

	if (p->name == NULL)
		return false;
	if (ctx->backlog != NULL) {
		to = af__pending_reply_to(p);
		if (af__answers_waiting(ctx, &to))
			return false;
	}
	if (payload != NULL && af_payload_status(payload) != AF_OK)
		return false;
	payload_bytes = af__payload_bytes(payload, &payload_len);
	if (af__envelope_header(header, sizeof(header), &header_len, env) !=
		    AF_OK ||
	    header_len + payload_len > ctx->max_msg)
		return false;
	af__ctx_check_epoch(ctx, false); /* may drop last_answer_peer */
	peer = ctx->last_answer_peer;
	if (peer == NULL || strcmp(peer->key, p->name) != 0) {
		*err = af__peer_get(ctx, p->name, strlen(p->name), false,
				    &peer);
		if (*err == AF_ENOTFOUND) {
			*err = AF_EPEERDOWN;
			return true;
		}
		if (*err != AF_OK)
			return true;
		ctx->last_answer_peer = peer;
	}
	if (!af__peer_batches(peer, header_len + payload_len))
		return false;
	*err = af__peer_batch(peer, header, header_len, payload_bytes,
			      payload_len);
	/* A full mailbox: the chunk waits in the backlog, behind the batch
	 * that met it (af__peer_send sends that batch first). */
	return *err != AF_EAGAIN;
}

af_err af_pending_chunk(af_ctx *ctx, af_pending *p, const af_payload *payload)
{
	af__envelope env = {.kind = AF_KIND_CHUNK};
	af__reply_to to;
	af_err err;

	if (p == NULL || ctx->actor == NULL || p->window == 0)
		return AF_EINVAL;
	if (p->cancelled || p->cancel_due)
		return AF_ECANCELED;
	if (p->sent - p->acked >= p->window)
		return AF_EAGAIN;
	env.id = p->id;
	env.seq = p->sent + 1;
	if (!batch_chunk(ctx, p, &env, payload, &err)) {
		to = af__pending_reply_to(p);
		err = af__answer(ctx, &to, &env, payload);
	}
	if (err == AF_EPEERDOWN) {
		/* The consumer is gone: the producer hears it through its
		 * cancel hook, as it would hear a cancel. */
		af__pending_cancel_soon(ctx, p);
		return AF_ECANCELED;
	}
	if (err == AF_OK)
		p->sent++;
	return err;
}

af_err af_pending_when_writable(af_ctx *ctx, af_pending *p, af_timer_fn fn,
				void *arg)
{
	if (p == NULL || p->window == 0)
		return AF_EINVAL;
	if (fn == NULL) {
		/* No hook: one set earlier no longer runs (a timer already
		 * due finds none). */
		p->on_writable = NULL;
		p->writable_arg = NULL;
		return AF_OK;
	}
	p->on_writable = fn;
	p->writable_arg = arg;
	if (p->sent - p->acked < p->window && p->soon.index == SIZE_MAX)
		return af__loop_timer_add(&ctx->loop, &p->soon, 0);
	return AF_OK;
}

void af__stream_on_credit(af_ctx *ctx, af_msg *m)
{
	af_pending *p = af__pending_find(ctx, m);

	if (p == NULL || p->window == 0)
		return; /* answered already, or not a stream */
	if (m->env.seq > p->sent || m->env.seq <= p->acked) {
		if (m->env.seq > p->sent)
			af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return;
	}
	p->acked = m->env.seq;
	if (p->on_writable != NULL && p->soon.index == SIZE_MAX) {
		af_timer_fn fn = p->on_writable;
		p->on_writable = NULL;
		fn(ctx, p->writable_arg);
	}
}
