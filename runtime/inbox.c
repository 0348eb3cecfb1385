/*
 * The receiving side of a context: its inbox (a PULL socket local senders
 * push into) and, for an exported actor, its ROUTER. Both carry the same
 * envelopes; they differ in how the way back to a requester is framed:
 *
 *   inbox    [body] for tells and answers, [requester's inbox][body] for
 *            requests
 *   ROUTER   [routing frames...][body], the routing frames added by
 *            ZeroMQ on the way in
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "ctx.h"
#include "payload_internal.h"
#include "system.h"

static void inbox_readable(af__watch *w, unsigned events);

af_err af__ctx_open_inbox(af_ctx *ctx, int capacity)
{
	char endpoint[AF__NAME_MAX + 16];

	ctx->inbox = zmq_socket(ctx->zctx, ZMQ_PULL);
	if (ctx->inbox == NULL)
		return AF_ESYS;
	af__inproc_endpoint(endpoint, sizeof(endpoint), ctx->inbox_name);
	if (zmq_setsockopt(ctx->inbox, ZMQ_RCVHWM, &capacity,
			   sizeof(capacity)) != 0)
		return AF_ESYS;
	if (zmq_bind(ctx->inbox, endpoint) != 0)
		return errno == EADDRINUSE ? AF_EEXIST : AF_ESYS;
	return af__loop_add_zsock(&ctx->loop, &ctx->inbox_watch, ctx->inbox,
				  inbox_readable);
}

/* Answers a request that cannot be handled. */
static void refuse(af_ctx *ctx, af_msg *m, int code, const char *text)
{
	af__reply_to to = af__reply_to_of(m);

	af__answer_error(ctx, &to, m->env.id, code, text);
}

static void deliver(af_ctx *ctx, af_msg *m);

/* Delivers the tells of a batch, each a complete envelope of its own. */
static void deliver_batch(af_ctx *ctx, af_msg *batch)
{
	const uint8_t *p = batch->env.payload_data;
	size_t len = batch->env.payload_len;
	size_t pos;
	uint32_t count;
	af_reader r;

	/* Any array header will do (fixarray, array16 or array32): the C
	 * sender writes array32, other msgpack writers the smallest. */
	af_reader_init(&r, p, len);
	if (af_read_array(&r, &count) != AF_OK) {
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return;
	}
	/* The envelopes follow the header; each is decoded where it lies.
	 * (The reader is the runtime's own: its place may be read here.) */
	pos = r.pos;
	for (uint32_t i = 0; i < count; i++) {
		size_t used;
		af_msg m;
		if (af__msg_decode_first(&m, p + pos, len - pos, ctx->max_msg,
					 &ctx->zone, &used) != AF_OK) {
			/* Without its length, nothing after it can be
			 * found. */
			af__msg_clear(&m);
			af__ctx_count(ctx, AF__STAT_DROPPED, count - i);
			break;
		}
		m.from_remote = batch->from_remote;
		/* A batch carries tells, and the chunks of streams to local
		 * consumers; one from another process (on the ROUTER) carries
		 * tells only: answers go to a remote requester one by one. */
		if (m.env.kind == AF_KIND_TELL ||
		    (m.env.kind == AF_KIND_CHUNK && batch->route == NULL))
			deliver(ctx, &m);
		else
			af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		af__msg_clear(&m);
		msgpack_zone_clear(&ctx->zone);
		pos += used;
		ctx->counters.received++;
	}
}

/* The kinds a requester sends: all that an exported actor's ROUTER
 * carries. The actor's own requests are answered elsewhere (a remote
 * target on the DEALER the request went out on, a local one in the
 * inbox), so an answer on the ROUTER comes from someone it never asked. */
static bool from_requester(af_kind kind)
{
	switch (kind) {
	case AF_KIND_TELL:
	case AF_KIND_REQUEST:
	case AF_KIND_CANCEL:
	case AF_KIND_CREDIT:
	case AF_KIND_HEARTBEAT:
	case AF_KIND_BATCH:
		return true;
	default:
		return false;
	}
}

static void deliver(af_ctx *ctx, af_msg *m)
{
	if (m->route != NULL && !from_requester(m->env.kind)) {
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return;
	}
	switch (m->env.kind) {
	case AF_KIND_BATCH:
		deliver_batch(ctx, m);
		return;
	case AF_KIND_REPLY:
	case AF_KIND_ERROR:
	case AF_KIND_CHUNK:
	case AF_KIND_END:
		af__ctx_on_response(ctx, m, NULL);
		return;
	default:
		break;
	}
	if (ctx->actor != NULL)
		af__actor_dispatch(ctx, m);
	else if (m->env.kind == AF_KIND_REQUEST)
		refuse(ctx, m, AF_ENOTSUP, "a client takes no requests");
	else
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
}

/* A message that did not decode is still answered when it is a request
 * whose id and way back can be read (the first fields of every version's
 * envelope), so that its requester learns why at once instead of at its
 * deadline. Anything else is dropped and counted. */
static void refuse_undecodable(af_ctx *ctx, af_msg *m, zmq_msg_t *body,
			       af_err err)
{
	char text[128];
	uint64_t version, kind, id;

	if ((m->route == NULL && m->reply_to == NULL) ||
	    !af__envelope_salvage(zmq_msg_data(body), zmq_msg_size(body),
				  &version, &kind, &id) ||
	    kind != AF_KIND_REQUEST || err == AF_ENOMEM) {
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return;
	}
	switch (err) {
	case AF_EMSGSIZE:
		snprintf(text, sizeof(text),
			 "message of %zu bytes exceeds the limit of %zu",
			 zmq_msg_size(body), ctx->max_msg);
		break;
	case AF_EVERSION:
		snprintf(text, sizeof(text),
			 "protocol version %llu is not supported (this "
			 "receiver speaks version %d)",
			 (unsigned long long)version, AF__PROTOCOL_VERSION);
		break;
	default:
		err = AF_EPROTO;
		snprintf(text, sizeof(text), "malformed request");
		break;
	}
	af__ctx_count(ctx, AF__STAT_REFUSED, 1);
	m->env.id = id;
	refuse(ctx, m, err, text);
}

/* What a system gateway forwards came from another process: it names the
 * gateway's inbox (gateway tells do too, see af__ctx_send). */
static bool from_gateway(const af_msg *m)
{
	size_t n = strlen(AF__GATEWAY_PREFIX);

	return m->reply_to_len > n &&
	       memcmp(m->reply_to, AF__GATEWAY_PREFIX, n) == 0;
}

int af__ctx_read(af_ctx *ctx, void *sock, af__watch *w, bool routed, int budget)
{
	zmq_msg_t frames[AF__MAX_ROUTE + 1];
	int max_frames = routed ? AF__MAX_ROUTE + 1 : 2;
	int n;

	for (n = 0; n < budget; n++) {
		int nframes = 1;
		bool malformed = false;
		zmq_msg_t *body;
		af_msg m;
		af_err err;

		zmq_msg_init(&frames[0]);
		if (zmq_msg_recv(&frames[0], sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frames[0]);
			return n;
		}
		while (zmq_msg_more(&frames[nframes - 1])) {
			if (nframes == max_frames) {
				/* More frames than any sender of ours makes:
				 * read them, keeping only the last. */
				malformed = true;
				zmq_msg_close(&frames[--nframes]);
			}
			zmq_msg_init(&frames[nframes]);
			if (zmq_msg_recv(&frames[nframes], sock, 0) < 0)
				break;
			nframes++;
		}
		ctx->counters.received++;
		/* Local senders counted what they pushed into the inbox: what
		 * is taken makes the difference, the mailbox depth. */
		if (!routed && ctx->actor != NULL)
			af__stat_add(&ctx->actor->stats.taken, 1);
		body = &frames[nframes - 1];
		if (malformed || (routed && nframes < 2)) {
			af__ctx_count(ctx, AF__STAT_DROPPED, 1);
			goto next;
		}
		err = af__msg_decode(&m, zmq_msg_data(body), zmq_msg_size(body),
				     ctx->max_msg, &ctx->zone);
		if (routed) {
			m.route = frames;
			m.nroute = nframes - 1;
			m.from_remote = true;
		} else if (nframes == 2) {
			m.reply_to = zmq_msg_data(&frames[0]);
			m.reply_to_len = zmq_msg_size(&frames[0]);
			m.from_remote = from_gateway(&m);
		}
		if (err == AF_OK)
			deliver(ctx, &m);
		else
			refuse_undecodable(ctx, &m, body, err);
		af__msg_clear(&m);
	next:
		msgpack_zone_clear(&ctx->zone);
		for (int i = 0; i < nframes; i++)
			zmq_msg_close(&frames[i]);
		if (ctx->actor != NULL && af__actor_stopping(ctx))
			return n + 1;
	}
	af__loop_kick(&ctx->loop, w);
	return n;
}

static void inbox_readable(af__watch *w, unsigned events)
{
	af_ctx *ctx = AF__CONTAINER(w, af_ctx, inbox_watch);

	af__ctx_read(ctx, ctx->inbox, w, false, AF__READ_TURN);
}

void af__ctx_close_inbox(af_ctx *ctx)
{
	char endpoint[AF__NAME_MAX + 16];

	if (ctx->inbox == NULL)
		return;
	if (ctx->inbox_watch.cb != NULL)
		af__loop_del(&ctx->loop, &ctx->inbox_watch, NULL);
	/* zmq_close gives the name back only when ZeroMQ's reaper gets to
	 * the socket; unbinding gives it back now, so a new actor may take
	 * the name as soon as this one is gone. */
	af__inproc_endpoint(endpoint, sizeof(endpoint), ctx->inbox_name);
	zmq_unbind(ctx->inbox, endpoint);
	zmq_close(ctx->inbox);
	ctx->inbox = NULL;
}
