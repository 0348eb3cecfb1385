#include "peer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "ctx.h"
#include "curve.h"
#include "system.h"

/* Messages read from one socket per loop turn before others get a turn. */
#define READ_BUDGET 1024

/* A batch closes at this many tells or bytes, whichever comes first. */
#define BATCH_MAX_COUNT 256
#define BATCH_MAX_BYTES (16u << 10)
/* A batch opens with its own envelope header (kind AF_KIND_BATCH, all else
 * empty) and an array32 header whose count is filled in when it closes. */
#define BATCH_HEADER_MAX 16
/* How long a stopping context waits to hand over tells it accepted. */
#define FLUSH_LINGER_MS 1000

/* ZMTP heartbeats: a remote peer silent this long is declared down. */
#define HEARTBEAT_IVL_MS 1000
#define HEARTBEAT_TIMEOUT_MS 3000

#define HANDSHAKE_FAILED                                                       \
	(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                                \
	 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                                 \
	 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* Names the monitors of remote peers (connect_remote). */
static atomic_ullong monitor_seq;

static uint64_t hash_key(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	return h | 1; /* the id map reserves 0 */
}

static bool key_is(const af__peer *p, const char *key, size_t len)
{
	return strlen(p->key) == len && memcmp(p->key, key, len) == 0;
}

static void peer_release(af__watch *w)
{
	af__peer *p = AF__CONTAINER(w, af__peer, watch);

	af__gauge_release(p->gauge);
	free(p->key);
	free(p);
}

/* Settles the requests in flight on p. The list is detached first, so a
 * continuation that sends a new request through p does not see it fail. */
static void fail_requests(af__peer *p, int status)
{
	af__outreq *list = p->reqs;

	p->reqs = NULL;
	while (list != NULL) {
		af__outreq *o = list;
		list = o->next;
		o->peer = NULL;
		o->prev = o->next = NULL;
		af__outreq_settle(o, status, NULL);
	}
}

static void drop_rest(void *sock, zmq_msg_t *frame)
{
	while (zmq_msg_more(frame)) {
		zmq_msg_close(frame);
		zmq_msg_init(frame);
		if (zmq_msg_recv(frame, sock, ZMQ_DONTWAIT) < 0)
			break;
	}
}

/* Runs the writable waits if the socket has room. They are detached
 * first: a wait that finds the mailbox full again queues itself anew. */
static void run_writable_waits(af__peer *p)
{
	af__writable_wait *list;
	int events = 0;
	size_t len = sizeof(events);

	if (p->writable_waits == NULL ||
	    zmq_getsockopt(p->sock, ZMQ_EVENTS, &events, &len) != 0 ||
	    !(events & ZMQ_POLLOUT))
		return;
	list = p->writable_waits;
	p->writable_waits = NULL;
	while (list != NULL) {
		af__writable_wait *w = list;
		list = w->next;
		p->ctx->writable_waits--;
		af__ctx_update_waiting(p->ctx);
		w->fn(p->ctx, w->arg);
		free(w);
	}
}

af_err af__peer_when_writable(af__peer *p, af_timer_fn fn, void *arg)
{
	af__writable_wait *w = malloc(sizeof(*w));
	af__writable_wait **tail = &p->writable_waits;

	if (w == NULL)
		return AF_ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->next = NULL;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = w;
	/* The target may stop instead of making room: this context must
	 * then hear of it (af__peers_revalidate) to call the wait. */
	if (p->ctx->writable_waits++ == 0)
		af__ctx_update_waiting(p->ctx);
	/* The socket may have room already; check on the next turn. */
	af__loop_kick(&p->ctx->loop, &p->watch);
	return AF_OK;
}

/* An answer that did not decode may still name its request: version,
 * kind and id come first in every version of the envelope. A request sent
 * through this peer then ends at once with the reason, as a request that
 * cannot be read is answered, instead of at its deadline (or never,
 * without one); a stream's producer is told to stop. The answer itself is
 * dropped and counted either way. */
static void answer_undecodable(af__peer *p, zmq_msg_t *frame, af_err err)
{
	af_ctx *ctx = p->ctx;
	size_t size = zmq_msg_size(frame);
	uint64_t version, kind, id;
	af__outreq *o;
	char text[512];

	af__ctx_count(ctx, AF__STAT_DROPPED, 1);
	if (!af__envelope_salvage(zmq_msg_data(frame), size, &version, &kind,
				  &id) ||
	    (kind != AF_KIND_REPLY && kind != AF_KIND_ERROR &&
	     kind != AF_KIND_CHUNK && kind != AF_KIND_END))
		return;
	/* Only an answer from where the request went settles it. */
	o = af__idmap_get(&ctx->outreqs, id);
	if (o == NULL || o->peer != p)
		return;
	switch (err) {
	case AF_EMSGSIZE:
		snprintf(text, sizeof(text),
			 "the answer from %s was too large: %zu bytes, over "
			 "the limit of %zu",
			 p->key, size, ctx->max_msg);
		break;
	case AF_EVERSION:
		snprintf(text, sizeof(text),
			 "the answer from %s was in protocol version %llu "
			 "(this receiver speaks version %d)",
			 p->key, (unsigned long long)version,
			 AF__PROTOCOL_VERSION);
		break;
	case AF_ENOMEM:
		snprintf(text, sizeof(text),
			 "no memory to read the answer from %s", p->key);
		break;
	default:
		err = AF_EPROTO;
		snprintf(text, sizeof(text), "the answer from %s was malformed",
			 p->key);
		break;
	}
	if (o->on_chunk != NULL)
		af__outreq_send_cancel(ctx, o);
	af__outreq_fail(o, err, text);
}

static void peer_readable(af__watch *w, unsigned events)
{
	af__peer *p = AF__CONTAINER(w, af__peer, watch);
	af_ctx *ctx = p->ctx;
	int n;

	if (!p->remote) {
		/* A PUSH socket receives nothing: it is kicked to send the
		 * turn's batch, and fires when a full mailbox has room. */
		if (af__peer_flush(p, 0) == AF_OK)
			run_writable_waits(p);
		return;
	}
	p->used_us = af__now_us();
	/* The turn's batch goes first; a full connection keeps it pending
	 * (the socket fires again when it has room). */
	if (p->has_pending || p->batch_count > 0)
		(void)af__peer_flush(p, 0);
	for (n = 0; n < READ_BUDGET && !p->closed; n++) {
		zmq_msg_t frame;
		af_msg m;

		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, p->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frame);
			/* ZMQ_FD also fires when a full pipe drains (the
			 * activate_write command), and any zmq call, this
			 * receive included, may consume that signal: so
			 * room is checked after the last call, not before. */
			run_writable_waits(p);
			return;
		}
		if (zmq_msg_more(&frame)) {
			/* Responses are single frames; anything else is not
			 * ours to interpret. */
			drop_rest(p->sock, &frame);
			af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		} else {
			af_err err = af__msg_decode(&m, zmq_msg_data(&frame),
						    zmq_msg_size(&frame),
						    ctx->max_msg, &ctx->zone);
			m.from_remote = true;
			if (err == AF_OK)
				af__ctx_on_response(ctx, &m, p);
			af__msg_clear(&m);
			if (err != AF_OK)
				answer_undecodable(p, &frame, err);
		}
		msgpack_zone_clear(&ctx->zone);
		zmq_msg_close(&frame);
	}
	if (!p->closed)
		af__loop_kick(&ctx->loop, &p->watch);
}

/* Settles the requests sent before the last disconnect read. They are
 * detached first, so a continuation that sends a new request through p
 * does not see it fail. */
static void fail_stale_requests(af__peer *p)
{
	af__outreq *list = NULL;
	af__outreq *o = p->reqs;

	while (o != NULL) {
		af__outreq *next = o->next;
		if (o->disconnects < p->disconnects) {
			if (o->prev != NULL)
				o->prev->next = o->next;
			else
				p->reqs = o->next;
			if (o->next != NULL)
				o->next->prev = o->prev;
			o->peer = NULL;
			o->prev = NULL;
			o->next = list;
			list = o;
		}
		o = next;
	}
	while (list != NULL) {
		o = list;
		list = o->next;
		o->next = NULL;
		af__outreq_settle(o, AF_EPEERDOWN, NULL);
	}
}

/* Reads up to budget monitor events, noting what they say. True when
 * events may remain. Every message received is closed, on every path:
 * libzmq allocates the address frame of an event on the heap. */
static bool read_events(af__peer *p, int budget)
{
	for (int n = 0; n < budget; n++) {
		zmq_msg_t frame;
		uint16_t event = 0;

		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, p->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frame);
			return false;
		}
		if (zmq_msg_size(&frame) >= sizeof(event))
			memcpy(&event, zmq_msg_data(&frame), sizeof(event));
		drop_rest(p->mon, &frame);
		zmq_msg_close(&frame);
		if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
			p->handshaken = true;
			p->down = false;
			/* What was queued goes out on the new connection. */
			p->tell_since_up = false;
		} else if ((event & HANDSHAKE_FAILED) ||
			   (event == ZMQ_EVENT_DISCONNECTED && p->curve &&
			    !p->handshaken)) {
			/* Refused: a mechanism or keys the server does not
			 * take (ZeroMQ gives such a connection up for good),
			 * or a CURVE connection dropped before its handshake
			 * ended (the server could not read our hello: a
			 * wrong server key). The next message makes a new
			 * connection, to be refused or not afresh. */
			p->refused = true;
		} else if (event == ZMQ_EVENT_DISCONNECTED) {
			p->disconnects++;
			p->down = true;
			p->handshaken = false;
		}
	}
	return true;
}

void af__peer_sync(af__peer *p)
{
	uint64_t disconnects = p->disconnects;

	if (p->mon == NULL || p->closed)
		return;
	(void)read_events(p, INT32_MAX);
	/* What the events call for is done on the loop, never inside the
	 * send that asked (it may run in a handler). */
	if (p->refused || p->disconnects != disconnects)
		af__loop_kick(&p->ctx->loop, &p->mon_watch);
}

static void monitor_readable(af__watch *w, unsigned events)
{
	af__peer *p = AF__CONTAINER(w, af__peer, mon_watch);
	bool more;

	if (p->closed)
		return;
	more = read_events(p, READ_BUDGET);
	if (p->refused) {
		af__peer_close(p, AF_EAUTH);
		return;
	}
	fail_stale_requests(p);
	if (more && !p->closed)
		af__loop_kick(&p->ctx->loop, &p->mon_watch);
}

/* Stops the socket's monitor, then closes this end of it. In that order:
 * an event the socket emits after this end closed (a disconnect while the
 * socket goes, a handshake) fails to send inside libzmq, which then never
 * closes the event's address frame, a leak. */
static void stop_monitor(af__peer *p)
{
	(void)zmq_socket_monitor(p->sock, NULL, 0);
	zmq_close(p->mon);
	p->mon = NULL;
}

static af_err set_int(void *sock, int opt, int val)
{
	return zmq_setsockopt(sock, opt, &val, sizeof(val)) == 0 ? AF_OK
								 : AF_ESYS;
}

static af_err connect_remote(af__peer *p, const char *endpoint)
{
	char mon_addr[64];
	int64_t max = (int64_t)p->ctx->max_msg * 4;

	if (set_int(p->sock, ZMQ_HEARTBEAT_IVL, HEARTBEAT_IVL_MS) != AF_OK ||
	    set_int(p->sock, ZMQ_HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS) !=
		    AF_OK ||
	    set_int(p->sock, ZMQ_HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS) !=
		    AF_OK ||
	    set_int(p->sock, ZMQ_RECONNECT_IVL, 100) != AF_OK ||
	    zmq_setsockopt(p->sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0)
		return AF_ESYS;
	/* A closed peer's monitor endpoint is released by ZeroMQ a moment
	 * later, and a new peer may get the same address: a sequence number
	 * keeps the names apart. */
	snprintf(mon_addr, sizeof(mon_addr), "inproc://af.monitor.%p.%llu",
		 (void *)p,
		 (unsigned long long)atomic_fetch_add(&monitor_seq, 1));
	/* Keys go before the connect (curve.c). A failed handshake (a
	 * mechanism the server does not speak, keys it refuses) is reported
	 * for every peer: it costs nothing until it happens. */
	if (af__curve_connect(p->ctx, p->sock, endpoint, &p->curve) != AF_OK)
		return AF_ESYS;
	/* A handshake that succeeds tells that a connection is up again. */
	if (zmq_socket_monitor(p->sock, mon_addr,
			       ZMQ_EVENT_DISCONNECTED | HANDSHAKE_FAILED |
				       ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)
		return AF_ESYS;
	p->mon = zmq_socket(p->ctx->zctx, ZMQ_PAIR);
	if (p->mon == NULL)
		return AF_ESYS;
	/* libzmq leaks an event's address frame when the monitor cannot
	 * take it (its send fails and the message is never closed): the
	 * queue is left unbounded (an event or two per connection, read on
	 * the next loop turn or request), and the monitor is stopped before
	 * this end closes (stop_monitor). */
	if (set_int(p->mon, ZMQ_LINGER, 0) != AF_OK ||
	    set_int(p->mon, ZMQ_RCVHWM, 0) != AF_OK ||
	    zmq_connect(p->mon, mon_addr) != 0 ||
	    af__loop_add_zsock(&p->ctx->loop, &p->mon_watch, p->mon,
			       monitor_readable) != AF_OK)
		return AF_ESYS;
	if (zmq_connect(p->sock, endpoint) != 0)
		return errno == EINVAL || errno == EPROTONOSUPPORT ? AF_EADDR
								   : AF_ESYS;
	return AF_OK;
}

static af_err connect_local(af__peer *p)
{
	char endpoint[AF__NAME_MAX + 16];

	int one = 1;

	if (p->ctx->sys == NULL)
		return AF_ENOTFOUND;
	/* ZeroMQ sizes an inproc pipe as the sender's send limit plus the
	 * receiver's receive limit; keeping the sender's at one makes the
	 * receiver's mailbox capacity the bound. */
	if (zmq_setsockopt(p->sock, ZMQ_SNDHWM, &one, sizeof(one)) != 0)
		return AF_ESYS;
	p->incarnation = af__system_lookup_gauge(p->ctx->sys, p->key,
						 strlen(p->key), &p->gauge);
	if (p->incarnation == 0)
		return AF_ENOTFOUND;
	af__inproc_endpoint(endpoint, sizeof(endpoint), p->key);
	return zmq_connect(p->sock, endpoint) == 0 ? AF_OK : AF_ESYS;
}

static void index_add(af_ctx *ctx, af__peer *p)
{
	if (af__idmap_get(&ctx->peer_index, p->hash) == NULL)
		(void)af__idmap_put(&ctx->peer_index, p->hash, p);
	/* On failure or a hash collision the peer is still found by the
	 * linear search over the list. */
	p->next = ctx->peers;
	p->prev = NULL;
	if (ctx->peers != NULL)
		ctx->peers->prev = p;
	ctx->peers = p;
}

static void index_remove(af_ctx *ctx, af__peer *p)
{
	if (af__idmap_get(&ctx->peer_index, p->hash) == p)
		af__idmap_take(&ctx->peer_index, p->hash);
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ctx->peers = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	p->next = p->prev = NULL;
}

int64_t af__peer_idle_us(const af_system *sys)
{
	int64_t ms = sys != NULL ? sys->peer_idle_ms : AF__PEER_IDLE_MS;

	return ms < 0 ? -1 : af__clamp_ms(ms) * 1000;
}

static void count_remote(af__peer *p, int delta)
{
	af__actor *a = p->ctx->actor;

	if (a != NULL)
		af__stat_add(&a->stats.remote_peers, (uint64_t)(int64_t)delta);
}

/* A remote peer joined: counted, and the sweep that closes idle ones is
 * due once it could be idle long enough. */
static void remote_opened(af__peer *p)
{
	af_ctx *ctx = p->ctx;

	p->used_us = af__now_us();
	count_remote(p, 1);
	if (ctx->peer_idle_us >= 0 && ctx->peer_sweep.index == SIZE_MAX)
		af__loop_timer_add(&ctx->loop, &ctx->peer_sweep,
				   p->used_us + ctx->peer_idle_us);
}

/* Nothing outstanding on p, nothing waiting to go, nobody waiting for it:
 * closing it loses nothing. A tell sent while the connection was down, or
 * before it went down, may still be in ZeroMQ's queue for it (it goes if
 * the process comes back), so such a peer is kept until it connects. */
static bool carries_nothing(af__peer *p)
{
	af__peer_sync(p);
	return p->reqs == NULL && p->writable_waits == NULL &&
	       !p->has_pending && p->batch_count == 0 &&
	       (!p->tell_since_up || (p->handshaken && !p->down));
}

void af__peers_sweep(af__timer *t)
{
	af_ctx *ctx = AF__CONTAINER(t, af_ctx, peer_sweep);
	int64_t now = af__now_us();
	int64_t next = INT64_MAX;
	af__peer *p = ctx->peers;

	for (af__peer *after; p != NULL; p = after) {
		int64_t due;
		after = p->next;
		if (!p->remote)
			continue;
		due = p->used_us + ctx->peer_idle_us;
		if (due <= now && carries_nothing(p)) {
			af__peer_close(p, AF_ECANCELED);
			continue;
		}
		/* One still in use is looked at again an idle time from now. */
		if (due <= now)
			due = now + ctx->peer_idle_us;
		if (due < next)
			next = due;
	}
	if (next != INT64_MAX)
		af__loop_timer_add(&ctx->loop, &ctx->peer_sweep, next);
}

af_err af__peer_get(af_ctx *ctx, const char *key, size_t key_len, bool remote,
		    af__peer **out)
{
	uint64_t h = hash_key(key, key_len);
	af__peer *p = af__idmap_get(&ctx->peer_index, h);
	af_err err;

	if (p == NULL || !key_is(p, key, key_len)) {
		for (p = ctx->peers; p != NULL; p = p->next)
			if (p->hash == h && key_is(p, key, key_len))
				break;
	}
	if (p != NULL) {
		*out = p;
		return AF_OK;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return AF_ENOMEM;
	p->key = strndup(key, key_len);
	p->ctx = ctx;
	p->hash = h;
	p->remote = remote;
	p->sock = zmq_socket(ctx->zctx, remote ? ZMQ_DEALER : ZMQ_PUSH);
	if (p->key == NULL || p->sock == NULL) {
		err = p->key == NULL ? AF_ENOMEM : AF_ESYS;
		goto fail;
	}
	/* A local peer may carry answers its actor sent while stopping: give
	 * the receiver time to take them. A remote one must not hold up the
	 * context's end for a peer that may be gone. */
	err = set_int(p->sock, ZMQ_LINGER, remote ? 0 : 1000);
	if (err == AF_OK)
		err = remote ? connect_remote(p, p->key) : connect_local(p);
	if (err == AF_OK)
		err = af__loop_add_zsock(&ctx->loop, &p->watch, p->sock,
					 peer_readable);
	if (err != AF_OK)
		goto fail;
	index_add(ctx, p);
	if (remote)
		remote_opened(p);
	*out = p;
	return AF_OK;
fail:
	if (p->mon_watch.cb != NULL) {
		/* The monitor watch joined the loop, which may still name it
		 * this turn: free the peer when the turn ends, through a main
		 * watch that never joined (fd -1). Reaping runs last-in
		 * first-out, so the main watch is deleted first. */
		p->watch.fd = -1;
		p->watch.cb = NULL;
		af__loop_del(&ctx->loop, &p->watch, peer_release);
		af__loop_del(&ctx->loop, &p->mon_watch, NULL);
	}
	if (p->mon != NULL)
		stop_monitor(p);
	if (p->sock != NULL)
		zmq_close(p->sock);
	if (p->mon_watch.cb == NULL) {
		af__gauge_release(p->gauge);
		free(p->key);
		free(p);
	}
	return err;
}

void af__peer_close(af__peer *p, int status)
{
	af_ctx *ctx = p->ctx;

	if (p->closed)
		return;
	p->closed = true;
	if (ctx->last_peer == p)
		ctx->last_peer = NULL;
	if (ctx->last_answer_peer == p)
		ctx->last_answer_peer = NULL;
	/* Tells already accepted are handed over unless the peer is gone (a
	 * remote one may be unreachable: they are queued for its socket, and
	 * go if it is connected). */
	if ((p->has_pending || p->batch_count > 0) && status != AF_EPEERDOWN &&
	    (p->remote || af__system_lookup(ctx->sys, p->key, strlen(p->key),
					    true) == p->incarnation) &&
	    af__peer_flush(p, p->remote ? 0 : FLUSH_LINGER_MS) != AF_OK)
		af__ctx_count(ctx, AF__STAT_UNROUTABLE,
			      p->batch_count + p->has_pending);
	free(p->batch);
	p->batch = NULL;
	if (p->has_pending) {
		zmq_msg_close(&p->pending);
		p->has_pending = false;
	}
	index_remove(ctx, p);
	if (p->remote)
		count_remote(p, -1);
	fail_requests(p, status);
	/* Order matters: the dead list is reaped last-in first-out, and the
	 * release of the main watch frees the peer with the monitor watch in
	 * it, so the monitor watch must be reaped first, i.e. added last. */
	/* Whoever waits for room is still owed its one call. */
	while (p->writable_waits != NULL) {
		af__writable_wait *w = p->writable_waits;
		p->writable_waits = w->next;
		w->next = ctx->orphan_waits;
		ctx->orphan_waits = w;
	}
	if (ctx->orphan_waits != NULL && !ctx->stopping &&
	    ctx->orphan_timer.index == SIZE_MAX) {
		ctx->orphan_timer.cb = af__ctx_run_orphan_waits;
		af__loop_timer_add(&ctx->loop, &ctx->orphan_timer, 0);
	}
	af__loop_del(&ctx->loop, &p->watch, peer_release);
	if (p->mon != NULL) {
		af__loop_del(&ctx->loop, &p->mon_watch, NULL);
		stop_monitor(p);
	}
	zmq_close(p->sock);
	p->sock = NULL;
}

/* Hands p's requests to the context: the answers their actor sent before
 * it went may still be in the inbox, unread. */
static void lose_requests(af__peer *p)
{
	af_ctx *ctx = p->ctx;

	while (p->reqs != NULL) {
		af__outreq *o = p->reqs;
		p->reqs = o->next;
		o->peer = NULL;
		o->lost = true;
		o->prev = NULL;
		o->next = ctx->lost_reqs;
		if (ctx->lost_reqs != NULL)
			ctx->lost_reqs->prev = o;
		ctx->lost_reqs = o;
	}
}

void af__peers_revalidate(af_ctx *ctx)
{
	af__peer *p = ctx->peers;

	while (p != NULL) {
		af__peer *next = p->next;
		if (!p->remote &&
		    af__system_lookup(ctx->sys, p->key, strlen(p->key), true) !=
			    p->incarnation) {
			lose_requests(p);
			af__peer_close(p, AF_EPEERDOWN);
		}
		p = next;
	}
}

void af__peers_close_all(af_ctx *ctx, int status)
{
	while (ctx->peers != NULL)
		af__peer_close(ctx->peers, status);
}

static void set_send_timeout(af__peer *p, int64_t ms)
{
	int timeout = ms < 0 ? -1 : ms > INT32_MAX ? INT32_MAX : (int)ms;

	zmq_setsockopt(p->sock, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
}

static bool has_room(af__peer *p)
{
	int events = 0;
	size_t len = sizeof(events);

	return zmq_getsockopt(p->sock, ZMQ_EVENTS, &events, &len) == 0 &&
	       (events & ZMQ_POLLOUT);
}

/* Sends one frame: at once, or waiting up to block_ms. */
static af_err send_part(af__peer *p, void *part, int more, int64_t block_ms)
{
	int e;

	if (zmq_msg_send(part, p->sock, ZMQ_DONTWAIT | more) >= 0)
		return AF_OK;
	if (errno != EAGAIN)
		return AF_ESYS;
	/* A send processes ZeroMQ's pending commands only now and then, so
	 * the one saying the peer made room may still be waiting, with the
	 * fd's signal for it already spent. ZMQ_EVENTS processes them all. */
	if (has_room(p) &&
	    zmq_msg_send(part, p->sock, ZMQ_DONTWAIT | more) >= 0)
		return AF_OK;
	if (block_ms <= 0)
		return AF_EAGAIN;
	set_send_timeout(p, block_ms);
	e = zmq_msg_send(part, p->sock, more) >= 0 ? 0 : errno;
	set_send_timeout(p, -1);
	if (e == 0)
		return AF_OK;
	return e == EAGAIN ? AF_ETIMEDOUT : AF_ESYS;
}

af_err af__peer_send(af__peer *p, void *frame, const char *reply_to,
		     int64_t block_ms)
{
	af_err err;

	/* Whatever was batched goes first: one sender's messages arrive in
	 * the order they were sent. */
	if (p->has_pending || p->batch_count > 0) {
		err = af__peer_flush(p, block_ms);
		if (err != AF_OK)
			return err;
	}

	if (reply_to != NULL && !p->remote) {
		zmq_msg_t head;
		size_t len = strlen(reply_to);
		if (zmq_msg_init_size(&head, len) != 0)
			return AF_ENOMEM;
		memcpy(zmq_msg_data(&head), reply_to, len);
		err = send_part(p, &head, ZMQ_SNDMORE, block_ms);
		if (err != AF_OK) {
			zmq_msg_close(&head);
			return err;
		}
		/* Once a message's first frame is taken, ZeroMQ takes the
		 * rest: the body cannot meet a full queue now. */
		block_ms = -1;
	}
	err = block_ms < 0
		      ? (zmq_msg_send(frame, p->sock, 0) >= 0 ? AF_OK : AF_ESYS)
		      : send_part(p, frame, 0, block_ms);
	if (err != AF_OK)
		return err;
	if (p->remote)
		p->used_us = af__now_us();
	af__gauge_add(p->gauge);
	/* A send may have consumed the socket's readiness signal. */
	af__loop_kick(&p->ctx->loop, &p->watch);
	return AF_OK;
}

/* ---- batches ----------------------------------------------------------- */

static void free_batch(void *data, void *hint)
{
	free(data);
}

bool af__peer_batches(const af__peer *p, size_t size)
{
	/* Room for the batch's own header (at most BATCH_HEADER_MAX + 5). */
	return size <= BATCH_MAX_BYTES / 4 &&
	       size + BATCH_HEADER_MAX + 5 <= p->ctx->max_msg;
}

static af_err send_pending(af__peer *p, int64_t block_ms)
{
	af_err err;

	if (!p->has_pending)
		return AF_OK;
	err = send_part(p, &p->pending, 0, block_ms);
	if (err != AF_OK)
		return err;
	/* ZeroMQ took the message and left p->pending empty. */
	p->has_pending = false;
	af__gauge_add(p->gauge);
	af__loop_kick(&p->ctx->loop, &p->watch);
	return AF_OK;
}

af_err af__peer_flush(af__peer *p, int64_t block_ms)
{
	size_t at = p->batch_count_at;
	af_err err = send_pending(p, block_ms);

	if (err != AF_OK || p->batch_count == 0)
		return err;
	p->batch[at] = (uint8_t)(p->batch_count >> 24);
	p->batch[at + 1] = (uint8_t)(p->batch_count >> 16);
	p->batch[at + 2] = (uint8_t)(p->batch_count >> 8);
	p->batch[at + 3] = (uint8_t)p->batch_count;
	/* The buffer becomes the message: the receiver frees it. */
	if (zmq_msg_init_data(&p->pending, p->batch, p->batch_len, free_batch,
			      NULL) != 0)
		return AF_ENOMEM;
	p->batch = NULL;
	p->batch_len = p->batch_cap = 0;
	p->batch_count = 0;
	p->has_pending = true;
	return send_pending(p, block_ms);
}

static af_err open_batch(af__peer *p, size_t need)
{
	af__envelope env = {.kind = AF_KIND_BATCH};
	size_t len;
	size_t cap = need + BATCH_HEADER_MAX + 5 > 4096
			     ? need + BATCH_HEADER_MAX + 5
			     : 4096;
	af_err err;

	p->batch = malloc(cap);
	if (p->batch == NULL)
		return AF_ENOMEM;
	p->batch_cap = cap;
	err = af__envelope_header(p->batch, BATCH_HEADER_MAX, &len, &env);
	if (err != AF_OK) {
		free(p->batch);
		p->batch = NULL;
		return err;
	}
	p->batch[len] = 0xdd; /* array32 */
	p->batch_count_at = len + 1;
	p->batch_len = len + 5;
	return AF_OK;
}

af_err af__peer_batch(af__peer *p, const uint8_t *header, size_t header_len,
		      const void *payload, size_t payload_len)
{
	size_t need = header_len + payload_len;
	af_err err = send_pending(p, 0);

	if (err != AF_OK)
		return err;
	/* A batch never exceeds the message limit of the system (the limit
	 * the receiving actor applies, when it is local). */
	size_t max_bytes = p->ctx->max_msg < BATCH_MAX_BYTES ? p->ctx->max_msg
							     : BATCH_MAX_BYTES;

	if (p->batch_count > 0 && (p->batch_count == BATCH_MAX_COUNT ||
				   p->batch_len + need > max_bytes)) {
		/* On AF_EAGAIN the full batch waits as pending; this tell is
		 * refused like any other meeting a full mailbox. */
		err = af__peer_flush(p, 0);
		if (err != AF_OK)
			return err;
	}
	if (p->batch_count == 0 && p->batch == NULL) {
		err = open_batch(p, need);
		if (err != AF_OK)
			return err;
	}
	if (p->batch_cap - p->batch_len < need) {
		size_t cap = p->batch_cap * 2 > p->batch_len + need
				     ? p->batch_cap * 2
				     : p->batch_len + need;
		uint8_t *b = realloc(p->batch, cap);
		if (b == NULL)
			return AF_ENOMEM;
		p->batch = b;
		p->batch_cap = cap;
	}
	memcpy(p->batch + p->batch_len, header, header_len);
	memcpy(p->batch + p->batch_len + header_len, payload, payload_len);
	p->batch_len += need;
	/* The first tell of a batch asks for a send once the loop idles: a
	 * busy sender's tells go out in fewer, larger batches. */
	if (p->batch_count++ == 0)
		af__loop_kick_lazy(&p->ctx->loop, &p->watch);
	return AF_OK;
}
