/*
 * Answering requests: replies and errors, requests kept for later
 * (af_defer), and the backlog of answers that met a full requester.
 *
 * An answer to a remote requester goes out through the actor's ROUTER with
 * the routing frames its request came with; one to a local requester is
 * pushed into the requester's inbox. Either may find the requester's queue
 * full: the answer then waits in the backlog, behind the others for that
 * requester, and is sent when there is room. Answers are dropped only when
 * the requester is gone.
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

/* Answers that met a full requester wait for it in a lane of their own,
 * one per requester (a local inbox, or the routing frames of a remote
 * connection), oldest first: a requester that stops reading holds up its
 * own answers and nobody else's. A lane goes once it is empty. */
typedef struct backlog_entry {
	struct backlog_entry *next;
	zmq_msg_t body;
} backlog_entry;

typedef struct af__backlog {
	struct af__backlog *prev;
	struct af__backlog *next;
	uint64_t key;
	bool indexed; /* false after a hash collision: found by a scan */
	bool polled;  /* retried by the timer, not woken by its requester */
	backlog_entry *head;
	backlog_entry *tail;
	char *name; /* a local requester's inbox, or NULL */
	int nroute;
	zmq_msg_t route[]; /* a remote requester's routing frames */
} af__backlog;

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The hash of a requester: its inbox name, or its routing frames. */
static uint64_t requester_hash(const af__reply_to *to)
{
	uint64_t h = 0xcbf29ce484222325ull;

	if (to->name != NULL)
		h = hash_bytes(h, to->name, to->name_len);
	for (int i = 0; i < to->nroute; i++)
		h = hash_bytes(h, zmq_msg_data(&to->route[i]),
			       zmq_msg_size(&to->route[i]));
	return h;
}

/* True when name and route (kept by a deferred request or a lane) lead
 * back to the requester to. */
static bool same_way_back(const char *name, int nroute, const zmq_msg_t *route,
			  const af__reply_to *to)
{
	if (nroute != to->nroute || (name == NULL) != (to->name == NULL))
		return false;
	if (name != NULL && (strlen(name) != to->name_len ||
			     memcmp(name, to->name, to->name_len) != 0))
		return false;
	for (int i = 0; i < nroute; i++) {
		size_t len = zmq_msg_size((zmq_msg_t *)&route[i]);
		if (len != zmq_msg_size(&to->route[i]) ||
		    memcmp(zmq_msg_data((zmq_msg_t *)&route[i]),
			   zmq_msg_data(&to->route[i]), len) != 0)
			return false;
	}
	return true;
}

/* Sends a copy of body along route through the actor's ROUTER. */
static af_err send_routed(af_ctx *ctx, zmq_msg_t *route, int nroute,
			  zmq_msg_t *body)
{
	void *router = ctx->actor != NULL ? ctx->actor->router : NULL;

	if (router == NULL)
		return AF_EPEERDOWN;
	/* A send, even one that fails, may consume the ROUTER's readiness
	 * signal: a full requester retried every millisecond would otherwise
	 * leave the requests of everyone else unread. */
	af__loop_kick(&ctx->loop, &ctx->actor->router_watch);
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
	return AF_OK;
}

static void lane_writable(af_ctx *ctx, void *arg);

/* Pushes a copy of body into the inbox of the local requester name. On a
 * full inbox, a lane's key (wait_key, 0 for none) asks to hear when it has
 * room; AF_EAGAIN then says whether it will (*watched, may be NULL). */
static af_err send_local(af_ctx *ctx, const char *name, size_t len,
			 zmq_msg_t *body, uint64_t wait_key, int64_t block_ms,
			 bool *watched)
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
	if (err == AF_EAGAIN && wait_key != 0 && watched != NULL)
		*watched = af__peer_when_writable(
				   peer, lane_writable,
				   (void *)(uintptr_t)wait_key) == AF_OK;
	return err;
}

static af__backlog *lane_find(af_ctx *ctx, const af__reply_to *to)
{
	af__backlog *l;

	if (ctx->backlog == NULL)
		return NULL;
	l = af__idmap_get(&ctx->backlog_index, requester_hash(to) | 1);
	if (l != NULL && same_way_back(l->name, l->nroute, l->route, to))
		return l;
	for (l = ctx->backlog_unindexed > 0 ? ctx->backlog : NULL; l != NULL;
	     l = l->next)
		if (!l->indexed &&
		    same_way_back(l->name, l->nroute, l->route, to))
			return l;
	return NULL;
}

static af__backlog *lane_new(af_ctx *ctx, const af__reply_to *to)
{
	af__backlog *l =
		calloc(1, sizeof(*l) + (size_t)to->nroute * sizeof(zmq_msg_t));

	if (l == NULL)
		return NULL;
	if (to->name != NULL) {
		l->name = strndup(to->name, to->name_len);
		if (l->name == NULL) {
			free(l);
			return NULL;
		}
	}
	l->nroute = to->nroute;
	for (int i = 0; i < to->nroute; i++) {
		zmq_msg_init(&l->route[i]);
		zmq_msg_copy(&l->route[i], &to->route[i]);
	}
	l->key = requester_hash(to) | 1; /* the id map reserves 0 */
	if (af__idmap_get(&ctx->backlog_index, l->key) == NULL &&
	    af__idmap_put(&ctx->backlog_index, l->key, l) == AF_OK)
		l->indexed = true;
	else
		ctx->backlog_unindexed++;
	l->next = ctx->backlog;
	if (ctx->backlog != NULL)
		ctx->backlog->prev = l;
	ctx->backlog = l;
	return l;
}

/* Frees l, counting the answers still in it as unroutable. */
static void lane_free(af_ctx *ctx, af__backlog *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		ctx->backlog = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	if (l->indexed)
		af__idmap_take(&ctx->backlog_index, l->key);
	else
		ctx->backlog_unindexed--;
	while (l->head != NULL) {
		backlog_entry *e = l->head;
		l->head = e->next;
		zmq_msg_close(&e->body);
		free(e);
		af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
	}
	for (int i = 0; i < l->nroute; i++)
		zmq_msg_close(&l->route[i]);
	free(l->name);
	free(l);
}

/* Appends body to l, taking it. AF_OK, or AF_ENOMEM (body untouched). */
static af_err lane_push(af__backlog *l, zmq_msg_t *body)
{
	backlog_entry *e = malloc(sizeof(*e));

	if (e == NULL)
		return AF_ENOMEM;
	e->next = NULL;
	zmq_msg_init(&e->body);
	zmq_msg_move(&e->body, body);
	if (l->tail != NULL)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	return AF_OK;
}

/* Takes the answer at the head of l, which went (or never will). */
static void lane_pop(af__backlog *l)
{
	backlog_entry *e = l->head;

	l->head = e->next;
	if (l->head == NULL)
		l->tail = NULL;
	zmq_msg_close(&e->body);
	free(e);
}

static void route_retry(af__timer *t);

/* Sends what waits in l, oldest first, until its requester is full again
 * (it is tried again when it has room: a local inbox says so, a remote
 * connection is retried every ROUTE_RETRY_US) or l is empty and goes. */
static void lane_flush(af_ctx *ctx, af__backlog *l)
{
	while (l->head != NULL) {
		bool watched = false;
		af_err err = l->name != NULL
				     ? send_local(ctx, l->name, strlen(l->name),
						  &l->head->body, l->key, 0,
						  &watched)
				     : send_routed(ctx, l->route, l->nroute,
						   &l->head->body);
		if (err == AF_EAGAIN) {
			/* A remote requester, or a local one whose wait could
			 * not be set (out of memory), is tried again soon. */
			l->polled = !watched;
			if (l->polled && ctx->backlog_timer.index == SIZE_MAX) {
				ctx->backlog_timer.cb = route_retry;
				af__loop_timer_add(
					&ctx->loop, &ctx->backlog_timer,
					af__now_us() + ROUTE_RETRY_US);
			}
			return;
		}
		if (err != AF_OK)
			af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
		lane_pop(l);
	}
	lane_free(ctx, l);
}

/* A local requester made room. Its lane may be gone by now, or be another
 * requester's of the same hash (harmless: that one is tried too); lanes
 * left out of the index by a collision are tried on every call. */
static void lane_writable(af_ctx *ctx, void *arg)
{
	af__backlog *l = af__idmap_get(&ctx->backlog_index, (uintptr_t)arg);

	if (l != NULL && l->name != NULL)
		lane_flush(ctx, l);
	for (l = ctx->backlog_unindexed > 0 ? ctx->backlog : NULL; l != NULL;) {
		af__backlog *next = l->next;
		if (!l->indexed && l->name != NULL)
			lane_flush(ctx, l);
		l = next;
	}
}

static void route_retry(af__timer *t)
{
	af_ctx *ctx = AF__CONTAINER(t, af_ctx, backlog_timer);

	for (af__backlog *l = ctx->backlog; l != NULL;) {
		af__backlog *next = l->next;
		if (l->polled)
			lane_flush(ctx, l);
		l = next;
	}
}

af_err af__answer(af_ctx *ctx, const af__reply_to *to, const af__envelope *env,
		  const af_payload *payload)
{
	zmq_msg_t body;
	af__backlog *l;
	bool fresh = false;
	af_err err = af__frame_build(&body, env, payload, ctx->max_msg);

	if (err != AF_OK)
		return err;
	/* Behind what already waits for this requester, to keep its order;
	 * others' answers go their own way. */
	l = lane_find(ctx, to);
	if (l == NULL) {
		err = to->name != NULL
			      ? send_local(ctx, to->name, to->name_len, &body,
					   0, 0, NULL)
			      : send_routed(ctx, to->route, to->nroute, &body);
		if (err == AF_EAGAIN) {
			l = lane_new(ctx, to);
			fresh = true;
			if (l == NULL)
				err = AF_ENOMEM;
		}
	}
	if (l != NULL) {
		err = lane_push(l, &body);
		if (err == AF_OK) {
			/* A new lane starts waiting for room. */
			if (fresh)
				lane_flush(ctx, l);
			return AF_OK;
		}
		if (l->head == NULL)
			lane_free(ctx, l);
	}
	zmq_msg_close(&body);
	if (err == AF_EPEERDOWN)
		af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
	return err;
}

bool af__answers_waiting(af_ctx *ctx, const af__reply_to *to)
{
	return lane_find(ctx, to) != NULL;
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
	while (ctx->backlog != NULL) {
		af__backlog *l = ctx->backlog;
		while (l->head != NULL) {
			int64_t left_ms = (deadline_us - af__now_us()) / 1000;
			af_err err =
				l->name != NULL
					? send_local(ctx, l->name,
						     strlen(l->name),
						     &l->head->body, 0,
						     left_ms > 0 ? left_ms : 0,
						     NULL)
					: send_routed(ctx, l->route, l->nroute,
						      &l->head->body);
			if (err != AF_OK)
				af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
			lane_pop(l);
		}
		lane_free(ctx, l);
	}
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

/* The key of a request: who sent it (a local inbox, or the routing frames
 * of a remote connection) and its id, which is unique per requester. */
static uint64_t request_key(const af__reply_to *to, uint64_t id)
{
	return hash_bytes(requester_hash(to), &id, sizeof(id)) |
	       1; /* the id map reserves 0 */
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
	return p->id == id && same_way_back(p->name, p->nroute, p->route, to);
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

/* Sends p's requester a probe. It goes now or never, never into the
 * backlog: it is no answer anybody waits for, and one that meets a full
 * queue has learnt what it asked (the requester is there); queued, it
 * would say so of a requester that is gone. */
static af_err probe(af_ctx *ctx, af_pending *p)
{
	af__envelope env = {.kind = AF_KIND_HEARTBEAT, .id = p->id};
	zmq_msg_t body;
	af_err err = af__frame_build(&body, &env, NULL, ctx->max_msg);

	if (err != AF_OK)
		return err;
	err = send_routed(ctx, p->route, p->nroute, &body);
	zmq_msg_close(&body);
	if (err == AF_EPEERDOWN)
		af__ctx_count(ctx, AF__STAT_UNROUTABLE, 1);
	return err;
}

static void probe_requesters(af__timer *t)
{
	af_ctx *ctx = AF__CONTAINER(t, af_ctx, probe_timer);
	bool again = false;

	for (af_pending *p = ctx->deferred; p != NULL; p = p->next) {
		if (!wants_probe(p))
			continue;
		if (probe(ctx, p) == AF_EPEERDOWN)
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
