/*
 * The system gateway: one actor exported on an endpoint that forwards
 * what arrives for "endpoint#name" to the local actor called name, so a
 * whole system is reachable through one endpoint. It is an ordinary actor
 * written against the public API; the runtime only lets it see messages
 * addressed to other names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "system.h"

typedef struct held_chunk {
	struct held_chunk *next;
	af_payload *payload;
} held_chunk;

/* A request on its way through the gateway. A stream is relayed chunk by
 * chunk: the gateway takes a chunk from the target (gives it credit) only
 * once the requester's window took it, so a slow requester slows the
 * target instead of filling the gateway. */
typedef struct forward {
	af_pending *pending;
	af_payload *out;
	uint64_t id; /* the forwarded request, 0 once settled */
	held_chunk *held_head;
	held_chunk *held_tail;
	/* The target's end arrived while chunks were held: it goes (from
	 * out) after them. */
	bool end_due;
	af_kind end_kind;
} forward;

static void forward_free(forward *f)
{
	while (f->held_head != NULL) {
		held_chunk *h = f->held_head;
		f->held_head = h->next;
		af_payload_destroy(&h->payload);
		free(h);
	}
	af_payload_destroy(&f->out);
	free(f);
}

static void send_end(af_ctx *ctx, forward *f, af_kind kind)
{
	af_err err = kind == AF_KIND_END
			     ? af_pending_end(ctx, &f->pending, f->out)
			     : af_pending_reply(ctx, &f->pending, f->out);

	if (err != AF_OK)
		af_pending_error(ctx, &f->pending, err, "cannot relay: %s",
				 af_strerror(err));
	forward_free(f);
}

static void send_held(af_ctx *ctx, void *arg)
{
	forward *f = arg;
	uint64_t n = 0;

	while (f->held_head != NULL) {
		held_chunk *h = f->held_head;
		af_err err = af_pending_chunk(ctx, f->pending, h->payload);
		if (err == AF_EAGAIN) {
			af_pending_when_writable(ctx, f->pending, send_held, f);
			break;
		}
		/* Any other failure ends the stream: its cancel hook or its
		 * end says so. */
		f->held_head = h->next;
		if (f->held_head == NULL)
			f->held_tail = NULL;
		af_payload_destroy(&h->payload);
		free(h);
		n++;
	}
	af__stream_taken(ctx, f->id, n);
	if (f->held_head == NULL && f->end_due)
		send_end(ctx, f, f->end_kind);
}

static void forwarded_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	forward *f = arg;
	held_chunk *h;

	af_payload_reset(f->out);
	if (af_pack_value(f->out, af_msg_payload(chunk)) != AF_OK) {
		af_cancel(ctx, f->id);
		return;
	}
	if (f->held_head == NULL) {
		af_err err = af_pending_chunk(ctx, f->pending, f->out);
		if (err != AF_EAGAIN) {
			af__stream_taken(ctx, f->id, 1);
			return;
		}
		af_pending_when_writable(ctx, f->pending, send_held, f);
	}
	/* The requester's window is full: hold the chunk, at most a window
	 * of them, since the target gets no credit for held ones. */
	h = calloc(1, sizeof(*h));
	if (h == NULL || af_payload_new(&h->payload) != AF_OK ||
	    af_pack_value(h->payload, af_msg_payload(chunk)) != AF_OK) {
		if (h != NULL)
			af_payload_destroy(&h->payload);
		free(h);
		af_cancel(ctx, f->id);
		return;
	}
	if (f->held_tail != NULL)
		f->held_tail->next = h;
	else
		f->held_head = h;
	f->held_tail = h;
}

static void forwarded(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	forward *f = arg;
	const char *text = NULL;

	f->id = 0;
	if (f->pending == NULL) {
		/* The requester gave up first (see forward_cancelled). */
		forward_free(f);
		return;
	}
	if (status == AF_OK) {
		af_payload_reset(f->out);
		if (af_pack_value(f->out, af_msg_payload(reply)) != AF_OK) {
			status = AF_ENOMEM;
		} else if (f->held_head != NULL) {
			/* Chunks held for a full window go before the end. */
			f->end_due = true;
			f->end_kind = af_msg_kind(reply);
			return;
		} else {
			send_end(ctx, f, af_msg_kind(reply));
			return;
		}
	}
	if (reply != NULL)
		af_msg_error(reply, &text);
	af_pending_error(ctx, &f->pending, status, "%s",
			 text != NULL ? text : af_strerror(status));
	forward_free(f);
}

/* The requester gave up: so does the gateway. The pending is freed when
 * this returns; the forwarded request's end frees f. */
static void forward_cancelled(af_ctx *ctx, void *arg)
{
	forward *f = arg;

	f->pending = NULL;
	if (f->id != 0)
		af_cancel(ctx, f->id); /* forwarded() frees f */
	else
		forward_free(f); /* it was flushing held chunks */
}

static af_err gateway_handle(af_ctx *ctx, void *state, af_msg *m)
{
	char to[AF__NAME_MAX + 1];
	forward *f;
	af_payload *copy = NULL;
	af_err err;

	if (m->env.to == NULL) {
		if (af_msg_kind(m) == AF_KIND_REQUEST)
			return af_reply_error(ctx, m, AF_EADDR,
					      "address an actor of this "
					      "system as endpoint#name");
		return AF_OK;
	}
	memcpy(to, m->env.to, m->env.to_len);
	to[m->env.to_len] = '\0';
	/* The gateway reaches the actors of its own system and nothing else.
	 * Taken as an address, "ipc://...#x" or "tcp://...#x" would make
	 * this node connect wherever a remote requester says (an open relay,
	 * each endpoint a connection kept for the gateway's life), and
	 * "client#N" would reach a client's inbox. */
	if (!af__addr_is_name(m->env.to, m->env.to_len)) {
		if (af_msg_kind(m) == AF_KIND_REQUEST)
			return af_reply_error(
				ctx, m, AF_EADDR,
				"refused '%s': the gateway forwards only to "
				"the actors of its own system, by name",
				to);
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return AF_OK;
	}
	err = af_payload_new(&copy);
	if (err == AF_OK)
		err = af_pack_value(copy, af_msg_payload(m));
	if (err != AF_OK || af_msg_kind(m) == AF_KIND_TELL) {
		if (err == AF_OK)
			err = af_tell(ctx, to, af_msg_type(m), copy);
		af_payload_destroy(&copy);
		return err;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		af_payload_destroy(&copy);
		return AF_ENOMEM;
	}
	f->out = copy;
	err = af_defer(ctx, m, &f->pending);
	if (err == AF_OK) {
		/* The requester's deadline carries over: what is left of it
		 * (at least 1 ms, so a passed deadline stays a deadline)
		 * bounds the forwarded request. */
		int64_t left = af_msg_remaining_ms(m);
		int64_t timeout = left < 0 ? 0 : left == 0 ? 1 : left;
		af__request_opts opts = {
			.on_chunk = af_pending_is_stream(f->pending)
					    ? forwarded_chunk
					    : NULL,
			.manual_credit = true};

		err = af__ctx_request(ctx, to, af_msg_type(m), copy, timeout,
				      &opts, forwarded, f, &f->id);
		if (err == AF_OK) {
			af_pending_on_cancel(f->pending, forward_cancelled, f);
			return AF_OK; /* forwarded() owns f now */
		}
		af_pending_error(ctx, &f->pending, err, "cannot reach '%s': %s",
				 to, af_strerror(err));
		err = AF_OK;
	}
	forward_free(f);
	return err;
}

static const af_actor_ops gateway_ops = {
	.type_name = "gateway",
	.handle = gateway_handle,
};

af_err af_system_export(af_system *sys, const char *endpoint)
{
	return af__system_export(sys, endpoint, NULL);
}

af_err af__system_export(af_system *sys, const char *endpoint,
			 const struct af__curve_bind *curve)
{
	char name[64];
	af_err err;

	if (sys == NULL || endpoint == NULL)
		return AF_EINVAL;
	pthread_mutex_lock(&sys->mu);
	snprintf(name, sizeof(name), AF__GATEWAY_PREFIX "%llu",
		 (unsigned long long)++sys->next_gateway);
	pthread_mutex_unlock(&sys->mu);
	err = af__spawn_gateway(sys, name, &gateway_ops);
	if (err == AF_OK) {
		err = af__export(sys, name, endpoint, curve);
		if (err != AF_OK)
			af_stop(sys, name);
	}
	return err;
}
