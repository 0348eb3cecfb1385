/*
 * The context an actor's callbacks run in, and the engine behind a client:
 * a loop, outgoing connections, outstanding requests, timers and watched
 * fds. An actor adds a mailbox (actor.c); a client drives the same context
 * from its own thread while it waits (client.c).
 */
#ifndef AF_RUNTIME_CTX_H
#define AF_RUNTIME_CTX_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "actorflow/actor.h"
#include "idmap.h"
#include "loop.h"
#include "msg.h"
#include "peer.h"

struct af__actor;
struct af__curve_client;

struct af__outreq {
	uint64_t id;
	af_reply_fn fn;
	void *arg;
	/* A stream request: on_chunk runs for each chunk. Chunks received,
	 * taken by the consumer, and the last credit sent (all counts). A
	 * client takes chunks when its reader does (manual_credit); an
	 * actor when on_chunk returns. */
	af_chunk_fn on_chunk;
	uint64_t window;
	uint64_t received;
	uint64_t taken;
	uint64_t credited;
	bool manual_credit;
	bool credit_owed; /* a credit met a full mailbox and waits */
	af__timer deadline;
	/* When the request times out (INT64_MAX: never). Sent to a remote
	 * peer that was down, the deadline timer first fires at the end of
	 * the grace the peer has to come back (in_grace). */
	int64_t deadline_us;
	bool in_grace;
	af_ctx *ctx;
	af__peer *peer;
	/* Its remote peer's disconnect count when it was sent (peer.h). */
	uint64_t disconnects;
	/* On ctx->lost_reqs: its peer's actor is gone (peer is NULL). */
	bool lost;
	af__outreq *prev;
	af__outreq *next;
};

typedef struct af__fdwatch {
	af__watch w;
	af_fd_fn fn;
	void *arg;
	af_ctx *ctx;
} af__fdwatch;

#define AF__MAX_ROUTE 8

/* Where an answer goes: back through the ROUTER a remote request came in
 * on (its routing frames), or to the inbox of a local requester (its
 * name). */
typedef struct af__reply_to {
	zmq_msg_t *route;
	int nroute;
	const char *name;
	size_t name_len;
} af__reply_to;

struct af_pending {
	af_ctx *ctx;
	uint64_t id;
	/* The hash of the requester and id, by which a cancel or a credit
	 * finds the request (ctx->pending_index). */
	uint64_t key;
	bool indexed; /* false after a hash collision: found by a scan */
	int64_t deadline_us;
	/* When the actor took the request (af_msg's arrived_us). */
	int64_t arrived_us;
	int nroute;
	char *name; /* a local requester's inbox */
	/* Streams: the consumer's window (0: it wants one answer), chunks
	 * sent, and chunks it has taken (its last credit). */
	uint64_t window;
	uint64_t sent;
	uint64_t acked;
	af_timer_fn on_cancel;
	void *cancel_arg;
	af_timer_fn on_writable;
	void *writable_arg;
	/* Runs callbacks a call cannot run itself: a writable wait that can
	 * go at once, a cancel found while sending. */
	af__timer soon;
	bool cancel_due;
	bool cancelled; /* the requester gave up; answers go nowhere */
	bool in_hook;   /* on_cancel is running: the runtime frees p after */
	af_pending *prev;
	af_pending *next;
	/* A remote requester's route (nroute frames), allocated with the
	 * record: a local request, the common case, carries none, and the
	 * record stays at a fifth of what AF__MAX_ROUTE inline frames took. */
	zmq_msg_t route[];
};

/* What became of messages a context could not take; the fields of
 * af_system_stats. */
typedef enum af__stat {
	AF__STAT_DROPPED, /* undecodable or unexpected, nobody to answer */
	AF__STAT_REFUSED, /* an undecodable request, answered with an error */
	AF__STAT_LATE,    /* answers for requests already settled */
	AF__STAT_UNROUTABLE, /* answers whose requester is gone */
	AF__STAT_COUNT
} af__stat;

/* Counters an actor or client keeps. The af__stat ones are also added to
 * its system's, which outlive the context (af__ctx_count). */
typedef struct af__counters {
	uint64_t received;
	uint64_t stat[AF__STAT_COUNT];
} af__counters;

struct af_ctx {
	af_system *sys; /* NULL for a standalone client */
	void *zctx;
	af__loop loop;
	af__peer *peers;
	af__idmap peer_index; /* hash of key -> first peer with that hash */
	af__idmap outreqs;
	/* Requests sent to actors that are gone, whose connections were
	 * dropped: they end with AF_EPEERDOWN once the answers already in the
	 * inbox have been taken (af__ctx_check_epoch). */
	af__outreq *lost_reqs;
	af__idmap timers;
	/* Request ids: the last one used, and the end of the block of ids
	 * the context drew from its system (af__ctx_next_id). */
	uint64_t next_id;
	uint64_t id_end;
	uint64_t next_timer_id;
	msgpack_zone zone;
	size_t max_msg;
	uint64_t epoch;
	struct af__actor *actor; /* NULL for a client */
	/* A client's own CURVE keys for every remote endpoint (curve.c), or
	 * NULL: the system's, if any. */
	const struct af__curve_client *curve;
	const char *name;
	af__fdwatch **fds;
	int fds_cap;
	af_pending *deferred;
	/* Writable waits of peers that closed: still owed their call, made on
	 * the next turn (the retry then meets the closed peer's error). */
	struct af__writable_wait *orphan_waits;
	size_t writable_waits; /* on any peer, or orphaned: not yet called */
	af__timer orphan_timer;
	/* Closes idle connections to other processes (af__peers_sweep);
	 * peer_idle_us < 0: never. */
	af__timer peer_sweep;
	int64_t peer_idle_us;
	af__idmap pending_index;
	size_t pending_unindexed;
	/* Checks that remote requesters of streams and cancellable requests
	 * are still there (reply.c). */
	af__timer probe_timer;
	/* Answers that met a full requester queue: a lane per requester,
	 * each oldest first, found by the requester's hash (reply.c). */
	struct af__backlog *backlog;
	af__idmap backlog_index;
	size_t backlog_unindexed;
	af__timer backlog_timer;
	af__watch wake_watch;
	struct af__waker *waker;
	/* Local senders reach this context through its inbox, a PULL socket
	 * bound to inproc://af/<inbox_name>; local requests carry that name
	 * so answers come back to it. */
	void *inbox;
	af__watch inbox_watch;
	char inbox_name[AF__NAME_MAX + 1];
	/* Called on the context's thread after its wake fd fired. */
	void (*on_wake)(af_ctx *ctx);
	af_payload *scratch; /* for error payloads */
	/* The last address sent to and what it resolved to: a sender usually
	 * sends many messages to one address in a row. */
	char last_addr[2 * AF__NAME_MAX + 16];
	af__peer *last_peer;
	/* Likewise the local requester last answered with a stream chunk. */
	af__peer *last_answer_peer;
	const char *last_to;
	size_t last_to_len;
	bool stopping;
	af__counters counters;
};

af_err af__ctx_init(af_ctx *ctx, af_system *sys, void *zctx, size_t max_msg,
		    const char *name);
/* Counts n messages that met stat, in ctx and in its system. Called only
 * for messages that went wrong: the system's counters are shared atomics. */
void af__ctx_count(af_ctx *ctx, af__stat stat, uint64_t n);
/* Settles everything outstanding (continuations get status), then frees. */
void af__ctx_fini(af_ctx *ctx, int status);
/* A new request id, unique in the system: ids are drawn from the system
 * in blocks (one atomic operation per AF__ID_BLOCK requests), so no two
 * contexts of a system, and no two incarnations of an actor, ever use the
 * same one. A standalone client counts from 1. */
uint64_t af__ctx_next_id(af_ctx *ctx);
/* Settles every outstanding request with status. */
void af__ctx_fail_requests(af_ctx *ctx, int status);
/* Ends an outstanding request: removes it from every index, calls its
 * continuation with status and reply, frees it. */
void af__outreq_settle(af__outreq *o, int status, af_msg *reply);
/* Ends o with an error the runtime found itself (an answer it could not
 * read): as af__outreq_settle with status code, the continuation getting
 * an error message {"code": code, "message": text} as if the target had
 * sent it (NULL when there is no memory for one). */
void af__outreq_fail(af__outreq *o, int code, const char *text);
/* A reply, error or stream message arrived: on the DEALER of the remote
 * peer from, or in the inbox (from NULL), where local actors answer. It is
 * taken only if it came back the way its request went; else it is dropped
 * and counted, whatever its id: anyone who can reach a connection of ours
 * can send any id, and ids are small and sequential. */
void af__ctx_on_response(af_ctx *ctx, af_msg *m, const af__peer *from);
/* Opens ctx's inbox under ctx->inbox_name with room for capacity messages
 * per sender. AF_OK, AF_EEXIST, AF_ESYS. */
af_err af__ctx_open_inbox(af_ctx *ctx, int capacity);
/* Answers what is still queued in the inbox with AF_ESTOPPED (requests)
 * and closes it. */
void af__ctx_close_inbox(af_ctx *ctx);
/* Reads a socket carrying requests: the inbox, or an actor's ROUTER
 * (routed: the frames before the body lead back to the sender). Reads
 * until empty or budget messages are read (then w is kicked, to go on
 * next turn). Returns the messages read. */
int af__ctx_read(af_ctx *ctx, void *sock, af__watch *w, bool routed,
		 int budget);
/* The budget of a turn of the loop: small enough that a burst of requests
 * does not hold back the I/O they start (the chat actor's connections open
 * while the rest of a burst of 1,000 streams is still being read: with
 * 1,024, the median first chunk came 20 ms later), large enough that a
 * turn's own cost stays small beside 64 messages, each of which may be a
 * batch of tells. */
#define AF__READ_TURN 64
/* The budget of each of the at most 64 passes that take all that is queued
 * at once: a stopping actor answering its mailbox, an actor taking the
 * answers of one that stopped before declaring its requests lost. */
#define AF__READ_PASS 1024
/* A tell or request for the actor (actor.c). */
void af__actor_dispatch(af_ctx *ctx, af_msg *m);
/* True once the actor was asked to stop (actor.c). */
bool af__actor_stopping(const af_ctx *ctx);

/* The way back to the sender of a received request (reply.c). */
af__reply_to af__reply_to_of(const af_msg *m);
af__reply_to af__pending_reply_to(const af_pending *p);
/* Sends an answer (reply, error, chunk or end) to to. A requester whose
 * queue is full gets it later, in order. AF_EPEERDOWN when the requester
 * is gone (reply.c). */
af_err af__answer(af_ctx *ctx, const af__reply_to *to, const af__envelope *env,
		  const af_payload *payload);
af_err af__answer_error(af_ctx *ctx, const af__reply_to *to, uint64_t id,
			int code, const char *text);
/* True when answers to `to` wait in the backlog: anything more for that
 * requester must go behind them (reply.c). */
bool af__answers_waiting(af_ctx *ctx, const af__reply_to *to);
/* Answers every deferred request with AF_ESTOPPED (after its cancel hook:
 * its work is abandoned). */
void af__reply_settle_deferred(af_ctx *ctx);
/* The deferred request a cancel or credit message m refers to, or NULL. */
af_pending *af__pending_find(af_ctx *ctx, const af_msg *m);
/* The requester gave up on p: runs its cancel hook and frees it, or (with
 * no hook) marks it so that its answer goes nowhere. */
void af__pending_cancel(af_ctx *ctx, af_pending *p);
/* Runs the cancel of p on the next turn (found while inside a call). */
void af__pending_cancel_soon(af_ctx *ctx, af_pending *p);
/* A credit message m arrived for a stream this actor produces (stream.c). */
void af__stream_on_credit(af_ctx *ctx, af_msg *m);
/* A chunk or end arrived for a stream request of ctx (stream.c). */
void af__stream_on_chunk(af_ctx *ctx, af__outreq *o, af_msg *m);
/* The consumer took n more chunks of stream request id (if it is still
 * outstanding): sends credit when due. */
void af__stream_taken(af_ctx *ctx, uint64_t id, uint64_t n);
/* Says whether ctx must be woken when an actor stops: while it has
 * requests outstanding or writable waits, whose targets may be the ones
 * stopping. */
void af__ctx_update_waiting(af_ctx *ctx);
/* Calls the writable waits of closed peers (a timer callback). */
void af__ctx_run_orphan_waits(af__timer *t);
/* Sends the target of o a message of kind (cancel, credit) about it, with
 * seq. AF_OK, AF_EPEERDOWN (no live connection), AF_EAGAIN, AF_ENOMEM. */
af_err af__outreq_send_control(af_ctx *ctx, af__outreq *o, af_kind kind,
			       uint64_t seq);
/* Tells the target of o that the requester gives up on it (best effort). */
void af__outreq_send_cancel(af_ctx *ctx, af__outreq *o);
/* Sends the answers that met a full queue, each requester's in order,
 * waiting up to wait_ms in all for local requesters to make room; drops
 * what is left (context teardown). */
void af__reply_hand_over_backlog(af_ctx *ctx, int64_t wait_ms);

/* Checks whether actors stopped since last time (epoch) and, if so, closes
 * local peers whose actor is gone, so that the next message to that name
 * reaches whoever holds it now; their requests move to ctx->lost_reqs.
 * With take_answers (only from the loop, never inside a handler) it then
 * reads the answers already in the inbox and ends the lost requests still
 * open with AF_EPEERDOWN; without, it wakes the loop to do so. Called
 * before every send to a local peer: one atomic load when nothing
 * stopped. */
void af__ctx_check_epoch(af_ctx *ctx, bool take_answers);

/* Builds one frame holding an envelope and payload. AF_EINVAL (bad type or
 * unfinished payload), AF_EMSGSIZE, AF_ENOMEM. */
af_err af__frame_build(zmq_msg_t *frame, const af__envelope *env,
		       const af_payload *payload, size_t max_msg);

/* Sends the message env describes (kind, id, seq, ttl; its type and
 * target are filled in here) to addr. block_ms: 0 fails with AF_EAGAIN on
 * a full mailbox, > 0 waits that long (clients only). *via, if not NULL,
 * receives the peer used. */
af_err af__ctx_send(af_ctx *ctx, const char *addr, af__envelope *env,
		    const char *type, const af_payload *payload,
		    int64_t block_ms, af__peer **via);

/* What a request asks for beyond af_request's arguments. */
typedef struct af__request_opts {
	int64_t block_ms;     /* as in af__ctx_send */
	af_chunk_fn on_chunk; /* a stream request when not NULL */
	bool manual_credit;   /* the consumer reports taken chunks itself */
} af__request_opts;

/* af_request's and af_request_stream's engine. */
af_err af__ctx_request(af_ctx *ctx, const char *addr, const char *type,
		       const af_payload *payload, int64_t timeout_ms,
		       const af__request_opts *opts, af_reply_fn fn, void *arg,
		       uint64_t *id);

/* Writes the inproc endpoint of the inbox called name. */
void af__inproc_endpoint(char *buf, size_t cap, const char *name);

/* Splits addr into the peer key and the target name ("#name"). */
af_err af__addr_parse(const char *addr, const char **key, size_t *key_len,
		      bool *remote, const char **to, size_t *to_len);

/* True when the len bytes at s are a name an actor may have: 1 to
 * AF__NAME_MAX bytes with no NUL, no '#' and no "://", so that as an
 * address it names an actor of the caller's own system (af__addr_parse
 * reads it as local) and nothing behind an endpoint. */
bool af__addr_is_name(const char *s, size_t len);

#endif
