/*
 * Answering requests: replies and errors, requests kept for later
 * (af_defer), and the backlog of answers that met a full requester.
 *
 * An answer to a remote requester goes out through the actor's ROUTER with
 * the routing frames its request came with; one to a local requester is
 * pushed into the requester's inbox. Either may find the requester's queue
 * full: the answer then waits in the backlog, in order, and is sent when
 * there is room. Answers are dropped only when the requester is gone.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "ctx.h"
#include "system.h"

/* ZeroMQ gives a ROUTER no writable signal per requester: a full remote
 * requester is retried on this period until it drains. */
#define ROUTE_RETRY_US 1000
/* How often remote requesters still waiting for a stream, or for a
 * request the actor would stop work for, are checked to be there. */
#define PROBE_US 1000000

typedef struct af__backlog {
	struct af__backlog *next;
	int nroute;
	zmq_msg_t route[AF__MAX_ROUTE];
	char *name;
	zmq_msg_t body;
} af__backlog;

static void backlog_free(af__backlog *b)
{
	for (int i = 0; i < b->nroute; i++)
		zmq_msg_close(&b->route[i]);
	free(b->name);
	zmq_msg_close(&b->body);
	free(b);
}

/* Sends a copy of body along route through the actor's ROUTER. */
static af_err send_routed(af_ctx *ctx, zmq_msg_t *route, int nroute,
			  zmq_msg_t *body)
{
	void *router = ctx->actor != NULL ? ctx->actor->router : NULL;

	if (router == NULL)
		return AF_EPEERDOWN;
	for (int i = 0; i <= nroute; i++) {
		zmq_msg_t part;
		zmq_msg_t *src = i < nroute ? &route[i] : body;
		int flags = ZMQ_DONTWAIT | (i < nroute ? ZMQ_SNDMORE : 0);

		zmq_msg_init(&part);
		zmq_msg_copy(&part, src);
		if (zmq_msg_send(&part, router, flags) < 0) {
			int e = errno;
			zmq_msg_close(&part);
			/* Only the first frame can fail: ZeroMQ routes a
			 * message as a whole once its first frame is taken. */
			if (e == EAGAIN)
				return AF_EAGAIN;
			return e == EHOSTUNREACH ? AF_EPEERDOWN : AF_ESYS;
		}
	}
	/* The send may have consumed the ROUTER's readiness signal. */
	af__loop_kick(&ctx->loop, &ctx->actor->router_watch);
	return AF_OK;
}

static void backlog_flush_cb(af_ctx *ctx, void *arg);

/* Pushes a copy of body into the inbox of the local requester name. */
static af_err send_local(af_ctx *ctx, const char *name, size_t len,
			 zmq_msg_t *body, bool wait_if_full, int64_t block_ms)
{
	af__peer *peer;
	zmq_msg_t part;
	af_err err;

	/* The requester's name may belong to a new actor by now. */
	af__ctx_check_epoch(ctx, false);
	err = af__peer_get(ctx, name, len, false, &peer);
	if (err == AF_ENOTFOUND)
		return AF_EPEERDOWN;
	if (err != AF_OK)
		return err;
	zmq_msg_init(&part);
	zmq_msg_copy(&part, body);
	err = af__peer_send(peer, &part, NULL, block_ms);
	if (err != AF_OK)
		zmq_msg_close(&part);
	if (err == AF_EAGAIN && wait_if_full)
		af__peer_when_writable(peer, backlog_flush_cb, NULL);
	return err;
}

static af_err send_backlog_entry(af_ctx *ctx, af__backlog *b)
{
	if (b->name != NULL)
		return send_local(ctx, b->name, strlen(b->name), &b->body, true,
				  0);
	return send_routed(ctx, b->route, b->nroute, &b->body);
}

static void route_retry(af__timer *t)
{
	backlog_flush_cb(AF__CONTAINER(t, af_ctx, backlog_timer), NULL);
}

static void backlog_flush_cb(af_ctx *ctx, void *arg)
{
	while (ctx->backlog_head != NULL) {
		af__backlog *b = ctx->backlog_head;
		af_err err = send_backlog_entry(ctx, b);
		if (err == AF_EAGAIN) {
			if (b->name == NULL &&
			    ctx->backlog_timer.index == SIZE_MAX) {
				ctx->backlog_timer.cb = route_retry;
				af__loop_timer_add(
					&ctx->loop, &ctx->backlog_timer,
					af__now_us() + ROUTE_RETRY_US);
			}
			return;
		}
		if (err != AF_OK)
			af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
		ctx->backlog_head = b->next;
		if (ctx->backlog_head == NULL)
			ctx->backlog_tail = NULL;
		backlog_free(b);
	}
}

static af_err backlog_push(af_ctx *ctx, const af__reply_to *to, zmq_msg_t *body)
{
	af__backlog *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return AF_ENOMEM;
	if (to->name != NULL) {
		b->name = strndup(to->name, to->name_len);
		if (b->name == NULL) {
			free(b);
			return AF_ENOMEM;
		}
	}
	b->nroute = to->nroute;
	for (int i = 0; i < to->nroute; i++) {
		zmq_msg_init(&b->route[i]);
		zmq_msg_copy(&b->route[i], &to->route[i]);
	}
	zmq_msg_init(&b->body);
	zmq_msg_move(&b->body, body);
	if (ctx->backlog_tail != NULL)
		ctx->backlog_tail->next = b;
	else
		ctx->backlog_head = b;
	ctx->backlog_tail = b;
	backlog_flush_cb(ctx, NULL);
	return AF_OK;
}

af_err af__answer(af_ctx *ctx, const af__reply_to *to, const af__envelope *env,
		  const af_payload *payload)
{
	zmq_msg_t body;
	af_err err = af__frame_build(&body, env, payload, ctx->max_msg);

	if (err != AF_OK)
		return err;
	if (ctx->backlog_head != NULL)
		err = AF_EAGAIN; /* keep answers in order behind the backlog */
	else if (to->name != NULL)
		err = send_local(ctx, to->name, to->name_len, &body, false, 0);
	else
		err = send_routed(ctx, to->route, to->nroute, &body);
	if (err == AF_EAGAIN)
		return backlog_push(ctx, to, &body);
	zmq_msg_close(&body);
	if (err == AF_EPEERDOWN)
		af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
	return err;
}

af_err af__answer_error(af_ctx *ctx, const af__reply_to *to, uint64_t id,
			int code, const char *text)
{
	af__envelope env = {.kind = AF_KIND_ERROR, .id = id};
	af_err err;

	af_payload_reset(ctx->scratch);
	err = af__error_payload(ctx->scratch, code, text);
	if (err != AF_OK)
		return err;
	return af__answer(ctx, to, &env, ctx->scratch);
}

/* An answer to a requester that is gone has done all it can. */
static af_err delivered(af_err err)
{
	return err == AF_EPEERDOWN ? AF_OK : err;
}

void af__reply_hand_over_backlog(af_ctx *ctx, int64_t wait_ms)
{
	int64_t deadline_us = af__now_us() + wait_ms * 1000;

	/* A requester reading its mailbox makes room as it goes: a stopping
	 * actor that answered thousands of queued requests waits for it
	 * rather than drop what did not fit at once. */
	while (ctx->backlog_head != NULL) {
		af__backlog *b = ctx->backlog_head;
		int64_t left_ms = (deadline_us - af__now_us()) / 1000;
		af_err err = b->name != NULL
				     ? send_local(ctx, b->name, strlen(b->name),
						  &b->body, false,
						  left_ms > 0 ? left_ms : 0)
				     : send_routed(ctx, b->route, b->nroute,
						   &b->body);

		if (err != AF_OK)
			af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
		ctx->backlog_head = b->next;
		backlog_free(b);
	}
	ctx->backlog_tail = NULL;
	af__loop_timer_del(&ctx->loop, &ctx->backlog_timer);
}

/* ---- the public calls -------------------------------------------------- */

af__reply_to af__reply_to_of(const af_msg *m)
{
	af__reply_to to = {.route = m->route,
			   .nroute = m->nroute,
			   .name = m->reply_to,
			   .name_len = m->reply_to_len};

	return to;
}

static af_err check_answerable(af_ctx *ctx, const af_msg *m)
{
	if (ctx->actor == NULL || m->env.kind != AF_KIND_REQUEST ||
	    (m->route == NULL && m->reply_to == NULL))
		return AF_EINVAL;
	if (m->answered || m->deferred)
		return AF_EINVAL;
	return AF_OK;
}

af_err af_reply(af_ctx *ctx, af_msg *m, const af_payload *payload)
{
	af_err err = check_answerable(ctx, m);
	af__reply_to to = af__reply_to_of(m);

	af__envelope env = {.kind = AF_KIND_REPLY, .id = m->env.id};

	if (err != AF_OK)
		return err;
	err = delivered(af__answer(ctx, &to, &env, payload));
	/* A reply that could not be built (too large, unfinished payload)
	 * leaves the request open so the handler can answer with an error. */
	if (err == AF_OK) {
		m->answered = true;
		af__stats_answered(ctx, m->arrived_us, false);
	}
	return err;
}

static af_err answer_vfmt(af_ctx *ctx, const af__reply_to *to, uint64_t id,
			  int code, const char *fmt, va_list ap)
{
	char text[512];

	if (fmt != NULL)
		vsnprintf(text, sizeof(text), fmt, ap);
	return af__answer_error(ctx, to, id, code, fmt != NULL ? text : NULL);
}

af_err af_reply_error(af_ctx *ctx, af_msg *m, int code, const char *fmt, ...)
{
	af_err err = check_answerable(ctx, m);
	af__reply_to to = af__reply_to_of(m);
	va_list ap;

	if (err != AF_OK)
		return err;
	va_start(ap, fmt);
	err = delivered(answer_vfmt(ctx, &to, m->env.id, code, fmt, ap));
	va_end(ap);
	if (err == AF_OK) {
		m->answered = true;
		af__stats_answered(ctx, m->arrived_us, true);
	}
	return err;
}

/* ---- deferred requests ------------------------------------------------- */

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The key of a request: who sent it (a local inbox, or the routing frames
 * of a remote connection) and its id, which is unique per requester. */
static uint64_t request_key(const af__reply_to *to, uint64_t id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	if (to->name != NULL)
		h = hash_bytes(h, to->name, to->name_len);
	for (int i = 0; i < to->nroute; i++)
		h = hash_bytes(h, zmq_msg_data(&to->route[i]),
			       zmq_msg_size(&to->route[i]));
	h = hash_bytes(h, &id, sizeof(id));
	return h | 1; /* the id map reserves 0 */
}

af__reply_to af__pending_reply_to(const af_pending *p)
{
	af__reply_to to = {.route = (zmq_msg_t *)p->route,
			   .nroute = p->nroute,
			   .name = p->name,
			   .name_len = p->name != NULL ? strlen(p->name) : 0};

	return to;
}

static bool same_requester(const af_pending *p, const af__reply_to *to,
			   uint64_t id)
{
	if (p->id != id || p->nroute != to->nroute ||
	    (p->name == NULL) != (to->name == NULL))
		return false;
	if (p->name != NULL && (strlen(p->name) != to->name_len ||
				memcmp(p->name, to->name, to->name_len) != 0))
		return false;
	for (int i = 0; i < p->nroute; i++) {
		size_t len = zmq_msg_size((zmq_msg_t *)&p->route[i]);
		if (len != zmq_msg_size(&to->route[i]) ||
		    memcmp(zmq_msg_data((zmq_msg_t *)&p->route[i]),
			   zmq_msg_data(&to->route[i]), len) != 0)
			return false;
	}
	return true;
}

af_pending *af__pending_find(af_ctx *ctx, const af_msg *m)
{
	af__reply_to to = af__reply_to_of(m);
	af_pending *p;

	if (to.name == NULL && to.nroute == 0)
		return NULL;
	p = af__idmap_get(&ctx->pending_index, request_key(&to, m->env.id));
	if (p != NULL && same_requester(p, &to, m->env.id))
		return p;
	/* Only a hash collision leaves a request out of the index. */
	for (p = ctx->pending_unindexed > 0 ? ctx->deferred : NULL; p != NULL;
	     p = p->next)
		if (!p->indexed && same_requester(p, &to, m->env.id))
			return p;
	return NULL;
}

static void probe_requesters(af__timer *t);

/* Remote requesters of streams, and of requests with a cancel hook, are
 * probed now and then: a ROUTER learns that a connection is gone, but
 * tells nobody until something is sent along it. */
static void arm_probe(af_ctx *ctx)
{
	if (ctx->probe_timer.index != SIZE_MAX)
		return;
	ctx->probe_timer.cb = probe_requesters;
	af__loop_timer_add(&ctx->loop, &ctx->probe_timer,
			   af__now_us() + PROBE_US);
}

static bool wants_probe(const af_pending *p)
{
	return p->nroute > 0 && !p->cancelled &&
	       (p->window > 0 || p->on_cancel != NULL);
}

static void probe_requesters(af__timer *t)
{
	af_ctx *ctx = AF__CONTAINER(t, af_ctx, probe_timer);
	af__envelope env = {.kind = AF_KIND_HEARTBEAT};
	bool again = false;

	for (af_pending *p = ctx->deferred; p != NULL; p = p->next) {
		af__reply_to to;
		if (!wants_probe(p))
			continue;
		to = af__pending_reply_to(p);
		env.id = p->id;
		if (af__answer(ctx, &to, &env, NULL) == AF_EPEERDOWN)
			af__pending_cancel_soon(ctx, p);
		else
			again = true;
	}
	if (again)
		arm_probe(ctx);
}

static void pending_soon(af__timer *t)
{
	af_pending *p = AF__CONTAINER(t, af_pending, soon);
	af_ctx *ctx = p->ctx;

	if (p->cancel_due) {
		af__pending_cancel(ctx, p);
		return;
	}
	if (p->on_writable != NULL && p->sent - p->acked < p->window) {
		af_timer_fn fn = p->on_writable;
		p->on_writable = NULL;
		fn(ctx, p->writable_arg);
	}
}

af_err af_defer(af_ctx *ctx, af_msg *m, af_pending **out)
{
	af_err err = check_answerable(ctx, m);
	af__reply_to to = af__reply_to_of(m);
	af_pending *p;

	if (err != AF_OK)
		return err;
	if (m->nroute > AF__MAX_ROUTE)
		return AF_EINVAL;
	p = calloc(1, sizeof(*p) + (size_t)m->nroute * sizeof(zmq_msg_t));
	if (p == NULL)
		return AF_ENOMEM;
	if (m->reply_to != NULL) {
		p->name = strndup(m->reply_to, m->reply_to_len);
		if (p->name == NULL) {
			free(p);
			return AF_ENOMEM;
		}
	}
	p->ctx = ctx;
	p->id = m->env.id;
	p->key = request_key(&to, m->env.id);
	p->deadline_us = m->deadline_us;
	p->arrived_us = m->arrived_us;
	/* A request's seq is the stream window its sender grants. */
	p->window = m->env.seq;
	p->soon.index = SIZE_MAX;
	p->soon.cb = pending_soon;
	if (af__idmap_get(&ctx->pending_index, p->key) == NULL &&
	    af__idmap_put(&ctx->pending_index, p->key, p) == AF_OK)
		p->indexed = true;
	else
		ctx->pending_unindexed++;
	p->nroute = m->nroute;
	for (int i = 0; i < m->nroute; i++) {
		zmq_msg_init(&p->route[i]);
		zmq_msg_copy(&p->route[i], &m->route[i]);
	}
	p->next = ctx->deferred;
	if (ctx->deferred != NULL)
		ctx->deferred->prev = p;
	ctx->deferred = p;
	m->deferred = true;
	if (wants_probe(p))
		arm_probe(ctx);
	*out = p;
	return AF_OK;
}

static void pending_free(af_ctx *ctx, af_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ctx->deferred = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	if (p->indexed)
		af__idmap_take(&ctx->pending_index, p->key);
	else
		ctx->pending_unindexed--;
	af__loop_timer_del(&ctx->loop, &p->soon);
	for (int i = 0; i < p->nroute; i++)
		zmq_msg_close(&p->route[i]);
	free(p->name);
	if (p->arrived_us != 0)
		af__stats_request_done(ctx);
	free(p);
}

/* Ends *pp after its answer went: frees it, unless its cancel hook is
 * running (the runtime frees it when the hook returns). */
static void pending_done(af_ctx *ctx, af_pending **pp)
{
	af_pending *p = *pp;

	*pp = NULL;
	if (p->in_hook)
		p->on_cancel = NULL; /* answered: nothing left to cancel */
	else
		pending_free(ctx, p);
}

static af_err pending_answer(af_ctx *ctx, af_pending **pp, af_kind kind,
			     const af_payload *payload)
{
	af_pending *p;
	af__reply_to to;
	af__envelope env = {.kind = kind};
	af_err err;

	if (pp == NULL || *pp == NULL || ctx->actor == NULL)
		return AF_EINVAL;
	p = *pp;
	if (kind == AF_KIND_END && p->window == 0)
		return AF_EINVAL;
	if (!p->cancelled) {
		to = af__pending_reply_to(p);
		env.id = p->id;
		env.seq = kind == AF_KIND_END ? p->sent : 0;
		err = delivered(af__answer(ctx, &to, &env, payload));
		if (err != AF_OK)
			return err;
	}
	af__stats_answered(ctx, p->arrived_us, kind == AF_KIND_ERROR);
	pending_done(ctx, pp);
	return AF_OK;
}

af_err af_pending_reply(af_ctx *ctx, af_pending **pp, const af_payload *payload)
{
	return pending_answer(ctx, pp, AF_KIND_REPLY, payload);
}

af_err af_pending_end(af_ctx *ctx, af_pending **pp, const af_payload *payload)
{
	return pending_answer(ctx, pp, AF_KIND_END, payload);
}

af_err af_pending_error(af_ctx *ctx, af_pending **pp, int code, const char *fmt,
			...)
{
	char text[512];
	va_list ap;
	af_err err;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
	}
	af_payload_reset(ctx->scratch);
	err = af__error_payload(ctx->scratch, code, fmt != NULL ? text : NULL);
	if (err != AF_OK)
		return err;
	return pending_answer(ctx, pp, AF_KIND_ERROR, ctx->scratch);
}

int64_t af_pending_remaining_ms(const af_pending *p)
{
	return af__remaining_ms(p->deadline_us);
}

void af_pending_on_cancel(af_pending *p, af_timer_fn fn, void *arg)
{
	if (p == NULL)
		return;
	p->on_cancel = fn;
	p->cancel_arg = arg;
	if (wants_probe(p))
		arm_probe(p->ctx);
}

/* Runs p's cancel hook, if any; true when it ran (p is then marked
 * in_hook until the caller frees it). */
static bool run_cancel_hook(af_ctx *ctx, af_pending *p)
{
	af_timer_fn fn = p->on_cancel;

	if (fn == NULL)
		return false;
	p->on_cancel = NULL;
	p->on_writable = NULL;
	p->in_hook = true;
	fn(ctx, p->cancel_arg);
	p->in_hook = false;
	return true;
}

void af__pending_cancel(af_ctx *ctx, af_pending *p)
{
	p->cancel_due = false;
	if (p->cancelled)
		return;
	p->cancelled = true;
	if (run_cancel_hook(ctx, p))
		pending_free(ctx, p);
	/* Without a hook the actor still holds p and answers it some day;
	 * that answer goes nowhere. */
}

void af__pending_cancel_soon(af_ctx *ctx, af_pending *p)
{
	if (p->cancelled || p->cancel_due)
		return;
	p->cancel_due = true;
	af__loop_timer_del(&ctx->loop, &p->soon);
	af__loop_timer_add(&ctx->loop, &p->soon, 0);
}

void af__reply_settle_deferred(af_ctx *ctx)
{
	af_pending *p;

	while ((p = ctx->deferred) != NULL) {
		af__reply_to to = af__pending_reply_to(p);
		/* The work is abandoned: its hook stops it, and an answer
		 * given inside the hook sends nothing, so the requester
		 * hears why. */
		bool cancelled = p->cancelled;
		p->cancelled = true;
		run_cancel_hook(ctx, p);
		if (!cancelled) {
			af__answer_error(ctx, &to, p->id, AF_ESTOPPED, NULL);
			af__stats_answered(ctx, p->arrived_us, true);
		}
		pending_free(ctx, p);
	}
}
