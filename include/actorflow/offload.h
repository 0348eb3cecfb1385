/*
 * actorflow: the offload actor, a pool of worker threads for blocking
 * functions. The C form of Python's `await asyncio.to_thread(fn, ...)` and
 * `loop.run_in_executor(pool, fn, ...)`.
 *
 * Spawn it like any actor:
 *
 *     af_offload_config cfg = {.functions = fns, .nfunctions = 2};
 *     af_spawn(sys, "offload", &af_offload_ops, &cfg, NULL);
 *
 * and send it requests. Its own thread never blocks: it queues each job for
 * a worker, and answers the request when a worker has run it.
 *
 * Requests (message types and payloads):
 *
 *   call      {"fn": name, "args": any value (may be left out: nil)}
 *             Runs the function registered under name with args. Works from
 *             any process. The reply is the function's result value; an
 *             unknown name is AF_ENOTFOUND, a payload without a string "fn"
 *             is AF_EINVAL.
 *   call_ptr  {"fn": bin, "arg": bin}: an af_offload_ptr_fn and its void *
 *             argument, each as the bytes of the pointer. Only from this
 *             process: a call_ptr that came through an exported endpoint is
 *             refused with AF_EINVAL. Build it with af_offload_submit or
 *             af_offload_client_call rather than by hand.
 *   stats     (no payload) {"workers", "capacity", "queued", "running",
 *             "run", "failed", "cancelled", "timed_out", "rejected"}: the
 *             pool's size and queue capacity; jobs waiting and running now;
 *             since the start, jobs whose function returned, of those the
 *             ones that failed (an error, or a result that is not one
 *             value), jobs whose requester gave up (cancel, stop, peer
 *             gone), jobs answered AF_ETIMEDOUT, and calls refused because
 *             the queue was full.
 *   Tells are ignored: a job's result has nowhere to go.
 *
 * Outcomes of a call or call_ptr:
 *   - the function's result (AF_OK), or its error code and message;
 *   - AF_EAGAIN "offload queue full" at once when queue_capacity jobs are
 *     already waiting for a worker: the defined answer of a full queue,
 *     nothing was run and the caller may retry later;
 *   - AF_ETIMEDOUT when the request's deadline passes first: a job still
 *     waiting is dropped and never runs, a running one is left to finish
 *     and its result is dropped;
 *   - cancelled by the requester (af_cancel, its own stop): as a deadline,
 *     a waiting job never runs, a running one's result is dropped;
 *   - AF_ESTOPPED when the offload actor stops first (jobs still waiting
 *     never run).
 * A function that has started always runs to its end: threads cannot be
 * interrupted safely. Stopping the actor waits for the running functions to
 * return, so a function that blocks forever blocks af_stop and
 * af_system_destroy.
 */
#ifndef ACTORFLOW_OFFLOAD_H
#define ACTORFLOW_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "actorflow/actor.h"
#include "actorflow/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size of the buffer a function may write its error message into. */
#define AF_OFFLOAD_MSG_MAX 256

/* A function the pool runs by name. It runs on a worker thread, never on an
 * actor's, so it may block, and it must not call any af_ctx function (nor
 * af_reply and the like): it has no actor context. It reads args (the
 * request's "args", read-only and valid until it returns) and writes its
 * answer into result, an empty writer it borrows: one msgpack value, or
 * nothing for a nil answer. It returns AF_OK, or an error code (an af_err
 * or an application code from AF_EUSER) and may then write a NUL-terminated
 * description into msg (msg_size bytes, starting empty; left empty, the
 * requester reads af_strerror(code)). A result that is not one complete
 * value (a begin without its end, a second value beside the first) is
 * answered with AF_EINVAL. user is the pointer given when the function was
 * registered. Several workers may run the same function at once. */
typedef int (*af_offload_fn)(void *user, const af_value *args,
			     af_payload *result, char *msg, size_t msg_size);

/* A function given by pointer in a call_ptr request: as af_offload_fn, with
 * the caller's arg instead of a user pointer and a value. */
typedef int (*af_offload_ptr_fn)(void *arg, af_payload *result, char *msg,
				 size_t msg_size);

/* One function callable by name. */
typedef struct af_offload_function {
	const char *name;
	af_offload_fn fn;
	void *user;
} af_offload_function;

typedef struct af_offload_config {
	/* Worker threads; 0: one per online core. */
	int workers;
	/* Jobs that may wait for a worker before calls are refused with
	 * AF_EAGAIN; 0: 1024. Running jobs do not count. */
	int queue_capacity;
	/* The functions "call" can name. The table and its names are copied
	 * at spawn; user pointers are kept as they are and must stay valid
	 * while the actor runs. Duplicate names: the first wins. */
	const af_offload_function *functions;
	size_t nfunctions;
} af_offload_config;

/* The offload actor. Its config (an af_offload_config, or NULL for the
 * defaults and no named functions) is read during af_spawn only. Spawn
 * fails with AF_EINVAL for a negative count or a function without a name or
 * pointer, AF_ENOMEM, or AF_ESYS when a thread or an eventfd cannot be
 * made. */
extern const af_actor_ops af_offload_ops;

/* Sends a call_ptr request from inside an actor: fn(arg) runs on a worker
 * of the offload actor at addr (which must be of this process), and done
 * gets the outcome as an af_request continuation: AF_OK with fn's result
 * as the reply's payload, fn's error code with its message, or AF_EAGAIN,
 * AF_ETIMEDOUT, AF_ECANCELED, AF_ESTOPPED, AF_EPEERDOWN. timeout_ms and *id
 * are as af_request's (0: no deadline).
 *
 * arg belongs to the caller, who keeps it valid until fn has returned. A
 * job that already started keeps running after a timeout or a cancel, so
 * done may run with AF_ETIMEDOUT or AF_ECANCELED while fn still uses arg:
 * give such jobs an arg that outlives the offload actor, or one fn itself
 * releases.
 *
 * Returns as af_request: on AF_OK done runs exactly once; on an error it
 * never runs (AF_ENOMEM, AF_EINVAL for a NULL fn or done, and af_request's
 * errors). From the calling actor's thread only. */
af_err af_offload_submit(af_ctx *ctx, const char *addr, af_offload_ptr_fn fn,
			 void *arg, int64_t timeout_ms, af_reply_fn done,
			 void *done_arg, uint64_t *id);

/* The same from a plain thread: sends call_ptr through client c (made with
 * the offload actor's system) and waits up to timeout_ms (> 0) for the
 * outcome. Returns and fills *reply as af_client_request. arg as in
 * af_offload_submit: a timeout may return while fn still runs. */
af_err af_offload_client_call(af_client *c, const char *addr,
			      af_offload_ptr_fn fn, void *arg,
			      int64_t timeout_ms, af_msg **reply);

#ifdef __cplusplus
}
#endif
#endif
