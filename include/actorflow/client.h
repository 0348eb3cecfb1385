/*
 * actorflow: talking to actors from a thread that is not an actor.
 *
 * A client is what a program's main() (or any other plain thread) uses to
 * reach actors: a blocking request with a timeout, and a tell. It is the C
 * form of `asyncio.run(main())` plus `await`. A client belongs to the thread
 * that uses it (it is not thread-safe); create one per thread.
 */
#ifndef ACTORFLOW_CLIENT_H
#define ACTORFLOW_CLIENT_H

#include <stdint.h>

#include "actorflow/actor.h"
#include "actorflow/curve.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_client af_client;

/* Creates a client. With sys it reaches sys's actors by name as well as
 * remote addresses; with sys == NULL it reaches only remote (ipc://,
 * tcp://) addresses, for programs that host no actors. Caller owns *out.
 * AF_OK, AF_ENOMEM, AF_ESYS. */
af_err af_client_new(af_client **out, af_system *sys);

typedef struct af_client_opts {
	/* CURVE keys (copied) for every remote endpoint the client connects
	 * to (see actorflow/curve.h); NULL: those af_system_set_curve set in
	 * sys, if any, else none. */
	const af_curve_keys *curve;
} af_client_opts;

/* af_client_new with options; opts may be NULL. Also AF_EINVAL (a key is
 * not Z85) and AF_ENOTSUP (no CURVE in libzmq). */
af_err af_client_new_opts(af_client **out, af_system *sys,
			  const af_client_opts *opts);

/* Frees the client; outstanding requests are abandoned. Accepts NULL; sets
 * *c to NULL. Destroy clients before their system. */
void af_client_destroy(af_client **c);

/* Sends a request and waits up to timeout_ms (> 0) for its outcome.
 * AF_OK: *reply is the reply, owned by the caller (af_msg_destroy).
 * A remote error: its code is returned, whatever it is, and *reply is the
 * error message (read its text with af_msg_error), owned by the caller.
 * AF_ETIMEDOUT (including a mailbox still full at the deadline),
 * AF_EPEERDOWN, AF_ENOTFOUND, AF_EADDR, AF_EINVAL, AF_EMSGSIZE: *reply is
 * NULL. So *reply tells a target's code from the client's own: a target
 * that timed out (AF_ETIMEDOUT) sends a message, the client's deadline
 * none. The client never returns AF_EAGAIN itself (a full mailbox is
 * waited for): AF_EAGAIN is always the target's "busy, try again" (the
 * offload actor's full queue). payload may be NULL and is copied.
 * AF_EPEERDOWN for a remote
 * address: its process died while the request was out, or it was down
 * when the request was sent and did not come back within 3 s (a process
 * that comes back in time gets the request; later requests reach it once
 * it is back). */
af_err af_client_request(af_client *c, const char *addr, const char *type,
			 const af_payload *payload, int64_t timeout_ms,
			 af_msg **reply);

/* Sends a one-way message, waiting up to timeout_ms for room in a full
 * mailbox (0: do not wait). AF_OK, AF_EAGAIN (timeout_ms == 0),
 * AF_ETIMEDOUT, AF_ENOTFOUND, AF_EADDR, AF_EINVAL, AF_EMSGSIZE. */
af_err af_client_tell(af_client *c, const char *addr, const char *type,
		      const af_payload *payload, int64_t timeout_ms);

/* ---- streams: `async for chunk in response` ----------------------------- */

typedef struct af_stream af_stream;

/* Sends a request whose answer may be a stream (see af_request_stream) and
 * returns at once; read the answer with af_stream_next. timeout_ms (> 0)
 * bounds the whole stream. Caller owns *out (af_stream_close). Errors as
 * af_client_request, and nothing is sent. */
af_err af_client_stream(af_client *c, const char *addr, const char *type,
			const af_payload *payload, int64_t timeout_ms,
			af_stream **out);

/* Waits up to timeout_ms (0: do not wait) for the next part of the answer.
 *   AF_OK      *msg is the next chunk (kind AF_KIND_CHUNK);
 *   AF_EOF     the stream ended: *msg is its end (kind AF_KIND_END with the
 *              producer's final payload, or AF_KIND_REPLY when the target
 *              answered with a plain reply); later calls give AF_EOF with
 *              *msg NULL;
 *   AF_EAGAIN  nothing arrived within timeout_ms; the stream goes on;
 *   an error   the stream failed (the producer's code with *msg its error
 *              message, or AF_ETIMEDOUT, AF_EPEERDOWN, AF_EPROTO with *msg
 *              NULL); later calls repeat it with *msg NULL. A producer's
 *              code that would read as one of the two above (AF_EAGAIN,
 *              the offload actor's "queue full", or AF_EOF) is returned
 *              as AF_EREMOTE: a stream that failed never reads as one
 *              that goes on or that ended. af_msg_error(*msg) gives the
 *              producer's own code and text.
 * *msg is owned by the caller (af_msg_destroy). A chunk counts as taken
 * when it is returned: the producer never runs more than AF_STREAM_WINDOW
 * chunks ahead of the reader. On the client's thread only; while it waits,
 * the client also takes the answers of its other streams. */
af_err af_stream_next(af_stream *s, int64_t timeout_ms, af_msg **msg);

/* Cancels the stream if it is still going (the producer is told, and
 * nothing more is delivered) and frees it. Accepts NULL; sets *s to NULL.
 * Close streams before their client; one left open when the client is
 * destroyed may still be closed (it then only frees). */
void af_stream_close(af_stream **s);

#ifdef __cplusplus
}
#endif
#endif
