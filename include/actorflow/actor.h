/*
 * actorflow: actor systems, actors, messages, requests and timers.
 *
 * An actor is an ops table plus private state plus a mailbox. Each actor
 * runs its own mailbox loop on its own thread and is reached by name. All
 * af_ctx functions are called only from the actor's own thread, inside one
 * of its callbacks (init, handle, a continuation, a timer, an fd watch).
 * af_system functions may be called from any thread.
 *
 * Addresses:
 *   "name"                     an actor of the caller's system (inproc)
 *   "ipc:///path/node.sock"    the actor whose mailbox is exported there
 *   "ipc:///path/node.sock#name", "tcp://127.0.0.1:5555#name"
 *                              the named actor behind an exported endpoint
 *
 * Times: every timeout, delay and interval is an int64_t of milliseconds
 * and may be as large as INT64_MAX. Past 2^40 ms (about 35 years) it counts
 * as 2^40 ms, the same bound a message's ttl_ms has on the wire: a wait
 * without end in practice, never an overflow or a deadline already passed.
 */
#ifndef ACTORFLOW_ACTOR_H
#define ACTORFLOW_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actorflow/err.h"
#include "actorflow/payload.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_system af_system;
typedef struct af_ctx af_ctx;
typedef struct af_msg af_msg;
typedef struct af_pending af_pending;

/* A callback with no outcome to report: timers, writable waits. */
typedef void (*af_timer_fn)(af_ctx *ctx, void *arg);

/* ---- messages ---------------------------------------------------------- */

/* Message kinds; values are part of the wire protocol. */
typedef enum af_kind {
	AF_KIND_TELL = 1,
	AF_KIND_REQUEST = 2,
	AF_KIND_REPLY = 3,
	AF_KIND_ERROR = 4,
	AF_KIND_CHUNK = 5,
	AF_KIND_END = 6,
	AF_KIND_CANCEL = 7,
	AF_KIND_HEARTBEAT = 8,
	AF_KIND_BATCH =
		9, /* tells travelling together; handlers never see it */
	AF_KIND_CREDIT =
		10 /* a stream consumer's credit; handlers never see it */
} af_kind;

af_kind af_msg_kind(const af_msg *m);
/* The message type ("echo"), NUL-terminated; "" when the sender gave none. */
const char *af_msg_type(const af_msg *m);
/* The payload; a nil value when the sender gave none. Lives as long as m. */
const af_value *af_msg_payload(const af_msg *m);
/* The payload's encoded bytes, as they arrived: exactly one well-formed
 * msgpack value (checked on receipt), a nil (0xc0) when the sender gave
 * none. Reading them unpacks nothing; pass them to af_pack_raw to forward
 * the payload without encoding it again. Valid as long as m. AF_OK, or
 * AF_EINVAL when an argument is NULL. */
af_err af_msg_payload_raw(const af_msg *m, const void **data, size_t *len);
/* The correlation id of a request, reply or error; 0 for a tell. */
uint64_t af_msg_id(const af_msg *m);
/* Milliseconds left until the requester's deadline, -1 for none, 0 when it
 * has passed. */
int64_t af_msg_remaining_ms(const af_msg *m);
/* For a stream chunk: its number, counting from 1. For a stream's end: the
 * number of chunks before it. 0 for other kinds. */
uint64_t af_msg_seq(const af_msg *m);
/* True when m came from this process (an actor or client of the same
 * system), false when it came through an exported endpoint. Only a local
 * message may carry pointers. */
bool af_msg_is_local(const af_msg *m);
/* For an error message: its code, and in *text (when text is not NULL) its
 * NUL-terminated description, valid as long as m. AF_OK for other kinds. */
int af_msg_error(const af_msg *m, const char **text);
/* Frees a message the caller owns (the replies of af_client_request).
 * Accepts NULL; sets *m to NULL. Messages given to callbacks are borrowed
 * and must not be destroyed. */
void af_msg_destroy(af_msg **m);

/* ---- systems ----------------------------------------------------------- */

typedef struct af_system_opts {
	/* Largest message accepted, in bytes (default 16 MiB). A larger one is
	 * answered with AF_EMSGSIZE; one beyond four times this limit coming
	 * from another process closes that connection before it is read. */
	size_t max_message_size;
	/* ZeroMQ I/O threads for ipc and tcp (default 1). */
	int io_threads;
	/* How long an actor's or client's connection to another process's
	 * endpoint stays open while it carries nothing (no request or
	 * stream outstanding on it, no tell waiting, no writable wait),
	 * in ms: then it is closed, and the next message to that address
	 * connects again. Without it a program that has talked to many
	 * endpoints keeps a socket (and, to one that is gone, a reconnect
	 * every 100 ms) for each. A connection that is down while a tell sent
	 * on it may still wait in its queue is kept until it connects. 0:
	 * 60,000; negative: never. A client made without a system uses
	 * 60,000. */
	int64_t peer_idle_ms;
} af_system_opts;

/* Creates a system. opts may be NULL for defaults. Caller owns *out and
 * frees it with af_system_destroy(). Returns AF_OK, AF_ENOMEM or AF_ESYS. */
af_err af_system_new(af_system **out, const af_system_opts *opts);

/* Stops every actor (newest first, each as af_stop() does), joins their
 * threads and frees the system. Accepts NULL; sets *sys to NULL. Must not be
 * called from an actor of the system. */
void af_system_destroy(af_system **sys);

/* What a system's actors and clients did with messages they could not
 * take, counted since af_system_new over every actor and client of the
 * system, stopped ones included. */
typedef struct af_system_stats {
	/* Received and dropped without an answer: not msgpack, a malformed
	 * envelope, another protocol version or an unknown kind, when it
	 * was not a request or its id or way back could not be read; also
	 * what a message of its kind may not carry (a request in a batch, a
	 * credit beyond the chunks sent), and answers that did not come back
	 * the way their request went (an answer on an exported actor's
	 * endpoint, or one naming a request sent to another peer). */
	uint64_t dropped;
	/* Requests that could not be taken, answered with an error instead:
	 * AF_EPROTO (malformed), AF_EVERSION (another protocol version),
	 * AF_EMSGSIZE (over the limit). */
	uint64_t refused;
	/* Answers that arrived for requests already settled (timed out,
	 * cancelled, or sent by an earlier actor of the same name), dropped. */
	uint64_t late;
	/* Answers and tells not delivered because their receiver was gone. */
	uint64_t unroutable;
} af_system_stats;

/* Fills *out with sys's counters. AF_OK, or AF_EINVAL when an argument is
 * NULL. Any thread; the counters are read one by one, each exact. */
af_err af_system_get_stats(af_system *sys, af_system_stats *out);

/* What one actor did, counted by the actor itself since it was spawned
 * (af_actor_get_stats). Requests of reserved types ("af.stats") are not
 * counted. */
typedef struct af_actor_stats {
	char name[256];
	/* ops->type_name as given to af_spawn ("" when NULL). */
	const char *type_name;
	/* Tells and requests taken from the mailbox (a stopping actor's
	 * refused ones included). */
	uint64_t tells;
	uint64_t requests;
	/* Requests answered with an error, by the handler or the runtime
	 * (AF_ENOREPLY, AF_ENOTSUP, AF_ESTOPPED...). */
	uint64_t errors;
	/* Requests taken and not yet answered: being handled, or deferred
	 * (af_defer) and not yet answered or given up by the runtime. */
	uint64_t in_flight;
	/* Messages pushed into the actor's inbox by actors and clients of
	 * its own system and not yet taken: a batch of tells (one sender's
	 * tells of one turn) counts as one. Messages from other processes
	 * waiting in an exported endpoint's queues are not counted: ZeroMQ
	 * does not report them. */
	uint64_t mailbox_depth;
	/* Requests answered; the latencies below are over these. */
	uint64_t answered;
	/* Time from a request's being taken from the mailbox to its answer
	 * (the end, for a stream), in microseconds: 50th, 90th and 99th
	 * percentiles, each the upper bound of a histogram bucket at most
	 * 12.5% wide, and the largest. 0 while nothing was answered. */
	uint64_t latency_p50_us;
	uint64_t latency_p90_us;
	uint64_t latency_p99_us;
	uint64_t latency_max_us;
	/* Connections the actor holds open to other processes' endpoints
	 * (see af_system_opts.peer_idle_ms). */
	uint64_t remote_peers;
} af_actor_stats;

/* Fills *out with the counters of the actor called name. AF_OK,
 * AF_ENOTFOUND, AF_EINVAL. Any thread; each counter is exact, the set is
 * not read at one instant. The same answer, as a payload, comes to any
 * request of type "af.stats" sent to the actor (docs/protocol.md). */
af_err af_actor_get_stats(af_system *sys, const char *name,
			  af_actor_stats *out);

/* Fills out[0..cap) with the counters of sys's running actors (system
 * gateways included), newest first, and sets *count to how many there
 * are (possibly more than cap). AF_OK or AF_EINVAL. Any thread. */
af_err af_system_list_stats(af_system *sys, af_actor_stats *out, size_t cap,
			    size_t *count);

/* Stops taking new requests from other processes and waits for the work
 * in flight to finish: the first step of a graceful shutdown.
 *
 * Every actor's exported endpoints stop taking new connections: ipc
 * socket files are removed at once. Connections already made stay open,
 * so that answers reach their requesters; a new request arriving on one
 * (or still queued on it) is answered AF_ESTOPPED. A tcp listener stays
 * bound until its actor stops (ZeroMQ closes a listener's connections
 * with it), refusing requests the same way. Requests between the actors
 * of sys, and tells, go on as before: in-flight work may need them.
 *
 * Then waits until no actor has a request in flight (af_actor_stats
 * in_flight summed over the system), or timeout_ms passes (0: does not
 * wait). Sets *in_flight (may be NULL) to the requests still in flight.
 * Calling it again waits again. AF_OK or AF_EINVAL. Any thread but an
 * actor's of sys. Actors spawned after the call are not drained. */
af_err af_system_drain(af_system *sys, int64_t timeout_ms, uint64_t *in_flight);

/* ---- actors ------------------------------------------------------------ */

typedef struct af_actor_ops {
	/* Shown in errors and statistics. */
	const char *type_name;
	/* Runs on the actor's thread before any message. Sets *state; a
	 * non-zero return fails the spawn with that code (stop is then not
	 * called). May be NULL. */
	af_err (*init)(af_ctx *ctx, const void *config, void **state);
	/* Called for every tell and request. m is borrowed for the call. A
	 * request is answered with af_reply(), af_reply_error() or kept with
	 * af_defer(); if the handler does none of these, returning an error
	 * answers with that code, and returning AF_OK answers AF_ENOREPLY. */
	af_err (*handle)(af_ctx *ctx, void *state, af_msg *m);
	/* Runs on the actor's thread when it stops; frees state. May be NULL.
	 * Requests and timers still outstanding are settled before it runs. */
	void (*stop)(af_ctx *ctx, void *state);
} af_actor_ops;

typedef struct af_spawn_opts {
	/* Messages each sender may have queued in this actor's mailbox before
	 * sends to it fail with AF_EAGAIN (default 1000). The tells one actor
	 * sends another during one turn of its loop travel as one message of
	 * at most 256 tells and 16 KiB, so in tells the bound is up to 256
	 * times this, and in bytes at most 16 KiB times this per sender. */
	int mailbox_capacity;
	/* Stack of the actor's thread in bytes (default 256 KiB). */
	size_t stack_size;
	/* Where a failed af_spawn says why, NUL-terminated and cut to
	 * error_size bytes: init's own words (af_init_fail), or the
	 * runtime's ("an actor named \"chat\" already exists"). Untouched
	 * when the spawn succeeds. May be NULL. */
	char *error;
	size_t error_size;
} af_spawn_opts;

/* Starts an actor named name (unique in sys, at most 255 bytes) running ops
 * with config, which is passed to init and must stay valid until init
 * returns. Returns after init has run: AF_OK, the code init returned,
 * AF_EEXIST, AF_EINVAL, AF_ENOMEM or AF_ESYS; opts->error then says why.
 * opts may be NULL. Any thread. */
af_err af_spawn(af_system *sys, const char *name, const af_actor_ops *ops,
		const void *config, const af_spawn_opts *opts);

/* For init: fails the spawn with code (not AF_OK), and gives af_spawn the
 * reason, formatted as by printf (at most AF_INIT_ERROR_MAX - 1 bytes are
 * kept), to pass on in opts->error. Returns code, so that init may end
 * with `return af_init_fail(ctx, AF_EINVAL, "unknown provider \"%s\"",
 * name);`. Called anywhere but in init, it only returns code. */
#define AF_INIT_ERROR_MAX 512
af_err af_init_fail(af_ctx *ctx, af_err code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Stops the actor and waits for it: its mailbox is closed, requests still
 * queued in it are answered with AF_ESTOPPED (tells still queued are not
 * handled: a stopping actor runs no more handlers), tells it sent are
 * handed over, its own outstanding requests
 * end with AF_ECANCELED, deferred requests it never answered are answered
 * with AF_ESTOPPED, ops->stop runs, the thread is joined. AF_OK or
 * AF_ENOTFOUND. Any thread but the actor's own (see af_stop_self). */
af_err af_stop(af_system *sys, const char *name);

/* Also binds the actor's mailbox to endpoint ("ipc:///run/af/chat.sock",
 * "tcp://127.0.0.1:5555"), so other processes can request it. For ipc, a
 * stale socket file left by a dead process is replaced. AF_OK,
 * AF_ENOTFOUND, AF_EADDR, AF_ESYS. Any thread. */
af_err af_export(af_system *sys, const char *name, const char *endpoint);

/* Exports the whole system on endpoint: a message to "endpoint#name"
 * reaches the actor called name, through a gateway actor that forwards it
 * (one more hop than af_export of that actor) and carries the answer, or
 * the error, back. The requester's deadline carries over. The gateway
 * forwards only to actors of sys, by name: a requester naming an address
 * ("endpoint#tcp://host:port#x") is answered AF_EADDR, never relayed.
 * AF_OK, AF_EADDR, AF_EEXIST (endpoint in use), AF_ESYS. Any thread. */
af_err af_system_export(af_system *sys, const char *endpoint);

/* True when an actor of that name runs in sys. */
bool af_exists(af_system *sys, const char *name);

/* ---- inside an actor --------------------------------------------------- */

/* The actor's name and its system. */
const char *af_self(const af_ctx *ctx);
af_system *af_ctx_system(af_ctx *ctx);

/* Asks the actor to stop once the current callback returns. */
void af_stop_self(af_ctx *ctx);

/* Sends a one-way message. payload may be NULL (nil) and is copied: the
 * caller keeps it. An actor's tells are gathered and sent when the
 * current callback returns (one message per peer per turn), and always
 * ahead of any later message to that peer. AF_OK: it will be delivered,
 * even if this actor stops first; AF_EAGAIN when the target's mailbox is
 * full (nothing was sent); AF_ENOTFOUND, AF_EADDR, AF_EINVAL,
 * AF_EMSGSIZE. */
af_err af_tell(af_ctx *ctx, const char *addr, const char *type,
	       const af_payload *payload);

/* Calls fn once, on this actor's thread, when the mailbox at addr has room
 * for another message from this actor: the way to resume after af_tell or
 * af_request returned AF_EAGAIN without polling. If there is room already,
 * fn runs on the next turn of the loop. AF_OK, or errors as af_tell. */
af_err af_when_writable(af_ctx *ctx, const char *addr, af_timer_fn fn,
			void *arg);

/* A continuation: called exactly once per successful af_request, on the
 * requesting actor's thread, with AF_OK and the reply, or with the remote
 * error's code and the error message (read it with af_msg_error), or with
 * AF_ETIMEDOUT, AF_ECANCELED or AF_EPEERDOWN and reply == NULL. reply is
 * borrowed for the call. */
typedef void (*af_reply_fn)(af_ctx *ctx, int status, af_msg *reply, void *arg);

/* Sends a request. timeout_ms > 0 sets its deadline; 0 means none (an
 * inproc peer that stops, or a remote one that dies, still ends it). On
 * AF_OK fn will be called exactly once and *id (if id is not NULL) names the
 * request for af_cancel; on any error fn is never called. Errors as
 * af_tell. */
af_err af_request(af_ctx *ctx, const char *addr, const char *type,
		  const af_payload *payload, int64_t timeout_ms, af_reply_fn fn,
		  void *arg, uint64_t *id);

/* Ends an outstanding request now: its continuation runs with AF_ECANCELED
 * before this returns, and the target is told. AF_OK or AF_ENOTFOUND. */
af_err af_cancel(af_ctx *ctx, uint64_t id);

/* Answers request m with payload (may be NULL; copied). A request is
 * answered once: a second answer is AF_EINVAL. A requester whose own queue
 * is full gets the reply later: replies are never dropped while it lives. */
af_err af_reply(af_ctx *ctx, af_msg *m, const af_payload *payload);

/* Answers request m with an error: code (an af_err or an application code)
 * and a printf-style description (NULL for af_strerror(code)). */
af_err af_reply_error(af_ctx *ctx, af_msg *m, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

/* Keeps request m to answer after the handler returns. *out is owned by the
 * actor until answered with af_pending_reply or af_pending_error, which
 * free it and set *p to NULL. An actor that stops first answers it with
 * AF_ESTOPPED. */
af_err af_defer(af_ctx *ctx, af_msg *m, af_pending **out);
af_err af_pending_reply(af_ctx *ctx, af_pending **p, const af_payload *payload);
af_err af_pending_error(af_ctx *ctx, af_pending **p, int code, const char *fmt,
			...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
/* Milliseconds left until the deferred request's deadline, -1 for none. */
int64_t af_pending_remaining_ms(const af_pending *p);

/* Calls fn(ctx, arg) once if the requester gives up on the deferred
 * request before it is answered: it cancelled it, its deadline passed, it
 * stopped, or its process went away. This is where the actor stops the
 * work the request started. p is freed when fn returns: fn must forget it
 * (answering it inside fn is allowed and sends nothing). Without a hook a
 * cancelled request stays until answered, and its answer goes nowhere. */
void af_pending_on_cancel(af_pending *p, af_timer_fn fn, void *arg);

/* ---- streams ----------------------------------------------------------- */

/* How many chunks a consumer lets a producer send ahead of what it has
 * taken (the credit window). A producer never has more than this many
 * chunks of one stream in flight, so a slow consumer costs it no memory
 * beyond the window. */
#define AF_STREAM_WINDOW 1024

/* Called for each chunk of a streamed answer, in order, once each, on the
 * requesting actor's thread; never after the request's end continuation.
 * chunk is borrowed for the call; it counts as taken (and frees credit for
 * the producer) when the call returns. */
typedef void (*af_chunk_fn)(af_ctx *ctx, af_msg *chunk, void *arg);

/* Sends a request whose answer may be a stream: on_chunk runs for every
 * chunk, then on_end runs exactly once, as af_request's continuation does:
 * AF_OK with the end message (kind AF_KIND_END, carrying the producer's
 * final payload, or AF_KIND_REPLY when the target answered with a plain
 * reply and no chunks), or an error (the producer's, AF_ETIMEDOUT,
 * AF_ECANCELED, AF_EPEERDOWN, AF_EPROTO for a stream out of order). The
 * deadline bounds the whole stream. af_cancel() ends it: no chunk is
 * delivered after af_cancel returns, and the producer is told. Returns and
 * errors as af_request. */
af_err af_request_stream(af_ctx *ctx, const char *addr, const char *type,
			 const af_payload *payload, int64_t timeout_ms,
			 af_chunk_fn on_chunk, af_reply_fn on_end, void *arg,
			 uint64_t *id);

/* True when the deferred request's sender takes a stream (it was sent
 * with af_request_stream or af_client_stream). */
bool af_pending_is_stream(const af_pending *p);

/* Sends the next chunk of the stream answering p. payload may be NULL and
 * is copied. AF_OK; AF_EAGAIN when the consumer's credit window is full
 * (nothing was sent: resume from af_pending_when_writable); AF_ECANCELED
 * once the consumer is gone or gave up; AF_EINVAL when the requester did
 * not ask for a stream; AF_EMSGSIZE, AF_ENOMEM. */
af_err af_pending_chunk(af_ctx *ctx, af_pending *p, const af_payload *payload);

/* Chunks of p's stream sent that the consumer has not yet reported taken:
 * at most AF_STREAM_WINDOW. */
uint64_t af_pending_in_flight(const af_pending *p);

/* Ends the stream answering *p with a final payload (may be NULL: nil),
 * frees it and sets *p to NULL. A request answered by a stream ends with
 * af_pending_end or af_pending_error. AF_OK, AF_EINVAL, AF_EMSGSIZE. */
af_err af_pending_end(af_ctx *ctx, af_pending **p, const af_payload *payload);

/* Calls fn once, on this actor's thread, when the stream answering p may
 * take another chunk (credit arrived); on the next turn if it may already.
 * One wait per stream: a second call replaces the first, and fn NULL
 * drops it. AF_OK, AF_EINVAL (not a stream). */
af_err af_pending_when_writable(af_ctx *ctx, af_pending *p, af_timer_fn fn,
				void *arg);

/* ---- timers ------------------------------------------------------------ */

/* Calls fn after delay_ms, then every repeat_ms if repeat_ms > 0. *id names
 * the timer for af_timer_cancel. AF_OK, AF_EINVAL, AF_ENOMEM. */
af_err af_timer_start(af_ctx *ctx, int64_t delay_ms, int64_t repeat_ms,
		      af_timer_fn fn, void *arg, uint64_t *id);

/* Cancels a timer that has not fired (or a repeating one). Safe from its
 * own callback. AF_OK or AF_ENOTFOUND. */
af_err af_timer_cancel(af_ctx *ctx, uint64_t id);

/* ---- file descriptors -------------------------------------------------- */

enum { AF_FD_READ = 1, AF_FD_WRITE = 2, AF_FD_ERROR = 4 };

/* Called when fd is ready; events holds AF_FD_* bits. Level-triggered: it
 * is called again while the condition lasts. */
typedef void (*af_fd_fn)(af_ctx *ctx, int fd, unsigned events, void *arg);

/* Watches fd (which the caller keeps owning) for events (AF_FD_READ and/or
 * AF_FD_WRITE). One watch per fd. AF_OK, AF_EEXIST, AF_EINVAL, AF_ESYS. */
af_err af_fd_watch(af_ctx *ctx, int fd, unsigned events, af_fd_fn fn,
		   void *arg);
/* Changes the events watched on fd. AF_OK, AF_ENOTFOUND, AF_ESYS. */
af_err af_fd_modify(af_ctx *ctx, int fd, unsigned events);
/* Stops watching fd; safe from fd's own callback. Call it before closing
 * fd. AF_OK or AF_ENOTFOUND. */
af_err af_fd_unwatch(af_ctx *ctx, int fd);

#ifdef __cplusplus
}
#endif
#endif
