/*
 * actorflow: the gather actor, fan-out and collect.
 *
 * The C form of `results = await asyncio.gather(a, b, c)` and of
 * LlamaIndex's `run_jobs(jobs, workers=N)`: one request names many
 * requests to other actors; the gather actor sends them (all at once, or at
 * most N at a time), collects every outcome and answers with the results in
 * the order of the input, or streams each result as it finishes.
 *
 * Spawn it under any name and send it requests of type "gather":
 *
 *     af_spawn(sys, "gather", &af_gather_ops, NULL, NULL);
 *
 * It holds no thread per gather and never blocks: many gathers run at once
 * through one gather actor, and an item may itself be a gather addressed to
 * the gather actor (gathers nest).
 *
 * ---- The "gather" request ---------------------------------------------
 *
 * Payload: a map.
 *   "items"           array of item maps (required; may be empty):
 *       "to"          string: the address the item is sent to (required);
 *       "type"        string: its message type (required);
 *       "payload"     any value: its payload (optional; nil when absent);
 *       "timeout_ms"  unsigned integer: the item's own deadline, counted
 *                     from when the gather starts it (optional; 0 or absent:
 *                     "item_timeout_ms").
 *   "concurrency"     unsigned integer: at most this many items started and
 *                     not yet finished at a time; the next starts as one
 *                     finishes. 0: no limit. Default: the config's
 *                     concurrency (0 unless configured).
 *   "timeout_ms"      unsigned integer: the deadline of the whole gather
 *                     (optional; 0 or absent: none). The request's own
 *                     deadline bounds it too: whichever ends first. When it
 *                     is the request's deadline, the gather ends a margin
 *                     before it (a twentieth of the time, between 1 and
 *                     100 ms), so that its answer reaches the requester in
 *                     time.
 *   "item_timeout_ms" unsigned integer: the deadline of each item that sets
 *                     none (optional; 0 or absent: none).
 *   "mode"            "collect" (default): every slot holds its item's
 *                     result or error, like return_exceptions=True.
 *                     "fail_fast": the first item to fail fails the gather
 *                     with that item's error code and a message that names
 *                     the item's index; items still running are cancelled.
 *   "as_completed"    bool (default false): stream each slot as its item
 *                     finishes instead of one reply. The request must ask
 *                     for a stream (af_request_stream, af_client_stream);
 *                     a plain request is refused with AF_EINVAL.
 * A nil value counts as absent. Items are numbered from 0 in input order;
 * each is sent with af_request_stream, with its deadline (or else the
 * gather's) as the request's deadline.
 *
 * A slot, the outcome of one item:
 *   {"ok": true,  "value": <the reply's payload>}
 *   {"ok": false, "error": {"code": <int>, "message": <string>}}
 * An item answered by a stream is collected whole: "value" is the stream's
 * end payload, and the slot adds
 *   "chunks": [<each chunk's payload>, ...]
 *   "text":   <string> the chunks' text concatenated, present when every
 *             chunk is a string or a map with a string "delta" or "text"
 *             field (so streamed chats can be gathered).
 * An error's code is the target's own code, or AF_ETIMEDOUT (the item's or
 * the gather's deadline passed), AF_ENOTFOUND / AF_EADDR (the item could not
 * be sent), AF_EPEERDOWN, AF_ESTOPPED, AF_EMSGSIZE (see limits), ...
 *
 * Answer, collect and fail_fast modes:
 *   reply {"results": [slot, ...]}, one slot per item, in input order.
 * Answer with "as_completed": true:
 *   one chunk per item, in the order the items finish:
 *       {"index": <int>, ...the slot's fields}
 *   then the end {"completed": <int>, "failed": <int>} (slots sent, and
 *   how many of them have "ok": false).
 *
 * Errors (answered instead):
 *   AF_EINVAL     the payload is not a map; "items" is missing or not an
 *                 array; an item is not a map, or lacks a "to" or "type"
 *                 string; an item's "to" is an address (ipc://, tcp://)
 *                 in a request from another process, and the config's
 *                 remote_targets is false; an option has the wrong type;
 *                 "mode" is neither
 *                 "collect" nor "fail_fast"; more items than max_items;
 *                 "as_completed" on a plain request. The message names the
 *                 field and, for an item, its index.
 *   <item's code> fail_fast: the first item that failed, "item <i> ...".
 *   AF_ETIMEDOUT  fail_fast: the gather's deadline passed first.
 *   AF_EMSGSIZE   the results, together, are larger than a message may
 *                 carry: ask again with "as_completed": true.
 * When the gather's deadline passes in collect mode, the items still
 * unfinished are cancelled and their slots become AF_ETIMEDOUT errors; the
 * gather then answers as usual.
 *
 * Limits: a gather holds at most max_bytes of results (slots not yet sent
 * and chunks of streams being collected). The item whose result would go
 * beyond fails with AF_EMSGSIZE (a stream being collected is cancelled).
 *
 * Cancellation: when the requester cancels the gather, its deadline
 * passes before the answer, it stops or its process goes away, or the
 * gather actor stops, every item still running is cancelled (its target is
 * told) and the gather's memory is freed.
 *
 * A target whose mailbox is full does not fail its item: the item waits for
 * room (af_when_writable) and is sent then, after the items that waited
 * for that target before it.
 */
#ifndef ACTORFLOW_GATHER_H
#define ACTORFLOW_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "actorflow/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults for the fields of af_gather_config left at 0. */
#define AF_GATHER_MAX_ITEMS 100000
#define AF_GATHER_MAX_BYTES ((size_t)16 << 20)

/* The gather actor's configuration, the config argument of af_spawn (may
 * be NULL: all defaults). It is copied during init. */
typedef struct af_gather_config {
	/* The concurrency of a gather that gives none; 0: no limit. */
	uint32_t concurrency;
	/* Most items one gather may name (0: AF_GATHER_MAX_ITEMS). */
	uint32_t max_items;
	/* Most bytes of results one gather holds (0: AF_GATHER_MAX_BYTES,
	 * the default message limit). A system with a smaller
	 * max_message_size should set this to match. */
	size_t max_bytes;
	/* Whether a request from another process (af_msg_is_local false)
	 * may name addresses (ipc://, tcp://) in its items' "to". false, the
	 * default: such a requester reaches only this system's actors, by
	 * name; an exported gather would otherwise connect wherever any of
	 * its callers asks, and keep every such connection open. Requests
	 * from this process may always name addresses. */
	bool remote_targets;
} af_gather_config;

/* The gather actor's ops, for af_spawn. Requests of any type other than
 * "gather" are answered with AF_ENOTSUP; tells are ignored. */
extern const af_actor_ops af_gather_ops;

#ifdef __cplusplus
}
#endif
#endif
