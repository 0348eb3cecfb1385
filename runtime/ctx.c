#include "ctx.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "payload_internal.h"
#include "system.h"

static void on_wake_fd(af__watch *w, unsigned events)
{
	af_ctx *ctx = AF__CONTAINER(w, af_ctx, wake_watch);
	uint64_t count;

	/* Reset the eventfd; several wake-ups coalesce into one. */
	if (read(w->fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: another turn already drained it. */
	}
	af__ctx_check_epoch(ctx, true);
	if (ctx->on_wake != NULL)
		ctx->on_wake(ctx);
}

af_err af__ctx_init(af_ctx *ctx, af_system *sys, void *zctx, size_t max_msg,
		    const char *name)
{
	af_err err;

	memset(ctx, 0, sizeof(*ctx));
	ctx->sys = sys;
	ctx->zctx = zctx;
	ctx->max_msg = max_msg;
	ctx->name = name;
	ctx->backlog_timer.index = SIZE_MAX;
	ctx->probe_timer.index = SIZE_MAX;
	ctx->orphan_timer.index = SIZE_MAX;
	ctx->peer_sweep.index = SIZE_MAX;
	ctx->peer_sweep.cb = af__peers_sweep;
	ctx->peer_idle_us = af__peer_idle_us(sys);
	af__idmap_init(&ctx->pending_index);
	af__idmap_init(&ctx->peer_index);
	af__idmap_init(&ctx->outreqs);
	af__idmap_init(&ctx->timers);
	af__idmap_init(&ctx->backlog_index);
	/* Small: most payloads are small, and every idle actor keeps one. */
	if (!msgpack_zone_init(&ctx->zone, 1024))
		return AF_ENOMEM;
	err = af__loop_init(&ctx->loop);
	if (err != AF_OK)
		goto undo_zone;
	err = af_payload_new(&ctx->scratch);
	if (err != AF_OK)
		goto undo_loop;
	ctx->waker = calloc(1, sizeof(*ctx->waker));
	if (ctx->waker == NULL) {
		err = AF_ENOMEM;
		goto undo_scratch;
	}
	atomic_init(&ctx->waker->waiting, false);
	ctx->waker->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ctx->waker->fd < 0) {
		err = AF_ESYS;
		goto undo_waker;
	}
	err = af__loop_add_fd(&ctx->loop, &ctx->wake_watch, ctx->waker->fd,
			      AF_FD_READ, on_wake_fd);
	if (err != AF_OK)
		goto undo_fd;
	if (sys != NULL) {
		ctx->epoch = atomic_load(&sys->epoch);
		af__system_add_waker(sys, ctx->waker);
	}
	return AF_OK;
undo_fd:
	close(ctx->waker->fd);
undo_waker:
	free(ctx->waker);
undo_scratch:
	af_payload_destroy(&ctx->scratch);
undo_loop:
	af__loop_fini(&ctx->loop);
undo_zone:
	msgpack_zone_destroy(&ctx->zone);
	return err;
}

static void timer_free_all(af_ctx *ctx);

void af__ctx_count(af_ctx *ctx, af__stat stat, uint64_t n)
{
	ctx->counters.stat[stat] += n;
	if (ctx->sys != NULL)
		atomic_fetch_add(&ctx->sys->stats[stat], n);
}

void af__ctx_fini(af_ctx *ctx, int status)
{
	ctx->stopping = true;
	af__ctx_fail_requests(ctx, status);
	timer_free_all(ctx);
	for (int fd = 0; fd < ctx->fds_cap; fd++)
		if (ctx->fds[fd] != NULL)
			af_fd_unwatch(ctx, fd);
	af__reply_hand_over_backlog(ctx, 0);
	af__loop_timer_del(&ctx->loop, &ctx->probe_timer);
	af__loop_timer_del(&ctx->loop, &ctx->peer_sweep);
	af__ctx_close_inbox(ctx);
	af__peers_close_all(ctx, status);
	/* A context that ends owes nobody a call: its callbacks end with it.
	 */
	af__loop_timer_del(&ctx->loop, &ctx->orphan_timer);
	while (ctx->orphan_waits != NULL) {
		af__writable_wait *w = ctx->orphan_waits;
		ctx->orphan_waits = w->next;
		ctx->writable_waits--;
		free(w);
	}
	if (ctx->sys != NULL)
		af__system_remove_waker(ctx->sys, ctx->waker);
	af__loop_del(&ctx->loop, &ctx->wake_watch, NULL);
	close(ctx->waker->fd);
	free(ctx->waker);
	af__loop_fini(&ctx->loop);
	free(ctx->fds);
	af__idmap_fini(&ctx->pending_index);
	af__idmap_fini(&ctx->peer_index);
	af__idmap_fini(&ctx->outreqs);
	af__idmap_fini(&ctx->timers);
	af__idmap_fini(&ctx->backlog_index);
	af_payload_destroy(&ctx->scratch);
	msgpack_zone_destroy(&ctx->zone);
}

void af__ctx_check_epoch(af_ctx *ctx, bool take_answers)
{
	uint64_t epoch;

	if (ctx->sys == NULL)
		return;
	epoch = atomic_load(&ctx->sys->epoch);
	if (epoch != ctx->epoch) {
		ctx->epoch = epoch;
		/* Connections to actors that are gone go first, whatever is
		 * outstanding: a message sent after this, a handler's included,
		 * must reach the actor that holds the name now. */
		af__peers_revalidate(ctx);
		if (!take_answers && ctx->lost_reqs != NULL)
			af__wake_fd(ctx->waker->fd);
	}
	if (!take_answers || ctx->lost_reqs == NULL)
		return;
	/* An actor answers what it holds before it is gone, and those
	 * answers are in the inbox already: take them before the requests
	 * still open on the actor are declared lost. */
	if (ctx->inbox != NULL) {
		for (int i = 0; i < 64; i++)
			if (af__ctx_read(ctx, ctx->inbox, &ctx->inbox_watch,
					 false, AF__READ_PASS) == 0)
				break;
	}
	/* A continuation that sees another actor gone loses more requests,
	 * whose answers are not taken yet: they wait for the wake-up it
	 * sent. */
	while (ctx->lost_reqs != NULL && ctx->epoch == epoch)
		af__outreq_settle(ctx->lost_reqs, AF_EPEERDOWN, NULL);
}

/* ---- sending ----------------------------------------------------------- */

af_err af__frame_build(zmq_msg_t *frame, const af__envelope *env,
		       const af_payload *payload, size_t max_msg)
{
	uint8_t header[AF__HEADER_MAX];
	size_t header_len;
	size_t payload_len;
	const void *payload_bytes;
	af_err err;

	if (payload != NULL && (err = af_payload_status(payload)) != AF_OK)
		return err;
	payload_bytes = af__payload_bytes(payload, &payload_len);
	err = af__envelope_header(header, sizeof(header), &header_len, env);
	if (err != AF_OK)
		return err;
	if (header_len + payload_len > max_msg)
		return AF_EMSGSIZE;
	if (zmq_msg_init_size(frame, header_len + payload_len) != 0)
		return AF_ENOMEM;
	memcpy(zmq_msg_data(frame), header, header_len);
	memcpy((char *)zmq_msg_data(frame) + header_len, payload_bytes,
	       payload_len);
	return AF_OK;
}

static void remember_addr(af_ctx *ctx, const char *addr, af__peer *peer,
			  const char *to, size_t to_len)
{
	size_t len = strlen(addr);

	ctx->last_peer = NULL;
	if (len >= sizeof(ctx->last_addr))
		return;
	memcpy(ctx->last_addr, addr, len + 1);
	ctx->last_peer = peer;
	ctx->last_to = to != NULL ? ctx->last_addr + (to - addr) : NULL;
	ctx->last_to_len = to_len;
}

/* Adds a tell to peer's batch. False (and *err untouched) when it should
 * go alone: a large tell, or one that will fail anyway (and say why). */
static bool batch_tell(af__peer *peer, const af__envelope *env,
		       const af_payload *payload, size_t max_msg, af_err *err)
{
	uint8_t header[AF__HEADER_MAX];
	size_t header_len;
	size_t payload_len;
	const void *payload_bytes;

	if (payload != NULL && af_payload_status(payload) != AF_OK)
		return false;
	payload_bytes = af__payload_bytes(payload, &payload_len);
	if (af__envelope_header(header, sizeof(header), &header_len, env) !=
		    AF_OK ||
	    header_len + payload_len > max_msg ||
	    !af__peer_batches(peer, header_len + payload_len))
		return false;
	*err = af__peer_batch(peer, header, header_len, payload_bytes,
			      payload_len);
	return true;
}

af_err af__ctx_send(af_ctx *ctx, const char *addr, af__envelope *env,
		    const char *type, const af_payload *payload,
		    int64_t block_ms, af__peer **via)
{
	const char *key;
	size_t key_len;
	bool remote;
	af__peer *peer;
	zmq_msg_t frame;
	bool gateway;
	af_err err;

	if (ctx->stopping)
		return AF_ESTOPPED;
	if (addr == NULL)
		return AF_EADDR;
	/* A context with nothing outstanding is not woken when an actor stops
	 * (see af__system_bump_epoch), and one that was may not have taken
	 * its wake-up yet: either way peers to stopped actors are dropped
	 * here, before a message could go to one, and a new actor of the same
	 * name gets a connection of its own. A handler may be running, so the
	 * inbox is left alone. A request is indexed before it comes here,
	 * which marks the context waiting first: a stop that this check does
	 * not see wakes it instead. */
	af__ctx_check_epoch(ctx, false);
	if (ctx->last_peer != NULL && strcmp(addr, ctx->last_addr) == 0) {
		peer = ctx->last_peer;
		env->to = ctx->last_to;
		env->to_len = ctx->last_to_len;
	} else {
		err = af__addr_parse(addr, &key, &key_len, &remote, &env->to,
				     &env->to_len);
		if (err == AF_OK)
			err = af__peer_get(ctx, key, key_len, remote, &peer);
		if (err != AF_OK)
			return err;
		remember_addr(ctx, addr, peer, env->to, env->to_len);
	}
	if (type != NULL) {
		env->type = type;
		env->type_len = strlen(type);
	}
	/* An actor's tells travel in a batch sent once its loop has nothing
	 * else ready (at most AF__LAZY_HOLD_US later); a client's, which runs
	 * no loop after the call, go at once. */
	/* A gateway's tells name its inbox like requests do, so the receiver
	 * knows they came from another process (af_msg_is_local). */
	gateway = ctx->actor != NULL && ctx->actor->gateway;
	if (env->kind == AF_KIND_TELL)
		af__peer_sent_tell(peer);
	if (env->kind == AF_KIND_TELL && ctx->actor != NULL && !gateway &&
	    batch_tell(peer, env, payload, ctx->max_msg, &err))
		return err;
	err = af__frame_build(&frame, env, payload, ctx->max_msg);
	if (err != AF_OK)
		return err;
	/* A request to a remote peer is registered against the connection's
	 * state of now: an idle client has not read its monitor since the
	 * last call, and the death of a connection long gone, read after the
	 * request went out, would be taken for the death of the new one. So
	 * the monitor is read before the send: a disconnect read later
	 * happened after it. */
	if (peer->remote && env->kind == AF_KIND_REQUEST)
		af__peer_sync(peer);
	err = af__peer_send(peer, &frame,
			    env->kind == AF_KIND_REQUEST || gateway
				    ? ctx->inbox_name
				    : NULL,
			    block_ms);
	if (err != AF_OK) {
		zmq_msg_close(&frame);
		return err;
	}
	if (via != NULL)
		*via = peer;
	return AF_OK;
}

af_err af_tell(af_ctx *ctx, const char *addr, const char *type,
	       const af_payload *payload)
{
	af__envelope env = {.kind = AF_KIND_TELL};

	return af__ctx_send(ctx, addr, &env, type, payload, 0, NULL);
}

af_err af_when_writable(af_ctx *ctx, const char *addr, af_timer_fn fn,
			void *arg)
{
	const char *key;
	const char *to;
	size_t key_len;
	size_t to_len;
	bool remote;
	af__peer *peer;
	af_err err;

	if (fn == NULL)
		return AF_EINVAL;
	if (ctx->stopping)
		return AF_ESTOPPED;
	af__ctx_check_epoch(ctx, false);
	err = af__addr_parse(addr, &key, &key_len, &remote, &to, &to_len);
	if (err == AF_OK)
		err = af__peer_get(ctx, key, key_len, remote, &peer);
	if (err == AF_OK)
		err = af__peer_when_writable(peer, fn, arg);
	/* The wait marked the context waiting: a stop after the check above
	 * either wakes it or is seen here, and the wait then moves to the
	 * next turn, where the retry meets the new connection. */
	if (err == AF_OK)
		af__ctx_check_epoch(ctx, false);
	return err;
}

void af__ctx_update_waiting(af_ctx *ctx)
{
	atomic_store(&ctx->waker->waiting,
		     ctx->outreqs.len > 0 || ctx->writable_waits > 0);
}

void af__ctx_run_orphan_waits(af__timer *t)
{
	af_ctx *ctx = AF__CONTAINER(t, af_ctx, orphan_timer);
	af__writable_wait *list = ctx->orphan_waits;

	ctx->orphan_waits = NULL;
	while (list != NULL) {
		af__writable_wait *w = list;
		list = w->next;
		ctx->writable_waits--;
		af__ctx_update_waiting(ctx);
		w->fn(ctx, w->arg);
		free(w);
	}
}

/* ---- requests ---------------------------------------------------------- */

/* Ids per block a context draws from its system: a context that makes few
 * requests leaves the ids small (a short encoding on the wire), one that
 * makes many pays one atomic operation per block. */
#define AF__ID_BLOCK 1024

uint64_t af__ctx_next_id(af_ctx *ctx)
{
	/* An answer carries only the id, and reaches whoever holds the
	 * requester's name now: ids unique across the system are what keeps
	 * an answer meant for an actor that stopped from matching a request
	 * of the next actor of that name. */
	if (ctx->next_id == ctx->id_end) {
		if (ctx->sys == NULL) {
			ctx->id_end = UINT64_MAX;
		} else {
			ctx->next_id = atomic_fetch_add(&ctx->sys->next_ids,
							AF__ID_BLOCK);
			ctx->id_end = ctx->next_id + AF__ID_BLOCK;
		}
	}
	return ++ctx->next_id;
}

void af__outreq_settle(af__outreq *o, int status, af_msg *reply)
{
	af_ctx *ctx = o->ctx;

	af__idmap_take(&ctx->outreqs, o->id);
	af__ctx_update_waiting(ctx);
	af__loop_timer_del(&ctx->loop, &o->deadline);
	if (o->peer != NULL || o->lost) {
		af__outreq **head =
			o->peer != NULL ? &o->peer->reqs : &ctx->lost_reqs;
		if (o->prev != NULL)
			o->prev->next = o->next;
		else
			*head = o->next;
		if (o->next != NULL)
			o->next->prev = o->prev;
	}
	o->fn(ctx, status, reply, o->arg);
	free(o);
}

void af__outreq_fail(af__outreq *o, int code, const char *text)
{
	af_ctx *ctx = o->ctx;
	af__envelope env = {.kind = AF_KIND_ERROR, .id = o->id};
	zmq_msg_t frame;
	af_msg m;

	/* Made and read as an error from the target would be, so that every
	 * continuation finds the text where it looks for it. */
	af_payload_reset(ctx->scratch);
	if (af__error_payload(ctx->scratch, code, text) != AF_OK ||
	    af__frame_build(&frame, &env, ctx->scratch, SIZE_MAX) != AF_OK) {
		af__outreq_settle(o, code, NULL);
		return;
	}
	if (af__msg_decode(&m, zmq_msg_data(&frame), zmq_msg_size(&frame),
			   SIZE_MAX, &ctx->zone) == AF_OK)
		af__outreq_settle(o, code, &m);
	else
		af__outreq_settle(o, code, NULL);
	af__msg_clear(&m);
	zmq_msg_close(&frame);
}

af_err af__outreq_send_control(af_ctx *ctx, af__outreq *o, af_kind kind,
			       uint64_t seq)
{
	af__envelope env = {.kind = kind, .id = o->id, .seq = seq};
	zmq_msg_t frame;
	af_err err;

	if (o->peer == NULL || o->peer->closed)
		return AF_EPEERDOWN;
	err = af__frame_build(&frame, &env, NULL, ctx->max_msg);
	if (err != AF_OK)
		return err;
	/* A local one names this inbox, as a request does, so the target
	 * can tell whose request it is. */
	err = af__peer_send(o->peer, &frame, ctx->inbox_name, 0);
	if (err != AF_OK)
		zmq_msg_close(&frame);
	return err;
}

void af__outreq_send_cancel(af_ctx *ctx, af__outreq *o)
{
	/* Best effort: the requester's outcome does not depend on it. */
	(void)af__outreq_send_control(ctx, o, AF_KIND_CANCEL, 0);
}

static void outreq_expired(af__timer *t)
{
	af__outreq *o = AF__CONTAINER(t, af__outreq, deadline);

	if (o->in_grace) {
		/* Sent while its peer was down: the grace is over. */
		o->in_grace = false;
		if (o->peer != NULL)
			af__peer_sync(o->peer);
		if (o->peer != NULL && !o->peer->down) {
			/* The peer came back and has the request; it has
			 * the rest of the time to answer. */
			if (o->deadline_us == INT64_MAX)
				return;
			if (o->deadline_us > af__now_us() &&
			    af__loop_timer_add(&o->ctx->loop, &o->deadline,
					       o->deadline_us) == AF_OK)
				return;
		} else if (o->deadline_us > af__now_us()) {
			/* The request may still be queued for the peer:
			 * the cancel follows it, should it come back. */
			af__outreq_send_cancel(o->ctx, o);
			af__outreq_settle(o, AF_EPEERDOWN, NULL);
			return;
		}
	}
	af__outreq_send_cancel(o->ctx, o);
	af__outreq_settle(o, AF_ETIMEDOUT, NULL);
}

/* A request sent to a remote peer that is down gets a grace to see it
 * come back, shorter than its deadline: its timer fires at the end of the
 * grace first (outreq_expired). */
static void start_grace(af_ctx *ctx, af__outreq *o)
{
	int64_t grace_us = af__now_us() + AF__PEER_DOWN_GRACE_MS * 1000;

	if (!o->peer->remote || !o->peer->down || grace_us >= o->deadline_us)
		return;
	/* Deleting the deadline made room for the new one: the add cannot
	 * fail; were it to, the deadline is put back. */
	af__loop_timer_del(&ctx->loop, &o->deadline);
	if (af__loop_timer_add(&ctx->loop, &o->deadline, grace_us) == AF_OK)
		o->in_grace = true;
	else if (o->deadline_us != INT64_MAX)
		(void)af__loop_timer_add(&ctx->loop, &o->deadline,
					 o->deadline_us);
}

af_err af__ctx_request(af_ctx *ctx, const char *addr, const char *type,
		       const af_payload *payload, int64_t timeout_ms,
		       const af__request_opts *opts, af_reply_fn fn, void *arg,
		       uint64_t *id)
{
	/* A timeout past AF__MS_MAX (INT64_MAX, say) is no deadline in
	 * practice: it counts as that much, on the wire too. */
	af__envelope env = {.kind = AF_KIND_REQUEST,
			    .ttl_ms = (uint64_t)af__clamp_ms(timeout_ms)};
	af__outreq *o;
	af__peer *peer;
	af_err err;

	if (fn == NULL || timeout_ms < 0)
		return AF_EINVAL;
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return AF_ENOMEM;
	o->id = af__ctx_next_id(ctx);
	o->fn = fn;
	o->arg = arg;
	o->on_chunk = opts->on_chunk;
	o->manual_credit = opts->manual_credit;
	if (o->on_chunk != NULL)
		o->window = AF_STREAM_WINDOW;
	/* A request's seq is the credit window it grants: 0 asks for one
	 * answer and no stream. */
	env.id = o->id;
	env.seq = o->window;
	o->ctx = ctx;
	o->deadline.index = SIZE_MAX;
	o->deadline.cb = outreq_expired;
	o->deadline_us = timeout_ms > 0 ? af__after_ms(timeout_ms) : INT64_MAX;
	/* Index first: once the message is out, nothing may fail. */
	err = af__idmap_put(&ctx->outreqs, o->id, o);
	if (err == AF_OK && ctx->outreqs.len == 1)
		af__ctx_update_waiting(ctx);
	if (err == AF_OK && timeout_ms > 0)
		err = af__loop_timer_add(&ctx->loop, &o->deadline,
					 o->deadline_us);
	if (err == AF_OK)
		err = af__ctx_send(ctx, addr, &env, type, payload,
				   opts->block_ms, &peer);
	if (err != AF_OK) {
		af__idmap_take(&ctx->outreqs, o->id);
		af__ctx_update_waiting(ctx);
		af__loop_timer_del(&ctx->loop, &o->deadline);
		free(o);
		return err;
	}
	o->peer = peer;
	o->disconnects = peer->disconnects;
	o->next = peer->reqs;
	if (peer->reqs != NULL)
		peer->reqs->prev = o;
	peer->reqs = o;
	start_grace(ctx, o);
	if (id != NULL)
		*id = o->id;
	return AF_OK;
}

af_err af_request(af_ctx *ctx, const char *addr, const char *type,
		  const af_payload *payload, int64_t timeout_ms, af_reply_fn fn,
		  void *arg, uint64_t *id)
{
	af__request_opts opts = {0};

	return af__ctx_request(ctx, addr, type, payload, timeout_ms, &opts, fn,
			       arg, id);
}

af_err af_request_stream(af_ctx *ctx, const char *addr, const char *type,
			 const af_payload *payload, int64_t timeout_ms,
			 af_chunk_fn on_chunk, af_reply_fn on_end, void *arg,
			 uint64_t *id)
{
	af__request_opts opts = {.on_chunk = on_chunk};

	if (on_chunk == NULL)
		return AF_EINVAL;
	return af__ctx_request(ctx, addr, type, payload, timeout_ms, &opts,
			       on_end, arg, id);
}

af_err af_cancel(af_ctx *ctx, uint64_t id)
{
	af__outreq *o = af__idmap_get(&ctx->outreqs, id);

	if (o == NULL)
		return AF_ENOTFOUND;
	af__outreq_send_cancel(ctx, o);
	af__outreq_settle(o, AF_ECANCELED, NULL);
	return AF_OK;
}

void af__ctx_fail_requests(af_ctx *ctx, int status)
{
	af__outreq *o;
	size_t pos = 0;

	/* Restart the scan after each settle: a continuation may add or
	 * remove requests. New ones fail at once, since ctx is stopping.
	 * Targets are told, so that they stop work nobody waits for. */
	while ((pos = 0, o = af__idmap_next(&ctx->outreqs, &pos, NULL)) !=
	       NULL) {
		af__outreq_send_cancel(ctx, o);
		af__outreq_settle(o, status, NULL);
	}
}

/* True when an answer that arrived from `from` (NULL: the inbox) may be
 * for o: a remote target answers on the very connection the request went
 * out on, a local one in the inbox, also after its connection was dropped
 * because the actor stopped (o is lost then, its answers still queued). */
static bool came_back(const af__outreq *o, const af__peer *from)
{
	if (from != NULL)
		return o->peer == from;
	return o->lost || (o->peer != NULL && !o->peer->remote);
}

void af__ctx_on_response(af_ctx *ctx, af_msg *m, const af__peer *from)
{
	af__outreq *o;

	switch (m->env.kind) {
	case AF_KIND_REPLY:
	case AF_KIND_ERROR:
	case AF_KIND_CHUNK:
	case AF_KIND_END:
		o = af__idmap_get(&ctx->outreqs, m->env.id);
		if (o == NULL) {
			/* Settled already (deadline, cancel, peer down). */
			af__ctx_count(ctx, AF__STAT_LATE, 1);
			return;
		}
		if (!came_back(o, from)) {
			/* Someone else's word for a request they never got. */
			af__ctx_count(ctx, AF__STAT_DROPPED, 1);
			return;
		}
		if (m->env.kind == AF_KIND_CHUNK ||
		    m->env.kind == AF_KIND_END) {
			af__stream_on_chunk(ctx, o, m);
			return;
		}
		af__outreq_settle(
			o, m->env.kind == AF_KIND_ERROR ? m->error_code : AF_OK,
			m);
		return;
	case AF_KIND_HEARTBEAT:
		return;
	default:
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return;
	}
}

/* ---- timers ------------------------------------------------------------ */

typedef struct usertimer {
	af__timer t;
	uint64_t id;
	int64_t repeat_us;
	af_timer_fn fn;
	void *arg;
	af_ctx *ctx;
	bool firing;
	bool cancelled;
} usertimer;

static void usertimer_fire(af__timer *t)
{
	usertimer *ut = AF__CONTAINER(t, usertimer, t);
	af_ctx *ctx = ut->ctx;

	if (ut->repeat_us > 0 &&
	    af__loop_timer_add(&ctx->loop, &ut->t, t->due_us + ut->repeat_us) ==
		    AF_OK) {
		/* Rescheduled before the call, so the callback may cancel
		 * it; freed after the call if it did. */
		ut->firing = true;
		ut->fn(ctx, ut->arg);
		ut->firing = false;
		if (ut->cancelled)
			free(ut);
		return;
	}
	af__idmap_take(&ctx->timers, ut->id);
	ut->fn(ctx, ut->arg);
	free(ut);
}

af_err af_timer_start(af_ctx *ctx, int64_t delay_ms, int64_t repeat_ms,
		      af_timer_fn fn, void *arg, uint64_t *id)
{
	usertimer *ut;
	af_err err;

	if (fn == NULL || delay_ms < 0 || repeat_ms < 0)
		return AF_EINVAL;
	ut = calloc(1, sizeof(*ut));
	if (ut == NULL)
		return AF_ENOMEM;
	ut->id = ++ctx->next_timer_id;
	/* Beyond AF__MS_MAX (about 35 years) a delay or an interval is
	 * forever in practice; counted as that much, it cannot overflow. */
	ut->repeat_us = af__clamp_ms(repeat_ms) * 1000;
	ut->fn = fn;
	ut->arg = arg;
	ut->ctx = ctx;
	ut->t.index = SIZE_MAX;
	ut->t.cb = usertimer_fire;
	err = af__idmap_put(&ctx->timers, ut->id, ut);
	if (err == AF_OK) {
		err = af__loop_timer_add(&ctx->loop, &ut->t,
					 af__after_ms(delay_ms));
		if (err != AF_OK)
			af__idmap_take(&ctx->timers, ut->id);
	}
	if (err != AF_OK) {
		free(ut);
		return err;
	}
	if (id != NULL)
		*id = ut->id;
	return AF_OK;
}

af_err af_timer_cancel(af_ctx *ctx, uint64_t id)
{
	usertimer *ut = af__idmap_take(&ctx->timers, id);

	if (ut == NULL)
		return AF_ENOTFOUND;
	af__loop_timer_del(&ctx->loop, &ut->t);
	if (ut->firing)
		ut->cancelled = true;
	else
		free(ut);
	return AF_OK;
}

static void timer_free_all(af_ctx *ctx)
{
	usertimer *ut;
	size_t pos = 0;
	uint64_t id;

	while ((pos = 0, ut = af__idmap_next(&ctx->timers, &pos, &id)) != NULL)
		af_timer_cancel(ctx, id);
}

/* ---- file descriptors -------------------------------------------------- */

static void fdwatch_ready(af__watch *w, unsigned events)
{
	af__fdwatch *fw = AF__CONTAINER(w, af__fdwatch, w);

	fw->fn(fw->ctx, w->fd, events, fw->arg);
}

static void fdwatch_release(af__watch *w)
{
	free(AF__CONTAINER(w, af__fdwatch, w));
}

af_err af_fd_watch(af_ctx *ctx, int fd, unsigned events, af_fd_fn fn, void *arg)
{
	af__fdwatch *fw;
	af_err err;

	if (fd < 0 || fn == NULL || (events & ~(AF_FD_READ | AF_FD_WRITE)))
		return AF_EINVAL;
	if (fd >= ctx->fds_cap) {
		int cap = ctx->fds_cap ? ctx->fds_cap : 64;
		af__fdwatch **fds;
		while (cap <= fd)
			cap *= 2;
		fds = realloc(ctx->fds, (size_t)cap * sizeof(*fds));
		if (fds == NULL)
			return AF_ENOMEM;
		memset(fds + ctx->fds_cap, 0,
		       (size_t)(cap - ctx->fds_cap) * sizeof(*fds));
		ctx->fds = fds;
		ctx->fds_cap = cap;
	}
	if (ctx->fds[fd] != NULL)
		return AF_EEXIST;
	fw = calloc(1, sizeof(*fw));
	if (fw == NULL)
		return AF_ENOMEM;
	fw->fn = fn;
	fw->arg = arg;
	fw->ctx = ctx;
	err = af__loop_add_fd(&ctx->loop, &fw->w, fd, events, fdwatch_ready);
	if (err != AF_OK) {
		free(fw);
		return err;
	}
	ctx->fds[fd] = fw;
	return AF_OK;
}

af_err af_fd_modify(af_ctx *ctx, int fd, unsigned events)
{
	if (fd < 0 || fd >= ctx->fds_cap || ctx->fds[fd] == NULL)
		return AF_ENOTFOUND;
	if (events & ~(AF_FD_READ | AF_FD_WRITE))
		return AF_EINVAL;
	return af__loop_mod_fd(&ctx->loop, &ctx->fds[fd]->w, events);
}

af_err af_fd_unwatch(af_ctx *ctx, int fd)
{
	af__fdwatch *fw;

	if (fd < 0 || fd >= ctx->fds_cap || ctx->fds[fd] == NULL)
		return AF_ENOTFOUND;
	fw = ctx->fds[fd];
	ctx->fds[fd] = NULL;
	af__loop_del(&ctx->loop, &fw->w, fdwatch_release);
	return AF_OK;
}

/* ---- identity ---------------------------------------------------------- */

const char *af_self(const af_ctx *ctx)
{
	return ctx->name;
}

af_system *af_ctx_system(af_ctx *ctx)
{
	return ctx->sys;
}
